//! `--grid` axes (`key=v1,v2,..`) and every combination of their values, as `--set` lists
//! (used by the backtest's grid, calibration's search and the scoreboard), and the
//! backtest's grid run: one replay per combination, in parallel.
//!
//! Owns: `GridAxis`, its parsing, the combination order (first axis slowest) and
//! `run_grid`. Never: builds configurations (its callers do, from `--set` lists), prints or
//! writes files.

use anyhow::Context;
use rayon::prelude::*;

use crate::backtest::run::simulate;
use crate::backtest::score::GridRow;
use crate::config::Config;
use crate::replay::{EventSource, TapeInfo};

/// One `--grid` axis: a key and its values.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GridAxis {
    /// `section.key`.
    pub key: String,
    /// The values, as written.
    pub values: Vec<String>,
}

/// Parses `key=v1,v2,..`.
pub fn parse_grid(arg: &str) -> anyhow::Result<GridAxis> {
    let (key, values) = arg.split_once('=').with_context(|| {
        format!("--grid {arg:?}: expected key=v1,v2,.. e.g. --grid model.gamma_per_bps=0.05,0.1")
    })?;
    let key = key.trim().to_string();
    if key.starts_with("market.") {
        anyhow::bail!(
            "--grid {arg:?}: market.* cannot vary within one run (the data is decoded once \
             on the market's grid); run each market separately"
        );
    }
    let values: Vec<String> = values
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    if values.is_empty() {
        anyhow::bail!("--grid {arg:?}: no values after '='");
    }
    Ok(GridAxis { key, values })
}

/// Most combinations a grid may have: each is a whole replay (and, in a backtest grid, a
/// configuration held in memory), so more is a mistake in the axes, not a search.
pub const GRID_POINTS_MAX: usize = 100_000;

/// Every combination of the axes' values, as `key=value` lists (first axis slowest); an
/// error when there would be more than `GRID_POINTS_MAX` (the product of the axes' lengths
/// is checked before anything is built: it overflowed `usize` and panicked with enough
/// axes).
pub fn grid_combinations(axes: &[GridAxis]) -> anyhow::Result<Vec<Vec<String>>> {
    let total = axes
        .iter()
        .try_fold(1usize, |n, a| n.checked_mul(a.values.len()))
        .filter(|n| *n <= GRID_POINTS_MAX);
    if total.is_none() {
        let sizes: Vec<String> = axes.iter().map(|a| a.values.len().to_string()).collect();
        anyhow::bail!(
            "--grid: {} combinations is more than {GRID_POINTS_MAX}: use fewer values or axes (or several runs)",
            sizes.join(" × ")
        );
    }
    let mut combos: Vec<Vec<String>> = vec![Vec::new()];
    for axis in axes {
        let mut next = Vec::with_capacity(combos.len() * axis.values.len());
        for combo in &combos {
            for value in &axis.values {
                let mut c = combo.clone();
                c.push(format!("{}={value}", axis.key));
                next.push(c);
            }
        }
        combos = next;
    }
    Ok(combos)
}

/// Replays `tape` once per configuration, in parallel (rayon): `configs[i]` is the
/// configuration of the combination `combos[i]`. One row per combination, in their order.
pub fn run_grid(
    configs: &[Config],
    combos: &[Vec<String>],
    tape: &(impl EventSource + Sync),
) -> anyhow::Result<Vec<GridRow>> {
    configs
        .par_iter()
        .zip(combos.par_iter())
        .map(|(config, sets)| -> anyhow::Result<GridRow> {
            let replayed = simulate(config, tape, None)?;
            Ok(GridRow::of(sets, &replayed))
        })
        .collect()
}

/// FNV-1a (64 bit) of `parts` joined by newlines, as 16 hex digits. Not cryptographic: it
/// tells honest mistakes (other data, other flags) apart.
pub fn fingerprint(parts: &[String]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(b'\n')) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// What shapes a grid's rows: the data (file names and counts), the axes and the base
/// configuration. Shards and their merge must agree on it.
pub fn grid_fingerprint(tape: &dyn TapeInfo, axes: &[GridAxis], base: &Config) -> String {
    let mut parts = vec!["mm backtest grid rows v1".to_string()];
    parts.extend(data_fingerprint_parts(tape));
    parts.extend(axes_fingerprint_parts(axes));
    parts.push(config_fingerprint_part(base));
    fingerprint(&parts)
}

/// The data's part of a grid fingerprint: the file names (not paths, so shards on other
/// machines agree) and the counts and span of the events.
pub fn data_fingerprint_parts(tape: &dyn TapeInfo) -> Vec<String> {
    let s = tape.stats();
    let mut parts: Vec<String> = tape
        .sources()
        .iter()
        .map(|source| {
            std::path::Path::new(source)
                .file_name()
                .map_or_else(|| source.clone(), |n| n.to_string_lossy().into_owned())
        })
        .collect();
    parts.push(format!(
        "{} {} {} {} {} {} {}",
        s.events, s.depth_diffs, s.book_tickers, s.trades, s.snapshots, s.first_ts_ns, s.last_ts_ns
    ));
    parts
}

/// The axes' part of a grid fingerprint: `key=v1,v2,..` each.
pub fn axes_fingerprint_parts(axes: &[GridAxis]) -> impl Iterator<Item = String> + '_ {
    axes.iter()
        .map(|axis| format!("{}={}", axis.key, axis.values.join(",")))
}

/// The configuration's part of a grid fingerprint: every section that shapes a replay.
pub fn config_fingerprint_part(base: &Config) -> String {
    format!(
        "{:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {}",
        base.spec,
        base.model,
        base.quoting,
        base.ofi,
        base.orders,
        base.risk,
        base.venue,
        base.kpi,
        base.market_data.book_levels
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_combinations_cover_every_value() {
        let axes = vec![
            parse_grid("model.gamma_per_bps=0.05, 0.1,0.2").unwrap(),
            parse_grid("ofi.beta=0,0.3").unwrap(),
        ];
        let combos = grid_combinations(&axes).unwrap();
        assert_eq!(combos.len(), 6);
        assert_eq!(
            combos[0],
            vec![
                "model.gamma_per_bps=0.05".to_string(),
                "ofi.beta=0".to_string()
            ]
        );
        assert_eq!(
            combos[5],
            vec![
                "model.gamma_per_bps=0.2".to_string(),
                "ofi.beta=0.3".to_string()
            ]
        );
        assert!(parse_grid("model.gamma_per_bps").is_err());
        assert!(parse_grid("model.gamma_per_bps=").is_err());
        assert!(parse_grid("market.tick_size=0.1").is_err());
    }
}
