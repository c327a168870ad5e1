//! Request encoding: `RequestEncoder` turns actions (place, cancel, cancel-replace, cancel
//! all, logon, subscribe, status queries) into signed JSON requests in the caller's buffer,
//! parameters in name order, prices and quantities printed from integer ticks/lots.
//!
//! Hot path. Never allocates, reads the clock (timestamps come in) or panics; a request that
//! does not fit its buffer is refused, not truncated.

use super::*;

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

    /// `userDataStream.unsubscribe` without parameters: every subscription of this
    /// connection ends (a make-before-break rotation retires the old connection with it).
    pub fn encode_unsubscribe(&self, req_id: u64, out: &mut [u8]) -> Option<usize> {
        encode_bare(req_id, b"userDataStream.unsubscribe", out)
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
