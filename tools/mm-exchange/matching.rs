//! The simulator's matching engine: our account's orders against the replayed market.
//!
//! Written independently of the engine's order logic (src/) on purpose: the two check each
//! other. Sans-IO: every call takes the market and `now_ms`, returns what happened, and
//! never reads a clock or touches a socket. Quantities and prices are atoms (10⁻⁸).
//!
//! The model, in the order it is applied:
//! - **Placement.** Filters first (PRICE_FILTER, LOT_SIZE, NOTIONAL, MAX_NUM_ORDERS), then
//!   a duplicate `clientOrderId` among open orders is refused, then an order that needs
//!   more than the account's free balance (-2010, see Balances). A LIMIT_MAKER that would
//!   cross the best opposite price is refused with -2010. A LIMIT that crosses trades at
//!   once as a taker against the displayed opposite levels (best first, each level's
//!   displayed quantity at most, at the level's price) — the replayed book is *not*
//!   depleted by it, and our own resting orders are not matched against (no self-trade).
//!   What is left rests (GTC).
//! - **Queue position.** A resting order joins behind the quantity displayed at its price
//!   on its side when it is accepted (`queue_ahead`, from the book or the fresher
//!   bookTicker).
//! - **Trades.** A replayed trade at price P for quantity V fills, in price-time priority:
//!   first our orders priced *through* P (a bid above P, an ask below P) — the aggressor
//!   would have hit them first — up to V in total; then our orders *at* P on the maker side
//!   of the trade (bids when `m` is true, asks when false), oldest first: V first eats the
//!   market queue ahead of each order (`queue_ahead` shrinks by the part of V that reached
//!   its level), and whatever is left of V after that queue and after our older orders at
//!   P fills the order. Fills are maker fills at the order's own price.
//! - **Cancellations (optional, `queue_cancels`).** When the displayed quantity at an
//!   order's price drops below its `queue_ahead`, the queue ahead shrinks to it: orders
//!   cancelled in front of us move us up.
//! - **Money.** quote = price × qty (exact in atoms, truncated if a grid makes it inexact);
//!   commission = quote × fee_bps / 10⁴, truncated toward zero, in the quote asset; cash
//!   moves by ∓quote − commission; position by ±qty.
//! - **Balances.** One spot account: total base = starting base + position, total quote =
//!   starting quote + cash. Open orders lock what they may still spend: a buy locks
//!   price × remaining qty of the quote asset, a sell its remaining qty of the base asset;
//!   free = total − locked. A new order needing more than free (a buy: price × qty of the
//!   quote, a sell: qty of the base) is refused. Commission is not reserved, so fees can
//!   take a quote balance's free part slightly below zero (never with zero fees).

use std::collections::BTreeMap;

use mm::types::Side;

use crate::book::{is_better, Market};
use crate::data::Trade;

/// Binance error code and message of a refused request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// Binance error code (-2010, -2011, -1013, …).
    pub code: i32,
    /// Binance's message text.
    pub msg: String,
}

impl Reject {
    /// A refusal with a code and a message.
    pub fn new(code: i32, msg: impl Into<String>) -> Reject {
        Reject {
            code,
            msg: msg.into(),
        }
    }
}

/// The symbol's trading rules, in atoms.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// PRICE_FILTER tickSize.
    pub tick: i64,
    /// PRICE_FILTER minPrice.
    pub min_price: i64,
    /// PRICE_FILTER maxPrice.
    pub max_price: i64,
    /// LOT_SIZE stepSize.
    pub step: i64,
    /// LOT_SIZE minQty.
    pub min_qty: i64,
    /// LOT_SIZE maxQty.
    pub max_qty: i64,
    /// NOTIONAL minNotional.
    pub min_notional: i64,
    /// NOTIONAL maxNotional.
    pub max_notional: i64,
    /// MAX_NUM_ORDERS.
    pub max_open_orders: usize,
}

/// Order types the simulator accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderType {
    /// LIMIT, timeInForce GTC.
    Limit,
    /// LIMIT_MAKER (post-only).
    LimitMaker,
}

impl OrderType {
    /// Binance's spelling.
    pub fn as_wire(self) -> &'static str {
        match self {
            OrderType::Limit => "LIMIT",
            OrderType::LimitMaker => "LIMIT_MAKER",
        }
    }
}

