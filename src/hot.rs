//! The hot thread's market-data loop: one pinned thread busy-polls mio, reads Binance's
//! combined stream through `net::Connection`, decodes each frame in place, feeds the
//! `Engine`, optionally copies the raw frame into the journal ring, and hands `Copy`
//! records to the side thread.
//!
//! Owns: the `Poll`, the market-data connection (and, during a rotation, its standby),
//! the snapshot request/response hand-off
//! with the REST thread (`SnapshotFetcher`, which does the blocking HTTPS GET off this
//! thread), the wall-clock offset, the `--duration` deadline.
//!
//! Rotation is make-before-break: `ROTATION_LEAD_NS` (at most half the connection's
//! `max_age_ns`) before the market-data connection's age limit, a standby connection to the
//! same streams opens; its frames are decoded only to note their ids. Once the primary has
//! applied everything the standby has shown (depth `u`, trade id, bookTicker `u` all at or
//! beyond the standby's newest), the standby becomes the primary and the old one is closed
//! politely: no snapshot, no gap, no `Disconnected`. The promoted connection's first
//! frames that the old one already delivered are skipped (trades, tickers by id; diffs by
//! the book's own stale rule). A standby that has not caught up by the age limit is
//! dropped and the old connection rotates break-before-make as before.
//!
//! Never: allocates in steady state (a snapshot body arriving from the REST thread is the
//! one exception: it is rare and its buffer is freed here), blocks, formats text, or logs —
//! everything the log needs leaves as a `HotRecord` through `try_send` (full channel ⇒
//! dropped and counted).

use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use mio::{Events, Poll, Registry, Token};

use crate::engine::{Engine, EngineStats, Stage, Step};
use crate::feed::{BookLevels, DecodeError, Decoder, Event};
use crate::journal::{FrameRing, RecordKind};
use crate::net::rest::RestClient;
use crate::net::{
    ConnConfig, Connection, Handler, MessageKind, NetEvent, RxClock, RxStamps, TlsRoots,
};
use crate::shutdown::{Deadline, Joined, Shutdown, Worker};
use crate::telemetry::log::LogHandle;
use crate::time::{Clock, SystemClock};
use crate::types::Symbol;

/// Depth of the hot → side record channel.
pub const HOT_RECORD_CHANNEL_DEPTH: usize = 4096;
/// How often the loop sends a `Stats` record, ns.
pub const STATS_EVERY_NS: u64 = 1_000_000_000;
/// Wait after a failed snapshot before asking again, ns.
pub const SNAPSHOT_RETRY_NS: u64 = 1_000_000_000;
/// The market-data connection's mio token; sinks with connections of their own use others.
pub const MARKET_TOKEN: Token = Token(0);
/// The standby token of a rotation (the two alternate; sinks with connections of their
/// own use others).
pub const STANDBY_TOKEN: Token = Token(2);
/// A rotation's standby opens this long before the connection's age limit (or at half
/// its age, if that is sooner), ns.
pub const ROTATION_LEAD_NS: u64 = 60_000_000_000;
/// Longest wind-down after the loop's end (live: cancel everything, wait for the answers).
pub const WIND_DOWN_MAX_NS: u64 = 65_000_000_000;
/// Refused market frames told to the log one by one (then one in `DECODE_ERRORS_TOLD_EVERY`).
pub const DECODE_ERRORS_TOLD: u64 = 20;
/// After the first `DECODE_ERRORS_TOLD`, one refused frame in this many is told.
pub const DECODE_ERRORS_TOLD_EVERY: u64 = 1_000;
/// Bytes of a refused frame copied into its `HotRecord::DecodeFailed`.
pub const DECODE_HEAD_BYTES: usize = 96;

