//! Backtests at scale (issue 13): the streamed replay and the decoded tape file (`.mmt`)
//! give the same backtest as the loaded tape of the JSON capture, event for event and fill
//! for fill; a damaged tape file is refused naming its block and offset; the pure replay
//! (`--mode=replay`) reports and exits 1 on data it cannot use; `--to` cuts the data.
//! All on the bundled slice (tools/data), so a fresh clone runs them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use mm::backtest::{simulate, Replayed};
use mm::config::{self, Config, LoadOptions};
use mm::replay::{
    check, convert_to_tape, open_inputs, EventCursor, EventSource, Location, ReplayData, Tape,
    TapeInfo, TapeStream,
};

#[path = "support/process.rs"]
mod process;

use process::Workdir;

/// The default configuration with quotes that trade on the slice.
fn config() -> Config {
    config::load(&LoadOptions {
        sets: vec![
            "model.gamma_per_bps=0.01".to_string(),
            "venue.maker_fee_bps=-0.5".to_string(),
        ],
        ..LoadOptions::default()
    })
    .unwrap()
}

fn assert_same_run(a: &Replayed, b: &Replayed) {
    assert!(
        a.order_stats.orders_placed > 0,
        "the run must trade to compare anything"
    );
    assert!(!a.fills.is_empty());
    assert_eq!(a.events, b.events);
    assert_eq!(a.start_ns, b.start_ns);
    assert_eq!(a.end_ns, b.end_ns);
    assert_eq!(a.fills, b.fills);
    assert_eq!(a.mids, b.mids);
    assert_eq!(a.quotes, b.quotes);
    assert_eq!(a.samples, b.samples);
    assert_eq!(a.stops, b.stops);
    assert_eq!(a.feed, b.feed);
    assert_eq!(a.final_touch, b.final_touch);
    assert_eq!(
        format!("{:?}", a.order_stats),
        format!("{:?}", b.order_stats)
    );
    assert_eq!(format!("{:?}", a.position), format!("{:?}", b.position));
    assert_eq!(
        format!("{:?}", a.engine_stats),
        format!("{:?}", b.engine_stats)
    );
}

#[test]
fn a_streamed_replay_is_the_loaded_replay() {
    let config = config();
    let tape = Tape::load(open_inputs(&[], "BTCUSDT").unwrap(), config.spec).unwrap();
    let stream = TapeStream::open(&[], config.spec, u64::MAX, true).unwrap();
    assert_eq!(TapeInfo::stats(&tape), stream.stats());
    assert_eq!(TapeInfo::sources(&tape), stream.sources());
    // More events than one chunk, so chunks are handed over and recycled.
    assert!(tape.events().len() > 4 * mm::replay::CHUNK_EVENTS);
    let loaded = simulate(&config, &tape, None).unwrap();
    let streamed = simulate(&config, &stream, None).unwrap();
    assert_same_run(&loaded, &streamed);
    // The same through the enum the backtest holds, twice from one stream.
    let data = ReplayData::Streamed(stream);
    assert_same_run(&loaded, &simulate(&config, &data, None).unwrap());
    assert_same_run(&loaded, &simulate(&config, &data, None).unwrap());
}

#[test]
fn a_converted_tape_file_backtests_bit_identically() {
    let config = config();
    let dir = Workdir::new("mm-replay-scale", "tape");
    let path = dir.path("slice.mmt");
    let (events, bytes) =
        convert_to_tape(open_inputs(&[], "BTCUSDT").unwrap(), &path, config.spec).unwrap();
    assert_eq!(bytes, std::fs::metadata(&path).unwrap().len());
    // Never overwritten.
    assert!(convert_to_tape(open_inputs(&[], "BTCUSDT").unwrap(), &path, config.spec).is_err());

    let tape = Tape::load(open_inputs(&[], "BTCUSDT").unwrap(), config.spec).unwrap();
    assert_eq!(events, tape.events().len() as u64);
    let arg = [path.display().to_string()];
    let from_file = TapeStream::open(&arg, config.spec, u64::MAX, true).unwrap();
    let mut want = TapeInfo::stats(&tape).clone();
    // The file's trailer holds what the conversion counted (off-grid quantities the decoder
    // rounded up included), so no first pass reads it; torn journal tails are told at
    // conversion only.
    want.torn_tails.clear();
    assert_eq!(from_file.stats(), &want);
    assert!(want.qty_rounded_up > 0, "the slice has off-grid quantities");
    assert_same_run(
        &simulate(&config, &tape, None).unwrap(),
        &simulate(&config, &from_file, None).unwrap(),
    );
    // The loaded path (`--grid`, `--from`) reads it too, event for event.
    let loaded = Tape::load_until(
        mm::replay::open_sources(&arg, &config.spec).unwrap(),
        config.spec,
        u64::MAX,
    )
    .unwrap();
    assert_eq!(loaded.events().len(), tape.events().len());
    for (a, b) in loaded.events().iter().zip(tape.events()) {
        assert_eq!(a.local_ts_ns, b.local_ts_ns);
        assert_eq!(a.event, b.event);
        assert_eq!(loaded.levels(a), tape.levels(b));
    }

    // Another symbol's filters: refused.
    let mut other = config.spec;
    other.tick_atoms *= 10;
    let e = TapeStream::open(&arg, other, u64::MAX, true).err().unwrap();
    assert!(e.problem.contains("converted for BTCUSDT"), "{e}");
}

