//! The backtest's run folder: `reports/<UTC time>_<SYMBOL>/` with `summary.json`,
//! `fills.csv`, `timeseries.csv` and four SVG plots; and the `--grid` table and folder.
//!
//! Owns: `Summary` (what `summary.json` holds, field order fixed), the CSV layouts, the
//! plots and the grid table. The figures (`Scorecard`, `GridRow`, the money split and the
//! minute statistics, defined in `backtest::score`) are computed in `crate::backtest`.
//! Numbers that must reconcile exactly (PnL and its split, cash, fees, inventory, prices,
//! quantities) are written as exact decimal strings from the integer ticks, lots and quote
//! atoms; ratios and statistics as JSON numbers.
//!
//! Determinism: every file is a pure function of the replay, except `summary.json`'s last
//! field, `timing` (wall-clock figures), and the folder's name. Compare two runs with
//! `timing` removed.
//!
//! Plots: plotters' SVG backend with default features off. Text is written as SVG `<text>`
//! elements and laid out with plotters' built-in size estimate, so no font files or
//! fontconfig are needed; the viewer renders the text with its own fonts.
//!
//! Cold path: allocates, formats and writes files. Never reads the clock except for the
//! folder name (`time::wall_now_ns`).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context;
use plotters::prelude::*;
use serde::Serialize;

use crate::backtest::score::{fill_spread_atoms, mid_at, minute_stats, GridRow, Scorecard};
use crate::backtest::{GridAxis, QuoteMark, Replayed};
use crate::config::Config;
use crate::replay::TapeInfo;
use crate::risk::StopReason;
use crate::telemetry::kpi::{KpiKind, NotJudged};
use crate::time::utc_text;
use crate::types::{write_atoms, Side, SymbolSpec, DECIMALS, DECIMAL_TEXT_MAX};
use crate::venue::sim::LatencyModel;

/// Version of the `summary.json` layout.
pub const SUMMARY_VERSION: u32 = 2;
/// Markout horizons of the markout plot, seconds, and the width of the zoomed
/// quotes-vs-mid window, ns: defined where the backtest keeps the mid changes these
/// lookups need.
pub use crate::backtest::mids::{MARKOUT_HORIZONS_S, ZOOM_NS};

/// Wall-clock figures of a run: not deterministic, kept apart in `summary.json`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Timing {
    /// Whole run (load + replay + report), s.
    pub wall_s: f64,
    /// Reading and decoding the data, s.
    pub load_s: f64,
    /// The replay + strategy loop, s.
    pub replay_s: f64,
    /// Events per second of the replay loop.
    pub events_per_s: f64,
}

/// What `summary.json` holds.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// `SUMMARY_VERSION`.
    pub version: u32,
    /// Always "backtest".
    pub mode: &'static str,
    /// The symbol.
    pub symbol: String,
    /// The input.
    pub data: DataSummary,
    /// The settings that shape the result.
    pub settings: Settings,
    /// "n/6 targets met".
    pub kpi_status: String,
    /// How many of the six targets were met.
    pub targets_met: usize,
    /// The six KPIs with targets and pass/fail.
    pub kpis: Vec<KpiRow>,
    /// Money.
    pub pnl: PnlSummary,
    /// Quotes and orders.
    pub orders: OrderSummary,
    /// Fill markouts.
    pub markouts: MarkoutSummary,
    /// Queue position at fill.
    pub queue: QueueSummary,
    /// The market-data core's counters.
    pub engine: EngineSummary,
    /// The simulated venue.
    pub venue: VenueSummary,
    /// Trading stops (kill switch, stale data, resync).
    pub risk: RiskSummary,
    /// Things to know when reading the numbers.
    pub notes: Vec<String>,
    /// Wall-clock figures: NOT deterministic, excluded from run-to-run comparisons.
    pub timing: Timing,
}

/// The input of a run.
#[derive(Clone, Debug, Serialize)]
pub struct DataSummary {
    /// Files, in the order given.
    pub sources: Vec<String>,
    /// Frames read.
    pub frames: u64,
    /// Events decoded.
    pub events: u64,
    /// Events replayed (fewer if interrupted).
    pub events_replayed: u64,
    /// Depth diffs.
    pub depth_diffs: u64,
    /// bookTicker events.
    pub book_tickers: u64,
    /// Trades.
    pub trades: u64,
    /// REST snapshots.
    pub snapshots: u64,
    /// Frames skipped: kinds the engine does not use.
    pub skipped_unknown_kind: u64,
    /// Frames skipped: other symbols.
    pub skipped_other_symbol: u64,
    /// First event, UTC.
    pub start_utc: String,
    /// Last event replayed, UTC.
    pub end_utc: String,
    /// Span, s.
    pub span_s: f64,
    /// Stopped early by Ctrl+C.
    pub interrupted: bool,
}

/// Settings that shape the result.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    /// Configuration layers applied, in order.
    pub config_layers: Vec<String>,
    /// γ, 1/bps.
    pub gamma_per_bps: f64,
    /// k, 1/bps.
    pub k_per_bps: f64,
    /// σ source and configured value, bps/√s.
    pub sigma: String,
    /// τ, s.
    pub horizon_s: f64,
    /// OFI β.
    pub ofi_beta: f64,
    /// OFI window, s.
    pub ofi_window_s: f64,
    /// Spread clamp, bps.
    pub spread_bps: [f64; 2],
    /// Quote size, base.
    pub quote_size: String,
    /// Inventory limit, base.
    pub inventory_max: String,
    /// Price tolerance, ticks.
    pub price_tolerance_ticks: i64,
    /// Minimum resting time, ms.
    pub min_rest_ms: u64,
    /// Maker fee, bps.
    pub maker_fee_bps: f64,
    /// Order-entry latency as configured.
    pub entry_latency: String,
    /// Report latency as configured.
    pub ack_latency: String,
    /// Feed latency used, ns.
    pub feed_latency_ns: u64,
    /// Where the feed latency came from.
    pub feed_latency_source: String,
    /// The venue's entry latency after the feed shift.
    pub venue_entry_latency: String,
    /// The venue's report latency after the feed shift.
    pub venue_ack_latency: String,
    /// Queue shrinks with cancellations ahead.
    pub queue_cancels: bool,
    /// Venue RNG seed.
    pub seed: u64,
    /// Markout horizon, s.
    pub markout_horizon_s: f64,
}

