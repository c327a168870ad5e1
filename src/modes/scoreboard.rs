//! `--mode=scoreboard`: the strategy held to what a market maker is judged by — money net of
//! fees on data its parameters were not chosen on — over every recording in the shared data
//! folder, at four maker-fee tiers, in one table.
//!
//! Owns: the list of recordings and their market settings (`RECORDINGS`), the walk-forward
//! (anchored: fold i is scored with the grid point chosen on everything before it), the
//! choice rule (`choose`), the money split of a run (`Money`) and the table.
//!
//! The choice rule, per fee tier and fold: every grid point is backtested on the choose
//! window (all data before the fold); a point is eligible only with at least
//! `MIN_FILLS_TO_CHOOSE` fills there; the objective is the spread PnL net of fees minus an
//! inventory-risk penalty (`objective`). The best eligible point is traded on the fold only
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

use crate::config::{Config, ConfigError};
use crate::modes::backtest::{simulate, GridAxis, Replayed};
use crate::replay::{self, Tape};
use crate::report::minute_stats;
use crate::shutdown::Shutdown;
use crate::telemetry::kpi::KpiKind;
use crate::types::ATOMS_PER_UNIT;

/// Maker-fee tiers scored, bps: Binance spot regular, with BNB, the liquidity-provider
/// tier 1, a market-maker programme rebate (../shared/STRATEGY.md).
pub const FEE_TIERS_BPS: [f64; 4] = [10.0, 7.5, 0.0, -0.5];
/// Fewest fills a grid point needs on the choose window to be chosen: fewer is noise.
pub const MIN_FILLS_TO_CHOOSE: u64 = 20;
/// Inventory-risk penalty of the objective, per quote currency: objective = spread PnL net
/// of fees − κ·Σ(per-minute inventory PnL)², quote currency.
pub const INVENTORY_RISK_PER_QUOTE: f64 = 1.0;

/// One recording of the shared data folder and the settings its market needs.
#[derive(Clone, Copy, Debug)]
pub struct Recording {
    /// Short name for the table.
    pub name: &'static str,
    /// Files, relative to the data root, replayed as one session.
    pub files: &'static [&'static str],
    /// `--set` flags for its market (symbol, filters, sizes in its units).
    pub sets: &'static [&'static str],
}

