//! The book's sync health of a replay: snapshots loaded, gaps, crossed books, and the time
//! the trader stood aside for want of a book — a line for the console report, and whether
//! the run describes the strategy at all (`not_representative`, used by the backtest's exit
//! code and the scoreboard's rows).
//!
//! Owns: the wording; the threshold above which a replay is not representative is the
//! pure replay's (`replay::OUT_OF_SYNC_SHARE_MAX`). Cold path: formats text; never called
//! from the hot loop.

use crate::engine::EngineStats;
use crate::replay::OUT_OF_SYNC_SHARE_MAX;

/// One line: `book: 3 snapshots loaded, 0 gaps, 2 crossed (book restarted each time);
/// out of sync 0.21 s of 1952.1 s (0.01 %)`.
pub fn line(stats: &EngineStats) -> String {
    let total_ns = stats.in_sync_ns.saturating_add(stats.out_of_sync_ns);
    let crossed = if stats.crossed == 0 {
        "0 crossed".to_string()
    } else {
        format!(
            "{} crossed (book restarted from the next snapshot each time)",
            stats.crossed
        )
    };
    format!(
        "book: {} snapshots loaded, {} gaps, {} too old, {crossed}; out of sync {:.2} s of \
         {:.1} s ({:.2} %)",
        stats.snapshots,
        stats.gaps,
        stats.snapshots_too_old,
        stats.out_of_sync_ns as f64 / 1e9,
        total_ns as f64 / 1e9,
        100.0 * stats.out_of_sync_share()
    )
}

/// `Some(reason)` when the book was out of sync for more than `OUT_OF_SYNC_SHARE_MAX` of
/// the time: what happened and what to do.
pub fn not_representative(stats: &EngineStats) -> Option<String> {
    let share = stats.out_of_sync_share();
    if share <= OUT_OF_SYNC_SHARE_MAX {
        return None;
    }
    let why = if stats.snapshots == 0 {
        "no REST depth snapshot was loaded, so the L2 book never synced"
    } else if stats.gaps + stats.snapshots_too_old + stats.crossed > 0 {
        "the book lost sync (a gap in the depth update ids, a snapshot older than the \
         diffs, or a crossed book) and no later snapshot in the data restored it"
    } else {
        "the depth diffs never bracketed the snapshot"
    };
    Some(format!(
        "the L2 book was out of sync {:.1} % of the time (more than {:.0} %): {why}; the \
         trader stood aside meanwhile, so these results do not describe the strategy. Fix: \
         replay data recorded with a REST snapshot at the start of every session (mm's own \
         journals have one), or start later with --from",
        100.0 * share,
        100.0 * OUT_OF_SYNC_SHARE_MAX
    ))
}
