//! Loopback test servers shared by integration tests (`mod support;`).
//!
//! Owns: `TestPki` (a throw-away CA made with rcgen, its PEM file for the client's
//! `TlsRoots::CaFile`, and server certificates it signs), `WsServer` (a TLS 1.3 +
//! WebSocket server from rustls `ServerConnection` + tungstenite, one thread per
//! connection, scripted through `ServerConn` commands) and `https_once` (a one-shot HTTPS
//! responder for REST tests). `binance` (a submodule) adds fixtures from the recorded
//! Binance session and a multi-request HTTPS responder for the depth snapshot.
//!
//! What a `ServerConn` can do to the client: send text/binary/arbitrary frames (alone or
//! coalesced into shared TLS records), send raw bytes inside TLS or straight onto TCP, ping, split its TCP writes into
//! chunks as small as one byte, stall, trigger a TLS KeyUpdate, end with close_notify, a
//! WebSocket close, a TCP cut mid-frame or a TCP cut mid-record. What it reports back:
//! every message the client sent (`ServerEvent`).
//!
//! Invariants: binds 127.0.0.1 only; every wait is bounded; threads end when their
//! handle is dropped. Never: talks to anything but loopback.

#![allow(
    dead_code,
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used
)]

pub mod binance;
pub mod data;
pub mod mutate;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use tungstenite::handshake::HandshakeError;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

/// Upper bound on any single wait inside the server.
const IO_DEADLINE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------

/// A throw-away certificate authority.
pub struct TestPki {
    /// PEM file holding the CA certificate (for `TlsRoots::CaFile`).
    pub ca_pem_path: PathBuf,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A server certificate chain and its key.
#[derive(Clone)]
pub struct ServerIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key_pkcs8: Vec<u8>,
}

impl TestPki {
    /// A fresh CA; its certificate is written to a unique file under the target temp dir.
    pub fn new() -> TestPki {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        // A distinct name per CA: two CAs with one name would make a foreign certificate
        // look like a bad signature from ours instead of an unknown issuer.
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let name = format!("mm test CA {}-{seq}", std::process::id());
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let dir = std::env::temp_dir().join("mm-test-pki");
        std::fs::create_dir_all(&dir).unwrap();
        let ca_pem_path = dir.join(format!("ca-{}-{seq}.pem", std::process::id()));
        std::fs::write(&ca_pem_path, issuer.pem()).unwrap();
        TestPki {
            ca_pem_path,
            issuer,
        }
    }

    /// A server certificate for `names` (DNS names or IP literals) signed by this CA.
    pub fn server_identity(&self, names: &[&str]) -> ServerIdentity {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let params = CertificateParams::new(names).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        ServerIdentity {
            chain: vec![cert.der().clone(), self.issuer.der().clone()],
            key_pkcs8: key.serialize_der(),
        }
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.ca_pem_path);
    }
}

/// TLS 1.3-only rustls server config (ring provider) for `id`.
pub fn server_tls_config(id: &ServerIdentity) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(id.key_pkcs8.clone()));
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(id.chain.clone(), key)
        .unwrap();
    Arc::new(config)
}

// ---------------------------------------------------------------------------------------
// WebSocket server
// ---------------------------------------------------------------------------------------

/// A loopback WebSocket server (TLS 1.3 or plain) accepting any number of connections.
pub struct WsServer {
    addr: SocketAddr,
    tls: bool,
    accepted: Receiver<ServerConn>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl WsServer {
    /// A `wss://` server presenting `id`.
    pub fn start_tls(id: &ServerIdentity) -> WsServer {
        WsServer::start(Some(server_tls_config(id)))
    }

    /// A `ws://` server.
    pub fn start_plain() -> WsServer {
        WsServer::start(None)
    }

    fn start(tls: Option<Arc<ServerConfig>>) -> WsServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, accepted) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = stop.clone();
        let is_tls = tls.is_some();
        let thread = thread::spawn(move || {
            while !stop_flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((tcp, _)) => {
                        let conn = ServerConn::spawn(tcp, tls.clone());
                        if tx.send(conn).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(1))
                    }
                    Err(_) => return,
                }
            }
        });
        WsServer {
            addr,
            tls: is_tls,
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `wss://127.0.0.1:port{path}` (or `ws://`).
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}{path}", self.addr)
    }

    /// The next accepted TCP connection (its handshake runs on the connection's thread).
    pub fn accept(&self, timeout: Duration) -> ServerConn {
        self.try_accept(timeout)
            .expect("no connection accepted in time")
    }

    /// Like `accept`, `None` on timeout.
    pub fn try_accept(&self, timeout: Duration) -> Option<ServerConn> {
        self.accepted.recv_timeout(timeout).ok()
    }
}

