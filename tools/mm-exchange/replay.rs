//! The replay thread: paces the recorded messages and publishes each one — book update,
//! fills of our orders, fan-out to the subscribers — in one step under the exchange lock.
//!
//! Timing: the replay clock starts when the first market-data subscriber connects (or at
//! launch with `--start-at-launch`); record i is published at
//! `start + (local_ts[i] − local_ts[0]) / speed`, or back to back with `--speed max`. A
//! `stall` (or `stall-market`) pauses the replay and shifts its clock by the stall, so
//! nothing is skipped or bunched afterwards. Every subscriber connected at a record's publication receives it,
//! in the same order; a late subscriber starts at the current position (as on Binance).
//! When the data ends the exchange keeps serving (REST, orders) until it is stopped.
//!
//! Faults applied here: `gap` withholds the next depth update from every subscriber (the
//! exchange's book still applies it, as Binance's would), `dup` sends the next one twice.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::clock;
use crate::config::Speed;
use crate::data::{Capture, Event, Record, StreamKind};
use crate::state::{Exchange, Faults, Outbound, Shared};

/// Runs the replay to the end of the data (or until stop).
pub fn run(shared: Arc<Shared>, capture: Capture) {
    shared.wait_start();
    if shared.stopping() {
        return;
    }
    let Some(first_ns) = capture.records.first().map(|r| r.local_ns) else {
        shared.lock().replay_done = true;
        return;
    };
    let mut origin = clock::now();
    let slice = Duration::from_millis(5);
    for record in &capture.records {
        if let Speed::Factor(speed) = shared.cfg.speed {
            let offset_ns = (record.local_ns - first_ns).max(0) as f64 / speed;
            let due = origin + Duration::from_nanos(offset_ns as u64);
            if !clock::sleep_until(due, slice, || !shared.stopping()) {
                return;
            }
        }
        // A stall (or stall-market) holds the replay and moves its clock on by the time held.
        let now = clock::now();
        if let Some(until) = shared.faults.market_stalled_until(now) {
            if !clock::sleep_until(until, slice, || !shared.stopping()) {
                return;
            }
            origin += until - now;
        }
        if shared.stopping() {
            return;
        }
        publish(&shared, record);
    }
    let mut ex = shared.lock();
    ex.replay_done = true;
    mm::errln!(
        "mm-exchange: replay finished ({} messages); still serving until stopped",
        ex.counters.published
    );
}

/// Publishes one record: market state, matching, fan-out.
pub fn publish(shared: &Shared, record: &Record) {
    let now_ms = clock::wall_ms();
    let mut ex = shared.lock();
    match &record.event {
        Event::Depth(diff) => {
            ex.market.book.apply(diff);
            let Exchange {
                matcher, market, ..
            } = &mut *ex;
            matcher.on_book_change(market);
        }
        Event::Ticker(ticker) => {
            let newer = ex
                .market
                .ticker
                .is_none_or(|t| ticker.update_id >= t.update_id);
            if newer {
                ex.market.ticker = Some(*ticker);
                let Exchange {
                    matcher, market, ..
                } = &mut *ex;
                matcher.on_book_change(market);
            }
        }
        Event::Trade(trade) => {
            ex.market.last_trade_price = Some(trade.price);
            let execs = ex.matcher.on_trade(trade, now_ms);
            ex.emit(&execs, now_ms);
        }
        Event::Opaque => {}
    }
    ex.counters.published += 1;
    let mut copies = 1;
    if record.kind == StreamKind::Depth {
        if Faults::take(&shared.faults.gap) {
            ex.counters.gaps_injected += 1;
            copies = 0;
        } else if Faults::take(&shared.faults.dup) {
            ex.counters.dups_injected += 1;
            copies = 2;
        }
    }
    if copies == 0 {
        return;
    }
    let mut frames: Vec<(usize, String)> = Vec::new();
    for (index, sub) in ex.subscribers.iter().enumerate() {
        for name in &sub.streams {
            if !ex.wants(name, record.kind, &record.stream) {
                continue;
            }
            let frame = if sub.combined {
                format!("{{\"stream\":\"{name}\",\"data\":{}}}", record.payload)
            } else {
                record.payload.clone()
            };
            frames.push((index, frame));
        }
    }
    let mut gone: Vec<usize> = Vec::new();
    for (index, frame) in frames {
        for _ in 0..copies {
            // A full queue is a subscriber that does not read: dropped (its connection
            // closes), never an unbounded queue.
            if ex.subscribers[index]
                .tx
                .try_send(Outbound::Text(frame.clone()))
                .is_err()
            {
                gone.push(index);
            }
        }
    }
    gone.sort_unstable();
    gone.dedup();
    for index in gone.into_iter().rev() {
        let sub = ex.subscribers.remove(index);
        sub.slow.store(true, Ordering::SeqCst);
        ex.counters.slow_subscribers += 1;
        ex.counters.dropped += 1;
    }
}
