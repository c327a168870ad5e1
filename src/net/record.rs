//! TLS 1.3 record protection in place (RFC 8446 §5.2–§5.5), sans-IO.
//!
//! Owns: `RecordKey` — one direction's AEAD key, static IV and sequence number — and the
//! byte-level rules of a protected record:
//!
//! ```text
//!  TLSCiphertext = opaque_type(23) ‖ legacy_version(03 03) ‖ length(u16) ‖ encrypted_record
//!  encrypted_record = AEAD(key, nonce, aad = the 5 header bytes,
//!                          TLSInnerPlaintext = content ‖ content_type(u8) ‖ zeros)
//!  nonce = iv XOR (0^32 ‖ seq as u64 big-endian)            (§5.3)
//! ```
//!
//! Invariants: every record sealed or opened consumes exactly one sequence number; a key
//! never encrypts or decrypts at sequence `u64::MAX` (the caller key-updates long before,
//! §5.5); the ciphertext length limit 2^14 + 256 and the inner plaintext limit 2^14 + 1 are
//! checked on every opened record. AEADs: AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305 from
//! `ring` (the same implementation rustls's ring provider uses).
//!
//! Hot path: never allocates, never copies the payload (in place), never reads a clock.

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use rustls::ConnectionTrafficSecrets;

use crate::net::error::TlsViolation;
use crate::net::NetError;

/// Record header length: type, legacy version, length.
pub const HEADER_LEN: usize = 5;
/// AEAD tag length (all three TLS 1.3 AEADs here use 16 bytes).
pub const TAG_LEN: usize = 16;
/// Largest content in one record (2^14, RFC 8446 §5.1).
pub const PLAINTEXT_MAX: usize = 1 << 14;
/// Largest `length` field of a protected record (2^14 + 256, RFC 8446 §5.2).
pub const CIPHERTEXT_MAX: usize = PLAINTEXT_MAX + 256;
/// Largest full record on the wire.
pub const RECORD_MAX: usize = HEADER_LEN + CIPHERTEXT_MAX;
/// Bytes a sealed record adds to its content: header, inner content type, tag.
pub const OVERHEAD: usize = HEADER_LEN + 1 + TAG_LEN;

/// TLS content types (RFC 8446 §5.1).
pub const CT_CHANGE_CIPHER_SPEC: u8 = 20;
/// Alert content type.
pub const CT_ALERT: u8 = 21;
/// Handshake content type.
pub const CT_HANDSHAKE: u8 = 22;
/// Application data content type (also the opaque outer type of every protected record).
pub const CT_APPLICATION_DATA: u8 = 23;

const NONCE_LEN: usize = 12;

/// One direction's traffic protection.
pub struct RecordKey {
    key: LessSafeKey,
    iv: [u8; NONCE_LEN],
    seq: u64,
}

/// An opened record: its inner content type and where its content lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opened {
    /// Inner content type (RFC 8446 §5.4).
    pub content_type: u8,
    /// Content length; the content starts right after the 5-byte header.
    pub content_len: usize,
}

