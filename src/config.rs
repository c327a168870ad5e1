//! Configuration: raw TOML layers → one validated `Config`.
//!
//! Owns: reading config files and `MM__*` environment overrides, merging the layers
//! (defaults ← config/calibrated.toml ← `--config` ← environment ← flags), and turning the
//! merged text into typed, checked values. Two stages, as ripgrep does: every layer is first
//! checked on its own against the schema (so an unknown key or a wrong type names the file or
//! variable it came from), then the merged values are validated as a whole (so `min > max`
//! names the key and the layer that set it).
//!
//! Never: reads anything after start-up, prints, or panics on bad input — every problem is a
//! `ConfigError` that says where, which key, what is wrong and how to fix it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::model;
use crate::orders::{OrderParams, OrderParamsError};
use crate::risk::{LimitsError, RiskLimits};
use crate::types::{parse_atoms, Qty, Symbol, SymbolSpec};
use crate::venue::sim::{LatencyModel, SimParams, SimParamsError};

/// The defaults, built into the binary so that it runs even without the config folder.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");
/// Where the defaults are read from when the file exists (edits there take effect).
pub const DEFAULT_PATH: &str = "config/default.toml";
/// The overlay written by `--mode=calibration`, applied when present.
pub const CALIBRATED_PATH: &str = "config/calibrated.toml";
/// Prefix of environment overrides: `MM__<SECTION>__<KEY>`.
pub const ENV_PREFIX: &str = "MM__";
/// Longest accepted horizon τ, seconds. Longer horizons were the seed's "spread 0 bps" bug.
pub const HORIZON_S_MAX: f64 = 3600.0;

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

/// A configuration problem: where it is, which key, what is wrong, how to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, environment variable or flag the bad value came from.
    pub source: String,
    /// Dotted key path (`model.gamma_per_bps`), or empty for a whole-file problem.
    pub key: String,
    /// What is wrong.
    pub problem: String,
    /// What to do about it.
    pub fix: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "config error in {}: {}", self.source, self.problem)?;
        } else {
            write!(
                f,
                "config error in {}: key `{}`: {}",
                self.source, self.key, self.problem
            )?;
        }
        write!(f, " — fix: {}", self.fix)
    }
}

impl std::error::Error for ConfigError {}

/// What `load` needs from the outside world, gathered by `main` so that tests can pass their
/// own.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Folder that holds `config/` (the working directory in normal use).
    pub root: PathBuf,
    /// `--config=PATH`, if given.
    pub config_path: Option<PathBuf>,
    /// Environment variables (only those starting with `MM__` are used).
    pub env: Vec<(String, String)>,
    /// Names (lossy) of `MM__` variables whose name or value is not UTF-8: `load` refuses
    /// them by name. Other non-UTF-8 variables are none of mm's business and are ignored.
    pub env_not_utf8: Vec<String>,
    /// `--symbol`, if given.
    pub symbol: Option<String>,
    /// `--log-level`, if given.
    pub log_level: Option<String>,
    /// `--endpoint`, if given: the WebSocket base URL; the REST URL is derived from it.
    pub endpoint: Option<String>,
    /// `--ca`, if given.
    pub ca_file: Option<String>,
    /// `--set key=value` flags, in order (each one a layer named after the flag).
    pub sets: Vec<String>,
}

impl LoadOptions {
    /// Options for a normal run: the working directory and this process's environment.
    pub fn from_process(config_path: Option<PathBuf>) -> LoadOptions {
        LoadOptions {
            root: PathBuf::from("."),
            config_path,
            env: Vec::new(),
            env_not_utf8: Vec::new(),
            symbol: None,
            log_level: None,
            endpoint: None,
            ca_file: None,
            sets: Vec::new(),
        }
        .with_env(std::env::vars_os())
    }

    /// Keeps the `MM__` variables of `vars` (`std::env::vars_os()` in normal use): as text
    /// in `env`, or by name in `env_not_utf8` when not UTF-8. Never panics on any bytes.
    pub fn with_env(
        mut self,
        vars: impl IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
    ) -> LoadOptions {
        for (name, value) in vars {
            if !name.as_encoded_bytes().starts_with(ENV_PREFIX.as_bytes()) {
                continue;
            }
            match (name.into_string(), value.into_string()) {
                (Ok(name), Ok(value)) => self.env.push((name, value)),
                (Ok(name), Err(_)) => self.env_not_utf8.push(name),
                (Err(name), _) => self.env_not_utf8.push(name.to_string_lossy().into_owned()),
            }
        }
        self
    }
}

/// The cores this process may run on (its affinity mask; empty if unknown).
pub fn online_cores() -> Vec<usize> {
    core_affinity::get_core_ids()
        .unwrap_or_default()
        .iter()
        .map(|c| c.id)
        .collect()
}

/// `core` is one of [`online_cores`].
pub fn core_is_online(core: usize) -> bool {
    online_cores().contains(&core)
}

/// Reads, merges and validates every layer.
pub fn load(options: &LoadOptions) -> Result<Config, ConfigError> {
    let mut layers: Vec<Layer> = Vec::new();

    let default_path = options.root.join(DEFAULT_PATH);
    if default_path.is_file() {
        layers.push(Layer::from_file(&default_path)?);
    } else {
        layers.push(Layer::from_text(
            "built-in defaults (config/default.toml not found)".to_string(),
            DEFAULT_TOML,
        )?);
    }
    let calibrated_path = options.root.join(CALIBRATED_PATH);
    if calibrated_path.is_file() {
        layers.push(Layer::from_file(&calibrated_path)?);
    }
    if let Some(path) = &options.config_path {
        if !path.is_file() {
            return Err(ConfigError {
                source: format!("--config={}", path.display()),
                key: String::new(),
                problem: "the file does not exist".to_string(),
                fix: "give the path of a TOML file (see config/default.toml for the keys)"
                    .to_string(),
            });
        }
        layers.push(Layer::from_file(path)?);
    }
    if let Some(name) = options.env_not_utf8.first() {
        return Err(ConfigError {
            source: format!("environment variable {name}"),
            key: String::new(),
            problem: "its name or value is not UTF-8 text".to_string(),
            fix: format!("set it to UTF-8 text, or unset it (unset '{name}')"),
        });
    }
    let mut env: Vec<&(String, String)> = options
        .env
        .iter()
        .filter(|(name, _)| name.starts_with(ENV_PREFIX))
        .collect();
    env.sort();
    for (name, value) in env {
        layers.push(Layer::from_env(name, value)?);
    }
    if let Some(symbol) = &options.symbol {
        layers.push(Layer::single(
            "flag --symbol",
            &["market", "symbol"],
            toml::Value::String(symbol.clone()),
        )?);
    }
    if let Some(level) = &options.log_level {
        layers.push(Layer::single(
            "flag --log-level",
            &["log", "level"],
            toml::Value::String(level.clone()),
        )?);
    }

    if let Some(endpoint) = &options.endpoint {
        let rest = rest_url_for(endpoint).ok_or_else(|| ConfigError {
            source: "flag --endpoint".to_string(),
            key: "market_data.ws_url".to_string(),
            problem: format!("{endpoint:?} is not a ws:// or wss:// URL"),
            fix: "give the WebSocket base URL, e.g. --endpoint=wss://127.0.0.1:9443".to_string(),
        })?;
        layers.push(Layer::single(
            "flag --endpoint",
            &["market_data", "ws_url"],
            toml::Value::String(endpoint.trim_end_matches('/').to_string()),
        )?);
        layers.push(Layer::single(
            "flag --endpoint",
            &["market_data", "rest_url"],
            toml::Value::String(rest),
        )?);
        layers.push(Layer::single(
            "flag --endpoint",
            &["live", "ws_api_url"],
            toml::Value::String(format!("{}/ws-api/v3", endpoint.trim_end_matches('/'))),
        )?);
    }
    if let Some(ca) = &options.ca_file {
        layers.push(Layer::single(
            "flag --ca",
            &["market_data", "ca_file"],
            toml::Value::String(ca.clone()),
        )?);
    }

    for set in &options.sets {
        layers.push(Layer::from_set(set)?);
    }

    let mut merged = toml::Table::new();
    let mut origins: BTreeMap<String, String> = BTreeMap::new();
    for layer in &layers {
        merge_into(&mut merged, &layer.table, "", &layer.name, &mut origins);
    }
    let raw = check_schema("the merged configuration", merged)?;
    let mut names: Vec<String> = layers.iter().map(|l| l.name.clone()).collect();
    names.dedup();
    validate(raw, &origins, names)
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

/// One source of settings and its parsed table.
struct Layer {
    name: String,
    table: toml::Table,
}

impl Layer {
    fn from_file(path: &Path) -> Result<Layer, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            source: name.clone(),
            key: String::new(),
            problem: format!("cannot read the file: {e}"),
            fix: "check the path and its permissions".to_string(),
        })?;
        Layer::from_text(name, &text)
    }

    fn from_text(name: String, text: &str) -> Result<Layer, ConfigError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| ConfigError {
            source: name.clone(),
            key: String::new(),
            problem: format!("not valid TOML: {}", one_line(&e.to_string())),
            fix: "correct the syntax at the line shown (strings need quotes, one key per line)"
                .to_string(),
        })?;
        check_schema(&name, table.clone())?;
        Ok(Layer { name, table })
    }

    fn from_env(name: &str, value: &str) -> Result<Layer, ConfigError> {
        let rest = &name[ENV_PREFIX.len()..];
        let path: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
        if path.len() != 2 || path.iter().any(|p| p.is_empty()) {
            return Err(ConfigError {
                source: format!("environment variable {name}"),
                key: path.join("."),
                problem: "expected the form MM__<SECTION>__<KEY>".to_string(),
                fix: "e.g. MM__MODEL__GAMMA_PER_BPS=0.2, or unset the variable".to_string(),
            });
        }
        // A value is read as a TOML value when it is one (numbers, booleans, quoted
        // strings), otherwise taken as a plain string (MM__MARKET__SYMBOL=ETHUSDT).
        let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.to_string()));
        let keys: Vec<&str> = path.iter().map(String::as_str).collect();
        Layer::single(&format!("environment variable {name}"), &keys, parsed)
    }

    /// A `--set section.key=value` flag: the value is read like an environment override.
    fn from_set(text: &str) -> Result<Layer, ConfigError> {
        let source = format!("flag --set {text}");
        let bad = |problem: &str| ConfigError {
            source: source.clone(),
            key: String::new(),
            problem: problem.to_string(),
            fix: "write --set section.key=value, e.g. --set model.gamma_per_bps=0.2 (keys as \
                  in config/default.toml)"
                .to_string(),
        };
        let (key, value) = text
            .split_once('=')
            .ok_or_else(|| bad("expected key=value"))?;
        let keys: Vec<&str> = key.trim().split('.').collect();
        if keys.len() != 2 || keys.iter().any(|k| k.is_empty()) {
            return Err(bad("the key must be section.key"));
        }
        let value = value.trim();
        let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.to_string()));
        Layer::single(&source, &keys, parsed)
    }

    fn single(source: &str, keys: &[&str], value: toml::Value) -> Result<Layer, ConfigError> {
        let mut leaf = toml::Table::new();
        let (last, sections) = match keys.split_last() {
            Some(split) => split,
            None => {
                return Err(ConfigError {
                    source: source.to_string(),
                    key: String::new(),
                    problem: "empty key".to_string(),
                    fix: "name a key".to_string(),
                })
            }
        };
        leaf.insert((*last).to_string(), value);
        let mut table = leaf;
        for section in sections.iter().rev() {
            let mut outer = toml::Table::new();
            outer.insert((*section).to_string(), toml::Value::Table(table));
            table = outer;
        }
        check_schema(source, table.clone())?;
        Ok(Layer {
            name: source.to_string(),
            table,
        })
    }
}

