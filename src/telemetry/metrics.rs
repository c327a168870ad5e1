//! The optional Prometheus / OpenMetrics endpoint, served by the side thread.
//!
//! Owns: `MetricsServer` (a non-blocking loopback listener the side thread polls once per
//! turn: each pending scrape is read, answered and closed) and `render` (the KPIs, PnL
//! split, inventory, order counts, market-data counters and latency histograms as a
//! `prometheus-client` registry, encoded as Prometheus text 0.0.4 or, when the scraper
//! asks for it, OpenMetrics 1.0).
//!
//! Metrics (all prefixed `mm_`; counters get `_total`, histograms `_bucket`/`_sum`/
//! `_count`): `inventory_base`, `inventory_max_base`, `mid_price`, `pnl_quote`,
//! `fees_quote`, `max_drawdown_quote`, `volume_base`, `volume_quote`, `quotes`,
//! `orders_placed`, `cancels`, `replaces`, `fills`, `rejects`, `records_dropped`,
//! `kpi_value{kpi}`, `kpi_target{kpi}`, `kpi_met{kpi}`, `market_frames`,
//! `market_disconnects`, `book_gaps`, `book_snapshots`, and `latency_seconds{stage}`
//! (feed, tick_to_quote, order_round_trip, loop) from the HDR histograms, in fixed buckets
//! from 1 µs to 1 s.
//!
//! Never: runs on the hot thread, listens on anything but a loopback address, or waits for
//! a slow scraper longer than `READ_TIMEOUT` (the side thread has other work).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use hdrhistogram::Histogram;
use prometheus_client::encoding::{text, DescriptorEncoder, EncodeMetric, NoLabelSet as NoLabels};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::telemetry::kpi::{KpiKind, KpiSnapshot};
use crate::telemetry::latency::{LatencyKind, LatencyRecorder};

/// Longest wait for a scraper's request, and for writing the answer.
pub const READ_TIMEOUT: Duration = Duration::from_millis(200);
/// Largest request head read.
const REQUEST_BYTES_MAX: usize = 8 * 1024;
/// Scrapes answered per side-thread turn at most.
const SCRAPES_PER_TURN_MAX: usize = 4;
/// Histogram bucket bounds, seconds.
const BUCKETS_S: [f64; 16] = [
    1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 0.1, 0.5, 1.0,
];
const OPENMETRICS_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The market-data loop's counters (from its periodic `Stats` record).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MarketCounters {
    /// Frames received.
    pub frames: u64,
    /// Disconnects (each followed by a reconnect).
    pub disconnects: u64,
    /// Depth gaps (each forces a resync).
    pub gaps: u64,
    /// Depth snapshots loaded.
    pub snapshots: u64,
}

/// A listener on a loopback address, polled by the side thread.
#[derive(Debug)]
pub struct MetricsServer {
    listener: TcpListener,
    addr: SocketAddr,
    scrapes: u64,
}

impl MetricsServer {
    /// Binds `addr` (`127.0.0.1:9184`; port 0 picks one). Refuses non-loopback addresses.
    pub fn bind(addr: &str) -> io::Result<MetricsServer> {
        let wanted: SocketAddr = addr.parse().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("metrics.listen {addr:?}: expected IP:PORT, e.g. 127.0.0.1:9184"),
            )
        })?;
        if !wanted.ip().is_loopback() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("metrics.listen {addr}: only a loopback address (127.0.0.1, ::1)"),
            ));
        }
        let listener = TcpListener::bind(wanted)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        Ok(MetricsServer {
            listener,
            addr,
            scrapes: 0,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Scrapes answered so far.
    pub fn scrapes(&self) -> u64 {
        self.scrapes
    }

    /// Answers the scrapes waiting now (never waits for one): `GET /metrics` gets
    /// `body(openmetrics)`, anything else 404. Errors of one scrape end that scrape only.
    pub fn serve_pending(&mut self, mut body: impl FnMut(bool) -> String) {
        for _ in 0..SCRAPES_PER_TURN_MAX {
            let Ok((stream, _)) = self.listener.accept() else {
                return;
            };
            if answer(stream, &mut body).is_ok() {
                self.scrapes += 1;
            }
        }
    }
}

fn answer(mut stream: TcpStream, body: &mut impl FnMut(bool) -> String) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(READ_TIMEOUT))?;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < REQUEST_BYTES_MAX {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let mut lines = head.lines();
    let request = lines.next().unwrap_or("");
    let path_ok = request.starts_with("GET /metrics ") || request.starts_with("GET /metrics?");
    let openmetrics = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("accept:") && l.contains("application/openmetrics-text")
    });
    let response = if path_ok {
        let text = body(openmetrics);
        let kind = if openmetrics {
            OPENMETRICS_TYPE
        } else {
            PROMETHEUS_TYPE
        };
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: \
             close\r\n\r\n{text}",
            text.len()
        )
    } else {
        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string()
    };
    stream.write_all(response.as_bytes())?;
    stream.flush()
}

