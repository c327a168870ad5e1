//! Data in: recorded market data from files → one time-ordered stream of frames
//! `(local_ts_ns, kind, bytes)` → a decoded, compact in-memory `Tape` that the backtest
//! replays.
//!
//! Owns: finding the files (`--data` a file, a folder or a glob), telling their format
//! apart, reading each one as a stream of frames, merging several streams by time, and
//! decoding the merged stream once into `Tape`. Formats:
//! - the engine's journal (`--mode=record`, `--mode=convert`; `journal.rs`): frames and
//!   REST snapshots as received, markers skipped;
//! - raw WebSocket captures, one message per line `<local_receive_ts> <json>` (gzip or
//!   plain), as in ../shared/data: combined-stream messages plus the REST depth snapshot.
//!   The timestamp unit is told by its magnitude (ns ≥ 10¹⁷, µs ≥ 10¹⁴, ms ≥ 10¹¹ since the
//!   Unix epoch): the 2024 captures are in ns, the `*.dat.gz` ones in µs;
//! - Binance public-data CSV dumps (data.binance.vision), plain or `.zip`: spot and futures
//!   `trades` (`id,price,qty,quote_qty,time,is_buyer_maker[,is_best_match]`), `aggTrades`
//!   (`agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,
//!   is_buyer_maker[,is_best_match]`) and futures `bookTicker` (`update_id,best_bid_price,
//!   best_bid_qty,best_ask_price,best_ask_qty,transaction_time,event_time`), with or without
//!   the header line; times in ms or µs (spot dumps from 2025 on), told by magnitude. The
//!   layout comes from the header or else from Binance's file name (`BTCUSDT-trades-…`).
//!   Each row becomes a synthetic frame in the stream's own JSON form, so one decoder (the
//!   hot path's) reads every format; a CSV has no receive time, so a row's receive time is
//!   its exchange time (the backtest adds the configured feed latency, see `FeedLatency`).
//!
//! Invariants: within each file, times never go backwards — a row or line that does is an
//! error naming the file and line, as is anything malformed (a bad timestamp, a frame the
//! decoder refuses, a CSV row with the wrong number of fields). Frames of a kind the engine
//! does not use (`markPrice`, kline, …) and of other symbols are skipped and counted, not
//! errors. Several files are merged by time; on equal times the file given first wins, so
//! the order is total and a replay is deterministic.
//!
//! Not hot path: allocates freely while loading. The backtest's hot loop only reads the
//! finished `Tape`.
//!
//! Layout: `reader` (one file → frames, the formats), `merge` (several readers by time,
//! the journal conversion), `inputs` (what `--data` names → files → readers), `tape` (the
//! decoded in-memory tape), `tapefile` (the decoded binary `.mmt` format), `check` (the
//! pure replay), `stream` (the streaming replay and the traits replays read
//! through).

mod check;
mod inputs;
mod merge;
mod reader;
mod stream;
mod tape;
pub mod tapefile;
#[cfg(test)]
mod tests;

use std::fmt;

pub use check::{check, ReplayCheck, OUT_OF_SYNC_SHARE_MAX};
pub use inputs::{open_inputs, open_sources, resolve_inputs, Inputs};
pub use merge::{convert_to_journal, convert_to_tape, Merger};
pub use reader::{CsvLayout, Frame, FrameReader, SourceFormat};
pub use stream::{
    EventCursor, EventSource, ReplayCursor, ReplayData, StreamCursor, TapeCursor, TapeInfo,
    TapeStream, CHUNKS_AHEAD, CHUNK_EVENTS,
};
pub use tape::{Tape, TapeEvent, TapeStats};

/// The data slice committed with the project (tools/data): the first 5.8 minutes of the
/// BTCUSDT spot capture of 2024-08-08 (REST snapshot included), byte-identical to
/// ../shared/data/binance-spot/btcusdt_20240808.gz. Built into the binary so the default
/// backtest runs from any working directory, even with the binary copied elsewhere.
pub const DEFAULT_SLICE: &[u8] = include_bytes!("../../tools/data/btcusdt_20240808.gz");
/// The name the built-in slice is reported under.
pub const DEFAULT_SLICE_NAME: &str = "tools/data/btcusdt_20240808.gz (built in)";

/// File name endings a folder given to `--data` is searched for.
pub const DATA_EXTENSIONS: [&str; 5] = [".mmj", ".mmt", ".gz", ".csv", ".zip"];

/// Where a replay problem is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// The file as a whole.
    File,
    /// A text line, 1-based.
    Line(u64),
    /// A journal record, 1-based.
    Record(u64),
    /// A block of a tape file (`.mmt`), 1-based, and its byte offset in the file.
    Block {
        /// Block number.
        index: u64,
        /// Byte offset of its header.
        offset: u64,
    },
}

/// A problem with the input data: the file, where in it, what is wrong and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayError {
    /// The file (as given, or the built-in slice's name).
    pub file: String,
    /// Where in the file.
    pub location: Location,
    /// What is wrong.
    pub problem: String,
    /// What to do about it (may be empty).
    pub fix: String,
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            Location::File => write!(f, "{}: {}", self.file, self.problem)?,
            Location::Line(n) => write!(f, "{}: line {n}: {}", self.file, self.problem)?,
            Location::Record(n) => write!(f, "{}: record {n}: {}", self.file, self.problem)?,
            Location::Block { index, offset } => write!(
                f,
                "{}: block {index} at byte offset {offset}: {}",
                self.file, self.problem
            )?,
        }
        if !self.fix.is_empty() {
            write!(f, " — fix: {}", self.fix)?;
        }
        Ok(())
    }
}

impl std::error::Error for ReplayError {}
