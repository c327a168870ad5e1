#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The live Binance venue (src/venue/binance/) against the local exchange: the real
//! `mm-exchange` binary as a child process on an ephemeral port, real TLS 1.3 + WebSocket
//! through `mm::net::Connection`, signed WebSocket API requests, executionReports through
//! `userDataStream.subscribe.signature` — and the same with an Ed25519 key: `session.logon`
//! once per connection, then unsigned requests and `userDataStream.subscribe`.
//!
//! The allocation checks install a counting global allocator for this test binary. It
//! counts `alloc`, `alloc_zeroed` and `realloc` calls (not `dealloc`) made by the *current
//! thread* while a thread-local flag is set; libtest's threads and the exchange (another
//! process) are never counted.

use std::path::PathBuf;
use std::time::Duration;

use mio::{Events, Poll, Token};
use serde_json::Value;

use mm::net::{ConnConfig, NetEvent, TlsRoots};
use mm::orders::{Action, ClientOrderId, SessionTag, VenueEvent};
use mm::risk::{Approved, Exposure, Risk, RiskLimits};
use mm::time::{Clock, SystemClock};
use mm::types::{Price, Qty, Side, Symbol, SymbolSpec};
use mm::venue::binance::{
    decode, BinanceConfig, BinanceVenue, Credentials, Message, RequestEncoder, RotationEvent,
    RECV_WINDOW_MS_DEFAULT, REQUEST_BYTES_MAX,
};
use mm::venue::{SubmitError, Venue};

const WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// Counting allocator (this thread only)
// ---------------------------------------------------------------------------------------

#[path = "support/counting.rs"]
mod counting;

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

#[path = "support/process.rs"]
mod process;

use process::{ed25519_exchange_args, write_ed25519_keys, ED25519_KEY, KEY, SECRET};

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

fn spec() -> SymbolSpec {
    SymbolSpec::from_decimals(Symbol::new("BTCUSDT").unwrap(), "0.01", "0.00001", "5").unwrap()
}

fn session() -> SessionTag {
    SessionTag::new("lv1").unwrap()
}

fn approve(side: Side, price: i64, qty: i64) -> Approved {
    let mut risk = Risk::new(RiskLimits::default(), spec()).unwrap();
    risk.on_market_data(0);
    risk.check(side, Price(price), Qty(qty), &Exposure::default())
        .unwrap()
}

fn place(id: u64, side: Side, price: i64, qty: i64) -> Action {
    Action::Place {
        id: ClientOrderId(id),
        order: approve(side, price, qty),
    }
}

/// A running `mm-exchange` (killed on drop) on a capture of its own. The account has the
/// HMAC test key and the Ed25519 test key.
struct Exchange {
    process: process::Exchange,
    port: u16,
    cert: PathBuf,
    /// The Ed25519 private key PEM, and a valid key that is not the registered one.
    ed25519_pem: PathBuf,
    ed25519_wrong_pem: PathBuf,
    _dir: process::Workdir,
}

impl Exchange {
    /// Starts the exchange on a one-line capture: a snapshot with bids 100.00×2,
    /// 99.99×1 and asks 100.01×1, 100.02×3 (nothing trades afterwards).
    fn start(tag: &str) -> Exchange {
        Exchange::start_with(tag, &[])
    }

    /// The same snapshot, then `lines` (`<ns after the snapshot> <json>`).
    fn start_with(tag: &str, lines: &[(u64, String)]) -> Exchange {
        let dir = process::Workdir::new("mm-live-venue", tag);
        let snapshot = r#"{"lastUpdateId":100,"bids":[["100.00000000","2.00000000"],["99.99000000","1.00000000"]],"asks":[["100.01000000","1.00000000"],["100.02000000","3.00000000"]]}"#;
        let capture = dir.0.join("capture.txt");
        const T0_NS: u64 = 1_723_161_253_000_000_000;
        let mut text = format!("{T0_NS} {snapshot}\n");
        for (after_ns, json) in lines {
            text.push_str(&format!("{} {json}\n", T0_NS + after_ns));
        }
        std::fs::write(&capture, text).unwrap();
        let (private, public, wrong) = write_ed25519_keys(&dir.0);
        // The replay clock starts now, not with a market-data subscriber (none here).
        let mut args = vec!["--start-at-launch".to_string()];
        args.extend(ed25519_exchange_args(&public));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let process = process::Exchange::start(&[capture], &args);
        Exchange {
            port: process.port,
            cert: process.cert.clone(),
            process,
            ed25519_pem: private,
            ed25519_wrong_pem: wrong,
            _dir: dir,
        }
    }

