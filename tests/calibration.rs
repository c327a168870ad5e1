//! `mm --mode=calibration`: the estimators on synthetic data of known σ, A and k (through
//! the real capture reader and tape), the estimates on the shared recorded data (finite,
//! positive, stable between its two halves), the CLI end to end (calibrated.toml that
//! loads and backtests, its .bak, the report folder), shards + merge giving the unsharded
//! choice, and the errors a trader sees.
//!
//! The recorded-data tests run on the bundled slice (tools/data); their extra runs on the
//! full session in `../shared/data` are `#[ignore]`d (`cargo test -- --include-ignored`). Everything is written inside per-test temporary folders. Grids are
//! small (2–4 points) so that the file stays well under a minute in a debug build.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use mm::calibration::series::MarketSeries;
use mm::calibration::{estimate, EstimatorSettings, Stability};
use mm::config::{self, Config, LoadOptions};
use mm::replay::{open_inputs, Tape};

#[path = "support/process.rs"]
mod process;

use process::Workdir;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The bundled slice (tools/data), committed in the repo.
fn bundled_files() -> Vec<String> {
    vec![process::data::bundled_spot().display().to_string()]
}

/// The full 2024-08-08/09 session in ../shared/data (extra runs only).
fn shared_files() -> Vec<String> {
    process::data::shared_spot_session()
        .iter()
        .map(|f| f.display().to_string())
        .collect()
}

/// The built-in defaults (an empty root: no config/ folder, no calibrated.toml).
fn default_config(root: &Path) -> Config {
    config::load(&LoadOptions {
        root: root.to_path_buf(),
        ..LoadOptions::default()
    })
    .unwrap()
}

/// The value after `key = ` in a TOML text.
fn toml_number(text: &str, key: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {key} in {text}"))
        .trim()
        .parse()
        .unwrap()
}

/// A written calibrated.toml (`path` in `w`) without its comment lines.
fn toml_body(w: &Workdir, path: &str) -> String {
    std::fs::read_to_string(w.path(path))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The folder on the `report: ` line.
fn report_folder(w: &Workdir, stdout: &str) -> PathBuf {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("report: "))
        .unwrap_or_else(|| panic!("no report line in: {stdout}"));
    w.0.join(line.trim())
}

fn price_text(ticks: i64) -> String {
    format!("{}.{:02}", ticks / 100, ticks % 100)
}

/// A 40-minute BTCUSDT-like capture (`<receive ns> <json>` lines) with a known truth:
/// the mid follows a geometric Brownian motion with σ = `sigma` bps/√s, quoted one tick
/// wide every 50 ms; taker orders arrive as a Poisson process of `a` per second per side
/// and reach a depth from the current mid that is exponential with rate `k` per bps, so
/// the rate reaching δ is exactly A·e^(−kδ). Exchange times are 5 ms before receipt.
fn synthetic_capture(sigma: f64, a: f64, k: f64, seed: u64) -> String {
    const STEP_NS: u64 = 50_000_000;
    const SPAN_S: f64 = 2_400.0;
    const T0_NS: u64 = 1_723_161_600_000_000_000;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let normal = |rng: &mut ChaCha8Rng| {
        let u1: f64 = rng.random::<f64>().max(1e-300);
        let u2: f64 = rng.random::<f64>();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    };
    let steps = (SPAN_S * 1e9 / STEP_NS as f64) as usize;
    let sd = sigma * 1e-4 * (STEP_NS as f64 / 1e9).sqrt();
    let mut mids = Vec::with_capacity(steps);
    let mut mid = 6_000_000.0f64; // ticks of 0.01: 60,000.00
    for _ in 0..steps {
        mids.push(mid);
        mid *= (sd * normal(&mut rng)).exp();
    }
    let ticks_per_bps = 600.0;
    // Taker orders: (ns since start, price ticks, buy).
    let mut orders = Vec::new();
    let mut t_s = 0.0;
    loop {
        t_s += -rng.random::<f64>().max(1e-300).ln() / (2.0 * a);
        if t_s >= SPAN_S {
            break;
        }
        let ns = (t_s * 1e9) as u64;
        let m = mids[(ns / STEP_NS) as usize];
        let depth = -rng.random::<f64>().max(1e-300).ln() / k * ticks_per_bps;
        let buy = rng.random::<bool>();
        let price = if buy {
            (m + depth).ceil() as i64
        } else {
            (m - depth).floor() as i64
        };
        orders.push((ns, price, buy));
    }
    let mut out = String::new();
    let mut next_order = 0usize;
    for (i, m) in mids.iter().enumerate() {
        let ns = i as u64 * STEP_NS;
        let bid = (m - 0.5).floor() as i64;
        let _ = writeln!(
            out,
            r#"{} {{"stream":"btcusdt@bookTicker","data":{{"u":{},"s":"BTCUSDT","b":"{}","B":"1.00000","a":"{}","A":"1.00000"}}}}"#,
            T0_NS + ns,
            i + 1,
            price_text(bid),
            price_text(bid + 1)
        );
        while let Some(&(ons, price, buy)) = orders.get(next_order) {
            if ons >= ns + STEP_NS {
                break;
            }
            let recv = T0_NS + ons.max(ns + 1);
            let exch_ms = recv / 1_000_000 - 5;
            let _ = writeln!(
                out,
                r#"{recv} {{"stream":"btcusdt@trade","data":{{"e":"trade","E":{exch_ms},"s":"BTCUSDT","t":{},"p":"{}","q":"0.00100","T":{exch_ms},"m":{},"M":true}}}}"#,
                next_order + 1,
                price_text(price),
                !buy
            );
            next_order += 1;
        }
    }
    out
}

