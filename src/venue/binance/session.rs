//! The order session: `BinanceVenue`, the `Venue` the `Trader` drives in live mode, and its
//! connection handler. Owns the in-flight request table, the queue of `VenueEvent`s, the
//! user-data subscription (and Ed25519 `session.logon`), the server-time correction, rate
//! limiting from the last `rateLimits` counts, the 429/418 back-off, request time-outs and
//! reconnects.
//!
//! Hot path: every method except `new` never allocates, never reads the clock (`now_ns`
//! comes in), never logs and never panics on network input. Never sends a request before
//! the user-data subscription is confirmed.

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
}

#[derive(Clone, Copy, Debug)]
pub(super) struct InFlight {
    pub(super) req_id: u64,
    pub(super) kind: RequestKind,
    pub(super) sent_ns: u64,
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
}

/// The Binance order entry as a `Venue`. Owns its connection; the hot loop forwards mio
/// events for its token (`on_readiness`) and calls `poll_io` every turn, beside the
/// market-data connection on the same `Poll`. `submit` writes the request into the
/// connection's frame buffer at once; responses and executionReports become
/// `VenueEvent`s that `poll_events` hands out.
pub struct BinanceVenue {
    conn: Connection,
    pub(super) core: Core,
}

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
        let conn = Connection::new(cfg.conn, token, now_ns).map_err(BinanceError::Net)?;
        Ok(BinanceVenue {
            conn,
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
            },
        })
    }

    /// Sets wall-clock time − `now_ns` (plus any server-time correction), ns: request
    /// timestamps are `(now_ns + offset) / 1e6`. The caller reads the clocks.
    pub fn set_wall_offset_ns(&mut self, offset_ns: i64) {
        self.core.wall_offset_ns = offset_ns;
    }

    /// Forwards a mio event (others' tokens are ignored).
    pub fn on_readiness(&mut self, event: &Event) {
        self.conn.on_readiness(event);
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
        if core.net_events_len == 0 {
            return None;
        }
        let first = core.net_events[0];
        core.net_events.copy_within(1.., 0);
        core.net_events_len -= 1;
        core.net_events[core.net_events_len] = None;
        first
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

    /// Closes the connection for good.
    pub fn close(&mut self, registry: &Registry) {
        self.conn.close(registry);
    }

    fn send(&mut self, now_ns: u64, kind: RequestKind) -> Result<(), SubmitError> {
        self.send_action(now_ns, kind, None)
    }

    fn send_action(
        &mut self,
        now_ns: u64,
        kind: RequestKind,
        action: Option<&Action>,
    ) -> Result<(), SubmitError> {
        if !self.conn.is_open() {
            return Err(SubmitError::Disconnected);
        }
        // Ed25519: requests other than the logon itself and `time` carry no signature,
        // so they wait for the logon's answer.
        let unsigned_ok = matches!(kind, RequestKind::Logon | RequestKind::Time);
        if self.core.encoder.key_type() == KeyType::Ed25519 && !self.core.logged_on && !unsigned_ok
        {
            return Err(SubmitError::Disconnected);
        }
        // Nothing goes out during a 429/418 back-off (repeated violations get the IP
        // banned), except cancels when only new orders are limited (-1015).
        let cancel = matches!(kind, RequestKind::Cancel(_) | RequestKind::CancelAll);
        if self.is_backing_off(now_ns) && !(cancel && self.core.backoff_orders_only) {
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
        let sent = self.conn.send_with(OP_TEXT, |buf| match (action, kind) {
            (Some(a), _) => enc.encode_action(req_id, a, ts_ms, buf),
            (None, RequestKind::OpenOrders) => enc.encode_open_orders(req_id, ts_ms, buf),
            (None, RequestKind::Account) => enc.encode_account_status(req_id, ts_ms, buf),
            (None, RequestKind::CancelAll) => enc.encode_cancel_all(req_id, ts_ms, buf),
            (None, RequestKind::Subscribe) => enc.encode_subscribe(req_id, ts_ms, buf),
            (None, RequestKind::Logon) => enc.encode_logon(req_id, ts_ms, buf),
            (None, RequestKind::Time) => enc.encode_time(req_id, buf),
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

    /// When the oldest request in flight was sent (scans only while any is in flight).
    pub(super) fn oldest_in_flight_ns(&self) -> Option<u64> {
        if self.in_flight_len == 0 {
            return None;
        }
        self.in_flight.iter().flatten().map(|e| e.sent_ns).min()
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
                self.stats.lost_in_flight += self.in_flight_len as u64;
                self.in_flight = [None; IN_FLIGHT_MAX];
                self.in_flight_len = 0;
            }
            NetEvent::Connecting { .. } => {}
        }
    }
}
