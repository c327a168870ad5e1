//! Binance's sync procedure around a `Book` (PROTOCOL.md, "Local order book"): `SyncState`,
//! the verdict on each diff, `SyncedBook` (buffer diffs, apply the snapshot, chain update
//! ids, resync on a gap) and its stats.
//!
//! Hot path. Never allocates after `new`, never reads the clock, never panics on input; a
//! gap is a state change and a count, never silently skipped.

use super::*;

/// Where the book stands in Binance's sync procedure (PROTOCOL.md, "Local order book").
///
/// ```text
///            new / resync / Gap / SnapshotTooOld
///                         |
///                         v
///                 +---------------+   snapshot older than the first
///   diff: buffer  |   Buffering   |<--buffered diff (SnapshotTooOld)
///                 +---------------+
///                         | snapshot (buffered diffs with u <= lastUpdateId dropped)
///                         v
///              +----------------------+  diff u <= lastUpdateId: stale, dropped
///              | AwaitingFirst { id } |  diff U > id+1: SnapshotTooOld -> Buffering
///              +----------------------+
///                         | diff with U <= id+1 <= u: applied
///                         v
///                 +---------------+   diff U == u_prev+1: applied
///                 |  Live { u }   |   diff u <= u_prev: stale, dropped
///                 +---------------+   otherwise: Gap -> Buffering
/// ```
/// USD-M futures diffs carry `pu` (the previous diff's `u`) and chain by it: live, the
/// next diff must have `pu == u_prev`; after a snapshot the first diff applied must have
/// `U <= id <= u` (Binance's futures procedure), not `id+1`.
///
/// A snapshot while `Buffering` or `AwaitingFirst` starts over with the diffs buffered
/// so far. A snapshot while `Live` (a capture made of several recorded sessions, each
/// opening with its own snapshot) follows the same procedure without losing the book:
/// newer than the book, it is loaded and the next diffs must bracket it; older, it is
/// loaded and the recently applied diffs that follow it are applied again on top
/// (`SyncStats::snapshots_reloaded`), or, when they no longer reach back to it, the book
/// is kept as it is (`SyncStats::snapshots_kept`: already in sync and contiguous).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncState {
    /// No snapshot applied: diffs are buffered until one arrives.
    Buffering,
    /// The snapshot with this `lastUpdateId` is loaded; the next applied diff must have
    /// `U ≤ last_update_id + 1 ≤ u`.
    AwaitingFirst {
        /// The snapshot's `lastUpdateId`.
        last_update_id: u64,
    },
    /// In sync through update id `final_update_id`; the next diff must have
    /// `U == final_update_id + 1`.
    Live {
        /// `u` of the last applied diff.
        final_update_id: u64,
    },
}

/// What the state machine says about one diff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiffVerdict {
    /// No snapshot yet: keep it.
    Buffer,
    /// Entirely covered by what the book already holds (`u` ≤ the book's id): drop it.
    Stale,
    /// Apply it.
    Apply,
    /// Updates are missing between the book and this diff: resync.
    Gap {
        /// The `U` the diff should have had (at most, for the first diff after a snapshot).
        expected_first_update_id: u64,
    },
}

/// True when a diff (`U` = `first_update_id`, `pu` = `prev_final_update_id`, 0 for spot)
/// directly follows the diff that ended at `prev_final`: spot `U == prev_final + 1`,
/// futures `pu == prev_final`.
#[inline]
fn continues(first_update_id: u64, prev_final_update_id: u64, prev_final: u64) -> bool {
    if prev_final_update_id != 0 {
        prev_final_update_id == prev_final
    } else {
        first_update_id == prev_final.saturating_add(1)
    }
}

/// The update id the first diff applied after a snapshot (`lastUpdateId` =
/// `last_update_id`) must cover: `lastUpdateId + 1` on spot, `lastUpdateId` on futures
/// (diffs with a `pu`).
#[inline]
fn bracket_id(prev_final_update_id: u64, last_update_id: u64) -> u64 {
    if prev_final_update_id != 0 {
        last_update_id
    } else {
        last_update_id.saturating_add(1)
    }
}

/// True when a futures diff (`pu` = `prev_final_update_id`) starts exactly where the
/// snapshot ends (`pu == lastUpdateId`): the snapshot is the book after the diff `pu`
/// names, so this diff continues it even though its `U` lies past `lastUpdateId` (futures
/// ids are not consecutive). Replays meet it at a window's cut, whose synthetic snapshot
/// is the live book at the last applied diff.
#[inline]
fn continues_snapshot(prev_final_update_id: u64, last_update_id: u64) -> bool {
    prev_final_update_id != 0 && prev_final_update_id == last_update_id
}

