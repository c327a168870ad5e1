//! The side thread's concerns: the log file now; KPIs, HDR histograms and the journal as
//! they arrive. The hot thread only ever hands records over bounded channels with
//! `try_send`; everything slow (formatting, files, maths) happens here.

pub mod book_health;
pub mod kpi;
pub mod latency;
pub mod log;
pub mod metrics;
pub mod report;
