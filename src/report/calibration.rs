//! The calibration report folder, `<out>/<UTC time>_<SYMBOL>_calibration/`:
//!
//! | file | what |
//! | --- | --- |
//! | `summary.md` | for a human: data, windows, estimates, chosen point, in-sample vs out-of-sample |
//! | `summary.json` | the same for scripts |
//! | `estimates.json` | every estimate on the fit window with its points, and the two halves' headline estimates |
//! | `sigma_signature.svg` | σ against the sampling interval |
//! | `intensity_fit.svg` | λ(δ) against depth (log scale) with the fitted A·e^(−kδ) |
//! | `ofi_impact.svg` | mid change against OFI (raw and normalised) with the fitted lines |
//! | `objective_heatmap.svg` | the objective over the first two grid axes (best over the others) |
//! | `grid.csv` | every grid point on the choose window (the row layout the shards use) |
//! | `calibrated.toml` | a copy of the file written to the config folder |
//!
//! Owns: these layouts and plots. Plots use plotters' SVG backend as `report::backtest` does
//! (text as SVG `<text>`, no font files). Cold path: allocates, formats and writes files;
//! reads the clock only for the folder name (`time::wall_now_ns`).

use std::fmt::Write as _;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Serialize;

use crate::backtest::GridAxis;
use crate::calibration::calibrated::{render, write_atomically};
use crate::calibration::estimators::{IntensityFit, OfiFit};
use crate::calibration::pipeline::{calibrated_header, Evaluation, Fit, HeaderFacts, RunFigures};
use crate::calibration::search::Row;
use crate::calibration::search::{self, Windows};
use crate::calibration::{Estimates, SigmaEstimate, Stability};
use crate::config::Config;
use crate::replay::Tape;
use crate::telemetry::kpi::{KpiKind, KpiStatus};
use crate::time::{utc_text, Clock};

/// Version of the `summary.json` / `estimates.json` layouts.
pub const REPORT_VERSION: u32 = 1;

/// One window's span.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Span {
    /// First instant, UTC.
    pub start_utc: String,
    /// End, UTC.
    pub end_utc: String,
    /// Length, s.
    pub span_s: f64,
}

impl Span {
    /// The span `[start_ns, end_ns)`.
    pub fn of(start_ns: u64, end_ns: u64) -> Span {
        Span {
            start_utc: utc_text(start_ns),
            end_utc: utc_text(end_ns),
            span_s: end_ns.saturating_sub(start_ns) as f64 / 1e9,
        }
    }
}

/// What `summary.json` holds.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// `REPORT_VERSION`.
    pub version: u32,
    /// Always "calibration".
    pub mode: &'static str,
    /// The symbol.
    pub symbol: String,
    /// When the run was made, UTC.
    pub generated_utc: String,
    /// Input files.
    pub sources: Vec<String>,
    /// Events decoded.
    pub events: u64,
    /// The whole data.
    pub data: Span,
    /// The fit part (estimators).
    pub fit: Span,
    /// The choose part (grid, in-sample).
    pub choose: Span,
    /// The held-out part (out-of-sample).
    pub held_out: Span,
    /// σ written, bps/√s (fitted on the fit part).
    pub sigma_bps_per_sqrt_s: f64,
    /// k written, 1/bps (fitted on the fit part).
    pub k_per_bps: f64,
    /// The objective's name and weights.
    pub objective: String,
    /// Grid axes.
    pub axes: Vec<GridAxis>,
    /// Grid points run.
    pub grid_points: usize,
    /// The chosen point's grid index.
    pub chosen_index: usize,
    /// The chosen point's settings.
    pub chosen: Vec<String>,
    /// Everything written to calibrated.toml (`section.key=value`).
    pub written: Vec<String>,
    /// The chosen point on the choose window: in-sample.
    pub in_sample: RunFigures,
    /// The chosen point on the held-out window: out-of-sample.
    pub out_of_sample: RunFigures,
    /// The configuration as it was before this calibration, on the choose window.
    pub before_in_sample: RunFigures,
    /// The same on the held-out window.
    pub before_out_of_sample: RunFigures,
    /// Fingerprint of data + settings (shards carry it).
    pub fingerprint: String,
    /// Where calibrated.toml was written.
    pub calibrated_path: String,
    /// Things to know when reading the numbers.
    pub notes: Vec<String>,
    /// Wall time of the whole run, s (not deterministic).
    pub wall_s: f64,
}

