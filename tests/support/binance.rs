//! Binance-shaped fixtures built from a recorded BTCUSDT session (the bundled slice in
//! `tools/data`, or the full session in `../shared/data` for the extra runs),
//! for the hot-path tests (`tests/hot_path.rs`, `tests/zero_alloc.rs`).
//!
//! Owns: loading the recorded lines as recorded (`Recorded`); `Msg`, a serde_json parse of
//! each line that uses no mm code; `NaiveBook`, a `BTreeMap` order book that follows
//! Binance's documented sync procedure (PROTOCOL.md "Local order book") on those exact
//! 8-decimal values, plus the snapshot bodies it can write (`{"lastUpdateId":..,"bids":..,
//! "asks":..}` with 8-decimal strings, as Binance writes them); `renumber_ids`, which shifts
//! the update ids of a recorded message (to cycle the session); and `RestServer`, a loopback
//! HTTPS responder that serves any number of `GET` requests from a handler (the depth
//! snapshot endpoint), recording each request target. Also `btcusdt_spec` and
//! `engine_params`, the engine as the modes build it from the default configuration.
//!
//! Invariants: reads only the recorded files it is given; binds 127.0.0.1 only; every socket wait is
//! bounded. Never: uses mm's decoder or book (this is the independent side of each check).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use flate2::read::GzDecoder;
use rustls::{ServerConnection, StreamOwned};
use serde_json::Value;

use mm::assemble::OFI_CAPACITY;
use mm::engine::EngineParams;
use mm::feed::Level;
use mm::limits::BOOK_LEVELS_PER_SIDE_DEFAULT;
use mm::model::{Params, Quoter};
use mm::types::{Price, Qty, Symbol, SymbolSpec};

use super::{server_tls_config, ServerIdentity};

/// 10⁻⁸ units per tick (BTCUSDT tick 0.01).
pub const E8_PER_TICK: u64 = 1_000_000;
/// 10⁻⁸ units per lot (BTCUSDT step 0.00001).
pub const E8_PER_LOT: u64 = 1_000;
/// Levels per side of the snapshots `NaiveBook::snapshot_json` writes (`limit=1000`).
pub const SNAPSHOT_LIMIT: usize = 1_000;

/// BTCUSDT's filters (tick 0.01, step 0.00001, min notional 5).
pub fn btcusdt_spec() -> SymbolSpec {
    SymbolSpec::from_decimals(Symbol::new("BTCUSDT").unwrap(), "0.01", "0.00001", "5").unwrap()
}

/// The engine as the modes build it from config/default.toml (1000 levels, 1 s OFI window,
/// estimated σ), except σ's sampling interval: tests replay time compressed, so they pass
/// their own (the half-life scales with it; 10 samples of warm-up).
pub fn engine_params(sigma_sample_s: f64) -> EngineParams {
    EngineParams {
        quoter: Quoter::new(Params::default(), btcusdt_spec()).unwrap(),
        book_levels: BOOK_LEVELS_PER_SIDE_DEFAULT,
        ofi_window_ns: 1_000_000_000,
        ofi_capacity: OFI_CAPACITY,
        sigma_estimated: true,
        sigma_sample_s,
        sigma_half_life_s: 300.0 * sigma_sample_s,
        sigma_warmup_samples: 10,
    }
}

/// One recorded line: the recorder's receive time and the JSON exactly as received.
#[derive(Clone, Debug)]
pub struct Line {
    /// Receive time, ns since the Unix epoch (the recorder's clock).
    pub local_ts_ns: u64,
    /// The message bytes.
    pub json: Vec<u8>,
}

/// The recorded session: the REST snapshot and the stream messages around it, in order.
pub struct Recorded {
    /// The REST depth snapshot line (the 8th line of the session).
    pub snapshot: Line,
    /// Every other line (combined-stream messages), in recorded order.
    pub messages: Vec<Line>,
    /// `messages[i]` parsed.
    pub parsed: Vec<Msg>,
}

impl Recorded {
    /// The first `max_messages` stream messages of the session in `files` (in order) and
    /// its snapshot. Panics if a file is missing or malformed.
    pub fn load(files: &[PathBuf], max_messages: usize) -> Recorded {
        let mut snapshot = None;
        let mut messages = Vec::new();
        'files: for path in files {
            let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let mut reader = BufReader::new(GzDecoder::new(file));
            let mut line = Vec::new();
            loop {
                if messages.len() >= max_messages && snapshot.is_some() {
                    break 'files;
                }
                line.clear();
                if reader.read_until(b'\n', &mut line).unwrap() == 0 {
                    break;
                }
                let text = line.strip_suffix(b"\n").unwrap_or(&line);
                let space = text.iter().position(|&b| b == b' ').unwrap();
                let local_ts_ns = std::str::from_utf8(&text[..space])
                    .unwrap()
                    .parse()
                    .unwrap();
                let json = text[space + 1..].to_vec();
                if json.starts_with(b"{\"lastUpdateId\"") {
                    assert!(snapshot.is_none(), "one snapshot per session");
                    snapshot = Some(Line { local_ts_ns, json });
                } else if messages.len() < max_messages {
                    messages.push(Line { local_ts_ns, json });
                }
            }
        }
        let snapshot = snapshot.expect("the session has a REST snapshot");
        let parsed = messages.iter().map(|l| Msg::parse(&l.json)).collect();
        Recorded {
            snapshot,
            messages,
            parsed,
        }
    }

    /// The exchange's true book once the first `pos` messages have been produced: the
    /// recorded snapshot plus every diff among them that it does not cover.
    pub fn true_book_at(&self, pos: usize) -> NaiveBook {
        let mut book = NaiveBook::from_snapshot(&self.snapshot.json);
        for msg in &self.parsed[..pos] {
            book.apply(msg);
        }
        book
    }
}

