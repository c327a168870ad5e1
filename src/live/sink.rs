//! `LiveSink`: the hot side of live trading — the `Trader` against `BinanceVenue`, whose
//! WebSocket API connection the hot thread drives beside the market data on one mio `Poll`
//! (`order_entry::ORDER_TOKEN`, and `ORDER_STANDBY_TOKEN` while it rotates). Each loop turn it polls the order connection, turns its
//! events into notes, pauses quoting for a lost order connection or a 429/418 back-off
//! (during which nothing but cancels, after a -1015, is sent), runs the reconciliation
//! (`reconcile`) until trading and the audits (`audit`) while trading, then the trader's
//! timer; when the loop ends, the wind-down (`wind_down`).
//!
//! Never: allocates, blocks or formats (records and notes are `Copy`, handed to the side
//! thread through the desk's `Handoff`; a full channel drops and counts), sends an order
//! before the reconciliation, or imports `crate::modes`.

use mio::Registry;

use crate::config::Config;
use crate::engine::{EngineStats, Step, Trader};
use crate::feed::{BookLevels, Event};
use crate::hot::{FeedSink, Stamps};
use crate::live::audit::Audits;
use crate::live::desk::Desk;
use crate::live::notes::{is_credential_refusal, LiveNote, Unverified};
use crate::live::reconcile::Reconciler;
use crate::live::wind_down::WindDown;
use crate::risk::StopReason;
use crate::session::{market_step, Handoff, TIMER_EVERY_NS};
use crate::venue::binance::{BinanceStats, BinanceVenue};

/// Venue counters go to the log this often, ns.
const STATS_EVERY_NS: u64 = 10_000_000_000;

/// The hot side of live trading.
pub struct LiveSink {
    desk: Desk,
    reconciler: Reconciler,
    audits: Audits,
    wind: WindDown,
    fatal: Option<&'static str>,
    backing_off: bool,
    /// The current subscription refusal has been told.
    subscribe_noted: bool,
    next_stats_ns: u64,
    /// When the trader's timer runs next without a venue report.
    next_timer_ns: u64,
}

/// What a live session's hot side ended with (read after the loop, before the side thread
/// is joined).
#[derive(Clone, Copy, Debug)]
pub struct LiveOutcome {
    /// Orders the engine still counted as open.
    pub open_orders_local: u32,
    /// Our open orders per the wind-down's answer (`None`: never confirmed).
    pub open_orders_exchange: Option<u32>,
    /// The exchange confirmed nothing of ours is open (or the session never traded).
    pub clean: bool,
    /// What the wind-down could not verify (`None`: it confirmed, or it never ran).
    pub unverified: Option<Unverified>,
    /// The session reconciled at least once (and so may have placed orders).
    pub traded: bool,
    /// Inventory at exit, lots.
    pub inventory_lots: i64,
    /// Records and notes the hot side could not hand over.
    pub dropped: u64,
    /// The venue's counters.
    pub stats: BinanceStats,
}

impl LiveSink {
    /// The sink of a session that starts paused: nothing is sent before the order
    /// connection is up and reconciled.
    pub fn new(
        config: &Config,
        mut trader: Trader,
        venue: BinanceVenue,
        out: Handoff<LiveNote>,
        base_target_atoms: i64,
        start_wall_ns: u64,
    ) -> LiveSink {
        trader.pause(StopReason::VenueDisconnected);
        LiveSink {
            desk: Desk::new(
                trader,
                venue,
                out,
                base_target_atoms,
                config.spec.step_atoms,
            ),
            reconciler: Reconciler::new(config),
            audits: Audits::new(),
            wind: WindDown::new(config),
            fatal: None,
            backing_off: false,
            subscribe_noted: false,
            next_stats_ns: start_wall_ns + STATS_EVERY_NS,
            next_timer_ns: 0,
        }
    }

    /// After the loop: the last order counts to the side thread, then what the session
    /// ended with, and the hot ends of the channels. The venue (and its connection) is
    /// dropped here.
    pub fn finish(self) -> (LiveOutcome, Handoff<LiveNote>) {
        let Desk {
            trader, venue, out, ..
        } = self.desk;
        out.last_counts(&trader);
        let unverified = self.wind.unverified();
        let outcome = LiveOutcome {
            open_orders_local: trader.open_orders(),
            // The exchange's count only from the wind-down's own question: an earlier
            // audit's answer says nothing about the orders at exit.
            open_orders_exchange: if self.wind.confirmed() {
                venue.open_orders()
            } else {
                unverified.and_then(|u| u.open_exchange)
            },
            clean: self.wind.confirmed(),
            unverified,
            traded: self.reconciler.reconciles() > 0,
            inventory_lots: trader.position().inventory.0,
            dropped: out.dropped(),
            stats: venue.stats(),
        };
        (outcome, out)
    }

    /// Orders the engine counts as open.
    pub fn open_orders_local(&self) -> u32 {
        self.desk.trader.open_orders()
    }

    /// While trading: the audits; a reconciliation if one asks for it. Otherwise an audit
    /// in flight no longer counts.
    fn audit(&mut self, now_ns: u64) {
        if !self.reconciler.trading() {
            self.audits.pause();
            return;
        }
        let timer_due = now_ns >= self.next_timer_ns;
        if let Some(cause) = self.audits.step(now_ns, timer_due, &mut self.desk) {
            self.reconciler
                .begin(now_ns, cause, &mut self.desk, &mut self.audits);
        }
    }

