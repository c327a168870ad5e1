//! Unit tests of the feed decoder: real messages, a table of edge cases, and property
//! tests holding the hand scanner to the serde_json reference.

use proptest::prelude::*;

use super::reference::{self, Decoded};
use super::*;
use crate::limits::{
    DEPTH_DIFF_LEVELS_PER_SIDE_MAX, JSON_NESTING_MAX, SNAPSHOT_LEVELS_PER_SIDE_MAX,
};
use crate::types::Symbol;

// Real messages from ../shared/data/binance-spot/btcusdt_20240809.gz (PROTOCOL.md quotes
// them too), except AGG_TRADE: the recording has no aggTrade stream, so it is written in
// Binance's documented aggTrade format with values from the trade below.
const BOOK_TICKER: &str = r#"{"stream":"btcusdt@bookTicker","data":{"u":50093239212,"s":"BTCUSDT","b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}"#;
const TRADE: &str = r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}}"#;
const DEPTH: &str = r#"{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161255308,"s":"BTCUSDT","U":50093239203,"u":50093239207,"b":[["55653.87000000","0.00000000"]],"a":[["61838.04000000","0.32332000"],["61844.30000000","0.40163000"],["61862.50000000","0.05019000"],["61862.51000000","0.00000000"]]}}"#;
const AGG_TRADE: &str = r#"{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1723161255343,"s":"BTCUSDT","a":3100000001,"p":"61837.63000000","q":"0.02000000","f":3735683259,"l":3735683261,"T":1723161255342,"m":false,"M":true}}"#;
const SNAPSHOT: &str = r#"{"lastUpdateId":50093239218,"bids":[["61837.63000000","3.78826000"],["61837.62000000","0.61700000"]],"asks":[["61837.64000000","1.54698000"]]}"#;

const SAMPLES: [&str; 5] = [BOOK_TICKER, TRADE, DEPTH, AGG_TRADE, SNAPSHOT];
const LOCAL_TS_NS: u64 = 1_723_161_254_087_891_268;

fn btc() -> SymbolSpec {
    SymbolSpec::from_decimals(
        Symbol::new("BTCUSDT").unwrap(),
        "0.01000000",
        "0.00001000",
        "5.00000000",
    )
    .unwrap()
}

fn decoder() -> Decoder {
    Decoder::new(btc())
}

/// The hand decoder's result in the reference's shape (levels copied out).
fn hand(dec: &mut Decoder, frame: &[u8]) -> Result<Decoded, DecodeError> {
    let event = dec.decode(frame, LOCAL_TS_NS)?;
    Ok(with_levels(dec, event))
}

/// The general scanner alone (the canonical fast path skipped).
fn general(dec: &mut Decoder, frame: &[u8]) -> Result<Decoded, DecodeError> {
    let event = dec.decode_general(frame, LOCAL_TS_NS)?;
    Ok(with_levels(dec, event))
}

fn with_levels(dec: &Decoder, event: Event) -> Decoded {
    let levels = match &event {
        Event::Depth(d) => dec.diff_levels(d),
        Event::Snapshot(s) => dec.snapshot_levels(s),
        _ => BookLevels {
            bids: &[],
            asks: &[],
        },
    };
    Decoded {
        event,
        bids: levels.bids.to_vec(),
        asks: levels.asks.to_vec(),
    }
}

fn decode_str(text: &str) -> Result<Event, DecodeError> {
    decoder().decode(text.as_bytes(), LOCAL_TS_NS)
}

fn level(price: i64, qty: i64) -> Level {
    Level {
        price: Price(price),
        qty: Qty(qty),
    }
}

