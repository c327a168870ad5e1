//! Record ↔ replay, end to end with the real binaries as child processes: `mm-exchange`
//! replays recorded data on loopback (TLS, ephemeral port, `--stdin off`), `mm --mode=record`
//! records it into a journal (working directory in a temp dir, so its `logs/` land there),
//! and the journal is compared with what was replayed.
//!
//! - Fidelity: the capture `btcusdt_20240808.gz` replayed and recorded gives a journal whose
//!   frames are the capture's combined-stream messages byte for byte, in order, none
//!   missing, none extra; its snapshot brackets the stream (Binance's rule); Ctrl+C stops
//!   the recorder with exit 0 and a journal without a torn tail.
//! - Round trip: that journal replayed and recorded again gives the same frames.
//! - A torn journal (cut mid-record) still replays: the exchange says so on stderr and
//!   serves every complete record.
//!
//! End of a recording: the exchange reports on stderr that its replay has finished; then
//! the journal is watched until it stops growing and holds the expected number of frames
//! (or stops growing for long enough that waiting more would not help); then SIGINT. The
//! replay speeds keep each replay a few seconds long, so the recorder's snapshot request is
//! answered while the stream is still running, even on a loaded machine.
//!
//! The capture is the bundled slice (tools/data, the same bytes as
//! ../shared/data/binance-spot/btcusdt_20240808.gz): nothing beside the clone is needed. The
//! tests take one lock so that only one busy-polling recorder runs at a time.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mm::journal::{JournalReader, JournalWriter, RecordKind, RECORD_OVERHEAD};
use serde_json::Value;

/// Replay speed of the capture (its ~346 s of recorded time in ~3.5 s).
const CAPTURE_SPEED: u64 = 100;
/// Replay speed of a journal recorded from that replay (its timing is already compressed).
const JOURNAL_SPEED: u64 = 1;
/// Market messages in the capture (its README).
const CAPTURE_MESSAGES: usize = 41_248;
/// Stream messages copied into the hand-made torn journal.
const TORN_MESSAGES: usize = 3_000;

/// One recorder (a busy-polling process) at a time.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn recording_the_replayed_capture_gives_its_messages_byte_for_byte_and_again_from_the_journal() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let started = now();
    let work = Workdir::new("fidelity");
    let capture = bundled_capture();
    let messages: Vec<(u64, String)> = capture_lines(&capture)
        .filter(|(_, json)| json.starts_with("{\"stream\":"))
        .collect();
    let expected: Vec<Vec<u8>> = messages
        .iter()
        .map(|(_, json)| json.as_bytes().to_vec())
        .collect();
    assert_eq!(
        expected.len(),
        CAPTURE_MESSAGES,
        "the capture's README count"
    );

    // 1. Fidelity: capture → exchange → mm → journal.
    let first = work.path("first.mmj");
    record(&work, &capture, CAPTURE_SPEED, &first, expected.len());
    let journal = read_journal(&first);
    assert_eq!(journal.torn_tail_bytes, 0, "Ctrl+C left a torn tail");
    assert_same_frames(&journal.frames(), &expected, "capture → journal");
    assert_snapshot_brackets_the_stream(&journal, "first journal");
    let capture_span_ns = span_ns(messages.iter().map(|(ts, _)| *ts));
    assert_paced(&journal, capture_span_ns / CAPTURE_SPEED, "capture");
    eprintln!("fidelity: {:.1} s", started.elapsed().as_secs_f64());

    // 2. Round trip: journal → exchange → mm → journal.
    let second = work.path("second.mmj");
    let exchange_err = record(&work, &first, JOURNAL_SPEED, &second, expected.len());
    // The journal's first snapshot seeded the exchange's book.
    let seed =
        serde_json::from_slice::<Value>(&journal.first_snapshot()).unwrap()["lastUpdateId"].clone();
    assert!(
        exchange_err.contains(&format!("snapshot lastUpdateId={seed},")),
        "the journal's snapshot (lastUpdateId {seed}) did not seed the book:\n{exchange_err}"
    );
    let again = read_journal(&second);
    assert_eq!(again.torn_tail_bytes, 0, "Ctrl+C left a torn tail");
    assert_same_frames(&again.frames(), &journal.frames(), "journal → journal");
    assert_snapshot_brackets_the_stream(&again, "second journal");
    // Paced by the first journal's receive times (×1), not sent back to back.
    let first_span_ns = span_ns(journal.frame_times());
    assert_paced(&again, first_span_ns / JOURNAL_SPEED, "first journal");
    eprintln!(
        "fidelity + round trip: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    work.clean();
}

