//! The deterministic core: decoded market events plus `now` in, book/OFI/σ state and a
//! fresh quote out. The same code runs in record, paper, backtest and live.
//!
//! Owns: the synced L2 book (Binance's snapshot + diff procedure), the top of book from
//! `bookTicker`, the OFI and σ estimators, and the quoter. On every change of the touch it
//! recomputes the quote; on a depth gap it drops to resync and asks its caller for a
//! snapshot (the caller owns I/O).
//!
//! `Trader` adds the trading half on top of `Engine`: the order manager, the pre-trade
//! risk gate and one `Venue` (simulated for paper and backtest, Binance for live), driven
//! in the order the venue contract documents (`src/venue/mod.rs`).
//!
//! Hot path. Never allocates after `new`, never reads a clock (`now_ns` is an argument;
//! the `_stamped` entry points call their caller's `stamp` at each stage, and the caller
//! may read one there), never does I/O, never panics on market input.

use crate::book::{DiffOutcome, SyncError, SyncState, SyncedBook};
use crate::feed::{BookLevels, BookTicker, Event};
use crate::model::ofi::{OfiEstimator, Touch};
use crate::model::vol::VolEstimator;
use crate::model::{sigma_from_f64, Ofi, Quote, QuoteInput, Quoter, Sigma};
use crate::orders::{Action, OrderManager, OrderStats, Outbox, Position, VenueEvent, ORDER_SLOTS};
use crate::risk::{Risk, StopReason};
use crate::types::{Price, Qty, Side};
use crate::venue::{BookWithTicker, Venue};

/// A stage of a market event's way through the engine (for per-stage latency: the
/// caller's `stamp` is called as each is done).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The book (L2 diff or snapshot applied, or bookTicker's touch stored).
    Book,
    /// A quote was decided (OFI, σ, quoter).
    Quote,
}

/// Everything `Engine::new` needs (built from `Config` by the modes).
#[derive(Clone, Copy, Debug)]
pub struct EngineParams {
    /// The quoter, with its parameters and symbol grid.
    pub quoter: Quoter,
    /// Levels per side of the L2 book.
    pub book_levels: usize,
    /// OFI window, nanoseconds.
    pub ofi_window_ns: u64,
    /// Touch changes the OFI window can hold.
    pub ofi_capacity: usize,
    /// Use the online σ estimate (true) or always the configured σ (false).
    pub sigma_estimated: bool,
    /// σ sampling interval, seconds.
    pub sigma_sample_s: f64,
    /// σ EWMA half-life, seconds.
    pub sigma_half_life_s: f64,
    /// σ samples before the estimate replaces the configured value.
    pub sigma_warmup_samples: u32,
}

/// Counters of the core (copied to the side thread now and then).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Events handled.
    pub events: u64,
    /// bookTicker events.
    pub book_tickers: u64,
    /// Depth diffs handled.
    pub diffs: u64,
    /// Trades handled.
    pub trades: u64,
    /// Snapshots loaded.
    pub snapshots: u64,
    /// Quotes computed.
    pub quotes: u64,
    /// Depth gaps (each one asks for a snapshot).
    pub gaps: u64,
    /// Snapshots refused as older than the buffered diffs.
    pub snapshots_too_old: u64,
    /// Times the book was seen crossed after an update (each one also starts a resync:
    /// the exchange's book is never crossed).
    pub crossed: u64,
    /// Time between events while the L2 book was in sync, ns (event clock: `now_ns`).
    pub in_sync_ns: u64,
    /// Time between events while it was not (waiting for a snapshot, resyncing), ns:
    /// the time the trader stood aside for want of a book.
    pub out_of_sync_ns: u64,
}

impl EngineStats {
    /// The share of the event time spent out of sync, 0..=1 (0 before two events).
    pub fn out_of_sync_share(&self) -> f64 {
        let total = self.in_sync_ns.saturating_add(self.out_of_sync_ns);
        if total == 0 {
            0.0
        } else {
            self.out_of_sync_ns as f64 / total as f64
        }
    }
}

