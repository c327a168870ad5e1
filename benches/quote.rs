//! Benchmark of the quoter: `Quoter::quote` (fixed point, the hot path) against the f64
//! reference `avellaneda::quote`, on a realistic BTCUSDT state cycling through inventories,
//! σ and OFI values.
//!
//! Checks its own answers first: every input is quoted by both implementations and must
//! agree within one tick, never cross the book and keep a spread inside the clamp; a wrong
//! quoter is not benchmarked. Never touches the network or the clock itself (criterion
//! times it).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};

use mm::model::avellaneda;
use mm::model::quoter::{ofi_from_f64, sigma_from_f64};
use mm::model::{Params, QuoteInput, Quoter};
use mm::types::{Price, Qty, Symbol, SymbolSpec};

/// BTCUSDT on 2024-08-08: best bid 61837.63, best ask 61837.64 (ticks of 0.01).
const BEST_BID: Price = Price(6_183_763);
const BEST_ASK: Price = Price(6_183_764);

fn setup() -> (Quoter, Vec<QuoteInput>) {
    // INVARIANT: constant, valid Binance filters; a failure here is a bug in the bench.
    let symbol = Symbol::new("BTCUSDT").unwrap_or_else(|e| panic!("symbol: {e}"));
    let spec = SymbolSpec::from_decimals(symbol, "0.01", "0.00001", "5")
        .unwrap_or_else(|e| panic!("spec: {e}"));
    let quoter =
        Quoter::new(Params::default(), spec).unwrap_or_else(|e| panic!("default params: {e}"));
    let mut inputs = Vec::new();
    for (i, inventory) in [-100_000i64, -37_000, -100, 0, 100, 42_000, 99_950]
        .into_iter()
        .enumerate()
    {
        for (j, sigma) in [0.4, 1.25, 3.0, 9.0].into_iter().enumerate() {
            let ofi = [-1.0, -0.2, 0.0, 0.7][(i + j) % 4];
            let shift = (i * 4 + j) as i64;
            inputs.push(QuoteInput {
                best_bid: Price(BEST_BID.0 + shift),
                best_ask: Price(BEST_ASK.0 + shift + (j as i64 % 2)),
                inventory: Qty(inventory),
                sigma: sigma_from_f64(sigma),
                ofi: ofi_from_f64(ofi),
                bid_qty: Qty(40_000 + shift * 1_000),
                ask_qty: Qty(90_000 - shift * 2_000),
            });
        }
    }
    (quoter, inputs)
}

/// Panics (fails the bench run) unless the fixed-point and reference quotes are sane and
/// agree.
fn check(quoter: &Quoter, inputs: &[QuoteInput]) {
    let params = quoter.params();
    for input in inputs {
        let fixed = quoter.quote(input);
        let reference = quoter.reference(input);
        let spread = quoter.spread_bps(&fixed).to_num::<f64>();
        assert!(
            spread >= params.spread_min_bps - 1e-9 && spread <= params.spread_max_bps + 1e-9,
            "spread {spread} outside the clamp for {input:?}"
        );
        assert_eq!(fixed.bid.is_some(), reference.bid.is_some(), "{input:?}");
        assert_eq!(fixed.ask.is_some(), reference.ask.is_some(), "{input:?}");
        if let (Some(f), Some(r)) = (fixed.bid, reference.bid) {
            assert!((f.price.0 - r.price.0).abs() <= 1, "{input:?}");
            assert!(f.price < input.best_ask);
        }
        if let (Some(f), Some(r)) = (fixed.ask, reference.ask) {
            assert!((f.price.0 - r.price.0).abs() <= 1, "{input:?}");
            assert!(f.price > input.best_bid);
        }
        if let (Some(b), Some(a)) = (fixed.bid, fixed.ask) {
            assert!(b.price < a.price);
        }
    }
}

fn bench_quote(c: &mut Criterion) {
    let (quoter, inputs) = setup();
    check(&quoter, &inputs);
    let n = inputs.len();

    let mut i = 0usize;
    c.bench_function("quote/fixed", |b| {
        b.iter(|| {
            i = (i + 1) % n;
            quoter.quote(black_box(&inputs[i]))
        })
    });

    let params = *quoter.params();
    let spec = *quoter.spec();
    let ref_inputs: Vec<avellaneda::RefInput> = inputs
        .iter()
        .map(|input| avellaneda::RefInput {
            best_bid: input.best_bid,
            best_ask: input.best_ask,
            inventory: input.inventory,
            sigma_bps_per_sqrt_s: input.sigma.to_num::<f64>(),
            ofi: input.ofi.to_num::<f64>(),
            bid_qty: input.bid_qty,
            ask_qty: input.ask_qty,
        })
        .collect();
    let mut i = 0usize;
    c.bench_function("quote/f64_reference", |b| {
        b.iter(|| {
            i = (i + 1) % n;
            avellaneda::quote(
                black_box(&params),
                black_box(&spec),
                black_box(&ref_inputs[i]),
            )
        })
    });
}

criterion_group!(benches, bench_quote);
criterion_main!(benches);
