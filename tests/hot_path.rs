//! The hot market-data loop end to end: `hot::run_feed_loop` — the production loop, with
//! its `SnapshotFetcher` REST thread and a journal ring — against a loopback venue speaking
//! Binance's protocol over real TLS 1.3 + WebSocket (tests/support), fed with the recorded
//! BTCUSDT session (the bundled slice `tools/data/btcusdt_20240808.gz`, messages as
//! recorded).
//!
//! The venue: `WsServer` serves the combined stream (one text frame per recorded message);
//! `RestServer` answers `GET /api/v3/depth` — the recorded REST snapshot the first time,
//! later (resyncs) a snapshot of the exchange's true book at that moment, built by the
//! naive `BTreeMap` book from the recorded snapshot plus every diff the venue has produced
//! (including diffs lost on the way to the client), at `limit=1000`.
//!
//! What the engine did is observed three ways: the `HotRecord`s on the records channel;
//! the journal ring, which holds every frame and snapshot body exactly as the engine saw
//! them *with the `now_ns` the loop gave them* (a tap thread drains it into a journal file
//! and reads it back); and the `Engine`/`Decoder` themselves, handed back when the loop
//! ends. Each test then checks the engine against two references:
//! - independent: the naive book (top 100 levels per side, converted to ticks/lots) and,
//!   where no resync resets it, a naive CKS OFI over the bookTicker frames at the same
//!   `now_ns` values — and the quote recomputed from it;
//! - replay: a fresh `Decoder` + `Engine` fed the journal's bytes in the journal's order at
//!   the journal's timestamps, with `Engine::resync` where the loop reported a disconnect.
//!   It must end bit-identical (stats, book, touch, σ, OFI, quote): the loop's wiring
//!   (`Connection` → `FeedHandler` → `Engine`, snapshot hand-off) adds and loses nothing.
//!
//! `too_old_snapshots_are_asked_for_again_with_a_delay` found a bug in src/hot.rs (a
//! too-old snapshot was asked for again at once, hammering the REST endpoint); it is fixed.
//!
//! Tests run one at a time (a lock): each runs a busy-polling hot thread. The data is
//! committed in the repo: nothing is skipped on a fresh clone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver};

use mm::book::SyncState;
use mm::config::LogLevel;
use mm::engine::Engine;
use mm::feed::{BookLevels, DecodeError, Decoder, Event, FeedStats, Level};
use mm::hot::{
    self, FeedLoopConfig, HotRecord, LoopEnd, LoopStats, SnapshotFetcher, HOT_RECORD_CHANNEL_DEPTH,
};
use mm::journal::{frame_ring, FrameDrain, JournalReader, JournalWriter, RecordKind};
use mm::model::ofi::Touch;
use mm::model::{sigma_from_f64, Ofi, QuoteInput};
use mm::net::ws::PRESIZE_PONG;
use mm::net::{ConnConfig, Disconnect, NetError, NetEvent, TlsRoots};
use mm::shutdown::{Deadline, Shutdown, JOIN_WAIT};
use mm::telemetry::log::Logger;
use mm::types::{Qty, Side};

use support::binance::{
    btcusdt_spec, engine_params, to_level, Msg, NaiveBook, Recorded, RestServer, SNAPSHOT_LIMIT,
};
use support::{server_frame, ServerConn, ServerEvent, TestPki};

const WAIT: Duration = Duration::from_secs(20);
const NS_PER_MS: u64 = 1_000_000;
/// σ sampling interval of the engines under test, seconds (wall time; see each test).
const SIGMA_SAMPLE_S: f64 = 0.025;
/// Levels per side compared with the naive book.
const TOP_LEVELS: usize = 100;
/// The snapshot request the loop must send.
const SNAPSHOT_TARGET: &str = "/api/v3/depth?symbol=BTCUSDT&limit=1000";

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

