//! `--mode=live`: real orders on Binance spot. The same `Trader` (engine, order manager,
//! risk) as paper trading and backtests, against `venue::binance::BinanceVenue`, whose
//! WebSocket API connection the hot thread drives beside the market data on one mio `Poll`.
//!
//! Owns: the start-up gates (keys from the environment, the explicit confirmation, a set
//! `live.base_target`, the exchange's filters from exchangeInfo checked against the
//! configuration), `LiveSink` (the hot side: the reconciliation state machine run at start
//! and after every order-connection reconnect, the pauses for a lost order connection and
//! for a 429/418 back-off, and the Ctrl+C wind-down that cancels everything and waits for
//! the exchange to confirm it), and `LiveNote` (what the hot side tells the log).
//!
//! Reconciliation (at start and after every reconnect of the order connection): quoting is
//! paused; `openOrders.cancelAll` for the symbol (Binance spot has no cancel-on-disconnect:
//! orders rest while we are away, so the first thing a new connection does is cancel
//! them); then `openOrders.status` and `account.status`; once nothing is open and the
//! balances are in, the engine takes the exchange's word (`Trader::reconcile`: inventory =
//! base balance − `live.base_target`, every order it still tracked is forgotten) and
//! quoting resumes. A fill missed while disconnected shows up as an inventory change
//! booked at the mid, and is logged. Orders forgotten there leave the order table, so a
//! late report of a fill the balance already holds books nothing.
//!
//! While trading, audits (sent with nothing else in flight, acted on only when a stable
//! difference is found twice in a row): open orders against `openOrders.status` every 5 s
//! (a difference starts a reconciliation), inventory against `account.status` every 60 s
//! (a difference is corrected to the balances'); a cancel unanswered for 3 s starts a
//! reconciliation. During a 429/418 back-off nothing but cancels (after a -1015) is sent.
//!
//! Never: reads the secret anywhere but `Credentials::from_env`, prints or logs it, sends
//! an order before the reconciliation, or allocates, blocks or formats on the hot thread
//! (`LiveSink` hands `Copy` records to the side thread with `try_send`).

use std::path::PathBuf;
use std::time::Duration;

use crossbeam_channel::{bounded, Sender};
use mio::{Registry, Token};

use crate::config::Config;
use crate::engine::{EngineStats, Reconciled, Step, TradeRecord, Trader};
use crate::feed::{BookLevels, Decoder, Event};
use crate::hot::{self, FeedLoopConfig, FeedSink, LoopEnd, SnapshotFetcher};
use crate::live::{fetch_rules, gates, masked_key};
use crate::modes::paper::{counts_of, market_step, SideThread, TRADE_RECORD_CHANNEL_DEPTH};
use crate::net::{ConnConfig, NetEvent};
use crate::orders::SessionTag;
use crate::risk::StopReason;
use crate::session::{build_trader, log_net};
use crate::shutdown::Shutdown;
use crate::telemetry::kpi::{KpiSnapshot, OrderCounts};
use crate::telemetry::latency;
use crate::telemetry::log::LogHandle;
use crate::telemetry::report::default_snapshot_path;
use crate::time::wall_now_ns;
use crate::types::{Qty, Symbol, SymbolSpec};
use crate::venue::binance::{
    Balances, BinanceConfig, BinanceStats, BinanceVenue, KeyType, SUBSCRIBE_RETRY_NS,
};

/// The order connection's mio token (the market data's is `hot::MARKET_TOKEN`).
pub const ORDER_TOKEN: Token = Token(1);
/// A reconciliation step unanswered this long is sent again, ns.
const RECONCILE_RETRY_NS: u64 = 3_000_000_000;
/// Wind-down: after this long, ask the exchange what is open even if the engine still
/// waits for cancel confirmations, ns.
const WIND_QUERY_AFTER_NS: u64 = 1_000_000_000;
/// Venue counters go to the log this often, ns.
const STATS_EVERY_NS: u64 = 10_000_000_000;
/// Without venue reports, the trader's timer runs this often, ns.
pub(crate) const TIMER_EVERY_NS: u64 = 1_000_000;
/// Order counts go to the side thread this often, ns.
const COUNTS_EVERY_NS: u64 = 1_000_000_000;
/// The engine's open orders are checked against the exchange's this often, ns.
pub const AUDIT_EVERY_NS: u64 = 5_000_000_000;
/// A difference is checked again this soon before it counts, ns.
const AUDIT_RECHECK_NS: u64 = 2_000_000_000;
/// The engine's inventory is checked against the balances this often, ns.
pub const BALANCE_AUDIT_EVERY_NS: u64 = 60_000_000_000;
/// A cancel unanswered this long starts a reconciliation, ns.
const STUCK_CANCEL_NS: u64 = 3_000_000_000;
/// Reconciliation: at least this long between two cancel-all rounds, ns.
const RECONCILE_ROUND_NS: u64 = 1_000_000_000;
/// Wind-down with the order connection down: a reconnect attempt at least this often
/// (the backoff may be up to 30 s, longer than `live.shutdown_wait_s`), ns.
const WIND_RECONNECT_NS: u64 = 500_000_000;
/// Reconciliation: after this many cancel-all rounds with orders still appearing, stop.
const RECONCILE_ROUNDS_MAX: u32 = 10;

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

