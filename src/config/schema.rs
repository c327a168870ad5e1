//! The validated configuration: `Config` and its typed sections (model, market data, engine,
//! quoting, OFI, venue, KPIs, metrics, live, log, calibration), and what `Config` derives
//! from them (the model's parameters, the maker fee, the start-up banner).
//!
//! Never reads files or the environment, never validates (a `Config` only comes out of
//! `load`, already checked).

use super::*;

/// The validated configuration every mode runs from.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The symbol and its price/quantity grid.
    pub spec: SymbolSpec,
    /// Quoting-model parameters.
    pub model: ModelConfig,
    /// Spread clamp and sizes.
    pub quoting: QuotingConfig,
    /// Order-flow-imbalance tilt.
    pub ofi: OfiConfig,
    /// Market-data connection.
    pub market_data: MarketDataConfig,
    /// Hot-thread settings.
    pub engine: EngineConfig,
    /// Log file settings.
    pub log: LogConfig,
    /// Quote-to-order rules and order rate limits.
    pub orders: OrderParams,
    /// Pre-trade risk limits (`inventory_max_lots` is `quoting.inventory_max`).
    pub risk: RiskLimits,
    /// The simulated venue (paper trading and backtests).
    pub venue: VenueConfig,
    /// KPI targets and the markout horizon.
    pub kpi: KpiConfig,
    /// `[metrics]`: the optional Prometheus endpoint.
    pub metrics: MetricsConfig,
    /// `[live]`: real order entry.
    pub live: LiveConfig,
    /// `[calibration]`: walk-forward split, objective and default grid of
    /// `--mode=calibration`.
    pub calibration: CalibrationConfig,
    /// The layers that were applied, in order (for the banner and the log).
    pub layers: Vec<String>,
    /// Accepted but doubtful settings, to be shown to the user at start.
    pub warnings: Vec<String>,
}

/// Where σ comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigmaSource {
    /// Always `sigma_bps_per_sqrt_s`.
    Fixed,
    /// The engine's online estimator; `sigma_bps_per_sqrt_s` until it has warmed up.
    Estimated,
}

/// Avellaneda–Stoikov parameters, on the relative (bps of mid) scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModelConfig {
    /// Risk aversion γ, 1/bps.
    pub gamma_per_bps: f64,
    /// Where σ comes from.
    pub sigma_source: SigmaSource,
    /// Volatility of mid σ, bps/√s.
    pub sigma_bps_per_sqrt_s: f64,
    /// Trade-intensity decay k, 1/bps.
    pub k_per_bps: f64,
    /// Rolling horizon τ, seconds.
    pub horizon_s: f64,
    /// σ estimator sampling interval, seconds.
    pub sigma_sample_s: f64,
    /// σ estimator EWMA half-life, seconds.
    pub sigma_half_life_s: f64,
    /// σ samples before the estimate replaces the configured value.
    pub sigma_warmup_samples: u32,
    /// Which closed form quotes: Avellaneda–Stoikov or GLFT.
    pub kind: model::ModelKind,
    /// Trade intensity at the mid A of λ(δ) = A·e^(−kδ), 1/s (GLFT).
    pub intensity_a_per_s: f64,
}

/// Where market data comes from.
#[derive(Clone, Debug, PartialEq)]
pub struct MarketDataConfig {
    /// WebSocket base URL (`wss://host:port`).
    pub ws_url: String,
    /// REST base URL (`https://host:port`).
    pub rest_url: String,
    /// CA certificates to trust instead of the public roots (local exchange only).
    pub ca_file: Option<PathBuf>,
    /// Silence after which the connection is stale, seconds.
    pub stale_after_s: f64,
    /// Levels per side of the L2 book.
    pub book_levels: usize,
    /// Levels per side asked for in the REST snapshot.
    pub snapshot_limit: u32,
}

/// Hot-thread settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineConfig {
    /// Core to pin the hot thread to, if any.
    pub cpu_core: Option<usize>,
    /// Paper and live: warm the decode → quote path after this long without market data,
    /// and again as long as it stays quiet, µs; 0 = never (`hot::WarmUp`).
    pub warm_every_us: u64,
}

/// Spread clamp and order sizes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QuotingConfig {
    /// Smallest total spread, bps of mid.
    pub spread_min_bps: f64,
    /// Largest total spread, bps of mid.
    pub spread_max_bps: f64,
    /// Size of each quote, lots.
    pub quote_size_lots: Qty,
    /// Inventory limit, lots.
    pub inventory_max_lots: Qty,
    /// Re-quote band, fraction of the half-spread in [0, 1].
    pub requote_band: f64,
    /// How far the quote centre leans from the mid toward the micro-price, in [0, 1].
    pub microprice_weight: f64,
}

