//! `LiveNote`: what live trading's hot side tells the log — order-connection events,
//! refusals, reconciliation steps, audits, back-offs, the wind-down, venue counters — and
//! how each reads in the log (with a hint for the refusal codes an operator can fix). Also
//! the values the notes carry that the rest of `live` shares: why a reconciliation runs
//! (`Cause`) and what a wind-down could not verify (`Unverified`).
//!
//! The bottom of `live`: it imports no other `live` module. Never: formats on the hot
//! thread (a note is `Copy`, built there, written by the side thread through
//! `session::Note`), holds or prints a secret, or imports `crate::modes`.

use crate::engine::Reconciled;
use crate::net::NetEvent;
use crate::session::{log_net, Note};
use crate::telemetry::log::LogHandle;
use crate::types::{Qty, SymbolSpec};
use crate::venue::binance::{Balances, BinanceStats, KeyType, RotationEvent, SUBSCRIBE_RETRY_NS};

/// Depth of the hot → side channel of live notes.
pub const NOTES_CHANNEL_DEPTH: usize = 1024;

/// Why a reconciliation runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The session's start.
    Start,
    /// The order connection came back.
    Reconnect,
    /// Two audits in a row found the engine's open orders differ from the exchange's.
    Audit,
    /// A cancel has waited for its answer longer than `STUCK_CANCEL_NS`.
    StuckCancel,
}

impl Cause {
    const fn describe(self) -> &'static str {
        match self {
            Cause::Start => "start",
            Cause::Reconnect => "after a reconnect",
            Cause::Audit => "after an audit difference",
            Cause::StuckCancel => "after a cancel went unanswered",
        }
    }
}

/// What a wind-down that ran out of time could not verify (for the log and the console).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unverified {
    /// The order connection was not ready at the deadline: no cancel could be sent or
    /// answered on it.
    pub order_connection_down: bool,
    /// Reconnect attempts brought forward during the wind-down.
    pub reconnects_forced: u32,
    /// Requests (cancel-all, openOrders.status) unanswered at the deadline.
    pub unanswered: u32,
    /// Orders the engine still counted as open.
    pub open_local: u32,
    /// Our open orders per the exchange's answer during the wind-down (`None`: none came).
    pub open_exchange: Option<u32>,
    /// Time from the last check of the inventory against the balances to the deadline, ns
    /// (`None`: never checked).
    pub inventory_checked_ago_ns: Option<u64>,
}

impl Unverified {
    /// One line per thing not verified, and why.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if self.order_connection_down {
            lines.push(format!(
                "the order connection was down at the deadline ({} reconnect attempts during \
                 the stop): the cancel-all could not be sent or confirmed",
                self.reconnects_forced
            ));
        } else if self.unanswered > 0 {
            lines.push(format!(
                "{} request(s) (cancel-all / openOrders.status) unanswered at the deadline",
                self.unanswered
            ));
        }
        lines.push(match self.open_exchange {
            Some(n) => format!(
                "open orders: {} per the engine, {n} per the exchange's last answer",
                self.open_local
            ),
            None => format!(
                "open orders: {} per the engine, unknown at the exchange (no answer)",
                self.open_local
            ),
        });
        lines.push(match self.inventory_checked_ago_ns {
            Some(ns) => format!(
                "inventory last checked against the balances {:.1} s before the deadline \
                 (later fills per executionReports only)",
                ns as f64 / 1e9
            ),
            None => "inventory never checked against the balances".to_string(),
        });
        lines
    }
}

