//! One module per run mode: wiring only. Each mode takes a validated `Config` (and its own
//! flags) and runs; the logic lives in the library modules below it.

pub mod backtest;
pub mod calibration;
pub mod convert;
pub mod kpi;
pub mod latency;
pub mod live;
pub mod paper;
pub mod record;
pub mod replay;
pub mod scoreboard;
pub mod simulate;
pub mod spread_check;

use std::fmt;

use crate::config::{Config, SigmaSource};
use crate::engine::EngineParams;
use crate::model::Quoter;
use crate::net::{ConnConfig, TlsRoots};

/// Touch changes the OFI window can hold (BTCUSDT: a few hundred per second at most).
pub const OFI_CAPACITY: usize = 16_384;

/// The engine's parameters from the configuration.
pub fn engine_params(config: &Config) -> anyhow::Result<EngineParams> {
    let quoter = Quoter::new(config.model_params(), config.spec)
        .map_err(|e| anyhow::anyhow!("model parameters: {e}"))?;
    Ok(EngineParams {
        quoter,
        book_levels: config.market_data.book_levels,
        ofi_window_ns: (config.ofi.window_s * 1e9) as u64,
        ofi_capacity: OFI_CAPACITY,
        sigma_estimated: config.model.sigma_source == SigmaSource::Estimated,
        sigma_sample_s: config.model.sigma_sample_s,
        sigma_half_life_s: config.model.sigma_half_life_s,
        sigma_warmup_samples: config.model.sigma_warmup_samples,
    })
}

/// The market-data endpoints of a configuration, ready for the hot loop.
pub struct MarketData {
    /// Trusted roots (public, or the local exchange's CA file).
    pub roots: TlsRoots,
    /// The combined-stream URL.
    pub url: String,
    /// The REST depth snapshot URL.
    pub snapshot_url: String,
    /// The connection settings (stale limit from the config), validated.
    pub conn: ConnConfig,
}

/// Builds and validates the market-data connection settings for the configured symbol.
pub fn market_data(config: &Config) -> anyhow::Result<MarketData> {
    let symbol = config.spec.symbol;
    let roots = tls_roots(config);
    let url = crate::hot::stream_url(&config.market_data.ws_url, &symbol);
    let snapshot_url = crate::hot::snapshot_url(
        &config.market_data.rest_url,
        &symbol,
        config.market_data.snapshot_limit,
    );
    let mut conn = ConnConfig::new(&url, roots.clone());
    conn.stale_after_ns = (config.market_data.stale_after_s * 1e9) as u64;
    conn.validate()
        .map_err(|e| anyhow::anyhow!("market-data connection settings: {e}"))?;
    Ok(MarketData {
        roots,
        url,
        snapshot_url,
        conn,
    })
}

/// The TLS roots the configuration asks for: a CA file (local exchange) or the public roots.
pub fn tls_roots(config: &Config) -> TlsRoots {
    match &config.market_data.ca_file {
        Some(path) => TlsRoots::CaFile(path.clone()),
        None => TlsRoots::WebPki,
    }
}

/// Every way to run mm. The spelling on the command line is `--mode=<kebab-case>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Live market data, simulated fills.
    PaperTrading,
    /// Recorded market data, simulated fills.
    Backtest,
    /// Fit the model's parameters from recorded data.
    Calibration,
    /// Real orders on Binance spot.
    Live,
    /// Print the quotes the model makes for a representative state and check them.
    SpreadCheck,
    /// Avellaneda & Stoikov's (2008) Monte Carlo experiment.
    Simulate,
    /// Show the KPI snapshot of a running engine.
    Kpi,
    /// Record market data into a journal.
    Record,
    /// Convert recorded data (captures, CSV dumps) into a journal.
    Convert,
    /// Print the percentiles of a latency dump.
    Latency,
    /// Replay recorded data through the book without trading (timing, data checks).
    Replay,
    /// Walk-forward over every shared recording at four fee tiers: the strategy's table.
    Scoreboard,
}

impl Mode {
    /// All modes, in `--help` order.
    pub const ALL: [Mode; 12] = [
        Mode::PaperTrading,
        Mode::Backtest,
        Mode::Scoreboard,
        Mode::Calibration,
        Mode::Live,
        Mode::SpreadCheck,
        Mode::Simulate,
        Mode::Kpi,
        Mode::Record,
        Mode::Convert,
        Mode::Latency,
        Mode::Replay,
    ];

    /// The command-line spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::PaperTrading => "paper-trading",
            Mode::Backtest => "backtest",
            Mode::Calibration => "calibration",
            Mode::Live => "live",
            Mode::SpreadCheck => "spread-check",
            Mode::Simulate => "simulate",
            Mode::Kpi => "kpi",
            Mode::Record => "record",
            Mode::Convert => "convert",
            Mode::Latency => "latency",
            Mode::Scoreboard => "scoreboard",
            Mode::Replay => "replay",
        }
    }

    /// Parses the command-line spelling.
    pub fn parse(text: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.as_str() == text)
    }

    /// `None` when the mode works in this build; otherwise what it is waiting for.
    pub const fn not_available(self) -> Option<&'static str> {
        match self {
            Mode::SpreadCheck
            | Mode::Simulate
            | Mode::Record
            | Mode::PaperTrading
            | Mode::Backtest
            | Mode::Convert
            | Mode::Kpi
            | Mode::Latency
            | Mode::Live
            | Mode::Scoreboard
            | Mode::Replay
            | Mode::Calibration => None,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
