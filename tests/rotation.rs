//! Make-before-break rotation of the market-data connection (src/hot.rs), end to end: the
//! real `hot::run_feed_loop` with the engine as its sink, against `mm-exchange` replaying
//! the recorded BTCUSDT session at 4× over TLS + WebSocket on loopback, with the
//! connection's age limit cut to 8 s (its standby opens 4 s before). Over 15 s it rotates
//! at least once, and every rotation switches to a standby that had caught up: one depth
//! snapshot for the whole run (the first), no gap, no disconnect, and market data keeps
//! flowing after each switch.
//!
//! Runs on the bundled real slice (tools/data), so a fresh clone runs it too.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// test code: a panic is a failed test
// support/ and support/process.rs both carry the data-path helper (support/data.rs).
#![allow(clippy::duplicate_mod)]

mod support;

#[path = "support/process.rs"]
mod process;

use std::thread;

use crossbeam_channel::bounded;

use mm::config::LogLevel;
use mm::engine::Engine;
use mm::feed::Decoder;
use mm::hot::{
    self, FeedLoopConfig, HotRecord, LoopEnd, SnapshotFetcher, HOT_RECORD_CHANNEL_DEPTH,
};
use mm::net::{ConnConfig, NetEvent, TlsRoots};
use mm::shutdown::{Deadline, Shutdown, JOIN_WAIT};
use mm::telemetry::log::Logger;

use support::binance::{btcusdt_spec, engine_params};

const NS_PER_S: u64 = 1_000_000_000;

#[test]
fn rotation_switches_to_a_caught_up_standby_without_a_gap_or_a_resync() {
    let ex = process::Exchange::start(&[process::data::bundled_spot()], &["--speed", "4"]);
    let work = process::Workdir::new("mm-rotation", "run");
    let symbol = btcusdt_spec().symbol;
    let roots = TlsRoots::CaFile(ex.cert.clone());
    let base = format!("127.0.0.1:{}", ex.port);
    let mut conn = ConnConfig::new(
        &hot::stream_url(&format!("wss://{base}"), &symbol),
        roots.clone(),
    );
    conn.max_age_ns = 8 * NS_PER_S;
    let snapshot_url = hot::snapshot_url(&format!("https://{base}"), &symbol, 1_000);
    let logger = Logger::start_with(&work.path("logs"), LogLevel::Info, false).unwrap();
    let log = logger.handle();
    let (tx, records) = bounded(HOT_RECORD_CHANNEL_DEPTH);
    let hot = thread::spawn(move || {
        let fetcher = SnapshotFetcher::start(snapshot_url, roots, log.clone()).unwrap();
        let mut engine = Engine::new(engine_params(0.25));
        let mut decoder = Decoder::new(btcusdt_spec());
        let cfg = FeedLoopConfig {
            conn,
            cpu_core: None,
            duration_ns: Some(15 * NS_PER_S),
            warm_every_ns: 0,
        };
        let out = hot::run_feed_loop(
            &cfg,
            &mut engine,
            &mut decoder,
            None,
            &tx,
            &fetcher,
            &Shutdown::new(),
        )
        .unwrap();
        fetcher.join(&Deadline::after(JOIN_WAIT), &log);
        (out, engine.stats())
    });
    let ((end, stats), engine) = hot.join().unwrap();
    let _ = logger.finish();
    let seen: Vec<HotRecord> = records.try_iter().collect();
    assert_eq!(end, LoopEnd::Duration);

    let count = |f: &dyn Fn(&HotRecord) -> bool| seen.iter().filter(|r| f(r)).count();
    let rotated: Vec<u64> = seen
        .iter()
        .filter_map(|r| match r {
            HotRecord::Rotated { depth_u, .. } => Some(*depth_u),
            _ => None,
        })
        .collect();
    assert!(!rotated.is_empty(), "no rotation in 15 s: {seen:?}");
    assert_eq!(
        count(&|r| matches!(r, HotRecord::RotationStarted { .. })),
        rotated.len() + usize::from(seen.iter().rev().find_map(started_or_done) == Some(true)),
        "every standby either took over or is still catching up at the end"
    );
    assert_eq!(
        count(&|r| matches!(r, HotRecord::RotationAbandoned { .. })),
        0
    );
    assert_eq!(
        count(&|r| matches!(r, HotRecord::Net(NetEvent::Disconnected { .. }))),
        0,
        "a rotation without a disconnect"
    );
    assert_eq!(
        count(&|r| matches!(r, HotRecord::SnapshotRequested { .. })),
        1,
        "one snapshot (the start), none for a rotation"
    );
    assert_eq!(engine.gaps, 0, "{engine:?}");
    assert_eq!(stats.disconnects, 0, "{stats:?}");
    // Market data flowed after the last switch: a Stats record after it counts more frames.
    let last_switch = seen
        .iter()
        .rposition(|r| matches!(r, HotRecord::Rotated { .. }))
        .unwrap();
    let frames_at_switch = seen[..last_switch]
        .iter()
        .rev()
        .find_map(|r| match r {
            HotRecord::Stats(s) => Some(s.frames),
            _ => None,
        })
        .unwrap_or(0);
    assert!(
        stats.frames > frames_at_switch,
        "no frames after the switch ({} ≤ {frames_at_switch})",
        stats.frames
    );
    println!(
        "{} rotation(s) at depth updates {rotated:?}; {} frames, {} gaps, {} snapshots",
        rotated.len(),
        stats.frames,
        engine.gaps,
        engine.snapshots
    );
}

/// Of the rotation records, from the end: `Some(true)` if the last one is a start not yet
/// followed by a switch.
fn started_or_done(r: &HotRecord) -> Option<bool> {
    match r {
        HotRecord::RotationStarted { .. } => Some(true),
        HotRecord::Rotated { .. } | HotRecord::RotationAbandoned { .. } => Some(false),
        _ => None,
    }
}