/// What the hot side tells the log (all `Copy`).
#[derive(Clone, Copy, Debug)]
pub enum LiveNote {
    /// An order-connection event (connecting, open, disconnected and why).
    OrderNet(NetEvent),
    /// A step of the order connection's make-before-break rotation.
    OrderRotation(RotationEvent),
    /// The order connection is down: quoting paused, orders rest at the exchange until it
    /// is back and reconciled.
    OrderConnectionDown {
        /// When, ns.
        at_ns: u64,
    },
    /// The exchange refused `session.logon` (Ed25519) or the user-data subscription: no
    /// order can be sent.
    SubscribeRefused {
        /// Binance error code.
        code: i32,
        /// It answered `session.logon`.
        at_logon: bool,
        /// The key kind (for the hint: secret or private key file).
        key: KeyType,
    },
    /// The exchange refused our `openOrders.cancelAll`: the orders are cancelled one by one.
    CancelAllRefused {
        /// Binance error code.
        code: i32,
    },
    /// Reconciling: quoting paused.
    ReconcileStarted {
        /// When, ns.
        at_ns: u64,
        /// Why.
        cause: Cause,
    },
    /// A reconciliation round found orders still open after the cancel: cancelling again.
    ReconcileRepeat {
        /// Rounds so far.
        rounds: u32,
        /// Orders open on the symbol (anyone's).
        open: u32,
    },
    /// At start, with `live.cancel_open_orders_on_start = false`, orders were open.
    OpenOrdersAtStart {
        /// How many (anyone's).
        count: u32,
    },
    /// Reconciled: trading (again).
    Reconciled {
        /// When, ns.
        at_ns: u64,
        /// What changed.
        result: Reconciled,
        /// The balances read.
        balances: Balances,
        /// Why it ran.
        cause: Cause,
    },
    /// The balances say the inventory differs from the fills booked (twice in a row, with
    /// nothing executed meanwhile): the engine takes the balances' figure.
    InventoryCorrected {
        /// Per the fills, lots.
        engine: Qty,
        /// Per the balances, lots.
        exchange: Qty,
    },
    /// At start, base balance − `live.base_target` is beyond `quoting.inventory_max`.
    InventoryBeyondLimit {
        /// Base balance − target, lots.
        inventory: Qty,
        /// The balances read.
        balances: Balances,
    },
    /// A 429/418 back-off started (`on`) or ended.
    BackOff {
        /// When, ns.
        at_ns: u64,
        /// Started or ended.
        on: bool,
        /// The last error code.
        code: i32,
    },
    /// Ctrl+C / deadline: cancelling everything.
    WindDownStarted {
        /// Orders the engine counts as open.
        open_local: u32,
    },
    /// The exchange confirmed nothing of ours is open.
    WindDownConfirmed {
        /// How long the wind-down took, ns.
        took_ns: u64,
    },
    /// The wind-down deadline passed without the confirmation.
    WindDownTimedOut(Unverified),
    /// The engine's open orders against the exchange's (`openOrders.status`), taken while
    /// nothing else was in flight.
    Audit {
        /// Our open orders per the engine.
        engine: u32,
        /// Our open orders per the exchange.
        exchange: u32,
        /// Nothing was sent or executed meanwhile: a difference is real.
        stable: bool,
        /// The previous audit found the same stable difference: a reconciliation starts.
        confirmed: bool,
        /// A first stable difference is checked again this soon, ns.
        recheck_ns: u64,
    },
    /// Periodic venue counters.
    VenueStats {
        /// The counters.
        stats: BinanceStats,
        /// Server − local clock, ms.
        skew_ms: Option<i64>,
        /// Last REQUEST_WEIGHT count and limit.
        weight: (u32, u32),
        /// Last ORDERS/10 s count and limit.
        orders_10s: (u32, u32),
    },
}

