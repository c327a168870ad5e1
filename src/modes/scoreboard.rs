//! `--mode=scoreboard`: flags → the walk-forward of `crate::scoreboard` over every
//! recording of the shared data folder at four maker-fee tiers → the table
//! (`report::scoreboard`) on the console and in `scoreboard.md`. Wiring only.

use std::io::Write;
use std::path::PathBuf;

use crate::calibration::objective::{INVENTORY_RISK_PER_QUOTE, MIN_FILLS_TO_CHOOSE};
use crate::config::{Config, ConfigError};
use crate::report::scoreboard::{render_table, row_text, write_table};
use crate::scoreboard::{
    default_axes, walk_forward, Progress, Recording, FEE_TIERS_BPS, RECORDINGS,
};
use crate::shutdown::Shutdown;

/// Most folds per recording: more only cuts the data into folds too short to choose or
/// score on, one replay each (a huge `--folds` ran for ever).
pub const FOLDS_MAX: usize = 1000;

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
    if !(2..=FOLDS_MAX).contains(&args.folds) {
        anyhow::bail!(
            "--folds {} : the walk-forward needs at least 2 folds and takes at most \
             {FOLDS_MAX} (each fold is a replay per grid point and fee tier)",
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
    let points = crate::backtest::grid_combinations(&axes)?;
    // `--data FILE..`: one recording of the configured market, named by its files. The
    // shared recordings' files are relative to the data folder.
    let recordings: Vec<Recording> = if args.files.is_empty() {
        RECORDINGS
            .iter()
            .map(|shared| {
                let mut recording = Recording::owned(shared);
                for file in &mut recording.files {
                    *file = args.data_root.join(&*file).display().to_string();
                }
                recording
            })
            .collect()
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
    let (scores, untradeable) = walk_forward(
        &recordings,
        args.folds,
        &points,
        make_config,
        &|| shutdown.requested(),
        &mut |progress| {
            match progress {
                Progress::Stopped => writeln!(
                    out,
                    "stopped by Ctrl+C: the table covers the recordings done so far"
                )?,
                Progress::NotTradeable(u) => {
                    writeln!(out, "{}: not tradeable — {}", u.recording, u.reason)?
                }
                Progress::Scored(score) => writeln!(out, "{}", row_text(score))?,
            }
            Ok(())
        },
    )?;
    let table = render_table(&scores, &untradeable);
    writeln!(out, "\n{table}")?;
    let path = write_table(&args.reports_root, &table)?;
    writeln!(out, "report: {}", path.display())?;
    if scores.is_empty() {
        anyhow::bail!("no recording could be scored (see the reasons above)");
    }
    Ok(())
}