/// What the hot thread tells the side thread (all `Copy`, no heap).
#[derive(Clone, Copy, Debug)]
pub enum HotRecord {
    /// A connection event.
    Net(NetEvent),
    /// A snapshot was requested (start, gap, reconnect).
    SnapshotRequested {
        /// When, wall ns.
        at_ns: u64,
        /// Gaps seen so far.
        gaps: u64,
    },
    /// A snapshot was loaded.
    SnapshotLoaded {
        /// When, wall ns.
        at_ns: u64,
        /// Its size in bytes.
        bytes: usize,
    },
    /// A snapshot arrived but is older than the buffered diffs: asked for again after
    /// `SNAPSHOT_RETRY_NS`.
    SnapshotTooOld {
        /// When, wall ns.
        at_ns: u64,
    },
    /// The REST thread could not fetch a snapshot.
    SnapshotFailed {
        /// When, wall ns.
        at_ns: u64,
    },
    /// A make-before-break rotation opened its standby connection.
    RotationStarted {
        /// When, wall ns.
        at_ns: u64,
    },
    /// The standby caught up and took over; the old connection was closed.
    Rotated {
        /// When, wall ns.
        at_ns: u64,
        /// The newest depth update id applied when it switched.
        depth_u: u64,
    },
    /// The standby had not caught up by the age limit: dropped (the old connection
    /// rotates break-before-make).
    RotationAbandoned {
        /// When, wall ns.
        at_ns: u64,
    },
    /// Pinning the hot thread failed (a warning, not a failure).
    PinFailed {
        /// The core asked for.
        core: usize,
    },
    /// A market frame the decoder refused (the first `DECODE_ERRORS_TOLD` of a session, then
    /// one in `DECODE_ERRORS_TOLD_EVERY`): its start, copied, for the log.
    DecodeFailed {
        /// When, wall ns.
        at_ns: u64,
        /// Why.
        error: DecodeError,
        /// Frames refused so far (this one included).
        total: u64,
        /// The frame's length, bytes.
        len: usize,
        /// Its first `head_len` bytes.
        head: [u8; DECODE_HEAD_BYTES],
        /// How many bytes of `head` are the frame's.
        head_len: u8,
    },
    /// Periodic counters.
    Stats(LoopStats),
    /// Exchange event time → local receive, ns.
    FeedLatency {
        /// Nanoseconds.
        ns: u64,
    },
    /// The read of the market event (the socket read that returned its last bytes was
    /// issued) → the last order action handed to the venue, ns.
    TickToOrder {
        /// Nanoseconds.
        ns: u64,
    },
    /// One loop iteration that did work, ns.
    Iteration {
        /// Nanoseconds.
        ns: u64,
    },
    /// The stages of one market event that decided a quote (paper, live), ns each: read
    /// (the socket read that returned the event's last bytes was issued) → decoded → book
    /// applied → quote decided → every order action handed to the venue (`None`: the
    /// quote sent none). The read stage is split by the transport's receive stamps
    /// (`net::RxStamps`): socket read, TLS open, queued, WebSocket frame, decode.
    Stages {
        /// The poll's stamp (before `Connection::poll`) → the read issued: the reads and
        /// messages ahead of this one in the same poll.
        poll_to_read: u32,
        /// The socket read: issued → returned with data.
        socket_read: u32,
        /// Returned → decrypted bytes handed to the WebSocket layer (TLS records opened).
        tls_open: u32,
        /// Handed over → the WebSocket layer starts on this message (messages ahead of it
        /// from the same read handled first).
        queued: u32,
        /// The WebSocket frame parsed (tungstenite) and the message handed out.
        ws_frame: u32,
        /// The message → decoded (JSON to a typed event).
        decode: u32,
        /// Read issued → decoded: the five above after `poll_to_read`.
        read_to_decoded: u32,
        /// Decoded → book applied (bookTicker: the touch stored).
        decoded_to_book: u32,
        /// Book applied → quote decided (OFI, σ, quoter).
        book_to_quote: u32,
        /// Quote decided → the last order action handed to the venue (order manager,
        /// risk, encode, sign, frame, seal, write).
        quote_to_order: Option<u32>,
    },
}

/// Per-stage timestamps of one market event, taken with the hot loop's clock as the
/// engine calls `mark` (paper, live). Integers only; `Copy` clock.
#[derive(Clone, Copy, Debug)]
pub struct Stamps {
    clock: SystemClock,
    wall_offset_ns: u64,
    /// When the book stage was done (0: not reached).
    pub book_ns: u64,
    /// When a quote was decided (0: none).
    pub quote_ns: u64,
}

impl Stamps {
    /// Fresh stamps reading `clock` (+ `wall_offset_ns`, the loop's time base).
    #[inline]
    pub fn new(clock: SystemClock, wall_offset_ns: u64) -> Stamps {
        Stamps {
            clock,
            wall_offset_ns,
            book_ns: 0,
            quote_ns: 0,
        }
    }

    /// Marks `stage` done now.
    #[inline]
    pub fn mark(&mut self, stage: Stage) {
        let now = self.clock.mono_ns() + self.wall_offset_ns;
        match stage {
            Stage::Book => self.book_ns = now,
            Stage::Quote => self.quote_ns = now,
        }
    }
}

/// Counters of the loop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoopStats {
    /// Wall-clock ns of this snapshot of the counters.
    pub at_ns: u64,
    /// Frames received.
    pub frames: u64,
    /// Frames the decoder refused.
    pub decode_errors: u64,
    /// Frames dropped because the journal ring was full.
    pub journal_dropped: u64,
    /// Records dropped because the side channel was full.
    pub records_dropped: u64,
    /// The engine's counters.
    pub engine: EngineStats,
    /// Reconnects (disconnect events).
    pub disconnects: u64,
    /// Loop iterations.
    pub iterations: u64,
    /// Warm-ups of the quiet market's hot path run (`engine.warm_every_us`).
    pub warm_ups: u64,
}