    /// Credentials of the Ed25519 test key (`wrong`: signed with another private key).
    fn ed25519(&self, wrong: bool) -> Credentials {
        let path = if wrong {
            &self.ed25519_wrong_pem
        } else {
            &self.ed25519_pem
        };
        Credentials::ed25519_from_pem(ED25519_KEY, &std::fs::read(path).unwrap()).unwrap()
    }

    /// Sends one control command (tools/mm-exchange/control.rs) on stdin.
    fn command(&mut self, line: &str) {
        self.process.command(line);
    }

    /// Stops the exchange (`stop` on stdin) and returns its final accounting.
    fn stop(self) -> Value {
        self.process.stop()
    }
}

/// The engine's loop in miniature: one `Poll`, the venue's token, the real clocks.
struct Driver {
    poll: Poll,
    events: Events,
    venue: BinanceVenue,
    clock: SystemClock,
    seen: Vec<VenueEvent>,
}

impl Driver {
    /// Connected with the HMAC key, subscribed.
    fn connect(exchange: &Exchange) -> Driver {
        let driver = Driver::start(exchange, Credentials::new(KEY, SECRET).unwrap());
        driver.until_ready()
    }

    fn until_ready(mut self) -> Driver {
        assert!(
            self.run_until(|d| d.venue.is_ready()),
            "not subscribed: {:?} {:?} refused {:?}",
            self.venue.connection().phase(),
            self.venue.stats(),
            self.venue.subscribe_refused()
        );
        self
    }

    /// The venue with `creds`, connecting (not waited for).
    fn start(exchange: &Exchange, creds: Credentials) -> Driver {
        Driver::start_aged(exchange, creds, None)
    }

    /// `start`, with the connection's age limit cut to `max_age` and the rotation's
    /// standby token set (make-before-break), if given.
    fn start_aged(exchange: &Exchange, creds: Credentials, max_age: Option<Duration>) -> Driver {
        let url = format!("wss://127.0.0.1:{}/ws-api/v3", exchange.port);
        let mut conn = ConnConfig::new(&url, TlsRoots::CaFile(exchange.cert.clone()));
        if let Some(age) = max_age {
            conn.max_age_ns = age.as_nanos() as u64;
        }
        let cfg = BinanceConfig {
            conn,
            spec: spec(),
            base_asset: Symbol::new("BTC").unwrap(),
            quote_asset: Symbol::new("USDT").unwrap(),
            session: session(),
            recv_window_ms: RECV_WINDOW_MS_DEFAULT,
            rate_headroom: 5,
        };
        let clock = SystemClock::new();
        let mut venue = BinanceVenue::new(cfg, creds, Token(3), clock.mono_ns()).unwrap();
        venue.set_wall_offset_ns(clock.wall_ns() as i64 - clock.mono_ns() as i64);
        if max_age.is_some() {
            venue.set_standby_token(Token(4));
        }
        Driver {
            poll: Poll::new().unwrap(),
            events: Events::with_capacity(64),
            venue,
            clock,
            seen: Vec::new(),
        }
    }

    fn now_ns(&self) -> u64 {
        self.clock.mono_ns()
    }

    /// One loop turn; new venue events are appended to `seen`.
    fn turn(&mut self) {
        self.poll
            .poll(&mut self.events, Some(Duration::from_millis(1)))
            .unwrap();
        for event in self.events.iter() {
            self.venue.on_readiness(event);
        }
        let now = self.clock.mono_ns();
        self.venue.poll_io(self.poll.registry(), now);
        let seen = &mut self.seen;
        self.venue.poll_events(now, &mut |e| seen.push(e));
    }

    fn run_until(&mut self, mut done: impl FnMut(&Driver) -> bool) -> bool {
        let deadline = self.now_ns() + WAIT.as_nanos() as u64;
        while self.now_ns() < deadline {
            if done(self) {
                return true;
            }
            self.turn();
        }
        done(self)
    }

    fn submit(&mut self, action: &Action) {
        let now = self.now_ns();
        self.venue.submit(now, action).unwrap();
    }

    /// Waits until `event` has been seen.
    fn expect(&mut self, event: VenueEvent) {
        let found = self.run_until(|d| d.seen.contains(&event));
        assert!(
            found,
            "{event:?} never came; seen {:?}; stats {:?}",
            self.seen,
            self.venue.stats()
        );
    }

    /// Submits `action`; the submit (encode, sign, frame, encrypt, write) allocates nothing.
    fn submit_without_allocating(&mut self, action: &Action) {
        let now = self.now_ns();
        let venue = &mut self.venue;
        let (sent, allocations) = counting::count(|| venue.submit(now, action));
        assert_eq!(sent, Ok(()));
        assert_eq!(allocations, 0, "submit {action:?}");
    }

