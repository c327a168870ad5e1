//! Unit tests of the book: the ladder against a `BTreeMap` reference, eviction and horizon,
//! the sync procedure on recorded-style sequences.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

fn lv(price: i64, qty: i64) -> Level {
    Level {
        price: Price(price),
        qty: Qty(qty),
    }
}

fn diff(first: u64, last: u64) -> DepthDiff {
    DepthDiff {
        first_update_id: first,
        final_update_id: last,
        prev_final_update_id: 0,
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

const NONE: BookLevels<'static> = BookLevels {
    bids: &[],
    asks: &[],
};

/// The naive reference: a BTreeMap per side, same capacity rule (insert, then drop
/// the level farthest from the touch while over capacity).
struct RefBook {
    bids: BTreeMap<i64, i64>,
    asks: BTreeMap<i64, i64>,
    capacity: usize,
    dropped: u64,
    bid_horizon: Option<i64>,
    ask_horizon: Option<i64>,
}

impl RefBook {
    fn new(capacity: usize) -> Self {
        RefBook {
            bids: BTreeMap::new(),
            asks: BTreeMap::new(),
            capacity,
            dropped: 0,
            bid_horizon: None,
            ask_horizon: None,
        }
    }

    fn clear(&mut self) {
        self.bids.clear();
        self.asks.clear();
        self.bid_horizon = None;
        self.ask_horizon = None;
    }

    /// Applies one level and says what it did, as `Book::apply` must.
    fn apply(&mut self, side: Side, level: Level) -> LevelChange {
        let (map, horizon) = match side {
            Side::Buy => (&mut self.bids, &mut self.bid_horizon),
            Side::Sell => (&mut self.asks, &mut self.ask_horizon),
        };
        let price = level.price.0;
        if level.qty.0 <= 0 {
            return match map.remove(&price) {
                Some(_) => LevelChange::Removed,
                None => LevelChange::Ignored,
            };
        }
        if map.insert(price, level.qty.0).is_some() {
            return LevelChange::Updated;
        }
        if map.len() > self.capacity {
            let worst = match side {
                Side::Buy => *map.keys().next().unwrap(),
                Side::Sell => *map.keys().next_back().unwrap(),
            };
            map.remove(&worst);
            self.dropped += 1;
            *horizon = Some(match (side, *horizon) {
                (_, None) => worst,
                (Side::Buy, Some(h)) => h.max(worst),
                (Side::Sell, Some(h)) => h.min(worst),
            });
            if worst == price {
                return LevelChange::Refused;
            }
        }
        LevelChange::Inserted
    }

    fn side(&self, side: Side) -> Vec<Level> {
        match side {
            Side::Buy => self.bids.iter().rev().map(|(&p, &q)| lv(p, q)).collect(),
            Side::Sell => self.asks.iter().map(|(&p, &q)| lv(p, q)).collect(),
        }
    }
}

/// The block invariants of one side (see `Ladder`).
fn check_ladder(ladder: &Ladder) {
    let mut total = 0;
    let mut prev_key: Option<i64> = None;
    let mut prev_len: Option<usize> = None;
    for b in 0..ladder.active {
        let block = ladder.block(b).unwrap();
        assert!((1..=BOOK_BLOCK_LEVELS).contains(&block.len));
        assert_eq!(ladder.firsts[b], block.slots[0].0);
        for &(key, qty) in &block.slots[..block.len] {
            assert!(qty > 0);
            assert!(prev_key.is_none_or(|p| key > p), "keys not ascending");
            prev_key = Some(key);
        }
        if let Some(prev) = prev_len {
            assert!(prev + block.len > HALF_BLOCK, "neighbours too empty");
        }
        prev_len = Some(block.len);
        total += block.len;
    }
    assert_eq!(total, ladder.len);
    assert!(ladder.len <= ladder.capacity);
    assert_eq!(ladder.active + ladder.free_len, ladder.blocks.len());
}

/// The invariants of one side (see `BookSide`, `Window`): the bitmap marks exactly the
/// window's levels, its summary exactly the non-empty words, `top` is the highest; every
/// window key above every ladder key; the counts add up.
fn check_side(side: &BookSide) {
    check_ladder(&side.far);
    let window = &side.window;
    let mut count = 0;
    let mut highest = None;
    for (w, &bits) in window.bits.iter().enumerate() {
        // Wide windows: only the marked words (the narrow ones check every quantity).
        if bits == 0 && window.span() > 1024 {
            continue;
        }
        for b in 0..64 {
            let o = w * 64 + b;
            let qty = window.qty[o];
            assert_eq!(bits >> b & 1 == 1, qty > 0, "offset {o}");
            if qty > 0 {
                count += 1;
                highest = Some(o);
            }
        }
    }
    for (w, &bits) in window.bits.iter().enumerate() {
        assert_eq!(
            window.summary[w / 64] >> (w % 64) & 1 == 1,
            bits != 0,
            "word {w}"
        );
    }
    assert_eq!(count, window.len);
    if count > 0 {
        assert_eq!(Some(window.top), highest);
    }
    if let Some((far_best, _)) = side.far.nth_from_best(0) {
        assert!(far_best < window.base, "ladder key in or above the window");
    }
    assert_eq!(side.len, window.len + side.far.len);
    assert!(side.len <= side.capacity);
}

fn assert_same(book: &Book, reference: &RefBook) {
    check_side(&book.bids);
    check_side(&book.asks);
    for side in [Side::Buy, Side::Sell] {
        let ours: Vec<Level> = book.levels(side).collect();
        assert_eq!(ours, reference.side(side), "{side:?}");
        assert_eq!(book.depth(side), ours.len());
        for (n, level) in ours.iter().enumerate() {
            assert_eq!(book.level(side, n), Some(*level));
            assert_eq!(book.qty_at(side, level.price), level.qty);
        }
    }
    assert_eq!(book.best_bid(), reference.side(Side::Buy).first().copied());
    assert_eq!(book.best_ask(), reference.side(Side::Sell).first().copied());
    assert_eq!(book.stats().levels_dropped, reference.dropped);
    assert_eq!(book.horizon(Side::Buy), reference.bid_horizon.map(Price));
    assert_eq!(book.horizon(Side::Sell), reference.ask_horizon.map(Price));
}

#[test]
fn apply_level_changes() {
    let mut book = Book::new(8);
    assert_eq!(book.best_bid(), None);
    assert!(!book.is_crossed());
    assert_eq!(book.apply(Side::Buy, lv(100, 5)), LevelChange::Inserted);
    assert_eq!(book.apply(Side::Buy, lv(101, 1)), LevelChange::Inserted);
    assert_eq!(book.apply(Side::Buy, lv(100, 7)), LevelChange::Updated);
    assert_eq!(book.apply(Side::Buy, lv(99, 0)), LevelChange::Ignored);
    assert_eq!(book.apply(Side::Sell, lv(103, 2)), LevelChange::Inserted);
    assert_eq!(book.best_bid(), Some(lv(101, 1)));
    assert_eq!(book.best_ask(), Some(lv(103, 2)));
    assert_eq!(book.apply(Side::Buy, lv(101, 0)), LevelChange::Removed);
    assert_eq!(book.best_bid(), Some(lv(100, 7)));
    assert_eq!(book.qty_at(Side::Buy, Price(100)), Qty(7));
    assert_eq!(book.qty_at(Side::Buy, Price(101)), Qty(0));
    assert_eq!(book.level(Side::Buy, 1), None);
}

#[test]
fn crossed_book_is_reported_after_the_whole_diff() {
    let mut book = Book::new(8);
    book.load_snapshot(&[lv(100, 1)], &[lv(101, 1)]);
    // Mid-diff the book would cross (bid 102 before ask 101 is removed): not reported.
    let report = book.apply_diff(&[lv(102, 1)], &[lv(101, 0), lv(103, 1)]);
    assert_eq!(report, ApplyReport::default());
    let report = book.apply_diff(&[lv(103, 1)], &[]);
    assert!(report.crossed);
    assert!(book.is_crossed());
    assert_eq!(book.stats().crossed, 1);
    assert_eq!(book.stats().diffs_applied, 2);
}

#[test]
fn full_side_keeps_levels_nearest_the_touch() {
    let mut book = Book::new(3);
    let report = book.load_snapshot(
        &[lv(95, 1), lv(100, 1), lv(97, 1), lv(99, 1), lv(98, 0)],
        &[lv(105, 1), lv(101, 1), lv(103, 1), lv(102, 1)],
    );
    assert_eq!(report.levels_dropped, 2);
    let bids: Vec<_> = book.levels(Side::Buy).map(|l| l.price.0).collect();
    let asks: Vec<_> = book.levels(Side::Sell).map(|l| l.price.0).collect();
    assert_eq!(bids, [100, 99, 97]);
    assert_eq!(asks, [101, 102, 103]);
    assert_eq!(book.horizon(Side::Buy), Some(Price(95)));
    assert_eq!(book.horizon(Side::Sell), Some(Price(105)));
    // A farther level is refused, a nearer one evicts the farthest.
    assert_eq!(book.apply(Side::Buy, lv(90, 1)), LevelChange::Refused);
    assert_eq!(book.apply(Side::Buy, lv(98, 1)), LevelChange::Inserted);
    let bids: Vec<_> = book.levels(Side::Buy).map(|l| l.price.0).collect();
    assert_eq!(bids, [100, 99, 98]);
    assert_eq!(book.horizon(Side::Buy), Some(Price(97)));
    assert_eq!(book.stats().levels_dropped, 4);
    // A snapshot resets the horizon.
    book.load_snapshot(&[lv(1, 1)], &[]);
    assert_eq!(book.horizon(Side::Buy), None);
}

/// The touch is always in the window, on both sides (ask keys are negative), whichever way
/// it drifts and however far: updates there do not search the ladder.
#[test]
fn the_touch_stays_in_the_window_on_both_sides() {
    let mut book = Book::new(1000);
    let bids: Vec<Level> = (0..500).map(|k| lv(6_172_640 - 4 * k, 1)).collect();
    let asks: Vec<Level> = (0..500).map(|k| lv(6_172_782 + 4 * k, 1)).collect();
    book.load_snapshot(&bids, &asks);
    for side in [&book.bids, &book.asks] {
        assert_eq!((side.window.len, side.far.len), (500, 0));
    }
    let touch_in_window = |book: &Book| {
        for side in [&book.bids, &book.asks] {
            let best = side.nth_from_best(0).map(|(key, _)| key);
            assert!(side.window.len > 0);
            assert_eq!(Some(side.window.key(side.window.top)), best);
        }
    };
    // Away from the snapshot by 500,000 ticks (7.6 spans), 1,000 at a time, and back.
    for k in 1..=500 {
        book.apply(Side::Buy, lv(6_172_640 + 1_000 * k, 1));
        book.apply(Side::Sell, lv(6_172_782 - 1_000 * k, 1));
        touch_in_window(&book);
    }
    for k in (1..=500).rev() {
        book.apply(Side::Buy, lv(6_172_640 + 1_000 * k, 0));
        book.apply(Side::Sell, lv(6_172_782 - 1_000 * k, 0));
        touch_in_window(&book);
    }
    assert_eq!(book.best_bid(), Some(lv(6_172_640, 1)));
    assert_eq!(book.best_ask(), Some(lv(6_172_782, 1)));
    assert_eq!((book.depth(Side::Buy), book.depth(Side::Sell)), (500, 500));
    assert_eq!(book.stats().levels_dropped, 0);
}

/// Prices at the ends of `i64` (no decoder produces them) neither panic nor break the
/// order: the window's offsets do not overflow, it moves between them.
#[test]
fn extreme_prices_match_the_reference() {
    let prices = [i64::MAX, i64::MAX - 1, 0, 1, -5, i64::MIN + 2, i64::MIN + 1];
    let mut ops = Vec::new();
    for (k, &p) in prices.iter().chain(prices.iter().rev()).enumerate() {
        for side in [Side::Buy, Side::Sell] {
            ops.push(Op::Level(side, lv(p, 1 + k as i64)));
        }
    }
    ops.push(Op::Level(Side::Buy, lv(i64::MIN, 3)));
    for &p in &prices {
        ops.push(Op::Level(Side::Buy, lv(p, 0)));
        ops.push(Op::Level(Side::Sell, lv(p, 0)));
    }
    for span_log2 in [6, WINDOW_SPAN_LOG2] {
        for capacity in [1, 3, 10] {
            run_against_reference(capacity, span_log2, ops.clone()).unwrap();
        }
    }
}

#[test]
fn one_sided_drift_splits_and_frees_blocks() {
    // New best bids forever (prices rising): the window drifts toward the back end.
    let mut book = Book::new(4);
    for p in 0..10_000 {
        book.apply(Side::Buy, lv(p, 1));
        book.apply(Side::Sell, lv(1_000_000 - p, 1));
    }
    let bids: Vec<_> = book.levels(Side::Buy).map(|l| l.price.0).collect();
    assert_eq!(bids, [9_999, 9_998, 9_997, 9_996]);
    assert_eq!(book.best_ask(), Some(lv(990_001, 1)));
    // Remove from the touch and add deep, repeatedly: the window drifts the other way.
    let mut book = Book::new(4);
    for p in 0..10_000 {
        book.apply(Side::Buy, lv(20_000 - p, 1));
        if p % 2 == 1 {
            book.apply(Side::Buy, lv(20_000 - p + 1, 0));
            book.apply(Side::Buy, lv(20_000 - p, 0));
        }
    }
    assert_eq!(book.depth(Side::Buy), 0);
}

#[test]
fn capacity_one_and_max() {
    let mut book = Book::new(1);
    book.apply(Side::Buy, lv(5, 1));
    book.apply(Side::Buy, lv(6, 1));
    book.apply(Side::Buy, lv(4, 1));
    assert_eq!(book.levels(Side::Buy).collect::<Vec<_>>(), [lv(6, 1)]);
    let book = Book::new(BOOK_LEVELS_PER_SIDE_MAX);
    assert_eq!(book.levels_per_side(), BOOK_LEVELS_PER_SIDE_MAX);
}

#[test]
#[should_panic(expected = "book levels per side")]
fn zero_capacity_is_refused() {
    let _ = Book::new(0);
}

#[derive(Clone, Debug)]
enum Op {
    Level(Side, Level),
    Snapshot(Vec<Level>, Vec<Level>),
    Clear,
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Buy), Just(Side::Sell)]
}

