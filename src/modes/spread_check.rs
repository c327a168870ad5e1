//! `--mode=spread-check`: prints what the quoting model would quote for a given book and
//! says whether that is sane, before any money or time is spent on a run.
//!
//! Owns: the report and the verdict. It builds the real fixed-point `Quoter` from the
//! validated parameters, quotes the book at inventory −max, 0 and +max with σ =
//! `Params::sigma_bps_per_sqrt_s` and OFI = 0, and fails when a spread is 0, when the
//! model's own (unclamped) spread falls outside the clamp range — the clamp would then set
//! the spread, not the model, which is how the seed's "spread 0.0 bps" and the days-long
//! horizon slipped through — when a quote crosses the book or itself, or when the flat
//! book gets no two-sided quote.
//!
//! Never: touches the network or the clock, or decides the exit code (it returns
//! `Ok(false)` and `main` turns that into a non-zero exit).

use std::io::Write;

use anyhow::Context;

use crate::model::avellaneda;
use crate::model::quoter::{ofi_from_f64, sigma_from_f64, Quote};
use crate::model::{ModelKind, NoQuote, Params, QuoteInput, QuoteLevel, Quoter};
use crate::types::{Price, Qty, SymbolSpec, DECIMAL_TEXT_MAX};

/// Writes the report for `params` on the book (`best_bid`, `best_ask`) to `out`. Returns
/// `Ok(true)` when every check passes, `Ok(false)` when one fails (each failure is printed
/// with its reason), and an error for invalid parameters or a failed write.
pub fn run(
    params: &Params,
    spec: &SymbolSpec,
    best_bid: Price,
    best_ask: Price,
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    let quoter = Quoter::new(*params, *spec).context("spread-check: invalid model parameters")?;
    let p = params;
    let mid_ticks = (best_bid.0 as f64 + best_ask.0 as f64) / 2.0;
    let mid = mid_ticks * spec.tick_atoms as f64 / crate::types::ATOMS_PER_UNIT as f64;
    let skew_bps = avellaneda::skew_per_order_bps(p, p.sigma_bps_per_sqrt_s);
    let intensity_bps = avellaneda::intensity_term_bps(p.gamma_per_bps, p.k_per_bps);
    let fee2_bps = 2.0 * p.maker_fee_bps;
    let model_spread_bps = avellaneda::model_spread_bps(p, p.sigma_bps_per_sqrt_s);
    let skew_term = match p.kind {
        ModelKind::AvellanedaStoikov => "gamma*sigma^2*tau",
        ModelKind::Glft => "omega",
    };

    writeln!(
        out,
        "spread-check {}: best bid {}, best ask {}, mid {mid}",
        spec.symbol,
        price_text(spec, best_bid),
        price_text(spec, best_ask),
    )?;
    writeln!(out, "  model                    {}", p.kind.name())?;
    writeln!(out, "  gamma (risk aversion)    {} 1/bps", p.gamma_per_bps)?;
    writeln!(out, "  k (intensity decay)      {} 1/bps", p.k_per_bps)?;
    match p.kind {
        ModelKind::AvellanedaStoikov => {
            writeln!(out, "  tau (horizon)            {} s", p.horizon_s)?
        }
        ModelKind::Glft => writeln!(
            out,
            "  A (intensity at mid)     {} 1/s",
            p.intensity_a_per_s
        )?,
    }
    writeln!(
        out,
        "  maker fee                {} bps per fill (negative = rebate), in both half-spreads",
        p.maker_fee_bps
    )?;
    writeln!(
        out,
        "  sigma (volatility)       {} bps/sqrt(s)",
        p.sigma_bps_per_sqrt_s
    )?;
    writeln!(
        out,
        "  beta (OFI coefficient)   {} (OFI = 0 here)",
        p.ofi_beta
    )?;
    writeln!(
        out,
        "  model spread (unclamped) {model_spread_bps:.3} bps = {skew_term} {skew_bps:.3} \
         + (2/gamma)*ln(1+gamma/k) {intensity_bps:.3} + 2*fee {fee2_bps:.3}"
    )?;
    writeln!(
        out,
        "  skew per order           {skew_bps:.3} bps of reservation shift per quote of inventory"
    )?;
    let edge_bps =
        model_spread_bps.max(p.spread_min_bps).min(p.spread_max_bps) / 2.0 - p.maker_fee_bps;
    writeln!(
        out,
        "  edge per fill at flat    {edge_bps:.3} bps = half-spread − fee (before adverse \
         selection)"
    )?;
    writeln!(
        out,
        "  spread clamp             [{}, {}] bps",
        p.spread_min_bps, p.spread_max_bps
    )?;
    writeln!(
        out,
        "  inventory limit          {} lots ({} base), quote size {} lots ({} base)",
        p.inventory_max_lots.0,
        qty_text(spec, p.inventory_max_lots),
        p.quote_size_lots.0,
        qty_text(spec, p.quote_size_lots),
    )?;

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

    writeln!(out)?;
    writeln!(
        out,
        "  {:>4}  {:>12}  {:>10}  {:<28}  {:<28}  {:>10}  {:>10}",
        "q", "inventory", "r-mid bps", "bid", "ask", "spread bps", "quoted bps"
    )?;
    let max = p.inventory_max_lots.0;
    let orders = max as f64 / p.quote_size_lots.0 as f64;
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
        };
        let quote = quoter.quote(&input);
        let spread_bps = quote.spread_bps.to_num::<f64>();
        let offset_bps = (quote.reservation_ticks.to_num::<f64>() - mid_ticks) / mid_ticks * 1e4;
        let quoted_bps = match (quote.bid, quote.ask) {
            (Some(bid), Some(ask)) => Some((ask.price.0 - bid.price.0) as f64 / mid_ticks * 1e4),
            _ => None,
        };
        writeln!(
            out,
            "  {label:>4}  {inventory:>12}  {offset_bps:>+10.3}  {:<28}  {:<28}  {spread_bps:>10.3}  {:>10}",
            side_text(spec, quote.bid, &quote, true),
            side_text(spec, quote.ask, &quote, false),
            quoted_bps.map_or("—".to_string(), |s| format!("{s:.3}")),
        )?;
        check_row(
            &label,
            &quote,
            p,
            best_bid,
            best_ask,
            quoted_bps,
            &mut failures,
        );
        if inventory == 0 && (quote.bid.is_none() || quote.ask.is_none()) {
            failures.push("q = 0: no two-sided quote on a flat position".to_string());
        }
    }

    writeln!(out)?;
    if failures.is_empty() {
        writeln!(out, "spread-check: OK")?;
        return Ok(true);
    }
    for failure in &failures {
        writeln!(out, "spread-check: FAIL: {failure}")?;
    }
    Ok(false)
}

