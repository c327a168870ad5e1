//! A trading session: the hot loop, the `Trader` (engine + order manager + risk) against
//! one venue, the side thread and its reports, shared by paper and live trading.
//!
//! Never: imports `crate::modes` (modes depend on this module, never the reverse).

pub mod build;
pub mod endpoints;
pub mod hot_log;

pub use build::{build_trader, engine_params, OFI_CAPACITY};
pub use endpoints::{market_data, tls_roots, MarketData};
pub use hot_log::{log_net, log_record};