/// Deep-merges `overlay` into `base`, remembering which layer set each leaf.
fn merge_into(
    base: &mut toml::Table,
    overlay: &toml::Table,
    prefix: &str,
    layer: &str,
    origins: &mut BTreeMap<String, String>,
) {
    for (key, value) in overlay {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match (base.get_mut(key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(over)) => {
                merge_into(inner, over, &path, layer, origins);
            }
            _ => {
                if let toml::Value::Table(over) = value {
                    let mut fresh = toml::Table::new();
                    merge_into(&mut fresh, over, &path, layer, origins);
                    base.insert(key.clone(), toml::Value::Table(fresh));
                } else {
                    origins.insert(path, layer.to_string());
                    base.insert(key.clone(), value.clone());
                }
            }
        }
    }
}

/// Stage one: keys and types, for one layer or the merge.
fn check_schema(source: &str, table: toml::Table) -> Result<RawConfig, ConfigError> {
    let value = toml::Value::Table(table);
    serde_path_to_error::deserialize::<_, RawConfig>(value).map_err(|e| {
        let key = e.path().to_string();
        let inner = one_line(&e.inner().to_string());
        let fix = if inner.contains("unknown field") {
            "remove or rename the key; the valid keys are listed in config/default.toml".to_string()
        } else if inner.contains("invalid type") {
            "give the type shown in config/default.toml (numbers unquoted, decimal amounts \
             and names in quotes)"
                .to_string()
        } else {
            "see config/default.toml for the expected form".to_string()
        };
        ConfigError {
            source: source.to_string(),
            key: if key == "." { String::new() } else { key },
            problem: inner,
            fix,
        }
    })
}