/// 10,000 recorded messages paced at 40× their recorded rate (≈ 2.3 s): the loop connects,
/// asks for the snapshot over HTTPS, syncs, and ends with exactly the state of an
/// independent replay of the same bytes at the same timestamps.
#[test]
fn syncs_over_tls_and_matches_an_independent_replay() {
    const N: usize = 10_000;
    const SPEEDUP: u64 = 40;
    let _serial = serial();
    let fx = Fixture::new(N);
    let mut hot = HotRun::start(&fx, None);
    let sc = fx.accept();
    fx.send_paced(&sc, 0..N, SPEEDUP, &mut hot);
    hot.wait("all frames", |h| h.frames() == N);
    let mut done = hot.finish();

    done.assert_clean_run(N);
    let close = sc.recv_matching(WAIT, |e| matches!(e, ServerEvent::Close(_)));
    assert_eq!(close, Some(ServerEvent::Close(Some(1000))), "polite close");
    let rec = &fx.venue.rec;
    // Transport: every frame arrived intact, in order, once; the snapshot body too.
    let frames = done.frames();
    assert_eq!(frames.len(), N);
    for (i, (got, want)) in frames.iter().zip(&rec.messages).enumerate() {
        assert!(got.payload == want.json, "frame {i} differs");
    }
    let snapshots = done.snapshots();
    assert_eq!(snapshots.len(), 1);
    assert_eq!(snapshots[0].payload, rec.snapshot.json);
    assert_eq!(fx.rest.targets(), [SNAPSHOT_TARGET]);
    assert_eq!(
        done.count(|r| matches!(r, HotRecord::Net(NetEvent::Open { .. }))),
        1
    );
    assert_eq!(done.requested(), vec![0]);
    assert_eq!(
        done.count(|r| matches!(r, HotRecord::SnapshotLoaded { bytes, .. } if *bytes == rec.snapshot.json.len())),
        1
    );
    // The loop's timestamps: one clock, never backwards.
    assert!(done.journal.windows(2).all(|w| w[0].ts <= w[1].ts));

    let stats = done.end.engine.stats();
    let kinds = |f: fn(&Msg) -> bool| rec.parsed.iter().filter(|m| f(m)).count() as u64;
    assert_eq!(
        stats.book_tickers,
        kinds(|m| matches!(m, Msg::Ticker { .. }))
    );
    assert_eq!(stats.diffs, kinds(Msg::is_diff));
    assert_eq!(stats.trades, kinds(|m| matches!(m, Msg::Trade)));
    assert_eq!(
        (stats.snapshots, stats.gaps, stats.snapshots_too_old),
        (1, 0, 0)
    );
    assert!(stats.quotes > 1_000, "{stats:?}");

    // The replay: same bytes, same timestamps, fresh decoder and engine.
    let t_end = done.journal.last().unwrap().ts;
    let ofi = NaiveOfi::over(&done.journal);
    let (t_quote, touch) = ofi.last_change.unwrap();
    let mut probes = vec![t_quote];
    probes.extend(ofi.tail_probes(t_end));
    let (mut reference, ref_decoder) = replay(&done.journal, &[], |_| true);
    let hot_ofi = assert_same_engine(&mut done.end.engine, &mut reference, &probes);
    assert_eq!(*done.end.decoder.stats(), *ref_decoder.stats());

    // Independent references: the naive book, the naive OFI, the quote from them.
    let engine = &done.end.engine;
    assert_book_matches(engine, &rec.true_book_at(N));
    for (&t, &got) in probes.iter().zip(&hot_ofi) {
        assert_eq!(got, ofi.at(t), "OFI at {t} (end {t_end})");
    }
    // Real data saturates the normalised OFI (at 1x, 85 % of quotes have |OFI/AD| >= 1;
    // here the window holds 40x more changes): mostly ±1 until the window is nearly empty.
    let unclamped = hot_ofi.iter().filter(|o| o.abs() < Ofi::ONE).count() - 1;
    assert!(
        hot_ofi[..hot_ofi.len() - 1].iter().all(|o| *o != Ofi::ZERO),
        "a live window until it expires: {hot_ofi:?}"
    );
    assert_eq!(*hot_ofi.last().unwrap(), Ofi::ZERO, "the window expired");
    assert_eq!(engine.touch(), Some(touch));
    let quoter = engine_params(SIGMA_SAMPLE_S).quoter;
    let prior = sigma_from_f64(quoter.params().sigma_bps_per_sqrt_s);
    assert_ne!(
        engine.sigma(),
        prior,
        "σ is the online estimate, past its warm-up"
    );
    let expected_quote = quoter.quote(&QuoteInput {
        best_bid: touch.bid,
        best_ask: touch.ask,
        inventory: Qty(0),
        sigma: engine.sigma(),
        ofi: ofi.at(t_quote),
        bid_qty: touch.bid_qty,
        ask_qty: touch.ask_qty,
    });
    assert_eq!(*engine.quote(), expected_quote);
    assert!(engine.quote().bid.is_some() && engine.quote().ask.is_some());
    println!(
        "{N} frames at {SPEEDUP}x: {} quotes, {} diffs applied, OFI {} at the last quote, \
         {} OFI probes ({unclamped} off the clamp), σ {} bps/√s",
        stats.quotes,
        stats.diffs,
        ofi.at(t_quote),
        probes.len(),
        engine.sigma()
    );
}

/// The server cuts TCP in the middle of a frame: the loop reports the truncation, the
/// engine forgets its book, the connection comes back, a new snapshot is requested and the
/// book is the exchange's again.
#[test]
fn tcp_cut_mid_frame_reconnects_and_resyncs() {
    const A: usize = 2_000;
    const LOST: usize = 40;
    let _serial = serial();
    let fx = Fixture::new(4_500);
    let mut hot = HotRun::start(&fx, None);
    let sc = fx.accept();
    fx.send(&sc, 0..A);
    hot.wait("initial sync", |h| h.frames() == A && h.loaded() == 1);

    // Half of the next frame, then FIN without close_notify; the venue moves on meanwhile.
    let frame = server_frame(0x1, true, &fx.venue.rec.messages[A].json);
    sc.send_raw(frame[..frame.len() / 2].to_vec());
    sc.cut_tcp();
    fx.venue.release(A + LOST);
    hot.wait("the disconnect", |h| !h.disconnects().is_empty());
    assert_eq!(
        hot.disconnects()[0].0,
        Disconnect::Failed(NetError::TruncatedByPeer)
    );
    let sc2 = fx.accept();
    let end = fx.resync_and_continue(&sc2, &mut hot, A + LOST, A);
    let mut done = hot.finish();

    done.assert_clean_run(end - LOST);
    assert_eq!(done.disconnects().len(), 1);
    assert_eq!(
        done.count(|r| matches!(r, HotRecord::Net(NetEvent::Open { .. }))),
        2
    );
    assert_eq!(done.requested(), vec![0, 0], "start, then the reconnect");
    assert_eq!(done.loaded(), 2);
    assert_eq!(done.end.stats.disconnects, 1);
    assert_eq!(done.end.engine.stats().snapshots, 2);
    let sent: Vec<usize> = (0..A).chain(A + LOST..end).collect();
    done.assert_frames_are(&fx, &sent);
    assert_book_matches(&done.end.engine, &fx.venue.rec.true_book_at(end));
    done.assert_replay_matches(|_| true);
}

