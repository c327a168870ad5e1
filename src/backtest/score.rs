//! The figures of one backtest that a grid, a scoreboard or calibration compares:
//! `Scorecard`, `GridRow`, the 1-minute PnL statistics and the mid lookup they share.
//!
//! Money, at the fee tier stated beside it (`maker_fee_bps`, negative = rebate), in quote
//! atoms: net PnL = the position's mark-to-market at the last touch (cash net of fees +
//! inventory × mid); spread PnL = Σ over fills of side·(mid at fill − price)·qty − fee
//! (`kpi::fill_spread_pnl_atoms`); inventory PnL = net − spread, so the split sums exactly.
//! Sharpe per minute = mean / sample standard deviation of the changes of net PnL over
//! whole minutes of data time (not annualised; n/a under two minutes or without variation).
//!
//! Pure functions of a `Replayed`. Never: writes files, prints, or reads a clock.

use serde::Serialize;

use crate::backtest::run::{FillRow, Replayed, Sample};
use crate::telemetry::kpi::{fill_spread_pnl_atoms, KpiStatus};

/// The figures of one backtest that a scoreboard compares, all at the fee tier
/// `maker_fee_bps`. Money in exact quote atoms (10⁻⁸) and as numbers; the split sums
/// exactly: `spread_pnl_atoms + inventory_pnl_atoms == net_pnl_atoms`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Scorecard {
    /// Maker fee tier, bps (negative = rebate).
    pub maker_fee_bps: f64,
    /// Net PnL (mark-to-market at the last touch, fees paid), quote atoms.
    pub net_pnl_atoms: i128,
    /// Spread PnL: Σ side·(mid at fill − price)·qty − fees, quote atoms.
    pub spread_pnl_atoms: i128,
    /// Inventory PnL: net − spread, quote atoms.
    pub inventory_pnl_atoms: i128,
    /// Fees paid (negative = rebates), quote atoms.
    pub fees_atoms: i128,
    /// Net PnL, quote currency.
    pub net_pnl_quote: f64,
    /// Spread PnL, quote currency.
    pub spread_pnl_quote: f64,
    /// Inventory PnL, quote currency.
    pub inventory_pnl_quote: f64,
    /// Fees, quote currency.
    pub fees_quote: f64,
    /// Fill events (partial fills each count).
    pub fills: u64,
    /// Orders with at least one fill.
    pub orders_filled: u64,
    /// Orders placed (places + cancel-replaces).
    pub orders_placed: u64,
    /// The six KPIs in `KpiKind::ALL` order (value None = "n/a (not met)").
    pub kpis: Vec<KpiStatus>,
    /// How many of the six are met.
    pub targets_met: usize,
    /// Sharpe per minute of net PnL (module doc).
    pub sharpe_per_minute: Option<f64>,
}

impl Scorecard {
    /// The scorecard of a finished replay.
    pub fn of(run: &Replayed) -> Scorecard {
        let spec = run.spec;
        let net = i128::from(match run.final_touch {
            Some((bid, ask)) => run.position.mark_to_market_atoms(&spec, bid, ask),
            None => run.position.cash_atoms,
        });
        let spread: i128 = run.fills.iter().map(|f| fill_spread_atoms(run, f)).sum();
        let fees = i128::from(run.position.fees_atoms);
        let quote = |atoms: i128| atoms as f64 / 1e8;
        Scorecard {
            maker_fee_bps: run.venue_params.maker_fee_centibps as f64 / 100.0,
            net_pnl_atoms: net,
            spread_pnl_atoms: spread,
            inventory_pnl_atoms: net - spread,
            fees_atoms: fees,
            net_pnl_quote: quote(net),
            spread_pnl_quote: quote(spread),
            inventory_pnl_quote: quote(net - spread),
            fees_quote: quote(fees),
            fills: run.order_stats.fills,
            orders_filled: run.order_stats.orders_with_fill,
            orders_placed: run.order_stats.orders_placed,
            kpis: run.kpi.kpis.clone(),
            targets_met: run.kpi.targets_met(),
            sharpe_per_minute: minute_stats(&run.samples).sharpe,
        }
    }
}

/// One fill's spread PnL, quote atoms, with the mid the engine saw at the fill (the one
/// prevailing then if it saw none).
pub fn fill_spread_atoms(run: &Replayed, f: &FillRow) -> i128 {
    let mid_x2 = if f.mid_x2_ticks > 0 {
        f.mid_x2_ticks
    } else {
        mid_at(&run.mids, f.ts_ns).unwrap_or(0)
    };
    fill_spread_pnl_atoms(&run.spec, f.side, f.price, f.qty, mid_x2, f.fee_atoms)
}

