//! The estimators of `--mode=calibration`: pure f64 functions over plain vectors (a mid
//! path, market trades, top-of-book states, receive − exchange delays), so that tests can
//! drive them with synthetic data of known parameters. Every float carries its unit in its
//! name or its doc comment.
//!
//! - **σ signature.** Realised variance of log mid returns sampled every h seconds, for
//!   several h, σ(h) = √(Σr² / (n·h)) in bps of mid per √s (the quoter's unit). Each h is
//!   averaged over up to `SIGNATURE_OFFSETS` start offsets (the "averaging" estimator of
//!   Zhang, Mykland & Aït-Sahalia 2005, J. American Statistical Association 100(472)), which
//!   cuts the noise of long intervals on short data. With i.i.d. microstructure noise of
//!   variance η² (bps²), E[r²] = σ²·h + 2η²: bid-ask bounce shows as σ(h) *rising* as h
//!   shrinks. A flat signature means no visible noise; one *falling* as h shrinks means
//!   returns are positively autocorrelated at short horizons (stale or trending quotes).
//! - **Trade intensity** λ(δ) = A·e^(−k·δ) (Avellaneda & Stoikov 2008, Quantitative Finance
//!   8(3), §2.3; Guéant, Lehalle & Fernandez-Tapia 2013, Mathematics and Financial Economics
//!   7(4)): trades are grouped into market orders (consecutive trades with the same trade
//!   time and aggressor side), each order's depth δ is how far its farthest price lies from
//!   a reference mid on the side it hit (the mid at the start of the interval the order
//!   falls in: what an order resting that long would see), and for every δ on a grid (in
//!   ticks) λ(δ) = (orders reaching at least δ) / (2 · span) per side per second. OLS of
//!   ln λ on δ (in bps of mid) gives −k (1/bps) as the slope and ln A (1/s) as the
//!   intercept; R² and every point are kept.
//! - **OFI price impact** (Cont, Kukanov & Stoikov 2014, J. Financial Econometrics 12(1)):
//!   over consecutive windows of `ofi.window_s`, the mid change (ticks) is regressed on the
//!   window's OFI, both raw (lots, CKS eq. 10, as `model::ofi` computes it) and normalised
//!   as the engine uses it (OFI / average touch depth, clamped to [−1, 1]): β and R². The
//!   same regression one window ahead (this window's OFI, the next window's mid change)
//!   says how much of it the quote tilt can use.
//! - **Feed latency**: percentiles of receive time − exchange event time per stream.
//!
//! Never: panics, reads a clock or touches files. A fit with too few points or a
//! non-finite result is a `FitError` that says what is missing and what to do.

use std::fmt;

use serde::Serialize;

use crate::model::ofi::{OfiEstimator, Touch};

/// Start offsets each σ(h) is averaged over (fewer when the data is short).
pub const SIGNATURE_OFFSETS: usize = 10;
/// Least returns a σ(h) point needs to be reported.
pub const SIGNATURE_RETURNS_MIN: usize = 10;
/// Quantile of the observed positive depths the intensity grid reaches.
pub const INTENSITY_GRID_QUANTILE: f64 = 0.99;
/// Least OFI windows the impact regression needs.
pub const OFI_WINDOWS_MIN: usize = 10;
/// Least points (depths with enough orders) the intensity fit needs.
pub const INTENSITY_POINTS_MIN: usize = 3;

/// A fit that could not be made, in words a trader understands.
#[derive(Clone, Debug, PartialEq)]
pub enum FitError {
    /// Not enough data for an estimate.
    TooFewPoints {
        /// Which estimate.
        what: &'static str,
        /// What there was.
        got: usize,
        /// What is needed.
        need: usize,
        /// What to do about it.
        fix: &'static str,
    },
    /// The estimate came out NaN, infinite or of the wrong sign.
    NotUsable {
        /// Which estimate.
        what: &'static str,
        /// Its value.
        value: f64,
        /// What to do about it.
        fix: &'static str,
    },
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FitError::TooFewPoints {
                what,
                got,
                need,
                fix,
            } => write!(
                f,
                "{what}: {got} points, at least {need} needed — fix: {fix}"
            ),
            FitError::NotUsable { what, value, fix } => {
                write!(
                    f,
                    "{what} came out as {value}, which is not usable — fix: {fix}"
                )
            }
        }
    }
}

impl std::error::Error for FitError {}

