//! The six KPIs of a trading session, computed on the side thread from `Copy` records the
//! hot thread sends.
//!
//! Owns: the records (`FillRecord`, `MidSample`, `QuoteSample`, `OrderCounts`,
//! `LatencySample`, all `Copy` with integer fields), `KpiTracker` (folds them, owns the
//! session's `LatencyRecorder`), `KpiTargets` and `KpiSnapshot` (what the report prints and
//! the snapshot file holds). The KPI definitions, exactly as in issue 5:
//!
//! | KPI | definition | target (default) |
//! | --- | --- | --- |
//! | spread captured | Σ realised edge / Σ quoted half-spread over fills, realised edge = side·(mid at fill time + markout horizon − fill price), both weighted by the fill's quantity | ≥ 70 % |
//! | RMS inventory | √(time-weighted mean of inventory²) / inventory max | ≤ 0.4 |
//! | fill ratio | fills / orders placed | ≥ 5 % |
//! | cancel ratio | (cancels + cancel-replaces) / orders placed — a replace cancels an order | ≤ 70 % |
//! | latency P99 | P99 of tick-to-quote (local receive of the market event → order request written), from the HDR histogram, compared at its resolution | ≤ 300 ms |
//! | total PnL | cash + inventory × mid − fees, quote currency | > 0 |
//!
//! A KPI with no data yet (no fill, no order, no latency sample, no elapsed time) has no
//! value and is *not* met: no evidence is not a pass.
//!
//! Markouts: a fill's realised edge is only known once the mid at fill time + horizon is
//! known, i.e. once a mid sample later than that instant arrives; the mid used is the one
//! prevailing at that instant (the last sample at or before it). Pending fills wait in a
//! queue bounded by `KpiParams::pending_fills_max`; on overflow the oldest is resolved early
//! with the latest mid and counted in `markouts_forced` (as is a fill record that arrives
//! after its horizon has passed); `finish` resolves the rest with the last mid and counts
//! them in `markouts_at_end`.
//!
//! Exactness: prices stay integers (ticks, or half ticks for mids: bid + ask), quantities
//! lots, money quote atoms, accumulated in i128/u128; floats appear only in `snapshot`, for
//! display. All record timestamps (`ts_ns`) and `now_ns` are on one clock: the engine's
//! `now` (local receive time; the data's time in a backtest).
//!
//! Side thread only. Never blocks, never reads the clock, never does I/O.

use std::collections::VecDeque;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::telemetry::latency::{LatencyKind, LatencyRecorder, LatencySample, LatencySummary};
use crate::types::{Price, Qty, Side, SymbolSpec, ATOMS_PER_UNIT};

/// Default markout horizon, ns (1 s).
pub const MARKOUT_NS_DEFAULT: u64 = 1_000_000_000;
/// Default bound of the queue of fills waiting for their markout.
pub const PENDING_FILLS_MAX: usize = 65_536;
/// Version of the `KpiSnapshot` JSON layout.
pub const SNAPSHOT_VERSION: u32 = 1;

/// One execution of one of our orders. Send one per fill event (partial fills included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FillRecord {
    /// When the fill happened (engine clock), ns.
    pub ts_ns: u64,
    /// Our side: `Buy` for a filled bid.
    pub side: Side,
    /// Execution price, ticks.
    pub price: Price,
    /// Executed quantity, lots (> 0).
    pub qty: Qty,
    /// Fee paid for this fill, quote atoms (10⁻⁸ of the quote currency); negative for a
    /// rebate. A fee charged in the base asset is converted at the fill price by the sender.
    pub fee_quote_atoms: i64,
    /// The order's distance from the mid when it was quoted, in half ticks:
    /// side·(bid + ask − 2·price) at quote time (`FillRecord::half_spread_half_ticks`).
    /// Half ticks keep a mid between two ticks exact.
    pub quoted_half_spread_half_ticks: i64,
    /// The order's id (client order id number), for the log.
    pub order_id: u64,
}

impl FillRecord {
    /// side·(bid + ask − 2·price): how far an order at `price` sat from the mid whose
    /// bid + ask was `mid_half_ticks`, in half ticks (positive when on its own side).
    pub const fn half_spread_half_ticks(side: Side, price: Price, mid_half_ticks: i64) -> i64 {
        side.sign() * (mid_half_ticks - 2 * price.0)
    }
}

/// The book's mid at one instant. Send one whenever the best bid or ask changes (at least
/// as often as the markout horizon, so that markouts resolve on time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MidSample {
    /// When (engine clock), ns.
    pub ts_ns: u64,
    /// Best bid + best ask, ticks (= the mid in half ticks).
    pub mid_half_ticks: i64,
}

/// A two-sided quote the engine decided on (for the average quoted spread). One-sided
/// quotes are not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuoteSample {
    /// When (engine clock), ns.
    pub ts_ns: u64,
    /// Our bid, ticks.
    pub bid: Price,
    /// Our ask, ticks.
    pub ask: Price,
}

/// Cumulative order counts since the session started (the order manager's `OrderStats`);
/// the latest record wins. Send periodically and once more before the final snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCounts {
    /// Quote decisions made.
    pub quotes: u64,
    /// New orders sent: places + cancel-replaces.
    pub orders_placed: u64,
    /// Plain cancels sent.
    pub cancels: u64,
    /// Cancel-replaces sent (each cancels one order and places one).
    pub replaces: u64,
    /// Fill events (executions, partial fills included).
    pub fills: u64,
    /// New orders the venue refused.
    pub rejects: u64,
}

/// Everything the hot thread sends the KPI tracker, in one `Copy` enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KpiRecord {
    /// An execution.
    Fill(FillRecord),
    /// A mid change.
    Mid(MidSample),
    /// A two-sided quote decision.
    Quote(QuoteSample),
    /// Cumulative order counts.
    Counts(OrderCounts),
    /// A latency measurement.
    Latency(LatencySample),
    /// Records the hot thread dropped so far (full channel), cumulative.
    Dropped(u64),
    /// The inventory taken from the exchange's balances (live), booked at the mid.
    Inventory(InventorySample),
}

/// The inventory set from outside the fills (live: reconciliation, balance audit): the
/// change is booked at `mid_half_ticks` as the engine books it, so the PnL does not jump
/// and the inventory equals the engine's (balance − target).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InventorySample {
    /// When (engine clock), ns.
    pub ts_ns: u64,
    /// The inventory from now on, lots.
    pub inventory_lots: Qty,
    /// Best bid + best ask, ticks (= the mid in half ticks).
    pub mid_half_ticks: i64,
}

