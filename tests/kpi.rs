#![allow(clippy::unwrap_used, clippy::expect_used)]
//! KPI and latency telemetry end to end, through files: a session's records fold into a
//! `KpiTracker`, its latency histograms go to an HdrHistogram interval log and `.hgrm`
//! tables, its snapshot to `kpi/<SYMBOL>.json`; then `--mode=latency` and `--mode=kpi
//! --once` read them back as a user would.

use std::fs;
use std::path::{Path, PathBuf};

use mm::modes;
use mm::report::kpi::{read_snapshot, render_report, write_snapshot};
use mm::telemetry::kpi::{
    FillRecord, KpiParams, KpiRecord, KpiTracker, MidSample, OrderCounts, QuoteSample,
};
use mm::telemetry::latency::{
    hgrm_path, log_path, read_intervals, read_log, LatencyKind, LatencyLogWriter, LatencySample,
    LATENCY_NS_MAX,
};
use mm::types::{Price, Qty, Side, Symbol, SymbolSpec};

const S: u64 = 1_000_000_000;
/// 2026-01-01T00:00:00Z, ns.
const START_NS: u64 = 1_767_225_600_000_000_000;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mm-kpi-it-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn spec() -> SymbolSpec {
    SymbolSpec::from_decimals(Symbol::new("BTCUSDT").unwrap(), "0.01", "0.00001", "5").unwrap()
}

/// A 10-second session: intervals of 1 s; tick-to-quote 10·(i+1) µs in second i, feed
/// 2 ms, one order round trip above the histogram's range.
fn session(dir: &Path) -> (KpiTracker, PathBuf, Vec<PathBuf>, Vec<u64>) {
    let mut tracker = KpiTracker::new(
        KpiParams::new(spec(), "paper-trading", Qty(100_000)),
        START_NS,
    )
    .unwrap();
    let path = log_path(dir, "paper-trading", "BTCUSDT", START_NS);
    let mut writer =
        LatencyLogWriter::create(&path, START_NS, S, "mm paper-trading BTCUSDT").unwrap();
    let mut per_interval = Vec::new();
    for second in 0..10u64 {
        let t0 = START_NS + second * S;
        tracker.on_record(KpiRecord::Mid(MidSample {
            ts_ns: t0,
            mid_half_ticks: 12_000_000 + 2 * second as i64,
        }));
        tracker.on_record(KpiRecord::Quote(QuoteSample {
            ts_ns: t0,
            bid: Price(5_999_000),
            ask: Price(6_001_000),
        }));
        let samples = 100 * (second + 1);
        for _ in 0..samples {
            tracker.on_record(KpiRecord::Latency(LatencySample {
                kind: LatencyKind::TickToQuote,
                ns: 10_000 * (second as i64 + 1),
            }));
            tracker.on_record(KpiRecord::Latency(LatencySample {
                kind: LatencyKind::Feed,
                ns: 2_000_000,
            }));
        }
        per_interval.push(samples);
        if second % 2 == 0 {
            let side = if second % 4 == 0 {
                Side::Buy
            } else {
                Side::Sell
            };
            let price = if side == Side::Buy {
                5_999_000
            } else {
                6_001_000
            };
            tracker.on_record(KpiRecord::Fill(FillRecord {
                ts_ns: t0 + 1,
                side,
                price: Price(price),
                qty: Qty(100),
                fee_quote_atoms: 0,
                quoted_half_spread_half_ticks: 2_000,
                mid_half_ticks: 12_000_000 + 2 * second as i64,
                order_id: second,
            }));
        }
        assert!(writer.tick(tracker.latency_mut(), t0 + S).unwrap());
    }
    tracker
        .latency_mut()
        .record(LatencyKind::OrderRoundTrip, LATENCY_NS_MAX + 1);
    tracker.on_record(KpiRecord::Counts(OrderCounts {
        quotes: 10,
        orders_placed: 20,
        cancels: 4,
        replaces: 2,
        fills: 5,
        orders_with_fill: 5,
        rejects: 0,
    }));
    tracker.finish();
    let files = writer
        .finish(tracker.latency_mut(), START_NS + 10 * S + S / 2)
        .unwrap();
    (tracker, path, files, per_interval)
}

