//! `--mode=backtest`: flags → `backtest::simulate` over a decoded `replay::Tape` → the run
//! folder (`report::backtest`) and the console report (`report::kpi`). `--grid` runs every
//! combination of the given values in parallel (rayon) over the same tape, one summary row
//! each. The replay, the feed latency and the figures live in `crate::backtest`.
//!
//! Wiring only. Deterministic: the same tape and configuration give the same
//! `summary.json` (all but its `timing` field, which holds wall-clock figures) and the same
//! `fills.csv`, byte for byte.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use crate::backtest::book_health;
use crate::backtest::grid;
use crate::backtest::grid::grid_fingerprint;
use crate::backtest::run::per_second;
use crate::backtest::verdict::{edge_verdict, no_trading_reason};
use crate::backtest::{grid_combinations, parse_grid, simulate, GridAxis, GridRow, Scorecard};
use crate::calibration::search::{
    in_shard, merge_shards, parse_shard, rows_csv, shard_file_name, shard_files, write_shard, Row,
};
use crate::config::{Config, ConfigError, FeedLatency};
use crate::replay::{self, EventSource, ReplayData, Tape, TapeInfo, TapeStream};
use crate::report::backtest as report;
use crate::shutdown::Shutdown;
use crate::time::{Clock, SystemClock};

/// A run with more events than this shows progress even when stderr is not a terminal.
const LONG_RUN_EVENTS: usize = 5_000_000;

/// Flags of the mode.
#[derive(Clone, Debug, Default)]
pub struct BacktestArgs {
    /// `--data` arguments (files, folders, globs); empty = the built-in slice.
    pub data: Vec<String>,
    /// Folder the run folders go into (`reports`).
    pub reports_root: PathBuf,
    /// Replay only this much data from its start, ns.
    pub duration_ns: Option<u64>,
    /// `--grid key=v1,v2,..` arguments.
    pub grid: Vec<String>,
    /// `--from`: replay from this long after the data's first event, ns.
    pub from_ns: Option<u64>,
    /// `--shard i/n`: run only slice i of n of the grid and write its rows to
    /// `<reports_root>/shard-<i>-of-<n>.csv`.
    pub shard: Option<String>,
    /// `--merge`: the shard files (or folders of them) to combine into the grid's report.
    pub merge: Vec<PathBuf>,
}

