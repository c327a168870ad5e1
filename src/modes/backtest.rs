//! `--mode=backtest`: replay recorded market data through the same `Trader` as paper and
//! live trading (book, OFI, σ, quoter, order manager, risk) against the simulated venue,
//! on a simulated clock taken from the data's timestamps.
//!
//! Wiring only: `replay::Tape` decodes the input once; `simulate` drives the strategy over
//! it; `report` writes the run folder. `--grid` runs every combination of the given values
//! in parallel (rayon) over the same tape, one summary row each.
//!
//! The time axis is the data's receive time. The venue matches our orders against the
//! market as the engine saw it, so to meet the market as it was *at the exchange* an order
//! must arrive one feed latency later: the venue gets entry latency + feed latency, and
//! reports come back ack latency − feed latency after the matching (never below 0), which
//! keeps the round trip at entry + ack. The feed latency comes from the data (median of
//! receive − exchange time) when `[venue] feed_latency = "data"` and the data has both times
//! on what looks like one clock, else from the configuration; the summary says which.
//!
//! Deterministic: the same tape and configuration give the same `summary.json` (all but its
//! `timing` field, which holds wall-clock figures) and the same `fills.csv`, byte for byte.
//! The only clock read is the wall clock around the replay loop, for `timing`.
//!
//! The replay loop allocates nothing per event: the tape is decoded before it starts, and
//! the records it keeps (mids, fills, quote changes, 1 s samples) go into vectors reserved
//! up front (they grow, amortised, only on runs larger than the reservation).

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;
use rayon::prelude::*;

use crate::config::{Config, ConfigError, FeedLatency};
use crate::engine::{Engine, EngineStats, TradeRecord, Trader};
use crate::modes::engine_params;
use crate::orders::{Action, OrderManager, OrderStats, Position, VenueEvent};
use crate::replay::{self, EventCursor, EventSource, ReplayData, Tape, TapeInfo, TapeStream};
use crate::report;
use crate::risk::{Risk, StopReason};
use crate::shutdown::Shutdown;
use crate::telemetry::kpi::{
    FillRecord, KpiParams, KpiSnapshot, KpiTargets, KpiTracker, LatencySource, MidSample,
    OrderCounts, QuoteSample,
};
use crate::telemetry::latency::LatencyKind;
use crate::time::{Clock, SimClock, SystemClock};
use crate::types::{Price, Qty, Side, SymbolSpec};
use crate::venue::sim::{LatencyModel, QueueAtFill, SimParams, SimStats, SimVenue};
use crate::venue::Venue;

/// Interval of the equity/inventory/mid time series, ns.
pub const SAMPLE_NS: u64 = 1_000_000_000;
/// Largest feed latency taken from the data; beyond it (or below 0) the clocks differ.
pub const FEED_FROM_DATA_MAX_NS: i64 = 5_000_000_000;
/// Events between progress updates and Ctrl+C checks.
const PROGRESS_EVERY: usize = 1 << 16;
/// A run with more events than this shows progress even when stderr is not a terminal.
const LONG_RUN_EVENTS: usize = 5_000_000;
/// After the data ends: time allowed for in-flight actions and cancels to be answered, ns.
const DRAIN_NS: u64 = 60_000_000_000;

/// Flags of the mode.
#[derive(Clone, Debug, Default)]
pub struct BacktestArgs {
    /// `--data` arguments (files, folders, globs); empty = the built-in slice.
    pub data: Vec<String>,
    /// Folder the run folders go into (`reports`).
    pub reports_root: PathBuf,
    /// Replay only this much data from its start, ns.
    pub duration_ns: Option<u64>,
    /// `--grid key=v1,v2,..` arguments.
    pub grid: Vec<String>,
    /// `--from`: replay from this long after the data's first event, ns.
    pub from_ns: Option<u64>,
}

/// The feed latency a run used and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedChoice {
    /// Latency, ns.
    pub ns: u64,
    /// Where it came from, in words.
    pub source: String,
}

/// One fill as the engine saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FillRow {
    /// When the engine saw the fill (data time), ns.
    pub ts_ns: u64,
    /// Our order id.
    pub order_id: u64,
    /// Our side.
    pub side: Side,
    /// Execution price, ticks.
    pub price: Price,
    /// Quantity, lots.
    pub qty: Qty,
    /// Fee, quote atoms (negative = rebate).
    pub fee_atoms: i64,
    /// Best bid + best ask when the engine saw the fill, ticks.
    pub mid_x2_ticks: i64,
    /// side·(mid when the order was placed − price), half ticks.
    pub quoted_edge_half_ticks: i64,
    /// Exchange trade id.
    pub trade_id: u64,
}

