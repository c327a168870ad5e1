//! Order-flow imbalance (Cont, Kukanov & Stoikov 2014, "The price impact of order book
//! events", J. Financial Econometrics 12(1), eq. 10), summed over a rolling time window.
//!
//! Each change of the best bid/ask state n−1 → n contributes
//!
//! ```text
//! e_n = 1{Pᴮₙ ≥ Pᴮₙ₋₁}·qᴮₙ − 1{Pᴮₙ ≤ Pᴮₙ₋₁}·qᴮₙ₋₁ − 1{Pᴬₙ ≤ Pᴬₙ₋₁}·qᴬₙ + 1{Pᴬₙ ≥ Pᴬₙ₋₁}·qᴬₙ₋₁
//! ```
//!
//! (lots; bid up ⇒ +qᴮₙ, bid unchanged ⇒ qᴮₙ − qᴮₙ₋₁, bid down ⇒ −qᴮₙ₋₁; mirrored on the ask).
//! OFI = Σ e_n over the window. **Normalisation:** CKS regress the mid change on OFI / AD,
//! where AD is the average depth at the touch, and find ΔP ≈ β·OFI/AD ticks. We use the same
//! scale: `normalised = OFI / AD` with AD = mean over the window of (qᴮ + qᴬ)/2, clamped to
//! [−1, 1]. So β (config `ofi.beta`) is in ticks per unit of OFI/AD, and the quoter's tilt
//! β·normalised is the expected short-term move of the mid, capped at one tick.
//!
//! Owns: a ring buffer of (time, e_n, depth) allocated in `new`, and running sums.
//! Hot path: never allocates after `new`, never reads the clock (time comes in as `now_ns`),
//! never divides by zero, never panics. When the ring is full the oldest entry leaves the
//! window early and is counted in `evicted_early`.

use crate::model::quoter::Ofi;
use crate::types::{Price, Qty};

/// The best bid and ask (price, size) at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Touch {
    /// Best bid price, ticks.
    pub bid: Price,
    /// Size at the best bid, lots.
    pub bid_qty: Qty,
    /// Best ask price, ticks.
    pub ask: Price,
    /// Size at the best ask, lots.
    pub ask_qty: Qty,
}

#[derive(Clone, Copy, Debug, Default)]
struct Entry {
    ts_ns: u64,
    e_lots: i64,
    /// qᴮ + qᴬ of state n, lots (twice the depth at the touch).
    depth2_lots: i64,
}

/// Rolling-window OFI estimator.
#[derive(Debug)]
pub struct OfiEstimator {
    window_ns: u64,
    ring: Box<[Entry]>,
    head: usize,
    len: usize,
    sum_e_lots: i128,
    sum_depth2_lots: i128,
    prev: Option<Touch>,
    evicted_early: u64,
}

impl OfiEstimator {
    /// A window of `window_ns` nanoseconds holding at most `capacity` touch changes.
    pub fn new(window_ns: u64, capacity: usize) -> OfiEstimator {
        OfiEstimator {
            window_ns,
            ring: vec![Entry::default(); capacity.max(1)].into_boxed_slice(),
            head: 0,
            len: 0,
            sum_e_lots: 0,
            sum_depth2_lots: 0,
            prev: None,
            evicted_early: 0,
        }
    }

    /// The contribution e_n of a move from `prev` to `next`, lots (CKS eq. 10).
    #[inline]
    pub fn contribution(prev: &Touch, next: &Touch) -> i64 {
        let mut e = 0i64;
        if next.bid >= prev.bid {
            e += next.bid_qty.0;
        }
        if next.bid <= prev.bid {
            e -= prev.bid_qty.0;
        }
        if next.ask <= prev.ask {
            e -= next.ask_qty.0;
        }
        if next.ask >= prev.ask {
            e += prev.ask_qty.0;
        }
        e
    }

    /// Feeds the touch after a book or bookTicker update at `now_ns`. An unchanged touch
    /// contributes nothing and is not stored.
    #[inline]
    pub fn on_touch(&mut self, now_ns: u64, touch: Touch) {
        let Some(prev) = self.prev else {
            self.prev = Some(touch);
            return;
        };
        if prev == touch {
            return;
        }
        self.prev = Some(touch);
        self.expire(now_ns);
        if self.len == self.ring.len() {
            self.pop_oldest();
            self.evicted_early += 1;
        }
        let entry = Entry {
            ts_ns: now_ns,
            e_lots: Self::contribution(&prev, &touch),
            depth2_lots: touch.bid_qty.0.saturating_add(touch.ask_qty.0),
        };
        // head < capacity and len < capacity here: one wrap at most (no division).
        let mut slot = self.head + self.len;
        if slot >= self.ring.len() {
            slot -= self.ring.len();
        }
        self.ring[slot] = entry;
        self.len += 1;
        self.sum_e_lots += i128::from(entry.e_lots);
        self.sum_depth2_lots += i128::from(entry.depth2_lots);
    }

