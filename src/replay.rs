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

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::{DeflateDecoder, GzDecoder};

use crate::feed::{BookLevels, DecodeError, Decoder, Event, Level};
use crate::journal::{JournalReader, RecordKind, MAGIC};
use crate::types::SymbolSpec;

/// The data slice committed with the project (tools/data): the first 5.8 minutes of the
/// BTCUSDT spot capture of 2024-08-08 (REST snapshot included), byte-identical to
/// ../shared/data/binance-spot/btcusdt_20240808.gz. Built into the binary so the default
/// backtest runs from any working directory, even with the binary copied elsewhere.
pub const DEFAULT_SLICE: &[u8] = include_bytes!("../tools/data/btcusdt_20240808.gz");
/// The name the built-in slice is reported under.
pub const DEFAULT_SLICE_NAME: &str = "tools/data/btcusdt_20240808.gz (built in)";

/// File name endings a folder given to `--data` is searched for.
pub const DATA_EXTENSIONS: [&str; 4] = [".mmj", ".gz", ".csv", ".zip"];

/// Longest text line accepted (a 5000-level snapshot is ~250 KiB).
const LINE_MAX: usize = 4 << 20;

/// Where a replay problem is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// The file as a whole.
    File,
    /// A text line, 1-based.
    Line(u64),
    /// A journal record, 1-based.
    Record(u64),
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
        }
        if !self.fix.is_empty() {
            write!(f, " — fix: {}", self.fix)?;
        }
        Ok(())
    }
}

impl std::error::Error for ReplayError {}

/// The Binance public-data CSV layouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CsvLayout {
    /// `trades`: id, price, qty, quote_qty, time, is_buyer_maker[, is_best_match].
    Trades,
    /// `aggTrades`: agg id, price, qty, first id, last id, time, is_buyer_maker[,
    /// is_best_match].
    AggTrades,
    /// futures `bookTicker`: update id, bid, bid qty, ask, ask qty, transaction time,
    /// event time.
    BookTicker,
}

impl CsvLayout {
    /// Field counts a row may have.
    fn field_counts(self) -> &'static [usize] {
        match self {
            CsvLayout::Trades => &[6, 7],
            CsvLayout::AggTrades => &[7, 8],
            CsvLayout::BookTicker => &[7],
        }
    }

    /// The stream name suffix of the synthetic frames.
    fn stream(self) -> &'static str {
        match self {
            CsvLayout::Trades => "trade",
            CsvLayout::AggTrades => "aggTrade",
            CsvLayout::BookTicker => "bookTicker",
        }
    }

    fn from_file_name(name: &str) -> Option<CsvLayout> {
        if name.contains("-aggTrades-") {
            Some(CsvLayout::AggTrades)
        } else if name.contains("-trades-") {
            Some(CsvLayout::Trades)
        } else if name.contains("-bookTicker-") {
            Some(CsvLayout::BookTicker)
        } else {
            None
        }
    }

    fn from_header(fields: &[&str]) -> Option<CsvLayout> {
        let has = |name: &str| fields.iter().any(|f| f.trim().eq_ignore_ascii_case(name));
        if has("best_bid_price") {
            Some(CsvLayout::BookTicker)
        } else if has("first_trade_id") || has("first_id") {
            Some(CsvLayout::AggTrades)
        } else if has("quote_qty") || has("quoteqty") {
            Some(CsvLayout::Trades)
        } else {
            None
        }
    }
}

/// What a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceFormat {
    /// The engine's journal.
    Journal,
    /// A raw WebSocket capture, `<ts> <json>` per line.
    Capture,
    /// A Binance public-data CSV dump (layout known once the header or name is read).
    Csv(Option<CsvLayout>),
}

/// One frame of the stream, borrowed from its reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Receive time, ns since the Unix epoch.
    pub local_ts_ns: u64,
    /// A market frame or a REST snapshot.
    pub kind: RecordKind,
    /// The JSON text.
    pub payload: &'a [u8],
}

/// Reads one file as a stream of frames. `advance` loads the next frame; `frame` shows it.
pub struct FrameReader {
    name: String,
    format: SourceFormat,
    input: Input,
    /// Line (text) or record (journal) number of the current frame.
    position: u64,
    raw: Vec<u8>,
    payload: Vec<u8>,
    ts_ns: u64,
    kind: RecordKind,
    last_ts_ns: u64,
    /// Symbol for synthetic CSV frames: lower case (stream name) and upper case (`s`).
    symbol_lower: String,
    symbol_upper: String,
    /// CSV: the first line was looked at (header or not).
    csv_started: bool,
}

enum Input {
    Journal(Box<JournalReader>),
    Text(Box<dyn BufRead + Send>),
}

impl FrameReader {
    /// Opens `path`, telling its format from its first bytes and its name. `symbol` names
    /// the synthetic frames of a CSV whose file name does not (Binance's names do).
    pub fn open(path: &Path, symbol: &str) -> Result<FrameReader, ReplayError> {
        let name = path.display().to_string();
        let file_error = |problem: String| ReplayError {
            file: name.clone(),
            location: Location::File,
            problem,
            fix: String::new(),
        };
        let mut head = [0u8; 8];
        let got = {
            let mut file = File::open(path).map_err(|e| file_error(format!("cannot open: {e}")))?;
            read_up_to(&mut file, &mut head).map_err(|e| file_error(format!("cannot read: {e}")))?
        };
        let head = &head[..got];
        if head == MAGIC.as_slice() {
            let reader = JournalReader::open(path).map_err(|e| file_error(e.to_string()))?;
            return Ok(FrameReader::new(
                name,
                SourceFormat::Journal,
                Input::Journal(Box::new(reader)),
                symbol,
            ));
        }
        let base = file_base_name(path);
        if head.starts_with(b"PK\x03\x04") {
            let bytes = std::fs::read(path).map_err(|e| file_error(format!("cannot read: {e}")))?;
            let (member, text) = unzip_first(&bytes).map_err(|problem| ReplayError {
                file: name.clone(),
                location: Location::File,
                problem,
                fix: "give the .zip as downloaded from Binance's public data (one CSV inside), \
                      or its unzipped .csv"
                    .to_string(),
            })?;
            let layout = CsvLayout::from_file_name(&member).or(CsvLayout::from_file_name(&base));
            let symbol = symbol_from_name(&member).unwrap_or_else(|| symbol.to_string());
            return Ok(FrameReader::new(
                name,
                SourceFormat::Csv(layout),
                Input::Text(Box::new(Cursor::new(text))),
                &symbol,
            ));
        }
        let file = File::open(path).map_err(|e| file_error(format!("cannot open: {e}")))?;
        let gz = head.starts_with(&[0x1f, 0x8b]);
        let stem = base.strip_suffix(".gz").unwrap_or(&base);
        let input: Box<dyn BufRead + Send> = if gz {
            Box::new(BufReader::with_capacity(1 << 20, GzDecoder::new(file)))
        } else {
            Box::new(BufReader::with_capacity(1 << 20, file))
        };
        let format = if stem.ends_with(".csv") {
            SourceFormat::Csv(CsvLayout::from_file_name(stem))
        } else {
            SourceFormat::Capture
        };
        let symbol = match format {
            SourceFormat::Csv(_) => symbol_from_name(stem).unwrap_or_else(|| symbol.to_string()),
            _ => symbol.to_string(),
        };
        Ok(FrameReader::new(name, format, Input::Text(input), &symbol))
    }

