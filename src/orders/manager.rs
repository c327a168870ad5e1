//! `OrderManager`: the table of our orders, the quote → action rules of `on_quote` (see the
//! module doc of `orders`), fills into `Position`, `OrderStats`, and `OrderParams` with
//! its validation.
//!
//! Hot path. Never allocates after `new`, never reads the clock (`now_ns` comes in), never
//! panics, formats text or uses a float.

use super::*;

/// Quote-to-order rules and order rate limits. `Default` holds the documented defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderParams {
    /// Orders open at once per side, 1..=`ORDERS_PER_SIDE_MAX`. Default 1.
    pub orders_per_side_max: usize,
    /// A working order within this many ticks of the target (and of the target's size) is
    /// kept, ticks, ≥ 0. Default 2.
    pub price_tolerance_ticks: i64,
    /// A working order further from the market than its target (a bid below it, an ask
    /// above it) is kept up to this many times that tolerance (or re-quote band) behind:
    /// it keeps its queue place and is safer than the target; one closer to the market
    /// is replaced beyond the tolerance itself. 1..=`BEHIND_BAND_FACTOR_MAX`. Default 1
    /// (symmetric).
    pub behind_band_factor: u32,
    /// An order younger than this (since it was sent) is not cancelled or replaced unless
    /// its side's target disappeared or risk stopped quoting, ms. Default 500 ms.
    pub min_rest_ms: u64,
    /// New orders (place and cancel-replace) per rolling second, ≥ 1. Default 10.
    pub orders_per_s_max: u32,
    /// New orders per rolling 10 s, 1..=`RATE_WINDOW_MAX`. Default 100 (Binance spot
    /// ORDERS limit; check exchangeInfo `rateLimits`).
    pub orders_per_10s_max: u32,
}

impl Default for OrderParams {
    fn default() -> Self {
        OrderParams {
            orders_per_side_max: 1,
            price_tolerance_ticks: 2,
            behind_band_factor: 1,
            min_rest_ms: 500,
            orders_per_s_max: 10,
            orders_per_10s_max: 100,
        }
    }
}

/// Why `OrderParams` was refused (config maps each to its key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderParamsError {
    /// `orders_per_side_max` outside 1..=`ORDERS_PER_SIDE_MAX`.
    OrdersPerSide,
    /// `price_tolerance_ticks` < 0.
    Tolerance,
    /// `behind_band_factor` outside 1..=`BEHIND_BAND_FACTOR_MAX`.
    BehindBandFactor,
    /// `orders_per_s_max` is 0.
    PerSecond,
    /// `orders_per_10s_max` outside 1..=`RATE_WINDOW_MAX`.
    PerTenSeconds,
}

impl fmt::Display for OrderParamsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OrderParamsError::OrdersPerSide => {
                write!(
                    f,
                    "orders_per_side_max must be in 1..={ORDERS_PER_SIDE_MAX}"
                )
            }
            OrderParamsError::Tolerance => f.write_str("price_tolerance_ticks must be >= 0"),
            OrderParamsError::BehindBandFactor => write!(
                f,
                "behind_band_factor must be in 1..={BEHIND_BAND_FACTOR_MAX}"
            ),
            OrderParamsError::PerSecond => f.write_str("orders_per_s_max must be at least 1"),
            OrderParamsError::PerTenSeconds => {
                write!(f, "orders_per_10s_max must be in 1..={RATE_WINDOW_MAX}")
            }
        }
    }
}

impl std::error::Error for OrderParamsError {}

impl OrderParams {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), OrderParamsError> {
        if !(1..=ORDERS_PER_SIDE_MAX).contains(&self.orders_per_side_max) {
            return Err(OrderParamsError::OrdersPerSide);
        }
        if self.price_tolerance_ticks < 0 {
            return Err(OrderParamsError::Tolerance);
        }
        if !(1..=BEHIND_BAND_FACTOR_MAX).contains(&self.behind_band_factor) {
            return Err(OrderParamsError::BehindBandFactor);
        }
        if self.orders_per_s_max == 0 {
            return Err(OrderParamsError::PerSecond);
        }
        if self.orders_per_10s_max == 0 || self.orders_per_10s_max as usize > RATE_WINDOW_MAX {
            return Err(OrderParamsError::PerTenSeconds);
        }
        Ok(())
    }
}

