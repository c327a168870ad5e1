//! `--mode=record`: connect to the market-data endpoint, keep the book in sync, and write
//! every inbound frame (and every REST snapshot) with its receive time to a journal.
//!
//! Wiring only: the hot loop (`hot::run_feed_loop`) runs on the calling thread; a side
//! thread drains the journal ring into the file and turns hot records into log lines; the
//! REST thread fetches snapshots. Ctrl+C, SIGTERM or the end of `--duration` stop the loop;
//! the side thread then drains what is left, flushes and fsyncs the journal and closes it
//! (joined within `shutdown::JOIN_WAIT`; a journal thread still writing then is said, exit 1).
//! After a crash the last record may be torn: the reader detects and skips it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError};

use crate::assemble::engine_params;
use crate::config::Config;
use crate::feed::Decoder;
use crate::hot::{
    self, FeedLoopConfig, HotRecord, LoopEnd, LoopStats, SnapshotFetcher, HOT_RECORD_CHANNEL_DEPTH,
};
use crate::journal::{frame_ring, FrameDrain, JournalWriter, RecordKind};
use crate::session::{log_record, market_data, MarketData};
use crate::shutdown::{Deadline, Joined, Shutdown, Worker, JOIN_WAIT};
use crate::telemetry::log::{timestamp, LogHandle};
use crate::time::wall_now_ns;

/// Bytes of the hot → side journal ring (a few seconds of a busy symbol at worst).
pub const JOURNAL_RING_BYTES: usize = 64 << 20;
/// Folder of journals when `--out` is not given.
pub const JOURNAL_DIR: &str = "journal";

/// Flags of the mode.
#[derive(Clone, Debug, Default)]
pub struct RecordArgs {
    /// Journal path; default `journal/<SYMBOL>_<UTC time>.mmj`.
    pub out: Option<PathBuf>,
    /// Stop after this long, ns.
    pub duration_ns: Option<u64>,
}

/// What a recording did.
#[derive(Clone, Debug)]
pub struct RecordSummary {
    /// The journal written.
    pub path: PathBuf,
    /// Records in the journal.
    pub records: u64,
    /// Bytes in the journal.
    pub bytes: u64,
    /// Why it stopped.
    pub end: LoopEnd,
    /// The loop's counters.
    pub stats: LoopStats,
}

/// Runs the recording until a signal or the deadline.
pub fn run(
    config: &Config,
    args: &RecordArgs,
    log: &LogHandle,
    shutdown: &Shutdown,
) -> anyhow::Result<RecordSummary> {
    let symbol = config.spec.symbol;
    let MarketData {
        roots,
        url,
        snapshot_url,
        conn,
    } = market_data(config)?;

    let created_ns = wall_now_ns();
    let path = match &args.out {
        Some(path) => path.clone(),
        None => default_journal_path(symbol.as_str(), created_ns),
    };
    let mut writer = JournalWriter::create(&path, symbol.as_str(), created_ns)
        .with_context(|| format!("creating the journal {}", path.display()))?;
    writer.append(
        RecordKind::Marker,
        created_ns,
        format!("mm record {symbol} from {url}").as_bytes(),
    )?;
    log.info(format_args!(
        "record: {symbol} from {url} (snapshots from {snapshot_url}) into {}",
        path.display()
    ));
    crate::outln!("recording {symbol} from {url} into {}", path.display());

    let (mut ring, drain) = frame_ring(JOURNAL_RING_BYTES);
    let (records_tx, records_rx) = bounded(HOT_RECORD_CHANNEL_DEPTH);
    let side_log = log.clone();
    let hot_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let side_done = Arc::clone(&hot_done);
    let side = Worker::spawn("mm-side", move || {
        side_thread(writer, drain, records_rx, side_log, side_done)
    })?;
    let fetcher = SnapshotFetcher::start(snapshot_url, roots, log.clone())?;

    let mut engine = crate::engine::Engine::new(engine_params(config)?);
    let mut decoder = Decoder::new(config.spec);
    let loop_cfg = FeedLoopConfig {
        conn,
        cpu_core: config.engine.cpu_core,
        duration_ns: args.duration_ns,
        // Record mode does not quote: nothing to keep warm.
        warm_every_ns: 0,
    };
    let result = hot::run_feed_loop(
        &loop_cfg,
        &mut engine,
        &mut decoder,
        Some(&mut ring),
        &records_tx,
        &fetcher,
        shutdown,
    );
    // Stop the side thread only after the hot side is gone, so it drains everything.
    drop(ring);
    drop(records_tx);
    hot_done.store(true, std::sync::atomic::Ordering::Release);
    let deadline = Deadline::after(JOIN_WAIT);
    let written = side.join_by(&deadline);
    fetcher.join(&deadline, log);
    let written = match written {
        Joined::Done(written) => written,
        Joined::Panicked => anyhow::bail!("the journal thread (mm-side) panicked"),
        Joined::Unfinished => {
            let why = format!(
                "the journal thread (mm-side) did not finish within {} s after the stop \
                 (a stalled disk?): {} may miss its last records (a torn last record is \
                 skipped by the reader)",
                JOIN_WAIT.as_secs(),
                path.display()
            );
            log.error(format_args!("stop: {why}"));
            anyhow::bail!(why)
        }
    };
    let (end, stats) = result?;
    let (records, bytes) = written.with_context(|| format!("writing {}", path.display()))?;
    log.info(format_args!(
        "record: stopped ({}) — {records} records, {bytes} bytes, {} frames, {} decode errors, \
         {} gaps, {} snapshots, {} dropped",
        end.describe(),
        stats.frames,
        stats.decode_errors,
        stats.engine.gaps,
        stats.engine.snapshots,
        stats.journal_dropped
    ));
    Ok(RecordSummary {
        path,
        records,
        bytes,
        end,
        stats,
    })
}

/// `journal/BTCUSDT_20261125T224629Z.mmj`.
pub fn default_journal_path(symbol: &str, wall_ns: u64) -> PathBuf {
    let stamp = timestamp(wall_ns);
    // 2026-11-25T22:46:29.123456Z → 20261125T224629Z
    let compact: String = stamp
        .chars()
        .take(19)
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect();
    Path::new(JOURNAL_DIR).join(format!("{symbol}_{compact}Z.mmj"))
}

/// Drains the ring into the journal and turns hot records into log lines, until the hot
/// side is done; then drains the rest, fsyncs and closes.
fn side_thread(
    mut writer: JournalWriter,
    mut drain: FrameDrain,
    records: Receiver<HotRecord>,
    log: LogHandle,
    hot_done: Arc<std::sync::atomic::AtomicBool>,
) -> std::io::Result<(u64, u64)> {
    loop {
        drain.drain_into(&mut writer)?;
        match records.recv_timeout(Duration::from_millis(20)) {
            Ok(record) => log_record(&log, &record),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                if hot_done.load(std::sync::atomic::Ordering::Acquire) {
                    break;
                }
            }
        }
        writer.flush()?;
    }
    drain.drain_into(&mut writer)?;
    while let Ok(record) = records.try_recv() {
        log_record(&log, &record);
    }
    writer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_path_is_symbol_and_compact_utc() {
        let p = default_journal_path("BTCUSDT", 1_723_161_599_900_000_000);
        assert_eq!(p, Path::new("journal/BTCUSDT_20240808T235959Z.mmj"));
    }
}
