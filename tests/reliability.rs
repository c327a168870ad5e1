//! Nothing aborts: the `mm` binary against hostile surroundings, one test per class of
//! input that used to panic (and, with `panic = "abort"` in release, kill the process):
//! a closed stdout/stderr (EPIPE), non-UTF-8 environment variables, a CPU core the machine
//! does not have, `--mode=simulate` with a huge `--paths` or stopped by a signal. Each
//! asserts the documented outcome: the run goes on (or stops cleanly) and says what
//! happened, never a panic. Live with a closed stdout is in tests/live.rs.
//!
//! Runs the real binary in per-test temporary folders; nothing beside the clone is needed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "support/process.rs"]
mod process;

use process::{mm, text, Workdir};

/// A stream whose reader is already gone: every write to it fails with EPIPE.
fn closed_pipe() -> Stdio {
    let (reader, writer) = UnixStream::pair().unwrap();
    drop(reader);
    Stdio::from(OwnedFd::from(writer))
}

fn log_text(w: &Workdir) -> String {
    let Ok(entries) = std::fs::read_dir(w.path("logs")) else {
        return String::new();
    };
    entries
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap_or_default())
        .collect()
}

/// The run was refused, not crashed: exit `code`, and stderr says each of `needles`.
fn assert_refused(out: &Output, code: i32, needles: &[&str]) {
    assert_no_panic(out);
    let (stdout, stderr) = text(out);
    assert_eq!(out.status.code(), Some(code), "{stdout}\n{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} not in: {stderr}");
    }
}

fn assert_no_panic(out: &Output) {
    let (stdout, stderr) = text(out);
    for needle in ["panicked", "RUST_BACKTRACE"] {
        assert!(!stderr.contains(needle), "{stdout}\n{stderr}");
    }
}

#[test]
fn a_closed_stdout_is_logged_and_the_run_completes() {
    let cases: [&[&str]; 3] = [
        &["--mode=spread-check"],
        &["--mode=simulate", "--paths", "20"],
        &["--mode=backtest", "--duration", "0.01"],
    ];
    for args in cases {
        let w = Workdir::new("mm-epipe", args[0].trim_start_matches("--mode="));
        let out = mm(&w.0, args)
            .stdout(closed_pipe())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_no_panic(&out);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(
            stderr.contains("console: writing to stdout failed"),
            "{args:?}: {stderr}"
        );
        let log = log_text(&w);
        assert!(
            log.contains("console: writing to stdout failed") && log.contains("shutdown clean"),
            "{args:?}: {log}"
        );
    }
}

#[test]
fn closed_stdout_and_stderr_together_are_logged() {
    let w = Workdir::new("mm-epipe", "both");
    let out = mm(&w.0, &["--mode=spread-check"])
        .stdout(closed_pipe())
        .stderr(closed_pipe())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let log = log_text(&w);
    assert!(log.contains("console: writing to stdout failed"), "{log}");
    assert!(log.contains("shutdown clean"), "{log}");
}

#[test]
fn non_utf8_environment_is_ignored_unless_it_is_ours() {
    let w = Workdir::new("mm-env", "bytes");
    let bad = OsStr::from_bytes(b"caf\xe9");
    // Someone else's variable: none of mm's business.
    let out = mm(&w.0, &["--mode=spread-check"])
        .env("SOME_LEGACY_VAR", bad)
        .env(OsStr::from_bytes(b"X_\xff"), "1")
        .output()
        .unwrap();
    assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);
    // Ours: refused by name, exit 2 (a configuration error).
    let out = mm(&w.0, &["--mode=spread-check"])
        .env("MM__LOG__DIR", bad)
        .output()
        .unwrap();
    assert_no_panic(&out);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("MM__LOG__DIR") && stderr.contains("not UTF-8"),
        "{stderr}"
    );
}

