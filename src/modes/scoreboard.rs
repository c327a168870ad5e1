//! `--mode=scoreboard`: the strategy held to what a market maker is judged by — money net of
//! fees on data its parameters were not chosen on — over every recording in the shared data
//! folder, at four maker-fee tiers, in one table.
//!
//! Owns: the list of recordings and their market settings (`RECORDINGS`), the walk-forward
//! (anchored: fold i is scored with the grid point chosen on everything before it), the
//! choice rule (`choose`) and the table. The objective and the money split are
//! calibration's (`calibration::objective`), so both choose the same way.
//!
//! The choice rule, per fee tier and fold: every grid point is backtested on the choose
//! window (all data before the fold); a point is eligible only with at least
//! `MIN_FILLS_TO_CHOOSE` fills there; the objective is the spread PnL net of fees minus an
//! inventory-risk penalty (`calibration::objective::objective`). The best eligible point is traded on the fold only
//! if its objective is > 0; otherwise the strategy **stands aside** for that fold (no edge
//! was seen on earlier data) and the row says why. Parameters are never chosen on the period
//! they are scored on.
//!
//! Recordings the engine cannot trade (no REST snapshot, futures diffs that do not chain)
//! are listed with the reason instead of a row of zeros.
//!
//! Cold path: allocates, runs backtests in parallel (rayon), writes a report folder. Never
//! touches the hot path's code other than through `backtest::simulate`.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rayon::prelude::*;

use crate::calibration::objective::{objective, INVENTORY_RISK_PER_QUOTE, MIN_FILLS_TO_CHOOSE};
use crate::config::{Config, ConfigError};
use crate::modes::backtest::{simulate, GridAxis, Replayed};
use crate::replay::{self, Tape};
use crate::report::Scorecard;
use crate::shutdown::Shutdown;
use crate::telemetry::kpi::KpiStatus;

/// Maker-fee tiers scored, bps: Binance spot regular, with BNB, the liquidity-provider
/// tier 1, a market-maker programme rebate (../shared/STRATEGY.md).
pub const FEE_TIERS_BPS: [f64; 4] = [10.0, 7.5, 0.0, -0.5];

/// One recording of the shared data folder and the settings its market needs.
#[derive(Clone, Copy, Debug)]
pub struct SharedRecording {
    /// Short name for the table.
    pub name: &'static str,
    /// Files, relative to the data root, replayed as one session.
    pub files: &'static [&'static str],
    /// `--set` flags for its market (symbol, filters, sizes in its units).
    pub sets: &'static [&'static str],
}

/// A recording to score: its name, files (relative to the data root, or as given) and
/// market settings.
#[derive(Clone, Debug)]
pub struct Recording {
    /// Name for the table.
    pub name: String,
    /// Files replayed as one session.
    pub files: Vec<String>,
    /// `--set` flags for its market.
    pub sets: Vec<String>,
}

impl Recording {
    fn owned(shared: &SharedRecording) -> Recording {
        Recording {
            name: shared.name.to_string(),
            files: shared.files.iter().map(|f| f.to_string()).collect(),
            sets: shared.sets.iter().map(|f| f.to_string()).collect(),
        }
    }
}