/// The six targets. Fractions are 0..1 (0.7 = 70 %).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct KpiTargets {
    /// Spread captured at least this fraction (0.70).
    pub spread_captured_min: f64,
    /// RMS inventory at most this fraction of the inventory limit (0.4).
    pub rms_inventory_max: f64,
    /// Fill ratio at least this fraction (0.05).
    pub fill_ratio_min: f64,
    /// Cancel ratio at most this fraction (0.70).
    pub cancel_ratio_max: f64,
    /// Tick-to-quote P99 at most this, ms (300).
    pub latency_p99_max_ms: f64,
    /// Total PnL strictly above this, quote currency (0).
    pub pnl_min_quote: f64,
}

impl Default for KpiTargets {
    fn default() -> Self {
        KpiTargets {
            spread_captured_min: 0.70,
            rms_inventory_max: 0.4,
            fill_ratio_min: 0.05,
            cancel_ratio_max: 0.70,
            latency_p99_max_ms: 300.0,
            pnl_min_quote: 0.0,
        }
    }
}

/// The six KPIs, in report order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KpiKind {
    /// Σ realised edge / Σ quoted half-spread; value a fraction.
    SpreadCaptured,
    /// Time-weighted RMS inventory / inventory max; value a fraction.
    RmsInventory,
    /// Fills / orders placed; value a fraction.
    FillRatio,
    /// (Cancels + replaces) / orders placed; value a fraction.
    CancelRatio,
    /// Tick-to-quote P99; value in ms.
    LatencyP99,
    /// Cash + inventory × mid − fees; value in quote currency.
    TotalPnl,
}

impl KpiKind {
    /// All six, in report order.
    pub const ALL: [KpiKind; 6] = [
        KpiKind::SpreadCaptured,
        KpiKind::RmsInventory,
        KpiKind::FillRatio,
        KpiKind::CancelRatio,
        KpiKind::LatencyP99,
        KpiKind::TotalPnl,
    ];

    /// The name in the report.
    pub const fn name(self) -> &'static str {
        match self {
            KpiKind::SpreadCaptured => "Spread captured",
            KpiKind::RmsInventory => "RMS inventory",
            KpiKind::FillRatio => "Fill ratio",
            KpiKind::CancelRatio => "Cancel ratio",
            KpiKind::LatencyP99 => "Latency P99",
            KpiKind::TotalPnl => "Total PnL",
        }
    }

    /// How the value is held against the target.
    pub const fn comparison(self) -> Comparison {
        match self {
            KpiKind::SpreadCaptured | KpiKind::FillRatio => Comparison::AtLeast,
            KpiKind::RmsInventory | KpiKind::CancelRatio | KpiKind::LatencyP99 => {
                Comparison::AtMost
            }
            KpiKind::TotalPnl => Comparison::Above,
        }
    }

    /// The target of this KPI in `targets`, in the KPI's unit.
    pub fn target(self, targets: &KpiTargets) -> f64 {
        match self {
            KpiKind::SpreadCaptured => targets.spread_captured_min,
            KpiKind::RmsInventory => targets.rms_inventory_max,
            KpiKind::FillRatio => targets.fill_ratio_min,
            KpiKind::CancelRatio => targets.cancel_ratio_max,
            KpiKind::LatencyP99 => targets.latency_p99_max_ms,
            KpiKind::TotalPnl => targets.pnl_min_quote,
        }
    }
}

/// value ≥ target, value ≤ target, value > target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparison {
    /// ≥
    AtLeast,
    /// ≤
    AtMost,
    /// >
    Above,
}

impl Comparison {
    /// True if `value` meets `target`.
    pub fn holds(self, value: f64, target: f64) -> bool {
        match self {
            Comparison::AtLeast => value >= target,
            Comparison::AtMost => value <= target,
            Comparison::Above => value > target,
        }
    }

    /// `≥`, `≤` or `>`.
    pub const fn symbol(self) -> &'static str {
        match self {
            Comparison::AtLeast => "≥",
            Comparison::AtMost => "≤",
            Comparison::Above => ">",
        }
    }
}

/// One KPI at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct KpiStatus {
    /// Which KPI.
    pub kind: KpiKind,
    /// Its value in the KPI's unit (`KpiKind` docs); `None` without data.
    pub value: Option<f64>,
    /// Its target, same unit.
    pub target: f64,
    /// True if the value meets the target (never without a value).
    pub met: bool,
}

impl KpiStatus {
    fn judged(kind: KpiKind, value: Option<f64>, targets: &KpiTargets) -> KpiStatus {
        let target = kind.target(targets);
        KpiStatus {
            kind,
            value,
            target,
            met: value.is_some_and(|v| kind.comparison().holds(v, target)),
        }
    }
}

/// Everything the report and the snapshot file show, at one instant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KpiSnapshot {
    /// `SNAPSHOT_VERSION`.
    pub version: u32,
    /// The symbol, e.g. `BTCUSDT`.
    pub symbol: String,
    /// The mode that wrote it (`paper-trading`, `live`, `backtest`).
    pub mode: String,
    /// When (engine clock: wall ns since the epoch live and in paper, data time in a
    /// backtest).
    pub ts_ns: u64,
    /// Since the tracker started, s.
    pub elapsed_s: f64,
    /// Decimals to print prices with.
    pub price_decimals: u32,
    /// Decimals to print quantities with.
    pub qty_decimals: u32,
    /// Latest mid, quote currency.
    pub mid: Option<f64>,
    /// Inventory, base units (+ long).
    pub inventory_base: f64,
    /// The inventory limit, base units.
    pub inventory_max_base: f64,
    /// Quote decisions.
    pub quotes: u64,
    /// Orders placed (places + replaces).
    pub orders_placed: u64,
    /// Plain cancels.
    pub cancels: u64,
    /// Cancel-replaces.
    pub replaces: u64,
    /// Fill events.
    pub fills: u64,
    /// Orders refused.
    pub rejects: u64,
    /// Mean of (ask − bid) / ((ask + bid) / 2) over the two-sided quotes, bps.
    pub avg_spread_bps: Option<f64>,
    /// Base bought + sold, base units.
    pub volume_base: f64,
    /// Value traded, quote currency.
    pub volume_quote: f64,
    /// Total PnL (cash + inventory × mid − fees), quote currency; `None` while holding
    /// inventory without a mid.
    pub pnl_quote: Option<f64>,
    /// Fees paid (negative: rebates), quote currency.
    pub fees_quote: f64,
    /// Largest fall of the PnL from a previous peak (marked at every mid and fill), quote
    /// currency, ≥ 0.
    pub max_drawdown_quote: f64,
    /// The markout horizon, s.
    pub markout_horizon_s: f64,
    /// Fills whose edge used the mid prevailing exactly at fill time + horizon.
    pub markouts_exact: u64,
    /// Fills resolved early with the latest mid (queue full, or the record came late).
    pub markouts_forced: u64,
    /// Fills resolved by `finish` with the last mid (the run ended within their horizon).
    pub markouts_at_end: u64,
    /// Fills still waiting for their horizon (not in the spread captured yet).
    pub markouts_pending: u64,
    /// Fills that never saw a mid (left out of the spread captured).
    pub markouts_unresolved: u64,
    /// Records the hot thread dropped (full channel): non-zero means the KPIs undercount.
    pub records_dropped: u64,
    /// The six KPIs, in `KpiKind::ALL` order.
    pub kpis: Vec<KpiStatus>,
    /// Latency percentiles per kind, in `LatencyKind::ALL` order.
    pub latency: Vec<LatencySummary>,
}

