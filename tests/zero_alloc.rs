//! Zero allocation on the hot path, proven on the production loop: `hot::run_feed_loop`
//! (socket → our TLS 1.3 record layer → WebSocket → decode → L2 book → OFI → σ → quote,
//! plus the loop's own bookkeeping and `Copy` records to the side channel) streams more than
//! 100,000 real Binance messages from a loopback TLS WebSocket server, and its thread makes
//! no heap allocation while it does.
//!
//! What is counted: every `alloc`, `alloc_zeroed` and `realloc` call (not `dealloc`) made
//! by *the hot thread* — the thread that calls `run_feed_loop`, marked through a
//! thread-local flag — while the global phase is `COUNTED`. The test's main thread, the
//! server threads, the REST snapshot thread and libtest's threads are never counted, so no
//! custom harness is needed. The counter checks itself first (one known allocation on a
//! marked thread counts 1, one on an unmarked thread counts 0). The other phases (start-up,
//! connect and warm-up; wind-down after the window) are counted and printed too.
//!
//! The window: the main thread switches to `COUNTED` only after the loop has reported (its
//! periodic `Stats` record) that every warm-up frame was handled, and back only after it
//! reported every counted frame — so the window holds the loop busy-polling, reading,
//! decoding and quoting, and nothing else.
//!
//! The traffic: a recorded BTCUSDT session, as recorded, in passes — the core test uses the
//! bundled slice (tools/data, 41,248 messages: depth diffs, bookTickers, trades; three
//! counted passes), the extra `#[ignore]`d one the full 2024-08-08/09 session in
//! ../shared/data (99,573 messages; two). Pass 0 is the warm-up (the REST snapshot is the
//! recorded one; it includes the session's largest frames, so buffers reach their steady
//! size). The counted window is the next passes, the last one partial (110,000 messages).
//! Each pass k re-numbers the update ids (`U`, `u`, and the snapshot's `lastUpdateId`) by
//! k·(span + 1000): the jump of 1000 at each pass start is a real depth gap, so the engine
//! counts it, asks its REST thread for a snapshot (the recorded one, re-numbered for that
//! pass), buffers diffs meanwhile, loads it and replays the buffer — a full resync, inside
//! the counted window, once per pass. Without it the book would carry the end of the
//! session into the replay of its start. Server pings (every 5,000 messages) are answered
//! inside the window too.
//!
//! Every pass, the warm-up included, is sent as its head (200 messages), then — once the
//! snapshot is loaded — the rest, so a slow snapshot cannot make the one recorded snapshot
//! too old (the engine buffers 256 diffs). The snapshot answers 500 ms late in the warm-up
//! and 50 ms late in pass 1, and the test asserts no reconnect in the warm-up.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver};

use mm::config::LogLevel;
use mm::engine::Engine;
use mm::feed::Decoder;
use mm::hot::{
    self, FeedLoopConfig, HotRecord, LoopEnd, LoopStats, SnapshotFetcher, HOT_RECORD_CHANNEL_DEPTH,
};
use mm::net::{ConnConfig, NetEvent, TlsRoots};
use mm::shutdown::{Deadline, Shutdown, JOIN_WAIT};
use mm::telemetry::log::Logger;

use support::binance::{btcusdt_spec, engine_params, renumber_ids, Msg, Recorded, RestServer};
use support::{server_frame, ServerConn, ServerEvent, TestPki, WsServer};

/// Messages in the counted window (≥ 100,000 asked for).
const COUNTED_MESSAGES: usize = 110_000;
/// Extra update ids skipped at each pass start: a real gap.
const PASS_GAP_IDS: u64 = 1_000;
/// Messages sent at a pass start before waiting for its snapshot (they hold a few diffs).
const PASS_HEAD: usize = 200;
/// A server ping every this many messages.
const PING_EVERY: usize = 5_000;
/// Messages per coalesced server write.
const BATCH: usize = 500;
const WAIT: Duration = Duration::from_secs(60);

/// Extra snapshot delay by pass (then none): a slow REST answer, in the warm-up and in a
/// counted pass, must not matter (the engine buffers the diffs it gets meanwhile).
const SNAPSHOT_DELAY_MS: [u64; 2] = [500, 50];

