//! The spread check: what the quoting model would quote for a given book, and whether that
//! is sane, before any money or time is spent on a run (`--mode=spread-check` prints it).
//!
//! Owns: the verdict. It builds the real fixed-point `Quoter` from the validated
//! parameters, quotes the book at inventory −max, 0 and +max with σ =
//! `Params::sigma_bps_per_sqrt_s` and OFI = 0, and fails when a spread is 0, when the
//! model's own (unclamped) spread falls outside the clamp range — the clamp would then set
//! the spread, not the model, which is how the seed's "spread 0.0 bps" and the days-long
//! horizon slipped through — when a quote crosses the book or itself, or when the flat
//! book gets no two-sided quote.
//!
//! Cold path: allocates (the rows, the failure texts). Never: touches the network, the
//! clock or the console, or decides the exit code.

use crate::model::avellaneda;
use crate::model::{ofi_from_f64, sigma_from_f64, Params, ParamsError, Quote, QuoteInput, Quoter};
use crate::types::{Price, Qty, SymbolSpec};

/// What the check found for one book.
#[derive(Clone, Debug)]
pub struct SpreadCheck {
    /// (best bid + best ask) / 2, ticks.
    pub mid_ticks: f64,
    /// The mid in quote currency.
    pub mid: f64,
    /// Reservation shift per order of inventory, bps (γσ²τ or ω).
    pub skew_bps: f64,
    /// The intensity term (2/γ)·ln(1 + γ/k), bps.
    pub intensity_bps: f64,
    /// Twice the maker fee, bps.
    pub fee2_bps: f64,
    /// The model's own spread before the clamp, bps.
    pub model_spread_bps: f64,
    /// Half the clamped spread minus the fee at a flat position, bps.
    pub edge_bps: f64,
    /// The quotes at inventory −max, 0 and +max.
    pub rows: Vec<CheckRow>,
    /// Every failed check, in words; empty when the check passes.
    pub failures: Vec<String>,
}

/// The quote at one inventory.
#[derive(Clone, Debug)]
pub struct CheckRow {
    /// The inventory in orders of the quote size, as printed (`-5`, `0`, `+5`).
    pub label: String,
    /// The inventory, lots.
    pub inventory: i64,
    /// What the quoter returned.
    pub quote: Quote,
    /// The quote's total spread after the clamp, bps of mid.
    pub spread_bps: f64,
    /// Reservation price − mid, bps of mid.
    pub offset_bps: f64,
    /// Ask − bid, bps of mid, when both sides are quoted.
    pub quoted_bps: Option<f64>,
}

/// Runs the check for `params` on the book (`best_bid`, `best_ask`). An error only for
/// parameters the quoter refuses.
pub fn check(
    params: &Params,
    spec: &SymbolSpec,
    best_bid: Price,
    best_ask: Price,
) -> Result<SpreadCheck, ParamsError> {
    let quoter = Quoter::new(*params, *spec)?;
    let p = params;
    let mid_ticks = (best_bid.0 as f64 + best_ask.0 as f64) / 2.0;
    let mid = mid_ticks * spec.tick_atoms as f64 / crate::types::ATOMS_PER_UNIT as f64;
    let skew_bps = avellaneda::skew_per_order_bps(p, p.sigma_bps_per_sqrt_s);
    let intensity_bps = avellaneda::intensity_term_bps(p.gamma_per_bps, p.k_per_bps);
    let fee2_bps = 2.0 * p.maker_fee_bps;
    let model_spread_bps = avellaneda::model_spread_bps(p, p.sigma_bps_per_sqrt_s);
    let edge_bps =
        model_spread_bps.max(p.spread_min_bps).min(p.spread_max_bps) / 2.0 - p.maker_fee_bps;

    let mut failures: Vec<String> = Vec::new();
    if best_bid.0 <= 0 || best_ask <= best_bid {
        failures.push("the book is crossed or empty: nothing to quote against".to_string());
    }
    if model_spread_bps.is_nan() || model_spread_bps <= 0.0 {
        failures.push(format!(
            "model spread is {model_spread_bps} bps: it must be > 0"
        ));
    }
    if !(p.spread_min_bps..=p.spread_max_bps).contains(&model_spread_bps) {
        failures.push(format!(
            "model spread {model_spread_bps:.3} bps is outside the clamp [{}, {}] bps: the \
             clamp, not the model, would set the spread (check gamma, sigma, k, tau, A and the \
             fee)",
            p.spread_min_bps, p.spread_max_bps
        ));
    }

    let max = p.inventory_max_lots.0;
    let orders = max as f64 / p.quote_size_lots.0 as f64;
    let mut rows = Vec::with_capacity(3);
    for (label, inventory) in [
        (format!("{:+}", -orders), -max),
        ("0".to_string(), 0),
        (format!("{:+}", orders), max),
    ] {
        let input = QuoteInput {
            best_bid,
            best_ask,
            inventory: Qty(inventory),
            sigma: sigma_from_f64(p.sigma_bps_per_sqrt_s),
            ofi: ofi_from_f64(0.0),
            // Equal queues: no micro-price lean in the table.
            bid_qty: Qty(1),
            ask_qty: Qty(1),
        };
        let quote = quoter.quote(&input);
        let spread_bps = quoter.spread_bps(&quote).to_num::<f64>();
        let offset_bps = (quote.reservation_ticks.to_num::<f64>() - mid_ticks) / mid_ticks * 1e4;
        let quoted_bps = match (quote.bid, quote.ask) {
            (Some(bid), Some(ask)) => Some((ask.price.0 - bid.price.0) as f64 / mid_ticks * 1e4),
            _ => None,
        };
        let row = CheckRow {
            label,
            inventory,
            quote,
            spread_bps,
            offset_bps,
            quoted_bps,
        };
        check_row(&row, p, best_bid, best_ask, &mut failures);
        if inventory == 0 && (quote.bid.is_none() || quote.ask.is_none()) {
            failures.push("q = 0: no two-sided quote on a flat position".to_string());
        }
        rows.push(row);
    }
    Ok(SpreadCheck {
        mid_ticks,
        mid,
        skew_bps,
        intensity_bps,
        fee2_bps,
        model_spread_bps,
        edge_bps,
        rows,
        failures,
    })
}

