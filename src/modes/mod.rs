//! One module per run mode: wiring only. Each mode takes a validated `Config` (and its own
//! flags) and runs; the logic lives in the library modules below it.

pub mod backtest;
pub mod calibration;
pub mod convert;
pub mod kpi;
pub mod latency;
pub mod live;
pub mod paper;
pub mod record;
pub mod replay;
pub mod scoreboard;
pub mod simulate;
pub mod spread_check;

use std::fmt;

// The helpers several modes share live in the library (`crate::session`); re-exported here
// for the modes (and benches) that name them by their old path.

/// Every way to run mm. The spelling on the command line is `--mode=<kebab-case>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Live market data, simulated fills.
    PaperTrading,
    /// Recorded market data, simulated fills.
    Backtest,
    /// Fit the model's parameters from recorded data.
    Calibration,
    /// Real orders on Binance spot.
    Live,
    /// Print the quotes the model makes for a representative state and check them.
    SpreadCheck,
    /// Avellaneda & Stoikov's (2008) Monte Carlo experiment.
    Simulate,
    /// Show the KPI snapshot of a running engine.
    Kpi,
    /// Record market data into a journal.
    Record,
    /// Convert recorded data (captures, CSV dumps) into a journal.
    Convert,
    /// Print the percentiles of a latency dump.
    Latency,
    /// Replay recorded data through the book without trading (timing, data checks).
    Replay,
    /// Walk-forward over every shared recording at four fee tiers: the strategy's table.
    Scoreboard,
}

impl Mode {
    /// All modes, in `--help` order.
    pub const ALL: [Mode; 12] = [
        Mode::PaperTrading,
        Mode::Backtest,
        Mode::Scoreboard,
        Mode::Calibration,
        Mode::Live,
        Mode::SpreadCheck,
        Mode::Simulate,
        Mode::Kpi,
        Mode::Record,
        Mode::Convert,
        Mode::Latency,
        Mode::Replay,
    ];

    /// The command-line spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Mode::PaperTrading => "paper-trading",
            Mode::Backtest => "backtest",
            Mode::Calibration => "calibration",
            Mode::Live => "live",
            Mode::SpreadCheck => "spread-check",
            Mode::Simulate => "simulate",
            Mode::Kpi => "kpi",
            Mode::Record => "record",
            Mode::Convert => "convert",
            Mode::Latency => "latency",
            Mode::Scoreboard => "scoreboard",
            Mode::Replay => "replay",
        }
    }

    /// Parses the command-line spelling.
    pub fn parse(text: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.as_str() == text)
    }

    /// `None` when the mode works in this build; otherwise what it is waiting for.
    pub const fn not_available(self) -> Option<&'static str> {
        match self {
            Mode::SpreadCheck
            | Mode::Simulate
            | Mode::Record
            | Mode::PaperTrading
            | Mode::Backtest
            | Mode::Convert
            | Mode::Kpi
            | Mode::Latency
            | Mode::Live
            | Mode::Scoreboard
            | Mode::Replay
            | Mode::Calibration => None,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
