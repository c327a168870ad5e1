//! The simulated venue's fill model on hand-built event sequences whose fills are known
//! exactly, and on a replay of real recorded data through the order manager.
//!
//! Owns: the end-to-end checks of `venue::sim` (queue position, trade-through, partial
//! fills, post-only rejection at arrival, cancel racing a fill) and of its wiring with
//! `orders::OrderManager` and `risk::Risk` in the order the engine calls them
//! (`venue` module doc): invariants on a real BTCUSDT session (inventory = Σ signed fills
//! = the venue's own accounting, no fill beyond a limit price, no fill before arrival +
//! latency, open orders equal on both sides, byte-identical output on a second run).
//!
//! The replay test runs on the bundled real slice (tools/data). Never writes anything.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use flate2::read::GzDecoder;

use mm::book::{Book, DiffOutcome, SyncState, SyncedBook};
use mm::feed::{BookLevels, BookTicker, Decoder, Event, Level, Trade, TradeKind};
use mm::limits::BOOK_LEVELS_PER_SIDE_DEFAULT;
use mm::model::QuoteLevel;
use mm::orders::{
    Action, ClientOrderId, OrderManager, OrderParams, OrderState, Outbox, VenueEvent,
};
use mm::risk::{Approved, Exposure, Risk, RiskLimits};
use mm::types::{Price, Qty, Side, Symbol, SymbolSpec};
use mm::venue::sim::{LatencyModel, SimParams, SimStats, SimVenue};
use mm::venue::{BookWithTicker, MarketView, Venue};

const MS: u64 = 1_000_000;
/// 60,000.00 USDT in ticks.
const P: i64 = 6_000_000;
const ENTRY_NS: u64 = 2 * MS;
const ACK_NS: u64 = 3 * MS;

