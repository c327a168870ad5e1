//! The simulated venue: our orders matched in-process against the market the engine sees,
//! with order-entry and report latency, queue position, partial fills and maker fees.
//! Paper trading and backtests use it; the local exchange (tools/mm-exchange, matching.rs)
//! applies the same rules independently, so the two check each other.
//!
//! The model, in the order it is applied:
//! - **Latency.** An action submitted at `t` reaches the matching at `t + entry latency`;
//!   everything the matching produces at `m` is reported at `m + ack latency`. Latencies
//!   come from `LatencyModel`s (constant, uniform, or lognormal-ish) drawn from one seeded
//!   `ChaCha8Rng`. Actions reach the matching in the order they were submitted, and
//!   reports come back in the order they were produced (one order-entry connection, one
//!   user-data stream): a draw that would overtake is delayed to the one before it.
//! - **Arrival.** Exchange filters first (price > 0, qty > 0, minNotional: -1013), then
//!   `SIM_ORDERS_MAX` open orders (-1013), a duplicate open client id (-2010), and a
//!   LIMIT_MAKER that would cross the best opposite price *at arrival* (-2010 "would
//!   immediately match and take"). Otherwise it rests behind the quantity displayed at its
//!   price at arrival (`queue_ahead`; 0 at a new or empty level).
//! - **Trades.** A public trade at price P for quantity V fills, per side: first our
//!   orders priced *through* P (a bid above P, an ask below P), best price first then
//!   oldest, up to V in total — whoever the aggressor was: a print below our bid means
//!   someone sold below our price, and price priority puts our bid ahead of that; then our
//!   orders *at* P on the maker side of the trade (bids when the aggressor sold), oldest
//!   first: V first eats the market queue ahead of each (`queue_ahead` shrinks by what
//!   reached it), and what is left after that queue and after our older orders at P fills
//!   the order, partially if need be. A trade at our price on our own side (the aggressor
//!   was on our side) leaves us alone. Fills are maker fills at the order's price. The
//!   book crossing our price without a trade fills nothing.
//! - **Cancellations ahead (optional, `queue_cancels`).** When the displayed quantity at
//!   an order's price falls below its `queue_ahead`, the queue ahead shrinks to it.
//! - **Cancel / cancel-replace / cancel-all** at arrival: a cancel of an order that is not
//!   resting is refused (-2011); cancel-replace is STOP_ON_FAILURE: the new order's filters
//!   are checked first (both legs -1013), a failed cancel refuses the new order (-2022), a
//!   successful one is followed by the new order's placement as above.
//! - **Money.** value = price × qty in quote atoms (truncated); fee = value ×
//!   `maker_fee_centibps` / 10⁶, truncated toward zero (negative = rebate).
//! - **Queue position at fill.** Every fill leaves a `QueueAtFill` (the displayed size ahead
//!   when the order joined, and what was left ahead when it filled: 0 for a trade through
//!   the price, which swept the level) in a ring of `SIM_QUEUE_LOG_MAX` allocated in `new`;
//!   `drain_queue_log` hands them out, and when nobody drains (paper trading) the oldest
//!   are overwritten and counted (`SimStats::queue_log_overwritten`).
//!
//! Deterministic: the same calls with the same parameters (seed included) give the same
//! events, bit for bit — no hash maps, no clock, one RNG.
//!
//! Hot path. Never allocates after `new` (its rings and order table are allocated there),
//! reads the clock, panics or uses a float (the lognormal table is computed in `new`).
//! Never loses a report: when its report ring could overflow it refuses new actions
//! (`SubmitError::QueueFull`) and skips fills (counted) rather than drop an event.

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::feed::Trade;
use crate::orders::{slot_indices, Action, ClientOrderId, VenueEvent, CODE_UNKNOWN_ORDER};
use crate::risk::Approved;
use crate::types::{Price, Qty, Side, SymbolSpec};
use crate::venue::{MarketView, SubmitError, Venue};

/// Orders resting in the simulated book at once (our orders only).
pub const SIM_ORDERS_MAX: usize = 64;

/// Actions in flight between submit and arrival.
pub const SIM_INFLIGHT_MAX: usize = 256;

/// Events produced and not yet reported. Every in-flight action reserves the reports it
/// can produce (a cancel-all: one per resting order), so the ring never overflows.
pub const SIM_REPORTS_MAX: usize = 4_096;

/// Binance: filter failure (PRICE_FILTER, LOT_SIZE, NOTIONAL, MAX_NUM_ORDERS).
pub const CODE_FILTER_FAILURE: i32 = -1013;
/// Binance: new order rejected (LIMIT_MAKER would take; duplicate client id).
pub const CODE_NEW_ORDER_REJECTED: i32 = -2010;
/// Binance: cancel-replace failed (the cancel leg failed, the new order was not tried).
pub const CODE_CANCEL_REPLACE_FAILED: i32 = -2022;

