//! Response decoding: `decode` turns one received text frame into a `Message` — a
//! `Response` (status, error code, rate-limit counts, retry-after) or an `ExecutionReport`
//! from the user-data stream.
//!
//! Hot path. Never allocates, never panics on network input (a malformed frame is a
//! `DecodeError`), never reads the clock.

use super::*;

/// One received text frame, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message {
    /// A response to one of our requests.
    Response(Response),
    /// A user-data executionReport.
    Execution(ExecutionReport),
    /// Another user-data event (balances, …): counted, skipped.
    OtherEvent,
    /// `eventStreamTerminated`: the subscription ended (executionReports stop coming).
    StreamTerminated,
}

/// A WebSocket API response. `Copy`; the variable parts (`result`) are read by the venue
/// from the same frame where it needs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response {
    /// Our request id (`None` if the exchange could not read it: `"id":null`).
    pub req_id: Option<u64>,
    /// HTTP-like status: 200, 400, 401, 403, 409, 418, 429, 5xx.
    pub status: u16,
    /// Binance error code, 0 on success.
    pub code: i32,
    /// `error.data.retryAfter`: wall-clock ms until which requests are refused.
    pub retry_after_ms: Option<u64>,
    /// cancel-replace only: the cancel leg's error code (0 = it succeeded or is unknown).
    pub cancel_code: i32,
    /// cancel-replace only: the new-order leg's error code (0 = it succeeded or is unknown).
    pub new_order_code: i32,
    /// cancel-replace only: `cancelResult` was `SUCCESS`.
    pub cancel_succeeded: bool,
    /// `result.transactTime` (order.place / cancel), ms, 0 if absent.
    pub transact_ms: u64,
    /// `result.serverTime` (`time`), ms, 0 if absent.
    pub server_time_ms: u64,
    /// The `rateLimits` array, if present.
    pub rate_limits: Option<RateLimits>,
}

/// What an executionReport said (only what the engine uses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecutionReport {
    /// The order: `c`, or `C` for a cancel (where `c` is the cancel request's own id).
    /// `Err` for another session's or another client's order.
    pub id: Result<ClientOrderId, IdError>,
    /// `x`.
    pub exec_type: ExecType,
    /// `L` (last price), ticks.
    pub last_price: Price,
    /// `l` (last quantity), lots.
    pub last_qty: Qty,
    /// `z` (cumulative quantity), lots.
    pub cum_qty: Qty,
    /// `n` converted to quote atoms (0 if the asset is neither base nor quote).
    pub fee_quote_atoms: i64,
    /// The commission was in an asset we cannot convert (e.g. BNB).
    pub fee_unconverted: bool,
    /// `m`.
    pub is_maker: bool,
    /// `T`, ms.
    pub transact_ms: u64,
    /// `t` (-1 when not a trade → 0).
    pub trade_id: u64,
}

/// `x` of an executionReport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecType {
    /// NEW.
    New,
    /// TRADE.
    Trade,
    /// CANCELED.
    Canceled,
    /// EXPIRED or TRADE_PREVENTION.
    Expired,
    /// REJECTED.
    Rejected,
    /// REPLACED (order.amend; we never amend) or anything else.
    Other,
}

impl ExecutionReport {
    /// The venue event it produces, if it concerns one of our orders.
    pub fn to_event(&self) -> Option<VenueEvent> {
        let id = self.id.ok()?;
        Some(match self.exec_type {
            ExecType::New => VenueEvent::Accepted {
                id,
                exch_ts_ms: self.transact_ms,
            },
            ExecType::Trade => VenueEvent::Fill {
                id,
                price: self.last_price,
                qty: self.last_qty,
                cum_qty: self.cum_qty,
                fee_quote_atoms: self.fee_quote_atoms,
                is_maker: self.is_maker,
                exch_ts_ms: self.transact_ms,
                trade_id: self.trade_id,
            },
            ExecType::Canceled => VenueEvent::Canceled { id },
            ExecType::Expired => VenueEvent::Expired { id },
            ExecType::Rejected => VenueEvent::Rejected {
                id,
                code: CODE_REPORT_REJECTED,
            },
            ExecType::Other => return None,
        })
    }
}

/// Counts from the last `rateLimits` array (0/0 when an entry was absent).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// REQUEST_WEIGHT per minute: (count, limit).
    pub weight_1m: (u32, u32),
    /// ORDERS per 10 s: (count, limit).
    pub orders_10s: (u32, u32),
    /// ORDERS per day: (count, limit).
    pub orders_1d: (u32, u32),
}