/// One KPI.
#[derive(Clone, Debug, Serialize)]
pub struct KpiRow {
    /// Its name.
    pub name: &'static str,
    /// Its value (None without data).
    pub value: Option<f64>,
    /// Its unit.
    pub unit: &'static str,
    /// `≥`, `≤` or `>`.
    pub comparison: &'static str,
    /// The target.
    pub target: f64,
    /// Met.
    pub met: bool,
    /// Why it was not judged ("n/a (not met)"): `NoData`, `TooFewOrders`,
    /// `TooFewFilledOrders`, `TooShort`, `TooFewSamples`; None when judged.
    pub not_judged: Option<NotJudged>,
    /// The figure as measured even when not judged (information only).
    pub measured: Option<f64>,
}

/// Money, exact where it must reconcile.
#[derive(Clone, Debug, Serialize)]
pub struct PnlSummary {
    /// The quote asset (USDT).
    pub quote_asset: String,
    /// The maker fee tier every figure here is at, bps (negative = rebate).
    pub maker_fee_bps: f64,
    /// Fees paid / value traded, bps (None without fills).
    pub fee_paid_bps: Option<f64>,
    /// Total (net) PnL = cash + inventory × final mid − fees, exact, quote currency.
    pub total_quote_exact: String,
    /// The same as a number.
    pub total_quote: f64,
    /// Spread PnL = Σ side·(mid at fill − price)·qty − fees, exact, quote currency.
    pub spread_quote_exact: String,
    /// The same as a number.
    pub spread_quote: f64,
    /// Inventory PnL = total − spread, exact, quote currency.
    pub inventory_quote_exact: String,
    /// The same as a number.
    pub inventory_quote: f64,
    /// Cash from fills (Σ −side·price·qty), exact, quote currency (fees not included).
    pub cash_before_fees_quote_exact: String,
    /// Fees paid (negative = rebates), exact, quote currency.
    pub fees_quote_exact: String,
    /// Fees as a number.
    pub fees_quote: f64,
    /// Inventory at the end, base asset, exact.
    pub inventory_base_exact: String,
    /// Final mid (best bid + best ask)/2, exact, quote currency.
    pub final_mid_exact: Option<String>,
    /// Largest fall of the PnL from a previous peak (marked at every mid and fill).
    pub max_drawdown_quote: f64,
    /// Sharpe per minute: mean / sample standard deviation of the net PnL's changes over
    /// whole minutes (not annualised).
    pub sharpe_1m: Option<f64>,
    /// Mean 1-minute PnL change, quote.
    pub pnl_1m_mean: Option<f64>,
    /// Standard deviation of the 1-minute PnL changes, quote.
    pub pnl_1m_std: Option<f64>,
    /// Whole minutes the Sharpe ratio is over.
    pub minutes: usize,
    /// Base traded.
    pub volume_base: f64,
    /// Quote traded.
    pub volume_quote: f64,
}

/// Quotes and orders.
#[derive(Clone, Debug, Serialize)]
pub struct OrderSummary {
    /// Quote decisions the order manager saw.
    pub quotes: u64,
    /// Quotes the model computed.
    pub quotes_computed: u64,
    /// Mean quoted spread of two-sided quotes, bps.
    pub avg_spread_bps: Option<f64>,
    /// New orders: places + cancel-replaces.
    pub orders_placed: u64,
    /// Places.
    pub places: u64,
    /// Cancel-replaces.
    pub replaces: u64,
    /// Cancels.
    pub cancels: u64,
    /// Cancel-alls.
    pub cancel_alls: u64,
    /// Fill events.
    pub fills: u64,
    /// Orders with at least one fill.
    pub orders_with_fill: u64,
    /// Orders completely filled.
    pub orders_filled: u64,
    /// Orders refused by the venue.
    pub rejects: u64,
    /// Cancels refused by the venue.
    pub cancel_rejects: u64,
    /// Places skipped by the rate limits.
    pub rate_limited: u64,
    /// Replaces held back by the minimum resting time.
    pub held_min_rest: u64,
    /// Places refused by risk.
    pub risk_rejects: u64,
}

/// Markouts.
#[derive(Clone, Debug, Serialize)]
pub struct MarkoutSummary {
    /// Horizon, s.
    pub horizon_s: f64,
    /// Mean markout over fills at the horizon, bps of price (side·(mid after − price)).
    pub mean_bps: Option<f64>,
    /// Resolved with the mid exactly at the horizon.
    pub exact: u64,
    /// Resolved early.
    pub forced: u64,
    /// Resolved with the last mid at the end of the data.
    pub at_end: u64,
    /// Never saw a mid.
    pub unresolved: u64,
    /// Mean markout by horizon (s, bps), all fills.
    pub curve_bps: Vec<(f64, Option<f64>)>,
}

/// Queue position at fill, from the simulated venue: displayed size at the order's price
/// ahead of it when it joined, and still ahead when it filled (0 when the trade went
/// through the price), base units, over fill events.
#[derive(Clone, Debug, Serialize)]
pub struct QueueSummary {
    /// Fill events counted.
    pub fills: usize,
    /// Of which the trade went through the order's price.
    pub through_fills: usize,
    /// Median size ahead at join.
    pub ahead_at_join_median_base: Option<f64>,
    /// Mean size ahead at join.
    pub ahead_at_join_mean_base: Option<f64>,
    /// Median size still ahead at fill.
    pub ahead_at_fill_median_base: Option<f64>,
    /// Mean size still ahead at fill.
    pub ahead_at_fill_mean_base: Option<f64>,
}

/// The market-data core.
#[derive(Clone, Debug, Serialize)]
pub struct EngineSummary {
    /// Events handled.
    pub events: u64,
    /// Depth diffs.
    pub diffs: u64,
    /// Snapshots loaded.
    pub snapshots: u64,
    /// Depth gaps.
    pub gaps: u64,
    /// Snapshots older than the diffs.
    pub snapshots_too_old: u64,
    /// Crossed books seen.
    pub crossed: u64,
}

/// The simulated venue.
#[derive(Clone, Debug, Serialize)]
pub struct VenueSummary {
    /// Orders accepted.
    pub accepted: u64,
    /// Orders rejected.
    pub rejected: u64,
    /// Orders cancelled.
    pub canceled: u64,
    /// Fills.
    pub fills: u64,
    /// Fills skipped (report ring full; should be 0).
    pub fills_skipped: u64,
    /// Actions refused (queue full).
    pub refused: u64,
    /// The venue's own position, lots (must equal the engine's).
    pub position_lots: i64,
    /// The venue's own cash net of fees, quote atoms (must equal the engine's).
    pub cash_atoms: i64,
}

