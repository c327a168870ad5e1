//! Fault and control commands, one per line on standard input or as
//! `POST /control/<command>[/<argument>]` on the exchange's own port.
//!
//! | command | effect |
//! | --- | --- |
//! | `drop` | close every open connection at once (TCP shutdown, no close frame) |
//! | `drop market` | close only the market-data WebSockets (`/ws/…`, `/stream?…`) |
//! | `drop api` | close only the WebSocket API connections (`/ws-api/v3`) |
//! | `stall <ms>` | no connection sends anything (data, responses, pings) and the replay waits, for ms |
//! | `stall-market <ms>` | market-data connections send nothing and the replay waits, for ms; the WebSocket API and REST keep answering |
//! | `gap [n]` | withhold the next n (1) depth updates from every subscriber |
//! | `dup [n]` | send the next n (1) depth updates twice |
//! | `garbage` | send every market-data connection a text frame that is not JSON |
//! | `garbage-frame` | send every market-data connection bytes that are not a WebSocket frame |
//! | `reject-next [n]` | refuse the next n (1) new orders (-2010) |
//! | `ratelimit <s>` | answer new orders with 429 / -1015 for s seconds |
//! | `delay-acks <ms>` | add ms to every response and executionReport from now on (0 resets) |
//! | `accounting` | return (and write to `--accounting-out`) the accounting JSON |
//! | `stop` | stop the exchange (prints the accounting) |

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::clock;
use crate::state::{Outbound, Shared};

/// What a command produced: a JSON body for the control endpoint and a line for stdout.
#[derive(Debug)]
pub struct Reply {
    /// JSON answer.
    pub json: String,
}

/// Runs one command line.
pub fn run(shared: &Shared, line: &str) -> Result<Reply, String> {
    let mut words = line.split_whitespace();
    let Some(command) = words.next() else {
        return Err(String::from("empty command"));
    };
    let arg = words.next();
    let number = |default: Option<u64>| -> Result<u64, String> {
        match (arg, default) {
            (Some(text), _) => text
                .parse::<u64>()
                .map_err(|_| format!("{command}: `{text}` is not a whole number")),
            (None, Some(d)) => Ok(d),
            (None, None) => Err(format!("{command} needs a number")),
        }
    };
    let faults = &shared.faults;
    match command {
        "drop" => {
            let epoch = match arg {
                None => &shared.drop_epoch,
                Some("market") => &shared.drop_market_epoch,
                Some("api") => &shared.drop_api_epoch,
                Some(other) => {
                    return Err(format!(
                        "drop: `{other}` is not `market` or `api` (bare `drop` closes everything)"
                    ))
                }
            };
            epoch.fetch_add(1, Ordering::SeqCst);
        }
        "stall" | "stall-market" => {
            let ms = number(None)?;
            let until = clock::now() + Duration::from_millis(ms);
            let slot = if command == "stall" {
                &faults.stall_until
            } else {
                &faults.stall_market_until
            };
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(until);
            let mut ex = shared.lock();
            if command == "stall" {
                ex.counters.stalls += 1;
            } else {
                ex.counters.market_stalls += 1;
            }
        }
        "gap" => {
            faults.gap.fetch_add(number(Some(1))?, Ordering::SeqCst);
        }
        "dup" => {
            faults.dup.fetch_add(number(Some(1))?, Ordering::SeqCst);
        }
        "garbage" | "garbage-frame" => {
            let message = if command == "garbage" {
                Outbound::Garbage
            } else {
                Outbound::BadFrame
            };
            let mut ex = shared.lock();
            let mut sent = 0;
            for sub in &ex.subscribers {
                if sub.tx.try_send(message.clone()).is_ok() {
                    sent += 1;
                }
            }
            ex.counters.garbage_sent += sent;
        }
        "reject-next" => {
            faults
                .reject_next
                .fetch_add(number(Some(1))?, Ordering::SeqCst);
        }
        "ratelimit" => {
            let seconds = number(None)?;
            let until = clock::wall_ms()
                + i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX / 2);
            faults.ratelimit_until_ms.store(until, Ordering::SeqCst);
        }
        "delay-acks" => {
            faults.extra_ack_ms.store(number(None)?, Ordering::SeqCst);
        }
        "accounting" => {
            let json = shared.lock().accounting_json();
            write_accounting(shared, &json);
            return Ok(Reply { json });
        }
        "stop" | "quit" | "exit" => shared.request_stop(),
        other => return Err(format!("unknown command `{other}` (see tools/README.md)")),
    }
    let json = format!(
        "{{\"ok\":true,\"command\":{}}}",
        crate::wire::quote(line.trim())
    );
    Ok(Reply { json })
}

/// Writes the accounting JSON to `--accounting-out`, if set (errors go to stderr).
pub fn write_accounting(shared: &Shared, json: &str) {
    if let Some(path) = &shared.cfg.accounting_out {
        if let Err(e) = std::fs::write(path, format!("{json}\n")) {
            mm::errln!("mm-exchange: writing {}: {e}", path.display());
        }
    }
}
