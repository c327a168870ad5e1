//! The simulator's shared state: one `Exchange` behind one mutex (market view, our orders,
//! rate limits, counters, the subscriber lists), the fault switches, and the stop/drop
//! signals every thread watches.
//!
//! One lock on purpose: publishing a replayed message (book update + fills + fan-out to
//! subscribers) and answering a REST snapshot or an order are each atomic with respect to
//! one another, which is what makes the snapshot consistent with the stream position and
//! the fills consistent with the order acks. The simulator is not the hot path; a thread
//! per connection and this lock are plenty for loopback tests.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{Sender, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use crate::book::{Book, Market};
use crate::config::Config;
use crate::data::{Capture, StreamKind};
use crate::matching::{Execution, Matcher};
use crate::ratelimit::Limits;
use crate::wire::{
    account_position, decimal8_wide, execution_report, quote, AccountSpec, InfoSpec,
};

/// A message for one connection's writer.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A text frame.
    Text(String),
    /// The `garbage` fault: a text frame that is not JSON.
    Garbage,
    /// The `garbage-frame` fault: bytes that are not a valid WebSocket frame.
    BadFrame,
}

/// A market-data connection and what it asked for.
#[derive(Debug)]
pub struct Subscriber {
    /// Connection id.
    pub conn_id: u64,
    /// Stream names as the client spelled them.
    pub streams: Vec<String>,
    /// `/stream?streams=` (wrap as `{"stream":..,"data":..}`) or `/ws/<stream>` (raw).
    pub combined: bool,
    /// Its writer: a bounded queue (`--market-queue-max`); a subscriber that lets it
    /// fill is dropped, as Binance drops slow consumers.
    pub tx: SyncSender<Outbound>,
    /// Set when the replay dropped it for a full queue: its connection thread closes the
    /// socket (it may be stuck behind a socket that does not drain, so it cannot wait for
    /// the queue to say so).
    pub slow: Arc<AtomicBool>,
}

/// Request-level counters (fills and money live in `Matcher::totals`).
#[derive(Debug, Default, Clone)]
pub struct Counters {
    /// WebSocket API requests.
    pub api_requests: u64,
    /// Per method.
    pub api_by_method: BTreeMap<String, u64>,
    /// REST requests.
    pub rest_requests: u64,
    /// New orders asked for (order.place, and the new leg of order.cancelReplace).
    pub orders_received: u64,
    /// New orders refused.
    pub orders_rejected: u64,
    /// New-order refusals by error code.
    pub orders_rejected_by_code: BTreeMap<i32, u64>,
    /// Cancels asked for (order.cancel, cancel legs, openOrders.cancelAll).
    pub cancels_received: u64,
    /// Cancels refused.
    pub cancels_rejected: u64,
    /// Every error answer (WebSocket API and REST) by code.
    pub errors_by_code: BTreeMap<i32, u64>,
    /// Answers with status 429.
    pub rate_limited: u64,
    /// Connections accepted.
    pub connections: u64,
    /// Connections closed by the exchange: the `drop` fault, over `--connections-max`, or
    /// market-data subscribers whose queue filled.
    pub dropped: u64,
    /// Market-data subscribers dropped because their queue (`--market-queue-max`) filled:
    /// they did not read.
    pub slow_subscribers: u64,
    /// Replay records published.
    pub published: u64,
    /// Depth updates withheld by `gap`.
    pub gaps_injected: u64,
    /// Depth updates sent twice by `dup`.
    pub dups_injected: u64,
    /// Malformed frames sent.
    pub garbage_sent: u64,
    /// `stall` commands.
    pub stalls: u64,
    /// `stall-market` commands.
    pub market_stalls: u64,
    /// Orders refused by `reject-next`.
    pub forced_rejects: u64,
}

/// Everything behind the lock.
#[derive(Debug)]
pub struct Exchange {
    /// Symbol (`BTCUSDT`).
    pub symbol: String,
    /// Base asset (`BTC`).
    pub base: String,
    /// Quote asset (`USDT`).
    pub quote: String,
    /// Replayed market.
    pub market: Market,
    /// Our orders.
    pub matcher: Matcher,
    /// Rate limits.
    pub limits: Limits,
    /// Counters.
    pub counters: Counters,
    /// Market-data connections.
    pub subscribers: Vec<Subscriber>,
    /// User-data subscribers (WebSocket API connections): (conn id, writer).
    pub listeners: Vec<(u64, Sender<Outbound>)>,
    /// Replay records in total.
    pub replay_total: u64,
    /// The replay has sent its last record.
    pub replay_done: bool,
    next_client_id: u64,
    next_execution_id: u64,
}

