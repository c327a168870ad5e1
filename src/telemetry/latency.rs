//! Latency histograms (HdrHistogram), their interval log and their percentile tables.
//!
//! Owns: `LatencyRecorder` — one cumulative and one interval `Histogram<u64>` per
//! `LatencyKind` (nanoseconds, 3 significant digits, values above `LATENCY_NS_MAX` clamped
//! *and counted*, the true maximum kept beside each histogram, because HDR's saturating
//! record would hide them); `LatencyLogWriter`, which appends the interval histograms to an
//! HdrHistogram interval log (`latency/<mode>_<SYMBOL>_<UTC time>.hlog`, V2 compressed,
//! one tag per kind, readable by HdrHistogram's own log tools) and at exit writes one
//! percentile-distribution table (`.hgrm`, the "Value Percentile TotalCount
//! 1/(1-Percentile)" layout) per kind; `read_log` / `read_intervals`, which read any such
//! log back (ours or another tool's) and merge it per tag.
//!
//! Side thread only: histograms are allocated in `LatencyRecorder::new` and recording never
//! allocates, but writing logs formats text and does file I/O. Never reads the clock: every
//! time is passed in (wall ns since the Unix epoch, or the data's time in a backtest).
//!
//! File format (HdrHistogram interval log, format version 1.3):
//! ```text
//! #<comment lines>
//! #[Histogram log format version 1.3]
//! #[StartTime: 1767225600.000 (seconds since epoch)]
//! #[BaseTime: 1767225600.000 (seconds since epoch)]
//! "StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"
//! #[Clamped tag=feed count=2 true_max_ns=71000000000]      (only when values were clamped)
//! Tag=feed,0.000,10.000,1234567.000,HISTFAAAA...
//! Tag=tick_to_quote,0.000,10.000,20479.000,HISTFAAAA...
//! ```
//! Interval start times are seconds since BaseTime; `Interval_Max` is in nanoseconds (max
//! value divisor 1); the histograms' values are nanoseconds.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, LogIteratorError, Tag,
};
use hdrhistogram::serialization::{DeserializeError, Deserializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Largest latency a histogram tracks, ns (60 s). Larger samples are recorded as this value
/// and counted in `LatencyStats::clamped`; their true size survives in `true_max_ns`.
pub const LATENCY_NS_MAX: u64 = 60_000_000_000;
/// Significant decimal digits the histograms keep (0.1 % resolution).
pub const LATENCY_SIGFIG: u8 = 3;
/// Default interval between two interval-log entries, ns (10 s).
pub const LATENCY_INTERVAL_NS: u64 = 10_000_000_000;
/// Folder the dumps land in.
pub const LATENCY_DIR: &str = "latency";
/// Ticks per half distance of the `.hgrm` tables (HdrHistogram's usual 5).
pub const HGRM_TICKS_PER_HALF: u32 = 5;
/// Nanoseconds per unit of the `.hgrm` tables' values: they are written in microseconds.
pub const HGRM_UNIT_NS: f64 = 1_000.0;
/// The legend line HdrHistogram's writers put after the header.
const LEGEND: &str =
    "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n";
/// Prefix of the comment line that records clamped samples of one interval and tag.
const CLAMPED_PREFIX: &str = "#[Clamped ";

/// What a latency sample measures. The tag is its name in the interval log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LatencyKind {
    /// Exchange event time → local receive (clocks of two machines: may be negative).
    Feed,
    /// Local receive of the market event → order request written to the venue.
    TickToQuote,
    /// Order request written → acknowledgement received.
    OrderRoundTrip,
    /// One iteration of the hot loop that handled at least one event.
    Loop,
    /// Stage of a quoting event: read (the socket read that returned its last bytes was
    /// issued) → decoded; split below from `PollToRead` on.
    ReadToDecoded,
    /// Stage: decoded → book applied (bookTicker: touch stored).
    DecodedToBook,
    /// Stage: book applied → quote decided (OFI, σ, quoter).
    BookToQuote,
    /// Stage: quote decided → the last order action handed to the venue.
    QuoteToOrder,
    /// Before the read stage: the poll's stamp → the read issued (reads and messages ahead
    /// of this one in the same `Connection::poll`).
    PollToRead,
    /// Read stage, part 1: the socket read syscall (issued → returned with data).
    SocketRead,
    /// Part 2: returned → decrypted bytes handed to the WebSocket layer.
    TlsOpen,
    /// Part 3: handed over → the WebSocket layer starts on this message (messages ahead of
    /// it from the same read handled first).
    Queued,
    /// Part 4: the WebSocket frame parsed, the message handed out.
    WsFrame,
    /// Part 5: message → decoded.
    Decode,
    /// Every event that decided a quote: its read (as `ReadToDecoded`) → quote decided,
    /// whether or not an order followed (`TickToQuote` has only those that sent one).
    ReadToQuote,
    /// The same events from the WebSocket message handed out → quote decided: the span
    /// the `tick_to_quote/book_ticker` bench times (frame → decode → book → quote).
    FrameToQuote,
}

impl LatencyKind {
    /// Every kind, in table order.
    pub const ALL: [LatencyKind; 16] = [
        LatencyKind::Feed,
        LatencyKind::TickToQuote,
        LatencyKind::OrderRoundTrip,
        LatencyKind::Loop,
        LatencyKind::ReadToDecoded,
        LatencyKind::DecodedToBook,
        LatencyKind::BookToQuote,
        LatencyKind::QuoteToOrder,
        LatencyKind::PollToRead,
        LatencyKind::SocketRead,
        LatencyKind::TlsOpen,
        LatencyKind::Queued,
        LatencyKind::WsFrame,
        LatencyKind::Decode,
        LatencyKind::ReadToQuote,
        LatencyKind::FrameToQuote,
    ];

