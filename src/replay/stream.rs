//! Streaming replay: the input decoded on a second thread into a bounded ring of chunks
//! while the backtest replays the chunks already decoded, so memory does not grow with the
//! data's length. Also the two traits every replay reads through (`TapeInfo`: what the
//! data held; `EventSource`: walk its events once, in order), implemented by the loaded
//! `Tape` (random access, windows: calibration, scoreboard, `--grid`) and by `TapeStream`.
//!
//! A `TapeStream` makes two passes over the files: `open` decodes everything once without
//! keeping it (counts, first and last time, torn tails and, when asked, the receive −
//! exchange delays for the feed latency's exact median, 8 bytes per event carrying an
//! exchange time), and each `cursor` decodes again on its own thread, handing out chunks
//! of `CHUNK_EVENTS` events through a channel of `CHUNKS_AHEAD` (the look-ahead: the replay
//! needs only the current event; the feed latency is applied to our orders, not to the
//! data). Chunks go back to the decoder for reuse, so a long replay allocates nothing per
//! event. Both passes use the same decoding loop as `Tape::load`, so a replay of a stream
//! and of the loaded tape see the same events, levels and counts.
//!
//! Inputs that can be read only once (a named pipe a generator writes into,
//! `inputs::is_fifo`) are decoded in one pass: no counting pass (so the feed latency must
//! be fixed in the configuration: the data's median would need the whole data first), the
//! counts become known when the replay ends (`TapeInfo::stats` then gives them), and one
//! cursor only.
//!
//! Never: holds more than `CHUNKS_AHEAD + 2` chunks, reorders events, or drops an error (a
//! problem found on the decode thread ends the replay with the file and line).

use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::feed::{BookLevels, Level};
use crate::types::SymbolSpec;

use super::inputs::{names_a_fifo, open_sources, Inputs};
use super::tape::{levels_of, Decoding, Tape, TapeEvent, TapeStats};
use super::ReplayError;

/// Events per chunk handed from the decode thread to the replay.
pub const CHUNK_EVENTS: usize = 4096;
/// Decoded chunks waiting for the replay, at most.
pub const CHUNKS_AHEAD: usize = 4;

/// What a replay's data held: counts, times, file names.
pub trait TapeInfo {
    /// What decoding saw.
    fn stats(&self) -> &TapeStats;
    /// The files, in the order given.
    fn sources(&self) -> &[String];
}

/// A replay's events, walked once from the start by each cursor.
pub trait EventSource: TapeInfo {
    /// The cursor type.
    type Cursor<'a>: EventCursor
    where
        Self: 'a;
    /// A cursor at the first event.
    fn cursor(&self) -> Result<Self::Cursor<'_>, ReplayError>;
}

/// Walks events in time order.
pub trait EventCursor {
    /// The time of the next event without consuming it (None at the end).
    fn peek_ts_ns(&mut self) -> Result<Option<u64>, ReplayError>;
    /// The next event and its book levels (None at the end).
    fn next_event(&mut self) -> Result<Option<(&TapeEvent, BookLevels<'_>)>, ReplayError>;
}

impl TapeInfo for Tape {
    fn stats(&self) -> &TapeStats {
        Tape::stats(self)
    }

    fn sources(&self) -> &[String] {
        Tape::sources(self)
    }
}

/// A cursor over a loaded tape.
pub struct TapeCursor<'a> {
    tape: &'a Tape,
    index: usize,
}

impl EventCursor for TapeCursor<'_> {
    #[inline]
    fn peek_ts_ns(&mut self) -> Result<Option<u64>, ReplayError> {
        Ok(self.tape.events().get(self.index).map(|e| e.local_ts_ns))
    }

    #[inline]
    fn next_event(&mut self) -> Result<Option<(&TapeEvent, BookLevels<'_>)>, ReplayError> {
        let Some(event) = self.tape.events().get(self.index) else {
            return Ok(None);
        };
        self.index += 1;
        Ok(Some((event, self.tape.levels(event))))
    }
}

