//! Recorded data → the plain series the estimators read: the top of book and the mid over
//! time, market trades, and receive − exchange delays, for one time window of a `Tape`.
//!
//! Owns: which events feed which series. The top of book comes from the `bookTicker`
//! stream (what the engine quotes from); a recording without it falls back to the best
//! levels of the L2 book rebuilt with the engine's `SyncedBook`. Delays are kept only when
//! the recording has receive times (captures and journals, not CSV dumps).
//!
//! Never: changes the tape, reads a clock or panics. Not hot path: allocates.

use crate::book::SyncedBook;
use crate::calibration::estimators::{mid_ticks, TradePoint};
use crate::feed::Event;
use crate::model::ofi::Touch;
use crate::replay::Tape;
use crate::types::Side;

/// Where the top of book came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TouchSource {
    /// The `bookTicker` stream.
    BookTicker,
    /// The best levels of the L2 book (no `bookTicker` in the data).
    L2Book,
}

impl TouchSource {
    /// In words.
    pub const fn as_str(self) -> &'static str {
        match self {
            TouchSource::BookTicker => "bookTicker stream",
            TouchSource::L2Book => "L2 book (the data has no bookTicker stream)",
        }
    }
}

/// Receive time − exchange event time per stream, ns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FeedDelays {
    /// Depth diffs (`E`).
    pub depth_ns: Vec<i64>,
    /// Trades (`E`).
    pub trade_ns: Vec<i64>,
    /// bookTicker (`E`; Binance spot sends none, futures do).
    pub book_ticker_ns: Vec<i64>,
}

/// The series of one window.
#[derive(Clone, Debug, PartialEq)]
pub struct MarketSeries {
    /// Window start (receive time), ns.
    pub start_ns: u64,
    /// Window end (exclusive), ns.
    pub end_ns: u64,
    /// Every change of the top of book in the window, plus the state prevailing at its
    /// start (stamped `start_ns`) when there is one: (receive time ns, touch).
    pub touches: Vec<(u64, Touch)>,
    /// Mid after every change, ticks: (receive time ns, (bid + ask) / 2).
    pub mids: Vec<(u64, f64)>,
    /// Market trades in the window.
    pub trades: Vec<TradePoint>,
    /// Feed delays of the window's events (empty without receive times).
    pub delays: FeedDelays,
    /// Where the touches came from.
    pub touch_source: TouchSource,
}

impl MarketSeries {
    /// The series of `tape` between `start_ns` (inclusive) and `end_ns` (exclusive);
    /// `book_levels` per side for the L2 fallback.
    pub fn from_tape(tape: &Tape, start_ns: u64, end_ns: u64, book_levels: usize) -> MarketSeries {
        let events = tape.events();
        let has_ticker = events
            .iter()
            .any(|e| matches!(e.event, Event::BookTicker(_)));
        let has_receive_times = tape.stats().feed_delay_samples > 0;
        let mut series = MarketSeries {
            start_ns,
            end_ns,
            touches: Vec::new(),
            mids: Vec::new(),
            trades: Vec::new(),
            delays: FeedDelays::default(),
            touch_source: if has_ticker {
                TouchSource::BookTicker
            } else {
                TouchSource::L2Book
            },
        };
        let mut book = (!has_ticker).then(|| SyncedBook::new(book_levels));
        let mut prevailing: Option<Touch> = None;
        for e in events {
            if e.local_ts_ns >= end_ns {
                break;
            }
            let inside = e.local_ts_ns >= start_ns;
            let mut touch = None;
            match &e.event {
                Event::BookTicker(t) => {
                    touch = Some(Touch {
                        bid: t.bid_price,
                        bid_qty: t.bid_qty,
                        ask: t.ask_price,
                        ask_qty: t.ask_qty,
                    });
                    if inside && has_receive_times && t.exch_ts_ms > 0 {
                        series
                            .delays
                            .book_ticker_ns
                            .push(delay_ns(e.local_ts_ns, t.exch_ts_ms));
                    }
                }
                Event::Depth(d) => {
                    if let Some(book) = book.as_mut() {
                        let _ = book.on_diff(d, tape.levels(e));
                        touch = book_touch(book);
                    }
                    if inside && has_receive_times && d.exch_ts_ms > 0 {
                        series
                            .delays
                            .depth_ns
                            .push(delay_ns(e.local_ts_ns, d.exch_ts_ms));
                    }
                }
                Event::Snapshot(s) => {
                    if let Some(book) = book.as_mut() {
                        let _ = book.on_snapshot(s, tape.levels(e));
                        touch = book_touch(book);
                    }
                }
                Event::Trade(t) => {
                    if inside {
                        series.trades.push(TradePoint {
                            ts_ns: e.local_ts_ns,
                            price_ticks: t.price.0 as f64,
                            buy: t.aggressor == Side::Buy,
                            trade_ts_ms: t.trade_ts_ms,
                        });
                        if has_receive_times && t.exch_ts_ms > 0 {
                            series
                                .delays
                                .trade_ns
                                .push(delay_ns(e.local_ts_ns, t.exch_ts_ms));
                        }
                    }
                }
            }
            let Some(touch) = touch.filter(|t| t.bid.0 > 0 && t.ask.0 > t.bid.0) else {
                continue;
            };
            if !inside {
                prevailing = Some(touch);
                continue;
            }
            if let Some(before) = prevailing.take() {
                series.push_touch(start_ns, before);
            }
            series.push_touch(e.local_ts_ns, touch);
        }
        if let Some(before) = prevailing {
            series.push_touch(start_ns, before);
        }
        series
    }

