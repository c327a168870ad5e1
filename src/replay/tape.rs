//! The decoded tape: every frame of the merged input decoded once into compact `Copy`
//! events and one arena of book levels, plus what loading saw (`TapeStats`), and windows of
//! it opened with a synthetic snapshot (`Tape::window`).
//!
//! Never: reads files itself (it takes readers), or allocates while a replay reads it.

use crate::feed::{BookLevels, DecodeError, Decoder, Event, Level};
use crate::types::SymbolSpec;

use super::inputs::Inputs;
use super::merge::Merger;
use super::reader::FrameReader;
use super::tapefile::TapeFileReader;
use super::{Location, ReplayError};

/// One decoded event and where its levels are in the tape.
#[derive(Clone, Copy, Debug)]
pub struct TapeEvent {
    /// Receive time, ns since the Unix epoch.
    pub local_ts_ns: u64,
    /// The event.
    pub event: Event,
    /// First of its levels in `Tape::levels` (bids, then asks; diffs and snapshots only).
    pub levels_start: u32,
}

/// What loading saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TapeStats {
    /// Frames read (market frames and snapshots).
    pub frames: u64,
    /// Events decoded.
    pub events: u64,
    /// Depth diffs.
    pub depth_diffs: u64,
    /// bookTicker events.
    pub book_tickers: u64,
    /// Trades and aggregate trades.
    pub trades: u64,
    /// REST snapshots.
    pub snapshots: u64,
    /// Frames skipped: a kind the engine does not use (markPrice, kline, …).
    pub skipped_unknown_kind: u64,
    /// Frames skipped: another symbol.
    pub skipped_other_symbol: u64,
    /// Quantities off the lot grid, rounded up by the decoder.
    pub qty_rounded_up: u64,
    /// Journals whose end was torn (a crash or power loss cut the last record): each
    /// one's name, the bytes skipped, and whether they were zeros. Every complete record
    /// before the tear is replayed.
    pub torn_tails: Vec<(String, u64, bool)>,
    /// Median of receive time − exchange event time over events that carry both, ns
    /// (None when no file has receive times or no event has an exchange time).
    pub feed_delay_ns_median: Option<i64>,
    /// Events the median is over.
    pub feed_delay_samples: u64,
    /// First and last receive time, ns.
    pub first_ts_ns: u64,
    /// Last receive time, ns.
    pub last_ts_ns: u64,
}

/// The levels of a diff or snapshot `event` in the arena `levels` its `levels_start`
/// points into (empty for other events).
#[inline]
pub(super) fn levels_of<'a>(levels: &'a [Level], event: &TapeEvent) -> BookLevels<'a> {
    let (bids, asks) = match &event.event {
        Event::Depth(d) => (d.bid_count as usize, d.ask_count as usize),
        Event::Snapshot(s) => (s.bid_count as usize, s.ask_count as usize),
        _ => (0, 0),
    };
    let start = event.levels_start as usize;
    let all = levels.get(start..start + bids + asks).unwrap_or(&[]);
    let (bids, asks) = all.split_at(bids.min(all.len()));
    BookLevels { bids, asks }
}

/// The merged frames of some readers decoded one event at a time: the loop `Tape::load`
/// and the streaming replay (`TapeStream`) share, so both see the same events and counts.
pub(super) struct Decoding {
    source: Source,
    spec: SymbolSpec,
    span_ns: u64,
    end_ns: u64,
    stats: TapeStats,
    /// Receive − exchange time of every event carrying both (for the exact median), when
    /// kept; 8 bytes per such event.
    delays: Option<Vec<i64>>,
    done: bool,
    /// Whether the last event's receive time counts for the feed-delay median.
    last_delay_counts: bool,
}

/// Where `Decoding` reads: frames to decode, or tape files already decoded (read one
/// after another).
enum Source {
    Frames {
        merger: Merger,
        decoder: Box<Decoder>,
        receive_times: Vec<bool>,
    },
    Tapes {
        readers: Vec<TapeFileReader>,
        current: usize,
    },
}