/// Trading stops.
#[derive(Clone, Debug, Serialize)]
pub struct RiskSummary {
    /// Times trading stopped, by reason (in `StopReason::ALL` order; zero counts left out).
    pub stops: Vec<(String, u64)>,
    /// Time trading was stopped, s (the start, before the book syncs, counts).
    pub stopped_s: f64,
}

impl Summary {
    /// Builds the summary of a replay.
    pub fn build(config: &Config, tape: &dyn TapeInfo, run: &Replayed, timing: Timing) -> Summary {
        let spec = config.spec;
        let stats = tape.stats();
        let kpi = &run.kpi;
        let kpis: Vec<KpiRow> = kpi
            .kpis
            .iter()
            .map(|k| KpiRow {
                name: k.kind.name(),
                value: k.value,
                unit: kpi_unit(k.kind),
                comparison: k.kind.comparison().symbol(),
                target: k.target,
                met: k.met,
                not_judged: k.not_judged,
                measured: k.measured,
            })
            .collect();
        let targets_met = kpi.targets_met();
        let (quote_asset, _) = split_symbol(spec.symbol.as_str());

        // Money, exactly: cash before fees from the fills, fees, final mark.
        let cash_before_fees_atoms: i128 = run
            .fills
            .iter()
            .map(|f| -i128::from(f.side.sign()) * spec.notional_atoms(f.price, f.qty))
            .sum();
        let card = Scorecard::of(run);
        let minute = minute_stats(&run.samples);
        let markout_ns = (config.kpi.markout_horizon_s * 1e9).round() as u64;
        let curve: Vec<(f64, Option<f64>)> = MARKOUT_HORIZONS_S
            .iter()
            .map(|&h| (h, mean_markout_bps(run, (h * 1e9) as u64, None)))
            .collect();

        let o = &run.order_stats;
        let mut stops: Vec<(String, u64)> = Vec::new();
        for reason in StopReason::ALL {
            let n = run.stops.iter().filter(|(_, r)| *r == Some(reason)).count() as u64;
            if n > 0 {
                stops.push((format!("{reason:?}"), n));
            }
        }
        let mut stopped_ns = 0u64;
        let mut stopped_since: Option<u64> = Some(run.start_ns);
        for &(ts, reason) in &run.stops {
            match (reason, stopped_since) {
                (Some(_), None) => stopped_since = Some(ts),
                (None, Some(since)) => {
                    stopped_ns += ts.saturating_sub(since);
                    stopped_since = None;
                }
                _ => {}
            }
        }
        if let Some(since) = stopped_since {
            stopped_ns += run.end_ns.saturating_sub(since);
        }

        let mut notes = vec![
            "Latency P99 is the latency the simulation charged each order: feed latency + the \
             venue's entry and report latency (exchange event → answer seen). The engine's \
             compute time is not charged (tick-to-quote is 0 on the simulated clock); the \
             replay loop's measured cost is timing.replay_s / data.events_replayed."
                .to_string(),
            "KPIs show n/a (not met) below their activity minimums (kpis[].not_judged, \
             docs/kpis.md): a session that barely traded passes nothing."
                .to_string(),
            "PnL split: spread = Σ side·(mid at fill − price)·qty − fees; inventory = total − \
             spread (what held inventory made as the mid moved)."
                .to_string(),
            format!(
                "Orders meet the market as it was at the exchange: the venue's entry latency \
                 is the configured one plus the feed latency ({} ns, {}), its report latency \
                 the configured one minus it (at least 0).",
                run.feed.ns, run.feed.source
            ),
            "Sharpe per minute (pnl.sharpe_1m): mean over sample standard deviation of the \
             net PnL's changes over whole minutes of data time, not annualised."
                .to_string(),
        ];
        if stats.snapshots == 0 {
            notes.push(
                "The data has no REST depth snapshot: the L2 book never syncs, so risk keeps \
                 quoting paused (BookResync) and no orders are sent."
                    .to_string(),
            );
        }
        if run.interrupted {
            notes.push("Stopped early by Ctrl+C: the figures cover the data replayed.".to_string());
        }

        Summary {
            version: SUMMARY_VERSION,
            mode: "backtest",
            symbol: spec.symbol.as_str().to_string(),
            data: DataSummary {
                sources: tape.sources().to_vec(),
                frames: stats.frames,
                events: stats.events,
                events_replayed: run.events,
                depth_diffs: stats.depth_diffs,
                book_tickers: stats.book_tickers,
                trades: stats.trades,
                snapshots: stats.snapshots,
                skipped_unknown_kind: stats.skipped_unknown_kind,
                skipped_other_symbol: stats.skipped_other_symbol,
                start_utc: utc_text(run.start_ns),
                end_utc: utc_text(run.end_ns),
                span_s: run.end_ns.saturating_sub(run.start_ns) as f64 / 1e9,
                interrupted: run.interrupted,
            },
            settings: Settings {
                config_layers: config.layers.clone(),
                gamma_per_bps: config.model.gamma_per_bps,
                k_per_bps: config.model.k_per_bps,
                sigma: format!(
                    "{:?} ({} bps/√s configured)",
                    config.model.sigma_source, config.model.sigma_bps_per_sqrt_s
                )
                .to_lowercase(),
                horizon_s: config.model.horizon_s,
                ofi_beta: config.ofi.beta,
                ofi_window_s: config.ofi.window_s,
                spread_bps: [config.quoting.spread_min_bps, config.quoting.spread_max_bps],
                quote_size: qty_text(&spec, config.quoting.quote_size_lots.0),
                inventory_max: qty_text(&spec, config.quoting.inventory_max_lots.0),
                price_tolerance_ticks: config.orders.price_tolerance_ticks,
                min_rest_ms: config.orders.min_rest_ms,
                maker_fee_bps: config.venue.sim.maker_fee_centibps as f64 / 100.0,
                entry_latency: latency_text(config.venue.sim.entry_latency),
                ack_latency: latency_text(config.venue.sim.ack_latency),
                feed_latency_ns: run.feed.ns,
                feed_latency_source: run.feed.source.clone(),
                venue_entry_latency: latency_text(run.venue_params.entry_latency),
                venue_ack_latency: latency_text(run.venue_params.ack_latency),
                queue_cancels: config.venue.sim.queue_cancels,
                seed: config.venue.sim.seed,
                markout_horizon_s: config.kpi.markout_horizon_s,
            },
            kpi_status: format!("{targets_met}/{} targets met", KpiKind::ALL.len()),
            targets_met,
            kpis,
            pnl: PnlSummary {
                quote_asset: quote_asset.to_string(),
                maker_fee_bps: card.maker_fee_bps,
                fee_paid_bps: kpi.fee_paid_bps,
                total_quote_exact: atoms_text(card.net_pnl_atoms),
                total_quote: card.net_pnl_quote,
                spread_quote_exact: atoms_text(card.spread_pnl_atoms),
                spread_quote: card.spread_pnl_quote,
                inventory_quote_exact: atoms_text(card.inventory_pnl_atoms),
                inventory_quote: card.inventory_pnl_quote,
                cash_before_fees_quote_exact: atoms_text(cash_before_fees_atoms),
                fees_quote_exact: atoms_text(i128::from(run.position.fees_atoms)),
                fees_quote: run.position.fees_atoms as f64 / 1e8,
                inventory_base_exact: qty_text(&spec, run.position.inventory.0),
                final_mid_exact: run
                    .final_touch
                    .map(|(bid, ask)| mid_text(&spec, bid.0.saturating_add(ask.0))),
                max_drawdown_quote: kpi.max_drawdown_quote,
                sharpe_1m: minute.sharpe,
                pnl_1m_mean: minute.mean,
                pnl_1m_std: minute.std,
                minutes: minute.count,
                volume_base: kpi.volume_base,
                volume_quote: kpi.volume_quote,
            },
            orders: OrderSummary {
                quotes: o.quotes_seen,
                quotes_computed: run.engine_stats.quotes,
                avg_spread_bps: kpi.avg_spread_bps,
                orders_placed: o.orders_placed,
                places: o.places_sent,
                replaces: o.replaces_sent,
                cancels: o.cancels_sent,
                cancel_alls: o.cancel_alls_sent,
                fills: o.fills,
                orders_with_fill: o.orders_with_fill,
                orders_filled: o.orders_filled,
                rejects: o.rejects,
                cancel_rejects: o.cancel_rejects,
                rate_limited: o.rate_limited,
                held_min_rest: o.held_min_rest,
                risk_rejects: o.risk_rejects.iter().sum(),
            },
            markouts: MarkoutSummary {
                horizon_s: config.kpi.markout_horizon_s,
                mean_bps: mean_markout_bps(run, markout_ns, None),
                exact: kpi.markouts_exact,
                forced: kpi.markouts_forced,
                at_end: kpi.markouts_at_end,
                unresolved: kpi.markouts_unresolved,
                curve_bps: curve,
            },
            queue: queue_summary(run),
            engine: EngineSummary {
                events: run.engine_stats.events,
                diffs: run.engine_stats.diffs,
                snapshots: run.engine_stats.snapshots,
                gaps: run.engine_stats.gaps,
                snapshots_too_old: run.engine_stats.snapshots_too_old,
                crossed: run.engine_stats.crossed,
            },
            venue: VenueSummary {
                accepted: run.venue_stats.accepted,
                rejected: run.venue_stats.rejected,
                canceled: run.venue_stats.canceled,
                fills: run.venue_stats.fills,
                fills_skipped: run.venue_stats.fills_skipped,
                refused: run.venue_stats.refused,
                position_lots: run.venue_stats.position_lots,
                cash_atoms: run.venue_stats.cash_atoms,
            },
            risk: RiskSummary {
                stops,
                stopped_s: stopped_ns as f64 / 1e9,
            },
            notes,
            timing,
        }
    }
}