#[test]
fn a_torn_journal_replays_its_complete_records() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let started = now();
    let work = Workdir::new("torn");
    let capture = bundled_capture();

    // The capture's first messages (and its snapshot) as a journal, the last record cut
    // in the middle of its payload, as a crash mid-write leaves it.
    let torn = work.path("torn.mmj");
    let mut writer = JournalWriter::create(&torn, "BTCUSDT", 1).unwrap();
    writer.append(RecordKind::Marker, 1, b"hand-made").unwrap();
    let mut frames: Vec<Vec<u8>> = Vec::new();
    for (ts, json) in capture_lines(&capture) {
        if frames.len() == TORN_MESSAGES {
            break;
        }
        if json.starts_with("{\"stream\":") {
            writer
                .append(RecordKind::Frame, ts, json.as_bytes())
                .unwrap();
            frames.push(json.into_bytes());
        } else {
            writer
                .append(RecordKind::Snapshot, ts, json.as_bytes())
                .unwrap();
        }
    }
    writer.finish().unwrap();
    let last_len = (frames.last().unwrap().len() + RECORD_OVERHEAD) as u64;
    let file = std::fs::OpenOptions::new().write(true).open(&torn).unwrap();
    let full = file.metadata().unwrap().len();
    file.set_len(full - last_len / 2).unwrap();
    drop(file);
    frames.pop();

    let recorded = work.path("from-torn.mmj");
    let exchange_err = record(&work, &torn, CAPTURE_SPEED, &recorded, frames.len());
    assert!(
        exchange_err.contains("torn tail skipped"),
        "the exchange did not report the torn tail:\n{exchange_err}"
    );
    assert!(
        exchange_err.contains(&format!("mm journal: {} frames", frames.len())),
        "{exchange_err}"
    );
    let journal = read_journal(&recorded);
    assert_eq!(journal.torn_tail_bytes, 0);
    assert_same_frames(&journal.frames(), &frames, "torn journal → journal");
    eprintln!("torn journal: {:.1} s", started.elapsed().as_secs_f64());
    work.clean();
}

// ---------------------------------------------------------------------------------------
// One recording: exchange + recorder, stopped with SIGINT once the stream has ended
// ---------------------------------------------------------------------------------------

/// Replays `data` at `speed`, records it into `out` with `mm --mode=record`, stops the
/// recorder with SIGINT once the replay is over and `expected_frames` are in the journal
/// (or the journal has stopped growing), and checks both processes stop cleanly. Returns
/// the exchange's stderr.
fn record(work: &Workdir, data: &Path, speed: u64, out: &Path, expected_frames: usize) -> String {
    let exchange = Exchange::start(work, data, speed);
    // Its own working directory per recording, so each one's `logs/` is its own.
    let cwd = work.path(&format!("mm-{}", work.next_seq()));
    std::fs::create_dir_all(&cwd).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mm"));
    cmd.arg("--mode=record")
        .arg(format!("--endpoint=wss://127.0.0.1:{}", exchange.port))
        .arg("--ca")
        .arg(&exchange.cert)
        // A safety net only: the test stops it with SIGINT long before.
        .arg("--duration=0.03")
        .arg("--out")
        .arg(out)
        .current_dir(&cwd);
    let recorder = Proc::spawn(cmd, "mm --mode=record");

    exchange.wait_replay_finished(&recorder);
    wait_until_recorded(out, expected_frames, &recorder);
    recorder.signal("-INT");
    let status = recorder.wait(Duration::from_secs(20));
    let stdout = recorder.stdout();
    assert!(
        status.success(),
        "mm --mode=record exited with {status} after Ctrl+C\nstdout:\n{stdout}\nstderr:\n{}",
        recorder.stderr()
    );
    let summary = format!("into {}", out.display());
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("recorded ") && l.ends_with(&summary)),
        "no `recorded N records (...) into PATH` line:\n{stdout}"
    );
    assert!(stdout.contains(" 0 dropped)"), "journal drops: {stdout}");
    let log = read_logs(&cwd.join("logs"));
    assert!(
        log.contains("record: stopped (signal)"),
        "the recorder was not stopped by Ctrl+C:\n{log}"
    );

    let accounting = exchange.stop();
    assert_eq!(accounting["replay_done"], true, "{accounting}");
    assert_eq!(
        accounting["replay_published"], accounting["replay_total"],
        "{accounting}"
    );
    exchange.proc.stderr()
}

