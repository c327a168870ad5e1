//! The grid search of `--mode=calibration`: the walk-forward windows, the objective, every
//! grid point as a full backtest (`backtest::simulate`) run in parallel with rayon,
//! a progress bar, and shards: a slice of the grid whose rows go to a CSV, and the merge
//! that puts the slices back together.
//!
//! Determinism: a row depends only on the data, the configuration and the grid point, so
//! a grid cut into shards and merged gives the rows — and the choice — of the whole grid.
//! Floats in the row CSV are written in Rust's shortest round-trip form, so a merged row
//! reads back to the very same f64 values. The best row is the highest objective; ties go
//! to the lowest grid index; a NaN objective never wins.
//!
//! A shard file carries a fingerprint of everything that shapes its rows (data, windows,
//! fitted σ and k, grid, configuration): the merge refuses files made from anything else.
//!
//! Never: reads a clock except through `crate::time` (the progress bar's ETA), writes
//! anything but the shard file it is asked for.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use rayon::prelude::*;

use crate::backtest::{simulate, GridAxis, GridRow, Replayed};
use crate::config::{CalibrationConfig, CalibrationObjective, Config, ConfigError};
use crate::replay::Tape;
use crate::telemetry::kpi::KpiKind;
use crate::time::{Clock, SystemClock};

/// Weight of one KPI target met in the `targets` objective, quote currency: larger than
/// any PnL a grid point makes, so targets come first and PnL breaks ties.
pub const TARGETS_WEIGHT: f64 = 1e6;
/// Version of the row CSV layout (part of the fingerprint).
pub const ROWS_VERSION: u32 = 1;

/// The walk-forward cut of the data's receive-time span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Windows {
    /// First event, ns.
    pub start_ns: u64,
    /// End of the fit part = start of the choose part, ns.
    pub fit_end_ns: u64,
    /// End of the choose part = start of the held-out part, ns.
    pub choose_end_ns: u64,
    /// One past the last event, ns.
    pub end_ns: u64,
}

impl Windows {
    /// Cuts `[first_ns, last_ns]` at the fractions `fit` and `fit + choose` of its length.
    pub fn split(first_ns: u64, last_ns: u64, fit: f64, choose: f64) -> Windows {
        let span = last_ns.saturating_sub(first_ns) as f64;
        let at = |fraction: f64| first_ns + (span * fraction.clamp(0.0, 1.0)).round() as u64;
        Windows {
            start_ns: first_ns,
            fit_end_ns: at(fit),
            choose_end_ns: at(fit + choose),
            end_ns: last_ns.saturating_add(1),
        }
    }

    /// Seconds of each part: (fit, choose, held out).
    pub fn spans_s(&self) -> (f64, f64, f64) {
        let s = |a: u64, b: u64| b.saturating_sub(a) as f64 / 1e9;
        (
            s(self.start_ns, self.fit_end_ns),
            s(self.fit_end_ns, self.choose_end_ns),
            s(self.choose_end_ns, self.end_ns),
        )
    }
}

/// One grid point's result on the choose window.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Its index in the full grid (first axis slowest).
    pub index: usize,
    /// The objective, quote currency (see `objective`).
    pub objective: f64,
    /// The backtest's figures (settings are the point's `key=value`s).
    pub grid: GridRow,
}

/// The objective of a backtest under `calibration`'s settings:
/// - `spread` (default): `calibration::objective::objective` — spread PnL net of fees minus
///   the inventory-risk penalty; NaN (never chosen) below `MIN_FILLS_TO_CHOOSE` fills;
/// - `penalised`: PnL − kpi_miss_penalty × (KPI targets missed) − rms_inventory_penalty ×
///   (RMS inventory / inventory max), quote currency;
/// - `pnl`: PnL;
/// - `targets`: `TARGETS_WEIGHT` × (targets met) + PnL.
pub fn objective(run: &Replayed, row: &GridRow, calibration: &CalibrationConfig) -> f64 {
    let missed = KpiKind::ALL.len().saturating_sub(row.targets_met) as f64;
    let rms = row.kpis.get(1).copied().flatten().unwrap_or(0.0);
    match calibration.objective {
        CalibrationObjective::Spread => {
            crate::calibration::objective::objective(run).unwrap_or(f64::NAN)
        }
        CalibrationObjective::Penalised => {
            row.pnl_quote
                - calibration.kpi_miss_penalty * missed
                - calibration.rms_inventory_penalty * rms
        }
        CalibrationObjective::Pnl => row.pnl_quote,
        CalibrationObjective::Targets => TARGETS_WEIGHT * row.targets_met as f64 + row.pnl_quote,
    }
}

