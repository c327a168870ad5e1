//! The WebSocket API (`/ws-api/v3`): one JSON request in, one JSON response out, plus
//! executionReports to the connections that called `userDataStream.subscribe`.
//!
//! Checks run in Binance's order of concern: request shape (-1135 / -1102), request
//! weight (429, -1003), then for signed methods the API key (-1102 / -2015), the HMAC or
//! Ed25519 signature (-1022) and the timestamp against `recvWindow` (-1021) — a connection
//! logged on with `session.logon` (session.rs) may omit `apiKey` and `signature` — then
//! the parameters
//! (-1102 missing, -1100 illegal characters, -1111 precision, -1117/-1116/-1115/-1106
//! enums), then the rate-limit fault and the ORDERS limit (429, -1015), then the matching
//! (-1013 filters, -2010, -2011). Every response carries `rateLimits` (ORDERS entries too
//! for order placement).
//!
//! Supported methods: `ping`, `time`, `exchangeInfo`, `order.place` (LIMIT with GTC,
//! LIMIT_MAKER), `order.cancel`, `order.cancelReplace`, `order.status` (open orders; a
//! closed or unknown one is -2013 "Order does not exist.": no history is kept),
//! `openOrders.status` (`[]` when
//! nothing is open), `openOrders.cancelAll` (-2011 "Unknown order sent." when nothing is
//! open, as Binance answers), `account.status` (`omitZeroBalances` optional),
//! `userDataStream.subscribe` (signed, or unsigned on a logged-on connection; unsigned
//! without a logon is refused -1002 "You are not authorized to execute this request." —
//! our reading of Binance's rule that it needs an authenticated session; the code is not
//! in PROTOCOL.md), `userDataStream.subscribe.signature`, `userDataStream.unsubscribe`,
//! `session.logon` / `session.status` / `session.logout` (Ed25519 keys, session.rs). The
//! account has one HMAC key and optionally one Ed25519 key (`--ed25519-api-key`). User-data
//! subscribers get each executionReport batch followed by an `outboundAccountPosition`.
//! Anything else is answered -1020 "This operation is not supported." — including MARKET
//! orders and IOC/FOK.

use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;

use mm::types::{parse_atoms, DecimalError, Side};
use serde_json::{Map, Value};

use crate::clock;
use crate::config::Config;
use crate::matching::{Execution, NewOrder, OrderRef, OrderType, Reject};
use crate::session::SessionState;
use crate::sign;
use crate::state::{Exchange, Faults, Outbound, Shared};
use crate::wire::{self, array, cancel_result, order_result, status_result, Obj, RespType};

/// Per-connection state of a WebSocket API client.
#[derive(Debug)]
pub struct ApiConn {
    /// Connection id.
    pub conn_id: u64,
    /// Where this connection's user-data events go.
    pub events: Sender<Outbound>,
    /// Its `session.logon` state.
    pub session: SessionState,
}

impl ApiConn {
    /// A connection accepted now, not logged on.
    pub fn new(conn_id: u64, events: Sender<Outbound>) -> ApiConn {
        ApiConn {
            conn_id,
            events,
            session: SessionState::new(clock::wall_ms()),
        }
    }
}

/// A refused request: HTTP-like status, Binance code and message, optional `data`.
#[derive(Debug, Clone)]
struct Failure {
    status: u16,
    code: i32,
    msg: String,
    data: String,
}

impl Failure {
    fn new(code: i32, msg: impl Into<String>) -> Failure {
        let status = match code {
            -1003 | -1015 => 429,
            -2015 | -2014 | -1002 => 401,
            _ => 400,
        };
        Failure {
            status,
            code,
            msg: msg.into(),
            data: String::new(),
        }
    }

    fn with_data(mut self, data: String) -> Failure {
        self.data = data;
        self
    }

    fn limited(code: i32, msg: String, now_ms: i64, retry_ms: i64) -> Failure {
        let data = Obj::new()
            .num("serverTime", now_ms)
            .num("retryAfter", retry_ms)
            .end();
        Failure::new(code, msg).with_data(data)
    }

