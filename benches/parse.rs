//! Benchmark of the feed decoder on real messages from the recorded BTCUSDT session
//! (`../shared/data/binance-spot/btcusdt_20240809.gz`), embedded as literals: a bookTicker,
//! a depth diff of 30 levels (the session's median size) and a trade. The serde_json
//! reference decoder is timed on the same bookTicker for scale.
//!
//! Checks its own answers first: each message must decode to the exact expected event (and
//! levels), else the bench panics before timing anything. Never touches the network or the
//! clock itself (criterion times it).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};

use mm::feed::{reference, BookTicker, Decoder, Event, Level, Trade, TradeKind};
use mm::types::{Price, Qty, Side, Symbol, SymbolSpec};

const BOOK_TICKER: &[u8] = br#"{"stream":"btcusdt@bookTicker","data":{"u":50093421613,"s":"BTCUSDT","b":"61685.99000000","B":"1.25869000","a":"61686.00000000","A":"2.44816000"}}"#;

const TRADE: &[u8] = br#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}}"#;

/// 21 bid and 9 ask levels: the median depth diff of the session.
const DEPTH_30: &[u8] = br#"{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161608877,"s":"BTCUSDT","U":50093430227,"u":50093430263,"b":[["61726.40000000","0.00000000"],["61726.39000000","0.00000000"],["61726.01000000","0.00009000"],["61724.74000000","0.00009000"],["61724.73000000","0.32392000"],["61724.59000000","0.00000000"],["61724.01000000","0.00000000"],["61722.45000000","0.00101000"],["61722.43000000","0.00000000"],["61718.99000000","0.00000000"],["61717.82000000","0.24340000"],["61715.62000000","0.32397000"],["61712.69000000","0.00951000"],["61712.41000000","0.00000000"],["61706.13000000","0.04951000"],["61706.01000000","0.00000000"],["61704.01000000","0.00000000"],["61700.84000000","0.68938000"],["61700.31000000","0.00000000"],["61627.81000000","0.01000000"],["61617.62000000","0.00000000"]],"a":[["61727.82000000","5.36556000"],["61729.49000000","0.13806000"],["61729.99000000","0.00000000"],["61742.81000000","0.04983000"],["61743.02000000","0.00000000"],["61820.87000000","2.46208000"],["61820.90000000","0.00000000"],["62340.97000000","0.00009000"],["63955.20000000","0.03128000"]]}}"#;

const LOCAL_TS_NS: u64 = 1_723_161_600_001_692_584;

fn spec() -> SymbolSpec {
    // INVARIANT: constant, valid Binance filters; a failure here is a bug in the bench.
    let symbol = Symbol::new("BTCUSDT").unwrap_or_else(|e| panic!("symbol: {e}"));
    SymbolSpec::from_decimals(symbol, "0.01", "0.00001", "5").unwrap_or_else(|e| panic!("{e}"))
}

fn expected_book_ticker() -> Event {
    Event::BookTicker(BookTicker {
        update_id: 50_093_421_613,
        bid_price: Price(6_168_599),
        bid_qty: Qty(125_869),
        ask_price: Price(6_168_600),
        ask_qty: Qty(244_816),
        exch_ts_ms: 0,
        local_ts_ns: LOCAL_TS_NS,
    })
}

fn expected_trade() -> Event {
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
}

/// Panics unless the decoder returns exactly the expected events (and the diff's levels
/// agree with the reference decoder's).
fn check(decoder: &mut Decoder) {
    let event = decoder.decode(BOOK_TICKER, LOCAL_TS_NS);
    assert_eq!(event, Ok(expected_book_ticker()));
    assert_eq!(decoder.decode(TRADE, LOCAL_TS_NS), Ok(expected_trade()));

    let Ok(Event::Depth(diff)) = decoder.decode(DEPTH_30, LOCAL_TS_NS) else {
        panic!("depth diff not decoded");
    };
    assert_eq!((diff.bid_count, diff.ask_count), (21, 9));
    assert_eq!(diff.final_update_id, 50_093_430_263);
    let levels = decoder.diff_levels(&diff);
    assert_eq!(
        levels.bids[2],
        Level {
            price: Price(6_172_601),
            qty: Qty(9)
        }
    );
    let reference = reference::decode(decoder.spec(), DEPTH_30, LOCAL_TS_NS)
        .unwrap_or_else(|e| panic!("reference: {e}"));
    assert_eq!(reference.event, Event::Depth(diff));
    assert_eq!(reference.bids, levels.bids);
    assert_eq!(reference.asks, levels.asks);
    assert_eq!(decoder.stats().errors_total(), 0);
}

fn bench_parse(c: &mut Criterion) {
    let mut decoder = Decoder::new(spec());
    check(&mut decoder);

    c.bench_function("parse/book_ticker", |b| {
        b.iter(|| decoder.decode(black_box(BOOK_TICKER), black_box(LOCAL_TS_NS)))
    });
    c.bench_function("parse/depth_diff_30_levels", |b| {
        b.iter(|| decoder.decode(black_box(DEPTH_30), black_box(LOCAL_TS_NS)))
    });
    c.bench_function("parse/trade", |b| {
        b.iter(|| decoder.decode(black_box(TRADE), black_box(LOCAL_TS_NS)))
    });
    let spec = spec();
    c.bench_function("parse/book_ticker_serde_reference", |b| {
        b.iter(|| reference::decode(&spec, black_box(BOOK_TICKER), LOCAL_TS_NS))
    });

    // Still right after millions of iterations (the buffers are reused, not reset).
    check(&mut decoder);
    assert_eq!(decoder.stats().errors_total(), 0);
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);