/// A straight line fitted by ordinary least squares.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Line {
    /// dy/dx.
    pub slope: f64,
    /// y at x = 0.
    pub intercept: f64,
    /// Share of the variance of y the line explains, in [0, 1].
    pub r_squared: f64,
    /// Points used.
    pub n: usize,
}

/// OLS of `ys` on `xs`; `None` with fewer than 2 points, no spread in x or non-finite input.
pub fn ols(xs: &[f64], ys: &[f64]) -> Option<Line> {
    let n = xs.len().min(ys.len());
    if n < 2 {
        return None;
    }
    let (xs, ys) = (&xs[..n], &ys[..n]);
    let mean_x = xs.iter().sum::<f64>() / n as f64;
    let mean_y = ys.iter().sum::<f64>() / n as f64;
    let (mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in xs.iter().zip(ys) {
        let (dx, dy) = (x - mean_x, y - mean_y);
        sxx += dx * dx;
        sxy += dx * dy;
        syy += dy * dy;
    }
    if !positive(sxx) || !sxy.is_finite() || !syy.is_finite() {
        return None;
    }
    let slope = sxy / sxx;
    let r_squared = if syy > 0.0 {
        (sxy * sxy / (sxx * syy)).clamp(0.0, 1.0)
    } else {
        1.0
    };
    Some(Line {
        slope,
        intercept: mean_y - slope * mean_x,
        r_squared,
        n,
    })
}

/// True for a finite number > 0 (false for NaN).
pub fn positive(x: f64) -> bool {
    x.is_finite() && x > 0.0
}

/// The mid prevailing at `ts_ns` in a time-ordered step path: the last point at or before
/// it, searched from `cursor` (which only moves forward; start it at 0).
fn mid_at(mids: &[(u64, f64)], ts_ns: u64, cursor: &mut usize) -> Option<f64> {
    while *cursor + 1 < mids.len() && mids[*cursor + 1].0 <= ts_ns {
        *cursor += 1;
    }
    mids.get(*cursor)
        .filter(|(t, _)| *t <= ts_ns)
        .map(|(_, mid)| *mid)
}

// -- σ ----------------------------------------------------------------------------------------

/// σ at one sampling interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct SignaturePoint {
    /// Sampling interval h, seconds.
    pub interval_s: f64,
    /// √(Σr² / (n·h)) averaged (as variances) over the start offsets, bps of mid per √s.
    pub sigma_bps_per_sqrt_s: f64,
    /// Returns per offset (the first offset's count).
    pub returns: usize,
    /// Start offsets averaged.
    pub offsets: usize,
}

/// σ(h) for every interval in `intervals_s` (seconds) over the mid path `mids` (receive
/// time ns, mid in any price unit — returns are relative) between `start_ns` and `end_ns`.
/// Intervals with fewer than `SIGNATURE_RETURNS_MIN` returns are left out.
pub fn sigma_signature(
    mids: &[(u64, f64)],
    start_ns: u64,
    end_ns: u64,
    intervals_s: &[f64],
) -> Vec<SignaturePoint> {
    let Some(first) = mids.first() else {
        return Vec::new();
    };
    let begin = start_ns.max(first.0);
    let mut points = Vec::with_capacity(intervals_s.len());
    for &interval_s in intervals_s {
        if !positive(interval_s) {
            continue;
        }
        let h_ns = (interval_s * 1e9).round() as u64;
        let span_ns = end_ns.saturating_sub(begin);
        if h_ns == 0 || span_ns / h_ns < SIGNATURE_RETURNS_MIN as u64 {
            continue;
        }
        let offsets = SIGNATURE_OFFSETS
            .min(usize::try_from(h_ns / 1_000_000).unwrap_or(usize::MAX))
            .max(1);
        let mut var_sum = 0.0;
        let mut var_count = 0usize;
        let mut first_returns = 0usize;
        for j in 0..offsets {
            let mut t = begin + h_ns / offsets as u64 * j as u64;
            let mut cursor = 0usize;
            let Some(mut prev) = mid_at(mids, t, &mut cursor) else {
                continue;
            };
            let (mut sum_r2, mut n) = (0.0f64, 0usize);
            loop {
                t = t.saturating_add(h_ns);
                if t > end_ns {
                    break;
                }
                let Some(mid) = mid_at(mids, t, &mut cursor) else {
                    break;
                };
                if prev > 0.0 && mid > 0.0 {
                    let r_bps = (mid / prev).ln() * 1e4;
                    sum_r2 += r_bps * r_bps;
                    n += 1;
                }
                prev = mid;
            }
            if j == 0 {
                first_returns = n;
            }
            if n > 0 {
                var_sum += sum_r2 / (n as f64 * interval_s);
                var_count += 1;
            }
        }
        if var_count == 0 || first_returns < SIGNATURE_RETURNS_MIN {
            continue;
        }
        points.push(SignaturePoint {
            interval_s,
            sigma_bps_per_sqrt_s: (var_sum / var_count as f64).sqrt(),
            returns: first_returns,
            offsets,
        });
    }
    points
}