impl Drop for WsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What a server connection saw from the client (or how it ended).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerEvent {
    /// The WebSocket upgrade completed.
    Open,
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>),
    /// The connection thread ended; the reason in words.
    Ended(String),
}

enum Cmd {
    Frames {
        frames: Vec<Vec<u8>>,
        coalesce: bool,
    },
    Raw(Vec<u8>),
    TcpRaw(Vec<u8>),
    Chunking {
        bytes: usize,
        delay: Duration,
    },
    KeyUpdate,
    Stall(Duration),
    CloseNotify,
    WsClose(u16),
    CutTcp,
    CutMidRecord {
        payload: Vec<u8>,
        keep: usize,
    },
    Sync(Sender<()>),
}

/// A scripted server-side connection; dropping it ends the connection's thread.
pub struct ServerConn {
    cmd: Sender<Cmd>,
    events: Receiver<ServerEvent>,
}

impl ServerConn {
    fn spawn(tcp: TcpStream, tls: Option<Arc<ServerConfig>>) -> ServerConn {
        let (cmd, cmd_rx) = mpsc::channel();
        let (ev_tx, events) = mpsc::channel();
        thread::spawn(move || {
            let reason = serve(tcp, tls, cmd_rx, &ev_tx);
            let _ = ev_tx.send(ServerEvent::Ended(reason));
        });
        ServerConn { cmd, events }
    }

    /// One text frame.
    pub fn send_text(&self, text: impl Into<Vec<u8>>) {
        self.send_frames(vec![server_frame(0x1, true, &text.into())], false);
    }

    /// Prebuilt frames, each written on its own (one or more TLS records per frame), or
    /// `coalesce`d into one write (frames then share and straddle TLS records).
    pub fn send_frames(&self, frames: Vec<Vec<u8>>, coalesce: bool) {
        let _ = self.cmd.send(Cmd::Frames { frames, coalesce });
    }

    /// A ping with `payload` (≤ 125 bytes).
    pub fn ping(&self, payload: &[u8]) {
        self.send_frames(vec![server_frame(0x9, true, payload)], false);
    }

    /// Raw bytes into the (TLS) stream: partial frames, bad frames.
    pub fn send_raw(&self, bytes: Vec<u8>) {
        let _ = self.cmd.send(Cmd::Raw(bytes));
    }

    /// Raw bytes straight onto TCP, bypassing TLS (forged or broken records).
    pub fn send_tcp_raw(&self, bytes: Vec<u8>) {
        let _ = self.cmd.send(Cmd::TcpRaw(bytes));
    }

    /// From now on, split every TCP write into `bytes`-sized writes with `delay` between.
    pub fn set_chunking(&self, bytes: usize, delay: Duration) {
        let _ = self.cmd.send(Cmd::Chunking { bytes, delay });
    }

    /// TLS KeyUpdate (rustls `refresh_traffic_keys`: update_requested).
    pub fn key_update(&self) {
        let _ = self.cmd.send(Cmd::KeyUpdate);
    }

    /// Sleep without reading or writing.
    pub fn stall(&self, d: Duration) {
        let _ = self.cmd.send(Cmd::Stall(d));
    }

    /// TLS close_notify, then TCP close (no WebSocket close frame).
    pub fn close_notify(&self) {
        let _ = self.cmd.send(Cmd::CloseNotify);
    }

    /// WebSocket close frame with `code`, TLS close_notify, TCP close.
    pub fn ws_close(&self, code: u16) {
        let _ = self.cmd.send(Cmd::WsClose(code));
    }

    /// TCP shutdown without close_notify.
    pub fn cut_tcp(&self) {
        let _ = self.cmd.send(Cmd::CutTcp);
    }

    /// Encrypts a text frame with `payload`, sends only its first `keep` TLS bytes, then
    /// cuts TCP (TLS record truncated).
    pub fn cut_mid_record(&self, payload: Vec<u8>, keep: usize) {
        let _ = self.cmd.send(Cmd::CutMidRecord { payload, keep });
    }

    /// Waits until every command sent before has been executed and flushed.
    pub fn sync(&self, timeout: Duration) -> bool {
        let (tx, rx) = mpsc::channel();
        if self.cmd.send(Cmd::Sync(tx)).is_err() {
            return false;
        }
        rx.recv_timeout(timeout).is_ok()
    }

    /// The next event, `None` on timeout.
    pub fn recv(&self, timeout: Duration) -> Option<ServerEvent> {
        self.events.recv_timeout(timeout).ok()
    }