/// Our working order price on one side changed (None: no order on that side).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuoteMark {
    /// When, ns.
    pub ts_ns: u64,
    /// Which side.
    pub side: Side,
    /// The order's price, or None.
    pub price: Option<Price>,
}

/// One point of the 1 s time series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// When, ns.
    pub ts_ns: u64,
    /// Mark-to-market PnL (cash net of fees + inventory × mid), quote atoms.
    pub pnl_atoms: i64,
    /// Inventory, lots.
    pub inventory_lots: i64,
    /// Best bid + best ask, ticks (0 before the first touch).
    pub mid_x2_ticks: i64,
}

/// Everything one replay produced.
pub struct Replayed {
    /// The symbol's grid.
    pub spec: SymbolSpec,
    /// Fills in time order.
    pub fills: Vec<FillRow>,
    /// Every mid change (ts, bid + ask in ticks).
    pub mids: Vec<(u64, i64)>,
    /// Changes of our working order prices.
    pub quotes: Vec<QuoteMark>,
    /// The 1 s time series.
    pub samples: Vec<Sample>,
    /// Queue position of every fill, as the simulated venue saw it (in fill order).
    pub queue_fills: Vec<QueueAtFill>,
    /// The KPIs at the end.
    pub kpi: KpiSnapshot,
    /// Position, cash and fees at the end.
    pub position: Position,
    /// Order counters.
    pub order_stats: OrderStats,
    /// Engine counters.
    pub engine_stats: EngineStats,
    /// The venue's own accounting.
    pub venue_stats: SimStats,
    /// Times trading stopped or resumed, and why.
    pub stops: Vec<(u64, Option<StopReason>)>,
    /// The feed latency used.
    pub feed: FeedChoice,
    /// The venue parameters after the feed-latency shift.
    pub venue_params: SimParams,
    /// Events replayed.
    pub events: u64,
    /// First and last event time, ns.
    pub start_ns: u64,
    /// Last event time, ns.
    pub end_ns: u64,
    /// Best bid and ask at the end.
    pub final_touch: Option<(Price, Price)>,
    /// Stopped early by Ctrl+C.
    pub interrupted: bool,
    /// Wall time of the replay loop, ns (not deterministic).
    pub loop_wall_ns: u64,
}

