//! `--mode=simulate`: flags → the Avellaneda & Stoikov (2008) Monte Carlo experiment
//! (`model::simulate`, where the setup, the units and the randomness are described) → the
//! paper-style table or one JSON line. Wiring only; never touches the engine, the network,
//! the clock or the file system.

use std::io::Write;

use anyhow::{ensure, Result};
use serde::Serialize;

use crate::model::simulate::{
    simulate_until, Row, ARRIVAL_A, DECAY_K, DT, HORIZON, MAX_PATHS, MID_START, SIGMA, STEPS,
};

/// Command-line arguments of `--mode=simulate`.
#[derive(Clone, Debug)]
pub struct SimulateArgs {
    /// Seeds the one ChaCha8 generator (see the module doc for how it is split).
    pub seed: u64,
    /// Monte Carlo paths per (γ, strategy) row; the paper uses 1000. Must be ≥ 1.
    pub paths: usize,
    /// Print one JSON object on one line instead of the table.
    pub json: bool,
}

/// Runs the experiment and writes the paper-style table, or with `json` exactly one JSON
/// object on one line: `{"rows":[{"gamma":…,"strategy":"inventory",…},…]}`.
/// Stops (an error, nothing printed) at the first Ctrl+C/SIGTERM that `stop` reports.
pub fn run(args: &SimulateArgs, out: &mut dyn Write, stop: &dyn Fn() -> bool) -> Result<()> {
    ensure!(
        (1..=MAX_PATHS).contains(&args.paths),
        "simulate: --paths must be 1 to {MAX_PATHS} (got {}); the paper uses 1000",
        args.paths
    );
    let (rows, done) = simulate_until(args.seed, args.paths, stop);
    ensure!(
        done == args.paths,
        "simulate: stopped by signal after {done} of {} paths; no table printed",
        args.paths
    );
    if args.json {
        let line = serde_json::to_string(&JsonReport { rows: &rows })?;
        writeln!(out, "{line}")?;
    } else {
        write_table(args, &rows, out)?;
    }
    Ok(())
}

/// The JSON shape of `run --json`.
#[derive(Serialize)]
struct JsonReport<'a> {
    rows: &'a [Row],
}

fn write_table(args: &SimulateArgs, rows: &[Row], out: &mut dyn Write) -> Result<()> {
    writeln!(
        out,
        "Avellaneda & Stoikov (2008), section 4: inventory vs symmetric strategy \
         ({} paths, seed {})",
        args.paths, args.seed
    )?;
    writeln!(
        out,
        "s0 = {MID_START}, σ = {SIGMA}, T = {HORIZON}, dt = {DT} ({STEPS} steps), \
         A = {ARRIVAL_A}, k = {DECAY_K}, q0 = 0, one-share orders"
    )?;
    writeln!(
        out,
        "{:>6}  {:<9}  {:>7}  {:>11}  {:>10}  {:>12}  {:>11}",
        "gamma", "strategy", "spread", "profit mean", "profit std", "final q mean", "final q std"
    )?;
    for row in rows {
        writeln!(
            out,
            "{:>6}  {:<9}  {:>7.4}  {:>11.2}  {:>10.2}  {:>12.3}  {:>11.2}",
            row.gamma,
            row.strategy.name(),
            row.spread,
            row.profit_mean,
            row.profit_std,
            row.final_q_mean,
            row.final_q_std
        )?;
    }
    writeln!(
        out,
        "spread: mean over the run of the inventory strategy's γσ²(T−t) + (2/γ)ln(1+γ/k); \
         the symmetric strategy quotes it around the mid. Prices and profit in price units, \
         q in shares; std is the sample standard deviation over paths."
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::simulate::simulate;

    #[test]
    fn zero_paths_is_rejected() {
        let args = SimulateArgs {
            seed: 1,
            paths: 0,
            json: false,
        };
        let mut out = Vec::new();
        let err = run(&args, &mut out, &|| false).expect_err("paths = 0 must fail");
        assert!(err.to_string().contains("--paths must be 1 to"), "{err}");
        assert!(out.is_empty());
        for paths in [MAX_PATHS + 1, usize::MAX] {
            let args = SimulateArgs { paths, ..args };
            let err = run(&args, &mut out, &|| false).expect_err("too many paths must fail");
            assert!(err.to_string().contains("--paths must be 1 to"), "{err}");
        }
        assert!(out.is_empty());
    }

    #[test]
    fn a_stop_request_ends_the_run_at_once_without_a_table() {
        let args = SimulateArgs {
            seed: 1,
            paths: MAX_PATHS,
            json: false,
        };
        let checks = std::cell::Cell::new(0u32);
        let stop = || {
            checks.set(checks.get() + 1);
            checks.get() > 3
        };
        let mut out = Vec::new();
        let err = run(&args, &mut out, &stop).expect_err("a stop must end the run");
        assert!(
            err.to_string()
                .contains("stopped by signal after 3 of 1000000 paths"),
            "{err}"
        );
        assert!(out.is_empty());
    }

    #[test]
    fn json_is_one_line_with_six_rows_and_exact_keys() {
        let args = SimulateArgs {
            seed: 1,
            paths: 50,
            json: true,
        };
        let mut out = Vec::new();
        run(&args, &mut out, &|| false).expect("run");
        let text = String::from_utf8(out).expect("utf8");
        assert_eq!(text.lines().count(), 1);
        let value: serde_json::Value = serde_json::from_str(text.trim_end()).expect("json");
        let top = value.as_object().expect("object");
        assert_eq!(top.keys().collect::<Vec<_>>(), vec!["rows"]);
        let rows = top["rows"].as_array().expect("rows array");
        assert_eq!(rows.len(), 6);
        let expected_keys = [
            "final_q_mean",
            "final_q_std",
            "gamma",
            "profit_mean",
            "profit_std",
            "spread",
            "strategy",
        ];
        let built = simulate(1, 50);
        for (json_row, row) in rows.iter().zip(&built) {
            let obj = json_row.as_object().expect("row object");
            let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
            keys.sort_unstable();
            assert_eq!(keys, expected_keys);
            assert_eq!(obj["strategy"], row.strategy.name());
            assert_eq!(obj["gamma"].as_f64(), Some(row.gamma));
            assert_eq!(obj["profit_mean"].as_f64(), Some(row.profit_mean));
        }
        assert_eq!(rows[0]["strategy"], "inventory");
        assert_eq!(rows[1]["strategy"], "symmetric");
    }

    #[test]
    fn table_has_title_parameters_header_and_six_rows() {
        let args = SimulateArgs {
            seed: 1,
            paths: 20,
            json: false,
        };
        let mut out = Vec::new();
        run(&args, &mut out, &|| false).expect("run");
        let text = String::from_utf8(out).expect("utf8");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("Avellaneda & Stoikov (2008)"));
        assert!(lines[0].contains("20 paths, seed 1"));
        assert!(lines[1].contains("dt = 0.005 (200 steps)"));
        assert!(lines[2].contains("profit mean") && lines[2].contains("final q std"));
        let body: Vec<Vec<&str>> = lines[3..9]
            .iter()
            .map(|l| l.split_whitespace().collect())
            .collect();
        let names: Vec<(&str, &str)> = body.iter().map(|c| (c[0], c[1])).collect();
        assert_eq!(
            names,
            vec![
                ("0.1", "inventory"),
                ("0.1", "symmetric"),
                ("0.01", "inventory"),
                ("0.01", "symmetric"),
                ("1", "inventory"),
                ("1", "symmetric"),
            ]
        );
        assert!(body.iter().all(|c| c.len() == 7));
    }
}
