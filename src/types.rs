//! Numbers of the market: `Price` (integer ticks), `Qty` (integer lots), `Side`, `Symbol`
//! and `SymbolSpec`, and the exact conversion between Binance decimal strings and them.
//!
//! Owns: every decimal ⇄ integer conversion in the project. A decimal string from the wire
//! ("61837.63000000") is read straight into an integer count of *atoms* (10⁻⁸, Binance's
//! precision) and then into ticks or lots by exact division; a value that is not a whole
//! number of ticks/lots is an error, never rounded silently. Printing goes the other way,
//! into a caller's byte buffer.
//!
//! Never: touches a float, allocates on the parse/print path (`parse_*`, `write_*` take and
//! fill slices), or panics on input — malformed text is a `DecimalError`.

use std::fmt;

/// Decimal places Binance uses on the wire; one atom is 10⁻⁸ of a unit.
pub const DECIMALS: u32 = 8;
/// Atoms per whole unit (10⁸).
pub const ATOMS_PER_UNIT: i64 = 100_000_000;
/// Longest text `write_atoms` can produce: sign, 19 digits, dot, 8 decimals.
pub const DECIMAL_TEXT_MAX: usize = 32;
/// Longest symbol name we accept (Binance's are ≤ 20 characters).
pub const SYMBOL_LEN_MAX: usize = 20;

/// A price as a whole number of ticks (tickSize from exchangeInfo).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Price(pub i64);

/// A quantity as a whole number of lots (stepSize from exchangeInfo). Signed so that an
/// inventory (position) is a `Qty` too: positive long, negative short.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Qty(pub i64);

/// Which side of the book an order or a quote is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// A bid: buys the base asset.
    Buy,
    /// An ask: sells the base asset.
    Sell,
}

impl Side {
    /// +1 for a buy, −1 for a sell: the sign of the inventory change of a fill.
    pub const fn sign(self) -> i64 {
        match self {
            Side::Buy => 1,
            Side::Sell => -1,
        }
    }

    /// The other side.
    pub const fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }

    /// Binance's spelling (`BUY` / `SELL`).
    pub const fn as_wire(self) -> &'static str {
        match self {
            Side::Buy => "BUY",
            Side::Sell => "SELL",
        }
    }
}

/// Why a decimal string was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecimalError {
    /// Nothing to parse (or only a dot).
    Empty,
    /// A character other than a digit or a single dot (signs included: the wire never
    /// sends a negative price or quantity).
    InvalidChar,
    /// More than one dot.
    TwoDots,
    /// More than eight significant decimals.
    TooPrecise,
    /// Not a whole number of ticks / lots / atoms for the spec it was parsed against.
    OffGrid,
    /// Larger than an i64 count of atoms.
    Overflow,
}

impl fmt::Display for DecimalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            DecimalError::Empty => "empty number",
            DecimalError::InvalidChar => "invalid character (only digits and one '.')",
            DecimalError::TwoDots => "more than one '.'",
            DecimalError::TooPrecise => "more than 8 decimals",
            DecimalError::OffGrid => "not a whole multiple of the tick/step size",
            DecimalError::Overflow => "number too large",
        };
        f.write_str(text)
    }
}

impl std::error::Error for DecimalError {}

/// Parses an unsigned decimal (`"61837.63000000"`, `"5"`, `".5"`, `"0.00001"`) into atoms
/// (10⁻⁸). Trailing zeros past the eighth decimal are accepted; a non-zero digit there is
/// `TooPrecise`.
pub fn parse_atoms(text: &[u8]) -> Result<i64, DecimalError> {
    let mut value: i64 = 0;
    let mut decimals: u32 = 0;
    let mut seen_dot = false;
    let mut digits = 0usize;
    for &byte in text {
        match byte {
            b'0'..=b'9' => {
                digits += 1;
                let digit = i64::from(byte - b'0');
                if seen_dot {
                    if decimals == DECIMALS {
                        if digit != 0 {
                            return Err(DecimalError::TooPrecise);
                        }
                        continue;
                    }
                    decimals += 1;
                }
                value = value
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(digit))
                    .ok_or(DecimalError::Overflow)?;
            }
            b'.' => {
                if seen_dot {
                    return Err(DecimalError::TwoDots);
                }
                seen_dot = true;
            }
            _ => return Err(DecimalError::InvalidChar),
        }
    }
    if digits == 0 {
        return Err(DecimalError::Empty);
    }
    value
        .checked_mul(POW10[(DECIMALS - decimals) as usize])
        .ok_or(DecimalError::Overflow)
}