    fn missing(name: &str) -> Failure {
        Failure::new(
            -1102,
            format!("Mandatory parameter '{name}' was not sent, was empty/null, or malformed."),
        )
    }
}

impl From<Reject> for Failure {
    fn from(r: Reject) -> Failure {
        Failure::new(r.code, r.msg)
    }
}

/// Handles one request text; returns the response text.
pub fn handle(shared: &Shared, conn: &ApiConn, text: &str) -> String {
    let now_ms = clock::wall_ms();
    let mut ex = shared.lock();
    ex.counters.api_requests += 1;
    let (id, method, params) = match parse_request(text) {
        Ok(parts) => parts,
        Err((id, f)) => {
            ex.count_error(f.code, f.status);
            let limits = ex.limits.json(now_ms, false);
            return wire::error_response(&id, f.status, f.code, &f.msg, &f.data, &limits);
        }
    };
    *ex.counters.api_by_method.entry(method.clone()).or_insert(0) += 1;
    let with_orders = matches!(method.as_str(), "order.place" | "order.cancelReplace");
    let outcome = match ex.limits.add_weight(now_ms, weight_of(&method, &params)) {
        Some((msg, retry)) => Err(Failure::limited(-1003, msg, now_ms, retry)),
        None => dispatch(shared, &mut ex, conn, &method, &params, now_ms),
    };
    // `"returnRateLimits": false` hides the array (the request is still counted).
    let limits = if params.get("returnRateLimits") == Some(&Value::Bool(false)) {
        String::new()
    } else {
        ex.limits.json(now_ms, with_orders)
    };
    match outcome {
        Ok(result) => wire::ok_response(&id, &result, &limits),
        Err(f) => {
            ex.count_error(f.code, f.status);
            wire::error_response(&id, f.status, f.code, &f.msg, &f.data, &limits)
        }
    }
}

/// A request split into (id as JSON text, method, params).
type Request = (String, String, Map<String, Value>);

/// Splits a request; on error returns the id it could read with the failure.
fn parse_request(text: &str) -> Result<Request, (String, Failure)> {
    let null = || String::from("null");
    let value: Value = serde_json::from_str(text)
        .map_err(|_| (null(), Failure::new(-1135, "Invalid JSON Request")))?;
    let Value::Object(mut request) = value else {
        return Err((null(), Failure::new(-1135, "Invalid JSON Request")));
    };
    let id = match request.get("id") {
        None => null(),
        Some(v @ (Value::String(_) | Value::Number(_) | Value::Null)) => v.to_string(),
        Some(_) => {
            return Err((
                null(),
                Failure::new(-1100, "Illegal characters found in parameter 'id'."),
            ))
        }
    };
    let method = match request.get("method") {
        Some(Value::String(m)) if !m.is_empty() => m.strip_prefix("v3/").unwrap_or(m).to_string(),
        _ => return Err((id, Failure::missing("method"))),
    };
    let params = match request.remove("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(p)) => p,
        Some(_) => {
            return Err((
                id,
                Failure::new(
                    -1135,
                    "Invalid 'params' in JSON request; expected an object.",
                ),
            ))
        }
    };
    Ok((id, method, params))
}

/// Request weight by method (web-socket-api.md).
fn weight_of(method: &str, params: &Map<String, Value>) -> u64 {
    match method {
        "exchangeInfo" | "account.status" => 20,
        "openOrders.status" if params.contains_key("symbol") => 6,
        "openOrders.status" => 80,
        "order.status" => 4,
        "userDataStream.subscribe" | "userDataStream.subscribe.signature" => 2,
        "userDataStream.unsubscribe" => 2,
        "session.logon" | "session.status" | "session.logout" => 2,
        _ => 1,
    }
}

