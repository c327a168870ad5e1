//! The order session: `BinanceVenue`, the `Venue` the `Trader` drives in live mode, and its
//! connection handler. Owns the in-flight request table, the queue of `VenueEvent`s, the
//! user-data subscription (and Ed25519 `session.logon`), the server-time correction, rate
//! limiting from the last `rateLimits` counts, the 429/418 back-off, request time-outs and
//! reconnects.
//!
//! Rotation is make-before-break once the venue knows a second mio token
//! (`set_standby_token`): `ROTATION_LEAD_NS` (at most half the connection's `max_age_ns`)
//! before the order connection's age limit, a standby connection opens and is set up as
//! a new connection is (`time`, with Ed25519 `session.logon`, then the user-data
//! subscription). Once the standby's subscription is confirmed, order entry switches to
//! it in one step (`is_ready` never turns false); the old connection answers what was
//! sent on it, then — nothing left in flight on it — is unsubscribed and closed. While
//! both are subscribed every executionReport arrives twice: the copies are recognised
//! (order, execution type, trade id) and dropped. A standby that fails, or is not
//! subscribed before the age limit, is dropped and the old connection rotates
//! break-before-make (the reconciliation covers it).
//!
//! Hot path: every method except `new` never allocates, never reads the clock (`now_ns`
//! comes in), never logs and never panics on network input (opening a rotation's standby
//! allocates, once per rotation). Never sends a request before the user-data subscription
//! is confirmed.

use super::*;

/// Settings of the live venue.
#[derive(Clone, Debug)]
pub struct BinanceConfig {
    /// The order connection (`wss://ws-api.binance.com:443/ws-api/v3`).
    pub conn: ConnConfig,
    /// The symbol traded.
    pub spec: SymbolSpec,
    /// Base asset name (`BTC`), for commissions charged in it.
    pub base_asset: Symbol,
    /// Quote asset name (`USDT`).
    pub quote_asset: Symbol,
    /// The session tag of our client order ids.
    pub session: SessionTag,
    /// `recvWindow`, ms.
    pub recv_window_ms: u32,
    /// Requests refused locally once a window's count reaches `limit − headroom` (never
    /// hit 429). Applied to ORDERS/10 s and REQUEST_WEIGHT/min.
    pub rate_headroom: u32,
}

/// What a request in flight was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// `order.place`.
    Place(ClientOrderId),
    /// `order.cancel`.
    Cancel(ClientOrderId),
    /// `order.cancelReplace`.
    CancelReplace {
        /// Cancelled order.
        cancel_id: ClientOrderId,
        /// Replacement.
        new_id: ClientOrderId,
    },
    /// `openOrders.cancelAll`.
    CancelAll,
    /// `openOrders.status`.
    OpenOrders,
    /// `account.status`.
    Account,
    /// `userDataStream.subscribe.signature` (HMAC) or `userDataStream.subscribe` (Ed25519).
    Subscribe,
    /// `session.logon` (Ed25519).
    Logon,
    /// `time`.
    Time,
    /// `userDataStream.unsubscribe` (a rotation retiring the old connection).
    Unsubscribe,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct InFlight {
    pub(super) req_id: u64,
    pub(super) kind: RequestKind,
    pub(super) sent_ns: u64,
    /// Sent on the rotation's other connection (the standby, or the old one retiring).
    pub(super) other: bool,
}

/// What a make-before-break rotation of the order connection did (for the log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RotationEvent {
    /// The standby connection is opening (the old one is near its age limit).
    Opening,
    /// Order entry switched to the standby (subscribed); the old one is retiring.
    Switched,
    /// The old connection was unsubscribed and closed with `lost` requests unanswered
    /// (non-zero: it was closed at the deadline, or dropped; the connection then restarts
    /// and reconciles).
    Retired {
        /// Requests it took unanswered.
        lost: u64,
    },
    /// The standby failed or was not ready before the age limit: dropped; the old
    /// connection rotates break-before-make.
    Abandoned,
}

/// One side of a rotation: the standby being set up, or the old connection retiring.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Link {
    want_setup: bool,
    logged_on: bool,
    subscribe_sent: bool,
    subscribed: bool,
    unsubscribe_sent: bool,
    unsubscribed: bool,
    refused: bool,
    down: bool,
}

/// An executionReport, as far as telling its second copy goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ReportKey {
    id: u64,
    exec: ExecType,
    trade_id: u64,
}

/// Counters of the live venue since `new`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BinanceStats {
    /// Requests written to the connection.
    pub requests_sent: u64,
    /// Responses matched to a request in flight.
    pub responses: u64,
    /// Responses with no matching request (late after a reconnect, or `"id":null`).
    pub responses_unmatched: u64,
    /// Error responses.
    pub errors: u64,
    /// executionReports for our orders.
    pub executions: u64,
    /// executionReports of other sessions' or clients' orders (ignored).
    pub executions_foreign: u64,
    /// Other user-data events.
    pub other_events: u64,
    /// Frames that did not decode.
    pub decode_errors: u64,
    /// Events dropped because the event queue was full (a bug if ever non-zero).
    pub events_dropped: u64,
    /// Submits refused by the local rate limiter or a back-off.
    pub throttled: u64,
    /// 429/418 responses.
    pub rate_limited: u64,
    /// Requests in flight lost to a disconnect (their orders need reconciling).
    pub lost_in_flight: u64,
    /// Commissions in an asset we cannot convert.
    pub fees_unconverted: u64,
    /// Requests unanswered for `REQUEST_TIMEOUT_NS` (each restarts the connection).
    pub request_timeouts: u64,
    /// Round trip (request written → response) of the last response, ns.
    pub last_round_trip_ns: u64,
    /// Make-before-break rotations completed (order entry switched to the standby).
    pub rotations: u64,
    /// executionReports that arrived twice while both connections of a rotation were
    /// subscribed (the second copy dropped).
    pub executions_duplicate: u64,
}