/// Known σ, A and k are recovered through the capture reader, the tape and the series.
/// Tolerances (stated in the README): σ at 1 s within 5 % (2,400 returns: standard error
/// ≈ 1.5 %), k within 10 % and A within 15 % (≈ 9,600 taker orders; measuring depth from
/// the mid at the start of each 50 ms interval raises A by e^(k²σ²Δ/4) ≈ 1.03 and leaves
/// k alone), the feed latency's median within 1 ms of the 5 ms built in.
#[test]
fn synthetic_data_gives_back_its_sigma_a_and_k() {
    let (sigma, a, k) = (1.2, 2.0, 1.5);
    let w = Workdir::new("mm-calibration", "synthetic");
    let path = w.path("synthetic.txt");
    std::fs::write(&path, synthetic_capture(sigma, a, k, 42)).unwrap();
    let config = default_config(&w.0);
    let tape = Tape::load(
        open_inputs(&[path.display().to_string()], "BTCUSDT").unwrap(),
        config.spec,
    )
    .unwrap();
    let stats = tape.stats();
    let series = MarketSeries::from_tape(&tape, stats.first_ts_ns, stats.last_ts_ns + 1, 1000);
    let mut settings = EstimatorSettings::from_config(&config);
    settings.intensity_interval_s = 0.05;
    let e = estimate(&series, 0.01, &settings).unwrap();
    println!(
        "synthetic: sigma {:.4} (true {sigma}), k {:.4} (true {k}), A {:.4} (true {a}), R² {:.4}, \
         {} orders",
        e.sigma.bps_per_sqrt_s,
        e.intensity.k_per_bps,
        e.intensity.a_per_s,
        e.intensity.r_squared,
        e.market_orders
    );
    assert!(
        (e.sigma.bps_per_sqrt_s / sigma - 1.0).abs() < 0.05,
        "{:?}",
        e.sigma
    );
    assert!(
        (e.intensity.k_per_bps / k - 1.0).abs() < 0.10,
        "{:?}",
        e.intensity
    );
    assert!(
        (e.intensity.a_per_s / a - 1.0).abs() < 0.15,
        "{:?}",
        e.intensity
    );
    assert!(e.intensity.r_squared > 0.95);
    let noise = e.sigma.noise.as_ref().unwrap();
    assert!(noise.verdict.starts_with("flat"), "{noise:?}");
    let trade = e.feed_latency.trade.unwrap();
    assert!((trade.p50_ms - 5.5).abs() < 1.0, "{trade:?}");
    assert!(e.feed_latency.note.starts_with("median feed latency"));
}