/// Settings of the loop.
#[derive(Clone, Debug)]
pub struct FeedLoopConfig {
    /// The connection (full combined-stream URL inside).
    pub conn: ConnConfig,
    /// Core to pin to, if any.
    pub cpu_core: Option<usize>,
    /// Stop after this long, ns (`--duration`).
    pub duration_ns: Option<u64>,
    /// Warm the decode → quote path after this long without market data, and again as
    /// long as it stays quiet, ns; 0 = never (`engine.warm_every_us`, `WarmUp`).
    pub warm_every_ns: u64,
}

/// Longest frame kept for the warm-up (a bookTicker frame is ~200 bytes).
const WARM_FRAME_MAX: usize = 512;

/// The warm-up of the hot path while the market is quiet. On a quiet market the hot
/// thread spends milliseconds in its readiness poll between events, and the next event
/// finds the decoder, the estimators and the quoter out of the caches: in place, on this
/// machine, the decode → quote span's median halved when the same data came ten times
/// denser (docs/latency.md). So, every `every_ns` without market data, the loop decodes a
/// copy of the first bookTicker frame it received (`Decoder::warm`) and computes the
/// quote of the current touch (`FeedSink::warm` → `Engine::warm`), both thrown away:
/// neither changes a later result. Owns only the copy and its timer.
struct WarmUp {
    every_ns: u64,
    /// The next warm-up is due at this loop time (ns), if no market data comes first.
    due_ns: u64,
    frame: [u8; WARM_FRAME_MAX],
    len: usize,
}

impl WarmUp {
    fn new(every_ns: u64, now_ns: u64) -> WarmUp {
        WarmUp {
            every_ns,
            due_ns: now_ns.saturating_add(every_ns),
            frame: [0; WARM_FRAME_MAX],
            len: 0,
        }
    }

    /// Keeps a copy of the first bookTicker frame that fits (a copy per session).
    #[inline]
    fn keep(&mut self, payload: &[u8]) {
        if self.len == 0 && self.every_ns > 0 {
            if let Some(slot) = self.frame.get_mut(..payload.len()) {
                slot.copy_from_slice(payload);
                self.len = payload.len();
            }
        }
    }

    /// After a loop turn: market data came (`busy`) restarts the timer; else, when due,
    /// warms the decoder and the sink. Returns whether it warmed.
    #[inline]
    fn turn<S: FeedSink>(
        &mut self,
        busy: bool,
        now_ns: u64,
        decoder: &mut Decoder,
        sink: &mut S,
    ) -> bool {
        if self.every_ns == 0 {
            return false;
        }
        if busy {
            self.due_ns = now_ns.saturating_add(self.every_ns);
            return false;
        }
        if now_ns < self.due_ns {
            return false;
        }
        self.due_ns = now_ns.saturating_add(self.every_ns);
        if let Some(frame) = self.frame.get(..self.len).filter(|f| !f.is_empty()) {
            decoder.warm(frame);
        }
        sink.warm(now_ns);
        true
    }
}

/// What the loop feeds: the bare `Engine` (record mode) or a trading strategy with its
/// venue (paper, live). Called on the hot thread: implementations never allocate, block or
/// format.
pub trait FeedSink {
    /// Whether the loop measures and sends latency samples (`FeedLatency`, `TickToOrder`,
    /// `Iteration`). Record mode has no use for them: it skips the clock read and the
    /// channel traffic, which would otherwise crowd out the records its log needs.
    const TIMED: bool;
    /// One decoded market event. Returns what changed and how many order actions were
    /// handed to the venue (the loop times tick-to-order when there were any). A `TIMED`
    /// sink marks the engine's stages in `stamps` (`Trader::on_market_stamped`).
    fn on_event(
        &mut self,
        event: &Event,
        levels: BookLevels<'_>,
        now_ns: u64,
        stamps: &mut Stamps,
    ) -> (Step, u32);
    /// The market-data connection dropped: the book must be resynced.
    fn on_disconnect(&mut self, now_ns: u64);
    /// Once per loop iteration: timers (venue reports due, etc.). `registry` is the loop's
    /// mio registry, for a sink that owns connections of its own (live order entry).
    fn on_idle(&mut self, now_ns: u64, registry: &Registry);
    /// The market is quiet: run the touch → quote path without keeping its result
    /// (`Engine::warm`), so that the next event finds it in the caches. Never changes a
    /// result. Only `TIMED` sinks quote; the default does nothing.
    #[inline]
    fn warm(&mut self, _now_ns: u64) {}
    /// A mio readiness event for a token other than the market data's (`MARKET_TOKEN`).
    fn on_readiness(&mut self, _event: &mio::event::Event) {}
    /// `Some(why)` when the sink cannot go on (e.g. live trading found orders it may not
    /// cancel): the loop ends as `LoopEnd::Sink` and winds down.
    fn fatal(&self) -> Option<&'static str> {
        None
    }
    /// After the loop's end (signal, deadline, fatal): called every iteration, with the
    /// market data still read, until it returns true or `WIND_DOWN_MAX_NS` passes (the
    /// sink keeps its own, shorter deadline). `on_idle` is not called meanwhile: the sink
    /// drives its own connections here. Live trading cancels every order and waits for the
    /// confirmations.
    fn wind_down(&mut self, _now_ns: u64, _registry: &Registry) -> bool {
        true
    }
    /// The core's counters.
    fn engine_stats(&self) -> EngineStats;
}

