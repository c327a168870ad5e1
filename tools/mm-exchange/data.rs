//! Loads recorded market data (the raw captures in ../shared/data, and the journals that
//! `mm --mode=record` writes) into the replay list.
//!
//! Two input formats, told apart by their first bytes, never by the file name:
//! - **Captures** (text, gzip or plain — gzip detected by its magic bytes): one message per
//!   line, `<local_receive_ts> <raw JSON exactly as received>`. The timestamp unit is
//!   detected per file from its magnitude: ≥ 10¹⁷ nanoseconds (the 2024 `*.gz` files),
//!   ≥ 10¹⁴ microseconds (the `*.dat.gz` files), otherwise milliseconds. The JSON is a
//!   combined-stream message `{"stream":..,"data":..}` or a REST depth snapshot
//!   `{"lastUpdateId":..,"bids":..,"asks":..}`.
//! - **Journals** (`mm::journal`, magic `MMJRNL01`), read with the library's own
//!   `JournalReader` (a file format, not engine order logic): a frame record (kind 1) is
//!   a stream message and is replayed at its `local_ts_ns`; the first snapshot record
//!   (kind 2) seeds the book, as the REST snapshot line of a capture does; markers (kind 3)
//!   are ignored. A torn last record (a recording cut mid-write) is skipped and reported
//!   on stderr; damage followed by more records is an error naming the byte offset.
//!   Frames that are not combined-stream messages (e.g. a subscription answer) are counted
//!   as skipped, like unparsable capture lines.
//!
//! Owns: the exact payload text. The `data` object of each stream message is kept byte for
//! byte as recorded (key order included — a hand-written decoder on the other end may rely
//! on it) and served as is; it is parsed only to learn the fields the simulator needs
//! (update ids, prices, quantities). Prices and quantities become integer atoms (10⁻⁸)
//! through the library's `parse_atoms`; no float touches them.
//!
//! aggTrade is derived here, because the captures hold `@trade` only (and so do the
//! journals `--mode=record` writes; data that recorded `@aggTrade` itself is served as
//! recorded and nothing is derived): consecutive trades
//! (in file order, ids t, t+1, …) with the same trade time `T`, price `p` and maker flag
//! `m` — one taker order sweeping one price level — form one aggregate trade. Its record is
//! inserted right after the group's last trade, with `E` of that trade, `a` a running id
//! starting at the first trade id of the capture, `q` the summed quantity, `f`/`l` the
//! first/last trade ids and `M` true.
//!
//! Never: reorders messages, drops a message it cannot parse (it is still served, it
//! just has no effect on the book or the matching), or panics on malformed input.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::{bail, Context};
use flate2::read::MultiGzDecoder;
use mm::journal::{JournalReader, RecordKind, MAGIC as JOURNAL_MAGIC};
use mm::types::{parse_atoms, write_atoms, DECIMAL_TEXT_MAX};
use serde_json::Value;

/// Everything the replay needs, from one or more capture files in order.
#[derive(Debug, Default)]
pub struct Capture {
    /// Upper-case symbol of the data (`BTCUSDT`); empty when the data held no stream.
    pub symbol: String,
    /// The first REST depth snapshot found in the data, if any.
    pub snapshot: Option<DepthSnapshot>,
    /// Stream messages in replay order (derived aggTrades included).
    pub records: Vec<Record>,
    /// Lines (or journal frames) that were neither a stream message nor a snapshot
    /// (counted, skipped).
    pub skipped_lines: u64,
}

/// What one journal file held (printed on stderr at load).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct JournalSummary {
    /// Frame records (kind 1).
    pub frames: u64,
    /// Frames that were not combined-stream messages (skipped).
    pub frames_skipped: u64,
    /// Snapshot records (kind 2); only the first usable one of the whole data seeds the book.
    pub snapshots: u64,
    /// Marker records (kind 3, ignored).
    pub markers: u64,
    /// Bytes of a torn last record that were skipped (0 for a clean file).
    pub torn_tail_bytes: u64,
}

