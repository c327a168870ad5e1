//! Integration tests of the quoting model through the public API: the hot path never
//! allocates, and on every recorded BTCUSDT top of book the fixed-point quoter agrees with
//! the f64 reference, never crosses and keeps the spread inside the clamp.
//!
//! Owns: a counting global allocator that counts on the current thread only (libtest's own
//! threads allocate). Reads the bundled slice (tools/data; the full session in
//! `../shared/data` in an extra `#[ignore]`d run) through the system `gzip` (no extra
//! crate); never writes anything and never touches the network.

#![allow(unsafe_code)]
// the counting allocator below, and nothing else
// Test code: a failed unwrap is a failed test (clippy's test exemption only covers #[test]
// functions, not their helpers).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;
use std::process::Command;

#[path = "support/data.rs"]
mod data;

use mm::model::{avellaneda, ofi_from_f64, sigma_from_f64, Params, QuoteInput, Quoter};
use mm::modes::spread_check;
use mm::types::{Price, Qty, Symbol, SymbolSpec};

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call unchanged to the system allocator; the only addition is a
// const-initialised thread-local counter, which itself never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` above with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

fn btc() -> SymbolSpec {
    SymbolSpec::from_decimals(Symbol::new("BTCUSDT").unwrap(), "0.01", "0.00001", "5").unwrap()
}

#[test]
fn quote_never_allocates() {
    // With the micro-price lean on, so that its division path is inside the window too.
    let params = Params {
        microprice_weight: 0.5,
        ..Params::default()
    };
    let quoter = Quoter::new(params, btc()).unwrap();
    let mut inputs = Vec::new();
    for (bid, ask) in [
        (6_183_763, 6_183_764),
        (10_000, 10_001),
        (1, 2),
        (5, 5),
        (-1, 3),
    ] {
        for inventory in [-100_000, -99_950, 0, 42, 99_950, 100_000, i64::MAX] {
            for (sigma, ofi) in [(0.0, 0.0), (1.25, 1.0), (40.0, -0.3), (1e6, 0.9)] {
                inputs.push(QuoteInput {
                    best_bid: Price(bid),
                    best_ask: Price(ask),
                    inventory: Qty(inventory),
                    sigma: sigma_from_f64(sigma),
                    ofi: ofi_from_f64(ofi),
                    bid_qty: Qty(inventory.unsigned_abs().min(1 << 40) as i64 + 1),
                    ask_qty: Qty(7_000),
                });
            }
        }
    }
    // The counter works: a Box is one allocation.
    let probe = allocations();
    drop(std::hint::black_box(Box::new(1u64)));
    assert_eq!(
        allocations() - probe,
        1,
        "the counting allocator is not installed"
    );

    let mut quoted = 0usize;
    let before = allocations();
    for _ in 0..100 {
        for input in &inputs {
            let quote = std::hint::black_box(quoter.quote(std::hint::black_box(input)));
            quoted += usize::from(quote.bid.is_some()) + usize::from(quote.ask.is_some());
        }
    }
    let after = allocations();
    assert_eq!(after - before, 0, "Quoter::quote allocated");
    // The inputs cover quoting and non-quoting sides, including the minNotional slow path.
    assert!(quoted > 0 && quoted < inputs.len() * 2 * 100);
}

/// A recorded top of book: best bid, best ask, and the sizes there.
#[derive(Clone, Copy)]
struct Book {
    bid: Price,
    ask: Price,
    bid_qty: Qty,
    ask_qty: Qty,
}

/// Every `bookTicker` top of book in a recorded gzip file.
fn recorded_books(path: &Path, spec: &SymbolSpec) -> Vec<Book> {
    let output = Command::new("gzip")
        .arg("-dc")
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("gzip -dc {}: {e}", path.display()));
    assert!(
        output.status.success(),
        "gzip -dc {} failed",
        path.display()
    );
    let text = String::from_utf8(output.stdout).unwrap();
    fn field<'a>(line: &'a str, key: &str) -> &'a [u8] {
        let start = line.find(key).unwrap() + key.len();
        let end = start + line[start..].find('"').unwrap();
        &line.as_bytes()[start..end]
    }
    text.lines()
        .filter(|line| line.contains("@bookTicker"))
        .map(|line| Book {
            bid: spec.parse_price(field(line, "\"b\":\"")).unwrap(),
            ask: spec.parse_price(field(line, "\"a\":\"")).unwrap(),
            bid_qty: spec.parse_qty(field(line, "\"B\":\"")).unwrap(),
            ask_qty: spec.parse_qty(field(line, "\"A\":\"")).unwrap(),
        })
        .collect()
}

