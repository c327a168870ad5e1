//! `mm`: command-line flags → validated `Config` → one mode. Nothing else lives here.
//!
//! Exit status: 0 success; 1 the run failed or a check it performs failed; 2 bad flags, bad
//! configuration, or a mode that is not available in this build; 130 a second Ctrl+C.

// Console output goes through `console` (never panics on a closed pipe).
#![deny(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use mm::config::{self, Config, LoadOptions};
use mm::modes::{self, Mode};
use mm::shutdown::Shutdown;
use mm::telemetry::log::Logger;

/// A low-latency market maker for Binance spot: Avellaneda–Stoikov quotes tilted by
/// order-flow imbalance.
///
/// Configuration comes from config/default.toml, overlaid by config/calibrated.toml (if
/// present), by --config, by MM__<SECTION>__<KEY> environment variables and by the flags below.
#[derive(Debug, Parser)]
#[command(name = "mm", version, about, long_about, max_term_width = 100)]
struct Cli {
    /// What to run: paper-trading (live data, simulated fills), backtest (recorded data),
    /// scoreboard (walk-forward over every shared recording at four fee tiers), calibration
    /// (fit the parameters), live (real orders), spread-check (print and check
    /// the model's quotes for a representative state), simulate (Avellaneda–Stoikov 2008
    /// Monte Carlo), kpi (show the KPI snapshot), record (write market data to a journal),
    /// convert (turn captures and CSV dumps into a journal or a decoded .mmt tape), replay
    /// (walk the data through the book without trading: timing and data checks).
    #[arg(long, value_parser = parse_mode, value_name = "MODE")]
    mode: Mode,

    /// Binance spot symbol [default: market.symbol from the config, BTCUSDT].
    #[arg(long, value_name = "SYMBOL")]
    symbol: Option<String>,

    /// How long to run, in hours (fractions allowed) [default: until Ctrl+C or end of data].
    #[arg(long, value_name = "HOURS", value_parser = parse_hours)]
    duration: Option<f64>,

    /// Least severe log level written to logs/mm_v1_YYYYMMDD.log: error, warn, info, debug
    /// or trace [default: log.level from the config, info].
    #[arg(long, value_name = "LEVEL", value_parser = ["error", "warn", "info", "debug", "trace"])]
    log_level: Option<String>,

    /// A TOML file overlaid on the defaults (and on config/calibrated.toml) [default: none].
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,

    /// Market-data WebSocket base URL, e.g. wss://127.0.0.1:9443 for the local exchange; the
    /// REST URL (same host and port) and, for live, the order endpoint <URL>/ws-api/v3 are
    /// derived from it [default: market_data.ws_url, wss://stream.binance.com:9443].
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,

    /// A PEM CA certificate to trust instead of the public roots (the cert the local exchange
    /// printed) [default: market_data.ca_file, none].
    #[arg(long, value_name = "PEM")]
    ca: Option<String>,

    /// record, convert: the journal file to write (never overwritten) [default:
    /// journal/<SYMBOL>_<UTC time>.mmj, convert: journal/<SYMBOL>_converted_<UTC time>.mmj];
    /// convert to a name ending in .mmt writes a decoded tape instead
    /// (docs/backtest-at-scale.md); backtest, calibration: the folder run folders (and the
    /// --shard files) go into [default: reports].
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,

    /// backtest, replay, calibration, convert: recorded market data — a file, a folder or a
    /// glob (repeatable; several are merged by time): engine journals, raw captures `<ts>
    /// <json>` (gzip or plain), Binance public-data CSV (trades, aggTrades, bookTicker; plain
    /// or .zip), decoded .mmt tapes (every mode but convert; read one after another)
    /// [default: the built-in 5.8-minute BTCUSDT slice, tools/data]. scoreboard: the shared
    /// data folder [default: ../shared/data], or files to score as one recording.
    #[arg(long, value_name = "PATH")]
    data: Vec<String>,

    /// Overrides one configuration key, e.g. --set model.gamma_per_bps=0.2 (repeatable; applied
    /// after every other layer, in order).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,

    /// backtest: runs every combination of the values in parallel, one summary row each,
    /// e.g. --grid model.gamma_per_bps=0.05,0.1,0.2 --grid ofi.beta=0,0.3 (repeatable);
    /// calibration: the grid searched [default: calibration.grid_* from the config].
    #[arg(long, value_name = "KEY=V1,V2,..")]
    grid: Vec<String>,

