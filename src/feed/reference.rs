//! A naive reference decoder on `serde_json::Value`: the oracle that the hand scanner in
//! `feed` is tested against (on every recorded message and on random mutations of them).
//!
//! Owns: nothing but its own simplicity. It reads the whole frame into a `Value` tree and
//! picks fields out by name, with the same meaning as `Decoder` for every message both
//! accept. It is deliberately more lenient in corners the hand scanner refuses on purpose
//! (escaped keys or strings, duplicate keys, fields that do not belong to the message
//! type, nesting, level counts): the contract tested is "whatever `Decoder` accepts, this
//! accepts with the same event and levels".
//!
//! Never on the hot path: it allocates on every call. Never reads the clock.

use serde_json::{Map, Value};

use crate::feed::{BookTicker, DepthDiff, Event, Level, Snapshot, Trade, TradeKind};
use crate::types::{Side, SymbolSpec};

/// An event with its levels owned (for diffs and snapshots; empty otherwise).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// The event, field for field as `Decoder::decode` returns it.
    pub event: Event,
    /// Bid levels in message order.
    pub bids: Vec<Level>,
    /// Ask levels in message order.
    pub asks: Vec<Level>,
}

/// Decodes one frame the slow, obvious way. `Err` holds a short reason.
pub fn decode(spec: &SymbolSpec, frame: &[u8], local_ts_ns: u64) -> Result<Decoded, &'static str> {
    let value: Value = serde_json::from_slice(frame).map_err(|_| "not JSON")?;
    let top = value.as_object().ok_or("not an object")?;
    let payload = match top.get("data") {
        Some(data) => {
            if let Some(stream) = top.get("stream") {
                let name = stream.as_str().ok_or("stream not a string")?;
                let prefix = format!("{}@", spec.symbol.as_str().to_ascii_lowercase());
                if !name.starts_with(&prefix) {
                    return Err("stream of another symbol");
                }
            }
            data.as_object().ok_or("data not an object")?
        }
        None => top,
    };
    if let Some(symbol) = payload.get("s") {
        if symbol.as_str() != Some(spec.symbol.as_str()) {
            return Err("wrong symbol");
        }
    }
    let kind = match payload.get("e") {
        Some(e) => e.as_str().ok_or("e not a string")?,
        None if payload.contains_key("lastUpdateId") => "snapshot",
        None if payload.contains_key("u") => "bookTicker",
        None => return Err("unknown kind"),
    };
    let no_levels = |event| Decoded {
        event,
        bids: Vec::new(),
        asks: Vec::new(),
    };
    match kind {
        "bookTicker" => {
            require_str(payload, "s")?;
            let event_ts_ms = match payload.get("E") {
                Some(_) => uint(payload, "E")?,
                None => 0,
            };
            Ok(no_levels(Event::BookTicker(BookTicker {
                update_id: uint(payload, "u")?,
                bid_price: price(spec, payload, "b")?,
                bid_qty: qty(spec, payload, "B")?,
                ask_price: price(spec, payload, "a")?,
                ask_qty: qty(spec, payload, "A")?,
                exch_ts_ms: event_ts_ms,
                local_ts_ns,
            })))
        }
        "depthUpdate" => {
            require_str(payload, "s")?;
            let bids = levels(spec, payload, "b")?;
            let asks = levels(spec, payload, "a")?;
            let first_update_id = uint(payload, "U")?;
            let final_update_id = uint(payload, "u")?;
            if first_update_id > final_update_id {
                return Err("U > u");
            }
            Ok(Decoded {
                event: Event::Depth(DepthDiff {
                    first_update_id,
                    final_update_id,
                    prev_final_update_id: payload.get("pu").and_then(Value::as_u64).unwrap_or(0),
                    bid_count: u32::try_from(bids.len()).map_err(|_| "too many")?,
                    ask_count: u32::try_from(asks.len()).map_err(|_| "too many")?,
                    exch_ts_ms: uint(payload, "E")?,
                    local_ts_ns,
                }),
                bids,
                asks,
            })
        }
        "trade" | "aggTrade" => {
            require_str(payload, "s")?;
            let (kind, trade_id, first, last) = if kind == "trade" {
                let t = uint(payload, "t")?;
                (TradeKind::Trade, t, t, t)
            } else {
                let first = uint(payload, "f")?;
                let last = uint(payload, "l")?;
                if first > last {
                    return Err("f > l");
                }
                (TradeKind::AggTrade, uint(payload, "a")?, first, last)
            };
            let buyer_is_maker = payload
                .get("m")
                .and_then(Value::as_bool)
                .ok_or("m not a bool")?;
            if let Some(best_match) = payload.get("M") {
                best_match.as_bool().ok_or("M not a bool")?;
            }
            // Futures: only order-book trades (X = MARKET), not insurance-fund or ADL fills.
            if let Some(trade_type) = payload.get("X") {
                if trade_type.as_str() != Some("MARKET") {
                    return Err("not a market trade");
                }
            }
            Ok(no_levels(Event::Trade(Trade {
                kind,
                trade_id,
                first_trade_id: first,
                last_trade_id: last,
                price: price(spec, payload, "p")?,
                qty: qty(spec, payload, "q")?,
                aggressor: if buyer_is_maker {
                    Side::Sell
                } else {
                    Side::Buy
                },
                trade_ts_ms: uint(payload, "T")?,
                exch_ts_ms: uint(payload, "E")?,
                local_ts_ns,
            })))
        }
        "snapshot" => {
            let bids = levels(spec, payload, "bids")?;
            let asks = levels(spec, payload, "asks")?;
            Ok(Decoded {
                event: Event::Snapshot(Snapshot {
                    last_update_id: uint(payload, "lastUpdateId")?,
                    bid_count: u32::try_from(bids.len()).map_err(|_| "too many")?,
                    ask_count: u32::try_from(asks.len()).map_err(|_| "too many")?,
                    local_ts_ns,
                }),
                bids,
                asks,
            })
        }
        _ => Err("unknown kind"),
    }
}