/// Flags of the mode.
#[derive(Clone, Debug, Default)]
pub struct LiveArgs {
    /// Stop after this long, ns.
    pub duration_ns: Option<u64>,
    /// `--i-understand-live-trading` was given.
    pub confirmed: bool,
}

/// What a live session produced.
#[derive(Clone, Debug)]
pub struct LiveSummary {
    /// Why it stopped.
    pub end: LoopEnd,
    /// The final KPIs.
    pub kpi: KpiSnapshot,
    /// The KPI snapshot file.
    pub snapshot_path: PathBuf,
    /// Latency files written.
    pub latency_files: Vec<PathBuf>,
    /// Orders the engine still counted as open at exit.
    pub open_orders_local: u32,
    /// Our open orders per the exchange's last answer (`None`: never confirmed).
    pub open_orders_exchange: Option<u32>,
    /// The exchange confirmed nothing of ours is open (or the session never traded).
    pub clean: bool,
    /// What the wind-down could not verify before `live.shutdown_wait_s` (`None`: it
    /// confirmed, or it never ran).
    pub unverified: Option<Unverified>,
    /// The session reconciled at least once (and so may have placed orders).
    pub traded: bool,
    /// Inventory at exit, lots (base balance − target, per fills since the last
    /// reconciliation).
    pub inventory_lots: i64,
    /// The symbol's grid.
    pub spec: SymbolSpec,
}

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

