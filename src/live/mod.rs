//! Live trading's own logic: everything a session against Binance does that paper trading
//! does not.
//!
//! Never: imports `crate::modes`.

pub mod gates;
pub mod rules;

pub use gates::{gates, masked_key};
pub use rules::{check_rules, fetch_rules, parse_exchange_info, ExchangeRules};