impl FeedSink for Engine {
    const TIMED: bool = false;

    #[inline]
    fn on_event(
        &mut self,
        event: &Event,
        levels: BookLevels<'_>,
        now_ns: u64,
        _stamps: &mut Stamps,
    ) -> (Step, u32) {
        (Engine::on_event(self, event, levels, now_ns), 0)
    }

    fn on_disconnect(&mut self, _now_ns: u64) {
        self.resync();
    }

    #[inline]
    fn on_idle(&mut self, _now_ns: u64, _registry: &Registry) {}

    fn engine_stats(&self) -> EngineStats {
        self.stats()
    }
}

/// The combined-stream URL for a symbol: bookTicker, depth@100ms diffs and trades.
pub fn stream_url(ws_base: &str, symbol: &Symbol) -> String {
    let lower = symbol.as_str().to_ascii_lowercase();
    format!(
        "{}/stream?streams={lower}@bookTicker/{lower}@depth@100ms/{lower}@trade",
        ws_base.trim_end_matches('/')
    )
}

/// The REST snapshot URL for a symbol.
pub fn snapshot_url(rest_base: &str, symbol: &Symbol, limit: u32) -> String {
    format!(
        "{}/api/v3/depth?symbol={}&limit={limit}",
        rest_base.trim_end_matches('/'),
        symbol.as_str()
    )
}

/// The REST thread: fetches a snapshot each time it is asked.
pub struct SnapshotFetcher {
    request_tx: Sender<()>,
    body_rx: Receiver<Option<Vec<u8>>>,
    thread: Worker<()>,
}

impl SnapshotFetcher {
    /// Starts the thread. `url` is the full snapshot URL; failures are logged here, off the
    /// hot thread, and reported to it as `None`.
    pub fn start(url: String, roots: TlsRoots, log: LogHandle) -> std::io::Result<SnapshotFetcher> {
        let (request_tx, request_rx) = bounded::<()>(1);
        let (body_tx, body_rx) = bounded(1);
        let thread = Worker::spawn("mm-rest", move || {
            let client = RestClient::new(&roots, Duration::from_secs(10))
                .map(|c| c.with_max_body_bytes(16 << 20));
            while request_rx.recv().is_ok() {
                let result = match &client {
                    Ok(client) => match client.get(&url) {
                        Ok(resp) if resp.status == 200 => Ok(resp.body),
                        Ok(resp) => Err(format!(
                            "GET {url}: HTTP {} {}",
                            resp.status,
                            String::from_utf8_lossy(&resp.body[..resp.body.len().min(200)])
                        )),
                        Err(e) => Err(format!("GET {url}: {e}")),
                    },
                    Err(e) => Err(format!("REST client: {e}")),
                };
                let body = match result {
                    Ok(body) => {
                        log.info(format_args!("snapshot: {} bytes from {url}", body.len()));
                        Some(body)
                    }
                    Err(text) => {
                        log.warn(format_args!("snapshot failed: {text}; retrying in 1 s"));
                        None
                    }
                };
                if body_tx.send(body).is_err() {
                    return;
                }
            }
        })?;
        Ok(SnapshotFetcher {
            request_tx,
            body_rx,
            thread,
        })
    }

    /// Stops the thread, waiting for it until `deadline` at most. A thread still busy
    /// with a snapshot GET then (its own timeout is 10 s) is left behind and logged as a
    /// WARN: nothing depends on it after the stop.
    pub fn join(self, deadline: &Deadline, log: &LogHandle) {
        let SnapshotFetcher {
            request_tx,
            body_rx,
            thread,
        } = self;
        drop(request_tx);
        drop(body_rx);
        match thread.join_by(deadline) {
            Joined::Done(()) => {}
            Joined::Unfinished => log.warn(format_args!(
                "stop: the REST snapshot thread (mm-rest) was still busy (a depth snapshot \
                 GET) at the stop's deadline; left behind, nothing depends on it"
            )),
            Joined::Panicked => log.warn(format_args!(
                "stop: the REST snapshot thread (mm-rest) panicked; nothing depends on it"
            )),
        }
    }
}

/// Why the loop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoopEnd {
    /// Ctrl+C / SIGTERM.
    Signal,
    /// `--duration` elapsed.
    Duration,
    /// The sink could not go on (`FeedSink::fatal`).
    Sink(&'static str),
}

impl LoopEnd {
    /// Why, in words (for logs).
    pub const fn describe(self) -> &'static str {
        match self {
            LoopEnd::Signal => "signal",
            LoopEnd::Duration => "duration reached",
            LoopEnd::Sink(why) => why,
        }
    }
}

