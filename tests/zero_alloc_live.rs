//! Zero allocation on the live trading hot path, proven on the production entry point —
//! once with each kind of API key, one session after the other (HMAC: every request
//! signed; Ed25519: `session.logon` once per connection, then unsigned requests):
//! `mm::modes::live::run` trades the `mm-exchange` simulator (the recorded BTCUSDT session
//! replayed at 4× over TLS, the WebSocket API with one account) exactly as `mm --mode=live`
//! does, and the thread that runs it — market data and order entry on one mio `Poll`:
//! `hot::run_feed_loop` with `LiveSink`, the `Trader`, `BinanceVenue` signing and writing
//! orders and decoding responses and executionReports, the reconciliation state machine,
//! the audits, the venue counters — makes no heap allocation while it trades.
//!
//! What is counted: every `alloc`, `alloc_zeroed` and `realloc` call (not `dealloc`) made by
//! *the hot thread* — the thread that calls `live::run`, marked through a thread-local flag
//! — per phase, a global atomic the test's main thread switches. The side thread (log
//! formatting, KPIs, latency), the REST snapshot thread, the log thread, the exchange (its
//! own process) and libtest's threads are never counted. The counter checks itself first
//! (one known allocation on a marked thread counts 1, one on an unmarked thread counts 0).
//!
//! The phases, driven by the main thread from the log and the exchange's accounting:
//! - `WARMUP`: start-up (exchangeInfo over REST, the side threads), both connections (DNS,
//!   TCP, TLS handshakes, WebSocket upgrades), the depth snapshot, the reconciliation at
//!   start (`live: reconciled (start)`), then trading until the first fill and an audit that
//!   matched. Expected to allocate; printed.
//! - `COUNTED`, the window that must be allocation-free: at least `WINDOW` of real trading
//!   (places, cancel-replaces, cancels, acks, fills, audits every 5 s, venue counters every
//!   10 s), with two faults injected through the exchange's stdin that do not reconnect:
//!   `reject-next 3` (three new orders refused with -2010) and `ratelimit 2` (new orders
//!   answered 429 / -1015 for 2 s: mm backs off, pauses quoting, resumes), each followed by
//!   an audit that matched. It ends once both were handled, at least one fill happened
//!   inside it, and it holds the exchange's next ping (every 20 s per connection, as
//!   Binance) on both connections: the first pong of a connection comes after start-up, as
//!   in production, so it must not allocate either.
//! - `WIND_DOWN`: after the window, `Shutdown::request` (the Ctrl+C path: cancel every order,
//!   wait for the exchange to confirm nothing is open) and `run`'s return. Printed.
//!
//! Excluded from the window, and why: reconnects (`drop`, `drop api`, `drop market`, stale
//! data) — a reconnect builds a new TLS session (rustls's handshake allocates; the host
//! name is resolved on the connection's resolver thread, not here); a depth gap's resync is proven allocation-free by
//! `tests/zero_alloc.rs` instead.
//!
//! Diagnostics: with `MM_ZERO_ALLOC_BACKTRACE=1` the first counted allocations are printed
//! with a backtrace (captured inside the allocator behind a re-entrancy guard).
//!
//! Runs on the bundled slice (tools/data): nothing beside the clone is needed.
//! It changes the process's working directory (`kpi/`, `latency/` are relative to it): it
//! is the only test of this binary.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

#[path = "support/process.rs"]
mod process;

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use mm::config::{self, LoadOptions};
use mm::hot::LoopEnd;
use mm::modes::live::{self, LiveArgs};
use mm::shutdown::Shutdown;
use mm::telemetry::log::Logger;

use process::{data, Exchange, Workdir, ED25519_KEY, KEY, SECRET};

/// The counted window lasts at least this long (the session replays at 4×).
const WINDOW: Duration = Duration::from_secs(16);
/// Into the window, the -2010 rejections are injected after this long.
const REJECT_AFTER: Duration = Duration::from_secs(2);
/// The window is closed at the latest after this long (waiting for a fill inside it).
const WINDOW_MAX: Duration = Duration::from_secs(45);
/// Any single wait for a log line, seconds.
const WAIT_S: u64 = 60;
/// mm-exchange pings every WebSocket this often after accepting it (its default, as
/// Binance); the window reaches past the next ping by `PING_MARGIN`.
const PING_EVERY: Duration = Duration::from_secs(20);
/// Bound on the connections' set-up after `live::run` starts, plus the pong's way back.
const PING_MARGIN: Duration = Duration::from_secs(3);

