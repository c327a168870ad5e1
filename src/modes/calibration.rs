//! `--mode=calibration`: recorded data → fitted σ and k, a walk-forward grid search over
//! γ, OFI β and τ (or `--grid`), `config/calibrated.toml` and a report folder.
//!
//! Wiring only: flags → the steps of `calibration::pipeline` (prepare the data, fit the
//! estimators, search the grid with `calibration::search` — all of it, one `--shard`, or
//! the `--merge` of shards — evaluate the chosen point, write the files) → the console
//! lines between them. See `src/calibration/mod.rs` for the method.
//!
//! Errors a trader can act on: too little data, no synced book, a fit with too few
//! points, all name the fix; nothing is written before every backtest has run.

use std::io::Write;
use std::path::PathBuf;

use crate::backtest::grid_combinations;
use crate::calibration::calibrated::backup_path;
use crate::calibration::pipeline::{
    evaluate, fit_parameters, grid_axes, prepare, run_fingerprint, OFI_PREDICTIVE_R2_MIN,
};
use crate::calibration::search::{
    self, in_shard, merge_shards, parse_shard, run_points, shard_file_name, shard_files,
    write_shard, Progress, Row,
};
use crate::config::{Config, ConfigError};
use crate::replay::{self, Tape};
use crate::report::calibration::{print_choice, print_estimates, Summary};
use crate::report::calibration::{write_files, Outputs};
use crate::shutdown::Shutdown;
use crate::time::SystemClock;

/// Flags of the mode.
#[derive(Clone, Debug, Default)]
pub struct CalibrationArgs {
    /// `--data` (files, folders, globs); empty = the built-in slice.
    pub data: Vec<String>,
    /// `--out`: the folder report folders and shard files go into.
    pub reports_root: PathBuf,
    /// `--calibrated-out`: the config layer to write.
    pub calibrated_out: PathBuf,
    /// `--duration`: use only this much data from its start, ns.
    pub duration_ns: Option<u64>,
    /// `--grid key=v1,v2,..` (empty = `[calibration] grid_*`).
    pub grid: Vec<String>,
    /// `--shard i/n`.
    pub shard: Option<String>,
    /// `--merge` folders or files.
    pub merge: Vec<PathBuf>,
    /// `--set` flags of the command line: they shaped every backtest, so the written file
    /// carries them.
    pub sets: Vec<String>,
}

/// What a full (or merged) run produced.
pub struct CalibrationOutcome {
    /// The report folder.
    pub folder: PathBuf,
    /// Where calibrated.toml was written.
    pub calibrated: PathBuf,
    /// The summary written.
    pub summary: Summary,
}

