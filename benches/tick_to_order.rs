//! Benchmark of tick-to-order: from the bytes of a real bookTicker WebSocket frame to a
//! signed order request sealed in the order connection's outgoing TLS 1.3 record, on one
//! thread, with no socket and no syscall — `Decoder::decode` + `Trader::on_market` (the
//! call paper and live trading make per market event: book touch, OFI, σ, quote, order
//! manager, risk gate, `Venue::submit`), with a bench-local `WireVenue` whose `submit` does
//! the live venue's per-request CPU work: `RequestEncoder::encode_action` (JSON + HMAC-SHA256
//! signature) into the WebSocket frame buffer, `encode_masked_frame` with a `MaskGen` key
//! (as `WsSession::send_with`), then the frame copied into the TLS send buffer and sealed
//! there as one AES-128-GCM record (as `TlsStream::seal_into_tx`).
//!
//! The trader is built from the default configuration (`config::load` + `build_trader`,
//! as live does) with three order settings changed so every touch change sends orders:
//! `price_tolerance_ticks = 0`, `min_rest_ms = 0`, both rate windows at their maximum
//! (1024). Its engine is warmed like `benches/tick_to_quote.rs`: synced from the recorded
//! REST snapshot of `../shared/data/binance-spot/btcusdt_20240808.gz` and fed the session's
//! first 1,000+ messages at their recorded times, up to two consecutive real bookTicker
//! frames whose bid and ask both moved ≥ 3 ticks.
//!
//! - `tick_to_order/book_ticker_to_sealed_record`: the two frames alternated, the clock
//!   advancing 20 ms per iteration (so ≤ 2 new orders per tick stay under the 1024 per
//!   rolling 10 s of the order manager's window). Each tick moves both quotes: two
//!   `CancelReplace`s, i.e. two signed requests and two sealed records per iteration.
//!   The venue's answers (`Canceled` + `Accepted` per replace) are handed back by an
//!   untimed `Trader::on_timer` 10 ms after each tick, as the live loop's `on_idle` does
//!   between ticks. Each iteration is timed alone (`SystemClock::mono_ns` around decode +
//!   `on_market`), so the figure includes one clock read (measured and printed at start).
//!   Asserted every iteration: ≥ 1 action, one sealed record per action; at the end: no
//!   order was rate-limited, held, refused by risk or dropped, and the last records open.
//! - `tick_to_order/encode_sign_frame_seal`: `WireVenue::submit` alone on one of those
//!   `CancelReplace`s, timed the same way — subtract it from the above to get the engine +
//!   order manager + risk share.
//! - `tick_to_order/ed25519/…`: the same two, with an Ed25519 key: the session was
//!   authenticated once by `session.logon`, so each request is written without `apiKey`
//!   and without a signature (no HMAC per request). Both key types run in the same
//!   process, one after the other, on fresh traders warmed the same way: compare them
//!   within one run (the machine's load moves both).
//!
//! Correctness first: before timing (and again on the last iteration), every sealed record
//! is opened with a second `RecordKey` and must hold a masked text frame whose unmasked
//! payload is JSON with the action's method (`order.place` / `order.cancelReplace`), id,
//! symbol, side, price, quantity, client order ids and timestamp, and (HMAC) a 64-hex
//! `signature` that verifies (hmac/sha2, independently of `Credentials`) over the sorted
//! parameters, or (Ed25519 session) neither `apiKey` nor `signature`.
//!
//! Excluded: the socket write (`flush_tx`'s `send` syscall) and everything after it, the
//! trade-record channel `try_send`s of the live sink (here a no-op sink), the live venue's
//! readiness / rate-limit checks and in-flight table (a few compares), and the market-data
//! side's TLS open + WebSocket unframing (see `benches/net.rs`).
//!
//! Needs ../shared/data: when it is absent the bench prints "SKIPPED" and times nothing.
//! Never touches the network or reads the clock inside the measured code.

use std::fs::File;
use std::hint::black_box;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use flate2::read::GzDecoder;
use hmac::{Hmac, Mac};
use ring::aead;
use serde_json::Value;
use sha2::Sha256;