fn dispatch(
    shared: &Shared,
    ex: &mut Exchange,
    conn: &ApiConn,
    method: &str,
    params: &Map<String, Value>,
    now_ms: i64,
) -> Result<String, Failure> {
    match method {
        "ping" => Ok(String::from("{}")),
        "time" => Ok(Obj::new().num("serverTime", now_ms).end()),
        "exchangeInfo" => Ok(wire::exchange_info(&ex.info_spec(&shared.cfg), now_ms)),
        "order.place" => {
            authenticate(shared, conn, params, now_ms)?;
            counted_new(ex, |ex| place(shared, ex, params, now_ms))
        }
        "order.cancel" => {
            authenticate(shared, conn, params, now_ms)?;
            counted_cancel(ex, |ex| cancel(ex, params, now_ms))
        }
        "order.cancelReplace" => {
            authenticate(shared, conn, params, now_ms)?;
            cancel_replace(shared, ex, params, now_ms)
        }
        "openOrders.status" => {
            authenticate(shared, conn, params, now_ms)?;
            if let Some(symbol) = text_param(params, "symbol") {
                check_symbol(ex, &symbol)?;
            }
            let symbol = ex.symbol.clone();
            Ok(array(
                ex.matcher
                    .open_orders()
                    .into_iter()
                    .map(|o| status_result(&symbol, o)),
            ))
        }
        "order.status" => {
            authenticate(shared, conn, params, now_ms)?;
            let symbol = text_param(params, "symbol").ok_or_else(|| Failure::missing("symbol"))?;
            check_symbol(ex, &symbol)?;
            let by = order_ref(params, "orderId", "origClientOrderId")?;
            // Open orders only: the simulator keeps no history of closed ones.
            let not_found = || Failure::new(-2013, "Order does not exist.");
            let id = ex.matcher.find(&by).map_err(|_| not_found())?;
            let symbol = ex.symbol.clone();
            let open = ex.matcher.open_orders();
            let order = open
                .into_iter()
                .find(|o| o.id == id)
                .ok_or_else(not_found)?;
            Ok(status_result(&symbol, order))
        }
        "openOrders.cancelAll" => {
            authenticate(shared, conn, params, now_ms)?;
            counted_cancel(ex, |ex| cancel_all(ex, params, now_ms))
        }
        "account.status" => {
            authenticate(shared, conn, params, now_ms)?;
            let omit_zero = bool_param(params, "omitZeroBalances")?.unwrap_or(false);
            Ok(wire::account_status(&ex.account(), omit_zero))
        }
        "userDataStream.subscribe" | "userDataStream.subscribe.signature" => {
            let signed = method.ends_with(".signature") || params.contains_key("signature");
            if signed {
                authenticate(shared, conn, params, now_ms)?;
            } else if conn.session.api_key().is_none() {
                return Err(Failure::new(
                    -1002,
                    "You are not authorized to execute this request.",
                ));
            }
            if !ex.listeners.iter().any(|(id, _)| *id == conn.conn_id) {
                ex.listeners.push((conn.conn_id, conn.events.clone()));
            }
            let id = i64::from(wire::USER_DATA_SUBSCRIPTION_ID);
            Ok(Obj::new().num("subscriptionId", id).end())
        }
        "userDataStream.unsubscribe" => {
            ex.listeners.retain(|(id, _)| *id != conn.conn_id);
            Ok(String::from("{}"))
        }
        "session.logon" => {
            let key = verify_signed(&shared.cfg, params, now_ms)?;
            if key == KeyKind::Hmac {
                return Err(Failure::new(
                    -2015,
                    "Invalid API-key, IP, or permissions for action.",
                ));
            }
            let api_key = text_param(params, "apiKey").unwrap_or_default();
            conn.session.log_on(api_key, now_ms);
            Ok(session_result(ex, conn, now_ms))
        }
        "session.status" => Ok(session_result(ex, conn, now_ms)),
        "session.logout" => {
            conn.session.log_out();
            Ok(session_result(ex, conn, now_ms))
        }
        _ => Err(Failure::new(-1020, "This operation is not supported.")),
    }
}

