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

use std::fmt;

use crate::model::{Quote, QuoteLevel};
use crate::risk::{Approved, Exposure, Risk, RiskReject};
use crate::types::{Price, Qty, Side, SymbolSpec, ATOMS_PER_UNIT};

// ---------------------------------------------------------------------------------------
// Capacities (to move to limits.rs)
// ---------------------------------------------------------------------------------------

/// Most orders per side `OrderParams::orders_per_side_max` may allow. One is the normal
/// case; a few allow a new quote while the old one's cancel is in flight.
pub const ORDERS_PER_SIDE_MAX: usize = 4;

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

// ---------------------------------------------------------------------------------------
// Client order ids
// ---------------------------------------------------------------------------------------

/// The session part of our client order ids: 1 to `SESSION_TAG_LEN_MAX` ASCII letters or
/// digits. Different per run (the engine derives it from the start time), so ids are
/// unique across sessions and a stray order can be traced to the run that sent it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionTag {
    bytes: [u8; SESSION_TAG_LEN_MAX],
    len: u8,
}

impl SessionTag {
    /// Validates a tag.
    pub fn new(text: &str) -> Result<SessionTag, IdError> {
        let raw = text.as_bytes();
        if raw.is_empty() {
            return Err(IdError::Empty);
        }
        if raw.len() > SESSION_TAG_LEN_MAX {
            return Err(IdError::TooLong);
        }
        let mut bytes = [0u8; SESSION_TAG_LEN_MAX];
        for (slot, &byte) in bytes.iter_mut().zip(raw) {
            if !byte.is_ascii_alphanumeric() {
                return Err(IdError::InvalidChar);
            }
            *slot = byte;
        }
        Ok(SessionTag {
            bytes,
            len: raw.len() as u8,
        })
    }

    /// A tag from a number (e.g. the start time in seconds): its base-36 digits (0-9a-z),
    /// at most `SESSION_TAG_LEN_MAX` of them (the number is taken modulo 36¹²).
    pub fn from_number(number: u64) -> SessionTag {
        const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let mut scratch = [0u8; SESSION_TAG_LEN_MAX];
        let mut pos = SESSION_TAG_LEN_MAX;
        let mut rest = number;
        loop {
            pos -= 1;
            scratch[pos] = DIGITS[(rest % 36) as usize];
            rest /= 36;
            if rest == 0 || pos == 0 {
                break;
            }
        }
        let len = SESSION_TAG_LEN_MAX - pos;
        let mut bytes = [0u8; SESSION_TAG_LEN_MAX];
        bytes[..len].copy_from_slice(&scratch[pos..]);
        SessionTag {
            bytes,
            len: len as u8,
        }
    }

    /// The tag's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl fmt::Debug for SessionTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = std::str::from_utf8(self.as_bytes()).unwrap_or("?");
        write!(f, "SessionTag({text})")
    }
}

/// Our id of one order: a sequence number, unique within a session (1, 2, 3, … in the
/// order the manager creates orders). On the wire it is `mm<session>-<seq>`, e.g.
/// `mmsa3k2q-42`, which matches Binance's `^[a-zA-Z0-9-_]{1,36}$`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientOrderId(pub u64);

impl ClientOrderId {
    /// Writes the wire form into `out`; returns its length (≤ 35).
    pub fn write_wire(
        &self,
        session: &SessionTag,
        out: &mut [u8; CLIENT_ORDER_ID_LEN_MAX],
    ) -> usize {
        let tag = session.as_bytes();
        out[0] = b'm';
        out[1] = b'm';
        let mut pos = 2;
        out[pos..pos + tag.len()].copy_from_slice(tag);
        pos += tag.len();
        out[pos] = b'-';
        pos += 1;
        let mut digits = [0u8; 20];
        let mut n = 20;
        let mut rest = self.0;
        loop {
            n -= 1;
            digits[n] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        let count = 20 - n;
        out[pos..pos + count].copy_from_slice(&digits[n..]);
        pos + count
    }

    /// Reads an id written by `write_wire` for `session`. Ids of other sessions (or other
    /// clients) are `OtherSession`; anything else that is not exactly our form is refused.
    pub fn parse_wire(text: &[u8], session: &SessionTag) -> Result<ClientOrderId, IdError> {
        if text.is_empty() {
            return Err(IdError::Empty);
        }
        if text.len() > CLIENT_ORDER_ID_LEN_MAX {
            return Err(IdError::TooLong);
        }
        let tag = session.as_bytes();
        let Some(rest) = text.strip_prefix(b"mm") else {
            return Err(IdError::OtherSession);
        };
        let Some(rest) = rest.strip_prefix(tag) else {
            return Err(IdError::OtherSession);
        };
        let Some(digits) = rest.strip_prefix(b"-") else {
            return Err(IdError::OtherSession);
        };
        if digits.is_empty() || (digits.len() > 1 && digits[0] == b'0') {
            return Err(IdError::Malformed);
        }
        let mut value: u64 = 0;
        for &byte in digits {
            if !byte.is_ascii_digit() {
                return Err(IdError::Malformed);
            }
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(byte - b'0')))
                .ok_or(IdError::Malformed)?;
        }
        Ok(ClientOrderId(value))
    }
}

/// Why a session tag or a wire client order id was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdError {
    /// Empty text.
    Empty,
    /// Too long (tag > 12, id > 36 bytes).
    TooLong,
    /// A character other than an ASCII letter or digit in a tag.
    InvalidChar,
    /// Not `mm<our session>-…`: another session's or another client's order.
    OtherSession,
    /// Our prefix, but the sequence number is not a plain decimal u64.
    Malformed,
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdError::Empty => "empty id",
            IdError::TooLong => "id too long",
            IdError::InvalidChar => "session tag may only hold ASCII letters and digits",
            IdError::OtherSession => "not an order id of this session",
            IdError::Malformed => "malformed order sequence number",
        })
    }
}

impl std::error::Error for IdError {}

// ---------------------------------------------------------------------------------------
// Actions and venue events
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// Order state machine
// ---------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------
// Order manager
// ---------------------------------------------------------------------------------------

/// Quote-to-order rules and order rate limits. `Default` holds the documented defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderParams {
    /// Orders open at once per side, 1..=`ORDERS_PER_SIDE_MAX`. Default 1.
    pub orders_per_side_max: usize,
    /// A working order within this many ticks of the target (and of the target's size) is
    /// kept, ticks, ≥ 0. Default 2.
    pub price_tolerance_ticks: i64,
    /// An order younger than this (since it was sent) is not cancelled or replaced unless
    /// its side's target disappeared or risk stopped quoting, ms. Default 500 ms.
    pub min_rest_ms: u64,
    /// New orders (place and cancel-replace) per rolling second, ≥ 1. Default 10.
    pub orders_per_s_max: u32,
    /// New orders per rolling 10 s, 1..=`RATE_WINDOW_MAX`. Default 100 (Binance spot
    /// ORDERS limit; check exchangeInfo `rateLimits`).
    pub orders_per_10s_max: u32,
}

impl Default for OrderParams {
    fn default() -> Self {
        OrderParams {
            orders_per_side_max: 1,
            price_tolerance_ticks: 2,
            min_rest_ms: 500,
            orders_per_s_max: 10,
            orders_per_10s_max: 100,
        }
    }
}

/// Why `OrderParams` was refused (config maps each to its key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderParamsError {
    /// `orders_per_side_max` outside 1..=`ORDERS_PER_SIDE_MAX`.
    OrdersPerSide,
    /// `price_tolerance_ticks` < 0.
    Tolerance,
    /// `orders_per_s_max` is 0.
    PerSecond,
    /// `orders_per_10s_max` outside 1..=`RATE_WINDOW_MAX`.
    PerTenSeconds,
}

impl fmt::Display for OrderParamsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OrderParamsError::OrdersPerSide => {
                write!(
                    f,
                    "orders_per_side_max must be in 1..={ORDERS_PER_SIDE_MAX}"
                )
            }
            OrderParamsError::Tolerance => f.write_str("price_tolerance_ticks must be >= 0"),
            OrderParamsError::PerSecond => f.write_str("orders_per_s_max must be at least 1"),
            OrderParamsError::PerTenSeconds => {
                write!(f, "orders_per_10s_max must be in 1..={RATE_WINDOW_MAX}")
            }
        }
    }
}