/// The Binance order entry as a `Venue`. Owns its connection; the hot loop forwards mio
/// events for its token (`on_readiness`) and calls `poll_io` every turn, beside the
/// market-data connection on the same `Poll`. `submit` writes the request into the
/// connection's frame buffer at once; responses and executionReports become
/// `VenueEvent`s that `poll_events` hands out.
pub struct BinanceVenue {
    conn: Connection,
    pub(super) core: Core,
    /// The connection's settings (a rotation's standby opens with them).
    conn_cfg: ConnConfig,
    /// The rotation's other connection: the standby, or (`retiring`) the old one.
    standby: Option<Connection>,
    retiring: bool,
    /// When the old connection started retiring, ns.
    retiring_since_ns: u64,
    /// The two tokens the order connection alternates between (`None`: no standby,
    /// rotation is break-before-make).
    tokens: Option<(Token, Token)>,
}

/// A rotation's standby opens this long before the connection's age limit (or at half
/// its age, if that is sooner), ns.
pub const ROTATION_LEAD_NS: u64 = 60_000 * NS_PER_MS;
/// executionReports remembered while both connections of a rotation are subscribed.
const REPORTS_SEEN_MAX: usize = 128;
/// Rotation events kept for the log until taken.
const ROTATION_EVENTS_MAX: usize = 4;

/// Everything but the connection (so the connection can call it as its `Handler`).
pub(super) struct Core {
    pub(super) encoder: RequestEncoder,
    pub(super) base_asset: Symbol,
    pub(super) quote_asset: Symbol,
    pub(super) rate_headroom: u32,
    wall_offset_ns: i64,
    next_req_id: u64,
    pub(super) in_flight: [Option<InFlight>; IN_FLIGHT_MAX],
    pub(super) in_flight_len: usize,
    pub(super) events: [VenueEvent; EVENT_QUEUE_MAX],
    events_head: usize,
    events_len: usize,
    pub(super) subscribed: bool,
    pub(super) want_subscribe: bool,
    /// Ed25519: `session.logon` answered 200 on this connection.
    logged_on: bool,
    pub(super) limits: RateLimits,
    limits_at_ns: u64,
    pub(super) backoff_until_ms: u64,
    /// The back-off is for new orders only (-1015, the ORDERS limit): cancels still go.
    pub(super) backoff_orders_only: bool,
    pub(super) last_error_code: i32,
    pub(super) server_skew_ms: Option<i64>,
    pub(super) open_orders: Option<u32>,
    pub(super) open_orders_all: Option<u32>,
    pub(super) balances: Option<Balances>,
    pub(super) last_heard_ns: u64,
    /// The last refused session set-up (`session.logon` or the subscription): (error
    /// code, when).
    pub(super) subscribe_refused: Option<(i32, u64)>,
    /// That refusal answered `session.logon` (not the subscription).
    pub(super) refused_at_logon: bool,
    /// `openOrders.cancelAll` (the trader's) refused with this code, not yet taken.
    cancel_all_refused: Option<i32>,
    net_events: [Option<NetEvent>; NET_EVENTS_MAX],
    net_events_len: usize,
    pub(super) stats: BinanceStats,
    /// The rotation's other connection's state.
    other: Link,
    /// Both connections of a rotation are (or may be) subscribed: reports are remembered.
    overlap: bool,
    reports_seen: [Option<ReportKey>; REPORTS_SEEN_MAX],
    reports_seen_next: usize,
    /// Any report remembered since the last rotation began (else no look-up).
    reports_seen_any: bool,
    rotation_events: [Option<RotationEvent>; ROTATION_EVENTS_MAX],
    rotation_events_len: usize,
}

/// The symbol's two balances from `account.status`, free + locked, atoms (10⁻⁸).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Balances {
    /// Base asset (BTC) held, free + locked, atoms.
    pub base_atoms: i64,
    /// Base asset locked in open orders, atoms.
    pub base_locked_atoms: i64,
    /// Quote asset (USDT) held, free + locked, atoms.
    pub quote_atoms: i64,
    /// Quote asset locked in open orders, atoms.
    pub quote_locked_atoms: i64,
}

impl BinanceVenue {
    /// Sets up the venue; the connection opens on the first `poll_io`. Off the hot path.
    pub fn new(
        cfg: BinanceConfig,
        creds: Credentials,
        token: Token,
        now_ns: u64,
    ) -> Result<BinanceVenue, BinanceError> {
        let encoder = RequestEncoder::new(creds, cfg.spec, cfg.session, cfg.recv_window_ms)?;
        let conn_cfg = cfg.conn.clone();
        let conn = Connection::new(cfg.conn, token, now_ns).map_err(BinanceError::Net)?;
        Ok(BinanceVenue {
            conn,
            conn_cfg,
            standby: None,
            retiring: false,
            retiring_since_ns: 0,
            tokens: None,
            core: Core {
                encoder,
                base_asset: cfg.base_asset,
                quote_asset: cfg.quote_asset,
                rate_headroom: cfg.rate_headroom,
                wall_offset_ns: 0,
                next_req_id: 1,
                in_flight: [None; IN_FLIGHT_MAX],
                in_flight_len: 0,
                events: [VenueEvent::Canceled {
                    id: ClientOrderId(0),
                }; EVENT_QUEUE_MAX],
                events_head: 0,
                events_len: 0,
                subscribed: false,
                want_subscribe: false,
                logged_on: false,
                limits: RateLimits::default(),
                limits_at_ns: 0,
                backoff_until_ms: 0,
                backoff_orders_only: true,
                last_error_code: 0,
                server_skew_ms: None,
                open_orders: None,
                open_orders_all: None,
                balances: None,
                last_heard_ns: 0,
                subscribe_refused: None,
                refused_at_logon: false,
                cancel_all_refused: None,
                net_events: [None; NET_EVENTS_MAX],
                net_events_len: 0,
                stats: BinanceStats::default(),
                other: Link::default(),
                overlap: false,
                reports_seen: [None; REPORTS_SEEN_MAX],
                reports_seen_next: 0,
                reports_seen_any: false,
                rotation_events: [None; ROTATION_EVENTS_MAX],
                rotation_events_len: 0,
            },
        })
    }