/// The best row: highest objective, ties to the lowest index, NaN never.
pub fn best(rows: &[Row]) -> Option<&Row> {
    rows.iter()
        .filter(|r| !r.objective.is_nan())
        .max_by(|a, b| {
            a.objective
                .total_cmp(&b.objective)
                .then(b.index.cmp(&a.index))
        })
}

/// The default grid of `[calibration]`: γ × OFI β × τ.
pub fn default_axes(calibration: &CalibrationConfig) -> Vec<GridAxis> {
    let axis = |key: &str, values: &[f64]| GridAxis {
        key: key.to_string(),
        values: values.iter().map(|v| format!("{v}")).collect(),
    };
    vec![
        axis("model.gamma_per_bps", &calibration.grid_gamma_per_bps),
        axis("ofi.beta", &calibration.grid_ofi_beta),
        axis("model.horizon_s", &calibration.grid_horizon_s),
    ]
}

/// `--shard i/n` → (i, n) with 1 ≤ i ≤ n.
pub fn parse_shard(text: &str) -> anyhow::Result<(usize, usize)> {
    let bad = || {
        anyhow::anyhow!(
            "--shard {text:?}: expected i/n with 1 ≤ i ≤ n, e.g. --shard 3/8 (the third of \
             eight slices of the grid)"
        )
    };
    let (i, n) = text.split_once('/').ok_or_else(bad)?;
    let i: usize = i.trim().parse().map_err(|_| bad())?;
    let n: usize = n.trim().parse().map_err(|_| bad())?;
    if i == 0 || n == 0 || i > n {
        return Err(bad());
    }
    Ok((i, n))
}

/// True when grid point `index` belongs to shard `i` of `n` (round robin, so every shard
/// gets a mix of cheap and costly points).
pub fn in_shard(index: usize, shard: (usize, usize)) -> bool {
    index % shard.1 == shard.0 - 1
}

/// The file a shard writes its rows to, inside `--out`.
pub fn shard_file_name(shard: (usize, usize)) -> String {
    format!("shard-{:03}-of-{:03}.csv", shard.0, shard.1)
}

/// Progress of the grid on stderr: a redrawn bar on a terminal, a line every 10 % in a log.
pub struct Progress {
    label: String,
    total: usize,
    done: AtomicUsize,
    terminal: bool,
    enabled: bool,
    clock: SystemClock,
}

impl Progress {
    /// A bar for `total` runs; `enabled` false prints nothing (tests, library use).
    pub fn new(label: &str, total: usize, enabled: bool) -> Progress {
        Progress {
            label: label.to_string(),
            total,
            done: AtomicUsize::new(0),
            terminal: std::io::stderr().is_terminal(),
            enabled,
            clock: SystemClock::new(),
        }
    }

    /// One more run finished.
    pub fn tick(&self) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if !self.enabled || self.total == 0 {
            return;
        }
        let elapsed_s = self.clock.mono_ns() as f64 / 1e9;
        let eta_s = elapsed_s / done as f64 * self.total.saturating_sub(done) as f64;
        let percent = done * 100 / self.total;
        if self.terminal {
            const WIDTH: usize = 30;
            let filled = done * WIDTH / self.total;
            crate::errprint!(
                "\r{} [{}{}] {done}/{} ({percent:>3}%) ETA {eta_s:.0} s ",
                self.label,
                "#".repeat(filled),
                "-".repeat(WIDTH - filled),
                self.total
            );
            if done == self.total {
                crate::errln!();
            }
        } else if done == self.total || (done * 10 / self.total) > ((done - 1) * 10 / self.total) {
            crate::errln!(
                "{}: {done}/{} runs ({percent}%), {elapsed_s:.1} s elapsed, ETA {eta_s:.0} s",
                self.label,
                self.total
            );
        }
    }
}

