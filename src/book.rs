//! The L2 order book of one symbol, and Binance's snapshot + diff sync procedure around it.
//!
//! Owns: `Book` (price levels per side, fixed capacity, O(1) best bid/ask) and `SyncedBook`
//! (a `Book` plus the sync state machine and its fixed-size buffer of diffs that arrive
//! before the REST snapshot).
//!
//! Data structure: each side keeps `(key, qty)` slots in ascending key order (bid key =
//! price, ask key = −price, so the *best level is always the last slot*), split over
//! fixed-size blocks of `BOOK_BLOCK_LEVELS` (an unrolled sorted list — a two-level B+-tree)
//! drawn from a pool allocated in `new`. Best bid/ask: the last slot of the last block,
//! O(1). An update searches the short array of block first-keys (the last block is checked
//! first: the touch is the busiest spot), then the block; an insert or a removal moves at
//! most one block's slots, splitting a full block or merging two thin neighbours.
//! Why not one sorted array with the best at the end: on the recorded BTCUSDT session the
//! 1000-level book spans ~$28k and most diff levels land tens to hundreds of levels deep,
//! so a flat array moves ~150 levels per update and was no faster than a `BTreeMap`; the
//! blocks bound that at 32 and run the session's 298k level updates about 25 % faster
//! than a `BTreeMap` (`benches/book.rs`, `book/replay_session*`).
//!
//! Invariants: keys strictly increasing across the whole side; every stored quantity > 0;
//! no empty block; two neighbouring blocks hold more than half a block together (which
//! bounds the pool); `len ≤ capacity`. When a side is full, the level farthest from the
//! touch is evicted (or the newcomer refused, if it is the farthest) and counted, and the
//! side's `horizon` remembers the best evicted price: at and beyond it the side may be
//! incomplete.
//!
//! Hot path. Never allocates after `new`. Never reads the clock. Never panics on input
//! (only `new` asserts its capacity argument, which config validates).

use crate::feed::{BookLevels, DepthDiff, Level, Snapshot};
use crate::limits::{
    BOOK_BLOCK_LEVELS, BOOK_LEVELS_PER_SIDE_MAX, SYNC_BUFFER_DIFFS_MAX, SYNC_BUFFER_LEVELS_MAX,
};
use crate::types::{Price, Qty, Side};

/// An L2 book with a fixed number of levels per side.
pub struct Book {
    bids: Ladder,
    asks: Ladder,
    stats: BookStats,
}

/// What one level update did to the book.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LevelChange {
    /// A new price level (possibly evicting the farthest one on a full side).
    Inserted,
    /// The quantity of an existing level changed (or was set to the same value).
    Updated,
    /// Quantity 0 removed an existing level.
    Removed,
    /// Quantity 0 for a level not in the book: nothing to do (normal on Binance).
    Ignored,
    /// A new level farther from the touch than every level of a full side: not kept.
    Refused,
}

/// What applying a diff or a snapshot did, for the caller to act on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Levels evicted or refused because a side was full.
    pub levels_dropped: u32,
    /// Best bid ≥ best ask after the whole update (never judged mid-diff).
    pub crossed: bool,
}

/// Counters since `new`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BookStats {
    /// Diffs applied (`apply_diff*`).
    pub diffs_applied: u64,
    /// Snapshots loaded.
    pub snapshots_loaded: u64,
    /// Levels evicted or refused because a side was full.
    pub levels_dropped: u64,
    /// Diffs or snapshots after which the book was crossed.
    pub crossed: u64,
}

impl Book {
    /// A book keeping at most `levels_per_side` levels on each side, allocated here once.
    ///
    /// # Panics
    /// If `levels_per_side` is 0 or above `BOOK_LEVELS_PER_SIDE_MAX` (config validates it).
    pub fn new(levels_per_side: usize) -> Book {
        assert!(
            (1..=BOOK_LEVELS_PER_SIDE_MAX).contains(&levels_per_side),
            "book levels per side must be in 1..={BOOK_LEVELS_PER_SIDE_MAX}"
        );
        Book {
            bids: Ladder::new(levels_per_side),
            asks: Ladder::new(levels_per_side),
            stats: BookStats::default(),
        }
    }

    /// Capacity of each side.
    pub fn levels_per_side(&self) -> usize {
        self.bids.capacity
    }

    /// Removes every level (capacity and counters stay).
    pub fn clear(&mut self) {
        self.bids.clear();
        self.asks.clear();
    }

    /// Sets one level to an absolute quantity: 0 removes it (ignored if absent). A negative
    /// quantity (never produced by the decoder) is treated as 0, so every stored quantity
    /// stays positive.
    #[inline]
    pub fn apply(&mut self, side: Side, level: Level) -> LevelChange {
        match side {
            Side::Buy => self.bids.set(bid_key(level.price), level.qty.0),
            Side::Sell => self.asks.set(ask_key(level.price), level.qty.0),
        }
    }

    /// Applies a depth diff's levels (bids, then asks) and reports drops and crossing.
    #[inline]
    pub fn apply_diff(&mut self, bids: &[Level], asks: &[Level]) -> ApplyReport {
        self.apply_diff_iter(bids.iter().copied(), asks.iter().copied())
    }

    /// `apply_diff` over any level iterators (the sync buffer replays from a ring).
    pub fn apply_diff_iter(
        &mut self,
        bids: impl IntoIterator<Item = Level>,
        asks: impl IntoIterator<Item = Level>,
    ) -> ApplyReport {
        let dropped_before = self.dropped_total();
        for level in bids {
            self.apply(Side::Buy, level);
        }
        for level in asks {
            self.apply(Side::Sell, level);
        }
        self.stats.diffs_applied += 1;
        self.finish(dropped_before)
    }

