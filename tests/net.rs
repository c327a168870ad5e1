//! Integration tests of the transport (src/net): a real rustls TLS 1.3 server plus a
//! tungstenite WebSocket server on 127.0.0.1 (tests/support), a certificate from a
//! throw-away rcgen CA trusted through `TlsRoots::CaFile`, and the client driven exactly as
//! the engine drives it (mio `Poll` owned by the caller, `Connection::poll` every turn).
//!
//! The allocation test installs a counting global allocator for this test binary. It counts
//! `alloc`, `alloc_zeroed` and `realloc` calls (not `dealloc`) made by the *current thread*
//! while a thread-local flag is set; libtest's own threads and the server's threads are
//! never counted. See `zero_allocations_while_reading` for the exact window.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

mod support;

use std::time::Duration;

use mio::{Events, Poll, Token};

use mm::net::record::PLAINTEXT_MAX;
use mm::net::ws::PRESIZE_PONG;
use mm::net::{
    CertProblem, ConnConfig, Connection, Disconnect, Handler, MessageKind, NetError, NetEvent,
    Phase, RestClient, RxClock, RxStamps, TlsRoots, TlsViolation,
};
use mm::time::{Clock, SystemClock};
use support::{server_frame, ServerConn, ServerEvent, TestPki, WsServer};

const WAIT: Duration = Duration::from_secs(10);
const NS_PER_MS: u64 = 1_000_000;
const NS_PER_S: u64 = 1_000_000_000;

// ---------------------------------------------------------------------------------------
// Counting allocator (this thread only)
// ---------------------------------------------------------------------------------------

#[path = "support/counting.rs"]
mod counting;

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

// ---------------------------------------------------------------------------------------
// Client harness: the engine's loop in miniature
// ---------------------------------------------------------------------------------------

/// Records everything (allocates: not for the counted window).
#[derive(Default)]
struct Recorder {
    messages: Vec<(MessageKind, Vec<u8>)>,
    events: Vec<NetEvent>,
}

impl Handler for Recorder {
    fn on_message(&mut self, kind: MessageKind, payload: &[u8], _now_ns: u64) {
        self.messages.push((kind, payload.to_vec()));
    }
    fn on_event(&mut self, event: NetEvent) {
        self.events.push(event);
    }
}

impl Recorder {
    fn opens(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, NetEvent::Open { .. }))
            .count()
    }
    fn disconnects(&self) -> Vec<Disconnect> {
        self.events
            .iter()
            .filter_map(|e| match e {
                NetEvent::Disconnected { cause, .. } => Some(*cause),
                _ => None,
            })
            .collect()
    }
}

struct Client {
    poll: Poll,
    events: Events,
    conn: Connection,
    clock: SystemClock,
}

impl Client {
    fn new(cfg: ConnConfig) -> Client {
        let clock = SystemClock::new();
        let conn = Connection::new(cfg, Token(7), clock.mono_ns()).unwrap();
        Client {
            poll: Poll::new().unwrap(),
            events: Events::with_capacity(64),
            conn,
            clock,
        }
    }

    fn now_ns(&self) -> u64 {
        self.clock.mono_ns()
    }

    /// One turn of the engine loop. Allocation-free after warm-up (mio's `Events` is
    /// preallocated).
    fn turn<H: Handler>(&mut self, handler: &mut H, timeout: Duration) {
        self.poll.poll(&mut self.events, Some(timeout)).unwrap();
        for ev in self.events.iter() {
            self.conn.on_readiness(ev);
        }
        let now = self.clock.mono_ns();
        self.conn.poll(self.poll.registry(), now, handler);
    }

    /// Turns until `done` or `timeout`; returns whether `done` held.
    fn run_until<H: Handler>(
        &mut self,
        handler: &mut H,
        timeout: Duration,
        mut done: impl FnMut(&H, &Connection) -> bool,
    ) -> bool {
        let deadline = self.now_ns() + timeout.as_nanos() as u64;
        while self.now_ns() < deadline {
            if done(handler, &self.conn) {
                return true;
            }
            self.turn(handler, Duration::from_millis(1));
        }
        done(handler, &self.conn)
    }
}

fn tls_setup() -> (TestPki, WsServer) {
    let pki = TestPki::new();
    let id = pki.server_identity(&["localhost", "127.0.0.1"]);
    let server = WsServer::start_tls(&id);
    (pki, server)
}

fn config(pki: &TestPki, server: &WsServer) -> ConnConfig {
    ConnConfig::new(
        &server.url("/stream?streams=btcusdt@bookTicker"),
        TlsRoots::CaFile(pki.ca_pem_path.clone()),
    )
}

/// Connects and waits for `Open` on both sides.
fn open(cfg: ConnConfig, server: &WsServer) -> (Client, Recorder, ServerConn) {
    let mut client = Client::new(cfg);
    let mut rec = Recorder::default();
    assert!(
        client.run_until(&mut rec, WAIT, |r, _| r.opens() == 1),
        "client never opened: {:?}",
        rec.events
    );
    let sc = server.accept(WAIT);
    assert_eq!(sc.recv(WAIT), Some(ServerEvent::Open));
    (client, rec, sc)
}