/// Order-flow-imbalance tilt.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OfiConfig {
    /// β, dimensionless: the centre moves by clamp(β·OFI, −1, 1) ticks (`tilt = "ticks"`)
    /// or by β·OFI·σ bps (`tilt = "sigma"`).
    pub beta: f64,
    /// How the tilt is scaled.
    pub tilt: model::OfiTilt,
    /// Rolling window, seconds.
    pub window_s: f64,
}

/// The simulated venue: fill model parameters and the market-data latency a replay assumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VenueConfig {
    /// Order-entry and report latency, maker fee, queue model, seed.
    pub sim: SimParams,
    /// Exchange → engine latency of market data (backtests).
    pub feed_latency: FeedLatency,
}

/// Where a backtest takes the market-data (feed) latency from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedLatency {
    /// Estimated from the data (receive time − exchange event time) when the data carries
    /// both and they look like one clock; otherwise `default_ns`.
    Data {
        /// Used when the data cannot tell, ns.
        default_ns: u64,
    },
    /// Always this, ns.
    Fixed {
        /// Latency, ns.
        ns: u64,
    },
}

/// KPI targets (issue 5's six KPIs) and the markout horizon of "spread captured".
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KpiConfig {
    /// Horizon of the realised edge (mid this long after a fill), seconds.
    pub markout_horizon_s: f64,
    /// Console report and KPI snapshot period of paper and live trading, seconds.
    pub report_every_s: f64,
    /// Spread captured must be at least this, fraction (0.70 = 70 %).
    pub spread_captured_min: f64,
    /// Time-weighted RMS inventory / inventory max must be at most this, fraction.
    pub rms_inventory_max: f64,
    /// Fills / orders placed must be at least this, fraction.
    pub fill_ratio_min: f64,
    /// Cancels / orders placed must be at most this, fraction.
    pub cancel_ratio_max: f64,
    /// Tick-to-quote P99 must be at most this, milliseconds.
    pub latency_p99_ms_max: f64,
    /// Total PnL must be greater than this, quote currency.
    pub pnl_min: f64,
}

/// `[metrics]`: the Prometheus / OpenMetrics endpoint the side thread serves (paper
/// trading and live), off unless `listen` is set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Loopback `IP:PORT` to serve `GET /metrics` on (`None`: off; port 0 picks one).
    pub listen: Option<std::net::SocketAddr>,
}

/// `[live]`: order entry on Binance (`--mode=live` only).
#[derive(Clone, Debug, PartialEq)]
pub struct LiveConfig {
    /// WebSocket API URL (`wss://ws-api.binance.com:443/ws-api/v3`).
    pub ws_api_url: String,
    /// The config-file form of `--i-understand-live-trading`.
    pub i_understand_live_trading: bool,
    /// The base balance the strategy steers toward (inventory = balance − target), as
    /// written (a decimal of the base asset); `None` = not set (live mode refuses to start).
    pub base_target: Option<String>,
    /// Cancel every open order on the symbol at start (else refuse to start when any).
    pub cancel_open_orders_on_start: bool,
    /// `recvWindow` of signed requests, ms (≤ 60000).
    pub recv_window_ms: u32,
    /// Requests held back once a rate-limit count is within this of its limit.
    pub rate_headroom: u32,
    /// Ctrl+C: longest wait for the cancel confirmations, seconds.
    pub shutdown_wait_s: f64,
    /// Age at which the order connection rotates (make-before-break, starting
    /// `ROTATION_LEAD_NS` before it), seconds; Binance closes it at 24 h.
    pub order_connection_max_age_s: f64,
}

/// Log file settings.
#[derive(Clone, Debug, PartialEq)]
pub struct LogConfig {
    /// Folder of `mm_v1_YYYYMMDD.log`.
    pub dir: PathBuf,
    /// Least severe level written.
    pub level: LogLevel,
}

/// Log severity, most severe first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// Something failed.
    Error,
    /// Something doubtful that did not stop the run.
    Warn,
    /// What happened (the default).
    Info,
    /// Every decision.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// Parses `error|warn|info|debug|trace` (case-insensitive).
    pub fn parse(text: &str) -> Option<LogLevel> {
        match text.to_ascii_lowercase().as_str() {
            "error" => Some(LogLevel::Error),
            "warn" | "warning" => Some(LogLevel::Warn),
            "info" => Some(LogLevel::Info),
            "debug" => Some(LogLevel::Debug),
            "trace" => Some(LogLevel::Trace),
            _ => None,
        }
    }

    /// Upper-case name as written in the log.
    pub const fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "ERROR",
            LogLevel::Warn => "WARN",
            LogLevel::Info => "INFO",
            LogLevel::Debug => "DEBUG",
            LogLevel::Trace => "TRACE",
        }
    }
}

