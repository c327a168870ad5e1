//! The one error type of the network layer.
//!
//! Owns: `NetError` and its small `Copy` detail enums. Every failure of the hot side
//! (TLS record layer, WebSocket, connection state machine) and of the cold side (REST,
//! configuration) is one of these values.
//!
//! Invariants: `NetError` is `Copy`, holds no heap data and costs nothing to create, so the
//! hot path can return, store and report it without allocating. Variants are sorted by who
//! is at fault: the peer (the venue or the simulator), the network, our configuration, a
//! bug in us. The caller decides what to log; this module never formats on the hot path
//! (`Display` is for the side thread).
//!
//! Never: carries a `String`, a `Box` or an `io::Error` (only its `Copy` kind).

use std::fmt;
use std::io;

/// A network-layer failure, sorted by who is at fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetError {
    // -- The peer misbehaved or refused us -------------------------------------------------
    /// The server's certificate was not accepted (untrusted, wrong name, expired, ...).
    CertificateRejected(CertProblem),
    /// The peer sent a fatal TLS alert; the value is the RFC 8446 §6 AlertDescription.
    TlsAlertReceived(u8),
    /// The peer broke the TLS protocol.
    TlsProtocol(TlsViolation),
    /// The server negotiated a protocol version other than TLS 1.3 (Binance serves 1.3;
    /// the record layer here implements only RFC 8446).
    NotTls13,
    /// The TCP stream ended, at a record boundary, without a TLS close_notify. RFC 8446
    /// §6.1 treats this as a possible truncation attack, so it is an error, not an EOF.
    TruncatedByPeer,
    /// The TCP stream ended in the middle of a TLS record.
    TcpClosedMidRecord,
    /// The WebSocket upgrade was refused; the value is the HTTP status code.
    WsUpgradeRefused(u16),
    /// The WebSocket upgrade response was not valid (missing/wrong headers or accept key).
    WsHandshakeInvalid,
    /// The peer broke the WebSocket protocol (masked server frame, bad opcode, ...).
    WsProtocol,
    /// The peer ended the stream without a WebSocket closing handshake.
    WsClosedWithoutHandshake,
    /// A WebSocket message or frame was larger than the configured maximum.
    WsMessageTooLarge,
    /// A WebSocket text frame was not valid UTF-8.
    WsInvalidUtf8,
    /// An HTTP response could not be parsed (REST).
    HttpMalformed,
    /// An HTTP response body exceeded the configured maximum (REST).
    HttpBodyTooLarge,

    // -- The network ------------------------------------------------------------------------
    /// Name resolution failed or returned no address.
    DnsFailed,
    /// A socket operation failed; the value is the OS error kind.
    Io(io::ErrorKind),
    /// The connection attempt (TCP + TLS + WebSocket) did not finish in time.
    HandshakeTimeout,
    /// A blocking REST request timed out.
    Timeout,
    /// Our send buffer is full: the socket does not drain (back-pressure). Try later.
    SendBufferFull,
    /// The operation needs an open connection and there is none.
    NotOpen,

    // -- Our configuration ------------------------------------------------------------------
    /// The URL is not `ws://`, `wss://`, `http://` or `https://` `host[:port][/path]`.
    InvalidUrl,
    /// The host is not a valid DNS name or IP address for TLS.
    InvalidServerName,
    /// The CA certificate file could not be used.
    CaFile(CaFileProblem),
    /// A configuration value is out of its allowed range; the value names the field.
    InvalidConfig(&'static str),
    /// A payload does not fit the preallocated send buffer.
    PayloadTooLarge,

    // -- A bug in us (or in a dependency) ---------------------------------------------------
    /// An internal invariant did not hold; the value says which.
    Bug(&'static str),
}

/// Why a server certificate was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertProblem {
    /// Not issued by a trusted root (or by the CA file given).
    UnknownIssuer,
    /// Valid, but not for the host name we connected to.
    NotValidForName,
    /// Expired or not yet valid.
    Expired,
    /// Bad signature, bad encoding, wrong key usage, revoked or another defect.
    Invalid,
    /// The server presented no certificate.
    Missing,
}

/// A TLS protocol violation by the peer (each maps to an RFC 8446 §6.2 alert).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsViolation {
    /// A record failed authentication (bad_record_mac).
    BadRecordMac,
    /// A record longer than 2^14 + 256 bytes, or plaintext over 2^14 (record_overflow).
    RecordOverflow,
    /// A message that is not allowed here (unexpected_message).
    UnexpectedMessage,
    /// A message that could not be decoded (decode_error).
    DecodeError,
    /// The peer sent too many KeyUpdates without application data in between.
    TooManyKeyUpdates,
    /// A post-handshake message too large for the preallocated buffer.
    HandshakeMessageTooLarge,
    /// The receive sequence number would wrap (RFC 8446 §5.3).
    SequenceExhausted,
    /// The handshake failed for another protocol reason reported by rustls.
    HandshakeFailure,
}

/// Why the CA certificate file was not usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaFileProblem {
    /// The file could not be read or is not valid PEM.
    Unreadable,
    /// The file holds no `CERTIFICATE` block.
    NoCertificate,
    /// A certificate in the file was rejected as a trust anchor.
    Rejected,
}

