//! Unit tests of the Binance venue: signing against the documented vectors and a naive
//! sorted-payload reference, decoding of recorded frames, and the session's rules
//! (back-off, rate limits, server time, refusals, reconciliation answers).

use super::*;
use crate::risk::{Exposure, Risk, RiskLimits};

const KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
const SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";

fn spec() -> SymbolSpec {
    SymbolSpec::from_decimals(Symbol::new("BTCUSDT").unwrap(), "0.01", "0.00001", "5").unwrap()
}

fn encoder() -> RequestEncoder {
    let creds = Credentials::new(KEY, SECRET).unwrap();
    RequestEncoder::new(creds, spec(), SessionTag::new("t1").unwrap(), 5000).unwrap()
}

fn approve(side: Side, price: i64, qty: i64) -> Approved {
    let mut risk = Risk::new(RiskLimits::default(), spec()).unwrap();
    risk.on_market_data(0);
    risk.check(side, Price(price), Qty(qty), &Exposure::default())
        .unwrap()
}

/// The exchange's way: parse, sort the params, join (a naive reference).
fn reference_payload(request: &str) -> (String, String) {
    let v: serde_json::Value = serde_json::from_str(request).unwrap();
    let params = v["params"].as_object().unwrap();
    let mut names: Vec<&String> = params.keys().filter(|k| *k != "signature").collect();
    names.sort();
    let payload = names
        .iter()
        .map(|n| match &params[*n] {
            serde_json::Value::String(s) => format!("{n}={s}"),
            other => format!("{n}={other}"),
        })
        .collect::<Vec<_>>()
        .join("&");
    (payload, params["signature"].as_str().unwrap().to_string())
}

fn sign(payload: &str) -> String {
    let mut hex = [0u8; 64];
    Credentials::new(KEY, SECRET)
        .unwrap()
        .sign_hex(payload.as_bytes(), &mut hex);
    String::from_utf8(hex.to_vec()).unwrap()
}

#[test]
fn documented_rest_test_vector() {
    let payload = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
    assert_eq!(
        sign(payload),
        "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
    );
}

#[test]
fn order_place_is_sorted_and_signed_over_the_sorted_payload() {
    let enc = encoder();
    let mut buf = [0u8; REQUEST_BYTES_MAX];
    let order = approve(Side::Buy, 6_183_763, 100);
    let n = enc
        .encode_place(7, ClientOrderId(42), &order, 1_723_161_255_343, &mut buf)
        .unwrap();
    let text = std::str::from_utf8(&buf[..n]).unwrap();
    assert!(text.starts_with("{\"id\":\"7\",\"method\":\"order.place\",\"params\":{"));
    let (payload, signature) = reference_payload(text);
    assert_eq!(
        payload,
        format!(
            "apiKey={KEY}&newClientOrderId=mmt1-42&newOrderRespType=ACK&price=61837.63\
             &quantity=0.00100&recvWindow=5000&side=BUY&symbol=BTCUSDT\
             &timestamp=1723161255343&type=LIMIT_MAKER"
        )
    );
    assert_eq!(signature, sign(&payload));
}

#[test]
fn every_request_signs_its_sorted_payload() {
    let enc = encoder();
    let mut buf = [0u8; REQUEST_BYTES_MAX];
    let order = approve(Side::Sell, 6_183_800, 50);
    let actions = [
        Action::Cancel {
            id: ClientOrderId(3),
        },
        Action::CancelReplace {
            cancel_id: ClientOrderId(3),
            new_id: ClientOrderId(4),
            order,
        },
        Action::CancelAll,
    ];
    for action in &actions {
        let n = enc.encode_action(9, action, 1_000, &mut buf).unwrap();
        let (payload, signature) = reference_payload(std::str::from_utf8(&buf[..n]).unwrap());
        assert_eq!(signature, sign(&payload), "{action:?}");
    }
    let n = enc.encode_action(9, &actions[1], 1_000, &mut buf).unwrap();
    let (payload, _) = reference_payload(std::str::from_utf8(&buf[..n]).unwrap());
    assert!(payload.contains(
        "cancelOrigClientOrderId=mmt1-3&cancelReplaceMode=STOP_ON_FAILURE&newClientOrderId=mmt1-4"
    ));
    assert!(payload.contains("&side=SELL&"));
    type Encode = fn(&RequestEncoder, &mut [u8]) -> Option<usize>;
    let encoders: [Encode; 4] = [
        |e, b| e.encode_open_orders(1, 1_000, b),
        |e, b| e.encode_subscribe(1, 1_000, b),
        |e, b| e.encode_account_status(1, 1_000, b),
        |e, b| e.encode_cancel_all(1, 1_000, b),
    ];
    for encode in encoders {
        let n = encode(&enc, &mut buf).unwrap();
        let (payload, signature) = reference_payload(std::str::from_utf8(&buf[..n]).unwrap());
        assert_eq!(signature, sign(&payload));
    }
    // Too small a buffer is refused, never overrun.
    let mut small = [0u8; 64];
    assert_eq!(enc.encode_action(1, &actions[0], 1, &mut small), None);
}

