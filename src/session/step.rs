//! One step of the trader on the hot thread, shared by the paper and live sinks: a market
//! event through `Trader::on_market`, or the trader's timer (venue reports, stale-data and
//! kill-switch checks, the mark-to-market), their records handed to the side thread.
//!
//! Hot path. Never allocates, blocks or formats: records leave through `Handoff`
//! (`try_send`; a full channel drops and counts). Never imports `crate::modes`.

use crate::engine::{Step, TradeRecord, Trader};
use crate::feed::{BookLevels, Event};
use crate::hot::Stamps;
use crate::session::handoff::Handoff;
use crate::venue::Venue;

/// Without venue reports, the trader's timer runs this often, ns.
pub const TIMER_EVERY_NS: u64 = 1_000_000;

/// One market event through the trader (its stages marked in `stamps`): returns the step
/// and how many order actions were handed to the venue.
#[inline]
pub fn market_step<V: Venue, N>(
    trader: &mut Trader,
    venue: &mut V,
    out: &mut Handoff<N>,
    event: &Event,
    levels: BookLevels<'_>,
    now_ns: u64,
    stamps: &mut Stamps,
) -> (Step, u32) {
    let mut actions = 0u32;
    let step = trader.on_market_stamped(
        event,
        levels,
        now_ns,
        venue,
        &mut |r| {
            if let TradeRecord::Action { .. } = r {
                actions += 1;
            }
            out.record(r);
        },
        &mut |stage| stamps.mark(stage),
    );
    (step, actions)
}

/// The trader's timer at `now_ns`.
#[inline]
pub fn timer_step<V: Venue, N>(
    trader: &mut Trader,
    venue: &mut V,
    out: &mut Handoff<N>,
    now_ns: u64,
) {
    trader.on_timer(now_ns, venue, &mut |r| out.record(r));
}