/// Runs every `(index, settings)` point as a backtest of `tape` with the configuration
/// `make_config(base_sets ++ settings)`, in parallel; rows in index order.
pub fn run_points(
    points: &[(usize, Vec<String>)],
    base_sets: &[String],
    make_config: &(dyn Fn(&[String]) -> Result<Config, ConfigError> + Sync),
    base: &Config,
    tape: &Tape,
    progress: &Progress,
) -> anyhow::Result<Vec<Row>> {
    let mut rows: Vec<Row> = points
        .par_iter()
        .map(|(index, settings)| -> anyhow::Result<Row> {
            let sets: Vec<String> = base_sets.iter().chain(settings).cloned().collect();
            let config =
                make_config(&sets).map_err(|e| anyhow::anyhow!("grid point {index}: {e}"))?;
            if config.spec != base.spec {
                anyhow::bail!("the grid cannot change market.*: the data is decoded once");
            }
            let replayed = simulate(&config, tape, None)
                .with_context(|| format!("grid point {index} ({})", settings.join(" ")))?;
            let grid = GridRow::of(settings, &replayed);
            progress.tick();
            Ok(Row {
                index: *index,
                objective: objective(&replayed, &grid, &base.calibration),
                grid,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    rows.sort_by_key(|r| r.index);
    Ok(rows)
}

/// The rows as CSV: fingerprint, grid index, one column per axis, the objective and the
/// backtest's figures. Every float in shortest round-trip form; a missing KPI is empty.
pub fn rows_csv(fingerprint: &str, axes: &[GridAxis], rows: &[Row]) -> String {
    let mut text = String::from("fingerprint,index,");
    for axis in axes {
        let _ = write!(text, "{},", axis.key);
    }
    text.push_str(
        "objective,pnl_quote,targets_met,spread_captured,rms_inventory,fill_ratio,\
         cancel_ratio,latency_p99_ms,total_pnl_kpi,fills,orders_placed,fees_quote,\
         max_drawdown_quote,sharpe_1m,spread_pnl_quote\n",
    );
    let opt = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v}"));
    for row in rows {
        let _ = write!(text, "{fingerprint},{},", row.index);
        for setting in &row.grid.settings {
            let value = setting.split_once('=').map_or("", |(_, v)| v);
            let _ = write!(text, "{value},");
        }
        let g = &row.grid;
        let _ = write!(text, "{},{},{},", row.objective, g.pnl_quote, g.targets_met);
        for i in 0..KpiKind::ALL.len() {
            let _ = write!(text, "{},", opt(g.kpis.get(i).copied().flatten()));
        }
        let _ = writeln!(
            text,
            "{},{},{},{},{},{}",
            g.fills,
            g.orders_placed,
            g.fees_quote,
            g.max_drawdown_quote,
            opt(g.sharpe_1m),
            g.spread_pnl_quote
        );
    }
    text
}

/// Reads rows written by `rows_csv`; `name` names the file in errors. Returns the
/// fingerprint (of the first row; every row must carry the same), the axis keys and rows.
pub fn parse_rows_csv(text: &str, name: &str) -> anyhow::Result<(String, Vec<String>, Vec<Row>)> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = lines
        .next()
        .with_context(|| format!("{name}: empty file (not a grid shard)"))?;
    let columns: Vec<&str> = header.split(',').collect();
    let tail = 15usize;
    if columns.len() < 2 + tail || columns[0] != "fingerprint" || columns[1] != "index" {
        anyhow::bail!(
            "{name}: not a grid shard (its header is not `fingerprint,index,...`) — \
             fix: give the shard-*.csv files written by --shard"
        );
    }
    if columns.last() != Some(&"spread_pnl_quote") {
        anyhow::bail!(
            "{name}: a grid shard without the spread_pnl_quote column (written by an older \
             mm) — fix: rerun that shard with this build"
        );
    }
    let keys: Vec<String> = columns[2..columns.len() - tail]
        .iter()
        .map(|k| k.to_string())
        .collect();
    let mut fingerprint: Option<String> = None;
    let mut rows = Vec::new();
    for (n, line) in lines.enumerate() {
        let line_no = n + 2;
        let fields: Vec<&str> = line.split(',').collect();
        let bad = |what: &str| anyhow::anyhow!("{name}: line {line_no}: {what}");
        if fields.len() != columns.len() {
            return Err(bad(&format!(
                "{} fields, the header has {}",
                fields.len(),
                columns.len()
            )));
        }
        match &fingerprint {
            None => fingerprint = Some(fields[0].to_string()),
            Some(f) if f != fields[0] => return Err(bad("mixed fingerprints in one file")),
            Some(_) => {}
        }
        let num = |i: usize| -> anyhow::Result<f64> {
            fields[i]
                .parse::<f64>()
                .map_err(|_| bad(&format!("{:?} is not a number", fields[i])))
        };
        let opt = |i: usize| -> anyhow::Result<Option<f64>> {
            if fields[i].is_empty() {
                Ok(None)
            } else {
                num(i).map(Some)
            }
        };
        let int = |i: usize| -> anyhow::Result<u64> {
            fields[i]
                .parse::<u64>()
                .map_err(|_| bad(&format!("{:?} is not a count", fields[i])))
        };
        let index = int(1)? as usize;
        let settings: Vec<String> = keys
            .iter()
            .zip(&fields[2..2 + keys.len()])
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let at = 2 + keys.len();
        let kpis = (0..KpiKind::ALL.len())
            .map(|i| opt(at + 3 + i))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let after = at + 3 + KpiKind::ALL.len();
        rows.push(Row {
            index,
            objective: num(at)?,
            grid: GridRow {
                settings,
                pnl_quote: num(at + 1)?,
                targets_met: int(at + 2)? as usize,
                kpis,
                fills: int(after)?,
                orders_placed: int(after + 1)?,
                fees_quote: num(after + 2)?,
                max_drawdown_quote: num(after + 3)?,
                sharpe_1m: opt(after + 4)?,
                spread_pnl_quote: num(after + 5)?,
            },
        });
    }
    let fingerprint =
        fingerprint.with_context(|| format!("{name}: no rows (an empty shard is not a shard)"))?;
    Ok((fingerprint, keys, rows))
}

/// The shard files `paths` name: a file as is, a folder's `shard-*.csv` files (sorted).
pub fn shard_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("listing {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("shard-") && n.ends_with(".csv"))
                })
                .collect();
            found.sort();
            if found.is_empty() {
                anyhow::bail!(
                    "--merge {}: the folder holds no shard-*.csv files — fix: give the folder \
                     the --shard runs wrote into (their --out)",
                    path.display()
                );
            }
            files.append(&mut found);
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            anyhow::bail!("--merge {}: no such file or folder", path.display());
        }
    }
    Ok(files)
}