#[test]
fn credentials_are_validated_and_never_printed() {
    assert_eq!(
        Credentials::new("", "s").unwrap_err(),
        BinanceError::BadApiKey
    );
    assert_eq!(
        Credentials::new("a\"b", "s").unwrap_err(),
        BinanceError::BadApiKey
    );
    assert_eq!(
        Credentials::new("k", "").unwrap_err(),
        BinanceError::BadApiSecret
    );
    let shown = format!("{:?}", Credentials::new(KEY, SECRET).unwrap());
    assert!(!shown.contains(SECRET) && !shown.contains(KEY), "{shown}");
}

/// RFC 8032 §7.1 TEST 2's secret key as PKCS#8 v1 PEM (as `openssl genpkey -algorithm
/// ed25519` writes keys); its public key is 3d4017c3…f4660c.
const ED25519_PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
    MC4CAQAwBQYDK2VwBCIEIEzNCJso/5banbbDRuwRTg9bijGfNaumJNqM9u1PuKb7\n\
    -----END PRIVATE KEY-----\n";
const ED25519_PUBLIC: &str = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn ed25519_encoder() -> RequestEncoder {
    let creds = Credentials::ed25519_from_pem("edKey", ED25519_PEM.as_bytes()).unwrap();
    RequestEncoder::new(creds, spec(), SessionTag::new("t1").unwrap(), 5000).unwrap()
}

#[test]
fn ed25519_key_signs_the_rfc8032_vector() {
    let creds = Credentials::ed25519_from_pem("edKey", ED25519_PEM.as_bytes()).unwrap();
    assert_eq!(creds.key_type(), KeyType::Ed25519);
    let mut b64 = [0u8; ED25519_SIGNATURE_B64_LEN];
    assert!(creds.sign_ed25519_base64(&[0x72], &mut b64));
    let expected = unhex(
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da\
         085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    );
    assert_eq!(BASE64.decode(b64).unwrap(), expected);
    // An Ed25519 key makes no HMAC, an HMAC key no Ed25519 signature.
    assert!(!creds.sign_hex(b"x", &mut [0u8; 64]));
    assert!(!Credentials::new(KEY, SECRET)
        .unwrap()
        .sign_ed25519_base64(b"x", &mut b64));
    let shown = format!("{creds:?}");
    assert!(
        !shown.contains("MC4CAQ") && shown.contains("Ed25519"),
        "{shown}"
    );
}

#[test]
fn bad_private_keys_are_refused_with_a_reason() {
    let refused = |pem: &str| Credentials::ed25519_from_pem("k", pem.as_bytes()).unwrap_err();
    assert!(matches!(
        refused("no pem here"),
        BinanceError::BadPrivateKey(_)
    ));
    let encrypted =
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMC4CAQ==\n-----END ENCRYPTED PRIVATE KEY-----\n";
    let why = refused(encrypted).to_string();
    assert!(why.contains("encrypted"), "{why}");
    // A PKCS#8 block that is not Ed25519 (an EC P-256 key from rcgen).
    let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let why = refused(&ec.serialize_pem()).to_string();
    assert!(why.contains("not an Ed25519 private key"), "{why}");
    assert_eq!(
        Credentials::ed25519_from_pem("", ED25519_PEM.as_bytes()).unwrap_err(),
        BinanceError::BadApiKey
    );
}

