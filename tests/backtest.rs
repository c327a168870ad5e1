//! `mm --mode=backtest` and `--mode=convert` as a user runs them: the real binary in an
//! empty working directory (so the built-in defaults and the built-in data slice are what
//! it finds), checked for: the report folder and every file in it, byte-identical results
//! on a second run, PnL that reconciles with `fills.csv`, journals (written by the
//! engine's own `JournalWriter` and by `--mode=convert`) that replay to the same result as
//! the capture they came from, CSV dumps, errors that name the file and line, `--grid`,
//! and the shared recorded data sets.
//!
//! The shared-data test is an extra run (`#[ignore]`d: `cargo test -- --include-ignored`,
//! as `.ci/run` does) that fails without ../shared/data; every other test runs on the
//! bundled slice. Writes only inside its temporary working directories.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use mm::backtest::Scorecard;
use mm::config::{self, LoadOptions};
use mm::journal::JournalWriter;
use mm::replay::{open_inputs, FrameReader, Merger, Tape, DEFAULT_SLICE, DEFAULT_SLICE_NAME};
use mm::report::backtest::{Summary, Timing};
use mm::telemetry::kpi::KpiKind;

#[path = "support/process.rs"]
mod process;

use process::Workdir;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The run folder named on the `report: <folder>` line.
/// Runs a backtest that must be refused after the replay because it placed no order: exit
/// 1 and the reason on stderr (`reason` is a part of it); returns stdout (the report is
/// still written).
fn refused(w: &Workdir, args: &[&str], reason: &str) -> String {
    let out = w.run(args);
    let (stdout, stderr) = process::text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "mm {args:?}\n{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("the backtest placed no order") && stderr.contains(reason),
        "{stderr}"
    );
    stdout
}

fn report_folder(w: &Workdir, stdout: &str) -> PathBuf {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("report: "))
        .unwrap_or_else(|| panic!("no report line in: {stdout}"));
    w.0.join(line.trim())
}

/// `summary.json` without its wall-clock `timing` (and, when asked, without the data
/// sources, which name the files).
fn summary(folder: &Path, drop_sources: bool) -> serde_json::Value {
    let text = std::fs::read_to_string(folder.join("summary.json")).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let object = value.as_object_mut().unwrap();
    assert!(
        object.remove("timing").is_some(),
        "timing is a separate field"
    );
    if drop_sources {
        object["data"].as_object_mut().unwrap().remove("sources");
        object["settings"]
            .as_object_mut()
            .unwrap()
            .remove("config_layers");
    }
    value
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/binance-public")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn default_run_uses_the_built_in_slice_and_writes_every_report_file() {
    let w = Workdir::new("mm-backtest", "default");
    let out = w.ok(&["--mode=backtest"]);
    assert!(out.contains(DEFAULT_SLICE_NAME), "{out}");
    assert!(
        out.contains("📊 BTCUSDT Performance Report (Backtest)"),
        "{out}"
    );
    assert!(out.contains("KPI Status: "), "{out}");
    assert!(out.contains("M events/s"), "{out}");
    // At the regular 10 bps tier the few fills do not pay their fee, and the run says so.
    assert!(out.contains("No edge at this fee tier"), "{out}");
    let folder = report_folder(&w, &out);
    assert!(folder.starts_with(w.path("reports")));
    let name = folder.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.ends_with("Z_BTCUSDT") && name.len() == "20240808T235413Z_BTCUSDT".len());
    for file in [
        "summary.json",
        "fills.csv",
        "timeseries.csv",
        "pnl_inventory.svg",
        "pnl_split.svg",
        "quotes_zoom.svg",
        "markouts.svg",
    ] {
        let bytes = std::fs::read(folder.join(file)).unwrap();
        assert!(bytes.len() > 100, "{file} is empty");
        if file.ends_with(".svg") {
            let text = String::from_utf8(bytes).unwrap();
            assert!(text.starts_with("<svg") && text.contains("<text"), "{file}");
            assert!(
                text.contains("<polyline") || text.contains("<path"),
                "{file}"
            );
        }
    }
    let s = summary(&folder, false);
    assert_eq!(s["mode"], "backtest");
    assert_eq!(s["kpis"].as_array().unwrap().len(), 6);
    for kpi in s["kpis"].as_array().unwrap() {
        assert!(
            kpi["target"].is_number() && kpi["met"].is_boolean(),
            "{kpi}"
        );
    }
    assert_eq!(s["data"]["events"], 41_249);
    assert_eq!(s["data"]["snapshots"], 1);
    assert!(s["orders"]["orders_placed"].as_u64().unwrap() > 0);
    assert!(
        s["orders"]["fills"].as_u64().unwrap() > 0,
        "the slice fills"
    );
    let rows = std::fs::read_to_string(folder.join("timeseries.csv"))
        .unwrap()
        .lines()
        .count();
    assert!((340..360).contains(&rows), "one row a second: {rows}");
}

