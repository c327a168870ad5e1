//! `Desk`: what every part of live trading's hot side acts on — the `Trader`, the
//! `BinanceVenue`, the `Handoff` to the side thread, and `live.base_target` (the base
//! balance the strategy steers toward, so inventory per the balances = base balance −
//! target, in lots).
//!
//! Hot path. Never allocates, blocks or formats: records and notes leave through the
//! `Handoff` (`try_send`; a full channel drops and counts).

use crate::engine::{TradeRecord, Trader};
use crate::live::notes::LiveNote;
use crate::session::{timer_step, Handoff};
use crate::types::Qty;
use crate::venue::binance::{Balances, BinanceVenue};

/// A request to the exchange (cancel-all, `openOrders.status`, `account.status`)
/// unanswered this long is sent again — or, for an audit, forgotten —, ns.
pub const ANSWER_WAIT_NS: u64 = 3_000_000_000;

/// The trader, its venue, the channels to the side thread and the base target.
pub struct Desk {
    /// Engine, order manager, risk.
    pub(super) trader: Trader,
    /// Binance's WebSocket API: order entry, reports, queries.
    pub(super) venue: BinanceVenue,
    /// The hot ends of the channels to the side thread.
    pub(super) out: Handoff<LiveNote>,
    /// `live.base_target`, atoms of the base asset.
    base_target_atoms: i64,
    /// The symbol's lot, atoms.
    step_atoms: i64,
}

impl Desk {
    /// The desk of a session.
    pub fn new(
        trader: Trader,
        venue: BinanceVenue,
        out: Handoff<LiveNote>,
        base_target_atoms: i64,
        step_atoms: i64,
    ) -> Desk {
        Desk {
            trader,
            venue,
            out,
            base_target_atoms,
            step_atoms,
        }
    }

    /// Hands a note to the side thread (full channel: dropped and counted).
    #[inline]
    pub(super) fn note(&mut self, note: LiveNote) {
        self.out.note(note);
    }

    /// Tells the side thread the inventory the engine just took from the balances (and the
    /// mid it was booked at), so the KPI report's inventory and PnL stay the engine's.
    pub(super) fn send_inventory(&mut self, now_ns: u64) {
        let Some(touch) = self.trader.engine().touch() else {
            return;
        };
        self.out.record(TradeRecord::Inventory {
            ts_ns: now_ns,
            inventory: self.trader.position().inventory,
            mid_x2_ticks: touch.bid.0 + touch.ask.0,
        });
    }

    /// The trader's timer: venue reports, stale-data and kill-switch checks, the
    /// mark-to-market.
    #[inline]
    pub(super) fn timer(&mut self, now_ns: u64) {
        timer_step(&mut self.trader, &mut self.venue, &mut self.out, now_ns);
    }

    /// Inventory per the balances, lots (toward zero: dust below a lot is not inventory).
    pub(super) fn inventory_of(&self, balances: &Balances) -> Qty {
        Qty((balances.base_atoms - self.base_target_atoms) / self.step_atoms)
    }
}
