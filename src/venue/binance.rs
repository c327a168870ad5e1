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

// ---------------------------------------------------------------------------------------
// Credentials and signing
// ---------------------------------------------------------------------------------------

/// The API key and how requests are authenticated: an HMAC-SHA256 key schedule prepared
/// from the secret (every signed request carries `apiKey` and a hex signature), or an
/// Ed25519 private key (the connection is authenticated once with `session.logon`; later
/// requests carry neither `apiKey` nor a signature). The secret or private key is consumed
/// by the constructor and kept only as the prepared key; `Debug` prints neither.
#[derive(Clone)]
pub struct Credentials {
    api_key: [u8; API_KEY_LEN_MAX],
    api_key_len: usize,
    signer: Signer,
}

/// Which kind of API key the credentials hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// HMAC-SHA256 (`BINANCE_API_SECRET`): every request signed.
    Hmac,
    /// Ed25519 (`BINANCE_ED25519_PRIVATE_KEY_PATH`): `session.logon` once per connection.
    Ed25519,
}

#[derive(Clone)]
enum Signer {
    Hmac(Hmac<Sha256>),
    // `Ed25519KeyPair` is not `Clone`; cloned credentials share the key.
    Ed25519(Arc<Ed25519KeyPair>),
}

impl Credentials {
    /// HMAC credentials. Validates the key (printable ASCII without quotes or backslashes,
    /// so it can be written into JSON as is) and prepares the key schedule. Off the hot
    /// path.
    pub fn new(api_key: &str, api_secret: &str) -> Result<Credentials, BinanceError> {
        let (key, len) = checked_api_key(api_key)?;
        if api_secret.is_empty() {
            return Err(BinanceError::BadApiSecret);
        }
        let mac = Hmac::<Sha256>::new_from_slice(api_secret.as_bytes())
            .map_err(|_| BinanceError::BadApiSecret)?;
        Ok(Credentials {
            api_key: key,
            api_key_len: len,
            signer: Signer::Hmac(mac),
        })
    }

    /// Ed25519 credentials from a PKCS#8 private key in PEM (`-----BEGIN PRIVATE KEY-----`,
    /// as `openssl genpkey -algorithm ed25519` writes it). Off the hot path.
    pub fn ed25519_from_pem(api_key: &str, pem: &[u8]) -> Result<Credentials, BinanceError> {
        let (key, len) = checked_api_key(api_key)?;
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem).map_err(|e| match e {
            pem::Error::NoItemsFound => BinanceError::BadPrivateKey(
                "no unencrypted PKCS#8 PEM block (-----BEGIN PRIVATE KEY-----) found; an \
                 encrypted key must be decrypted first (openssl pkey -in KEY -out PLAIN)",
            ),
            _ => BinanceError::BadPrivateKey("the PEM text is malformed"),
        })?;
        // `maybe_unchecked`: OpenSSL writes PKCS#8 v1 (no public key inside), which
        // `from_pkcs8` refuses.
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der.secret_pkcs8_der())
            .map_err(|_| BinanceError::BadPrivateKey("not an Ed25519 private key"))?;
        Ok(Credentials {
            api_key: key,
            api_key_len: len,
            signer: Signer::Ed25519(Arc::new(pair)),
        })
    }

    /// From the environment: `BINANCE_API_KEY` and either `BINANCE_API_SECRET` (HMAC) or
    /// `BINANCE_ED25519_PRIVATE_KEY_PATH` (a PEM file; Ed25519). Both set is an error (which
    /// key was meant is not guessed). Errors name the variables, never their values.
    pub fn from_env() -> Result<Credentials, BinanceError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let key = var("BINANCE_API_KEY").ok_or(BinanceError::MissingKeys)?;
        match (
            var("BINANCE_API_SECRET"),
            var("BINANCE_ED25519_PRIVATE_KEY_PATH"),
        ) {
            (Some(_), Some(_)) => Err(BinanceError::TwoKeyTypes),
            (Some(secret), None) => Credentials::new(&key, &secret),
            (None, Some(path)) => {
                let pem = std::fs::read(&path).map_err(|e| BinanceError::KeyFile(e.kind()))?;
                Credentials::ed25519_from_pem(&key, &pem)
            }
            (None, None) => Err(BinanceError::MissingKeys),
        }
    }

    /// The API key (public: it is sent with every request or at logon).
    pub fn api_key(&self) -> &[u8] {
        &self.api_key[..self.api_key_len]
    }

    /// Which kind of key this is.
    pub fn key_type(&self) -> KeyType {
        match self.signer {
            Signer::Hmac(_) => KeyType::Hmac,
            Signer::Ed25519(_) => KeyType::Ed25519,
        }
    }

    /// Lower-case hex HMAC-SHA256 of `payload` (clones the prepared key schedule); `false`
    /// (nothing written) for an Ed25519 key.
    pub fn sign_hex(&self, payload: &[u8], out: &mut [u8; 64]) -> bool {
        let Signer::Hmac(mac) = &self.signer else {
            return false;
        };
        let mut mac = mac.clone();
        mac.update(payload);
        hex_into(&mac.finalize().into_bytes(), out);
        true
    }

    /// Standard base64 (with padding) of the Ed25519 signature of `payload`, as
    /// `session.logon` wants it; `false` (nothing written) for an HMAC key. Never
    /// allocates.
    pub fn sign_ed25519_base64(
        &self,
        payload: &[u8],
        out: &mut [u8; ED25519_SIGNATURE_B64_LEN],
    ) -> bool {
        let Signer::Ed25519(pair) = &self.signer else {
            return false;
        };
        let signature = pair.sign(payload);
        BASE64.encode_slice(signature.as_ref(), out) == Ok(ED25519_SIGNATURE_B64_LEN)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key is shown shortened (enough to tell accounts apart); the secret is gone.
        let key = self.api_key();
        let head = std::str::from_utf8(&key[..key.len().min(6)]).unwrap_or("?");
        let kind = self.key_type();
        write!(
            f,
            "Credentials {{ api_key: {head}…, {kind:?}, secret: <redacted> }}"
        )
    }
}

fn checked_api_key(api_key: &str) -> Result<([u8; API_KEY_LEN_MAX], usize), BinanceError> {
    let raw = api_key.as_bytes();
    let legal = |b: &u8| b.is_ascii_graphic() && *b != b'"' && *b != b'\\';
    if raw.is_empty() || raw.len() > API_KEY_LEN_MAX || !raw.iter().all(legal) {
        return Err(BinanceError::BadApiKey);
    }
    let mut key = [0u8; API_KEY_LEN_MAX];
    key[..raw.len()].copy_from_slice(raw);
    Ok((key, raw.len()))
}

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

// ---------------------------------------------------------------------------------------
// Request encoding
// ---------------------------------------------------------------------------------------

/// Writes signed WebSocket API requests into a caller's buffer (e.g. inside
/// `Connection::send_with`). Each `encode_*` returns the length written, or `None` if
/// `out` is too small (nothing sensible was written then). Never allocates.
#[derive(Clone, Debug)]
pub struct RequestEncoder {
    creds: Credentials,
    spec: SymbolSpec,
    session: SessionTag,
    recv_window_ms: u32,
}

impl RequestEncoder {
    /// An encoder for one symbol and session.
    pub fn new(
        creds: Credentials,
        spec: SymbolSpec,
        session: SessionTag,
        recv_window_ms: u32,
    ) -> Result<RequestEncoder, BinanceError> {
        if recv_window_ms == 0 || recv_window_ms > RECV_WINDOW_MS_MAX {
            return Err(BinanceError::BadRecvWindow);
        }
        Ok(RequestEncoder {
            creds,
            spec,
            session,
            recv_window_ms,
        })
    }

    /// The symbol's spec.
    pub fn spec(&self) -> &SymbolSpec {
        &self.spec
    }

    /// The session tag of our client order ids.
    pub fn session(&self) -> &SessionTag {
        &self.session
    }

    /// Encodes one engine action as request `req_id`.
    pub fn encode_action(
        &self,
        req_id: u64,
        action: &Action,
        timestamp_ms: u64,
        out: &mut [u8],
    ) -> Option<usize> {
        match *action {
            Action::Place { id, order } => self.encode_place(req_id, id, &order, timestamp_ms, out),
            Action::Cancel { id } => self.encode_cancel(req_id, id, timestamp_ms, out),
            Action::CancelReplace {
                cancel_id,
                new_id,
                order,
            } => self.encode_cancel_replace(req_id, cancel_id, new_id, &order, timestamp_ms, out),
            Action::CancelAll => self.encode_cancel_all(req_id, timestamp_ms, out),
        }
    }

    /// `order.place`, LIMIT_MAKER, `newOrderRespType=ACK`.
    pub fn encode_place(
        &self,
        req_id: u64,
        id: ClientOrderId,
        order: &Approved,
        timestamp_ms: u64,
        out: &mut [u8],
    ) -> Option<usize> {
        let mut req = self.start(req_id, b"order.place", out);
        let mut wire = [0u8; CLIENT_ORDER_ID_LEN_MAX];
        let n = id.write_wire(&self.session, &mut wire);
        req.text(b"newClientOrderId", &wire[..n]);
        self.order_fields(&mut req, order, timestamp_ms);
        req.finish()
    }

