//! `--mode=paper-trading`: live market data, simulated fills, KPIs and latency audits.
//!
//! Wiring only. The hot thread runs `hot::run_feed_loop` with a `PaperSink`: the `Trader`
//! (engine + order manager + risk) against the in-process `SimVenue` (the same
//! queue-position rules as the local exchange). Everything the trader does leaves as `Copy`
//! `TradeRecord`s on a bounded channel (`try_send`, full ⇒ dropped and counted); the side
//! thread turns them into log lines, KPIs (`telemetry::kpi`), latency histograms
//! (`telemetry::latency`, dumped to latency/ as HdrHistogram interval logs), the console
//! report every `kpi.report_every_s` and the atomic KPI snapshot that `--mode=kpi` reads.
//! Ctrl+C, SIGTERM or the end of `--duration`: the trader stops (cancel all), the venue's
//! last reports are drained, and the final report is printed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::config::{Config, LogLevel};
use crate::engine::{EngineStats, Step, TradeRecord, Trader};
use crate::feed::{BookLevels, Decoder, Event};
use crate::hot::{self, FeedLoopConfig, FeedSink, HotRecord, LoopEnd, SnapshotFetcher};
use crate::modes::live::LiveNote;
use crate::orders::{Action, VenueEvent};
use crate::risk::StopReason;
use crate::session::{build_trader, log_record};
use crate::shutdown::Shutdown;
use crate::telemetry::kpi::{
    FillRecord, InventorySample, KpiParams, KpiRecord, KpiSnapshot, KpiTargets, KpiTracker,
    MidSample, OrderCounts, QuoteSample,
};
use crate::telemetry::latency::{self, LatencyKind, LatencyLogWriter, LATENCY_INTERVAL_NS};
use crate::telemetry::log::LogHandle;
use crate::telemetry::metrics::{self, MarketCounters, MetricsServer};
use crate::telemetry::report::{default_snapshot_path, render_report, write_snapshot};
use crate::time::wall_now_ns;
use crate::types::{Side, SymbolSpec};
use crate::venue::sim::SimVenue;
use crate::venue::Venue;

/// Depth of the trader → side channel.
pub const TRADE_RECORD_CHANNEL_DEPTH: usize = 16_384;
/// Order counts are sent to the side thread this often, ns.
pub const COUNTS_EVERY_NS: u64 = 1_000_000_000;

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

/// The hot side of paper trading.
pub struct PaperSink {
    trader: Trader,
    venue: SimVenue,
    records: Sender<TradeRecord>,
    dropped: u64,
    next_counts_ns: u64,
    counts: Sender<OrderCounts>,
    /// When the trader's timer runs next without venue reports (as live runs it).
    next_timer_ns: u64,
}

impl FeedSink for PaperSink {
    const TIMED: bool = true;

    #[inline]
    fn on_event(&mut self, event: &Event, levels: BookLevels<'_>, now_ns: u64) -> (Step, u32) {
        let (trader, venue) = (&mut self.trader, &mut self.venue);
        market_step(
            trader,
            venue,
            &self.records,
            &mut self.dropped,
            event,
            levels,
            now_ns,
        )
    }

    fn on_disconnect(&mut self, _now_ns: u64) {
        self.trader.engine_mut().resync();
    }

    #[inline]
    fn on_idle(&mut self, now_ns: u64, _registry: &mio::Registry) {
        // The trader's timer (simulated venue reports, stale-data and kill-switch checks)
        // runs when the venue has something due, else once per TIMER_EVERY_NS, exactly as
        // live runs it: a silent market stops quoting after risk.stale_data_ms here too.
        let due = self.venue.next_due_ns().is_some_and(|due| due <= now_ns);
        if due || now_ns >= self.next_timer_ns {
            self.next_timer_ns = now_ns + super::live::TIMER_EVERY_NS;
            let records = &self.records;
            let dropped = &mut self.dropped;
            self.trader.on_timer(now_ns, &mut self.venue, &mut |r| {
                if records.try_send(r).is_err() {
                    *dropped += 1;
                }
            });
        }
        if now_ns >= self.next_counts_ns {
            self.next_counts_ns = now_ns + COUNTS_EVERY_NS;
            let _ = self.counts.try_send(counts_of(&self.trader));
        }
    }

