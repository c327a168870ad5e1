//! The calibration run's steps, in order: `prepare` (the limits the data must meet and the
//! walk-forward cut), `fit_parameters` (the estimators on the fit part, rounded to what is written),
//! `grid_axes` and `run_fingerprint` (the search, run by `search::run_points` or merged
//! from shards), `evaluate` (the chosen point and the configuration before, in and out of
//! sample) and `write_files` (the report folder, then calibrated.toml).
//! `--mode=calibration` wires them together and prints between them.
//!
//! Walk-forward windows start mid-recording, where the data has no REST snapshot: each is
//! cut with `Tape::window`, which opens it with a synthetic snapshot of the book the
//! engine would hold there (the backtest then starts as a live start with a fresh
//! snapshot would: book in sync, σ/OFI/touch cold).
//!
//! Never: prints, imports a mode, or writes anything before every backtest has run (only
//! `write_files` writes, and calibrated.toml last).

use anyhow::Context;

use serde::Serialize;

use crate::backtest::grid::{
    axes_fingerprint_parts, config_fingerprint_part, data_fingerprint_parts, fingerprint,
};
use crate::backtest::{parse_grid, simulate, GridAxis, GridRow, Replayed};
use crate::calibration::search::{best, default_axes, objective, Row, Windows, ROWS_VERSION};
use crate::calibration::series::MarketSeries;
use crate::calibration::{estimate, Estimates, EstimatorSettings, Stability};
use crate::config::{CalibrationConfig, Config, ConfigError};
use crate::replay::Tape;
use crate::telemetry::kpi::{KpiKind, KpiStatus};
use crate::time::utc_text;
use crate::types::DECIMALS;

/// Significant digits of the fitted σ and k written to calibrated.toml (and used by the
/// grid): more would claim a precision 10 minutes of data does not have.
pub const WRITTEN_DIGITS: i32 = 4;
/// Longest stretch without any event calibration accepts, ns (BTCUSDT has events every
/// few ms; the thin NEXOUSDT recording's quietest stretch is 43 s).
pub const MAX_GAP_NS: u64 = 120_000_000_000;
/// Smallest one-window-ahead R² of price change on normalised OFI for which the calibration
/// searches a non-zero OFI tilt (measured 0.03 on BTCUSDT, 0.00 on NEXOUSDT).
pub const OFI_PREDICTIVE_R2_MIN: f64 = 0.05;

/// `x` rounded to `digits` significant digits (exact decimal when printed).
pub fn round_significant(x: f64, digits: i32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let magnitude = x.abs().log10().floor() as i32;
    let places = digits - 1 - magnitude;
    if places >= 0 {
        let scale = 10f64.powi(places);
        (x * scale).round() / scale
    } else {
        let scale = 10f64.powi(-places);
        (x / scale).round() * scale
    }
}

/// Everything that shapes a grid row: the data (file names, not paths, so shards on other
/// machines agree), the windows, the fitted values, the axes and the configuration.
pub fn run_fingerprint(
    tape: &Tape,
    windows: &Windows,
    base_sets: &[String],
    axes: &[GridAxis],
    base: &Config,
) -> String {
    let mut parts = vec![format!("mm calibration rows v{}", ROWS_VERSION)];
    parts.extend(data_fingerprint_parts(tape));
    parts.push(format!("{windows:?}"));
    parts.extend(base_sets.iter().cloned());
    parts.extend(axes_fingerprint_parts(axes));
    parts.push(config_fingerprint_part(base));
    parts.push(format!("{:?}", base.calibration));
    fingerprint(&parts)
}

/// The data cut for calibration: the walk-forward windows and the choose and held-out
/// parts, each opened with a synthetic snapshot (`Tape::window`).
pub struct Prepared {
    /// The fit | choose | held-out split of the data's span.
    pub windows: Windows,
    /// The choose part.
    pub choose_tape: Tape,
    /// The held-out part.
    pub held_tape: Tape,
}

/// Checks that `tape` can be calibrated on (long enough, no hole, a synced book at the
/// start of every part) and cuts it into the walk-forward parts. Every error names the fix.
pub fn prepare(config: &Config, tape: &Tape) -> anyhow::Result<Prepared> {
    let cal = &config.calibration;
    let book_levels = config.market_data.book_levels;
    let stats = tape.stats();
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
            utc_text(at_ns),
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
                utc_text(at)
            );
        }
    }
    Ok(Prepared {
        windows,
        choose_tape,
        held_tape,
    })
}