impl NetError {
    /// Who is at fault, for counters and log levels.
    pub fn fault(self) -> Fault {
        match self {
            NetError::CertificateRejected(_)
            | NetError::TlsAlertReceived(_)
            | NetError::TlsProtocol(_)
            | NetError::NotTls13
            | NetError::TruncatedByPeer
            | NetError::TcpClosedMidRecord
            | NetError::WsUpgradeRefused(_)
            | NetError::WsHandshakeInvalid
            | NetError::WsProtocol
            | NetError::WsClosedWithoutHandshake
            | NetError::WsMessageTooLarge
            | NetError::WsInvalidUtf8
            | NetError::HttpMalformed
            | NetError::HttpBodyTooLarge => Fault::Peer,
            NetError::DnsFailed
            | NetError::Io(_)
            | NetError::HandshakeTimeout
            | NetError::Timeout
            | NetError::SendBufferFull
            | NetError::NotOpen => Fault::Network,
            NetError::InvalidUrl
            | NetError::InvalidServerName
            | NetError::CaFile(_)
            | NetError::InvalidConfig(_)
            | NetError::PayloadTooLarge => Fault::Config,
            NetError::Bug(_) => Fault::Bug,
        }
    }

    /// The `io::ErrorKind` used when this error must travel through `std::io` (tungstenite
    /// sits on our `Read + Write`). A simple-kind `io::Error` does not allocate; the precise
    /// `NetError` stays with the stream (`TlsStream::fault`).
    pub(crate) fn io_kind(self) -> io::ErrorKind {
        match self {
            NetError::Io(kind) => kind,
            NetError::TruncatedByPeer | NetError::TcpClosedMidRecord => {
                io::ErrorKind::UnexpectedEof
            }
            NetError::SendBufferFull => io::ErrorKind::WouldBlock,
            _ => io::ErrorKind::InvalidData,
        }
    }
}

/// Who is at fault for a `NetError`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The venue (or simulator) misbehaved or refused us.
    Peer,
    /// The network between us failed or is slow.
    Network,
    /// Our configuration is wrong.
    Config,
    /// A bug in us.
    Bug,
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::CertificateRejected(p) => write!(f, "server certificate rejected: {p:?}"),
            NetError::TlsAlertReceived(code) => write!(f, "peer sent fatal TLS alert {code}"),
            NetError::TlsProtocol(v) => write!(f, "peer violated TLS: {v:?}"),
            NetError::NotTls13 => f.write_str("server did not negotiate TLS 1.3"),
            NetError::TruncatedByPeer => f.write_str("TCP closed without TLS close_notify"),
            NetError::TcpClosedMidRecord => f.write_str("TCP closed in the middle of a TLS record"),
            NetError::WsUpgradeRefused(s) => write!(f, "WebSocket upgrade refused: HTTP {s}"),
            NetError::WsHandshakeInvalid => f.write_str("invalid WebSocket upgrade response"),
            NetError::WsProtocol => f.write_str("peer violated the WebSocket protocol"),
            NetError::WsClosedWithoutHandshake => {
                f.write_str("stream ended without a WebSocket close frame")
            }
            NetError::WsMessageTooLarge => f.write_str("WebSocket message over the size limit"),
            NetError::WsInvalidUtf8 => f.write_str("WebSocket text frame is not UTF-8"),
            NetError::HttpMalformed => f.write_str("malformed HTTP response"),
            NetError::HttpBodyTooLarge => f.write_str("HTTP body over the size limit"),
            NetError::DnsFailed => f.write_str("DNS resolution failed"),
            NetError::Io(kind) => write!(f, "socket error: {kind}"),
            NetError::HandshakeTimeout => f.write_str("connection handshake timed out"),
            NetError::Timeout => f.write_str("request timed out"),
            NetError::SendBufferFull => f.write_str("send buffer full (socket not draining)"),
            NetError::NotOpen => f.write_str("connection is not open"),
            NetError::InvalidUrl => f.write_str("invalid URL"),
            NetError::InvalidServerName => f.write_str("host is not a valid TLS server name"),
            NetError::CaFile(p) => write!(f, "CA certificate file unusable: {p:?}"),
            NetError::InvalidConfig(field) => write!(f, "invalid network config: {field}"),
            NetError::PayloadTooLarge => f.write_str("payload larger than the send buffer"),
            NetError::Bug(what) => write!(f, "bug in the network layer: {what}"),
        }
    }
}

impl std::error::Error for NetError {}

impl From<io::Error> for NetError {
    fn from(e: io::Error) -> NetError {
        match e.kind() {
            io::ErrorKind::TimedOut => NetError::Timeout,
            kind => NetError::Io(kind),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_error_is_small_and_copy() {
        fn assert_copy<T: Copy>() {}
        assert_copy::<NetError>();
        assert!(std::mem::size_of::<NetError>() <= 24);
    }

    #[test]
    fn faults_are_sorted() {
        assert_eq!(NetError::TruncatedByPeer.fault(), Fault::Peer);
        assert_eq!(
            NetError::Io(io::ErrorKind::ConnectionReset).fault(),
            Fault::Network
        );
        assert_eq!(NetError::InvalidUrl.fault(), Fault::Config);
        assert_eq!(NetError::Bug("x").fault(), Fault::Bug);
    }

    #[test]
    fn io_kind_round_trip_does_not_lose_truncation() {
        assert_eq!(
            NetError::TruncatedByPeer.io_kind(),
            io::ErrorKind::UnexpectedEof
        );
        assert_eq!(
            NetError::Io(io::ErrorKind::BrokenPipe).io_kind(),
            io::ErrorKind::BrokenPipe
        );
    }
}
