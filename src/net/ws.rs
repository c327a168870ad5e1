//! WebSocket client over our TLS stream (or plain TCP for tests): tungstenite for the
//! upgrade and for reading, our own masked frames for sending.
//!
//! Owns: `Transport` (TLS or plain, one `Read + Write` with a fixed send buffer),
//! `WsHandshake` (tungstenite's client handshake, non-blocking), `WsSession` (an open
//! WebSocket) and `MaskGen` (masking keys).
//!
//! Reading: tungstenite's `read()` of a text/binary frame is a view into its reused read
//! buffer (0 allocations); the session hands it to a callback as `&[u8]` and drops it
//! before the next read. `read_buffer_size` is kept small (4–64 KiB, default 16 KiB)
//! because tungstenite zero-fills that many bytes before every socket read.
//!
//! Sending: tungstenite's `send` needs an owned payload (1 allocation per message), so
//! frames are written here into a preallocated buffer (RFC 6455 §5.2 header, §5.3 mask)
//! and go straight into the transport's send buffer. Masking keys come from a xorshift
//! generator seeded once per connection from the OS RNG: RFC 6455 §10.3 asks for
//! unpredictable keys so that script running in a browser cannot make its bytes look like
//! a different protocol to a transparent proxy. We are no browser, we send only bytes we
//! composed, and over `wss://` no intermediary sees the frames at all, so masking is not a
//! security boundary here; the server only requires that frames are masked.
//!
//! Pings: tungstenite queues the pong for every ping it reads (with the same payload) and
//! offers no way to turn that off, so the session relies on it and flushes right after a
//! ping instead of writing a second pong. Flushing at once matters for allocation too: the
//! queued pong holds a reference into the read buffer, and a read buffer still shared at
//! the next read would be reallocated. The pong is written by tungstenite into its own
//! output `Vec` (grown once, then reused) and from there into our transport; the
//! allocation test measures the whole ping → pong path.
//!
//! Ordering invariant: tungstenite's output buffer is always flushed into the transport
//! before we write a frame of our own, so our frames never land inside one of its frames.
//!
//! Never: allocates per message after the upgrade (except a message larger than the read
//! buffer, which grows it once), blocks, or reads the clock.

use std::io::{self, Read, Write};

use mio::net::TcpStream;
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::ClientHandshake;
use tungstenite::handshake::{HandshakeError, MidHandshake};
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tungstenite::{Message, WebSocket};

use crate::net::record::{OVERHEAD, PLAINTEXT_MAX};
use crate::net::stamp::{ReadStamps, RxClock, RxStamps};
use crate::net::tls::{TlsStats, TlsStream, KEY_UPDATE_RECORD_BYTES, TX_BUF_BYTES};
use crate::net::url::Url;
use crate::net::NetError;

/// Largest WebSocket frame header (2 + 8 length + 4 mask), RFC 6455 §5.2.
pub const FRAME_HEADER_MAX: usize = 14;
/// Smallest and largest `read_buffer_size` accepted.
pub const READ_BUFFER_BYTES_MIN: usize = 4 * 1024;
/// See `READ_BUFFER_BYTES_MIN`.
pub const READ_BUFFER_BYTES_MAX: usize = 64 * 1024;
/// Default read buffer: holds any bookTicker/trade message and most depth diffs.
pub const READ_BUFFER_BYTES_DEFAULT: usize = 16 * 1024;
/// Default largest frame payload we send (orders are < 1 KiB).
pub const SEND_FRAME_BYTES_DEFAULT: usize = 16 * 1024;

/// WebSocket opcodes (RFC 6455 §5.2).
pub const OP_TEXT: u8 = 0x1;
/// Binary frame.
pub const OP_BINARY: u8 = 0x2;
/// Close frame.
pub const OP_CLOSE: u8 = 0x8;
/// Ping frame.
pub const OP_PING: u8 = 0x9;
/// Pong frame.
pub const OP_PONG: u8 = 0xA;

