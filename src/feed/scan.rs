//! The JSON scanning primitives under the feed decoder: a cursor over one frame's bytes.
//!
//! Owns: whitespace, strings (escapes, control characters, UTF-8), unsigned integers,
//! booleans and a validating skip of any JSON value the decoder does not need.
//! Invariants: `pos <= bytes.len()` at all times; every byte read goes through `get`, so
//! no input can index out of bounds; running out of input is always `Truncated`, never
//! another error, so a cut frame is recognisable. The skip keeps its container stack in
//! one `u64` (one bit per level), bounded by `JSON_NESTING_MAX`, with no recursion.
//! Strings are scanned eight bytes at a time (SWAR on a `u64`, safe code), checked against
//! a byte-by-byte reference in the tests below.
//! Hot path. Never allocates. Never panics on input. Never reads the clock.

use crate::feed::DecodeError;
use crate::limits::JSON_NESTING_MAX;

/// A read position in one frame.
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `bytes`.
    #[inline(always)]
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, pos: 0 }
    }

    /// Skips whitespace and returns the next byte without consuming it.
    #[inline(always)]
    pub(crate) fn peek(&mut self) -> Result<u8, DecodeError> {
        while let Some(&byte) = self.bytes.get(self.pos) {
            if !is_whitespace(byte) {
                return Ok(byte);
            }
            self.pos += 1;
        }
        Err(DecodeError::Truncated)
    }

    /// Skips whitespace and consumes the next byte.
    #[inline(always)]
    pub(crate) fn next_byte(&mut self) -> Result<u8, DecodeError> {
        let byte = self.peek()?;
        self.pos += 1;
        Ok(byte)
    }

    /// Consumes the byte after whitespace if it is `want`; `Malformed` otherwise.
    #[inline(always)]
    pub(crate) fn expect(&mut self, want: u8) -> Result<(), DecodeError> {
        if self.next_byte()? == want {
            Ok(())
        } else {
            Err(DecodeError::Malformed)
        }
    }

    /// Consumes `want` if it is the next byte after whitespace; reports whether it did.
    #[inline(always)]
    pub(crate) fn eat(&mut self, want: u8) -> Result<bool, DecodeError> {
        if self.peek()? == want {
            self.pos += 1;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Consumes `expected` if the input continues with exactly those bytes (no whitespace
    /// skipped); reports whether it did.
    #[inline(always)]
    pub(crate) fn lit(&mut self, expected: &[u8]) -> bool {
        let end = self.pos.saturating_add(expected.len());
        if self.bytes.get(self.pos..end) == Some(expected) {
            self.pos = end;
            true
        } else {
            false
        }
    }

    /// After the top-level value: only whitespace may follow.
    pub(crate) fn finish(&mut self) -> Result<(), DecodeError> {
        match self.peek() {
            Err(_) => Ok(()),
            Ok(_) => Err(DecodeError::TrailingBytes),
        }
    }

    /// Reads an object key and the `:` after it. A key written with an escape is refused:
    /// Binance never escapes keys, and matching raw bytes must not be fooled by `"\u0075"`.
    #[inline(always)]
    pub(crate) fn key(&mut self) -> Result<&'a [u8], DecodeError> {
        if self.next_byte()? != b'"' {
            return Err(DecodeError::Malformed);
        }
        // Fast path for the one-letter keys that make up most of Binance's messages:
        // `"u":` with a plain printable letter and the colon right after the quote.
        if let Some(&[letter, b'"', b':']) = self.bytes.get(self.pos..self.pos + 3) {
            if (0x20..0x7f).contains(&letter) && letter != b'"' && letter != b'\\' {
                let key = self.bytes.get(self.pos..self.pos + 1).unwrap_or(&[]);
                self.pos += 3;
                return Ok(key);
            }
        }
        let (text, escaped) = self.string_body()?;
        if escaped {
            return Err(DecodeError::Escape);
        }
        self.expect(b':')?;
        Ok(text)
    }

    /// Reads a string value without escapes and returns its bytes (without the quotes).
    #[inline(always)]
    pub(crate) fn plain_string(&mut self) -> Result<&'a [u8], DecodeError> {
        let first = self.peek()?;
        if first != b'"' {
            return Err(value_error(first));
        }
        self.pos += 1;
        let (text, escaped) = self.string_body()?;
        if escaped {
            return Err(DecodeError::Escape);
        }
        Ok(text)
    }

    /// Reads a JSON integer into a `u64`. A sign, a fraction, an exponent or a leading zero
    /// is `BadNumber`; a value above `u64::MAX` is `OutOfRange`.
    #[inline(always)]
    pub(crate) fn uint(&mut self) -> Result<u64, DecodeError> {
        let first = self.peek()?;
        if !first.is_ascii_digit() {
            return Err(match first {
                b'-' => DecodeError::BadNumber,
                other => value_error(other),
            });
        }
        let mut value: u64 = 0;
        if first == b'0' {
            self.pos += 1;
            if let Some(b'0'..=b'9') = self.bytes.get(self.pos) {
                return Err(DecodeError::BadNumber);
            }
        } else {
            // Up to two blocks of eight digits at once (value < 10^16, no overflow), then
            // digit by digit with overflow checks.
            for _ in 0..2 {
                let Some(word) = self.word_at(self.pos) else {
                    break;
                };
                if !all_digits(word) {
                    break;
                }
                value = value * 100_000_000 + eight_digits(word);
                self.pos += 8;
            }
            while let Some(&byte) = self.bytes.get(self.pos) {
                let digit = byte.wrapping_sub(b'0');
                if digit > 9 {
                    break;
                }
                value = value
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(u64::from(digit)))
                    .ok_or(DecodeError::OutOfRange)?;
                self.pos += 1;
            }
        }
        match self.bytes.get(self.pos) {
            Some(b'.' | b'e' | b'E') => Err(DecodeError::BadNumber),
            _ => Ok(value),
        }
    }

    /// Reads `true` or `false`.
    #[inline(always)]
    pub(crate) fn boolean(&mut self) -> Result<bool, DecodeError> {
        match self.peek()? {
            b't' => self.literal(b"true").map(|()| true),
            b'f' => self.literal(b"false").map(|()| false),
            other => Err(value_error(other)),
        }
    }

    /// Skips one complete JSON value of any type, validating its syntax (strings, escapes,
    /// numbers, literals, matching brackets) without recursion.
    pub(crate) fn skip_value(&mut self) -> Result<(), DecodeError> {
        // Bit d of `arrays` is set when the container at depth d (0-based) is an array.
        let mut arrays: u64 = 0;
        let mut depth: usize = 0;
        'value: loop {
            // Expecting a value.
            match self.peek()? {
                b'"' => {
                    self.pos += 1;
                    self.string_body()?;
                }
                open @ (b'{' | b'[') => {
                    self.pos += 1;
                    if depth == JSON_NESTING_MAX {
                        return Err(DecodeError::TooDeep);
                    }
                    let is_array = open == b'[';
                    if is_array {
                        arrays |= 1 << depth;
                    } else {
                        arrays &= !(1 << depth);
                    }
                    depth += 1;
                    let close = if is_array { b']' } else { b'}' };
                    if self.eat(close)? {
                        depth -= 1;
                    } else {
                        if !is_array {
                            self.skip_key()?;
                        }
                        continue 'value;
                    }
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                b'-' | b'0'..=b'9' => self.skip_number()?,
                _ => return Err(DecodeError::Malformed),
            }
            // A value is complete: continue or close the containers around it.
            loop {
                if depth == 0 {
                    return Ok(());
                }
                let is_array = (arrays >> (depth - 1)) & 1 == 1;
                match self.next_byte()? {
                    b',' => {
                        if !is_array {
                            self.skip_key()?;
                        }
                        continue 'value;
                    }
                    b']' if is_array => depth -= 1,
                    b'}' if !is_array => depth -= 1,
                    _ => return Err(DecodeError::Malformed),
                }
            }
        }
    }

    /// Skips `"key":` inside a skipped object (escapes allowed: nothing is matched).
    fn skip_key(&mut self) -> Result<(), DecodeError> {
        if self.next_byte()? != b'"' {
            return Err(DecodeError::Malformed);
        }
        self.string_body()?;
        self.expect(b':')
    }

    /// Scans a string whose opening quote is consumed; returns the raw bytes between the
    /// quotes and whether they hold an escape. Validates escapes (including UTF-16
    /// surrogate pairs), refuses raw control characters and invalid UTF-8.
    ///
    /// Fast path (inlined): plain ASCII up to the closing quote, eight bytes at a time.
    /// Anything else (escape, control, non-ASCII, fewer than eight bytes left) goes to
    /// `string_body_slow`, which resumes from where the fast path stopped.
    #[inline(always)]
    fn string_body(&mut self) -> Result<(&'a [u8], bool), DecodeError> {
        let start = self.pos;
        while let Some(word) = self.word_at(self.pos) {
            let special = special_bytes(word);
            if special == 0 {
                self.pos += 8;
                continue;
            }
            let at = self.pos + (special.trailing_zeros() / 8) as usize;
            if self.bytes.get(at) == Some(&b'"') {
                self.pos = at + 1;
                return Ok((self.bytes.get(start..at).unwrap_or(&[]), false));
            }
            self.pos = at;
            return self.string_body_slow(start);
        }
        // Fewer than eight bytes left: byte by byte while they are plain.
        while let Some(&byte) = self.bytes.get(self.pos) {
            if byte == b'"' {
                let text = self.bytes.get(start..self.pos).unwrap_or(&[]);
                self.pos += 1;
                return Ok((text, false));
            }
            if byte == b'\\' || !(0x20..0x80).contains(&byte) {
                break;
            }
            self.pos += 1;
        }
        self.string_body_slow(start)
    }

    /// The general string scan from `self.pos` for a string whose content began at
    /// `start`.
    #[inline(never)]
    fn string_body_slow(&mut self, start: usize) -> Result<(&'a [u8], bool), DecodeError> {
        let mut escaped = false;
        let mut high_bytes = false;
        loop {
            // Skip plain bytes eight at a time; stop at the first byte that needs a look.
            while let Some(word) = self.word_at(self.pos) {
                let special = special_bytes(word);
                if special != 0 {
                    self.pos += (special.trailing_zeros() / 8) as usize;
                    break;
                }
                self.pos += 8;
            }
            let Some(&byte) = self.bytes.get(self.pos) else {
                return Err(DecodeError::Truncated);
            };
            self.pos += 1;
            match byte {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    self.escape()?;
                }
                0x00..=0x1f => return Err(DecodeError::Malformed),
                0x80..=0xff => high_bytes = true,
                _ => {}
            }
        }
        let text = self.bytes.get(start..self.pos - 1).unwrap_or(&[]);
        if high_bytes && std::str::from_utf8(text).is_err() {
            return Err(DecodeError::Malformed);
        }
        Ok((text, escaped))
    }

    /// The eight bytes at `pos` as a little-endian word, if there are eight.
    #[inline(always)]
    fn word_at(&self, pos: usize) -> Option<u64> {
        let chunk = self.bytes.get(pos..pos.checked_add(8)?)?;
        <[u8; 8]>::try_from(chunk).ok().map(u64::from_le_bytes)
    }

    /// Validates one escape whose backslash is consumed.
    fn escape(&mut self) -> Result<(), DecodeError> {
        let Some(&kind) = self.bytes.get(self.pos) else {
            return Err(DecodeError::Truncated);
        };
        self.pos += 1;
        match kind {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Ok(()),
            b'u' => {
                let unit = self.hex4()?;
                match unit {
                    0xD800..=0xDBFF => {
                        // A leading surrogate must be followed by an escaped trailing one.
                        match self.bytes.get(self.pos..self.pos + 2) {
                            Some(b"\\u") => self.pos += 2,
                            Some(_) => return Err(DecodeError::Malformed),
                            None => {
                                return Err(match self.bytes.get(self.pos) {
                                    None | Some(b'\\') => DecodeError::Truncated,
                                    Some(_) => DecodeError::Malformed,
                                })
                            }
                        }
                        match self.hex4()? {
                            0xDC00..=0xDFFF => Ok(()),
                            _ => Err(DecodeError::Malformed),
                        }
                    }
                    0xDC00..=0xDFFF => Err(DecodeError::Malformed),
                    _ => Ok(()),
                }
            }
            _ => Err(DecodeError::Malformed),
        }
    }

    /// Reads four hex digits of a `\u` escape.
    fn hex4(&mut self) -> Result<u32, DecodeError> {
        let mut unit = 0u32;
        for _ in 0..4 {
            let Some(&byte) = self.bytes.get(self.pos) else {
                return Err(DecodeError::Truncated);
            };
            let digit = match byte {
                b'0'..=b'9' => byte - b'0',
                b'a'..=b'f' => byte - b'a' + 10,
                b'A'..=b'F' => byte - b'A' + 10,
                _ => return Err(DecodeError::Malformed),
            };
            unit = unit * 16 + u32::from(digit);
            self.pos += 1;
        }
        Ok(unit)
    }

    /// Consumes `word` (`true`, `false`, `null`); a prefix of it at the end of the input is
    /// `Truncated`.
    fn literal(&mut self, word: &[u8]) -> Result<(), DecodeError> {
        let rest = self.bytes.get(self.pos..).unwrap_or(&[]);
        if rest.starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else if word.starts_with(rest) {
            Err(DecodeError::Truncated)
        } else {
            Err(DecodeError::Malformed)
        }
    }

    /// Skips a number by JSON's grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn skip_number(&mut self) -> Result<(), DecodeError> {
        if self.bytes.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        match self.bytes.get(self.pos) {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.skip_digits(),
            Some(_) => return Err(DecodeError::Malformed),
            None => return Err(DecodeError::Truncated),
        }
        if self.bytes.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            self.require_digits()?;
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.pos) {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.pos) {
                self.pos += 1;
            }
            self.require_digits()?;
        }
        Ok(())
    }

    /// At least one digit, then any more.
    fn require_digits(&mut self) -> Result<(), DecodeError> {
        match self.bytes.get(self.pos) {
            Some(b'0'..=b'9') => {
                self.skip_digits();
                Ok(())
            }
            Some(_) => Err(DecodeError::Malformed),
            None => Err(DecodeError::Truncated),
        }
    }

    fn skip_digits(&mut self) {
        while let Some(b'0'..=b'9') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }
}