    /// Replaces the whole book with a snapshot's levels (any order; quantity-0 levels
    /// skipped; beyond capacity, the levels nearest the touch are kept).
    pub fn load_snapshot(&mut self, bids: &[Level], asks: &[Level]) -> ApplyReport {
        self.clear();
        let dropped_before = self.dropped_total();
        for &level in bids {
            self.apply(Side::Buy, level);
        }
        for &level in asks {
            self.apply(Side::Sell, level);
        }
        self.stats.snapshots_loaded += 1;
        self.finish(dropped_before)
    }

    /// Highest bid, O(1).
    #[inline]
    pub fn best_bid(&self) -> Option<Level> {
        self.bids.nth_from_best(0).map(bid_level)
    }

    /// Lowest ask, O(1).
    #[inline]
    pub fn best_ask(&self) -> Option<Level> {
        self.asks.nth_from_best(0).map(ask_level)
    }

    /// Best bid ≥ best ask (both sides non-empty).
    #[inline]
    pub fn is_crossed(&self) -> bool {
        match (self.best_bid(), self.best_ask()) {
            (Some(bid), Some(ask)) => bid.price >= ask.price,
            _ => false,
        }
    }

    /// Levels held on `side`.
    pub fn depth(&self, side: Side) -> usize {
        self.ladder(side).len()
    }

    /// The `n`-th level from the touch on `side` (0 = best).
    #[inline]
    pub fn level(&self, side: Side, n: usize) -> Option<Level> {
        let entry = self.ladder(side).nth_from_best(n)?;
        Some(match side {
            Side::Buy => bid_level(entry),
            Side::Sell => ask_level(entry),
        })
    }

    /// Levels of `side` from the touch outward.
    pub fn levels(&self, side: Side) -> impl Iterator<Item = Level> + '_ {
        let to_level = match side {
            Side::Buy => bid_level,
            Side::Sell => ask_level,
        };
        self.ladder(side).iter_from_best().map(to_level)
    }

    /// Quantity resting at `price` on `side` (0 if no level).
    pub fn qty_at(&self, side: Side, price: Price) -> Qty {
        let key = match side {
            Side::Buy => bid_key(price),
            Side::Sell => ask_key(price),
        };
        Qty(self.ladder(side).get(key).unwrap_or(0))
    }

    /// The best price evicted or refused on `side` since the last `clear`/snapshot: at and
    /// beyond it the side may miss levels. `None` while nothing was dropped.
    pub fn horizon(&self, side: Side) -> Option<Price> {
        let key = self.ladder(side).horizon_key?;
        Some(match side {
            Side::Buy => Price(key),
            Side::Sell => Price(key.wrapping_neg()),
        })
    }

    /// Counters since `new`.
    pub fn stats(&self) -> BookStats {
        BookStats {
            levels_dropped: self.dropped_total(),
            ..self.stats
        }
    }

    fn ladder(&self, side: Side) -> &Ladder {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }

    fn dropped_total(&self) -> u64 {
        self.bids.dropped + self.asks.dropped
    }

    fn finish(&mut self, dropped_before: u64) -> ApplyReport {
        let crossed = self.is_crossed();
        if crossed {
            self.stats.crossed += 1;
        }
        let dropped = self.dropped_total() - dropped_before;
        ApplyReport {
            levels_dropped: u32::try_from(dropped).unwrap_or(u32::MAX),
            crossed,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Sync procedure
// ---------------------------------------------------------------------------------------

/// Where the book stands in Binance's sync procedure (PROTOCOL.md, "Local order book").
///
/// ```text
///            new / resync / Gap / SnapshotTooOld
///                         |
///                         v
///                 +---------------+   snapshot older than the first
///   diff: buffer  |   Buffering   |<--buffered diff (SnapshotTooOld)
///                 +---------------+
///                         | snapshot (buffered diffs with u <= lastUpdateId dropped)
///                         v
///              +----------------------+  diff u <= lastUpdateId: stale, dropped
///              | AwaitingFirst { id } |  diff U > id+1: SnapshotTooOld -> Buffering
///              +----------------------+
///                         | diff with U <= id+1 <= u: applied
///                         v
///                 +---------------+   diff U == u_prev+1: applied
///                 |  Live { u }   |   diff u <= u_prev: stale, dropped
///                 +---------------+   otherwise: Gap -> Buffering
/// ```
/// USD-M futures diffs carry `pu` (the previous diff's `u`) and chain by it: live, the
/// next diff must have `pu == u_prev`; after a snapshot the first diff applied must have
/// `U <= id <= u` (Binance's futures procedure), not `id+1`.
///
/// A snapshot while `Buffering` or `AwaitingFirst` starts over with the diffs buffered
/// so far. A snapshot while `Live` (a capture made of several recorded sessions, each
/// opening with its own snapshot) follows the same procedure without losing the book:
/// newer than the book, it is loaded and the next diffs must bracket it; older, it is
/// loaded and the recently applied diffs that follow it are applied again on top
/// (`SyncStats::snapshots_reloaded`), or, when they no longer reach back to it, the book
/// is kept as it is (`SyncStats::snapshots_kept`: already in sync and contiguous).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncState {
    /// No snapshot applied: diffs are buffered until one arrives.
    Buffering,
    /// The snapshot with this `lastUpdateId` is loaded; the next applied diff must have
    /// `U ≤ last_update_id + 1 ≤ u`.
    AwaitingFirst {
        /// The snapshot's `lastUpdateId`.
        last_update_id: u64,
    },
    /// In sync through update id `final_update_id`; the next diff must have
    /// `U == final_update_id + 1`.
    Live {
        /// `u` of the last applied diff.
        final_update_id: u64,
    },
}

/// What the state machine says about one diff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiffVerdict {
    /// No snapshot yet: keep it.
    Buffer,
    /// Entirely covered by what the book already holds (`u` ≤ the book's id): drop it.
    Stale,
    /// Apply it.
    Apply,
    /// Updates are missing between the book and this diff: resync.
    Gap {
        /// The `U` the diff should have had (at most, for the first diff after a snapshot).
        expected_first_update_id: u64,
    },
}