impl SyncState {
    /// The transition for a diff covering update ids `first_update_id..=final_update_id`
    /// (`prev_final_update_id`: its `pu`, 0 for spot diffs): the next state and what to
    /// do with the diff. Pure; `SyncedBook` acts on it.
    pub fn on_diff(
        self,
        first_update_id: u64,
        final_update_id: u64,
        prev_final_update_id: u64,
    ) -> (SyncState, DiffVerdict) {
        match self {
            SyncState::Buffering => (self, DiffVerdict::Buffer),
            SyncState::AwaitingFirst { last_update_id } => {
                let next_id = bracket_id(prev_final_update_id, last_update_id);
                if final_update_id < next_id {
                    (self, DiffVerdict::Stale)
                } else if first_update_id <= next_id
                    || continues_snapshot(prev_final_update_id, last_update_id)
                {
                    (SyncState::Live { final_update_id }, DiffVerdict::Apply)
                } else {
                    (
                        SyncState::Buffering,
                        DiffVerdict::Gap {
                            expected_first_update_id: next_id,
                        },
                    )
                }
            }
            SyncState::Live {
                final_update_id: prev,
            } => {
                let next_id = prev.saturating_add(1);
                if final_update_id <= prev {
                    (self, DiffVerdict::Stale)
                } else if continues(first_update_id, prev_final_update_id, prev) {
                    (SyncState::Live { final_update_id }, DiffVerdict::Apply)
                } else {
                    (
                        SyncState::Buffering,
                        DiffVerdict::Gap {
                            expected_first_update_id: next_id,
                        },
                    )
                }
            }
        }
    }
}

/// Why the book is out of sync; every variant means: fetch a new REST snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncError {
    /// While live, a diff did not continue the previous one (`U != u_prev + 1`).
    Gap {
        /// `u_prev + 1`.
        expected_first_update_id: u64,
        /// The diff's `U`.
        first_update_id: u64,
    },
    /// The snapshot is older than the diffs that follow it (`lastUpdateId + 1 < U` of the
    /// first diff to apply): updates in between are missing.
    SnapshotTooOld {
        /// The snapshot's `lastUpdateId`.
        last_update_id: u64,
        /// `U` of the first diff after it.
        first_update_id: u64,
    },
    /// A diff left the book crossed (best bid ≥ best ask), which the exchange's book
    /// never is: the book is wrong (e.g. two recordings joined without a snapshot).
    Crossed {
        /// `u` of the diff.
        final_update_id: u64,
    },
}

impl std::fmt::Display for SyncError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncError::Gap {
                expected_first_update_id,
                first_update_id,
            } => write!(
                f,
                "depth gap: expected U={expected_first_update_id}, got U={first_update_id}"
            ),
            SyncError::SnapshotTooOld {
                last_update_id,
                first_update_id,
            } => write!(
                f,
                "snapshot lastUpdateId={last_update_id} older than next diff U={first_update_id}"
            ),
            SyncError::Crossed { final_update_id } => {
                write!(f, "book crossed after diff u={final_update_id}")
            }
        }
    }
}

impl std::error::Error for SyncError {}

/// What `SyncedBook::on_diff` did with a diff.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiffOutcome {
    /// Buffered until a snapshot arrives.
    Buffered,
    /// Already covered by the book: dropped.
    Stale,
    /// Applied to the book.
    Applied(ApplyReport),
}

/// What `SyncedBook::on_snapshot` did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotOutcome {
    /// Buffered diffs applied on top of the snapshot.
    pub diffs_replayed: u32,
    /// Buffered diffs dropped because the snapshot already covers them.
    pub diffs_stale: u32,
    /// Drops and crossing after the snapshot and the replay.
    pub report: ApplyReport,
}

/// Counters of the sync procedure since `new`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Diffs applied to the book (live or replayed).
    pub diffs_applied: u64,
    /// Diffs buffered while waiting for a snapshot.
    pub diffs_buffered: u64,
    /// Diffs dropped as already covered.
    pub diffs_stale: u64,
    /// Buffered diffs thrown away: the buffer was full (oldest dropped) or a buffered diff
    /// did not continue the one before it (older ones are then useless).
    pub diffs_discarded: u64,
    /// Snapshots loaded into the book.
    pub snapshots_loaded: u64,
    /// `SyncError::Gap` returned.
    pub gaps: u64,
    /// `SyncError::SnapshotTooOld` returned.
    pub snapshots_too_old: u64,
    /// Updates after which the book was crossed (a live diff that crosses it is also a
    /// `SyncError::Crossed`: the book starts over).
    pub crossed: u64,
    /// Snapshots that arrived while in sync and were loaded with the recently applied
    /// diffs applied again on top.
    pub snapshots_reloaded: u64,
    /// Snapshots that arrived while in sync, older than the recent diffs reach: ignored,
    /// the book kept.
    pub snapshots_kept: u64,
}