impl Decoding {
    /// Decodes `readers` merged by time, stopping after `span_ns` of data from the first
    /// frame's time. `keep_delays`: collect the feed delays for their median (else
    /// `feed_delay_ns_median` stays None and the samples 0).
    pub(super) fn new(
        readers: Vec<FrameReader>,
        spec: SymbolSpec,
        span_ns: u64,
        keep_delays: bool,
    ) -> Decoding {
        Decoding::from_inputs(Inputs::Frames(readers), spec, span_ns, keep_delays)
    }

    /// Like `new`, over any opened inputs.
    pub(super) fn from_inputs(
        inputs: Inputs,
        spec: SymbolSpec,
        span_ns: u64,
        keep_delays: bool,
    ) -> Decoding {
        let source = match inputs {
            Inputs::Frames(readers) => Source::Frames {
                receive_times: readers.iter().map(|r| r.has_receive_times()).collect(),
                merger: Merger::new(readers),
                decoder: Box::new(Decoder::new(spec)),
            },
            Inputs::Tapes(readers) => Source::Tapes {
                readers,
                current: 0,
            },
        };
        Decoding {
            source,
            spec,
            span_ns,
            end_ns: u64::MAX,
            stats: TapeStats::default(),
            delays: keep_delays.then(Vec::new),
            done: false,
            last_delay_counts: false,
        }
    }

    /// The files, in the order given.
    pub(super) fn sources(&self) -> Vec<String> {
        match &self.source {
            Source::Frames { merger, .. } => merger
                .readers()
                .iter()
                .map(|r| r.name().to_string())
                .collect(),
            Source::Tapes { readers, .. } => readers.iter().map(|r| r.name().to_string()).collect(),
        }
    }

    /// Whether the last event's receive time counts for the feed-delay median.
    pub(super) fn last_delay_counts(&self) -> bool {
        self.last_delay_counts
    }

    /// Counts `event` (received at `ts`; `delay_counts`: its receive time counts for the
    /// feed-delay median) and returns it as a tape event.
    fn account(
        &mut self,
        event: Event,
        ts: u64,
        levels_start: u32,
        delay_counts: bool,
    ) -> TapeEvent {
        let stats = &mut self.stats;
        match &event {
            Event::Depth(_) => stats.depth_diffs += 1,
            Event::Snapshot(_) => stats.snapshots += 1,
            Event::BookTicker(_) => stats.book_tickers += 1,
            Event::Trade(_) => stats.trades += 1,
        }
        let exch_ms = event.exch_ts_ms();
        if let Some(delays) = self.delays.as_mut() {
            if delay_counts && exch_ms > 0 {
                delays.push(ts as i64 - (exch_ms as i64).saturating_mul(1_000_000));
            }
        }
        stats.events += 1;
        stats.last_ts_ns = ts;
        self.last_delay_counts = delay_counts;
        TapeEvent {
            local_ts_ns: ts,
            event,
            levels_start,
        }
    }

    /// The first frame's time starts the span; false once past its end.
    fn in_span(&mut self, ts: u64) -> bool {
        if self.stats.frames == 0 {
            self.stats.first_ts_ns = ts;
            self.end_ns = ts.saturating_add(self.span_ns);
        }
        ts <= self.end_ns
    }

    /// `next_event` over tape files, one after another.
    fn next_tape_event(
        &mut self,
        levels: &mut Vec<Level>,
    ) -> Result<Option<TapeEvent>, ReplayError> {
        loop {
            let Source::Tapes { readers, current } = &mut self.source else {
                return Ok(None);
            };
            let Some(reader) = readers.get_mut(*current) else {
                return Ok(None);
            };
            let start = levels.len();
            let Some((event, delay_counts)) = reader.next_event(levels)? else {
                *current += 1;
                continue;
            };
            let ts = event.local_ts_ns;
            if self.stats.events > 0 && ts < self.stats.last_ts_ns {
                return Err(ReplayError {
                    file: reader.name().to_string(),
                    location: Location::File,
                    problem: "starts before the previous tape file ends".to_string(),
                    fix: "give tape files in time order (they are read one after another, \
                          not merged)"
                        .to_string(),
                });
            }
            if !self.in_span(ts) {
                levels.truncate(start);
                return Ok(None);
            }
            self.stats.frames += 1;
            return Ok(Some(self.account(
                event.event,
                ts,
                event.levels_start,
                delay_counts,
            )));
        }
    }

