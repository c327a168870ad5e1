//! Binance's book-sync procedure beyond one clean spot session: USD-M futures diffs chained
//! by `pu`, a snapshot arriving while the book is live (captures made of several recorded
//! sessions), a crossed book, and the backtest's console report of all three.
//!
//! Owns: the state-machine cases on hand-made diffs (each named after the rule it pins),
//! and end-to-end runs on real data committed in the repo: the bundled USD-M slice, a
//! futures insurance-fund trade recorded in `../shared/data`, and a three-session capture
//! built from the bundled spot slice the way concatenated recordings look (each session
//! opens with its own REST snapshot; ids and times shifted so the sessions follow each
//! other). Never: touches the network.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::io::{BufRead, BufReader, Write};

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use mm::book::{DiffOutcome, SyncError, SyncState, SyncedBook};
use mm::feed::{BookLevels, DecodeError, Decoder, DepthDiff, Event, Level, Snapshot};
use mm::types::{Price, Qty, Symbol, SymbolSpec};

#[path = "support/process.rs"]
mod process;

use process::{data, Workdir};

fn lv(price: i64, qty: i64) -> Level {
    Level {
        price: Price(price),
        qty: Qty(qty),
    }
}

fn spot(first: u64, last: u64) -> DepthDiff {
    futures(first, last, 0)
}

fn futures(first: u64, last: u64, prev: u64) -> DepthDiff {
    DepthDiff {
        first_update_id: first,
        final_update_id: last,
        prev_final_update_id: prev,
        bid_count: 0,
        ask_count: 0,
        exch_ts_ms: 0,
        local_ts_ns: 0,
    }
}

fn snapshot(last_update_id: u64) -> Snapshot {
    Snapshot {
        last_update_id,
        bid_count: 0,
        ask_count: 0,
        local_ts_ns: 0,
    }
}

fn levels<'a>(bids: &'a [Level], asks: &'a [Level]) -> BookLevels<'a> {
    BookLevels { bids, asks }
}

fn top(book: &SyncedBook) -> (i64, i64) {
    let b = book.book().expect("in sync");
    (b.best_bid().unwrap().price.0, b.best_ask().unwrap().price.0)
}

#[test]
fn futures_diffs_chain_by_pu_not_by_consecutive_ids() {
    let mut s = SyncedBook::new(100);
    // Futures: the first diff applied must have U <= lastUpdateId <= u (spot: id + 1).
    s.on_diff(&futures(90, 100, 80), levels(&[lv(99, 1)], &[lv(101, 1)]))
        .unwrap();
    s.on_snapshot(&snapshot(100), levels(&[lv(99, 5)], &[lv(101, 5)]))
        .unwrap();
    assert_eq!(
        s.state(),
        SyncState::Live {
            final_update_id: 100
        },
        "a buffered futures diff ending at lastUpdateId is the one that brackets it"
    );
    // Ids jump (U = 120 after u = 100) but pu = 100: in sequence.
    assert!(matches!(
        s.on_diff(&futures(120, 130, 100), levels(&[lv(98, 2)], &[])),
        Ok(DiffOutcome::Applied(_))
    ));
    // U = u_prev + 1 but pu says a diff is missing: a gap.
    assert!(matches!(
        s.on_diff(&futures(131, 140, 125), levels(&[], &[])),
        Err(SyncError::Gap { .. })
    ));
    assert_eq!(s.state(), SyncState::Buffering);
    assert_eq!(s.stats().gaps, 1);
}

#[test]
fn a_futures_diff_whose_pu_is_the_snapshot_id_continues_it() {
    // A snapshot of the book right after diff u = 100 (e.g. a replay window's cut), then
    // the next futures diff: U = 120 > 100, but pu = 100 says it follows the snapshot.
    let mut s = SyncedBook::new(100);
    s.on_snapshot(&snapshot(100), levels(&[lv(99, 5)], &[lv(101, 5)]))
        .unwrap();
    assert!(matches!(
        s.on_diff(&futures(120, 130, 100), levels(&[lv(98, 2)], &[])),
        Ok(DiffOutcome::Applied(_))
    ));
    assert_eq!(
        s.state(),
        SyncState::Live {
            final_update_id: 130
        }
    );
    // Buffered before the snapshot, the same diff is replayed on top of it.
    let mut s = SyncedBook::new(100);
    s.on_diff(&futures(120, 130, 100), levels(&[lv(98, 2)], &[]))
        .unwrap();
    s.on_snapshot(&snapshot(100), levels(&[lv(99, 5)], &[lv(101, 5)]))
        .unwrap();
    assert_eq!(
        s.state(),
        SyncState::Live {
            final_update_id: 130
        }
    );
}