/// After a disconnect: waits for the second `Open` on both sides.
fn reopen(client: &mut Client, rec: &mut Recorder, server: &WsServer) -> ServerConn {
    assert!(
        client.run_until(rec, WAIT, |r, _| r.opens() == 2),
        "{:?}",
        rec.events
    );
    let sc = server.accept(WAIT);
    assert_eq!(sc.recv(WAIT), Some(ServerEvent::Open));
    sc
}

/// A text payload that names its index and has exactly `len` bytes (len ≥ 12).
fn numbered(i: usize, len: usize) -> Vec<u8> {
    let mut p = format!("{i:010}:").into_bytes();
    let fill = b"abcdefghijklmnopqrstuvwxyz0123456789";
    while p.len() < len {
        p.push(fill[p.len() % fill.len()]);
    }
    p.truncate(len.max(11));
    p
}

fn expect_texts(rec: &Recorder, from: usize, expected: &[Vec<u8>]) {
    assert_eq!(rec.messages.len(), from + expected.len(), "message count");
    for (i, (want, (kind, got))) in expected.iter().zip(&rec.messages[from..]).enumerate() {
        assert_eq!(*kind, MessageKind::Text, "message {i} kind");
        assert!(
            got == want,
            "message {i} differs ({} vs {} bytes)",
            got.len(),
            want.len()
        );
    }
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn receives_frames_of_varied_sizes_intact_and_in_order() {
    let (pki, server) = tls_setup();
    let (mut client, mut rec, sc) = open(config(&pki, &server), &server);

    // Sizes around every boundary that matters: WebSocket length encodings (125/126,
    // 65535/65536), one TLS record (2^14) and the client's 16 KiB read buffer.
    let sizes = [
        12,
        125,
        126,
        127,
        1000,
        4096,
        PLAINTEXT_MAX - 20,
        PLAINTEXT_MAX,
        PLAINTEXT_MAX + 1,
        40_000,
        65_535,
        65_536,
        100_000,
        200,
    ];
    let mut expected: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| numbered(i, n))
        .collect();
    for p in &expected {
        sc.send_text(p.clone());
    }
    // Many small frames coalesced into shared TLS records (frames straddle records).
    let batch: Vec<Vec<u8>> = (0..500).map(|i| numbered(1000 + i, 40 + i % 300)).collect();
    sc.send_frames(
        batch.iter().map(|p| server_frame(0x1, true, p)).collect(),
        true,
    );
    expected.extend(batch);
    // Byte-by-byte TCP writes: every TLS record and frame arrives in pieces.
    sc.set_chunking(1, Duration::from_micros(20));
    let slow: Vec<Vec<u8>> = (0..4).map(|i| numbered(2000 + i, 60 + 150 * i)).collect();
    sc.send_frames(
        slow.iter().map(|p| server_frame(0x1, true, p)).collect(),
        true,
    );
    expected.extend(slow);
    // Medium chunks across a frame bigger than a record.
    sc.set_chunking(777, Duration::ZERO);
    let big = numbered(3000, 3 * PLAINTEXT_MAX + 5);
    sc.send_text(big.clone());
    expected.push(big);

    let n = expected.len();
    assert!(client.run_until(&mut rec, WAIT * 3, |r, _| r.messages.len() >= n));
    expect_texts(&rec, 0, &expected);
    assert_eq!(client.conn.phase(), Phase::Open);
    assert_eq!(client.conn.stats().messages, n as u64);
    assert!(rec.disconnects().is_empty(), "{:?}", rec.events);
}

/// Keeps every message's receive stamps and the clock reading at the handler.
#[derive(Default)]
struct Stamped {
    got: Vec<(Vec<u8>, RxStamps, u64)>,
    clock: Option<RxClock>,
    events: Vec<NetEvent>,
}

impl Handler for Stamped {
    fn on_message(&mut self, _kind: MessageKind, _payload: &[u8], _now_ns: u64) {
        panic!("a connection with a clock calls on_message_stamped");
    }
    fn on_message_stamped(
        &mut self,
        _kind: MessageKind,
        payload: &[u8],
        _now_ns: u64,
        stamps: RxStamps,
    ) {
        let at = self.clock.map_or(0, |c| c.now_ns());
        self.got.push((payload.to_vec(), stamps, at));
    }
    fn on_event(&mut self, event: NetEvent) {
        self.events.push(event);
    }
}

/// Sends `n` numbered messages coalesced into one write (they share TLS records and reads)
/// and checks each message's stamps: taken, in layer order, not after the handler saw the
/// message, never behind the previous message's, and a message that shared its socket read
/// with the one before starts its WebSocket stage no earlier than that one was handed out.
fn check_stamps_in_order(rec: &Stamped, from: usize, tls: bool) {
    let mut prev: Option<RxStamps> = None;
    let mut shared_reads = 0;
    for (i, (_, s, at)) in rec.got[from..].iter().enumerate() {
        assert!(s.taken(), "message {i}: no stamps");
        assert!(s.read_start_ns > 0, "message {i}: {s:?}");
        assert!(
            s.read_start_ns <= s.read_ns
                && s.read_ns <= s.tls_ns
                && s.tls_ns <= s.ws_start_ns
                && s.ws_start_ns <= s.ws_ns
                && s.ws_ns <= *at,
            "message {i}: out of order {s:?}, handler at {at}"
        );
        if !tls {
            assert_eq!(s.tls_ns, s.read_ns, "plain TCP has no TLS stage: {s:?}");
        }
        if let Some(p) = prev {
            assert!(s.read_ns >= p.read_ns, "message {i}: {s:?} after {p:?}");
            if s.read_ns == p.read_ns {
                shared_reads += 1;
                assert!(s.ws_start_ns >= p.ws_ns, "message {i}: {s:?} after {p:?}");
            }
        }
        prev = Some(*s);
    }
    assert!(
        shared_reads > 0,
        "coalesced messages never shared a socket read"
    );
}

