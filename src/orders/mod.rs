//! The order manager: desired quotes vs live orders → order actions; the order state
//! machine; position and cash from fills; per-symbol order rate limits.
//!
//! Owns: `ClientOrderId` (and its wire form), `Action` (what we ask a venue to do),
//! `VenueEvent` (what any venue reports back), `OrderState` (one order's life), `Outbox`
//! (the caller's fixed-capacity action buffer), `OrderManager` (the table of our orders, the
//! quote → action rules, `Position`, `OrderStats`).
//!
//! The rules `OrderManager::on_quote` applies, per side, in this order:
//! 1. Risk stopped (`Risk::stop_reason`): on the transition from running, one `CancelAll`
//!    and every open order marked pending-cancel; while stopped, any order found working
//!    again (a transient cancel reject) gets its own `Cancel`. Nothing is placed.
//! 2. No target on a side: cancel every working order there, however young.
//! 3. A working order within the tolerance of the target with the target's size: keep it
//!    (and cancel any other working order on the side that is old enough). The tolerance is
//!    the wider of `price_tolerance_ticks` and the quote's re-quote band
//!    (`Quote::requote_band_ticks`, a fraction of the half-spread): an order still inside
//!    the band keeps its queue place instead of being replaced for a small move.
//! 4. Otherwise the oldest working order is replaced (`CancelReplace`) once it has rested
//!    `min_rest_ms`; if risk refuses the new order the old one is cancelled instead, and
//!    so it is when the rate limit refuses the replace and the old order is more
//!    aggressive than the target (cancels spend no ORDERS token).
//! 5. No working order and fewer than `orders_per_side_max` open on the side (a plain
//!    pending cancel still counts: its order may still be on the book): `Place`.
//!
//! Every `Place` and `CancelReplace` carries a `risk::Approved` (only `Risk::check` makes
//! one) and spends one token of each rate window (per second and per 10 s, Binance's
//! ORDERS limits; sliding windows, so no fixed exchange window can ever see more). An
//! exhausted window skips the action and counts it; it never sends anyway.
//!
//! Invariants: inventory and cash change only on fills (`VenueEvent::Fill`), by the
//! increase of the order's cumulative filled quantity — so a duplicate fill books nothing
//! and events may arrive in any order; every action pushed to the outbox has already
//! moved its orders to the state that expects the answer; at most `ORDER_SLOTS` orders are
//! tracked (finished ones are recycled oldest first).
//!
//! Hot path. Never allocates after `new`, reads the clock (`now_ns` comes in), panics,
//! formats text or uses a float. Prices are ticks, quantities lots, money quote atoms
//! (10⁻⁸ of the quote currency, `types::ATOMS_PER_UNIT`).
//!
//! Files: `ids.rs` (client order ids), `events.rs` (`Action`, `VenueEvent`, `Outbox`:
//! what crosses the venue seam), `state.rs` (one order's state machine), `manager.rs`
//! (`OrderManager`: the quote → action rules, position, stats), `rate.rs` (the sliding
//! order-rate windows), `tests.rs`.

use std::fmt;

use crate::model::{Quote, QuoteLevel};
use crate::risk::{Approved, Exposure, Risk, RiskReject};
use crate::types::{Price, Qty, Side, SymbolSpec, ATOMS_PER_UNIT};

mod events;
mod ids;
mod manager;
mod rate;
mod state;
#[cfg(test)]
mod tests;

pub use events::*;
pub use ids::*;
pub use manager::*;
use rate::*;
pub use state::*;

/// Most orders per side `OrderParams::orders_per_side_max` may allow. One is the normal
/// case; a few allow a new quote while the old one's cancel is in flight.
pub const ORDERS_PER_SIDE_MAX: usize = 4;

/// Largest `OrderParams::behind_band_factor`: an order further behind its target than 16
/// re-quote bands no longer quotes anything useful.
pub const BEHIND_BAND_FACTOR_MAX: u32 = 16;

/// Orders tracked at once: open ones (≤ 2 sides × `ORDERS_PER_SIDE_MAX` working + as many
/// pending cancel) plus recently finished ones, kept to recognise late duplicate events.
pub const ORDER_SLOTS: usize = 64;

/// Actions one `on_quote` call can emit: per side ≤ `ORDERS_PER_SIDE_MAX` cancels and one
/// place/replace, or a `CancelAll`. Twice that, for a caller that batches two calls.
pub const OUTBOX_MAX: usize = 4 * (ORDERS_PER_SIDE_MAX + 1);

/// Largest per-10 s order limit the rate window can enforce (it keeps one timestamp per
/// order sent in the window).
pub const RATE_WINDOW_MAX: usize = 1_024;

/// Longest session tag in a client order id.
pub const SESSION_TAG_LEN_MAX: usize = 12;

/// Binance's limit for `newClientOrderId`.
pub const CLIENT_ORDER_ID_LEN_MAX: usize = 36;

/// Error code of a refusal made locally because an action was never sent (venue queue
/// full, connection down). Positive, so it can never be mistaken for a Binance code.
pub const CODE_NOT_SENT: i32 = 1;

/// Binance: "Unknown order sent." (cancel of an order that is not open).
pub const CODE_UNKNOWN_ORDER: i32 = -2011;

/// Binance: "Order does not exist."
pub const CODE_NO_SUCH_ORDER: i32 = -2013;

const _: () = assert!(ORDERS_PER_SIDE_MAX >= 1);
const _: () = assert!(ORDER_SLOTS >= 4 * ORDERS_PER_SIDE_MAX);
const _: () = assert!(OUTBOX_MAX > 2 * ORDERS_PER_SIDE_MAX + 2);
// "mm" + tag + "-" + 20 digits of a u64.
const _: () = assert!(2 + SESSION_TAG_LEN_MAX + 1 + 20 <= CLIENT_ORDER_ID_LEN_MAX);

const NS_PER_MS: u64 = 1_000_000;
const NS_PER_S: u64 = 1_000_000_000;