/// What `estimates.json` holds.
#[derive(Clone, Debug, Serialize)]
pub struct EstimatesFile<'a> {
    /// `REPORT_VERSION`.
    pub version: u32,
    /// The estimates on the fit window (these are written to calibrated.toml).
    pub fit: &'a Estimates,
    /// The headline estimates of the first and second half of the whole data.
    pub halves: Option<&'a Stability>,
    /// Why the halves could not be compared, if they could not.
    pub halves_note: Option<String>,
}

/// Everything the folder is made from.
pub struct ReportInput<'a> {
    /// summary.json's content.
    pub summary: &'a Summary,
    /// Estimates on the fit window.
    pub estimates: &'a Estimates,
    /// Halves comparison.
    pub halves: Result<&'a Stability, String>,
    /// Grid rows on the choose window.
    pub rows: &'a [Row],
    /// The shards' row layout text (grid.csv).
    pub grid_csv: &'a str,
    /// calibrated.toml's text.
    pub calibrated_toml: &'a str,
}

/// Writes every file of the report into `folder` (made by `create_folder`).
pub fn write_folder(folder: &Path, input: &ReportInput<'_>) -> anyhow::Result<()> {
    let estimates = EstimatesFile {
        version: REPORT_VERSION,
        fit: input.estimates,
        halves: input.halves.as_ref().ok().copied(),
        halves_note: input.halves.as_ref().err().cloned(),
    };
    let json = serde_json::to_string_pretty(&estimates).context("serialising the estimates")?;
    write(&folder.join("estimates.json"), &format!("{json}\n"))?;
    let json = serde_json::to_string_pretty(input.summary).context("serialising the summary")?;
    write(&folder.join("summary.json"), &format!("{json}\n"))?;
    write(&folder.join("grid.csv"), input.grid_csv)?;
    write(&folder.join("calibrated.toml"), input.calibrated_toml)?;
    plot_signature(&folder.join("sigma_signature.svg"), &input.estimates.sigma)?;
    plot_intensity(
        &folder.join("intensity_fit.svg"),
        &input.estimates.intensity,
    )?;
    plot_ofi(&folder.join("ofi_impact.svg"), &input.estimates.ofi)?;
    plot_heatmap(
        &folder.join("objective_heatmap.svg"),
        &input.summary.axes,
        input.rows,
        input.summary.chosen_index,
    )?;
    write(&folder.join("summary.md"), &summary_md(input))?;
    Ok(())
}