    /// A gzip capture held in memory (the built-in slice).
    pub fn from_gzip_capture(name: &str, bytes: &'static [u8]) -> FrameReader {
        FrameReader::new(
            name.to_string(),
            SourceFormat::Capture,
            Input::Text(Box::new(BufReader::with_capacity(
                1 << 20,
                GzDecoder::new(bytes),
            ))),
            "",
        )
    }

    fn new(name: String, format: SourceFormat, input: Input, symbol: &str) -> FrameReader {
        FrameReader {
            name,
            format,
            input,
            position: 0,
            raw: Vec::with_capacity(64 << 10),
            payload: Vec::with_capacity(1 << 10),
            ts_ns: 0,
            kind: RecordKind::Frame,
            last_ts_ns: 0,
            symbol_lower: symbol.to_ascii_lowercase(),
            symbol_upper: symbol.to_ascii_uppercase(),
            csv_started: false,
        }
    }

    /// The file's name as reported in errors and summaries.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the file holds.
    pub fn format(&self) -> SourceFormat {
        self.format
    }

    /// For a journal read to its end: the bytes of a torn tail skipped, and whether they
    /// were zeros; `None` for a clean end or another format.
    pub fn torn_tail(&self) -> Option<(u64, bool)> {
        match &self.input {
            Input::Journal(reader) if reader.torn_tail_bytes() > 0 => {
                Some((reader.torn_tail_bytes(), reader.zero_filled_tail()))
            }
            _ => None,
        }
    }

    /// True when the file's times are receive times taken by a recorder (journal,
    /// capture), false when they are exchange times (CSV dumps).
    pub fn has_receive_times(&self) -> bool {
        !matches!(self.format, SourceFormat::Csv(_))
    }

