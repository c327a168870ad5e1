//! Live order entry on Binance spot over the WebSocket API (`/ws-api/v3`): request
//! encoding and signing (HMAC-SHA256 per request, or Ed25519 once per connection with
//! `session.logon`), response and executionReport decoding, and `BinanceVenue`, the
//! `Venue` the `Trader` drives in live mode.
//!
//! Owns: `Credentials` (API key + the prepared HMAC key schedule or the Ed25519 key pair;
//! the secret or private key itself is never stored as text, printed or written anywhere), `RequestEncoder` (actions → signed JSON
//! requests in a caller's buffer), `decode` (one received text frame → `Message`),
//! `RateLimits` (the counts of the last `rateLimits` array), and `BinanceVenue` (one order
//! connection, the in-flight request table, the queue of `VenueEvent`s, rate limiting and
//! the 429/418 back-off).
//!
//! Wire rules (PROTOCOL.md, web-socket-api.md): a signed request's payload is every
//! parameter except `signature`, sorted by name, as `name=value` joined by `&`. The encoder
//! writes the parameters *in sorted order* and feeds each `name=value` to the HMAC as it
//! writes it, so the JSON and the signed payload are the same bytes in the same order and
//! no payload copy exists. Orders are `LIMIT_MAKER` (post-only, no `timeInForce`), ids are
//! `ClientOrderId::write_wire` (`mm<session>-<seq>`), prices and quantities are printed
//! from integer ticks/lots by `SymbolSpec`.
//!
//! Events: a `200` response to `order.place` is an `Accepted`, to `order.cancel` a
//! `Canceled`; executionReports (`x=NEW/TRADE/CANCELED/EXPIRED/REJECTED`) produce the same
//! events again when they arrive. The order state machine treats the second of a pair as a
//! duplicate (`OrderState::on_ack`/`on_canceled`), so whichever comes first wins and
//! nothing depends on the order in which the exchange sends the two.
//!
//! Ed25519 sessions: on every new connection `time` and `session.logon` go first; only
//! its 200 lets anything else out (`userDataStream.subscribe`, unsigned, then the
//! requests, which carry `timestamp`/`recvWindow` but no `apiKey` and no signature); a
//! refused logon is kept like a refused subscription (`subscribe_refused`,
//! `refused_at_logon`) and retried on a new connection.
//!
//! Safety rules kept here: no request goes out before the user-data subscription is
//! confirmed (`is_ready`); new orders are refused locally once the last `rateLimits`
//! counts come within `rate_headroom` of a limit (cancels pass unless the weight is near
//! its limit); a 429/418 refuses everything until its `retryAfter` (`is_backing_off`, the
//! engine stops quoting) — except cancels after a -1015 (the ORDERS limit, which cancels
//! do not count against); a `time` request on every connection corrects the timestamps for
//! the server's clock; a request unanswered for `REQUEST_TIMEOUT_NS` restarts the
//! connection; a disconnect forgets the requests in flight (counted in `lost_in_flight`:
//! their orders must be reconciled with `openOrders.status`).
//!
//! Hot path: `RequestEncoder::encode_*`, `decode` and every `BinanceVenue` method except
//! `new` never allocate (tests/live_venue.rs counts), never read the clock (`now_ns` and a
//! wall-clock offset come in), never log and never panic on network input.
//!
//! Files, one question each: `sign.rs` (credentials, and the writer that signs a request
//! as it writes it), `request.rs` (actions → request bytes), `response.rs` (a received
//! frame → `Message`), `session.rs` (`BinanceVenue`: the connection, the in-flight table,
//! rate limits, back-off, reconnect), `json.rs` (the bounded JSON walker and number
//! writers they share), `tests.rs`.

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use mio::event::Event;
use mio::{Registry, Token};
use ring::signature::Ed25519KeyPair;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::PrivatePkcs8KeyDer;
use sha2::Sha256;

use crate::feed::Trade;
use crate::net::ws::OP_TEXT;
use crate::net::{ConnConfig, Connection, Handler, MessageKind, NetError, NetEvent};
use crate::orders::{
    Action, ClientOrderId, IdError, SessionTag, VenueEvent, CLIENT_ORDER_ID_LEN_MAX,
};
use crate::risk::Approved;
use crate::types::{
    parse_atoms, Price, Qty, Side, Symbol, SymbolSpec, ATOMS_PER_UNIT, DECIMAL_TEXT_MAX,
};
use crate::venue::{MarketView, SubmitError, Venue};

