//! One market-data or order-entry WebSocket connection as a non-blocking state machine,
//! driven by the caller's mio loop.
//!
//! Owns: `Connection` (its socket, buffers and state), `ConnConfig`, `Backoff`, the
//! `Handler` trait through which frames and events leave, and the `Copy` events.
//!
//! ```text
//!            now >= next_attempt_at_ns          TCP connected (writable, no SO_ERROR)
//!   Waiting ───────────────────────────► Connecting ─────────────────────► TlsHandshake
//!      ▲  ▲                                   │          (ws:// skips TLS)      │ rustls done,
//!      │  │                                   │                                 │ keys extracted
//!      │  │                                   ▼                                 ▼
//!      │  └──────── error / timeout ◄──── (any state) ◄──────────────────── WsHandshake
//!      │            (event Disconnected,                                        │ 101 Switching
//!      │             backoff delay)                                             ▼
//!      └──── peer close / stale / error (backoff) / rotation (immediate) ◄──── Open
//!
//!   any state ── close() ──► Closed (terminal)
//! ```
//!
//! Each state carries its own data (the socket lives inside the state that uses it) and
//! each transition consumes the old state. The caller owns the `Poll`: it registers
//! nothing itself — `Connection` registers its socket with the `Registry` it is given,
//! under the caller's `Token` — forwards mio events with `on_readiness`, and calls `poll`
//! every loop iteration with the current time. Readiness is edge-triggered: a flag set by
//! `on_readiness` is cleared only when a read or write returned `WouldBlock`.
//!
//! Invariants: every receive loop has a budget (`messages_per_poll_max`); every reconnect,
//! rotation and failure produces exactly one `NetEvent::Disconnected` with the time of the
//! next attempt; the backoff doubles from `backoff_initial_ns` to `backoff_max_ns` and is
//! reset by a connection that stayed open `healthy_after_ns`.
//!
//! Never: reads the clock (`now_ns` comes in), sleeps, logs (events are returned, the
//! caller logs them), resolves a host name on the caller's thread (`net::resolve`: a
//! side thread per connection does it; the connection asks when it is created and on every
//! disconnect, and takes the newest addresses when it connects — a reconnect never waits
//! for DNS, it uses the last addresses found), or allocates per message while `Open`.
//! Connecting allocates (buffers, handshakes: off the hot path by definition), and so does the first use of a
//! few paths on each new connection (tungstenite's read buffer turning shared, its pong
//! buffer, its thread-local RNG) and each received TLS KeyUpdate (rustls's key schedule,
//! 4 allocations measured) — tests/net.rs states the exact figures.

use std::mem;
use std::net::SocketAddr;

use mio::event::Event;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::net::resolve::{Addrs, Answer, Resolver};
use crate::net::stamp::{RxClock, RxStamps};
use crate::net::tls::{HandshakeProgress, TlsClientConfig, TlsHandshake, TlsRoots, TlsStats};
use crate::net::url::{Scheme, Url};
use crate::net::ws::{
    MessageKind, PlainStream, ReadOutcome, Transport, WsHandshake, WsProgress, WsSession,
    WsSettings,
};
use crate::net::NetError;

const NS_PER_MS: u64 = 1_000_000;
/// `EINPROGRESS` (mio's connect recipe: `peer_addr` may report it while connecting).
#[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
const EINPROGRESS: i32 = 36;
#[cfg(not(any(target_os = "macos", target_os = "ios", target_os = "freebsd")))]
const EINPROGRESS: i32 = 115;
const NS_PER_S: u64 = 1_000_000_000;

/// Receives what a connection produces. Called synchronously from `Connection::poll`.
pub trait Handler {
    /// One complete data message. `payload` is a view into the receive buffer, valid only
    /// during this call: decode it in place, copy nothing you do not need.
    fn on_message(&mut self, kind: MessageKind, payload: &[u8], now_ns: u64);
    /// `on_message` with the message's receive stamps (all zero unless the connection
    /// was given a clock, `Connection::set_rx_clock`). Forwards to `on_message` unless
    /// overridden.
    #[inline]
    fn on_message_stamped(
        &mut self,
        kind: MessageKind,
        payload: &[u8],
        now_ns: u64,
        stamps: RxStamps,
    ) {
        let _ = stamps;
        self.on_message(kind, payload, now_ns);
    }
    /// A connection event, for the log and the feed's state (a reconnect means the book
    /// must be resynchronised).
    fn on_event(&mut self, event: NetEvent);
}