/// True when a diff (`U` = `first_update_id`, `pu` = `prev_final_update_id`, 0 for spot)
/// directly follows the diff that ended at `prev_final`: spot `U == prev_final + 1`,
/// futures `pu == prev_final`.
#[inline]
fn continues(first_update_id: u64, prev_final_update_id: u64, prev_final: u64) -> bool {
    if prev_final_update_id != 0 {
        prev_final_update_id == prev_final
    } else {
        first_update_id == prev_final.saturating_add(1)
    }
}

/// The update id the first diff applied after a snapshot (`lastUpdateId` =
/// `last_update_id`) must cover: `lastUpdateId + 1` on spot, `lastUpdateId` on futures
/// (diffs with a `pu`).
#[inline]
fn bracket_id(prev_final_update_id: u64, last_update_id: u64) -> u64 {
    if prev_final_update_id != 0 {
        last_update_id
    } else {
        last_update_id.saturating_add(1)
    }
}

impl SyncState {
    /// The transition for a diff covering update ids `first_update_id..=final_update_id`
    /// (`prev_final_update_id`: its `pu`, 0 for spot diffs): the next state and what to
    /// do with the diff. Pure; `SyncedBook` acts on it.
    pub fn on_diff(
        self,
        first_update_id: u64,
        final_update_id: u64,
        prev_final_update_id: u64,
    ) -> (SyncState, DiffVerdict) {
        match self {
            SyncState::Buffering => (self, DiffVerdict::Buffer),
            SyncState::AwaitingFirst { last_update_id } => {
                let next_id = bracket_id(prev_final_update_id, last_update_id);
                if final_update_id < next_id {
                    (self, DiffVerdict::Stale)
                } else if first_update_id <= next_id {
                    (SyncState::Live { final_update_id }, DiffVerdict::Apply)
                } else {
                    (
                        SyncState::Buffering,
                        DiffVerdict::Gap {
                            expected_first_update_id: next_id,
                        },
                    )
                }
            }
            SyncState::Live {
                final_update_id: prev,
            } => {
                let next_id = prev.saturating_add(1);
                if final_update_id <= prev {
                    (self, DiffVerdict::Stale)
                } else if continues(first_update_id, prev_final_update_id, prev) {
                    (SyncState::Live { final_update_id }, DiffVerdict::Apply)
                } else {
                    (
                        SyncState::Buffering,
                        DiffVerdict::Gap {
                            expected_first_update_id: next_id,
                        },
                    )
                }
            }
        }
    }
}

/// Why the book is out of sync; every variant means: fetch a new REST snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncError {
    /// While live, a diff did not continue the previous one (`U != u_prev + 1`).
    Gap {
        /// `u_prev + 1`.
        expected_first_update_id: u64,
        /// The diff's `U`.
        first_update_id: u64,
    },
    /// The snapshot is older than the diffs that follow it (`lastUpdateId + 1 < U` of the
    /// first diff to apply): updates in between are missing.
    SnapshotTooOld {
        /// The snapshot's `lastUpdateId`.
        last_update_id: u64,
        /// `U` of the first diff after it.
        first_update_id: u64,
    },
    /// A diff left the book crossed (best bid ≥ best ask), which the exchange's book
    /// never is: the book is wrong (e.g. two recordings joined without a snapshot).
    Crossed {
        /// `u` of the diff.
        final_update_id: u64,
    },
}

impl std::fmt::Display for SyncError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncError::Gap {
                expected_first_update_id,
                first_update_id,
            } => write!(
                f,
                "depth gap: expected U={expected_first_update_id}, got U={first_update_id}"
            ),
            SyncError::SnapshotTooOld {
                last_update_id,
                first_update_id,
            } => write!(
                f,
                "snapshot lastUpdateId={last_update_id} older than next diff U={first_update_id}"
            ),
            SyncError::Crossed { final_update_id } => {
                write!(f, "book crossed after diff u={final_update_id}")
            }
        }
    }
}

impl std::error::Error for SyncError {}

/// What `SyncedBook::on_diff` did with a diff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiffOutcome {
    /// Buffered until a snapshot arrives.
    Buffered,
    /// Already covered by the book: dropped.
    Stale,
    /// Applied to the book.
    Applied(ApplyReport),
}

/// What `SyncedBook::on_snapshot` did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotOutcome {
    /// Buffered diffs applied on top of the snapshot.
    pub diffs_replayed: u32,
    /// Buffered diffs dropped because the snapshot already covers them.
    pub diffs_stale: u32,
    /// Drops and crossing after the snapshot and the replay.
    pub report: ApplyReport,
}

/// Counters of the sync procedure since `new`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Diffs applied to the book (live or replayed).
    pub diffs_applied: u64,
    /// Diffs buffered while waiting for a snapshot.
    pub diffs_buffered: u64,
    /// Diffs dropped as already covered.
    pub diffs_stale: u64,
    /// Buffered diffs thrown away: the buffer was full (oldest dropped) or a buffered diff
    /// did not continue the one before it (older ones are then useless).
    pub diffs_discarded: u64,
    /// Snapshots loaded into the book.
    pub snapshots_loaded: u64,
    /// `SyncError::Gap` returned.
    pub gaps: u64,
    /// `SyncError::SnapshotTooOld` returned.
    pub snapshots_too_old: u64,
    /// Updates after which the book was crossed (a live diff that crosses it is also a
    /// `SyncError::Crossed`: the book starts over).
    pub crossed: u64,
    /// Snapshots that arrived while in sync and were loaded with the recently applied
    /// diffs applied again on top.
    pub snapshots_reloaded: u64,
    /// Snapshots that arrived while in sync, older than the recent diffs reach: ignored,
    /// the book kept.
    pub snapshots_kept: u64,
}