/// The human-readable page.
pub fn summary_md(input: &ReportInput<'_>) -> String {
    let s = input.summary;
    let e = input.estimates;
    let mut t = String::new();
    let _ = writeln!(t, "# Calibration of {} — {}\n", s.symbol, s.generated_utc);
    let _ = writeln!(
        t,
        "Data: {} ({} events, {} → {}, {:.1} min).\n",
        s.sources.join(", "),
        s.events,
        s.data.start_utc,
        s.data.end_utc,
        s.data.span_s / 60.0
    );
    let _ = writeln!(t, "| part | from | to | length | used for |");
    let _ = writeln!(t, "| --- | --- | --- | --- | --- |");
    for (name, span, use_) in [
        ("fit", &s.fit, "σ, k, OFI β estimates"),
        (
            "choose",
            &s.choose,
            "every grid point backtested; best picked (in-sample)",
        ),
        (
            "held out",
            &s.held_out,
            "the chosen point alone (out-of-sample)",
        ),
    ] {
        let _ = writeln!(
            t,
            "| {name} | {} | {} | {:.1} min | {use_} |",
            span.start_utc,
            span.end_utc,
            span.span_s / 60.0
        );
    }

    let _ = writeln!(t, "\n## Estimates (fit part)\n");
    let _ = writeln!(
        t,
        "- **σ = {:.4} bps/√s** at {} s sampling (mean mid {:.2}; 1 bps = {:.1} ticks). \
         Signature: {}. See `sigma_signature.svg`.",
        e.sigma.bps_per_sqrt_s,
        e.sigma.interval_s,
        e.mid_mean_quote,
        e.ticks_per_bps,
        e.sigma
            .signature
            .iter()
            .map(|p| format!("{} s → {:.3}", p.interval_s, p.sigma_bps_per_sqrt_s))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(noise) = &e.sigma.noise {
        let _ = writeln!(t, "  Reading: {}.", noise.verdict);
    }
    let i = &e.intensity;
    let _ = writeln!(
        t,
        "- **k = {:.4} /bps** ({:.3e} /tick), A = {:.3} /s per side, R² = {:.3} over {} of {} \
         depths ({} market orders from {} trades; depth measured from the mid at the start \
         of each {} s interval). See `intensity_fit.svg`.",
        i.k_per_bps,
        i.k_per_tick,
        i.a_per_s,
        i.r_squared,
        i.points.iter().filter(|p| p.in_fit).count(),
        i.points.len(),
        e.market_orders,
        e.trades,
        e.intensity_interval_s
    );
    let o = &e.ofi;
    let _ = writeln!(
        t,
        "- **OFI impact** over {} windows of {} s (Cont, Kukanov & Stoikov 2014): raw β = \
         {:.3e} ticks/lot, R² = {:.3}; normalised (as the engine uses it) β = {:.2} ticks per \
         unit, R² = {:.3} ({:.0} % of windows at the ±1 clamp). One window ahead: β = {:.2}, \
         R² = {:.3}. See `ofi_impact.svg`.",
        o.points.len(),
        o.window_s,
        o.raw.slope,
        o.raw.r_squared,
        o.normalised.slope,
        o.normalised.r_squared,
        o.saturated_fraction * 100.0,
        o.predictive.slope,
        o.predictive.r_squared
    );
    let _ = writeln!(t, "- **Feed latency**: {}.", e.feed_latency.note);
    for (name, stats) in [
        ("depth", &e.feed_latency.depth),
        ("trade", &e.feed_latency.trade),
        ("bookTicker", &e.feed_latency.book_ticker),
    ] {
        if let Some(s) = stats {
            let _ = writeln!(
                t,
                "  {name}: {} events, min {:.1} ms, p1 {:.1}, median {:.1}, p99 {:.1}, max {:.1} \
                 (p99 − p1 = {:.1} ms).",
                s.samples, s.min_ms, s.p1_ms, s.p50_ms, s.p99_ms, s.max_ms, s.jitter_ms
            );
        }
    }
    match &input.halves {
        Ok(h) => {
            let _ = writeln!(
                t,
                "- Stability, first vs second half of the data: σ {:.3} vs {:.3} ({:.0} %), k \
                 {:.3} vs {:.3} ({:.0} %), OFI β {:.1} vs {:.1} ({:.0} %).",
                h.first_half.sigma_bps_per_sqrt_s,
                h.second_half.sigma_bps_per_sqrt_s,
                h.relative_difference.sigma_bps_per_sqrt_s * 100.0,
                h.first_half.k_per_bps,
                h.second_half.k_per_bps,
                h.relative_difference.k_per_bps * 100.0,
                h.first_half.ofi_beta_ticks,
                h.second_half.ofi_beta_ticks,
                h.relative_difference.ofi_beta_ticks * 100.0
            );
        }
        Err(why) => {
            let _ = writeln!(t, "- Stability across halves: not available ({why}).");
        }
    }

    let _ = writeln!(t, "\n## Search (choose part)\n");
    let _ = writeln!(
        t,
        "{} grid points over {}; objective: {}. Each point is a full backtest with σ = {} and \
         k = {} from the fit. Best: **{}** (grid point {}). See `grid.csv` and \
         `objective_heatmap.svg`.\n",
        s.grid_points,
        s.axes
            .iter()
            .map(|a| format!("{} ∈ {{{}}}", a.key, a.values.join(", ")))
            .collect::<Vec<_>>()
            .join(" × "),
        s.objective,
        s.sigma_bps_per_sqrt_s,
        s.k_per_bps,
        s.chosen.join(", "),
        s.chosen_index
    );

    let _ = writeln!(t, "## In-sample vs out-of-sample\n");
    let _ = writeln!(
        t,
        "The chosen point was picked on the choose part, so its figures there flatter it; the \
         held-out part is data it has never seen. \"Before\" is the configuration as it was \
         before this calibration (defaults and any earlier calibrated.toml) on the same \
         windows.\n"
    );
    let _ = writeln!(
        t,
        "| | chosen, choose part (in-sample) | chosen, held out (out-of-sample) | before, choose \
         part | before, held out |"
    );
    let _ = writeln!(t, "| --- | --- | --- | --- | --- |");
    let runs = [
        &s.in_sample,
        &s.out_of_sample,
        &s.before_in_sample,
        &s.before_out_of_sample,
    ];
    let row = |t: &mut String, name: &str, f: &dyn Fn(&RunFigures) -> String| {
        let cells: Vec<String> = runs.iter().map(|r| f(r)).collect();
        let _ = writeln!(t, "| {name} | {} |", cells.join(" | "));
    };
    row(&mut t, "objective", &|r| format!("{:.4}", r.objective));
    row(&mut t, "PnL (quote)", &|r| format!("{:.4}", r.pnl_quote));
    row(&mut t, "KPIs met", &|r| r.kpi_status.clone());
    for kind in KpiKind::ALL {
        row(&mut t, kind.name(), &|r| {
            r.kpis
                .iter()
                .find(|k| k.kind == kind)
                .map_or_else(|| "n/a".to_string(), kpi_cell)
        });
    }
    row(&mut t, "fills / orders", &|r| {
        format!("{} / {}", r.fills, r.orders_placed)
    });
    row(&mut t, "fees (quote)", &|r| format!("{:.4}", r.fees_quote));
    row(&mut t, "mean quoted spread (bps)", &|r| {
        r.avg_spread_bps
            .map_or_else(|| "n/a".to_string(), |v| format!("{v:.2}"))
    });

    let _ = writeln!(t, "\n## Written\n");
    let _ = writeln!(
        t,
        "`{}` (previous file kept as `.bak`; a copy is in this folder):\n",
        s.calibrated_path
    );
    for w in &s.written {
        let _ = writeln!(t, "- `{w}`");
    }
    if !s.notes.is_empty() {
        let _ = writeln!(t, "\n## Notes\n");
        for n in &s.notes {
            let _ = writeln!(t, "- {n}");
        }
    }
    t
}

fn kpi_cell(k: &KpiStatus) -> String {
    let mark = if k.met { "✅" } else { "❌" };
    match k.value {
        None => format!("{mark} n/a"),
        Some(v) => match k.kind {
            KpiKind::LatencyP99 => format!("{mark} {v:.3} ms"),
            KpiKind::TotalPnl => format!("{mark} {v:.4}"),
            KpiKind::RmsInventory => format!("{mark} {v:.3}"),
            _ => format!("{mark} {:.1} %", v * 100.0),
        },
    }
}

// -- plots ----------------------------------------------------------------------------------

fn plot_error<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing a plot: {e:?}")
}