    /// Makes the age rotation make-before-break: the standby connection uses `token`
    /// (and the two alternate from then on). Off the hot path.
    pub fn set_standby_token(&mut self, token: Token) {
        self.tokens = Some((self.conn.token(), token));
    }

    /// Whether a mio event with `token` is this venue's (its connection or the standby).
    pub fn owns(&self, token: Token) -> bool {
        self.conn.token() == token || self.standby.as_ref().is_some_and(|s| s.token() == token)
    }

    /// Takes the oldest rotation event not yet taken.
    pub fn take_rotation_event(&mut self) -> Option<RotationEvent> {
        let core = &mut self.core;
        take_first(&mut core.rotation_events, &mut core.rotation_events_len)
    }

    /// Sets wall-clock time − `now_ns` (plus any server-time correction), ns: request
    /// timestamps are `(now_ns + offset) / 1e6`. The caller reads the clocks.
    pub fn set_wall_offset_ns(&mut self, offset_ns: i64) {
        self.core.wall_offset_ns = offset_ns;
    }

    /// Forwards a mio event to its connection (others' tokens are ignored).
    pub fn on_readiness(&mut self, event: &Event) {
        if event.token() == self.conn.token() {
            self.conn.on_readiness(event);
        } else if let Some(s) = self.standby.as_mut().filter(|s| s.token() == event.token()) {
            s.on_readiness(event);
        }
    }

    /// Drives the connection: connects, reads responses and events (decoded into the
    /// event queue), and on every new connection asks the server's time and subscribes to
    /// user data — with an Ed25519 key after `session.logon` has been answered 200.
    pub fn poll_io(&mut self, registry: &Registry, now_ns: u64) {
        self.conn.poll(registry, now_ns, &mut self.core);
        if self
            .core
            .oldest_in_flight_ns()
            .is_some_and(|sent| sent + REQUEST_TIMEOUT_NS < now_ns)
        {
            self.core.stats.request_timeouts += 1;
            self.conn.restart(registry, now_ns, &mut self.core);
        }
        if let Some((_, at_ns)) = self.core.subscribe_refused {
            // A refused subscription leaves an open connection that can never trade:
            // start over (a new connection subscribes again) once the wait is over.
            if at_ns + SUBSCRIBE_RETRY_NS <= now_ns && !self.is_backing_off(now_ns) {
                self.core.subscribe_refused = None;
                self.conn.restart(registry, now_ns, &mut self.core);
            }
        }
        if self.core.want_subscribe && self.conn.is_open() && !self.is_backing_off(now_ns) {
            self.core.want_subscribe = false;
            let ed25519 = self.core.encoder.key_type() == KeyType::Ed25519;
            if ed25519 && !self.core.logged_on {
                // The answer (`on_response`) asks for the subscription.
                let _ = self.send(now_ns, RequestKind::Time);
                let _ = self.send(now_ns, RequestKind::Logon);
            } else {
                if !ed25519 {
                    let _ = self.send(now_ns, RequestKind::Time);
                }
                let _ = self.send(now_ns, RequestKind::Subscribe);
            }
        }
        self.rotate(registry, now_ns);
    }

    /// The rotation step of one turn (see the module doc).
    fn rotate(&mut self, registry: &Registry, now_ns: u64) {
        let Some((a, b)) = self.tokens else {
            return;
        };
        let max_age_ns = self.conn_cfg.max_age_ns;
        let lead_ns = ROTATION_LEAD_NS.min(max_age_ns / 2);
        let age_ns = self.conn.age_ns(now_ns);
        let Some(standby) = self.standby.as_mut() else {
            if self.is_ready() && age_ns.is_some_and(|a| a.saturating_add(lead_ns) >= max_age_ns) {
                let token = if self.conn.token() == a { b } else { a };
                // Allocates (buffers, resolver thread): once per rotation.
                if let Ok(c) = Connection::new(self.conn_cfg.clone(), token, now_ns) {
                    self.standby = Some(c);
                    self.retiring = false;
                    let core = &mut self.core;
                    core.other = Link::default();
                    core.reports_seen = [None; REPORTS_SEEN_MAX];
                    core.reports_seen_any = false;
                    core.note_rotation(RotationEvent::Opening);
                }
            }
            return;
        };
        standby.poll(registry, now_ns, &mut OtherLink(&mut self.core));
        if self.retiring {
            self.retire(registry, now_ns);
            return;
        }
        let other = self.core.other;
        let primary_gone = !self.conn.is_open() || age_ns.is_none_or(|a| a >= max_age_ns);
        if other.down || other.refused || primary_gone {
            self.drop_standby(registry);
            self.core.note_rotation(RotationEvent::Abandoned);
            return;
        }
        if other.subscribed {
            self.switch(now_ns);
            return;
        }
        if self.is_backing_off(now_ns) {
            return;
        }
        let ed25519 = self.core.encoder.key_type() == KeyType::Ed25519;
        if other.want_setup {
            let first = if ed25519 {
                RequestKind::Logon
            } else {
                RequestKind::Subscribe
            };
            let _ = self.send_on(true, now_ns, RequestKind::Time, None);
            if self.send_on(true, now_ns, first, None).is_ok() {
                self.core.other.want_setup = false;
                if !ed25519 {
                    self.core.other.subscribe_sent = true;
                    self.core.overlap = true;
                }
            }
        } else if ed25519
            && other.logged_on
            && !other.subscribe_sent
            && self
                .send_on(true, now_ns, RequestKind::Subscribe, None)
                .is_ok()
        {
            self.core.other.subscribe_sent = true;
            self.core.overlap = true;
        }
    }