impl KpiSnapshot {
    /// How many of the six targets are met.
    pub fn targets_met(&self) -> usize {
        self.kpis.iter().filter(|k| k.met).count()
    }

    /// True if all six are met.
    pub fn all_met(&self) -> bool {
        self.kpis.len() == KpiKind::ALL.len() && self.targets_met() == self.kpis.len()
    }

    /// The status of one KPI.
    pub fn kpi(&self, kind: KpiKind) -> Option<&KpiStatus> {
        self.kpis.iter().find(|k| k.kind == kind)
    }
}

/// The tracker's configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct KpiParams {
    /// The symbol's grid (for ticks/lots/atoms → currency).
    pub spec: SymbolSpec,
    /// The mode name written into snapshots.
    pub mode: String,
    /// The inventory limit, lots (> 0): the RMS inventory's denominator.
    pub inventory_max_lots: Qty,
    /// Inventory held at start, lots; valued at the first mid as its cost, so PnL counts
    /// only what happens after the start.
    pub initial_inventory_lots: Qty,
    /// Markout horizon, ns.
    pub markout_ns: u64,
    /// Bound of the queue of fills waiting for their markout (≥ 1).
    pub pending_fills_max: usize,
    /// The targets.
    pub targets: KpiTargets,
}

impl KpiParams {
    /// Defaults: flat start, 1 s markout, `PENDING_FILLS_MAX`, default targets.
    pub fn new(spec: SymbolSpec, mode: &str, inventory_max_lots: Qty) -> KpiParams {
        KpiParams {
            spec,
            mode: mode.to_string(),
            inventory_max_lots,
            initial_inventory_lots: Qty(0),
            markout_ns: MARKOUT_NS_DEFAULT,
            pending_fills_max: PENDING_FILLS_MAX,
            targets: KpiTargets::default(),
        }
    }
}

/// Why `KpiParams` were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KpiParamsError {
    /// `inventory_max_lots` ≤ 0.
    InventoryMax,
    /// `pending_fills_max` = 0.
    PendingFillsMax,
    /// A tick or step of ≤ 0 atoms.
    Grid,
    /// A target that is not a finite number (its field name).
    Target(&'static str),
}

impl fmt::Display for KpiParamsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KpiParamsError::InventoryMax => f.write_str("the inventory limit must be > 0"),
            KpiParamsError::PendingFillsMax => f.write_str("pending_fills_max must be ≥ 1"),
            KpiParamsError::Grid => f.write_str("tick and step size must be > 0"),
            KpiParamsError::Target(name) => write!(f, "KPI target {name} must be a finite number"),
        }
    }
}

impl std::error::Error for KpiParamsError {}

/// Folds the records of one session into KPIs.
#[derive(Debug)]
pub struct KpiTracker {
    params: KpiParams,
    start_ns: u64,
    // Inventory and its time integral.
    inventory_lots: i64,
    inventory_ts_ns: u64,
    /// Σ inventory_lots² · dt_ns.
    inventory_sq_lot2_ns: u128,
    // Money.
    /// Σ −side·2·price·qty (+ the initial inventory's cost), half-tick·lots.
    cash_half_tick_lots: i128,
    initial_cost_pending: bool,
    fees_atoms: i128,
    volume_lots: i128,
    volume_tick_lots: i128,
    // Drawdown, in PnL units of 1/(2·10¹⁶) quote (see `pnl_scaled`).
    pnl_peak_scaled: i128,
    drawdown_max_scaled: i128,
    // Markouts.
    last_mid: Option<MidSample>,
    pending: VecDeque<PendingFill>,
    edge_half_tick_lots: i128,
    half_spread_half_tick_lots: i128,
    markouts_exact: u64,
    markouts_forced: u64,
    markouts_at_end: u64,
    markouts_unresolved: u64,
    // Quotes and counts.
    spread_bps_sum: f64,
    spread_samples: u64,
    counts: OrderCounts,
    dropped: u64,
    latency: LatencyRecorder,
}

/// A fill waiting for the mid at `deadline_ns`.
#[derive(Clone, Copy, Debug)]
struct PendingFill {
    deadline_ns: u64,
    sign: i64,
    price: i64,
    qty: i64,
    half_spread_half_ticks: i64,
}

/// How a markout was resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resolution {
    Exact,
    Forced,
    AtEnd,
}

impl KpiTracker {
    /// A tracker whose session starts at `start_ns` (engine clock).
    pub fn new(params: KpiParams, start_ns: u64) -> Result<KpiTracker, KpiParamsError> {
        if params.inventory_max_lots.0 <= 0 {
            return Err(KpiParamsError::InventoryMax);
        }
        if params.pending_fills_max == 0 {
            return Err(KpiParamsError::PendingFillsMax);
        }
        if params.spec.tick_atoms <= 0 || params.spec.step_atoms <= 0 {
            return Err(KpiParamsError::Grid);
        }
        let t = &params.targets;
        for (name, value) in [
            ("spread_captured_min", t.spread_captured_min),
            ("rms_inventory_max", t.rms_inventory_max),
            ("fill_ratio_min", t.fill_ratio_min),
            ("cancel_ratio_max", t.cancel_ratio_max),
            ("latency_p99_max_ms", t.latency_p99_max_ms),
            ("pnl_min_quote", t.pnl_min_quote),
        ] {
            if !value.is_finite() {
                return Err(KpiParamsError::Target(name));
            }
        }
        let inventory_lots = params.initial_inventory_lots.0;
        let pending = VecDeque::with_capacity(params.pending_fills_max.min(4096));
        Ok(KpiTracker {
            params,
            start_ns,
            inventory_lots,
            inventory_ts_ns: start_ns,
            inventory_sq_lot2_ns: 0,
            cash_half_tick_lots: 0,
            initial_cost_pending: inventory_lots != 0,
            fees_atoms: 0,
            volume_lots: 0,
            volume_tick_lots: 0,
            pnl_peak_scaled: 0,
            drawdown_max_scaled: 0,
            last_mid: None,
            pending,
            edge_half_tick_lots: 0,
            half_spread_half_tick_lots: 0,
            markouts_exact: 0,
            markouts_forced: 0,
            markouts_at_end: 0,
            markouts_unresolved: 0,
            spread_bps_sum: 0.0,
            spread_samples: 0,
            counts: OrderCounts::default(),
            dropped: 0,
            latency: LatencyRecorder::new(),
        })
    }

