//! The recordings the scoreboard scores: every recording of the shared data folder
//! (`../shared/data`, see its README) with the market settings it needs (`RECORDINGS`),
//! or the files given on the command line as one recording (`Recording`).
//!
//! Data only. Never: opens a file (the walk-forward does), or changes a strategy setting
//! beyond the market's (symbol, filters, sizes in its units).

/// One recording of the shared data folder and the settings its market needs.
#[derive(Clone, Copy, Debug)]
pub struct SharedRecording {
    /// Short name for the table.
    pub name: &'static str,
    /// Files, relative to the data root, replayed as one session.
    pub files: &'static [&'static str],
    /// `--set` flags for its market (symbol, filters, sizes in its units).
    pub sets: &'static [&'static str],
}

/// A recording to score: its name, files (relative to the data root, or as given) and
/// market settings.
#[derive(Clone, Debug)]
pub struct Recording {
    /// Name for the table.
    pub name: String,
    /// Files replayed as one session.
    pub files: Vec<String>,
    /// `--set` flags for its market.
    pub sets: Vec<String>,
}

impl Recording {
    /// An owned copy of a `RECORDINGS` entry.
    pub fn owned(shared: &SharedRecording) -> Recording {
        Recording {
            name: shared.name.to_string(),
            files: shared.files.iter().map(|f| f.to_string()).collect(),
            sets: shared.sets.iter().map(|f| f.to_string()).collect(),
        }
    }
}

/// Every recording of `../shared/data` (see its README), with exchangeInfo-like filters.
/// Sizes: about 60–100 USDT per quote and an inventory limit of 5 quotes.
pub const RECORDINGS: [SharedRecording; 6] = [
    SharedRecording {
        name: "BTCUSDT spot 2024-08-08/09 (10.8 min)",
        files: &[
            "binance-spot/btcusdt_20240808.gz",
            "binance-spot/btcusdt_20240809.gz",
        ],
        sets: &[],
    },
    SharedRecording {
        name: "NEXOUSDT spot 2024-07-23/25 (34 h)",
        files: &[
            "binance-spot-long/nexousdt_20240723.dat.gz",
            "binance-spot-long/nexousdt_20240724.dat.gz",
            "binance-spot-long/nexousdt_20240725.dat.gz",
        ],
        sets: &[
            "market.symbol=NEXOUSDT",
            "market.tick_size=0.001",
            "market.step_size=0.01",
            "market.min_notional=5",
            "quoting.quote_size=50",
            "quoting.inventory_max=250",
            "risk.order_notional_max=200",
        ],
    },
    SharedRecording {
        name: "BTCUSDT spot 2023-04-05 (7 min)",
        files: &["binance-spot/btcusdt_20230405.dat.gz"],
        sets: &[],
    },
    SharedRecording {
        name: "BTCUSDT USD-M 2023-04-04/05 (8.6 min)",
        files: &[
            "binance-usdm/btcusdt_20230404.dat.gz",
            "binance-usdm/btcusdt_20230405.dat.gz",
        ],
        sets: &[
            "market.tick_size=0.1",
            "market.step_size=0.001",
            "market.min_notional=100",
            "quoting.quote_size=0.004",
            "quoting.inventory_max=0.02",
        ],
    },
    SharedRecording {
        name: "BTCUSDT USD-M 2024-07-18/19 (8 min)",
        files: &[
            "binance-usdm/btcusdt_20240718.gz",
            "binance-usdm/btcusdt_20240719.gz",
        ],
        sets: &[
            "market.tick_size=0.1",
            "market.step_size=0.001",
            "market.min_notional=100",
            "quoting.quote_size=0.002",
            "quoting.inventory_max=0.01",
        ],
    },
    SharedRecording {
        name: "ETHUSDT USD-M 2024-07-18/19 (8 min)",
        files: &[
            "binance-usdm/ethusdt_20240718.gz",
            "binance-usdm/ethusdt_20240719.gz",
        ],
        sets: &[
            "market.symbol=ETHUSDT",
            "market.tick_size=0.01",
            "market.step_size=0.001",
            "market.min_notional=20",
            "quoting.quote_size=0.03",
            "quoting.inventory_max=0.15",
        ],
    },
];