    /// `order.cancel` by `origClientOrderId`.
    pub fn encode_cancel(
        &self,
        req_id: u64,
        id: ClientOrderId,
        timestamp_ms: u64,
        out: &mut [u8],
    ) -> Option<usize> {
        let mut req = self.start(req_id, b"order.cancel", out);
        let mut wire = [0u8; CLIENT_ORDER_ID_LEN_MAX];
        let n = id.write_wire(&self.session, &mut wire);
        req.text(b"origClientOrderId", &wire[..n]);
        req.number(b"recvWindow", u64::from(self.recv_window_ms));
        req.text(b"symbol", self.spec.symbol.as_str().as_bytes());
        req.number(b"timestamp", timestamp_ms);
        req.finish()
    }

    /// `order.cancelReplace`, `cancelReplaceMode=STOP_ON_FAILURE`, LIMIT_MAKER.
    pub fn encode_cancel_replace(
        &self,
        req_id: u64,
        cancel_id: ClientOrderId,
        new_id: ClientOrderId,
        order: &Approved,
        timestamp_ms: u64,
        out: &mut [u8],
    ) -> Option<usize> {
        let mut req = self.start(req_id, b"order.cancelReplace", out);
        let mut wire = [0u8; CLIENT_ORDER_ID_LEN_MAX];
        let n = cancel_id.write_wire(&self.session, &mut wire);
        req.text(b"cancelOrigClientOrderId", &wire[..n]);
        req.text(b"cancelReplaceMode", b"STOP_ON_FAILURE");
        let n = new_id.write_wire(&self.session, &mut wire);
        req.text(b"newClientOrderId", &wire[..n]);
        self.order_fields(&mut req, order, timestamp_ms);
        req.finish()
    }

    /// `openOrders.cancelAll` for the symbol.
    pub fn encode_cancel_all(
        &self,
        req_id: u64,
        timestamp_ms: u64,
        out: &mut [u8],
    ) -> Option<usize> {
        self.symbol_only(req_id, b"openOrders.cancelAll", timestamp_ms, out)
    }

    /// `openOrders.status` for the symbol.
    pub fn encode_open_orders(
        &self,
        req_id: u64,
        timestamp_ms: u64,
        out: &mut [u8],
    ) -> Option<usize> {
        self.symbol_only(req_id, b"openOrders.status", timestamp_ms, out)
    }

    /// executionReports on this connection. HMAC: `userDataStream.subscribe.signature`,
    /// signed. Ed25519: `userDataStream.subscribe` without parameters, for a session that
    /// `session.logon` authenticated.
    pub fn encode_subscribe(
        &self,
        req_id: u64,
        timestamp_ms: u64,
        out: &mut [u8],
    ) -> Option<usize> {
        if self.creds.key_type() == KeyType::Ed25519 {
            return encode_bare(req_id, b"userDataStream.subscribe", out);
        }
        let mut req = self.start(req_id, b"userDataStream.subscribe.signature", out);
        req.number(b"recvWindow", u64::from(self.recv_window_ms));
        req.number(b"timestamp", timestamp_ms);
        req.finish()
    }

    /// `session.logon` (Ed25519 keys only; `None` for HMAC): `apiKey`, `recvWindow`,
    /// `timestamp` and the base64 Ed25519 signature of their sorted payload. After a
    /// successful logon every other request of the connection goes without `apiKey` and
    /// signature. Never allocates (the signature takes ~20–50 µs: once per connection).
    pub fn encode_logon(&self, req_id: u64, timestamp_ms: u64, out: &mut [u8]) -> Option<usize> {
        let mut payload = [0u8; API_KEY_LEN_MAX + 64];
        let mut digits = [0u8; 20];
        let mut len = 0;
        let window = write_u64(u64::from(self.recv_window_ms), &mut digits);
        let window_text = digits;
        let mut ts_digits = [0u8; 20];
        let ts = write_u64(timestamp_ms, &mut ts_digits);
        let parts: [&[u8]; 6] = [
            b"apiKey=",
            self.creds.api_key(),
            b"&recvWindow=",
            &window_text[..window],
            b"&timestamp=",
            &ts_digits[..ts],
        ];
        for part in parts {
            payload
                .get_mut(len..len + part.len())?
                .copy_from_slice(part);
            len += part.len();
        }
        let mut signature = [0u8; ED25519_SIGNATURE_B64_LEN];
        if !self
            .creds
            .sign_ed25519_base64(&payload[..len], &mut signature)
        {
            return None;
        }
        let mut req = SignedWriter::new(out, None);
        req.head(req_id, b"session.logon");
        req.text(b"apiKey", self.creds.api_key());
        req.number(b"recvWindow", u64::from(self.recv_window_ms));
        req.text(b"signature", &signature);
        req.number(b"timestamp", timestamp_ms);
        req.finish()
    }

    /// `session.status` (no parameters): who the connection is logged on as.
    pub fn encode_session_status(&self, req_id: u64, out: &mut [u8]) -> Option<usize> {
        encode_bare(req_id, b"session.status", out)
    }

    /// `session.logout` (no parameters): the connection forgets its API key.
    pub fn encode_session_logout(&self, req_id: u64, out: &mut [u8]) -> Option<usize> {
        encode_bare(req_id, b"session.logout", out)
    }

    /// Which kind of key signs (HMAC: every request; Ed25519: `session.logon`).
    pub fn key_type(&self) -> KeyType {
        self.creds.key_type()
    }

    /// `account.status` with `omitZeroBalances=true`: the balances, for reconciliation.
    pub fn encode_account_status(
        &self,
        req_id: u64,
        timestamp_ms: u64,
        out: &mut [u8],
    ) -> Option<usize> {
        let mut req = self.start(req_id, b"account.status", out);
        req.text_raw(b"omitZeroBalances", b"true");
        req.number(b"recvWindow", u64::from(self.recv_window_ms));
        req.number(b"timestamp", timestamp_ms);
        req.finish()
    }

    /// `time` (unsigned): the server's clock, for the timestamp correction.
    pub fn encode_time(&self, req_id: u64, out: &mut [u8]) -> Option<usize> {
        encode_bare(req_id, b"time", out)
    }

    fn symbol_only(
        &self,
        req_id: u64,
        method: &[u8],
        timestamp_ms: u64,
        out: &mut [u8],
    ) -> Option<usize> {
        let mut req = self.start(req_id, method, out);
        req.number(b"recvWindow", u64::from(self.recv_window_ms));
        req.text(b"symbol", self.spec.symbol.as_str().as_bytes());
        req.number(b"timestamp", timestamp_ms);
        req.finish()
    }

    /// The fields after the client id(s) of a new LIMIT_MAKER order, in name order.
    fn order_fields(&self, req: &mut SignedWriter<'_>, order: &Approved, timestamp_ms: u64) {
        let mut text = [0u8; DECIMAL_TEXT_MAX];
        req.text(b"newOrderRespType", b"ACK");
        let n = self.spec.write_price(order.price(), &mut text);
        req.text(b"price", &text[..n]);
        let n = self.spec.write_qty(order.qty(), &mut text);
        req.text(b"quantity", &text[..n]);
        req.number(b"recvWindow", u64::from(self.recv_window_ms));
        req.text(b"side", side_wire(order.side()));
        req.text(b"symbol", self.spec.symbol.as_str().as_bytes());
        req.number(b"timestamp", timestamp_ms);
        req.text(b"type", b"LIMIT_MAKER");
    }

    /// HMAC: `{"id":"<req_id>","method":"<method>","params":{"apiKey":"…"` — `apiKey`
    /// sorts first among every method's parameters — and a writer that signs. Ed25519
    /// (a logged-on session): the same without `apiKey`, and nothing is signed.
    fn start<'a>(&self, req_id: u64, method: &[u8], out: &'a mut [u8]) -> SignedWriter<'a> {
        let mac = match &self.creds.signer {
            Signer::Hmac(mac) => Some(mac.clone()),
            Signer::Ed25519(_) => None,
        };
        let signed = mac.is_some();
        let mut req = SignedWriter::new(out, mac);
        req.head(req_id, method);
        if signed {
            req.text(b"apiKey", self.creds.api_key());
        }
        req
    }
}

/// `{"id":"<req_id>","method":"<method>"}`: a request without parameters.
fn encode_bare(req_id: u64, method: &[u8], out: &mut [u8]) -> Option<usize> {
    let mut digits = [0u8; 20];
    let n = write_u64(req_id, &mut digits);
    let parts: [&[u8]; 5] = [
        b"{\"id\":\"",
        &digits[..n],
        b"\",\"method\":\"",
        method,
        b"\"}",
    ];
    let mut pos = 0;
    for part in parts {
        out.get_mut(pos..pos + part.len())?.copy_from_slice(part);
        pos += part.len();
    }
    Some(pos)
}

/// The JSON writer that signs as it writes (with an HMAC key schedule; without one it only
/// writes). Parameters must come in name order (checked in debug builds).
struct SignedWriter<'a> {
    out: &'a mut [u8],
    pos: usize,
    overflow: bool,
    mac: Option<Hmac<Sha256>>,
    params: u32,
    #[cfg(debug_assertions)]
    last_name: [u8; 32],
    #[cfg(debug_assertions)]
    last_name_len: usize,
}