impl RecordKey {
    /// Builds a key from rustls's extracted secrets, starting at sequence number `seq`.
    /// Off the hot path (connect and key update only).
    pub fn new(secrets: &ConnectionTrafficSecrets, seq: u64) -> Result<RecordKey, NetError> {
        let (alg, key, iv) = match secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (&aead::AES_128_GCM, key, iv),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (&aead::AES_256_GCM, key, iv),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
                (&aead::CHACHA20_POLY1305, key, iv)
            }
            _ => {
                return Err(NetError::Bug(
                    "rustls negotiated an AEAD we do not implement",
                ))
            }
        };
        let unbound = UnboundKey::new(alg, key.as_ref())
            .map_err(|_| NetError::Bug("traffic key length does not match its AEAD"))?;
        let iv: [u8; NONCE_LEN] = iv
            .as_ref()
            .try_into()
            .map_err(|_| NetError::Bug("traffic IV is not 12 bytes"))?;
        Ok(RecordKey {
            key: LessSafeKey::new(unbound),
            iv,
            seq,
        })
    }

    /// Builds a key from raw material (tests and benches).
    pub fn from_raw(
        alg: &'static aead::Algorithm,
        key: &[u8],
        iv: [u8; NONCE_LEN],
        seq: u64,
    ) -> Result<RecordKey, NetError> {
        let unbound = UnboundKey::new(alg, key).map_err(|_| NetError::Bug("bad key length"))?;
        Ok(RecordKey {
            key: LessSafeKey::new(unbound),
            iv,
            seq,
        })
    }

    /// The sequence number the next record will use (= records processed with this key).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Seals one record in place. `record[HEADER_LEN..HEADER_LEN + content_len]` holds the
    /// content; `record` must have room for `content_len + OVERHEAD` bytes. Writes the header,
    /// the inner content type and the tag; returns the record's total length.
    pub fn seal(
        &mut self,
        record: &mut [u8],
        content_len: usize,
        content_type: u8,
    ) -> Result<usize, NetError> {
        let total = content_len + OVERHEAD;
        if content_len > PLAINTEXT_MAX || record.len() < total {
            return Err(NetError::Bug(
                "seal: content too long for a record or buffer",
            ));
        }
        let nonce = self
            .next_nonce()
            .ok_or(NetError::Bug("tx sequence number exhausted"))?;
        let ciphertext_len = content_len + 1 + TAG_LEN;
        let header = header(ciphertext_len);
        record[..HEADER_LEN].copy_from_slice(&header);
        let inner_end = HEADER_LEN + content_len + 1;
        record[inner_end - 1] = content_type;
        let tag = self
            .key
            .seal_in_place_separate_tag(
                nonce,
                Aad::from(header),
                &mut record[HEADER_LEN..inner_end],
            )
            .map_err(|_| NetError::Bug("AEAD seal failed"))?;
        record[inner_end..total].copy_from_slice(tag.as_ref());
        Ok(total)
    }

    /// Opens one complete record in place (`record` = header ‖ ciphertext, exactly). On
    /// success the content is at `record[HEADER_LEN..HEADER_LEN + content_len]`.
    pub fn open(&mut self, record: &mut [u8]) -> Result<Opened, NetError> {
        if record.len() > RECORD_MAX {
            return Err(NetError::TlsProtocol(TlsViolation::RecordOverflow));
        }
        if record.len() < HEADER_LEN + 1 + TAG_LEN {
            // Not even a content type and a tag.
            return Err(NetError::TlsProtocol(TlsViolation::DecodeError));
        }
        let nonce = self
            .next_nonce()
            .ok_or(NetError::TlsProtocol(TlsViolation::SequenceExhausted))?;
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&record[..HEADER_LEN]);
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(header), &mut record[HEADER_LEN..])
            .map_err(|_| NetError::TlsProtocol(TlsViolation::BadRecordMac))?;
        if plain.len() > PLAINTEXT_MAX + 1 {
            return Err(NetError::TlsProtocol(TlsViolation::RecordOverflow));
        }
        // The content type is the last non-zero byte; zeros after it are padding (§5.4).
        let Some(type_at) = plain.iter().rposition(|&b| b != 0) else {
            return Err(NetError::TlsProtocol(TlsViolation::UnexpectedMessage));
        };
        Ok(Opened {
            content_type: plain[type_at],
            content_len: type_at,
        })
    }

    /// The per-record nonce (RFC 8446 §5.3), consuming one sequence number.
    fn next_nonce(&mut self) -> Option<Nonce> {
        if self.seq == u64::MAX {
            return None;
        }
        let mut nonce = self.iv;
        for (n, s) in nonce[NONCE_LEN - 8..]
            .iter_mut()
            .zip(self.seq.to_be_bytes())
        {
            *n ^= s;
        }
        self.seq += 1;
        Some(Nonce::assume_unique_for_key(nonce))
    }
}

/// Parses a record header: `(outer content type, length field)`.
pub fn parse_header(bytes: &[u8]) -> Option<(u8, usize)> {
    match bytes {
        [ct, _, _, hi, lo, ..] => Some((*ct, usize::from(u16::from_be_bytes([*hi, *lo])))),
        _ => None,
    }
}