/// What one event changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// A new quote was computed (the touch changed).
    pub quoted: bool,
    /// The book needs a REST snapshot (start, gap, too-old snapshot).
    pub need_snapshot: bool,
}

/// The core.
pub struct Engine {
    params: EngineParams,
    book: SyncedBook,
    ofi: OfiEstimator,
    vol: VolEstimator,
    sigma_fixed: Sigma,
    touch: Option<Touch>,
    inventory: Qty,
    quote: Quote,
    stats: EngineStats,
    awaiting_snapshot: bool,
    /// `now_ns` of the previous event (0 before the first).
    last_event_ns: u64,
}

impl Engine {
    /// Allocates the book and the estimators' buffers; nothing after this allocates.
    pub fn new(params: EngineParams) -> Engine {
        let sigma_fixed = sigma_from_f64(params.quoter.params().sigma_bps_per_sqrt_s);
        Engine {
            book: SyncedBook::new(params.book_levels),
            ofi: OfiEstimator::new(params.ofi_window_ns, params.ofi_capacity),
            vol: VolEstimator::new(
                params.sigma_sample_s,
                params.sigma_half_life_s,
                params.sigma_warmup_samples,
                sigma_fixed,
            ),
            sigma_fixed,
            touch: None,
            inventory: Qty(0),
            quote: Quote::NONE,
            stats: EngineStats::default(),
            awaiting_snapshot: false,
            last_event_ns: 0,
            params,
        }
    }

    /// Handles one decoded event. `levels` are the decoder's levels for a diff or snapshot
    /// (ignored for other events).
    #[inline]
    pub fn on_event(&mut self, event: &Event, levels: BookLevels<'_>, now_ns: u64) -> Step {
        self.on_event_stamped(event, levels, now_ns, &mut |_| {})
    }

    /// `on_event`, calling `stamp` as each `Stage` is done.
    #[inline]
    pub fn on_event_stamped<F: FnMut(Stage)>(
        &mut self,
        event: &Event,
        levels: BookLevels<'_>,
        now_ns: u64,
        stamp: &mut F,
    ) -> Step {
        self.stats.events += 1;
        if self.last_event_ns != 0 {
            let dt = now_ns.saturating_sub(self.last_event_ns);
            if self.in_sync() {
                self.stats.in_sync_ns += dt;
            } else {
                self.stats.out_of_sync_ns += dt;
            }
        }
        self.last_event_ns = now_ns;
        let mut step = Step::default();
        match event {
            Event::BookTicker(t) => {
                self.stats.book_tickers += 1;
                let touch = Touch {
                    bid: t.bid_price,
                    bid_qty: t.bid_qty,
                    ask: t.ask_price,
                    ask_qty: t.ask_qty,
                };
                step.quoted = self.on_touch(now_ns, touch, stamp);
            }
            Event::Depth(d) => {
                self.stats.diffs += 1;
                let outcome = self.book.on_diff(d, levels);
                stamp(Stage::Book);
                match outcome {
                    // A diff that crosses the book is a `SyncError::Crossed`, counted below.
                    Ok(DiffOutcome::Applied(_)) => {}
                    Ok(DiffOutcome::Buffered) => {
                        if !self.awaiting_snapshot {
                            self.awaiting_snapshot = true;
                            step.need_snapshot = true;
                        }
                    }
                    Ok(DiffOutcome::Stale) => {}
                    Err(error) => {
                        // A gap or a crossed book: the book is back to buffering; ask
                        // for a fresh snapshot.
                        if let SyncError::Crossed { .. } = error {
                            self.stats.crossed += 1;
                        } else {
                            self.stats.gaps += 1;
                        }
                        self.ofi.reset();
                        self.awaiting_snapshot = true;
                        step.need_snapshot = true;
                    }
                }
            }
            Event::Trade(_) => {
                self.stats.trades += 1;
            }
            Event::Snapshot(s) => match self.book.on_snapshot(s, levels) {
                // (A snapshot is never on the tick-to-quote path: not stamped.)
                Ok(outcome) => {
                    if outcome.report.crossed {
                        self.stats.crossed += 1;
                    }
                    self.stats.snapshots += 1;
                    self.awaiting_snapshot = false;
                }
                Err(_) => {
                    self.stats.snapshots_too_old += 1;
                    self.awaiting_snapshot = true;
                    step.need_snapshot = true;
                }
            },
        }
        step
    }