/// Runs the loop on the calling thread until a signal or the deadline. The caller has
/// already built everything (allocation happens before this call).
#[allow(clippy::too_many_arguments)]
pub fn run_feed_loop<S: FeedSink>(
    cfg: &FeedLoopConfig,
    engine: &mut S,
    decoder: &mut Decoder,
    mut journal: Option<&mut FrameRing>,
    records: &Sender<HotRecord>,
    fetcher: &SnapshotFetcher,
    shutdown: &Shutdown,
) -> std::io::Result<(LoopEnd, LoopStats)> {
    let clock = SystemClock::new();
    let wall_offset_ns = clock.wall_ns().saturating_sub(clock.mono_ns());
    let now = || clock.mono_ns() + wall_offset_ns;

    if let Some(core) = cfg.cpu_core {
        // Only cores this process may run on are tried (the config check refuses others;
        // this guards direct callers). Every other thread of the process leaves that core
        // (`cpu`).
        let online = crate::config::core_is_online(core);
        let ok = online && crate::cpu::pin_hot_thread(core);
        if !ok {
            let _ = records.try_send(HotRecord::PinFailed { core });
        }
    }

    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(64);
    let start_ns = now();
    let mut conn = Connection::new(cfg.conn.clone(), MARKET_TOKEN, start_ns)
        .map_err(|e| std::io::Error::other(format!("market-data connection: {e}")))?;
    if S::TIMED {
        // Receive stamps per layer (socket read, TLS, WebSocket) for the stage histograms.
        conn.set_rx_clock(Some(RxClock::new(clock, wall_offset_ns)));
    }
    let deadline_ns = cfg.duration_ns.map(|d| start_ns.saturating_add(d));

    let mut stats = LoopStats::default();
    let mut standby: Option<Connection> = None;
    // Newest ids applied from the primary, seen on the standby, and the skip threshold of
    // a freshly promoted connection.
    let mut applied = SeenIds::default();
    let mut shown = SeenIds::default();
    let mut skip = SeenIds::default();
    let lead_ns = ROTATION_LEAD_NS.min(cfg.conn.max_age_ns / 2);
    let mut want_snapshot = false;
    let mut snapshot_in_flight = false;
    let mut snapshot_retry_at_ns = 0u64;
    let mut next_stats_ns = start_ns + STATS_EVERY_NS;
    // Record mode passes 0: it does not quote (`FeedLoopConfig::warm_every_ns`).
    let mut warm = WarmUp::new(cfg.warm_every_ns, start_ns);

    // An I/O error ends the loop like a signal: the sink still winds down (cancels its
    // orders) before the error is returned.
    let end: std::io::Result<LoopEnd> = loop {
        if shutdown.requested() {
            break Ok(LoopEnd::Signal);
        }
        let now_ns = now();
        if deadline_ns.is_some_and(|d| now_ns >= d) {
            break Ok(LoopEnd::Duration);
        }
        if let Some(why) = engine.fatal() {
            break Ok(LoopEnd::Sink(why));
        }
        if let Err(e) = poll.poll(&mut events, Some(Duration::ZERO)) {
            break Err(e);
        }
        dispatch(&events, &mut conn, standby.as_mut(), engine);
        let frames_before = stats.frames;
        engine.on_idle(now_ns, poll.registry());
        let mut handler = FeedHandler {
            clock: &clock,
            wall_offset_ns,
            decoder: &mut *decoder,
            engine: &mut *engine,
            journal: journal.as_deref_mut(),
            records,
            stats: &mut stats,
            need_snapshot: false,
            applied: &mut applied,
            skip,
            warm: &mut warm,
        };
        // The poll's one timestamp: taken just before the connection is polled (after the
        // readiness poll and the sink's timers). The latencies start later, at each
        // message's own socket read (`RxStamps`); this one starts `poll_to_read`.
        let read_ns = if S::TIMED { now() } else { now_ns };
        conn.poll(poll.registry(), read_ns, &mut handler);
        want_snapshot |= handler.need_snapshot;
        rotate(
            &mut conn,
            &mut standby,
            &cfg.conn,
            lead_ns,
            (&applied, &mut shown, &mut skip),
            decoder,
            poll.registry(),
            now_ns,
            records,
            &mut stats,
        );

        if want_snapshot && !snapshot_in_flight && now_ns >= snapshot_retry_at_ns {
            match fetcher.request_tx.try_send(()) {
                Ok(()) | Err(TrySendError::Full(())) => {
                    snapshot_in_flight = true;
                    send(
                        records,
                        &mut stats,
                        HotRecord::SnapshotRequested {
                            at_ns: now_ns,
                            gaps: engine.engine_stats().gaps,
                        },
                    );
                }
                Err(TrySendError::Disconnected(())) => {
                    break Err(std::io::Error::other("the REST snapshot thread stopped"));
                }
            }
        }
        if snapshot_in_flight {
            if let Ok(result) = fetcher.body_rx.try_recv() {
                snapshot_in_flight = false;
                let now_ns = now();
                match result {
                    Some(body) => {
                        if let Some(j) = journal.as_deref_mut() {
                            j.push(RecordKind::Snapshot, now_ns, &body);
                        }
                        match decoder.decode(&body, now_ns) {
                            Ok(event @ Event::Snapshot(s)) => {
                                let levels = decoder.snapshot_levels(&s);
                                let mut stamps = Stamps::new(clock, wall_offset_ns);
                                let (step, _) =
                                    engine.on_event(&event, levels, now_ns, &mut stamps);
                                // Too old for the buffered diffs: ask again, but not at
                                // once (REST weight; the diffs stay buffered meanwhile).
                                want_snapshot = step.need_snapshot;
                                if step.need_snapshot {
                                    snapshot_retry_at_ns = now_ns + SNAPSHOT_RETRY_NS;
                                }
                                let record = if step.need_snapshot {
                                    HotRecord::SnapshotTooOld { at_ns: now_ns }
                                } else {
                                    HotRecord::SnapshotLoaded {
                                        at_ns: now_ns,
                                        bytes: body.len(),
                                    }
                                };
                                send(records, &mut stats, record);
                            }
                            _ => {
                                snapshot_retry_at_ns = now_ns + SNAPSHOT_RETRY_NS;
                                send(
                                    records,
                                    &mut stats,
                                    HotRecord::SnapshotFailed { at_ns: now_ns },
                                );
                            }
                        }
                    }
                    None => {
                        snapshot_retry_at_ns = now_ns + SNAPSHOT_RETRY_NS;
                        send(
                            records,
                            &mut stats,
                            HotRecord::SnapshotFailed { at_ns: now_ns },
                        );
                    }
                }
            }
        }
        stats.iterations += 1;
        let busy = stats.frames != frames_before;
        if warm.turn(busy, now_ns, decoder, engine) {
            stats.warm_ups += 1;
        }
        if S::TIMED && busy {
            // Only iterations that handled market data are timed: at busy-poll rates one
            // record per idle iteration would flood the side channel.
            let iteration_ns = now().saturating_sub(now_ns);
            send(
                records,
                &mut stats,
                HotRecord::Iteration { ns: iteration_ns },
            );
        }
        if now_ns >= next_stats_ns {
            next_stats_ns = now_ns + STATS_EVERY_NS;
            stats.at_ns = now_ns;
            stats.engine = engine.engine_stats();
            stats.decode_errors = decoder.stats().errors_total();
            stats.journal_dropped = journal.as_deref().map_or(0, FrameRing::dropped);
            let snapshot = stats;
            send(records, &mut stats, HotRecord::Stats(snapshot));
        }
    };
    // Wind down with both connections still served: market data keeps the book (and the
    // sink's view of its orders) current while the sink cancels and waits.
    let wind_down_until = now().saturating_add(WIND_DOWN_MAX_NS);
    loop {
        let now_ns = now();
        if engine.wind_down(now_ns, poll.registry()) || now_ns >= wind_down_until {
            break;
        }
        if poll
            .poll(&mut events, Some(Duration::from_millis(1)))
            .is_err()
        {
            // Nothing left to read with: the sink's own deadline is all that is left.
            continue;
        }
        dispatch(&events, &mut conn, None, engine);
        let mut handler = FeedHandler {
            clock: &clock,
            wall_offset_ns,
            decoder: &mut *decoder,
            engine: &mut *engine,
            journal: journal.as_deref_mut(),
            records,
            stats: &mut stats,
            need_snapshot: false,
            applied: &mut applied,
            skip,
            warm: &mut warm,
        };
        conn.poll(poll.registry(), now_ns, &mut handler);
    }
    if let Some(mut s) = standby.take() {
        s.close(poll.registry());
    }
    conn.close(poll.registry());
    stats.at_ns = now();
    stats.engine = engine.engine_stats();
    stats.decode_errors = decoder.stats().errors_total();
    stats.journal_dropped = journal.as_deref().map_or(0, FrameRing::dropped);
    Ok((end?, stats))
}

