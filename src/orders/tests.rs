//! Unit tests of the order manager: ids, the state machine, the quote → action rules,
//! position and cash from fills, rate limits.

use super::*;
use crate::risk::{RiskLimits, StopReason};
use crate::types::Symbol;
use proptest::prelude::*;

const MS: u64 = 1_000_000;
const T0: u64 = 1_000 * NS_PER_S;

fn spec() -> SymbolSpec {
    SymbolSpec::from_decimals(Symbol::new("BTCUSDT").unwrap(), "0.01", "0.00001", "5").unwrap()
}

fn risk() -> Risk {
    let mut r = Risk::new(RiskLimits::default(), spec()).unwrap();
    r.on_market_data(T0);
    r
}

fn manager(params: OrderParams) -> OrderManager {
    OrderManager::new(params, spec()).unwrap()
}

fn level(price: i64, qty: i64) -> Option<QuoteLevel> {
    Some(QuoteLevel {
        price: Price(price),
        qty: Qty(qty),
    })
}

fn run(
    m: &mut OrderManager,
    now: u64,
    bid: Option<QuoteLevel>,
    ask: Option<QuoteLevel>,
    r: &Risk,
) -> Vec<Action> {
    let mut out = Outbox::new();
    m.on_target(now, bid, ask, r, &mut out);
    out.as_slice().to_vec()
}

fn ack(m: &mut OrderManager, id: ClientOrderId) {
    m.on_venue_event(T0, &VenueEvent::Accepted { id, exch_ts_ms: 0 });
}

fn fill(id: u64, price: i64, qty: i64, cum: i64, fee: i64) -> VenueEvent {
    VenueEvent::Fill {
        id: ClientOrderId(id),
        price: Price(price),
        qty: Qty(qty),
        cum_qty: Qty(cum),
        fee_quote_atoms: fee,
        is_maker: true,
        exch_ts_ms: 0,
        trade_id: 1,
    }
}

fn placed_id(action: &Action) -> ClientOrderId {
    match *action {
        Action::Place { id, .. } => id,
        Action::CancelReplace { new_id, .. } => new_id,
        other => panic!("not a new order: {other:?}"),
    }
}

// -- re-quote band --------------------------------------------------------------------

#[test]
fn an_order_inside_the_requote_band_keeps_its_place() {
    let r = risk();
    let mut m = manager(OrderParams::default()); // tolerance 2 ticks, min rest 500 ms
    let first = run(&mut m, T0, level(6_000_000, 100), None, &r);
    let id = placed_id(&first[0]);
    ack(&mut m, id);
    let later = T0 + 1_000 * MS;
    // The target moved 50 ticks: with a 60-tick band the order stays (no action) …
    let mut out = Outbox::new();
    m.on_target_within(later, level(6_000_050, 100), None, 60, &r, &mut out);
    assert!(out.is_empty(), "{:?}", out.as_slice());
    // … either way (a more aggressive order within the band is kept too) …
    m.on_target_within(later, level(5_999_950, 100), None, 60, &r, &mut out);
    assert!(out.is_empty(), "{:?}", out.as_slice());
    // … and without the band (the 2-tick tolerance alone) it is replaced.
    m.on_target_within(later, level(6_000_050, 100), None, 0, &r, &mut out);
    assert!(
        matches!(out.as_slice(), [Action::CancelReplace { .. }]),
        "{:?}",
        out.as_slice()
    );
}