/// Every recording of `../shared/data` (see its README), with exchangeInfo-like filters.
/// Sizes: about 60–100 USDT per quote and an inventory limit of 5 quotes.
pub const RECORDINGS: [SharedRecording; 6] = [
    SharedRecording {
        name: "BTCUSDT spot 2024-08-08/09 (10.8 min)",
        files: &[
            "binance-spot/btcusdt_20240808.gz",
            "binance-spot/btcusdt_20240809.gz",
        ],
        sets: &[],
    },
    SharedRecording {
        name: "NEXOUSDT spot 2024-07-23/25 (34 h)",
        files: &[
            "binance-spot-long/nexousdt_20240723.dat.gz",
            "binance-spot-long/nexousdt_20240724.dat.gz",
            "binance-spot-long/nexousdt_20240725.dat.gz",
        ],
        sets: &[
            "market.symbol=NEXOUSDT",
            "market.tick_size=0.001",
            "market.step_size=0.01",
            "market.min_notional=5",
            "quoting.quote_size=50",
            "quoting.inventory_max=250",
            "risk.order_notional_max=200",
        ],
    },
    SharedRecording {
        name: "BTCUSDT spot 2023-04-05 (7 min)",
        files: &["binance-spot/btcusdt_20230405.dat.gz"],
        sets: &[],
    },
    SharedRecording {
        name: "BTCUSDT USD-M 2023-04-04/05 (8.6 min)",
        files: &[
            "binance-usdm/btcusdt_20230404.dat.gz",
            "binance-usdm/btcusdt_20230405.dat.gz",
        ],
        sets: &[
            "market.tick_size=0.1",
            "market.step_size=0.001",
            "market.min_notional=100",
            "quoting.quote_size=0.004",
            "quoting.inventory_max=0.02",
        ],
    },
    SharedRecording {
        name: "BTCUSDT USD-M 2024-07-18/19 (8 min)",
        files: &[
            "binance-usdm/btcusdt_20240718.gz",
            "binance-usdm/btcusdt_20240719.gz",
        ],
        sets: &[
            "market.tick_size=0.1",
            "market.step_size=0.001",
            "market.min_notional=100",
            "quoting.quote_size=0.002",
            "quoting.inventory_max=0.01",
        ],
    },
    SharedRecording {
        name: "ETHUSDT USD-M 2024-07-18/19 (8 min)",
        files: &[
            "binance-usdm/ethusdt_20240718.gz",
            "binance-usdm/ethusdt_20240719.gz",
        ],
        sets: &[
            "market.symbol=ETHUSDT",
            "market.tick_size=0.01",
            "market.step_size=0.001",
            "market.min_notional=20",
            "quoting.quote_size=0.03",
            "quoting.inventory_max=0.15",
        ],
    },
];

/// The grid searched on each choose window when no `--grid` is given.
pub fn default_axes() -> Vec<GridAxis> {
    let axis = |key: &str, values: &[&str]| GridAxis {
        key: key.to_string(),
        values: values.iter().map(|v| v.to_string()).collect(),
    };
    vec![
        axis("model.kind", &["avellaneda-stoikov", "glft"]),
        axis("model.gamma_per_bps", &["0.001", "0.01", "0.1"]),
        axis("quoting.spread_min_bps", &["1", "5", "20", "40"]),
        axis("quoting.requote_band", &["0.5", "1"]),
    ]
}

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

/// What was chosen on a choose window.
#[derive(Clone, Debug, PartialEq)]
pub enum Choice {
    /// Trade with these settings (objective on the choose window, fills there).
    Trade {
        /// `key=value` settings of the grid point.
        settings: Vec<String>,
        /// Its objective on the choose window, quote currency.
        objective: f64,
        /// Its fills there.
        fills: u64,
    },
    /// No grid point showed an edge: stand aside, with the reason.
    StandAside(String),
}

/// The best eligible point of `rows` (settings, objective, fills); ties to the first.
pub fn choose(rows: &[(Vec<String>, Option<f64>, u64)]) -> Choice {
    let best = rows
        .iter()
        .filter_map(|(s, o, f)| o.filter(|o| !o.is_nan()).map(|o| (s, o, *f)))
        .fold(None::<(&Vec<String>, f64, u64)>, |best, row| match best {
            Some(b) if b.1 >= row.1 => Some(b),
            _ => Some(row),
        });
    match best {
        None => {
            let most = rows.iter().map(|r| r.2).max().unwrap_or(0);
            Choice::StandAside(format!(
                "no grid point had {MIN_FILLS_TO_CHOOSE} fills on earlier data (most: {most})"
            ))
        }
        Some((settings, objective, fills)) if objective > 0.0 => Choice::Trade {
            settings: settings.clone(),
            objective,
            fills,
        },
        Some((_, objective, fills)) => Choice::StandAside(format!(
            "no edge on earlier data: best spread PnL net of fees − risk {objective:+.4} at \
             {fills} fills"
        )),
    }
}

