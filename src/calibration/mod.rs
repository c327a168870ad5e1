//! Calibration: recorded market data → model parameters a trader can trust, with the
//! evidence (`--mode=calibration`).
//!
//! Owns: the estimators (`estimators`: σ signature, trade intensity λ(δ) = A·e^(−kδ), OFI
//! price impact, feed latency — pure f64 functions over plain vectors), the series they
//! read (`series`: a window of a `Tape` → mid path, touches, trades, delays), the grid
//! search with its walk-forward split, objective and shards (`search`), the run's steps
//! from data to files (`pipeline`), and `config/calibrated.toml` (`calibrated`). The
//! report folder is `report::calibration`'s.
//!
//! Walk-forward: the data's time span is cut into fit | choose | held out
//! (`[calibration] fit_fraction`, `choose_fraction`; default 50 / 25 / 25 %). σ and k are
//! estimated on the fit part only; every grid point (γ, OFI β, τ by default) is a full
//! backtest on the choose part, with the fitted σ and k; the best point by the objective
//! is then run once on the held-out part. The choose-part figures are in-sample (the point
//! was picked on them), the held-out figures are out-of-sample.
//!
//! Units: σ in bps of mid per √s, k in 1/bps, A in 1/s per side, β in ticks per unit of
//! normalised OFI (and ticks per lot raw), latencies in ms, PnL in quote currency.
//!
//! Never: runs on the hot path, reads a clock except through `crate::time`, or writes
//! anywhere but the report folder, the shard file and the calibrated.toml path it is
//! given. Floats are fine here: nothing in this module touches an order's price or size.

pub mod calibrated;
pub mod estimators;
pub mod objective;
pub mod pipeline;
pub mod search;
pub mod series;

use serde::Serialize;

use crate::assemble::OFI_CAPACITY;
use crate::config::Config;

use estimators::{
    fit_intensity, latency_stats, market_orders, ofi_impact, order_depths_ticks, read_noise,
    sigma_signature, FitError, IntensityFit, LatencyStats, NoiseReading, OfiFit, SignaturePoint,
};
use series::MarketSeries;

/// Sampling intervals of the σ signature, seconds (the engine's `model.sigma_sample_s` is
/// added when missing).
pub const SIGMA_INTERVALS_S: [f64; 8] = [0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0];
/// Depths on the intensity grid.
pub const INTENSITY_GRID_POINTS: usize = 20;
/// Least market orders a depth needs to be in the intensity fit (ln of a count below
/// ~10 is too noisy to regress on).
pub const INTENSITY_ORDERS_MIN: u64 = 10;

/// How the estimators run.
#[derive(Clone, Debug, PartialEq)]
pub struct EstimatorSettings {
    /// σ signature intervals, seconds.
    pub sigma_intervals_s: Vec<f64>,
    /// The interval σ is taken at for the config (the engine's online estimator's), s.
    pub sigma_reference_s: f64,
    /// Trade depths are measured from the mid at the start of intervals this long, s.
    pub intensity_interval_s: f64,
    /// Depths on the intensity grid.
    pub intensity_points: usize,
    /// Least orders a depth needs to be in the fit.
    pub intensity_min_orders: u64,
    /// OFI window, s (`ofi.window_s`).
    pub ofi_window_s: f64,
    /// Touch changes the OFI window can hold.
    pub ofi_capacity: usize,
}

impl EstimatorSettings {
    /// The settings a configuration implies.
    pub fn from_config(config: &Config) -> EstimatorSettings {
        let reference = config.model.sigma_sample_s;
        let mut intervals: Vec<f64> = SIGMA_INTERVALS_S.to_vec();
        if !intervals.iter().any(|h| (h - reference).abs() < 1e-9) {
            intervals.push(reference);
            intervals.sort_by(f64::total_cmp);
        }
        EstimatorSettings {
            sigma_intervals_s: intervals,
            sigma_reference_s: reference,
            intensity_interval_s: config.calibration.intensity_interval_s,
            intensity_points: INTENSITY_GRID_POINTS,
            intensity_min_orders: INTENSITY_ORDERS_MIN,
            ofi_window_s: config.ofi.window_s,
            ofi_capacity: OFI_CAPACITY,
        }
    }
}