/// The backtest's console lines under the KPI report: the PnL split at the fee tier,
/// drawdown and Sharpe per minute; queue position at fill; what the latency KPI measured.
pub fn money_line(summary: &Summary) -> String {
    let p = &summary.pnl;
    let q = &summary.queue;
    let base = |v: Option<f64>| {
        v.map_or_else(
            || "n/a".to_string(),
            |v| {
                let text = format!("{v:.8}");
                text.trim_end_matches('0').trim_end_matches('.').to_string()
            },
        )
    };
    format!(
        "PnL {} {} = spread {} + inventory {} at maker fee {} bps (fees {}) | max drawdown \
         {:.4} | Sharpe per minute {}\n\
         Queue at fill ({} fills, {} through the price): median ahead at join {}, at fill {} \
         (base)\n\
         Latency P99 is what the simulation charged per order (feed + entry + report); the \
         engine's own compute per event: see timing in summary.json",
        p.total_quote_exact,
        p.quote_asset,
        p.spread_quote_exact,
        p.inventory_quote_exact,
        trim_float(p.maker_fee_bps),
        p.fees_quote_exact,
        p.max_drawdown_quote,
        p.sharpe_1m
            .map_or_else(|| "n/a".to_string(), |s| format!("{s:.3}")),
        q.fills,
        q.through_fills,
        base(q.ahead_at_join_median_base),
        base(q.ahead_at_fill_median_base),
    )
}

/// Creates `root/<UTC time>_<SYMBOL>/` and writes every file of the run into it.
pub fn write_run(
    root: &Path,
    config: &Config,
    summary: &Summary,
    run: &Replayed,
) -> anyhow::Result<PathBuf> {
    let folder = new_run_folder(root, config.spec.symbol.as_str(), "")?;
    let json = serde_json::to_string_pretty(summary).context("serialising the summary")?;
    write_file(&folder.join("summary.json"), format!("{json}\n").as_bytes())?;
    let markout_ns = (config.kpi.markout_horizon_s * 1e9).round() as u64;
    write_file(
        &folder.join("fills.csv"),
        fills_csv(run, markout_ns).as_bytes(),
    )?;
    let path = folder.join("timeseries.csv");
    let mut out = std::io::BufWriter::new(
        fs::File::create(&path).with_context(|| format!("writing {}", path.display()))?,
    );
    write_timeseries_csv(run, &mut out)
        .and_then(|()| std::io::Write::flush(&mut out))
        .with_context(|| format!("writing {}", path.display()))?;
    plot_pnl_inventory(&folder.join("pnl_inventory.svg"), run)?;
    plot_pnl_split(&folder.join("pnl_split.svg"), run)?;
    plot_quotes(&folder.join("quotes_zoom.svg"), run)?;
    plot_markouts(&folder.join("markouts.svg"), run)?;
    Ok(folder)
}