/// Writes `atoms` as a decimal with exactly `decimals` (≤ 8) places into `out`, returns the
/// number of bytes written. `decimals` below what the value needs truncates nothing: the
/// caller passes `SymbolSpec::price_decimals` etc., which always suffice for on-grid values.
pub fn write_atoms(atoms: i64, decimals: u32, out: &mut [u8; DECIMAL_TEXT_MAX]) -> usize {
    let decimals = decimals.min(DECIMALS);
    let negative = atoms < 0;
    let magnitude = atoms.unsigned_abs();
    let unit = ATOMS_PER_UNIT as u64;
    let mut int_part = magnitude / unit;
    let frac_part = (magnitude % unit) / POW10[(DECIMALS - decimals) as usize] as u64;

    // Digits are produced right to left into a scratch buffer, then copied in order.
    let mut scratch = [0u8; DECIMAL_TEXT_MAX];
    let mut pos = DECIMAL_TEXT_MAX;
    let mut frac = frac_part;
    for _ in 0..decimals {
        pos -= 1;
        scratch[pos] = b'0' + (frac % 10) as u8;
        frac /= 10;
    }
    if decimals > 0 {
        pos -= 1;
        scratch[pos] = b'.';
    }
    loop {
        pos -= 1;
        scratch[pos] = b'0' + (int_part % 10) as u8;
        int_part /= 10;
        if int_part == 0 {
            break;
        }
    }
    if negative {
        pos -= 1;
        scratch[pos] = b'-';
    }
    let len = DECIMAL_TEXT_MAX - pos;
    out[..len].copy_from_slice(&scratch[pos..]);
    len
}

/// A symbol name such as `BTCUSDT`: upper-case ASCII letters and digits, stored inline so it
/// is `Copy` and never allocates.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Symbol {
    bytes: [u8; SYMBOL_LEN_MAX],
    len: u8,
}

impl Symbol {
    /// Validates and stores a symbol name. Accepts lower case and upper-cases it.
    pub fn new(name: &str) -> Result<Symbol, SymbolError> {
        if name.is_empty() {
            return Err(SymbolError::Empty);
        }
        if name.len() > SYMBOL_LEN_MAX {
            return Err(SymbolError::TooLong);
        }
        let mut bytes = [0u8; SYMBOL_LEN_MAX];
        for (slot, byte) in bytes.iter_mut().zip(name.bytes()) {
            if !byte.is_ascii_alphanumeric() {
                return Err(SymbolError::InvalidChar);
            }
            *slot = byte.to_ascii_uppercase();
        }
        Ok(Symbol {
            bytes,
            len: name.len() as u8,
        })
    }

    /// The upper-case name (`BTCUSDT`).
    pub fn as_str(&self) -> &str {
        // Only ASCII alphanumerics are ever stored (checked in `new`), so this cannot fail;
        // an empty string would be returned rather than panicking if it somehow did.
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }

    /// The lower-case name used in stream names (`btcusdt`), written into `out`.
    pub fn write_lower(&self, out: &mut [u8; SYMBOL_LEN_MAX]) -> usize {
        let len = self.len as usize;
        for (dst, src) in out.iter_mut().zip(&self.bytes[..len]) {
            *dst = src.to_ascii_lowercase();
        }
        len
    }
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Symbol({})", self.as_str())
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a symbol name was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SymbolError {
    /// The name is empty.
    Empty,
    /// Longer than `SYMBOL_LEN_MAX`.
    TooLong,
    /// Not an ASCII letter or digit.
    InvalidChar,
}

impl fmt::Display for SymbolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            SymbolError::Empty => "symbol is empty",
            SymbolError::TooLong => "symbol is longer than 20 characters",
            SymbolError::InvalidChar => "symbol may only hold ASCII letters and digits",
        };
        f.write_str(text)
    }
}

impl std::error::Error for SymbolError {}

/// The exchange's grid for one symbol (exchangeInfo `PRICE_FILTER.tickSize`,
/// `LOT_SIZE.stepSize`, `NOTIONAL.minNotional`), all held in atoms (10⁻⁸).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SymbolSpec {
    /// The symbol, e.g. `BTCUSDT`.
    pub symbol: Symbol,
    /// Price increment in atoms of the quote currency (BTCUSDT: 0.01 → 1_000_000).
    pub tick_atoms: i64,
    /// Quantity increment in atoms of the base asset (BTCUSDT: 0.00001 → 1_000).
    pub step_atoms: i64,
    /// Smallest order value (price × qty) in atoms of the quote currency (5 USDT → 5·10⁸).
    pub min_notional_atoms: i64,
}

