//! mm — a low-latency market-making engine for Binance spot.
//!
//! The library holds everything; `main.rs` only wires command-line flags to one mode.
//! Dependencies point down only: `modes` → `backtest`/`scoreboard`/`calibration`/`report`
//! → `telemetry`/`model`/`config` → `types`.
//! The core (model, and later book, feed, orders, engine) is sans-IO: it never reads a
//! clock, touches a socket or allocates after start-up.

// Console output goes through `console` (never panics on a closed pipe).
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod assemble;
pub mod backtest;
pub mod book;
pub mod calibration;
pub mod config;
pub mod console;
pub mod cpu;
pub mod engine;
pub mod feed;
pub mod hot;
pub mod journal;
pub mod limits;
pub mod live;
pub mod mem;
pub mod model;
pub mod modes;
pub mod net;
pub mod orders;
pub mod replay;
pub mod report;
pub mod risk;
pub mod scoreboard;
pub mod session;
pub mod shutdown;
pub mod telemetry;
pub mod time;
pub mod types;
pub mod venue;
