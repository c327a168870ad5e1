//! The hot-path quoter: best bid/ask, inventory, σ and OFI in, a two-sided quote out, in
//! integer and fixed-point arithmetic only.
//!
//! Owns: the quoting rules, applied in this order (the f64 reference `avellaneda::quote`
//! follows the same order and caps):
//!
//! 1. Book check: 0 < best bid < best ask ≤ `PRICE_TICKS_MAX`, else no quote at all.
//!    mid = (bid + ask) / 2, kept exactly in half ticks.
//! 2. Skew per order of inventory (σ capped at `SIGMA_BPS_PER_SQRT_S_MAX`), as a fraction
//!    of mid: A-S γσ²τ, GLFT ω = σ·W.
//! 3. Reservation r = mid − q·skew with q = inventory / quote_size (|inventory| capped at
//!    inventory_max) and the offset capped at `RESERVATION_OFFSET_BPS_MAX`; centre = r +
//!    the OFI tilt: clamp(β·ofi, −1, +1) ticks, or β·ofi·σ bps of mid (ofi clamped to
//!    [−1, 1]) + the micro-price lean w·(a − b)/2·(Qᵇ − Qᵃ)/(Qᵇ + Qᵃ) ticks (w = 0 by
//!    default: no lean, no division).
//! 4. Total spread (2/γ)·ln(1 + γ/k) + skew + 2·fee (floored at 0), clamped to [min, max]
//!    bps of mid.
//! 5. bid = centre − spread/2 rounded DOWN to a tick, ask = centre + spread/2 rounded UP;
//!    re-quote band = ⌊requote_band · spread/2⌋ ticks.
//! 6. Post-only: bid ≤ best ask − 1 tick, ask ≥ best bid + 1 tick (never crosses; since
//!    bid < ask before this step, also bid < ask after it).
//! 7. A side whose price is ≤ 0 is dropped.
//! 8. size = `quote_size_lots`, raised to `spec.min_qty_at(price)` if it misses
//!    minNotional; a side is dropped if a fill of that size would take the position beyond
//!    `inventory_max_lots` (buy: inventory + size > max; sell: inventory − size < −max, so a
//!    fill that brings an over-limit position back is still quoted).
//!
//! Fixed-point layout (see `Quoter::quote` for the bounds):
//! - σ is `U32F32` (`Sigma`, bps/√s): σ² is then an exact `U64F64` (one widening multiply).
//!   The skew is a parameter constant times x, x = σ² (A-S) or σ (GLFT), both held with 64
//!   fractional bits.
//! - Every relative quantity (risk term, spread, reservation offset) is a `U64F64`
//!   fraction of mid: 64 fractional bits, so the absolute error stays below 10⁻¹⁵ of mid,
//!   i.e. far below a tick for any price up to `PRICE_TICKS_MAX` = 10¹² ticks.
//! - The two parameter constants that multiply x (A-S γτ/10⁴, GLFT W/10⁴; and the same
//!   divided by quote_size for the offset per lot) span too many orders of magnitude for one fixed format, so
//!   they are stored as a normalised 64-bit mantissa and a shift (`Scale`), and σ² is
//!   normalised the same way (one leading-zeros count). This keeps the relative error
//!   below 2⁻⁵⁰ for every valid parameter set and replaces a 128-bit division per quote
//!   (|q| = inventory / inventory_max) by two 64×64-bit multiplies.
//! - Prices are `i128` counts of half ticks with 64 fractional bits ("hx"): mid is exact
//!   there, and rounding to a tick is one arithmetic shift.
//! - OFI and β are `I32F32` (`Ofi`); the ticks tilt is at most one tick; the sigma tilt is
//!   |ofi|·σ (64 fractional bits) times the constant β/10⁴, at most β·σ bps.
//! - The fee is ±2f/10⁴ as a `U64F64` fraction, added or subtracted with saturation.
//!
//! Never: allocates, uses a float, reads a clock or panics in `quote` (bad input gives no
//! quote, not a panic). Everything that depends only on parameters is computed in `new`.

use fixed::types::{I32F32, I64F64, U32F32, U64F64};

use crate::model::avellaneda::{self, RefInput, RefQuote};
use crate::model::{
    ModelKind, NoQuote, OfiTilt, Params, ParamsError, QuoteLevel, BPS_PER_UNIT, PRICE_TICKS_MAX,
    RESERVATION_OFFSET_BPS_MAX, SIGMA_BPS_PER_SQRT_S_MAX,
};
use crate::types::{Price, Qty, Side, SymbolSpec, ATOMS_PER_UNIT};

/// σ, volatility of the mid in bps of mid per √second, unsigned fixed point (32 integer,
/// 32 fractional bits: resolution 2.3·10⁻¹⁰ bps/√s). Build one off the hot path with
/// `sigma_from_f64`.
pub type Sigma = U32F32;

/// Normalised order-flow imbalance in [−1, 1] (positive = buy pressure), signed fixed point
/// (32 + 32 bits). Values outside [−1, 1] are clamped by the quoter. Build one off the hot
/// path with `ofi_from_f64`.
pub type Ofi = I32F32;

/// The market state a quote is computed from. `Copy`, built by the engine per event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuoteInput {
    /// Best bid on the book, ticks.
    pub best_bid: Price,
    /// Best ask on the book, ticks.
    pub best_ask: Price,
    /// Our position, lots (positive long, negative short).
    pub inventory: Qty,
    /// σ, bps of mid per √s (from the online estimator, or `Params::sigma_bps_per_sqrt_s`).
    pub sigma: Sigma,
    /// Normalised OFI in [−1, 1].
    pub ofi: Ofi,
    /// Size at the best bid, lots (the micro-price lean; ignored at weight 0).
    pub bid_qty: Qty,
    /// Size at the best ask, lots.
    pub ask_qty: Qty,
}

/// The quote to post, plus the model's intermediate values for diagnostics.
///
/// Invariant: `bid.is_none() == bid_off.is_some()` (same for the ask); when both sides are
/// present, bid < ask, bid < best ask and ask > best bid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quote {
    /// The bid to post, or `None` (then `bid_off` says why).
    pub bid: Option<QuoteLevel>,
    /// The ask to post, or `None` (then `ask_off` says why).
    pub ask: Option<QuoteLevel>,
    /// Why there is no bid; `None` when there is one.
    pub bid_off: Option<NoQuote>,
    /// Why there is no ask; `None` when there is one.
    pub ask_off: Option<NoQuote>,
    /// Reservation price r (before the OFI tilt), ticks.
    pub reservation_ticks: I64F64,
    /// Quote centre r + OFI tilt, ticks.
    pub centre_ticks: I64F64,
    /// Total spread of the model before the clamp, fee included, as a fraction of mid (in
    /// bps: `Quote::model_spread_bps`; after the clamp: `Quoter::spread_bps`).
    pub model_spread: U64F64,
    /// A resting order within this many ticks of its side's target keeps its place:
    /// ⌊requote_band · spread/2⌋ in ticks (0 without a band).
    pub requote_band_ticks: i64,
}

impl Quote {
    /// No quote on either side: the book was unusable.
    pub const NONE: Quote = Quote {
        bid: None,
        ask: None,
        bid_off: Some(NoQuote::Book),
        ask_off: Some(NoQuote::Book),
        reservation_ticks: I64F64::ZERO,
        centre_ticks: I64F64::ZERO,
        model_spread: U64F64::ZERO,
        requote_band_ticks: 0,
    };

    /// Total spread of the model before the clamp, fee included, bps of mid (saturates at
    /// `U64F64::MAX`). Diagnostics, computed on demand: the hot path never needs it.
    pub fn model_spread_bps(&self) -> U64F64 {
        self.model_spread.saturating_mul_int(BPS_INT)
    }
}