    /// The current frame (after `advance` returned true).
    pub fn frame(&self) -> Frame<'_> {
        Frame {
            local_ts_ns: self.ts_ns,
            kind: self.kind,
            payload: &self.payload,
        }
    }

    /// Where the current frame is, for error messages.
    pub fn location(&self) -> Location {
        match self.format {
            SourceFormat::Journal => Location::Record(self.position),
            _ => Location::Line(self.position),
        }
    }

    /// An error at the current frame.
    pub fn error_here(&self, problem: String, fix: &str) -> ReplayError {
        ReplayError {
            file: self.name.clone(),
            location: self.location(),
            problem,
            fix: fix.to_string(),
        }
    }

    /// Loads the next frame; false at the end of the file.
    pub fn advance(&mut self) -> Result<bool, ReplayError> {
        loop {
            let loaded = match &mut self.input {
                Input::Journal(reader) => {
                    self.position += 1;
                    let record = reader.next_record().map_err(|e| ReplayError {
                        file: self.name.clone(),
                        location: Location::Record(self.position),
                        problem: e.to_string(),
                        fix: String::new(),
                    })?;
                    match record {
                        None => return Ok(false),
                        Some(record) if record.kind == RecordKind::Marker => false,
                        Some(record) => {
                            self.payload.clear();
                            self.payload.extend_from_slice(record.payload);
                            self.ts_ns = record.local_ts_ns;
                            self.kind = record.kind;
                            true
                        }
                    }
                }
                Input::Text(input) => {
                    self.raw.clear();
                    let n = input
                        .by_ref()
                        .take(LINE_MAX as u64 + 1)
                        .read_until(b'\n', &mut self.raw)
                        .map_err(|e| ReplayError {
                            file: self.name.clone(),
                            location: Location::Line(self.position + 1),
                            problem: format!("cannot read: {e}"),
                            fix: "check the file is complete (a truncated .gz fails here)"
                                .to_string(),
                        })?;
                    if n == 0 {
                        return Ok(false);
                    }
                    self.position += 1;
                    if self.raw.len() > LINE_MAX {
                        return Err(self.error_here(
                            format!("line longer than {LINE_MAX} bytes"),
                            "is this a market-data file?",
                        ));
                    }
                    match self.format {
                        SourceFormat::Capture => self.parse_capture_line()?,
                        SourceFormat::Csv(_) => self.parse_csv_line()?,
                        SourceFormat::Journal => false,
                    }
                }
            };
            if !loaded {
                continue;
            }
            if self.ts_ns < self.last_ts_ns {
                return Err(self.error_here(
                    format!(
                        "time {} ns is earlier than the previous frame's {} ns (out of order)",
                        self.ts_ns, self.last_ts_ns
                    ),
                    "sort the file by time; separate files are merged by time when given \
                     together",
                ));
            }
            self.last_ts_ns = self.ts_ns;
            return Ok(true);
        }
    }

    /// `<ts> <json>`; blank lines are skipped (false).
    fn parse_capture_line(&mut self) -> Result<bool, ReplayError> {
        let line = trim_ascii(&self.raw);
        if line.is_empty() {
            return Ok(false);
        }
        let Some(space) = line.iter().position(|&b| b == b' ' || b == b'\t') else {
            return Err(self.error_here(
                "expected `<receive time> <json>`".to_string(),
                "each line of a capture is a Unix time (ns, µs or ms), a space and one JSON \
                 message",
            ));
        };
        let ts_text = &line[..space];
        let json = trim_ascii(&line[space + 1..]);
        let ts = parse_u64(ts_text).and_then(epoch_ns).ok_or_else(|| {
            self.error_here(
                format!(
                    "{:?} is not a Unix time in ns, µs or ms",
                    String::from_utf8_lossy(ts_text)
                ),
                "the first field must be the receive time, e.g. 1723161253937085768",
            )
        })?;
        if json.first() != Some(&b'{') {
            return Err(self.error_here(
                "the message after the time is not a JSON object".to_string(),
                "each line of a capture is a Unix time, a space and one JSON message",
            ));
        }
        self.kind = if is_snapshot(json) {
            RecordKind::Snapshot
        } else {
            RecordKind::Frame
        };
        self.ts_ns = ts;
        self.payload.clear();
        self.payload.extend_from_slice(json);
        Ok(true)
    }

    /// One CSV row → one synthetic frame; a header or blank line → false.
    fn parse_csv_line(&mut self) -> Result<bool, ReplayError> {
        let text = match std::str::from_utf8(trim_ascii(&self.raw)) {
            Ok(text) => text.to_string(),
            Err(_) => return Err(self.error_here("not UTF-8 text".to_string(), "")),
        };
        if text.is_empty() {
            return Ok(false);
        }
        let fields: Vec<&str> = text.split(',').map(str::trim).collect();
        if !self.csv_started {
            self.csv_started = true;
            let header = fields
                .first()
                .is_some_and(|f| !f.is_empty() && !f.bytes().all(|b| b.is_ascii_digit()));
            if header {
                if let Some(layout) = CsvLayout::from_header(&fields) {
                    self.format = SourceFormat::Csv(Some(layout));
                }
                if let SourceFormat::Csv(None) = self.format {
                    return Err(self.unknown_layout());
                }
                return Ok(false);
            }
        }
        let SourceFormat::Csv(Some(layout)) = self.format else {
            return Err(self.unknown_layout());
        };
        if !layout.field_counts().contains(&fields.len()) {
            return Err(self.error_here(
                format!(
                    "{} fields, a {:?} row has {}",
                    fields.len(),
                    layout,
                    layout
                        .field_counts()
                        .iter()
                        .map(|n| n.to_string())
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
                "use the file as Binance publishes it (data.binance.vision)",
            ));
        }
        // The time column: trade time, or the bookTicker's event time.
        let ts_ms = match layout {
            CsvLayout::Trades => self.csv_time(fields[4])?,
            CsvLayout::AggTrades => self.csv_time(fields[5])?,
            CsvLayout::BookTicker => self.csv_time(fields[6])?,
        };
        for (i, field) in fields.iter().enumerate() {
            let numeric = match layout {
                CsvLayout::Trades => i < 5,
                CsvLayout::AggTrades => i < 6,
                CsvLayout::BookTicker => true,
            };
            if numeric
                && (field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
            {
                return Err(self.error_here(
                    format!(
                        "field {} ({field:?}) is not a plain non-negative number",
                        i + 1
                    ),
                    "",
                ));
            }
        }
        let (exch_ms, exch_ns) = ts_ms;
        let stream = layout.stream();
        self.payload.clear();
        let out = &mut self.payload;
        let (lower, upper) = (&self.symbol_lower, &self.symbol_upper);
        let written = match layout {
            CsvLayout::Trades => {
                let maker = parse_bool(fields[5]);
                maker.map(|m| {
                    write!(
                        out,
                        r#"{{"stream":"{lower}@{stream}","data":{{"e":"trade","E":{exch_ms},"s":"{upper}","t":{},"p":"{}","q":"{}","T":{exch_ms},"m":{m},"M":true}}}}"#,
                        fields[0], fields[1], fields[2]
                    )
                })
            }
            CsvLayout::AggTrades => {
                let maker = parse_bool(fields[6]);
                maker.map(|m| {
                    write!(
                        out,
                        r#"{{"stream":"{lower}@{stream}","data":{{"e":"aggTrade","E":{exch_ms},"s":"{upper}","a":{},"p":"{}","q":"{}","f":{},"l":{},"T":{exch_ms},"m":{m},"M":true}}}}"#,
                        fields[0], fields[1], fields[2], fields[3], fields[4]
                    )
                })
            }
            CsvLayout::BookTicker => {
                let tx_ms = parse_u64(fields[5].as_bytes())
                    .and_then(epoch_ns)
                    .map(|ns| ns / 1_000_000);
                tx_ms.map(|tx_ms| {
                    write!(
                        out,
                        r#"{{"stream":"{lower}@{stream}","data":{{"e":"bookTicker","u":{},"s":"{upper}","b":"{}","B":"{}","a":"{}","A":"{}","T":{tx_ms},"E":{exch_ms}}}}}"#,
                        fields[0], fields[1], fields[2], fields[3], fields[4]
                    )
                })
            }
        };
        match written {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(self.error_here(format!("cannot build the frame: {e}"), "")),
            None => {
                return Err(self.error_here(
                    "a boolean field is not true/false, or a time is not a Unix time".to_string(),
                    "use the file as Binance publishes it (data.binance.vision)",
                ))
            }
        }
        self.kind = RecordKind::Frame;
        self.ts_ns = exch_ns;
        Ok(true)
    }

    /// A CSV time field (ms or µs since the epoch) → (ms, ns).
    fn csv_time(&self, field: &str) -> Result<(u64, u64), ReplayError> {
        let ns = parse_u64(field.as_bytes())
            .and_then(epoch_ns)
            .ok_or_else(|| {
                self.error_here(
                    format!("{field:?} is not a Unix time in ms or µs"),
                    "use the file as Binance publishes it (data.binance.vision)",
                )
            })?;
        Ok((ns / 1_000_000, ns))
    }

    fn unknown_layout(&self) -> ReplayError {
        self.error_here(
            "cannot tell which Binance CSV layout this is".to_string(),
            "keep Binance's file name (SYMBOL-trades-DATE.csv, SYMBOL-aggTrades-…, \
             SYMBOL-bookTicker-…) or its header line",
        )
    }
}

/// Merges several readers by time (ties: the reader given first).
pub struct Merger {
    readers: Vec<FrameReader>,
    live: Vec<bool>,
    started: bool,
    /// The reader whose frame was handed out last (advanced on the next call).
    last: Option<usize>,
}

impl Merger {
    /// Merges `readers`, in the order given.
    pub fn new(readers: Vec<FrameReader>) -> Merger {
        let live = vec![false; readers.len()];
        Merger {
            readers,
            live,
            started: false,
            last: None,
        }
    }

    /// The readers.
    pub fn readers(&self) -> &[FrameReader] {
        &self.readers
    }

    /// The next frame in time order and the index of its reader; `None` at the end.
    pub fn next_frame(&mut self) -> Result<Option<(usize, Frame<'_>)>, ReplayError> {
        if !self.started {
            self.started = true;
            for (reader, live) in self.readers.iter_mut().zip(self.live.iter_mut()) {
                *live = reader.advance()?;
            }
        } else if let Some(i) = self.last.take() {
            self.live[i] = self.readers[i].advance()?;
        }
        let mut best: Option<(usize, u64)> = None;
        for (i, reader) in self.readers.iter().enumerate() {
            if !self.live[i] {
                continue;
            }
            let ts = reader.ts_ns;
            if best.is_none_or(|(_, b)| ts < b) {
                best = Some((i, ts));
            }
        }
        let Some((i, _)) = best else {
            return Ok(None);
        };
        self.last = Some(i);
        Ok(Some((i, self.readers[i].frame())))
    }
}

/// Resolves `--data` arguments (files, folders, globs in the file-name part) into files,
/// each argument's matches sorted by name, arguments kept in order.
pub fn resolve_inputs(args: &[String]) -> Result<Vec<PathBuf>, ReplayError> {
    let mut out = Vec::new();
    for arg in args {
        let path = PathBuf::from(arg);
        let not_found = |problem: String| ReplayError {
            file: arg.clone(),
            location: Location::File,
            problem,
            fix: "give a file, a folder or a glob such as 'data/btcusdt_*.gz'".to_string(),
        };
        if path.is_dir() {
            let mut found: Vec<PathBuf> = read_dir_sorted(&path)
                .map_err(|e| not_found(format!("cannot list the folder: {e}")))?
                .into_iter()
                .filter(|p| {
                    let name = file_base_name(p);
                    !name.starts_with('.')
                        && DATA_EXTENSIONS.iter().any(|ext| name.ends_with(ext))
                        && p.is_file()
                })
                .collect();
            if found.is_empty() {
                return Err(not_found(format!(
                    "the folder holds no data files ({})",
                    DATA_EXTENSIONS.join(", ")
                )));
            }
            out.append(&mut found);
        } else if path.is_file() {
            out.push(path);
        } else if arg.contains(['*', '?']) {
            let pattern = file_base_name(&path);
            let parent = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            if parent.to_string_lossy().contains(['*', '?']) {
                return Err(not_found(
                    "wildcards are only supported in the file name, not in folders".to_string(),
                ));
            }
            let mut found: Vec<PathBuf> = read_dir_sorted(&parent)
                .map_err(|e| not_found(format!("cannot list {}: {e}", parent.display())))?
                .into_iter()
                .filter(|p| {
                    p.is_file() && glob_match(pattern.as_bytes(), file_base_name(p).as_bytes())
                })
                .collect();
            if found.is_empty() {
                return Err(not_found("no file matches".to_string()));
            }
            out.append(&mut found);
        } else {
            return Err(not_found("no such file or folder".to_string()));
        }
    }
    Ok(out)
}

/// Opens every input (the built-in slice when `args` is empty).
pub fn open_inputs(args: &[String], symbol: &str) -> Result<Vec<FrameReader>, ReplayError> {
    if args.is_empty() {
        return Ok(vec![FrameReader::from_gzip_capture(
            DEFAULT_SLICE_NAME,
            DEFAULT_SLICE,
        )]);
    }
    resolve_inputs(args)?
        .iter()
        .map(|path| FrameReader::open(path, symbol))
        .collect()
}

/// One decoded event and where its levels are in the tape.
#[derive(Clone, Copy, Debug)]
pub struct TapeEvent {
    /// Receive time, ns since the Unix epoch.
    pub local_ts_ns: u64,
    /// The event.
    pub event: Event,
    /// First of its levels in `Tape::levels` (bids, then asks; diffs and snapshots only).
    pub levels_start: u32,
}

/// What loading saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TapeStats {
    /// Frames read (market frames and snapshots).
    pub frames: u64,
    /// Events decoded.
    pub events: u64,
    /// Depth diffs.
    pub depth_diffs: u64,
    /// bookTicker events.
    pub book_tickers: u64,
    /// Trades and aggregate trades.
    pub trades: u64,
    /// REST snapshots.
    pub snapshots: u64,
    /// Frames skipped: a kind the engine does not use (markPrice, kline, …).
    pub skipped_unknown_kind: u64,
    /// Frames skipped: another symbol.
    pub skipped_other_symbol: u64,
    /// Quantities off the lot grid, rounded up by the decoder.
    pub qty_rounded_up: u64,
    /// Journals whose end was torn (a crash or power loss cut the last record): each
    /// one's name, the bytes skipped, and whether they were zeros. Every complete record
    /// before the tear is replayed.
    pub torn_tails: Vec<(String, u64, bool)>,
    /// Median of receive time − exchange event time over events that carry both, ns
    /// (None when no file has receive times or no event has an exchange time).
    pub feed_delay_ns_median: Option<i64>,
    /// Events the median is over.
    pub feed_delay_samples: u64,
    /// First and last receive time, ns.
    pub first_ts_ns: u64,
    /// Last receive time, ns.
    pub last_ts_ns: u64,
}

