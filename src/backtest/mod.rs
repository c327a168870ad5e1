//! Backtesting: recorded market data replayed through the same `Trader` as paper and live
//! trading (book, OFI, σ, quoter, order manager, risk) against the simulated venue, on a
//! simulated clock taken from the data's timestamps.
//!
//! - `run`: one replay (`simulate`) and what it keeps (`Replayed`).
//! - `feed`: the feed latency a run charges and how it shifts the venue's latencies.
//! - `grid`: `--grid` axes, their combinations and the grid run (`run_grid`).
//! - `score`: the figures a grid, the scoreboard and calibration compare (`Scorecard`,
//!   `GridRow`, minute statistics).
//! - `verdict`: what a run says to a trader in words.
//!
//! Owns: the replay loop and the figures of a run. Never: writes files or prints (the run
//! folder is `report::backtest`'s, the console the mode's). `modes::backtest` is only
//! flags → this → print; the one thing taken from `modes` is `engine_params` (the engine as
//! every mode builds it), which belongs below the modes with the trading session.

pub mod book_health;
pub mod feed;
pub mod grid;
pub mod mids;
pub mod run;
pub mod score;
pub mod verdict;

pub use feed::FeedChoice;
pub use grid::{grid_combinations, parse_grid, GridAxis};
pub use run::{simulate, FillRow, QuoteMark, Replayed, Sample};
pub use score::{GridRow, Scorecard};
