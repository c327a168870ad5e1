//! Reconciliation: the state machine that makes the engine take the exchange's word, run
//! at start and after every reconnect of the order connection, after an audit difference
//! confirmed twice and after a cancel that went unanswered.
//!
//! ```text
//!   Connecting ─(start, cancel_open_orders_on_start = false)─> CheckOpen ─(some open)─> fatal
//!       │                                                          │
//!       │ (otherwise)                                              │ (none open)
//!       v                                                          v
//!   Cancelling ─(every answer in, or RECONCILE_RETRY_NS)───────> Querying ─(nothing open,
//!       ^                                                          │   balances in)─> Trading
//!       └────(orders still open; after RECONCILE_ROUNDS_MAX: fatal)┘
//!   any state ─(order connection lost)─> Connecting
//! ```
//!
//! Quoting is paused; `openOrders.cancelAll` for the symbol (Binance spot has no
//! cancel-on-disconnect: orders rest while we are away, so the first thing a new connection
//! does is cancel them); then `openOrders.status` and `account.status`; once nothing is
//! open and the balances are in, `Trader::reconcile` sets inventory = base balance −
//! `live.base_target`, forgets every order it still tracked, and quoting resumes. A fill
//! missed while disconnected shows up as an inventory change booked at the mid.
//!
//! Orders forgotten here leave the order table, so a late report of a fill the balance
//! already holds books nothing.
//!
//! Never: lets an order out before it reaches `Trading` (quoting stays paused), or runs
//! during a 429/418 back-off (the sink calls it only while the venue is ready and not
//! backing off).

use crate::config::Config;
use crate::live::audit::Audits;
use crate::live::desk::{Desk, ANSWER_WAIT_NS};
use crate::live::notes::{Cause, LiveNote};
use crate::risk::StopReason;
use crate::types::Qty;
use crate::venue::binance::Balances;

/// Reconciliation: at least this long between two cancel-all rounds, ns.
const RECONCILE_ROUND_NS: u64 = 1_000_000_000;
/// Reconciliation: after this many cancel-all rounds with orders still appearing, stop.
const RECONCILE_ROUNDS_MAX: u32 = 10;

/// Where the reconciliation stands, and what it needs to know.
#[derive(Clone, Debug)]
pub struct Reconciler {
    phase: Phase,
    /// Why the reconciliation under way runs.
    cause: Cause,
    /// Reconciliations completed.
    reconciles: u32,
    /// Cancel-all rounds of the reconciliation under way.
    rounds: u32,
    last_round_ns: u64,
    /// `quoting.inventory_max`: the start inventory must be within it.
    inventory_max: Qty,
    /// `live.cancel_open_orders_on_start`.
    cancel_on_start: bool,
}

/// Where the reconciliation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the order connection (connected and subscribed).
    Connecting,
    /// Start with `cancel_open_orders_on_start = false`: asked what is open.
    CheckOpen { sent_ns: u64 },
    /// `openOrders.cancelAll` sent: waiting for every answer.
    Cancelling { sent_ns: u64 },
    /// `openOrders.status` and `account.status` sent.
    Querying { sent_ns: u64 },
    /// Reconciled: trading.
    Trading,
}

impl Reconciler {
    /// Waiting for the order connection; nothing reconciled yet.
    pub fn new(config: &Config) -> Reconciler {
        Reconciler {
            phase: Phase::Connecting,
            cause: Cause::Start,
            reconciles: 0,
            rounds: 0,
            last_round_ns: 0,
            inventory_max: config.quoting.inventory_max_lots,
            cancel_on_start: config.live.cancel_open_orders_on_start,
        }
    }

    /// Reconciled: trading.
    pub fn trading(&self) -> bool {
        self.phase == Phase::Trading
    }

    /// Reconciliations completed (0: the session never traded).
    pub fn reconciles(&self) -> u32 {
        self.reconciles
    }

    /// The order connection is not ready: wait for it in `Connecting`. True when this
    /// is news (the caller pauses quoting and says so).
    pub fn connection_lost(&mut self) -> bool {
        if self.phase == Phase::Connecting {
            return false;
        }
        self.phase = Phase::Connecting;
        true
    }

    /// Pauses quoting and starts a reconciliation (not on a lost connection: that waits in
    /// `Connecting` for the venue to be ready again).
    pub fn begin(&mut self, now_ns: u64, cause: Cause, desk: &mut Desk, audits: &mut Audits) {
        self.cause = cause;
        self.rounds = 0;
        audits.reset();
        desk.trader.pause(StopReason::Reconciling);
        desk.note(LiveNote::ReconcileStarted {
            at_ns: now_ns,
            cause,
        });
        self.start_cancel(now_ns, desk);
    }