/// The fixed-point quoter for one symbol. Immutable after `new`; `quote` is a pure
/// function of `&self` and its input.
#[derive(Clone, Copy, Debug)]
pub struct Quoter {
    params: Params,
    spec: SymbolSpec,
    /// The skew per order as a fraction of mid per unit of x (x = σ² in (bps/√s)² for A-S:
    /// γ·τ/10⁴; x = σ in bps/√s for GLFT: W/10⁴).
    skew_per_x: Scale,
    /// `skew_per_x` / quote_size: the reservation offset per unit of x and per lot.
    offset_per_x_lot: Scale,
    /// (2/γ)·ln(1 + γ/k) / 10⁴, fraction of mid.
    intensity: U64F64,
    /// 2·|fee| / 10⁴, fraction of mid, and whether the fee is a rebate (subtracted).
    fee2: U64F64,
    fee_is_rebate: bool,
    /// β / 10⁴ for the sigma tilt (zero scale with the ticks tilt).
    tilt_per_ofi_sigma: Scale,
    /// `requote_band` as U0.32 bits (band = half-spread · bits / 2³²).
    band_bits: u64,
    /// `microprice_weight` with 48 fractional bits (0 = no lean).
    microprice_bits: u64,
    /// Spread clamp, fractions of mid.
    spread_min: U64F64,
    spread_max: U64F64,
    /// Spread clamp, bps (for the diagnostics, so that a clamped spread reads exactly 5).
    spread_min_bps: U64F64,
    spread_max_bps: U64F64,
    /// Cap of the reservation offset, fraction of mid (1.0).
    offset_cap_bits: u128,
    /// Cap of σ.
    sigma_max: Sigma,
    /// β.
    ofi_beta: I32F32,
    inventory_max_lots: i64,
    quote_size_lots: i64,
    /// The lowest price, ticks, at which `quote_size_lots` meets minNotional:
    /// ⌈min_price_qty / quote_size⌉ with min_price_qty = ⌈min_notional_atoms·10⁸ /
    /// (tick_atoms·step_atoms)⌉ ticks·lots (`i64::MAX` when no price does), so that the
    /// usual case costs one comparison instead of a 128-bit product.
    full_size_min_price: i64,
}

impl Quoter {
    /// Validates `params` and `spec` and precomputes every parameter-only term.
    pub fn new(params: Params, spec: SymbolSpec) -> Result<Quoter, ParamsError> {
        params.validate()?;
        if spec.tick_atoms <= 0 || spec.step_atoms <= 0 || spec.min_notional_atoms < 0 {
            return Err(ParamsError::SymbolSpec);
        }
        // `SymbolSpec::min_qty_at` multiplies price · tick · step in i128; with prices below
        // 3·10¹² ticks this bound keeps it from overflowing.
        if i128::from(spec.tick_atoms) * i128::from(spec.step_atoms) > LOT_VALUE_ATOMS2_MAX {
            return Err(ParamsError::SymbolSpec);
        }
        let p = &params;
        let fraction = |bps: f64| U64F64::saturating_from_num(bps / BPS_PER_UNIT);
        let lot_value = i128::from(spec.tick_atoms) * i128::from(spec.step_atoms);
        let min_notional = i128::from(spec.min_notional_atoms) * i128::from(ATOMS_PER_UNIT);
        let min_price_qty = (min_notional + lot_value - 1) / lot_value;
        let skew_per_x = match p.kind {
            ModelKind::AvellanedaStoikov => p.gamma_per_bps * p.horizon_s / BPS_PER_UNIT,
            ModelKind::Glft => {
                avellaneda::glft_omega_per_sigma(p.gamma_per_bps, p.k_per_bps, p.intensity_a_per_s)
                    / BPS_PER_UNIT
            }
        };
        let tilt_per_ofi_sigma = match p.ofi_tilt {
            OfiTilt::Ticks => 0.0,
            OfiTilt::Sigma => p.ofi_beta / BPS_PER_UNIT,
        };
        Ok(Quoter {
            params,
            spec,
            skew_per_x: Scale::from_f64(skew_per_x),
            offset_per_x_lot: Scale::from_f64(skew_per_x / p.quote_size_lots.0 as f64),
            intensity: fraction(avellaneda::intensity_term_bps(p.gamma_per_bps, p.k_per_bps)),
            fee2: fraction(2.0 * p.maker_fee_bps.abs()),
            fee_is_rebate: p.maker_fee_bps < 0.0,
            tilt_per_ofi_sigma: Scale::from_f64(tilt_per_ofi_sigma),
            // INVARIANT: requote_band ∈ [0, 1] by validation; 2³² itself saturates to u64
            // range only at exactly 1.0, which fits.
            band_bits: (p.requote_band * 4_294_967_296.0) as u64,
            // INVARIANT: microprice_weight ∈ [0, 1] by validation: at most 2⁴⁸.
            microprice_bits: (p.microprice_weight * 281_474_976_710_656.0) as u64,
            spread_min: fraction(p.spread_min_bps),
            spread_max: fraction(p.spread_max_bps),
            spread_min_bps: U64F64::saturating_from_num(p.spread_min_bps),
            spread_max_bps: U64F64::saturating_from_num(p.spread_max_bps),
            offset_cap_bits: fraction(RESERVATION_OFFSET_BPS_MAX).to_bits(),
            sigma_max: Sigma::saturating_from_num(SIGMA_BPS_PER_SQRT_S_MAX),
            ofi_beta: I32F32::saturating_from_num(p.ofi_beta),
            inventory_max_lots: p.inventory_max_lots.0,
            quote_size_lots: p.quote_size_lots.0,
            full_size_min_price: i64::try_from(
                (min_price_qty + i128::from(p.quote_size_lots.0) - 1)
                    / i128::from(p.quote_size_lots.0),
            )
            .unwrap_or(i64::MAX),
        })
    }

    /// The validated parameters this quoter was built from.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The symbol's grid.
    pub fn spec(&self) -> &SymbolSpec {
        &self.spec
    }

    /// The total spread of `quote` after the clamp, bps of mid: a clamped spread reads
    /// exactly `spread_min_bps` or `spread_max_bps`. Diagnostics, off the hot path.
    pub fn spread_bps(&self, quote: &Quote) -> U64F64 {
        quote
            .model_spread_bps()
            .max(self.spread_min_bps)
            .min(self.spread_max_bps)
    }