/// One scored fold.
#[derive(Clone, Debug)]
pub struct FoldScore {
    /// Recording name.
    pub recording: String,
    /// Maker fee, bps.
    pub fee_bps: f64,
    /// Fold index (1-based among scored folds).
    pub fold: usize,
    /// Scored span, minutes.
    pub minutes: f64,
    /// What was chosen.
    pub choice: Choice,
    /// The scored fold's figures (`None` when standing aside: no order, no fill, no money).
    pub card: Option<Scorecard>,
}

/// A recording that could not be traded, and why.
#[derive(Clone, Debug)]
pub struct Untradeable {
    /// Recording name.
    pub recording: String,
    /// Why, in words.
    pub reason: String,
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
            .map(|a| crate::modes::backtest::parse_grid(a))
            .collect::<anyhow::Result<_>>()?
    };
    let points = crate::modes::backtest::grid_combinations(&axes);
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

/// Why the engine cannot trade this tape with its base settings, if it cannot: it placed no
/// order on the whole tape, or its book lost sync for good (a gap the data never heals) and
/// nothing filled.
fn untradeable_reason(base: &Config, tape: &Tape) -> anyhow::Result<Option<String>> {
    let run = simulate(base, tape, None)?;
    let desynced = run.engine_stats.gaps > 0 && run.fills.is_empty();
    if run.order_stats.orders_placed > 0 && !desynced {
        return Ok(None);
    }
    Ok(Some(no_trading_reason(tape, &run)))
}

/// Why a replay placed no order, in words a trader can act on.
pub fn no_trading_reason(tape: &dyn replay::TapeInfo, run: &Replayed) -> String {
    let stats = tape.stats();
    if stats.snapshots == 0 {
        return "the data holds no REST depth snapshot, so the L2 book never syncs and the \
                engine never quotes (a top-of-book mode is not built; record with a snapshot)"
            .to_string();
    }
    if run.engine_stats.snapshots == 0 || run.engine_stats.gaps > 0 {
        return format!(
            "the depth diffs do not chain onto the snapshot ({} gaps, {} snapshots loaded, \
             {} orders placed before the book was lost): USD-M futures chain diffs by pu, \
             which the spot book does not follow yet",
            run.engine_stats.gaps, run.engine_stats.snapshots, run.order_stats.orders_placed
        );
    }
    "the book synced but no order was placed (check the risk limits and sizes)".to_string()
}

#[allow(clippy::too_many_arguments)]
fn score_fold(
    recording: &Recording,
    base_sets: &[String],
    fee_set: &str,
    fee: f64,
    fold: usize,
    tape: &Tape,
    choice: Choice,
    make_config: &(dyn Fn(&[String]) -> Result<Config, ConfigError> + Sync),
) -> anyhow::Result<FoldScore> {
    let events = tape.events();
    let minutes = match (events.first(), events.last()) {
        (Some(a), Some(b)) => (b.local_ts_ns - a.local_ts_ns) as f64 / 60e9,
        _ => 0.0,
    };
    let mut score = FoldScore {
        recording: recording.name.clone(),
        fee_bps: fee,
        fold,
        minutes,
        choice: choice.clone(),
        card: None,
    };
    let Choice::Trade { settings, .. } = &choice else {
        return Ok(score);
    };
    let config = make_config(&point_sets(base_sets, fee_set, settings))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let run = simulate(&config, tape, None)?;
    score.card = Some(Scorecard::of(&run));
    Ok(score)
}

/// The `--set` flags of one grid point at one fee tier: the recording's market, the fee, the
/// point (later flags win).
fn point_sets(base_sets: &[String], fee_set: &str, settings: &[String]) -> Vec<String> {
    let mut sets = base_sets.to_vec();
    sets.push(fee_set.to_string());
    sets.extend(settings.iter().cloned());
    sets
}