/// Why a frame could not be decoded. Counted by the venue, never panicked on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Not a JSON object, or broken JSON.
    Malformed,
    /// An object that is neither a response nor an event.
    Unrecognised,
    /// A field the engine needs is missing or has the wrong form.
    BadField(&'static str),
}

/// Decodes one text frame from `/ws-api/v3`. `quote_asset`/`base_asset` name the symbol's
/// assets (for the commission). Never allocates.
pub fn decode(
    frame: &[u8],
    spec: &SymbolSpec,
    session: &SessionTag,
    base_asset: &[u8],
    quote_asset: &[u8],
) -> Result<Message, DecodeError> {
    let mut id = None;
    let mut status = None;
    let mut error = None;
    let mut result = None;
    let mut limits = None;
    let mut event = None;
    for_each_field(frame, |key, value| match key {
        b"id" => id = Some(value),
        b"status" => status = Some(value),
        b"error" => error = Some(value),
        b"result" => result = Some(value),
        b"rateLimits" => limits = Some(value),
        b"event" => event = Some(value),
        _ => {}
    })?;
    if let Some(event) = event {
        return decode_event(event, spec, session, base_asset, quote_asset);
    }
    let Some(status) = status else {
        return Err(DecodeError::Unrecognised);
    };
    let status = as_u64(status).ok_or(DecodeError::BadField("status"))?;
    let req_id = match id {
        Some(v) if v == b"null" => None,
        Some(v) => Some(
            as_str(v)
                .and_then(parse_u64)
                .ok_or(DecodeError::BadField("id"))?,
        ),
        None => None,
    };
    let mut response = Response {
        req_id,
        status: u16::try_from(status).map_err(|_| DecodeError::BadField("status"))?,
        code: 0,
        retry_after_ms: None,
        cancel_code: 0,
        new_order_code: 0,
        cancel_succeeded: false,
        transact_ms: 0,
        server_time_ms: 0,
        rate_limits: None,
    };
    if let Some(limits) = limits {
        response.rate_limits = Some(decode_rate_limits(limits)?);
    }
    if let Some(result) = result {
        if result.first() == Some(&b'{') {
            for_each_field(result, |key, value| match key {
                b"transactTime" => response.transact_ms = as_u64(value).unwrap_or(0),
                b"serverTime" => response.server_time_ms = as_u64(value).unwrap_or(0),
                _ => {}
            })?;
        }
    }
    if let Some(error) = error {
        let mut code = None;
        let mut data = None;
        for_each_field(error, |key, value| match key {
            b"code" => code = Some(value),
            b"data" => data = Some(value),
            _ => {}
        })?;
        response.code = code
            .and_then(as_i64)
            .and_then(|c| i32::try_from(c).ok())
            .ok_or(DecodeError::BadField("error.code"))?;
        if let Some(data) = data.filter(|d| d.first() == Some(&b'{')) {
            decode_error_data(data, &mut response)?;
        }
    } else if response.status != 200 {
        return Err(DecodeError::BadField("error"));
    }
    Ok(Message::Response(response))
}

fn decode_error_data(data: &[u8], response: &mut Response) -> Result<(), DecodeError> {
    let mut cancel = None;
    let mut new_order = None;
    for_each_field(data, |key, value| match key {
        b"retryAfter" => response.retry_after_ms = as_u64(value),
        b"cancelResult" => response.cancel_succeeded = as_str(value) == Some(b"SUCCESS"),
        b"cancelResponse" => cancel = Some(value),
        b"newOrderResponse" => new_order = Some(value),
        _ => {}
    })?;
    let code_of = |obj: &[u8]| -> Result<i32, DecodeError> {
        let mut code = 0;
        if obj.first() == Some(&b'{') {
            for_each_field(obj, |key, value| {
                if key == b"code" {
                    code = as_i64(value)
                        .and_then(|c| i32::try_from(c).ok())
                        .unwrap_or(0);
                }
            })?;
        }
        Ok(code)
    };
    if let Some(c) = cancel {
        response.cancel_code = code_of(c)?;
    }
    if let Some(n) = new_order {
        response.new_order_code = code_of(n)?;
    }
    Ok(())
}