    /// The configuration.
    pub fn params(&self) -> &KpiParams {
        &self.params
    }

    /// Folds any record.
    pub fn on_record(&mut self, record: KpiRecord) {
        match record {
            KpiRecord::Fill(fill) => self.on_fill(fill),
            KpiRecord::Mid(mid) => self.on_mid(mid),
            KpiRecord::Quote(quote) => self.on_quote(quote),
            KpiRecord::Counts(counts) => self.on_counts(counts),
            KpiRecord::Latency(sample) => self.latency.record_sample(sample),
            KpiRecord::Dropped(total) => self.dropped = self.dropped.max(total),
            KpiRecord::Inventory(sample) => self.on_inventory(sample),
        }
    }

    /// The inventory set from the balances: the difference to the fills' inventory is
    /// bought or sold at the mid (cash moves by −Δ·mid; no volume, no fee, no markout).
    pub fn on_inventory(&mut self, sample: InventorySample) {
        self.integrate_inventory(sample.ts_ns);
        let delta = i128::from(sample.inventory_lots.0) - i128::from(self.inventory_lots);
        self.cash_half_tick_lots -= delta * i128::from(sample.mid_half_ticks);
        self.inventory_lots = sample.inventory_lots.0;
        self.mark_drawdown();
    }

    /// An execution: inventory, cash, fees, volume, drawdown, and a pending markout.
    pub fn on_fill(&mut self, fill: FillRecord) {
        self.integrate_inventory(fill.ts_ns);
        let sign = fill.side.sign();
        let qty = fill.qty.0;
        self.inventory_lots = self.inventory_lots.saturating_add(sign * qty);
        let notional = i128::from(fill.price.0) * i128::from(qty);
        self.cash_half_tick_lots -= i128::from(sign) * 2 * notional;
        self.fees_atoms += i128::from(fill.fee_quote_atoms);
        self.volume_lots += i128::from(qty);
        self.volume_tick_lots += notional;
        self.mark_drawdown();

        let pending = PendingFill {
            deadline_ns: fill.ts_ns.saturating_add(self.params.markout_ns),
            sign,
            price: fill.price.0,
            qty,
            half_spread_half_ticks: fill.quoted_half_spread_half_ticks,
        };
        match self.last_mid {
            // The record came after a mid later than its horizon: the mid at the horizon is
            // gone, the latest one stands in.
            Some(mid) if mid.ts_ns > pending.deadline_ns => {
                self.resolve(pending, mid.mid_half_ticks, Resolution::Forced);
                return;
            }
            // Horizon 0, or a mid stamped exactly at the horizon: it is the prevailing one.
            Some(mid) if mid.ts_ns == pending.deadline_ns => {
                self.resolve(pending, mid.mid_half_ticks, Resolution::Exact);
                return;
            }
            _ => {}
        }
        if self.pending.len() >= self.params.pending_fills_max {
            if let Some(oldest) = self.pending.pop_front() {
                match self.last_mid {
                    Some(mid) => self.resolve(oldest, mid.mid_half_ticks, Resolution::Forced),
                    None => self.markouts_unresolved += 1,
                }
            }
        }
        // Keep the queue sorted by deadline (records normally arrive in time order).
        let at = self
            .pending
            .iter()
            .rposition(|p| p.deadline_ns <= pending.deadline_ns)
            .map_or(0, |i| i + 1);
        self.pending.insert(at, pending);
    }

    /// A mid change: resolves the markouts whose horizon it passes, marks the PnL.
    pub fn on_mid(&mut self, mid: MidSample) {
        // Fills whose horizon lies before this sample saw the previous mid at their horizon.
        // Without an earlier mid there was none at their horizon: this one stands in.
        let (before, how) = match self.last_mid {
            Some(last) => (last, Resolution::Exact),
            None => (mid, Resolution::Forced),
        };
        while let Some(&front) = self.pending.front() {
            if front.deadline_ns >= mid.ts_ns {
                break;
            }
            self.pending.pop_front();
            self.resolve(front, before.mid_half_ticks, how);
        }
        if self.initial_cost_pending {
            self.initial_cost_pending = false;
            self.cash_half_tick_lots -=
                i128::from(self.params.initial_inventory_lots.0) * i128::from(mid.mid_half_ticks);
        }
        self.last_mid = Some(mid);
        // A fill whose horizon is exactly this instant sees this sample.
        while let Some(&front) = self.pending.front() {
            if front.deadline_ns != mid.ts_ns {
                break;
            }
            self.pending.pop_front();
            self.resolve(front, mid.mid_half_ticks, Resolution::Exact);
        }
        self.mark_drawdown();
    }

    /// A two-sided quote decision.
    pub fn on_quote(&mut self, quote: QuoteSample) {
        let sum = quote.bid.0 as f64 + quote.ask.0 as f64;
        if sum > 0.0 && quote.ask.0 >= quote.bid.0 {
            self.spread_bps_sum += 2.0 * (quote.ask.0 - quote.bid.0) as f64 / sum * 10_000.0;
            self.spread_samples += 1;
        }
    }

    /// Cumulative order counts (the latest wins).
    pub fn on_counts(&mut self, counts: OrderCounts) {
        self.counts = counts;
    }

    /// The latency histograms (for the interval-log writer and direct recording).
    pub fn latency(&self) -> &LatencyRecorder {
        &self.latency
    }

    /// The latency histograms, mutably.
    pub fn latency_mut(&mut self) -> &mut LatencyRecorder {
        &mut self.latency
    }

    /// Inventory now, lots.
    pub fn inventory(&self) -> Qty {
        Qty(self.inventory_lots)
    }

    /// End of the run: resolves every pending markout with the last mid (counted in
    /// `markouts_at_end`; without any mid, in `markouts_unresolved`).
    pub fn finish(&mut self) {
        while let Some(pending) = self.pending.pop_front() {
            match self.last_mid {
                Some(mid) => self.resolve(pending, mid.mid_half_ticks, Resolution::AtEnd),
                None => self.markouts_unresolved += 1,
            }
        }
    }