#[test]
fn a_cpu_core_the_machine_lacks_is_a_config_error() {
    let w = Workdir::new("mm-core", "1024");
    for core in ["1024", "4096", "9223372036854775807"] {
        let set = format!("engine.cpu_core={core}");
        let out = w.run(&["--mode=spread-check", "--set", &set]);
        assert_no_panic(&out);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("engine.cpu_core") && stderr.contains("online cores"),
            "{stderr}"
        );
    }
}

#[test]
fn simulate_bounds_its_paths() {
    let w = Workdir::new("mm-simulate", "bounds");
    for paths in ["0", "1000001", "18446744073709551615"] {
        let out = w.run(&["--mode=simulate", "--paths", paths]);
        assert_no_panic(&out);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{paths}: {stderr}");
        assert!(stderr.contains("--paths must be 1 to 1000000"), "{stderr}");
    }
}

#[test]
fn simulate_stops_on_the_first_signal() {
    for signal in ["-INT", "-TERM"] {
        let w = Workdir::new("mm-simulate", &format!("signal{signal}"));
        let child = mm(&w.0, &["--mode=simulate", "--paths", "1000000"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The banner is printed once the handler is installed.
        #[allow(clippy::disallowed_methods)] // a test lets the run get going
        std::thread::sleep(Duration::from_millis(1500));
        #[allow(clippy::disallowed_methods)] // the stop must be prompt: real time
        let sent = Instant::now();
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let out = child.wait_with_output().unwrap();
        let waited = sent.elapsed();
        let (stdout, stderr) = text(&out);
        assert!(waited < Duration::from_secs(5), "{signal}: took {waited:?}");
        assert_eq!(out.status.code(), Some(1), "{signal}: {stdout}\n{stderr}");
        assert!(
            stderr.contains("simulate: stopped by signal after"),
            "{signal}: {stderr}"
        );
        assert!(
            !stdout.contains("Avellaneda"),
            "no table after a stop: {stdout}"
        );
    }
}

/// The bundled capture's first `n` lines as a journal at `path`; returns its length and
/// the length of its last record.
fn journal_of_bundled_slice(path: &std::path::Path, n: usize) -> (u64, u64) {
    use mm::journal::{JournalWriter, RecordKind, RECORD_OVERHEAD};
    use std::io::BufRead;
    let file = std::fs::File::open(process::data::bundled_spot()).unwrap();
    let lines = std::io::BufReader::new(flate2::read::MultiGzDecoder::new(file)).lines();
    let mut writer = JournalWriter::create(path, "BTCUSDT", 1).unwrap();
    let mut last = 0;
    for line in lines.take(n) {
        let line = line.unwrap();
        let (ts, json) = line.split_once(' ').unwrap();
        let kind = if json.starts_with("{\"stream\":") {
            RecordKind::Frame
        } else {
            RecordKind::Snapshot
        };
        writer
            .append(kind, ts.parse().unwrap(), json.as_bytes())
            .unwrap();
        last = (json.len() + RECORD_OVERHEAD) as u64;
    }
    writer.finish().unwrap();
    (std::fs::metadata(path).unwrap().len(), last)
}

#[test]
fn torn_and_zero_filled_journal_tails_are_told_and_replayed() {
    let w = Workdir::new("mm-journal", "tails");
    let clean = w.path("clean.mmj");
    let (len, last) = journal_of_bundled_slice(&clean, 3_000);
    let bytes = std::fs::read(&clean).unwrap();
    let replay = |name: &str, data: &[u8]| {
        let path = w.path(name);
        std::fs::write(&path, data).unwrap();
        let out = w.run(&["--mode=backtest", "--data", path.to_str().unwrap()]);
        assert_no_panic(&out);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{name}: {stderr}");
        let events = stdout
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap_or_else(|| panic!("{name}: no data line: {stdout}"))
            .to_string();
        (events, stderr)
    };
    // The event counts of a data line (it names the file first).
    let counts = |line: &str| {
        line.split(" (")
            .nth(1)
            .unwrap()
            .split(") decoded")
            .next()
            .unwrap()
            .to_string()
    };
    let (clean_events, stderr) = replay("clean.mmj", &bytes);
    assert!(!stderr.contains("torn tail"), "{stderr}");
    // A crash cut the last record: told, and the rest replays.
    let cut = &bytes[..(len - last / 2) as usize];
    let (events, stderr) = replay("cut.mmj", cut);
    assert!(
        stderr.contains(&format!(
            "cut.mmj: torn tail of {} bytes skipped",
            last - last / 2
        )) && stderr.contains("the last record is cut"),
        "{stderr}"
    );
    assert_ne!(
        counts(&events),
        counts(&clean_events),
        "the cut record is not replayed"
    );
    // A power loss left every record and then zeros: told, and everything replays.
    let mut zeros = bytes.clone();
    zeros.resize(bytes.len() + 65_536, 0);
    let (events, stderr) = replay("zeros.mmj", &zeros);
    assert!(
        stderr.contains("zeros.mmj: torn tail of 65536 bytes skipped")
            && stderr.contains("zero bytes after the last complete record"),
        "{stderr}"
    );
    // The same events as the clean journal.
    assert_eq!(counts(&events), counts(&clean_events));
}

#[test]
fn another_symbols_data_is_refused_with_the_reason() {
    let w = Workdir::new("mm-symbol", "nope");
    // The built-in slice is BTCUSDT.
    let out = w.run(&["--mode=backtest", "--symbol=NOPE"]);
    assert_no_panic(&out);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("no NOPE market events to replay") && stderr.contains("check --symbol"),
        "{stderr}"
    );
}

#[test]
fn paper_trading_a_symbol_the_venue_does_not_send_is_refused() {
    let w = Workdir::new("mm-symbol", "paper");
    let ex = process::Exchange::start(&[process::data::bundled_spot()], &["--speed", "4"]);
    // --duration 0.002 h ≈ 7 s: longer than risk.stale_data_ms.
    let out = mm(
        &w.0,
        &[
            "--mode=paper-trading",
            &ex.endpoint_flag(),
            &ex.ca_flag(),
            "--symbol=NOPE",
            "--duration",
            "0.002",
        ],
    )
    .output()
    .unwrap();
    assert_no_panic(&out);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("no NOPE market data arrived in the session"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------------------
// User-supplied numbers (docs/reliability.md, "Numbers from the user"): one test per class.
// ---------------------------------------------------------------------------------------

#[test]
fn a_duration_key_beyond_its_range_is_a_config_error() {
    // kpi.report_every_s = 1e300 became u64::MAX ns and overflowed the paper session's
    // next-report time; every seconds key is now (0, 10⁶] s.
    let w = Workdir::new("mm-numbers", "config");
    for set in [
        "kpi.report_every_s=1e300",
        "market_data.stale_after_s=inf",
        "kpi.markout_horizon_s=2e6",
    ] {
        let out = w.run(&["--mode=spread-check", "--set", set]);
        let key = format!("key `{}`", set.split('=').next().unwrap());
        assert_refused(&out, 2, &[&key, "(0, 1000000] s"]);
    }
}

#[test]
fn a_grid_too_large_to_build_is_refused_before_it_is_built() {
    // Three axes of 60,000 values: 2.16·10¹⁴ combinations. The product was built one axis at
    // a time (an 86 GB allocation on the second axis: the process aborted).
    let w = Workdir::new("mm-numbers", "grid");
    let values = vec!["0"; 60_000].join(","); // 120 KB: under the 128 KiB limit of one argument
    let axis = format!("ofi.beta={values}");
    let out = w.run(&[
        "--mode=backtest",
        "--grid",
        &axis,
        "--grid",
        &axis,
        "--grid",
        &axis,
    ]);
    assert_refused(
        &out,
        1,
        &["60000 × 60000 × 60000 combinations is more than 100000"],
    );
}

#[test]
fn a_fold_count_beyond_its_range_is_refused_at_once() {
    // 10⁹ folds of a 5.8-minute slice: a walk-forward of 10⁹ empty folds (it ran for ever).
    let w = Workdir::new("mm-numbers", "folds");
    let data = process::data::bundled_spot();
    let out = w.run(&[
        "--mode=scoreboard",
        "--data",
        data.to_str().unwrap(),
        "--folds",
        "1000000000",
    ]);
    assert_refused(&out, 1, &["at most 1000"]);
}

/// The bundled slice as a decoded tape (`--mode=convert --out x.mmt`).
fn bundled_tape(w: &Workdir) -> Vec<u8> {
    let path = w.path("slice.mmt");
    let out = w.run(&["--mode=convert", "--out", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);
    std::fs::read(&path).unwrap()
}

/// Sets an 8-byte field of the first event of `kind` in the tape's first block (`at`: its
/// offset in the event record, or past the record: into the event's first level) and
/// re-signs the block, as a forged or mis-written file would be.
fn forge_first_block(tape: &mut [u8], kind: u8, at: usize, value: i64) {
    const HEADER: usize = 64;
    const PAYLOAD: usize = HEADER + 16;
    let u64_at = |b: &[u8], i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
    let len = u32::from_le_bytes(tape[HEADER + 8..HEADER + 12].try_into().unwrap()) as usize;
    let mut pos = PAYLOAD;
    loop {
        assert!(
            pos < PAYLOAD + len,
            "no event of kind {kind} in the first block"
        );
        let counts = match tape[pos] {
            2 => u64_at(tape, pos + 16 + 16),
            4 => u64_at(tape, pos + 16 + 8),
            _ => 0,
        };
        let levels = (counts & 0xffff_ffff) + (counts >> 32);
        if tape[pos] == kind && (at < 64 || levels > 0) {
            tape[pos + at..pos + at + 8].copy_from_slice(&value.to_le_bytes());
            break;
        }
        pos += 64 + 16 * levels as usize;
    }
    let crc = crc32fast::hash(&tape[PAYLOAD..PAYLOAD + len]);
    tape[HEADER + 12..HEADER + 16].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn tape_prices_and_quantities_outside_the_decoders_range_are_refused() {
    let w = Workdir::new("mm-numbers", "tape");
    let clean = bundled_tape(&w);
    // (what, event kind, field offset, value): a trade's price and quantity, a depth
    // level's price, a bookTicker's bid, each beyond what the decoder can give (atoms
    // that do not fit i64) or negative.
    let cases: [(&str, u8, usize, i64); 5] = [
        ("trade price", 3, 16 + 16, i64::MAX),
        ("trade qty", 3, 16 + 24, i64::MAX / 2),
        ("depth level price", 2, 64, i64::MAX),
        ("depth level qty", 2, 64 + 8, -5),
        ("bookTicker bid", 1, 16 + 8, 1 << 62),
    ];
    for (what, kind, at, value) in cases {
        let mut tape = clean.clone();
        forge_first_block(&mut tape, kind, at, value);
        let path = w.path(&format!("{}.mmt", what.replace(' ', "-")));
        std::fs::write(&path, &tape).unwrap();
        let out = w.run(&["--mode=backtest", "--data", path.to_str().unwrap()]);
        eprintln!("{what}");
        assert_refused(&out, 1, &["block 1 ", "price or quantity outside"]);
    }
    // A block header whose length field was hit: refused by what the file holds, before
    // a 4 GiB buffer is sized by it.
    let mut tape = clean;
    tape[64 + 8..64 + 12].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    let path = w.path("length.mmt");
    std::fs::write(&path, &tape).unwrap();
    let out = w.run(&["--mode=backtest", "--data", path.to_str().unwrap()]);
    assert_refused(&out, 1, &["the block header claims 4294967280 bytes"]);
}
