//! The console report and the KPI snapshot file.
//!
//! Owns: `render_report` (the seed's "📊 BTCUSDT Performance Report" block: mid,
//! inventory, quotes, fills and fill ratio, spread, the fee tier, PnL split into spread and
//! inventory PnL, edge at fill and markout, "KPI Status: n/6 targets met" and one ✅/❌
//! line per KPI with value and target, or "n/a (not met)" and why), and the snapshot file
//! (`kpi/<SYMBOL>.json`, the `KpiSnapshot` as JSON) that `--mode=kpi` shows.
//!
//! Invariant: the snapshot file is never seen half-written — `write_snapshot` writes a
//! temporary file in the same folder, syncs it, and renames it over the old one (atomic on
//! POSIX file systems).
//!
//! Side thread and cold paths only (formats text, does file I/O). Never reads the clock.

use std::fmt::{self, Write as _};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::telemetry::kpi::{KpiKind, KpiSnapshot, KpiStatus, NotJudged, SNAPSHOT_VERSION};

/// Folder of the snapshot files.
pub const KPI_DIR: &str = "kpi";

/// Quote assets recognised when splitting a symbol into base and quote for display
/// (longest first so that `FDUSD` wins over `USD`-like tails).
const QUOTE_ASSETS: [&str; 12] = [
    "FDUSD", "USDT", "USDC", "TUSD", "BUSD", "EUR", "TRY", "BRL", "BTC", "ETH", "BNB", "JPY",
];

/// The seed-shaped report block. `title` goes in brackets after the heading: "Real-time"
/// in paper and live trading, "Backtest" at the end of a backtest.
pub fn render_report(snapshot: &KpiSnapshot, title: &str) -> String {
    let (base, quote) = split_symbol(&snapshot.symbol);
    let price_decimals = snapshot.price_decimals.min(8) as usize;
    let qty_decimals = snapshot.qty_decimals.min(8) as usize;
    let money_decimals = (price_decimals + 2).clamp(2, 8);
    let mut text = String::new();
    let t = &mut text;
    let _ = writeln!(t, "📊 {} Performance Report ({title})", snapshot.symbol);
    let _ = writeln!(t, "{}", "=".repeat(56));
    let mid = snapshot.mid.map_or_else(
        || "n/a".to_string(),
        |m| format!("{m:.price_decimals$} {quote}"),
    );
    let _ = writeln!(t, "Current Mid:    {mid}");
    let limit_in_quotes =
        snapshot
            .quote_size_base
            .filter(|q| *q > 0.0)
            .map_or_else(String::new, |q| {
                format!(
                    " = {} quote sizes",
                    trim_number(snapshot.inventory_max_base / q)
                )
            });
    let _ = writeln!(
        t,
        "Inventory:      {:+.qty_decimals$} {base} (limit {:.qty_decimals$}{limit_in_quotes})",
        snapshot.inventory_base, snapshot.inventory_max_base
    );
    let _ = writeln!(t, "Total Quotes:   {}", snapshot.quotes);
    let fill_ratio = snapshot
        .kpi(KpiKind::FillRatio)
        .and_then(|k| k.measured)
        .map_or_else(|| "n/a".to_string(), |r| format!("{:.2}%", r * 100.0));
    let _ = writeln!(
        t,
        "Total Fills:    {} ({} orders filled of {} placed; fill ratio {fill_ratio})",
        snapshot.fills, snapshot.orders_with_fill, snapshot.orders_placed
    );
    let spread = snapshot
        .avg_spread_bps
        .map_or_else(|| "n/a".to_string(), |s| format!("{s:.2}"));
    let _ = writeln!(t, "Spread (bps):   {spread}");
    let _ = writeln!(t, "Fee tier:       {}", fee_tier_text(snapshot, quote));
    let pnl = snapshot.pnl_quote.map_or_else(
        || "n/a (inventory but no mid yet)".to_string(),
        |p| format!("{p:+.money_decimals$} {quote}"),
    );
    let _ = writeln!(
        t,
        "PnL:            {pnl} (fees {:.money_decimals$}, max drawdown {:.money_decimals$})",
        snapshot.fees_quote, snapshot.max_drawdown_quote
    );
    let inventory_pnl = snapshot
        .inventory_pnl_quote
        .map_or_else(|| "n/a".to_string(), |p| format!("{p:+.money_decimals$}"));
    let _ = writeln!(
        t,
        "  split:        spread {:+.money_decimals$} (net of fees) + inventory {inventory_pnl} {quote}",
        snapshot.spread_pnl_quote
    );
    let bps = |v: Option<f64>| v.map_or_else(|| "n/a".to_string(), |v| format!("{v:+.2} bps"));
    let _ = writeln!(
        t,
        "Edge at fill:   {} before fees; markout ({:.1} s) {}",
        bps(snapshot.edge_at_fill_bps),
        snapshot.markout_horizon_s,
        bps(snapshot.markout_bps),
    );
    let _ = writeln!(t, "Elapsed:        {}", duration_text(snapshot.elapsed_s));
    let _ = writeln!(
        t,
        "KPI Status: {}/{} targets met",
        snapshot.targets_met(),
        KpiKind::ALL.len()
    );
    for status in &snapshot.kpis {
        let why = status.not_judged.map_or_else(String::new, |why| {
            format!(
                "   ({})",
                not_judged_text(why, status, snapshot, money_decimals, quote)
            )
        });
        let _ = writeln!(
            t,
            "  {} {:<16} {:>16}   target {}{why}",
            if status.met { "✅" } else { "❌" },
            status.kind.name(),
            kpi_value_text(status, money_decimals, quote),
            kpi_target_text(status, quote),
        );
    }
    let _ = writeln!(t, "  latency: {}", snapshot.latency_kpi_source);
    let markouts = snapshot.markouts_exact
        + snapshot.markouts_pending
        + snapshot.markouts_at_end
        + snapshot.markouts_forced;
    if markouts > 0 {
        let _ = writeln!(
            t,
            "Markouts ({:.1} s): {} exact, {} pending, {} at end with the last mid, {} forced early",
            snapshot.markout_horizon_s,
            snapshot.markouts_exact,
            snapshot.markouts_pending,
            snapshot.markouts_at_end,
            snapshot.markouts_forced,
        );
    }
    if snapshot.markouts_unresolved > 0 {
        let _ = writeln!(
            t,
            "⚠ {} fills never saw a mid and are left out of the spread captured",
            snapshot.markouts_unresolved
        );
    }
    if snapshot.records_dropped > 0 {
        let _ = writeln!(
            t,
            "⚠ {} telemetry records were dropped (full channel): the KPIs undercount",
            snapshot.records_dropped
        );
    }
    text
}