#[test]
fn ed25519_logon_is_signed_and_later_requests_carry_no_key_or_signature() {
    let enc = ed25519_encoder();
    let mut buf = [0u8; REQUEST_BYTES_MAX];
    let n = enc.encode_logon(5, 1_723_161_255_343, &mut buf).unwrap();
    let text = std::str::from_utf8(&buf[..n]).unwrap();
    assert!(text.starts_with("{\"id\":\"5\",\"method\":\"session.logon\",\"params\":{"));
    let (payload, signature) = reference_payload(text);
    assert_eq!(
        payload,
        "apiKey=edKey&recvWindow=5000&timestamp=1723161255343"
    );
    let public = unhex(ED25519_PUBLIC);
    let key = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &public);
    let sig = BASE64.decode(&signature).unwrap();
    key.verify(payload.as_bytes(), &sig).unwrap();
    assert!(key
        .verify(b"apiKey=edKey&recvWindow=5000&timestamp=1", &sig)
        .is_err());

    // After the logon: the same parameters as HMAC requests, minus apiKey and signature.
    let order = approve(Side::Buy, 6_183_763, 100);
    let n = enc
        .encode_place(7, ClientOrderId(42), &order, 1_723_161_255_343, &mut buf)
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap();
    let params = v["params"].as_object().unwrap();
    assert!(!params.contains_key("apiKey") && !params.contains_key("signature"));
    assert_eq!(params["timestamp"], 1_723_161_255_343u64);
    assert_eq!(params["type"], "LIMIT_MAKER");
    for action in [
        Action::Cancel {
            id: ClientOrderId(3),
        },
        Action::CancelAll,
    ] {
        let n = enc.encode_action(9, &action, 1_000, &mut buf).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap();
        assert!(v["params"].get("signature").is_none(), "{v}");
        assert_eq!(v["params"]["timestamp"], 1_000);
    }
    let n = enc.encode_subscribe(2, 1_000, &mut buf).unwrap();
    assert_eq!(
        &buf[..n],
        b"{\"id\":\"2\",\"method\":\"userDataStream.subscribe\"}"
    );
    let n = enc.encode_session_status(3, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"{\"id\":\"3\",\"method\":\"session.status\"}");
    let n = enc.encode_session_logout(4, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"{\"id\":\"4\",\"method\":\"session.logout\"}");
    // An HMAC encoder has no logon.
    assert_eq!(encoder().encode_logon(1, 1, &mut buf), None);
}

fn dec(frame: &str) -> Result<Message, DecodeError> {
    decode(
        frame.as_bytes(),
        &spec(),
        &SessionTag::new("t1").unwrap(),
        b"BTC",
        b"USDT",
    )
}

#[test]
fn responses_decode_with_rate_limits_and_retry_after() {
    let ok = r#"{"id":"12","status":200,"result":{"symbol":"BTCUSDT","orderId":5,"clientOrderId":"mmt1-1","transactTime":1723161255343},"rateLimits":[{"rateLimitType":"ORDERS","interval":"SECOND","intervalNum":10,"limit":100,"count":3},{"rateLimitType":"ORDERS","interval":"DAY","intervalNum":1,"limit":200000,"count":9},{"rateLimitType":"REQUEST_WEIGHT","interval":"MINUTE","intervalNum":1,"limit":6000,"count":17}]}"#;
    let Message::Response(r) = dec(ok).unwrap() else {
        panic!()
    };
    assert_eq!(
        (r.req_id, r.status, r.code, r.transact_ms),
        (Some(12), 200, 0, 1_723_161_255_343)
    );
    assert_eq!(
        r.rate_limits,
        Some(RateLimits {
            weight_1m: (17, 6000),
            orders_10s: (3, 100),
            orders_1d: (9, 200_000)
        })
    );
    let err = r#"{"id":"13","status":400,"error":{"code":-2010,"msg":"Order would immediately match and take."},"rateLimits":[]}"#;
    let Message::Response(r) = dec(err).unwrap() else {
        panic!()
    };
    assert_eq!((r.status, r.code), (400, -2010));
    let limited = r#"{"id":"14","status":429,"error":{"code":-1015,"msg":"Too many new orders","data":{"serverTime":1,"retryAfter":1723161265000}}}"#;
    let Message::Response(r) = dec(limited).unwrap() else {
        panic!()
    };
    assert_eq!(
        (r.status, r.code, r.retry_after_ms),
        (429, -1015, Some(1_723_161_265_000))
    );
    let cr = r#"{"id":"15","status":400,"error":{"code":-2022,"msg":"Order cancel-replace failed.","data":{"cancelResult":"FAILURE","newOrderResult":"NOT_ATTEMPTED","cancelResponse":{"code":-2011,"msg":"Unknown order sent."},"newOrderResponse":null}}}"#;
    let Message::Response(r) = dec(cr).unwrap() else {
        panic!()
    };
    assert_eq!(
        (r.code, r.cancel_code, r.new_order_code, r.cancel_succeeded),
        (-2022, -2011, 0, false)
    );
    let null_id = r#"{"id":null,"status":400,"error":{"code":-1135,"msg":"Invalid JSON Request"}}"#;
    let Message::Response(r) = dec(null_id).unwrap() else {
        panic!()
    };
    assert_eq!(r.req_id, None);
}

