//! Blocking HTTPS GET for the depth snapshot and exchangeInfo. Off the hot path: it blocks,
//! allocates and may take seconds; run it on a side thread or before the engine starts.
//!
//! Owns: `RestClient` (TLS config + timeouts), `RestResponse`, the HTTP/1.1 response
//! parser (status line, headers, `Content-Length`, `Transfer-Encoding: chunked` with
//! trailers, or read-to-close), and the Binance headers we need (used weight, order count,
//! `Retry-After`).
//!
//! Invariants: one request per TCP connection (`Connection: close`); TLS 1.3 with the same
//! root options as the WebSocket side; every socket operation has a timeout; the response
//! head is bounded (`HEAD_BYTES_MAX`) and so is the body (`max_body_bytes`); a truncated
//! body (TCP closed early, or TLS without close_notify when the body runs to close) is an
//! error, never a short success.
//!
//! Never: follows redirects, decompresses (we send no `Accept-Encoding`), or reads the
//! clock (timeouts are the socket's).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rustls::{ClientConfig, ClientConnection, StreamOwned};

use crate::net::tls::{map_rustls_error, server_name, TlsClientConfig, TlsRoots};
use crate::net::url::{Scheme, Url};
use crate::net::NetError;

/// Largest response head (status line + headers) accepted.
pub const HEAD_BYTES_MAX: usize = 64 * 1024;
/// Default largest body: the full exchangeInfo is ~20 MB, a 5000-level snapshot ~300 KB.
pub const BODY_BYTES_MAX_DEFAULT: usize = 64 << 20;

/// A blocking HTTP(S) client.
#[derive(Clone, Debug)]
pub struct RestClient {
    tls: Arc<ClientConfig>,
    timeout: Duration,
    max_body_bytes: usize,
}

/// An HTTP response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestResponse {
    /// Status code.
    pub status: u16,
    /// The headers we use.
    pub headers: RestHeaders,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

/// The response headers the engine needs (Binance: PROTOCOL.md "Limits and errors").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestHeaders {
    /// `X-MBX-USED-WEIGHT-1M`.
    pub used_weight_1m: Option<u32>,
    /// `X-MBX-ORDER-COUNT-10S`.
    pub order_count_10s: Option<u32>,
    /// `Retry-After`, in seconds (429 / 418).
    pub retry_after_s: Option<u32>,
    /// `Content-Type`.
    pub content_type: Option<String>,
}

impl RestClient {
    /// A client trusting `roots`; `timeout` bounds the connect and every read and write.
    pub fn new(roots: &TlsRoots, timeout: Duration) -> Result<RestClient, NetError> {
        if timeout.is_zero() {
            return Err(NetError::InvalidConfig("rest timeout"));
        }
        Ok(RestClient {
            tls: TlsClientConfig::new_buffered(roots)?,
            timeout,
            max_body_bytes: BODY_BYTES_MAX_DEFAULT,
        })
    }

    /// Sets the largest body accepted.
    pub fn with_max_body_bytes(mut self, max_body_bytes: usize) -> RestClient {
        self.max_body_bytes = max_body_bytes;
        self
    }

    /// `GET url`.
    pub fn get(&self, url: &str) -> Result<RestResponse, NetError> {
        self.get_with_headers(url, &[])
    }