    /// Waits for every request to be answered.
    fn settle(&mut self) {
        assert!(
            self.run_until(|d| d.venue.in_flight() == 0),
            "requests unanswered"
        );
    }

    fn open_orders(&mut self) -> u32 {
        let now = self.now_ns();
        self.venue.request_open_orders(now).unwrap();
        assert!(self.run_until(|d| d.venue.open_orders().is_some()));
        self.venue.open_orders().unwrap()
    }

    /// Whether an executionReport-driven `Accepted` (a second one, after the response's)
    /// arrived for `id`.
    fn accepted_count(&self, id: u64) -> usize {
        self.seen
            .iter()
            .filter(|e| matches!(e, VenueEvent::Accepted { id: i, .. } if i.0 == id))
            .count()
    }
}

// ---------------------------------------------------------------------------------------
// Against the local exchange
// ---------------------------------------------------------------------------------------

#[test]
fn signed_orders_rejections_cancels_and_cancel_all_against_the_local_exchange() {
    let exchange = Exchange::start("orders");
    let mut d = Driver::connect(&exchange);

    // A resting post-only bid: the response's ack, then the executionReport NEW.
    d.submit(&place(1, Side::Buy, 9_900, 10_000));
    assert!(d.run_until(|d| d.accepted_count(1) >= 2), "{:?}", d.seen);
    assert!(d.venue.stats().executions >= 1);
    let limits = d.venue.rate_limits();
    assert_eq!(limits.orders_10s.1, 100, "{limits:?}");
    assert!(
        limits.weight_1m.0 > 0 && limits.weight_1m.1 > 0,
        "{limits:?}"
    );

    // A crossing LIMIT_MAKER (the best ask is 100.01) is refused with -2010.
    d.submit(&place(2, Side::Buy, 10_001, 10_000));
    d.expect(VenueEvent::Rejected {
        id: ClientOrderId(2),
        code: -2010,
    });

    // A cancel of an order the exchange does not know: -2011.
    d.submit(&Action::Cancel {
        id: ClientOrderId(99),
    });
    d.expect(VenueEvent::CancelRejected {
        id: ClientOrderId(99),
        code: -2011,
    });

    // Cancel-replace: order 3 becomes order 4; a replace of an unknown order is -2022 and
    // leaves nothing behind.
    d.submit(&place(3, Side::Sell, 10_100, 10_000));
    assert!(d.run_until(|d| d.accepted_count(3) >= 1));
    d.submit(&Action::CancelReplace {
        cancel_id: ClientOrderId(3),
        new_id: ClientOrderId(4),
        order: approve(Side::Sell, 10_150, 10_000),
    });
    d.expect(VenueEvent::Canceled {
        id: ClientOrderId(3),
    });
    assert!(d.run_until(|d| d.accepted_count(4) >= 1));
    d.submit(&Action::CancelReplace {
        cancel_id: ClientOrderId(77),
        new_id: ClientOrderId(78),
        order: approve(Side::Sell, 10_200, 10_000),
    });
    d.expect(VenueEvent::CancelRejected {
        id: ClientOrderId(77),
        code: -2011,
    });
    d.expect(VenueEvent::Rejected {
        id: ClientOrderId(78),
        code: -2022,
    });

    // A single cancel, then the rest by cancelAll.
    d.submit(&place(5, Side::Buy, 9_800, 10_000));
    assert!(d.run_until(|d| d.accepted_count(5) >= 1));
    d.submit(&Action::Cancel {
        id: ClientOrderId(5),
    });
    d.expect(VenueEvent::Canceled {
        id: ClientOrderId(5),
    });
    d.settle();
    assert_eq!(d.open_orders(), 2, "orders 1 and 4 rest");
    d.submit(&Action::CancelAll);
    d.expect(VenueEvent::Canceled {
        id: ClientOrderId(1),
    });
    d.expect(VenueEvent::Canceled {
        id: ClientOrderId(4),
    });
    d.settle();
    assert_eq!(d.open_orders(), 0);

    // Same host, same clock: the measured skew is about 0.
    let skew = d.venue.server_skew_ms().expect("a time answer on connect");
    assert!(skew.abs() < 1_000, "{skew}");
    let stats = d.venue.stats();
    assert_eq!(stats.decode_errors, 0, "{stats:?}");
    assert_eq!(stats.events_dropped, 0, "{stats:?}");
    assert_eq!(stats.responses_unmatched, 0, "{stats:?}");
    d.venue.close(d.poll.registry());

    let acct = exchange.stop();
    assert_eq!(acct["open_orders"], 0, "{acct}");
    assert_eq!(acct["orders_rejected_by_code"]["-2010"], 1, "{acct}");
    assert_eq!(acct["orders_rejected_by_code"]["-2022"], 1, "{acct}");
    assert_eq!(acct["orders_accepted"], 4, "{acct}");
    assert_eq!(acct["fills"], 0, "{acct}");
}