    /// The window's length, seconds.
    pub fn span_s(&self) -> f64 {
        self.end_ns.saturating_sub(self.start_ns) as f64 / 1e9
    }

    /// Mean of the mid over its changes, ticks (`None` without a mid).
    pub fn mean_mid_ticks(&self) -> Option<f64> {
        if self.mids.is_empty() {
            return None;
        }
        Some(self.mids.iter().map(|m| m.1).sum::<f64>() / self.mids.len() as f64)
    }

    fn push_touch(&mut self, ts_ns: u64, touch: Touch) {
        if self.touches.last().is_some_and(|(_, last)| *last == touch) {
            return;
        }
        self.touches.push((ts_ns, touch));
        let mid = mid_ticks(touch);
        if self.mids.last().is_none_or(|(_, last)| *last != mid) {
            self.mids.push((ts_ns, mid));
        }
    }
}

/// Receive time − exchange time, ns.
fn delay_ns(local_ts_ns: u64, exch_ts_ms: u64) -> i64 {
    (local_ts_ns as i64).saturating_sub((exch_ts_ms as i64).saturating_mul(1_000_000))
}

/// The best levels of a synced book as a touch.
fn book_touch(book: &SyncedBook) -> Option<Touch> {
    let held = book.book()?;
    let (bid, ask) = (held.best_bid()?, held.best_ask()?);
    Some(Touch {
        bid: bid.price,
        bid_qty: bid.qty,
        ask: ask.price,
        ask_qty: ask.qty,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::open_inputs;
    use crate::types::{Symbol, SymbolSpec};

    fn tape() -> Tape {
        let spec =
            SymbolSpec::from_decimals(Symbol::new("BTCUSDT").unwrap(), "0.01", "0.00001", "5")
                .unwrap();
        Tape::load(open_inputs(&[], "BTCUSDT").unwrap(), spec).unwrap()
    }

    #[test]
    fn the_built_in_slice_gives_every_series() {
        let tape = tape();
        let stats = tape.stats().clone();
        let middle = stats.first_ts_ns + (stats.last_ts_ns - stats.first_ts_ns) / 2;
        let series = MarketSeries::from_tape(&tape, middle, stats.last_ts_ns + 1, 1000);
        assert_eq!(series.touch_source, TouchSource::BookTicker);
        assert_eq!(
            series.touches[0].0, middle,
            "the prevailing touch opens the window"
        );
        assert!(series.touches.windows(2).all(|w| w[0].0 <= w[1].0));
        assert!(series.mids.len() > 100 && series.trades.len() > 100);
        assert!(series.trades.iter().all(|t| t.ts_ns >= middle));
        // The 2024 recorder ran ~1.27 s behind the exchange.
        let depth = &series.delays.depth_ns;
        assert!(!depth.is_empty() && depth.iter().all(|d| *d < -1_000_000_000));
        assert!(
            series.delays.book_ticker_ns.is_empty(),
            "spot bookTicker has no E"
        );
        let mid = series.mean_mid_ticks().unwrap();
        assert!((6_000_000.0..6_300_000.0).contains(&mid), "{mid}");
    }

    /// Without a bookTicker stream the touch comes from the synced L2 book.
    #[test]
    fn without_book_ticker_the_touch_comes_from_the_book() {
        let dir = std::env::temp_dir().join(format!("mm-calib-series-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("l2.txt");
        std::fs::write(
            &path,
            "1723161253000000000 {\"lastUpdateId\":10,\"bids\":[[\"100.00\",\"1.0\"]],\"asks\":[[\"100.02\",\"2.0\"]]}\n\
             1723161253100000000 {\"stream\":\"btcusdt@depth@100ms\",\"data\":{\"e\":\"depthUpdate\",\"E\":1723161253095,\"s\":\"BTCUSDT\",\"U\":11,\"u\":12,\"b\":[[\"100.01\",\"3.0\"]],\"a\":[]}}\n\
             1723161253200000000 {\"stream\":\"btcusdt@trade\",\"data\":{\"e\":\"trade\",\"E\":1723161253195,\"s\":\"BTCUSDT\",\"t\":1,\"p\":\"100.02\",\"q\":\"0.5\",\"T\":1723161253194,\"m\":false,\"M\":true}}\n",
        )
        .unwrap();
        let spec =
            SymbolSpec::from_decimals(Symbol::new("BTCUSDT").unwrap(), "0.01", "0.00001", "5")
                .unwrap();
        let tape = Tape::load(
            open_inputs(&[path.display().to_string()], "BTCUSDT").unwrap(),
            spec,
        )
        .unwrap();
        let series = MarketSeries::from_tape(&tape, 0, u64::MAX, 1000);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(series.touch_source, TouchSource::L2Book);
        let mids: Vec<f64> = series.mids.iter().map(|m| m.1).collect();
        // In sync (and so a touch) from the first diff applied after the snapshot, as the
        // engine sees it.
        assert_eq!(mids, vec![10_001.5]);
        assert_eq!(series.touches[0].1.bid_qty.0, 300_000);
        assert_eq!(series.trades.len(), 1);
        assert!(series.trades[0].buy);
        assert_eq!(series.delays.depth_ns, vec![5_000_000]);
        assert_eq!(series.delays.trade_ns, vec![5_000_000]);
    }
}