fn require_str(obj: &Map<String, Value>, key: &str) -> Result<(), &'static str> {
    obj.get(key)
        .and_then(Value::as_str)
        .map(|_| ())
        .ok_or("missing string")
}

fn uint(obj: &Map<String, Value>, key: &str) -> Result<u64, &'static str> {
    obj.get(key)
        .and_then(Value::as_u64)
        .ok_or("missing integer")
}

fn price(
    spec: &SymbolSpec,
    obj: &Map<String, Value>,
    key: &str,
) -> Result<crate::types::Price, &'static str> {
    let text = obj
        .get(key)
        .and_then(Value::as_str)
        .ok_or("missing price")?;
    spec.parse_price(text.as_bytes()).map_err(|_| "bad price")
}

fn qty(
    spec: &SymbolSpec,
    obj: &Map<String, Value>,
    key: &str,
) -> Result<crate::types::Qty, &'static str> {
    let text = obj.get(key).and_then(Value::as_str).ok_or("missing qty")?;
    qty_text(spec, text)
}

fn levels(
    spec: &SymbolSpec,
    obj: &Map<String, Value>,
    key: &str,
) -> Result<Vec<Level>, &'static str> {
    let array = obj
        .get(key)
        .and_then(Value::as_array)
        .ok_or("missing levels")?;
    let mut out = Vec::with_capacity(array.len());
    for pair in array {
        let pair = pair.as_array().ok_or("level not an array")?;
        let [p, q] = pair.as_slice() else {
            return Err("level not a pair");
        };
        let p = p.as_str().ok_or("level price not a string")?;
        let q = q.as_str().ok_or("level qty not a string")?;
        out.push(Level {
            price: spec
                .parse_price(p.as_bytes())
                .map_err(|_| "bad level price")?,
            qty: qty_text(spec, q)?,
        });
    }
    Ok(out)
}

/// A quantity in lots; one off the lot grid is rounded up to the next whole lot (the same
/// rule as the decoder's, written independently: exact atoms, then ceiling division).
fn qty_text(spec: &SymbolSpec, text: &str) -> Result<crate::types::Qty, &'static str> {
    let atoms = crate::types::parse_atoms(text.as_bytes()).map_err(|_| "bad qty")?;
    let lots = (i128::from(atoms) + i128::from(spec.step_atoms) - 1) / i128::from(spec.step_atoms);
    Ok(crate::types::Qty(
        i64::try_from(lots).map_err(|_| "qty too large")?,
    ))
}
