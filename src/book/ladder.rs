//! The sorted part of one book side: `Ladder`, `(key, qty)` slots in ascending key order
//! (bid key = price, ask key = −price, best last) over fixed-size blocks from a pool
//! allocated in `new` for `capacity` levels. `BookSide` keeps here the levels below its
//! price-indexed window.
//!
//! Hot path. Never allocates after `new`, never panics on input; never holds more than
//! `capacity` levels (refuses instead) and never evicts: the side's capacity rule is
//! `BookSide`'s.

use super::*;

/// Levels as `(key, qty)` slots in ascending key order, best at the very end,
/// split over fixed-size blocks (an unrolled sorted list, i.e. a two-level B+-tree).
///
/// `order[..active]` lists the blocks in key order and `firsts[..active]` their first keys
/// (searched first, a short array); each block is a sorted run of 1..=`BOOK_BLOCK_LEVELS`
/// slots. Invariants: no block is empty; any two neighbouring blocks hold more than half a
/// block together (so at most `4·len/B + 1` blocks are active and the pool of
/// `block_pool_len(capacity)` never runs dry); `len ≤ capacity`.
pub(super) struct Ladder {
    /// The block pool, allocated in `new`.
    pub(super) blocks: Box<[Block]>,
    /// Ids of the active blocks in ascending key order (`[..active]`).
    pub(super) order: Box<[u16]>,
    /// First key of each active block, parallel to `order`.
    pub(super) firsts: Box<[i64]>,
    pub(super) active: usize,
    /// Ids of the free blocks (a stack, `[..free_len]`).
    free: Box<[u16]>,
    pub(super) free_len: usize,
    /// Levels held.
    pub(super) len: usize,
    pub(super) capacity: usize,
    /// Where the last `set` landed (position in `order`, slot): where the next search
    /// starts. A diff lists each side's levels from the touch outwards, i.e. in descending
    /// key order and mostly a few levels apart, so the next level is usually in the same
    /// block just below, or in the block before. Only a hint: `locate` checks it against
    /// `firsts` and searches as before when it does not hold, so it never changes a result.
    hint: (usize, usize),
}

/// A sorted run of levels.
#[derive(Clone, Copy)]
pub(super) struct Block {
    pub(super) len: usize,
    pub(super) slots: [(i64, i64); BOOK_BLOCK_LEVELS],
}

pub(super) const HALF_BLOCK: usize = BOOK_BLOCK_LEVELS / 2;

/// Blocks needed for `capacity` levels under the half-full-neighbours invariant, plus one
/// for the split that precedes a merge check, plus slack.
fn block_pool_len(capacity: usize) -> usize {
    4 * capacity / BOOK_BLOCK_LEVELS + 3
}