impl EventSource for Tape {
    type Cursor<'a> = TapeCursor<'a>;

    fn cursor(&self) -> Result<TapeCursor<'_>, ReplayError> {
        Ok(TapeCursor {
            tape: self,
            index: 0,
        })
    }
}

/// Decoded events and their levels (`levels_start` indexes this chunk's `levels`).
#[derive(Default)]
struct Chunk {
    events: Vec<TapeEvent>,
    levels: Vec<Level>,
}

/// The data named by `--data`, replayed by decoding it again for each cursor.
pub struct TapeStream {
    args: Vec<String>,
    spec: SymbolSpec,
    span_ns: u64,
    stats: TapeStats,
    sources: Vec<String>,
    /// Read-once inputs (a FIFO): opened by `open`, taken by the one cursor.
    once: Option<Mutex<Option<Box<Decoding>>>>,
    /// A read-once replay's counts, set by its decode thread at the end of the data.
    counted: Arc<OnceLock<TapeStats>>,
}

impl TapeStream {
    /// Opens the inputs `args` names (the built-in slice when empty) and decodes them once
    /// for the counts, up to `span_ns` of data from the first frame's time (as
    /// `Tape::load_until`). `keep_delays`: collect the receive − exchange delays for the
    /// feed latency's median (needed when `venue.feed_latency = "data"`).
    pub fn open(
        args: &[String],
        spec: SymbolSpec,
        span_ns: u64,
        keep_delays: bool,
    ) -> Result<TapeStream, ReplayError> {
        if names_a_fifo(args)? {
            if keep_delays {
                return Err(ReplayError {
                    file: args.join(", "),
                    location: super::Location::File,
                    problem: "a named pipe is read once, and venue.feed_latency = \"data\" \
                              takes the data's feed-delay median before the replay"
                        .to_string(),
                    fix: "set a fixed feed latency (--set venue.feed_latency=10ms), or give a \
                          regular file"
                        .to_string(),
                });
            }
            return TapeStream::open_once(args, spec, span_ns);
        }
        let inputs = open_sources(args, &spec)?;
        // One whole tape file: its trailer holds the counts and the feed-delay median, so
        // the first pass is not needed.
        if let Inputs::Tapes(readers) = &inputs {
            if let ([reader], u64::MAX) = (readers.as_slice(), span_ns) {
                if let Some(mut stats) = super::tapefile::read_trailer(reader.path()) {
                    if !keep_delays {
                        stats.feed_delay_ns_median = None;
                        stats.feed_delay_samples = 0;
                    }
                    return Ok(TapeStream {
                        args: args.to_vec(),
                        spec,
                        span_ns,
                        stats,
                        sources: vec![reader.name().to_string()],
                        once: None,
                        counted: Arc::default(),
                    });
                }
            }
        }
        let mut decoding = Decoding::from_inputs(inputs, spec, span_ns, keep_delays);
        let sources = decoding.sources();
        let mut scratch: Vec<Level> = Vec::new();
        while decoding.next_event(&mut scratch)?.is_some() {
            scratch.clear();
        }
        Ok(TapeStream {
            args: args.to_vec(),
            spec,
            span_ns,
            stats: decoding.finish(),
            sources,
            once: None,
            counted: Arc::default(),
        })
    }

    /// Read-once inputs: opened now, decoded by the one cursor, counted while replayed.
    fn open_once(
        args: &[String],
        spec: SymbolSpec,
        span_ns: u64,
    ) -> Result<TapeStream, ReplayError> {
        let decoding = Decoding::from_inputs(open_sources(args, &spec)?, spec, span_ns, false);
        Ok(TapeStream {
            args: args.to_vec(),
            spec,
            span_ns,
            stats: TapeStats::default(),
            sources: decoding.sources(),
            once: Some(Mutex::new(Some(Box::new(decoding)))),
            counted: Arc::default(),
        })
    }

    /// True when the inputs are read once (a FIFO): `stats` stay empty until the one
    /// cursor has replayed the data to its end.
    pub fn read_once(&self) -> bool {
        self.once.is_some()
    }
}

