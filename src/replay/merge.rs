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

/// Merges several readers by time (ties: the reader given first).
pub struct Merger {
    readers: Vec<FrameReader>,
    live: Vec<bool>,
    started: bool,
    /// The reader whose frame was handed out last (advanced on the next call).
    last: Option<usize>,
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
        }
    }

    /// The readers.
    pub fn readers(&self) -> &[FrameReader] {
        &self.readers
    }

    /// The next frame in time order and the index of its reader; `None` at the end.
    pub fn next_frame(&mut self) -> Result<Option<(usize, Frame<'_>)>, ReplayError> {
        if !self.started {
            self.started = true;
            for (reader, live) in self.readers.iter_mut().zip(self.live.iter_mut()) {
                *live = reader.advance()?;
            }
        } else if let Some(i) = self.last.take() {
            self.live[i] = self.readers[i].advance()?;
        }
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
        let Some((i, _)) = best else {
            return Ok(None);
        };
        self.last = Some(i);
        Ok(Some((i, self.readers[i].frame())))
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