/// The whole input decoded once: compact `Copy` events in time order and one arena of
/// book levels. Replays read it without decoding or allocating.
pub struct Tape {
    events: Vec<TapeEvent>,
    levels: Vec<Level>,
    stats: TapeStats,
    sources: Vec<String>,
}

impl Tape {
    /// Reads and decodes every frame of `readers`, merged by time.
    pub fn load(readers: Vec<FrameReader>, spec: SymbolSpec) -> Result<Tape, ReplayError> {
        Tape::load_until(readers, spec, u64::MAX)
    }

    /// Like `load`, stopping after `span_ns` of data (from the first frame's time).
    pub fn load_until(
        readers: Vec<FrameReader>,
        spec: SymbolSpec,
        span_ns: u64,
    ) -> Result<Tape, ReplayError> {
        let sources: Vec<String> = readers.iter().map(|r| r.name().to_string()).collect();
        let receive_times: Vec<bool> = readers.iter().map(|r| r.has_receive_times()).collect();
        let mut merger = Merger::new(readers);
        let mut decoder = Decoder::new(spec);
        let mut events = Vec::new();
        let mut levels: Vec<Level> = Vec::new();
        let mut stats = TapeStats::default();
        let mut delays: Vec<i64> = Vec::new();
        let mut end_ns = u64::MAX;
        while let Some((index, frame)) = merger.next_frame()? {
            if stats.frames == 0 {
                stats.first_ts_ns = frame.local_ts_ns;
                end_ns = frame.local_ts_ns.saturating_add(span_ns);
            }
            if frame.local_ts_ns > end_ns {
                break;
            }
            stats.frames += 1;
            let ts = frame.local_ts_ns;
            if !stream_is_used(frame.payload) {
                stats.skipped_unknown_kind += 1;
                continue;
            }
            let event = match decoder.decode(frame.payload, ts) {
                Ok(event) => event,
                Err(DecodeError::UnknownKind) => {
                    stats.skipped_unknown_kind += 1;
                    continue;
                }
                Err(DecodeError::WrongSymbol) => {
                    stats.skipped_other_symbol += 1;
                    continue;
                }
                Err(e) => {
                    let fix = match e {
                        DecodeError::OffGrid => format!(
                            "a price is off the configured grid: check market.symbol, \
                             market.tick_size and market.step_size for this data (now {} \
                             tick {} step {})",
                            spec.symbol,
                            atoms_text(spec.tick_atoms),
                            atoms_text(spec.step_atoms)
                        ),
                        _ => "the frame is not a Binance market-data message this engine \
                              reads; remove the line or repair the file"
                            .to_string(),
                    };
                    return Err(merger.readers()[index]
                        .error_here(format!("the decoder refused the frame: {e}"), &fix));
                }
            };
            let start = levels.len();
            let book_levels = match &event {
                Event::Depth(d) => {
                    stats.depth_diffs += 1;
                    Some(decoder.diff_levels(d))
                }
                Event::Snapshot(s) => {
                    stats.snapshots += 1;
                    Some(decoder.snapshot_levels(s))
                }
                Event::BookTicker(_) => {
                    stats.book_tickers += 1;
                    None
                }
                Event::Trade(_) => {
                    stats.trades += 1;
                    None
                }
            };
            if let Some(book_levels) = book_levels {
                levels.extend_from_slice(book_levels.bids);
                levels.extend_from_slice(book_levels.asks);
            }
            let exch_ms = event.exch_ts_ms();
            if receive_times[index] && exch_ms > 0 {
                delays.push(ts as i64 - (exch_ms as i64).saturating_mul(1_000_000));
            }
            let levels_start = u32::try_from(start).map_err(|_| {
                merger.readers()[index].error_here(
                    "more than 4·10⁹ book levels in one replay".to_string(),
                    "replay less data at once (--duration)",
                )
            })?;
            events.push(TapeEvent {
                local_ts_ns: ts,
                event,
                levels_start,
            });
            stats.last_ts_ns = ts;
        }
        stats.events = events.len() as u64;
        stats.qty_rounded_up = decoder.stats().qty_rounded_up;
        stats.torn_tails = merger
            .readers()
            .iter()
            .filter_map(|r| {
                r.torn_tail()
                    .map(|(bytes, zeros)| (r.name().to_string(), bytes, zeros))
            })
            .collect();
        stats.feed_delay_samples = delays.len() as u64;
        if !delays.is_empty() {
            let mid = delays.len() / 2;
            let (_, median, _) = delays.select_nth_unstable(mid);
            stats.feed_delay_ns_median = Some(*median);
        }
        Ok(Tape {
            events,
            levels,
            stats,
            sources,
        })
    }

    /// The events, in time order.
    pub fn events(&self) -> &[TapeEvent] {
        &self.events
    }