use mm::assemble::build_trader;
use mm::config::{self, Config, LoadOptions};
use mm::engine::{Engine, Step, TradeRecord, Trader};
use mm::feed::{BookLevels, Decoder, Event, Trade};
use mm::model::ofi::Touch;
use mm::net::record::{RecordKey, CT_APPLICATION_DATA, HEADER_LEN, OVERHEAD};
use mm::net::tls::TX_BUF_BYTES;
use mm::net::ws::{
    encode_masked_frame, MaskGen, FRAME_HEADER_MAX, OP_TEXT, SEND_FRAME_BYTES_DEFAULT,
};
use mm::orders::{
    Action, ClientOrderId, OrderParams, OrderStats, SessionTag, VenueEvent, OUTBOX_MAX,
    RATE_WINDOW_MAX,
};
use mm::time::{Clock, SystemClock};
use mm::types::{Side, SymbolSpec};
use mm::venue::binance::{Credentials, KeyType, RequestEncoder};
use mm::venue::{MarketView, SubmitError, Venue};

const DATA: &str = "../shared/data/binance-spot/btcusdt_20240808.gz";
/// Lines read from the capture (the chosen tickers are well inside them).
const LINES_MAX: usize = 4_000;
/// The ticker pair is chosen after this many messages (a warm OFI window and σ).
const WARM_MESSAGES: usize = 1_000;
/// Both sides of the touch must move at least this much between the two frames, ticks.
const MOVE_TICKS_MIN: i64 = 3;
/// Clock step per tick, ns: 2 new orders per tick × 10 s / 20 ms = 1000 < 1024.
const STEP_NS: u64 = 20_000_000;
/// Untimed ticks (each checked) before the benches.
const PRIME_TICKS: usize = 6;
/// Binance's documentation key pair (PROTOCOL.md), as in the venue's tests.
const KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
const SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
/// AES-128-GCM traffic key and IV (what Binance negotiates); any value does.
const TLS_KEY: [u8; 16] = [7; 16];
const TLS_IV: [u8; 12] = [0x5A; 12];
/// RFC 8032 §7.1 TEST 2's secret key (a published test vector) as PKCS#8 PEM.
const ED25519_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIEzNCJso/5banbbDRuwRTg9bijGfNaumJNqM9u1PuKb7
-----END PRIVATE KEY-----
";
const NS_PER_MS: u64 = 1_000_000;

fn bench_tick_to_order(c: &mut Criterion) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let path = root.join(DATA);
    if !path.is_file() {
        println!("SKIPPED: {} not found", path.display());
        return;
    }
    bench_key_type(c, &root, &path, KeyType::Hmac);
    bench_key_type(c, &root, &path, KeyType::Ed25519);
}

