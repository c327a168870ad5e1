//! Benchmark of the L2 book: applying a real depth diff, single-level updates at the touch
//! and deep in the book, reading the best bid/ask, and replaying the whole recorded session
//! (every diff after the snapshot, if `../shared/data` is present). A `BTreeMap` book runs
//! the same diff workloads as the baseline the book has to beat.
//!
//! The diff is the session's median one (30 levels, from
//! `../shared/data/binance-spot/btcusdt_20240809.gz`, embedded as a literal); the book is a
//! deterministic 900-level-per-side BTCUSDT book around it (capacity 1000, so nothing is
//! evicted). Each timed step applies a change *and its exact inverse*, so the book is the
//! same before every iteration, and the bench checks that it is — before and after timing.
//! Never touches the network or the clock itself (criterion times it).

use std::collections::BTreeMap;
use std::fs::File;
use std::hint::black_box;
use std::io::{BufRead, BufReader};
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use flate2::read::GzDecoder;

use mm::book::Book;
use mm::feed::{Decoder, Event, Level};
use mm::limits::BOOK_LEVELS_PER_SIDE_DEFAULT;
use mm::types::{Price, Qty, Side, Symbol, SymbolSpec};

/// 21 bid and 9 ask levels: the median depth diff of the session.
const DEPTH_30: &[u8] = br#"{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161608877,"s":"BTCUSDT","U":50093430227,"u":50093430263,"b":[["61726.40000000","0.00000000"],["61726.39000000","0.00000000"],["61726.01000000","0.00009000"],["61724.74000000","0.00009000"],["61724.73000000","0.32392000"],["61724.59000000","0.00000000"],["61724.01000000","0.00000000"],["61722.45000000","0.00101000"],["61722.43000000","0.00000000"],["61718.99000000","0.00000000"],["61717.82000000","0.24340000"],["61715.62000000","0.32397000"],["61712.69000000","0.00951000"],["61712.41000000","0.00000000"],["61706.13000000","0.04951000"],["61706.01000000","0.00000000"],["61704.01000000","0.00000000"],["61700.84000000","0.68938000"],["61700.31000000","0.00000000"],["61627.81000000","0.01000000"],["61617.62000000","0.00000000"]],"a":[["61727.82000000","5.36556000"],["61729.49000000","0.13806000"],["61729.99000000","0.00000000"],["61742.81000000","0.04983000"],["61743.02000000","0.00000000"],["61820.87000000","2.46208000"],["61820.90000000","0.00000000"],["62340.97000000","0.00009000"],["63955.20000000","0.03128000"]]}}"#;

const BEST_BID: Price = Price(6_172_640);
const BEST_ASK: Price = Price(6_172_782);
const LEVELS: i64 = 900;
/// Ticks between consecutive synthetic levels (a 900-level side spans about $36).
const SPACING_TICKS: i64 = 4;

fn lv(price: i64, qty: i64) -> Level {
    Level {
        price: Price(price),
        qty: Qty(qty),
    }
}

/// The snapshot the book starts from: every `SPACING_TICKS` from the touch outward, with
/// the diff's own prices present where the grid hits them.
fn snapshot() -> (Vec<Level>, Vec<Level>) {
    let bids = (0..LEVELS)
        .map(|k| lv(BEST_BID.0 - SPACING_TICKS * k, 1_000 + k))
        .collect();
    let asks = (0..LEVELS)
        .map(|k| lv(BEST_ASK.0 + SPACING_TICKS * k, 2_000 + k))
        .collect();
    (bids, asks)
}

fn spec() -> SymbolSpec {
    // INVARIANT: constant, valid Binance filters; a failure here is a bug in the bench.
    let symbol = Symbol::new("BTCUSDT").unwrap_or_else(|e| panic!("symbol: {e}"));
    SymbolSpec::from_decimals(symbol, "0.01", "0.00001", "5").unwrap_or_else(|e| panic!("{e}"))
}

fn diff() -> (Vec<Level>, Vec<Level>) {
    let mut decoder = Decoder::new(spec());
    let Ok(Event::Depth(diff)) = decoder.decode(DEPTH_30, 0) else {
        panic!("depth diff not decoded");
    };
    let levels = decoder.diff_levels(&diff);
    (levels.bids.to_vec(), levels.asks.to_vec())
}

