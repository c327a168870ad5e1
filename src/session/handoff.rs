//! `Handoff`: the hot side's three bounded channels into the side thread — trade records
//! (`TRADE_RECORD_CHANNEL_DEPTH`), order counts (`COUNTS_CHANNEL_DEPTH`, sent every
//! `COUNTS_EVERY_NS`) and the venue's notes — and the count of what they dropped.
//!
//! Hot path. Never blocks, allocates or formats: `try_send`, and a full channel drops and
//! counts. The only waiting sends (`record_waiting`, `last_counts`) are for after the hot
//! loop has ended. Never imports `crate::modes`.

use std::time::Duration;

use crossbeam_channel::Sender;

use crate::engine::{TradeRecord, Trader};
use crate::telemetry::kpi::OrderCounts;

/// Order counts are sent to the side thread this often, ns.
pub const COUNTS_EVERY_NS: u64 = 1_000_000_000;
/// How long the last order counts may wait for room in their channel after the loop.
const LAST_COUNTS_WAIT: Duration = Duration::from_secs(1);

/// What the hot side hands to the side thread (`N`: the venue's notes).
pub struct Handoff<N> {
    records: Sender<TradeRecord>,
    counts: Sender<OrderCounts>,
    notes: Sender<N>,
    dropped: u64,
    next_counts_ns: u64,
}

impl<N> Handoff<N> {
    /// The hot ends of the three channels.
    pub fn new(
        records: Sender<TradeRecord>,
        counts: Sender<OrderCounts>,
        notes: Sender<N>,
    ) -> Handoff<N> {
        Handoff {
            records,
            counts,
            notes,
            dropped: 0,
            next_counts_ns: 0,
        }
    }

    /// Hands a trade record over (full channel: dropped and counted).
    #[inline]
    pub fn record(&mut self, record: TradeRecord) {
        if self.records.try_send(record).is_err() {
            self.dropped += 1;
        }
    }

    /// Hands a note over (full channel: dropped and counted).
    #[inline]
    pub fn note(&mut self, note: N) {
        if self.notes.try_send(note).is_err() {
            self.dropped += 1;
        }
    }

    /// Sends the trader's order counts if `COUNTS_EVERY_NS` has passed since the last ones
    /// (full channel: skipped; the next ones carry the totals).
    #[inline]
    pub fn counts_every(&mut self, now_ns: u64, trader: &Trader) {
        if now_ns >= self.next_counts_ns {
            self.next_counts_ns = now_ns + COUNTS_EVERY_NS;
            let _ = self.counts.try_send(counts_of(trader));
        }
    }

    /// After the loop: hands a record over, waiting up to `wait` for room.
    pub fn record_waiting(&mut self, record: TradeRecord, wait: Duration) {
        if self.records.send_timeout(record, wait).is_err() {
            self.dropped += 1;
        }
    }

    /// After the loop: the trader's final order counts, waiting up to `LAST_COUNTS_WAIT`.
    pub fn last_counts(&self, trader: &Trader) {
        let _ = self
            .counts
            .send_timeout(counts_of(trader), LAST_COUNTS_WAIT);
    }

    /// Records and notes dropped because their channel was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// The order manager's counters, as the side thread's KPIs take them.
pub fn counts_of(trader: &Trader) -> OrderCounts {
    let s = trader.order_stats();
    OrderCounts {
        quotes: s.quotes_seen,
        orders_placed: s.orders_placed,
        cancels: s.cancels_sent,
        replaces: s.replaces_sent,
        fills: s.fills,
        orders_with_fill: s.orders_with_fill,
        rejects: s.rejects,
    }
}