#[test]
fn two_runs_give_identical_summaries_and_fills() {
    let w = Workdir::new("mm-backtest", "determinism");
    let args = [
        "--mode=backtest",
        "--set",
        "venue.entry_latency=lognormal 3ms 0.6 40ms",
    ];
    let first = report_folder(&w, &w.ok(&args));
    let second = report_folder(&w, &w.ok(&args));
    assert_ne!(first, second, "each run gets its own folder");
    assert_eq!(summary(&first, false), summary(&second, false));
    for file in ["fills.csv", "timeseries.csv"] {
        assert_eq!(
            std::fs::read(first.join(file)).unwrap(),
            std::fs::read(second.join(file)).unwrap(),
            "{file} differs"
        );
    }
    // The summary without timing is byte-identical too (field order is fixed).
    let strip = |p: &Path| {
        let text = std::fs::read_to_string(p.join("summary.json")).unwrap();
        text[..text.find("\"timing\"").unwrap()].to_string()
    };
    assert_eq!(strip(&first), strip(&second));
    // Another seed changes the latency draws.
    let third = report_folder(
        &w,
        &w.ok(&[
            "--mode=backtest",
            "--set",
            "venue.entry_latency=lognormal 3ms 0.6 40ms",
            "--set",
            "venue.seed=7",
        ]),
    );
    assert_ne!(summary(&first, true), summary(&third, true));
}

/// A decimal string → integer units of 10⁻⁸ (exact).
fn atoms(text: &str) -> i128 {
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    assert!(frac.len() <= 8, "{text}");
    let frac = format!("{frac:0<8}");
    sign * (int.parse::<i128>().unwrap() * 100_000_000 + frac.parse::<i128>().unwrap())
}

#[test]
fn pnl_reconciles_with_the_fills_csv() {
    let w = Workdir::new("mm-backtest", "accounting");
    // A low risk aversion at the liquidity-provider tier (0 bps) quotes near the spread
    // floor: dozens of fills on both sides.
    let folder = report_folder(
        &w,
        &w.ok(&[
            "--mode=backtest",
            "--set",
            "model.gamma_per_bps=0.01",
            "--set",
            "venue.maker_fee_bps=0",
        ]),
    );
    let s = summary(&folder, false);
    let text = std::fs::read_to_string(folder.join("fills.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (side, price, qty, fee) = (col("side"), col("price"), col("qty"), col("fee_quote"));
    // Everything in 10⁻¹⁶ of the quote currency: price atoms × quantity atoms.
    let mut cash_e16: i128 = 0;
    let mut fees: i128 = 0;
    let mut inventory: i128 = 0;
    let mut rows = 0u64;
    let mut sides = BTreeMap::new();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        let sign = match f[side] {
            "BUY" => 1,
            "SELL" => -1,
            other => panic!("side {other}"),
        };
        *sides.entry(f[side].to_string()).or_insert(0) += 1;
        let (p, q) = (atoms(f[price]), atoms(f[qty]));
        cash_e16 -= sign * p * q;
        inventory += sign * q;
        fees += atoms(f[fee]);
        rows += 1;
    }
    assert!(rows >= 20, "want fills to reconcile, got {rows}");
    assert_eq!(sides.len(), 2, "both sides filled: {sides:?}");
    assert_eq!(rows, s["orders"]["fills"].as_u64().unwrap());
    let pnl = &s["pnl"];
    let mid = atoms(pnl["final_mid_exact"].as_str().unwrap());
    // PnL = cash + inventory × mid − fees, to within the venue's per-fill truncation to
    // whole quote atoms (one atom per fill) and the final mark's (one atom).
    let recomputed_e16 = cash_e16 + inventory * mid - fees * 100_000_000;
    let reported_e16 = atoms(pnl["total_quote_exact"].as_str().unwrap()) * 100_000_000;
    let tolerance = (i128::from(rows) + 1) * 100_000_000;
    assert!(
        (recomputed_e16 - reported_e16).abs() <= tolerance,
        "recomputed {recomputed_e16} vs reported {reported_e16} (1e-16 USDT)"
    );
    assert_eq!(fees, atoms(pnl["fees_quote_exact"].as_str().unwrap()));
    assert_eq!(
        inventory,
        atoms(pnl["inventory_base_exact"].as_str().unwrap())
    );
    let cash_atoms = atoms(pnl["cash_before_fees_quote_exact"].as_str().unwrap());
    assert!((cash_e16 / 100_000_000 - cash_atoms).abs() <= i128::from(rows));
    // The venue's own books agree with the engine's.
    assert_eq!(
        i128::from(s["venue"]["position_lots"].as_i64().unwrap()) * 1_000,
        inventory
    );
    assert_eq!(
        i128::from(s["venue"]["cash_atoms"].as_i64().unwrap()),
        atoms(pnl["cash_before_fees_quote_exact"].as_str().unwrap()) - fees
    );
    // The KPI's total PnL is the same number.
    let kpi_pnl = s["kpis"][5]["measured"].as_f64().unwrap();
    assert!(
        (kpi_pnl - reported_e16 as f64 / 1e16).abs() < 1e-6,
        "{kpi_pnl}"
    );
}

/// A run of the bundled slice with `sets` (each a `--set` value): stdout, summary.json
/// without timing, and the run folder.
fn run_slice(w: &Workdir, sets: &[&str]) -> (String, serde_json::Value, PathBuf) {
    let mut args = vec!["--mode=backtest"];
    for set in sets {
        args.extend(["--set", set]);
    }
    let out = w.ok(&args);
    let folder = report_folder(w, &out);
    (out.clone(), summary(&folder, false), folder)
}

/// The KPI row `name` of a summary.
fn kpi<'a>(s: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    s["kpis"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == name)
        .unwrap_or_else(|| panic!("no KPI {name}"))
}