/// One depth diff never reaches the client: the gap is counted, a snapshot is requested,
/// and the book is back in sync with the exchange's (which did apply that diff).
#[test]
fn depth_gap_is_counted_and_resynced() {
    const A: usize = 2_000;
    let _serial = serial();
    let fx = Fixture::new(4_500);
    let mut hot = HotRun::start(&fx, None);
    let sc = fx.accept();
    fx.send(&sc, 0..A);
    hot.wait("initial sync", |h| h.frames() == A && h.loaded() == 1);

    let parsed = &fx.venue.rec.parsed;
    let skipped = (A..parsed.len()).find(|&i| parsed[i].is_diff()).unwrap();
    let b = skipped + 1_200;
    fx.venue.release(b);
    fx.send(&sc, A..skipped);
    fx.send(&sc, skipped + 1..b);
    hot.wait("the resync", |h| h.loaded() == 2 && h.frames() == b - 1);
    let c = b + 800;
    fx.send(&sc, b..c);
    hot.wait("the rest", |h| h.frames() == c - 1);
    let mut done = hot.finish();

    done.assert_clean_run(c - 1);
    assert!(done.disconnects().is_empty());
    assert_eq!(done.end.engine.stats().gaps, 1);
    assert_eq!(done.end.stats.engine.gaps, 1);
    assert_eq!(done.requested(), vec![0, 1], "start, then after one gap");
    assert_eq!(fx.rest.targets(), [SNAPSHOT_TARGET, SNAPSHOT_TARGET]);
    let sent: Vec<usize> = (0..c).filter(|&i| i != skipped).collect();
    done.assert_frames_are(&fx, &sent);
    assert_book_matches(&done.end.engine, &fx.venue.rec.true_book_at(c));
    done.assert_replay_matches(|_| true);
}

/// Frames that are not valid messages are counted by kind and skipped; the engine ends
/// exactly where it ends without them.
#[test]
fn garbage_json_is_counted_and_skipped() {
    const A: usize = 2_000;
    const B: usize = 4_000;
    const GARBAGE: [&str; 3] = [
        r#"{"stream":"btcusdt@bookTicker","data":{"u":50093240000,"s":"BTCUSDT","b":"61837.63000000","B":"#,
        r#"{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate",,"U":1}}"#,
        "hello, this is not JSON",
    ];
    let _serial = serial();
    let fx = Fixture::new(B);
    let mut hot = HotRun::start(&fx, None);
    let sc = fx.accept();
    fx.send(&sc, 0..A);
    hot.wait("initial sync", |h| h.frames() == A && h.loaded() == 1);
    fx.send(&sc, A..A + 100);
    for g in GARBAGE {
        sc.send_text(g);
    }
    fx.send(&sc, A + 100..B);
    hot.wait("all frames", |h| h.frames() == B + GARBAGE.len());
    let mut done = hot.finish();

    assert_eq!(done.end.stats.frames, (B + GARBAGE.len()) as u64);
    assert_eq!(done.end.stats.decode_errors, GARBAGE.len() as u64);
    let errors = done.end.decoder.stats();
    assert_eq!(errors.error_count(DecodeError::Truncated), 1, "{errors:?}");
    assert_eq!(errors.error_count(DecodeError::Malformed), 2, "{errors:?}");
    assert!(done.disconnects().is_empty());
    assert_eq!(done.requested(), vec![0]);
    assert_book_matches(&done.end.engine, &fx.venue.rec.true_book_at(B));

    // Without the garbage: the same engine, the same decoded events.
    let is_garbage = |r: &JRec| GARBAGE.iter().any(|g| r.payload == g.as_bytes());
    assert_eq!(done.journal.iter().filter(|r| is_garbage(r)).count(), 3);
    let (mut reference, ref_decoder) = replay(&done.journal, &[], |r| !is_garbage(r));
    let t_end = done.journal.last().unwrap().ts;
    let ofi = NaiveOfi::over(&done.journal);
    let probes = ofi.tail_probes(t_end);
    let hot_ofi = assert_same_engine(&mut done.end.engine, &mut reference, &probes);
    let without_errors = |s: &FeedStats| FeedStats {
        errors: [0; DecodeError::COUNT],
        ..*s
    };
    assert_eq!(
        without_errors(done.end.decoder.stats()),
        *ref_decoder.stats()
    );
    // And the naive OFI agrees (no resync here, so it applies).
    for (t, got) in probes.into_iter().zip(hot_ofi) {
        assert_eq!(got, ofi.at(t));
    }
}

/// The server goes silent: after `stale_after` the loop drops the connection as stale,
/// reconnects, and the book is resynced.
#[test]
fn silent_server_is_stale_then_reconnects_and_resyncs() {
    const A: usize = 2_000;
    const STALE_MS: u64 = 1_000;
    let _serial = serial();
    let fx = Fixture::new(4_500);
    let mut hot = HotRun::start(&fx, Some(STALE_MS * NS_PER_MS));
    let sc = fx.accept();
    fx.send(&sc, 0..A);
    hot.wait("initial sync", |h| h.frames() == A && h.loaded() == 1);
    let silent_from = now();
    hot.wait("the stale disconnect", |h| !h.disconnects().is_empty());
    let noticed_after = silent_from.elapsed();
    match hot.disconnects()[0].0 {
        Disconnect::Stale { silent_ns } => assert!(silent_ns >= STALE_MS * NS_PER_MS),
        other => panic!("expected Stale, got {other:?}"),
    }
    assert!(noticed_after < Duration::from_millis(STALE_MS + 2_000));
    let sc2 = fx.accept();
    let end = fx.resync_and_continue(&sc2, &mut hot, A, A);
    let mut done = hot.finish();
    drop(sc);

    done.assert_clean_run(end);
    assert_eq!(done.disconnects().len(), 1);
    assert_eq!(done.requested(), vec![0, 0]);
    assert_eq!(done.end.engine.stats().snapshots, 2);
    assert_book_matches(&done.end.engine, &fx.venue.rec.true_book_at(end));
    done.assert_replay_matches(|_| true);
    println!("stale noticed after {noticed_after:?} of silence");
}