/// Reads and checks every shard: same fingerprint as `expected`, same axes, and together
/// every one of `combos` grid points exactly once (a point in two shards must agree).
pub fn merge_shards(
    files: &[PathBuf],
    expected: &str,
    axes: &[GridAxis],
    combos: usize,
) -> anyhow::Result<Vec<Row>> {
    let keys: Vec<&str> = axes.iter().map(|a| a.key.as_str()).collect();
    let mut by_index: BTreeMap<usize, (Row, String)> = BTreeMap::new();
    for file in files {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {name}"))?;
        let (found, file_keys, rows) = parse_rows_csv(&text, &name)?;
        if found != expected {
            anyhow::bail!(
                "{name} was made from other data or settings (fingerprint {found}, this run \
                 {expected}) — fix: run every shard and the merge with the same --data, \
                 --grid, --set, --config and config files"
            );
        }
        if file_keys != keys {
            anyhow::bail!(
                "{name} has the grid axes {file_keys:?}, this run {keys:?} — fix: give the \
                 merge the same --grid flags as the shards"
            );
        }
        for row in rows {
            if row.index >= combos {
                anyhow::bail!(
                    "{name}: grid point {} does not exist (the grid has {combos})",
                    row.index
                );
            }
            if let Some((other, other_name)) = by_index.get(&row.index) {
                if *other != row {
                    anyhow::bail!(
                        "grid point {} differs between {other_name} and {name}: the same point \
                         must give the same backtest",
                        row.index
                    );
                }
                continue;
            }
            by_index.insert(row.index, (row, name.clone()));
        }
    }
    let missing: Vec<usize> = (0..combos).filter(|i| !by_index.contains_key(i)).collect();
    if !missing.is_empty() {
        let shown: Vec<String> = missing.iter().take(10).map(|i| i.to_string()).collect();
        anyhow::bail!(
            "{} of {combos} grid points are in no shard (first: {}) — fix: run the missing \
             shards (--shard i/n with the same n) and merge again",
            missing.len(),
            shown.join(", ")
        );
    }
    Ok(by_index.into_values().map(|(row, _)| row).collect())
}