/// The byte stream under the WebSocket.
pub enum Transport {
    /// TLS 1.3 with our record layer.
    Tls(Box<TlsStream>),
    /// Plain TCP (tests and the local simulator only).
    Plain(Box<PlainStream>),
}

impl Transport {
    /// The socket, for (de)registration with mio.
    pub fn socket_mut(&mut self) -> &mut TcpStream {
        match self {
            Transport::Tls(t) => t.socket_mut(),
            Transport::Plain(p) => &mut p.sock,
        }
    }

    /// The precise error behind the last `io::Error` this transport returned.
    pub fn fault(&self) -> Option<NetError> {
        match self {
            Transport::Tls(t) => t.fault(),
            Transport::Plain(p) => p.fault,
        }
    }

    /// Whether the peer ended its side cleanly (TLS close_notify; plain: TCP EOF).
    pub fn peer_closed(&self) -> bool {
        match self {
            Transport::Tls(t) => t.peer_closed(),
            Transport::Plain(p) => p.eof,
        }
    }

    /// Bytes waiting for the socket.
    pub fn has_pending_tx(&self) -> bool {
        match self {
            Transport::Tls(t) => t.has_pending_tx(),
            Transport::Plain(p) => p.tx_start < p.tx_end,
        }
    }

    /// Stamps receive times with `clock` from now on (`None`: stamps nothing, reads no
    /// clock). See `net::stamp`.
    pub fn set_rx_clock(&mut self, clock: Option<RxClock>) {
        match self {
            Transport::Tls(t) => t.set_rx_clock(clock),
            Transport::Plain(p) => p.stamps = ReadStamps::with_clock(clock),
        }
    }

    fn rx_clock(&self) -> Option<RxClock> {
        match self {
            Transport::Tls(t) => t.rx_clock(),
            Transport::Plain(p) => p.stamps.clock,
        }
    }

    /// (read issued, read returned, bytes handed to the WebSocket layer) of the latest
    /// socket read that returned data.
    fn read_stamps(&self) -> (u64, u64, u64) {
        match self {
            Transport::Tls(t) => t.read_stamps(),
            Transport::Plain(p) => p.stamps.times(),
        }
    }

    /// TLS counters (all zero for plain TCP).
    pub fn tls_stats(&self) -> TlsStats {
        match self {
            Transport::Tls(t) => t.stats(),
            Transport::Plain(_) => TlsStats::default(),
        }
    }

    /// Whether `len` payload bytes would be accepted whole by the next `write` calls.
    fn can_accept(&self, len: usize) -> bool {
        match self {
            Transport::Tls(t) => {
                // Each record's overhead, plus one KeyUpdate record the stream may have to
                // put in front: then `write` is guaranteed to take the whole frame.
                let records = len.div_ceil(PLAINTEXT_MAX).max(1);
                t.tx_free() >= len + records * OVERHEAD + KEY_UPDATE_RECORD_BYTES
            }
            Transport::Plain(p) => p.tx.len() - (p.tx_end - p.tx_start) >= len,
        }
    }

    /// Ends our side: TLS close_notify (best effort), then TCP shutdown.
    pub fn shutdown(&mut self) {
        if let Transport::Tls(t) = self {
            t.close_notify();
        } else if let Transport::Plain(p) = self {
            let _ = p.flush();
        }
        let _ = self.socket_mut().shutdown(std::net::Shutdown::Both);
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Tls(t) => t.read(buf),
            Transport::Plain(p) => p.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Tls(t) => t.write(buf),
            Transport::Plain(p) => p.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Tls(t) => t.flush(),
            Transport::Plain(p) => p.flush(),
        }
    }
}

/// Plain TCP with the same send-buffer semantics as `TlsStream` (tests and simulator).
pub struct PlainStream {
    sock: TcpStream,
    tx: Box<[u8]>,
    tx_start: usize,
    tx_end: usize,
    eof: bool,
    fault: Option<NetError>,
    stamps: ReadStamps,
}