#[test]
fn a_damaged_tape_file_names_its_block_and_offset() {
    let config = config();
    let dir = Workdir::new("mm-replay-scale", "damaged");
    let path = dir.path("slice.mmt");
    convert_to_tape(open_inputs(&[], "BTCUSDT").unwrap(), &path, config.spec).unwrap();
    let good = std::fs::read(&path).unwrap();

    // A flipped byte in the second block's payload.
    let first_len = u32::from_le_bytes(good[64 + 8..64 + 12].try_into().unwrap()) as usize;
    let second = 64 + 16 + first_len;
    let mut bad = good.clone();
    bad[second + 16 + 100] ^= 0x40;
    let flipped = dir.path("flipped.mmt");
    std::fs::write(&flipped, &bad).unwrap();
    let arg = [flipped.display().to_string()];
    // The trailer is intact, so opening reads no block: the replay meets the damage.
    let stream = TapeStream::open(&arg, config.spec, u64::MAX, true).unwrap();
    let mut cursor = stream.cursor().unwrap();
    let e = loop {
        match cursor.next_event() {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the damaged block was read as good"),
            Err(e) => break e,
        }
    };
    assert_eq!(
        e.location,
        Location::Block {
            index: 2,
            offset: second as u64
        },
        "{e}"
    );
    assert!(
        e.to_string()
            .contains(&format!("block 2 at byte offset {second}")),
        "{e}"
    );
    assert!(e.problem.contains("checksum"), "{e}");

    // Cut short (inside the trailer): without a good trailer the first pass reads every
    // block and finds the cut.
    let cut = dir.path("cut.mmt");
    std::fs::write(&cut, &good[..good.len() - 10]).unwrap();
    let e = TapeStream::open(&[cut.display().to_string()], config.spec, u64::MAX, true)
        .err()
        .unwrap();
    assert!(matches!(e.location, Location::Block { .. }), "{e}");
    assert!(e.problem.contains("cut"), "{e}");

    // The backtest exits 1 and says where.
    let out = dir.run(&["--mode=backtest", "--data", flipped.to_str().unwrap()]);
    let (_, stderr) = process::text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("block 2 at byte offset"), "{stderr}");
}

#[test]
fn the_pure_replay_reports_the_book_and_refuses_unusable_data() {
    let config = config();
    let stream = TapeStream::open(&[], config.spec, u64::MAX, false).unwrap();
    let seen = check(&stream, config.market_data.book_levels).unwrap();
    assert_eq!(seen.events, stream.stats().events);
    assert_eq!(seen.snapshots, 1);
    assert_eq!(seen.snapshots_loaded, 1);
    assert_eq!(seen.gaps, 0);
    assert!(seen.synced_ns > seen.span_ns() * 9 / 10, "{seen:?}");
    assert_eq!(seen.unusable(), None);

    let dir = Workdir::new("mm-replay-scale", "pure");
    let out = dir.ok(&["--mode=replay"]);
    assert!(out.contains(&format!("{} events", seen.events)), "{out}");
    assert!(out.contains("1 of 1 snapshots loaded, 0 gaps"), "{out}");
    assert!(out.contains("events/s"), "{out}");

    // --to: only the first 60 s (the window is [start, start + 60 s)).
    let out = dir.ok(&["--mode=replay", "--to", "60s"]);
    let first = TapeStream::open(&[], config.spec, 60_000_000_000 - 1, false).unwrap();
    assert!(first.stats().events < seen.events);
    assert!(
        out.contains(&format!("{} events", first.stats().events)),
        "{out}"
    );
    assert!(
        out.contains("(60.0 s)") || out.contains("(59.9 s)"),
        "{out}"
    );

    // Top of book only, no snapshot: reported, exit 1.
    let bt = r#"{"stream":"btcusdt@bookTicker","data":{"u":5,"s":"BTCUSDT","b":"100.00","B":"1.0","a":"100.01","A":"2.0"}}"#;
    let text: String = (0..10)
        .map(|i| format!("{} {bt}\n", 1_723_161_253_937_085_768u64 + i * 1_000_000))
        .collect();
    std::fs::write(dir.path("tob.txt"), text).unwrap();
    let out = dir.run(&["--mode=replay", "--data", "tob.txt"]);
    let (stdout, stderr) = process::text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("10 events"), "{stdout}");
    assert!(stderr.contains("no REST depth snapshot"), "{stderr}");
}