/// Entries of the lognormal-ish latency table: sums of 12 random bytes, 0..=12·255.
const LOGNORMAL_TABLE_LEN: usize = 12 * 255 + 1;

/// Fills whose queue position is kept until `drain_queue_log` (a trade fills at most
/// `SIM_ORDERS_MAX` of our orders, and a backtest drains after every event).
pub const SIM_QUEUE_LOG_MAX: usize = 1_024;

const _: () = assert!(SIM_REPORTS_MAX >= 4 * SIM_ORDERS_MAX);
const _: () = assert!(SIM_QUEUE_LOG_MAX >= SIM_ORDERS_MAX);
const _: () = assert!(SIM_INFLIGHT_MAX >= 2);

/// A latency distribution, ns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LatencyModel {
    /// Always `ns`.
    Constant {
        /// Latency, ns.
        ns: u64,
    },
    /// Uniform on `[min_ns, max_ns]`.
    Uniform {
        /// Smallest latency, ns.
        min_ns: u64,
        /// Largest latency, ns (≥ `min_ns`).
        max_ns: u64,
    },
    /// Lognormal-ish: `median_ns · exp(σ·z)`, z an Irwin–Hall(12) approximation of a
    /// standard normal (tails cut at ±6), capped at `max_ns`.
    LogNormal {
        /// Median latency, ns.
        median_ns: u64,
        /// σ of ln(latency), in thousandths (500 = 0.5).
        sigma_milli: u32,
        /// Cap, ns (≥ `median_ns`).
        max_ns: u64,
    },
}

impl LatencyModel {
    fn validate(&self) -> Result<(), SimParamsError> {
        match *self {
            LatencyModel::Constant { .. } => Ok(()),
            LatencyModel::Uniform { min_ns, max_ns } if min_ns <= max_ns => Ok(()),
            LatencyModel::LogNormal {
                median_ns, max_ns, ..
            } if median_ns <= max_ns => Ok(()),
            _ => Err(SimParamsError::Latency),
        }
    }
}

/// Parameters of the simulated venue. `Default` holds the documented defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimParams {
    /// Order send → arrival at the matching. Default constant 5 ms.
    pub entry_latency: LatencyModel,
    /// Matching → report seen by the engine (acks, fills, cancels). Default constant 5 ms.
    pub ack_latency: LatencyModel,
    /// Maker fee, centi-basis-points of the traded value (1 = 10⁻⁶; Binance's regular
    /// 0.1 % is 1,000, 0.075 % with BNB 750; negative = rebate). Default 0, like the local
    /// exchange's default.
    pub maker_fee_centibps: i64,
    /// Shrink the queue ahead when the displayed level shrinks below it. Default off.
    pub queue_cancels: bool,
    /// Seed of the one RNG (latency draws). Default 1.
    pub seed: u64,
}

impl Default for SimParams {
    fn default() -> Self {
        SimParams {
            entry_latency: LatencyModel::Constant { ns: 5_000_000 },
            ack_latency: LatencyModel::Constant { ns: 5_000_000 },
            maker_fee_centibps: 0,
            queue_cancels: false,
            seed: 1,
        }
    }
}

/// Why `SimParams` was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimParamsError {
    /// A latency model with min > max or median > max.
    Latency,
    /// |maker_fee_centibps| above 10⁶ (100 %).
    Fee,
}

impl std::fmt::Display for SimParamsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SimParamsError::Latency => "latency model: min/median must not exceed max",
            SimParamsError::Fee => "maker_fee_centibps must be within ±1,000,000",
        })
    }
}

impl std::error::Error for SimParamsError {}

/// The simulated venue's own accounting and counters: the ground truth tests compare the
/// order manager against.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Actions taken by `submit`.
    pub submitted: u64,
    /// Actions refused by `submit` (queue full).
    pub refused: u64,
    /// Orders accepted onto the book.
    pub accepted: u64,
    /// New orders rejected.
    pub rejected: u64,
    /// Orders cancelled.
    pub canceled: u64,
    /// Cancels refused.
    pub cancel_rejected: u64,
    /// Fills.
    pub fills: u64,
    /// Fills not made because the report ring was full.
    pub fills_skipped: u64,
    /// Position, lots (+ long).
    pub position_lots: i64,
    /// Cash, quote atoms, net of fees.
    pub cash_atoms: i64,
    /// Fees, quote atoms.
    pub fees_atoms: i64,
    /// Time of the latest fill, ns (0 before any).
    pub last_fill_ns: u64,
    /// Reports lost to a full ring: always 0 (room is reserved at submit); counted to
    /// prove it.
    pub reports_dropped: u64,
    /// `QueueAtFill` records overwritten before anyone drained them.
    pub queue_log_overwritten: u64,
}