/// Hands each readiness event to its owner: the market-data connection, its standby or
/// the sink.
#[inline]
fn dispatch<S: FeedSink>(
    events: &Events,
    conn: &mut Connection,
    mut standby: Option<&mut Connection>,
    sink: &mut S,
) {
    for event in events.iter() {
        if event.token() == conn.token() {
            conn.on_readiness(event);
        } else if let Some(s) = standby
            .as_deref_mut()
            .filter(|s| s.token() == event.token())
        {
            s.on_readiness(event);
        } else {
            sink.on_readiness(event);
        }
    }
}

/// The newest ids of each market-data stream seen on one connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct SeenIds {
    depth_u: u64,
    trade_id: u64,
    ticker_u: u64,
}

impl SeenIds {
    fn note(&mut self, event: &Event) {
        match event {
            Event::Depth(d) => self.depth_u = self.depth_u.max(d.final_update_id),
            Event::Trade(t) => self.trade_id = self.trade_id.max(t.trade_id),
            Event::BookTicker(b) => self.ticker_u = self.ticker_u.max(b.update_id),
            Event::Snapshot(_) => {}
        }
    }

    /// Everything `other` showed has been seen here (and `other` showed some depth).
    fn covers(&self, other: &SeenIds) -> bool {
        other.depth_u > 0
            && self.depth_u >= other.depth_u
            && self.trade_id >= other.trade_id
            && self.ticker_u >= other.ticker_u
    }

