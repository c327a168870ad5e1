//! The decoded tape file (`.mmt`), written once by `--mode=convert --out FILE.mmt` and read
//! sequentially by the backtest and the pure replay: events already decoded into integer
//! ticks and lots, so a replay skips gunzip, line splitting and JSON.
//!
//! Layout (little-endian; version 1):
//! - header, 64 bytes: magic `MMTAPE1\n`, version u32, header length u32 (64), the symbol's
//!   filters (tick size, step size, minimum notional, in atoms: i64 each), the symbol
//!   (16 bytes, NUL-padded), CRC-32 of bytes 0..56 (u32), 4 bytes reserved (0);
//! - blocks until the end of the file, each: block header 16 bytes (magic `TBLK`, events
//!   u32, payload bytes u32, CRC-32 of the payload u32) and the payload: per event one
//!   64-byte event record, then its book levels (depth diffs and snapshots: bids, then
//!   asks) as 16-byte level records (price ticks i64, quantity lots i64). An event never
//!   straddles two blocks; a block holds about `BLOCK_BYTES`.
//! - event record: kind u8 (1 bookTicker, 2 depth diff, 3 trade, 4 snapshot), flags u8
//!   (bit 0: the receive time counts for the feed-delay median; bit 1: the aggressor sold;
//!   bit 2: an aggregate trade), 2 bytes reserved, u32 (trades: last − first trade id),
//!   receive time ns u64, then six 8-byte fields. bookTicker: update id, bid price, bid
//!   qty, ask price, ask qty, exchange ms. Depth: first and final update id, the bid and
//!   ask counts (u32 each), exchange ms, `pu` (the previous diff's final id: USD-M futures;
//!   0 on spot), 0. Trade: trade id, first trade id, price,
//!   qty, trade ms, exchange ms. Snapshot: last update id, the bid and ask counts, 0, 0,
//!   0, 0.
//!
//! - trailer, last: block header with magic `TEND` (events 0, payload 112 bytes, CRC) and
//!   14 eight-byte fields: the conversion's counts and feed-delay median (`trailer_bytes`),
//!   so a replay of the whole file needs no first pass (`read_trailer`).
//!
//! Invariants: the reader checks every block's CRC before using a byte of it and refuses
//! a file whose filters differ from the configuration's; times never go backwards. A
//! damaged or truncated file is an error naming the block and its byte offset.
//!
//! Never: used on the trading hot path; overwrites a file; guesses past a damaged block.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use crate::feed::{BookLevels, BookTicker, DepthDiff, Event, Level, Snapshot, Trade, TradeKind};
use crate::types::{Price, Qty, Side, SymbolSpec};

use super::reader::read_up_to;
use super::tape::{TapeEvent, TapeStats};
use super::{Location, ReplayError};

/// First bytes of a tape file.
pub const TAPE_MAGIC: [u8; 8] = *b"MMTAPE1\n";
/// Format version written and read.
pub const TAPE_VERSION: u32 = 1;
/// File name ending of a tape file.
pub const TAPE_EXTENSION: &str = ".mmt";
/// Target payload of one block.
pub const BLOCK_BYTES: usize = 1 << 20;
const HEADER_LEN: usize = 64;
const BLOCK_HEADER_LEN: usize = 16;
const BLOCK_MAGIC: [u8; 4] = *b"TBLK";
const TRAILER_MAGIC: [u8; 4] = *b"TEND";
/// The trailer's payload: 14 eight-byte fields (`trailer_bytes`).
const TRAILER_LEN: usize = 14 * 8;
const EVENT_LEN: usize = 64;
const LEVEL_LEN: usize = 16;

const KIND_BOOK_TICKER: u8 = 1;
const KIND_DEPTH: u8 = 2;
const KIND_TRADE: u8 = 3;
const KIND_SNAPSHOT: u8 = 4;
const FLAG_DELAY: u8 = 1;
const FLAG_SELL: u8 = 2;
const FLAG_AGG: u8 = 4;