impl PlainStream {
    /// Wraps a connected socket; allocates the send buffer.
    pub fn new(sock: TcpStream) -> PlainStream {
        PlainStream {
            sock,
            tx: crate::mem::resident(TX_BUF_BYTES),
            tx_start: 0,
            tx_end: 0,
            eof: false,
            fault: None,
            stamps: ReadStamps::default(),
        }
    }

    fn flush_tx(&mut self) -> io::Result<bool> {
        while self.tx_start < self.tx_end {
            match self.sock.write(&self.tx[self.tx_start..self.tx_end]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.tx_start += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.fault = Some(NetError::Io(e.kind()));
                    return Err(e);
                }
            }
        }
        self.tx_start = 0;
        self.tx_end = 0;
        Ok(true)
    }
}

impl Read for PlainStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.tx_start < self.tx_end {
            self.flush_tx()?;
        }
        let started = self.stamps.before_read();
        match self.sock.read(buf) {
            Ok(0) if !buf.is_empty() => {
                self.eof = true;
                Ok(0)
            }
            Ok(n) => {
                if n > 0 {
                    self.stamps.read_returned(started);
                    self.stamps.tls_ns = self.stamps.read_ns;
                }
                Ok(n)
            }
            Err(e) => {
                if !matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) {
                    self.fault = Some(NetError::Io(e.kind()));
                }
                Err(e)
            }
        }
    }
}

impl Write for PlainStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.tx_start == self.tx_end {
            self.tx_start = 0;
            self.tx_end = 0;
        } else if self.tx_end == self.tx.len() {
            self.tx.copy_within(self.tx_start..self.tx_end, 0);
            self.tx_end -= self.tx_start;
            self.tx_start = 0;
        }
        let n = buf.len().min(self.tx.len() - self.tx_end);
        self.tx[self.tx_end..self.tx_end + n].copy_from_slice(&buf[..n]);
        self.tx_end += n;
        self.flush_tx()?;
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.flush_tx()? {
            Ok(())
        } else {
            Err(io::ErrorKind::WouldBlock.into())
        }
    }
}

/// Settings of the WebSocket layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WsSettings {
    /// tungstenite's `read_buffer_size` (bytes zero-filled per socket read).
    pub read_buffer_bytes: usize,
    /// Largest incoming message (and frame) accepted.
    pub max_message_bytes: usize,
    /// Largest payload of a frame we send (size of the preallocated frame buffer).
    pub send_frame_bytes: usize,
}

impl Default for WsSettings {
    fn default() -> Self {
        WsSettings {
            read_buffer_bytes: READ_BUFFER_BYTES_DEFAULT,
            max_message_bytes: 16 << 20,
            send_frame_bytes: SEND_FRAME_BYTES_DEFAULT,
        }
    }
}

impl WsSettings {
    /// Checks the ranges.
    pub fn validate(&self) -> Result<(), NetError> {
        if !(READ_BUFFER_BYTES_MIN..=READ_BUFFER_BYTES_MAX).contains(&self.read_buffer_bytes) {
            return Err(NetError::InvalidConfig("ws read_buffer_bytes"));
        }
        if self.max_message_bytes < 1024 {
            return Err(NetError::InvalidConfig("ws max_message_bytes"));
        }
        if self.send_frame_bytes == 0 || self.send_frame_bytes > 4 * PLAINTEXT_MAX {
            return Err(NetError::InvalidConfig("ws send_frame_bytes"));
        }
        Ok(())
    }

    fn tungstenite(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(self.read_buffer_bytes)
            // Write eagerly: tungstenite only ever writes pongs and close replies.
            .write_buffer_size(0)
            .max_write_buffer_size(64 * 1024)
            .max_message_size(Some(self.max_message_bytes))
            .max_frame_size(Some(self.max_message_bytes))
    }
}

/// tungstenite's read buffer, allocated at the upgrade: at least 2 × `read_buffer_bytes` +
/// the largest message expected, so that it never grows while trading (tungstenite reserves
/// a whole frame's length beyond the bytes already buffered; with only `read_buffer_bytes`
/// a depth diff larger than that — common on Binance — regrows it after start-up).
pub const READ_CAPACITY_BYTES: usize = 4 * READ_BUFFER_BYTES_MAX;

