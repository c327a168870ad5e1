//! The `[metrics]` endpoint during a real paper-trading session: `mm-exchange` replays the
//! recorded BTCUSDT session at 20× over TLS, `mm --mode=paper-trading --set
//! metrics.listen=127.0.0.1:0` trades it, and the test scrapes `GET /metrics` over plain
//! HTTP while it runs: the Prometheus text must pass `promtool check metrics` (the
//! Prometheus project's own checker; Debian package `prometheus`, installed by .ci/run),
//! carry the session's counters and histograms, and the OpenMetrics variant (asked for
//! with `Accept`) must end with `# EOF`. Anything but `/metrics` is a 404.
//!
//! Runs on the bundled real slice (tools/data), so a fresh clone runs it too.
//! Needs `promtool` on PATH: fails (never skips) without it, saying how to install it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

#[path = "support/process.rs"]
mod process;

use process::{data, mm, text, Exchange, Workdir};

#[allow(clippy::disallowed_methods)] // the test waits for the session in real time
fn pause(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// One HTTP GET on a fresh connection: (status line, body).
fn get(addr: &str, path: &str, accept: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP answer");
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

/// The value of the sample line that starts with `series ` (first match).
fn sample(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{body}"))
}

#[test]
fn the_metrics_endpoint_serves_valid_prometheus_text_during_paper_trading() {
    let promtool = Command::new("promtool").arg("--version").output();
    assert!(
        promtool.is_ok_and(|o| o.status.success()),
        "promtool not found: install the Debian package `prometheus` (apt-get install -y \
         prometheus), as .ci/run does"
    );
    let work = Workdir::new("mm-metrics", "paper");
    let exchange = Exchange::start(&[data::bundled_spot()], &["--speed", "20"]);
    let (endpoint, ca) = (exchange.endpoint_flag(), exchange.ca_flag());
    let paper = mm(
        &work.0,
        &[
            "--mode=paper-trading",
            &endpoint,
            &ca,
            "--set",
            "metrics.listen=127.0.0.1:0",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let pid = paper.id().to_string();

    // The address it chose, from the log.
    let log_dir = work.path("logs");
    let mut addr = None;
    for _ in 0..300 {
        let log: String = std::fs::read_dir(&log_dir)
            .map(|d| {
                d.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                    .collect()
            })
            .unwrap_or_default();
        addr = log
            .split("metrics: serving http://")
            .nth(1)
            .and_then(|rest| rest.split("/metrics").next())
            .map(str::to_string);
        if addr.is_some() {
            break;
        }
        pause(100);
    }
    let addr = addr.expect("no 'metrics: serving' line in the log");

    // Let it trade, then scrape.
    pause(12_000);
    let (status, prom) = get(&addr, "/metrics", "text/plain");
    assert!(status.contains("200"), "{status}");
    let file = work.path("scrape.prom");
    std::fs::write(&file, &prom).unwrap();
    let check = Command::new("sh")
        .arg("-c")
        .arg(format!("promtool check metrics < {}", file.display()))
        .output()
        .unwrap();
    let (check_out, check_err) = text(&check);
    assert!(
        check.status.success(),
        "promtool check metrics failed:\n{check_out}{check_err}\n{prom}"
    );
    assert!(sample(&prom, "mm_market_frames_total") > 0.0, "{prom}");
    assert!(sample(&prom, "mm_quotes_total") > 0.0, "{prom}");
    assert!(
        sample(&prom, "mm_latency_seconds_count{stage=\"tick_to_quote\"}") > 0.0,
        "{prom}"
    );
    assert!(prom.contains("mm_kpi_met{kpi=\"total_pnl\"}"), "{prom}");
    assert!(prom.contains("mm_inventory_base "), "{prom}");

    // The Grafana dashboard (docs/grafana-dashboard.json) is valid JSON and charts only
    // series this endpoint serves (or declares).
    let dashboard = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/grafana-dashboard.json"),
    )
    .unwrap();
    let json: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let exprs: Vec<&str> = json["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .map(|t| t["expr"].as_str().unwrap())
        .collect();
    assert!(exprs.len() >= 10, "{exprs:?}");
    for expr in &exprs {
        for (at, _) in expr.match_indices("mm_") {
            let name: String = expr[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
                .collect();
            // A sample, or the family's declaration (the KPIs are n/a, so absent, until
            // their activity minimums are met).
            let declared = format!("# TYPE {name} ");
            assert!(
                prom.lines()
                    .any(|l| l.starts_with(&name) || l.starts_with(&declared)),
                "the dashboard charts {name}, which the endpoint does not serve"
            );
        }
    }

    let (status, om) = get(
        &addr,
        "/metrics",
        "application/openmetrics-text; version=1.0.0",
    );
    assert!(status.contains("200"), "{status}");
    assert!(om.trim_end().ends_with("# EOF"), "{om}");
    let (status, _) = get(&addr, "/", "text/plain");
    assert!(status.contains("404"), "{status}");

    let killed = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(killed.success());
    let out = paper.wait_with_output().unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
}

/// `metrics.listen` must be a loopback IP:PORT: anything else is refused at start (exit 2)
/// with the key and the fix.
#[test]
fn a_non_loopback_or_malformed_listen_address_is_refused_naming_the_key() {
    let work = Workdir::new("mm-metrics", "config");
    for (value, problem) in [
        ("0.0.0.0:9184", "is not a loopback address"),
        ("localhost:9184", "is not IP:PORT"),
    ] {
        let set = format!("metrics.listen={value}");
        let out = mm(&work.0, &["--mode=paper-trading", "--set", &set])
            .output()
            .unwrap();
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{value}: {stderr}");
        assert!(
            stderr.contains("metrics.listen") && stderr.contains(problem),
            "{value}: {stderr}"
        );
    }
}
