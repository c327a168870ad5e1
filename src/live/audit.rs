//! Audits while trading: the engine's open orders against `openOrders.status` every
//! `AUDIT_EVERY_NS`, its inventory against `account.status` every
//! `BALANCE_AUDIT_EVERY_NS`, and the watch for a cancel unanswered for `STUCK_CANCEL_NS`.
//!
//! An audit is sent only with nothing else in flight and counts only if nothing was sent
//! or executed meanwhile ("stable"); a stable difference is acted on only when the next
//! audit, `AUDIT_RECHECK_NS` later, finds the same one: an open-orders difference starts a
//! reconciliation (the caller runs it), an inventory difference is corrected to the
//! balances'. A stuck cancel starts a reconciliation at once.
//!
//! Never: runs outside trading or during a back-off (the sink calls it only while
//! reconciled, with the order connection ready and no back-off), or acts on a single
//! observation.

use crate::live::desk::{Desk, ANSWER_WAIT_NS};
use crate::live::notes::{Cause, LiveNote};
use crate::types::Qty;

/// The engine's open orders are checked against the exchange's this often, ns.
pub const AUDIT_EVERY_NS: u64 = 5_000_000_000;
/// A difference is checked again this soon before it counts, ns.
pub const AUDIT_RECHECK_NS: u64 = 2_000_000_000;
/// The engine's inventory is checked against the balances this often, ns.
pub const BALANCE_AUDIT_EVERY_NS: u64 = 60_000_000_000;
/// A cancel unanswered this long starts a reconciliation, ns.
const STUCK_CANCEL_NS: u64 = 3_000_000_000;

/// The audits' schedule, the one in flight and the differences waiting for confirmation.
#[derive(Clone, Debug, Default)]
pub struct Audits {
    next_audit_ns: u64,
    next_balance_audit_ns: u64,
    pending: Option<Audit>,
    /// The last stable difference of open orders (engine, exchange), to be confirmed.
    audit_suspect: Option<(u32, u32)>,
    /// The last stable inventory difference (engine, exchange), to be confirmed.
    balance_suspect: Option<(Qty, Qty)>,
    /// When the inventory was last checked against the balances (0: never).
    inventory_checked_ns: u64,
}

/// An `openOrders.status` or `account.status` audit in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Audit {
    sent_ns: u64,
    engine: u32,
    inventory: Qty,
    requests_before: u64,
    executions_before: u64,
    balances: bool,
}

impl Audits {
    /// Nothing scheduled, nothing checked yet.
    pub fn new() -> Audits {
        Audits::default()
    }

    /// A reconciliation starts: forget the audit in flight and any difference it was to
    /// confirm.
    pub fn reset(&mut self) {
        self.pending = None;
        self.audit_suspect = None;
        self.balance_suspect = None;
    }

    /// Not trading: an audit in flight no longer counts.
    pub fn pause(&mut self) {
        self.pending = None;
    }

    /// Reconciled at `now_ns`: the inventory is the balances'; the next audits are due a
    /// full period from now.
    pub fn restart(&mut self, now_ns: u64) {
        self.inventory_checked_ns = now_ns;
        self.next_audit_ns = now_ns + AUDIT_EVERY_NS;
        self.next_balance_audit_ns = now_ns + BALANCE_AUDIT_EVERY_NS;
    }

    /// When the inventory was last checked against the balances (0: never).
    pub fn inventory_checked_ns(&self) -> u64 {
        self.inventory_checked_ns
    }

    /// While trading: every `AUDIT_EVERY_NS` the engine's open orders against
    /// `openOrders.status`, every `BALANCE_AUDIT_EVERY_NS` its inventory against
    /// `account.status`, each sent with nothing else in flight; a difference found twice in
    /// a row with nothing sent or executed meanwhile is acted on. A cancel unanswered for
    /// `STUCK_CANCEL_NS` starts a reconciliation.
    /// Returns the cause of a reconciliation to start, if one must.
    pub fn step(&mut self, now_ns: u64, timer_due: bool, desk: &mut Desk) -> Option<Cause> {
        let idle = desk.venue.in_flight() == 0;
        let Some(pending) = self.pending else {
            if !idle {
                return None;
            }
            // The order table scan runs on the timer tick, not on every loop turn.
            if timer_due
                && desk
                    .trader
                    .oldest_pending_cancel_ns()
                    .is_some_and(|t| now_ns.saturating_sub(t) > STUCK_CANCEL_NS)
            {
                return Some(Cause::StuckCancel);
            }
            let balances = now_ns >= self.next_balance_audit_ns;
            if !balances && now_ns < self.next_audit_ns {
                return None;
            }
            let stats = desk.venue.stats();
            let pending = Audit {
                sent_ns: now_ns,
                engine: desk.trader.open_orders(),
                inventory: desk.trader.position().inventory,
                requests_before: stats.requests_sent,
                executions_before: stats.executions,
                balances,
            };
            let sent = if balances {
                self.next_balance_audit_ns = now_ns + BALANCE_AUDIT_EVERY_NS;
                desk.venue.request_account(now_ns)
            } else {
                self.next_audit_ns = now_ns + AUDIT_EVERY_NS;
                desk.venue.request_open_orders(now_ns)
            };
            if sent.is_ok() {
                self.pending = Some(pending);
            }
            return None;
        };
        if now_ns.saturating_sub(pending.sent_ns) > ANSWER_WAIT_NS {
            // Unanswered: forget it, and any suspicion it was to confirm.
            self.reset();
            return None;
        }
        if !idle {
            return None;
        }
        self.pending = None;
        let stats = desk.venue.stats();
        let stable = stats.requests_sent == pending.requests_before + 1
            && stats.executions == pending.executions_before
            && desk.trader.open_orders() == pending.engine
            && desk.trader.position().inventory == pending.inventory;
        if pending.balances {
            let balances = desk.venue.balances()?;
            let exchange = desk.inventory_of(&balances);
            if stable && exchange == pending.inventory {
                self.inventory_checked_ns = now_ns;
            }
            if !stable || exchange == pending.inventory {
                self.balance_suspect = None;
                return None;
            }
            let pair = (pending.inventory, exchange);
            if self.balance_suspect == Some(pair) {
                self.balance_suspect = None;
                if desk.trader.adopt_inventory(now_ns, exchange).is_some() {
                    desk.send_inventory(now_ns);
                    self.inventory_checked_ns = now_ns;
                }
                desk.note(LiveNote::InventoryCorrected {
                    engine: pending.inventory,
                    exchange,
                });
            } else {
                self.balance_suspect = Some(pair);
                self.next_balance_audit_ns = now_ns + AUDIT_RECHECK_NS;
            }
            return None;
        }
        let exchange = desk.venue.open_orders()?;
        let pair = (pending.engine, exchange);
        let differs = stable && exchange != pending.engine;
        let confirmed = differs && self.audit_suspect == Some(pair);
        desk.note(LiveNote::Audit {
            engine: pending.engine,
            exchange,
            stable,
            confirmed,
            recheck_ns: AUDIT_RECHECK_NS,
        });
        self.audit_suspect = (differs && !confirmed).then_some(pair);
        if self.audit_suspect.is_some() {
            self.next_audit_ns = now_ns + AUDIT_RECHECK_NS;
        }
        confirmed.then_some(Cause::Audit)
    }
}
