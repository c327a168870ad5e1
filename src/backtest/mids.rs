//! `MidKeeper`: the mid changes a backtest keeps for its report — only those near a fill
//! (or the first quote), so that memory follows the number of fills, not the length of the
//! data (a month of BTCUSDT changes its mid ~26 M times).
//!
//! What the report reads from them, and why that is enough: the mid prevailing at a fill,
//! at a fill plus a markout horizon (≤ `keep_after_ns`), and every change in the zoom window
//! of the quotes plot, which opens at most `MID_KEEP_BEFORE_NS` before a fill (or at the
//! first quote) and lasts at most `keep_after_ns`. A change is kept when it falls within
//! `keep_after_ns` after a fill; the changes of the last `MID_KEEP_BEFORE_NS` (plus the one
//! prevailing at its start) wait in a ring and are kept when a fill arrives.
//!
//! Never: drops a change a report lookup inside those windows needs, or reorders them.

use std::collections::VecDeque;

use crate::backtest::score::mid_at;

/// How far before a fill (or the first quote) the mid changes are kept, ns: the whole
/// zoom window of the quotes plot (it opens `ZOOM_NS / 6` before its first fill).
pub const MID_KEEP_BEFORE_NS: u64 = 60_000_000_000;

/// The longest markout horizon a report looks up besides the configured one, ns (the
/// markout plot's last horizon, `report::backtest::MARKOUT_HORIZONS_S`).
pub const MARKOUT_HORIZON_MAX_NS: u64 = 60_000_000_000;

/// The mid changes kept for the report: `(ts_ns, bid + ask in ticks)`, in time order.
#[derive(Debug)]
pub struct MidKeeper {
    kept: Vec<(u64, i64)>,
    recent: VecDeque<(u64, i64)>,
    keep_after_ns: u64,
    /// Changes up to this time are kept (a fill's horizon); 0 = none yet.
    keep_until_ns: u64,
    last_ts_ns: Option<u64>,
    seen: u64,
}

impl MidKeeper {
    /// Keeps the changes within `keep_after_ns` after each fill (at least
    /// `MID_KEEP_BEFORE_NS`: the plot's window) and `MID_KEEP_BEFORE_NS` before it.
    pub fn new(keep_after_ns: u64) -> MidKeeper {
        MidKeeper {
            kept: Vec::with_capacity(4096),
            recent: VecDeque::with_capacity(4096),
            keep_after_ns: keep_after_ns.max(MID_KEEP_BEFORE_NS),
            keep_until_ns: 0,
            last_ts_ns: None,
            seen: 0,
        }
    }

    /// A mid change at `ts_ns` (time order).
    #[inline]
    pub fn on_mid(&mut self, ts_ns: u64, mid_x2_ticks: i64) {
        self.seen += 1;
        self.last_ts_ns = Some(ts_ns);
        if self.keep_until_ns != 0 && ts_ns <= self.keep_until_ns {
            self.kept.push((ts_ns, mid_x2_ticks));
            return;
        }
        self.recent.push_back((ts_ns, mid_x2_ticks));
        // Drop the oldest while the next one still prevails at the ring's start.
        let start = ts_ns.saturating_sub(MID_KEEP_BEFORE_NS);
        while self.recent.len() > 1 && self.recent[1].0 <= start {
            self.recent.pop_front();
        }
    }

    /// A fill (or the first quote) at `ts_ns`: keep what came before it in the window and
    /// what comes in `keep_after_ns` after it.
    #[inline]
    pub fn on_interest(&mut self, ts_ns: u64) {
        self.kept.extend(self.recent.drain(..));
        self.keep_until_ns = self
            .keep_until_ns
            .max(ts_ns.saturating_add(self.keep_after_ns));
    }

    /// The kept changes, in time order.
    pub fn kept(&self) -> &[(u64, i64)] {
        &self.kept
    }

    /// Time of the last change seen (kept or not).
    pub fn last_ts_ns(&self) -> Option<u64> {
        self.last_ts_ns
    }

    /// Changes seen in all (kept or not).
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// The kept mids and the last change's time, for `Replayed`.
    pub fn finish(self) -> (Vec<(u64, i64)>, Option<u64>) {
        (self.kept, self.last_ts_ns)
    }

    /// The mid prevailing at `ts_ns` among the kept changes (exact inside a kept window).
    pub fn mid_at(&self, ts_ns: u64) -> Option<i64> {
        mid_at(&self.kept, ts_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    /// Every lookup the report makes near a fill gives what the full series gives.
    #[test]
    fn lookups_near_fills_match_the_full_series() {
        // A change every 0.3 s for an hour, fills at 600 s, 601 s and 3000 s.
        let all: Vec<(u64, i64)> = (0..12_000u64)
            .map(|i| (i * 3 * S / 10, 100_000 + (i as i64 * 7919) % 113))
            .collect();
        let fills = [600 * S, 601 * S, 3000 * S];
        let mut keeper = MidKeeper::new(60 * S);
        let mut next_fill = 0;
        for &(ts, mid) in &all {
            while next_fill < fills.len() && fills[next_fill] <= ts {
                keeper.on_interest(fills[next_fill]);
                next_fill += 1;
            }
            keeper.on_mid(ts, mid);
        }
        assert_eq!(keeper.seen(), all.len() as u64);
        assert_eq!(keeper.last_ts_ns(), all.last().map(|m| m.0));
        // Kept: about 2 × 60 s around each fill cluster, not the hour.
        assert!(keeper.kept().len() < 900, "{}", keeper.kept().len());
        assert!(keeper.kept().windows(2).all(|w| w[0].0 < w[1].0));
        for &fill in &fills {
            let from = fill - MID_KEEP_BEFORE_NS;
            for at in (from..=fill + 60 * S).step_by((S / 7) as usize) {
                assert_eq!(keeper.mid_at(at), mid_at(&all, at), "at {at}");
            }
        }
        // Far from any fill nothing is promised: the hour's middle is not kept.
        assert!(keeper
            .kept()
            .iter()
            .all(|m| m.0 < 700 * S || m.0 > 2900 * S));
    }
}