    /// Forgets everything (after a resync: the previous touch is no longer comparable).
    pub fn reset(&mut self) {
        self.head = 0;
        self.len = 0;
        self.sum_e_lots = 0;
        self.sum_depth2_lots = 0;
        self.prev = None;
    }

    /// OFI over the window ending at `now_ns`, lots.
    #[inline]
    pub fn ofi_lots(&mut self, now_ns: u64) -> i64 {
        self.expire(now_ns);
        i64::try_from(self.sum_e_lots).unwrap_or(if self.sum_e_lots > 0 {
            i64::MAX
        } else {
            i64::MIN
        })
    }

    /// OFI / average touch depth over the window ending at `now_ns`, clamped to [−1, 1];
    /// 0 with an empty window.
    #[inline]
    pub fn normalised(&mut self, now_ns: u64) -> Ofi {
        self.expire(now_ns);
        if self.len == 0 || self.sum_depth2_lots <= 0 {
            return Ofi::ZERO;
        }
        // OFI / AD = Σe / (Σ(qᴮ+qᴬ) / (2·len)) = 2·len·Σe / Σ(qᴮ+qᴬ); in I32F32 bits.
        let one_bits = 1i128 << Ofi::FRAC_NBITS;
        let numerator = self.sum_e_lots * 2 * self.len as i128;
        let bits = clamp_i128(
            numerator.saturating_mul(one_bits) / self.sum_depth2_lots,
            -one_bits,
            one_bits,
        );
        // `bits` is clamped to ±2³², which fits i64: the fallback is never taken.
        Ofi::from_bits(i64::try_from(bits).unwrap_or(0))
    }

    /// Reads the two entries the next `on_touch` meets first — the oldest (what expires
    /// next) and the slot the next change is written to — and changes nothing: the hot
    /// loop's warm-up on a quiet market (`Engine::warm`). The ring is ~100 KiB and its ends
    /// move a page every ~170 changes, so on a quiet market the next change often lands on
    /// a line, or a page, nobody touched for seconds.
    #[inline]
    pub fn warm(&self) -> i64 {
        let at = |i: usize| self.ring.get(i % self.ring.len()).map_or(0, |e| e.e_lots);
        at(self.head).wrapping_add(at(self.head + self.len))
    }

    /// Touch changes currently in the window.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the window holds no change.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Entries that left the window early because the ring was full.
    pub fn evicted_early(&self) -> u64 {
        self.evicted_early
    }

    #[inline]
    fn expire(&mut self, now_ns: u64) {
        let horizon = now_ns.saturating_sub(self.window_ns);
        while self.len > 0 && self.ring[self.head].ts_ns <= horizon && now_ns >= self.window_ns {
            self.pop_oldest();
        }
    }

    #[inline]
    fn pop_oldest(&mut self) {
        let old = self.ring[self.head];
        self.sum_e_lots -= i128::from(old.e_lots);
        self.sum_depth2_lots -= i128::from(old.depth2_lots);
        self.head += 1;
        if self.head == self.ring.len() {
            self.head = 0;
        }
        self.len -= 1;
    }
}