/// A server ping in the middle of a burst is answered with a pong carrying its payload;
/// the stream goes on untouched.
#[test]
fn server_ping_gets_a_pong_with_the_same_payload() {
    const A: usize = 2_000;
    const B: usize = 3_000;
    const PAYLOAD: &[u8] = b"1723161255343";
    let _serial = serial();
    let fx = Fixture::new(B);
    let mut hot = HotRun::start(&fx, None);
    let sc = fx.accept();
    fx.send(&sc, 0..A);
    hot.wait("initial sync", |h| h.frames() == A && h.loaded() == 1);
    fx.venue.release(B);
    let msgs = &fx.venue.rec.messages;
    let mut frames: Vec<Vec<u8>> = msgs[A..B]
        .iter()
        .map(|l| server_frame(0x1, true, &l.json))
        .collect();
    frames.insert(100, server_frame(0x9, true, PAYLOAD));
    let sent_at = now();
    sc.send_frames(frames, true);
    // The session's unsolicited presizing pong is not the answer.
    let pong = sc.recv_matching(
        WAIT,
        |e| matches!(e, ServerEvent::Pong(p) if p[..] != PRESIZE_PONG[..]),
    );
    let pong_after = sent_at.elapsed();
    assert_eq!(pong, Some(ServerEvent::Pong(PAYLOAD.to_vec())));
    hot.wait("all frames", |h| h.frames() == B);
    let mut done = hot.finish();

    done.assert_clean_run(B);
    assert!(done.disconnects().is_empty());
    assert_book_matches(&done.end.engine, &fx.venue.rec.true_book_at(B));
    done.assert_replay_matches(|_| true);
    println!("pong back {pong_after:?} after the burst was handed to the server");
}

/// Ctrl+C's equivalent — `Shutdown::request()` from another thread — ends the loop with
/// `LoopEnd::Signal` while data is streaming, promptly, with a WebSocket close (1000).
#[test]
fn shutdown_request_from_another_thread_ends_the_loop_promptly() {
    const A: usize = 1_000;
    let _serial = serial();
    let fx = Fixture::new(8_000);
    let mut hot = HotRun::start(&fx, None);
    let sc = fx.accept();
    fx.send(&sc, 0..A);
    hot.wait("initial sync", |h| h.frames() == A && h.loaded() == 1);

    let shutdown = hot.shutdown.clone();
    let requested_at = Arc::new(Mutex::new(None));
    let stamp = requested_at.clone();
    let requester = thread::spawn(move || {
        sleep(Duration::from_millis(200));
        *stamp.lock().unwrap() = Some(now());
        shutdown.request();
    });
    // Keep the stream busy meanwhile: 20 messages a millisecond.
    let mut next = A;
    while !hot.thread.as_ref().unwrap().is_finished() && next < 8_000 {
        fx.send(&sc, next..next + 20);
        next += 20;
        sleep(Duration::from_millis(1));
    }
    requester.join().unwrap();
    let done = hot.finish();
    let requested_at = requested_at.lock().unwrap().unwrap();
    let took = done.end.returned_at.saturating_duration_since(requested_at);

    assert_eq!(done.end.end, LoopEnd::Signal);
    assert!(
        took < Duration::from_millis(250),
        "loop returned {took:?} after the request"
    );
    assert!(done.end.stats.frames > A as u64, "stopped while streaming");
    assert_eq!(done.end.stats.frames as usize, done.frames().len());
    // (The polite WebSocket close on shutdown is checked on a quiet connection in
    // `syncs_over_tls_and_matches_an_independent_replay`: here frames are still in flight
    // when the client closes, so the kernel may answer them with a reset first.)
    println!(
        "returned {took:?} after the request, {} frames in",
        done.end.stats.frames
    );
}

/// A REST endpoint that keeps answering with a snapshot older than the stream (Binance's
/// REST snapshot can lag its stream) must not be hammered: after a too-old snapshot the
/// loop should wait before asking again, as it does after a failed one
/// (`hot::SNAPSHOT_RETRY_NS`, 1 s). Here the gap's resync only ever gets the session's
/// first snapshot.
#[test]
fn too_old_snapshots_are_asked_for_again_with_a_delay() {
    const A: usize = 2_000;
    const WATCH_MS: u64 = 1_500;
    let _serial = serial();
    let fx = Fixture::new(4_000);
    let mut hot = HotRun::start(&fx, None);
    let sc = fx.accept();
    fx.send(&sc, 0..A);
    hot.wait("initial sync", |h| h.frames() == A && h.loaded() == 1);
    fx.venue.only_first_snapshot.store(true, Ordering::SeqCst);
    let parsed = &fx.venue.rec.parsed;
    let skipped = (A..parsed.len()).find(|&i| parsed[i].is_diff()).unwrap();
    fx.send(&sc, A..skipped);
    fx.send(&sc, skipped + 1..4_000);
    hot.wait("the gap", |h| h.frames() == 3_999);
    let from = now();
    while from.elapsed() < Duration::from_millis(WATCH_MS) {
        hot.pump();
        sleep(Duration::from_millis(5));
    }
    let done = hot.finish();
    let asked = fx.rest.targets().len() - 1;
    let too_old = done.end.engine.stats().snapshots_too_old;
    println!("{asked} snapshot requests after the gap in {WATCH_MS} ms ({too_old} too old)");
    assert!(too_old >= 1, "the scenario: a too-old snapshot");
    // The records say what happened: a refused snapshot is not reported as loaded.
    let loaded = done.count(|r| matches!(r, HotRecord::SnapshotLoaded { .. }));
    let refused = done.count(|r| matches!(r, HotRecord::SnapshotTooOld { .. }));
    assert_eq!(loaded as u64, done.end.engine.stats().snapshots);
    assert_eq!(refused as u64, too_old);
    assert!(
        asked <= 3,
        "{asked} snapshot requests in {WATCH_MS} ms: no delay after a too-old snapshot"
    );
}

// ---------------------------------------------------------------------------------------
// The venue
// ---------------------------------------------------------------------------------------