/// What the hot side tells the log (all `Copy`).
#[derive(Clone, Copy, Debug)]
pub enum LiveNote {
    /// An order-connection event (connecting, open, disconnected and why).
    OrderNet(NetEvent),
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

impl LiveNote {
    /// Writes the note to the log (side thread).
    pub fn log(&self, log: &LogHandle, spec: &SymbolSpec) {
        let lots = |q: Qty| spec.qty_to_f64(q);
        let units = |atoms: i64| atoms as f64 / 1e8;
        match *self {
            LiveNote::OrderNet(event) => log_net(log, "orders", &event),
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
                        AUDIT_RECHECK_NS as f64 / 1e9
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
const fn is_credential_refusal(code: i32) -> bool {
    matches!(code, -2015 | -2014 | -2008 | -1022)
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

/// Where the wind-down stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wind {
    /// Cancels sent: waiting for the confirmations.
    Cancelling { sent_ns: u64 },
    /// Asked the exchange what is still open.
    Querying { sent_ns: u64 },
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

/// The hot side of live trading.
pub struct LiveSink {
    trader: Trader,
    venue: BinanceVenue,
    records: Sender<TradeRecord>,
    notes: Sender<LiveNote>,
    counts: Sender<OrderCounts>,
    dropped: u64,
    next_counts_ns: u64,
    next_stats_ns: u64,
    phase: Phase,
    cause: Cause,
    reconciles: u32,
    /// Cancel-all rounds of the reconciliation under way.
    rounds: u32,
    last_round_ns: u64,
    base_target_atoms: i64,
    step_atoms: i64,
    inventory_max: Qty,
    cancel_on_start: bool,
    fatal: Option<&'static str>,
    backing_off: bool,
    subscribe_noted: bool,
    wind: Option<(u64, Wind)>,
    wind_done: bool,
    wind_confirmed: bool,
    wind_reconnects: u32,
    unverified: Option<Unverified>,
    /// When the inventory was last checked against the balances (0: never).
    inventory_checked_ns: u64,
    shutdown_wait_ns: u64,
    next_audit_ns: u64,
    next_balance_audit_ns: u64,
    audit: Option<Audit>,
    /// The last stable difference of open orders (engine, exchange), to be confirmed.
    audit_suspect: Option<(u32, u32)>,
    /// When the trader's timer runs next without a venue report.
    next_timer_ns: u64,
    /// The last stable inventory difference (engine, exchange), to be confirmed.
    balance_suspect: Option<(Qty, Qty)>,
}

impl LiveSink {
    fn note(&mut self, note: LiveNote) {
        if self.notes.try_send(note).is_err() {
            self.dropped += 1;
        }
    }

    /// Tells the side thread the inventory the engine just took from the balances (and the
    /// mid it was booked at), so the KPI report's inventory and PnL stay the engine's.
    fn send_inventory(&mut self, now_ns: u64) {
        let Some(touch) = self.trader.engine().touch() else {
            return;
        };
        let record = TradeRecord::Inventory {
            ts_ns: now_ns,
            inventory: self.trader.position().inventory,
            mid_x2_ticks: touch.bid.0 + touch.ask.0,
        };
        if self.records.try_send(record).is_err() {
            self.dropped += 1;
        }
    }

    fn timer(&mut self, now_ns: u64) {
        let records = &self.records;
        let dropped = &mut self.dropped;
        self.trader.on_timer(now_ns, &mut self.venue, &mut |r| {
            if records.try_send(r).is_err() {
                *dropped += 1;
            }
        });
    }

    /// Inventory per the balances, lots (toward zero: dust below a lot is not inventory).
    fn inventory_of(&self, balances: &Balances) -> Qty {
        Qty((balances.base_atoms - self.base_target_atoms) / self.step_atoms)
    }

    /// Pauses quoting and starts a reconciliation (not on a lost connection: that waits in
    /// `Connecting` for the venue to be ready again).
    fn begin_reconcile(&mut self, now_ns: u64, cause: Cause) {
        self.cause = cause;
        self.rounds = 0;
        self.audit = None;
        self.audit_suspect = None;
        self.balance_suspect = None;
        self.trader.pause(StopReason::Reconciling);
        self.note(LiveNote::ReconcileStarted {
            at_ns: now_ns,
            cause,
        });
        self.start_cancel(now_ns);
    }

    fn start_cancel(&mut self, now_ns: u64) {
        // -2011 when nothing is open: fine, the query after it says so.
        let _ = self.venue.cancel_all_untracked(now_ns);
        self.rounds += 1;
        self.last_round_ns = now_ns;
        self.phase = Phase::Cancelling { sent_ns: now_ns };
    }

    fn start_query(&mut self, now_ns: u64) {
        let _ = self.venue.request_open_orders(now_ns);
        let _ = self.venue.request_account(now_ns);
        self.phase = Phase::Querying { sent_ns: now_ns };
    }

    /// The reconciliation state machine (see the module doc). Called while the venue is
    /// ready and not backing off.
    fn reconcile(&mut self, now_ns: u64) {
        let answered = self.venue.in_flight() == 0;
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
                    self.note(LiveNote::ReconcileStarted {
                        at_ns: now_ns,
                        cause,
                    });
                    let _ = self.venue.request_open_orders(now_ns);
                    self.phase = Phase::CheckOpen { sent_ns: now_ns };
                } else {
                    self.begin_reconcile(now_ns, cause);
                }
            }
            Phase::CheckOpen { sent_ns } => match self.venue.open_orders_all() {
                Some(0) if answered => self.start_query(now_ns),
                Some(count) if count > 0 => {
                    self.note(LiveNote::OpenOrdersAtStart { count });
                    self.fatal = Some("orders open on the symbol at start (see the log)");
                }
                _ if now_ns.saturating_sub(sent_ns) > RECONCILE_RETRY_NS => {
                    let _ = self.venue.request_open_orders(now_ns);
                    self.phase = Phase::CheckOpen { sent_ns: now_ns };
                }
                _ => {}
            },
            Phase::Cancelling { sent_ns } => {
                if answered || now_ns.saturating_sub(sent_ns) > RECONCILE_RETRY_NS {
                    self.start_query(now_ns);
                }
            }
            Phase::Querying { sent_ns } => {
                let late = now_ns.saturating_sub(sent_ns) > RECONCILE_RETRY_NS;
                if !answered {
                    if late {
                        self.start_query(now_ns);
                    }
                    return;
                }
                match (self.venue.open_orders_all(), self.venue.balances()) {
                    (Some(0), Some(balances)) => self.finish_reconcile(now_ns, balances, late),
                    // Something is still open (an order raced the cancel, or another client
                    // trades the symbol): cancel again, at most once a second.
                    (Some(open), _) => {
                        if now_ns.saturating_sub(self.last_round_ns) < RECONCILE_ROUND_NS {
                            return;
                        }
                        if self.rounds >= RECONCILE_ROUNDS_MAX {
                            self.fatal = Some(
                                "orders keep appearing on the symbol after every cancel-all: \
                                 another client trades it on this account (see the log)",
                            );
                            return;
                        }
                        self.note(LiveNote::ReconcileRepeat {
                            rounds: self.rounds,
                            open,
                        });
                        self.start_cancel(now_ns);
                    }
                    _ if late => self.start_query(now_ns),
                    _ => {}
                }
            }
        }
    }

    /// Nothing is open and the balances are in: the engine takes the exchange's word.
    fn finish_reconcile(&mut self, now_ns: u64, balances: Balances, stale: bool) {
        let inventory = self.inventory_of(&balances);
        if self.reconciles == 0 && inventory.0.unsigned_abs() > self.inventory_max.0.unsigned_abs()
        {
            self.fatal = Some(
                "the start inventory (base balance − live.base_target) is beyond \
                 quoting.inventory_max: check live.base_target (see the log)",
            );
            self.note(LiveNote::InventoryBeyondLimit {
                inventory,
                balances,
            });
            return;
        }
        // Needs a touch to value the inventory: waits for the book, with fresh balances.
        let Some(result) = self.trader.reconcile(now_ns, inventory) else {
            if stale {
                self.start_query(now_ns);
            }
            return;
        };
        self.send_inventory(now_ns);
        self.inventory_checked_ns = now_ns;
        self.reconciles += 1;
        self.phase = Phase::Trading;
        self.next_audit_ns = now_ns + AUDIT_EVERY_NS;
        self.next_balance_audit_ns = now_ns + BALANCE_AUDIT_EVERY_NS;
        self.trader.resume(StopReason::VenueDisconnected);
        self.trader.resume(StopReason::Reconciling);
        self.note(LiveNote::Reconciled {
            at_ns: now_ns,
            result,
            balances,
            cause: self.cause,
        });
    }

    /// While trading: every `AUDIT_EVERY_NS` the engine's open orders against
    /// `openOrders.status`, every `BALANCE_AUDIT_EVERY_NS` its inventory against
    /// `account.status`, each sent with nothing else in flight; a difference found twice in
    /// a row with nothing sent or executed meanwhile is acted on. A cancel unanswered for
    /// `STUCK_CANCEL_NS` starts a reconciliation.
    fn audit(&mut self, now_ns: u64) {
        if self.phase != Phase::Trading {
            self.audit = None;
            return;
        }
        let idle = self.venue.in_flight() == 0;
        let Some(pending) = self.audit else {
            if !idle {
                return;
            }
            // The order table scan runs on the timer tick, not on every loop turn.
            if now_ns >= self.next_timer_ns
                && self
                    .trader
                    .oldest_pending_cancel_ns()
                    .is_some_and(|t| now_ns.saturating_sub(t) > STUCK_CANCEL_NS)
            {
                self.begin_reconcile(now_ns, Cause::StuckCancel);
                return;
            }
            let balances = now_ns >= self.next_balance_audit_ns;
            if !balances && now_ns < self.next_audit_ns {
                return;
            }
            let stats = self.venue.stats();
            let pending = Audit {
                sent_ns: now_ns,
                engine: self.trader.open_orders(),
                inventory: self.trader.position().inventory,
                requests_before: stats.requests_sent,
                executions_before: stats.executions,
                balances,
            };
            let sent = if balances {
                self.next_balance_audit_ns = now_ns + BALANCE_AUDIT_EVERY_NS;
                self.venue.request_account(now_ns)
            } else {
                self.next_audit_ns = now_ns + AUDIT_EVERY_NS;
                self.venue.request_open_orders(now_ns)
            };
            if sent.is_ok() {
                self.audit = Some(pending);
            }
            return;
        };
        if now_ns.saturating_sub(pending.sent_ns) > RECONCILE_RETRY_NS {
            // Unanswered: forget it, and any suspicion it was to confirm.
            self.audit = None;
            self.audit_suspect = None;
            self.balance_suspect = None;
            return;
        }
        if !idle {
            return;
        }
        self.audit = None;
        let stats = self.venue.stats();
        let stable = stats.requests_sent == pending.requests_before + 1
            && stats.executions == pending.executions_before
            && self.trader.open_orders() == pending.engine
            && self.trader.position().inventory == pending.inventory;
        if pending.balances {
            let Some(balances) = self.venue.balances() else {
                return;
            };
            let exchange = self.inventory_of(&balances);
            if stable && exchange == pending.inventory {
                self.inventory_checked_ns = now_ns;
            }
            if !stable || exchange == pending.inventory {
                self.balance_suspect = None;
                return;
            }
            let pair = (pending.inventory, exchange);
            if self.balance_suspect == Some(pair) {
                self.balance_suspect = None;
                if self.trader.adopt_inventory(now_ns, exchange).is_some() {
                    self.send_inventory(now_ns);
                    self.inventory_checked_ns = now_ns;
                }
                self.note(LiveNote::InventoryCorrected {
                    engine: pending.inventory,
                    exchange,
                });
            } else {
                self.balance_suspect = Some(pair);
                self.next_balance_audit_ns = now_ns + AUDIT_RECHECK_NS;
            }
            return;
        }
        let Some(exchange) = self.venue.open_orders() else {
            return;
        };
        let pair = (pending.engine, exchange);
        let differs = stable && exchange != pending.engine;
        let confirmed = differs && self.audit_suspect == Some(pair);
        self.note(LiveNote::Audit {
            engine: pending.engine,
            exchange,
            stable,
            confirmed,
        });
        self.audit_suspect = (differs && !confirmed).then_some(pair);
        if self.audit_suspect.is_some() {
            self.next_audit_ns = now_ns + AUDIT_RECHECK_NS;
        }
        if confirmed {
            self.begin_reconcile(now_ns, Cause::Audit);
        }
    }

    fn periodic(&mut self, now_ns: u64) {
        if now_ns >= self.next_counts_ns {
            self.next_counts_ns = now_ns + COUNTS_EVERY_NS;
            let _ = self.counts.try_send(counts_of(&self.trader));
        }
        if now_ns >= self.next_stats_ns {
            self.next_stats_ns = now_ns + STATS_EVERY_NS;
            let limits = self.venue.rate_limits();
            self.note(LiveNote::VenueStats {
                stats: self.venue.stats(),
                skew_ms: self.venue.server_skew_ms(),
                weight: limits.weight_1m,
                orders_10s: limits.orders_10s,
            });
        }
    }

    /// Order-connection events and refusals, for the log; a credential refusal at start
    /// ends the session.
    fn venue_notes(&mut self, now_ns: u64) {
        while let Some(event) = self.venue.take_net_event() {
            self.note(LiveNote::OrderNet(event));
        }
        match self.venue.subscribe_refused() {
            Some(code) if !self.subscribe_noted => {
                self.subscribe_noted = true;
                self.note(LiveNote::SubscribeRefused {
                    code,
                    at_logon: self.venue.refused_at_logon(),
                    key: self.venue.key_type(),
                });
                if self.reconciles == 0 && is_credential_refusal(code) {
                    self.fatal = Some(
                        "the exchange refused the API key or its signature (see the log for \
                         the code)",
                    );
                }
            }
            Some(_) => {}
            None => self.subscribe_noted = false,
        }
        if let Some(code) = self.venue.take_cancel_all_refused() {
            self.trader.on_cancel_all_refused(now_ns, code);
            self.note(LiveNote::CancelAllRefused { code });
        }
    }

    /// Orders the engine counts as open.
    pub fn open_orders_local(&self) -> u32 {
        self.trader.open_orders()
    }
}

impl FeedSink for LiveSink {
    const TIMED: bool = true;