impl TapeStream {
    /// Like `open` without the first pass: `stats` stay empty (a pure replay counts for
    /// itself) and nothing is decoded until a cursor starts.
    pub fn open_unsurveyed(
        args: &[String],
        spec: SymbolSpec,
        span_ns: u64,
    ) -> Result<TapeStream, ReplayError> {
        if names_a_fifo(args)? {
            return TapeStream::open_once(args, spec, span_ns);
        }
        let sources =
            Decoding::from_inputs(open_sources(args, &spec)?, spec, span_ns, false).sources();
        Ok(TapeStream {
            args: args.to_vec(),
            spec,
            span_ns,
            stats: TapeStats::default(),
            sources,
            once: None,
            counted: Arc::default(),
        })
    }
}

impl TapeInfo for TapeStream {
    fn stats(&self) -> &TapeStats {
        self.counted.get().unwrap_or(&self.stats)
    }

    fn sources(&self) -> &[String] {
        &self.sources
    }
}

impl EventSource for TapeStream {
    type Cursor<'a> = StreamCursor;

    fn cursor(&self) -> Result<StreamCursor, ReplayError> {
        let (decoding, counted) = match &self.once {
            Some(slot) => {
                let taken = slot.lock().ok().and_then(|mut d| d.take());
                let decoding = taken.ok_or_else(|| ReplayError {
                    file: self.sources.join(", "),
                    location: super::Location::File,
                    problem: "a named pipe can be replayed only once".to_string(),
                    fix: "give a regular file to replay the data more than once".to_string(),
                })?;
                (*decoding, Some(Arc::clone(&self.counted)))
            }
            None => {
                let inputs = open_sources(&self.args, &self.spec)?;
                let decoding = Decoding::from_inputs(inputs, self.spec, self.span_ns, false);
                (decoding, None)
            }
        };
        let (full_tx, full_rx) = bounded(CHUNKS_AHEAD);
        let (empty_tx, empty_rx) = bounded(CHUNKS_AHEAD + 2);
        let thread = std::thread::Builder::new()
            .name("mm-decode".to_string())
            .spawn(move || decode_loop(decoding, &full_tx, &empty_rx, counted.as_deref()))
            .map_err(|e| ReplayError {
                file: self.sources.join(", "),
                location: super::Location::File,
                problem: format!("cannot start the decode thread: {e}"),
                fix: String::new(),
            })?;
        Ok(StreamCursor {
            full: full_rx,
            empty: empty_tx,
            chunk: Chunk::default(),
            index: 0,
            ended: false,
            thread: Some(thread),
        })
    }
}

/// The decode thread: fills chunks (reusing the ones the replay sent back) until the data
/// ends, an error, or the replay hangs up. At the end of the data, `counted` (a read-once
/// replay's) gets the counts before the last chunk goes out.
fn decode_loop(
    mut decoding: Decoding,
    full: &Sender<Result<Chunk, ReplayError>>,
    empty: &Receiver<Chunk>,
    counted: Option<&OnceLock<TapeStats>>,
) {
    loop {
        let mut chunk = empty.try_recv().unwrap_or_default();
        chunk.events.clear();
        chunk.levels.clear();
        while chunk.events.len() < CHUNK_EVENTS {
            match decoding.next_event(&mut chunk.levels) {
                Ok(Some(event)) => chunk.events.push(event),
                Ok(None) => break,
                Err(e) => {
                    let _ = full.send(Err(e));
                    return;
                }
            }
        }
        let last = chunk.events.len() < CHUNK_EVENTS;
        if last {
            if let Some(counted) = counted {
                let _ = counted.set(decoding.finish());
                if !chunk.events.is_empty() {
                    let _ = full.send(Ok(chunk));
                }
                return;
            }
        }
        if !chunk.events.is_empty() && full.send(Ok(chunk)).is_err() {
            return;
        }
        if last {
            return;
        }
    }
}