/// What the fit part gives: the estimates, how they hold between the two halves of the
/// data, and the rounded values every backtest and the written file use.
pub struct Fit {
    /// The estimates on the fit part.
    pub estimates: Estimates,
    /// The first half against the second, or why they cannot be compared.
    pub halves: Result<Stability, String>,
    /// σ rounded to `WRITTEN_DIGITS`, bps/√s.
    pub sigma: f64,
    /// k rounded to `WRITTEN_DIGITS`, 1/bps.
    pub k: f64,
    /// The `--set` flags of the fitted σ, k and A.
    pub base_sets: Vec<String>,
    /// Whether OFI predicts the next window's mid move (`OFI_PREDICTIVE_R2_MIN`).
    pub ofi_predicts: bool,
}

/// Fits the estimators on the fit part of `tape` and, for the stability check, on each
/// half of the data.
pub fn fit_parameters(config: &Config, tape: &Tape, windows: &Windows) -> anyhow::Result<Fit> {
    let book_levels = config.market_data.book_levels;
    let settings = EstimatorSettings::from_config(config);
    let tick_quote = config.spec.tick_atoms as f64 / 10f64.powi(DECIMALS as i32);
    let fit_series =
        MarketSeries::from_tape(tape, windows.start_ns, windows.fit_end_ns, book_levels);
    let estimates = estimate(&fit_series, tick_quote, &settings)
        .map_err(|e| anyhow::anyhow!("on the fit part of the data: {e}"))?;
    let middle = windows.start_ns + (windows.end_ns - windows.start_ns) / 2;
    let halves = {
        let first = MarketSeries::from_tape(tape, windows.start_ns, middle, book_levels);
        let second = MarketSeries::from_tape(tape, middle, windows.end_ns, book_levels);
        match (
            estimate(&first, tick_quote, &settings),
            estimate(&second, tick_quote, &settings),
        ) {
            (Ok(a), Ok(b)) => Ok(Stability::between(&a, &b)),
            (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
        }
    };
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
    let ofi_predicts = estimates.ofi.predictive.r_squared >= OFI_PREDICTIVE_R2_MIN;
    Ok(Fit {
        estimates,
        halves,
        sigma,
        k,
        base_sets,
        ofi_predicts,
    })
}

/// The grid searched: `--grid` as given, else `[calibration] grid_*` with the OFI β axis
/// reduced to 0 when OFI does not predict.
pub fn grid_axes(
    cal: &CalibrationConfig,
    grid: &[String],
    ofi_predicts: bool,
) -> anyhow::Result<Vec<GridAxis>> {
    Ok(if grid.is_empty() {
        let mut axes = default_axes(cal);
        if !ofi_predicts {
            for axis in axes.iter_mut().filter(|a| a.key == "ofi.beta") {
                axis.values = vec!["0".to_string()];
            }
        }
        axes
    } else {
        grid.iter()
            .map(|a| parse_grid(a))
            .collect::<anyhow::Result<_>>()?
    })
}

/// The chosen point, run again in and out of sample beside the configuration as it was
/// before calibration, with what the report and the file say about it.
pub struct Evaluation {
    /// The grid point chosen on the choose part.
    pub chosen: Row,
    /// What calibrated.toml holds: the previous layer, the `--set` flags, then σ, k and the
    /// chosen point (later ones win).
    pub written_sets: Vec<String>,
    /// The chosen point on the choose part.
    pub in_sample: RunFigures,
    /// The chosen point on the held-out part.
    pub out_of_sample: RunFigures,
    /// The configuration before calibration on the choose part.
    pub before_in: RunFigures,
    /// The configuration before calibration on the held-out part.
    pub before_out: RunFigures,
    /// Notes for the report (the warnings included).
    pub notes: Vec<String>,
    /// Warnings a trader must see.
    pub warnings: Vec<String>,
}

/// Chooses the best row and runs it, and `config` as it is, on both parts. `cli_sets` are
/// the command line's `--set` flags (the written file carries them).
pub fn evaluate(
    config: &Config,
    prepared: &Prepared,
    fit: &Fit,
    rows: &[Row],
    cli_sets: &[String],
    make_config: &(dyn Fn(&[String]) -> Result<Config, ConfigError> + Sync),
) -> anyhow::Result<Evaluation> {
    let cal = &config.calibration;
    let Some(chosen) = best(rows).cloned() else {
        let most = rows.iter().map(|r| r.grid.fills).max().unwrap_or(0);
        let choose_min =
            (prepared.windows.choose_end_ns - prepared.windows.fit_end_ns) as f64 / 60e9;
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
    let chosen_sets: Vec<String> = fit
        .base_sets
        .iter()
        .chain(&chosen.grid.settings)
        .cloned()
        .collect();
    let chosen_config = make_config(&chosen_sets).map_err(|e| anyhow::anyhow!("{e}"))?;
    // What the file holds: everything that shaped the backtests but lives in a layer the
    // file replaces or that is not there next time — the previous calibrated.toml (when
    // loaded) and the --set flags — then σ, k and the chosen point, which win.
    let mut written_sets = previous_calibrated_sets(config)?;
    written_sets.extend(cli_sets.iter().cloned());
    written_sets.extend(chosen_sets.iter().cloned());
    let figures = |c: &Config, t: &Tape| -> anyhow::Result<RunFigures> {
        let run: Replayed = simulate(c, t, None)?;
        let value = objective(&run, &GridRow::of(&[], &run), cal);
        Ok(RunFigures::of(&run, value))
    };
    let in_sample = figures(&chosen_config, &prepared.choose_tape)?;
    let out_of_sample = figures(&chosen_config, &prepared.held_tape)?;
    let before_in = figures(config, &prepared.choose_tape)?;
    let before_out = figures(config, &prepared.held_tape)?;
    let mut notes = vec![
        format!(
            "The choose and held-out parts each start with a synthetic REST snapshot of the book \
             the engine would hold there (Tape::window); σ, OFI and the touch start cold, as at \
             a live start. σ uses the prior {} bps/√s until the online estimator has \
             {} samples.",
            fit.sigma, config.model.sigma_warmup_samples
        ),
        format!(
            "OFI β is searched on the grid, not set from the regression: the engine's tilt is \
             clamp(β·OFI, −1, +1) ticks, so a regression β of {:.1} ticks already saturates it; \
             the regression shows whether the sign of OFI is informative.",
            fit.estimates.ofi.normalised.slope
        ),
        format!("Feed latency: {}.", fit.estimates.feed_latency.note),
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
    Ok(Evaluation {
        chosen,
        written_sets,
        in_sample,
        out_of_sample,
        before_in,
        before_out,
        notes,
        warnings,
    })
}

/// One backtest of a configuration on one window, as the report shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunFigures {
    /// Objective (quote currency, see `search::objective`).
    pub objective: f64,
    /// PnL, quote currency.
    pub pnl_quote: f64,
    /// Its spread part, net of fees: Σ side·(mid at fill − price)·qty − fees, quote currency.
    pub spread_pnl_quote: f64,
    /// Its inventory part (PnL − spread part), quote currency.
    pub inventory_pnl_quote: f64,
    /// "n/6".
    pub kpi_status: String,
    /// The six KPIs.
    pub kpis: Vec<KpiStatus>,
    /// Fill events.
    pub fills: u64,
    /// Orders placed.
    pub orders_placed: u64,
    /// Fees, quote currency.
    pub fees_quote: f64,
    /// Max drawdown, quote currency.
    pub max_drawdown_quote: f64,
    /// Mean quoted spread, bps.
    pub avg_spread_bps: Option<f64>,
}

impl RunFigures {
    /// The figures of a replay; `objective` as the search computes it.
    pub fn of(run: &Replayed, objective: f64) -> RunFigures {
        let row = GridRow::of(&[], run);
        let card = crate::backtest::Scorecard::of(run);
        RunFigures {
            objective,
            pnl_quote: row.pnl_quote,
            spread_pnl_quote: card.spread_pnl_quote,
            inventory_pnl_quote: card.inventory_pnl_quote,
            kpi_status: format!("{}/{}", row.targets_met, KpiKind::ALL.len()),
            kpis: run.kpi.kpis.clone(),
            fills: row.fills,
            orders_placed: row.orders_placed,
            fees_quote: row.fees_quote,
            max_drawdown_quote: row.max_drawdown_quote,
            avg_spread_bps: run.kpi.avg_spread_bps,
        }
    }
}

/// What the header of calibrated.toml states.
pub struct HeaderFacts<'a> {
    pub generated_utc: &'a str,
    pub tape: &'a Tape,
    pub windows: &'a Windows,
    pub estimates: &'a Estimates,
    pub sigma: f64,
    pub k: f64,
    pub objective: &'a str,
    pub chosen: &'a Row,
    pub combos: usize,
    pub in_sample: &'a RunFigures,
    pub out_of_sample: &'a RunFigures,
    pub warnings: &'a [String],
    pub folder: &'a std::path::Path,
}

/// The comment header of calibrated.toml.
pub fn calibrated_header(f: &HeaderFacts<'_>) -> Vec<String> {
    let w = f.windows;
    let e = f.estimates;
    let kpis = |r: &RunFigures| -> String {
        let parts: Vec<String> = r
            .kpis
            .iter()
            .map(|k| {
                let value = k.value.map_or_else(
                    || "n/a".to_string(),
                    |v| match k.kind {
                        KpiKind::LatencyP99 => format!("{v:.3} ms"),
                        KpiKind::TotalPnl | KpiKind::RmsInventory => format!("{v:.4}"),
                        _ => format!("{:.1} %", v * 100.0),
                    },
                );
                format!(
                    "{} {value} {}",
                    k.kind.name(),
                    if k.met { "ok" } else { "MISS" }
                )
            })
            .collect();
        format!(
            "PnL {:.4} quote, {} KPI targets met, {} fills / {} orders; {}",
            r.pnl_quote,
            r.kpi_status,
            r.fills,
            r.orders_placed,
            parts.join(", ")
        )
    };
    let mut lines = vec![
        format!(
            "Written by `mm --mode=calibration` on {} (UTC). Rerun calibration rather than \
             editing by hand; the previous file is kept as calibrated.toml.bak.",
            f.generated_utc
        ),
        format!(
            "Data: {} — {} events, {} → {} ({:.1} min).",
            f.tape.sources().join(", "),
            f.tape.stats().events,
            utc_text(w.start_ns),
            utc_text(w.end_ns),
            (w.end_ns - w.start_ns) as f64 / 60e9
        ),
        format!(
            "Walk-forward: fit to {}, choose to {}, held out to the end.",
            utc_text(w.fit_end_ns),
            utc_text(w.choose_end_ns)
        ),
        format!(
            "Fitted on the fit part: sigma = {} bps/sqrt(s) at {} s sampling; k = {} /bps \
             (A = {:.3} /s per side, R^2 {:.3}); OFI impact beta = {:.1} ticks per unit of \
             normalised OFI (R^2 {:.3}).",
            f.sigma,
            e.sigma.interval_s,
            f.k,
            e.intensity.a_per_s,
            e.intensity.r_squared,
            e.ofi.normalised.slope,
            e.ofi.normalised.r_squared
        ),
        format!(
            "Chosen on the choose part (objective {}): {} — grid point {} of {}, objective {:.4}.",
            f.objective,
            f.chosen.grid.settings.join(", "),
            f.chosen.index,
            f.combos,
            f.chosen.objective
        ),
        format!("Out-of-sample (held-out part): {}.", kpis(f.out_of_sample)),
        format!("In-sample (choose part): {}.", kpis(f.in_sample)),
    ];
    lines.extend(f.warnings.iter().cloned());
    lines.push(format!("Report: {}", f.folder.display()));
    lines
}

/// The keys of the calibrated.toml layer the configuration was loaded with, as
/// `section.key=value` (empty when none was loaded).
pub fn previous_calibrated_sets(config: &Config) -> anyhow::Result<Vec<String>> {
    let Some(path) = config
        .layers
        .iter()
        .find(|l| l.ends_with(crate::config::CALIBRATED_PATH))
    else {
        return Ok(Vec::new());
    };
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let table: toml::Table = toml::from_str(&text).with_context(|| format!("parsing {path}"))?;
    let mut sets = Vec::new();
    for (section, values) in &table {
        if let toml::Value::Table(values) = values {
            for (key, value) in values {
                sets.push(format!("{section}.{key}={value}"));
            }
        }
    }
    Ok(sets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn significant_digits() {
        assert_eq!(round_significant(1.168_706, 4), 1.169);
        assert_eq!(round_significant(0.869_681, 4), 0.8697);
        assert_eq!(round_significant(12_345.0, 4), 12_350.0);
        assert_eq!(
            format!("{}", round_significant(0.000_123_456, 4)),
            "0.0001235"
        );
        assert_eq!(round_significant(0.0, 4), 0.0);
    }
}