/// The kind of API key a session trades with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Keys {
    Hmac,
    Ed25519,
}

#[test]
fn live_hot_loop_trades_against_the_exchange_without_allocating() {
    counting::self_test();
    for keys in [Keys::Hmac, Keys::Ed25519] {
        counting::reset();
        trade_without_allocating(keys);
    }
}

/// One session with `keys`: warm-up, the counted window, the wind-down.
fn trade_without_allocating(keys: Keys) {
    println!("== {keys:?} key");
    let t0 = now();
    let work = Workdir::new("mm-zero-alloc-live", &format!("{keys:?}"));
    let (mut ex, private, _) =
        Exchange::start_with_ed25519(&[data::bundled_spot()], &["--speed", "4"], &work.0);
    let home = std::env::current_dir().unwrap();
    // kpi/ and latency/ are written relative to the working directory.
    std::env::set_current_dir(&work.0).unwrap();
    match keys {
        Keys::Hmac => {
            std::env::set_var("BINANCE_API_KEY", KEY);
            std::env::set_var("BINANCE_API_SECRET", SECRET);
            std::env::remove_var("BINANCE_ED25519_PRIVATE_KEY_PATH");
        }
        Keys::Ed25519 => {
            std::env::set_var("BINANCE_API_KEY", ED25519_KEY);
            std::env::remove_var("BINANCE_API_SECRET");
            std::env::set_var("BINANCE_ED25519_PRIVATE_KEY_PATH", &private);
        }
    }

    // Configured as tests/live.rs configures `mm --mode=live`.
    let log_dir = work.0.join("logs");
    let mut options = LoadOptions::from_process(None);
    options.root = work.0.clone();
    options.env.clear();
    options.endpoint = Some(format!("wss://127.0.0.1:{}", ex.port));
    options.ca_file = Some(ex.cert.display().to_string());
    options.sets = vec![
        "live.base_target=1".to_string(),
        // A tight quote (1–2 bps) so that it fills.
        "quoting.spread_min_bps=1".to_string(),
        "quoting.spread_max_bps=2".to_string(),
        "quoting.requote_band=0".to_string(),
        "quoting.inventory_max=1".to_string(),
        format!("log.dir={}", log_dir.display()),
    ];
    let config = config::load(&options).unwrap();
    let logger = Logger::start_with(&config.log.dir, config.log.level, false).unwrap();
    let log = logger.handle();
    let shutdown = Shutdown::new();
    let stop = shutdown.clone();
    let run_started = now();
    let hot_thread = thread::Builder::new()
        .name("mm-hot".to_string())
        .spawn(move || {
            counting::mark_this_thread();
            let args = LiveArgs {
                duration_ns: None,
                confirmed: true,
            };
            live::run(&config, &args, &log, &stop)
        })
        .unwrap();
    let mut watch = LogWatch::new(&log_dir);

    // Warm-up: connected, reconciled, trading, a fill, an audit that matched.
    let line = watch.wait_for(&hot_thread, "live: reconciled (start)");
    assert!(line.contains("inventory 0 "), "{line}");
    watch.wait_for(&hot_thread, "venue: ack");
    watch.wait_for(&hot_thread, "venue: fill");
    watch.wait_for_matching_audit(&hot_thread);
    let warmup_took = t0.elapsed();

    // The counted window.
    let before = ex.accounting();
    let window_log_start = watch.text().len();
    let started = now();
    counting::set_phase(counting::COUNTED);
    // Both connections open within `PING_MARGIN` of the start: the next ping of each
    // (the first after the warm-up) is answered before this, since the run started.
    let pings_by = {
        let next = run_started.elapsed().as_secs() / PING_EVERY.as_secs() + 1;
        PING_EVERY * u32::try_from(next).unwrap() + PING_MARGIN
    };
    // Trade, then -2010 on the next three new orders.
    while started.elapsed() < REJECT_AFTER {
        watch.check_alive(&hot_thread, "trading");
        pause(100);
    }
    ex.command("reject-next 3");
    watch.wait_for(&hot_thread, "code -2010");
    watch.wait_for_matching_audit(&hot_thread);
    // A 429 storm: back off, pause quoting, resume.
    ex.command("ratelimit 2");
    watch.wait_for(&hot_thread, "live: rate limited");
    watch.wait_for(&hot_thread, "live: back-off over");
    watch.wait_for_matching_audit(&hot_thread);
    // More trading, until the window is long enough, held a fill and the next pings.
    let mut after = ex.accounting();
    while started.elapsed() < WINDOW
        || run_started.elapsed() < pings_by
        || delta(&after, &before, "fills") == 0
    {
        assert!(
            started.elapsed() < WINDOW_MAX,
            "the counted window did not close within {WINDOW_MAX:?} (a fill in it?): \
             {after}; log:\n{}",
            watch.text()
        );
        watch.check_alive(&hot_thread, "trading");
        pause(500);
        after = ex.accounting();
    }
    counting::set_phase(counting::WIND_DOWN);
    let window = started.elapsed();
    let allocations = counting::count(counting::COUNTED);
    let sizes = counting::counted_sizes();
    let window_log_end = watch.text().len();

    // Wind-down: the Ctrl+C path.
    let wind_started = now();
    shutdown.request();
    let summary = hot_thread.join().unwrap().unwrap();
    let wind_took = wind_started.elapsed();
    let _ = logger.finish();
    let end = ex.accounting();
    let log_text = watch.text();
    std::env::set_current_dir(&home).unwrap();

    // It really traded inside the window...
    let window_log = &log_text[window_log_start..window_log_end];
    let lines = |needle: &str| window_log.lines().filter(|l| l.contains(needle)).count();
    let orders = delta(&after, &before, "orders_received");
    let accepted = delta(&after, &before, "orders_accepted");
    let fills = delta(&after, &before, "fills");
    let cancels = delta(&after, &before, "cancels_received");
    let rejects = delta(&after, &before, "forced_rejects");
    let limited = delta(&after, &before, "rate_limited");
    let requests = delta(&after, &before, "api_requests");
    assert!(orders >= 20, "new orders in the window: {orders}");
    assert!(fills >= 1, "fills in the window: {fills}");
    assert!(
        orders + cancels + fills >= 60,
        "order actions in the window: {orders} orders, {cancels} cancels, {fills} fills"
    );
    assert_eq!(rejects, 3, "-2010 rejections in the window");
    assert!(limited >= 1, "429 answers in the window: {limited}");
    assert!(
        lines("per the exchange: match") >= 2,
        "audits in the window"
    );
    assert!(lines("live: venue ") >= 1, "venue counters in the window");
    assert!(
        !log_text.contains("MISMATCH"),
        "an audit found a difference"
    );
    assert!(
        !window_log.contains("order connection down")
            && !window_log.contains("market data: disconnected"),
        "no reconnect in the window:\n{window_log}"
    );
    // ...ended clean...
    assert_eq!(summary.end, LoopEnd::Signal);
    assert!(summary.clean, "the exchange did not confirm the wind-down");
    assert_eq!(summary.open_orders_exchange, Some(0));
    assert_eq!(end["open_orders"].as_u64(), Some(0), "{end}");
    assert!(log_text.contains("live: the exchange confirms no order of ours is open"));
    // The quiet market's warm-up (`engine.warm_every_us`, on by default: at most one per
    // 20 µs) ran inside the counted window too: more warm-ups than could fit in the rest
    // of the run.
    let warm_ups: u64 = log_text
        .lines()
        .find_map(|l| {
            l.split("records dropped; ")
                .nth(1)?
                .strip_suffix(" warm-ups of the hot path")
        })
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no warm-up count in the stop line:\n{log_text}"));
    let outside_window = run_started.elapsed().saturating_sub(window);
    let fit_outside = u64::try_from(outside_window.as_micros() / 20).unwrap();
    assert!(
        warm_ups > fit_outside,
        "warm-ups of the hot path: {warm_ups}, not more than the {fit_outside} that fit \
         outside the counted window"
    );

    if keys == Keys::Ed25519 {
        let methods = &end["api_requests_by_method"];
        assert!(methods["session.logon"].as_u64() >= Some(1), "{end}");
        assert!(
            methods["userDataStream.subscribe.signature"].is_null(),
            "{end}"
        );
    }
    println!(
        "{keys:?} key: live hot thread, counted window of {window:.1?}: {orders} new orders ({accepted} \
         accepted), {cancels} cancels, {fills} fills, {rejects} rejects (-2010), {limited} \
         answers 429 (back-off and resume), {requests} WebSocket API requests, {} acks, {} \
         audits matched, {} venue-counter lines: {allocations} allocations; \
         start-up + connect + warm-up ({warmup_took:.1?}): {}; wind-down ({wind_took:.1?}, \
         cancel all and confirm): {}; total run {:.1?}; {warm_ups} warm-ups of the hot path",
        lines("venue: ack"),
        lines("per the exchange: match"),
        lines("live: venue "),
        counting::count(counting::WARMUP),
        counting::count(counting::WIND_DOWN),
        t0.elapsed(),
    );
    counting::print_backtraces();
    // ...and never allocated.
    assert_eq!(
        allocations, 0,
        "{keys:?} key: allocations on the live hot thread in the window (first sizes: {sizes:?}; \
         MM_ZERO_ALLOC_BACKTRACE=1 prints where)"
    );
    drop(work);
}