/// What happened to a connection (`Copy`, no heap: cheap to send to the side thread).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetEvent {
    /// A connection attempt started: TCP connect issued.
    Connecting {
        /// Attempts since the last healthy connection (1 = first).
        attempt: u32,
        /// The resolved address.
        addr: SocketAddr,
        /// When.
        at_ns: u64,
    },
    /// The WebSocket is open: messages flow from now on.
    Open {
        /// Attempts since the last healthy connection.
        attempt: u32,
        /// From TCP connect to the 101 response.
        handshake_ns: u64,
        /// When.
        at_ns: u64,
    },
    /// The connection (or an attempt) ended; the next attempt starts at `next_attempt_at_ns`.
    Disconnected {
        /// Why.
        cause: Disconnect,
        /// How long it had been open (0 if it never opened).
        open_for_ns: u64,
        /// When the next attempt will start (`poll` starts it).
        next_attempt_at_ns: u64,
        /// When.
        at_ns: u64,
    },
}

/// Why a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disconnect {
    /// A failure (see `NetError::fault` for whose).
    Failed(NetError),
    /// The peer closed cleanly (WebSocket close frame, or TLS close_notify).
    PeerClosed {
        /// The close frame's status code, if any (Binance's 24 h limit closes this way).
        ws_code: Option<u16>,
    },
    /// No message of any kind (pings included) for `silent_ns`.
    Stale {
        /// Silence observed.
        silent_ns: u64,
    },
    /// Closed by us before the venue's 24 h limit; the next attempt is immediate.
    Rotation {
        /// Age of the connection.
        age_ns: u64,
    },
    /// The caller asked for a reconnect (`restart`).
    Restart,
}

/// The state a connection is in (for display and tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for the next attempt.
    Waiting,
    /// TCP connect in flight.
    Connecting,
    /// TLS handshake.
    TlsHandshake,
    /// WebSocket upgrade.
    WsHandshake,
    /// Messages flow.
    Open,
    /// Closed for good.
    Closed,
}

/// Connection settings. `ConnConfig::new` gives the documented defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnConfig {
    /// `wss://host[:port]/path` (or `ws://` for tests).
    pub url: String,
    /// Trusted roots for `wss://`.
    pub roots: TlsRoots,
    /// WebSocket buffer sizes and limits.
    pub ws: WsSettings,
    /// TCP connect + TLS + upgrade must finish within this (default 10 s).
    pub handshake_timeout_ns: u64,
    /// No message (pings included) for this long ⇒ reconnect (default 30 s; Binance pings
    /// every ~20 s).
    pub stale_after_ns: u64,
    /// Reconnect proactively at this age (default 23 h; Binance closes at 24 h).
    pub max_age_ns: u64,
    /// First reconnect delay (default 100 ms), doubled per consecutive failure...
    pub backoff_initial_ns: u64,
    /// ...up to this (default 30 s).
    pub backoff_max_ns: u64,
    /// A connection open this long resets the backoff (default 60 s).
    pub healthy_after_ns: u64,
    /// Messages handled per `poll` call at most (default 256); the rest wait for the next.
    pub messages_per_poll_max: u32,
    /// Rotate TLS keys after this many records per direction instead of the cipher
    /// suite's limit (only ever lowers it). `None` in production; tests use small values.
    pub key_update_after_records: Option<u64>,
}

impl ConnConfig {
    /// Defaults for `url` trusting `roots`.
    pub fn new(url: &str, roots: TlsRoots) -> ConnConfig {
        ConnConfig {
            url: url.to_owned(),
            roots,
            ws: WsSettings::default(),
            handshake_timeout_ns: 10 * NS_PER_S,
            stale_after_ns: 30 * NS_PER_S,
            max_age_ns: 23 * 3600 * NS_PER_S,
            backoff_initial_ns: 100 * NS_PER_MS,
            backoff_max_ns: 30 * NS_PER_S,
            healthy_after_ns: 60 * NS_PER_S,
            messages_per_poll_max: 256,
            key_update_after_records: None,
        }
    }

    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), NetError> {
        self.ws.validate()?;
        let checks: [(bool, &'static str); 7] = [
            (
                self.handshake_timeout_ns >= NS_PER_MS,
                "handshake_timeout_ns",
            ),
            (self.stale_after_ns >= NS_PER_MS, "stale_after_ns"),
            (self.max_age_ns >= NS_PER_S, "max_age_ns"),
            (self.backoff_initial_ns >= 1, "backoff_initial_ns"),
            (
                self.backoff_max_ns >= self.backoff_initial_ns,
                "backoff_max_ns",
            ),
            (self.messages_per_poll_max >= 1, "messages_per_poll_max"),
            (
                self.key_update_after_records != Some(0),
                "key_update_after_records",
            ),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, field)) => Err(NetError::InvalidConfig(field)),
            None => Ok(()),
        }
    }
}