/// Counts a new-order attempt and its refusal.
fn counted_new(
    ex: &mut Exchange,
    f: impl FnOnce(&mut Exchange) -> Result<String, Failure>,
) -> Result<String, Failure> {
    ex.counters.orders_received += 1;
    let out = f(ex);
    if let Err(fail) = &out {
        count_new_reject(ex, fail.code);
    }
    out
}

fn count_new_reject(ex: &mut Exchange, code: i32) {
    ex.counters.orders_rejected += 1;
    *ex.counters.orders_rejected_by_code.entry(code).or_insert(0) += 1;
}

/// Counts a cancel attempt and its refusal.
fn counted_cancel(
    ex: &mut Exchange,
    f: impl FnOnce(&mut Exchange) -> Result<String, Failure>,
) -> Result<String, Failure> {
    ex.counters.cancels_received += 1;
    let out = f(ex);
    if out.is_err() {
        ex.counters.cancels_rejected += 1;
    }
    out
}

/// The result of the `session.*` methods.
fn session_result(ex: &Exchange, conn: &ApiConn, now_ms: i64) -> String {
    let subscribed = ex.listeners.iter().any(|(id, _)| *id == conn.conn_id);
    conn.session.result(now_ms, subscribed)
}

/// Which of the account's keys signed a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyKind {
    Hmac,
    Ed25519,
}

/// A signed request: API key, signature, timestamp (see the file doc for the order). A
/// connection logged on with `session.logon` may leave out both `apiKey` and `signature`
/// (the timestamp is still checked).
fn authenticate(
    shared: &Shared,
    conn: &ApiConn,
    params: &Map<String, Value>,
    now_ms: i64,
) -> Result<(), Failure> {
    let bare = !params.contains_key("apiKey") && !params.contains_key("signature");
    if bare && conn.session.api_key().is_some() {
        let timestamp =
            int_param(params, "timestamp")?.ok_or_else(|| Failure::missing("timestamp"))?;
        return check_timestamp(timestamp, recv_window_param(params)?, now_ms);
    }
    verify_signed(&shared.cfg, params, now_ms).map(|_| ())
}

/// API key, signature (HMAC hex or Ed25519 base64, by the key), timestamp.
fn verify_signed(
    cfg: &Config,
    params: &Map<String, Value>,
    now_ms: i64,
) -> Result<KeyKind, Failure> {
    let key = text_param(params, "apiKey").ok_or_else(|| Failure::missing("apiKey"))?;
    let ed25519 = cfg.ed25519.as_ref().filter(|e| e.api_key == key);
    if key != cfg.api_key && ed25519.is_none() {
        return Err(Failure::new(
            -2015,
            "Invalid API-key, IP, or permissions for action.",
        ));
    }
    let signature = text_param(params, "signature").ok_or_else(|| Failure::missing("signature"))?;
    let timestamp = int_param(params, "timestamp")?.ok_or_else(|| Failure::missing("timestamp"))?;
    let payload = sign::ws_payload(params);
    let (kind, valid) = match ed25519 {
        Some(e) => (
            KeyKind::Ed25519,
            sign::verify_ed25519(&e.public_key, &payload, &signature),
        ),
        None => (
            KeyKind::Hmac,
            sign::verify(&cfg.api_secret, &payload, &signature),
        ),
    };
    let recv_window = recv_window_param(params)?;
    if !valid {
        return Err(Failure::new(
            -1022,
            "Signature for this request is not valid.",
        ));
    }
    check_timestamp(timestamp, recv_window, now_ms)?;
    Ok(kind)
}

/// `recvWindow`, ms (default 5000, at most 60000).
fn recv_window_param(params: &Map<String, Value>) -> Result<i64, Failure> {
    let recv_window = int_param(params, "recvWindow")?.unwrap_or(5000);
    if !(0..=60_000).contains(&recv_window) {
        return Err(Failure::new(
            -1102,
            "'recvWindow' contains unexpected value. Cannot be greater than '60000'.",
        ));
    }
    Ok(recv_window)
}

