//! The order entry of a live session: the assets from the exchange's rules, the session
//! tag of our client order ids, the banner that says what is about to trade, and
//! `BinanceVenue` on the WebSocket API connection (`live.ws_api_url`).
//!
//! Never: prints the secret (the banner shows the masked API key and the key kind only),
//! or sends anything (the venue connects when the hot loop first polls it).

use mio::Token;

use crate::config::Config;
use crate::live::gates::masked_key;
use crate::live::rules::ExchangeRules;
use crate::net::{ConnConfig, TlsRoots};
use crate::orders::SessionTag;
use crate::types::Symbol;
use crate::venue::binance::{BinanceConfig, BinanceVenue, Credentials, KeyType};

/// The order connection's mio token (the market data's is `hot::MARKET_TOKEN`, a
/// rotation's standby `hot::STANDBY_TOKEN`).
pub const ORDER_TOKEN: Token = Token(1);
/// The order connection's other token: its make-before-break rotation's standby (the two
/// alternate).
pub const ORDER_STANDBY_TOKEN: Token = Token(3);

/// The base and quote assets of the exchange's rules.
pub fn assets(rules: &ExchangeRules) -> anyhow::Result<(Symbol, Symbol)> {
    let base_asset = Symbol::new(&rules.base_asset)
        .map_err(|e| anyhow::anyhow!("base asset {:?}: {e}", rules.base_asset))?;
    let quote_asset = Symbol::new(&rules.quote_asset)
        .map_err(|e| anyhow::anyhow!("quote asset {:?}: {e}", rules.quote_asset))?;
    Ok((base_asset, quote_asset))
}

/// The session tag of a run started at `start_wall_ns`: the start time in ms, base 36 (8
/// characters until 2059), unique per run on a host.
pub fn session_tag(start_wall_ns: u64) -> SessionTag {
    SessionTag::from_number(start_wall_ns / 1_000_000)
}

/// The start banner: the symbol, both endpoints, the masked key, the session tag and the
/// limits the session trades under.
pub fn banner(
    config: &Config,
    rules: &ExchangeRules,
    creds: &Credentials,
    market_url: &str,
    session: SessionTag,
    base_target_atoms: i64,
) -> String {
    let symbol = config.spec.symbol;
    let key = masked_key(creds.api_key());
    let key_kind = match creds.key_type() {
        KeyType::Hmac => "HMAC, every request signed",
        KeyType::Ed25519 => "Ed25519, session.logon per connection",
    };
    format!(
        "LIVE TRADING {symbol}: orders {} (API key {key}, {key_kind}), market data {market_url}; session tag {}; \
         base target {} {}; quote size {} {}; inventory max {} {}; session loss max {} {}. \
         Ctrl+C cancels every order and waits for the exchange to confirm.",
        config.live.ws_api_url,
        String::from_utf8_lossy(session.as_bytes()),
        base_target_atoms as f64 / 1e8,
        rules.base_asset,
        config.spec.qty_to_f64(config.quoting.quote_size_lots),
        rules.base_asset,
        config.spec.qty_to_f64(config.quoting.inventory_max_lots),
        rules.base_asset,
        config.risk.session_loss_max_atoms as f64 / 1e8,
        rules.quote_asset,
    )
}

/// The order venue: the WebSocket API connection's settings, validated, and the venue
/// that will sign and send on it.
pub fn order_venue(
    config: &Config,
    roots: &TlsRoots,
    (base_asset, quote_asset): (Symbol, Symbol),
    session: SessionTag,
    creds: Credentials,
    start_wall_ns: u64,
) -> anyhow::Result<BinanceVenue> {
    let mut order_conn = ConnConfig::new(&config.live.ws_api_url, roots.clone());
    // The WebSocket API pings every 20 s; its answers keep the connection fresh too.
    order_conn.stale_after_ns = 60_000_000_000;
    // Validated to 10 s ..= 24 h (config::validate): whole nanoseconds fit a u64.
    order_conn.max_age_ns = (config.live.order_connection_max_age_s * 1e9) as u64;
    order_conn
        .validate()
        .map_err(|e| anyhow::anyhow!("order connection settings: {e}"))?;
    let venue_cfg = BinanceConfig {
        conn: order_conn,
        spec: config.spec,
        base_asset,
        quote_asset,
        session,
        recv_window_ms: config.live.recv_window_ms,
        rate_headroom: config.live.rate_headroom,
    };
    let mut venue = BinanceVenue::new(venue_cfg, creds, ORDER_TOKEN, start_wall_ns)
        .map_err(|e| anyhow::anyhow!("order entry: {e}"))?;
    venue.set_standby_token(ORDER_STANDBY_TOKEN);
    Ok(venue)
}