fn level_in(lo: i64, hi: i64) -> impl Strategy<Value = Level> {
    (lo..hi, prop_oneof![Just(0i64), 1i64..5]).prop_map(|(p, q)| lv(p, q))
}

fn op() -> impl Strategy<Value = Op> {
    ops_in(90, 130, 20)
}

/// Level updates with prices in `lo..hi`, snapshots of up to `snapshot_len` levels a
/// side around the middle, and the odd clear.
fn ops_in(lo: i64, hi: i64, snapshot_len: usize) -> impl Strategy<Value = Op> {
    let mid = (lo + hi) / 2;
    prop_oneof![
        40 => (side(), level_in(lo, hi)).prop_map(|(s, l)| Op::Level(s, l)),
        1 => (
            proptest::collection::vec(level_in(lo - 10, mid + 1), 0..snapshot_len),
            proptest::collection::vec(level_in(mid - 1, hi + 10), 0..snapshot_len)
        )
            .prop_map(|(b, a)| Op::Snapshot(b, a)),
        1 => Just(Op::Clear),
    ]
}

/// Applies `ops` to a `Book` with a window of `1 << span_log2` keys and to the `BTreeMap`
/// reference, comparing what each update did and the whole book after each op.
fn run_against_reference(
    capacity: usize,
    span_log2: u32,
    ops: Vec<Op>,
) -> Result<(), TestCaseError> {
    let mut book = Book::with_window(capacity, span_log2);
    let mut reference = RefBook::new(capacity);
    for op in ops {
        match op {
            Op::Level(side, level) => {
                prop_assert_eq!(book.apply(side, level), reference.apply(side, level));
            }
            Op::Snapshot(bids, asks) => {
                let report = book.load_snapshot(&bids, &asks);
                reference.clear();
                for &l in &bids {
                    reference.apply(Side::Buy, l);
                }
                for &l in &asks {
                    reference.apply(Side::Sell, l);
                }
                prop_assert_eq!(report.crossed, book.is_crossed());
            }
            Op::Clear => {
                book.clear();
                reference.clear();
            }
        }
        assert_same(&book, &reference);
        let crossed = match (
            reference.bids.keys().next_back(),
            reference.asks.keys().next(),
        ) {
            (Some(b), Some(a)) => b >= a,
            _ => false,
        };
        prop_assert_eq!(book.is_crossed(), crossed);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn book_matches_btreemap_reference(
        capacity in 1usize..12,
        span_log2 in 6u32..9,
        ops in proptest::collection::vec(op(), 1..400),
    ) {
        run_against_reference(capacity, span_log2, ops)?;
    }

    /// Prices spread far wider than the window (64–256 keys): most levels beyond it, the
    /// window moved up and down with the touch all the time.
    #[test]
    fn book_matches_btreemap_reference_small_window(
        capacity in 1usize..40,
        span_log2 in 6u32..9,
        ops in proptest::collection::vec(ops_in(0, 2_000, 60), 1..400),
    ) {
        run_against_reference(capacity, span_log2, ops)?;
    }

    /// A stream of single-level updates with ids 1..=n, cut into diffs at random, with
    /// the snapshot taken at a random id and delivered after a random number of diffs:
        /// the synced book always ends equal to the reference holding every update. Bids
        /// stay below 110 and asks at or above it: like the exchange's, the book never
        /// crosses (a crossed book is a sync error, tested on its own).
    #[test]
    fn sync_rebuilds_the_book_from_any_snapshot_point(
            updates in proptest::collection::vec(
                (side(), level_in(0, 20)).prop_map(|(side, l)| {
                    let base = if side == Side::Buy { 90 } else { 110 };
                    (side, lv(base + l.price.0, l.qty.0))
                }),
                1..200,
            ),
        cuts in proptest::collection::vec(1usize..6, 1..200),
        snapshot_at in any::<prop::sample::Index>(),
        delivered_before in any::<prop::sample::Index>(),
    ) {
        // Diffs: consecutive runs of updates, ids 1-based.
        let mut diffs = Vec::new();
        let mut next = 0usize;
        for len in cuts.iter().cycle() {
            if next == updates.len() {
                break;
            }
            let end = (next + len).min(updates.len());
            diffs.push((next + 1, end));
            next = end;
        }
        let snapshot_id = snapshot_at.index(updates.len() + 1);
        let mut truth = RefBook::new(usize::MAX);
        let mut at_snapshot = None;
        for (i, &(side, level)) in updates.iter().enumerate() {
            if i == snapshot_id {
                at_snapshot = Some((truth.side(Side::Buy), truth.side(Side::Sell)));
            }
            truth.apply(side, level);
        }
        let (snap_bids, snap_asks) =
            at_snapshot.unwrap_or_else(|| (truth.side(Side::Buy), truth.side(Side::Sell)));

        let mut synced = SyncedBook::new(64);
        let k = delivered_before.index(diffs.len() + 1);
        let feed = |synced: &mut SyncedBook, &(first, last): &(usize, usize)| {
            let mut bids = Vec::new();
            let mut asks = Vec::new();
            for &(side, level) in &updates[first - 1..last] {
                match side {
                    Side::Buy => bids.push(level),
                    Side::Sell => asks.push(level),
                }
            }
            synced.on_diff(&diff(first as u64, last as u64), levels(&bids, &asks))
        };
        for d in &diffs[..k] {
            prop_assert_eq!(feed(&mut synced, d), Ok(DiffOutcome::Buffered));
        }
        let outcome = synced
            .on_snapshot(&snapshot(snapshot_id as u64), levels(&snap_bids, &snap_asks));
        prop_assert!(outcome.is_ok(), "{:?}", outcome);
        for d in &diffs[k..] {
            prop_assert!(feed(&mut synced, d).is_ok());
        }
        if snapshot_id < updates.len() {
            prop_assert_eq!(
                synced.state(),
                SyncState::Live { final_update_id: updates.len() as u64 }
            );
        }
        let book = synced.book_any_state();
        prop_assert_eq!(book.levels(Side::Buy).collect::<Vec<_>>(), truth.side(Side::Buy));
        prop_assert_eq!(book.levels(Side::Sell).collect::<Vec<_>>(), truth.side(Side::Sell));
        prop_assert_eq!(synced.stats().gaps + synced.stats().snapshots_too_old, 0);
    }
}

proptest! {
    // Long sequences compared in full after every step: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Capacities and price ranges large enough for many blocks: splits, merges,
    /// frees, evictions from a multi-block side.
    #[test]
    fn book_matches_btreemap_reference_many_blocks(
        capacity in 30usize..260,
        span_log2 in 6u32..11,
        ops in proptest::collection::vec(ops_in(0, 600, 400), 1..1200),
    ) {
        run_against_reference(capacity, span_log2, ops)?;
    }

    /// A window of several bitmap summary words (2^13–2^14 keys) over a wider range.
    #[test]
    fn book_matches_btreemap_reference_wide_window(
        capacity in 30usize..260,
        span_log2 in 13u32..15,
        ops in proptest::collection::vec(ops_in(0, 40_000, 400), 1..600),
    ) {
        run_against_reference(capacity, span_log2, ops)?;
    }
}

// --- Sync procedure: named cases -----------------------------------------------------

#[test]
fn diffs_are_buffered_until_a_snapshot_and_book_hidden() {
    let mut s = SyncedBook::new(16);
    assert_eq!(s.state(), SyncState::Buffering);
    assert!(s.book().is_none());
    assert_eq!(s.on_diff(&diff(10, 12), NONE), Ok(DiffOutcome::Buffered));
    assert_eq!(s.buffered_diffs(), 1);
    assert!(s.book().is_none());
}

#[test]
fn snapshot_older_than_first_diff_is_refused_then_a_newer_one_syncs() {
    let mut s = SyncedBook::new(16);
    s.on_diff(&diff(10, 12), levels(&[lv(100, 1)], &[]))
        .unwrap();
    s.on_diff(&diff(13, 15), levels(&[lv(100, 2)], &[]))
        .unwrap();
    // lastUpdateId 8: updates 9 is missing between the snapshot and U=10.
    assert_eq!(
        s.on_snapshot(&snapshot(8), NONE),
        Err(SyncError::SnapshotTooOld {
            last_update_id: 8,
            first_update_id: 10
        })
    );
    assert_eq!(s.state(), SyncState::Buffering);
    assert_eq!(s.buffered_diffs(), 2);
    // lastUpdateId 9: U=10 = 9+1 brackets it.
    let outcome = s
        .on_snapshot(&snapshot(9), levels(&[lv(99, 5)], &[lv(101, 5)]))
        .unwrap();
    assert_eq!(outcome.diffs_replayed, 2);
    assert_eq!(
        s.state(),
        SyncState::Live {
            final_update_id: 15
        }
    );
    let book = s.book().unwrap();
    assert_eq!(book.best_bid(), Some(lv(100, 2)));
    assert_eq!(s.stats().snapshots_too_old, 1);
}

#[test]
fn buffered_diffs_covered_by_the_snapshot_are_dropped() {
    let mut s = SyncedBook::new(16);
    s.on_diff(&diff(1, 4), levels(&[lv(100, 1)], &[])).unwrap();
    s.on_diff(&diff(5, 9), levels(&[lv(100, 0), lv(98, 1)], &[]))
        .unwrap();
    s.on_diff(&diff(10, 12), levels(&[lv(97, 3)], &[])).unwrap();
    // Snapshot at 9 already holds the first two diffs.
    let outcome = s
        .on_snapshot(&snapshot(9), levels(&[lv(98, 1)], &[]))
        .unwrap();
    assert_eq!((outcome.diffs_stale, outcome.diffs_replayed), (2, 1));
    let book = s.book().unwrap();
    assert_eq!(
        book.levels(Side::Buy).collect::<Vec<_>>(),
        [lv(98, 1), lv(97, 3)]
    );
    // A live diff entirely at or before the book's id is stale.
    assert_eq!(s.on_diff(&diff(11, 12), NONE), Ok(DiffOutcome::Stale));
    assert_eq!(s.stats().diffs_stale, 3);
}

#[test]
fn first_diff_must_bracket_last_update_id_plus_one() {
    // Snapshot with nothing buffered; diffs then arrive.
    let mut s = SyncedBook::new(16);
    s.on_snapshot(&snapshot(100), NONE).unwrap();
    assert_eq!(
        s.state(),
        SyncState::AwaitingFirst {
            last_update_id: 100
        }
    );
    assert!(s.book().is_none());
    assert_eq!(s.on_diff(&diff(95, 100), NONE), Ok(DiffOutcome::Stale));
    // U=99 ≤ 101 ≤ u=103: applied even though it overlaps the snapshot.
    assert!(matches!(
        s.on_diff(&diff(99, 103), NONE),
        Ok(DiffOutcome::Applied(_))
    ));
    assert_eq!(
        s.state(),
        SyncState::Live {
            final_update_id: 103
        }
    );

    // U=102 > 101: update 101 is missing.
    let mut s = SyncedBook::new(16);
    s.on_snapshot(&snapshot(100), NONE).unwrap();
    assert_eq!(
        s.on_diff(&diff(102, 105), NONE),
        Err(SyncError::SnapshotTooOld {
            last_update_id: 100,
            first_update_id: 102
        })
    );
    assert_eq!(s.state(), SyncState::Buffering);
    assert_eq!(s.buffered_diffs(), 1);
    // Exactly U = lastUpdateId + 1 is fine.
    s.on_snapshot(&snapshot(101), NONE).unwrap();
    assert_eq!(
        s.state(),
        SyncState::Live {
            final_update_id: 105
        }
    );
}

#[test]
fn gap_is_detected_and_the_next_snapshot_resyncs() {
    let mut s = SyncedBook::new(16);
    s.on_snapshot(&snapshot(10), levels(&[lv(100, 1)], &[lv(102, 1)]))
        .unwrap();
    s.on_diff(&diff(11, 13), NONE).unwrap();
    assert_eq!(
        s.on_diff(&diff(15, 16), levels(&[lv(101, 4)], &[])),
        Err(SyncError::Gap {
            expected_first_update_id: 14,
            first_update_id: 15
        })
    );
    assert_eq!(s.state(), SyncState::Buffering);
    assert!(s.book().is_none());
    assert_eq!(s.book_any_state().depth(Side::Buy), 0);
    assert_eq!(s.buffered_diffs(), 1);
    assert_eq!(s.stats().gaps, 1);
    s.on_diff(&diff(17, 18), NONE).unwrap();
    let outcome = s
        .on_snapshot(&snapshot(14), levels(&[lv(100, 1)], &[lv(102, 1)]))
        .unwrap();
    assert_eq!(outcome.diffs_replayed, 2);
    assert_eq!(
        s.state(),
        SyncState::Live {
            final_update_id: 18
        }
    );
    assert_eq!(s.book().unwrap().best_bid(), Some(lv(101, 4)));
}

#[test]
fn non_contiguous_buffered_diffs_discard_the_older_ones() {
    let mut s = SyncedBook::new(16);
    s.on_diff(&diff(1, 2), NONE).unwrap();
    s.on_diff(&diff(5, 6), NONE).unwrap();
    assert_eq!(s.buffered_diffs(), 1);
    assert_eq!(s.stats().diffs_discarded, 1);
}

#[test]
fn full_buffer_drops_the_oldest_diffs() {
    let mut s = SyncedBook::new(16);
    let extra = 10u64;
    let n = SYNC_BUFFER_DIFFS_MAX as u64 + extra;
    for i in 0..n {
        s.on_diff(&diff(i + 1, i + 1), levels(&[lv(100 + i as i64, 1)], &[]))
            .unwrap();
    }
    assert_eq!(s.buffered_diffs(), SYNC_BUFFER_DIFFS_MAX);
    assert_eq!(s.stats().diffs_discarded, extra);
    // Update 1..=extra are gone: a snapshot at 5 is too old, one at `extra` is fine.
    assert!(matches!(
        s.on_snapshot(&snapshot(5), NONE),
        Err(SyncError::SnapshotTooOld { .. })
    ));
    let outcome = s.on_snapshot(&snapshot(extra), NONE).unwrap();
    assert_eq!(outcome.diffs_replayed as usize, SYNC_BUFFER_DIFFS_MAX);
    assert_eq!(
        s.book().unwrap().best_bid(),
        Some(lv(100 + n as i64 - 1, 1))
    );
}

#[test]
fn level_ring_wraps_and_evicts_by_levels() {
    let mut s = SyncedBook::new(16);
    let big: Vec<Level> = (0..20_000).map(|p| lv(p, 1)).collect();
    // Each diff holds 20,000 levels: the ring (65,536) holds three of them.
    for i in 0..7u64 {
        s.on_diff(&diff(i + 1, i + 1), levels(&big, &[])).unwrap();
    }
    assert_eq!(s.buffered_diffs(), 3);
    assert_eq!(s.stats().diffs_discarded, 4);
    s.on_snapshot(&snapshot(4), NONE).unwrap();
    assert_eq!(s.state(), SyncState::Live { final_update_id: 7 });
    let book = s.book().unwrap();
    assert_eq!(book.best_bid(), Some(lv(19_999, 1)));
    assert_eq!(book.depth(Side::Buy), 16);
}

#[test]
fn snapshot_while_live_starts_over() {
    let mut s = SyncedBook::new(16);
    s.on_snapshot(&snapshot(10), levels(&[lv(1, 1)], &[]))
        .unwrap();
    s.on_diff(&diff(11, 11), NONE).unwrap();
    s.on_snapshot(&snapshot(20), levels(&[lv(2, 1)], &[]))
        .unwrap();
    assert_eq!(s.state(), SyncState::AwaitingFirst { last_update_id: 20 });
    assert_eq!(s.book_any_state().best_bid(), Some(lv(2, 1)));
    s.resync();
    assert_eq!(s.state(), SyncState::Buffering);
    assert_eq!(s.book_any_state().depth(Side::Buy), 0);
}

#[test]
fn transition_table() {
    use DiffVerdict::*;
    let b = SyncState::Buffering;
    let a = SyncState::AwaitingFirst { last_update_id: 10 };
    let l = SyncState::Live {
        final_update_id: 10,
    };
    let live = |u| SyncState::Live { final_update_id: u };
    let gap = |e| Gap {
        expected_first_update_id: e,
    };
    let cases = [
        (b, (1, 2), (b, Buffer)),
        (a, (5, 10), (a, Stale)),
        (a, (11, 11), (live(11), Apply)),
        (a, (1, 11), (live(11), Apply)),
        (a, (12, 13), (b, gap(11))),
        (l, (9, 10), (l, Stale)),
        (l, (11, 12), (live(12), Apply)),
        (l, (10, 12), (b, gap(11))),
        (l, (12, 12), (b, gap(11))),
    ];
    for (state, (first, last), want) in cases {
        assert_eq!(
            state.on_diff(first, last, 0),
            want,
            "{state:?} {first}..{last}"
        );
    }
}

/// A new window's pages are all mapped when it is built: levels landing anywhere in it
/// later (the touch drifting onto a page for the first time, on the hot path) take no page
/// fault. Without `mem::resident` the 512 KiB of quantities cost one fault per 4 KiB page.
#[test]
fn a_new_window_takes_no_page_fault_wherever_levels_land() {
    use crate::mem::minor_faults;
    let span_log2 = 16;
    let visit = |w: &mut Window| {
        for o in (0..w.span()).step_by(509) {
            w.insert(o, 7);
        }
        for o in (0..w.span()).step_by(509) {
            w.remove(o);
        }
    };
    // Once on a first window, so that this code's own pages are mapped.
    let mut first = Window::new(span_log2);
    visit(&mut first);
    let mut fresh = Window::new(span_log2);
    // The first read maps pages of its own (its buffers): done once before counting.
    minor_faults();
    let before = minor_faults();
    visit(&mut fresh);
    let faults = minor_faults() - before;
    assert_eq!(fresh.len, 0);
    assert_eq!(
        faults, 0,
        "page faults while levels landed across a new window"
    );
}
