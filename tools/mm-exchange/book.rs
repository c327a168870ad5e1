//! The exchange-side L2 book, rebuilt from the recorded snapshot plus the diffs as they are
//! published, and the market view the matching reads (book + the fresher bookTicker).
//!
//! Owns the invariant the REST snapshot depends on: `last_update_id` is the `u` of the
//! last diff *published to clients* (or the recorded snapshot's `lastUpdateId` before the
//! first diff that brackets it), so `GET /api/v3/depth` answers with a book that the next
//! published diff continues exactly (`U` ≤ lastUpdateId+1 ≤ `u`).
//!
//! Diffs are applied by Binance's documented rules: a diff with `u` ≤ lastUpdateId is
//! stale and ignored; quantity 0 removes a level; a diff whose `U` skips ids is applied
//! anyway and counted in `gaps` (the recorded data has none). Without a recorded snapshot
//! (the 2023 files) the book starts empty and holds only levels touched since the start.
//!
//! Never: sees the simulator's own orders (the replayed market does not know them) or
//! mutates on taker fills.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use mm::types::Side;

use crate::data::{decimal8, DepthSnapshot, DepthUpdate, Ticker};

/// Price → quantity, both in atoms.
#[derive(Debug, Default, Clone)]
pub struct Book {
    /// `u` of the last applied diff (or the snapshot's `lastUpdateId`); 0 = nothing yet.
    pub last_update_id: u64,
    bids: BTreeMap<i64, i64>,
    asks: BTreeMap<i64, i64>,
    /// Diffs whose `U` was not `last_update_id + 1`.
    pub gaps: u64,
}

/// What `Book::apply` did with a diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// `u` ≤ lastUpdateId: older than the book, ignored.
    Stale,
    /// Applied in sequence.
    InSequence,
    /// Applied, but `U` skipped ids.
    AfterGap,
}

impl Book {
    /// A book from a REST snapshot.
    pub fn from_snapshot(snapshot: &DepthSnapshot) -> Book {
        let mut book = Book {
            last_update_id: snapshot.last_update_id,
            ..Book::default()
        };
        for &(p, q) in &snapshot.bids {
            if q > 0 {
                book.bids.insert(p, q);
            }
        }
        for &(p, q) in &snapshot.asks {
            if q > 0 {
                book.asks.insert(p, q);
            }
        }
        book
    }

    /// Applies one diff (see the file doc for the rules).
    pub fn apply(&mut self, diff: &DepthUpdate) -> Applied {
        if self.last_update_id != 0 && diff.last_id <= self.last_update_id {
            return Applied::Stale;
        }
        let applied = if self.last_update_id != 0 && diff.first_id > self.last_update_id + 1 {
            self.gaps += 1;
            Applied::AfterGap
        } else {
            Applied::InSequence
        };
        for &(p, q) in &diff.bids {
            set_level(&mut self.bids, p, q);
        }
        for &(p, q) in &diff.asks {
            set_level(&mut self.asks, p, q);
        }
        self.last_update_id = diff.last_id;
        applied
    }

    /// Best bid (price, qty).
    pub fn best_bid(&self) -> Option<(i64, i64)> {
        self.bids.iter().next_back().map(|(&p, &q)| (p, q))
    }

    /// Best ask (price, qty).
    pub fn best_ask(&self) -> Option<(i64, i64)> {
        self.asks.iter().next().map(|(&p, &q)| (p, q))
    }

    /// Displayed quantity at a price (0 when absent).
    pub fn qty_at(&self, side: Side, price: i64) -> i64 {
        let levels = match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        };
        levels.get(&price).copied().unwrap_or(0)
    }

    /// Levels of one side, best first.
    pub fn levels(&self, side: Side) -> Box<dyn Iterator<Item = (i64, i64)> + '_> {
        match side {
            Side::Buy => Box::new(self.bids.iter().rev().map(|(&p, &q)| (p, q))),
            Side::Sell => Box::new(self.asks.iter().map(|(&p, &q)| (p, q))),
        }
    }

    /// Number of levels on each side (bids, asks).
    pub fn depth(&self) -> (usize, usize) {
        (self.bids.len(), self.asks.len())
    }

    /// The REST `GET /api/v3/depth` body for the `limit` best levels per side.
    pub fn snapshot_json(&self, limit: usize) -> String {
        let mut out = String::with_capacity(64 + limit * 2 * 40);
        let _ = write!(out, "{{\"lastUpdateId\":{},\"bids\":[", self.last_update_id);
        write_levels(&mut out, self.levels(Side::Buy).take(limit));
        out.push_str("],\"asks\":[");
        write_levels(&mut out, self.levels(Side::Sell).take(limit));
        out.push_str("]}");
        out
    }
}

/// The market as the matching sees it: the diff-built book, with the top of book taken
/// from the latest bookTicker when that is fresher (higher update id) than the book.
#[derive(Debug, Default)]
pub struct Market {
    /// The exact diff-built book (also what REST serves).
    pub book: Book,
    /// The latest bookTicker.
    pub ticker: Option<Ticker>,
    /// Last trade price seen (atoms), for reports.
    pub last_trade_price: Option<i64>,
}

impl Market {
    fn fresh_ticker(&self) -> Option<&Ticker> {
        self.ticker
            .as_ref()
            .filter(|t| t.update_id > self.book.last_update_id)
    }

    /// Best price and quantity on `side`.
    pub fn best(&self, side: Side) -> Option<(i64, i64)> {
        if let Some(t) = self.fresh_ticker() {
            return match side {
                Side::Buy if t.bid_qty > 0 => Some((t.bid_price, t.bid_qty)),
                Side::Sell if t.ask_qty > 0 => Some((t.ask_price, t.ask_qty)),
                _ => None,
            };
        }
        match side {
            Side::Buy => self.book.best_bid(),
            Side::Sell => self.book.best_ask(),
        }
    }