fn spec() -> SymbolSpec {
    SymbolSpec::from_decimals(Symbol::new("BTCUSDT").unwrap(), "0.01", "0.00001", "5").unwrap()
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

fn trade(price: i64, qty: i64, aggressor: Side) -> Trade {
    Trade {
        kind: TradeKind::Trade,
        trade_id: 0,
        first_trade_id: 0,
        last_trade_id: 0,
        price: Price(price),
        qty: Qty(qty),
        aggressor,
        trade_ts_ms: 0,
        exch_ts_ms: 0,
        local_ts_ns: 0,
    }
}

/// A sim venue and a book, driven in the engine's call order.
struct Bench {
    venue: SimVenue,
    book: Book,
    events: Vec<(u64, VenueEvent)>,
}

impl Bench {
    fn new(fee_centibps: i64) -> Bench {
        let params = SimParams {
            entry_latency: LatencyModel::Constant { ns: ENTRY_NS },
            ack_latency: LatencyModel::Constant { ns: ACK_NS },
            maker_fee_centibps: fee_centibps,
            queue_cancels: false,
            seed: 1,
        };
        let mut book = Book::new(64);
        book.apply(
            Side::Buy,
            Level {
                price: Price(P),
                qty: Qty(50),
            },
        );
        book.apply(
            Side::Buy,
            Level {
                price: Price(P - 1),
                qty: Qty(80),
            },
        );
        book.apply(
            Side::Sell,
            Level {
                price: Price(P + 2),
                qty: Qty(40),
            },
        );
        Bench {
            venue: SimVenue::new(params, spec()).unwrap(),
            book,
            events: Vec::new(),
        }
    }

    fn submit(&mut self, t: u64, action: Action) {
        self.venue.advance(t, &self.book);
        self.venue.submit(t, &action).unwrap();
    }

    fn level(&mut self, t: u64, side: Side, price: i64, qty: i64) {
        self.venue.advance(t, &self.book);
        self.book.apply(
            side,
            Level {
                price: Price(price),
                qty: Qty(qty),
            },
        );
        self.venue.on_book_change(t, &self.book);
        self.poll(t);
    }

    fn trade(&mut self, t: u64, price: i64, qty: i64, aggressor: Side) {
        self.venue.advance(t, &self.book);
        self.venue.on_trade(t, &trade(price, qty, aggressor));
        self.poll(t);
    }

    fn poll(&mut self, t: u64) {
        let events = &mut self.events;
        self.venue.poll_events(t, &mut |e| events.push((t, e)));
    }

    /// Drains everything still due (far future).
    fn finish(&mut self) {
        let end = 1_000_000 * MS;
        self.venue.advance(end, &self.book);
        self.poll(end);
    }

    fn fills(&self) -> Vec<(u64, i64, i64)> {
        self.events
            .iter()
            .filter_map(|(_, e)| match *e {
                VenueEvent::Fill {
                    id, qty, cum_qty, ..
                } => Some((id.0, qty.0, cum_qty.0)),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn queue_ahead_is_consumed_by_trades_then_fills() {
    let mut b = Bench::new(0);
    b.submit(0, place(1, Side::Buy, P, 20));
    // Arrives at 2 ms behind the 50 lots displayed at P; acked at 5 ms.
    b.trade(2 * MS, P, 30, Side::Sell); // queue 50 → 20
    assert_eq!(b.venue.resting().next().unwrap().queue_ahead, Qty(20));
    b.trade(3 * MS, P, 25, Side::Sell); // 20 finish the queue, 5 fill us
    b.trade(4 * MS, P, 100, Side::Sell); // the other 15
    b.finish();
    assert_eq!(b.fills(), vec![(1, 5, 5), (1, 15, 20)]);
    let (t_ack, ack) = b.events[0];
    assert_eq!(
        ack,
        VenueEvent::Accepted {
            id: ClientOrderId(1),
            exch_ts_ms: 2
        }
    );
    assert!(t_ack >= ENTRY_NS + ACK_NS);
    assert_eq!(b.venue.stats().position_lots, 20);
    // 0.0002 BTC at 60,000 = 12 USDT paid.
    assert_eq!(b.venue.stats().cash_atoms, -1_200_000_000);
    assert_eq!(b.venue.resting().count(), 0);
}

#[test]
fn trade_through_fills_regardless_of_queue() {
    let mut b = Bench::new(0);
    b.submit(0, place(1, Side::Buy, P, 20));
    b.submit(0, place(2, Side::Sell, P + 5, 20));
    // A sell prints one tick below our bid: 7 lots went through our price.
    b.trade(3 * MS, P - 1, 7, Side::Sell);
    // A buy prints above our ask (any aggressor fills a through order).
    b.trade(4 * MS, P + 6, 100, Side::Sell);
    b.trade(5 * MS, P - 2, 100, Side::Buy);
    b.finish();
    assert_eq!(b.fills(), vec![(1, 7, 7), (2, 20, 20), (1, 13, 20)]);
    assert_eq!(b.venue.stats().position_lots, 0);
}

#[test]
fn no_fill_when_only_touched_with_queue_ahead() {
    let mut b = Bench::new(0);
    b.submit(0, place(1, Side::Buy, P, 20));
    b.trade(3 * MS, P, 49, Side::Sell); // 1 lot still ahead
    b.trade(4 * MS, P, 500, Side::Buy); // at our price, but a buyer took an ask
    b.trade(5 * MS, P + 2, 500, Side::Buy); // above our bid: not ours
    b.level(6 * MS, Side::Buy, P, 0); // the level empties on the book: no cancels model
    b.finish();
    assert!(b.fills().is_empty());
    assert_eq!(b.venue.resting().next().unwrap().queue_ahead, Qty(1));
}

#[test]
fn queue_cancels_move_us_up_when_enabled() {
    let params = SimParams {
        entry_latency: LatencyModel::Constant { ns: 0 },
        ack_latency: LatencyModel::Constant { ns: 0 },
        queue_cancels: true,
        ..SimParams::default()
    };
    let mut book = Book::new(8);
    book.apply(
        Side::Buy,
        Level {
            price: Price(P),
            qty: Qty(50),
        },
    );
    let mut v = SimVenue::new(params, spec()).unwrap();
    v.submit(0, &place(1, Side::Buy, P, 20)).unwrap();
    v.advance(0, &book);
    book.apply(
        Side::Buy,
        Level {
            price: Price(P),
            qty: Qty(10),
        },
    );
    v.on_book_change(1, &book);
    assert_eq!(v.resting().next().unwrap().queue_ahead, Qty(10));
    v.on_trade(2, &trade(P, 15, Side::Sell));
    assert_eq!(v.stats().position_lots, 5);
}

#[test]
fn partial_fills_at_a_new_level() {
    let mut b = Bench::new(1_000); // 10 bps maker fee
    b.submit(0, place(1, Side::Buy, P + 1, 20)); // a new level: nothing ahead
    b.trade(3 * MS, P + 1, 7, Side::Sell);
    b.trade(4 * MS, P + 1, 6, Side::Sell);
    b.finish();
    assert_eq!(b.fills(), vec![(1, 7, 7), (1, 6, 13)]);
    let order = b.venue.resting().next().unwrap();
    assert_eq!((order.filled, order.qty), (Qty(13), Qty(20)));
    // 0.00007 BTC × 60,000.01 = 4.2000007 USDT; fee 10 bps = 0.00420000 (truncated).
    let fee_first = match b
        .events
        .iter()
        .find(|(_, e)| matches!(e, VenueEvent::Fill { .. }))
    {
        Some((
            _,
            VenueEvent::Fill {
                fee_quote_atoms, ..
            },
        )) => *fee_quote_atoms,
        _ => unreachable!(),
    };
    assert_eq!(fee_first, 420_000);
}

#[test]
fn limit_maker_crossing_at_arrival_is_rejected() {
    let mut b = Bench::new(0);
    // At submit the best ask is P+2: a bid at P+1 does not cross.
    b.submit(0, place(1, Side::Buy, P + 1, 20));
    // Before it arrives (2 ms) the ask drops to P+1.
    b.level(MS, Side::Sell, P + 1, 10);
    // And a bid at P+2 crossing at submit, sent when the ask is at P+1 …
    b.submit(MS, place(2, Side::Buy, P + 2, 20));
    // … arrives (3 ms) after the ask went up to P+3: it rests.
    b.level(2_500_000, Side::Sell, P + 1, 0);
    b.level(2_600_000, Side::Sell, P + 2, 0);
    b.level(2_700_000, Side::Sell, P + 3, 10);
    // The reject is reported one ack latency after the arrival (2 + 3 ms), not before.
    b.venue.advance(5 * MS - 1, &b.book);
    b.poll(5 * MS - 1);
    assert!(b.events.is_empty());
    b.poll(5 * MS);
    assert_eq!(b.events.len(), 1);
    assert_eq!(b.events[0].0, 5 * MS);
    b.finish();
    let answers: Vec<VenueEvent> = b.events.iter().map(|(_, e)| *e).collect();
    assert_eq!(
        answers,
        vec![
            VenueEvent::Rejected {
                id: ClientOrderId(1),
                code: -2010
            },
            VenueEvent::Accepted {
                id: ClientOrderId(2),
                exch_ts_ms: 3
            },
        ]
    );
    assert_eq!(b.venue.next_due_ns(), None);
}

/// The venue and the order manager wired as the engine does, on a hand-built timeline.
struct Wired {
    bench: Bench,
    orders: OrderManager,
    risk: Risk,
}

impl Wired {
    fn new() -> Wired {
        let mut risk = Risk::new(RiskLimits::default(), spec()).unwrap();
        risk.on_market_data(0);
        let params = OrderParams {
            min_rest_ms: 0,
            ..OrderParams::default()
        };
        Wired {
            bench: Bench::new(0),
            orders: OrderManager::new(params, spec()).unwrap(),
            risk,
        }
    }

    fn quote(&mut self, t: u64, bid: Option<i64>, qty: i64) {
        self.sync(t);
        let mut out = Outbox::new();
        let bid = bid.map(|price| QuoteLevel {
            price: Price(price),
            qty: Qty(qty),
        });
        self.orders.on_target(t, bid, None, &self.risk, &mut out);
        for action in out.as_slice() {
            self.bench.venue.submit(t, action).unwrap();
        }
    }

    fn sync(&mut self, t: u64) {
        self.bench.venue.advance(t, &self.bench.book);
        let orders = &mut self.orders;
        self.bench.venue.poll_events(t, &mut |e| {
            orders.on_venue_event(t, &e);
        });
    }

    fn trade(&mut self, t: u64, price: i64, qty: i64) {
        self.bench.venue.advance(t, &self.bench.book);
        self.bench.venue.on_trade(t, &trade(price, qty, Side::Sell));
        self.sync(t);
    }
}

#[test]
fn cancel_racing_a_full_fill_is_rejected_and_the_fill_counts() {
    let mut w = Wired::new();
    w.quote(0, Some(P + 1), 20); // new level, arrives at 2 ms
    w.sync(6 * MS);
    assert_eq!(
        w.orders.order(ClientOrderId(1)).unwrap().state,
        OrderState::Live
    );
    w.quote(10 * MS, None, 0); // Cancel sent at 10 ms, arrives at 12 ms
    w.trade(11 * MS, P + 1, 50); // fills all 20 before the cancel arrives
    w.sync(100 * MS);
    let order = *w.orders.order(ClientOrderId(1)).unwrap();
    assert_eq!(order.state, OrderState::Filled);
    assert_eq!(w.orders.position().inventory, Qty(20));
    assert_eq!(w.orders.stats().cancel_rejects, 1);
    assert_eq!(w.orders.stats().events_no_change, 1); // the reject changed nothing
    assert_eq!(w.bench.venue.stats().cancel_rejected, 1);
    assert_eq!(w.orders.open_orders(), 0);
}

#[test]
fn cancel_racing_a_partial_fill_cancels_the_rest() {
    let mut w = Wired::new();
    w.quote(0, Some(P + 1), 20);
    w.sync(6 * MS);
    w.quote(10 * MS, None, 0);
    w.trade(11 * MS, P + 1, 8);
    w.sync(100 * MS);
    let order = *w.orders.order(ClientOrderId(1)).unwrap();
    assert_eq!(order.state, OrderState::Canceled { filled: Qty(8) });
    assert_eq!(w.orders.position().inventory, Qty(8));
    assert_eq!(
        w.orders.position().cash_atoms,
        w.bench.venue.stats().cash_atoms
    );
}

// ---------------------------------------------------------------------------------------
// Replay of real data
// ---------------------------------------------------------------------------------------

/// The bundled real capture, committed in the repo.
const FILE: &str = "tools/data/btcusdt_20240808.gz";

/// What the replay saw, compared across runs.
#[derive(Debug, PartialEq)]
struct Replay {
    events: Vec<(u64, VenueEvent)>,
    actions: Vec<(u64, Action)>,
    venue: SimStats,
    inventory: Qty,
    cash_atoms: i64,
    lines: u64,
}

/// The market as the venue sees it: the synced book with a fresher bookTicker on top, the
/// ticker alone before the book is synced.
struct View<'a> {
    book: Option<(&'a Book, u64)>,
    ticker: Option<&'a BookTicker>,
}

impl MarketView for View<'_> {
    fn best(&self, side: Side) -> Option<Level> {
        match (self.book, self.ticker) {
            (Some((book, id)), ticker) => BookWithTicker {
                book,
                book_update_id: id,
                ticker,
            }
            .best(side),
            (None, Some(ticker)) => ticker.best(side),
            (None, None) => None,
        }
    }

    fn displayed_at(&self, side: Side, price: Price) -> Qty {
        match (self.book, self.ticker) {
            (Some((book, id)), ticker) => BookWithTicker {
                book,
                book_update_id: id,
                ticker,
            }
            .displayed_at(side, price),
            (None, Some(ticker)) => ticker.displayed_at(side, price),
            (None, None) => Qty(0),
        }
    }
}

fn view<'a>(synced: &'a SyncedBook, ticker: Option<&'a BookTicker>) -> View<'a> {
    let book = match synced.state() {
        SyncState::Live { final_update_id } => Some((synced.book_any_state(), final_update_id)),
        _ => None,
    };
    View { book, ticker }
}

/// Quotes the touch (best bid, best ask, 0.001 BTC each) over the recorded session.
fn replay(path: &Path, sim: SimParams) -> Replay {
    let spec = spec();
    let mut decoder = Decoder::new(spec);
    let mut synced = SyncedBook::new(BOOK_LEVELS_PER_SIDE_DEFAULT);
    let mut ticker: Option<BookTicker> = None;
    let mut venue = SimVenue::new(sim, spec).unwrap();
    let mut orders = OrderManager::new(OrderParams::default(), spec).unwrap();
    let mut risk = Risk::new(RiskLimits::default(), spec).unwrap();
    let mut out = Outbox::new();
    let mut log = Replay {
        events: Vec::new(),
        actions: Vec::new(),
        venue: SimStats::default(),
        inventory: Qty(0),
        cash_atoms: 0,
        lines: 0,
    };
    let mut reader = BufReader::new(GzDecoder::new(File::open(path).unwrap()));
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).unwrap() == 0 {
            break;
        }
        log.lines += 1;
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let space = text.iter().position(|&b| b == b' ').unwrap();
        let t: u64 = std::str::from_utf8(&text[..space])
            .unwrap()
            .parse()
            .unwrap();
        let event = decoder.decode(&text[space + 1..], t).unwrap();

        // 1. Orders due by now meet the market before this event.
        venue.advance(t, &view(&synced, ticker.as_ref()));
        // 2. The event.
        let mut book_changed = false;
        match event {
            Event::Snapshot(s) => {
                synced.on_snapshot(&s, decoder.snapshot_levels(&s)).unwrap();
                book_changed = true;
            }
            Event::Depth(d) => {
                let levels: BookLevels<'_> = decoder.diff_levels(&d);
                if let DiffOutcome::Applied(_) = synced.on_diff(&d, levels).unwrap() {
                    book_changed = true;
                }
            }
            Event::BookTicker(b) => {
                ticker = Some(b);
                book_changed = true;
            }
            Event::Trade(trade) => venue.on_trade(t, &trade),
        }
        if book_changed {
            venue.on_book_change(t, &view(&synced, ticker.as_ref()));
        }
        risk.on_market_data(t);
        // 3. Reports due by now.
        venue.poll_events(t, &mut |e| {
            orders.on_venue_event(t, &e);
            log.events.push((t, e));
        });
        // 4. Quote the touch.
        let market = view(&synced, ticker.as_ref());
        let side = |side: Side| {
            market.best(side).map(|level| QuoteLevel {
                price: level.price,
                qty: Qty(100),
            })
        };
        let (bid, ask) = (side(Side::Buy), side(Side::Sell));
        out.clear();
        orders.on_target(t, bid, ask, &risk, &mut out);
        for action in out.as_slice() {
            log.actions.push((t, *action));
            if venue.submit(t, action).is_err() {
                orders.on_send_failed(t, action);
            }
        }
    }
    // Drain: everything in flight arrives and is reported.
    let end = u64::MAX / 2;
    venue.advance(end, &view(&synced, ticker.as_ref()));
    venue.poll_events(end, &mut |e| {
        orders.on_venue_event(end, &e);
        log.events.push((end, e));
    });

    // Open orders agree: every resting order is open in the manager, and every open
    // order of the manager rests (nothing is in flight any more).
    let resting: Vec<ClientOrderId> = venue.resting().map(|o| o.id).collect();
    for id in &resting {
        let state = orders.order(*id).unwrap().state;
        assert!(state.is_working(), "{id:?} rests but is {state:?}");
    }
    let open: Vec<ClientOrderId> = orders
        .orders()
        .filter(|o| !o.state.is_finished())
        .map(|o| o.id)
        .collect();
    assert_eq!(
        open.len(),
        resting.len(),
        "open {open:?} resting {resting:?}"
    );

    log.venue = *venue.stats();
    log.inventory = orders.position().inventory;
    log.cash_atoms = orders.position().cash_atoms;
    log
}

fn check_invariants(run: &Replay, entry_min_ns: u64, ack_min_ns: u64) {
    // Inventory = Σ signed fills = the venue's position; cash agrees too.
    let mut sent: HashMap<u64, (u64, Approved)> = HashMap::new();
    for (t, action) in &run.actions {
        match *action {
            Action::Place { id, order } => {
                sent.insert(id.0, (*t, order));
            }
            Action::CancelReplace { new_id, order, .. } => {
                sent.insert(new_id.0, (*t, order));
            }
            _ => {}
        }
    }
    let mut signed = 0i64;
    let mut fills = 0u64;
    for (t_seen, event) in &run.events {
        if let VenueEvent::Fill {
            id,
            price,
            qty,
            exch_ts_ms,
            ..
        } = *event
        {
            fills += 1;
            let (t_sent, order) = sent[&id.0];
            signed += order.side().sign() * qty.0;
            match order.side() {
                Side::Buy => assert!(price <= order.price(), "buy filled above its price"),
                Side::Sell => assert!(price >= order.price(), "sell filled below its price"),
            }
            // Matched no earlier than arrival, seen no earlier than arrival + ack.
            assert!(
                exch_ts_ms * MS + MS > t_sent + entry_min_ns,
                "fill before arrival"
            );
            assert!(
                *t_seen >= t_sent + entry_min_ns + ack_min_ns,
                "fill seen too early"
            );
        }
    }
    assert_eq!(fills, run.venue.fills);
    assert_eq!(run.inventory, Qty(signed));
    assert_eq!(run.inventory.0, run.venue.position_lots);
    assert_eq!(run.cash_atoms, run.venue.cash_atoms);
}

#[test]
fn replay_of_real_data_keeps_the_invariants_and_is_deterministic() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(FILE);
    assert!(path.is_file(), "{} missing", path.display());

    let constant = SimParams {
        entry_latency: LatencyModel::Constant { ns: ENTRY_NS },
        ack_latency: LatencyModel::Constant { ns: ACK_NS },
        maker_fee_centibps: 750,
        queue_cancels: false,
        seed: 1,
    };
    let first = replay(&path, constant);
    check_invariants(&first, ENTRY_NS, ACK_NS);
    println!(
        "replay {}: {} lines, {} actions, {} events, venue {:?}",
        FILE,
        first.lines,
        first.actions.len(),
        first.events.len(),
        first.venue
    );
    assert!(first.venue.accepted > 0);
    assert!(
        first.venue.fills > 0,
        "quoting the touch for 10 minutes must fill"
    );
    assert_eq!(first.venue.fills_skipped, 0);
    assert_eq!(first.venue.reports_dropped, 0);
    assert_eq!(first.venue.refused, 0);
    assert_eq!(replay(&path, constant), first, "second run differs");

    let random = SimParams {
        entry_latency: LatencyModel::LogNormal {
            median_ns: 3 * MS,
            sigma_milli: 600,
            max_ns: 50 * MS,
        },
        ack_latency: LatencyModel::Uniform {
            min_ns: MS,
            max_ns: 4 * MS,
        },
        queue_cancels: true,
        seed: 42,
        ..constant
    };
    let a = replay(&path, random);
    check_invariants(&a, 0, MS);
    assert_eq!(replay(&path, random), a, "second seeded run differs");
    let other_seed = replay(&path, SimParams { seed: 43, ..random });
    assert_ne!(other_seed.events, a.events, "the seed should matter");
}