/// One test at a time: the allocation counter's phase is process-wide.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn hot_loop_streams_100k_real_messages_without_allocating() {
    stream_without_allocating(&[support::data::bundled_spot()]);
}

#[test]
#[ignore = "extra run on ../shared/data: cargo test -- --include-ignored"]
fn full_shared_session_streams_without_allocating() {
    stream_without_allocating(&support::data::shared_spot_session());
}

fn stream_without_allocating(files: &[std::path::PathBuf]) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    counting::self_test();
    let rec = Recorded::load(files, usize::MAX);
    let session = rec.messages.len();
    assert!(session > PASS_HEAD);
    let span = id_span(&rec.parsed);
    let pass_offset = move |pass: u64| pass * (span + PASS_GAP_IDS);

    // The venue: TLS WebSocket + REST snapshot of the pass being streamed.
    let pki = TestPki::new();
    let id = pki.server_identity(&["localhost", "127.0.0.1"]);
    let ws = WsServer::start_tls(&id);
    let pass_now = Arc::new(AtomicU64::new(0));
    let (pass_for_rest, snapshot) = (pass_now.clone(), rec.snapshot.json.clone());
    let rest = RestServer::start(
        &id,
        Arc::new(move |_target: &str| {
            let pass = pass_for_rest.load(Ordering::SeqCst);
            let delay = SNAPSHOT_DELAY_MS.get(pass as usize).copied().unwrap_or(0);
            sleep(Duration::from_millis(delay));
            renumber_ids(&snapshot, pass_offset(pass))
        }),
    );

    // Traffic, built before anything runs: pass 0 is the warm-up, then as many passes
    // (the last one partial) as the counted window needs.
    let frames_of = |pass: u64, range: std::ops::Range<usize>| -> Vec<Vec<u8>> {
        rec.messages[range]
            .iter()
            .map(|l| server_frame(0x1, true, &renumber_ids(&l.json, pass_offset(pass))))
            .collect()
    };
    let warm = frames_of(0, 0..session);
    let mut counted_passes = Vec::new();
    let mut left = COUNTED_MESSAGES;
    while left > 0 {
        let n = left.min(session);
        assert!(n > PASS_HEAD, "a pass too short for its resync");
        counted_passes.push(frames_of(counted_passes.len() as u64 + 1, 0..n));
        left -= n;
    }
    let passes = counted_passes.len() as u64;

    // The hot thread, wired as --mode=record wires it (minus the journal).
    let symbol = btcusdt_spec().symbol;
    let roots = TlsRoots::CaFile(pki.ca_pem_path.clone());
    let conn = ConnConfig::new(&hot::stream_url(&ws.url(""), &symbol), roots.clone());
    let snapshot_url = hot::snapshot_url(&rest.base_url(), &symbol, 1_000);
    let log_dir = std::env::temp_dir().join(format!("mm-zero-alloc-{}", std::process::id()));
    let logger = Logger::start_with(&log_dir, LogLevel::Warn, false).unwrap();
    let log = logger.handle();
    let (tx, records) = bounded(HOT_RECORD_CHANNEL_DEPTH);
    let shutdown = Shutdown::new();
    let stop = shutdown.clone();
    let hot_thread = thread::Builder::new()
        .name("hot".to_string())
        .spawn(move || {
            counting::mark_this_thread();
            let fetcher = SnapshotFetcher::start(snapshot_url, roots, log.clone()).unwrap();
            let mut engine = Engine::new(engine_params(1.0));
            let mut decoder = Decoder::new(btcusdt_spec());
            let cfg = FeedLoopConfig {
                conn,
                cpu_core: None,
                duration_ns: None,
                warm_every_ns: 0,
            };
            let result =
                hot::run_feed_loop(&cfg, &mut engine, &mut decoder, None, &tx, &fetcher, &stop);
            fetcher.join(&Deadline::after(JOIN_WAIT), &log);
            (
                result.unwrap(),
                engine.stats(),
                engine.quote().bid.is_some(),
            )
        })
        .unwrap();
    let mut seen = Seen::new(records);
    let sc = ws.accept(WAIT);
    assert_eq!(sc.recv(WAIT), Some(ServerEvent::Open));

    // Warm-up: pass 0 with the recorded snapshot, sent as the counted passes are: the
    // head, then (snapshot loaded, however slow it was) the rest. Streaming it all first
    // would outrun the engine's diff buffer while the snapshot is on its way, making the
    // single recorded snapshot too old for good.
    let mut pings = 0;
    let mut warm = warm;
    let warm_rest = warm.split_off(PASS_HEAD);
    send(&sc, warm, 0, &mut pings);
    seen.wait("the warm-up snapshot", |s| s.loaded() >= 1);
    send(&sc, warm_rest, PASS_HEAD, &mut pings);
    let warm_stats = seen.wait_stats("the warm-up", |s| s.frames == session as u64);
    assert_eq!(warm_stats.engine.snapshots, 1);
    assert_eq!(warm_stats.engine.snapshots_too_old, 0);
    assert_eq!(warm_stats.disconnects, 0, "a reconnect during the warm-up");
    assert_eq!(
        seen.count(|r| matches!(r, HotRecord::Net(NetEvent::Open { .. }))),
        1,
        "a reconnect during the warm-up"
    );

    // The counted window.
    let started = now();
    counting::set_phase(counting::COUNTED);
    for (i, mut frames) in counted_passes.into_iter().enumerate() {
        let pass = i as u64 + 1;
        pass_now.store(pass, Ordering::SeqCst);
        let rest_of_pass = frames.split_off(PASS_HEAD);
        send(&sc, frames, 0, &mut pings);
        seen.wait("the pass's resync", |s| s.loaded() > pass as usize);
        send(&sc, rest_of_pass, PASS_HEAD, &mut pings);
    }
    let total = (session + COUNTED_MESSAGES) as u64;
    let last = seen.wait_stats("the counted frames", |s| s.frames == total);
    counting::set_phase(counting::WIND_DOWN);
    let window = started.elapsed();
    let allocations = counting::count(counting::COUNTED);
    let sizes = counting::counted_sizes();

    shutdown.request();
    let ((end, final_stats), engine_stats, quoting) = hot_thread.join().unwrap();
    seen.pump();
    let _ = logger.finish();
    let _ = std::fs::remove_dir_all(&log_dir);

    // It ran as intended...
    assert_eq!(end, LoopEnd::Signal);
    assert_eq!(final_stats.frames, total, "frames == sent");
    assert_eq!(last.frames - warm_stats.frames, COUNTED_MESSAGES as u64);
    assert_eq!(final_stats.decode_errors, 0);
    assert_eq!(final_stats.disconnects, 0);
    assert_eq!(
        seen.count(|r| matches!(r, HotRecord::Net(NetEvent::Open { .. }))),
        1
    );
    let counted = last.engine;
    let before = warm_stats.engine;
    let quotes = counted.quotes - before.quotes;
    assert!(quotes > 10_000, "quotes computed in the window: {quotes}");
    assert_eq!(
        counted.gaps - before.gaps,
        passes,
        "one resync per counted pass"
    );
    assert_eq!(counted.snapshots - before.snapshots, passes);
    assert_eq!(engine_stats.snapshots_too_old, 0);
    assert!(quoting);
    let pongs = (0..pings)
        .filter(|_| {
            sc.recv_matching(WAIT, |e| matches!(e, ServerEvent::Pong(_)))
                .is_some()
        })
        .count();
    assert_eq!(pongs, pings, "every ping answered");
    println!(
        "hot thread, {COUNTED_MESSAGES} messages in {window:?} ({} diffs, {} bookTickers, \
         {} trades, {quotes} quotes, {passes} gap resyncs, pings answered): {allocations} \
         allocations; start-up + connect + warm-up ({session} messages, snapshot {} ms \
         late): {}; wind-down: {}; side-channel records dropped (full channel, by design): {}",
        counted.diffs - before.diffs,
        counted.book_tickers - before.book_tickers,
        counted.trades - before.trades,
        SNAPSHOT_DELAY_MS[0],
        counting::count(counting::WARMUP),
        counting::count(counting::WIND_DOWN),
        final_stats.records_dropped
    );
    // ...and never allocated.
    assert_eq!(
        allocations, 0,
        "allocations on the hot thread in the window (first sizes: {sizes:?})"
    );
}

