//! `PaperSink`: the hot side of paper trading — the `Trader` against the in-process
//! `SimVenue` (the same queue-position rules as the local exchange), driven exactly as live
//! drives Binance: market events through `step::market_step`, the trader's timer when the
//! venue has something due or every `TIMER_EVERY_NS` (so a silent market stops quoting
//! after `risk.stale_data_ms` here too), order counts every `COUNTS_EVERY_NS`.
//!
//! Never: allocates, blocks or formats on the hot thread (everything leaves through
//! `Handoff`), or imports `crate::modes`.

use std::time::Duration;

use crate::config::Config;
use crate::engine::{EngineStats, Step, Trader};
use crate::feed::{BookLevels, Event};
use crate::hot::{FeedSink, Stamps};
use crate::risk::StopReason;
use crate::session::handoff::Handoff;
use crate::session::notes::NoNotes;
use crate::session::step::{market_step, timer_step, TIMER_EVERY_NS};
use crate::venue::sim::SimVenue;
use crate::venue::Venue;

/// After the stop, the simulated venue's reports are drained as of this long later, ns.
const STOP_DRAIN_NS: u64 = 10_000_000_000;
/// After the loop, a record waits this long for room in its channel.
const STOP_SEND_WAIT: Duration = Duration::from_millis(100);

/// The hot side of paper trading.
pub struct PaperSink {
    trader: Trader,
    venue: SimVenue,
    out: Handoff<NoNotes>,
    /// When the trader's timer runs next without venue reports (as live runs it).
    next_timer_ns: u64,
}

/// What a paper session's hot side ended with.
#[derive(Clone, Copy, Debug)]
pub struct PaperOutcome {
    /// Orders still open after the stop and the drain.
    pub open_orders_left: u32,
    /// Records the hot side could not hand over.
    pub records_dropped: u64,
}

impl PaperSink {
    /// The trader against a fresh simulated venue (`[venue.sim]`).
    pub fn new(config: &Config, trader: Trader, out: Handoff<NoNotes>) -> anyhow::Result<Self> {
        Ok(PaperSink {
            trader,
            venue: SimVenue::new(config.venue.sim, config.spec)
                .map_err(|e| anyhow::anyhow!("simulated venue: {e}"))?,
            out,
            next_timer_ns: 0,
        })
    }

    /// After the loop: cancel everything at `end_ns`, let the simulated venue answer,
    /// count once more. Returns the outcome and the hot ends of the channels.
    pub fn finish(mut self, end_ns: u64) -> (PaperOutcome, Handoff<NoNotes>) {
        let out = &mut self.out;
        let mut forward = |r| out.record_waiting(r, STOP_SEND_WAIT);
        self.trader
            .stop(end_ns, StopReason::Shutdown, &mut self.venue, &mut forward);
        self.trader
            .on_timer(end_ns + STOP_DRAIN_NS, &mut self.venue, &mut forward);
        self.out.last_counts(&self.trader);
        let outcome = PaperOutcome {
            open_orders_left: self.trader.open_orders(),
            records_dropped: self.out.dropped(),
        };
        (outcome, self.out)
    }
}

impl FeedSink for PaperSink {
    const TIMED: bool = true;

    #[inline]
    fn on_event(
        &mut self,
        event: &Event,
        levels: BookLevels<'_>,
        now_ns: u64,
        stamps: &mut Stamps,
    ) -> (Step, u32) {
        market_step(
            &mut self.trader,
            &mut self.venue,
            &mut self.out,
            event,
            levels,
            now_ns,
            stamps,
        )
    }

    fn on_disconnect(&mut self, _now_ns: u64) {
        self.trader.engine_mut().resync();
    }

    #[inline]
    fn warm(&mut self, now_ns: u64) {
        self.trader.warm(now_ns, &self.venue);
    }

    #[inline]
    fn on_idle(&mut self, now_ns: u64, _registry: &mio::Registry) {
        let due = self.venue.next_due_ns().is_some_and(|due| due <= now_ns);
        if due || now_ns >= self.next_timer_ns {
            self.next_timer_ns = now_ns + TIMER_EVERY_NS;
            timer_step(&mut self.trader, &mut self.venue, &mut self.out, now_ns);
        }
        self.out.counts_every(now_ns, &self.trader);
    }

    fn engine_stats(&self) -> EngineStats {
        self.trader.engine().stats()
    }
}