    /// Quantity displayed at `price` on `side`.
    pub fn displayed_at(&self, side: Side, price: i64) -> i64 {
        if let Some((best, qty)) = self.fresh_ticker().and(self.best(side)) {
            if price == best {
                return qty;
            }
            if is_better(side, price, best) {
                return 0;
            }
        }
        self.book.qty_at(side, price)
    }

    /// Levels of `side` (the side a taker would hit), best first, that a taker with limit
    /// `limit` may trade against.
    pub fn takeable(&self, side: Side, limit: i64) -> Vec<(i64, i64)> {
        // A taker buying hits asks at ≤ limit; a taker selling hits bids at ≥ limit.
        let reachable = |p: i64| match side {
            Side::Sell => p <= limit,
            Side::Buy => p >= limit,
        };
        let mut out = Vec::new();
        // With a fresher ticker, its best level replaces every book level at or before it.
        let mut top: Option<i64> = None;
        if self.fresh_ticker().is_some() {
            if let Some((p, q)) = self.best(side) {
                if reachable(p) {
                    out.push((p, q));
                }
                top = Some(p);
            }
        }
        for (p, q) in self.book.levels(side) {
            if !reachable(p) {
                break;
            }
            if top.is_some_and(|t| !is_better(side, t, p)) {
                continue;
            }
            out.push((p, q));
        }
        out
    }
}

/// True when `a` is a strictly better price than `b` for an order on `side`
/// (higher for a bid, lower for an ask).
pub fn is_better(side: Side, a: i64, b: i64) -> bool {
    match side {
        Side::Buy => a > b,
        Side::Sell => a < b,
    }
}

fn set_level(levels: &mut BTreeMap<i64, i64>, price: i64, qty: i64) {
    if qty == 0 {
        levels.remove(&price);
    } else {
        levels.insert(price, qty);
    }
}

fn write_levels(out: &mut String, levels: impl Iterator<Item = (i64, i64)>) {
    for (i, (p, q)) in levels.enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "[\"{}\",\"{}\"]", decimal8(p), decimal8(q));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: i64 = 100_000_000;

    fn diff(first: u64, last: u64, bids: &[(i64, i64)], asks: &[(i64, i64)]) -> DepthUpdate {
        DepthUpdate {
            first_id: first,
            last_id: last,
            bids: bids.to_vec(),
            asks: asks.to_vec(),
        }
    }

    fn book() -> Book {
        Book::from_snapshot(&DepthSnapshot {
            last_update_id: 10,
            bids: vec![(100 * U, 2 * U), (99 * U, U)],
            asks: vec![(101 * U, 3 * U)],
        })
    }

    #[test]
    fn applies_by_binance_rules() {
        let mut b = book();
        assert_eq!(b.apply(&diff(5, 10, &[(100 * U, 0)], &[])), Applied::Stale);
        assert_eq!(b.qty_at(Side::Buy, 100 * U), 2 * U);
        assert_eq!(
            b.apply(&diff(8, 12, &[(100 * U, 0)], &[(102 * U, U)])),
            Applied::InSequence
        );
        assert_eq!(b.best_bid(), Some((99 * U, U)));
        assert_eq!(b.last_update_id, 12);
        assert_eq!(b.apply(&diff(14, 15, &[], &[])), Applied::AfterGap);
        assert_eq!(b.gaps, 1);
        // Removing an absent level is ignored.
        b.apply(&diff(16, 16, &[(50 * U, 0)], &[]));
        assert_eq!(b.depth(), (1, 2));
    }

    #[test]
    fn snapshot_json_has_binance_shape() {
        let b = book();
        assert_eq!(
            b.snapshot_json(1),
            "{\"lastUpdateId\":10,\"bids\":[[\"100.00000000\",\"2.00000000\"]],\"asks\":[[\"101.00000000\",\"3.00000000\"]]}"
        );
    }

    #[test]
    fn market_prefers_fresher_ticker() {
        let mut m = Market {
            book: book(),
            ..Market::default()
        };
        assert_eq!(m.best(Side::Sell), Some((101 * U, 3 * U)));
        m.ticker = Some(Ticker {
            update_id: 9,
            bid_price: 100 * U,
            bid_qty: U,
            ask_price: 100 * U + 1_000_000,
            ask_qty: U,
        });
        // Stale ticker: the book wins.
        assert_eq!(m.best(Side::Sell), Some((101 * U, 3 * U)));
        m.ticker = Some(Ticker {
            update_id: 11,
            bid_price: 100 * U,
            bid_qty: 5 * U,
            ask_price: 100 * U + 1_000_000,
            ask_qty: U,
        });
        assert_eq!(m.best(Side::Sell), Some((100 * U + 1_000_000, U)));
        assert_eq!(m.displayed_at(Side::Buy, 100 * U), 5 * U);
        assert_eq!(m.displayed_at(Side::Buy, 99 * U), U);
        assert_eq!(m.displayed_at(Side::Buy, 100 * U + 500_000), 0);
        // A taker buying up to 101 takes the ticker's ask then the book's 101.
        assert_eq!(
            m.takeable(Side::Sell, 101 * U),
            vec![(100 * U + 1_000_000, U), (101 * U, 3 * U)]
        );
        assert_eq!(m.takeable(Side::Sell, 100 * U), vec![]);
        assert_eq!(m.takeable(Side::Buy, 100 * U), vec![(100 * U, 5 * U)]);
    }
}