    fn start_cancel(&mut self, now_ns: u64, desk: &mut Desk) {
        // -2011 when nothing is open: fine, the query after it says so.
        let _ = desk.venue.cancel_all_untracked(now_ns);
        self.rounds += 1;
        self.last_round_ns = now_ns;
        self.phase = Phase::Cancelling { sent_ns: now_ns };
    }

    fn start_query(&mut self, now_ns: u64, desk: &mut Desk) {
        let _ = desk.venue.request_open_orders(now_ns);
        let _ = desk.venue.request_account(now_ns);
        self.phase = Phase::Querying { sent_ns: now_ns };
    }

    /// One turn of the state machine (see the module doc). Called while the venue is ready
    /// and not backing off. `Err`: the session must stop, and why.
    pub fn step(
        &mut self,
        now_ns: u64,
        desk: &mut Desk,
        audits: &mut Audits,
    ) -> Result<(), &'static str> {
        let answered = desk.venue.in_flight() == 0;
        match self.phase {
            Phase::Trading => {}
            Phase::Connecting => {
                let cause = if self.reconciles == 0 {
                    Cause::Start
                } else {
                    Cause::Reconnect
                };
                if cause == Cause::Start && !self.cancel_on_start {
                    self.cause = cause;
                    desk.note(LiveNote::ReconcileStarted {
                        at_ns: now_ns,
                        cause,
                    });
                    let _ = desk.venue.request_open_orders(now_ns);
                    self.phase = Phase::CheckOpen { sent_ns: now_ns };
                } else {
                    self.begin(now_ns, cause, desk, audits);
                }
            }
            Phase::CheckOpen { sent_ns } => match desk.venue.open_orders_all() {
                Some(0) if answered => self.start_query(now_ns, desk),
                Some(count) if count > 0 => {
                    desk.note(LiveNote::OpenOrdersAtStart { count });
                    return Err("orders open on the symbol at start (see the log)");
                }
                _ if now_ns.saturating_sub(sent_ns) > ANSWER_WAIT_NS => {
                    let _ = desk.venue.request_open_orders(now_ns);
                    self.phase = Phase::CheckOpen { sent_ns: now_ns };
                }
                _ => {}
            },
            Phase::Cancelling { sent_ns } => {
                if answered || now_ns.saturating_sub(sent_ns) > ANSWER_WAIT_NS {
                    self.start_query(now_ns, desk);
                }
            }
            Phase::Querying { sent_ns } => {
                let late = now_ns.saturating_sub(sent_ns) > ANSWER_WAIT_NS;
                if !answered {
                    if late {
                        self.start_query(now_ns, desk);
                    }
                    return Ok(());
                }
                match (desk.venue.open_orders_all(), desk.venue.balances()) {
                    (Some(0), Some(balances)) => {
                        return self.finish(now_ns, balances, late, desk, audits)
                    }
                    // Something is still open (an order raced the cancel, or another client
                    // trades the symbol): cancel again, at most once a second.
                    (Some(open), _) => {
                        if now_ns.saturating_sub(self.last_round_ns) < RECONCILE_ROUND_NS {
                            return Ok(());
                        }
                        if self.rounds >= RECONCILE_ROUNDS_MAX {
                            return Err(
                                "orders keep appearing on the symbol after every cancel-all: \
                                 another client trades it on this account (see the log)",
                            );
                        }
                        desk.note(LiveNote::ReconcileRepeat {
                            rounds: self.rounds,
                            open,
                        });
                        self.start_cancel(now_ns, desk);
                    }
                    _ if late => self.start_query(now_ns, desk),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Nothing is open and the balances are in: the engine takes the exchange's word.
    fn finish(
        &mut self,
        now_ns: u64,
        balances: Balances,
        stale: bool,
        desk: &mut Desk,
        audits: &mut Audits,
    ) -> Result<(), &'static str> {
        let inventory = desk.inventory_of(&balances);
        if self.reconciles == 0 && inventory.0.unsigned_abs() > self.inventory_max.0.unsigned_abs()
        {
            desk.note(LiveNote::InventoryBeyondLimit {
                inventory,
                balances,
            });
            return Err(
                "the start inventory (base balance − live.base_target) is beyond \
                 quoting.inventory_max: check live.base_target (see the log)",
            );
        }
        // Needs a touch to value the inventory: waits for the book, with fresh balances.
        let Some(result) = desk.trader.reconcile(now_ns, inventory) else {
            if stale {
                self.start_query(now_ns, desk);
            }
            return Ok(());
        };
        desk.send_inventory(now_ns);
        self.reconciles += 1;
        self.phase = Phase::Trading;
        audits.restart(now_ns);
        desk.trader.resume(StopReason::VenueDisconnected);
        desk.trader.resume(StopReason::Reconciling);
        desk.note(LiveNote::Reconciled {
            at_ns: now_ns,
            result,
            balances,
            cause: self.cause,
        });
        Ok(())
    }
}
