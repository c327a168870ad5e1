//! Fast path for Binance's canonical decimal strings (`"61837.63000000"`: 1–10 integer
//! digits, a dot, exactly 8 decimals) into whole grid units, for grids that are a power of
//! ten in atoms (every tick and step size Binance uses: 0.01, 0.00001, 1, ...).
//!
//! Owns: nothing but speed. `SymbolSpec::parse_price`/`parse_qty` (types.rs) is the
//! definition and stays the fallback for every other spelling and for every refusal: this
//! module only answers `Some` when its result is exactly what `SymbolSpec` would return,
//! and `None` ("ask the general parser") otherwise. Measured: the general parser runs about
//! 300 instructions per field (digit-by-digit with overflow checks, then a 64-bit division);
//! this path about a fifth of that (eight decimals at once, SWAR; the division is by a
//! constant power of ten). The tests hold it to `SymbolSpec` on random and edge inputs.
//!
//! Hot path. Never allocates. Never panics. Never reads the clock.

/// Parses into units of one grid `10^exp` atoms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GridParser {
    /// The grid is `10^exp` atoms (`0 ..= 8`).
    exp: u32,
    /// Grid units per whole unit: `10^(8 − exp)`.
    units_per_whole: u64,
}

impl GridParser {
    /// A parser for a grid of `grid_atoms` atoms, if that is a power of ten up to 10^8.
    pub(crate) fn new(grid_atoms: i64) -> Option<GridParser> {
        (0..=8).find_map(|exp| {
            (10i64.pow(exp) == grid_atoms).then_some(GridParser {
                exp,
                units_per_whole: 10u64.pow(8 - exp),
            })
        })
    }

    /// The value in grid units, or `None` when the text is not in canonical form or is
    /// off the grid (the caller then asks `SymbolSpec`, which decides and explains).
    #[inline(always)]
    pub(crate) fn parse(self, text: &[u8]) -> Option<i64> {
        let len = text.len();
        // `I.FFFFFFFF` with 1..=10 integer digits: at most 19 digits, no i64 overflow.
        if !(10..=19).contains(&len) {
            return None;
        }
        let (int_text, rest) = text.split_at(len - 9);
        let (&dot, frac_text) = rest.split_first()?;
        if dot != b'.' {
            return None;
        }
        let frac_bytes: [u8; 8] = frac_text.try_into().ok()?;
        let word = u64::from_le_bytes(frac_bytes);
        if !super::scan::all_digits(word) {
            return None;
        }
        let frac = super::scan::eight_digits(word);
        let mut int: u64 = 0;
        for &byte in int_text {
            let digit = byte.wrapping_sub(b'0');
            if digit > 9 {
                return None;
            }
            int = int * 10 + u64::from(digit);
        }
        // frac < 10^8; the grid is 10^exp atoms: on the grid iff frac is a multiple of it.
        let (frac_units, remainder) = div_rem_pow10(frac, self.exp);
        if remainder != 0 {
            return None;
        }
        let units = int * self.units_per_whole + frac_units;
        i64::try_from(units).ok()
    }
}

/// `(v / 10^exp, v % 10^exp)` with a constant divisor per arm (multiply-shift, no `div`).
#[inline(always)]
fn div_rem_pow10(v: u64, exp: u32) -> (u64, u64) {
    match exp {
        0 => (v, 0),
        1 => (v / 10, v % 10),
        2 => (v / 100, v % 100),
        3 => (v / 1_000, v % 1_000),
        4 => (v / 10_000, v % 10_000),
        5 => (v / 100_000, v % 100_000),
        6 => (v / 1_000_000, v % 1_000_000),
        7 => (v / 10_000_000, v % 10_000_000),
        _ => (v / 100_000_000, v % 100_000_000),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::types::{parse_atoms, write_atoms, DECIMAL_TEXT_MAX};

    /// The definition: exact atoms, then exact division by the grid.
    fn general(grid_atoms: i64, text: &[u8]) -> Option<i64> {
        let atoms = parse_atoms(text).ok()?;
        (atoms % grid_atoms == 0).then(|| atoms / grid_atoms)
    }

    fn check(grid_atoms: i64, text: &[u8]) {
        let fast = GridParser::new(grid_atoms).unwrap();
        if let Some(units) = fast.parse(text) {
            assert_eq!(
                Some(units),
                general(grid_atoms, text),
                "{:?}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn canonical_binance_values() {
        let tick = GridParser::new(1_000_000).unwrap();
        let step = GridParser::new(1_000).unwrap();
        assert_eq!(tick.parse(b"61837.63000000"), Some(6_183_763));
        assert_eq!(tick.parse(b"0.01000000"), Some(1));
        assert_eq!(tick.parse(b"0.00000000"), Some(0));
        assert_eq!(step.parse(b"3.78826000"), Some(378_826));
        assert_eq!(step.parse(b"0.00000000"), Some(0));
        assert_eq!(
            step.parse(b"9999999999.99999000"),
            Some(999_999_999_999_999)
        );
        // Off the grid, other spellings, junk: not answered here.
        assert_eq!(tick.parse(b"61837.63500000"), None);
        assert_eq!(step.parse(b"25.42618900"), None);
        assert_eq!(tick.parse(b"61837.63"), None);
        assert_eq!(tick.parse(b"61837.630000000"), None);
        assert_eq!(tick.parse(b".63000000"), None);
        assert_eq!(tick.parse(b"-1.00000000"), None);
        assert_eq!(tick.parse(b"1.0000000a"), None);
        assert_eq!(tick.parse(b"1:00000000"), None);
        assert_eq!(tick.parse(b"12345678901.00000000"), None);
        assert_eq!(GridParser::new(5_000), None);
        assert_eq!(GridParser::new(0), None);
        assert_eq!(GridParser::new(1_000_000_000), None);
        assert_eq!(GridParser::new(1).map(|p| p.exp), Some(0));
        assert_eq!(GridParser::new(100_000_000).map(|p| p.exp), Some(8));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        /// Canonical values of every grid: always answered, always equal to the definition.
        #[test]
        fn canonical_form_always_answered(exp in 0u32..=8, units in 0i64..9_999_999_999) {
            let grid_atoms = 10i64.pow(exp);
            let atoms = units.saturating_mul(grid_atoms).min(9_999_999_999 * 100_000_000);
            let atoms = atoms - atoms % grid_atoms;
            let mut buf = [0u8; DECIMAL_TEXT_MAX];
            let len = write_atoms(atoms, 8, &mut buf);
            let fast = GridParser::new(grid_atoms).unwrap();
            prop_assert_eq!(fast.parse(&buf[..len]), Some(atoms / grid_atoms));
        }

        /// Anything at all: when the fast path answers, it agrees with the definition.
        #[test]
        fn never_disagrees(exp in 0u32..=8, text in "[0-9.:/ -]{0,21}") {
            check(10i64.pow(exp), text.as_bytes());
        }

        #[test]
        fn never_disagrees_near_canonical(
            exp in 0u32..=8,
            int in "[0-9]{0,12}",
            frac in "[0-9]{6,9}",
        ) {
            check(10i64.pow(exp), format!("{int}.{frac}").as_bytes());
        }
    }
}