/// On the recorded session: every estimate finite and positive, and the two halves
/// (5.4 minutes each) agree within these tolerances, set from what was measured
/// (2024-08-08/09 BTCUSDT: σ 1.191 vs 1.146, 4 % apart; k 0.486 vs 1.135 /bps, 80 % apart;
/// raw OFI β 3.30e-4 vs 3.11e-4 ticks/lot, 6 % apart) with margin:
/// - σ within 15 %: realised variance over ~320 one-second returns per half is precise
///   to ~8 %, so 15 % only fails on a real change or a broken estimator;
/// - k within a factor of 3 (relative difference < 1.0): λ(δ) is not one exponential
///   over the whole book — the first half's deep sweeps give it a fatter tail, so the
///   halves' slopes differ by a factor 2.3 on this data. The tolerance catches a unit or
///   sign error (orders of magnitude), not regime changes, and the README says so;
/// - raw OFI β within 30 %: CKS's slope is the most stable of the three.
#[test]
fn bundled_data_estimates_are_positive_in_each_half() {
    // The bundled slice's 5.8 minutes: each half's estimates are positive and fit, but the
    // halves are not stable (σ doubles from the first half to the second: a real regime
    // change), so stability is only checked on the full session.
    estimates_are_positive_and_stable_across_halves(&bundled_files(), false);
}

#[test]
#[ignore = "extra run on ../shared/data: cargo test -- --include-ignored"]
fn shared_data_estimates_are_positive_and_stable_across_halves() {
    estimates_are_positive_and_stable_across_halves(&shared_files(), true);
}

fn estimates_are_positive_and_stable_across_halves(files: &[String], stable: bool) {
    let w = Workdir::new("mm-calibration", &format!("halves-{}", files.len()));
    let config = default_config(&w.0);
    let tape = Tape::load(open_inputs(files, "BTCUSDT").unwrap(), config.spec).unwrap();
    let stats = tape.stats();
    let (start, end) = (stats.first_ts_ns, stats.last_ts_ns + 1);
    let middle = start + (end - start) / 2;
    let settings = EstimatorSettings::from_config(&config);
    let halves: Vec<_> = [(start, middle), (middle, end)]
        .iter()
        .map(|&(a, b)| {
            let series = MarketSeries::from_tape(&tape, a, b, 1000);
            estimate(&series, 0.01, &settings).unwrap()
        })
        .collect();
    for e in &halves {
        for (name, value) in [
            ("sigma", e.sigma.bps_per_sqrt_s),
            ("k", e.intensity.k_per_bps),
            ("A", e.intensity.a_per_s),
            ("raw OFI beta", e.ofi.raw.slope),
            ("normalised OFI beta", e.ofi.normalised.slope),
        ] {
            assert!(value.is_finite() && value > 0.0, "{name} = {value}");
        }
        assert!(e
            .sigma
            .signature
            .iter()
            .all(|p| p.sigma_bps_per_sqrt_s > 0.0));
        assert!(e.intensity.r_squared > 0.8, "{:?}", e.intensity.r_squared);
        assert!(
            e.feed_latency.depth.unwrap().p50_ms < -1_000.0,
            "recorder clock behind"
        );
    }
    let s = Stability::between(&halves[0], &halves[1]);
    println!("halves: {s:?}");
    if !stable {
        return;
    }
    let d = s.relative_difference;
    assert!(d.sigma_bps_per_sqrt_s < 0.15, "{s:?}");
    assert!(d.k_per_bps < 1.0, "{s:?}");
    assert!(d.ofi_beta_raw_ticks_per_lot < 0.30, "{s:?}");
}

/// The CLI on the shared session: exit 0, calibrated.toml with a header and only known
/// keys, the report folder, a .bak on the second run; the written file loads through the
/// config loader and a backtest with it runs.
#[test]
fn cli_writes_calibrated_toml_and_the_report() {
    cli_writes_calibrated_toml_and_the_report_on(&bundled_files());
}

#[test]
#[ignore = "extra run on ../shared/data: cargo test -- --include-ignored"]
fn cli_on_the_shared_session_writes_calibrated_toml_and_the_report() {
    cli_writes_calibrated_toml_and_the_report_on(&shared_files());
}

