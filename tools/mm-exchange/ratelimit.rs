//! Binance's rate-limit counters: fixed windows aligned to the wall clock, as the WebSocket
//! API documents them ("a 1 MINUTE interval starts every minute … 10 SECOND interval resets
//! at 00, 10, 20… seconds"). One set per process (Binance counts weight per IP and orders
//! per account; here there is one of each).
//!
//! Sans-IO: every call takes `now_ms`.

use crate::wire::{array, rate_limit};

/// One fixed window.
#[derive(Debug, Clone)]
pub struct Window {
    interval_ms: i64,
    /// The limit per window.
    pub limit: u64,
    start_ms: i64,
    count: u64,
}

impl Window {
    /// A window of `interval_ms` allowing `limit`.
    pub fn new(interval_ms: i64, limit: u64) -> Window {
        Window {
            interval_ms,
            limit,
            start_ms: i64::MIN,
            count: 0,
        }
    }

    fn roll(&mut self, now_ms: i64) {
        let start = now_ms - now_ms.rem_euclid(self.interval_ms);
        if start != self.start_ms {
            self.start_ms = start;
            self.count = 0;
        }
    }

    /// The count in the current window.
    pub fn count(&mut self, now_ms: i64) -> u64 {
        self.roll(now_ms);
        self.count
    }

    /// True when adding `n` would go over the limit.
    pub fn would_exceed(&mut self, now_ms: i64, n: u64) -> bool {
        self.count(now_ms) + n > self.limit
    }

    /// Adds `n` to the current window.
    pub fn add(&mut self, now_ms: i64, n: u64) {
        self.roll(now_ms);
        self.count += n;
    }

    /// When the current window ends (ms since the epoch).
    pub fn reset_ms(&mut self, now_ms: i64) -> i64 {
        self.roll(now_ms);
        self.start_ms + self.interval_ms
    }
}

/// REQUEST_WEIGHT per minute, ORDERS per 10 s and per day.
#[derive(Debug, Clone)]
pub struct Limits {
    /// REQUEST_WEIGHT, 1 MINUTE.
    pub weight: Window,
    /// ORDERS, 10 SECOND.
    pub orders_10s: Window,
    /// ORDERS, 1 DAY.
    pub orders_day: Window,
}

impl Limits {
    /// Limits with the given caps.
    pub fn new(weight_per_minute: u64, orders_per_10s: u64, orders_per_day: u64) -> Limits {
        Limits {
            weight: Window::new(60_000, weight_per_minute),
            orders_10s: Window::new(10_000, orders_per_10s),
            orders_day: Window::new(86_400_000, orders_per_day),
        }
    }

    /// The `rateLimits` array: ORDERS entries first for order requests, then weight.
    pub fn json(&mut self, now_ms: i64, with_orders: bool) -> String {
        let mut items = Vec::with_capacity(3);
        if with_orders {
            let c10 = self.orders_10s.count(now_ms);
            let cday = self.orders_day.count(now_ms);
            items.push(rate_limit(
                "ORDERS",
                "SECOND",
                10,
                self.orders_10s.limit,
                c10,
            ));
            items.push(rate_limit("ORDERS", "DAY", 1, self.orders_day.limit, cday));
        }
        let w = self.weight.count(now_ms);
        items.push(rate_limit(
            "REQUEST_WEIGHT",
            "MINUTE",
            1,
            self.weight.limit,
            w,
        ));
        array(items)
    }

    /// If one more order would break an ORDERS limit: (message, retryAfter ms).
    pub fn orders_exceeded(&mut self, now_ms: i64) -> Option<(String, i64)> {
        if self.orders_10s.would_exceed(now_ms, 1) {
            let msg = format!(
                "Too many new orders; current limit is {} orders per 10 SECOND.",
                self.orders_10s.limit
            );
            return Some((msg, self.orders_10s.reset_ms(now_ms)));
        }
        if self.orders_day.would_exceed(now_ms, 1) {
            let msg = format!(
                "Too many new orders; current limit is {} orders per 1 DAY.",
                self.orders_day.limit
            );
            return Some((msg, self.orders_day.reset_ms(now_ms)));
        }
        None
    }

    /// Counts one order in both ORDERS windows.
    pub fn add_order(&mut self, now_ms: i64) {
        self.orders_10s.add(now_ms, 1);
        self.orders_day.add(now_ms, 1);
    }

    /// Adds request weight; if that goes over the limit: (message, retryAfter ms).
    pub fn add_weight(&mut self, now_ms: i64, weight: u64) -> Option<(String, i64)> {
        if self.weight.would_exceed(now_ms, weight) {
            let msg = format!(
                "Too much request weight used; current limit is {} request weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.",
                self.weight.limit
            );
            return Some((msg, self.weight.reset_ms(now_ms)));
        }
        self.weight.add(now_ms, weight);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_aligned_and_reset() {
        let mut l = Limits::new(10, 2, 100);
        let t = 1_700_000_003_000; // 3 s into a 10 s window
        assert!(l.orders_exceeded(t).is_none());
        l.add_order(t);
        l.add_order(t + 1);
        let (msg, retry) = l.orders_exceeded(t + 2).unwrap();
        assert_eq!(
            msg,
            "Too many new orders; current limit is 2 orders per 10 SECOND."
        );
        assert_eq!(retry, 1_700_000_010_000);
        let json = l.json(t, true);
        assert!(json.starts_with("[{\"rateLimitType\":\"ORDERS\",\"interval\":\"SECOND\",\"intervalNum\":10,\"limit\":2,\"count\":2}"));
        assert!(l.orders_exceeded(1_700_000_010_000).is_none());
        assert!(l.add_weight(t, 10).is_none());
        assert!(l.add_weight(t, 1).is_some());
    }
}
