//! Endpoint URLs: `wss://host[:port][/path]` and friends, parsed once at configuration time.
//!
//! Owns: `Url` and `Scheme`. Accepts `ws`, `wss`, `http`, `https`; a DNS name, an IPv4
//! address or a bracketed IPv6 address; an optional port (default 80 / 443); a path with
//! an optional query (default `/`). A fragment is dropped (it is never sent on the wire).
//!
//! Invariants: `host` is non-empty, holds no brackets, whitespace, `@` or `/`; `path`
//! starts with `/`. Never: user info in the URL (credentials travel in headers or
//! signatures, never in a URL that may end up in a log).

use std::fmt;

use crate::net::NetError;

/// The protocol named by a URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// WebSocket over plain TCP (tests and the local simulator only).
    Ws,
    /// WebSocket over TLS 1.3.
    Wss,
    /// HTTP over plain TCP (tests and the local simulator only).
    Http,
    /// HTTP over TLS 1.3.
    Https,
}

impl Scheme {
    /// Whether the connection is wrapped in TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, Scheme::Wss | Scheme::Https)
    }

    /// The port used when the URL names none.
    pub fn default_port(self) -> u16 {
        if self.is_tls() {
            443
        } else {
            80
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Scheme::Ws => "ws",
            Scheme::Wss => "wss",
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// A parsed endpoint URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// The protocol.
    pub scheme: Scheme,
    /// DNS name or IP address, without brackets.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Url {
    /// Parses `scheme://host[:port][/path][?query][#fragment]`.
    pub fn parse(text: &str) -> Result<Url, NetError> {
        let text = text.trim();
        let (scheme_text, rest) = text.split_once("://").ok_or(NetError::InvalidUrl)?;
        let scheme = match scheme_text.to_ascii_lowercase().as_str() {
            "ws" => Scheme::Ws,
            "wss" => Scheme::Wss,
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            _ => return Err(NetError::InvalidUrl),
        };
        let rest = rest.split('#').next().unwrap_or("");
        let path_at = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(path_at);
        if authority.is_empty() || authority.contains('@') {
            return Err(NetError::InvalidUrl);
        }
        let (host, port_text) = split_host_port(authority)?;
        if host.is_empty()
            || host
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "[]/@".contains(c))
        {
            return Err(NetError::InvalidUrl);
        }
        let port = match port_text {
            None => scheme.default_port(),
            Some(p) => match p.parse::<u16>() {
                Ok(port) if port != 0 => port,
                _ => return Err(NetError::InvalidUrl),
            },
        };
        if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(NetError::InvalidUrl);
        }
        let path = if path.is_empty() {
            "/".to_owned()
        } else if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_owned()
        };
        Ok(Url {
            scheme,
            host: host.to_owned(),
            port,
            path,
        })
    }

    /// `host:port` as used in the HTTP `Host` header (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.scheme.as_str(),
            self.authority(),
            self.path
        )
    }
}

/// Splits `host[:port]` or `[v6]:port`.
fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), NetError> {
    if let Some(after) = authority.strip_prefix('[') {
        let (host, tail) = after.split_once(']').ok_or(NetError::InvalidUrl)?;
        return match tail {
            "" => Ok((host, None)),
            t => match t.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err(NetError::InvalidUrl),
            },
        };
    }
    match authority.rsplit_once(':') {
        Some((host, _)) if host.contains(':') => Err(NetError::InvalidUrl), // bare IPv6
        Some((host, port)) => Ok((host, Some(port))),
        None => Ok((authority, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_binance_endpoints() {
        let u =
            Url::parse("wss://stream.binance.com:9443/stream?streams=btcusdt@bookTicker").unwrap();
        assert_eq!(u.scheme, Scheme::Wss);
        assert_eq!(u.host, "stream.binance.com");
        assert_eq!(u.port, 9443);
        assert_eq!(u.path, "/stream?streams=btcusdt@bookTicker");
        let u =
            Url::parse("https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit=5000").unwrap();
        assert_eq!((u.scheme, u.port), (Scheme::Https, 443));
        assert_eq!(u.path, "/api/v3/depth?symbol=BTCUSDT&limit=5000");
    }

    #[test]
    fn defaults_and_literals() {
        let u = Url::parse("ws://127.0.0.1").unwrap();
        assert_eq!((u.port, u.path.as_str()), (80, "/"));
        let u = Url::parse("wss://[::1]:8443/ws#frag").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("::1", 8443, "/ws")
        );
        assert_eq!(u.authority(), "[::1]:8443");
        let u = Url::parse("WSS://Host?x=1").unwrap();
        assert_eq!(u.path, "/?x=1");
        assert_eq!(u.to_string(), "wss://Host:443/?x=1");
    }

    #[test]
    fn rejects_bad_urls() {
        for bad in [
            "",
            "stream.binance.com",
            "ftp://x/",
            "wss://",
            "wss://:443/",
            "wss://user:pw@host/",
            "wss://host:0/",
            "wss://host:99999/",
            "wss://host:abc/",
            "wss://::1/",
            "wss://[::1/",
            "wss://[::1]x/",
            "wss://ho st/",
            "wss://host/pa th",
        ] {
            assert_eq!(Url::parse(bad), Err(NetError::InvalidUrl), "{bad}");
        }
    }
}
