//! TLS 1.3 client: rustls for the handshake, our own record layer afterwards.
//!
//! Owns: `TlsRoots` and `TlsClientConfig` (which certificates we trust), `TlsHandshake`
//! (rustls's unbuffered client driven over a non-blocking `mio::net::TcpStream`) and
//! `TlsStream` (the established connection as `Read + Write`, what tungstenite sits on).
//!
//! Why not plain rustls after the handshake: rustls 0.23 allocates once per record
//! received and once per record sent (measured, DESIGN.md). So once the handshake is done
//! the session keys are taken out with `dangerous_into_kernel_connection()` — the hook made
//! for kernel TLS — and records are sealed and opened in place here (`record.rs`). rustls's
//! `KernelConnection` stays alive for the two things that still need its key schedule:
//! NewSessionTicket (stored for resumption) and KeyUpdate (next traffic secret).
//!
//! What this module therefore owns, per RFC 8446: record framing and limits (§5.1–5.2),
//! nonces (§5.3), padding and inner content type (§5.4), the AES-GCM usage limit (§5.5 —
//! a KeyUpdate is sent before it, and the peer is asked to update before its own), the
//! sequence-number ceiling, post-handshake KeyUpdate both ways (§4.6.3), alerts (§6:
//! close_notify is a clean EOF, user_canceled is ignored, anything else is fatal) and the
//! truncation rule (TCP EOF without close_notify is an error).
//!
//! Invariants: every buffer is allocated in `TlsHandshake::start` and never grows; a read
//! decrypts in place in the receive buffer and copies plaintext out once; a write copies
//! plaintext into the send buffer once and encrypts it there; `WouldBlock` is returned
//! only after the socket itself said `WouldBlock` (edge-triggered readiness stays sound);
//! a partial record survives any number of reads. After the first error the stream is
//! poisoned: it returns the same error forever (`fault()` says which).
//!
//! Never: accepts a certificate that does not chain to the configured roots for the
//! host name (there is no accept-any option), negotiates anything but TLS 1.3, allocates
//! or reads the clock after the handshake (except NewSessionTicket and KeyUpdate, which
//! call into rustls: rare, measured, stated in the tests). The one clock it reads is the
//! caller's `RxClock`, if it was given one (`set_rx_clock`: the receive stamps of the
//! per-stage latency histograms).

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::kernel::KernelConnection;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::unbuffered::ConnectionState;
use rustls::{ClientConfig, ProtocolVersion, RootCertStore, SupportedCipherSuite};

use crate::net::error::{CaFileProblem, CertProblem, TlsViolation};
use crate::net::record::{
    self, RecordKey, CT_ALERT, CT_APPLICATION_DATA, CT_HANDSHAKE, HEADER_LEN, OVERHEAD,
    PLAINTEXT_MAX, RECORD_MAX,
};
use crate::net::stamp::{ReadStamps, RxClock};
use crate::net::NetError;

/// Receive buffer: room for the largest handshake flight we accept and several records
/// per `read` syscall afterwards.
pub const RX_BUF_BYTES: usize = 64 * 1024;
/// Send buffer: four full records.
pub const TX_BUF_BYTES: usize = 4 * RECORD_MAX;
/// Post-handshake handshake-message reassembly (NewSessionTicket, KeyUpdate). A larger
/// NewSessionTicket is skipped (tickets are optional); any other larger message is fatal.
pub const HS_BUF_BYTES: usize = 16 * 1024;
/// KeyUpdates accepted from the peer without application data in between (same figure as
/// rustls and BoringSSL), against a key-update flood.
pub const KEY_UPDATES_WITHOUT_DATA_MAX: u32 = 32;
/// Records kept in reserve below a suite's confidentiality limit: the KeyUpdate goes out
/// this many records before the limit (RFC 8446 §5.5).
pub const KEY_UPDATE_MARGIN_RECORDS: u64 = 1 << 16;

/// Bytes of one sealed KeyUpdate record (4-byte header + 1-byte body).
pub const KEY_UPDATE_RECORD_BYTES: usize = OVERHEAD + 5;