#[test]
fn latency_log_reads_back_with_the_same_counts_and_percentiles() {
    let dir = temp_dir("hlog");
    let (tracker, path, files, per_interval) = session(&dir);
    assert_eq!(
        path.file_name().unwrap(),
        "paper-trading_BTCUSDT_20260101T000000Z.hlog"
    );
    // The log, then one table per kind with samples (loop has none).
    assert_eq!(files.len(), 4);
    assert_eq!(files[0], path);
    for kind in [
        LatencyKind::Feed,
        LatencyKind::TickToQuote,
        LatencyKind::OrderRoundTrip,
    ] {
        assert!(files.contains(&hgrm_path(&path, kind)), "{files:?}");
    }

    // The header is HdrHistogram's.
    let text = fs::read_to_string(&path).unwrap();
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines[0], "#mm paper-trading BTCUSDT");
    assert_eq!(lines[1], "#[Histogram log format version 1.3]");
    assert_eq!(
        lines[2],
        "#[StartTime: 1767225600.000 (seconds since epoch)]"
    );
    assert_eq!(
        lines[3],
        "#[BaseTime: 1767225600.000 (seconds since epoch)]"
    );
    assert!(lines[4].starts_with("\"StartTimestamp\",\"Interval_Length\""));
    assert!(
        lines[5].starts_with("Tag=feed,0.000,1.000,"),
        "{}",
        lines[5]
    );
    // V2 compressed histograms: cookie 0x1c849304 in base64 starts "HISTF".
    assert!(lines[5].split(',').nth(4).unwrap().starts_with("HISTF"));

    // Interval by interval: every tick-to-quote interval decodes with its own count.
    let intervals = read_intervals(&path).unwrap();
    let t2q: Vec<_> = intervals
        .iter()
        .filter(|i| i.tag == LatencyKind::TickToQuote.tag())
        .collect();
    assert_eq!(t2q.len(), 10);
    for (second, interval) in t2q.iter().enumerate() {
        assert_eq!(interval.histogram.len(), per_interval[second]);
        assert_eq!(interval.start.as_secs(), second as u64);
        assert_eq!(interval.length.as_secs(), 1);
        let value = 10_000 * (second as u64 + 1);
        assert!(interval
            .histogram
            .equivalent(interval.histogram.max(), value));
    }
    // The last (half-second) interval holds only the clamped round trip.
    let last = intervals.last().unwrap();
    assert_eq!(last.tag, "order_round_trip");
    assert_eq!(last.length.as_millis(), 500);

    // Merged per tag: the same counts and percentiles as the recorder's totals.
    let log = read_log(&path).unwrap();
    assert_eq!(log.intervals, 21);
    assert_eq!(log.span.as_millis(), 10_500);
    for kind in [
        LatencyKind::Feed,
        LatencyKind::TickToQuote,
        LatencyKind::OrderRoundTrip,
    ] {
        let merged = &log.tags[kind.tag()];
        let total = tracker.latency().histogram(kind);
        assert_eq!(merged.histogram.len(), total.len(), "{kind:?}");
        for q in [0.5, 0.9, 0.99, 0.999, 0.9999, 1.0] {
            assert_eq!(
                merged.histogram.value_at_quantile(q),
                total.value_at_quantile(q),
                "{kind:?} q={q}"
            );
        }
        let mut from_log = merged.summary(kind.tag());
        let live = tracker.latency().summary(kind);
        // The log keeps the maximum to the histogram's resolution (or exactly, if clamped).
        assert!(total.equivalent(from_log.max_ns, live.max_ns), "{kind:?}");
        from_log.max_ns = live.max_ns;
        assert_eq!(from_log, live, "{kind:?}");
    }
    assert!(!log.tags.contains_key("loop"));
    assert_eq!(log.tags["order_round_trip"].clamped, 1);

    // The percentile table's last row holds every sample.
    let hgrm = fs::read_to_string(hgrm_path(&path, LatencyKind::TickToQuote)).unwrap();
    assert!(hgrm.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)\n\n"));
    assert!(
        hgrm.contains(&format!("Total count    = {:>12}]", 5_500)),
        "{hgrm}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn latency_mode_prints_percentiles_in_microseconds() {
    let dir = temp_dir("mode-latency");
    let (_, path, _, _) = session(&dir);
    let mut out = Vec::new();
    modes::latency::run(&path, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("21 interval histograms over 10.5 s, 3 tag(s)"),
        "{text}"
    );
    for column in [
        "count",
        "p50 µs",
        "p90 µs",
        "p99 µs",
        "p99.9 µs",
        "p99.99 µs",
        "max µs",
    ] {
        assert!(text.contains(column), "missing {column} in\n{text}");
    }
    // Feed: 5,500 samples of exactly 2 ms.
    let feed = text.lines().find(|l| l.starts_with("feed ")).unwrap();
    let cols: Vec<_> = feed.split_whitespace().collect();
    assert_eq!(cols[1], "5500");
    for col in &cols[2..] {
        let us: f64 = col.parse().unwrap();
        assert!((us - 2_000.0).abs() <= 2.0, "{feed}");
    }
    // Tick-to-quote: second i holds 100·(i+1) samples of 10·(i+1) µs; the median of 5,500
    // is in second 6 (cumulative 2,100 < 2,750.5 ≤ 2,800 → 70 µs), the max 100 µs.
    let t2q = text
        .lines()
        .find(|l| l.starts_with("tick_to_quote "))
        .unwrap();
    let cols: Vec<_> = t2q.split_whitespace().collect();
    let p50: f64 = cols[2].parse().unwrap();
    let max: f64 = cols[7].parse().unwrap();
    assert!((p50 - 70.0).abs() < 0.1, "{t2q}");
    assert!((max - 100.0).abs() < 0.1, "{t2q}");
    assert!(
        text.contains("note: order_round_trip: 1 samples above 60 s"),
        "{text}"
    );

    // Clear errors for a missing or malformed dump.
    let missing = dir.join("nope.hlog");
    let err = modes::latency::run(&missing, &mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("nope.hlog"), "{err}");
    let garbage = dir.join("garbage.hlog");
    fs::write(
        &garbage,
        "#[Histogram log format version 1.3]\nnot a log line\n",
    )
    .unwrap();
    let err = modes::latency::run(&garbage, &mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("garbage.hlog:2:"), "{err}");
    let table = hgrm_path(&path, LatencyKind::Feed);
    let err = modes::latency::run(&table, &mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("percentile table"), "{err}");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn kpi_mode_once_prints_the_table_from_a_written_snapshot() {
    let dir = temp_dir("mode-kpi");
    let (tracker, _, _, _) = session(&dir);
    let snapshot = tracker.snapshot(START_NS + 10 * S + S / 2);
    let path = dir.join("kpi").join("BTCUSDT.json");
    write_snapshot(&path, &snapshot).unwrap();
    // JSON keeps every figure the report shows (floats to their printed precision).
    let read = read_snapshot(&path).unwrap();
    assert_eq!(
        render_report(&read, "Real-time"),
        render_report(&snapshot, "Real-time")
    );
    assert_eq!(read.targets_met(), snapshot.targets_met());

    let mut out = Vec::new();
    modes::kpi::run(&path, true, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.starts_with("📊 BTCUSDT Performance Report (Real-time)\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "KPI Status: {}/6 targets met",
            snapshot.targets_met()
        )),
        "{text}"
    );
    for name in [
        "Spread captured",
        "RMS inventory",
        "Fill ratio",
        "Cancel ratio",
        "Latency P99",
        "Total PnL",
    ] {
        let line = text.lines().find(|l| l.contains(name)).unwrap();
        assert!(line.contains('✅') || line.contains('❌'), "{line}");
    }
    assert!(
        text.contains("Total Fills:    5 (5 orders filled of 20 placed; fill ratio 25.00%)"),
        "{text}"
    );
    assert!(
        text.contains("Snapshot of 2026-01-01 00:00:10 UTC (paper-trading)"),
        "{text}"
    );

    let missing = dir.join("kpi").join("ETHUSDT.json");
    let err = modes::kpi::run(&missing, true, &mut Vec::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "no KPI snapshot at {} — start paper trading or live first",
            missing.display()
        )
    );
    fs::remove_dir_all(&dir).unwrap();
}