impl<'a> SignedWriter<'a> {
    fn new(out: &'a mut [u8], mac: Option<Hmac<Sha256>>) -> SignedWriter<'a> {
        SignedWriter {
            out,
            pos: 0,
            overflow: false,
            mac,
            params: 0,
            #[cfg(debug_assertions)]
            last_name: [0u8; 32],
            #[cfg(debug_assertions)]
            last_name_len: 0,
        }
    }

    /// `{"id":"<req_id>","method":"<method>","params":{`.
    fn head(&mut self, req_id: u64, method: &[u8]) {
        self.put(b"{\"id\":\"");
        let mut digits = [0u8; 20];
        let n = write_u64(req_id, &mut digits);
        self.put(&digits[..n]);
        self.put(b"\",\"method\":\"");
        self.put(method);
        self.put(b"\",\"params\":{");
    }

    fn sign(&mut self, bytes: &[u8]) {
        if let Some(mac) = self.mac.as_mut() {
            mac.update(bytes);
        }
    }

    fn put(&mut self, bytes: &[u8]) {
        match self.out.get_mut(self.pos..self.pos + bytes.len()) {
            Some(dst) if !self.overflow => {
                dst.copy_from_slice(bytes);
                self.pos += bytes.len();
            }
            _ => self.overflow = true,
        }
    }

    fn name(&mut self, name: &[u8]) {
        #[cfg(debug_assertions)]
        {
            debug_assert!(
                name > &self.last_name[..self.last_name_len] && name.len() <= 32,
                "parameters out of name order"
            );
            self.last_name[..name.len()].copy_from_slice(name);
            self.last_name_len = name.len();
        }
        if self.params > 0 {
            self.put(b",");
            self.sign(b"&");
        }
        self.params += 1;
        self.put(b"\"");
        self.put(name);
        self.put(b"\":");
        self.sign(name);
        self.sign(b"=");
    }

    /// A string parameter (the caller guarantees it needs no JSON escaping).
    fn text(&mut self, name: &[u8], value: &[u8]) {
        self.name(name);
        self.put(b"\"");
        self.put(value);
        self.put(b"\"");
        self.sign(value);
    }

    /// A literal parameter (`true`, a number already in text): written unquoted.
    fn text_raw(&mut self, name: &[u8], value: &[u8]) {
        self.name(name);
        self.put(value);
        self.sign(value);
    }

    /// A number parameter (signed as its JSON text, as Binance does).
    fn number(&mut self, name: &[u8], value: u64) {
        self.name(name);
        let mut digits = [0u8; 20];
        let n = write_u64(value, &mut digits);
        self.put(&digits[..n]);
        self.sign(&digits[..n]);
    }

    /// With a key schedule `,"signature":"<hex>"}}`, without one `}}`; the length.
    fn finish(mut self) -> Option<usize> {
        if let Some(mac) = self.mac.take() {
            let mut hex = [0u8; 64];
            hex_into(&mac.finalize().into_bytes(), &mut hex);
            self.put(b",\"signature\":\"");
            self.put(&hex);
            self.put(b"\"");
        }
        self.put(b"}}");
        (!self.overflow).then_some(self.pos)
    }
}

// ---------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------

/// One received text frame, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message {
    /// A response to one of our requests.
    Response(Response),
    /// A user-data executionReport.
    Execution(ExecutionReport),
    /// Another user-data event (balances, …): counted, skipped.
    OtherEvent,
    /// `eventStreamTerminated`: the subscription ended (executionReports stop coming).
    StreamTerminated,
}

/// A WebSocket API response. `Copy`; the variable parts (`result`) are read by the venue
/// from the same frame where it needs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response {
    /// Our request id (`None` if the exchange could not read it: `"id":null`).
    pub req_id: Option<u64>,
    /// HTTP-like status: 200, 400, 401, 403, 409, 418, 429, 5xx.
    pub status: u16,
    /// Binance error code, 0 on success.
    pub code: i32,
    /// `error.data.retryAfter`: wall-clock ms until which requests are refused.
    pub retry_after_ms: Option<u64>,
    /// cancel-replace only: the cancel leg's error code (0 = it succeeded or is unknown).
    pub cancel_code: i32,
    /// cancel-replace only: the new-order leg's error code (0 = it succeeded or is unknown).
    pub new_order_code: i32,
    /// cancel-replace only: `cancelResult` was `SUCCESS`.
    pub cancel_succeeded: bool,
    /// `result.transactTime` (order.place / cancel), ms, 0 if absent.
    pub transact_ms: u64,
    /// `result.serverTime` (`time`), ms, 0 if absent.
    pub server_time_ms: u64,
    /// The `rateLimits` array, if present.
    pub rate_limits: Option<RateLimits>,
}

/// What an executionReport said (only what the engine uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecutionReport {
    /// The order: `c`, or `C` for a cancel (where `c` is the cancel request's own id).
    /// `Err` for another session's or another client's order.
    pub id: Result<ClientOrderId, IdError>,
    /// `x`.
    pub exec_type: ExecType,
    /// `L` (last price), ticks.
    pub last_price: Price,
    /// `l` (last quantity), lots.
    pub last_qty: Qty,
    /// `z` (cumulative quantity), lots.
    pub cum_qty: Qty,
    /// `n` converted to quote atoms (0 if the asset is neither base nor quote).
    pub fee_quote_atoms: i64,
    /// The commission was in an asset we cannot convert (e.g. BNB).
    pub fee_unconverted: bool,
    /// `m`.
    pub is_maker: bool,
    /// `T`, ms.
    pub transact_ms: u64,
    /// `t` (-1 when not a trade → 0).
    pub trade_id: u64,
}

/// `x` of an executionReport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecType {
    /// NEW.
    New,
    /// TRADE.
    Trade,
    /// CANCELED.
    Canceled,
    /// EXPIRED or TRADE_PREVENTION.
    Expired,
    /// REJECTED.
    Rejected,
    /// REPLACED (order.amend; we never amend) or anything else.
    Other,
}

impl ExecutionReport {
    /// The venue event it produces, if it concerns one of our orders.
    pub fn to_event(&self) -> Option<VenueEvent> {
        let id = self.id.ok()?;
        Some(match self.exec_type {
            ExecType::New => VenueEvent::Accepted {
                id,
                exch_ts_ms: self.transact_ms,
            },
            ExecType::Trade => VenueEvent::Fill {
                id,
                price: self.last_price,
                qty: self.last_qty,
                cum_qty: self.cum_qty,
                fee_quote_atoms: self.fee_quote_atoms,
                is_maker: self.is_maker,
                exch_ts_ms: self.transact_ms,
                trade_id: self.trade_id,
            },
            ExecType::Canceled => VenueEvent::Canceled { id },
            ExecType::Expired => VenueEvent::Expired { id },
            ExecType::Rejected => VenueEvent::Rejected {
                id,
                code: CODE_REPORT_REJECTED,
            },
            ExecType::Other => return None,
        })
    }
}

/// Counts from the last `rateLimits` array (0/0 when an entry was absent).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// REQUEST_WEIGHT per minute: (count, limit).
    pub weight_1m: (u32, u32),
    /// ORDERS per 10 s: (count, limit).
    pub orders_10s: (u32, u32),
    /// ORDERS per day: (count, limit).
    pub orders_1d: (u32, u32),
}

/// Why a frame could not be decoded. Counted by the venue, never panicked on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Not a JSON object, or broken JSON.
    Malformed,
    /// An object that is neither a response nor an event.
    Unrecognised,
    /// A field the engine needs is missing or has the wrong form.
    BadField(&'static str),
}

/// Decodes one text frame from `/ws-api/v3`. `quote_asset`/`base_asset` name the symbol's
/// assets (for the commission). Never allocates.
pub fn decode(
    frame: &[u8],
    spec: &SymbolSpec,
    session: &SessionTag,
    base_asset: &[u8],
    quote_asset: &[u8],
) -> Result<Message, DecodeError> {
    let mut id = None;
    let mut status = None;
    let mut error = None;
    let mut result = None;
    let mut limits = None;
    let mut event = None;
    for_each_field(frame, |key, value| match key {
        b"id" => id = Some(value),
        b"status" => status = Some(value),
        b"error" => error = Some(value),
        b"result" => result = Some(value),
        b"rateLimits" => limits = Some(value),
        b"event" => event = Some(value),
        _ => {}
    })?;
    if let Some(event) = event {
        return decode_event(event, spec, session, base_asset, quote_asset);
    }
    let Some(status) = status else {
        return Err(DecodeError::Unrecognised);
    };
    let status = as_u64(status).ok_or(DecodeError::BadField("status"))?;
    let req_id = match id {
        Some(v) if v == b"null" => None,
        Some(v) => Some(
            as_str(v)
                .and_then(parse_u64)
                .ok_or(DecodeError::BadField("id"))?,
        ),
        None => None,
    };
    let mut response = Response {
        req_id,
        status: u16::try_from(status).map_err(|_| DecodeError::BadField("status"))?,
        code: 0,
        retry_after_ms: None,
        cancel_code: 0,
        new_order_code: 0,
        cancel_succeeded: false,
        transact_ms: 0,
        server_time_ms: 0,
        rate_limits: None,
    };
    if let Some(limits) = limits {
        response.rate_limits = Some(decode_rate_limits(limits)?);
    }
    if let Some(result) = result {
        if result.first() == Some(&b'{') {
            for_each_field(result, |key, value| match key {
                b"transactTime" => response.transact_ms = as_u64(value).unwrap_or(0),
                b"serverTime" => response.server_time_ms = as_u64(value).unwrap_or(0),
                _ => {}
            })?;
        }
    }
    if let Some(error) = error {
        let mut code = None;
        let mut data = None;
        for_each_field(error, |key, value| match key {
            b"code" => code = Some(value),
            b"data" => data = Some(value),
            _ => {}
        })?;
        response.code = code
            .and_then(as_i64)
            .and_then(|c| i32::try_from(c).ok())
            .ok_or(DecodeError::BadField("error.code"))?;
        if let Some(data) = data.filter(|d| d.first() == Some(&b'{')) {
            decode_error_data(data, &mut response)?;
        }
    } else if response.status != 200 {
        return Err(DecodeError::BadField("error"));
    }
    Ok(Message::Response(response))
}

