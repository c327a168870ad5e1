//! The venue seam: where order actions go and venue events come from, one implementation
//! per mode — `sim` (in-process matching for paper trading and backtests) here, and the
//! live Binance order entry beside it.
//!
//! Owns: the `Venue` trait (the contract the engine drives), `MarketView` (what a venue
//! may read of the market: best levels and the displayed quantity at a price) with its
//! implementations for `Book`, `BookTicker` and `BookWithTicker`, and `SubmitError`.
//!
//! The call order per market event stamped `t` (local receive time), which is what makes
//! order arrivals and market events interleave by timestamp:
//!
//! ```text
//! venue.advance(t, &market)          // orders due by t meet the market *before* this event
//! apply the event to the book
//! venue.on_trade(t, &trade)          // a public trade (trades do not change the book here)
//! venue.on_book_change(t, &market)   // the displayed book changed (depth diff, bookTicker)
//! venue.poll_events(t, &mut |e| { orders.on_venue_event(t, &e); })
//! quote → orders.on_quote(t, ..) → for each action: venue.submit(t, &action)
//!                                   (on Err: orders.on_send_failed(t, &action))
//! ```
//! Between market events a driver may also call `advance` + `poll_events` at
//! `next_due_ns()` (a backtest does, so acks and fills are seen at their exact time; a
//! live loop does on its timer).
//!
//! Sans-IO: never reads a clock (`now_ns` comes in), touches a socket or allocates after
//! construction. A live implementation writes requests into its own preallocated buffers
//! for the I/O layer to flush.

pub mod binance;
pub mod sim;

use crate::book::Book;
use crate::feed::{BookTicker, Level, Trade};
use crate::orders::{Action, VenueEvent};
use crate::types::{Price, Qty, Side};

/// Why `Venue::submit` did not take an action. The caller answers the action's orders
/// locally (`OrderManager::on_send_failed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// The venue's fixed-size queue of in-flight actions (or of reports they may produce)
    /// is full.
    QueueFull,
    /// The order-entry connection is down.
    Disconnected,
}

/// A place orders go to and events come back from. See the module doc for the call order.
pub trait Venue {
    /// Hands one action to the venue at `now_ns`.
    fn submit(&mut self, now_ns: u64, action: &Action) -> Result<(), SubmitError>;

    /// Moves the venue's time to `now_ns`: actions due by then reach the matching and see
    /// `market` — the market as it stands *before* any event stamped `now_ns` is applied.
    /// A venue without local matching does nothing.
    fn advance<M: MarketView>(&mut self, now_ns: u64, market: &M);

    /// A public trade received at `now_ns` (call `advance(now_ns, ..)` first).
    fn on_trade(&mut self, now_ns: u64, trade: &Trade);

    /// The displayed book changed at `now_ns` (after the event was applied).
    fn on_book_change<M: MarketView>(&mut self, now_ns: u64, market: &M);

    /// Hands every event due at or before `now_ns` to `out`, in the order the venue
    /// produced them.
    fn poll_events<F: FnMut(VenueEvent)>(&mut self, now_ns: u64, out: &mut F);

    /// The earliest time something is due (an action arriving, an event to report).
    fn next_due_ns(&self) -> Option<u64>;
}

/// What a venue may read of the market.
pub trait MarketView {
    /// Best level on `side` (bids for `Buy`).
    fn best(&self, side: Side) -> Option<Level>;

    /// Quantity displayed at `price` on `side` (0 if no level).
    fn displayed_at(&self, side: Side, price: Price) -> Qty;
}

impl MarketView for Book {
    #[inline]
    fn best(&self, side: Side) -> Option<Level> {
        match side {
            Side::Buy => self.best_bid(),
            Side::Sell => self.best_ask(),
        }
    }

    #[inline]
    fn displayed_at(&self, side: Side, price: Price) -> Qty {
        self.qty_at(side, price)
    }
}

