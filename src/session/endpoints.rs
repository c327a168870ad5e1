//! The market-data endpoints of a configuration: the combined-stream URL, the REST depth
//! snapshot URL, the TLS roots and the validated connection settings the hot loop opens.
//! Record mode uses it too (it runs the same hot loop without a trader).
//!
//! Never: opens a connection (it only builds and validates settings); never imports
//! `crate::modes`.

use crate::config::Config;
use crate::net::{ConnConfig, TlsRoots};

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