/// What the σ signature says about microstructure noise.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NoiseReading {
    /// σ at the shortest interval / σ at the reference interval.
    pub ratio_short_to_reference: f64,
    /// Noise standard deviation η implied by E[r²] = σ²·h + 2η² at the shortest interval
    /// (0 when σ does not rise there), bps of mid.
    pub noise_bps: f64,
    /// The reading in words.
    pub verdict: String,
}

/// Reads the signature against σ at `reference_s` (the engine's sampling interval).
pub fn read_noise(points: &[SignaturePoint], reference_s: f64) -> Option<NoiseReading> {
    let shortest = points
        .iter()
        .min_by(|a, b| a.interval_s.total_cmp(&b.interval_s))?;
    let reference = points.iter().min_by(|a, b| {
        (a.interval_s - reference_s)
            .abs()
            .total_cmp(&(b.interval_s - reference_s).abs())
    })?;
    let (s, r) = (
        shortest.sigma_bps_per_sqrt_s,
        reference.sigma_bps_per_sqrt_s,
    );
    if !positive(r) {
        return None;
    }
    let ratio = s / r;
    let noise_var = ((s * s - r * r) * shortest.interval_s / 2.0).max(0.0);
    let verdict = if ratio > 1.1 {
        format!(
            "σ rises at short intervals (σ({} s) is {:.2}× σ({} s)): microstructure noise \
             (bid-ask bounce) of about {:.3} bps; sample σ at {} s or longer",
            shortest.interval_s,
            ratio,
            reference.interval_s,
            noise_var.sqrt(),
            reference.interval_s
        )
    } else if ratio < 0.9 {
        format!(
            "σ falls at short intervals (σ({} s) is {:.2}× σ({} s)): no bid-ask bounce; \
             returns are positively autocorrelated at short horizons (quotes move in runs), \
             so short-interval σ understates the risk over the quoting horizon",
            shortest.interval_s, ratio, reference.interval_s
        )
    } else {
        format!(
            "flat signature (σ({} s) is {:.2}× σ({} s)): no visible microstructure noise",
            shortest.interval_s, ratio, reference.interval_s
        )
    };
    Some(NoiseReading {
        ratio_short_to_reference: ratio,
        noise_bps: noise_var.sqrt(),
        verdict,
    })
}

// -- trade intensity ----------------------------------------------------------------------------

/// One market trade.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TradePoint {
    /// Receive time, ns.
    pub ts_ns: u64,
    /// Price, ticks.
    pub price_ticks: f64,
    /// True when the aggressor bought (lifted an ask).
    pub buy: bool,
    /// Exchange trade time (`T`), ms: trades of one taker order share it.
    pub trade_ts_ms: u64,
}

/// One taker order: consecutive trades with the same trade time and aggressor side.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MarketOrder {
    /// Receive time of its first trade, ns.
    pub ts_ns: u64,
    /// True when it bought.
    pub buy: bool,
    /// The farthest price it reached (highest for a buy, lowest for a sell), ticks.
    pub far_price_ticks: f64,
    /// Trades it made.
    pub trades: u32,
}

/// Groups `trades` (time-ordered) into taker orders. Two different taker orders on the
/// same side in the same millisecond with nothing between them count as one (rare; it
/// undercounts λ slightly and leaves k alone).
pub fn market_orders(trades: &[TradePoint]) -> Vec<MarketOrder> {
    let mut orders: Vec<MarketOrder> = Vec::with_capacity(trades.len());
    let mut last_key: Option<(u64, bool)> = None;
    for trade in trades {
        let key = (trade.trade_ts_ms, trade.buy);
        match orders.last_mut() {
            Some(order) if last_key == Some(key) => {
                order.trades += 1;
                order.far_price_ticks = if trade.buy {
                    order.far_price_ticks.max(trade.price_ticks)
                } else {
                    order.far_price_ticks.min(trade.price_ticks)
                };
            }
            _ => orders.push(MarketOrder {
                ts_ns: trade.ts_ns,
                buy: trade.buy,
                far_price_ticks: trade.price_ticks,
                trades: 1,
            }),
        }
        last_key = Some(key);
    }
    orders
}