impl Ladder {
    pub(super) fn new(capacity: usize) -> Ladder {
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
            hint: (0, 0),
        }
    }

    #[inline]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn clear(&mut self) {
        while self.active > 0 {
            self.unlink(self.active - 1);
        }
        self.len = 0;
    }

    /// The lowest key held.
    #[inline]
    pub(super) fn first_key(&self) -> Option<i64> {
        if self.active == 0 {
            return None;
        }
        self.firsts.first().copied()
    }

    /// Removes and returns the best level.
    pub(super) fn pop_best(&mut self) -> Option<(i64, i64)> {
        let b = self.active.checked_sub(1)?;
        let i = self.block(b)?.len.checked_sub(1)?;
        let level = self.block(b)?.slots.get(i).copied()?;
        self.remove(b, i);
        Some(level)
    }

    /// `(key, qty)` of the `n`-th level from the best.
    #[inline]
    pub(super) fn nth_from_best(&self, mut n: usize) -> Option<(i64, i64)> {
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
    pub(super) fn get(&self, key: i64) -> Option<i64> {
        let (b, found) = self.locate(key)?;
        let i = found.ok()?;
        let block = self.block(b)?;
        block.slots.get(i).map(|&(_, qty)| qty)
    }

    /// Sets the level at `key` to `qty` (≤ 0 removes it).
    #[inline]
    pub(super) fn set(&mut self, key: i64, qty: i64) -> LevelChange {
        let Some((b, found)) = self.locate(key) else {
            if qty <= 0 {
                return LevelChange::Ignored;
            }
            self.hint = (0, 0);
            return self.insert_first(key, qty);
        };
        match found {
            Ok(i) if qty <= 0 => {
                self.hint = (b, i);
                self.remove(b, i);
                LevelChange::Removed
            }
            Ok(i) => {
                self.hint = (b, i);
                if let Some(slot) = self.block_mut(b).and_then(|blk| blk.slots.get_mut(i)) {
                    slot.1 = qty;
                }
                LevelChange::Updated
            }
            Err(i) => {
                self.hint = (b, i);
                if qty <= 0 {
                    return LevelChange::Ignored;
                }
                self.insert(b, i, key, qty)
            }
        }
    }

    /// The position in `order` of the block where `key` is or belongs, and its slot
    /// (`Ok`) or insertion point (`Err`) in that block. `None` when the side is empty.
    /// Always inlined: as a call of its own from `set` it cost ~6 % more on the recorded
    /// session (`benches/book.rs` `replay_session`; the book is the replay's largest cost).
    #[inline(always)]
    fn locate(&self, key: i64) -> Option<(usize, Result<usize, usize>)> {
        let firsts = self.firsts.get(..self.active)?;
        let last = self.active.checked_sub(1)?;
        // Where `key` belongs: the last block whose first key is ≤ `key` (block 0 below
        // them all). The touch is the busiest spot: the last block without a search; then
        // the hinted block and the one before it (the next level of a diff); else search.
        let (hint_b, hint_i) = self.hint;
        let holds = |b: usize| {
            b < last
                && firsts.get(b).is_some_and(|&first| first <= key)
                && firsts.get(b + 1).is_some_and(|&next| key < next)
        };
        let (b, start) = if firsts.get(last).is_some_and(|&first| key >= first) {
            (last, if last == hint_b { Some(hint_i) } else { None })
        } else if holds(hint_b) {
            (hint_b, Some(hint_i))
        } else if hint_b > 0 && holds(hint_b - 1) {
            (hint_b - 1, Some(usize::MAX))
        } else {
            let b = firsts
                .partition_point(|&first| first <= key)
                .saturating_sub(1);
            (b, None)
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
        let Some(start) = start else {
            return Some((b, run.binary_search_by_key(&key, |&(k, _)| k)));
        };
        // From the hint: down while the slot below is ≥ `key`, then up while below it;
        // the result is the binary search's (keys are unique), whatever the start.
        let mut at = start.min(run.len());
        while at > 0 && run.get(at - 1).is_some_and(|&(k, _)| k >= key) {
            at -= 1;
        }
        while run.get(at).is_some_and(|&(k, _)| k < key) {
            at += 1;
        }
        Some((
            b,
            match run.get(at) {
                Some(&(k, _)) if k == key => Ok(at),
                _ => Err(at),
            },
        ))
    }

    /// The active block at position `b` of `order`.
    #[inline]
    pub(super) fn block(&self, b: usize) -> Option<&Block> {
        let id = *self.order.get(..self.active)?.get(b)?;
        self.blocks.get(usize::from(id))
    }

    #[inline]
    fn block_mut(&mut self, b: usize) -> Option<&mut Block> {
        let id = *self.order.get(..self.active)?.get(b)?;
        self.blocks.get_mut(usize::from(id))
    }

    /// `(key, qty)` of every level, best first.
    pub(super) fn iter_from_best(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
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
            return LevelChange::Refused;
        }
        if let Some(block) = self.block_mut(0) {
            block.slots[0] = (key, qty);
            block.len = 1;
        }
        self.len = 1;
        LevelChange::Inserted
    }

    /// Inserts a new level at slot `i` of block `b` (refused on a full ladder).
    pub(super) fn insert(&mut self, mut b: usize, mut i: usize, key: i64, qty: i64) -> LevelChange {
        if self.len >= self.capacity {
            return LevelChange::Refused;
        }
        if self
            .block(b)
            .is_some_and(|blk| blk.len == BOOK_BLOCK_LEVELS)
        {
            // Split: the upper half moves to a new block right after this one.
            let Some(upper_first) = self.block(b).map(|blk| blk.slots[HALF_BLOCK].0) else {
                return LevelChange::Refused;
            };
            if self.link(b + 1, upper_first).is_none() {
                return LevelChange::Refused;
            }
            let (Some(&lower_id), Some(&upper_id)) = (self.order.get(b), self.order.get(b + 1))
            else {
                return LevelChange::Refused;
            };
            let upper_half = match self.blocks.get(usize::from(lower_id)) {
                Some(lower) => lower.slots,
                None => return LevelChange::Refused,
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
            return LevelChange::Refused;
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
    pub(super) fn remove(&mut self, b: usize, i: usize) {
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
}

#[inline]
pub(super) fn bid_key(price: Price) -> i64 {
    price.0
}

#[inline]
pub(super) fn ask_key(price: Price) -> i64 {
    price.0.wrapping_neg()
}

#[inline]
pub(super) fn bid_level((key, qty): (i64, i64)) -> Level {
    Level {
        price: Price(key),
        qty: Qty(qty),
    }
}

#[inline]
pub(super) fn ask_level((key, qty): (i64, i64)) -> Level {
    Level {
        price: Price(key.wrapping_neg()),
        qty: Qty(qty),
    }
}
