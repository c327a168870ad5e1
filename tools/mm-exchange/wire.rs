//! Binance's JSON shapes, written field by field in Binance's own field order.
//!
//! `serde_json::json!` would sort keys alphabetically (no `preserve_order` here) and a
//! client's hand-written scanner may rely on the documented order, so every object is
//! written with the small `Obj` builder: strings escaped by serde_json, numbers as
//! numbers, decimals as 8-decimal strings (`"61837.63000000"`), as Binance sends them.
//!
//! Sources: web-socket-api.md (order.place ACK/RESULT/FULL, order.cancel,
//! order.cancelReplace, openOrders.*, account.status, rateLimits, errors),
//! user-data-stream.md (executionReport, outboundAccountPosition), rest-api.md and
//! filters.md (exchangeInfo).

use std::fmt::Display;

use crate::data::decimal8;
use crate::matching::{Balance, Balances, ExecKind, Execution, Fill, Order};

/// A JSON object under construction, fields in insertion order.
#[derive(Debug, Default)]
pub struct Obj {
    text: String,
}

impl Obj {
    /// `{`.
    pub fn new() -> Obj {
        Obj {
            text: String::from("{"),
        }
    }

    fn key(&mut self, key: &str) {
        if self.text.len() > 1 {
            self.text.push(',');
        }
        self.text.push('"');
        self.text.push_str(key);
        self.text.push_str("\":");
    }

    /// A string field.
    pub fn str(mut self, key: &str, value: &str) -> Obj {
        self.key(key);
        self.text.push_str(&quote(value));
        self
    }

    /// A number (or any value printed as raw JSON by Display).
    pub fn num(mut self, key: &str, value: impl Display) -> Obj {
        self.key(key);
        self.text.push_str(&value.to_string());
        self
    }

    /// A decimal in atoms, as an 8-decimal string.
    pub fn dec(self, key: &str, atoms: i128) -> Obj {
        self.str(key, &decimal8_wide(atoms))
    }

    /// Raw JSON text (an object, array, `null`, `true`…).
    pub fn raw(mut self, key: &str, json: &str) -> Obj {
        self.key(key);
        self.text.push_str(json);
        self
    }

    /// `}`.
    pub fn end(mut self) -> String {
        self.text.push('}');
        self.text
    }
}

/// A JSON string literal.
pub fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| String::from("\"\""))
}

/// `[a,b,c]` of raw JSON items.
pub fn array(items: impl IntoIterator<Item = String>) -> String {
    let mut out = String::from("[");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&item);
    }
    out.push(']');
    out
}

/// Atoms (possibly beyond i64, e.g. cumulative quote) as an 8-decimal string.
pub fn decimal8_wide(atoms: i128) -> String {
    match i64::try_from(atoms) {
        Ok(v) => decimal8(v),
        Err(_) => {
            let sign = if atoms < 0 { "-" } else { "" };
            let m = atoms.unsigned_abs();
            format!("{sign}{}.{:08}", m / 100_000_000, m % 100_000_000)
        }
    }
}

/// Which order response format (`newOrderRespType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RespType {
    /// symbol, ids, transactTime.
    Ack,
    /// + order state.
    Result,
    /// + fills.
    Full,
}

/// The `result` of a successful order placement.
pub fn order_result(
    symbol: &str,
    order: &Order,
    fills: &[Fill],
    resp: RespType,
    quote_asset: &str,
    transact_ms: i64,
) -> String {
    let obj = Obj::new()
        .str("symbol", symbol)
        .num("orderId", order.id)
        .num("orderListId", -1)
        .str("clientOrderId", &order.client_id)
        .num("transactTime", transact_ms);
    if resp == RespType::Ack {
        return obj.end();
    }
    let obj = obj
        .dec("price", i128::from(order.price))
        .dec("origQty", i128::from(order.orig_qty))
        .dec("executedQty", i128::from(order.executed_qty))
        .dec("origQuoteOrderQty", 0)
        .dec("cummulativeQuoteQty", order.cum_quote)
        .str("status", order.status.as_wire())
        .str("timeInForce", "GTC")
        .str("type", order.order_type.as_wire())
        .str("side", order.side.as_wire())
        .num("workingTime", order.time_ms);
    let obj = if resp == RespType::Full {
        obj.raw(
            "fills",
            &array(fills.iter().map(|f| {
                Obj::new()
                    .dec("price", i128::from(f.price))
                    .dec("qty", i128::from(f.qty))
                    .dec("commission", f.commission)
                    .str("commissionAsset", quote_asset)
                    .num("tradeId", f.trade_id)
                    .end()
            })),
        )
    } else {
        obj
    };
    obj.str("selfTradePreventionMode", "NONE").end()
}

