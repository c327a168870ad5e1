//! A trading session: the hot loop, the `Trader` (engine + order manager + risk) against
//! one venue, the side thread and its reports. Paper trading runs it against the simulated
//! venue (`paper::PaperSink` with `venue::sim::SimVenue`), live trading against Binance
//! (`live::LiveSink` with `venue::binance::BinanceVenue`); both modes are wiring on top of
//! this module.
//!
//! Threads and channels of a session (`threads::Session`):
//! - the **hot thread** (the caller's, pinned to `engine.cpu_core` if set) runs
//!   `hot::run_feed_loop` with the mode's `FeedSink`: it owns the mio `Poll`, the
//!   market-data connection, the trader and the venue (for live, the order connection);
//! - the **side thread** (`mm-side`, `side::SideThread`) drains four bounded channels —
//!   trade records (`TRADE_RECORD_CHANNEL_DEPTH`), hot-loop records
//!   (`hot::HOT_RECORD_CHANNEL_DEPTH`), order counts (`COUNTS_CHANNEL_DEPTH`, every
//!   `COUNTS_EVERY_NS`) and the venue's notes (`notes::Note`) — into the log, the KPIs, the
//!   latency histograms, the console report, the KPI snapshot and the metrics endpoint;
//! - the **REST thread** (`mm-rest`, `hot::SnapshotFetcher`) fetches depth snapshots when
//!   the hot loop asks.
//!
//! One concern per file (the engine and trader are built by `crate::assemble`): `endpoints`
//! (the market-data URLs and connection settings), `handoff` (the hot ends of the
//! channels), `step` (a market event or a timer tick through the trader), `paper` (the
//! simulated venue's sink), `side` (the side thread and where its reports go), `threads`
//! (starting, running and joining a session), `notes` (what a venue's hot side tells the
//! log), `hot_log` (the log lines of the hot loop's records).
//!
//! Never: imports `crate::modes` (modes depend on this module, never the reverse) or
//! `crate::live`; on the hot thread, allocates, blocks or formats — everything leaves with
//! `try_send`, a full channel drops and counts.

pub mod endpoints;
pub mod handoff;
pub mod hot_log;
pub mod notes;
pub mod paper;
pub mod side;
pub mod step;
pub mod threads;

pub use endpoints::{market_data, tls_roots, MarketData};
pub use handoff::{counts_of, Handoff, COUNTS_EVERY_NS};
pub use hot_log::{log_net, log_record};
pub use notes::{NoNotes, Note};
pub use side::{Reports, SideThread};
pub use step::{market_step, timer_step, TIMER_EVERY_NS};
pub use threads::{Session, SideUnfinished, COUNTS_CHANNEL_DEPTH, TRADE_RECORD_CHANNEL_DEPTH};