/// Fills through the user-data stream: a resting bid at 100.00 is traded through by sells
/// at 99.98 four seconds into the replay; the fills the venue reports add up to the
/// position in the exchange's accounting.
#[test]
fn fills_arrive_through_execution_reports_and_match_the_exchange_position() {
    let trade = |id: u64, qty: &str| {
        format!(
            "{{\"stream\":\"btcusdt@trade\",\"data\":{{\"e\":\"trade\",\"E\":1723161257000,\"s\":\"BTCUSDT\",\"t\":{id},\"p\":\"99.98000000\",\"q\":\"{qty}\",\"T\":1723161257000,\"m\":true,\"M\":true}}}}"
        )
    };
    let s = 1_000_000_000;
    let exchange = Exchange::start_with(
        "fills",
        &[
            // The replay's clock starts at its first record (the snapshot is not one).
            (
                1_000_000,
                "{\"stream\":\"btcusdt@depth@100ms\",\"data\":{\"e\":\"depthUpdate\",\"E\":1723161253001,\"s\":\"BTCUSDT\",\"U\":101,\"u\":101,\"b\":[[\"99.98000000\",\"1.00000000\"]],\"a\":[]}}".to_string(),
            ),
            (4 * s, trade(1, "0.05000000")),
            (4 * s + 1_000_000, trade(2, "1.00000000")),
        ],
    );
    let mut d = Driver::connect(&exchange);
    d.submit(&place(1, Side::Buy, 10_000, 10_000));
    assert!(d.run_until(|d| d.accepted_count(1) >= 1), "{:?}", d.seen);
    let filled = |d: &Driver| -> i64 {
        d.seen
            .iter()
            .filter_map(|e| match e {
                VenueEvent::Fill { id, qty, .. } if id.0 == 1 => Some(qty.0),
                _ => None,
            })
            .sum()
    };
    assert!(
        d.run_until(|d| filled(d) == 10_000),
        "fills {:?}; stats {:?}",
        d.seen,
        d.venue.stats()
    );
    let last = d
        .seen
        .iter()
        .rev()
        .find_map(|e| match *e {
            VenueEvent::Fill {
                price,
                cum_qty,
                is_maker,
                trade_id,
                ..
            } => Some((price, cum_qty, is_maker, trade_id)),
            _ => None,
        })
        .unwrap();
    assert_eq!(last.0, Price(10_000), "a maker fills at its own price");
    assert_eq!(last.1, Qty(10_000));
    assert!(last.2);
    drop(d);
    let acct = exchange.stop();
    assert_eq!(acct["position"], "0.10000000", "{acct}");
    assert_eq!(acct["open_orders"], 0, "{acct}");
}

/// A 429 answer (`ratelimit` fault): the order is rejected with its code, and the venue
/// refuses new orders itself until `retryAfter` — the engine stops quoting meanwhile.
#[test]
fn a_429_backs_the_venue_off_until_retry_after() {
    let mut exchange = Exchange::start("ratelimit");
    let mut d = Driver::connect(&exchange);
    exchange.command("ratelimit 2");
    // The command travels through the exchange's stdin: place until it bites (orders
    // accepted before it are cancelled at the end).
    let mut id = 0;
    while d.venue.stats().rate_limited == 0 && id < 50 {
        id += 1;
        d.submit(&place(id, Side::Buy, 9_900, 10_000));
        d.settle();
    }
    assert!(d.venue.stats().rate_limited > 0, "no 429: {:?}", d.seen);
    d.expect(VenueEvent::Rejected {
        id: ClientOrderId(id),
        code: -1015,
    });
    let now = d.now_ns();
    assert!(d.venue.is_backing_off(now));
    assert_eq!(
        d.venue
            .submit(now, &place(id + 1, Side::Buy, 9_900, 10_000)),
        Err(SubmitError::QueueFull)
    );
    assert!(d.venue.stats().throttled >= 1);
    // Cancels do not count against the ORDERS limit: they still go.
    assert_eq!(d.venue.submit(now, &Action::CancelAll), Ok(()));
    d.settle();
    // After retryAfter (≤ 2 s) orders go again.
    assert!(d.run_until(|d| !d.venue.is_backing_off(d.now_ns())));
    d.submit(&Action::CancelAll);
    d.settle();
    drop(d);
    let acct = exchange.stop();
    assert_eq!(acct["open_orders"], 0, "{acct}");
    assert!(
        acct["orders_rejected_by_code"]["-1015"].as_u64().unwrap() >= 1,
        "{acct}"
    );
}