const _: () = assert!(RX_BUF_BYTES >= 2 * RECORD_MAX);
const _: () = assert!(TX_BUF_BYTES >= RECORD_MAX + 64);

// Handshake message types (RFC 8446 §4) and alert codes (§6).
const HS_NEW_SESSION_TICKET: u8 = 4;
const HS_KEY_UPDATE: u8 = 24;
const ALERT_CLOSE_NOTIFY: u8 = 0;
const ALERT_USER_CANCELED: u8 = 90;

/// Which certificate authorities we trust.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsRoots {
    /// Mozilla's root program as shipped in `webpki-roots` (production: Binance).
    WebPki,
    /// Exactly the CA certificates in this PEM file (the local simulator, tests).
    CaFile(PathBuf),
}

/// A validated TLS client configuration, shared by every connection (and their session
/// tickets: reconnects resume).
#[derive(Clone, Debug)]
pub struct TlsClientConfig {
    config: Arc<ClientConfig>,
}

impl TlsClientConfig {
    /// TLS 1.3 only, ring provider, server certificate and name verified against `roots`,
    /// secret extraction enabled (our record layer needs the keys). Off the hot path.
    pub fn new(roots: &TlsRoots) -> Result<TlsClientConfig, NetError> {
        let mut config = base_config(roots)?;
        config.enable_secret_extraction = true;
        Ok(TlsClientConfig {
            config: Arc::new(config),
        })
    }

    /// The same trust, without secret extraction: for rustls's own buffered connection
    /// (REST, off the hot path).
    pub(crate) fn new_buffered(roots: &TlsRoots) -> Result<Arc<ClientConfig>, NetError> {
        Ok(Arc::new(base_config(roots)?))
    }
}

fn base_config(roots: &TlsRoots) -> Result<ClientConfig, NetError> {
    let store = root_store(roots)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|_| NetError::Bug("ring provider does not support TLS 1.3"))?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(config)
}

fn root_store(roots: &TlsRoots) -> Result<RootCertStore, NetError> {
    match roots {
        TlsRoots::WebPki => Ok(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        }),
        TlsRoots::CaFile(path) => {
            let mut store = RootCertStore::empty();
            let iter = CertificateDer::pem_file_iter(path)
                .map_err(|_| NetError::CaFile(CaFileProblem::Unreadable))?;
            for cert in iter {
                let cert = cert.map_err(|_| NetError::CaFile(CaFileProblem::Unreadable))?;
                store
                    .add(cert)
                    .map_err(|_| NetError::CaFile(CaFileProblem::Rejected))?;
            }
            if store.is_empty() {
                return Err(NetError::CaFile(CaFileProblem::NoCertificate));
            }
            Ok(store)
        }
    }
}

/// The server name rustls verifies the certificate against (DNS name or IP literal).
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, NetError> {
    ServerName::try_from(host.to_owned()).map_err(|_| NetError::InvalidServerName)
}

/// A TLS handshake in progress over a connected, non-blocking socket.
pub struct TlsHandshake {
    conn: UnbufferedClientConnection,
    io: Buffers,
}

/// What one `TlsHandshake::advance` achieved.
pub enum HandshakeProgress {
    /// The socket would block; call `advance` again on the next readiness event.
    Blocked(Box<TlsHandshake>),
    /// Handshake complete; the stream is ready for application data.
    Done(Box<TlsStream>),
}

impl TlsHandshake {
    /// Starts a handshake with `host` (the name the certificate must carry). Allocates every
    /// buffer the connection will use for its whole life.
    pub fn start(
        config: &TlsClientConfig,
        host: &str,
        sock: TcpStream,
    ) -> Result<TlsHandshake, NetError> {
        let conn = UnbufferedClientConnection::new(config.config.clone(), server_name(host)?)
            .map_err(map_rustls_error)?;
        Ok(TlsHandshake {
            conn,
            io: Buffers::new(sock),
        })
    }

    /// The socket, for (de)registration with mio.
    pub fn socket_mut(&mut self) -> &mut TcpStream {
        &mut self.io.sock
    }