    /// A new top of book: OFI, σ, quote. Returns true when a quote was computed.
    #[inline]
    fn on_touch<F: FnMut(Stage)>(&mut self, now_ns: u64, touch: Touch, stamp: &mut F) -> bool {
        if self.touch == Some(touch) {
            stamp(Stage::Book);
            return false;
        }
        self.touch = Some(touch);
        stamp(Stage::Book);
        self.ofi.on_touch(now_ns, touch);
        self.vol
            .on_mid(now_ns, touch.bid.0.saturating_add(touch.ask.0));
        self.compute_quote(now_ns, touch);
        stamp(Stage::Quote);
        true
    }

    /// The quote for `touch` from the estimators' current state (does not feed them).
    #[inline]
    fn compute_quote(&mut self, now_ns: u64, touch: Touch) {
        self.quote = self.quote_for(now_ns, touch);
        self.stats.quotes += 1;
    }

    /// The quote `touch` would get now, kept nowhere. The OFI window drops the changes
    /// older than `now_ns` (as the next event at or after `now_ns` would): nothing else moves.
    #[inline]
    fn quote_for(&mut self, now_ns: u64, touch: Touch) -> Quote {
        let sigma = self.sigma();
        let ofi: Ofi = self.ofi.normalised(now_ns);
        self.params.quoter.quote(&QuoteInput {
            best_bid: touch.bid,
            best_ask: touch.ask,
            inventory: self.inventory,
            sigma,
            ofi,
            bid_qty: touch.bid_qty,
            ask_qty: touch.ask_qty,
        })
    }

    /// The warm-up of the touch → quote path while the market is quiet (`hot::WarmUp`):
    /// the quote of the current touch is computed and thrown away, so that the next real
    /// event finds the estimators', the quoter's and this code's lines in the caches.
    /// Changes no later result: the quote, the counters and the estimators are as they
    /// were, but for the OFI window's expiry up to `now_ns`, which the next event (at or
    /// after `now_ns`: the hot loop's clock is monotonic) would do anyway. Returns whether
    /// there was a touch to quote.
    #[inline(never)]
    pub fn warm(&mut self, now_ns: u64) -> bool {
        let Some(touch) = self.touch else {
            return false;
        };
        std::hint::black_box(self.quote_for(now_ns, touch));
        std::hint::black_box(self.ofi.warm());
        std::hint::black_box(self.vol.warm(touch.bid.0.saturating_add(touch.ask.0)));
        true
    }

    /// The connection was lost or restarted: forget the book (it must be resynced).
    pub fn resync(&mut self) {
        self.book.resync();
        self.ofi.reset();
        self.touch = None;
        self.awaiting_snapshot = false;
    }

    /// Sets the inventory the quoter skews for (from the order manager's fills).
    pub fn set_inventory(&mut self, inventory: Qty) {
        self.inventory = inventory;
    }

    /// Recomputes the quote for the current touch (after the inventory changed).
    pub fn requote(&mut self, now_ns: u64) -> bool {
        let Some(touch) = self.touch else {
            return false;
        };
        // The market did not move: the estimators have seen this touch already.
        self.compute_quote(now_ns, touch);
        true
    }

    /// True while the L2 book is in sync.
    pub fn in_sync(&self) -> bool {
        matches!(self.book.state(), SyncState::Live { .. })
    }

    /// `u` of the last diff applied to the book (0 when not in sync).
    pub fn book_update_id(&self) -> u64 {
        match self.book.state() {
            SyncState::Live { final_update_id } => final_update_id,
            _ => 0,
        }
    }

    /// The latest quote.
    pub fn quote(&self) -> &Quote {
        &self.quote
    }

    /// The latest top of book (from bookTicker).
    pub fn touch(&self) -> Option<Touch> {
        self.touch
    }

    /// The synced book.
    pub fn book(&self) -> &SyncedBook {
        &self.book
    }