/// Order status (Binance `X`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Resting, nothing filled.
    New,
    /// Resting, partly filled.
    PartiallyFilled,
    /// Done: fully filled.
    Filled,
    /// Done: cancelled.
    Canceled,
}

impl Status {
    /// Binance's spelling.
    pub fn as_wire(self) -> &'static str {
        match self {
            Status::New => "NEW",
            Status::PartiallyFilled => "PARTIALLY_FILLED",
            Status::Filled => "FILLED",
            Status::Canceled => "CANCELED",
        }
    }
}

/// One of our orders.
#[derive(Debug, Clone)]
pub struct Order {
    /// Exchange order id.
    pub id: u64,
    /// Current clientOrderId.
    pub client_id: String,
    /// Side.
    pub side: Side,
    /// Type.
    pub order_type: OrderType,
    /// Limit price (atoms).
    pub price: i64,
    /// Original quantity (atoms).
    pub orig_qty: i64,
    /// Executed quantity (atoms).
    pub executed_qty: i64,
    /// Cumulative quote quantity (atoms).
    pub cum_quote: i128,
    /// Status.
    pub status: Status,
    /// Creation time (ms).
    pub time_ms: i64,
    /// Last update (ms).
    pub update_ms: i64,
    /// Market quantity ahead of it at its price (atoms).
    pub queue_ahead: i64,
    seq: u64,
}

impl Order {
    /// Quantity still open (atoms).
    pub fn remaining(&self) -> i64 {
        self.orig_qty - self.executed_qty
    }
}

/// One execution of one of our orders.
#[derive(Debug, Clone)]
pub struct Fill {
    /// Trade id (the simulator's own sequence).
    pub trade_id: u64,
    /// Price (atoms).
    pub price: i64,
    /// Quantity (atoms).
    pub qty: i64,
    /// price × qty (atoms).
    pub quote: i128,
    /// Commission in the quote asset (atoms).
    pub commission: i128,
    /// Maker (resting) or taker.
    pub maker: bool,
}

/// What happened to an order, in order: becomes an executionReport.
#[derive(Debug, Clone)]
pub struct Execution {
    /// The order after this step.
    pub order: Order,
    /// Execution type (`x`).
    pub kind: ExecKind,
    /// The fill, for `Trade`.
    pub fill: Option<Fill>,
    /// The clientOrderId before a cancel (`C`), empty otherwise.
    pub orig_client_id: String,
    /// Transaction time (ms).
    pub time_ms: i64,
}

/// Binance execution types (`x`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecKind {
    /// Accepted into the book.
    New,
    /// Cancelled by the user.
    Canceled,
    /// A fill.
    Trade,
}

impl ExecKind {
    /// Binance's spelling.
    pub fn as_wire(self) -> &'static str {
        match self {
            ExecKind::New => "NEW",
            ExecKind::Canceled => "CANCELED",
            ExecKind::Trade => "TRADE",
        }
    }
}

/// A new order as requested (already parsed and type-checked by the protocol layer).
#[derive(Debug, Clone)]
pub struct NewOrder {
    /// Side.
    pub side: Side,
    /// Type.
    pub order_type: OrderType,
    /// Price (atoms).
    pub price: i64,
    /// Quantity (atoms).
    pub qty: i64,
    /// clientOrderId (generated by the caller when the request had none).
    pub client_id: String,
}

/// How an order to cancel is named.
#[derive(Debug, Clone, Default)]
pub struct OrderRef {
    /// `orderId`.
    pub order_id: Option<u64>,
    /// `origClientOrderId`.
    pub client_id: Option<String>,
}

/// Totals of our trading: the ground truth tests compare against.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    /// Number of fills.
    pub fills: u64,
    /// Maker fills.
    pub maker_fills: u64,
    /// Taker fills.
    pub taker_fills: u64,
    /// Quantity filled, both sides (atoms).
    pub filled_qty: i64,
    /// Quantity bought (atoms).
    pub bought_qty: i64,
    /// Quantity sold (atoms).
    pub sold_qty: i64,
    /// Quote traded, both sides (atoms).
    pub quote_volume: i128,
    /// Position in the base asset (atoms, + long).
    pub position: i64,
    /// Cash in the quote asset (atoms), net of fees.
    pub cash: i128,
    /// Fees paid in the quote asset (atoms).
    pub fees: i128,
    /// Orders accepted.
    pub accepted: u64,
    /// Orders cancelled.
    pub canceled: u64,
    /// Orders fully filled.
    pub filled_orders: u64,
}