    /// Waits for an event matching `pred`, skipping others; `None` on timeout.
    pub fn recv_matching(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&ServerEvent) -> bool,
    ) -> Option<ServerEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ev = self.events.recv_timeout(left).ok()?;
            if pred(&ev) {
                return Some(ev);
            }
        }
    }
}

/// An unmasked server frame (RFC 6455 §5.2).
pub fn server_frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 10);
    out.push(if fin { 0x80 } else { 0 } | (opcode & 0x0F));
    let len = payload.len();
    if len < 126 {
        out.push(len as u8);
    } else if len <= 0xFFFF {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
    out
}

/// Server-side byte stream: rustls `ServerConnection` (or nothing) over a non-blocking
/// `TcpStream`, with controllable write chunking.
struct ServerIo {
    tcp: TcpStream,
    tls: Option<ServerConnection>,
    chunk: usize,
    chunk_delay: Duration,
}

impl ServerIo {
    /// Sends `bytes` to TCP in `chunk`-sized writes (blocking until done or deadline).
    fn send_tcp(&mut self, bytes: &[u8]) -> io::Result<()> {
        let deadline = Instant::now() + IO_DEADLINE;
        for piece in bytes.chunks(self.chunk.max(1)) {
            let mut sent = 0;
            while sent < piece.len() {
                match self.tcp.write(&piece[sent..]) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if Instant::now() > deadline {
                            return Err(io::ErrorKind::TimedOut.into());
                        }
                        thread::sleep(Duration::from_micros(100));
                    }
                    Err(e) => return Err(e),
                }
            }
            if !self.chunk_delay.is_zero() {
                thread::sleep(self.chunk_delay);
            }
        }
        Ok(())
    }

    /// Encrypted bytes rustls wants to send.
    fn take_tls_output(&mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        if let Some(tls) = &mut self.tls {
            while tls.wants_write() {
                tls.write_tls(&mut out)?;
            }
        }
        Ok(out)
    }

    fn push_tls(&mut self) -> io::Result<()> {
        let out = self.take_tls_output()?;
        self.send_tcp(&out)
    }
}

impl Read for ServerIo {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(tls) = &mut self.tls else {
                return self.tcp.read(buf);
            };
            match tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if tls.read_tls(&mut self.tcp)? == 0 {
                return Ok(0);
            }
            let state = tls
                .process_new_packets()
                .map(|_| ())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e));
            // Handshake replies, alerts, key-update answers.
            self.push_tls()?;
            state?;
        }
    }
}

