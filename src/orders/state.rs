//! One order's life: `OrderState` and its transitions (ack, fill, cancel, reject, each
//! consuming the old state), `CancelVia`, `TransitionError`. Duplicate events (a response
//! and its executionReport) are recognised here, so either may arrive first.
//!
//! Never allocates, reads the clock or panics on a venue event; an illegal transition is a
//! `TransitionError`.

use super::*;

/// How a cancel was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CancelVia {
    /// `Action::Cancel`.
    Cancel,
    /// The cancel leg of `Action::CancelReplace`: its replacement only exists if this
    /// cancel succeeds, so it does not hold a place on its side.
    Replace,
    /// `Action::CancelAll`.
    All,
}

/// The life of one order. Transitions consume the state and return the next one, or a
/// `TransitionError` when the venue reported something impossible (the state is then
/// unchanged). Events that add nothing (a duplicate, a late ack, a cancel confirmation
/// after the order filled) return the same state.
///
/// ```text
///                         ack
///   PendingNew -------------------------> Live
///     |  |  \  fill (partial)               |  fill (partial)
///     |  |   +-------------------+          v
///     |  |                       +--> PartiallyFilled --+ fill
///     |  | reject                       |       ^       | (partial)
///     |  v                              |       +-------+
///     | Rejected                        | fill (complete), from any open state
///     |                                 +---------------------------> Filled
///     | request_cancel (also from Live and PartiallyFilled)
///     v
///   PendingCancel --canceled--> Canceled      PendingCancel --fill--> PendingCancel
///     |  |                                      (still counted; complete: Filled)
///     |  +--cancel rejected, -2011/-2013--> Vanished (not open: fill reports may follow)
///     +-----cancel rejected, other code---> back to PendingNew / Live / PartiallyFilled
///
///   Any open state --canceled--> Canceled, --expired--> Expired (unsolicited).
///   Canceled / Expired / Vanished --fill--> same state, filled raised (late fills count;
///   a complete one makes it Filled). Filled ignores cancel confirmations and rejects.
///   Errors: ack or fill after Rejected, reject after ack, cumulative fill above the order
///   size, cancel request on a finished or already-cancelling order.
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrderState {
    /// Sent, no answer yet.
    PendingNew,
    /// Resting on the book, nothing filled.
    Live,
    /// Resting, partly filled.
    PartiallyFilled {
        /// Cumulative filled quantity, lots (0 < filled < size).
        filled: Qty,
    },
    /// A cancel was sent, no answer yet.
    PendingCancel {
        /// The venue had acknowledged the order (or filled some of it).
        acked: bool,
        /// Cumulative filled quantity, lots.
        filled: Qty,
        /// How the cancel was sent.
        via: CancelVia,
    },
    /// Completely filled (finished).
    Filled,
    /// Cancelled (finished).
    Canceled {
        /// Cumulative filled quantity, lots.
        filled: Qty,
    },
    /// Expired by the exchange (finished).
    Expired {
        /// Cumulative filled quantity, lots.
        filled: Qty,
    },
    /// A cancel was refused because the order is not open (-2011/-2013) and no cancel or
    /// complete fill was reported (finished; a fill report may still follow and counts).
    Vanished {
        /// Cumulative filled quantity, lots.
        filled: Qty,
    },
    /// Refused by the venue (finished, never on the book).
    Rejected {
        /// Binance error code.
        code: i32,
    },
}

/// The venue reported something the state machine cannot accept. Who is at fault: the
/// venue (the first four), or the caller (the last two).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransitionError {
    /// An acknowledgement for a rejected order.
    AckAfterReject,
    /// A fill for a rejected order.
    FillAfterReject,
    /// A reject for an order that was already acknowledged, filled or finished.
    RejectAfterAck,
    /// A cumulative filled quantity larger than the order.
    Overfill,
    /// A cancel request for an order already being cancelled.
    AlreadyCanceling,
    /// A cancel request for a finished order.
    NotOpen,
}

impl fmt::Display for TransitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransitionError::AckAfterReject => "venue acknowledged a rejected order",
            TransitionError::FillAfterReject => "venue filled a rejected order",
            TransitionError::RejectAfterAck => "venue rejected an acknowledged order",
            TransitionError::Overfill => "cumulative fill larger than the order",
            TransitionError::AlreadyCanceling => "order is already being cancelled",
            TransitionError::NotOpen => "order is finished",
        })
    }
}

impl std::error::Error for TransitionError {}

impl OrderState {
    /// Cumulative filled quantity of an order of `size` lots in this state.
    #[inline]
    pub fn filled(&self, size: Qty) -> Qty {
        match *self {
            OrderState::PendingNew | OrderState::Live | OrderState::Rejected { .. } => Qty(0),
            OrderState::Filled => size,
            OrderState::PartiallyFilled { filled }
            | OrderState::PendingCancel { filled, .. }
            | OrderState::Canceled { filled }
            | OrderState::Expired { filled }
            | OrderState::Vanished { filled } => filled,
        }
    }

