//! `--mode=spread-check`: prints what the quoting model would quote for a given book and
//! whether that is sane (`model::spread_check` decides), before any money or time is spent
//! on a run.
//!
//! Wiring only: the parameters, the check's figures, the quotes at inventory −max, 0 and
//! +max, and one line per failure. Never: touches the network or the clock, or decides the
//! exit code (it returns `Ok(false)` and `main` turns that into a non-zero exit).

use std::io::Write;

use anyhow::Context;

use crate::model::spread_check::check;
use crate::model::{ModelKind, NoQuote, Params, Quote, QuoteLevel};
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
    let c = check(params, spec, best_bid, best_ask)
        .context("spread-check: invalid model parameters")?;
    let p = params;
    let mid = c.mid;
    let (skew_bps, intensity_bps, fee2_bps) = (c.skew_bps, c.intensity_bps, c.fee2_bps);
    let model_spread_bps = c.model_spread_bps;
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
    let edge_bps = c.edge_bps;
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

    writeln!(out)?;
    writeln!(
        out,
        "  {:>4}  {:>12}  {:>10}  {:<28}  {:<28}  {:>10}  {:>10}",
        "q", "inventory", "r-mid bps", "bid", "ask", "spread bps", "quoted bps"
    )?;
    for row in &c.rows {
        let quote = &row.quote;
        writeln!(
            out,
            "  {:>4}  {:>12}  {:>+10.3}  {:<28}  {:<28}  {:>10.3}  {:>10}",
            row.label,
            row.inventory,
            row.offset_bps,
            side_text(spec, quote.bid, quote, true),
            side_text(spec, quote.ask, quote, false),
            row.spread_bps,
            row.quoted_bps
                .map_or("—".to_string(), |s| format!("{s:.3}")),
        )?;
    }
    writeln!(out)?;
    if c.failures.is_empty() {
        writeln!(out, "spread-check: OK")?;
        return Ok(true);
    }
    for failure in &c.failures {
        writeln!(out, "spread-check: FAIL: {failure}")?;
    }
    Ok(false)
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