    /// The levels of a diff or snapshot event (empty for others).
    #[inline]
    pub fn levels(&self, event: &TapeEvent) -> BookLevels<'_> {
        let (bids, asks) = match &event.event {
            Event::Depth(d) => (d.bid_count as usize, d.ask_count as usize),
            Event::Snapshot(s) => (s.bid_count as usize, s.ask_count as usize),
            _ => (0, 0),
        };
        let start = event.levels_start as usize;
        let all = self.levels.get(start..start + bids + asks).unwrap_or(&[]);
        let (bids, asks) = all.split_at(bids.min(all.len()));
        BookLevels { bids, asks }
    }

    /// What loading saw.
    pub fn stats(&self) -> &TapeStats {
        &self.stats
    }

    /// The files, in the order given.
    pub fn sources(&self) -> &[String] {
        &self.sources
    }

    /// The events received in `start_ns ≤ t < end_ns` as a tape of their own, ready to
    /// replay from its first event (calibration's walk-forward windows).
    ///
    /// A window that starts after the data's REST snapshot has no snapshot of its own, and
    /// the engine only quotes from a synced book. So the order book is rebuilt from this
    /// tape's snapshot and diffs up to `start_ns` with the engine's own `SyncedBook`
    /// (`book_levels` per side, as `market_data.book_levels`) and, when it is in sync
    /// there, the window opens with a synthetic REST snapshot of that book: `lastUpdateId`
    /// = the update id the book is at, received at `start_ns`, every level the book holds.
    /// The engine then starts exactly as a live start with a fresh snapshot would; the
    /// touch, OFI and σ start cold, as they do live. When the book is not in sync at
    /// `start_ns` (before the first snapshot, or after a gap) the window has no synthetic
    /// snapshot and the engine waits for the next one in the data:
    /// `starts_with_snapshot` tells which.
    ///
    /// Counts in `stats` are the window's; the feed-delay median and its sample count are
    /// the whole tape's (a property of the recording, used for the backtest's feed
    /// latency, so every window of one recording gets the same). Not hot path: allocates.
    pub fn window(
        &self,
        start_ns: u64,
        end_ns: u64,
        book_levels: usize,
    ) -> Result<Tape, ReplayError> {
        let too_many = || ReplayError {
            file: self.sources.join(", "),
            location: Location::File,
            problem: "more than 4·10⁹ book levels in one replay".to_string(),
            fix: "replay less data at once (--duration)".to_string(),
        };
        let first_in = self.events.partition_point(|e| e.local_ts_ns < start_ns);
        let end = self.events.partition_point(|e| e.local_ts_ns < end_ns);
        let inside = self.events.get(first_in..end.max(first_in)).unwrap_or(&[]);
        let mut events = Vec::with_capacity(inside.len() + 1);
        let mut levels: Vec<Level> = Vec::new();
        // The window's own feed latency (never the whole tape's: a backtest of one part must
        // not see another part's data, e.g. the held-out part's).
        let mut delays: Vec<i64> = if self.stats.feed_delay_samples > 0 {
            inside
                .iter()
                .filter(|e| e.event.exch_ts_ms() > 0)
                .map(|e| {
                    e.local_ts_ns as i64 - (e.event.exch_ts_ms() as i64).saturating_mul(1_000_000)
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut stats = TapeStats {
            feed_delay_samples: delays.len() as u64,
            ..TapeStats::default()
        };
        if !delays.is_empty() {
            let mid = delays.len() / 2;
            let (_, median, _) = delays.select_nth_unstable(mid);
            stats.feed_delay_ns_median = Some(*median);
        }

        // The book as the engine would hold it just before `start_ns`.
        let mut book = crate::book::SyncedBook::new(book_levels);
        for event in &self.events[..first_in] {
            match &event.event {
                Event::Depth(d) => {
                    let _ = book.on_diff(d, self.levels(event));
                }
                Event::Snapshot(s) => {
                    let _ = book.on_snapshot(s, self.levels(event));
                }
                Event::BookTicker(_) | Event::Trade(_) => {}
            }
        }
        let update_id = match book.state() {
            crate::book::SyncState::Live { final_update_id } => Some(final_update_id),
            crate::book::SyncState::AwaitingFirst { last_update_id } => Some(last_update_id),
            crate::book::SyncState::Buffering => None,
        };
        if let Some(last_update_id) = update_id {
            let held = book.book_any_state();
            levels.extend(held.levels(crate::types::Side::Buy));
            let bid_count = levels.len();
            levels.extend(held.levels(crate::types::Side::Sell));
            let ask_count = levels.len() - bid_count;
            let snapshot = crate::feed::Snapshot {
                last_update_id,
                bid_count: u32::try_from(bid_count).map_err(|_| too_many())?,
                ask_count: u32::try_from(ask_count).map_err(|_| too_many())?,
                local_ts_ns: start_ns,
            };
            events.push(TapeEvent {
                local_ts_ns: start_ns,
                event: Event::Snapshot(snapshot),
                levels_start: 0,
            });
            stats.snapshots += 1;
        }

        for event in inside {
            let copied = self.levels(event);
            let levels_start = u32::try_from(levels.len()).map_err(|_| too_many())?;
            levels.extend_from_slice(copied.bids);
            levels.extend_from_slice(copied.asks);
            match &event.event {
                Event::Depth(_) => stats.depth_diffs += 1,
                Event::Snapshot(_) => stats.snapshots += 1,
                Event::BookTicker(_) => stats.book_tickers += 1,
                Event::Trade(_) => stats.trades += 1,
            }
            events.push(TapeEvent {
                levels_start,
                ..*event
            });
        }
        stats.frames = events.len() as u64;
        stats.events = events.len() as u64;
        stats.first_ts_ns = events.first().map_or(start_ns, |e| e.local_ts_ns);
        stats.last_ts_ns = events.last().map_or(start_ns, |e| e.local_ts_ns);
        Ok(Tape {
            events,
            levels,
            stats,
            sources: self.sources.clone(),
        })
    }

    /// True when the first event is a REST snapshot (a recording's own, or the synthetic
    /// one `window` opens with): a replay of this tape starts with a synced book.
    pub fn starts_with_snapshot(&self) -> bool {
        matches!(
            self.events.first().map(|e| &e.event),
            Some(Event::Snapshot(_))
        )
    }
}

/// Writes every frame of `readers`, merged by time, into a new journal at `out` (never
/// overwritten). Returns (frames written, bytes).
pub fn convert_to_journal(
    readers: Vec<FrameReader>,
    out: &Path,
    symbol: &str,
    created_wall_ns: u64,
) -> Result<(u64, u64), ReplayError> {
    let out_error = |e: std::io::Error| ReplayError {
        file: out.display().to_string(),
        location: Location::File,
        problem: e.to_string(),
        fix: "choose a new output path (--out); journals are never overwritten".to_string(),
    };
    let mut writer =
        crate::journal::JournalWriter::create(out, symbol, created_wall_ns).map_err(out_error)?;
    let mut merger = Merger::new(readers);
    while let Some((_, frame)) = merger.next_frame()? {
        writer
            .append(frame.kind, frame.local_ts_ns, frame.payload)
            .map_err(out_error)?;
    }
    writer.finish().map_err(out_error)
}

// -- helpers ------------------------------------------------------------------------------

/// A Unix time in ns, µs or ms (told by magnitude) → ns; None if it is none of them.
fn epoch_ns(value: u64) -> Option<u64> {
    const NS_MIN: u64 = 100_000_000_000_000_000; // 1973 in ns
    const US_MIN: u64 = 100_000_000_000_000; // 1973 in µs
    const MS_MIN: u64 = 100_000_000_000; // 1973 in ms
    if value >= NS_MIN {
        Some(value)
    } else if value >= US_MIN {
        value.checked_mul(1_000)
    } else if value >= MS_MIN {
        value.checked_mul(1_000_000)
    } else {
        None
    }
}

fn parse_u64(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 20 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

fn parse_bool(text: &str) -> Option<bool> {
    if text.eq_ignore_ascii_case("true") {
        Some(true)
    } else if text.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &bytes[start..end.max(start)]
}

/// False for a combined-stream message of a stream the engine does not read
/// (`markPrice`, kline, ticker, …), told by its `stream` name; true otherwise (the
/// decoder then judges the frame). Such frames are skipped before decoding because their
/// fields (`"p"` of a mark price, say) need not fit the symbol's grid.
fn stream_is_used(json: &[u8]) -> bool {
    const PREFIX: &[u8] = b"{\"stream\":\"";
    let Some(rest) = json.strip_prefix(PREFIX) else {
        return true;
    };
    let name = &rest[..rest.iter().position(|&b| b == b'"').unwrap_or(rest.len())];
    let Some(at) = name.iter().position(|&b| b == b'@') else {
        return true;
    };
    let kind = &name[at + 1..];
    kind.starts_with(b"depth")
        || kind.starts_with(b"bookTicker")
        || kind == b"trade"
        || kind == b"aggTrade"
}

/// A REST depth snapshot starts with `lastUpdateId` (stream messages never do).
fn is_snapshot(json: &[u8]) -> bool {
    let head = &json[..json.len().min(32)];
    head.windows(14).any(|w| w == b"\"lastUpdateId\"")
}

fn file_base_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `BTCUSDT-trades-2024-08-08.csv` → `BTCUSDT`.
fn symbol_from_name(name: &str) -> Option<String> {
    let base = name.rsplit('/').next().unwrap_or(name);
    CsvLayout::from_file_name(base)?;
    let symbol = base.split('-').next()?;
    (!symbol.is_empty() && symbol.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| symbol.to_string())
}

fn atoms_text(atoms: i64) -> String {
    let mut buf = [0u8; crate::types::DECIMAL_TEXT_MAX];
    let len = crate::types::write_atoms(atoms, crate::types::DECIMALS, &mut buf);
    let text = String::from_utf8_lossy(&buf[..len]).into_owned();
    let text = text.trim_end_matches('0');
    text.trim_end_matches('.').to_string()
}

fn read_dir_sorted(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        paths.push(entry?.path());
    }
    paths.sort();
    Ok(paths)
}

/// `*` any run of bytes, `?` one byte.
fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob_match(&pattern[1..], name) || (!name.is_empty() && glob_match(pattern, &name[1..]))
        }
        (Some(b'?'), Some(_)) => glob_match(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => glob_match(&pattern[1..], &name[1..]),
        _ => false,
    }
}