    /// The standby is subscribed: it becomes the order connection (in one step: `is_ready`
    /// stays true); the old one starts retiring.
    fn switch(&mut self, now_ns: u64) {
        let Some(standby) = self.standby.as_mut() else {
            return;
        };
        std::mem::swap(&mut self.conn, standby);
        let core = &mut self.core;
        let new = core.other;
        core.other = Link {
            logged_on: core.logged_on,
            subscribed: core.subscribed,
            ..Link::default()
        };
        core.subscribed = new.subscribed;
        core.logged_on = new.logged_on;
        core.want_subscribe = false;
        for entry in core.in_flight.iter_mut().flatten() {
            entry.other = !entry.other;
        }
        core.stats.rotations += 1;
        self.retiring = true;
        self.retiring_since_ns = now_ns;
        core.note_rotation(RotationEvent::Switched);
    }

    /// The old connection: once nothing sent on it is in flight, unsubscribed, then closed
    /// (at the latest after `REQUEST_TIMEOUT_NS`: what it still had is lost, and the
    /// order connection restarts to reconcile).
    fn retire(&mut self, registry: &Registry, now_ns: u64) {
        let other = self.core.other;
        let in_flight_there = self.core.in_flight.iter().flatten().any(|e| e.other);
        let late = now_ns >= self.retiring_since_ns + REQUEST_TIMEOUT_NS;
        if other.down || late || other.unsubscribed {
            let lost = self.core.drop_in_flight(true);
            self.core.stats.lost_in_flight += lost;
            self.drop_standby(registry);
            self.core.note_rotation(RotationEvent::Retired { lost });
            if lost > 0 {
                self.conn.restart(registry, now_ns, &mut self.core);
            }
            return;
        }
        if !in_flight_there
            && !other.unsubscribe_sent
            && self
                .send_on(true, now_ns, RequestKind::Unsubscribe, None)
                .is_ok()
        {
            self.core.other.unsubscribe_sent = true;
        }
    }

    /// Closes the rotation's other connection; what was in flight on it is forgotten.
    fn drop_standby(&mut self, registry: &Registry) {
        if let Some(mut s) = self.standby.take() {
            s.close(registry);
        }
        self.core.drop_in_flight(true);
        self.core.other = Link::default();
        self.core.overlap = false;
        self.retiring = false;
    }

    /// The code of the last refused session set-up — `session.logon` (Ed25519) or the
    /// user-data subscription — while the venue waits to retry (-2015 / -1022 / -2014: the
    /// key, its permissions or IP whitelist, or the secret / private key).
    pub fn subscribe_refused(&self) -> Option<i32> {
        self.core.subscribe_refused.map(|(code, _)| code)
    }

    /// The last refusal (`subscribe_refused`) answered `session.logon`.
    pub fn refused_at_logon(&self) -> bool {
        self.core.refused_at_logon
    }

    /// Which kind of key authenticates the requests.
    pub fn key_type(&self) -> KeyType {
        self.core.encoder.key_type()
    }

    /// Ed25519: `session.logon` was answered 200 on the current connection.
    pub fn is_logged_on(&self) -> bool {
        self.core.logged_on
    }

    /// Takes the code of a refused `openOrders.cancelAll` sent for the trader (other than
    /// -2011 "nothing open"): its orders are not cancelled and must be cancelled again.
    pub fn take_cancel_all_refused(&mut self) -> Option<i32> {
        self.core.cancel_all_refused.take()
    }

    /// Takes the oldest order-connection event not yet taken (connects, opens, drops).
    pub fn take_net_event(&mut self) -> Option<NetEvent> {
        let core = &mut self.core;
        take_first(&mut core.net_events, &mut core.net_events_len)
    }

    /// True when orders can be sent: connected and subscribed to executionReports.
    pub fn is_ready(&self) -> bool {
        self.conn.is_open() && self.core.subscribed
    }

    /// True while a 429/418 back-off is in force (stop quoting).
    pub fn is_backing_off(&self, now_ns: u64) -> bool {
        self.core.wall_ms(now_ns) < self.core.backoff_until_ms
    }

    /// Asks for `openOrders.status`; the answer lands in `open_orders()`.
    pub fn request_open_orders(&mut self, now_ns: u64) -> Result<(), SubmitError> {
        self.core.open_orders = None;
        self.core.open_orders_all = None;
        self.send(now_ns, RequestKind::OpenOrders)
    }

    /// Our open orders per the last `openOrders.status` answer (orders of this session).
    pub fn open_orders(&self) -> Option<u32> {
        self.core.open_orders
    }

    /// Every open order on the symbol per the last `openOrders.status` answer, whoever
    /// placed it (another session's orders, or another client's).
    pub fn open_orders_all(&self) -> Option<u32> {
        self.core.open_orders_all
    }

    /// Asks for `account.status`; the answer lands in `balances()`.
    pub fn request_account(&mut self, now_ns: u64) -> Result<(), SubmitError> {
        self.core.balances = None;
        self.send(now_ns, RequestKind::Account)
    }

    /// The symbol's two balances per the last `account.status` answer.
    pub fn balances(&self) -> Option<Balances> {
        self.core.balances
    }