/// Capped exponential backoff, as data: the caller (or `Connection`) asks for the next delay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    initial_ns: u64,
    max_ns: u64,
    failures: u32,
}

impl Backoff {
    /// A backoff starting at `initial_ns`, capped at `max_ns`.
    pub fn new(initial_ns: u64, max_ns: u64) -> Backoff {
        Backoff {
            initial_ns,
            max_ns,
            failures: 0,
        }
    }

    /// The delay before the next attempt; each call counts one more failure.
    pub fn next_delay_ns(&mut self) -> u64 {
        let shift = self.failures.min(63);
        let delay = self
            .initial_ns
            .checked_shl(shift)
            .filter(|d| d >> shift == self.initial_ns)
            .unwrap_or(u64::MAX)
            .min(self.max_ns);
        self.failures = self.failures.saturating_add(1);
        delay
    }

    /// Forgets past failures (after a healthy period).
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Consecutive failures counted so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// Counters of one `Connection` across reconnects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnStats {
    /// Connection attempts started.
    pub attempts: u64,
    /// Times the connection reached `Open`.
    pub opens: u64,
    /// `Disconnected` events.
    pub disconnects: u64,
    /// Data messages delivered.
    pub messages: u64,
    /// Pings answered (by tungstenite's queued pong, flushed at once).
    pub pings: u64,
}

enum State {
    Waiting {
        next_attempt_at_ns: u64,
    },
    Connecting {
        sock: TcpStream,
        started_ns: u64,
    },
    TlsHandshake {
        hs: Box<TlsHandshake>,
        started_ns: u64,
    },
    WsHandshake {
        hs: Box<WsHandshake>,
        started_ns: u64,
    },
    Open {
        session: Box<WsSession>,
        opened_at_ns: u64,
        last_rx_ns: u64,
    },
    Closed,
}

/// What a state step decided.
enum Step {
    /// Stay here until new readiness or time.
    Stay(State),
    /// Moved: run the new state at once (its first step needs no new event).
    Next(State),
}

/// A reconnecting WebSocket client connection.
pub struct Connection {
    url: Url,
    tls: Option<TlsClientConfig>,
    cfg: ConnConfig,
    token: Token,
    state: State,
    backoff: Backoff,
    readable: bool,
    writable: bool,
    attempt: u32,
    stats: ConnStats,
    last_tls_stats: TlsStats,
    /// The host's lookups, on their own thread.
    resolver: Resolver,
    /// The newest addresses the resolver found (empty before its first answer).
    addrs: Addrs,
    /// The resolver's newest answer was a failure.
    dns_failed: bool,
    /// The caller's clock for receive stamps (`None`: none taken).
    rx_clock: Option<RxClock>,
}

impl Connection {
    /// Validates `cfg` and builds the TLS configuration. The first attempt starts on the
    /// first `poll` at or after `now_ns`. Off the hot path.
    pub fn new(cfg: ConnConfig, token: Token, now_ns: u64) -> Result<Connection, NetError> {
        cfg.validate()?;
        let url = Url::parse(&cfg.url)?;
        let tls = match url.scheme {
            Scheme::Wss => Some(TlsClientConfig::new(&cfg.roots)?),
            Scheme::Ws => None,
            Scheme::Http | Scheme::Https => return Err(NetError::InvalidUrl),
        };
        let resolver = Resolver::spawn(&url.host, url.port)?;
        resolver.request();
        Ok(Connection {
            url,
            tls,
            backoff: Backoff::new(cfg.backoff_initial_ns, cfg.backoff_max_ns),
            cfg,
            token,
            state: State::Waiting {
                next_attempt_at_ns: now_ns,
            },
            readable: false,
            writable: false,
            attempt: 0,
            stats: ConnStats::default(),
            last_tls_stats: TlsStats::default(),
            resolver,
            addrs: Addrs::default(),
            dns_failed: false,
            rx_clock: None,
        })
    }

    /// Host lookups completed by this connection's resolver thread (none ever runs on the
    /// caller's).
    pub fn dns_lookups(&self) -> u64 {
        self.resolver.lookups()
    }