    /// calibration, backtest --grid: runs only slice i of n of the grid and writes its rows
    /// to <out>/shard-<i>-of-<n>.csv (for a batch scheduler: a Slurm array, a Kubernetes
    /// Indexed Job, GNU parallel; combine with --merge).
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,

    /// calibration, backtest --grid: combines the shard-*.csv files of --shard runs
    /// (folders or files, repeatable). Calibration then picks the best point, runs it on the
    /// held-out data and writes the report and calibrated.toml; a backtest grid writes the
    /// grid's report as one run would. Give the same --data, --grid and --set as the shards.
    #[arg(long, value_name = "PATH")]
    merge: Vec<PathBuf>,

    /// calibration: where to write the calibrated configuration (the previous file is
    /// kept as <PATH>.bak) [default: config/calibrated.toml, which every mode then loads].
    #[arg(long, value_name = "PATH")]
    calibrated_out: Option<PathBuf>,

    /// backtest: start the replay this long after the data's first event (e.g. 330s), on the
    /// book as it stood there (a synthetic snapshot carries it across the cut).
    #[arg(long, value_name = "DURATION", value_parser = parse_offset)]
    from: Option<u64>,

    /// backtest, replay: end the replay this long after the data's first event (e.g. 600s,
    /// 90m, 36h, 2d); with --from, the window is [from, to). Same as --duration = to − from.
    #[arg(long, value_name = "DURATION", value_parser = parse_offset)]
    to: Option<u64>,

    /// scoreboard: folds per recording (fold 0 is only chosen on; each later fold is scored
    /// with the grid point chosen on all the data before it); 2 to 1000.
    #[arg(long, default_value_t = 3)]
    folds: usize,

    /// kpi: print the KPI table once and exit (for scripts) instead of a live view.
    #[arg(long)]
    once: bool,

    /// latency: the latency dump (.hlog in latency/) to print percentiles of.
    #[arg(long, value_name = "PATH")]
    file: Option<PathBuf>,

    /// live: confirms that you mean to send real orders with real money (or set
    /// live.i_understand_live_trading = true). Read docs/live.md ("Going live") first.
    #[arg(long)]
    i_understand_live_trading: bool,

    /// simulate: seed of the random number generator; the same seed gives the same numbers.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// simulate: Monte Carlo paths per strategy and gamma.
    #[arg(long, default_value_t = 1000)]
    paths: usize,

    /// simulate: print one JSON object instead of the table.
    #[arg(long)]
    json: bool,

    /// spread-check: best bid of the state to quote against (the default is the BTCUSDT top of
    /// book recorded 2024-08-08 23:54 UTC).
    #[arg(long, value_name = "PRICE", default_value = "61837.63")]
    bid: String,