/// The unsolicited pong every session sends right after the upgrade to size tungstenite's
/// output buffer for good (125 bytes, the largest control-frame payload). Servers ignore it
/// (RFC 6455 §5.5.3; Binance: "unsolicited pong frames are allowed").
pub const PRESIZE_PONG: [u8; 125] = [0u8; 125];

/// The transport during the upgrade: hands tungstenite the bytes of the 101 response and
/// nothing past its end (what came after is held back), so that the session can rebuild
/// the WebSocket over the bare transport with a read buffer of `READ_CAPACITY_BYTES`.
pub struct Upgrading {
    transport: Transport,
    /// Bytes read from the transport, not yet handed to tungstenite.
    held: Vec<u8>,
    /// How much of the header terminator `\r\n\r\n` the bytes handed out end with.
    matched: u8,
}

impl Read for Upgrading {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.matched == 4 || buf.is_empty() {
            // The response is complete: tungstenite does not read further.
            return Ok(0);
        }
        if self.held.is_empty() {
            let mut chunk = [0u8; 4096];
            let n = self.transport.read(&mut chunk)?;
            self.held.extend_from_slice(&chunk[..n]);
            if n == 0 {
                return Ok(0);
            }
        }
        let mut k = 0;
        while k < buf.len().min(self.held.len()) {
            self.matched = match (self.matched, self.held[k]) {
                (0 | 2, b'\r') | (1 | 3, b'\n') => self.matched + 1,
                (_, b'\r') => 1,
                _ => 0,
            };
            k += 1;
            if self.matched == 4 {
                break;
            }
        }
        buf[..k].copy_from_slice(&self.held[..k]);
        self.held.drain(..k);
        Ok(k)
    }
}

impl Write for Upgrading {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.transport.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.transport.flush()
    }
}

/// A WebSocket upgrade in progress.
pub struct WsHandshake {
    mid: MidHandshake<ClientHandshake<Upgrading>>,
    settings: WsSettings,
}

/// What one handshake step achieved.
pub enum WsProgress {
    /// Would block; call `advance` again on the next readiness event.
    Blocked(Box<WsHandshake>),
    /// Upgrade accepted: the session is open.
    Done(Box<WsSession>),
}

impl WsHandshake {
    /// Sends the upgrade request for `url` over `transport` and goes as far as it can.
    pub fn start(
        url: &Url,
        transport: Transport,
        settings: WsSettings,
    ) -> Result<WsProgress, NetError> {
        let scheme = if url.scheme.is_tls() { "wss" } else { "ws" };
        let request = format!("{scheme}://{}{}", url.authority(), url.path)
            .into_client_request()
            .map_err(|_| NetError::InvalidUrl)?;
        let mid = ClientHandshake::start(
            Upgrading {
                transport,
                held: Vec::new(),
                matched: 0,
            },
            request,
            Some(settings.tungstenite()),
        )
        .map_err(map_ws_error_without_transport)?;
        Box::new(WsHandshake { mid, settings }).advance()
    }

    /// The socket, for (de)registration with mio.
    pub fn socket_mut(&mut self) -> &mut TcpStream {
        self.mid.get_mut().get_mut().transport.socket_mut()
    }

    /// Continues the upgrade. Consumes the handshake.
    pub fn advance(self: Box<Self>) -> Result<WsProgress, NetError> {
        let WsHandshake { mut mid, settings } = *self;
        // The transport's fault is the precise reason behind an io error; read it before
        // tungstenite consumes the stream.
        let fault = mid.get_mut().get_mut().transport.fault();
        match mid.handshake() {
            Ok((ws, _response)) => Ok(WsProgress::Done(Box::new(WsSession::new(ws, settings)?))),
            Err(HandshakeError::Interrupted(mid)) => {
                Ok(WsProgress::Blocked(Box::new(WsHandshake { mid, settings })))
            }
            Err(HandshakeError::Failure(e)) => Err(map_ws_error(e, fault)),
        }
    }
}