/// One message to replay.
#[derive(Debug, Clone)]
pub struct Record {
    /// Local receive time of the recording, in nanoseconds since the epoch.
    pub local_ns: i64,
    /// The stream name as recorded (`btcusdt@depth@100ms`).
    pub stream: String,
    /// Kind of stream, which decides which subscriptions receive it.
    pub kind: StreamKind,
    /// The `data` JSON exactly as recorded (or as derived, for aggTrade).
    pub payload: String,
    /// What the simulator understood of it.
    pub event: Event,
}

/// The stream families the simulator serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// `<symbol>@depth@100ms` (also served as `<symbol>@depth`).
    Depth,
    /// `<symbol>@bookTicker`.
    BookTicker,
    /// `<symbol>@trade`.
    Trade,
    /// `<symbol>@aggTrade` (derived).
    AggTrade,
    /// Anything else that was recorded (e.g. `markPrice@1s`): served under its own name.
    Other,
}

/// The parsed content of a record.
#[derive(Debug, Clone)]
pub enum Event {
    /// A depth diff.
    Depth(DepthUpdate),
    /// A best bid/ask update.
    Ticker(Ticker),
    /// A trade.
    Trade(Trade),
    /// Nothing the book or the matching uses (aggTrade, unknown or unparsable payload).
    Opaque,
}

/// A depth diff (`depthUpdate`): levels in atoms, quantity 0 removes the level.
#[derive(Debug, Clone, Default)]
pub struct DepthUpdate {
    /// `U`.
    pub first_id: u64,
    /// `u`.
    pub last_id: u64,
    /// `b`: (price, qty) in atoms.
    pub bids: Vec<(i64, i64)>,
    /// `a`: (price, qty) in atoms.
    pub asks: Vec<(i64, i64)>,
}

/// A REST depth snapshot.
#[derive(Debug, Clone, Default)]
pub struct DepthSnapshot {
    /// `lastUpdateId`.
    pub last_update_id: u64,
    /// (price, qty) in atoms.
    pub bids: Vec<(i64, i64)>,
    /// (price, qty) in atoms.
    pub asks: Vec<(i64, i64)>,
}

/// A bookTicker update (atoms).
#[derive(Debug, Clone, Copy, Default)]
pub struct Ticker {
    /// `u`.
    pub update_id: u64,
    /// `b`.
    pub bid_price: i64,
    /// `B`.
    pub bid_qty: i64,
    /// `a`.
    pub ask_price: i64,
    /// `A`.
    pub ask_qty: i64,
}

/// A trade (atoms).
#[derive(Debug, Clone, Copy, Default)]
pub struct Trade {
    /// `t`.
    pub id: u64,
    /// `p`.
    pub price: i64,
    /// `q`.
    pub qty: i64,
    /// `T`.
    pub time_ms: i64,
    /// `E`.
    pub event_ms: i64,
    /// `m`: the buyer was the maker (the aggressor sold).
    pub buyer_maker: bool,
}

impl Capture {
    /// Loads the files in order (captures and journals may be chained) and derives the
    /// aggTrade records. A journal's contents, and a torn tail if it had one, are reported
    /// on stderr.
    pub fn load(paths: &[impl AsRef<Path>]) -> anyhow::Result<Capture> {
        let mut capture = Capture::default();
        for path in paths {
            let path = path.as_ref();
            let format = sniff(path).with_context(|| format!("opening {}", path.display()))?;
            match format {
                Format::Journal => {
                    let summary = capture.read_journal(path)?;
                    report_journal(path, &summary);
                }
                Format::Gzip | Format::Plain => {
                    let reader = open(path, format)
                        .with_context(|| format!("opening {}", path.display()))?;
                    capture
                        .read_lines(reader)
                        .with_context(|| format!("reading {}", path.display()))?;
                }
            }
        }
        capture.derive_agg_trades();
        Ok(capture)
    }

