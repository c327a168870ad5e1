//! Building the engine and the `Trader` from a validated `Config`: the one place that maps
//! `[model]`, `[ofi]`, `[orders]`, `[risk]` onto the sans-IO core's parameters.
//!
//! Owns: `engine_params` (every mode that runs the engine: record, backtest, calibration,
//! paper, live), `build_trader` (paper and live; benches), `OFI_CAPACITY`.
//!
//! Never: touches a socket, a file or the clock; never imports a mode, a session or a
//! report (every one of them builds through here).

use crate::config::{Config, SigmaSource};
use crate::engine::{Engine, EngineParams, Trader};
use crate::model::Quoter;
use crate::orders::OrderManager;
use crate::risk::Risk;

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

/// Builds the trader from the configuration (`[orders]`, `[risk]`, the model).
pub fn build_trader(config: &Config) -> anyhow::Result<Trader> {
    let engine = Engine::new(engine_params(config)?);
    let orders = OrderManager::new(config.orders, config.spec)
        .map_err(|e| anyhow::anyhow!("order parameters: {e}"))?;
    let risk =
        Risk::new(config.risk, config.spec).map_err(|e| anyhow::anyhow!("risk limits: {e}"))?;
    Ok(Trader::new(engine, orders, risk))
}