    /// The parts of `ReadToDecoded`, in the order an event meets them (`PollToRead` comes
    /// before the read and is not in it).
    pub const READ_PARTS: [LatencyKind; 5] = [
        LatencyKind::SocketRead,
        LatencyKind::TlsOpen,
        LatencyKind::Queued,
        LatencyKind::WsFrame,
        LatencyKind::Decode,
    ];

    /// The per-stage kinds of tick-to-quote, in the order an event meets them.
    pub const STAGES: [LatencyKind; 4] = [
        LatencyKind::ReadToDecoded,
        LatencyKind::DecodedToBook,
        LatencyKind::BookToQuote,
        LatencyKind::QuoteToOrder,
    ];

    /// The interval-log tag (no spaces or commas, as the format requires).
    pub const fn tag(self) -> &'static str {
        match self {
            LatencyKind::Feed => "feed",
            LatencyKind::TickToQuote => "tick_to_quote",
            LatencyKind::OrderRoundTrip => "order_round_trip",
            LatencyKind::Loop => "loop",
            LatencyKind::ReadToDecoded => "stage_read_to_decoded",
            LatencyKind::DecodedToBook => "stage_decoded_to_book",
            LatencyKind::BookToQuote => "stage_book_to_quote",
            LatencyKind::QuoteToOrder => "stage_quote_to_order",
            LatencyKind::PollToRead => "stage_poll_to_read",
            LatencyKind::SocketRead => "stage_read_socket",
            LatencyKind::TlsOpen => "stage_read_tls_open",
            LatencyKind::Queued => "stage_read_queued",
            LatencyKind::WsFrame => "stage_read_ws_frame",
            LatencyKind::Decode => "stage_read_decode",
            LatencyKind::ReadToQuote => "read_to_quote",
            LatencyKind::FrameToQuote => "frame_to_quote",
        }
    }

    /// The kind with this tag.
    pub fn from_tag(tag: &str) -> Option<LatencyKind> {
        LatencyKind::ALL.into_iter().find(|k| k.tag() == tag)
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// One latency measurement as the hot thread sends it (`Copy`, 16 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LatencySample {
    /// What was measured.
    pub kind: LatencyKind,
    /// The latency, ns. Negative only for `Feed` when the local clock is behind the
    /// exchange's: recorded as 0 and counted in `LatencyStats::negative`.
    pub ns: i64,
}

/// What a histogram alone cannot tell.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyStats {
    /// Samples recorded.
    pub count: u64,
    /// Largest sample before clamping, ns.
    pub true_max_ns: u64,
    /// Samples above `LATENCY_NS_MAX`, recorded as `LATENCY_NS_MAX`.
    pub clamped: u64,
    /// Negative samples, recorded as 0.
    pub negative: u64,
}

impl LatencyStats {
    fn note(&mut self, ns: u64, clamped: bool, negative: bool) {
        self.count += 1;
        self.true_max_ns = self.true_max_ns.max(ns);
        self.clamped += u64::from(clamped);
        self.negative += u64::from(negative);
    }
}

/// The histograms of every kind: cumulative since `new`, and the current interval.
pub struct LatencyRecorder {
    series: [Series; LatencyKind::ALL.len()],
}

struct Series {
    total: Histogram<u64>,
    total_stats: LatencyStats,
    interval: Histogram<u64>,
    interval_stats: LatencyStats,
}

impl LatencyRecorder {
    /// Allocates two histograms per kind (~3.4 MB in all).
    pub fn new() -> LatencyRecorder {
        LatencyRecorder {
            series: std::array::from_fn(|_| new_series()),
        }
    }

    /// Records one sample of `kind`, ns. Never allocates.
    pub fn record(&mut self, kind: LatencyKind, ns: u64) {
        self.record_inner(kind, ns, false);
    }

    /// Records a signed sample: a negative one (clock skew) is recorded as 0 and counted.
    pub fn record_signed(&mut self, kind: LatencyKind, ns: i64) {
        self.record_inner(kind, ns.max(0).unsigned_abs(), ns < 0);
    }

    /// `record_signed(sample.kind, sample.ns)`.
    pub fn record_sample(&mut self, sample: LatencySample) {
        self.record_signed(sample.kind, sample.ns);
    }

    /// The cumulative histogram of `kind`, ns.
    pub fn histogram(&self, kind: LatencyKind) -> &Histogram<u64> {
        &self.series[kind.index()].total
    }

    /// The cumulative stats of `kind`.
    pub fn stats(&self, kind: LatencyKind) -> LatencyStats {
        self.series[kind.index()].total_stats
    }

    /// The histogram of `kind` since the last `reset_interval`, ns.
    pub fn interval_histogram(&self, kind: LatencyKind) -> &Histogram<u64> {
        &self.series[kind.index()].interval
    }

    /// The stats of `kind` since the last `reset_interval`.
    pub fn interval_stats(&self, kind: LatencyKind) -> LatencyStats {
        self.series[kind.index()].interval_stats
    }

    /// Starts a new interval (the log writer calls this after writing one).
    pub fn reset_interval(&mut self) {
        for series in &mut self.series {
            series.interval.reset();
            series.interval_stats = LatencyStats::default();
        }
    }

    /// Percentiles of the cumulative histogram of `kind`.
    pub fn summary(&self, kind: LatencyKind) -> LatencySummary {
        let stats = self.stats(kind);
        LatencySummary::of(kind.tag(), self.histogram(kind), stats.clamped, Some(stats))
    }

    /// `summary` of every kind, in `LatencyKind::ALL` order.
    pub fn summaries(&self) -> Vec<LatencySummary> {
        LatencyKind::ALL.iter().map(|&k| self.summary(k)).collect()
    }