    /// Drives the handshake as far as the socket allows. Consumes the handshake: it comes
    /// back as `Blocked` or becomes a `TlsStream`.
    pub fn advance(mut self: Box<Self>) -> Result<HandshakeProgress, NetError> {
        loop {
            if !self.io.flush_tx()? {
                return Ok(HandshakeProgress::Blocked(self));
            }
            let io = &mut self.io;
            let status = self
                .conn
                .process_tls_records(&mut io.rx[io.rx_start..io.rx_end]);
            let mut discard = status.discard;
            let mut need_read = false;
            let mut done = false;
            match status.state.map_err(map_rustls_error)? {
                ConnectionState::EncodeTlsData(mut enc) => {
                    let n = enc
                        .encode(&mut io.tx[io.tx_end..])
                        .map_err(|_| NetError::Bug("handshake flight larger than the tx buffer"))?;
                    io.tx_end += n;
                }
                ConnectionState::TransmitTlsData(t) => {
                    // Queued in `tx`, in order; flushed at the top of the loop.
                    t.done();
                }
                ConnectionState::BlockedHandshake => need_read = true,
                ConnectionState::WriteTraffic(_) => done = true,
                ConnectionState::ReadTraffic(mut r) => {
                    // Application data before our first write (not expected from a
                    // WebSocket server, kept for correctness).
                    while let Some(rec) = r.next_record() {
                        let rec = rec.map_err(map_rustls_error)?;
                        discard += rec.discard; // rustls's contract, before discarding
                        io.early.extend_from_slice(rec.payload);
                    }
                }
                ConnectionState::PeerClosed | ConnectionState::Closed => {
                    // close_notify before the handshake finished: the server refused us.
                    return Err(NetError::TlsProtocol(TlsViolation::HandshakeFailure));
                }
                _ => return Err(NetError::Bug("unexpected rustls handshake state")),
            }
            io.rx_start += discard;
            if done {
                return TlsStream::from_handshake(*self).map(HandshakeProgress::Done);
            }
            if need_read {
                match io.fill_rx()? {
                    Fill::Read => {}
                    Fill::WouldBlock => return Ok(HandshakeProgress::Blocked(self)),
                    Fill::Eof => return Err(NetError::TruncatedByPeer),
                    Fill::Full => {
                        return Err(NetError::TlsProtocol(
                            TlsViolation::HandshakeMessageTooLarge,
                        ))
                    }
                }
            }
        }
    }
}

/// An established TLS 1.3 connection with the record layer done here.
pub struct TlsStream {
    io: Buffers,
    kernel: KernelConnection<ClientConnectionData>,
    rx_key: RecordKey,
    tx_key: RecordKey,
    /// Send a KeyUpdate once `tx_key.seq()` reaches this; ask the peer for one once
    /// `rx_key.seq()` does.
    key_update_at_records: u64,
    /// Decrypted application data waiting in `io.rx` (in place): `[plain_start, plain_end)`.
    plain_start: usize,
    plain_end: usize,
    early_pos: usize,
    /// Post-handshake handshake bytes being reassembled, and bytes of an oversized
    /// NewSessionTicket still to skip.
    hs: Box<[u8]>,
    hs_len: usize,
    hs_skip: usize,
    key_update_reply_due: bool,
    key_update_requested: bool,
    key_updates_without_data: u32,
    peer_closed: bool,
    fault: Option<NetError>,
    stats: TlsStats,
    /// Stamps of the latest socket read and hand-over (only with a clock).
    stamps: ReadStamps,
}

/// Counters of one TLS connection (for the side thread's log).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TlsStats {
    /// Protected records received.
    pub records_in: u64,
    /// Protected records sent.
    pub records_out: u64,
    /// KeyUpdates received (each rotated our receive key).
    pub key_updates_in: u32,
    /// KeyUpdates sent (each rotated our send key).
    pub key_updates_out: u32,
    /// NewSessionTickets handed to rustls.
    pub tickets: u32,
}