    /// Best bid/ask of the synced L2 book, when in sync.
    pub fn book_top(&self) -> Option<(Price, Price)> {
        let book = self.book.book()?;
        Some((book.best_bid()?.price, book.best_ask()?.price))
    }

    /// Current σ (estimated or fixed), bps/√s.
    pub fn sigma(&self) -> Sigma {
        if self.params.sigma_estimated {
            self.vol.sigma()
        } else {
            self.sigma_fixed
        }
    }

    /// Current normalised OFI.
    pub fn ofi(&mut self, now_ns: u64) -> Ofi {
        self.ofi.normalised(now_ns)
    }

    /// Counters.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }
}

/// What the trading half reports (all `Copy`; the hot loop sends them to the side thread,
/// a backtest consumes them directly).
#[derive(Clone, Copy, Debug)]
pub enum TradeRecord {
    /// An action the venue took (a refused submit is answered locally and not recorded).
    Action {
        /// When.
        ts_ns: u64,
        /// What.
        action: Action,
    },
    /// A venue report, and the mid (best bid + best ask, ticks) when it was seen.
    Venue {
        /// When.
        ts_ns: u64,
        /// What.
        event: VenueEvent,
        /// Best bid + best ask at that moment (ticks; 0 if unknown).
        mid_x2_ticks: i64,
        /// The order's side, when the order is known.
        side: Option<Side>,
        /// For a fill: side·(mid at placement − order price), half-ticks — the edge the
        /// order was quoted with (0 if unknown).
        quoted_edge_half_ticks: i64,
    },
    /// A two-sided quote was decided (DEBUG log, average quoted spread).
    Quote {
        /// When.
        ts_ns: u64,
        /// Our bid, ticks.
        bid: Price,
        /// Our ask, ticks.
        ask: Price,
    },
    /// The mid moved (best bid + best ask, ticks).
    Mid {
        /// When.
        ts_ns: u64,
        /// Best bid + best ask, ticks.
        mid_x2_ticks: i64,
    },
    /// Trading stopped or resumed.
    Stopped {
        /// When.
        ts_ns: u64,
        /// Why (None = resumed).
        reason: Option<StopReason>,
    },
    /// The inventory was taken from the exchange's balances (live: reconciliation or
    /// balance audit), the change booked at the mid — what the KPI side thread must apply
    /// to agree with the engine (fills alone do not explain it).
    Inventory {
        /// When.
        ts_ns: u64,
        /// The inventory now, lots.
        inventory: Qty,
        /// Best bid + best ask, ticks: the mid the change was booked at.
        mid_x2_ticks: i64,
    },
}

/// Engine + order manager + risk: the strategy, venue-agnostic.
pub struct Trader {
    engine: Engine,
    orders: OrderManager,
    risk: Risk,
    outbox: Outbox,
    ticker: Option<BookTicker>,
    /// Mid (×2, ticks) when each order slot's order was placed, by `id % ORDER_SLOTS`.
    placed_mid_x2: [i64; ORDER_SLOTS],
    last_mid_x2: i64,
    /// Inventory, cash and touch prices of the last mark fed to risk: the mark is a
    /// function of these alone, so an event that changes none of them skips it.
    last_mark: Option<(Qty, i64, Price, Price)>,
    stopped: Option<StopReason>,
}

impl Trader {
    /// Assembles the strategy; nothing allocates after this.
    pub fn new(engine: Engine, orders: OrderManager, risk: Risk) -> Trader {
        Trader {
            engine,
            orders,
            risk,
            outbox: Outbox::new(),
            ticker: None,
            placed_mid_x2: [0; ORDER_SLOTS],
            last_mid_x2: 0,
            last_mark: None,
            stopped: None,
        }
    }

    /// One market event at local time `now_ns`, in the venue contract's order.
    #[inline]
    pub fn on_market<V: Venue, S: FnMut(TradeRecord)>(
        &mut self,
        event: &Event,
        levels: BookLevels<'_>,
        now_ns: u64,
        venue: &mut V,
        sink: &mut S,
    ) -> Step {
        self.on_market_stamped(event, levels, now_ns, venue, sink, &mut |_| {})
    }