    /// The next event (None at the end): its levels (bids, then asks) are appended to
    /// `levels`, and its `levels_start` is where they begin in it.
    pub(super) fn next_event(
        &mut self,
        levels: &mut Vec<Level>,
    ) -> Result<Option<TapeEvent>, ReplayError> {
        if self.done {
            return Ok(None);
        }
        if matches!(self.source, Source::Tapes { .. }) {
            let next = self.next_tape_event(levels)?;
            self.done = next.is_none();
            return Ok(next);
        }
        let spec = self.spec;
        while let Source::Frames {
            merger,
            decoder,
            receive_times,
        } = &mut self.source
        {
            let Some((index, frame)) = merger.next_frame()? else {
                break;
            };
            let (ts, payload, delay_counts) =
                (frame.local_ts_ns, frame.payload, receive_times[index]);
            if self.stats.frames == 0 {
                self.stats.first_ts_ns = ts;
                self.end_ns = ts.saturating_add(self.span_ns);
            }
            if ts > self.end_ns {
                break;
            }
            let stats = &mut self.stats;
            stats.frames += 1;
            if !stream_is_used(payload) {
                stats.skipped_unknown_kind += 1;
                continue;
            }
            let event = match decoder.decode(payload, ts) {
                Ok(event) => event,
                Err(DecodeError::UnknownKind) => {
                    stats.skipped_unknown_kind += 1;
                    continue;
                }
                Err(DecodeError::WrongSymbol) => {
                    stats.skipped_other_symbol += 1;
                    continue;
                }
                Err(e) => {
                    let fix = match e {
                        DecodeError::OffGrid => format!(
                            "a price is off the configured grid: check market.symbol, \
                             market.tick_size and market.step_size for this data (now {} \
                             tick {} step {})",
                            spec.symbol,
                            atoms_text(spec.tick_atoms),
                            atoms_text(spec.step_atoms)
                        ),
                        _ => "the frame is not a Binance market-data message this engine \
                              reads; remove the line or repair the file"
                            .to_string(),
                    };
                    return Err(merger.readers()[index]
                        .error_here(format!("the decoder refused the frame: {e}"), &fix));
                }
            };
            let start = levels.len();
            let book_levels = match &event {
                Event::Depth(d) => Some(decoder.diff_levels(d)),
                Event::Snapshot(s) => Some(decoder.snapshot_levels(s)),
                Event::BookTicker(_) | Event::Trade(_) => None,
            };
            if let Some(book_levels) = book_levels {
                levels.extend_from_slice(book_levels.bids);
                levels.extend_from_slice(book_levels.asks);
            }
            let levels_start = u32::try_from(start).map_err(|_| {
                merger.readers()[index].error_here(
                    "more than 4·10⁹ book levels in one replay".to_string(),
                    "replay less data at once (--duration)",
                )
            })?;
            return Ok(Some(self.account(event, ts, levels_start, delay_counts)));
        }
        self.done = true;
        Ok(None)
    }

    /// What decoding saw (call after the last event).
    pub(super) fn finish(mut self) -> TapeStats {
        let mut stats = std::mem::take(&mut self.stats);
        if let Source::Frames {
            merger, decoder, ..
        } = &self.source
        {
            stats.qty_rounded_up = decoder.stats().qty_rounded_up;
            stats.torn_tails = merger
                .readers()
                .iter()
                .filter_map(|r| {
                    r.torn_tail()
                        .map(|(bytes, zeros)| (r.name().to_string(), bytes, zeros))
                })
                .collect();
        }
        if let Some(delays) = self.delays.as_mut() {
            stats.feed_delay_samples = delays.len() as u64;
            if !delays.is_empty() {
                let mid = delays.len() / 2;
                let (_, median, _) = delays.select_nth_unstable(mid);
                stats.feed_delay_ns_median = Some(*median);
            }
        }
        stats
    }
}

/// The whole input decoded once: compact `Copy` events in time order and one arena of
/// book levels. Replays read it without decoding or allocating.
pub struct Tape {
    events: Vec<TapeEvent>,
    levels: Vec<Level>,
    stats: TapeStats,
    sources: Vec<String>,
}