    fn engine_stats(&self) -> EngineStats {
        self.trader.engine().stats()
    }
}

/// One market event through the trader (paper and live sinks): its records go to the side
/// thread with `try_send` (a full channel drops and counts); returns the step and how many
/// order actions were handed to the venue.
#[inline]
pub(crate) fn market_step<V: Venue>(
    trader: &mut Trader,
    venue: &mut V,
    records: &Sender<TradeRecord>,
    dropped: &mut u64,
    event: &Event,
    levels: BookLevels<'_>,
    now_ns: u64,
) -> (Step, u32) {
    let mut actions = 0u32;
    let step = trader.on_market(event, levels, now_ns, venue, &mut |r| {
        if let TradeRecord::Action { .. } = r {
            actions += 1;
        }
        if records.try_send(r).is_err() {
            *dropped += 1;
        }
    });
    (step, actions)
}

pub(crate) fn counts_of(trader: &Trader) -> OrderCounts {
    let s = trader.order_stats();
    OrderCounts {
        quotes: s.quotes_seen,
        orders_placed: s.orders_placed,
        cancels: s.cancels_sent,
        replaces: s.replaces_sent,
        fills: s.fills,
        orders_with_fill: s.orders_with_fill,
        rejects: s.rejects,
    }
}

/// Runs paper trading until a signal or the deadline.
pub fn run(
    config: &Config,
    args: &PaperArgs,
    log: &LogHandle,
    shutdown: &Shutdown,
) -> anyhow::Result<PaperSummary> {
    let symbol = config.spec.symbol;
    let super::MarketData {
        roots,
        url,
        snapshot_url,
        conn,
    } = super::market_data(config)?;
    let start_wall_ns = wall_now_ns();
    let snapshot_path = args
        .snapshot_path
        .clone()
        .unwrap_or_else(|| default_snapshot_path(symbol.as_str()));
    let latency_path = latency::log_path(
        std::path::Path::new(latency::LATENCY_DIR),
        "paper-trading",
        symbol.as_str(),
        start_wall_ns,
    );
    log.info(format_args!(
        "paper-trading: {symbol} from {url}; simulated venue; KPI snapshot {}; latency log {}",
        snapshot_path.display(),
        latency_path.display()
    ));
    crate::outln!("paper trading {symbol} from {url} (simulated fills); Ctrl+C stops and prints the final report");

    let (trade_tx, trade_rx) = bounded(TRADE_RECORD_CHANNEL_DEPTH);
    let (hot_tx, hot_rx) = bounded(hot::HOT_RECORD_CHANNEL_DEPTH);
    let (counts_tx, counts_rx) = bounded(64);
    let side = SideThread::new(
        config,
        "paper-trading",
        "Real-time",
        log,
        &snapshot_path,
        &latency_path,
        start_wall_ns,
    )?;
    let (_no_notes, notes_rx) = bounded(1);
    let side_thread = std::thread::Builder::new()
        .name("mm-side".to_string())
        .spawn(move || side.run(trade_rx, hot_rx, counts_rx, notes_rx))?;
    let fetcher = SnapshotFetcher::start(snapshot_url, roots, log.clone())?;

    let mut sink = PaperSink {
        trader: build_trader(config)?,
        venue: SimVenue::new(config.venue.sim, config.spec)
            .map_err(|e| anyhow::anyhow!("simulated venue: {e}"))?,
        records: trade_tx,
        dropped: 0,
        next_counts_ns: 0,
        counts: counts_tx,
        next_timer_ns: 0,
    };
    let mut decoder = Decoder::new(config.spec);
    let loop_cfg = FeedLoopConfig {
        conn,
        cpu_core: config.engine.cpu_core,
        duration_ns: args.duration_ns,
    };
    let result = hot::run_feed_loop(
        &loop_cfg,
        &mut sink,
        &mut decoder,
        None,
        &hot_tx,
        &fetcher,
        shutdown,
    );
    // Stop: cancel everything, let the simulated venue answer, count once more.
    let end_ns = wall_now_ns();
    {
        let records = &sink.records;
        let dropped = &mut sink.dropped;
        let mut forward = |r| {
            if records.send_timeout(r, Duration::from_millis(100)).is_err() {
                *dropped += 1;
            }
        };
        sink.trader
            .stop(end_ns, StopReason::Shutdown, &mut sink.venue, &mut forward);
        let drain_ns = end_ns + 10_000_000_000;
        sink.trader
            .on_timer(drain_ns, &mut sink.venue, &mut forward);
    }
    let _ = sink
        .counts
        .send_timeout(counts_of(&sink.trader), Duration::from_secs(1));
    let records_dropped = sink.dropped;
    let open_left = sink.trader.open_orders();
    drop(sink);
    drop(hot_tx);
    let (kpi, latency_files) = side_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the side thread panicked"))??;
    fetcher.join();
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
             gaps, {} open orders left, {records_dropped} records dropped",
            end.describe(),
            stats.frames,
            stats.decode_errors,
            stats.engine.quotes,
            stats.engine.gaps,
            open_left
        ),
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
        snapshot_path,
        latency_files,
        records_dropped,
    })
}

