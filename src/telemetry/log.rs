//! The log file, owned by one side thread.
//!
//! Owns: `logs/mm_v1_YYYYMMDD.log` (UTC date of each line; a new file when the date changes
//! at midnight UTC), fed through one bounded crossbeam channel. WARN and ERROR lines are also
//! echoed to stderr so that a trader watching the console sees them.
//!
//! Threads other than the engine may call `LogHandle::log`, which formats on the caller's
//! thread: it is for start-up, shutdown and cold paths only. The hot thread never formats
//! text; it will send `Copy` records that this thread formats.
//!
//! Never: blocks the sender (a full channel drops the line and counts it), or loses lines
//! that were accepted (shutdown drains the channel and flushes the file before joining),
//! or waits for the thread without a deadline: `finish` gives it `shutdown::JOIN_WAIT`; a
//! thread still writing then (a stalled disk, a stderr nobody reads) is left behind and
//! `finish` says the file may miss its last lines.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};

use crate::config::LogLevel;
use crate::shutdown::{Deadline, Joined, Worker, JOIN_WAIT};
use crate::time::wall_now_ns;

/// Depth of the channel into the log thread, in lines.
pub const LOG_CHANNEL_DEPTH: usize = 4096;
/// File name prefix; the full name is `mm_v1_YYYYMMDD.log`.
pub const LOG_FILE_PREFIX: &str = "mm_v1_";

/// What travels to the log thread.
enum LogMsg {
    Line {
        wall_ns: u64,
        level: LogLevel,
        text: String,
    },
    Stop,
}

/// A cheap, cloneable sender of log lines.
#[derive(Clone)]
pub struct LogHandle {
    tx: Sender<LogMsg>,
    level: LogLevel,
    dropped: Arc<AtomicU64>,
}

impl LogHandle {
    /// True if lines of `level` are written.
    pub fn enabled(&self, level: LogLevel) -> bool {
        level <= self.level
    }

    /// Formats and queues one line (cold paths only). Never blocks: if the channel is full
    /// the line is dropped and counted.
    pub fn log(&self, level: LogLevel, args: fmt::Arguments<'_>) {
        if !self.enabled(level) {
            return;
        }
        let msg = LogMsg::Line {
            wall_ns: wall_now_ns(),
            level,
            text: args.to_string(),
        };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(msg) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `log(Info, ..)`.
    pub fn info(&self, args: fmt::Arguments<'_>) {
        self.log(LogLevel::Info, args);
    }

    /// `log(Warn, ..)`.
    pub fn warn(&self, args: fmt::Arguments<'_>) {
        self.log(LogLevel::Warn, args);
    }

    /// `log(Error, ..)`.
    pub fn error(&self, args: fmt::Arguments<'_>) {
        self.log(LogLevel::Error, args);
    }

    /// `log(Debug, ..)`.
    pub fn debug(&self, args: fmt::Arguments<'_>) {
        self.log(LogLevel::Debug, args);
    }
}

/// The running log thread.
pub struct Logger {
    handle: LogHandle,
    thread: Option<Worker<io::Result<u64>>>,
}

/// What the log thread did, returned by `Logger::finish`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogSummary {
    /// Lines written to files.
    pub written: u64,
    /// Lines dropped because the channel was full.
    pub dropped: u64,
}

impl Logger {
    /// Creates `dir` if needed and starts the log thread.
    pub fn start(dir: &Path, level: LogLevel) -> io::Result<Logger> {
        Logger::start_with(dir, level, true)
    }

    /// As `start`, choosing whether WARN/ERROR lines are echoed to stderr.
    pub fn start_with(dir: &Path, level: LogLevel, echo_stderr: bool) -> io::Result<Logger> {
        std::fs::create_dir_all(dir).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot create log folder {}: {e}", dir.display()),
            )
        })?;
        let (tx, rx) = bounded(LOG_CHANNEL_DEPTH);
        let mut writer = FileWriter {
            dir: dir.to_path_buf(),
            day: String::new(),
            file: None,
            echo_stderr,
        };
        // Open today's file now so that a permission problem is reported at start-up, not
        // on the first line.
        writer.switch_to(&day_of(wall_now_ns()))?;
        let thread = Worker::spawn("mm-log", move || writer.run(rx))?;
        Ok(Logger {
            handle: LogHandle {
                tx,
                level,
                dropped: Arc::new(AtomicU64::new(0)),
            },
            thread: Some(thread),
        })
    }

    /// A sender for this logger.
    pub fn handle(&self) -> LogHandle {
        self.handle.clone()
    }

    /// Stops the thread after everything queued so far is written and flushed.
    pub fn finish(mut self) -> io::Result<LogSummary> {
        self.stop()
    }

    fn stop(&mut self) -> io::Result<LogSummary> {
        let Some(thread) = self.thread.take() else {
            return Ok(LogSummary {
                written: 0,
                dropped: self.handle.dropped.load(Ordering::Relaxed),
            });
        };
        // A waiting send is right here (shutdown must not lose the last lines), but not an
        // endless one.
        let deadline = Deadline::after(JOIN_WAIT);
        let _ = self
            .handle
            .tx
            .send_timeout(LogMsg::Stop, deadline.remaining());
        let written = match thread.join_by(&deadline) {
            Joined::Done(written) => written?,
            Joined::Panicked => return Err(io::Error::other("the log thread (mm-log) panicked")),
            Joined::Unfinished => {
                return Err(io::Error::other(format!(
                    "the log thread (mm-log) did not finish within {} s after the stop \
                     (blocked writing the log file or echoing to stderr): the log may miss \
                     its last lines",
                    JOIN_WAIT.as_secs()
                )))
            }
        };
        Ok(LogSummary {
            written,
            dropped: self.handle.dropped.load(Ordering::Relaxed),
        })
    }
}