/// σ against the sampling interval (log x), with the value written to the config.
fn plot_signature(path: &Path, sigma: &SigmaEstimate) -> anyhow::Result<()> {
    let points: Vec<(f64, f64)> = sigma
        .signature
        .iter()
        .map(|p| (p.interval_s, p.sigma_bps_per_sqrt_s))
        .collect();
    let (x_lo, x_hi) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.0), hi.max(p.0))
        });
    let (x_lo, x_hi) = if x_lo.is_finite() {
        (x_lo / 1.5, x_hi * 1.5)
    } else {
        (0.1, 10.0)
    };
    let y_hi = points
        .iter()
        .map(|p| p.1)
        .fold(sigma.bps_per_sqrt_s, f64::max)
        * 1.2;
    let root = SVGBackend::new(path, (900, 550)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "σ signature: σ(h) = √(Σr²/(n·h)) against sampling interval h; written σ = {:.3} \
                 bps/√s at h = {} s",
                sigma.bps_per_sqrt_s, sigma.interval_s
            ),
            ("sans-serif", 15),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((x_lo..x_hi).log_scale(), 0.0..y_hi.max(1e-9))
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("sampling interval h, s (log scale)")
        .y_desc("σ, bps of mid per √s")
        .draw()
        .map_err(plot_error)?;
    let grey = RGBColor(150, 150, 150);
    chart
        .draw_series(LineSeries::new(
            vec![(x_lo, sigma.bps_per_sqrt_s), (x_hi, sigma.bps_per_sqrt_s)],
            grey.stroke_width(1),
        ))
        .map_err(plot_error)?
        .label("written σ")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey));
    chart
        .draw_series(LineSeries::new(points.clone(), BLUE.stroke_width(2)))
        .map_err(plot_error)?
        .label("σ(h), averaged over start offsets")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .draw_series(points.iter().map(|p| Circle::new(*p, 4, BLUE.filled())))
        .map_err(plot_error)?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