#[inline]
fn clamp_i128(v: i128, lo: i128, hi: i128) -> i128 {
    v.max(lo).min(hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(bid: i64, bq: i64, ask: i64, aq: i64) -> Touch {
        Touch {
            bid: Price(bid),
            bid_qty: Qty(bq),
            ask: Price(ask),
            ask_qty: Qty(aq),
        }
    }

    #[test]
    fn each_branch_of_the_formula() {
        let base = t(100, 10, 101, 20);
        // Bid up (ask unchanged, same size): +qᴮₙ, ask term 20 − 20 = 0.
        assert_eq!(
            OfiEstimator::contribution(&base, &t(101, 7, 102, 20)),
            7 + 20
        );
        // Bid same, size 10 → 15: +5; ask same size: 0.
        assert_eq!(OfiEstimator::contribution(&base, &t(100, 15, 101, 20)), 5);
        // Bid down: −qᴮₙ₋₁ = −10.
        assert_eq!(OfiEstimator::contribution(&base, &t(99, 50, 101, 20)), -10);
        // Ask down: −qᴬₙ = −8 (bid same size: 0).
        assert_eq!(OfiEstimator::contribution(&base, &t(100, 10, 100, 8)), -8);
        // Ask same, size 20 → 26: −6.
        assert_eq!(OfiEstimator::contribution(&base, &t(100, 10, 101, 26)), -6);
        // Ask up: +qᴬₙ₋₁ = +20.
        assert_eq!(OfiEstimator::contribution(&base, &t(100, 10, 102, 3)), 20);
        // Bid up and ask up together: +qᴮₙ + qᴬₙ₋₁.
        assert_eq!(
            OfiEstimator::contribution(&base, &t(101, 4, 102, 9)),
            4 + 20
        );
        // Bid down and ask down together: −qᴮₙ₋₁ − qᴬₙ.
        assert_eq!(
            OfiEstimator::contribution(&base, &t(99, 4, 100, 9)),
            -10 - 9
        );
    }

    #[test]
    fn window_sums_and_expires() {
        let mut ofi = OfiEstimator::new(1_000, 16);
        ofi.on_touch(0, t(100, 10, 101, 10));
        ofi.on_touch(100, t(100, 14, 101, 10)); // +4, depth2 24
        ofi.on_touch(200, t(100, 14, 101, 6)); // +4, depth2 20
        assert_eq!(ofi.ofi_lots(200), 8);
        // AD = (24 + 20) / 2 / 2 = 11 → 8 / 11.
        let n = ofi.normalised(200);
        assert!((n.to_num::<f64>() - 8.0 / 11.0).abs() < 1e-9, "{n}");
        // At 1100 the first change (t=100) has left the window.
        assert_eq!(ofi.ofi_lots(1_100), 4);
        assert_eq!(ofi.len(), 1);
        // At 1200 everything has left.
        assert_eq!(ofi.ofi_lots(1_200), 0);
        assert_eq!(ofi.normalised(1_200), Ofi::ZERO);
    }

    #[test]
    fn normalised_is_clamped_and_signed() {
        let mut ofi = OfiEstimator::new(1_000_000, 16);
        ofi.on_touch(0, t(100, 1, 101, 1));
        ofi.on_touch(1, t(101, 50, 102, 1)); // +50 +1, depth tiny → clamp at +1
        assert_eq!(ofi.normalised(2), Ofi::ONE);
        let mut ofi = OfiEstimator::new(1_000_000, 16);
        ofi.on_touch(0, t(100, 1, 101, 1));
        ofi.on_touch(1, t(99, 50, 100, 50)); // −1 −50
        assert_eq!(ofi.normalised(2), -Ofi::ONE);
    }

    #[test]
    fn unchanged_touch_and_reset() {
        let mut ofi = OfiEstimator::new(1_000, 4);
        ofi.on_touch(0, t(100, 10, 101, 10));
        ofi.on_touch(1, t(100, 10, 101, 10));
        assert!(ofi.is_empty());
        ofi.on_touch(2, t(100, 11, 101, 10));
        assert_eq!(ofi.len(), 1);
        ofi.reset();
        assert!(ofi.is_empty());
        ofi.on_touch(3, t(200, 11, 201, 10)); // first after reset: no contribution
        assert!(ofi.is_empty());
    }

    #[test]
    fn full_ring_evicts_and_counts() {
        let mut ofi = OfiEstimator::new(u64::MAX / 2, 2);
        ofi.on_touch(0, t(100, 1, 101, 1));
        for i in 1..=5 {
            ofi.on_touch(i, t(100, 1 + i as i64, 101, 1)); // +1 each
        }
        assert_eq!(ofi.len(), 2);
        assert_eq!(ofi.evicted_early(), 3);
        assert_eq!(ofi.ofi_lots(6), 2);
    }

    proptest! {
        /// The running sums equal a naive recomputation over the events still in the window.
        #[test]
        fn matches_naive_window(steps in proptest::collection::vec((0u64..300, -2i64..=2, 1i64..100, -2i64..=2, 1i64..100), 1..200)) {
            let window = 1_000u64;
            let mut ofi = OfiEstimator::new(window, 4096);
            let mut now = 0u64;
            let mut cur = t(1_000, 10, 1_001, 10);
            ofi.on_touch(now, cur);
            let mut history: Vec<(u64, i64, i64)> = Vec::new();
            for (dt, db, bq, da, aq) in steps {
                now += dt;
                let bid = cur.bid.0 + db;
                let ask = (cur.ask.0 + da).max(bid + 1);
                let next = t(bid, bq, ask, aq);
                if next != cur {
                    history.push((now, OfiEstimator::contribution(&cur, &next), bq + aq));
                }
                cur = next;
                ofi.on_touch(now, cur);
                let live: Vec<_> = history.iter().filter(|(ts, _, _)| *ts + window > now).collect();
                let sum: i64 = live.iter().map(|(_, e, _)| e).sum();
                prop_assert_eq!(ofi.ofi_lots(now), sum);
                let depth: i64 = live.iter().map(|(_, _, d)| d).sum();
                let expect = if live.is_empty() || depth == 0 { 0.0 } else {
                    (sum as f64 / (depth as f64 / 2.0 / live.len() as f64)).clamp(-1.0, 1.0)
                };
                prop_assert!((ofi.normalised(now).to_num::<f64>() - expect).abs() < 1e-6);
            }
        }
    }
}
