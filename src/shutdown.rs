//! Ctrl+C and SIGTERM: a flag the engine polls.
//!
//! Owns: the process's SIGINT/SIGTERM handlers. The first signal only sets an atomic flag;
//! every loop (engine, replay, side thread) polls `requested()` and winds down cleanly — in
//! trading modes that means cancelling every open order before exiting. A second signal while
//! the first is still being handled terminates the process at once (exit status 130), for the
//! case where a clean shutdown hangs.
//!
//! Never: does work inside the signal handler (signal-hook's `flag` handlers only store an
//! atomic), blocks, or allocates after `install`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_is_seen_by_clones() {
        let a = Shutdown::new();
        let b = a.clone();
        assert!(!b.requested());
        a.request();
        assert!(b.requested());
    }
}