/// The side thread of paper and live trading: logs, KPIs, latency, reports.
pub(crate) struct SideThread {
    tracker: KpiTracker,
    writer: Option<LatencyLogWriter>,
    spec: SymbolSpec,
    log: LogHandle,
    snapshot_path: PathBuf,
    title: String,
    /// Order id → when it was handed to the venue (for the round trip).
    sent_ns: HashMap<u64, u64>,
    report_every_ns: u64,
    next_report_ns: u64,
    latency_files: Vec<PathBuf>,
    /// The `[metrics]` endpoint, served between records (never by the hot thread).
    metrics: Option<MetricsServer>,
    /// The market-data loop's last counters, for the endpoint.
    market: Option<MarketCounters>,
}

impl SideThread {
    /// The KPI tracker, the latency log (created now) and the report settings for a
    /// session of `mode` (`paper-trading`, `live`).
    pub(crate) fn new(
        config: &Config,
        mode: &str,
        title: &str,
        log: &LogHandle,
        snapshot_path: &std::path::Path,
        latency_path: &std::path::Path,
        start_wall_ns: u64,
    ) -> anyhow::Result<SideThread> {
        let symbol = config.spec.symbol;
        let mut kpi_params = KpiParams::new(config.spec, mode, config.quoting.inventory_max_lots);
        kpi_params.quote_size_lots = config.quoting.quote_size_lots;
        kpi_params.maker_fee_bps = Some(config.venue.sim.maker_fee_centibps as f64 / 100.0);
        kpi_params.markout_ns = (config.kpi.markout_horizon_s * 1e9).round() as u64;
        kpi_params.targets = KpiTargets {
            spread_captured_min: config.kpi.spread_captured_min,
            rms_inventory_max: config.kpi.rms_inventory_max,
            fill_ratio_min: config.kpi.fill_ratio_min,
            cancel_ratio_max: config.kpi.cancel_ratio_max,
            latency_p99_max_ms: config.kpi.latency_p99_ms_max,
            pnl_min_quote: config.kpi.pnl_min,
        };
        let tracker = KpiTracker::new(kpi_params, start_wall_ns)
            .map_err(|e| anyhow::anyhow!("KPI settings: {e}"))?;
        let writer = LatencyLogWriter::create(
            latency_path,
            start_wall_ns,
            LATENCY_INTERVAL_NS,
            &format!("mm {mode} {symbol}"),
        )?;
        let metrics = match config.metrics.listen {
            Some(addr) => {
                let server = MetricsServer::bind(&addr.to_string())
                    .map_err(|e| anyhow::anyhow!("metrics.listen {addr}: {e}"))?;
                log.info(format_args!(
                    "metrics: serving http://{}/metrics (Prometheus text; OpenMetrics on Accept)",
                    server.local_addr()
                ));
                Some(server)
            }
            None => None,
        };
        Ok(SideThread {
            metrics,
            market: None,
            tracker,
            writer: Some(writer),
            spec: config.spec,
            log: log.clone(),
            snapshot_path: snapshot_path.to_path_buf(),
            title: title.to_string(),
            sent_ns: HashMap::new(),
            report_every_ns: (config.kpi.report_every_s * 1e9) as u64,
            next_report_ns: start_wall_ns + (config.kpi.report_every_s * 1e9) as u64,
            latency_files: Vec::new(),
        })
    }