fn header_bytes(spec: &SymbolSpec) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(&TAPE_MAGIC);
    h[8..12].copy_from_slice(&TAPE_VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
    h[16..24].copy_from_slice(&spec.tick_atoms.to_le_bytes());
    h[24..32].copy_from_slice(&spec.step_atoms.to_le_bytes());
    h[32..40].copy_from_slice(&spec.min_notional_atoms.to_le_bytes());
    let symbol = spec.symbol.as_str().as_bytes();
    let n = symbol.len().min(16);
    h[40..40 + n].copy_from_slice(&symbol[..n]);
    let crc = crc32fast::hash(&h[0..56]);
    h[56..60].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Writes a tape file, block by block.
pub struct TapeWriter {
    out: BufWriter<File>,
    block: Vec<u8>,
    block_events: u32,
    events: u64,
    bytes: u64,
}

impl TapeWriter {
    /// Creates `path` (never overwrites) and writes the header for `spec`.
    pub fn create(path: &Path, spec: &SymbolSpec) -> std::io::Result<TapeWriter> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let file = File::options().write(true).create_new(true).open(path)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(&header_bytes(spec))?;
        Ok(TapeWriter {
            out,
            block: Vec::with_capacity(BLOCK_BYTES + EVENT_LEN),
            block_events: 0,
            events: 0,
            bytes: HEADER_LEN as u64,
        })
    }

    /// Appends one event and its levels; `delay_counts`: its receive time and exchange
    /// time are on one clock (it counts for the feed-delay median).
    pub fn append(
        &mut self,
        event: &TapeEvent,
        levels: BookLevels<'_>,
        delay_counts: bool,
    ) -> std::io::Result<()> {
        let size = EVENT_LEN + LEVEL_LEN * (levels.bids.len() + levels.asks.len());
        if !self.block.is_empty() && self.block.len() + size > BLOCK_BYTES {
            self.flush_block()?;
        }
        let mut r = [0u8; EVENT_LEN];
        let mut flags = if delay_counts { FLAG_DELAY } else { 0 };
        let mut extra = 0u32;
        let f: [u64; 6];
        let kind = match &event.event {
            Event::BookTicker(b) => {
                f = [
                    b.update_id,
                    b.bid_price.0 as u64,
                    b.bid_qty.0 as u64,
                    b.ask_price.0 as u64,
                    b.ask_qty.0 as u64,
                    b.exch_ts_ms,
                ];
                KIND_BOOK_TICKER
            }
            Event::Depth(d) => {
                f = [
                    d.first_update_id,
                    d.final_update_id,
                    counts(d.bid_count, d.ask_count),
                    d.exch_ts_ms,
                    d.prev_final_update_id,
                    0,
                ];
                KIND_DEPTH
            }
            Event::Trade(t) => {
                if t.aggressor == Side::Sell {
                    flags |= FLAG_SELL;
                }
                if t.kind == TradeKind::AggTrade {
                    flags |= FLAG_AGG;
                }
                extra = t
                    .last_trade_id
                    .checked_sub(t.first_trade_id)
                    .and_then(|d| u32::try_from(d).ok())
                    .ok_or_else(|| {
                        std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!(
                                "trade {}: first and last trade ids {}..{} do not fit the format",
                                t.trade_id, t.first_trade_id, t.last_trade_id
                            ),
                        )
                    })?;
                f = [
                    t.trade_id,
                    t.first_trade_id,
                    t.price.0 as u64,
                    t.qty.0 as u64,
                    t.trade_ts_ms,
                    t.exch_ts_ms,
                ];
                KIND_TRADE
            }
            Event::Snapshot(s) => {
                f = [
                    s.last_update_id,
                    counts(s.bid_count, s.ask_count),
                    0,
                    0,
                    0,
                    0,
                ];
                KIND_SNAPSHOT
            }
        };
        r[0] = kind;
        r[1] = flags;
        r[4..8].copy_from_slice(&extra.to_le_bytes());
        r[8..16].copy_from_slice(&event.local_ts_ns.to_le_bytes());
        for (i, v) in f.iter().enumerate() {
            r[16 + 8 * i..24 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        self.block.extend_from_slice(&r);
        for level in levels.bids.iter().chain(levels.asks) {
            self.block.extend_from_slice(&level.price.0.to_le_bytes());
            self.block.extend_from_slice(&level.qty.0.to_le_bytes());
        }
        self.block_events += 1;
        self.events += 1;
        Ok(())
    }

    fn flush_block(&mut self) -> std::io::Result<()> {
        if self.block_events == 0 {
            return Ok(());
        }
        let len = u32::try_from(self.block.len()).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, "an event over 4 GiB")
        })?;
        let mut h = [0u8; BLOCK_HEADER_LEN];
        h[0..4].copy_from_slice(&BLOCK_MAGIC);
        h[4..8].copy_from_slice(&self.block_events.to_le_bytes());
        h[8..12].copy_from_slice(&len.to_le_bytes());
        h[12..16].copy_from_slice(&crc32fast::hash(&self.block).to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(&self.block)?;
        self.bytes += (BLOCK_HEADER_LEN + self.block.len()) as u64;
        self.block.clear();
        self.block_events = 0;
        Ok(())
    }

    /// Writes the last block, then the trailer with what the conversion counted (`stats`
    /// of the source, including the feed-delay median), and syncs the file; returns
    /// (events, bytes).
    pub fn finish(mut self, stats: &TapeStats) -> std::io::Result<(u64, u64)> {
        self.flush_block()?;
        let payload = trailer_bytes(stats);
        let mut h = [0u8; BLOCK_HEADER_LEN];
        h[0..4].copy_from_slice(&TRAILER_MAGIC);
        h[8..12].copy_from_slice(&(TRAILER_LEN as u32).to_le_bytes());
        h[12..16].copy_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(&payload)?;
        self.bytes += (BLOCK_HEADER_LEN + TRAILER_LEN) as u64;
        self.out.flush()?;
        self.out.get_ref().sync_all()?;
        Ok((self.events, self.bytes))
    }
}

