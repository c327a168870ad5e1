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
    // A tight quote (1–2 bps), as tests/live.rs sets it: this tests the plumbing, and with
    // the default fee-wide spread 12 s of trading may see no fill.
    // The hot thread pinned to the last core this test may use, as a colocated host runs
    // it: every other thread of mm must leave that core (`mm::cpu`).
    let cores = mm::cpu::allowed_cores();
    let hot_core = *cores.last().expect("some core");
    let pin = format!("engine.cpu_core={hot_core}");
    let mut paper = paper_session(
        &work,
        &exchange,
        &["quoting.spread_min_bps=1", "quoting.spread_max_bps=2", &pin],
    );
    let pid = paper.id();
    #[allow(clippy::disallowed_methods)] // a test waits for the session to trade a while
    std::thread::sleep(Duration::from_secs(6));
    if let Err(problem) = check_thread_cores(pid, hot_core, &cores) {
        // Not left running behind a failed test.
        let _ = paper.kill();
        let _ = paper.wait();
        panic!("{problem}");
    }
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
    // … and the per-stage breakdown of tick-to-quote, measured in place.
    for tag in [
        "tick_to_quote",
        "order_round_trip",
        "stage_read_to_decoded",
        "stage_decoded_to_book",
        "stage_book_to_quote",
        "stage_quote_to_order",
        "stage_poll_to_read",
        "stage_read_socket",
        "stage_read_tls_open",
        "stage_read_queued",
        "stage_read_ws_frame",
        "stage_read_decode",
        "read_to_quote",
        "frame_to_quote",
    ] {
        assert!(lat_out.contains(tag), "{tag} missing:\n{lat_out}");
    }
    let stages = stdout
        .split("Latency per stage (in situ")
        .nth(1)
        .unwrap_or_else(|| panic!("no per-stage latency in the final report:\n{stdout}"));
    assert!(stages.contains("stage_quote_to_order"), "{stages}");

    // The log tells the story: orders, acks, fills, the Ctrl+C cancel-all, a clean end.
    let log = log_of(&work);
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

/// A side thread blocked at the stop — here on a console nobody reads (stdout a pipe that
/// is never drained, as a paused terminal or a stuck `| tee` leaves it): the stop does not
/// wait for it forever. Within `shutdown::JOIN_WAIT` (5 s) of the wind-down, mm says which
/// thread did not finish and what may be missing, on stderr and in the log, and exits 1.
#[test]
fn a_side_thread_blocked_on_stdout_does_not_hold_the_stop() {
    let work = Workdir::new("mm-paper", "stuck-side");
    let exchange = Exchange::start(&[data::bundled_spot()], &["--speed", "20"]);
    // A report every 10 ms fills the 64 KiB pipe in well under a second.
    let mut paper = paper_session(&work, &exchange, &["kpi.report_every_s=0.01"]);
    // Held, never read: the side thread's next report blocks in write(2).
    let _stdout = paper.stdout.take().unwrap();
    let mut stderr = paper.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut text).unwrap();
        text
    });
    #[allow(clippy::disallowed_methods)] // a test lets the session run and the pipe fill
    std::thread::sleep(Duration::from_secs(5));
    assert!(paper.try_wait().unwrap().is_none(), "mm ended early");
    let pid = paper.id();
    #[allow(clippy::disallowed_methods)] // a test times the stop
    let signalled = std::time::Instant::now();
    let status = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Wind-down (paper: immediate) + JOIN_WAIT (5 s) + exit: well inside 20 s.
    let status = loop {
        if let Some(status) = paper.try_wait().unwrap() {
            break status;
        }
        if signalled.elapsed() > Duration::from_secs(20) {
            let _ = paper.kill();
            panic!("mm did not exit within 20 s of SIGINT with its side thread blocked");
        }
        #[allow(clippy::disallowed_methods)] // polling the child
        std::thread::sleep(Duration::from_millis(50));
    };
    let waited = signalled.elapsed();
    let stderr = err_reader.join().unwrap();
    assert_eq!(status.code(), Some(1), "stderr:\n{stderr}");
    assert!(
        waited >= Duration::from_secs(4),
        "exited after {waited:?}: did it wait for the side thread at all?"
    );
    for needle in [
        "mm: error: the side thread (mm-side) did not finish within 5 s after the stop",
        "stdout not read",
        "the final report may be missing",
    ] {
        assert!(
            stderr.contains(needle),
            "{needle:?} missing from stderr:\n{stderr}"
        );
    }
    let log = log_of(&work);
    assert!(
        log.contains("ERROR stop: the side thread (mm-side) did not finish"),
        "the log does not say it:\n{log}"
    );
    drop(exchange);
}

/// `mm --mode=paper-trading` against `exchange` with `--set` each of `sets`, stdout and
/// stderr piped.
fn paper_session(work: &Workdir, exchange: &Exchange, sets: &[&str]) -> std::process::Child {
    let (endpoint, ca) = (exchange.endpoint_flag(), exchange.ca_flag());
    let mut args = vec!["--mode=paper-trading", &endpoint, &ca];
    for set in sets {
        args.extend(["--set", set]);
    }
    mm(&work.0, &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The hot thread (`mm`, the main thread) may run on `hot_core` only, and every other
/// thread on the `cores` the test may use but `hot_core` (all of them on a 1-core host).
fn check_thread_cores(pid: u32, hot_core: usize, cores: &[usize]) -> Result<(), String> {
    let threads = thread_cores(pid);
    for name in ["mm", "mm-side", "mm-log", "mm-rest", "mm-dns"] {
        if !threads.iter().any(|(n, _)| n == name) {
            return Err(format!("no thread {name} in {threads:?}"));
        }
    }
    let others: Vec<usize> = if cores.len() > 1 {
        cores.iter().copied().filter(|&c| c != hot_core).collect()
    } else {
        cores.to_vec()
    };
    for (name, allowed) in &threads {
        let want = if name == "mm" {
            vec![hot_core]
        } else {
            others.clone()
        };
        if allowed != &want {
            // The DNS thread is started by the hot thread after its pin: it would inherit it.
            return Err(format!(
                "{name} may run on {allowed:?}, not {want:?} (hot core {hot_core}): {threads:?}"
            ));
        }
    }
    Ok(())
}

/// Each thread of process `pid`: its name and the cores it may run on
/// (`/proc/<pid>/task/<tid>/status`, `Cpus_allowed_list`, e.g. `0-2,5`).
fn thread_cores(pid: u32) -> Vec<(String, Vec<usize>)> {
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        let name = std::fs::read_to_string(dir.join("comm"))
            .unwrap()
            .trim()
            .to_string();
        let status = std::fs::read_to_string(dir.join("status")).unwrap();
        let list = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .expect("Cpus_allowed_list")
            .trim();
        let mut cores = Vec::new();
        for part in list.split(',') {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            cores.extend(a.parse::<usize>().unwrap()..=b.parse::<usize>().unwrap());
        }
        threads.push((name, cores));
    }
    threads
}

/// The session's log file.
fn log_of(work: &Workdir) -> String {
    let path = std::fs::read_dir(work.0.join("logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .next()
        .expect("no log file");
    std::fs::read_to_string(path).unwrap()
}
