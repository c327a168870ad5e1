//! The f64 reference of the quoting model: Avellaneda & Stoikov (2008) in relative units
//! (bps of mid) plus this project's quoting rules, written the plain way.
//!
//! Owns: the formulas, readable. Avellaneda, M. & Stoikov, S. (2008), "High-frequency
//! trading in a limit order book", Quantitative Finance 8(3), eqs. (29)–(30) with the
//! terminal time replaced by a rolling horizon τ:
//!
//! ```text
//! reservation     r = s − q·γ·σ²·τ                    (offset in bps of mid s)
//! total spread    δ = γ·σ²·τ + (2/γ)·ln(1 + γ/k)      (bps of mid)
//! bid = r − δ/2,  ask = r + δ/2
//! ```
//!
//! with γ in 1/bps, σ in bps/√s, τ in s, k in 1/bps and q = inventory / quote_size (A-S's
//! share count: orders of the quote size). Beside it the Guéant–Lehalle–Fernandez-Tapia
//! (2013) closed form (`glft_omega_bps`; see `model`'s doc), and the maker fee f added to
//! both half-spreads. `quote` then applies exactly the rules of the fixed-point `Quoter`
//! (same order, same caps), so tests, `--mode=spread-check` and calibration can hold the
//! hot path to it.
//!
//! Never: used on the hot path (it is f64 and slower), nor sent to the exchange other than
//! through the integer `Price`/`Qty` it returns. It does not allocate or panic either.

use crate::model::{
    ModelKind, NoQuote, OfiTilt, Params, QuoteLevel, BPS_PER_UNIT, PRICE_TICKS_MAX,
    RESERVATION_OFFSET_BPS_MAX, SIGMA_BPS_PER_SQRT_S_MAX,
};
use crate::types::{Price, Qty, Side, SymbolSpec};

/// The market state the reference quotes from: the same as `QuoteInput`, with σ and OFI
/// as f64.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RefInput {
    /// Best bid on the book, ticks.
    pub best_bid: Price,
    /// Best ask on the book, ticks.
    pub best_ask: Price,
    /// Our position, lots (positive long).
    pub inventory: Qty,
    /// σ, bps of mid per √s. NaN and negatives count as 0; above
    /// `SIGMA_BPS_PER_SQRT_S_MAX` counts as that.
    pub sigma_bps_per_sqrt_s: f64,
    /// Normalised order-flow imbalance in [−1, 1] (clamped; NaN counts as 0).
    pub ofi: f64,
    /// Size at the best bid, lots (micro-price lean).
    pub bid_qty: Qty,
    /// Size at the best ask, lots.
    pub ask_qty: Qty,
}

/// The reference quote: the same sides as `Quote`, diagnostics in f64.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RefQuote {
    /// The bid to post, or `None` (then `bid_off` says why).
    pub bid: Option<QuoteLevel>,
    /// The ask to post, or `None` (then `ask_off` says why).
    pub ask: Option<QuoteLevel>,
    /// Why there is no bid; `None` when there is one.
    pub bid_off: Option<NoQuote>,
    /// Why there is no ask; `None` when there is one.
    pub ask_off: Option<NoQuote>,
    /// Mid price, ticks (half-tick precision).
    pub mid_ticks: f64,
    /// Reservation price r, ticks.
    pub reservation_ticks: f64,
    /// Quote centre r + OFI tilt, ticks.
    pub centre_ticks: f64,
    /// Model bid centre − δ/2 before rounding and post-only, ticks.
    pub bid_model_ticks: f64,
    /// Model ask centre + δ/2 before rounding and post-only, ticks.
    pub ask_model_ticks: f64,
    /// Total spread after the clamp, bps of mid.
    pub spread_bps: f64,
    /// Total spread before the clamp (the model's δ plus twice the fee), bps of mid.
    pub model_spread_bps: f64,
    /// Reservation offset per order of inventory (A-S γσ²τ, GLFT ω), bps of mid.
    pub skew_per_order_bps: f64,
    /// A resting order within this many ticks of its target is kept.
    pub requote_band_ticks: i64,
}

impl RefQuote {
    /// No quote on either side (unusable book).
    pub const NONE: RefQuote = RefQuote {
        bid: None,
        ask: None,
        bid_off: Some(NoQuote::Book),
        ask_off: Some(NoQuote::Book),
        mid_ticks: 0.0,
        reservation_ticks: 0.0,
        centre_ticks: 0.0,
        bid_model_ticks: 0.0,
        ask_model_ticks: 0.0,
        spread_bps: 0.0,
        model_spread_bps: 0.0,
        skew_per_order_bps: 0.0,
        requote_band_ticks: 0,
    };
}