    /// Reads one journal (see the file doc): frames become stream messages at their
    /// `local_ts_ns`, the first usable snapshot seeds the book, markers are ignored, a torn
    /// tail is skipped (and returned in the summary).
    pub fn read_journal(&mut self, path: &Path) -> anyhow::Result<JournalSummary> {
        let mut reader = JournalReader::open(path)?;
        let header_symbol = reader.header().symbol_str().to_ascii_uppercase();
        let mut summary = JournalSummary::default();
        while let Some(record) = reader.next_record()? {
            let local_ns = i64::try_from(record.local_ts_ns).unwrap_or(i64::MAX);
            match record.kind {
                RecordKind::Frame => {
                    summary.frames += 1;
                    let pushed = match std::str::from_utf8(record.payload) {
                        Ok(text) => self
                            .push_stream(local_ns, text.trim())
                            .with_context(|| format!("reading {}", path.display()))?,
                        Err(_) => false,
                    };
                    if !pushed {
                        summary.frames_skipped += 1;
                        self.skipped_lines += 1;
                    }
                }
                RecordKind::Snapshot => {
                    summary.snapshots += 1;
                    if self.snapshot.is_none() {
                        self.snapshot = serde_json::from_slice::<Value>(record.payload)
                            .ok()
                            .and_then(|v| parse_snapshot(&v));
                    }
                }
                RecordKind::Marker => summary.markers += 1,
            }
        }
        summary.torn_tail_bytes = reader.torn_tail_bytes();
        // A journal with no stream message still names its symbol in the header.
        if self.symbol.is_empty() && header_symbol.bytes().all(|b| b.is_ascii_alphanumeric()) {
            self.symbol = header_symbol;
        }
        Ok(summary)
    }

    /// Parses capture text (used by `load` and by tests).
    pub fn read_lines(&mut self, reader: impl BufRead) -> anyhow::Result<()> {
        let mut unit: Option<i64> = None;
        for (index, line) in reader.lines().enumerate() {
            let line = line.with_context(|| format!("line {}", index + 1))?;
            let line = line.trim_end();
            if line.is_empty() {
                continue;
            }
            let Some((ts_text, json)) = line.split_once(' ') else {
                self.skipped_lines += 1;
                continue;
            };
            let Ok(ts) = ts_text.parse::<i64>() else {
                self.skipped_lines += 1;
                continue;
            };
            let scale = *unit.get_or_insert_with(|| ns_per_unit(ts));
            let local_ns = ts.saturating_mul(scale);
            self.push_line(local_ns, json.trim())?;
        }
        Ok(())
    }

    fn push_line(&mut self, local_ns: i64, json: &str) -> anyhow::Result<()> {
        if self.push_stream(local_ns, json)? {
            return Ok(());
        }
        let value: Value = match serde_json::from_str(json) {
            Ok(v) => v,
            Err(_) => {
                self.skipped_lines += 1;
                return Ok(());
            }
        };
        if value.get("lastUpdateId").is_some() {
            if self.snapshot.is_none() {
                self.snapshot = parse_snapshot(&value);
            }
            return Ok(());
        }
        self.skipped_lines += 1;
        Ok(())
    }