    /// `on_market`, calling `stamp` as each engine `Stage` is done (the order stage ends
    /// when this returns: every action has been handed to the venue).
    #[inline]
    pub fn on_market_stamped<V: Venue, S: FnMut(TradeRecord), F: FnMut(Stage)>(
        &mut self,
        event: &Event,
        levels: BookLevels<'_>,
        now_ns: u64,
        venue: &mut V,
        sink: &mut S,
        stamp: &mut F,
    ) -> Step {
        // 1. Orders due by now meet the market as it was before this event.
        venue.advance(now_ns, &self.view());
        // 2. The event.
        let step = self.engine.on_event_stamped(event, levels, now_ns, stamp);
        match event {
            Event::Trade(trade) => venue.on_trade(now_ns, trade),
            Event::BookTicker(ticker) => {
                self.ticker = Some(*ticker);
                venue.on_book_change(now_ns, &self.view());
            }
            Event::Depth(_) | Event::Snapshot(_) => venue.on_book_change(now_ns, &self.view()),
        }
        self.risk.on_market_data(now_ns);
        if self.engine.in_sync() {
            self.risk.resume(StopReason::BookResync);
        } else {
            self.risk.pause(StopReason::BookResync);
        }
        if let Some(t) = self.engine.touch() {
            let mid_x2 = t.bid.0.saturating_add(t.ask.0);
            if mid_x2 != self.last_mid_x2 {
                self.last_mid_x2 = mid_x2;
                sink(TradeRecord::Mid {
                    ts_ns: now_ns,
                    mid_x2_ticks: mid_x2,
                });
            }
        }
        // 3. Reports due by now; 4. quote and act.
        self.after_reports(now_ns, venue, sink, step.quoted);
        step
    }

    /// Between market events: reports and arrivals due by `now_ns` (a backtest calls this
    /// at `venue.next_due_ns()`, a live loop on its timer).
    pub fn on_timer<V: Venue, S: FnMut(TradeRecord)>(
        &mut self,
        now_ns: u64,
        venue: &mut V,
        sink: &mut S,
    ) {
        venue.advance(now_ns, &self.view());
        self.after_reports(now_ns, venue, sink, false);
    }

    /// Stops trading for good: trips the kill switch with `reason`; the order manager
    /// cancels everything once.
    pub fn stop<V: Venue, S: FnMut(TradeRecord)>(
        &mut self,
        now_ns: u64,
        reason: StopReason,
        venue: &mut V,
        sink: &mut S,
    ) {
        self.risk.trip(reason);
        self.after_reports(now_ns, venue, sink, true);
    }

    fn after_reports<V: Venue, S: FnMut(TradeRecord)>(
        &mut self,
        now_ns: u64,
        venue: &mut V,
        sink: &mut S,
        mut requote: bool,
    ) {
        let inventory_before = self.orders.position().inventory;
        let orders = &mut self.orders;
        let placed = &self.placed_mid_x2;
        let mid_x2 = self.last_mid_x2;
        venue.poll_events(now_ns, &mut |event: VenueEvent| {
            let side = orders.order(event.id()).map(|o| o.side);
            let quoted_edge_half_ticks = match (event, side) {
                (VenueEvent::Fill { id, price, .. }, Some(side)) => {
                    let placed_mid = placed[(id.0 % ORDER_SLOTS as u64) as usize];
                    if placed_mid == 0 {
                        0
                    } else {
                        side.sign() * (placed_mid - 2 * price.0)
                    }
                }
                _ => 0,
            };
            orders.on_venue_event(now_ns, &event);
            sink(TradeRecord::Venue {
                ts_ns: now_ns,
                event,
                mid_x2_ticks: mid_x2,
                side,
                quoted_edge_half_ticks,
            });
        });
        let position = *self.orders.position();
        if position.inventory != inventory_before {
            self.engine.set_inventory(position.inventory);
            requote |= self.engine.requote(now_ns);
        }
        if let Some(t) = self.engine.touch() {
            let mark = Some((position.inventory, position.cash_atoms, t.bid, t.ask));
            if mark != self.last_mark {
                self.last_mark = mark;
                self.risk.on_mark(position.mark_to_market_atoms(
                    self.engine.params.quoter.spec(),
                    t.bid,
                    t.ask,
                ));
            }
        }
        let stop = self.risk.stop_reason(now_ns);
        if stop != self.stopped {
            self.stopped = stop;
            sink(TradeRecord::Stopped {
                ts_ns: now_ns,
                reason: stop,
            });
            requote = true;
        }
        if !requote {
            return;
        }
        self.outbox.clear();
        let quote = *self.engine.quote();
        if let (Some(bid), Some(ask)) = (quote.bid, quote.ask) {
            sink(TradeRecord::Quote {
                ts_ns: now_ns,
                bid: bid.price,
                ask: ask.price,
            });
        }
        self.orders
            .on_quote(now_ns, &quote, &self.risk, &mut self.outbox);
        for action in self.outbox.as_slice() {
            if let Action::Place { id, .. } | Action::CancelReplace { new_id: id, .. } = action {
                self.placed_mid_x2[(id.0 % ORDER_SLOTS as u64) as usize] = self.last_mid_x2;
            }
            // Only what the venue took is an action (a disconnected or throttled venue
            // refuses at once, and the order manager retries at a later quote: recording
            // each attempt would flood the log during an outage).
            if venue.submit(now_ns, action).is_ok() {
                sink(TradeRecord::Action {
                    ts_ns: now_ns,
                    action: *action,
                });
            } else {
                self.orders.on_send_failed(now_ns, action);
            }
        }
    }