/// The levels that undo `levels` on `side` of `book`: old quantities, in reverse order.
fn inverse(book: &Book, side: Side, levels: &[Level]) -> Vec<Level> {
    levels
        .iter()
        .rev()
        .map(|l| Level {
            price: l.price,
            qty: book.qty_at(side, l.price),
        })
        .collect()
}

fn fingerprint(book: &Book) -> (Option<Level>, Option<Level>, usize, usize, Option<Level>) {
    (
        book.best_bid(),
        book.best_ask(),
        book.depth(Side::Buy),
        book.depth(Side::Sell),
        book.level(Side::Buy, 450),
    )
}

/// The baseline: one `BTreeMap` per side.
#[derive(Default)]
struct TreeBook {
    bids: BTreeMap<i64, i64>,
    asks: BTreeMap<i64, i64>,
}

impl TreeBook {
    fn apply(map: &mut BTreeMap<i64, i64>, levels: &[Level]) {
        for l in levels {
            if l.qty.0 == 0 {
                map.remove(&l.price.0);
            } else {
                map.insert(l.price.0, l.qty.0);
            }
        }
    }

    fn best(&self) -> (Option<Level>, Option<Level>) {
        let copy = |(&k, &v): (&i64, &i64)| lv(k, v);
        (
            self.bids.last_key_value().map(copy),
            self.asks.first_key_value().map(copy),
        )
    }
}

fn bench_book(c: &mut Criterion) {
    let (snap_bids, snap_asks) = snapshot();
    let (bids, asks) = diff();
    let mut book = Book::new(BOOK_LEVELS_PER_SIDE_DEFAULT);
    book.load_snapshot(&snap_bids, &snap_asks);
    let before = fingerprint(&book);
    let undo_bids = inverse(&book, Side::Buy, &bids);
    let undo_asks = inverse(&book, Side::Sell, &asks);

    // The diff does what it should, and the inverse restores the book exactly.
    let report = book.apply_diff(&bids, &asks);
    assert!(!report.crossed && report.levels_dropped == 0);
    assert_eq!(book.best_ask(), Some(lv(6_172_782, 536_556)));
    assert_eq!(book.qty_at(Side::Buy, Price(6_172_601)), Qty(9));
    let after_diff = fingerprint(&book);
    book.apply_diff(&undo_bids, &undo_asks);
    assert_eq!(fingerprint(&book), before);

    c.bench_function("book/apply_diff_30_levels_and_undo", |b| {
        b.iter(|| {
            book.apply_diff(black_box(&bids), black_box(&asks));
            book.apply_diff(black_box(&undo_bids), black_box(&undo_asks))
        })
    });
    assert_eq!(fingerprint(&book), before);

    let mut tree = TreeBook::default();
    TreeBook::apply(&mut tree.bids, &snap_bids);
    TreeBook::apply(&mut tree.asks, &snap_asks);
    c.bench_function(
        "book/apply_diff_30_levels_and_undo_btreemap_baseline",
        |b| {
            b.iter(|| {
                TreeBook::apply(&mut tree.bids, black_box(&bids));
                TreeBook::apply(&mut tree.asks, black_box(&asks));
                TreeBook::apply(&mut tree.bids, black_box(&undo_bids));
                TreeBook::apply(&mut tree.asks, black_box(&undo_asks));
                tree.best()
            })
        },
    );
    assert_eq!(tree.bids.len() as i64, LEVELS);
    assert_eq!(tree.best().0, Some(lv(BEST_BID.0, 1_000)));
    assert_ne!(after_diff, before);

    let touch = book.best_bid().unwrap_or_else(|| panic!("empty book"));
    c.bench_function("book/update_touch_qty", |b| {
        b.iter(|| {
            book.apply(Side::Buy, black_box(lv(touch.price.0, 7)));
            book.apply(Side::Buy, black_box(touch))
        })
    });
    assert_eq!(fingerprint(&book), before);

    // One tick behind the best bid: between two existing levels.
    let near = lv(BEST_BID.0 - 1, 5);
    c.bench_function("book/insert_remove_near_touch", |b| {
        b.iter(|| {
            book.apply(Side::Buy, black_box(near));
            book.apply(Side::Buy, black_box(lv(near.price.0, 0)))
        })
    });
    assert_eq!(fingerprint(&book), before);

    // Half-way down the bid side (level 450 of 900).
    let deep = lv(BEST_BID.0 - SPACING_TICKS * 450 - 1, 5);
    c.bench_function("book/insert_remove_deep", |b| {
        b.iter(|| {
            book.apply(Side::Buy, black_box(deep));
            book.apply(Side::Buy, black_box(lv(deep.price.0, 0)))
        })
    });
    assert_eq!(fingerprint(&book), before);

    c.bench_function("book/best_bid_ask", |b| {
        b.iter(|| (black_box(&book).best_bid(), black_box(&book).best_ask()))
    });
    assert_eq!(book.best_bid(), Some(lv(BEST_BID.0, 1_000)));
    assert_eq!(book.best_ask(), Some(lv(BEST_ASK.0, 2_000)));
    assert_eq!(fingerprint(&book), before);
}