/// `u` of the session's last diff − `U` of its first + 1: one pass's worth of update ids.
fn id_span(parsed: &[Msg]) -> u64 {
    let ids = |m: &Msg| match m {
        Msg::Diff { first, last, .. } => Some((*first, *last)),
        _ => None,
    };
    let (first, _) = parsed.iter().find_map(ids).unwrap();
    let (_, last) = parsed.iter().rev().find_map(ids).unwrap();
    last - first + 1
}

/// Sends `frames` in coalesced batches, with a ping every `PING_EVERY` messages (counted
/// from `offset` in the pass).
fn send(sc: &ServerConn, frames: Vec<Vec<u8>>, offset: usize, pings: &mut usize) {
    let mut batch = Vec::with_capacity(BATCH + 1);
    for (i, frame) in frames.into_iter().enumerate() {
        batch.push(frame);
        if (offset + i + 1) % PING_EVERY == 0 {
            *pings += 1;
            batch.push(server_frame(0x9, true, format!("{pings}").as_bytes()));
        }
        if batch.len() >= BATCH {
            sc.send_frames(std::mem::take(&mut batch), true);
        }
    }
    if !batch.is_empty() {
        sc.send_frames(batch, true);
    }
}

/// The records the loop sent, gathered on the main thread.
struct Seen {
    rx: Receiver<HotRecord>,
    all: Vec<HotRecord>,
}

