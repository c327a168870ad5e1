//! The hot path's transport: TCP → TLS 1.3 → WebSocket, plus a blocking REST GET.
//!
//! Owns: everything between a socket and the bytes of one WebSocket message.
//! - `conn`: `Connection`, the mio-driven, reconnecting state machine the engine polls;
//!   frames leave through the `Handler` callback as borrowed slices, events as `Copy` values.
//! - `tls`: rustls for the handshake, then our own in-place TLS 1.3 record layer (0
//!   allocations per record; rustls allocates one per record, DESIGN.md "Measured").
//! - `record`: the sans-IO record protection (RFC 8446 §5).
//! - `ws`: tungstenite for the upgrade and for reading; masked client frames written here.
//! - `rest`: blocking HTTPS GET for snapshots and exchangeInfo (cold path, may allocate).
//! - `stamp`: receive timestamps per layer (socket read, TLS, WebSocket) for the per-stage
//!   latency histograms, with the caller's clock.
//! - `url`, `error`: endpoint parsing and the one `Copy` error enum.
//!
//! Invariants: after a connection is open, receiving and sending a message allocate
//! nothing and never block (tests/net.rs proves the receive side with a counting
//! allocator); all buffers are sized at connect time; the time is always passed in.
//!
//! Never: reads a clock of its own (only the caller's `RxClock`, if given, for receive
//! stamps), sleeps, logs, or accepts a certificate that fails verification.
//! Only this module (and later the order-entry venue) touches sockets.
//!
//! How the engine drives a connection (the caller owns the `Poll` and the clock):
//!
//! ```no_run
//! use std::time::Duration;
//! use mio::{Events, Poll, Token};
//! use mm::net::{ConnConfig, Connection, Handler, MessageKind, NetEvent, TlsRoots};
//! use mm::time::{Clock, SystemClock};
//!
//! struct Feed; // the decoder + book; must not allocate in `on_message`
//! impl Handler for Feed {
//!     fn on_message(&mut self, _kind: MessageKind, payload: &[u8], now_ns: u64) {
//!         let _ = (payload, now_ns); // decode in place; the slice dies after this call
//!     }
//!     fn on_event(&mut self, event: NetEvent) {
//!         let _ = event; // try_send to the side thread's log; Disconnected ⇒ resync the book
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let clock = SystemClock::new();
//! let cfg = ConnConfig::new(
//!     "wss://stream.binance.com:9443/stream?streams=btcusdt@bookTicker",
//!     TlsRoots::WebPki,
//! );
//! let mut conn = Connection::new(cfg, Token(0), clock.mono_ns())?;
//! let mut poll = Poll::new()?;
//! let mut events = Events::with_capacity(64);
//! let mut feed = Feed;
//! loop {
//!     poll.poll(&mut events, Some(Duration::ZERO))?; // busy poll
//!     for event in events.iter() {
//!         conn.on_readiness(event);
//!     }
//!     conn.poll(poll.registry(), clock.mono_ns(), &mut feed);
//!     // ... quote, then conn.send_with(..) / order connection sends ...
//! }
//! # }
//! ```

pub mod conn;
mod error;
pub mod record;
pub mod resolve;
pub mod rest;
pub mod stamp;
pub mod tls;
pub mod url;
pub mod ws;

pub use conn::{Backoff, ConnConfig, ConnStats, Connection, Disconnect, Handler, NetEvent, Phase};
pub use error::{CaFileProblem, CertProblem, Fault, NetError, TlsViolation};
pub use rest::{RestClient, RestHeaders, RestResponse};
pub use stamp::{RxClock, RxStamps};
pub use tls::{TlsClientConfig, TlsRoots, TlsStats};
pub use url::{Scheme, Url};
pub use ws::{MessageKind, WsSettings};