/// One KPI for the table: its value and ✓/✗, or n/a with what was measured.
fn kpi_text(status: &KpiStatus) -> String {
    let name = status.kind.name();
    match (status.value, status.measured) {
        (Some(v), _) => format!("{name} {v:.3}{}", if status.met { " ✓" } else { " ✗" }),
        (None, Some(m)) => format!("{name} n/a (measured {m:.3})"),
        (None, None) => format!("{name} n/a"),
    }
}

/// The progress line of one scored fold (the table has the details).
fn row_text(s: &FoldScore) -> String {
    let what = match (&s.choice, &s.card) {
        (Choice::Trade { .. }, Some(c)) => format!(
            "net {:+.4}, spread {:+.4}, {} fills, {}/6 KPIs",
            c.net_pnl_quote, c.spread_pnl_quote, c.fills, c.targets_met
        ),
        (Choice::StandAside(why), _) => format!("stood aside: {why}"),
        (Choice::Trade { .. }, None) => "not run".to_string(),
    };
    format!(
        "  {} | fee {:+} bps | fold {}: {what}",
        s.recording, s.fee_bps, s.fold
    )
}

/// The Markdown table: one row per recording × fee tier × scored fold, then the recordings
/// that could not be traded.
pub fn render_table(scores: &[FoldScore], untradeable: &[Untradeable]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| recording | maker fee (bps) | fold | net PnL | spread PnL (net of fees) | inventory \
         PnL | fees | fills | orders | KPIs met | Sharpe/min | chosen on earlier data |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for s in scores {
        let chosen = match &s.choice {
            Choice::Trade {
                settings,
                objective,
                fills,
            } => format!(
                "{} (objective {objective:+.4} at {fills} fills)",
                settings.join(" ")
            ),
            Choice::StandAside(why) => format!("**stood aside**: {why}"),
        };
        let zero = Scorecard::default();
        let c = s.card.as_ref().unwrap_or(&zero);
        let _ = writeln!(
            t,
            "| {} | {:+} | {} ({:.0} min) | {:+.4} | {:+.4} | {:+.4} | {:.4} | {} | {} | {} | {} | \
             {chosen} |",
            s.recording,
            s.fee_bps,
            s.fold,
            s.minutes,
            c.net_pnl_quote,
            c.spread_pnl_quote,
            c.inventory_pnl_quote,
            c.fees_quote,
            c.fills,
            c.orders_placed,
            match &s.card {
                Some(c) => format!(
                    "{}/6 ({})",
                    c.targets_met,
                    c.kpis.iter().map(kpi_text).collect::<Vec<_>>().join(", ")
                ),
                None => "n/a".to_string(),
            },
            c.sharpe_per_minute
                .map_or_else(|| "n/a".to_string(), |v| format!("{v:.3}")),
        );
    }
    for u in untradeable {
        let _ = writeln!(
            t,
            "| {} | all | — | — | — | — | — | 0 | 0 | n/a | n/a | **not tradeable**: {} |",
            u.recording, u.reason
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, objective: Option<f64>, fills: u64) -> (Vec<String>, Option<f64>, u64) {
        (vec![name.to_string()], objective, fills)
    }

    #[test]
    fn choice_needs_evidence_and_an_edge() {
        // No eligible point: stand aside, naming the most fills seen.
        let none = choose(&[row("a", None, 3), row("b", None, 7)]);
        assert!(matches!(&none, Choice::StandAside(why) if why.contains("most: 7")));
        // Eligible but no edge: stand aside.
        let losing = choose(&[row("a", Some(-0.2), 40), row("b", Some(-0.1), 30)]);
        assert!(matches!(&losing, Choice::StandAside(why) if why.contains("-0.1000")));
        // The best positive point wins; NaN never does; ties go to the first.
        let best = choose(&[
            row("a", Some(0.1), 40),
            row("b", Some(f64::NAN), 40),
            row("c", Some(0.3), 25),
            row("d", Some(0.3), 90),
        ]);
        assert_eq!(
            best,
            Choice::Trade {
                settings: vec!["c".to_string()],
                objective: 0.3,
                fills: 25
            }
        );
    }
}