#[test]
fn spot_rules_are_unchanged() {
    let mut s = SyncedBook::new(100);
    s.on_diff(&spot(90, 100), levels(&[], &[])).unwrap();
    s.on_snapshot(&snapshot(100), levels(&[lv(99, 5)], &[lv(101, 5)]))
        .unwrap();
    // A spot diff ending at lastUpdateId is covered by the snapshot: dropped, still waiting.
    assert_eq!(
        s.state(),
        SyncState::AwaitingFirst {
            last_update_id: 100
        }
    );
    assert!(matches!(
        s.on_diff(&spot(101, 105), levels(&[], &[])),
        Ok(DiffOutcome::Applied(_))
    ));
    assert!(matches!(
        s.on_diff(&spot(107, 108), levels(&[], &[])),
        Err(SyncError::Gap {
            expected_first_update_id: 106,
            first_update_id: 107
        })
    ));
}

/// A book live at u = 30 built from snapshot 10 and diffs 11..=30.
fn live_book() -> SyncedBook {
    let mut s = SyncedBook::new(100);
    s.on_snapshot(&snapshot(10), levels(&[lv(99, 5)], &[lv(101, 5)]))
        .unwrap();
    s.on_diff(&spot(11, 20), levels(&[lv(100, 1)], &[]))
        .unwrap();
    s.on_diff(&spot(21, 30), levels(&[lv(98, 7)], &[lv(102, 3)]))
        .unwrap();
    assert_eq!(top(&s), (100, 101));
    s
}

#[test]
fn a_snapshot_older_than_the_live_book_is_reloaded_with_the_recent_diffs_on_top() {
    let mut s = live_book();
    // The snapshot at 20 holds a level the live book lacks (a stale book, e.g. two
    // recordings joined with contiguous ids): after the reload the book is the snapshot
    // plus diff 21..=30, and that level is gone.
    let outcome = s
        .on_snapshot(
            &snapshot(20),
            levels(&[lv(97, 1), lv(96, 4)], &[lv(103, 2)]),
        )
        .unwrap();
    assert_eq!(outcome.diffs_replayed, 1);
    assert_eq!(
        s.state(),
        SyncState::Live {
            final_update_id: 30
        }
    );
    assert_eq!(top(&s), (98, 102));
    assert_eq!(s.stats().snapshots_reloaded, 1);
    let book = s.book().unwrap();
    let bids: Vec<i64> = book
        .levels(mm::types::Side::Buy)
        .map(|l| l.price.0)
        .collect();
    assert!(bids.contains(&96) && !bids.contains(&99), "{bids:?}");
}

#[test]
fn a_snapshot_older_than_the_recent_diffs_reach_is_ignored_and_the_book_kept() {
    let mut s = live_book();
    let before = top(&s);
    s.on_snapshot(&snapshot(5), levels(&[lv(50, 1)], &[lv(150, 1)]))
        .unwrap();
    assert_eq!(top(&s), before);
    assert_eq!(s.stats().snapshots_kept, 1);
    assert_eq!(
        s.state(),
        SyncState::Live {
            final_update_id: 30
        }
    );
}

#[test]
fn a_snapshot_newer_than_the_live_book_is_loaded_and_must_be_bracketed() {
    let mut s = live_book();
    s.on_snapshot(&snapshot(40), levels(&[lv(90, 1)], &[lv(110, 1)]))
        .unwrap();
    assert_eq!(s.state(), SyncState::AwaitingFirst { last_update_id: 40 });
    assert!(matches!(
        s.on_diff(&spot(31, 38), levels(&[], &[])),
        Ok(DiffOutcome::Stale)
    ));
    s.on_diff(&spot(39, 45), levels(&[lv(91, 1)], &[])).unwrap();
    assert_eq!(top(&s), (91, 110));
}

#[test]
fn a_crossed_book_starts_over_and_the_next_snapshot_restores_it() {
    let mut s = live_book();
    // Contiguous ids, but the diff leaves bid 105 above ask 101: the book is wrong.
    let crossing = [lv(105, 1)];
    assert_eq!(
        s.on_diff(&spot(31, 35), levels(&crossing, &[])),
        Err(SyncError::Crossed {
            final_update_id: 35
        })
    );
    assert_eq!(s.state(), SyncState::Buffering);
    assert!(s.book().is_none(), "never quote from a crossed book");
    assert_eq!(s.stats().crossed, 1);
    // The crossing diff was kept: a snapshot it brackets restores the book.
    s.on_snapshot(&snapshot(33), levels(&[lv(104, 1)], &[lv(106, 1)]))
        .unwrap();
    assert_eq!(top(&s), (105, 106));
}

