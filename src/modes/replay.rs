//! `--mode=replay`: a pure replay, no trading — the data decoded (streamed, on a second
//! thread) and walked through the engine's L2 book, for timing and for data checks. Prints
//! messages by kind, the data's time span, the rate, and the book's sync figures; exits 1
//! when the data has nothing a backtest could use (no market event, no snapshot, a book
//! that never syncs).
//!
//! Wiring only: `replay::TapeStream` reads, `replay::check` walks.

use std::io::Write;

use crate::config::Config;
use crate::replay::{self, TapeStream};
use crate::time::{Clock, SystemClock};

/// Flags of the mode.
#[derive(Clone, Debug, Default)]
pub struct ReplayArgs {
    /// `--data` arguments; empty = the built-in slice.
    pub data: Vec<String>,
    /// Replay only this much data from its start, ns (`--duration`, `--to`).
    pub span_ns: Option<u64>,
}

/// Runs the mode; `Err` (exit 1) when the data is not usable.
pub fn run(config: &Config, args: &ReplayArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let wall = SystemClock::new();
    let start = wall.mono_ns();
    let stream =
        TapeStream::open_unsurveyed(&args.data, config.spec, args.span_ns.unwrap_or(u64::MAX))?;
    let check = replay::check(&stream, config.market_data.book_levels)?;
    let wall_ns = wall.mono_ns().saturating_sub(start).max(1);
    let span_ns = check.span_ns();
    let utc = |ns: u64| {
        chrono::DateTime::from_timestamp((ns / 1_000_000_000) as i64, (ns % 1_000_000_000) as u32)
            .map_or_else(
                || ns.to_string(),
                |t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
            )
    };
    writeln!(
        out,
        "replay: {} ({} events: {} depth, {} bookTicker, {} trades, {} snapshots)",
        replay::TapeInfo::sources(&stream).join(", "),
        check.events,
        check.depth_diffs,
        check.book_tickers,
        check.trades,
        check.snapshots
    )?;
    writeln!(
        out,
        "data time: {} → {} UTC ({:.1} s); decoded and replayed in {:.3} s: {:.2} M events/s, \
         {:.3} µs/event, {:.0}× real time",
        utc(check.first_ts_ns),
        utc(check.last_ts_ns),
        span_ns as f64 / 1e9,
        wall_ns as f64 / 1e9,
        check.events as f64 / (wall_ns as f64 / 1e9) / 1e6,
        wall_ns as f64 / 1e3 / check.events.max(1) as f64,
        span_ns as f64 / wall_ns as f64
    )?;
    writeln!(
        out,
        "book: {} of {} snapshots loaded, {} gaps, {} crossed after a diff, in sync {:.1} % of \
         the data time{}",
        check.snapshots_loaded,
        check.snapshots,
        check.gaps,
        check.crossed,
        check.synced_ns as f64 * 100.0 / span_ns.max(1) as f64,
        check.first_synced_ns.map_or_else(String::new, |t| format!(
            " (first synced at {} UTC)",
            utc(t)
        ))
    )?;
    if let Some(why) = check.unusable() {
        anyhow::bail!("the data is not usable for a backtest: {why}");
    }
    Ok(())
}