/// Runs the mode: loads the data, replays it (or a grid of configurations), writes the
/// report folder and prints the KPI table. `make_config` builds a configuration with extra
/// `--set` flags (for `--grid`). Returns whether every KPI target was met (single run) —
/// the exit status does not depend on it: a backtest that ran is a success.
pub fn run(
    config: &Config,
    args: &BacktestArgs,
    make_config: &(dyn Fn(&[String]) -> Result<Config, ConfigError> + Sync),
    shutdown: &Shutdown,
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    let wall = SystemClock::new();
    let load_start = wall.mono_ns();
    let span_ns = args.duration_ns.unwrap_or(u64::MAX);
    // One replay streams (memory independent of the data's length); a grid replays the
    // decoded tape once per configuration, and `--from` cuts a window of it.
    let tape = match args.from_ns {
        None if args.grid.is_empty() => {
            let keep_delays = matches!(config.venue.feed_latency, FeedLatency::Data { .. });
            ReplayData::Streamed(TapeStream::open(
                &args.data,
                config.spec,
                span_ns,
                keep_delays,
            )?)
        }
        None => {
            let readers = replay::open_sources(&args.data, &config.spec)?;
            ReplayData::Loaded(Tape::load_until(readers, config.spec, span_ns)?)
        }
        Some(from_ns) => {
            let readers = replay::open_sources(&args.data, &config.spec)?;
            // The whole data is decoded: the book at the cut is rebuilt from everything
            // before it and carried over by a synthetic snapshot (`Tape::window`).
            let whole = Tape::load_until(readers, config.spec, u64::MAX)?;
            let start = whole
                .events()
                .first()
                .map_or(0, |e| e.local_ts_ns)
                .saturating_add(from_ns);
            let end = args
                .duration_ns
                .map_or(u64::MAX, |d| start.saturating_add(d));
            ReplayData::Loaded(whole.window(start, end, config.market_data.book_levels)?)
        }
    };
    let load_ns = wall.mono_ns().saturating_sub(load_start);
    let stats = tape.stats();
    writeln!(
        out,
        "data: {} ({} events: {} depth, {} bookTicker, {} trades, {} snapshots; {} skipped) \
         decoded in {:.2} s",
        tape.sources().join(", "),
        stats.events,
        stats.depth_diffs,
        stats.book_tickers,
        stats.trades,
        stats.snapshots,
        stats.skipped_unknown_kind + stats.skipped_other_symbol,
        load_ns as f64 / 1e9
    )?;
    for (file, bytes, zeros) in &stats.torn_tails {
        let why = if *zeros {
            "zero bytes after the last complete record (a power loss)"
        } else {
            "the last record is cut (a crash mid-write)"
        };
        crate::errln!(
            "mm: notice: {file}: torn tail of {bytes} bytes skipped — {why}; every complete \
             record before it is replayed"
        );
    }
    // Snapshots name no symbol: data of another symbol leaves only them.
    let market_events = stats.depth_diffs + stats.book_tickers + stats.trades;
    if market_events == 0 {
        anyhow::bail!(
            "no {} market events to replay in {} ({} frames of other symbols, {} of kinds \
             the engine does not use, {} snapshots); check --symbol",
            config.spec.symbol,
            tape.sources().join(", "),
            stats.skipped_other_symbol,
            stats.skipped_unknown_kind,
            stats.snapshots
        );
    }
    if !args.grid.is_empty() {
        return run_grid(config, args, &tape, make_config, out).map(|_| true);
    }

    let total = tape.stats().events as usize;
    let progress_on = std::io::stderr().is_terminal() || total > LONG_RUN_EVENTS;
    let mut progress = |done: usize| {
        if progress_on {
            crate::errprint!(
                "\rreplay {:>3}% {done}/{total} events",
                done.saturating_mul(100) / total.max(1)
            );
        }
        !shutdown.requested()
    };
    let replayed = simulate(config, &tape, Some(&mut progress))?;
    if progress_on {
        crate::errln!("\rreplay 100% {total}/{total} events");
    }
    let timing = report::Timing {
        load_s: load_ns as f64 / 1e9,
        replay_s: replayed.loop_wall_ns as f64 / 1e9,
        events_per_s: per_second(replayed.events, replayed.loop_wall_ns),
        wall_s: wall.mono_ns().saturating_sub(load_start) as f64 / 1e9,
    };
    let summary = report::Summary::build(config, &tape, &replayed, timing);
    let folder = report::write_run(&args.reports_root, config, &summary, &replayed)?;
    write!(
        out,
        "{}",
        crate::telemetry::report::render_report(&replayed.kpi, "Backtest")
    )?;
    writeln!(out, "{}", report::money_line(&summary))?;
    if let Some(verdict) = edge_verdict(&report::Scorecard::of(&replayed)) {
        writeln!(out, "{verdict}")?;
    }
    writeln!(
        out,
        "replayed {} events in {:.3} s: {:.2} M events/s (replay + strategy loop; decoding \
         took {:.2} s more)",
        replayed.events,
        timing.replay_s,
        timing.events_per_s / 1e6,
        timing.load_s
    )?;
    if replayed.interrupted {
        writeln!(
            out,
            "stopped early by Ctrl+C: the report covers the data replayed so far"
        )?;
    }
    writeln!(out, "report: {}", folder.display())?;
    if replayed.order_stats.orders_placed == 0 && !replayed.interrupted {
        anyhow::bail!(
            "the backtest placed no order: {}",
            crate::modes::scoreboard::no_trading_reason(&tape, &replayed)
        );
    }
    Ok(replayed.kpi.all_met())
}

/// What to tell the trader when the spread did not pay for the fee tier: the spread earned
/// before fees, the fees, and where to look. `None` when the spread part (net of fees) is
/// positive or nothing filled.
pub fn edge_verdict(card: &report::Scorecard) -> Option<String> {
    if card.fills == 0 || card.spread_pnl_atoms > 0 {
        return None;
    }
    let before_fees = card.spread_pnl_quote + card.fees_quote;
    Some(format!(
        "No edge at this fee tier: the spread earned {before_fees:+.4} before fees and the \
         {} bps maker fee cost {:.4}. The model already quotes the fee on both sides (each \
         half-spread ≥ fee), so what is missing is edge over adverse selection: at this tier \
         the strategy should stand aside — `mm --mode=scoreboard` chooses on earlier data and \
         does, fold by fold.",
        card.maker_fee_bps, card.fees_quote
    ))
}