/// `fills.csv`: one row per fill, exact decimals.
pub fn fills_csv(run: &Replayed, markout_ns: u64) -> String {
    let spec = run.spec;
    let mut text = String::from(
        "ts_ns,time_utc,order_id,side,price,qty,fee_quote,mid_at_fill,quoted_edge_bps,\
         mid_after_horizon,markout_bps,trade_id\n",
    );
    for f in &run.fills {
        let price = spec.price_to_f64(f.price);
        let bps =
            |half_ticks: i64| half_ticks as f64 / 2.0 * spec.tick_atoms as f64 / 1e8 / price * 1e4;
        let after = mid_at(&run.mids, f.ts_ns.saturating_add(markout_ns));
        let _ = writeln!(
            text,
            "{},{},{},{},{},{},{},{},{:.4},{},{},{}",
            f.ts_ns,
            utc_text(f.ts_ns),
            f.order_id,
            side_text(f.side),
            price_text(&spec, f.price.0),
            qty_text(&spec, f.qty.0),
            atoms_text(i128::from(f.fee_atoms)),
            if f.mid_x2_ticks > 0 {
                mid_text(&spec, f.mid_x2_ticks)
            } else {
                String::new()
            },
            bps(f.quoted_edge_half_ticks),
            after.map_or_else(String::new, |m| mid_text(&spec, m)),
            after.map_or_else(String::new, |m| format!(
                "{:.4}",
                bps(f.side.sign() * (m - 2 * f.price.0))
            )),
            f.trade_id,
        );
    }
    text
}

/// `timeseries.csv`: equity, inventory, mid and the PnL split every second of data time,
/// written as it is formatted (a month of data is ~240 MB of text).
pub fn write_timeseries_csv(run: &Replayed, out: &mut impl std::io::Write) -> std::io::Result<()> {
    let spec = run.spec;
    out.write_all(
        b"ts_ns,elapsed_s,pnl_quote,inventory_base,mid,spread_pnl_quote,inventory_pnl_quote\n",
    )?;
    for (s, (_, _, spread, inventory)) in run.samples.iter().zip(pnl_split_series(run)) {
        writeln!(
            out,
            "{},{:.3},{},{},{},{},{}",
            s.ts_ns,
            s.ts_ns.saturating_sub(run.start_ns) as f64 / 1e9,
            atoms_text(i128::from(s.pnl_atoms)),
            qty_text(&spec, s.inventory_lots),
            if s.mid_x2_ticks > 0 {
                mid_text(&spec, s.mid_x2_ticks)
            } else {
                String::new()
            },
            atoms_text(spread),
            atoms_text(inventory),
        )?;
    }
    Ok(())
}

/// The grid as CSV: one column per axis, then the results.
pub fn grid_csv(axes: &[GridAxis], rows: &[GridRow]) -> String {
    let mut text = String::new();
    for axis in axes {
        let _ = write!(text, "{},", axis.key);
    }
    text.push_str(
        "pnl_quote,spread_pnl_quote,inventory_pnl_quote,targets_met,spread_captured,\
         rms_inventory,fill_ratio,cancel_ratio,latency_p99_ms,fills,orders_placed,fees_quote,\
         max_drawdown_quote,sharpe_1m\n",
    );
    let opt = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v:.6}"));
    for row in rows {
        for setting in &row.settings {
            let value = setting.split_once('=').map_or("", |(_, v)| v);
            let _ = write!(text, "{value},");
        }
        let _ = write!(
            text,
            "{:.8},{:.8},{:.8},{},",
            row.pnl_quote,
            row.spread_pnl_quote,
            row.pnl_quote - row.spread_pnl_quote,
            row.targets_met
        );
        for value in &row.kpis[..5] {
            let _ = write!(text, "{},", opt(*value));
        }
        let _ = writeln!(
            text,
            "{},{},{:.8},{:.8},{}",
            row.fills,
            row.orders_placed,
            row.fees_quote,
            row.max_drawdown_quote,
            opt(row.sharpe_1m)
        );
    }
    text
}

/// The grid as a console table.
pub fn render_grid(axes: &[GridAxis], rows: &[GridRow]) -> String {
    let mut text = String::new();
    let widths: Vec<usize> = axes.iter().map(|a| a.key.len().max(8)).collect();
    for (axis, width) in axes.iter().zip(&widths) {
        let _ = write!(text, "{:<width$} ", axis.key);
    }
    let _ = writeln!(
        text,
        "{:>14} {:>10} {:>5} {:>9} {:>7} {:>8} {:>8} {:>6} {:>7} {:>10}",
        "PnL",
        "spread",
        "KPIs",
        "captured",
        "RMS inv",
        "fill %",
        "cancel %",
        "fills",
        "orders",
        "Sharpe 1m"
    );
    let pct = |v: Option<f64>| v.map_or_else(|| "n/a".to_string(), |v| format!("{:.1}", v * 100.0));
    for row in rows {
        for (setting, width) in row.settings.iter().zip(&widths) {
            let value = setting.split_once('=').map_or("", |(_, v)| v);
            let _ = write!(text, "{value:<width$} ");
        }
        let _ = writeln!(
            text,
            "{:>14.4} {:>10.4} {:>3}/6 {:>9} {:>7} {:>8} {:>8} {:>6} {:>7} {:>10}",
            row.pnl_quote,
            row.spread_pnl_quote,
            row.targets_met,
            pct(row.kpis[0]),
            row.kpis[1].map_or_else(|| "n/a".to_string(), |v| format!("{v:.3}")),
            pct(row.kpis[2]),
            pct(row.kpis[3]),
            row.fills,
            row.orders_placed,
            row.sharpe_1m
                .map_or_else(|| "n/a".to_string(), |v| format!("{v:.3}")),
        );
    }
    text
}

/// Creates `root/<UTC time>_<SYMBOL>_grid/grid.csv`.
pub fn write_grid(
    root: &Path,
    config: &Config,
    axes: &[GridAxis],
    rows: &[GridRow],
) -> anyhow::Result<PathBuf> {
    let folder = new_run_folder(root, config.spec.symbol.as_str(), "_grid")?;
    write_file(&folder.join("grid.csv"), grid_csv(axes, rows).as_bytes())?;
    Ok(folder)
}

/// Median and mean of the queue positions at join and at fill.
pub fn queue_summary(run: &Replayed) -> QueueSummary {
    let base = |lots: f64| lots * run.spec.step_atoms as f64 / 1e8;
    let stats = |mut lots: Vec<i64>| -> (Option<f64>, Option<f64>) {
        if lots.is_empty() {
            return (None, None);
        }
        lots.sort_unstable();
        let n = lots.len();
        let median = if n % 2 == 1 {
            lots[n / 2] as f64
        } else {
            (lots[n / 2 - 1] as f64 + lots[n / 2] as f64) / 2.0
        };
        let mean = lots.iter().map(|&l| l as f64).sum::<f64>() / n as f64;
        (Some(base(median)), Some(base(mean)))
    };
    let q = &run.queue_fills;
    let (join_median, join_mean) = stats(q.iter().map(|f| f.ahead_at_join.0).collect());
    let (fill_median, fill_mean) = stats(q.iter().map(|f| f.ahead_at_fill.0).collect());
    QueueSummary {
        fills: q.len(),
        through_fills: q.iter().filter(|f| f.through).count(),
        ahead_at_join_median_base: join_median,
        ahead_at_join_mean_base: join_mean,
        ahead_at_fill_median_base: fill_median,
        ahead_at_fill_mean_base: fill_mean,
    }
}

