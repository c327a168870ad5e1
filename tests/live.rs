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

use process::{
    data, mm, text, write_ed25519_keys, Exchange, Workdir, ED25519_KEY, ED25519_PRIVATE_PEM, KEY,
    SECRET,
};

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
    /// With the HMAC test key.
    fn start(dir: &Path, ex: &Exchange, extra: &[&str]) -> Live {
        Live::start_with_keys(
            dir,
            ex,
            extra,
            &[("BINANCE_API_KEY", KEY), ("BINANCE_API_SECRET", SECRET)],
        )
    }

    /// With the keys in `keys` (environment variables).
    fn start_with_keys(dir: &Path, ex: &Exchange, extra: &[&str], keys: &[(&str, &str)]) -> Live {
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
        let mut cmd = mm(dir, &args);
        for (name, value) in keys {
            cmd.env(name, value);
        }
        let child = cmd
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

    /// `drop api` on the exchange: the order connection goes down, reconnects, reconciles,
    /// and an audit matches.
    fn drop_order_connection(&mut self, ex: &mut Exchange) {
        ex.command("drop api");
        self.wait_for("live: order connection down", 30);
        self.wait_for("live: reconciled (after a reconnect)", 60);
        self.wait_for_matching_audit(30);
    }

    /// Ctrl+C: exit 0 with nothing open per the engine and per the exchange. Returns
    /// (stdout, stderr).
    fn stop_clean(&mut self) -> (String, String) {
        let out = self.signal("-INT");
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
        assert!(
            stdout.contains("open orders at exit: 0 per the engine, 0 per the exchange"),
            "{stdout}"
        );
        (stdout, stderr)
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

/// `mm --mode=live` against `ex`, confirmed, base target 1 BTC (no other setting).
fn live_command(dir: &Path, ex: &Exchange) -> Command {
    let (endpoint, ca) = (ex.endpoint_flag(), ex.ca_flag());
    mm(
        dir,
        &[
            "--mode=live",
            &endpoint,
            &ca,
            "--i-understand-live-trading",
            "--set",
            "live.base_target=1",
        ],
    )
}

/// A refusal at the start-up gates: exit 2, one line on stderr containing `needle`, nothing
/// on stdout. Returns stderr.
fn assert_gate_refusal(out: &Output, needle: &str, case: &str) -> String {
    let (stdout, stderr) = text(out);
    assert_eq!(out.status.code(), Some(2), "{case}: {stderr}");
    assert!(stderr.contains(needle), "{case}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    stderr
}

/// The exchange refused the key at start: exit 1, the reason on stderr. (stdout, stderr).
fn assert_key_refused(out: &Output) -> (String, String) {
    let (stdout, stderr) = text(out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("refused the API key or its signature"),
        "{stderr}"
    );
    (stdout, stderr)
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
        let stderr = assert_gate_refusal(&cmd.output().unwrap(), needle, &format!("{args:?}"));
        assert!(!stderr.contains(secret));
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
    s2.drop_order_connection(&mut ex);

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
    for tag in [
        "tick_to_quote",
        "order_round_trip",
        "stage_read_to_decoded",
        "stage_quote_to_order",
        "stage_read_socket",
        "stage_read_tls_open",
        "stage_read_ws_frame",
        "stage_read_decode",
    ] {
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
    // The console report (the KPI side thread) agrees with the account: its final
    // inventory is the base balance − live.base_target, including session 1's position
    // that session 2 took from the balances at its start (not from fills it saw).
    let report_inventory: f64 = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("Inventory:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("no Inventory line in the final report");
    assert!(
        (report_inventory - (base_total - 1.0)).abs() < 1e-9,
        "report inventory {report_inventory} vs balance − target {}",
        base_total - 1.0
    );
    assert!(log.contains("kpi: inventory set to "), "{log}");
}

#[test]
fn a_refused_key_stops_the_session_with_the_reason() {
    let work = Workdir::new("mm-live", "badkey");
    let ex = Exchange::start(&[data::bundled_spot()], &["--speed", "4"]);
    let wrong = "wRoNg-secret-0123456789abcdef";
    let out = live_command(&work.0, &ex)
        .env("BINANCE_API_KEY", KEY)
        .env("BINANCE_API_SECRET", wrong)
        .output()
        .unwrap();
    let (stdout, stderr) = assert_key_refused(&out);
    assert!(stdout.contains("open orders at exit: none"), "{stdout}");
    let log = Live::log_text_in(&work.0);
    assert!(
        log.contains("code -1022: signature refused: check BINANCE_API_SECRET"),
        "{log}"
    );
    assert!(!log.contains(wrong) && !stdout.contains(wrong) && !stderr.contains(wrong));
}

/// The same session with an Ed25519 key: `session.logon` on the order connection, trading,
/// a dropped order connection that logs on again and reconciles, Ctrl+C cancelling
/// everything. The private key's text is never printed.
#[test]
fn live_session_with_an_ed25519_key_logs_on_trades_reconnects_and_cancels_on_ctrl_c() {
    let work = Workdir::new("mm-live", "ed25519");
    let (mut ex, private, _) =
        Exchange::start_with_ed25519(&[data::bundled_spot()], &["--speed", "4"], &work.0);
    let private = private.display().to_string();
    let keys = [
        ("BINANCE_API_KEY", ED25519_KEY),
        ("BINANCE_ED25519_PRIVATE_KEY_PATH", private.as_str()),
    ];
    let mut s = Live::start_with_keys(&work.0, &ex, &[], &keys);
    let line = s.wait_for("LIVE TRADING", 60);
    assert!(
        line.contains("Ed25519, session.logon per connection"),
        "{line}"
    );
    s.wait_for("live: reconciled (start)", 60);
    s.wait_for("venue: ack", 60);
    s.wait_for_matching_audit(30);

    s.drop_order_connection(&mut ex);
    s.wait_for("venue: ack", 60);

    let (stdout, stderr) = s.stop_clean();
    let log = s.log();
    assert!(!log.contains("MISMATCH"), "{log}");
    assert!(log.contains("live: the exchange confirms no order of ours is open"));
    let key_body = ED25519_PRIVATE_PEM.lines().nth(1).unwrap();
    for text in [&log, &stdout, &stderr] {
        assert!(!text.contains(key_body), "the private key was printed");
    }
    let acct = ex.accounting();
    assert_eq!(acct["open_orders"].as_u64(), Some(0), "{acct}");
    let methods = &acct["api_requests_by_method"];
    assert!(methods["session.logon"].as_u64().unwrap() >= 2, "{acct}");
    assert!(
        methods["userDataStream.subscribe"].as_u64().unwrap() >= 2,
        "{acct}"
    );
    assert!(
        methods["userDataStream.subscribe.signature"].is_null(),
        "{acct}"
    );
    assert!(
        methods["order.place"].as_u64().unwrap_or(0)
            + methods["order.cancelReplace"].as_u64().unwrap_or(0)
            > 0,
        "{acct}"
    );
}

/// `live.order_connection_max_age_s` set to 20 s: the order connection's make-before-break
/// rotation runs inside the session (the standby opens 10 s before the age, logs on and
/// subscribes, takes over; the old one is unsubscribed and closed), orders keep being
/// answered on the new connection, the audit matches, nothing is lost, and the stop leaves
/// nothing open. The venue-level tests (tests/live_venue.rs) cover the switch itself;
/// this is the binary with its configuration.
#[test]
fn the_order_connection_rotates_make_before_break_at_its_configured_age() {
    order_connection_rotates_make_before_break(false);
}

/// The same rotation with an Ed25519 key: the standby connection logs on
/// (`session.logon`) before it subscribes and takes over.
#[test]
fn the_order_connection_rotates_make_before_break_with_an_ed25519_key() {
    order_connection_rotates_make_before_break(true);
}

fn order_connection_rotates_make_before_break(ed25519: bool) {
    let work = Workdir::new(
        "mm-live",
        if ed25519 {
            "rotate-orders-ed25519"
        } else {
            "rotate-orders"
        },
    );
    let extra = ["--set", "live.order_connection_max_age_s=20"];
    let (mut ex, mut s) = if ed25519 {
        let (ex, private, _) =
            Exchange::start_with_ed25519(&[data::bundled_spot()], &["--speed", "4"], &work.0);
        let private = private.display().to_string();
        let keys = [
            ("BINANCE_API_KEY", ED25519_KEY),
            ("BINANCE_ED25519_PRIVATE_KEY_PATH", private.as_str()),
        ];
        let s = Live::start_with_keys(&work.0, &ex, &extra, &keys);
        (ex, s)
    } else {
        let ex = Exchange::start(&[data::bundled_spot()], &["--speed", "4"]);
        let s = Live::start(&work.0, &ex, &extra);
        (ex, s)
    };
    s.wait_for("live: reconciled (start)", 60);
    s.wait_for("venue: ack", 60);
    s.wait_for(
        "orders: rotation: standby connection opening (make-before-break)",
        40,
    );
    s.wait_for("orders: rotated: order entry on the standby connection", 30);
    s.wait_for(
        "orders: rotation: old connection unsubscribed and closed, nothing lost",
        30,
    );
    // Orders keep being answered on the new connection, and the books agree.
    s.wait_for("venue: ack", 60);
    s.wait_for_matching_audit(30);

    s.stop_clean();
    let log = s.log();
    for bad in [
        "MISMATCH",
        "break-before-make",
        "live: order connection down",
    ] {
        assert!(!log.contains(bad), "{bad:?} in the log:\n{log}");
    }
    let acct = ex.accounting();
    assert_eq!(acct["open_orders"].as_u64(), Some(0), "{acct}");
    let methods = &acct["api_requests_by_method"];
    let count = |method: &str| methods[method].as_u64().unwrap_or(0);
    if ed25519 {
        // Each connection logs on, then subscribes without a signature.
        assert!(count("session.logon") >= 2, "the standby logged on: {acct}");
        assert!(count("userDataStream.subscribe") >= 2, "{acct}");
        assert_eq!(count("userDataStream.subscribe.signature"), 0, "{acct}");
    } else {
        // HMAC: each connection subscribes with a signed request.
        assert!(
            count("userDataStream.subscribe.signature") >= 2,
            "a second connection subscribed: {acct}"
        );
    }
}

/// A private key that is not the registered one: `session.logon` is refused with -1022 and
/// the session stops with the reason and what to check.
#[test]
fn a_refused_ed25519_key_stops_the_session_with_the_reason() {
    let work = Workdir::new("mm-live", "ed25519-bad");
    let (ex, _, wrong) =
        Exchange::start_with_ed25519(&[data::bundled_spot()], &["--speed", "4"], &work.0);
    let out = live_command(&work.0, &ex)
        .env("BINANCE_API_KEY", ED25519_KEY)
        .env("BINANCE_ED25519_PRIVATE_KEY_PATH", &wrong)
        .output()
        .unwrap();
    assert_key_refused(&out);
    let log = Live::log_text_in(&work.0);
    assert!(
        log.contains(
            "refused session.logon (Ed25519) (code -1022: signature refused: \
             BINANCE_ED25519_PRIVATE_KEY_PATH must be the private key whose public key was \
             registered for BINANCE_API_KEY)"
        ),
        "{log}"
    );
}

/// Key-type gates: both key kinds set, an unreadable or non-Ed25519 key file — one line,
/// exit 2, naming the variable, before anything touches the network.
#[test]
fn live_refuses_ambiguous_or_unreadable_ed25519_keys() {
    let work = Workdir::new("mm-live", "ed25519-gates");
    let (private, _, _) = write_ed25519_keys(&work.0);
    let not_a_key = work.path("not-a-key.pem");
    std::fs::write(&not_a_key, "hello").unwrap();
    let private = private.display().to_string();
    let missing = work.path("missing.pem").display().to_string();
    let not_a_key = not_a_key.display().to_string();
    let cases: [(&[(&str, &str)], &str); 3] = [
        (
            &[
                ("BINANCE_API_SECRET", SECRET),
                ("BINANCE_ED25519_PRIVATE_KEY_PATH", private.as_str()),
            ],
            "both BINANCE_API_SECRET and BINANCE_ED25519_PRIVATE_KEY_PATH are set",
        ),
        (
            &[("BINANCE_ED25519_PRIVATE_KEY_PATH", missing.as_str())],
            "cannot read the file named by BINANCE_ED25519_PRIVATE_KEY_PATH",
        ),
        (
            &[("BINANCE_ED25519_PRIVATE_KEY_PATH", not_a_key.as_str())],
            "BINANCE_ED25519_PRIVATE_KEY_PATH: no unencrypted PKCS#8 PEM block",
        ),
    ];
    for (env, needle) in cases {
        let mut cmd = mm(&work.0, &["--mode=live", "--i-understand-live-trading"]);
        cmd.env("BINANCE_API_KEY", ED25519_KEY);
        for (k, v) in env {
            cmd.env(k, v);
        }
        assert_gate_refusal(&cmd.output().unwrap(), needle, &format!("{env:?}"));
    }
}

/// Ctrl+C while the exchange answers nothing (`stall`): the stop still ends within
/// `live.shutdown_wait_s` (5 s) plus the process's own exit, with exit 1, CHECK THE
/// ACCOUNT and one line per thing it could not verify.
#[test]
fn a_stop_the_exchange_never_confirms_is_bounded_and_says_what_is_unverified() {
    let work = Workdir::new("mm-live", "stall-stop");
    let mut ex = Exchange::start(&[data::bundled_spot()], &["--speed", "4"]);
    let mut s = Live::start(&work.0, &ex, &[]);
    s.wait_for("live: reconciled (start)", 60);
    s.wait_for("venue: ack", 60);
    ex.command("stall 30000");
    pause(300);
    #[allow(clippy::disallowed_methods)] // the test times the process in real time
    let started = std::time::Instant::now();
    let out = s.signal("-INT");
    let took = started.elapsed();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        took < Duration::from_secs(5 + 4),
        "the stop took {took:?} (live.shutdown_wait_s = 5)"
    );
    assert!(stderr.contains("mm: CHECK THE ACCOUNT"), "{stderr}");
    for needle in [
        "request(s) (cancel-all / openOrders.status) unanswered at the deadline",
        "not verified: open orders: ",
        "unknown at the exchange (no answer)",
        "not verified: inventory last checked against the balances",
    ] {
        assert!(stderr.contains(needle), "{needle:?} missing:\n{stderr}");
    }
    assert!(
        stdout.contains("per the exchange; inventory") && stdout.contains("UNCONFIRMED"),
        "{stdout}"
    );
    let log = s.log();
    assert!(
        log.contains("live: stop deadline (live.shutdown_wait_s) passed without confirmation"),
        "{log}"
    );
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
