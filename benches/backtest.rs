//! Benchmark of the backtest's replay + strategy loop (`backtest::simulate`): the
//! decoded tape of the built-in slice (41,249 events, 5.8 minutes of BTCUSDT) replayed
//! through the full `Trader` (book, OFI, σ, quoter, order manager, risk) against the
//! simulated venue, with the KPI tracker and the report records — what `--mode=backtest`
//! times as its events/s figure. Decoding the data is not in the loop (it happens once,
//! before; `decode` below measures it separately), and `market_data_only` replays the
//! same tape through the market-data core alone (no orders), to show where the time goes.
//!
//! The bench checks its own answer before timing: every event replayed, orders placed,
//! fills made, and the same result on a second run (the replay is deterministic).
//! With `../shared/data` present it also replays the whole 2024 session (99,574 events).
//! Never touches the network; criterion reads the clock.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use mm::assemble::engine_params;
use mm::backtest::simulate;
use mm::config::{self, Config, LoadOptions};
use mm::engine::Engine;
use mm::replay::{open_inputs, Tape};

fn config() -> Config {
    let options = LoadOptions {
        root: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        ..LoadOptions::default()
    };
    // INVARIANT: the project's own default configuration loads; a failure is a bug.
    config::load(&options).unwrap_or_else(|e| panic!("{e}"))
}

fn tape(config: &Config, data: &[String]) -> Tape {
    // INVARIANT: the built-in slice and the shared data decode (tests/backtest.rs).
    let readers = open_inputs(data, config.spec.symbol.as_str()).unwrap_or_else(|e| panic!("{e}"));
    Tape::load(readers, config.spec).unwrap_or_else(|e| panic!("{e}"))
}

fn check(config: &Config, tape: &Tape) -> (u64, u64) {
    // INVARIANT: the replay of a decoded tape with a valid configuration succeeds.
    let run = simulate(config, tape, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        run.events,
        tape.events().len() as u64,
        "every event replayed"
    );
    assert!(run.order_stats.orders_placed > 0, "orders placed");
    let again = simulate(config, tape, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.fills, run.fills, "deterministic");
    (run.order_stats.orders_placed, run.fills.len() as u64)
}

fn bench_replay(c: &mut Criterion) {
    let config = config();
    let slice = tape(&config, &[]);
    let (orders, fills) = check(&config, &slice);
    println!(
        "built-in slice: {} events, {orders} orders, {fills} fills per replay",
        slice.events().len()
    );
    let mut group = c.benchmark_group("backtest");
    group.sample_size(20);
    group.throughput(Throughput::Elements(slice.events().len() as u64));
    group.bench_function("replay_builtin_slice", |b| {
        b.iter(|| {
            // INVARIANT: checked above.
            let run = simulate(&config, black_box(&slice), None).unwrap_or_else(|e| panic!("{e}"));
            black_box(run.events)
        })
    });

    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/binance-spot");
    if shared.is_dir() {
        let files: Vec<String> = ["btcusdt_20240808.gz", "btcusdt_20240809.gz"]
            .iter()
            .map(|f| shared.join(f).display().to_string())
            .collect();
        let session = tape(&config, &files);
        check(&config, &session);
        group.throughput(Throughput::Elements(session.events().len() as u64));
        group.bench_function("replay_2024_session", |b| {
            b.iter(|| {
                // INVARIANT: checked above.
                let run =
                    simulate(&config, black_box(&session), None).unwrap_or_else(|e| panic!("{e}"));
                black_box(run.events)
            })
        });
    } else {
        println!("SKIPPED: ../shared/data not found (2024 session bench)");
    }

    // The market-data half alone (book, OFI, σ, quote on every touch change; no orders):
    // what the replay machinery costs without the order manager and the venue.
    group.throughput(Throughput::Elements(slice.events().len() as u64));
    group.bench_function("market_data_only_builtin_slice", |b| {
        b.iter(|| {
            // INVARIANT: the default configuration's engine parameters are valid.
            let params = engine_params(&config).unwrap_or_else(|e| panic!("{e}"));
            let mut engine = Engine::new(params);
            let mut quotes = 0u64;
            for event in black_box(&slice).events() {
                let step = engine.on_event(&event.event, slice.levels(event), event.local_ts_ns);
                quotes += u64::from(step.quoted);
            }
            assert!(quotes > 10_000);
            black_box(quotes)
        })
    });

    group.sample_size(10);
    group.bench_function("decode_builtin_slice", |b| {
        b.iter(|| black_box(tape(&config, &[]).events().len()))
    });
    group.finish();
}

criterion_group!(benches, bench_replay);
criterion_main!(benches);