/// `timestamp` within `recv_window` of the server's clock, at most 1 s ahead.
fn check_timestamp(timestamp: i64, recv_window: i64, now_ms: i64) -> Result<(), Failure> {
    if timestamp >= now_ms + 1000 {
        return Err(Failure::new(
            -1021,
            "Timestamp for this request was 1000ms ahead of the server's time.",
        ));
    }
    if now_ms - timestamp > recv_window {
        return Err(Failure::new(
            -1021,
            "Timestamp for this request is outside of the recvWindow.",
        ));
    }
    Ok(())
}

/// A parameter as text: strings as sent, numbers and booleans as their JSON text; an
/// empty string or null counts as absent.
fn text_param(params: &Map<String, Value>, name: &str) -> Option<String> {
    match params.get(name)? {
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        other => Some(other.to_string()),
    }
}

fn int_param(params: &Map<String, Value>, name: &str) -> Result<Option<i64>, Failure> {
    match text_param(params, name) {
        None => Ok(None),
        Some(text) => text.parse::<i64>().map(Some).map_err(|_| {
            Failure::new(
                -1100,
                format!("Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'."),
            )
        }),
    }
}

/// An optional boolean: JSON `true`/`false` or the strings `"true"`/`"false"` (any case).
fn bool_param(params: &Map<String, Value>, name: &str) -> Result<Option<bool>, Failure> {
    match text_param(params, name) {
        None => Ok(None),
        Some(text) if text.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(text) if text.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(_) => Err(Failure::new(
            -1100,
            format!(
                "Illegal characters found in parameter '{name}'; legal range is 'true, false'."
            ),
        )),
    }
}

fn decimal_param(params: &Map<String, Value>, name: &str) -> Result<i64, Failure> {
    let text = text_param(params, name).ok_or_else(|| Failure::missing(name))?;
    match parse_atoms(text.as_bytes()) {
        Ok(atoms) => Ok(atoms),
        Err(DecimalError::TooPrecise) => Err(Failure::new(
            -1111,
            format!("Parameter '{name}' has too much precision."),
        )),
        Err(DecimalError::Overflow) => Err(Failure::new(
            -1108,
            format!("Parameter '{name}' overflowed."),
        )),
        Err(_) => Err(Failure::new(
            -1100,
            format!(
                "Illegal characters found in parameter '{name}'; legal range is '^([0-9]{{1,20}})(\\.[0-9]{{1,20}})?$'."
            ),
        )),
    }
}

fn check_symbol(ex: &Exchange, symbol: &str) -> Result<(), Failure> {
    if symbol != ex.symbol {
        return Err(Failure::new(-1121, "Invalid symbol."));
    }
    Ok(())
}

fn client_id_param(params: &Map<String, Value>, name: &str) -> Result<Option<String>, Failure> {
    let Some(id) = text_param(params, name) else {
        return Ok(None);
    };
    let legal = id.len() <= 36
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !legal {
        return Err(Failure::new(
            -1100,
            format!("Illegal characters found in parameter '{name}'; legal range is '^[a-zA-Z0-9-_]{{1,36}}$'."),
        ));
    }
    Ok(Some(id))
}

