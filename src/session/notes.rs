//! Notes: what a venue's hot side tells the log beyond the trade records (live: the order
//! connection, reconciliation, audits, the wind-down; paper has none).
//!
//! Owns: the `Note` trait the side thread drains and formats, and `NoNotes` for a session
//! without any. A note is `Copy` and built on the hot thread; it is formatted only on the
//! side thread. Never imports `crate::modes` or a venue's module.

use crate::telemetry::log::LogHandle;
use crate::types::SymbolSpec;

/// A hot-side note for the log: built on the hot thread (`Copy`, no heap), written by the
/// side thread.
pub trait Note: Copy + Send + 'static {
    /// Writes the note to the log (side thread: formatting is allowed here).
    fn log(&self, log: &LogHandle, spec: &SymbolSpec);
}

/// The notes of a session that has none (paper trading): no value exists.
#[derive(Clone, Copy, Debug)]
pub enum NoNotes {}

impl Note for NoNotes {
    fn log(&self, _log: &LogHandle, _spec: &SymbolSpec) {
        match *self {}
    }
}
