//! Benchmark of tick-to-quote: from the bytes of a WebSocket text frame to a new quote, on
//! one thread, with no I/O — `Decoder::decode` + `Engine::on_event`, exactly as the hot
//! loop's `FeedHandler` calls them — on real frames of the recorded BTCUSDT session
//! (`../shared/data/binance-spot/btcusdt_20240808.gz`, read at start).
//!
//! The engine is warm and realistic: built with the default parameters (1000 levels, 1 s
//! OFI window, estimated σ sampled every second), synced from the recorded REST snapshot,
//! and fed the session's first ~1,000+ messages at their recorded times.
//!
//! - `tick_to_quote/book_ticker`: two real bookTicker frames of the session with different
//!   touches, alternated, so every iteration runs decode → touch → OFI update → σ update →
//!   quote. The clock advances 7 ms per iteration (≈ the session's rate of touch changes,
//!   so the OFI window holds ~140 changes and σ takes a sample every second, as live).
//!   Asserted: `Step::quoted` on every iteration; a two-sided, uncrossed quote at the end.
//! - `tick_to_quote/depth_diff_<n>_levels`: a real depth diff D of the session and its
//!   exact inverse (the book's quantities at D's prices before D), alternated, with `U`/`u`
//!   rewritten in place each iteration so the update-id sequence stays unbroken: decode →
//!   sync check → book update. A diff does not quote (quotes follow the touch, which comes
//!   from bookTicker). Asserted: no snapshot ever needed; at the end the book is in sync, no
//!   gap was seen, and D's prices hold the quantities of whichever frame went last.
//!   `tick_to_quote/depth_ids_rewrite_only` times the id rewrite alone, to subtract.
//! - `tick_to_quote/ofi_update`: `OfiEstimator::on_touch` + `normalised` alone, on the same
//!   two touches and clock. Asserted: in [−1, 1] every time; the window holds exactly the
//!   changes of the last second at the end.
//!
//! Needs ../shared/data: when it is absent the bench prints "SKIPPED" and times nothing.
//! Never touches the network or the clock itself (criterion times it).

use std::fs::File;
use std::hint::black_box;
use std::io::{BufRead, BufReader};
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use flate2::read::GzDecoder;

use mm::assemble::OFI_CAPACITY;
use mm::book::SyncState;
use mm::engine::{Engine, EngineParams, Step};
use mm::feed::{BookLevels, Decoder, Event, Level};
use mm::limits::BOOK_LEVELS_PER_SIDE_DEFAULT;
use mm::model::ofi::{OfiEstimator, Touch};
use mm::model::{Ofi, Params, Quoter};
use mm::types::{Side, Symbol, SymbolSpec};

const DATA: &str = "../shared/data/binance-spot/btcusdt_20240808.gz";
/// Lines read from the capture (the chosen diff is well inside them).
const LINES_MAX: usize = 4_000;
/// The diff is chosen after this many messages (a warm OFI window and σ).
const DIFF_AFTER: usize = 1_000;
/// Levels (both sides) of the diff to bench: around the session's median of 30.
const DIFF_LEVELS: std::ops::RangeInclusive<u32> = 28..=34;
/// Clock step per iteration, ns.
const STEP_NS: u64 = 7_000_000;
const NS_PER_S: u64 = 1_000_000_000;