/// The PnL split every 1 s sample: (ts, net, spread, inventory), quote atoms.
pub fn pnl_split_series(
    run: &Replayed,
) -> impl ExactSizeIterator<Item = (u64, i128, i128, i128)> + '_ {
    let mut spread = 0i128;
    let mut next_fill = 0usize;
    run.samples.iter().map(move |s| {
        while let Some(f) = run.fills.get(next_fill).filter(|f| f.ts_ns <= s.ts_ns) {
            spread += fill_spread_atoms(run, f);
            next_fill += 1;
        }
        let net = i128::from(s.pnl_atoms);
        (s.ts_ns, net, spread, net - spread)
    })
}

/// Mean of side·(mid at fill + horizon − price) in bps of price over fills whose horizon
/// lies within the data; `side` filters.
pub fn mean_markout_bps(run: &Replayed, horizon_ns: u64, side: Option<Side>) -> Option<f64> {
    let last = run.last_mid_ts_ns?;
    let mut sum = 0.0;
    let mut n = 0usize;
    for f in run
        .fills
        .iter()
        .filter(|f| side.is_none_or(|s| s == f.side))
    {
        let at = f.ts_ns.saturating_add(horizon_ns);
        if at > last.max(run.end_ns) {
            continue;
        }
        let Some(mid_x2) = mid_at(&run.mids, at) else {
            continue;
        };
        let edge_half_ticks = f.side.sign() * (mid_x2 - 2 * f.price.0);
        sum += edge_half_ticks as f64 / (2.0 * f.price.0 as f64) * 1e4;
        n += 1;
    }
    (n > 0).then(|| sum / n as f64)
}

// -- plots ----------------------------------------------------------------------------------