    /// The quote for `input`. Hot path: no allocation, no float, no panic.
    ///
    /// Bounds that make the arithmetic safe: 0 < best bid < best ask ≤ 10¹² < 2⁴⁰ ticks, so
    /// mid in half ticks M < 2⁴¹; the risk term saturates (`U64F64::MAX` is far beyond any
    /// clamp); the reservation offset and the spread are capped at 1.0 (2⁶⁴ in bits), so
    /// every hx product is < 2¹⁰⁶ and every sum < 2¹⁰⁸. Relative error of the risk term and
    /// of the offset: < 2⁻⁵⁰ (the f64 precision of the constants), i.e. < 10⁻³ tick at
    /// 10¹² ticks.
    pub fn quote(&self, input: &QuoteInput) -> Quote {
        let (best_bid, best_ask) = (input.best_bid.0, input.best_ask.0);
        if best_bid <= 0 || best_ask <= best_bid || best_ask > PRICE_TICKS_MAX {
            return Quote::NONE;
        }
        let mid_hx_int = i128::from(best_bid) + i128::from(best_ask);

        // Skew per order and spread, fractions of mid.
        let sigma = input.sigma.min(self.sigma_max);
        let x_bits = match self.params.kind {
            // σ² exact, 64 fractional bits.
            ModelKind::AvellanedaStoikov => sigma.wide_mul(sigma).to_bits(),
            // σ (32 fractional bits) → 64.
            ModelKind::Glft => u128::from(sigma.to_bits()) << 32,
        };
        let (skew_bits, offset_bits) = if x_bits == 0 {
            (0, 0)
        } else {
            self.skew_and_offset(x_bits, input.inventory.0)
        };
        let skew = U64F64::from_bits(skew_bits);
        let before_fee = skew.saturating_add(self.intensity);
        let model_spread = if self.fee_is_rebate {
            before_fee.saturating_sub(self.fee2)
        } else {
            before_fee.saturating_add(self.fee2)
        };
        // max-then-min rather than `clamp` here and below: no assertion (no panic path) on
        // the hot path; min ≤ max holds by validation.
        let spread = model_spread.max(self.spread_min).min(self.spread_max);

        // Reservation r = mid ∓ offset·mid: a long position (q > 0) moves it down.
        let inventory = input.inventory.0;
        // INVARIANT: offset_bits ≤ offset_cap_bits = 2⁶⁴, so the cast is lossless.
        let offset_hx = offset_bits as i128 * mid_hx_int;
        let reservation_hx = if inventory > 0 {
            (mid_hx_int << 64) - offset_hx
        } else {
            (mid_hx_int << 64) + offset_hx
        };

        let ofi = input.ofi.max(OFI_MIN).min(OFI_MAX);
        let tilt_hx = match self.params.ofi_tilt {
            OfiTilt::Ticks => {
                // In ticks (I32F32), at most one tick either way.
                let tilt = self.ofi_beta.saturating_mul(ofi).max(OFI_MIN).min(OFI_MAX);
                // Ticks with 32 fractional bits → half ticks with 64: × 2 × 2³².
                i128::from(tilt.to_bits()) << 33
            }
            OfiTilt::Sigma => {
                // |ofi|·σ with 64 fractional bits (≤ 1000 < 2¹⁰), times β/10⁴: a fraction
                // of mid ≤ 10·1000/10⁴ = 1.0 (β ≤ OFI_SIGMA_BETA_MAX), i.e. ≤ 2⁶⁴ bits.
                let ofi_sigma =
                    u128::from(ofi.to_bits().unsigned_abs()) * u128::from(sigma.to_bits());
                let tilt_bits = mul_scale(ofi_sigma, self.tilt_per_ofi_sigma).min(1 << 64);
                // INVARIANT: tilt_bits ≤ 2⁶⁴, so the cast is lossless.
                let tilt = tilt_bits as i128 * mid_hx_int;
                if ofi.is_negative() {
                    -tilt
                } else {
                    tilt
                }
            }
        };
        let centre_hx = reservation_hx + tilt_hx + self.microprice_lean_hx(input);

        // Half the spread in half ticks = spread · mid_ticks / 2 = spread · M / 4 ticks.
        // INVARIANT: spread ≤ spread_max ≤ 1.0, so its bits are ≤ 2⁶⁴ and the cast is lossless.
        let half_spread_hx = (spread.to_bits() as i128 * mid_hx_int) >> 1;
        // Half ticks with 64 fractional bits → ticks: shift by 65. `>>` floors (bid rounds
        // down); the ask rounds up as −⌊−x⌋.
        let bid_model = (centre_hx - half_spread_hx) >> 65;
        let ask_model = -((-(centre_hx + half_spread_hx)) >> 65);
        // INVARIANT: both lie within [−2·M, 3·M] ticks (offset, tilt and spread ≤ 1.0 of
        // mid), far inside i64.
        let bid_price = (bid_model as i64).min(best_ask - 1);
        let ask_price = (ask_model as i64).max(best_bid + 1);
        // band·half in the same units: half_spread_hx < 2¹⁰⁶, so (>> 32)·2³² < 2¹⁰⁶.
        let band_hx = (half_spread_hx >> 32) * i128::from(self.band_bits);
        // INVARIANT: band ≤ half-spread ≤ M ticks, inside i64.
        let requote_band_ticks = (band_hx >> 65) as i64;

        let bid = self.level(Side::Buy, bid_price, inventory);
        let ask = self.level(Side::Sell, ask_price, inventory);
        Quote {
            bid: bid.ok(),
            ask: ask.ok(),
            bid_off: bid.err(),
            ask_off: ask.err(),
            reservation_ticks: I64F64::from_bits(reservation_hx >> 1),
            centre_ticks: I64F64::from_bits(centre_hx >> 1),
            model_spread,
            requote_band_ticks,
        }
    }

    /// The f64 reference quote for the same input (σ and OFI converted exactly). Not for the
    /// hot path.
    pub fn reference(&self, input: &QuoteInput) -> RefQuote {
        let input = RefInput {
            best_bid: input.best_bid,
            best_ask: input.best_ask,
            inventory: input.inventory,
            sigma_bps_per_sqrt_s: input.sigma.to_num::<f64>(),
            ofi: input.ofi.to_num::<f64>(),
            bid_qty: input.bid_qty,
            ask_qty: input.ask_qty,
        };
        avellaneda::quote(&self.params, &self.spec, &input)
    }

    /// The skew per order (A-S γσ²τ, GLFT ω) and the reservation offset |q|·skew (capped
    /// at `offset_cap_bits`), both as fractions of mid in `U64F64` bits, from x (σ² or σ,
    /// 64 fractional bits, > 0) and the inventory. No division: x is normalised to a 64-bit
    /// mantissa (truncation error < 2⁻⁶³ relative) and multiplied by the precomputed scales.
    #[inline]
    fn skew_and_offset(&self, x_bits: u128, inventory: i64) -> (u128, u128) {
        let (x_mant, exp) = normalise(x_bits);
        let skew = self.skew_per_x;
        let skew_bits = scale_by_pow2(x_mant * u128::from(skew.mant), exp - skew.shift);
        // |q|·skew = x · skew_per_x / quote_size · |inventory|, |inventory| ≤ inventory_max.
        let k = self.offset_per_x_lot;
        let inventory_abs = inventory
            .unsigned_abs()
            .min(self.inventory_max_lots.unsigned_abs());
        // Keep the top 64 bits of the 128-bit mantissa product (error < 2⁻⁶² relative).
        let product_hi = (x_mant * u128::from(k.mant)) >> 64;
        let offset_bits = scale_by_pow2(product_hi * u128::from(inventory_abs), exp + 64 - k.shift)
            .min(self.offset_cap_bits);
        (skew_bits, offset_bits)
    }

    /// The micro-price lean w·(a − b)/2·(Qᵇ − Qᵃ)/(Qᵇ + Qᵃ) ticks, in half ticks with 64
    /// fractional bits; 0 at weight 0 or when either size is not positive (no division then).
    /// The imbalance is one 128-bit division with 64 fractional bits, w is held with 48
    /// (relative error < 2⁻⁴⁶ of the half-spread), and |lean| ≤ (a − b)/2 ticks < 2⁴⁰·2⁶⁴.
    #[inline]
    fn microprice_lean_hx(&self, input: &QuoteInput) -> i128 {
        let (bid_qty, ask_qty) = (input.bid_qty.0, input.ask_qty.0);
        if self.microprice_bits == 0 || bid_qty <= 0 || ask_qty <= 0 {
            return 0;
        }
        // Both in (0, 2⁶³): the difference shifted by 64 is < 2¹²⁷, the sum > 0.
        let den = i128::from(bid_qty) + i128::from(ask_qty);
        let imbalance = ((i128::from(bid_qty) - i128::from(ask_qty)) << 64) / den;
        // |imbalance| ≤ 2⁶⁴ → 48 fractional bits, times w (≤ 2⁴⁸) → 96, back to 64.
        let lean = ((imbalance >> 16) * i128::from(self.microprice_bits)) >> 32;
        // Half the spread in half ticks is the spread in ticks.
        lean * i128::from(input.best_ask.0 - input.best_bid.0)
    }

