//! `Session`: the threads of a trading session and the channels between them. `start`
//! opens the channels, starts the side thread (`mm-side`) and the REST snapshot thread;
//! `run` runs the hot loop on the calling thread with the mode's sink; `finish` closes
//! the hot ends (the side thread then drains what is left, prints the final report and
//! writes the last snapshot) and joins both threads.
//!
//! Never: runs the hot loop anywhere but on the caller's thread, or joins the side thread
//! before the sink's `Handoff` and the hot records' sender are dropped (it would wait
//! forever: `finish` takes the `Handoff` to make that impossible). Never imports
//! `crate::modes`.

use std::path::PathBuf;
use std::thread::JoinHandle;

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
use crate::shutdown::Shutdown;
use crate::telemetry::kpi::KpiSnapshot;
use crate::telemetry::log::LogHandle;
use crate::types::SymbolSpec;

/// Depth of the trader → side channel of trade records.
pub const TRADE_RECORD_CHANNEL_DEPTH: usize = 16_384;
/// Depth of the hot → side channel of order counts.
pub const COUNTS_CHANNEL_DEPTH: usize = 64;

/// What the side thread returns: the final KPIs and the latency files written.
type SideResult = anyhow::Result<(KpiSnapshot, Vec<PathBuf>)>;

/// A running session's threads and the hot loop's settings.
pub struct Session {
    side: JoinHandle<SideResult>,
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
        let side = std::thread::Builder::new()
            .name("mm-side".to_string())
            .spawn(move || side.run::<N>(trade_rx, hot_rx, counts_rx, notes_rx))?;
        let fetcher = SnapshotFetcher::start(market.snapshot_url, market.roots, log.clone())?;
        let session = Session {
            side,
            hot_records: hot_tx,
            fetcher,
            loop_cfg: FeedLoopConfig {
                conn: market.conn,
                cpu_core: config.engine.cpu_core,
                duration_ns,
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
    /// drain, report and exit, and joins it and the REST thread.
    pub fn finish<N>(self, handoff: Handoff<N>) -> SideResult {
        drop(handoff);
        drop(self.hot_records);
        let (kpi, latency_files) = self
            .side
            .join()
            .map_err(|_| anyhow::anyhow!("the side thread panicked"))??;
        self.fetcher.join();
        Ok((kpi, latency_files))
    }
}