impl TlsStream {
    fn from_handshake(hs: TlsHandshake) -> Result<Box<TlsStream>, NetError> {
        let TlsHandshake { conn, io } = hs;
        let (secrets, kernel) = conn
            .dangerous_into_kernel_connection()
            .map_err(map_rustls_error)?;
        if kernel.protocol_version() != ProtocolVersion::TLSv1_3 {
            return Err(NetError::NotTls13);
        }
        let limit = match kernel.negotiated_cipher_suite() {
            SupportedCipherSuite::Tls13(suite) => suite.common.confidentiality_limit,
            #[allow(unreachable_patterns)] // reachable only if rustls's `tls12` is enabled
            _ => return Err(NetError::NotTls13),
        };
        let rx_key = RecordKey::new(&secrets.rx.1, secrets.rx.0)?;
        let tx_key = RecordKey::new(&secrets.tx.1, secrets.tx.0)?;
        Ok(Box::new(TlsStream {
            io,
            kernel,
            rx_key,
            tx_key,
            key_update_at_records: limit.saturating_sub(KEY_UPDATE_MARGIN_RECORDS).max(1),
            plain_start: 0,
            plain_end: 0,
            early_pos: 0,
            hs: vec![0u8; HS_BUF_BYTES].into_boxed_slice(),
            hs_len: 0,
            hs_skip: 0,
            key_update_reply_due: false,
            key_update_requested: false,
            key_updates_without_data: 0,
            peer_closed: false,
            fault: None,
            stats: TlsStats::default(),
            stamps: ReadStamps::default(),
        }))
    }

    /// Lowers the automatic key-update threshold (records per key, both directions).
    /// Never raises it above the suite's confidentiality limit. Tests use a small value to
    /// exercise key updates; production keeps the suite's limit.
    pub fn set_key_update_after_records(&mut self, records: u64) {
        self.key_update_at_records = self.key_update_at_records.min(records.max(1));
    }

    /// Stamps every socket read that returns data and every hand-over of decrypted bytes
    /// with `clock` from now on (`None`: stamps nothing, reads no clock).
    pub fn set_rx_clock(&mut self, clock: Option<RxClock>) {
        self.stamps = ReadStamps::with_clock(clock);
    }

    /// The clock given to `set_rx_clock`.
    pub(crate) fn rx_clock(&self) -> Option<RxClock> {
        self.stamps.clock
    }

    /// The latest stamps: (read issued, read returned, decrypted bytes handed over).
    pub(crate) fn read_stamps(&self) -> (u64, u64, u64) {
        self.stamps.times()
    }

    /// The socket, for (de)registration with mio.
    pub fn socket_mut(&mut self) -> &mut TcpStream {
        &mut self.io.sock
    }

    /// The error that poisoned the stream, if any: the precise reason behind an
    /// `io::Error` this stream returned.
    pub fn fault(&self) -> Option<NetError> {
        self.fault
    }

    /// Whether the peer sent close_notify (a clean end of its data).
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// Counters.
    pub fn stats(&self) -> TlsStats {
        self.stats
    }

    /// Free bytes in the send buffer (a record needs its content + `record::OVERHEAD`).
    pub fn tx_free(&self) -> usize {
        self.io.tx_free()
    }

    /// Whether encrypted bytes are waiting for the socket.
    pub fn has_pending_tx(&self) -> bool {
        self.io.tx_start < self.io.tx_end
    }

    /// Seals a close_notify alert and tries to send everything queued. Best effort: the
    /// connection is being torn down anyway.
    pub fn close_notify(&mut self) {
        if self.fault.is_some() {
            return;
        }
        let _ = self.seal_into_tx(&[1, ALERT_CLOSE_NOTIFY], CT_ALERT);
        let _ = self.io.flush_tx();
    }

    // -- receive ---------------------------------------------------------------------------