    /// The addresses the next attempt chooses from (the resolver's newest answer taken so
    /// far).
    pub fn resolved(&self) -> Addrs {
        self.addrs
    }

    /// Stamps every received message's passage through the socket read, TLS and
    /// WebSocket layers with `clock` (`Handler::on_message_stamped`), on this and every
    /// later connection; `None` (the default) stamps nothing and reads no clock.
    pub fn set_rx_clock(&mut self, clock: Option<RxClock>) {
        self.rx_clock = clock;
        if let State::Open { session, .. } = &mut self.state {
            session.transport_mut().set_rx_clock(clock);
        }
    }

    /// The clock given to `set_rx_clock`.
    pub fn rx_clock(&self) -> Option<RxClock> {
        self.rx_clock
    }

    /// The mio token this connection registers its sockets under.
    pub fn token(&self) -> Token {
        self.token
    }

    /// Forwards a mio event; events for other tokens are ignored.
    pub fn on_readiness(&mut self, event: &Event) {
        if event.token() != self.token {
            return;
        }
        let err = event.is_error();
        self.readable |= event.is_readable() || event.is_read_closed() || err;
        self.writable |= event.is_writable() || event.is_write_closed() || err;
    }

    /// Does all the work that is due: starts an attempt whose time has come, advances a
    /// handshake, reads up to `messages_per_poll_max` messages into `handler`, flushes
    /// pending output, and checks staleness and age. Call it every loop iteration.
    pub fn poll<H: Handler>(&mut self, registry: &Registry, now_ns: u64, handler: &mut H) {
        // A handful of transitions per call at most (Waiting → ... → Open).
        for _ in 0..8 {
            // The placeholder is overwritten below on every path.
            let state = mem::replace(&mut self.state, State::Closed);
            match self.step(state, registry, now_ns, handler) {
                Step::Stay(s) => {
                    self.state = s;
                    return;
                }
                Step::Next(s) => self.state = s,
            }
        }
    }

    /// Sends one text frame (masked, written in place, no allocation).
    pub fn send_text(&mut self, payload: &[u8]) -> Result<(), NetError> {
        match &mut self.state {
            State::Open { session, .. } => session.send_text(payload),
            _ => Err(NetError::NotOpen),
        }
    }

    /// Sends one frame whose payload `write` composes directly in the frame buffer
    /// (see `WsSession::send_with`).
    pub fn send_with<F: FnOnce(&mut [u8]) -> Option<usize>>(
        &mut self,
        opcode: u8,
        write: F,
    ) -> Result<(), NetError> {
        match &mut self.state {
            State::Open { session, .. } => session.send_with(opcode, write),
            _ => Err(NetError::NotOpen),
        }
    }

    /// Drops the current connection (closing it politely if open) and schedules an
    /// immediate new attempt. Emits `Disconnected { cause: Restart }`.
    pub fn restart<H: Handler>(&mut self, registry: &Registry, now_ns: u64, handler: &mut H) {
        let state = mem::replace(&mut self.state, State::Closed);
        if matches!(state, State::Closed) {
            return;
        }
        self.state = self.teardown(state, registry, Disconnect::Restart, now_ns, handler);
    }

    /// Closes for good (WebSocket close + TLS close_notify if open). No event.
    pub fn close(&mut self, registry: &Registry) {
        let state = mem::replace(&mut self.state, State::Closed);
        self.release(state, registry, true);
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        match self.state {
            State::Waiting { .. } => Phase::Waiting,
            State::Connecting { .. } => Phase::Connecting,
            State::TlsHandshake { .. } => Phase::TlsHandshake,
            State::WsHandshake { .. } => Phase::WsHandshake,
            State::Open { .. } => Phase::Open,
            State::Closed => Phase::Closed,
        }
    }