impl std::error::Error for OrderParamsError {}

impl OrderParams {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), OrderParamsError> {
        if !(1..=ORDERS_PER_SIDE_MAX).contains(&self.orders_per_side_max) {
            return Err(OrderParamsError::OrdersPerSide);
        }
        if self.price_tolerance_ticks < 0 {
            return Err(OrderParamsError::Tolerance);
        }
        if self.orders_per_s_max == 0 {
            return Err(OrderParamsError::PerSecond);
        }
        if self.orders_per_10s_max == 0 || self.orders_per_10s_max as usize > RATE_WINDOW_MAX {
            return Err(OrderParamsError::PerTenSeconds);
        }
        Ok(())
    }
}

/// One of our orders, as the manager tracks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Order {
    /// Our id.
    pub id: ClientOrderId,
    /// Side.
    pub side: Side,
    /// Limit price, ticks.
    pub price: Price,
    /// Size, lots.
    pub qty: Qty,
    /// When the order was sent (our clock), ns.
    pub sent_ns: u64,
    /// When its state last changed (our clock), ns.
    pub updated_ns: u64,
    /// Where it stands.
    pub state: OrderState,
}

impl Order {
    /// Unfilled quantity, lots.
    #[inline]
    pub fn remaining(&self) -> Qty {
        Qty(self.qty.0 - self.state.filled(self.qty).0)
    }
}

/// Our position from fills since the session started (or since `set_position`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    /// Base asset held, lots (+ long, − short).
    pub inventory: Qty,
    /// Quote currency received minus paid, net of fees, quote atoms.
    pub cash_atoms: i64,
    /// Fees paid (negative: rebates received), quote atoms.
    pub fees_atoms: i64,
    /// Quantity bought, lots.
    pub bought_lots: i64,
    /// Quantity sold, lots.
    pub sold_lots: i64,
}

impl Position {
    /// Mark-to-market value cash + inventory × mid (mid = (bid + ask) / 2), quote atoms.
    /// Fees are already in the cash. Saturates instead of overflowing.
    pub fn mark_to_market_atoms(&self, spec: &SymbolSpec, best_bid: Price, best_ask: Price) -> i64 {
        let mid_x2 = i128::from(best_bid.0) + i128::from(best_ask.0);
        // Exact in i128 up to the final division (truncates toward zero); saturates only
        // for absurd sizes.
        let per_tick_lot = i128::from(spec.tick_atoms) * i128::from(spec.step_atoms);
        let value = i128::from(self.inventory.0)
            .checked_mul(mid_x2)
            .and_then(|v| v.checked_mul(per_tick_lot))
            .map(|v| v / (2 * i128::from(ATOMS_PER_UNIT)));
        match value {
            Some(value) => saturate(i128::from(self.cash_atoms) + value),
            None if (self.inventory.0 < 0) == (mid_x2 < 0) => i64::MAX,
            None => i64::MIN,
        }
    }
}

/// Counters since `new`. KPIs: fill ratio = `fills` / `orders_placed` (or
/// `orders_with_fill` / `orders_placed` for orders rather than executions); cancel ratio =
/// (`cancels_sent` + `replaces_sent`) / `orders_placed` (a replace cancels an order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OrderStats {
    /// `on_quote` calls.
    pub quotes_seen: u64,
    /// New orders sent: `Place` + `CancelReplace`.
    pub orders_placed: u64,
    /// `Place` actions.
    pub places_sent: u64,
    /// `CancelReplace` actions.
    pub replaces_sent: u64,
    /// `Cancel` actions.
    pub cancels_sent: u64,
    /// `CancelAll` actions.
    pub cancel_alls_sent: u64,
    /// Acknowledgements that changed an order's state.
    pub acks: u64,
    /// Fill events that booked quantity.
    pub fills: u64,
    /// Orders that received at least one fill.
    pub orders_with_fill: u64,
    /// Orders completely filled.
    pub orders_filled: u64,
    /// Orders finished by a cancel.
    pub orders_canceled: u64,
    /// Orders expired by the exchange.
    pub orders_expired: u64,
    /// New orders refused by the venue.
    pub rejects: u64,
    /// Cancels refused by the venue (also those that changed nothing: a cancel racing a
    /// complete fill).
    pub cancel_rejects: u64,
    /// Events that changed nothing (duplicates, late acks, cancel-after-fill).
    pub events_no_change: u64,
    /// Events for an id not in the table (another session, or long finished).
    pub events_unknown: u64,
    /// Events the state machine refused (`TransitionError`): a venue bug.
    pub events_refused: u64,
    /// Fills whose quantity differed from the increase of the cumulative quantity (a
    /// missed execution report in between): the increase was booked.
    pub fill_gaps: u64,
    /// Place/replace skipped: a rate window was full (a replace whose old order is more
    /// aggressive than the target then cancels it instead).
    pub rate_limited: u64,
    /// Replace/cancel held back: the order was younger than `min_rest_ms`.
    pub held_min_rest: u64,
    /// Place skipped: the side already had `orders_per_side_max` open orders.
    pub held_side_full: u64,
    /// Place/replace refused by risk, by `RiskReject::index`.
    pub risk_rejects: [u64; RiskReject::COUNT],
    /// Action skipped: no free order slot.
    pub table_full: u64,
    /// Action skipped: the outbox was full.
    pub outbox_full: u64,
}

/// What `on_venue_event` did, for the caller's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventOutcome {
    /// The order changed; `fill_lots` were booked (0 for non-fill events).
    Applied {
        /// The order after the event.
        order: Order,
        /// Quantity booked into the position, lots.
        fill_lots: Qty,
    },
    /// Nothing changed (duplicate or late event).
    NoChange,
    /// No order with this id is tracked.
    Unknown,
    /// The state machine refused the event.
    Refused(TransitionError),
}

/// Desired quotes vs our orders → actions, for one symbol. See the module doc for the
/// rules.
#[derive(Clone, Debug)]
pub struct OrderManager {
    params: OrderParams,
    spec: SymbolSpec,
    min_rest_ns: u64,
    slots: [Option<Order>; ORDER_SLOTS],
    next_seq: u64,
    position: Position,
    limiter: RateLimiter,
    /// Risk was stopped at the last `on_quote` (start: true, so that a fresh manager sends
    /// no CancelAll before it has sent anything).
    stopped_seen: bool,
    stats: OrderStats,
}

impl OrderManager {
    /// An empty manager; the first order gets id 1.
    pub fn new(params: OrderParams, spec: SymbolSpec) -> Result<OrderManager, OrderParamsError> {
        params.validate()?;
        Ok(OrderManager {
            params,
            spec,
            min_rest_ns: params.min_rest_ms.saturating_mul(NS_PER_MS),
            slots: [None; ORDER_SLOTS],
            next_seq: 1,
            position: Position::default(),
            limiter: RateLimiter::new(params.orders_per_s_max, params.orders_per_10s_max),
            stopped_seen: true,
            stats: OrderStats::default(),
        })
    }

    /// The parameters.
    pub fn params(&self) -> &OrderParams {
        &self.params
    }

    /// Position from fills.
    pub fn position(&self) -> &Position {
        &self.position
    }

    /// Replaces the position (start-up reconciliation with the account).
    pub fn set_position(&mut self, position: Position) {
        self.position = position;
    }

    /// Counters since `new`.
    pub fn stats(&self) -> &OrderStats {
        &self.stats
    }

    /// Reconciliation: the exchange has nothing of ours open and the position is taken
    /// from its balances, which already hold every fill of these orders. Every order not
    /// finished here is dropped from the table, so that a report still on its way for one
    /// (a fill, a cancel) is unknown and books nothing a second time. Returns how many.
    pub fn forget_open(&mut self) -> u32 {
        let mut forgotten = 0;
        for slot in self.slots.iter_mut() {
            if slot.is_some_and(|o| !o.state.is_finished()) {
                *slot = None;
                forgotten += 1;
            }
        }
        forgotten
    }

