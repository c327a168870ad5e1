//! Console output (stdout, stderr) that never panics.
//!
//! Owns: every line the binaries print. `println!`/`eprintln!` panic when the stream is gone
//! (`mm … | head`, a dead `tee` or log pipe: EPIPE), and with `panic = "abort"` that would
//! kill a live session with orders resting. Here a failed write is counted, the first one
//! per stream is reported once to the log (when `set_log` was given a handle) and on the
//! other stream, and the caller carries on: live keeps trading, the report files and the log
//! hold everything the console lost. `lost()` tells the end of a run what was lost.
//!
//! Never: panics, blocks on anything but the write itself, or is used on the hot thread
//! (it formats).

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::telemetry::log::LogHandle;

/// Writes that failed on stdout and on stderr.
static OUT_LOST: AtomicU64 = AtomicU64::new(0);
static ERR_LOST: AtomicU64 = AtomicU64::new(0);
/// The first failure of each stream has been reported.
static OUT_REPORTED: AtomicBool = AtomicBool::new(false);
static ERR_REPORTED: AtomicBool = AtomicBool::new(false);
/// Where the first failure of a stream is said (the run's log).
static LOG: OnceLock<LogHandle> = OnceLock::new();

/// Writes console failures to this log from now on (once per process; later calls are
/// ignored).
pub fn set_log(log: LogHandle) {
    let _ = LOG.set(log);
}

/// (stdout, stderr) writes that failed so far.
pub fn lost() -> (u64, u64) {
    (
        OUT_LOST.load(Ordering::Relaxed),
        ERR_LOST.load(Ordering::Relaxed),
    )
}

/// Prints to stdout; `false` (and counted) when the write failed.
pub fn out(args: fmt::Arguments<'_>) -> bool {
    let result = io::stdout().lock().write_fmt(args);
    checked(result, Stream::Out)
}

/// Prints to stderr; `false` (and counted) when the write failed.
pub fn err(args: fmt::Arguments<'_>) -> bool {
    let result = io::stderr().lock().write_fmt(args);
    checked(result, Stream::Err)
}

#[derive(Clone, Copy)]
enum Stream {
    Out,
    Err,
}

fn checked(result: io::Result<()>, stream: Stream) -> bool {
    let Err(e) = result else { return true };
    let (lost, reported, name) = match stream {
        Stream::Out => (&OUT_LOST, &OUT_REPORTED, "stdout"),
        Stream::Err => (&ERR_LOST, &ERR_REPORTED, "stderr"),
    };
    lost.fetch_add(1, Ordering::Relaxed);
    if !reported.swap(true, Ordering::Relaxed) {
        let what = format!(
            "console: writing to {name} failed ({e}); its output is dropped from now on, the \
             run goes on (the log and the report files keep everything)"
        );
        if let Some(log) = LOG.get() {
            // A WARN line is echoed to stderr by the log thread (through `err`).
            log.warn(format_args!("{what}"));
        } else {
            let other = match stream {
                Stream::Out => io::stderr().lock().write_fmt(format_args!("mm: {what}\n")),
                Stream::Err => io::stdout().lock().write_fmt(format_args!("mm: {what}\n")),
            };
            drop(other);
        }
    }
    false
}

/// stdout as an `io::Write` that never fails: failed writes are counted as `out` counts them
/// and reported as written, so a report that goes to a closed pipe does not end the run.
pub struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let result = io::stdout().lock().write_all(buf);
        checked(result, Stream::Out);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let result = io::stdout().lock().flush();
        checked(result, Stream::Out);
        Ok(())
    }
}

/// stderr as an `io::Write` that never fails, as `Stdout` is for stdout (for a caller that
/// must not touch stdout: a thread left behind blocked on it holds its lock).
pub struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let result = io::stderr().lock().write_all(buf);
        checked(result, Stream::Err);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let result = io::stderr().lock().flush();
        checked(result, Stream::Err);
        Ok(())
    }
}

/// `println!` that never panics (see the module doc).
#[macro_export]
macro_rules! outln {
    () => { $crate::console::out(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::out(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprintln!` that never panics (see the module doc).
#[macro_export]
macro_rules! errln {
    () => { $crate::console::err(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::err(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprint!` that never panics (see the module doc).
#[macro_export]
macro_rules! errprint {
    ($($arg:tt)*) => { $crate::console::err(format_args!($($arg)*)) };
}