/// Why a `SymbolSpec` could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpecError {
    /// The tick size is not a valid positive decimal.
    TickSize(DecimalError),
    /// The step size is not a valid positive decimal.
    StepSize(DecimalError),
    /// The minimum notional is not a valid decimal.
    MinNotional(DecimalError),
    /// A tick or step of zero.
    Zero,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecError::TickSize(e) => write!(f, "tick size: {e}"),
            SpecError::StepSize(e) => write!(f, "step size: {e}"),
            SpecError::MinNotional(e) => write!(f, "min notional: {e}"),
            SpecError::Zero => f.write_str("tick size and step size must be greater than 0"),
        }
    }
}

impl std::error::Error for SpecError {}

impl SymbolSpec {
    /// Builds a spec from exchangeInfo's decimal strings.
    pub fn from_decimals(
        symbol: Symbol,
        tick_size: &str,
        step_size: &str,
        min_notional: &str,
    ) -> Result<SymbolSpec, SpecError> {
        let tick_atoms = parse_atoms(tick_size.as_bytes()).map_err(SpecError::TickSize)?;
        let step_atoms = parse_atoms(step_size.as_bytes()).map_err(SpecError::StepSize)?;
        let min_notional_atoms =
            parse_atoms(min_notional.as_bytes()).map_err(SpecError::MinNotional)?;
        if tick_atoms == 0 || step_atoms == 0 {
            return Err(SpecError::Zero);
        }
        Ok(SymbolSpec {
            symbol,
            tick_atoms,
            step_atoms,
            min_notional_atoms,
        })
    }

    /// Parses a wire price into ticks. Off-grid prices are `OffGrid`.
    #[inline]
    pub fn parse_price(&self, text: &[u8]) -> Result<Price, DecimalError> {
        to_grid(parse_atoms(text)?, self.tick_atoms).map(Price)
    }

    /// Parses a wire quantity into lots. Off-grid quantities are `OffGrid`.
    #[inline]
    pub fn parse_qty(&self, text: &[u8]) -> Result<Qty, DecimalError> {
        to_grid(parse_atoms(text)?, self.step_atoms).map(Qty)
    }

    /// Decimals needed to print any price on this grid (0.01 → 2).
    pub fn price_decimals(&self) -> u32 {
        decimals_of(self.tick_atoms)
    }

    /// Decimals needed to print any quantity on this grid (0.00001 → 5).
    pub fn qty_decimals(&self) -> u32 {
        decimals_of(self.step_atoms)
    }

    /// Writes a price as the exchange expects it (`61837.63`); returns the length.
    #[inline]
    pub fn write_price(&self, price: Price, out: &mut [u8; DECIMAL_TEXT_MAX]) -> usize {
        write_atoms(
            price.0.saturating_mul(self.tick_atoms),
            self.price_decimals(),
            out,
        )
    }

    /// Writes a quantity as the exchange expects it (`0.00100`); returns the length.
    #[inline]
    pub fn write_qty(&self, qty: Qty, out: &mut [u8; DECIMAL_TEXT_MAX]) -> usize {
        write_atoms(
            qty.0.saturating_mul(self.step_atoms),
            self.qty_decimals(),
            out,
        )
    }

    /// A price in quote-currency units as f64 — for reports and the f64 reference model
    /// only, never for anything sent to the exchange.
    pub fn price_to_f64(&self, price: Price) -> f64 {
        price.0 as f64 * self.tick_atoms as f64 / ATOMS_PER_UNIT as f64
    }

    /// A quantity in base-asset units as f64 — for reports only.
    pub fn qty_to_f64(&self, qty: Qty) -> f64 {
        qty.0 as f64 * self.step_atoms as f64 / ATOMS_PER_UNIT as f64
    }

    /// Order value price × qty in atoms of the quote currency. Saturates at the i128 range
    /// for absurd inputs (never wraps, never panics).
    #[inline]
    pub fn notional_atoms(&self, price: Price, qty: Qty) -> i128 {
        let value = i128::from(price.0)
            .checked_mul(i128::from(self.tick_atoms))
            .and_then(|v| v.checked_mul(i128::from(qty.0)))
            .and_then(|v| v.checked_mul(i128::from(self.step_atoms)));
        match value {
            Some(v) => v / i128::from(ATOMS_PER_UNIT),
            None if (price.0 < 0) != (qty.0 < 0) => i128::MIN,
            None => i128::MAX,
        }
    }

    /// True when an order of `qty` at `price` meets `minNotional`.
    #[inline]
    pub fn meets_min_notional(&self, price: Price, qty: Qty) -> bool {
        self.notional_atoms(price, qty) >= i128::from(self.min_notional_atoms)
    }