    /// Finished: nothing of it can rest on the book any more.
    #[inline]
    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            OrderState::Filled
                | OrderState::Canceled { .. }
                | OrderState::Expired { .. }
                | OrderState::Vanished { .. }
                | OrderState::Rejected { .. }
        )
    }

    /// Working: open and not being cancelled (what the quote rules act on).
    #[inline]
    pub fn is_working(&self) -> bool {
        matches!(
            self,
            OrderState::PendingNew | OrderState::Live | OrderState::PartiallyFilled { .. }
        )
    }

    /// A short name for logs.
    pub const fn name(&self) -> &'static str {
        match self {
            OrderState::PendingNew => "pending_new",
            OrderState::Live => "live",
            OrderState::PartiallyFilled { .. } => "partially_filled",
            OrderState::PendingCancel { .. } => "pending_cancel",
            OrderState::Filled => "filled",
            OrderState::Canceled { .. } => "canceled",
            OrderState::Expired { .. } => "expired",
            OrderState::Vanished { .. } => "vanished",
            OrderState::Rejected { .. } => "rejected",
        }
    }

    /// The venue accepted the order.
    pub fn on_ack(self) -> Result<OrderState, TransitionError> {
        match self {
            OrderState::PendingNew => Ok(OrderState::Live),
            OrderState::PendingCancel {
                acked: false,
                filled,
                via,
            } => Ok(OrderState::PendingCancel {
                acked: true,
                filled,
                via,
            }),
            OrderState::Rejected { .. } => Err(TransitionError::AckAfterReject),
            // A duplicate, or a late ack after a fill or a cancel: nothing new.
            other => Ok(other),
        }
    }

    /// An execution brought the cumulative filled quantity to `cum` (of `size`). The
    /// filled quantity only grows: a `cum` at or below what is known is a duplicate.
    pub fn on_fill(self, cum: Qty, size: Qty) -> Result<OrderState, TransitionError> {
        if cum > size {
            return Err(TransitionError::Overfill);
        }
        if let OrderState::Rejected { .. } = self {
            return Err(TransitionError::FillAfterReject);
        }
        let known = self.filled(size);
        if cum <= known {
            return Ok(self);
        }
        if cum == size {
            return Ok(OrderState::Filled);
        }
        Ok(match self {
            OrderState::PendingNew | OrderState::Live | OrderState::PartiallyFilled { .. } => {
                OrderState::PartiallyFilled { filled: cum }
            }
            OrderState::PendingCancel { via, .. } => OrderState::PendingCancel {
                acked: true,
                filled: cum,
                via,
            },
            OrderState::Canceled { .. } => OrderState::Canceled { filled: cum },
            OrderState::Expired { .. } => OrderState::Expired { filled: cum },
            OrderState::Vanished { .. } => OrderState::Vanished { filled: cum },
            // Unreachable: Filled has known == size ≥ cum, Rejected returned above.
            other => other,
        })
    }

    /// We are sending a cancel for the order.
    pub fn on_cancel_request(self, via: CancelVia) -> Result<OrderState, TransitionError> {
        match self {
            OrderState::PendingNew => Ok(OrderState::PendingCancel {
                acked: false,
                filled: Qty(0),
                via,
            }),
            OrderState::Live => Ok(OrderState::PendingCancel {
                acked: true,
                filled: Qty(0),
                via,
            }),
            OrderState::PartiallyFilled { filled } => Ok(OrderState::PendingCancel {
                acked: true,
                filled,
                via,
            }),
            OrderState::PendingCancel { .. } => Err(TransitionError::AlreadyCanceling),
            _ => Err(TransitionError::NotOpen),
        }
    }

    /// The venue cancelled the order (asked for or not).
    pub fn on_canceled(self) -> Result<OrderState, TransitionError> {
        Ok(match self {
            OrderState::PendingNew | OrderState::Live => OrderState::Canceled { filled: Qty(0) },
            OrderState::PartiallyFilled { filled }
            | OrderState::PendingCancel { filled, .. }
            | OrderState::Expired { filled }
            | OrderState::Vanished { filled } => OrderState::Canceled { filled },
            // Duplicate; a cancel confirmation after a complete fill; a rejected order.
            other @ (OrderState::Canceled { .. }
            | OrderState::Filled
            | OrderState::Rejected { .. }) => other,
        })
    }

    /// The venue refused our cancel with `code`.
    pub fn on_cancel_rejected(self, code: i32) -> Result<OrderState, TransitionError> {
        match self {
            OrderState::PendingCancel { acked, filled, .. } => Ok(
                if code == CODE_UNKNOWN_ORDER || code == CODE_NO_SUCH_ORDER {
                    OrderState::Vanished { filled }
                } else if filled.0 > 0 {
                    OrderState::PartiallyFilled { filled }
                } else if acked {
                    OrderState::Live
                } else {
                    OrderState::PendingNew
                },
            ),
            // No cancel in flight (a duplicate, or it was answered already): nothing new.
            other => Ok(other),
        }
    }

    /// The venue refused the new order with `code`.
    pub fn on_rejected(self, code: i32) -> Result<OrderState, TransitionError> {
        match self {
            OrderState::PendingNew
            | OrderState::PendingCancel {
                acked: false,
                filled: Qty(0),
                ..
            } => Ok(OrderState::Rejected { code }),
            OrderState::Rejected { .. } => Ok(self),
            _ => Err(TransitionError::RejectAfterAck),
        }
    }

    /// The exchange expired the order.
    pub fn on_expired(self) -> Result<OrderState, TransitionError> {
        Ok(match self {
            OrderState::PendingNew | OrderState::Live => OrderState::Expired { filled: Qty(0) },
            OrderState::PartiallyFilled { filled }
            | OrderState::PendingCancel { filled, .. }
            | OrderState::Vanished { filled } => OrderState::Expired { filled },
            other @ (OrderState::Expired { .. }
            | OrderState::Canceled { .. }
            | OrderState::Filled
            | OrderState::Rejected { .. }) => other,
        })
    }
}