    /// `GET url` with extra request headers (e.g. `X-MBX-APIKEY`).
    pub fn get_with_headers(
        &self,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<RestResponse, NetError> {
        let url = Url::parse(url)?;
        if !matches!(url.scheme, Scheme::Http | Scheme::Https) {
            return Err(NetError::InvalidUrl);
        }
        let request = build_request(&url, headers)?;
        let tcp = self.connect(&url)?;
        if url.scheme == Scheme::Https {
            let conn = ClientConnection::new(self.tls.clone(), server_name(&url.host)?)
                .map_err(map_rustls_error)?;
            let mut stream = StreamOwned::new(conn, tcp);
            let result = exchange(&mut stream, &request, self.max_body_bytes);
            // Polite close only after a complete exchange: flushing a failed handshake
            // would try to finish it and wait for the read timeout.
            if result.is_ok() && !stream.conn.is_handshaking() {
                stream.conn.send_close_notify();
                let _ = stream.flush();
            }
            result
        } else {
            let mut tcp = tcp;
            exchange(&mut tcp, &request, self.max_body_bytes)
        }
    }

    fn connect(&self, url: &Url) -> Result<TcpStream, NetError> {
        let addrs: Vec<SocketAddr> = (url.host.as_str(), url.port)
            .to_socket_addrs()
            .map_err(|_| NetError::DnsFailed)?
            .collect();
        let mut last = NetError::DnsFailed;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.timeout) {
                Ok(tcp) => {
                    tcp.set_read_timeout(Some(self.timeout))?;
                    tcp.set_write_timeout(Some(self.timeout))?;
                    tcp.set_nodelay(true)?;
                    return Ok(tcp);
                }
                Err(e) => last = map_io(e),
            }
        }
        Err(last)
    }
}

/// Convenience: `GET url` with a fresh client and a 10 s timeout.
pub fn get(url: &str, roots: &TlsRoots) -> Result<RestResponse, NetError> {
    RestClient::new(roots, Duration::from_secs(10))?.get(url)
}