    /// Whether messages flow.
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open { .. })
    }

    /// While waiting for the next attempt: brings it forward to `now_ns` if it is more than
    /// `within_ns` away (a stop that must reach the exchange does not sit out a long
    /// backoff). Returns whether it moved the attempt.
    pub fn attempt_within(&mut self, now_ns: u64, within_ns: u64) -> bool {
        match &mut self.state {
            State::Waiting { next_attempt_at_ns } if *next_attempt_at_ns > now_ns + within_ns => {
                *next_attempt_at_ns = now_ns;
                true
            }
            _ => false,
        }
    }

    /// When the next attempt starts, while waiting for one.
    pub fn next_attempt_at_ns(&self) -> Option<u64> {
        match self.state {
            State::Waiting { next_attempt_at_ns } => Some(next_attempt_at_ns),
            _ => None,
        }
    }

    /// Time since the last message of any kind, while open.
    pub fn silent_ns(&self, now_ns: u64) -> Option<u64> {
        match self.state {
            State::Open { last_rx_ns, .. } => Some(now_ns.saturating_sub(last_rx_ns)),
            _ => None,
        }
    }

    /// Age of the open connection.
    pub fn age_ns(&self, now_ns: u64) -> Option<u64> {
        match self.state {
            State::Open { opened_at_ns, .. } => Some(now_ns.saturating_sub(opened_at_ns)),
            _ => None,
        }
    }

    /// Counters across reconnects.
    pub fn stats(&self) -> ConnStats {
        self.stats
    }

    /// TLS counters of the current (or, between connections, the last) TLS session.
    pub fn tls_stats(&self) -> TlsStats {
        match &self.state {
            State::Open { session, .. } => session.transport().tls_stats(),
            _ => self.last_tls_stats,
        }
    }

    /// The backoff's state (consecutive failures).
    pub fn backoff(&self) -> Backoff {
        self.backoff
    }

    // -- transitions -----------------------------------------------------------------------

    fn step<H: Handler>(
        &mut self,
        state: State,
        registry: &Registry,
        now_ns: u64,
        handler: &mut H,
    ) -> Step {
        match state {
            State::Waiting { next_attempt_at_ns } if now_ns >= next_attempt_at_ns => {
                self.take_answer();
                let first_lookup_running = self.addrs.is_empty() && !self.dns_failed;
                if first_lookup_running
                    && now_ns.saturating_sub(next_attempt_at_ns) < self.cfg.handshake_timeout_ns
                {
                    // No address known yet: wait for the resolver thread's first answer
                    // (bounded by the handshake timeout, then DnsFailed and a backoff).
                    return Step::Stay(State::Waiting { next_attempt_at_ns });
                }
                match self.start_attempt(registry, now_ns, handler) {
                    Ok(next) => Step::Next(next),
                    Err(e) => Step::Stay(self.fail(registry, e, now_ns, handler)),
                }
            }
            s @ (State::Waiting { .. } | State::Closed) => Step::Stay(s),
            State::Connecting { sock, started_ns } => {
                self.step_connecting(sock, started_ns, registry, now_ns, handler)
            }
            State::TlsHandshake { hs, started_ns } => {
                self.step_tls(hs, started_ns, registry, now_ns, handler)
            }
            State::WsHandshake { hs, started_ns } => {
                self.step_ws(hs, started_ns, registry, now_ns, handler)
            }
            State::Open {
                session,
                opened_at_ns,
                last_rx_ns,
            } => self.step_open(session, opened_at_ns, last_rx_ns, registry, now_ns, handler),
        }
    }

    /// The resolver's newest answer, if one came: found addresses replace the old ones; a
    /// failure keeps them (stale addresses beat none) and is remembered.
    fn take_answer(&mut self) {
        match self.resolver.try_answer() {
            Some(Answer::Found(addrs)) => {
                self.addrs = addrs;
                self.dns_failed = false;
            }
            Some(Answer::Failed) => self.dns_failed = true,
            None => {}
        }
    }

    /// Waiting → Connecting: pick an address the resolver thread found (no DNS here),
    /// connect (non-blocking), register.
    fn start_attempt<H: Handler>(
        &mut self,
        registry: &Registry,
        now_ns: u64,
        handler: &mut H,
    ) -> Result<State, NetError> {
        self.attempt = self.attempt.saturating_add(1);
        self.stats.attempts += 1;
        // Rotate through the addresses across consecutive attempts.
        let addr: SocketAddr = self
            .addrs
            .pick(self.attempt as usize - 1)
            .ok_or(NetError::DnsFailed)?;
        let mut sock = TcpStream::connect(addr)?;
        registry.register(
            &mut sock,
            self.token,
            Interest::READABLE | Interest::WRITABLE,
        )?;
        self.readable = false;
        self.writable = false;
        handler.on_event(NetEvent::Connecting {
            attempt: self.attempt,
            addr,
            at_ns: now_ns,
        });
        Ok(State::Connecting {
            sock,
            started_ns: now_ns,
        })
    }

    /// Connecting → TlsHandshake (or WsHandshake for ws://) once the socket is connected
    /// (mio's recipe: writable event, no SO_ERROR, `peer_addr` succeeds).
    fn step_connecting<H: Handler>(
        &mut self,
        sock: TcpStream,
        started_ns: u64,
        registry: &Registry,
        now_ns: u64,
        handler: &mut H,
    ) -> Step {
        if now_ns.saturating_sub(started_ns) > self.cfg.handshake_timeout_ns {
            let s = State::Connecting { sock, started_ns };
            return Step::Stay(self.fail_state(
                s,
                registry,
                NetError::HandshakeTimeout,
                now_ns,
                handler,
            ));
        }
        if !self.readable && !self.writable {
            return Step::Stay(State::Connecting { sock, started_ns });
        }
        match sock.take_error() {
            Ok(None) => {}
            Ok(Some(e)) | Err(e) => {
                let s = State::Connecting { sock, started_ns };
                return Step::Stay(self.fail_state(
                    s,
                    registry,
                    NetError::from(e),
                    now_ns,
                    handler,
                ));
            }
        }
        match sock.peer_addr() {
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::NotConnected
                    || e.raw_os_error() == Some(EINPROGRESS) =>
            {
                self.readable = false;
                self.writable = false;
                return Step::Stay(State::Connecting { sock, started_ns });
            }
            Err(e) => {
                let s = State::Connecting { sock, started_ns };
                return Step::Stay(self.fail_state(
                    s,
                    registry,
                    NetError::from(e),
                    now_ns,
                    handler,
                ));
            }
        }
        // Orders and quotes are small and latency-bound: never wait for Nagle.
        if let Err(e) = sock.set_nodelay(true) {
            let s = State::Connecting { sock, started_ns };
            return Step::Stay(self.fail_state(s, registry, NetError::from(e), now_ns, handler));
        }
        self.readable = true;
        self.writable = true;
        match &self.tls {
            Some(tls) => match TlsHandshake::start(tls, &self.url.host, sock) {
                Ok(hs) => Step::Next(State::TlsHandshake {
                    hs: Box::new(hs),
                    started_ns,
                }),
                Err(e) => Step::Stay(self.fail(registry, e, now_ns, handler)),
            },
            None => {
                let transport = Transport::Plain(Box::new(PlainStream::new(sock)));
                self.start_ws(transport, started_ns, registry, now_ns, handler)
            }
        }
    }

    /// TlsHandshake → WsHandshake when rustls is done and the keys are ours.
    fn step_tls<H: Handler>(
        &mut self,
        hs: Box<TlsHandshake>,
        started_ns: u64,
        registry: &Registry,
        now_ns: u64,
        handler: &mut H,
    ) -> Step {
        if now_ns.saturating_sub(started_ns) > self.cfg.handshake_timeout_ns {
            let s = State::TlsHandshake { hs, started_ns };
            return Step::Stay(self.fail_state(
                s,
                registry,
                NetError::HandshakeTimeout,
                now_ns,
                handler,
            ));
        }
        if !self.readable && !self.writable {
            return Step::Stay(State::TlsHandshake { hs, started_ns });
        }
        self.readable = false;
        self.writable = false;
        match hs.advance() {
            Ok(HandshakeProgress::Blocked(hs)) => {
                Step::Stay(State::TlsHandshake { hs, started_ns })
            }
            Ok(HandshakeProgress::Done(mut stream)) => {
                if let Some(records) = self.cfg.key_update_after_records {
                    stream.set_key_update_after_records(records);
                }
                self.readable = true;
                self.writable = true;
                self.start_ws(
                    Transport::Tls(stream),
                    started_ns,
                    registry,
                    now_ns,
                    handler,
                )
            }
            Err(e) => Step::Stay(self.fail(registry, e, now_ns, handler)),
        }
    }

    fn start_ws<H: Handler>(
        &mut self,
        transport: Transport,
        started_ns: u64,
        registry: &Registry,
        now_ns: u64,
        handler: &mut H,
    ) -> Step {
        match WsHandshake::start(&self.url, transport, self.cfg.ws) {
            Ok(WsProgress::Blocked(hs)) => Step::Stay(State::WsHandshake { hs, started_ns }),
            Ok(WsProgress::Done(session)) => self.open(session, started_ns, now_ns, handler),
            Err(e) => Step::Stay(self.fail(registry, e, now_ns, handler)),
        }
    }

    /// WsHandshake → Open on the 101 response.
    fn step_ws<H: Handler>(
        &mut self,
        hs: Box<WsHandshake>,
        started_ns: u64,
        registry: &Registry,
        now_ns: u64,
        handler: &mut H,
    ) -> Step {
        if now_ns.saturating_sub(started_ns) > self.cfg.handshake_timeout_ns {
            let s = State::WsHandshake { hs, started_ns };
            return Step::Stay(self.fail_state(
                s,
                registry,
                NetError::HandshakeTimeout,
                now_ns,
                handler,
            ));
        }
        if !self.readable && !self.writable {
            return Step::Stay(State::WsHandshake { hs, started_ns });
        }
        self.readable = false;
        self.writable = false;
        match hs.advance() {
            Ok(WsProgress::Blocked(hs)) => Step::Stay(State::WsHandshake { hs, started_ns }),
            Ok(WsProgress::Done(session)) => self.open(session, started_ns, now_ns, handler),
            Err(e) => Step::Stay(self.fail(registry, e, now_ns, handler)),
        }
    }

    fn open<H: Handler>(
        &mut self,
        mut session: Box<WsSession>,
        started_ns: u64,
        now_ns: u64,
        handler: &mut H,
    ) -> Step {
        self.stats.opens += 1;
        session.transport_mut().set_rx_clock(self.rx_clock);
        // tungstenite may already hold frames that came with the 101 response, and their
        // readiness edge is spent: read at once.
        self.readable = true;
        self.writable = true;
        handler.on_event(NetEvent::Open {
            attempt: self.attempt,
            handshake_ns: now_ns.saturating_sub(started_ns),
            at_ns: now_ns,
        });
        Step::Next(State::Open {
            session,
            opened_at_ns: now_ns,
            last_rx_ns: now_ns,
        })
    }

    /// Open: read up to the budget, flush, check age and silence.
    fn step_open<H: Handler>(
        &mut self,
        mut session: Box<WsSession>,
        opened_at_ns: u64,
        mut last_rx_ns: u64,
        registry: &Registry,
        now_ns: u64,
        handler: &mut H,
    ) -> Step {
        let mut ended: Option<Disconnect> = None;
        if self.readable {
            let mut budget = self.cfg.messages_per_poll_max;
            while budget > 0 {
                budget -= 1;
                let outcome = session.read_next(|kind, payload, stamps| {
                    handler.on_message_stamped(kind, payload, now_ns, stamps);
                });
                match outcome {
                    Ok(ReadOutcome::Data) => {
                        self.stats.messages += 1;
                        last_rx_ns = now_ns;
                    }
                    Ok(ReadOutcome::Ping) => {
                        self.stats.pings += 1;
                        last_rx_ns = now_ns;
                    }
                    Ok(ReadOutcome::Pong) => last_rx_ns = now_ns,
                    Ok(ReadOutcome::WouldBlock) => {
                        self.readable = false;
                        break;
                    }
                    Ok(ReadOutcome::Closed { ws_code }) => {
                        ended = Some(Disconnect::PeerClosed { ws_code });
                        break;
                    }
                    Err(e) => {
                        ended = Some(Disconnect::Failed(e));
                        break;
                    }
                }
            }
        }
        if ended.is_none() && self.writable && session.wants_flush() {
            self.writable = false;
            if let Err(e) = session.flush() {
                ended = Some(Disconnect::Failed(e));
            }
        }
        if ended.is_none() {
            let age_ns = now_ns.saturating_sub(opened_at_ns);
            let silent_ns = now_ns.saturating_sub(last_rx_ns);
            if age_ns >= self.cfg.max_age_ns {
                ended = Some(Disconnect::Rotation { age_ns });
            } else if silent_ns >= self.cfg.stale_after_ns {
                ended = Some(Disconnect::Stale { silent_ns });
            }
        }
        let state = State::Open {
            session,
            opened_at_ns,
            last_rx_ns,
        };
        match ended {
            None => Step::Stay(state),
            Some(cause) => Step::Stay(self.teardown(state, registry, cause, now_ns, handler)),
        }
    }

    /// Any state → Waiting after a failure.
    fn fail_state<H: Handler>(
        &mut self,
        state: State,
        registry: &Registry,
        e: NetError,
        now_ns: u64,
        handler: &mut H,
    ) -> State {
        self.teardown(state, registry, Disconnect::Failed(e), now_ns, handler)
    }

    /// A failure whose socket is already gone (moved into a failed handshake and dropped
    /// with it; the kernel removes a closed descriptor from the epoll set).
    fn fail<H: Handler>(
        &mut self,
        registry: &Registry,
        e: NetError,
        now_ns: u64,
        handler: &mut H,
    ) -> State {
        self.teardown(
            State::Closed,
            registry,
            Disconnect::Failed(e),
            now_ns,
            handler,
        )
    }

    /// Releases the socket, picks the next attempt time and reports it.
    fn teardown<H: Handler>(
        &mut self,
        state: State,
        registry: &Registry,
        cause: Disconnect,
        now_ns: u64,
        handler: &mut H,
    ) -> State {
        let open_for_ns = match &state {
            State::Open { opened_at_ns, .. } => now_ns.saturating_sub(*opened_at_ns),
            _ => 0,
        };
        // Polite close only when the connection is healthy enough to carry it.
        let polite = matches!(
            cause,
            Disconnect::Rotation { .. } | Disconnect::Restart | Disconnect::PeerClosed { .. }
        );
        self.release(state, registry, polite);
        // Fresh addresses for the attempt after next (this one uses the last found).
        self.resolver.request();
        if open_for_ns >= self.cfg.healthy_after_ns {
            self.backoff.reset();
            self.attempt = 0;
        }
        let delay_ns = match cause {
            Disconnect::Rotation { .. } | Disconnect::Restart => 0,
            _ => self.backoff.next_delay_ns(),
        };
        let next_attempt_at_ns = now_ns.saturating_add(delay_ns);
        self.stats.disconnects += 1;
        handler.on_event(NetEvent::Disconnected {
            cause,
            open_for_ns,
            next_attempt_at_ns,
            at_ns: now_ns,
        });
        State::Waiting { next_attempt_at_ns }
    }

    /// Deregisters and drops whatever socket `state` holds; closes politely if asked and
    /// open.
    fn release(&mut self, state: State, registry: &Registry, polite: bool) {
        match state {
            State::Connecting { mut sock, .. } => {
                let _ = registry.deregister(&mut sock);
            }
            State::TlsHandshake { mut hs, .. } => {
                let _ = registry.deregister(hs.socket_mut());
            }
            State::WsHandshake { mut hs, .. } => {
                let _ = registry.deregister(hs.socket_mut());
            }
            State::Open { mut session, .. } => {
                self.last_tls_stats = session.transport().tls_stats();
                if polite {
                    session.close();
                }
                let _ = registry.deregister(session.transport_mut().socket_mut());
            }
            State::Waiting { .. } | State::Closed => {}
        }
        self.readable = false;
        self.writable = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_can_move_to_the_hot_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<Connection>();
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let mut b = Backoff::new(100 * NS_PER_MS, 30 * NS_PER_S);
        let delays: Vec<u64> = (0..12).map(|_| b.next_delay_ns() / NS_PER_MS).collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000]
        );
        assert_eq!(b.failures(), 12);
        b.reset();
        assert_eq!(b.next_delay_ns(), 100 * NS_PER_MS);
    }

    #[test]
    fn backoff_never_overflows() {
        let mut b = Backoff::new(u64::MAX / 2, u64::MAX);
        for _ in 0..200 {
            assert!(b.next_delay_ns() >= u64::MAX / 2);
        }
        let mut b = Backoff::new(3, 1_000);
        for _ in 0..100 {
            assert!(b.next_delay_ns() <= 1_000);
        }
    }

    #[test]
    fn config_defaults_validate_and_bad_values_are_named() {
        let cfg = ConnConfig::new(
            "wss://stream.binance.com:9443/ws/btcusdt@bookTicker",
            TlsRoots::WebPki,
        );
        assert_eq!(cfg.validate(), Ok(()));
        assert_eq!(cfg.max_age_ns, 23 * 3600 * NS_PER_S);
        let bad = ConnConfig {
            backoff_max_ns: 1,
            ..cfg.clone()
        };
        assert_eq!(
            bad.validate(),
            Err(NetError::InvalidConfig("backoff_max_ns"))
        );
        let bad = ConnConfig {
            messages_per_poll_max: 0,
            ..cfg
        };
        assert_eq!(
            bad.validate(),
            Err(NetError::InvalidConfig("messages_per_poll_max"))
        );
    }

    #[test]
    fn http_urls_are_refused_for_websockets() {
        let cfg = ConnConfig::new("https://api.binance.com/api/v3/depth", TlsRoots::WebPki);
        assert!(matches!(
            Connection::new(cfg, Token(1), 0),
            Err(NetError::InvalidUrl)
        ));
    }
}
