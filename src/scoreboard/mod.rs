//! The scoreboard: the strategy held to what a market maker is judged by — money net of
//! fees on data its parameters were not chosen on — over every recording in the shared data
//! folder, at four maker-fee tiers, in one table.
//!
//! Owns: the list of recordings and their market settings (`recordings::RECORDINGS`),
//! the walk-forward (anchored: fold i is scored with the grid point chosen on everything
//! before it) and the choice rule (`choose`); the table is `report::scoreboard`'s. The objective and the money split are
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
//! Cold path: allocates, runs backtests. Never touches the hot path's code other than
//! through `backtest::simulate`; never prints or writes files; never imports a mode.

pub mod recordings;

use std::path::Path;

use anyhow::Context;
use rayon::prelude::*;

use crate::backtest::verdict::no_trading_reason;
use crate::backtest::{simulate, GridAxis, Scorecard};
use crate::calibration::objective::{objective, MIN_FILLS_TO_CHOOSE};
use crate::config::{Config, ConfigError};
use crate::replay::{self, Tape};

pub use recordings::{Recording, SharedRecording, RECORDINGS};

/// Maker-fee tiers scored, bps: Binance spot regular, with BNB, the liquidity-provider
/// tier 1, a market-maker programme rebate (../shared/STRATEGY.md).
pub const FEE_TIERS_BPS: [f64; 4] = [10.0, 7.5, 0.0, -0.5];

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
        axis("quoting.microprice_weight", &["0", "1"]),
    ]
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
    /// Why the fold's figures do not describe the strategy, when its L2 book was out of
    /// sync too long (`backtest::book_health::not_representative`).
    pub not_representative: Option<String>,
}

/// A recording that could not be traded, and why.
#[derive(Clone, Debug)]
pub struct Untradeable {
    /// Recording name.
    pub recording: String,
    /// Why, in words.
    pub reason: String,
}

/// Why the engine cannot trade this tape with its base settings, if it cannot: it placed no
/// order on the whole tape, or its book lost sync for good (a gap the data never heals) and
/// nothing filled.
pub fn untradeable_reason(base: &Config, tape: &Tape) -> anyhow::Result<Option<String>> {
    let run = simulate(base, tape, None)?;
    let desynced = run.engine_stats.gaps > 0 && run.fills.is_empty();
    if run.order_stats.orders_placed > 0 && !desynced {
        return Ok(None);
    }
    Ok(Some(no_trading_reason(tape, &run)))
}

#[allow(clippy::too_many_arguments)]
pub fn score_fold(
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
        not_representative: None,
    };
    let Choice::Trade { settings, .. } = &choice else {
        return Ok(score);
    };
    let config = make_config(&point_sets(base_sets, fee_set, settings))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let run = simulate(&config, tape, None)?;
    score.card = Some(Scorecard::of(&run));
    score.not_representative = crate::backtest::book_health::not_representative(&run.engine_stats);
    Ok(score)
}

/// The `--set` flags of one grid point at one fee tier: the recording's market, the fee, the
/// point (later flags win).
pub fn point_sets(base_sets: &[String], fee_set: &str, settings: &[String]) -> Vec<String> {
    let mut sets = base_sets.to_vec();
    sets.push(fee_set.to_string());
    sets.extend(settings.iter().cloned());
    sets
}

/// What the walk-forward reports as it goes, for the console.
#[derive(Clone, Copy, Debug)]
pub enum Progress<'a> {
    /// `stop` said so before a recording: the table covers the recordings done so far.
    Stopped,
    /// A recording the engine cannot trade.
    NotTradeable(&'a Untradeable),
    /// One fold scored at one fee tier.
    Scored(&'a FoldScore),
}

/// The walk-forward over `recordings` (their `files` are paths): each recording is cut into
/// `folds` equal spans of data time; fold i ≥ 1 is scored at every fee tier with the grid
/// point (of `points`) chosen on everything before it. A missing file or a recording the
/// engine cannot trade is listed in the second vector instead. `stop` is asked before each
/// recording; `on` hears every scored fold and every untradeable recording.
pub fn walk_forward(
    recordings: &[Recording],
    folds: usize,
    points: &[Vec<String>],
    make_config: &(dyn Fn(&[String]) -> Result<Config, ConfigError> + Sync),
    stop: &dyn Fn() -> bool,
    on: &mut dyn FnMut(Progress<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<(Vec<FoldScore>, Vec<Untradeable>)> {
    let mut scores: Vec<FoldScore> = Vec::new();
    let mut untradeable: Vec<Untradeable> = Vec::new();
    for recording in recordings {
        if stop() {
            on(Progress::Stopped)?;
            break;
        }
        let paths = &recording.files;
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
        // Loaded whole (the folds are windows of one tape); `.mmt` tapes too.
        let inputs = replay::open_sources(paths, &base.spec)?;
        let tape = Tape::load_until(inputs, base.spec, u64::MAX)
            .with_context(|| recording.name.to_string())?;
        if let Some(reason) = untradeable_reason(&base, &tape)? {
            untradeable.push(Untradeable {
                recording: recording.name.clone(),
                reason,
            });
            if let Some(u) = untradeable.last() {
                on(Progress::NotTradeable(u))?;
            }
            continue;
        }
        let events = tape.events();
        let (first_ns, last_ns) = match (events.first(), events.last()) {
            (Some(a), Some(b)) => (a.local_ts_ns, b.local_ts_ns + 1),
            _ => continue,
        };
        let span = last_ns - first_ns;
        let cut = |i: usize| first_ns + (span as u128 * i as u128 / folds as u128) as u64;
        let levels = base.market_data.book_levels;
        for fold in 1..folds {
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
                on(Progress::Scored(&score))?;
                scores.push(score);
            }
        }
    }
    Ok((scores, untradeable))
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
