//! Everything mm writes for a person to read, one file per kind of output:
//!
//! | file | output |
//! | --- | --- |
//! | `backtest` | a backtest's run folder (`summary.json`, CSVs, plots) and the `--grid` table |
//! | `calibration` | the calibration report folder (`summary.md`/`.json`, estimates, plots) |
//! | `scoreboard` | the scoreboard's walk-forward table (`scoreboard.md`) |
//! | `kpi` | the console KPI report ("📊 … Performance Report") and the KPI snapshot file |
//!
//! Owns: layouts, formatting and plots. The figures come from the library modules that
//! compute them (`backtest`, `calibration`, `scoreboard`, `telemetry::kpi`); a report never computes a
//! decision. Never: runs on the hot path, imports a mode.

pub mod backtest;
pub mod calibration;
pub mod kpi;
pub mod scoreboard;