/// The new-order part of order.place / order.cancelReplace.
fn parse_order(
    ex: &mut Exchange,
    params: &Map<String, Value>,
) -> Result<(NewOrder, RespType), Failure> {
    let symbol = text_param(params, "symbol").ok_or_else(|| Failure::missing("symbol"))?;
    check_symbol(ex, &symbol)?;
    let side = match text_param(params, "side").as_deref() {
        Some("BUY") => Side::Buy,
        Some("SELL") => Side::Sell,
        Some(_) => return Err(Failure::new(-1117, "Invalid side.")),
        None => return Err(Failure::missing("side")),
    };
    let order_type = match text_param(params, "type").as_deref() {
        Some("LIMIT") => OrderType::Limit,
        Some("LIMIT_MAKER") => OrderType::LimitMaker,
        Some(_) => return Err(Failure::new(-1116, "Invalid orderType.")),
        None => return Err(Failure::missing("type")),
    };
    let tif = text_param(params, "timeInForce");
    match (order_type, tif.as_deref()) {
        (OrderType::Limit, None) => return Err(Failure::missing("timeInForce")),
        (OrderType::Limit, Some("GTC")) => {}
        (OrderType::Limit, Some(_)) => return Err(Failure::new(-1115, "Invalid timeInForce.")),
        (OrderType::LimitMaker, Some(_)) => {
            return Err(Failure::new(
                -1106,
                "Parameter 'timeInForce' sent when not required.",
            ))
        }
        (OrderType::LimitMaker, None) => {}
    }
    let qty = decimal_param(params, "quantity")?;
    let price = decimal_param(params, "price")?;
    let resp = match text_param(params, "newOrderRespType").as_deref() {
        None if order_type == OrderType::Limit => RespType::Full,
        None => RespType::Ack,
        Some("ACK") => RespType::Ack,
        Some("RESULT") => RespType::Result,
        Some("FULL") => RespType::Full,
        Some(_) => {
            return Err(Failure::new(
                -1100,
                "Illegal characters found in parameter 'newOrderRespType'; legal range is 'ACK, RESULT, FULL'.",
            ))
        }
    };
    let client_id = match client_id_param(params, "newClientOrderId")? {
        Some(id) => id,
        None => ex.generate_client_id(),
    };
    Ok((
        NewOrder {
            side,
            order_type,
            price,
            qty,
            client_id,
        },
        resp,
    ))
}

/// The rate-limit fault and the ORDERS limit, before any new order.
fn order_gate(shared: &Shared, ex: &mut Exchange, now_ms: i64) -> Result<(), Failure> {
    let until = shared.faults.ratelimit_until_ms.load(Ordering::SeqCst);
    if until > now_ms {
        let msg = format!(
            "Too many new orders; current limit is {} orders per 10 SECOND.",
            ex.limits.orders_10s.limit
        );
        return Err(Failure::limited(-1015, msg, now_ms, until));
    }
    if let Some((msg, retry)) = ex.limits.orders_exceeded(now_ms) {
        return Err(Failure::limited(-1015, msg, now_ms, retry));
    }
    Ok(())
}

/// Runs the matching for a new order (and the `reject-next` fault).
fn submit(
    shared: &Shared,
    ex: &mut Exchange,
    new: NewOrder,
    now_ms: i64,
) -> Result<Vec<Execution>, Failure> {
    if Faults::take(&shared.faults.reject_next) {
        ex.counters.forced_rejects += 1;
        return Err(Failure::new(
            -2010,
            "Account has insufficient balance for requested action.",
        ));
    }
    let Exchange {
        matcher, market, ..
    } = ex;
    let execs = matcher.place(new, market, now_ms)?;
    Ok(execs)
}

fn placed_result(ex: &Exchange, execs: &[Execution], resp: RespType, now_ms: i64) -> String {
    let fills: Vec<_> = execs.iter().filter_map(|e| e.fill.clone()).collect();
    match execs.last() {
        Some(last) => order_result(&ex.symbol, &last.order, &fills, resp, &ex.quote, now_ms),
        None => String::from("{}"),
    }
}

fn place(
    shared: &Shared,
    ex: &mut Exchange,
    params: &Map<String, Value>,
    now_ms: i64,
) -> Result<String, Failure> {
    let (new, resp) = parse_order(ex, params)?;
    order_gate(shared, ex, now_ms)?;
    let execs = submit(shared, ex, new, now_ms)?;
    ex.limits.add_order(now_ms);
    let result = placed_result(ex, &execs, resp, now_ms);
    ex.emit(&execs, now_ms);
    Ok(result)
}

