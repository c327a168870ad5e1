//! Private helpers of the Binance venue: a bounded, allocation-free JSON walker (skip a
//! value, visit an object's fields or an array's elements) and the integer/hex writers the
//! encoder uses.
//!
//! Never allocates, never recurses without a bound, never panics on input.

use super::*;

pub(super) fn side_wire(side: Side) -> &'static [u8] {
    match side {
        Side::Buy => b"BUY",
        Side::Sell => b"SELL",
    }
}

pub(super) fn hex_into(bytes: &[u8], out: &mut [u8; 64]) {
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0x0f)];
    }
}

pub(super) fn write_u64(value: u64, out: &mut [u8; 20]) -> usize {
    let mut scratch = [0u8; 20];
    let mut pos = 20;
    let mut rest = value;
    loop {
        pos -= 1;
        scratch[pos] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let len = 20 - pos;
    out[..len].copy_from_slice(&scratch[pos..]);
    len
}

pub(super) fn clamp_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

pub(super) fn parse_u64(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 20 {
        return None;
    }
    let mut value: u64 = 0;
    for &b in text {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(value)
}

/// A JSON number (unsigned) as u64.
pub(super) fn as_u64(value: &[u8]) -> Option<u64> {
    parse_u64(value)
}

/// A JSON integer as i64.
pub(super) fn as_i64(value: &[u8]) -> Option<i64> {
    match value.strip_prefix(b"-") {
        Some(rest) => parse_u64(rest)
            .and_then(|v| i64::try_from(v).ok())
            .map(|v| -v),
        None => parse_u64(value).and_then(|v| i64::try_from(v).ok()),
    }
}

/// A JSON string's bytes without the quotes; `None` for non-strings and strings with
/// escapes (nothing we read needs them).
pub(super) fn as_str(value: &[u8]) -> Option<&[u8]> {
    let inner = value.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    (!inner.contains(&b'\\')).then_some(inner)
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// `i` at an opening quote; the index after the closing quote.
fn skip_string(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
    None
}

/// `i` at the start of a value; the index after it.
fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => skip_string(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = skip_string(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t')
            {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

/// Calls `f(key, raw value)` for each member of the object `b` (whitespace around it
/// allowed). Keys are taken raw (ours never hold escapes).
pub(super) fn for_each_field<'a>(
    b: &'a [u8],
    mut f: impl FnMut(&'a [u8], &'a [u8]),
) -> Result<(), DecodeError> {
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return Err(DecodeError::Malformed);
    }
    i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return Ok(());
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return Err(DecodeError::Malformed);
        }
        let key_end = skip_string(b, i).ok_or(DecodeError::Malformed)?;
        let key = &b[i + 1..key_end - 1];
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return Err(DecodeError::Malformed);
        }
        let start = skip_ws(b, i + 1);
        let end = skip_value(b, start).ok_or(DecodeError::Malformed)?;
        f(key, &b[start..end]);
        i = skip_ws(b, end);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b'}') => return Ok(()),
            _ => return Err(DecodeError::Malformed),
        }
    }
}

/// Calls `f(raw element)` for each element of the array `b`.
pub(super) fn for_each_element<'a>(
    b: &'a [u8],
    mut f: impl FnMut(&'a [u8]) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'[') {
        return Err(DecodeError::Malformed);
    }
    i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b']') {
        return Ok(());
    }
    loop {
        let end = skip_value(b, i).ok_or(DecodeError::Malformed)?;
        f(&b[i..end])?;
        i = skip_ws(b, end);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b']') => return Ok(()),
            _ => return Err(DecodeError::Malformed),
        }
    }
}

/// For a response whose `result` is an array of orders: `f(field)` per order.
pub(super) fn each_result_order(
    frame: &[u8],
    field: &[u8],
    mut f: impl FnMut(&[u8]),
) -> Result<(), DecodeError> {
    let mut result = None;
    for_each_field(frame, |key, value| {
        if key == b"result" {
            result = Some(value);
        }
    })?;
    let Some(result) = result.filter(|r| r.first() == Some(&b'[')) else {
        return Ok(());
    };
    for_each_element(result, |order| {
        for_each_field(order, |key, value| {
            if key == field {
                if let Some(text) = as_str(value) {
                    f(text);
                }
            }
        })
    })
}
