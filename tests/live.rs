//! Live trading end to end over loopback: `mm-exchange` replays the recorded BTCUSDT
//! session over TLS and runs the WebSocket API with one account (1 BTC, 100 000 USDT);
//! `mm --mode=live --endpoint=... --ca=...` trades it with the documented test keys from
//! the environment. The tests drive the exchange's fault commands (stdin) and read mm's log
//! and output, then compare with the exchange's own accounting:
//!
//! - the start-up gates refuse without keys, confirmation or a base target, exit 2, and
//!   never print the secret;
//! - a session killed with SIGKILL leaves orders resting; the next session cancels them at
//!   start and takes its inventory from the account (nothing lost across a crash);
//! - faults — -2010 rejections, a 429 storm, the order connection dropped, the market-data
//!   connection dropped, a depth gap, a stale feed, acks delayed behind fills — each followed
//!   by an audit in which the engine's open orders equal the exchange's (`openOrders.status`);
//! - SIGINT mid-flight: exit 0, every order cancelled and confirmed, the engine's inventory
//!   equal to the exchange's position.
//!
//! Runs on the bundled slice (tools/data): nothing beside the clone is needed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

#[path = "support/process.rs"]
mod process;

use process::{data, mm, text, Exchange, Workdir, KEY, SECRET};