/// One asset's balance (atoms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Balance {
    /// Total − locked.
    pub free: i128,
    /// Reserved by open orders.
    pub locked: i128,
}

/// The account's balances of the symbol's two assets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Balances {
    /// Base asset (BTC).
    pub base: Balance,
    /// Quote asset (USDT).
    pub quote: Balance,
}

/// Starting balance (atoms) of each asset when none is given: effectively unlimited.
const UNLIMITED: i128 = 1_000_000_000_000 * 100_000_000;

/// Our account's order book and the matching against the replayed market.
#[derive(Debug)]
pub struct Matcher {
    rules: Rules,
    maker_fee_bps_e8: i64,
    taker_fee_bps_e8: i64,
    queue_cancels: bool,
    open: BTreeMap<u64, Order>,
    next_order_id: u64,
    next_trade_id: u64,
    next_seq: u64,
    start_base: i128,
    start_quote: i128,
    /// Running totals.
    pub totals: Totals,
    /// When an order or a fill last changed the balances (ms; 0 = never).
    pub update_ms: i64,
}

impl Matcher {
    /// A matcher with no orders. Fees are in basis points × 10⁸ (so 1 bp = 100_000_000).
    pub fn new(
        rules: Rules,
        maker_fee_bps_e8: i64,
        taker_fee_bps_e8: i64,
        queue_cancels: bool,
    ) -> Self {
        Matcher {
            rules,
            maker_fee_bps_e8,
            taker_fee_bps_e8,
            queue_cancels,
            open: BTreeMap::new(),
            next_order_id: 1,
            next_trade_id: 1,
            next_seq: 0,
            start_base: UNLIMITED,
            start_quote: UNLIMITED,
            totals: Totals::default(),
            update_ms: 0,
        }
    }

    /// Sets the starting balances (atoms of the base and of the quote asset); without
    /// this call both are effectively unlimited.
    pub fn with_balances(mut self, base: i64, quote: i64) -> Self {
        self.start_base = i128::from(base);
        self.start_quote = i128::from(quote);
        self
    }

    /// The account's balances now (see the file doc).
    pub fn balances(&self) -> Balances {
        let (mut base_locked, mut quote_locked) = (0i128, 0i128);
        for o in self.open.values() {
            match o.side {
                Side::Buy => quote_locked += quote_of(o.price, o.remaining()),
                Side::Sell => base_locked += i128::from(o.remaining()),
            }
        }
        let base_total = self.start_base + i128::from(self.totals.position);
        let quote_total = self.start_quote + self.totals.cash;
        Balances {
            base: Balance {
                free: base_total - base_locked,
                locked: base_locked,
            },
            quote: Balance {
                free: quote_total - quote_locked,
                locked: quote_locked,
            },
        }
    }

    /// The commission rates, bps × 10⁸: (maker, taker).
    pub fn fees_bps_e8(&self) -> (i64, i64) {
        (self.maker_fee_bps_e8, self.taker_fee_bps_e8)
    }

    /// The trading rules.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Open orders, oldest first.
    pub fn open_orders(&self) -> Vec<&Order> {
        let mut orders: Vec<&Order> = self.open.values().collect();
        orders.sort_by_key(|o| o.seq);
        orders
    }

    /// Checks PRICE_FILTER, LOT_SIZE and NOTIONAL (-1013).
    pub fn check_filters(&self, price: i64, qty: i64) -> Result<(), Reject> {
        let r = &self.rules;
        if price < r.min_price || (r.max_price > 0 && price > r.max_price) || price % r.tick != 0 {
            return Err(Reject::new(-1013, "Filter failure: PRICE_FILTER"));
        }
        if qty < r.min_qty || (r.max_qty > 0 && qty > r.max_qty) || qty % r.step != 0 {
            return Err(Reject::new(-1013, "Filter failure: LOT_SIZE"));
        }
        let notional = quote_of(price, qty);
        if notional < i128::from(r.min_notional)
            || (r.max_notional > 0 && notional > i128::from(r.max_notional))
        {
            return Err(Reject::new(-1013, "Filter failure: NOTIONAL"));
        }
        Ok(())
    }