fn decode_rate_limits(array: &[u8]) -> Result<RateLimits, DecodeError> {
    let mut limits = RateLimits::default();
    for_each_element(array, |item| {
        let (mut kind, mut interval, mut num, mut limit, mut count) = (None, None, 0, 0, 0);
        for_each_field(item, |key, value| match key {
            b"rateLimitType" => kind = as_str(value),
            b"interval" => interval = as_str(value),
            b"intervalNum" => num = as_u64(value).unwrap_or(0),
            b"limit" => limit = as_u64(value).unwrap_or(0),
            b"count" => count = as_u64(value).unwrap_or(0),
            _ => {}
        })?;
        let pair = (clamp_u32(count), clamp_u32(limit));
        match (kind, interval, num) {
            (Some(b"REQUEST_WEIGHT"), Some(b"MINUTE"), 1) => limits.weight_1m = pair,
            (Some(b"ORDERS"), Some(b"SECOND"), 10) => limits.orders_10s = pair,
            (Some(b"ORDERS"), Some(b"DAY"), 1) => limits.orders_1d = pair,
            _ => {}
        }
        Ok(())
    })?;
    Ok(limits)
}

fn decode_event(
    event: &[u8],
    spec: &SymbolSpec,
    session: &SessionTag,
    base_asset: &[u8],
    quote_asset: &[u8],
) -> Result<Message, DecodeError> {
    let mut kind = None;
    let (mut c, mut orig, mut x) = (None, None, None);
    let (mut last_price, mut last_qty, mut cum_qty) = (None, None, None);
    let (mut fee, mut fee_asset, mut maker, mut transact, mut trade) = (None, None, None, 0, 0);
    for_each_field(event, |key, value| match key {
        b"e" => kind = as_str(value),
        b"c" => c = as_str(value),
        b"C" => orig = as_str(value),
        b"x" => x = as_str(value),
        b"L" => last_price = as_str(value),
        b"l" => last_qty = as_str(value),
        b"z" => cum_qty = as_str(value),
        b"n" => fee = as_str(value),
        b"N" => fee_asset = as_str(value),
        b"m" => maker = Some(value == b"true"),
        b"T" => transact = as_u64(value).unwrap_or(0),
        b"t" => trade = as_u64(value).unwrap_or(0),
        _ => {}
    })?;
    if kind == Some(b"eventStreamTerminated") {
        return Ok(Message::StreamTerminated);
    }
    if kind != Some(b"executionReport") {
        return Ok(Message::OtherEvent);
    }
    let exec_type = match x.ok_or(DecodeError::BadField("x"))? {
        b"NEW" => ExecType::New,
        b"TRADE" => ExecType::Trade,
        b"CANCELED" => ExecType::Canceled,
        b"EXPIRED" | b"TRADE_PREVENTION" => ExecType::Expired,
        b"REJECTED" => ExecType::Rejected,
        _ => ExecType::Other,
    };
    let wire_id = match (exec_type, orig) {
        (ExecType::Canceled, Some(o)) if !o.is_empty() => o,
        _ => c.ok_or(DecodeError::BadField("c"))?,
    };
    let mut report = ExecutionReport {
        id: ClientOrderId::parse_wire(wire_id, session),
        exec_type,
        last_price: Price(0),
        last_qty: Qty(0),
        cum_qty: Qty(0),
        fee_quote_atoms: 0,
        fee_unconverted: false,
        is_maker: maker.unwrap_or(false),
        transact_ms: transact,
        trade_id: trade,
    };
    if let Some(z) = cum_qty {
        report.cum_qty = spec.parse_qty(z).map_err(|_| DecodeError::BadField("z"))?;
    }
    if exec_type == ExecType::Trade {
        let price = last_price.ok_or(DecodeError::BadField("L"))?;
        report.last_price = spec
            .parse_price(price)
            .map_err(|_| DecodeError::BadField("L"))?;
        let qty = last_qty.ok_or(DecodeError::BadField("l"))?;
        report.last_qty = spec
            .parse_qty(qty)
            .map_err(|_| DecodeError::BadField("l"))?;
        let fee_atoms = match fee {
            Some(n) => parse_atoms(n).map_err(|_| DecodeError::BadField("n"))?,
            None => 0,
        };
        match fee_asset {
            _ if fee_atoms == 0 => {}
            Some(a) if a == quote_asset => report.fee_quote_atoms = fee_atoms,
            Some(a) if a == base_asset => {
                // base atoms × price (quote atoms per base unit) / atoms per unit.
                let price_atoms = i128::from(report.last_price.0) * i128::from(spec.tick_atoms);
                let quote = i128::from(fee_atoms) * price_atoms / i128::from(ATOMS_PER_UNIT);
                report.fee_quote_atoms = i64::try_from(quote).unwrap_or(i64::MAX);
            }
            _ => report.fee_unconverted = true,
        }
    }
    Ok(Message::Execution(report))
}