/// The kind of a data message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageKind {
    /// UTF-8 text (validated by tungstenite).
    Text,
    /// Binary.
    Binary,
}

/// What one `WsSession::read_next` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// A data message was handed to the callback.
    Data,
    /// A ping arrived; its pong was queued and flushed.
    Ping,
    /// A pong arrived.
    Pong,
    /// The peer closed: WebSocket close frame (code if any), or TLS close_notify.
    Closed {
        /// The close frame's status code (RFC 6455 §7.4), if one came.
        ws_code: Option<u16>,
    },
    /// Nothing more to read until the socket is readable again.
    WouldBlock,
}

/// An open WebSocket connection.
pub struct WsSession {
    ws: WebSocket<Transport>,
    frame: Box<[u8]>,
    mask: MaskGen,
    /// tungstenite has bytes (a pong or close reply) it could not write yet.
    ws_unflushed: bool,
}

impl WsSession {
    fn new(ws: WebSocket<Upgrading>, settings: WsSettings) -> Result<WsSession, NetError> {
        // tungstenite saw nothing past the 101 response: rebuild the WebSocket with the
        // bytes held back and the read buffer it will need (the `Vec`'s capacity is kept:
        // tungstenite collects it with `BytesMut::from_iter`, i.e. `Vec::from_iter` over the
        // `Vec`'s own `IntoIter`, which std collects in place; tests/zero_alloc_live.rs
        // would catch a tungstenite or std that did not).
        let Upgrading {
            transport, held, ..
        } = ws.into_inner();
        let mut part = Vec::with_capacity(READ_CAPACITY_BYTES.max(held.len()));
        part.extend_from_slice(&held);
        let mut ws = WebSocket::from_partially_read(
            transport,
            part,
            Role::Client,
            Some(settings.tungstenite()),
        );
        // tungstenite's output buffer starts empty and grows at its first pong (a server
        // ping, 20 s to minutes into the session). An unsolicited pong of the largest
        // control-frame payload (125 bytes; RFC 6455 §5.5.3 allows it, Binance ignores it)
        // grows it now, for good.
        ws.write(Message::Pong(tungstenite::Bytes::from_static(
            &PRESIZE_PONG,
        )))
        .map_err(|e| map_ws_error(e, ws.get_ref().fault()))?;
        let mut session = WsSession {
            ws,
            frame: crate::mem::resident(FRAME_HEADER_MAX + settings.send_frame_bytes),
            mask: MaskGen::from_os()?,
            ws_unflushed: false,
        };
        session.flush()?;
        Ok(session)
    }

    /// The transport (socket registration, counters).
    pub fn transport_mut(&mut self) -> &mut Transport {
        self.ws.get_mut()
    }

    /// The transport, read-only.
    pub fn transport(&self) -> &Transport {
        self.ws.get_ref()
    }