/// What the exchange knows: the true stream, and how much of it has happened.
struct Venue {
    rec: Recorded,
    /// Messages produced so far (sent, or lost on the way): resync snapshots show the book
    /// as of this point.
    released: AtomicUsize,
    /// Serve the recorded (first) snapshot to every request: a lagging REST endpoint.
    only_first_snapshot: AtomicBool,
}

impl Venue {
    fn release(&self, upto: usize) {
        self.released.fetch_max(upto, Ordering::SeqCst);
    }

    /// The recorded snapshot for the first request; the true book at `released` after
    /// (unless `only_first_snapshot`).
    fn snapshot_body(&self, served_before: usize) -> Vec<u8> {
        if served_before == 0 || self.only_first_snapshot.load(Ordering::SeqCst) {
            return self.rec.snapshot.json.clone();
        }
        let at = self.released.load(Ordering::SeqCst);
        self.rec.true_book_at(at).snapshot_json(SNAPSHOT_LIMIT)
    }
}

struct Fixture {
    pki: TestPki,
    ws: support::WsServer,
    rest: RestServer,
    venue: Arc<Venue>,
}

impl Fixture {
    fn new(messages: usize) -> Fixture {
        let rec = Recorded::load(&[support::data::bundled_spot()], messages);
        assert_eq!(rec.messages.len(), messages);
        let pki = TestPki::new();
        let id = pki.server_identity(&["localhost", "127.0.0.1"]);
        let ws = support::WsServer::start_tls(&id);
        let venue = Arc::new(Venue {
            rec,
            released: AtomicUsize::new(0),
            only_first_snapshot: AtomicBool::new(false),
        });
        let served = AtomicUsize::new(0);
        let v = venue.clone();
        let rest = RestServer::start(
            &id,
            Arc::new(move |_target: &str| v.snapshot_body(served.fetch_add(1, Ordering::SeqCst))),
        );
        Fixture {
            pki,
            ws,
            rest,
            venue,
        }
    }

    /// The next WebSocket connection, upgraded.
    fn accept(&self) -> ServerConn {
        let sc = self.ws.accept(WAIT);
        assert_eq!(sc.recv(WAIT), Some(ServerEvent::Open));
        sc
    }

    /// Sends `range` of the recorded messages, as recorded, in coalesced batches.
    fn send(&self, sc: &ServerConn, range: Range<usize>) {
        self.venue.release(range.end);
        for chunk in self.venue.rec.messages[range].chunks(256) {
            let frames = chunk
                .iter()
                .map(|l| server_frame(0x1, true, &l.json))
                .collect();
            sc.send_frames(frames, true);
        }
    }

    /// Sends `range` at `speedup` × the recorded pace.
    fn send_paced(&self, sc: &ServerConn, range: Range<usize>, speedup: u64, hot: &mut HotRun) {
        let msgs = &self.venue.rec.messages;
        let t0_rec = msgs[range.start].local_ts_ns;
        let t0 = now();
        let mut next = range.start;
        while next < range.end {
            let due = t0_rec + t0.elapsed().as_nanos() as u64 * speedup;
            let upto = (next..range.end)
                .find(|&i| msgs[i].local_ts_ns > due)
                .unwrap_or(range.end);
            if upto > next {
                self.send(sc, next..upto);
                next = upto;
            }
            hot.pump();
            sleep(Duration::from_millis(1));
        }
    }

    /// After a reconnect: sends from `from` (the venue's book moves on to `from + 1,500`),
    /// waits for the new snapshot, then sends 800 more so that the book goes live on them.
    /// `frames_before` were received before. Returns the end of what was sent.
    fn resync_and_continue(
        &self,
        sc: &ServerConn,
        hot: &mut HotRun,
        from: usize,
        frames_before: usize,
    ) -> usize {
        let b = from + 1_500;
        let c = b + 800;
        self.venue.release(b);
        self.send(sc, from..b);
        let want = frames_before + (b - from);
        hot.wait("the resync", |h| h.loaded() == 2 && h.frames() == want);
        self.send(sc, b..c);
        hot.wait("the rest", |h| h.frames() == want + (c - b));
        c
    }
}

// ---------------------------------------------------------------------------------------
// The hot thread under test, and the journal tap
// ---------------------------------------------------------------------------------------

/// What the hot thread hands back.
struct HotEnd {
    end: LoopEnd,
    stats: LoopStats,
    engine: Engine,
    decoder: Decoder,
    returned_at: Instant,
}

/// `run_feed_loop` on its own thread, wired as `--mode=record` wires it.
struct HotRun {
    shutdown: Shutdown,
    thread: Option<JoinHandle<HotEnd>>,
    records: Receiver<HotRecord>,
    seen: Vec<HotRecord>,
    tap: Option<Tap>,
    logger: Option<Logger>,
    log_dir: PathBuf,
}

impl HotRun {
    fn start(fx: &Fixture, stale_after_ns: Option<u64>) -> HotRun {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let symbol = btcusdt_spec().symbol;
        let roots = TlsRoots::CaFile(fx.pki.ca_pem_path.clone());
        let mut conn = ConnConfig::new(&hot::stream_url(&fx.ws.url(""), &symbol), roots.clone());
        if let Some(ns) = stale_after_ns {
            conn.stale_after_ns = ns;
        }
        let snapshot_url = hot::snapshot_url(&fx.rest.base_url(), &symbol, 1_000);
        let log_dir =
            std::env::temp_dir().join(format!("mm-hot-path-{}-{seq}", std::process::id()));
        let logger = Logger::start_with(&log_dir, LogLevel::Info, false).unwrap();
        let log = logger.handle();
        let (ring, drain) = frame_ring(16 << 20);
        let tap = Tap::start(drain, seq);
        let (tx, records) = bounded(HOT_RECORD_CHANNEL_DEPTH);
        let shutdown = Shutdown::new();
        let stop = shutdown.clone();
        let thread = thread::Builder::new()
            .name("hot".to_string())
            .spawn(move || {
                let mut ring = ring;
                let fetcher = SnapshotFetcher::start(snapshot_url, roots, log.clone()).unwrap();
                let mut engine = Engine::new(engine_params(SIGMA_SAMPLE_S));
                let mut decoder = Decoder::new(btcusdt_spec());
                let cfg = FeedLoopConfig {
                    conn,
                    cpu_core: None,
                    duration_ns: None,
                    warm_every_ns: 0,
                };
                let (end, stats) = hot::run_feed_loop(
                    &cfg,
                    &mut engine,
                    &mut decoder,
                    Some(&mut ring),
                    &tx,
                    &fetcher,
                    &stop,
                )
                .unwrap();
                let returned_at = now();
                drop(ring);
                fetcher.join(&Deadline::after(JOIN_WAIT), &log);
                HotEnd {
                    end,
                    stats,
                    engine,
                    decoder,
                    returned_at,
                }
            })
            .unwrap();
        HotRun {
            shutdown,
            thread: Some(thread),
            records,
            seen: Vec::new(),
            tap: Some(tap),
            logger: Some(logger),
            log_dir,
        }
    }