/// The depth of every order, ticks: its farthest price's distance from the mid prevailing
/// at the start of its interval (`start_ns + i·interval_ns`), positive on the side it hit
/// (above the mid for a buy). Orders before the first mid are skipped.
pub fn order_depths_ticks(
    orders: &[MarketOrder],
    mids: &[(u64, f64)],
    start_ns: u64,
    interval_ns: u64,
) -> Vec<f64> {
    let interval_ns = interval_ns.max(1);
    let mut cursor = 0usize;
    let mut depths = Vec::with_capacity(orders.len());
    for order in orders {
        if order.ts_ns < start_ns {
            continue;
        }
        let reference_ns = start_ns + (order.ts_ns - start_ns) / interval_ns * interval_ns;
        let Some(mid) = mid_at(mids, reference_ns, &mut cursor) else {
            continue;
        };
        depths.push(if order.buy {
            order.far_price_ticks - mid
        } else {
            mid - order.far_price_ticks
        });
    }
    depths
}

/// One depth of the intensity grid.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct IntensityPoint {
    /// δ, ticks from the mid.
    pub depth_ticks: f64,
    /// δ, bps of mid.
    pub depth_bps: f64,
    /// Market orders that reached at least δ.
    pub orders: u64,
    /// λ(δ) per side, 1/s.
    pub rate_per_s: f64,
    /// True when the point had enough orders to be in the fit.
    pub in_fit: bool,
}

/// λ(δ) = A·e^(−k·δ) fitted to the grid.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IntensityFit {
    /// A, market orders per second per side reaching the mid (δ = 0), 1/s.
    pub a_per_s: f64,
    /// k per bps of mid, 1/bps (the quoter's `model.k_per_bps`).
    pub k_per_bps: f64,
    /// k per tick, 1/tick.
    pub k_per_tick: f64,
    /// R² of the OLS of ln λ on δ over the points in the fit.
    pub r_squared: f64,
    /// Every grid point, in the fit or not.
    pub points: Vec<IntensityPoint>,
    /// Market orders with a depth measured.
    pub orders: u64,
    /// Ticks per bps of mid at the window's mean mid.
    pub ticks_per_bps: f64,
    /// Seconds of data the rates are per.
    pub span_s: f64,
}

/// Fits λ(δ) to `depths_ticks` (one per market order, from `order_depths_ticks`) seen over
/// `span_s` seconds: a grid of `grid_points` depths from 0 to the 99th percentile of the
/// positive depths, points with at least `min_orders` orders in the fit.
pub fn fit_intensity(
    depths_ticks: &[f64],
    span_s: f64,
    ticks_per_bps: f64,
    grid_points: usize,
    min_orders: u64,
) -> Result<IntensityFit, FitError> {
    let mut beyond_mid: Vec<f64> = depths_ticks
        .iter()
        .copied()
        .filter(|d| d.is_finite() && *d > 0.0)
        .collect();
    beyond_mid.sort_by(f64::total_cmp);
    if beyond_mid.len() < INTENSITY_POINTS_MIN * min_orders.max(1) as usize
        || !positive(span_s)
        || !positive(ticks_per_bps)
    {
        return Err(FitError::TooFewPoints {
            what: "trade intensity: market orders on the side they hit",
            got: beyond_mid.len(),
            need: INTENSITY_POINTS_MIN * min_orders.max(1) as usize,
            fix: "give more data (--data), with trades and bookTicker streams",
        });
    }
    let top_index = ((beyond_mid.len() - 1) as f64 * INTENSITY_GRID_QUANTILE).round() as usize;
    let top_ticks = beyond_mid[top_index.min(beyond_mid.len() - 1)];
    let grid_points = grid_points.max(INTENSITY_POINTS_MIN);
    let mut all: Vec<f64> = depths_ticks
        .iter()
        .copied()
        .filter(|d| d.is_finite())
        .collect();
    all.sort_by(f64::total_cmp);
    let mut points = Vec::with_capacity(grid_points);
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for j in 0..grid_points {
        let depth_ticks = top_ticks * j as f64 / (grid_points - 1) as f64;
        let reached = (all.len() - all.partition_point(|d| *d < depth_ticks)) as u64;
        let rate_per_s = reached as f64 / (2.0 * span_s);
        let depth_bps = depth_ticks / ticks_per_bps;
        let in_fit = reached >= min_orders.max(1);
        if in_fit {
            xs.push(depth_bps);
            ys.push(rate_per_s.ln());
        }
        points.push(IntensityPoint {
            depth_ticks,
            depth_bps,
            orders: reached,
            rate_per_s,
            in_fit,
        });
    }
    let line = ols(&xs, &ys).filter(|_| xs.len() >= INTENSITY_POINTS_MIN);
    let Some(line) = line else {
        return Err(FitError::TooFewPoints {
            what: "trade intensity: depths with enough market orders",
            got: xs.len(),
            need: INTENSITY_POINTS_MIN,
            fix: "give more data (--data): the deep end of the grid has too few orders",
        });
    };
    let k_per_bps = -line.slope;
    let a_per_s = line.intercept.exp();
    if !positive(k_per_bps) {
        return Err(FitError::NotUsable {
            what: "trade intensity decay k (1/bps)",
            value: k_per_bps,
            fix: "the intensity does not fall with depth in this data; check the data is \
                  one symbol with its trades and top of book, or give more of it",
        });
    }
    if !positive(a_per_s) {
        return Err(FitError::NotUsable {
            what: "trade intensity A (1/s)",
            value: a_per_s,
            fix: "give more data (--data)",
        });
    }
    Ok(IntensityFit {
        a_per_s,
        k_per_bps,
        k_per_tick: k_per_bps / ticks_per_bps,
        r_squared: line.r_squared,
        points,
        orders: depths_ticks.len() as u64,
        ticks_per_bps,
        span_s,
    })
}