/// `[calibration]`: how `--mode=calibration` splits the data, scores a grid point and
/// which grid it searches when no `--grid` is given.
#[derive(Clone, Debug, PartialEq)]
pub struct CalibrationConfig {
    /// Share of the data's time span the estimators are fitted on (the first part), fraction.
    pub fit_fraction: f64,
    /// Share of the span the grid point is chosen on (the next part), fraction; the rest is
    /// held out and only the chosen point is run on it.
    pub choose_fraction: f64,
    /// Shortest data span calibration accepts, seconds.
    pub min_span_s: f64,
    /// Trade intensity: trade depths are measured from the mid at the start of intervals of
    /// this length (the view of an order resting that long), seconds.
    pub intensity_interval_s: f64,
    /// What the search maximises.
    pub objective: CalibrationObjective,
    /// Objective `penalised`: subtracted per KPI target missed, quote currency.
    pub kpi_miss_penalty: f64,
    /// Objective `penalised`: subtracted per unit of RMS inventory / inventory max, quote
    /// currency.
    pub rms_inventory_penalty: f64,
    /// Default grid of `model.gamma_per_bps`, 1/bps.
    pub grid_gamma_per_bps: Vec<f64>,
    /// Default grid of `ofi.beta`, ticks per unit of normalised OFI.
    pub grid_ofi_beta: Vec<f64>,
    /// Default grid of `model.horizon_s`, seconds.
    pub grid_horizon_s: Vec<f64>,
}

/// What `--mode=calibration` maximises over the grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CalibrationObjective {
    /// Spread PnL net of fees − κ·Σ(minute inventory PnL)², none below 20 fills
    /// (`calibration::objective`). The default.
    Spread,
    /// PnL − kpi_miss_penalty × targets missed − rms_inventory_penalty × RMS inventory.
    Penalised,
    /// PnL alone.
    Pnl,
    /// Most KPI targets met; PnL breaks ties.
    Targets,
}

impl CalibrationObjective {
    /// The config spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            CalibrationObjective::Spread => "spread",
            CalibrationObjective::Penalised => "penalised",
            CalibrationObjective::Pnl => "pnl",
            CalibrationObjective::Targets => "targets",
        }
    }
}

impl Config {
    /// The quoting-model parameters in the model's own type.
    pub fn model_params(&self) -> model::Params {
        model::Params {
            gamma_per_bps: self.model.gamma_per_bps,
            sigma_bps_per_sqrt_s: self.model.sigma_bps_per_sqrt_s,
            k_per_bps: self.model.k_per_bps,
            horizon_s: self.model.horizon_s,
            ofi_beta: self.ofi.beta,
            spread_min_bps: self.quoting.spread_min_bps,
            spread_max_bps: self.quoting.spread_max_bps,
            inventory_max_lots: self.quoting.inventory_max_lots,
            quote_size_lots: self.quoting.quote_size_lots,
            kind: self.model.kind,
            intensity_a_per_s: self.model.intensity_a_per_s,
            maker_fee_bps: self.maker_fee_bps(),
            ofi_tilt: self.ofi.tilt,
            requote_band: self.quoting.requote_band,
            microprice_weight: self.quoting.microprice_weight,
        }
    }

    /// The maker fee of the account's tier, bps (negative = rebate): `venue.maker_fee_bps`,
    /// used by the quoting model and by the simulated venue alike.
    pub fn maker_fee_bps(&self) -> f64 {
        self.venue.sim.maker_fee_centibps as f64 / 100.0
    }

    /// The seed's start-up banner, two lines.
    pub fn banner(&self, mode: &str) -> String {
        format!(
            "Market Making V1 — mode: {mode} — symbol: {symbol}\n\
             model {kind} | gamma {gamma} | inventory max {inv} | spread {min}–{max} bps | OFI \
             beta {beta} ({tilt}), window {window:.1} s | horizon {horizon} s | maker fee {fee} bps",
            kind = self.model.kind.name(),
            tilt = self.ofi.tilt.name(),
            fee = self.maker_fee_bps(),
            symbol = self.spec.symbol,
            gamma = self.model.gamma_per_bps,
            inv = Decimal(self.spec.qty_to_f64(self.quoting.inventory_max_lots)),
            min = self.quoting.spread_min_bps,
            max = self.quoting.spread_max_bps,
            beta = self.ofi.beta,
            window = self.ofi.window_s,
            horizon = self.model.horizon_s,
        )
    }
}

/// Prints a float with at least one decimal (`1.0`, `0.001`), as the banner shows sizes.
struct Decimal(f64);

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.fract() == 0.0 {
            write!(f, "{:.1}", self.0)
        } else {
            write!(f, "{}", self.0)
        }
    }
}