    /// Checks everything that would refuse `new` without changing anything.
    pub fn check_new(&self, new: &NewOrder, market: &Market) -> Result<(), Reject> {
        self.check_filters(new.price, new.qty)?;
        if self.open.len() >= self.rules.max_open_orders {
            return Err(Reject::new(-1013, "Filter failure: MAX_NUM_ORDERS"));
        }
        if self.open.values().any(|o| o.client_id == new.client_id) {
            return Err(Reject::new(-2010, "Duplicate order sent."));
        }
        let free = self.balances();
        let short = match new.side {
            Side::Buy => quote_of(new.price, new.qty) > free.quote.free,
            Side::Sell => i128::from(new.qty) > free.base.free,
        };
        if short {
            return Err(Reject::new(
                -2010,
                "Account has insufficient balance for requested action.",
            ));
        }
        if new.order_type == OrderType::LimitMaker && crosses(new.side, new.price, market) {
            return Err(Reject::new(
                -2010,
                "Order would immediately match and take.",
            ));
        }
        Ok(())
    }

    /// Places an order. On success returns the executions (NEW, then any taker TRADEs).
    pub fn place(
        &mut self,
        new: NewOrder,
        market: &Market,
        now_ms: i64,
    ) -> Result<Vec<Execution>, Reject> {
        self.check_new(&new, market)?;
        let mut order = Order {
            id: self.next_order_id,
            client_id: new.client_id,
            side: new.side,
            order_type: new.order_type,
            price: new.price,
            orig_qty: new.qty,
            executed_qty: 0,
            cum_quote: 0,
            status: Status::New,
            time_ms: now_ms,
            update_ms: now_ms,
            queue_ahead: 0,
            seq: self.next_seq,
        };
        self.next_order_id += 1;
        self.next_seq += 1;
        self.totals.accepted += 1;
        self.update_ms = now_ms;
        let mut out = vec![Execution {
            order: order.clone(),
            kind: ExecKind::New,
            fill: None,
            orig_client_id: String::new(),
            time_ms: now_ms,
        }];
        if order.order_type == OrderType::Limit && crosses(order.side, order.price, market) {
            for (price, displayed) in market.takeable(order.side.opposite(), order.price) {
                let qty = displayed.min(order.remaining());
                if qty <= 0 {
                    continue;
                }
                out.push(self.execute(&mut order, price, qty, false, now_ms));
                if order.remaining() == 0 {
                    break;
                }
            }
        }
        if order.remaining() > 0 {
            order.queue_ahead = market.displayed_at(order.side, order.price);
            self.open.insert(order.id, order);
        }
        Ok(out)
    }

    /// Finds an open order by id and/or client id (-2011 "Unknown order sent." otherwise).
    pub fn find(&self, by: &OrderRef) -> Result<u64, Reject> {
        let unknown = || Reject::new(-2011, "Unknown order sent.");
        let order = match (by.order_id, by.client_id.as_deref()) {
            (Some(id), client) => {
                let o = self.open.get(&id).ok_or_else(unknown)?;
                if client.is_some_and(|c| c != o.client_id) {
                    return Err(unknown());
                }
                o
            }
            (None, Some(client)) => self
                .open
                .values()
                .find(|o| o.client_id == client)
                .ok_or_else(unknown)?,
            (None, None) => return Err(unknown()),
        };
        Ok(order.id)
    }

    /// Cancels an open order; `new_client_id` becomes its clientOrderId.
    pub fn cancel(
        &mut self,
        by: &OrderRef,
        new_client_id: String,
        now_ms: i64,
    ) -> Result<Execution, Reject> {
        let id = self.find(by)?;
        let mut order = self
            .open
            .remove(&id)
            .ok_or_else(|| Reject::new(-2011, "Unknown order sent."))?;
        let orig_client_id = std::mem::replace(&mut order.client_id, new_client_id);
        order.status = Status::Canceled;
        order.update_ms = now_ms;
        self.totals.canceled += 1;
        self.update_ms = now_ms;
        Ok(Execution {
            order,
            kind: ExecKind::Canceled,
            fill: None,
            orig_client_id,
            time_ms: now_ms,
        })
    }