    /// Appends `json` if it is a combined-stream message; `Ok(false)` (nothing appended)
    /// for any other JSON. Errs only when the data mixes two symbols.
    fn push_stream(&mut self, local_ns: i64, json: &str) -> anyhow::Result<bool> {
        if let Some((stream, payload)) = split_combined(json) {
            let (symbol, suffix) = stream.split_once('@').unwrap_or((stream, ""));
            let symbol = symbol.to_ascii_uppercase();
            if self.symbol.is_empty() {
                self.symbol = symbol;
            } else if self.symbol != symbol {
                bail!(
                    "data holds two symbols ({} and {}); mm-exchange serves one symbol per run",
                    self.symbol,
                    symbol
                );
            }
            let kind = match suffix {
                "depth@100ms" | "depth" | "depth@0ms" => StreamKind::Depth,
                "bookTicker" => StreamKind::BookTicker,
                "trade" => StreamKind::Trade,
                "aggTrade" => StreamKind::AggTrade,
                _ => StreamKind::Other,
            };
            let event = serde_json::from_str::<Value>(payload)
                .ok()
                .and_then(|v| parse_event(kind, &v))
                .unwrap_or(Event::Opaque);
            self.records.push(Record {
                local_ns,
                stream: stream.to_string(),
                kind,
                payload: payload.to_string(),
                event,
            });
            return Ok(true);
        }
        // A combined message whose text did not have the expected shape: re-serialise.
        let Ok(value) = serde_json::from_str::<Value>(json) else {
            return Ok(false);
        };
        if let (Some(Value::String(stream)), Some(data @ Value::Object(_))) =
            (value.get("stream"), value.get("data"))
        {
            let text = format!("{{\"stream\":\"{stream}\",\"data\":{data}}}");
            if split_combined(&text).is_some() {
                return self.push_stream(local_ns, &text);
            }
        }
        Ok(false)
    }

    /// Inserts an aggTrade record after the last trade of each group (see the file doc).
    /// Data that recorded `@aggTrade` itself is left as it is.
    fn derive_agg_trades(&mut self) {
        if self.records.iter().any(|r| r.kind == StreamKind::AggTrade) {
            return;
        }
        let agg_stream = format!("{}@aggTrade", self.symbol.to_ascii_lowercase());
        let mut out = Vec::with_capacity(self.records.len() + self.records.len() / 4);
        let trades: Vec<(usize, Trade)> = self
            .records
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match r.event {
                Event::Trade(t) => Some((i, t)),
                _ => None,
            })
            .collect();
        // For each trade record index: Some(agg payload) when it closes a group.
        let mut closes: Vec<Option<(String, Event)>> = vec![None; self.records.len()];
        let mut agg_id = trades.first().map(|(_, t)| t.id).unwrap_or(1);
        let mut group_start = 0usize;
        for k in 0..trades.len() {
            let (index, trade) = trades[k];
            let next_joins = trades.get(k + 1).is_some_and(|(_, n)| {
                n.id == trade.id + 1
                    && n.time_ms == trade.time_ms
                    && n.price == trade.price
                    && n.buyer_maker == trade.buyer_maker
            });
            if next_joins {
                continue;
            }
            let first = trades[group_start].1;
            let qty: i64 = trades[group_start..=k].iter().map(|(_, t)| t.qty).sum();
            let payload = format!(
                "{{\"e\":\"aggTrade\",\"E\":{},\"s\":\"{}\",\"a\":{},\"p\":\"{}\",\"q\":\"{}\",\"f\":{},\"l\":{},\"T\":{},\"m\":{},\"M\":true}}",
                trade.event_ms,
                self.symbol,
                agg_id,
                decimal8(trade.price),
                decimal8(qty),
                first.id,
                trade.id,
                trade.time_ms,
                trade.buyer_maker
            );
            closes[index] = Some((payload, Event::Opaque));
            agg_id += 1;
            group_start = k + 1;
        }
        for (record, close) in std::mem::take(&mut self.records).into_iter().zip(closes) {
            let local_ns = record.local_ns;
            out.push(record);
            if let Some((payload, event)) = close {
                out.push(Record {
                    local_ns,
                    stream: agg_stream.clone(),
                    kind: StreamKind::AggTrade,
                    payload,
                    event,
                });
            }
        }
        self.records = out;
    }

    /// Number of records of one kind.
    pub fn count(&self, kind: StreamKind) -> usize {
        self.records.iter().filter(|r| r.kind == kind).count()
    }
}

/// Prints atoms with Binance's 8 decimals (`"61837.63000000"`).
pub fn decimal8(atoms: i64) -> String {
    let mut buf = [0u8; DECIMAL_TEXT_MAX];
    let len = write_atoms(atoms, 8, &mut buf);
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

/// A data file's format, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// An mm journal (`MMJRNL01`).
    Journal,
    /// A gzip capture.
    Gzip,
    /// A plain-text capture.
    Plain,
}