/// γ·σ²·τ, bps: the inventory-risk term (reservation offset per unit of q, and the first
/// part of the spread).
pub fn risk_term_bps(gamma_per_bps: f64, sigma_bps_per_sqrt_s: f64, horizon_s: f64) -> f64 {
    gamma_per_bps * sigma_bps_per_sqrt_s * sigma_bps_per_sqrt_s * horizon_s
}

/// (2/γ)·ln(1 + γ/k), bps: the fill-intensity term of the spread. Depends on parameters
/// only.
pub fn intensity_term_bps(gamma_per_bps: f64, k_per_bps: f64) -> f64 {
    2.0 / gamma_per_bps * (gamma_per_bps / k_per_bps).ln_1p()
}

/// W = √(γ/(2kA) · (1 + γ/k)^(1 + k/γ)), in √s: GLFT's skew per order is ω = σ·W bps.
/// The power is taken as exp((1 + k/γ)·ln(1 + γ/k)), exact for tiny γ/k too.
pub fn glft_omega_per_sigma(gamma_per_bps: f64, k_per_bps: f64, intensity_a_per_s: f64) -> f64 {
    let ratio = gamma_per_bps / k_per_bps;
    let power = ((1.0 + k_per_bps / gamma_per_bps) * ratio.ln_1p()).exp();
    (gamma_per_bps / (2.0 * k_per_bps * intensity_a_per_s) * power).sqrt()
}

/// GLFT's ω = √(σ²γ/(2kA) · (1 + γ/k)^(1 + k/γ)), bps of mid: the skew per order of
/// inventory, and the part of the spread beyond 2·c₁.
pub fn glft_omega_bps(params: &Params, sigma_bps_per_sqrt_s: f64) -> f64 {
    let p = params;
    sigma_bps_per_sqrt_s * glft_omega_per_sigma(p.gamma_per_bps, p.k_per_bps, p.intensity_a_per_s)
}

/// The model's skew per order of inventory (A-S γσ²τ, GLFT ω), bps of mid.
pub fn skew_per_order_bps(params: &Params, sigma_bps_per_sqrt_s: f64) -> f64 {
    match params.kind {
        ModelKind::AvellanedaStoikov => {
            risk_term_bps(params.gamma_per_bps, sigma_bps_per_sqrt_s, params.horizon_s)
        }
        ModelKind::Glft => glft_omega_bps(params, sigma_bps_per_sqrt_s),
    }
}

/// The model's total spread before the clamp, bps of mid: (2/γ)·ln(1 + γ/k) (= 2·c₁) plus
/// the skew term (A-S γσ²τ, GLFT ω) plus twice the maker fee, floored at 0.
pub fn model_spread_bps(params: &Params, sigma_bps_per_sqrt_s: f64) -> f64 {
    let p = params;
    (intensity_term_bps(p.gamma_per_bps, p.k_per_bps)
        + skew_per_order_bps(p, sigma_bps_per_sqrt_s)
        + 2.0 * p.maker_fee_bps)
        .max(0.0)
}

/// The A-S total spread δ = γσ²τ + (2/γ)·ln(1 + γ/k), bps of mid, unclamped.
pub fn total_spread_bps(
    gamma_per_bps: f64,
    sigma_bps_per_sqrt_s: f64,
    k_per_bps: f64,
    horizon_s: f64,
) -> f64 {
    risk_term_bps(gamma_per_bps, sigma_bps_per_sqrt_s, horizon_s)
        + intensity_term_bps(gamma_per_bps, k_per_bps)
}

/// The reservation offset r − s = −q·γσ²τ, bps of mid, uncapped. q is the normalised
/// inventory (positive long): a long position moves the reservation price down.
pub fn reservation_offset_bps(
    q: f64,
    gamma_per_bps: f64,
    sigma_bps_per_sqrt_s: f64,
    horizon_s: f64,
) -> f64 {
    -q * risk_term_bps(gamma_per_bps, sigma_bps_per_sqrt_s, horizon_s)
}

/// The reservation price r = s·(1 − q·γσ²τ / 10⁴), ticks, uncapped.
pub fn reservation_ticks(
    mid_ticks: f64,
    q: f64,
    gamma_per_bps: f64,
    sigma_bps_per_sqrt_s: f64,
    horizon_s: f64,
) -> f64 {
    let offset = reservation_offset_bps(q, gamma_per_bps, sigma_bps_per_sqrt_s, horizon_s);
    mid_ticks + mid_ticks * offset / BPS_PER_UNIT
}

/// The pure A-S bid and ask (r ∓ δ/2), ticks, without caps, clamps, tilt or rounding.
pub fn bid_ask_ticks(mid_ticks: f64, q: f64, params: &Params) -> (f64, f64) {
    let p = params;
    let r = reservation_ticks(
        mid_ticks,
        q,
        p.gamma_per_bps,
        p.sigma_bps_per_sqrt_s,
        p.horizon_s,
    );
    let spread = total_spread_bps(
        p.gamma_per_bps,
        p.sigma_bps_per_sqrt_s,
        p.k_per_bps,
        p.horizon_s,
    );
    let half = mid_ticks * spread / BPS_PER_UNIT / 2.0;
    (r - half, r + half)
}

