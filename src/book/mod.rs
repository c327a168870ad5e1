//! The L2 order book of one symbol, and Binance's snapshot + diff sync procedure around it.
//!
//! Owns: `Book` (price levels per side, fixed capacity, O(1) best bid/ask) and `SyncedBook`
//! (a `Book` plus the sync state machine and its fixed-size buffer of diffs that arrive
//! before the REST snapshot).
//!
//! Data structure: each side works in keys (bid key = price, ask key = −price, so the
//! *best level always has the highest key*) and is two parts (`side.rs`, `BookSide`): a
//! price-indexed window of 2^16 keys placed with the touch three quarters up it
//! (`window.rs`: a flat quantity array indexed by the key's offset, and a two-level bitmap
//! of the occupied offsets), and below it a sorted ladder of fixed-size blocks for the levels beyond the
//! window (`ladder.rs`: an unrolled sorted list, a two-level B+-tree). An update in the
//! window is an array access and a bit; the best level is the window's highest, tracked and
//! found again from the bitmap when it is removed; O(1) best bid/ask. Updates beyond the
//! window (~5 % on the recorded BTCUSDT session) search the ladder. The window follows the
//! touch: when a level lands above it, or its highest level falls into its lowest quarter,
//! its levels go to the ladder and those of the new span come back — `O(levels)`, once per
//! quarter span of drift. Why: on the recorded BTCUSDT session the 1000-level book spans
//! ~$28k and most diff levels land tens to hundreds of levels deep (8k–32k ticks from the
//! touch), so a sorted ladder's search was the replay's largest cost.
//!
//! Invariants: every window key above every ladder key; every stored quantity > 0; the
//! bitmap marks exactly the window's levels; no empty block, two neighbouring blocks hold
//! more than half a block together (which bounds the pool); `len ≤ capacity`. When a side
//! is full, the level farthest from the touch is evicted (or the newcomer refused, if it is
//! the farthest) and counted, and the side's `horizon` remembers the best evicted price: at
//! and beyond it the side may be incomplete. Memory: the two windows' quantity arrays are
//! 1 MiB a book, allocated in `new` with every page written there (resident from the
//! start: no page fault on the hot path when the touch first drifts onto a page).
//!
//! Hot path. Never allocates after `new`. Never reads the clock. Never panics on input
//! (only `new` asserts its capacity argument, which config validates).
//!
//! Files: this one (`Book`), `sync.rs` (the snapshot + diff procedure, `SyncedBook`),
//! `side.rs` (one side: capacity, eviction, the window's moves), `window.rs` (the
//! price-indexed window), `ladder.rs` (the blocks beyond it), `pending.rs` (the diffs
//! buffered before a snapshot), `tests.rs`.

use crate::feed::{BookLevels, DepthDiff, Level, Snapshot};
use crate::limits::{
    BOOK_BLOCK_LEVELS, BOOK_LEVELS_PER_SIDE_MAX, SYNC_BUFFER_DIFFS_MAX, SYNC_BUFFER_LEVELS_MAX,
};
use crate::types::{Price, Qty, Side};

mod ladder;
mod pending;
mod side;
mod sync;
#[cfg(test)]
mod tests;
mod window;

use ladder::*;
use pending::*;
use side::*;
pub use sync::*;
use window::*;

/// An L2 book with a fixed number of levels per side.
pub struct Book {
    bids: BookSide,
    asks: BookSide,
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
        Book::with_window(levels_per_side, WINDOW_SPAN_LOG2)
    }

    /// `new` with a window of `1 << span_log2` keys a side (tests move small ones a lot).
    pub(super) fn with_window(levels_per_side: usize, span_log2: u32) -> Book {
        Book {
            bids: BookSide::new(levels_per_side, span_log2),
            asks: BookSide::new(levels_per_side, span_log2),
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
        self.side(side).len()
    }

    /// The `n`-th level from the touch on `side` (0 = best).
    #[inline]
    pub fn level(&self, side: Side, n: usize) -> Option<Level> {
        let entry = self.side(side).nth_from_best(n)?;
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
        self.side(side).iter_from_best().map(to_level)
    }

    /// Quantity resting at `price` on `side` (0 if no level).
    pub fn qty_at(&self, side: Side, price: Price) -> Qty {
        let key = match side {
            Side::Buy => bid_key(price),
            Side::Sell => ask_key(price),
        };
        Qty(self.side(side).get(key).unwrap_or(0))
    }

    /// The best price evicted or refused on `side` since the last `clear`/snapshot: at and
    /// beyond it the side may miss levels. `None` while nothing was dropped.
    pub fn horizon(&self, side: Side) -> Option<Price> {
        let key = self.side(side).horizon_key?;
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

    fn side(&self, side: Side) -> &BookSide {
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
