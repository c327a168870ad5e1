//! WebSocket API session authentication: `session.logon`, `session.status`,
//! `session.logout`, and the per-connection state they keep.
//!
//! Binance (web-socket-api.md, "Session Authentication"): `session.logon` authenticates the
//! connection with an Ed25519 API key (`apiKey`, `timestamp`, optional `recvWindow`, and
//! the base64 Ed25519 signature of those parameters sorted by name). Afterwards, requests
//! that need a signature may omit `apiKey` and `signature` (they still carry `timestamp`),
//! and `userDataStream.subscribe` (without `.signature`) is allowed. Calling it again
//! replaces the key; `session.logout` forgets it (the connection stays open). All three
//! answer the session's state: `apiKey` and `authorizedSince` (`null` when not logged on),
//! `connectedSince`, `returnRateLimits`, `serverTime`, `userDataStream`.
//!
//! Errors: an HMAC key at `session.logon` is refused with -2015 (Binance documents
//! session.logon for Ed25519 keys only; the exact code it answers for an HMAC key is not in
//! PROTOCOL.md — -2015 "Invalid API-key, IP, or permissions for action." is our reading); a
//! bad signature -1022, a stale timestamp -1021, a missing parameter -1102, as for any
//! signed request (`api::verify_signed`).
//!
//! Never: keeps a key for longer than its connection, or lets a logon on one connection
//! authenticate another.

use std::cell::RefCell;

use crate::wire::{quote, Obj};

/// One connection's authentication.
#[derive(Debug)]
pub struct SessionState {
    /// When the connection was accepted, ms.
    connected_since_ms: i64,
    /// The key it is logged on with, and since when (ms).
    logon: RefCell<Option<(String, i64)>>,
}

impl SessionState {
    /// A connection accepted at `now_ms`, not logged on.
    pub fn new(now_ms: i64) -> SessionState {
        SessionState {
            connected_since_ms: now_ms,
            logon: RefCell::new(None),
        }
    }

    /// The API key the connection is logged on with.
    pub fn api_key(&self) -> Option<String> {
        self.logon.borrow().as_ref().map(|(key, _)| key.clone())
    }

    /// Logs on with `api_key` (replacing any earlier key).
    pub fn log_on(&self, api_key: String, now_ms: i64) {
        *self.logon.borrow_mut() = Some((api_key, now_ms));
    }

    /// Forgets the key.
    pub fn log_out(&self) {
        *self.logon.borrow_mut() = None;
    }

    /// The `result` of session.logon / status / logout.
    pub fn result(&self, now_ms: i64, user_data_stream: bool) -> String {
        let logon = self.logon.borrow();
        let (key, since) = match logon.as_ref() {
            Some((key, since)) => (quote(key), since.to_string()),
            None => (String::from("null"), String::from("null")),
        };
        Obj::new()
            .raw("apiKey", &key)
            .raw("authorizedSince", &since)
            .num("connectedSince", self.connected_since_ms)
            .raw("returnRateLimits", "true")
            .num("serverTime", now_ms)
            .raw(
                "userDataStream",
                if user_data_stream { "true" } else { "false" },
            )
            .end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logon_status_logout_shapes() {
        let s = SessionState::new(1_000);
        assert_eq!(
            s.result(2_000, false),
            r#"{"apiKey":null,"authorizedSince":null,"connectedSince":1000,"returnRateLimits":true,"serverTime":2000,"userDataStream":false}"#
        );
        s.log_on("k1".to_string(), 1_500);
        assert_eq!(s.api_key().as_deref(), Some("k1"));
        assert_eq!(
            s.result(2_000, true),
            r#"{"apiKey":"k1","authorizedSince":1500,"connectedSince":1000,"returnRateLimits":true,"serverTime":2000,"userDataStream":true}"#
        );
        s.log_out();
        assert_eq!(s.api_key(), None);
    }
}