/// σ with its signature.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SigmaEstimate {
    /// σ at the reference interval, bps of mid per √s (`model.sigma_bps_per_sqrt_s`).
    pub bps_per_sqrt_s: f64,
    /// The reference interval, seconds.
    pub interval_s: f64,
    /// σ at every interval.
    pub signature: Vec<SignaturePoint>,
    /// What the signature says about microstructure noise.
    pub noise: Option<NoiseReading>,
}

/// Feed latency per stream, with what it means for this recording.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FeedLatencyReport {
    /// Depth diffs.
    pub depth: Option<LatencyStats>,
    /// Trades.
    pub trade: Option<LatencyStats>,
    /// bookTicker (only where the stream carries an event time).
    pub book_ticker: Option<LatencyStats>,
    /// How to read it.
    pub note: String,
}

/// Everything the estimators found on one window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Estimates {
    /// Window start (receive time), ns.
    pub start_ns: u64,
    /// Window end, ns.
    pub end_ns: u64,
    /// Window length, s.
    pub span_s: f64,
    /// Mean mid, quote currency.
    pub mid_mean_quote: f64,
    /// Ticks per bps of mid at the mean mid.
    pub ticks_per_bps: f64,
    /// Where the top of book came from.
    pub touch_source: String,
    /// Top-of-book changes.
    pub touch_changes: usize,
    /// Market trades.
    pub trades: usize,
    /// Market (taker) orders the trades group into.
    pub market_orders: usize,
    /// σ.
    pub sigma: SigmaEstimate,
    /// Trade depths are measured from the mid at the start of intervals this long, s.
    pub intensity_interval_s: f64,
    /// λ(δ) = A·e^(−kδ).
    pub intensity: IntensityFit,
    /// OFI impact.
    pub ofi: OfiFit,
    /// Feed latency.
    pub feed_latency: FeedLatencyReport,
}

/// Runs every estimator on `series`; `tick_size_quote` is the quote currency per tick.
pub fn estimate(
    series: &MarketSeries,
    tick_size_quote: f64,
    settings: &EstimatorSettings,
) -> Result<Estimates, FitError> {
    let mid_ticks = series.mean_mid_ticks().ok_or(FitError::TooFewPoints {
        what: "mid prices (top of book)",
        got: 0,
        need: 1,
        fix: "give data with the bookTicker stream (or depth diffs with a snapshot)",
    })?;
    let ticks_per_bps = mid_ticks / 1e4;

    let signature = sigma_signature(
        &series.mids,
        series.start_ns,
        series.end_ns,
        &settings.sigma_intervals_s,
    );
    let reference = signature
        .iter()
        .find(|p| (p.interval_s - settings.sigma_reference_s).abs() < 1e-9)
        .ok_or(FitError::TooFewPoints {
            what: "σ at the engine's sampling interval (model.sigma_sample_s): returns",
            got: (series.span_s() / settings.sigma_reference_s.max(1e-9)) as usize,
            need: estimators::SIGNATURE_RETURNS_MIN,
            fix: "give a longer recording (--data)",
        })?;
    let sigma = reference.sigma_bps_per_sqrt_s;
    if !estimators::positive(sigma) {
        return Err(FitError::NotUsable {
            what: "σ (bps/√s)",
            value: sigma,
            fix: "the mid never moves in this data: check the symbol and the data",
        });
    }
    let noise = read_noise(&signature, settings.sigma_reference_s);

    let orders = market_orders(&series.trades);
    let interval_ns = (settings.intensity_interval_s * 1e9).round().max(1.0) as u64;
    let depths = order_depths_ticks(&orders, &series.mids, series.start_ns, interval_ns);
    let intensity = fit_intensity(
        &depths,
        series.span_s(),
        ticks_per_bps,
        settings.intensity_points,
        settings.intensity_min_orders,
    )?;

    let ofi_window_ns = (settings.ofi_window_s * 1e9).round().max(1.0) as u64;
    let ofi = ofi_impact(
        &series.touches,
        series.start_ns,
        series.end_ns,
        ofi_window_ns,
        settings.ofi_capacity,
    )?;

    Ok(Estimates {
        start_ns: series.start_ns,
        end_ns: series.end_ns,
        span_s: series.span_s(),
        mid_mean_quote: mid_ticks * tick_size_quote,
        ticks_per_bps,
        touch_source: series.touch_source.as_str().to_string(),
        touch_changes: series.touches.len(),
        trades: series.trades.len(),
        market_orders: orders.len(),
        sigma: SigmaEstimate {
            bps_per_sqrt_s: sigma,
            interval_s: settings.sigma_reference_s,
            signature,
            noise,
        },
        intensity_interval_s: settings.intensity_interval_s,
        intensity,
        ofi,
        feed_latency: feed_latency(series),
    })
}