/// Both benches with one kind of key (HMAC names unprefixed, Ed25519 under `ed25519/`).
fn bench_key_type(c: &mut Criterion, root: &Path, path: &Path, keys: KeyType) {
    let prefix = match keys {
        KeyType::Hmac => "tick_to_order",
        KeyType::Ed25519 => "tick_to_order/ed25519",
    };
    let config = bench_config(root.to_path_buf());
    let mut trader = build_trader(&config).unwrap_or_else(|e| panic!("trader: {e}"));
    let mut decoder = Decoder::new(config.spec);
    let lines = load(path);
    let w = warm_up(trader.engine_mut(), &mut decoder, &lines);
    let session = SessionTag::from_number(w.start_ns / 1_000_000_000);
    let mut venue = WireVenue::new(&config, session, keys);
    let mut now = w.now_ns;
    // The project's clock (src/time.rs: monotonic ns from `Instant`), read around each
    // timed iteration.
    let clock = SystemClock::new();
    let overhead = clock_overhead_ns(&clock);
    println!(
        "tick_to_order: touches {:?} / {:?}; clock read per timed iteration ≈ {overhead} ns",
        (w.touch_a.bid.0, w.touch_a.ask.0),
        (w.touch_b.bid.0, w.touch_b.ask.0),
    );

    // The engine's touch is b's: the first tick (odd count) feeds a.
    let tickers = [w.ticker_b.as_slice(), w.ticker_a.as_slice()];
    let mut i = 0usize;
    let mut tick = |trader: &mut Trader, venue: &mut WireVenue, i: usize, now: u64| -> Duration {
        // Between ticks: the previous orders' answers, as the live loop's on_idle.
        let mut timer_actions = 0u32;
        trader.on_timer(now - STEP_NS / 2, venue, &mut |r| {
            timer_actions += u32::from(matches!(r, TradeRecord::Action { .. }));
        });
        assert_eq!(timer_actions, 0, "acks alone must not requote");
        venue.flushed();
        let start = clock.mono_ns();
        let (step, actions) = on_tick(trader, &mut decoder, black_box(tickers[i & 1]), now, venue);
        let elapsed = Duration::from_nanos(clock.mono_ns() - start);
        assert!(step.quoted, "tick {i}: no quote");
        assert!(actions >= 1, "tick {i}: no action");
        assert_eq!(
            venue.sent_len as u32, actions,
            "tick {i}: one record per action"
        );
        elapsed
    };

    // Untimed ticks, each checked record by record: two places, then replaces.
    let mut rx = RecordKey::from_raw(&aead::AES_128_GCM, &TLS_KEY, TLS_IV, 0)
        .unwrap_or_else(|e| panic!("key: {e}"));
    for _ in 0..PRIME_TICKS {
        now += STEP_NS;
        i += 1;
        tick(&mut trader, &mut venue, i, now);
        check_records(&venue, &mut rx, &config.spec, now);
    }
    let primed = *trader.order_stats();
    assert_eq!(primed.places_sent, 2, "{primed:?}");
    assert_eq!(
        primed.replaces_sent,
        2 * (PRIME_TICKS as u64 - 1),
        "{primed:?}"
    );
    let replace = venue.sent[0];
    assert!(
        matches!(replace, Action::CancelReplace { .. }),
        "{replace:?}"
    );

    let ticks_before = i;
    let records_before = venue.records;
    c.bench_function(&format!("{prefix}/book_ticker_to_sealed_record"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                now += STEP_NS;
                i += 1;
                total += tick(&mut trader, &mut venue, i, now);
            }
            total
        })
    });
    let ticks = (i - ticks_before) as u64;
    let stats = *trader.order_stats();
    assert_clean(&stats);
    assert_eq!(venue.dropped, 0);
    assert_eq!(
        stats.places_sent + stats.replaces_sent + stats.cancels_sent,
        venue.records,
        "every action sealed once"
    );
    println!(
        "tick_to_order: {ticks} timed ticks, {:.2} records per tick ({} replaces, {} cancels)",
        (venue.records - records_before) as f64 / ticks.max(1) as f64,
        stats.replaces_sent - primed.replaces_sent,
        stats.cancels_sent - primed.cancels_sent,
    );
    // The last tick's records open and verify at their sequence numbers.
    let mut rx = RecordKey::from_raw(
        &aead::AES_128_GCM,
        &TLS_KEY,
        TLS_IV,
        venue.tls.seq() - venue.sent_len as u64,
    )
    .unwrap_or_else(|e| panic!("key: {e}"));
    check_records(&venue, &mut rx, &config.spec, now);

    // The venue's part alone: one CancelReplace → signed, framed, sealed.
    let mut alone = WireVenue::new(&config, session, keys);
    let mut rx = RecordKey::from_raw(&aead::AES_128_GCM, &TLS_KEY, TLS_IV, 0)
        .unwrap_or_else(|e| panic!("key: {e}"));
    now += STEP_NS;
    alone.flushed();
    assert_eq!(alone.submit(now, &replace), Ok(()));
    check_records(&alone, &mut rx, &config.spec, now);
    c.bench_function(&format!("{prefix}/encode_sign_frame_seal"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                now += STEP_NS;
                alone.flushed();
                alone.discard_events();
                let start = clock.mono_ns();
                let sent = alone.submit(now, black_box(&replace));
                total += Duration::from_nanos(clock.mono_ns() - start);
                assert_eq!(sent, Ok(()));
            }
            total
        })
    });
    let mut rx = RecordKey::from_raw(&aead::AES_128_GCM, &TLS_KEY, TLS_IV, alone.tls.seq() - 1)
        .unwrap_or_else(|e| panic!("key: {e}"));
    check_records(&alone, &mut rx, &config.spec, now);
}

criterion_group!(benches, bench_tick_to_order);
criterion_main!(benches);

