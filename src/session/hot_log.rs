//! The log lines of the hot loop's records: connection events (market data and, in live,
//! orders), snapshot requests, rotations, refused frames, pinning, periodic counters.
//!
//! Side threads only (paper, live, record): formatting happens here so that the hot thread
//! never formats. Never imports `crate::modes`.

use crate::hot::HotRecord;
use crate::net::{Disconnect, NetEvent};
use crate::telemetry::log::LogHandle;

/// One log line for a connection event of `what` ("market data", "orders").
pub fn log_net(log: &LogHandle, what: &str, event: &NetEvent) {
    match event {
        NetEvent::Connecting { attempt, addr, .. } => {
            log.info(format_args!(
                "{what}: connecting to {addr} (attempt {attempt})"
            ));
        }
        NetEvent::Open {
            attempt,
            handshake_ns,
            ..
        } => log.info(format_args!(
            "{what}: open after {:.1} ms (attempt {attempt})",
            *handshake_ns as f64 / 1e6
        )),
        NetEvent::Disconnected {
            cause,
            open_for_ns,
            next_attempt_at_ns,
            at_ns,
        } => {
            let why = match cause {
                Disconnect::Failed(e) => format!("failed: {e}"),
                Disconnect::PeerClosed { ws_code } => match ws_code {
                    Some(code) => format!("closed by the server (code {code})"),
                    None => "closed by the server".to_string(),
                },
                Disconnect::Stale { silent_ns } => {
                    format!("stale: no message for {:.1} s", *silent_ns as f64 / 1e9)
                }
                Disconnect::Rotation { age_ns } => {
                    format!("rotated after {:.1} h", *age_ns as f64 / 3.6e12)
                }
                Disconnect::Restart => "restarted".to_string(),
            };
            let after = if what == "market data" {
                "; the book will be resynced"
            } else {
                ""
            };
            log.warn(format_args!(
                "{what}: disconnected ({why}) after {:.1} s open; reconnecting in {} ms{after}",
                *open_for_ns as f64 / 1e9,
                next_attempt_at_ns.saturating_sub(*at_ns) / 1_000_000
            ));
        }
    }
}

/// One log line per hot record (side thread: formatting is allowed here).
pub fn log_record(log: &LogHandle, record: &HotRecord) {
    match record {
        HotRecord::Net(event) => log_net(log, "market data", event),
        HotRecord::SnapshotRequested { gaps, .. } => log.info(format_args!(
            "book: requesting a depth snapshot (resync; {gaps} gaps so far)"
        )),
        HotRecord::SnapshotLoaded { bytes, .. } => log.info(format_args!(
            "book: snapshot loaded ({bytes} bytes), in sync"
        )),
        HotRecord::SnapshotTooOld { .. } => log.warn(format_args!(
            "book: snapshot older than the buffered diffs; asking again in 1 s"
        )),
        HotRecord::SnapshotFailed { .. } => {
            log.warn(format_args!("book: snapshot unusable; retrying in 1 s"))
        }
        HotRecord::RotationStarted { .. } => log.info(format_args!(
            "market data: rotation: standby connection opening (make-before-break)"
        )),
        HotRecord::Rotated { depth_u, .. } => log.info(format_args!(
            "market data: rotated to the standby connection at depth update {depth_u}; \
             no gap, no resync"
        )),
        HotRecord::RotationAbandoned { .. } => log.warn(format_args!(
            "market data: the standby did not catch up before the age limit; rotating \
             break-before-make (resync)"
        )),
        HotRecord::DecodeFailed {
            error,
            total,
            len,
            head,
            head_len,
            ..
        } => {
            let shown = &head[..usize::from(*head_len).min(head.len())];
            let more = if *len > shown.len() { "…" } else { "" };
            log.warn(format_args!(
                "feed: market frame refused by the decoder ({error:?}; {total} refused so \
                 far), {len} bytes: {}{more}",
                shown.escape_ascii()
            ));
        }
        HotRecord::PinFailed { core } => log.warn(format_args!(
            "engine: could not pin the hot thread to core {core}; running unpinned"
        )),
        HotRecord::FeedLatency { .. }
        | HotRecord::TickToOrder { .. }
        | HotRecord::Iteration { .. }
        | HotRecord::Stages { .. } => {}
        HotRecord::Stats(s) => log.debug(format_args!(
            "stats: {} frames, {} decode errors, {} quotes, {} gaps, {} snapshots, \
             {} journal drops, {} record drops, {} loop iterations, {} warm-ups",
            s.frames,
            s.decode_errors,
            s.engine.quotes,
            s.engine.gaps,
            s.engine.snapshots,
            s.journal_dropped,
            s.records_dropped,
            s.iterations,
            s.warm_ups
        )),
    }
}
