//! Binance spot market-data bytes → fixed-size `Copy` events with integer prices and
//! quantities (the sans-IO decoding step of the hot path).
//!
//! Owns: the decoder for `bookTicker`, `depthUpdate`, `trade`, `aggTrade` (combined-stream
//! `{"stream":..,"data":{..}}` or raw `/ws/<stream>` form) and the REST depth snapshot; the
//! level buffers the decoded diffs and snapshots point into; `FeedStats`, the per-kind
//! counters of decoded events and refused frames.
//!
//! Why a hand scanner: the design card measured one at 50–140 ns per bookTicker against
//! 200–230 ns for simd-json with a reused tape (which also needs a mutable copy of the
//! frame), and Binance's messages are flat objects with a small fixed field set. Two
//! passes share the value parsers and the final checks (`build_event`):
//! - `decode_canonical`, a speculative fast path: Binance's exact serialisation (wrapper,
//!   field order, no whitespace) checked against byte templates built at `new`, values
//!   parsed in place. It never refuses anything itself: at the first unexpected byte it
//!   gives up and the general pass reads the frame from the start. Every recorded stream
//!   message takes it (`FeedStats::canonical`).
//! - `decode_general`, a real JSON reader, not a pattern matcher: fields in any order,
//!   unknown fields skipped with full syntax validation (strings with escapes and surrogate
//!   pairs, numbers, nested containers up to `JSON_NESTING_MAX`), whitespace wherever JSON
//!   allows it, duplicate known keys refused.
//!
//! Strings are scanned eight bytes at a time and ids read eight digits at a time (SWAR,
//! `scan`); wire decimals in canonical form go through `decimal::GridParser`, everything
//! else through `SymbolSpec`. Both passes are held to a naive serde_json decoder
//! (`reference`) on every recorded message and on random mutations, and to each other.
//!
//! Invariants: an `Ok` event is complete (every required field present, of the right type,
//! prices on the configured tick grid, ids ordered `U <= u`, `f <= l`; quantities off the
//! lot grid — real, from orders older than a step-size change — are rounded up to whole
//! lots and counted, see `Numbers::qty`); the levels of the last decoded diff (or snapshot)
//! stay in the decoder until the next `decode` call.
//! Things we refuse rather than interpret: JSON escapes in keys and in the string fields we
//! read (Binance never sends them), numbers with sign/fraction/exponent where an integer
//! id or time is expected.
//!
//! Hot path. Never allocates after `new`. Never panics on input: every refusal is a `Copy`
//! `DecodeError`, counted in `FeedStats`. Never reads the clock: the caller passes
//! `local_ts_ns`.

mod decimal;
mod scan;

pub mod reference;

use std::fmt;

use crate::limits::{DEPTH_DIFF_LEVELS_PER_SIDE_MAX, SNAPSHOT_LEVELS_PER_SIDE_MAX};
use crate::types::{parse_atoms, DecimalError, Price, Qty, Side, SymbolSpec, SYMBOL_LEN_MAX};

use decimal::GridParser;
use scan::{value_error, Cursor};

/// One price level: a price and the total quantity resting there (0 = level removed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Level {
    /// Price in ticks.
    pub price: Price,
    /// Quantity in lots.
    pub qty: Qty,
}

/// Best bid and ask (`<symbol>@bookTicker`). Spot sends no event time: `exch_ts_ms` is 0
/// unless the message carries `E` (the futures form does).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BookTicker {
    /// `u`: the order book update id this top of book reflects (same sequence as the
    /// depth diffs' `U`/`u`).
    pub update_id: u64,
    /// `b`: best bid price.
    pub bid_price: Price,
    /// `B`: quantity at the best bid.
    pub bid_qty: Qty,
    /// `a`: best ask price.
    pub ask_price: Price,
    /// `A`: quantity at the best ask.
    pub ask_qty: Qty,
    /// `E` if present, else 0.
    pub exch_ts_ms: u64,
    /// When the frame was received (the caller's clock).
    pub local_ts_ns: u64,
}

/// A depth diff (`<symbol>@depth` / `@depth@100ms`). Its levels are in the decoder:
/// `Decoder::diff_levels`, valid until the next `decode` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DepthDiff {
    /// `U`: first update id in this diff.
    pub first_update_id: u64,
    /// `u`: final update id in this diff.
    pub final_update_id: u64,
    /// `pu`: the previous diff's `u`, in USD-M futures diffs (they chain by `pu`, not by
    /// `U = previous u + 1`); 0 in spot diffs, which have no `pu`.
    pub prev_final_update_id: u64,
    /// Number of bid levels (`b`).
    pub bid_count: u32,
    /// Number of ask levels (`a`).
    pub ask_count: u32,
    /// `E`: event time.
    pub exch_ts_ms: u64,
    /// When the frame was received (the caller's clock).
    pub local_ts_ns: u64,
}

/// Which trade stream a `Trade` came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TradeKind {
    /// `<symbol>@trade`: one trade.
    Trade,
    /// `<symbol>@aggTrade`: trades of one taker order at one price, aggregated.
    AggTrade,
}

/// A public trade (`trade` or `aggTrade`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trade {
    /// Which stream.
    pub kind: TradeKind,
    /// `t` (trade) or `a` (aggregate trade id).
    pub trade_id: u64,
    /// `f` for an aggTrade; `t` for a trade.
    pub first_trade_id: u64,
    /// `l` for an aggTrade; `t` for a trade.
    pub last_trade_id: u64,
    /// `p`: price.
    pub price: Price,
    /// `q`: quantity.
    pub qty: Qty,
    /// The taker's side: `m` (buyer is maker) true ⇒ the aggressor sold.
    pub aggressor: Side,
    /// `T`: trade time.
    pub trade_ts_ms: u64,
    /// `E`: event time.
    pub exch_ts_ms: u64,
    /// When the frame was received (the caller's clock).
    pub local_ts_ns: u64,
}