fn order_ref(
    params: &Map<String, Value>,
    id_name: &str,
    client_name: &str,
) -> Result<OrderRef, Failure> {
    let order_id = match int_param(params, id_name)? {
        Some(id) => {
            Some(u64::try_from(id).map_err(|_| Failure::new(-2011, "Unknown order sent."))?)
        }
        None => None,
    };
    let client_id = text_param(params, client_name);
    if order_id.is_none() && client_id.is_none() {
        return Err(Failure::new(
            -1102,
            format!("Param '{client_name}' or '{id_name}' must be sent, but both were empty/null!"),
        ));
    }
    Ok(OrderRef {
        order_id,
        client_id,
    })
}

fn cancel(ex: &mut Exchange, params: &Map<String, Value>, now_ms: i64) -> Result<String, Failure> {
    let symbol = text_param(params, "symbol").ok_or_else(|| Failure::missing("symbol"))?;
    check_symbol(ex, &symbol)?;
    let by = order_ref(params, "orderId", "origClientOrderId")?;
    let new_id = match client_id_param(params, "newClientOrderId")? {
        Some(id) => id,
        None => ex.generate_client_id(),
    };
    let exec = ex.matcher.cancel(&by, new_id, now_ms)?;
    let result = cancel_result(&ex.symbol, &exec);
    ex.emit(std::slice::from_ref(&exec), now_ms);
    Ok(result)
}

fn cancel_all(
    ex: &mut Exchange,
    params: &Map<String, Value>,
    now_ms: i64,
) -> Result<String, Failure> {
    let symbol = text_param(params, "symbol").ok_or_else(|| Failure::missing("symbol"))?;
    check_symbol(ex, &symbol)?;
    if ex.matcher.open_orders().is_empty() {
        return Err(Failure::new(-2011, "Unknown order sent."));
    }
    let mut ids: Vec<String> = Vec::new();
    let n = ex.matcher.open_orders().len();
    for _ in 0..n {
        ids.push(ex.generate_client_id());
    }
    let mut ids = ids.into_iter();
    let execs = ex
        .matcher
        .cancel_all(|| ids.next().unwrap_or_default(), now_ms);
    let result = array(execs.iter().map(|e| cancel_result(&ex.symbol, e)));
    ex.emit(&execs, now_ms);
    Ok(result)
}