    /// Already delivered (a promoted connection repeats what the old one gave).
    fn already(&self, event: &Event) -> bool {
        match event {
            Event::Trade(t) => t.trade_id <= self.trade_id,
            Event::BookTicker(b) => b.update_id <= self.ticker_u,
            // Stale diffs are the book's to drop (its own rule); snapshots never repeat.
            Event::Depth(_) | Event::Snapshot(_) => false,
        }
    }
}

/// The rotation step of one loop turn (see the file doc): opens the standby near the age
/// limit, drives it (noting ids only), promotes it once the primary covers what it showed,
/// or drops it if the primary went down or reached its limit first.
#[allow(clippy::too_many_arguments)]
fn rotate(
    conn: &mut Connection,
    standby: &mut Option<Connection>,
    cfg: &ConnConfig,
    lead_ns: u64,
    (applied, shown, skip): (&SeenIds, &mut SeenIds, &mut SeenIds),
    decoder: &mut Decoder,
    registry: &Registry,
    now_ns: u64,
    records: &Sender<HotRecord>,
    stats: &mut LoopStats,
) {
    let age_ns = conn.age_ns(now_ns);
    let Some(s) = standby.as_mut() else {
        if age_ns.is_some_and(|a| a.saturating_add(lead_ns) >= cfg.max_age_ns) {
            let token = if conn.token() == MARKET_TOKEN {
                STANDBY_TOKEN
            } else {
                MARKET_TOKEN
            };
            // Allocates (buffers, resolver thread): once per rotation, not per message.
            if let Ok(mut c) = Connection::new(cfg.clone(), token, now_ns) {
                c.set_rx_clock(conn.rx_clock());
                *standby = Some(c);
                *shown = SeenIds::default();
                send(records, stats, HotRecord::RotationStarted { at_ns: now_ns });
            }
        }
        return;
    };
    let mut noter = StandbyHandler { decoder, shown };
    s.poll(registry, now_ns, &mut noter);
    let open = s.is_open();
    if open && applied.covers(shown) {
        if let Some(promoted) = standby.take() {
            let mut old = std::mem::replace(conn, promoted);
            old.close(registry);
            *skip = *applied;
            send(
                records,
                stats,
                HotRecord::Rotated {
                    at_ns: now_ns,
                    depth_u: applied.depth_u,
                },
            );
        }
    } else if age_ns.is_none_or(|a| a >= cfg.max_age_ns) {
        // The primary is down or rotating on its own: the standby is no use now.
        if let Some(mut s) = standby.take() {
            s.close(registry);
            send(
                records,
                stats,
                HotRecord::RotationAbandoned { at_ns: now_ns },
            );
        }
    }
}

/// The standby's frames: decoded to note their ids, never applied.
struct StandbyHandler<'a> {
    decoder: &'a mut Decoder,
    shown: &'a mut SeenIds,
}

impl Handler for StandbyHandler<'_> {
    fn on_message(&mut self, _kind: MessageKind, payload: &[u8], now_ns: u64) {
        if let Ok(event) = self.decoder.decode(payload, now_ns) {
            self.shown.note(&event);
        }
    }

    fn on_event(&mut self, _event: NetEvent) {}
}

#[inline]
fn send(records: &Sender<HotRecord>, stats: &mut LoopStats, record: HotRecord) {
    if records.try_send(record).is_err() {
        stats.records_dropped += 1;
    }
}

/// What `Connection::poll` calls for each frame and connection event.
struct FeedHandler<'a, S: FeedSink> {
    clock: &'a SystemClock,
    wall_offset_ns: u64,
    decoder: &'a mut Decoder,
    engine: &'a mut S,
    journal: Option<&'a mut FrameRing>,
    records: &'a Sender<HotRecord>,
    stats: &'a mut LoopStats,
    need_snapshot: bool,
    /// The newest ids applied (for a rotation's switch).
    applied: &'a mut SeenIds,
    /// After a rotation: what the old connection already delivered.
    skip: SeenIds,
    /// Keeps a bookTicker frame for the warm-up.
    warm: &'a mut WarmUp,
}

