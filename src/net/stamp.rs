//! Receive-side timestamps of one message through the transport's layers, for the hot
//! loop's per-stage latency histograms (docs/latency.md).
//!
//! Owns: `RxClock` (the caller's clock, handed to a connection that should stamp) and
//! `RxStamps` (when a message's bytes passed each layer).
//!
//! The clock is the caller's, never this module's choice: a connection without an
//! `RxClock` stamps nothing (all zeros) and reads no clock, as the rest of `net` does.
//! With one, the transport reads it around each socket read that returns data and once per
//! TLS read handed to the WebSocket layer, and the session twice per message (integers,
//! no allocation).
//!
//! Never: allocates, blocks, or reads a clock it was not given.

use crate::time::{Clock, SystemClock};

/// The caller's time base: its monotonic clock plus a fixed offset (the hot loop's
/// "wall" ns), so that the stamps compare with the caller's own.
#[derive(Clone, Copy, Debug)]
pub struct RxClock {
    clock: SystemClock,
    offset_ns: u64,
}

impl RxClock {
    /// `clock.mono_ns() + offset_ns`.
    pub fn new(clock: SystemClock, offset_ns: u64) -> RxClock {
        RxClock { clock, offset_ns }
    }

    /// Now, in the caller's time base.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.clock.mono_ns() + self.offset_ns
    }
}

/// When the bytes of one received message passed each layer, in the `RxClock`'s time
/// base. All zero when the connection has no clock. The five are in order:
/// `read_start_ns ≤ read_ns ≤ tls_ns ≤ ws_start_ns ≤ ws_ns`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxStamps {
    /// The socket read that returned the message's last bytes was issued.
    pub read_start_ns: u64,
    /// That read returned (the bytes are in user space, still encrypted).
    pub read_ns: u64,
    /// The TLS layer handed the decrypted bytes to the WebSocket layer (plain TCP: equal
    /// to `read_ns`).
    pub tls_ns: u64,
    /// The WebSocket layer started on this message: the later of `tls_ns` and the end of
    /// the previous message's handling (a message behind others of the same read waits
    /// `ws_start_ns - tls_ns` for them).
    pub ws_start_ns: u64,
    /// The WebSocket frame was parsed and the message handed out.
    pub ws_ns: u64,
}

impl RxStamps {
    /// Whether these stamps were taken (the connection had a clock).
    pub fn taken(&self) -> bool {
        self.ws_ns != 0
    }
}

/// The transport's stamps of its latest socket read and latest TLS hand-over.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ReadStamps {
    pub(crate) clock: Option<RxClock>,
    pub(crate) read_start_ns: u64,
    pub(crate) read_ns: u64,
    pub(crate) tls_ns: u64,
}

impl ReadStamps {
    /// Fresh stamps taken with `clock` (`None`: none taken, no clock read).
    pub(crate) fn with_clock(clock: Option<RxClock>) -> ReadStamps {
        ReadStamps {
            clock,
            ..ReadStamps::default()
        }
    }

    /// (read issued, read returned, bytes handed to the layer above) of the latest socket
    /// read that returned data.
    pub(crate) fn times(&self) -> (u64, u64, u64) {
        (self.read_start_ns, self.read_ns, self.tls_ns)
    }

    /// Before a socket read.
    #[inline]
    pub(crate) fn before_read(&mut self) -> Option<u64> {
        self.clock.map(|c| c.now_ns())
    }

    /// A socket read issued at `started` returned data.
    #[inline]
    pub(crate) fn read_returned(&mut self, started: Option<u64>) {
        if let (Some(c), Some(s)) = (self.clock, started) {
            self.read_start_ns = s;
            self.read_ns = c.now_ns();
        }
    }

    /// Decrypted bytes were handed to the layer above.
    #[inline]
    pub(crate) fn handed_over(&mut self) {
        if let Some(c) = self.clock {
            self.tls_ns = c.now_ns();
        }
    }
}