    /// Runs until both the trade and the hot channel are closed; prints the final report
    /// and returns the final KPIs and the latency files written.
    pub(crate) fn run(
        mut self,
        trades: Receiver<TradeRecord>,
        hot: Receiver<HotRecord>,
        counts: Receiver<OrderCounts>,
        notes: Receiver<LiveNote>,
    ) -> anyhow::Result<(KpiSnapshot, Vec<PathBuf>)> {
        let mut trades_open = true;
        let mut hot_open = true;
        while trades_open || hot_open {
            while let Ok(note) = notes.try_recv() {
                note.log(&self.log, &self.spec);
            }
            let mut idle = true;
            for _ in 0..1024 {
                match trades.try_recv() {
                    Ok(r) => {
                        idle = false;
                        self.on_trade(r);
                    }
                    Err(crossbeam_channel::TryRecvError::Empty) => break,
                    Err(crossbeam_channel::TryRecvError::Disconnected) => {
                        trades_open = false;
                        break;
                    }
                }
            }
            while let Ok(c) = counts.try_recv() {
                self.tracker.on_record(KpiRecord::Counts(c));
            }
            match hot.recv_timeout(Duration::from_millis(if idle { 20 } else { 0 })) {
                Ok(r) => self.on_hot(r),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => hot_open = false,
            }
            self.periodic(wall_now_ns())?;
            self.serve_metrics(wall_now_ns());
        }
        while let Ok(c) = counts.try_recv() {
            self.tracker.on_record(KpiRecord::Counts(c));
        }
        while let Ok(note) = notes.try_recv() {
            note.log(&self.log, &self.spec);
        }
        let now = wall_now_ns();
        self.tracker.finish();
        let snapshot = self.tracker.snapshot(now);
        write_snapshot(&self.snapshot_path, &snapshot)?;
        crate::outln!("{}", render_report(&snapshot, &self.title));
        if let Some(writer) = self.writer.take() {
            self.latency_files = writer.finish(self.tracker.latency_mut(), now)?;
        }
        Ok((snapshot, self.latency_files))
    }

    fn periodic(&mut self, now: u64) -> anyhow::Result<()> {
        if let Some(writer) = self.writer.as_mut() {
            writer.tick(self.tracker.latency_mut(), now)?;
        }
        if now >= self.next_report_ns {
            self.next_report_ns = now + self.report_every_ns;
            let snapshot = self.tracker.snapshot(now);
            write_snapshot(&self.snapshot_path, &snapshot)?;
            crate::outln!("{}", render_report(&snapshot, &self.title));
        }
        Ok(())
    }

    /// Answers pending scrapes of the `[metrics]` endpoint with the KPIs as of `now`.
    fn serve_metrics(&mut self, now: u64) {
        let Some(server) = self.metrics.as_mut() else {
            return;
        };
        let (tracker, market) = (&self.tracker, self.market.as_ref());
        server.serve_pending(|openmetrics| {
            metrics::render(
                &tracker.snapshot(now),
                tracker.latency(),
                market,
                openmetrics,
            )
        });
    }

    fn on_hot(&mut self, record: HotRecord) {
        if let HotRecord::Stats(s) = &record {
            self.market = Some(MarketCounters {
                frames: s.frames,
                disconnects: s.disconnects,
                gaps: s.engine.gaps,
                snapshots: s.engine.snapshots,
            });
        }
        match record {
            HotRecord::FeedLatency { ns } => {
                self.tracker.latency_mut().record(LatencyKind::Feed, ns)
            }
            HotRecord::TickToOrder { ns } => self
                .tracker
                .latency_mut()
                .record(LatencyKind::TickToQuote, ns),
            HotRecord::Iteration { ns } => self.tracker.latency_mut().record(LatencyKind::Loop, ns),
            other => log_record(&self.log, &other),
        }
    }

