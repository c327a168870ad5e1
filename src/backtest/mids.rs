//! `MidKeeper`: the mid changes a backtest keeps for its report — only those a report
//! lookup needs, so that memory follows the number of fills, not the length of the data
//! (a month of BTCUSDT changes its mid ~26 M times).
//!
//! The report looks the mid up (`score::mid_at`: the last change at or before a time) at
//! each fill, at each fill plus a markout horizon (the configured one and
//! `report::backtest::MARKOUT_HORIZONS_S`), and reads every change of one `ZOOM_NS` window
//! for the quotes plot: the window of the first fill that has the most fills in the
//! `ZOOM_NS` after it (opening `ZOOM_NS / 6` before that fill, or at the data's start),
//! or the one opening at the first quote. Any subset of the real changes that holds, for
//! every lookup time, the change prevailing then answers every lookup exactly, so the
//! keeper keeps:
//! - for each fill and each horizon, the change prevailing at that time (resolved when the
//!   next change arrives, or at the end);
//! - the changes of the best zoom window so far, copied from a ring of the last
//!   `RING_NS` of changes when a fill's window closes with more fills than the best.
//!
//! Never: keeps a change that is not in the data, or drops one a lookup above needs.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// Width of the zoomed quotes-vs-mid window of the report, ns.
pub const ZOOM_NS: u64 = 60_000_000_000;

/// Markout horizons of the report's markout plot, seconds.
pub const MARKOUT_HORIZONS_S: [f64; 9] = [0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0];

/// The horizons a backtest's report looks the mid up at after each fill, ns: the markout
/// plot's (converted as the report converts them) and the configured `markout_ns`.
pub fn report_horizons_ns(markout_ns: u64) -> Vec<u64> {
    let mut horizons: Vec<u64> = MARKOUT_HORIZONS_S
        .iter()
        .map(|&h| (h * 1e9) as u64)
        .collect();
    horizons.push(markout_ns);
    horizons
}

/// How much of the recent changes the ring holds: a fill's zoom window opens `ZOOM_NS / 6`
/// before it and is judged `ZOOM_NS` after it.
const RING_NS: u64 = 2 * ZOOM_NS;

/// One change: its place in the data (so that changes with the same time keep their
/// order when the kept sets are merged), time, bid + ask in ticks.
type Change = (u64, u64, i64);

/// The mid changes kept for the report: `(ts_ns, bid + ask in ticks)`, in data order.
#[derive(Debug)]
pub struct MidKeeper {
    /// Changes prevailing at a lookup time, in data order, no duplicates.
    kept: Vec<Change>,
    /// Lookup times not yet passed by a change.
    pending: BinaryHeap<Reverse<u64>>,
    /// Horizons looked up after each fill, ns (0 = the fill itself).
    horizons_ns: Vec<u64>,
    /// The last `RING_NS` of changes (and the one prevailing at its start).
    ring: VecDeque<Change>,
    /// Fills whose zoom window is still open, in time order.
    open_fills: VecDeque<u64>,
    /// The best zoom window's fill count and changes.
    best_count: usize,
    best_window: Vec<Change>,
    /// The first quote's window (used when nothing fills), until it is copied.
    first_quote_ns: Option<u64>,
    first_quote_window: Option<Vec<Change>>,
    last: Option<Change>,
    seen: u64,
}

impl MidKeeper {
    /// Looks up each fill and each fill plus `horizons_ns`.
    pub fn new(horizons_ns: &[u64]) -> MidKeeper {
        let mut horizons: Vec<u64> = horizons_ns.to_vec();
        horizons.push(0);
        horizons.sort_unstable();
        horizons.dedup();
        MidKeeper {
            kept: Vec::with_capacity(4096),
            pending: BinaryHeap::with_capacity(256),
            horizons_ns: horizons,
            ring: VecDeque::with_capacity(4096),
            open_fills: VecDeque::with_capacity(256),
            best_count: 0,
            best_window: Vec::new(),
            first_quote_ns: None,
            first_quote_window: None,
            last: None,
            seen: 0,
        }
    }

    /// A mid change at `ts_ns` (time order).
    #[inline]
    pub fn on_mid(&mut self, ts_ns: u64, mid_x2_ticks: i64) {
        // Lookups strictly before this change see the previous one.
        while let Some(&Reverse(at)) = self.pending.peek() {
            if at >= ts_ns {
                break;
            }
            self.pending.pop();
            self.keep_last();
        }
        self.close_windows(ts_ns);
        let change = (self.seen, ts_ns, mid_x2_ticks);
        self.seen += 1;
        self.last = Some(change);
        self.ring.push_back(change);
        let start = ts_ns.saturating_sub(RING_NS);
        while self.ring.len() > 1 && self.ring[1].1 <= start {
            self.ring.pop_front();
        }
    }

    /// A fill at `ts_ns`: its lookups, and a zoom window opening.
    #[inline]
    pub fn on_fill(&mut self, ts_ns: u64) {
        for &h in &self.horizons_ns {
            self.pending.push(Reverse(ts_ns.saturating_add(h)));
        }
        self.open_fills.push_back(ts_ns);
    }

