//! Paper trading end to end over loopback: `mm-exchange` replays the recorded BTCUSDT
//! session over TLS at 20× speed, `mm --mode=paper-trading --endpoint=... --ca=...` trades it
//! against the simulated venue, and is stopped with Ctrl+C (SIGINT). Asserts a sensible
//! session: exit 0 after a clean shutdown, quotes and fills, the six KPIs in the final
//! report, a KPI snapshot that `--mode=kpi --once` prints, a latency dump that
//! `--mode=latency` decodes, the order life cycle in the log, a malformed market frame
//! counted in the final report, and the stale-data stop (the
//! exchange's market data stalled for 8 s) tripping and clearing as in live.
//!
//! Runs on the bundled slice (tools/data): nothing beside the clone is needed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::process::{Command, Stdio};
use std::time::Duration;

#[path = "support/process.rs"]
mod process;

use process::{data, mm, text, Exchange, Workdir};

#[test]
fn paper_trading_against_the_local_exchange_reports_kpis_and_latency() {
    let work = Workdir::new("mm-paper", "e2e");

    // The exchange, 20× real time, TLS on an ephemeral port.
    let mut exchange = Exchange::start(&[data::bundled_spot()], &["--speed", "20"]);

    // Paper trading, stopped by SIGINT after ~20 s (≈ 400 s of market at 20×), with 8 s
    // of silent market data in the middle (risk.stale_data_ms = 5 s): quoting must stop
    // and resume exactly as live does.
    let endpoint = exchange.endpoint_flag();
    let ca = exchange.ca_flag();
    // A tight quote (1–2 bps), as tests/live.rs sets it: this tests the plumbing, and with
    // the default fee-wide spread 12 s of trading may see no fill.
    let paper = mm(
        &work.0,
        &[
            "--mode=paper-trading",
            &endpoint,
            &ca,
            "--set",
            "quoting.spread_min_bps=1",
            "--set",
            "quoting.spread_max_bps=2",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let pid = paper.id();
    #[allow(clippy::disallowed_methods)] // a test waits for the session to trade a while
    std::thread::sleep(Duration::from_secs(6));
    // One malformed market frame: refused, counted, and told in the final report.
    exchange.command("garbage");
    exchange.command("stall-market 8000");
    #[allow(clippy::disallowed_methods)] // the stall, then trading again
    std::thread::sleep(Duration::from_secs(14));
    let status = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = paper.wait_with_output().unwrap();
    drop(exchange);
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );

    // The final report: quotes, fills, the six KPIs.
    let report = stdout
        .rsplit("📊 BTCUSDT Performance Report")
        .next()
        .expect("no report printed");
    assert!(report.contains("KPI Status:"), "{report}");
    for kpi in [
        "Spread captured",
        "RMS inventory",
        "Fill ratio",
        "Cancel ratio",
        "Latency P99",
        "Total PnL",
    ] {
        assert!(report.contains(kpi), "{kpi} missing from:\n{report}");
    }
    let fills: u64 = report
        .lines()
        .find_map(|l| l.strip_prefix("Total Fills:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("no fill count");
    let quotes: u64 = report
        .lines()
        .find_map(|l| l.strip_prefix("Total Quotes:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("no quote count");
    assert!(quotes > 0, "{report}");
    assert!(fills > 0, "20 s of 20× BTCUSDT must fill:\n{report}");

    let refused: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("market data: "))
        .and_then(|l| l.split(", ").nth(1))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no market data line in:\n{stdout}"));
    assert_eq!(refused, 1, "the garbage frame, counted once:\n{stdout}");

    // The snapshot, as --mode=kpi --once shows it.
    let kpi = mm(&work.0, &["--mode=kpi", "--once"]).output().unwrap();
    let (kpi_out, kpi_err) = text(&kpi);
    assert!(kpi.status.success(), "{kpi_err}");
    assert!(kpi_out.contains("KPI Status:"), "{kpi_out}");

    // The latency dump decodes and holds tick-to-quote and order round-trip samples.
    let hlog = std::fs::read_dir(work.0.join("latency"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "hlog"))
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
        assert!(lat_out.contains(tag), "{tag} missing:\n{lat_out}");
    }

    // The log tells the story: orders, acks, fills, the Ctrl+C cancel-all, a clean end.
    let log_path = std::fs::read_dir(work.0.join("logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .next()
        .expect("no log file");
    let log = std::fs::read_to_string(log_path).unwrap();
    for needle in [
        "order: place",
        "venue: ack",
        "venue: fill",
        "book: snapshot loaded",
        "trading stopped: StaleData",
        "trading resumed",
        "trading stopped: Shutdown",
        "stopped by signal",
        "shutdown clean",
    ] {
        assert!(log.contains(needle), "{needle:?} missing from the log");
    }
}