#[test]
fn receive_stamps_follow_each_message_through_read_tls_and_websocket() {
    for tls in [true, false] {
        let (pki, server) = if tls {
            let (pki, server) = tls_setup();
            (Some(pki), server)
        } else {
            (None, WsServer::start_plain())
        };
        let cfg = match &pki {
            Some(pki) => config(pki, &server),
            None => ConnConfig::new(&server.url("/ws"), TlsRoots::WebPki),
        };
        let mut client = Client::new(cfg);
        let clock = RxClock::new(client.clock, 0);
        let mut rec = Stamped {
            clock: Some(clock),
            ..Stamped::default()
        };
        // Given before the connection opens: every later connection stamps.
        assert!(client.conn.rx_clock().is_none());
        client.conn.set_rx_clock(Some(clock));
        assert!(client.run_until(&mut rec, WAIT, |r, _| {
            r.events.iter().any(|e| matches!(e, NetEvent::Open { .. }))
        }));
        let sc = server.accept(WAIT);
        assert_eq!(sc.recv(WAIT), Some(ServerEvent::Open));

        let batch: Vec<Vec<u8>> = (0..200).map(|i| numbered(i, 60 + i % 200)).collect();
        sc.send_frames(
            batch.iter().map(|p| server_frame(0x1, true, p)).collect(),
            true,
        );
        assert!(client.run_until(&mut rec, WAIT, |r, _| r.got.len() >= 200));
        let payloads: Vec<&Vec<u8>> = rec.got.iter().map(|(p, _, _)| p).collect();
        assert_eq!(payloads, batch.iter().collect::<Vec<_>>(), "tls={tls}");
        check_stamps_in_order(&rec, 0, tls);

        // Taken away: stamps are all zero (and no clock is read).
        client.conn.set_rx_clock(None);
        sc.send_text("unstamped");
        assert!(client.run_until(&mut rec, WAIT, |r, _| r.got.len() >= 201));
        assert_eq!(rec.got[200].1, RxStamps::default(), "tls={tls}");
        assert!(!rec.got[200].1.taken());
    }
}

#[test]
fn plain_ws_url_works_for_tests() {
    let server = WsServer::start_plain();
    let cfg = ConnConfig::new(&server.url("/ws"), TlsRoots::WebPki);
    let (mut client, mut rec, sc) = open(cfg, &server);
    sc.send_text("hello");
    assert!(client.run_until(&mut rec, WAIT, |r, _| r.messages.len() == 1));
    assert_eq!(rec.messages[0].1, b"hello");
    client.conn.send_text(b"from client").unwrap();
    let got = sc.recv_matching(WAIT, |e| matches!(e, ServerEvent::Text(_)));
    assert_eq!(got, Some(ServerEvent::Text(b"from client".to_vec())));
}

#[test]
fn ping_is_answered_with_a_pong_carrying_the_same_payload() {
    let (pki, server) = tls_setup();
    let (mut client, mut rec, sc) = open(config(&pki, &server), &server);
    for (k, payload) in [&b""[..], b"1723161255343", &[0xAB; 125][..]]
        .into_iter()
        .enumerate()
    {
        sc.ping(payload);
        assert!(client.run_until(&mut rec, WAIT, |_, c| c.stats().pings > k as u64));
        // Skipping the session's one unsolicited pong (it presizes the output buffer).
        let pong = sc.recv_matching(
            WAIT,
            |e| matches!(e, ServerEvent::Pong(p) if p[..] != PRESIZE_PONG[..]),
        );
        assert_eq!(pong, Some(ServerEvent::Pong(payload.to_vec())));
    }
    assert_eq!(client.conn.stats().pings, 3);
    assert!(rec.messages.is_empty(), "pings are not data messages");
}