    /// The exchange refused a `CancelAll` we sent (other than "nothing open"): the orders
    /// waiting on it are working again, and the next quote while stopped cancels each.
    pub fn on_cancel_all_refused(&mut self, now_ns: u64, code: i32) {
        for order in self.slots.iter_mut().flatten() {
            if let OrderState::PendingCancel {
                via: CancelVia::All,
                ..
            } = order.state
            {
                if let Ok(next) = order.state.on_cancel_rejected(code) {
                    order.state = next;
                    order.updated_ns = now_ns;
                }
            }
        }
        // Cancel again at the next quote.
        self.stopped_seen = false;
    }

    /// When the longest-waiting cancel was last updated (`None`: no cancel pending).
    pub fn oldest_pending_cancel_ns(&self) -> Option<u64> {
        self.orders()
            .filter(|o| matches!(o.state, OrderState::PendingCancel { .. }))
            .map(|o| o.updated_ns)
            .min()
    }

    /// Every tracked order (open and recently finished), in slot order.
    pub fn orders(&self) -> impl Iterator<Item = &Order> + '_ {
        self.slots.iter().flatten()
    }

    /// The tracked order with this id.
    pub fn order(&self, id: ClientOrderId) -> Option<&Order> {
        self.find(id).and_then(|i| self.slots[i].as_ref())
    }

    /// Orders not finished.
    pub fn open_orders(&self) -> u32 {
        self.orders().filter(|o| !o.state.is_finished()).count() as u32
    }

    /// The exposure risk checks against, at `now_ns`.
    pub fn exposure(&self, now_ns: u64) -> Exposure {
        self.exposure_without(now_ns, None)
    }

    /// Turns a quote into actions (see the module doc).
    #[inline]
    pub fn on_quote(&mut self, now_ns: u64, quote: &Quote, risk: &Risk, out: &mut Outbox) {
        self.on_target_within(
            now_ns,
            quote.bid,
            quote.ask,
            quote.requote_band_ticks,
            risk,
            out,
        );
    }

    /// `on_quote` with the two sides given directly and no re-quote band.
    pub fn on_target(
        &mut self,
        now_ns: u64,
        bid: Option<QuoteLevel>,
        ask: Option<QuoteLevel>,
        risk: &Risk,
        out: &mut Outbox,
    ) {
        self.on_target_within(now_ns, bid, ask, 0, risk, out);
    }

    /// `on_target` keeping any working order within `band_ticks` of its target (or within
    /// `price_tolerance_ticks`, whichever is wider).
    pub fn on_target_within(
        &mut self,
        now_ns: u64,
        bid: Option<QuoteLevel>,
        ask: Option<QuoteLevel>,
        band_ticks: i64,
        risk: &Risk,
        out: &mut Outbox,
    ) {
        self.stats.quotes_seen += 1;
        if risk.stop_reason(now_ns).is_some() {
            if !self.stopped_seen {
                // Nothing open: nothing to cancel (Binance answers -2011 to that).
                if self.open_orders() == 0 || self.cancel_all(now_ns, out) {
                    self.stopped_seen = true;
                }
            } else {
                self.cancel_working(now_ns, None, out);
            }
            return;
        }
        self.stopped_seen = false;
        let tolerance = self
            .params
            .price_tolerance_ticks
            .max(band_ticks)
            .unsigned_abs();
        self.manage_side(now_ns, Side::Buy, bid, tolerance, risk, out);
        self.manage_side(now_ns, Side::Sell, ask, tolerance, risk, out);
    }

    /// Sends one `CancelAll` and marks every working order pending cancel (shutdown, kill
    /// switch). `false` if the outbox had no room (nothing changed). For a lasting stop,
    /// trip or pause the `Risk` instead: then `on_quote` cancels and places nothing more.
    pub fn cancel_all(&mut self, now_ns: u64, out: &mut Outbox) -> bool {
        if !out.push(Action::CancelAll) {
            self.stats.outbox_full += 1;
            return false;
        }
        self.stats.cancel_alls_sent += 1;
        for order in self.slots.iter_mut().flatten() {
            if let Ok(next) = order.state.on_cancel_request(CancelVia::All) {
                order.state = next;
                order.updated_ns = now_ns;
            }
        }
        true
    }

    /// Applies one venue event. Position and cash change here only, on fills.
    pub fn on_venue_event(&mut self, now_ns: u64, event: &VenueEvent) -> EventOutcome {
        let Some(index) = self.find(event.id()) else {
            self.stats.events_unknown += 1;
            return EventOutcome::Unknown;
        };
        let Some(order) = self.slots[index] else {
            self.stats.events_unknown += 1;
            return EventOutcome::Unknown;
        };
        let prev = order.state;
        let result = match *event {
            VenueEvent::Accepted { .. } => prev.on_ack(),
            VenueEvent::Rejected { code, .. } => prev.on_rejected(code),
            VenueEvent::Fill { cum_qty, .. } => prev.on_fill(cum_qty, order.qty),
            VenueEvent::Canceled { .. } => prev.on_canceled(),
            VenueEvent::CancelRejected { code, .. } => prev.on_cancel_rejected(code),
            VenueEvent::Expired { .. } => prev.on_expired(),
        };
        let next = match result {
            Ok(next) => next,
            Err(error) => {
                self.stats.events_refused += 1;
                return EventOutcome::Refused(error);
            }
        };
        if let VenueEvent::CancelRejected { .. } = event {
            self.stats.cancel_rejects += 1;
        }
        if next == prev {
            self.stats.events_no_change += 1;
            return EventOutcome::NoChange;
        }
        let before = prev.filled(order.qty);
        let after = next.filled(order.qty);
        let booked = Qty(after.0 - before.0);
        if let VenueEvent::Fill {
            price,
            qty,
            fee_quote_atoms,
            ..
        } = *event
        {
            if booked.0 > 0 {
                self.book_fill(order.side, price, booked, fee_quote_atoms);
                if booked != qty {
                    self.stats.fill_gaps += 1;
                }
                if before.0 == 0 {
                    self.stats.orders_with_fill += 1;
                }
            }
        }
        match (prev, next) {
            (_, OrderState::Filled) => self.stats.orders_filled += 1,
            (_, OrderState::Canceled { .. }) => self.stats.orders_canceled += 1,
            (_, OrderState::Expired { .. }) => self.stats.orders_expired += 1,
            (_, OrderState::Rejected { .. }) => self.stats.rejects += 1,
            _ => {}
        }
        if let VenueEvent::Accepted { .. } = event {
            self.stats.acks += 1;
        }
        let updated = Order {
            state: next,
            updated_ns: now_ns,
            ..order
        };
        self.slots[index] = Some(updated);
        EventOutcome::Applied {
            order: updated,
            fill_lots: booked,
        }
    }

    /// The caller could not hand `action` to the venue: it is answered locally as refused
    /// (`CODE_NOT_SENT`), so every order leaves its pending state.
    pub fn on_send_failed(&mut self, now_ns: u64, action: &Action) {
        match *action {
            Action::Place { id, .. } => {
                self.on_venue_event(
                    now_ns,
                    &VenueEvent::Rejected {
                        id,
                        code: CODE_NOT_SENT,
                    },
                );
            }
            Action::Cancel { id } => {
                self.on_venue_event(
                    now_ns,
                    &VenueEvent::CancelRejected {
                        id,
                        code: CODE_NOT_SENT,
                    },
                );
            }
            Action::CancelReplace {
                cancel_id, new_id, ..
            } => {
                self.on_venue_event(
                    now_ns,
                    &VenueEvent::CancelRejected {
                        id: cancel_id,
                        code: CODE_NOT_SENT,
                    },
                );
                self.on_venue_event(
                    now_ns,
                    &VenueEvent::Rejected {
                        id: new_id,
                        code: CODE_NOT_SENT,
                    },
                );
            }
            Action::CancelAll => self.on_cancel_all_refused(now_ns, CODE_NOT_SENT),
        }
    }

    // -- quote rules ---------------------------------------------------------------------

    fn manage_side(
        &mut self,
        now_ns: u64,
        side: Side,
        target: Option<QuoteLevel>,
        tolerance: u64,
        risk: &Risk,
        out: &mut Outbox,
    ) {
        let Some(target) = target else {
            self.cancel_working(now_ns, Some(side), out);
            return;
        };
        let keeper = self.oldest_working(side, |o| {
            o.qty == target.qty && o.price.0.abs_diff(target.price.0) <= tolerance
        });
        if let Some(keep) = keeper {
            // Extra working orders on the side (only with orders_per_side_max > 1).
            for index in 0..ORDER_SLOTS {
                if index == keep {
                    continue;
                }
                if let Some(order) = self.slots[index] {
                    if order.side == side && order.state.is_working() {
                        if self.is_resting_long_enough(&order, now_ns) {
                            self.cancel(now_ns, index, CancelVia::Cancel, out);
                        } else {
                            self.stats.held_min_rest += 1;
                        }
                    }
                }
            }
            return;
        }
        if let Some(old) = self.oldest_working(side, |_| true) {
            let Some(order) = self.slots[old] else {
                return;
            };
            if !self.is_resting_long_enough(&order, now_ns) {
                self.stats.held_min_rest += 1;
                return;
            }
            self.replace(now_ns, old, target, risk, out);
            return;
        }
        if self.occupied(side) >= self.params.orders_per_side_max {
            self.stats.held_side_full += 1;
            return;
        }
        self.place(now_ns, side, target, risk, out);
    }

    fn place(
        &mut self,
        now_ns: u64,
        side: Side,
        target: QuoteLevel,
        risk: &Risk,
        out: &mut Outbox,
    ) {
        if out.room() == 0 {
            self.stats.outbox_full += 1;
            return;
        }
        let Some(slot) = self.free_slot() else {
            self.stats.table_full += 1;
            return;
        };
        let exposure = self.exposure_without(now_ns, None);
        let approved = match risk.check(side, target.price, target.qty, &exposure) {
            Ok(approved) => approved,
            Err(reject) => {
                self.stats.risk_rejects[reject.index()] += 1;
                return;
            }
        };
        if !self.limiter.try_acquire(now_ns) {
            self.stats.rate_limited += 1;
            return;
        }
        let id = self.next_id();
        out.push(Action::Place {
            id,
            order: approved,
        });
        self.stats.places_sent += 1;
        self.stats.orders_placed += 1;
        self.slots[slot] = Some(new_order(id, approved, now_ns));
    }

    fn replace(
        &mut self,
        now_ns: u64,
        old: usize,
        target: QuoteLevel,
        risk: &Risk,
        out: &mut Outbox,
    ) {
        let Some(order) = self.slots[old] else {
            return;
        };
        if out.room() == 0 {
            self.stats.outbox_full += 1;
            return;
        }
        let Some(slot) = self.free_slot() else {
            self.stats.table_full += 1;
            return;
        };
        let exposure = self.exposure_without(now_ns, Some(old));
        let approved = match risk.check(order.side, target.price, target.qty, &exposure) {
            Ok(approved) => approved,
            Err(reject) => {
                // The old quote is stale and the new one is not allowed: take it down.
                self.stats.risk_rejects[reject.index()] += 1;
                self.cancel(now_ns, old, CancelVia::Cancel, out);
                return;
            }
        };
        let Ok(cancelling) = order.state.on_cancel_request(CancelVia::Replace) else {
            return;
        };
        if !self.limiter.try_acquire(now_ns) {
            self.stats.rate_limited += 1;
            // A cancel spends no ORDERS token. An order left more aggressive than the
            // target is the one the market would pick off: take it down; a more passive
            // one does no harm and keeps its queue place.
            let too_aggressive = match order.side {
                Side::Buy => order.price > target.price,
                Side::Sell => order.price < target.price,
            };
            if too_aggressive {
                self.cancel(now_ns, old, CancelVia::Cancel, out);
            }
            return;
        }
        let new_id = self.next_id();
        out.push(Action::CancelReplace {
            cancel_id: order.id,
            new_id,
            order: approved,
        });
        self.stats.replaces_sent += 1;
        self.stats.orders_placed += 1;
        self.slots[old] = Some(Order {
            state: cancelling,
            updated_ns: now_ns,
            ..order
        });
        self.slots[slot] = Some(new_order(new_id, approved, now_ns));
    }

    fn cancel(&mut self, now_ns: u64, index: usize, via: CancelVia, out: &mut Outbox) {
        let Some(order) = self.slots[index] else {
            return;
        };
        let Ok(next) = order.state.on_cancel_request(via) else {
            return;
        };
        if !out.push(Action::Cancel { id: order.id }) {
            self.stats.outbox_full += 1;
            return;
        }
        self.stats.cancels_sent += 1;
        self.slots[index] = Some(Order {
            state: next,
            updated_ns: now_ns,
            ..order
        });
    }

    /// Cancels every working order (of one side, or of both).
    fn cancel_working(&mut self, now_ns: u64, side: Option<Side>, out: &mut Outbox) {
        for index in 0..ORDER_SLOTS {
            if let Some(order) = self.slots[index] {
                if order.state.is_working() && side.is_none_or(|s| s == order.side) {
                    self.cancel(now_ns, index, CancelVia::Cancel, out);
                }
            }
        }
    }

    // -- bookkeeping ---------------------------------------------------------------------

    fn book_fill(&mut self, side: Side, price: Price, qty: Qty, fee_quote_atoms: i64) {
        let notional = saturate(self.spec.notional_atoms(price, qty));
        let p = &mut self.position;
        match side {
            Side::Buy => {
                p.inventory.0 = p.inventory.0.saturating_add(qty.0);
                p.bought_lots = p.bought_lots.saturating_add(qty.0);
                p.cash_atoms = p.cash_atoms.saturating_sub(notional);
            }
            Side::Sell => {
                p.inventory.0 = p.inventory.0.saturating_sub(qty.0);
                p.sold_lots = p.sold_lots.saturating_add(qty.0);
                p.cash_atoms = p.cash_atoms.saturating_add(notional);
            }
        }
        p.cash_atoms = p.cash_atoms.saturating_sub(fee_quote_atoms);
        p.fees_atoms = p.fees_atoms.saturating_add(fee_quote_atoms);
        self.stats.fills += 1;
    }

    fn next_id(&mut self) -> ClientOrderId {
        let id = ClientOrderId(self.next_seq);
        self.next_seq = self.next_seq.saturating_add(1);
        id
    }

    fn find(&self, id: ClientOrderId) -> Option<usize> {
        self.slots
            .iter()
            .position(|slot| slot.is_some_and(|o| o.id == id))
    }

    /// An empty slot, else the one of the order finished longest ago.
    fn free_slot(&self) -> Option<usize> {
        let mut oldest: Option<(u64, usize)> = None;
        for (index, slot) in self.slots.iter().enumerate() {
            match slot {
                None => return Some(index),
                Some(order) if order.state.is_finished() => {
                    if oldest.is_none_or(|(ns, _)| order.updated_ns < ns) {
                        oldest = Some((order.updated_ns, index));
                    }
                }
                Some(_) => {}
            }
        }
        oldest.map(|(_, index)| index)
    }

    /// The working order on `side` sent first among those matching `accept`.
    fn oldest_working(&self, side: Side, accept: impl Fn(&Order) -> bool) -> Option<usize> {
        let mut best: Option<(u64, u64, usize)> = None;
        for (index, slot) in self.slots.iter().enumerate() {
            if let Some(order) = slot {
                if order.side == side && order.state.is_working() && accept(order) {
                    let key = (order.sent_ns, order.id.0);
                    if best.is_none_or(|(ns, id, _)| key < (ns, id)) {
                        best = Some((key.0, key.1, index));
                    }
                }
            }
        }
        best.map(|(_, _, index)| index)
    }

    /// Orders holding a place on `side`: working ones, and those being cancelled by a
    /// plain cancel or cancel-all (they may still rest). A replace's cancel leg holds none:
    /// its replacement only exists once it is gone.
    fn occupied(&self, side: Side) -> usize {
        self.orders()
            .filter(|o| o.side == side)
            .filter(|o| match o.state {
                OrderState::PendingCancel { via, .. } => via != CancelVia::Replace,
                state => state.is_working(),
            })
            .count()
    }

    fn is_resting_long_enough(&self, order: &Order, now_ns: u64) -> bool {
        now_ns.saturating_sub(order.sent_ns) >= self.min_rest_ns
    }

    fn exposure_without(&self, now_ns: u64, except: Option<usize>) -> Exposure {
        let mut exposure = Exposure {
            now_ns,
            inventory: self.position.inventory,
            ..Exposure::default()
        };
        for (index, slot) in self.slots.iter().enumerate() {
            let Some(order) = slot else {
                continue;
            };
            if Some(index) == except || order.state.is_finished() {
                continue;
            }
            exposure.open_orders += 1;
            let remaining = order.remaining().0;
            match order.side {
                Side::Buy => exposure.open_buy_lots += remaining,
                Side::Sell => exposure.open_sell_lots += remaining,
            }
        }
        exposure
    }
}

