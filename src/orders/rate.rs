//! Order rate limits: `RateLimiter`, sliding per-second and per-10-s windows of new-order
//! send times (Binance's ORDERS limits, never exceeded by any fixed exchange window).
//!
//! Never allocates after `new`; an exhausted window refuses, it never blocks.

use super::*;

/// Sliding windows of new-order send times: at most `per_s` in any rolling second and
/// `per_10s` in any rolling 10 s. A sliding window is stricter than the exchange's fixed
/// windows: every fixed window's orders lie within 10 s before its last one, which saw
/// them all.
#[derive(Clone, Debug)]
pub(super) struct RateLimiter {
    /// Send times (ns), a ring; the oldest at `head`.
    times: [u64; RATE_WINDOW_MAX],
    head: usize,
    pub(super) len: usize,
    pub(super) per_s: usize,
    pub(super) per_10s: usize,
}

impl RateLimiter {
    pub(super) fn new(per_s: u32, per_10s: u32) -> RateLimiter {
        RateLimiter {
            times: [0; RATE_WINDOW_MAX],
            head: 0,
            len: 0,
            per_s: per_s as usize,
            per_10s: (per_10s as usize).min(RATE_WINDOW_MAX),
        }
    }

    /// Takes one token at `now_ns` if both windows have room.
    pub(super) fn try_acquire(&mut self, now_ns: u64) -> bool {
        // Forget sends 10 s old or older.
        while self.len > 0 && now_ns.saturating_sub(self.times[self.head]) >= 10 * NS_PER_S {
            self.head = (self.head + 1) % RATE_WINDOW_MAX;
            self.len -= 1;
        }
        if self.len >= self.per_10s || self.len >= RATE_WINDOW_MAX {
            return false;
        }
        // Sends in the last second: walk back from the newest, at most per_s steps.
        let mut in_last_s = 0;
        for back in 0..self.len {
            let at = (self.head + self.len - 1 - back) % RATE_WINDOW_MAX;
            if now_ns.saturating_sub(self.times[at]) >= NS_PER_S {
                break;
            }
            in_last_s += 1;
            if in_last_s >= self.per_s {
                return false;
            }
        }
        let tail = (self.head + self.len) % RATE_WINDOW_MAX;
        self.times[tail] = now_ns;
        self.len += 1;
        true
    }
}