#[test]
fn execution_reports_become_venue_events() {
    let trade = r#"{"event":{"e":"executionReport","E":1,"s":"BTCUSDT","c":"mmt1-42","S":"BUY","o":"LIMIT_MAKER","f":"GTC","q":"0.00100000","p":"61837.63000000","C":"","x":"TRADE","X":"PARTIALLY_FILLED","r":"NONE","i":7,"l":"0.00040000","z":"0.00060000","L":"61837.63000000","n":"0.02473505","N":"USDT","T":1723161255343,"t":99,"m":true,"O":1,"Z":"37.1","Y":"24.7","Q":"0"}}"#;
    let Message::Execution(report) = dec(trade).unwrap() else {
        panic!()
    };
    assert_eq!(
        report.to_event(),
        Some(VenueEvent::Fill {
            id: ClientOrderId(42),
            price: Price(6_183_763),
            qty: Qty(40),
            cum_qty: Qty(60),
            fee_quote_atoms: 2_473_505,
            is_maker: true,
            exch_ts_ms: 1_723_161_255_343,
            trade_id: 99,
        })
    );
    let canceled = r#"{"event":{"e":"executionReport","c":"web_x","C":"mmt1-42","x":"CANCELED","X":"CANCELED","l":"0","z":"0","L":"0","n":"0","N":null,"T":5,"t":-1,"m":false}}"#;
    let Message::Execution(report) = dec(canceled).unwrap() else {
        panic!()
    };
    assert_eq!(
        report.to_event(),
        Some(VenueEvent::Canceled {
            id: ClientOrderId(42)
        })
    );
    let new = r#"{"event":{"e":"executionReport","c":"mmt1-43","C":"","x":"NEW","z":"0.00000000","T":6}}"#;
    let Message::Execution(report) = dec(new).unwrap() else {
        panic!()
    };
    assert_eq!(
        report.to_event(),
        Some(VenueEvent::Accepted {
            id: ClientOrderId(43),
            exch_ts_ms: 6
        })
    );
    let foreign =
        r#"{"event":{"e":"executionReport","c":"other-1","C":"","x":"NEW","z":"0","T":6}}"#;
    let Message::Execution(report) = dec(foreign).unwrap() else {
        panic!()
    };
    assert_eq!(report.to_event(), None);
    let base_fee = r#"{"event":{"e":"executionReport","c":"mmt1-42","x":"TRADE","l":"0.00100000","z":"0.00100000","L":"60000.00000000","n":"0.00000100","N":"BTC","T":1,"t":2,"m":true}}"#;
    let Message::Execution(report) = dec(base_fee).unwrap() else {
        panic!()
    };
    // 0.000001 BTC × 60000 = 0.06 USDT.
    assert_eq!(report.fee_quote_atoms, 6_000_000);
    assert_eq!(
        dec(r#"{"event":{"e":"outboundAccountPosition"}}"#),
        Ok(Message::OtherEvent)
    );
}

#[test]
fn broken_frames_are_errors_not_panics() {
    for frame in [
        "",
        "{",
        "[]",
        "{\"id\":",
        "{\"status\":}",
        "{\"status\":200",
        "{\"a\":\"\\",
        "{\"event\":{\"e\":\"executionReport\"}}",
        "{\"status\":400}",
        "{\"x\":1}",
        "{\"event\":{\"e\":\"executionReport\",\"c\":\"mmt1-1\",\"x\":\"TRADE\",\"L\":\"1.001\"}}",
        "{\"status\":200,\"rateLimits\":[{]}",
    ] {
        assert!(dec(frame).is_err(), "{frame}");
    }
    // Every prefix of a real frame: an error or a value, never a panic.
    let full = r#"{"id":"12","status":200,"result":[{"a":"}"}],"rateLimits":[{"rateLimitType":"ORDERS","interval":"SECOND","intervalNum":10,"limit":100,"count":3}]}"#;
    for end in 0..full.len() {
        let _ = dec(&full[..end]);
    }
    assert!(dec(full).is_ok());
}

// -- the venue's bookkeeping, fed frames directly (no connection) --------------------

fn offline_venue() -> BinanceVenue {
    let cfg = BinanceConfig {
        conn: ConnConfig::new("ws://127.0.0.1:1/ws-api/v3", crate::net::TlsRoots::WebPki),
        spec: spec(),
        base_asset: Symbol::new("BTC").unwrap(),
        quote_asset: Symbol::new("USDT").unwrap(),
        session: SessionTag::new("t1").unwrap(),
        recv_window_ms: 5000,
        rate_headroom: 5,
    };
    BinanceVenue::new(cfg, Credentials::new(KEY, SECRET).unwrap(), Token(1), 0).unwrap()
}

fn track(venue: &mut BinanceVenue, req_id: u64, kind: RequestKind) {
    let slot = (req_id % IN_FLIGHT_MAX as u64) as usize;
    venue.core.in_flight[slot] = Some(InFlight {
        req_id,
        kind,
        sent_ns: 0,
        other: false,
    });
    venue.core.in_flight_len += 1;
}

fn feed(venue: &mut BinanceVenue, frame: &str, now_ns: u64) -> Vec<VenueEvent> {
    venue
        .core
        .on_message(MessageKind::Text, frame.as_bytes(), now_ns);
    let mut out = Vec::new();
    venue.poll_events(now_ns, &mut |e| out.push(e));
    out
}

#[test]
fn account_status_gives_the_symbols_balances_and_open_orders_count_everyone() {
    let enc = encoder();
    let mut buf = [0u8; REQUEST_BYTES_MAX];
    let n = enc.encode_account_status(5, 1_000, &mut buf).unwrap();
    let (payload, _) = reference_payload(std::str::from_utf8(&buf[..n]).unwrap());
    assert_eq!(
        payload,
        format!("apiKey={KEY}&omitZeroBalances=true&recvWindow=5000&timestamp=1000")
    );

    let mut venue = offline_venue();
    // web-socket-api.md "Account information", trimmed; BNB is ignored.
    track(&mut venue, 5, RequestKind::Account);
    let frame = r#"{"id":"5","status":200,"result":{"makerCommission":15,"takerCommission":15,"canTrade":true,"accountType":"SPOT","balances":[{"asset":"BNB","free":"0.10000000","locked":"0.00000000"},{"asset":"BTC","free":"0.99000000","locked":"0.01000000"},{"asset":"USDT","free":"99000.00000000","locked":"617.76000000"}],"permissions":["SPOT"],"uid":354937868},"rateLimits":[{"rateLimitType":"REQUEST_WEIGHT","interval":"MINUTE","intervalNum":1,"limit":6000,"count":20}]}"#;
    assert!(feed(&mut venue, frame, 1).is_empty());
    assert_eq!(
        venue.balances(),
        Some(Balances {
            base_atoms: 100_000_000,
            base_locked_atoms: 1_000_000,
            quote_atoms: 9_961_776_000_000,
            quote_locked_atoms: 61_776_000_000,
        })
    );
    // omitZeroBalances: an absent asset is 0.
    track(&mut venue, 6, RequestKind::Account);
    let frame = r#"{"id":"6","status":200,"result":{"balances":[{"asset":"USDT","free":"5.00000000","locked":"0.00000000"}]}}"#;
    feed(&mut venue, frame, 2);
    assert_eq!(venue.balances().map(|b| b.base_atoms), Some(0));
    // A broken amount is no answer at all (and counted), never a zero balance.
    track(&mut venue, 7, RequestKind::Account);
    let frame = r#"{"id":"7","status":200,"result":{"balances":[{"asset":"BTC","free":"x","locked":"0"}]}}"#;
    feed(&mut venue, frame, 3);
    assert_eq!(venue.balances(), None);
    assert_eq!(venue.stats().decode_errors, 1);

    // openOrders.status: ours and everyone's.
    track(&mut venue, 8, RequestKind::OpenOrders);
    let frame = r#"{"id":"8","status":200,"result":[{"symbol":"BTCUSDT","clientOrderId":"mmt1-4"},{"symbol":"BTCUSDT","clientOrderId":"web_x1"},{"symbol":"BTCUSDT","clientOrderId":"mmold-9"}]}"#;
    feed(&mut venue, frame, 4);
    assert_eq!(
        (venue.open_orders(), venue.open_orders_all()),
        (Some(1), Some(3))
    );
    assert_eq!(venue.last_heard_ns(), 4);
}

#[test]
fn refusals_are_kept_for_the_owner_and_a_terminated_stream_resubscribes() {
    let mut venue = offline_venue();
    // A refused subscription: the code is kept (the venue restarts the connection
    // after SUBSCRIBE_RETRY_NS when polled).
    track(&mut venue, 1, RequestKind::Subscribe);
    let refused = r#"{"id":"1","status":400,"error":{"code":-1022,"msg":"Signature for this request is not valid."}}"#;
    feed(&mut venue, refused, 5);
    assert_eq!(venue.subscribe_refused(), Some(-1022));
    assert!(!venue.core.subscribed);
    track(&mut venue, 2, RequestKind::Subscribe);
    feed(
        &mut venue,
        r#"{"id":"2","status":200,"result":{"subscriptionId":0}}"#,
        6,
    );
    assert_eq!(venue.subscribe_refused(), None);
    assert!(venue.core.subscribed);
    // The trader's cancel-all refused: taken once; -2011 (nothing open) is no refusal.
    track(&mut venue, 3, RequestKind::CancelAll);
    feed(
        &mut venue,
        r#"{"id":"3","status":400,"error":{"code":-2011,"msg":"Unknown order sent."}}"#,
        7,
    );
    assert_eq!(venue.take_cancel_all_refused(), None);
    track(&mut venue, 4, RequestKind::CancelAll);
    feed(
        &mut venue,
        r#"{"id":"4","status":503,"error":{"code":-1001,"msg":"Internal error"}}"#,
        8,
    );
    assert_eq!(venue.take_cancel_all_refused(), Some(-1001));
    assert_eq!(venue.take_cancel_all_refused(), None);
    // eventStreamTerminated: not subscribed any more; subscribe again.
    feed(
        &mut venue,
        r#"{"subscriptionId":0,"event":{"e":"eventStreamTerminated","E":1728973001334}}"#,
        9,
    );
    assert!(!venue.core.subscribed);
    assert!(venue.core.want_subscribe);
    // A result that is not a list is no answer, never "0 open".
    track(&mut venue, 5, RequestKind::OpenOrders);
    feed(
        &mut venue,
        r#"{"id":"5","status":200,"result":{"orders":[]}}"#,
        10,
    );
    assert_eq!(venue.open_orders(), None);
    // During a back-off nothing is sent, not even the reconciliation's requests.
    venue.core.backoff_until_ms = u64::MAX;
    venue.core.backoff_orders_only = false;
    assert_eq!(venue.request_account(11), Err(SubmitError::Disconnected));
}

#[test]
fn cancel_replace_outcomes_map_to_both_orders() {
    let (old, new) = (ClientOrderId(3), ClientOrderId(4));
    let kind = RequestKind::CancelReplace {
        cancel_id: old,
        new_id: new,
    };
    let cases: [(&str, [VenueEvent; 2]); 5] = [
        (
            r#"{"id":"1","status":200,"result":{"cancelResult":"SUCCESS","newOrderResult":"SUCCESS"}}"#,
            [
                VenueEvent::Canceled { id: old },
                VenueEvent::Accepted {
                    id: new,
                    exch_ts_ms: 0,
                },
            ],
        ),
        (
            r#"{"id":"1","status":409,"error":{"code":-2021,"msg":"x","data":{"cancelResult":"SUCCESS","newOrderResult":"FAILURE","cancelResponse":{"orderId":1},"newOrderResponse":{"code":-2010,"msg":"y"}}}}"#,
            [
                VenueEvent::Canceled { id: old },
                VenueEvent::Rejected {
                    id: new,
                    code: -2010,
                },
            ],
        ),
        (
            r#"{"id":"1","status":409,"error":{"code":-2021,"msg":"x","data":{"cancelResult":"FAILURE","newOrderResult":"SUCCESS","cancelResponse":{"code":-2011,"msg":"y"},"newOrderResponse":{"orderId":2}}}}"#,
            [
                VenueEvent::CancelRejected {
                    id: old,
                    code: -2011,
                },
                VenueEvent::Accepted {
                    id: new,
                    exch_ts_ms: 0,
                },
            ],
        ),
        (
            r#"{"id":"1","status":400,"error":{"code":-2022,"msg":"x","data":{"cancelResult":"FAILURE","newOrderResult":"NOT_ATTEMPTED","cancelResponse":{"code":-2011,"msg":"y"},"newOrderResponse":null}}}"#,
            [
                VenueEvent::CancelRejected {
                    id: old,
                    code: -2011,
                },
                VenueEvent::Rejected {
                    id: new,
                    code: -2022,
                },
            ],
        ),
        (
            r#"{"id":"1","status":400,"error":{"code":-1013,"msg":"Filter failure: PRICE_FILTER"}}"#,
            [
                VenueEvent::CancelRejected {
                    id: old,
                    code: -1013,
                },
                VenueEvent::Rejected {
                    id: new,
                    code: -1013,
                },
            ],
        ),
    ];
    for (frame, expected) in cases {
        let mut venue = offline_venue();
        track(&mut venue, 1, kind);
        assert_eq!(feed(&mut venue, frame, 5), expected.to_vec(), "{frame}");
        assert_eq!(venue.in_flight(), 0);
    }
}

#[test]
fn a_429_backs_off_until_retry_after() {
    let mut venue = offline_venue();
    // Wall clock = now + 1_000 s.
    venue.set_wall_offset_ns(1_000_000 * NS_PER_MS as i64);
    let now_ns = 5 * NS_PER_MS;
    track(&mut venue, 2, RequestKind::Place(ClientOrderId(8)));
    let frame = r#"{"id":"2","status":429,"error":{"code":-1015,"msg":"Too many new orders","data":{"serverTime":1,"retryAfter":1000500}}}"#;
    let events = feed(&mut venue, frame, now_ns);
    assert_eq!(
        events,
        vec![VenueEvent::Rejected {
            id: ClientOrderId(8),
            code: -1015
        }]
    );
    assert!(venue.is_backing_off(now_ns));
    assert!(venue.is_backing_off(now_ns + 494 * NS_PER_MS));
    assert!(!venue.is_backing_off(now_ns + 495 * NS_PER_MS));
    assert_eq!(venue.stats().rate_limited, 1);
    assert_eq!(venue.last_error_code(), -1015);
    assert!(
        venue.core.backoff_orders_only,
        "-1015 still lets cancels go"
    );
    // A 418 without retryAfter backs off for the default.
    track(&mut venue, 3, RequestKind::CancelAll);
    let banned = r#"{"id":"3","status":418,"error":{"code":-1003,"msg":"banned"}}"#;
    let later = 10_000 * NS_PER_MS;
    assert!(feed(&mut venue, banned, later).is_empty());
    assert!(venue.is_backing_off(later + (BACKOFF_MS_DEFAULT - 1) * NS_PER_MS));
    assert!(!venue.is_backing_off(later + BACKOFF_MS_DEFAULT * NS_PER_MS));
    assert!(!venue.core.backoff_orders_only, "a ban stops everything");
}

#[test]
fn rate_limit_counts_throttle_before_the_exchange_would() {
    let mut venue = offline_venue();
    track(&mut venue, 4, RequestKind::Place(ClientOrderId(1)));
    let frame = r#"{"id":"4","status":200,"result":{},"rateLimits":[{"rateLimitType":"ORDERS","interval":"SECOND","intervalNum":10,"limit":100,"count":95},{"rateLimitType":"ORDERS","interval":"DAY","intervalNum":1,"limit":200000,"count":95},{"rateLimitType":"REQUEST_WEIGHT","interval":"MINUTE","intervalNum":1,"limit":6000,"count":100}]}"#;
    let t = 7 * NS_PER_MS;
    feed(&mut venue, frame, t);
    // 95 + headroom 5 reaches 100: no new orders, cancels still go.
    assert!(venue.core.rate_exhausted(t, true));
    assert!(!venue.core.rate_exhausted(t, false));
    // The 10 s window has passed since the snapshot: assumed reset.
    assert!(!venue.core.rate_exhausted(t + 10_000 * NS_PER_MS, true));
    // A weight-only array (a cancel's answer) keeps the order counts.
    track(&mut venue, 5, RequestKind::Cancel(ClientOrderId(1)));
    let cancel = r#"{"id":"5","status":200,"result":{},"rateLimits":[{"rateLimitType":"REQUEST_WEIGHT","interval":"MINUTE","intervalNum":1,"limit":6000,"count":5996}]}"#;
    feed(&mut venue, cancel, t);
    assert_eq!(venue.rate_limits().orders_10s, (95, 100));
    assert!(venue.core.rate_exhausted(t, true), "weight near its limit");
    assert!(
        !venue.core.rate_exhausted(t, false),
        "cancels may use the headroom"
    );
    track(&mut venue, 6, RequestKind::Cancel(ClientOrderId(1)));
    let full = r#"{"id":"6","status":200,"result":{},"rateLimits":[{"rateLimitType":"REQUEST_WEIGHT","interval":"MINUTE","intervalNum":1,"limit":6000,"count":6000}]}"#;
    feed(&mut venue, full, t);
    assert!(
        venue.core.rate_exhausted(t, false),
        "not beyond the limit itself"
    );
}

#[test]
fn server_time_corrects_request_timestamps() {
    let mut venue = offline_venue();
    venue.set_wall_offset_ns(1_000_000 * NS_PER_MS as i64);
    track(&mut venue, 6, RequestKind::Time);
    // Sent at 0, answered at 10 ms: the server read 1_000_005 + 2_000 at 5 ms.
    let frame = r#"{"id":"6","status":200,"result":{"serverTime":1002005}}"#;
    assert!(feed(&mut venue, frame, 10 * NS_PER_MS).is_empty());
    assert_eq!(venue.server_skew_ms(), Some(2_000));
    assert_eq!(venue.core.wall_ms(10 * NS_PER_MS), 1_002_010);
    let mut buf = [0u8; 64];
    let n = venue.core.encoder.encode_time(6, &mut buf).unwrap();
    assert_eq!(&buf[..n], br#"{"id":"6","method":"time"}"#);
    assert_eq!(venue.core.encoder.encode_time(6, &mut buf[..10]), None);
}

#[test]
fn unmatched_and_late_responses_are_counted_not_applied() {
    let mut venue = offline_venue();
    let frame = r#"{"id":"9","status":200,"result":{}}"#;
    assert!(feed(&mut venue, frame, 1).is_empty());
    // The same slot, an older request id: not ours any more.
    track(&mut venue, 9 + IN_FLIGHT_MAX as u64, RequestKind::CancelAll);
    assert!(feed(&mut venue, frame, 1).is_empty());
    assert_eq!(venue.in_flight(), 1);
    assert_eq!(venue.stats().responses_unmatched, 2);
    assert_eq!(venue.core.oldest_in_flight_ns(), Some(0));
    let garbage = feed(&mut venue, "{\"id\":", 1);
    assert!(garbage.is_empty());
    assert_eq!(venue.stats().decode_errors, 1);
}

#[test]
fn cancel_all_and_open_orders_answers_name_our_orders_only() {
    let mut venue = offline_venue();
    track(&mut venue, 1, RequestKind::CancelAll);
    let frame = r#"{"id":"1","status":200,"result":[{"symbol":"BTCUSDT","origClientOrderId":"mmt1-5","clientOrderId":"x1"},{"symbol":"BTCUSDT","origClientOrderId":"web_1","clientOrderId":"x2"},{"symbol":"BTCUSDT","origClientOrderId":"mmt1-7","clientOrderId":"x3"}]}"#;
    assert_eq!(
        feed(&mut venue, frame, 1),
        vec![
            VenueEvent::Canceled {
                id: ClientOrderId(5)
            },
            VenueEvent::Canceled {
                id: ClientOrderId(7)
            }
        ]
    );
    track(&mut venue, 2, RequestKind::OpenOrders);
    let frame = r#"{"id":"2","status":200,"result":[{"clientOrderId":"mmt1-8"},{"clientOrderId":"mmzz-9"},{"clientOrderId":"mmt1-10"}]}"#;
    assert!(feed(&mut venue, frame, 1).is_empty());
    assert_eq!(venue.open_orders(), Some(2));
}