/// Replays `tape` with `config`. `progress` is called every `PROGRESS_EVERY` events with
/// the number done; returning false stops the replay early (Ctrl+C).
pub fn simulate<S: EventSource + ?Sized>(
    config: &Config,
    tape: &S,
    mut progress: Option<&mut dyn FnMut(usize) -> bool>,
) -> anyhow::Result<Replayed> {
    let spec = config.spec;
    let feed = feed_choice(config, tape);
    let venue_params = shift_for_feed(config.venue.sim, feed.ns);
    let engine = Engine::new(engine_params(config)?);
    let orders = OrderManager::new(config.orders, spec)
        .map_err(|e| anyhow::anyhow!("order parameters: {e}"))?;
    let risk = Risk::new(config.risk, spec).map_err(|e| anyhow::anyhow!("risk limits: {e}"))?;
    let mut trader = Trader::new(engine, orders, risk);
    let mut venue =
        SimVenue::new(venue_params, spec).map_err(|e| anyhow::anyhow!("venue parameters: {e}"))?;

    let mut cursor = tape.cursor()?;
    let start_ns = cursor.peek_ts_ns()?.unwrap_or(0);
    let end_ns = tape.stats().last_ts_ns;
    let mut kpi_params = KpiParams::new(spec, "backtest", config.quoting.inventory_max_lots);
    kpi_params.quote_size_lots = config.quoting.quote_size_lots;
    kpi_params.maker_fee_bps = Some(venue_params.maker_fee_centibps as f64 / 100.0);
    kpi_params.latency_source = LatencySource::Charged;
    kpi_params.markout_ns = (config.kpi.markout_horizon_s * 1e9).round() as u64;
    kpi_params.targets = KpiTargets {
        spread_captured_min: config.kpi.spread_captured_min,
        rms_inventory_max: config.kpi.rms_inventory_max,
        fill_ratio_min: config.kpi.fill_ratio_min,
        cancel_ratio_max: config.kpi.cancel_ratio_max,
        latency_p99_max_ms: config.kpi.latency_p99_ms_max,
        pnl_min_quote: config.kpi.pnl_min,
    };
    let kpi = KpiTracker::new(kpi_params, start_ns).map_err(|e| anyhow::anyhow!("KPIs: {e}"))?;
    let mut collector = Collector::new(kpi, tape.stats().events as usize, feed.ns);
    let span_s = end_ns.saturating_sub(start_ns) / SAMPLE_NS + 2;
    let mut samples: Vec<Sample> = Vec::with_capacity(usize::try_from(span_s).unwrap_or(0));
    let mut next_sample_ns = start_ns;

    let clock = SimClock::new(start_ns);
    let wall = SystemClock::new();
    let loop_start = wall.mono_ns();
    let mut done = 0usize;
    let mut interrupted = false;
    let mut last_ns = start_ns;
    while let Some((tape_event, levels)) = cursor.next_event()? {
        let t = tape_event.local_ts_ns;
        // Acks and fills due before this event land at their own time.
        let mut last_due = None;
        while let Some(due) = venue.next_due_ns() {
            if due >= t || last_due == Some(due) {
                break;
            }
            last_due = Some(due);
            clock.advance_to(due);
            collector.market_ts_ns = None;
            trader.on_timer(clock.mono_ns(), &mut venue, &mut |r| collector.on(r));
            venue.drain_queue_log(|q| collector.queue_fills.push(q));
        }
        clock.advance_to(t);
        let now = clock.mono_ns();
        while next_sample_ns <= now {
            samples.push(sample(next_sample_ns, &trader, &spec));
            next_sample_ns += SAMPLE_NS;
        }
        collector.market_ts_ns = Some(now);
        let step = trader.on_market(&tape_event.event, levels, now, &mut venue, &mut |r| {
            collector.on(r)
        });
        venue.drain_queue_log(|q| collector.queue_fills.push(q));
        if step.quoted {
            let quote = trader.engine().quote();
            if let (Some(bid), Some(ask)) = (quote.bid, quote.ask) {
                collector.kpi.on_quote(QuoteSample {
                    ts_ns: now,
                    bid: bid.price,
                    ask: ask.price,
                });
            }
        }
        done += 1;
        last_ns = t;
        if done % PROGRESS_EVERY == 0 {
            if let Some(progress) = progress.as_mut() {
                if !progress(done) {
                    interrupted = true;
                    break;
                }
            }
        }
    }
    // The end: cancel everything, then let in-flight actions and reports land.
    collector.market_ts_ns = None;
    trader.stop(last_ns, StopReason::Shutdown, &mut venue, &mut |r| {
        collector.on(r)
    });
    let mut drained_to = last_ns;
    let mut last_due = None;
    while let Some(due) = venue.next_due_ns() {
        if due > last_ns.saturating_add(DRAIN_NS) || last_due == Some(due) {
            break;
        }
        last_due = Some(due);
        drained_to = drained_to.max(due);
        trader.on_timer(due, &mut venue, &mut |r| collector.on(r));
        venue.drain_queue_log(|q| collector.queue_fills.push(q));
    }
    let loop_wall_ns = wall.mono_ns().saturating_sub(loop_start);
    samples.push(sample(
        drained_to.max(next_sample_ns.saturating_sub(SAMPLE_NS)),
        &trader,
        &spec,
    ));

    let order_stats = *trader.order_stats();
    collector.kpi.on_counts(OrderCounts {
        quotes: order_stats.quotes_seen,
        orders_placed: order_stats.orders_placed,
        cancels: order_stats.cancels_sent,
        replaces: order_stats.replaces_sent,
        fills: order_stats.fills,
        orders_with_fill: order_stats.orders_with_fill,
        rejects: order_stats.rejects,
    });
    collector.kpi.finish();
    let kpi = collector.kpi.snapshot(last_ns.max(start_ns));
    let final_touch = trader.engine().touch().map(|t| (t.bid, t.ask));
    Ok(Replayed {
        spec,
        fills: collector.fills,
        mids: collector.mids,
        quotes: collector.quotes,
        samples,
        queue_fills: collector.queue_fills,
        kpi,
        position: *trader.position(),
        order_stats,
        engine_stats: trader.engine().stats(),
        venue_stats: *venue.stats(),
        stops: collector.stops,
        feed,
        venue_params,
        events: done as u64,
        start_ns,
        end_ns: last_ns.max(start_ns),
        final_touch,
        interrupted,
        loop_wall_ns,
    })
}

