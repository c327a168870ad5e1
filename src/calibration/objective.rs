//! The objective parameters are chosen by — in calibration and in the scoreboard alike —
//! and the money split it rests on.
//!
//! Owns: `inventory_risk_quote2` (the variance-like penalty of holding inventory) and
//! `objective`, built on the exact PnL split (`backtest::Scorecard`, spread part net
//! of fees per ../shared/STRATEGY.md): spread PnL net of fees − κ·Σ(per-minute inventory
//! PnL)², with no value at all below `MIN_FILLS_TO_CHOOSE` fills. A directional position's
//! luck is inventory PnL, so it can only lower the objective; a run with a handful of fills
//! cannot be chosen.
//!
//! Cold path (floats allowed, quote currency): never used by the engine.

use crate::backtest::{Replayed, Scorecard};

/// Fewest fills a grid point needs on the window it is chosen on: fewer is noise.
pub const MIN_FILLS_TO_CHOOSE: u64 = 20;
/// Inventory-risk penalty κ of the objective, per quote currency.
pub const INVENTORY_RISK_PER_QUOTE: f64 = 1.0;

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
    let card = Scorecard::of(run);
    Some(card.spread_pnl_quote - INVENTORY_RISK_PER_QUOTE * inventory_risk_quote2(run))
}