/// The REST depth snapshot (`GET /api/v3/depth`). Its levels are in the decoder:
/// `Decoder::snapshot_levels`, valid until the next `decode` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// `lastUpdateId`.
    pub last_update_id: u64,
    /// Number of bid levels.
    pub bid_count: u32,
    /// Number of ask levels.
    pub ask_count: u32,
    /// When the response was received (the caller's clock).
    pub local_ts_ns: u64,
}

/// One decoded message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Best bid/ask.
    BookTicker(BookTicker),
    /// Depth diff (levels in the decoder).
    Depth(DepthDiff),
    /// Public trade or aggregate trade.
    Trade(Trade),
    /// REST depth snapshot (levels in the decoder).
    Snapshot(Snapshot),
}

impl Event {
    /// Exchange time in ms (`E`), 0 where the message has none.
    pub fn exch_ts_ms(&self) -> u64 {
        match self {
            Event::BookTicker(e) => e.exch_ts_ms,
            Event::Depth(e) => e.exch_ts_ms,
            Event::Trade(e) => e.exch_ts_ms,
            Event::Snapshot(_) => 0,
        }
    }

    /// Local receive time in ns, as passed to `decode`.
    pub fn local_ts_ns(&self) -> u64 {
        match self {
            Event::BookTicker(e) => e.local_ts_ns,
            Event::Depth(e) => e.local_ts_ns,
            Event::Trade(e) => e.local_ts_ns,
            Event::Snapshot(e) => e.local_ts_ns,
        }
    }
}

/// The bid and ask levels of a diff or snapshot, borrowed from the decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BookLevels<'a> {
    /// Bid levels in message order.
    pub bids: &'a [Level],
    /// Ask levels in message order.
    pub asks: &'a [Level],
}

/// Why a frame was refused. Sorted by who is at fault: the bytes (venue or transport),
/// then valid messages we do not take, then our own bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DecodeError {
    /// The frame ended before the message did.
    Truncated,
    /// Not valid JSON: a syntax error, a raw control character or invalid UTF-8 in a
    /// string, a bad escape.
    Malformed,
    /// Something other than whitespace after the message.
    TrailingBytes,
    /// A known field with the wrong JSON type (`"E":"1"`, `"m":1`, `"b":5`).
    WrongType,
    /// A field the message type requires is absent.
    MissingField,
    /// The same known field twice in one object.
    DuplicateField,
    /// A number that is not a plain non-negative integer where an id or a time is
    /// expected, or a decimal string that is not a plain non-negative decimal with at most
    /// 8 decimals.
    BadNumber,
    /// A number too large for its type, or ids out of order (`U > u`, `f > l`).
    OutOfRange,
    /// A price that is not a whole number of the symbol's ticks. (Quantities off the lot
    /// grid are rounded up and counted instead: see `FeedStats::qty_rounded_up`.)
    OffGrid,
    /// A key or a string field we read is written with a JSON escape.
    Escape,
    /// A well-formed message of a kind we do not decode (kline, subscription reply, ...).
    UnknownKind,
    /// The symbol (`s`, or the prefix of the stream name) is not the configured one.
    WrongSymbol,
    /// More levels on one side than the decoder's buffer holds.
    TooManyLevels,
    /// A skipped field nests deeper than `JSON_NESTING_MAX`.
    TooDeep,
}

impl DecodeError {
    /// Number of variants (size of `FeedStats::errors`).
    pub const COUNT: usize = 14;

    /// Every variant, in declaration order (`ALL[e.index()] == e`).
    pub const ALL: [DecodeError; DecodeError::COUNT] = [
        DecodeError::Truncated,
        DecodeError::Malformed,
        DecodeError::TrailingBytes,
        DecodeError::WrongType,
        DecodeError::MissingField,
        DecodeError::DuplicateField,
        DecodeError::BadNumber,
        DecodeError::OutOfRange,
        DecodeError::OffGrid,
        DecodeError::Escape,
        DecodeError::UnknownKind,
        DecodeError::WrongSymbol,
        DecodeError::TooManyLevels,
        DecodeError::TooDeep,
    ];

    /// Position in `ALL` and in `FeedStats::errors`.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A short stable name for logs and KPI tables.
    pub const fn name(self) -> &'static str {
        match self {
            DecodeError::Truncated => "truncated",
            DecodeError::Malformed => "malformed",
            DecodeError::TrailingBytes => "trailing_bytes",
            DecodeError::WrongType => "wrong_type",
            DecodeError::MissingField => "missing_field",
            DecodeError::DuplicateField => "duplicate_field",
            DecodeError::BadNumber => "bad_number",
            DecodeError::OutOfRange => "out_of_range",
            DecodeError::OffGrid => "off_grid",
            DecodeError::Escape => "escape",
            DecodeError::UnknownKind => "unknown_kind",
            DecodeError::WrongSymbol => "wrong_symbol",
            DecodeError::TooManyLevels => "too_many_levels",
            DecodeError::TooDeep => "too_deep",
        }
    }
}

const _: () = assert!(DecodeError::TooDeep as usize + 1 == DecodeError::COUNT);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::error::Error for DecodeError {}

/// Counters of decoded events per kind and of refused frames per error kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeedStats {
    /// bookTicker events decoded.
    pub book_tickers: u64,
    /// Depth diffs decoded.
    pub depth_diffs: u64,
    /// `trade` events decoded.
    pub trades: u64,
    /// `aggTrade` events decoded.
    pub agg_trades: u64,
    /// REST snapshots decoded.
    pub snapshots: u64,
    /// Quantities off the lot grid, rounded up to whole lots (in accepted frames; see
    /// `Numbers::qty`). Real data has a few: orders from before a step-size change.
    pub qty_rounded_up: u64,
    /// Frames decoded by the canonical fast path (a subset of the events above). If this
    /// falls behind `events_total`, Binance changed its serialisation: still decoded, but
    /// by the slower general scanner.
    pub canonical: u64,
    /// Refused frames, indexed by `DecodeError::index`.
    pub errors: [u64; DecodeError::COUNT],
}

