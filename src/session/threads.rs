//! `Session`: the threads of a trading session and the channels between them. `start`
//! opens the channels, starts the side thread (`mm-side`) and the REST snapshot thread;
//! `run` runs the hot loop on the calling thread with the mode's sink; `finish` closes
//! the hot ends (the side thread then drains what is left, prints the final report and
//! writes the last snapshot) and joins both threads, both within `shutdown::JOIN_WAIT`: a
//! side thread still running then (blocked writing the report to a console nobody reads,
//! a stalled disk) is left behind and `finish` says so (`SideUnfinished`).
//!
//! Never: runs the hot loop anywhere but on the caller's thread, joins a thread without a
//! deadline, or joins the side thread before the sink's `Handoff` and the hot records'
//! sender are dropped (it would wait for nothing: `finish` takes the `Handoff` to make
//! that impossible). Never imports `crate::modes`.

use std::path::PathBuf;

use crossbeam_channel::{bounded, Sender};

use crate::config::Config;
use crate::feed::Decoder;
use crate::hot::{
    self, FeedLoopConfig, FeedSink, HotRecord, LoopEnd, LoopStats, SnapshotFetcher,
    HOT_RECORD_CHANNEL_DEPTH,
};
use crate::session::endpoints::MarketData;
use crate::session::handoff::Handoff;
use crate::session::notes::Note;
use crate::session::side::{Reports, SideThread};
use crate::shutdown::{Deadline, Joined, Shutdown, Worker, JOIN_WAIT};
use crate::telemetry::kpi::KpiSnapshot;
use crate::telemetry::log::LogHandle;
use crate::types::SymbolSpec;

/// Depth of the trader → side channel of trade records.
pub const TRADE_RECORD_CHANNEL_DEPTH: usize = 16_384;
/// Depth of the hot → side channel of order counts.
pub const COUNTS_CHANNEL_DEPTH: usize = 64;

/// What the side thread returns: the final KPIs and the latency files written.
type SideResult = anyhow::Result<(KpiSnapshot, Vec<PathBuf>)>;

/// The side thread did not finish by the stop's deadline (`shutdown::JOIN_WAIT`): what
/// it was to write may be missing. Its `Display` is the console line.
#[derive(Clone, Debug)]
pub struct SideUnfinished {
    /// The KPI snapshot file it was to write last.
    pub snapshot_path: PathBuf,
    /// The latency interval log it was to finish.
    pub latency_path: PathBuf,
}

impl std::fmt::Display for SideUnfinished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the side thread (mm-side) did not finish within {} s after the stop (blocked: \
             stdout not read, e.g. a paused terminal or a full pipe, or a stalled disk): the \
             final report may be missing, {} may be older than the end of the session and \
             {} and its .hgrm tables may be incomplete; the log has the session's events",
            JOIN_WAIT.as_secs(),
            self.snapshot_path.display(),
            self.latency_path.display()
        )
    }
}

impl std::error::Error for SideUnfinished {}

/// A running session's threads and the hot loop's settings.
pub struct Session {
    side: Worker<SideResult>,
    snapshot_path: PathBuf,
    latency_path: PathBuf,
    log: LogHandle,
    hot_records: Sender<HotRecord>,
    fetcher: SnapshotFetcher,
    loop_cfg: FeedLoopConfig,
    spec: SymbolSpec,
}

impl Session {
    /// Opens the channels, starts the side thread (which creates the latency log and binds
    /// the metrics endpoint first) and the REST snapshot thread. Returns the session and
    /// the hot ends of the channels for the sink; `notes_depth` bounds the notes channel.
    pub fn start<N: Note>(
        config: &Config,
        reports: &Reports,
        market: MarketData,
        notes_depth: usize,
        duration_ns: Option<u64>,
        log: &LogHandle,
    ) -> anyhow::Result<(Session, Handoff<N>)> {
        let (trade_tx, trade_rx) = bounded(TRADE_RECORD_CHANNEL_DEPTH);
        let (hot_tx, hot_rx) = bounded(HOT_RECORD_CHANNEL_DEPTH);
        let (counts_tx, counts_rx) = bounded(COUNTS_CHANNEL_DEPTH);
        let (notes_tx, notes_rx) = bounded(notes_depth);
        let side = SideThread::new(config, reports, log)?;
        let side = Worker::spawn("mm-side", move || {
            side.run::<N>(trade_rx, hot_rx, counts_rx, notes_rx)
        })?;
        let fetcher = SnapshotFetcher::start(market.snapshot_url, market.roots, log.clone())?;
        let session = Session {
            side,
            snapshot_path: reports.snapshot_path.clone(),
            latency_path: reports.latency_path.clone(),
            log: log.clone(),
            hot_records: hot_tx,
            fetcher,
            loop_cfg: FeedLoopConfig {
                conn: market.conn,
                cpu_core: config.engine.cpu_core,
                duration_ns,
                warm_every_ns: config.engine.warm_every_us.saturating_mul(1_000),
            },
            spec: config.spec,
        };
        Ok((session, Handoff::new(trade_tx, counts_tx, notes_tx)))
    }

    /// Runs the hot loop on the calling thread until a signal, the deadline or the sink's
    /// fatal condition (and, for a sink that has one, its wind-down).
    pub fn run<S: FeedSink>(
        &self,
        sink: &mut S,
        shutdown: &Shutdown,
    ) -> std::io::Result<(LoopEnd, LoopStats)> {
        let mut decoder = Decoder::new(self.spec);
        hot::run_feed_loop(
            &self.loop_cfg,
            sink,
            &mut decoder,
            None,
            &self.hot_records,
            &self.fetcher,
            shutdown,
        )
    }

    /// Closes the hot ends (the sink's `Handoff`, the hot records), lets the side thread
    /// drain, report and exit, and joins it and the REST thread, both within `JOIN_WAIT`.
    /// A side thread still running then is left behind: the error is a `SideUnfinished`
    /// (also logged as an ERROR). A REST thread still running is only a WARN.
    pub fn finish<N>(self, handoff: Handoff<N>) -> SideResult {
        drop(handoff);
        drop(self.hot_records);
        let deadline = Deadline::after(JOIN_WAIT);
        let side = self.side.join_by(&deadline);
        self.fetcher.join(&deadline, &self.log);
        match side {
            Joined::Done(result) => result,
            Joined::Panicked => Err(anyhow::anyhow!("the side thread (mm-side) panicked")),
            Joined::Unfinished => {
                let unfinished = SideUnfinished {
                    snapshot_path: self.snapshot_path,
                    latency_path: self.latency_path,
                };
                self.log.error(format_args!("stop: {unfinished}"));
                Err(unfinished.into())
            }
        }
    }
}