/// Where one fill found its order in the queue at its price, lots of displayed size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueAtFill {
    /// The order.
    pub id: ClientOrderId,
    /// The fill's trade id (as in its `VenueEvent::Fill`).
    pub trade_id: u64,
    /// Displayed size at the order's price when it arrived at the matching.
    pub ahead_at_join: Qty,
    /// Displayed size still ahead of it when it filled (0 when the trade went through the
    /// price).
    pub ahead_at_fill: Qty,
    /// The trade went through the order's price (rather than reaching it in the queue).
    pub through: bool,
}

/// One of our orders resting in the simulated book.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimOrder {
    /// Our id.
    pub id: ClientOrderId,
    /// Side.
    pub side: Side,
    /// Price, ticks.
    pub price: Price,
    /// Size, lots.
    pub qty: Qty,
    /// Filled so far, lots.
    pub filled: Qty,
    /// Market quantity ahead of it at its price, lots.
    pub queue_ahead: Qty,
    /// `queue_ahead` when it arrived, lots.
    pub queue_ahead_at_join: Qty,
    /// When it reached the matching, ns.
    pub arrived_ns: u64,
    /// Arrival sequence (time priority among ours).
    seq: u64,
}

impl SimOrder {
    fn remaining(&self) -> i64 {
        self.qty.0 - self.filled.0
    }
}

/// The simulated venue for one symbol.
pub struct SimVenue {
    params: SimParams,
    spec: SymbolSpec,
    rng: ChaCha8Rng,
    entry: Sampler,
    ack: Sampler,
    inflight: Ring<InFlight>,
    reports: Ring<Report>,
    queue_log: Ring<QueueAtFill>,
    /// Report slots promised to in-flight actions.
    reserved: usize,
    resting: [Option<SimOrder>; SIM_ORDERS_MAX],
    /// Bit `i` set iff `resting[i]` holds an order: the per-event passes (every trade,
    /// every book change) visit these slots only. Kept in step by `put_resting`.
    occupied: u64,
    last_arrival_ns: u64,
    last_report_ns: u64,
    next_seq: u64,
    next_trade_id: u64,
    stats: SimStats,
}

impl SimVenue {
    /// A venue with no orders; allocates its rings here, once.
    pub fn new(params: SimParams, spec: SymbolSpec) -> Result<SimVenue, SimParamsError> {
        params.entry_latency.validate()?;
        params.ack_latency.validate()?;
        if params.maker_fee_centibps.unsigned_abs() > 1_000_000 {
            return Err(SimParamsError::Fee);
        }
        Ok(SimVenue {
            params,
            spec,
            rng: ChaCha8Rng::seed_from_u64(params.seed),
            entry: Sampler::new(params.entry_latency),
            ack: Sampler::new(params.ack_latency),
            inflight: Ring::new(
                SIM_INFLIGHT_MAX,
                InFlight {
                    arrival_ns: 0,
                    action: Action::CancelAll,
                },
            ),
            reports: Ring::new(
                SIM_REPORTS_MAX,
                Report {
                    due_ns: 0,
                    event: VenueEvent::Canceled {
                        id: ClientOrderId(0),
                    },
                },
            ),
            queue_log: Ring::new(
                SIM_QUEUE_LOG_MAX,
                QueueAtFill {
                    id: ClientOrderId(0),
                    trade_id: 0,
                    ahead_at_join: Qty(0),
                    ahead_at_fill: Qty(0),
                    through: false,
                },
            ),
            reserved: 0,
            resting: [None; SIM_ORDERS_MAX],
            occupied: 0,
            last_arrival_ns: 0,
            last_report_ns: 0,
            next_seq: 0,
            next_trade_id: 1,
            stats: SimStats::default(),
        })
    }

    /// The parameters.
    pub fn params(&self) -> &SimParams {
        &self.params
    }

    /// Accounting and counters since `new`.
    pub fn stats(&self) -> &SimStats {
        &self.stats
    }

