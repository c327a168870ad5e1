//! Client order ids: `SessionTag` (the per-run part) and `ClientOrderId` with its wire form
//! `mm<session>-<seq>`, written into a caller's buffer and parsed back.
//!
//! Never allocates after start-up, never panics on a foreign or malformed id (it is an
//! `IdError` or simply not ours).

use super::*;

/// The session part of our client order ids: 1 to `SESSION_TAG_LEN_MAX` ASCII letters or
/// digits. Different per run (the engine derives it from the start time), so ids are
/// unique across sessions and a stray order can be traced to the run that sent it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionTag {
    bytes: [u8; SESSION_TAG_LEN_MAX],
    len: u8,
}

impl SessionTag {
    /// Validates a tag.
    pub fn new(text: &str) -> Result<SessionTag, IdError> {
        let raw = text.as_bytes();
        if raw.is_empty() {
            return Err(IdError::Empty);
        }
        if raw.len() > SESSION_TAG_LEN_MAX {
            return Err(IdError::TooLong);
        }
        let mut bytes = [0u8; SESSION_TAG_LEN_MAX];
        for (slot, &byte) in bytes.iter_mut().zip(raw) {
            if !byte.is_ascii_alphanumeric() {
                return Err(IdError::InvalidChar);
            }
            *slot = byte;
        }
        Ok(SessionTag {
            bytes,
            len: raw.len() as u8,
        })
    }

    /// A tag from a number (e.g. the start time in seconds): its base-36 digits (0-9a-z),
    /// at most `SESSION_TAG_LEN_MAX` of them (the number is taken modulo 36¹²).
    pub fn from_number(number: u64) -> SessionTag {
        const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let mut scratch = [0u8; SESSION_TAG_LEN_MAX];
        let mut pos = SESSION_TAG_LEN_MAX;
        let mut rest = number;
        loop {
            pos -= 1;
            scratch[pos] = DIGITS[(rest % 36) as usize];
            rest /= 36;
            if rest == 0 || pos == 0 {
                break;
            }
        }
        let len = SESSION_TAG_LEN_MAX - pos;
        let mut bytes = [0u8; SESSION_TAG_LEN_MAX];
        bytes[..len].copy_from_slice(&scratch[pos..]);
        SessionTag {
            bytes,
            len: len as u8,
        }
    }

    /// The tag's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl fmt::Debug for SessionTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = std::str::from_utf8(self.as_bytes()).unwrap_or("?");
        write!(f, "SessionTag({text})")
    }
}

/// Our id of one order: a sequence number, unique within a session (1, 2, 3, … in the
/// order the manager creates orders). On the wire it is `mm<session>-<seq>`, e.g.
/// `mmsa3k2q-42`, which matches Binance's `^[a-zA-Z0-9-_]{1,36}$`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientOrderId(pub u64);

impl ClientOrderId {
    /// Writes the wire form into `out`; returns its length (≤ 35).
    pub fn write_wire(
        &self,
        session: &SessionTag,
        out: &mut [u8; CLIENT_ORDER_ID_LEN_MAX],
    ) -> usize {
        let tag = session.as_bytes();
        out[0] = b'm';
        out[1] = b'm';
        let mut pos = 2;
        out[pos..pos + tag.len()].copy_from_slice(tag);
        pos += tag.len();
        out[pos] = b'-';
        pos += 1;
        let mut digits = [0u8; 20];
        let mut n = 20;
        let mut rest = self.0;
        loop {
            n -= 1;
            digits[n] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        let count = 20 - n;
        out[pos..pos + count].copy_from_slice(&digits[n..]);
        pos + count
    }

    /// Reads an id written by `write_wire` for `session`. Ids of other sessions (or other
    /// clients) are `OtherSession`; anything else that is not exactly our form is refused.
    pub fn parse_wire(text: &[u8], session: &SessionTag) -> Result<ClientOrderId, IdError> {
        if text.is_empty() {
            return Err(IdError::Empty);
        }
        if text.len() > CLIENT_ORDER_ID_LEN_MAX {
            return Err(IdError::TooLong);
        }
        let tag = session.as_bytes();
        let Some(rest) = text.strip_prefix(b"mm") else {
            return Err(IdError::OtherSession);
        };
        let Some(rest) = rest.strip_prefix(tag) else {
            return Err(IdError::OtherSession);
        };
        let Some(digits) = rest.strip_prefix(b"-") else {
            return Err(IdError::OtherSession);
        };
        if digits.is_empty() || (digits.len() > 1 && digits[0] == b'0') {
            return Err(IdError::Malformed);
        }
        let mut value: u64 = 0;
        for &byte in digits {
            if !byte.is_ascii_digit() {
                return Err(IdError::Malformed);
            }
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(byte - b'0')))
                .ok_or(IdError::Malformed)?;
        }
        Ok(ClientOrderId(value))
    }
}

/// Why a session tag or a wire client order id was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdError {
    /// Empty text.
    Empty,
    /// Too long (tag > 12, id > 36 bytes).
    TooLong,
    /// A character other than an ASCII letter or digit in a tag.
    InvalidChar,
    /// Not `mm<our session>-…`: another session's or another client's order.
    OtherSession,
    /// Our prefix, but the sequence number is not a plain decimal u64.
    Malformed,
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdError::Empty => "empty id",
            IdError::TooLong => "id too long",
            IdError::InvalidChar => "session tag may only hold ASCII letters and digits",
            IdError::OtherSession => "not an order id of this session",
            IdError::Malformed => "malformed order sequence number",
        })
    }
}

impl std::error::Error for IdError {}