/// Flags (bit 7 of the byte) the bytes of a little-endian `word` that a string scan must
/// look at: `"`, `\\`, control characters (< 0x20) and non-ASCII (≥ 0x80). SWAR: the lowest
/// flag is always exact; flags above it may be spurious (borrows), which is fine because
/// only the lowest one is used.
#[inline(always)]
fn special_bytes(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let is_quote = quote.wrapping_sub(ONES) & !quote;
    let is_backslash = backslash.wrapping_sub(ONES) & !backslash;
    let is_control = word.wrapping_sub(ONES * 0x20) & !word;
    (is_quote | is_backslash | is_control | word) & HIGHS
}

/// True when all eight bytes of `word` are ASCII digits.
#[inline(always)]
pub(crate) fn all_digits(word: u64) -> bool {
    const NIBBLES: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    // High nibble 3 (0x30..=0x3F), and still 3 after adding 6 (rules out 0x3A..=0x3F);
    // no byte can carry into the next because each is at most 0x3F before the add.
    word & NIBBLES == ZEROS && word.wrapping_add(0x0606_0606_0606_0606) & NIBBLES == ZEROS
}

/// The value of eight ASCII digits loaded little-endian (first digit in the lowest byte):
/// pairs, then quads, then the whole, each step one multiply (SWAR).
#[inline(always)]
pub(crate) fn eight_digits(word: u64) -> u64 {
    let v = word.wrapping_sub(0x3030_3030_3030_3030);
    let v = (v.wrapping_mul(10) + (v >> 8)) & 0x00FF_00FF_00FF_00FF;
    let v = (v.wrapping_mul(100) + (v >> 16)) & 0x0000_FFFF_0000_FFFF;
    (v.wrapping_mul(10_000) + (v >> 32)) & 0xFFFF_FFFF
}

