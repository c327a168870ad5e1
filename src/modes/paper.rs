//! `--mode=paper-trading`: live market data, simulated fills, KPIs and latency audits.
//!
//! Wiring only: a trading session (`crate::session`) whose hot side is
//! `session::paper::PaperSink` — the `Trader` (engine + order manager + risk) against the
//! in-process `SimVenue` (the same queue-position rules as the local exchange). The side
//! thread turns the trader's records into log lines, KPIs, latency histograms, the console
//! report every `kpi.report_every_s` and the KPI snapshot that `--mode=kpi` reads.
//! Ctrl+C, SIGTERM or the end of `--duration`: the trader stops (cancel all), the venue's
//! last reports are drained, and the final report is printed.

use std::path::PathBuf;

use crate::assemble::build_trader;
use crate::config::{Config, LogLevel};
use crate::hot::LoopEnd;
use crate::session::paper::PaperSink;
use crate::session::{market_data, NoNotes, Reports, Session};
use crate::shutdown::Shutdown;
use crate::telemetry::kpi::KpiSnapshot;
use crate::telemetry::log::LogHandle;
use crate::time::wall_now_ns;

/// Depth of the notes channel: the simulated venue has no notes.
const NOTES_CHANNEL_DEPTH: usize = 1;

/// Flags of the mode.
#[derive(Clone, Debug, Default)]
pub struct PaperArgs {
    /// Stop after this long, ns.
    pub duration_ns: Option<u64>,
    /// Where the KPI snapshot goes (default `kpi/<SYMBOL>.json`).
    pub snapshot_path: Option<PathBuf>,
}

/// What a paper session produced.
#[derive(Clone, Debug)]
pub struct PaperSummary {
    /// Why it stopped.
    pub end: LoopEnd,
    /// The final KPIs.
    pub kpi: KpiSnapshot,
    /// The KPI snapshot file.
    pub snapshot_path: PathBuf,
    /// Latency files written (interval log first, then .hgrm tables).
    pub latency_files: Vec<PathBuf>,
    /// Records the hot thread could not hand over.
    pub records_dropped: u64,
}

/// Runs paper trading until a signal or the deadline.
pub fn run(
    config: &Config,
    args: &PaperArgs,
    log: &LogHandle,
    shutdown: &Shutdown,
) -> anyhow::Result<PaperSummary> {
    let symbol = config.spec.symbol;
    let market = market_data(config)?;
    let url = market.url.clone();
    let start_wall_ns = wall_now_ns();
    let reports = Reports::new(
        "paper-trading",
        "Real-time",
        symbol.as_str(),
        args.snapshot_path.clone(),
        start_wall_ns,
    );
    log.info(format_args!(
        "paper-trading: {symbol} from {url}; simulated venue; KPI snapshot {}; latency log {}",
        reports.snapshot_path.display(),
        reports.latency_path.display()
    ));
    crate::outln!("paper trading {symbol} from {url} (simulated fills); Ctrl+C stops and prints the final report");

    let (session, out) = Session::start::<NoNotes>(
        config,
        &reports,
        market,
        NOTES_CHANNEL_DEPTH,
        args.duration_ns,
        log,
    )?;
    let mut sink = PaperSink::new(config, build_trader(config)?, out)?;
    let result = session.run(&mut sink, shutdown);
    let (outcome, out) = sink.finish(wall_now_ns());
    let (kpi, latency_files) = session.finish(out)?;
    let (end, stats) = result?;
    let level = if stats.decode_errors > 0 {
        LogLevel::Warn
    } else {
        LogLevel::Info
    };
    log.log(
        level,
        format_args!(
            "paper-trading: stopped ({}) — {} frames, {} refused by the decoder, {} quotes, {} \
             gaps, {} open orders left, {} records dropped, {} warm-ups of the hot path",
            end.describe(),
            stats.frames,
            stats.decode_errors,
            stats.engine.quotes,
            stats.engine.gaps,
            outcome.open_orders_left,
            outcome.records_dropped,
            stats.warm_ups
        ),
    );
    crate::outln!(
        "market data: {} frames, {} refused by the decoder, {} depth gaps",
        stats.frames,
        stats.decode_errors,
        stats.engine.gaps
    );
    // A session that never saw its symbol's market data did nothing: say so, exit 1.
    anyhow::ensure!(
        stats.engine.events > 0,
        "paper-trading: no {} market data arrived in the session ({} frames, {} refused by \
         the decoder): check --symbol / market.symbol and --endpoint",
        config.spec.symbol,
        stats.frames,
        stats.decode_errors
    );
    Ok(PaperSummary {
        end,
        kpi,
        snapshot_path: reports.snapshot_path,
        latency_files,
        records_dropped: outcome.records_dropped,
    })
}