/// A cursor over a `TapeStream`: the chunk being replayed and the channel of the next.
pub struct StreamCursor {
    full: Receiver<Result<Chunk, ReplayError>>,
    empty: Sender<Chunk>,
    chunk: Chunk,
    index: usize,
    ended: bool,
    thread: Option<JoinHandle<()>>,
}

impl StreamCursor {
    /// Makes the next event current, fetching the next chunk when this one is done;
    /// false at the end.
    #[inline]
    fn fill(&mut self) -> Result<bool, ReplayError> {
        if self.index < self.chunk.events.len() {
            return Ok(true);
        }
        if self.ended {
            return Ok(false);
        }
        match self.full.recv() {
            Ok(Ok(next)) => {
                let done = std::mem::replace(&mut self.chunk, next);
                // The decoder makes a new chunk when none comes back in time.
                let _ = self.empty.try_send(done);
                self.index = 0;
                Ok(true)
            }
            Ok(Err(e)) => {
                self.ended = true;
                Err(e)
            }
            Err(_) => {
                self.ended = true;
                Ok(false)
            }
        }
    }
}

impl EventCursor for StreamCursor {
    fn peek_ts_ns(&mut self) -> Result<Option<u64>, ReplayError> {
        Ok(if self.fill()? {
            self.chunk.events.get(self.index).map(|e| e.local_ts_ns)
        } else {
            None
        })
    }

    #[inline]
    fn next_event(&mut self) -> Result<Option<(&TapeEvent, BookLevels<'_>)>, ReplayError> {
        if !self.fill()? {
            return Ok(None);
        }
        let Some(event) = self.chunk.events.get(self.index) else {
            return Ok(None);
        };
        self.index += 1;
        Ok(Some((event, levels_of(&self.chunk.levels, event))))
    }
}

impl Drop for StreamCursor {
    fn drop(&mut self) {
        // Hang up first so a decoder blocked on a full channel returns.
        let (_, closed) = bounded(0);
        drop(std::mem::replace(&mut self.full, closed));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A backtest's data: loaded whole (random access: `--grid` runs, `--from` windows) or
/// streamed (one replay, memory independent of the data's length).
pub enum ReplayData {
    /// Decoded into memory.
    Loaded(Tape),
    /// Decoded chunk by chunk while replaying.
    Streamed(TapeStream),
}

impl TapeInfo for ReplayData {
    fn stats(&self) -> &TapeStats {
        match self {
            ReplayData::Loaded(t) => TapeInfo::stats(t),
            ReplayData::Streamed(s) => s.stats(),
        }
    }

    fn sources(&self) -> &[String] {
        match self {
            ReplayData::Loaded(t) => TapeInfo::sources(t),
            ReplayData::Streamed(s) => s.sources(),
        }
    }
}

/// A cursor over `ReplayData`.
pub enum ReplayCursor<'a> {
    /// Over a loaded tape.
    Loaded(TapeCursor<'a>),
    /// Over a stream.
    Streamed(StreamCursor),
}

impl EventCursor for ReplayCursor<'_> {
    fn peek_ts_ns(&mut self) -> Result<Option<u64>, ReplayError> {
        match self {
            ReplayCursor::Loaded(c) => c.peek_ts_ns(),
            ReplayCursor::Streamed(c) => c.peek_ts_ns(),
        }
    }

    #[inline]
    fn next_event(&mut self) -> Result<Option<(&TapeEvent, BookLevels<'_>)>, ReplayError> {
        match self {
            ReplayCursor::Loaded(c) => c.next_event(),
            ReplayCursor::Streamed(c) => c.next_event(),
        }
    }
}

impl EventSource for ReplayData {
    type Cursor<'a> = ReplayCursor<'a>;

    fn cursor(&self) -> Result<ReplayCursor<'_>, ReplayError> {
        Ok(match self {
            ReplayData::Loaded(t) => ReplayCursor::Loaded(t.cursor()?),
            ReplayData::Streamed(s) => ReplayCursor::Streamed(s.cursor()?),
        })
    }
}