#[allow(clippy::disallowed_methods)] // tests wait for processes in real time
fn pause(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// A running `mm --mode=live` and its log.
struct Live {
    child: Option<Child>,
    dir: PathBuf,
    /// Bytes of the log already looked at by `wait_for`.
    seen: usize,
}

impl Live {
    fn start(dir: &Path, ex: &Exchange, extra: &[&str]) -> Live {
        let endpoint = ex.endpoint_flag();
        let ca = ex.ca_flag();
        let mut args = vec![
            "--mode=live",
            endpoint.as_str(),
            ca.as_str(),
            "--i-understand-live-trading",
            "--set",
            "live.base_target=1",
            // A tight quote (1–2 bps) so that a few minutes of replayed market fill it.
            "--set",
            "quoting.spread_min_bps=1",
            "--set",
            "quoting.spread_max_bps=2",
            // Plumbing under load, not strategy: re-quote on every move (no band) and a
            // wide inventory limit, so that orders, fills and rate limits keep coming.
            "--set",
            "quoting.requote_band=0",
            "--set",
            "quoting.inventory_max=1",
            "--log-level=debug",
        ];
        args.extend_from_slice(extra);
        let child = mm(dir, &args)
            .env("BINANCE_API_KEY", KEY)
            .env("BINANCE_API_SECRET", SECRET)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let seen = Live::log_text_in(dir).len();
        Live {
            child: Some(child),
            dir: dir.to_path_buf(),
            seen,
        }
    }

    fn log_text_in(dir: &Path) -> String {
        let Ok(entries) = std::fs::read_dir(dir.join("logs")) else {
            return String::new();
        };
        let mut paths: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
        paths.sort();
        paths
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect()
    }

    fn log(&self) -> String {
        Live::log_text_in(&self.dir)
    }

    /// Waits until a log line after the last match contains `needle`; returns the line.
    fn wait_for(&mut self, needle: &str, timeout_s: u64) -> String {
        for _ in 0..timeout_s * 10 {
            let log = self.log();
            if let Some(at) = log[self.seen.min(log.len())..].find(needle) {
                let start = self.seen + at;
                let line_start = log[..start].rfind('\n').map_or(0, |i| i + 1);
                let line_end = log[start..].find('\n').map_or(log.len(), |i| start + i);
                self.seen = line_end;
                return log[line_start..line_end].to_string();
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("mm exited ({status}) while waiting for {needle:?}:\n{log}");
                }
            }
            pause(100);
        }
        panic!(
            "no {needle:?} in the log within {timeout_s} s; log since the last match:\n{}",
            &self.log()[self.seen..]
        );
    }

    /// Waits for an audit after now that compared the engine's and the exchange's open
    /// orders and found them equal.
    fn wait_for_matching_audit(&mut self, timeout_s: u64) {
        let line = self.wait_for("per the exchange: match", timeout_s);
        assert!(line.contains("live: audit:"), "{line}");
    }

    fn signal(&mut self, signal: &str) -> Output {
        let child = self.child.take().unwrap();
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        child.wait_with_output().unwrap()
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn decimal(v: &Value) -> f64 {
    v.as_str()
        .map(|s| s.parse().unwrap())
        .or_else(|| v.as_f64())
        .unwrap_or_else(|| panic!("not a decimal: {v}"))
}

#[test]
fn live_refuses_to_start_without_keys_confirmation_or_target() {
    let work = Workdir::new("mm-live", "gates");
    let secret = "sEcReT-never-printed-0123456789";
    // (arguments, environment, what the one-line refusal must name)
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case<'_>; 3] = [
        (&["--mode=live"], &[], "BINANCE_API_KEY"),
        (
            &["--mode=live"],
            &[("BINANCE_API_KEY", KEY), ("BINANCE_API_SECRET", secret)],
            "--i-understand-live-trading",
        ),
        (
            &["--mode=live", "--i-understand-live-trading"],
            &[("BINANCE_API_KEY", KEY), ("BINANCE_API_SECRET", secret)],
            "live.base_target",
        ),
    ];
    for (args, env, needle) in cases {
        let mut cmd = mm(&work.0, args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        assert!(!stderr.contains(secret) && !stdout.contains(secret));
    }
    // The config switch stands in for the flag (and still wants a target).
    let out = mm(
        &work.0,
        &[
            "--mode=live",
            "--set",
            "live.i_understand_live_trading=true",
        ],
    )
    .env("BINANCE_API_KEY", KEY)
    .env("BINANCE_API_SECRET", secret)
    .output()
    .unwrap();
    assert!(
        text(&out).1.contains("live.base_target"),
        "{}",
        text(&out).1
    );
}

#[test]
fn live_session_survives_a_crash_and_faults_and_cancels_everything_on_ctrl_c() {
    let work = Workdir::new("mm-live", "e2e");
    let mut ex = Exchange::start(&[data::bundled_spot()], &["--speed", "4"]);

    // Session 1: trades, then dies without a chance to cancel (SIGKILL).
    let mut s1 = Live::start(&work.0, &ex, &[]);
    let line = s1.wait_for("live: reconciled (start)", 60);
    assert!(line.contains("inventory 0 "), "{line}");
    s1.wait_for("venue: ack", 60);
    s1.wait_for_matching_audit(30);
    let out = s1.signal("-KILL");
    assert!(!out.status.success());
    let before = ex.accounting();
    let left_open = before["open_orders"].as_u64().unwrap();
    assert!(left_open > 0, "session 1 left nothing resting: {before}");
    let secret_seen = s1.log().contains(SECRET);
    assert!(!secret_seen, "the secret is in the log");

    // Session 2: cancels session 1's orders at start, inventory from the account.
    let mut s2 = Live::start(&work.0, &ex, &[]);
    let line = s2.wait_for("live: reconciled (start)", 60);
    let position = decimal(&ex.accounting()["position"]);
    assert!(
        line.contains(&format!("inventory {} ", position)) || position == 0.0,
        "reconciled inventory must be the exchange's position {position}: {line}"
    );
    s2.wait_for("venue: ack", 60);
    s2.wait_for_matching_audit(30);

    // -2010: the next three new orders are refused.
    ex.command("reject-next 3");
    s2.wait_for("code -2010", 60);
    s2.wait_for_matching_audit(30);

    // A 429 storm: new orders answered 429/-1015 for 2 s. mm backs off and resumes.
    ex.command("ratelimit 2");
    s2.wait_for("live: rate limited", 60);
    s2.wait_for("live: back-off over", 30);
    s2.wait_for_matching_audit(30);

    // The order connection drops: quoting pauses, the reconnect reconciles.
    ex.command("drop api");
    s2.wait_for("live: order connection down", 30);
    s2.wait_for("live: reconciled (after a reconnect)", 60);
    s2.wait_for_matching_audit(30);

    // The market-data connection drops: the book resyncs, orders keep matching.
    ex.command("drop market");
    s2.wait_for("market data: disconnected", 30);
    s2.wait_for("book: snapshot loaded", 60);
    s2.wait_for_matching_audit(30);

    // A depth gap: resync from a snapshot.
    ex.command("gap");
    s2.wait_for("book: requesting a depth snapshot", 60);
    s2.wait_for("book: snapshot loaded", 60);
    s2.wait_for_matching_audit(30);

    // A stale feed (market data silent for 7 s, stale_data_ms = 5 s): quoting stops,
    // orders are cancelled, and it resumes with the data.
    ex.command("stall-market 7000");
    s2.wait_for("trading stopped: StaleData", 30);
    s2.wait_for("trading resumed", 60);
    s2.wait_for_matching_audit(30);

    // Acks delayed behind executionReports: fills may arrive before the ack.
    ex.command("delay-acks 300");
    s2.wait_for("venue: ack", 60);
    s2.wait_for_matching_audit(30);

    // SIGINT mid-flight (acks still delayed): everything cancelled and confirmed, exit 0.
    let out = s2.signal("-INT");
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("open orders at exit: 0 per the engine, 0 per the exchange"),
        "{stdout}"
    );
    let log = s2.log();
    assert!(
        !log.contains("MISMATCH"),
        "an audit found a difference:\n{log}"
    );
    assert!(log.contains("live: the exchange confirms no order of ours is open"));
    assert!(!log.contains(SECRET) && !stdout.contains(SECRET) && !stderr.contains(SECRET));
    let after = ex.accounting();
    assert_eq!(after["open_orders"].as_u64(), Some(0), "{after}");
    let fills = after["fills"].as_u64().unwrap_or(0);
    assert!(fills > 0, "the session must have traded: {after}");
    let position = decimal(&after["position"]);
    let inventory: f64 = stdout
        .lines()
        .find(|l| l.starts_with("open orders at exit"))
        .and_then(|l| l.split("; inventory ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("no inventory in the output");
    assert!(
        (inventory - position).abs() < 1e-9,
        "engine inventory {inventory} vs exchange position {position}"
    );
    // Latency dumped to latency/ by session 2: order round trip and tick-to-order.
    let hlog = std::fs::read_dir(work.0.join("latency"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "hlog")
                && p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("live_")
        })
        .max() // names carry the start time: the last session's
        .expect("no latency dump");
    let lat = mm(
        &work.0,
        &["--mode=latency", "--file", hlog.to_str().unwrap()],
    )
    .output()
    .unwrap();
    let (lat_out, lat_err) = text(&lat);
    assert!(lat.status.success(), "{lat_err}");
    for tag in ["tick_to_quote", "order_round_trip"] {
        let row = lat_out
            .lines()
            .find(|l| l.starts_with(tag))
            .unwrap_or_else(|| panic!("{tag} missing:\n{lat_out}"));
        let count: u64 = row.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!(count > 0, "{row}");
    }

    // The balances agree with the position: base = 1 BTC + position.
    let base = &after["balances"]["BTC"];
    let base_total = decimal(&base["free"]) + decimal(&base["locked"]);
    assert!((base_total - (1.0 + position)).abs() < 1e-9, "{after}");
    assert_eq!(decimal(&base["locked"]), 0.0, "{after}");
}

#[test]
fn a_refused_key_stops_the_session_with_the_reason() {
    let work = Workdir::new("mm-live", "badkey");
    let ex = Exchange::start(&[data::bundled_spot()], &["--speed", "4"]);
    let wrong = "wRoNg-secret-0123456789abcdef";
    let out = mm(
        &work.0,
        &[
            "--mode=live",
            &ex.endpoint_flag(),
            &ex.ca_flag(),
            "--i-understand-live-trading",
            "--set",
            "live.base_target=1",
        ],
    )
    .env("BINANCE_API_KEY", KEY)
    .env("BINANCE_API_SECRET", wrong)
    .output()
    .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("refused the API key or its signature"),
        "{stderr}"
    );
    assert!(stdout.contains("open orders at exit: none"), "{stdout}");
    let log = Live::log_text_in(&work.0);
    assert!(
        log.contains("code -1022: signature refused: check BINANCE_API_SECRET"),
        "{log}"
    );
    assert!(!log.contains(wrong) && !stdout.contains(wrong) && !stderr.contains(wrong));
}

#[test]
fn a_closed_stdout_neither_aborts_live_nor_leaves_orders_resting() {
    let work = Workdir::new("mm-live", "epipe");
    let mut ex = Exchange::start(&[data::bundled_spot()], &["--speed", "4"]);
    let mut s = Live::start(&work.0, &ex, &[]);
    // Whoever read mm's stdout is gone (`mm … | head`, a dead tee): writes get EPIPE.
    drop(s.child.as_mut().unwrap().stdout.take());
    s.wait_for("live: reconciled (start)", 60);
    s.wait_for("venue: ack", 60);
    let out = s.signal("-INT");
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let log = s.log();
    for needle in [
        "console: writing to stdout failed",
        "live: the exchange confirms no order of ours is open",
        "shutdown clean",
    ] {
        assert!(
            log.contains(needle),
            "{needle:?} missing from the log:\n{log}"
        );
    }
    let after = ex.accounting();
    assert_eq!(after["open_orders"].as_u64(), Some(0), "{after}");
}
