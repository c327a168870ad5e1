//! The simulator's only access to time: wall-clock milliseconds (for `serverTime`,
//! `transactTime`, executionReport `E`/`T` and the `timestamp`/`recvWindow` check), a
//! monotonic `Instant` (for replay pacing, latency queues and rate-limit windows) and a
//! sleep.
//!
//! The crate's clippy.toml bans `Instant::now`, `SystemTime::now` and `thread::sleep`
//! because the *engine* is sans-IO and never sleeps. mm-exchange is a tool, not the engine:
//! it serves real clients over real sockets, so it reads real clocks — here and only here,
//! each with a local `allow` that says so.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, from the system clock.
pub fn wall_ms() -> i64 {
    // A tool reading the wall clock is its purpose (Binance's serverTime); see the file doc.
    #[allow(clippy::disallowed_methods)]
    let now = SystemTime::now();
    now.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The monotonic clock.
pub fn now() -> Instant {
    // Replay pacing and latency queues need a monotonic clock; see the file doc.
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    now
}

/// Blocks the calling simulator thread (never an engine thread: this is a separate binary).
pub fn sleep(duration: Duration) {
    #[allow(clippy::disallowed_methods)]
    std::thread::sleep(duration);
}

/// Sleeps until `deadline` in slices of at most `slice`, returning early (false) when
/// `keep_going` says stop. Returns true when the deadline was reached.
pub fn sleep_until(deadline: Instant, slice: Duration, keep_going: impl Fn() -> bool) -> bool {
    loop {
        if !keep_going() {
            return false;
        }
        let now = now();
        if now >= deadline {
            return true;
        }
        sleep((deadline - now).min(slice));
    }
}