/// `kpi/<SYMBOL>.json`, relative to the working directory.
pub fn default_snapshot_path(symbol: &str) -> PathBuf {
    Path::new(KPI_DIR).join(format!("{}.json", symbol.to_ascii_uppercase()))
}

/// Writes `snapshot` as JSON to `path` atomically: a temporary file in the same folder
/// (created if missing), synced, then renamed over `path`.
pub fn write_snapshot(path: &Path, snapshot: &KpiSnapshot) -> Result<(), SnapshotError> {
    let io_error = |source| SnapshotError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut json =
        serde_json::to_vec_pretty(snapshot).map_err(|source| SnapshotError::Malformed {
            path: path.to_path_buf(),
            source,
        })?;
    json.push(b'\n');
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = dir {
        fs::create_dir_all(dir).map_err(io_error)?;
    }
    let temp = temp_path(path);
    let written = File::create(&temp).and_then(|mut file| {
        file.write_all(&json)?;
        file.sync_all()
    });
    let renamed = written.and_then(|()| fs::rename(&temp, path));
    if let Err(source) = renamed {
        let _ = fs::remove_file(&temp);
        return Err(io_error(source));
    }
    Ok(())
}

/// Reads a snapshot file. A missing file is `SnapshotError::Missing`, whose message tells
/// the user to start paper trading or live first.
pub fn read_snapshot(path: &Path) -> Result<KpiSnapshot, SnapshotError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(SnapshotError::Missing {
                path: path.to_path_buf(),
            })
        }
        Err(source) => {
            return Err(SnapshotError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let malformed = |source| SnapshotError::Malformed {
        path: path.to_path_buf(),
        source,
    };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(malformed)?;
    let version = value.get("version").and_then(serde_json::Value::as_u64);
    if version != Some(u64::from(SNAPSHOT_VERSION)) {
        return Err(SnapshotError::Version {
            path: path.to_path_buf(),
            found: version,
        });
    }
    serde_json::from_value(value).map_err(malformed)
}

/// Why a snapshot could not be written or read.
#[derive(Debug)]
pub enum SnapshotError {
    /// No snapshot file (no trading session has written one).
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// The file could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Not a KPI snapshot (invalid JSON or missing fields).
    Malformed {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// Written by another version of mm.
    Version {
        /// The file.
        path: PathBuf,
        /// Its `version` field, if any.
        found: Option<u64>,
    },
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SnapshotError::Missing { path } => write!(
                f,
                "no KPI snapshot at {} — start paper trading or live first",
                path.display()
            ),
            SnapshotError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            SnapshotError::Malformed { path, source } => {
                write!(f, "{} is not a KPI snapshot: {source}", path.display())
            }
            SnapshotError::Version { path, found } => write!(
                f,
                "{} has snapshot version {}, this mm reads version {SNAPSHOT_VERSION}",
                path.display(),
                found.map_or_else(|| "none".to_string(), |v| v.to_string())
            ),
        }
    }
}