    fn on_trade(&mut self, record: TradeRecord) {
        let spec = self.spec;
        let price = |p: crate::types::Price| spec.price_to_f64(p);
        let qty = |q: crate::types::Qty| spec.qty_to_f64(q);
        match record {
            TradeRecord::Action { ts_ns, action } => match action {
                Action::Place { id, order } => {
                    self.sent_ns.insert(id.0, ts_ns);
                    self.log.info(format_args!(
                        "order: place #{} {} {} @ {}",
                        id.0,
                        order.side().as_wire(),
                        qty(order.qty()),
                        price(order.price())
                    ));
                }
                Action::CancelReplace {
                    cancel_id,
                    new_id,
                    order,
                } => {
                    self.sent_ns.insert(new_id.0, ts_ns);
                    self.log.info(format_args!(
                        "order: replace #{} by #{} {} {} @ {}",
                        cancel_id.0,
                        new_id.0,
                        order.side().as_wire(),
                        qty(order.qty()),
                        price(order.price())
                    ));
                }
                Action::Cancel { id } => self.log.info(format_args!("order: cancel #{}", id.0)),
                Action::CancelAll => self.log.info(format_args!("order: cancel all")),
            },
            TradeRecord::Venue {
                ts_ns,
                event,
                side,
                quoted_edge_half_ticks,
                mid_x2_ticks,
            } => match event {
                VenueEvent::Accepted { id, .. } => {
                    if let Some(sent) = self.sent_ns.remove(&id.0) {
                        self.tracker
                            .latency_mut()
                            .record(LatencyKind::OrderRoundTrip, ts_ns.saturating_sub(sent));
                    }
                    self.log.info(format_args!("venue: ack #{}", id.0));
                }
                VenueEvent::Rejected { id, code } => {
                    self.sent_ns.remove(&id.0);
                    self.log
                        .warn(format_args!("venue: reject #{} code {code}", id.0));
                }
                VenueEvent::Fill {
                    id,
                    price: p,
                    qty: q,
                    fee_quote_atoms,
                    ..
                } => {
                    self.log.info(format_args!(
                        "venue: fill #{} {} {} @ {} fee {}",
                        id.0,
                        side.map_or("?", Side::as_wire),
                        qty(q),
                        price(p),
                        fee_quote_atoms as f64 / 1e8
                    ));
                    if let Some(side) = side {
                        self.tracker.on_record(KpiRecord::Fill(FillRecord {
                            ts_ns,
                            side,
                            price: p,
                            qty: q,
                            fee_quote_atoms,
                            quoted_half_spread_half_ticks: quoted_edge_half_ticks,
                            mid_half_ticks: mid_x2_ticks,
                            order_id: id.0,
                        }));
                    }
                }
                VenueEvent::Canceled { id } => {
                    self.log.info(format_args!("venue: canceled #{}", id.0))
                }
                VenueEvent::CancelRejected { id, code } => self.log.warn(format_args!(
                    "venue: cancel of #{} rejected, code {code}",
                    id.0
                )),
                VenueEvent::Expired { id } => {
                    self.log.info(format_args!("venue: expired #{}", id.0))
                }
            },
            TradeRecord::Quote { ts_ns, bid, ask } => {
                self.tracker
                    .on_record(KpiRecord::Quote(QuoteSample { ts_ns, bid, ask }));
                self.log
                    .debug(format_args!("quote: bid {} ask {}", price(bid), price(ask)));
            }
            TradeRecord::Mid {
                ts_ns,
                mid_x2_ticks,
            } => self.tracker.on_record(KpiRecord::Mid(MidSample {
                ts_ns,
                mid_half_ticks: mid_x2_ticks,
            })),
            TradeRecord::Inventory {
                ts_ns,
                inventory,
                mid_x2_ticks,
            } => {
                self.tracker
                    .on_record(KpiRecord::Inventory(InventorySample {
                        ts_ns,
                        inventory_lots: inventory,
                        mid_half_ticks: mid_x2_ticks,
                    }));
                self.log.info(format_args!(
                    "kpi: inventory set to {} from the balances",
                    qty(inventory)
                ));
            }
            TradeRecord::Stopped { reason, .. } => match reason {
                Some(reason) => self.log.warn(format_args!(
                    "trading stopped: {reason:?}; orders cancelled"
                )),
                None => self.log.info(format_args!("trading resumed")),
            },
        }
    }
}