fn decode_error_data(data: &[u8], response: &mut Response) -> Result<(), DecodeError> {
    let mut cancel = None;
    let mut new_order = None;
    for_each_field(data, |key, value| match key {
        b"retryAfter" => response.retry_after_ms = as_u64(value),
        b"cancelResult" => response.cancel_succeeded = as_str(value) == Some(b"SUCCESS"),
        b"cancelResponse" => cancel = Some(value),
        b"newOrderResponse" => new_order = Some(value),
        _ => {}
    })?;
    let code_of = |obj: &[u8]| -> Result<i32, DecodeError> {
        let mut code = 0;
        if obj.first() == Some(&b'{') {
            for_each_field(obj, |key, value| {
                if key == b"code" {
                    code = as_i64(value)
                        .and_then(|c| i32::try_from(c).ok())
                        .unwrap_or(0);
                }
            })?;
        }
        Ok(code)
    };
    if let Some(c) = cancel {
        response.cancel_code = code_of(c)?;
    }
    if let Some(n) = new_order {
        response.new_order_code = code_of(n)?;
    }
    Ok(())
}

fn decode_rate_limits(array: &[u8]) -> Result<RateLimits, DecodeError> {
    let mut limits = RateLimits::default();
    for_each_element(array, |item| {
        let (mut kind, mut interval, mut num, mut limit, mut count) = (None, None, 0, 0, 0);
        for_each_field(item, |key, value| match key {
            b"rateLimitType" => kind = as_str(value),
            b"interval" => interval = as_str(value),
            b"intervalNum" => num = as_u64(value).unwrap_or(0),
            b"limit" => limit = as_u64(value).unwrap_or(0),
            b"count" => count = as_u64(value).unwrap_or(0),
            _ => {}
        })?;
        let pair = (clamp_u32(count), clamp_u32(limit));
        match (kind, interval, num) {
            (Some(b"REQUEST_WEIGHT"), Some(b"MINUTE"), 1) => limits.weight_1m = pair,
            (Some(b"ORDERS"), Some(b"SECOND"), 10) => limits.orders_10s = pair,
            (Some(b"ORDERS"), Some(b"DAY"), 1) => limits.orders_1d = pair,
            _ => {}
        }
        Ok(())
    })?;
    Ok(limits)
}

fn decode_event(
    event: &[u8],
    spec: &SymbolSpec,
    session: &SessionTag,
    base_asset: &[u8],
    quote_asset: &[u8],
) -> Result<Message, DecodeError> {
    let mut kind = None;
    let (mut c, mut orig, mut x) = (None, None, None);
    let (mut last_price, mut last_qty, mut cum_qty) = (None, None, None);
    let (mut fee, mut fee_asset, mut maker, mut transact, mut trade) = (None, None, None, 0, 0);
    for_each_field(event, |key, value| match key {
        b"e" => kind = as_str(value),
        b"c" => c = as_str(value),
        b"C" => orig = as_str(value),
        b"x" => x = as_str(value),
        b"L" => last_price = as_str(value),
        b"l" => last_qty = as_str(value),
        b"z" => cum_qty = as_str(value),
        b"n" => fee = as_str(value),
        b"N" => fee_asset = as_str(value),
        b"m" => maker = Some(value == b"true"),
        b"T" => transact = as_u64(value).unwrap_or(0),
        b"t" => trade = as_u64(value).unwrap_or(0),
        _ => {}
    })?;
    if kind == Some(b"eventStreamTerminated") {
        return Ok(Message::StreamTerminated);
    }
    if kind != Some(b"executionReport") {
        return Ok(Message::OtherEvent);
    }
    let exec_type = match x.ok_or(DecodeError::BadField("x"))? {
        b"NEW" => ExecType::New,
        b"TRADE" => ExecType::Trade,
        b"CANCELED" => ExecType::Canceled,
        b"EXPIRED" | b"TRADE_PREVENTION" => ExecType::Expired,
        b"REJECTED" => ExecType::Rejected,
        _ => ExecType::Other,
    };
    let wire_id = match (exec_type, orig) {
        (ExecType::Canceled, Some(o)) if !o.is_empty() => o,
        _ => c.ok_or(DecodeError::BadField("c"))?,
    };
    let mut report = ExecutionReport {
        id: ClientOrderId::parse_wire(wire_id, session),
        exec_type,
        last_price: Price(0),
        last_qty: Qty(0),
        cum_qty: Qty(0),
        fee_quote_atoms: 0,
        fee_unconverted: false,
        is_maker: maker.unwrap_or(false),
        transact_ms: transact,
        trade_id: trade,
    };
    if let Some(z) = cum_qty {
        report.cum_qty = spec.parse_qty(z).map_err(|_| DecodeError::BadField("z"))?;
    }
    if exec_type == ExecType::Trade {
        let price = last_price.ok_or(DecodeError::BadField("L"))?;
        report.last_price = spec
            .parse_price(price)
            .map_err(|_| DecodeError::BadField("L"))?;
        let qty = last_qty.ok_or(DecodeError::BadField("l"))?;
        report.last_qty = spec
            .parse_qty(qty)
            .map_err(|_| DecodeError::BadField("l"))?;
        let fee_atoms = match fee {
            Some(n) => parse_atoms(n).map_err(|_| DecodeError::BadField("n"))?,
            None => 0,
        };
        match fee_asset {
            _ if fee_atoms == 0 => {}
            Some(a) if a == quote_asset => report.fee_quote_atoms = fee_atoms,
            Some(a) if a == base_asset => {
                // base atoms × price (quote atoms per base unit) / atoms per unit.
                let price_atoms = i128::from(report.last_price.0) * i128::from(spec.tick_atoms);
                let quote = i128::from(fee_atoms) * price_atoms / i128::from(ATOMS_PER_UNIT);
                report.fee_quote_atoms = i64::try_from(quote).unwrap_or(i64::MAX);
            }
            _ => report.fee_unconverted = true,
        }
    }
    Ok(Message::Execution(report))
}

// ---------------------------------------------------------------------------------------
// The venue
// ---------------------------------------------------------------------------------------

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
struct InFlight {
    req_id: u64,
    kind: RequestKind,
    sent_ns: u64,
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
    core: Core,
}

/// Everything but the connection (so the connection can call it as its `Handler`).
struct Core {
    encoder: RequestEncoder,
    base_asset: Symbol,
    quote_asset: Symbol,
    rate_headroom: u32,
    wall_offset_ns: i64,
    next_req_id: u64,
    in_flight: [Option<InFlight>; IN_FLIGHT_MAX],
    in_flight_len: usize,
    events: [VenueEvent; EVENT_QUEUE_MAX],
    events_head: usize,
    events_len: usize,
    subscribed: bool,
    want_subscribe: bool,
    /// Ed25519: `session.logon` answered 200 on this connection.
    logged_on: bool,
    limits: RateLimits,
    limits_at_ns: u64,
    backoff_until_ms: u64,
    /// The back-off is for new orders only (-1015, the ORDERS limit): cancels still go.
    backoff_orders_only: bool,
    last_error_code: i32,
    server_skew_ms: Option<i64>,
    open_orders: Option<u32>,
    open_orders_all: Option<u32>,
    balances: Option<Balances>,
    last_heard_ns: u64,
    /// The last refused session set-up (`session.logon` or the subscription): (error
    /// code, when).
    subscribe_refused: Option<(i32, u64)>,
    /// That refusal answered `session.logon` (not the subscription).
    refused_at_logon: bool,
    /// `openOrders.cancelAll` (the trader's) refused with this code, not yet taken.
    cancel_all_refused: Option<i32>,
    net_events: [Option<NetEvent>; NET_EVENTS_MAX],
    net_events_len: usize,
    stats: BinanceStats,
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
    fn wall_ms(&self, now_ns: u64) -> u64 {
        let skew = i128::from(self.server_skew_ms.unwrap_or(0));
        u64::try_from(self.local_wall_ms(now_ns) + skew).unwrap_or(0)
    }

    fn local_wall_ms(&self, now_ns: u64) -> i128 {
        (i128::from(now_ns) + i128::from(self.wall_offset_ns)).max(0) / i128::from(NS_PER_MS)
    }

    /// Whether one more request would come within `rate_headroom` of a limit. A snapshot
    /// older than its window is assumed to have reset.
    fn rate_exhausted(&self, now_ns: u64, new_order: bool) -> bool {
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
    fn oldest_in_flight_ns(&self) -> Option<u64> {
        if self.in_flight_len == 0 {
            return None;
        }
        self.in_flight.iter().flatten().map(|e| e.sent_ns).min()
    }

    fn push(&mut self, event: VenueEvent) {
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

// ---------------------------------------------------------------------------------------
// Private helpers: a bounded, allocation-free JSON walker
// ---------------------------------------------------------------------------------------

fn side_wire(side: Side) -> &'static [u8] {
    match side {
        Side::Buy => b"BUY",
        Side::Sell => b"SELL",
    }
}

fn hex_into(bytes: &[u8], out: &mut [u8; 64]) {
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0x0f)];
    }
}