/// The feed-latency percentiles and what they mean for this recording.
fn feed_latency(series: &MarketSeries) -> FeedLatencyReport {
    let depth = latency_stats(&series.delays.depth_ns);
    let trade = latency_stats(&series.delays.trade_ns);
    let book_ticker = latency_stats(&series.delays.book_ticker_ns);
    let note = match depth.or(trade) {
        None => "the data has no receive times beside exchange times (CSV dumps carry only \
                 exchange times): the feed latency cannot be measured from it"
            .to_string(),
        Some(s) if s.p50_ms < 0.0 => format!(
            "receive time is {:.0} ms EARLIER than exchange time at the median: the \
             recorder's clock was behind the exchange's, so the absolute feed latency cannot \
             be measured from this data; its spread can (p99 − p1 = {:.1} ms). Backtests of \
             it use venue.feed_latency_default",
            -s.p50_ms, s.jitter_ms
        ),
        Some(s) if s.p50_ms > 5_000.0 => format!(
            "median receive − exchange time {:.0} ms is longer than any live feed: the \
             clocks differ; only the spread is meaningful (p99 − p1 = {:.1} ms)",
            s.p50_ms, s.jitter_ms
        ),
        Some(s) => format!(
            "median feed latency {:.1} ms, p99 {:.1} ms (receive − exchange time, assuming \
             the recorder's clock was in sync with the exchange's)",
            s.p50_ms, s.p99_ms
        ),
    };
    FeedLatencyReport {
        depth,
        trade,
        book_ticker,
        note,
    }
}

/// The headline estimates of two halves of the data and how far apart they are.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stability {
    /// σ (bps/√s), k (1/bps), A (1/s), OFI β normalised (ticks) of the first half.
    pub first_half: Headline,
    /// The same for the second half.
    pub second_half: Headline,
    /// |first − second| / mean, per estimate, fraction.
    pub relative_difference: Headline,
}

/// The estimates a config is built from, plus the OFI slope.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Headline {
    /// σ, bps/√s.
    pub sigma_bps_per_sqrt_s: f64,
    /// k, 1/bps.
    pub k_per_bps: f64,
    /// A, 1/s per side.
    pub a_per_s: f64,
    /// OFI β, ticks per unit of normalised OFI.
    pub ofi_beta_ticks: f64,
    /// OFI β raw (CKS), ticks per lot.
    pub ofi_beta_raw_ticks_per_lot: f64,
    /// OFI R² (normalised, same window).
    pub ofi_r_squared: f64,
}

impl Headline {
    /// The headline of a full estimate.
    pub fn of(e: &Estimates) -> Headline {
        Headline {
            sigma_bps_per_sqrt_s: e.sigma.bps_per_sqrt_s,
            k_per_bps: e.intensity.k_per_bps,
            a_per_s: e.intensity.a_per_s,
            ofi_beta_ticks: e.ofi.normalised.slope,
            ofi_beta_raw_ticks_per_lot: e.ofi.raw.slope,
            ofi_r_squared: e.ofi.normalised.r_squared,
        }
    }
}

impl Stability {
    /// Compares two estimates.
    pub fn between(first: &Estimates, second: &Estimates) -> Stability {
        let (a, b) = (Headline::of(first), Headline::of(second));
        let rel = |x: f64, y: f64| {
            let mean = (x.abs() + y.abs()) / 2.0;
            if mean > 0.0 {
                (x - y).abs() / mean
            } else {
                0.0
            }
        };
        Stability {
            first_half: a,
            second_half: b,
            relative_difference: Headline {
                sigma_bps_per_sqrt_s: rel(a.sigma_bps_per_sqrt_s, b.sigma_bps_per_sqrt_s),
                k_per_bps: rel(a.k_per_bps, b.k_per_bps),
                a_per_s: rel(a.a_per_s, b.a_per_s),
                ofi_beta_ticks: rel(a.ofi_beta_ticks, b.ofi_beta_ticks),
                ofi_beta_raw_ticks_per_lot: rel(
                    a.ofi_beta_raw_ticks_per_lot,
                    b.ofi_beta_raw_ticks_per_lot,
                ),
                ofi_r_squared: rel(a.ofi_r_squared, b.ofi_r_squared),
            },
        }
    }
}