/// λ(δ) against δ (bps) on a log y axis, the points in and out of the fit, the fitted curve.
fn plot_intensity(path: &Path, fit: &IntensityFit) -> anyhow::Result<()> {
    let positive: Vec<&_> = fit.points.iter().filter(|p| p.rate_per_s > 0.0).collect();
    let x_hi = fit
        .points
        .iter()
        .map(|p| p.depth_bps)
        .fold(0.0, f64::max)
        .max(1e-6)
        * 1.05;
    let (mut y_lo, mut y_hi) = positive
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.rate_per_s), hi.max(p.rate_per_s))
        });
    y_lo = y_lo.min(fit.a_per_s * (-fit.k_per_bps * x_hi).exp());
    y_hi = y_hi.max(fit.a_per_s);
    if !crate::calibration::estimators::positive(y_lo) {
        y_lo = 1e-4;
    }
    if !y_hi.is_finite() || y_hi <= y_lo {
        y_hi = y_lo * 10.0;
    }
    let root = SVGBackend::new(path, (900, 550)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Trade intensity λ(δ) = A·e^(−kδ): A = {:.3} /s per side, k = {:.3} /bps, R² = {:.3}",
                fit.a_per_s, fit.k_per_bps, fit.r_squared
            ),
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_hi, (y_lo / 1.5..y_hi * 1.5).log_scale())
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("depth δ from the mid, bps")
        .y_desc("market orders reaching δ, per second per side (log)")
        .draw()
        .map_err(plot_error)?;
    let curve: Vec<(f64, f64)> = (0..=100)
        .map(|i| {
            let x = x_hi * f64::from(i) / 100.0;
            (x, fit.a_per_s * (-fit.k_per_bps * x).exp())
        })
        .collect();
    chart
        .draw_series(LineSeries::new(curve, RED.stroke_width(2)))
        .map_err(plot_error)?
        .label("fit A·e^(−kδ)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    chart
        .draw_series(
            positive
                .iter()
                .filter(|p| p.in_fit)
                .map(|p| Circle::new((p.depth_bps, p.rate_per_s), 4, BLUE.filled())),
        )
        .map_err(plot_error)?
        .label("measured (in the fit)")
        .legend(|(x, y)| Circle::new((x + 10, y), 4, BLUE.filled()));
    chart
        .draw_series(
            positive
                .iter()
                .filter(|p| !p.in_fit)
                .map(|p| Circle::new((p.depth_bps, p.rate_per_s), 4, BLUE.stroke_width(1))),
        )
        .map_err(plot_error)?
        .label("measured (too few orders, left out)")
        .legend(|(x, y)| Circle::new((x + 10, y), 4, BLUE.stroke_width(1)));
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

/// Δmid against raw OFI (left) and normalised OFI (right), each with its fitted line.
fn plot_ofi(path: &Path, ofi: &OfiFit) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (1200, 550)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let (left, right) = root.split_horizontally(600);
    let dmid: Vec<f64> = ofi.points.iter().map(|p| p.dmid_ticks).collect();
    let panels = [
        (
            &left,
            ofi.points.iter().map(|p| p.ofi_lots).collect::<Vec<f64>>(),
            ofi.raw,
            "raw OFI, lots",
            format!(
                "Δmid on raw OFI: β = {:.3e} ticks/lot, R² = {:.3}",
                ofi.raw.slope, ofi.raw.r_squared
            ),
        ),
        (
            &right,
            ofi.points
                .iter()
                .map(|p| p.ofi_normalised)
                .collect::<Vec<f64>>(),
            ofi.normalised,
            "normalised OFI (OFI / touch depth, clamped to ±1)",
            format!(
                "Δmid on normalised OFI: β = {:.2} ticks, R² = {:.3}",
                ofi.normalised.slope, ofi.normalised.r_squared
            ),
        ),
    ];
    let (y_lo, y_hi) = padded_range(dmid.iter().copied());
    for (area, xs, line, x_desc, caption) in panels {
        let (x_lo, x_hi) = padded_range(xs.iter().copied());
        let mut chart = ChartBuilder::on(area)
            .caption(caption, ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(format!("mid change over {} s, ticks", ofi.window_s))
            .draw()
            .map_err(plot_error)?;
        chart
            .draw_series(
                xs.iter()
                    .zip(&dmid)
                    .map(|(x, y)| Circle::new((*x, *y), 2, BLUE.mix(0.4).filled())),
            )
            .map_err(plot_error)?;
        chart
            .draw_series(LineSeries::new(
                vec![
                    (x_lo, line.intercept + line.slope * x_lo),
                    (x_hi, line.intercept + line.slope * x_hi),
                ],
                RED.stroke_width(2),
            ))
            .map_err(plot_error)?;
    }
    root.present().map_err(plot_error)?;
    Ok(())
}

/// The objective over the first two axes (a single row with one axis); each cell is the
/// best over the remaining axes; the chosen cell is outlined.
fn plot_heatmap(path: &Path, axes: &[GridAxis], rows: &[Row], chosen: usize) -> anyhow::Result<()> {
    let x_axis = axes.first();
    let y_axis = axes.get(1);
    let nx = x_axis.map_or(1, |a| a.values.len().max(1));
    let ny = y_axis.map_or(1, |a| a.values.len().max(1));
    let value_of = |row: &Row, axis: Option<&GridAxis>, at: usize| -> usize {
        let Some(axis) = axis else { return 0 };
        let text = row
            .grid
            .settings
            .get(at)
            .and_then(|s| s.split_once('='))
            .map(|(_, v)| v);
        axis.values
            .iter()
            .position(|v| Some(v.as_str()) == text)
            .unwrap_or(0)
    };
    let mut cells: Vec<Option<f64>> = vec![None; nx * ny];
    let mut chosen_cell = None;
    for row in rows {
        let (i, j) = (value_of(row, x_axis, 0), value_of(row, y_axis, 1));
        let cell = &mut cells[j * nx + i];
        if !row.objective.is_nan() && cell.is_none_or(|c| row.objective > c) {
            *cell = Some(row.objective);
        }
        if row.index == chosen {
            chosen_cell = Some((i, j));
        }
    }
    let (lo, hi) = cells
        .iter()
        .flatten()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(*v), hi.max(*v))
        });
    let rest: Vec<&str> = axes.iter().skip(2).map(|a| a.key.as_str()).collect();
    let root = SVGBackend::new(path, (1000, 650)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            if rest.is_empty() {
                "Objective on the choose window (quote currency); chosen point outlined".to_string()
            } else {
                format!(
                    "Objective on the choose window (quote), best over {}; chosen outlined",
                    rest.join(", ")
                )
            },
            ("sans-serif", 16),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..nx as f64, 0.0..ny as f64)
        .map_err(plot_error)?;
    // Cell i spans [i, i + 1]: its label sits at the key point i + 0.5 (plotters picks a
    // step of 0.5 when asked for 2n + 1 labels); other key points stay blank.
    let label = |axis: Option<&GridAxis>, v: &f64| -> String {
        let i = v - 0.5;
        match axis {
            Some(a) if (i - i.round()).abs() < 1e-6 && i >= -1e-6 => a
                .values
                .get(i.round() as usize)
                .cloned()
                .unwrap_or_default(),
            _ => String::new(),
        }
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(x_axis.map_or("", |a| a.key.as_str()))
        .y_desc(y_axis.map_or("", |a| a.key.as_str()))
        .x_labels(2 * nx + 1)
        .y_labels(2 * ny + 1)
        .x_label_formatter(&|v| label(x_axis, v))
        .y_label_formatter(&|v| label(y_axis, v))
        .draw()
        .map_err(plot_error)?;
    let centre =
        TextStyle::from(("sans-serif", 14).into_font()).pos(Pos::new(HPos::Center, VPos::Center));
    for j in 0..ny {
        for i in 0..nx {
            let (x, y) = (i as f64, j as f64);
            let corners = [(x, y), (x + 1.0, y + 1.0)];
            let value = cells[j * nx + i];
            let color = value.map_or(RGBColor(230, 230, 230), |v| heat_color(v, lo, hi));
            chart
                .draw_series(std::iter::once(Rectangle::new(corners, color.filled())))
                .map_err(plot_error)?;
            if chosen_cell == Some((i, j)) {
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        corners,
                        BLACK.stroke_width(4),
                    )))
                    .map_err(plot_error)?;
            }
            let text = value.map_or_else(|| "n/a".to_string(), |v| format!("{v:.4}"));
            chart
                .draw_series(std::iter::once(Text::new(
                    text,
                    (x + 0.5, y + 0.5),
                    centre.clone(),
                )))
                .map_err(plot_error)?;
        }
    }
    root.present().map_err(plot_error)?;
    Ok(())
}