    fn read_inner(&mut self, buf: &mut [u8]) -> Result<usize, NetError> {
        if let Some(e) = self.fault {
            return Err(e);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let mut n = 0;
        loop {
            // 1. Hand out what is already decrypted.
            if self.early_pos < self.io.early.len() {
                let src = &self.io.early[self.early_pos..];
                let k = src.len().min(buf.len() - n);
                buf[n..n + k].copy_from_slice(&src[..k]);
                self.early_pos += k;
                n += k;
            }
            if self.plain_start < self.plain_end {
                let k = (self.plain_end - self.plain_start).min(buf.len() - n);
                buf[n..n + k].copy_from_slice(&self.io.rx[self.plain_start..self.plain_start + k]);
                self.plain_start += k;
                n += k;
            }
            if n == buf.len() || self.peer_closed {
                return Ok(n);
            }
            // 2. Open the next complete record already buffered, if any. An error after
            //    some data was copied is kept for the next call: that data is delivered.
            match self.open_next_record() {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) if n > 0 => {
                    self.fault = Some(e);
                    return Ok(n);
                }
                Err(e) => return Err(e),
            }
            if n > 0 {
                return Ok(n);
            }
            // 3. Nothing buffered: answer pending key updates, push anything still queued
            //    (a caller that only reads, like a handshake waiting for its answer, must
            //    not leave its request behind), then go to the socket.
            self.service_key_updates()?;
            if self.io.tx_start < self.io.tx_end {
                self.io.flush_tx()?;
            }
            let started = self.stamps.before_read();
            match self.io.fill_rx()? {
                Fill::Read => self.stamps.read_returned(started),
                Fill::WouldBlock => return Err(NetError::Io(io::ErrorKind::WouldBlock)),
                Fill::Eof if self.io.rx_start < self.io.rx_end => {
                    return Err(NetError::TcpClosedMidRecord)
                }
                Fill::Eof => return Err(NetError::TruncatedByPeer),
                Fill::Full => return Err(NetError::Bug("rx buffer full with no complete record")),
            }
        }
    }

    /// Opens the record at the front of the receive window if it is complete. Returns
    /// whether a record was consumed.
    fn open_next_record(&mut self) -> Result<bool, NetError> {
        let io = &mut self.io;
        let Some((outer_type, len)) = record::parse_header(&io.rx[io.rx_start..io.rx_end]) else {
            return Ok(false);
        };
        // After the handshake every record is protected: outer type application_data,
        // no ChangeCipherSpec (RFC 8446 §5, §D.4).
        if outer_type != CT_APPLICATION_DATA {
            return Err(NetError::TlsProtocol(TlsViolation::UnexpectedMessage));
        }
        if len > record::CIPHERTEXT_MAX {
            return Err(NetError::TlsProtocol(TlsViolation::RecordOverflow));
        }
        let start = io.rx_start;
        let end = start + HEADER_LEN + len;
        if end > io.rx_end {
            return Ok(false);
        }
        let opened = self.rx_key.open(&mut io.rx[start..end])?;
        io.rx_start = end;
        self.stats.records_in += 1;
        let content = start + HEADER_LEN..start + HEADER_LEN + opened.content_len;
        match opened.content_type {
            CT_APPLICATION_DATA => {
                if self.hs_len > 0 || self.hs_skip > 0 {
                    // Handshake messages must not interleave with other records (§5.1).
                    return Err(NetError::TlsProtocol(TlsViolation::UnexpectedMessage));
                }
                self.plain_start = content.start;
                self.plain_end = content.end;
                self.key_updates_without_data = 0;
            }
            CT_HANDSHAKE => {
                if content.is_empty() {
                    return Err(NetError::TlsProtocol(TlsViolation::UnexpectedMessage));
                }
                self.on_handshake_bytes(content)?;
            }
            CT_ALERT => {
                let alert = &io.rx[content];
                let [_level, description] = alert else {
                    return Err(NetError::TlsProtocol(TlsViolation::DecodeError));
                };
                match *description {
                    ALERT_CLOSE_NOTIFY => self.peer_closed = true,
                    ALERT_USER_CANCELED => {}
                    code => return Err(NetError::TlsAlertReceived(code)),
                }
            }
            _ => return Err(NetError::TlsProtocol(TlsViolation::UnexpectedMessage)),
        }
        if self.rx_key.seq() >= self.key_update_at_records && !self.key_update_requested {
            // The peer's key is wearing out: ask it to update (it must answer, §4.6.3).
            self.key_update_requested = true;
            self.key_update_reply_due = true;
        }
        Ok(true)
    }