fn read_up_to<R: Read>(input: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The first member of a zip archive (stored or deflated; no zip64, no encryption):
/// (its name, its bytes). Reads the central directory, so data descriptors are fine.
fn unzip_first(zip: &[u8]) -> Result<(String, Vec<u8>), String> {
    const EOCD_SIG: u32 = 0x0605_4b50;
    const CENTRAL_SIG: u32 = 0x0201_4b50;
    const LOCAL_SIG: u32 = 0x0403_4b50;
    let u16_at = |at: usize| -> Option<u16> {
        zip.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| -> Option<u32> {
        zip.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let corrupt = || "not a readable zip archive (truncated or damaged)".to_string();
    // End of central directory: the last signature within the trailing comment range.
    let lowest = zip.len().saturating_sub(22 + 65_535);
    let eocd = (lowest..zip.len().saturating_sub(21))
        .rev()
        .find(|&at| u32_at(at) == Some(EOCD_SIG))
        .ok_or_else(corrupt)?;
    let entries = u16_at(eocd + 10).ok_or_else(corrupt)?;
    if entries == 0 {
        return Err("the zip archive is empty".to_string());
    }
    let central = u32_at(eocd + 16).ok_or_else(corrupt)? as usize;
    if u32_at(central) != Some(CENTRAL_SIG) {
        return Err(corrupt());
    }
    let flags = u16_at(central + 8).ok_or_else(corrupt)?;
    let method = u16_at(central + 10).ok_or_else(corrupt)?;
    let crc = u32_at(central + 16).ok_or_else(corrupt)?;
    let compressed = u32_at(central + 20).ok_or_else(corrupt)?;
    let size = u32_at(central + 24).ok_or_else(corrupt)?;
    let name_len = u16_at(central + 28).ok_or_else(corrupt)? as usize;
    let local = u32_at(central + 42).ok_or_else(corrupt)? as usize;
    let name = zip
        .get(central + 46..central + 46 + name_len)
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .ok_or_else(corrupt)?;
    if flags & 1 != 0 {
        return Err(format!("{name} in the zip is encrypted"));
    }
    if compressed == u32::MAX || size == u32::MAX || local == u32::MAX as usize {
        return Err("zip64 archives are not supported: unzip it and give the .csv".to_string());
    }
    if u32_at(local) != Some(LOCAL_SIG) {
        return Err(corrupt());
    }
    let local_name = u16_at(local + 26).ok_or_else(corrupt)? as usize;
    let local_extra = u16_at(local + 28).ok_or_else(corrupt)? as usize;
    let data_start = local + 30 + local_name + local_extra;
    let data = zip
        .get(data_start..data_start + compressed as usize)
        .ok_or_else(corrupt)?;
    let mut out = Vec::with_capacity(size as usize);
    match method {
        0 => out.extend_from_slice(data),
        8 => {
            DeflateDecoder::new(data)
                .read_to_end(&mut out)
                .map_err(|e| format!("{name}: cannot inflate: {e}"))?;
        }
        other => {
            return Err(format!(
                "{name}: compression method {other} is not supported"
            ))
        }
    }
    if out.len() != size as usize || crc32fast::hash(&out) != crc {
        return Err(format!(
            "{name}: size or checksum mismatch (damaged archive)"
        ));
    }
    Ok((name, out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Symbol;

    fn spec() -> SymbolSpec {
        SymbolSpec::from_decimals(Symbol::new("BTCUSDT").unwrap(), "0.01", "0.00001", "5").unwrap()
    }

    struct Dir(PathBuf);

    impl Dir {
        fn new(tag: &str) -> Dir {
            let dir = std::env::temp_dir().join(format!("mm-replay-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Dir(dir)
        }

        fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, bytes).unwrap();
            path
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn frames(reader: FrameReader) -> Result<Vec<(u64, RecordKind, String)>, ReplayError> {
        let mut merger = Merger::new(vec![reader]);
        let mut out = Vec::new();
        while let Some((_, f)) = merger.next_frame()? {
            out.push((
                f.local_ts_ns,
                f.kind,
                String::from_utf8(f.payload.to_vec()).unwrap(),
            ));
        }
        Ok(out)
    }

    const BT: &str = r#"{"stream":"btcusdt@bookTicker","data":{"u":5,"s":"BTCUSDT","b":"100.00","B":"1.0","a":"100.01","A":"2.0"}}"#;

    #[test]
    fn capture_units_are_told_by_magnitude() {
        let dir = Dir::new("units");
        let text =
            format!("1723161253937085768 {BT}\n\n1723161253938000 {BT}\n1723161253939 {BT}\n");
        let path = dir.write("cap.txt", text.as_bytes());
        let got = frames(FrameReader::open(&path, "BTCUSDT").unwrap()).unwrap();
        let ts: Vec<u64> = got.iter().map(|f| f.0).collect();
        assert_eq!(
            ts,
            vec![
                1_723_161_253_937_085_768,
                1_723_161_253_938_000_000,
                1_723_161_253_939_000_000
            ]
        );
        assert!(got.iter().all(|f| f.1 == RecordKind::Frame && f.2 == BT));
    }

    #[test]
    fn malformed_and_out_of_order_lines_name_file_and_line() {
        let dir = Dir::new("bad");
        let cases: &[(&str, &str)] = &[
            ("1723161253937085768 {}\nnot-a-time {}\n", "line 2"),
            ("1723161253937085768 {}\n1723161253937085768\n", "line 2"),
            ("1723161253937085768 {}\n12 {}\n", "line 2"),
            (
                "1723161253937085768 {}\n1723161253937085768 [1]\n",
                "line 2",
            ),
            (
                "1723161253937085768 {}\n1723161253937085767 {}\n",
                "line 2: time 1723161253937085767 ns is earlier",
            ),
        ];
        for (text, expected) in cases {
            let path = dir.write("bad.txt", text.as_bytes());
            let e = frames(FrameReader::open(&path, "BTCUSDT").unwrap()).unwrap_err();
            let shown = e.to_string();
            assert!(shown.contains("bad.txt"), "{shown}");
            assert!(shown.contains(expected), "{shown}");
        }
        // A frame the decoder refuses is an error at its line too.
        let path = dir.write(
            "refused.txt",
            format!("1723161253937085768 {BT}\n1723161253937085769 {{\"stream\":1}}\n").as_bytes(),
        );
        let e = Tape::load(vec![FrameReader::open(&path, "BTCUSDT").unwrap()], spec())
            .err()
            .unwrap();
        assert_eq!(e.location, Location::Line(2), "{e}");
        assert!(e.problem.contains("decoder refused"), "{e}");
        // Off-grid prices say which settings to check.
        let off = BT.replace("100.00", "100.001");
        let path = dir.write(
            "offgrid.txt",
            format!("1723161253937085768 {off}\n").as_bytes(),
        );
        let e = Tape::load(vec![FrameReader::open(&path, "BTCUSDT").unwrap()], spec())
            .err()
            .unwrap();
        assert!(e.fix.contains("market.tick_size"), "{e}");
    }

    #[test]
    fn csv_layouts_become_frames_the_decoder_reads() {
        let dir = Dir::new("csv");
        let trades = dir.write(
            "BTCUSDT-trades-2024-08-08.csv",
            b"3071245454,61837.63000000,0.00056000,34.629,1723161600000,True,True\n\
              3071245455,61837.64000000,0.00100000,61.837,1723161600001,False,True\n",
        );
        let agg = dir.write(
            "agg.csv",
            b"agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker\n\
              26129,61837.63,0.01,27781,27790,1723161600000500,true\n",
        );
        let book = dir.write(
            "BTCUSDT-bookTicker-2024-08-08.csv",
            b"update_id,best_bid_price,best_bid_qty,best_ask_price,best_ask_qty,transaction_time,event_time\n\
              9001,61837.63,1.5,61837.64,2.0,1723161600000,1723161600002\n",
        );
        let readers = vec![
            FrameReader::open(&trades, "BTCUSDT").unwrap(),
            FrameReader::open(&agg, "BTCUSDT").unwrap(),
            FrameReader::open(&book, "BTCUSDT").unwrap(),
        ];
        assert!(!readers[0].has_receive_times());
        let tape = Tape::load(readers, spec()).unwrap();
        let stats = tape.stats();
        assert_eq!((stats.trades, stats.book_tickers), (3, 1));
        assert_eq!(stats.feed_delay_samples, 0, "CSV times are exchange times");
        let kinds: Vec<(u64, &str)> = tape
            .events()
            .iter()
            .map(|e| {
                let kind = match e.event {
                    Event::Trade(t) if t.kind == crate::feed::TradeKind::AggTrade => "agg",
                    Event::Trade(_) => "trade",
                    Event::BookTicker(_) => "book",
                    _ => "other",
                };
                (e.local_ts_ns, kind)
            })
            .collect();
        // Merged by time; equal times keep the order the files were given in.
        assert_eq!(
            kinds,
            vec![
                (1_723_161_600_000_000_000, "trade"),
                (1_723_161_600_000_500_000, "agg"),
                (1_723_161_600_001_000_000, "trade"),
                (1_723_161_600_002_000_000, "book"),
            ]
        );
        match tape.events()[0].event {
            Event::Trade(t) => {
                assert_eq!(t.price.0, 6_183_763);
                assert_eq!(t.qty.0, 56);
                assert_eq!(t.aggressor, crate::types::Side::Sell, "buyer was maker");
                assert_eq!(t.trade_id, 3_071_245_454);
            }
            other => panic!("{other:?}"),
        }
        match tape.events()[3].event {
            Event::BookTicker(b) => {
                assert_eq!((b.update_id, b.exch_ts_ms), (9001, 1_723_161_600_002));
                assert_eq!((b.bid_qty.0, b.ask_qty.0), (150_000, 200_000));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn csv_problems_name_file_and_line() {
        let dir = Dir::new("csvbad");
        let cases: &[(&str, &[u8], &str)] = &[
            (
                "BTCUSDT-trades-x.csv",
                b"1,2.0,3.0,4.0,1723161600000,maybe,True\n",
                "line 1",
            ),
            ("BTCUSDT-trades-x.csv", b"1,2.0,3.0\n", "line 1: 3 fields"),
            (
                "BTCUSDT-trades-x.csv",
                b"1,2.0,3.0,4.0,1723161600001,true,true\n1,2.0,3.0,4.0,1723161600000,true,true\n",
                "line 2: time",
            ),
            (
                "BTCUSDT-trades-x.csv",
                b"1,-2.0,3.0,4.0,1723161600000,true,true\n",
                "line 1: field 2",
            ),
            (
                "mystery.csv",
                b"1,2,3\n",
                "cannot tell which Binance CSV layout",
            ),
        ];
        for (name, text, expected) in cases {
            let path = dir.write(name, text);
            let e = frames(FrameReader::open(&path, "BTCUSDT").unwrap()).unwrap_err();
            let shown = e.to_string();
            assert!(shown.contains(name), "{shown}");
            assert!(shown.contains(expected), "{shown}");
        }
    }

    #[test]
    fn zip_members_are_read_stored_and_deflated() {
        let csv = b"update_id,best_bid_price,best_bid_qty,best_ask_price,best_ask_qty,transaction_time,event_time\n\
                    1,100.00,1,100.01,2,1723161600000,1723161600001\n";
        let dir = Dir::new("zip");
        for method in [0u16, 8] {
            let zip = build_zip("BTCUSDT-bookTicker-2024-08-08.csv", csv, method);
            let path = dir.write("BTCUSDT-bookTicker-2024-08-08.zip", &zip);
            let got = frames(FrameReader::open(&path, "ETHUSDT").unwrap()).unwrap();
            assert_eq!(got.len(), 1);
            assert!(
                got[0].2.contains("\"s\":\"BTCUSDT\""),
                "symbol from the member name: {got:?}"
            );
        }
        let mut zip = build_zip("a.csv", csv, 8);
        let last = zip.len() - 30;
        zip[last] ^= 0xff; // damage the central directory
        let path = dir.write("damaged.zip", &zip);
        assert!(FrameReader::open(&path, "BTCUSDT").is_err());
    }

    /// A one-member zip archive (test helper; the reader above is what is tested).
    pub(crate) fn build_zip(name: &str, data: &[u8], method: u16) -> Vec<u8> {
        let body = if method == 8 {
            let mut enc =
                flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(data).unwrap();
            enc.finish().unwrap()
        } else {
            data.to_vec()
        };
        let crc = crc32fast::hash(data);
        let mut out = Vec::new();
        let header = |out: &mut Vec<u8>, sig: u32, central: bool| {
            out.extend_from_slice(&sig.to_le_bytes());
            if central {
                out.extend_from_slice(&20u16.to_le_bytes());
            }
            out.extend_from_slice(&20u16.to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(&method.to_le_bytes());
            out.extend_from_slice(&[0; 4]);
            out.extend_from_slice(&crc.to_le_bytes());
            out.extend_from_slice(&(body.len() as u32).to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
        };
        header(&mut out, 0x0403_4b50, false);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&body);
        let central = out.len();
        header(&mut out, 0x0201_4b50, true);
        out.extend_from_slice(&[0; 10]); // comment len, disk, attributes
        out.extend_from_slice(&0u32.to_le_bytes()); // local header offset
        out.extend_from_slice(name.as_bytes());
        let central_len = out.len() - central;
        out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&(central_len as u32).to_le_bytes());
        out.extend_from_slice(&(central as u32).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    #[test]
    fn journals_replay_and_convert_round_trips() {
        let dir = Dir::new("journal");
        let capture = dir.write(
            "cap.txt",
            format!(
                "1723161253937085768 {{\"lastUpdateId\":4,\"bids\":[[\"100.00\",\"1\"]],\"asks\":[[\"100.01\",\"1\"]]}}\n\
                 1723161253937085769 {BT}\n"
            )
            .as_bytes(),
        );
        let out = dir.0.join("out.mmj");
        let (records, _) = convert_to_journal(
            vec![FrameReader::open(&capture, "BTCUSDT").unwrap()],
            &out,
            "BTCUSDT",
            1,
        )
        .unwrap();
        assert_eq!(records, 2);
        let reader = FrameReader::open(&out, "BTCUSDT").unwrap();
        assert_eq!(reader.format(), SourceFormat::Journal);
        let got = frames(reader).unwrap();
        let original = frames(FrameReader::open(&capture, "BTCUSDT").unwrap()).unwrap();
        assert_eq!(got, original);
        assert_eq!(got[0].1, RecordKind::Snapshot);
        // Never overwritten.
        assert!(convert_to_journal(vec![], &out, "BTCUSDT", 1).is_err());
    }

    #[test]
    fn streams_the_engine_does_not_read_are_skipped() {
        assert!(stream_is_used(BT.as_bytes()));
        assert!(stream_is_used(
            br#"{"stream":"btcusdt@depth@100ms","data":{}}"#
        ));
        assert!(stream_is_used(br#"{"stream":"btcusdt@trade","data":{}}"#));
        assert!(stream_is_used(
            br#"{"stream":"btcusdt@aggTrade","data":{}}"#
        ));
        assert!(stream_is_used(br#"{"lastUpdateId":1}"#));
        assert!(!stream_is_used(
            br#"{"stream":"btcusdt@markPrice@1s","data":{"p":"1.234567"}}"#
        ));
        assert!(!stream_is_used(
            br#"{"stream":"btcusdt@kline_1m","data":{}}"#
        ));
        let dir = Dir::new("skip");
        let mark = r#"{"stream":"btcusdt@markPrice@1s","data":{"e":"markPriceUpdate","E":1,"s":"BTCUSDT","p":"28147.27373413"}}"#;
        let path = dir.write(
            "mixed.txt",
            format!("1723161253937085768 {mark}\n1723161253937085769 {BT}\n").as_bytes(),
        );
        let tape = Tape::load(vec![FrameReader::open(&path, "BTCUSDT").unwrap()], spec()).unwrap();
        assert_eq!(tape.stats().skipped_unknown_kind, 1);
        assert_eq!(tape.stats().book_tickers, 1);
    }

    #[test]
    fn inputs_resolve_from_files_folders_and_globs() {
        let dir = Dir::new("resolve");
        dir.write("b_2.gz", b"");
        dir.write("b_1.gz", b"");
        dir.write("LICENSE.txt", b"");
        dir.write("c.csv", b"");
        let folder = dir.0.display().to_string();
        let names = |args: &[String]| -> Vec<String> {
            resolve_inputs(args)
                .unwrap()
                .iter()
                .map(|p| file_base_name(p))
                .collect()
        };
        assert_eq!(
            names(std::slice::from_ref(&folder)),
            vec!["b_1.gz", "b_2.gz", "c.csv"]
        );
        assert_eq!(
            names(&[format!("{folder}/b_*.gz")]),
            vec!["b_1.gz", "b_2.gz"]
        );
        assert_eq!(names(&[format!("{folder}/?_2.gz")]), vec!["b_2.gz"]);
        assert!(resolve_inputs(&[format!("{folder}/z*")]).is_err());
        assert!(resolve_inputs(&[format!("{folder}/nope.gz")]).is_err());
        assert!(glob_match(b"*", b""));
        assert!(!glob_match(b"a*c", b"ab"));
    }

    #[test]
    fn the_built_in_slice_decodes_with_its_snapshot() {
        let tape = Tape::load(open_inputs(&[], "BTCUSDT").unwrap(), spec()).unwrap();
        let stats = tape.stats();
        assert_eq!(stats.snapshots, 1);
        assert!(stats.depth_diffs > 1000 && stats.book_tickers > 10_000 && stats.trades > 1000);
        assert_eq!(stats.skipped_unknown_kind + stats.skipped_other_symbol, 0);
        // The 2024 recorder's clock ran ~1.27 s behind the exchange's.
        let delay = stats.feed_delay_ns_median.unwrap();
        assert!((-1_400_000_000..-1_100_000_000).contains(&delay), "{delay}");
        let snapshot = tape
            .events()
            .iter()
            .find(|e| matches!(e.event, Event::Snapshot(_)))
            .unwrap();
        let levels = tape.levels(snapshot);
        assert_eq!((levels.bids.len(), levels.asks.len()), (1000, 1000));
        assert!(tape
            .events()
            .windows(2)
            .all(|w| w[0].local_ts_ns <= w[1].local_ts_ns));
    }

    /// The book a replay of a window ends with is the book the whole tape ends with: the
    /// synthetic snapshot carries the book across the cut exactly.
    #[test]
    fn a_window_opens_with_the_book_at_its_start() {
        use crate::book::{SyncState, SyncedBook};
        let tape = Tape::load(open_inputs(&[], "BTCUSDT").unwrap(), spec()).unwrap();
        let stats = tape.stats();
        let middle = stats.first_ts_ns + (stats.last_ts_ns - stats.first_ts_ns) / 2;
        let end = stats.last_ts_ns + 1;
        let window = tape.window(middle, end, 1000).unwrap();
        assert!(window.starts_with_snapshot());
        assert!(!tape.starts_with_snapshot(), "the capture opens with diffs");
        let inside = tape
            .events()
            .iter()
            .filter(|e| e.local_ts_ns >= middle)
            .count();
        assert_eq!(window.events().len(), inside + 1);
        assert_eq!(window.stats().first_ts_ns, middle);
        // The window's feed latency is its own events' median, not the whole tape's.
        let mut own: Vec<i64> = tape
            .events()
            .iter()
            .filter(|e| e.local_ts_ns >= middle && e.event.exch_ts_ms() > 0)
            .map(|e| e.local_ts_ns as i64 - e.event.exch_ts_ms() as i64 * 1_000_000)
            .collect();
        let mid = own.len() / 2;
        let median = *own.select_nth_unstable(mid).1;
        assert_eq!(window.stats().feed_delay_ns_median, Some(median));
        assert_eq!(window.stats().feed_delay_samples, own.len() as u64);
        let replay = |t: &Tape| {
            let mut book = SyncedBook::new(1000);
            for e in t.events() {
                match &e.event {
                    Event::Depth(d) => {
                        let _ = book.on_diff(d, t.levels(e));
                    }
                    Event::Snapshot(s) => {
                        let _ = book.on_snapshot(s, t.levels(e));
                    }
                    _ => {}
                }
            }
            let held = book.book_any_state();
            let bids: Vec<Level> = held.levels(crate::types::Side::Buy).collect();
            let asks: Vec<Level> = held.levels(crate::types::Side::Sell).collect();
            (book.state(), bids, asks)
        };
        let (state_all, bids_all, asks_all) = replay(&tape);
        let (state_win, bids_win, asks_win) = replay(&window);
        assert!(matches!(state_all, SyncState::Live { .. }));
        assert_eq!(state_win, state_all);
        assert_eq!(bids_win, bids_all);
        assert_eq!(asks_win, asks_all);
        // Before the recording's snapshot there is no book to carry.
        let early = tape.window(stats.first_ts_ns, middle, 1000).unwrap();
        assert!(!early.starts_with_snapshot());
    }
}