impl FeedStats {
    /// Frames refused for `kind`.
    pub fn error_count(&self, kind: DecodeError) -> u64 {
        self.errors[kind.index()]
    }

    /// Frames refused for any reason.
    pub fn errors_total(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Events decoded of any kind.
    pub fn events_total(&self) -> u64 {
        self.book_tickers + self.depth_diffs + self.trades + self.agg_trades + self.snapshots
    }

    fn count(&mut self, result: &Result<Event, DecodeError>) {
        match result {
            Ok(Event::BookTicker(_)) => self.book_tickers += 1,
            Ok(Event::Depth(_)) => self.depth_diffs += 1,
            Ok(Event::Trade(t)) => match t.kind {
                TradeKind::Trade => self.trades += 1,
                TradeKind::AggTrade => self.agg_trades += 1,
            },
            Ok(Event::Snapshot(_)) => self.snapshots += 1,
            Err(e) => self.errors[e.index()] += 1,
        }
    }
}

/// Decodes frames of one symbol into events. Owns the level buffers (allocated in `new`)
/// and the counters.
pub struct Decoder {
    numbers: Numbers,
    /// `<symbol lower case>@`: the prefix every combined-stream name must have.
    stream_prefix: [u8; SYMBOL_LEN_MAX + 1],
    stream_prefix_len: usize,
    /// The symbol's name in upper case (`s` must equal its first `stream_prefix_len - 1`
    /// bytes); kept as bytes so the check is a plain comparison.
    symbol_upper: [u8; SYMBOL_LEN_MAX],
    /// Diff levels: bids in `[0, DEPTH_DIFF_LEVELS_PER_SIDE_MAX)`, asks after.
    diff_levels: Box<[Level]>,
    /// Snapshot levels: bids in `[0, SNAPSHOT_LEVELS_PER_SIDE_MAX)`, asks after.
    snapshot_levels: Box<[Level]>,
    stats: FeedStats,
    /// `{"stream":"<symbol lower case>@`: how every canonical frame begins.
    canon_prefix: [u8; CANON_PREFIX_MAX],
    canon_prefix_len: usize,
    /// `,"s":"<SYMBOL>"`: the canonical symbol field.
    canon_symbol: [u8; CANON_SYMBOL_MAX],
    canon_symbol_len: usize,
    /// Quantities rounded up in the frame being decoded (added to `stats` if it is accepted).
    qty_rounded_in_frame: u32,
}

impl Decoder {
    /// A decoder for `spec`'s symbol and grid. Allocates its level buffers (about 300 KiB);
    /// nothing after this allocates.
    pub fn new(spec: SymbolSpec) -> Decoder {
        let mut stream_prefix = [0u8; SYMBOL_LEN_MAX + 1];
        let mut lower = [0u8; SYMBOL_LEN_MAX];
        let len = spec.symbol.write_lower(&mut lower);
        stream_prefix[..len].copy_from_slice(&lower[..len]);
        stream_prefix[len] = b'@';
        let (canon_prefix, canon_prefix_len) =
            concat::<CANON_PREFIX_MAX>(&[br#"{"stream":""#, &lower[..len], b"@"]);
        let (canon_symbol, canon_symbol_len) =
            concat::<CANON_SYMBOL_MAX>(&[br#","s":""#, spec.symbol.as_str().as_bytes(), b"\""]);
        let mut symbol_upper = [0u8; SYMBOL_LEN_MAX];
        for (dst, src) in symbol_upper.iter_mut().zip(spec.symbol.as_str().bytes()) {
            *dst = src;
        }
        Decoder {
            numbers: Numbers::new(spec),
            stream_prefix,
            stream_prefix_len: len + 1,
            symbol_upper,
            diff_levels: vec![Level::default(); 2 * DEPTH_DIFF_LEVELS_PER_SIDE_MAX]
                .into_boxed_slice(),
            snapshot_levels: vec![Level::default(); 2 * SNAPSHOT_LEVELS_PER_SIDE_MAX]
                .into_boxed_slice(),
            stats: FeedStats::default(),
            qty_rounded_in_frame: 0,
            canon_prefix,
            canon_prefix_len,
            canon_symbol,
            canon_symbol_len,
        }
    }

    /// Decodes one frame (one complete JSON text). `local_ts_ns` is the receive time from
    /// the caller's clock and is copied into the event. Every outcome is counted.
    pub fn decode(&mut self, frame: &[u8], local_ts_ns: u64) -> Result<Event, DecodeError> {
        self.qty_rounded_in_frame = 0;
        let result = self.decode_frame(frame, local_ts_ns);
        self.stats.count(&result);
        if result.is_ok() {
            self.stats.qty_rounded_up += u64::from(self.qty_rounded_in_frame);
        }
        result
    }

    /// Decodes `frame` and forgets it: no counter moves and nothing later `decode` calls
    /// return depends on it. The hot loop's warm-up (`hot::WarmUp`) runs it on a copy of a
    /// bookTicker frame while the market is quiet, so that the next real frame finds the
    /// decoder's code and tables in the caches. Only a frame that is not a depth diff or a
    /// snapshot may be given: those would overwrite the levels of the last diff or
    /// snapshot decoded (`diff_levels`, `snapshot_levels`). Returns whether it decoded.
    #[inline(never)]
    pub fn warm(&mut self, frame: &[u8]) -> bool {
        let stats = self.stats;
        let decoded = std::hint::black_box(self.decode_frame(frame, 0)).is_ok();
        self.stats = stats;
        self.qty_rounded_in_frame = 0;
        decoded
    }

    /// The levels of `diff`, the depth diff returned by the last `decode` call. Any later
    /// `decode` (even a refused one) may overwrite them: consume a diff before decoding
    /// the next frame.
    pub fn diff_levels(&self, diff: &DepthDiff) -> BookLevels<'_> {
        let half = DEPTH_DIFF_LEVELS_PER_SIDE_MAX;
        let (bids, asks) = self.diff_levels.split_at(half);
        BookLevels {
            bids: bids.get(..diff.bid_count as usize).unwrap_or(&[]),
            asks: asks.get(..diff.ask_count as usize).unwrap_or(&[]),
        }
    }

    /// The levels of `snapshot`, the snapshot returned by the last `decode` call (same
    /// lifetime rule as `diff_levels`).
    pub fn snapshot_levels(&self, snapshot: &Snapshot) -> BookLevels<'_> {
        let half = SNAPSHOT_LEVELS_PER_SIDE_MAX;
        let (bids, asks) = self.snapshot_levels.split_at(half);
        BookLevels {
            bids: bids.get(..snapshot.bid_count as usize).unwrap_or(&[]),
            asks: asks.get(..snapshot.ask_count as usize).unwrap_or(&[]),
        }
    }

    /// Counters since `new`.
    pub fn stats(&self) -> &FeedStats {
        &self.stats
    }

    /// The symbol and grid this decoder checks against.
    pub fn spec(&self) -> &SymbolSpec {
        &self.numbers.spec
    }

    /// The configured symbol's bytes (`BTCUSDT`), as `s` must spell it.
    #[inline]
    fn symbol(&self) -> &[u8] {
        // The prefix is `<symbol lower case>@`; `symbol_upper` holds the same length.
        self.symbol_upper
            .get(..self.stream_prefix_len - 1)
            .unwrap_or(&[])
    }

    /// Scans the outer object. If it holds `data` it is the combined-stream wrapper and the
    /// payload is `data` (other keys skipped); otherwise the object itself is the payload.
    fn decode_frame(&mut self, frame: &[u8], local_ts_ns: u64) -> Result<Event, DecodeError> {
        if let Some(fields) = self.decode_canonical(frame) {
            let result = build_event(&fields, local_ts_ns);
            if result.is_ok() {
                self.stats.canonical += 1;
            }
            return result;
        }
        // The speculative pass may have counted roundings in a frame it gave up on.
        self.qty_rounded_in_frame = 0;
        self.decode_general(frame, local_ts_ns)
    }

    /// Speculative fast path for Binance's exact serialisation of the four streams
    /// (combined-stream wrapper, Binance's field order, no whitespace): the frame is checked
    /// against fixed byte templates and only the values are parsed, with the same value
    /// parsers and the same final checks (`build_event`) as the general path. At the first
    /// byte that differs it gives up (`None`) and the general scanner reads the frame from
    /// the start, so it decides nothing on its own: a frame it accepts yields exactly what
    /// the general path would (tested on every recorded message and on mutations).
    #[inline]
    fn decode_canonical(&mut self, frame: &[u8]) -> Option<Fields> {
        let mut cur = Cursor::new(frame);
        let mut f = Fields::default();
        let prefix = self.canon_prefix.get(..self.canon_prefix_len)?;
        let symbol = self.canon_symbol.get(..self.canon_symbol_len)?;
        if !cur.lit(prefix) {
            return None;
        }
        if cur.lit(br#"bookTicker","data":{"u":"#) {
            f.final_id = cur.uint().ok()?;
            (cur.lit(symbol) && cur.lit(br#","b":"#)).then_some(())?;
            f.bid_price = self.price(&mut cur).ok()?;
            cur.lit(br#","B":"#).then_some(())?;
            f.bid_qty = self.qty(&mut cur).ok()?;
            cur.lit(br#","a":"#).then_some(())?;
            f.ask_price = self.price(&mut cur).ok()?;
            cur.lit(br#","A":"#).then_some(())?;
            f.ask_qty = self.qty(&mut cur).ok()?;
            f.seen = F_FINAL_ID | F_SYMBOL | F_B | F_BID_QTY | F_A | F_ASK_QTY;
            (f.b_form, f.a_form) = (Form::Price, Form::Price);
        } else if cur.lit(b"depth") {
            cur.lit(b"@100ms");
            cur.lit(br#"","data":{"e":"depthUpdate","E":"#)
                .then_some(())?;
            f.event_ts_ms = cur.uint().ok()?;
            (cur.lit(symbol) && cur.lit(br#","U":"#)).then_some(())?;
            f.first_id = cur.uint().ok()?;
            cur.lit(br#","u":"#).then_some(())?;
            f.final_id = cur.uint().ok()?;
            cur.lit(br#","b":"#).then_some(())?;
            f.bid_count = self.diff_side(&mut cur, 0).ok()?;
            cur.lit(br#","a":"#).then_some(())?;
            f.ask_count = self
                .diff_side(&mut cur, DEPTH_DIFF_LEVELS_PER_SIDE_MAX)
                .ok()?;
            f.seen = F_EVENT_TYPE | F_EVENT_TS | F_SYMBOL | F_FIRST_ID | F_FINAL_ID | F_B | F_A;
            f.event_type = EventType::DepthUpdate;
            (f.b_form, f.a_form) = (Form::Levels, Form::Levels);
        } else {
            if cur.lit(br#"trade","data":{"e":"trade","E":"#) {
                f.event_ts_ms = cur.uint().ok()?;
                (cur.lit(symbol) && cur.lit(br#","t":"#)).then_some(())?;
                f.trade_id = cur.uint().ok()?;
                f.event_type = EventType::Trade;
                f.seen = F_TRADE_ID;
            } else if cur.lit(br#"aggTrade","data":{"e":"aggTrade","E":"#) {
                f.event_ts_ms = cur.uint().ok()?;
                (cur.lit(symbol) && cur.lit(br#","a":"#)).then_some(())?;
                f.agg_id = cur.uint().ok()?;
                f.a_form = Form::Id;
                f.event_type = EventType::AggTrade;
                f.seen = F_A;
            } else {
                return None;
            }
            cur.lit(br#","p":"#).then_some(())?;
            f.price = self.price(&mut cur).ok()?;
            cur.lit(br#","q":"#).then_some(())?;
            f.qty = self.qty(&mut cur).ok()?;
            if f.event_type == EventType::AggTrade {
                cur.lit(br#","f":"#).then_some(())?;
                f.first_trade_id = cur.uint().ok()?;
                cur.lit(br#","l":"#).then_some(())?;
                f.last_trade_id = cur.uint().ok()?;
                f.seen |= F_FIRST_TRADE_ID | F_LAST_TRADE_ID;
            }
            cur.lit(br#","T":"#).then_some(())?;
            f.trade_ts_ms = cur.uint().ok()?;
            cur.lit(br#","m":"#).then_some(())?;
            f.buyer_is_maker = cur.boolean().ok()?;
            cur.lit(br#","M":"#).then_some(())?;
            cur.boolean().ok()?;
            f.seen |= F_EVENT_TYPE
                | F_EVENT_TS
                | F_SYMBOL
                | F_PRICE
                | F_QTY
                | F_TRADE_TS
                | F_BUYER_MAKER
                | F_BEST_MATCH;
        }
        (cur.lit(b"}}") && cur.finish().is_ok()).then_some(f)
    }

    /// The general scanner: any field order, whitespace, unknown fields, raw or combined
    /// form.
    fn decode_general(&mut self, frame: &[u8], local_ts_ns: u64) -> Result<Event, DecodeError> {
        let mut cur = Cursor::new(frame);
        let mut outer = Fields::default();
        let mut inner = Fields::default();
        let mut wrapped = false;
        let mut stream: Option<&[u8]> = None;

        cur.expect(b'{')?;
        if !cur.eat(b'}')? {
            loop {
                let key = cur.key()?;
                match key {
                    b"data" => {
                        if wrapped {
                            return Err(DecodeError::DuplicateField);
                        }
                        wrapped = true;
                        let first = cur.peek()?;
                        if first != b'{' {
                            return Err(value_error(first));
                        }
                        self.payload_object(&mut cur, &mut inner)?;
                    }
                    b"stream" => {
                        if stream.is_some() {
                            return Err(DecodeError::DuplicateField);
                        }
                        stream = Some(cur.plain_string()?);
                    }
                    // After `data`, other outer keys are not payload: skip them so they
                    // cannot overwrite the payload's levels.
                    _ if wrapped => cur.skip_value()?,
                    _ => self.payload_field(key, &mut cur, &mut outer)?,
                }
                match cur.next_byte()? {
                    b',' => continue,
                    b'}' => break,
                    _ => return Err(DecodeError::Malformed),
                }
            }
        }
        cur.finish()?;

        if wrapped {
            if let Some(name) = stream {
                if !name.starts_with(&self.stream_prefix[..self.stream_prefix_len]) {
                    return Err(DecodeError::WrongSymbol);
                }
            }
            build_event(&inner, local_ts_ns)
        } else {
            build_event(&outer, local_ts_ns)
        }
    }

    /// Scans the `data` object into `fields`.
    fn payload_object(
        &mut self,
        cur: &mut Cursor<'_>,
        fields: &mut Fields,
    ) -> Result<(), DecodeError> {
        cur.expect(b'{')?;
        if cur.eat(b'}')? {
            return Ok(());
        }
        loop {
            let key = cur.key()?;
            self.payload_field(key, cur, fields)?;
            match cur.next_byte()? {
                b',' => continue,
                b'}' => return Ok(()),
                _ => return Err(DecodeError::Malformed),
            }
        }
    }

    /// Reads the value of one payload key into `fields` (unknown keys are skipped).
    #[inline]
    fn payload_field(
        &mut self,
        key: &[u8],
        cur: &mut Cursor<'_>,
        fields: &mut Fields,
    ) -> Result<(), DecodeError> {
        match key {
            [b'e'] => {
                fields.mark(F_EVENT_TYPE)?;
                fields.event_type = match cur.plain_string()? {
                    b"depthUpdate" => EventType::DepthUpdate,
                    b"trade" => EventType::Trade,
                    b"aggTrade" => EventType::AggTrade,
                    b"bookTicker" => EventType::BookTicker,
                    _ => EventType::Other,
                };
            }
            [b'E'] => {
                fields.mark(F_EVENT_TS)?;
                fields.event_ts_ms = cur.uint()?;
            }
            [b'T'] => {
                fields.mark(F_TRADE_TS)?;
                fields.trade_ts_ms = cur.uint()?;
            }
            [b's'] => {
                fields.mark(F_SYMBOL)?;
                if cur.plain_string()? != self.symbol() {
                    return Err(DecodeError::WrongSymbol);
                }
            }
            [b'U'] => {
                fields.mark(F_FIRST_ID)?;
                fields.first_id = cur.uint()?;
            }
            [b'u'] => {
                fields.mark(F_FINAL_ID)?;
                fields.final_id = cur.uint()?;
            }
            b"pu" => {
                fields.mark(F_PREV_ID)?;
                fields.prev_id = cur.uint()?;
            }
            // Futures trades carry `X`: MARKET, or INSURANCE_FUND / ADL / NA (not trades
            // of the order book). Only MARKET trades are kept.
            [b'X'] => {
                fields.mark(F_TRADE_TYPE)?;
                fields.not_market = cur.plain_string()? != b"MARKET";
            }
            [b't'] => {
                fields.mark(F_TRADE_ID)?;
                fields.trade_id = cur.uint()?;
            }
            [b'f'] => {
                fields.mark(F_FIRST_TRADE_ID)?;
                fields.first_trade_id = cur.uint()?;
            }
            [b'l'] => {
                fields.mark(F_LAST_TRADE_ID)?;
                fields.last_trade_id = cur.uint()?;
            }
            [b'p'] => {
                fields.mark(F_PRICE)?;
                fields.price = self.price(cur)?;
            }
            [b'q'] => {
                fields.mark(F_QTY)?;
                fields.qty = self.qty(cur)?;
            }
            [b'B'] => {
                fields.mark(F_BID_QTY)?;
                fields.bid_qty = self.qty(cur)?;
            }
            [b'A'] => {
                fields.mark(F_ASK_QTY)?;
                fields.ask_qty = self.qty(cur)?;
            }
            [b'm'] => {
                fields.mark(F_BUYER_MAKER)?;
                fields.buyer_is_maker = cur.boolean()?;
            }
            [b'M'] => {
                fields.mark(F_BEST_MATCH)?;
                cur.boolean()?;
            }
            // `b` and `a` are a price in bookTicker, level arrays in depthUpdate, `a` is
            // the aggregate trade id in aggTrade, and both were order ids in the old trade
            // stream: the value's first byte decides.
            [b'b'] => {
                fields.mark(F_B)?;
                match cur.peek()? {
                    b'[' => {
                        fields.b_form = Form::Levels;
                        fields.bid_count = self.diff_side(cur, 0)?;
                    }
                    b'"' => {
                        fields.b_form = Form::Price;
                        fields.bid_price = self.price(cur)?;
                    }
                    // The trade stream carried the buyer's order id here until late 2023
                    // (`"b":20720542158`, with the seller's in `a`): read and ignored.
                    b'0'..=b'9' => {
                        fields.b_form = Form::Id;
                        cur.uint()?;
                    }
                    other => return Err(value_error(other)),
                }
            }
            [b'a'] => {
                fields.mark(F_A)?;
                match cur.peek()? {
                    b'[' => {
                        fields.a_form = Form::Levels;
                        fields.ask_count = self.diff_side(cur, DEPTH_DIFF_LEVELS_PER_SIDE_MAX)?;
                    }
                    b'"' => {
                        fields.a_form = Form::Price;
                        fields.ask_price = self.price(cur)?;
                    }
                    b'0'..=b'9' | b'-' => {
                        fields.a_form = Form::Id;
                        fields.agg_id = cur.uint()?;
                    }
                    other => return Err(value_error(other)),
                }
            }
            b"lastUpdateId" => {
                fields.mark(F_LAST_UPDATE_ID)?;
                fields.last_update_id = cur.uint()?;
            }
            b"bids" => {
                fields.mark(F_BIDS)?;
                let first = cur.peek()?;
                if first != b'[' {
                    return Err(value_error(first));
                }
                fields.bid_count = self.snapshot_side(cur, 0)?;
            }
            b"asks" => {
                fields.mark(F_ASKS)?;
                let first = cur.peek()?;
                if first != b'[' {
                    return Err(value_error(first));
                }
                fields.ask_count = self.snapshot_side(cur, SNAPSHOT_LEVELS_PER_SIDE_MAX)?;
            }
            _ => cur.skip_value()?,
        }
        Ok(())
    }

    #[inline(always)]
    fn price(&self, cur: &mut Cursor<'_>) -> Result<Price, DecodeError> {
        self.numbers.price(cur.plain_string()?)
    }

    #[inline(always)]
    fn qty(&mut self, cur: &mut Cursor<'_>) -> Result<Qty, DecodeError> {
        self.numbers
            .qty(cur.plain_string()?, &mut self.qty_rounded_in_frame)
    }

    /// Reads one side of a diff into the diff buffer at `base`; returns the level count.
    fn diff_side(&mut self, cur: &mut Cursor<'_>, base: usize) -> Result<u32, DecodeError> {
        let Some(out) = self
            .diff_levels
            .get_mut(base..base + DEPTH_DIFF_LEVELS_PER_SIDE_MAX)
        else {
            return Err(DecodeError::TooManyLevels);
        };
        read_levels(&self.numbers, cur, out, &mut self.qty_rounded_in_frame)
    }

    /// Reads one side of a snapshot into the snapshot buffer at `base`.
    fn snapshot_side(&mut self, cur: &mut Cursor<'_>, base: usize) -> Result<u32, DecodeError> {
        let Some(out) = self
            .snapshot_levels
            .get_mut(base..base + SNAPSHOT_LEVELS_PER_SIDE_MAX)
        else {
            return Err(DecodeError::TooManyLevels);
        };
        read_levels(&self.numbers, cur, out, &mut self.qty_rounded_in_frame)
    }
}

/// Reads `[["p","q"],...]` into `out`; more levels than `out` holds is `TooManyLevels`.
#[inline]
fn read_levels(
    numbers: &Numbers,
    cur: &mut Cursor<'_>,
    out: &mut [Level],
    qty_rounded: &mut u32,
) -> Result<u32, DecodeError> {
    cur.expect(b'[')?;
    if cur.eat(b']')? {
        return Ok(0);
    }
    let mut count = 0usize;
    loop {
        let first = cur.peek()?;
        if first != b'[' {
            return Err(value_error(first));
        }
        cur.expect(b'[')?;
        let price = numbers.price(cur.plain_string()?)?;
        cur.expect(b',')?;
        let qty = numbers.qty(cur.plain_string()?, qty_rounded)?;
        cur.expect(b']')?;
        let Some(slot) = out.get_mut(count) else {
            return Err(DecodeError::TooManyLevels);
        };
        *slot = Level { price, qty };
        count += 1;
        match cur.next_byte()? {
            b',' => continue,
            b']' => break,
            _ => return Err(DecodeError::Malformed),
        }
    }
    // `out` is at most SNAPSHOT_LEVELS_PER_SIDE_MAX long (const-asserted to fit a u32).
    Ok(count as u32)
}

/// Room for `{"stream":"` + symbol + `@`.
const CANON_PREFIX_MAX: usize = 11 + SYMBOL_LEN_MAX + 1;
/// Room for `,"s":"` + symbol + `"`.
const CANON_SYMBOL_MAX: usize = 6 + SYMBOL_LEN_MAX + 1;

/// Concatenates `parts` into a fixed array (start-up only); returns it and the length.
/// Bytes beyond `N` would be cut; the sizes above rule that out.
fn concat<const N: usize>(parts: &[&[u8]]) -> ([u8; N], usize) {
    let mut out = [0u8; N];
    let mut len = 0;
    for &byte in parts.iter().flat_map(|part| part.iter()) {
        if let Some(slot) = out.get_mut(len) {
            *slot = byte;
            len += 1;
        }
    }
    (out, len)
}

/// The symbol's grid and the fast parsers for it: wire decimals into ticks and lots.
#[derive(Clone, Copy)]
struct Numbers {
    spec: SymbolSpec,
    /// Canonical-form fast path for prices (`None` if the tick is not a power of ten).
    price_grid: Option<GridParser>,
    /// Canonical-form fast path for quantities.
    qty_grid: Option<GridParser>,
}

impl Numbers {
    fn new(spec: SymbolSpec) -> Numbers {
        Numbers {
            spec,
            price_grid: GridParser::new(spec.tick_atoms),
            qty_grid: GridParser::new(spec.step_atoms),
        }
    }

    /// A wire price in ticks; off the tick grid is `OffGrid`.
    #[inline(always)]
    fn price(&self, text: &[u8]) -> Result<Price, DecodeError> {
        if let Some(ticks) = self.price_grid.and_then(|grid| grid.parse(text)) {
            return Ok(Price(ticks));
        }
        self.spec.parse_price(text).map_err(decimal_error)
    }

    /// A market-data quantity in lots. A quantity off the lot grid is *not* an error here:
    /// a level's quantity is the sum of resting orders, and orders placed under an older,
    /// finer step size stay on the book (the recorded BTCUSDT session has level quantities
    /// such as `25.42618900` at 0.00001 steps). It is rounded *up* to whole lots, so a
    /// non-zero quantity never reads as 0 (a removal), and counted in `qty_rounded`.
    #[inline(always)]
    fn qty(&self, text: &[u8], qty_rounded: &mut u32) -> Result<Qty, DecodeError> {
        if let Some(lots) = self.qty_grid.and_then(|grid| grid.parse(text)) {
            return Ok(Qty(lots));
        }
        match self.spec.parse_qty(text) {
            Ok(qty) => Ok(qty),
            Err(DecimalError::OffGrid) => {
                let atoms = parse_atoms(text).map_err(decimal_error)?;
                *qty_rounded = qty_rounded.saturating_add(1);
                // Off the grid means not a multiple of the (positive) step: never exact.
                Ok(Qty(atoms / self.spec.step_atoms + 1))
            }
            Err(e) => Err(decimal_error(e)),
        }
    }
}

/// Turns the collected fields into an event, checking presence, forms and ranges.
fn build_event(f: &Fields, local_ts_ns: u64) -> Result<Event, DecodeError> {
    let event_type = if f.seen & F_EVENT_TYPE != 0 {
        f.event_type
    } else if f.seen & F_LAST_UPDATE_ID != 0 {
        EventType::Snapshot
    } else if f.seen & F_FINAL_ID != 0 {
        EventType::BookTicker
    } else {
        EventType::Other
    };
    match event_type {
        EventType::DepthUpdate => {
            f.require(F_EVENT_TS | F_SYMBOL | F_FIRST_ID | F_FINAL_ID | F_B | F_A)?;
            if f.b_form != Form::Levels || f.a_form != Form::Levels {
                return Err(DecodeError::WrongType);
            }
            if f.first_id > f.final_id {
                return Err(DecodeError::OutOfRange);
            }
            Ok(Event::Depth(DepthDiff {
                first_update_id: f.first_id,
                final_update_id: f.final_id,
                prev_final_update_id: f.prev_id,
                bid_count: f.bid_count,
                ask_count: f.ask_count,
                exch_ts_ms: f.event_ts_ms,
                local_ts_ns,
            }))
        }
        EventType::BookTicker => {
            f.require(F_FINAL_ID | F_SYMBOL | F_B | F_BID_QTY | F_A | F_ASK_QTY)?;
            if f.b_form != Form::Price || f.a_form != Form::Price {
                return Err(DecodeError::WrongType);
            }
            Ok(Event::BookTicker(BookTicker {
                update_id: f.final_id,
                bid_price: f.bid_price,
                bid_qty: f.bid_qty,
                ask_price: f.ask_price,
                ask_qty: f.ask_qty,
                exch_ts_ms: f.event_ts_ms,
                local_ts_ns,
            }))
        }
        EventType::Trade => {
            f.require(
                F_EVENT_TS | F_SYMBOL | F_TRADE_ID | F_PRICE | F_QTY | F_TRADE_TS | F_BUYER_MAKER,
            )?;
            if f.not_market {
                // An insurance-fund or ADL fill, not a trade of the order book.
                return Err(DecodeError::UnknownKind);
            }
            Ok(Event::Trade(Trade {
                kind: TradeKind::Trade,
                trade_id: f.trade_id,
                first_trade_id: f.trade_id,
                last_trade_id: f.trade_id,
                price: f.price,
                qty: f.qty,
                aggressor: aggressor(f.buyer_is_maker),
                trade_ts_ms: f.trade_ts_ms,
                exch_ts_ms: f.event_ts_ms,
                local_ts_ns,
            }))
        }
        EventType::AggTrade => {
            f.require(
                F_EVENT_TS
                    | F_SYMBOL
                    | F_A
                    | F_PRICE
                    | F_QTY
                    | F_FIRST_TRADE_ID
                    | F_LAST_TRADE_ID
                    | F_TRADE_TS
                    | F_BUYER_MAKER,
            )?;
            if f.a_form != Form::Id {
                return Err(DecodeError::WrongType);
            }
            if f.first_trade_id > f.last_trade_id {
                return Err(DecodeError::OutOfRange);
            }
            Ok(Event::Trade(Trade {
                kind: TradeKind::AggTrade,
                trade_id: f.agg_id,
                first_trade_id: f.first_trade_id,
                last_trade_id: f.last_trade_id,
                price: f.price,
                qty: f.qty,
                aggressor: aggressor(f.buyer_is_maker),
                trade_ts_ms: f.trade_ts_ms,
                exch_ts_ms: f.event_ts_ms,
                local_ts_ns,
            }))
        }
        EventType::Snapshot => {
            f.require(F_LAST_UPDATE_ID | F_BIDS | F_ASKS)?;
            Ok(Event::Snapshot(Snapshot {
                last_update_id: f.last_update_id,
                bid_count: f.bid_count,
                ask_count: f.ask_count,
                local_ts_ns,
            }))
        }
        EventType::Other => Err(DecodeError::UnknownKind),
    }
}

/// `m` (buyer is maker) true ⇒ the seller took liquidity.
#[inline]
fn aggressor(buyer_is_maker: bool) -> Side {
    if buyer_is_maker {
        Side::Sell
    } else {
        Side::Buy
    }
}

/// Maps a decimal-string refusal onto the feed's error kinds.
#[inline]
fn decimal_error(e: DecimalError) -> DecodeError {
    match e {
        DecimalError::OffGrid => DecodeError::OffGrid,
        DecimalError::Overflow => DecodeError::OutOfRange,
        DecimalError::Empty
        | DecimalError::InvalidChar
        | DecimalError::TwoDots
        | DecimalError::TooPrecise => DecodeError::BadNumber,
    }
}

/// The event type named by `e` (or inferred from the fields when there is no `e`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum EventType {
    #[default]
    Other,
    DepthUpdate,
    Trade,
    AggTrade,
    BookTicker,
    Snapshot,
}

/// Which JSON form a `b` or `a` value had.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Form {
    #[default]
    Absent,
    Price,
    Levels,
    Id,
}

/// The known fields of one payload object, as scanned.
#[derive(Default)]
struct Fields {
    /// `F_*` bits of the keys seen.
    seen: u32,
    event_type: EventType,
    event_ts_ms: u64,
    trade_ts_ms: u64,
    first_id: u64,
    final_id: u64,
    trade_id: u64,
    first_trade_id: u64,
    last_trade_id: u64,
    agg_id: u64,
    last_update_id: u64,
    /// `pu` (futures depth diffs), 0 when absent.
    prev_id: u64,
    /// `X` was present and not `MARKET` (futures trades).
    not_market: bool,
    price: Price,
    qty: Qty,
    bid_price: Price,
    bid_qty: Qty,
    ask_price: Price,
    ask_qty: Qty,
    buyer_is_maker: bool,
    b_form: Form,
    a_form: Form,
    bid_count: u32,
    ask_count: u32,
}

impl Fields {
    /// Records that the key for `bit` was seen; a second time is `DuplicateField`.
    #[inline]
    fn mark(&mut self, bit: u32) -> Result<(), DecodeError> {
        if self.seen & bit != 0 {
            return Err(DecodeError::DuplicateField);
        }
        self.seen |= bit;
        Ok(())
    }

    /// Every key in `bits` was seen, else `MissingField`.
    #[inline]
    fn require(&self, bits: u32) -> Result<(), DecodeError> {
        if self.seen & bits == bits {
            Ok(())
        } else {
            Err(DecodeError::MissingField)
        }
    }
}

const F_EVENT_TYPE: u32 = 1 << 0; // e
const F_EVENT_TS: u32 = 1 << 1; // E
const F_TRADE_TS: u32 = 1 << 2; // T
const F_SYMBOL: u32 = 1 << 3; // s
const F_FIRST_ID: u32 = 1 << 4; // U
const F_FINAL_ID: u32 = 1 << 5; // u
const F_TRADE_ID: u32 = 1 << 6; // t
const F_FIRST_TRADE_ID: u32 = 1 << 7; // f
const F_LAST_TRADE_ID: u32 = 1 << 8; // l
const F_PRICE: u32 = 1 << 9; // p
const F_QTY: u32 = 1 << 10; // q
const F_BID_QTY: u32 = 1 << 11; // B
const F_ASK_QTY: u32 = 1 << 12; // A
const F_BUYER_MAKER: u32 = 1 << 13; // m
const F_BEST_MATCH: u32 = 1 << 14; // M
const F_B: u32 = 1 << 15; // b
const F_A: u32 = 1 << 16; // a
const F_LAST_UPDATE_ID: u32 = 1 << 17; // lastUpdateId
const F_BIDS: u32 = 1 << 18; // bids
const F_ASKS: u32 = 1 << 19; // asks
const F_PREV_ID: u32 = 1 << 20; // pu
const F_TRADE_TYPE: u32 = 1 << 21; // X

#[cfg(test)]
mod tests;