// -- OFI ----------------------------------------------------------------------------------------

/// One OFI window.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct OfiPoint {
    /// OFI over the window, lots (CKS eq. 10).
    pub ofi_lots: f64,
    /// OFI / average touch depth, clamped to [−1, 1], as the engine uses it.
    pub ofi_normalised: f64,
    /// Mid change over the window, ticks.
    pub dmid_ticks: f64,
}

/// The OFI impact regressions.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OfiFit {
    /// Window length, seconds.
    pub window_s: f64,
    /// Δmid (ticks) on raw OFI (lots), same window: β in ticks per lot.
    pub raw: Line,
    /// Δmid (ticks) on normalised OFI, same window: β in ticks per unit of normalised OFI
    /// (the unit of `ofi.beta`).
    pub normalised: Line,
    /// Next window's Δmid (ticks) on this window's normalised OFI: what a tilt can use.
    pub predictive: Line,
    /// Share of windows with |normalised OFI| at the clamp (≥ 0.999).
    pub saturated_fraction: f64,
    /// Every window, in time order.
    pub points: Vec<OfiPoint>,
}

/// Regresses mid changes on OFI over consecutive windows of `window_ns` between `start_ns`
/// and `end_ns`, with the engine's own `OfiEstimator` (`ring_capacity` touch changes).
/// `touches` are time-ordered (receive time ns, best bid/ask with sizes).
pub fn ofi_impact(
    touches: &[(u64, Touch)],
    start_ns: u64,
    end_ns: u64,
    window_ns: u64,
    ring_capacity: usize,
) -> Result<OfiFit, FitError> {
    let window_ns = window_ns.max(1);
    let mut estimator = OfiEstimator::new(window_ns, ring_capacity);
    let mut next = touches.partition_point(|(t, _)| *t <= start_ns);
    let mut last: Option<Touch> = next.checked_sub(1).map(|i| touches[i].1);
    if let Some(touch) = last {
        estimator.on_touch(start_ns, touch);
    }
    let mut points = Vec::new();
    let mut boundary = start_ns;
    let mut mid_before = last.map(mid_ticks);
    loop {
        boundary = boundary.saturating_add(window_ns);
        if boundary > end_ns {
            break;
        }
        while let Some((ts, touch)) = touches.get(next) {
            if *ts > boundary {
                break;
            }
            estimator.on_touch(*ts, *touch);
            last = Some(*touch);
            next += 1;
        }
        let mid_after = last.map(mid_ticks);
        let ofi_lots = estimator.ofi_lots(boundary) as f64;
        let ofi_normalised = estimator.normalised(boundary).to_num::<f64>();
        if let (Some(before), Some(after)) = (mid_before, mid_after) {
            points.push(OfiPoint {
                ofi_lots,
                ofi_normalised,
                dmid_ticks: after - before,
            });
        }
        mid_before = mid_after;
    }
    let too_few = |got: usize| FitError::TooFewPoints {
        what: "OFI impact: windows with a mid at both ends",
        got,
        need: OFI_WINDOWS_MIN,
        fix: "give more data (--data) with the bookTicker stream, or a shorter ofi.window_s",
    };
    if points.len() < OFI_WINDOWS_MIN {
        return Err(too_few(points.len()));
    }
    let dmid: Vec<f64> = points.iter().map(|p| p.dmid_ticks).collect();
    let raw_x: Vec<f64> = points.iter().map(|p| p.ofi_lots).collect();
    let norm_x: Vec<f64> = points.iter().map(|p| p.ofi_normalised).collect();
    let raw = ols(&raw_x, &dmid).ok_or_else(|| too_few(0))?;
    let normalised = ols(&norm_x, &dmid).ok_or_else(|| too_few(0))?;
    let predictive = ols(&norm_x[..norm_x.len() - 1], &dmid[1..]).ok_or_else(|| too_few(0))?;
    let saturated = points
        .iter()
        .filter(|p| p.ofi_normalised.abs() >= 0.999)
        .count();
    for (what, value) in [
        ("OFI impact β (ticks per lot)", raw.slope),
        (
            "OFI impact β (ticks per unit of normalised OFI)",
            normalised.slope,
        ),
    ] {
        if !value.is_finite() {
            return Err(FitError::NotUsable {
                what,
                value,
                fix: "give more data (--data) with the bookTicker stream",
            });
        }
    }
    Ok(OfiFit {
        window_s: window_ns as f64 / 1e9,
        raw,
        normalised,
        predictive,
        saturated_fraction: saturated as f64 / points.len() as f64,
        points,
    })
}

