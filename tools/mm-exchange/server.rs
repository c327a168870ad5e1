//! Sockets: the accept loop, one thread per connection, TLS or plain, HTTP/1.1 (REST and
//! the control endpoint, keep-alive) and the WebSocket upgrades (market data and the
//! WebSocket API) on the same port.
//!
//! Routes:
//! - `GET /api/v3/ping`, `/api/v3/time`, `/api/v3/exchangeInfo`, `/api/v3/depth?symbol=&limit=`
//! - `POST /control/<command>[/<argument>]` (GET accepted too, for curl-less browsers)
//! - WebSocket `/ws/<stream>[/<stream>…]` (raw payloads), `/stream?streams=a/b/c`
//!   (combined `{"stream":..,"data":..}`), `/ws-api/v3`
//!
//! Each WebSocket thread loops: send what is queued for it, send a ping when due, read with
//! a 1 ms timeout (writes time out after 1 ms too, so a socket that does not drain never
//! blocks the loop). Every loop checks stop, the `drop` epochs (all connections, or only its
//! kind: `drop market` / `drop api`), the `stall` window (`stall-market` too for
//! market-data connections) and, for market data, whether the replay dropped it as a slow
//! subscriber. A market-data connection takes frames from its bounded queue only while its
//! socket drains, so one that stops reading fills its queue (`--market-queue-max`), the
//! replay drops it and counts it, and this thread closes the socket.
//! Never: blocks the replay (each market-data connection has its own bounded queue) or
//! panics on client input.

use std::collections::{HashSet, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection, StreamOwned};
use serde_json::Value;
use tungstenite::handshake::HandshakeError;
use tungstenite::{Message, WebSocket};

use crate::api::{self, ApiConn};
use crate::clock;
use crate::control;
use crate::state::{Outbound, Shared, Subscriber};
use crate::wire::{self, quote};

/// Largest HTTP request head accepted.
const HEAD_BYTES_MAX: usize = 64 * 1024;
/// Largest WebSocket message (and frame) a client may send, bytes. Clients send small
/// JSON requests (a SUBSCRIBE of 1024 stream names is about 30 KB; one of 100,000 names,
/// 1.5 MB, still gets its -2 answer); a larger message closes the connection (1009,
/// message too big) instead of growing its read buffer to tungstenite's default 16 MiB
/// frame / 64 MiB message and keeping it for the connection's life. With
/// `--connections-max` this bounds the read buffers of all connections together.
pub const WS_MESSAGE_MAX: usize = 2 * 1024 * 1024;
/// Bytes waiting to be written to one WebSocket at most: past it the connection is a slow
/// consumer and is closed (its bounded queue is the first line; this bounds what a
/// socket that stopped draining holds inside tungstenite).
const WS_WRITE_BUFFER_MAX: usize = 8 * 1024 * 1024;
/// Streams one market-data connection may hold (Binance's limit).
const MAX_STREAMS_PER_CONN: usize = 1024;
/// An idle keep-alive HTTP connection is closed after this long.
const HTTP_IDLE: Duration = Duration::from_secs(60);
/// Read timeout while waiting for HTTP input (lets the thread notice stop and drop).
const HTTP_POLL: Duration = Duration::from_millis(100);
/// Read timeout of a WebSocket loop: the pacing of its writes and checks.
const WS_POLL: Duration = Duration::from_millis(1);
/// Messages written per loop before reading again.
const WRITE_BATCH: usize = 512;

