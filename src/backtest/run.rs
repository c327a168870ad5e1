//! One backtest: `simulate` replays a decoded `Tape` through the same `Trader` as paper
//! and live trading against the simulated venue (`venue::sim`), on a simulated clock taken
//! from the data's timestamps, and keeps what a report needs (`Replayed`).
//!
//! Deterministic: the same tape and configuration give the same `Replayed`, but for
//! `loop_wall_ns` and `loop_cpu_ns`. The only clocks read are the wall clock and the
//! thread's CPU time around the replay loop.
//!
//! The replay loop allocates nothing per event: the tape is decoded before it starts, and
//! the records it keeps (fills, quote changes, 1 s samples, and the mid changes the report
//! looks up: `backtest::mids`) go into vectors reserved up front (they grow, amortised,
//! only on runs larger than the reservation). Memory grows with fills, orders and data
//! time (one 32-byte sample a second), not with the number of messages.
//!
//! Never: writes files, prints, or imports a mode.

use std::collections::HashMap;

use crate::assemble::engine_params;
use crate::backtest::feed::{feed_choice, shift_for_feed, FeedChoice};
use crate::backtest::mids::{report_horizons_ns, MidKeeper};
use crate::config::Config;
use crate::engine::{Engine, EngineStats, TradeRecord, Trader};
use crate::orders::{Action, OrderManager, OrderStats, Position, VenueEvent};
use crate::replay::{EventCursor, EventSource};
use crate::risk::{Risk, StopReason};
use crate::telemetry::kpi::{
    FillRecord, KpiParams, KpiSnapshot, KpiTargets, KpiTracker, LatencySource, MidSample,
    OrderCounts, QuoteSample,
};
use crate::telemetry::latency::LatencyKind;
use crate::time::{thread_cpu_ns, Clock, SimClock, SystemClock};
use crate::types::{Price, Qty, Side, SymbolSpec};
use crate::venue::sim::{QueueAtFill, SimParams, SimStats, SimVenue};
use crate::venue::Venue;

/// Interval of the equity/inventory/mid time series, ns.
pub const SAMPLE_NS: u64 = 1_000_000_000;
/// Events between progress updates and Ctrl+C checks.
pub const PROGRESS_EVERY: usize = 1 << 16;
/// After the data ends: time allowed for in-flight actions and cancels to be answered, ns.
const DRAIN_NS: u64 = 60_000_000_000;

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
    /// The mid changes (ts, bid + ask in ticks) the report looks up (at fills, at fills
    /// plus the markout horizons, in the zoom window: `backtest::mids`), in time order; not
    /// every one of the data.
    pub mids: Vec<(u64, i64)>,
    /// Time of the last mid change of the data (kept or not).
    pub last_mid_ts_ns: Option<u64>,
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
    /// Wall time of the replay loop, ns (not deterministic): with a streamed input it
    /// includes the loop's waits for its decode thread.
    pub loop_wall_ns: u64,
    /// CPU time of the replay loop's own thread, ns (not deterministic; `None` where the
    /// system does not tell it): the loop's work without those waits.
    pub loop_cpu_ns: Option<u64>,
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
    let markout_ns = (config.kpi.markout_horizon_s * 1e9).round() as u64;
    kpi_params.markout_ns = markout_ns;
    kpi_params.targets = KpiTargets {
        spread_captured_min: config.kpi.spread_captured_min,
        rms_inventory_max: config.kpi.rms_inventory_max,
        fill_ratio_min: config.kpi.fill_ratio_min,
        cancel_ratio_max: config.kpi.cancel_ratio_max,
        latency_p99_max_ms: config.kpi.latency_p99_ms_max,
        pnl_min_quote: config.kpi.pnl_min,
    };
    let kpi = KpiTracker::new(kpi_params, start_ns).map_err(|e| anyhow::anyhow!("KPIs: {e}"))?;
    let mut collector = Collector::new(kpi, tape.stats().events as usize, feed.ns, markout_ns);
    let span_s = end_ns.saturating_sub(start_ns) / SAMPLE_NS + 2;
    let mut samples: Vec<Sample> = Vec::with_capacity(usize::try_from(span_s).unwrap_or(0));
    let mut next_sample_ns = start_ns;

    let clock = SimClock::new(start_ns);
    let wall = SystemClock::new();
    let loop_start = wall.mono_ns();
    let loop_cpu_start = thread_cpu_ns();
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
    let loop_cpu_ns = thread_cpu_ns()
        .zip(loop_cpu_start)
        .map(|(end, start)| end.saturating_sub(start));
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
    let (mids, last_mid_ts_ns) = collector.mids.finish();
    Ok(Replayed {
        spec,
        fills: collector.fills,
        mids,
        last_mid_ts_ns,
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
        loop_cpu_ns,
    })
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
    mids: MidKeeper,
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
    fn new(kpi: KpiTracker, events: usize, feed_ns: u64, markout_ns: u64) -> Collector {
        Collector {
            kpi,
            fills: Vec::with_capacity(4096),
            mids: MidKeeper::new(&report_horizons_ns(markout_ns)),
            quotes: Vec::with_capacity((events / 4 + 16).min(1 << 20)),
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
                self.mids.on_mid(ts_ns, mid_x2_ticks);
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
                if self.quotes.is_empty() {
                    // The quotes plot opens here when nothing fills.
                    self.mids.on_first_quote(ts_ns);
                }
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
                self.mids.on_fill(ts_ns);
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