/// Stage two: required keys present, ranges, cross-field rules.
fn validate(
    raw: RawConfig,
    origins: &BTreeMap<String, String>,
    layers: Vec<String>,
) -> Result<Config, ConfigError> {
    let v = Validator { origins };
    let market = raw.market.unwrap_or_default();
    let model_raw = raw.model.unwrap_or_default();
    let quoting = raw.quoting.unwrap_or_default();
    let ofi = raw.ofi.unwrap_or_default();
    let log = raw.log.unwrap_or_default();
    let mut warnings = Vec::new();

    let symbol_text = v.required("market.symbol", market.symbol)?;
    let symbol = Symbol::new(&symbol_text).map_err(|e| {
        v.error(
            "market.symbol",
            e.to_string(),
            "use a Binance symbol such as BTCUSDT",
        )
    })?;
    let tick = v.required("market.tick_size", market.tick_size)?.0;
    let step = v.required("market.step_size", market.step_size)?.0;
    let min_notional = v.required("market.min_notional", market.min_notional)?.0;
    let spec = SymbolSpec::from_decimals(symbol, &tick, &step, &min_notional).map_err(|e| {
        let key = match e {
            crate::types::SpecError::TickSize(_) | crate::types::SpecError::Zero => {
                "market.tick_size"
            }
            crate::types::SpecError::StepSize(_) => "market.step_size",
            crate::types::SpecError::MinNotional(_) => "market.min_notional",
        };
        v.error(
            key,
            e.to_string(),
            "write the exchangeInfo value as a positive decimal string, e.g. \"0.01\"",
        )
    })?;

    let gamma = v.required("model.gamma_per_bps", model_raw.gamma_per_bps)?;
    v.positive("model.gamma_per_bps", gamma, "e.g. gamma_per_bps = 0.1")?;
    let sigma_source = match v
        .required("model.sigma_source", model_raw.sigma_source)?
        .as_str()
    {
        "fixed" => SigmaSource::Fixed,
        "estimated" => SigmaSource::Estimated,
        other => {
            return Err(v.error(
                "model.sigma_source",
                format!("unknown source {other:?}"),
                "use \"fixed\" or \"estimated\"",
            ))
        }
    };
    let kind_text = v.required("model.kind", model_raw.kind)?;
    let kind = model::ModelKind::parse(&kind_text).ok_or_else(|| {
        v.error(
            "model.kind",
            format!("unknown model {kind_text:?}"),
            "use \"avellaneda-stoikov\" (finite rolling horizon) or \"glft\" (Guéant–Lehalle–\
             Fernandez-Tapia, infinite horizon)",
        )
    })?;
    let intensity_a = v.required("model.intensity_a_per_s", model_raw.intensity_a_per_s)?;
    v.positive(
        "model.intensity_a_per_s",
        intensity_a,
        "e.g. intensity_a_per_s = 1.0 (calibration measures it)",
    )?;
    let sigma = v.required("model.sigma_bps_per_sqrt_s", model_raw.sigma_bps_per_sqrt_s)?;
    if !sigma.is_finite() || sigma < 0.0 {
        return Err(v.error(
            "model.sigma_bps_per_sqrt_s",
            format!("{sigma} is not a volatility"),
            "give a finite number ≥ 0, in bps per √s (BTCUSDT ≈ 1.25)",
        ));
    }
    let k = v.required("model.k_per_bps", model_raw.k_per_bps)?;
    v.positive("model.k_per_bps", k, "e.g. k_per_bps = 1.5")?;
    let horizon = v.required("model.horizon_s", model_raw.horizon_s)?;
    v.positive("model.horizon_s", horizon, "e.g. horizon_s = 120")?;
    if horizon > HORIZON_S_MAX {
        return Err(v.error(
            "model.horizon_s",
            format!(
                "{horizon} s is longer than {HORIZON_S_MAX} s; a horizon of days was the \
                 \"spread 0.0 bps\" bug (the inventory term explodes and the spread pins at a clamp)"
            ),
            "use a rolling horizon of seconds to minutes (default 120)",
        ));
    }
    if horizon > 600.0 {
        warnings.push(format!(
            "model.horizon_s = {horizon} s is long for a rolling horizon; the inventory skew \
             grows with it (default 120 s)"
        ));
    }

    let spread_min = v.required("quoting.spread_min_bps", quoting.spread_min_bps)?;
    v.positive(
        "quoting.spread_min_bps",
        spread_min,
        "e.g. spread_min_bps = 5",
    )?;
    let spread_max = v.required("quoting.spread_max_bps", quoting.spread_max_bps)?;
    v.positive(
        "quoting.spread_max_bps",
        spread_max,
        "e.g. spread_max_bps = 200",
    )?;
    if spread_min > spread_max {
        return Err(v.error(
            "quoting.spread_min_bps",
            format!("spread_min_bps ({spread_min}) is larger than spread_max_bps ({spread_max})"),
            "make spread_min_bps ≤ spread_max_bps",
        ));
    }
    if spread_max > 10_000.0 {
        return Err(v.error(
            "quoting.spread_max_bps",
            format!("{spread_max} bps is more than 100 % of mid"),
            "use at most 10000 bps",
        ));
    }
    let quote_size = v.size("quoting.quote_size", quoting.quote_size, &spec)?;
    let inventory_max = v.size("quoting.inventory_max", quoting.inventory_max, &spec)?;
    if quote_size > inventory_max {
        return Err(v.error(
            "quoting.quote_size",
            "the quote size is larger than the inventory limit".to_string(),
            "make quote_size ≤ inventory_max",
        ));
    }

    let beta = v.required("ofi.beta", ofi.beta)?;
    if !beta.is_finite() || beta < 0.0 {
        return Err(v.error(
            "ofi.beta",
            format!("{beta} is not a valid coefficient"),
            "give a finite number ≥ 0 (0 turns the tilt off; default 0.3)",
        ));
    }
    let tilt_text = v.required("ofi.tilt", ofi.tilt)?;
    let tilt = model::OfiTilt::parse(&tilt_text).ok_or_else(|| {
        v.error(
            "ofi.tilt",
            format!("unknown tilt {tilt_text:?}"),
            "use \"ticks\" (the seed's ±1 tick) or \"sigma\" (β·OFI·σ bps)",
        )
    })?;
    if tilt == model::OfiTilt::Sigma && beta > model::OFI_SIGMA_BETA_MAX {
        return Err(v.error(
            "ofi.beta",
            format!(
                "{beta} is above {} with tilt = \"sigma\"",
                model::OFI_SIGMA_BETA_MAX
            ),
            "the sigma tilt moves the centre by β·OFI·σ bps: use β ≤ 10",
        ));
    }
    let requote_band = v.required("quoting.requote_band", quoting.requote_band)?;
    if !(0.0..=1.0).contains(&requote_band) {
        return Err(v.error(
            "quoting.requote_band",
            format!("{requote_band} is not a fraction of the half-spread"),
            "give a number in [0, 1], e.g. requote_band = 0.25 (0 = no band)",
        ));
    }
    let window = v.required("ofi.window_s", ofi.window_s)?;
    v.positive("ofi.window_s", window, "e.g. window_s = 1.0")?;
    if window > 60.0 {
        return Err(v.error(
            "ofi.window_s",
            format!("{window} s is longer than 60 s"),
            "OFI is a short-term signal: use a window of 0.1 to 60 s (default 1.0)",
        ));
    }

    let sigma_sample_s = v.required("model.sigma_sample_s", model_raw.sigma_sample_s)?;
    v.positive(
        "model.sigma_sample_s",
        sigma_sample_s,
        "e.g. sigma_sample_s = 1.0",
    )?;
    let sigma_half_life_s = v.required("model.sigma_half_life_s", model_raw.sigma_half_life_s)?;
    v.positive(
        "model.sigma_half_life_s",
        sigma_half_life_s,
        "e.g. sigma_half_life_s = 300",
    )?;
    let warmup = v.required("model.sigma_warmup_samples", model_raw.sigma_warmup_samples)?;
    let sigma_warmup_samples = u32::try_from(warmup).map_err(|_| {
        v.error(
            "model.sigma_warmup_samples",
            format!("{warmup} is not a sample count"),
            "give a whole number ≥ 0, e.g. 30",
        )
    })?;

    let md = raw.market_data.unwrap_or_default();
    let ws_url = v.required("market_data.ws_url", md.ws_url)?;
    if rest_url_for(&ws_url).is_none() {
        return Err(v.error(
            "market_data.ws_url",
            format!("{ws_url:?} is not a ws:// or wss:// URL"),
            "e.g. ws_url = \"wss://stream.binance.com:9443\"",
        ));
    }
    let rest_url = v.required("market_data.rest_url", md.rest_url)?;
    if !(rest_url.starts_with("https://") || rest_url.starts_with("http://")) {
        return Err(v.error(
            "market_data.rest_url",
            format!("{rest_url:?} is not an http(s):// URL"),
            "e.g. rest_url = \"https://api.binance.com\"",
        ));
    }
    let ca_text = v.required("market_data.ca_file", md.ca_file)?;
    let ca_file = if ca_text.trim().is_empty() {
        None
    } else {
        let path = PathBuf::from(ca_text.trim());
        if !path.is_file() {
            return Err(v.error(
                "market_data.ca_file",
                format!("{} does not exist", path.display()),
                "give the PEM certificate the local exchange printed at start, or leave it empty",
            ));
        }
        Some(path)
    };
    let stale_after_s = v.required("market_data.stale_after_s", md.stale_after_s)?;
    v.positive(
        "market_data.stale_after_s",
        stale_after_s,
        "e.g. stale_after_s = 30",
    )?;
    let book_levels = v.required("market_data.book_levels", md.book_levels)?;
    if !(10..=100_000).contains(&book_levels) {
        return Err(v.error(
            "market_data.book_levels",
            format!("{book_levels} levels per side"),
            "use 10 to 100000 (default 1000)",
        ));
    }
    let snapshot_limit = v.required("market_data.snapshot_limit", md.snapshot_limit)?;
    if !(1..=5000).contains(&snapshot_limit) {
        return Err(v.error(
            "market_data.snapshot_limit",
            format!("{snapshot_limit} levels"),
            "Binance serves 1 to 5000 levels (default 1000)",
        ));
    }
    let engine_raw = raw.engine.unwrap_or_default();
    let core = v.required("engine.cpu_core", engine_raw.cpu_core)?;
    let cpu_core = match core {
        -1 => None,
        c if c >= 0 && core_is_online(c as usize) => Some(c as usize),
        c if c >= 0 => {
            let ids: Vec<String> = online_cores().iter().map(|c| c.to_string()).collect();
            return Err(v.error(
                "engine.cpu_core",
                format!("core {c} is not one this process may run on"),
                &format!(
                    "give one of the online cores ({}), or -1 not to pin",
                    ids.join(", ")
                ),
            ));
        }
        c => {
            return Err(v.error(
                "engine.cpu_core",
                format!("{c} is not a core"),
                "give a core number ≥ 0, or -1 not to pin",
            ))
        }
    };

    let dir = v.required("log.dir", log.dir)?;
    if dir.trim().is_empty() {
        return Err(v.error(
            "log.dir",
            "empty folder name".to_string(),
            "e.g. dir = \"logs\"",
        ));
    }
    let level_text = v.required("log.level", log.level)?;
    let level = LogLevel::parse(&level_text).ok_or_else(|| {
        v.error(
            "log.level",
            format!("unknown level {level_text:?}"),
            "use error, warn, info, debug or trace",
        )
    })?;

    let orders = validate_orders(&v, raw.orders.unwrap_or_default())?;
    let risk = validate_risk(&v, raw.risk.unwrap_or_default(), inventory_max)?;
    let venue = validate_venue(&v, raw.venue.unwrap_or_default(), &spec)?;
    let kpi = validate_kpi(&v, raw.kpi.unwrap_or_default())?;
    let metrics = validate_metrics(&v, raw.metrics.unwrap_or_default())?;
    let live = validate_live(&v, raw.live.unwrap_or_default())?;
    let calibration = validate_calibration(&v, raw.calibration.unwrap_or_default())?;

    let config = Config {
        spec,
        model: ModelConfig {
            gamma_per_bps: gamma,
            sigma_source,
            sigma_bps_per_sqrt_s: sigma,
            k_per_bps: k,
            horizon_s: horizon,
            sigma_sample_s,
            sigma_half_life_s,
            sigma_warmup_samples,
            kind,
            intensity_a_per_s: intensity_a,
        },
        quoting: QuotingConfig {
            spread_min_bps: spread_min,
            spread_max_bps: spread_max,
            quote_size_lots: quote_size,
            inventory_max_lots: inventory_max,
            requote_band,
        },
        ofi: OfiConfig {
            beta,
            tilt,
            window_s: window,
        },
        market_data: MarketDataConfig {
            ws_url: ws_url.trim_end_matches('/').to_string(),
            rest_url: rest_url.trim_end_matches('/').to_string(),
            ca_file,
            stale_after_s,
            book_levels: book_levels as usize,
            snapshot_limit: snapshot_limit as u32,
        },
        engine: EngineConfig { cpu_core },
        log: LogConfig {
            dir: PathBuf::from(dir),
            level,
        },
        orders,
        risk,
        venue,
        kpi,
        metrics,
        live,
        calibration,
        layers,
        warnings,
    };
    config.model_params().validate().map_err(|e| ConfigError {
        source: "the merged configuration".to_string(),
        key: String::new(),
        problem: e.to_string(),
        fix: "see config/default.toml for sensible values".to_string(),
    })?;
    Ok(config)
}

