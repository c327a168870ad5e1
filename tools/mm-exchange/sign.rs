//! HMAC-SHA256 request signatures, verified exactly as Binance documents them.
//!
//! - WebSocket API: the payload is every parameter except `signature`, sorted by name, as
//!   `name=value` joined with `&` (string values as sent, numbers and booleans as their
//!   JSON text).
//! - REST: the payload is the query string (then the body) exactly as sent, minus the
//!   trailing `&signature=…`.
//! - The signature is the hex HMAC-SHA256 of the payload keyed by the secret, compared in
//!   constant time (`ring::hmac::verify`); hex is case-insensitive, as Binance says.
//!
//! - Ed25519 keys (`session.logon`, or any signed request): the same payload; the
//!   signature is the standard base64 (with padding) of the 64-byte Ed25519 signature,
//!   verified against the public key registered for the API key (a PEM
//!   `SubjectPublicKeyInfo`, as `openssl pkey -pubout` writes it and Binance takes it).
//!
//! Uses ring's HMAC (the crypto provider rustls already uses here), a different
//! implementation from the engine's signer, so a test that passes checks both. For Ed25519
//! both sides use ring (verify here, sign there); the RFC 8032 vectors below pin it.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ring::hmac;
use ring::signature::{UnparsedPublicKey, ED25519};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::SubjectPublicKeyInfoDer;
use serde_json::{Map, Value};

/// DER prefix of an Ed25519 `SubjectPublicKeyInfo` (RFC 8410): SEQUENCE { SEQUENCE { OID
/// 1.3.101.112 }, BIT STRING (32 bytes) }.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The raw 32-byte Ed25519 public key from a PEM `-----BEGIN PUBLIC KEY-----` block.
pub fn ed25519_public_key_from_pem(pem: &[u8]) -> Result<[u8; 32], String> {
    let der = SubjectPublicKeyInfoDer::from_pem_slice(pem)
        .map_err(|e| format!("no PEM public key (-----BEGIN PUBLIC KEY-----): {e}"))?;
    let bytes: &[u8] = der.as_ref();
    match bytes.strip_prefix(&ED25519_SPKI_PREFIX[..]) {
        Some(key) if key.len() == 32 => {
            let mut out = [0u8; 32];
            out.copy_from_slice(key);
            Ok(out)
        }
        _ => Err("not an Ed25519 public key".to_string()),
    }
}

/// True when `signature_b64` (standard base64) is the Ed25519 signature of `payload` by
/// the key whose public half is `public_key`.
pub fn verify_ed25519(public_key: &[u8; 32], payload: &str, signature_b64: &str) -> bool {
    let Ok(signature) = BASE64.decode(signature_b64) else {
        return false;
    };
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(payload.as_bytes(), &signature)
        .is_ok()
}

/// The WebSocket API signature payload of `params`.
pub fn ws_payload(params: &Map<String, Value>) -> String {
    let mut names: Vec<&String> = params.keys().filter(|k| *k != "signature").collect();
    names.sort();
    let mut out = String::new();
    for (i, name) in names.into_iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        match &params[name] {
            Value::String(s) => out.push_str(s),
            other => out.push_str(&other.to_string()),
        }
    }
    out
}

/// Lower-case hex HMAC-SHA256 of `payload` keyed by `secret` (what a client sends).
#[cfg(test)]
pub fn sign_hex(secret: &str, payload: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, payload.as_bytes());
    let mut out = String::with_capacity(64);
    for byte in tag.as_ref() {
        out.push(HEX[usize::from(byte >> 4)] as char);
        out.push(HEX[usize::from(byte & 0x0f)] as char);
    }
    out
}