/// The `result` of a successful cancel (order.cancel format).
pub fn cancel_result(symbol: &str, exec: &Execution) -> String {
    let order = &exec.order;
    Obj::new()
        .str("symbol", symbol)
        .str("origClientOrderId", &exec.orig_client_id)
        .num("orderId", order.id)
        .num("orderListId", -1)
        .str("clientOrderId", &order.client_id)
        .num("transactTime", exec.time_ms)
        .dec("price", i128::from(order.price))
        .dec("origQty", i128::from(order.orig_qty))
        .dec("executedQty", i128::from(order.executed_qty))
        .dec("origQuoteOrderQty", 0)
        .dec("cummulativeQuoteQty", order.cum_quote)
        .str("status", order.status.as_wire())
        .str("timeInForce", "GTC")
        .str("type", order.order_type.as_wire())
        .str("side", order.side.as_wire())
        .str("selfTradePreventionMode", "NONE")
        .end()
}

/// An order's status report (order.status / openOrders.status format).
pub fn status_result(symbol: &str, order: &Order) -> String {
    Obj::new()
        .str("symbol", symbol)
        .num("orderId", order.id)
        .num("orderListId", -1)
        .str("clientOrderId", &order.client_id)
        .dec("price", i128::from(order.price))
        .dec("origQty", i128::from(order.orig_qty))
        .dec("executedQty", i128::from(order.executed_qty))
        .dec("cummulativeQuoteQty", order.cum_quote)
        .str("status", order.status.as_wire())
        .str("timeInForce", "GTC")
        .str("type", order.order_type.as_wire())
        .str("side", order.side.as_wire())
        .dec("stopPrice", 0)
        .dec("icebergQty", 0)
        .num("time", order.time_ms)
        .num("updateTime", order.update_ms)
        .raw("isWorking", "true")
        .num("workingTime", order.time_ms)
        .dec("origQuoteOrderQty", 0)
        .str("selfTradePreventionMode", "NONE")
        .end()
}

/// The id `userDataStream.subscribe` answers and every user-data event carries (the
/// simulator holds one account: one subscription per connection, always 0).
pub const USER_DATA_SUBSCRIPTION_ID: u32 = 0;

/// An `executionReport` event (user-data-stream.md), wrapped as the WebSocket API has sent
/// user-data events since 2025-08: `{"subscriptionId":0,"event":{...}}`.
pub fn execution_report(
    symbol: &str,
    exec: &Execution,
    quote_asset: &str,
    event_ms: i64,
    execution_id: u64,
) -> String {
    let order = &exec.order;
    let (last_qty, last_price, last_quote, commission, asset, trade_id, maker) = match &exec.fill {
        Some(f) => (
            i128::from(f.qty),
            i128::from(f.price),
            f.quote,
            decimal8_wide(f.commission),
            quote(quote_asset),
            i64::try_from(f.trade_id).unwrap_or(i64::MAX),
            f.maker,
        ),
        None => (0, 0, 0, String::from("0"), String::from("null"), -1, false),
    };
    let working = !matches!(
        order.status,
        crate::matching::Status::Filled | crate::matching::Status::Canceled
    );
    let obj = Obj::new()
        .str("e", "executionReport")
        .num("E", event_ms)
        .str("s", symbol)
        .str("c", &order.client_id)
        .str("S", order.side.as_wire())
        .str("o", order.order_type.as_wire())
        .str("f", "GTC")
        .dec("q", i128::from(order.orig_qty))
        .dec("p", i128::from(order.price))
        .dec("P", 0)
        .dec("F", 0)
        .num("g", -1)
        .str("C", &exec.orig_client_id)
        .str("x", exec.kind.as_wire())
        .str("X", order.status.as_wire())
        .str("r", "NONE")
        .num("i", order.id)
        .dec("l", last_qty)
        .dec("z", i128::from(order.executed_qty))
        .dec("L", last_price)
        .str("n", &commission)
        .raw("N", &asset)
        .num("T", exec.time_ms)
        .num("t", trade_id)
        .num("I", execution_id)
        .raw(
            "w",
            if working && exec.kind != ExecKind::Canceled {
                "true"
            } else {
                "false"
            },
        )
        .raw("m", if maker { "true" } else { "false" })
        .raw("M", "false")
        .num("O", order.time_ms)
        .dec("Z", order.cum_quote)
        .dec("Y", last_quote)
        .dec("Q", 0);
    let obj = if working {
        obj.num("W", order.time_ms)
    } else {
        obj
    };
    let report = obj.str("V", "NONE").end();
    format!("{{\"subscriptionId\":{USER_DATA_SUBSCRIPTION_ID},\"event\":{report}}}")
}