impl Exchange {
    /// The initial state: the book from the data's first snapshot (if any), no orders.
    pub fn new(cfg: &Config, capture: &Capture) -> Exchange {
        let symbol = if capture.symbol.is_empty() {
            String::from("BTCUSDT")
        } else {
            capture.symbol.clone()
        };
        let (base, quote) = split_symbol(&symbol);
        let book = capture
            .snapshot
            .as_ref()
            .map(Book::from_snapshot)
            .unwrap_or_default();
        Exchange {
            symbol,
            base,
            quote,
            market: Market {
                book,
                ..Market::default()
            },
            matcher: Matcher::new(
                cfg.rules,
                cfg.maker_fee_bps_e8,
                cfg.taker_fee_bps_e8,
                cfg.queue_cancels,
            )
            .with_balances(cfg.balance_base, cfg.balance_quote),
            limits: Limits::new(
                cfg.weight_per_minute,
                cfg.orders_per_10s,
                cfg.orders_per_day,
            ),
            counters: Counters::default(),
            subscribers: Vec::new(),
            listeners: Vec::new(),
            replay_total: capture.records.len() as u64,
            replay_done: false,
            next_client_id: 1,
            next_execution_id: 1,
        }
    }

    /// A clientOrderId for a request that sent none (22 characters, like Binance's).
    pub fn generate_client_id(&mut self) -> String {
        let id = format!("mmx{:019}", self.next_client_id);
        self.next_client_id += 1;
        id
    }

    /// Sends executionReports for `execs` to every user-data subscriber, then one
    /// `outboundAccountPosition` with the balances after them (every execution — NEW,
    /// CANCELED, TRADE — changes a balance), as Binance follows an order's report with the
    /// account update it caused.
    pub fn emit(&mut self, execs: &[Execution], event_ms: i64) {
        if execs.is_empty() {
            return;
        }
        for exec in execs {
            let text = execution_report(
                &self.symbol,
                exec,
                &self.quote,
                event_ms,
                self.next_execution_id,
            );
            self.next_execution_id += 1;
            self.listeners
                .retain(|(_, tx)| tx.send(Outbound::Text(text.clone())).is_ok());
        }
        let text = account_position(&self.account(), event_ms);
        self.listeners
            .retain(|(_, tx)| tx.send(Outbound::Text(text.clone())).is_ok());
    }