/// The per-inventory checks: clamped spread > 0 and inside the clamp; the quote does not
/// cross the book or itself.
fn check_row(
    label: &str,
    quote: &Quote,
    params: &Params,
    best_bid: Price,
    best_ask: Price,
    quoted_bps: Option<f64>,
    failures: &mut Vec<String>,
) {
    let spread_bps = quote.spread_bps.to_num::<f64>();
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
    if let Some(quoted) = quoted_bps {
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

fn side_text(spec: &SymbolSpec, level: Option<QuoteLevel>, quote: &Quote, is_bid: bool) -> String {
    match level {
        Some(level) => format!(
            "{} x {}",
            price_text(spec, level.price),
            qty_text(spec, level.qty)
        ),
        None => {
            let off = if is_bid { quote.bid_off } else { quote.ask_off };
            let reason = match off {
                Some(NoQuote::Book) => "book unusable",
                Some(NoQuote::PriceNotPositive) => "model price ≤ 0",
                Some(NoQuote::InventoryLimit) => "inventory limit",
                None => "no reason given",
            };
            format!("— ({reason})")
        }
    }
}

fn price_text(spec: &SymbolSpec, price: Price) -> String {
    let mut buf = [0u8; DECIMAL_TEXT_MAX];
    let len = spec.write_price(price, &mut buf);
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

fn qty_text(spec: &SymbolSpec, qty: Qty) -> String {
    let mut buf = [0u8; DECIMAL_TEXT_MAX];
    let len = spec.write_qty(qty, &mut buf);
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Symbol;

    fn btc() -> SymbolSpec {
        SymbolSpec::from_decimals(Symbol::new("BTCUSDT").unwrap(), "0.01", "0.00001", "5").unwrap()
    }

    fn report(params: &Params) -> (bool, String) {
        let mut out = Vec::new();
        let ok = run(params, &btc(), Price(6_183_763), Price(6_183_764), &mut out).unwrap();
        (ok, String::from_utf8(out).unwrap())
    }

    #[test]
    fn default_params_pass() {
        let (ok, text) = report(&Params::default());
        assert!(ok, "{text}");
        assert!(
            text.contains("gamma (risk aversion)    0.1 1/bps"),
            "{text}"
        );
        assert!(text.contains("tau (horizon)            120 s"), "{text}");
        assert!(
            text.contains("sigma (volatility)       1.25 bps/sqrt(s)"),
            "{text}"
        );
        assert!(
            text.contains(
                "model spread (unclamped) 20.041 bps = gamma*sigma^2*tau 18.750 + \
                 (2/gamma)*ln(1+gamma/k) 1.291 + 2*fee 0.000"
            ),
            "{text}"
        );
        // At +max the bid is off (inventory limit), at −max the ask.
        assert_eq!(text.matches("— (inventory limit)").count(), 2, "{text}");
        assert!(text.ends_with("spread-check: OK\n"), "{text}");
    }

    #[test]
    fn days_long_horizon_fails() {
        let params = Params {
            horizon_s: 86_400.0 * 3.0,
            ..Params::default()
        };
        let (ok, text) = report(&params);
        assert!(!ok, "{text}");
        assert!(
            text.contains("FAIL: model spread 40501.291 bps is outside the clamp"),
            "{text}"
        );
    }

    #[test]
    fn spread_below_the_clamp_fails() {
        // σ = 0 and a steep k: the model wants 0.002 bps, the 5 bps floor does the work.
        let params = Params {
            sigma_bps_per_sqrt_s: 0.0,
            k_per_bps: 1_000.0,
            ..Params::default()
        };
        let (ok, text) = report(&params);
        assert!(!ok, "{text}");
        assert!(text.contains("outside the clamp"), "{text}");
    }

    #[test]
    fn crossed_book_fails_and_invalid_params_are_an_error() {
        let mut out = Vec::new();
        let ok = run(&Params::default(), &btc(), Price(100), Price(100), &mut out).unwrap();
        assert!(!ok);
        let params = Params {
            gamma_per_bps: 0.0,
            ..Params::default()
        };
        let err = run(&params, &btc(), Price(100), Price(101), &mut out).unwrap_err();
        assert!(format!("{err:#}").contains("gamma_per_bps"), "{err:#}");
    }
}