    /// Cancels every open order (oldest first); `client_id` names each cancel.
    pub fn cancel_all(
        &mut self,
        mut client_id: impl FnMut() -> String,
        now_ms: i64,
    ) -> Vec<Execution> {
        let ids: Vec<u64> = self.open_orders().iter().map(|o| o.id).collect();
        ids.into_iter()
            .filter_map(|id| {
                let by = OrderRef {
                    order_id: Some(id),
                    client_id: None,
                };
                self.cancel(&by, client_id(), now_ms).ok()
            })
            .collect()
    }

    /// A replayed trade: fills our orders by the model in the file doc.
    pub fn on_trade(&mut self, trade: &Trade, now_ms: i64) -> Vec<Execution> {
        let mut out = Vec::new();
        for side in [Side::Buy, Side::Sell] {
            let mut through: Vec<(i64, u64, u64)> = Vec::new();
            let mut at_price: Vec<(u64, u64)> = Vec::new();
            for o in self.open.values().filter(|o| o.side == side) {
                if is_better(side, o.price, trade.price) {
                    through.push((o.price, o.seq, o.id));
                } else if o.price == trade.price && maker_side(trade) == side {
                    at_price.push((o.seq, o.id));
                }
            }
            if through.is_empty() && at_price.is_empty() {
                continue;
            }
            // Best price first, then oldest.
            through.sort_by(|a, b| match side {
                Side::Buy => b.0.cmp(&a.0).then(a.1.cmp(&b.1)),
                Side::Sell => a.0.cmp(&b.0).then(a.1.cmp(&b.1)),
            });
            at_price.sort();
            let mut available = trade.qty;
            for (_, _, id) in through {
                if available <= 0 {
                    break;
                }
                if let Some(exec) = self.fill_open(id, available, now_ms) {
                    available -= exec.fill.as_ref().map_or(0, |f| f.qty);
                    out.push(exec);
                }
            }
            let mut used_at_level = 0i64;
            for (_, id) in at_price {
                let Some(order) = self.open.get_mut(&id) else {
                    continue;
                };
                let eaten = order.queue_ahead.min(available).max(0);
                order.queue_ahead -= eaten;
                let left = available - eaten - used_at_level;
                if left <= 0 {
                    continue;
                }
                if let Some(exec) = self.fill_open(id, left, now_ms) {
                    used_at_level += exec.fill.as_ref().map_or(0, |f| f.qty);
                    out.push(exec);
                }
            }
        }
        out
    }

    /// After the displayed book changed: with `queue_cancels`, a queue ahead longer than
    /// what is displayed at the order's price shrinks to it.
    pub fn on_book_change(&mut self, market: &Market) {
        if !self.queue_cancels {
            return;
        }
        for order in self.open.values_mut() {
            let displayed = market.displayed_at(order.side, order.price);
            if displayed < order.queue_ahead {
                order.queue_ahead = displayed;
            }
        }
    }

    /// Fills up to `max_qty` of an open order at its own price (maker).
    fn fill_open(&mut self, id: u64, max_qty: i64, now_ms: i64) -> Option<Execution> {
        let mut order = self.open.remove(&id)?;
        let qty = max_qty.min(order.remaining());
        if qty <= 0 {
            self.open.insert(id, order);
            return None;
        }
        let price = order.price;
        let exec = self.execute(&mut order, price, qty, true, now_ms);
        if order.remaining() > 0 {
            self.open.insert(id, order);
        }
        Some(exec)
    }