/// Waits until the journal holds `expected` frames and has stopped growing, or has not
/// grown for long enough that waiting more would not help (the comparison then fails
/// with the details).
fn wait_until_recorded(path: &Path, expected: usize, recorder: &Proc) {
    const QUIET: Duration = Duration::from_millis(300);
    const GIVE_UP_QUIET: Duration = Duration::from_secs(5);
    let deadline = now() + Duration::from_secs(40);
    let mut size = 0;
    let mut changed = now();
    let mut counted_at_size = None;
    loop {
        recorder.assert_running();
        let current = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        if current != size {
            size = current;
            changed = now();
        }
        let quiet = changed.elapsed();
        if quiet >= QUIET && counted_at_size != Some(size) {
            counted_at_size = Some(size);
            if count_frames(path) >= expected {
                return;
            }
        }
        if quiet >= GIVE_UP_QUIET {
            return;
        }
        assert!(
            now() < deadline,
            "the journal {} did not settle in time",
            path.display()
        );
        pause(Duration::from_millis(50));
    }
}

/// Frames in a journal that is being written (a partial last record is not counted).
fn count_frames(path: &Path) -> usize {
    let Ok(mut reader) = JournalReader::open(path) else {
        return 0;
    };
    let mut frames = 0;
    while let Ok(Some(record)) = reader.next_record() {
        if record.kind == RecordKind::Frame {
            frames += 1;
        }
    }
    frames
}

// ---------------------------------------------------------------------------------------
// Journals and captures
// ---------------------------------------------------------------------------------------

/// A journal read to its end.
struct Journal {
    records: Vec<(RecordKind, u64, Vec<u8>)>,
    torn_tail_bytes: u64,
}

impl Journal {
    fn first_snapshot(&self) -> Vec<u8> {
        self.records
            .iter()
            .find(|(kind, _, _)| *kind == RecordKind::Snapshot)
            .map(|(_, _, payload)| payload.clone())
            .expect("a snapshot record")
    }

    fn frame_times(&self) -> impl Iterator<Item = u64> + '_ {
        self.records
            .iter()
            .filter(|(kind, _, _)| *kind == RecordKind::Frame)
            .map(|(_, ts, _)| *ts)
    }

    fn frames(&self) -> Vec<Vec<u8>> {
        self.records
            .iter()
            .filter(|(kind, _, _)| *kind == RecordKind::Frame)
            .map(|(_, _, payload)| payload.clone())
            .collect()
    }
}

fn read_journal(path: &Path) -> Journal {
    let mut reader = JournalReader::open(path).unwrap();
    assert_eq!(reader.header().symbol_str(), "BTCUSDT");
    let mut records = Vec::new();
    while let Some(record) = reader.next_record().unwrap() {
        records.push((record.kind, record.local_ts_ns, record.payload.to_vec()));
    }
    Journal {
        records,
        torn_tail_bytes: reader.torn_tail_bytes(),
    }
}

/// `(local_ts, json)` of every line of a capture.
fn capture_lines(path: &Path) -> impl Iterator<Item = (u64, String)> {
    let file = std::fs::File::open(path).unwrap();
    BufReader::new(flate2::read::MultiGzDecoder::new(file))
        .lines()
        .map(|line| {
            let line = line.unwrap();
            let (ts, json) = line.split_once(' ').unwrap();
            (ts.parse().unwrap(), json.to_string())
        })
}

/// Equal byte for byte and in order; on failure says where and how.
fn assert_same_frames(got: &[Vec<u8>], want: &[Vec<u8>], what: &str) {
    let show = |bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        text.chars().take(240).collect::<String>()
    };
    if let Some(i) = (0..got.len().min(want.len())).find(|&i| got[i] != want[i]) {
        panic!(
            "{what}: frame {i} differs ({} recorded, {} expected)\n recorded: {}\n expected: {}",
            got.len(),
            want.len(),
            show(&got[i]),
            show(&want[i])
        );
    }
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: {} frames recorded, {} expected (the common prefix is equal); first \
         missing or extra: {}",
        got.len(),
        want.len(),
        show(got.get(want.len()).or(want.get(got.len())).unwrap())
    );
}

