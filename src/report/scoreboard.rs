//! The scoreboard's table, `scoreboard.md`: one Markdown row per recording × fee tier ×
//! scored fold, then the recordings that could not be traded; and the one-line progress
//! row the console shows per scored fold.
//!
//! Owns: the table's layout and its file. Never: decides anything (`crate::scoreboard`
//! chooses).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::backtest::Scorecard;
use crate::scoreboard::{Choice, FoldScore, Untradeable};
use crate::telemetry::kpi::KpiStatus;

/// One KPI for the table: its value and ✓/✗, or n/a with what was measured.
fn kpi_text(status: &KpiStatus) -> String {
    let name = status.kind.name();
    match (status.value, status.measured) {
        (Some(v), _) => format!("{name} {v:.3}{}", if status.met { " ✓" } else { " ✗" }),
        (None, Some(m)) => format!("{name} n/a (measured {m:.3})"),
        (None, None) => format!("{name} n/a"),
    }
}

/// The progress line of one scored fold (the table has the details).
pub fn row_text(s: &FoldScore) -> String {
    let what = match (&s.choice, &s.card) {
        (Choice::Trade { .. }, Some(c)) => format!(
            "net {:+.4}, spread {:+.4}, {} fills, {}/6 KPIs",
            c.net_pnl_quote, c.spread_pnl_quote, c.fills, c.targets_met
        ),
        (Choice::StandAside(why), _) => format!("stood aside: {why}"),
        (Choice::Trade { .. }, None) => "not run".to_string(),
    };
    let what = match &s.not_representative {
        Some(why) => format!("{what} — NOT REPRESENTATIVE: {why}"),
        None => what,
    };
    format!(
        "  {} | fee {:+} bps | fold {}: {what}",
        s.recording, s.fee_bps, s.fold
    )
}

/// The Markdown table: one row per recording × fee tier × scored fold, then the recordings
/// that could not be traded.
pub fn render_table(scores: &[FoldScore], untradeable: &[Untradeable]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| recording | maker fee (bps) | fold | net PnL | spread PnL (net of fees) | inventory \
         PnL | fees | fills | orders | KPIs met | Sharpe/min | chosen on earlier data |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for s in scores {
        let chosen = match &s.choice {
            Choice::Trade {
                settings,
                objective,
                fills,
            } => format!(
                "{} (objective {objective:+.4} at {fills} fills)",
                settings.join(" ")
            ),
            Choice::StandAside(why) => format!("**stood aside**: {why}"),
        };
        let chosen = match &s.not_representative {
            Some(why) => format!("{chosen} — **not representative**: {why}"),
            None => chosen,
        };
        let zero = Scorecard::default();
        let c = s.card.as_ref().unwrap_or(&zero);
        let _ = writeln!(
            t,
            "| {} | {:+} | {} ({:.0} min) | {:+.4} | {:+.4} | {:+.4} | {:.4} | {} | {} | {} | {} | \
             {chosen} |",
            s.recording,
            s.fee_bps,
            s.fold,
            s.minutes,
            c.net_pnl_quote,
            c.spread_pnl_quote,
            c.inventory_pnl_quote,
            c.fees_quote,
            c.fills,
            c.orders_placed,
            match &s.card {
                Some(c) => format!(
                    "{}/6 ({})",
                    c.targets_met,
                    c.kpis.iter().map(kpi_text).collect::<Vec<_>>().join(", ")
                ),
                None => "n/a".to_string(),
            },
            c.sharpe_per_minute
                .map_or_else(|| "n/a".to_string(), |v| format!("{v:.3}")),
        );
    }
    for u in untradeable {
        let _ = writeln!(
            t,
            "| {} | all | — | — | — | — | — | 0 | 0 | n/a | n/a | **not tradeable**: {} |",
            u.recording, u.reason
        );
    }
    t
}

/// Writes `table` to `reports_root/scoreboard_<UNIX seconds>/scoreboard.md`; returns the
/// file's path. Reads the wall clock for the folder name only.
pub fn write_table(reports_root: &Path, table: &str) -> anyhow::Result<PathBuf> {
    let folder = reports_root.join(format!(
        "scoreboard_{}",
        crate::time::wall_now_ns() / 1_000_000_000
    ));
    std::fs::create_dir_all(&folder).with_context(|| format!("creating {}", folder.display()))?;
    std::fs::write(folder.join("scoreboard.md"), table)
        .with_context(|| format!("writing {}", folder.join("scoreboard.md").display()))?;
    Ok(folder.join("scoreboard.md"))
}