/// A `Book` kept in sync with Binance's snapshot + diff procedure.
pub struct SyncedBook {
    book: Book,
    state: SyncState,
    pending: DiffBuffer,
    /// The diffs applied since the book went live, most recent last (bounded as
    /// `pending`): what a snapshot arriving while live is rebuilt with.
    recent: DiffBuffer,
    stats: SyncStats,
}

impl SyncedBook {
    /// An empty, unsynced book with `levels_per_side` levels per side; allocates the book
    /// and the diff buffer (`SYNC_BUFFER_*`) here, once.
    ///
    /// # Panics
    /// As `Book::new`.
    pub fn new(levels_per_side: usize) -> SyncedBook {
        SyncedBook {
            book: Book::new(levels_per_side),
            state: SyncState::Buffering,
            pending: DiffBuffer::new(),
            recent: DiffBuffer::new(),
            stats: SyncStats::default(),
        }
    }

    /// The book, only while it is in sync (`Live`). Quote from nothing else.
    #[inline]
    pub fn book(&self) -> Option<&Book> {
        match self.state {
            SyncState::Live { .. } => Some(&self.book),
            _ => None,
        }
    }

    /// The book whatever the state (diagnostics, tests).
    pub fn book_any_state(&self) -> &Book {
        &self.book
    }

    /// The sync state.
    #[inline]
    pub fn state(&self) -> SyncState {
        self.state
    }

    /// Counters since `new`.
    pub fn stats(&self) -> &SyncStats {
        &self.stats
    }

    /// Diffs currently buffered.
    pub fn buffered_diffs(&self) -> usize {
        self.pending.len
    }

    /// Forgets the book and every buffered diff and starts over (e.g. after a reconnect).
    pub fn resync(&mut self) {
        self.book.clear();
        self.pending.clear();
        self.recent.clear();
        self.state = SyncState::Buffering;
    }

    /// Feeds one depth diff. `Err` means the book is out of sync and a new snapshot is
    /// needed; the diff is then kept in the buffer for that snapshot.
    #[inline]
    pub fn on_diff(
        &mut self,
        diff: &DepthDiff,
        levels: BookLevels<'_>,
    ) -> Result<DiffOutcome, SyncError> {
        let first = diff.first_update_id;
        let last = diff.final_update_id;
        let prev = diff.prev_final_update_id;
        let (next, verdict) = self.state.on_diff(first, last, prev);
        match verdict {
            DiffVerdict::Apply => {
                self.state = next;
                let report = self.book.apply_diff(levels.bids, levels.asks);
                self.stats.diffs_applied += 1;
                if report.crossed {
                    self.stats.crossed += 1;
                    // Kept for the next snapshot, which it may bracket.
                    self.resync();
                    self.buffer(first, last, prev, levels);
                    return Err(SyncError::Crossed {
                        final_update_id: last,
                    });
                }
                self.recent.push(first, last, prev, levels);
                Ok(DiffOutcome::Applied(report))
            }
            DiffVerdict::Stale => {
                self.stats.diffs_stale += 1;
                Ok(DiffOutcome::Stale)
            }
            DiffVerdict::Buffer => {
                self.buffer(first, last, prev, levels);
                Ok(DiffOutcome::Buffered)
            }
            DiffVerdict::Gap {
                expected_first_update_id,
            } => {
                let error = match self.state {
                    SyncState::AwaitingFirst { last_update_id } => {
                        self.stats.snapshots_too_old += 1;
                        SyncError::SnapshotTooOld {
                            last_update_id,
                            first_update_id: first,
                        }
                    }
                    _ => {
                        self.stats.gaps += 1;
                        SyncError::Gap {
                            expected_first_update_id,
                            first_update_id: first,
                        }
                    }
                };
                self.resync();
                self.buffer(first, last, prev, levels);
                Err(error)
            }
        }
    }