/// Decode + `Trader::on_market`, as the live sink does it (its sink sends each record to
/// the side thread; this one only counts the actions). Returns the step and the actions.
#[inline]
fn on_tick(
    trader: &mut Trader,
    decoder: &mut Decoder,
    frame: &[u8],
    now: u64,
    venue: &mut WireVenue,
) -> (Step, u32) {
    let event = decoder
        .decode(frame, now)
        .unwrap_or_else(|e| panic!("frame refused: {e}"));
    let mut actions = 0u32;
    let step = trader.on_market(&event, no_levels(), now, venue, &mut |r| {
        actions += u32::from(matches!(r, TradeRecord::Action { .. }));
        black_box(r);
    });
    (step, actions)
}

fn no_levels() -> BookLevels<'static> {
    BookLevels {
        bids: &[],
        asks: &[],
    }
}

/// Nothing was refused, held, throttled or lost on the way.
fn assert_clean(s: &OrderStats) {
    assert_eq!(s.rate_limited, 0, "{s:?}");
    assert_eq!(s.held_min_rest, 0, "{s:?}");
    assert_eq!(s.held_side_full, 0, "{s:?}");
    assert_eq!(s.risk_rejects.iter().sum::<u64>(), 0, "{s:?}");
    assert_eq!(s.table_full + s.outbox_full, 0, "{s:?}");
    assert_eq!(s.events_refused + s.events_unknown, 0, "{s:?}");
    assert_eq!(
        s.rejects + s.cancel_rejects + s.cancel_alls_sent,
        0,
        "{s:?}"
    );
}

// ---------------------------------------------------------------------------------------
// The venue
// ---------------------------------------------------------------------------------------

/// The live venue's per-request CPU work without its socket: sign into the frame buffer,
/// mask, copy into the TLS send buffer and seal one record there. Answers every request at
/// once (`Canceled` / `Accepted`, as a 200 response does), handed out by `poll_events`.
struct WireVenue {
    encoder: RequestEncoder,
    mask: MaskGen,
    tls: RecordKey,
    /// `WsSession`'s frame buffer: header room, then the payload.
    frame: Box<[u8]>,
    /// `TlsStream`'s send buffer; `flushed` empties it (what the socket write does).
    tx: Box<[u8]>,
    tx_end: usize,
    next_req_id: u64,
    wall_offset_ns: i64,
    events: [VenueEvent; 2 * OUTBOX_MAX],
    events_len: usize,
    dropped: u64,
    /// Actions sealed since `flushed`, and the request id of the first.
    sent: [Action; OUTBOX_MAX],
    sent_len: usize,
    first_req_id: u64,
    records: u64,
}

impl WireVenue {
    fn new(config: &Config, session: SessionTag, keys: KeyType) -> WireVenue {
        let creds = match keys {
            KeyType::Hmac => Credentials::new(KEY, SECRET),
            KeyType::Ed25519 => Credentials::ed25519_from_pem(KEY, ED25519_PEM.as_bytes()),
        }
        .unwrap_or_else(|e| panic!("{e}"));
        let encoder = RequestEncoder::new(creds, config.spec, session, config.live.recv_window_ms)
            .unwrap_or_else(|e| panic!("{e}"));
        WireVenue {
            encoder,
            mask: MaskGen::from_seed(0x6d6d),
            tls: RecordKey::from_raw(&aead::AES_128_GCM, &TLS_KEY, TLS_IV, 0)
                .unwrap_or_else(|e| panic!("key: {e}")),
            frame: vec![0u8; FRAME_HEADER_MAX + SEND_FRAME_BYTES_DEFAULT].into_boxed_slice(),
            tx: vec![0u8; TX_BUF_BYTES].into_boxed_slice(),
            tx_end: 0,
            next_req_id: 1,
            wall_offset_ns: 0,
            events: [VenueEvent::Canceled {
                id: ClientOrderId(0),
            }; 2 * OUTBOX_MAX],
            events_len: 0,
            dropped: 0,
            sent: [Action::CancelAll; OUTBOX_MAX],
            sent_len: 0,
            first_req_id: 1,
            records: 0,
        }
    }

