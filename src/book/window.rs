//! The price-indexed part of one book side: `Window`, the quantity of every key in
//! `base..base + span` in a flat array indexed by the key's offset from `base`, with a
//! two-level bitmap of the occupied offsets for the next level down and the lowest one.
//!
//! Hot path. Never allocates after `new`, never panics on input; knows nothing of the
//! side's capacity or of the levels outside its span (`BookSide` owns both).

/// Offsets per bitmap word.
const WORD: usize = 64;

/// `span` keys from `base`: `qty[o]` is the quantity at key `base + o` (0: no level), bit
/// `o` of `bits` is set exactly when `qty[o] > 0`, bit `w` of `summary` exactly when
/// `bits[w] != 0`; `len` levels, the highest at offset `top` (while `len > 0`).
pub(super) struct Window {
    /// Key of offset 0.
    pub(super) base: i64,
    /// `1 << span_log2` keys.
    span: usize,
    pub(super) qty: Box<[i64]>,
    pub(super) bits: Box<[u64]>,
    pub(super) summary: Box<[u64]>,
    pub(super) len: usize,
    /// Offset of the highest level, valid while `len > 0`.
    pub(super) top: usize,
}

impl Window {
    /// A window of `1 << span_log2` keys (at least one bitmap word), allocated here once,
    /// resident from the start (`mem::resident`: no page fault on the hot path the first
    /// time the touch drifts onto a page of the 512 KiB of quantities).
    pub(super) fn new(span_log2: u32) -> Window {
        let span = 1usize << span_log2.max(WORD.trailing_zeros());
        let words = span / WORD;
        Window {
            base: 0,
            span,
            qty: crate::mem::resident(span),
            bits: crate::mem::resident(words),
            summary: crate::mem::resident(words.div_ceil(WORD)),
            len: 0,
            top: 0,
        }
    }

    #[inline]
    pub(super) fn span(&self) -> usize {
        self.span
    }

    /// The offset of `key`, if it lies in the window.
    #[inline]
    pub(super) fn offset(&self, key: i64) -> Option<usize> {
        if key < self.base {
            return None;
        }
        let off = key.abs_diff(self.base);
        if off < self.span as u64 {
            Some(off as usize)
        } else {
            None
        }
    }

    /// The key at offset `o`.
    #[inline]
    pub(super) fn key(&self, o: usize) -> i64 {
        self.base.wrapping_add(o as i64)
    }

    /// True when a level is at offset `o`. From the bitmap (8 KiB a side at 2^16 keys,
    /// cache-resident), not from the quantities (512 KiB): `BookSide::set` reads no
    /// quantity, it only writes them (which does not wait for the cache line).
    #[inline]
    pub(super) fn has(&self, o: usize) -> bool {
        self.bits
            .get(o / WORD)
            .is_some_and(|&word| word >> (o % WORD) & 1 == 1)
    }

    /// Quantity at offset `o` (0: no level).
    #[inline]
    pub(super) fn qty(&self, o: usize) -> i64 {
        self.qty.get(o).copied().unwrap_or(0)
    }

    /// Changes the quantity of the existing level at offset `o` (`qty > 0`).
    #[inline]
    pub(super) fn update(&mut self, o: usize, qty: i64) {
        if let Some(slot) = self.qty.get_mut(o) {
            *slot = qty;
        }
    }

    /// Adds a level at the empty offset `o` (`qty > 0`).
    #[inline]
    pub(super) fn insert(&mut self, o: usize, qty: i64) {
        let (Some(slot), Some(word)) = (self.qty.get_mut(o), self.bits.get_mut(o / WORD)) else {
            return;
        };
        *slot = qty;
        *word |= 1 << (o % WORD);
        if let Some(summary) = self.summary.get_mut(o / WORD / WORD) {
            *summary |= 1 << (o / WORD % WORD);
        }
        if self.len == 0 || o > self.top {
            self.top = o;
        }
        self.len += 1;
    }

    /// Removes the level at offset `o` (present).
    #[inline]
    pub(super) fn remove(&mut self, o: usize) {
        let (Some(slot), Some(word)) = (self.qty.get_mut(o), self.bits.get_mut(o / WORD)) else {
            return;
        };
        *slot = 0;
        *word &= !(1 << (o % WORD));
        if *word == 0 {
            if let Some(summary) = self.summary.get_mut(o / WORD / WORD) {
                *summary &= !(1 << (o / WORD % WORD));
            }
        }
        self.len -= 1;
        if self.len > 0 && o == self.top {
            self.top = o
                .checked_sub(1)
                .and_then(|o| self.at_or_below(o))
                .unwrap_or(0);
        }
    }

    /// The highest occupied offset at or below `o`.
    #[inline]
    pub(super) fn at_or_below(&self, o: usize) -> Option<usize> {
        let w = o / WORD;
        let masked = self.bits.get(w)? & (u64::MAX >> (WORD - 1 - o % WORD));
        if masked != 0 {
            return Some(w * WORD + highest_bit(masked));
        }
        // The highest non-empty word below `w`, through the summary.
        let s = w / WORD;
        let below = (1u64 << (w % WORD)) - 1;
        let mut found = None;
        if self.summary.get(s)? & below != 0 {
            found = Some((s, self.summary.get(s)? & below));
        } else {
            for t in (0..s).rev() {
                let bits = *self.summary.get(t)?;
                if bits != 0 {
                    found = Some((t, bits));
                    break;
                }
            }
        }
        let (s, bits) = found?;
        let w = s * WORD + highest_bit(bits);
        Some(w * WORD + highest_bit(*self.bits.get(w)?))
    }

    /// The lowest occupied offset.
    pub(super) fn lowest(&self) -> Option<usize> {
        let (s, &bits) = self.summary.iter().enumerate().find(|(_, &b)| b != 0)?;
        let w = s * WORD + bits.trailing_zeros() as usize;
        Some(w * WORD + self.bits.get(w)?.trailing_zeros() as usize)
    }

    /// Hands every level to `each` as `(key, qty)` in ascending key order and empties the
    /// window (`O(len + span / 4096)`).
    pub(super) fn drain(&mut self, mut each: impl FnMut(i64, i64)) {
        for s in 0..self.summary.len() {
            let mut words = std::mem::take(&mut self.summary[s]);
            while words != 0 {
                let w = s * WORD + words.trailing_zeros() as usize;
                words &= words - 1;
                let Some(word) = self.bits.get_mut(w) else {
                    continue;
                };
                let mut bits = std::mem::take(word);
                while bits != 0 {
                    let o = w * WORD + bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    if let Some(slot) = self.qty.get_mut(o) {
                        let qty = std::mem::take(slot);
                        each(self.base.wrapping_add(o as i64), qty);
                    }
                }
            }
        }
        self.len = 0;
        self.top = 0;
    }

    /// `(key, qty)` of every level, highest first.
    pub(super) fn iter_down(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        let first = (self.len > 0).then_some(self.top);
        std::iter::successors(first, |&o| {
            o.checked_sub(1).and_then(|o| self.at_or_below(o))
        })
        .map(|o| (self.key(o), self.qty(o)))
    }
}

#[inline]
fn highest_bit(bits: u64) -> usize {
    WORD - 1 - bits.leading_zeros() as usize
}