/// The per-inventory checks: clamped spread > 0 and inside the clamp; the quote does not
/// cross the book or itself.
fn check_row(
    row: &CheckRow,
    params: &Params,
    best_bid: Price,
    best_ask: Price,
    failures: &mut Vec<String>,
) {
    let CheckRow {
        label,
        quote,
        spread_bps,
        quoted_bps,
        ..
    } = row;
    let spread_bps = *spread_bps;
    // The clamp bounds are converted to fixed point: allow for that rounding.
    let tolerance = 1e-9;
    if spread_bps <= 0.0 {
        failures.push(format!("q = {label}: spread is 0 bps"));
    } else if spread_bps < params.spread_min_bps - tolerance
        || spread_bps > params.spread_max_bps + tolerance
    {
        failures.push(format!(
            "q = {label}: spread {spread_bps} bps is outside the clamp"
        ));
    }
    if let Some(quoted) = *quoted_bps {
        if quoted <= 0.0 {
            failures.push(format!(
                "q = {label}: quoted spread is {quoted} bps (crossed)"
            ));
        }
    }
    if quote.bid.is_some_and(|b| b.price >= best_ask) {
        failures.push(format!("q = {label}: the bid crosses the best ask"));
    }
    if quote.ask.is_some_and(|a| a.price <= best_bid) {
        failures.push(format!("q = {label}: the ask crosses the best bid"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Symbol;

    fn btc() -> SymbolSpec {
        SymbolSpec::from_decimals(Symbol::new("BTCUSDT").unwrap(), "0.01", "0.00001", "5").unwrap()
    }

    #[test]
    fn default_params_quote_both_sides_when_flat_and_one_side_at_the_limits() {
        let c = check(
            &Params::default(),
            &btc(),
            Price(6_183_763),
            Price(6_183_764),
        )
        .unwrap();
        assert!(c.failures.is_empty(), "{:?}", c.failures);
        let labels: Vec<&str> = c.rows.iter().map(|r| r.label.as_str()).collect();
        let max = Params::default().inventory_max_lots.0;
        assert_eq!(
            c.rows.iter().map(|r| r.inventory).collect::<Vec<_>>(),
            [-max, 0, max]
        );
        assert_eq!(labels[1], "0");
        let flat = &c.rows[1].quote;
        assert!(flat.bid.is_some() && flat.ask.is_some());
        // Long at the limit: no bid; short at the limit: no ask.
        assert!(c.rows[2].quote.bid.is_none() && c.rows[0].quote.ask.is_none());
        assert!((c.model_spread_bps - (c.skew_bps + c.intensity_bps + c.fee2_bps)).abs() < 1e-9);
    }

    #[test]
    fn a_model_spread_outside_the_clamp_and_a_crossed_book_fail() {
        let days = Params {
            horizon_s: 86_400.0 * 3.0,
            ..Params::default()
        };
        let c = check(&days, &btc(), Price(6_183_763), Price(6_183_764)).unwrap();
        assert!(c.failures[0].starts_with("model spread 40501.291 bps is outside the clamp"));
        let crossed = check(&Params::default(), &btc(), Price(100), Price(100)).unwrap();
        assert!(crossed.failures[0].contains("crossed or empty"));
        let bad = Params {
            gamma_per_bps: 0.0,
            ..Params::default()
        };
        assert!(check(&bad, &btc(), Price(100), Price(101)).is_err());
    }
}