/// The trailer's payload: frames, events, depth diffs, bookTickers, trades, snapshots,
/// frames skipped (unknown kind, other symbol), quantities rounded up, whether a feed-delay
/// median exists (0/1), the median (i64), its samples, first and last receive time.
fn trailer_bytes(s: &TapeStats) -> [u8; TRAILER_LEN] {
    let fields: [u64; 14] = [
        s.frames,
        s.events,
        s.depth_diffs,
        s.book_tickers,
        s.trades,
        s.snapshots,
        s.skipped_unknown_kind,
        s.skipped_other_symbol,
        s.qty_rounded_up,
        u64::from(s.feed_delay_ns_median.is_some()),
        s.feed_delay_ns_median.unwrap_or(0) as u64,
        s.feed_delay_samples,
        s.first_ts_ns,
        s.last_ts_ns,
    ];
    let mut b = [0u8; TRAILER_LEN];
    for (k, v) in fields.iter().enumerate() {
        b[8 * k..8 * k + 8].copy_from_slice(&v.to_le_bytes());
    }
    b
}

/// The counts a trailer holds (torn tails are told at conversion, not kept).
fn trailer_stats(b: &[u8]) -> TapeStats {
    let f = |k: usize| u64_at(b, 8 * k);
    TapeStats {
        frames: f(0),
        events: f(1),
        depth_diffs: f(2),
        book_tickers: f(3),
        trades: f(4),
        snapshots: f(5),
        skipped_unknown_kind: f(6),
        skipped_other_symbol: f(7),
        qty_rounded_up: f(8),
        feed_delay_ns_median: (f(9) != 0).then(|| f(10) as i64),
        feed_delay_samples: f(11),
        first_ts_ns: f(12),
        last_ts_ns: f(13),
        ..TapeStats::default()
    }
}

/// The counts stored in the trailer of the tape file `path` (whose header was checked by
/// `TapeFileReader::open`), read from the end without decoding the file; `None` for a file
/// without a trailer or with a damaged one (then the replay counts for itself).
pub fn read_trailer(path: &Path) -> Option<TapeStats> {
    use std::io::{Seek, SeekFrom};
    let mut file = File::open(path).ok()?;
    let end = file.seek(SeekFrom::End(0)).ok()?;
    let at = end.checked_sub((BLOCK_HEADER_LEN + TRAILER_LEN) as u64)?;
    file.seek(SeekFrom::Start(at)).ok()?;
    let mut b = [0u8; BLOCK_HEADER_LEN + TRAILER_LEN];
    file.read_exact(&mut b).ok()?;
    let (h, payload) = b.split_at(BLOCK_HEADER_LEN);
    (h[0..4] == TRAILER_MAGIC
        && u32_at(h, 8) as usize == TRAILER_LEN
        && u32_at(h, 12) == crc32fast::hash(payload))
    .then(|| trailer_stats(payload))
}

