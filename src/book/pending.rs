//! The diffs waiting for a snapshot: `DiffBuffer`, a fixed-size ring of diffs and their
//! levels, dropping and counting the oldest when full.
//!
//! Never allocates after `new`.

use super::*;

/// A buffered diff; its levels (bids then asks) are in the level ring from `levels_at`.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct PendingDiff {
    pub(super) first_update_id: u64,
    pub(super) final_update_id: u64,
    /// `pu` (futures), 0 for spot.
    pub(super) prev_final_update_id: u64,
    levels_at: u64,
    pub(super) bid_count: u32,
    pub(super) ask_count: u32,
}

/// FIFO of diffs (ring of `SYNC_BUFFER_DIFFS_MAX`) whose levels live in a ring of
/// `SYNC_BUFFER_LEVELS_MAX` levels addressed by absolute, ever-increasing indices.
pub(super) struct DiffBuffer {
    pub(super) diffs: Box<[PendingDiff]>,
    head: usize,
    pub(super) len: usize,
    pub(super) levels: Box<[Level]>,
    /// Absolute index of the oldest stored level.
    levels_head: u64,
    /// Absolute index one past the newest stored level.
    levels_tail: u64,
}

impl DiffBuffer {
    pub(super) fn new() -> DiffBuffer {
        DiffBuffer {
            diffs: vec![PendingDiff::default(); SYNC_BUFFER_DIFFS_MAX].into_boxed_slice(),
            head: 0,
            len: 0,
            levels: vec![Level::default(); SYNC_BUFFER_LEVELS_MAX].into_boxed_slice(),
            levels_head: 0,
            levels_tail: 0,
        }
    }

    pub(super) fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
        self.levels_head = self.levels_tail;
    }

    pub(super) fn front(&self) -> Option<PendingDiff> {
        if self.len == 0 {
            return None;
        }
        self.diffs.get(self.head).copied()
    }

    pub(super) fn back(&self) -> Option<PendingDiff> {
        if self.len == 0 {
            return None;
        }
        self.diffs
            .get((self.head + self.len - 1) % self.diffs.len())
            .copied()
    }

    pub(super) fn pop_front(&mut self) {
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
    pub(super) fn get(&self, k: usize) -> Option<PendingDiff> {
        if k >= self.len {
            return None;
        }
        self.diffs.get((self.head + k) % self.diffs.len()).copied()
    }

    /// Appends a diff, dropping the oldest ones while there is no room; returns how many
    /// were dropped (a diff larger than the whole level ring is itself dropped: 1).
    pub(super) fn push(&mut self, first: u64, last: u64, prev: u64, levels: BookLevels<'_>) -> u64 {
        let (bids, asks) = (levels.bids, levels.asks);
        let Some(dropped) = self.make_room(bids.len() + asks.len()) else {
            return 1;
        };
        // Two slice copies (each split where the ring wraps), not a level at a time.
        let levels_at = self.levels_tail;
        self.copy_in(levels_at, bids);
        self.copy_in(levels_at + bids.len() as u64, asks);
        self.commit((first, last, prev), (bids.len(), asks.len()));
        dropped
    }

    /// Appends `diff` as held by `other` (another buffer).
    pub(super) fn push_from(&mut self, other: &DiffBuffer, diff: &PendingDiff) -> u64 {
        let (bids, asks) = other.levels(diff);
        let (bid_count, ask_count) = (diff.bid_count as usize, diff.ask_count as usize);
        let Some(dropped) = self.make_room(bid_count + ask_count) else {
            return 1;
        };
        let ring = self.levels.len();
        // One division for the start, then a wrap (once at most: the count ≤ ring).
        let mut at = (self.levels_tail % ring as u64) as usize;
        for level in bids.chain(asks).take(bid_count + ask_count) {
            if let Some(slot) = self.levels.get_mut(at) {
                *slot = level;
            }
            at += 1;
            if at == ring {
                at = 0;
            }
        }
        let ids = (
            diff.first_update_id,
            diff.final_update_id,
            diff.prev_final_update_id,
        );
        self.commit(ids, (bid_count, ask_count));
        dropped
    }

    /// Drops the oldest diffs until one more with `need` levels fits; how many were
    /// dropped, or None (nothing done) when `need` exceeds the whole level ring.
    fn make_room(&mut self, need: usize) -> Option<u64> {
        if need > self.levels.len() {
            return None;
        }
        let mut dropped = 0;
        while self.len == self.diffs.len()
            || (self.levels_tail - self.levels_head) as usize + need > self.levels.len()
        {
            self.pop_front();
            dropped += 1;
        }
        Some(dropped)
    }

    /// Copies `src` into the level ring from absolute index `at` (`make_room` made room).
    fn copy_in(&mut self, at: u64, src: &[Level]) {
        let ring = self.levels.len();
        let start = (at % ring as u64) as usize;
        let (before_wrap, after_wrap) = src.split_at(src.len().min(ring - start));
        if let Some(dst) = self.levels.get_mut(start..start + before_wrap.len()) {
            dst.copy_from_slice(before_wrap);
        }
        if let Some(dst) = self.levels.get_mut(..after_wrap.len()) {
            dst.copy_from_slice(after_wrap);
        }
    }

    /// Records the diff whose levels were just written at the ring's tail.
    fn commit(&mut self, (first, last, prev): (u64, u64, u64), (bids, asks): (usize, usize)) {
        let levels_at = self.levels_tail;
        self.levels_tail += (bids + asks) as u64;
        let slot = (self.head + self.len) % self.diffs.len();
        if let Some(entry) = self.diffs.get_mut(slot) {
            *entry = PendingDiff {
                first_update_id: first,
                final_update_id: last,
                prev_final_update_id: prev,
                levels_at,
                // bids + asks ≤ SYNC_BUFFER_LEVELS_MAX, far below u32::MAX.
                bid_count: bids as u32,
                ask_count: asks as u32,
            };
        }
        self.len += 1;
    }

    /// The bid and ask levels of a buffered diff, read from the ring.
    pub(super) fn levels(
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