#[test]
fn futures_trades_other_than_market_are_not_book_trades() {
    // Recorded in ../shared/data/binance-usdm/btcusdt_20230405.dat.gz (the one
    // insurance-fund trade its README mentions), verbatim.
    const INSURANCE: &str = r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1680652874406,"T":1680652874400,"s":"BTCUSDT","t":3535191080,"p":"28722.50","q":"0.001","X":"INSURANCE_FUND","m":true}}"#;
    let spec = SymbolSpec::from_decimals(
        Symbol::new("BTCUSDT").unwrap(),
        "0.10000000",
        "0.00100000",
        "5.00000000",
    )
    .unwrap();
    let mut decoder = Decoder::new(spec);
    assert_eq!(
        decoder.decode(INSURANCE.as_bytes(), 1).unwrap_err(),
        DecodeError::UnknownKind
    );
    let market = INSURANCE.replace("INSURANCE_FUND", "MARKET");
    let Event::Trade(trade) = decoder.decode(market.as_bytes(), 1).unwrap() else {
        panic!("a MARKET trade is a trade");
    };
    assert_eq!(trade.price, Price(287_225));
}

/// The `book:` line of a backtest's console report.
fn book_line(stdout: &str) -> &str {
    stdout
        .lines()
        .find(|l| l.starts_with("book: "))
        .unwrap_or_else(|| panic!("no book line in:\n{stdout}"))
}