#[test]
fn an_order_behind_its_target_keeps_its_place_longer() {
    let r = risk();
    let params = OrderParams {
        behind_band_factor: 3,
        ..OrderParams::default()
    };
    let later = T0 + 1_000 * MS;
    for (side, sign) in [(Side::Buy, 1), (Side::Sell, -1)] {
        let target = |ticks: i64| level(6_000_000 + sign * ticks, 100);
        let quote = |m: &mut OrderManager, ticks: i64, band: i64| {
            // The first order is placed at T0, the moves come later than its minimum rest.
            let now = if m.open_orders() == 0 { T0 } else { later };
            let mut out = Outbox::new();
            match side {
                Side::Buy => m.on_target_within(now, target(ticks), None, band, &r, &mut out),
                Side::Sell => m.on_target_within(now, None, target(ticks), band, &r, &mut out),
            }
            out.as_slice().to_vec()
        };
        let mut m = manager(params);
        let first = quote(&mut m, 0, 0);
        ack(&mut m, placed_id(&first[0]));
        // The market moved away: the target is 50 ticks more aggressive than the order,
        // which is now 50 behind; a 20-tick band × 3 keeps it (its queue place) …
        assert!(quote(&mut m, 50, 20).is_empty(), "{side:?}");
        // … up to 60 ticks behind …
        assert!(quote(&mut m, 60, 20).is_empty(), "{side:?}");
        assert!(
            matches!(
                quote(&mut m, 61, 20).as_slice(),
                [Action::CancelReplace { .. }]
            ),
            "{side:?}"
        );
        // … while an order 21 ticks more aggressive than its target is replaced at once.
        let mut m = manager(params);
        let first = quote(&mut m, 0, 0);
        ack(&mut m, placed_id(&first[0]));
        assert!(quote(&mut m, -20, 20).is_empty(), "{side:?}");
        assert!(
            matches!(
                quote(&mut m, -21, 20).as_slice(),
                [Action::CancelReplace { .. }]
            ),
            "{side:?}"
        );
        // The default factor 1 is the symmetric band.
        let mut m = manager(OrderParams::default());
        let first = quote(&mut m, 0, 0);
        ack(&mut m, placed_id(&first[0]));
        assert!(
            matches!(
                quote(&mut m, 21, 20).as_slice(),
                [Action::CancelReplace { .. }]
            ),
            "{side:?}"
        );
    }
    let bad = OrderParams {
        behind_band_factor: 0,
        ..OrderParams::default()
    };
    assert_eq!(bad.validate(), Err(OrderParamsError::BehindBandFactor));
}

// -- ids -----------------------------------------------------------------------------