/// Unwraps `{"stream":..,"data":X}` into X's text (the raw `/ws/<stream>` form).
fn raw_form(wrapped: &str) -> &str {
    let start = wrapped.find(r#""data":"#).unwrap() + 7;
    &wrapped[start..wrapped.len() - 1]
}

#[test]
fn decodes_real_book_ticker() {
    let event = decode_str(BOOK_TICKER).unwrap();
    assert_eq!(
        event,
        Event::BookTicker(BookTicker {
            update_id: 50_093_239_212,
            bid_price: Price(6_183_763),
            bid_qty: Qty(378_826),
            ask_price: Price(6_183_764),
            ask_qty: Qty(154_698),
            exch_ts_ms: 0,
            local_ts_ns: LOCAL_TS_NS,
        })
    );
    assert_eq!(event.exch_ts_ms(), 0);
    assert_eq!(event.local_ts_ns(), LOCAL_TS_NS);
}

#[test]
fn decodes_real_trade_and_agg_trade() {
    assert_eq!(
        decode_str(TRADE).unwrap(),
        Event::Trade(Trade {
            kind: TradeKind::Trade,
            trade_id: 3_735_683_259,
            first_trade_id: 3_735_683_259,
            last_trade_id: 3_735_683_259,
            price: Price(6_183_763),
            qty: Qty(2_000),
            aggressor: Side::Sell,
            trade_ts_ms: 1_723_161_255_342,
            exch_ts_ms: 1_723_161_255_343,
            local_ts_ns: LOCAL_TS_NS,
        })
    );
    assert_eq!(
        decode_str(AGG_TRADE).unwrap(),
        Event::Trade(Trade {
            kind: TradeKind::AggTrade,
            trade_id: 3_100_000_001,
            first_trade_id: 3_735_683_259,
            last_trade_id: 3_735_683_261,
            price: Price(6_183_763),
            qty: Qty(2_000),
            aggressor: Side::Buy,
            trade_ts_ms: 1_723_161_255_342,
            exch_ts_ms: 1_723_161_255_343,
            local_ts_ns: LOCAL_TS_NS,
        })
    );
}

#[test]
fn decodes_real_depth_diff_with_levels() {
    let mut dec = decoder();
    let event = dec.decode(DEPTH.as_bytes(), 5).unwrap();
    let Event::Depth(diff) = event else {
        panic!("not a diff: {event:?}")
    };
    assert_eq!(diff.first_update_id, 50_093_239_203);
    assert_eq!(diff.final_update_id, 50_093_239_207);
    assert_eq!(diff.exch_ts_ms, 1_723_161_255_308);
    assert_eq!(diff.local_ts_ns, 5);
    let levels = dec.diff_levels(&diff);
    assert_eq!(levels.bids, &[level(5_565_387, 0)]);
    assert_eq!(
        levels.asks,
        &[
            level(6_183_804, 32_332),
            level(6_184_430, 40_163),
            level(6_186_250, 5_019),
            level(6_186_251, 0),
        ]
    );
}

#[test]
fn decodes_snapshot() {
    let mut dec = decoder();
    let Event::Snapshot(snap) = dec.decode(SNAPSHOT.as_bytes(), 9).unwrap() else {
        panic!("not a snapshot")
    };
    assert_eq!(snap.last_update_id, 50_093_239_218);
    assert_eq!((snap.bid_count, snap.ask_count), (2, 1));
    let levels = dec.snapshot_levels(&snap);
    assert_eq!(
        levels.bids,
        &[level(6_183_763, 378_826), level(6_183_762, 61_700)]
    );
    assert_eq!(levels.asks, &[level(6_183_764, 154_698)]);
    assert_eq!(Event::Snapshot(snap).exch_ts_ms(), 0);
}

#[test]
fn raw_form_decodes_like_combined_form() {
    for sample in [BOOK_TICKER, TRADE, DEPTH, AGG_TRADE] {
        let mut a = decoder();
        let mut b = decoder();
        assert_eq!(
            hand(&mut a, sample.as_bytes()),
            hand(&mut b, raw_form(sample).as_bytes()),
            "{sample}"
        );
    }
}

#[test]
fn canonical_fast_path_takes_binance_frames_and_agrees_with_general_path() {
    let mut dec = decoder();
    for (n, sample) in [BOOK_TICKER, TRADE, DEPTH, AGG_TRADE]
        .into_iter()
        .enumerate()
    {
        let fast = hand(&mut dec, sample.as_bytes());
        assert_eq!(dec.stats().canonical, n as u64 + 1, "{sample}");
        assert_eq!(fast, general(&mut decoder(), sample.as_bytes()), "{sample}");
    }
    // `@depth` without `@100ms` is canonical too; the raw form and the snapshot are not.
    let depth = DEPTH.replace("@depth@100ms", "@depth");
    assert!(dec.decode(depth.as_bytes(), 0).is_ok());
    assert_eq!(dec.stats().canonical, 5);
    dec.decode(raw_form(BOOK_TICKER).as_bytes(), 0).unwrap();
    dec.decode(SNAPSHOT.as_bytes(), 0).unwrap();
    assert_eq!(dec.stats().canonical, 5);
    assert_eq!(dec.stats().events_total(), 7);
    // A canonical frame with a refused value falls back and reports the general error.
    let bad = TRADE.replace("61837.63000000", "61837.63500000");
    assert_eq!(dec.decode(bad.as_bytes(), 0), Err(DecodeError::OffGrid));
    let bad = DEPTH.replace(r#""U":50093239203"#, r#""U":50093239208"#);
    assert_eq!(dec.decode(bad.as_bytes(), 0), Err(DecodeError::OutOfRange));
    assert_eq!(dec.stats().canonical, 5);
    // Another symbol never takes it.
    let eth = BOOK_TICKER.replace("btcusdt", "ethusdt");
    assert_eq!(dec.decode(eth.as_bytes(), 0), Err(DecodeError::WrongSymbol));
}

#[test]
fn samples_agree_with_reference() {
    let spec = btc();
    for sample in SAMPLES {
        let ours = hand(&mut decoder(), sample.as_bytes()).unwrap();
        let theirs = reference::decode(&spec, sample.as_bytes(), LOCAL_TS_NS).unwrap();
        assert_eq!(ours, theirs, "{sample}");
    }
}

#[test]
fn truncated_at_every_byte_is_truncated() {
    let mut dec = decoder();
    for sample in SAMPLES {
        for cut in 0..sample.len() {
            assert_eq!(
                dec.decode(&sample.as_bytes()[..cut], 0),
                Err(DecodeError::Truncated),
                "{:?}",
                &sample[..cut]
            );
        }
        assert!(dec.decode(sample.as_bytes(), 0).is_ok());
    }
    let cuts: usize = SAMPLES.iter().map(|s| s.len()).sum();
    assert_eq!(dec.stats().error_count(DecodeError::Truncated), cuts as u64);
    assert_eq!(dec.stats().errors_total(), cuts as u64);
    assert_eq!(dec.stats().events_total(), SAMPLES.len() as u64);
}

#[test]
fn fields_in_any_order_extra_fields_and_whitespace() {
    let expected = decode_str(BOOK_TICKER).unwrap();
    let cases = [
        // Reordered, data before stream.
        r#"{"data":{"A":"1.54698000","a":"61837.64000000","B":"3.78826000","b":"61837.63000000","s":"BTCUSDT","u":50093239212},"stream":"btcusdt@bookTicker"}"#,
        // Unknown fields of every JSON type, with escapes and nesting.
        r#"{"stream":"btcusdt@bookTicker","x":{"k":[1,2.5e-3,-0.0,true,false,null,"q\"uote\\ \u00e9 \ud83d\ude00 \n"]},"data":{"u":50093239212,"zz":[],"yy":{},"s":"BTCUSDT","b":"61837.63000000","note":"caf\u00e9 \"b\":\"1\"","B":"3.78826000","a":"61837.64000000","n":-12E+3,"A":"1.54698000"},"after":"ignored"}"#,
        // Whitespace wherever JSON allows it.
        " \r\n\t{ \"stream\" : \"btcusdt@bookTicker\" ,\n\"data\"\t:\r{ \"u\" : 50093239212 , \"s\" : \"BTCUSDT\" , \"b\" : \"61837.63000000\" , \"B\" : \"3.78826000\" , \"a\" : \"61837.64000000\" , \"A\" : \"1.54698000\" } } \n",
        // Raw form, shorter decimals, no stream name.
        r#"{"b":"61837.63","B":"3.78826","a":"61837.64","A":"1.54698","s":"BTCUSDT","u":50093239212}"#,
        // Non-ASCII UTF-8 in an unknown field.
        "{\"data\":{\"u\":50093239212,\"s\":\"BTCUSDT\",\"b\":\"61837.63\",\"B\":\"3.78826\",\"a\":\"61837.64\",\"A\":\"1.54698\",\"w\":\"日本\"}}",
    ];
    for case in cases {
        assert_eq!(decode_str(case), Ok(expected), "{case}");
        let reference = reference::decode(&btc(), case.as_bytes(), LOCAL_TS_NS).unwrap();
        assert_eq!(reference.event, expected, "{case}");
    }
}

/// `(frame, expected error)`: every refusal kind, each on a small variation of a real
/// message.
fn error_table() -> Vec<(String, DecodeError)> {
    use DecodeError::*;
    let bt = BOOK_TICKER;
    let tr = TRADE;
    let dp = DEPTH;
    let depth_with = |bids: usize, asks: usize| {
        let side = |n: usize| vec![r#"["61838.04","0.1"]"#; n].join(",");
        format!(
            r#"{{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"b":[{}],"a":[{}]}}"#,
            side(bids),
            side(asks)
        )
    };
    let deep = format!(
        r#"{{"x":{}1{},"u":1,"s":"BTCUSDT","b":"1","B":"1","a":"1","A":"1"}}"#,
        "[".repeat(JSON_NESTING_MAX + 1),
        "]".repeat(JSON_NESTING_MAX + 1)
    );
    let rep = |from: &str, to: &str, text: &str| {
        assert!(text.contains(from), "{from} not in {text}");
        text.replacen(from, to, 1)
    };
    vec![
        (String::new(), Truncated),
        ("   ".into(), Truncated),
        ("[]".into(), Malformed),
        ("{,}".into(), Malformed),
        (rep(r#""u":"#, r#""u";"#, bt), Malformed),
        (rep(r#"BTCUSDT""#, "BTCUSDT\u{1}\"", bt), Malformed),
        (rep("\"s\"", "\"x\":\"\\q\",\"s\"", bt), Malformed),
        (rep("\"s\"", "\"x\":\"\\udc00\",\"s\"", bt), Malformed),
        (rep("\"s\"", "\"x\":\"\\ud800x\",\"s\"", bt), Malformed),
        (rep("\"s\"", "\"x\":01,\"s\"", bt), Malformed),
        (rep("\"s\"", "\"x\":1.,\"s\"", bt), Malformed),
        (rep("\"s\"", "\"x\":[1,],\"s\"", bt), Malformed),
        (rep("\"s\"", "\"x\":{\"a\":1,},\"s\"", bt), Malformed),
        (rep("\"s\"", "\"x\":[1}],\"s\"", bt), Malformed),
        (rep("\"s\"", "\"x\":nul,\"s\"", bt), Malformed),
        (format!("{bt}x"), TrailingBytes),
        (format!("{bt}{{}}"), TrailingBytes),
        (
            rep(r#""E":1723161255343"#, r#""E":"1723161255343""#, tr),
            WrongType,
        ),
        (rep(r#""m":true"#, r#""m":1"#, tr), WrongType),
        (rep(r#""b":"61837.63000000""#, r#""b":5"#, bt), WrongType),
        (
            rep(r#""u":50093239212"#, r#""u":"50093239212""#, bt),
            WrongType,
        ),
        (rep(r#""s":"BTCUSDT""#, r#""s":null"#, bt), WrongType),
        (
            rep(r#""b":[["55653.87000000","0.00000000"]]"#, r#""b":"1""#, dp),
            WrongType,
        ),
        (rep(r#""a":3100000001"#, r#""a":"1""#, AGG_TRADE), WrongType),
        (r#"{"stream":"btcusdt@trade","data":[1]}"#.into(), WrongType),
        (rep(r#""bids":"#, r#""bids":{},"x":"#, SNAPSHOT), WrongType),
        (rep(r#""t":3735683259,"#, "", tr), MissingField),
        (rep(r#","A":"1.54698000""#, "", bt), MissingField),
        (rep(r#""a":[["#, r#""x":[["#, dp), MissingField),
        (
            rep(r#""u":50093239212"#, r#""u":1,"u":2"#, bt),
            DuplicateField,
        ),
        (rep(r#""data""#, r#""data":{},"data""#, bt), DuplicateField),
        (rep(r#""u":50093239212"#, r#""u":-1"#, bt), BadNumber),
        (rep(r#""u":50093239212"#, r#""u":5e10"#, bt), BadNumber),
        (
            rep(r#""u":50093239212"#, r#""u":50093239212.0"#, bt),
            BadNumber,
        ),
        (
            rep(r#""u":50093239212"#, r#""u":050093239212"#, bt),
            BadNumber,
        ),
        (rep("61837.63000000", "-61837.63", bt), BadNumber),
        (rep("61837.63000000", "6.183763e4", bt), BadNumber),
        (rep("61837.63000000", "61837.630000001", bt), BadNumber),
        (rep("61837.63000000", "", bt), BadNumber),
        (
            rep(r#""u":50093239212"#, r#""u":18446744073709551616"#, bt),
            OutOfRange,
        ),
        (
            rep("61837.63000000", "922337203685477580.8", bt),
            OutOfRange,
        ),
        (
            rep(r#""U":50093239203"#, r#""U":50093239208"#, dp),
            OutOfRange,
        ),
        (
            rep(r#""f":3735683259"#, r#""f":3735683262"#, AGG_TRADE),
            OutOfRange,
        ),
        (rep("61837.63000000", "61837.635", bt), OffGrid),
        (rep("61837.63000000", "61837.631", tr), OffGrid),
        (rep("61862.50000000", "61862.505", dp), OffGrid),
        (rep(r#""s":"BTCUSDT""#, r#""s":"BTC\u0055SDT""#, bt), Escape),
        (rep(r#""u":"#, r#""\u0075":"#, bt), Escape),
        (r#"{"result":null,"id":1}"#.into(), UnknownKind),
        (r#"{}"#.into(), UnknownKind),
        (
            r#"{"stream":"btcusdt@kline_1m","data":{"e":"kline","E":1,"s":"BTCUSDT","k":{}}}"#
                .into(),
            UnknownKind,
        ),
        (rep("BTCUSDT", "ETHUSDT", bt), WrongSymbol),
        (rep("btcusdt@", "ethusdt@", bt), WrongSymbol),
        (rep("btcusdt@", "btcusdtx@", bt), WrongSymbol),
        (
            depth_with(DEPTH_DIFF_LEVELS_PER_SIDE_MAX + 1, 0),
            TooManyLevels,
        ),
        (
            depth_with(1, DEPTH_DIFF_LEVELS_PER_SIDE_MAX + 1),
            TooManyLevels,
        ),
        (
            format!(
                r#"{{"lastUpdateId":1,"asks":[],"bids":[{}]}}"#,
                vec![r#"["1","1"]"#; SNAPSHOT_LEVELS_PER_SIDE_MAX + 1].join(",")
            ),
            TooManyLevels,
        ),
        (deep, TooDeep),
    ]
}

#[test]
fn error_table_each_kind_refused_and_counted() {
    let spec = btc();
    let mut dec = decoder();
    let table = error_table();
    let mut expected = [0u64; DecodeError::COUNT];
    for (frame, want) in &table {
        assert_eq!(dec.decode(frame.as_bytes(), 0), Err(*want), "{frame}");
        expected[want.index()] += 1;
        // Never accepted by one and refused with a different meaning by the other: the
        // reference refuses too, except where the hand scanner is stricter on purpose.
        let lenient = matches!(
            want,
            DecodeError::Escape
                | DecodeError::DuplicateField
                | DecodeError::TooManyLevels
                | DecodeError::TooDeep
        );
        if !lenient {
            assert!(
                reference::decode(&spec, frame.as_bytes(), 0).is_err(),
                "{frame}"
            );
        }
    }
    assert_eq!(dec.stats().errors, expected);
    for kind in DecodeError::ALL {
        assert!(expected[kind.index()] > 0, "no table row for {kind}");
        assert_eq!(DecodeError::ALL[kind.index()], kind);
    }
    // The decoder is still fine after every refusal.
    assert!(dec.decode(DEPTH.as_bytes(), 0).is_ok());
}

#[test]
fn level_capacity_is_exact() {
    let mut dec = decoder();
    let levels = vec![r#"["61838.04","0.1"]"#; DEPTH_DIFF_LEVELS_PER_SIDE_MAX].join(",");
    let frame = format!(
        r#"{{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"b":[{levels}],"a":[{levels}]}}"#
    );
    let Ok(Event::Depth(diff)) = dec.decode(frame.as_bytes(), 0) else {
        panic!("full diff refused")
    };
    assert_eq!(diff.bid_count as usize, DEPTH_DIFF_LEVELS_PER_SIDE_MAX);
    assert_eq!(diff.ask_count as usize, DEPTH_DIFF_LEVELS_PER_SIDE_MAX);
    let got = dec.diff_levels(&diff);
    assert!(got
        .bids
        .iter()
        .chain(got.asks)
        .all(|l| *l == level(6_183_804, 10_000)));

    let levels = vec![r#"["1","1"]"#; SNAPSHOT_LEVELS_PER_SIDE_MAX].join(",");
    let frame = format!(r#"{{"lastUpdateId":1,"bids":[{levels}],"asks":[{levels}]}}"#);
    let Ok(Event::Snapshot(snap)) = dec.decode(frame.as_bytes(), 0) else {
        panic!("full snapshot refused")
    };
    assert_eq!(snap.bid_count as usize, SNAPSHOT_LEVELS_PER_SIDE_MAX);
    assert_eq!(
        dec.snapshot_levels(&snap).asks.len(),
        SNAPSHOT_LEVELS_PER_SIDE_MAX
    );
}

#[test]
fn quantities_off_the_lot_grid_are_rounded_up_and_counted() {
    // A real level from btcusdt_20240808.gz line 1886: an order from before BTCUSDT's step
    // size became 0.00001 still rests at 200000.
    let frame = r#"{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":1,"u":2,"b":[],"a":[["200000.00000000","25.42618900"],["200000.01","0.000001"],["200000.02","0.00000000"]]}"#;
    let mut dec = decoder();
    let Ok(Event::Depth(diff)) = dec.decode(frame.as_bytes(), 0) else {
        panic!("refused")
    };
    assert_eq!(
        dec.diff_levels(&diff).asks,
        &[
            level(20_000_000, 2_542_619),
            level(20_000_001, 1),
            level(20_000_002, 0)
        ]
    );
    assert_eq!(dec.stats().qty_rounded_up, 2);
    let reference = reference::decode(&btc(), frame.as_bytes(), 0).unwrap();
    assert_eq!(reference.asks, dec.diff_levels(&diff).asks);
    // Trades and bookTickers too; a refused frame does not count its roundings.
    let trade = TRADE.replace("0.02000000", "0.02000001");
    let Ok(Event::Trade(t)) = dec.decode(trade.as_bytes(), 0) else {
        panic!("refused")
    };
    assert_eq!(t.qty, Qty(2_001));
    let bad = BOOK_TICKER
        .replace("3.78826000", "3.788261")
        .replace("BTCUSDT", "ETHUSDT");
    assert_eq!(dec.decode(bad.as_bytes(), 0), Err(DecodeError::WrongSymbol));
    assert_eq!(dec.stats().qty_rounded_up, 3);
    // More than 8 decimals is still refused.
    let bad = BOOK_TICKER.replace("3.78826000", "3.788260001");
    assert_eq!(dec.decode(bad.as_bytes(), 0), Err(DecodeError::BadNumber));
}

#[test]
fn asks_before_bids_and_empty_sides() {
    let mut dec = decoder();
    let frame = r#"{"a":[["2","3"]],"b":[],"u":9,"U":9,"s":"BTCUSDT","E":4,"e":"depthUpdate"}"#;
    let Ok(Event::Depth(diff)) = dec.decode(frame.as_bytes(), 0) else {
        panic!()
    };
    let levels = dec.diff_levels(&diff);
    assert!(levels.bids.is_empty());
    assert_eq!(levels.asks, &[level(200, 300_000)]);
}

#[test]
fn futures_style_book_ticker_keeps_event_time() {
    let frame = r#"{"e":"bookTicker","u":400900217,"s":"BTCUSDT","b":"25.35","B":"31.21","a":"25.36","A":"40.66","T":1568014460891,"E":1568014460893}"#;
    let Ok(Event::BookTicker(bt)) = decode_str(frame) else {
        panic!()
    };
    assert_eq!(bt.exch_ts_ms, 1_568_014_460_893);
    assert_eq!(bt.update_id, 400_900_217);
}

#[test]
fn counts_every_event_kind() {
    let mut dec = decoder();
    for sample in SAMPLES {
        dec.decode(sample.as_bytes(), 0).unwrap();
    }
    dec.decode(TRADE.as_bytes(), 0).unwrap();
    let stats = dec.stats();
    assert_eq!(
        (
            stats.book_tickers,
            stats.trades,
            stats.depth_diffs,
            stats.agg_trades,
            stats.snapshots
        ),
        (1, 2, 1, 1, 1)
    );
    assert_eq!(stats.errors_total(), 0);
}

// ---------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------

/// A byte edit applied to a sample.
#[derive(Clone, Debug)]
enum Edit {
    Replace(usize, u8),
    Insert(usize, u8),
    Delete(usize),
}

fn interesting_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        any::<u8>(),
        proptest::sample::select(b"{}[],:\"\\0123456789.-+eEtfnul \n".to_vec()),
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), interesting_byte()).prop_map(|(i, b)| Edit::Replace(i, b)),
        (any::<usize>(), interesting_byte()).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<usize>().prop_map(Edit::Delete),
    ]
}

fn apply_edits(sample: &str, edits: &[Edit]) -> Vec<u8> {
    let mut bytes = sample.as_bytes().to_vec();
    for e in edits {
        match *e {
            Edit::Replace(i, b) if !bytes.is_empty() => {
                let n = bytes.len();
                bytes[i % n] = b;
            }
            Edit::Insert(i, b) => bytes.insert(i % (bytes.len() + 1), b),
            Edit::Delete(i) if !bytes.is_empty() => {
                let n = bytes.len();
                bytes.remove(i % n);
            }
            _ => {}
        }
    }
    bytes
}

/// Inserts whitespace around structural characters outside strings.
fn add_whitespace(sample: &str, choices: &[u8]) -> String {
    let mut out = String::new();
    let mut in_string = false;
    let mut escaped = false;
    let mut k = 0;
    for c in sample.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        let ws = [" ", "\n", "\t\r", ""][usize::from(choices[k % choices.len()] % 4)];
        k += 1;
        if "{}[],:".contains(c) {
            out.push_str(ws);
            out.push(c);
            out.push_str(ws);
        } else {
            out.push(c);
        }
        if c == '"' {
            in_string = true;
        }
    }
    out
}

/// The data object's members of a sample, as `(key, raw value)` text pairs.
fn members(sample: &str) -> Vec<String> {
    let body = raw_form(sample);
    let inner = &body[1..body.len() - 1];
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut in_string = false;
    let mut start = 0;
    for (i, c) in inner.char_indices() {
        match c {
            '"' => in_string = !in_string,
            '[' | '{' if !in_string => depth += 1,
            ']' | '}' if !in_string => depth -= 1,
            ',' if !in_string && depth == 0 => {
                out.push(inner[start..i].to_string());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(inner[start..].to_string());
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut dec = decoder();
        let _ = dec.decode(&bytes, 0);
        prop_assert_eq!(dec.stats().errors_total() + dec.stats().events_total(), 1);
    }

    #[test]
    fn json_shaped_noise_never_panics(
        bytes in proptest::collection::vec(interesting_byte(), 0..200)
    ) {
        let mut dec = decoder();
        let _ = dec.decode(&bytes, 0);
    }

    /// Mutated real messages: never a panic, and whatever the hand scanner accepts the
    /// reference accepts with the same event and levels.
    #[test]
    fn mutations_never_panic_and_agree_with_reference(
        which in 0..SAMPLES.len(),
        edits in proptest::collection::vec(edit(), 1..5),
    ) {
        let frame = apply_edits(SAMPLES[which], &edits);
        let mut dec = decoder();
        let ours = hand(&mut dec, &frame);
        // The canonical fast path never changes an outcome, refusals included.
        prop_assert_eq!(&ours, &general(&mut decoder(), &frame));
        if let Ok(ours) = ours {
            let theirs = reference::decode(&btc(), &frame, LOCAL_TS_NS);
            prop_assert_eq!(Ok(ours), theirs, "{}", String::from_utf8_lossy(&frame));
        }
    }

    #[test]
    fn reordered_members_decode_the_same(
        which in 0..4usize,
        order in Just((0..12usize).collect::<Vec<_>>()).prop_shuffle(),
        wrapped in any::<bool>(),
    ) {
        let sample = [BOOK_TICKER, TRADE, DEPTH, AGG_TRADE][which];
        let parts = members(sample);
        let shuffled: Vec<&str> = order
            .iter()
            .filter(|&&i| i < parts.len())
            .map(|&i| parts[i].as_str())
            .collect();
        let body = format!("{{{}}}", shuffled.join(","));
        let frame = if wrapped {
            format!(r#"{{"data":{body},"stream":"btcusdt@x"}}"#)
        } else {
            body
        };
        let want = hand(&mut decoder(), sample.as_bytes()).unwrap();
        prop_assert_eq!(hand(&mut decoder(), frame.as_bytes()), Ok(want), "{}", frame);
    }

    #[test]
    fn whitespace_anywhere_decodes_the_same(
        which in 0..SAMPLES.len(),
        choices in proptest::collection::vec(any::<u8>(), 1..64),
    ) {
        let sample = SAMPLES[which];
        let spaced = add_whitespace(sample, &choices);
        let want = hand(&mut decoder(), sample.as_bytes()).unwrap();
        prop_assert_eq!(hand(&mut decoder(), spaced.as_bytes()), Ok(want), "{}", spaced);
    }

    #[test]
    fn random_on_grid_values_round_trip(
        u in any::<u64>(),
        bid_ticks in 0i64..10_000_000_000,
        ask_ticks in 0i64..10_000_000_000,
        bid_lots in 0i64..1_000_000_000_000,
        ask_lots in 0i64..1_000_000_000_000,
    ) {
        let spec = btc();
        let text = |atoms: i64| {
            let mut buf = [0u8; crate::types::DECIMAL_TEXT_MAX];
            let len = crate::types::write_atoms(atoms, 8, &mut buf);
            String::from_utf8(buf[..len].to_vec()).unwrap()
        };
        let frame = format!(
            r#"{{"u":{u},"s":"BTCUSDT","b":"{}","B":"{}","a":"{}","A":"{}"}}"#,
            text(bid_ticks * spec.tick_atoms),
            text(bid_lots * spec.step_atoms),
            text(ask_ticks * spec.tick_atoms),
            text(ask_lots * spec.step_atoms),
        );
        let ours = hand(&mut decoder(), frame.as_bytes()).unwrap();
        prop_assert_eq!(
            ours.event,
            Event::BookTicker(BookTicker {
                update_id: u,
                bid_price: Price(bid_ticks),
                bid_qty: Qty(bid_lots),
                ask_price: Price(ask_ticks),
                ask_qty: Qty(ask_lots),
                exch_ts_ms: 0,
                local_ts_ns: LOCAL_TS_NS,
            })
        );
        prop_assert_eq!(Ok(ours), reference::decode(&spec, frame.as_bytes(), LOCAL_TS_NS));
    }
}

#[test]
fn old_trade_stream_with_order_ids_decodes() {
    // Real, from btcusdt_20230405.dat.gz: before late 2023 the trade stream carried the
    // buyer's and seller's order ids in `b` and `a`.
    let frame = br#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1680652800000,"s":"BTCUSDT","t":3071245454,"p":"28165.47000000","q":"0.00056000","b":20720542158,"a":20720542592,"T":1680652799999,"m":true,"M":true}}"#;
    let mut dec = decoder();
    match dec.decode(frame, 7).unwrap() {
        Event::Trade(t) => {
            assert_eq!(t.trade_id, 3_071_245_454);
            assert_eq!(t.price, Price(2_816_547));
            assert_eq!(t.qty, Qty(56));
            assert_eq!(t.aggressor, Side::Sell);
        }
        other => panic!("{other:?}"),
    }
    // A bookTicker with a numeric `b` is still refused.
    let bad = br#"{"u":1,"s":"BTCUSDT","b":5,"B":"1.0","a":"1.00","A":"1.0"}"#;
    assert!(dec.decode(bad, 8).is_err());
}