fn write_u64(value: u64, out: &mut [u8; 20]) -> usize {
    let mut scratch = [0u8; 20];
    let mut pos = 20;
    let mut rest = value;
    loop {
        pos -= 1;
        scratch[pos] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let len = 20 - pos;
    out[..len].copy_from_slice(&scratch[pos..]);
    len
}

fn clamp_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn parse_u64(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 20 {
        return None;
    }
    let mut value: u64 = 0;
    for &b in text {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(value)
}

/// A JSON number (unsigned) as u64.
fn as_u64(value: &[u8]) -> Option<u64> {
    parse_u64(value)
}

/// A JSON integer as i64.
fn as_i64(value: &[u8]) -> Option<i64> {
    match value.strip_prefix(b"-") {
        Some(rest) => parse_u64(rest)
            .and_then(|v| i64::try_from(v).ok())
            .map(|v| -v),
        None => parse_u64(value).and_then(|v| i64::try_from(v).ok()),
    }
}

/// A JSON string's bytes without the quotes; `None` for non-strings and strings with
/// escapes (nothing we read needs them).
fn as_str(value: &[u8]) -> Option<&[u8]> {
    let inner = value.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    (!inner.contains(&b'\\')).then_some(inner)
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// `i` at an opening quote; the index after the closing quote.
fn skip_string(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
    None
}

/// `i` at the start of a value; the index after it.
fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => skip_string(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = skip_string(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t')
            {
                j += 1;
            }
            (j > i).then_some(j)
        }
    }
}

/// Calls `f(key, raw value)` for each member of the object `b` (whitespace around it
/// allowed). Keys are taken raw (ours never hold escapes).
fn for_each_field<'a>(
    b: &'a [u8],
    mut f: impl FnMut(&'a [u8], &'a [u8]),
) -> Result<(), DecodeError> {
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return Err(DecodeError::Malformed);
    }
    i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b'}') {
        return Ok(());
    }
    loop {
        if b.get(i) != Some(&b'"') {
            return Err(DecodeError::Malformed);
        }
        let key_end = skip_string(b, i).ok_or(DecodeError::Malformed)?;
        let key = &b[i + 1..key_end - 1];
        i = skip_ws(b, key_end);
        if b.get(i) != Some(&b':') {
            return Err(DecodeError::Malformed);
        }
        let start = skip_ws(b, i + 1);
        let end = skip_value(b, start).ok_or(DecodeError::Malformed)?;
        f(key, &b[start..end]);
        i = skip_ws(b, end);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b'}') => return Ok(()),
            _ => return Err(DecodeError::Malformed),
        }
    }
}

/// Calls `f(raw element)` for each element of the array `b`.
fn for_each_element<'a>(
    b: &'a [u8],
    mut f: impl FnMut(&'a [u8]) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'[') {
        return Err(DecodeError::Malformed);
    }
    i = skip_ws(b, i + 1);
    if b.get(i) == Some(&b']') {
        return Ok(());
    }
    loop {
        let end = skip_value(b, i).ok_or(DecodeError::Malformed)?;
        f(&b[i..end])?;
        i = skip_ws(b, end);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b']') => return Ok(()),
            _ => return Err(DecodeError::Malformed),
        }
    }
}

