//! Ctrl+C and SIGTERM: a flag the engine polls.
//!
//! Owns: the process's SIGINT/SIGTERM handlers. The first signal only sets an atomic flag;
//! every loop (engine, replay, side thread) polls `requested()` and winds down cleanly — in
//! trading modes that means cancelling every open order before exiting. A second signal while
//! the first is still being handled terminates the process at once (exit status 130), for the
//! case where a clean shutdown hangs.
//!
//! After the stop, every thread of a session is joined with `join_by`: a deadline, never an
//! unbounded `join`. A thread still running at the deadline (blocked on a write nobody
//! reads, a stalled disk, a slow HTTPS GET) is left behind, and the caller says which one
//! and what that means; the process then exits and takes it down.
//!
//! Never: does work inside the signal handler (signal-hook's `flag` handlers only store an
//! atomic), blocks (but `join_by`, which waits at most until its deadline), or allocates
//! after `install`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError};

use signal_hook::consts::{SIGINT, SIGTERM};

use crate::time::{Clock, SystemClock};

/// Exit status used when a second signal forces an immediate exit.
pub const FORCED_EXIT_STATUS: i32 = 130;

/// A cloneable handle on the shutdown flag.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
}

impl Shutdown {
    /// A flag not connected to any signal (tests, embedded use).
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Registers SIGINT and SIGTERM: the first sets the flag, a second one exits at once.
    pub fn install() -> std::io::Result<Shutdown> {
        let shutdown = Shutdown::new();
        for signal in [SIGINT, SIGTERM] {
            // Order matters: the conditional exit is registered first so that it sees the
            // flag as it was *before* this signal set it.
            signal_hook::flag::register_conditional_shutdown(
                signal,
                FORCED_EXIT_STATUS,
                Arc::clone(&shutdown.flag),
            )?;
            signal_hook::flag::register(signal, Arc::clone(&shutdown.flag))?;
        }
        Ok(shutdown)
    }

    /// True once a stop was asked for.
    #[inline]
    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    /// Asks for a stop from inside the program (end of `--duration`, a fatal error).
    pub fn request(&self) {
        self.flag.store(true, Ordering::Relaxed);
    }
}

/// How long the joins of one stage of a stop may take together: the session's side and
/// REST threads, then (later, separately) the log thread.
pub const JOIN_WAIT: Duration = Duration::from_secs(5);

/// A point in time the joins after a stop must not pass (monotonic clock).
pub struct Deadline {
    clock: SystemClock,
    until_ns: u64,
}

impl Deadline {
    /// `wait` from now.
    pub fn after(wait: Duration) -> Deadline {
        let clock = SystemClock::new();
        let until_ns = clock.mono_ns().saturating_add(wait.as_nanos() as u64);
        Deadline { clock, until_ns }
    }

    /// Time left (zero once passed).
    pub fn remaining(&self) -> Duration {
        Duration::from_nanos(self.until_ns.saturating_sub(self.clock.mono_ns()))
    }
}

/// How a bounded join ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Joined<T> {
    /// The thread finished and returned this.
    Done(T),
    /// The thread panicked.
    Panicked,
    /// The thread was still running at the deadline: it is left behind (detached).
    Unfinished,
}

/// A named thread that can be joined with a deadline (`join_by`).
pub struct Worker<T> {
    name: &'static str,
    done: Receiver<T>,
    handle: JoinHandle<()>,
}

impl<T: Send + 'static> Worker<T> {
    /// Starts `f` on a thread called `name`.
    pub fn spawn(
        name: &'static str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::io::Result<Worker<T>> {
        let (tx, done) = bounded(1);
        let handle = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                // A panic drops `tx` unsent: `join_by` sees the channel closed.
                let _ = tx.send(f());
            })?;
        Ok(Worker { name, done, handle })
    }

    /// The thread's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// What the thread returned, if it finishes before `deadline`; otherwise it is left
    /// running (detached) and `Joined::Unfinished` returned. Waits at most until
    /// `deadline`.
    pub fn join_by(self, deadline: &Deadline) -> Joined<T> {
        match self.done.recv_timeout(deadline.remaining()) {
            Ok(value) => {
                // It has sent its result: the thread is ending now.
                let _ = self.handle.join();
                Joined::Done(value)
            }
            Err(RecvTimeoutError::Disconnected) => {
                let _ = self.handle.join();
                Joined::Panicked
            }
            Err(RecvTimeoutError::Timeout) => Joined::Unfinished,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_by_returns_what_a_finished_thread_returned() {
        let t = Worker::spawn("t-done", || 42).unwrap();
        assert_eq!(
            t.join_by(&Deadline::after(Duration::from_secs(10))),
            Joined::Done(42)
        );
    }

    #[test]
    fn join_by_gives_up_on_a_blocked_thread_at_the_deadline() {
        // A thread blocked on I/O that never comes: a read of a socket nobody writes.
        let (mut reader, writer) = std::os::unix::net::UnixStream::pair().unwrap();
        let t = Worker::spawn("t-blocked", move || {
            let mut buf = [0u8; 1];
            std::io::Read::read(&mut reader, &mut buf).ok()
        })
        .unwrap();
        let clock = SystemClock::new();
        let start = clock.mono_ns();
        let joined = t.join_by(&Deadline::after(Duration::from_millis(200)));
        let waited_ms = (clock.mono_ns() - start) / 1_000_000;
        assert_eq!(joined, Joined::Unfinished);
        assert!((200..5_000).contains(&waited_ms), "{waited_ms} ms");
        drop(writer); // the thread's read ends (EOF) and it exits on its own
    }

    #[test]
    fn join_by_reports_a_panicked_thread() {
        let t = Worker::spawn("t-panics", || {
            if std::hint::black_box(true) {
                panic!("a side thread's bug");
            }
        })
        .unwrap();
        assert_eq!(
            t.join_by(&Deadline::after(Duration::from_secs(10))),
            Joined::Panicked
        );
    }

    #[test]
    fn one_deadline_bounds_several_joins() {
        let (_r1, w1) = std::os::unix::net::UnixStream::pair().unwrap();
        let blocked = |mut s: std::os::unix::net::UnixStream| {
            Worker::spawn("t-blocked", move || {
                let mut buf = [0u8; 1];
                std::io::Read::read(&mut s, &mut buf).ok()
            })
            .unwrap()
        };
        let (_r2, w2) = std::os::unix::net::UnixStream::pair().unwrap();
        let (a, b) = (blocked(w1), blocked(w2));
        let clock = SystemClock::new();
        let start = clock.mono_ns();
        let deadline = Deadline::after(Duration::from_millis(300));
        assert_eq!(a.join_by(&deadline), Joined::Unfinished);
        assert_eq!(b.join_by(&deadline), Joined::Unfinished);
        let waited_ms = (clock.mono_ns() - start) / 1_000_000;
        assert!(
            (300..3_000).contains(&waited_ms),
            "{waited_ms} ms: not 2 × 300"
        );
    }

    #[test]
    fn request_is_seen_by_clones() {
        let a = Shutdown::new();
        let b = a.clone();
        assert!(!b.requested());
        a.request();
        assert!(b.requested());
    }
}