/// A recorded message, parsed with serde_json; prices and quantities in 10⁻⁸ units.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    /// `depthUpdate`.
    Diff {
        /// `U`.
        first: u64,
        /// `u`.
        last: u64,
        /// `b`: (price, qty).
        bids: Vec<(u64, u64)>,
        /// `a`: (price, qty).
        asks: Vec<(u64, u64)>,
    },
    /// `bookTicker`.
    Ticker {
        /// `u`.
        update_id: u64,
        /// (`b`, `B`).
        bid: (u64, u64),
        /// (`a`, `A`).
        ask: (u64, u64),
    },
    /// `trade`.
    Trade,
}

impl Msg {
    /// Parses a combined-stream message (panics on anything else: recorded data only).
    pub fn parse(json: &[u8]) -> Msg {
        let v: Value = serde_json::from_slice(json).unwrap();
        let stream = v["stream"].as_str().unwrap();
        let d = &v["data"];
        if stream.ends_with("@bookTicker") {
            Msg::Ticker {
                update_id: d["u"].as_u64().unwrap(),
                bid: (e8(&d["b"]), e8(&d["B"])),
                ask: (e8(&d["a"]), e8(&d["A"])),
            }
        } else if stream.contains("@depth") {
            Msg::Diff {
                first: d["U"].as_u64().unwrap(),
                last: d["u"].as_u64().unwrap(),
                bids: levels(&d["b"]),
                asks: levels(&d["a"]),
            }
        } else {
            assert!(stream.ends_with("@trade"), "unexpected stream {stream}");
            Msg::Trade
        }
    }

    /// Whether this is a depth diff.
    pub fn is_diff(&self) -> bool {
        matches!(self, Msg::Diff { .. })
    }
}

/// An order book kept the naive way, following Binance's procedure literally.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NaiveBook {
    /// Price → quantity, 10⁻⁸ units.
    pub bids: BTreeMap<u64, u64>,
    /// Price → quantity, 10⁻⁸ units.
    pub asks: BTreeMap<u64, u64>,
    /// The snapshot's `lastUpdateId`, then the `u` of each applied diff.
    pub last_update_id: u64,
    /// A diff has been applied on top of the snapshot.
    pub live: bool,
}

impl NaiveBook {
    /// A book from a REST snapshot body.
    pub fn from_snapshot(json: &[u8]) -> NaiveBook {
        let v: Value = serde_json::from_slice(json).unwrap();
        let side = |key: &str| -> BTreeMap<u64, u64> {
            levels(&v[key])
                .into_iter()
                .filter(|&(_, q)| q > 0)
                .collect()
        };
        NaiveBook {
            bids: side("bids"),
            asks: side("asks"),
            last_update_id: v["lastUpdateId"].as_u64().unwrap(),
            live: false,
        }
    }

    /// Applies `msg` if it is a diff the book does not cover yet (steps 4 and 5 of the
    /// procedure). Panics on a gap: the recorded session has none.
    pub fn apply(&mut self, msg: &Msg) {
        let Msg::Diff {
            first,
            last,
            bids,
            asks,
        } = msg
        else {
            return;
        };
        if *last <= self.last_update_id {
            return;
        }
        if self.live {
            assert_eq!(
                *first,
                self.last_update_id + 1,
                "gap in the recorded session"
            );
        } else {
            assert!(
                *first <= self.last_update_id + 1,
                "snapshot older than the first diff"
            );
        }
        for (book, levels) in [(&mut self.bids, bids), (&mut self.asks, asks)] {
            for &(price, qty) in levels {
                if qty == 0 {
                    book.remove(&price);
                } else {
                    book.insert(price, qty);
                }
            }
        }
        self.last_update_id = *last;
        self.live = true;
    }

    /// The best `n` bids, best first.
    pub fn top_bids(&self, n: usize) -> Vec<(u64, u64)> {
        self.bids
            .iter()
            .rev()
            .take(n)
            .map(|(&p, &q)| (p, q))
            .collect()
    }

    /// The best `n` asks, best first.
    pub fn top_asks(&self, n: usize) -> Vec<(u64, u64)> {
        self.asks.iter().take(n).map(|(&p, &q)| (p, q)).collect()
    }