/// A `Book` kept in sync with Binance's snapshot + diff procedure.
pub struct SyncedBook {
    book: Book,
    state: SyncState,
    pending: DiffBuffer,
    /// The diffs applied since the book went live, most recent last (bounded as
    /// `pending`): what a snapshot arriving while live is rebuilt with.
    recent: DiffBuffer,
    stats: SyncStats,
}

impl SyncedBook {
    /// An empty, unsynced book with `levels_per_side` levels per side; allocates the book
    /// and the diff buffer (`SYNC_BUFFER_*`) here, once.
    ///
    /// # Panics
    /// As `Book::new`.
    pub fn new(levels_per_side: usize) -> SyncedBook {
        SyncedBook {
            book: Book::new(levels_per_side),
            state: SyncState::Buffering,
            pending: DiffBuffer::new(),
            recent: DiffBuffer::new(),
            stats: SyncStats::default(),
        }
    }

    /// The book, only while it is in sync (`Live`). Quote from nothing else.
    #[inline]
    pub fn book(&self) -> Option<&Book> {
        match self.state {
            SyncState::Live { .. } => Some(&self.book),
            _ => None,
        }
    }

    /// The book whatever the state (diagnostics, tests).
    pub fn book_any_state(&self) -> &Book {
        &self.book
    }

    /// The sync state.
    #[inline]
    pub fn state(&self) -> SyncState {
        self.state
    }

    /// Counters since `new`.
    pub fn stats(&self) -> &SyncStats {
        &self.stats
    }

    /// Diffs currently buffered.
    pub fn buffered_diffs(&self) -> usize {
        self.pending.len
    }

    /// Forgets the book and every buffered diff and starts over (e.g. after a reconnect).
    pub fn resync(&mut self) {
        self.book.clear();
        self.pending.clear();
        self.recent.clear();
        self.state = SyncState::Buffering;
    }

    /// Feeds one depth diff. `Err` means the book is out of sync and a new snapshot is
    /// needed; the diff is then kept in the buffer for that snapshot.
    #[inline]
    pub fn on_diff(
        &mut self,
        diff: &DepthDiff,
        levels: BookLevels<'_>,
    ) -> Result<DiffOutcome, SyncError> {
        let first = diff.first_update_id;
        let last = diff.final_update_id;
        let prev = diff.prev_final_update_id;
        let (next, verdict) = self.state.on_diff(first, last, prev);
        match verdict {
            DiffVerdict::Apply => {
                self.state = next;
                let report = self.book.apply_diff(levels.bids, levels.asks);
                self.stats.diffs_applied += 1;
                if report.crossed {
                    self.stats.crossed += 1;
                    // Kept for the next snapshot, which it may bracket.
                    self.resync();
                    self.buffer(first, last, prev, levels);
                    return Err(SyncError::Crossed {
                        final_update_id: last,
                    });
                }
                self.recent.push(first, last, prev, levels);
                Ok(DiffOutcome::Applied(report))
            }
            DiffVerdict::Stale => {
                self.stats.diffs_stale += 1;
                Ok(DiffOutcome::Stale)
            }
            DiffVerdict::Buffer => {
                self.buffer(first, last, prev, levels);
                Ok(DiffOutcome::Buffered)
            }
            DiffVerdict::Gap {
                expected_first_update_id,
            } => {
                let error = match self.state {
                    SyncState::AwaitingFirst { last_update_id } => {
                        self.stats.snapshots_too_old += 1;
                        SyncError::SnapshotTooOld {
                            last_update_id,
                            first_update_id: first,
                        }
                    }
                    _ => {
                        self.stats.gaps += 1;
                        SyncError::Gap {
                            expected_first_update_id,
                            first_update_id: first,
                        }
                    }
                };
                self.resync();
                self.buffer(first, last, prev, levels);
                Err(error)
            }
        }
    }

    /// Feeds a REST snapshot: drops buffered diffs it covers, loads it, replays the rest.
    /// `Err` means: fetch another snapshot (the buffered diffs are kept for it).
    pub fn on_snapshot(
        &mut self,
        snapshot: &Snapshot,
        levels: BookLevels<'_>,
    ) -> Result<SnapshotOutcome, SyncError> {
        let last_update_id = snapshot.last_update_id;
        if let SyncState::Live { final_update_id } = self.state {
            if last_update_id < final_update_id {
                return Ok(self.reload_live(last_update_id, levels));
            }
        }
        if self.state != SyncState::Buffering {
            self.resync();
        }
        let mut outcome = SnapshotOutcome::default();
        while let Some(front) = self.pending.front() {
            if front.final_update_id >= bracket_id(front.prev_final_update_id, last_update_id) {
                break;
            }
            self.pending.pop_front();
            outcome.diffs_stale += 1;
            self.stats.diffs_stale += 1;
        }
        if let Some(front) = self.pending.front() {
            if front.first_update_id > bracket_id(front.prev_final_update_id, last_update_id) {
                self.stats.snapshots_too_old += 1;
                return Err(SyncError::SnapshotTooOld {
                    last_update_id,
                    first_update_id: front.first_update_id,
                });
            }
        }
        outcome.report = self.book.load_snapshot(levels.bids, levels.asks);
        self.stats.snapshots_loaded += 1;
        self.state = SyncState::AwaitingFirst { last_update_id };

        while let Some(front) = self.pending.front() {
            let (next, verdict) = self.state.on_diff(
                front.first_update_id,
                front.final_update_id,
                front.prev_final_update_id,
            );
            match verdict {
                DiffVerdict::Apply => {
                    self.state = next;
                    let (bids, asks) = self.pending.levels(&front);
                    let report = self.book.apply_diff_iter(bids, asks);
                    self.recent.push_from(&self.pending, &front);
                    outcome.report.levels_dropped = outcome
                        .report
                        .levels_dropped
                        .saturating_add(report.levels_dropped);
                    outcome.diffs_replayed += 1;
                    self.stats.diffs_applied += 1;
                }
                DiffVerdict::Stale => {
                    outcome.diffs_stale += 1;
                    self.stats.diffs_stale += 1;
                }
                // Unreachable while the buffer keeps its diffs contiguous and the checks
                // above hold; handled anyway: the front diff stays buffered.
                DiffVerdict::Buffer | DiffVerdict::Gap { .. } => {
                    let error = SyncError::Gap {
                        expected_first_update_id: match self.state {
                            SyncState::Live { final_update_id } => {
                                final_update_id.saturating_add(1)
                            }
                            _ => last_update_id.saturating_add(1),
                        },
                        first_update_id: front.first_update_id,
                    };
                    self.stats.gaps += 1;
                    self.book.clear();
                    self.state = SyncState::Buffering;
                    return Err(error);
                }
            }
            self.pending.pop_front();
        }
        outcome.report.crossed = self.book.is_crossed();
        if outcome.report.crossed {
            self.stats.crossed += 1;
        }
        Ok(outcome)
    }