    fn record_inner(&mut self, kind: LatencyKind, ns: u64, negative: bool) {
        let clamped = ns > LATENCY_NS_MAX;
        let value = ns.min(LATENCY_NS_MAX);
        let series = &mut self.series[kind.index()];
        series.total.saturating_record(value);
        series.interval.saturating_record(value);
        series.total_stats.note(ns, clamped, negative);
        series.interval_stats.note(ns, clamped, negative);
    }
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        LatencyRecorder::new()
    }
}

impl fmt::Debug for LatencyRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_map();
        for kind in LatencyKind::ALL {
            list.entry(&kind.tag(), &self.stats(kind));
        }
        list.finish()
    }
}

/// Count, percentiles and maximum of one histogram, ns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// The tag (a `LatencyKind::tag`, or whatever a foreign log used; "" when untagged).
    pub tag: String,
    /// Samples.
    pub count: u64,
    /// 50th percentile, ns.
    pub p50_ns: u64,
    /// 90th percentile, ns.
    pub p90_ns: u64,
    /// 99th percentile, ns.
    pub p99_ns: u64,
    /// 99.9th percentile, ns.
    pub p999_ns: u64,
    /// 99.99th percentile, ns.
    pub p9999_ns: u64,
    /// Maximum, ns: the true maximum where it is known, else the histogram's (to its
    /// resolution).
    pub max_ns: u64,
    /// Samples clamped to `LATENCY_NS_MAX` (their percentiles are understated).
    pub clamped: u64,
}

impl LatencySummary {
    /// Summarises `histogram`; `stats`, when known, gives the true maximum.
    pub fn of(
        tag: &str,
        histogram: &Histogram<u64>,
        clamped: u64,
        stats: Option<LatencyStats>,
    ) -> LatencySummary {
        let at = |q: f64| histogram.value_at_quantile(q);
        let hdr_max = if histogram.is_empty() {
            0
        } else {
            histogram.max()
        };
        LatencySummary {
            tag: tag.to_string(),
            count: histogram.len(),
            p50_ns: at(0.50),
            p90_ns: at(0.90),
            p99_ns: at(0.99),
            p999_ns: at(0.999),
            p9999_ns: at(0.9999),
            max_ns: stats
                .filter(|s| s.count > 0)
                .map_or(hdr_max, |s| s.true_max_ns),
            clamped,
        }
    }
}

/// A fixed-width table of summaries in microseconds, one row per tag, plus a note per tag
/// that had clamped samples.
pub fn render_latency_table(summaries: &[LatencySummary]) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "{:<18} {:>10} {:>11} {:>11} {:>11} {:>11} {:>11} {:>11}",
        "tag", "count", "p50 µs", "p90 µs", "p99 µs", "p99.9 µs", "p99.99 µs", "max µs"
    );
    for s in summaries {
        let us = |ns: u64| ns as f64 / 1_000.0;
        let _ = writeln!(
            text,
            "{:<18} {:>10} {:>11.2} {:>11.2} {:>11.2} {:>11.2} {:>11.2} {:>11.2}",
            display_tag(&s.tag),
            s.count,
            us(s.p50_ns),
            us(s.p90_ns),
            us(s.p99_ns),
            us(s.p999_ns),
            us(s.p9999_ns),
            us(s.max_ns),
        );
    }
    for s in summaries.iter().filter(|s| s.clamped > 0) {
        let _ = writeln!(
            text,
            "note: {}: {} samples above {} s were recorded as {} s (max above is the true one)",
            display_tag(&s.tag),
            s.clamped,
            LATENCY_NS_MAX / 1_000_000_000,
            LATENCY_NS_MAX / 1_000_000_000,
        );
    }
    text
}

/// `latency/<mode>_<SYMBOL>_<UTC time>.hlog` under `dir`, the time as `YYYYMMDDTHHMMSSZ`.
pub fn log_path(dir: &Path, mode: &str, symbol: &str, start_wall_ns: u64) -> PathBuf {
    dir.join(format!(
        "{mode}_{symbol}_{}.hlog",
        utc_compact(start_wall_ns)
    ))
}

/// The `.hgrm` table of `kind` beside the log: `<log stem>.<tag>.hgrm`.
pub fn hgrm_path(log_path: &Path, kind: LatencyKind) -> PathBuf {
    let stem = log_path
        .file_stem()
        .map_or_else(|| "latency".into(), |s| s.to_string_lossy());
    log_path.with_file_name(format!("{stem}.{}.hgrm", kind.tag()))
}

/// Appends interval histograms to an HdrHistogram interval log.
pub struct LatencyLogWriter {
    path: PathBuf,
    file: BufWriter<File>,
    serializer: V2DeflateSerializer,
    base_wall_ns: u64,
    interval_start_ns: u64,
    interval_ns: u64,
    intervals_written: u64,
}