/// The account as `account.status` describes it.
#[derive(Debug, Clone, Copy)]
pub struct AccountSpec<'a> {
    /// Base asset (`BTC`).
    pub base: &'a str,
    /// Quote asset (`USDT`).
    pub quote: &'a str,
    /// Balances now.
    pub balances: Balances,
    /// Maker / taker fee, bps × 10⁸.
    pub fees_bps_e8: (i64, i64),
    /// Last balance change (ms).
    pub update_ms: i64,
}

/// The `result` of `account.status` (web-socket-api.md "Account information"), field for
/// field. `makerCommission`/`takerCommission` are whole basis points (truncated; the
/// exact rate is in `commissionRates`). `omit_zero` drops assets with nothing free or
/// locked (`omitZeroBalances=true`).
pub fn account_status(account: &AccountSpec<'_>, omit_zero: bool) -> String {
    let (maker, taker) = account.fees_bps_e8;
    // bps × 10⁸ → a rate in atoms: 1 bp = 0.0001 = 10⁴ atoms.
    let rate = |bps_e8: i64| i128::from(bps_e8) / 10_000;
    let rates = Obj::new()
        .dec("maker", rate(maker))
        .dec("taker", rate(taker))
        .dec("buyer", 0)
        .dec("seller", 0)
        .end();
    let b = &account.balances;
    let balances = array(
        [(account.base, b.base), (account.quote, b.quote)]
            .into_iter()
            .filter(|(_, bal)| !omit_zero || bal.free != 0 || bal.locked != 0)
            .map(|(asset, bal)| {
                Obj::new()
                    .str("asset", asset)
                    .dec("free", bal.free)
                    .dec("locked", bal.locked)
                    .end()
            }),
    );
    Obj::new()
        .num("makerCommission", maker / 100_000_000)
        .num("takerCommission", taker / 100_000_000)
        .num("buyerCommission", 0)
        .num("sellerCommission", 0)
        .raw("canTrade", "true")
        .raw("canWithdraw", "true")
        .raw("canDeposit", "true")
        .raw("commissionRates", &rates)
        .raw("brokered", "false")
        .raw("requireSelfTradePrevention", "false")
        .raw("preventSor", "false")
        .num("updateTime", account.update_ms)
        .str("accountType", "SPOT")
        .raw("balances", &balances)
        .raw("permissions", "[\"SPOT\"]")
        .num("uid", 1)
        .end()
}

/// An `outboundAccountPosition` event (user-data-stream.md "Account Update"), wrapped as
/// the WebSocket API sends user-data events: `{"subscriptionId":0,"event":{...}}`. Lists
/// both assets.
pub fn account_position(account: &AccountSpec<'_>, event_ms: i64) -> String {
    let entry = |asset: &str, bal: Balance| {
        Obj::new()
            .str("a", asset)
            .dec("f", bal.free)
            .dec("l", bal.locked)
            .end()
    };
    let b = &account.balances;
    let position = Obj::new()
        .str("e", "outboundAccountPosition")
        .num("E", event_ms)
        .num("u", account.update_ms)
        .raw(
            "B",
            &array([entry(account.base, b.base), entry(account.quote, b.quote)]),
        )
        .end();
    format!("{{\"subscriptionId\":{USER_DATA_SUBSCRIPTION_ID},\"event\":{position}}}")
}

/// One `rateLimits` entry.
pub fn rate_limit(kind: &str, interval: &str, interval_num: u32, limit: u64, count: u64) -> String {
    Obj::new()
        .str("rateLimitType", kind)
        .str("interval", interval)
        .num("intervalNum", interval_num)
        .num("limit", limit)
        .num("count", count)
        .end()
}

