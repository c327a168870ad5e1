//! `--mode=kpi`: shows the KPI snapshot that paper or live trading writes
//! (`kpi/<SYMBOL>.json`, see `report::kpi`).
//!
//! `--once` prints the report once (for scripts: the seed's
//! `KPITracker('BTCUSDT').get_summary()`). Otherwise a live table: on a terminal it switches
//! to the alternate screen in raw mode, redraws every second and quits on `q`, Esc or
//! Ctrl+C, then prints the last table on the normal screen; when stdin or stdout is not a
//! terminal it prints the table every second until Ctrl+C (SIGINT/SIGTERM).
//!
//! Why crossterm and no ratatui: the table is the report's plain text; what the terminal
//! needs is raw mode (one key, no Enter), a key poll with a timeout (the refresh tick, so no
//! sleep) and cursor control — crossterm alone. A widget layer would add build time and
//! nothing on screen.
//!
//! Wiring only; the rendering and the file format live in `report::kpi`.

use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use crossterm::{cursor, execute, queue, terminal};

use crate::report::kpi::{read_snapshot, render_report};
use crate::shutdown::Shutdown;
use crate::telemetry::kpi::KpiSnapshot;
use crate::time::{wall_now_ns, Clock, SystemClock};

/// Redraw period of the live table.
pub const REFRESH: Duration = Duration::from_secs(1);

/// Runs `--mode=kpi` on `snapshot_path` (normally `report::default_snapshot_path(symbol)`).
/// `once` prints the table once; otherwise the live table runs until `q` / Ctrl+C. A
/// missing snapshot is an error: "no KPI snapshot at kpi/BTCUSDT.json — start paper trading
/// or live first".
pub fn run(snapshot_path: &Path, once: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let snapshot = read_snapshot(snapshot_path)?;
    if once {
        out.write_all(render(&snapshot, None).as_bytes())?;
        out.flush()?;
        return Ok(());
    }
    if io::stdin().is_terminal() && io::stdout().is_terminal() {
        watch_terminal(snapshot_path, snapshot, out)
    } else {
        let shutdown = Shutdown::install().context("installing the Ctrl+C handler")?;
        watch_plain(snapshot_path, out, REFRESH, &mut |_| shutdown.requested())
    }
}

/// The report of `snapshot` plus its time and, in the live table, its age and a warning
/// when the last read failed.
fn render(snapshot: &KpiSnapshot, live: Option<&LiveStatus>) -> String {
    let title = if snapshot.mode == "backtest" {
        "Backtest"
    } else {
        "Real-time"
    };
    let mut text = render_report(snapshot, title);
    let as_of = utc_text(snapshot.ts_ns);
    match live {
        None => text.push_str(&format!("Snapshot of {as_of} UTC ({})\n", snapshot.mode)),
        Some(status) => {
            let age_s = status.now_wall_ns.saturating_sub(snapshot.ts_ns) as f64 / 1e9;
            let age = if snapshot.mode == "backtest" {
                String::new()
            } else {
                format!(", {age_s:.0} s old")
            };
            text.push_str(&format!(
                "Snapshot of {as_of} UTC ({}{age}) · refreshing every {} s · {}\n",
                snapshot.mode,
                REFRESH.as_secs(),
                status.quit_hint
            ));
            if let Some(error) = &status.error {
                text.push_str(&format!("⚠ showing the last good snapshot: {error}\n"));
            }
        }
    }
    text
}

/// What the live table adds below the report.
struct LiveStatus {
    now_wall_ns: u64,
    error: Option<String>,
    quit_hint: &'static str,
}

/// The live table on a terminal: raw mode + alternate screen, redraw every `REFRESH`,
/// quit on `q`, Esc or Ctrl+C.
fn watch_terminal(path: &Path, first: KpiSnapshot, out: &mut dyn Write) -> anyhow::Result<()> {
    let clock = SystemClock::new();
    let guard = RawScreen::enter(out)?;
    let mut last = first;
    let result = (|| -> anyhow::Result<()> {
        loop {
            let error = match read_snapshot(path) {
                Ok(snapshot) => {
                    last = snapshot;
                    None
                }
                Err(e) => Some(e.to_string()),
            };
            let status = LiveStatus {
                now_wall_ns: wall_now_ns(),
                error,
                quit_hint: "q to quit",
            };
            // Raw mode: "\n" no longer returns the carriage.
            let text = render(&last, Some(&status)).replace('\n', "\r\n");
            // The macros need a sized writer: a `&mut &mut dyn Write`.
            let mut screen = &mut *out;
            queue!(
                &mut screen,
                cursor::MoveTo(0, 0),
                terminal::Clear(terminal::ClearType::All)
            )?;
            out.write_all(text.as_bytes())?;
            out.flush()?;
            let redraw_at = clock.mono_ns() + REFRESH.as_nanos() as u64;
            loop {
                let left = redraw_at.saturating_sub(clock.mono_ns());
                if left == 0 || !event::poll(Duration::from_nanos(left))? {
                    break;
                }
                match event::read()? {
                    Event::Key(key) if key.kind != KeyEventKind::Release => {
                        let ctrl_c = key.code == KeyCode::Char('c')
                            && key.modifiers.contains(KeyModifiers::CONTROL);
                        if ctrl_c || matches!(key.code, KeyCode::Char('q' | 'Q') | KeyCode::Esc) {
                            return Ok(());
                        }
                    }
                    Event::Resize(..) => break,
                    _ => {}
                }
            }
        }
    })();
    drop(guard);
    // Leave the last table on the normal screen.
    out.write_all(render(&last, None).as_bytes())?;
    out.flush()?;
    result
}