fn sniff(path: &Path) -> anyhow::Result<Format> {
    let file = File::open(path)?;
    let mut magic = Vec::with_capacity(JOURNAL_MAGIC.len());
    file.take(JOURNAL_MAGIC.len() as u64)
        .read_to_end(&mut magic)?;
    Ok(if magic == JOURNAL_MAGIC {
        Format::Journal
    } else if magic.starts_with(&[0x1f, 0x8b]) {
        Format::Gzip
    } else {
        Format::Plain
    })
}

fn open(path: &Path, format: Format) -> anyhow::Result<Box<dyn BufRead>> {
    let file = File::open(path)?;
    if format == Format::Gzip {
        Ok(Box::new(BufReader::new(MultiGzDecoder::new(file))))
    } else {
        Ok(Box::new(BufReader::new(file)))
    }
}

/// One stderr line per journal, and a second one when its tail was torn.
fn report_journal(path: &Path, s: &JournalSummary) {
    mm::errln!(
        "mm-exchange: {}: mm journal: {} frames ({} not stream messages, skipped), {} snapshots, {} markers (ignored)",
        path.display(),
        s.frames,
        s.frames_skipped,
        s.snapshots,
        s.markers
    );
    if s.torn_tail_bytes > 0 {
        mm::errln!(
            "mm-exchange: {}: torn tail skipped: the last {} bytes are an incomplete record \
             (the recording was cut mid-write); the {} complete records before it are used",
            path.display(),
            s.torn_tail_bytes,
            s.frames + s.snapshots + s.markers
        );
    }
}

fn ns_per_unit(ts: i64) -> i64 {
    if ts >= 100_000_000_000_000_000 {
        1
    } else if ts >= 100_000_000_000_000 {
        1_000
    } else {
        1_000_000
    }
}

/// Splits `{"stream":"<name>","data":<payload>}` into name and payload text without
/// re-serialising. Returns None for any other shape.
fn split_combined(json: &str) -> Option<(&str, &str)> {
    let rest = json.strip_prefix("{\"stream\":\"")?;
    let quote = rest.find('"')?;
    let stream = &rest[..quote];
    let payload = rest[quote..].strip_prefix("\",\"data\":")?;
    let payload = payload.strip_suffix('}')?.trim();
    if payload.starts_with('{') && payload.ends_with('}') {
        Some((stream, payload))
    } else {
        None
    }
}

fn parse_event(kind: StreamKind, v: &Value) -> Option<Event> {
    match kind {
        StreamKind::Depth => Some(Event::Depth(DepthUpdate {
            first_id: v.get("U")?.as_u64()?,
            last_id: v.get("u")?.as_u64()?,
            bids: levels(v.get("b")?)?,
            asks: levels(v.get("a")?)?,
        })),
        StreamKind::BookTicker => Some(Event::Ticker(Ticker {
            update_id: v.get("u")?.as_u64()?,
            bid_price: atoms(v.get("b")?)?,
            bid_qty: atoms(v.get("B")?)?,
            ask_price: atoms(v.get("a")?)?,
            ask_qty: atoms(v.get("A")?)?,
        })),
        StreamKind::Trade => Some(Event::Trade(Trade {
            id: v.get("t")?.as_u64()?,
            price: atoms(v.get("p")?)?,
            qty: atoms(v.get("q")?)?,
            time_ms: v.get("T")?.as_i64()?,
            event_ms: v.get("E").and_then(Value::as_i64).unwrap_or(0),
            buyer_maker: v.get("m")?.as_bool()?,
        })),
        StreamKind::AggTrade | StreamKind::Other => None,
    }
}

fn parse_snapshot(v: &Value) -> Option<DepthSnapshot> {
    Some(DepthSnapshot {
        last_update_id: v.get("lastUpdateId")?.as_u64()?,
        bids: levels(v.get("bids")?)?,
        asks: levels(v.get("asks")?)?,
    })
}