/// The full reference quote, with the `Quoter`'s rules in its order: mid (half ticks);
/// spread = model spread (`model_spread_bps`, fee included) clamped to [min, max] bps of
/// mid; r = mid − q·skew with q = inventory / quote_size (|inventory| capped at the limit)
/// and the offset capped at `RESERVATION_OFFSET_BPS_MAX`; centre = r + the OFI tilt
/// (clamp(β·ofi, −1, 1) ticks, or β·ofi·σ bps) + the micro-price lean
/// w·(a − b)/2·(Qᵇ − Qᵃ)/(Qᵇ + Qᵃ) ticks; bid rounded down, ask up; post-only
/// against the book; price ≤ 0 drops a side; size raised to minNotional; a side whose fill
/// would pass the inventory limit is dropped. `params` is assumed valid
/// (`Params::validate`).
pub fn quote(params: &Params, spec: &SymbolSpec, input: &RefInput) -> RefQuote {
    let p = params;
    let (best_bid, best_ask) = (input.best_bid.0, input.best_ask.0);
    if best_bid <= 0 || best_ask <= best_bid || best_ask > PRICE_TICKS_MAX {
        return RefQuote::NONE;
    }
    let mid = (best_bid + best_ask) as f64 / 2.0;

    let sigma = clamp_or_zero(input.sigma_bps_per_sqrt_s, 0.0, SIGMA_BPS_PER_SQRT_S_MAX);
    let skew_bps = skew_per_order_bps(p, sigma);
    let model_spread_bps = model_spread_bps(p, sigma);
    let spread_bps = model_spread_bps.clamp(p.spread_min_bps, p.spread_max_bps);

    let limit = p.inventory_max_lots.0 as f64;
    let q = (input.inventory.0 as f64).clamp(-limit, limit) / p.quote_size_lots.0 as f64;
    let offset_bps = (-q * skew_bps).clamp(-RESERVATION_OFFSET_BPS_MAX, RESERVATION_OFFSET_BPS_MAX);
    let reservation = mid + mid * offset_bps / BPS_PER_UNIT;
    let ofi = clamp_or_zero(input.ofi, -1.0, 1.0);
    let tilt = match p.ofi_tilt {
        OfiTilt::Ticks => (p.ofi_beta * ofi).clamp(-1.0, 1.0),
        OfiTilt::Sigma => mid * p.ofi_beta * ofi * sigma / BPS_PER_UNIT,
    };
    let (bid_qty, ask_qty) = (input.bid_qty.0 as f64, input.ask_qty.0 as f64);
    let lean = if p.microprice_weight > 0.0 && bid_qty > 0.0 && ask_qty > 0.0 {
        p.microprice_weight * (best_ask - best_bid) as f64 / 2.0 * (bid_qty - ask_qty)
            / (bid_qty + ask_qty)
    } else {
        0.0
    };
    let centre = reservation + tilt + lean;
    let half = mid * spread_bps / BPS_PER_UNIT / 2.0;
    let bid_model = centre - half;
    let ask_model = centre + half;

    // `as` saturates; every value here is within ±3·PRICE_TICKS_MAX anyway.
    let bid_price = (bid_model.floor() as i64).min(best_ask - 1);
    let ask_price = (ask_model.ceil() as i64).max(best_bid + 1);
    let bid = level_for(p, spec, Side::Buy, Price(bid_price), input.inventory);
    let ask = level_for(p, spec, Side::Sell, Price(ask_price), input.inventory);
    RefQuote {
        bid: bid.ok(),
        ask: ask.ok(),
        bid_off: bid.err(),
        ask_off: ask.err(),
        mid_ticks: mid,
        reservation_ticks: reservation,
        centre_ticks: centre,
        bid_model_ticks: bid_model,
        ask_model_ticks: ask_model,
        spread_bps,
        model_spread_bps,
        skew_per_order_bps: skew_bps,
        requote_band_ticks: (half * p.requote_band).floor() as i64,
    }
}

