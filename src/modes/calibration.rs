//! `--mode=calibration`: recorded data → fitted σ and k, a walk-forward grid search over
//! γ, OFI β and τ (or `--grid`), `config/calibrated.toml` and a report folder.
//!
//! Wiring only: `replay::Tape` decodes the data once; `calibration::series` and
//! `calibration::estimate` fit the estimators on the fit part; `calibration::search` runs
//! the grid on the choose part (all of it, one `--shard`, or the `--merge` of shards);
//! the chosen point and the configuration as it was before are then run on the choose
//! and held-out parts; `report::calibration` writes the folder and `calibration::
//! calibrated` the config layer. See `src/calibration/mod.rs` for the method.
//!
//! Walk-forward windows start mid-recording, where the data has no REST snapshot: each is
//! cut with `Tape::window`, which opens it with a synthetic snapshot of the book the
//! engine would hold there (the backtest then starts as a live start with a fresh
//! snapshot would: book in sync, σ/OFI/touch cold).
//!
//! Errors a trader can act on: too little data, no synced book, a fit with too few
//! points, all name the fix; nothing is written before every backtest has run.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use crate::backtest::{grid_combinations, parse_grid, simulate, GridAxis, GridRow, Replayed};
use crate::calibration::calibrated::{
    backup_path, calibrated_header, previous_calibrated_sets, render, write_atomically, HeaderFacts,
};
use crate::calibration::pipeline::{
    round_significant, run_fingerprint, MAX_GAP_NS, OFI_PREDICTIVE_R2_MIN, WRITTEN_DIGITS,
};
use crate::calibration::search::{
    self, best, default_axes, in_shard, merge_shards, objective, parse_shard, run_points,
    shard_file_name, shard_files, write_shard, Progress, Row, Windows,
};
use crate::calibration::series::MarketSeries;
use crate::calibration::{estimate, EstimatorSettings, Stability};
use crate::config::{Config, ConfigError};
use crate::replay::{self, Tape};
use crate::report::calibration::{
    self as report, print_choice, print_estimates, ReportInput, RunFigures, Span, Summary,
};
use crate::shutdown::Shutdown;
use crate::time::{Clock, SystemClock};
use crate::types::DECIMALS;

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
    let cal = &config.calibration;
    let book_levels = config.market_data.book_levels;

    // -- data and windows ---------------------------------------------------------------
    let readers = replay::open_inputs(&args.data, config.spec.symbol.as_str())?;
    let tape = Tape::load_until(readers, config.spec, args.duration_ns.unwrap_or(u64::MAX))?;
    let stats = tape.stats().clone();
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
    let span_s = stats.last_ts_ns.saturating_sub(stats.first_ts_ns) as f64 / 1e9;
    if stats.events == 0 || span_s < cal.min_span_s {
        anyhow::bail!(
            "calibration needs at least {:.1} minutes of data with a depth snapshot; {} holds \
             {:.1} s ({} events of {}) — fix: give a longer recording (--data, e.g. the two \
             files of ../shared/data/binance-spot), or lower calibration.min_span_s",
            cal.min_span_s / 60.0,
            tape.sources().join(", "),
            span_s,
            stats.events,
            config.spec.symbol
        );
    }
    // A recording with holes (several sessions, a crash) would make every estimate and the
    // walk-forward cut about the holes: refuse it.
    if let Some((gap_ns, at_ns)) = tape
        .events()
        .windows(2)
        .map(|w| {
            (
                w[1].local_ts_ns.saturating_sub(w[0].local_ts_ns),
                w[0].local_ts_ns,
            )
        })
        .max_by_key(|(gap, _)| *gap)
        .filter(|(gap, _)| *gap > MAX_GAP_NS)
    {
        anyhow::bail!(
            "the data has a gap of {:.1} min without any event after {} (limit {} s): σ, the \
             intensity and the walk-forward cut would measure the gap — fix: calibrate on one \
             contiguous recording at a time (--data of one session)",
            gap_ns as f64 / 6e10,
            report::utc_text(at_ns),
            MAX_GAP_NS / 1_000_000_000
        );
    }
    let windows = Windows::split(
        stats.first_ts_ns,
        stats.last_ts_ns,
        cal.fit_fraction,
        cal.choose_fraction,
    );
    let choose_tape = tape.window(windows.fit_end_ns, windows.choose_end_ns, book_levels)?;
    let held_tape = tape.window(windows.choose_end_ns, windows.end_ns, book_levels)?;
    for (name, part, at) in [
        ("choose", &choose_tape, windows.fit_end_ns),
        ("held-out", &held_tape, windows.choose_end_ns),
    ] {
        if !part.starts_with_snapshot() {
            anyhow::bail!(
                "the order book is not in sync at the start of the {name} part ({}): \
                 calibration needs data with a depth snapshot and unbroken depth diffs before \
                 it — fix: give a recording made with --mode=record (or a capture with its \
                 REST snapshot), or move the split with calibration.fit_fraction",
                report::utc_text(at)
            );
        }
    }
    let (fit_s, choose_s, held_s) = windows.spans_s();
    writeln!(
        out,
        "walk-forward: fit {:.1} min | choose {:.1} min | held out {:.1} min",
        fit_s / 60.0,
        choose_s / 60.0,
        held_s / 60.0
    )?;

    // -- estimators -----------------------------------------------------------------------
    let settings = EstimatorSettings::from_config(config);
    let tick_quote = config.spec.tick_atoms as f64 / 10f64.powi(DECIMALS as i32);
    let fit_series =
        MarketSeries::from_tape(&tape, windows.start_ns, windows.fit_end_ns, book_levels);
    let estimates = estimate(&fit_series, tick_quote, &settings)
        .map_err(|e| anyhow::anyhow!("on the fit part of the data: {e}"))?;
    let middle = windows.start_ns + (windows.end_ns - windows.start_ns) / 2;
    let halves = {
        let first = MarketSeries::from_tape(&tape, windows.start_ns, middle, book_levels);
        let second = MarketSeries::from_tape(&tape, middle, windows.end_ns, book_levels);
        match (
            estimate(&first, tick_quote, &settings),
            estimate(&second, tick_quote, &settings),
        ) {
            (Ok(a), Ok(b)) => Ok(Stability::between(&a, &b)),
            (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
        }
    };
    print_estimates(out, &estimates, &halves)?;
    let sigma = round_significant(estimates.sigma.bps_per_sqrt_s, WRITTEN_DIGITS);
    let k = round_significant(estimates.intensity.k_per_bps, WRITTEN_DIGITS);
    let a = round_significant(estimates.intensity.a_per_s, WRITTEN_DIGITS);
    let base_sets = vec![
        format!("model.sigma_bps_per_sqrt_s={sigma}"),
        format!("model.k_per_bps={k}"),
        format!("model.intensity_a_per_s={a}"),
    ];
    // A tilt needs OFI to say something about the *next* window's mid move; where the
    // out-of-sample regression says it does not, β is 0 and the grid does not search it.
    let ofi_r2 = estimates.ofi.predictive.r_squared;
    let ofi_predicts = ofi_r2 >= OFI_PREDICTIVE_R2_MIN;
    if !ofi_predicts {
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
    let base = make_config(&base_sets).map_err(|e| anyhow::anyhow!("the fitted values: {e}"))?;

    // -- grid -----------------------------------------------------------------------------
    let axes: Vec<GridAxis> = if args.grid.is_empty() {
        let mut axes = default_axes(cal);
        if !ofi_predicts {
            for axis in axes.iter_mut().filter(|a| a.key == "ofi.beta") {
                axis.values = vec!["0".to_string()];
            }
        }
        axes
    } else {
        args.grid
            .iter()
            .map(|a| parse_grid(a))
            .collect::<anyhow::Result<_>>()?
    };
    let combos = grid_combinations(&axes);
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
    let fp = run_fingerprint(&tape, &windows, &base_sets, &axes, &base);
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
            &base_sets,
            make_config,
            &base,
            &choose_tape,
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
    let Some(chosen) = best(&rows).cloned() else {
        let most = rows.iter().map(|r| r.grid.fills).max().unwrap_or(0);
        let choose_min = (windows.choose_end_ns - windows.fit_end_ns) as f64 / 60e9;
        let needed = crate::calibration::objective::MIN_FILLS_TO_CHOOSE;
        anyhow::bail!(
            "no grid point can be chosen: with objective {:?} a point needs at least {needed} \
             fills on the choose part, and the most any point made in its {choose_min:.1} \
             minutes was {most}. Give more data: about {:.0} minutes of choose part, i.e. \
             --data spanning ~{:.0} minutes in all (the choose part is calibration.\
             choose_fraction of the span), or widen the grid toward tighter spreads",
            cal.objective.as_str(),
            choose_min * needed as f64 / most.max(1) as f64,
            choose_min * needed as f64 / most.max(1) as f64 / cal.choose_fraction,
        );
    };
    let chosen_sets: Vec<String> = base_sets
        .iter()
        .chain(&chosen.grid.settings)
        .cloned()
        .collect();
    let chosen_config = make_config(&chosen_sets).map_err(|e| anyhow::anyhow!("{e}"))?;
    // What the file holds: everything that shaped the backtests but lives in a layer the
    // file replaces or that is not there next time — the previous calibrated.toml (when
    // loaded) and the --set flags — then σ, k and the chosen point, which win.
    let mut written_sets = previous_calibrated_sets(config)?;
    written_sets.extend(args.sets.iter().cloned());
    written_sets.extend(chosen_sets.iter().cloned());
    let figures = |c: &Config, t: &Tape| -> anyhow::Result<RunFigures> {
        let run: Replayed = simulate(c, t, None)?;
        let value = objective(&run, &GridRow::of(&[], &run), cal);
        Ok(RunFigures::of(&run, value))
    };
    let in_sample = figures(&chosen_config, &choose_tape)?;
    let out_of_sample = figures(&chosen_config, &held_tape)?;
    let before_in = figures(config, &choose_tape)?;
    let before_out = figures(config, &held_tape)?;
    let mut notes = vec![
        format!(
            "The choose and held-out parts each start with a synthetic REST snapshot of the book \
             the engine would hold there (Tape::window); σ, OFI and the touch start cold, as at \
             a live start. σ uses the prior {sigma} bps/√s until the online estimator has \
             {} samples.",
            config.model.sigma_warmup_samples
        ),
        format!(
            "OFI β is searched on the grid, not set from the regression: the engine's tilt is \
             clamp(β·OFI, −1, +1) ticks, so a regression β of {:.1} ticks already saturates it; \
             the regression shows whether the sign of OFI is informative.",
            estimates.ofi.normalised.slope
        ),
        format!("Feed latency: {}.", estimates.feed_latency.note),
    ];
    if (in_sample.objective - chosen.objective).abs() > 1e-9 * chosen.objective.abs().max(1.0) {
        notes.push(format!(
            "warning: the chosen point's objective on the choose part was {} in the grid and {} \
             when run again; the backtest should be deterministic",
            chosen.objective, in_sample.objective
        ));
    }
    let mut warnings = Vec::new();
    if in_sample.objective < before_in.objective {
        warnings.push(format!(
            "WARNING: no grid point beat the configuration as it was before calibration on \
             the choose part (best objective {:.4}, before {:.4}): the grid may miss the good \
             values (widen --grid) or the data is too short to tell; the file is written \
             anyway — keep the .bak if you prefer the old one",
            in_sample.objective, before_in.objective
        ));
    }
    if out_of_sample.objective < before_out.objective {
        warnings.push(format!(
            "WARNING: out of sample (held-out part) the chosen point did worse than the \
             configuration before calibration (objective {:.4} vs {:.4}, PnL {:.4} vs \
             {:.4}): its in-sample edge did not carry over",
            out_of_sample.objective,
            before_out.objective,
            out_of_sample.pnl_quote,
            before_out.pnl_quote
        ));
    }
    notes.extend(warnings.iter().cloned());

    // -- files --------------------------------------------------------------------------------
    let folder = report::create_folder(&args.reports_root, config.spec.symbol.as_str())?;
    let generated_utc = report::utc_text(crate::time::wall_now_ns());
    let objective_text = match cal.objective {
        crate::config::CalibrationObjective::Spread => format!(
            "spread: spread PnL net of fees − {} × Σ(minute inventory PnL)², at least {} fills",
            crate::calibration::objective::INVENTORY_RISK_PER_QUOTE,
            crate::calibration::objective::MIN_FILLS_TO_CHOOSE
        ),
        crate::config::CalibrationObjective::Penalised => format!(
            "penalised: PnL − {} × KPI targets missed − {} × RMS inventory",
            cal.kpi_miss_penalty, cal.rms_inventory_penalty
        ),
        other => other.as_str().to_string(),
    };
    let header = calibrated_header(&HeaderFacts {
        generated_utc: &generated_utc,
        tape: &tape,
        windows: &windows,
        estimates: &estimates,
        sigma,
        k,
        objective: &objective_text,
        chosen: &chosen,
        combos: combos.len(),
        in_sample: &in_sample,
        out_of_sample: &out_of_sample,
        warnings: &warnings,
        folder: &folder,
    });
    let toml_text = render(&header, &written_sets)?;
    let mut summary = Summary {
        version: report::REPORT_VERSION,
        mode: "calibration",
        symbol: config.spec.symbol.as_str().to_string(),
        generated_utc,
        sources: tape.sources().to_vec(),
        events: stats.events,
        data: Span::of(windows.start_ns, windows.end_ns),
        fit: Span::of(windows.start_ns, windows.fit_end_ns),
        choose: Span::of(windows.fit_end_ns, windows.choose_end_ns),
        held_out: Span::of(windows.choose_end_ns, windows.end_ns),
        sigma_bps_per_sqrt_s: sigma,
        k_per_bps: k,
        objective: objective_text,
        axes: axes.clone(),
        grid_points: combos.len(),
        chosen_index: chosen.index,
        chosen: chosen.grid.settings.clone(),
        written: written_sets.clone(),
        in_sample,
        out_of_sample,
        before_in_sample: before_in,
        before_out_of_sample: before_out,
        fingerprint: fp.clone(),
        calibrated_path: args.calibrated_out.display().to_string(),
        notes,
        wall_s: 0.0,
    };
    let had_previous = args.calibrated_out.is_file();
    summary.wall_s = wall.mono_ns() as f64 / 1e9;
    let grid_csv = search::rows_csv(&fp, &axes, &rows);
    // The report first: calibrated.toml (which every later run loads) is replaced only
    // once everything else is written.
    report::write_folder(
        &folder,
        &ReportInput {
            summary: &summary,
            estimates: &estimates,
            halves: halves.as_ref().map_err(Clone::clone),
            rows: &rows,
            grid_csv: &grid_csv,
            calibrated_toml: &toml_text,
        },
    )?;
    write_atomically(&args.calibrated_out, toml_text.as_bytes(), true)
        .with_context(|| format!("writing {}", args.calibrated_out.display()))?;
    print_choice(out, &summary)?;
    for warning in &warnings {
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