impl Note for LiveNote {
    /// Writes the note to the log (side thread).
    fn log(&self, log: &LogHandle, spec: &SymbolSpec) {
        let lots = |q: Qty| spec.qty_to_f64(q);
        let units = |atoms: i64| atoms as f64 / 1e8;
        match *self {
            LiveNote::OrderNet(event) => log_net(log, "orders", &event),
            LiveNote::OrderRotation(event) => match event {
                RotationEvent::Opening => log.info(format_args!(
                    "orders: rotation: standby connection opening (make-before-break)"
                )),
                RotationEvent::Switched => log.info(format_args!(
                    "orders: rotated: order entry on the standby connection (subscribed); \
                     the old one answers what it has in flight, then closes; no \
                     reconciliation"
                )),
                RotationEvent::Retired { lost: 0 } => log.info(format_args!(
                    "orders: rotation: old connection unsubscribed and closed, nothing lost"
                )),
                RotationEvent::Retired { lost } => log.warn(format_args!(
                    "orders: rotation: old connection closed with {lost} request(s) \
                     unanswered; reconnecting to reconcile"
                )),
                RotationEvent::Abandoned => log.warn(format_args!(
                    "orders: rotation: the standby failed or was not ready before the age \
                     limit; rotating break-before-make (reconciliation)"
                )),
            },
            LiveNote::OrderConnectionDown { .. } => log.warn(format_args!(
                "live: order connection down; quoting paused (orders rest at the exchange \
                 until it is back and reconciled)"
            )),
            LiveNote::SubscribeRefused {
                code,
                at_logon,
                key,
            } => log.error(format_args!(
                "live: the exchange refused {} (code {code}{}); no order can be sent; \
                 retrying in {} s",
                if at_logon {
                    "session.logon (Ed25519)"
                } else {
                    "the user-data subscription"
                },
                refusal_hint(code, key),
                SUBSCRIBE_RETRY_NS / 1_000_000_000
            )),
            LiveNote::CancelAllRefused { code } => log.error(format_args!(
                "live: the exchange refused openOrders.cancelAll (code {code}): cancelling \
                 the orders one by one"
            )),
            LiveNote::ReconcileStarted { cause, .. } => log.info(format_args!(
                "live: reconciling ({}): cancel all open orders on the symbol, read open \
                 orders and balances; quoting paused",
                cause.describe()
            )),
            LiveNote::ReconcileRepeat { rounds, open } => log.warn(format_args!(
                "live: {open} orders still open on the symbol after cancel-all round {rounds}: \
                 cancelling again (another client trading the symbol on this account?)"
            )),
            LiveNote::OpenOrdersAtStart { count } => log.error(format_args!(
                "live: {count} orders are open on the symbol and \
                 live.cancel_open_orders_on_start = false: not trading. Cancel them, or set \
                 live.cancel_open_orders_on_start = true"
            )),
            LiveNote::Reconciled {
                result,
                balances,
                cause,
                ..
            } => {
                let missed = result.after.0 - result.before.0;
                log.info(format_args!(
                    "live: reconciled ({}): base {} (locked {}), quote {} (locked {}); \
                     inventory {} (engine had {}), {} orders forgotten; quoting",
                    cause.describe(),
                    units(balances.base_atoms),
                    units(balances.base_locked_atoms),
                    units(balances.quote_atoms),
                    units(balances.quote_locked_atoms),
                    lots(result.after),
                    lots(result.before),
                    result.forgotten
                ));
                if cause != Cause::Start && missed != 0 {
                    log.warn(format_args!(
                        "live: inventory differs by {} from the fills the engine saw (fills \
                         missed while disconnected, or base-asset fees): booked at the mid",
                        lots(Qty(missed))
                    ));
                }
            }
            LiveNote::InventoryCorrected { engine, exchange } => log.warn(format_args!(
                "live: balances say inventory {} where the fills say {} (base-asset fees or \
                 a missed fill): taking the balances' figure, booked at the mid",
                lots(exchange),
                lots(engine)
            )),
            LiveNote::InventoryBeyondLimit {
                inventory,
                balances,
            } => log.error(format_args!(
                "live: base balance {} (locked {}) − live.base_target = inventory {}, beyond \
                 quoting.inventory_max: not trading. Set live.base_target to the base \
                 balance you mean to hold",
                units(balances.base_atoms),
                units(balances.base_locked_atoms),
                lots(inventory)
            )),
            LiveNote::BackOff { on: true, code, .. } => log.warn(format_args!(
                "live: rate limited (code {code}): backing off, quoting paused, nothing sent \
                 but cancels (after -1015) until retryAfter"
            )),
            LiveNote::BackOff { on: false, .. } => {
                log.info(format_args!("live: back-off over; quoting resumes"))
            }
            LiveNote::WindDownStarted { open_local } => log.info(format_args!(
                "live: stopping: cancelling every order ({open_local} open per the engine)"
            )),
            LiveNote::WindDownConfirmed { took_ns } => log.info(format_args!(
                "live: the exchange confirms no order of ours is open ({:.3} s)",
                took_ns as f64 / 1e9
            )),
            LiveNote::WindDownTimedOut(gap) => log.error(format_args!(
                "live: stop deadline (live.shutdown_wait_s) passed without confirmation — \
                 CHECK THE ACCOUNT (the next start cancels them unless \
                 live.cancel_open_orders_on_start = false); not verified: {}",
                gap.lines().join("; ")
            )),
            LiveNote::Audit {
                engine,
                exchange,
                stable,
                confirmed,
                recheck_ns,
            } => {
                if engine == exchange {
                    log.info(format_args!(
                        "live: audit: {engine} open orders per the engine, {exchange} per the \
                         exchange: match"
                    ));
                } else if stable && !confirmed {
                    log.info(format_args!(
                        "live: audit: {engine} open orders per the engine, {exchange} per the \
                         exchange; checking again in {} s (a report may be on its way)",
                        recheck_ns as f64 / 1e9
                    ));
                } else if stable {
                    log.error(format_args!(
                        "live: audit: {engine} open orders per the engine, {exchange} per the \
                         exchange: MISMATCH; reconciling (cancel all, read the account)"
                    ));
                } else {
                    log.info(format_args!(
                        "live: audit: {engine} per the engine, {exchange} per the exchange \
                         while orders were in flight: not compared"
                    ));
                }
            }
            LiveNote::VenueStats {
                stats,
                skew_ms,
                weight,
                orders_10s,
            } => log.info(format_args!(
                "live: venue {} requests, {} responses, {} errors, {} executions, {} \
                 throttled, {} rate limited, {} lost in flight, {} timeouts; last round trip \
                 {:.3} ms; skew {} ms; weight {}/{}; orders/10s {}/{}",
                stats.requests_sent,
                stats.responses,
                stats.errors,
                stats.executions,
                stats.throttled,
                stats.rate_limited,
                stats.lost_in_flight,
                stats.request_timeouts,
                stats.last_round_trip_ns as f64 / 1e6,
                skew_ms.map_or_else(|| "?".to_string(), |s| s.to_string()),
                weight.0,
                weight.1,
                orders_10s.0,
                orders_10s.1
            )),
        }
    }
}

/// What a refusal code most likely means, for the log.
fn refusal_hint(code: i32, key: KeyType) -> &'static str {
    match (code, key) {
        (-2015 | -2014 | -2008, _) => {
            ": API key refused: check BINANCE_API_KEY, its permissions and IP whitelist"
        }
        (-1022, KeyType::Hmac) => ": signature refused: check BINANCE_API_SECRET",
        (-1022, KeyType::Ed25519) => {
            ": signature refused: BINANCE_ED25519_PRIVATE_KEY_PATH must be the private key \
             whose public key was registered for BINANCE_API_KEY"
        }
        (-1021, _) => ": timestamp outside recvWindow: check the host clock (NTP)",
        _ => "",
    }
}

/// The refusals that no retry cures: at start they end the session.
pub(super) const fn is_credential_refusal(code: i32) -> bool {
    matches!(code, -2015 | -2014 | -2008 | -1022)
}
