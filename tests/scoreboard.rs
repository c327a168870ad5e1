//! `mm --mode=scoreboard` as a user runs it, on the recording committed in the repo (the
//! built-in BTCUSDT slice, tools/data): the walk-forward table at the four fee tiers, the
//! stand-aside rule at the regular fee, the money split, and the refusals.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

#[path = "support/process.rs"]
mod process;

use process::{text, Workdir};

fn slice() -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tools/data/btcusdt_20240808.gz")
        .display()
        .to_string()
}

/// `mm --mode=scoreboard` on `data` with 2 folds and a 2-point grid, reports in `out`;
/// its stdout.
fn score_two_folds(w: &Workdir, data: &str, out: &str) -> String {
    w.ok(&[
        "--mode=scoreboard",
        "--data",
        data,
        "--folds",
        "2",
        "--grid",
        "model.gamma_per_bps=0.01,0.1",
        "--grid",
        "quoting.spread_min_bps=1",
        "--out",
        out,
    ])
}

/// The table the `report: ` line of `stdout` names.
fn report_table(w: &Workdir, stdout: &str) -> String {
    let report = stdout
        .lines()
        .find_map(|l| l.strip_prefix("report: "))
        .unwrap_or_else(|| panic!("no report line: {stdout}"));
    std::fs::read_to_string(w.path(report.trim())).unwrap()
}

/// The table's rows for one fee tier (the Markdown lines that start with the recording).
fn rows_at<'a>(table: &'a str, fee: &str) -> Vec<&'a str> {
    table
        .lines()
        .filter(|l| l.starts_with("| ") && l.contains(&format!(" | {fee} | ")))
        .collect()
}

#[test]
fn walk_forward_table_on_the_built_in_slice() {
    let w = Workdir::new("mm-scoreboard", "slice");
    let data = slice();
    let stdout = score_two_folds(&w, &data, "reports");
    let table = report_table(&w, &stdout);
    assert!(
        table.starts_with("| recording | maker fee (bps) | fold | net PnL"),
        "{table}"
    );
    // One scored fold at each of the four tiers.
    for fee in ["+10", "+7.5", "+0", "-0.5"] {
        assert_eq!(rows_at(&table, fee).len(), 1, "fee {fee}: {table}");
    }
    // At the regular tier the half-spread carries 10 bps of fee: the first half of the slice
    // shows no edge (or too few fills), so the strategy stands aside and says why.
    let regular = rows_at(&table, "+10")[0];
    assert!(regular.contains("**stood aside**"), "{regular}");
    assert!(
        regular.contains("| 0 | 0 |"),
        "stood aside = no fill, no order: {regular}"
    );
    // Every traded row names a grid point chosen on the earlier half, with its evidence,
    // and its money splits exactly: net = spread (net of fees) + inventory.
    for row in table.lines().filter(|l| l.contains("(objective ")) {
        assert!(row.contains("model.gamma_per_bps="), "{row}");
        let cells: Vec<&str> = row.split(" | ").collect();
        let num = |i: usize| cells[i].trim().parse::<f64>().unwrap();
        let (net, spread, inventory) = (num(3), num(4), num(5));
        assert!((net - (spread + inventory)).abs() < 2e-4, "{row}");
    }
    // The console says what was done, fold by fold.
    assert!(
        stdout.contains("scoreboard: 1 recordings × 4 fee tiers × 1 scored folds, 2 grid points"),
        "{stdout}"
    );
}

#[test]
fn bad_set_ups_are_refused() {
    let w = Workdir::new("mm-scoreboard", "bad");
    let one_fold = w.run(&["--mode=scoreboard", "--data", &slice(), "--folds", "1"]);
    assert_eq!(one_fold.status.code(), Some(1));
    assert!(
        text(&one_fold).1.contains("at least 2 folds"),
        "{}",
        text(&one_fold).1
    );
    let no_folder = w.run(&["--mode=scoreboard", "--data", "no-such-folder"]);
    assert_eq!(no_folder.status.code(), Some(1), "{:?}", text(&no_folder));
}

/// A decoded tape file (`.mmt`) of the slice scores exactly as the capture it was converted
/// from: the same rows, fold by fold and tier by tier (only the recording's name differs).
#[test]
fn a_tape_file_scores_like_its_capture() {
    let w = Workdir::new("mm-scoreboard", "mmt");
    let data = slice();
    w.ok(&["--mode=convert", "--data", &data, "--out", "slice.mmt"]);
    let table = |data: &str, out: &str| -> Vec<String> {
        let text = report_table(&w, &score_two_folds(&w, data, out));
        // The rows without their first cell (the recording, named after its files).
        text.lines()
            .filter(|l| l.starts_with("| ") && !l.contains(" | fold"))
            .filter_map(|l| l.split_once(" | ").map(|(_, rest)| rest.to_string()))
            .collect()
    };
    let from_capture = table(&data, "capture");
    let from_tape = table("slice.mmt", "tape");
    assert_eq!(from_capture.len(), from_tape.len());
    assert!(from_tape.len() >= 4, "{from_tape:?}");
    assert_eq!(from_capture, from_tape);
}