    /// Moves the records sent so far into `seen`.
    fn pump(&mut self) {
        while let Ok(r) = self.records.try_recv() {
            self.seen.push(r);
        }
    }

    /// Waits (bounded) until `done` holds.
    fn wait(&mut self, what: &str, mut done: impl FnMut(&HotRun) -> bool) {
        let start = now();
        loop {
            self.pump();
            if done(self) {
                return;
            }
            assert!(
                start.elapsed() < WAIT,
                "timed out waiting for {what}: {} frames; records {:?}",
                self.frames(),
                events_of(&self.seen)
            );
            sleep(Duration::from_millis(1));
        }
    }

    fn frames(&self) -> usize {
        self.tap.as_ref().map_or(0, Tap::frames)
    }

    fn loaded(&self) -> usize {
        count(&self.seen, |r| {
            matches!(r, HotRecord::SnapshotLoaded { .. })
        })
    }

    fn disconnects(&self) -> Vec<(Disconnect, u64)> {
        disconnects(&self.seen)
    }

    /// Stops the loop (if still running), joins everything, and returns what happened.
    fn finish(mut self) -> Done {
        self.shutdown.request();
        let end = self.thread.take().unwrap().join().unwrap();
        self.pump();
        let journal = self.tap.take().unwrap().join();
        Done {
            end,
            records: std::mem::take(&mut self.seen),
            journal,
        }
    }
}

impl Drop for HotRun {
    fn drop(&mut self) {
        // A failed test must not leave a busy-polling thread behind for the next one.
        self.shutdown.request();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(tap) = self.tap.take() {
            let _ = tap.join();
        }
        if let Some(logger) = self.logger.take() {
            let _ = logger.finish();
        }
        let _ = std::fs::remove_dir_all(&self.log_dir);
    }
}

/// One journal record, owned.
#[derive(Clone, Debug)]
struct JRec {
    kind: RecordKind,
    ts: u64,
    payload: Vec<u8>,
}

/// Drains the loop's journal ring into a journal file and reads it back as it grows (the
/// side thread's job in `--mode=record`, plus a reader).
struct Tap {
    recs: Arc<Mutex<Vec<JRec>>>,
    frames: Arc<AtomicUsize>,
    thread: JoinHandle<()>,
}

