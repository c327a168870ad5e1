//! `--mode=latency --file <dump>`: prints, per tag, the count, the 50/90/99/99.9/99.99th
//! percentiles and the maximum of an HdrHistogram interval log (`.hlog`, ours from
//! `latency/` or any other tool's), in microseconds.
//!
//! Wiring only; reading and merging live in `telemetry::latency`.

use std::io::Write;
use std::path::Path;

use crate::telemetry::latency::{read_log, render_latency_table};

/// Prints the percentiles of every tag of the interval log `file`. A missing, empty,
/// malformed or undecodable file is an error naming the file (and the line).
pub fn run(file: &Path, out: &mut dyn Write) -> anyhow::Result<()> {
    let log = read_log(file)?;
    writeln!(
        out,
        "{}: {} interval histograms over {:.1} s, {} tag(s); values in µs",
        file.display(),
        log.intervals,
        log.span.as_secs_f64(),
        log.tags.len()
    )?;
    out.write_all(render_latency_table(&log.summaries()).as_bytes())?;
    out.flush()?;
    Ok(())
}
