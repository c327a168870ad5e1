//! Live trading's own logic: everything a session against Binance does that paper trading
//! does not. The session itself (hot loop, `Trader`, side thread, reports) is
//! `crate::session`; `modes::live` wires the two together.
//!
//! One concern per file, in the order a session meets them:
//! - `gates`: keys from the environment, the explicit confirmation, a set
//!   `live.base_target` — before anything touches the network;
//! - `rules`: the exchange's filters from exchangeInfo, checked against the configuration;
//! - `order_entry`: the session tag, the banner, `BinanceVenue` on the WebSocket API;
//! - `sink`: `LiveSink`, the hot side (the order connection beside the market data on one
//!   mio `Poll`, the pauses for a lost order connection and for a 429/418 back-off);
//! - `desk`: what the hot side's parts act on (trader, venue, channels, base target);
//! - `reconcile`: the state machine run at start and after every order-connection
//!   reconnect (cancel all, read open orders and balances, take the exchange's word);
//! - `audit`: open orders and inventory checked against the exchange while trading;
//! - `wind_down`: Ctrl+C / deadline — cancel everything and wait for the exchange to
//!   confirm (`Unverified` says what it could not);
//! - `notes`: `LiveNote`, what the hot side tells the log (the bottom: it imports no other
//!   `live` module).
//!
//! Imports point down only: `sink` → `reconcile` → `audit` → `desk` → `notes`, and
//! `wind_down` → `desk`; `order_entry` → `gates`, `rules`.
//!
//! Never: reads the secret anywhere but `Credentials::from_env`, prints or logs it, sends
//! an order before the reconciliation, allocates, blocks or formats on the hot thread
//! (`LiveSink` hands `Copy` records and notes to the side thread with `try_send`), or
//! imports `crate::modes`.

pub mod audit;
pub mod desk;
pub mod gates;
pub mod notes;
pub mod order_entry;
pub mod reconcile;
pub mod rules;
pub mod sink;
pub mod wind_down;

pub use audit::{AUDIT_EVERY_NS, BALANCE_AUDIT_EVERY_NS};
pub use gates::{gates, masked_key};
pub use notes::{Cause, LiveNote, Unverified, NOTES_CHANNEL_DEPTH};
pub use order_entry::{ORDER_STANDBY_TOKEN, ORDER_TOKEN};
pub use rules::{check_rules, fetch_rules, parse_exchange_info, ExchangeRules};
pub use sink::{LiveOutcome, LiveSink};