    /// Sends `openOrders.cancelAll` outside the order manager (reconciliation: orders the
    /// engine no longer tracks). Its answer is not an event: `request_open_orders` after it
    /// tells whether anything is left. Refused during a back-off unless it only limits
    /// new orders.
    pub fn cancel_all_untracked(&mut self, now_ns: u64) -> Result<(), SubmitError> {
        if self.is_backing_off(now_ns) && !self.core.backoff_orders_only {
            return Err(SubmitError::QueueFull);
        }
        self.send(now_ns, RequestKind::CancelAll)
    }

    /// Time of the last response or user-data event, ns (0 before any).
    pub fn last_heard_ns(&self) -> u64 {
        self.core.last_heard_ns
    }

    /// Asks for the server's time; the answer corrects every request timestamp (also sent
    /// on every new connection).
    pub fn request_server_time(&mut self, now_ns: u64) -> Result<(), SubmitError> {
        self.send(now_ns, RequestKind::Time)
    }

    /// Server clock − our wall clock, ms, from the last `time` answer.
    pub fn server_skew_ms(&self) -> Option<i64> {
        self.core.server_skew_ms
    }

    /// Counts of the last `rateLimits` array.
    pub fn rate_limits(&self) -> RateLimits {
        self.core.limits
    }

    /// The code of the last error response (0 if none yet).
    pub fn last_error_code(&self) -> i32 {
        self.core.last_error_code
    }

    /// Venue events decoded but not yet handed out by `poll_events`.
    pub fn pending_events(&self) -> usize {
        self.core.events_len
    }

    /// Requests awaiting a response.
    pub fn in_flight(&self) -> usize {
        self.core.in_flight_len
    }

    /// Counters.
    pub fn stats(&self) -> BinanceStats {
        self.core.stats
    }

    /// The connection (phase, stats).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// While the order connection waits out a reconnect backoff: tries again now if the
    /// next attempt is more than `within_ns` away (the Ctrl+C wind-down). Returns whether
    /// an attempt was brought forward.
    pub fn reconnect_within(&mut self, now_ns: u64, within_ns: u64) -> bool {
        self.conn.attempt_within(now_ns, within_ns)
    }

    /// Closes the connection (and a rotation's other one) for good.
    pub fn close(&mut self, registry: &Registry) {
        self.drop_standby(registry);
        self.conn.close(registry);
    }

    fn send(&mut self, now_ns: u64, kind: RequestKind) -> Result<(), SubmitError> {
        self.send_on(false, now_ns, kind, None)
    }

    fn send_action(
        &mut self,
        now_ns: u64,
        kind: RequestKind,
        action: Option<&Action>,
    ) -> Result<(), SubmitError> {
        self.send_on(false, now_ns, kind, action)
    }

    /// Sends on the order connection, or (`other`) on the rotation's other connection.
    fn send_on(
        &mut self,
        other: bool,
        now_ns: u64,
        kind: RequestKind,
        action: Option<&Action>,
    ) -> Result<(), SubmitError> {
        // Nothing goes out during a 429/418 back-off (repeated violations get the IP
        // banned), except cancels when only new orders are limited (-1015).
        let cancel = matches!(kind, RequestKind::Cancel(_) | RequestKind::CancelAll);
        let throttled = self.is_backing_off(now_ns) && !(cancel && self.core.backoff_orders_only);
        let (conn, logged_on) = if other {
            match self.standby.as_mut() {
                Some(s) => (s, self.core.other.logged_on),
                None => return Err(SubmitError::Disconnected),
            }
        } else {
            (&mut self.conn, self.core.logged_on)
        };
        if !conn.is_open() {
            return Err(SubmitError::Disconnected);
        }
        // Ed25519: requests other than the logon itself and `time` carry no signature,
        // so they wait for the logon's answer.
        let unsigned_ok = matches!(
            kind,
            RequestKind::Logon | RequestKind::Time | RequestKind::Unsubscribe
        );
        if self.core.encoder.key_type() == KeyType::Ed25519 && !logged_on && !unsigned_ok {
            return Err(SubmitError::Disconnected);
        }
        if throttled {
            self.core.stats.throttled += 1;
            return Err(SubmitError::QueueFull);
        }
        let core = &mut self.core;
        let req_id = core.next_req_id;
        let slot = (req_id % IN_FLIGHT_MAX as u64) as usize;
        if core.in_flight[slot].is_some() {
            return Err(SubmitError::QueueFull);
        }
        let ts_ms = core.wall_ms(now_ns);
        let enc = &core.encoder;
        let sent = conn.send_with(OP_TEXT, |buf| match (action, kind) {
            (Some(a), _) => enc.encode_action(req_id, a, ts_ms, buf),
            (None, RequestKind::OpenOrders) => enc.encode_open_orders(req_id, ts_ms, buf),
            (None, RequestKind::Account) => enc.encode_account_status(req_id, ts_ms, buf),
            (None, RequestKind::CancelAll) => enc.encode_cancel_all(req_id, ts_ms, buf),
            (None, RequestKind::Subscribe) => enc.encode_subscribe(req_id, ts_ms, buf),
            (None, RequestKind::Logon) => enc.encode_logon(req_id, ts_ms, buf),
            (None, RequestKind::Time) => enc.encode_time(req_id, buf),
            (None, RequestKind::Unsubscribe) => enc.encode_unsubscribe(req_id, buf),
            (None, _) => None,
        });
        if sent.is_err() {
            return Err(SubmitError::Disconnected);
        }
        core.next_req_id += 1;
        core.in_flight[slot] = Some(InFlight {
            req_id,
            kind,
            sent_ns: now_ns,
            other,
        });
        core.in_flight_len += 1;
        core.stats.requests_sent += 1;
        Ok(())
    }
}