/// The size and inventory rules for one side at a final `price`, the naive way: no price
/// ≤ 0; size = `quote_size_lots`, raised to `spec.min_qty_at(price)` if that misses
/// minNotional; `spec` must satisfy `Quoter::new`'s bound on tick × step; dropped if a fill of that size would take the position beyond
/// `inventory_max_lots` (a fill that brings an over-limit position back is allowed).
pub fn level_for(
    params: &Params,
    spec: &SymbolSpec,
    side: Side,
    price: Price,
    inventory: Qty,
) -> Result<QuoteLevel, NoQuote> {
    if price.0 <= 0 {
        return Err(NoQuote::PriceNotPositive);
    }
    // min_qty_at is the smallest size that meets minNotional, so this raises exactly the
    // sizes that miss it.
    let qty = Qty(params.quote_size_lots.0.max(spec.min_qty_at(price).0));
    let after = i128::from(inventory.0) + i128::from(side.sign()) * i128::from(qty.0);
    let limit = i128::from(params.inventory_max_lots.0);
    let beyond = match side {
        Side::Buy => after > limit,
        Side::Sell => after < -limit,
    };
    if beyond {
        return Err(NoQuote::InventoryLimit);
    }
    Ok(QuoteLevel { price, qty })
}

/// `value` clamped to [lo, hi]; NaN counts as 0 (then clamped).
fn clamp_or_zero(value: f64, lo: f64, hi: f64) -> f64 {
    if value.is_nan() {
        return 0.0_f64.clamp(lo, hi);
    }
    value.clamp(lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Symbol;

    fn btc() -> SymbolSpec {
        SymbolSpec::from_decimals(Symbol::new("BTCUSDT").unwrap(), "0.01", "0.00001", "5").unwrap()
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn spread_formula_by_hand() {
        // γσ²τ = 0.1 · 1.25² · 120 = 18.75 bps;
        // (2/γ)·ln(1 + γ/k) = 20 · ln(1 + 0.1/1.5) = 20 · 0.0645385211 = 1.290770422 bps.
        assert!(close(risk_term_bps(0.1, 1.25, 120.0), 18.75, 1e-12));
        assert!(close(intensity_term_bps(0.1, 1.5), 1.290_770_422, 1e-8));
        assert!(close(
            total_spread_bps(0.1, 1.25, 1.5, 120.0),
            20.040_770_422,
            1e-8
        ));
        // σ = 0 leaves only the intensity term; γ → 0 tends to 2/k.
        assert!(close(
            total_spread_bps(0.1, 0.0, 1.5, 120.0),
            1.290_770_422,
            1e-8
        ));
        assert!(close(intensity_term_bps(1e-9, 2.0), 1.0, 1e-6));
    }

    #[test]
    fn reservation_skew_sign() {
        let mid = 6_183_763.5;
        // Long: below mid by q·γσ²τ = 0.5 · 18.75 = 9.375 bps.
        let r_long = reservation_ticks(mid, 0.5, 0.1, 1.25, 120.0);
        assert!(close(r_long, mid * (1.0 - 9.375e-4), 1e-6));
        assert!(r_long < mid);
        assert!(reservation_ticks(mid, -0.5, 0.1, 1.25, 120.0) > mid);
        assert_eq!(reservation_ticks(mid, 0.0, 0.1, 1.25, 120.0), mid);
        let (bid, ask) = bid_ask_ticks(mid, 0.0, &Params::default());
        assert!(close(ask - bid, mid * 20.040_770_422e-4, 1e-3));
        assert!(close((bid + ask) / 2.0, mid, 1e-6));
    }

    #[test]
    fn reference_quote_defaults() {
        let input = RefInput {
            best_bid: Price(6_183_763),
            best_ask: Price(6_183_764),
            inventory: Qty(0),
            sigma_bps_per_sqrt_s: 1.25,
            ofi: 0.0,
            bid_qty: Qty(0),
            ask_qty: Qty(0),
        };
        let q = quote(&Params::default(), &btc(), &input);
        let (bid, ask) = (q.bid.unwrap(), q.ask.unwrap());
        // Half spread 10.0204 bps of 6_183_763.5 ticks = 6196.369 ticks:
        // bid ⌊6_177_567.13⌋, ask ⌈6_189_959.87⌉.
        assert_eq!(bid.price, Price(6_177_567));
        assert_eq!(ask.price, Price(6_189_960));
        assert_eq!(bid.qty, Qty(100));
        assert!(close(q.spread_bps, 20.040_770_422, 1e-8));
    }

    #[test]
    fn degenerate_book_and_nan_inputs() {
        let base = RefInput {
            best_bid: Price(100),
            best_ask: Price(100),
            inventory: Qty(0),
            sigma_bps_per_sqrt_s: f64::NAN,
            ofi: f64::NAN,
            bid_qty: Qty(0),
            ask_qty: Qty(0),
        };
        assert_eq!(quote(&Params::default(), &btc(), &base), RefQuote::NONE);
        let ok = RefInput {
            best_bid: Price(6_183_763),
            best_ask: Price(6_183_764),
            ..base
        };
        let q = quote(&Params::default(), &btc(), &ok);
        assert!(q.bid.is_some() && q.ask.is_some());
        assert!(close(q.model_spread_bps, 1.290_770_422, 1e-8));
    }
}