impl Seen {
    fn new(rx: Receiver<HotRecord>) -> Seen {
        Seen {
            rx,
            all: Vec::new(),
        }
    }

    fn pump(&mut self) {
        while let Ok(r) = self.rx.try_recv() {
            self.all.push(r);
        }
    }

    fn count(&self, pred: impl Fn(&HotRecord) -> bool) -> usize {
        self.all.iter().filter(|r| pred(r)).count()
    }

    fn loaded(&self) -> usize {
        self.count(|r| matches!(r, HotRecord::SnapshotLoaded { .. }))
    }

    fn wait(&mut self, what: &str, mut done: impl FnMut(&Seen) -> bool) {
        let start = now();
        loop {
            self.pump();
            if done(self) {
                return;
            }
            if start.elapsed() >= WAIT {
                // What the loop said, to tell a lost connection from a snapshot problem.
                let net: Vec<String> = self
                    .all
                    .iter()
                    .filter_map(|r| match r {
                        HotRecord::Net(NetEvent::Disconnected { cause, .. }) => {
                            Some(format!("disconnected: {cause:?}"))
                        }
                        _ => None,
                    })
                    .collect();
                let kinds = |f: fn(&HotRecord) -> bool| self.all.iter().filter(|r| f(r)).count();
                let last_stats = self.all.iter().rev().find_map(|r| match r {
                    HotRecord::Stats(s) => Some(*s),
                    _ => None,
                });
                panic!(
                    "timed out waiting for {what}: snapshots requested {}, loaded {}, too old \
                     {}, failed {}; {net:?}; last stats {last_stats:?}",
                    kinds(|r| matches!(r, HotRecord::SnapshotRequested { .. })),
                    kinds(|r| matches!(r, HotRecord::SnapshotLoaded { .. })),
                    kinds(|r| matches!(r, HotRecord::SnapshotTooOld { .. })),
                    kinds(|r| matches!(r, HotRecord::SnapshotFailed { .. })),
                );
            }
            sleep(Duration::from_millis(2));
        }
    }

    /// Waits for a periodic `Stats` record satisfying `done` and returns it.
    fn wait_stats(&mut self, what: &str, done: impl Fn(&LoopStats) -> bool) -> LoopStats {
        let find = |all: &[HotRecord]| {
            all.iter().rev().find_map(|r| match r {
                HotRecord::Stats(s) if done(s) => Some(*s),
                _ => None,
            })
        };
        self.wait(what, |s| find(&s.all).is_some());
        find(&self.all).unwrap()
    }
}

#[allow(clippy::disallowed_methods)] // test timing on the main thread
fn now() -> Instant {
    Instant::now()
}

#[allow(clippy::disallowed_methods)] // the main thread waits; the hot thread never sleeps
fn sleep(d: Duration) {
    thread::sleep(d);
}

// ---------------------------------------------------------------------------------------
// Counting allocator (marked threads only, per phase): tests/support/phased.rs
// ---------------------------------------------------------------------------------------

#[path = "support/phased.rs"]
mod counting;
