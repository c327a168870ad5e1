//! Several frame readers merged into one time-ordered stream (ties: the file given first),
//! and that stream written into an engine journal (`--mode=convert`).
//!
//! Never: decodes frames or changes their bytes.

use std::path::Path;

use super::reader::{Frame, FrameReader};
use super::tape::{levels_of, Decoding};
use super::tapefile::TapeWriter;
use super::{Location, ReplayError};
use crate::feed::Level;
use crate::types::SymbolSpec;

/// Merges several readers by time (ties: the reader given first). A reader opened with
/// `FrameReader::open_lazy` is opened only when the merge reaches its first frame, and
/// every reader is closed (its buffers dropped) at its end: files that follow one another
/// in time are open one at a time, files that overlap are open together (`open_max`).
pub struct Merger {
    readers: Vec<FrameReader>,
    live: Vec<bool>,
    started: bool,
    /// The reader whose frame was handed out last (advanced on the next call).
    last: Option<usize>,
    /// Readers open now, and at most so far.
    open_now: usize,
    open_max: usize,
}

impl Merger {
    /// Merges `readers`, in the order given.
    pub fn new(readers: Vec<FrameReader>) -> Merger {
        let live = vec![false; readers.len()];
        Merger {
            readers,
            live,
            started: false,
            last: None,
            open_now: 0,
            open_max: 0,
        }
    }

    /// The readers.
    pub fn readers(&self) -> &[FrameReader] {
        &self.readers
    }

    /// The most files that were open at once so far.
    pub fn open_max(&self) -> usize {
        self.open_max
    }

    /// Opens reader `i` (a parked one again) and loads its first frame.
    fn start(&mut self, i: usize) -> Result<(), ReplayError> {
        self.readers[i].unpark()?;
        self.open_now += 1;
        self.open_max = self.open_max.max(self.open_now);
        self.advance(i)
    }

    /// Loads reader `i`'s next frame; closes it at its end.
    fn advance(&mut self, i: usize) -> Result<(), ReplayError> {
        self.live[i] = self.readers[i].advance()?;
        if !self.live[i] {
            self.readers[i].close();
            self.open_now -= 1;
        }
        Ok(())
    }

    /// The next frame in time order and the index of its reader; `None` at the end.
    pub fn next_frame(&mut self) -> Result<Option<(usize, Frame<'_>)>, ReplayError> {
        if !self.started {
            self.started = true;
            for i in 0..self.readers.len() {
                if self.readers[i].parked_first_ts().is_none() {
                    self.start(i)?;
                }
            }
        } else if let Some(i) = self.last.take() {
            self.advance(i)?;
        }
        loop {
            let mut best: Option<(usize, u64)> = None;
            for (i, reader) in self.readers.iter().enumerate() {
                if !self.live[i] {
                    continue;
                }
                let ts = reader.ts_ns;
                if best.is_none_or(|(_, b)| ts < b) {
                    best = Some((i, ts));
                }
            }
            // A parked file whose first frame is due no later than the best frame is
            // opened now; its frames are never earlier than its first.
            let due = self.readers.iter().position(|r| {
                r.parked_first_ts()
                    .is_some_and(|first| best.is_none_or(|(_, b)| first <= b))
            });
            if let Some(j) = due {
                self.start(j)?;
                continue;
            }
            let Some((i, _)) = best else {
                return Ok(None);
            };
            self.last = Some(i);
            return Ok(Some((i, self.readers[i].frame())));
        }
    }
}

/// Writes every frame of `readers`, merged by time, into a new journal at `out` (never
/// overwritten). Returns (frames written, bytes).
pub fn convert_to_journal(
    readers: Vec<FrameReader>,
    out: &Path,
    symbol: &str,
    created_wall_ns: u64,
) -> Result<(u64, u64), ReplayError> {
    let out_error = |e: std::io::Error| ReplayError {
        file: out.display().to_string(),
        location: Location::File,
        problem: e.to_string(),
        fix: "choose a new output path (--out); journals are never overwritten".to_string(),
    };
    let mut writer =
        crate::journal::JournalWriter::create(out, symbol, created_wall_ns).map_err(out_error)?;
    let mut merger = Merger::new(readers);
    while let Some((_, frame)) = merger.next_frame()? {
        writer
            .append(frame.kind, frame.local_ts_ns, frame.payload)
            .map_err(out_error)?;
    }
    writer.finish().map_err(out_error)
}

/// Decodes every frame of `readers`, merged by time, into a new tape file at `out` (never
/// overwritten) for `spec`. Returns (events written, bytes).
pub fn convert_to_tape(
    readers: Vec<FrameReader>,
    out: &Path,
    spec: SymbolSpec,
) -> Result<(u64, u64), ReplayError> {
    let out_error = |e: std::io::Error| ReplayError {
        file: out.display().to_string(),
        location: Location::File,
        problem: e.to_string(),
        fix: "choose a new output path (--out); tape files are never overwritten".to_string(),
    };
    let mut writer = TapeWriter::create(out, &spec).map_err(out_error)?;
    // Delays kept: the trailer stores the feed-delay median, so a replay of the tape need
    // not count it again.
    let mut decoding = Decoding::new(readers, spec, u64::MAX, true);
    let mut levels: Vec<Level> = Vec::new();
    while let Some(event) = decoding.next_event(&mut levels)? {
        writer
            .append(
                &event,
                levels_of(&levels, &event),
                decoding.last_delay_counts(),
            )
            .map_err(out_error)?;
        levels.clear();
    }
    let stats = decoding.finish();
    writer.finish(&stats).map_err(out_error)
}
