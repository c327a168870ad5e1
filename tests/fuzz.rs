//! Fuzzing that stays: seeded mutation harnesses over real inputs, run short in every
//! `cargo test` (CI) and long on demand. Each harness feeds damaged copies of real data to
//! one parser and asserts it never panics and keeps its own books straight:
//!
//! - `feed`: the market-data decoder + the engine, on the bundled slice's messages and its
//!   REST snapshot (decoded events go through `Engine::on_event`; every input is counted
//!   once, as an event or as an error);
//! - `journal`: the journal reader, on a journal written from the bundled slice, damaged
//!   anywhere (header, lengths, checksums, tail);
//! - `venue`: the WebSocket API response/event decoder (`venue::binance::decode`), on
//!   Binance's documented responses and events (both user-data wrappers);
//! - `config`: the configuration loader, on config/default.toml damaged as `--config`
//!   text in memory (`load_with_config_bytes`, the long run) and, a fixed 1,000 inputs, as
//!   `--config` files (`load`, which must agree with the in-memory path on each).
//!
//! The simulator's request parser has its own harness in tools/mm-exchange (`fuzz.rs`).
//! `MM_FUZZ_ITERS` sets the inputs per harness (default 3,000: the short run), `MM_FUZZ_SEED`
//! the seed. Long run (docs/reliability.md, "Fuzzing"):
//! `MM_FUZZ_ITERS=10000000 cargo test --release --test fuzz -- --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::io::BufRead;
use std::path::PathBuf;

use mm::config::{self, LoadOptions};
use mm::engine::Engine;
use mm::feed::{BookLevels, Decoder, Event};
use mm::journal::{JournalReader, JournalWriter, RecordKind};
use mm::orders::SessionTag;
use mm::venue::binance::{decode, Message};

mod support;

use support::binance::{btcusdt_spec, engine_params};
use support::mutate;

/// Inputs per harness in the short run.
const SHORT_RUN: u64 = 3_000;
/// Recorded lines used as seeds (the snapshot is line 8).
const SEED_LINES: usize = 400;