/// The exchange drops every connection: the venue reconnects, subscribes again, and the
/// order placed before the drop is still open (the WebSocket API has no
/// cancel-on-disconnect); it is found with `openOrders.status` and cancelled.
#[test]
fn a_dropped_connection_reconnects_and_resubscribes() {
    let mut exchange = Exchange::start("drop");
    let mut d = Driver::connect(&exchange);
    d.submit(&place(1, Side::Buy, 9_900, 10_000));
    assert!(d.run_until(|d| d.accepted_count(1) >= 2));
    let opens = d.venue.connection().stats().opens;
    exchange.command("drop");
    assert!(
        d.run_until(|d| d.venue.connection().stats().disconnects >= 1),
        "no disconnect"
    );
    assert!(!d.venue.is_ready() || d.venue.connection().stats().opens > opens);
    assert!(
        d.run_until(|d| d.venue.is_ready() && d.venue.connection().stats().opens > opens),
        "not ready again: {:?}",
        d.venue.stats()
    );
    assert_eq!(d.open_orders(), 1);
    d.submit(&Action::CancelAll);
    d.expect(VenueEvent::Canceled {
        id: ClientOrderId(1),
    });
    d.settle();
    assert_eq!(d.open_orders(), 0);
    drop(d);
    let acct = exchange.stop();
    assert_eq!(acct["open_orders"], 0, "{acct}");
}

/// Sending the order path (encode + sign + WebSocket frame + TLS record + socket write)
/// allocates nothing once the connection is warm; reading the answers is reported.
#[test]
fn the_order_path_allocates_nothing_against_the_local_exchange() {
    let exchange = Exchange::start("alloc");
    let mut d = Driver::connect(&exchange);
    // Warm-up: one full place/cancel round trip.
    d.submit(&place(1, Side::Buy, 9_900, 10_000));
    assert!(d.run_until(|d| d.accepted_count(1) >= 2));
    d.submit(&Action::Cancel {
        id: ClientOrderId(1),
    });
    d.expect(VenueEvent::Canceled {
        id: ClientOrderId(1),
    });
    d.settle();
    d.seen.reserve(1_024);

    let actions = [
        place(2, Side::Buy, 9_900, 10_000),
        Action::CancelReplace {
            cancel_id: ClientOrderId(2),
            new_id: ClientOrderId(3),
            order: approve(Side::Buy, 9_890, 10_000),
        },
        Action::Cancel {
            id: ClientOrderId(3),
        },
        Action::CancelAll,
    ];
    let mut receive_allocations = 0;
    for action in &actions {
        d.submit_without_allocating(action);
        // The receive side: loop turns until the answer (and its reports) are in.
        let ((), allocations) = counting::count(|| {
            d.settle();
            for _ in 0..20 {
                d.turn();
            }
        });
        receive_allocations += allocations;
    }
    let stats = d.venue.stats();
    assert!(stats.executions >= 6, "{stats:?}");
    println!(
        "allocations while receiving 4 answers and {} executionReports: {receive_allocations}",
        stats.executions
    );
    assert_eq!(receive_allocations, 0);
    assert_eq!(d.open_orders(), 0);
    drop(d);
    let acct = exchange.stop();
    assert_eq!(acct["open_orders"], 0, "{acct}");
}