impl Venue for BinanceVenue {
    fn submit(&mut self, now_ns: u64, action: &Action) -> Result<(), SubmitError> {
        if !self.is_ready() {
            return Err(SubmitError::Disconnected);
        }
        let new_order = matches!(action, Action::Place { .. } | Action::CancelReplace { .. });
        let backing_off =
            self.is_backing_off(now_ns) && (new_order || !self.core.backoff_orders_only);
        if backing_off || self.core.rate_exhausted(now_ns, new_order) {
            self.core.stats.throttled += 1;
            return Err(SubmitError::QueueFull);
        }
        let kind = match *action {
            Action::Place { id, .. } => RequestKind::Place(id),
            Action::Cancel { id } => RequestKind::Cancel(id),
            Action::CancelReplace {
                cancel_id, new_id, ..
            } => RequestKind::CancelReplace { cancel_id, new_id },
            Action::CancelAll => RequestKind::CancelAll,
        };
        self.send_action(now_ns, kind, Some(action))
    }

    fn advance<M: MarketView>(&mut self, _now_ns: u64, _market: &M) {}

    fn on_trade(&mut self, _now_ns: u64, _trade: &Trade) {}

    fn on_book_change<M: MarketView>(&mut self, _now_ns: u64, _market: &M) {}

    fn poll_events<F: FnMut(VenueEvent)>(&mut self, _now_ns: u64, out: &mut F) {
        let core = &mut self.core;
        while core.events_len > 0 {
            let event = core.events[core.events_head];
            core.events_head = (core.events_head + 1) % EVENT_QUEUE_MAX;
            core.events_len -= 1;
            out(event);
        }
    }

    fn next_due_ns(&self) -> Option<u64> {
        None
    }
}

impl Core {
    /// The exchange's wall clock at `now_ns`, ms: ours, corrected by the measured skew.
    pub(super) fn wall_ms(&self, now_ns: u64) -> u64 {
        let skew = i128::from(self.server_skew_ms.unwrap_or(0));
        u64::try_from(self.local_wall_ms(now_ns) + skew).unwrap_or(0)
    }

    fn local_wall_ms(&self, now_ns: u64) -> i128 {
        (i128::from(now_ns) + i128::from(self.wall_offset_ns)).max(0) / i128::from(NS_PER_MS)
    }

    /// Whether one more request would come within `rate_headroom` of a limit. A snapshot
    /// older than its window is assumed to have reset.
    pub(super) fn rate_exhausted(&self, now_ns: u64, new_order: bool) -> bool {
        let age_ns = now_ns.saturating_sub(self.limits_at_ns);
        // Cancels may use the headroom: pulling stale orders matters most near a limit.
        let headroom = if new_order { self.rate_headroom } else { 0 };
        let near = |(count, limit): (u32, u32), pending: u32| {
            limit > 0 && count.saturating_add(pending).saturating_add(headroom) >= limit
        };
        let pending = self.in_flight_len as u32;
        let weight = age_ns < 60_000 * NS_PER_MS && near(self.limits.weight_1m, pending);
        let orders =
            new_order && age_ns < 10_000 * NS_PER_MS && near(self.limits.orders_10s, pending);
        let day = new_order && near(self.limits.orders_1d, pending);
        weight || orders || day
    }

    /// When the oldest request in flight on the order connection was sent (scans only
    /// while any is in flight; a rotation's other connection has deadlines of its own).
    pub(super) fn oldest_in_flight_ns(&self) -> Option<u64> {
        if self.in_flight_len == 0 {
            return None;
        }
        self.in_flight
            .iter()
            .flatten()
            .filter(|e| !e.other)
            .map(|e| e.sent_ns)
            .min()
    }

    fn note_rotation(&mut self, event: RotationEvent) {
        if self.rotation_events_len < ROTATION_EVENTS_MAX {
            self.rotation_events[self.rotation_events_len] = Some(event);
            self.rotation_events_len += 1;
        }
    }

    /// Forgets the requests in flight on one connection (`other`: the rotation's other
    /// one); returns how many.
    fn drop_in_flight(&mut self, other: bool) -> u64 {
        let mut dropped = 0;
        for slot in self.in_flight.iter_mut() {
            if slot.is_some_and(|e| e.other == other) {
                *slot = None;
                dropped += 1;
            }
        }
        self.in_flight_len -= dropped as usize;
        dropped
    }

    /// The second copy of an executionReport while both connections of a rotation are (or
    /// were) subscribed. Looks only after a rotation began; remembers only during it.
    fn duplicate_report(&mut self, report: &ExecutionReport) -> bool {
        if !self.overlap && !self.reports_seen_any {
            return false;
        }
        let Ok(id) = report.id else {
            return false;
        };
        let key = Some(ReportKey {
            id: id.0,
            exec: report.exec_type,
            trade_id: report.trade_id,
        });
        if self.reports_seen.contains(&key) {
            return true;
        }
        if self.overlap {
            self.reports_seen[self.reports_seen_next] = key;
            self.reports_seen_next = (self.reports_seen_next + 1) % REPORTS_SEEN_MAX;
            self.reports_seen_any = true;
        }
        false
    }

    pub(super) fn push(&mut self, event: VenueEvent) {
        if self.events_len == EVENT_QUEUE_MAX {
            self.stats.events_dropped += 1;
            return;
        }
        let tail = (self.events_head + self.events_len) % EVENT_QUEUE_MAX;
        self.events[tail] = event;
        self.events_len += 1;
    }

    fn take_in_flight(&mut self, req_id: u64) -> Option<InFlight> {
        let slot = (req_id % IN_FLIGHT_MAX as u64) as usize;
        match self.in_flight[slot] {
            Some(entry) if entry.req_id == req_id => {
                self.in_flight[slot] = None;
                self.in_flight_len -= 1;
                Some(entry)
            }
            _ => None,
        }
    }