    /// The smallest quantity in lots that meets `minNotional` at `price` (at least 1 lot).
    pub fn min_qty_at(&self, price: Price) -> Qty {
        if price.0 <= 0 {
            return Qty(1);
        }
        let value_per_lot =
            i128::from(price.0) * i128::from(self.tick_atoms) * i128::from(self.step_atoms);
        let needed = i128::from(self.min_notional_atoms) * i128::from(ATOMS_PER_UNIT);
        let lots = (needed + value_per_lot - 1) / value_per_lot;
        Qty(i64::try_from(lots.max(1)).unwrap_or(i64::MAX))
    }

    /// Converts a base-asset amount given in atoms to lots, rounding toward zero.
    pub fn atoms_to_lots_floor(&self, atoms: i64) -> Qty {
        Qty(atoms / self.step_atoms)
    }
}

#[inline]
fn to_grid(atoms: i64, grid_atoms: i64) -> Result<i64, DecimalError> {
    if atoms % grid_atoms != 0 {
        return Err(DecimalError::OffGrid);
    }
    Ok(atoms / grid_atoms)
}

fn decimals_of(grid_atoms: i64) -> u32 {
    let mut decimals = DECIMALS;
    let mut rest = grid_atoms;
    while decimals > 0 && rest % 10 == 0 {
        rest /= 10;
        decimals -= 1;
    }
    decimals
}