/// Draws the legend of `chart` and writes the file.
fn legend_and_present<'a, 'b: 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, CT>,
    root: &DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
) -> anyhow::Result<()> {
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

/// A named, coloured line of (x, y) points.
type Line = (&'static str, RGBColor, Vec<(f64, f64)>);

fn plot_error<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing a plot: {e:?}")
}

/// Most points a time-series plot draws: a month of 1 s samples would make a 60 MB SVG.
const PLOT_POINTS_MAX: usize = 4_000;

/// `items` thinned to at most `PLOT_POINTS_MAX` + 1: every `stride`-th, and the last
/// (every point on runs under about an hour).
fn thinned<I: ExactSizeIterator>(items: I) -> impl Iterator<Item = I::Item> {
    let len = items.len();
    let stride = len.div_ceil(PLOT_POINTS_MAX).max(1);
    items
        .enumerate()
        .filter(move |(i, _)| i % stride == 0 || *i + 1 == len)
        .map(|(_, item)| item)
}

fn minutes(run: &Replayed, ts_ns: u64) -> f64 {
    ts_ns.saturating_sub(run.start_ns) as f64 / 60e9
}

/// PnL (top) and inventory (bottom) against minutes since the start.
fn plot_pnl_inventory(path: &Path, run: &Replayed) -> anyhow::Result<()> {
    let spec = run.spec;
    let root = SVGBackend::new(path, (1000, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let (top, bottom) = root.split_vertically(350);
    let x_max = minutes(run, run.end_ns).max(1.0 / 60.0);
    let pnl: Vec<(f64, f64)> = thinned(run.samples.iter())
        .map(|s| (minutes(run, s.ts_ns), s.pnl_atoms as f64 / 1e8))
        .collect();
    let inventory: Vec<(f64, f64)> = thinned(run.samples.iter())
        .map(|s| {
            (
                minutes(run, s.ts_ns),
                spec.qty_to_f64(crate::types::Qty(s.inventory_lots)),
            )
        })
        .collect();
    let (quote, base) = split_symbol(spec.symbol.as_str());
    for (area, series, title, unit, color) in [
        (
            &top,
            &pnl,
            "PnL (cash + inventory × mid − fees)",
            quote,
            BLUE,
        ),
        (&bottom, &inventory, "Inventory", base, RED),
    ] {
        let (lo, hi) = padded_range(series.iter().map(|p| p.1));
        let mut chart = ChartBuilder::on(area)
            .caption(format!("{title}, {unit}"), ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(80)
            .build_cartesian_2d(0.0..x_max, lo..hi)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc("minutes since start")
            .y_desc(unit)
            .draw()
            .map_err(plot_error)?;
        chart
            .draw_series(LineSeries::new(series.iter().copied(), &color))
            .map_err(plot_error)?;
    }
    root.present().map_err(plot_error)?;
    Ok(())
}

/// Net PnL and its split into spread PnL (net of fees) and inventory PnL against minutes
/// since the start, at the run's fee tier.
fn plot_pnl_split(path: &Path, run: &Replayed) -> anyhow::Result<()> {
    let (quote, _) = split_symbol(run.spec.symbol.as_str());
    let series: Vec<(u64, i128, i128, i128)> = thinned(pnl_split_series(run)).collect();
    let x_max = minutes(run, run.end_ns).max(1.0 / 60.0);
    let line = |pick: fn(&(u64, i128, i128, i128)) -> i128| -> Vec<(f64, f64)> {
        series
            .iter()
            .map(|p| (minutes(run, p.0), pick(p) as f64 / 1e8))
            .collect()
    };
    let lines: [Line; 3] = [
        ("net", BLACK, line(|p| p.1)),
        ("spread (net of fees)", BLUE, line(|p| p.2)),
        ("inventory", RGBColor(200, 100, 0), line(|p| p.3)),
    ];
    let (lo, hi) = padded_range(
        lines
            .iter()
            .flat_map(|l| l.2.iter().map(|p| p.1))
            .chain([0.0]),
    );
    let root = SVGBackend::new(path, (1000, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "PnL split, {quote}, at maker fee {} bps ({} fills)",
                trim_float(run.venue_params.maker_fee_centibps as f64 / 100.0),
                run.fills.len()
            ),
            ("sans-serif", 18),
        )
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..x_max, lo..hi)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("minutes since start")
        .y_desc(quote)
        .draw()
        .map_err(plot_error)?;
    for (name, color, points) in lines {
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(plot_error)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    legend_and_present(&mut chart, &root)
}

/// Our order prices against the mid over the `ZOOM_NS` window with the most fills.
fn plot_quotes(path: &Path, run: &Replayed) -> anyhow::Result<()> {
    let spec = run.spec;
    let (from, to) = zoom_window(run);
    let secs = |ts: u64| ts.saturating_sub(from) as f64 / 1e9;
    let price = |ticks: i64| ticks as f64 * spec.tick_atoms as f64 / 1e8;
    // Mid as a step line over the window.
    let mut mid_points: Vec<(f64, f64)> = Vec::new();
    if let Some(m) = mid_at(&run.mids, from) {
        mid_points.push((0.0, price(m) / 2.0));
    }
    for &(ts, m) in run.mids.iter().filter(|(t, _)| *t > from && *t <= to) {
        if let Some(&(_, last)) = mid_points.last() {
            mid_points.push((secs(ts), last));
        }
        mid_points.push((secs(ts), price(m) / 2.0));
    }
    if let Some(&(_, last)) = mid_points.last() {
        mid_points.push((secs(to), last));
    }
    // Our orders per side as horizontal segments.
    let mut segments: Vec<(Side, f64, f64, f64)> = Vec::new();
    for side in [Side::Buy, Side::Sell] {
        let marks: Vec<&QuoteMark> = run.quotes.iter().filter(|q| q.side == side).collect();
        for (i, mark) in marks.iter().enumerate() {
            let end = marks.get(i + 1).map_or(run.end_ns, |m| m.ts_ns);
            let (Some(p), true) = (mark.price, end > from && mark.ts_ns < to) else {
                continue;
            };
            segments.push((
                side,
                secs(mark.ts_ns.max(from)),
                secs(end.min(to)),
                price(p.0),
            ));
        }
    }
    let fills: Vec<(Side, f64, f64)> = run
        .fills
        .iter()
        .filter(|f| f.ts_ns >= from && f.ts_ns <= to)
        .map(|f| (f.side, secs(f.ts_ns), price(f.price.0)))
        .collect();
    let (lo, hi) = padded_range(
        mid_points
            .iter()
            .map(|p| p.1)
            .chain(segments.iter().map(|s| s.3)),
    );
    let root = SVGBackend::new(path, (1000, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Quotes vs mid from {} (mid black, our bid green, our ask red; fills ▲ buy ● sell)",
                utc_text(from)
            ),
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(90)
        .build_cartesian_2d(0.0..secs(to).max(1.0), lo..hi)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc(split_symbol(spec.symbol.as_str()).0)
        .y_label_formatter(&|v| format!("{v:.2}"))
        .draw()
        .map_err(plot_error)?;
    chart
        .draw_series(LineSeries::new(mid_points, &BLACK))
        .map_err(plot_error)?;
    let green = RGBColor(0, 140, 0);
    for (side, x0, x1, p) in segments {
        let color = if side == Side::Buy { green } else { RED };
        chart
            .draw_series(LineSeries::new(
                vec![(x0, p), (x1, p)],
                color.stroke_width(2),
            ))
            .map_err(plot_error)?;
    }
    chart
        .draw_series(
            fills
                .iter()
                .filter(|f| f.0 == Side::Buy)
                .map(|&(_, x, p)| TriangleMarker::new((x, p), 6, green.filled())),
        )
        .map_err(plot_error)?;
    chart
        .draw_series(
            fills
                .iter()
                .filter(|f| f.0 == Side::Sell)
                .map(|&(_, x, p)| Circle::new((x, p), 5, RED.filled())),
        )
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

/// Mean markout (bps) against the horizon (log scale), all fills, buys and sells.
fn plot_markouts(path: &Path, run: &Replayed) -> anyhow::Result<()> {
    let lines: Vec<Line> = [
        ("all fills", BLACK, None),
        ("buys", RGBColor(0, 140, 0), Some(Side::Buy)),
        ("sells", RED, Some(Side::Sell)),
    ]
    .into_iter()
    .map(|(name, color, side)| {
        let points = MARKOUT_HORIZONS_S
            .iter()
            .filter_map(|&h| mean_markout_bps(run, (h * 1e9) as u64, side).map(|v| (h, v)))
            .collect();
        (name, color, points)
    })
    .collect();
    let fee_bps = run.venue_params.maker_fee_centibps as f64 / 100.0;
    let (lo, hi) = padded_range(
        lines
            .iter()
            .flat_map(|l| l.2.iter().map(|p| p.1))
            .chain([0.0, fee_bps]),
    );
    let root = SVGBackend::new(path, (900, 550)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Fill markouts: mean side × (mid after − fill price), bps ({} fills)",
                run.fills.len()
            ),
            ("sans-serif", 16),
        )
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d((0.1f64..60.0f64).log_scale(), lo..hi)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("horizon, s (log scale)")
        .y_desc("bps")
        .draw()
        .map_err(plot_error)?;
    chart
        .draw_series(LineSeries::new(
            vec![(0.1, 0.0), (60.0, 0.0)],
            &RGBColor(160, 160, 160),
        ))
        .map_err(plot_error)?;
    // A fill earns only where its markout clears the fee it paid.
    let fee_color = RGBColor(150, 0, 150);
    chart
        .draw_series(LineSeries::new(
            vec![(0.1, fee_bps), (60.0, fee_bps)],
            fee_color.stroke_width(2),
        ))
        .map_err(plot_error)?
        .label(format!("maker fee {} bps", trim_float(fee_bps)))
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], fee_color));
    for (name, color, points) in lines {
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(plot_error)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 3, color.filled())),
            )
            .map_err(plot_error)?;
    }
    legend_and_present(&mut chart, &root)
}

/// The `ZOOM_NS` window holding the most fills (ties: the earliest), or the one starting at
/// the first quote when there is no fill.
fn zoom_window(run: &Replayed) -> (u64, u64) {
    let start = if run.fills.is_empty() {
        run.quotes.first().map_or(run.start_ns, |q| q.ts_ns)
    } else {
        let mut best = (0usize, run.fills[0].ts_ns);
        let mut j = 0usize;
        for (i, f) in run.fills.iter().enumerate() {
            while j < run.fills.len() && run.fills[j].ts_ns < f.ts_ns.saturating_add(ZOOM_NS) {
                j += 1;
            }
            if j - i > best.0 {
                best = (j - i, f.ts_ns);
            }
        }
        best.1.saturating_sub(ZOOM_NS / 6)
    };
    let start = start.max(run.start_ns);
    (
        start,
        start.saturating_add(ZOOM_NS).min(run.end_ns.max(start + 1)),
    )
}