fn counts(bids: u32, asks: u32) -> u64 {
    u64::from(bids) | (u64::from(asks) << 32)
}

/// True when `head` (a file's first bytes) is a tape file's magic.
pub fn is_tape(head: &[u8]) -> bool {
    head.starts_with(&TAPE_MAGIC)
}

/// Reads a tape file sequentially, block by block.
pub struct TapeFileReader {
    name: String,
    path: std::path::PathBuf,
    /// Unbuffered: a block (~1 MiB) is read straight into `block`, its 16-byte header by a
    /// read of its own (a buffered reader would copy every byte once more).
    input: File,
    /// The file's length at open: a block header never claims more than is left.
    file_len: u64,
    /// Largest price (ticks) and quantity (lots) the market-data decoder can produce: those
    /// whose atoms fit i64. A tape is decoded data, so a value outside 0..=these is damage
    /// (or a forged file) and would overflow the arithmetic on prices and quantities.
    price_ticks_max: i64,
    qty_lots_max: i64,
    block: Vec<u8>,
    pos: usize,
    block_events_left: u32,
    block_index: u64,
    /// Byte offset of the current block's header in the file.
    block_offset: u64,
    next_offset: u64,
    last_ts_ns: u64,
}

impl TapeFileReader {
    /// Opens `path` and checks its header against `spec`.
    pub fn open(path: &Path, spec: &SymbolSpec) -> Result<TapeFileReader, ReplayError> {
        let name = path.display().to_string();
        let error = |problem: String, fix: &str| ReplayError {
            file: name.clone(),
            location: Location::File,
            problem,
            fix: fix.to_string(),
        };
        let file = File::open(path).map_err(|e| error(format!("cannot open: {e}"), ""))?;
        let file_len = file
            .metadata()
            .map_err(|e| error(format!("cannot read its length: {e}"), ""))?
            .len();
        let mut input = file;
        let mut h = [0u8; HEADER_LEN];
        input.read_exact(&mut h).map_err(|e| {
            error(
                format!("cannot read the tape header: {e}"),
                "convert the data again (--mode=convert --out FILE.mmt)",
            )
        })?;
        if !is_tape(&h) {
            return Err(error("not a tape file".to_string(), ""));
        }
        let version = u32_at(&h, 8);
        if version != TAPE_VERSION {
            return Err(error(
                format!("tape format version {version}; this build reads {TAPE_VERSION}"),
                "convert the data again with this build",
            ));
        }
        if u32_at(&h, 56) != crc32fast::hash(&h[0..56]) {
            return Err(error(
                "the tape header's checksum does not match (damaged file)".to_string(),
                "convert the data again",
            ));
        }
        let expected = header_bytes(spec);
        if h[16..56] != expected[16..56] {
            let symbol = String::from_utf8_lossy(&h[40..56]);
            return Err(error(
                format!(
                    "the tape was converted for {} with tick {} step {} min notional {} \
                     (atoms); the configuration has {} with {} {} {}",
                    symbol.trim_end_matches('\0'),
                    i64_at(&h, 16),
                    i64_at(&h, 24),
                    i64_at(&h, 32),
                    spec.symbol,
                    spec.tick_atoms,
                    spec.step_atoms,
                    spec.min_notional_atoms
                ),
                "set --symbol and market.* as when it was converted, or convert again",
            ));
        }
        Ok(TapeFileReader {
            name,
            path: path.to_path_buf(),
            input,
            file_len,
            price_ticks_max: i64::MAX / spec.tick_atoms.max(1),
            qty_lots_max: i64::MAX / spec.step_atoms.max(1),
            block: Vec::with_capacity(BLOCK_BYTES + EVENT_LEN),
            pos: 0,
            block_events_left: 0,
            block_index: 0,
            block_offset: HEADER_LEN as u64,
            next_offset: HEADER_LEN as u64,
            last_ts_ns: 0,
        })
    }