/// A WebSocket API success response (`rate_limits` empty: no `rateLimits` field).
pub fn ok_response(id: &str, result: &str, rate_limits: &str) -> String {
    if rate_limits.is_empty() {
        format!("{{\"id\":{id},\"status\":200,\"result\":{result}}}")
    } else {
        format!("{{\"id\":{id},\"status\":200,\"result\":{result},\"rateLimits\":{rate_limits}}}")
    }
}

/// A WebSocket API error response (`data` is raw JSON or empty).
pub fn error_response(
    id: &str,
    status: u16,
    code: i32,
    msg: &str,
    data: &str,
    rate_limits: &str,
) -> String {
    let mut error = Obj::new().num("code", code).str("msg", msg);
    if !data.is_empty() {
        error = error.raw("data", data);
    }
    let error = error.end();
    if rate_limits.is_empty() {
        format!("{{\"id\":{id},\"status\":{status},\"error\":{error}}}")
    } else {
        format!(
            "{{\"id\":{id},\"status\":{status},\"error\":{error},\"rateLimits\":{rate_limits}}}"
        )
    }
}

/// A REST error body `{"code":..,"msg":".."}`.
pub fn rest_error(code: i32, msg: &str) -> String {
    Obj::new().num("code", code).str("msg", msg).end()
}

/// What exchangeInfo says about the symbol and the limits.
#[derive(Debug, Clone)]
pub struct InfoSpec<'a> {
    /// Symbol.
    pub symbol: &'a str,
    /// Base asset.
    pub base: &'a str,
    /// Quote asset.
    pub quote: &'a str,
    /// PRICE_FILTER tickSize (atoms).
    pub tick: i64,
    /// PRICE_FILTER minPrice / maxPrice.
    pub price_range: (i64, i64),
    /// LOT_SIZE stepSize.
    pub step: i64,
    /// LOT_SIZE minQty / maxQty.
    pub qty_range: (i64, i64),
    /// NOTIONAL minNotional / maxNotional.
    pub notional_range: (i64, i64),
    /// MAX_NUM_ORDERS.
    pub max_orders: usize,
    /// REQUEST_WEIGHT per minute.
    pub weight_per_minute: u64,
    /// ORDERS per 10 s.
    pub orders_per_10s: u64,
    /// ORDERS per day.
    pub orders_per_day: u64,
}