    /// The socket took everything (the syscall the bench leaves out).
    fn flushed(&mut self) {
        self.tx_end = 0;
        self.sent_len = 0;
        self.first_req_id = self.next_req_id;
    }

    fn discard_events(&mut self) {
        self.events_len = 0;
    }

    /// `BinanceVenue`'s request timestamp: wall clock at `now_ns`, ms.
    fn wall_ms(&self, now_ns: u64) -> u64 {
        let ns = (i128::from(now_ns) + i128::from(self.wall_offset_ns)).max(0);
        u64::try_from(ns / i128::from(NS_PER_MS)).unwrap_or(0)
    }

    fn answer(&mut self, event: VenueEvent) {
        match self.events.get_mut(self.events_len) {
            Some(slot) => {
                *slot = event;
                self.events_len += 1;
            }
            None => self.dropped += 1,
        }
    }
}

impl Venue for WireVenue {
    #[inline]
    fn submit(&mut self, now_ns: u64, action: &Action) -> Result<(), SubmitError> {
        let req_id = self.next_req_id;
        let ts_ms = self.wall_ms(now_ns);
        // WsSession::send_with: the request is written in place after the header room...
        let len = self
            .encoder
            .encode_action(req_id, action, ts_ms, &mut self.frame[FRAME_HEADER_MAX..])
            .ok_or(SubmitError::QueueFull)?;
        // ...masked under a fresh key, with the header put right before it...
        let start = encode_masked_frame(&mut self.frame, OP_TEXT, len, self.mask.next_key());
        let frame = &self.frame[start..FRAME_HEADER_MAX + len];
        // ...and TlsStream::seal_into_tx: copied into the send buffer, sealed there.
        let at = self.tx_end;
        if self.tx.len() - at < frame.len() + OVERHEAD {
            return Err(SubmitError::QueueFull);
        }
        self.tx[at + HEADER_LEN..at + HEADER_LEN + frame.len()].copy_from_slice(frame);
        let n = self
            .tls
            .seal(&mut self.tx[at..], frame.len(), CT_APPLICATION_DATA)
            .map_err(|_| SubmitError::Disconnected)?;
        self.tx_end += n;
        self.next_req_id += 1;
        self.records += 1;
        if let Some(slot) = self.sent.get_mut(self.sent_len) {
            *slot = *action;
            self.sent_len += 1;
        }
        match *action {
            Action::Place { id, .. } => self.answer(VenueEvent::Accepted {
                id,
                exch_ts_ms: ts_ms,
            }),
            Action::Cancel { id } => self.answer(VenueEvent::Canceled { id }),
            Action::CancelReplace {
                cancel_id, new_id, ..
            } => {
                self.answer(VenueEvent::Canceled { id: cancel_id });
                self.answer(VenueEvent::Accepted {
                    id: new_id,
                    exch_ts_ms: ts_ms,
                });
            }
            Action::CancelAll => {}
        }
        Ok(())
    }

    fn advance<M: MarketView>(&mut self, _now_ns: u64, _market: &M) {}

    fn on_trade(&mut self, _now_ns: u64, _trade: &Trade) {}

    fn on_book_change<M: MarketView>(&mut self, _now_ns: u64, _market: &M) {}

    fn poll_events<F: FnMut(VenueEvent)>(&mut self, _now_ns: u64, out: &mut F) {
        for event in &self.events[..self.events_len] {
            out(*event);
        }
        self.events_len = 0;
    }

    fn next_due_ns(&self) -> Option<u64> {
        None
    }
}

// ---------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------

/// Opens every record sealed since the last `flushed` with `rx` (at the matching sequence
/// number) and checks each against the action it carries.
fn check_records(venue: &WireVenue, rx: &mut RecordKey, spec: &SymbolSpec, now_ns: u64) {
    let mut wire = venue.tx[..venue.tx_end].to_vec();
    let mut at = 0;
    for (k, action) in venue.sent[..venue.sent_len].iter().enumerate() {
        let head = &wire[at..at + HEADER_LEN];
        assert_eq!(&head[..3], &[CT_APPLICATION_DATA, 3, 3], "record header");
        let end = at + HEADER_LEN + usize::from(u16::from_be_bytes([head[3], head[4]]));
        let opened = rx
            .open(&mut wire[at..end])
            .unwrap_or_else(|e| panic!("record {k} does not open: {e}"));
        assert_eq!(opened.content_type, CT_APPLICATION_DATA);
        let frame = &wire[at + HEADER_LEN..at + HEADER_LEN + opened.content_len];
        let payload = unmask(frame);
        let req_id = venue.first_req_id + k as u64;
        check_request(&payload, action, req_id, venue, spec, now_ns);
        at = end;
    }
    assert_eq!(at, venue.tx_end, "bytes after the last record");
}