/// The feed latency for this configuration and data.
pub fn feed_choice<T: TapeInfo + ?Sized>(config: &Config, tape: &T) -> FeedChoice {
    match config.venue.feed_latency {
        FeedLatency::Fixed { ns } => FeedChoice {
            ns,
            source: "config (venue.feed_latency)".to_string(),
        },
        FeedLatency::Data { default_ns } => {
            let stats = tape.stats();
            match stats.feed_delay_ns_median {
                Some(median) if (0..=FEED_FROM_DATA_MAX_NS).contains(&median) => FeedChoice {
                    ns: median as u64,
                    source: format!(
                        "data (median receive − exchange time over {} events)",
                        stats.feed_delay_samples
                    ),
                },
                Some(median) => FeedChoice {
                    ns: default_ns,
                    source: format!(
                        "config (venue.feed_latency_default): the data's receive − exchange \
                         time has median {:.1} ms, so its clocks differ",
                        median as f64 / 1e6
                    ),
                },
                None => FeedChoice {
                    ns: default_ns,
                    source: "config (venue.feed_latency_default): the data has no receive \
                             times with exchange times beside them"
                        .to_string(),
                },
            }
        }
    }
}

/// Entry latency + feed, ack latency − feed (at least 0): see the module doc.
pub fn shift_for_feed(params: SimParams, feed_ns: u64) -> SimParams {
    let plus = |m: LatencyModel| match m {
        LatencyModel::Constant { ns } => LatencyModel::Constant {
            ns: ns.saturating_add(feed_ns),
        },
        LatencyModel::Uniform { min_ns, max_ns } => LatencyModel::Uniform {
            min_ns: min_ns.saturating_add(feed_ns),
            max_ns: max_ns.saturating_add(feed_ns),
        },
        LatencyModel::LogNormal {
            median_ns,
            sigma_milli,
            max_ns,
        } => LatencyModel::LogNormal {
            median_ns: median_ns.saturating_add(feed_ns),
            sigma_milli,
            max_ns: max_ns.saturating_add(feed_ns),
        },
    };
    let minus = |m: LatencyModel| match m {
        LatencyModel::Constant { ns } => LatencyModel::Constant {
            ns: ns.saturating_sub(feed_ns),
        },
        LatencyModel::Uniform { min_ns, max_ns } => LatencyModel::Uniform {
            min_ns: min_ns.saturating_sub(feed_ns),
            max_ns: max_ns.saturating_sub(feed_ns),
        },
        LatencyModel::LogNormal {
            median_ns,
            sigma_milli,
            max_ns,
        } => LatencyModel::LogNormal {
            median_ns: median_ns.saturating_sub(feed_ns),
            sigma_milli,
            max_ns: max_ns.saturating_sub(feed_ns),
        },
    };
    SimParams {
        entry_latency: plus(params.entry_latency),
        ack_latency: minus(params.ack_latency),
        ..params
    }
}