    /// Feeds a REST snapshot: drops buffered diffs it covers, loads it, replays the rest.
    /// `Err` means: fetch another snapshot (the buffered diffs are kept for it).
    pub fn on_snapshot(
        &mut self,
        snapshot: &Snapshot,
        levels: BookLevels<'_>,
    ) -> Result<SnapshotOutcome, SyncError> {
        let last_update_id = snapshot.last_update_id;
        if let SyncState::Live { final_update_id } = self.state {
            if last_update_id < final_update_id {
                return Ok(self.reload_live(last_update_id, levels));
            }
        }
        if self.state != SyncState::Buffering {
            self.resync();
        }
        let mut outcome = SnapshotOutcome::default();
        while let Some(front) = self.pending.front() {
            if front.final_update_id >= bracket_id(front.prev_final_update_id, last_update_id) {
                break;
            }
            self.pending.pop_front();
            outcome.diffs_stale += 1;
            self.stats.diffs_stale += 1;
        }
        if let Some(front) = self.pending.front() {
            if front.first_update_id > bracket_id(front.prev_final_update_id, last_update_id)
                && !continues_snapshot(front.prev_final_update_id, last_update_id)
            {
                self.stats.snapshots_too_old += 1;
                return Err(SyncError::SnapshotTooOld {
                    last_update_id,
                    first_update_id: front.first_update_id,
                });
            }
        }
        outcome.report = self.book.load_snapshot(levels.bids, levels.asks);
        self.stats.snapshots_loaded += 1;
        self.state = SyncState::AwaitingFirst { last_update_id };

        while let Some(front) = self.pending.front() {
            let (next, verdict) = self.state.on_diff(
                front.first_update_id,
                front.final_update_id,
                front.prev_final_update_id,
            );
            match verdict {
                DiffVerdict::Apply => {
                    self.state = next;
                    let (bids, asks) = self.pending.levels(&front);
                    let report = self.book.apply_diff_iter(bids, asks);
                    self.recent.push_from(&self.pending, &front);
                    outcome.report.levels_dropped = outcome
                        .report
                        .levels_dropped
                        .saturating_add(report.levels_dropped);
                    outcome.diffs_replayed += 1;
                    self.stats.diffs_applied += 1;
                }
                DiffVerdict::Stale => {
                    outcome.diffs_stale += 1;
                    self.stats.diffs_stale += 1;
                }
                // Unreachable while the buffer keeps its diffs contiguous and the checks
                // above hold; handled anyway: the front diff stays buffered.
                DiffVerdict::Buffer | DiffVerdict::Gap { .. } => {
                    let error = SyncError::Gap {
                        expected_first_update_id: match self.state {
                            SyncState::Live { final_update_id } => {
                                final_update_id.saturating_add(1)
                            }
                            _ => last_update_id.saturating_add(1),
                        },
                        first_update_id: front.first_update_id,
                    };
                    self.stats.gaps += 1;
                    self.book.clear();
                    self.state = SyncState::Buffering;
                    return Err(error);
                }
            }
            self.pending.pop_front();
        }
        outcome.report.crossed = self.book.is_crossed();
        if outcome.report.crossed {
            self.stats.crossed += 1;
        }
        Ok(outcome)
    }

    /// A snapshot (`lastUpdateId` = `last_update_id`) older than the live book: loaded,
    /// then the recently applied diffs that follow it applied again, when they reach back
    /// to it (the first one brackets it); otherwise the book is kept as it is.
    fn reload_live(&mut self, last_update_id: u64, levels: BookLevels<'_>) -> SnapshotOutcome {
        let mut outcome = SnapshotOutcome::default();
        // Skip the recent diffs the snapshot covers; the next one must bracket it.
        let mut skip = 0;
        let mut start = None;
        for k in 0..self.recent.len {
            let Some(diff) = self.recent.get(k) else {
                break;
            };
            let id = bracket_id(diff.prev_final_update_id, last_update_id);
            if diff.final_update_id < id {
                skip += 1;
                continue;
            }
            if diff.first_update_id <= id {
                start = Some(k);
            }
            break;
        }
        let Some(start) = start else {
            self.stats.snapshots_kept += 1;
            outcome.report.crossed = self.book.is_crossed();
            return outcome;
        };
        outcome.diffs_stale = skip;
        outcome.report = self.book.load_snapshot(levels.bids, levels.asks);
        for k in start..self.recent.len {
            let Some(diff) = self.recent.get(k) else {
                break;
            };
            let (bids, asks) = self.recent.levels(&diff);
            let report = self.book.apply_diff_iter(bids, asks);
            outcome.report.levels_dropped = outcome
                .report
                .levels_dropped
                .saturating_add(report.levels_dropped);
            outcome.diffs_replayed += 1;
        }
        self.stats.snapshots_loaded += 1;
        self.stats.snapshots_reloaded += 1;
        outcome.report.crossed = self.book.is_crossed();
        if outcome.report.crossed {
            self.stats.crossed += 1;
        }
        outcome
    }

    /// Buffers a diff; a diff that does not continue the buffered ones discards them.
    fn buffer(&mut self, first: u64, last: u64, prev: u64, levels: BookLevels<'_>) {
        if let Some(back) = self.pending.back() {
            if !continues(first, prev, back.final_update_id) {
                self.stats.diffs_discarded += self.pending.len as u64;
                self.pending.clear();
            }
        }
        let discarded = self.pending.push(first, last, prev, levels);
        self.stats.diffs_discarded += discarded;
        self.stats.diffs_buffered += 1;
    }
}
