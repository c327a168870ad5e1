//! The side thread of a trading session (paper and live): everything slow that the hot
//! thread must not do. It drains the trade records, the hot loop's records, the order
//! counts and the venue's notes; writes the log lines, feeds the KPI tracker
//! (`telemetry::kpi`) and the latency histograms (`telemetry::latency`, dumped to
//! `latency/` as HdrHistogram interval logs), prints the console report every
//! `kpi.report_every_s`, writes the atomic KPI snapshot that `--mode=kpi` reads, and serves
//! the optional `[metrics]` endpoint between records.
//!
//! Never: runs on the hot thread, blocks the hot thread (every channel into it is bounded
//! and fed with `try_send`), parks on a channel the hot thread sends to (the hot thread's
//! `try_send` would have to wake it: it polls, and waits `SIDE_IDLE_WAIT` when idle),
//! knows which venue the session trades on, or imports `crate::modes`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crossbeam_channel::Receiver;

use crate::config::Config;
use crate::engine::TradeRecord;
use crate::hot::HotRecord;
use crate::orders::{Action, VenueEvent};
use crate::report::kpi::{default_snapshot_path, render_report, write_snapshot};
use crate::session::hot_log::log_record;
use crate::session::notes::Note;
use crate::telemetry::kpi::{
    FillRecord, InventorySample, KpiParams, KpiRecord, KpiSnapshot, KpiTargets, KpiTracker,
    MidSample, OrderCounts, QuoteSample,
};
use crate::telemetry::latency::{self, LatencyKind, LatencyLogWriter, LATENCY_INTERVAL_NS};
use crate::telemetry::log::LogHandle;
use crate::telemetry::metrics::{self, MarketCounters, MetricsServer};
use crate::time::wall_now_ns;
use crate::types::{Side, SymbolSpec};

/// How long the side thread waits when it found nothing to do (it polls its channels
/// rather than parking on one the hot thread sends to; see `Side::run`).
pub const SIDE_IDLE_WAIT: Duration = Duration::from_millis(2);

/// Where a session's reports go and what they are called.
#[derive(Clone, Debug)]
pub struct Reports {
    /// The mode, as the KPI snapshot and the latency log name it (`paper-trading`, `live`).
    pub mode: &'static str,
    /// The console report's title (`Real-time`, `Live`).
    pub title: &'static str,
    /// The KPI snapshot file (`--mode=kpi` reads it).
    pub snapshot_path: PathBuf,
    /// The latency interval log (`latency/<mode>_<SYMBOL>_<time>.hlog`).
    pub latency_path: PathBuf,
    /// When the session started, wall clock, ns.
    pub start_wall_ns: u64,
}

impl Reports {
    /// The reports of a `mode` session on `symbol` started at `start_wall_ns`: the KPI
    /// snapshot at `snapshot_path` (default `kpi/<SYMBOL>.json`), the latency log under
    /// `latency/`.
    pub fn new(
        mode: &'static str,
        title: &'static str,
        symbol: &str,
        snapshot_path: Option<PathBuf>,
        start_wall_ns: u64,
    ) -> Reports {
        Reports {
            mode,
            title,
            snapshot_path: snapshot_path.unwrap_or_else(|| default_snapshot_path(symbol)),
            latency_path: latency::log_path(
                Path::new(latency::LATENCY_DIR),
                mode,
                symbol,
                start_wall_ns,
            ),
            start_wall_ns,
        }
    }
}