    /// Our orders resting in the simulated book, in table order.
    pub fn resting(&self) -> impl Iterator<Item = &SimOrder> + '_ {
        self.resting.iter().flatten()
    }

    /// Actions submitted and not yet arrived.
    pub fn in_flight(&self) -> usize {
        self.inflight.len
    }

    /// Events produced and not yet reported.
    pub fn pending_reports(&self) -> usize {
        self.reports.len
    }

    /// Hands out (oldest first) and forgets the queue positions of the fills since the
    /// last call. Never allocates.
    pub fn drain_queue_log<F: FnMut(QueueAtFill)>(&mut self, mut out: F) {
        while let Some(entry) = self.queue_log.front() {
            self.queue_log.pop();
            out(entry);
        }
    }

    // -- arrival -------------------------------------------------------------------------

    fn arrive<M: MarketView>(&mut self, at_ns: u64, action: Action, market: &M) {
        match action {
            Action::Place { id, order } => self.place(at_ns, id, order, market),
            Action::Cancel { id } => {
                if self.cancel(at_ns, id).is_none() {
                    self.stats.cancel_rejected += 1;
                    self.emit(
                        at_ns,
                        VenueEvent::CancelRejected {
                            id,
                            code: CODE_UNKNOWN_ORDER,
                        },
                    );
                }
            }
            Action::CancelReplace {
                cancel_id,
                new_id,
                order,
            } => {
                // "Filters and order count limits are evaluated before cancellation."
                if !self.passes_filters(&order) {
                    self.stats.cancel_rejected += 1;
                    self.stats.rejected += 1;
                    self.emit(
                        at_ns,
                        VenueEvent::CancelRejected {
                            id: cancel_id,
                            code: CODE_FILTER_FAILURE,
                        },
                    );
                    self.emit(
                        at_ns,
                        VenueEvent::Rejected {
                            id: new_id,
                            code: CODE_FILTER_FAILURE,
                        },
                    );
                    return;
                }
                if self.cancel(at_ns, cancel_id).is_none() {
                    self.stats.cancel_rejected += 1;
                    self.stats.rejected += 1;
                    self.emit(
                        at_ns,
                        VenueEvent::CancelRejected {
                            id: cancel_id,
                            code: CODE_UNKNOWN_ORDER,
                        },
                    );
                    self.emit(
                        at_ns,
                        VenueEvent::Rejected {
                            id: new_id,
                            code: CODE_CANCEL_REPLACE_FAILED,
                        },
                    );
                    return;
                }
                self.place(at_ns, new_id, order, market);
            }
            Action::CancelAll => {
                // Oldest first, as the exchange lists them.
                while let Some(index) = self.oldest_resting() {
                    if let Some(order) = self.resting[index] {
                        self.cancel(at_ns, order.id);
                    }
                }
            }
        }
    }

    fn place<M: MarketView>(&mut self, at_ns: u64, id: ClientOrderId, order: Approved, market: &M) {
        let code = if !self.passes_filters(&order) {
            Some(CODE_FILTER_FAILURE)
        } else if self.resting().any(|o| o.id == id) || crosses(order.side(), order.price(), market)
        {
            // A duplicate open client id, or a LIMIT_MAKER that would take.
            Some(CODE_NEW_ORDER_REJECTED)
        } else {
            None
        };
        let free = self.resting.iter().position(Option::is_none);
        let (code, free) = match (code, free) {
            (None, Some(free)) => (None, free),
            (None, None) => (Some(CODE_FILTER_FAILURE), 0),
            (code, _) => (code, 0),
        };
        if let Some(code) = code {
            self.stats.rejected += 1;
            self.emit(at_ns, VenueEvent::Rejected { id, code });
            return;
        }
        let side = order.side();
        let price = order.price();
        let ahead = market.displayed_at(side, price);
        self.put_resting(
            free,
            Some(SimOrder {
                id,
                side,
                price,
                qty: order.qty(),
                filled: Qty(0),
                queue_ahead: ahead,
                queue_ahead_at_join: ahead,
                arrived_ns: at_ns,
                seq: self.next_seq,
            }),
        );
        self.next_seq += 1;
        self.stats.accepted += 1;
        self.emit(
            at_ns,
            VenueEvent::Accepted {
                id,
                exch_ts_ms: at_ns / 1_000_000,
            },
        );
    }

    /// Removes a resting order and reports the cancel; `None` if it is not resting.
    fn cancel(&mut self, at_ns: u64, id: ClientOrderId) -> Option<()> {
        let index = self
            .resting
            .iter()
            .position(|slot| slot.is_some_and(|o| o.id == id))?;
        self.put_resting(index, None);
        self.stats.canceled += 1;
        self.emit(at_ns, VenueEvent::Canceled { id });
        Some(())
    }

    fn passes_filters(&self, order: &Approved) -> bool {
        order.price().0 > 0
            && order.qty().0 > 0
            && self.spec.meets_min_notional(order.price(), order.qty())
    }

    fn oldest_resting(&self) -> Option<usize> {
        let mut best: Option<(u64, usize)> = None;
        for (index, slot) in self.resting.iter().enumerate() {
            if let Some(order) = slot {
                if best.is_none_or(|(seq, _)| order.seq < seq) {
                    best = Some((order.seq, index));
                }
            }
        }
        best.map(|(_, index)| index)
    }

    // -- matching ------------------------------------------------------------------------

    fn match_side(&mut self, now_ns: u64, side: Side, trade: &Trade) {
        let maker_side = trade.aggressor.opposite();
        // Ours priced through the trade, and ours at its price on the maker side (slot
        // bits, ascending).
        let mut through_mask = 0u64;
        let mut at_mask = 0u64;
        for index in slot_indices(self.occupied) {
            let Some(order) = &self.resting[index] else {
                continue;
            };
            if order.side != side {
                continue;
            }
            let is_through = match side {
                Side::Buy => order.price > trade.price,
                Side::Sell => order.price < trade.price,
            };
            if is_through {
                through_mask |= 1 << index;
            } else if order.price == trade.price && side == maker_side {
                at_mask |= 1 << index;
            }
        }
        if through_mask == 0 && at_mask == 0 {
            return;
        }
        // Their indices in fixed arrays, sorted in place (no allocation).
        let (mut through, through_len) = slot_list(through_mask);
        let (mut at_price, at_len) = slot_list(at_mask);
        let resting = &self.resting;
        let key = |index: &usize| {
            resting[*index].map_or((i64::MAX, u64::MAX), |o| {
                let priority = match side {
                    Side::Buy => -o.price.0,
                    Side::Sell => o.price.0,
                };
                (priority, o.seq)
            })
        };
        through[..through_len].sort_unstable_by_key(key);
        at_price[..at_len].sort_unstable_by_key(key);

        let mut available = trade.qty.0;
        for &index in &through[..through_len] {
            if available <= 0 {
                break;
            }
            available -= self.fill(now_ns, index, available, true);
        }
        let mut used_at_level = 0i64;
        for &index in &at_price[..at_len] {
            let Some(order) = self.resting[index].as_mut() else {
                continue;
            };
            let eaten = order.queue_ahead.0.min(available).max(0);
            order.queue_ahead.0 -= eaten;
            let left = available - eaten - used_at_level;
            if left <= 0 {
                continue;
            }
            used_at_level += self.fill(now_ns, index, left, false);
        }
    }

    /// Fills up to `max_lots` of resting order `index` at its price (`through`: the trade
    /// went through it); returns the lots filled (0 if the report ring has no room: the
    /// fill is skipped and counted).
    fn fill(&mut self, now_ns: u64, index: usize, max_lots: i64, through: bool) -> i64 {
        let Some(mut order) = self.resting[index] else {
            return 0;
        };
        let lots = max_lots.min(order.remaining());
        if lots <= 0 {
            return 0;
        }
        if self.reports.len + self.reserved >= SIM_REPORTS_MAX {
            self.stats.fills_skipped += 1;
            return 0;
        }
        order.filled.0 += lots;
        let value = self.spec.notional_atoms(order.price, Qty(lots));
        let fee = value * i128::from(self.params.maker_fee_centibps) / 1_000_000;
        let value = saturate(value);
        let fee = saturate(fee);
        let s = &mut self.stats;
        s.fills += 1;
        s.last_fill_ns = now_ns;
        match order.side {
            Side::Buy => {
                s.position_lots = s.position_lots.saturating_add(lots);
                s.cash_atoms = s.cash_atoms.saturating_sub(value);
            }
            Side::Sell => {
                s.position_lots = s.position_lots.saturating_sub(lots);
                s.cash_atoms = s.cash_atoms.saturating_add(value);
            }
        }
        s.cash_atoms = s.cash_atoms.saturating_sub(fee);
        s.fees_atoms = s.fees_atoms.saturating_add(fee);
        let trade_id = self.next_trade_id;
        self.next_trade_id += 1;
        self.log_queue(QueueAtFill {
            id: order.id,
            trade_id,
            ahead_at_join: order.queue_ahead_at_join,
            ahead_at_fill: if through { Qty(0) } else { order.queue_ahead },
            through,
        });
        self.put_resting(index, (order.remaining() > 0).then_some(order));
        self.emit(
            now_ns,
            VenueEvent::Fill {
                id: order.id,
                price: order.price,
                qty: Qty(lots),
                cum_qty: order.filled,
                fee_quote_atoms: fee,
                is_maker: true,
                exch_ts_ms: now_ns / 1_000_000,
                trade_id,
            },
        );
        lots
    }

    /// Writes resting slot `index` and keeps `occupied` in step with it.
    #[inline]
    fn put_resting(&mut self, index: usize, order: Option<SimOrder>) {
        let Some(slot) = self.resting.get_mut(index) else {
            return;
        };
        *slot = order;
        let bit = 1u64 << index;
        if order.is_some() {
            self.occupied |= bit;
        } else {
            self.occupied &= !bit;
        }
    }

    /// Keeps a fill's queue position, overwriting the oldest when nobody drains.
    fn log_queue(&mut self, entry: QueueAtFill) {
        if self.queue_log.len >= SIM_QUEUE_LOG_MAX {
            self.queue_log.pop();
            self.stats.queue_log_overwritten += 1;
        }
        self.queue_log.push(entry);
    }

    // -- reports -------------------------------------------------------------------------

    /// Queues an event produced at `at_ns`, due after the ack latency (never before the
    /// previous one: reports keep their order).
    fn emit(&mut self, at_ns: u64, event: VenueEvent) {
        let due = at_ns
            .saturating_add(self.ack.sample(&mut self.rng))
            .max(self.last_report_ns);
        self.last_report_ns = due;
        // Room was reserved at submit (or checked in `fill`); a full ring here would be a
        // bug in that accounting: the event is then counted as dropped, never a panic.
        if !self.reports.push(Report { due_ns: due, event }) {
            self.stats.reports_dropped += 1;
        }
    }
}