impl<S: FeedSink> Handler for FeedHandler<'_, S> {
    #[inline]
    fn on_message(&mut self, kind: MessageKind, payload: &[u8], now_ns: u64) {
        self.on_message_stamped(kind, payload, now_ns, RxStamps::default());
    }

    /// `now_ns` is the poll's one timestamp (taken before `Connection::poll`); `rx`, when
    /// taken, says when this message's bytes passed each layer, and the latencies start at
    /// `rx.read_start_ns` (the socket read that returned them was issued).
    #[inline]
    fn on_message_stamped(
        &mut self,
        _kind: MessageKind,
        payload: &[u8],
        now_ns: u64,
        rx: RxStamps,
    ) {
        self.stats.frames += 1;
        if let Some(journal) = self.journal.as_deref_mut() {
            journal.push(RecordKind::Frame, now_ns, payload);
        }
        let event = match self.decoder.decode(payload, now_ns) {
            Ok(event) => event,
            Err(error) => {
                // Counted by the decoder; said in the log (a copy, no allocation), the
                // first ones and then a sample, so that a flood cannot flood the log.
                let total = self.decoder.stats().errors_total();
                if error != DecodeError::UnknownKind
                    && (total <= DECODE_ERRORS_TOLD || total % DECODE_ERRORS_TOLD_EVERY == 0)
                {
                    let mut head = [0u8; DECODE_HEAD_BYTES];
                    let head_len = payload.len().min(DECODE_HEAD_BYTES);
                    head[..head_len].copy_from_slice(&payload[..head_len]);
                    let record = HotRecord::DecodeFailed {
                        at_ns: now_ns,
                        error,
                        total,
                        len: payload.len(),
                        head,
                        head_len: head_len as u8,
                    };
                    send(self.records, self.stats, record);
                }
                return;
            }
        };
        if self.skip.already(&event) {
            return;
        }
        self.applied.note(&event);
        let levels = match &event {
            Event::Depth(d) => self.decoder.diff_levels(d),
            Event::Snapshot(s) => self.decoder.snapshot_levels(s),
            _ => BookLevels {
                bids: &[],
                asks: &[],
            },
        };
        let exch_ts_ms = event.exch_ts_ms();
        let mut stamps = Stamps::new(*self.clock, self.wall_offset_ns);
        let decoded_ns = if S::TIMED {
            self.clock.mono_ns() + self.wall_offset_ns
        } else {
            now_ns
        };
        let (step, actions) = self.engine.on_event(&event, levels, now_ns, &mut stamps);
        self.need_snapshot |= step.need_snapshot;
        if matches!(event, Event::BookTicker(_)) {
            self.warm.keep(payload);
        }
        if !S::TIMED {
            return;
        }
        // The event's read: when the socket read that returned its bytes was issued (the
        // bytes were there: the read returned them at once), else the poll's stamp.
        let (read_ns, received_ns) = if rx.taken() {
            (rx.read_start_ns, rx.read_ns)
        } else {
            (now_ns, now_ns)
        };
        if exch_ts_ms > 0 {
            // Exchange event time → local receive (both wall clock; can be negative when
            // the clocks disagree: recorded as 0 and counted by the side thread).
            let feed_ns = received_ns.saturating_sub(exch_ts_ms.saturating_mul(1_000_000));
            send(
                self.records,
                self.stats,
                HotRecord::FeedLatency { ns: feed_ns },
            );
        }
        let written_ns = if actions > 0 {
            let written_ns = self.clock.mono_ns() + self.wall_offset_ns;
            send(
                self.records,
                self.stats,
                HotRecord::TickToOrder {
                    ns: written_ns.saturating_sub(read_ns),
                },
            );
            Some(written_ns)
        } else {
            None
        };
        if stamps.quote_ns != 0 {
            let span =
                |from: u64, to: u64| u32::try_from(to.saturating_sub(from)).unwrap_or(u32::MAX);
            // Without receive stamps the split stages are 0 and the read is the poll's.
            let ws_ns = if rx.taken() { rx.ws_ns } else { decoded_ns };
            let record = HotRecord::Stages {
                poll_to_read: span(now_ns, read_ns),
                socket_read: span(rx.read_start_ns, rx.read_ns),
                tls_open: span(rx.read_ns, rx.tls_ns),
                queued: span(rx.tls_ns, rx.ws_start_ns),
                ws_frame: span(rx.ws_start_ns, rx.ws_ns),
                decode: span(ws_ns, decoded_ns),
                read_to_decoded: span(read_ns, decoded_ns),
                decoded_to_book: span(decoded_ns, stamps.book_ns),
                book_to_quote: span(stamps.book_ns, stamps.quote_ns),
                quote_to_order: written_ns.map(|w| span(stamps.quote_ns, w)),
            };
            send(self.records, self.stats, record);
        }
    }

    fn on_event(&mut self, event: NetEvent) {
        if let NetEvent::Disconnected { at_ns, .. } = event {
            self.stats.disconnects += 1;
            self.engine.on_disconnect(at_ns);
        }
        send(self.records, self.stats, HotRecord::Net(event));
    }
}