/// A masked text frame's payload (RFC 6455 §5.2); panics unless the frame is exactly one.
fn unmask(frame: &[u8]) -> Vec<u8> {
    assert_eq!(frame[0], 0x81, "FIN + text");
    assert_eq!(frame[1] & 0x80, 0x80, "client frames are masked");
    let (len, at) = match frame[1] & 0x7F {
        126 => (usize::from(u16::from_be_bytes([frame[2], frame[3]])), 4),
        127 => panic!("request larger than 64 KiB"),
        n => (usize::from(n), 2),
    };
    let key = &frame[at..at + 4];
    let body = &frame[at + 4..];
    assert_eq!(body.len(), len, "frame length");
    body.iter()
        .enumerate()
        .map(|(i, b)| b ^ key[i % 4])
        .collect()
}

/// The request is the action, for this venue's symbol and session, correctly signed.
fn check_request(
    payload: &[u8],
    action: &Action,
    req_id: u64,
    venue: &WireVenue,
    spec: &SymbolSpec,
    now_ns: u64,
) {
    let text = std::str::from_utf8(payload).unwrap_or_else(|e| panic!("not UTF-8: {e}"));
    let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let params = v["params"]
        .as_object()
        .unwrap_or_else(|| panic!("no params: {text}"));
    let str_of = |name: &str| {
        params
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no {name}: {text}"))
    };
    let wire_id = |id: ClientOrderId| {
        let tag = std::str::from_utf8(venue.encoder.session().as_bytes()).unwrap_or("?");
        format!("mm{tag}-{}", id.0)
    };
    assert_eq!(
        v["id"].as_str(),
        Some(req_id.to_string().as_str()),
        "{text}"
    );
    assert_eq!(str_of("symbol"), spec.symbol.as_str(), "{text}");
    assert_eq!(
        params.get("timestamp").and_then(Value::as_u64),
        Some(venue.wall_ms(now_ns)),
        "{text}"
    );
    let (method, order) = match *action {
        Action::Place { id, order } => {
            assert_eq!(str_of("newClientOrderId"), wire_id(id));
            ("order.place", order)
        }
        Action::CancelReplace {
            cancel_id,
            new_id,
            order,
        } => {
            assert_eq!(str_of("cancelOrigClientOrderId"), wire_id(cancel_id));
            assert_eq!(str_of("cancelReplaceMode"), "STOP_ON_FAILURE");
            assert_eq!(str_of("newClientOrderId"), wire_id(new_id));
            ("order.cancelReplace", order)
        }
        other => panic!("unexpected action {other:?}"),
    };
    assert_eq!(v["method"].as_str(), Some(method), "{text}");
    assert_eq!(str_of("type"), "LIMIT_MAKER");
    let side = match order.side() {
        Side::Buy => "BUY",
        Side::Sell => "SELL",
    };
    assert_eq!(str_of("side"), side, "{text}");
    assert_eq!(
        spec.parse_price(str_of("price").as_bytes()),
        Ok(order.price())
    );
    assert_eq!(
        spec.parse_qty(str_of("quantity").as_bytes()),
        Ok(order.qty())
    );
    if venue.encoder.key_type() == KeyType::Ed25519 {
        // A session authenticated by session.logon: nothing per request.
        assert!(params.get("apiKey").is_none() && params.get("signature").is_none());
        return;
    }
    assert_eq!(str_of("apiKey"), KEY);
    // The exchange's way: every parameter but the signature, sorted, `name=value` by `&`.
    let mut names: Vec<&String> = params.keys().filter(|k| *k != "signature").collect();
    names.sort();
    let signed: Vec<String> = names
        .iter()
        .map(|n| match &params[n.as_str()] {
            Value::String(s) => format!("{n}={s}"),
            other => format!("{n}={other}"),
        })
        .collect();
    let mut mac =
        Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap_or_else(|e| panic!("hmac: {e}"));
    mac.update(signed.join("&").as_bytes());
    let want: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let signature = str_of("signature");
    assert_eq!(signature.len(), 64);
    assert!(signature.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(signature, want, "signature of {text}");
}

/// Median of two back-to-back `mono_ns` reads (the clock cost inside every timed iteration).
fn clock_overhead_ns(clock: &SystemClock) -> u64 {
    let mut samples: Vec<u64> = (0..20_001)
        .map(|_| {
            let start = clock.mono_ns();
            black_box(());
            clock.mono_ns() - start
        })
        .collect();
    samples.sort_unstable();
    samples[samples.len() / 2]
}

// ---------------------------------------------------------------------------------------
// Setup
// ---------------------------------------------------------------------------------------

/// The default configuration (no environment, no flags), with orders sent on every quote
/// change and rate windows that never throttle at one tick per `STEP_NS`.
fn bench_config(root: PathBuf) -> Config {
    let options = LoadOptions {
        root,
        env: Vec::new(),
        ..LoadOptions::from_process(None)
    };
    let mut config = config::load(&options).unwrap_or_else(|e| panic!("config: {e}"));
    // Every move of the target re-quotes: no re-quote band (the default keeps an order
    // within a whole half-spread of its target, which a one-tick move never leaves).
    config.quoting.requote_band = 0.0;
    config.orders = OrderParams {
        price_tolerance_ticks: 0,
        min_rest_ms: 0,
        orders_per_s_max: RATE_WINDOW_MAX as u32,
        orders_per_10s_max: RATE_WINDOW_MAX as u32,
        ..config.orders
    };
    config
}

/// The warmed engine's clock and the two frames to bench.
struct Warm {
    /// Local time of the capture's first line, ns.
    start_ns: u64,
    now_ns: u64,
    /// Two consecutive real bookTicker frames (by touch) whose bid and ask both differ by
    /// ≥ `MOVE_TICKS_MIN`; the engine's touch is b's.
    ticker_a: Vec<u8>,
    ticker_b: Vec<u8>,
    touch_a: Touch,
    touch_b: Touch,
}

/// Replays the capture into `engine` until, after `WARM_MESSAGES` messages, a bookTicker
/// moved both sides of the touch by ≥ `MOVE_TICKS_MIN` ticks.
fn warm_up(engine: &mut Engine, decoder: &mut Decoder, lines: &[(u64, Vec<u8>)]) -> Warm {
    let mut last: Option<(Vec<u8>, Touch)> = None;
    for (n, (ts, json)) in lines.iter().enumerate() {
        let event = decoder
            .decode(json, *ts)
            .unwrap_or_else(|e| panic!("line {n}: {e}"));
        let levels = match &event {
            Event::Depth(d) => decoder.diff_levels(d),
            Event::Snapshot(s) => decoder.snapshot_levels(s),
            _ => no_levels(),
        };
        let step = engine.on_event(&event, levels, *ts);
        assert!(
            !step.need_snapshot || n < 10,
            "line {n}: resync during warm-up"
        );
        let Event::BookTicker(t) = &event else {
            continue;
        };
        let touch = Touch {
            bid: t.bid_price,
            bid_qty: t.bid_qty,
            ask: t.ask_price,
            ask_qty: t.ask_qty,
        };
        match last.take() {
            Some((json_a, a))
                if n > WARM_MESSAGES
                    && engine.in_sync()
                    && (touch.bid.0 - a.bid.0).abs() >= MOVE_TICKS_MIN
                    && (touch.ask.0 - a.ask.0).abs() >= MOVE_TICKS_MIN =>
            {
                return Warm {
                    start_ns: lines[0].0,
                    now_ns: *ts,
                    ticker_a: json_a,
                    ticker_b: json.clone(),
                    touch_a: a,
                    touch_b: touch,
                };
            }
            Some((json_a, a)) if a == touch => last = Some((json_a, a)),
            _ => last = Some((json.clone(), touch)),
        }
    }
    panic!("no suitable bookTicker pair in the first {LINES_MAX} lines");
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