/// A number without trailing zeros (10, 7.5, -0.5).
fn trim_float(v: f64) -> String {
    let text = format!("{v:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn padded_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (-1.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(hi.abs().max(1.0) * 1e-6);
    (lo - pad, hi + pad)
}

// -- text -------------------------------------------------------------------------------------

fn kpi_unit(kind: KpiKind) -> &'static str {
    match kind {
        KpiKind::LatencyP99 => "ms",
        KpiKind::TotalPnl => "quote",
        _ => "fraction",
    }
}

fn side_text(side: Side) -> &'static str {
    match side {
        Side::Buy => "BUY",
        Side::Sell => "SELL",
    }
}

fn latency_text(model: LatencyModel) -> String {
    let ms = |ns: u64| format!("{}ms", ns as f64 / 1e6);
    match model {
        LatencyModel::Constant { ns } => ms(ns),
        LatencyModel::Uniform { min_ns, max_ns } => {
            format!("uniform {} {}", ms(min_ns), ms(max_ns))
        }
        LatencyModel::LogNormal {
            median_ns,
            sigma_milli,
            max_ns,
        } => format!(
            "lognormal {} {} {}",
            ms(median_ns),
            f64::from(sigma_milli) / 1000.0,
            ms(max_ns)
        ),
    }
}

/// Quote atoms as an exact decimal with 8 places.
pub fn atoms_text(atoms: i128) -> String {
    match i64::try_from(atoms) {
        Ok(atoms) => {
            let mut buf = [0u8; DECIMAL_TEXT_MAX];
            let len = write_atoms(atoms, DECIMALS, &mut buf);
            String::from_utf8_lossy(&buf[..len]).into_owned()
        }
        Err(_) => format!("{}", atoms as f64 / 1e8),
    }
}

fn price_text(spec: &SymbolSpec, ticks: i64) -> String {
    let mut buf = [0u8; DECIMAL_TEXT_MAX];
    let len = write_atoms(
        ticks.saturating_mul(spec.tick_atoms),
        spec.price_decimals(),
        &mut buf,
    );
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

/// A mid given as bid + ask in ticks, exact (one more decimal than a price when needed).
fn mid_text(spec: &SymbolSpec, mid_x2_ticks: i64) -> String {
    let atoms = i128::from(mid_x2_ticks) * i128::from(spec.tick_atoms);
    let mut buf = [0u8; DECIMAL_TEXT_MAX];
    let len = write_atoms(
        i64::try_from(atoms / 2).unwrap_or(i64::MAX),
        (spec.price_decimals()
            + u32::from(atoms % 2 != 0 || (atoms / 2) % spec.tick_atoms as i128 != 0))
        .min(DECIMALS),
        &mut buf,
    );
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

fn qty_text(spec: &SymbolSpec, lots: i64) -> String {
    let mut buf = [0u8; DECIMAL_TEXT_MAX];
    let len = write_atoms(
        lots.saturating_mul(spec.step_atoms),
        spec.qty_decimals(),
        &mut buf,
    );
    String::from_utf8_lossy(&buf[..len]).into_owned()
}

/// `BTCUSDT` → (`USDT`, `BTC`): the quote asset and the base asset.
fn split_symbol(symbol: &str) -> (&str, &str) {
    const QUOTES: [&str; 10] = [
        "FDUSD", "USDT", "USDC", "TUSD", "BUSD", "EUR", "TRY", "BTC", "ETH", "BNB",
    ];
    for quote in QUOTES {
        if let Some(base) = symbol.strip_suffix(quote) {
            if !base.is_empty() {
                return (quote, base);
            }
        }
    }
    ("quote", "base")
}

/// Creates `root/<UTC now>_<SYMBOL><suffix>/`, adding `-2`, `-3`, … if it exists (backtest
/// runs, grids, calibrations).
pub fn new_run_folder(root: &Path, symbol: &str, suffix: &str) -> anyhow::Result<PathBuf> {
    fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    let now = crate::time::wall_now_ns();
    let stamp = chrono::DateTime::from_timestamp((now / 1_000_000_000) as i64, 0).map_or_else(
        || now.to_string(),
        |t| t.format("%Y%m%dT%H%M%SZ").to_string(),
    );
    for n in 1..1000 {
        let name = if n == 1 {
            format!("{stamp}_{symbol}{suffix}")
        } else {
            format!("{stamp}_{symbol}{suffix}-{n}")
        };
        let folder = root.join(name);
        match fs::create_dir(&folder) {
            Ok(()) => return Ok(folder),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", folder.display())),
        }
    }
    anyhow::bail!(
        "too many run folders named {stamp}_{symbol}{suffix} in {}",
        root.display()
    )
}

fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Symbol;

    #[test]
    fn long_series_are_thinned_for_plots_short_ones_are_not() {
        let short: Vec<u32> = (0..PLOT_POINTS_MAX as u32).collect();
        assert!(thinned(short.iter()).eq(short.iter()));
        // A month of 1 s samples: at most PLOT_POINTS_MAX + 1, first and last kept.
        let month: Vec<u32> = (0..2_602_800).collect();
        let drawn: Vec<u32> = thinned(month.iter().copied()).collect();
        assert!(drawn.len() <= PLOT_POINTS_MAX + 1, "{}", drawn.len());
        assert_eq!((drawn[0], *drawn.last().unwrap()), (0, 2_602_799));
        assert!(drawn.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(thinned([0u32; 0].iter()).count(), 0);
    }

    fn spec() -> SymbolSpec {
        SymbolSpec::from_decimals(Symbol::new("BTCUSDT").unwrap(), "0.01", "0.00001", "5").unwrap()
    }

    #[test]
    fn exact_texts() {
        let s = spec();
        assert_eq!(atoms_text(-1_234_500_000), "-12.34500000");
        assert_eq!(price_text(&s, 6_183_763), "61837.63");
        assert_eq!(mid_text(&s, 2 * 6_183_763 + 1), "61837.635");
        assert_eq!(mid_text(&s, 2 * 6_183_763), "61837.63");
        assert_eq!(qty_text(&s, -150), "-0.00150");
        assert_eq!(split_symbol("BTCUSDT"), ("USDT", "BTC"));
        assert_eq!(
            utc_text(1_723_161_253_937_085_768),
            "2024-08-08T23:54:13.937Z"
        );
    }
}