    /// Books one execution on `order` and the totals.
    fn execute(
        &mut self,
        order: &mut Order,
        price: i64,
        qty: i64,
        maker: bool,
        now_ms: i64,
    ) -> Execution {
        let quote = quote_of(price, qty);
        let fee_bps_e8 = if maker {
            self.maker_fee_bps_e8
        } else {
            self.taker_fee_bps_e8
        };
        let commission = quote * i128::from(fee_bps_e8) / 1_000_000_000_000;
        order.executed_qty += qty;
        order.cum_quote += quote;
        order.update_ms = now_ms;
        self.update_ms = now_ms;
        order.status = if order.remaining() == 0 {
            self.totals.filled_orders += 1;
            Status::Filled
        } else {
            Status::PartiallyFilled
        };
        let t = &mut self.totals;
        t.fills += 1;
        if maker {
            t.maker_fills += 1;
        } else {
            t.taker_fills += 1;
        }
        t.filled_qty += qty;
        t.quote_volume += quote;
        match order.side {
            Side::Buy => {
                t.bought_qty += qty;
                t.position += qty;
                t.cash -= quote;
            }
            Side::Sell => {
                t.sold_qty += qty;
                t.position -= qty;
                t.cash += quote;
            }
        }
        t.cash -= commission;
        t.fees += commission;
        let fill = Fill {
            trade_id: self.next_trade_id,
            price,
            qty,
            quote,
            commission,
            maker,
        };
        self.next_trade_id += 1;
        Execution {
            order: order.clone(),
            kind: ExecKind::Trade,
            fill: Some(fill),
            orig_client_id: String::new(),
            time_ms: now_ms,
        }
    }
}

/// price × qty in atoms of the quote asset.
pub fn quote_of(price: i64, qty: i64) -> i128 {
    i128::from(price) * i128::from(qty) / 100_000_000
}

/// True when an order at `price` on `side` would trade against the displayed market.
pub fn crosses(side: Side, price: i64, market: &Market) -> bool {
    match market.best(side.opposite()) {
        Some((best, _)) => match side {
            Side::Buy => price >= best,
            Side::Sell => price <= best,
        },
        None => false,
    }
}