mod json;
mod request;
mod response;
mod session;
mod sign;
#[cfg(test)]
mod tests;

use json::*;
pub use request::*;
pub use response::*;
pub use session::*;
pub use sign::*;

/// Longest API key accepted (Binance's HMAC keys are 64 characters).
pub const API_KEY_LEN_MAX: usize = 128;
/// Largest request text; every request we send fits in well under half of it.
pub const REQUEST_BYTES_MAX: usize = 1_024;
/// Requests awaiting their response at once.
pub const IN_FLIGHT_MAX: usize = 64;
/// Venue events decoded but not yet handed to the engine.
pub const EVENT_QUEUE_MAX: usize = 512;
/// Default `recvWindow`, ms.
pub const RECV_WINDOW_MS_DEFAULT: u32 = 5_000;
/// Largest `recvWindow` Binance accepts, ms.
pub const RECV_WINDOW_MS_MAX: u32 = 60_000;
/// Back-off after a 429/418 that carried no `retryAfter`, ms.
pub const BACKOFF_MS_DEFAULT: u64 = 1_000;
/// A request unanswered for this long means the connection is broken: it is restarted
/// (Binance answers every request; the exchange's own timeout is 10 s).
pub const REQUEST_TIMEOUT_NS: u64 = 10_000 * NS_PER_MS;
/// After a refused user-data subscription, the connection is restarted (and subscribes
/// again) this long after the refusal, or at the end of a back-off if that is later.
pub const SUBSCRIBE_RETRY_NS: u64 = 5_000 * NS_PER_MS;
/// Order-connection events kept until the owner takes them (`take_net_event`).
pub const NET_EVENTS_MAX: usize = 8;
/// Length of an Ed25519 signature in standard base64 with padding (64 bytes → 88 chars).
pub const ED25519_SIGNATURE_B64_LEN: usize = 88;
/// Rejection code we report for an executionReport `x=REJECTED` (it carries no code).
pub const CODE_REPORT_REJECTED: i32 = -2010;

const NS_PER_MS: u64 = 1_000_000;
const HEX: &[u8; 16] = b"0123456789abcdef";

/// Why the live venue could not be set up (off the hot path).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinanceError {
    /// `BINANCE_API_KEY`, or both `BINANCE_API_SECRET` and
    /// `BINANCE_ED25519_PRIVATE_KEY_PATH`, are not set.
    MissingKeys,
    /// Both `BINANCE_API_SECRET` and `BINANCE_ED25519_PRIVATE_KEY_PATH` are set.
    TwoKeyTypes,
    /// The API key is empty, too long or holds characters no Binance key has.
    BadApiKey,
    /// The secret is empty.
    BadApiSecret,
    /// The file `BINANCE_ED25519_PRIVATE_KEY_PATH` names could not be read.
    KeyFile(std::io::ErrorKind),
    /// The private key file is not an unencrypted Ed25519 PKCS#8 PEM key (why).
    BadPrivateKey(&'static str),
    /// `recv_window_ms` is 0 or above 60000.
    BadRecvWindow,
    /// The order connection could not be set up.
    Net(NetError),
}

impl fmt::Display for BinanceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BinanceError::MissingKeys => f.write_str(
                "BINANCE_API_KEY must be set in the environment, with BINANCE_API_SECRET (an \
                 HMAC key) or BINANCE_ED25519_PRIVATE_KEY_PATH (the PEM file of an Ed25519 key)",
            ),
            BinanceError::TwoKeyTypes => f.write_str(
                "both BINANCE_API_SECRET and BINANCE_ED25519_PRIVATE_KEY_PATH are set: unset the \
                 one that does not belong to BINANCE_API_KEY",
            ),
            BinanceError::BadApiKey => f.write_str("BINANCE_API_KEY is not a valid API key"),
            BinanceError::BadApiSecret => f.write_str("BINANCE_API_SECRET is empty"),
            BinanceError::KeyFile(kind) => write!(
                f,
                "cannot read the file named by BINANCE_ED25519_PRIVATE_KEY_PATH: {kind}"
            ),
            BinanceError::BadPrivateKey(why) => {
                write!(f, "BINANCE_ED25519_PRIVATE_KEY_PATH: {why}")
            }
            BinanceError::BadRecvWindow => f.write_str("recv_window_ms must be in 1..=60000"),
            BinanceError::Net(e) => write!(f, "order connection: {e:?}"),
        }
    }
}

impl std::error::Error for BinanceError {}