/// Last minus first of a series of timestamps, ns.
fn span_ns(times: impl Iterator<Item = u64>) -> u64 {
    let (lo, hi) = times.fold((u64::MAX, 0), |(lo, hi), t| (lo.min(t), hi.max(t)));
    hi.saturating_sub(lo)
}

/// The exchange paced the frames by the data's timestamps: the last frame arrived at least
/// the schedule's span after the recorder started (its opening marker, written before it
/// connected, so before the replay clock started). Load can only make a replay late, so
/// this never fails on a slow machine; a replay that ignored the timestamps fails it.
fn assert_paced(journal: &Journal, schedule_ns: u64, what: &str) {
    const CLOCK_SLACK_NS: u64 = 50_000_000;
    let opened_ns = journal
        .records
        .iter()
        .find(|(kind, _, _)| *kind == RecordKind::Marker)
        .map(|(_, ts, _)| *ts)
        .expect("the recorder's opening marker");
    let last_ns = journal.frame_times().max().expect("frames");
    let elapsed_ns = last_ns.saturating_sub(opened_ns);
    eprintln!(
        "{what}: last frame {:.2} s after the recorder started, schedule {:.2} s",
        elapsed_ns as f64 / 1e9,
        schedule_ns as f64 / 1e9
    );
    assert!(
        elapsed_ns + CLOCK_SLACK_NS >= schedule_ns,
        "{what}: the last frame arrived {:.2} s after the recorder started, but the replay \
         schedule spans {:.2} s: the replay did not follow the timestamps",
        elapsed_ns as f64 / 1e9,
        schedule_ns as f64 / 1e9
    );
}

/// The journal's first snapshot decodes, and the first depth diff it does not already
/// contain brackets it: U ≤ lastUpdateId+1 ≤ u.
fn assert_snapshot_brackets_the_stream(journal: &Journal, what: &str) {
    let (_, _, body) = journal
        .records
        .iter()
        .find(|(kind, _, _)| *kind == RecordKind::Snapshot)
        .unwrap_or_else(|| panic!("{what}: no snapshot record"));
    let snapshot: Value = serde_json::from_slice(body).expect("the snapshot is JSON");
    let last_id = snapshot["lastUpdateId"].as_u64().expect("lastUpdateId");
    for side in ["bids", "asks"] {
        let levels = snapshot[side].as_array().expect(side);
        assert!(!levels.is_empty(), "{what}: snapshot without {side}");
        for level in levels {
            let price: f64 = level[0].as_str().unwrap().parse().unwrap();
            let qty: f64 = level[1].as_str().unwrap().parse().unwrap();
            assert!(price > 0.0 && qty > 0.0, "{what}: level {level}");
        }
    }
    let first_after = journal
        .frames()
        .into_iter()
        .filter_map(|frame| {
            let v: Value = serde_json::from_slice(&frame).unwrap();
            (v["stream"] == "btcusdt@depth@100ms").then(|| {
                (
                    v["data"]["U"].as_u64().unwrap(),
                    v["data"]["u"].as_u64().unwrap(),
                )
            })
        })
        .find(|&(_, u)| u > last_id);
    let (first_id, final_id) = first_after.unwrap_or_else(|| {
        panic!("{what}: no depth diff after the snapshot (lastUpdateId {last_id})")
    });
    assert!(
        first_id <= last_id + 1 && last_id < final_id,
        "{what}: U={first_id} lastUpdateId+1={} u={final_id}",
        last_id + 1
    );
}

// ---------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------