fn validate_orders(v: &Validator<'_>, raw: RawOrders) -> Result<OrderParams, ConfigError> {
    let count = |key: &str, value: Option<i64>, fix: &str| -> Result<i64, ConfigError> {
        let value = v.required(key, value)?;
        if value < 0 {
            return Err(v.error(key, format!("{value} is negative"), fix));
        }
        Ok(value)
    };
    let params = OrderParams {
        orders_per_side_max: count(
            "orders.orders_per_side_max",
            raw.orders_per_side_max,
            "e.g. orders_per_side_max = 1",
        )? as usize,
        price_tolerance_ticks: count(
            "orders.price_tolerance_ticks",
            raw.price_tolerance_ticks,
            "e.g. price_tolerance_ticks = 2",
        )?,
        min_rest_ms: count(
            "orders.min_rest_ms",
            raw.min_rest_ms,
            "e.g. min_rest_ms = 500",
        )? as u64,
        orders_per_s_max: u32::try_from(count(
            "orders.orders_per_s_max",
            raw.orders_per_s_max,
            "e.g. orders_per_s_max = 10",
        )?)
        .unwrap_or(u32::MAX),
        orders_per_10s_max: u32::try_from(count(
            "orders.orders_per_10s_max",
            raw.orders_per_10s_max,
            "e.g. orders_per_10s_max = 100",
        )?)
        .unwrap_or(u32::MAX),
    };
    params.validate().map_err(|e| {
        let key = match e {
            OrderParamsError::OrdersPerSide => "orders.orders_per_side_max",
            OrderParamsError::Tolerance => "orders.price_tolerance_ticks",
            OrderParamsError::PerSecond => "orders.orders_per_s_max",
            OrderParamsError::PerTenSeconds => "orders.orders_per_10s_max",
        };
        v.error(key, e.to_string(), "see the range in config/default.toml")
    })?;
    Ok(params)
}

fn validate_risk(
    v: &Validator<'_>,
    raw: RawRisk,
    inventory_max: Qty,
) -> Result<RiskLimits, ConfigError> {
    let quote_amount = |key: &str, value: Option<DecimalText>| -> Result<i64, ConfigError> {
        let text = v.required(key, value)?.0;
        let atoms = parse_atoms(text.trim().as_bytes()).map_err(|e| {
            v.error(
                key,
                format!("{text:?}: {e}"),
                "write a positive amount of the quote currency, e.g. \"500\"",
            )
        })?;
        if atoms <= 0 {
            return Err(v.error(
                key,
                format!("{text:?} must be greater than 0"),
                "write a positive amount of the quote currency, e.g. \"500\"",
            ));
        }
        Ok(atoms)
    };
    let order_notional_max_atoms = quote_amount("risk.order_notional_max", raw.order_notional_max)?;
    let session_loss_max_atoms = quote_amount("risk.session_loss_max", raw.session_loss_max)?;
    let open = v.required("risk.open_orders_max", raw.open_orders_max)?;
    let open_orders_max = u32::try_from(open)
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| {
            v.error(
                "risk.open_orders_max",
                format!("{open} is not a count of at least 1"),
                "e.g. open_orders_max = 8",
            )
        })?;
    let stale = v.required("risk.stale_data_ms", raw.stale_data_ms)?;
    let stale_data_ms = u64::try_from(stale)
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| {
            v.error(
                "risk.stale_data_ms",
                format!("{stale} is not a duration of at least 1 ms"),
                "e.g. stale_data_ms = 5000",
            )
        })?;
    let limits = RiskLimits {
        inventory_max_lots: inventory_max.0,
        order_notional_max_atoms,
        open_orders_max,
        session_loss_max_atoms,
        stale_data_ms,
    };
    limits.validate().map_err(|e| {
        let key = match e {
            LimitsError::InventoryMax => "quoting.inventory_max",
            LimitsError::OrderNotionalMax => "risk.order_notional_max",
            LimitsError::OpenOrdersMax => "risk.open_orders_max",
            LimitsError::SessionLossMax => "risk.session_loss_max",
            LimitsError::StaleData => "risk.stale_data_ms",
        };
        v.error(key, e.to_string(), "see config/default.toml")
    })?;
    Ok(limits)
}

fn validate_venue(
    v: &Validator<'_>,
    raw: RawVenue,
    spec: &SymbolSpec,
) -> Result<VenueConfig, ConfigError> {
    let fee_bps = v.required("venue.maker_fee_bps", raw.maker_fee_bps)?;
    let centibps = fee_bps * 100.0;
    if !fee_bps.is_finite()
        || fee_bps.abs() > 10_000.0
        || (centibps - centibps.round()).abs() > 1e-6
    {
        return Err(v.error(
            "venue.maker_fee_bps",
            format!("{fee_bps} is not a fee in bps with at most two decimals within ±10000"),
            "e.g. maker_fee_bps = 10 (Binance's regular spot maker fee), 7.5 with BNB; set your \
             own tier; negative = rebate",
        ));
    }
    let latency = |key: &str, value: Option<String>| -> Result<LatencyModel, ConfigError> {
        let text = v.required(key, value)?;
        parse_latency(&text).ok_or_else(|| {
            v.error(
                key,
                format!("{text:?} is not a latency"),
                "write \"5ms\" (constant), \"uniform 2ms 8ms\" or \"lognormal 3ms 0.6 50ms\" \
                 (median, sigma of ln, cap); units ns, us, ms or s",
            )
        })
    };
    let entry_latency = latency("venue.entry_latency", raw.entry_latency)?;
    let ack_latency = latency("venue.ack_latency", raw.ack_latency)?;
    let duration = |key: &str, value: Option<String>| -> Result<u64, ConfigError> {
        let text = v.required(key, value)?;
        parse_duration_ns(&text).ok_or_else(|| {
            v.error(
                key,
                format!("{text:?} is not a duration"),
                "write a number with a unit: ns, us, ms or s, e.g. \"10ms\"",
            )
        })
    };
    let feed_default_ns = duration("venue.feed_latency_default", raw.feed_latency_default)?;
    let feed_text = v.required("venue.feed_latency", raw.feed_latency.clone())?;
    let feed_latency = if feed_text.trim() == "data" {
        FeedLatency::Data {
            default_ns: feed_default_ns,
        }
    } else {
        FeedLatency::Fixed {
            ns: duration("venue.feed_latency", raw.feed_latency)?,
        }
    };
    let seed = v.required("venue.seed", raw.seed)?;
    let seed = u64::try_from(seed).map_err(|_| {
        v.error(
            "venue.seed",
            format!("{seed} is negative"),
            "give a whole number ≥ 0, e.g. seed = 1",
        )
    })?;
    let sim = SimParams {
        entry_latency,
        ack_latency,
        maker_fee_centibps: centibps.round() as i64,
        queue_cancels: v.required("venue.queue_cancels", raw.queue_cancels)?,
        seed,
    };
    crate::venue::sim::SimVenue::new(sim, *spec).map_err(|e| {
        let key = match e {
            SimParamsError::Latency => "venue.entry_latency",
            SimParamsError::Fee => "venue.maker_fee_bps",
        };
        v.error(key, e.to_string(), "see config/default.toml")
    })?;
    Ok(VenueConfig { sim, feed_latency })
}