    fn on_response(&mut self, r: &Response, frame: &[u8], now_ns: u64) {
        if let Some(limits) = r.rate_limits {
            // Partial arrays (no ORDERS entries) keep the older order counts.
            self.limits.weight_1m = limits.weight_1m;
            if limits.orders_10s.1 > 0 {
                self.limits.orders_10s = limits.orders_10s;
                self.limits.orders_1d = limits.orders_1d;
            }
            self.limits_at_ns = now_ns;
        }
        if r.status == 429 || r.status == 418 {
            self.stats.rate_limited += 1;
            let until = r
                .retry_after_ms
                .unwrap_or(self.wall_ms(now_ns) + BACKOFF_MS_DEFAULT);
            let orders_only = r.status == 429 && r.code == -1015;
            if until > self.backoff_until_ms {
                self.backoff_orders_only = orders_only;
            } else {
                self.backoff_orders_only &= orders_only;
            }
            self.backoff_until_ms = self.backoff_until_ms.max(until);
        }
        if r.code != 0 {
            self.stats.errors += 1;
            self.last_error_code = r.code;
        }
        let Some(entry) = r.req_id.and_then(|id| self.take_in_flight(id)) else {
            self.stats.responses_unmatched += 1;
            return;
        };
        self.stats.responses += 1;
        self.stats.last_round_trip_ns = now_ns.saturating_sub(entry.sent_ns);
        let ok = r.status == 200;
        match entry.kind {
            RequestKind::Place(id) if ok => self.push(VenueEvent::Accepted {
                id,
                exch_ts_ms: r.transact_ms,
            }),
            RequestKind::Place(id) => self.push(VenueEvent::Rejected { id, code: r.code }),
            RequestKind::Cancel(id) if ok => self.push(VenueEvent::Canceled { id }),
            RequestKind::Cancel(id) => self.push(VenueEvent::CancelRejected { id, code: r.code }),
            RequestKind::CancelReplace { cancel_id, new_id } => {
                self.on_cancel_replace(r, cancel_id, new_id)
            }
            RequestKind::CancelAll => {
                if ok {
                    self.on_cancel_all(frame);
                } else if r.code != -2011 {
                    // -2011: nothing was open. Anything else: nothing was cancelled.
                    self.cancel_all_refused = Some(r.code);
                }
            }
            RequestKind::OpenOrders => {
                if ok {
                    // A list that does not parse is no answer (never a low count).
                    match self.count_open_orders(frame) {
                        Some((ours, all)) => {
                            self.open_orders = Some(ours);
                            self.open_orders_all = Some(all);
                        }
                        None => self.stats.decode_errors += 1,
                    }
                }
            }
            RequestKind::Account => {
                if ok {
                    self.balances = self.decode_balances(frame);
                    if self.balances.is_none() {
                        self.stats.decode_errors += 1;
                    }
                }
            }
            RequestKind::Subscribe if entry.other => {
                self.other.subscribed = ok;
                self.other.refused |= !ok;
            }
            RequestKind::Logon if entry.other => {
                self.other.logged_on = ok;
                self.other.refused |= !ok;
            }
            RequestKind::Unsubscribe => self.other.unsubscribed |= entry.other,
            RequestKind::Subscribe => {
                self.subscribed = ok;
                self.subscribe_refused = (!ok).then_some((r.code, now_ns));
                self.refused_at_logon = false;
            }
            RequestKind::Logon => {
                self.logged_on = ok;
                self.want_subscribe = ok;
                self.subscribe_refused = (!ok).then_some((r.code, now_ns));
                self.refused_at_logon = !ok;
            }
            RequestKind::Time => {
                if ok && r.server_time_ms > 0 {
                    // The server read its clock about half-way through the round trip.
                    let mid_ns = entry.sent_ns + now_ns.saturating_sub(entry.sent_ns) / 2;
                    let skew = i128::from(r.server_time_ms) - self.local_wall_ms(mid_ns);
                    self.server_skew_ms = i64::try_from(skew).ok();
                }
            }
        }
    }

    fn on_cancel_replace(&mut self, r: &Response, cancel_id: ClientOrderId, new_id: ClientOrderId) {
        let accepted = VenueEvent::Accepted {
            id: new_id,
            exch_ts_ms: r.transact_ms,
        };
        match r.code {
            0 => {
                self.push(VenueEvent::Canceled { id: cancel_id });
                self.push(accepted);
            }
            // Partially failed: one leg worked.
            -2021 if r.cancel_succeeded => {
                self.push(VenueEvent::Canceled { id: cancel_id });
                let code = if r.new_order_code != 0 {
                    r.new_order_code
                } else {
                    r.code
                };
                self.push(VenueEvent::Rejected { id: new_id, code });
            }
            -2021 => {
                let code = if r.cancel_code != 0 {
                    r.cancel_code
                } else {
                    r.code
                };
                self.push(VenueEvent::CancelRejected {
                    id: cancel_id,
                    code,
                });
                self.push(accepted);
            }
            // Both failed, or nothing was tried (filters, limits, signature, …).
            code => {
                let cancel_code = if r.cancel_code != 0 {
                    r.cancel_code
                } else {
                    code
                };
                self.push(VenueEvent::CancelRejected {
                    id: cancel_id,
                    code: cancel_code,
                });
                self.push(VenueEvent::Rejected { id: new_id, code });
            }
        }
    }

    /// `result` of openOrders.cancelAll: one cancel result per order.
    fn on_cancel_all(&mut self, frame: &[u8]) {
        let session = *self.encoder.session();
        let mut ids = [ClientOrderId(0); 64];
        let mut n = 0;
        let _ = each_result_order(frame, b"origClientOrderId", |wire| {
            if let Ok(id) = ClientOrderId::parse_wire(wire, &session) {
                if let Some(slot) = ids.get_mut(n) {
                    *slot = id;
                    n += 1;
                }
            }
        });
        for &id in &ids[..n] {
            self.push(VenueEvent::Canceled { id });
        }
    }