/// The side thread of paper and live trading: logs, KPIs, latency, reports.
pub struct SideThread {
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
    /// The KPI tracker, the latency log (created now), the metrics endpoint (bound now)
    /// and the report settings of a session.
    pub fn new(config: &Config, reports: &Reports, log: &LogHandle) -> anyhow::Result<SideThread> {
        let symbol = config.spec.symbol;
        let (mode, title, start_wall_ns) = (reports.mode, reports.title, reports.start_wall_ns);
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
            &reports.latency_path,
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
            snapshot_path: reports.snapshot_path.clone(),
            title: title.to_string(),
            sent_ns: HashMap::new(),
            report_every_ns: (config.kpi.report_every_s * 1e9) as u64,
            next_report_ns: start_wall_ns + (config.kpi.report_every_s * 1e9) as u64,
            latency_files: Vec::new(),
        })
    }

    /// Runs until both the trade and the hot channel are closed; prints the final report
    /// and returns the final KPIs and the latency files written.
    pub fn run<N: Note>(
        mut self,
        trades: Receiver<TradeRecord>,
        hot: Receiver<HotRecord>,
        counts: Receiver<OrderCounts>,
        notes: Receiver<N>,
    ) -> anyhow::Result<(KpiSnapshot, Vec<PathBuf>)> {
        let mut trades_open = true;
        let mut hot_open = true;
        let idle_wait = crossbeam_channel::never::<()>();
        while trades_open || hot_open {
            while let Ok(note) = notes.try_recv() {
                note.log(&self.log, &self.spec);
            }
            let (trades_came, open) = drain(&trades, |r| self.on_trade(r));
            trades_open = open;
            while let Ok(c) = counts.try_recv() {
                self.tracker.on_record(KpiRecord::Counts(c));
            }
            // Never parked on a channel the hot thread sends to: a parked receiver makes
            // the hot thread's `try_send` wake it (a futex call), and on a small machine
            // the woken side thread preempts the hot thread mid-burst — measured as
            // tens of µs in the stage histograms (docs/latency.md). The side thread polls
            // instead and, when idle, waits on a channel nobody sends to.
            let (hot_came, open) = drain(&hot, |r| self.on_hot(r));
            hot_open = open;
            let idle = !trades_came && !hot_came;
            self.periodic(wall_now_ns())?;
            self.serve_metrics(wall_now_ns());
            if idle && (trades_open || hot_open) {
                let _ = idle_wait.recv_timeout(SIDE_IDLE_WAIT);
            }
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
        crate::outln!("{}", stage_lines(self.tracker.latency()));
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
            HotRecord::Stages {
                poll_to_read,
                socket_read,
                tls_open,
                queued,
                ws_frame,
                decode,
                read_to_decoded,
                decoded_to_book,
                book_to_quote,
                quote_to_order,
            } => {
                let latency = self.tracker.latency_mut();
                for (kind, ns) in [
                    (LatencyKind::PollToRead, poll_to_read),
                    (LatencyKind::SocketRead, socket_read),
                    (LatencyKind::TlsOpen, tls_open),
                    (LatencyKind::Queued, queued),
                    (LatencyKind::WsFrame, ws_frame),
                    (LatencyKind::Decode, decode),
                ] {
                    latency.record(kind, u64::from(ns));
                }
                latency.record(LatencyKind::ReadToDecoded, u64::from(read_to_decoded));
                // One event's spans add up: its read → quote, and frame → quote (the
                // bench's span), exact per event.
                let engine = u64::from(decoded_to_book) + u64::from(book_to_quote);
                latency.record(
                    LatencyKind::ReadToQuote,
                    u64::from(read_to_decoded) + engine,
                );
                latency.record(LatencyKind::FrameToQuote, u64::from(decode) + engine);
                latency.record(LatencyKind::DecodedToBook, u64::from(decoded_to_book));
                latency.record(LatencyKind::BookToQuote, u64::from(book_to_quote));
                if let Some(ns) = quote_to_order {
                    latency.record(LatencyKind::QuoteToOrder, u64::from(ns));
                }
            }
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

/// Takes up to 1024 records from `rx` into `on` without waiting. Returns whether any
/// came and whether `rx` is still open.
fn drain<T>(rx: &Receiver<T>, mut on: impl FnMut(T)) -> (bool, bool) {
    let mut came = false;
    for _ in 0..1024 {
        match rx.try_recv() {
            Ok(r) => {
                came = true;
                on(r);
            }
            Err(crossbeam_channel::TryRecvError::Empty) => break,
            Err(crossbeam_channel::TryRecvError::Disconnected) => return (came, false),
        }
    }
    (came, true)
}

/// The final report's per-stage latency lines: tick-to-quote, read → quote, frame → quote
/// and each stage's p50 / p99 / max and sample count (µs), measured in this session.
pub fn stage_lines(latency: &crate::telemetry::latency::LatencyRecorder) -> String {
    let mut text = String::from("Latency per stage (in situ, µs: p50 / p99 / max, samples):");
    let kinds = [
        LatencyKind::TickToQuote,
        LatencyKind::ReadToQuote,
        LatencyKind::FrameToQuote,
    ]
    .into_iter()
    .chain(LatencyKind::STAGES)
    .chain(std::iter::once(LatencyKind::PollToRead))
    .chain(LatencyKind::READ_PARTS);
    for kind in kinds {
        let h = latency.histogram(kind);
        let us = |ns: u64| ns as f64 / 1e3;
        text.push_str(&format!(
            "\n  {:<24} {:>9.2} / {:>9.2} / {:>9.2}  ({})",
            kind.tag(),
            us(h.value_at_quantile(0.5)),
            us(h.value_at_quantile(0.99)),
            us(h.max()),
            h.len()
        ));
    }
    text
}
