//! The side thread's concerns: the log file now; KPIs, HDR histograms and the journal as
//! they arrive. The hot thread only ever hands records over bounded channels with
//! `try_send`; everything slow (formatting, files, maths) happens here.

pub mod kpi;
pub mod latency;
pub mod log;
pub mod metrics;

/// Transitional: the console report and KPI snapshot moved to `crate::report::kpi`; this
/// alias keeps the session/live/kpi modes compiling until their imports are updated.
pub use crate::report::kpi as report;