fn validate_metrics(v: &Validator<'_>, raw: RawMetrics) -> Result<MetricsConfig, ConfigError> {
    let Some(text) = raw.listen.filter(|t| !t.is_empty()) else {
        return Ok(MetricsConfig::default());
    };
    let fix = "give a loopback IP:PORT such as \"127.0.0.1:9184\" (or \"\" for off); \
               expose it beyond the host through a reverse proxy, not here";
    match text.parse::<std::net::SocketAddr>() {
        Ok(addr) if addr.ip().is_loopback() => Ok(MetricsConfig { listen: Some(addr) }),
        Ok(addr) => Err(v.error(
            "metrics.listen",
            format!("{addr} is not a loopback address"),
            fix,
        )),
        Err(_) => Err(v.error("metrics.listen", format!("{text:?} is not IP:PORT"), fix)),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<String>,
}

fn validate_kpi(v: &Validator<'_>, raw: RawKpi) -> Result<KpiConfig, ConfigError> {
    let fraction = |key: &str, value: Option<f64>| -> Result<f64, ConfigError> {
        let value = v.required(key, value)?;
        if !value.is_finite() || value < 0.0 {
            return Err(v.error(
                key,
                format!("{value} is not a fraction"),
                "give a finite number ≥ 0, as a fraction (0.7 = 70 %)",
            ));
        }
        Ok(value)
    };
    let horizon = v.required("kpi.markout_horizon_s", raw.markout_horizon_s)?;
    v.positive(
        "kpi.markout_horizon_s",
        horizon,
        "e.g. markout_horizon_s = 1.0",
    )?;
    let report_every_s = v.required("kpi.report_every_s", raw.report_every_s)?;
    v.positive(
        "kpi.report_every_s",
        report_every_s,
        "e.g. report_every_s = 10",
    )?;
    let latency = v.required("kpi.latency_p99_ms_max", raw.latency_p99_ms_max)?;
    v.positive(
        "kpi.latency_p99_ms_max",
        latency,
        "e.g. latency_p99_ms_max = 300",
    )?;
    let pnl_min = v.required("kpi.pnl_min", raw.pnl_min)?;
    if !pnl_min.is_finite() {
        return Err(v.error(
            "kpi.pnl_min",
            format!("{pnl_min} is not an amount"),
            "give a finite amount of the quote currency, e.g. pnl_min = 0",
        ));
    }
    Ok(KpiConfig {
        markout_horizon_s: horizon,
        report_every_s,
        spread_captured_min: fraction("kpi.spread_captured_min", raw.spread_captured_min)?,
        rms_inventory_max: fraction("kpi.rms_inventory_max", raw.rms_inventory_max)?,
        fill_ratio_min: fraction("kpi.fill_ratio_min", raw.fill_ratio_min)?,
        cancel_ratio_max: fraction("kpi.cancel_ratio_max", raw.cancel_ratio_max)?,
        latency_p99_ms_max: latency,
        pnl_min,
    })
}

fn validate_live(v: &Validator<'_>, raw: RawLive) -> Result<LiveConfig, ConfigError> {
    let url = v.required("live.ws_api_url", raw.ws_api_url)?;
    if !(url.starts_with("wss://") || url.starts_with("ws://")) {
        return Err(v.error(
            "live.ws_api_url",
            format!("{url:?} is not a ws:// or wss:// URL"),
            "e.g. ws_api_url = \"wss://ws-api.binance.com:443/ws-api/v3\"",
        ));
    }
    let base_target = match raw.base_target.map(|d| d.0) {
        None => None,
        Some(text) if text.trim().is_empty() => None,
        Some(text) => {
            crate::types::parse_atoms(text.trim().as_bytes()).map_err(|e| {
                v.error(
                    "live.base_target",
                    format!("{text:?}: {e}"),
                    "write an amount of the base asset, e.g. base_target = \"0.5\"",
                )
            })?;
            Some(text.trim().to_string())
        }
    };
    let recv_window = v.required("live.recv_window_ms", raw.recv_window_ms)?;
    if !(1..=60_000).contains(&recv_window) {
        return Err(v.error(
            "live.recv_window_ms",
            format!("{recv_window} is outside 1..=60000"),
            "Binance accepts at most 60000 ms; 5000 is its default",
        ));
    }
    let headroom = v.required("live.rate_headroom", raw.rate_headroom)?;
    if !(0..=1000).contains(&headroom) {
        return Err(v.error(
            "live.rate_headroom",
            format!("{headroom} is outside 0..=1000"),
            "e.g. rate_headroom = 5",
        ));
    }
    let wait = v.required("live.shutdown_wait_s", raw.shutdown_wait_s)?;
    v.positive("live.shutdown_wait_s", wait, "e.g. shutdown_wait_s = 5")?;
    if wait > 60.0 {
        return Err(v.error(
            "live.shutdown_wait_s",
            format!("{wait} s is too long to wait at Ctrl+C"),
            "at most 60 s, e.g. shutdown_wait_s = 5",
        ));
    }
    Ok(LiveConfig {
        ws_api_url: url.trim_end_matches('/').to_string(),
        i_understand_live_trading: v.required(
            "live.i_understand_live_trading",
            raw.i_understand_live_trading,
        )?,
        base_target,
        cancel_open_orders_on_start: v.required(
            "live.cancel_open_orders_on_start",
            raw.cancel_open_orders_on_start,
        )?,
        recv_window_ms: recv_window as u32,
        rate_headroom: headroom as u32,
        shutdown_wait_s: wait,
    })
}

fn validate_calibration(
    v: &Validator<'_>,
    raw: RawCalibration,
) -> Result<CalibrationConfig, ConfigError> {
    let fraction = |key: &str, value: Option<f64>| -> Result<f64, ConfigError> {
        let value = v.required(key, value)?;
        if !(value > 0.0 && value < 1.0) {
            return Err(v.error(
                key,
                format!("{value} is not a fraction strictly between 0 and 1"),
                "e.g. fit_fraction = 0.5, choose_fraction = 0.25 (the rest is held out)",
            ));
        }
        Ok(value)
    };
    let fit_fraction = fraction("calibration.fit_fraction", raw.fit_fraction)?;
    let choose_fraction = fraction("calibration.choose_fraction", raw.choose_fraction)?;
    if fit_fraction + choose_fraction > 0.95 {
        return Err(v.error(
            "calibration.choose_fraction",
            format!(
                "fit_fraction + choose_fraction = {} leaves less than 5 % of the data held out",
                fit_fraction + choose_fraction
            ),
            "keep fit_fraction + choose_fraction ≤ 0.95 (default 0.5 + 0.25)",
        ));
    }
    let min_span_s = v.required("calibration.min_span_s", raw.min_span_s)?;
    v.positive(
        "calibration.min_span_s",
        min_span_s,
        "e.g. min_span_s = 120",
    )?;
    let interval = v.required("calibration.intensity_interval_s", raw.intensity_interval_s)?;
    v.positive(
        "calibration.intensity_interval_s",
        interval,
        "e.g. intensity_interval_s = 1.0",
    )?;
    let objective = match v.required("calibration.objective", raw.objective)?.as_str() {
        "spread" => CalibrationObjective::Spread,
        "penalised" | "penalized" => CalibrationObjective::Penalised,
        "pnl" => CalibrationObjective::Pnl,
        "targets" => CalibrationObjective::Targets,
        other => {
            return Err(v.error(
                "calibration.objective",
                format!("unknown objective {other:?}"),
                "use \"spread\" (the default), \"penalised\", \"pnl\" or \"targets\"",
            ))
        }
    };
    let penalty = |key: &str, value: Option<f64>| -> Result<f64, ConfigError> {
        let value = v.required(key, value)?;
        if !value.is_finite() || value < 0.0 {
            return Err(v.error(
                key,
                format!("{value} is not a penalty"),
                "give a finite amount ≥ 0 of the quote currency (0 turns it off)",
            ));
        }
        Ok(value)
    };
    let grid = |key: &str,
                value: Option<Vec<f64>>,
                ok: &dyn Fn(f64) -> bool,
                fix: &str|
     -> Result<Vec<f64>, ConfigError> {
        let values = v.required(key, value)?;
        if values.is_empty() || values.len() > 64 {
            return Err(v.error(key, "needs 1 to 64 values".to_string(), fix));
        }
        if let Some(bad) = values.iter().find(|x| !ok(**x)) {
            return Err(v.error(key, format!("{bad} is out of range"), fix));
        }
        Ok(values)
    };
    Ok(CalibrationConfig {
        fit_fraction,
        choose_fraction,
        min_span_s,
        intensity_interval_s: interval,
        objective,
        kpi_miss_penalty: penalty("calibration.kpi_miss_penalty", raw.kpi_miss_penalty)?,
        rms_inventory_penalty: penalty(
            "calibration.rms_inventory_penalty",
            raw.rms_inventory_penalty,
        )?,
        grid_gamma_per_bps: grid(
            "calibration.grid_gamma_per_bps",
            raw.grid_gamma_per_bps,
            &|x| x.is_finite() && x > 0.0 && x <= model::GAMMA_PER_BPS_MAX,
            "a list of γ > 0 in 1/bps, e.g. grid_gamma_per_bps = [0.05, 0.1, 0.2]",
        )?,
        grid_ofi_beta: grid(
            "calibration.grid_ofi_beta",
            raw.grid_ofi_beta,
            &|x| x.is_finite() && x >= 0.0,
            "a list of β ≥ 0, e.g. grid_ofi_beta = [0, 0.3, 1]",
        )?,
        grid_horizon_s: grid(
            "calibration.grid_horizon_s",
            raw.grid_horizon_s,
            &|x| x.is_finite() && x > 0.0 && x <= HORIZON_S_MAX,
            "a list of horizons in seconds, each in (0, 3600], e.g. grid_horizon_s = [30, 120]",
        )?,
    })
}

/// `"5ms"`, `"250us"`, `"1.5s"`, `"800ns"` → nanoseconds.
pub fn parse_duration_ns(text: &str) -> Option<u64> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ns") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix("us") {
        (n, 1e3)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1e6)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1e9)
    } else {
        return None;
    };
    let value: f64 = number.trim().parse().ok()?;
    let ns = value * scale;
    (ns.is_finite() && (0.0..1e15).contains(&ns)).then(|| ns.round() as u64)
}

/// `"5ms"` (constant), `"uniform 2ms 8ms"`, `"lognormal 3ms 0.6 50ms"` (median, σ of ln,
/// cap) → a latency model.
pub fn parse_latency(text: &str) -> Option<LatencyModel> {
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        [one] => Some(LatencyModel::Constant {
            ns: parse_duration_ns(one)?,
        }),
        ["uniform", min, max] => {
            let (min_ns, max_ns) = (parse_duration_ns(min)?, parse_duration_ns(max)?);
            (min_ns <= max_ns).then_some(LatencyModel::Uniform { min_ns, max_ns })
        }
        ["lognormal", median, sigma, max] => {
            let (median_ns, max_ns) = (parse_duration_ns(median)?, parse_duration_ns(max)?);
            let sigma: f64 = sigma.parse().ok()?;
            let sigma_milli = (sigma * 1000.0).round();
            ((0.0..=10_000.0).contains(&sigma_milli) && median_ns <= max_ns).then_some(
                LatencyModel::LogNormal {
                    median_ns,
                    sigma_milli: sigma_milli as u32,
                    max_ns,
                },
            )
        }
        _ => None,
    }
}