fn build_request(url: &Url, headers: &[(&str, &str)]) -> Result<Vec<u8>, NetError> {
    let host = if url.port == url.scheme.default_port() {
        if url.host.contains(':') {
            format!("[{}]", url.host)
        } else {
            url.host.clone()
        }
    } else {
        url.authority()
    };
    let mut req = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: mm/{}\r\nAccept: */*\r\nConnection: close\r\n",
        url.path,
        env!("CARGO_PKG_VERSION")
    );
    for (name, value) in headers {
        let has_line_break = |s: &str| s.bytes().any(|b| b == b'\r' || b == b'\n');
        if name.is_empty() || name.contains(':') || has_line_break(name) || has_line_break(value) {
            return Err(NetError::InvalidConfig("rest header"));
        }
        req.push_str(name);
        req.push_str(": ");
        req.push_str(value);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    Ok(req.into_bytes())
}

/// Sends `request` and reads one response.
fn exchange<S: Read + Write>(
    stream: &mut S,
    request: &[u8],
    max_body_bytes: usize,
) -> Result<RestResponse, NetError> {
    stream.write_all(request).map_err(map_io)?;
    stream.flush().map_err(map_io)?;
    read_response(BufReader::new(stream), max_body_bytes)
}

/// Parses one HTTP/1.1 response from `r` (RFC 9112).
pub fn read_response<R: BufRead>(
    mut r: R,
    max_body_bytes: usize,
) -> Result<RestResponse, NetError> {
    let mut head_bytes = 0usize;
    let (status, head) = loop {
        let status_line = read_line(&mut r, &mut head_bytes)?;
        let status = parse_status_line(&status_line)?;
        let head = read_headers(&mut r, &mut head_bytes)?;
        // Skip interim responses (100 Continue, 103 Early Hints).
        if !(100..200).contains(&status) {
            break (status, head);
        }
    };
    let body = if status == 204 || status == 304 {
        Vec::new()
    } else if head.chunked {
        read_chunked(&mut r, max_body_bytes)?
    } else if let Some(len) = head.content_length {
        let len = usize::try_from(len).map_err(|_| NetError::HttpBodyTooLarge)?;
        if len > max_body_bytes {
            return Err(NetError::HttpBodyTooLarge);
        }
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).map_err(map_io)?;
        body
    } else {
        let mut body = Vec::new();
        let limit = u64::try_from(max_body_bytes)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        r.take(limit).read_to_end(&mut body).map_err(map_io)?;
        if body.len() > max_body_bytes {
            return Err(NetError::HttpBodyTooLarge);
        }
        body
    };
    Ok(RestResponse {
        status,
        headers: head.headers,
        body,
    })
}

struct Head {
    headers: RestHeaders,
    content_length: Option<u64>,
    chunked: bool,
}

fn read_line<R: BufRead>(r: &mut R, head_bytes: &mut usize) -> Result<String, NetError> {
    let mut line = Vec::new();
    let limit = HEAD_BYTES_MAX.saturating_sub(*head_bytes) as u64;
    let n = r
        .by_ref()
        .take(limit)
        .read_until(b'\n', &mut line)
        .map_err(map_io)?;
    *head_bytes += n;
    if n == 0 {
        return Err(NetError::HttpMalformed);
    }
    if line.last() != Some(&b'\n') {
        return Err(if *head_bytes >= HEAD_BYTES_MAX {
            NetError::HttpMalformed
        } else {
            NetError::TruncatedByPeer
        });
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| NetError::HttpMalformed)
}

fn parse_status_line(line: &str) -> Result<u16, NetError> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let code = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") || code.len() != 3 {
        return Err(NetError::HttpMalformed);
    }
    match code.parse::<u16>() {
        Ok(status) if (100..600).contains(&status) => Ok(status),
        _ => Err(NetError::HttpMalformed),
    }
}

fn read_headers<R: BufRead>(r: &mut R, head_bytes: &mut usize) -> Result<Head, NetError> {
    let mut head = Head {
        headers: RestHeaders::default(),
        content_length: None,
        chunked: false,
    };
    loop {
        let line = read_line(r, head_bytes)?;
        if line.is_empty() {
            return Ok(head);
        }
        let (name, value) = line.split_once(':').ok_or(NetError::HttpMalformed)?;
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                let len = value.parse::<u64>().map_err(|_| NetError::HttpMalformed)?;
                if head.content_length.is_some_and(|l| l != len) {
                    return Err(NetError::HttpMalformed);
                }
                head.content_length = Some(len);
            }
            "transfer-encoding" => {
                // Chunked must be the final coding (RFC 9112 §6.1); we ask for no others.
                let last = value.rsplit(',').next().unwrap_or("").trim();
                if !last.eq_ignore_ascii_case("chunked") {
                    return Err(NetError::HttpMalformed);
                }
                head.chunked = true;
            }
            "content-type" => head.headers.content_type = Some(value.to_owned()),
            "retry-after" => head.headers.retry_after_s = value.parse().ok(),
            "x-mbx-used-weight-1m" => head.headers.used_weight_1m = value.parse().ok(),
            "x-mbx-order-count-10s" => head.headers.order_count_10s = value.parse().ok(),
            _ => {}
        }
    }
}

fn read_chunked<R: BufRead>(r: &mut R, max_body_bytes: usize) -> Result<Vec<u8>, NetError> {
    let mut body = Vec::new();
    loop {
        // Each chunk-size line (and the trailer section) is bounded like a head.
        let mut line_bytes = 0usize;
        let line = read_line(r, &mut line_bytes)?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| NetError::HttpMalformed)?;
        if size == 0 {
            // Trailer section, then the final empty line.
            loop {
                if read_line(r, &mut line_bytes)?.is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len().saturating_add(size) > max_body_bytes {
            return Err(NetError::HttpBodyTooLarge);
        }
        let at = body.len();
        body.resize(at + size, 0);
        r.read_exact(&mut body[at..]).map_err(map_io)?;
        let mut crlf = [0u8; 2];
        r.read_exact(&mut crlf).map_err(map_io)?;
        if crlf != *b"\r\n" {
            return Err(NetError::HttpMalformed);
        }
    }
}

/// Maps an io error from a blocking socket or rustls's stream.
fn map_io(e: io::Error) -> NetError {
    if let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return map_rustls_error(tls.clone());
    }
    match e.kind() {
        // A socket read timeout surfaces as WouldBlock on Unix, TimedOut elsewhere.
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => NetError::Timeout,
        io::ErrorKind::UnexpectedEof => NetError::TruncatedByPeer,
        kind => NetError::Io(kind),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> Result<RestResponse, NetError> {
        read_response(raw, 1 << 20)
    }

    #[test]
    fn content_length_body_and_binance_headers() {
        let r = parse(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json;charset=UTF-8\r\n\
              x-mbx-used-weight-1m: 20\r\nX-MBX-ORDER-COUNT-10S: 3\r\nContent-Length: 2\r\n\r\n{}",
        )
        .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"{}");
        assert_eq!(r.headers.used_weight_1m, Some(20));
        assert_eq!(r.headers.order_count_10s, Some(3));
        assert_eq!(
            r.headers.content_type.as_deref(),
            Some("application/json;charset=UTF-8")
        );
    }

    #[test]
    fn chunked_body_with_extensions_and_trailers() {
        let r = parse(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              4;ext=1\r\n{\"a\"\r\nA\r\n:[1,2,3,4]\r\n1\r\n}\r\n0\r\nX-Trailer: y\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.body, b"{\"a\":[1,2,3,4]}");
    }

    #[test]
    fn interim_responses_are_skipped_and_429_keeps_retry_after() {
        let r = parse(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\n\
              Content-Length: 0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.status, r.headers.retry_after_s), (429, Some(7)));
        assert!(r.body.is_empty());
    }

    #[test]
    fn read_to_close_body() {
        let r = parse(b"HTTP/1.0 200 OK\r\n\r\nhello").unwrap();
        assert_eq!(r.body, b"hello");
    }

    #[test]
    fn malformed_and_truncated_responses_are_errors() {
        assert_eq!(
            parse(b"HTTX/1.1 200 OK\r\n\r\n"),
            Err(NetError::HttpMalformed)
        );
        assert_eq!(
            parse(b"HTTP/1.1 2000 OK\r\n\r\n"),
            Err(NetError::HttpMalformed)
        );
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nNoColon\r\n\r\n"),
            Err(NetError::HttpMalformed)
        );
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"),
            Err(NetError::TruncatedByPeer)
        );
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n"),
            Err(NetError::HttpMalformed)
        );
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
            Err(NetError::HttpMalformed)
        );
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nContent-"),
            Err(NetError::TruncatedByPeer)
        );
    }

    #[test]
    fn body_limit_is_enforced() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(read_response(&raw[..], 4), Err(NetError::HttpBodyTooLarge));
        let raw = b"HTTP/1.1 200 OK\r\n\r\nhello";
        assert_eq!(read_response(&raw[..], 4), Err(NetError::HttpBodyTooLarge));
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        assert_eq!(read_response(&raw[..], 4), Err(NetError::HttpBodyTooLarge));
    }

    #[test]
    fn request_has_host_and_refuses_header_injection() {
        let url = Url::parse("https://api.binance.com/api/v3/depth?symbol=BTCUSDT").unwrap();
        let req =
            String::from_utf8(build_request(&url, &[("X-MBX-APIKEY", "k")]).unwrap()).unwrap();
        assert!(req
            .starts_with("GET /api/v3/depth?symbol=BTCUSDT HTTP/1.1\r\nHost: api.binance.com\r\n"));
        assert!(req.contains("X-MBX-APIKEY: k\r\n"));
        assert!(req.ends_with("\r\n\r\n"));
        let url = Url::parse("http://127.0.0.1:8080/x").unwrap();
        let req = String::from_utf8(build_request(&url, &[]).unwrap()).unwrap();
        assert!(req.contains("Host: 127.0.0.1:8080\r\n"));
        assert_eq!(
            build_request(&url, &[("X", "a\r\nEvil: 1")]),
            Err(NetError::InvalidConfig("rest header"))
        );
    }
}