    /// Every KPI and figure as of `now_ns` (engine clock, ≥ the records' times).
    pub fn snapshot(&self, now_ns: u64) -> KpiSnapshot {
        let spec = self.params.spec;
        // Exact integers (atoms, or atoms·10⁸ for products) divided once: the f64 is the
        // correctly rounded value, so 60000.09 prints and serialises as 60000.09.
        let unit = ATOMS_PER_UNIT as f64;
        let tick = i128::from(spec.tick_atoms);
        let step = i128::from(spec.step_atoms);
        let base = |lots: i128| lots.saturating_mul(step) as f64 / unit;
        let targets = &self.params.targets;
        let counts = self.counts;

        let spread_captured = (self.half_spread_half_tick_lots > 0)
            .then(|| self.edge_half_tick_lots as f64 / self.half_spread_half_tick_lots as f64);

        let elapsed_ns = now_ns.saturating_sub(self.start_ns);
        let rms_inventory = (elapsed_ns > 0).then(|| {
            let tail = u128::from(now_ns.saturating_sub(self.inventory_ts_ns));
            let sq = u128::from(self.inventory_lots.unsigned_abs()).pow(2);
            let integral = self
                .inventory_sq_lot2_ns
                .saturating_add(sq.saturating_mul(tail));
            (integral as f64 / elapsed_ns as f64).sqrt() / self.params.inventory_max_lots.0 as f64
        });

        let ratio =
            |n: u64| (counts.orders_placed > 0).then(|| n as f64 / counts.orders_placed as f64);
        let fill_ratio = ratio(counts.fills);
        let cancel_ratio = ratio(counts.cancels.saturating_add(counts.replaces));

        let t2q = self.latency.histogram(LatencyKind::TickToQuote);
        let latency_status = if t2q.is_empty() {
            KpiStatus::judged(KpiKind::LatencyP99, None, targets)
        } else {
            let p99_ns = t2q.value_at_quantile(0.99);
            let target_ns = (targets.latency_p99_max_ms * 1e6).max(0.0) as u64;
            // Compared at the histogram's resolution: a P99 in the same bucket as the
            // target meets it.
            let met = p99_ns <= t2q.highest_equivalent(target_ns);
            KpiStatus {
                kind: KpiKind::LatencyP99,
                value: Some(p99_ns as f64 / 1e6),
                target: targets.latency_p99_max_ms,
                met,
            }
        };

        let pnl_quote = self.pnl_scaled().map(scaled_to_quote);

        let kpis = vec![
            KpiStatus::judged(KpiKind::SpreadCaptured, spread_captured, targets),
            KpiStatus::judged(KpiKind::RmsInventory, rms_inventory, targets),
            KpiStatus::judged(KpiKind::FillRatio, fill_ratio, targets),
            KpiStatus::judged(KpiKind::CancelRatio, cancel_ratio, targets),
            latency_status,
            KpiStatus::judged(KpiKind::TotalPnl, pnl_quote, targets),
        ];

        KpiSnapshot {
            version: SNAPSHOT_VERSION,
            symbol: spec.symbol.as_str().to_string(),
            mode: self.params.mode.clone(),
            ts_ns: now_ns,
            elapsed_s: elapsed_ns as f64 / 1e9,
            price_decimals: spec.price_decimals(),
            qty_decimals: spec.qty_decimals(),
            mid: self
                .last_mid
                .map(|m| (i128::from(m.mid_half_ticks) * tick) as f64 / (2.0 * unit)),
            inventory_base: base(i128::from(self.inventory_lots)),
            inventory_max_base: base(i128::from(self.params.inventory_max_lots.0)),
            quotes: counts.quotes,
            orders_placed: counts.orders_placed,
            cancels: counts.cancels,
            replaces: counts.replaces,
            fills: counts.fills,
            rejects: counts.rejects,
            avg_spread_bps: (self.spread_samples > 0)
                .then(|| self.spread_bps_sum / self.spread_samples as f64),
            volume_base: base(self.volume_lots),
            volume_quote: self.volume_tick_lots.saturating_mul(tick * step) as f64 / (unit * unit),
            pnl_quote,
            fees_quote: self.fees_atoms as f64 / ATOMS_PER_UNIT as f64,
            max_drawdown_quote: scaled_to_quote(self.drawdown_max_scaled),
            markout_horizon_s: self.params.markout_ns as f64 / 1e9,
            markouts_exact: self.markouts_exact,
            markouts_forced: self.markouts_forced,
            markouts_at_end: self.markouts_at_end,
            markouts_pending: self.pending.len() as u64,
            markouts_unresolved: self.markouts_unresolved,
            records_dropped: self.dropped,
            kpis,
            latency: self.latency.summaries(),
        }
    }

    fn resolve(&mut self, fill: PendingFill, mid_half_ticks: i64, how: Resolution) {
        let edge =
            i128::from(fill.sign) * (i128::from(mid_half_ticks) - 2 * i128::from(fill.price));
        self.edge_half_tick_lots += edge * i128::from(fill.qty);
        self.half_spread_half_tick_lots +=
            i128::from(fill.half_spread_half_ticks) * i128::from(fill.qty);
        match how {
            Resolution::Exact => self.markouts_exact += 1,
            Resolution::Forced => self.markouts_forced += 1,
            Resolution::AtEnd => self.markouts_at_end += 1,
        }
    }

    fn integrate_inventory(&mut self, ts_ns: u64) {
        if ts_ns <= self.inventory_ts_ns {
            return; // a record from the past adds no time
        }
        let dt = u128::from(ts_ns - self.inventory_ts_ns);
        let sq = u128::from(self.inventory_lots.unsigned_abs()).pow(2);
        self.inventory_sq_lot2_ns = self
            .inventory_sq_lot2_ns
            .saturating_add(sq.saturating_mul(dt));
        self.inventory_ts_ns = ts_ns;
    }

    /// PnL in units of 1/(2·10¹⁶) quote: (cash + inventory·mid)[half-tick·lots] ·
    /// tick_atoms · step_atoms − fees_atoms · 2·10⁸. Exact; `None` while holding inventory
    /// without a mid.
    fn pnl_scaled(&self) -> Option<i128> {
        let mid_term = match self.last_mid {
            Some(mid) => {
                i128::from(self.inventory_lots).saturating_mul(i128::from(mid.mid_half_ticks))
            }
            None if self.inventory_lots == 0 => 0,
            None => return None,
        };
        // Before the first mid the initial inventory has no cost yet, and no value either.
        let value = self.cash_half_tick_lots.saturating_add(mid_term);
        let grid =
            i128::from(self.params.spec.tick_atoms) * i128::from(self.params.spec.step_atoms);
        let fees = self
            .fees_atoms
            .saturating_mul(2 * i128::from(ATOMS_PER_UNIT));
        Some(value.saturating_mul(grid).saturating_sub(fees))
    }

    fn mark_drawdown(&mut self) {
        let Some(pnl) = self.pnl_scaled() else {
            return;
        };
        self.pnl_peak_scaled = self.pnl_peak_scaled.max(pnl);
        self.drawdown_max_scaled = self
            .drawdown_max_scaled
            .max(self.pnl_peak_scaled.saturating_sub(pnl));
    }
}