/// `after[key] − before[key]` of two accounting answers.
fn delta(after: &Value, before: &Value, key: &str) -> u64 {
    let n = |v: &Value| v[key].as_u64().unwrap_or_else(|| panic!("no {key} in {v}"));
    n(after) - n(before)
}

/// mm's log, read from its files while it runs.
struct LogWatch {
    dir: PathBuf,
    /// Bytes already looked at by `wait_for`.
    seen: usize,
}

impl LogWatch {
    fn new(dir: &Path) -> LogWatch {
        LogWatch {
            dir: dir.to_path_buf(),
            seen: 0,
        }
    }

    fn text(&self) -> String {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return String::new();
        };
        let mut paths: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
        paths.sort();
        paths
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect()
    }

    fn check_alive<T>(&self, hot: &thread::JoinHandle<T>, what: &str) {
        assert!(
            !hot.is_finished(),
            "live::run returned while {what}; log:\n{}",
            self.text()
        );
    }

    /// Waits until a log line after the last match contains `needle`; returns the line.
    fn wait_for<T>(&mut self, hot: &thread::JoinHandle<T>, needle: &str) -> String {
        let start = now();
        loop {
            let log = self.text();
            if let Some(at) = log[self.seen.min(log.len())..].find(needle) {
                let at = self.seen + at;
                let line_start = log[..at].rfind('\n').map_or(0, |i| i + 1);
                let line_end = log[at..].find('\n').map_or(log.len(), |i| at + i);
                self.seen = line_end;
                return log[line_start..line_end].to_string();
            }
            self.check_alive(hot, needle);
            assert!(
                start.elapsed() < Duration::from_secs(WAIT_S),
                "no {needle:?} in the log within {WAIT_S} s; log since the last match:\n{}",
                &log[self.seen.min(log.len())..]
            );
            pause(50);
        }
    }

    /// Waits for an audit after the last match that found the engine's and the exchange's
    /// open orders equal.
    fn wait_for_matching_audit<T>(&mut self, hot: &thread::JoinHandle<T>) {
        let line = self.wait_for(hot, "per the exchange: match");
        assert!(line.contains("live: audit:"), "{line}");
    }
}

#[allow(clippy::disallowed_methods)] // test timing on the main thread
fn now() -> Instant {
    Instant::now()
}

#[allow(clippy::disallowed_methods)] // the main thread waits; the hot thread never sleeps
fn pause(ms: u64) {
    thread::sleep(Duration::from_millis(ms));
}

// ---------------------------------------------------------------------------------------
// Counting allocator (marked threads only, per phase): tests/support/phased.rs
// ---------------------------------------------------------------------------------------

#[path = "support/phased.rs"]
mod counting;