fn new_order(id: ClientOrderId, approved: Approved, now_ns: u64) -> Order {
    Order {
        id,
        side: approved.side(),
        price: approved.price(),
        qty: approved.qty(),
        sent_ns: now_ns,
        updated_ns: now_ns,
        state: OrderState::PendingNew,
    }
}

fn saturate(value: i128) -> i64 {
    i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX })
}

// ---------------------------------------------------------------------------------------
// Rate limits
// ---------------------------------------------------------------------------------------

/// Sliding windows of new-order send times: at most `per_s` in any rolling second and
/// `per_10s` in any rolling 10 s. A sliding window is stricter than the exchange's fixed
/// windows: every fixed window's orders lie within 10 s before its last one, which saw
/// them all.
#[derive(Clone, Debug)]
struct RateLimiter {
    /// Send times (ns), a ring; the oldest at `head`.
    times: [u64; RATE_WINDOW_MAX],
    head: usize,
    len: usize,
    per_s: usize,
    per_10s: usize,
}

impl RateLimiter {
    fn new(per_s: u32, per_10s: u32) -> RateLimiter {
        RateLimiter {
            times: [0; RATE_WINDOW_MAX],
            head: 0,
            len: 0,
            per_s: per_s as usize,
            per_10s: (per_10s as usize).min(RATE_WINDOW_MAX),
        }
    }

