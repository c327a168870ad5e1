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
//! Uses ring's HMAC (the crypto provider rustls already uses here), a different
//! implementation from the engine's signer, so a test that passes checks both.

use ring::hmac;
use serde_json::{Map, Value};

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