/// Events per second of wall time.
pub fn per_second(events: u64, wall_ns: u64) -> f64 {
    if wall_ns == 0 {
        0.0
    } else {
        events as f64 * 1e9 / wall_ns as f64
    }
}

fn sample(ts_ns: u64, trader: &Trader, spec: &SymbolSpec) -> Sample {
    let position = trader.position();
    let (pnl_atoms, mid_x2_ticks) = match trader.engine().touch() {
        Some(t) => (
            position.mark_to_market_atoms(spec, t.bid, t.ask),
            t.bid.0.saturating_add(t.ask.0),
        ),
        None => (position.cash_atoms, 0),
    };
    Sample {
        ts_ns,
        pnl_atoms,
        inventory_lots: position.inventory.0,
        mid_x2_ticks,
    }
}

/// What the replay keeps of the trader's records.
struct Collector {
    kpi: KpiTracker,
    fills: Vec<FillRow>,
    mids: Vec<(u64, i64)>,
    quotes: Vec<QuoteMark>,
    stops: Vec<(u64, Option<StopReason>)>,
    queue_fills: Vec<QueueAtFill>,
    /// Feed latency, ns: charged before every order (the market event's age at the engine).
    feed_ns: u64,
    /// Our orders not yet finished: side, price, size, filled, when sent, answered.
    orders: HashMap<u64, OrderInfo>,
    /// The order shown on each side (bids, asks), if any.
    shown: [Option<u64>; 2],
    /// Receive time of the market event being handled (None in timers).
    market_ts_ns: Option<u64>,
}

#[derive(Clone, Copy, Debug)]
struct OrderInfo {
    side: Side,
    qty: Qty,
    filled: Qty,
    sent_ns: u64,
    answered: bool,
}

impl Collector {
    fn new(kpi: KpiTracker, events: usize, feed_ns: u64) -> Collector {
        Collector {
            kpi,
            fills: Vec::with_capacity(4096),
            mids: Vec::with_capacity(events),
            quotes: Vec::with_capacity(events / 4 + 16),
            stops: Vec::with_capacity(64),
            queue_fills: Vec::with_capacity(4096),
            feed_ns,
            orders: HashMap::with_capacity(1024),
            shown: [None, None],
            market_ts_ns: None,
        }
    }

    fn on(&mut self, record: TradeRecord) {
        match record {
            TradeRecord::Action { ts_ns, action } => self.on_action(ts_ns, action),
            TradeRecord::Venue {
                ts_ns,
                event,
                mid_x2_ticks,
                quoted_edge_half_ticks,
                ..
            } => self.on_venue(ts_ns, event, mid_x2_ticks, quoted_edge_half_ticks),
            TradeRecord::Mid {
                ts_ns,
                mid_x2_ticks,
            } => {
                self.mids.push((ts_ns, mid_x2_ticks));
                self.kpi.on_mid(MidSample {
                    ts_ns,
                    mid_half_ticks: mid_x2_ticks,
                });
            }
            TradeRecord::Stopped { ts_ns, reason } => self.stops.push((ts_ns, reason)),
            // Live only (balances): a backtest's inventory is its fills'.
            TradeRecord::Inventory { .. } => {}
            // Added by the lead: two-sided quote decisions (for the average quoted spread).
            TradeRecord::Quote { .. } => {}
        }
    }

