//! `--mode=scoreboard`: flags → the walk-forward of `crate::scoreboard` over every
//! recording of the shared data folder at four maker-fee tiers → the table
//! (`report::scoreboard`) on the console and in `scoreboard.md`. Wiring only.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rayon::prelude::*;

use crate::backtest::simulate;
use crate::calibration::objective::{objective, INVENTORY_RISK_PER_QUOTE, MIN_FILLS_TO_CHOOSE};
use crate::config::{Config, ConfigError};
use crate::replay::{self, Tape};
use crate::report::scoreboard::{render_table, row_text};
use crate::scoreboard::{
    choose, default_axes, point_sets, score_fold, untradeable_reason, FoldScore, Recording,
    Untradeable, FEE_TIERS_BPS, RECORDINGS,
};
use crate::shutdown::Shutdown;

/// Flags of the mode.
#[derive(Clone, Debug)]
pub struct ScoreboardArgs {
    /// The shared data folder (`../shared/data`): every recording of `RECORDINGS` in it.
    pub data_root: PathBuf,
    /// Instead of `RECORDINGS`: these files, as one recording of the configured market
    /// (`--data FILE`, repeatable).
    pub files: Vec<String>,
    /// Folds per recording (≥ 2): fold 0 is only chosen on; folds 1.. are scored.
    pub folds: usize,
    /// `--grid` axes (empty: `default_axes`).
    pub grid: Vec<String>,
    /// Where the report folder goes.
    pub reports_root: PathBuf,
}

/// Runs the mode and prints the table. Errors only for a broken set-up (no data folder, bad
/// grid); recordings that cannot be traded are reported in the table.
pub fn run(
    args: &ScoreboardArgs,
    make_config: &(dyn Fn(&[String]) -> Result<Config, ConfigError> + Sync),
    shutdown: &Shutdown,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    if args.folds < 2 {
        anyhow::bail!(
            "--folds {} : the walk-forward needs at least 2 folds",
            args.folds
        );
    }
    if args.files.is_empty() && !args.data_root.is_dir() {
        anyhow::bail!(
            "{} is not a folder: give the shared data folder with --data (default \
             ../shared/data)",
            args.data_root.display()
        );
    }
    let axes = if args.grid.is_empty() {
        default_axes()
    } else {
        args.grid
            .iter()
            .map(|a| crate::backtest::parse_grid(a))
            .collect::<anyhow::Result<_>>()?
    };
    let points = crate::backtest::grid_combinations(&axes);
    // `--data FILE..`: one recording of the configured market, named by its files.
    let recordings: Vec<Recording> = if args.files.is_empty() {
        RECORDINGS.iter().map(Recording::owned).collect()
    } else {
        vec![Recording {
            name: args.files.join(" + "),
            files: args.files.clone(),
            sets: Vec::new(),
        }]
    };
    writeln!(
        out,
        "scoreboard: {} recordings × {} fee tiers × {} scored folds, {} grid points chosen on \
         earlier data (≥ {MIN_FILLS_TO_CHOOSE} fills, objective = spread PnL net of fees − \
         {INVENTORY_RISK_PER_QUOTE}·Σ(minute inventory PnL)²)",
        recordings.len(),
        FEE_TIERS_BPS.len(),
        args.folds - 1,
        points.len()
    )?;
    let mut scores: Vec<FoldScore> = Vec::new();
    let mut untradeable: Vec<Untradeable> = Vec::new();
    for recording in &recordings {
        if shutdown.requested() {
            writeln!(
                out,
                "stopped by Ctrl+C: the table covers the recordings done so far"
            )?;
            break;
        }
        let paths: Vec<String> = recording
            .files
            .iter()
            .map(|f| {
                if args.files.is_empty() {
                    args.data_root.join(f).display().to_string()
                } else {
                    f.clone()
                }
            })
            .collect();
        if let Some(missing) = paths.iter().find(|p| !Path::new(p).is_file()) {
            untradeable.push(Untradeable {
                recording: recording.name.clone(),
                reason: format!("{missing} is missing"),
            });
            continue;
        }
        let base_sets: Vec<String> = recording.sets.clone();
        let base =
            make_config(&base_sets).map_err(|e| anyhow::anyhow!("{}: {e}", recording.name))?;
        let readers = replay::open_inputs(&paths, base.spec.symbol.as_str())?;
        let tape = Tape::load_until(readers, base.spec, u64::MAX)
            .with_context(|| recording.name.to_string())?;
        if let Some(reason) = untradeable_reason(&base, &tape)? {
            writeln!(out, "{}: not tradeable — {reason}", recording.name)?;
            untradeable.push(Untradeable {
                recording: recording.name.clone(),
                reason,
            });
            continue;
        }
        let events = tape.events();
        let (first_ns, last_ns) = match (events.first(), events.last()) {
            (Some(a), Some(b)) => (a.local_ts_ns, b.local_ts_ns + 1),
            _ => continue,
        };
        let span = last_ns - first_ns;
        let cut = |i: usize| first_ns + (span as u128 * i as u128 / args.folds as u128) as u64;
        let levels = base.market_data.book_levels;
        for fold in 1..args.folds {
            let choose_tape = tape.window(first_ns, cut(fold), levels)?;
            let score_tape = tape.window(cut(fold), cut(fold + 1), levels)?;
            for fee in FEE_TIERS_BPS {
                let fee_set = format!("venue.maker_fee_bps={fee}");
                let rows: Vec<(Vec<String>, Option<f64>, u64)> = points
                    .par_iter()
                    .map(|settings| -> anyhow::Result<_> {
                        let config = make_config(&point_sets(&base_sets, &fee_set, settings))
                            .map_err(|e| anyhow::anyhow!("{}: {e}", settings.join(" ")))?;
                        let run = simulate(&config, &choose_tape, None)?;
                        Ok((settings.clone(), objective(&run), run.fills.len() as u64))
                    })
                    .collect::<anyhow::Result<_>>()?;
                let choice = choose(&rows);
                let score = score_fold(
                    recording,
                    &base_sets,
                    &fee_set,
                    fee,
                    fold,
                    &score_tape,
                    choice,
                    make_config,
                )?;
                writeln!(out, "{}", row_text(&score))?;
                scores.push(score);
            }
        }
    }
    let table = render_table(&scores, &untradeable);
    writeln!(out, "\n{table}")?;
    let folder = args.reports_root.join(format!(
        "scoreboard_{}",
        crate::time::wall_now_ns() / 1_000_000_000
    ));
    std::fs::create_dir_all(&folder).with_context(|| format!("creating {}", folder.display()))?;
    std::fs::write(folder.join("scoreboard.md"), &table)
        .with_context(|| format!("writing {}", folder.join("scoreboard.md").display()))?;
    writeln!(out, "report: {}", folder.join("scoreboard.md").display())?;
    if scores.is_empty() {
        anyhow::bail!("no recording could be scored (see the reasons above)");
    }
    Ok(())
}