/// Ed25519: `session.logon` once, then orders without `apiKey` or signature; the order path
/// allocates nothing; a dropped connection logs on again before anything else is sent.
#[test]
fn ed25519_session_logs_on_trades_and_logs_on_again_after_a_drop() {
    let mut exchange = Exchange::start("ed25519");
    let mut d = Driver::start(&exchange, exchange.ed25519(false)).until_ready();
    assert!(d.venue.is_logged_on());
    // Warm-up round trip, then the counted one.
    d.submit(&place(1, Side::Buy, 9_900, 10_000));
    assert!(d.run_until(|d| d.accepted_count(1) >= 2), "{:?}", d.seen);
    d.seen.reserve(1_024);
    let actions = [
        Action::CancelReplace {
            cancel_id: ClientOrderId(1),
            new_id: ClientOrderId(2),
            order: approve(Side::Buy, 9_890, 10_000),
        },
        Action::Cancel {
            id: ClientOrderId(2),
        },
    ];
    for action in &actions {
        d.submit_without_allocating(action);
        d.settle();
    }
    d.expect(VenueEvent::Canceled {
        id: ClientOrderId(2),
    });
    // A crossing order is refused by the matching (so the unsigned request was accepted
    // as authenticated), not by the authentication.
    d.submit(&place(3, Side::Buy, 10_001, 10_000));
    d.expect(VenueEvent::Rejected {
        id: ClientOrderId(3),
        code: -2010,
    });
    d.submit(&place(4, Side::Sell, 10_100, 10_000));
    assert!(d.run_until(|d| d.accepted_count(4) >= 2));

    // The connection drops: the new one logs on (and subscribes) again.
    let opens = d.venue.connection().stats().opens;
    exchange.command("drop api");
    assert!(
        d.run_until(|d| d.venue.is_ready() && d.venue.connection().stats().opens > opens),
        "not ready again: {:?} refused {:?}",
        d.venue.stats(),
        d.venue.subscribe_refused()
    );
    assert!(d.venue.is_logged_on());
    assert_eq!(d.open_orders(), 1, "order 4 rests across the drop");
    d.submit(&Action::CancelAll);
    d.expect(VenueEvent::Canceled {
        id: ClientOrderId(4),
    });
    d.settle();
    assert_eq!(d.open_orders(), 0);
    let stats = d.venue.stats();
    assert_eq!(stats.errors, 1, "only the -2010: {stats:?}");
    drop(d);
    let acct = exchange.stop();
    assert_eq!(acct["api_requests_by_method"]["session.logon"], 2, "{acct}");
    assert_eq!(
        acct["api_requests_by_method"]["userDataStream.subscribe"], 2,
        "{acct}"
    );
    assert!(
        acct["api_requests_by_method"]["userDataStream.subscribe.signature"].is_null(),
        "{acct}"
    );
    assert_eq!(acct["open_orders"], 0, "{acct}");
}

/// The order connection's age rotation is make-before-break. With the age limit cut to
/// 5 s (the standby opens 2.5 s before it) and every answer delayed 30 ms (so requests
/// are in flight when order entry switches), orders are placed and cancelled every
/// 100 ms for 13 s: the venue is ready on every loop turn, no connection drops, nothing
/// is lost in flight, every order gets exactly one answer and one executionReport for its
/// placement and for its cancel (the copies arriving on both connections are dropped),
/// and the exchange ends with nothing open. `key` picks HMAC or Ed25519 (the standby logs
/// on before it subscribes).
fn rotation_keeps_orders_flowing(ed25519: bool) {
    let mut exchange = Exchange::start(if ed25519 { "rotation-ed" } else { "rotation" });
    let creds = if ed25519 {
        exchange.ed25519(false)
    } else {
        Credentials::new(KEY, SECRET).unwrap()
    };
    let mut d = Driver::start_aged(&exchange, creds, Some(Duration::from_secs(5))).until_ready();
    exchange.command("delay-acks 30");
    let (mut net, mut rotations) = (Vec::new(), Vec::new());
    let start = d.now_ns();
    let (mut next_action_ns, mut next_id, mut resting) = (start, 1u64, None::<u64>);
    let mut not_ready_turns = 0u64;
    while d.now_ns() < start + 13_000_000_000 {
        d.turn();
        net.extend(std::iter::from_fn(|| d.venue.take_net_event()));
        rotations.extend(std::iter::from_fn(|| d.venue.take_rotation_event()));
        if !d.venue.is_ready() {
            not_ready_turns += 1;
            continue;
        }
        let now = d.now_ns();
        if now < next_action_ns {
            continue;
        }
        next_action_ns = now + 100_000_000;
        let action = match resting {
            Some(id) if d.accepted_count(id) >= 1 => {
                resting = None;
                Action::Cancel {
                    id: ClientOrderId(id),
                }
            }
            Some(_) => continue,
            None => {
                resting = Some(next_id);
                next_id += 1;
                place(next_id - 1, Side::Buy, 9_900, 10_000)
            }
        };
        assert_eq!(
            d.venue.submit(now, &action),
            Ok(()),
            "{action:?} refused at {} ms; rotations {rotations:?}",
            (now - start) / 1_000_000
        );
    }
    exchange.command("delay-acks 0");
    if let Some(id) = resting {
        assert!(d.run_until(|d| d.accepted_count(id) >= 1));
        d.submit(&Action::Cancel {
            id: ClientOrderId(id),
        });
    }
    let placed = next_id - 1;
    let canceled = |d: &Driver, id: u64| {
        d.seen
            .iter()
            .filter(|e| matches!(e, VenueEvent::Canceled { id: i } if i.0 == id))
            .count()
    };
    assert!(
        d.run_until(|d| (1..=placed).all(|id| canceled(d, id) >= 2 && d.accepted_count(id) >= 2)),
        "answers missing; stats {:?}",
        d.venue.stats()
    );
    d.settle();
    let stats = d.venue.stats();
    assert!(placed >= 50, "only {placed} orders in 13 s: {stats:?}");
    assert_eq!(
        not_ready_turns, 0,
        "order entry was not ready for a while: {rotations:?}"
    );
    assert!(
        !net.iter()
            .any(|e| matches!(e, NetEvent::Disconnected { .. })),
        "a connection dropped: {net:?}"
    );
    assert!(stats.rotations >= 2, "{stats:?} {rotations:?}");
    assert_eq!(stats.lost_in_flight, 0, "{stats:?}");
    assert_eq!(stats.request_timeouts, 0, "{stats:?}");
    assert!(
        !rotations
            .iter()
            .any(|r| matches!(r, RotationEvent::Abandoned)),
        "{rotations:?}"
    );
    assert!(
        rotations.contains(&RotationEvent::Retired { lost: 0 }),
        "{rotations:?}"
    );
    for id in 1..=placed {
        assert_eq!(
            d.accepted_count(id),
            2,
            "order {id}: answer + NEW report once"
        );
        assert_eq!(
            canceled(&d, id),
            2,
            "order {id}: answer + CANCELED report once"
        );
    }
    eprintln!(
        "{placed} orders over {} rotations; {} executionReport copies dropped",
        stats.rotations, stats.executions_duplicate
    );
    assert_eq!(d.open_orders(), 0);
    drop(d);
    let acct = exchange.stop();
    assert_eq!(acct["open_orders"], 0, "{acct}");
}