    fn on_action(&mut self, ts_ns: u64, action: Action) {
        if let Some(event_ns) = self.market_ts_ns {
            // The simulated engine spends no time: receive → request written is 0 unless
            // the action came from a timer (then it is no tick-to-quote at all).
            self.kpi
                .latency_mut()
                .record(LatencyKind::TickToQuote, ts_ns.saturating_sub(event_ns));
        }
        match action {
            Action::Place { id, order }
            | Action::CancelReplace {
                new_id: id, order, ..
            } => {
                self.orders.insert(
                    id.0,
                    OrderInfo {
                        side: order.side(),
                        qty: order.qty(),
                        filled: Qty(0),
                        sent_ns: ts_ns,
                        answered: false,
                    },
                );
                self.shown[side_index(order.side())] = Some(id.0);
                self.quotes.push(QuoteMark {
                    ts_ns,
                    side: order.side(),
                    price: Some(order.price()),
                });
            }
            Action::Cancel { id } => {
                if let Some(info) = self.orders.get(&id.0) {
                    let side = info.side;
                    self.hide(ts_ns, side, id.0);
                }
            }
            Action::CancelAll => {
                for side in [Side::Buy, Side::Sell] {
                    if let Some(id) = self.shown[side_index(side)] {
                        self.hide(ts_ns, side, id);
                    }
                }
            }
        }
    }

    fn on_venue(&mut self, ts_ns: u64, event: VenueEvent, mid_x2: i64, edge_half_ticks: i64) {
        let id = event.id().0;
        let Some(info) = self.orders.get_mut(&id) else {
            return;
        };
        let mut finished = false;
        match event {
            VenueEvent::Accepted { .. } | VenueEvent::Rejected { .. } if !info.answered => {
                info.answered = true;
                let round_trip = ts_ns.saturating_sub(info.sent_ns);
                finished = matches!(event, VenueEvent::Rejected { .. });
                self.kpi
                    .latency_mut()
                    .record(LatencyKind::OrderRoundTrip, round_trip);
                // Exchange event → the order's answer seen, on the simulated clock: the
                // feed latency, no compute, then the venue's (shifted) entry and report.
                self.kpi
                    .record_charged_latency(self.feed_ns.saturating_add(round_trip));
            }
            VenueEvent::Rejected { .. }
            | VenueEvent::Canceled { .. }
            | VenueEvent::Expired { .. } => {
                finished = true;
            }
            VenueEvent::Fill {
                price,
                qty,
                fee_quote_atoms,
                trade_id,
                ..
            } => {
                info.filled = Qty(info.filled.0.saturating_add(qty.0));
                finished = info.filled >= info.qty;
                let side = info.side;
                self.fills.push(FillRow {
                    ts_ns,
                    order_id: id,
                    side,
                    price,
                    qty,
                    fee_atoms: fee_quote_atoms,
                    mid_x2_ticks: mid_x2,
                    quoted_edge_half_ticks: edge_half_ticks,
                    trade_id,
                });
                self.kpi.on_fill(FillRecord {
                    ts_ns,
                    side,
                    price,
                    qty,
                    fee_quote_atoms,
                    quoted_half_spread_half_ticks: edge_half_ticks,
                    mid_half_ticks: mid_x2,
                    order_id: id,
                });
            }
            VenueEvent::Accepted { .. } | VenueEvent::CancelRejected { .. } => {}
        }
        if finished {
            let side = info.side;
            self.orders.remove(&id);
            self.hide(ts_ns, side, id);
        }
    }

    /// The order `id` no longer shows on `side` (if it was the one shown).
    fn hide(&mut self, ts_ns: u64, side: Side, id: u64) {
        let slot = &mut self.shown[side_index(side)];
        if *slot == Some(id) {
            *slot = None;
            self.quotes.push(QuoteMark {
                ts_ns,
                side,
                price: None,
            });
        }
    }
}

fn side_index(side: Side) -> usize {
    match side {
        Side::Buy => 0,
        Side::Sell => 1,
    }
}

// -- grid -----------------------------------------------------------------------------------

/// One `--grid` axis: a key and its values.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GridAxis {
    /// `section.key`.
    pub key: String,
    /// The values, as written.
    pub values: Vec<String>,
}