/// For a response whose `result` is an array of orders: `f(field)` per order.
fn each_result_order(
    frame: &[u8],
    field: &[u8],
    mut f: impl FnMut(&[u8]),
) -> Result<(), DecodeError> {
    let mut result = None;
    for_each_field(frame, |key, value| {
        if key == b"result" {
            result = Some(value);
        }
    })?;
    let Some(result) = result.filter(|r| r.first() == Some(&b'[')) else {
        return Ok(());
    };
    for_each_element(result, |order| {
        for_each_field(order, |key, value| {
            if key == field {
                if let Some(text) = as_str(value) {
                    f(text);
                }
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::risk::{Exposure, Risk, RiskLimits};

    const KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
    const SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";

    fn spec() -> SymbolSpec {
        SymbolSpec::from_decimals(Symbol::new("BTCUSDT").unwrap(), "0.01", "0.00001", "5").unwrap()
    }

    fn encoder() -> RequestEncoder {
        let creds = Credentials::new(KEY, SECRET).unwrap();
        RequestEncoder::new(creds, spec(), SessionTag::new("t1").unwrap(), 5000).unwrap()
    }

    fn approve(side: Side, price: i64, qty: i64) -> Approved {
        let mut risk = Risk::new(RiskLimits::default(), spec()).unwrap();
        risk.on_market_data(0);
        risk.check(side, Price(price), Qty(qty), &Exposure::default())
            .unwrap()
    }

    /// The exchange's way: parse, sort the params, join (a naive reference).
    fn reference_payload(request: &str) -> (String, String) {
        let v: serde_json::Value = serde_json::from_str(request).unwrap();
        let params = v["params"].as_object().unwrap();
        let mut names: Vec<&String> = params.keys().filter(|k| *k != "signature").collect();
        names.sort();
        let payload = names
            .iter()
            .map(|n| match &params[*n] {
                serde_json::Value::String(s) => format!("{n}={s}"),
                other => format!("{n}={other}"),
            })
            .collect::<Vec<_>>()
            .join("&");
        (payload, params["signature"].as_str().unwrap().to_string())
    }

    fn sign(payload: &str) -> String {
        let mut hex = [0u8; 64];
        Credentials::new(KEY, SECRET)
            .unwrap()
            .sign_hex(payload.as_bytes(), &mut hex);
        String::from_utf8(hex.to_vec()).unwrap()
    }

    #[test]
    fn documented_rest_test_vector() {
        let payload = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
        assert_eq!(
            sign(payload),
            "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
        );
    }

    #[test]
    fn order_place_is_sorted_and_signed_over_the_sorted_payload() {
        let enc = encoder();
        let mut buf = [0u8; REQUEST_BYTES_MAX];
        let order = approve(Side::Buy, 6_183_763, 100);
        let n = enc
            .encode_place(7, ClientOrderId(42), &order, 1_723_161_255_343, &mut buf)
            .unwrap();
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(text.starts_with("{\"id\":\"7\",\"method\":\"order.place\",\"params\":{"));
        let (payload, signature) = reference_payload(text);
        assert_eq!(
            payload,
            format!(
                "apiKey={KEY}&newClientOrderId=mmt1-42&newOrderRespType=ACK&price=61837.63\
                 &quantity=0.00100&recvWindow=5000&side=BUY&symbol=BTCUSDT\
                 &timestamp=1723161255343&type=LIMIT_MAKER"
            )
        );
        assert_eq!(signature, sign(&payload));
    }

    #[test]
    fn every_request_signs_its_sorted_payload() {
        let enc = encoder();
        let mut buf = [0u8; REQUEST_BYTES_MAX];
        let order = approve(Side::Sell, 6_183_800, 50);
        let actions = [
            Action::Cancel {
                id: ClientOrderId(3),
            },
            Action::CancelReplace {
                cancel_id: ClientOrderId(3),
                new_id: ClientOrderId(4),
                order,
            },
            Action::CancelAll,
        ];
        for action in &actions {
            let n = enc.encode_action(9, action, 1_000, &mut buf).unwrap();
            let (payload, signature) = reference_payload(std::str::from_utf8(&buf[..n]).unwrap());
            assert_eq!(signature, sign(&payload), "{action:?}");
        }
        let n = enc.encode_action(9, &actions[1], 1_000, &mut buf).unwrap();
        let (payload, _) = reference_payload(std::str::from_utf8(&buf[..n]).unwrap());
        assert!(payload.contains(
            "cancelOrigClientOrderId=mmt1-3&cancelReplaceMode=STOP_ON_FAILURE&newClientOrderId=mmt1-4"
        ));
        assert!(payload.contains("&side=SELL&"));
        type Encode = fn(&RequestEncoder, &mut [u8]) -> Option<usize>;
        let encoders: [Encode; 4] = [
            |e, b| e.encode_open_orders(1, 1_000, b),
            |e, b| e.encode_subscribe(1, 1_000, b),
            |e, b| e.encode_account_status(1, 1_000, b),
            |e, b| e.encode_cancel_all(1, 1_000, b),
        ];
        for encode in encoders {
            let n = encode(&enc, &mut buf).unwrap();
            let (payload, signature) = reference_payload(std::str::from_utf8(&buf[..n]).unwrap());
            assert_eq!(signature, sign(&payload));
        }
        // Too small a buffer is refused, never overrun.
        let mut small = [0u8; 64];
        assert_eq!(enc.encode_action(1, &actions[0], 1, &mut small), None);
    }

    #[test]
    fn credentials_are_validated_and_never_printed() {
        assert_eq!(
            Credentials::new("", "s").unwrap_err(),
            BinanceError::BadApiKey
        );
        assert_eq!(
            Credentials::new("a\"b", "s").unwrap_err(),
            BinanceError::BadApiKey
        );
        assert_eq!(
            Credentials::new("k", "").unwrap_err(),
            BinanceError::BadApiSecret
        );
        let shown = format!("{:?}", Credentials::new(KEY, SECRET).unwrap());
        assert!(!shown.contains(SECRET) && !shown.contains(KEY), "{shown}");
    }

    /// RFC 8032 §7.1 TEST 2's secret key as PKCS#8 v1 PEM (as `openssl genpkey -algorithm
    /// ed25519` writes keys); its public key is 3d4017c3…f4660c.
    const ED25519_PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VwBCIEIEzNCJso/5banbbDRuwRTg9bijGfNaumJNqM9u1PuKb7\n\
        -----END PRIVATE KEY-----\n";
    const ED25519_PUBLIC: &str = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";

    fn unhex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    fn ed25519_encoder() -> RequestEncoder {
        let creds = Credentials::ed25519_from_pem("edKey", ED25519_PEM.as_bytes()).unwrap();
        RequestEncoder::new(creds, spec(), SessionTag::new("t1").unwrap(), 5000).unwrap()
    }

    #[test]
    fn ed25519_key_signs_the_rfc8032_vector() {
        let creds = Credentials::ed25519_from_pem("edKey", ED25519_PEM.as_bytes()).unwrap();
        assert_eq!(creds.key_type(), KeyType::Ed25519);
        let mut b64 = [0u8; ED25519_SIGNATURE_B64_LEN];
        assert!(creds.sign_ed25519_base64(&[0x72], &mut b64));
        let expected = unhex(
            "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da\
             085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
        );
        assert_eq!(BASE64.decode(b64).unwrap(), expected);
        // An Ed25519 key makes no HMAC, an HMAC key no Ed25519 signature.
        assert!(!creds.sign_hex(b"x", &mut [0u8; 64]));
        assert!(!Credentials::new(KEY, SECRET)
            .unwrap()
            .sign_ed25519_base64(b"x", &mut b64));
        let shown = format!("{creds:?}");
        assert!(
            !shown.contains("MC4CAQ") && shown.contains("Ed25519"),
            "{shown}"
        );
    }

    #[test]
    fn bad_private_keys_are_refused_with_a_reason() {
        let refused = |pem: &str| Credentials::ed25519_from_pem("k", pem.as_bytes()).unwrap_err();
        assert!(matches!(
            refused("no pem here"),
            BinanceError::BadPrivateKey(_)
        ));
        let encrypted = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMC4CAQ==\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let why = refused(encrypted).to_string();
        assert!(why.contains("encrypted"), "{why}");
        // A PKCS#8 block that is not Ed25519 (an EC P-256 key from rcgen).
        let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let why = refused(&ec.serialize_pem()).to_string();
        assert!(why.contains("not an Ed25519 private key"), "{why}");
        assert_eq!(
            Credentials::ed25519_from_pem("", ED25519_PEM.as_bytes()).unwrap_err(),
            BinanceError::BadApiKey
        );
    }

    #[test]
    fn ed25519_logon_is_signed_and_later_requests_carry_no_key_or_signature() {
        let enc = ed25519_encoder();
        let mut buf = [0u8; REQUEST_BYTES_MAX];
        let n = enc.encode_logon(5, 1_723_161_255_343, &mut buf).unwrap();
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(text.starts_with("{\"id\":\"5\",\"method\":\"session.logon\",\"params\":{"));
        let (payload, signature) = reference_payload(text);
        assert_eq!(
            payload,
            "apiKey=edKey&recvWindow=5000&timestamp=1723161255343"
        );
        let public = unhex(ED25519_PUBLIC);
        let key = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &public);
        let sig = BASE64.decode(&signature).unwrap();
        key.verify(payload.as_bytes(), &sig).unwrap();
        assert!(key
            .verify(b"apiKey=edKey&recvWindow=5000&timestamp=1", &sig)
            .is_err());

        // After the logon: the same parameters as HMAC requests, minus apiKey and signature.
        let order = approve(Side::Buy, 6_183_763, 100);
        let n = enc
            .encode_place(7, ClientOrderId(42), &order, 1_723_161_255_343, &mut buf)
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap();
        let params = v["params"].as_object().unwrap();
        assert!(!params.contains_key("apiKey") && !params.contains_key("signature"));
        assert_eq!(params["timestamp"], 1_723_161_255_343u64);
        assert_eq!(params["type"], "LIMIT_MAKER");
        for action in [
            Action::Cancel {
                id: ClientOrderId(3),
            },
            Action::CancelAll,
        ] {
            let n = enc.encode_action(9, &action, 1_000, &mut buf).unwrap();
            let v: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap();
            assert!(v["params"].get("signature").is_none(), "{v}");
            assert_eq!(v["params"]["timestamp"], 1_000);
        }
        let n = enc.encode_subscribe(2, 1_000, &mut buf).unwrap();
        assert_eq!(
            &buf[..n],
            b"{\"id\":\"2\",\"method\":\"userDataStream.subscribe\"}"
        );
        let n = enc.encode_session_status(3, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"{\"id\":\"3\",\"method\":\"session.status\"}");
        let n = enc.encode_session_logout(4, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"{\"id\":\"4\",\"method\":\"session.logout\"}");
        // An HMAC encoder has no logon.
        assert_eq!(encoder().encode_logon(1, 1, &mut buf), None);
    }

    fn dec(frame: &str) -> Result<Message, DecodeError> {
        decode(
            frame.as_bytes(),
            &spec(),
            &SessionTag::new("t1").unwrap(),
            b"BTC",
            b"USDT",
        )
    }

    #[test]
    fn responses_decode_with_rate_limits_and_retry_after() {
        let ok = r#"{"id":"12","status":200,"result":{"symbol":"BTCUSDT","orderId":5,"clientOrderId":"mmt1-1","transactTime":1723161255343},"rateLimits":[{"rateLimitType":"ORDERS","interval":"SECOND","intervalNum":10,"limit":100,"count":3},{"rateLimitType":"ORDERS","interval":"DAY","intervalNum":1,"limit":200000,"count":9},{"rateLimitType":"REQUEST_WEIGHT","interval":"MINUTE","intervalNum":1,"limit":6000,"count":17}]}"#;
        let Message::Response(r) = dec(ok).unwrap() else {
            panic!()
        };
        assert_eq!(
            (r.req_id, r.status, r.code, r.transact_ms),
            (Some(12), 200, 0, 1_723_161_255_343)
        );
        assert_eq!(
            r.rate_limits,
            Some(RateLimits {
                weight_1m: (17, 6000),
                orders_10s: (3, 100),
                orders_1d: (9, 200_000)
            })
        );
        let err = r#"{"id":"13","status":400,"error":{"code":-2010,"msg":"Order would immediately match and take."},"rateLimits":[]}"#;
        let Message::Response(r) = dec(err).unwrap() else {
            panic!()
        };
        assert_eq!((r.status, r.code), (400, -2010));
        let limited = r#"{"id":"14","status":429,"error":{"code":-1015,"msg":"Too many new orders","data":{"serverTime":1,"retryAfter":1723161265000}}}"#;
        let Message::Response(r) = dec(limited).unwrap() else {
            panic!()
        };
        assert_eq!(
            (r.status, r.code, r.retry_after_ms),
            (429, -1015, Some(1_723_161_265_000))
        );
        let cr = r#"{"id":"15","status":400,"error":{"code":-2022,"msg":"Order cancel-replace failed.","data":{"cancelResult":"FAILURE","newOrderResult":"NOT_ATTEMPTED","cancelResponse":{"code":-2011,"msg":"Unknown order sent."},"newOrderResponse":null}}}"#;
        let Message::Response(r) = dec(cr).unwrap() else {
            panic!()
        };
        assert_eq!(
            (r.code, r.cancel_code, r.new_order_code, r.cancel_succeeded),
            (-2022, -2011, 0, false)
        );
        let null_id =
            r#"{"id":null,"status":400,"error":{"code":-1135,"msg":"Invalid JSON Request"}}"#;
        let Message::Response(r) = dec(null_id).unwrap() else {
            panic!()
        };
        assert_eq!(r.req_id, None);
    }

    #[test]
    fn execution_reports_become_venue_events() {
        let trade = r#"{"event":{"e":"executionReport","E":1,"s":"BTCUSDT","c":"mmt1-42","S":"BUY","o":"LIMIT_MAKER","f":"GTC","q":"0.00100000","p":"61837.63000000","C":"","x":"TRADE","X":"PARTIALLY_FILLED","r":"NONE","i":7,"l":"0.00040000","z":"0.00060000","L":"61837.63000000","n":"0.02473505","N":"USDT","T":1723161255343,"t":99,"m":true,"O":1,"Z":"37.1","Y":"24.7","Q":"0"}}"#;
        let Message::Execution(report) = dec(trade).unwrap() else {
            panic!()
        };
        assert_eq!(
            report.to_event(),
            Some(VenueEvent::Fill {
                id: ClientOrderId(42),
                price: Price(6_183_763),
                qty: Qty(40),
                cum_qty: Qty(60),
                fee_quote_atoms: 2_473_505,
                is_maker: true,
                exch_ts_ms: 1_723_161_255_343,
                trade_id: 99,
            })
        );
        let canceled = r#"{"event":{"e":"executionReport","c":"web_x","C":"mmt1-42","x":"CANCELED","X":"CANCELED","l":"0","z":"0","L":"0","n":"0","N":null,"T":5,"t":-1,"m":false}}"#;
        let Message::Execution(report) = dec(canceled).unwrap() else {
            panic!()
        };
        assert_eq!(
            report.to_event(),
            Some(VenueEvent::Canceled {
                id: ClientOrderId(42)
            })
        );
        let new = r#"{"event":{"e":"executionReport","c":"mmt1-43","C":"","x":"NEW","z":"0.00000000","T":6}}"#;
        let Message::Execution(report) = dec(new).unwrap() else {
            panic!()
        };
        assert_eq!(
            report.to_event(),
            Some(VenueEvent::Accepted {
                id: ClientOrderId(43),
                exch_ts_ms: 6
            })
        );
        let foreign =
            r#"{"event":{"e":"executionReport","c":"other-1","C":"","x":"NEW","z":"0","T":6}}"#;
        let Message::Execution(report) = dec(foreign).unwrap() else {
            panic!()
        };
        assert_eq!(report.to_event(), None);
        let base_fee = r#"{"event":{"e":"executionReport","c":"mmt1-42","x":"TRADE","l":"0.00100000","z":"0.00100000","L":"60000.00000000","n":"0.00000100","N":"BTC","T":1,"t":2,"m":true}}"#;
        let Message::Execution(report) = dec(base_fee).unwrap() else {
            panic!()
        };
        // 0.000001 BTC × 60000 = 0.06 USDT.
        assert_eq!(report.fee_quote_atoms, 6_000_000);
        assert_eq!(
            dec(r#"{"event":{"e":"outboundAccountPosition"}}"#),
            Ok(Message::OtherEvent)
        );
    }

    #[test]
    fn broken_frames_are_errors_not_panics() {
        for frame in [
            "", "{", "[]", "{\"id\":", "{\"status\":}", "{\"status\":200", "{\"a\":\"\\",
            "{\"event\":{\"e\":\"executionReport\"}}", "{\"status\":400}", "{\"x\":1}",
            "{\"event\":{\"e\":\"executionReport\",\"c\":\"mmt1-1\",\"x\":\"TRADE\",\"L\":\"1.001\"}}",
            "{\"status\":200,\"rateLimits\":[{]}",
        ] {
            assert!(dec(frame).is_err(), "{frame}");
        }
        // Every prefix of a real frame: an error or a value, never a panic.
        let full = r#"{"id":"12","status":200,"result":[{"a":"}"}],"rateLimits":[{"rateLimitType":"ORDERS","interval":"SECOND","intervalNum":10,"limit":100,"count":3}]}"#;
        for end in 0..full.len() {
            let _ = dec(&full[..end]);
        }
        assert!(dec(full).is_ok());
    }

    // -- the venue's bookkeeping, fed frames directly (no connection) --------------------

    fn offline_venue() -> BinanceVenue {
        let cfg = BinanceConfig {
            conn: ConnConfig::new("ws://127.0.0.1:1/ws-api/v3", crate::net::TlsRoots::WebPki),
            spec: spec(),
            base_asset: Symbol::new("BTC").unwrap(),
            quote_asset: Symbol::new("USDT").unwrap(),
            session: SessionTag::new("t1").unwrap(),
            recv_window_ms: 5000,
            rate_headroom: 5,
        };
        BinanceVenue::new(cfg, Credentials::new(KEY, SECRET).unwrap(), Token(1), 0).unwrap()
    }

    fn track(venue: &mut BinanceVenue, req_id: u64, kind: RequestKind) {
        let slot = (req_id % IN_FLIGHT_MAX as u64) as usize;
        venue.core.in_flight[slot] = Some(InFlight {
            req_id,
            kind,
            sent_ns: 0,
        });
        venue.core.in_flight_len += 1;
    }

    fn feed(venue: &mut BinanceVenue, frame: &str, now_ns: u64) -> Vec<VenueEvent> {
        venue
            .core
            .on_message(MessageKind::Text, frame.as_bytes(), now_ns);
        let mut out = Vec::new();
        venue.poll_events(now_ns, &mut |e| out.push(e));
        out
    }

    #[test]
    fn account_status_gives_the_symbols_balances_and_open_orders_count_everyone() {
        let enc = encoder();
        let mut buf = [0u8; REQUEST_BYTES_MAX];
        let n = enc.encode_account_status(5, 1_000, &mut buf).unwrap();
        let (payload, _) = reference_payload(std::str::from_utf8(&buf[..n]).unwrap());
        assert_eq!(
            payload,
            format!("apiKey={KEY}&omitZeroBalances=true&recvWindow=5000&timestamp=1000")
        );

        let mut venue = offline_venue();
        // web-socket-api.md "Account information", trimmed; BNB is ignored.
        track(&mut venue, 5, RequestKind::Account);
        let frame = r#"{"id":"5","status":200,"result":{"makerCommission":15,"takerCommission":15,"canTrade":true,"accountType":"SPOT","balances":[{"asset":"BNB","free":"0.10000000","locked":"0.00000000"},{"asset":"BTC","free":"0.99000000","locked":"0.01000000"},{"asset":"USDT","free":"99000.00000000","locked":"617.76000000"}],"permissions":["SPOT"],"uid":354937868},"rateLimits":[{"rateLimitType":"REQUEST_WEIGHT","interval":"MINUTE","intervalNum":1,"limit":6000,"count":20}]}"#;
        assert!(feed(&mut venue, frame, 1).is_empty());
        assert_eq!(
            venue.balances(),
            Some(Balances {
                base_atoms: 100_000_000,
                base_locked_atoms: 1_000_000,
                quote_atoms: 9_961_776_000_000,
                quote_locked_atoms: 61_776_000_000,
            })
        );
        // omitZeroBalances: an absent asset is 0.
        track(&mut venue, 6, RequestKind::Account);
        let frame = r#"{"id":"6","status":200,"result":{"balances":[{"asset":"USDT","free":"5.00000000","locked":"0.00000000"}]}}"#;
        feed(&mut venue, frame, 2);
        assert_eq!(venue.balances().map(|b| b.base_atoms), Some(0));
        // A broken amount is no answer at all (and counted), never a zero balance.
        track(&mut venue, 7, RequestKind::Account);
        let frame = r#"{"id":"7","status":200,"result":{"balances":[{"asset":"BTC","free":"x","locked":"0"}]}}"#;
        feed(&mut venue, frame, 3);
        assert_eq!(venue.balances(), None);
        assert_eq!(venue.stats().decode_errors, 1);

        // openOrders.status: ours and everyone's.
        track(&mut venue, 8, RequestKind::OpenOrders);
        let frame = r#"{"id":"8","status":200,"result":[{"symbol":"BTCUSDT","clientOrderId":"mmt1-4"},{"symbol":"BTCUSDT","clientOrderId":"web_x1"},{"symbol":"BTCUSDT","clientOrderId":"mmold-9"}]}"#;
        feed(&mut venue, frame, 4);
        assert_eq!(
            (venue.open_orders(), venue.open_orders_all()),
            (Some(1), Some(3))
        );
        assert_eq!(venue.last_heard_ns(), 4);
    }

    #[test]
    fn refusals_are_kept_for_the_owner_and_a_terminated_stream_resubscribes() {
        let mut venue = offline_venue();
        // A refused subscription: the code is kept (the venue restarts the connection
        // after SUBSCRIBE_RETRY_NS when polled).
        track(&mut venue, 1, RequestKind::Subscribe);
        let refused = r#"{"id":"1","status":400,"error":{"code":-1022,"msg":"Signature for this request is not valid."}}"#;
        feed(&mut venue, refused, 5);
        assert_eq!(venue.subscribe_refused(), Some(-1022));
        assert!(!venue.core.subscribed);
        track(&mut venue, 2, RequestKind::Subscribe);
        feed(
            &mut venue,
            r#"{"id":"2","status":200,"result":{"subscriptionId":0}}"#,
            6,
        );
        assert_eq!(venue.subscribe_refused(), None);
        assert!(venue.core.subscribed);
        // The trader's cancel-all refused: taken once; -2011 (nothing open) is no refusal.
        track(&mut venue, 3, RequestKind::CancelAll);
        feed(
            &mut venue,
            r#"{"id":"3","status":400,"error":{"code":-2011,"msg":"Unknown order sent."}}"#,
            7,
        );
        assert_eq!(venue.take_cancel_all_refused(), None);
        track(&mut venue, 4, RequestKind::CancelAll);
        feed(
            &mut venue,
            r#"{"id":"4","status":503,"error":{"code":-1001,"msg":"Internal error"}}"#,
            8,
        );
        assert_eq!(venue.take_cancel_all_refused(), Some(-1001));
        assert_eq!(venue.take_cancel_all_refused(), None);
        // eventStreamTerminated: not subscribed any more; subscribe again.
        feed(
            &mut venue,
            r#"{"subscriptionId":0,"event":{"e":"eventStreamTerminated","E":1728973001334}}"#,
            9,
        );
        assert!(!venue.core.subscribed);
        assert!(venue.core.want_subscribe);
        // A result that is not a list is no answer, never "0 open".
        track(&mut venue, 5, RequestKind::OpenOrders);
        feed(
            &mut venue,
            r#"{"id":"5","status":200,"result":{"orders":[]}}"#,
            10,
        );
        assert_eq!(venue.open_orders(), None);
        // During a back-off nothing is sent, not even the reconciliation's requests.
        venue.core.backoff_until_ms = u64::MAX;
        venue.core.backoff_orders_only = false;
        assert_eq!(venue.request_account(11), Err(SubmitError::Disconnected));
    }

    #[test]
    fn cancel_replace_outcomes_map_to_both_orders() {
        let (old, new) = (ClientOrderId(3), ClientOrderId(4));
        let kind = RequestKind::CancelReplace {
            cancel_id: old,
            new_id: new,
        };
        let cases: [(&str, [VenueEvent; 2]); 5] = [
            (
                r#"{"id":"1","status":200,"result":{"cancelResult":"SUCCESS","newOrderResult":"SUCCESS"}}"#,
                [
                    VenueEvent::Canceled { id: old },
                    VenueEvent::Accepted {
                        id: new,
                        exch_ts_ms: 0,
                    },
                ],
            ),
            (
                r#"{"id":"1","status":409,"error":{"code":-2021,"msg":"x","data":{"cancelResult":"SUCCESS","newOrderResult":"FAILURE","cancelResponse":{"orderId":1},"newOrderResponse":{"code":-2010,"msg":"y"}}}}"#,
                [
                    VenueEvent::Canceled { id: old },
                    VenueEvent::Rejected {
                        id: new,
                        code: -2010,
                    },
                ],
            ),
            (
                r#"{"id":"1","status":409,"error":{"code":-2021,"msg":"x","data":{"cancelResult":"FAILURE","newOrderResult":"SUCCESS","cancelResponse":{"code":-2011,"msg":"y"},"newOrderResponse":{"orderId":2}}}}"#,
                [
                    VenueEvent::CancelRejected {
                        id: old,
                        code: -2011,
                    },
                    VenueEvent::Accepted {
                        id: new,
                        exch_ts_ms: 0,
                    },
                ],
            ),
            (
                r#"{"id":"1","status":400,"error":{"code":-2022,"msg":"x","data":{"cancelResult":"FAILURE","newOrderResult":"NOT_ATTEMPTED","cancelResponse":{"code":-2011,"msg":"y"},"newOrderResponse":null}}}"#,
                [
                    VenueEvent::CancelRejected {
                        id: old,
                        code: -2011,
                    },
                    VenueEvent::Rejected {
                        id: new,
                        code: -2022,
                    },
                ],
            ),
            (
                r#"{"id":"1","status":400,"error":{"code":-1013,"msg":"Filter failure: PRICE_FILTER"}}"#,
                [
                    VenueEvent::CancelRejected {
                        id: old,
                        code: -1013,
                    },
                    VenueEvent::Rejected {
                        id: new,
                        code: -1013,
                    },
                ],
            ),
        ];
        for (frame, expected) in cases {
            let mut venue = offline_venue();
            track(&mut venue, 1, kind);
            assert_eq!(feed(&mut venue, frame, 5), expected.to_vec(), "{frame}");
            assert_eq!(venue.in_flight(), 0);
        }
    }

    #[test]
    fn a_429_backs_off_until_retry_after() {
        let mut venue = offline_venue();
        // Wall clock = now + 1_000 s.
        venue.set_wall_offset_ns(1_000_000 * NS_PER_MS as i64);
        let now_ns = 5 * NS_PER_MS;
        track(&mut venue, 2, RequestKind::Place(ClientOrderId(8)));
        let frame = r#"{"id":"2","status":429,"error":{"code":-1015,"msg":"Too many new orders","data":{"serverTime":1,"retryAfter":1000500}}}"#;
        let events = feed(&mut venue, frame, now_ns);
        assert_eq!(
            events,
            vec![VenueEvent::Rejected {
                id: ClientOrderId(8),
                code: -1015
            }]
        );
        assert!(venue.is_backing_off(now_ns));
        assert!(venue.is_backing_off(now_ns + 494 * NS_PER_MS));
        assert!(!venue.is_backing_off(now_ns + 495 * NS_PER_MS));
        assert_eq!(venue.stats().rate_limited, 1);
        assert_eq!(venue.last_error_code(), -1015);
        assert!(
            venue.core.backoff_orders_only,
            "-1015 still lets cancels go"
        );
        // A 418 without retryAfter backs off for the default.
        track(&mut venue, 3, RequestKind::CancelAll);
        let banned = r#"{"id":"3","status":418,"error":{"code":-1003,"msg":"banned"}}"#;
        let later = 10_000 * NS_PER_MS;
        assert!(feed(&mut venue, banned, later).is_empty());
        assert!(venue.is_backing_off(later + (BACKOFF_MS_DEFAULT - 1) * NS_PER_MS));
        assert!(!venue.is_backing_off(later + BACKOFF_MS_DEFAULT * NS_PER_MS));
        assert!(!venue.core.backoff_orders_only, "a ban stops everything");
    }

    #[test]
    fn rate_limit_counts_throttle_before_the_exchange_would() {
        let mut venue = offline_venue();
        track(&mut venue, 4, RequestKind::Place(ClientOrderId(1)));
        let frame = r#"{"id":"4","status":200,"result":{},"rateLimits":[{"rateLimitType":"ORDERS","interval":"SECOND","intervalNum":10,"limit":100,"count":95},{"rateLimitType":"ORDERS","interval":"DAY","intervalNum":1,"limit":200000,"count":95},{"rateLimitType":"REQUEST_WEIGHT","interval":"MINUTE","intervalNum":1,"limit":6000,"count":100}]}"#;
        let t = 7 * NS_PER_MS;
        feed(&mut venue, frame, t);
        // 95 + headroom 5 reaches 100: no new orders, cancels still go.
        assert!(venue.core.rate_exhausted(t, true));
        assert!(!venue.core.rate_exhausted(t, false));
        // The 10 s window has passed since the snapshot: assumed reset.
        assert!(!venue.core.rate_exhausted(t + 10_000 * NS_PER_MS, true));
        // A weight-only array (a cancel's answer) keeps the order counts.
        track(&mut venue, 5, RequestKind::Cancel(ClientOrderId(1)));
        let cancel = r#"{"id":"5","status":200,"result":{},"rateLimits":[{"rateLimitType":"REQUEST_WEIGHT","interval":"MINUTE","intervalNum":1,"limit":6000,"count":5996}]}"#;
        feed(&mut venue, cancel, t);
        assert_eq!(venue.rate_limits().orders_10s, (95, 100));
        assert!(venue.core.rate_exhausted(t, true), "weight near its limit");
        assert!(
            !venue.core.rate_exhausted(t, false),
            "cancels may use the headroom"
        );
        track(&mut venue, 6, RequestKind::Cancel(ClientOrderId(1)));
        let full = r#"{"id":"6","status":200,"result":{},"rateLimits":[{"rateLimitType":"REQUEST_WEIGHT","interval":"MINUTE","intervalNum":1,"limit":6000,"count":6000}]}"#;
        feed(&mut venue, full, t);
        assert!(
            venue.core.rate_exhausted(t, false),
            "not beyond the limit itself"
        );
    }

    #[test]
    fn server_time_corrects_request_timestamps() {
        let mut venue = offline_venue();
        venue.set_wall_offset_ns(1_000_000 * NS_PER_MS as i64);
        track(&mut venue, 6, RequestKind::Time);
        // Sent at 0, answered at 10 ms: the server read 1_000_005 + 2_000 at 5 ms.
        let frame = r#"{"id":"6","status":200,"result":{"serverTime":1002005}}"#;
        assert!(feed(&mut venue, frame, 10 * NS_PER_MS).is_empty());
        assert_eq!(venue.server_skew_ms(), Some(2_000));
        assert_eq!(venue.core.wall_ms(10 * NS_PER_MS), 1_002_010);
        let mut buf = [0u8; 64];
        let n = venue.core.encoder.encode_time(6, &mut buf).unwrap();
        assert_eq!(&buf[..n], br#"{"id":"6","method":"time"}"#);
        assert_eq!(venue.core.encoder.encode_time(6, &mut buf[..10]), None);
    }

    #[test]
    fn unmatched_and_late_responses_are_counted_not_applied() {
        let mut venue = offline_venue();
        let frame = r#"{"id":"9","status":200,"result":{}}"#;
        assert!(feed(&mut venue, frame, 1).is_empty());
        // The same slot, an older request id: not ours any more.
        track(&mut venue, 9 + IN_FLIGHT_MAX as u64, RequestKind::CancelAll);
        assert!(feed(&mut venue, frame, 1).is_empty());
        assert_eq!(venue.in_flight(), 1);
        assert_eq!(venue.stats().responses_unmatched, 2);
        assert_eq!(venue.core.oldest_in_flight_ns(), Some(0));
        let garbage = feed(&mut venue, "{\"id\":", 1);
        assert!(garbage.is_empty());
        assert_eq!(venue.stats().decode_errors, 1);
    }

    #[test]
    fn cancel_all_and_open_orders_answers_name_our_orders_only() {
        let mut venue = offline_venue();
        track(&mut venue, 1, RequestKind::CancelAll);
        let frame = r#"{"id":"1","status":200,"result":[{"symbol":"BTCUSDT","origClientOrderId":"mmt1-5","clientOrderId":"x1"},{"symbol":"BTCUSDT","origClientOrderId":"web_1","clientOrderId":"x2"},{"symbol":"BTCUSDT","origClientOrderId":"mmt1-7","clientOrderId":"x3"}]}"#;
        assert_eq!(
            feed(&mut venue, frame, 1),
            vec![
                VenueEvent::Canceled {
                    id: ClientOrderId(5)
                },
                VenueEvent::Canceled {
                    id: ClientOrderId(7)
                }
            ]
        );
        track(&mut venue, 2, RequestKind::OpenOrders);
        let frame = r#"{"id":"2","status":200,"result":[{"clientOrderId":"mmt1-8"},{"clientOrderId":"mmzz-9"},{"clientOrderId":"mmt1-10"}]}"#;
        assert!(feed(&mut venue, frame, 1).is_empty());
        assert_eq!(venue.open_orders(), Some(2));
    }
}