impl Drop for Logger {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            crate::errln!("mm: {e}");
        }
    }
}

/// The path of the log file for a UTC day (`YYYYMMDD`).
pub fn log_path(dir: &Path, day: &str) -> PathBuf {
    dir.join(format!("{LOG_FILE_PREFIX}{day}.log"))
}

struct FileWriter {
    dir: PathBuf,
    day: String,
    file: Option<BufWriter<File>>,
    echo_stderr: bool,
}

impl FileWriter {
    fn run(mut self, rx: Receiver<LogMsg>) -> io::Result<u64> {
        let mut written = 0u64;
        // Blocks between lines (this is not the engine thread); drains what is queued before
        // each flush so a burst costs one write.
        while let Ok(first) = rx.recv() {
            let mut next = Some(first);
            let mut stop = false;
            while let Some(msg) = next {
                match msg {
                    LogMsg::Line {
                        wall_ns,
                        level,
                        text,
                    } => {
                        self.write_line(wall_ns, level, &text)?;
                        written += 1;
                    }
                    LogMsg::Stop => stop = true,
                }
                next = rx.try_recv().ok();
            }
            if let Some(file) = self.file.as_mut() {
                file.flush()?;
            }
            if stop {
                break;
            }
        }
        Ok(written)
    }

    fn write_line(&mut self, wall_ns: u64, level: LogLevel, text: &str) -> io::Result<()> {
        let day = day_of(wall_ns);
        if day != self.day {
            self.switch_to(&day)?;
        }
        let stamp = timestamp(wall_ns);
        if let Some(file) = self.file.as_mut() {
            writeln!(file, "{stamp} {:<5} {text}", level.as_str())?;
        }
        if self.echo_stderr && level <= LogLevel::Warn {
            crate::errln!("{stamp} {:<5} {text}", level.as_str());
        }
        Ok(())
    }

    fn switch_to(&mut self, day: &str) -> io::Result<()> {
        if let Some(mut old) = self.file.take() {
            old.flush()?;
        }
        let path = log_path(&self.dir, day);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| {
                io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display()))
            })?;
        self.file = Some(BufWriter::new(file));
        self.day = day.to_string();
        Ok(())
    }
}

fn utc(wall_ns: u64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(i64::try_from(wall_ns).unwrap_or(i64::MAX))
}

/// `YYYYMMDD` of a wall-clock time, UTC.
pub fn day_of(wall_ns: u64) -> String {
    utc(wall_ns).format("%Y%m%d").to_string()
}

/// RFC 3339 UTC with microseconds, e.g. `2026-11-25T22:46:29.123456Z`.
pub fn timestamp(wall_ns: u64) -> String {
    utc(wall_ns).format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mm-log-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn lines_reach_the_file_at_or_above_the_level() {
        let dir = temp_dir("level");
        let logger = Logger::start_with(&dir, LogLevel::Info, false).unwrap();
        let log = logger.handle();
        log.info(format_args!("hello {}", 1));
        log.debug(format_args!("hidden"));
        log.warn(format_args!("careful"));
        let summary = logger.finish().unwrap();
        assert_eq!(
            summary,
            LogSummary {
                written: 2,
                dropped: 0
            }
        );
        let text = std::fs::read_to_string(log_path(&dir, &day_of(wall_now_ns()))).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].ends_with("INFO  hello 1"), "{text}");
        assert!(lines[1].ends_with("WARN  careful"), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn rotates_on_the_utc_date() {
        let dir = temp_dir("rotate");
        std::fs::create_dir_all(&dir).unwrap();
        let mut writer = FileWriter {
            dir: dir.clone(),
            day: String::new(),
            file: None,
            echo_stderr: false,
        };
        // 2024-08-08T23:59:59.9Z and 2024-08-09T00:00:00.1Z.
        let before = 1_723_161_599_900_000_000;
        let after = 1_723_161_600_100_000_000;
        writer.write_line(before, LogLevel::Info, "late").unwrap();
        writer.write_line(after, LogLevel::Info, "early").unwrap();
        writer.file.as_mut().unwrap().flush().unwrap();
        let a = std::fs::read_to_string(log_path(&dir, "20240808")).unwrap();
        let b = std::fs::read_to_string(log_path(&dir, "20240809")).unwrap();
        assert!(
            a.starts_with("2024-08-08T23:59:59.900000Z INFO  late"),
            "{a}"
        );
        assert!(
            b.starts_with("2024-08-09T00:00:00.100000Z INFO  early"),
            "{b}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_full_channel_drops_and_counts_instead_of_blocking() {
        let dir = temp_dir("full");
        let (tx, _rx) = bounded(2);
        let handle = LogHandle {
            tx,
            level: LogLevel::Info,
            dropped: Arc::new(AtomicU64::new(0)),
        };
        for i in 0..5 {
            handle.info(format_args!("{i}"));
        }
        assert_eq!(handle.dropped.load(Ordering::Relaxed), 3);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn unwritable_folder_is_a_start_up_error() {
        let file = temp_dir("blocker");
        std::fs::write(&file, b"not a folder").unwrap();
        assert!(Logger::start_with(&file.join("sub"), LogLevel::Info, false).is_err());
        let _ = std::fs::remove_file(&file);
    }
}
