//! The pure replay (`--mode=replay`): the data walked once through the engine's own L2 book
//! (`SyncedBook`, Binance's snapshot + diff procedure), without the strategy, for timing and
//! for data checks: messages by kind, data time, rate, and how the book fared (snapshots
//! loaded, gaps, crossed books, data time in sync).
//!
//! Never: trades, writes files, or calls a run usable that had no market event or never
//! had a synced book (`ReplayCheck::unusable` says why, the mode exits 1).

use crate::book::{SyncState, SyncedBook};
use crate::feed::Event;

use super::stream::{EventCursor, EventSource};
use super::ReplayError;

/// Above this share of the data time with the L2 book out of sync, a replay describes the
/// data rather than a strategy (a trader stands aside meanwhile): the pure replay exits 1,
/// the backtest says so and exits 1, the scoreboard marks the fold.
pub const OUT_OF_SYNC_SHARE_MAX: f64 = 0.05;

/// What a pure replay saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplayCheck {
    /// Events replayed.
    pub events: u64,
    /// Depth diffs.
    pub depth_diffs: u64,
    /// bookTicker events.
    pub book_tickers: u64,
    /// Trades.
    pub trades: u64,
    /// REST snapshots in the data.
    pub snapshots: u64,
    /// Snapshots the book loaded.
    pub snapshots_loaded: u64,
    /// Diffs that did not chain (a gap, or a snapshot older than the diffs).
    pub gaps: u64,
    /// Diffs after which the book was crossed (best bid ≥ best ask).
    pub crossed: u64,
    /// First and last event time, ns.
    pub first_ts_ns: u64,
    /// Last event time, ns.
    pub last_ts_ns: u64,
    /// Data time with the book in sync, ns.
    pub synced_ns: u64,
    /// First time the book was in sync, ns.
    pub first_synced_ns: Option<u64>,
}

impl ReplayCheck {
    /// Data time covered, ns.
    pub fn span_ns(&self) -> u64 {
        self.last_ts_ns.saturating_sub(self.first_ts_ns)
    }

    /// Why the data is not usable for a backtest, if it is not.
    pub fn unusable(&self) -> Option<String> {
        if self.depth_diffs + self.book_tickers + self.trades == 0 {
            return Some("no market event to replay".to_string());
        }
        if self.snapshots == 0 {
            return Some(
                "no REST depth snapshot: the L2 book never syncs, so the engine never quotes"
                    .to_string(),
            );
        }
        if self.first_synced_ns.is_none() {
            return Some(format!(
                "the book never synced: {} snapshots, {} loaded, {} gaps",
                self.snapshots, self.snapshots_loaded, self.gaps
            ));
        }
        let out_of_sync = 1.0 - self.synced_ns as f64 / self.span_ns().max(1) as f64;
        if out_of_sync > OUT_OF_SYNC_SHARE_MAX {
            return Some(format!(
                "the book was out of sync {:.1} % of the data time (more than 5 %): {} gaps,                  {} snapshots loaded of {} — a backtest would stand aside that long",
                100.0 * out_of_sync,
                self.gaps,
                self.snapshots_loaded,
                self.snapshots
            ));
        }
        None
    }
}

/// Walks every event of `source` through a `SyncedBook` of `book_levels` levels per side.
pub fn check<S: EventSource + ?Sized>(
    source: &S,
    book_levels: usize,
) -> Result<ReplayCheck, ReplayError> {
    let mut book = SyncedBook::new(book_levels);
    let mut out = ReplayCheck::default();
    let mut cursor = source.cursor()?;
    let mut synced_since: Option<u64> = None;
    while let Some((event, levels)) = cursor.next_event()? {
        let t = event.local_ts_ns;
        if out.events == 0 {
            out.first_ts_ns = t;
        }
        out.events += 1;
        out.last_ts_ns = t;
        match &event.event {
            Event::Depth(d) => {
                out.depth_diffs += 1;
                if book.on_diff(d, levels).is_err() {
                    out.gaps += 1;
                }
            }
            Event::Snapshot(s) => {
                out.snapshots += 1;
                if book.on_snapshot(s, levels).is_ok() {
                    out.snapshots_loaded += 1;
                }
            }
            Event::BookTicker(_) => out.book_tickers += 1,
            Event::Trade(_) => out.trades += 1,
        }
        let live = matches!(book.state(), SyncState::Live { .. });
        match (live, synced_since) {
            (true, None) => {
                synced_since = Some(t);
                out.first_synced_ns.get_or_insert(t);
            }
            (false, Some(since)) => {
                out.synced_ns += t.saturating_sub(since);
                synced_since = None;
            }
            _ => {}
        }
    }
    if let Some(since) = synced_since {
        out.synced_ns += out.last_ts_ns.saturating_sub(since);
    }
    out.crossed = book.stats().crossed;
    Ok(out)
}