/// Parses `key=v1,v2,..`.
pub fn parse_grid(arg: &str) -> anyhow::Result<GridAxis> {
    let (key, values) = arg.split_once('=').with_context(|| {
        format!("--grid {arg:?}: expected key=v1,v2,.. e.g. --grid model.gamma_per_bps=0.05,0.1")
    })?;
    let key = key.trim().to_string();
    if key.starts_with("market.") {
        anyhow::bail!(
            "--grid {arg:?}: market.* cannot vary within one run (the data is decoded once \
             on the market's grid); run each market separately"
        );
    }
    let values: Vec<String> = values
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    if values.is_empty() {
        anyhow::bail!("--grid {arg:?}: no values after '='");
    }
    Ok(GridAxis { key, values })
}

/// Every combination of the axes' values, as `key=value` lists (first axis slowest).
pub fn grid_combinations(axes: &[GridAxis]) -> Vec<Vec<String>> {
    let mut combos: Vec<Vec<String>> = vec![Vec::new()];
    for axis in axes {
        let mut next = Vec::with_capacity(combos.len() * axis.values.len());
        for combo in &combos {
            for value in &axis.values {
                let mut c = combo.clone();
                c.push(format!("{}={value}", axis.key));
                next.push(c);
            }
        }
        combos = next;
    }
    combos
}

fn run_grid(
    config: &Config,
    args: &BacktestArgs,
    tape: &(impl EventSource + Sync),
    make_config: &(dyn Fn(&[String]) -> Result<Config, ConfigError> + Sync),
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let axes: Vec<GridAxis> = args
        .grid
        .iter()
        .map(|a| parse_grid(a))
        .collect::<anyhow::Result<_>>()?;
    let combos = grid_combinations(&axes);
    let configs: Vec<Config> = combos
        .iter()
        .map(|sets| make_config(sets).map_err(|e| anyhow::anyhow!("{e}")))
        .collect::<anyhow::Result<_>>()?;
    if configs.iter().any(|c| c.spec != config.spec) {
        anyhow::bail!("--grid cannot change market.*: the data is decoded once");
    }
    writeln!(
        out,
        "grid: {} combinations on {} threads",
        configs.len(),
        rayon::current_num_threads()
    )?;
    let rows: Vec<report::GridRow> = configs
        .par_iter()
        .zip(combos.par_iter())
        .map(|(config, sets)| -> anyhow::Result<report::GridRow> {
            let replayed = simulate(config, tape, None)?;
            Ok(report::GridRow::of(sets, &replayed))
        })
        .collect::<anyhow::Result<_>>()?;
    let folder = report::write_grid(&args.reports_root, config, &axes, &rows)?;
    write!(out, "{}", report::render_grid(&axes, &rows))?;
    writeln!(out, "report: {}", folder.display())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_latency_shifts_entry_up_and_ack_down() {
        let params = SimParams {
            entry_latency: LatencyModel::Uniform {
                min_ns: 1,
                max_ns: 5,
            },
            ack_latency: LatencyModel::Constant { ns: 3 },
            ..SimParams::default()
        };
        let shifted = shift_for_feed(params, 4);
        assert_eq!(
            shifted.entry_latency,
            LatencyModel::Uniform {
                min_ns: 5,
                max_ns: 9
            }
        );
        assert_eq!(shifted.ack_latency, LatencyModel::Constant { ns: 0 });
        assert_eq!(shifted.maker_fee_centibps, params.maker_fee_centibps);
    }

    #[test]
    fn grid_combinations_cover_every_value() {
        let axes = vec![
            parse_grid("model.gamma_per_bps=0.05, 0.1,0.2").unwrap(),
            parse_grid("ofi.beta=0,0.3").unwrap(),
        ];
        let combos = grid_combinations(&axes);
        assert_eq!(combos.len(), 6);
        assert_eq!(
            combos[0],
            vec![
                "model.gamma_per_bps=0.05".to_string(),
                "ofi.beta=0".to_string()
            ]
        );
        assert_eq!(
            combos[5],
            vec![
                "model.gamma_per_bps=0.2".to_string(),
                "ofi.beta=0.3".to_string()
            ]
        );
        assert!(parse_grid("model.gamma_per_bps").is_err());
        assert!(parse_grid("model.gamma_per_bps=").is_err());
        assert!(parse_grid("market.tick_size=0.1").is_err());
    }
}
