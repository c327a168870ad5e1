//! `--mode=live`: real orders on Binance spot. A trading session (`crate::session`: the
//! same `Trader` as paper trading and backtests, the side thread, the reports) against
//! `venue::binance::BinanceVenue`, driven by `live::LiveSink`.
//!
//! Wiring only: the start-up gates, the exchange's rules, the order entry, the
//! reconciliation, the audits and the wind-down live in `crate::live`. In order: the gates
//! (no network yet), the exchange's rules (one REST GET), the banner, the session's threads,
//! the hot loop (reconciliation first: nothing is sent before it), the wind-down, the final
//! report.

use std::path::PathBuf;

use crate::assemble::build_trader;
use crate::config::Config;
use crate::hot::LoopEnd;
use crate::live::{self, order_entry, LiveNote, LiveSink, Unverified, NOTES_CHANNEL_DEPTH};
use crate::session::{market_data, Reports, Session, SideUnfinished};
use crate::shutdown::Shutdown;
use crate::telemetry::kpi::KpiSnapshot;
use crate::telemetry::log::LogHandle;
use crate::time::wall_now_ns;
use crate::types::SymbolSpec;

/// Flags of the mode.
#[derive(Clone, Debug, Default)]
pub struct LiveArgs {
    /// Stop after this long, ns.
    pub duration_ns: Option<u64>,
    /// `--i-understand-live-trading` was given.
    pub confirmed: bool,
}

/// What a live session produced.
#[derive(Clone, Debug)]
pub struct LiveSummary {
    /// Why it stopped.
    pub end: LoopEnd,
    /// The final KPIs (`None`: the side thread did not finish, see `side_unfinished`).
    pub kpi: Option<KpiSnapshot>,
    /// The KPI snapshot file.
    pub snapshot_path: PathBuf,
    /// Latency files written.
    pub latency_files: Vec<PathBuf>,
    /// Orders the engine still counted as open at exit.
    pub open_orders_local: u32,
    /// Our open orders per the exchange's last answer (`None`: never confirmed).
    pub open_orders_exchange: Option<u32>,
    /// The exchange confirmed nothing of ours is open (or the session never traded).
    pub clean: bool,
    /// What the wind-down could not verify before `live.shutdown_wait_s` (`None`: it
    /// confirmed, or it never ran).
    pub unverified: Option<Unverified>,
    /// The session reconciled at least once (and so may have placed orders).
    pub traded: bool,
    /// Inventory at exit, lots (base balance − target, per fills since the last
    /// reconciliation).
    pub inventory_lots: i64,
    /// The symbol's grid.
    pub spec: SymbolSpec,
    /// The side thread did not finish by the stop's deadline (the report, the KPI snapshot
    /// and the latency files may be incomplete; it may hold stdout: print on stderr).
    pub side_unfinished: Option<SideUnfinished>,
}

/// The start-up gates (keys, confirmation, base target) without touching the network:
/// `main` runs them before anything else, so a refusal is one line and exit status 2.
pub fn preflight(config: &Config, confirmed: bool) -> anyhow::Result<()> {
    live::gates(config, confirmed).map(|_| ())
}

/// Runs live trading until a signal, the deadline, or a fatal condition.
pub fn run(
    config: &Config,
    args: &LiveArgs,
    log: &LogHandle,
    shutdown: &Shutdown,
) -> anyhow::Result<LiveSummary> {
    let (creds, base_target_atoms) = live::gates(config, args.confirmed)?;
    let symbol = config.spec.symbol;
    let market = market_data(config)?;

    let rules = live::fetch_rules(config, &market.roots)?;
    let assets = order_entry::assets(&rules)?;
    let start_wall_ns = wall_now_ns();
    let tag = order_entry::session_tag(start_wall_ns);
    let banner = order_entry::banner(config, &rules, &creds, &market.url, tag, base_target_atoms);
    crate::outln!("{banner}");
    log.info(format_args!("{banner}"));
    let venue = order_entry::order_venue(config, &market.roots, assets, tag, creds, start_wall_ns)?;

    let reports = Reports::new("live", "Live", symbol.as_str(), None, start_wall_ns);
    let (session, out) = Session::start::<LiveNote>(
        config,
        &reports,
        market,
        NOTES_CHANNEL_DEPTH,
        args.duration_ns,
        log,
    )?;
    let trader = build_trader(config)?;
    let mut sink = LiveSink::new(config, trader, venue, out, base_target_atoms, start_wall_ns);
    let result = session.run(&mut sink, shutdown);
    let (outcome, out) = sink.finish();
    // A side thread left behind is said with the orders' outcome, not instead of it.
    let (kpi, latency_files, side_unfinished) = match session.finish(out) {
        Ok((kpi, files)) => (Some(kpi), files, None),
        Err(e) => match e.downcast::<SideUnfinished>() {
            Ok(unfinished) => (None, Vec::new(), Some(unfinished)),
            Err(e) => return Err(e),
        },
    };
    let (end, loop_stats) = result?;
    log.info(format_args!(
        "live: stopped ({}) — {} frames, {} refused by the decoder, {} quotes, {} requests, \
         {} executions; open orders {} per the engine, {} per the exchange; {} records \
         dropped; {} warm-ups of the hot path",
        end.describe(),
        loop_stats.frames,
        loop_stats.decode_errors,
        loop_stats.engine.quotes,
        outcome.stats.requests_sent,
        outcome.stats.executions,
        outcome.open_orders_local,
        outcome
            .open_orders_exchange
            .map_or_else(|| "unconfirmed".to_string(), |n| n.to_string()),
        outcome.dropped,
        loop_stats.warm_ups,
    ));
    let market_line = format!(
        "market data: {} frames, {} refused by the decoder, {} depth gaps",
        loop_stats.frames, loop_stats.decode_errors, loop_stats.engine.gaps
    );
    // The side thread left behind may hold stdout (a write nobody reads): stderr then.
    if side_unfinished.is_some() {
        crate::errln!("{market_line}");
    } else {
        crate::outln!("{market_line}");
    }
    Ok(LiveSummary {
        end,
        kpi,
        snapshot_path: reports.snapshot_path,
        latency_files,
        open_orders_local: outcome.open_orders_local,
        open_orders_exchange: outcome.open_orders_exchange,
        clean: outcome.clean,
        unverified: outcome.unverified,
        traded: outcome.traded,
        inventory_lots: outcome.inventory_lots,
        spec: config.spec,
        side_unfinished,
    })
}