    #[inline]
    fn on_event(&mut self, event: &Event, levels: BookLevels<'_>, now_ns: u64) -> (Step, u32) {
        let (trader, venue) = (&mut self.trader, &mut self.venue);
        market_step(
            trader,
            venue,
            &self.records,
            &mut self.dropped,
            event,
            levels,
            now_ns,
        )
    }

    fn on_disconnect(&mut self, _now_ns: u64) {
        // Quoting stops at once (the next timer cancels), not after stale_data_ms.
        self.trader.engine_mut().resync();
        self.trader.pause(StopReason::BookResync);
    }

    fn on_readiness(&mut self, event: &mio::event::Event) {
        if event.token() == ORDER_TOKEN {
            self.venue.on_readiness(event);
        }
    }

    #[inline]
    fn on_idle(&mut self, now_ns: u64, registry: &Registry) {
        self.venue.poll_io(registry, now_ns);
        self.venue_notes(now_ns);
        let backing_off = self.venue.is_backing_off(now_ns);
        if backing_off != self.backing_off {
            self.backing_off = backing_off;
            if backing_off {
                self.trader.pause(StopReason::RateLimited);
            } else {
                self.trader.resume(StopReason::RateLimited);
            }
            self.note(LiveNote::BackOff {
                at_ns: now_ns,
                on: backing_off,
                code: self.venue.last_error_code(),
            });
        }
        if !self.venue.is_ready() {
            if self.phase != Phase::Connecting {
                self.phase = Phase::Connecting;
                self.trader.pause(StopReason::VenueDisconnected);
                self.note(LiveNote::OrderConnectionDown { at_ns: now_ns });
            }
        } else if !backing_off {
            // Nothing but cancels may go out during a back-off: reconciliation and audits
            // wait for its end.
            if self.phase != Phase::Trading {
                self.reconcile(now_ns);
            }
            self.audit(now_ns);
        }
        // The trader's timer (venue reports, stale-data and kill-switch checks, the
        // mark-to-market) runs when the venue has reports, else once per TIMER_EVERY_NS:
        // not on every busy-poll turn.
        if self.venue.pending_events() > 0 || now_ns >= self.next_timer_ns {
            self.next_timer_ns = now_ns + TIMER_EVERY_NS;
            self.timer(now_ns);
        }
        self.periodic(now_ns);
    }

