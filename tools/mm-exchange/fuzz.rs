//! The simulator's request parsers under seeded mutation (a test module of `server`): HTTP
//! heads and their routing (REST + the control endpoint), WebSocket API requests through
//! `api::handle` (parse, weight, signature, parameters, matching) and market-data
//! SUBSCRIBE requests, on real requests — the ones mm's own encoder signs — and Binance's
//! documented REST targets. Asserts no panic and a well-formed answer to every input.
//! Shares the mutator with tests/fuzz.rs; `MM_FUZZ_ITERS` / `MM_FUZZ_SEED` as there.
//!
//! Never: opens a socket (the handlers are called directly).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::mpsc;

use clap::Parser;
use mm::orders::SessionTag;
use mm::types::{Symbol, SymbolSpec};
use mm::venue::binance::{Credentials, RequestEncoder};

use crate::api::{self, ApiConn};
use crate::config::{Config, Flags, DOC_API_KEY, DOC_API_SECRET};
use crate::data::Capture;
use crate::state::{Exchange, Shared};

#[path = "../../tests/support/mutate.rs"]
mod mutate;

const SHORT_RUN: u64 = 2_000;
const TOKEN: &str = "fuzz-token";

fn shared() -> Shared {
    let data = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tools/data/btcusdt_20240808.gz"
    );
    let flags = Flags::try_parse_from([
        "mm-exchange",
        "--data",
        data,
        "--control-token",
        TOKEN,
        "--stdin",
        "off",
        // Limits out of the way: every input reaches the parser and the matching, not a 429.
        "--weight-per-minute",
        "1000000000000",
        "--orders-per-10s",
        "1000000000000",
        "--orders-per-day",
        "1000000000000",
    ])
    .unwrap();
    let cfg = Config::from_flags(flags).unwrap();
    let capture = Capture::load(&cfg.data).unwrap();
    let ex = Exchange::new(&cfg, &capture);
    Shared::new(cfg, ex)
}

/// The requests mm sends (signed with the documentation key pair the simulator accepts).
fn real_requests() -> Vec<Vec<u8>> {
    let spec =
        SymbolSpec::from_decimals(Symbol::new("BTCUSDT").unwrap(), "0.01", "0.00001", "5").unwrap();
    let creds = Credentials::new(DOC_API_KEY, DOC_API_SECRET).unwrap();
    let enc = RequestEncoder::new(creds, spec, SessionTag::new("fz").unwrap(), 5000).unwrap();
    let now = u64::try_from(crate::clock::wall_ms()).unwrap();
    let mut out = vec![0u8; 4096];
    let mut seeds = Vec::new();
    let mut keep = |n: Option<usize>, out: &[u8]| seeds.push(out[..n.unwrap()].to_vec());
    keep(enc.encode_open_orders(1, now, &mut out), &out);
    keep(enc.encode_cancel_all(2, now, &mut out), &out);
    keep(enc.encode_subscribe(3, now, &mut out), &out);
    keep(enc.encode_account_status(4, now, &mut out), &out);
    keep(enc.encode_time(5, &mut out), &out);
    for text in [
        r#"{"id":"6","method":"order.place","params":{"symbol":"BTCUSDT","side":"BUY","type":"LIMIT_MAKER","price":"50000.00","quantity":"0.00100","newClientOrderId":"fz-1","apiKey":"k","timestamp":1,"signature":"00"}}"#,
        r#"{"id":"7","method":"order.status","params":{"symbol":"BTCUSDT","orderId":1,"apiKey":"k","timestamp":1,"signature":"00"}}"#,
        r#"{"id":8,"method":"exchangeInfo","params":{"symbols":["BTCUSDT"]}}"#,
        r#"{"id":"9","method":"ping"}"#,
    ] {
        seeds.push(text.as_bytes().to_vec());
    }
    seeds
}

#[test]
fn websocket_api_requests_survive_mutation() {
    let shared = shared();
    let (tx, _rx) = mpsc::channel();
    let conn = ApiConn::new(1, tx);
    let seeds = real_requests();
    mutate::run(
        "mm-exchange ws-api",
        &seeds,
        mutate::iterations(SHORT_RUN),
        |bytes| {
            // Text frames are UTF-8 (the WebSocket layer refuses others).
            let Ok(text) = std::str::from_utf8(bytes) else {
                return;
            };
            let reply = api::handle(&shared, &conn, text);
            let v: serde_json::Value = serde_json::from_str(&reply).unwrap();
            assert!(v.get("status").is_some(), "{reply}");
        },
    );
}

#[test]
fn http_heads_and_subscribe_requests_survive_mutation() {
    let shared = shared();
    let heads: Vec<Vec<u8>> = [
        "GET /api/v3/depth?symbol=BTCUSDT&limit=1000 HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "GET /api/v3/exchangeInfo?symbol=BTCUSDT HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "GET /api/v3/time HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n",
        "POST /control/accounting?token=fuzz-token HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "POST /control/stall-market/5?token=fuzz-token HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "POST /control/stop HTTP/1.1\r\nX-MM-Control-Token: nope\r\n\r\n",
        "GET /stream?streams=btcusdt@depth@100ms/btcusdt@bookTicker HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    mutate::run(
        "mm-exchange http",
        &heads,
        mutate::iterations(SHORT_RUN),
        |bytes| {
            if let Some(head) = super::parse_head(bytes) {
                if head.header("Upgrade").is_none() {
                    let reply = super::route_http(&shared, &head, crate::clock::wall_ms());
                    assert!((200..600).contains(&reply.status));
                } else {
                    let _ = super::route_ws(&head);
                }
            }
        },
    );
    let subs: Vec<Vec<u8>> = [
        r#"{"method":"SUBSCRIBE","params":["btcusdt@trade","btcusdt@depth@100ms"],"id":1}"#,
        r#"{"method":"UNSUBSCRIBE","params":["btcusdt@trade"],"id":2}"#,
        r#"{"method":"LIST_SUBSCRIPTIONS","id":3}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    mutate::run(
        "mm-exchange subscribe",
        &subs,
        mutate::iterations(SHORT_RUN),
        |bytes| {
            let Ok(text) = std::str::from_utf8(bytes) else {
                return;
            };
            let reply = super::market_request(&shared, 1, text);
            let _: serde_json::Value = serde_json::from_str(&reply).unwrap();
        },
    );
}