    fn view(&self) -> BookWithTicker<'_> {
        BookWithTicker {
            book: self.engine.book.book_any_state(),
            book_update_id: self.engine.book_update_id(),
            ticker: self.ticker.as_ref(),
        }
    }

    /// The quiet market's warm-up (`hot::WarmUp`): the engine's (`Engine::warm`), and a
    /// read of what the next market event meets first here — the venue's next due time
    /// (`Venue::next_due_ns`, the queue `advance` looks at), the book's sync state and the
    /// last bookTicker. Changes nothing but what `Engine::warm` documents.
    #[inline]
    pub fn warm<V: Venue>(&mut self, now_ns: u64, venue: &V) {
        self.engine.warm(now_ns);
        std::hint::black_box(venue.next_due_ns());
        std::hint::black_box(self.engine.in_sync());
        std::hint::black_box(self.ticker);
    }

    /// The market-state core.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The market-state core, mutably (resync after a disconnect).
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// Position, cash and fees from fills.
    pub fn position(&self) -> &Position {
        self.orders.position()
    }

    /// Order counters (for the KPIs).
    pub fn order_stats(&self) -> &OrderStats {
        self.orders.stats()
    }

    /// Orders still open.
    pub fn open_orders(&self) -> u32 {
        self.orders.open_orders()
    }

    /// Why trading is stopped, if it is.
    pub fn stopped(&self) -> Option<StopReason> {
        self.stopped
    }

    /// The exchange confirmed nothing of ours is open: every order not finished here is
    /// forgotten (`OrderManager::forget_open`). Returns how many.
    pub fn forget_open(&mut self) -> u32 {
        self.orders.forget_open()
    }

    /// The venue refused our `CancelAll` (`code`): its orders are cancelled again.
    pub fn on_cancel_all_refused(&mut self, now_ns: u64, code: i32) {
        self.orders.on_cancel_all_refused(now_ns, code);
    }

    /// When the longest-waiting cancel was last updated (`None`: no cancel pending).
    pub fn oldest_pending_cancel_ns(&self) -> Option<u64> {
        self.orders.oldest_pending_cancel_ns()
    }

    /// Stops quoting while `reason` lasts (the next `on_timer` or market event cancels).
    pub fn pause(&mut self, reason: StopReason) {
        self.risk.pause(reason);
    }

    /// Lifts a pause set by `pause(reason)`.
    pub fn resume(&mut self, reason: StopReason) {
        self.risk.resume(reason);
    }

    /// Takes the exchange's word for our state: nothing of ours is open (every order not
    /// finished here is forgotten) and the inventory is `inventory` lots. An inventory
    /// change not seen as fills (at start, or fills missed while disconnected) is booked
    /// at the current mid, so the mark-to-market PnL does not jump. `None` (nothing done)
    /// until the book has a touch to value it at.
    pub fn reconcile(&mut self, now_ns: u64, inventory: Qty) -> Option<Reconciled> {
        self.engine.touch()?;
        let forgotten = self.orders.forget_open();
        let before = self.adopt_inventory(now_ns, inventory)?;
        Some(Reconciled {
            before,
            after: inventory,
            forgotten,
        })
    }

    /// Takes `inventory` lots as the position's inventory (the balances' figure) without
    /// touching the orders; the change is booked at the current mid, so the
    /// mark-to-market PnL does not jump. Returns the inventory before, or `None` (nothing
    /// done) without a touch.
    pub fn adopt_inventory(&mut self, now_ns: u64, inventory: Qty) -> Option<Qty> {
        let touch = self.engine.touch()?;
        let mut position = *self.orders.position();
        let before = position.inventory;
        let spec = self.engine.params.quoter.spec();
        let delta = i128::from(inventory.0) - i128::from(before.0);
        let mid_x2 = i128::from(touch.bid.0) + i128::from(touch.ask.0);
        let value = delta * mid_x2 * i128::from(spec.tick_atoms) * i128::from(spec.step_atoms)
            / (2 * i128::from(crate::types::ATOMS_PER_UNIT));
        position.cash_atoms = i64::try_from(i128::from(position.cash_atoms) - value)
            .unwrap_or(if value > 0 { i64::MIN } else { i64::MAX });
        position.inventory = inventory;
        self.orders.set_position(position);
        self.engine.set_inventory(inventory);
        self.engine.requote(now_ns);
        Some(before)
    }
}