impl LatencyLogWriter {
    /// Creates (truncates) the log at `path`, its folder too, and writes the header.
    /// `start_wall_ns` is the StartTime and BaseTime (wall ns since the epoch); `comment`
    /// (may hold several lines) goes first, e.g. "mm paper-trading BTCUSDT".
    pub fn create(
        path: &Path,
        start_wall_ns: u64,
        interval_ns: u64,
        comment: &str,
    ) -> io::Result<LatencyLogWriter> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent)?;
        }
        let mut file = BufWriter::new(File::create(path)?);
        let mut serializer = V2DeflateSerializer::new();
        let start = UNIX_EPOCH + Duration::from_nanos(start_wall_ns);
        let mut builder = IntervalLogWriterBuilder::new();
        if !comment.is_empty() {
            builder.add_comment(comment);
        }
        builder
            .add_comment("[Histogram log format version 1.3]")
            .with_start_time(start)
            .with_base_time(start);
        builder.begin_log_with(&mut file, &mut serializer)?;
        file.write_all(LEGEND.as_bytes())?;
        file.flush()?;
        Ok(LatencyLogWriter {
            path: path.to_path_buf(),
            file,
            serializer,
            base_wall_ns: start_wall_ns,
            interval_start_ns: start_wall_ns,
            interval_ns: interval_ns.max(1),
            intervals_written: 0,
        })
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Intervals written so far (an interval with no samples at all is not written).
    pub fn intervals_written(&self) -> u64 {
        self.intervals_written
    }

    /// Writes the current interval if `interval_ns` has passed since it began; true if it did.
    pub fn tick(&mut self, recorder: &mut LatencyRecorder, now_wall_ns: u64) -> io::Result<bool> {
        if now_wall_ns.saturating_sub(self.interval_start_ns) < self.interval_ns {
            return Ok(false);
        }
        self.write_interval(recorder, now_wall_ns)?;
        Ok(true)
    }

    /// Appends one line per kind that has samples in the current interval (which ends at
    /// `end_wall_ns`), flushes, and starts the next interval.
    pub fn write_interval(
        &mut self,
        recorder: &mut LatencyRecorder,
        end_wall_ns: u64,
    ) -> io::Result<()> {
        let start_ns = self.interval_start_ns;
        let end_ns = end_wall_ns.max(start_ns);
        let start_rel = Duration::from_nanos(start_ns.saturating_sub(self.base_wall_ns));
        let length = Duration::from_nanos(end_ns - start_ns);
        let mut wrote = false;
        {
            let mut log = IntervalLogWriterBuilder::new()
                .begin_log_with(&mut self.file, &mut self.serializer)?;
            for kind in LatencyKind::ALL {
                let histogram = recorder.interval_histogram(kind);
                if histogram.is_empty() {
                    continue;
                }
                let stats = recorder.interval_stats(kind);
                if stats.clamped > 0 {
                    log.write_comment(&format!(
                        "[Clamped tag={} count={} true_max_ns={}]",
                        kind.tag(),
                        stats.clamped,
                        stats.true_max_ns
                    ))?;
                }
                log.write_histogram(histogram, start_rel, length, Tag::new(kind.tag()))
                    .map_err(|e| io::Error::other(e.to_string()))?;
                wrote = true;
            }
        }
        self.file.flush()?;
        self.intervals_written += u64::from(wrote);
        recorder.reset_interval();
        self.interval_start_ns = end_ns;
        Ok(())
    }

    /// Writes the last interval, closes the log and writes one `.hgrm` table per kind that
    /// has samples. Returns every file written (the log first).
    pub fn finish(
        mut self,
        recorder: &mut LatencyRecorder,
        end_wall_ns: u64,
    ) -> io::Result<Vec<PathBuf>> {
        self.write_interval(recorder, end_wall_ns)?;
        self.file.flush()?;
        let mut written = vec![self.path.clone()];
        for kind in LatencyKind::ALL {
            let histogram = recorder.histogram(kind);
            if histogram.is_empty() {
                continue;
            }
            let path = hgrm_path(&self.path, kind);
            let mut out = BufWriter::new(File::create(&path)?);
            write_hgrm(&mut out, histogram, Some(recorder.stats(kind)))?;
            out.flush()?;
            written.push(path);
        }
        Ok(written)
    }
}

/// Writes `histogram` (ns) as a percentile-distribution table in microseconds, in
/// HdrHistogram's `.hgrm` layout (readable by its plotter): a "Value Percentile TotalCount
/// 1/(1-Percentile)" header, one row per quantile step (`HGRM_TICKS_PER_HALF` per half
/// distance to 100 %), the last row without the 1/(1-Percentile) column, then the
/// `#[Mean ..]`, `#[Max ..]`, `#[Buckets ..]` footer and a line with the true maximum and
/// the clamp count.
pub fn write_hgrm(
    out: &mut dyn Write,
    histogram: &Histogram<u64>,
    stats: Option<LatencyStats>,
) -> io::Result<()> {
    let digits = usize::from(histogram.sigfig());
    let scale = |ns: f64| ns / HGRM_UNIT_NS;
    writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    )?;
    let mut total: u64 = 0;
    for step in histogram.iter_quantiles(HGRM_TICKS_PER_HALF) {
        total += step.count_since_last_iteration();
        let value = scale(step.value_iterated_to() as f64);
        let quantile = step.quantile_iterated_to();
        if quantile < 1.0 {
            writeln!(
                out,
                "{value:>12.digits$} {quantile:>2.12} {total:>10} {:>14.2}",
                1.0 / (1.0 - quantile)
            )?;
        } else {
            writeln!(out, "{value:>12.digits$} {quantile:>2.12} {total:>10}")?;
        }
    }
    let max = if histogram.is_empty() {
        0
    } else {
        histogram.max()
    };
    writeln!(
        out,
        "#[Mean    = {:>12.digits$}, StdDeviation   = {:>12.digits$}]",
        scale(histogram.mean()),
        scale(histogram.stdev())
    )?;
    writeln!(
        out,
        "#[Max     = {:>12.digits$}, Total count    = {:>12}]",
        scale(max as f64),
        histogram.len()
    )?;
    let sub_buckets = (2 * 10u64.pow(u32::from(histogram.sigfig()))).next_power_of_two();
    writeln!(
        out,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        histogram.buckets(),
        sub_buckets
    )?;
    if let Some(stats) = stats {
        writeln!(
            out,
            "#[Values in microseconds (recorded in ns); true max = {:.3}, clamped = {}, negative = {}]",
            scale(stats.true_max_ns as f64),
            stats.clamped,
            stats.negative
        )?;
    }
    Ok(())
}