/// True when `signature_hex` is the HMAC-SHA256 of `payload` under `secret`.
pub fn verify(secret: &str, payload: &str, signature_hex: &str) -> bool {
    let Some(tag) = decode_hex(signature_hex) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    hmac::verify(&key, payload.as_bytes(), &tag).is_ok()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.len() % 2 != 0 {
        return None;
    }
    bytes
        .chunks(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
    const API_KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";

    /// PROTOCOL.md's vector (Binance REST docs): the query string as sent.
    #[test]
    fn rest_vector_from_protocol_md() {
        let payload = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
        let expected = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71";
        assert_eq!(sign_hex(SECRET, payload), expected);
        assert!(verify(SECRET, payload, expected));
        assert!(verify(SECRET, payload, &expected.to_ascii_uppercase()));
        // One changed byte of the signature, or of the payload, fails.
        assert!(!verify(SECRET, payload, &expected.replace("c8db", "c8dc")));
        assert!(!verify(SECRET, &payload.replace("0.1", "0.2"), expected));
        assert!(!verify(SECRET, payload, "zz"));
    }

    /// The same parameters as a WebSocket API request: the verifier sorts them by name.
    #[test]
    fn ws_payload_of_the_protocol_md_parameters() {
        let params: Map<String, Value> = serde_json::from_str(
            r#"{"symbol":"LTCBTC","side":"BUY","type":"LIMIT","timeInForce":"GTC",
                "quantity":"1","price":"0.1","recvWindow":5000,"timestamp":1499827319559,
                "signature":"ignored"}"#,
        )
        .unwrap();
        let payload = ws_payload(&params);
        assert_eq!(
            payload,
            "price=0.1&quantity=1&recvWindow=5000&side=BUY&symbol=LTCBTC&timeInForce=GTC&timestamp=1499827319559&type=LIMIT"
        );
        // Sorted differently from the REST string, so the signature differs.
        assert_ne!(
            sign_hex(SECRET, &payload),
            "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
        );
    }

    /// RFC 8032 §7.1 TEST 2 (one-byte message 0x72): the public key from its PEM form,
    /// the signature verifies, a changed byte does not.
    #[test]
    fn ed25519_rfc8032_vector() {
        // `openssl pkey -pubout` of the test's secret key
        // 4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb.
        let pem = "-----BEGIN PUBLIC KEY-----\n\
                   MCowBQYDK2VwAyEAPUAXw+hDiVqStwqnTRt+vJyYLM8uxJaMwM1V8Sr0Zgw=\n\
                   -----END PUBLIC KEY-----\n";
        let key = ed25519_public_key_from_pem(pem.as_bytes()).unwrap();
        assert_eq!(
            key[..4],
            [0x3d, 0x40, 0x17, 0xc3],
            "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"
        );
        let sig = "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da\
                   085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00";
        let sig = decode_hex(sig).unwrap();
        let b64 = BASE64.encode(&sig);
        assert!(verify_ed25519(&key, "\u{72}", &b64));
        assert!(!verify_ed25519(&key, "\u{73}", &b64));
        assert!(!verify_ed25519(&key, "\u{72}", "not base64!"));
        let mut other = sig.clone();
        other[0] ^= 1;
        assert!(!verify_ed25519(&key, "\u{72}", &BASE64.encode(&other)));
        // A non-Ed25519 PEM key is refused with a reason.
        assert!(ed25519_public_key_from_pem(b"junk").is_err());
    }

    /// Binance's WebSocket API HMAC example (web-socket-api.md, "SIGNED request example").
    #[test]
    fn ws_vector_from_binance_docs() {
        let params: Map<String, Value> = serde_json::from_str(&format!(
            r#"{{"symbol":"BTCUSDT","side":"SELL","type":"LIMIT","timeInForce":"GTC",
                "quantity":"0.01000000","price":"52000.00","newOrderRespType":"ACK",
                "recvWindow":100,"timestamp":1645423376532,"apiKey":"{API_KEY}"}}"#
        ))
        .unwrap();
        let payload = ws_payload(&params);
        assert!(payload.starts_with("apiKey=vmPUZE6mv9SD5VNHk4HlWF"));
        assert!(verify(
            SECRET,
            &payload,
            "cc15477742bd704c29492d96c7ead9414dfd8e0ec4a00f947bb5bb454ddbd08a"
        ));
    }
}
