//! What crosses the venue seam: `Action` (what we ask a venue to do), `VenueEvent` (what
//! any venue — simulated or Binance — reports back) and `Outbox`, the caller's
//! fixed-capacity action buffer.
//!
//! Never allocates after `new`; a full `Outbox` refuses and counts, it never grows.

use super::*;

/// One request to a venue. Orders are post-only (Binance `LIMIT_MAKER`). The side, price
/// and quantity of a new order are read from its `Approved`, so a new order that skipped
/// the risk check cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `order.place`, type LIMIT_MAKER.
    Place {
        /// `newClientOrderId`.
        id: ClientOrderId,
        /// Side, price (ticks) and quantity (lots), risk-checked.
        order: Approved,
    },
    /// `order.cancel` by `origClientOrderId`.
    Cancel {
        /// The order to cancel.
        id: ClientOrderId,
    },
    /// `order.cancelReplace`, `cancelReplaceMode=STOP_ON_FAILURE`: cancel `cancel_id`, and
    /// only if that worked place the new order.
    CancelReplace {
        /// The order to cancel.
        cancel_id: ClientOrderId,
        /// `newClientOrderId` of the replacement.
        new_id: ClientOrderId,
        /// The replacement's side, price and quantity, risk-checked.
        order: Approved,
    },
    /// `openOrders.cancelAll` for the symbol.
    CancelAll,
}

/// What a venue reports about one of our orders. The live venue builds these from
/// executionReports and WebSocket API responses, the simulated venue from its matching.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VenueEvent {
    /// The order rests on the book (`x=NEW`, or a 200 response to `order.place`).
    Accepted {
        /// Our id.
        id: ClientOrderId,
        /// Exchange time of the acceptance, ms.
        exch_ts_ms: u64,
    },
    /// The new order was refused (`-2010` would take, `-1013` filter, `-2022` the
    /// cancel-replace's cancel failed, `CODE_NOT_SENT`, …).
    Rejected {
        /// Our id.
        id: ClientOrderId,
        /// Binance error code.
        code: i32,
    },
    /// An execution (`x=TRADE`).
    Fill {
        /// Our id.
        id: ClientOrderId,
        /// Execution price (`L`), ticks.
        price: Price,
        /// This execution's quantity (`l`), lots.
        qty: Qty,
        /// The order's cumulative filled quantity after it (`z`), lots.
        cum_qty: Qty,
        /// Commission in quote atoms (`n`, converted to the quote asset by the venue),
        /// negative for a rebate.
        fee_quote_atoms: i64,
        /// We were the maker (`m`).
        is_maker: bool,
        /// Transaction time (`T`), ms.
        exch_ts_ms: u64,
        /// Exchange trade id (`t`).
        trade_id: u64,
    },
    /// The order was cancelled (`x=CANCELED`, or a 200 response to a cancel).
    Canceled {
        /// Our id.
        id: ClientOrderId,
    },
    /// A cancel was refused (`-2011` unknown order: it is no longer open, …).
    CancelRejected {
        /// Our id of the order we tried to cancel.
        id: ClientOrderId,
        /// Binance error code.
        code: i32,
    },
    /// The exchange ended the order (`x=EXPIRED`).
    Expired {
        /// Our id.
        id: ClientOrderId,
    },
}

impl VenueEvent {
    /// The order the event is about.
    #[inline]
    pub fn id(&self) -> ClientOrderId {
        match *self {
            VenueEvent::Accepted { id, .. }
            | VenueEvent::Rejected { id, .. }
            | VenueEvent::Fill { id, .. }
            | VenueEvent::Canceled { id }
            | VenueEvent::CancelRejected { id, .. }
            | VenueEvent::Expired { id } => id,
        }
    }
}

/// The caller's buffer of actions: a fixed array and a length. `push` on a full outbox
/// refuses and counts; the manager checks room before changing any state, so a refusal
/// never leaves an order half-sent.
#[derive(Clone, Copy, Debug)]
pub struct Outbox {
    actions: [Action; OUTBOX_MAX],
    len: usize,
    overflows: u64,
}

impl Outbox {
    /// An empty outbox.
    pub const fn new() -> Outbox {
        Outbox {
            actions: [Action::CancelAll; OUTBOX_MAX],
            len: 0,
            overflows: 0,
        }
    }

    /// Appends an action; `false` (and counted) when full.
    #[inline]
    pub fn push(&mut self, action: Action) -> bool {
        match self.actions.get_mut(self.len) {
            Some(slot) => {
                *slot = action;
                self.len += 1;
                true
            }
            None => {
                self.overflows += 1;
                false
            }
        }
    }

    /// The actions in push order.
    #[inline]
    pub fn as_slice(&self) -> &[Action] {
        &self.actions[..self.len]
    }

    /// Forgets the actions (the counter stays).
    #[inline]
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Number of actions held.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no action is held.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Free places.
    #[inline]
    pub fn room(&self) -> usize {
        OUTBOX_MAX - self.len
    }

    /// Pushes refused because the outbox was full, since `new`.
    pub fn overflows(&self) -> u64 {
        self.overflows
    }
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox::new()
    }
}