/// One interval histogram read back from a log.
#[derive(Clone, Debug)]
pub struct LoggedInterval {
    /// Its tag ("" when untagged).
    pub tag: String,
    /// Start, seconds since the log's BaseTime (or since the epoch if it has none).
    pub start: Duration,
    /// Length of the interval.
    pub length: Duration,
    /// The decoded histogram.
    pub histogram: Histogram<u64>,
    /// 1-based line of the log it came from.
    pub line: usize,
}

/// Every interval of a log, merged per tag.
#[derive(Clone, Debug)]
pub struct LatencyLog {
    /// Per tag ("" when untagged), in tag order.
    pub tags: BTreeMap<String, TagHistogram>,
    /// Interval lines read.
    pub intervals: usize,
    /// From the earliest interval start to the latest interval end.
    pub span: Duration,
}

/// The merged histogram of one tag.
#[derive(Clone, Debug)]
pub struct TagHistogram {
    /// Sum of the tag's interval histograms.
    pub histogram: Histogram<u64>,
    /// Interval lines with this tag.
    pub intervals: usize,
    /// Samples clamped to `LATENCY_NS_MAX` (from the `#[Clamped ..]` comments).
    pub clamped: u64,
    /// The largest true value of a clamped sample, ns (0 if none was clamped).
    pub clamped_max_ns: u64,
}

impl TagHistogram {
    /// Percentiles and maximum (the true maximum when a sample was clamped).
    pub fn summary(&self, tag: &str) -> LatencySummary {
        let mut summary = LatencySummary::of(tag, &self.histogram, self.clamped, None);
        summary.max_ns = summary.max_ns.max(self.clamped_max_ns);
        summary
    }
}

impl LatencyLog {
    /// Summaries of every tag, in tag order.
    pub fn summaries(&self) -> Vec<LatencySummary> {
        self.tags
            .iter()
            .map(|(tag, merged)| merged.summary(tag))
            .collect()
    }
}

/// Why a log could not be read.
#[derive(Debug)]
pub enum LatencyLogError {
    /// The file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A `.hgrm` percentile table was given where an interval log was expected.
    PercentileTable {
        /// The file.
        path: PathBuf,
    },
    /// A line is neither a comment, a header nor an interval histogram.
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
    },
    /// An interval's histogram is not valid base64.
    Base64 {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
    },
    /// An interval's histogram does not decode (not V2 / V2 compressed, or corrupt).
    Decode {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The decoder's complaint.
        source: DeserializeError,
    },
    /// The file holds no interval histogram at all.
    Empty {
        /// The file.
        path: PathBuf,
    },
}

impl fmt::Display for LatencyLogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LatencyLogError::Io { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            LatencyLogError::PercentileTable { path } => write!(
                f,
                "{} is a percentile table (.hgrm); pass the interval log (.hlog) beside it",
                path.display()
            ),
            LatencyLogError::Malformed { path, line } => write!(
                f,
                "{}:{line}: not an HdrHistogram interval log line (expected a comment, a \
                 header or `[Tag=..,]start,length,max,histogram`)",
                path.display()
            ),
            LatencyLogError::Base64 { path, line } => write!(
                f,
                "{}:{line}: the interval's histogram is not valid base64",
                path.display()
            ),
            LatencyLogError::Decode { path, line, source } => write!(
                f,
                "{}:{line}: the interval's histogram does not decode: {source}",
                path.display()
            ),
            LatencyLogError::Empty { path } => write!(
                f,
                "{} holds no interval histogram (an empty or header-only log)",
                path.display()
            ),
        }
    }
}