    /// The file's name as given.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn damaged(&self, problem: String) -> ReplayError {
        ReplayError {
            file: self.name.clone(),
            location: Location::Block {
                index: self.block_index,
                offset: self.block_offset,
            },
            problem,
            fix: "the file is damaged: convert the data again (--mode=convert --out FILE.mmt)"
                .to_string(),
        }
    }

    /// Loads the next block; false at the end of the file.
    fn next_block(&mut self) -> Result<bool, ReplayError> {
        self.block_offset = self.next_offset;
        self.block_index += 1;
        let mut h = [0u8; BLOCK_HEADER_LEN];
        let got = read_up_to(&mut self.input, &mut h)
            .map_err(|e| self.damaged(format!("cannot read: {e}")))?;
        if got == 0 {
            return Ok(false);
        }
        if got < BLOCK_HEADER_LEN {
            return Err(self.damaged(format!("the block header is cut after {got} bytes")));
        }
        if h[0..4] == TRAILER_MAGIC {
            // The end: the trailer, checked, and nothing after it.
            let mut payload = [0u8; TRAILER_LEN];
            let got = read_up_to(&mut self.input, &mut payload)
                .map_err(|e| self.damaged(format!("cannot read: {e}")))?;
            if got < TRAILER_LEN || u32_at(&h, 12) != crc32fast::hash(&payload) {
                return Err(self.damaged("the trailer is cut or damaged".to_string()));
            }
            let mut extra = [0u8; 1];
            let more = read_up_to(&mut self.input, &mut extra)
                .map_err(|e| self.damaged(format!("cannot read: {e}")))?;
            if more != 0 {
                return Err(self.damaged("bytes after the trailer".to_string()));
            }
            return Ok(false);
        }
        if h[0..4] != BLOCK_MAGIC {
            return Err(self.damaged("no block starts here".to_string()));
        }
        let events = u32_at(&h, 4);
        let len = u32_at(&h, 8) as usize;
        let crc = u32_at(&h, 12);
        // A damaged length field must not size the buffer (up to 4 GiB of zeros before the
        // checksum could refuse it): the payload is at most what the file still holds.
        let left = self
            .file_len
            .saturating_sub(self.block_offset + BLOCK_HEADER_LEN as u64);
        if len as u64 > left {
            return Err(self.damaged(format!(
                "the block header claims {len} bytes; the file holds {left} after it"
            )));
        }
        self.block.resize(len, 0);
        let got = read_up_to(&mut self.input, &mut self.block)
            .map_err(|e| self.damaged(format!("cannot read: {e}")))?;
        if got < len {
            return Err(self.damaged(format!(
                "the block is cut: {got} of its {len} bytes are there"
            )));
        }
        if crc32fast::hash(&self.block) != crc {
            return Err(self.damaged("the block's checksum does not match".to_string()));
        }
        self.next_offset = self.block_offset + (BLOCK_HEADER_LEN + len) as u64;
        self.pos = 0;
        self.block_events_left = events;
        Ok(true)
    }

    /// The next event (appending its levels to `levels`, `levels_start` pointing there) and
    /// whether its delay counts; None at the end of the file.
    pub fn next_event(
        &mut self,
        levels: &mut Vec<Level>,
    ) -> Result<Option<(TapeEvent, bool)>, ReplayError> {
        while self.block_events_left == 0 {
            if self.pos != self.block.len() {
                return Err(self.damaged("bytes after the block's last event".to_string()));
            }
            if !self.next_block()? {
                return Ok(None);
            }
        }
        let Some(r) = self.block.get(self.pos..self.pos + EVENT_LEN) else {
            return Err(self.damaged("the block ends inside an event".to_string()));
        };
        let f = |i: usize| u64_at(r, 16 + 8 * i);
        let ts = u64_at(r, 8);
        let flags = r[1];
        let (bids, asks) = match r[0] {
            KIND_DEPTH => split_counts(f(2)),
            KIND_SNAPSHOT => split_counts(f(1)),
            _ => (0, 0),
        };
        let event = match r[0] {
            KIND_BOOK_TICKER => Event::BookTicker(BookTicker {
                update_id: f(0),
                bid_price: Price(f(1) as i64),
                bid_qty: Qty(f(2) as i64),
                ask_price: Price(f(3) as i64),
                ask_qty: Qty(f(4) as i64),
                exch_ts_ms: f(5),
                local_ts_ns: ts,
            }),
            KIND_DEPTH => Event::Depth(DepthDiff {
                first_update_id: f(0),
                final_update_id: f(1),
                prev_final_update_id: f(4),
                bid_count: bids,
                ask_count: asks,
                exch_ts_ms: f(3),
                local_ts_ns: ts,
            }),
            KIND_TRADE => Event::Trade(Trade {
                kind: if flags & FLAG_AGG != 0 {
                    TradeKind::AggTrade
                } else {
                    TradeKind::Trade
                },
                trade_id: f(0),
                first_trade_id: f(1),
                last_trade_id: f(1).saturating_add(u64::from(u32_at(r, 4))),
                price: Price(f(2) as i64),
                qty: Qty(f(3) as i64),
                aggressor: if flags & FLAG_SELL != 0 {
                    Side::Sell
                } else {
                    Side::Buy
                },
                trade_ts_ms: f(4),
                exch_ts_ms: f(5),
                local_ts_ns: ts,
            }),
            KIND_SNAPSHOT => Event::Snapshot(Snapshot {
                last_update_id: f(0),
                bid_count: bids,
                ask_count: asks,
                local_ts_ns: ts,
            }),
            other => {
                return Err(self.damaged(format!(
                    "unknown event kind {other} at byte {} of the block",
                    self.pos
                )))
            }
        };
        if ts < self.last_ts_ns {
            return Err(self.damaged(format!(
                "time {ts} ns is earlier than the previous event's {} ns",
                self.last_ts_ns
            )));
        }
        self.last_ts_ns = ts;
        let fields: [(i64, i64); 2] = match &event {
            Event::BookTicker(t) => [(t.bid_price.0, t.bid_qty.0), (t.ask_price.0, t.ask_qty.0)],
            Event::Trade(t) => [(t.price.0, t.qty.0); 2],
            _ => [(0, 0); 2],
        };
        let n = bids as usize + asks as usize;
        let start = self.pos + EVENT_LEN;
        let Some(raw) = self.block.get(start..start + n * LEVEL_LEN) else {
            return Err(self.damaged("the block ends inside an event's levels".to_string()));
        };
        let in_range = |(price, qty): (i64, i64)| {
            (0..=self.price_ticks_max).contains(&price) && (0..=self.qty_lots_max).contains(&qty)
        };
        if !fields.into_iter().all(in_range)
            || !raw
                .chunks_exact(LEVEL_LEN)
                .all(|l| in_range((i64_at(l, 0), i64_at(l, 8))))
        {
            return Err(self.damaged(format!(
                "the event at byte {} of the block has a price or quantity outside 0..={} \
                 ticks, 0..={} lots (what the market-data decoder can give)",
                self.pos, self.price_ticks_max, self.qty_lots_max
            )));
        }
        let levels_start = u32::try_from(levels.len())
            .map_err(|_| self.damaged("more than 4·10⁹ book levels in one replay".to_string()))?;
        levels.extend(raw.chunks_exact(LEVEL_LEN).map(|l| Level {
            price: Price(i64_at(l, 0)),
            qty: Qty(i64_at(l, 8)),
        }));
        self.pos = start + n * LEVEL_LEN;
        self.block_events_left -= 1;
        Ok(Some((
            TapeEvent {
                local_ts_ns: ts,
                event,
                levels_start,
            },
            flags & FLAG_DELAY != 0,
        )))
    }
}

fn split_counts(v: u64) -> (u32, u32) {
    (v as u32, (v >> 32) as u32)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

fn i64_at(b: &[u8], at: usize) -> i64 {
    u64_at(b, at) as i64
}
