//! One module per run mode: wiring only. Each mode takes a validated `Config` and runs.

pub mod simulate;
pub mod spread_check;