/// One `--grid` combination's result.
#[derive(Clone, Debug, PartialEq)]
pub struct GridRow {
    /// The `key=value` settings of the combination.
    pub settings: Vec<String>,
    /// Total PnL, quote.
    pub pnl_quote: f64,
    /// Its spread part (net of fees), quote; the inventory part is `pnl_quote` − this.
    pub spread_pnl_quote: f64,
    /// Targets met of six.
    pub targets_met: usize,
    /// The six KPI values in `KpiKind::ALL` order.
    pub kpis: Vec<Option<f64>>,
    /// Fill events.
    pub fills: u64,
    /// Orders placed.
    pub orders_placed: u64,
    /// Fees, quote.
    pub fees_quote: f64,
    /// Max drawdown, quote.
    pub max_drawdown_quote: f64,
    /// Sharpe of 1-minute PnL changes.
    pub sharpe_1m: Option<f64>,
}

impl GridRow {
    /// The row of one replay: its `Scorecard`'s figures, plus the drawdown.
    pub fn of(settings: &[String], run: &Replayed) -> GridRow {
        let card = Scorecard::of(run);
        GridRow {
            settings: settings.to_vec(),
            pnl_quote: card.net_pnl_quote,
            spread_pnl_quote: card.spread_pnl_quote,
            targets_met: card.targets_met,
            kpis: card.kpis.iter().map(|k| k.value).collect(),
            fills: card.fills,
            orders_placed: card.orders_placed,
            fees_quote: card.fees_quote,
            max_drawdown_quote: run.kpi.max_drawdown_quote,
            sharpe_1m: card.sharpe_per_minute,
        }
    }
}

/// Statistics of the 1-minute PnL changes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MinuteStats {
    /// Mean / standard deviation (None with fewer than 2 changes or no variation).
    pub sharpe: Option<f64>,
    /// Mean change, quote.
    pub mean: Option<f64>,
    /// Sample standard deviation, quote.
    pub std: Option<f64>,
    /// Changes counted.
    pub count: usize,
}

/// From the 1 s samples: PnL at every whole minute since the first sample, differenced.
pub fn minute_stats(samples: &[Sample]) -> MinuteStats {
    let Some(first) = samples.first() else {
        return MinuteStats::default();
    };
    let minute_ns = 60_000_000_000u64;
    let marks: Vec<f64> = samples
        .iter()
        .filter(|s| (s.ts_ns - first.ts_ns) % minute_ns == 0)
        .map(|s| s.pnl_atoms as f64 / 1e8)
        .collect();
    let changes: Vec<f64> = marks.windows(2).map(|w| w[1] - w[0]).collect();
    let n = changes.len();
    if n == 0 {
        return MinuteStats::default();
    }
    let mean = changes.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return MinuteStats {
            sharpe: None,
            mean: Some(mean),
            std: None,
            count: n,
        };
    }
    let var = changes.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let std = var.sqrt();
    MinuteStats {
        sharpe: (std > 0.0).then(|| mean / std),
        mean: Some(mean),
        std: Some(std),
        count: n,
    }
}

/// The mid (bid + ask, ticks) prevailing at `ts_ns`: the last change at or before it.
pub fn mid_at(mids: &[(u64, i64)], ts_ns: u64) -> Option<i64> {
    let after = mids.partition_point(|(t, _)| *t <= ts_ns);
    after.checked_sub(1).map(|i| mids[i].1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minute_statistics_use_whole_minutes() {
        let samples: Vec<Sample> = (0..=180)
            .map(|s| Sample {
                ts_ns: 1_000 + s * 1_000_000_000,
                pnl_atoms: [0, 100_000_000, 300_000_000, 200_000_000][(s / 60) as usize],
                inventory_lots: 0,
                mid_x2_ticks: 0,
            })
            .collect();
        let m = minute_stats(&samples);
        // Marks at 0, 60, 120, 180 s: 0, 1, 3, 2 → changes 1, 2, −1.
        assert_eq!(m.count, 3);
        let mean = 2.0 / 3.0;
        let std = (((1.0 - mean) * (1.0 - mean)
            + (2.0 - mean) * (2.0 - mean)
            + (-1.0 - mean) * (-1.0 - mean))
            / 2.0f64)
            .sqrt();
        assert!((m.mean.unwrap() - mean).abs() < 1e-12);
        assert!((m.sharpe.unwrap() - mean / std).abs() < 1e-12);
        assert_eq!(minute_stats(&samples[..30]).count, 0);
    }

    #[test]
    fn mid_lookup_takes_the_prevailing_mid() {
        let mids = [(10, 100), (20, 102), (20, 104), (30, 106)];
        assert_eq!(mid_at(&mids, 5), None);
        assert_eq!(mid_at(&mids, 10), Some(100));
        assert_eq!(mid_at(&mids, 25), Some(104));
        assert_eq!(mid_at(&mids, 99), Some(106));
    }
}
