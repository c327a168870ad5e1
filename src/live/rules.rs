//! The exchange's rules for the symbol (`GET /api/v3/exchangeInfo`): status, assets,
//! tick and step sizes, quantity range, minimum notional, MAX_NUM_ORDERS, the ORDERS per
//! 10 s limit — read once at start and checked against the configuration, so that a
//! configuration the exchange would refuse stops the session before the first order.
//!
//! Never: sends anything but the one GET, or starts the session with a mismatch (every
//! mismatch is an error that names the key to change).

use anyhow::Context;

use crate::config::Config;
use crate::net::TlsRoots;
use crate::types::parse_atoms;

/// Fetches the symbol's rules (REST, before anything is sent) and checks the configuration
/// against them.
pub fn fetch_rules(config: &Config, roots: &TlsRoots) -> anyhow::Result<ExchangeRules> {
    let symbol = config.spec.symbol;
    let info_url = format!(
        "{}/api/v3/exchangeInfo?symbol={symbol}",
        config.market_data.rest_url
    );
    let response = crate::net::rest::get(&info_url, roots)
        .map_err(|e| anyhow::anyhow!("GET {info_url}: {e}"))?;
    if response.status != 200 {
        anyhow::bail!(
            "GET {info_url}: HTTP {}: {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        );
    }
    let rules = parse_exchange_info(&response.body, symbol.as_str())?;
    check_rules(config, &rules)?;
    Ok(rules)
}

/// The exchange's rules for the symbol, from exchangeInfo.
#[derive(Clone, Debug, PartialEq)]
pub struct ExchangeRules {
    /// `status` (`TRADING`).
    pub status: String,
    /// Base asset name.
    pub base_asset: String,
    /// Quote asset name.
    pub quote_asset: String,
    /// PRICE_FILTER tickSize, atoms.
    pub tick_atoms: i64,
    /// LOT_SIZE stepSize, atoms.
    pub step_atoms: i64,
    /// LOT_SIZE minQty, maxQty, atoms.
    pub qty_range_atoms: (i64, i64),
    /// NOTIONAL / MIN_NOTIONAL minNotional, atoms.
    pub min_notional_atoms: i64,
    /// MAX_NUM_ORDERS, if given.
    pub max_num_orders: Option<u32>,
    /// ORDERS per 10 s, if given.
    pub orders_per_10s: Option<u32>,
}

/// Reads the symbol's entry of an exchangeInfo body.
pub fn parse_exchange_info(body: &[u8], symbol: &str) -> anyhow::Result<ExchangeRules> {
    let info: serde_json::Value =
        serde_json::from_slice(body).context("exchangeInfo is not JSON")?;
    let entry = info["symbols"]
        .as_array()
        .and_then(|list| list.iter().find(|s| s["symbol"] == symbol))
        .with_context(|| format!("exchangeInfo has no symbol {symbol}"))?;
    let text = |v: &serde_json::Value, what: &str| -> anyhow::Result<String> {
        v.as_str()
            .map(str::to_string)
            .with_context(|| format!("exchangeInfo {symbol}: {what} missing"))
    };
    let atoms = |v: &serde_json::Value, what: &str| -> anyhow::Result<i64> {
        let t = text(v, what)?;
        parse_atoms(t.as_bytes())
            .map_err(|e| anyhow::anyhow!("exchangeInfo {symbol}: {what} {t:?}: {e}"))
    };
    let filters = entry["filters"]
        .as_array()
        .with_context(|| format!("exchangeInfo {symbol}: no filters"))?;
    let filter = |kind: &str| filters.iter().find(|f| f["filterType"] == kind);
    let price = filter("PRICE_FILTER").context("exchangeInfo: no PRICE_FILTER")?;
    let lot = filter("LOT_SIZE").context("exchangeInfo: no LOT_SIZE")?;
    let notional = filter("NOTIONAL").or_else(|| filter("MIN_NOTIONAL"));
    let orders_per_10s = info["rateLimits"].as_array().and_then(|limits| {
        limits
            .iter()
            .find(|l| {
                l["rateLimitType"] == "ORDERS"
                    && l["interval"] == "SECOND"
                    && l["intervalNum"] == 10
            })
            .and_then(|l| l["limit"].as_u64())
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
    });
    Ok(ExchangeRules {
        status: text(&entry["status"], "status")?,
        base_asset: text(&entry["baseAsset"], "baseAsset")?,
        quote_asset: text(&entry["quoteAsset"], "quoteAsset")?,
        tick_atoms: atoms(&price["tickSize"], "PRICE_FILTER tickSize")?,
        step_atoms: atoms(&lot["stepSize"], "LOT_SIZE stepSize")?,
        qty_range_atoms: (
            atoms(&lot["minQty"], "LOT_SIZE minQty")?,
            atoms(&lot["maxQty"], "LOT_SIZE maxQty")?,
        ),
        min_notional_atoms: match notional {
            Some(f) => atoms(&f["minNotional"], "NOTIONAL minNotional")?,
            None => 0,
        },
        max_num_orders: filter("MAX_NUM_ORDERS")
            .and_then(|f| f["maxNumOrders"].as_u64())
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        orders_per_10s,
    })
}

/// Checks the configuration against the exchange's rules; every mismatch is an error that
/// names the key to change.
pub fn check_rules(config: &Config, rules: &ExchangeRules) -> anyhow::Result<()> {
    let spec = &config.spec;
    let symbol = spec.symbol;
    let units = |atoms: i64| atoms as f64 / 1e8;
    let mut problems = Vec::new();
    if rules.status != "TRADING" {
        problems.push(format!(
            "{symbol} status is {} (not TRADING): nothing to quote",
            rules.status
        ));
    }
    if rules.tick_atoms != spec.tick_atoms {
        problems.push(format!(
            "tick size: exchange {} vs market.tick_size {}: set market.tick_size = \"{}\"",
            units(rules.tick_atoms),
            units(spec.tick_atoms),
            units(rules.tick_atoms)
        ));
    }
    if rules.step_atoms != spec.step_atoms {
        problems.push(format!(
            "step size: exchange {} vs market.step_size {}: set market.step_size = \"{}\"",
            units(rules.step_atoms),
            units(spec.step_atoms),
            units(rules.step_atoms)
        ));
    }
    if rules.min_notional_atoms > spec.min_notional_atoms {
        problems.push(format!(
            "min notional: exchange {} vs market.min_notional {}: set market.min_notional = \
             \"{}\"",
            units(rules.min_notional_atoms),
            units(spec.min_notional_atoms),
            units(rules.min_notional_atoms)
        ));
    }
    let size = config
        .quoting
        .quote_size_lots
        .0
        .saturating_mul(spec.step_atoms);
    if size < rules.qty_range_atoms.0 || size > rules.qty_range_atoms.1 {
        problems.push(format!(
            "quoting.quote_size {} is outside the exchange's LOT_SIZE {}..{}",
            units(size),
            units(rules.qty_range_atoms.0),
            units(rules.qty_range_atoms.1)
        ));
    }
    if let Some(max) = rules.max_num_orders {
        if config.risk.open_orders_max > max {
            problems.push(format!(
                "risk.open_orders_max {} is above the exchange's MAX_NUM_ORDERS {max}",
                config.risk.open_orders_max
            ));
        }
    }
    if let Some(limit) = rules.orders_per_10s {
        if config.orders.orders_per_10s_max > limit {
            problems.push(format!(
                "orders.orders_per_10s_max {} is above the exchange's ORDERS limit {limit} \
                 per 10 s",
                config.orders.orders_per_10s_max
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "the configuration does not match the exchange's rules for {symbol}:\n  - {}",
            problems.join("\n  - ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load, LoadOptions};

    fn config() -> Config {
        let mut options = LoadOptions::from_process(None);
        options.root = std::env::temp_dir().join("mm-live-unit-no-config");
        options.env.clear();
        load(&options).unwrap()
    }

    /// The shape of Binance's exchangeInfo (rest-api.md "Exchange information"), BTCUSDT's
    /// filters as PROTOCOL.md gives them.
    const INFO: &str = r#"{"timezone":"UTC","serverTime":1565246363776,
      "rateLimits":[{"rateLimitType":"REQUEST_WEIGHT","interval":"MINUTE","intervalNum":1,"limit":6000},
                    {"rateLimitType":"ORDERS","interval":"SECOND","intervalNum":10,"limit":100},
                    {"rateLimitType":"ORDERS","interval":"DAY","intervalNum":1,"limit":200000}],
      "exchangeFilters":[],
      "symbols":[{"symbol":"BTCUSDT","status":"TRADING","baseAsset":"BTC","quoteAsset":"USDT",
        "filters":[{"filterType":"PRICE_FILTER","minPrice":"0.01000000","maxPrice":"1000000.00000000","tickSize":"0.01000000"},
                   {"filterType":"LOT_SIZE","minQty":"0.00001000","maxQty":"9000.00000000","stepSize":"0.00001000"},
                   {"filterType":"NOTIONAL","minNotional":"5.00000000","applyMinToMarket":true,"maxNotional":"9000000.00000000","applyMaxToMarket":false,"avgPriceMins":5},
                   {"filterType":"MAX_NUM_ORDERS","maxNumOrders":200}]}]}"#;

    #[test]
    fn exchange_info_gives_the_symbols_rules() {
        let rules = parse_exchange_info(INFO.as_bytes(), "BTCUSDT").unwrap();
        assert_eq!(rules.status, "TRADING");
        assert_eq!(
            (rules.base_asset.as_str(), rules.quote_asset.as_str()),
            ("BTC", "USDT")
        );
        assert_eq!((rules.tick_atoms, rules.step_atoms), (1_000_000, 1_000));
        assert_eq!(rules.qty_range_atoms, (1_000, 900_000_000_000));
        assert_eq!(rules.min_notional_atoms, 500_000_000);
        assert_eq!(rules.max_num_orders, Some(200));
        assert_eq!(rules.orders_per_10s, Some(100));
        assert!(parse_exchange_info(INFO.as_bytes(), "ETHUSDT")
            .unwrap_err()
            .to_string()
            .contains("no symbol ETHUSDT"));
        check_rules(&config(), &rules).unwrap();
    }

    #[test]
    fn a_config_that_disagrees_with_the_exchange_is_refused_naming_the_key() {
        let mut rules = parse_exchange_info(INFO.as_bytes(), "BTCUSDT").unwrap();
        rules.tick_atoms = 10_000_000;
        rules.min_notional_atoms = 1_000_000_000;
        rules.orders_per_10s = Some(50);
        rules.status = "BREAK".to_string();
        let error = check_rules(&config(), &rules).unwrap_err().to_string();
        for needle in [
            "status is BREAK",
            "set market.tick_size = \"0.1\"",
            "set market.min_notional = \"10\"",
            "orders.orders_per_10s_max 100 is above the exchange's ORDERS limit 50",
        ] {
            assert!(error.contains(needle), "{needle:?} missing from: {error}");
        }
    }
}