/// (best bid + best ask) / 2, ticks.
pub fn mid_ticks(touch: Touch) -> f64 {
    (touch.bid.0 as f64 + touch.ask.0 as f64) / 2.0
}

// -- feed latency -------------------------------------------------------------------------------

/// Percentiles of receive time − exchange time of one stream.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LatencyStats {
    /// Events with both times.
    pub samples: u64,
    /// Smallest, ms.
    pub min_ms: f64,
    /// 1st percentile, ms.
    pub p1_ms: f64,
    /// Median, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Largest, ms.
    pub max_ms: f64,
    /// p99 − p1, ms: the spread of the delay, which a constant clock offset leaves alone.
    pub jitter_ms: f64,
}

/// The percentiles of `delays_ns` (receive − exchange time, ns); `None` when empty.
pub fn latency_stats(delays_ns: &[i64]) -> Option<LatencyStats> {
    if delays_ns.is_empty() {
        return None;
    }
    let mut sorted = delays_ns.to_vec();
    sorted.sort_unstable();
    let at = |q: f64| {
        let i = ((sorted.len() - 1) as f64 * q).round() as usize;
        sorted[i.min(sorted.len() - 1)] as f64 / 1e6
    };
    let (p1_ms, p99_ms) = (at(0.01), at(0.99));
    Some(LatencyStats {
        samples: sorted.len() as u64,
        min_ms: at(0.0),
        p1_ms,
        p50_ms: at(0.5),
        p99_ms,
        max_ms: at(1.0),
        jitter_ms: p99_ms - p1_ms,
    })
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::types::{Price, Qty};

    /// Standard normal draw (Box–Muller).
    fn normal(rng: &mut ChaCha8Rng) -> f64 {
        let u1: f64 = rng.random::<f64>().max(1e-300);
        let u2: f64 = rng.random::<f64>();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// A geometric Brownian mid (ticks) sampled every `step_ns` with σ in bps/√s.
    fn mid_path(rng: &mut ChaCha8Rng, sigma: f64, span_s: f64, step_ns: u64) -> Vec<(u64, f64)> {
        let steps = (span_s * 1e9 / step_ns as f64) as usize;
        let sd = sigma * 1e-4 * (step_ns as f64 / 1e9).sqrt();
        let mut mid = 6_000_000.0;
        let mut path = Vec::with_capacity(steps);
        for i in 0..steps {
            path.push((i as u64 * step_ns, mid));
            mid *= (sd * normal(rng)).exp();
        }
        path
    }

    #[test]
    fn ols_recovers_a_line() {
        let xs: Vec<f64> = (0..10).map(f64::from).collect();
        let ys: Vec<f64> = xs.iter().map(|x| 3.0 - 2.0 * x).collect();
        let line = ols(&xs, &ys).unwrap();
        assert!((line.slope + 2.0).abs() < 1e-12 && (line.intercept - 3.0).abs() < 1e-12);
        assert!((line.r_squared - 1.0).abs() < 1e-12);
        assert!(ols(&[1.0, 1.0], &[2.0, 3.0]).is_none(), "no spread in x");
        assert!(ols(&[1.0], &[2.0]).is_none());
    }

    /// Tolerance: 5 % on σ at 1 s (36,000 returns over 10 h: standard error ≈ 0.4 %,
    /// averaging offsets does not make it worse).
    #[test]
    fn sigma_is_recovered_at_every_interval() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let path = mid_path(&mut rng, 1.25, 36_000.0, 100_000_000);
        let end = path.last().unwrap().0;
        let points = sigma_signature(&path, 0, end, &[0.1, 1.0, 10.0, 100.0]);
        assert_eq!(points.len(), 4);
        for p in &points {
            let err = (p.sigma_bps_per_sqrt_s / 1.25 - 1.0).abs();
            assert!(err < 0.05, "{p:?}");
        }
        let noise = read_noise(&points, 1.0).unwrap();
        assert!(noise.verdict.starts_with("flat"), "{noise:?}");
    }

    #[test]
    fn noise_inflates_short_interval_sigma() {
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let mut path = mid_path(&mut rng, 1.0, 7_200.0, 50_000_000);
        // i.i.d. noise of 0.5 bps on every observed mid: E[r²] at 0.05 s rises from
        // 0.05 to 0.05 + 2·0.25 bps², so σ(0.05 s) ≈ √11 ≈ 3.3× σ.
        for (_, mid) in &mut path {
            *mid *= 1.0 + 0.5e-4 * normal(&mut rng);
        }
        let end = path.last().unwrap().0;
        let points = sigma_signature(&path, 0, end, &[0.05, 1.0, 30.0]);
        let short = points[0].sigma_bps_per_sqrt_s;
        let long = points[2].sigma_bps_per_sqrt_s;
        assert!(short > 2.5 && short < 4.0, "{points:?}");
        assert!((long - 1.0).abs() < 0.15, "{points:?}");
        let noise = read_noise(&points, 1.0).unwrap();
        assert!(noise.verdict.contains("microstructure noise"), "{noise:?}");
        assert!((noise.noise_bps - 0.5).abs() < 0.1, "{noise:?}");
    }

    /// Poisson market orders whose depth from the mid is Exp(k): the rate reaching δ is
    /// exactly A·e^(−kδ). Tolerances: k within 10 %, A within 15 % (about 36,000 orders
    /// per side; the mid moves a little within each 50 ms interval, which raises A by
    /// e^(k²s²/2) ≈ 1 % and leaves k alone).
    #[test]
    fn intensity_parameters_are_recovered() {
        let (a, k, span_s) = (2.0, 1.5, 9_000.0);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let path = mid_path(&mut rng, 0.5, span_s, 10_000_000);
        let ticks_per_bps = 600.0;
        let mut trades = Vec::new();
        let mut t_s = 0.0;
        loop {
            // Both sides together arrive at 2A per second.
            t_s += -(rng.random::<f64>().max(1e-300)).ln() / (2.0 * a);
            if t_s >= span_s - 1.0 {
                break;
            }
            let ts_ns = (t_s * 1e9) as u64;
            let mid = path[(ts_ns / 10_000_000) as usize].1;
            let depth_bps = -(rng.random::<f64>().max(1e-300)).ln() / k;
            let buy = rng.random::<bool>();
            let price = if buy {
                mid + depth_bps * ticks_per_bps
            } else {
                mid - depth_bps * ticks_per_bps
            };
            trades.push(TradePoint {
                ts_ns,
                price_ticks: price,
                buy,
                trade_ts_ms: ts_ns / 1_000_000,
            });
        }
        let orders = market_orders(&trades);
        let depths = order_depths_ticks(&orders, &path, 0, 50_000_000);
        let fit = fit_intensity(&depths, span_s, ticks_per_bps, 20, 10).unwrap();
        assert!((fit.k_per_bps / k - 1.0).abs() < 0.10, "{fit:?}");
        assert!((fit.a_per_s / a - 1.0).abs() < 0.15, "{fit:?}");
        assert!(fit.r_squared > 0.98, "{fit:?}");
        assert!((fit.k_per_tick * ticks_per_bps - fit.k_per_bps).abs() < 1e-12);
    }

    #[test]
    fn trades_of_one_taker_order_are_grouped() {
        let t = |ts_ns, price_ticks, buy, trade_ts_ms| TradePoint {
            ts_ns,
            price_ticks,
            buy,
            trade_ts_ms,
        };
        let orders = market_orders(&[
            t(1, 100.0, true, 5),
            t(2, 102.0, true, 5),
            t(3, 101.0, true, 5),
            t(4, 99.0, false, 5),
            t(5, 98.0, false, 5),
            t(6, 101.0, true, 6),
        ]);
        assert_eq!(orders.len(), 3);
        assert_eq!((orders[0].far_price_ticks, orders[0].trades), (102.0, 3));
        assert_eq!((orders[1].far_price_ticks, orders[1].trades), (98.0, 2));
        assert_eq!(orders[2].ts_ns, 6);
        let depths = order_depths_ticks(&orders, &[(0, 100.5)], 0, 10);
        assert_eq!(depths, vec![1.5, 2.5, 0.5]);
    }

    #[test]
    fn an_intensity_fit_without_enough_orders_says_so() {
        let err = fit_intensity(&[1.0, 2.0], 10.0, 600.0, 20, 10).unwrap_err();
        assert!(err.to_string().contains("at least"), "{err}");
    }

    /// Queue depletion moves the price: each up move eats D lots of the ask (OFI +D) and
    /// lifts the ask one tick (mid +½ tick), each down move mirrors it on the bid. So
    /// Δmid = OFI / (2D) exactly: β = 1/(2D) ticks per lot, R² = 1.
    #[test]
    fn ofi_impact_recovers_the_depletion_slope() {
        let depth = 1_000i64;
        let mut rng = ChaCha8Rng::seed_from_u64(10);
        let mut touch = Touch {
            bid: Price(10_000),
            bid_qty: Qty(depth),
            ask: Price(10_001),
            ask_qty: Qty(depth),
        };
        let mut touches = vec![(0u64, touch)];
        let window_ns = 1_000_000_000u64;
        for w in 0..200u64 {
            let moves = rng.random_range(0..4u32);
            let up = rng.random::<bool>();
            for m in 0..moves {
                let base = w * window_ns + 100_000_000 * (u64::from(m) * 3 + 1);
                let steps = if up {
                    [
                        Touch {
                            ask_qty: Qty(depth / 2),
                            ..touch
                        },
                        Touch {
                            ask_qty: Qty(1),
                            ..touch
                        },
                        Touch {
                            ask: Price(touch.ask.0 + 1),
                            ask_qty: Qty(depth),
                            ..touch
                        },
                    ]
                } else {
                    [
                        Touch {
                            bid_qty: Qty(depth / 2),
                            ..touch
                        },
                        Touch {
                            bid_qty: Qty(1),
                            ..touch
                        },
                        Touch {
                            bid: Price(touch.bid.0 - 1),
                            bid_qty: Qty(depth),
                            ..touch
                        },
                    ]
                };
                for (i, step) in steps.iter().enumerate() {
                    touches.push((base + i as u64 * 10_000_000, *step));
                }
                touch = steps[2];
            }
        }
        let fit = ofi_impact(&touches, 0, 200 * window_ns, window_ns, 4096).unwrap();
        assert_eq!(fit.points.len(), 200);
        let expected = 1.0 / (2.0 * depth as f64);
        assert!(
            (fit.raw.slope / expected - 1.0).abs() < 1e-9,
            "{:?}",
            fit.raw
        );
        assert!(fit.raw.r_squared > 0.999);
        assert!(fit.normalised.slope > 0.0);
        // Moves are independent from window to window: nothing to predict.
        assert!(fit.predictive.r_squared < 0.1, "{:?}", fit.predictive);
    }

    #[test]
    fn latency_percentiles() {
        let delays: Vec<i64> = (0..=100).map(|i| i * 1_000_000 - 50_000_000).collect();
        let s = latency_stats(&delays).unwrap();
        assert_eq!((s.min_ms, s.p50_ms, s.max_ms), (-50.0, 0.0, 50.0));
        assert_eq!((s.p1_ms, s.p99_ms, s.jitter_ms), (-49.0, 49.0, 98.0));
        assert!(latency_stats(&[]).is_none());
    }
}