fn bench_tick_to_quote(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DATA);
    if !path.is_file() {
        println!("SKIPPED: {} not found", path.display());
        return;
    }
    let mut w = warm_up(&load(&path));
    let (mut engine, mut decoder) = (w.engine, w.decoder);
    let mut now = w.now_ns;

    // bookTicker: frame bytes → quote.
    // The engine's touch is b's: the first iteration (odd count) feeds a.
    let tickers = [w.ticker_b.as_slice(), w.ticker_a.as_slice()];
    let quotes_before = engine.stats().quotes;
    let mut i = 0usize;
    c.bench_function("tick_to_quote/book_ticker", |b| {
        b.iter(|| {
            now += STEP_NS;
            i += 1;
            let step = feed(&mut engine, &mut decoder, black_box(tickers[i & 1]), now);
            assert!(step.quoted);
            step
        })
    });
    let quote = *engine.quote();
    let (Some(bid), Some(ask)) = (quote.bid, quote.ask) else {
        panic!("no two-sided quote: {quote:?}");
    };
    let touch = engine.touch().unwrap_or_else(|| panic!("no touch"));
    assert!(bid.price < ask.price && bid.price < touch.ask && ask.price > touch.bid);
    assert_eq!(engine.stats().quotes - quotes_before, i as u64);

    // Depth diff: frame bytes → book update (in sync, no gap).
    let gaps_before = engine.stats().gaps;
    let name = format!("tick_to_quote/depth_diff_{}_levels", w.diff_levels.len());
    let mut k = 0usize;
    c.bench_function(&name, |b| {
        b.iter(|| {
            now += STEP_NS;
            k += 1;
            let step = w.diffs.feed_next(&mut engine, &mut decoder, k & 1, now);
            assert!(!step.need_snapshot);
            step
        })
    });
    // One more, then the book must hold exactly that frame's quantities at D's prices.
    k += 1;
    w.diffs.feed_next(&mut engine, &mut decoder, k & 1, now);
    let want = if k & 1 == 1 {
        &w.inverse_levels
    } else {
        &w.diff_levels
    };
    let book = engine
        .book()
        .book()
        .unwrap_or_else(|| panic!("book out of sync after the diff bench"));
    for (side, level) in want {
        assert_eq!(
            book.qty_at(*side, level.price),
            level.qty,
            "{side:?} {level:?}"
        );
    }
    assert_eq!(engine.stats().gaps, gaps_before);
    assert!(matches!(engine.book().state(), SyncState::Live { .. }));

    let mut frame = w.diffs.frames[0].clone();
    let at = w.diffs.id_at[0];
    let mut id = w.diffs.next_id;
    c.bench_function("tick_to_quote/depth_ids_rewrite_only", |b| {
        b.iter(|| {
            id += 2;
            put_digits(black_box(&mut frame), at.0, id);
            put_digits(black_box(&mut frame), at.1, id + 1);
        })
    });

    // OFI alone.
    let touches = [w.touch_a, w.touch_b];
    let mut ofi = OfiEstimator::new(NS_PER_S, OFI_CAPACITY);
    let mut j = 0usize;
    c.bench_function("tick_to_quote/ofi_update", |b| {
        b.iter(|| {
            now += STEP_NS;
            j += 1;
            ofi.on_touch(now, black_box(touches[j & 1]));
            let value = ofi.normalised(now);
            assert!(value.abs() <= Ofi::ONE);
            value
        })
    });
    // Changes at now, now − 7 ms, ..., all > now − 1 s: 143 (the first touch is no change).
    // j = 0 when a filter (`-- book_ticker`) skipped this bench: nothing to check.
    let window_changes = ((NS_PER_S - 1) / STEP_NS + 1) as usize;
    assert_eq!(ofi.len(), j.saturating_sub(1).min(window_changes));
    assert_eq!(ofi.evicted_early(), 0);
}

criterion_group!(benches, bench_tick_to_quote);
criterion_main!(benches);

/// The warmed engine and the frames to bench.
struct Warm {
    engine: Engine,
    decoder: Decoder,
    now_ns: u64,
    /// Two real bookTicker frames with different touches (the last two before the diff).
    ticker_a: Vec<u8>,
    ticker_b: Vec<u8>,
    touch_a: Touch,
    touch_b: Touch,
    diffs: DiffPair,
    /// The diff's levels and its inverse's, by side.
    diff_levels: Vec<(Side, Level)>,
    inverse_levels: Vec<(Side, Level)>,
}