/// The live table without a terminal: the report every `refresh`, separated by a blank
/// line, until `stop(frames_printed)` is true (checked every 100 ms).
fn watch_plain(
    path: &Path,
    out: &mut dyn Write,
    refresh: Duration,
    stop: &mut dyn FnMut(u64) -> bool,
) -> anyhow::Result<()> {
    let clock = SystemClock::new();
    let ticker = crossbeam_channel::tick(Duration::from_millis(100).min(refresh));
    let mut last: Option<KpiSnapshot> = None;
    let mut frames = 0u64;
    loop {
        let error = match read_snapshot(path) {
            Ok(snapshot) => {
                last = Some(snapshot);
                None
            }
            Err(e) => Some(e.to_string()),
        };
        if let Some(snapshot) = &last {
            let status = LiveStatus {
                now_wall_ns: wall_now_ns(),
                error,
                quit_hint: "Ctrl+C to quit",
            };
            if frames > 0 {
                out.write_all(b"\n")?;
            }
            out.write_all(render(snapshot, Some(&status)).as_bytes())?;
            out.flush()?;
            frames += 1;
        }
        let redraw_at = clock.mono_ns() + refresh.as_nanos() as u64;
        while clock.mono_ns() < redraw_at {
            if stop(frames) {
                return Ok(());
            }
            // The channel wait is the pause: side threads never sleep.
            let _ = ticker.recv();
        }
        if stop(frames) {
            return Ok(());
        }
    }
}

/// Raw mode + alternate screen + hidden cursor while alive.
struct RawScreen;

impl RawScreen {
    fn enter(out: &mut dyn Write) -> anyhow::Result<RawScreen> {
        terminal::enable_raw_mode().context("switching the terminal to raw mode")?;
        let guard = RawScreen;
        let mut screen = out;
        execute!(&mut screen, terminal::EnterAlternateScreen, cursor::Hide)?;
        Ok(guard)
    }
}

impl Drop for RawScreen {
    fn drop(&mut self) {
        // The live table runs only when stdout is the terminal, so restoring it there is
        // restoring `out`.
        let _ = execute!(io::stdout(), cursor::Show, terminal::LeaveAlternateScreen);
        let _ = terminal::disable_raw_mode();
    }
}

fn utc_text(ns: u64) -> String {
    let time: DateTime<Utc> = DateTime::from_timestamp_nanos(i64::try_from(ns).unwrap_or(i64::MAX));
    time.format("%Y-%m-%d %H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::report::kpi::write_snapshot;
    use crate::telemetry::kpi::{KpiParams, KpiTracker};
    use crate::types::{Qty, Symbol, SymbolSpec};

    fn snapshot() -> KpiSnapshot {
        let spec =
            SymbolSpec::from_decimals(Symbol::new("BTCUSDT").unwrap(), "0.01", "0.00001", "5")
                .unwrap();
        KpiTracker::new(KpiParams::new(spec, "paper-trading", Qty(1_000)), 0)
            .unwrap()
            .snapshot(1_767_225_600_000_000_000)
    }

    #[test]
    fn plain_watch_redraws_until_stopped_and_survives_a_vanished_file() {
        let dir = std::env::temp_dir().join(format!("mm-kpi-watch-{}", std::process::id()));
        let path = dir.join("BTCUSDT.json");
        write_snapshot(&path, &snapshot()).unwrap();
        let mut out = Vec::new();
        let mut stop = |frames: u64| {
            if frames == 1 {
                let _ = std::fs::remove_file(&path);
            }
            frames >= 2
        };
        watch_plain(&path, &mut out, Duration::from_millis(10), &mut stop).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text.matches("📊 BTCUSDT Performance Report (Real-time)")
                .count(),
            2
        );
        assert!(text.contains("Ctrl+C to quit"), "{text}");
        assert!(
            text.contains("⚠ showing the last good snapshot: no KPI snapshot at"),
            "{text}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn once_prints_the_table_with_its_time() {
        let text = render(&snapshot(), None);
        // A session that has not traded meets nothing.
        assert!(text.contains("KPI Status: 0/6 targets met"), "{text}");
        assert!(
            text.contains("Snapshot of 2026-01-01 00:00:00 UTC (paper-trading)"),
            "{text}"
        );
    }
}