    /// Appends one handshake record's content to the reassembly buffer and processes every
    /// complete message in it.
    fn on_handshake_bytes(&mut self, content: std::ops::Range<usize>) -> Result<(), NetError> {
        let mut bytes = content;
        if self.hs_skip > 0 {
            let k = self.hs_skip.min(bytes.len());
            self.hs_skip -= k;
            bytes.start += k;
        }
        let room = self.hs.len() - self.hs_len;
        if bytes.len() > room {
            return Err(NetError::TlsProtocol(
                TlsViolation::HandshakeMessageTooLarge,
            ));
        }
        let n = bytes.len();
        self.hs[self.hs_len..self.hs_len + n].copy_from_slice(&self.io.rx[bytes]);
        self.hs_len += n;
        loop {
            let [msg_type, a, b, c, ..] = self.hs[..self.hs_len] else {
                return Ok(());
            };
            let body_len = u32::from_be_bytes([0, a, b, c]) as usize;
            let total = 4 + body_len;
            if total > self.hs.len() {
                if msg_type != HS_NEW_SESSION_TICKET {
                    return Err(NetError::TlsProtocol(
                        TlsViolation::HandshakeMessageTooLarge,
                    ));
                }
                // A ticket too large to keep: skip it; resumption is optional.
                self.hs_skip = total - self.hs_len;
                self.hs_len = 0;
                return Ok(());
            }
            if self.hs_len < total {
                return Ok(());
            }
            match msg_type {
                HS_NEW_SESSION_TICKET => {
                    self.kernel
                        .handle_new_session_ticket(&self.hs[4..total])
                        .map_err(|_| NetError::TlsProtocol(TlsViolation::DecodeError))?;
                    self.stats.tickets += 1;
                }
                HS_KEY_UPDATE => {
                    // KeyUpdate must end its record: the next record uses the new key (§5.1).
                    if body_len != 1 || self.hs_len != total {
                        return Err(NetError::TlsProtocol(TlsViolation::UnexpectedMessage));
                    }
                    let update_requested = match self.hs[4] {
                        0 => false,
                        1 => true,
                        _ => return Err(NetError::TlsProtocol(TlsViolation::DecodeError)),
                    };
                    self.key_updates_without_data += 1;
                    if self.key_updates_without_data > KEY_UPDATES_WITHOUT_DATA_MAX {
                        return Err(NetError::TlsProtocol(TlsViolation::TooManyKeyUpdates));
                    }
                    let (seq, secrets) = self
                        .kernel
                        .update_rx_secret()
                        .map_err(|_| NetError::Bug("rustls refused to update the rx secret"))?;
                    self.rx_key = RecordKey::new(&secrets, seq)?;
                    self.stats.key_updates_in += 1;
                    // Several requests while we were silent are answered by one update.
                    self.key_update_reply_due |= update_requested;
                    self.key_update_requested = false;
                }
                _ => return Err(NetError::TlsProtocol(TlsViolation::UnexpectedMessage)),
            }
            self.hs.copy_within(total..self.hs_len, 0);
            self.hs_len -= total;
        }
    }

    // -- send ------------------------------------------------------------------------------

    fn write_inner(&mut self, data: &[u8]) -> Result<usize, NetError> {
        if let Some(e) = self.fault {
            return Err(e);
        }
        if data.is_empty() {
            return Ok(0);
        }
        self.service_key_updates()?;
        if self.io.tx_free() < OVERHEAD + 1 {
            self.io.flush_tx()?;
        }
        let mut accepted = 0;
        while accepted < data.len() {
            let free = self.io.tx_free();
            if free < OVERHEAD + 1 {
                break;
            }
            let chunk = (data.len() - accepted)
                .min(PLAINTEXT_MAX)
                .min(free - OVERHEAD);
            self.seal_into_tx(&data[accepted..accepted + chunk], CT_APPLICATION_DATA)?;
            accepted += chunk;
            self.service_key_updates()?;
        }
        // Push now: latency matters more than coalescing.
        self.io.flush_tx()?;
        if accepted == 0 {
            return Err(NetError::Io(io::ErrorKind::WouldBlock));
        }
        Ok(accepted)
    }