/// A diff and its inverse, whose update ids are rewritten in place before each use.
struct DiffPair {
    /// [diff, inverse]: the book is just after the diff when benching starts, so the
    /// first frame fed (odd count) is the inverse.
    frames: [Vec<u8>; 2],
    /// Byte offsets of the `U` and `u` digits in each frame.
    id_at: [(usize, usize); 2],
    /// `u − U + 1` of the real diff (used for both).
    span: u64,
    /// `U` of the next frame.
    next_id: u64,
}

impl DiffPair {
    fn feed_next(
        &mut self,
        engine: &mut Engine,
        decoder: &mut Decoder,
        k: usize,
        now: u64,
    ) -> Step {
        let (first, last) = (self.next_id, self.next_id + self.span - 1);
        self.next_id += self.span;
        let frame = &mut self.frames[k];
        put_digits(frame, self.id_at[k].0, first);
        put_digits(frame, self.id_at[k].1, last);
        feed(engine, decoder, black_box(frame), now)
    }
}

/// Replays the capture into a fresh engine until a suitable diff D (after `DIFF_AFTER`
/// messages, `DIFF_LEVELS` levels, every level kept by the book) has been applied.
fn warm_up(lines: &[(u64, Vec<u8>)]) -> Warm {
    let mut engine = Engine::new(params());
    let mut decoder = Decoder::new(spec());
    let mut tickers: Vec<(Vec<u8>, Touch)> = Vec::new();
    for (n, (ts, json)) in lines.iter().enumerate() {
        let event = decoder
            .decode(json, *ts)
            .unwrap_or_else(|e| panic!("line {n}: {e}"));
        let candidate = match &event {
            Event::Depth(d) => {
                n > DIFF_AFTER
                    && DIFF_LEVELS.contains(&(d.bid_count + d.ask_count))
                    && engine.book().book().is_some()
            }
            _ => false,
        };
        let (mut inverse, mut levels) = (Vec::new(), Vec::new());
        if let (Event::Depth(d), true, Some(book)) = (&event, candidate, engine.book().book()) {
            let l = decoder.diff_levels(d);
            for (side, side_levels) in [(Side::Buy, l.bids), (Side::Sell, l.asks)] {
                for level in side_levels {
                    levels.push((side, *level));
                    inverse.push((
                        side,
                        Level {
                            price: level.price,
                            qty: book.qty_at(side, level.price),
                        },
                    ));
                }
            }
        }
        let step = feed_event(&mut engine, &decoder, &event, *ts);
        assert!(
            !step.need_snapshot || n < 10,
            "line {n}: resync during warm-up"
        );
        if let Event::BookTicker(t) = &event {
            let touch = Touch {
                bid: t.bid_price,
                bid_qty: t.bid_qty,
                ask: t.ask_price,
                ask_qty: t.ask_qty,
            };
            if tickers.last().is_none_or(|(_, last)| *last != touch) {
                tickers.push((json.clone(), touch));
            }
        }
        let Event::Depth(d) = event else { continue };
        let kept = engine.book().book().is_some_and(|book| {
            levels
                .iter()
                .all(|(side, l)| book.qty_at(*side, l.price) == l.qty)
        });
        if !candidate || !kept || tickers.len() < 2 {
            continue;
        }
        let (ticker_b, touch_b) = tickers.pop().unwrap_or_else(|| panic!("two tickers"));
        let (ticker_a, touch_a) = tickers.pop().unwrap_or_else(|| panic!("two tickers"));
        let inverse_json = diff_json(json, &inverse);
        let id_at = [id_offsets(json), id_offsets(&inverse_json)];
        return Warm {
            engine,
            decoder,
            now_ns: *ts,
            ticker_a,
            ticker_b,
            touch_a,
            touch_b,
            diffs: DiffPair {
                frames: [json.clone(), inverse_json],
                id_at,
                span: d.final_update_id - d.first_update_id + 1,
                next_id: d.final_update_id + 1,
            },
            diff_levels: levels,
            inverse_levels: inverse,
        };
    }
    panic!("no suitable depth diff in the first {LINES_MAX} lines");
}