/// One fill as the engine saw it.
/// Runs the mode: loads the data, replays it (or a grid of configurations), writes the
/// report folder and prints the KPI table. `make_config` builds a configuration with extra
/// `--set` flags (for `--grid`). Returns whether every KPI target was met (single run) —
/// the exit status does not depend on it: a backtest that ran is a success.
pub fn run(
    config: &Config,
    args: &BacktestArgs,
    make_config: &(dyn Fn(&[String]) -> Result<Config, ConfigError> + Sync),
    shutdown: &Shutdown,
    out: &mut dyn Write,
) -> anyhow::Result<bool> {
    if args.grid.is_empty() && (args.shard.is_some() || !args.merge.is_empty()) {
        anyhow::bail!(
            "--shard and --merge split a --grid across machines: give the --grid axes too \
             (the same on every shard and on the merge)"
        );
    }
    let wall = SystemClock::new();
    let load_start = wall.mono_ns();
    let span_ns = args.duration_ns.unwrap_or(u64::MAX);
    // One replay streams (memory independent of the data's length); a grid replays the
    // decoded tape once per configuration, and `--from` cuts a window of it.
    let tape = match args.from_ns {
        None if args.grid.is_empty() => {
            let keep_delays = matches!(config.venue.feed_latency, FeedLatency::Data { .. });
            ReplayData::Streamed(TapeStream::open(
                &args.data,
                config.spec,
                span_ns,
                keep_delays,
            )?)
        }
        None => {
            let readers = replay::open_sources(&args.data, &config.spec)?;
            ReplayData::Loaded(Tape::load_until(readers, config.spec, span_ns)?)
        }
        Some(from_ns) => {
            let readers = replay::open_sources(&args.data, &config.spec)?;
            // The whole data is decoded: the book at the cut is rebuilt from everything
            // before it and carried over by a synthetic snapshot (`Tape::window`).
            let whole = Tape::load_until(readers, config.spec, u64::MAX)?;
            let start = whole
                .events()
                .first()
                .map_or(0, |e| e.local_ts_ns)
                .saturating_add(from_ns);
            let end = args
                .duration_ns
                .map_or(u64::MAX, |d| start.saturating_add(d));
            ReplayData::Loaded(whole.window(start, end, config.market_data.book_levels)?)
        }
    };
    let load_ns = wall.mono_ns().saturating_sub(load_start);
    // Data read once (a named pipe) is counted while it is replayed: described after.
    let read_once = matches!(&tape, ReplayData::Streamed(s) if s.read_once());
    if read_once {
        writeln!(
            out,
            "data: {} (read once, through a named pipe: one pass, counted while replayed)",
            tape.sources().join(", ")
        )?;
    } else {
        describe_data(config, &tape, Some(load_ns), out)?;
    }
    if !args.grid.is_empty() {
        return run_grid(config, args, &tape, make_config, out).map(|_| true);
    }

    let total = tape.stats().events as usize;
    let progress_on = std::io::stderr().is_terminal() || total > LONG_RUN_EVENTS;
    let progress_on = progress_on || read_once;
    let mut progress = |done: usize| {
        if progress_on && total == 0 {
            crate::errprint!("\rreplay {done} events");
        } else if progress_on {
            crate::errprint!(
                "\rreplay {:>3}% {done}/{total} events",
                done.saturating_mul(100) / total.max(1)
            );
        }
        !shutdown.requested()
    };
    let replayed = simulate(config, &tape, Some(&mut progress))?;
    if progress_on {
        let total = tape.stats().events;
        crate::errln!("\rreplay 100% {total}/{total} events");
    }
    if read_once {
        describe_data(config, &tape, None, out)?;
    }
    let timing = report::Timing {
        load_s: load_ns as f64 / 1e9,
        replay_s: replayed.loop_wall_ns as f64 / 1e9,
        events_per_s: per_second(replayed.events, replayed.loop_wall_ns),
        wall_s: wall.mono_ns().saturating_sub(load_start) as f64 / 1e9,
    };
    let summary = report::Summary::build(config, &tape, &replayed, timing);
    let folder = report::write_run(&args.reports_root, config, &summary, &replayed)?;
    write!(
        out,
        "{}",
        crate::report::kpi::render_report(&replayed.kpi, "Backtest")
    )?;
    writeln!(out, "{}", report::money_line(&summary))?;
    writeln!(out, "{}", book_health::line(&replayed.engine_stats))?;
    if let Some(verdict) = edge_verdict(&Scorecard::of(&replayed)) {
        writeln!(out, "{verdict}")?;
    }
    let before = if read_once {
        "decoded on its own thread meanwhile, in one pass".to_string()
    } else {
        format!("decoding took {:.2} s more", timing.load_s)
    };
    let per_event_us = |ns: u64| ns as f64 / 1e3 / replayed.events.max(1) as f64;
    let cpu = match replayed.loop_cpu_ns {
        Some(ns) => format!(
            "; the loop thread's own CPU {:.3} s, {:.3} µs/event",
            ns as f64 / 1e9,
            per_event_us(ns)
        ),
        None => String::new(),
    };
    writeln!(
        out,
        "replayed {} events in {:.3} s: {:.2} M events/s, {:.3} µs/event (replay + strategy \
         loop, wall time: waits for the decode thread included{cpu}; {before})",
        replayed.events,
        timing.replay_s,
        timing.events_per_s / 1e6,
        per_event_us(replayed.loop_wall_ns),
    )?;
    if replayed.interrupted {
        writeln!(
            out,
            "stopped early by Ctrl+C: the report covers the data replayed so far"
        )?;
    }
    writeln!(out, "report: {}", folder.display())?;
    if replayed.order_stats.orders_placed == 0 && !replayed.interrupted {
        anyhow::bail!(
            "the backtest placed no order: {}",
            no_trading_reason(&tape, &replayed)
        );
    }
    if let Some(reason) = book_health::not_representative(&replayed.engine_stats) {
        if !replayed.interrupted {
            anyhow::bail!("{reason}");
        }
    }
    Ok(replayed.kpi.all_met())
}