    /// A snapshot (`lastUpdateId` = `last_update_id`) older than the live book: loaded,
    /// then the recently applied diffs that follow it applied again, when they reach back
    /// to it (the first one brackets it); otherwise the book is kept as it is.
    fn reload_live(&mut self, last_update_id: u64, levels: BookLevels<'_>) -> SnapshotOutcome {
        let mut outcome = SnapshotOutcome::default();
        // Skip the recent diffs the snapshot covers; the next one must bracket it.
        let mut skip = 0;
        let mut start = None;
        for k in 0..self.recent.len {
            let Some(diff) = self.recent.get(k) else {
                break;
            };
            let id = bracket_id(diff.prev_final_update_id, last_update_id);
            if diff.final_update_id < id {
                skip += 1;
                continue;
            }
            if diff.first_update_id <= id {
                start = Some(k);
            }
            break;
        }
        let Some(start) = start else {
            self.stats.snapshots_kept += 1;
            outcome.report.crossed = self.book.is_crossed();
            return outcome;
        };
        outcome.diffs_stale = skip;
        outcome.report = self.book.load_snapshot(levels.bids, levels.asks);
        for k in start..self.recent.len {
            let Some(diff) = self.recent.get(k) else {
                break;
            };
            let (bids, asks) = self.recent.levels(&diff);
            let report = self.book.apply_diff_iter(bids, asks);
            outcome.report.levels_dropped = outcome
                .report
                .levels_dropped
                .saturating_add(report.levels_dropped);
            outcome.diffs_replayed += 1;
        }
        self.stats.snapshots_loaded += 1;
        self.stats.snapshots_reloaded += 1;
        outcome.report.crossed = self.book.is_crossed();
        if outcome.report.crossed {
            self.stats.crossed += 1;
        }
        outcome
    }

    /// Buffers a diff; a diff that does not continue the buffered ones discards them.
    fn buffer(&mut self, first: u64, last: u64, prev: u64, levels: BookLevels<'_>) {
        if let Some(back) = self.pending.back() {
            if !continues(first, prev, back.final_update_id) {
                self.stats.diffs_discarded += self.pending.len as u64;
                self.pending.clear();
            }
        }
        let discarded = self.pending.push(first, last, prev, levels);
        self.stats.diffs_discarded += discarded;
        self.stats.diffs_buffered += 1;
    }
}

// ---------------------------------------------------------------------------------------
// Private: one side of the book
// ---------------------------------------------------------------------------------------

/// One side of the book: `(key, qty)` slots in ascending key order, best at the very end,
/// split over fixed-size blocks (an unrolled sorted list, i.e. a two-level B+-tree).
///
/// `order[..active]` lists the blocks in key order and `firsts[..active]` their first keys
/// (searched first, a short array); each block is a sorted run of 1..=`BOOK_BLOCK_LEVELS`
/// slots. Invariants: no block is empty; any two neighbouring blocks hold more than half a
/// block together (so at most `4·len/B + 1` blocks are active and the pool of
/// `block_pool_len(capacity)` never runs dry); `len ≤ capacity`.
struct Ladder {
    /// The block pool, allocated in `new`.
    blocks: Box<[Block]>,
    /// Ids of the active blocks in ascending key order (`[..active]`).
    order: Box<[u16]>,
    /// First key of each active block, parallel to `order`.
    firsts: Box<[i64]>,
    active: usize,
    /// Ids of the free blocks (a stack, `[..free_len]`).
    free: Box<[u16]>,
    free_len: usize,
    /// Levels held.
    len: usize,
    capacity: usize,
    /// Largest key evicted or refused since the last `clear`.
    horizon_key: Option<i64>,
    /// Levels evicted or refused since `new`.
    dropped: u64,
}

/// A sorted run of levels.
#[derive(Clone, Copy)]
struct Block {
    len: usize,
    slots: [(i64, i64); BOOK_BLOCK_LEVELS],
}

const HALF_BLOCK: usize = BOOK_BLOCK_LEVELS / 2;

/// Blocks needed for `capacity` levels under the half-full-neighbours invariant, plus one
/// for the split that precedes a merge check, plus slack.
fn block_pool_len(capacity: usize) -> usize {
    4 * capacity / BOOK_BLOCK_LEVELS + 3
}