impl Venue for SimVenue {
    fn submit(&mut self, now_ns: u64, action: &Action) -> Result<(), SubmitError> {
        let need = reports_needed(action);
        if self.inflight.len >= SIM_INFLIGHT_MAX
            || self.reports.len + self.reserved + need > SIM_REPORTS_MAX
        {
            self.stats.refused += 1;
            return Err(SubmitError::QueueFull);
        }
        let arrival = now_ns
            .saturating_add(self.entry.sample(&mut self.rng))
            .max(self.last_arrival_ns);
        self.last_arrival_ns = arrival;
        if !self.inflight.push(InFlight {
            arrival_ns: arrival,
            action: *action,
        }) {
            self.stats.refused += 1;
            return Err(SubmitError::QueueFull);
        }
        self.reserved += need;
        self.stats.submitted += 1;
        Ok(())
    }

    fn advance<M: MarketView>(&mut self, now_ns: u64, market: &M) {
        while let Some(front) = self.inflight.front() {
            if front.arrival_ns > now_ns {
                break;
            }
            self.inflight.pop();
            self.reserved = self.reserved.saturating_sub(reports_needed(&front.action));
            self.arrive(front.arrival_ns, front.action, market);
        }
    }

    fn on_trade(&mut self, now_ns: u64, trade: &Trade) {
        if trade.qty.0 <= 0 {
            return;
        }
        self.match_side(now_ns, Side::Buy, trade);
        self.match_side(now_ns, Side::Sell, trade);
    }