impl std::error::Error for SnapshotError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SnapshotError::Io { source, .. } => Some(source),
            SnapshotError::Malformed { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// "maker 10.00 bps (paid 10.00 bps of 123.24 USDT traded)".
fn fee_tier_text(snapshot: &KpiSnapshot, quote: &str) -> String {
    let tier = snapshot
        .maker_fee_bps
        .map_or_else(|| "not stated".to_string(), |f| format!("maker {f:.2} bps"));
    match snapshot.fee_paid_bps {
        Some(paid) => format!(
            "{tier} (paid {paid:.2} bps of {:.2} {quote} traded)",
            snapshot.volume_quote
        ),
        None => format!("{tier} (nothing traded)"),
    }
}

/// Why a KPI is n/a, with the figure as measured: "2 filled orders < 5; measured 0.0%".
fn not_judged_text(
    why: NotJudged,
    status: &KpiStatus,
    snapshot: &KpiSnapshot,
    money_decimals: usize,
    quote: &str,
) -> String {
    let least = &snapshot.activity_min;
    let reason = match why {
        NotJudged::NoData => return "no data".to_string(),
        NotJudged::TooFewOrders => format!(
            "{} orders placed < {}",
            snapshot.orders_placed, least.orders_placed
        ),
        NotJudged::TooFewFilledOrders => format!(
            "{} orders filled < {}",
            snapshot.orders_with_fill, least.orders_filled
        ),
        NotJudged::TooShort => format!(
            "{} < {}",
            duration_text(snapshot.elapsed_s),
            duration_text(least.elapsed_ns as f64 / 1e9)
        ),
        NotJudged::TooFewSamples => {
            format!("fewer than {} latency samples", least.latency_samples)
        }
    };
    match status.measured {
        Some(v) => format!(
            "too little activity: {reason}; measured {}",
            number_text(status.kind, v, money_decimals, quote)
        ),
        None => format!("too little activity: {reason}"),
    }
}

/// The KPI's value in its display unit, or "n/a (not met)".
fn kpi_value_text(status: &KpiStatus, money_decimals: usize, quote: &str) -> String {
    match status.value {
        Some(v) => number_text(status.kind, v, money_decimals, quote),
        None => "n/a (not met)".to_string(),
    }
}

/// A KPI figure in its display unit.
fn number_text(kind: KpiKind, v: f64, money_decimals: usize, quote: &str) -> String {
    match kind {
        KpiKind::SpreadCaptured | KpiKind::CancelRatio => format!("{:.1}%", v * 100.0),
        KpiKind::FillRatio => format!("{:.2}%", v * 100.0),
        KpiKind::RmsInventory => format!("{v:.3}"),
        KpiKind::LatencyP99 => format!("{v:.3} ms"),
        KpiKind::TotalPnl => format!("{v:+.money_decimals$} {quote}"),
    }
}

/// "≥ 70%", "≤ 0.40", "≤ 300 ms", "> 0 USDT".
fn kpi_target_text(status: &KpiStatus, quote: &str) -> String {
    let op = status.kind.comparison().symbol();
    let v = status.target;
    match status.kind {
        KpiKind::SpreadCaptured | KpiKind::FillRatio | KpiKind::CancelRatio => {
            format!("{op} {}%", trim_number(v * 100.0))
        }
        KpiKind::RmsInventory => format!("{op} {v:.2}"),
        KpiKind::LatencyP99 => format!("{op} {} ms", trim_number(v)),
        KpiKind::TotalPnl => format!("{op} {} {quote}", trim_number(v)),
    }
}

/// A number without trailing zeros (70, 0.5, 2.25), to two decimals at most.
fn trim_number(v: f64) -> String {
    let text = format!("{v:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_string()
    } else {
        text.to_string()
    }
}

/// `1h 02m 03s`, `4m 05s`, `6.0s`.
fn duration_text(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 60.0 {
        return format!("{:.1}s", seconds.max(0.0));
    }
    let total = seconds as u64;
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
    if h > 0 {
        format!("{h}h {m:02}m {s:02}s")
    } else {
        format!("{m}m {s:02}s")
    }
}

/// (base, quote) of a symbol for display: `BTCUSDT` → (`BTC`, `USDT`); an unknown quote
/// asset gives ("base", "quote").
fn split_symbol(symbol: &str) -> (&str, &str) {
    for quote in QUOTE_ASSETS {
        if let Some(base) = symbol.strip_suffix(quote) {
            if !base.is_empty() {
                return (base, quote);
            }
        }
    }
    ("base", "quote")
}

/// `<dir>/.<name>.tmp-<pid>-<n>`: unique per process and call.
fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map_or_else(|| "snapshot".into(), |n| n.to_string_lossy());
    path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    use crate::telemetry::kpi::{
        FillRecord, KpiParams, KpiTracker, MidSample, OrderCounts, QuoteSample,
    };
    use crate::telemetry::latency::LatencyKind;
    use crate::types::{Price, Qty, Side, Symbol, SymbolSpec};

    const S: u64 = 1_000_000_000;

    fn sample_snapshot() -> KpiSnapshot {
        let spec =
            SymbolSpec::from_decimals(Symbol::new("BTCUSDT").unwrap(), "0.01", "0.00001", "5")
                .unwrap();
        let mut params = KpiParams::new(spec, "paper-trading", Qty(100_000));
        params.quote_size_lots = Qty(100);
        params.maker_fee_bps = Some(0.0);
        let mut t = KpiTracker::new(params, 0).unwrap();
        t.on_mid(MidSample {
            ts_ns: 0,
            mid_half_ticks: 12_000_000,
        });
        t.on_quote(QuoteSample {
            ts_ns: 0,
            bid: Price(5_999_900),
            ask: Price(6_000_100),
        });
        t.on_fill(FillRecord {
            ts_ns: 0,
            side: Side::Buy,
            price: Price(5_999_900),
            qty: Qty(100),
            fee_quote_atoms: 0,
            quoted_half_spread_half_ticks: 200,
            mid_half_ticks: 12_000_000,
            order_id: 7,
        });
        t.on_mid(MidSample {
            ts_ns: S,
            mid_half_ticks: 12_000_100,
        });
        t.on_counts(OrderCounts {
            quotes: 400,
            orders_placed: 40,
            cancels: 36,
            replaces: 0,
            fills: 9,
            orders_with_fill: 8,
            rejects: 0,
        });
        for _ in 0..100 {
            t.latency_mut().record(LatencyKind::TickToQuote, 20_000);
        }
        t.snapshot(120 * S)
    }

    #[test]
    fn report_has_the_seed_shape_and_every_kpi() {
        let snap = sample_snapshot();
        let text = render_report(&snap, "Real-time");
        assert!(
            text.starts_with("📊 BTCUSDT Performance Report (Real-time)\n"),
            "{text}"
        );
        for needle in [
            "Current Mid:    60000.50 USDT",
            "Inventory:      +0.00100 BTC (limit 1.00000 = 1000 quote sizes)",
            "Total Quotes:   400",
            "Total Fills:    9 (8 orders filled of 40 placed; fill ratio 20.00%)",
            "Spread (bps):   0.33",
            "Fee tier:       maker 0.00 bps (paid 0.00 bps of 60.00 USDT traded)",
            "PnL:            +0.0015 USDT",
            "  split:        spread +0.0010 (net of fees) + inventory +0.0005 USDT",
            "Edge at fill:   +0.17 bps before fees; markout (1.0 s) +0.25 bps",
            "Elapsed:        2m 00s",
            "  latency: tick-to-quote, measured",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        // Spread captured: edge at fill 200 of 200 half ticks → 100 % ✅; RMS tiny ✅;
        // fill ratio 20 % ✅; cancel ratio 90 % ❌; latency 0.02 ms ✅; PnL ✅.
        assert_eq!(snap.targets_met(), 5);
        assert!(text.contains("KPI Status: 5/6 targets met"), "{text}");
        let kpi_lines: Vec<_> = text
            .lines()
            .filter(|l| l.starts_with("  ✅") || l.starts_with("  ❌"))
            .collect();
        assert_eq!(kpi_lines.len(), 6, "{text}");
        for (line, kind) in kpi_lines.iter().zip(KpiKind::ALL) {
            assert!(line.contains(kind.name()), "{line}");
            assert!(line.contains("target"), "{line}");
        }
        assert!(kpi_lines[0].contains("100.0%") && kpi_lines[0].contains("≥ 70%"));
        assert!(kpi_lines[3].starts_with("  ❌") && kpi_lines[3].contains("90.0%"));
        assert!(kpi_lines[3].contains("≤ 70%"));
        assert!(kpi_lines[4].contains("0.020 ms") && kpi_lines[4].contains("≤ 300 ms"));
        assert!(kpi_lines[5].contains("> 0 USDT"));
        assert!(text.contains("Markouts (1.0 s): 1 exact"), "{text}");
    }

    #[test]
    fn report_without_data_says_n_a() {
        let mut snap = sample_snapshot();
        for k in &mut snap.kpis {
            k.value = None;
            k.met = false;
            k.not_judged = Some(NotJudged::TooFewFilledOrders);
        }
        snap.orders_with_fill = 2;
        snap.mid = None;
        snap.avg_spread_bps = None;
        snap.records_dropped = 3;
        let text = render_report(&snap, "Backtest");
        assert!(text.contains("(Backtest)"));
        assert!(text.contains("KPI Status: 0/6 targets met"), "{text}");
        assert!(text.contains("Current Mid:    n/a"));
        assert_eq!(text.matches("❌").count(), 6);
        assert_eq!(text.matches("n/a (not met)").count(), 6, "{text}");
        assert!(
            text.contains("(too little activity: 2 orders filled < 5; measured 90.0%)"),
            "{text}"
        );
        assert!(text.contains("3 telemetry records were dropped"));
    }

    #[test]
    fn default_path_and_symbol_split() {
        assert_eq!(
            default_snapshot_path("btcusdt"),
            Path::new("kpi/BTCUSDT.json")
        );
        assert_eq!(split_symbol("ETHBTC"), ("ETH", "BTC"));
        assert_eq!(split_symbol("BTCFDUSD"), ("BTC", "FDUSD"));
        assert_eq!(split_symbol("XYZ"), ("base", "quote"));
        assert_eq!(duration_text(3723.0), "1h 02m 03s");
        assert_eq!(duration_text(245.0), "4m 05s");
        assert_eq!(trim_number(5.0), "5");
        assert_eq!(trim_number(0.25), "0.25");
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mm-report-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn snapshot_round_trips_through_the_file() {
        let dir = temp_dir("roundtrip");
        let path = dir.join("kpi").join("BTCUSDT.json");
        let snap = sample_snapshot();
        write_snapshot(&path, &snap).unwrap();
        assert_eq!(read_snapshot(&path).unwrap(), snap);
        // Only the snapshot is left in the folder: no temporary file.
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["BTCUSDT.json"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn snapshot_errors_are_clear() {
        let dir = temp_dir("errors");
        fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("BTCUSDT.json");
        let err = read_snapshot(&missing).unwrap_err();
        assert!(matches!(err, SnapshotError::Missing { .. }));
        assert!(err
            .to_string()
            .ends_with("BTCUSDT.json — start paper trading or live first"));
        let bad = dir.join("bad.json");
        fs::write(&bad, "{ not json").unwrap();
        assert!(matches!(
            read_snapshot(&bad),
            Err(SnapshotError::Malformed { .. })
        ));
        fs::write(&bad, "{\"version\": 99}").unwrap();
        assert!(matches!(
            read_snapshot(&bad),
            Err(SnapshotError::Version {
                found: Some(99),
                ..
            })
        ));
        fs::write(&bad, format!("{{\"version\": {SNAPSHOT_VERSION}}}")).unwrap();
        assert!(matches!(
            read_snapshot(&bad),
            Err(SnapshotError::Malformed { .. })
        ));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn readers_never_see_a_half_written_snapshot() {
        let dir = temp_dir("atomic");
        let path = dir.join("BTCUSDT.json");
        let mut snap = sample_snapshot();
        // Make the file large enough that a non-atomic write would be caught mid-way.
        snap.latency = (0..200).map(|_| snap.latency[0].clone()).collect();
        write_snapshot(&path, &snap).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (path, stop) = (path.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // Every read parses completely; a torn file would be `Malformed`.
                    let read = read_snapshot(&path).unwrap();
                    assert_eq!(read.latency.len(), 200);
                    reads += 1;
                }
                reads
            })
        };
        for i in 0..200u64 {
            snap.quotes = i;
            write_snapshot(&path, &snap).unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
        assert_eq!(read_snapshot(&path).unwrap().quotes, 199);
        let leftovers = fs::read_dir(&dir).unwrap().count();
        assert_eq!(leftovers, 1, "temporary files left behind");
        fs::remove_dir_all(&dir).unwrap();
    }
}