type Sides = (Vec<Level>, Vec<Level>);

/// The recorded session: its snapshot and every diff applied after it (in order; some
/// arrive before the snapshot and are kept, as the sync procedure buffers them).
fn session() -> Option<(Sides, Vec<Sides>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/binance-spot");
    let mut decoder = Decoder::new(spec());
    let mut snapshot: Option<(Sides, u64)> = None;
    let mut diffs = Vec::new();
    for name in ["btcusdt_20240808.gz", "btcusdt_20240809.gz"] {
        let file = File::open(root.join(name)).ok()?;
        for line in BufReader::new(GzDecoder::new(file)).lines() {
            let line = line.unwrap_or_else(|e| panic!("{name}: {e}"));
            let (_, frame) = line.split_once(' ')?;
            match decoder.decode(frame.as_bytes(), 0) {
                Ok(Event::Snapshot(s)) => {
                    let levels = decoder.snapshot_levels(&s);
                    let sides = (levels.bids.to_vec(), levels.asks.to_vec());
                    snapshot = Some((sides, s.last_update_id));
                }
                Ok(Event::Depth(d)) => {
                    let levels = decoder.diff_levels(&d);
                    let sides = (levels.bids.to_vec(), levels.asks.to_vec());
                    diffs.push((d.final_update_id, sides));
                }
                Ok(_) => {}
                Err(e) => panic!("{name}: {e}"),
            }
        }
    }
    let (sides, last_update_id) = snapshot?;
    let applied = diffs
        .into_iter()
        .filter(|(final_update_id, _)| *final_update_id > last_update_id)
        .map(|(_, sides)| sides)
        .collect();
    Some((sides, applied))
}

fn bench_session(c: &mut Criterion) {
    let Some(((snap_bids, snap_asks), diffs)) = session() else {
        println!("SKIPPED book/replay_session: ../shared/data not found");
        return;
    };
    let levels: usize = diffs.iter().map(|(b, a)| b.len() + a.len()).sum();
    println!(
        "book/replay_session: {} diffs, {levels} levels per iteration",
        diffs.len()
    );
    let mut group = c.benchmark_group("book");
    group.sample_size(10);
    let mut book = Book::new(BOOK_LEVELS_PER_SIDE_DEFAULT);
    group.bench_function("replay_session", |b| {
        b.iter(|| {
            book.load_snapshot(&snap_bids, &snap_asks);
            for (bids, asks) in &diffs {
                book.apply_diff(bids, asks);
            }
            book.best_bid()
        })
    });
    // The rebuilt book is sane at the end and never crossed on the way.
    let (bid, ask) = (book.best_bid(), book.best_ask());
    assert!(matches!((bid, ask), (Some(b), Some(a)) if b.price < a.price));
    assert_eq!(book.stats().crossed, 0);
    group.bench_function("replay_session_btreemap_baseline", |b| {
        b.iter(|| {
            let mut tree = TreeBook::default();
            TreeBook::apply(&mut tree.bids, &snap_bids);
            TreeBook::apply(&mut tree.asks, &snap_asks);
            for (bids, asks) in &diffs {
                TreeBook::apply(&mut tree.bids, bids);
                TreeBook::apply(&mut tree.asks, asks);
            }
            let best = tree.best();
            assert_eq!(best, (bid, ask));
            best
        })
    });
    group.finish();
}

criterion_group!(benches, bench_book, bench_session);
criterion_main!(benches);