    /// spread-check: best ask of the state to quote against.
    #[arg(long, value_name = "PRICE", default_value = "61837.64")]
    ask: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Viewers: no banner, no log file, no config beyond the symbol.
    match cli.mode {
        Mode::Kpi | Mode::Latency => return viewer(&cli),
        _ => {}
    }
    if let Some(why) = cli.mode.not_available() {
        let available: Vec<&str> = Mode::ALL
            .iter()
            .filter(|m| m.not_available().is_none())
            .map(|m| m.as_str())
            .collect();
        mm::errln!(
            "mm: --mode={} is not available yet ({why}); available now: {}",
            cli.mode,
            available.join(", ")
        );
        return ExitCode::from(2);
    }
    let config = match load_config(&cli) {
        Ok(config) => config,
        Err(e) => {
            mm::errln!("mm: {e}");
            return ExitCode::from(2);
        }
    };
    if cli.mode == Mode::Live {
        if let Err(e) = modes::live::preflight(&config, cli.i_understand_live_trading) {
            mm::errln!("mm: {e}");
            return ExitCode::from(2);
        }
    }
    match run(&cli, &config) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            mm::errln!("mm: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// `--mode=kpi` and `--mode=latency`: read files written by another run.
fn viewer(cli: &Cli) -> ExitCode {
    let mut out = std::io::stdout();
    let result = match cli.mode {
        Mode::Latency => match &cli.file {
            Some(file) => modes::latency::run(file, &mut out),
            None => Err(anyhow::anyhow!(
                "--mode=latency needs --file <dump>, e.g. --file latency/paper-trading_BTCUSDT_<time>.hlog"
            )),
        },
        _ => {
            let symbol = match load_config(cli) {
                Ok(config) => config.spec.symbol,
                Err(e) => {
                    mm::errln!("mm: {e}");
                    return ExitCode::from(2);
                }
            };
            let path = mm::report::kpi::default_snapshot_path(symbol.as_str());
            modes::kpi::run(&path, cli.once, &mut out)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            mm::errln!("mm: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn load_config(cli: &Cli) -> Result<Config, config::ConfigError> {
    load_config_with(cli, &[])
}

/// The configuration with `extra` `--set` flags after the command line's (for `--grid`).
fn load_config_with(cli: &Cli, extra: &[String]) -> Result<Config, config::ConfigError> {
    let mut options = LoadOptions::from_process(cli.config.clone());
    options.symbol = cli.symbol.clone();
    options.log_level = cli.log_level.clone();
    options.endpoint = cli.endpoint.clone();
    options.ca_file = cli.ca.clone();
    options.sets = cli.set.iter().chain(extra).cloned().collect();
    config::load(&options)
}

/// Runs the chosen mode; `Ok(false)` when the mode's own check failed.
fn run(cli: &Cli, config: &Config) -> anyhow::Result<bool> {
    let shutdown = Shutdown::install().context("installing the Ctrl+C handler")?;
    let logger = Logger::start(&config.log.dir, config.log.level)?;
    let log = logger.handle();
    // A closed stdout/stderr (EPIPE) is said in the log, never a panic.
    mm::console::set_log(log.clone());

    let banner = config.banner(cli.mode.as_str());
    // With --json, stdout carries exactly one JSON object: the banner goes to stderr.
    if cli.json {
        mm::errln!("{banner}");
    } else {
        mm::outln!("{banner}");
    }
    for warning in &config.warnings {
        log.warn(format_args!("config: {warning}"));
    }
    log.info(format_args!(
        "start: mode {} symbol {} config layers: {}",
        cli.mode,
        config.spec.symbol,
        config.layers.join(" <- ")
    ));
    if let Some(hours) = cli.duration {
        log.info(format_args!("duration limit {hours} h"));
    }

    // Not locked for the whole run: side threads print reports to stdout too. A write
    // that fails (a closed pipe) is counted and logged, never an error that ends the run.
    let mut out = mm::console::Stdout;
    let outcome = match cli.mode {
        Mode::SpreadCheck => {
            let bid = config
                .spec
                .parse_price(cli.bid.as_bytes())
                .map_err(|e| anyhow::anyhow!("--bid {:?}: {e}", cli.bid))?;
            let ask = config
                .spec
                .parse_price(cli.ask.as_bytes())
                .map_err(|e| anyhow::anyhow!("--ask {:?}: {e}", cli.ask))?;
            let passed =
                modes::spread_check::run(&config.model_params(), &config.spec, bid, ask, &mut out)?;
            if !passed {
                log.error(format_args!("spread-check failed"));
            }
            passed
        }
        Mode::Simulate => {
            let args = modes::simulate::SimulateArgs {
                seed: cli.seed,
                paths: cli.paths,
                json: cli.json,
            };
            modes::simulate::run(&args, &mut out, &|| shutdown.requested())?;
            true
        }
        Mode::PaperTrading => {
            let args = modes::paper::PaperArgs {
                duration_ns: duration_ns(cli),
                snapshot_path: None,
            };
            let summary = modes::paper::run(config, &args, &log, &shutdown)?;
            writeln!(
                out,
                "KPI snapshot: {} (mm --mode=kpi --once shows it)",
                summary.snapshot_path.display()
            )?;
            for file in &summary.latency_files {
                writeln!(out, "latency: {}", file.display())?;
            }
            true
        }
        Mode::Live => {
            let args = modes::live::LiveArgs {
                duration_ns: duration_ns(cli),
                confirmed: cli.i_understand_live_trading,
            };
            let summary = modes::live::run(config, &args, &log, &shutdown)?;
            // A side thread left behind may hold stdout's lock (blocked on a write nobody
            // reads): then everything below goes to stderr.
            let mut stderr_out = mm::console::Stderr;
            let out: &mut dyn Write = if summary.side_unfinished.is_some() {
                &mut stderr_out
            } else {
                &mut out
            };
            writeln!(
                out,
                "KPI snapshot: {} (mm --mode=kpi --once shows it)",
                summary.snapshot_path.display()
            )?;
            for file in &summary.latency_files {
                writeln!(out, "latency: {}", file.display())?;
            }
            let inventory = summary
                .spec
                .qty_to_f64(mm::types::Qty(summary.inventory_lots));
            if summary.traded {
                writeln!(
                    out,
                    "open orders at exit: {} per the engine, {} per the exchange; inventory \
                     {inventory} (base balance − live.base_target)",
                    summary.open_orders_local,
                    summary
                        .open_orders_exchange
                        .map_or_else(|| "UNCONFIRMED".to_string(), |n| n.to_string()),
                )?;
            } else {
                writeln!(
                    out,
                    "open orders at exit: none (the session never reconciled, so it placed none)"
                )?;
            }
            if let mm::hot::LoopEnd::Sink(why) = summary.end {
                log.error(format_args!("live: stopped: {why}"));
                anyhow::bail!("live trading stopped: {why}");
            }
            if !summary.clean {
                log.error(format_args!(
                    "live: exit without the exchange's confirmation that nothing is open: \
                     check the account"
                ));
                mm::errln!(
                    "mm: CHECK THE ACCOUNT: the exchange did not confirm that every order of \
                     this session is cancelled (the next start cancels them)"
                );
                for line in summary.unverified.iter().flat_map(|u| u.lines()) {
                    mm::errln!("mm:   not verified: {line}");
                }
            }
            if let Some(unfinished) = &summary.side_unfinished {
                mm::errln!("mm: error: {unfinished}");
                // Nothing more on stdout (its lock may be held): exit 1 from here.
                return Ok(false);
            }
            summary.clean
        }
        Mode::Record => {
            let args = modes::record::RecordArgs {
                out: cli.out.clone(),
                duration_ns: duration_ns(cli),
            };
            let summary = modes::record::run(config, &args, &log, &shutdown)?;
            writeln!(
                out,
                "recorded {} records ({} bytes, {} frames, {} gaps, {} snapshots, {} dropped) \
                 into {}",
                summary.records,
                summary.bytes,
                summary.stats.frames,
                summary.stats.engine.gaps,
                summary.stats.engine.snapshots,
                summary.stats.journal_dropped,
                summary.path.display()
            )?;
            true
        }
        Mode::Backtest => {
            let args = modes::backtest::BacktestArgs {
                data: cli.data.clone(),
                reports_root: cli.out.clone().unwrap_or_else(|| PathBuf::from("reports")),
                duration_ns: window_ns(cli)?,
                grid: cli.grid.clone(),
                from_ns: cli.from,
                shard: cli.shard.clone(),
                merge: cli.merge.clone(),
            };
            let make_config = |extra: &[String]| load_config_with(cli, extra);
            let met = modes::backtest::run(config, &args, &make_config, &shutdown, &mut out)?;
            log.info(format_args!("backtest done: all KPI targets met: {met}"));
            // A backtest that ran succeeded, whatever its KPIs say.
            true
        }
        Mode::Scoreboard => {
            // --data: the shared data folder (default ../shared/data) for every recording
            // of the table, or files to score as one recording of the configured market.
            let folder = match cli.data.as_slice() {
                [] => Some(PathBuf::from("../shared/data")),
                [one] if Path::new(one).is_dir() => Some(PathBuf::from(one)),
                _ => None,
            };
            let args = modes::scoreboard::ScoreboardArgs {
                files: if folder.is_some() {
                    Vec::new()
                } else {
                    cli.data.clone()
                },
                data_root: folder.unwrap_or_default(),
                folds: cli.folds,
                grid: cli.grid.clone(),
                reports_root: cli.out.clone().unwrap_or_else(|| PathBuf::from("reports")),
            };
            let make_config = |extra: &[String]| load_config_with(cli, extra);
            modes::scoreboard::run(&args, &make_config, &shutdown, &mut out)?;
            true
        }
        Mode::Calibration => {
            let args = modes::calibration::CalibrationArgs {
                data: cli.data.clone(),
                reports_root: cli.out.clone().unwrap_or_else(|| PathBuf::from("reports")),
                calibrated_out: cli
                    .calibrated_out
                    .clone()
                    .unwrap_or_else(|| PathBuf::from(config::CALIBRATED_PATH)),
                duration_ns: duration_ns(cli),
                grid: cli.grid.clone(),
                shard: cli.shard.clone(),
                merge: cli.merge.clone(),
                sets: cli.set.clone(),
            };
            let make_config = |extra: &[String]| load_config_with(cli, extra);
            modes::calibration::run(config, &args, &make_config, &shutdown, &mut out)?;
            log.info(format_args!("calibration done"));
            true
        }
        Mode::Convert => {
            let args = modes::convert::ConvertArgs {
                data: cli.data.clone(),
                out: cli.out.clone(),
            };
            let path = modes::convert::run(config, &args, &mut out)?;
            log.info(format_args!("converted into {}", path.display()));
            true
        }
        Mode::Replay => {
            if cli.from.is_some() {
                anyhow::bail!("--mode=replay reads from the data's start: use --to or --duration");
            }
            let args = modes::replay::ReplayArgs {
                data: cli.data.clone(),
                span_ns: window_ns(cli)?,
            };
            modes::replay::run(config, &args, &mut out)?;
            true
        }
        other => anyhow::bail!("--mode={other} is not wired in this build"),
    };
    out.flush()?;

    if shutdown.requested() {
        log.info(format_args!("stopped by signal"));
    }
    let (out_lost, err_lost) = mm::console::lost();
    if out_lost + err_lost > 0 {
        log.warn(format_args!(
            "console: {out_lost} writes to stdout and {err_lost} to stderr failed (closed \
             pipe?); the run went on, this log and the report files hold its results"
        ));
    }
    log.info(format_args!("shutdown clean (mode {})", cli.mode));
    let summary = logger.finish()?;
    if summary.dropped > 0 {
        mm::errln!(
            "mm: {} log lines were dropped (log channel full)",
            summary.dropped
        );
    }
    Ok(outcome)
}

/// `--duration` in nanoseconds.
/// `--from`, `--to`: a duration with a unit (ns, us, ms, s, m, h, d).
fn parse_offset(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a duration: write e.g. 330s, 1500ms, 90m, 36h or 2d");
    if let Some(ns) = config::parse_duration_ns(text) {
        return Ok(ns);
    }
    let t = text.trim();
    let (number, scale) = if let Some(n) = t.strip_suffix('m') {
        (n, 60e9)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600e9)
    } else if let Some(n) = t.strip_suffix('d') {
        (n, 86_400e9)
    } else {
        return Err(bad());
    };
    let value: f64 = number.trim().parse().map_err(|_| bad())?;
    let ns = value * scale;
    if !(ns.is_finite() && (0.0..1e18).contains(&ns)) {
        return Err(bad());
    }
    Ok(ns.round() as u64)
}

/// How much data to replay from the start (or from `--from`): `--duration`, and `--to`
/// as `to − from`; the shorter when both are given.
fn window_ns(cli: &Cli) -> anyhow::Result<Option<u64>> {
    let to = match cli.to {
        Some(to) => {
            let from = cli.from.unwrap_or(0);
            if to <= from {
                anyhow::bail!("--to must be later than --from (or than the data's start)");
            }
            // [from, to): the last event kept is before `to`.
            Some(to - from - u64::from(cli.from.is_none()))
        }
        None => None,
    };
    Ok(match (duration_ns(cli), to) {
        (Some(d), Some(t)) => Some(d.min(t)),
        (d, t) => d.or(t),
    })
}

fn duration_ns(cli: &Cli) -> Option<u64> {
    cli.duration.map(|hours| (hours * 3600.0 * 1e9) as u64)
}

fn parse_mode(text: &str) -> Result<Mode, String> {
    Mode::parse(text).ok_or_else(|| {
        let all: Vec<&str> = Mode::ALL.iter().map(|m| m.as_str()).collect();
        format!("unknown mode; use one of: {}", all.join(", "))
    })
}

fn parse_hours(text: &str) -> Result<f64, String> {
    let hours: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of hours"))?;
    if !hours.is_finite() || hours <= 0.0 {
        return Err("the duration must be a positive number of hours, e.g. 0.5".to_string());
    }
    Ok(hours)
}