fn scaled_to_quote(scaled: i128) -> f64 {
    scaled as f64 / (2.0 * (ATOMS_PER_UNIT as f64) * (ATOMS_PER_UNIT as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::types::Symbol;

    const S: u64 = 1_000_000_000;

    /// BTCUSDT: tick 0.01 USDT, step 0.00001 BTC.
    fn spec() -> SymbolSpec {
        SymbolSpec::from_decimals(Symbol::new("BTCUSDT").unwrap(), "0.01", "0.00001", "5").unwrap()
    }

    fn tracker(inventory_max_lots: i64) -> KpiTracker {
        KpiTracker::new(
            KpiParams::new(spec(), "backtest", Qty(inventory_max_lots)),
            0,
        )
        .unwrap()
    }

    fn fill(
        ts_ns: u64,
        side: Side,
        price: i64,
        qty: i64,
        half_spread_half_ticks: i64,
    ) -> FillRecord {
        FillRecord {
            ts_ns,
            side,
            price: Price(price),
            qty: Qty(qty),
            fee_quote_atoms: 0,
            quoted_half_spread_half_ticks: half_spread_half_ticks,
            order_id: 1,
        }
    }

    fn mid(ts_ns: u64, mid_half_ticks: i64) -> MidSample {
        MidSample {
            ts_ns,
            mid_half_ticks,
        }
    }

    fn value(snap: &KpiSnapshot, kind: KpiKind) -> Option<f64> {
        snap.kpi(kind).unwrap().value
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9 * b.abs().max(1.0)
    }

    #[test]
    fn half_spread_helper_is_distance_from_mid() {
        // bid 100, ask 103 → mid 101.5 = 203 half ticks.
        assert_eq!(
            FillRecord::half_spread_half_ticks(Side::Buy, Price(100), 203),
            3
        );
        assert_eq!(
            FillRecord::half_spread_half_ticks(Side::Sell, Price(103), 203),
            3
        );
    }

    #[test]
    fn spread_captured_uses_the_mid_at_fill_time_plus_horizon() {
        let mut t = tracker(1_000);
        t.on_mid(mid(0, 204)); // mid 102
                               // Buy at 100 quoted 2 ticks (4 half ticks) below mid.
        t.on_fill(fill(0, Side::Buy, 100, 10, 4));
        // Sell at 104 quoted 2 ticks above mid, half a second later.
        t.on_fill(fill(S / 2, Side::Sell, 104, 10, 4));
        // Mid samples: 101.5 at 0.9 s is the one prevailing at 1.0 s for the buy…
        t.on_mid(mid(9 * S / 10, 203));
        assert_eq!(t.snapshot(S).markouts_pending, 2);
        t.on_mid(mid(12 * S / 10, 250)); // …this later one is not.
        let snap = t.snapshot(12 * S / 10);
        assert_eq!(snap.markouts_exact, 1);
        assert_eq!(snap.markouts_pending, 1);
        // Buy edge = +1·(203 − 200) = 3 of 4 half ticks.
        assert!(close(value(&snap, KpiKind::SpreadCaptured).unwrap(), 0.75));
        // A sample exactly at the sell's horizon (1.5 s) is the prevailing one: 102.
        t.on_mid(mid(15 * S / 10, 204));
        let snap = t.snapshot(2 * S);
        assert_eq!(snap.markouts_exact, 2);
        // Sell edge = −1·(204 − 208) = 4: (3 + 4) / (4 + 4).
        assert!(close(value(&snap, KpiKind::SpreadCaptured).unwrap(), 0.875));
        assert!(snap.kpi(KpiKind::SpreadCaptured).unwrap().met);
    }

    #[test]
    fn spread_captured_is_weighted_by_quantity_and_can_be_negative() {
        let mut t = tracker(1_000);
        t.on_mid(mid(0, 200));
        t.on_fill(fill(0, Side::Buy, 99, 30, 2)); // edge after 1 s: 196 − 198 = −2
        t.on_fill(fill(0, Side::Sell, 101, 10, 2)); // edge: −(196 − 202) = +6
        t.on_mid(mid(S / 2, 199)); // prevails until 1 s…
        t.on_mid(mid(S, 196)); // …and this one, stamped exactly at the horizon, from 1 s
        let snap = t.snapshot(2 * S);
        // (−2·30 + 6·10) / (2·30 + 2·10) = 0 / 80.
        assert!(close(value(&snap, KpiKind::SpreadCaptured).unwrap(), 0.0));
        t.on_fill(fill(3 * S, Side::Buy, 100, 10, 2));
        t.on_mid(mid(4 * S, 190)); // edge 190 − 200 = −10
        let snap = t.snapshot(5 * S);
        assert!(close(
            value(&snap, KpiKind::SpreadCaptured).unwrap(),
            -100.0 / 100.0
        ));
        assert!(!snap.kpi(KpiKind::SpreadCaptured).unwrap().met);
    }

    #[test]
    fn pending_markouts_resolve_at_end_flagged() {
        let mut t = tracker(1_000);
        t.on_mid(mid(0, 200));
        t.on_fill(fill(S, Side::Buy, 99, 1, 2));
        t.on_mid(mid(S + 1, 202));
        let snap = t.snapshot(S + 1);
        assert_eq!(value(&snap, KpiKind::SpreadCaptured), None);
        assert!(!snap.kpi(KpiKind::SpreadCaptured).unwrap().met);
        t.finish();
        let snap = t.snapshot(S + 1);
        assert_eq!((snap.markouts_at_end, snap.markouts_pending), (1, 0));
        // Edge with the last mid: 202 − 198 = 4 of 2.
        assert!(close(value(&snap, KpiKind::SpreadCaptured).unwrap(), 2.0));
    }

    #[test]
    fn markout_queue_is_bounded_and_late_records_are_forced() {
        let mut params = KpiParams::new(spec(), "backtest", Qty(1_000));
        params.pending_fills_max = 2;
        let mut t = KpiTracker::new(params, 0).unwrap();
        t.on_mid(mid(0, 200));
        for i in 0..3 {
            t.on_fill(fill(i, Side::Buy, 99, 1, 2));
        }
        let snap = t.snapshot(10);
        assert_eq!((snap.markouts_forced, snap.markouts_pending), (1, 2));
        // A fill stamped 5 s ago arrives after a mid at 10 s: its horizon is gone.
        t.on_mid(mid(10 * S, 200));
        t.on_fill(fill(5 * S, Side::Sell, 101, 1, 2));
        let snap = t.snapshot(10 * S);
        assert_eq!(snap.markouts_forced, 2);
        assert_eq!(snap.markouts_exact, 2);
        // Without any mid, a full queue loses the oldest to `unresolved`.
        let mut params = KpiParams::new(spec(), "backtest", Qty(1_000));
        params.pending_fills_max = 1;
        let mut t = KpiTracker::new(params, 0).unwrap();
        t.on_fill(fill(0, Side::Buy, 99, 1, 2));
        t.on_fill(fill(1, Side::Buy, 99, 1, 2));
        t.finish();
        assert_eq!(t.snapshot(2).markouts_unresolved, 2);
    }

    #[test]
    fn rms_inventory_is_time_weighted() {
        let mut t = tracker(10);
        t.on_mid(mid(0, 200));
        t.on_fill(fill(S, Side::Buy, 100, 5, 1)); // +5 lots from 1 s
        t.on_fill(fill(3 * S, Side::Sell, 100, 5, 1)); // flat from 3 s
                                                       // ∫inv² dt = 25 · 2 s = 50 over 4 s → mean 12.5 → RMS √12.5 = 3.5355 lots of 10.
        let snap = t.snapshot(4 * S);
        let rms = value(&snap, KpiKind::RmsInventory).unwrap();
        assert!(close(rms, 12.5f64.sqrt() / 10.0), "{rms}");
        assert!(snap.kpi(KpiKind::RmsInventory).unwrap().met);
        // Flat after 3 s: the integral stays 50 while the time grows.
        let snap = t.snapshot(8 * S);
        assert!(close(
            value(&snap, KpiKind::RmsInventory).unwrap(),
            (50.0f64 / 8.0).sqrt() / 10.0
        ));
        // An open position counts up to `now`: short 8 lots from 8 s, seen at 10 s.
        t.on_fill(fill(8 * S, Side::Sell, 100, 8, 1));
        let snap = t.snapshot(10 * S);
        let expected = ((50.0 + 64.0 * 2.0) / 10.0f64).sqrt() / 10.0;
        assert!(close(
            value(&snap, KpiKind::RmsInventory).unwrap(),
            expected
        ));
        assert!(!snap.kpi(KpiKind::RmsInventory).unwrap().met); // 0.4219 > 0.4
        assert!(close(snap.inventory_base, -0.00008));
        // No elapsed time: no value.
        assert_eq!(value(&tracker(10).snapshot(0), KpiKind::RmsInventory), None);
    }

    #[test]
    fn pnl_is_cash_plus_inventory_at_mid_minus_fees() {
        let mut t = tracker(1_000);
        // Buy 0.001 BTC at 60000.00, fee 0.006 USDT; sell 0.001 at 60001.00, fee 0.006.
        let mut buy = fill(0, Side::Buy, 6_000_000, 100, 2);
        buy.fee_quote_atoms = 600_000;
        let mut sell = fill(S, Side::Sell, 6_000_100, 100, 2);
        sell.fee_quote_atoms = 600_000;
        t.on_fill(buy);
        // Holding inventory with no mid yet: no PnL.
        assert_eq!(t.snapshot(1).pnl_quote, None);
        t.on_fill(sell);
        let snap = t.snapshot(S);
        // 60.001 − 60.000 − 0.012 = −0.011 USDT, flat so no mid needed.
        assert!(
            close(snap.pnl_quote.unwrap(), -0.011),
            "{:?}",
            snap.pnl_quote
        );
        assert!(close(snap.fees_quote, 0.012));
        assert!(close(snap.volume_base, 0.002));
        assert!(close(snap.volume_quote, 120.001));
        assert!(!snap.kpi(KpiKind::TotalPnl).unwrap().met);
        // Now long 0.002 at 60000.00 (no fee), mid 60002.00: +0.004 USDT on it.
        t.on_fill(fill(2 * S, Side::Buy, 6_000_000, 200, 2));
        t.on_mid(mid(2 * S, 12_000_400));
        let snap = t.snapshot(2 * S);
        assert!(close(snap.pnl_quote.unwrap(), -0.011 + 0.004));
        assert!(close(snap.mid.unwrap(), 60_002.0));
        // Mid 60010.00: +0.02 → PnL +0.009 > 0.
        t.on_mid(mid(3 * S, 12_002_000));
        let snap = t.snapshot(3 * S);
        assert!(close(snap.pnl_quote.unwrap(), 0.009));
        assert!(snap.kpi(KpiKind::TotalPnl).unwrap().met);
    }

    #[test]
    fn initial_inventory_is_valued_at_the_first_mid() {
        let mut params = KpiParams::new(spec(), "live", Qty(1_000));
        params.initial_inventory_lots = Qty(100); // 0.001 BTC
        let mut t = KpiTracker::new(params, 0).unwrap();
        assert_eq!(t.snapshot(0).pnl_quote, None);
        t.on_mid(mid(0, 12_000_000)); // 60000.00: PnL starts at 0
        assert!(close(t.snapshot(0).pnl_quote.unwrap(), 0.0));
        t.on_mid(mid(S, 12_000_200)); // 60001.00: +0.001
        assert!(close(t.snapshot(S).pnl_quote.unwrap(), 0.001));
    }

    /// An inventory taken from the balances (live reconciliation): the report's inventory
    /// becomes it, the change is booked at the mid (no PnL jump, no volume, no fee), and
    /// later fills count from it.
    #[test]
    fn inventory_from_the_balances_replaces_the_fills_figure_at_the_mid() {
        let mut t = tracker(1_000);
        t.on_mid(mid(0, 12_000_000)); // 60000.00
        t.on_fill(fill(0, Side::Buy, 6_000_000, 100, 2)); // long 0.001 at 60000
        t.on_record(KpiRecord::Inventory(InventorySample {
            ts_ns: S,
            inventory_lots: Qty(300), // the balances say 0.003
            mid_half_ticks: 12_000_000,
        }));
        let snap = t.snapshot(S);
        assert!(close(snap.inventory_base, 0.003), "{}", snap.inventory_base);
        assert!(close(snap.pnl_quote.unwrap(), 0.0));
        assert!(close(snap.volume_base, 0.001));
        // 0.003 long, mid 60001.00: +0.003 USDT.
        t.on_mid(mid(2 * S, 12_000_200));
        assert!(close(t.snapshot(2 * S).pnl_quote.unwrap(), 0.003));
        // A later sell counts from the new inventory; set back to flat at the mid.
        t.on_fill(fill(3 * S, Side::Sell, 6_000_100, 100, 2));
        assert!(close(t.snapshot(3 * S).inventory_base, 0.002));
        t.on_inventory(InventorySample {
            ts_ns: 4 * S,
            inventory_lots: Qty(0),
            mid_half_ticks: 12_000_200,
        });
        let snap = t.snapshot(4 * S);
        assert!(close(snap.inventory_base, 0.0));
        assert!(
            close(snap.pnl_quote.unwrap(), 0.003),
            "{:?}",
            snap.pnl_quote
        );
    }

    #[test]
    fn max_drawdown_is_the_largest_fall_from_a_peak() {
        let mut t = tracker(1_000);
        t.on_mid(mid(0, 12_000_000));
        t.on_fill(fill(0, Side::Buy, 6_000_000, 100, 2)); // long 0.001 at 60000
        t.on_mid(mid(S, 12_002_000)); // 60010: +0.01 (peak)
        t.on_mid(mid(2 * S, 11_998_000)); // 59990: −0.01
        t.on_mid(mid(3 * S, 12_001_000)); // 60005: +0.005
        t.on_mid(mid(4 * S, 12_004_000)); // 60020: +0.02 (new peak)
        t.on_mid(mid(5 * S, 12_002_000)); // 60010: +0.01
        let snap = t.snapshot(5 * S);
        assert!(
            close(snap.max_drawdown_quote, 0.02),
            "{}",
            snap.max_drawdown_quote
        );
        assert!(close(snap.pnl_quote.unwrap(), 0.01));
    }

    #[test]
    fn ratio_targets_pass_and_fail_at_their_edges() {
        let mut t = tracker(1_000);
        let counts = |fills, cancels, replaces| OrderCounts {
            quotes: 500,
            orders_placed: 100,
            cancels,
            replaces,
            fills,
            rejects: 1,
        };
        t.on_counts(counts(5, 60, 10));
        let snap = t.snapshot(S);
        let fill = snap.kpi(KpiKind::FillRatio).unwrap();
        assert!(close(fill.value.unwrap(), 0.05) && fill.met);
        let cancel = snap.kpi(KpiKind::CancelRatio).unwrap();
        assert!(close(cancel.value.unwrap(), 0.70) && cancel.met);
        t.on_counts(counts(4, 61, 10));
        let snap = t.snapshot(S);
        assert!(!snap.kpi(KpiKind::FillRatio).unwrap().met);
        assert!(!snap.kpi(KpiKind::CancelRatio).unwrap().met);
        // Nothing placed: no ratio, not met.
        t.on_counts(OrderCounts::default());
        let snap = t.snapshot(S);
        assert_eq!(value(&snap, KpiKind::FillRatio), None);
        assert!(!snap.kpi(KpiKind::CancelRatio).unwrap().met);
    }

    #[test]
    fn spread_captured_target_edge_is_inclusive() {
        let mut t = tracker(1_000);
        t.on_mid(mid(0, 200));
        t.on_fill(fill(0, Side::Buy, 99, 1, 10));
        t.on_mid(mid(S, 205)); // edge 205 − 198 = 7 of 10 half ticks
        let snap = t.snapshot(2 * S);
        let sc = snap.kpi(KpiKind::SpreadCaptured).unwrap();
        assert_eq!(sc.value, Some(0.7));
        assert!(sc.met);
    }

    #[test]
    fn latency_p99_comes_from_tick_to_quote_and_meets_at_resolution() {
        let mut t = tracker(1_000);
        assert!(!t.snapshot(S).kpi(KpiKind::LatencyP99).unwrap().met); // no samples
        for _ in 0..100 {
            t.on_record(KpiRecord::Latency(LatencySample {
                kind: LatencyKind::TickToQuote,
                ns: 300_000_000,
            }));
        }
        t.latency_mut().record(LatencyKind::Feed, 900_000_000_000); // other kinds don't count
        let snap = t.snapshot(S);
        let p99 = snap.kpi(KpiKind::LatencyP99).unwrap();
        assert!((p99.value.unwrap() - 300.0).abs() < 0.3, "{p99:?}");
        assert!(p99.met, "300 ms meets ≤ 300 ms");
        let mut t = tracker(1_000);
        for _ in 0..100 {
            t.latency_mut()
                .record(LatencyKind::TickToQuote, 301_000_000);
        }
        assert!(!t.snapshot(S).kpi(KpiKind::LatencyP99).unwrap().met);
        assert_eq!(t.snapshot(S).latency.len(), 4);
    }

    #[test]
    fn pnl_target_is_strict_and_counts_targets() {
        let t = tracker(1_000);
        let snap = t.snapshot(S);
        // Flat, no fills: PnL 0 is not > 0; RMS 0 ≤ 0.4 is the only target met.
        assert_eq!(value(&snap, KpiKind::TotalPnl), Some(0.0));
        assert!(!snap.kpi(KpiKind::TotalPnl).unwrap().met);
        assert_eq!(snap.targets_met(), 1);
        assert!(!snap.all_met());
        assert_eq!(snap.kpis.len(), 6);
        let kinds: Vec<_> = snap.kpis.iter().map(|k| k.kind).collect();
        assert_eq!(kinds, KpiKind::ALL);
    }

    #[test]
    fn quotes_average_spread_in_bps() {
        let mut t = tracker(1_000);
        // 6000000/6000600 ticks: spread 6.00 over mid 60003.00 = 0.99995 bps.
        t.on_quote(QuoteSample {
            ts_ns: 0,
            bid: Price(6_000_000),
            ask: Price(6_000_600),
        });
        t.on_quote(QuoteSample {
            ts_ns: 1,
            bid: Price(99),
            ask: Price(101),
        }); // 200 bps
        let avg = t.snapshot(1).avg_spread_bps.unwrap();
        assert!(
            close(avg, (600.0 / 6_000_300.0 * 1e4 + 200.0) / 2.0),
            "{avg}"
        );
        t.on_record(KpiRecord::Dropped(7));
        assert_eq!(t.snapshot(1).records_dropped, 7);
    }

    #[test]
    fn params_are_validated() {
        let err = |f: fn(&mut KpiParams)| {
            let mut p = KpiParams::new(spec(), "x", Qty(10));
            f(&mut p);
            KpiTracker::new(p, 0).unwrap_err()
        };
        assert_eq!(
            err(|p| p.inventory_max_lots = Qty(0)),
            KpiParamsError::InventoryMax
        );
        assert_eq!(
            err(|p| p.pending_fills_max = 0),
            KpiParamsError::PendingFillsMax
        );
        assert_eq!(
            err(|p| p.targets.latency_p99_max_ms = f64::NAN),
            KpiParamsError::Target("latency_p99_max_ms")
        );
    }

    #[test]
    fn snapshot_serialises_to_json_and_back() {
        let mut t = tracker(1_000);
        t.on_mid(mid(0, 200));
        let snap = t.snapshot(S);
        let text = serde_json::to_string(&snap).unwrap();
        let back: KpiSnapshot = serde_json::from_str(&text).unwrap();
        assert_eq!(back, snap);
    }
}