/// The registry of one scrape, encoded: OpenMetrics 1.0 (ends with `# EOF`) or Prometheus
/// text 0.0.4.
pub fn render(
    snapshot: &KpiSnapshot,
    latency: &LatencyRecorder,
    market: Option<&MarketCounters>,
    openmetrics: bool,
) -> String {
    let mut registry = Registry::with_prefix("mm");
    let gauge = |r: &mut Registry, name: &str, help: &str, v: f64| {
        r.register(name, help, ConstGauge::new(v));
    };
    let counter = |r: &mut Registry, name: &str, help: &str, v: u64| {
        r.register(name, help, ConstCounter::new(v));
    };
    let s = snapshot;
    gauge(
        &mut registry,
        "inventory_base",
        "Inventory, base units (balance − target in live)",
        s.inventory_base,
    );
    gauge(
        &mut registry,
        "inventory_max_base",
        "Inventory limit, base units",
        s.inventory_max_base,
    );
    if let Some(mid) = s.mid {
        gauge(&mut registry, "mid_price", "Mid price, quote per base", mid);
    }
    if let Some(pnl) = s.pnl_quote {
        gauge(
            &mut registry,
            "pnl_quote",
            "Total PnL (cash + inventory × mid − fees), quote",
            pnl,
        );
    }
    gauge(
        &mut registry,
        "fees_quote",
        "Fees paid, quote",
        s.fees_quote,
    );
    gauge(
        &mut registry,
        "max_drawdown_quote",
        "Largest fall of the PnL from a peak, quote",
        s.max_drawdown_quote,
    );
    gauge(
        &mut registry,
        "volume_base",
        "Volume traded, base units",
        s.volume_base,
    );
    gauge(
        &mut registry,
        "volume_quote",
        "Volume traded, quote",
        s.volume_quote,
    );
    counter(
        &mut registry,
        "quotes",
        "Two-sided quotes decided",
        s.quotes,
    );
    counter(
        &mut registry,
        "orders_placed",
        "New orders sent",
        s.orders_placed,
    );
    counter(&mut registry, "cancels", "Cancels sent", s.cancels);
    counter(
        &mut registry,
        "replaces",
        "Cancel-replaces sent",
        s.replaces,
    );
    counter(&mut registry, "fills", "Fills", s.fills);
    counter(
        &mut registry,
        "rejects",
        "Orders rejected by the venue",
        s.rejects,
    );
    counter(
        &mut registry,
        "records_dropped",
        "Hot-thread records dropped (full channel)",
        s.records_dropped,
    );
    registry.register_collector(Box::new(Kpis(
        s.kpis
            .iter()
            .map(|k| (k.kind, k.value, k.target, k.met))
            .collect(),
    )));
    if let Some(m) = market {
        counter(
            &mut registry,
            "market_frames",
            "Market-data frames received",
            m.frames,
        );
        counter(
            &mut registry,
            "market_disconnects",
            "Market-data disconnects (reconnects)",
            m.disconnects,
        );
        counter(
            &mut registry,
            "book_gaps",
            "Depth gaps (each forces a resync)",
            m.gaps,
        );
        counter(
            &mut registry,
            "book_snapshots",
            "Depth snapshots loaded (start and resyncs)",
            m.snapshots,
        );
    }
    registry.register_collector(Box::new(Latencies(
        LatencyKind::ALL
            .iter()
            .map(|&kind| (kind.tag(), buckets(latency.histogram(kind))))
            .collect(),
    )));
    let mut out = String::new();
    let encoded = if openmetrics {
        text::encode(&mut out, &registry)
    } else {
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
    };
    if encoded.is_err() {
        out.clear();
    }
    out
}

/// (sum s, count, buckets (upper bound s, samples in that bucket alone)) of an HDR
/// histogram in ns; the encoder makes them cumulative. The last bucket is +Inf.
fn buckets(h: &Histogram<u64>) -> Buckets {
    let count = h.len();
    let sum = h.mean() * count as f64 / 1e9;
    let mut below = 0u64;
    let mut out: Vec<(f64, u64)> = Vec::with_capacity(BUCKETS_S.len() + 1);
    for &bound in &BUCKETS_S {
        let upto = if count == 0 {
            0
        } else {
            h.count_between(0, (bound * 1e9) as u64)
        };
        out.push((bound, upto.saturating_sub(below)));
        below = below.max(upto);
    }
    out.push((f64::INFINITY, count.saturating_sub(below)));
    (sum, count, out)
}