    /// (ours, all) open orders in an `openOrders.status` result; `None` if the result is
    /// not a list of orders.
    fn count_open_orders(&self, frame: &[u8]) -> Option<(u32, u32)> {
        let session = self.encoder.session();
        let (mut ours, mut all) = (0, 0);
        let mut is_list = false;
        for_each_field(frame, |key, value| {
            if key == b"result" {
                is_list = value.first() == Some(&b'[');
            }
        })
        .ok()?;
        if !is_list {
            return None;
        }
        each_result_order(frame, b"clientOrderId", |wire| {
            all += 1;
            if ClientOrderId::parse_wire(wire, session).is_ok() {
                ours += 1;
            }
        })
        .ok()?;
        Some((ours, all))
    }

    /// The base and quote balances in an `account.status` result (an asset absent from
    /// the list, as `omitZeroBalances` leaves it, is 0). `None` if it does not parse.
    fn decode_balances(&self, frame: &[u8]) -> Option<Balances> {
        let mut result = None;
        for_each_field(frame, |key, value| {
            if key == b"result" {
                result = Some(value);
            }
        })
        .ok()?;
        let mut list = None;
        for_each_field(result?, |key, value| {
            if key == b"balances" {
                list = Some(value);
            }
        })
        .ok()?;
        let base = self.base_asset.as_str().as_bytes();
        let quote = self.quote_asset.as_str().as_bytes();
        let mut balances = Balances::default();
        let mut bad = false;
        for_each_element(list?, |item| {
            let (mut asset, mut free, mut locked) = (None, None, None);
            for_each_field(item, |key, value| match key {
                b"asset" => asset = as_str(value),
                b"free" => free = as_str(value),
                b"locked" => locked = as_str(value),
                _ => {}
            })?;
            let amounts = free
                .and_then(|f| parse_atoms(f).ok())
                .zip(locked.and_then(|l| parse_atoms(l).ok()));
            match (asset, amounts) {
                (Some(a), Some((f, l))) if a == base => {
                    balances.base_atoms = f.saturating_add(l);
                    balances.base_locked_atoms = l;
                }
                (Some(a), Some((f, l))) if a == quote => {
                    balances.quote_atoms = f.saturating_add(l);
                    balances.quote_locked_atoms = l;
                }
                (Some(a), None) if a == base || a == quote => bad = true,
                _ => {}
            }
            Ok(())
        })
        .ok()?;
        (!bad).then_some(balances)
    }
}

impl Handler for Core {
    fn on_message(&mut self, kind: MessageKind, payload: &[u8], now_ns: u64) {
        if kind != MessageKind::Text {
            return;
        }
        self.last_heard_ns = now_ns;
        let decoded = decode(
            payload,
            self.encoder.spec(),
            self.encoder.session(),
            self.base_asset.as_str().as_bytes(),
            self.quote_asset.as_str().as_bytes(),
        );
        match decoded {
            Ok(Message::Response(r)) => self.on_response(&r, payload, now_ns),
            Ok(Message::Execution(report)) => {
                if report.fee_unconverted {
                    self.stats.fees_unconverted += 1;
                }
                match report.to_event() {
                    Some(_) if self.duplicate_report(&report) => {
                        self.stats.executions_duplicate += 1;
                    }
                    Some(event) => {
                        self.stats.executions += 1;
                        self.push(event);
                    }
                    None => self.stats.executions_foreign += 1,
                }
            }
            Ok(Message::OtherEvent) => self.stats.other_events += 1,
            Ok(Message::StreamTerminated) => {
                // No more executionReports on this subscription: subscribe again at once.
                self.stats.other_events += 1;
                self.subscribed = false;
                self.want_subscribe = true;
            }
            Err(_) => self.stats.decode_errors += 1,
        }
    }

    fn on_event(&mut self, event: NetEvent) {
        if self.net_events_len < NET_EVENTS_MAX {
            self.net_events[self.net_events_len] = Some(event);
            self.net_events_len += 1;
        }
        match event {
            NetEvent::Open { .. } => {
                self.subscribed = false;
                self.logged_on = false;
                self.want_subscribe = true;
            }
            NetEvent::Disconnected { .. } => {
                self.subscribed = false;
                self.logged_on = false;
                self.want_subscribe = false;
                // Only this connection's: a retiring one still answers its own.
                self.stats.lost_in_flight += self.drop_in_flight(false);
            }
            NetEvent::Connecting { .. } => {}
        }
    }
}

/// Takes the first of the `len` events of a small queue kept in order (shifts the rest).
fn take_first<T: Copy>(queue: &mut [Option<T>], len: &mut usize) -> Option<T> {
    if *len == 0 {
        return None;
    }
    let first = queue[0];
    queue.copy_within(1.., 0);
    *len -= 1;
    queue[*len] = None;
    first
}

/// The rotation's other connection as a `Handler`: its frames go to the core as the
/// order connection's do (responses match by request id, reports are deduplicated); its
/// connection events only move its own set-up.
struct OtherLink<'a>(&'a mut Core);

impl Handler for OtherLink<'_> {
    fn on_message(&mut self, kind: MessageKind, payload: &[u8], now_ns: u64) {
        self.0.on_message(kind, payload, now_ns);
    }

    fn on_event(&mut self, event: NetEvent) {
        match event {
            NetEvent::Open { .. } => self.0.other.want_setup = true,
            NetEvent::Disconnected { .. } => self.0.other.down = true,
            NetEvent::Connecting { .. } => {}
        }
    }
}
