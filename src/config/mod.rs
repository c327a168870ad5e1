//! Configuration: raw TOML layers → one validated `Config`.
//!
//! Owns: reading config files and `MM__*` environment overrides, merging the layers
//! (defaults ← config/calibrated.toml ← `--config` ← environment ← flags), and turning the
//! merged text into typed, checked values. Two stages, as ripgrep does: every layer is first
//! checked on its own against the schema (so an unknown key or a wrong type names the file or
//! variable it came from), then the merged values are validated as a whole (so `min > max`
//! names the key and the layer that set it).
//!
//! Never: reads anything after start-up, prints, or panics on bad input — every problem is a
//! `ConfigError` that says where, which key, what is wrong and how to fix it.
//!
//! Files: `schema.rs` (the validated `Config` and its sections), `load.rs` (the layers:
//! files, environment, flags; merging; stage one), `validate.rs` (stage two: ranges and
//! cross-field rules, value parsers), `raw.rs` (the stage-one serde schema), `tests.rs`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::model;
use crate::orders::{OrderParams, OrderParamsError};
use crate::risk::{LimitsError, RiskLimits};
use crate::types::{parse_atoms, Qty, Symbol, SymbolSpec};
use crate::venue::sim::{LatencyModel, SimParams, SimParamsError};

/// The defaults, built into the binary so that it runs even without the config folder.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");
/// Where the defaults are read from when the file exists (edits there take effect).
pub const DEFAULT_PATH: &str = "config/default.toml";
/// The overlay written by `--mode=calibration`, applied when present.
pub const CALIBRATED_PATH: &str = "config/calibrated.toml";
/// Prefix of environment overrides: `MM__<SECTION>__<KEY>`.
pub const ENV_PREFIX: &str = "MM__";
/// Longest accepted horizon τ, seconds. Longer horizons were the seed's "spread 0 bps" bug.
pub const HORIZON_S_MAX: f64 = 3600.0;
/// Longest duration any other seconds key accepts (about 11.6 days): 10¹⁵ ns, the cap of
/// the unit-suffixed durations (`parse_duration_ns`) too, so a timestamp plus any
/// configured duration stays far inside u64 nanoseconds (a larger `kpi.report_every_s`
/// overflowed the paper session's next-report time).
pub const DURATION_S_MAX: f64 = 1e6;

mod load;
mod raw;
mod schema;
#[cfg(test)]
mod tests;
mod validate;

pub use load::*;
use raw::*;
pub use schema::*;
pub use validate::*;

/// A configuration problem: where it is, which key, what is wrong, how to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file, environment variable or flag the bad value came from.
    pub source: String,
    /// Dotted key path (`model.gamma_per_bps`), or empty for a whole-file problem.
    pub key: String,
    /// What is wrong.
    pub problem: String,
    /// What to do about it.
    pub fix: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "config error in {}: {}", self.source, self.problem)?;
        } else {
            write!(
                f,
                "config error in {}: key `{}`: {}",
                self.source, self.key, self.problem
            )?;
        }
        write!(f, " — fix: {}", self.fix)
    }
}

impl std::error::Error for ConfigError {}