/// Builds errors that name the layer that set a key.
struct Validator<'a> {
    origins: &'a BTreeMap<String, String>,
}

impl Validator<'_> {
    fn error(&self, key: &str, problem: String, fix: &str) -> ConfigError {
        ConfigError {
            source: self
                .origins
                .get(key)
                .cloned()
                .unwrap_or_else(|| "the merged configuration".to_string()),
            key: key.to_string(),
            problem,
            fix: fix.to_string(),
        }
    }

    fn required<T>(&self, key: &str, value: Option<T>) -> Result<T, ConfigError> {
        value.ok_or_else(|| ConfigError {
            source: "the merged configuration".to_string(),
            key: key.to_string(),
            problem: "missing".to_string(),
            fix: format!("set it in {DEFAULT_PATH} or an overlay (see the built-in defaults)"),
        })
    }

    fn positive(&self, key: &str, value: f64, example: &str) -> Result<(), ConfigError> {
        if value.is_finite() && value > 0.0 {
            return Ok(());
        }
        Err(self.error(
            key,
            format!("{value} must be a finite number greater than 0"),
            example,
        ))
    }

    fn size(
        &self,
        key: &str,
        value: Option<DecimalText>,
        spec: &SymbolSpec,
    ) -> Result<Qty, ConfigError> {
        let text = self.required(key, value)?.0;
        let qty = spec.parse_qty(text.as_bytes()).map_err(|e| {
            self.error(
                key,
                format!("{text:?}: {e}"),
                "write a positive amount of the base asset that is a multiple of \
                 market.step_size, e.g. \"0.001\"",
            )
        })?;
        if qty.0 <= 0 {
            return Err(self.error(
                key,
                format!("{text:?} must be greater than 0"),
                "write a positive amount of the base asset, e.g. \"0.001\"",
            ));
        }
        Ok(qty)
    }
}

/// The REST base URL that goes with a WebSocket base URL: same host and port, `wss` →
/// `https`, `ws` → `http`, path dropped. `None` if it is not a WebSocket URL.
pub fn rest_url_for(ws_url: &str) -> Option<String> {
    let (scheme, rest) = if let Some(rest) = ws_url.strip_prefix("wss://") {
        ("https://", rest)
    } else if let Some(rest) = ws_url.strip_prefix("ws://") {
        ("http://", rest)
    } else {
        return None;
    };
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() {
        return None;
    }
    Some(format!("{scheme}{host}"))
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A decimal amount written as a string (preferred: exact) or a TOML number.
#[derive(Clone, Debug, Default)]
struct DecimalText(String);

impl<'de> Deserialize<'de> for DecimalText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Text(String),
            Int(i64),
            Float(f64),
        }
        match Either::deserialize(deserializer) {
            Ok(Either::Text(text)) => Ok(DecimalText(text)),
            Ok(Either::Int(int)) => Ok(DecimalText(int.to_string())),
            // Rust prints the shortest text that reads back as the same f64, which is what
            // the user wrote for any amount with fewer than 16 significant digits.
            Ok(Either::Float(float)) => Ok(DecimalText(float.to_string())),
            Err(_) => Err(serde::de::Error::custom(
                "invalid type: expected a decimal amount such as \"0.001\"",
            )),
        }
    }
}