/// The fills of a run folder: their times, ns.
fn fill_times(w: &Workdir, stdout: &str) -> Vec<u64> {
    let folder = stdout
        .lines()
        .find_map(|l| l.strip_prefix("report: "))
        .unwrap();
    let text = std::fs::read_to_string(w.0.join(folder.trim()).join("fills.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn the_futures_slice_backtests_in_sync_and_trades() {
    let w = Workdir::new("mm-book-sync", "usdm");
    let slice = data::bundled_usdm();
    let stdout = w.ok(&[
        "--mode=backtest",
        "--data",
        slice.to_str().unwrap(),
        "--set",
        "market.tick_size=0.1",
        "--set",
        "market.step_size=0.001",
        "--set",
        "venue.maker_fee_bps=0",
        "--set",
        "model.gamma_per_bps=0.01",
    ]);
    let book = book_line(&stdout);
    assert!(
        book.starts_with("book: 1 snapshots loaded, 0 gaps, 0 too old, 0 crossed"),
        "{book}"
    );
    assert!(!fill_times(&w, &stdout).is_empty(), "no fill:\n{stdout}");
}

/// Three sessions from the bundled spot slice, each opening with its own REST snapshot,
/// as concatenated recordings look: session k has its local times, `E` and `T` shifted by
/// k × (span + 1 s), its update ids (`U`, `u`, `lastUpdateId`) by k × the id span (so ids
/// stay contiguous across the joins, while the book's contents jump) and trade ids alike.
/// Returns the gzip file, the first local time and the time shift, ns.
fn three_sessions(w: &Workdir) -> (std::path::PathBuf, u64, u64) {
    sessions(w, "three_sessions.gz", true, 0)
}

/// As `three_sessions`, into `name`; `snapshots`: sessions after the first keep their REST
/// snapshot; `id_gap`: update ids missing between two sessions (0: contiguous).
fn sessions(
    w: &Workdir,
    name: &str,
    snapshots: bool,
    id_gap: u64,
) -> (std::path::PathBuf, u64, u64) {
    let lines: Vec<String> = BufReader::new(GzDecoder::new(
        std::fs::File::open(data::bundled_spot()).unwrap(),
    ))
    .lines()
    .map(Result::unwrap)
    .collect();
    let number_after = |line: &str, key: &str| -> Option<u64> {
        let at = line.find(key)? + key.len();
        let digits: String = line[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    let ts = |line: &str| -> u64 { line.split(' ').next().unwrap().parse().unwrap() };
    let depth = || lines.iter().filter(|l| l.contains("depthUpdate"));
    let first_id = depth()
        .map(|l| number_after(l, "\"U\":").unwrap())
        .min()
        .unwrap();
    let last_id = depth()
        .map(|l| number_after(l, "\"u\":").unwrap())
        .max()
        .unwrap();
    let id_span = last_id - first_id + 1 + id_gap;
    let trade_ids = lines.iter().filter_map(|l| number_after(l, "\"t\":"));
    let (t_min, t_max) = trade_ids.fold((u64::MAX, 0), |(a, b), t| (a.min(t), b.max(t)));
    let trade_span = t_max - t_min + 1;
    let time_span_ms = (ts(lines.last().unwrap()) - ts(lines.first().unwrap())) / 1_000_000 + 1_000;
    let shift_ns = time_span_ms * 1_000_000;

    let shifted = |line: &str, k: u64| -> String {
        let (time, json) = line.split_once(' ').unwrap();
        let mut out = format!("{} ", time.parse::<u64>().unwrap() + k * shift_ns);
        let mut rest = json;
        let keys = [
            ("\"E\":", k * time_span_ms),
            ("\"T\":", k * time_span_ms),
            ("\"U\":", k * id_span),
            ("\"u\":", k * id_span),
            ("\"t\":", k * trade_span),
            ("\"lastUpdateId\":", k * id_span),
        ];
        while let Some((at, key, add)) = keys
            .iter()
            .filter_map(|&(key, add)| rest.find(key).map(|at| (at, key, add)))
            .min_by_key(|&(at, _, _)| at)
        {
            let start = at + key.len();
            out.push_str(&rest[..start]);
            let digits = rest[start..]
                .chars()
                .take_while(char::is_ascii_digit)
                .count();
            let value: u64 = rest[start..start + digits].parse().unwrap();
            out.push_str(&(value + add).to_string());
            rest = &rest[start + digits..];
        }
        out.push_str(rest);
        out
    };

    let path = w.path(name);
    let mut gz = GzEncoder::new(
        std::fs::File::create(&path).unwrap(),
        flate2::Compression::fast(),
    );
    for k in 0..3 {
        for line in &lines {
            if k > 0 && !snapshots && line.contains("lastUpdateId") {
                continue;
            }
            writeln!(gz, "{}", shifted(line, k)).unwrap();
        }
    }
    gz.finish().unwrap();
    (path, ts(lines.first().unwrap()), shift_ns)
}

#[test]
fn a_capture_of_three_sessions_with_their_own_snapshots_trades_in_every_session() {
    let w = Workdir::new("mm-book-sync", "sessions");
    let (path, t0, shift_ns) = three_sessions(&w);
    let stdout = w.ok(&[
        "--mode=backtest",
        "--data",
        path.to_str().unwrap(),
        "--set",
        "model.gamma_per_bps=0.01",
        "--set",
        "venue.maker_fee_bps=0",
    ]);
    let book = book_line(&stdout);
    assert!(
        book.starts_with("book: 3 snapshots loaded, 0 gaps, 0 too old,"),
        "{book}"
    );
    // Each join leaves the previous session's levels in the book until its snapshot: the
    // book crosses at most once per join, is restarted, and waits a fraction of a second.
    let share: f64 = book
        .rsplit_once('(')
        .unwrap()
        .1
        .trim_end_matches(" %)")
        .parse()
        .unwrap();
    assert!(share < 5.0, "{book}");
    let fills = fill_times(&w, &stdout);
    for session in 0..3u64 {
        let (lo, hi) = (t0 + session * shift_ns, t0 + (session + 1) * shift_ns);
        let n = fills.iter().filter(|&&t| t >= lo && t < hi).count();
        assert!(n > 0, "no fill in session {session} of 3: {fills:?}");
    }
}

/// Three sessions where the later two lost their snapshot and ids jump between sessions:
/// the book is lost at the first join for good. The pure replay and the backtest both say
/// so and exit 1 (the backtest still writes its report), instead of a quiet exit 0.
#[test]
fn a_capture_whose_book_is_lost_for_good_is_refused() {
    let w = Workdir::new("mm-book-sync", "lost");
    let (path, _, _) = sessions(&w, "lost.gz", false, 1_000);
    let data = path.to_str().unwrap();
    let replay = w.run(&["--mode=replay", "--data", data]);
    let (stdout, stderr) = process::text(&replay);
    assert_eq!(replay.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("out of sync"), "{stderr}");
    let backtest = w.run(&["--mode=backtest", "--data", data]);
    let (stdout, stderr) = process::text(&backtest);
    assert_eq!(backtest.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(book_line(&stdout).contains(" 1 gaps,"), "{stdout}");
    assert!(
        stderr.contains("out of sync") && stderr.contains("do not describe the strategy"),
        "{stderr}"
    );
}