/// Every recording of `../shared/data` (see its README), with exchangeInfo-like filters.
/// Sizes: about 60–100 USDT per quote and an inventory limit of 5 quotes.
pub const RECORDINGS: [Recording; 6] = [
    Recording {
        name: "BTCUSDT spot 2024-08-08/09 (10.8 min)",
        files: &[
            "binance-spot/btcusdt_20240808.gz",
            "binance-spot/btcusdt_20240809.gz",
        ],
        sets: &[],
    },
    Recording {
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
    Recording {
        name: "BTCUSDT spot 2023-04-05 (7 min)",
        files: &["binance-spot/btcusdt_20230405.dat.gz"],
        sets: &[],
    },
    Recording {
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
    Recording {
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
    Recording {
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
        axis("model.gamma_per_bps", &["0.01", "0.1", "1"]),
        axis("quoting.spread_min_bps", &["0.5", "2", "8"]),
        axis("quoting.requote_band", &["0.5", "1"]),
    ]
}

/// Flags of the mode.
#[derive(Clone, Debug)]
pub struct ScoreboardArgs {
    /// The shared data folder (`../shared/data`).
    pub data_root: PathBuf,
    /// Folds per recording (≥ 2): fold 0 is only chosen on; folds 1.. are scored.
    pub folds: usize,
    /// `--grid` axes (empty: `default_axes`).
    pub grid: Vec<String>,
    /// Where the report folder goes.
    pub reports_root: PathBuf,
}

/// A run's money, quote atoms: net = spread + inventory; spread is net of fees.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Money {
    /// Mark-to-market PnL at the end (cash net of fees + inventory × mid).
    pub net_atoms: i64,
    /// Σ side·(mid at fill − price)·qty − fees.
    pub spread_atoms: i64,
    /// net − spread: what the inventory made or lost as the mid moved.
    pub inventory_atoms: i64,
    /// Fees paid (negative = rebates).
    pub fees_atoms: i64,
}

impl Money {
    /// The split of one replay.
    pub fn of(run: &Replayed) -> Money {
        let spec = &run.spec;
        let per_tick_lot = i128::from(spec.tick_atoms) * i128::from(spec.step_atoms);
        let mut gross: i128 = 0;
        let mut fees: i128 = 0;
        for fill in &run.fills {
            let edge_half_ticks = i128::from(fill.side.sign())
                * (i128::from(fill.mid_x2_ticks) - 2 * i128::from(fill.price.0));
            gross += edge_half_ticks * i128::from(fill.qty.0) * per_tick_lot;
            fees += i128::from(fill.fee_atoms);
        }
        let gross_atoms = gross / (2 * i128::from(ATOMS_PER_UNIT));
        let net_atoms = match run.final_touch {
            Some((bid, ask)) => run.position.mark_to_market_atoms(spec, bid, ask),
            None => run.position.cash_atoms,
        };
        let spread_atoms = saturate(gross_atoms - fees);
        Money {
            net_atoms,
            spread_atoms,
            inventory_atoms: net_atoms.saturating_sub(spread_atoms),
            fees_atoms: saturate(fees),
        }
    }
}

/// Σ over whole minutes of (inventory PnL in that minute)², quote², from the 1 s samples:
/// the inventory PnL of a sample step is the inventory held × the mid's change.
pub fn inventory_risk_quote2(run: &Replayed) -> f64 {
    let spec = &run.spec;
    let per_tick_lot = spec.tick_atoms as f64 * spec.step_atoms as f64 / 1e8 / 1e8;
    let minute_ns = 60_000_000_000u64;
    let Some(first) = run.samples.first() else {
        return 0.0;
    };
    let mut total = 0.0;
    let mut minute = 0u64;
    let mut in_minute = 0.0;
    for pair in run.samples.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if a.mid_x2_ticks == 0 || b.mid_x2_ticks == 0 {
            continue;
        }
        let step =
            a.inventory_lots as f64 * (b.mid_x2_ticks - a.mid_x2_ticks) as f64 / 2.0 * per_tick_lot;
        let m = (b.ts_ns - first.ts_ns) / minute_ns;
        if m != minute {
            total += in_minute * in_minute;
            in_minute = 0.0;
            minute = m;
        }
        in_minute += step;
    }
    total + in_minute * in_minute
}

/// The choice objective of a run on a choose window, quote currency: spread PnL net of
/// fees − `INVENTORY_RISK_PER_QUOTE` × `inventory_risk_quote2`. `None` with fewer than
/// `MIN_FILLS_TO_CHOOSE` fills (not enough evidence to choose it).
pub fn objective(run: &Replayed) -> Option<f64> {
    if (run.fills.len() as u64) < MIN_FILLS_TO_CHOOSE {
        return None;
    }
    let money = Money::of(run);
    Some(money.spread_atoms as f64 / 1e8 - INVENTORY_RISK_PER_QUOTE * inventory_risk_quote2(run))
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
    pub recording: &'static str,
    /// Maker fee, bps.
    pub fee_bps: f64,
    /// Fold index (1-based among scored folds).
    pub fold: usize,
    /// Scored span, minutes.
    pub minutes: f64,
    /// What was chosen.
    pub choice: Choice,
    /// Money of the scored fold (zero when standing aside).
    pub money: Money,
    /// Fills and orders placed on the fold.
    pub fills: u64,
    /// Orders placed.
    pub orders: u64,
    /// KPI targets met, and of how many (None when standing aside).
    pub kpis_met: Option<usize>,
    /// Each KPI's value text.
    pub kpi_text: Vec<String>,
    /// Sharpe of per-minute PnL changes.
    pub sharpe_1m: Option<f64>,
}

/// A recording that could not be traded, and why.
#[derive(Clone, Debug)]
pub struct Untradeable {
    /// Recording name.
    pub recording: &'static str,
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
    if !args.data_root.is_dir() {
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
    writeln!(
        out,
        "scoreboard: {} recordings × {} fee tiers × {} scored folds, {} grid points chosen on \
         earlier data (≥ {MIN_FILLS_TO_CHOOSE} fills, objective = spread PnL net of fees − \
         {INVENTORY_RISK_PER_QUOTE}·Σ(minute inventory PnL)²)",
        RECORDINGS.len(),
        FEE_TIERS_BPS.len(),
        args.folds - 1,
        points.len()
    )?;
    let mut scores: Vec<FoldScore> = Vec::new();
    let mut untradeable: Vec<Untradeable> = Vec::new();
    for recording in &RECORDINGS {
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
            .map(|f| args.data_root.join(f).display().to_string())
            .collect();
        if let Some(missing) = paths.iter().find(|p| !Path::new(p).is_file()) {
            untradeable.push(Untradeable {
                recording: recording.name,
                reason: format!("{missing} is missing"),
            });
            continue;
        }
        let base_sets: Vec<String> = recording.sets.iter().map(|s| s.to_string()).collect();
        let base =
            make_config(&base_sets).map_err(|e| anyhow::anyhow!("{}: {e}", recording.name))?;
        let readers = replay::open_inputs(&paths, base.spec.symbol.as_str())?;
        let tape = Tape::load_until(readers, base.spec, u64::MAX)
            .with_context(|| recording.name.to_string())?;
        if let Some(reason) = untradeable_reason(&base, &tape)? {
            writeln!(out, "{}: not tradeable — {reason}", recording.name)?;
            untradeable.push(Untradeable {
                recording: recording.name,
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
                        let sets: Vec<String> = base_sets
                            .iter()
                            .cloned()
                            .chain(std::iter::once(fee_set.clone()))
                            .chain(settings.iter().cloned())
                            .collect();
                        let config = make_config(&sets)
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
/// order on the whole tape.
fn untradeable_reason(base: &Config, tape: &Tape) -> anyhow::Result<Option<String>> {
    let run = simulate(base, tape, None)?;
    if run.order_stats.orders_placed > 0 {
        return Ok(None);
    }
    Ok(Some(no_trading_reason(tape, &run)))
}

/// Why a replay placed no order, in words a trader can act on.
pub fn no_trading_reason(tape: &Tape, run: &Replayed) -> String {
    let stats = tape.stats();
    if stats.snapshots == 0 {
        return "the data holds no REST depth snapshot, so the L2 book never syncs and the \
                engine never quotes (a top-of-book mode is not built; record with a snapshot)"
            .to_string();
    }
    if run.engine_stats.snapshots == 0 || run.engine_stats.gaps > 0 {
        return format!(
            "the depth diffs never chain onto the snapshot ({} gaps, {} snapshots loaded): \
             USD-M futures chain diffs by pu, which the spot book does not follow yet",
            run.engine_stats.gaps, run.engine_stats.snapshots
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
        recording: recording.name,
        fee_bps: fee,
        fold,
        minutes,
        choice: choice.clone(),
        money: Money::default(),
        fills: 0,
        orders: 0,
        kpis_met: None,
        kpi_text: Vec::new(),
        sharpe_1m: None,
    };
    let Choice::Trade { settings, .. } = &choice else {
        return Ok(score);
    };
    let sets: Vec<String> = base_sets
        .iter()
        .cloned()
        .chain(std::iter::once(fee_set.to_string()))
        .chain(settings.iter().cloned())
        .collect();
    let config = make_config(&sets).map_err(|e| anyhow::anyhow!("{e}"))?;
    let run = simulate(&config, tape, None)?;
    score.money = Money::of(&run);
    score.fills = run.fills.len() as u64;
    score.orders = run.order_stats.orders_placed;
    score.kpis_met = Some(run.kpi.targets_met());
    score.kpi_text = KpiKind::ALL
        .iter()
        .map(
            |kind| match run.kpi.kpi(*kind).and_then(|s| s.value.map(|v| (v, s.met))) {
                Some((value, met)) => {
                    format!(
                        "{} {value:.3}{}",
                        kind.name(),
                        if met { " ✓" } else { " ✗" }
                    )
                }
                None => format!("{} n/a", kind.name()),
            },
        )
        .collect();
    score.sharpe_1m = minute_stats(&run.samples).sharpe;
    Ok(score)
}

fn quote(atoms: i64) -> f64 {
    atoms as f64 / 1e8
}

/// The progress line of one scored fold (the table has the details).
fn row_text(s: &FoldScore) -> String {
    let what = match &s.choice {
        Choice::Trade { .. } => format!(
            "net {:+.4}, spread {:+.4}, {} fills",
            quote(s.money.net_atoms),
            quote(s.money.spread_atoms),
            s.fills
        ),
        Choice::StandAside(why) => format!("stood aside: {why}"),
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
        let _ = writeln!(
            t,
            "| {} | {:+} | {} ({:.0} min) | {:+.4} | {:+.4} | {:+.4} | {:.4} | {} | {} | {} | {} | \
             {chosen} |",
            s.recording,
            s.fee_bps,
            s.fold,
            s.minutes,
            quote(s.money.net_atoms),
            quote(s.money.spread_atoms),
            quote(s.money.inventory_atoms),
            quote(s.money.fees_atoms),
            s.fills,
            s.orders,
            match s.kpis_met {
                Some(n) => format!("{n}/6 ({})", s.kpi_text.join(", ")),
                None => "n/a".to_string(),
            },
            s.sharpe_1m
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

/// Saturating i128 → i64.
fn saturate(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
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