#[test]
fn recorded_btcusdt_books_quote_sanely() {
    // The bundled slice: 28,040 bookTickers (tools/data/README.md).
    books_quote_sanely(&[data::bundled_spot()], 28_040);
}

#[test]
#[ignore = "extra run on ../shared/data: cargo test -- --include-ignored"]
fn full_shared_session_books_quote_sanely() {
    // The whole 2024-08-08/09 session: 73,174 bookTickers (../shared/data/README.md).
    books_quote_sanely(&data::shared_spot_session(), 73_174);
}

fn books_quote_sanely(files: &[std::path::PathBuf], book_tickers: usize) {
    let spec = btc();
    let books: Vec<Book> = files
        .iter()
        .flat_map(|f| recorded_books(f, &spec))
        .collect();
    assert_eq!(books.len(), book_tickers);

    let params = Params::default();
    let max = params.inventory_max_lots.0;
    let mut compared = 0usize;
    // The seed's centre (mid) and the full micro-price lean, on the recorded queue sizes.
    let leaning = Params {
        microprice_weight: 1.0,
        ..params
    };
    for (params, book) in [params, leaning]
        .into_iter()
        .flat_map(|p| books.iter().map(move |b| (p, *b)))
    {
        let quoter = Quoter::new(params, spec).unwrap();
        let (best_bid, best_ask) = (book.bid, book.ask);
        for inventory in [-max, -max / 2, -1, 0, 1, max / 2, max] {
            for ofi in [-1.0, 0.0, 0.5] {
                let input = QuoteInput {
                    best_bid,
                    best_ask,
                    inventory: Qty(inventory),
                    sigma: sigma_from_f64(params.sigma_bps_per_sqrt_s),
                    ofi: ofi_from_f64(ofi),
                    bid_qty: book.bid_qty,
                    ask_qty: book.ask_qty,
                };
                let fixed = quoter.quote(&input);
                let reference = quoter.reference(&input);
                assert_eq!(fixed.bid.is_some(), reference.bid.is_some(), "{input:?}");
                assert_eq!(fixed.ask.is_some(), reference.ask.is_some(), "{input:?}");
                for (f, r) in [(fixed.bid, reference.bid), (fixed.ask, reference.ask)] {
                    if let (Some(f), Some(r)) = (f, r) {
                        assert!((f.price.0 - r.price.0).abs() <= 1, "{input:?}");
                        compared += 1;
                    }
                }
                if let Some(bid) = fixed.bid {
                    assert!(bid.price < best_ask, "{input:?}");
                }
                if let Some(ask) = fixed.ask {
                    assert!(ask.price > best_bid, "{input:?}");
                }
                // Default σ on real BTCUSDT: ≈ 20 bps, not pinned at either clamp.
                let spread = quoter.spread_bps(&fixed).to_num::<f64>();
                assert!(spread > params.spread_min_bps && spread < params.spread_max_bps);
                if inventory == 0 {
                    let (bid, ask) = (fixed.bid.unwrap(), fixed.ask.unwrap());
                    let mid = (best_bid.0 + best_ask.0) as f64 / 2.0;
                    let quoted = (ask.price.0 - bid.price.0) as f64 / mid * 1e4;
                    assert!((quoted - spread).abs() < 0.01, "{quoted} vs {spread}");
                }
            }
        }
    }
    assert!(compared > books.len() * 20);

    // spread-check passes on the first and the last recorded book.
    let params = Params::default();
    for book in [books[0], books[books.len() - 1]] {
        let mut out = Vec::new();
        let ok = spread_check::run(&params, &spec, book.bid, book.ask, &mut out).unwrap();
        assert!(ok, "{}", String::from_utf8_lossy(&out));
    }
}

#[test]
fn reference_formulas_are_public_and_consistent() {
    // The closed forms calibration will use: δ(σ) is increasing in σ and τ, and
    // bid/ask are symmetric around r.
    let p = Params::default();
    let narrow = avellaneda::total_spread_bps(p.gamma_per_bps, 1.0, p.k_per_bps, p.horizon_s);
    let wide = avellaneda::total_spread_bps(p.gamma_per_bps, 2.0, p.k_per_bps, p.horizon_s);
    assert!(wide > narrow);
    let (bid, ask) = avellaneda::bid_ask_ticks(6_183_763.5, 0.3, &p);
    let r = avellaneda::reservation_ticks(
        6_183_763.5,
        0.3,
        p.gamma_per_bps,
        p.sigma_bps_per_sqrt_s,
        p.horizon_s,
    );
    assert!(((bid + ask) / 2.0 - r).abs() < 1e-6);
}