impl Ladder {
    fn new(capacity: usize) -> Ladder {
        let pool = block_pool_len(capacity);
        let empty = Block {
            len: 0,
            slots: [(0, 0); BOOK_BLOCK_LEVELS],
        };
        Ladder {
            blocks: vec![empty; pool].into_boxed_slice(),
            order: vec![0; pool].into_boxed_slice(),
            firsts: vec![0; pool].into_boxed_slice(),
            active: 0,
            // Ids are handed out from the end of the stack: 0 first.
            free: (0..pool).rev().map(|id| id as u16).collect(),
            free_len: pool,
            len: 0,
            capacity,
            horizon_key: None,
            dropped: 0,
        }
    }

    #[inline]
    fn len(&self) -> usize {
        self.len
    }

    fn clear(&mut self) {
        while self.active > 0 {
            self.unlink(self.active - 1);
        }
        self.len = 0;
        self.horizon_key = None;
    }

    /// `(key, qty)` of the `n`-th level from the best.
    #[inline]
    fn nth_from_best(&self, mut n: usize) -> Option<(i64, i64)> {
        for &id in self.order.get(..self.active)?.iter().rev() {
            let block = self.blocks.get(usize::from(id))?;
            if n < block.len {
                return block.slots.get(block.len - 1 - n).copied();
            }
            n -= block.len;
        }
        None
    }

    /// Quantity at `key`, if that level exists.
    fn get(&self, key: i64) -> Option<i64> {
        let (b, found) = self.locate(key)?;
        let i = found.ok()?;
        let block = self.block(b)?;
        block.slots.get(i).map(|&(_, qty)| qty)
    }

    /// Sets the level at `key` to `qty` (≤ 0 removes it).
    #[inline]
    fn set(&mut self, key: i64, qty: i64) -> LevelChange {
        let Some((b, found)) = self.locate(key) else {
            if qty <= 0 {
                return LevelChange::Ignored;
            }
            return self.insert_first(key, qty);
        };
        match found {
            Ok(i) if qty <= 0 => {
                self.remove(b, i);
                LevelChange::Removed
            }
            Ok(i) => {
                if let Some(slot) = self.block_mut(b).and_then(|blk| blk.slots.get_mut(i)) {
                    slot.1 = qty;
                }
                LevelChange::Updated
            }
            Err(_) if qty <= 0 => LevelChange::Ignored,
            Err(i) => self.insert(b, i, key, qty),
        }
    }

    /// The position in `order` of the block where `key` is or belongs, and its slot
    /// (`Ok`) or insertion point (`Err`) in that block. `None` when the side is empty.
    #[inline]
    fn locate(&self, key: i64) -> Option<(usize, Result<usize, usize>)> {
        let firsts = self.firsts.get(..self.active)?;
        let last = self.active.checked_sub(1)?;
        // The touch is the busiest spot: the last block without a search.
        let b = if firsts.last().is_some_and(|&first| key >= first) {
            last
        } else {
            firsts
                .partition_point(|&first| first <= key)
                .saturating_sub(1)
        };
        let block = self.block(b)?;
        let run = block.slots.get(..block.len)?;
        // At or beyond the best level: no search either.
        if let Some(&(best, _)) = run.last() {
            if key >= best {
                let at = run.len() - 1;
                return Some((b, if key == best { Ok(at) } else { Err(at + 1) }));
            }
        }
        Some((b, run.binary_search_by_key(&key, |&(k, _)| k)))
    }

    /// The active block at position `b` of `order`.
    #[inline]
    fn block(&self, b: usize) -> Option<&Block> {
        let id = *self.order.get(..self.active)?.get(b)?;
        self.blocks.get(usize::from(id))
    }

    #[inline]
    fn block_mut(&mut self, b: usize) -> Option<&mut Block> {
        let id = *self.order.get(..self.active)?.get(b)?;
        self.blocks.get_mut(usize::from(id))
    }

    /// `(key, qty)` of every level, best first.
    fn iter_from_best(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        let active = self.order.get(..self.active).unwrap_or(&[]);
        active.iter().rev().flat_map(move |&id| {
            let run = match self.blocks.get(usize::from(id)) {
                Some(block) => block.slots.get(..block.len).unwrap_or(&[]),
                None => &[],
            };
            run.iter().rev().copied()
        })
    }

    /// Inserts into an empty side.
    fn insert_first(&mut self, key: i64, qty: i64) -> LevelChange {
        if self.link(0, key).is_none() {
            return self.refuse(key);
        }
        if let Some(block) = self.block_mut(0) {
            block.slots[0] = (key, qty);
            block.len = 1;
        }
        self.len = 1;
        LevelChange::Inserted
    }

    /// Inserts a new level at slot `i` of block `b`, making room first if the side is full.
    fn insert(&mut self, mut b: usize, mut i: usize, key: i64, qty: i64) -> LevelChange {
        if self.len == self.capacity {
            let worst = self.firsts.first().copied().unwrap_or(key);
            if key < worst {
                return self.refuse(key);
            }
            // Evict the farthest level, then find the spot again (blocks may have moved).
            self.raise_horizon(worst);
            self.dropped += 1;
            self.remove(0, 0);
            match self.locate(key) {
                Some((nb, Err(ni))) => (b, i) = (nb, ni),
                _ => return self.insert_first(key, qty),
            }
        }
        if self
            .block(b)
            .is_some_and(|blk| blk.len == BOOK_BLOCK_LEVELS)
        {
            // Split: the upper half moves to a new block right after this one.
            let Some(upper_first) = self.block(b).map(|blk| blk.slots[HALF_BLOCK].0) else {
                return self.refuse(key);
            };
            if self.link(b + 1, upper_first).is_none() {
                return self.refuse(key);
            }
            let (Some(&lower_id), Some(&upper_id)) = (self.order.get(b), self.order.get(b + 1))
            else {
                return self.refuse(key);
            };
            let upper_half = match self.blocks.get(usize::from(lower_id)) {
                Some(lower) => lower.slots,
                None => return self.refuse(key),
            };
            if let Some(upper) = self.blocks.get_mut(usize::from(upper_id)) {
                upper.slots[..HALF_BLOCK].copy_from_slice(&upper_half[HALF_BLOCK..]);
                upper.len = HALF_BLOCK;
            }
            if let Some(lower) = self.blocks.get_mut(usize::from(lower_id)) {
                lower.len = HALF_BLOCK;
            }
            if i > HALF_BLOCK {
                b += 1;
                i -= HALF_BLOCK;
            }
        }
        let Some(block) = self.block_mut(b) else {
            return self.refuse(key);
        };
        let len = block.len;
        block.slots.copy_within(i..len, i + 1);
        block.slots[i] = (key, qty);
        block.len += 1;
        if i == 0 {
            if let Some(first) = self.firsts.get_mut(b) {
                *first = key;
            }
        }
        self.len += 1;
        LevelChange::Inserted
    }