impl std::error::Error for LatencyLogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LatencyLogError::Io { source, .. } => Some(source),
            LatencyLogError::Decode { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Reads every interval histogram of an interval log, in file order.
pub fn read_intervals(path: &Path) -> Result<Vec<LoggedInterval>, LatencyLogError> {
    let bytes = read_bytes(path)?;
    let mut intervals = Vec::new();
    parse_intervals(path, &bytes, |interval| intervals.push(interval))?;
    if intervals.is_empty() {
        return Err(LatencyLogError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(intervals)
}

/// Reads an interval log and merges its histograms per tag.
pub fn read_log(path: &Path) -> Result<LatencyLog, LatencyLogError> {
    let bytes = read_bytes(path)?;
    let mut tags: BTreeMap<String, TagHistogram> = BTreeMap::new();
    let mut intervals = 0usize;
    let mut first_start: Option<Duration> = None;
    let mut last_end = Duration::ZERO;
    let mut merge_error: Option<LatencyLogError> = None;
    parse_intervals(path, &bytes, |interval| {
        intervals += 1;
        first_start = Some(first_start.map_or(interval.start, |s| s.min(interval.start)));
        last_end = last_end.max(interval.start + interval.length);
        match tags.get_mut(&interval.tag) {
            Some(merged) => {
                merged.intervals += 1;
                // Auto-resizing accumulator: adding a histogram of a wider range cannot fail.
                if merged.histogram.add(&interval.histogram).is_err() && merge_error.is_none() {
                    merge_error = Some(LatencyLogError::Malformed {
                        path: path.to_path_buf(),
                        line: interval.line,
                    });
                }
            }
            None => {
                let mut histogram = interval.histogram;
                histogram.auto(true);
                tags.insert(
                    interval.tag,
                    TagHistogram {
                        histogram,
                        intervals: 1,
                        clamped: 0,
                        clamped_max_ns: 0,
                    },
                );
            }
        }
    })?;
    if let Some(error) = merge_error {
        return Err(error);
    }
    if intervals == 0 {
        return Err(LatencyLogError::Empty {
            path: path.to_path_buf(),
        });
    }
    for (tag, count, true_max_ns) in clamp_notes(&bytes) {
        if let Some(merged) = tags.get_mut(&tag) {
            merged.clamped += count;
            merged.clamped_max_ns = merged.clamped_max_ns.max(true_max_ns);
        }
    }
    Ok(LatencyLog {
        tags,
        intervals,
        span: last_end.saturating_sub(first_start.unwrap_or(Duration::ZERO)),
    })
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, LatencyLogError> {
    let bytes = fs::read(path).map_err(|source| LatencyLogError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let looks_like_hgrm = path.extension().is_some_and(|e| e == "hgrm")
        || bytes.trim_ascii_start().starts_with(b"Value ")
            && bytes.windows(10).any(|w| w == b"Percentile");
    if looks_like_hgrm {
        return Err(LatencyLogError::PercentileTable {
            path: path.to_path_buf(),
        });
    }
    Ok(bytes)
}

/// Runs the crate's log iterator over `bytes` and decodes each interval.
fn parse_intervals(
    path: &Path,
    bytes: &[u8],
    mut each: impl FnMut(LoggedInterval),
) -> Result<(), LatencyLogError> {
    // The iterator needs every line, the last one included, to end in '\n'.
    let owned;
    let bytes = if bytes.last().is_some_and(|&b| b != b'\n') {
        owned = [bytes, b"\n"].concat();
        &owned[..]
    } else {
        bytes
    };
    let mut deserializer = Deserializer::new();
    let mut raw = Vec::new();
    for entry in IntervalLogIterator::new(bytes) {
        let interval = match entry {
            Ok(LogEntry::Interval(interval)) => interval,
            Ok(LogEntry::StartTime(_) | LogEntry::BaseTime(_)) => continue,
            Err(LogIteratorError::ParseError { offset }) => {
                return Err(LatencyLogError::Malformed {
                    path: path.to_path_buf(),
                    line: line_of(bytes, offset),
                });
            }
        };
        let encoded = interval.encoded_histogram();
        // The encoded text is a view into `bytes`: its address gives its line.
        let offset = (encoded.as_ptr() as usize).saturating_sub(bytes.as_ptr() as usize);
        let line = line_of(bytes, offset);
        if base64_decode(encoded.as_bytes(), &mut raw).is_err() {
            return Err(LatencyLogError::Base64 {
                path: path.to_path_buf(),
                line,
            });
        }
        let histogram: Histogram<u64> =
            deserializer
                .deserialize(&mut &raw[..])
                .map_err(|source| LatencyLogError::Decode {
                    path: path.to_path_buf(),
                    line,
                    source,
                })?;
        each(LoggedInterval {
            tag: interval
                .tag()
                .map_or_else(String::new, |t| t.as_str().to_string()),
            start: interval.start_timestamp(),
            length: interval.duration(),
            histogram,
            line,
        });
    }
    Ok(())
}

/// `(tag, count, true_max_ns)` of every `#[Clamped tag=.. count=.. true_max_ns=..]` line.
fn clamp_notes(bytes: &[u8]) -> Vec<(String, u64, u64)> {
    let text = String::from_utf8_lossy(bytes);
    let mut notes = Vec::new();
    for line in text.lines() {
        let Some(body) = line
            .strip_prefix(CLAMPED_PREFIX)
            .and_then(|b| b.strip_suffix(']'))
        else {
            continue;
        };
        let (mut tag, mut count, mut max) = (None, None, None);
        for field in body.split(' ') {
            match field.split_once('=') {
                Some(("tag", v)) => tag = Some(v.to_string()),
                Some(("count", v)) => count = v.parse::<u64>().ok(),
                Some(("true_max_ns", v)) => max = v.parse::<u64>().ok(),
                _ => {}
            }
        }
        if let (Some(tag), Some(count), Some(max)) = (tag, count, max) {
            notes.push((tag, count, max));
        }
    }
    notes
}

fn line_of(bytes: &[u8], offset: usize) -> usize {
    let end = offset.min(bytes.len());
    bytes[..end].iter().filter(|&&b| b == b'\n').count() + 1
}

/// Decodes standard base64 (RFC 4648 alphabet, `=` padding required) into `out`.
fn base64_decode(text: &[u8], out: &mut Vec<u8>) -> Result<(), ()> {
    out.clear();
    if text.len() % 4 != 0 {
        return Err(());
    }
    let groups = text.len() / 4;
    for (index, group) in text.chunks_exact(4).enumerate() {
        let last = index + 1 == groups;
        let mut bits: u32 = 0;
        let mut padding = 0usize;
        for (position, &c) in group.iter().enumerate() {
            let value = match c {
                b'A'..=b'Z' => c - b'A',
                b'a'..=b'z' => c - b'a' + 26,
                b'0'..=b'9' => c - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                b'=' if last && position >= 2 => {
                    padding += 1;
                    0
                }
                _ => return Err(()),
            };
            if padding > 0 && c != b'=' {
                return Err(()); // data after padding
            }
            bits = (bits << 6) | u32::from(value);
        }
        let [_, a, b, c] = bits.to_be_bytes();
        out.push(a);
        if padding < 2 {
            out.push(b);
        }
        if padding < 1 {
            out.push(c);
        }
    }
    Ok(())
}

fn new_series() -> Series {
    Series {
        total: new_histogram(),
        total_stats: LatencyStats::default(),
        interval: new_histogram(),
        interval_stats: LatencyStats::default(),
    }
}

#[allow(clippy::expect_used)]
pub(crate) fn new_histogram() -> Histogram<u64> {
    // INVARIANT: the bounds are constants that satisfy the crate's rules (low = 1 ≥ 1,
    // high = 6·10¹⁰ ≥ 2·low, 3 significant digits ≤ 5); `histogram_bounds_are_valid` tests it.
    Histogram::new_with_bounds(1, LATENCY_NS_MAX, LATENCY_SIGFIG)
        .expect("constant histogram bounds are valid")
}

fn display_tag(tag: &str) -> &str {
    if tag.is_empty() {
        "(untagged)"
    } else {
        tag
    }
}

/// `YYYYMMDDTHHMMSSZ` of a wall time in ns since the epoch.
fn utc_compact(wall_ns: u64) -> String {
    let ns = i64::try_from(wall_ns).unwrap_or(i64::MAX);
    let time: DateTime<Utc> = DateTime::from_timestamp_nanos(ns);
    time.format("%Y%m%dT%H%M%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    use hdrhistogram::serialization::{Serializer, V2Serializer};

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mm-latency-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn histogram_bounds_are_valid() {
        let h = Histogram::<u64>::new_with_bounds(1, LATENCY_NS_MAX, LATENCY_SIGFIG);
        assert!(h.is_ok());
    }

    #[test]
    fn tags_round_trip_and_are_valid_log_tags() {
        for kind in LatencyKind::ALL {
            assert_eq!(LatencyKind::from_tag(kind.tag()), Some(kind));
            assert!(Tag::new(kind.tag()).is_some());
        }
        assert_eq!(LatencyKind::from_tag("nope"), None);
    }

    #[test]
    fn record_keeps_true_max_clamps_and_negatives() {
        let mut rec = LatencyRecorder::new();
        rec.record(LatencyKind::TickToQuote, 1_000);
        rec.record(LatencyKind::TickToQuote, LATENCY_NS_MAX + 5_000_000_000);
        rec.record_signed(LatencyKind::Feed, -250);
        rec.record_sample(LatencySample {
            kind: LatencyKind::Feed,
            ns: 2_000,
        });
        let t2q = rec.stats(LatencyKind::TickToQuote);
        assert_eq!(t2q.count, 2);
        assert_eq!(t2q.clamped, 1);
        assert_eq!(t2q.true_max_ns, LATENCY_NS_MAX + 5_000_000_000);
        let h = rec.histogram(LatencyKind::TickToQuote);
        assert_eq!(h.len(), 2);
        assert!(h.equivalent(h.max(), LATENCY_NS_MAX));
        let feed = rec.stats(LatencyKind::Feed);
        assert_eq!((feed.count, feed.negative, feed.true_max_ns), (2, 1, 2_000));
        assert_eq!(rec.histogram(LatencyKind::Feed).min(), 0);
        let summary = rec.summary(LatencyKind::TickToQuote);
        assert_eq!(summary.max_ns, LATENCY_NS_MAX + 5_000_000_000);
        assert_eq!(summary.clamped, 1);
        // The interval copy matches until reset, the total survives the reset.
        assert_eq!(rec.interval_histogram(LatencyKind::TickToQuote).len(), 2);
        rec.reset_interval();
        assert!(rec.interval_histogram(LatencyKind::TickToQuote).is_empty());
        assert_eq!(rec.interval_stats(LatencyKind::TickToQuote).count, 0);
        assert_eq!(rec.histogram(LatencyKind::TickToQuote).len(), 2);
    }

    #[test]
    fn summary_percentiles_of_a_uniform_ramp() {
        let mut rec = LatencyRecorder::new();
        for v in 1..=10_000u64 {
            rec.record(LatencyKind::Loop, v * 1_000); // 1 µs .. 10 ms
        }
        let s = rec.summary(LatencyKind::Loop);
        let h = rec.histogram(LatencyKind::Loop);
        assert_eq!(s.count, 10_000);
        assert!(h.equivalent(s.p50_ns, 5_000_000));
        assert!(h.equivalent(s.p90_ns, 9_000_000));
        assert!(h.equivalent(s.p99_ns, 9_900_000));
        assert!(h.equivalent(s.p999_ns, 9_990_000));
        assert_eq!(s.max_ns, 10_000_000);
        let table = render_latency_table(&[s]);
        assert!(table.contains("p99.99 µs"), "{table}");
        assert!(table.lines().nth(1).unwrap().starts_with("loop"), "{table}");
    }

    #[test]
    fn base64_matches_known_vectors_and_refuses_garbage() {
        let mut out = Vec::new();
        for (text, bytes) in [
            ("", &b""[..]),
            ("Zg==", b"f"),
            ("Zm8=", b"fo"),
            ("Zm9v", b"foo"),
            ("Zm9vYmFy", b"foobar"),
            ("+/8=", &[0xfb, 0xff][..]),
        ] {
            base64_decode(text.as_bytes(), &mut out).unwrap();
            assert_eq!(out, bytes, "{text}");
        }
        for bad in ["Zg=", "Z===", "Zg=a", "Zm9v!A==", "Zg==Zg=="] {
            assert!(base64_decode(bad.as_bytes(), &mut out).is_err(), "{bad}");
        }
    }

    #[test]
    fn log_path_and_hgrm_path_shapes() {
        // 2026-01-01T00:00:00Z
        let path = log_path(
            Path::new("latency"),
            "paper-trading",
            "BTCUSDT",
            1_767_225_600_000_000_000,
        );
        assert_eq!(
            path,
            Path::new("latency/paper-trading_BTCUSDT_20260101T000000Z.hlog")
        );
        assert_eq!(
            hgrm_path(&path, LatencyKind::TickToQuote),
            Path::new("latency/paper-trading_BTCUSDT_20260101T000000Z.tick_to_quote.hgrm")
        );
    }

    #[test]
    fn log_round_trip_interval_by_interval() {
        let dir = temp_dir("roundtrip");
        let path = dir.join("t.hlog");
        let base = 1_767_225_600_000_000_000u64;
        let mut rec = LatencyRecorder::new();
        let mut writer = LatencyLogWriter::create(&path, base, 1_000_000_000, "mm test").unwrap();
        for v in 1..=100u64 {
            rec.record(LatencyKind::TickToQuote, v * 10_000);
        }
        rec.record(LatencyKind::Feed, LATENCY_NS_MAX * 2);
        assert!(!writer.tick(&mut rec, base + 999_999_999).unwrap());
        assert!(writer.tick(&mut rec, base + 1_000_000_000).unwrap());
        for v in 1..=50u64 {
            rec.record(LatencyKind::TickToQuote, v * 1_000_000);
        }
        let files = writer.finish(&mut rec, base + 1_500_000_000).unwrap();
        assert_eq!(files[0], path);
        assert_eq!(files.len(), 3); // the log + feed + tick_to_quote tables

        let intervals = read_intervals(&path).unwrap();
        let tags: Vec<_> = intervals.iter().map(|i| i.tag.as_str()).collect();
        assert_eq!(tags, ["feed", "tick_to_quote", "tick_to_quote"]);
        assert_eq!(intervals[1].start, Duration::ZERO);
        assert_eq!(intervals[1].length, Duration::from_secs(1));
        assert_eq!(intervals[1].histogram.len(), 100);
        assert_eq!(intervals[2].start, Duration::from_secs(1));
        assert_eq!(intervals[2].length, Duration::from_millis(500));
        assert_eq!(intervals[2].histogram.len(), 50);

        let log = read_log(&path).unwrap();
        assert_eq!(log.intervals, 3);
        assert_eq!(log.span, Duration::from_millis(1_500));
        let t2q = &log.tags["tick_to_quote"];
        assert_eq!(t2q.intervals, 2);
        let total = rec.histogram(LatencyKind::TickToQuote);
        assert_eq!(t2q.histogram.len(), total.len());
        for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(
                t2q.histogram.value_at_quantile(q),
                total.value_at_quantile(q),
                "q={q}"
            );
        }
        let feed = log.tags["feed"].summary("feed");
        assert_eq!(feed.clamped, 1);
        assert_eq!(feed.max_ns, LATENCY_NS_MAX * 2);

        let hgrm = fs::read_to_string(hgrm_path(&path, LatencyKind::TickToQuote)).unwrap();
        let first = hgrm.lines().next().unwrap();
        assert_eq!(
            first,
            "       Value     Percentile TotalCount 1/(1-Percentile)"
        );
        assert!(hgrm.contains("#[Max     ="), "{hgrm}");
        assert!(hgrm.contains("Total count    =          150]"), "{hgrm}");
        let last_row = hgrm
            .lines()
            .rfind(|l| !l.starts_with('#') && !l.trim().is_empty())
            .unwrap();
        // The 100 % row: value, quantile 1, cumulative count, and no fourth column.
        let cols: Vec<_> = last_row.split_whitespace().collect();
        assert_eq!(cols.len(), 3, "{last_row}");
        assert_eq!(cols[1], "1.000000000000");
        assert_eq!(cols[2], "150");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reads_foreign_untagged_v2_intervals() {
        let dir = temp_dir("foreign");
        let path = dir.join("foreign.hlog");
        let mut h = Histogram::<u64>::new_with_bounds(1, 1_000_000, 3).unwrap();
        h.record(42).unwrap();
        h.record(4_200).unwrap();
        let mut raw = Vec::new();
        V2Serializer::new().serialize(&h, &mut raw).unwrap();
        let mut buf = Vec::new();
        {
            let mut ser = V2Serializer::new();
            let mut w = IntervalLogWriterBuilder::new()
                .begin_log_with(&mut buf, &mut ser)
                .unwrap();
            w.write_histogram(&h, Duration::from_secs(5), Duration::from_secs(1), None)
                .unwrap();
        }
        // No trailing newline: the reader must cope.
        buf.pop();
        fs::write(&path, &buf).unwrap();
        let log = read_log(&path).unwrap();
        let merged = &log.tags[""];
        assert_eq!(merged.histogram.len(), 2);
        assert!(render_latency_table(&log.summaries()).contains("(untagged)"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn malformed_logs_name_the_line() {
        let dir = temp_dir("malformed");
        let garbage = dir.join("garbage.hlog");
        fs::write(&garbage, "#comment\nhello world\n").unwrap();
        match read_log(&garbage) {
            Err(LatencyLogError::Malformed { line, .. }) => assert_eq!(line, 2),
            other => panic!("{other:?}"),
        }
        let bad64 = dir.join("bad64.hlog");
        fs::write(&bad64, "#c\n#c\nTag=a,0.000,1.000,2.000,@@@@\n").unwrap();
        match read_log(&bad64) {
            Err(LatencyLogError::Base64 { line, .. }) => assert_eq!(line, 3),
            other => panic!("{other:?}"),
        }
        let undecodable = dir.join("undecodable.hlog");
        fs::write(&undecodable, "Tag=a,0.000,1.000,2.000,Zm9vYmFy\n").unwrap();
        assert!(matches!(
            read_log(&undecodable),
            Err(LatencyLogError::Decode { line: 1, .. })
        ));
        let empty = dir.join("empty.hlog");
        fs::write(&empty, "#[Histogram log format version 1.3]\n").unwrap();
        assert!(matches!(
            read_log(&empty),
            Err(LatencyLogError::Empty { .. })
        ));
        let missing = dir.join("missing.hlog");
        let err = read_log(&missing).unwrap_err();
        assert!(matches!(err, LatencyLogError::Io { .. }));
        assert!(err.to_string().contains("missing.hlog"), "{err}");
        let table = dir.join("t.hgrm");
        fs::write(
            &table,
            "       Value     Percentile TotalCount 1/(1-Percentile)\n",
        )
        .unwrap();
        assert!(matches!(
            read_log(&table),
            Err(LatencyLogError::PercentileTable { .. })
        ));
        fs::remove_dir_all(&dir).unwrap();
    }
}
