//! The wind-down (Ctrl+C, SIGTERM, `--duration`, or a fatal condition): stop quoting,
//! cancel every order, and wait — up to `live.shutdown_wait_s` — for the exchange to
//! confirm that nothing of ours is open.
//!
//! ```text
//!   loop ends: stop (cancel all) ─> Cancelling ─(every answer in, and nothing open per the
//!                                     ^   │       engine or WIND_QUERY_AFTER_NS passed)
//!           (some open: cancel all again) │
//!                                     │   v
//!                                     └─ Querying ─(the exchange: none open)─> confirmed
//!   any state ─(live.shutdown_wait_s passed)─> over; `Unverified` says what was not checked
//! ```
//!
//! With the order connection down, a reconnect is tried at least every
//! `WIND_RECONNECT_NS`; its first act after the subscription is the cancel. A session that
//! never reconciled placed nothing and stops at once.
//!
//! Never: claims a clean exit without the exchange's answer (but for a session that never
//! reconciled: it placed nothing).

use crate::config::Config;
use crate::live::desk::{Desk, ANSWER_WAIT_NS};
use crate::live::notes::{LiveNote, Unverified};
use crate::risk::StopReason;

/// Wind-down: after this long, ask the exchange what is open even if the engine still
/// waits for cancel confirmations, ns.
const WIND_QUERY_AFTER_NS: u64 = 1_000_000_000;
/// Wind-down with the order connection down: a reconnect attempt at least this often
/// (the backoff may be up to 30 s, longer than `live.shutdown_wait_s`), ns.
const WIND_RECONNECT_NS: u64 = 500_000_000;

/// Where the wind-down stands and what it found.
#[derive(Clone, Debug)]
pub struct WindDown {
    /// When it started, and its state (`None`: not started).
    state: Option<(u64, Wind)>,
    /// Over: confirmed or out of time.
    done: bool,
    /// The exchange confirmed nothing of ours is open (or the session never traded).
    confirmed: bool,
    /// Reconnect attempts brought forward.
    reconnects: u32,
    /// What could not be verified by the deadline.
    unverified: Option<Unverified>,
    /// `live.shutdown_wait_s`, ns.
    wait_ns: u64,
}

/// Where the wind-down stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wind {
    /// Cancels sent: waiting for the confirmations.
    Cancelling { sent_ns: u64 },
    /// Asked the exchange what is still open.
    Querying { sent_ns: u64 },
}

impl WindDown {
    /// Not started.
    pub fn new(config: &Config) -> WindDown {
        WindDown {
            state: None,
            done: false,
            confirmed: false,
            reconnects: 0,
            unverified: None,
            wait_ns: (config.live.shutdown_wait_s * 1e9) as u64,
        }
    }

    /// Over: confirmed or out of time.
    pub fn done(&self) -> bool {
        self.done
    }

    /// The exchange confirmed nothing of ours is open (or the session never traded).
    pub fn confirmed(&self) -> bool {
        self.confirmed
    }

    /// What the wind-down could not verify before the deadline (`None`: it confirmed, or
    /// it never ran).
    pub fn unverified(&self) -> Option<Unverified> {
        self.unverified
    }

    /// One turn of the wind-down (the caller has polled the order connection); true once
    /// it is over. `traded`: the session reconciled at least once; `inventory_checked_ns`:
    /// when the inventory was last checked against the balances (0: never).
    pub fn step(
        &mut self,
        now_ns: u64,
        desk: &mut Desk,
        traded: bool,
        inventory_checked_ns: u64,
    ) -> bool {
        if self.done {
            return true;
        }
        let Some((started_ns, wind)) = self.state else {
            let open_local = desk.trader.open_orders();
            desk.note(LiveNote::WindDownStarted { open_local });
            let out = &mut desk.out;
            desk.trader
                .stop(now_ns, StopReason::Shutdown, &mut desk.venue, &mut |r| {
                    out.record(r)
                });
            if !traded && open_local == 0 {
                // Never traded: this session placed nothing.
                self.done = true;
                self.confirmed = true;
                return true;
            }
            self.state = Some((now_ns, Wind::Cancelling { sent_ns: now_ns }));
            return false;
        };
        desk.timer(now_ns);
        if now_ns.saturating_sub(started_ns) > self.wait_ns {
            let gap = Unverified {
                order_connection_down: !desk.venue.is_ready(),
                reconnects_forced: self.reconnects,
                unanswered: desk.venue.in_flight() as u32,
                open_local: desk.trader.open_orders(),
                open_exchange: match wind {
                    Wind::Querying { .. } => desk.venue.open_orders(),
                    Wind::Cancelling { .. } => None,
                },
                inventory_checked_ago_ns: (inventory_checked_ns > 0)
                    .then(|| now_ns.saturating_sub(inventory_checked_ns)),
            };
            self.unverified = Some(gap);
            desk.note(LiveNote::WindDownTimedOut(gap));
            self.done = true;
            return true;
        }
        if !desk.venue.is_ready() {
            // A reconnect backoff can outlast the wait: try again at least every
            // WIND_RECONNECT_NS.
            if desk.venue.reconnect_within(now_ns, WIND_RECONNECT_NS) {
                self.reconnects += 1;
            }
            // Reconnecting: its first act after the subscription is ours below.
            self.state = Some((started_ns, Wind::Cancelling { sent_ns: now_ns }));
            return false;
        }
        let answered = desk.venue.in_flight() == 0;
        match wind {
            Wind::Cancelling { sent_ns } => {
                let waited = now_ns.saturating_sub(sent_ns) > WIND_QUERY_AFTER_NS;
                if answered && (desk.trader.open_orders() == 0 || waited) {
                    let _ = desk.venue.request_open_orders(now_ns);
                    self.state = Some((started_ns, Wind::Querying { sent_ns: now_ns }));
                }
            }
            Wind::Querying { sent_ns } => {
                if !answered {
                    return false;
                }
                match desk.venue.open_orders() {
                    Some(0) => {
                        // The exchange's word: whatever the engine still waits for is gone.
                        desk.trader.forget_open();
                        desk.note(LiveNote::WindDownConfirmed {
                            took_ns: now_ns.saturating_sub(started_ns),
                        });
                        self.done = true;
                        self.confirmed = true;
                        return true;
                    }
                    Some(_) => {
                        let _ = desk.venue.cancel_all_untracked(now_ns);
                        self.state = Some((started_ns, Wind::Cancelling { sent_ns: now_ns }));
                    }
                    None if now_ns.saturating_sub(sent_ns) > ANSWER_WAIT_NS => {
                        let _ = desk.venue.request_open_orders(now_ns);
                        self.state = Some((started_ns, Wind::Querying { sent_ns: now_ns }));
                    }
                    None => {}
                }
            }
        }
        false
    }
}