/// The six KPIs with their targets: (kind, value, target, met).
#[derive(Debug)]
struct Kpis(Vec<(KpiKind, Option<f64>, f64, bool)>);

impl prometheus_client::collector::Collector for Kpis {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let families: [(&str, &str); 3] = [
            (
                "kpi_value",
                "KPI value (fractions 0..1, latency in ms, PnL in quote)",
            ),
            ("kpi_target", "KPI target"),
            ("kpi_met", "1 when the KPI meets its target"),
        ];
        for (i, (name, help)) in families.into_iter().enumerate() {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for &(kind, value, target, met) in &self.0 {
                let v = match i {
                    0 => match value {
                        Some(v) => v,
                        None => continue,
                    },
                    1 => target,
                    _ => f64::from(u8::from(met)),
                };
                let labels = [("kpi", kpi_label(kind))];
                let metric = family.encode_family(&labels)?;
                ConstGauge::new(v).encode(metric)?;
            }
        }
        Ok(())
    }
}

fn kpi_label(kind: KpiKind) -> &'static str {
    match kind {
        KpiKind::SpreadCaptured => "spread_captured",
        KpiKind::RmsInventory => "rms_inventory",
        KpiKind::FillRatio => "fill_ratio",
        KpiKind::CancelRatio => "cancel_ratio",
        KpiKind::LatencyP99 => "latency_p99_ms",
        KpiKind::TotalPnl => "total_pnl",
    }
}

/// The latency histograms by stage: (stage, (sum, count, buckets)).
#[derive(Debug)]
struct Latencies(Vec<(&'static str, Buckets)>);

/// One histogram for the encoder: sum (s), count, per-bucket counts by upper bound (s).
type Buckets = (f64, u64, Vec<(f64, u64)>);

impl prometheus_client::collector::Collector for Latencies {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "latency_seconds",
            "Latency by stage, from the session's HDR histograms",
            None,
            MetricType::Histogram,
        )?;
        for (stage, (sum, count, buckets)) in &self.0 {
            let labels = [("stage", *stage)];
            let mut metric = family.encode_family(&labels)?;
            metric.encode_histogram::<NoLabels>(*sum, *count, buckets, None)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::kpi::{KpiParams, KpiTracker};
    use crate::types::{Qty, Symbol, SymbolSpec};

    fn snapshot() -> (KpiSnapshot, LatencyRecorder) {
        let spec =
            SymbolSpec::from_decimals(Symbol::new("BTCUSDT").unwrap(), "0.01", "0.00001", "5")
                .unwrap();
        let t = KpiTracker::new(KpiParams::new(spec, "paper-trading", Qty(1_000)), 0).unwrap();
        let mut latency = LatencyRecorder::new();
        latency.record(LatencyKind::TickToQuote, 3_000);
        latency.record(LatencyKind::TickToQuote, 40_000);
        (t.snapshot(1_000_000_000), latency)
    }

    #[test]
    fn both_formats_carry_the_kpis_and_histograms() {
        let (snap, latency) = snapshot();
        let prom = render(&snap, &latency, None, false);
        assert!(prom.contains("# TYPE mm_fills_total counter"), "{prom}");
        assert!(
            prom.contains("mm_kpi_target{kpi=\"fill_ratio\"} 0.05"),
            "{prom}"
        );
        // 3 µs and 40 µs: cumulative buckets 0 ≤ 2 µs, 1 ≤ 5 µs … 1 ≤ 20 µs, 2 ≤ 50 µs.
        for (le, n) in [
            ("2e-06", 0),
            ("5e-06", 1),
            ("2e-05", 1),
            ("5e-05", 2),
            ("+Inf", 2),
        ] {
            let line =
                format!("mm_latency_seconds_bucket{{stage=\"tick_to_quote\",le=\"{le}\"}} {n}\n");
            assert!(prom.contains(&line), "{line:?} missing:\n{prom}");
        }
        assert!(
            prom.contains("mm_latency_seconds_count{stage=\"tick_to_quote\"} 2"),
            "{prom}"
        );
        let om = render(&snap, &latency, None, true);
        assert!(om.trim_end().ends_with("# EOF"), "{om}");
    }

    #[test]
    fn only_loopback_addresses_are_served() {
        assert!(MetricsServer::bind("0.0.0.0:0").is_err());
        assert!(MetricsServer::bind("localhost").is_err());
        let server = MetricsServer::bind("127.0.0.1:0").unwrap();
        assert_ne!(server.local_addr().port(), 0);
    }
}