    fn on_book_change<M: MarketView>(&mut self, _now_ns: u64, market: &M) {
        if !self.params.queue_cancels {
            return;
        }
        for index in slot_indices(self.occupied) {
            let Some(order) = self.resting[index].as_mut() else {
                continue;
            };
            let displayed = market.displayed_at(order.side, order.price);
            if displayed < order.queue_ahead {
                order.queue_ahead = displayed;
            }
        }
    }

    fn poll_events<F: FnMut(VenueEvent)>(&mut self, now_ns: u64, out: &mut F) {
        while let Some(front) = self.reports.front() {
            if front.due_ns > now_ns {
                break;
            }
            self.reports.pop();
            out(front.event);
        }
    }

    fn next_due_ns(&self) -> Option<u64> {
        let arrival = self.inflight.front().map(|f| f.arrival_ns);
        let report = self.reports.front().map(|r| r.due_ns);
        match (arrival, report) {
            (Some(a), Some(r)) => Some(a.min(r)),
            (a, r) => a.or(r),
        }
    }
}

/// The slot indices of `mask`'s set bits, ascending, in a fixed array, and how many.
fn slot_list(mask: u64) -> ([usize; SIM_ORDERS_MAX], usize) {
    let mut list = [0usize; SIM_ORDERS_MAX];
    let mut len = 0;
    for index in slot_indices(mask) {
        if let Some(slot) = list.get_mut(len) {
            *slot = index;
            len += 1;
        }
    }
    (list, len)
}

// `occupied` is one bit per resting slot in a u64.
const _: () = assert!(SIM_ORDERS_MAX <= 64);

/// Reports an action can produce at arrival.
fn reports_needed(action: &Action) -> usize {
    match action {
        Action::Place { .. } | Action::Cancel { .. } => 1,
        Action::CancelReplace { .. } => 2,
        Action::CancelAll => SIM_ORDERS_MAX,
    }
}

/// True when a post-only order at `price` would trade against the displayed market.
fn crosses<M: MarketView>(side: Side, price: Price, market: &M) -> bool {
    match market.best(side.opposite()) {
        Some(best) => match side {
            Side::Buy => price >= best.price,
            Side::Sell => price <= best.price,
        },
        None => false,
    }
}

fn saturate(value: i128) -> i64 {
    i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX })
}

// ---------------------------------------------------------------------------------------
// Latency sampling
// ---------------------------------------------------------------------------------------

enum Sampler {
    Constant(u64),
    Uniform(u64, u64),
    /// Latency per Irwin–Hall sum (index = sum of 12 random bytes).
    Table(Box<[u64]>),
}