/// Many fills on both sides of the slice (dozens of filled orders): low risk aversion
/// quotes near the spread floor, at a 2 bps maker fee the model can quote against.
const BUSY: [&str; 2] = ["model.gamma_per_bps=0.01", "venue.maker_fee_bps=2"];

/// `BUSY` and then `extra`.
fn busy<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    BUSY.iter().copied().chain(extra.iter().copied()).collect()
}

#[test]
fn the_markout_horizon_does_not_move_spread_captured() {
    let w = Workdir::new("mm-backtest", "horizon");
    let (_, short, _) = run_slice(&w, &busy(&["kpi.markout_horizon_s=1"]));
    let (_, long, _) = run_slice(&w, &busy(&["kpi.markout_horizon_s=30"]));
    // The markout changes with its horizon (it is adverse selection, reported apart)…
    assert_ne!(short["markouts"]["mean_bps"], long["markouts"]["mean_bps"]);
    // …and nothing else does: not one KPI, not the money.
    assert_eq!(short["kpis"], long["kpis"]);
    assert_eq!(short["pnl"], long["pnl"]);
    let captured = kpi(&short, "Spread captured");
    assert!(
        captured["value"].is_number(),
        "enough fills to judge: {captured}"
    );
    assert!(short["orders"]["orders_with_fill"].as_u64().unwrap() >= 5);
    // It is spread PnL net of fees over the quoted edge: negative when the spread part
    // of the PnL is, whatever the total did.
    let spread = short["pnl"]["spread_quote"].as_f64().unwrap();
    assert_eq!(captured["value"].as_f64().unwrap() < 0.0, spread < 0.0);
}

#[test]
fn a_session_without_fills_meets_nothing_it_did_not_earn() {
    let w = Workdir::new("mm-backtest", "nofill");
    // Quotes 150 bps wide on a quiet slice: the issue's case, a couple of orders resting
    // all session and no fill (the cancel ratio used to pass at 0 %).
    let (out, s, _) = run_slice(&w, &["quoting.spread_min_bps=150"]);
    assert_eq!(s["orders"]["fills"], 0);
    assert!(s["orders"]["orders_placed"].as_u64().unwrap() > 0);
    assert_eq!(kpi(&s, "Cancel ratio")["measured"], 0.0);
    for k in s["kpis"].as_array().unwrap() {
        assert!(k["value"].is_null() && k["met"] == false, "{k}");
        assert!(k["not_judged"].is_string(), "{k}");
    }
    assert_eq!(kpi(&s, "Fill ratio")["not_judged"], "TooFewOrders");
    assert_eq!(kpi(&s, "Total PnL")["not_judged"], "TooFewFilledOrders");
    assert_eq!(s["targets_met"], 0);
    assert!(
        out.contains("❌ Cancel ratio        n/a (not met)"),
        "{out}"
    );
    assert!(out.contains("KPI Status: 0/6 targets met"), "{out}");
}