/// The bundled slice's first lines: (receive time, message bytes).
fn recorded_lines(n: usize) -> Vec<(u64, Vec<u8>)> {
    let file = std::fs::File::open(support::data::bundled_spot()).unwrap();
    std::io::BufReader::new(flate2::read::MultiGzDecoder::new(file))
        .lines()
        .take(n)
        .map(|line| {
            let line = line.unwrap();
            let (ts, json) = line.split_once(' ').unwrap();
            (ts.parse().unwrap(), json.as_bytes().to_vec())
        })
        .collect()
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mm-fuzz-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn feed_decoder_and_engine_survive_damaged_real_messages() {
    let lines = recorded_lines(SEED_LINES);
    let seeds: Vec<Vec<u8>> = lines.iter().map(|(_, m)| m.clone()).collect();
    let mut decoder = Decoder::new(btcusdt_spec());
    let mut engine = Engine::new(engine_params(1.0));
    let mut now_ns = lines[0].0;
    let inputs = mutate::run("feed", &seeds, mutate::iterations(SHORT_RUN), |frame| {
        now_ns += 1_000_000;
        let Ok(event) = decoder.decode(frame, now_ns) else {
            return;
        };
        // As hot.rs hands events to the engine.
        let (bids, asks) = match &event {
            Event::Depth(d) => (decoder.diff_levels(d).bids, decoder.diff_levels(d).asks),
            Event::Snapshot(s) => (
                decoder.snapshot_levels(s).bids,
                decoder.snapshot_levels(s).asks,
            ),
            _ => (&[][..], &[][..]),
        };
        engine.on_event(&event, BookLevels { bids, asks }, now_ns);
    });
    let stats = decoder.stats();
    assert_eq!(stats.events_total() + stats.errors_total(), inputs);
    assert!(
        stats.errors_total() > 0 && stats.events_total() > 0,
        "{stats:?}"
    );
}

#[test]
fn journal_reader_survives_damaged_journals() {
    let dir = scratch("journal");
    let clean = dir.join("clean.mmj");
    let mut writer = JournalWriter::create(&clean, "BTCUSDT", 1).unwrap();
    for (ts, json) in recorded_lines(40) {
        let kind = if json.starts_with(b"{\"stream\":") {
            RecordKind::Frame
        } else {
            RecordKind::Snapshot
        };
        writer.append(kind, ts, &json).unwrap();
    }
    writer.append(RecordKind::Marker, 2, b"end").unwrap();
    writer.finish().unwrap();
    let seeds = vec![std::fs::read(&clean).unwrap()];
    let path = dir.join("damaged.mmj");
    let (mut read_ok, mut refused) = (0u64, 0u64);
    mutate::run(
        "journal",
        &seeds,
        mutate::iterations(SHORT_RUN / 3),
        |bytes| {
            std::fs::write(&path, bytes).unwrap();
            let Ok(mut reader) = JournalReader::open(&path) else {
                refused += 1;
                return;
            };
            let mut records = 0usize;
            loop {
                match reader.next_record() {
                    Ok(Some(_)) => records += 1,
                    Ok(None) => {
                        read_ok += 1;
                        break;
                    }
                    Err(_) => {
                        refused += 1;
                        break;
                    }
                }
                // A record is at least its 17-byte frame: never more records than that allows.
                assert!(
                    records <= bytes.len() / 17,
                    "{records} records from {} bytes",
                    bytes.len()
                );
            }
        },
    );
    assert!(
        read_ok > 0 && refused > 0,
        "{read_ok} read, {refused} refused"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn venue_decoder_survives_damaged_responses_and_events() {
    // Binance's documented shapes (PROTOCOL.md, the WebSocket API and user-data docs), as
    // mm-exchange and Binance send them.
    let seeds: Vec<Vec<u8>> = [
        r#"{"id":"mmt1-r1","status":200,"result":{"symbol":"BTCUSDT","orderId":7,"orderListId":-1,"clientOrderId":"mmt1-42","transactTime":1723161255343,"price":"61837.63000000","origQty":"0.00100000","executedQty":"0.00000000","cummulativeQuoteQty":"0.00000000","status":"NEW","timeInForce":"GTC","type":"LIMIT_MAKER","side":"BUY","workingTime":1723161255343,"selfTradePreventionMode":"NONE"},"rateLimits":[{"rateLimitType":"ORDERS","interval":"SECOND","intervalNum":10,"limit":100,"count":1},{"rateLimitType":"REQUEST_WEIGHT","interval":"MINUTE","intervalNum":1,"limit":6000,"count":3}]}"#,
        r#"{"id":"mmt1-r2","status":400,"error":{"code":-2010,"msg":"Order would immediately match and take."},"rateLimits":[{"rateLimitType":"REQUEST_WEIGHT","interval":"MINUTE","intervalNum":1,"limit":6000,"count":4}]}"#,
        r#"{"id":"mmt1-r3","status":409,"error":{"code":-2021,"msg":"Order cancel-replace partially failed.","data":{"cancelResult":"FAILURE","newOrderResult":"NOT_ATTEMPTED","cancelResponse":{"code":-2011,"msg":"Unknown order sent."},"newOrderResponse":null}}}"#,
        r#"{"id":null,"status":400,"error":{"code":-1135,"msg":"Invalid JSON Request"}}"#,
        r#"{"id":"mmt1-r4","status":200,"result":[]}"#,
        r#"{"id":"mmt1-r5","status":200,"result":{"serverTime":1723161255343}}"#,
        r#"{"id":"mmt1-r6","status":200,"result":{"subscriptionId":0}}"#,
        r#"{"id":"mmt1-r7","status":429,"error":{"code":-1003,"msg":"Too many requests; current limit of IP(127.0.0.1) is 6000 requests per minute.","data":{"retryAfter":1723161315343}}}"#,
        r#"{"id":"mmt1-r8","status":200,"result":{"makerCommission":0,"takerCommission":0,"canTrade":true,"balances":[{"asset":"BTC","free":"1.00000000","locked":"0.00000000"},{"asset":"USDT","free":"100000.00000000","locked":"0.00000000"}]}}"#,
        r#"{"event":{"e":"executionReport","E":1,"s":"BTCUSDT","c":"mmt1-42","S":"BUY","o":"LIMIT_MAKER","f":"GTC","q":"0.00100000","p":"61837.63000000","C":"","x":"TRADE","X":"PARTIALLY_FILLED","r":"NONE","i":7,"l":"0.00040000","z":"0.00060000","L":"61837.63000000","n":"0.02473505","N":"USDT","T":1723161255343,"t":99,"m":true}}"#,
        r#"{"subscriptionId":0,"event":{"e":"executionReport","E":1,"s":"BTCUSDT","c":"web_x","S":"SELL","o":"LIMIT_MAKER","f":"GTC","q":"0.00100000","p":"61837.64000000","C":"mmt1-43","x":"CANCELED","X":"CANCELED","r":"NONE","i":8,"l":"0","z":"0","L":"0","n":"0","N":null,"T":5,"t":-1,"m":false}}"#,
        r#"{"subscriptionId":0,"event":{"e":"outboundAccountPosition","E":1,"u":1,"B":[{"a":"BTC","f":"1.00000000","l":"0.00000000"},{"a":"USDT","f":"100000.00000000","l":"0.00000000"}]}}"#,
        r#"{"subscriptionId":0,"event":{"e":"eventStreamTerminated","E":1728973001334}}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    let spec = btcusdt_spec();
    let session = SessionTag::new("mmt1").unwrap();
    let (mut decoded, mut refused) = (0u64, 0u64);
    mutate::run(
        "venue",
        &seeds,
        mutate::iterations(SHORT_RUN),
        |frame| match decode(frame, &spec, &session, b"BTC", b"USDT") {
            Ok(Message::Execution(report)) => {
                decoded += 1;
                let _ = report.to_event();
            }
            Ok(_) => decoded += 1,
            Err(_) => refused += 1,
        },
    );
    assert!(
        decoded > 0 && refused > 0,
        "{decoded} decoded, {refused} refused"
    );
}

/// Inputs of the file-based config harness: a file per input (~3,000/s), so a fixed short
/// run whatever `MM_FUZZ_ITERS` says; the long run is the in-process harness below.
const CONFIG_FILE_RUN: u64 = 1_000;

fn default_config() -> Vec<u8> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml")).unwrap()
}

/// Loads and refusals of a config harness: each refusal must say something, and a run
/// must see both.
#[derive(Default)]
struct Outcomes {
    loaded: u64,
    refused: u64,
}

impl Outcomes {
    fn count(&mut self, result: &Result<config::Config, config::ConfigError>) {
        match result {
            Ok(_) => self.loaded += 1,
            Err(e) => {
                assert!(!e.to_string().is_empty());
                self.refused += 1;
            }
        }
    }

    fn assert_both(&self) {
        let (loaded, refused) = (self.loaded, self.refused);
        assert!(
            loaded > 0 && refused > 0,
            "{loaded} loaded, {refused} refused"
        );
    }
}

/// The loader on damaged config text in memory: `load_with_config_bytes`, the code the
/// `--config` file goes through after it is read (the defaults under it read once).
#[test]
fn config_loader_survives_damaged_config_text() {
    let dir = scratch("config-text");
    let options = LoadOptions {
        root: dir.clone(),
        ..LoadOptions::default()
    };
    let base = config::BaseLayers::read(&options).unwrap();
    let mut outcomes = Outcomes::default();
    mutate::run(
        "config",
        &[default_config()],
        mutate::iterations(SHORT_RUN),
        |bytes| {
            outcomes.count(&config::load_with_config_bytes(
                &options,
                &base,
                "mine.toml",
                bytes,
            ))
        },
    );
    outcomes.assert_both();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same inputs as `--config` files: `load` reads each one and must agree with the
/// in-memory path on every input (the same config, or the same error).
#[test]
fn config_loader_survives_damaged_config_files() {
    let dir = scratch("config");
    let path = dir.join("mine.toml");
    let name = path.display().to_string();
    let options = LoadOptions {
        root: dir.clone(),
        config_path: Some(path.clone()),
        ..LoadOptions::default()
    };
    let base = config::BaseLayers::read(&options).unwrap();
    let mut outcomes = Outcomes::default();
    mutate::run(
        "config-file",
        &[default_config()],
        CONFIG_FILE_RUN,
        |bytes| {
            std::fs::write(&path, bytes).unwrap();
            let from_file = config::load(&options);
            assert_eq!(
                from_file,
                config::load_with_config_bytes(&options, &base, &name, bytes)
            );
            outcomes.count(&from_file);
        },
    );
    outcomes.assert_both();
    let _ = std::fs::remove_dir_all(&dir);
}