    /// The account: assets, balances, fees, last update.
    pub fn account(&self) -> AccountSpec<'_> {
        AccountSpec {
            base: &self.base,
            quote: &self.quote,
            balances: self.matcher.balances(),
            fees_bps_e8: self.matcher.fees_bps_e8(),
            update_ms: self.matcher.update_ms,
        }
    }

    /// Records an error answer.
    pub fn count_error(&mut self, code: i32, status: u16) {
        *self.counters.errors_by_code.entry(code).or_insert(0) += 1;
        if status == 429 {
            self.counters.rate_limited += 1;
        }
    }

    /// The exchangeInfo description of this exchange.
    pub fn info_spec<'a>(&'a self, cfg: &Config) -> InfoSpec<'a> {
        let r = self.matcher.rules();
        InfoSpec {
            symbol: &self.symbol,
            base: &self.base,
            quote: &self.quote,
            tick: r.tick,
            price_range: (r.min_price, r.max_price),
            step: r.step,
            qty_range: (r.min_qty, r.max_qty),
            notional_range: (r.min_notional, r.max_notional),
            max_orders: r.max_open_orders,
            weight_per_minute: cfg.weight_per_minute,
            orders_per_10s: cfg.orders_per_10s,
            orders_per_day: cfg.orders_per_day,
        }
    }

    /// True when a subscriber's stream name asks for records of `kind` / `stream`.
    pub fn wants(&self, requested: &str, kind: StreamKind, recorded: &str) -> bool {
        if requested == recorded {
            return true;
        }
        let Some((symbol, suffix)) = requested.split_once('@') else {
            return false;
        };
        if !symbol.eq_ignore_ascii_case(&self.symbol) {
            return false;
        }
        match kind {
            StreamKind::Depth => matches!(suffix, "depth" | "depth@100ms" | "depth@1000ms"),
            StreamKind::BookTicker => suffix == "bookTicker",
            StreamKind::Trade => suffix == "trade",
            StreamKind::AggTrade => suffix == "aggTrade",
            StreamKind::Other => false,
        }
    }

    /// The accounting as JSON: the ground truth a test compares the engine's view with.
    /// Quantities and money are decimal strings in base/quote units.
    pub fn accounting_json(&self) -> String {
        let c = &self.counters;
        let t = &self.matcher.totals;
        let codes = |m: &BTreeMap<i32, u64>| {
            let mut out = String::from("{");
            for (i, (code, n)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "\"{code}\":{n}");
            }
            out.push('}');
            out
        };
        let methods = {
            let mut out = String::from("{");
            for (i, (m, n)) in c.api_by_method.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{}:{n}", quote(m));
            }
            out.push('}');
            out
        };
        let open = self.matcher.open_orders();
        let mut out = String::from("{");
        let _ = write!(out, "\"symbol\":{},", quote(&self.symbol));
        let _ = write!(out, "\"orders_received\":{},", c.orders_received);
        let _ = write!(out, "\"orders_accepted\":{},", t.accepted);
        let _ = write!(out, "\"orders_rejected\":{},", c.orders_rejected);
        let _ = write!(
            out,
            "\"orders_rejected_by_code\":{},",
            codes(&c.orders_rejected_by_code)
        );
        let _ = write!(out, "\"cancels_received\":{},", c.cancels_received);
        let _ = write!(out, "\"cancels\":{},", t.canceled);
        let _ = write!(out, "\"cancels_rejected\":{},", c.cancels_rejected);
        let _ = write!(out, "\"fills\":{},", t.fills);
        let _ = write!(out, "\"maker_fills\":{},", t.maker_fills);
        let _ = write!(out, "\"taker_fills\":{},", t.taker_fills);
        let _ = write!(out, "\"filled_orders\":{},", t.filled_orders);
        let _ = write!(
            out,
            "\"fill_qty\":\"{}\",",
            decimal8_wide(i128::from(t.filled_qty))
        );
        let _ = write!(
            out,
            "\"bought_qty\":\"{}\",",
            decimal8_wide(i128::from(t.bought_qty))
        );
        let _ = write!(
            out,
            "\"sold_qty\":\"{}\",",
            decimal8_wide(i128::from(t.sold_qty))
        );
        let _ = write!(
            out,
            "\"quote_volume\":\"{}\",",
            decimal8_wide(t.quote_volume)
        );
        let _ = write!(out, "\"open_orders\":{},", open.len());
        let ids = crate::wire::array(open.iter().map(|o| quote(&o.client_id)));
        let _ = write!(out, "\"open_order_ids\":{ids},");
        let b = self.matcher.balances();
        let balance = |bal: crate::matching::Balance| {
            format!(
                "{{\"free\":\"{}\",\"locked\":\"{}\"}}",
                decimal8_wide(bal.free),
                decimal8_wide(bal.locked)
            )
        };
        let _ = write!(
            out,
            "\"balances\":{{{}:{},{}:{}}},",
            quote(&self.base),
            balance(b.base),
            quote(&self.quote),
            balance(b.quote)
        );
        let _ = write!(
            out,
            "\"position\":\"{}\",",
            decimal8_wide(i128::from(t.position))
        );
        let _ = write!(out, "\"cash\":\"{}\",", decimal8_wide(t.cash));
        let _ = write!(out, "\"fees\":\"{}\",", decimal8_wide(t.fees));
        let _ = write!(
            out,
            "\"base_asset\":{},\"quote_asset\":{},",
            quote(&self.base),
            quote(&self.quote)
        );
        let _ = write!(out, "\"api_requests\":{},", c.api_requests);
        let _ = write!(out, "\"api_requests_by_method\":{methods},");
        let _ = write!(out, "\"rest_requests\":{},", c.rest_requests);
        let _ = write!(out, "\"errors_by_code\":{},", codes(&c.errors_by_code));
        let _ = write!(out, "\"rate_limited\":{},", c.rate_limited);
        let _ = write!(out, "\"connections\":{},", c.connections);
        let _ = write!(out, "\"dropped_connections\":{},", c.dropped);
        let _ = write!(out, "\"slow_subscribers_dropped\":{},", c.slow_subscribers);
        let _ = write!(out, "\"replay_published\":{},", c.published);
        let _ = write!(out, "\"replay_total\":{},", self.replay_total);
        let _ = write!(out, "\"replay_done\":{},", self.replay_done);
        let _ = write!(
            out,
            "\"book_last_update_id\":{},",
            self.market.book.last_update_id
        );
        let _ = write!(out, "\"gaps_injected\":{},", c.gaps_injected);
        let _ = write!(out, "\"dups_injected\":{},", c.dups_injected);
        let _ = write!(out, "\"garbage_sent\":{},", c.garbage_sent);
        let _ = write!(out, "\"stalls\":{},", c.stalls);
        let _ = write!(out, "\"market_stalls\":{},", c.market_stalls);
        let _ = write!(out, "\"forced_rejects\":{}", c.forced_rejects);
        out.push('}');
        out
    }
}