/// Writes `text` to `path` (the shard file) through a temporary file and a rename, so a
/// scheduler never sees half a shard.
pub fn write_shard(path: &Path, text: &str) -> anyhow::Result<()> {
    crate::calibration::calibrated::write_atomically(path, text.as_bytes(), false)
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(index: usize, objective: f64) -> Row {
        Row {
            index,
            objective,
            grid: GridRow {
                settings: vec![
                    format!("model.gamma_per_bps=0.{index}"),
                    "ofi.beta=0".to_string(),
                ],
                pnl_quote: -0.123_456_789_012_345_6 * index as f64,
                targets_met: index % 7,
                kpis: vec![
                    Some(0.1),
                    None,
                    Some(1e-9),
                    Some(0.999),
                    Some(0.0),
                    Some(-0.5),
                ],
                fills: 3,
                orders_placed: 1745,
                fees_quote: 0.123_2,
                max_drawdown_quote: 0.376_7,
                sharpe_1m: None,
                spread_pnl_quote: 0.031_25 * index as f64,
            },
        }
    }

    fn axes() -> Vec<GridAxis> {
        vec![
            GridAxis {
                key: "model.gamma_per_bps".to_string(),
                values: vec![],
            },
            GridAxis {
                key: "ofi.beta".to_string(),
                values: vec![],
            },
        ]
    }

    #[test]
    fn windows_cut_the_span_at_the_fractions() {
        let w = Windows::split(1_000, 101_000, 0.5, 0.25);
        assert_eq!(
            (w.start_ns, w.fit_end_ns, w.choose_end_ns, w.end_ns),
            (1_000, 51_000, 76_000, 101_001)
        );
    }

    #[test]
    fn the_best_row_is_the_highest_objective_then_the_lowest_index() {
        let rows = vec![row(0, 1.0), row(1, f64::NAN), row(2, 3.0), row(3, 3.0)];
        assert_eq!(best(&rows).unwrap().index, 2);
        assert!(best(&[row(0, f64::NAN)]).is_none());
    }

    #[test]
    fn rows_round_trip_through_csv_exactly() {
        let rows: Vec<Row> = (0..5).map(|i| row(i, 0.1 * i as f64 - 1e-17)).collect();
        let text = rows_csv("00ff", &axes(), &rows);
        let (fingerprint, keys, back) = parse_rows_csv(&text, "x.csv").unwrap();
        assert_eq!(fingerprint, "00ff");
        assert_eq!(keys, vec!["model.gamma_per_bps", "ofi.beta"]);
        assert_eq!(back, rows);
        // A shard written before the spread column existed is refused, not misread (its
        // last axis would otherwise be taken for a result column).
        let old: String = text
            .lines()
            .map(|l| format!("{}\n", &l[..l.rfind(',').unwrap()]))
            .collect();
        let err = parse_rows_csv(&old, "old.csv").unwrap_err().to_string();
        assert!(err.contains("older") && err.contains("rerun"), "{err}");
    }

    #[test]
    fn shards_partition_the_grid_and_merge_checks_them() {
        let dir = std::env::temp_dir().join(format!("mm-calib-shards-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let rows: Vec<Row> = (0..7).map(|i| row(i, i as f64)).collect();
        for i in 1..=3 {
            let mine: Vec<Row> = rows
                .iter()
                .filter(|r| in_shard(r.index, (i, 3)))
                .cloned()
                .collect();
            let path = dir.join(shard_file_name((i, 3)));
            write_shard(&path, &rows_csv("abc", &axes(), &mine)).unwrap();
        }
        let files = shard_files(std::slice::from_ref(&dir)).unwrap();
        assert_eq!(files.len(), 3);
        assert_eq!(merge_shards(&files, "abc", &axes(), 7).unwrap(), rows);
        let err = merge_shards(&files, "abd", &axes(), 7).unwrap_err();
        assert!(err.to_string().contains("other data or settings"), "{err}");
        let err = merge_shards(&files[..2], "abc", &axes(), 7).unwrap_err();
        assert!(err.to_string().contains("in no shard"), "{err}");
        assert!(merge_shards(&files, "abc", &axes()[..1], 7).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn shard_flags() {
        assert_eq!(parse_shard("2/5").unwrap(), (2, 5));
        for bad in ["0/5", "6/5", "5", "a/b", "1/0"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
        assert!(in_shard(0, (1, 3)) && in_shard(4, (2, 3)) && !in_shard(4, (1, 3)));
        assert_ne!(
            crate::backtest::grid::fingerprint(&["a".to_string()]),
            crate::backtest::grid::fingerprint(&["b".to_string()])
        );
    }
}