/// Decode + engine, as the hot loop's handler does it; a refused frame is a bench bug.
#[inline]
fn feed(engine: &mut Engine, decoder: &mut Decoder, frame: &[u8], now: u64) -> Step {
    let event = decoder
        .decode(frame, now)
        .unwrap_or_else(|e| panic!("frame refused: {e}"));
    feed_event(engine, decoder, &event, now)
}

#[inline]
fn feed_event(engine: &mut Engine, decoder: &Decoder, event: &Event, now: u64) -> Step {
    let levels = match event {
        Event::Depth(d) => decoder.diff_levels(d),
        Event::Snapshot(s) => decoder.snapshot_levels(s),
        _ => BookLevels {
            bids: &[],
            asks: &[],
        },
    };
    engine.on_event(event, levels, now)
}

/// A depth-diff frame like `template` (same stream, E, U, u) with `levels` instead.
fn diff_json(template: &[u8], levels: &[(Side, Level)]) -> Vec<u8> {
    let text = String::from_utf8_lossy(template);
    let head_end = text
        .find(",\"b\":")
        .unwrap_or_else(|| panic!("no bids in {text}"));
    let side = |want: Side| -> String {
        let items: Vec<String> = levels
            .iter()
            .filter(|(s, _)| *s == want)
            .map(|(_, l)| {
                format!(
                    "[\"{}\",\"{}\"]",
                    e8(l.price.0 * 1_000_000),
                    e8(l.qty.0 * 1_000)
                )
            })
            .collect();
        items.join(",")
    };
    format!(
        "{},\"b\":[{}],\"a\":[{}]}}}}",
        &text[..head_end],
        side(Side::Buy),
        side(Side::Sell)
    )
    .into_bytes()
}

fn e8(v: i64) -> String {
    format!("{}.{:08}", v / 100_000_000, v % 100_000_000)
}

/// Offsets of the digits after `"U":` and `"u":`.
fn id_offsets(frame: &[u8]) -> (usize, usize) {
    let find = |key: &[u8]| {
        frame
            .windows(key.len())
            .position(|w| w == key)
            .map(|p| p + key.len())
            .unwrap_or_else(|| panic!("no {}", String::from_utf8_lossy(key)))
    };
    (find(b"\"U\":"), find(b"\"u\":"))
}

/// Writes `value` over the 11 digits at `at` (Binance's ids stay 11 digits here).
#[inline]
fn put_digits(frame: &mut [u8], at: usize, mut value: u64) {
    assert!((10_000_000_000..100_000_000_000).contains(&value));
    for byte in frame[at..at + 11].iter_mut().rev() {
        *byte = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

fn load(path: &Path) -> Vec<(u64, Vec<u8>)> {
    let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut reader = BufReader::new(GzDecoder::new(file));
    let mut lines = Vec::new();
    let mut line = Vec::new();
    while lines.len() < LINES_MAX {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if n == 0 {
            break;
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let Some(space) = text.iter().position(|&b| b == b' ') else {
            panic!("bad line {}", lines.len());
        };
        let ts = std::str::from_utf8(&text[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad timestamp on line {}", lines.len()));
        lines.push((ts, text[space + 1..].to_vec()));
    }
    lines
}

fn spec() -> SymbolSpec {
    // INVARIANT: constant, valid Binance filters; a failure here is a bug in the bench.
    let symbol = Symbol::new("BTCUSDT").unwrap_or_else(|e| panic!("symbol: {e}"));
    SymbolSpec::from_decimals(symbol, "0.01", "0.00001", "5").unwrap_or_else(|e| panic!("{e}"))
}

/// config/default.toml's engine.
fn params() -> EngineParams {
    EngineParams {
        quoter: Quoter::new(Params::default(), spec()).unwrap_or_else(|e| panic!("{e}")),
        book_levels: BOOK_LEVELS_PER_SIDE_DEFAULT,
        ofi_window_ns: NS_PER_S,
        ofi_capacity: OFI_CAPACITY,
        sigma_estimated: true,
        sigma_sample_s: 1.0,
        sigma_half_life_s: 300.0,
        sigma_warmup_samples: 30,
    }
}