    /// Removes slot `i` of block `b`, then frees or merges blocks to keep the invariants.
    fn remove(&mut self, b: usize, i: usize) {
        let Some(block) = self.block_mut(b) else {
            return;
        };
        let len = block.len;
        block.slots.copy_within(i + 1..len, i);
        block.len -= 1;
        let (remaining, first) = (block.len, block.slots[0].0);
        self.len -= 1;
        if remaining == 0 {
            self.unlink(b);
            return;
        }
        if let Some(slot) = self.firsts.get_mut(b) {
            *slot = first;
        }
        let len_at =
            |ladder: &Ladder, at: usize| ladder.block(at).map_or(usize::MAX, |blk| blk.len);
        if b > 0 && len_at(self, b - 1) + remaining <= HALF_BLOCK {
            self.merge(b - 1);
        } else if len_at(self, b + 1).saturating_add(remaining) <= HALF_BLOCK {
            self.merge(b);
        }
    }

    /// Appends block `b + 1` to block `b` and unlinks it (their total fits a half block).
    fn merge(&mut self, b: usize) {
        let (Some(&left_id), Some(&right_id)) = (self.order.get(b), self.order.get(b + 1)) else {
            return;
        };
        let Some(right) = self.blocks.get(usize::from(right_id)).copied() else {
            return;
        };
        if let Some(left) = self.blocks.get_mut(usize::from(left_id)) {
            let at = left.len;
            left.slots[at..at + right.len].copy_from_slice(&right.slots[..right.len]);
            left.len += right.len;
        }
        self.unlink(b + 1);
    }

    /// Takes a free block and puts it at position `b` of `order` with first key `first`.
    fn link(&mut self, b: usize, first: i64) -> Option<()> {
        self.free_len = self.free_len.checked_sub(1)?;
        let id = *self.free.get(self.free_len)?;
        let active = self.active;
        self.order.copy_within(b..active, b + 1);
        self.firsts.copy_within(b..active, b + 1);
        *self.order.get_mut(b)? = id;
        *self.firsts.get_mut(b)? = first;
        self.active += 1;
        if let Some(block) = self.blocks.get_mut(usize::from(id)) {
            block.len = 0;
        }
        Some(())
    }

    /// Returns the block at position `b` of `order` to the free stack.
    fn unlink(&mut self, b: usize) {
        let Some(&id) = self.order.get(b) else {
            return;
        };
        let active = self.active;
        self.order.copy_within(b + 1..active, b);
        self.firsts.copy_within(b + 1..active, b);
        self.active -= 1;
        if let Some(slot) = self.free.get_mut(self.free_len) {
            *slot = id;
            self.free_len += 1;
        }
        if let Some(block) = self.blocks.get_mut(usize::from(id)) {
            block.len = 0;
        }
    }

    fn refuse(&mut self, key: i64) -> LevelChange {
        self.dropped += 1;
        self.raise_horizon(key);
        LevelChange::Refused
    }

    fn raise_horizon(&mut self, key: i64) {
        self.horizon_key = Some(self.horizon_key.map_or(key, |h| h.max(key)));
    }
}

#[inline]
fn bid_key(price: Price) -> i64 {
    price.0
}

#[inline]
fn ask_key(price: Price) -> i64 {
    price.0.wrapping_neg()
}

#[inline]
fn bid_level((key, qty): (i64, i64)) -> Level {
    Level {
        price: Price(key),
        qty: Qty(qty),
    }
}

#[inline]
fn ask_level((key, qty): (i64, i64)) -> Level {
    Level {
        price: Price(key.wrapping_neg()),
        qty: Qty(qty),
    }
}

// ---------------------------------------------------------------------------------------
// Private: the buffer of diffs waiting for a snapshot
// ---------------------------------------------------------------------------------------

/// A buffered diff; its levels (bids then asks) are in the level ring from `levels_at`.
#[derive(Clone, Copy, Debug, Default)]
struct PendingDiff {
    first_update_id: u64,
    final_update_id: u64,
    /// `pu` (futures), 0 for spot.
    prev_final_update_id: u64,
    levels_at: u64,
    bid_count: u32,
    ask_count: u32,
}

/// FIFO of diffs (ring of `SYNC_BUFFER_DIFFS_MAX`) whose levels live in a ring of
/// `SYNC_BUFFER_LEVELS_MAX` levels addressed by absolute, ever-increasing indices.
struct DiffBuffer {
    diffs: Box<[PendingDiff]>,
    head: usize,
    len: usize,
    levels: Box<[Level]>,
    /// Absolute index of the oldest stored level.
    levels_head: u64,
    /// Absolute index one past the newest stored level.
    levels_tail: u64,
}