impl Write for ServerIo {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.tls {
            None => {
                self.send_tcp(buf)?;
                Ok(buf.len())
            }
            Some(tls) => {
                let n = tls.writer().write(buf)?;
                self.push_tls()?;
                Ok(n)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.push_tls()
    }
}

/// The connection thread: handshake, then commands and reads until the end.
fn serve(
    tcp: TcpStream,
    tls: Option<Arc<ServerConfig>>,
    cmds: Receiver<Cmd>,
    events: &Sender<ServerEvent>,
) -> String {
    tcp.set_nonblocking(true).unwrap();
    tcp.set_nodelay(true).unwrap();
    let io = ServerIo {
        tcp,
        tls: tls.map(|c| ServerConnection::new(c).unwrap()),
        chunk: usize::MAX,
        chunk_delay: Duration::ZERO,
    };
    let config = WebSocketConfig::default().read_buffer_size(16 * 1024);
    let deadline = Instant::now() + IO_DEADLINE;
    let mut attempt = tungstenite::accept_with_config(io, Some(config));
    let mut ws: WebSocket<ServerIo> = loop {
        match attempt {
            Ok(ws) => break ws,
            Err(HandshakeError::Interrupted(mid)) => {
                if Instant::now() > deadline {
                    return "handshake timed out".into();
                }
                thread::sleep(Duration::from_micros(200));
                attempt = mid.handshake();
            }
            Err(HandshakeError::Failure(e)) => return format!("handshake failed: {e}"),
        }
    };
    let _ = events.send(ServerEvent::Open);
    loop {
        match cmds.recv_timeout(Duration::from_micros(200)) {
            Ok(cmd) => match exec(&mut ws, cmd) {
                Ok(true) => {}
                Ok(false) => return "closed by script".into(),
                Err(e) => return format!("server write failed: {e}"),
            },
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return "handle dropped".into(),
        }
        loop {
            match ws.read() {
                Ok(msg) => {
                    let ev = match msg {
                        Message::Text(t) => ServerEvent::Text(t.as_bytes().to_vec()),
                        Message::Binary(b) => ServerEvent::Binary(b.to_vec()),
                        Message::Ping(p) => ServerEvent::Ping(p.to_vec()),
                        Message::Pong(p) => ServerEvent::Pong(p.to_vec()),
                        Message::Close(c) => ServerEvent::Close(c.map(|c| u16::from(c.code))),
                        Message::Frame(_) => continue,
                    };
                    let _ = events.send(ev);
                }
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return format!("server read ended: {e}"),
            }
        }
    }
}

/// Executes one command; `Ok(false)` ends the connection.
fn exec(ws: &mut WebSocket<ServerIo>, cmd: Cmd) -> io::Result<bool> {
    // tungstenite's own queued replies go first, so raw bytes never land inside them.
    let _ = ws.flush();
    match cmd {
        Cmd::Frames { frames, coalesce } => {
            if coalesce {
                ws.get_mut().write_all(&frames.concat())?;
            } else {
                for f in frames {
                    ws.get_mut().write_all(&f)?;
                }
            }
            ws.get_mut().flush()?;
        }
        Cmd::Raw(bytes) => {
            ws.get_mut().write_all(&bytes)?;
            ws.get_mut().flush()?;
        }
        Cmd::TcpRaw(bytes) => {
            let io = ws.get_mut();
            io.push_tls()?;
            io.send_tcp(&bytes)?;
        }
        Cmd::Chunking { bytes, delay } => {
            let io = ws.get_mut();
            io.chunk = bytes.max(1);
            io.chunk_delay = delay;
        }
        Cmd::KeyUpdate => {
            let io = ws.get_mut();
            if let Some(tls) = &mut io.tls {
                tls.refresh_traffic_keys().map_err(io::Error::other)?;
            }
            io.push_tls()?;
        }
        Cmd::Stall(d) => thread::sleep(d),
        Cmd::CloseNotify => {
            let io = ws.get_mut();
            if let Some(tls) = &mut io.tls {
                tls.send_close_notify();
            }
            io.push_tls()?;
            let _ = io.tcp.shutdown(Shutdown::Both);
            return Ok(false);
        }
        Cmd::WsClose(code) => {
            let mut payload = code.to_be_bytes().to_vec();
            payload.extend_from_slice(b"bye");
            ws.get_mut().write_all(&server_frame(0x8, true, &payload))?;
            let io = ws.get_mut();
            if let Some(tls) = &mut io.tls {
                tls.send_close_notify();
            }
            io.push_tls()?;
            thread::sleep(Duration::from_millis(20));
            let _ = io.tcp.shutdown(Shutdown::Both);
            return Ok(false);
        }
        Cmd::CutTcp => {
            let io = ws.get_mut();
            io.push_tls()?;
            let _ = io.tcp.shutdown(Shutdown::Both);
            return Ok(false);
        }
        Cmd::CutMidRecord { payload, keep } => {
            let io = ws.get_mut();
            let frame = server_frame(0x1, true, &payload);
            let bytes = match &mut io.tls {
                Some(tls) => {
                    tls.writer().write_all(&frame)?;
                    io.take_tls_output()?
                }
                None => frame,
            };
            let keep = keep.min(bytes.len().saturating_sub(1));
            io.send_tcp(&bytes[..keep])?;
            thread::sleep(Duration::from_millis(20));
            let _ = io.tcp.shutdown(Shutdown::Both);
            return Ok(false);
        }
        Cmd::Sync(done) => {
            let _ = ws.get_mut().flush();
            let _ = done.send(());
        }
    }
    Ok(true)
}

// ---------------------------------------------------------------------------------------
// One-shot HTTPS responder
// ---------------------------------------------------------------------------------------

/// Serves one HTTPS connection on 127.0.0.1: reads the request head, writes `response`
/// verbatim (the test controls Content-Length / chunking), sends close_notify, closes.
/// The join handle yields the request head as text.
pub fn https_once(id: &ServerIdentity, response: Vec<u8>) -> (SocketAddr, JoinHandle<String>) {
    let config = server_tls_config(id);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(IO_DEADLINE)).unwrap();
        tcp.set_write_timeout(Some(IO_DEADLINE)).unwrap();
        let conn = ServerConnection::new(config).unwrap();
        let mut stream = StreamOwned::new(conn, tcp);
        let mut head = String::new();
        {
            let mut reader = BufReader::new(&mut stream);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let end = line == "\r\n";
                head.push_str(&line);
                if end {
                    break;
                }
            }
        }
        // Dribble the response in small writes so the client's parser sees it in pieces.
        for piece in response.chunks(7) {
            if stream.write_all(piece).is_err() {
                break;
            }
            let _ = stream.flush();
        }
        stream.conn.send_close_notify();
        let _ = stream.flush();
        let _ = stream.sock.shutdown(Shutdown::Both);
        head
    });
    (addr, handle)
}