    /// The first quote at `ts_ns` (the plot's window when nothing fills).
    pub fn on_first_quote(&mut self, ts_ns: u64) {
        if self.first_quote_ns.is_none() {
            self.first_quote_ns = Some(ts_ns);
        }
    }

    /// Changes seen in all (kept or not).
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// The kept changes (sorted, real ones only) and the last change's time.
    pub fn finish(mut self) -> (Vec<(u64, i64)>, Option<u64>) {
        // Lookups at or after the last change see it.
        while self.pending.pop().is_some() {
            self.keep_last();
        }
        self.close_windows(u64::MAX);
        let mut all = self.kept;
        all.extend(self.best_window);
        all.extend(self.first_quote_window.unwrap_or_default());
        all.sort_unstable_by_key(|m| m.0);
        all.dedup_by_key(|m| m.0);
        let kept = all.into_iter().map(|(_, ts, mid)| (ts, mid)).collect();
        (kept, self.last.map(|m| m.1))
    }

    fn keep_last(&mut self) {
        if let Some(last) = self.last {
            if self.kept.last() != Some(&last) {
                self.kept.push(last);
            }
        }
    }

    /// Judges the zoom windows that closed before `now_ns` (all with `u64::MAX`).
    fn close_windows(&mut self, now_ns: u64) {
        if let Some(q) = self.first_quote_ns {
            if self.first_quote_window.is_none() && q.saturating_add(ZOOM_NS) < now_ns {
                self.first_quote_window = Some(self.window(q, q.saturating_add(ZOOM_NS)));
            }
        }
        while let Some(&first) = self.open_fills.front() {
            let end = first.saturating_add(ZOOM_NS);
            if end >= now_ns && now_ns != u64::MAX {
                break;
            }
            // Fills in [first, first + ZOOM_NS): the first window with the most wins.
            let count = self.open_fills.partition_point(|&f| f < end);
            if count > self.best_count {
                self.best_count = count;
                // The plot opens ZOOM_NS / 6 before the fill, or at the data's start
                // (then it reaches up to ZOOM_NS after the fill).
                let from = first.saturating_sub(ZOOM_NS / 6);
                self.best_window = self.window(from, end);
            }
            self.open_fills.pop_front();
        }
    }

    /// The ring's changes in [from, to], with the one prevailing at `from`.
    fn window(&self, from: u64, to: u64) -> Vec<Change> {
        let first = self.ring.partition_point(|m| m.1 <= from).saturating_sub(1);
        self.ring
            .iter()
            .skip(first)
            .take_while(|m| m.1 <= to)
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backtest::score::mid_at;

    const S: u64 = 1_000_000_000;

    /// Every lookup the report makes gives what the full series gives, and far fewer
    /// changes are kept than seen.
    #[test]
    fn lookups_match_the_full_series() {
        // A change every 0.3 s for two hours; fills scattered, densest around 3000 s.
        let all: Vec<(u64, i64)> = (0..24_000u64)
            .map(|i| (i * 3 * S / 10, 100_000 + (i as i64 * 7919) % 113))
            .collect();
        let mut fills: Vec<u64> = vec![600 * S, 601 * S + 7, 1_800 * S];
        fills.extend((0..9).map(|k| 3_000 * S + k * 5 * S + 3));
        fills.push(7_199 * S);
        let horizons = [S / 10, S, 60 * S];
        let mut keeper = MidKeeper::new(&horizons);
        keeper.on_first_quote(500 * S);
        let mut next_fill = 0;
        for &(ts, mid) in &all {
            while next_fill < fills.len() && fills[next_fill] <= ts {
                keeper.on_fill(fills[next_fill]);
                next_fill += 1;
            }
            keeper.on_mid(ts, mid);
        }
        assert_eq!(keeper.seen(), all.len() as u64);
        let (kept, last) = keeper.finish();
        assert_eq!(last, all.last().map(|m| m.0));
        assert!(kept.len() < 2_000, "{}", kept.len());
        assert!(kept.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(kept.iter().all(|m| all.contains(m)));
        for &fill in &fills {
            for h in [0, S / 10, S, 60 * S] {
                let at = fill + h;
                assert_eq!(mid_at(&kept, at), mid_at(&all, at), "fill {fill} + {h}");
            }
        }
        // The zoom window: opens 10 s before the first of the nine dense fills.
        let from = 3_000 * S + 3 - ZOOM_NS / 6;
        let in_window = |m: &&(u64, i64)| m.0 > from && m.0 <= from + ZOOM_NS;
        assert!(kept
            .iter()
            .filter(in_window)
            .eq(all.iter().filter(in_window)));
        assert_eq!(mid_at(&kept, from), mid_at(&all, from));
        // And the first quote's window.
        let quoted = |m: &&(u64, i64)| m.0 > 500 * S && m.0 <= 560 * S;
        assert!(kept.iter().filter(quoted).eq(all.iter().filter(quoted)));
    }
}