#[test]
fn client_order_ids_round_trip_and_match_binance_pattern() {
    let tag = SessionTag::new("sA3k2q").unwrap();
    let mut buf = [0u8; CLIENT_ORDER_ID_LEN_MAX];
    for seq in [0u64, 1, 42, 999_999, u64::MAX] {
        let len = ClientOrderId(seq).write_wire(&tag, &mut buf);
        let text = &buf[..len];
        assert!(len <= CLIENT_ORDER_ID_LEN_MAX);
        assert!(text
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_'));
        assert_eq!(
            ClientOrderId::parse_wire(text, &tag),
            Ok(ClientOrderId(seq))
        );
    }
    let len = ClientOrderId(42).write_wire(&tag, &mut buf);
    assert_eq!(&buf[..len], b"mmsA3k2q-42");
    let long = SessionTag::from_number(u64::MAX);
    assert_eq!(long.as_bytes().len(), SESSION_TAG_LEN_MAX);
    let len = ClientOrderId(u64::MAX).write_wire(&long, &mut buf);
    assert_eq!(len, 35);
    assert_eq!(SessionTag::from_number(0).as_bytes(), b"0");
    assert_eq!(SessionTag::from_number(36 * 36 + 35).as_bytes(), b"10z");
}

#[test]
fn foreign_and_malformed_ids_are_refused() {
    let tag = SessionTag::new("abc").unwrap();
    let parse = |s: &str| ClientOrderId::parse_wire(s.as_bytes(), &tag);
    assert_eq!(parse("mmabd-1"), Err(IdError::OtherSession));
    assert_eq!(parse("web_abc123"), Err(IdError::OtherSession));
    assert_eq!(parse("mmabc1"), Err(IdError::OtherSession));
    assert_eq!(parse("mmabc-"), Err(IdError::Malformed));
    assert_eq!(parse("mmabc-01"), Err(IdError::Malformed));
    assert_eq!(parse("mmabc-1x"), Err(IdError::Malformed));
    assert_eq!(parse("mmabc-18446744073709551616"), Err(IdError::Malformed));
    assert_eq!(parse(""), Err(IdError::Empty));
    assert_eq!(SessionTag::new("a-b"), Err(IdError::InvalidChar));
    assert_eq!(SessionTag::new("abcdefghijklm"), Err(IdError::TooLong));
}

// -- reconciliation ------------------------------------------------------------------

#[test]
fn forgotten_orders_book_no_late_fill() {
    let mut m = manager(OrderParams::default());
    let r = risk();
    let placed = run(&mut m, T0, level(6_000_000, 100), level(6_000_100, 100), &r);
    assert_eq!(placed.len(), 2);
    let (bid, ask) = (placed_id(&placed[0]), placed_id(&placed[1]));
    ack(&mut m, bid);
    m.on_venue_event(T0, &fill(bid.0, 6_000_000, 40, 40, 0));
    assert_eq!(m.position().inventory, Qty(40));
    // Reconciliation: the balances hold every fill; both orders leave the table.
    assert_eq!(m.forget_open(), 2);
    assert_eq!(m.open_orders(), 0);
    assert!(m.order(ask).is_none());
    // A report of a fill made before the cancel-all, arriving late, books nothing.
    let out = m.on_venue_event(T0, &fill(bid.0, 6_000_000, 60, 100, 0));
    assert_eq!(out, EventOutcome::Unknown);
    assert_eq!(m.position().inventory, Qty(40));
    assert_eq!(m.forget_open(), 0, "nothing left to forget");
}

#[test]
fn a_refused_cancel_all_cancels_again_order_by_order() {
    let mut m = manager(OrderParams::default());
    let mut r = risk();
    let placed = run(&mut m, T0, level(6_000_000, 100), level(6_000_100, 100), &r);
    for a in &placed {
        ack(&mut m, placed_id(a));
    }
    r.pause(StopReason::StaleData);
    let t = T0 + 10 * MS;
    assert_eq!(
        run(&mut m, t, level(6_000_000, 100), level(6_000_100, 100), &r),
        [Action::CancelAll]
    );
    assert_eq!(m.oldest_pending_cancel_ns(), Some(t));
    // The exchange refused it (not -2011): the orders are working again...
    m.on_cancel_all_refused(t + MS, -1001);
    assert_eq!(m.oldest_pending_cancel_ns(), None);
    assert_eq!(m.open_orders(), 2);
    // ...and the next quote while stopped cancels them again.
    let again = run(
        &mut m,
        t + 2 * MS,
        level(6_000_000, 100),
        level(6_000_100, 100),
        &r,
    );
    assert!(!again.is_empty(), "cancels again");
    assert!(again
        .iter()
        .all(|a| matches!(a, Action::CancelAll | Action::Cancel { .. })));
    assert_eq!(m.oldest_pending_cancel_ns(), Some(t + 2 * MS));
}

// -- state machine -------------------------------------------------------------------

const SIZE: Qty = Qty(10);

#[test]
fn happy_path() {
    let s = OrderState::PendingNew.on_ack().unwrap();
    assert_eq!(s, OrderState::Live);
    let s = s.on_fill(Qty(4), SIZE).unwrap();
    assert_eq!(s, OrderState::PartiallyFilled { filled: Qty(4) });
    let s = s.on_fill(Qty(10), SIZE).unwrap();
    assert_eq!(s, OrderState::Filled);
}

#[test]
fn fill_before_ack_then_late_ack() {
    let s = OrderState::PendingNew.on_fill(Qty(3), SIZE).unwrap();
    assert_eq!(s, OrderState::PartiallyFilled { filled: Qty(3) });
    assert_eq!(s.on_ack(), Ok(s));
    let s = OrderState::PendingNew.on_fill(SIZE, SIZE).unwrap();
    assert_eq!(s.on_ack(), Ok(OrderState::Filled));
}

#[test]
fn cancel_ack_after_full_fill_is_ignored() {
    let s = OrderState::Live
        .on_cancel_request(CancelVia::Cancel)
        .unwrap()
        .on_fill(SIZE, SIZE)
        .unwrap();
    assert_eq!(s, OrderState::Filled);
    assert_eq!(s.on_canceled(), Ok(OrderState::Filled));
    assert_eq!(s.on_cancel_rejected(-2011), Ok(OrderState::Filled));
}

#[test]
fn fill_after_cancel_request_and_after_cancel_still_counts() {
    let s = OrderState::Live
        .on_cancel_request(CancelVia::Cancel)
        .unwrap();
    let s = s.on_fill(Qty(2), SIZE).unwrap();
    assert_eq!(
        s,
        OrderState::PendingCancel {
            acked: true,
            filled: Qty(2),
            via: CancelVia::Cancel
        }
    );
    let s = s.on_canceled().unwrap();
    assert_eq!(s, OrderState::Canceled { filled: Qty(2) });
    // A fill report that arrives after the cancel confirmation.
    let s = s.on_fill(Qty(5), SIZE).unwrap();
    assert_eq!(s, OrderState::Canceled { filled: Qty(5) });
    assert_eq!(s.filled(SIZE), Qty(5));
}

#[test]
fn duplicates_are_idempotent() {
    let s = OrderState::PendingNew.on_ack().unwrap();
    assert_eq!(s.on_ack(), Ok(s));
    let s = s.on_fill(Qty(4), SIZE).unwrap();
    assert_eq!(s.on_fill(Qty(4), SIZE), Ok(s));
    assert_eq!(s.on_fill(Qty(3), SIZE), Ok(s));
    let c = s.on_canceled().unwrap();
    assert_eq!(c.on_canceled(), Ok(c));
    let r = OrderState::PendingNew.on_rejected(-2010).unwrap();
    assert_eq!(r.on_rejected(-2010), Ok(r));
}

#[test]
fn cancel_rejects_go_back_or_vanish() {
    let pc = OrderState::PartiallyFilled { filled: Qty(3) }
        .on_cancel_request(CancelVia::Cancel)
        .unwrap();
    assert_eq!(
        pc.on_cancel_rejected(-1003),
        Ok(OrderState::PartiallyFilled { filled: Qty(3) })
    );
    assert_eq!(
        pc.on_cancel_rejected(CODE_UNKNOWN_ORDER),
        Ok(OrderState::Vanished { filled: Qty(3) })
    );
    let pn = OrderState::PendingNew
        .on_cancel_request(CancelVia::All)
        .unwrap();
    assert_eq!(
        pn.on_cancel_rejected(CODE_NOT_SENT),
        Ok(OrderState::PendingNew)
    );
    // A vanished order's fill report completes it.
    let v = pc.on_cancel_rejected(-2011).unwrap();
    assert_eq!(v.on_fill(SIZE, SIZE), Ok(OrderState::Filled));
    // A rejected order that we had asked to cancel (cancel-all before the reject).
    assert_eq!(
        pn.on_rejected(-2010),
        Ok(OrderState::Rejected { code: -2010 })
    );
}

#[test]
fn impossible_events_are_errors() {
    let r = OrderState::Rejected { code: -2010 };
    assert_eq!(r.on_ack(), Err(TransitionError::AckAfterReject));
    assert_eq!(
        r.on_fill(Qty(1), SIZE),
        Err(TransitionError::FillAfterReject)
    );
    assert_eq!(
        OrderState::Live.on_rejected(-2010),
        Err(TransitionError::RejectAfterAck)
    );
    assert_eq!(
        OrderState::Live.on_fill(Qty(11), SIZE),
        Err(TransitionError::Overfill)
    );
    assert_eq!(
        OrderState::Filled.on_cancel_request(CancelVia::Cancel),
        Err(TransitionError::NotOpen)
    );
    let pc = OrderState::Live
        .on_cancel_request(CancelVia::Cancel)
        .unwrap();
    assert_eq!(
        pc.on_cancel_request(CancelVia::All),
        Err(TransitionError::AlreadyCanceling)
    );
}

// -- manager -------------------------------------------------------------------------

#[test]
fn places_both_sides_then_keeps_them_within_tolerance() {
    let r = risk();
    let mut m = manager(OrderParams::default());
    let a = run(&mut m, T0, level(6_000_000, 100), level(6_000_100, 100), &r);
    assert_eq!(a.len(), 2);
    assert!(matches!(a[0], Action::Place { order, .. } if order.side() == Side::Buy));
    assert!(matches!(a[1], Action::Place { order, .. } if order.side() == Side::Sell));
    ack(&mut m, placed_id(&a[0]));
    ack(&mut m, placed_id(&a[1]));
    // Long after min rest: targets 2 ticks away (= tolerance) change nothing.
    let later = T0 + NS_PER_S;
    let a = run(
        &mut m,
        later,
        level(6_000_002, 100),
        level(6_000_098, 100),
        &r,
    );
    assert!(a.is_empty(), "{a:?}");
    // 3 ticks away: replace.
    let a = run(
        &mut m,
        later,
        level(6_000_003, 100),
        level(6_000_100, 100),
        &r,
    );
    assert_eq!(a.len(), 1);
    match a[0] {
        Action::CancelReplace {
            cancel_id,
            new_id,
            order,
        } => {
            assert_eq!(cancel_id, ClientOrderId(1));
            assert_eq!(new_id, ClientOrderId(3));
            assert_eq!(order.price(), Price(6_000_003));
        }
        other => panic!("{other:?}"),
    }
    // A size change inside the price tolerance is a replace too.
    let a = run(
        &mut m,
        later,
        level(6_000_003, 100),
        level(6_000_100, 200),
        &r,
    );
    assert!(matches!(
        a[..],
        [Action::CancelReplace {
            cancel_id: ClientOrderId(2),
            ..
        }]
    ));
    assert_eq!(m.stats().orders_placed, 4);
    assert_eq!(m.stats().replaces_sent, 2);
}

#[test]
fn min_rest_time_holds_replacements_but_not_disappearing_targets() {
    let r = risk();
    let mut m = manager(OrderParams::default()); // 500 ms
    let a = run(&mut m, T0, level(6_000_000, 100), level(6_000_100, 100), &r);
    assert_eq!(a.len(), 2);
    // 499 ms later: new prices, but too young to replace.
    let a = run(
        &mut m,
        T0 + 499 * MS,
        level(6_000_050, 100),
        level(6_000_150, 100),
        &r,
    );
    assert!(a.is_empty());
    assert_eq!(m.stats().held_min_rest, 2);
    // The ask target disappears: cancelled at once, however young.
    let a = run(&mut m, T0 + 499 * MS, level(6_000_050, 100), None, &r);
    assert_eq!(
        a,
        vec![Action::Cancel {
            id: ClientOrderId(2)
        }]
    );
    // At 500 ms the bid is replaced; the ask side waits for its cancel (1 per side).
    let a = run(
        &mut m,
        T0 + 500 * MS,
        level(6_000_050, 100),
        level(6_000_150, 100),
        &r,
    );
    assert!(matches!(
        a[..],
        [Action::CancelReplace {
            cancel_id: ClientOrderId(1),
            ..
        }]
    ));
    assert_eq!(m.stats().held_side_full, 1);
    m.on_venue_event(
        T0,
        &VenueEvent::Canceled {
            id: ClientOrderId(2),
        },
    );
    let a = run(
        &mut m,
        T0 + 501 * MS,
        level(6_000_050, 100),
        level(6_000_150, 100),
        &r,
    );
    assert!(matches!(a[..], [Action::Place { order, .. }] if order.side() == Side::Sell));
}

#[test]
fn kill_switch_sends_cancel_all_once_and_nothing_after() {
    let mut r = risk();
    let mut m = manager(OrderParams::default());
    // A fresh manager under a stopped risk sends nothing.
    let stale = Risk::new(RiskLimits::default(), spec()).unwrap();
    assert!(run(&mut m, T0, level(6_000_000, 100), None, &stale).is_empty());
    let a = run(&mut m, T0, level(6_000_000, 100), level(6_000_100, 100), &r);
    assert_eq!(a.len(), 2);
    ack(&mut m, ClientOrderId(1));
    r.trip(StopReason::MaxLoss);
    let a = run(
        &mut m,
        T0 + MS,
        level(6_000_000, 100),
        level(6_000_100, 100),
        &r,
    );
    assert_eq!(a, vec![Action::CancelAll]);
    for i in 2..10 {
        let a = run(
            &mut m,
            T0 + i * MS,
            level(6_000_000, 100),
            level(6_000_100, 100),
            &r,
        );
        assert!(a.is_empty());
    }
    assert_eq!(m.stats().cancel_alls_sent, 1);
    assert!(m.orders().all(|o| matches!(
        o.state,
        OrderState::PendingCancel {
            via: CancelVia::All,
            ..
        }
    )));
    // A transient cancel reject makes an order working again: cancelled on its own.
    m.on_venue_event(
        T0,
        &VenueEvent::CancelRejected {
            id: ClientOrderId(1),
            code: -1003,
        },
    );
    let a = run(&mut m, T0 + 20 * MS, level(6_000_000, 100), None, &r);
    assert_eq!(
        a,
        vec![Action::Cancel {
            id: ClientOrderId(1)
        }]
    );
    m.on_venue_event(
        T0,
        &VenueEvent::Canceled {
            id: ClientOrderId(1),
        },
    );
    m.on_venue_event(
        T0,
        &VenueEvent::Canceled {
            id: ClientOrderId(2),
        },
    );
    assert_eq!(m.open_orders(), 0);
}

#[test]
fn pause_and_resume_cancel_all_per_stop() {
    let mut r = risk();
    let mut m = manager(OrderParams::default());
    assert_eq!(run(&mut m, T0, level(6_000_000, 100), None, &r).len(), 1);
    r.pause(StopReason::VenueDisconnected);
    assert_eq!(
        run(&mut m, T0 + MS, level(6_000_000, 100), None, &r),
        vec![Action::CancelAll]
    );
    m.on_venue_event(
        T0,
        &VenueEvent::Canceled {
            id: ClientOrderId(1),
        },
    );
    r.resume(StopReason::VenueDisconnected);
    let a = run(&mut m, T0 + 2 * MS, level(6_000_000, 100), None, &r);
    assert!(matches!(
        a[..],
        [Action::Place {
            id: ClientOrderId(2),
            ..
        }]
    ));
    // Stale data stops too (5 s without data).
    let a = run(&mut m, T0 + 6 * NS_PER_S, level(6_000_000, 100), None, &r);
    assert_eq!(a, vec![Action::CancelAll]);
}

#[test]
fn risk_refusal_of_a_replacement_cancels_the_old_order() {
    let r = risk();
    let mut m = manager(OrderParams::default());
    run(&mut m, T0, level(6_000_000, 100), None, &r);
    ack(&mut m, ClientOrderId(1));
    // The new target is worth more than 1,000 USDT.
    let a = run(&mut m, T0 + NS_PER_S, level(6_000_000, 2_000), None, &r);
    assert_eq!(
        a,
        vec![Action::Cancel {
            id: ClientOrderId(1)
        }]
    );
    assert_eq!(
        m.stats().risk_rejects[RiskReject::AboveMaxNotional.index()],
        1
    );
}

#[test]
fn accounting_matches_a_hand_computation() {
    let r = risk();
    let mut m = manager(OrderParams::default());
    run(&mut m, T0, level(6_000_000, 100), level(6_000_200, 100), &r);
    // Bid (id 1): 40 lots at 60,000.00, fee 0.024 USDT; then a duplicate; then 60 more
    // reported before the ack, fee 0.036.
    m.on_venue_event(T0, &fill(1, 6_000_000, 40, 40, 2_400_000));
    assert_eq!(
        m.on_venue_event(T0, &fill(1, 6_000_000, 40, 40, 2_400_000)),
        EventOutcome::NoChange
    );
    m.on_venue_event(T0, &fill(1, 6_000_000, 60, 100, 3_600_000));
    ack(&mut m, ClientOrderId(1));
    // Ask (id 2): 30 lots at 60,002.00, rebate 0.01 USDT.
    m.on_venue_event(T0, &fill(2, 6_000_200, 30, 30, -1_000_000));
    let p = *m.position();
    // Bought 0.001 BTC × 60,000 = 60 USDT; sold 0.0003 × 60,002 = 18.0006 USDT.
    assert_eq!(p.inventory, Qty(70));
    assert_eq!(p.bought_lots, 100);
    assert_eq!(p.sold_lots, 30);
    assert_eq!(p.fees_atoms, 2_400_000 + 3_600_000 - 1_000_000);
    let cash = -6_000_000_000 + 1_800_060_000 - 5_000_000;
    assert_eq!(p.cash_atoms, cash);
    // Marked at mid 60,001.00: 0.0007 × 60,001 = 42.0007 USDT.
    let mtm = p.mark_to_market_atoms(&spec(), Price(6_000_000), Price(6_000_200));
    assert_eq!(mtm, cash + 4_200_070_000);
    assert_eq!(m.stats().fills, 3);
    assert_eq!(m.stats().orders_filled, 1);
    assert_eq!(m.stats().orders_with_fill, 2);
    assert_eq!(m.stats().events_no_change, 2); // the duplicate fill and the late ack
}

#[test]
fn a_gap_in_fill_reports_books_the_cumulative_increase() {
    let r = risk();
    let mut m = manager(OrderParams::default());
    run(&mut m, T0, level(6_000_000, 100), None, &r);
    m.on_venue_event(T0, &fill(1, 6_000_000, 10, 50, 0)); // the 40 before were missed
    assert_eq!(m.position().inventory, Qty(50));
    assert_eq!(m.stats().fill_gaps, 1);
    // The missed report arrives late: nothing more is booked.
    m.on_venue_event(T0, &fill(1, 6_000_000, 40, 40, 0));
    assert_eq!(m.position().inventory, Qty(50));
}

#[test]
fn unknown_and_refused_events_are_counted() {
    let r = risk();
    let mut m = manager(OrderParams::default());
    assert_eq!(
        m.on_venue_event(T0, &fill(99, 1, 1, 1, 0)),
        EventOutcome::Unknown
    );
    run(&mut m, T0, level(6_000_000, 100), None, &r);
    m.on_venue_event(
        T0,
        &VenueEvent::Rejected {
            id: ClientOrderId(1),
            code: -2010,
        },
    );
    assert_eq!(
        m.on_venue_event(T0, &fill(1, 6_000_000, 1, 1, 0)),
        EventOutcome::Refused(TransitionError::FillAfterReject)
    );
    assert_eq!(m.position().inventory, Qty(0));
    assert_eq!(m.stats().rejects, 1);
    assert_eq!(m.stats().events_unknown, 1);
    assert_eq!(m.stats().events_refused, 1);
}

#[test]
fn send_failure_is_answered_locally() {
    let r = risk();
    let mut m = manager(OrderParams::default());
    let a = run(&mut m, T0, level(6_000_000, 100), None, &r);
    m.on_send_failed(T0, &a[0]);
    assert_eq!(
        m.order(ClientOrderId(1)).unwrap().state,
        OrderState::Rejected {
            code: CODE_NOT_SENT
        }
    );
    let a = run(&mut m, T0, level(6_000_000, 100), None, &r);
    assert!(matches!(
        a[..],
        [Action::Place {
            id: ClientOrderId(2),
            ..
        }]
    ));
}

#[test]
fn finished_orders_are_recycled() {
    let r = risk();
    let params = OrderParams {
        min_rest_ms: 0,
        orders_per_s_max: 1_000,
        orders_per_10s_max: 1_000,
        ..OrderParams::default()
    };
    let mut m = manager(params);
    for i in 0..(3 * ORDER_SLOTS as i64) {
        let a = run(
            &mut m,
            T0 + i as u64 * MS,
            level(6_000_000 + 10 * i, 100),
            None,
            &r,
        );
        assert_eq!(a.len(), 1, "step {i}: {a:?}");
        if let Action::CancelReplace { cancel_id, .. } = a[0] {
            m.on_venue_event(T0, &VenueEvent::Canceled { id: cancel_id });
        }
    }
    assert_eq!(m.stats().table_full, 0);
    assert_eq!(m.open_orders(), 1);
}

#[test]
fn rate_limited_replace_cancels_only_a_too_aggressive_order() {
    let r = risk();
    let params = OrderParams {
        min_rest_ms: 0,
        orders_per_s_max: 1,
        ..OrderParams::default()
    };
    let mut m = manager(params);
    assert_eq!(run(&mut m, T0, level(6_000_000, 100), None, &r).len(), 1);
    // The target moved up: the old bid is more passive, kept.
    let a = run(&mut m, T0 + MS, level(6_000_010, 100), None, &r);
    assert!(a.is_empty());
    // The target moved down: the old bid is too aggressive, cancelled.
    let a = run(&mut m, T0 + 2 * MS, level(5_999_990, 100), None, &r);
    assert_eq!(
        a,
        vec![Action::Cancel {
            id: ClientOrderId(1)
        }]
    );
    assert_eq!(m.stats().rate_limited, 2);
    assert_eq!(m.stats().orders_placed, 1);
}

#[test]
fn rate_limiter_windows() {
    let mut l = RateLimiter::new(2, 3);
    assert!(l.try_acquire(0));
    assert!(l.try_acquire(1));
    assert!(!l.try_acquire(NS_PER_S - 1)); // 3rd in one second
    assert!(l.try_acquire(NS_PER_S)); // the first left the 1 s window
    assert!(!l.try_acquire(5 * NS_PER_S)); // 4th in 10 s
    assert!(l.try_acquire(10 * NS_PER_S)); // the first left the 10 s window
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random quotes (prices, one side vanishing), acks, cancels and rejects over
    /// minutes: no rolling 1 s or 10 s window ever holds more new orders than allowed.
    #[test]
    fn rate_limits_are_never_exceeded(
        steps in proptest::collection::vec(
            (0u64..300, -50i64..50, -50i64..50, 0u8..8),
            200..2_000,
        ),
        per_s in 1u32..8,
        per_10s in 1u32..40,
    ) {
        let r = {
            let limits = RiskLimits {
                stale_data_ms: u64::MAX / 2_000_000,
                ..RiskLimits::default()
            };
            let mut r = Risk::new(limits, spec()).unwrap();
            r.on_market_data(0);
            r
        };
        let params = OrderParams {
            price_tolerance_ticks: 0,
            min_rest_ms: 0,
            orders_per_s_max: per_s,
            orders_per_10s_max: per_10s,
            ..OrderParams::default()
        };
        let mut m = manager(params);
        let mut now = T0;
        let mut sent: Vec<u64> = Vec::new();
        for (dt_ms, bid_move, ask_move, what) in steps {
            now += dt_ms * MS;
            let bid = level(6_000_000 + bid_move, 100);
            let ask = if what == 7 { None } else { level(6_000_200 + ask_move, 100) };
            let mut out = Outbox::new();
            m.on_target(now, bid, ask, &r, &mut out);
            for action in out.as_slice() {
                match *action {
                    Action::Place { id, .. } => {
                        sent.push(now);
                        if what % 2 == 0 {
                            let ack = VenueEvent::Accepted { id, exch_ts_ms: 0 };
                            m.on_venue_event(now, &ack);
                        }
                    }
                    Action::CancelReplace { cancel_id, new_id, .. } => {
                        sent.push(now);
                        m.on_venue_event(now, &VenueEvent::Canceled { id: cancel_id });
                        if what == 3 {
                            let reject = VenueEvent::Rejected { id: new_id, code: -2010 };
                            m.on_venue_event(now, &reject);
                        }
                    }
                    Action::Cancel { id } => {
                        m.on_venue_event(now, &VenueEvent::Canceled { id });
                    }
                    Action::CancelAll => {}
                }
            }
        }
        for (i, &t) in sent.iter().enumerate() {
            let in_1s = sent[i..].iter().take_while(|&&u| u - t < NS_PER_S).count();
            let in_10s = sent[i..].iter().take_while(|&&u| u - t < 10 * NS_PER_S).count();
            prop_assert!(in_1s <= per_s as usize, "{} orders within 1 s from {}", in_1s, t);
            prop_assert!(
                in_10s <= per_10s as usize,
                "{} orders within 10 s from {}",
                in_10s,
                t
            );
        }
        prop_assert_eq!(m.stats().orders_placed as usize, sent.len());
    }
}