    /// Rules 7 and 8 for one side at its final price.
    #[inline]
    fn level(&self, side: Side, price: i64, inventory: i64) -> Result<QuoteLevel, NoQuote> {
        if price <= 0 {
            return Err(NoQuote::PriceNotPositive);
        }
        let mut qty = self.quote_size_lots;
        // price · size < min_price_qty ⟺ price < ⌈min_price_qty / size⌉ (integers, size > 0).
        if price < self.full_size_min_price {
            // Rare (tiny price or size): the exact division lives in `SymbolSpec`.
            qty = self.spec.min_qty_at(Price(price)).0;
        }
        let limit = i128::from(self.inventory_max_lots);
        let beyond = match side {
            Side::Buy => i128::from(inventory) + i128::from(qty) > limit,
            Side::Sell => i128::from(inventory) - i128::from(qty) < -limit,
        };
        if beyond {
            return Err(NoQuote::InventoryLimit);
        }
        Ok(QuoteLevel {
            price: Price(price),
            qty: Qty(qty),
        })
    }
}

/// Converts an f64 σ (bps/√s) into `Sigma`, off the hot path: NaN and negatives become 0,
/// values beyond the type saturate (the quoter caps σ at `SIGMA_BPS_PER_SQRT_S_MAX`).
pub fn sigma_from_f64(sigma_bps_per_sqrt_s: f64) -> Sigma {
    if sigma_bps_per_sqrt_s.is_nan() || sigma_bps_per_sqrt_s <= 0.0 {
        return Sigma::ZERO;
    }
    Sigma::saturating_from_num(sigma_bps_per_sqrt_s)
}

/// Converts an f64 normalised OFI into `Ofi`, off the hot path: clamped to [−1, 1], NaN
/// becomes 0.
pub fn ofi_from_f64(ofi: f64) -> Ofi {
    if ofi.is_nan() {
        return Ofi::ZERO;
    }
    Ofi::saturating_from_num(ofi.clamp(-1.0, 1.0))
}

/// A positive constant that depends on parameters only, as a normalised mantissa and a
/// binary exponent: value = mant · 2^(−shift), mant ∈ [2⁶³, 2⁶⁴), or mant = 0 for zero.
/// Used for the two terms whose range spans too many orders of magnitude for one fixed
/// format at the needed relative precision (γτ/10⁴ from ~10⁻¹⁶ to 10⁶, and the same divided
/// by the inventory limit), so that the hot path multiplies instead of dividing.
#[derive(Clone, Copy, Debug)]
struct Scale {
    mant: u64,
    shift: i32,
}

impl Scale {
    /// Exact conversion of a positive normal f64 (its 53-bit mantissa, shifted to the top);
    /// zero, subnormals, negatives and non-finite values give zero (none occur for valid
    /// `Params` except through underflow, where zero is the right answer).
    fn from_f64(value: f64) -> Scale {
        if !(value.is_normal() && value > 0.0) {
            return Scale { mant: 0, shift: 0 };
        }
        let bits = value.to_bits();
        let biased_exp = ((bits >> 52) & 0x7ff) as i32;
        let mant53 = (bits & ((1 << 52) - 1)) | (1 << 52);
        // value = mant53 · 2^(biased_exp − 1075) = (mant53 · 2¹¹) · 2^(biased_exp − 1086).
        Scale {
            mant: mant53 << 11,
            shift: 1086 - biased_exp,
        }
    }
}

/// x · scale, for x a positive value with 64 fractional bits, in the same units: x is
/// normalised to a 64-bit mantissa (relative error < 2⁻⁶³), multiplied by the scale's
/// mantissa and shifted (floor; saturating at `u128::MAX`).
#[inline]
fn mul_scale(x: u128, scale: Scale) -> u128 {
    if x == 0 {
        return 0;
    }
    let (x_mant, exp) = normalise(x);
    scale_by_pow2(x_mant * u128::from(scale.mant), exp - scale.shift)
}

/// A value with 64 fractional bits (> 0) as its top 64 bits and a binary exponent:
/// x ≈ x_mant · 2^exp in bits, truncation error < 2⁻⁶³ relative.
#[inline]
fn normalise(x: u128) -> (u128, i32) {
    let lz = x.leading_zeros();
    (u128::from(((x << lz) >> 64) as u64), 64 - lz as i32)
}

/// x · 2^exp, flooring when shifting right and saturating at `u128::MAX` when shifting left
/// would overflow.
#[inline]
fn scale_by_pow2(x: u128, exp: i32) -> u128 {
    if exp >= 0 {
        let exp = exp.unsigned_abs();
        if x == 0 {
            0
        } else if exp <= x.leading_zeros() {
            x << exp
        } else {
            u128::MAX
        }
    } else {
        x.checked_shr(exp.unsigned_abs()).unwrap_or(0)
    }
}