    fn periodic(&mut self, now_ns: u64) {
        let desk = &mut self.desk;
        desk.out.counts_every(now_ns, &desk.trader);
        if now_ns >= self.next_stats_ns {
            self.next_stats_ns = now_ns + STATS_EVERY_NS;
            let limits = desk.venue.rate_limits();
            desk.note(LiveNote::VenueStats {
                stats: desk.venue.stats(),
                skew_ms: desk.venue.server_skew_ms(),
                weight: limits.weight_1m,
                orders_10s: limits.orders_10s,
            });
        }
    }

    /// Order-connection events and refusals, for the log; a credential refusal at start
    /// ends the session.
    fn venue_notes(&mut self, now_ns: u64) {
        let desk = &mut self.desk;
        while let Some(event) = desk.venue.take_net_event() {
            desk.note(LiveNote::OrderNet(event));
        }
        while let Some(event) = desk.venue.take_rotation_event() {
            desk.note(LiveNote::OrderRotation(event));
        }
        match desk.venue.subscribe_refused() {
            Some(code) if !self.subscribe_noted => {
                self.subscribe_noted = true;
                let (at_logon, key) = (desk.venue.refused_at_logon(), desk.venue.key_type());
                desk.note(LiveNote::SubscribeRefused {
                    code,
                    at_logon,
                    key,
                });
                if self.reconciler.reconciles() == 0 && is_credential_refusal(code) {
                    self.fatal = Some(
                        "the exchange refused the API key or its signature (see the log for \
                         the code)",
                    );
                }
            }
            Some(_) => {}
            None => self.subscribe_noted = false,
        }
        if let Some(code) = desk.venue.take_cancel_all_refused() {
            desk.trader.on_cancel_all_refused(now_ns, code);
            desk.note(LiveNote::CancelAllRefused { code });
        }
    }
}

impl FeedSink for LiveSink {
    const TIMED: bool = true;

    #[inline]
    fn on_event(
        &mut self,
        event: &Event,
        levels: BookLevels<'_>,
        now_ns: u64,
        stamps: &mut Stamps,
    ) -> (Step, u32) {
        let desk = &mut self.desk;
        market_step(
            &mut desk.trader,
            &mut desk.venue,
            &mut desk.out,
            event,
            levels,
            now_ns,
            stamps,
        )
    }

    fn on_disconnect(&mut self, _now_ns: u64) {
        // Quoting stops at once (the next timer cancels), not after stale_data_ms.
        self.desk.trader.engine_mut().resync();
        self.desk.trader.pause(StopReason::BookResync);
    }

    fn on_readiness(&mut self, event: &mio::event::Event) {
        // The order connection or, during a rotation, its standby.
        if self.desk.venue.owns(event.token()) {
            self.desk.venue.on_readiness(event);
        }
    }

    #[inline]
    fn warm(&mut self, now_ns: u64) {
        self.desk.trader.warm(now_ns, &self.desk.venue);
    }

    #[inline]
    fn on_idle(&mut self, now_ns: u64, registry: &Registry) {
        self.desk.venue.poll_io(registry, now_ns);
        self.venue_notes(now_ns);
        let backing_off = self.desk.venue.is_backing_off(now_ns);
        if backing_off != self.backing_off {
            self.backing_off = backing_off;
            if backing_off {
                self.desk.trader.pause(StopReason::RateLimited);
            } else {
                self.desk.trader.resume(StopReason::RateLimited);
            }
            let code = self.desk.venue.last_error_code();
            self.desk.note(LiveNote::BackOff {
                at_ns: now_ns,
                on: backing_off,
                code,
            });
        }
        if !self.desk.venue.is_ready() {
            if self.reconciler.connection_lost() {
                self.desk.trader.pause(StopReason::VenueDisconnected);
                self.desk
                    .note(LiveNote::OrderConnectionDown { at_ns: now_ns });
            }
        } else if !backing_off {
            // Nothing but cancels may go out during a back-off: reconciliation and audits
            // wait for its end.
            if !self.reconciler.trading() {
                if let Err(why) = self
                    .reconciler
                    .step(now_ns, &mut self.desk, &mut self.audits)
                {
                    self.fatal = Some(why);
                }
            }
            self.audit(now_ns);
        }
        // The trader's timer (venue reports, stale-data and kill-switch checks, the
        // mark-to-market) runs when the venue has reports, else once per TIMER_EVERY_NS:
        // not on every busy-poll turn.
        if self.desk.venue.pending_events() > 0 || now_ns >= self.next_timer_ns {
            self.next_timer_ns = now_ns + TIMER_EVERY_NS;
            self.desk.timer(now_ns);
        }
        self.periodic(now_ns);
    }

    fn fatal(&self) -> Option<&'static str> {
        self.fatal
    }

    fn wind_down(&mut self, now_ns: u64, registry: &Registry) -> bool {
        if self.wind.done() {
            return true;
        }
        self.desk.venue.poll_io(registry, now_ns);
        self.venue_notes(now_ns);
        let traded = self.reconciler.reconciles() > 0;
        let checked_ns = self.audits.inventory_checked_ns();
        self.wind.step(now_ns, &mut self.desk, traded, checked_ns)
    }

    fn engine_stats(&self) -> EngineStats {
        self.desk.trader.engine().stats()
    }
}