const POW10: [i64; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn btc() -> SymbolSpec {
        SymbolSpec::from_decimals(
            Symbol::new("BTCUSDT").unwrap(),
            "0.01000000",
            "0.00001000",
            "5.00000000",
        )
        .unwrap()
    }

    fn text(spec: &SymbolSpec, price: Price) -> String {
        let mut buf = [0u8; DECIMAL_TEXT_MAX];
        let len = spec.write_price(price, &mut buf);
        String::from_utf8(buf[..len].to_vec()).unwrap()
    }

    /// A naive reference: split on the dot with std, pad, parse with std.
    fn reference_atoms(s: &str) -> Option<i64> {
        let (int, frac) = match s.split_once('.') {
            Some((i, f)) => (i, f),
            None => (s, ""),
        };
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let frac_trim = frac.trim_end_matches('0');
        if frac_trim.len() > 8 {
            return None;
        }
        let int_v: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let frac_v: i128 = format!("{frac_trim:0<8}").parse().ok()?;
        i64::try_from(int_v * 100_000_000 + frac_v).ok()
    }

    #[test]
    fn parses_real_wire_values() {
        let spec = btc();
        assert_eq!(spec.parse_price(b"61837.63000000"), Ok(Price(6_183_763)));
        assert_eq!(spec.parse_qty(b"3.78826000"), Ok(Qty(378_826)));
        assert_eq!(spec.parse_qty(b"0.00000000"), Ok(Qty(0)));
        assert_eq!(spec.parse_price(b"55653.87"), Ok(Price(5_565_387)));
        assert_eq!(parse_atoms(b"25.35190000"), Ok(2_535_190_000));
        assert_eq!(parse_atoms(b".5"), Ok(50_000_000));
        assert_eq!(parse_atoms(b"7."), Ok(700_000_000));
        assert_eq!(parse_atoms(b"1.0000000000"), Ok(100_000_000));
    }

    #[test]
    fn rejects_malformed_text() {
        let spec = btc();
        assert_eq!(parse_atoms(b""), Err(DecimalError::Empty));
        assert_eq!(parse_atoms(b"."), Err(DecimalError::Empty));
        assert_eq!(parse_atoms(b"1.2.3"), Err(DecimalError::TwoDots));
        assert_eq!(parse_atoms(b"-1.0"), Err(DecimalError::InvalidChar));
        assert_eq!(parse_atoms(b"+1.0"), Err(DecimalError::InvalidChar));
        assert_eq!(parse_atoms(b"1e5"), Err(DecimalError::InvalidChar));
        assert_eq!(parse_atoms(b" 1"), Err(DecimalError::InvalidChar));
        assert_eq!(parse_atoms(b"0.000000001"), Err(DecimalError::TooPrecise));
        assert_eq!(
            parse_atoms(b"99999999999999999999"),
            Err(DecimalError::Overflow)
        );
        assert_eq!(
            parse_atoms(b"92233720368.54775808"),
            Err(DecimalError::Overflow)
        );
        assert_eq!(parse_atoms(b"92233720368.54775807"), Ok(i64::MAX));
        assert_eq!(spec.parse_price(b"61837.635"), Err(DecimalError::OffGrid));
        assert_eq!(spec.parse_qty(b"0.000001"), Err(DecimalError::OffGrid));
    }

    #[test]
    fn prints_on_grid_values_exactly() {
        let spec = btc();
        assert_eq!(text(&spec, Price(6_183_763)), "61837.63");
        assert_eq!(text(&spec, Price(1)), "0.01");
        assert_eq!(text(&spec, Price(0)), "0.00");
        let mut buf = [0u8; DECIMAL_TEXT_MAX];
        let len = spec.write_qty(Qty(100), &mut buf);
        assert_eq!(&buf[..len], b"0.00100");
        let len = write_atoms(i64::MIN + 1, 8, &mut buf);
        assert_eq!(&buf[..len], b"-92233720368.54775807");
        assert_eq!(spec.price_decimals(), 2);
        assert_eq!(spec.qty_decimals(), 5);
    }

    #[test]
    fn notional_and_min_qty() {
        let spec = btc();
        // 0.00010 BTC at 61837.63 = 6.183763 USDT ≥ 5.
        assert!(spec.meets_min_notional(Price(6_183_763), Qty(10)));
        assert!(!spec.meets_min_notional(Price(6_183_763), Qty(8)));
        let min = spec.min_qty_at(Price(6_183_763));
        assert_eq!(min, Qty(9)); // 0.00009 × 61837.63 = 5.565 ≥ 5; 0.00008 → 4.947 < 5
        assert!(spec.meets_min_notional(Price(6_183_763), min));
        assert!(!spec.meets_min_notional(Price(6_183_763), Qty(min.0 - 1)));
    }

    #[test]
    fn symbols() {
        let s = Symbol::new("btcusdt").unwrap();
        assert_eq!(s.as_str(), "BTCUSDT");
        let mut buf = [0u8; SYMBOL_LEN_MAX];
        let n = s.write_lower(&mut buf);
        assert_eq!(&buf[..n], b"btcusdt");
        assert_eq!(Symbol::new(""), Err(SymbolError::Empty));
        assert_eq!(Symbol::new("BTC-USDT"), Err(SymbolError::InvalidChar));
        assert_eq!(
            Symbol::new("A".repeat(21).as_str()),
            Err(SymbolError::TooLong)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn price_round_trips(ticks in 0i64..=i64::MAX / 1_000_000) {
            let spec = btc();
            let shown = text(&spec, Price(ticks));
            prop_assert_eq!(spec.parse_price(shown.as_bytes()), Ok(Price(ticks)));
            // Binance's 8-decimal form parses to the same ticks.
            let mut buf = [0u8; DECIMAL_TEXT_MAX];
            let len = write_atoms(ticks * spec.tick_atoms, 8, &mut buf);
            prop_assert_eq!(spec.parse_price(&buf[..len]), Ok(Price(ticks)));
        }

        #[test]
        fn qty_round_trips(lots in 0i64..=i64::MAX / 1_000) {
            let spec = btc();
            let mut buf = [0u8; DECIMAL_TEXT_MAX];
            let len = spec.write_qty(Qty(lots), &mut buf);
            prop_assert_eq!(spec.parse_qty(&buf[..len]), Ok(Qty(lots)));
        }

        #[test]
        fn parser_agrees_with_reference(s in "[0-9.]{0,24}") {
            let ours = parse_atoms(s.as_bytes()).ok();
            prop_assert_eq!(ours, reference_atoms(&s), "input {:?}", s);
        }

        #[test]
        fn notional_never_panics(p in any::<i64>(), q in any::<i64>()) {
            let spec = btc();
            let n = spec.notional_atoms(Price(p), Qty(q));
            if p != 0 && q != 0 {
                prop_assert_eq!(n > 0, (p > 0) == (q > 0));
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let spec = btc();
            let _ = spec.parse_price(&bytes);
            let _ = spec.parse_qty(&bytes);
        }

        #[test]
        fn signs_and_exponents_are_rejected(s in "[-+][0-9]{1,8}(\\.[0-9]{1,8})?") {
            prop_assert_eq!(parse_atoms(s.as_bytes()), Err(DecimalError::InvalidChar));
        }

        #[test]
        fn too_many_decimals_for_tick_is_off_grid(ticks in 0i64..1_000_000_000, extra in 1i64..1_000_000) {
            let spec = btc();
            // A value with a non-zero digit below the tick (0.01) is never accepted.
            let atoms = ticks * spec.tick_atoms + extra;
            let mut buf = [0u8; DECIMAL_TEXT_MAX];
            let len = write_atoms(atoms, 8, &mut buf);
            prop_assert_eq!(spec.parse_price(&buf[..len]), Err(DecimalError::OffGrid));
        }
    }
}