/// JSON whitespace: space, tab, line feed, carriage return.
#[inline(always)]
fn is_whitespace(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
}

/// The error for a value of an unexpected kind: `WrongType` if `first` can start some
/// other JSON value, `Malformed` if it cannot start any.
#[inline]
pub(crate) fn value_error(first: u8) -> DecodeError {
    match first {
        b'"' | b'{' | b'[' | b't' | b'f' | b'n' | b'-' | b'0'..=b'9' => DecodeError::WrongType,
        _ => DecodeError::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Naive reference: index of the first byte a string scan must look at.
    fn first_special(bytes: [u8; 8]) -> Option<usize> {
        bytes
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || !(0x20..0x80).contains(&b))
    }

    fn first_flag(bytes: [u8; 8]) -> Option<usize> {
        let flags = special_bytes(u64::from_le_bytes(bytes));
        (flags != 0).then(|| (flags.trailing_zeros() / 8) as usize)
    }

    #[test]
    fn special_bytes_edge_cases() {
        assert_eq!(first_flag(*b"61837.63"), None);
        assert_eq!(first_flag(*b"BTCUSDT\""), Some(7));
        assert_eq!(first_flag(*b"a\\bcdefg"), Some(1));
        assert_eq!(first_flag([b'a', 0x1f, 0, 0, 0, 0, 0, 0]), Some(1));
        assert_eq!(
            first_flag([0x20, 0x7f, b'!', b'#', b'[', b']', 0x80, 0]),
            Some(6)
        );
        assert_eq!(first_flag([0x21; 8]), None);
        assert_eq!(first_flag([0xff; 8]), Some(0));
    }

    #[test]
    fn eight_digit_blocks() {
        let word = |text: &[u8; 8]| u64::from_le_bytes(*text);
        assert_eq!(eight_digits(word(b"12345678")), 12_345_678);
        assert_eq!(eight_digits(word(b"00000000")), 0);
        assert_eq!(eight_digits(word(b"99999999")), 99_999_999);
        assert_eq!(eight_digits(word(b"50093239")), 50_093_239);
        assert!(all_digits(word(b"01234567")));
        assert!(!all_digits(word(b"0123456:")));
        assert!(!all_digits(word(b"/1234567")));
        assert!(!all_digits(word(b"1234567\"")));
    }

    fn uint_of(text: &str) -> Result<u64, DecodeError> {
        Cursor::new(text.as_bytes()).uint()
    }

    #[test]
    fn uint_edge_cases() {
        assert_eq!(uint_of("0"), Ok(0));
        assert_eq!(uint_of("0,"), Ok(0));
        assert_eq!(uint_of("00"), Err(DecodeError::BadNumber));
        assert_eq!(uint_of("-0"), Err(DecodeError::BadNumber));
        assert_eq!(uint_of("1e3"), Err(DecodeError::BadNumber));
        assert_eq!(uint_of("1.0"), Err(DecodeError::BadNumber));
        assert_eq!(uint_of("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(
            uint_of("18446744073709551616"),
            Err(DecodeError::OutOfRange)
        );
        assert_eq!(
            uint_of("99999999999999999999"),
            Err(DecodeError::OutOfRange)
        );
        assert_eq!(uint_of("1723161255343}"), Ok(1_723_161_255_343));
        assert_eq!(uint_of("\"1\""), Err(DecodeError::WrongType));
        assert_eq!(uint_of(""), Err(DecodeError::Truncated));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn uint_matches_std_parse(digits in "[1-9][0-9]{0,21}", tail in "[,}\\] ]?") {
            let text = format!("{digits}{tail}");
            let want = digits.parse::<u64>().map_err(|_| DecodeError::OutOfRange);
            prop_assert_eq!(uint_of(&text), want);
        }

        #[test]
        fn eight_digits_matches_std_parse(n in 0u64..100_000_000) {
            let text = format!("{n:08}");
            let bytes: [u8; 8] = text.as_bytes().try_into().unwrap();
            let word = u64::from_le_bytes(bytes);
            prop_assert!(all_digits(word));
            prop_assert_eq!(eight_digits(word), n);
        }

        #[test]
        fn special_bytes_matches_naive_scan(bytes in any::<[u8; 8]>()) {
            prop_assert_eq!(first_flag(bytes), first_special(bytes));
        }

        #[test]
        fn special_bytes_matches_naive_scan_near_boundaries(
            bytes in proptest::array::uniform8(prop_oneof![
                0x1eu8..=0x23u8,
                0x5bu8..=0x5du8,
                0x7eu8..=0x81u8,
                Just(0u8),
                Just(0xffu8)
            ])
        ) {
            prop_assert_eq!(first_flag(bytes), first_special(bytes));
        }
    }
}