    /// A REST snapshot body of this book (`limit` levels per side), as Binance writes it.
    pub fn snapshot_json(&self, limit: usize) -> Vec<u8> {
        let side = |levels: Vec<(u64, u64)>| -> String {
            let items: Vec<String> = levels
                .iter()
                .map(|&(p, q)| format!("[\"{}\",\"{}\"]", fmt_e8(p), fmt_e8(q)))
                .collect();
            items.join(",")
        };
        format!(
            "{{\"lastUpdateId\":{},\"bids\":[{}],\"asks\":[{}]}}",
            self.last_update_id,
            side(self.top_bids(limit)),
            side(self.top_asks(limit))
        )
        .into_bytes()
    }
}

/// A level in mm's units: price in ticks (must be on the grid), quantity rounded *up* to
/// whole lots (what the decoder does with the few off-grid quantities in real data).
pub fn to_level((price_e8, qty_e8): (u64, u64)) -> Level {
    assert_eq!(price_e8 % E8_PER_TICK, 0, "price off the tick grid");
    Level {
        price: Price((price_e8 / E8_PER_TICK) as i64),
        qty: Qty(qty_e8.div_ceil(E8_PER_LOT) as i64),
    }
}

/// `61837.63000000` → 6_183_763_000_000 (exactly 8 decimals, as Binance writes them).
pub fn e8(v: &Value) -> u64 {
    let s = v.as_str().unwrap();
    let (int, frac) = s.split_once('.').unwrap();
    assert_eq!(frac.len(), 8, "{s}");
    int.parse::<u64>().unwrap() * 100_000_000 + frac.parse::<u64>().unwrap()
}

/// 6_183_763_000_000 → `61837.63000000`.
pub fn fmt_e8(v: u64) -> String {
    format!("{}.{:08}", v / 100_000_000, v % 100_000_000)
}

fn levels(v: &Value) -> Vec<(u64, u64)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|pair| (e8(&pair[0]), e8(&pair[1])))
        .collect()
}

/// Adds `offset` to the update ids of a recorded message: `U` and `u` of a depth diff, `u`
/// of a bookTicker, `lastUpdateId` of a snapshot (trades have none and come back as they
/// are). Only the digits change; everything else stays byte for byte.
pub fn renumber_ids(json: &[u8], offset: u64) -> Vec<u8> {
    let mut out = json.to_vec();
    for key in [&b"\"U\":"[..], b"\"u\":", b"\"lastUpdateId\":"] {
        out = shift_number_after(&out, key, offset);
    }
    out
}

fn shift_number_after(json: &[u8], key: &[u8], offset: u64) -> Vec<u8> {
    let Some(at) = json.windows(key.len()).position(|w| w == key) else {
        return json.to_vec();
    };
    let start = at + key.len();
    let len = json[start..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    assert!(len > 0, "no number after {}", String::from_utf8_lossy(key));
    let n: u64 = std::str::from_utf8(&json[start..start + len])
        .unwrap()
        .parse()
        .unwrap();
    let mut out = json[..start].to_vec();
    out.extend_from_slice((n + offset).to_string().as_bytes());
    out.extend_from_slice(&json[start + len..]);
    out
}

// ---------------------------------------------------------------------------------------
// HTTPS responder (any number of requests)
// ---------------------------------------------------------------------------------------

/// Request target (`/api/v3/depth?symbol=..`) → response body (sent with status 200).
pub type RestHandler = dyn Fn(&str) -> Vec<u8> + Send + Sync;

/// A loopback HTTPS/1.1 server: one request per connection (as `RestClient` sends them),
/// connections served one after another on one thread.
pub struct RestServer {
    addr: SocketAddr,
    targets: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl RestServer {
    /// Starts serving with the certificate `id`; `handler` makes each body.
    pub fn start(id: &ServerIdentity, handler: Arc<RestHandler>) -> RestServer {
        let config = server_tls_config(id);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let targets = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, stopping) = (targets.clone(), stop.clone());
        let thread = thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((tcp, _)) => {
                        let _ = serve_one(tcp, config.clone(), &*handler, &seen);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(1));
                    }
                    Err(_) => return,
                }
            }
        });
        RestServer {
            addr,
            targets,
            stop,
            thread: Some(thread),
        }
    }

    /// `https://127.0.0.1:port`.
    pub fn base_url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The request targets served so far, in order.
    pub fn targets(&self) -> Vec<String> {
        self.targets.lock().unwrap().clone()
    }
}

impl Drop for RestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_one(
    tcp: std::net::TcpStream,
    config: Arc<rustls::ServerConfig>,
    handler: &RestHandler,
    targets: &Mutex<Vec<String>>,
) -> io::Result<()> {
    tcp.set_nonblocking(false)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(10)))?;
    let conn = ServerConnection::new(config).map_err(io::Error::other)?;
    let mut stream = StreamOwned::new(conn, tcp);
    let mut request_line = String::new();
    {
        let mut reader = BufReader::new(&mut stream);
        reader.read_line(&mut request_line)?;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 || line == "\r\n" {
                break;
            }
        }
    }
    let target = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string();
    let body = handler(&target);
    targets.lock().unwrap().push(target);
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json;charset=UTF-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(&body)?;
    stream.conn.send_close_notify();
    stream.flush()?;
    let _ = stream.sock.shutdown(Shutdown::Both);
    Ok(())
}