const OFI_MIN: I32F32 = I32F32::from_bits(-(1 << 32));
const OFI_MAX: I32F32 = I32F32::from_bits(1 << 32);
const BPS_INT: u128 = 10_000;
/// Largest tick_atoms × step_atoms accepted (10²⁵; BTCUSDT: 10⁶ × 10³ = 10⁹).
const LOT_VALUE_ATOMS2_MAX: i128 = 10_i128.pow(25);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Symbol;
    use proptest::prelude::*;

    const BID: Price = Price(6_183_763); // 61837.63
    const ASK: Price = Price(6_183_764); // 61837.64

    fn btc() -> SymbolSpec {
        SymbolSpec::from_decimals(Symbol::new("BTCUSDT").unwrap(), "0.01", "0.00001", "5").unwrap()
    }

    fn quoter(params: Params) -> Quoter {
        Quoter::new(params, btc()).unwrap()
    }

    fn input(best_bid: Price, best_ask: Price, inventory: i64, sigma: f64, ofi: f64) -> QuoteInput {
        QuoteInput {
            best_bid,
            best_ask,
            inventory: Qty(inventory),
            sigma: sigma_from_f64(sigma),
            ofi: ofi_from_f64(ofi),
            bid_qty: Qty(1_000),
            ask_qty: Qty(1_000),
        }
    }

    fn btc_state(inventory: i64) -> QuoteInput {
        input(BID, ASK, inventory, 1.25, 0.0)
    }

    fn bid(q: &Quote) -> Price {
        q.bid.unwrap().price
    }

    fn ask(q: &Quote) -> Price {
        q.ask.unwrap().price
    }

    #[test]
    fn hand_computed_default_quote() {
        // δ = 18.75 + 1.290770 = 20.040770 bps; half = 6_183_763.5 · 10.020385e-4 =
        // 6196.369 ticks: bid ⌊6_177_567.13⌋, ask ⌈6_189_959.87⌉.
        let quoter = quoter(Params::default());
        let q = quoter.quote(&btc_state(0));
        assert_eq!(
            q.bid,
            Some(QuoteLevel {
                price: Price(6_177_567),
                qty: Qty(100)
            })
        );
        assert_eq!(
            q.ask,
            Some(QuoteLevel {
                price: Price(6_189_960),
                qty: Qty(100)
            })
        );
        assert!((quoter.spread_bps(&q).to_num::<f64>() - 20.040_770_422_75).abs() < 1e-9);
        assert_eq!(quoter.spread_bps(&q), q.model_spread_bps());
        assert_eq!(q.reservation_ticks, I64F64::from_num(6_183_763.5));
        assert_eq!(q.centre_ticks, q.reservation_ticks);
    }

    #[test]
    fn microprice_lean_steps_back_from_a_thin_queue() {
        // A one-tick book (1200 / 1201 ticks, NEXOUSDT-like: 8 bps a tick), σ = 0 and the
        // intensity term alone (1.29 bps ≈ 0.155 tick): at the touch on both sides.
        let params = Params {
            microprice_weight: 1.0,
            ..Params::default()
        };
        let book = |bid_qty: i64, ask_qty: i64| QuoteInput {
            bid_qty: Qty(bid_qty),
            ask_qty: Qty(ask_qty),
            ..input(Price(1_200), Price(1_201), 0, 0.0, 0.0)
        };
        let nexo = |params| {
            let spec =
                SymbolSpec::from_decimals(Symbol::new("NEXOUSDT").unwrap(), "0.001", "0.01", "5");
            Quoter::new(params, spec.unwrap()).unwrap()
        };
        let balanced = nexo(params).quote(&book(1_000, 1_000));
        assert_eq!(
            (bid(&balanced), ask(&balanced)),
            (Price(1_200), Price(1_201))
        );
        // Qᵇ = 100, Qᵃ = 1900: imbalance −0.9, centre 1200.5 − 0.45 = 1200.05 ticks: the bid
        // (about to be run over) steps back a tick, the ask stays at the touch.
        let thin_bid = nexo(params).quote(&book(100, 1_900));
        let centre = thin_bid.centre_ticks.to_num::<f64>();
        assert!((centre - 1_200.05).abs() < 1e-12, "{centre}");
        assert_eq!(
            (bid(&thin_bid), ask(&thin_bid)),
            (Price(1_199), Price(1_201))
        );
        // The mirror image.
        let thin_ask = nexo(params).quote(&book(1_900, 100));
        assert_eq!(
            (bid(&thin_ask), ask(&thin_ask)),
            (Price(1_200), Price(1_202))
        );
        // Weight 0 (the default) and an empty side: no lean.
        let seed = nexo(Params::default()).quote(&book(100, 1_900));
        assert_eq!((bid(&seed), ask(&seed)), (Price(1_200), Price(1_201)));
        let empty = nexo(params).quote(&book(0, 1_900));
        assert_eq!(empty.centre_ticks, I64F64::from_num(1_200.5));
    }

    #[test]
    fn long_inventory_moves_quotes_down() {
        let quoter = quoter(Params::default());
        let flat = quoter.quote(&btc_state(0));
        let long = quoter.quote(&btc_state(50)); // q = 0.5 order of 100 lots
        let short = quoter.quote(&btc_state(-50));
        // r = s·(1 − 0.5·18.75e-4) = 6_183_763.5 − 5797.278 = 6_177_966.22 ticks.
        let r = long.reservation_ticks.to_num::<f64>();
        assert!((r - (6_183_763.5 - 5_797.278_28)).abs() < 1e-3, "{r}");
        assert!(bid(&long) < bid(&flat) && ask(&long) < ask(&flat));
        assert!(bid(&short) > bid(&flat) && ask(&short) > ask(&flat));
        // Symmetric around mid, and the spread does not depend on inventory.
        assert_eq!(long.model_spread, flat.model_spread);
        assert_eq!(bid(&flat).0 - bid(&long).0, ask(&short).0 - ask(&flat).0);
    }

    #[test]
    fn spread_clamped_at_min() {
        // σ = 0 and a steep intensity: δ = 20·ln(1 + 0.1/1000) ≈ 0.002 bps → 5 bps.
        let params = Params {
            k_per_bps: 1_000.0,
            spread_min_bps: 5.0,
            ..Params::default()
        };
        let quoter = quoter(params);
        let q = quoter.quote(&input(BID, ASK, 0, 0.0, 0.0));
        assert!(q.model_spread_bps() < 5);
        assert_eq!(quoter.spread_bps(&q), 5);
        // 2.5 bps of 6_183_763.5 = 1545.94 ticks each side.
        assert_eq!(bid(&q), Price(6_183_763 - 1_546));
        assert_eq!(ask(&q), Price(6_183_764 + 1_546));
    }

    #[test]
    fn spread_clamped_at_max() {
        // σ = 10 bps/√s: γσ²τ = 1200 bps → 200 bps.
        let quoter = quoter(Params::default());
        let q = quoter.quote(&input(BID, ASK, 0, 10.0, 0.0));
        assert!(q.model_spread_bps() > 1_200);
        assert_eq!(quoter.spread_bps(&q), 200);
        // 100 bps of 6_183_763.5 = 61_837.635 ticks each side.
        assert_eq!(bid(&q), Price(6_183_763 - 61_838)); // ⌊6_121_925.865⌋
        assert_eq!(ask(&q), Price(6_183_764 + 61_838)); // ⌈6_245_601.135⌉
    }

    #[test]
    fn rounding_is_away_from_the_centre() {
        // mid 10_001, δ = 20.0408 bps → half 10.0214 ticks: 9990.98 → 9990, 10011.02 → 10012.
        // A limit above the raised (minNotional) size at 100 USDT.
        let wide = Params {
            inventory_max_lots: Qty(100_000),
            ..Params::default()
        };
        let q = quoter(wide).quote(&input(Price(10_000), Price(10_002), 0, 1.25, 0.0));
        assert_eq!(bid(&q), Price(9_990));
        assert_eq!(ask(&q), Price(10_012));
        // A model price exactly on a tick stays there. The spread is pinned (min = max) at
        // 2⁻¹⁰ of mid = 9.765625 bps, exact in binary: at mid 10_240 the half spread is
        // exactly 5 ticks. (A decimal spread such as 10 bps is not exact in binary; a model
        // price within ~10⁻¹⁹ of mid of a tick may then round either way.)
        let params = Params {
            spread_min_bps: 9.765_625,
            spread_max_bps: 9.765_625,
            ..wide
        };
        let q = quoter(params).quote(&input(Price(10_239), Price(10_241), 0, 0.0, 0.0));
        assert_eq!((bid(&q), ask(&q)), (Price(10_235), Price(10_245)));
    }

    #[test]
    fn never_crosses_the_book() {
        let quoter = quoter(Params::default());
        // Short at the limit (5 orders): r is 5 · 18.75 bps above mid, so the model bid
        // would cross the ask: it is held at best ask − 1 tick.
        let short = quoter.quote(&btc_state(-500));
        assert_eq!(bid(&short), Price(ASK.0 - 1));
        assert_eq!(short.ask_off, Some(NoQuote::InventoryLimit));
        // Just inside the limit, the ask is still allowed and sits above the model.
        let short = quoter.quote(&btc_state(-400));
        assert_eq!(bid(&short), Price(ASK.0 - 1));
        assert!(ask(&short) > ASK);
        // Long: the ask is held at best bid + 1 tick.
        let long = quoter.quote(&btc_state(400));
        assert_eq!(ask(&long), Price(BID.0 + 1));
        assert!(bid(&long) < BID);
    }

    #[test]
    fn ofi_tilt_is_at_most_one_tick_and_signed() {
        let quoter_default = quoter(Params::default());
        let flat = quoter_default.quote(&btc_state(0));
        let up = quoter_default.quote(&input(BID, ASK, 0, 1.25, 1.0));
        let down = quoter_default.quote(&input(BID, ASK, 0, 1.25, -1.0));
        // β·ofi = 0.3 tick.
        let centre = |q: &Quote| q.centre_ticks.to_num::<f64>();
        assert!((centre(&up) - centre(&flat) - 0.3).abs() < 1e-9);
        assert!((centre(&down) - centre(&flat) + 0.3).abs() < 1e-9);
        assert_eq!(up.reservation_ticks, flat.reservation_ticks);
        for q in [&up, &down] {
            assert!((bid(q).0 - bid(&flat).0).abs() <= 1);
            assert!((ask(q).0 - ask(&flat).0).abs() <= 1);
        }
        // β = 50: β·ofi = 50 ticks, clamped to exactly one; the mid is on a half tick so the
        // whole quote moves by one tick.
        let strong = quoter(Params {
            ofi_beta: 50.0,
            ..Params::default()
        });
        let flat = strong.quote(&btc_state(0));
        let up = strong.quote(&input(BID, ASK, 0, 1.25, 1.0));
        let down = strong.quote(&input(BID, ASK, 0, 1.25, -0.5));
        assert_eq!(centre(&up) - centre(&flat), 1.0);
        assert_eq!(centre(&down) - centre(&flat), -1.0);
        assert_eq!(
            (bid(&up).0 - bid(&flat).0, ask(&up).0 - ask(&flat).0),
            (1, 1)
        );
        assert_eq!(
            (bid(&down).0 - bid(&flat).0, ask(&down).0 - ask(&flat).0),
            (-1, -1)
        );
        // An out-of-range OFI in the hot path is clamped, not trusted.
        let wild = QuoteInput {
            ofi: Ofi::from_num(1_000),
            ..btc_state(0)
        };
        assert_eq!(strong.quote(&wild), up);
    }

    #[test]
    fn inventory_limit_stops_the_right_side() {
        let quoter = quoter(Params::default());
        let cases = [
            (0, None, None),
            (400, None, None), // +100 lands exactly on the 500-lot limit: allowed
            (401, Some(NoQuote::InventoryLimit), None),
            (500, Some(NoQuote::InventoryLimit), None),
            (1_250, Some(NoQuote::InventoryLimit), None), // beyond: only the ask
            (-400, None, None),
            (-401, None, Some(NoQuote::InventoryLimit)),
            (-500, None, Some(NoQuote::InventoryLimit)),
            (i64::MIN, None, Some(NoQuote::InventoryLimit)),
            (i64::MAX, Some(NoQuote::InventoryLimit), None),
        ];
        for (inventory, bid_off, ask_off) in cases {
            let q = quoter.quote(&btc_state(inventory));
            assert_eq!(
                (q.bid_off, q.ask_off),
                (bid_off, ask_off),
                "inventory {inventory}"
            );
            assert_eq!(q.bid.is_none(), bid_off.is_some());
            assert_eq!(q.ask.is_none(), ask_off.is_some());
        }
    }

    #[test]
    fn min_notional_raises_the_size() {
        let quoter = quoter(Params {
            inventory_max_lots: Qty(100_000),
            ..Params::default()
        });
        // At 100.00 USDT, 100 lots = 0.001 BTC = 0.10 USDT < 5: raised to
        // ⌈5 / (price · 0.00001)⌉ lots at each side's own price.
        let q = quoter.quote(&input(Price(10_000), Price(10_001), 0, 1.25, 0.0));
        let (b, a) = (q.bid.unwrap(), q.ask.unwrap());
        // mid 10_000.5, half spread 10.021 ticks: bid ⌊9990.48⌋ = 99.90 USDT.
        assert_eq!(b.price, Price(9_990));
        // 5006 · 0.00001 · 99.90 = 5.0009 ≥ 5 > 5005 · 0.00001 · 99.90 = 4.99995.
        assert_eq!(b.qty, Qty(5_006));
        assert_eq!(a.qty, btc().min_qty_at(a.price));
        assert!(btc().meets_min_notional(b.price, b.qty));
        assert!(!btc().meets_min_notional(b.price, Qty(b.qty.0 - 1)));
        // The inventory rule applies to the raised size: 96_000 + 5006 > 100_000.
        // (σ = 0: no skew, so the bid stays near the book and only the size rule can drop it.)
        let q = quoter.quote(&input(Price(10_000), Price(10_001), 96_000, 0.0, 0.0));
        assert_eq!(q.bid_off, Some(NoQuote::InventoryLimit));
        assert!(q.ask.is_some());
        // At the BTCUSDT price the configured 100 lots are well above the 9-lot minimum.
        assert_eq!(quoter.quote(&btc_state(0)).bid.unwrap().qty, Qty(100));
    }

    #[test]
    fn degenerate_books_give_no_quote() {
        let quoter = quoter(Params::default());
        let books = [
            (Price(100), Price(100)),
            (Price(101), Price(100)),
            (Price(0), Price(100)),
            (Price(-5), Price(100)),
            (Price(-5), Price(-1)),
            (Price(i64::MAX - 1), Price(i64::MAX)),
            (Price(1), Price(PRICE_TICKS_MAX + 1)),
            (Price(i64::MIN), Price(i64::MAX)),
        ];
        for (b, a) in books {
            assert_eq!(
                quoter.quote(&input(b, a, 0, 1.25, 0.0)),
                Quote::NONE,
                "{b:?} {a:?}"
            );
        }
        // The smallest book there is still quotes (a 0.003-tick spread rounds out to the
        // book itself); a huge long skew puts the model bid at ≤ 0 ticks: dropped.
        let no_min_notional = SymbolSpec {
            min_notional_atoms: 0,
            ..btc()
        };
        let quoter = Quoter::new(Params::default(), no_min_notional).unwrap();
        let q = quoter.quote(&input(Price(1), Price(2), 0, 1.25, 0.0));
        assert_eq!((bid(&q), ask(&q)), (Price(1), Price(2)));
        let q = quoter.quote(&input(Price(1), Price(2), 99_900, 1_000.0, 0.0));
        assert_eq!(q.bid_off, Some(NoQuote::PriceNotPositive));
        assert_eq!(ask(&q), Price(2));
    }

    #[test]
    fn huge_skew_is_capped_not_overflowed() {
        // σ at the cap, 3-day horizon, (almost) full short position: the offset is capped at
        // 100 % of mid, so the ask sits at 2× mid plus the half spread (1 %).
        let params = Params {
            horizon_s: 86_400.0 * 3.0,
            inventory_max_lots: Qty(100_000),
            ..Params::default()
        };
        let q = quoter(params).quote(&input(BID, ASK, -99_900, 1e9, 0.0));
        assert_eq!(q.reservation_ticks, I64F64::from_num(2 * 6_183_763 + 1));
        assert_eq!(ask(&q), Price(12_367_527 + 61_838));
        assert_eq!(bid(&q), Price(ASK.0 - 1));
        let q = quoter(params).quote(&input(BID, ASK, 99_900, 1e9, 0.0));
        assert_eq!(q.reservation_ticks, I64F64::ZERO);
        assert_eq!(ask(&q), Price(BID.0 + 1));
        // r = 0, so the model bid is below zero: dropped for its price before the
        // inventory rule is even asked.
        assert_eq!(q.bid_off, Some(NoQuote::PriceNotPositive));
    }

    #[test]
    fn glft_matches_its_closed_form() {
        // Guéant, Lehalle & Fernandez-Tapia (2013): c₁ = (1/γ)·ln(1 + γ/k),
        // ω = √(σ²γ/(2kA)·(1 + γ/k)^(1 + k/γ)); spread 2c₁ + ω, skew ω per order.
        let (gamma, k, a, sigma): (f64, f64, f64, f64) = (0.01, 0.5, 1.2, 1.25);
        let c1 = (1.0 / gamma) * (1.0 + gamma / k).ln();
        let omega = (sigma * sigma * gamma / (2.0 * k * a)
            * (1.0 + gamma / k).powf(1.0 + k / gamma))
        .sqrt();
        let params = Params {
            kind: ModelKind::Glft,
            gamma_per_bps: gamma,
            k_per_bps: k,
            intensity_a_per_s: a,
            ..Params::default()
        };
        let quoter = quoter(params);
        let flat = quoter.quote(&input(BID, ASK, 0, sigma, 0.0));
        assert!((quoter.spread_bps(&flat).to_num::<f64>() - (2.0 * c1 + omega)).abs() < 1e-9);
        // One order (100 lots) long moves the reservation down by ω bps of mid.
        let long = quoter.quote(&input(BID, ASK, 100, sigma, 0.0));
        let mid = 6_183_763.5;
        let shift_bps = (mid - long.reservation_ticks.to_num::<f64>()) / mid * 1e4;
        assert!((shift_bps - omega).abs() < 1e-9, "{shift_bps} vs {omega}");
        // The reference agrees to the tick.
        let reference = quoter.reference(&input(BID, ASK, 100, sigma, 0.0));
        assert!((reference.skew_per_order_bps - omega).abs() < 1e-12);
        assert_eq!(reference.bid.map(|l| l.price), long.bid.map(|l| l.price));
        assert_eq!(reference.ask.map(|l| l.price), long.ask.map(|l| l.price));
    }

    #[test]
    fn the_fee_widens_both_half_spreads_and_a_rebate_narrows_them() {
        let base = Params {
            spread_min_bps: 0.01,
            ..Params::default()
        };
        let spread = |fee: f64| {
            let quoter = quoter(Params {
                maker_fee_bps: fee,
                ..base
            });
            quoter
                .spread_bps(&quoter.quote(&btc_state(0)))
                .to_num::<f64>()
        };
        let bare = spread(0.0);
        assert!((bare - 20.040_770_422).abs() < 1e-8);
        assert!((spread(10.0) - (bare + 20.0)).abs() < 1e-9);
        assert!((spread(-0.5) - (bare - 1.0)).abs() < 1e-9);
        // A rebate larger than the model's half-spread floors the spread at the clamp.
        assert!((spread(-50.0) - 0.01).abs() < 1e-12);
    }

    #[test]
    fn sigma_tilt_moves_the_centre_by_beta_ofi_sigma_bps() {
        let params = Params {
            ofi_tilt: OfiTilt::Sigma,
            ofi_beta: 0.5,
            ..Params::default()
        };
        let quoter = quoter(params);
        let mid = 6_183_763.5;
        for ofi in [1.0, -0.6, 0.0] {
            let q = quoter.quote(&input(BID, ASK, 0, 1.25, ofi));
            let tilt_bps = (q.centre_ticks - q.reservation_ticks).to_num::<f64>() / mid * 1e4;
            assert!(
                (tilt_bps - 0.5 * ofi * 1.25).abs() < 1e-9,
                "ofi {ofi}: {tilt_bps}"
            );
        }
        // β above 10 is refused in this mode.
        let wild = Params {
            ofi_beta: 11.0,
            ..params
        };
        assert_eq!(wild.validate(), Err(ParamsError::OfiBeta(11.0)));
    }

    #[test]
    fn requote_band_is_a_fraction_of_the_half_spread() {
        // Half spread 10.0204 bps of 6_183_763.5 ticks = 6196.37 ticks.
        for (band, ticks) in [(0.0, 0), (0.5, 3_098), (1.0, 6_196)] {
            let q = quoter(Params {
                requote_band: band,
                ..Params::default()
            })
            .quote(&btc_state(0));
            assert_eq!(q.requote_band_ticks, ticks, "band {band}");
        }
    }

    /// Regression for the seed's "spread 0.0 bps" bug (a horizon that was far too long plus
    /// a wrong formula).
    #[test]
    fn regression_spread_is_not_zero_on_btcusdt() {
        let default = quoter(Params::default());
        let q = default.quote(&btc_state(0));
        let spread = default.spread_bps(&q).to_num::<f64>();
        assert!(spread > 0.0);
        assert!((5.0..=200.0).contains(&spread));
        assert!(
            spread != 5.0 && spread != 200.0,
            "spread pinned at a clamp: {spread}"
        );
        let quoted_bps = (ask(&q).0 - bid(&q).0) as f64 / 6_183_763.5 * 1e4;
        assert!((quoted_bps - spread).abs() < 0.01, "{quoted_bps}");
        // A horizon of days puts γσ²τ at 18.75 · 2160 = 40_500 bps: the model is meaningless
        // and the clamp does all the work — which is why the config rejects such horizons.
        let days = Params {
            horizon_s: 86_400.0 * 3.0,
            ..Params::default()
        };
        let wide = quoter(days);
        let q = wide.quote(&btc_state(0));
        assert_eq!(wide.spread_bps(&q), 200);
        assert!((q.model_spread_bps().to_num::<f64>() - 40_501.29).abs() < 0.01);
    }

    #[test]
    fn conversions_off_the_hot_path() {
        assert_eq!(sigma_from_f64(f64::NAN), Sigma::ZERO);
        assert_eq!(sigma_from_f64(-1.0), Sigma::ZERO);
        assert_eq!(sigma_from_f64(f64::INFINITY), Sigma::MAX);
        assert_eq!(sigma_from_f64(1.25), Sigma::from_num(1.25));
        assert_eq!(ofi_from_f64(f64::NAN), Ofi::ZERO);
        assert_eq!(ofi_from_f64(7.0), Ofi::ONE);
        assert_eq!(ofi_from_f64(f64::NEG_INFINITY), Ofi::NEG_ONE);
    }

    #[test]
    fn scale_is_exact_and_shifts_saturate() {
        for value in [1.0, 0.75, 12.0 / 1e4, 1e6, 1e-300, f64::MAX] {
            let scale = Scale::from_f64(value);
            assert!(scale.mant >> 63 == 1, "{value}");
            // mant · 2^−shift == value exactly (checked in f64, which holds 53 bits).
            assert_eq!(scale.mant as f64 * (-scale.shift as f64).exp2(), value);
        }
        for value in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-310] {
            assert_eq!(Scale::from_f64(value).mant, 0, "{value}");
        }
        assert_eq!(scale_by_pow2(5, 0), 5);
        assert_eq!(scale_by_pow2(5, 2), 20);
        assert_eq!(scale_by_pow2(5, -1), 2);
        assert_eq!(scale_by_pow2(1, 127), 1 << 127);
        assert_eq!(scale_by_pow2(2, 127), u128::MAX);
        assert_eq!(scale_by_pow2(0, 500), 0);
        assert_eq!(scale_by_pow2(u128::MAX, -127), 1);
        assert_eq!(scale_by_pow2(u128::MAX, -128), 0);
        assert_eq!(scale_by_pow2(u128::MAX, i32::MIN), 0);
    }

    #[test]
    fn bad_spec_is_refused() {
        let spec = SymbolSpec {
            tick_atoms: 0,
            ..btc()
        };
        assert_eq!(
            Quoter::new(Params::default(), spec).err(),
            Some(ParamsError::SymbolSpec)
        );
        let params = Params {
            gamma_per_bps: -1.0,
            ..Params::default()
        };
        assert_eq!(
            Quoter::new(params, btc()).err(),
            Some(ParamsError::Gamma(-1.0))
        );
    }

    // ---- property tests ----

    /// A log-uniform f64 in [lo, hi].
    fn log_uniform(lo: f64, hi: f64) -> impl Strategy<Value = f64> {
        (0.0..=1.0f64).prop_map(move |u| (lo.ln() + u * (hi.ln() - lo.ln())).exp())
    }

    prop_compose! {
        fn arb_params()(
            gamma in log_uniform(1e-9, 1e3),
            k in log_uniform(1e-9, 1e9),
            tau in log_uniform(1e-3, 1e7),
            beta in prop_oneof![0.0..10.0f64, log_uniform(10.0, 1e6)],
            spread_min in log_uniform(1e-3, 1e4),
            spread_extra in log_uniform(1e-3, 1e4),
            inventory_max in prop_oneof![1i64..1_000_000_000, 1i64..i64::MAX / 2],
            size_fraction in 0.0..=1.0f64,
            glft in any::<bool>(),
            intensity_a in log_uniform(1e-6, 1e6),
            fee in prop_oneof![Just(0.0), -5.0..15.0f64, -1_000.0..1_000.0f64],
            sigma_tilt in any::<bool>(),
            band in 0.0..=1.0f64,
            microprice in prop_oneof![Just(0.0), 0.0..=1.0f64],
        ) -> Params {
            Params {
                gamma_per_bps: gamma,
                sigma_bps_per_sqrt_s: 1.25,
                k_per_bps: k,
                horizon_s: tau,
                ofi_beta: if sigma_tilt { beta.min(crate::model::OFI_SIGMA_BETA_MAX) } else { beta },
                spread_min_bps: spread_min,
                spread_max_bps: (spread_min + spread_extra).min(10_000.0),
                inventory_max_lots: Qty(inventory_max),
                quote_size_lots: Qty(
                    ((inventory_max as f64 * size_fraction) as i64).clamp(1, inventory_max),
                ),
                kind: if glft { ModelKind::Glft } else { ModelKind::AvellanedaStoikov },
                intensity_a_per_s: intensity_a,
                maker_fee_bps: fee,
                ofi_tilt: if sigma_tilt { OfiTilt::Sigma } else { OfiTilt::Ticks },
                requote_band: band,
                microprice_weight: microprice,
            }
        }
    }

    prop_compose! {
        fn arb_spec()(
            tick in prop::sample::select(vec![1i64, 100, 1_000_000, 100_000_000]),
            step in prop::sample::select(vec![1i64, 1_000, 100_000, 100_000_000]),
            min_notional in
                prop::sample::select(vec![0i64, 100_000_000, 500_000_000, 1_000_000_000_000]),
        ) -> SymbolSpec {
            SymbolSpec {
                symbol: Symbol::new("TEST").unwrap(),
                tick_atoms: tick,
                step_atoms: step,
                min_notional_atoms: min_notional,
            }
        }
    }

    prop_compose! {
        fn arb_input(inventory_max: i64)(
            log_bid in 0.0..=(1e10f64).ln(),
            width in prop_oneof![1i64..4, 1i64..1_000, 0i64..=0],
            width_rel in 0.0..0.05f64,
            inventory in -(inventory_max + inventory_max / 2)..=(inventory_max + inventory_max / 2),
            sigma in prop_oneof![Just(0.0), log_uniform(1e-4, 5_000.0)],
            ofi_bits in -(1i64 << 32)..=(1i64 << 32),
            bid_qty in prop_oneof![Just(0i64), 1i64..1_000_000, 1i64..i64::MAX],
            ask_qty in prop_oneof![Just(0i64), 1i64..1_000_000, 1i64..i64::MAX],
        ) -> QuoteInput {
            let best_bid = log_bid.exp().round().max(1.0) as i64;
            let width = if width == 0 { ((best_bid as f64 * width_rel) as i64).max(1) } else { width };
            QuoteInput {
                best_bid: Price(best_bid),
                best_ask: Price(best_bid + width),
                inventory: Qty(inventory),
                sigma: sigma_from_f64(sigma),
                ofi: Ofi::from_bits(ofi_bits),
                bid_qty: Qty(bid_qty),
                ask_qty: Qty(ask_qty),
            }
        }
    }

    fn params_and_input() -> impl Strategy<Value = (Params, SymbolSpec, QuoteInput)> {
        (arb_params(), arb_spec()).prop_flat_map(|(params, spec)| {
            arb_input(params.inventory_max_lots.0).prop_map(move |input| (params, spec, input))
        })
    }

    /// One side of fixed vs reference: within one tick, same size at the same price, and
    /// the same presence unless a one-tick price difference explains it.
    fn check_side(
        params: &Params,
        spec: &SymbolSpec,
        side: Side,
        fixed: Option<QuoteLevel>,
        reference: Option<QuoteLevel>,
        reference_price: i64,
        inventory: Qty,
    ) -> Result<(), TestCaseError> {
        match (fixed, reference) {
            (Some(f), Some(r)) => {
                prop_assert!(
                    (f.price.0 - r.price.0).abs() <= 1,
                    "{side:?} {f:?} vs {r:?}"
                );
                if f.price == r.price {
                    prop_assert_eq!(f.qty, r.qty);
                }
            }
            (None, None) => {}
            (f, _) => {
                // Presence differs: some price one tick from the reference's must give the
                // fixed quoter's answer under the reference rules.
                let explained = [reference_price - 1, reference_price + 1].iter().any(|&p| {
                    avellaneda::level_for(params, spec, side, Price(p), inventory).ok() == f
                });
                prop_assert!(
                    explained,
                    "{side:?}: fixed {f:?}, reference price {reference_price}"
                );
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn fixed_point_matches_f64_reference_within_one_tick(
            (params, spec, input) in params_and_input()
        ) {
            let quoter = Quoter::new(params, spec).unwrap();
            let fixed = quoter.quote(&input);
            let reference = quoter.reference(&input);
            let ref_bid = (reference.bid_model_ticks.floor() as i64).min(input.best_ask.0 - 1);
            let ref_ask = (reference.ask_model_ticks.ceil() as i64).max(input.best_bid.0 + 1);
            check_side(&params, &spec, Side::Buy, fixed.bid, reference.bid, ref_bid, input.inventory)?;
            check_side(&params, &spec, Side::Sell, fixed.ask, reference.ask, ref_ask, input.inventory)?;
            // Every fixed level obeys the reference's size/inventory rules at its own price.
            if let Some(level) = fixed.bid {
                prop_assert_eq!(avellaneda::level_for(&params, &spec, Side::Buy, level.price, input.inventory), Ok(level));
            }
            if let Some(level) = fixed.ask {
                prop_assert_eq!(avellaneda::level_for(&params, &spec, Side::Sell, level.price, input.inventory), Ok(level));
            }
            // Diagnostics agree far below a tick / a basis point.
            let tol_ticks = 1e-12 * reference.mid_ticks + 1e-6;
            let centre_error = (fixed.centre_ticks.to_num::<f64>() - reference.centre_ticks).abs();
            prop_assert!(centre_error <= tol_ticks, "centre off by {} ticks", centre_error);
            prop_assert!((quoter.spread_bps(&fixed).to_num::<f64>() - reference.spread_bps).abs() <= 1e-6);
        }

        #[test]
        fn never_crosses_and_never_panics(
            params in arb_params(),
            best_bid in any::<i64>(),
            width in prop_oneof![any::<i64>(), 1i64..10],
            inventory in any::<i64>(),
            sigma_bits in any::<u64>(),
            ofi_bits in any::<i64>(),
            bid_qty in any::<i64>(),
            ask_qty in any::<i64>(),
        ) {
            let quoter = Quoter::new(params, btc()).unwrap();
            let input = QuoteInput {
                best_bid: Price(best_bid),
                best_ask: Price(best_bid.saturating_add(width)),
                inventory: Qty(inventory),
                sigma: Sigma::from_bits(sigma_bits),
                ofi: Ofi::from_bits(ofi_bits),
                bid_qty: Qty(bid_qty),
                ask_qty: Qty(ask_qty),
            };
            let q = quoter.quote(&input);
            prop_assert_eq!(q.bid.is_none(), q.bid_off.is_some());
            prop_assert_eq!(q.ask.is_none(), q.ask_off.is_some());
            if let Some(b) = q.bid {
                prop_assert!(b.price < input.best_ask && b.price.0 > 0 && b.qty.0 > 0);
                prop_assert!(i128::from(inventory) + i128::from(b.qty.0) <= i128::from(params.inventory_max_lots.0));
            }
            if let Some(a) = q.ask {
                prop_assert!(a.price > input.best_bid && a.qty.0 > 0);
                prop_assert!(i128::from(inventory) - i128::from(a.qty.0) >= -i128::from(params.inventory_max_lots.0));
            }
            if let (Some(b), Some(a)) = (q.bid, q.ask) {
                prop_assert!(b.price < a.price);
            }
        }

        #[test]
        fn min_notional_shortcut_matches_spec(
            spec in arb_spec(),
            price in 1i64..1_000_000_000_000,
            qty in 1i64..1_000_000_000,
        ) {
            let params = Params {
                inventory_max_lots: Qty(i64::MAX),
                quote_size_lots: Qty(qty),
                ..Params::default()
            };
            let quoter = Quoter::new(params, spec).unwrap();
            let level = quoter.level(Side::Buy, price, 0).unwrap();
            prop_assert_eq!(level.qty == Qty(qty), spec.meets_min_notional(Price(price), Qty(qty)));
        }
    }
}
