//! One input file as a stream of frames `(local_ts_ns, kind, bytes)`: telling its format
//! apart (journal, raw capture, Binance CSV dump, plain or gzip or zip) and reading it
//! frame by frame, with errors that name the file and line.
//!
//! Never: decodes a frame's JSON, merges files or reorders frames.

use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::{DeflateDecoder, GzDecoder};

use super::inputs::file_base_name;
use super::{Location, ReplayError};
use crate::journal::{JournalReader, RecordKind, MAGIC};

/// Longest text line accepted (a 5000-level snapshot is ~250 KiB).
const LINE_MAX: usize = 4 << 20;

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
    pub(super) ts_ns: u64,
    kind: RecordKind,
    last_ts_ns: u64,
    /// Symbol for synthetic CSV frames: lower case (stream name) and upper case (`s`).
    symbol_lower: String,
    symbol_upper: String,
    /// CSV: the first line was looked at (header or not).
    csv_started: bool,
    /// Opened by `open_lazy` and closed again until the merge reaches its first frame.
    parked: Option<Parked>,
    /// The torn tail a journal had when it was closed (`close`).
    torn_at_close: Option<(u64, bool)>,
}

/// A file waiting for its turn: where to open it again and when its first frame is.
struct Parked {
    path: PathBuf,
    symbol: String,
    first_ts_ns: u64,
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
        // Opened once and its head read from this handle, then chained back in front of
        // the rest: a FIFO (read once, `inputs::is_fifo`) loses nothing.
        let mut file = File::open(path).map_err(|e| file_error(format!("cannot open: {e}")))?;
        let mut head_buf = [0u8; 8];
        let got = read_up_to(&mut file, &mut head_buf)
            .map_err(|e| file_error(format!("cannot read: {e}")))?;
        let head = &head_buf[..got];
        if super::inputs::is_fifo(path) && (head == MAGIC.as_slice() || head.starts_with(b"PK")) {
            return Err(file_error(
                "a journal or .zip through a named pipe: they are read as files".to_string(),
            ));
        }
        if super::tapefile::is_tape(head) {
            return Err(file_error(
                "a decoded tape file (.mmt): backtest, replay, calibration and scoreboard \
                 read it; --mode=convert reads the journal or capture it was converted from"
                    .to_string(),
            ));
        }
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
        let gz = head.starts_with(&[0x1f, 0x8b]);
        let file = Cursor::new(head_buf).take(got as u64).chain(file);
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

    /// Like `open`, then reads the first frame's time and closes the file again (no
    /// buffer is held) until `unpark`: the merge opens it when its data is due, so files
    /// that follow one another in time (days) are open one at a time. A FIFO is opened for
    /// good (it cannot be read twice), as is a file without frames.
    pub fn open_lazy(path: &Path, symbol: &str) -> Result<FrameReader, ReplayError> {
        let mut reader = FrameReader::open(path, symbol)?;
        if super::inputs::is_fifo(path) {
            return Ok(reader);
        }
        let has_frame = reader.advance()?;
        let first_ts_ns = reader.ts_ns;
        reader.close();
        if has_frame {
            reader.parked = Some(Parked {
                path: path.to_path_buf(),
                symbol: symbol.to_string(),
                first_ts_ns,
            });
        }
        Ok(reader)
    }

    /// The first frame's time of a file `open_lazy` closed again (None once opened).
    pub fn parked_first_ts(&self) -> Option<u64> {
        self.parked.as_ref().map(|p| p.first_ts_ns)
    }

    /// Opens a parked file again, at its start.
    pub fn unpark(&mut self) -> Result<(), ReplayError> {
        if let Some(parked) = self.parked.take() {
            *self = FrameReader::open(&parked.path, &parked.symbol)?;
        }
        Ok(())
    }

    /// Drops the input and its buffers (at the end of the file, or to park it); the torn
    /// tail seen so far is kept for `torn_tail`.
    pub fn close(&mut self) {
        self.torn_at_close = self.torn_tail();
        self.input = Input::Text(Box::new(std::io::empty()));
        self.raw = Vec::new();
        self.payload = Vec::new();
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
            parked: None,
            torn_at_close: None,
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
            _ => self.torn_at_close,
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

/// A REST depth snapshot starts with `lastUpdateId` (stream messages never do).
fn is_snapshot(json: &[u8]) -> bool {
    let head = &json[..json.len().min(32)];
    head.windows(14).any(|w| w == b"\"lastUpdateId\"")
}

/// `BTCUSDT-trades-2024-08-08.csv` → `BTCUSDT`.
fn symbol_from_name(name: &str) -> Option<String> {
    let base = name.rsplit('/').next().unwrap_or(name);
    CsvLayout::from_file_name(base)?;
    let symbol = base.split('-').next()?;
    (!symbol.is_empty() && symbol.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| symbol.to_string())
}

pub(super) fn read_up_to<R: Read>(input: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
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