#[test]
fn fill_ratio_counts_orders_not_partial_fills() {
    let w = Workdir::new("mm-backtest", "partial");
    // Orders that are almost never replaced fill in many parts.
    let (_, s, _) = run_slice(&w, &busy(&["orders.price_tolerance_ticks=100000"]));
    let o = &s["orders"];
    let (fills, filled, placed) = (
        o["fills"].as_u64().unwrap(),
        o["orders_with_fill"].as_u64().unwrap(),
        o["orders_placed"].as_u64().unwrap(),
    );
    assert!(fills > placed, "partial fills outnumber orders: {o}");
    let ratio = kpi(&s, "Fill ratio")["measured"].as_f64().unwrap();
    assert_eq!(ratio, filled as f64 / placed as f64);
    assert!(ratio <= 1.0);
}

#[test]
fn pnl_splits_exactly_into_spread_and_inventory() {
    let w = Workdir::new("mm-backtest", "split");
    let (out, s, folder) = run_slice(&w, &BUSY);
    let pnl = &s["pnl"];
    let exact = |key: &str| atoms(pnl[key].as_str().unwrap());
    let (total, spread, inventory) = (
        exact("total_quote_exact"),
        exact("spread_quote_exact"),
        exact("inventory_quote_exact"),
    );
    assert_eq!(spread + inventory, total);
    assert_eq!(pnl["maker_fee_bps"], 2.0);
    assert!(out.contains("at maker fee 2 bps"), "{out}");
    assert!(out.contains("Fee tier:       maker 2.00 bps"), "{out}");
    // Spread PnL from fills.csv alone: Σ side·(mid at fill − price)·qty − fee, in 10⁻¹⁶.
    let text = std::fs::read_to_string(folder.join("fills.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let mut spread_e16 = 0i128;
    let mut fees = 0i128;
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        let sign = if f[col("side")] == "BUY" { 1 } else { -1 };
        let edge = atoms(f[col("mid_at_fill")]) - atoms(f[col("price")]);
        spread_e16 += sign * edge * atoms(f[col("qty")]);
        fees += atoms(f[col("fee_quote")]);
    }
    assert_eq!(spread_e16 - fees * 100_000_000, spread * 100_000_000);
    assert!(fees > 0, "at 2 bps every fill pays");
    // The time series ends on the same split, and the KPI snapshot agrees.
    let series = std::fs::read_to_string(folder.join("timeseries.csv")).unwrap();
    let last: Vec<&str> = series.lines().last().unwrap().split(',').collect();
    assert_eq!((atoms(last[5]), atoms(last[6])), (spread, inventory));
    let kpi_total = kpi(&s, "Total PnL")["measured"].as_f64().unwrap();
    assert!((kpi_total - total as f64 / 1e8).abs() < 1e-9);
    // Queue position at fill: one entry per fill, never more ahead at fill than at join.
    let q = &s["queue"];
    assert_eq!(q["fills"], s["orders"]["fills"]);
    assert!(q["through_fills"].as_u64().unwrap() <= q["fills"].as_u64().unwrap());
    assert!(
        q["ahead_at_fill_mean_base"].as_f64().unwrap()
            <= q["ahead_at_join_mean_base"].as_f64().unwrap()
    );
    // The plots: the split over time, the markouts against the fee line.
    let split = std::fs::read_to_string(folder.join("pnl_split.svg")).unwrap();
    assert!(split.contains("spread (net of fees)") && split.contains("inventory"));
    let markouts = std::fs::read_to_string(folder.join("markouts.svg")).unwrap();
    assert!(markouts.contains("maker fee 2 bps"), "fee line");
}

#[test]
fn the_scorecard_of_a_replay_agrees_with_its_summary() {
    let w = Workdir::new("mm-backtest", "scorecard");
    let config = config::load(&LoadOptions {
        root: w.0.clone(),
        sets: vec![BUSY[0].to_string(), "venue.maker_fee_bps=-0.5".to_string()],
        ..LoadOptions::default()
    })
    .unwrap();
    let tape = Tape::load(open_inputs(&[], "BTCUSDT").unwrap(), config.spec).unwrap();
    let run = mm::backtest::simulate(&config, &tape, None).unwrap();
    let card = Scorecard::of(&run);
    let summary = Summary::build(&config, &tape, &run, Timing::default());
    assert_eq!(card.maker_fee_bps, -0.5);
    assert!(card.fees_atoms < 0, "a rebate is a negative fee");
    assert_eq!(
        card.spread_pnl_atoms + card.inventory_pnl_atoms,
        card.net_pnl_atoms
    );
    assert_eq!(card.net_pnl_quote, summary.pnl.total_quote);
    assert_eq!(card.spread_pnl_quote, summary.pnl.spread_quote);
    assert_eq!(card.sharpe_per_minute, summary.pnl.sharpe_1m);
    assert_eq!(
        (card.fills, card.orders_filled, card.orders_placed),
        (
            summary.orders.fills,
            summary.orders.orders_with_fill,
            summary.orders.orders_placed
        )
    );
    assert_eq!(card.targets_met, summary.targets_met);
    let kinds: Vec<KpiKind> = card.kpis.iter().map(|k| k.kind).collect();
    assert_eq!(kinds, KpiKind::ALL);
    // The KPI tracker keeps its own books of the same split.
    assert!((run.kpi.spread_pnl_quote - card.spread_pnl_quote).abs() < 1e-8);
    assert!((run.kpi.inventory_pnl_quote.unwrap() - card.inventory_pnl_quote).abs() < 1e-8);
}

#[test]
fn latency_kpi_is_the_latency_the_simulation_charged() {
    let w = Workdir::new("mm-backtest", "latency");
    // Feed 20 ms + entry 5 ms + report 30 ms: every order is answered 55 ms after the
    // market event that prompted it happened at the exchange.
    let (out, s, _) = run_slice(
        &w,
        &busy(&[
            "venue.feed_latency=20ms",
            "venue.entry_latency=5ms",
            "venue.ack_latency=30ms",
        ]),
    );
    let p99 = kpi(&s, "Latency P99")["value"].as_f64().unwrap();
    assert!((p99 - 55.0).abs() < 0.06, "{p99}");
    assert!(
        out.contains("latency: simulated: feed + entry + report"),
        "{out}"
    );
    // A report latency shorter than the feed latency cannot be undone: the venue answers
    // no earlier than the matching, so 10 + 5 + 10 (not 5) is charged.
    let (_, s, _) = run_slice(
        &w,
        &busy(&["venue.feed_latency=10ms", "venue.ack_latency=5ms"]),
    );
    let p99 = kpi(&s, "Latency P99")["value"].as_f64().unwrap();
    assert!((p99 - 25.0).abs() < 0.03, "{p99}");
    // Too slow a venue misses the target.
    let (_, s, _) = run_slice(&w, &busy(&["venue.entry_latency=400ms"]));
    let slow = kpi(&s, "Latency P99");
    assert!(slow["measured"].as_f64().unwrap() > 400.0, "{slow}");
    assert_eq!(slow["met"], false);
}

#[test]
fn a_journal_written_by_the_engine_replays_like_its_capture() {
    let w = Workdir::new("mm-backtest", "journal");
    // The built-in capture, re-written record by record with the engine's JournalWriter.
    let journal = w.path("slice.mmj");
    let mut writer = JournalWriter::create(&journal, "BTCUSDT", 1).unwrap();
    let mut merger = Merger::new(vec![FrameReader::from_gzip_capture(
        DEFAULT_SLICE_NAME,
        DEFAULT_SLICE,
    )]);
    while let Some((_, frame)) = merger.next_frame().unwrap() {
        writer
            .append(frame.kind, frame.local_ts_ns, frame.payload)
            .unwrap();
    }
    writer.finish().unwrap();
    let journal_text = journal.display().to_string();
    let from_capture = report_folder(&w, &w.ok(&["--mode=backtest"]));
    let from_journal = report_folder(&w, &w.ok(&["--mode=backtest", "--data", &journal_text]));
    assert_eq!(summary(&from_capture, true), summary(&from_journal, true));
    assert_eq!(
        std::fs::read(from_capture.join("fills.csv")).unwrap(),
        std::fs::read(from_journal.join("fills.csv")).unwrap()
    );
    // --mode=convert writes the same kind of file; it is never overwritten.
    let out = w.ok(&["--mode=convert", "--out", "converted.mmj"]);
    assert!(out.contains("41249 records"), "{out}");
    let again = w.run(&["--mode=convert", "--out", "converted.mmj"]);
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    let converted = report_folder(&w, &w.ok(&["--mode=backtest", "--data", "converted.mmj"]));
    assert_eq!(summary(&from_capture, true), summary(&converted, true));
}

#[test]
fn malformed_input_names_the_file_and_the_line() {
    let w = Workdir::new("mm-backtest", "malformed");
    let good = r#"{"stream":"btcusdt@bookTicker","data":{"u":5,"s":"BTCUSDT","b":"100.00","B":"1.0","a":"100.01","A":"2.0"}}"#;
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "bad-time.txt",
            format!("1723161253937085768 {good}\n1723161253937085769 {good}\nabc {good}\n"),
            "bad-time.txt: line 3:",
        ),
        (
            "backwards.txt",
            format!("1723161253937085768 {good}\n1723161253937085767 {good}\n"),
            "backwards.txt: line 2: time 1723161253937085767 ns is earlier",
        ),
        (
            "bad-json.txt",
            format!("1723161253937085768 {good}\n1723161253937085769 {{\"stream\":\n"),
            "bad-json.txt: line 2: the decoder refused the frame",
        ),
        (
            "BTCUSDT-trades-2024-08-08.csv",
            "1,61837.63,0.001,61.8,1723161600000,True,True\n2,61837.63,0.001,61.8\n".to_string(),
            "BTCUSDT-trades-2024-08-08.csv: line 2: 4 fields",
        ),
    ];
    for (name, text, expected) in cases {
        std::fs::write(w.path(name), text).unwrap();
        let out = w.run(&["--mode=backtest", "--data", name]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{name}: {}", stderr(&out));
    }
    let out = w.run(&["--mode=backtest", "--data", "nothing-here/*.gz"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("nothing-here/*.gz"),
        "{}",
        stderr(&out)
    );
    let out = w.run(&["--mode=backtest", "--set", "venue.maker_fee_bps=lots"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("flag --set venue.maker_fee_bps=lots"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn binance_csv_dumps_replay_plain_zipped_and_converted() {
    let w = Workdir::new("mm-backtest", "csv");
    let trades = fixture("BTCUSDT-trades-2024-08-08.csv");
    let agg = fixture("BTCUSDT-aggTrades-2024-08-08.csv");
    let book = fixture("BTCUSDT-bookTicker-2024-08-08.csv");
    let folder = report_folder(
        &w,
        &refused(
            &w,
            &[
                "--mode=backtest",
                "--data",
                &book,
                "--data",
                &trades,
                "--data",
                &agg,
            ],
            "no REST depth snapshot",
        ),
    );
    let s = summary(&folder, false);
    assert_eq!(s["data"]["book_tickers"], 5);
    assert_eq!(s["data"]["trades"], 9);
    assert_eq!(s["data"]["events"], 14);
    assert_eq!(s["data"]["start_utc"], "2024-08-08T23:59:59.995Z");
    // CSV times are exchange times: the feed latency is the configured default.
    let source = s["settings"]["feed_latency_source"].as_str().unwrap();
    assert!(source.starts_with("config"), "{source}");
    // Top of book only: the L2 book never syncs, so nothing is quoted — and the summary
    // says why.
    assert_eq!(s["orders"]["orders_placed"], 0);
    assert!(s["notes"].to_string().contains("no REST depth snapshot"));

    // The same bookTicker file zipped as Binance ships it.
    let csv = std::fs::read(&book).unwrap();
    let zip = zip_one("BTCUSDT-bookTicker-2024-08-08.csv", &csv);
    std::fs::write(w.path("BTCUSDT-bookTicker-2024-08-08.zip"), zip).unwrap();
    let zipped = report_folder(
        &w,
        &refused(
            &w,
            &[
                "--mode=backtest",
                "--data",
                "BTCUSDT-bookTicker-2024-08-08.zip",
            ],
            "no REST depth snapshot",
        ),
    );
    assert_eq!(summary(&zipped, false)["data"]["book_tickers"], 5);

    // CSV → journal → the same events.
    w.ok(&[
        "--mode=convert",
        "--data",
        &book,
        "--data",
        &trades,
        "--data",
        &agg,
        "--out",
        "csv.mmj",
    ]);
    let converted = report_folder(
        &w,
        &refused(
            &w,
            &["--mode=backtest", "--data", "csv.mmj"],
            "no REST depth snapshot",
        ),
    );
    let c = summary(&converted, false);
    assert_eq!(c["data"]["events"], 14);
    assert_eq!(c["data"]["start_utc"], s["data"]["start_utc"]);
}

/// A one-member stored zip archive (as Binance's, minus compression).
fn zip_one(name: &str, data: &[u8]) -> Vec<u8> {
    let crc = crc32fast::hash(data);
    let mut out = Vec::new();
    let common = |out: &mut Vec<u8>| {
        out.extend_from_slice(&20u16.to_le_bytes()); // version needed
        out.extend_from_slice(&0u16.to_le_bytes()); // flags
        out.extend_from_slice(&0u16.to_le_bytes()); // stored
        out.extend_from_slice(&[0; 4]); // time, date
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes()); // extra
    };
    out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
    common(&mut out);
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(data);
    let central = out.len();
    out.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
    out.extend_from_slice(&20u16.to_le_bytes()); // version made by
    common(&mut out);
    out.extend_from_slice(&[0; 10]); // comment, disk, attributes
    out.extend_from_slice(&0u32.to_le_bytes()); // local header offset
    out.extend_from_slice(name.as_bytes());
    let central_len = out.len() - central;
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&(central_len as u32).to_le_bytes());
    out.extend_from_slice(&(central as u32).to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

#[test]
fn grid_runs_every_combination() {
    let w = Workdir::new("mm-backtest", "grid");
    let out = w.ok(&[
        "--mode=backtest",
        "--duration=0.05",
        "--grid",
        "model.gamma_per_bps=0.05,0.2",
        "--grid",
        "ofi.beta=0,0.3",
    ]);
    assert!(out.contains("grid: 4 combinations"), "{out}");
    let folder = report_folder(&w, &out);
    assert!(folder.to_string_lossy().ends_with("_BTCUSDT_grid"));
    let csv = std::fs::read_to_string(folder.join("grid.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 5, "{csv}");
    assert!(lines[0].starts_with("model.gamma_per_bps,ofi.beta,pnl_quote,"));
    assert!(
        lines[1].starts_with("0.05,0,") && lines[4].starts_with("0.2,0.3,"),
        "{csv}"
    );
    // Money split as in a single run's summary.json: the first combination run alone.
    assert!(lines[0].starts_with(
        "model.gamma_per_bps,ofi.beta,pnl_quote,spread_pnl_quote,inventory_pnl_quote,"
    ));
    let single = summary(
        &report_folder(
            &w,
            &w.ok(&[
                "--mode=backtest",
                "--duration=0.05",
                "--set",
                "model.gamma_per_bps=0.05",
                "--set",
                "ofi.beta=0",
            ]),
        ),
        false,
    );
    let row: Vec<&str> = lines[1].split(',').collect();
    for (column, key) in [
        (2, "total_quote_exact"),
        (3, "spread_quote_exact"),
        (4, "inventory_quote_exact"),
    ] {
        assert_eq!(
            row[column],
            single["pnl"][key].as_str().unwrap(),
            "{key}: {csv}"
        );
    }
    let bad = w.run(&["--mode=backtest", "--grid", "market.tick_size=0.1,0.01"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("market.*"), "{}", stderr(&bad));
}

#[test]
#[ignore = "extra run on ../shared/data: cargo test -- --include-ignored"]
fn shared_data_sets_replay() {
    let root = process::data::require_shared();
    let w = Workdir::new("mm-backtest", "shared");
    let spot = |name: &str| root.join("binance-spot").join(name).display().to_string();
    // One file, as the README shows.
    let one = report_folder(
        &w,
        &w.ok(&["--mode=backtest", "--data", &spot("btcusdt_20240808.gz")]),
    );
    assert_eq!(summary(&one, true), {
        let default = report_folder(&w, &w.ok(&["--mode=backtest"]));
        summary(&default, true)
    });
    // The whole 2024 session: two files, one contiguous book.
    let both = report_folder(
        &w,
        &w.ok(&[
            "--mode=backtest",
            "--data",
            &spot("btcusdt_20240808.gz"),
            "--data",
            &spot("btcusdt_20240809.gz"),
        ]),
    );
    let s = summary(&both, true);
    assert_eq!(s["data"]["events"], 41_249 + 58_325);
    assert_eq!(
        s["engine"]["gaps"], 0,
        "update ids run on across the two files"
    );
    assert!(s["orders"]["fills"].as_u64().unwrap() > 0);
    // A glob gives the same files.
    let glob = report_folder(
        &w,
        &w.ok(&["--mode=backtest", "--data", &spot("btcusdt_2024*.gz")]),
    );
    assert_eq!(summary(&glob, true), s);
    // The 2023 spot capture: its trade messages carry the old buyer/seller order ids in
    // `b`/`a`, and it has no REST snapshot, so the L2 book never syncs and the trader,
    // which only quotes from a synced book, places no order — but every event replays, and
    // the run is refused (exit 1) with the reason.
    let old = summary(
        &report_folder(
            &w,
            &refused(
                &w,
                &[
                    "--mode=backtest",
                    "--data",
                    &spot("btcusdt_20230405.dat.gz"),
                ],
                "no REST depth snapshot",
            ),
        ),
        true,
    );
    assert_eq!(old["data"]["events_replayed"].as_u64(), Some(15_088));
    // USD-M futures (markPrice frames skipped and counted).
    let usdm = root.join("binance-usdm").display().to_string();
    let f = summary(
        &report_folder(&w, &w.ok(&["--mode=backtest", "--data", &usdm])),
        true,
    );
    assert!(f["data"]["skipped_unknown_kind"].as_u64().unwrap() > 0);
    // NEXOUSDT: 34 hours of a thin market, on its own grid.
    let nexo = root.join("binance-spot-long").display().to_string();
    let n = summary(
        &report_folder(
            &w,
            &w.ok(&[
                "--mode=backtest",
                "--symbol=NEXOUSDT",
                "--set",
                "market.tick_size=0.001",
                "--set",
                "market.step_size=0.01",
                "--set",
                "quoting.quote_size=10",
                "--set",
                "quoting.inventory_max=1000",
                "--data",
                &nexo,
            ]),
        ),
        true,
    );
    assert!(n["data"]["span_s"].as_f64().unwrap() > 30.0 * 3600.0);
    assert!(n["orders"]["orders_placed"].as_u64().unwrap() > 0);
}

/// A `--grid` cut into shards run as separate processes at once (as GNU parallel, a Slurm
/// array or a Kubernetes Indexed Job would), then `--merge`d: the same grid.csv as the
/// grid run in one process; a merge missing a shard, or given other axes, is refused.
#[test]
fn grid_shards_run_apart_merge_into_the_whole_grid() {
    let w = Workdir::new("mm-backtest", "shards");
    let grid = [
        "--grid",
        "model.gamma_per_bps=0.01,0.1",
        "--grid",
        "quoting.requote_band=0.5,1",
    ];
    let args = |extra: &[&str]| -> Vec<String> {
        ["--mode=backtest"]
            .iter()
            .chain(grid.iter())
            .chain(extra.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let children: Vec<_> = (1..=3)
        .map(|i| {
            let shard = format!("{i}/3");
            let a = args(&["--shard", &shard, "--out", "shards"]);
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            process::mm(&w.0, &a).output()
        })
        .collect();
    for child in children {
        let out = child.unwrap();
        let (stdout, stderr) = process::text(&out);
        assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
        assert!(stdout.contains("combine with --merge shards"), "{stdout}");
    }
    let grid_csv = |stdout: &str| -> String {
        std::fs::read_to_string(report_folder(&w, stdout).join("grid.csv")).unwrap()
    };
    let merge = args(&["--merge", "shards", "--out", "merged"]);
    let merged = w.ok(&merge.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        merged.contains("merged 4 grid points from 3 shard files"),
        "{merged}"
    );
    let whole = args(&["--out", "whole"]);
    let whole = w.ok(&whole.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(grid_csv(&merged), grid_csv(&whole));

    std::fs::remove_file(w.path("shards/shard-002-of-003.csv")).unwrap();
    let out = w.run(&merge.iter().map(String::as_str).collect::<Vec<_>>());
    let (_, stderr) = process::text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("in no shard"), "{stderr}");
    let other = w.run(&[
        "--mode=backtest",
        "--grid",
        "model.gamma_per_bps=0.01,0.2",
        "--merge",
        "shards",
    ]);
    assert_eq!(other.status.code(), Some(1));
    assert!(process::text(&other).1.contains("other data or settings"));
    let alone = w.run(&["--mode=backtest", "--shard", "1/2"]);
    assert_eq!(alone.status.code(), Some(1));
    assert!(process::text(&alone).1.contains("give the --grid axes"));
}