#[test]
fn the_order_connection_rotates_make_before_break_hmac() {
    rotation_keeps_orders_flowing(false);
}

#[test]
fn the_order_connection_rotates_make_before_break_ed25519() {
    rotation_keeps_orders_flowing(true);
}

/// A private key that is not the one registered for the API key: `session.logon` is
/// answered -1022, the venue never becomes ready and says why.
#[test]
fn a_wrong_ed25519_key_is_refused_at_logon_with_1022() {
    let exchange = Exchange::start("ed25519-wrong");
    let mut d = Driver::start(&exchange, exchange.ed25519(true));
    assert!(
        d.run_until(|d| d.venue.subscribe_refused().is_some()),
        "no refusal: {:?}",
        d.venue.stats()
    );
    assert_eq!(d.venue.subscribe_refused(), Some(-1022));
    assert!(d.venue.refused_at_logon());
    assert!(!d.venue.is_ready() && !d.venue.is_logged_on());
    // Nothing that needs the session is sent while it is not logged on.
    let now = d.now_ns();
    assert_eq!(
        d.venue.request_open_orders(now),
        Err(SubmitError::Disconnected)
    );
    drop(d);
    let acct = exchange.stop();
    assert_eq!(acct["errors_by_code"]["-1022"], 1, "{acct}");
    assert!(
        acct["api_requests_by_method"]["openOrders.status"].is_null(),
        "{acct}"
    );
}

#[test]
fn submit_without_a_connection_is_refused() {
    let cfg = BinanceConfig {
        conn: ConnConfig::new("wss://127.0.0.1:1/ws-api/v3", TlsRoots::WebPki),
        spec: spec(),
        base_asset: Symbol::new("BTC").unwrap(),
        quote_asset: Symbol::new("USDT").unwrap(),
        session: session(),
        recv_window_ms: RECV_WINDOW_MS_DEFAULT,
        rate_headroom: 5,
    };
    let creds = Credentials::new(KEY, SECRET).unwrap();
    let mut venue = BinanceVenue::new(cfg, creds, Token(1), 0).unwrap();
    assert_eq!(
        venue.submit(0, &place(1, Side::Buy, 9_900, 10_000)),
        Err(SubmitError::Disconnected)
    );
    assert!(!venue.is_ready());
}

// ---------------------------------------------------------------------------------------
// Encoding, signing and decoding: zero allocations
// ---------------------------------------------------------------------------------------