/// Runs the mode. `make_config` builds the configuration with extra `--set` flags.
/// Returns `None` for a `--shard` run (it writes only its rows).
pub fn run(
    config: &Config,
    args: &CalibrationArgs,
    make_config: &(dyn Fn(&[String]) -> Result<Config, ConfigError> + Sync),
    shutdown: &Shutdown,
    out: &mut dyn Write,
) -> anyhow::Result<Option<CalibrationOutcome>> {
    let wall = SystemClock::new();
    let shard = args.shard.as_deref().map(parse_shard).transpose()?;
    if shard.is_some() && !args.merge.is_empty() {
        anyhow::bail!("--shard and --merge do not go together: run the shards, then merge");
    }

    // -- data and windows ---------------------------------------------------------------
    // Loaded whole (the walk-forward parts are windows of one tape); `.mmt` tapes too.
    let inputs = replay::open_sources(&args.data, &config.spec)?;
    let tape = Tape::load_until(inputs, config.spec, args.duration_ns.unwrap_or(u64::MAX))?;
    let stats = tape.stats();
    writeln!(
        out,
        "data: {} ({} events: {} depth, {} bookTicker, {} trades, {} snapshots)",
        tape.sources().join(", "),
        stats.events,
        stats.depth_diffs,
        stats.book_tickers,
        stats.trades,
        stats.snapshots
    )?;
    let prepared = prepare(config, &tape)?;
    let windows = &prepared.windows;
    let (fit_s, choose_s, held_s) = windows.spans_s();
    writeln!(
        out,
        "walk-forward: fit {:.1} min | choose {:.1} min | held out {:.1} min",
        fit_s / 60.0,
        choose_s / 60.0,
        held_s / 60.0
    )?;

    // -- estimators -----------------------------------------------------------------------
    let fit = fit_parameters(config, &tape, windows)?;
    print_estimates(out, &fit.estimates, &fit.halves)?;
    let ofi_r2 = fit.estimates.ofi.predictive.r_squared;
    if !fit.ofi_predicts {
        writeln!(
            out,
            "OFI: next-window R² {ofi_r2:.3} < {OFI_PREDICTIVE_R2_MIN}: no out-of-sample \
             predictive power on this data, so ofi.beta = 0{}",
            if args.grid.is_empty() {
                " (the grid's β axis is reduced to 0)"
            } else {
                " is advised (your --grid is kept as given)"
            }
        )?;
    }
    let base =
        make_config(&fit.base_sets).map_err(|e| anyhow::anyhow!("the fitted values: {e}"))?;

    // -- grid -----------------------------------------------------------------------------
    let axes = grid_axes(&config.calibration, &args.grid, fit.ofi_predicts)?;
    let combos = grid_combinations(&axes)?;
    if let Some((_, n)) = shard {
        if n > combos.len() {
            anyhow::bail!(
                "--shard i/{n}: the grid has only {} points, so some shards would be empty — fix: \
                 use at most {} shards",
                combos.len(),
                combos.len()
            );
        }
    }
    let fp = run_fingerprint(&tape, windows, &fit.base_sets, &axes, &base);
    let points: Vec<(usize, Vec<String>)> = combos
        .iter()
        .cloned()
        .enumerate()
        .filter(|(i, _)| shard.is_none_or(|s| in_shard(*i, s)))
        .collect();
    let rows: Vec<Row> = if args.merge.is_empty() {
        writeln!(
            out,
            "grid: {} of {} points on {} threads, each a backtest of the choose part{}",
            points.len(),
            combos.len(),
            rayon::current_num_threads(),
            shard.map_or_else(String::new, |(i, n)| format!(" (shard {i}/{n})"))
        )?;
        let progress = Progress::new("grid", points.len(), true);
        run_points(
            &points,
            &fit.base_sets,
            make_config,
            &base,
            &prepared.choose_tape,
            &progress,
        )?
    } else {
        let files = shard_files(&args.merge)?;
        let rows = merge_shards(&files, &fp, &axes, combos.len())?;
        writeln!(
            out,
            "merged {} grid points from {} shard files",
            rows.len(),
            files.len()
        )?;
        rows
    };
    if shutdown.requested() {
        anyhow::bail!("stopped by Ctrl+C before anything was written");
    }
    if let Some(shard) = shard {
        let path = args.reports_root.join(shard_file_name(shard));
        write_shard(&path, &search::rows_csv(&fp, &axes, &rows))?;
        writeln!(
            out,
            "shard {}/{}: {} rows (fingerprint {fp}) → {}",
            shard.0,
            shard.1,
            rows.len(),
            path.display()
        )?;
        writeln!(
            out,
            "when every shard is done: mm --mode=calibration --merge {} with the same --data, \
             --grid and --set",
            args.reports_root.display()
        )?;
        return Ok(None);
    }

    // -- the chosen point, in and out of sample ---------------------------------------------
    let evaluation = evaluate(config, &prepared, &fit, &rows, &args.sets, make_config)?;

    // -- files --------------------------------------------------------------------------------
    let had_previous = args.calibrated_out.is_file();
    let (folder, summary) = write_files(
        &Outputs {
            config,
            tape: &tape,
            windows,
            fit: &fit,
            axes: &axes,
            grid_points: combos.len(),
            rows: &rows,
            fingerprint: &fp,
            evaluation: &evaluation,
            reports_root: &args.reports_root,
            calibrated_out: &args.calibrated_out,
        },
        &wall,
    )?;
    print_choice(out, &summary)?;
    for warning in &evaluation.warnings {
        writeln!(out, "{warning}")?;
    }
    writeln!(
        out,
        "calibrated: {}{}",
        args.calibrated_out.display(),
        if had_previous {
            format!(
                " (previous kept as {})",
                backup_path(&args.calibrated_out).display()
            )
        } else {
            String::new()
        }
    )?;
    writeln!(out, "report: {}", folder.display())?;
    writeln!(out, "wall time {:.1} s", summary.wall_s)?;
    Ok(Some(CalibrationOutcome {
        folder,
        calibrated: args.calibrated_out.clone(),
        summary,
    }))
}