    fn fatal(&self) -> Option<&'static str> {
        self.fatal
    }

    fn wind_down(&mut self, now_ns: u64, registry: &Registry) -> bool {
        if self.wind_done {
            return true;
        }
        self.venue.poll_io(registry, now_ns);
        self.venue_notes(now_ns);
        let Some((started_ns, wind)) = self.wind else {
            let open_local = self.trader.open_orders();
            self.note(LiveNote::WindDownStarted { open_local });
            let records = &self.records;
            let dropped = &mut self.dropped;
            self.trader
                .stop(now_ns, StopReason::Shutdown, &mut self.venue, &mut |r| {
                    if records.try_send(r).is_err() {
                        *dropped += 1;
                    }
                });
            if self.reconciles == 0 && open_local == 0 {
                // Never traded: this session placed nothing.
                self.wind_done = true;
                self.wind_confirmed = true;
                return true;
            }
            self.wind = Some((now_ns, Wind::Cancelling { sent_ns: now_ns }));
            return false;
        };
        self.timer(now_ns);
        if now_ns.saturating_sub(started_ns) > self.shutdown_wait_ns {
            let gap = Unverified {
                order_connection_down: !self.venue.is_ready(),
                reconnects_forced: self.wind_reconnects,
                unanswered: self.venue.in_flight() as u32,
                open_local: self.trader.open_orders(),
                open_exchange: match wind {
                    Wind::Querying { .. } => self.venue.open_orders(),
                    Wind::Cancelling { .. } => None,
                },
                inventory_checked_ago_ns: (self.inventory_checked_ns > 0)
                    .then(|| now_ns.saturating_sub(self.inventory_checked_ns)),
            };
            self.unverified = Some(gap);
            self.note(LiveNote::WindDownTimedOut(gap));
            self.wind_done = true;
            return true;
        }
        if !self.venue.is_ready() {
            // A reconnect backoff can outlast the wait: try again at least every
            // WIND_RECONNECT_NS.
            if self.venue.reconnect_within(now_ns, WIND_RECONNECT_NS) {
                self.wind_reconnects += 1;
            }
            // Reconnecting: its first act after the subscription is ours below.
            self.wind = Some((started_ns, Wind::Cancelling { sent_ns: now_ns }));
            return false;
        }
        let answered = self.venue.in_flight() == 0;
        match wind {
            Wind::Cancelling { sent_ns } => {
                let waited = now_ns.saturating_sub(sent_ns) > WIND_QUERY_AFTER_NS;
                if answered && (self.trader.open_orders() == 0 || waited) {
                    let _ = self.venue.request_open_orders(now_ns);
                    self.wind = Some((started_ns, Wind::Querying { sent_ns: now_ns }));
                }
            }
            Wind::Querying { sent_ns } => {
                if !answered {
                    return false;
                }
                match self.venue.open_orders() {
                    Some(0) => {
                        // The exchange's word: whatever the engine still waits for is gone.
                        self.trader.forget_open();
                        self.note(LiveNote::WindDownConfirmed {
                            took_ns: now_ns.saturating_sub(started_ns),
                        });
                        self.wind_done = true;
                        self.wind_confirmed = true;
                        return true;
                    }
                    Some(_) => {
                        let _ = self.venue.cancel_all_untracked(now_ns);
                        self.wind = Some((started_ns, Wind::Cancelling { sent_ns: now_ns }));
                    }
                    None if now_ns.saturating_sub(sent_ns) > RECONCILE_RETRY_NS => {
                        let _ = self.venue.request_open_orders(now_ns);
                        self.wind = Some((started_ns, Wind::Querying { sent_ns: now_ns }));
                    }
                    None => {}
                }
            }
        }
        false
    }