/// Fault switches set by control commands.
#[derive(Debug, Default)]
pub struct Faults {
    /// Depth updates still to withhold.
    pub gap: AtomicU64,
    /// Depth updates still to send twice.
    pub dup: AtomicU64,
    /// New orders still to refuse.
    pub reject_next: AtomicU64,
    /// Answer orders with 429 until this wall-clock ms.
    pub ratelimit_until_ms: AtomicI64,
    /// Extra delay on responses and events (ms).
    pub extra_ack_ms: AtomicU64,
    /// No connection sends anything, and the replay waits, until then.
    pub stall_until: Mutex<Option<Instant>>,
    /// Market-data connections send nothing, and the replay waits, until then (the
    /// WebSocket API and REST keep answering).
    pub stall_market_until: Mutex<Option<Instant>>,
}

impl Faults {
    /// Takes one unit of a counted fault.
    pub fn take(counter: &AtomicU64) -> bool {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    /// The end of the current stall, if one is running.
    pub fn stalled_until(&self, now: Instant) -> Option<Instant> {
        let guard = self.stall_until.lock().unwrap_or_else(|e| e.into_inner());
        guard.filter(|until| *until > now)
    }

    /// When market data may flow again: the later end of a running `stall` or
    /// `stall-market`, if either is running.
    pub fn market_stalled_until(&self, now: Instant) -> Option<Instant> {
        let market = {
            let guard = self
                .stall_market_until
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            guard.filter(|until| *until > now)
        };
        self.stalled_until(now).max(market)
    }
}

/// What every thread shares.
#[derive(Debug)]
pub struct Shared {
    /// Validated flags.
    pub cfg: Config,
    /// The exchange.
    ex: Mutex<Exchange>,
    /// Faults.
    pub faults: Faults,
    /// Set to stop everything.
    pub stop: AtomicBool,
    /// Bumped by `drop`: connections opened before the bump close.
    pub drop_epoch: AtomicU64,
    /// Bumped by `drop market`: market-data WebSockets opened before the bump close.
    pub drop_market_epoch: AtomicU64,
    /// Bumped by `drop api`: WebSocket API connections opened before the bump close.
    pub drop_api_epoch: AtomicU64,
    /// Connection ids.
    pub next_conn_id: AtomicU64,
    start: (Mutex<bool>, Condvar),
}

impl Shared {
    /// Shared state around an exchange.
    pub fn new(cfg: Config, ex: Exchange) -> Shared {
        Shared {
            cfg,
            ex: Mutex::new(ex),
            faults: Faults::default(),
            stop: AtomicBool::new(false),
            drop_epoch: AtomicU64::new(0),
            drop_market_epoch: AtomicU64::new(0),
            drop_api_epoch: AtomicU64::new(0),
            next_conn_id: AtomicU64::new(1),
            start: (Mutex::new(false), Condvar::new()),
        }
    }

    /// Locks the exchange (a panicked holder does not poison it for the others: the state
    /// is counters and maps, each update is complete before the next can panic).
    pub fn lock(&self) -> MutexGuard<'_, Exchange> {
        self.ex.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True once stop was asked for.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Asks every thread to stop.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.signal_start();
    }

    /// Lets the replay start (first subscriber, or launch).
    pub fn signal_start(&self) {
        let (lock, cvar) = &self.start;
        let mut started = lock.lock().unwrap_or_else(|e| e.into_inner());
        *started = true;
        cvar.notify_all();
    }

    /// Blocks until `signal_start`.
    pub fn wait_start(&self) {
        let (lock, cvar) = &self.start;
        let mut started = lock.lock().unwrap_or_else(|e| e.into_inner());
        while !*started {
            started = cvar.wait(started).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// A new connection id.
    pub fn conn_id(&self) -> u64 {
        self.next_conn_id.fetch_add(1, Ordering::SeqCst)
    }
}

/// `BTCUSDT` → (`BTC`, `USDT`) by the usual quote assets; unknown → (symbol, `USDT`).
fn split_symbol(symbol: &str) -> (String, String) {
    for quote in [
        "USDT", "USDC", "FDUSD", "BUSD", "TUSD", "BTC", "ETH", "BNB", "EUR", "TRY",
    ] {
        if let Some(base) = symbol.strip_suffix(quote) {
            if !base.is_empty() {
                return (base.to_string(), quote.to_string());
            }
        }
    }
    (symbol.to_string(), String::from("USDT"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_split_into_assets() {
        assert_eq!(split_symbol("BTCUSDT"), ("BTC".into(), "USDT".into()));
        assert_eq!(split_symbol("NEXOUSDT"), ("NEXO".into(), "USDT".into()));
        assert_eq!(split_symbol("ETHBTC"), ("ETH".into(), "BTC".into()));
    }
}