#[test]
fn client_frames_reach_the_server_masked_and_intact() {
    let (pki, server) = tls_setup();
    let (mut client, mut rec, sc) = open(config(&pki, &server), &server);
    let payloads: Vec<Vec<u8>> = [0usize, 1, 125, 126, 5000, 16_000]
        .iter()
        .enumerate()
        .map(|(i, &n)| numbered(i, n.max(12)))
        .collect();
    for p in &payloads {
        client.conn.send_text(p).unwrap();
    }
    // Composed in place, no intermediate buffer.
    client
        .conn
        .send_with(mm::net::ws::OP_TEXT, |buf| {
            let msg = br#"{"id":"1","method":"ping"}"#;
            buf[..msg.len()].copy_from_slice(msg);
            Some(msg.len())
        })
        .unwrap();
    for p in &payloads {
        let got = sc.recv_matching(WAIT, |e| matches!(e, ServerEvent::Text(_)));
        assert_eq!(got, Some(ServerEvent::Text(p.clone())));
    }
    let got = sc.recv_matching(WAIT, |e| matches!(e, ServerEvent::Text(_)));
    assert_eq!(
        got,
        Some(ServerEvent::Text(br#"{"id":"1","method":"ping"}"#.to_vec()))
    );
    let too_big = vec![b'x'; 16 * 1024 + 1];
    assert_eq!(
        client.conn.send_text(&too_big),
        Err(NetError::PayloadTooLarge)
    );
    assert!(client.run_until(&mut rec, Duration::from_millis(50), |_, c| c.is_open()));
}

#[test]
fn send_back_pressure_is_reported_then_drains_in_order() {
    let (pki, server) = tls_setup();
    let (mut client, mut rec, sc) = open(config(&pki, &server), &server);
    sc.stall(Duration::from_millis(1500)); // the server stops reading
    let mut sent = Vec::new();
    let mut full = false;
    for i in 0..20_000 {
        let p = numbered(i, 16_000);
        match client.conn.send_text(&p) {
            Ok(()) => sent.push(p),
            Err(NetError::SendBufferFull) => {
                full = true;
                break;
            }
            Err(e) => panic!("unexpected send error {e:?}"),
        }
    }
    assert!(full, "kernel and TLS buffers never filled");
    // Drive the client (writable events flush the queue) while the server catches up.
    let mut got = 0;
    let deadline = client.now_ns() + 20 * WAIT.as_nanos() as u64;
    while got < sent.len() && client.now_ns() < deadline {
        client.turn(&mut rec, Duration::from_millis(1));
        while let Some(ev) = sc.recv(Duration::ZERO) {
            if let ServerEvent::Text(t) = ev {
                assert!(t == sent[got], "frame {got} corrupted or out of order");
                got += 1;
            }
        }
    }
    assert_eq!(got, sent.len(), "every accepted frame arrives");
    client.conn.send_text(b"after").unwrap();
    let last = sc.recv_matching(WAIT, |e| matches!(e, ServerEvent::Text(_)));
    assert_eq!(last, Some(ServerEvent::Text(b"after".to_vec())));
    assert!(rec.disconnects().is_empty(), "{:?}", rec.events);
}

#[test]
fn server_key_updates_mid_stream_keep_data_flowing_both_ways() {
    let (pki, server) = tls_setup();
    let (mut client, mut rec, sc) = open(config(&pki, &server), &server);
    let rounds = 6;
    let mut expected = Vec::new();
    for round in 0..rounds {
        let before: Vec<Vec<u8>> = (0..20)
            .map(|i| numbered(round * 100 + i, 30 + i * 37))
            .collect();
        for p in &before {
            sc.send_text(p.clone());
        }
        expected.extend(before);
        // rustls ServerConnection::refresh_traffic_keys: KeyUpdate(update_requested).
        sc.key_update();
        let after = numbered(round * 100 + 99, 5000);
        sc.send_text(after.clone());
        expected.push(after);
        let n = expected.len();
        assert!(
            client.run_until(&mut rec, WAIT, |r, _| r.messages.len() >= n),
            "round {round}"
        );
        // Client → server after the update: proves our answering KeyUpdate and new tx key.
        let msg = numbered(round, 64);
        client.conn.send_text(&msg).unwrap();
        let got = sc.recv_matching(WAIT, |e| matches!(e, ServerEvent::Text(_)));
        assert_eq!(got, Some(ServerEvent::Text(msg)), "round {round}");
    }
    expect_texts(&rec, 0, &expected);
    let tls = client.conn.tls_stats();
    assert_eq!(tls.key_updates_in, rounds as u32, "{tls:?}");
    assert_eq!(
        tls.key_updates_out, rounds as u32,
        "one answer per request: {tls:?}"
    );
    assert!(
        tls.tickets >= 1,
        "NewSessionTicket handed to rustls: {tls:?}"
    );
    assert!(rec.disconnects().is_empty(), "{:?}", rec.events);
}

#[test]
fn client_rotates_keys_before_its_usage_limit_and_asks_the_server_to() {
    let (pki, server) = tls_setup();
    let mut cfg = config(&pki, &server);
    cfg.key_update_after_records = Some(40);
    let (mut client, mut rec, sc) = open(cfg, &server);
    for i in 0..400 {
        client.conn.send_text(&numbered(i, 20 + i % 90)).unwrap();
        if i % 50 == 49 {
            // Let the socket drain and the server's answers come back.
            client.run_until(&mut rec, Duration::from_millis(5), |_, _| false);
        }
    }
    for i in 0..400 {
        let got = sc.recv_matching(WAIT, |e| matches!(e, ServerEvent::Text(_)));
        assert_eq!(
            got,
            Some(ServerEvent::Text(numbered(i, 20 + i % 90))),
            "frame {i}"
        );
    }
    // Server → client in batches of 50 records (threshold 40): after each batch our receive
    // key is worn, we ask the server to update (update_requested), and the idle pause gives
    // it time to read the request before its next write carries the answer.
    let expected: Vec<Vec<u8>> = (0..400).map(|i| numbered(10_000 + i, 100)).collect();
    for (b, batch) in expected.chunks(50).enumerate() {
        for p in batch {
            sc.send_text(p.clone());
        }
        let n = 50 * (b + 1);
        assert!(client.run_until(&mut rec, WAIT, |r, _| r.messages.len() >= n));
        client.run_until(&mut rec, Duration::from_millis(20), |_, _| false);
    }
    expect_texts(&rec, 0, &expected);
    let tls = client.conn.tls_stats();
    assert!(tls.key_updates_out >= 9, "{tls:?}");
    assert!(
        tls.key_updates_in >= 6,
        "server answered our update_requested: {tls:?}"
    );
    assert!(rec.disconnects().is_empty(), "{:?}", rec.events);
}

#[test]
fn close_notify_is_a_clean_close_and_ws_close_reports_its_code() {
    let (pki, server) = tls_setup();
    let (mut client, mut rec, sc) = open(config(&pki, &server), &server);
    sc.send_text("last words");
    sc.close_notify();
    assert!(client.run_until(&mut rec, WAIT, |r, _| !r.disconnects().is_empty()));
    assert_eq!(
        rec.messages.len(),
        1,
        "data before close_notify is delivered"
    );
    assert_eq!(
        rec.disconnects()[0],
        Disconnect::PeerClosed { ws_code: None }
    );

    // It reconnects; this time the server closes the WebSocket properly.
    assert!(client.run_until(&mut rec, WAIT, |r, _| r.opens() == 2));
    let sc2 = server.accept(WAIT);
    assert_eq!(sc2.recv(WAIT), Some(ServerEvent::Open));
    sc2.ws_close(1001);
    assert!(client.run_until(&mut rec, WAIT, |r, _| r.disconnects().len() == 2));
    assert_eq!(
        rec.disconnects()[1],
        Disconnect::PeerClosed {
            ws_code: Some(1001)
        }
    );
    drop(sc);
}

#[test]
fn tcp_cut_mid_frame_is_an_error_then_a_reconnect_succeeds() {
    let (pki, server) = tls_setup();
    let (mut client, mut rec, sc) = open(config(&pki, &server), &server);
    sc.send_text("complete");
    let frame = server_frame(0x1, true, &numbered(1, 3000));
    sc.send_raw(frame[..1500].to_vec());
    sc.cut_tcp();
    assert!(client.run_until(&mut rec, WAIT, |r, _| !r.disconnects().is_empty()));
    assert_eq!(rec.messages.len(), 1);
    assert_eq!(
        rec.disconnects()[0],
        Disconnect::Failed(NetError::TruncatedByPeer),
        "TCP FIN without close_notify is truncation, never a clean EOF"
    );
    let next = client
        .conn
        .next_attempt_at_ns()
        .expect("waiting for the next attempt");
    let backoff_ns = next.saturating_sub(client.now_ns());
    assert!(
        backoff_ns <= 100 * NS_PER_MS,
        "first retry after ≤ 100 ms: {backoff_ns}"
    );

    let sc2 = reopen(&mut client, &mut rec, &server);
    sc2.send_text("after reconnect");
    assert!(client.run_until(&mut rec, WAIT, |r, _| r.messages.len() == 2));
    assert_eq!(rec.messages[1].1, b"after reconnect");
    assert_eq!(client.conn.stats().opens, 2);
}

#[test]
fn tcp_cut_mid_tls_record_is_an_error() {
    let (pki, server) = tls_setup();
    let (mut client, mut rec, sc) = open(config(&pki, &server), &server);
    sc.cut_mid_record(numbered(7, 2000), 700);
    assert!(client.run_until(&mut rec, WAIT, |r, _| !r.disconnects().is_empty()));
    assert_eq!(
        rec.disconnects()[0],
        Disconnect::Failed(NetError::TcpClosedMidRecord)
    );
    assert!(rec.messages.is_empty());
}

#[test]
fn forged_or_broken_tls_records_are_protocol_errors() {
    let (pki, server) = tls_setup();
    let cases: [(Vec<u8>, NetError); 4] = [
        // A well-framed application_data record that was never encrypted with our key.
        (
            [&[23u8, 3, 3, 0, 40][..], &[0x5A; 40][..]].concat(),
            NetError::TlsProtocol(TlsViolation::BadRecordMac),
        ),
        // Longer than 2^14 + 256 (RFC 8446 §5.2): refused from the header alone.
        (
            vec![23, 3, 3, 0x41, 0x01],
            NetError::TlsProtocol(TlsViolation::RecordOverflow),
        ),
        // A plaintext alert after the handshake.
        (
            vec![21, 3, 3, 0, 2, 2, 40],
            NetError::TlsProtocol(TlsViolation::UnexpectedMessage),
        ),
        // A ChangeCipherSpec after the handshake.
        (
            vec![20, 3, 3, 0, 1, 1],
            NetError::TlsProtocol(TlsViolation::UnexpectedMessage),
        ),
    ];
    for (bytes, want) in cases {
        let (mut client, mut rec, sc) = open(config(&pki, &server), &server);
        sc.send_text("ok");
        sc.send_tcp_raw(bytes);
        assert!(client.run_until(&mut rec, WAIT, |r, _| !r.disconnects().is_empty()));
        assert_eq!(rec.messages.len(), 1, "data before the fault is delivered");
        assert_eq!(rec.disconnects()[0], Disconnect::Failed(want));
        client.conn.close(client.poll.registry());
    }
}

#[test]
fn websocket_violations_are_errors() {
    let (pki, server) = tls_setup();
    let cases: [(Vec<u8>, NetError); 3] = [
        (
            server_frame(0x1, true, &[0xC3, 0x28]),
            NetError::WsInvalidUtf8,
        ),
        // Masked frame from a server (RFC 6455 §5.1).
        (vec![0x81, 0x81, 1, 2, 3, 4, b'a' ^ 1], NetError::WsProtocol),
        // Control frame over 125 bytes.
        (server_frame(0x9, true, &[0; 126]), NetError::WsProtocol),
    ];
    for (bytes, want) in cases {
        let (mut client, mut rec, sc) = open(config(&pki, &server), &server);
        sc.send_raw(bytes);
        assert!(client.run_until(&mut rec, WAIT, |r, _| !r.disconnects().is_empty()));
        assert_eq!(rec.disconnects()[0], Disconnect::Failed(want));
        client.conn.close(client.poll.registry());
    }
}

#[test]
fn wrong_server_name_is_rejected_and_never_opens() {
    let pki = TestPki::new();
    let server = WsServer::start_tls(&pki.server_identity(&["other.example"]));
    let mut client = Client::new(config(&pki, &server));
    let mut rec = Recorder::default();
    assert!(client.run_until(&mut rec, WAIT, |r, _| !r.disconnects().is_empty()));
    assert_eq!(
        rec.disconnects()[0],
        Disconnect::Failed(NetError::CertificateRejected(CertProblem::NotValidForName))
    );
    assert_eq!(rec.opens(), 0);
}

#[test]
fn untrusted_certificate_is_rejected_and_never_opens() {
    let trusted = TestPki::new();
    let rogue = TestPki::new();
    let server = WsServer::start_tls(&rogue.server_identity(&["127.0.0.1"]));
    let mut client = Client::new(config(&trusted, &server));
    let mut rec = Recorder::default();
    assert!(client.run_until(&mut rec, WAIT, |r, _| r.disconnects().len() >= 2));
    for cause in rec.disconnects() {
        assert_eq!(
            cause,
            Disconnect::Failed(NetError::CertificateRejected(CertProblem::UnknownIssuer))
        );
    }
    assert_eq!(rec.opens(), 0);
    assert!(client.conn.backoff().failures() >= 2, "retries back off");
}

/// Host names are resolved on the connection's resolver thread (`net::resolve`), never on
/// the thread that polls it: one lookup when the connection is made and a fresh one after
/// every disconnect, observed through the resolver's counter; each attempt connects to an
/// address a lookup found, and the reconnect does not wait for the new lookup.
#[test]
fn dns_runs_on_the_resolver_thread_and_a_reconnect_never_waits_for_it() {
    let (pki, server) = tls_setup();
    let url = server
        .url("/stream?streams=btcusdt@bookTicker")
        .replace("127.0.0.1", "localhost");
    let cfg = ConnConfig::new(&url, TlsRoots::CaFile(pki.ca_pem_path.clone()));
    let (mut client, mut rec, sc) = open(cfg, &server);
    assert_eq!(
        client.conn.dns_lookups(),
        1,
        "one lookup, on the resolver thread"
    );
    let found = client.conn.resolved();
    assert!(!found.is_empty());
    sc.cut_tcp();
    let _sc2 = reopen(&mut client, &mut rec, &server);
    // The disconnect asked for a fresh lookup; it ran on the resolver thread.
    assert!(
        client.run_until(&mut rec, WAIT, |_, c| c.dns_lookups() == 2),
        "no second lookup: {}",
        client.conn.dns_lookups()
    );
    let addrs: Vec<_> = (0..found.len()).filter_map(|i| found.pick(i)).collect();
    for event in &rec.events {
        if let NetEvent::Connecting { addr, .. } = event {
            assert!(addrs.contains(addr), "{addr} was not resolved: {addrs:?}");
        }
    }
}

/// A connection sitting out a long backoff tries again at once when asked
/// (`attempt_within`, the live Ctrl+C wind-down), and not when the attempt is near.
#[test]
fn a_long_backoff_can_be_cut_short() {
    let trusted = TestPki::new();
    let rogue = TestPki::new();
    let server = WsServer::start_tls(&rogue.server_identity(&["127.0.0.1"]));
    let mut cfg = config(&trusted, &server);
    cfg.backoff_initial_ns = 20 * NS_PER_S;
    cfg.backoff_max_ns = 20 * NS_PER_S;
    let mut client = Client::new(cfg);
    let mut rec = Recorder::default();
    assert!(client.run_until(&mut rec, WAIT, |r, _| r.disconnects().len() == 1));
    let now = client.now_ns();
    let next = client
        .conn
        .next_attempt_at_ns()
        .expect("waiting out the backoff");
    assert!(next > now + 10 * NS_PER_S, "a 20 s backoff");
    assert!(
        !client.conn.attempt_within(now, 30 * NS_PER_S),
        "within reach: unchanged"
    );
    assert_eq!(client.conn.next_attempt_at_ns(), Some(next));
    assert!(client.conn.attempt_within(now, 500 * NS_PER_MS));
    // The next attempt runs (and fails again) well before the backoff would have ended.
    assert!(client.run_until(&mut rec, Duration::from_secs(5), |r, _| r
        .disconnects()
        .len()
        == 2));
    assert!(
        client.now_ns() < next,
        "tried again before the backoff's end"
    );
}

#[test]
fn ca_file_problems_are_config_errors() {
    let missing = ConnConfig::new(
        "wss://127.0.0.1:1/",
        TlsRoots::CaFile("/nonexistent/ca.pem".into()),
    );
    assert!(matches!(
        Connection::new(missing, Token(1), 0),
        Err(NetError::CaFile(_))
    ));
    let empty = std::env::temp_dir().join(format!("mm-empty-{}.pem", std::process::id()));
    std::fs::write(&empty, "no certificate here\n").unwrap();
    let cfg = ConnConfig::new("wss://127.0.0.1:1/", TlsRoots::CaFile(empty.clone()));
    assert!(matches!(
        Connection::new(cfg, Token(1), 0),
        Err(NetError::CaFile(mm::net::CaFileProblem::NoCertificate))
    ));
    let _ = std::fs::remove_file(empty);
}

#[test]
fn silent_connection_is_stale_and_reconnects() {
    let (pki, server) = tls_setup();
    let mut cfg = config(&pki, &server);
    cfg.stale_after_ns = 300 * NS_PER_MS;
    let (mut client, mut rec, sc) = open(cfg, &server);
    sc.stall(Duration::from_secs(2));
    assert!(client.run_until(&mut rec, WAIT, |r, _| !r.disconnects().is_empty()));
    match rec.disconnects()[0] {
        Disconnect::Stale { silent_ns } => assert!(silent_ns >= 300 * NS_PER_MS),
        other => panic!("expected Stale, got {other:?}"),
    }
    assert!(client.run_until(&mut rec, WAIT, |r, _| r.opens() == 2));
}

#[test]
fn rotation_before_max_age_reconnects_at_once() {
    let (pki, server) = tls_setup();
    let mut cfg = config(&pki, &server);
    cfg.max_age_ns = 1_000 * NS_PER_MS;
    let (mut client, mut rec, _sc) = open(cfg, &server);
    assert!(client.run_until(&mut rec, WAIT, |r, _| !r.disconnects().is_empty()));
    let (cause, next, at) = rec
        .events
        .iter()
        .find_map(|e| match *e {
            NetEvent::Disconnected {
                cause,
                next_attempt_at_ns,
                at_ns,
                ..
            } => Some((cause, next_attempt_at_ns, at_ns)),
            _ => None,
        })
        .unwrap();
    assert!(matches!(cause, Disconnect::Rotation { age_ns } if age_ns >= 1_000 * NS_PER_MS));
    assert_eq!(next, at, "rotation reconnects immediately");
    assert!(client.run_until(&mut rec, WAIT, |r, _| r.opens() == 2));
    let _sc2 = server.accept(WAIT);
}

#[test]
fn rest_get_json_with_content_length_and_chunked_over_tls() {
    let pki = TestPki::new();
    let id = pki.server_identity(&["localhost", "127.0.0.1"]);
    let roots = TlsRoots::CaFile(pki.ca_pem_path.clone());
    let client = RestClient::new(&roots, WAIT).unwrap();

    let body = br#"{"lastUpdateId":1027024,"bids":[["4.00000000","431.00000000"]],"asks":[["4.00000200","12.00000000"]]}"#;
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json;charset=UTF-8\r\n\
         Content-Length: {}\r\nx-mbx-used-weight-1m: 250\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(body);
    let (addr, server) = support::https_once(&id, response);
    let url = format!("https://{addr}/api/v3/depth?symbol=BTCUSDT&limit=5000");
    let r = client.get(&url).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, body);
    assert_eq!(r.headers.used_weight_1m, Some(250));
    let head = server.join().unwrap();
    assert!(head.starts_with("GET /api/v3/depth?symbol=BTCUSDT&limit=5000 HTTP/1.1\r\n"));
    assert!(head.contains(&format!("Host: {addr}\r\n")));

    let info = br#"{"timezone":"UTC","symbols":[{"symbol":"BTCUSDT","filters":[]}]}"#;
    let mut response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for part in info.chunks(10) {
        response.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        response.extend_from_slice(part);
        response.extend_from_slice(b"\r\n");
    }
    response.extend_from_slice(b"0\r\n\r\n");
    let (addr, server) = support::https_once(&id, response);
    let r = client
        .get(&format!(
            "https://localhost:{}/api/v3/exchangeInfo",
            addr.port()
        ))
        .unwrap();
    assert_eq!((r.status, &r.body[..]), (200, &info[..]));
    server.join().unwrap();

    // An untrusted server is refused here too.
    let rogue = TestPki::new().server_identity(&["127.0.0.1"]);
    let (addr, server) = support::https_once(&rogue, b"HTTP/1.1 200 OK\r\n\r\n".to_vec());
    assert_eq!(
        client.get(&format!("https://{addr}/")).map(|r| r.status),
        Err(NetError::CertificateRejected(CertProblem::UnknownIssuer))
    );
    let _ = server.join();
}

/// Counts only; never allocates.
#[derive(Default)]
struct Tally {
    messages: u64,
    bytes: u64,
    checksum: u64,
    events: u64,
}

impl Handler for Tally {
    fn on_message(&mut self, _kind: MessageKind, payload: &[u8], _now_ns: u64) {
        self.messages += 1;
        self.bytes += payload.len() as u64;
        self.checksum = payload
            .iter()
            .fold(self.checksum, |h, &b| h.rotate_left(5) ^ u64::from(b));
    }
    fn on_event(&mut self, _event: NetEvent) {
        self.events += 1;
    }
}

fn checksum_of(payloads: &[Vec<u8>]) -> u64 {
    payloads.iter().fold(0u64, |h, p| {
        p.iter().fold(h, |h, &b| h.rotate_left(5) ^ u64::from(b))
    })
}

/// bookTicker-shaped payloads (real field set, PROTOCOL.md), 1 in 50 a larger depth-like
/// message, all below the 16 KiB read buffer.
fn market_like(i: usize) -> Vec<u8> {
    if i % 50 == 49 {
        return numbered(i, 2_000 + (i % 7) * 1_000);
    }
    format!(
        r#"{{"stream":"btcusdt@bookTicker","data":{{"u":{},"s":"BTCUSDT","b":"61837.{:02}000000","B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}}}"#,
        50_093_239_212u64 + i as u64,
        i % 100
    )
    .into_bytes()
}

/// The transport's zero-allocation proof.
///
/// Window counted: every allocation made by this (the client's) thread inside
/// `counting::count(..)`, which covers mio `Poll::poll`, `Connection::on_readiness`,
/// `Connection::poll` (socket reads, our TLS record decryption, tungstenite frame parsing
/// and UTF-8 validation, the handler), 40 server pings answered through tungstenite's
/// auto-pong and our TLS encryption, and 100 client text frames sent with `send_text`.
/// Not counted: the server (other threads), building the test data, warm-up.
/// Warm-up (not counted) brings the same traffic shapes once: first read, first pong,
/// first send, NewSessionTickets, read-buffer growth.
#[test]
fn zero_allocations_while_reading() {
    // The counter itself counts (a broken counter would pass any zero test).
    let (v, n) = counting::count(|| Vec::<u8>::with_capacity(3));
    assert_eq!((v.capacity() >= 3, n), (true, 1));
    drop(v);

    let (pki, server) = tls_setup();
    let (mut client, mut rec, sc) = open(config(&pki, &server), &server);

    // Warm-up: every path once.
    let warm: Vec<Vec<u8>> = (0..2_000).map(market_like).collect();
    let mut frames: Vec<Vec<u8>> = warm.iter().map(|p| server_frame(0x1, true, p)).collect();
    frames.insert(100, server_frame(0x9, true, b"warm-ping"));
    sc.send_frames(frames, true);
    assert!(client.run_until(&mut rec, WAIT, |r, _| r.messages.len() >= warm.len()));
    client.conn.send_text(b"warm").unwrap();
    assert!(sc
        .recv_matching(WAIT, |e| matches!(e, ServerEvent::Pong(_)))
        .is_some());

    // Counted traffic, prepared before the window.
    const N: usize = 12_000;
    let payloads: Vec<Vec<u8>> = (0..N).map(|i| market_like(10_000 + i)).collect();
    let expected_sum = checksum_of(&payloads);
    let expected_bytes: u64 = payloads.iter().map(|p| p.len() as u64).sum();
    let mut frames = Vec::with_capacity(N + 40);
    for (i, p) in payloads.iter().enumerate() {
        frames.push(server_frame(0x1, true, p));
        if i % 300 == 150 {
            frames.push(server_frame(0x9, true, format!("{i}").as_bytes()));
        }
    }
    // Mix of record packings: half coalesced (frames straddle records), half one per write.
    let second_half = frames.split_off(frames.len() / 2);
    let mut tally = Tally::default();
    let order = br#"{"id":"o1","method":"order.place","params":{"symbol":"BTCUSDT","side":"BUY","type":"LIMIT_MAKER","price":"61837.63","quantity":"0.00100"}}"#;
    let clock = SystemClock::new();
    let deadline = clock.mono_ns() + 30 * 1_000 * NS_PER_MS;
    sc.send_frames(frames, true);
    sc.send_frames(second_half, false);

    let ((), allocations) = counting::count(|| {
        let mut sent = 0u64;
        while tally.messages < N as u64 && clock.mono_ns() < deadline {
            client.turn(&mut tally, Duration::ZERO);
            if tally.messages / 120 > sent {
                sent += 1;
                client.conn.send_text(order).unwrap();
            }
        }
    });

    assert_eq!(tally.messages, N as u64, "all frames arrived");
    assert_eq!(tally.bytes, expected_bytes);
    assert_eq!(tally.checksum, expected_sum, "intact and in order");
    assert_eq!(tally.events, 0, "no reconnect in the window");
    assert!(client.conn.stats().pings >= 40, "{:?}", client.conn.stats());
    println!(
        "transport: {N} frames read, {} pings answered, {} frames sent: {allocations} allocations",
        client.conn.stats().pings - 1,
        tally.messages / 120
    );
    assert_eq!(
        allocations, 0,
        "allocations on the client thread while reading"
    );

    // Server-initiated KeyUpdate (rare: rustls's limit or the venue's policy). Measured and
    // reported, not required to be zero: rustls's key schedule runs for it.
    let before = client.conn.stats().messages;
    sc.key_update();
    sc.send_text("after key update");
    assert!(sc.sync(WAIT));
    let ((), ku_allocations) = counting::count(|| {
        while client.conn.stats().messages == before && clock.mono_ns() < deadline {
            client.turn(&mut tally, Duration::ZERO);
        }
    });
    assert_eq!(client.conn.stats().messages, before + 1);
    println!("transport: one KeyUpdate received and answered: {ku_allocations} allocations");
}