/// One of our orders, as the manager tracks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Order {
    /// Our id.
    pub id: ClientOrderId,
    /// Side.
    pub side: Side,
    /// Limit price, ticks.
    pub price: Price,
    /// Size, lots.
    pub qty: Qty,
    /// When the order was sent (our clock), ns.
    pub sent_ns: u64,
    /// When its state last changed (our clock), ns.
    pub updated_ns: u64,
    /// Where it stands.
    pub state: OrderState,
}

impl Order {
    /// Unfilled quantity, lots.
    #[inline]
    pub fn remaining(&self) -> Qty {
        Qty(self.qty.0 - self.state.filled(self.qty).0)
    }
}

/// Our position from fills since the session started (or since `set_position`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    /// Base asset held, lots (+ long, − short).
    pub inventory: Qty,
    /// Quote currency received minus paid, net of fees, quote atoms.
    pub cash_atoms: i64,
    /// Fees paid (negative: rebates received), quote atoms.
    pub fees_atoms: i64,
    /// Quantity bought, lots.
    pub bought_lots: i64,
    /// Quantity sold, lots.
    pub sold_lots: i64,
}

impl Position {
    /// Mark-to-market value cash + inventory × mid (mid = (bid + ask) / 2), quote atoms.
    /// Fees are already in the cash. Saturates instead of overflowing.
    pub fn mark_to_market_atoms(&self, spec: &SymbolSpec, best_bid: Price, best_ask: Price) -> i64 {
        let mid_x2 = i128::from(best_bid.0) + i128::from(best_ask.0);
        // Exact in i128 up to the final division (truncates toward zero); saturates only
        // for absurd sizes.
        let per_tick_lot = i128::from(spec.tick_atoms) * i128::from(spec.step_atoms);
        let value = i128::from(self.inventory.0)
            .checked_mul(mid_x2)
            .and_then(|v| v.checked_mul(per_tick_lot))
            .map(|v| v / (2 * i128::from(ATOMS_PER_UNIT)));
        match value {
            Some(value) => saturate(i128::from(self.cash_atoms) + value),
            None if (self.inventory.0 < 0) == (mid_x2 < 0) => i64::MAX,
            None => i64::MIN,
        }
    }
}

/// Counters since `new`. KPIs: fill ratio = `fills` / `orders_placed` (or
/// `orders_with_fill` / `orders_placed` for orders rather than executions); cancel ratio =
/// (`cancels_sent` + `replaces_sent`) / `orders_placed` (a replace cancels an order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OrderStats {
    /// `on_quote` calls.
    pub quotes_seen: u64,
    /// New orders sent: `Place` + `CancelReplace`.
    pub orders_placed: u64,
    /// `Place` actions.
    pub places_sent: u64,
    /// `CancelReplace` actions.
    pub replaces_sent: u64,
    /// `Cancel` actions.
    pub cancels_sent: u64,
    /// `CancelAll` actions.
    pub cancel_alls_sent: u64,
    /// Acknowledgements that changed an order's state.
    pub acks: u64,
    /// Fill events that booked quantity.
    pub fills: u64,
    /// Orders that received at least one fill.
    pub orders_with_fill: u64,
    /// Orders completely filled.
    pub orders_filled: u64,
    /// Orders finished by a cancel.
    pub orders_canceled: u64,
    /// Orders expired by the exchange.
    pub orders_expired: u64,
    /// New orders refused by the venue.
    pub rejects: u64,
    /// Cancels refused by the venue (also those that changed nothing: a cancel racing a
    /// complete fill).
    pub cancel_rejects: u64,
    /// Events that changed nothing (duplicates, late acks, cancel-after-fill).
    pub events_no_change: u64,
    /// Events for an id not in the table (another session, or long finished).
    pub events_unknown: u64,
    /// Events the state machine refused (`TransitionError`): a venue bug.
    pub events_refused: u64,
    /// Fills whose quantity differed from the increase of the cumulative quantity (a
    /// missed execution report in between): the increase was booked.
    pub fill_gaps: u64,
    /// Place/replace skipped: a rate window was full (a replace whose old order is more
    /// aggressive than the target then cancels it instead).
    pub rate_limited: u64,
    /// Replace/cancel held back: the order was younger than `min_rest_ms`.
    pub held_min_rest: u64,
    /// Place skipped: the side already had `orders_per_side_max` open orders.
    pub held_side_full: u64,
    /// Place/replace refused by risk, by `RiskReject::index`.
    pub risk_rejects: [u64; RiskReject::COUNT],
    /// Action skipped: no free order slot.
    pub table_full: u64,
    /// Action skipped: the outbox was full.
    pub outbox_full: u64,
}