    /// Takes one token at `now_ns` if both windows have room.
    fn try_acquire(&mut self, now_ns: u64) -> bool {
        // Forget sends 10 s old or older.
        while self.len > 0 && now_ns.saturating_sub(self.times[self.head]) >= 10 * NS_PER_S {
            self.head = (self.head + 1) % RATE_WINDOW_MAX;
            self.len -= 1;
        }
        if self.len >= self.per_10s || self.len >= RATE_WINDOW_MAX {
            return false;
        }
        // Sends in the last second: walk back from the newest, at most per_s steps.
        let mut in_last_s = 0;
        for back in 0..self.len {
            let at = (self.head + self.len - 1 - back) % RATE_WINDOW_MAX;
            if now_ns.saturating_sub(self.times[at]) >= NS_PER_S {
                break;
            }
            in_last_s += 1;
            if in_last_s >= self.per_s {
                return false;
            }
        }
        let tail = (self.head + self.len) % RATE_WINDOW_MAX;
        self.times[tail] = now_ns;
        self.len += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::risk::{RiskLimits, StopReason};
    use crate::types::Symbol;
    use proptest::prelude::*;

    const MS: u64 = 1_000_000;
    const T0: u64 = 1_000 * NS_PER_S;

    fn spec() -> SymbolSpec {
        SymbolSpec::from_decimals(Symbol::new("BTCUSDT").unwrap(), "0.01", "0.00001", "5").unwrap()
    }

    fn risk() -> Risk {
        let mut r = Risk::new(RiskLimits::default(), spec()).unwrap();
        r.on_market_data(T0);
        r
    }

    fn manager(params: OrderParams) -> OrderManager {
        OrderManager::new(params, spec()).unwrap()
    }

    fn level(price: i64, qty: i64) -> Option<QuoteLevel> {
        Some(QuoteLevel {
            price: Price(price),
            qty: Qty(qty),
        })
    }

    fn run(
        m: &mut OrderManager,
        now: u64,
        bid: Option<QuoteLevel>,
        ask: Option<QuoteLevel>,
        r: &Risk,
    ) -> Vec<Action> {
        let mut out = Outbox::new();
        m.on_target(now, bid, ask, r, &mut out);
        out.as_slice().to_vec()
    }

    fn ack(m: &mut OrderManager, id: ClientOrderId) {
        m.on_venue_event(T0, &VenueEvent::Accepted { id, exch_ts_ms: 0 });
    }

    fn fill(id: u64, price: i64, qty: i64, cum: i64, fee: i64) -> VenueEvent {
        VenueEvent::Fill {
            id: ClientOrderId(id),
            price: Price(price),
            qty: Qty(qty),
            cum_qty: Qty(cum),
            fee_quote_atoms: fee,
            is_maker: true,
            exch_ts_ms: 0,
            trade_id: 1,
        }
    }

    fn placed_id(action: &Action) -> ClientOrderId {
        match *action {
            Action::Place { id, .. } => id,
            Action::CancelReplace { new_id, .. } => new_id,
            other => panic!("not a new order: {other:?}"),
        }
    }

    // -- re-quote band --------------------------------------------------------------------

    #[test]
    fn an_order_inside_the_requote_band_keeps_its_place() {
        let r = risk();
        let mut m = manager(OrderParams::default()); // tolerance 2 ticks, min rest 500 ms
        let first = run(&mut m, T0, level(6_000_000, 100), None, &r);
        let id = placed_id(&first[0]);
        ack(&mut m, id);
        let later = T0 + 1_000 * MS;
        // The target moved 50 ticks: with a 60-tick band the order stays (no action) …
        let mut out = Outbox::new();
        m.on_target_within(later, level(6_000_050, 100), None, 60, &r, &mut out);
        assert!(out.is_empty(), "{:?}", out.as_slice());
        // … either way (a more aggressive order within the band is kept too) …
        m.on_target_within(later, level(5_999_950, 100), None, 60, &r, &mut out);
        assert!(out.is_empty(), "{:?}", out.as_slice());
        // … and without the band (the 2-tick tolerance alone) it is replaced.
        m.on_target_within(later, level(6_000_050, 100), None, 0, &r, &mut out);
        assert!(
            matches!(out.as_slice(), [Action::CancelReplace { .. }]),
            "{:?}",
            out.as_slice()
        );
    }

    // -- ids -----------------------------------------------------------------------------

    #[test]
    fn client_order_ids_round_trip_and_match_binance_pattern() {
        let tag = SessionTag::new("sA3k2q").unwrap();
        let mut buf = [0u8; CLIENT_ORDER_ID_LEN_MAX];
        for seq in [0u64, 1, 42, 999_999, u64::MAX] {
            let len = ClientOrderId(seq).write_wire(&tag, &mut buf);
            let text = &buf[..len];
            assert!(len <= CLIENT_ORDER_ID_LEN_MAX);
            assert!(text
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_'));
            assert_eq!(
                ClientOrderId::parse_wire(text, &tag),
                Ok(ClientOrderId(seq))
            );
        }
        let len = ClientOrderId(42).write_wire(&tag, &mut buf);
        assert_eq!(&buf[..len], b"mmsA3k2q-42");
        let long = SessionTag::from_number(u64::MAX);
        assert_eq!(long.as_bytes().len(), SESSION_TAG_LEN_MAX);
        let len = ClientOrderId(u64::MAX).write_wire(&long, &mut buf);
        assert_eq!(len, 35);
        assert_eq!(SessionTag::from_number(0).as_bytes(), b"0");
        assert_eq!(SessionTag::from_number(36 * 36 + 35).as_bytes(), b"10z");
    }

    #[test]
    fn foreign_and_malformed_ids_are_refused() {
        let tag = SessionTag::new("abc").unwrap();
        let parse = |s: &str| ClientOrderId::parse_wire(s.as_bytes(), &tag);
        assert_eq!(parse("mmabd-1"), Err(IdError::OtherSession));
        assert_eq!(parse("web_abc123"), Err(IdError::OtherSession));
        assert_eq!(parse("mmabc1"), Err(IdError::OtherSession));
        assert_eq!(parse("mmabc-"), Err(IdError::Malformed));
        assert_eq!(parse("mmabc-01"), Err(IdError::Malformed));
        assert_eq!(parse("mmabc-1x"), Err(IdError::Malformed));
        assert_eq!(parse("mmabc-18446744073709551616"), Err(IdError::Malformed));
        assert_eq!(parse(""), Err(IdError::Empty));
        assert_eq!(SessionTag::new("a-b"), Err(IdError::InvalidChar));
        assert_eq!(SessionTag::new("abcdefghijklm"), Err(IdError::TooLong));
    }

    // -- reconciliation ------------------------------------------------------------------

    #[test]
    fn forgotten_orders_book_no_late_fill() {
        let mut m = manager(OrderParams::default());
        let r = risk();
        let placed = run(&mut m, T0, level(6_000_000, 100), level(6_000_100, 100), &r);
        assert_eq!(placed.len(), 2);
        let (bid, ask) = (placed_id(&placed[0]), placed_id(&placed[1]));
        ack(&mut m, bid);
        m.on_venue_event(T0, &fill(bid.0, 6_000_000, 40, 40, 0));
        assert_eq!(m.position().inventory, Qty(40));
        // Reconciliation: the balances hold every fill; both orders leave the table.
        assert_eq!(m.forget_open(), 2);
        assert_eq!(m.open_orders(), 0);
        assert!(m.order(ask).is_none());
        // A report of a fill made before the cancel-all, arriving late, books nothing.
        let out = m.on_venue_event(T0, &fill(bid.0, 6_000_000, 60, 100, 0));
        assert_eq!(out, EventOutcome::Unknown);
        assert_eq!(m.position().inventory, Qty(40));
        assert_eq!(m.forget_open(), 0, "nothing left to forget");
    }

    #[test]
    fn a_refused_cancel_all_cancels_again_order_by_order() {
        let mut m = manager(OrderParams::default());
        let mut r = risk();
        let placed = run(&mut m, T0, level(6_000_000, 100), level(6_000_100, 100), &r);
        for a in &placed {
            ack(&mut m, placed_id(a));
        }
        r.pause(StopReason::StaleData);
        let t = T0 + 10 * MS;
        assert_eq!(
            run(&mut m, t, level(6_000_000, 100), level(6_000_100, 100), &r),
            [Action::CancelAll]
        );
        assert_eq!(m.oldest_pending_cancel_ns(), Some(t));
        // The exchange refused it (not -2011): the orders are working again...
        m.on_cancel_all_refused(t + MS, -1001);
        assert_eq!(m.oldest_pending_cancel_ns(), None);
        assert_eq!(m.open_orders(), 2);
        // ...and the next quote while stopped cancels them again.
        let again = run(
            &mut m,
            t + 2 * MS,
            level(6_000_000, 100),
            level(6_000_100, 100),
            &r,
        );
        assert!(!again.is_empty(), "cancels again");
        assert!(again
            .iter()
            .all(|a| matches!(a, Action::CancelAll | Action::Cancel { .. })));
        assert_eq!(m.oldest_pending_cancel_ns(), Some(t + 2 * MS));
    }

    // -- state machine -------------------------------------------------------------------

    const SIZE: Qty = Qty(10);

    #[test]
    fn happy_path() {
        let s = OrderState::PendingNew.on_ack().unwrap();
        assert_eq!(s, OrderState::Live);
        let s = s.on_fill(Qty(4), SIZE).unwrap();
        assert_eq!(s, OrderState::PartiallyFilled { filled: Qty(4) });
        let s = s.on_fill(Qty(10), SIZE).unwrap();
        assert_eq!(s, OrderState::Filled);
    }

    #[test]
    fn fill_before_ack_then_late_ack() {
        let s = OrderState::PendingNew.on_fill(Qty(3), SIZE).unwrap();
        assert_eq!(s, OrderState::PartiallyFilled { filled: Qty(3) });
        assert_eq!(s.on_ack(), Ok(s));
        let s = OrderState::PendingNew.on_fill(SIZE, SIZE).unwrap();
        assert_eq!(s.on_ack(), Ok(OrderState::Filled));
    }

    #[test]
    fn cancel_ack_after_full_fill_is_ignored() {
        let s = OrderState::Live
            .on_cancel_request(CancelVia::Cancel)
            .unwrap()
            .on_fill(SIZE, SIZE)
            .unwrap();
        assert_eq!(s, OrderState::Filled);
        assert_eq!(s.on_canceled(), Ok(OrderState::Filled));
        assert_eq!(s.on_cancel_rejected(-2011), Ok(OrderState::Filled));
    }

    #[test]
    fn fill_after_cancel_request_and_after_cancel_still_counts() {
        let s = OrderState::Live
            .on_cancel_request(CancelVia::Cancel)
            .unwrap();
        let s = s.on_fill(Qty(2), SIZE).unwrap();
        assert_eq!(
            s,
            OrderState::PendingCancel {
                acked: true,
                filled: Qty(2),
                via: CancelVia::Cancel
            }
        );
        let s = s.on_canceled().unwrap();
        assert_eq!(s, OrderState::Canceled { filled: Qty(2) });
        // A fill report that arrives after the cancel confirmation.
        let s = s.on_fill(Qty(5), SIZE).unwrap();
        assert_eq!(s, OrderState::Canceled { filled: Qty(5) });
        assert_eq!(s.filled(SIZE), Qty(5));
    }

    #[test]
    fn duplicates_are_idempotent() {
        let s = OrderState::PendingNew.on_ack().unwrap();
        assert_eq!(s.on_ack(), Ok(s));
        let s = s.on_fill(Qty(4), SIZE).unwrap();
        assert_eq!(s.on_fill(Qty(4), SIZE), Ok(s));
        assert_eq!(s.on_fill(Qty(3), SIZE), Ok(s));
        let c = s.on_canceled().unwrap();
        assert_eq!(c.on_canceled(), Ok(c));
        let r = OrderState::PendingNew.on_rejected(-2010).unwrap();
        assert_eq!(r.on_rejected(-2010), Ok(r));
    }

    #[test]
    fn cancel_rejects_go_back_or_vanish() {
        let pc = OrderState::PartiallyFilled { filled: Qty(3) }
            .on_cancel_request(CancelVia::Cancel)
            .unwrap();
        assert_eq!(
            pc.on_cancel_rejected(-1003),
            Ok(OrderState::PartiallyFilled { filled: Qty(3) })
        );
        assert_eq!(
            pc.on_cancel_rejected(CODE_UNKNOWN_ORDER),
            Ok(OrderState::Vanished { filled: Qty(3) })
        );
        let pn = OrderState::PendingNew
            .on_cancel_request(CancelVia::All)
            .unwrap();
        assert_eq!(
            pn.on_cancel_rejected(CODE_NOT_SENT),
            Ok(OrderState::PendingNew)
        );
        // A vanished order's fill report completes it.
        let v = pc.on_cancel_rejected(-2011).unwrap();
        assert_eq!(v.on_fill(SIZE, SIZE), Ok(OrderState::Filled));
        // A rejected order that we had asked to cancel (cancel-all before the reject).
        assert_eq!(
            pn.on_rejected(-2010),
            Ok(OrderState::Rejected { code: -2010 })
        );
    }

    #[test]
    fn impossible_events_are_errors() {
        let r = OrderState::Rejected { code: -2010 };
        assert_eq!(r.on_ack(), Err(TransitionError::AckAfterReject));
        assert_eq!(
            r.on_fill(Qty(1), SIZE),
            Err(TransitionError::FillAfterReject)
        );
        assert_eq!(
            OrderState::Live.on_rejected(-2010),
            Err(TransitionError::RejectAfterAck)
        );
        assert_eq!(
            OrderState::Live.on_fill(Qty(11), SIZE),
            Err(TransitionError::Overfill)
        );
        assert_eq!(
            OrderState::Filled.on_cancel_request(CancelVia::Cancel),
            Err(TransitionError::NotOpen)
        );
        let pc = OrderState::Live
            .on_cancel_request(CancelVia::Cancel)
            .unwrap();
        assert_eq!(
            pc.on_cancel_request(CancelVia::All),
            Err(TransitionError::AlreadyCanceling)
        );
    }

    // -- manager -------------------------------------------------------------------------

    #[test]
    fn places_both_sides_then_keeps_them_within_tolerance() {
        let r = risk();
        let mut m = manager(OrderParams::default());
        let a = run(&mut m, T0, level(6_000_000, 100), level(6_000_100, 100), &r);
        assert_eq!(a.len(), 2);
        assert!(matches!(a[0], Action::Place { order, .. } if order.side() == Side::Buy));
        assert!(matches!(a[1], Action::Place { order, .. } if order.side() == Side::Sell));
        ack(&mut m, placed_id(&a[0]));
        ack(&mut m, placed_id(&a[1]));
        // Long after min rest: targets 2 ticks away (= tolerance) change nothing.
        let later = T0 + NS_PER_S;
        let a = run(
            &mut m,
            later,
            level(6_000_002, 100),
            level(6_000_098, 100),
            &r,
        );
        assert!(a.is_empty(), "{a:?}");
        // 3 ticks away: replace.
        let a = run(
            &mut m,
            later,
            level(6_000_003, 100),
            level(6_000_100, 100),
            &r,
        );
        assert_eq!(a.len(), 1);
        match a[0] {
            Action::CancelReplace {
                cancel_id,
                new_id,
                order,
            } => {
                assert_eq!(cancel_id, ClientOrderId(1));
                assert_eq!(new_id, ClientOrderId(3));
                assert_eq!(order.price(), Price(6_000_003));
            }
            other => panic!("{other:?}"),
        }
        // A size change inside the price tolerance is a replace too.
        let a = run(
            &mut m,
            later,
            level(6_000_003, 100),
            level(6_000_100, 200),
            &r,
        );
        assert!(matches!(
            a[..],
            [Action::CancelReplace {
                cancel_id: ClientOrderId(2),
                ..
            }]
        ));
        assert_eq!(m.stats().orders_placed, 4);
        assert_eq!(m.stats().replaces_sent, 2);
    }

    #[test]
    fn min_rest_time_holds_replacements_but_not_disappearing_targets() {
        let r = risk();
        let mut m = manager(OrderParams::default()); // 500 ms
        let a = run(&mut m, T0, level(6_000_000, 100), level(6_000_100, 100), &r);
        assert_eq!(a.len(), 2);
        // 499 ms later: new prices, but too young to replace.
        let a = run(
            &mut m,
            T0 + 499 * MS,
            level(6_000_050, 100),
            level(6_000_150, 100),
            &r,
        );
        assert!(a.is_empty());
        assert_eq!(m.stats().held_min_rest, 2);
        // The ask target disappears: cancelled at once, however young.
        let a = run(&mut m, T0 + 499 * MS, level(6_000_050, 100), None, &r);
        assert_eq!(
            a,
            vec![Action::Cancel {
                id: ClientOrderId(2)
            }]
        );
        // At 500 ms the bid is replaced; the ask side waits for its cancel (1 per side).
        let a = run(
            &mut m,
            T0 + 500 * MS,
            level(6_000_050, 100),
            level(6_000_150, 100),
            &r,
        );
        assert!(matches!(
            a[..],
            [Action::CancelReplace {
                cancel_id: ClientOrderId(1),
                ..
            }]
        ));
        assert_eq!(m.stats().held_side_full, 1);
        m.on_venue_event(
            T0,
            &VenueEvent::Canceled {
                id: ClientOrderId(2),
            },
        );
        let a = run(
            &mut m,
            T0 + 501 * MS,
            level(6_000_050, 100),
            level(6_000_150, 100),
            &r,
        );
        assert!(matches!(a[..], [Action::Place { order, .. }] if order.side() == Side::Sell));
    }

    #[test]
    fn kill_switch_sends_cancel_all_once_and_nothing_after() {
        let mut r = risk();
        let mut m = manager(OrderParams::default());
        // A fresh manager under a stopped risk sends nothing.
        let stale = Risk::new(RiskLimits::default(), spec()).unwrap();
        assert!(run(&mut m, T0, level(6_000_000, 100), None, &stale).is_empty());
        let a = run(&mut m, T0, level(6_000_000, 100), level(6_000_100, 100), &r);
        assert_eq!(a.len(), 2);
        ack(&mut m, ClientOrderId(1));
        r.trip(StopReason::MaxLoss);
        let a = run(
            &mut m,
            T0 + MS,
            level(6_000_000, 100),
            level(6_000_100, 100),
            &r,
        );
        assert_eq!(a, vec![Action::CancelAll]);
        for i in 2..10 {
            let a = run(
                &mut m,
                T0 + i * MS,
                level(6_000_000, 100),
                level(6_000_100, 100),
                &r,
            );
            assert!(a.is_empty());
        }
        assert_eq!(m.stats().cancel_alls_sent, 1);
        assert!(m.orders().all(|o| matches!(
            o.state,
            OrderState::PendingCancel {
                via: CancelVia::All,
                ..
            }
        )));
        // A transient cancel reject makes an order working again: cancelled on its own.
        m.on_venue_event(
            T0,
            &VenueEvent::CancelRejected {
                id: ClientOrderId(1),
                code: -1003,
            },
        );
        let a = run(&mut m, T0 + 20 * MS, level(6_000_000, 100), None, &r);
        assert_eq!(
            a,
            vec![Action::Cancel {
                id: ClientOrderId(1)
            }]
        );
        m.on_venue_event(
            T0,
            &VenueEvent::Canceled {
                id: ClientOrderId(1),
            },
        );
        m.on_venue_event(
            T0,
            &VenueEvent::Canceled {
                id: ClientOrderId(2),
            },
        );
        assert_eq!(m.open_orders(), 0);
    }

    #[test]
    fn pause_and_resume_cancel_all_per_stop() {
        let mut r = risk();
        let mut m = manager(OrderParams::default());
        assert_eq!(run(&mut m, T0, level(6_000_000, 100), None, &r).len(), 1);
        r.pause(StopReason::VenueDisconnected);
        assert_eq!(
            run(&mut m, T0 + MS, level(6_000_000, 100), None, &r),
            vec![Action::CancelAll]
        );
        m.on_venue_event(
            T0,
            &VenueEvent::Canceled {
                id: ClientOrderId(1),
            },
        );
        r.resume(StopReason::VenueDisconnected);
        let a = run(&mut m, T0 + 2 * MS, level(6_000_000, 100), None, &r);
        assert!(matches!(
            a[..],
            [Action::Place {
                id: ClientOrderId(2),
                ..
            }]
        ));
        // Stale data stops too (5 s without data).
        let a = run(&mut m, T0 + 6 * NS_PER_S, level(6_000_000, 100), None, &r);
        assert_eq!(a, vec![Action::CancelAll]);
    }

    #[test]
    fn risk_refusal_of_a_replacement_cancels_the_old_order() {
        let r = risk();
        let mut m = manager(OrderParams::default());
        run(&mut m, T0, level(6_000_000, 100), None, &r);
        ack(&mut m, ClientOrderId(1));
        // The new target is worth more than 1,000 USDT.
        let a = run(&mut m, T0 + NS_PER_S, level(6_000_000, 2_000), None, &r);
        assert_eq!(
            a,
            vec![Action::Cancel {
                id: ClientOrderId(1)
            }]
        );
        assert_eq!(
            m.stats().risk_rejects[RiskReject::AboveMaxNotional.index()],
            1
        );
    }

    #[test]
    fn accounting_matches_a_hand_computation() {
        let r = risk();
        let mut m = manager(OrderParams::default());
        run(&mut m, T0, level(6_000_000, 100), level(6_000_200, 100), &r);
        // Bid (id 1): 40 lots at 60,000.00, fee 0.024 USDT; then a duplicate; then 60 more
        // reported before the ack, fee 0.036.
        m.on_venue_event(T0, &fill(1, 6_000_000, 40, 40, 2_400_000));
        assert_eq!(
            m.on_venue_event(T0, &fill(1, 6_000_000, 40, 40, 2_400_000)),
            EventOutcome::NoChange
        );
        m.on_venue_event(T0, &fill(1, 6_000_000, 60, 100, 3_600_000));
        ack(&mut m, ClientOrderId(1));
        // Ask (id 2): 30 lots at 60,002.00, rebate 0.01 USDT.
        m.on_venue_event(T0, &fill(2, 6_000_200, 30, 30, -1_000_000));
        let p = *m.position();
        // Bought 0.001 BTC × 60,000 = 60 USDT; sold 0.0003 × 60,002 = 18.0006 USDT.
        assert_eq!(p.inventory, Qty(70));
        assert_eq!(p.bought_lots, 100);
        assert_eq!(p.sold_lots, 30);
        assert_eq!(p.fees_atoms, 2_400_000 + 3_600_000 - 1_000_000);
        let cash = -6_000_000_000 + 1_800_060_000 - 5_000_000;
        assert_eq!(p.cash_atoms, cash);
        // Marked at mid 60,001.00: 0.0007 × 60,001 = 42.0007 USDT.
        let mtm = p.mark_to_market_atoms(&spec(), Price(6_000_000), Price(6_000_200));
        assert_eq!(mtm, cash + 4_200_070_000);
        assert_eq!(m.stats().fills, 3);
        assert_eq!(m.stats().orders_filled, 1);
        assert_eq!(m.stats().orders_with_fill, 2);
        assert_eq!(m.stats().events_no_change, 2); // the duplicate fill and the late ack
    }

    #[test]
    fn a_gap_in_fill_reports_books_the_cumulative_increase() {
        let r = risk();
        let mut m = manager(OrderParams::default());
        run(&mut m, T0, level(6_000_000, 100), None, &r);
        m.on_venue_event(T0, &fill(1, 6_000_000, 10, 50, 0)); // the 40 before were missed
        assert_eq!(m.position().inventory, Qty(50));
        assert_eq!(m.stats().fill_gaps, 1);
        // The missed report arrives late: nothing more is booked.
        m.on_venue_event(T0, &fill(1, 6_000_000, 40, 40, 0));
        assert_eq!(m.position().inventory, Qty(50));
    }

    #[test]
    fn unknown_and_refused_events_are_counted() {
        let r = risk();
        let mut m = manager(OrderParams::default());
        assert_eq!(
            m.on_venue_event(T0, &fill(99, 1, 1, 1, 0)),
            EventOutcome::Unknown
        );
        run(&mut m, T0, level(6_000_000, 100), None, &r);
        m.on_venue_event(
            T0,
            &VenueEvent::Rejected {
                id: ClientOrderId(1),
                code: -2010,
            },
        );
        assert_eq!(
            m.on_venue_event(T0, &fill(1, 6_000_000, 1, 1, 0)),
            EventOutcome::Refused(TransitionError::FillAfterReject)
        );
        assert_eq!(m.position().inventory, Qty(0));
        assert_eq!(m.stats().rejects, 1);
        assert_eq!(m.stats().events_unknown, 1);
        assert_eq!(m.stats().events_refused, 1);
    }

    #[test]
    fn send_failure_is_answered_locally() {
        let r = risk();
        let mut m = manager(OrderParams::default());
        let a = run(&mut m, T0, level(6_000_000, 100), None, &r);
        m.on_send_failed(T0, &a[0]);
        assert_eq!(
            m.order(ClientOrderId(1)).unwrap().state,
            OrderState::Rejected {
                code: CODE_NOT_SENT
            }
        );
        let a = run(&mut m, T0, level(6_000_000, 100), None, &r);
        assert!(matches!(
            a[..],
            [Action::Place {
                id: ClientOrderId(2),
                ..
            }]
        ));
    }

    #[test]
    fn finished_orders_are_recycled() {
        let r = risk();
        let params = OrderParams {
            min_rest_ms: 0,
            orders_per_s_max: 1_000,
            orders_per_10s_max: 1_000,
            ..OrderParams::default()
        };
        let mut m = manager(params);
        for i in 0..(3 * ORDER_SLOTS as i64) {
            let a = run(
                &mut m,
                T0 + i as u64 * MS,
                level(6_000_000 + 10 * i, 100),
                None,
                &r,
            );
            assert_eq!(a.len(), 1, "step {i}: {a:?}");
            if let Action::CancelReplace { cancel_id, .. } = a[0] {
                m.on_venue_event(T0, &VenueEvent::Canceled { id: cancel_id });
            }
        }
        assert_eq!(m.stats().table_full, 0);
        assert_eq!(m.open_orders(), 1);
    }

    #[test]
    fn rate_limited_replace_cancels_only_a_too_aggressive_order() {
        let r = risk();
        let params = OrderParams {
            min_rest_ms: 0,
            orders_per_s_max: 1,
            ..OrderParams::default()
        };
        let mut m = manager(params);
        assert_eq!(run(&mut m, T0, level(6_000_000, 100), None, &r).len(), 1);
        // The target moved up: the old bid is more passive, kept.
        let a = run(&mut m, T0 + MS, level(6_000_010, 100), None, &r);
        assert!(a.is_empty());
        // The target moved down: the old bid is too aggressive, cancelled.
        let a = run(&mut m, T0 + 2 * MS, level(5_999_990, 100), None, &r);
        assert_eq!(
            a,
            vec![Action::Cancel {
                id: ClientOrderId(1)
            }]
        );
        assert_eq!(m.stats().rate_limited, 2);
        assert_eq!(m.stats().orders_placed, 1);
    }

    #[test]
    fn rate_limiter_windows() {
        let mut l = RateLimiter::new(2, 3);
        assert!(l.try_acquire(0));
        assert!(l.try_acquire(1));
        assert!(!l.try_acquire(NS_PER_S - 1)); // 3rd in one second
        assert!(l.try_acquire(NS_PER_S)); // the first left the 1 s window
        assert!(!l.try_acquire(5 * NS_PER_S)); // 4th in 10 s
        assert!(l.try_acquire(10 * NS_PER_S)); // the first left the 10 s window
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Random quotes (prices, one side vanishing), acks, cancels and rejects over
        /// minutes: no rolling 1 s or 10 s window ever holds more new orders than allowed.
        #[test]
        fn rate_limits_are_never_exceeded(
            steps in proptest::collection::vec(
                (0u64..300, -50i64..50, -50i64..50, 0u8..8),
                200..2_000,
            ),
            per_s in 1u32..8,
            per_10s in 1u32..40,
        ) {
            let r = {
                let limits = RiskLimits {
                    stale_data_ms: u64::MAX / 2_000_000,
                    ..RiskLimits::default()
                };
                let mut r = Risk::new(limits, spec()).unwrap();
                r.on_market_data(0);
                r
            };
            let params = OrderParams {
                price_tolerance_ticks: 0,
                min_rest_ms: 0,
                orders_per_s_max: per_s,
                orders_per_10s_max: per_10s,
                ..OrderParams::default()
            };
            let mut m = manager(params);
            let mut now = T0;
            let mut sent: Vec<u64> = Vec::new();
            for (dt_ms, bid_move, ask_move, what) in steps {
                now += dt_ms * MS;
                let bid = level(6_000_000 + bid_move, 100);
                let ask = if what == 7 { None } else { level(6_000_200 + ask_move, 100) };
                let mut out = Outbox::new();
                m.on_target(now, bid, ask, &r, &mut out);
                for action in out.as_slice() {
                    match *action {
                        Action::Place { id, .. } => {
                            sent.push(now);
                            if what % 2 == 0 {
                                let ack = VenueEvent::Accepted { id, exch_ts_ms: 0 };
                                m.on_venue_event(now, &ack);
                            }
                        }
                        Action::CancelReplace { cancel_id, new_id, .. } => {
                            sent.push(now);
                            m.on_venue_event(now, &VenueEvent::Canceled { id: cancel_id });
                            if what == 3 {
                                let reject = VenueEvent::Rejected { id: new_id, code: -2010 };
                                m.on_venue_event(now, &reject);
                            }
                        }
                        Action::Cancel { id } => {
                            m.on_venue_event(now, &VenueEvent::Canceled { id });
                        }
                        Action::CancelAll => {}
                    }
                }
            }
            for (i, &t) in sent.iter().enumerate() {
                let in_1s = sent[i..].iter().take_while(|&&u| u - t < NS_PER_S).count();
                let in_10s = sent[i..].iter().take_while(|&&u| u - t < 10 * NS_PER_S).count();
                prop_assert!(in_1s <= per_s as usize, "{} orders within 1 s from {}", in_1s, t);
                prop_assert!(
                    in_10s <= per_10s as usize,
                    "{} orders within 10 s from {}",
                    in_10s,
                    t
                );
            }
            prop_assert_eq!(m.stats().orders_placed as usize, sent.len());
        }
    }
}
