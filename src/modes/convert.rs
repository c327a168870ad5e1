//! `--mode=convert`: a one-time conversion of any input `--data` reads (raw captures, CSV
//! dumps, journals; several merged by time) into one engine journal, the compact binary
//! format `--mode=record` writes. Later backtests given the journal skip gunzip, line
//! splitting and CSV parsing; the JSON frames inside are decoded once per run into the
//! in-memory tape (see `replay`).
//!
//! Why an explicit step rather than an automatic cache: a cache needs invalidation rules
//! (file changed? config's symbol changed?) and a place to live; an explicit file is
//! visible, reproducible and can be copied. The journal is never overwritten.
//!
//! With `--out FILE.mmt` the output is a decoded tape instead (`replay::tapefile`: fixed-size
//! records of integer ticks and lots, the symbol's filters in the header, a CRC per block):
//! no JSON is decoded when it is replayed, but it is tied to the symbol's filters it was
//! converted with.
//!
//! Wiring only.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::replay;
use crate::time::wall_now_ns;

/// Flags of the mode.
#[derive(Clone, Debug, Default)]
pub struct ConvertArgs {
    /// `--data` arguments; empty = the built-in slice.
    pub data: Vec<String>,
    /// Output path; default `journal/<SYMBOL>_converted_<UTC time>.mmj`.
    pub out: Option<PathBuf>,
}

/// Converts; returns the journal's path.
pub fn run(config: &Config, args: &ConvertArgs, out: &mut dyn Write) -> anyhow::Result<PathBuf> {
    let symbol = config.spec.symbol.as_str();
    let path = match &args.out {
        Some(path) => path.clone(),
        None => default_path(symbol),
    };
    let readers = replay::open_inputs(&args.data, symbol)?;
    let names: Vec<String> = readers.iter().map(|r| r.name().to_string()).collect();
    let tape = path
        .to_str()
        .is_some_and(|p| p.ends_with(replay::tapefile::TAPE_EXTENSION));
    let (records, bytes) = if tape {
        replay::convert_to_tape(readers, &path, config.spec)?
    } else {
        replay::convert_to_journal(readers, &path, symbol, wall_now_ns())?
    };
    let what = if tape { "events" } else { "records" };
    writeln!(
        out,
        "converted {} into {} ({records} {what}, {bytes} bytes); replay it with \
         --mode=backtest --data {}",
        names.join(", "),
        path.display(),
        path.display()
    )?;
    Ok(path)
}

fn default_path(symbol: &str) -> PathBuf {
    let now = wall_now_ns();
    let stamp = chrono::DateTime::from_timestamp((now / 1_000_000_000) as i64, 0).map_or_else(
        || now.to_string(),
        |t| t.format("%Y%m%dT%H%M%SZ").to_string(),
    );
    Path::new(crate::modes::record::JOURNAL_DIR).join(format!("{symbol}_converted_{stamp}.mmj"))
}