impl Tape {
    /// Reads and decodes every frame of `readers`, merged by time.
    pub fn load(readers: Vec<FrameReader>, spec: SymbolSpec) -> Result<Tape, ReplayError> {
        Tape::load_until(readers, spec, u64::MAX)
    }

    /// Like `load`, stopping after `span_ns` of data (from the first frame's time).
    pub fn load_until(
        readers: impl Into<Inputs>,
        spec: SymbolSpec,
        span_ns: u64,
    ) -> Result<Tape, ReplayError> {
        let mut decoding = Decoding::from_inputs(readers.into(), spec, span_ns, true);
        let sources = decoding.sources();
        let mut events = Vec::new();
        let mut levels: Vec<Level> = Vec::new();
        while let Some(event) = decoding.next_event(&mut levels)? {
            events.push(event);
        }
        let stats = decoding.finish();
        Ok(Tape {
            events,
            levels,
            stats,
            sources,
        })
    }

    /// The events, in time order.
    pub fn events(&self) -> &[TapeEvent] {
        &self.events
    }

    /// The levels of a diff or snapshot event (empty for others).
    #[inline]
    pub fn levels(&self, event: &TapeEvent) -> BookLevels<'_> {
        levels_of(&self.levels, event)
    }

    /// What loading saw.
    pub fn stats(&self) -> &TapeStats {
        &self.stats
    }

    /// The files, in the order given.
    pub fn sources(&self) -> &[String] {
        &self.sources
    }

    /// The events received in `start_ns ≤ t < end_ns` as a tape of their own, ready to
    /// replay from its first event (calibration's walk-forward windows).
    ///
    /// A window that starts after the data's REST snapshot has no snapshot of its own, and
    /// the engine only quotes from a synced book. So the order book is rebuilt from this
    /// tape's snapshot and diffs up to `start_ns` with the engine's own `SyncedBook`
    /// (`book_levels` per side, as `market_data.book_levels`) and, when it is in sync
    /// there, the window opens with a synthetic REST snapshot of that book: `lastUpdateId`
    /// = the update id the book is at, received at `start_ns`, every level the book holds.
    /// The engine then starts exactly as a live start with a fresh snapshot would; the
    /// touch, OFI and σ start cold, as they do live. When the book is not in sync at
    /// `start_ns` (before the first snapshot, or after a gap) the window has no synthetic
    /// snapshot and the engine waits for the next one in the data:
    /// `starts_with_snapshot` tells which.
    ///
    /// Counts in `stats` are the window's; the feed-delay median and its sample count are
    /// the whole tape's (a property of the recording, used for the backtest's feed
    /// latency, so every window of one recording gets the same). Not hot path: allocates.
    pub fn window(
        &self,
        start_ns: u64,
        end_ns: u64,
        book_levels: usize,
    ) -> Result<Tape, ReplayError> {
        let too_many = || ReplayError {
            file: self.sources.join(", "),
            location: Location::File,
            problem: "more than 4·10⁹ book levels in one replay".to_string(),
            fix: "replay less data at once (--duration)".to_string(),
        };
        let first_in = self.events.partition_point(|e| e.local_ts_ns < start_ns);
        let end = self.events.partition_point(|e| e.local_ts_ns < end_ns);
        let inside = self.events.get(first_in..end.max(first_in)).unwrap_or(&[]);
        let mut events = Vec::with_capacity(inside.len() + 1);
        let mut levels: Vec<Level> = Vec::new();
        // The window's own feed latency (never the whole tape's: a backtest of one part must
        // not see another part's data, e.g. the held-out part's).
        let mut delays: Vec<i64> = if self.stats.feed_delay_samples > 0 {
            inside
                .iter()
                .filter(|e| e.event.exch_ts_ms() > 0)
                .map(|e| {
                    e.local_ts_ns as i64 - (e.event.exch_ts_ms() as i64).saturating_mul(1_000_000)
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut stats = TapeStats {
            feed_delay_samples: delays.len() as u64,
            ..TapeStats::default()
        };
        if !delays.is_empty() {
            let mid = delays.len() / 2;
            let (_, median, _) = delays.select_nth_unstable(mid);
            stats.feed_delay_ns_median = Some(*median);
        }

        // The book as the engine would hold it just before `start_ns`.
        let mut book = crate::book::SyncedBook::new(book_levels);
        for event in &self.events[..first_in] {
            match &event.event {
                Event::Depth(d) => {
                    let _ = book.on_diff(d, self.levels(event));
                }
                Event::Snapshot(s) => {
                    let _ = book.on_snapshot(s, self.levels(event));
                }
                Event::BookTicker(_) | Event::Trade(_) => {}
            }
        }
        let update_id = match book.state() {
            crate::book::SyncState::Live { final_update_id } => Some(final_update_id),
            crate::book::SyncState::AwaitingFirst { last_update_id } => Some(last_update_id),
            crate::book::SyncState::Buffering => None,
        };
        if let Some(last_update_id) = update_id {
            let held = book.book_any_state();
            levels.extend(held.levels(crate::types::Side::Buy));
            let bid_count = levels.len();
            levels.extend(held.levels(crate::types::Side::Sell));
            let ask_count = levels.len() - bid_count;
            let snapshot = crate::feed::Snapshot {
                last_update_id,
                bid_count: u32::try_from(bid_count).map_err(|_| too_many())?,
                ask_count: u32::try_from(ask_count).map_err(|_| too_many())?,
                local_ts_ns: start_ns,
            };
            events.push(TapeEvent {
                local_ts_ns: start_ns,
                event: Event::Snapshot(snapshot),
                levels_start: 0,
            });
            stats.snapshots += 1;
        }

        for event in inside {
            let copied = self.levels(event);
            let levels_start = u32::try_from(levels.len()).map_err(|_| too_many())?;
            levels.extend_from_slice(copied.bids);
            levels.extend_from_slice(copied.asks);
            match &event.event {
                Event::Depth(_) => stats.depth_diffs += 1,
                Event::Snapshot(_) => stats.snapshots += 1,
                Event::BookTicker(_) => stats.book_tickers += 1,
                Event::Trade(_) => stats.trades += 1,
            }
            events.push(TapeEvent {
                levels_start,
                ..*event
            });
        }
        stats.frames = events.len() as u64;
        stats.events = events.len() as u64;
        stats.first_ts_ns = events.first().map_or(start_ns, |e| e.local_ts_ns);
        stats.last_ts_ns = events.last().map_or(start_ns, |e| e.local_ts_ns);
        Ok(Tape {
            events,
            levels,
            stats,
            sources: self.sources.clone(),
        })
    }

    /// True when the first event is a REST snapshot (a recording's own, or the synthetic
    /// one `window` opens with): a replay of this tape starts with a synced book.
    pub fn starts_with_snapshot(&self) -> bool {
        matches!(
            self.events.first().map(|e| &e.event),
            Some(Event::Snapshot(_))
        )
    }
}

/// False for a combined-stream message of a stream the engine does not read
/// (`markPrice`, kline, ticker, …), told by its `stream` name; true otherwise (the
/// decoder then judges the frame). Such frames are skipped before decoding because their
/// fields (`"p"` of a mark price, say) need not fit the symbol's grid.
pub(super) fn stream_is_used(json: &[u8]) -> bool {
    const PREFIX: &[u8] = b"{\"stream\":\"";
    let Some(rest) = json.strip_prefix(PREFIX) else {
        return true;
    };
    let name = &rest[..rest.iter().position(|&b| b == b'"').unwrap_or(rest.len())];
    let Some(at) = name.iter().position(|&b| b == b'@') else {
        return true;
    };
    let kind = &name[at + 1..];
    kind.starts_with(b"depth")
        || kind.starts_with(b"bookTicker")
        || kind == b"trade"
        || kind == b"aggTrade"
}

fn atoms_text(atoms: i64) -> String {
    let mut buf = [0u8; crate::types::DECIMAL_TEXT_MAX];
    let len = crate::types::write_atoms(atoms, crate::types::DECIMALS, &mut buf);
    let text = String::from_utf8_lossy(&buf[..len]).into_owned();
    let text = text.trim_end_matches('0');
    text.trim_end_matches('.').to_string()
}