#[test]
fn convert_writes_a_tape_file_the_backtest_reads() {
    let dir = Workdir::new("mm-replay-scale", "convert");
    let out = dir.ok(&["--mode=convert", "--out", "slice.mmt"]);
    assert!(out.contains("events"), "{out}");
    let out = dir.ok(&["--mode=backtest", "--data", "slice.mmt", "--out", "runs"]);
    assert!(out.contains("slice.mmt"), "{out}");
    // Converting needs the frames: a tape is refused clearly (calibration and the
    // scoreboard read it: tests/calibration.rs, tests/scoreboard.rs).
    let out = dir.run(&[
        "--mode=convert",
        "--data",
        "slice.mmt",
        "--out",
        "again.mmj",
    ]);
    let (_, stderr) = process::text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("decoded tape file"), "{stderr}");
    assert!(
        stderr.contains("--mode=convert reads the journal"),
        "{stderr}"
    );
}

/// A named pipe `name` in `dir` that `bytes` are written into, once, by a thread (as a
/// generator would).
fn fifo_with(dir: &Workdir, name: &str, bytes: &'static [u8]) -> std::path::PathBuf {
    let path = dir.path(name);
    let made = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap();
    assert!(made.success());
    let writer = path.clone();
    std::thread::spawn(move || {
        use std::io::Write;
        // A reader that hangs up early is the test's failure to see, not the writer's.
        let _ = std::fs::File::create(writer).and_then(|mut f| f.write_all(bytes));
    });
    path
}

/// Data through a named pipe (a generator writing into it) is replayed in one pass —
/// counted while replayed — with the very run of the loaded tape, given a fixed feed
/// latency; the data's median (a first pass) is refused with the fix, and so is a second
/// replay of the pipe.
#[test]
fn a_named_pipe_is_replayed_in_one_pass() {
    let mut config = config();
    config.venue.feed_latency = mm::config::FeedLatency::Fixed { ns: 10_000_000 };
    let dir = Workdir::new("mm-replay-scale", "fifo");
    let tape = Tape::load(open_inputs(&[], "BTCUSDT").unwrap(), config.spec).unwrap();
    let fifo = fifo_with(&dir, "slice.pipe", mm::replay::DEFAULT_SLICE);
    let arg = [fifo.display().to_string()];
    let e = TapeStream::open(&arg, config.spec, u64::MAX, true)
        .err()
        .unwrap();
    assert!(e.fix.contains("venue.feed_latency=10ms"), "{e}");
    // The refusal opened nothing: the writer is still waiting for its reader.
    let stream = TapeStream::open(&arg, config.spec, u64::MAX, false).unwrap();
    assert!(stream.read_once());
    assert_eq!(stream.stats().events, 0, "not counted before the replay");
    let streamed = simulate(&config, &stream, None).unwrap();
    assert_same_run(&simulate(&config, &tape, None).unwrap(), &streamed);
    let mut want = TapeInfo::stats(&tape).clone();
    want.feed_delay_ns_median = None;
    want.feed_delay_samples = 0;
    assert_eq!(stream.stats(), &want, "counted while replayed");
    let again = simulate(&config, &stream, None).err().unwrap();
    assert!(again.to_string().contains("only once"), "{again}");

    // The mode says so and reports the counts after the replay.
    let fifo = fifo_with(&dir, "cli.pipe", mm::replay::DEFAULT_SLICE);
    let out = dir.ok(&[
        "--mode=backtest",
        "--data",
        fifo.to_str().unwrap(),
        "--set",
        "venue.feed_latency=10ms",
        "--out",
        "runs",
    ]);
    assert!(out.contains("read once, through a named pipe"), "{out}");
    let counts = format!("({} events:", want.events);
    assert!(out.contains(&counts), "{out}");
}