/// Stage-one schema: every key optional (a layer may set any subset), none unknown.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    market: Option<RawMarket>,
    model: Option<RawModel>,
    quoting: Option<RawQuoting>,
    ofi: Option<RawOfi>,
    market_data: Option<RawMarketData>,
    engine: Option<RawEngine>,
    log: Option<RawLog>,
    orders: Option<RawOrders>,
    risk: Option<RawRisk>,
    venue: Option<RawVenue>,
    kpi: Option<RawKpi>,
    metrics: Option<RawMetrics>,
    live: Option<RawLive>,
    calibration: Option<RawCalibration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCalibration {
    fit_fraction: Option<f64>,
    choose_fraction: Option<f64>,
    min_span_s: Option<f64>,
    intensity_interval_s: Option<f64>,
    objective: Option<String>,
    kpi_miss_penalty: Option<f64>,
    rms_inventory_penalty: Option<f64>,
    grid_gamma_per_bps: Option<Vec<f64>>,
    grid_ofi_beta: Option<Vec<f64>>,
    grid_horizon_s: Option<Vec<f64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLive {
    ws_api_url: Option<String>,
    i_understand_live_trading: Option<bool>,
    base_target: Option<DecimalText>,
    cancel_open_orders_on_start: Option<bool>,
    recv_window_ms: Option<i64>,
    rate_headroom: Option<i64>,
    shutdown_wait_s: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOrders {
    orders_per_side_max: Option<i64>,
    price_tolerance_ticks: Option<i64>,
    min_rest_ms: Option<i64>,
    orders_per_s_max: Option<i64>,
    orders_per_10s_max: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRisk {
    order_notional_max: Option<DecimalText>,
    open_orders_max: Option<i64>,
    session_loss_max: Option<DecimalText>,
    stale_data_ms: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVenue {
    maker_fee_bps: Option<f64>,
    entry_latency: Option<String>,
    ack_latency: Option<String>,
    feed_latency: Option<String>,
    feed_latency_default: Option<String>,
    queue_cancels: Option<bool>,
    seed: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKpi {
    markout_horizon_s: Option<f64>,
    report_every_s: Option<f64>,
    spread_captured_min: Option<f64>,
    rms_inventory_max: Option<f64>,
    fill_ratio_min: Option<f64>,
    cancel_ratio_max: Option<f64>,
    latency_p99_ms_max: Option<f64>,
    pnl_min: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMarket {
    symbol: Option<String>,
    tick_size: Option<DecimalText>,
    step_size: Option<DecimalText>,
    min_notional: Option<DecimalText>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    gamma_per_bps: Option<f64>,
    sigma_source: Option<String>,
    sigma_bps_per_sqrt_s: Option<f64>,
    k_per_bps: Option<f64>,
    horizon_s: Option<f64>,
    sigma_sample_s: Option<f64>,
    sigma_half_life_s: Option<f64>,
    sigma_warmup_samples: Option<i64>,
    kind: Option<String>,
    intensity_a_per_s: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMarketData {
    ws_url: Option<String>,
    rest_url: Option<String>,
    ca_file: Option<String>,
    stale_after_s: Option<f64>,
    book_levels: Option<i64>,
    snapshot_limit: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEngine {
    cpu_core: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuoting {
    spread_min_bps: Option<f64>,
    spread_max_bps: Option<f64>,
    quote_size: Option<DecimalText>,
    inventory_max: Option<DecimalText>,
    requote_band: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOfi {
    beta: Option<f64>,
    tilt: Option<String>,
    window_s: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    dir: Option<String>,
    level: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A temporary project root holding the given config files.
    struct Root(PathBuf);

    impl Root {
        fn new(tag: &str) -> Root {
            let dir =
                std::env::temp_dir().join(format!("mm-config-test-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(dir.join("config")).unwrap();
            std::fs::write(dir.join(DEFAULT_PATH), DEFAULT_TOML).unwrap();
            Root(dir)
        }

        fn write(&self, rel: &str, text: &str) -> PathBuf {
            let path = self.0.join(rel);
            std::fs::write(&path, text).unwrap();
            path
        }

        fn options(&self) -> LoadOptions {
            LoadOptions {
                root: self.0.clone(),
                ..LoadOptions::default()
            }
        }
    }

    impl Drop for Root {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn defaults_load_with_the_seed_values() {
        let root = Root::new("defaults");
        let c = load(&root.options()).unwrap();
        assert_eq!(c.spec.symbol.as_str(), "BTCUSDT");
        assert_eq!(c.spec.tick_atoms, 1_000_000);
        assert_eq!(c.spec.step_atoms, 1_000);
        assert_eq!(c.spec.min_notional_atoms, 500_000_000);
        assert_eq!(c.model.gamma_per_bps, 0.1);
        assert_eq!(c.model.horizon_s, 120.0);
        assert_eq!(c.quoting.inventory_max_lots, Qty(500));
        assert_eq!(c.quoting.quote_size_lots, Qty(100));
        assert_eq!(
            (c.quoting.spread_min_bps, c.quoting.spread_max_bps),
            (1.0, 200.0)
        );
        assert_eq!(c.quoting.requote_band, 1.0);
        assert_eq!(c.model.kind, model::ModelKind::AvellanedaStoikov);
        assert_eq!(c.ofi.tilt, model::OfiTilt::Ticks);
        // The one fee setting reaches the model.
        assert_eq!(c.model_params().maker_fee_bps, 10.0);
        assert_eq!((c.ofi.beta, c.ofi.window_s), (0.3, 1.0));
        assert_eq!(c.log.level, LogLevel::Info);
        assert!(c.warnings.is_empty());
        assert_eq!(
            c.banner("backtest"),
            "Market Making V1 — mode: backtest — symbol: BTCUSDT\n\
             model avellaneda-stoikov | gamma 0.1 | inventory max 0.005 | spread 1–200 bps | OFI \
             beta 0.3 (ticks), window 1.0 s | horizon 120 s | maker fee 10 bps"
        );
    }

    #[test]
    fn built_in_defaults_are_used_without_the_folder() {
        let dir = std::env::temp_dir().join(format!("mm-config-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let c = load(&LoadOptions {
            root: dir.clone(),
            ..LoadOptions::default()
        })
        .unwrap();
        assert!(c.layers[0].starts_with("built-in defaults"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn layers_override_in_order() {
        let root = Root::new("layers");
        root.write(
            CALIBRATED_PATH,
            "[model]\ngamma_per_bps = 0.2\nk_per_bps = 2.0\n",
        );
        let user = root.write("mine.toml", "[model]\ngamma_per_bps = 0.3\n");
        let mut options = root.options();
        options.config_path = Some(user.clone());
        options.env = vec![
            ("MM__OFI__BETA".to_string(), "0.5".to_string()),
            ("MM__MARKET__SYMBOL".to_string(), "ethusdt".to_string()),
            ("UNRELATED".to_string(), "x".to_string()),
        ];
        options.log_level = Some("debug".to_string());
        let c = load(&options).unwrap();
        assert_eq!(c.model.gamma_per_bps, 0.3); // --config beats calibrated
        assert_eq!(c.model.k_per_bps, 2.0); // calibrated beats defaults
        assert_eq!(c.ofi.beta, 0.5); // environment
        assert_eq!(c.spec.symbol.as_str(), "ETHUSDT");
        assert_eq!(c.log.level, LogLevel::Debug);
        assert_eq!(c.layers.len(), 6);

        options.symbol = Some("SOLUSDT".to_string());
        assert_eq!(load(&options).unwrap().spec.symbol.as_str(), "SOLUSDT");
    }

    #[test]
    fn unknown_key_names_file_and_key() {
        let root = Root::new("unknown");
        let user = root.write("bad.toml", "[model]\ngama_per_bps = 0.1\n");
        let mut options = root.options();
        options.config_path = Some(user);
        let e = load(&options).unwrap_err();
        assert!(e.source.ends_with("bad.toml"), "{e}");
        assert_eq!(e.key, "model.gama_per_bps", "{e}");
        assert!(e.problem.contains("unknown field"), "{e}");
        let e = {
            let root = Root::new("unknown-section");
            root.write(CALIBRATED_PATH, "[modle]\ngamma_per_bps = 0.1\n");
            load(&root.options()).unwrap_err()
        };
        assert!(e.source.ends_with("calibrated.toml"), "{e}");
        assert_eq!(e.key, "modle");
    }

    #[test]
    fn wrong_type_names_file_and_key() {
        let root = Root::new("type");
        let user = root.write("bad.toml", "[model]\ngamma_per_bps = \"lots\"\n");
        let mut options = root.options();
        options.config_path = Some(user);
        let e = load(&options).unwrap_err();
        assert_eq!(e.key, "model.gamma_per_bps");
        assert!(e.problem.contains("invalid type"), "{e}");
        assert!(e.to_string().contains("fix:"), "{e}");
    }

    #[test]
    fn syntax_error_names_the_file() {
        let root = Root::new("syntax");
        let user = root.write("bad.toml", "[model\ngamma = \n");
        let mut options = root.options();
        options.config_path = Some(user);
        let e = load(&options).unwrap_err();
        assert!(e.source.ends_with("bad.toml"));
        assert!(e.problem.contains("not valid TOML"));
    }

    #[test]
    fn range_errors_name_the_layer_that_set_the_key() {
        let cases: &[(&str, &str)] = &[
            (
                "[quoting]\nspread_min_bps = 300.0\n",
                "quoting.spread_min_bps",
            ),
            ("[quoting]\nquote_size = \"-1\"\n", "quoting.quote_size"),
            ("[quoting]\nquote_size = \"0\"\n", "quoting.quote_size"),
            (
                "[quoting]\nquote_size = \"0.0000001\"\n",
                "quoting.quote_size",
            ),
            ("[quoting]\nquote_size = \"2.0\"\n", "quoting.quote_size"),
            (
                "[quoting]\ninventory_max = \"1.2.3\"\n",
                "quoting.inventory_max",
            ),
            ("[model]\ngamma_per_bps = -0.1\n", "model.gamma_per_bps"),
            ("[model]\ngamma_per_bps = nan\n", "model.gamma_per_bps"),
            ("[model]\nk_per_bps = 0.0\n", "model.k_per_bps"),
            (
                "[model]\nsigma_bps_per_sqrt_s = -1.0\n",
                "model.sigma_bps_per_sqrt_s",
            ),
            ("[model]\nsigma_source = \"guess\"\n", "model.sigma_source"),
            ("[model]\nhorizon_s = 259200.0\n", "model.horizon_s"),
            ("[ofi]\nwindow_s = 0.0\n", "ofi.window_s"),
            ("[ofi]\nbeta = -1.0\n", "ofi.beta"),
            ("[market]\ntick_size = \"0\"\n", "market.tick_size"),
            ("[market]\nsymbol = \"BTC/USDT\"\n", "market.symbol"),
            ("[log]\nlevel = \"loud\"\n", "log.level"),
            (
                "[market_data]\nbook_levels = 5\n",
                "market_data.book_levels",
            ),
            (
                "[market_data]\nsnapshot_limit = 6000\n",
                "market_data.snapshot_limit",
            ),
            (
                "[market_data]\nws_url = \"http://x\"\n",
                "market_data.ws_url",
            ),
            ("[engine]\ncpu_core = -2\n", "engine.cpu_core"),
            // ≥ 1024 made core_affinity panic (CPU_SET index out of bounds).
            ("[engine]\ncpu_core = 1024\n", "engine.cpu_core"),
            (
                "[engine]\ncpu_core = 9223372036854775807\n",
                "engine.cpu_core",
            ),
            (
                "[model]\nsigma_warmup_samples = -1\n",
                "model.sigma_warmup_samples",
            ),
        ];
        for (text, key) in cases {
            let root = Root::new("range");
            let user = root.write("bad.toml", text);
            let mut options = root.options();
            options.config_path = Some(user);
            let e = load(&options).unwrap_err();
            assert_eq!(&e.key, key, "{text}: {e}");
            assert!(e.source.ends_with("bad.toml"), "{text}: {e}");
            assert!(!e.fix.is_empty());
        }
    }

    #[test]
    fn an_online_core_is_accepted() {
        let root = Root::new("core");
        let core = *online_cores().first().expect("some core is online");
        let mut options = root.options();
        options.sets = vec![format!("engine.cpu_core={core}")];
        assert_eq!(load(&options).unwrap().engine.cpu_core, Some(core));
    }

    #[test]
    fn non_utf8_environment_is_ignored_unless_it_is_ours() {
        use std::ffi::OsString;
        use std::os::unix::ffi::OsStringExt;
        let root = Root::new("env-bytes");
        let bytes = |b: &[u8]| OsString::from_vec(b.to_vec());
        // Not ours: ignored, whatever its bytes.
        let options = root.options().with_env([
            (bytes(b"LANG_\xff"), bytes(b"x")),
            (bytes(b"SOME_PATH"), bytes(b"/tmp/\xff\xfe")),
            (bytes(b"MM__MODEL__GAMMA_PER_BPS"), bytes(b"0.2")),
        ]);
        let c = load(&options).unwrap();
        assert_eq!(c.model.gamma_per_bps, 0.2);
        // Ours: refused by name.
        for (name, value) in [
            (&b"MM__LOG__DIR"[..], &b"logs-\xff"[..]),
            (b"MM__LOG__\xffDIR", b"logs"),
        ] {
            let options = root.options().with_env([(bytes(name), bytes(value))]);
            let e = load(&options).unwrap_err();
            assert!(
                e.source.starts_with("environment variable MM__LOG__"),
                "{e}"
            );
            assert!(e.problem.contains("not UTF-8"), "{e}");
        }
    }

    #[test]
    fn env_errors_name_the_variable() {
        let root = Root::new("env");
        let mut options = root.options();
        options.env = vec![("MM__MODEL__GAMMA".to_string(), "0.2".to_string())];
        let e = load(&options).unwrap_err();
        assert_eq!(e.source, "environment variable MM__MODEL__GAMMA");
        options.env = vec![("MM__MODEL__HORIZON_S".to_string(), "1e9".to_string())];
        let e = load(&options).unwrap_err();
        assert_eq!(e.source, "environment variable MM__MODEL__HORIZON_S");
        assert_eq!(e.key, "model.horizon_s");
        options.env = vec![("MM__GAMMA".to_string(), "0.2".to_string())];
        assert!(load(&options)
            .unwrap_err()
            .problem
            .contains("MM__<SECTION>__<KEY>"));
    }

    #[test]
    fn long_horizon_is_warned_about() {
        let root = Root::new("warn");
        let mut options = root.options();
        options.env = vec![("MM__MODEL__HORIZON_S".to_string(), "1800".to_string())];
        let c = load(&options).unwrap();
        assert_eq!(c.model.horizon_s, 1800.0);
        assert_eq!(c.warnings.len(), 1);
    }

    #[test]
    fn numbers_are_accepted_for_sizes() {
        let root = Root::new("numbers");
        let user = root.write(
            "n.toml",
            "[quoting]\nquote_size = 0.002\ninventory_max = 2\n",
        );
        let mut options = root.options();
        options.config_path = Some(user);
        let c = load(&options).unwrap();
        assert_eq!(c.quoting.quote_size_lots, Qty(200));
        assert_eq!(c.quoting.inventory_max_lots, Qty(200_000));
    }

    #[test]
    fn endpoint_and_ca_flags_set_market_data() {
        let root = Root::new("endpoint");
        let ca = root.write("ca.pem", "not checked here");
        let mut options = root.options();
        options.endpoint = Some("wss://127.0.0.1:9443/".to_string());
        options.ca_file = Some(ca.display().to_string());
        let c = load(&options).unwrap();
        assert_eq!(c.market_data.ws_url, "wss://127.0.0.1:9443");
        assert_eq!(c.market_data.rest_url, "https://127.0.0.1:9443");
        assert_eq!(c.market_data.ca_file, Some(ca));
        options.endpoint = Some("https://x".to_string());
        assert_eq!(load(&options).unwrap_err().source, "flag --endpoint");
        options.endpoint = None;
        options.ca_file = Some("/nonexistent/ca.pem".to_string());
        assert_eq!(load(&options).unwrap_err().key, "market_data.ca_file");
        assert_eq!(
            rest_url_for("ws://h:1/stream?x"),
            Some("http://h:1".to_string())
        );
        assert_eq!(rest_url_for("wss:///"), None);
    }

    #[test]
    fn trading_sections_load_with_their_defaults() {
        let root = Root::new("trading");
        let c = load(&root.options()).unwrap();
        assert_eq!(c.orders, OrderParams::default());
        assert_eq!(
            c.risk,
            RiskLimits {
                inventory_max_lots: c.quoting.inventory_max_lots.0,
                ..RiskLimits::default()
            }
        );
        assert_eq!(c.venue.sim.maker_fee_centibps, 1_000, "10 bps");
        assert_eq!(
            c.venue.sim.entry_latency,
            LatencyModel::Constant { ns: 5_000_000 }
        );
        assert_eq!(
            c.venue.feed_latency,
            FeedLatency::Data {
                default_ns: 10_000_000
            }
        );
        assert_eq!(c.kpi.markout_horizon_s, 1.0);
        assert_eq!(
            (c.kpi.spread_captured_min, c.kpi.rms_inventory_max),
            (0.7, 0.4)
        );
        assert_eq!((c.kpi.fill_ratio_min, c.kpi.cancel_ratio_max), (0.05, 0.7));
        assert_eq!((c.kpi.latency_p99_ms_max, c.kpi.pnl_min), (300.0, 0.0));
    }

    #[test]
    fn set_flags_are_layers_named_after_the_flag() {
        let root = Root::new("set");
        let mut options = root.options();
        options.sets = vec![
            "model.gamma_per_bps=0.2".to_string(),
            "venue.entry_latency=uniform 1ms 3ms".to_string(),
            "venue.ack_latency = lognormal 2ms 0.5 20ms".to_string(),
            "venue.feed_latency=250us".to_string(),
            "risk.session_loss_max=\"12.5\"".to_string(),
            "orders.min_rest_ms=0".to_string(),
            "market.symbol=ethusdt".to_string(),
        ];
        let c = load(&options).unwrap();
        assert_eq!(c.model.gamma_per_bps, 0.2);
        assert_eq!(
            c.venue.sim.entry_latency,
            LatencyModel::Uniform {
                min_ns: 1_000_000,
                max_ns: 3_000_000
            }
        );
        assert_eq!(
            c.venue.sim.ack_latency,
            LatencyModel::LogNormal {
                median_ns: 2_000_000,
                sigma_milli: 500,
                max_ns: 20_000_000
            }
        );
        assert_eq!(c.venue.feed_latency, FeedLatency::Fixed { ns: 250_000 });
        assert_eq!(c.risk.session_loss_max_atoms, 1_250_000_000);
        assert_eq!(c.orders.min_rest_ms, 0);
        assert_eq!(c.spec.symbol.as_str(), "ETHUSDT");
        assert!(c
            .layers
            .contains(&"flag --set model.gamma_per_bps=0.2".to_string()));

        // A later --set wins; a bad one names the flag and the key.
        options.sets = vec!["ofi.beta=0.1".to_string(), "ofi.beta=0.5".to_string()];
        assert_eq!(load(&options).unwrap().ofi.beta, 0.5);
        options.sets = vec!["ofi.beta=-1".to_string()];
        let e = load(&options).unwrap_err();
        assert_eq!(
            (e.source.as_str(), e.key.as_str()),
            ("flag --set ofi.beta=-1", "ofi.beta")
        );
        options.sets = vec!["ofi.bta=1".to_string()];
        assert_eq!(load(&options).unwrap_err().key, "ofi.bta");
        for bad in ["gamma=0.1", "model.gamma_per_bps", "a.b.c=1"] {
            options.sets = vec![bad.to_string()];
            let e = load(&options).unwrap_err();
            assert_eq!(e.source, format!("flag --set {bad}"), "{e}");
            assert!(e.fix.contains("--set section.key=value"), "{e}");
        }
    }

    #[test]
    fn trading_section_errors_name_file_and_key() {
        let cases: &[(&str, &str)] = &[
            (
                "[orders]\norders_per_side_max = 0\n",
                "orders.orders_per_side_max",
            ),
            (
                "[orders]\nprice_tolerance_ticks = -1\n",
                "orders.price_tolerance_ticks",
            ),
            (
                "[orders]\norders_per_s_max = 0\n",
                "orders.orders_per_s_max",
            ),
            ("[orders]\nmin_rest_ms = -5\n", "orders.min_rest_ms"),
            (
                "[risk]\norder_notional_max = \"0\"\n",
                "risk.order_notional_max",
            ),
            (
                "[risk]\nsession_loss_max = \"-1\"\n",
                "risk.session_loss_max",
            ),
            ("[risk]\nopen_orders_max = 0\n", "risk.open_orders_max"),
            ("[risk]\nstale_data_ms = 0\n", "risk.stale_data_ms"),
            ("[venue]\nmaker_fee_bps = 10.001\n", "venue.maker_fee_bps"),
            ("[venue]\nmaker_fee_bps = 20000.0\n", "venue.maker_fee_bps"),
            ("[venue]\nentry_latency = \"5\"\n", "venue.entry_latency"),
            (
                "[venue]\nack_latency = \"uniform 8ms 2ms\"\n",
                "venue.ack_latency",
            ),
            (
                "[venue]\nentry_latency = \"lognormal 3ms x 50ms\"\n",
                "venue.entry_latency",
            ),
            ("[venue]\nfeed_latency = \"soon\"\n", "venue.feed_latency"),
            (
                "[venue]\nfeed_latency_default = \"-1ms\"\n",
                "venue.feed_latency_default",
            ),
            ("[venue]\nseed = -1\n", "venue.seed"),
            ("[kpi]\nmarkout_horizon_s = 0.0\n", "kpi.markout_horizon_s"),
            ("[kpi]\nreport_every_s = 0.0\n", "kpi.report_every_s"),
            ("[kpi]\nfill_ratio_min = -0.1\n", "kpi.fill_ratio_min"),
            (
                "[kpi]\nlatency_p99_ms_max = nan\n",
                "kpi.latency_p99_ms_max",
            ),
        ];
        for (text, key) in cases {
            let root = Root::new("trading-range");
            let user = root.write("bad.toml", text);
            let mut options = root.options();
            options.config_path = Some(user);
            let e = load(&options).unwrap_err();
            assert_eq!(&e.key, key, "{text}: {e}");
            assert!(e.source.ends_with("bad.toml"), "{text}: {e}");
            assert!(!e.fix.is_empty());
        }
    }

    #[test]
    fn durations_and_latencies_parse() {
        assert_eq!(parse_duration_ns("5ms"), Some(5_000_000));
        assert_eq!(parse_duration_ns("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_duration_ns("250us"), Some(250_000));
        assert_eq!(parse_duration_ns("7ns"), Some(7));
        assert_eq!(parse_duration_ns("0ms"), Some(0));
        for bad in ["5", "ms", "-1ms", "1e20s", "five ms"] {
            assert_eq!(parse_duration_ns(bad), None, "{bad}");
        }
        assert_eq!(
            parse_latency(" 3ms "),
            Some(LatencyModel::Constant { ns: 3_000_000 })
        );
        assert_eq!(parse_latency("uniform 1ms"), None);
        assert_eq!(parse_latency("gauss 1ms 2ms"), None);
    }

    #[test]
    fn missing_config_file_is_an_error() {
        let root = Root::new("missing");
        let mut options = root.options();
        options.config_path = Some(root.0.join("nope.toml"));
        let e = load(&options).unwrap_err();
        assert!(e.problem.contains("does not exist"));
    }
}