fn cli_writes_calibrated_toml_and_the_report_on(files: &[String]) {
    let w = Workdir::new("mm-calibration", &format!("cli-{}", files.len()));
    let mut args: Vec<&str> = vec!["--mode=calibration", "--out", "reports"];
    for f in files {
        args.extend(["--data", f.as_str()]);
    }
    // At the liquidity-provider tier (0 bps) the choose part holds enough fills to choose
    // from; at 10 bps it does not (see too_little_data_is_refused_with_the_fix).
    args.extend([
        "--set",
        "venue.maker_fee_bps=0",
        "--grid",
        "model.gamma_per_bps=0.02,0.1",
        "--grid",
        "model.horizon_s=15,60",
    ]);
    let out = w.ok(&args);
    for needle in [
        "sigma = ",
        "k = ",
        "OFI impact",
        "feed latency",
        "chosen: ",
        "out-of-sample",
    ] {
        assert!(out.contains(needle), "{needle}: {out}");
    }
    let calibrated = w.path("config/calibrated.toml");
    let toml_text = std::fs::read_to_string(&calibrated).unwrap();
    assert!(
        toml_text.starts_with("# Written by `mm --mode=calibration`"),
        "{toml_text}"
    );
    let last_file = Path::new(files.last().unwrap()).file_name().unwrap();
    for needle in [
        "# Data: ",
        last_file.to_str().unwrap(),
        "# Out-of-sample",
        "# In-sample",
    ] {
        assert!(toml_text.contains(needle), "{needle}: {toml_text}");
    }
    assert!(!w.path("config/calibrated.toml.bak").exists());
    let folder = report_folder(&w, &out);
    for file in [
        "summary.md",
        "summary.json",
        "estimates.json",
        "grid.csv",
        "calibrated.toml",
        "sigma_signature.svg",
        "intensity_fit.svg",
        "ofi_impact.svg",
        "objective_heatmap.svg",
    ] {
        let bytes = std::fs::read(folder.join(file)).unwrap();
        assert!(bytes.len() > 100, "{file} is too short");
        if file.ends_with(".svg") {
            assert!(bytes.starts_with(b"<svg"), "{file}");
        }
    }
    let grid = std::fs::read_to_string(folder.join("grid.csv")).unwrap();
    assert_eq!(grid.lines().count(), 5, "header + 4 points: {grid}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(folder.join("summary.json")).unwrap())
            .unwrap();
    let k = summary["k_per_bps"].as_f64().unwrap();
    assert!(summary["out_of_sample"]["kpis"].as_array().unwrap().len() == 6);

    // The file loads through the normal loader (it is config/calibrated.toml under the root)
    // and a backtest with it runs.
    let loaded = config::load(&LoadOptions {
        root: w.0.clone(),
        ..LoadOptions::default()
    })
    .unwrap();
    assert!(loaded.layers.iter().any(|l| l.ends_with("calibrated.toml")));
    assert_eq!(loaded.model.k_per_bps, k);
    assert_eq!(loaded.model.k_per_bps, toml_number(&toml_text, "k_per_bps"));
    assert_eq!(
        loaded.model.sigma_bps_per_sqrt_s,
        toml_number(&toml_text, "sigma_bps_per_sqrt_s")
    );
    let tape = Tape::load(open_inputs(&[], "BTCUSDT").unwrap(), loaded.spec).unwrap();
    let run = mm::backtest::simulate(&loaded, &tape, None).unwrap();
    assert!(run.events > 10_000 && run.order_stats.orders_placed > 0);

    // A second run keeps the first file as .bak.
    let mut again = args.clone();
    again.truncate(args.len() - 4);
    again.extend(["--grid", "model.gamma_per_bps=0.05"]);
    let out = w.ok(&again);
    assert!(out.contains("previous kept as"), "{out}");
    assert_eq!(
        std::fs::read_to_string(w.path("config/calibrated.toml.bak")).unwrap(),
        toml_text
    );
    let second = std::fs::read_to_string(&calibrated).unwrap();
    assert_eq!(toml_number(&second, "gamma_per_bps"), 0.05);
}

/// Shards 1/2 and 2/2 merged choose what the whole grid chooses and write the same
/// calibrated values (built-in slice, so this runs without ../shared/data too).
#[test]
fn shards_merge_into_the_unsharded_choice() {
    let w = Workdir::new("mm-calibration", "shards");
    let grid = [
        "--set",
        "venue.maker_fee_bps=0",
        "--grid",
        "model.gamma_per_bps=0.01,0.02",
        "--grid",
        "model.horizon_s=5,60",
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        ["--mode=calibration"]
            .iter()
            .chain(&grid)
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    };
    let run = |args: Vec<String>| -> String {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        w.ok(&refs)
    };
    let whole = run(with(&["--out", "whole", "--calibrated-out", "whole.toml"]));
    for i in 1..=2 {
        let shard = format!("{i}/2");
        let out = run(with(&["--out", "shards", "--shard", &shard]));
        assert!(out.contains(&format!("shard {i}/2: 2 rows")), "{out}");
    }
    assert!(
        !w.path("config/calibrated.toml").exists(),
        "a shard writes no config"
    );
    let merged = run(with(&[
        "--merge",
        "shards",
        "--out",
        "merged",
        "--calibrated-out",
        "merged.toml",
    ]));
    assert!(
        merged.contains("merged 4 grid points from 2 shard files"),
        "{merged}"
    );
    let chosen = |out: &str| {
        out.lines()
            .find(|l| l.starts_with("chosen: "))
            .unwrap()
            .to_string()
    };
    assert_eq!(chosen(&whole), chosen(&merged));
    let body = |path: &str| toml_body(&w, path);
    assert_eq!(body("whole.toml"), body("merged.toml"));
    let rows =
        |out: &str| std::fs::read_to_string(report_folder(&w, out).join("grid.csv")).unwrap();
    assert_eq!(rows(&whole), rows(&merged));

    // A shard of another grid is refused.
    let other = w.run(&[
        "--mode=calibration",
        "--set",
        "venue.maker_fee_bps=0",
        "--grid",
        "model.gamma_per_bps=0.01,0.03",
        "--grid",
        "model.horizon_s=5,60",
        "--merge",
        "shards",
    ]);
    assert_eq!(other.status.code(), Some(1));
    assert!(
        text(&other.stderr).contains("other data or settings"),
        "{}",
        text(&other.stderr)
    );
}

#[test]
fn too_little_data_is_refused_with_the_fix() {
    let w = Workdir::new("mm-calibration", "short");
    let out = w.run(&["--mode=calibration", "--duration", "0.01"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("calibration needs at least 2.0 minutes of data"),
        "{err}"
    );
    assert!(err.contains("fix: "), "{err}");
    assert!(!w.path("config/calibrated.toml").exists());
    // Enough minutes but too few fills to choose from: at the regular 10 bps fee the model
    // quotes wide and the choose part of the built-in slice holds fewer than 20 fills.
    let few = w.run(&["--mode=calibration"]);
    assert_eq!(few.status.code(), Some(1));
    let err = text(&few.stderr);
    assert!(
        err.contains("a point needs at least 20 fills on the choose part"),
        "{err}"
    );
    assert!(err.contains("Give more data: about"), "{err}");
    assert!(!w.path("config/calibrated.toml").exists());
    let bad = w.run(&["--mode=calibration", "--shard", "3/2"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("--shard"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn gapped_data_and_empty_shards_are_refused_and_set_flags_are_carried() {
    let w = Workdir::new("mm-calibration", "gaps");
    // Two copies of one synthetic session, the second an hour later: a 20-minute hole.
    let capture = synthetic_capture(1.2, 2.0, 1.5, 7);
    let later: String = capture
        .lines()
        .map(|line| {
            let (ts, json) = line.split_once(' ').unwrap();
            let ts: u64 = ts.parse().unwrap();
            format!("{} {json}\n", ts + 3_600_000_000_000)
        })
        .collect();
    std::fs::write(w.path("a.txt"), &capture).unwrap();
    std::fs::write(w.path("b.txt"), later).unwrap();
    let gapped = w.run(&[
        "--mode=calibration",
        "--data",
        w.path("a.txt").to_str().unwrap(),
        "--data",
        w.path("b.txt").to_str().unwrap(),
    ]);
    assert_eq!(gapped.status.code(), Some(1));
    let err = text(&gapped.stderr);
    assert!(err.contains("gap of 20.0 min"), "{err}");
    assert!(
        err.contains("fix: calibrate on one contiguous recording"),
        "{err}"
    );
    assert!(!w.path("config/calibrated.toml").exists());

    // More shards than grid points: refused before anything runs.
    let empty = w.run(&[
        "--mode=calibration",
        "--grid",
        "model.gamma_per_bps=0.1",
        "--shard",
        "2/2",
    ]);
    assert_eq!(empty.status.code(), Some(1));
    assert!(
        text(&empty.stderr).contains("the grid has only 1 points"),
        "{}",
        text(&empty.stderr)
    );

    // --set flags shaped every backtest: the written file carries them.
    w.ok(&[
        "--mode=calibration",
        "--grid",
        "model.gamma_per_bps=0.1",
        "--set",
        "quoting.spread_max_bps=50",
        "--set",
        "venue.maker_fee_bps=0",
    ]);
    let written = std::fs::read_to_string(w.path("config/calibrated.toml")).unwrap();
    assert_eq!(toml_number(&written, "spread_max_bps"), 50.0, "{written}");
    assert_eq!(toml_number(&written, "gamma_per_bps"), 0.1, "{written}");
}

/// A decoded tape file (`.mmt`) of the bundled slice calibrates exactly as the capture it
/// was converted from: the same estimates, grid rows, choice and written values.
#[test]
fn a_tape_file_calibrates_like_its_capture() {
    let w = Workdir::new("mm-calibration", "mmt");
    let capture = bundled_files().remove(0);
    w.ok(&["--mode=convert", "--data", &capture, "--out", "slice.mmt"]);
    let grid = [
        "--set",
        "venue.maker_fee_bps=0",
        "--grid",
        "model.gamma_per_bps=0.02,0.1",
    ];
    let run = |data: &str, name: &str| -> (String, PathBuf) {
        let toml = format!("{name}.toml");
        let mut args = vec![
            "--mode=calibration",
            "--data",
            data,
            "--out",
            name,
            "--calibrated-out",
            toml.as_str(),
        ];
        args.extend(grid);
        let out = w.ok(&args);
        let folder = report_folder(&w, &out);
        (out, folder)
    };
    let (from_capture, capture_folder) = run(&capture, "capture");
    let (from_tape, tape_folder) = run("slice.mmt", "tape");
    assert!(from_tape.contains("slice.mmt"), "{from_tape}");
    // The console, but for the lines naming the files and the report folder, and the
    // wall time.
    let console = |out: &str| -> Vec<String> {
        out.lines()
            .filter(|l| !l.starts_with("data: ") && !l.starts_with("report: "))
            .filter(|l| !l.starts_with("wall time "))
            .filter(|l| !l.contains("written to") && !l.contains(".toml"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(console(&from_capture), console(&from_tape));
    assert!(from_tape.contains("chosen: "), "{from_tape}");
    let read = |folder: &Path, file: &str| std::fs::read_to_string(folder.join(file)).unwrap();
    assert_eq!(
        read(&capture_folder, "estimates.json"),
        read(&tape_folder, "estimates.json")
    );
    // Grid rows but for their first column, the fingerprint (it names the data files).
    let rows = |folder: &Path| -> Vec<String> {
        read(folder, "grid.csv")
            .lines()
            .map(|l| l.split_once(',').map_or(l, |(_, rest)| rest).to_string())
            .collect()
    };
    assert_eq!(rows(&capture_folder).len(), 3, "header + 2 points");
    assert_eq!(rows(&capture_folder), rows(&tape_folder));
    let body = |path: &str| toml_body(&w, path);
    assert!(body("tape.toml").contains("gamma_per_bps"));
    assert_eq!(body("capture.toml"), body("tape.toml"));
}