fn header(ciphertext_len: usize) -> [u8; HEADER_LEN] {
    // INVARIANT: callers bound ciphertext_len by CIPHERTEXT_MAX < 2^16.
    let len = ciphertext_len as u16;
    let [hi, lo] = len.to_be_bytes();
    [CT_APPLICATION_DATA, 0x03, 0x03, hi, lo]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(alg: &'static aead::Algorithm, key_len: usize) -> (RecordKey, RecordKey) {
        let key: Vec<u8> = (0..key_len as u8).collect();
        let iv = [7u8; 12];
        (
            RecordKey::from_raw(alg, &key, iv, 0).unwrap(),
            RecordKey::from_raw(alg, &key, iv, 0).unwrap(),
        )
    }

    #[test]
    fn seal_open_round_trip_all_suites_and_sizes() {
        for (alg, len) in [
            (&aead::AES_128_GCM, 16),
            (&aead::AES_256_GCM, 32),
            (&aead::CHACHA20_POLY1305, 32),
        ] {
            let (mut tx, mut rx) = pair(alg, len);
            for size in [0usize, 1, 2, 100, 4096, PLAINTEXT_MAX] {
                let mut buf = vec![0u8; size + OVERHEAD];
                for (i, b) in buf[HEADER_LEN..HEADER_LEN + size].iter_mut().enumerate() {
                    *b = (i % 251) as u8 + 1;
                }
                let expect = buf[HEADER_LEN..HEADER_LEN + size].to_vec();
                let n = tx.seal(&mut buf, size, CT_APPLICATION_DATA).unwrap();
                assert_eq!(n, size + OVERHEAD);
                assert_eq!(parse_header(&buf), Some((23, size + 1 + TAG_LEN)));
                let opened = rx.open(&mut buf[..n]).unwrap();
                assert_eq!(opened.content_type, CT_APPLICATION_DATA);
                assert_eq!(
                    &buf[HEADER_LEN..HEADER_LEN + opened.content_len],
                    &expect[..]
                );
            }
            assert_eq!(tx.seq(), 6);
            assert_eq!(rx.seq(), 6);
        }
    }

    #[test]
    fn nonce_depends_on_sequence_number() {
        let (mut tx, mut rx) = pair(&aead::AES_128_GCM, 16);
        let mut a = vec![0u8; 1 + OVERHEAD];
        let mut b = vec![0u8; 1 + OVERHEAD];
        a[HEADER_LEN] = b'x';
        b[HEADER_LEN] = b'x';
        tx.seal(&mut a, 1, CT_APPLICATION_DATA).unwrap();
        tx.seal(&mut b, 1, CT_APPLICATION_DATA).unwrap();
        assert_ne!(a, b, "same plaintext, different seq, must differ");
        // Out of order: record 1 with seq 0 fails authentication.
        assert_eq!(
            rx.open(&mut b),
            Err(NetError::TlsProtocol(TlsViolation::BadRecordMac))
        );
    }

    #[test]
    fn tampered_header_or_body_fails() {
        let (mut tx, mut rx) = pair(&aead::CHACHA20_POLY1305, 32);
        let mut rec = vec![0u8; 3 + OVERHEAD];
        rec[HEADER_LEN..HEADER_LEN + 3].copy_from_slice(b"abc");
        tx.seal(&mut rec, 3, CT_APPLICATION_DATA).unwrap();
        let mut bad = rec.clone();
        bad[1] = 0x01; // legacy version is authenticated as AAD
        assert!(rx.open(&mut bad).is_err());
        let (_, mut rx) = pair(&aead::CHACHA20_POLY1305, 32);
        let mut bad = rec.clone();
        bad[HEADER_LEN + 1] ^= 1;
        assert!(rx.open(&mut bad).is_err());
    }

    #[test]
    fn padding_is_stripped_and_all_zero_is_rejected() {
        let (mut tx, mut rx) = pair(&aead::AES_256_GCM, 32);
        // A padded inner plaintext built by hand: "hi" ‖ type 22 ‖ 0 0, sealed as 5 bytes of
        // "content" whose own type byte is one more padding zero.
        let mut rec = vec![0u8; 5 + OVERHEAD];
        rec[HEADER_LEN..HEADER_LEN + 5].copy_from_slice(&[b'h', b'i', CT_HANDSHAKE, 0, 0]);
        tx.seal(&mut rec, 5, 0).unwrap();
        let o = rx.open(&mut rec).unwrap();
        assert_eq!((o.content_type, o.content_len), (CT_HANDSHAKE, 2));
        let mut zeros = vec![0u8; 4 + OVERHEAD];
        tx.seal(&mut zeros, 4, 0).unwrap();
        assert_eq!(
            rx.open(&mut zeros),
            Err(NetError::TlsProtocol(TlsViolation::UnexpectedMessage))
        );
    }

    #[test]
    fn sequence_exhaustion_is_refused() {
        let mut k = RecordKey::from_raw(&aead::AES_128_GCM, &[1; 16], [0; 12], u64::MAX).unwrap();
        let mut rec = vec![0u8; 1 + OVERHEAD];
        assert!(k.seal(&mut rec, 1, CT_APPLICATION_DATA).is_err());
        assert_eq!(
            k.open(&mut rec),
            Err(NetError::TlsProtocol(TlsViolation::SequenceExhausted))
        );
    }

    #[test]
    fn too_short_records_are_refused() {
        let (_, mut rx) = pair(&aead::AES_128_GCM, 16);
        let mut rec = vec![0u8; HEADER_LEN + TAG_LEN];
        assert_eq!(
            rx.open(&mut rec),
            Err(NetError::TlsProtocol(TlsViolation::DecodeError))
        );
    }

    #[test]
    fn oversized_records_are_refused() {
        let (_, mut rx) = pair(&aead::AES_128_GCM, 16);
        let mut rec = vec![0u8; RECORD_MAX + 1];
        assert_eq!(
            rx.open(&mut rec),
            Err(NetError::TlsProtocol(TlsViolation::RecordOverflow))
        );
        let (mut tx, _) = pair(&aead::AES_128_GCM, 16);
        let mut rec = vec![0u8; PLAINTEXT_MAX + 1 + OVERHEAD];
        assert!(tx
            .seal(&mut rec, PLAINTEXT_MAX + 1, CT_APPLICATION_DATA)
            .is_err());
    }
}