impl Tap {
    fn start(mut drain: FrameDrain, seq: u64) -> Tap {
        let path =
            std::env::temp_dir().join(format!("mm-hot-path-{}-{seq}.mmj", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let recs = Arc::new(Mutex::new(Vec::new()));
        let frames = Arc::new(AtomicUsize::new(0));
        let (out, frame_count) = (recs.clone(), frames.clone());
        let thread = thread::spawn(move || {
            let mut writer = JournalWriter::create(&path, "BTCUSDT", 0).unwrap();
            writer.flush().unwrap();
            let mut reader = JournalReader::open(&path).unwrap();
            loop {
                let last = drain.is_abandoned();
                drain.drain_into(&mut writer).unwrap();
                // Whole records only: the reader runs after the flush, on this thread.
                writer.flush().unwrap();
                while let Some(r) = reader.next_record().unwrap() {
                    if r.kind == RecordKind::Frame {
                        frame_count.fetch_add(1, Ordering::SeqCst);
                    }
                    out.lock().unwrap().push(JRec {
                        kind: r.kind,
                        ts: r.local_ts_ns,
                        payload: r.payload.to_vec(),
                    });
                }
                if last {
                    break;
                }
                sleep(Duration::from_millis(1));
            }
            assert_eq!(reader.torn_tail_bytes(), 0);
            writer.finish().unwrap();
            let _ = std::fs::remove_file(&path);
        });
        Tap {
            recs,
            frames,
            thread,
        }
    }

    fn frames(&self) -> usize {
        self.frames.load(Ordering::SeqCst)
    }

    /// Waits for the ring's producer to be gone and everything drained.
    fn join(self) -> Vec<JRec> {
        self.thread.join().unwrap();
        std::mem::take(&mut *self.recs.lock().unwrap())
    }
}

/// Everything a finished run left behind.
struct Done {
    end: HotEnd,
    records: Vec<HotRecord>,
    journal: Vec<JRec>,
}

impl Done {
    fn count(&self, pred: impl Fn(&HotRecord) -> bool) -> usize {
        count(&self.records, pred)
    }

    fn loaded(&self) -> usize {
        self.count(|r| matches!(r, HotRecord::SnapshotLoaded { .. }))
    }

    /// `gaps` of each `SnapshotRequested`, in order.
    fn requested(&self) -> Vec<u64> {
        self.records
            .iter()
            .filter_map(|r| match r {
                HotRecord::SnapshotRequested { gaps, .. } => Some(*gaps),
                _ => None,
            })
            .collect()
    }

    fn disconnects(&self) -> Vec<(Disconnect, u64)> {
        disconnects(&self.records)
    }

    fn frames(&self) -> Vec<&JRec> {
        self.journal
            .iter()
            .filter(|r| r.kind == RecordKind::Frame)
            .collect()
    }

    fn snapshots(&self) -> Vec<&JRec> {
        self.journal
            .iter()
            .filter(|r| r.kind == RecordKind::Snapshot)
            .collect()
    }

    /// Stopped by the request, saw `frames` frames, decoded all, dropped nothing, no
    /// failed snapshot, the book in sync.
    fn assert_clean_run(&self, frames: usize) {
        let s = &self.end.stats;
        assert_eq!(self.end.end, LoopEnd::Signal);
        assert_eq!(s.frames, frames as u64, "{s:?}");
        assert_eq!(self.frames().len(), frames);
        assert_eq!(s.decode_errors, 0, "{:?}", self.end.decoder.stats());
        assert_eq!((s.records_dropped, s.journal_dropped), (0, 0), "{s:?}");
        assert_eq!(
            self.count(|r| matches!(r, HotRecord::SnapshotFailed { .. })),
            0
        );
        assert!(matches!(
            self.end.engine.book().state(),
            SyncState::Live { .. }
        ));
    }

    /// The journal's frames are exactly the recorded messages `indices`, in order.
    fn assert_frames_are(&self, fx: &Fixture, indices: &[usize]) {
        let frames = self.frames();
        assert_eq!(frames.len(), indices.len());
        for (got, &i) in frames.iter().zip(indices) {
            assert!(got.payload == fx.venue.rec.messages[i].json, "message {i}");
        }
    }

    /// The replay of the journal (with a resync at each reported disconnect) ends in
    /// exactly the hot engine's state.
    fn assert_replay_matches(&mut self, keep: impl Fn(&JRec) -> bool) {
        let resyncs: Vec<u64> = self.disconnects().iter().map(|d| d.1).collect();
        let (mut reference, ref_decoder) = replay(&self.journal, &resyncs, keep);
        let t_end = self.journal.last().unwrap().ts;
        assert_same_engine(&mut self.end.engine, &mut reference, &probes_after(t_end));
        assert_eq!(*self.end.decoder.stats(), *ref_decoder.stats());
    }
}

// ---------------------------------------------------------------------------------------
// References
// ---------------------------------------------------------------------------------------

/// A fresh decoder and engine fed `journal` (the records `keep` accepts) in order, at the
/// journal's timestamps, with `Engine::resync` at each time in `resync_at_ns` — placed the
/// way the loop orders it: after the frames of the poll that saw the disconnect (same
/// timestamp) and before any snapshot handled at or after it.
fn replay(
    journal: &[JRec],
    resync_at_ns: &[u64],
    keep: impl Fn(&JRec) -> bool,
) -> (Engine, Decoder) {
    let mut engine = Engine::new(engine_params(SIGMA_SAMPLE_S));
    let mut decoder = Decoder::new(btcusdt_spec());
    let mut resyncs = resync_at_ns.iter().copied().peekable();
    for r in journal.iter().filter(|r| keep(r)) {
        while let Some(at) = resyncs.peek().copied() {
            let after = match r.kind {
                RecordKind::Frame => r.ts > at,
                RecordKind::Snapshot => r.ts >= at,
                RecordKind::Marker => false,
            };
            if !after {
                break;
            }
            engine.resync();
            resyncs.next();
        }
        if r.kind == RecordKind::Marker {
            continue;
        }
        let Ok(event) = decoder.decode(&r.payload, r.ts) else {
            continue;
        };
        let levels = match &event {
            Event::Depth(d) => decoder.diff_levels(d),
            Event::Snapshot(s) => decoder.snapshot_levels(s),
            _ => BookLevels {
                bids: &[],
                asks: &[],
            },
        };
        engine.on_event(&event, levels, r.ts);
    }
    for _ in resyncs {
        engine.resync();
    }
    (engine, decoder)
}

/// Everything observable of two engines is equal. OFI is probed at each of `probes_ns`
/// (ascending: probing expires the window for good); the hot engine's values are returned.
fn assert_same_engine(hot: &mut Engine, reference: &mut Engine, probes_ns: &[u64]) -> Vec<Ofi> {
    assert_eq!(hot.stats(), reference.stats());
    assert_eq!(hot.quote(), reference.quote());
    assert_eq!(hot.touch(), reference.touch());
    assert_eq!(hot.sigma(), reference.sigma());
    assert_eq!(hot.book().state(), reference.book().state());
    for side in [Side::Buy, Side::Sell] {
        let a: Vec<Level> = hot.book().book_any_state().levels(side).collect();
        let b: Vec<Level> = reference.book().book_any_state().levels(side).collect();
        assert!(
            a == b,
            "{side:?} ladders differ ({} vs {} levels)",
            a.len(),
            b.len()
        );
    }
    probes_ns
        .iter()
        .map(|&t| {
            let ofi = hot.ofi(t);
            assert_eq!(ofi, reference.ofi(t), "OFI at {t}");
            ofi
        })
        .collect()
}

/// OFI probe times: every 50 ms from the end to one window later (the window empties
/// change by change, so most probes are off the ±1 clamp), then 2 s after the end (empty).
fn probes_after(t_end_ns: u64) -> Vec<u64> {
    let mut probes: Vec<u64> = (0..=20).map(|k| t_end_ns + k * 50 * NS_PER_MS).collect();
    probes.push(t_end_ns + 2_000 * NS_PER_MS);
    probes
}

/// The engine's book is in sync at the naive book's update id, and its best
/// `TOP_LEVELS` levels per side are the naive book's (ticks and lots).
fn assert_book_matches(engine: &Engine, truth: &NaiveBook) {
    assert_eq!(
        engine.book().state(),
        SyncState::Live {
            final_update_id: truth.last_update_id
        }
    );
    let book = engine.book().book().unwrap();
    let bids: Vec<Level> = book.levels(Side::Buy).take(TOP_LEVELS).collect();
    let asks: Vec<Level> = book.levels(Side::Sell).take(TOP_LEVELS).collect();
    let want_bids: Vec<Level> = truth
        .top_bids(TOP_LEVELS)
        .into_iter()
        .map(to_level)
        .collect();
    let want_asks: Vec<Level> = truth
        .top_asks(TOP_LEVELS)
        .into_iter()
        .map(to_level)
        .collect();
    assert_eq!(bids.len(), TOP_LEVELS);
    assert_eq!(bids, want_bids, "bids");
    assert_eq!(asks, want_asks, "asks");
}

/// Cont–Kukanov–Stoikov OFI written out from the paper, over the bookTicker frames of a
/// journal at their timestamps: touch changes only, e_n per eq. 10, the window keeps
/// changes with ts > t − 1 s, normalised by the mean touch depth (the engine's documented
/// normalisation: 2·n·Σe / Σ(qᴮ+qᴬ), clamped to ±1, truncated to I32F32).
struct NaiveOfi {
    /// (ts, e_n, qᴮ+qᴬ) of each touch change after the first.
    changes: Vec<(u64, i64, i64)>,
    /// The last touch change: its time and the touch.
    last_change: Option<(u64, Touch)>,
}

impl NaiveOfi {
    const WINDOW_NS: u64 = 1_000_000_000;

    fn over(journal: &[JRec]) -> NaiveOfi {
        let mut changes = Vec::new();
        let mut prev: Option<Touch> = None;
        let mut last_change = None;
        for r in journal.iter().filter(|r| r.kind == RecordKind::Frame) {
            let Ok(text) = std::str::from_utf8(&r.payload) else {
                continue;
            };
            if !text.contains("@bookTicker")
                || serde_json::from_str::<serde_json::Value>(text).is_err()
            {
                continue;
            }
            let Msg::Ticker { bid, ask, .. } = Msg::parse(&r.payload) else {
                continue;
            };
            let (b, a) = (to_level(bid), to_level(ask));
            let touch = Touch {
                bid: b.price,
                bid_qty: b.qty,
                ask: a.price,
                ask_qty: a.qty,
            };
            if prev == Some(touch) {
                continue;
            }
            if let Some(p) = prev {
                let mut e = 0;
                if touch.bid >= p.bid {
                    e += touch.bid_qty.0;
                }
                if touch.bid <= p.bid {
                    e -= p.bid_qty.0;
                }
                if touch.ask <= p.ask {
                    e -= touch.ask_qty.0;
                }
                if touch.ask >= p.ask {
                    e += p.ask_qty.0;
                }
                changes.push((r.ts, e, touch.bid_qty.0 + touch.ask_qty.0));
            }
            prev = Some(touch);
            last_change = Some((r.ts, touch));
        }
        NaiveOfi {
            changes,
            last_change,
        }
    }

    /// Probe times from `t_end_ns` on, ascending: the end, then the moments just before
    /// each of the last 40 change times leaves the window (the window shrinks to the last
    /// batch of changes, so most of these are off the ±1 clamp), then 2 s on (empty).
    fn tail_probes(&self, t_end_ns: u64) -> Vec<u64> {
        let mut times: Vec<u64> = self.changes.iter().map(|c| c.0).collect();
        times.dedup();
        let tail = &times[times.len().saturating_sub(40)..];
        let mut probes = vec![t_end_ns];
        for t in tail.iter().map(|t| t + Self::WINDOW_NS - 1) {
            if t > *probes.last().unwrap() {
                probes.push(t);
            }
        }
        probes.push(t_end_ns + 2 * Self::WINDOW_NS);
        probes
    }

    fn at(&self, t_ns: u64) -> Ofi {
        let live: Vec<&(u64, i64, i64)> = self
            .changes
            .iter()
            .filter(|c| c.0 <= t_ns && c.0 > t_ns - Self::WINDOW_NS)
            .collect();
        let n = live.len() as i128;
        let sum_e: i128 = live.iter().map(|c| i128::from(c.1)).sum();
        let sum_depth: i128 = live.iter().map(|c| i128::from(c.2)).sum();
        if n == 0 || sum_depth <= 0 {
            return Ofi::ZERO;
        }
        let one = 1i128 << 32;
        let bits = ((sum_e * 2 * n * one) / sum_depth).clamp(-one, one);
        Ofi::from_bits(bits as i64)
    }
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// One test at a time: each runs a busy-polling hot thread (the machine may have 2 cores).
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn count(records: &[HotRecord], pred: impl Fn(&HotRecord) -> bool) -> usize {
    records.iter().filter(|r| pred(r)).count()
}

fn disconnects(records: &[HotRecord]) -> Vec<(Disconnect, u64)> {
    records
        .iter()
        .filter_map(|r| match r {
            HotRecord::Net(NetEvent::Disconnected { cause, at_ns, .. }) => Some((*cause, *at_ns)),
            _ => None,
        })
        .collect()
}

/// The connection and snapshot records (for failure messages; without the counters and
/// latency samples).
fn events_of(records: &[HotRecord]) -> Vec<&HotRecord> {
    records
        .iter()
        .filter(|r| {
            matches!(
                r,
                HotRecord::Net(_)
                    | HotRecord::SnapshotRequested { .. }
                    | HotRecord::SnapshotLoaded { .. }
                    | HotRecord::SnapshotTooOld { .. }
                    | HotRecord::SnapshotFailed { .. }
                    | HotRecord::PinFailed { .. }
            )
        })
        .collect()
}

#[allow(clippy::disallowed_methods)] // test timing: how long the loop took to react
fn now() -> Instant {
    Instant::now()
}

#[allow(clippy::disallowed_methods)] // test pacing on the test thread, never the hot one
fn sleep(d: Duration) {
    thread::sleep(d);
}