    /// Reads at most one message. A data message is passed to `on_data` as a view into
    /// the read buffer, valid only during the call, with its receive stamps (all zero
    /// unless the transport has an `RxClock`). Never allocates for a data message that
    /// fits the read buffer.
    pub fn read_next<F: FnOnce(MessageKind, &[u8], RxStamps)>(
        &mut self,
        on_data: F,
    ) -> Result<ReadOutcome, NetError> {
        let clock = self.ws.get_ref().rx_clock();
        let begun_ns = clock.map_or(0, |c| c.now_ns());
        match self.ws.read() {
            Ok(Message::Text(text)) => {
                let stamps = self.rx_stamps(clock, begun_ns);
                on_data(MessageKind::Text, text.as_bytes(), stamps);
                Ok(ReadOutcome::Data)
            }
            Ok(Message::Binary(bytes)) => {
                let stamps = self.rx_stamps(clock, begun_ns);
                on_data(MessageKind::Binary, &bytes, stamps);
                Ok(ReadOutcome::Data)
            }
            Ok(Message::Ping(payload)) => {
                drop(payload);
                // Send tungstenite's queued pong now (see the module doc).
                self.flush()?;
                Ok(ReadOutcome::Ping)
            }
            Ok(Message::Pong(_)) => Ok(ReadOutcome::Pong),
            Ok(Message::Close(frame)) => {
                let ws_code = frame.map(|f| u16::from(f.code));
                // tungstenite queued the close reply; best effort to send it.
                let _ = self.flush();
                Ok(ReadOutcome::Closed { ws_code })
            }
            Ok(Message::Frame(_)) => Err(NetError::Bug("tungstenite returned a raw frame")),
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                Ok(ReadOutcome::WouldBlock)
            }
            Err(tungstenite::Error::Protocol(
                tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
            )) if self.ws.get_ref().peer_closed()
                && matches!(self.ws.get_ref(), Transport::Tls(_)) =>
            {
                // TLS close_notify without a WebSocket close frame: clean at the TLS level.
                Ok(ReadOutcome::Closed { ws_code: None })
            }
            Err(tungstenite::Error::ConnectionClosed) => Ok(ReadOutcome::Closed { ws_code: None }),
            // A transport error is sticky, so its precise reason is still there.
            Err(e) => Err(map_ws_error(e, self.ws.get_ref().fault())),
        }
    }

    /// The stamps of the message tungstenite just returned, `read_next` having begun at
    /// `begun_ns`.
    #[inline]
    fn rx_stamps(&self, clock: Option<RxClock>, begun_ns: u64) -> RxStamps {
        let Some(clock) = clock else {
            return RxStamps::default();
        };
        let (read_start_ns, read_ns, tls_ns) = self.ws.get_ref().read_stamps();
        RxStamps {
            read_start_ns,
            read_ns,
            tls_ns,
            ws_start_ns: begun_ns.max(tls_ns),
            ws_ns: clock.now_ns(),
        }
    }

    /// Pushes everything queued (tungstenite's pongs/close replies, our frames) towards the
    /// socket. `Ok` even if the socket would block; what is left goes out on the next
    /// writable event.
    pub fn flush(&mut self) -> Result<(), NetError> {
        match self.ws.flush() {
            Ok(()) => {
                self.ws_unflushed = false;
                Ok(())
            }
            Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                // Our transports return WouldBlock from `write` only when their send buffer
                // is full; with room left, tungstenite's own buffer was fully handed over and
                // only the socket flush blocked.
                self.ws_unflushed = !self.ws.get_ref().can_accept(1);
                Ok(())
            }
            Err(e) => Err(map_ws_error(e, self.ws.get_ref().fault())),
        }
    }

    /// Whether bytes are waiting for the socket (call `flush` on the next writable event).
    pub fn wants_flush(&self) -> bool {
        self.ws_unflushed || self.ws.get_ref().has_pending_tx()
    }

    /// Sends one masked text frame with `payload`.
    pub fn send_text(&mut self, payload: &[u8]) -> Result<(), NetError> {
        self.send_with(OP_TEXT, |buf| {
            let n = payload.len();
            if n > buf.len() {
                return None;
            }
            buf[..n].copy_from_slice(payload);
            Some(n)
        })
    }

    /// Sends one masked frame whose payload `write` composes in place: it gets the whole
    /// free frame buffer and returns how many bytes it wrote (`None`: does not fit). No
    /// copy of the payload is made before encryption; nothing is allocated.
    pub fn send_with<F: FnOnce(&mut [u8]) -> Option<usize>>(
        &mut self,
        opcode: u8,
        write: F,
    ) -> Result<(), NetError> {
        if self.ws_unflushed || self.ws.get_ref().has_pending_tx() {
            self.flush()?;
            if self.ws_unflushed {
                return Err(NetError::SendBufferFull);
            }
        }
        if !self.ws.can_write() {
            return Err(NetError::NotOpen);
        }
        let len = write(&mut self.frame[FRAME_HEADER_MAX..]).ok_or(NetError::PayloadTooLarge)?;
        if len > self.frame.len() - FRAME_HEADER_MAX {
            return Err(NetError::PayloadTooLarge);
        }
        let key = self.mask.next_key();
        let start = encode_masked_frame(&mut self.frame, opcode, len, key);
        let frame = &self.frame[start..FRAME_HEADER_MAX + len];
        let transport = self.ws.get_mut();
        if !transport.can_accept(frame.len()) {
            let _ = transport.flush();
            if !transport.can_accept(frame.len()) {
                return Err(NetError::SendBufferFull);
            }
        }
        let mut sent = 0;
        while sent < frame.len() {
            match transport.write(&frame[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && sent == 0 => {
                    return Err(NetError::SendBufferFull)
                }
                Err(e) => return Err(transport.fault().unwrap_or(NetError::Io(e.kind()))),
            }
        }
        Ok(())
    }

    /// Starts the closing handshake (status 1000) and sends TLS close_notify. Best effort;
    /// allocates (tungstenite's close frame) — off the hot path.
    pub fn close(&mut self) {
        let _ = self.ws.close(Some(CloseFrame {
            code: tungstenite::protocol::frame::coding::CloseCode::Normal,
            reason: "".into(),
        }));
        let _ = self.ws.flush();
        self.ws.get_mut().shutdown();
    }
}