/// The `GET /api/v3/exchangeInfo` body (also the WebSocket API `exchangeInfo` result).
pub fn exchange_info(spec: &InfoSpec<'_>, server_ms: i64) -> String {
    let limit = |kind: &str, interval: &str, num: u32, limit: u64| {
        Obj::new()
            .str("rateLimitType", kind)
            .str("interval", interval)
            .num("intervalNum", num)
            .num("limit", limit)
            .end()
    };
    let rate_limits = array([
        limit("REQUEST_WEIGHT", "MINUTE", 1, spec.weight_per_minute),
        limit("ORDERS", "SECOND", 10, spec.orders_per_10s),
        limit("ORDERS", "DAY", 1, spec.orders_per_day),
        limit("RAW_REQUESTS", "MINUTE", 5, 61_000),
    ]);
    let filters = array([
        Obj::new()
            .str("filterType", "PRICE_FILTER")
            .dec("minPrice", i128::from(spec.price_range.0))
            .dec("maxPrice", i128::from(spec.price_range.1))
            .dec("tickSize", i128::from(spec.tick))
            .end(),
        Obj::new()
            .str("filterType", "LOT_SIZE")
            .dec("minQty", i128::from(spec.qty_range.0))
            .dec("maxQty", i128::from(spec.qty_range.1))
            .dec("stepSize", i128::from(spec.step))
            .end(),
        Obj::new()
            .str("filterType", "ICEBERG_PARTS")
            .num("limit", 10)
            .end(),
        Obj::new()
            .str("filterType", "MARKET_LOT_SIZE")
            .dec("minQty", 0)
            .dec("maxQty", i128::from(spec.qty_range.1))
            .dec("stepSize", 0)
            .end(),
        Obj::new()
            .str("filterType", "PERCENT_PRICE_BY_SIDE")
            .str("bidMultiplierUp", "5")
            .str("bidMultiplierDown", "0.2")
            .str("askMultiplierUp", "5")
            .str("askMultiplierDown", "0.2")
            .num("avgPriceMins", 5)
            .end(),
        Obj::new()
            .str("filterType", "NOTIONAL")
            .dec("minNotional", i128::from(spec.notional_range.0))
            .raw("applyMinToMarket", "true")
            .dec("maxNotional", i128::from(spec.notional_range.1))
            .raw("applyMaxToMarket", "false")
            .num("avgPriceMins", 5)
            .end(),
        Obj::new()
            .str("filterType", "MAX_NUM_ORDERS")
            .num("maxNumOrders", spec.max_orders)
            .end(),
        Obj::new()
            .str("filterType", "MAX_NUM_ALGO_ORDERS")
            .num("maxNumAlgoOrders", 5)
            .end(),
    ]);
    let symbol = Obj::new()
        .str("symbol", spec.symbol)
        .str("status", "TRADING")
        .str("baseAsset", spec.base)
        .num("baseAssetPrecision", 8)
        .str("quoteAsset", spec.quote)
        .num("quotePrecision", 8)
        .num("quoteAssetPrecision", 8)
        .num("baseCommissionPrecision", 8)
        .num("quoteCommissionPrecision", 8)
        .raw("orderTypes", "[\"LIMIT\",\"LIMIT_MAKER\"]")
        .raw("icebergAllowed", "false")
        .raw("ocoAllowed", "false")
        .raw("otoAllowed", "false")
        .raw("quoteOrderQtyMarketAllowed", "false")
        .raw("allowTrailingStop", "false")
        .raw("cancelReplaceAllowed", "true")
        .raw("isSpotTradingAllowed", "true")
        .raw("isMarginTradingAllowed", "false")
        .raw("filters", &filters)
        .raw("permissions", "[]")
        .raw("permissionSets", "[[\"SPOT\"]]")
        .str("defaultSelfTradePreventionMode", "NONE")
        .raw("allowedSelfTradePreventionModes", "[\"NONE\"]")
        .end();
    Obj::new()
        .str("timezone", "UTC")
        .num("serverTime", server_ms)
        .raw("rateLimits", &rate_limits)
        .raw("exchangeFilters", "[]")
        .raw("symbols", &array([symbol]))
        .end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_keep_field_order_and_escape() {
        let text = Obj::new()
            .str("z", "a\"b")
            .num("a", -1)
            .dec("p", 6_183_763_000_000)
            .end();
        assert_eq!(text, "{\"z\":\"a\\\"b\",\"a\":-1,\"p\":\"61837.63000000\"}");
        assert_eq!(
            decimal8_wide(i128::from(i64::MAX) * 10),
            "922337203685.47758070"
        );
        assert_eq!(decimal8_wide(-5), "-0.00000005");
    }

    #[test]
    fn account_shapes() {
        let account = AccountSpec {
            base: "BTC",
            quote: "USDT",
            balances: Balances {
                base: Balance { free: 0, locked: 0 },
                quote: Balance {
                    free: 99_900 * 100_000_000,
                    locked: 100 * 100_000_000,
                },
            },
            fees_bps_e8: (-50_000_000, 750_000_000),
            update_ms: 7,
        };
        let v: serde_json::Value = serde_json::from_str(&account_status(&account, false)).unwrap();
        assert_eq!(v["makerCommission"], 0);
        assert_eq!(v["takerCommission"], 7);
        assert_eq!(v["commissionRates"]["maker"], "-0.00005000");
        assert_eq!(v["commissionRates"]["taker"], "0.00075000");
        assert_eq!(v["balances"][0]["asset"], "BTC");
        assert_eq!(v["balances"][1]["free"], "99900.00000000");
        assert_eq!(v["balances"][1]["locked"], "100.00000000");
        assert_eq!(v["updateTime"], 7);
        let v: serde_json::Value = serde_json::from_str(&account_status(&account, true)).unwrap();
        assert_eq!(v["balances"].as_array().unwrap().len(), 1);
        let e: serde_json::Value = serde_json::from_str(&account_position(&account, 9)).unwrap();
        assert_eq!(e["event"]["e"], "outboundAccountPosition");
        assert_eq!(e["event"]["B"][1]["l"], "100.00000000");
    }

    #[test]
    fn error_shape() {
        let e = error_response("\"x\"", 400, -2011, "Unknown order sent.", "", "[]");
        let v: serde_json::Value = serde_json::from_str(&e).unwrap();
        assert_eq!(v["status"], 400);
        assert_eq!(v["error"]["code"], -2011);
        assert_eq!(v["error"]["msg"], "Unknown order sent.");
        assert!(v["rateLimits"].is_array());
    }
}