/// A child process with its output collected by reader threads; killed if dropped alive.
struct Proc {
    name: &'static str,
    /// Behind a lock: `try_wait` needs `&mut`.
    child: Mutex<Child>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Proc {
    fn spawn(mut cmd: Command, name: &'static str) -> Proc {
        // The tests must not see a developer's own overrides.
        for (var, _) in std::env::vars_os() {
            if var.as_encoded_bytes().starts_with(b"MM__") {
                cmd.env_remove(var);
            }
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        Proc {
            name,
            child: Mutex::new(child),
            stdout,
            stderr,
        }
    }

    fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends a signal with `kill(1)` (std can only SIGKILL).
    fn signal(&self, which: &str) {
        let status = Command::new("kill")
            .arg(which)
            .arg(self.child.lock().unwrap().id().to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill {which} {} failed", self.name);
    }

    fn wait(&self, limit: Duration) -> std::process::ExitStatus {
        let deadline = now() + limit;
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            assert!(
                now() < deadline,
                "{} did not exit within {limit:?}\nstderr:\n{}",
                self.name,
                self.stderr()
            );
            pause(Duration::from_millis(20));
        }
    }

    fn try_wait(&self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.lock().unwrap();
        child.try_wait().expect("waiting for a child")
    }

    /// Fails the test at once if the process has exited.
    fn assert_running(&self) {
        if let Some(status) = self.try_wait() {
            panic!(
                "{} exited early with {status}\nstdout:\n{}\nstderr:\n{}",
                self.name,
                self.stdout(),
                self.stderr()
            );
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn collect(pipe: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&text);
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            let mut text = sink.lock().unwrap();
            text.push_str(&line);
            text.push('\n');
        }
    });
    text
}

/// A running `mm-exchange`.
struct Exchange {
    proc: Proc,
    port: u16,
    cert: PathBuf,
}

impl Exchange {
    fn start(work: &Workdir, data: &Path, speed: u64) -> Exchange {
        let cert = work.path(&format!("cert-{}.pem", work.next_seq()));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mm-exchange"));
        cmd.arg("--data")
            .arg(data)
            .args(["--speed", &speed.to_string()])
            .args(["--port", "0", "--stdin", "off", "--cert-out"])
            .arg(&cert);
        let proc = Proc::spawn(cmd, "mm-exchange");
        let deadline = now() + Duration::from_secs(30);
        let line = loop {
            if let Some(line) = proc.stdout().lines().next().map(str::to_string) {
                break line;
            }
            proc.assert_running();
            assert!(now() < deadline, "mm-exchange printed no listening line");
            pause(Duration::from_millis(20));
        };
        // `mm-exchange listening on 127.0.0.1:PORT tls cert=/path`.
        let rest = line
            .strip_prefix("mm-exchange listening on 127.0.0.1:")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"));
        let (port, mode) = rest.split_once(' ').unwrap();
        assert_eq!(mode, format!("tls cert={}", cert.display()));
        Exchange {
            port: port.parse().unwrap(),
            cert,
            proc,
        }
    }

    /// Waits for "replay finished" on stderr (the last message has been published).
    fn wait_replay_finished(&self, recorder: &Proc) {
        let deadline = now() + Duration::from_secs(40);
        while !self.proc.stderr().contains("replay finished") {
            self.proc.assert_running();
            recorder.assert_running();
            assert!(
                now() < deadline,
                "the replay did not finish in time\nmm-exchange stderr:\n{}",
                self.proc.stderr()
            );
            pause(Duration::from_millis(50));
        }
    }

    /// SIGTERM; returns the accounting it prints on the way out.
    fn stop(&self) -> Value {
        self.proc.signal("-TERM");
        let status = self.proc.wait(Duration::from_secs(20));
        assert!(status.success(), "mm-exchange exited with {status}");
        let stdout = self.proc.stdout();
        let json = stdout
            .lines()
            .find_map(|l| l.strip_prefix("mm-exchange accounting "))
            .unwrap_or_else(|| panic!("no accounting line:\n{stdout}"));
        serde_json::from_str(json).unwrap()
    }
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A fresh working directory, removed when the test passes (kept for a look when it fails).
struct Workdir {
    dir: PathBuf,
    seq: std::sync::atomic::AtomicU32,
}

impl Workdir {
    fn new(tag: &str) -> Workdir {
        let dir =
            std::env::temp_dir().join(format!("mm-record-replay-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Workdir {
            dir,
            seq: std::sync::atomic::AtomicU32::new(0),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn next_seq(&self) -> u32 {
        self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    fn clean(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The files of a `logs/` folder, concatenated.
fn read_logs(dir: &Path) -> String {
    let mut text = String::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return text;
    };
    for entry in entries.flatten() {
        text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
    }
    text
}

/// The bundled capture, committed in the repo.
fn bundled_capture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/data/btcusdt_20240808.gz")
}

fn now() -> Instant {
    // Test code: deadlines for child processes need the real clock.
    #[allow(clippy::disallowed_methods)]
    Instant::now()
}

fn pause(duration: Duration) {
    // Test code: polling child processes and a growing file.
    #[allow(clippy::disallowed_methods)]
    std::thread::sleep(duration);
}