/// The side whose resting orders a trade executed against (bids when the buyer was maker).
fn maker_side(trade: &Trade) -> Side {
    if trade.buyer_maker {
        Side::Buy
    } else {
        Side::Sell
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::Book;
    use crate::data::DepthSnapshot;

    const U: i64 = 100_000_000;
    const TICK: i64 = 1_000_000;

    fn rules() -> Rules {
        Rules {
            tick: TICK,
            min_price: TICK,
            max_price: 1_000_000 * U,
            step: 1_000,
            min_qty: 1_000,
            max_qty: 9_000 * U,
            min_notional: 5 * U,
            max_notional: 9_000_000 * U,
            max_open_orders: 200,
        }
    }

    /// Bids 100.00 × 2.0, asks 100.01 × 1.0.
    fn market() -> Market {
        Market {
            book: Book::from_snapshot(&DepthSnapshot {
                last_update_id: 1,
                bids: vec![(100 * U, 2 * U)],
                asks: vec![(100 * U + TICK, U)],
            }),
            ..Market::default()
        }
    }

    fn new(side: Side, order_type: OrderType, price: i64, qty: i64, id: &str) -> NewOrder {
        NewOrder {
            side,
            order_type,
            price,
            qty,
            client_id: id.to_string(),
        }
    }

    fn trade(price: i64, qty: i64, buyer_maker: bool) -> Trade {
        Trade {
            id: 1,
            price,
            qty,
            time_ms: 0,
            event_ms: 0,
            buyer_maker,
        }
    }

    fn fills(execs: &[Execution]) -> Vec<(String, i64)> {
        execs
            .iter()
            .filter_map(|e| e.fill.as_ref().map(|f| (e.order.client_id.clone(), f.qty)))
            .collect()
    }

    #[test]
    fn filters_and_maker_rejection() {
        let mut m = Matcher::new(rules(), 0, 0, false);
        let mk = market();
        let off_grid = new(Side::Buy, OrderType::LimitMaker, 100 * U + 1, U, "a");
        assert_eq!(
            m.place(off_grid, &mk, 0).unwrap_err().msg,
            "Filter failure: PRICE_FILTER"
        );
        let tiny = new(Side::Buy, OrderType::LimitMaker, 100 * U, 1_000, "a");
        assert_eq!(
            m.place(tiny, &mk, 0).unwrap_err().msg,
            "Filter failure: NOTIONAL"
        );
        let lot = new(Side::Buy, OrderType::LimitMaker, 100 * U, 1_500, "a");
        assert_eq!(
            m.place(lot, &mk, 0).unwrap_err().msg,
            "Filter failure: LOT_SIZE"
        );
        let crossing = new(Side::Buy, OrderType::LimitMaker, 100 * U + TICK, U, "a");
        let err = m.place(crossing, &mk, 0).unwrap_err();
        assert_eq!(
            (err.code, err.msg.as_str()),
            (-2010, "Order would immediately match and take.")
        );
        m.place(
            new(Side::Buy, OrderType::LimitMaker, 100 * U, U, "a"),
            &mk,
            0,
        )
        .unwrap();
        let dup = m.place(
            new(Side::Buy, OrderType::LimitMaker, 99 * U, U, "a"),
            &mk,
            0,
        );
        assert_eq!(dup.unwrap_err().msg, "Duplicate order sent.");
    }

    #[test]
    fn queue_position_then_fill() {
        let mut m = Matcher::new(rules(), 0, 0, false);
        let mk = market();
        let execs = m
            .place(
                new(Side::Buy, OrderType::LimitMaker, 100 * U, U, "q"),
                &mk,
                0,
            )
            .unwrap();
        assert_eq!(execs.len(), 1);
        assert_eq!(m.open_orders()[0].queue_ahead, 2 * U);
        // 1.0 traded at our price: the queue ahead (2.0) absorbs it.
        assert!(m.on_trade(&trade(100 * U, U, true), 1).is_empty());
        assert_eq!(m.open_orders()[0].queue_ahead, U);
        // A trade at our price with the buyer as taker is not on our side.
        assert!(m.on_trade(&trade(100 * U, 5 * U, false), 1).is_empty());
        // 1.5 more: 1.0 finishes the queue, 0.5 fills us (partial).
        let e = m.on_trade(&trade(100 * U, 3 * U / 2, true), 2);
        assert_eq!(fills(&e), vec![("q".to_string(), U / 2)]);
        assert_eq!(e[0].order.status, Status::PartiallyFilled);
        let e = m.on_trade(&trade(100 * U, U, true), 3);
        assert_eq!(fills(&e), vec![("q".to_string(), U / 2)]);
        assert_eq!(e[0].order.status, Status::Filled);
        assert!(m.open_orders().is_empty());
        assert_eq!(m.totals.position, U);
        assert_eq!(m.totals.cash, -100 * i128::from(U));
    }

    #[test]
    fn trade_through_fills_without_queue_and_respects_time_priority() {
        let mut m = Matcher::new(rules(), 100_000_000, 0, false); // 1 bp maker fee
        let mk = market();
        m.place(
            new(Side::Buy, OrderType::LimitMaker, 100 * U, U, "old"),
            &mk,
            0,
        )
        .unwrap();
        m.place(
            new(Side::Buy, OrderType::LimitMaker, 100 * U, U, "new"),
            &mk,
            0,
        )
        .unwrap();
        // A sell printing at 99.99 went through our bids: 1.5 fills old fully, new half.
        let e = m.on_trade(&trade(100 * U - TICK, 3 * U / 2, true), 1);
        assert_eq!(
            fills(&e),
            vec![("old".to_string(), U), ("new".to_string(), U / 2)]
        );
        let f = e[0].fill.as_ref().unwrap();
        assert_eq!(f.price, 100 * U);
        assert_eq!(f.commission, i128::from(100 * U / 10_000));
        assert!(f.maker);
        assert_eq!(
            m.totals.fees,
            i128::from(100 * U / 10_000 + 50 * U / 10_000)
        );
    }

    #[test]
    fn limit_crossing_takes_displayed_then_rests() {
        let mut m = Matcher::new(rules(), 0, 200_000_000, false); // 2 bp taker
        let mk = market();
        let e = m
            .place(
                new(Side::Buy, OrderType::Limit, 100 * U + TICK, 3 * U, "t"),
                &mk,
                0,
            )
            .unwrap();
        assert_eq!(e[0].kind, ExecKind::New);
        assert_eq!(fills(&e), vec![("t".to_string(), U)]);
        let f = e[1].fill.as_ref().unwrap();
        assert!(!f.maker);
        assert_eq!(f.price, 100 * U + TICK);
        assert_eq!(e[1].order.status, Status::PartiallyFilled);
        let open = m.open_orders();
        assert_eq!(open[0].remaining(), 2 * U);
        assert_eq!(m.totals.taker_fills, 1);
    }

    #[test]
    fn cancel_unknown_and_filled_are_2011() {
        let mut m = Matcher::new(rules(), 0, 0, false);
        let mk = market();
        let by = OrderRef {
            order_id: Some(42),
            client_id: None,
        };
        assert_eq!(m.cancel(&by, "x".into(), 0).unwrap_err().code, -2011);
        m.place(
            new(Side::Sell, OrderType::LimitMaker, 101 * U, U, "s"),
            &mk,
            0,
        )
        .unwrap();
        m.on_trade(&trade(102 * U, 2 * U, false), 1);
        let by = OrderRef {
            order_id: None,
            client_id: Some("s".into()),
        };
        assert_eq!(
            m.cancel(&by, "x".into(), 2).unwrap_err().msg,
            "Unknown order sent."
        );
    }

    #[test]
    fn balances_lock_free_and_refuse_what_is_not_there() {
        // 1 BTC and 150 USDT.
        let mut m = Matcher::new(rules(), 0, 0, false).with_balances(U, 150 * U);
        let mk = market();
        let broke = "Account has insufficient balance for requested action.";
        let b = m.balances();
        assert_eq!((b.base.free, b.base.locked), (i128::from(U), 0));
        // A buy of 2.0 at 99 needs 198 USDT.
        let err = m
            .place(
                new(Side::Buy, OrderType::LimitMaker, 99 * U, 2 * U, "big"),
                &mk,
                0,
            )
            .unwrap_err();
        assert_eq!((err.code, err.msg.as_str()), (-2010, broke));
        m.place(
            new(Side::Buy, OrderType::LimitMaker, 100 * U, U, "b"),
            &mk,
            0,
        )
        .unwrap();
        m.place(
            new(Side::Sell, OrderType::LimitMaker, 101 * U, 3 * U / 4, "s"),
            &mk,
            0,
        )
        .unwrap();
        let b = m.balances();
        assert_eq!(
            (b.quote.free, b.quote.locked),
            (i128::from(50 * U), i128::from(100 * U))
        );
        assert_eq!(
            (b.base.free, b.base.locked),
            (i128::from(U / 4), i128::from(3 * U / 4))
        );
        // 0.5 BTC more to sell is more than the 0.25 free.
        let err = m.place(
            new(Side::Sell, OrderType::LimitMaker, 102 * U, U / 2, "s2"),
            &mk,
            0,
        );
        assert_eq!(err.unwrap_err().msg, broke);
        // A fill of half the bid: 0.5 BTC in, 50 USDT out, 50 still locked.
        m.on_trade(&trade(100 * U - TICK, U / 2, true), 1);
        let b = m.balances();
        assert_eq!(b.base.free + b.base.locked, i128::from(3 * U / 2));
        assert_eq!(
            (b.quote.free, b.quote.locked),
            (i128::from(50 * U), i128::from(50 * U))
        );
        assert_eq!(m.update_ms, 1);
        // Cancelling releases the lock.
        let by = OrderRef {
            order_id: None,
            client_id: Some("b".into()),
        };
        m.cancel(&by, "x".into(), 2).unwrap();
        assert_eq!(
            m.balances().quote,
            Balance {
                free: i128::from(100 * U),
                locked: 0
            }
        );
    }

    #[test]
    fn queue_cancels_move_us_up() {
        let mut m = Matcher::new(rules(), 0, 0, true);
        let mut mk = market();
        m.place(
            new(Side::Buy, OrderType::LimitMaker, 100 * U, U, "c"),
            &mk,
            0,
        )
        .unwrap();
        mk.book.apply(&crate::data::DepthUpdate {
            first_id: 2,
            last_id: 2,
            bids: vec![(100 * U, U / 2)],
            asks: vec![],
        });
        m.on_book_change(&mk);
        assert_eq!(m.open_orders()[0].queue_ahead, U / 2);
    }
}