    fn engine_stats(&self) -> EngineStats {
        self.trader.engine().stats()
    }
}

/// The start-up gates (keys, confirmation, base target) without touching the network:
/// `main` runs them before anything else, so a refusal is one line and exit status 2.
pub fn preflight(config: &Config, confirmed: bool) -> anyhow::Result<()> {
    gates(config, confirmed).map(|_| ())
}

/// Runs live trading until a signal, the deadline, or a fatal condition.
pub fn run(
    config: &Config,
    args: &LiveArgs,
    log: &LogHandle,
    shutdown: &Shutdown,
) -> anyhow::Result<LiveSummary> {
    let (creds, base_target_atoms) = gates(config, args.confirmed)?;
    let symbol = config.spec.symbol;
    let super::MarketData {
        roots,
        url,
        snapshot_url,
        conn,
    } = super::market_data(config)?;

    // The exchange's rules (REST, before anything is sent).
    let rules = fetch_rules(config, &roots)?;
    let base_asset = Symbol::new(&rules.base_asset)
        .map_err(|e| anyhow::anyhow!("base asset {:?}: {e}", rules.base_asset))?;
    let quote_asset = Symbol::new(&rules.quote_asset)
        .map_err(|e| anyhow::anyhow!("quote asset {:?}: {e}", rules.quote_asset))?;

    let start_wall_ns = wall_now_ns();
    // The start time in ms, base 36 (8 characters until 2059): unique per run on a host.
    let session = SessionTag::from_number(start_wall_ns / 1_000_000);
    let key = masked_key(creds.api_key());
    let key_kind = match creds.key_type() {
        KeyType::Hmac => "HMAC, every request signed",
        KeyType::Ed25519 => "Ed25519, session.logon per connection",
    };
    let banner = format!(
        "LIVE TRADING {symbol}: orders {} (API key {key}, {key_kind}), market data {url}; session tag {}; \
         base target {} {}; quote size {} {}; inventory max {} {}; session loss max {} {}. \
         Ctrl+C cancels every order and waits for the exchange to confirm.",
        config.live.ws_api_url,
        String::from_utf8_lossy(session.as_bytes()),
        base_target_atoms as f64 / 1e8,
        rules.base_asset,
        config.spec.qty_to_f64(config.quoting.quote_size_lots),
        rules.base_asset,
        config.spec.qty_to_f64(config.quoting.inventory_max_lots),
        rules.base_asset,
        config.risk.session_loss_max_atoms as f64 / 1e8,
        rules.quote_asset,
    );
    crate::outln!("{banner}");
    log.info(format_args!("{banner}"));

    let mut order_conn = ConnConfig::new(&config.live.ws_api_url, roots.clone());
    // The WebSocket API pings every 20 s; its answers keep the connection fresh too.
    order_conn.stale_after_ns = 60_000_000_000;
    order_conn
        .validate()
        .map_err(|e| anyhow::anyhow!("order connection settings: {e}"))?;
    let venue_cfg = BinanceConfig {
        conn: order_conn,
        spec: config.spec,
        base_asset,
        quote_asset,
        session,
        recv_window_ms: config.live.recv_window_ms,
        rate_headroom: config.live.rate_headroom,
    };
    let venue = BinanceVenue::new(venue_cfg, creds, ORDER_TOKEN, start_wall_ns)
        .map_err(|e| anyhow::anyhow!("order entry: {e}"))?;

    let snapshot_path = default_snapshot_path(symbol.as_str());
    let latency_path = latency::log_path(
        std::path::Path::new(latency::LATENCY_DIR),
        "live",
        symbol.as_str(),
        start_wall_ns,
    );
    let (trade_tx, trade_rx) = bounded(TRADE_RECORD_CHANNEL_DEPTH);
    let (hot_tx, hot_rx) = bounded(hot::HOT_RECORD_CHANNEL_DEPTH);
    let (counts_tx, counts_rx) = bounded(64);
    let (notes_tx, notes_rx) = bounded(1024);
    let side = SideThread::new(
        config,
        "live",
        "Live",
        log,
        &snapshot_path,
        &latency_path,
        start_wall_ns,
    )?;
    let side_thread = std::thread::Builder::new()
        .name("mm-side".to_string())
        .spawn(move || side.run(trade_rx, hot_rx, counts_rx, notes_rx))?;
    let fetcher = SnapshotFetcher::start(snapshot_url, roots, log.clone())?;

    let mut trader = build_trader(config)?;
    // Nothing is sent before the order connection is up and reconciled.
    trader.pause(StopReason::VenueDisconnected);
    let mut sink = LiveSink {
        trader,
        venue,
        records: trade_tx,
        notes: notes_tx,
        counts: counts_tx,
        dropped: 0,
        next_counts_ns: 0,
        next_stats_ns: start_wall_ns + STATS_EVERY_NS,
        phase: Phase::Connecting,
        cause: Cause::Start,
        reconciles: 0,
        rounds: 0,
        last_round_ns: 0,
        base_target_atoms,
        step_atoms: config.spec.step_atoms,
        inventory_max: config.quoting.inventory_max_lots,
        cancel_on_start: config.live.cancel_open_orders_on_start,
        fatal: None,
        backing_off: false,
        subscribe_noted: false,
        wind: None,
        wind_done: false,
        wind_confirmed: false,
        wind_reconnects: 0,
        unverified: None,
        inventory_checked_ns: 0,
        shutdown_wait_ns: (config.live.shutdown_wait_s * 1e9) as u64,
        next_audit_ns: 0,
        next_balance_audit_ns: 0,
        audit: None,
        audit_suspect: None,
        next_timer_ns: 0,
        balance_suspect: None,
    };
    let mut decoder = Decoder::new(config.spec);
    let loop_cfg = FeedLoopConfig {
        conn,
        cpu_core: config.engine.cpu_core,
        duration_ns: args.duration_ns,
    };
    let result = hot::run_feed_loop(
        &loop_cfg,
        &mut sink,
        &mut decoder,
        None,
        &hot_tx,
        &fetcher,
        shutdown,
    );
    let _ = sink
        .counts
        .send_timeout(counts_of(&sink.trader), Duration::from_secs(1));
    let open_orders_local = sink.trader.open_orders();
    let clean = sink.wind_confirmed;
    let unverified = sink.unverified;
    let traded = sink.reconciles > 0;
    // The exchange's count only from the wind-down's own question: an earlier audit's
    // answer says nothing about the orders at exit.
    let open_orders_exchange = if sink.wind_confirmed {
        sink.venue.open_orders()
    } else {
        unverified.and_then(|u| u.open_exchange)
    };
    let inventory_lots = sink.trader.position().inventory.0;
    let dropped = sink.dropped;
    let stats = sink.venue.stats();
    drop(sink);
    drop(hot_tx);
    let (kpi, latency_files) = side_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the side thread panicked"))??;
    fetcher.join();
    let (end, loop_stats) = result?;
    log.info(format_args!(
        "live: stopped ({}) — {} frames, {} refused by the decoder, {} quotes, {} requests, \
         {} executions; open orders {open_orders_local} per the engine, {} per the exchange; \
         {dropped} records dropped",
        end.describe(),
        loop_stats.frames,
        loop_stats.decode_errors,
        loop_stats.engine.quotes,
        stats.requests_sent,
        stats.executions,
        open_orders_exchange.map_or_else(|| "unconfirmed".to_string(), |n| n.to_string()),
    ));
    Ok(LiveSummary {
        end,
        kpi,
        snapshot_path,
        latency_files,
        open_orders_local,
        open_orders_exchange,
        clean,
        unverified,
        traded,
        inventory_lots,
        spec: config.spec,
    })
}