/// Writes a masked frame header right before the payload at `buf[FRAME_HEADER_MAX..]`
/// and masks the payload in place (RFC 6455 §5.2, §5.3). Returns where the frame starts.
pub fn encode_masked_frame(buf: &mut [u8], opcode: u8, len: usize, key: [u8; 4]) -> usize {
    mask_in_place(&mut buf[FRAME_HEADER_MAX..FRAME_HEADER_MAX + len], key);
    let mut header = [0u8; FRAME_HEADER_MAX];
    header[0] = 0x80 | (opcode & 0x0F); // FIN, no RSV bits
    let mut at = 2;
    if len < 126 {
        header[1] = 0x80 | len as u8;
    } else if len <= usize::from(u16::MAX) {
        header[1] = 0x80 | 126;
        header[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        at = 4;
    } else {
        header[1] = 0x80 | 127;
        header[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        at = 10;
    }
    header[at..at + 4].copy_from_slice(&key);
    let header_len = at + 4;
    let start = FRAME_HEADER_MAX - header_len;
    buf[start..FRAME_HEADER_MAX].copy_from_slice(&header[..header_len]);
    start
}

/// XORs `payload` with the repeating 4-byte `key` (RFC 6455 §5.3), eight bytes at a time.
pub fn mask_in_place(payload: &mut [u8], key: [u8; 4]) {
    let [a, b, c, d] = key;
    let key8 = u64::from_ne_bytes([a, b, c, d, a, b, c, d]);
    let mut words = payload.chunks_exact_mut(8);
    for word in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        word.copy_from_slice(&(u64::from_ne_bytes(w) ^ key8).to_ne_bytes());
    }
    // The remainder starts at a multiple of 8, so the key phase restarts at 0.
    for (i, byte) in words.into_remainder().iter_mut().enumerate() {
        *byte ^= key[i & 3];
    }
}

/// Masking keys: xorshift64* (Vigna 2016), seeded once per connection from the OS RNG.
/// Cheap, non-allocating; see the module doc for why unpredictability is not needed here.
#[derive(Clone, Copy, Debug)]
pub struct MaskGen {
    state: u64,
}

impl MaskGen {
    /// Seeds from `ring`'s system RNG (off the hot path).
    pub fn from_os() -> Result<MaskGen, NetError> {
        use ring::rand::SecureRandom;
        let mut seed = [0u8; 8];
        ring::rand::SystemRandom::new()
            .fill(&mut seed)
            .map_err(|_| NetError::Bug("OS random number generator failed"))?;
        Ok(MaskGen::from_seed(u64::from_le_bytes(seed)))
    }

    /// A generator with a fixed seed (tests); a zero seed is replaced (xorshift needs ≠ 0).
    pub fn from_seed(seed: u64) -> MaskGen {
        MaskGen {
            state: if seed == 0 {
                0x9E37_79B9_7F4A_7C15
            } else {
                seed
            },
        }
    }

    /// The next 4-byte masking key.
    pub fn next_key(&mut self) -> [u8; 4] {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        let out = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
        // INVARIANT: taking the high 32 bits of a u64 always fits in u32.
        ((out >> 32) as u32).to_le_bytes()
    }
}

/// Maps a tungstenite error; `fault` is the transport's precise reason for an io error.
fn map_ws_error(e: tungstenite::Error, fault: Option<NetError>) -> NetError {
    use tungstenite::Error as E;
    match e {
        E::Io(io) => fault.unwrap_or(match io.kind() {
            io::ErrorKind::UnexpectedEof => NetError::WsClosedWithoutHandshake,
            kind => NetError::Io(kind),
        }),
        E::ConnectionClosed | E::AlreadyClosed => NetError::NotOpen,
        E::Capacity(_) => NetError::WsMessageTooLarge,
        E::Protocol(tungstenite::error::ProtocolError::ResetWithoutClosingHandshake) => {
            fault.unwrap_or(NetError::WsClosedWithoutHandshake)
        }
        E::Protocol(tungstenite::error::ProtocolError::HandshakeIncomplete) => {
            fault.unwrap_or(NetError::WsClosedWithoutHandshake)
        }
        E::Protocol(_) | E::AttackAttempt => NetError::WsProtocol,
        E::WriteBufferFull(_) => NetError::SendBufferFull,
        E::Utf8(_) => NetError::WsInvalidUtf8,
        E::Url(_) => NetError::InvalidUrl,
        E::Http(response) => NetError::WsUpgradeRefused(response.status().as_u16()),
        E::HttpFormat(_) => NetError::WsHandshakeInvalid,
        E::Tls(_) => NetError::Bug("tungstenite TLS error without its TLS feature"),
    }
}

fn map_ws_error_without_transport(e: tungstenite::Error) -> NetError {
    map_ws_error(e, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Naive reference: the frame exactly as RFC 6455 §5.2 draws it.
    fn reference_frame(opcode: u8, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
        let mut out = vec![0x80 | opcode];
        let len = payload.len();
        if len < 126 {
            out.push(0x80 | len as u8);
        } else if len < 65536 {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        out
    }

    #[test]
    fn masked_frames_match_reference_at_length_boundaries() {
        let mut gen = MaskGen::from_seed(42);
        for len in [0usize, 1, 3, 4, 5, 125, 126, 127, 65535, 65536, 70000] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
            let key = gen.next_key();
            let mut buf = vec![0u8; FRAME_HEADER_MAX + len];
            buf[FRAME_HEADER_MAX..].copy_from_slice(&payload);
            let start = encode_masked_frame(&mut buf, OP_TEXT, len, key);
            assert_eq!(
                buf[start..],
                reference_frame(OP_TEXT, &payload, key)[..],
                "len {len}"
            );
        }
    }

    #[test]
    fn word_masking_matches_bytewise_reference() {
        for len in 0..40 {
            let key = [0x12, 0x34, 0x56, 0x78];
            let payload: Vec<u8> = (0..len as u8).collect();
            let mut fast = payload.clone();
            mask_in_place(&mut fast, key);
            let slow: Vec<u8> = payload
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ key[i % 4])
                .collect();
            assert_eq!(fast, slow, "len {len}");
        }
    }

    #[test]
    fn mask_keys_vary() {
        let mut gen = MaskGen::from_seed(0);
        let a = gen.next_key();
        let b = gen.next_key();
        let c = gen.next_key();
        assert!(a != b && b != c && a != c);
    }

    #[test]
    fn settings_are_validated() {
        assert!(WsSettings::default().validate().is_ok());
        let bad = WsSettings {
            read_buffer_bytes: 128 * 1024,
            ..WsSettings::default()
        };
        assert_eq!(
            bad.validate(),
            Err(NetError::InvalidConfig("ws read_buffer_bytes"))
        );
    }
}
