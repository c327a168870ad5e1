//! Clocks. The only module that reads the system's time (clippy bans `Instant::now` and
//! `SystemTime::now` everywhere else).
//!
//! Owns: `Clock`, the time source handed to every loop; `SystemClock` (monotonic nanoseconds
//! from `Instant`, wall-clock nanoseconds since the Unix epoch from `SystemTime`) for live and
//! paper trading; `SimClock` (set by the replay from the data's timestamps) for backtests, so
//! the very same engine code runs in every mode and a backtest is deterministic.
//!
//! Never: sleeps, allocates, or is read by the sans-IO core — the core takes `now` as an
//! argument.

use std::cell::Cell;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A source of time.
pub trait Clock {
    /// Monotonic nanoseconds since an arbitrary origin (never goes backwards).
    fn mono_ns(&self) -> u64;
    /// Wall-clock nanoseconds since the Unix epoch (UTC).
    fn wall_ns(&self) -> u64;
}

/// The real clock.
#[derive(Clone, Copy, Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// Starts the monotonic origin now.
    #[allow(clippy::disallowed_methods)] // the one place allowed to read the clock
    pub fn new() -> SystemClock {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    #[inline]
    #[allow(clippy::disallowed_methods)] // the one place allowed to read the clock
    fn mono_ns(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    #[inline]
    fn wall_ns(&self) -> u64 {
        wall_now_ns()
    }
}

/// Wall-clock nanoseconds since the Unix epoch; 0 if the system clock is before 1970.
#[allow(clippy::disallowed_methods)] // the one place allowed to read the clock
pub fn wall_now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// CPU time the calling thread has run so far, ns, from Linux's
/// `/proc/thread-self/schedstat` (its first field); `None` where that is not readable.
/// For telling a loop's own work from its waits (the backtest's replay loop waits for its
/// decode thread): it opens a file, so never call it inside a hot loop. Allocates nothing.
pub fn thread_cpu_ns() -> Option<u64> {
    use std::io::Read;
    let mut file = std::fs::File::open("/proc/thread-self/schedstat").ok()?;
    let mut buf = [0u8; 128];
    let n = file.read(&mut buf).ok()?;
    let text = std::str::from_utf8(buf.get(..n)?).ok()?;
    text.split_ascii_whitespace().next()?.parse().ok()
}

/// A clock the replay moves forward by hand. Monotonic and wall time are the same value.
#[derive(Debug, Default)]
pub struct SimClock {
    now_ns: Cell<u64>,
}

impl SimClock {
    /// A clock standing at `start_ns`.
    pub fn new(start_ns: u64) -> SimClock {
        SimClock {
            now_ns: Cell::new(start_ns),
        }
    }

    /// Moves the clock to `ns`; a timestamp earlier than now leaves it where it is, so the
    /// clock never runs backwards.
    pub fn advance_to(&self, ns: u64) {
        if ns > self.now_ns.get() {
            self.now_ns.set(ns);
        }
    }
}

impl Clock for SimClock {
    fn mono_ns(&self) -> u64 {
        self.now_ns.get()
    }

    fn wall_ns(&self) -> u64 {
        self.now_ns.get()
    }
}

/// `2024-08-08T23:54:13.937Z`: a Unix time in ns as UTC text with milliseconds (reports,
/// never the hot path); the number itself when it is out of chrono's range.
pub fn utc_text(ts_ns: u64) -> String {
    let secs = (ts_ns / 1_000_000_000) as i64;
    let nanos = (ts_ns % 1_000_000_000) as u32;
    chrono::DateTime::from_timestamp(secs, nanos).map_or_else(
        || ts_ns.to_string(),
        |t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_is_monotonic_and_wall_is_recent() {
        let clock = SystemClock::new();
        let a = clock.mono_ns();
        let b = clock.mono_ns();
        assert!(b >= a);
        // 2024-01-01 in ns: the wall clock of any machine running this is later.
        assert!(clock.wall_ns() > 1_704_067_200_000_000_000);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn thread_cpu_time_counts_this_threads_work() {
        // The kernel brings a running thread's figure up to date at scheduler ticks and
        // switches, so a reading may lag by up to a tick (10 ms at the slowest HZ).
        const TICK_NS: u64 = 10_000_000;
        let wall = SystemClock::new();
        let before = thread_cpu_ns().expect("Linux has /proc/thread-self/schedstat");
        // Work until the figure has moved by 20 ms (or 10 s of wall time went by): it
        // moves with this thread's work, by no more than the wall time that passed.
        let mut x = 0u64;
        let mut after = before;
        while after - before < 2 * TICK_NS && wall.mono_ns() < 10_000_000_000 {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            after = thread_cpu_ns().expect("readable again");
        }
        let elapsed = wall.mono_ns();
        assert!(
            after - before >= 2 * TICK_NS,
            "{before} → {after} in {elapsed} ns of wall time"
        );
        assert!(
            after - before <= elapsed + TICK_NS,
            "{before} → {after} in {elapsed} ns"
        );
        // A waiting thread spends (almost) none: its own figure, not the process's.
        let idle = std::thread::spawn(|| {
            let a = thread_cpu_ns().expect("readable");
            let _ = std::sync::mpsc::channel::<()>()
                .1
                .recv_timeout(std::time::Duration::from_millis(50));
            thread_cpu_ns().expect("readable") - a
        })
        .join()
        .expect("the thread ends");
        assert!(idle < TICK_NS, "{idle} ns of CPU while waiting 50 ms");
    }

    #[test]
    fn sim_clock_never_goes_back() {
        let clock = SimClock::new(100);
        clock.advance_to(50);
        assert_eq!(clock.mono_ns(), 100);
        clock.advance_to(200);
        assert_eq!(clock.wall_ns(), 200);
    }
}