    fn flush_inner(&mut self) -> Result<(), NetError> {
        if let Some(e) = self.fault {
            return Err(e);
        }
        self.service_key_updates()?;
        if self.io.flush_tx()? {
            Ok(())
        } else {
            Err(NetError::Io(io::ErrorKind::WouldBlock))
        }
    }

    /// Sends the KeyUpdate we owe (peer asked, or our own key is wearing out) if there is
    /// room; otherwise it stays due and goes out with the next write or flush.
    fn service_key_updates(&mut self) -> Result<(), NetError> {
        let own_key_worn = self.tx_key.seq() >= self.key_update_at_records;
        if !self.key_update_reply_due && !own_key_worn {
            return Ok(());
        }
        if self.io.tx_free() < KEY_UPDATE_RECORD_BYTES {
            self.io.flush_tx()?;
            if self.io.tx_free() < KEY_UPDATE_RECORD_BYTES {
                return Ok(());
            }
        }
        // Ask the peer to update too when its key is the one wearing out.
        let request = self.key_update_requested && self.rx_key.seq() >= self.key_update_at_records;
        let msg = [HS_KEY_UPDATE, 0, 0, 1, u8::from(request)];
        // Sealed with the old key; everything after it uses the new one (§4.6.3).
        self.seal_into_tx(&msg, CT_HANDSHAKE)?;
        let (seq, secrets) = self
            .kernel
            .update_tx_secret()
            .map_err(|_| NetError::Bug("rustls refused to update the tx secret"))?;
        self.tx_key = RecordKey::new(&secrets, seq)?;
        self.key_update_reply_due = false;
        self.stats.key_updates_out += 1;
        self.io.flush_tx()?;
        Ok(())
    }

    /// Copies `content` into the send buffer and seals it there as one record.
    fn seal_into_tx(&mut self, content: &[u8], content_type: u8) -> Result<(), NetError> {
        let io = &mut self.io;
        if io.tx_free() < content.len() + OVERHEAD {
            return Err(NetError::Bug("seal_into_tx without room"));
        }
        io.compact_tx();
        let at = io.tx_end;
        io.tx[at + HEADER_LEN..at + HEADER_LEN + content.len()].copy_from_slice(content);
        let n = self
            .tx_key
            .seal(&mut io.tx[at..], content.len(), content_type)?;
        io.tx_end += n;
        self.stats.records_out += 1;
        Ok(())
    }

    fn poison(&mut self, e: NetError) -> io::Error {
        if !matches!(e, NetError::Io(io::ErrorKind::WouldBlock)) {
            self.fault = Some(e);
        }
        io::Error::from(e.io_kind())
    }
}

impl Read for TlsStream {
    /// Returns decrypted application data; `Ok(0)` only after the peer's close_notify;
    /// `WouldBlock` only when the socket has nothing more. Does not allocate.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.read_inner(buf) {
            Ok(n) => {
                if n > 0 {
                    self.stamps.handed_over();
                }
                Ok(n)
            }
            Err(e) => Err(self.poison(e)),
        }
    }
}

impl Write for TlsStream {
    /// Seals `buf` (or the part that fits) into records and tries to send them at once.
    /// Does not allocate.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.write_inner(buf) {
            Ok(n) => Ok(n),
            Err(e) => Err(self.poison(e)),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.flush_inner() {
            Ok(()) => Ok(()),
            Err(e) => Err(self.poison(e)),
        }
    }
}

/// The socket and the connection's two fixed buffers (kept across the handshake).
struct Buffers {
    sock: TcpStream,
    rx: Box<[u8]>,
    rx_start: usize,
    rx_end: usize,
    tx: Box<[u8]>,
    tx_start: usize,
    tx_end: usize,
    /// Application data rustls decrypted during the handshake (normally never used).
    early: Vec<u8>,
}

/// Result of one socket read into the receive buffer.
enum Fill {
    Read,
    WouldBlock,
    Eof,
    Full,
}