/// Accepts connections until stop.
pub fn accept_loop(shared: Arc<Shared>, listener: TcpListener, tls: Option<Arc<ServerConfig>>) {
    if let Err(e) = listener.set_nonblocking(true) {
        mm::errln!("mm-exchange: listener: {e}");
        return;
    }
    let live = Arc::new(AtomicUsize::new(0));
    while !shared.stopping() {
        match listener.accept() {
            Ok((tcp, _)) => {
                // One thread per connection, so a bounded number of them: past the cap a
                // new connection is closed at once (and counted as dropped).
                if live.load(Ordering::SeqCst) >= shared.cfg.connections_max {
                    let _ = tcp.shutdown(Shutdown::Both);
                    shared.lock().counters.dropped += 1;
                    continue;
                }
                let shared = Arc::clone(&shared);
                let tls = tls.clone();
                shared.lock().counters.connections += 1;
                live.fetch_add(1, Ordering::SeqCst);
                let live_now = Arc::clone(&live);
                let spawned = std::thread::Builder::new()
                    .name(String::from("mmx-conn"))
                    .spawn(move || {
                        serve(&shared, tcp, tls);
                        live_now.fetch_sub(1, Ordering::SeqCst);
                    });
                if let Err(e) = spawned {
                    live.fetch_sub(1, Ordering::SeqCst);
                    mm::errln!("mm-exchange: cannot start a connection thread: {e}");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                clock::sleep(Duration::from_millis(2))
            }
            Err(e) => {
                mm::errln!("mm-exchange: accept: {e}");
                clock::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// The byte stream under HTTP and WebSocket.
enum Transport {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            Transport::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(s) => s.flush(),
            Transport::Tls(s) => s.flush(),
        }
    }
}

/// A transport that first replays bytes already read (the HTTP head, for tungstenite).
struct Conn {
    prefix: Vec<u8>,
    pos: usize,
    inner: Transport,
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos < self.prefix.len() {
            let n = buf.len().min(self.prefix.len() - self.pos);
            buf[..n].copy_from_slice(&self.prefix[self.pos..self.pos + n]);
            self.pos += n;
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A parsed HTTP request head.
#[derive(Debug, Default)]
struct Head {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    /// Bytes of the head including the blank line.
    len: usize,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn is_upgrade(&self) -> bool {
        self.header("upgrade")
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
    }
}

/// Why a read loop ended.
enum Ended {
    Closed,
    Dropped,
}

/// The drop epochs when a connection was accepted.
#[derive(Debug, Clone, Copy)]
struct Epochs {
    all: u64,
    market: u64,
    api: u64,
}

fn serve(shared: &Shared, tcp: TcpStream, tls: Option<Arc<ServerConfig>>) {
    let epochs = Epochs {
        all: shared.drop_epoch.load(Ordering::SeqCst),
        market: shared.drop_market_epoch.load(Ordering::SeqCst),
        api: shared.drop_api_epoch.load(Ordering::SeqCst),
    };
    let epoch = epochs.all;
    let Ok(control) = tcp.try_clone() else {
        return;
    };
    let _ = tcp.set_nodelay(true);
    let _ = tcp.set_read_timeout(Some(HTTP_POLL));
    let inner = match tls {
        Some(config) => match ServerConnection::new(config) {
            Ok(session) => Transport::Tls(Box::new(StreamOwned::new(session, tcp))),
            Err(e) => {
                mm::errln!("mm-exchange: TLS session: {e}");
                return;
            }
        },
        None => Transport::Plain(tcp),
    };
    let mut conn = Conn {
        prefix: Vec::new(),
        pos: 0,
        inner,
    };
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let head = match read_head(shared, &mut conn, &mut buf, epoch) {
            Ok(Some(head)) => head,
            Ok(None) => return,
            Err(Ended::Dropped) => {
                shutdown(shared, &control);
                return;
            }
            Err(Ended::Closed) => return,
        };
        if head.is_upgrade() {
            conn.prefix = std::mem::take(&mut buf);
            conn.pos = 0;
            serve_websocket(shared, conn, control, &head, epochs);
            return;
        }
        let body_len = head
            .header("content-length")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0)
            .min(HEAD_BYTES_MAX);
        let mut body = buf.split_off(head.len);
        buf.clear();
        while body.len() < body_len {
            let mut chunk = [0u8; 4096];
            match conn.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => body.extend_from_slice(&chunk[..n]),
                Err(e) if is_timeout(&e) => {
                    if shared.stopping() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
        // Pipelined bytes after the body belong to the next request.
        buf = body.split_off(body_len);
        let close = head
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let response = http_response(shared, &head, close);
        if conn
            .write_all(&response)
            .and_then(|()| conn.flush())
            .is_err()
            || close
        {
            return;
        }
    }
}

/// Reads until a complete head is in `buf`; Ok(None) on a clean end of input.
fn read_head(
    shared: &Shared,
    conn: &mut Conn,
    buf: &mut Vec<u8>,
    epoch: u64,
) -> Result<Option<Head>, Ended> {
    let idle_since = clock::now();
    loop {
        if let Some(end) = find_blank_line(buf) {
            return Ok(parse_head(&buf[..end]).map(|mut h| {
                h.len = end;
                h
            }));
        }
        if buf.len() > HEAD_BYTES_MAX {
            return Err(Ended::Closed);
        }
        if shared.stopping() {
            return Err(Ended::Closed);
        }
        if shared.drop_epoch.load(Ordering::SeqCst) != epoch {
            return Err(Ended::Dropped);
        }
        let mut chunk = [0u8; 4096];
        match conn.read(&mut chunk) {
            Ok(0) => return Ok(None),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if is_timeout(&e) => {
                if clock::now() - idle_since > HTTP_IDLE {
                    return Err(Ended::Closed);
                }
            }
            Err(_) => return Err(Ended::Closed),
        }
    }
}

fn find_blank_line(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

fn parse_head(bytes: &[u8]) -> Option<Head> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.split("\r\n");
    let mut request = lines.next()?.split(' ');
    let method = request.next()?.to_string();
    let target = request.next()?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let headers = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Some(Head {
        method,
        path: path.to_string(),
        query: query.to_string(),
        headers,
        len: 0,
    })
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn shutdown(shared: &Shared, tcp: &TcpStream) {
    let _ = tcp.shutdown(Shutdown::Both);
    shared.lock().counters.dropped += 1;
}

/// Query-string parameters, percent-decoded.
fn query_params(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---------------------------------------------------------------------------------------
// HTTP: REST and control
// ---------------------------------------------------------------------------------------

struct HttpReply {
    status: u16,
    body: String,
    retry_after_s: Option<i64>,
}

fn http_response(shared: &Shared, head: &Head, close: bool) -> Vec<u8> {
    let now_ms = clock::wall_ms();
    let reply = route_http(shared, head, now_ms);
    let weight = shared.lock().limits.weight.count(now_ms);
    let reason = match reply.status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        _ => "Error",
    };
    let mut out = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: application/json;charset=UTF-8\r\nContent-Length: {}\r\nX-MBX-USED-WEIGHT-1M: {weight}\r\n",
        reply.status,
        reply.body.len()
    );
    if let Some(s) = reply.retry_after_s {
        out.push_str(&format!("Retry-After: {s}\r\n"));
    }
    out.push_str(if close {
        "Connection: close\r\n\r\n"
    } else {
        "Connection: keep-alive\r\n\r\n"
    });
    out.push_str(&reply.body);
    out.into_bytes()
}

fn route_http(shared: &Shared, head: &Head, now_ms: i64) -> HttpReply {
    let ok = |body: String| HttpReply {
        status: 200,
        body,
        retry_after_s: None,
    };
    if let Some(command) = head.path.strip_prefix("/control/") {
        // Any local process can reach this port: control needs the token printed at start.
        let token = query_params(&head.query)
            .into_iter()
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v)
            .or_else(|| head.header("X-MM-Control-Token").map(str::to_string));
        if token.as_deref() != Some(shared.cfg.control_token.as_str()) {
            return HttpReply {
                status: 401,
                body: String::from(
                    "{\"ok\":false,\"error\":\"control needs the token mm-exchange printed at \
                     start: ?token=… or an X-MM-Control-Token header\"}",
                ),
                retry_after_s: None,
            };
        }
        let line = command
            .split('/')
            .map(percent_decode)
            .collect::<Vec<_>>()
            .join(" ");
        return match control::run(shared, &line) {
            Ok(reply) => ok(reply.json),
            Err(msg) => HttpReply {
                status: 400,
                body: format!("{{\"ok\":false,\"error\":{}}}", quote(&msg)),
                retry_after_s: None,
            },
        };
    }
    let mut ex = shared.lock();
    ex.counters.rest_requests += 1;
    let fail = |ex: &mut crate::state::Exchange, status: u16, code: i32, msg: &str| {
        ex.count_error(code, status);
        HttpReply {
            status,
            body: wire::rest_error(code, msg),
            retry_after_s: None,
        }
    };
    if head.method != "GET" {
        return fail(&mut ex, 400, -1020, "This operation is not supported.");
    }
    let params = query_params(&head.query);
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let weight = match head.path.as_str() {
        "/api/v3/ping" | "/api/v3/time" => 1,
        "/api/v3/exchangeInfo" => 20,
        "/api/v3/depth" => match param("limit")
            .and_then(|l| l.parse::<u64>().ok())
            .unwrap_or(100)
        {
            0..=100 => 5,
            101..=500 => 25,
            501..=1000 => 50,
            _ => 250,
        },
        _ => {
            return fail(
                &mut ex,
                404,
                -1000,
                "An unknown error occurred while processing the request.",
            )
        }
    };
    if let Some((msg, retry_ms)) = ex.limits.add_weight(now_ms, weight) {
        let mut reply = fail(&mut ex, 429, -1003, &msg);
        reply.retry_after_s = Some(((retry_ms - now_ms) + 999) / 1000);
        return reply;
    }
    match head.path.as_str() {
        "/api/v3/ping" => ok(String::from("{}")),
        "/api/v3/time" => ok(format!("{{\"serverTime\":{now_ms}}}")),
        "/api/v3/exchangeInfo" => {
            if let Some(symbol) = param("symbol") {
                if symbol != ex.symbol {
                    return fail(&mut ex, 400, -1121, "Invalid symbol.");
                }
            }
            let body = wire::exchange_info(&ex.info_spec(&shared.cfg), now_ms);
            ok(body)
        }
        _ => {
            let Some(symbol) = param("symbol") else {
                return fail(
                    &mut ex,
                    400,
                    -1102,
                    "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
                );
            };
            if symbol != ex.symbol {
                return fail(&mut ex, 400, -1121, "Invalid symbol.");
            }
            let limit = match param("limit").map(str::parse::<usize>) {
                None => 100,
                Some(Ok(n)) if n >= 1 => n.min(5000),
                Some(_) => {
                    return fail(
                        &mut ex,
                        400,
                        -1100,
                        "Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'.",
                    )
                }
            };
            ok(ex.market.book.snapshot_json(limit))
        }
    }
}

// ---------------------------------------------------------------------------------------
// WebSocket
// ---------------------------------------------------------------------------------------

/// What a WebSocket path asks for.
enum Route {
    Market {
        streams: Vec<String>,
        combined: bool,
    },
    Api,
}

fn route_ws(head: &Head) -> Option<Route> {
    let path = head.path.trim_end_matches('/');
    if path == "/ws-api/v3" {
        return Some(Route::Api);
    }
    if path == "/ws" || path == "/stream" {
        let streams = if path == "/stream" {
            query_params(&head.query)
                .into_iter()
                .find(|(k, _)| k == "streams")
                .map(|(_, v)| split_streams(&v))
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        return Some(Route::Market {
            streams,
            combined: path == "/stream",
        });
    }
    path.strip_prefix("/ws/").map(|rest| Route::Market {
        streams: split_streams(rest),
        combined: false,
    })
}

fn split_streams(text: &str) -> Vec<String> {
    text.split('/')
        .filter(|s| !s.is_empty())
        .take(MAX_STREAMS_PER_CONN)
        .map(str::to_string)
        .collect()
}

fn serve_websocket(shared: &Shared, conn: Conn, control: TcpStream, head: &Head, epochs: Epochs) {
    let Some(route) = route_ws(head) else {
        let mut conn = conn;
        let body = wire::rest_error(-1000, "Unknown WebSocket path.");
        let response = format!(
            "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = conn.write_all(response.as_bytes());
        let _ = conn.flush();
        return;
    };
    let config = tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(WS_MESSAGE_MAX))
        .max_frame_size(Some(WS_MESSAGE_MAX))
        .max_write_buffer_size(WS_WRITE_BUFFER_MAX);
    let mut attempt = tungstenite::accept_with_config(conn, Some(config));
    let deadline = clock::now() + Duration::from_secs(10);
    let ws = loop {
        match attempt {
            Ok(ws) => break ws,
            Err(HandshakeError::Interrupted(mid)) if clock::now() < deadline => {
                attempt = mid.handshake();
            }
            Err(_) => return,
        }
    };
    let _ = control.set_read_timeout(Some(WS_POLL));
    let _ = control.set_write_timeout(Some(WS_POLL));
    let (kind_epoch, kind) = match route {
        Route::Market { .. } => (epochs.market, &shared.drop_market_epoch),
        Route::Api => (epochs.api, &shared.drop_api_epoch),
    };
    let mut session = Session {
        ws,
        control,
        epoch: epochs.all,
        kind,
        kind_epoch,
        last_ping: clock::now(),
        ping_sent: None,
    };
    match route {
        Route::Market { streams, combined } => market_loop(shared, &mut session, streams, combined),
        Route::Api => api_loop(shared, &mut session),
    }
}

/// One WebSocket connection.
struct Session<'a> {
    ws: WebSocket<Conn>,
    control: TcpStream,
    /// `drop_epoch` at accept.
    epoch: u64,
    /// The drop epoch of this connection's kind (`drop market` / `drop api`)…
    kind: &'a AtomicU64,
    /// …and its value at accept.
    kind_epoch: u64,
    last_ping: Instant,
    ping_sent: Option<Instant>,
}

/// What one read produced.
enum Read1 {
    Nothing,
    Text(String),
    End,
}

impl Session<'_> {
    /// Stop, drop and pong-timeout checks; Err ends the loop.
    fn check(&mut self, shared: &Shared) -> Result<(), ()> {
        if shared.stopping() {
            let _ = self.ws.close(None);
            let _ = self.ws.flush();
            return Err(());
        }
        if shared.drop_epoch.load(Ordering::SeqCst) != self.epoch
            || self.kind.load(Ordering::SeqCst) != self.kind_epoch
        {
            shutdown(shared, &self.control);
            return Err(());
        }
        let cfg = &shared.cfg;
        let now = clock::now();
        if let Some(sent) = self.ping_sent {
            if cfg.pong_timeout_s > 0 && now - sent > Duration::from_secs(cfg.pong_timeout_s) {
                let _ = self.control.shutdown(Shutdown::Both);
                return Err(());
            }
        }
        if cfg.ping_interval_s > 0
            && now - self.last_ping >= Duration::from_secs(cfg.ping_interval_s)
        {
            self.last_ping = now;
            if self.ping_sent.is_none() {
                self.ping_sent = Some(now);
            }
            let payload = clock::wall_ms().to_string().into_bytes();
            written(self.ws.write(Message::Ping(payload.into())))?;
        }
        Ok(())
    }

    /// Queues one message; Err ends the connection (broken, or 8 MiB left unwritten).
    fn send(&mut self, message: Outbound) -> Result<(), ()> {
        match message {
            Outbound::Text(text) => written(self.ws.write(Message::Text(text.into()))).map(|_| ()),
            Outbound::Garbage => {
                written(self.ws.write(Message::Text(GARBAGE_TEXT.into()))).map(|_| ())
            }
            Outbound::BadFrame => {
                self.ws.flush().map_err(|_| ())?;
                // FIN + reserved opcode 0x3, unmasked, 3 bytes: not a valid frame.
                let stream = self.ws.get_mut();
                stream
                    .write_all(&[0x83, 0x03, b'b', b'a', b'd'])
                    .map_err(|_| ())?;
                stream.flush().map_err(|_| ())
            }
        }
    }

    /// Writes what tungstenite holds: Ok(true) when all of it went out, Ok(false) when the
    /// socket did not take it all within the write timeout; Err ends the connection.
    fn flush(&mut self) -> Result<bool, ()> {
        written(self.ws.flush())
    }

    fn read(&mut self) -> Read1 {
        match self.ws.read() {
            Ok(Message::Text(text)) => Read1::Text(text.to_string()),
            Ok(Message::Binary(bytes)) => Read1::Text(String::from_utf8_lossy(&bytes).into_owned()),
            Ok(Message::Pong(_)) => {
                self.ping_sent = None;
                Read1::Nothing
            }
            Ok(Message::Ping(_)) | Ok(Message::Frame(_)) => Read1::Nothing,
            Ok(Message::Close(_)) => {
                let _ = self.ws.flush();
                Read1::End
            }
            Err(tungstenite::Error::Io(e)) if is_timeout(&e) => Read1::Nothing,
            Err(_) => Read1::End,
        }
    }
}

/// A write or flush that the socket's write timeout cut short is no error: tungstenite keeps
/// the frame buffered and the next flush goes on (Ok(false)). Other errors, and a write
/// buffer past `WS_WRITE_BUFFER_MAX`, end the connection.
fn written(result: tungstenite::Result<()>) -> Result<bool, ()> {
    match result {
        Ok(()) => Ok(true),
        Err(tungstenite::Error::Io(e)) if is_timeout(&e) => Ok(false),
        Err(_) => Err(()),
    }
}

/// Not JSON: what the `garbage` fault sends.
const GARBAGE_TEXT: &str = "{\"stream\":\"garbage\",\"data\":{\"e\":\"depthUpdate\",\"E\":";

fn market_loop(shared: &Shared, session: &mut Session<'_>, streams: Vec<String>, combined: bool) {
    let conn_id = shared.conn_id();
    let (tx, rx) = mpsc::sync_channel(shared.cfg.market_queue_max);
    let slow = Arc::new(AtomicBool::new(false));
    shared.lock().subscribers.push(Subscriber {
        conn_id,
        streams,
        combined,
        tx,
        slow: Arc::clone(&slow),
    });
    shared.signal_start();
    run_market(shared, session, conn_id, &rx, &slow);
    shared.lock().subscribers.retain(|s| s.conn_id != conn_id);
}

fn run_market(
    shared: &Shared,
    session: &mut Session<'_>,
    conn_id: u64,
    rx: &Receiver<Outbound>,
    slow: &AtomicBool,
) {
    loop {
        if session.check(shared).is_err() {
            return;
        }
        if slow.load(Ordering::SeqCst) {
            // The replay found its queue full and dropped it (and counted it): close the
            // socket with whatever is unsent, as Binance closes a slow consumer.
            let _ = session.control.shutdown(Shutdown::Both);
            return;
        }
        if shared.faults.market_stalled_until(clock::now()).is_none() {
            // Frames leave the bounded queue only while the socket drains: a client that
            // stops reading leaves them queued, where the replay sees the queue fill.
            match session.flush() {
                Err(()) => return,
                Ok(false) => {}
                Ok(true) => {
                    for _ in 0..WRITE_BATCH {
                        match rx.try_recv() {
                            Ok(message) => {
                                if session.send(message).is_err() {
                                    return;
                                }
                            }
                            Err(_) => break,
                        }
                    }
                    if session.flush().is_err() {
                        return;
                    }
                }
            }
        }
        match session.read() {
            Read1::Nothing => {}
            Read1::End => return,
            Read1::Text(text) => {
                let reply = market_request(shared, conn_id, &text);
                if session.send(Outbound::Text(reply)).is_err() {
                    return;
                }
            }
        }
    }
}

/// SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS on a market-data connection.
fn market_request(shared: &Shared, conn_id: u64, text: &str) -> String {
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return String::from("{\"error\":{\"code\":3,\"msg\":\"Invalid JSON\"},\"id\":null}");
    };
    let id = value
        .get("id")
        .map_or_else(|| String::from("null"), Value::to_string);
    let mut names: Vec<String> = value
        .get("params")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let too_many = || {
        format!(
            "{{\"error\":{{\"code\":2,\"msg\":\"Invalid request: at most \
             {MAX_STREAMS_PER_CONN} streams per connection\"}},\"id\":{id}}}"
        )
    };
    // Bounded before the global lock is taken: Binance's own cap, and no O(N²) dedup.
    if names.len() > MAX_STREAMS_PER_CONN {
        return too_many();
    }
    let mut seen = HashSet::with_capacity(names.len());
    names.retain(|n| seen.insert(n.clone()));
    let mut ex = shared.lock();
    let Some(sub) = ex.subscribers.iter_mut().find(|s| s.conn_id == conn_id) else {
        return format!("{{\"result\":null,\"id\":{id}}}");
    };
    match value.get("method").and_then(Value::as_str) {
        Some("SUBSCRIBE") => {
            let held: HashSet<&str> = sub.streams.iter().map(String::as_str).collect();
            names.retain(|n| !held.contains(n.as_str()));
            if sub.streams.len() + names.len() > MAX_STREAMS_PER_CONN {
                return too_many();
            }
            sub.streams.extend(names);
            drop(ex);
            shared.signal_start();
            format!("{{\"result\":null,\"id\":{id}}}")
        }
        Some("UNSUBSCRIBE") => {
            sub.streams.retain(|s| !seen.contains(s));
            format!("{{\"result\":null,\"id\":{id}}}")
        }
        Some("LIST_SUBSCRIPTIONS") => {
            let list = wire::array(sub.streams.iter().map(|s| quote(s)));
            format!("{{\"result\":{list},\"id\":{id}}}")
        }
        _ => format!(
            "{{\"error\":{{\"code\":2,\"msg\":\"Invalid request: unknown method\"}},\"id\":{id}}}"
        ),
    }
}

fn api_loop(shared: &Shared, session: &mut Session<'_>) {
    let conn_id = shared.conn_id();
    let (tx, rx) = mpsc::channel();
    let conn = ApiConn::new(conn_id, tx);
    run_api(shared, session, &conn, &rx);
    shared.lock().listeners.retain(|(id, _)| *id != conn_id);
}

fn run_api(shared: &Shared, session: &mut Session<'_>, conn: &ApiConn, rx: &Receiver<Outbound>) {
    let entry = Duration::from_millis(shared.cfg.latency_ms);
    let mut inbound: VecDeque<(Instant, String)> = VecDeque::new();
    let mut outbound: VecDeque<(Instant, Outbound)> = VecDeque::new();
    loop {
        if session.check(shared).is_err() {
            return;
        }
        match session.read() {
            Read1::Nothing => {}
            Read1::End => return,
            Read1::Text(text) => inbound.push_back((clock::now() + entry, text)),
        }
        let now = clock::now();
        let ack = Duration::from_millis(
            shared.cfg.ack_latency_ms + shared.faults.extra_ack_ms.load(Ordering::SeqCst),
        );
        while inbound.front().is_some_and(|(due, _)| *due <= now) {
            if let Some((_, text)) = inbound.pop_front() {
                let response = api::handle(shared, conn, &text);
                outbound.push_back((now + ack, Outbound::Text(response)));
            }
        }
        while let Ok(event) = rx.try_recv() {
            outbound.push_back((now + ack, event));
        }
        if shared.faults.stalled_until(now).is_some() {
            continue;
        }
        let mut wrote = false;
        while outbound.front().is_some_and(|(due, _)| *due <= now) {
            if let Some((_, message)) = outbound.pop_front() {
                if session.send(message).is_err() {
                    return;
                }
                wrote = true;
            }
        }
        if wrote && session.flush().is_err() {
            return;
        }
    }
}

#[cfg(test)]
#[path = "fuzz.rs"]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_heads_and_queries() {
        let raw = b"GET /api/v3/depth?symbol=BTCUSDT&limit=5 HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\n\r\n";
        let end = find_blank_line(raw).unwrap();
        assert_eq!(end, raw.len());
        let head = parse_head(&raw[..end]).unwrap();
        assert_eq!(head.path, "/api/v3/depth");
        assert!(head.is_upgrade());
        let q = query_params(&head.query);
        assert_eq!(q[1], ("limit".to_string(), "5".to_string()));
        assert_eq!(percent_decode("a%2Fb+c%zz"), "a/b c%zz");
        assert_eq!(percent_decode("%4"), "%4");
    }

    #[test]
    fn websocket_routes() {
        let head = |path: &str, query: &str| Head {
            path: path.into(),
            query: query.into(),
            ..Head::default()
        };
        match route_ws(&head(
            "/stream",
            "streams=btcusdt@trade/btcusdt@depth@100ms",
        )) {
            Some(Route::Market { streams, combined }) => {
                assert!(combined);
                assert_eq!(streams, vec!["btcusdt@trade", "btcusdt@depth@100ms"]);
            }
            _ => panic!("combined"),
        }
        assert!(matches!(
            route_ws(&head("/ws/btcusdt@bookTicker", "")),
            Some(Route::Market {
                combined: false,
                ..
            })
        ));
        assert!(matches!(
            route_ws(&head("/ws-api/v3", "")),
            Some(Route::Api)
        ));
        assert!(route_ws(&head("/nope", "")).is_none());
    }
}