#[test]
fn encoding_signing_and_decoding_allocate_nothing() {
    let creds = Credentials::new(KEY, SECRET).unwrap();
    let encoder = RequestEncoder::new(creds, spec(), session(), RECV_WINDOW_MS_DEFAULT).unwrap();
    let actions = [
        place(1, Side::Buy, 6_183_763, 100),
        Action::Cancel {
            id: ClientOrderId(1),
        },
        Action::CancelReplace {
            cancel_id: ClientOrderId(1),
            new_id: ClientOrderId(2),
            order: approve(Side::Sell, 6_183_800, 100),
        },
        Action::CancelAll,
    ];
    let frames: [&[u8]; 3] = [
        br#"{"id":"12","status":200,"result":{"symbol":"BTCUSDT","orderId":5,"clientOrderId":"mmlv1-1","transactTime":1723161255343},"rateLimits":[{"rateLimitType":"ORDERS","interval":"SECOND","intervalNum":10,"limit":100,"count":3},{"rateLimitType":"REQUEST_WEIGHT","interval":"MINUTE","intervalNum":1,"limit":6000,"count":17}]}"#,
        br#"{"id":"13","status":429,"error":{"code":-1015,"msg":"Too many new orders","data":{"serverTime":1,"retryAfter":1723161265000}}}"#,
        br#"{"event":{"e":"executionReport","E":1,"s":"BTCUSDT","c":"mmlv1-42","S":"BUY","o":"LIMIT_MAKER","f":"GTC","q":"0.00100000","p":"61837.63000000","C":"","x":"TRADE","X":"PARTIALLY_FILLED","r":"NONE","i":7,"l":"0.00040000","z":"0.00060000","L":"61837.63000000","n":"0.02473505","N":"USDT","T":1723161255343,"t":99,"m":true}}"#,
    ];
    let spec = spec();
    let session = session();
    let mut buf = [0u8; REQUEST_BYTES_MAX];
    let mut total = 0usize;
    let (_, allocations) = counting::count(|| {
        for round in 0..1_000u64 {
            for action in &actions {
                let n = encoder.encode_action(round, action, 1_723_161_255_343 + round, &mut buf);
                total += n.unwrap_or(0);
            }
            for frame in frames {
                let decoded = decode(frame, &spec, &session, b"BTC", b"USDT");
                assert!(matches!(
                    decoded,
                    Ok(Message::Response(_) | Message::Execution(_))
                ));
            }
        }
    });
    assert!(total > 4_000 * 200, "{total}");
    assert_eq!(allocations, 0, "4,000 encodes and 3,000 decodes");
}

/// Prints what one encode+sign and one decode cost here. Figures only mean something in a
/// release build: `cargo test --release --test live_venue -- --nocapture cost`.
#[test]
fn encode_sign_and_decode_cost() {
    let creds = Credentials::new(KEY, SECRET).unwrap();
    let encoder = RequestEncoder::new(creds, spec(), session(), RECV_WINDOW_MS_DEFAULT).unwrap();
    let order = approve(Side::Buy, 6_183_763, 100);
    let report = br#"{"subscriptionId":0,"event":{"e":"executionReport","E":1,"s":"BTCUSDT","c":"mmlv1-42","S":"BUY","o":"LIMIT_MAKER","f":"GTC","q":"0.00100000","p":"61837.63000000","C":"","x":"TRADE","X":"PARTIALLY_FILLED","r":"NONE","i":7,"l":"0.00040000","z":"0.00060000","L":"61837.63000000","n":"0.02473505","N":"USDT","T":1723161255343,"t":99,"m":true}}"#;
    let (spec, session) = (spec(), session());
    let mut buf = [0u8; REQUEST_BYTES_MAX];
    let rounds = 20_000u64;
    #[allow(clippy::disallowed_methods)] // a test measuring its own loop
    let start = std::time::Instant::now();
    let mut bytes = 0;
    for round in 0..rounds {
        let id = ClientOrderId(round);
        bytes += encoder
            .encode_place(round, id, &order, 1_723_161_255_343, &mut buf)
            .unwrap();
    }
    let encode_ns = start.elapsed().as_nanos() as u64 / rounds;
    #[allow(clippy::disallowed_methods)] // a test measuring its own loop
    let start = std::time::Instant::now();
    let mut fills = 0;
    for _ in 0..rounds {
        let decoded = decode(
            std::hint::black_box(report),
            &spec,
            &session,
            b"BTC",
            b"USDT",
        );
        if let Ok(Message::Execution(r)) = decoded {
            fills += r.last_qty.0;
        }
    }
    let decode_ns = start.elapsed().as_nanos() as u64 / rounds;
    assert_eq!(fills, 40 * rounds as i64);
    println!(
        "order.place encode+sign: {encode_ns} ns ({} bytes); executionReport decode: {decode_ns} ns",
        bytes as u64 / rounds
    );
}