impl Buffers {
    fn new(sock: TcpStream) -> Buffers {
        Buffers {
            sock,
            // Resident now: the hot thread's reads and writes fault nothing in later.
            rx: crate::mem::resident(RX_BUF_BYTES),
            rx_start: 0,
            rx_end: 0,
            tx: crate::mem::resident(TX_BUF_BYTES),
            tx_start: 0,
            tx_end: 0,
            early: Vec::new(),
        }
    }

    /// One `read` syscall into the free end of `rx` (compacting first if a whole record
    /// might not fit). Callers only call this when no decrypted data sits in `rx`.
    fn fill_rx(&mut self) -> Result<Fill, NetError> {
        if self.rx_start == self.rx_end {
            self.rx_start = 0;
            self.rx_end = 0;
        } else if self.rx.len() - self.rx_end < RECORD_MAX && self.rx_start > 0 {
            self.rx.copy_within(self.rx_start..self.rx_end, 0);
            self.rx_end -= self.rx_start;
            self.rx_start = 0;
        }
        if self.rx_end == self.rx.len() {
            return Ok(Fill::Full);
        }
        loop {
            match self.sock.read(&mut self.rx[self.rx_end..]) {
                Ok(0) => return Ok(Fill::Eof),
                Ok(n) => {
                    self.rx_end += n;
                    return Ok(Fill::Read);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Fill::WouldBlock),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(NetError::Io(e.kind())),
            }
        }
    }

    fn tx_free(&self) -> usize {
        self.tx.len() - (self.tx_end - self.tx_start)
    }

    fn compact_tx(&mut self) {
        if self.tx_start == self.tx_end {
            self.tx_start = 0;
            self.tx_end = 0;
        } else if self.tx_start > 0 {
            self.tx.copy_within(self.tx_start..self.tx_end, 0);
            self.tx_end -= self.tx_start;
            self.tx_start = 0;
        }
    }

    /// Writes queued bytes until done (`true`) or the socket would block (`false`).
    fn flush_tx(&mut self) -> Result<bool, NetError> {
        while self.tx_start < self.tx_end {
            match self.sock.write(&self.tx[self.tx_start..self.tx_end]) {
                Ok(0) => return Err(NetError::Io(io::ErrorKind::WriteZero)),
                Ok(n) => self.tx_start += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(NetError::Io(e.kind())),
            }
        }
        self.tx_start = 0;
        self.tx_end = 0;
        Ok(true)
    }
}

/// Sorts a rustls error by who is at fault.
pub(crate) fn map_rustls_error(e: rustls::Error) -> NetError {
    use rustls::CertificateError as C;
    use rustls::Error as E;
    match e {
        E::InvalidCertificate(c) => NetError::CertificateRejected(match c {
            C::UnknownIssuer => CertProblem::UnknownIssuer,
            C::NotValidForName | C::NotValidForNameContext { .. } => CertProblem::NotValidForName,
            C::Expired
            | C::ExpiredContext { .. }
            | C::NotValidYet
            | C::NotValidYetContext { .. } => CertProblem::Expired,
            _ => CertProblem::Invalid,
        }),
        E::NoCertificatesPresented => NetError::CertificateRejected(CertProblem::Missing),
        E::AlertReceived(a) => NetError::TlsAlertReceived(u8::from(a)),
        E::DecryptError => NetError::TlsProtocol(TlsViolation::BadRecordMac),
        E::PeerSentOversizedRecord => NetError::TlsProtocol(TlsViolation::RecordOverflow),
        E::InvalidMessage(_) => NetError::TlsProtocol(TlsViolation::DecodeError),
        E::InappropriateMessage { .. } | E::InappropriateHandshakeMessage { .. } => {
            NetError::TlsProtocol(TlsViolation::UnexpectedMessage)
        }
        E::PeerIncompatible(_) => NetError::NotTls13,
        E::PeerMisbehaved(_) => NetError::TlsProtocol(TlsViolation::HandshakeFailure),
        E::UnsupportedNameType => NetError::InvalidServerName,
        _ => NetError::TlsProtocol(TlsViolation::HandshakeFailure),
    }
}