impl DiffBuffer {
    fn new() -> DiffBuffer {
        DiffBuffer {
            diffs: vec![PendingDiff::default(); SYNC_BUFFER_DIFFS_MAX].into_boxed_slice(),
            head: 0,
            len: 0,
            levels: vec![Level::default(); SYNC_BUFFER_LEVELS_MAX].into_boxed_slice(),
            levels_head: 0,
            levels_tail: 0,
        }
    }

    fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
        self.levels_head = self.levels_tail;
    }

    fn front(&self) -> Option<PendingDiff> {
        if self.len == 0 {
            return None;
        }
        self.diffs.get(self.head).copied()
    }

    fn back(&self) -> Option<PendingDiff> {
        if self.len == 0 {
            return None;
        }
        self.diffs
            .get((self.head + self.len - 1) % self.diffs.len())
            .copied()
    }

    fn pop_front(&mut self) {
        let Some(front) = self.front() else {
            return;
        };
        self.levels_head =
            front.levels_at + u64::from(front.bid_count) + u64::from(front.ask_count);
        self.head = (self.head + 1) % self.diffs.len();
        self.len -= 1;
        if self.len == 0 {
            self.levels_head = self.levels_tail;
        }
    }

    /// The `k`-th diff from the oldest.
    fn get(&self, k: usize) -> Option<PendingDiff> {
        if k >= self.len {
            return None;
        }
        self.diffs.get((self.head + k) % self.diffs.len()).copied()
    }

    /// Appends a diff, dropping the oldest ones while there is no room; returns how many
    /// were dropped (a diff larger than the whole level ring is itself dropped: 1).
    fn push(&mut self, first: u64, last: u64, prev: u64, levels: BookLevels<'_>) -> u64 {
        let ids = (first, last, prev);
        let counts = (levels.bids.len(), levels.asks.len());
        self.push_levels(ids, counts, levels.bids.iter().chain(levels.asks).copied())
    }

    /// Appends `diff` as held by `other` (another buffer).
    fn push_from(&mut self, other: &DiffBuffer, diff: &PendingDiff) -> u64 {
        let (bids, asks) = other.levels(diff);
        let ids = (
            diff.first_update_id,
            diff.final_update_id,
            diff.prev_final_update_id,
        );
        let counts = (diff.bid_count as usize, diff.ask_count as usize);
        self.push_levels(ids, counts, bids.chain(asks))
    }

    /// `push` with the levels (`counts` = bids, asks) from an iterator, bids first.
    fn push_levels(
        &mut self,
        (first, last, prev): (u64, u64, u64),
        (bid_count, ask_count): (usize, usize),
        levels: impl Iterator<Item = Level>,
    ) -> u64 {
        let need = bid_count + ask_count;
        if need > self.levels.len() {
            return 1;
        }
        let mut dropped = 0;
        while self.len == self.diffs.len()
            || (self.levels_tail - self.levels_head) as usize + need > self.levels.len()
        {
            self.pop_front();
            dropped += 1;
        }
        let levels_at = self.levels_tail;
        let ring = self.levels.len() as u64;
        for (k, level) in levels.take(need).enumerate() {
            if let Some(slot) = self
                .levels
                .get_mut(((levels_at + k as u64) % ring) as usize)
            {
                *slot = level;
            }
        }
        self.levels_tail += need as u64;
        let slot = (self.head + self.len) % self.diffs.len();
        if let Some(entry) = self.diffs.get_mut(slot) {
            *entry = PendingDiff {
                first_update_id: first,
                final_update_id: last,
                prev_final_update_id: prev,
                levels_at,
                // `need` ≤ SYNC_BUFFER_LEVELS_MAX, far below u32::MAX.
                bid_count: bid_count as u32,
                ask_count: ask_count as u32,
            };
        }
        self.len += 1;
        dropped
    }

    /// The bid and ask levels of a buffered diff, read from the ring.
    fn levels(
        &self,
        diff: &PendingDiff,
    ) -> (
        impl Iterator<Item = Level> + '_,
        impl Iterator<Item = Level> + '_,
    ) {
        let ring = self.levels.len() as u64;
        let levels = &self.levels;
        let at = move |i: u64| levels.get((i % ring) as usize).copied().unwrap_or_default();
        let bids_end = diff.levels_at + u64::from(diff.bid_count);
        let asks_end = bids_end + u64::from(diff.ask_count);
        (
            (diff.levels_at..bids_end).map(at),
            (bids_end..asks_end).map(at),
        )
    }
}

#[cfg(test)]
mod tests {
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

        fn apply(&mut self, side: Side, level: Level) {
            let (map, horizon) = match side {
                Side::Buy => (&mut self.bids, &mut self.bid_horizon),
                Side::Sell => (&mut self.asks, &mut self.ask_horizon),
            };
            let price = level.price.0;
            if level.qty.0 == 0 {
                map.remove(&price);
                return;
            }
            map.insert(price, level.qty.0);
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
            }
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

    fn assert_same(book: &Book, reference: &RefBook) {
        check_ladder(&book.bids);
        check_ladder(&book.asks);
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

    /// Applies `ops` to a `Book` and to the `BTreeMap` reference, comparing after each.
    fn run_against_reference(capacity: usize, ops: Vec<Op>) -> Result<(), TestCaseError> {
        let mut book = Book::new(capacity);
        let mut reference = RefBook::new(capacity);
        for op in ops {
            match op {
                Op::Level(side, level) => {
                    book.apply(side, level);
                    reference.apply(side, level);
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
            ops in proptest::collection::vec(op(), 1..400),
        ) {
            run_against_reference(capacity, ops)?;
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
            ops in proptest::collection::vec(ops_in(0, 600, 400), 1..1200),
        ) {
            run_against_reference(capacity, ops)?;
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
}