fn cancel_replace(
    shared: &Shared,
    ex: &mut Exchange,
    params: &Map<String, Value>,
    now_ms: i64,
) -> Result<String, Failure> {
    let stop_on_failure = match text_param(params, "cancelReplaceMode").as_deref() {
        Some("STOP_ON_FAILURE") => true,
        Some("ALLOW_FAILURE") => false,
        Some(_) => {
            return Err(Failure::new(
                -1100,
                "Illegal characters found in parameter 'cancelReplaceMode'; legal range is 'STOP_ON_FAILURE, ALLOW_FAILURE'.",
            ))
        }
        None => return Err(Failure::missing("cancelReplaceMode")),
    };
    let by = order_ref(params, "cancelOrderId", "cancelOrigClientOrderId")?;
    let cancel_new_id = client_id_param(params, "cancelNewClientOrderId")?;
    ex.counters.orders_received += 1;
    ex.counters.cancels_received += 1;
    let parsed = parse_order(ex, params).and_then(|(new, resp)| {
        order_gate(shared, ex, now_ms)?;
        // "Filters and order count limits are evaluated before cancellation and order
        // placement occurs."
        ex.matcher.check_filters(new.price, new.qty)?;
        Ok((new, resp))
    });
    let (new, resp) = match parsed {
        Ok(p) => p,
        Err(f) => {
            count_new_reject(ex, f.code);
            ex.counters.cancels_rejected += 1;
            return Err(f);
        }
    };
    // "If new order placement is not attempted, your order count is still incremented."
    ex.limits.add_order(now_ms);
    let cancel_new_id = cancel_new_id.unwrap_or_else(|| ex.generate_client_id());
    let cancelled = ex.matcher.cancel(&by, cancel_new_id, now_ms);
    let cancel_json = match &cancelled {
        Ok(exec) => {
            let text = cancel_result(&ex.symbol, exec);
            ex.emit(std::slice::from_ref(exec), now_ms);
            text
        }
        Err(r) => {
            ex.counters.cancels_rejected += 1;
            wire::rest_error(r.code, &r.msg)
        }
    };
    if cancelled.is_err() && stop_on_failure {
        count_new_reject(ex, -2022);
        let data = Obj::new()
            .str("cancelResult", "FAILURE")
            .str("newOrderResult", "NOT_ATTEMPTED")
            .raw("cancelResponse", &cancel_json)
            .raw("newOrderResponse", "null")
            .end();
        return Err(Failure::new(-2022, "Order cancel-replace failed.").with_data(data));
    }
    let placed = submit(shared, ex, new, now_ms);
    let new_json = match &placed {
        Ok(execs) => {
            let text = placed_result(ex, execs, resp, now_ms);
            ex.emit(execs, now_ms);
            text
        }
        Err(f) => {
            count_new_reject(ex, f.code);
            wire::rest_error(f.code, &f.msg)
        }
    };
    let result = |c: &str, n: &str| {
        Obj::new()
            .str("cancelResult", c)
            .str("newOrderResult", n)
            .raw("cancelResponse", &cancel_json)
            .raw("newOrderResponse", &new_json)
            .end()
    };
    match (cancelled.is_ok(), placed.is_ok()) {
        (true, true) => Ok(result("SUCCESS", "SUCCESS")),
        (true, false) => Err(Failure {
            status: 409,
            ..Failure::new(-2021, "Order cancel-replace partially failed.")
        }
        .with_data(result("SUCCESS", "FAILURE"))),
        (false, true) => Err(Failure {
            status: 409,
            ..Failure::new(-2021, "Order cancel-replace partially failed.")
        }
        .with_data(result("FAILURE", "SUCCESS"))),
        (false, false) => Err(Failure::new(-2022, "Order cancel-replace failed.")
            .with_data(result("FAILURE", "FAILURE"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_shape_errors() {
        let (_, f) = parse_request("{not json").unwrap_err();
        assert_eq!(f.code, -1135);
        let (id, f) = parse_request(r#"{"id":"a1"}"#).unwrap_err();
        assert_eq!((id.as_str(), f.code), ("\"a1\"", -1102));
        let (_, f) = parse_request(r#"{"id":7,"method":"time","params":[1]}"#).unwrap_err();
        assert_eq!(f.code, -1135);
        let (id, m, p) = parse_request(r#"{"id":7,"method":"v3/time"}"#).unwrap();
        assert_eq!((id.as_str(), m.as_str(), p.len()), ("7", "time", 0));
    }

    #[test]
    fn decimal_parameter_errors() {
        let params: Map<String, Value> =
            serde_json::from_str(r#"{"a":"1.5","b":"1e5","c":"0.000000001","d":2}"#).unwrap();
        assert_eq!(decimal_param(&params, "a").unwrap(), 150_000_000);
        assert_eq!(decimal_param(&params, "b").unwrap_err().code, -1100);
        assert_eq!(decimal_param(&params, "c").unwrap_err().code, -1111);
        assert_eq!(decimal_param(&params, "d").unwrap(), 200_000_000);
        assert_eq!(decimal_param(&params, "e").unwrap_err().code, -1102);
    }

    #[test]
    fn boolean_parameters() {
        let params: Map<String, Value> =
            serde_json::from_str(r#"{"a":true,"b":"FALSE","c":"yes","d":""}"#).unwrap();
        assert_eq!(bool_param(&params, "a").unwrap(), Some(true));
        assert_eq!(bool_param(&params, "b").unwrap(), Some(false));
        assert_eq!(bool_param(&params, "c").unwrap_err().code, -1100);
        assert_eq!(bool_param(&params, "d").unwrap(), None);
        assert_eq!(bool_param(&params, "e").unwrap(), None);
    }
}
