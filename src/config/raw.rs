//! The stage-one schema: `RawConfig` and its sections as serde reads them from one layer —
//! every key optional, none unknown — and `DecimalText`, an amount kept as written.
//!
//! Never validates values (that is `validate.rs`), never holds defaults.

use super::*;

/// A decimal amount written as a string (preferred: exact) or a TOML number.
#[derive(Clone, Debug, Default)]
pub(super) struct DecimalText(pub(super) String);

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
pub(super) struct RawConfig {
    pub(super) market: Option<RawMarket>,
    pub(super) model: Option<RawModel>,
    pub(super) quoting: Option<RawQuoting>,
    pub(super) ofi: Option<RawOfi>,
    pub(super) market_data: Option<RawMarketData>,
    pub(super) engine: Option<RawEngine>,
    pub(super) log: Option<RawLog>,
    pub(super) orders: Option<RawOrders>,
    pub(super) risk: Option<RawRisk>,
    pub(super) venue: Option<RawVenue>,
    pub(super) kpi: Option<RawKpi>,
    pub(super) metrics: Option<RawMetrics>,
    pub(super) live: Option<RawLive>,
    pub(super) calibration: Option<RawCalibration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCalibration {
    pub(super) fit_fraction: Option<f64>,
    pub(super) choose_fraction: Option<f64>,
    pub(super) min_span_s: Option<f64>,
    pub(super) intensity_interval_s: Option<f64>,
    pub(super) objective: Option<String>,
    pub(super) kpi_miss_penalty: Option<f64>,
    pub(super) rms_inventory_penalty: Option<f64>,
    pub(super) grid_gamma_per_bps: Option<Vec<f64>>,
    pub(super) grid_ofi_beta: Option<Vec<f64>>,
    pub(super) grid_horizon_s: Option<Vec<f64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLive {
    pub(super) ws_api_url: Option<String>,
    pub(super) i_understand_live_trading: Option<bool>,
    pub(super) base_target: Option<DecimalText>,
    pub(super) cancel_open_orders_on_start: Option<bool>,
    pub(super) recv_window_ms: Option<i64>,
    pub(super) rate_headroom: Option<i64>,
    pub(super) shutdown_wait_s: Option<f64>,
    pub(super) order_connection_max_age_s: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOrders {
    pub(super) orders_per_side_max: Option<i64>,
    pub(super) price_tolerance_ticks: Option<i64>,
    pub(super) behind_band_factor: Option<i64>,
    pub(super) min_rest_ms: Option<i64>,
    pub(super) orders_per_s_max: Option<i64>,
    pub(super) orders_per_10s_max: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRisk {
    pub(super) order_notional_max: Option<DecimalText>,
    pub(super) open_orders_max: Option<i64>,
    pub(super) session_loss_max: Option<DecimalText>,
    pub(super) stale_data_ms: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVenue {
    pub(super) maker_fee_bps: Option<f64>,
    pub(super) entry_latency: Option<String>,
    pub(super) ack_latency: Option<String>,
    pub(super) feed_latency: Option<String>,
    pub(super) feed_latency_default: Option<String>,
    pub(super) queue_cancels: Option<bool>,
    pub(super) seed: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKpi {
    pub(super) markout_horizon_s: Option<f64>,
    pub(super) report_every_s: Option<f64>,
    pub(super) spread_captured_min: Option<f64>,
    pub(super) rms_inventory_max: Option<f64>,
    pub(super) fill_ratio_min: Option<f64>,
    pub(super) cancel_ratio_max: Option<f64>,
    pub(super) latency_p99_ms_max: Option<f64>,
    pub(super) pnl_min: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMarket {
    pub(super) symbol: Option<String>,
    pub(super) tick_size: Option<DecimalText>,
    pub(super) step_size: Option<DecimalText>,
    pub(super) min_notional: Option<DecimalText>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawModel {
    pub(super) gamma_per_bps: Option<f64>,
    pub(super) sigma_source: Option<String>,
    pub(super) sigma_bps_per_sqrt_s: Option<f64>,
    pub(super) k_per_bps: Option<f64>,
    pub(super) horizon_s: Option<f64>,
    pub(super) sigma_sample_s: Option<f64>,
    pub(super) sigma_half_life_s: Option<f64>,
    pub(super) sigma_warmup_samples: Option<i64>,
    pub(super) kind: Option<String>,
    pub(super) intensity_a_per_s: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMarketData {
    pub(super) ws_url: Option<String>,
    pub(super) rest_url: Option<String>,
    pub(super) ca_file: Option<String>,
    pub(super) stale_after_s: Option<f64>,
    pub(super) book_levels: Option<i64>,
    pub(super) snapshot_limit: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEngine {
    pub(super) cpu_core: Option<i64>,
    pub(super) warm_every_us: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQuoting {
    pub(super) spread_min_bps: Option<f64>,
    pub(super) spread_max_bps: Option<f64>,
    pub(super) quote_size: Option<DecimalText>,
    pub(super) inventory_max: Option<DecimalText>,
    pub(super) requote_band: Option<f64>,
    pub(super) microprice_weight: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOfi {
    pub(super) beta: Option<f64>,
    pub(super) tilt: Option<String>,
    pub(super) window_s: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub(super) dir: Option<String>,
    pub(super) level: Option<String>,
}