/// Top of book only (a `bookTicker`-only feed): nothing is known below the best levels,
/// so the displayed quantity there is 0.
impl MarketView for BookTicker {
    #[inline]
    fn best(&self, side: Side) -> Option<Level> {
        let (price, qty) = match side {
            Side::Buy => (self.bid_price, self.bid_qty),
            Side::Sell => (self.ask_price, self.ask_qty),
        };
        (qty.0 > 0).then_some(Level { price, qty })
    }

    #[inline]
    fn displayed_at(&self, side: Side, price: Price) -> Qty {
        match self.best(side) {
            Some(level) if level.price == price => level.qty,
            _ => Qty(0),
        }
    }
}

/// The diff-built book with its top taken from the latest bookTicker when that is fresher
/// (a higher update id than the book's last applied diff) — the local exchange's rule
/// (tools/mm-exchange `Market`). A fresher ticker's best level replaces the book at that
/// price, and nothing is displayed at better prices than it.
#[derive(Clone, Copy)]
pub struct BookWithTicker<'a> {
    /// The book.
    pub book: &'a Book,
    /// `u` of the last diff applied to the book.
    pub book_update_id: u64,
    /// The latest bookTicker, if any.
    pub ticker: Option<&'a BookTicker>,
}

impl BookWithTicker<'_> {
    fn fresh_ticker(&self) -> Option<&BookTicker> {
        self.ticker.filter(|t| t.update_id > self.book_update_id)
    }
}

impl MarketView for BookWithTicker<'_> {
    #[inline]
    fn best(&self, side: Side) -> Option<Level> {
        match self.fresh_ticker() {
            Some(ticker) => ticker.best(side),
            None => self.book.best(side),
        }
    }

    #[inline]
    fn displayed_at(&self, side: Side, price: Price) -> Qty {
        if self.fresh_ticker().is_some() {
            if let Some(best) = self.best(side) {
                if price == best.price {
                    return best.qty;
                }
                let better = match side {
                    Side::Buy => price > best.price,
                    Side::Sell => price < best.price,
                };
                if better {
                    return Qty(0);
                }
            }
        }
        self.book.qty_at(side, price)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticker(update_id: u64) -> BookTicker {
        BookTicker {
            update_id,
            bid_price: Price(101),
            bid_qty: Qty(7),
            ask_price: Price(103),
            ask_qty: Qty(9),
            exch_ts_ms: 0,
            local_ts_ns: 0,
        }
    }

    #[test]
    fn fresher_ticker_overrides_the_top_of_the_book() {
        let mut book = Book::new(16);
        book.apply(
            Side::Buy,
            Level {
                price: Price(100),
                qty: Qty(5),
            },
        );
        book.apply(
            Side::Buy,
            Level {
                price: Price(99),
                qty: Qty(4),
            },
        );
        book.apply(
            Side::Sell,
            Level {
                price: Price(104),
                qty: Qty(6),
            },
        );
        let t = ticker(11);
        let fresh = BookWithTicker {
            book: &book,
            book_update_id: 10,
            ticker: Some(&t),
        };
        assert_eq!(
            fresh.best(Side::Buy),
            Some(Level {
                price: Price(101),
                qty: Qty(7)
            })
        );
        assert_eq!(fresh.displayed_at(Side::Buy, Price(101)), Qty(7));
        assert_eq!(fresh.displayed_at(Side::Buy, Price(102)), Qty(0));
        assert_eq!(fresh.displayed_at(Side::Buy, Price(100)), Qty(5));
        assert_eq!(fresh.displayed_at(Side::Sell, Price(103)), Qty(9));
        let stale = BookWithTicker {
            book_update_id: 11,
            ..fresh
        };
        assert_eq!(
            stale.best(Side::Buy),
            Some(Level {
                price: Price(100),
                qty: Qty(5)
            })
        );
        assert_eq!(stale.displayed_at(Side::Buy, Price(101)), Qty(0));
        assert_eq!(t.displayed_at(Side::Sell, Price(104)), Qty(0));
    }
}