/// What `Trader::reconcile` changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reconciled {
    /// Inventory per our fills before, lots.
    pub before: Qty,
    /// Inventory per the exchange, lots.
    pub after: Qty,
    /// Orders we still had open that the exchange no longer has.
    pub forgotten: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::Decoder;
    use crate::model::Params;
    use crate::types::{Symbol, SymbolSpec};

    fn spec() -> SymbolSpec {
        SymbolSpec::from_decimals(Symbol::new("BTCUSDT").unwrap(), "0.01", "0.00001", "5").unwrap()
    }

    fn engine() -> Engine {
        Engine::new(EngineParams {
            // A limit above the minNotional-raised size at the test's 100 USDT price.
            quoter: Quoter::new(
                Params {
                    inventory_max_lots: crate::types::Qty(100_000),
                    ..Params::default()
                },
                spec(),
            )
            .unwrap(),
            book_levels: 1000,
            ofi_window_ns: 1_000_000_000,
            ofi_capacity: 4096,
            sigma_estimated: false,
            sigma_sample_s: 1.0,
            sigma_half_life_s: 300.0,
            sigma_warmup_samples: 30,
        })
    }

    fn feed(engine: &mut Engine, decoder: &mut Decoder, frame: &str, now: u64) -> Step {
        let event = decoder.decode(frame.as_bytes(), now).unwrap();
        let levels = match &event {
            Event::Depth(d) => decoder.diff_levels(d),
            Event::Snapshot(s) => decoder.snapshot_levels(s),
            _ => BookLevels {
                bids: &[],
                asks: &[],
            },
        };
        engine.on_event(&event, levels, now)
    }

    #[test]
    fn quotes_on_touch_change_and_syncs_the_book() {
        let mut e = engine();
        let mut d = Decoder::new(spec());
        let diff = r#"{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":11,"u":12,"b":[["100.00","2.0"]],"a":[["100.02","1.0"]]}}"#;
        let step = feed(&mut e, &mut d, diff, 1);
        assert!(
            step.need_snapshot,
            "first diff without a book asks for a snapshot"
        );
        let snap = r#"{"lastUpdateId":10,"bids":[["100.00","1.0"]],"asks":[["100.01","1.0"]]}"#;
        let step = feed(&mut e, &mut d, snap, 2);
        assert!(!step.need_snapshot);
        assert_eq!(e.book_top(), Some((Price(10_000), Price(10_001))));
        let bt = r#"{"stream":"btcusdt@bookTicker","data":{"u":12,"s":"BTCUSDT","b":"100.00","B":"2.0","a":"100.01","A":"1.0"}}"#;
        assert!(feed(&mut e, &mut d, bt, 3).quoted);
        assert!(
            !feed(&mut e, &mut d, bt, 4).quoted,
            "same touch, no new quote"
        );
        let q = e.quote();
        assert!(q.bid.is_some() && q.ask.is_some());
        assert!(q.bid.unwrap().price < q.ask.unwrap().price);
        // A gap: U jumps.
        let gap = r#"{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT","U":20,"u":21,"b":[],"a":[]}}"#;
        assert!(feed(&mut e, &mut d, gap, 5).need_snapshot);
        assert_eq!(e.stats().gaps, 1);
        assert_eq!(e.book_top(), None, "out of sync until the next snapshot");
    }

    /// The warm-up of the quiet market (`Engine::warm`, `Decoder::warm`, run by the hot
    /// loop's `WarmUp`) changes no result: the bundled slice replayed twice, the second
    /// time with a warm-up before every frame at that frame's time (as the loop's quiet
    /// turns run it, never later than the next event), gives the same decoded events, steps,
    /// quotes, counters, σ and OFI after every frame, and the same decoder counters.
    #[test]
    fn warming_changes_no_result_on_the_recorded_slice() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/data/btcusdt_20240808.gz");
        let mut reader = crate::replay::FrameReader::open(&path, "BTCUSDT").unwrap();
        // σ estimated, so that the warm-up meets the volatility estimator too.
        let params = EngineParams {
            sigma_estimated: true,
            ..engine().params
        };
        let (mut plain, mut warmed) = (Engine::new(params), Engine::new(params));
        let (mut plain_decoder, mut warmed_decoder) = (Decoder::new(spec()), Decoder::new(spec()));
        let mut ticker_frame: Option<Vec<u8>> = None;
        let (mut frames, mut warm_quotes, mut quotes) = (0u64, 0u64, 0u64);
        fn levels<'a>(decoder: &'a Decoder, event: &Event) -> BookLevels<'a> {
            match event {
                Event::Depth(d) => decoder.diff_levels(d),
                Event::Snapshot(s) => decoder.snapshot_levels(s),
                _ => BookLevels {
                    bids: &[],
                    asks: &[],
                },
            }
        }
        while reader.advance().unwrap() {
            let frame = reader.frame();
            let now = frame.local_ts_ns;
            frames += 1;
            if let Some(ticker) = &ticker_frame {
                assert!(warmed_decoder.warm(ticker));
            }
            warm_quotes += u64::from(warmed.warm(now));
            let a = plain_decoder.decode(frame.payload, now);
            let b = warmed_decoder.decode(frame.payload, now);
            assert_eq!(a, b, "frame {frames}");
            let Ok(event) = a else { continue };
            let step = plain.on_event(&event, levels(&plain_decoder, &event), now);
            let warmed_step = warmed.on_event(&event, levels(&warmed_decoder, &event), now);
            assert_eq!(step, warmed_step, "frame {frames}");
            quotes += u64::from(step.quoted);
            assert_eq!(plain.quote(), warmed.quote(), "frame {frames}");
            assert_eq!(plain.stats(), warmed.stats(), "frame {frames}");
            assert_eq!(plain.sigma(), warmed.sigma(), "frame {frames}");
            assert_eq!(plain.ofi(now), warmed.ofi(now), "frame {frames}");
            if ticker_frame.is_none() && matches!(event, Event::BookTicker(_)) {
                ticker_frame = Some(frame.payload.to_vec());
            }
        }
        assert_eq!(plain_decoder.stats(), warmed_decoder.stats());
        // The slice's 41,248 frames (tools/data/README.md); nearly every frame found a touch
        // to warm, and the replay quoted.
        assert!(frames > 40_000, "{frames} frames");
        assert!(
            warm_quotes > frames * 9 / 10,
            "{warm_quotes} warm-ups of {frames} frames"
        );
        assert!(quotes > 10_000, "{quotes} quotes");
    }
}