/// What `on_venue_event` did, for the caller's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventOutcome {
    /// The order changed; `fill_lots` were booked (0 for non-fill events).
    Applied {
        /// The order after the event.
        order: Order,
        /// Quantity booked into the position, lots.
        fill_lots: Qty,
    },
    /// Nothing changed (duplicate or late event).
    NoChange,
    /// No order with this id is tracked.
    Unknown,
    /// The state machine refused the event.
    Refused(TransitionError),
}

/// Desired quotes vs our orders → actions, for one symbol. See the module doc for the
/// rules.
#[derive(Clone, Debug)]
pub struct OrderManager {
    params: OrderParams,
    spec: SymbolSpec,
    min_rest_ns: u64,
    slots: [Option<Order>; ORDER_SLOTS],
    next_seq: u64,
    position: Position,
    limiter: RateLimiter,
    /// Risk was stopped at the last `on_quote` (start: true, so that a fresh manager sends
    /// no CancelAll before it has sent anything).
    stopped_seen: bool,
    stats: OrderStats,
    /// The per-side index: bit `i` of `open[side_index(side)]` is set iff `slots[i]` holds
    /// an unfinished order of that side. The quote rules visit these slots only, instead
    /// of scanning the whole table. Kept in step by `put` and `reindex_all`.
    open: [u64; 2],
    /// Bit `i` set iff `slots[i]` holds an order (finished or not).
    used: u64,
}

/// Every slot's bit in `OrderManager::used`.
const ALL_SLOTS: u64 = if ORDER_SLOTS == 64 {
    u64::MAX
} else {
    (1 << ORDER_SLOTS) - 1
};

// The per-side index is one bit per slot in a u64.
const _: () = assert!(ORDER_SLOTS <= 64);

impl OrderManager {
    /// An empty manager; the first order gets id 1.
    pub fn new(params: OrderParams, spec: SymbolSpec) -> Result<OrderManager, OrderParamsError> {
        params.validate()?;
        Ok(OrderManager {
            params,
            spec,
            min_rest_ns: params.min_rest_ms.saturating_mul(NS_PER_MS),
            slots: [None; ORDER_SLOTS],
            next_seq: 1,
            position: Position::default(),
            limiter: RateLimiter::new(params.orders_per_s_max, params.orders_per_10s_max),
            stopped_seen: true,
            stats: OrderStats::default(),
            open: [0; 2],
            used: 0,
        })
    }

    /// The parameters.
    pub fn params(&self) -> &OrderParams {
        &self.params
    }

    /// Position from fills.
    pub fn position(&self) -> &Position {
        &self.position
    }

    /// Replaces the position (start-up reconciliation with the account).
    pub fn set_position(&mut self, position: Position) {
        self.position = position;
    }

    /// Counters since `new`.
    pub fn stats(&self) -> &OrderStats {
        &self.stats
    }

    /// Reconciliation: the exchange has nothing of ours open and the position is taken
    /// from its balances, which already hold every fill of these orders. Every order not
    /// finished here is dropped from the table, so that a report still on its way for one
    /// (a fill, a cancel) is unknown and books nothing a second time. Returns how many.
    pub fn forget_open(&mut self) -> u32 {
        let mut forgotten = 0;
        for slot in self.slots.iter_mut() {
            if slot.is_some_and(|o| !o.state.is_finished()) {
                *slot = None;
                forgotten += 1;
            }
        }
        self.reindex_all();
        forgotten
    }

