//! The objective parameters are chosen by — in calibration and in the scoreboard alike —
//! and the money split it rests on.
//!
//! Owns: `Money` (a replay's PnL split into the spread part, net of fees, and the inventory
//! part, per ../shared/STRATEGY.md), `inventory_risk_quote2` (the variance-like penalty of
//! holding inventory) and `objective`: spread PnL net of fees − κ·Σ(per-minute inventory
//! PnL)², with no value at all below `MIN_FILLS_TO_CHOOSE` fills. A directional position's
//! luck is inventory PnL, so it can only lower the objective; a run with a handful of fills
//! cannot be chosen.
//!
//! Cold path (floats allowed, quote currency): never used by the engine.

use crate::modes::backtest::Replayed;
use crate::types::ATOMS_PER_UNIT;

/// Fewest fills a grid point needs on the window it is chosen on: fewer is noise.
pub const MIN_FILLS_TO_CHOOSE: u64 = 20;
/// Inventory-risk penalty κ of the objective, per quote currency.
pub const INVENTORY_RISK_PER_QUOTE: f64 = 1.0;

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

/// Saturating i128 → i64.
fn saturate(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}