/// Red (worst) → yellow → green (best).
fn heat_color(v: f64, lo: f64, hi: f64) -> RGBColor {
    let f = if hi > lo {
        ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
    } else {
        1.0
    };
    let (r, g) = if f < 0.5 {
        (230.0, 80.0 + 320.0 * f)
    } else {
        (230.0 - 330.0 * (f - 0.5), 240.0)
    };
    RGBColor(r.clamp(0.0, 255.0) as u8, g.clamp(0.0, 255.0) as u8, 90)
}

fn padded_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (-1.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(hi.abs().max(1.0) * 1e-6);
    (lo - pad, hi + pad)
}

// -- files ----------------------------------------------------------------------------------

/// Creates `root/<UTC now>_<SYMBOL>_calibration/`, adding `-2`, `-3`, … if it exists.
pub fn create_folder(root: &Path, symbol: &str) -> anyhow::Result<PathBuf> {
    crate::report::backtest::new_run_folder(root, symbol, "_calibration")
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// The fitted values on the console (σ and its signature, k and A, OFI impact, the feed
/// latency, the two halves).
pub fn print_estimates(
    out: &mut dyn Write,
    e: &Estimates,
    halves: &Result<Stability, String>,
) -> anyhow::Result<()> {
    writeln!(
        out,
        "sigma = {:.4} bps/√s at {} s; signature: {}",
        e.sigma.bps_per_sqrt_s,
        e.sigma.interval_s,
        e.sigma
            .signature
            .iter()
            .map(|p| format!("{} s {:.3}", p.interval_s, p.sigma_bps_per_sqrt_s))
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    if let Some(noise) = &e.sigma.noise {
        writeln!(out, "  {}", noise.verdict)?;
    }
    let i = &e.intensity;
    writeln!(
        out,
        "k = {:.4} /bps, A = {:.3} /s per side, R² = {:.3} ({} of {} depths in the fit, {} market \
         orders)",
        i.k_per_bps,
        i.a_per_s,
        i.r_squared,
        i.points.iter().filter(|p| p.in_fit).count(),
        i.points.len(),
        e.market_orders
    )?;
    let o = &e.ofi;
    writeln!(
        out,
        "OFI impact ({} s windows): β = {:.2} ticks per unit normalised OFI (R² {:.3}), raw β = \
         {:.3e} ticks/lot (R² {:.3}); one window ahead R² {:.3}",
        o.window_s,
        o.normalised.slope,
        o.normalised.r_squared,
        o.raw.slope,
        o.raw.r_squared,
        o.predictive.r_squared
    )?;
    writeln!(out, "feed latency: {}", e.feed_latency.note)?;
    match halves {
        Ok(h) => writeln!(
            out,
            "halves: sigma {:.3} / {:.3}, k {:.3} / {:.3}, OFI β {:.1} / {:.1}",
            h.first_half.sigma_bps_per_sqrt_s,
            h.second_half.sigma_bps_per_sqrt_s,
            h.first_half.k_per_bps,
            h.second_half.k_per_bps,
            h.first_half.ofi_beta_ticks,
            h.second_half.ofi_beta_ticks
        )?,
        Err(why) => writeln!(out, "halves: not comparable ({why})")?,
    }
    Ok(())
}

/// The chosen point on the console: in-sample, out-of-sample and before calibration.
pub fn print_choice(out: &mut dyn Write, s: &Summary) -> anyhow::Result<()> {
    writeln!(
        out,
        "chosen: {} (grid point {} of {}; objective {})",
        s.chosen.join(" "),
        s.chosen_index,
        s.grid_points,
        s.objective
    )?;
    writeln!(
        out,
        "{:<18} {:>14} {:>14} {:>14} {:>14}",
        "", "in-sample", "out-of-sample", "before/choose", "before/held"
    )?;
    let runs = [
        &s.in_sample,
        &s.out_of_sample,
        &s.before_in_sample,
        &s.before_out_of_sample,
    ];
    let line = |out: &mut dyn Write, name: &str, f: &dyn Fn(&RunFigures) -> String| {
        let cells: Vec<String> = runs.iter().map(|r| format!("{:>14}", f(r))).collect();
        writeln!(out, "{name:<18} {}", cells.join(" "))
    };
    line(out, "objective", &|r| format!("{:.4}", r.objective))?;
    line(out, "PnL", &|r| format!("{:.4}", r.pnl_quote))?;
    line(out, "  spread (net fee)", &|r| {
        format!("{:.4}", r.spread_pnl_quote)
    })?;
    line(out, "  inventory", &|r| {
        format!("{:.4}", r.inventory_pnl_quote)
    })?;
    line(out, "KPIs met", &|r| r.kpi_status.clone())?;
    for kind in KpiKind::ALL {
        line(out, kind.name(), &|r| {
            r.kpis
                .iter()
                .find(|k| k.kind == kind)
                .and_then(|k| k.value)
                .map_or_else(
                    || "n/a".to_string(),
                    |v| match kind {
                        KpiKind::SpreadCaptured | KpiKind::FillRatio | KpiKind::CancelRatio => {
                            format!("{:.1}%", v * 100.0)
                        }
                        _ => format!("{v:.4}"),
                    },
                )
        })?;
    }
    line(out, "fills/orders", &|r| {
        format!("{}/{}", r.fills, r.orders_placed)
    })?;
    Ok(())
}

// -- the run's files ------------------------------------------------------------------------

/// What `write_files` writes about.
pub struct Outputs<'a> {
    /// The configuration calibrated.
    pub config: &'a Config,
    /// The whole data.
    pub tape: &'a Tape,
    /// Its walk-forward split.
    pub windows: &'a Windows,
    /// The fit.
    pub fit: &'a Fit,
    /// The grid's axes.
    pub axes: &'a [GridAxis],
    /// Points on the grid.
    pub grid_points: usize,
    /// Every grid row.
    pub rows: &'a [Row],
    /// The rows' fingerprint (`run_fingerprint`).
    pub fingerprint: &'a str,
    /// The chosen point and its runs.
    pub evaluation: &'a Evaluation,
    /// Where the report folder goes.
    pub reports_root: &'a Path,
    /// The calibrated.toml to write.
    pub calibrated_out: &'a Path,
}

/// Writes the report folder, then (only once everything else is written) calibrated.toml.
/// Returns the folder and the summary written; `wall` times the run for the summary.
pub fn write_files(o: &Outputs<'_>, wall: &dyn Clock) -> anyhow::Result<(PathBuf, Summary)> {
    let cal = &o.config.calibration;
    let config = o.config;
    let fit = o.fit;
    let e = o.evaluation;
    let windows = o.windows;
    let folder = create_folder(o.reports_root, config.spec.symbol.as_str())?;
    let generated_utc = utc_text(crate::time::wall_now_ns());
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
        tape: o.tape,
        windows,
        estimates: &fit.estimates,
        sigma: fit.sigma,
        k: fit.k,
        objective: &objective_text,
        chosen: &e.chosen,
        combos: o.grid_points,
        in_sample: &e.in_sample,
        out_of_sample: &e.out_of_sample,
        warnings: &e.warnings,
        folder: &folder,
    });
    let toml_text = render(&header, &e.written_sets)?;
    let mut summary = Summary {
        version: REPORT_VERSION,
        mode: "calibration",
        symbol: config.spec.symbol.as_str().to_string(),
        generated_utc,
        sources: o.tape.sources().to_vec(),
        events: o.tape.stats().events,
        data: Span::of(windows.start_ns, windows.end_ns),
        fit: Span::of(windows.start_ns, windows.fit_end_ns),
        choose: Span::of(windows.fit_end_ns, windows.choose_end_ns),
        held_out: Span::of(windows.choose_end_ns, windows.end_ns),
        sigma_bps_per_sqrt_s: fit.sigma,
        k_per_bps: fit.k,
        objective: objective_text,
        axes: o.axes.to_vec(),
        grid_points: o.grid_points,
        chosen_index: e.chosen.index,
        chosen: e.chosen.grid.settings.clone(),
        written: e.written_sets.clone(),
        in_sample: e.in_sample.clone(),
        out_of_sample: e.out_of_sample.clone(),
        before_in_sample: e.before_in.clone(),
        before_out_of_sample: e.before_out.clone(),
        fingerprint: o.fingerprint.to_string(),
        calibrated_path: o.calibrated_out.display().to_string(),
        notes: e.notes.clone(),
        wall_s: 0.0,
    };
    summary.wall_s = wall.mono_ns() as f64 / 1e9;
    let grid_csv = search::rows_csv(o.fingerprint, o.axes, o.rows);
    // The report first: calibrated.toml (which every later run loads) is replaced only
    // once everything else is written.
    write_folder(
        &folder,
        &ReportInput {
            summary: &summary,
            estimates: &fit.estimates,
            halves: fit.halves.as_ref().map_err(Clone::clone),
            rows: o.rows,
            grid_csv: &grid_csv,
            calibrated_toml: &toml_text,
        },
    )?;
    write_atomically(o.calibrated_out, toml_text.as_bytes(), true)
        .with_context(|| format!("writing {}", o.calibrated_out.display()))?;
    Ok((folder, summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heat_colours_run_from_red_to_green() {
        assert_eq!(heat_color(0.0, 0.0, 1.0), RGBColor(230, 80, 90));
        let best = heat_color(1.0, 0.0, 1.0);
        assert!(best.1 > best.0);
        assert_eq!(heat_color(5.0, 5.0, 5.0), best, "a flat grid is all 'best'");
    }
}