impl Sampler {
    fn new(model: LatencyModel) -> Sampler {
        match model {
            LatencyModel::Constant { ns } => Sampler::Constant(ns),
            LatencyModel::Uniform { min_ns, max_ns } => Sampler::Uniform(min_ns, max_ns),
            LatencyModel::LogNormal {
                median_ns,
                sigma_milli,
                max_ns,
            } => {
                // Sum of 12 uniform bytes: mean 1530, standard deviation 255.998 ≈ 256.
                let sigma = f64::from(sigma_milli) / 1_000.0;
                let table: Vec<u64> = (0..LOGNORMAL_TABLE_LEN)
                    .map(|sum| {
                        let z = (sum as f64 - 1_530.0) / 256.0;
                        let ns = median_ns as f64 * (sigma * z).exp();
                        if ns >= max_ns as f64 {
                            max_ns
                        } else {
                            ns.round() as u64
                        }
                    })
                    .collect();
                Sampler::Table(table.into_boxed_slice())
            }
        }
    }

    fn sample(&self, rng: &mut ChaCha8Rng) -> u64 {
        match self {
            Sampler::Constant(ns) => *ns,
            Sampler::Uniform(min, max) => rng.random_range(*min..=*max),
            Sampler::Table(table) => {
                let a = rng.next_u64().to_le_bytes();
                let b = rng.next_u32().to_le_bytes();
                let sum: usize = a
                    .iter()
                    .chain(b.iter())
                    .map(|&byte| usize::from(byte))
                    .sum();
                table.get(sum).copied().unwrap_or(0)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Rings
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
struct InFlight {
    arrival_ns: u64,
    action: Action,
}

#[derive(Clone, Copy, Debug)]
struct Report {
    due_ns: u64,
    event: VenueEvent,
}

/// A FIFO of `Copy` records in a buffer allocated once.
struct Ring<T: Copy> {
    items: Box<[T]>,
    head: usize,
    len: usize,
}

impl<T: Copy> Ring<T> {
    fn new(capacity: usize, fill: T) -> Ring<T> {
        Ring {
            items: vec![fill; capacity.max(1)].into_boxed_slice(),
            head: 0,
            len: 0,
        }
    }

    fn push(&mut self, item: T) -> bool {
        let capacity = self.items.len();
        if self.len >= capacity {
            return false;
        }
        let tail = (self.head + self.len) % capacity;
        self.items[tail] = item;
        self.len += 1;
        true
    }

    fn front(&self) -> Option<T> {
        (self.len > 0).then(|| self.items[self.head])
    }

    fn pop(&mut self) {
        if self.len > 0 {
            self.head = (self.head + 1) % self.items.len();
            self.len -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::Book;
    use crate::feed::{Level, TradeKind};
    use crate::risk::{Exposure, Risk, RiskLimits};
    use crate::types::Symbol;

    fn spec() -> SymbolSpec {
        SymbolSpec::from_decimals(Symbol::new("BTCUSDT").unwrap(), "0.01", "0.00001", "5").unwrap()
    }

    fn approve(side: Side, price: i64, qty: i64) -> Approved {
        let mut risk = Risk::new(RiskLimits::default(), spec()).unwrap();
        risk.on_market_data(0);
        risk.check(side, Price(price), Qty(qty), &Exposure::default())
            .unwrap()
    }

    /// A venue with no latency either way.
    fn instant_venue() -> SimVenue {
        let params = SimParams {
            entry_latency: LatencyModel::Constant { ns: 0 },
            ack_latency: LatencyModel::Constant { ns: 0 },
            ..SimParams::default()
        };
        SimVenue::new(params, spec()).unwrap()
    }

    fn trade(price: i64, qty: i64, aggressor: Side) -> Trade {
        Trade {
            kind: TradeKind::Trade,
            trade_id: 1,
            first_trade_id: 1,
            last_trade_id: 1,
            price: Price(price),
            qty: Qty(qty),
            aggressor,
            trade_ts_ms: 0,
            exch_ts_ms: 0,
            local_ts_ns: 0,
        }
    }

    #[test]
    fn latency_models_are_deterministic_and_bounded() {
        for model in [
            LatencyModel::Uniform {
                min_ns: 1_000,
                max_ns: 5_000,
            },
            LatencyModel::LogNormal {
                median_ns: 2_000_000,
                sigma_milli: 500,
                max_ns: 20_000_000,
            },
        ] {
            let sampler = Sampler::new(model);
            let mut a = ChaCha8Rng::seed_from_u64(9);
            let mut b = ChaCha8Rng::seed_from_u64(9);
            let xs: Vec<u64> = (0..10_000).map(|_| sampler.sample(&mut a)).collect();
            let ys: Vec<u64> = (0..10_000).map(|_| sampler.sample(&mut b)).collect();
            assert_eq!(xs, ys);
            let mut sorted = xs.clone();
            sorted.sort_unstable();
            let median = sorted[sorted.len() / 2];
            match model {
                LatencyModel::Uniform { min_ns, max_ns } => {
                    assert!(xs.iter().all(|&x| (min_ns..=max_ns).contains(&x)));
                }
                LatencyModel::LogNormal {
                    median_ns, max_ns, ..
                } => {
                    assert!(xs.iter().all(|&x| x <= max_ns));
                    // The median within 5 %; the spread right for σ = 0.5 (p84/p50 ≈ e^0.5).
                    assert!(median.abs_diff(median_ns) < median_ns / 20, "{median}");
                    let p84 = sorted[sorted.len() * 84 / 100] as f64;
                    let ratio = p84 / median as f64;
                    assert!((1.5..1.8).contains(&ratio), "{ratio}");
                }
                LatencyModel::Constant { .. } => {}
            }
        }
    }

    #[test]
    fn reports_never_overtake_each_other() {
        let params = SimParams {
            entry_latency: LatencyModel::Uniform {
                min_ns: 0,
                max_ns: 10_000_000,
            },
            ack_latency: LatencyModel::Uniform {
                min_ns: 0,
                max_ns: 10_000_000,
            },
            ..SimParams::default()
        };
        let mut v = SimVenue::new(params, spec()).unwrap();
        let mut book = Book::new(8);
        book.apply(
            Side::Buy,
            Level {
                price: Price(6_000_000),
                qty: Qty(10),
            },
        );
        book.apply(
            Side::Sell,
            Level {
                price: Price(6_000_001),
                qty: Qty(10),
            },
        );
        for i in 0..50u64 {
            let action = Action::Place {
                id: ClientOrderId(i + 1),
                order: approve(Side::Buy, 5_999_000 - i as i64, 100),
            };
            v.submit(i * 100_000, &action).unwrap();
        }
        let mut ids = Vec::new();
        v.advance(u64::MAX / 2, &book);
        v.poll_events(u64::MAX / 2, &mut |e| ids.push(e.id().0));
        assert_eq!(ids, (1..=50).collect::<Vec<u64>>());
        assert_eq!(v.stats().accepted, 50);
    }

    #[test]
    fn full_queue_refuses_instead_of_dropping() {
        let mut v = SimVenue::new(SimParams::default(), spec()).unwrap();
        let mut refused = 0;
        for i in 0..(SIM_INFLIGHT_MAX as u64 + 10) {
            if v.submit(
                0,
                &Action::Cancel {
                    id: ClientOrderId(i),
                },
            )
            .is_err()
            {
                refused += 1;
            }
        }
        assert_eq!(refused, 10);
        assert_eq!(v.stats().refused, 10);
    }

    #[test]
    fn trade_at_our_price_on_our_side_does_not_fill() {
        let mut v = instant_venue();
        let book = Book::new(8);
        let action = Action::Place {
            id: ClientOrderId(1),
            order: approve(Side::Buy, 6_000_000, 100),
        };
        v.submit(0, &action).unwrap();
        v.advance(0, &book);
        // The buyer was the aggressor at our bid's price: it lifted an ask there, not us.
        v.on_trade(1, &trade(6_000_000, 500, Side::Buy));
        assert_eq!(v.stats().fills, 0);
        v.on_trade(2, &trade(6_000_000, 40, Side::Sell));
        assert_eq!(v.stats().fills, 1);
        assert_eq!(v.stats().position_lots, 40);
    }

    #[test]
    fn queue_position_is_logged_at_join_and_at_fill() {
        let mut v = instant_venue();
        let mut book = Book::new(8);
        book.apply(
            Side::Buy,
            Level {
                price: Price(6_000_000),
                qty: Qty(30),
            },
        );
        for (id, price) in [(1, 6_000_000), (2, 5_999_000)] {
            let action = Action::Place {
                id: ClientOrderId(id),
                order: approve(Side::Buy, price, 100),
            };
            v.submit(0, &action).unwrap();
        }
        v.advance(0, &book);
        // 50 sold at our price: 30 eat the queue ahead, 20 fill us with nothing left ahead.
        v.on_trade(1, &trade(6_000_000, 50, Side::Sell));
        // A print below both bids goes through them: nothing is ahead any more.
        v.on_trade(2, &trade(5_998_000, 500, Side::Sell));
        let mut log = Vec::new();
        v.drain_queue_log(|q| log.push(q));
        let ahead: Vec<_> = log
            .iter()
            .map(|q| (q.id.0, q.ahead_at_join.0, q.ahead_at_fill.0, q.through))
            .collect();
        assert_eq!(
            ahead,
            [(1, 30, 0, false), (1, 30, 0, true), (2, 0, 0, true)]
        );
        assert_eq!(log[0].trade_id + 1, log[1].trade_id);
        v.drain_queue_log(|_| panic!("drained already"));
        // Nobody draining: the ring keeps the newest and counts what it overwrote.
        for i in 0..(SIM_QUEUE_LOG_MAX as u64 + 5) {
            v.log_queue(QueueAtFill {
                trade_id: i,
                ..log[0]
            });
        }
        assert_eq!(v.stats().queue_log_overwritten, 5);
        let mut first = None;
        v.drain_queue_log(|q| {
            first.get_or_insert(q.trade_id);
        });
        assert_eq!(first, Some(5));
    }
}