fn atoms(v: &Value) -> Option<i64> {
    parse_atoms(v.as_str()?.as_bytes()).ok()
}

fn levels(v: &Value) -> Option<Vec<(i64, i64)>> {
    v.as_array()?
        .iter()
        .map(|level| {
            let pair = level.as_array()?;
            Some((atoms(pair.first()?)?, atoms(pair.get(1)?)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINES: &str = r#"1723161253937085768 {"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161255208,"s":"BTCUSDT","U":10,"u":12,"b":[["100.00000000","1.00000000"]],"a":[]}}
1723161254206652067 {"lastUpdateId":11,"bids":[["100.00000000","2.00000000"]],"asks":[["101.00000000","3.00000000"]]}
1723161254300000000 {"stream":"btcusdt@trade","data":{"e":"trade","E":5,"s":"BTCUSDT","t":7,"p":"100.00000000","q":"0.50000000","T":4,"m":true,"M":true}}
1723161254300000001 {"stream":"btcusdt@trade","data":{"e":"trade","E":5,"s":"BTCUSDT","t":8,"p":"100.00000000","q":"0.25000000","T":4,"m":true,"M":true}}
1723161254300000002 {"stream":"btcusdt@trade","data":{"e":"trade","E":6,"s":"BTCUSDT","t":9,"p":"99.00000000","q":"1.00000000","T":4,"m":true,"M":true}}
1723161254400000000 {"stream":"btcusdt@bookTicker","data":{"u":13,"s":"BTCUSDT","b":"100.00000000","B":"1.00000000","a":"101.00000000","A":"2.00000000"}}
"#;

    fn load(text: &str) -> Capture {
        let mut c = Capture::default();
        c.read_lines(text.as_bytes()).unwrap();
        c.derive_agg_trades();
        c
    }

    #[test]
    fn keeps_payload_text_and_parses_fields() {
        let c = load(LINES);
        assert_eq!(c.symbol, "BTCUSDT");
        assert_eq!(c.snapshot.as_ref().unwrap().last_update_id, 11);
        assert!(c.records[0]
            .payload
            .starts_with("{\"e\":\"depthUpdate\",\"E\":1723161255208"));
        match &c.records[0].event {
            Event::Depth(d) => {
                assert_eq!((d.first_id, d.last_id), (10, 12));
                assert_eq!(d.bids, vec![(100 * 100_000_000, 100_000_000)]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.records[0].local_ns, 1723161253937085768);
    }

    #[test]
    fn aggregates_trades_by_time_price_side() {
        let c = load(LINES);
        let kinds: Vec<StreamKind> = c.records.iter().map(|r| r.kind).collect();
        use StreamKind::*;
        assert_eq!(
            kinds,
            vec![Depth, Trade, Trade, AggTrade, Trade, AggTrade, BookTicker]
        );
        let agg: Value = serde_json::from_str(&c.records[3].payload).unwrap();
        assert_eq!(agg["q"], "0.75000000");
        assert_eq!(agg["f"], 7);
        assert_eq!(agg["l"], 8);
        assert_eq!(agg["a"], 7);
        let agg2: Value = serde_json::from_str(&c.records[5].payload).unwrap();
        assert_eq!(agg2["a"], 8);
        assert_eq!(agg2["p"], "99.00000000");
    }

    #[test]
    fn microsecond_timestamps_become_nanoseconds() {
        let c = load("1680652800004107 {\"stream\":\"btcusdt@bookTicker\",\"data\":{\"u\":1,\"s\":\"BTCUSDT\",\"b\":\"1\",\"B\":\"1\",\"a\":\"2\",\"A\":\"1\"}}\n");
        assert_eq!(c.records[0].local_ns, 1_680_652_800_004_107_000);
    }

    fn temp_path(tag: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!(
            "mmx-data-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_file(&path);
        path
    }

    /// LINES as a journal: a marker, the frames, the snapshot between them, a second
    /// snapshot (never used), a frame that is not a stream message.
    fn write_journal(path: &Path) -> Vec<String> {
        use mm::journal::JournalWriter;
        let mut w = JournalWriter::create(path, "BTCUSDT", 1).unwrap();
        w.append(RecordKind::Marker, 5, b"mm record BTCUSDT")
            .unwrap();
        let mut frames = Vec::new();
        for line in LINES.lines() {
            let (ts, json) = line.split_once(' ').unwrap();
            let ts: u64 = ts.parse().unwrap();
            if json.starts_with("{\"lastUpdateId\"") {
                w.append(RecordKind::Snapshot, ts, json.as_bytes()).unwrap();
            } else {
                w.append(RecordKind::Frame, ts, json.as_bytes()).unwrap();
                frames.push(json.to_string());
            }
        }
        w.append(
            RecordKind::Snapshot,
            1723161254500000000,
            br#"{"lastUpdateId":99,"bids":[],"asks":[]}"#,
        )
        .unwrap();
        w.append(
            RecordKind::Frame,
            1723161254600000000,
            br#"{"result":null,"id":1}"#,
        )
        .unwrap();
        w.finish().unwrap();
        frames
    }

    fn served(c: &Capture) -> Vec<String> {
        c.records
            .iter()
            .filter(|r| r.kind != StreamKind::AggTrade)
            .map(|r| format!("{{\"stream\":\"{}\",\"data\":{}}}", r.stream, r.payload))
            .collect()
    }

    #[test]
    fn journal_replays_like_the_capture_it_recorded() {
        // Named like a gzip capture on purpose: the magic bytes decide.
        let path = temp_path("journal.gz");
        let frames = write_journal(&path);
        let c = Capture::load(&[&path]).unwrap();
        let text = load(LINES);
        assert_eq!(served(&c), frames, "frames byte for byte, in order");
        assert_eq!(c.symbol, "BTCUSDT");
        assert_eq!(
            c.snapshot.as_ref().unwrap().last_update_id,
            11,
            "first snapshot"
        );
        assert_eq!(c.skipped_lines, 1, "the subscription answer");
        let times = |c: &Capture| c.records.iter().map(|r| r.local_ns).collect::<Vec<_>>();
        assert_eq!(times(&c), times(&text), "timing from local_ts_ns");
        assert_eq!(
            c.count(StreamKind::AggTrade),
            text.count(StreamKind::AggTrade)
        );
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn torn_journal_replays_its_complete_records() {
        let path = temp_path("torn.mmj");
        let frames = write_journal(&path);
        let bytes = std::fs::read(&path).unwrap();
        // Cut the last record (the subscription answer, 22 bytes + 17) in its payload.
        std::fs::write(&path, &bytes[..bytes.len() - 20]).unwrap();
        let mut c = Capture::default();
        let summary = c.read_journal(&path).unwrap();
        assert_eq!(summary.torn_tail_bytes, 19);
        assert_eq!(
            (summary.frames, summary.snapshots, summary.markers),
            (5, 2, 1)
        );
        assert_eq!(served(&c), frames);
        // Damage before the end is an error, not a silent truncation.
        let mut bytes = bytes;
        bytes[mm::journal::HEADER_LEN + 20] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let err = Capture::load(&[&path]).unwrap_err();
        assert!(format!("{err:#}").contains("corrupt record"), "{err:#}");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn recorded_agg_trades_are_not_derived_again() {
        let line = "1723161254300000000 {\"stream\":\"btcusdt@aggTrade\",\"data\":{\"e\":\"aggTrade\",\"a\":1}}\n";
        let c = load(&format!("{LINES}{line}"));
        assert_eq!(c.count(StreamKind::AggTrade), 1);
    }

    #[test]
    fn garbage_lines_are_counted_not_fatal() {
        let c = load("hello\n12 {not json\n");
        assert_eq!(c.skipped_lines, 2);
        assert!(c.records.is_empty());
    }
}