    /// The exchange refused a `CancelAll` we sent (other than "nothing open"): the orders
    /// waiting on it are working again, and the next quote while stopped cancels each.
    pub fn on_cancel_all_refused(&mut self, now_ns: u64, code: i32) {
        for order in self.slots.iter_mut().flatten() {
            if let OrderState::PendingCancel {
                via: CancelVia::All,
                ..
            } = order.state
            {
                if let Ok(next) = order.state.on_cancel_rejected(code) {
                    order.state = next;
                    order.updated_ns = now_ns;
                }
            }
        }
        self.reindex_all();
        // Cancel again at the next quote.
        self.stopped_seen = false;
    }

    /// When the longest-waiting cancel was last updated (`None`: no cancel pending).
    pub fn oldest_pending_cancel_ns(&self) -> Option<u64> {
        self.orders()
            .filter(|o| matches!(o.state, OrderState::PendingCancel { .. }))
            .map(|o| o.updated_ns)
            .min()
    }

    /// Every tracked order (open and recently finished), in slot order.
    pub fn orders(&self) -> impl Iterator<Item = &Order> + '_ {
        self.slots.iter().flatten()
    }

    /// The tracked order with this id.
    pub fn order(&self, id: ClientOrderId) -> Option<&Order> {
        self.find(id).and_then(|i| self.slots[i].as_ref())
    }

    /// Orders not finished.
    pub fn open_orders(&self) -> u32 {
        (self.open[0] | self.open[1]).count_ones()
    }

    /// The exposure risk checks against, at `now_ns`.
    pub fn exposure(&self, now_ns: u64) -> Exposure {
        self.exposure_without(now_ns, None)
    }

    /// Turns a quote into actions (see the module doc).
    #[inline]
    pub fn on_quote(&mut self, now_ns: u64, quote: &Quote, risk: &Risk, out: &mut Outbox) {
        self.on_target_within(
            now_ns,
            quote.bid,
            quote.ask,
            quote.requote_band_ticks,
            risk,
            out,
        );
    }

    /// `on_quote` with the two sides given directly and no re-quote band.
    pub fn on_target(
        &mut self,
        now_ns: u64,
        bid: Option<QuoteLevel>,
        ask: Option<QuoteLevel>,
        risk: &Risk,
        out: &mut Outbox,
    ) {
        self.on_target_within(now_ns, bid, ask, 0, risk, out);
    }

    /// `on_target` keeping any working order within `band_ticks` of its target (or within
    /// `price_tolerance_ticks`, whichever is wider).
    pub fn on_target_within(
        &mut self,
        now_ns: u64,
        bid: Option<QuoteLevel>,
        ask: Option<QuoteLevel>,
        band_ticks: i64,
        risk: &Risk,
        out: &mut Outbox,
    ) {
        self.stats.quotes_seen += 1;
        if risk.stop_reason(now_ns).is_some() {
            if !self.stopped_seen {
                // Nothing open: nothing to cancel (Binance answers -2011 to that).
                if self.open_orders() == 0 || self.cancel_all(now_ns, out) {
                    self.stopped_seen = true;
                }
            } else {
                self.cancel_working(now_ns, None, out);
            }
            return;
        }
        self.stopped_seen = false;
        let tolerance = self
            .params
            .price_tolerance_ticks
            .max(band_ticks)
            .unsigned_abs();
        self.manage_side(now_ns, Side::Buy, bid, tolerance, risk, out);
        self.manage_side(now_ns, Side::Sell, ask, tolerance, risk, out);
        debug_assert!(self.index_is_consistent());
    }

    /// Sends one `CancelAll` and marks every working order pending cancel (shutdown, kill
    /// switch). `false` if the outbox had no room (nothing changed). For a lasting stop,
    /// trip or pause the `Risk` instead: then `on_quote` cancels and places nothing more.
    pub fn cancel_all(&mut self, now_ns: u64, out: &mut Outbox) -> bool {
        if !out.push(Action::CancelAll) {
            self.stats.outbox_full += 1;
            return false;
        }
        self.stats.cancel_alls_sent += 1;
        for order in self.slots.iter_mut().flatten() {
            if let Ok(next) = order.state.on_cancel_request(CancelVia::All) {
                order.state = next;
                order.updated_ns = now_ns;
            }
        }
        self.reindex_all();
        true
    }

    /// Applies one venue event. Position and cash change here only, on fills.
    pub fn on_venue_event(&mut self, now_ns: u64, event: &VenueEvent) -> EventOutcome {
        let Some(index) = self.find(event.id()) else {
            self.stats.events_unknown += 1;
            return EventOutcome::Unknown;
        };
        let Some(order) = self.slots[index] else {
            self.stats.events_unknown += 1;
            return EventOutcome::Unknown;
        };
        let prev = order.state;
        let result = match *event {
            VenueEvent::Accepted { .. } => prev.on_ack(),
            VenueEvent::Rejected { code, .. } => prev.on_rejected(code),
            VenueEvent::Fill { cum_qty, .. } => prev.on_fill(cum_qty, order.qty),
            VenueEvent::Canceled { .. } => prev.on_canceled(),
            VenueEvent::CancelRejected { code, .. } => prev.on_cancel_rejected(code),
            VenueEvent::Expired { .. } => prev.on_expired(),
        };
        let next = match result {
            Ok(next) => next,
            Err(error) => {
                self.stats.events_refused += 1;
                return EventOutcome::Refused(error);
            }
        };
        if let VenueEvent::CancelRejected { .. } = event {
            self.stats.cancel_rejects += 1;
        }
        if next == prev {
            self.stats.events_no_change += 1;
            return EventOutcome::NoChange;
        }
        let before = prev.filled(order.qty);
        let after = next.filled(order.qty);
        let booked = Qty(after.0 - before.0);
        if let VenueEvent::Fill {
            price,
            qty,
            fee_quote_atoms,
            ..
        } = *event
        {
            if booked.0 > 0 {
                self.book_fill(order.side, price, booked, fee_quote_atoms);
                if booked != qty {
                    self.stats.fill_gaps += 1;
                }
                if before.0 == 0 {
                    self.stats.orders_with_fill += 1;
                }
            }
        }
        match (prev, next) {
            (_, OrderState::Filled) => self.stats.orders_filled += 1,
            (_, OrderState::Canceled { .. }) => self.stats.orders_canceled += 1,
            (_, OrderState::Expired { .. }) => self.stats.orders_expired += 1,
            (_, OrderState::Rejected { .. }) => self.stats.rejects += 1,
            _ => {}
        }
        if let VenueEvent::Accepted { .. } = event {
            self.stats.acks += 1;
        }
        let updated = Order {
            state: next,
            updated_ns: now_ns,
            ..order
        };
        self.put(index, Some(updated));
        debug_assert!(self.index_is_consistent());
        EventOutcome::Applied {
            order: updated,
            fill_lots: booked,
        }
    }

    /// The caller could not hand `action` to the venue: it is answered locally as refused
    /// (`CODE_NOT_SENT`), so every order leaves its pending state.
    pub fn on_send_failed(&mut self, now_ns: u64, action: &Action) {
        match *action {
            Action::Place { id, .. } => {
                self.on_venue_event(
                    now_ns,
                    &VenueEvent::Rejected {
                        id,
                        code: CODE_NOT_SENT,
                    },
                );
            }
            Action::Cancel { id } => {
                self.on_venue_event(
                    now_ns,
                    &VenueEvent::CancelRejected {
                        id,
                        code: CODE_NOT_SENT,
                    },
                );
            }
            Action::CancelReplace {
                cancel_id, new_id, ..
            } => {
                self.on_venue_event(
                    now_ns,
                    &VenueEvent::CancelRejected {
                        id: cancel_id,
                        code: CODE_NOT_SENT,
                    },
                );
                self.on_venue_event(
                    now_ns,
                    &VenueEvent::Rejected {
                        id: new_id,
                        code: CODE_NOT_SENT,
                    },
                );
            }
            Action::CancelAll => self.on_cancel_all_refused(now_ns, CODE_NOT_SENT),
        }
    }

    // -- quote rules ---------------------------------------------------------------------

    fn manage_side(
        &mut self,
        now_ns: u64,
        side: Side,
        target: Option<QuoteLevel>,
        tolerance: u64,
        risk: &Risk,
        out: &mut Outbox,
    ) {
        let Some(target) = target else {
            self.cancel_working(now_ns, Some(side), out);
            return;
        };
        // Ticks the order is closer to the market than its target (negative: behind it).
        let behind = tolerance.saturating_mul(u64::from(self.params.behind_band_factor));
        let keeper = self.oldest_working(side, |o| {
            let ahead = match side {
                Side::Buy => o.price.0.saturating_sub(target.price.0),
                Side::Sell => target.price.0.saturating_sub(o.price.0),
            };
            let within = if ahead >= 0 {
                ahead.unsigned_abs() <= tolerance
            } else {
                ahead.unsigned_abs() <= behind
            };
            o.qty == target.qty && within
        });
        if let Some(keep) = keeper {
            // Extra working orders on the side (only with orders_per_side_max > 1).
            for index in slot_indices(self.open[side_index(side)]) {
                if index == keep {
                    continue;
                }
                if let Some(order) = self.slots[index] {
                    if order.side == side && order.state.is_working() {
                        if self.is_resting_long_enough(&order, now_ns) {
                            self.cancel(now_ns, index, CancelVia::Cancel, out);
                        } else {
                            self.stats.held_min_rest += 1;
                        }
                    }
                }
            }
            return;
        }
        if let Some(old) = self.oldest_working(side, |_| true) {
            let Some(order) = self.slots[old] else {
                return;
            };
            if !self.is_resting_long_enough(&order, now_ns) {
                self.stats.held_min_rest += 1;
                return;
            }
            self.replace(now_ns, old, target, risk, out);
            return;
        }
        if self.occupied(side) >= self.params.orders_per_side_max {
            self.stats.held_side_full += 1;
            return;
        }
        self.place(now_ns, side, target, risk, out);
    }

    fn place(
        &mut self,
        now_ns: u64,
        side: Side,
        target: QuoteLevel,
        risk: &Risk,
        out: &mut Outbox,
    ) {
        if out.room() == 0 {
            self.stats.outbox_full += 1;
            return;
        }
        let Some(slot) = self.free_slot() else {
            self.stats.table_full += 1;
            return;
        };
        let exposure = self.exposure_without(now_ns, None);
        let approved = match risk.check(side, target.price, target.qty, &exposure) {
            Ok(approved) => approved,
            Err(reject) => {
                self.stats.risk_rejects[reject.index()] += 1;
                return;
            }
        };
        if !self.limiter.try_acquire(now_ns) {
            self.stats.rate_limited += 1;
            return;
        }
        let id = self.next_id();
        out.push(Action::Place {
            id,
            order: approved,
        });
        self.stats.places_sent += 1;
        self.stats.orders_placed += 1;
        self.put(slot, Some(new_order(id, approved, now_ns)));
    }

    fn replace(
        &mut self,
        now_ns: u64,
        old: usize,
        target: QuoteLevel,
        risk: &Risk,
        out: &mut Outbox,
    ) {
        let Some(order) = self.slots[old] else {
            return;
        };
        if out.room() == 0 {
            self.stats.outbox_full += 1;
            return;
        }
        let Some(slot) = self.free_slot() else {
            self.stats.table_full += 1;
            return;
        };
        let exposure = self.exposure_without(now_ns, Some(old));
        let approved = match risk.check(order.side, target.price, target.qty, &exposure) {
            Ok(approved) => approved,
            Err(reject) => {
                // The old quote is stale and the new one is not allowed: take it down.
                self.stats.risk_rejects[reject.index()] += 1;
                self.cancel(now_ns, old, CancelVia::Cancel, out);
                return;
            }
        };
        let Ok(cancelling) = order.state.on_cancel_request(CancelVia::Replace) else {
            return;
        };
        if !self.limiter.try_acquire(now_ns) {
            self.stats.rate_limited += 1;
            // A cancel spends no ORDERS token. An order left more aggressive than the
            // target is the one the market would pick off: take it down; a more passive
            // one does no harm and keeps its queue place.
            let too_aggressive = match order.side {
                Side::Buy => order.price > target.price,
                Side::Sell => order.price < target.price,
            };
            if too_aggressive {
                self.cancel(now_ns, old, CancelVia::Cancel, out);
            }
            return;
        }
        let new_id = self.next_id();
        out.push(Action::CancelReplace {
            cancel_id: order.id,
            new_id,
            order: approved,
        });
        self.stats.replaces_sent += 1;
        self.stats.orders_placed += 1;
        self.put(
            old,
            Some(Order {
                state: cancelling,
                updated_ns: now_ns,
                ..order
            }),
        );
        self.put(slot, Some(new_order(new_id, approved, now_ns)));
    }

    fn cancel(&mut self, now_ns: u64, index: usize, via: CancelVia, out: &mut Outbox) {
        let Some(order) = self.slots[index] else {
            return;
        };
        let Ok(next) = order.state.on_cancel_request(via) else {
            return;
        };
        if !out.push(Action::Cancel { id: order.id }) {
            self.stats.outbox_full += 1;
            return;
        }
        self.stats.cancels_sent += 1;
        self.put(
            index,
            Some(Order {
                state: next,
                updated_ns: now_ns,
                ..order
            }),
        );
    }

    /// Cancels every working order (of one side, or of both).
    fn cancel_working(&mut self, now_ns: u64, side: Option<Side>, out: &mut Outbox) {
        let open = match side {
            Some(side) => self.open[side_index(side)],
            None => self.open[0] | self.open[1],
        };
        for index in slot_indices(open) {
            if let Some(order) = self.slots[index] {
                if order.state.is_working() && side.is_none_or(|s| s == order.side) {
                    self.cancel(now_ns, index, CancelVia::Cancel, out);
                }
            }
        }
    }

    // -- bookkeeping ---------------------------------------------------------------------

    fn book_fill(&mut self, side: Side, price: Price, qty: Qty, fee_quote_atoms: i64) {
        let notional = saturate(self.spec.notional_atoms(price, qty));
        let p = &mut self.position;
        match side {
            Side::Buy => {
                p.inventory.0 = p.inventory.0.saturating_add(qty.0);
                p.bought_lots = p.bought_lots.saturating_add(qty.0);
                p.cash_atoms = p.cash_atoms.saturating_sub(notional);
            }
            Side::Sell => {
                p.inventory.0 = p.inventory.0.saturating_sub(qty.0);
                p.sold_lots = p.sold_lots.saturating_add(qty.0);
                p.cash_atoms = p.cash_atoms.saturating_add(notional);
            }
        }
        p.cash_atoms = p.cash_atoms.saturating_sub(fee_quote_atoms);
        p.fees_atoms = p.fees_atoms.saturating_add(fee_quote_atoms);
        self.stats.fills += 1;
    }

    fn next_id(&mut self) -> ClientOrderId {
        let id = ClientOrderId(self.next_seq);
        self.next_seq = self.next_seq.saturating_add(1);
        id
    }

    fn find(&self, id: ClientOrderId) -> Option<usize> {
        self.slots
            .iter()
            .position(|slot| slot.is_some_and(|o| o.id == id))
    }

    /// An empty slot, else the one of the order finished longest ago.
    fn free_slot(&self) -> Option<usize> {
        let empty = !self.used & ALL_SLOTS;
        if empty != 0 {
            return Some(empty.trailing_zeros() as usize);
        }
        let finished = self.used & !(self.open[0] | self.open[1]);
        let mut oldest: Option<(u64, usize)> = None;
        for index in slot_indices(finished) {
            if let Some(order) = self.slots[index] {
                if oldest.is_none_or(|(ns, _)| order.updated_ns < ns) {
                    oldest = Some((order.updated_ns, index));
                }
            }
        }
        oldest.map(|(_, index)| index)
    }

    /// The working order on `side` sent first among those matching `accept`.
    fn oldest_working(&self, side: Side, accept: impl Fn(&Order) -> bool) -> Option<usize> {
        let mut best: Option<(u64, u64, usize)> = None;
        for index in slot_indices(self.open[side_index(side)]) {
            if let Some(order) = &self.slots[index] {
                if order.side == side && order.state.is_working() && accept(order) {
                    let key = (order.sent_ns, order.id.0);
                    if best.is_none_or(|(ns, id, _)| key < (ns, id)) {
                        best = Some((key.0, key.1, index));
                    }
                }
            }
        }
        best.map(|(_, _, index)| index)
    }

    /// Orders holding a place on `side`: working ones, and those being cancelled by a
    /// plain cancel or cancel-all (they may still rest). A replace's cancel leg holds none:
    /// its replacement only exists once it is gone.
    fn occupied(&self, side: Side) -> usize {
        slot_indices(self.open[side_index(side)])
            .filter_map(|index| self.slots[index].as_ref())
            .filter(|o| o.side == side)
            .filter(|o| match o.state {
                OrderState::PendingCancel { via, .. } => via != CancelVia::Replace,
                state => state.is_working(),
            })
            .count()
    }

    /// Writes slot `index` and keeps the per-side index in step with it.
    #[inline]
    fn put(&mut self, index: usize, order: Option<Order>) {
        self.slots[index] = order;
        self.reindex(index);
    }

    /// Recomputes slot `index`'s bits from its content.
    #[inline]
    fn reindex(&mut self, index: usize) {
        let bit = 1u64 << index;
        self.open[0] &= !bit;
        self.open[1] &= !bit;
        self.used &= !bit;
        if let Some(order) = &self.slots[index] {
            self.used |= bit;
            if !order.state.is_finished() {
                self.open[side_index(order.side)] |= bit;
            }
        }
    }

    /// Rebuilds the whole index (after a pass that changes many slots in place: rare).
    fn reindex_all(&mut self) {
        for index in 0..ORDER_SLOTS {
            self.reindex(index);
        }
    }

    /// The index agrees with a scan of the table (checked in debug builds).
    fn index_is_consistent(&self) -> bool {
        let mut open = [0u64; 2];
        let mut used = 0u64;
        for (index, slot) in self.slots.iter().enumerate() {
            if let Some(order) = slot {
                used |= 1 << index;
                if !order.state.is_finished() {
                    open[side_index(order.side)] |= 1 << index;
                }
            }
        }
        open == self.open && used == self.used
    }

    fn is_resting_long_enough(&self, order: &Order, now_ns: u64) -> bool {
        now_ns.saturating_sub(order.sent_ns) >= self.min_rest_ns
    }

    fn exposure_without(&self, now_ns: u64, except: Option<usize>) -> Exposure {
        let mut exposure = Exposure {
            now_ns,
            inventory: self.position.inventory,
            ..Exposure::default()
        };
        for index in slot_indices(self.open[0] | self.open[1]) {
            let Some(order) = &self.slots[index] else {
                continue;
            };
            if Some(index) == except || order.state.is_finished() {
                continue;
            }
            exposure.open_orders += 1;
            let remaining = order.remaining().0;
            match order.side {
                Side::Buy => exposure.open_buy_lots += remaining,
                Side::Sell => exposure.open_sell_lots += remaining,
            }
        }
        exposure
    }
}

fn new_order(id: ClientOrderId, approved: Approved, now_ns: u64) -> Order {
    Order {
        id,
        side: approved.side(),
        price: approved.price(),
        qty: approved.qty(),
        sent_ns: now_ns,
        updated_ns: now_ns,
        state: OrderState::PendingNew,
    }
}

/// The per-side index's slot for `side`.
#[inline]
fn side_index(side: Side) -> usize {
    match side {
        Side::Buy => 0,
        Side::Sell => 1,
    }
}

/// The slot indices of the set bits of `mask`, ascending (the table's scan order; also
/// the simulated venue's resting table).
#[inline]
pub(crate) fn slot_indices(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if mask == 0 {
            return None;
        }
        let index = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        Some(index)
    })
}

fn saturate(value: i128) -> i64 {
    i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX })
}