/// The data line (files and counts; `load_ns`: the counting pass's time, None when the
/// data was counted while replayed), torn journal tails, and the refusal of data with no
/// market event of the symbol.
fn describe_data(
    config: &Config,
    tape: &ReplayData,
    load_ns: Option<u64>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let stats = tape.stats();
    writeln!(
        out,
        "data: {} ({} events: {} depth, {} bookTicker, {} trades, {} snapshots; {} skipped) \
         {}",
        tape.sources().join(", "),
        stats.events,
        stats.depth_diffs,
        stats.book_tickers,
        stats.trades,
        stats.snapshots,
        stats.skipped_unknown_kind + stats.skipped_other_symbol,
        load_ns.map_or_else(
            || "counted while replayed".to_string(),
            |ns| format!("decoded in {:.2} s", ns as f64 / 1e9)
        )
    )?;
    for (file, bytes, zeros) in &stats.torn_tails {
        let why = if *zeros {
            "zero bytes after the last complete record (a power loss)"
        } else {
            "the last record is cut (a crash mid-write)"
        };
        crate::errln!(
            "mm: notice: {file}: torn tail of {bytes} bytes skipped — {why}; every complete \
             record before it is replayed"
        );
    }
    // Snapshots name no symbol: data of another symbol leaves only them.
    let market_events = stats.depth_diffs + stats.book_tickers + stats.trades;
    if market_events == 0 {
        anyhow::bail!(
            "no {} market events to replay in {} ({} frames of other symbols, {} of kinds \
             the engine does not use, {} snapshots); check --symbol",
            config.spec.symbol,
            tape.sources().join(", "),
            stats.skipped_other_symbol,
            stats.skipped_unknown_kind,
            stats.snapshots
        );
    }
    Ok(())
}

fn run_grid(
    config: &Config,
    args: &BacktestArgs,
    tape: &(impl EventSource + Sync),
    make_config: &(dyn Fn(&[String]) -> Result<Config, ConfigError> + Sync),
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let axes: Vec<GridAxis> = args
        .grid
        .iter()
        .map(|a| parse_grid(a))
        .collect::<anyhow::Result<_>>()?;
    let combos = grid_combinations(&axes)?;
    let configs: Vec<Config> = combos
        .iter()
        .map(|sets| make_config(sets).map_err(|e| anyhow::anyhow!("{e}")))
        .collect::<anyhow::Result<_>>()?;
    if configs.iter().any(|c| c.spec != config.spec) {
        anyhow::bail!("--grid cannot change market.*: the data is decoded once");
    }
    writeln!(
        out,
        "grid: {} combinations on {} threads",
        configs.len(),
        rayon::current_num_threads()
    )?;
    let fp = grid_fingerprint(tape, &axes, config);
    let shard = args.shard.as_deref().map(parse_shard).transpose()?;
    if shard.is_some() && !args.merge.is_empty() {
        anyhow::bail!("--shard and --merge: give one (run the shards, then merge them)");
    }
    if !args.merge.is_empty() {
        let files = shard_files(&args.merge)?;
        let merged = merge_shards(&files, &fp, &axes, combos.len())?;
        writeln!(
            out,
            "merged {} grid points from {} shard files",
            merged.len(),
            files.len()
        )?;
        let rows: Vec<GridRow> = merged.into_iter().map(|r| r.grid).collect();
        return write_grid_report(config, args, &axes, &rows, out);
    }
    let Some(shard) = shard else {
        let rows = grid::run_grid(&configs, &combos, tape)?;
        return write_grid_report(config, args, &axes, &rows, out);
    };
    // One slice of the grid (round robin over the points), for a batch scheduler.
    let mine: Vec<usize> = (0..combos.len()).filter(|&i| in_shard(i, shard)).collect();
    let my_configs: Vec<Config> = mine.iter().map(|&i| configs[i].clone()).collect();
    let my_combos: Vec<Vec<String>> = mine.iter().map(|&i| combos[i].clone()).collect();
    let rows = grid::run_grid(&my_configs, &my_combos, tape)?;
    let rows: Vec<Row> = mine
        .iter()
        .zip(rows)
        .map(|(&index, grid)| Row {
            index,
            // A backtest grid chooses nothing: the column holds the PnL.
            objective: grid.pnl_quote,
            grid,
        })
        .collect();
    std::fs::create_dir_all(&args.reports_root)
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", args.reports_root.display()))?;
    let path = args.reports_root.join(shard_file_name(shard));
    write_shard(&path, &rows_csv(&fp, &axes, &rows))?;
    writeln!(
        out,
        "shard {}/{}: {} of {} grid points (fingerprint {fp}) → {}; combine with --merge {}",
        shard.0,
        shard.1,
        rows.len(),
        combos.len(),
        path.display(),
        args.reports_root.display()
    )?;
    Ok(())
}

/// The grid's run folder and console table.
fn write_grid_report(
    config: &Config,
    args: &BacktestArgs,
    axes: &[GridAxis],
    rows: &[GridRow],
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let folder = report::write_grid(&args.reports_root, config, axes, rows)?;
    write!(out, "{}", report::render_grid(axes, rows))?;
    writeln!(out, "report: {}", folder.display())?;
    Ok(())
}
