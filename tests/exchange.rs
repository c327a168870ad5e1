//! The local exchange (`mm-exchange`) as a client meets it: each test starts the real binary
//! as a child process on an ephemeral port, reads its `listening` line, and talks to it
//! with a plain tungstenite client over rustls (trusting the certificate it printed) or
//! plain TCP, exactly as the engine will.
//!
//! Order-entry and matching cases run on small capture files written by the test, so the
//! expected fills are known exactly. Replay fidelity and the snapshot/stream consistency
//! run on the bundled real capture (tools/data): nothing beside the clone is needed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use serde_json::{json, Map, Value};
use tungstenite::{Message, WebSocket};

#[path = "support/process.rs"]
mod process;

/// Binance's documentation key pair (PROTOCOL.md).
const KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
const SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
const READ_TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

fn now_ms() -> i64 {
    // Test code: the signed requests need the real wall clock, like any client.
    #[allow(clippy::disallowed_methods)]
    let now = std::time::SystemTime::now();
    now.duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The `--control-token` every test exchange runs with.
const CONTROL_TOKEN: &str = "t0k3n";

fn pause(ms: u64) {
    #[allow(clippy::disallowed_methods)]
    std::thread::sleep(Duration::from_millis(ms));
}

/// The bundled capture (tools/data), committed in the repo.
fn bundled_capture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/data/btcusdt_20240808.gz")
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mmx-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running simulator.
struct Sim {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    port: u16,
    tls: Option<Arc<ClientConfig>>,
    /// The certificate file it printed (TLS only).
    cert: Option<PathBuf>,
}

impl Sim {
    fn start(data: &[&Path], args: &[&str]) -> Sim {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mm-exchange"));
        for d in data {
            cmd.arg("--data").arg(d);
        }
        cmd.args(["--port", "0", "--api-key", KEY, "--api-secret", SECRET]);
        cmd.args(["--control-token", CONTROL_TOKEN]);
        cmd.args(args);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().expect("starting mm-exchange");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("mm-exchange printed no listening line");
        // `mm-exchange listening on 127.0.0.1:PORT tls cert=/path` or `... plain`.
        let rest = first
            .strip_prefix("mm-exchange listening on 127.0.0.1:")
            .unwrap_or_else(|| panic!("unexpected first line: {first}"));
        let (port, mode) = rest.split_once(' ').unwrap();
        let port: u16 = port.parse().unwrap();
        let tls = match mode.strip_prefix("tls cert=") {
            Some(path) => {
                let cert = CertificateDer::from_pem_file(path).expect("reading the printed cert");
                let mut roots = RootCertStore::empty();
                roots.add(cert).unwrap();
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let config = ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .unwrap()
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                Some(Arc::new(config))
            }
            None => {
                assert_eq!(mode, "plain");
                None
            }
        };
        Sim {
            stdin: child.stdin.take(),
            child,
            lines,
            port,
            tls,
            cert: mode.strip_prefix("tls cert=").map(PathBuf::from),
        }
    }

    fn connect(&self) -> Stream {
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        tcp.set_nodelay(true).unwrap();
        self.over(tcp)
    }

    /// A connected socket as a client stream (TLS when the exchange is).
    fn over(&self, tcp: TcpStream) -> Stream {
        tcp.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        match &self.tls {
            Some(config) => {
                let name = ServerName::try_from("localhost").unwrap();
                let conn = ClientConnection::new(Arc::clone(config), name).unwrap();
                Stream::Tls(Box::new(StreamOwned::new(conn, tcp)))
            }
            None => Stream::Plain(tcp),
        }
    }

    fn cert_path(&self) -> PathBuf {
        self.cert.clone().expect("a TLS exchange")
    }

    fn ws(&self, path: &str) -> WebSocket<Stream> {
        self.ws_over(self.connect(), path)
    }

    fn ws_over(&self, stream: Stream, path: &str) -> WebSocket<Stream> {
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        let url = format!("{scheme}://localhost:{}{path}", self.port);
        let (ws, _) = tungstenite::client(url, stream).expect("websocket handshake");
        ws
    }

    fn api(&self) -> Api {
        Api {
            ws: self.ws("/ws-api/v3"),
            next_id: 1,
            events: VecDeque::new(),
        }
    }

    /// One HTTP request on a fresh connection: (status, body).
    fn http(&self, method: &str, path: &str) -> (u16, String) {
        let mut s = self.connect();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        s.write_all(request.as_bytes()).unwrap();
        s.flush().unwrap();
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, body.to_string())
    }

    fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.http("GET", path);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    fn command(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Stops the exchange (`stop` on stdin) and returns its final accounting.
    fn stop(mut self) -> Value {
        self.command("stop");
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .expect("no accounting line on stop");
            if let Some(json) = line.strip_prefix("mm-exchange accounting ") {
                let status = self.child.wait().unwrap();
                assert!(status.success(), "mm-exchange exited with {status}");
                return serde_json::from_str(json).unwrap();
            }
        }
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// Next text frame as text (pings are answered by tungstenite and skipped).
fn next_text(ws: &mut WebSocket<Stream>) -> String {
    loop {
        match ws.read().expect("websocket read") {
            Message::Text(t) => return t.to_string(),
            Message::Close(_) => panic!("closed by the server"),
            _ => {}
        }
    }
}

fn next_json(ws: &mut WebSocket<Stream>) -> Value {
    let text = next_text(ws);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn hex_hmac(secret: &str, payload: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    ring::hmac::sign(&key, payload.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The WebSocket API payload: params except signature, sorted, `k=v` joined by `&`.
fn ws_payload(params: &Map<String, Value>) -> String {
    let mut names: Vec<&String> = params.keys().filter(|k| *k != "signature").collect();
    names.sort();
    names
        .iter()
        .map(|k| match &params[*k] {
            Value::String(s) => format!("{k}={s}"),
            v => format!("{k}={v}"),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Adds apiKey, timestamp (unless given) and signature.
fn sign(mut params: Map<String, Value>) -> Map<String, Value> {
    params.insert("apiKey".into(), json!(KEY));
    params.entry("timestamp").or_insert_with(|| json!(now_ms()));
    let signature = hex_hmac(SECRET, &ws_payload(&params));
    params.insert("signature".into(), json!(signature));
    params
}

struct Api {
    ws: WebSocket<Stream>,
    next_id: u64,
    events: VecDeque<Value>,
}

impl Api {
    fn send_raw(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.to_string().into()))
            .unwrap();
    }

    /// Sends a request and returns its response; events read meanwhile are kept.
    fn call(&mut self, method: &str, params: Map<String, Value>) -> Value {
        let id = format!("t{}", self.next_id);
        self.next_id += 1;
        let request = json!({"id": id, "method": method, "params": params});
        self.send_raw(&request.to_string());
        self.response(&json!(id))
    }

    fn response(&mut self, id: &Value) -> Value {
        loop {
            let v = next_json(&mut self.ws);
            if v.get("event").is_some() {
                self.events.push_back(v["event"].clone());
            } else if &v["id"] == id {
                return v;
            }
        }
    }

    fn signed(&mut self, method: &str, params: Value) -> Value {
        let Value::Object(map) = params else {
            panic!("params must be an object")
        };
        self.call(method, sign(map))
    }

    /// The next user-data event of type `kind` (`executionReport`,
    /// `outboundAccountPosition`); events of other types read meanwhile stay queued.
    fn event_of(&mut self, kind: &str) -> Value {
        if let Some(i) = self.events.iter().position(|e| e["e"] == kind) {
            return self.events.remove(i).unwrap();
        }
        loop {
            let v = next_json(&mut self.ws);
            if let Some(e) = v.get("event") {
                // Binance's wrapper since 2025-08 (the official SDKs drop events without it).
                assert_eq!(v["subscriptionId"], 0, "{v}");
                if e["e"] == kind {
                    return e.clone();
                }
                self.events.push_back(e.clone());
            }
        }
    }

    /// The next executionReport.
    fn event(&mut self) -> Value {
        self.event_of("executionReport")
    }

    /// The next outboundAccountPosition.
    fn position(&mut self) -> Value {
        self.event_of("outboundAccountPosition")
    }
}

fn limit_maker(side: &str, price: &str, qty: &str, id: &str) -> Value {
    json!({"symbol": "BTCUSDT", "side": side, "type": "LIMIT_MAKER", "price": price,
           "quantity": qty, "newClientOrderId": id, "newOrderRespType": "RESULT"})
}

fn error_code(response: &Value) -> i64 {
    response["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("expected an error: {response}"))
}

// ---------------------------------------------------------------------------------------
// Hand-built captures
// ---------------------------------------------------------------------------------------

const T0_NS: i64 = 1_723_161_253_000_000_000;

/// Writes capture lines (`<ns> <json>`) to a plain file.
fn write_capture(dir: &Path, name: &str, lines: &[(i64, String)]) -> PathBuf {
    let path = dir.join(name);
    let text: String = lines.iter().map(|(ts, j)| format!("{ts} {j}\n")).collect();
    std::fs::write(&path, text).unwrap();
    path
}

fn snapshot_line(id: u64) -> String {
    json!({"lastUpdateId": id,
           "bids": [["100.00000000", "2.00000000"], ["99.99000000", "1.00000000"]],
           "asks": [["100.01000000", "1.00000000"], ["100.02000000", "3.00000000"]]})
    .to_string()
}

fn trade_line(id: u64, price: &str, qty: &str, buyer_maker: bool) -> String {
    format!(
        "{{\"stream\":\"btcusdt@trade\",\"data\":{{\"e\":\"trade\",\"E\":1723161255343,\"s\":\"BTCUSDT\",\"t\":{id},\"p\":\"{price}\",\"q\":\"{qty}\",\"T\":1723161255342,\"m\":{buyer_maker},\"M\":true}}}}"
    )
}

fn depth_line(first: u64, last: u64, bid_qty: &str) -> String {
    format!(
        "{{\"stream\":\"btcusdt@depth@100ms\",\"data\":{{\"e\":\"depthUpdate\",\"E\":1723161255208,\"s\":\"BTCUSDT\",\"U\":{first},\"u\":{last},\"b\":[[\"99.98000000\",\"{bid_qty}\"]],\"a\":[]}}}}"
    )
}

/// The matching scenario: a snapshot (bids 100.00×2, 99.99×1; asks 100.01×1, 100.02×3),
/// then trades 1.0 and 1.5 at 100.00 (sell aggressor), 0.3 and 1.0 at 99.98 (through our
/// bid), 0.2 at 100.03 (buy aggressor, through an ask at 100.02).
fn matching_capture(dir: &Path) -> PathBuf {
    let ms = 1_000_000;
    write_capture(
        dir,
        "matching.txt",
        &[
            (T0_NS, snapshot_line(100)),
            (
                T0_NS + ms,
                trade_line(1, "100.00000000", "1.00000000", true),
            ),
            (
                T0_NS + 2 * ms,
                trade_line(2, "100.00000000", "1.50000000", true),
            ),
            (
                T0_NS + 3 * ms,
                trade_line(3, "99.98000000", "0.30000000", true),
            ),
            (
                T0_NS + 4 * ms,
                trade_line(4, "99.98000000", "1.00000000", true),
            ),
            (
                T0_NS + 5 * ms,
                trade_line(5, "100.03000000", "0.20000000", false),
            ),
        ],
    )
}

/// A long, quiet stream of depth diffs (ids 101…, 20 ms apart) for the fault tests.
fn fault_capture(dir: &Path, count: u64) -> PathBuf {
    let mut lines = vec![(T0_NS, snapshot_line(100))];
    for i in 0..count {
        let id = 101 + i;
        let qty = format!("{}.00000000", 1 + i % 5);
        lines.push((
            T0_NS + (i as i64 + 1) * 20_000_000,
            depth_line(id, id, &qty),
        ));
    }
    write_capture(dir, "faults.txt", &lines)
}

// ---------------------------------------------------------------------------------------
// Signatures and errors
// ---------------------------------------------------------------------------------------

#[test]
fn signature_vector_then_signed_orders_over_tls() {
    // The documented REST vector, with the same HMAC the client below uses.
    let rest = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559";
    assert_eq!(
        hex_hmac(SECRET, rest),
        "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
    );
    let dir = temp_dir("sig");
    let data = matching_capture(&dir);
    let sim = Sim::start(&[&data], &[]);
    assert!(sim.tls.is_some());
    let mut api = sim.api();

    // A freshly signed request verifies.
    let ok = api.signed(
        "order.place",
        limit_maker("BUY", "99.00", "0.10000", "sig-ok"),
    );
    assert_eq!(ok["status"], 200, "{ok}");
    assert_eq!(ok["result"]["status"], "NEW");
    assert_eq!(ok["result"]["price"], "99.00000000");
    assert!(ok["rateLimits"].as_array().unwrap().len() == 3);

    // One changed byte of the signature.
    let Value::Object(params) = limit_maker("BUY", "99.00", "0.10000", "sig-bad") else {
        unreachable!()
    };
    let mut params = sign(params);
    let signature = params["signature"].as_str().unwrap().to_string();
    let flipped = if signature.starts_with('0') { "1" } else { "0" };
    params.insert(
        "signature".into(),
        json!(format!("{flipped}{}", &signature[1..])),
    );
    let bad = api.call("order.place", params.clone());
    assert_eq!(error_code(&bad), -1022, "{bad}");
    assert_eq!(bad["status"], 400);
    assert_eq!(
        bad["error"]["msg"],
        "Signature for this request is not valid."
    );
    assert!(bad["rateLimits"].is_array());

    // One changed byte of a parameter, the signature left as it was.
    params.insert("signature".into(), json!(signature));
    params.insert("quantity".into(), json!("0.20000"));
    assert_eq!(error_code(&api.call("order.place", params)), -1022);

    // The wrong key.
    let mut p = sign(match limit_maker("BUY", "99.00", "0.1", "k") {
        Value::Object(m) => m,
        _ => unreachable!(),
    });
    p.insert("apiKey".into(), json!("not-the-key"));
    assert_eq!(error_code(&api.call("order.place", p)), -2015);

    let acct = sim.stop();
    assert_eq!(acct["orders_accepted"], 1);
    assert_eq!(acct["errors_by_code"]["-1022"], 2);
}

/// Signs `params` (plus `apiKey` = the Ed25519 test key and a timestamp, unless given)
/// with the Ed25519 private key `pem`: base64 signature of the sorted payload.
fn sign_ed25519(pem: &str, mut params: Map<String, Value>) -> Map<String, Value> {
    use base64::Engine as _;
    params.insert("apiKey".into(), json!(process::ED25519_KEY));
    params.entry("timestamp").or_insert_with(|| json!(now_ms()));
    let der = rustls::pki_types::PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).unwrap();
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der.secret_pkcs8_der())
        .unwrap();
    let signature = pair.sign(ws_payload(&params).as_bytes());
    let b64 = base64::engine::general_purpose::STANDARD.encode(signature.as_ref());
    params.insert("signature".into(), json!(b64));
    params
}

/// `session.logon` / `session.status` / `session.logout` with an Ed25519 key, as
/// web-socket-api.md describes them: a logged-on connection sends requests without
/// `apiKey` and signature (still with a timestamp) and may subscribe to user data
/// unsigned; another connection is not logged on; an HMAC key, a wrong key or a stale
/// timestamp is refused with Binance's codes.
#[test]
fn session_logon_status_logout_with_an_ed25519_key() {
    let dir = temp_dir("session");
    let data = matching_capture(&dir);
    let (_, public, _) = process::write_ed25519_keys(&dir);
    let args = process::ed25519_exchange_args(&public);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let sim = Sim::start(&[&data], &args);
    let mut api = sim.api();
    let unsigned_order = |id: &str| {
        let Value::Object(mut p) = limit_maker("BUY", "99.00", "0.1", id) else {
            unreachable!()
        };
        p.insert("timestamp".into(), json!(now_ms()));
        p
    };

    // Not logged on: status says so; unsigned requests are refused.
    let status = api.call("session.status", Map::new());
    assert_eq!(status["status"], 200, "{status}");
    assert!(status["result"]["apiKey"].is_null(), "{status}");
    assert!(status["result"]["authorizedSince"].is_null(), "{status}");
    assert!(status["result"]["connectedSince"].as_i64().unwrap() <= now_ms());
    let r = api.call("userDataStream.subscribe", Map::new());
    assert_eq!(
        (r["status"].as_i64(), error_code(&r)),
        (Some(401), -1002),
        "{r}"
    );
    let r = api.call("order.place", unsigned_order("u0"));
    assert_eq!(error_code(&r), -1102);
    assert!(
        r["error"]["msg"].as_str().unwrap().contains("'apiKey'"),
        "{r}"
    );

    // Refused logons: the HMAC key, a wrong private key, a stale timestamp, no signature.
    let r = api.call("session.logon", sign(Map::new()));
    assert_eq!(error_code(&r), -2015, "{r}");
    let r = api.call(
        "session.logon",
        sign_ed25519(process::ED25519_WRONG_PRIVATE_PEM, Map::new()),
    );
    assert_eq!(error_code(&r), -1022, "{r}");
    assert_eq!(
        r["error"]["msg"],
        "Signature for this request is not valid."
    );
    let mut stale = Map::new();
    stale.insert("timestamp".into(), json!(now_ms() - 10_000));
    let r = api.call(
        "session.logon",
        sign_ed25519(process::ED25519_PRIVATE_PEM, stale),
    );
    assert_eq!(error_code(&r), -1021, "{r}");
    let mut unsigned = Map::new();
    unsigned.insert("apiKey".into(), json!(process::ED25519_KEY));
    unsigned.insert("timestamp".into(), json!(now_ms()));
    let r = api.call("session.logon", unsigned);
    assert!(
        r["error"]["msg"].as_str().unwrap().contains("'signature'"),
        "{r}"
    );
    assert!(api.call("session.status", Map::new())["result"]["apiKey"].is_null());

    // Logged on.
    let before = now_ms();
    let r = api.call(
        "session.logon",
        sign_ed25519(process::ED25519_PRIVATE_PEM, Map::new()),
    );
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["result"]["apiKey"], process::ED25519_KEY, "{r}");
    assert!(r["result"]["authorizedSince"].as_i64().unwrap() >= before - 1_000);
    assert!(r["rateLimits"].is_array(), "{r}");
    let r = api.call("session.status", Map::new());
    assert_eq!(r["result"]["apiKey"], process::ED25519_KEY, "{r}");
    assert_eq!(r["result"]["userDataStream"], false, "{r}");
    let r = api.call("userDataStream.subscribe", Map::new());
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(
        api.call("session.status", Map::new())["result"]["userDataStream"],
        true
    );
    let r = api.call("order.place", unsigned_order("u1"));
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(api.event()["c"], "u1");
    // Still a signed request: the timestamp is checked.
    let mut no_ts = unsigned_order("u2");
    no_ts.remove("timestamp");
    let r = api.call("order.place", no_ts);
    assert!(
        r["error"]["msg"].as_str().unwrap().contains("'timestamp'"),
        "{r}"
    );

    // Another connection is not logged on, but may sign each request with the key.
    let mut other = sim.api();
    let r = other.call("order.place", unsigned_order("o1"));
    assert_eq!(error_code(&r), -1102, "{r}");
    let r = other.call(
        "order.place",
        sign_ed25519(process::ED25519_PRIVATE_PEM, unsigned_order("o2")),
    );
    assert_eq!(r["status"], 200, "{r}");

    // Logged out: back to signing every request.
    let r = api.call("session.logout", Map::new());
    assert_eq!(r["status"], 200, "{r}");
    assert!(r["result"]["apiKey"].is_null(), "{r}");
    let r = api.call("order.place", unsigned_order("u3"));
    assert_eq!(error_code(&r), -1102, "{r}");
    let acct = sim.stop();
    assert_eq!(acct["orders_accepted"], 2, "{acct}");
    assert_eq!(acct["api_requests_by_method"]["session.logon"], 5, "{acct}");
}

#[test]
fn timestamp_window_is_enforced_with_1021() {
    let dir = temp_dir("ts");
    let data = matching_capture(&dir);
    let sim = Sim::start(&[&data], &["--plain"]);
    let mut api = sim.api();
    let mut old = limit_maker("BUY", "99.00", "0.1", "old");
    old["timestamp"] = json!(now_ms() - 10_000);
    let r = api.signed("order.place", old);
    assert_eq!(error_code(&r), -1021);
    assert_eq!(
        r["error"]["msg"],
        "Timestamp for this request is outside of the recvWindow."
    );
    // Within a larger recvWindow it passes.
    let mut wide = limit_maker("BUY", "99.00", "0.1", "wide");
    wide["timestamp"] = json!(now_ms() - 10_000);
    wide["recvWindow"] = json!(60_000);
    assert_eq!(api.signed("order.place", wide)["status"], 200);
    let mut future = limit_maker("BUY", "99.00", "0.1", "future");
    future["timestamp"] = json!(now_ms() + 5_000);
    let r = api.signed("order.place", future);
    assert_eq!(error_code(&r), -1021);
    assert_eq!(
        r["error"]["msg"],
        "Timestamp for this request was 1000ms ahead of the server's time."
    );
    let mut too_wide = limit_maker("BUY", "99.00", "0.1", "w2");
    too_wide["recvWindow"] = json!(70_000);
    assert_eq!(error_code(&api.signed("order.place", too_wide)), -1102);
}

#[test]
fn order_rejections_use_binance_codes() {
    let dir = temp_dir("rej");
    let data = matching_capture(&dir);
    let sim = Sim::start(&[&data], &["--plain"]);
    let mut api = sim.api();
    // Best ask is 100.01: a LIMIT_MAKER buy there would take.
    let r = api.signed("order.place", limit_maker("BUY", "100.01", "0.1", "x1"));
    assert_eq!(error_code(&r), -2010);
    assert_eq!(r["error"]["msg"], "Order would immediately match and take.");
    let r = api.signed("order.place", limit_maker("SELL", "100.00", "0.1", "x2"));
    assert_eq!(error_code(&r), -2010);
    // Filters.
    let r = api.signed("order.place", limit_maker("BUY", "99.001", "0.1", "x3"));
    assert_eq!(error_code(&r), -1013);
    assert_eq!(r["error"]["msg"], "Filter failure: PRICE_FILTER");
    let r = api.signed("order.place", limit_maker("BUY", "99.00", "0.000001", "x4"));
    assert_eq!(r["error"]["msg"], "Filter failure: LOT_SIZE");
    let r = api.signed("order.place", limit_maker("BUY", "99.00", "0.01", "x5"));
    assert_eq!(r["error"]["msg"], "Filter failure: NOTIONAL");
    // Unknown order.
    let r = api.signed(
        "order.cancel",
        json!({"symbol": "BTCUSDT", "orderId": 424242}),
    );
    assert_eq!(error_code(&r), -2011);
    assert_eq!(r["error"]["msg"], "Unknown order sent.");
    let r = api.signed(
        "order.cancel",
        json!({"symbol": "BTCUSDT", "origClientOrderId": "nobody"}),
    );
    assert_eq!(error_code(&r), -2011);
    // Missing and malformed parameters.
    let r = api.signed(
        "order.place",
        json!({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT_MAKER", "quantity": "0.1"}),
    );
    assert_eq!(error_code(&r), -1102);
    assert_eq!(
        r["error"]["msg"],
        "Mandatory parameter 'price' was not sent, was empty/null, or malformed."
    );
    let r = api.signed("order.place", limit_maker("BUY", "9x", "0.1", "x6"));
    assert_eq!(error_code(&r), -1100);
    let r = api.signed("order.place", limit_maker("UP", "99", "0.1", "x7"));
    assert_eq!(error_code(&r), -1117);
    let r = api.signed("order.place", limit_maker("BUY", "99", "0.1", "bad id!"));
    assert_eq!(error_code(&r), -1100);
    let mut symbol = limit_maker("BUY", "99", "0.1", "x8");
    symbol["symbol"] = json!("ETHUSDT");
    assert_eq!(error_code(&api.signed("order.place", symbol)), -1121);
    // A LIMIT that crosses trades at once as a taker (FULL response by default).
    let taker = json!({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                       "price": "100.01", "quantity": "0.40000", "newClientOrderId": "taker"});
    let r = api.signed("order.place", taker);
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["result"]["status"], "FILLED");
    assert_eq!(r["result"]["fills"][0]["price"], "100.01000000");
    assert_eq!(r["result"]["fills"][0]["qty"], "0.40000000");
    assert_eq!(r["result"]["cummulativeQuoteQty"], "40.00400000");
    let acct = sim.stop();
    assert_eq!(acct["orders_rejected_by_code"]["-2010"], 2);
    assert_eq!(acct["orders_rejected_by_code"]["-1013"], 3);
    assert_eq!(acct["taker_fills"], 1);
    assert_eq!(acct["position"], "0.40000000");
    assert_eq!(acct["cash"], "-40.00400000");
}

#[test]
fn burst_over_the_order_limit_gets_429() {
    let dir = temp_dir("burst");
    let data = matching_capture(&dir);
    let sim = Sim::start(&[&data], &["--plain", "--orders-per-10s", "5"]);
    let mut api = sim.api();
    // 11 orders: whatever 10-second boundary falls inside the burst, one window sees 6.
    let mut limited = None;
    for i in 0..11 {
        let r = api.signed(
            "order.place",
            limit_maker("BUY", "90.00", "0.1", &format!("burst{i}")),
        );
        assert!(r["rateLimits"].is_array(), "{r}");
        if r["status"] == 429 {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("no 429 after 11 orders with a limit of 5 per 10 s");
    assert_eq!(error_code(&r), -1015);
    assert_eq!(
        r["error"]["msg"],
        "Too many new orders; current limit is 5 orders per 10 SECOND."
    );
    assert!(r["error"]["data"]["retryAfter"].as_i64().unwrap() > now_ms() - 1000);
    let orders = &r["rateLimits"][0];
    assert_eq!(orders["rateLimitType"], "ORDERS");
    assert_eq!(orders["limit"], 5);
    // Cancels are not new orders: still allowed.
    let r = api.signed(
        "order.cancel",
        json!({"symbol": "BTCUSDT", "origClientOrderId": "burst0"}),
    );
    assert_eq!(r["status"], 200, "{r}");
}

#[test]
fn malformed_requests_are_errors_not_crashes() {
    let dir = temp_dir("bad");
    let data = matching_capture(&dir);
    let sim = Sim::start(&[&data], &["--plain"]);
    let mut api = sim.api();
    api.send_raw("{oops");
    let r = api.response(&Value::Null);
    assert_eq!(r["status"], 400);
    assert_eq!(error_code(&r), -1135);
    api.send_raw("[1,2,3]");
    assert_eq!(error_code(&api.response(&Value::Null)), -1135);
    api.send_raw(r#"{"id":"m","params":{}}"#);
    assert_eq!(error_code(&api.response(&json!("m"))), -1102);
    api.send_raw(r#"{"id":"p","method":"order.place","params":"x"}"#);
    assert_eq!(error_code(&api.response(&json!("p"))), -1135);
    let r = api.call("no.such.method", Map::new());
    assert_eq!(error_code(&r), -1020);
    // Still alive and answering.
    let r = api.call("ping", Map::new());
    assert_eq!(r["status"], 200);
    assert_eq!(r["result"], json!({}));
    let r = api.call("time", Map::new());
    assert!((r["result"]["serverTime"].as_i64().unwrap() - now_ms()).abs() < 5_000);
    // REST errors have Binance's shape.
    let (status, body) = sim.http("GET", "/api/v3/depth?symbol=NOPE");
    assert_eq!(status, 400);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["code"], -1121);
    let (status, body) = sim.http("GET", "/api/v3/depth");
    assert_eq!(status, 400);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["code"], -1102);
}

#[test]
fn rest_exchange_info_time_and_depth() {
    let dir = temp_dir("rest");
    let data = matching_capture(&dir);
    let sim = Sim::start(&[&data], &[]);
    let info = sim.get_json("/api/v3/exchangeInfo");
    let symbol = &info["symbols"][0];
    assert_eq!(symbol["symbol"], "BTCUSDT");
    let filters: BTreeMap<String, Value> = symbol["filters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["filterType"].as_str().unwrap().to_string(), f.clone()))
        .collect();
    assert_eq!(filters["PRICE_FILTER"]["tickSize"], "0.01000000");
    assert_eq!(filters["LOT_SIZE"]["stepSize"], "0.00001000");
    assert_eq!(filters["NOTIONAL"]["minNotional"], "5.00000000");
    let limits = info["rateLimits"].as_array().unwrap();
    assert!(limits
        .iter()
        .any(|l| l["rateLimitType"] == "ORDERS" && l["intervalNum"] == 10 && l["limit"] == 100));
    assert!(limits
        .iter()
        .any(|l| l["rateLimitType"] == "REQUEST_WEIGHT" && l["limit"] == 6000));
    let time = sim.get_json("/api/v3/time");
    assert!((time["serverTime"].as_i64().unwrap() - now_ms()).abs() < 5_000);
    let depth = sim.get_json("/api/v3/depth?symbol=BTCUSDT&limit=1");
    assert_eq!(
        depth,
        json!({"lastUpdateId": 100, "bids": [["100.00000000", "2.00000000"]],
               "asks": [["100.01000000", "1.00000000"]]})
    );
}

#[test]
fn request_weight_limit_and_stopping_by_signal_or_eof() {
    let dir = temp_dir("weight");
    let data = matching_capture(&dir);
    let sim = Sim::start(&[&data], &["--plain", "--weight-per-minute", "12"]);
    let mut api = sim.api();
    // exchangeInfo weighs 20 > 12: refused at once, with the weight entry in rateLimits.
    let r = api.call("exchangeInfo", Map::new());
    assert_eq!(r["status"], 429, "{r}");
    assert_eq!(error_code(&r), -1003);
    assert!(r["error"]["data"]["retryAfter"].as_i64().is_some());
    assert_eq!(r["rateLimits"][0]["rateLimitType"], "REQUEST_WEIGHT");
    // `returnRateLimits: false` hides the array.
    let mut quiet = Map::new();
    quiet.insert("returnRateLimits".into(), json!(false));
    let r = api.call("ping", quiet);
    assert_eq!(r["status"], 200);
    assert!(r.get("rateLimits").is_none(), "{r}");
    // REST shares the counter: depth weighs 5; 429 with Retry-After once it is spent.
    // Six requests: whichever minute boundary falls among them, three land in one window.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(sim.http("GET", "/api/v3/depth?symbol=BTCUSDT&limit=5").0);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    // Ctrl+C (SIGINT) stops it cleanly with the accounting on stdout.
    let mut sim = sim;
    let pid = sim.child.id().to_string();
    let killed = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(killed.success());
    let line = loop {
        let line = sim.lines.recv_timeout(Duration::from_secs(30)).unwrap();
        if line.starts_with("mm-exchange accounting ") {
            break line;
        }
    };
    assert!(sim.child.wait().unwrap().success());
    let acct: Value =
        serde_json::from_str(line.trim_start_matches("mm-exchange accounting ")).unwrap();
    assert!(acct["rate_limited"].as_u64().unwrap() >= 2);

    // The end of stdin stops it too (the default `--stdin stop-on-eof`).
    let mut sim = Sim::start(&[&data], &["--plain"]);
    drop(sim.stdin.take());
    let line = loop {
        let line = sim.lines.recv_timeout(Duration::from_secs(30)).unwrap();
        if line.starts_with("mm-exchange accounting ") {
            break line;
        }
    };
    assert!(line.contains("\"orders_received\":0"));
    assert!(sim.child.wait().unwrap().success());
}

// ---------------------------------------------------------------------------------------
// Matching
// ---------------------------------------------------------------------------------------

#[test]
fn queue_position_partial_fills_trade_through_and_cancel_replace_race() {
    let dir = temp_dir("match");
    let data = matching_capture(&dir);
    let accounting = dir.join("accounting.json");
    let sim = Sim::start(
        &[&data],
        &[
            "--speed",
            "max",
            "--maker-fee-bps",
            "1",
            "--accounting-out",
            accounting.to_str().unwrap(),
        ],
    );
    let mut api = sim.api();
    let sub = api.signed("userDataStream.subscribe.signature", json!({}));
    assert_eq!(sub["status"], 200, "{sub}");
    // Joins behind 2.0 displayed at 100.00.
    let r = api.signed("order.place", limit_maker("BUY", "100.00", "1.00000", "q1"));
    assert_eq!(r["status"], 200, "{r}");
    let q1_id = r["result"]["orderId"].as_u64().unwrap();
    // An ask at 100.02 (behind 3.0): only a trade through it can fill it.
    let r = api.signed(
        "order.place",
        limit_maker("SELL", "100.02", "0.50000", "s1"),
    );
    assert_eq!(r["status"], 200, "{r}");
    let new = api.event();
    assert_eq!(
        (new["x"].as_str(), new["X"].as_str(), new["c"].as_str()),
        (Some("NEW"), Some("NEW"), Some("q1"))
    );
    assert_eq!(api.event()["c"], "s1");

    // Nothing is replayed before the first market-data subscriber: no fill yet.
    let open = api.signed("openOrders.status", json!({"symbol": "BTCUSDT"}));
    assert_eq!(open["result"].as_array().unwrap().len(), 2);
    assert_eq!(open["result"][0]["executedQty"], "0.00000000");

    // Start the replay and read it to the end.
    let mut market = sim.ws("/stream?streams=btcusdt@trade/btcusdt@aggTrade");
    let mut seen = Vec::new();
    for _ in 0..8 {
        let m = next_json(&mut market);
        let data = &m["data"];
        match m["stream"].as_str().unwrap() {
            "btcusdt@trade" => seen.push(format!("t{}", data["t"])),
            "btcusdt@aggTrade" => seen.push(format!(
                "a{}:{}-{}:{}",
                data["a"], data["f"], data["l"], data["q"]
            )),
            other => panic!("stream {other}"),
        }
    }
    // Trades with the same T, price and side aggregate; the aggTrade follows its last trade.
    assert_eq!(
        seen,
        vec![
            "t1",
            "t2",
            "a1:1-2:\"2.50000000\"",
            "t3",
            "t4",
            "a2:3-4:\"1.30000000\"",
            "t5",
            "a3:5-5:\"0.20000000\""
        ]
    );

    // q1: 1.0 at 100.00 only ate the queue (2.0 → 1.0); 1.5 finished it and filled 0.5;
    // 0.3 then 1.0 at 99.98 went through our bid: 0.3, then the last 0.2.
    let mut q1_fills = Vec::new();
    let mut s1_fills = Vec::new();
    for _ in 0..4 {
        let e = api.event();
        assert_eq!(e["e"], "executionReport");
        assert_eq!(e["x"], "TRADE");
        assert_eq!(e["m"], true);
        assert_eq!(e["N"], "USDT");
        match e["c"].as_str().unwrap() {
            "q1" => q1_fills.push(e),
            "s1" => s1_fills.push(e),
            other => panic!("fill for {other}"),
        }
    }
    let fields = |e: &Value| {
        (
            e["l"].as_str().unwrap().to_string(),
            e["z"].as_str().unwrap().to_string(),
            e["X"].as_str().unwrap().to_string(),
        )
    };
    let got: Vec<_> = q1_fills.iter().map(fields).collect();
    assert_eq!(
        got,
        vec![
            (
                "0.50000000".into(),
                "0.50000000".into(),
                "PARTIALLY_FILLED".into()
            ),
            (
                "0.30000000".into(),
                "0.80000000".into(),
                "PARTIALLY_FILLED".into()
            ),
            ("0.20000000".into(), "1.00000000".into(), "FILLED".into()),
        ]
    );
    for e in &q1_fills {
        assert_eq!(e["L"], "100.00000000"); // maker fills at the order's price
        assert_eq!(e["i"].as_u64(), Some(q1_id));
    }
    // 1 bp of 0.5 × 100 = 0.005 USDT; Z is the cumulative quote.
    assert_eq!(q1_fills[0]["n"], "0.00500000");
    assert_eq!(q1_fills[2]["Z"], "100.00000000");
    assert_eq!(
        fields(&s1_fills[0]),
        (
            "0.20000000".into(),
            "0.20000000".into(),
            "PARTIALLY_FILLED".into()
        )
    );
    assert_eq!(s1_fills[0]["L"], "100.02000000");

    // Cancel/replace race: q1 has just filled.
    let replace = |mode: &str, new_id: &str| {
        json!({"symbol": "BTCUSDT", "cancelReplaceMode": mode, "cancelOrigClientOrderId": "q1",
               "side": "BUY", "type": "LIMIT_MAKER", "price": "99.50", "quantity": "0.10000",
               "newClientOrderId": new_id})
    };
    let r = api.signed("order.cancelReplace", replace("STOP_ON_FAILURE", "r1"));
    assert_eq!(r["status"], 400, "{r}");
    assert_eq!(error_code(&r), -2022);
    assert_eq!(r["error"]["msg"], "Order cancel-replace failed.");
    let data = &r["error"]["data"];
    assert_eq!(data["cancelResult"], "FAILURE");
    assert_eq!(data["newOrderResult"], "NOT_ATTEMPTED");
    assert_eq!(
        data["cancelResponse"],
        json!({"code": -2011, "msg": "Unknown order sent."})
    );
    assert_eq!(data["newOrderResponse"], Value::Null);
    let r = api.signed("order.cancelReplace", replace("ALLOW_FAILURE", "r2"));
    assert_eq!(r["status"], 409, "{r}");
    assert_eq!(error_code(&r), -2021);
    let data = &r["error"]["data"];
    assert_eq!(data["cancelResult"], "FAILURE");
    assert_eq!(data["newOrderResult"], "SUCCESS");
    assert_eq!(data["newOrderResponse"]["clientOrderId"], "r2");
    // A successful replace of s1.
    let ok = json!({"symbol": "BTCUSDT", "cancelReplaceMode": "STOP_ON_FAILURE",
                    "cancelOrigClientOrderId": "s1", "side": "SELL", "type": "LIMIT_MAKER",
                    "price": "100.05", "quantity": "0.30000", "newClientOrderId": "s2"});
    let r = api.signed("order.cancelReplace", ok);
    assert_eq!(r["status"], 200, "{r}");
    assert_eq!(r["result"]["cancelResult"], "SUCCESS");
    assert_eq!(r["result"]["cancelResponse"]["origClientOrderId"], "s1");
    assert_eq!(r["result"]["cancelResponse"]["executedQty"], "0.20000000");
    assert_eq!(r["result"]["newOrderResponse"]["clientOrderId"], "s2");

    let r = api.signed("openOrders.cancelAll", json!({"symbol": "BTCUSDT"}));
    assert_eq!(r["status"], 200, "{r}");
    let cancelled: Vec<&str> = r["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["origClientOrderId"].as_str().unwrap())
        .collect();
    assert_eq!(cancelled, vec!["r2", "s2"]);
    let r = api.signed("openOrders.cancelAll", json!({"symbol": "BTCUSDT"}));
    assert_eq!(error_code(&r), -2011);

    let acct = sim.stop();
    assert_eq!(acct["fills"], 4);
    assert_eq!(acct["maker_fills"], 4);
    assert_eq!(acct["fill_qty"], "1.20000000");
    assert_eq!(acct["position"], "0.80000000");
    // −100.00 + 0.2 × 100.02 − fees (1 bp of 100 and of 20.004) = −80.0080004.
    assert_eq!(acct["fees"], "0.01200040");
    assert_eq!(acct["cash"], "-80.00800040");
    assert_eq!(acct["open_orders"], 0);
    assert_eq!(acct["orders_accepted"], 4);
    assert_eq!(acct["replay_done"], true);
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(&accounting).unwrap()).unwrap();
    assert_eq!(written, acct);
}

// ---------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------

fn next_depth(ws: &mut WebSocket<Stream>) -> (u64, u64, String) {
    let text = next_text(ws);
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (v["U"].as_u64().unwrap(), v["u"].as_u64().unwrap(), text)
}

#[test]
fn faults_gap_dup_garbage_drop_are_visible_to_clients() {
    let dir = temp_dir("faults");
    let data = fault_capture(&dir, 1500);
    let mut sim = Sim::start(&[&data], &["--speed", "1", "--ping-interval-s", "1"]);
    let mut ws = sim.ws("/ws/btcusdt@depth@100ms");
    let (_, mut last, _) = next_depth(&mut ws);

    // gap: one update is withheld.
    sim.command("gap");
    let mut saw_gap = false;
    for _ in 0..40 {
        let (first, u, _) = next_depth(&mut ws);
        if first != last + 1 {
            assert_eq!(first, last + 2, "exactly one update skipped");
            saw_gap = true;
            break;
        }
        last = u;
    }
    assert!(saw_gap, "no gap seen");

    // dup, through the HTTP control endpoint: one update arrives twice.
    let (status, body) = sim.http("POST", "/control/dup?token=t0k3n");
    assert_eq!(status, 200, "{body}");
    let mut saw_dup = false;
    let mut previous = String::new();
    for _ in 0..40 {
        let (_, _, text) = next_depth(&mut ws);
        if text == previous {
            saw_dup = true;
            break;
        }
        previous = text;
    }
    assert!(saw_dup, "no duplicate seen");

    // garbage: a frame that is not JSON, then the stream goes on.
    sim.command("garbage");
    let mut saw_garbage = false;
    for _ in 0..40 {
        let text = next_text(&mut ws);
        if serde_json::from_str::<Value>(&text).is_err() {
            saw_garbage = true;
            break;
        }
    }
    assert!(saw_garbage, "no malformed frame seen");
    next_depth(&mut ws);

    // stall: nothing arrives for the stall, then the stream resumes where it was.
    let (_, before, _) = next_depth(&mut ws);
    sim.command("stall 600");
    #[allow(clippy::disallowed_methods)]
    let mut last_arrival = std::time::Instant::now();
    let mut longest = Duration::ZERO;
    let mut previous = before;
    for _ in 0..60 {
        let (first, u, _) = next_depth(&mut ws);
        assert_eq!(first, previous + 1, "a stall loses nothing");
        previous = u;
        longest = longest.max(last_arrival.elapsed());
        #[allow(clippy::disallowed_methods)]
        let now = std::time::Instant::now();
        last_arrival = now;
        if longest >= Duration::from_millis(400) {
            break;
        }
    }
    assert!(
        longest >= Duration::from_millis(400),
        "longest silence {longest:?}"
    );

    // The server pings (every 1 s here); tungstenite answers. Wait for one.
    let mut saw_ping = false;
    for _ in 0..200 {
        if let Message::Ping(_) = ws.read().unwrap() {
            saw_ping = true;
            break;
        }
    }
    assert!(saw_ping, "no ping within 200 frames");

    // drop: the connection dies without a close handshake.
    sim.command("drop");
    let mut ended = false;
    for _ in 0..200 {
        match ws.read() {
            Ok(Message::Close(_)) => panic!("drop must not send a close frame"),
            Ok(_) => {}
            Err(_) => {
                ended = true;
                break;
            }
        }
    }
    assert!(ended, "connection still alive after drop");
    // A new connection works.
    let mut again = sim.ws("/ws/btcusdt@depth@100ms");
    next_depth(&mut again);
    let acct = sim.stop();
    assert_eq!(acct["gaps_injected"], 1);
    assert_eq!(acct["dups_injected"], 1);
    assert_eq!(acct["garbage_sent"], 1);
    assert_eq!(acct["stalls"], 1);
    assert!(acct["dropped_connections"].as_u64().unwrap() >= 1);
}

#[test]
fn reject_next_ratelimit_and_delay_acks() {
    let dir = temp_dir("faults2");
    let data = matching_capture(&dir);
    let mut sim = Sim::start(&[&data], &["--plain", "--latency-ms", "150"]);
    let mut api = sim.api();
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    assert_eq!(api.call("ping", Map::new())["status"], 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
    sim.command("reject-next");
    pause(200);
    let r = api.signed("order.place", limit_maker("BUY", "99.00", "0.1", "a"));
    assert_eq!(error_code(&r), -2010);
    assert_eq!(
        api.signed("order.place", limit_maker("BUY", "99.00", "0.1", "b"))["status"],
        200
    );
    sim.command("ratelimit 30");
    pause(200);
    let r = api.signed("order.place", limit_maker("BUY", "98.00", "0.1", "c"));
    assert_eq!(r["status"], 429);
    assert_eq!(error_code(&r), -1015);
    assert!(r["error"]["data"]["retryAfter"].as_i64().unwrap() > now_ms() + 20_000);
    sim.command("delay-acks 300");
    pause(200);
    #[allow(clippy::disallowed_methods)]
    let started = std::time::Instant::now();
    assert_eq!(api.call("ping", Map::new())["status"], 200);
    assert!(started.elapsed() >= Duration::from_millis(450));
    let acct = sim.stop();
    assert_eq!(acct["forced_rejects"], 1);
    assert_eq!(acct["rate_limited"], 1);
}

// ---------------------------------------------------------------------------------------
// Account: balances, account.status, outboundAccountPosition, accounting
// ---------------------------------------------------------------------------------------

/// (asset, free, locked) of an account.status `balances` or an outboundAccountPosition `B`.
fn balance_rows(list: &Value) -> Vec<(String, String, String)> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a balance list: {list}"))
        .iter()
        .map(|b| {
            let field = |long: &str, short: &str| {
                b.get(long)
                    .or_else(|| b.get(short))
                    .and_then(Value::as_str)
                    .unwrap_or_else(|| panic!("no {long}: {b}"))
                    .to_string()
            };
            (
                field("asset", "a"),
                field("free", "f"),
                field("locked", "l"),
            )
        })
        .collect()
}

fn rows(items: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    items
        .iter()
        .map(|(a, f, l)| (a.to_string(), f.to_string(), l.to_string()))
        .collect()
}

/// The balances of an accounting JSON, as rows (base asset first).
fn accounting_rows(acct: &Value) -> Vec<(String, String, String)> {
    ["BTC", "USDT"]
        .iter()
        .map(|asset| {
            let b = &acct["balances"][asset];
            (
                asset.to_string(),
                b["free"].as_str().unwrap().to_string(),
                b["locked"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn account_balances(api: &mut Api) -> Vec<(String, String, String)> {
    let r = api.signed("account.status", json!({}));
    assert_eq!(r["status"], 200, "{r}");
    balance_rows(&r["result"]["balances"])
}

#[test]
fn account_status_balances_follow_fills_and_open_orders() {
    let dir = temp_dir("account");
    let data = matching_capture(&dir);
    let sim = Sim::start(
        &[&data],
        &[
            "--speed",
            "max",
            "--maker-fee-bps",
            "1",
            "--taker-fee-bps",
            "10",
        ],
    );
    let mut api = sim.api();

    // The first request: Binance's field order, weight 20, the starting balances.
    let Value::Object(params) = json!({}) else {
        unreachable!()
    };
    let request = json!({"id": "acct", "method": "account.status", "params": sign(params)});
    api.send_raw(&request.to_string());
    let text = next_text(&mut api.ws);
    assert!(
        text.contains(
            "\"result\":{\"makerCommission\":1,\"takerCommission\":10,\"buyerCommission\":0,\"sellerCommission\":0,\"canTrade\":true,\"canWithdraw\":true,\"canDeposit\":true,\"commissionRates\":{\"maker\":\"0.00010000\",\"taker\":\"0.00100000\",\"buyer\":\"0.00000000\",\"seller\":\"0.00000000\"},\"brokered\":false,\"requireSelfTradePrevention\":false,\"preventSor\":false,\"updateTime\":0,\"accountType\":\"SPOT\",\"balances\":[{\"asset\":\"BTC\",\"free\":\"1.00000000\",\"locked\":\"0.00000000\"},{\"asset\":\"USDT\",\"free\":\"100000.00000000\",\"locked\":\"0.00000000\"}],\"permissions\":[\"SPOT\"],\"uid\":1}"
        ),
        "{text}"
    );
    let r: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(r["id"], "acct");
    assert_eq!(r["rateLimits"][0]["rateLimitType"], "REQUEST_WEIGHT");
    assert_eq!(r["rateLimits"][0]["count"], 20);
    // Signed: no signature, no answer.
    let mut unsigned = Map::new();
    unsigned.insert("apiKey".into(), json!(KEY));
    assert_eq!(error_code(&api.call("account.status", unsigned)), -1102);

    let sub = api.signed("userDataStream.subscribe.signature", json!({}));
    assert_eq!(sub["status"], 200, "{sub}");
    // A resting bid locks price × qty of USDT, a resting ask its qty of BTC.
    let r = api.signed("order.place", limit_maker("BUY", "100.00", "1.00000", "q1"));
    assert_eq!(r["status"], 200, "{r}");
    let r = api.signed(
        "order.place",
        limit_maker("SELL", "100.02", "0.50000", "s1"),
    );
    assert_eq!(r["status"], 200, "{r}");
    // Each executionReport batch is followed by the account update it caused.
    assert_eq!(api.event()["c"], "q1");
    let p = api.position();
    assert_eq!(
        balance_rows(&p["B"]),
        rows(&[
            ("BTC", "1.00000000", "0.00000000"),
            ("USDT", "99900.00000000", "100.00000000")
        ])
    );
    assert!((p["E"].as_i64().unwrap() - now_ms()).abs() < 5_000);
    assert_eq!(p["u"], p["E"]);
    assert_eq!(api.event()["c"], "s1");
    let locked = rows(&[
        ("BTC", "0.50000000", "0.50000000"),
        ("USDT", "99900.00000000", "100.00000000"),
    ]);
    assert_eq!(balance_rows(&api.position()["B"]), locked);
    let r = api.signed("account.status", json!({}));
    assert_eq!(balance_rows(&r["result"]["balances"]), locked);
    assert!((r["result"]["updateTime"].as_i64().unwrap() - now_ms()).abs() < 5_000);

    // The replay fills q1 (1.0 at 100.00, maker fee 1 bp = 0.01) and 0.2 of s1 at 100.02
    // (fee 0.0020004): BTC 1 + 1.0 − 0.2 = 1.8, 0.3 of it locked by s1's rest;
    // USDT 100000 − 100 − 0.01 + 20.004 − 0.0020004 = 99919.9919996, nothing locked.
    let mut market = sim.ws("/stream?streams=btcusdt@trade");
    for _ in 0..5 {
        next_json(&mut market);
    }
    for _ in 0..4 {
        assert_eq!(api.event()["x"], "TRADE");
    }
    // One account update per fill batch (four trades filled something).
    let mut last = Value::Null;
    for _ in 0..4 {
        last = api.position();
    }
    let after_fills = rows(&[
        ("BTC", "1.50000000", "0.30000000"),
        ("USDT", "99919.99199960", "0.00000000"),
    ]);
    assert_eq!(balance_rows(&last["B"]), after_fills);
    assert_eq!(account_balances(&mut api), after_fills);

    // A taker fill: 0.4 at 100.01 = 40.004 USDT, fee 10 bp = 0.040004.
    let taker = json!({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                       "price": "100.01", "quantity": "0.40000", "newClientOrderId": "t1"});
    let r = api.signed("order.place", taker);
    assert_eq!(r["result"]["status"], "FILLED", "{r}");
    let after_taker = rows(&[
        ("BTC", "1.90000000", "0.30000000"),
        ("USDT", "99879.94799560", "0.00000000"),
    ]);
    assert_eq!(balance_rows(&api.position()["B"]), after_taker);
    let r = api.signed("account.status", json!({"omitZeroBalances": true}));
    assert_eq!(balance_rows(&r["result"]["balances"]), after_taker);

    // The accounting agrees: totals = start + position / cash.
    let acct = sim.stop();
    assert_eq!(accounting_rows(&acct), after_taker);
    assert_eq!(acct["position"], "1.20000000");
    assert_eq!(acct["cash"], "-120.05200440");
    assert_eq!(acct["open_order_ids"], json!(["s1"]));
}

#[test]
fn insufficient_balance_is_rejected_with_2010() {
    let dir = temp_dir("broke");
    let data = matching_capture(&dir);
    let sim = Sim::start(
        &[&data],
        &[
            "--plain",
            "--balance-base",
            "0.5",
            "--balance-quote",
            "1000",
        ],
    );
    let mut api = sim.api();
    let broke = "Account has insufficient balance for requested action.";
    let r = api.signed(
        "order.place",
        limit_maker("SELL", "101.00", "0.6", "s-over"),
    );
    assert_eq!(r["status"], 400, "{r}");
    assert_eq!(error_code(&r), -2010);
    assert_eq!(r["error"]["msg"], broke);
    let r = api.signed("order.place", limit_maker("SELL", "101.00", "0.5", "s-all"));
    assert_eq!(r["status"], 200, "{r}");
    // Everything is locked now.
    let r = api.signed(
        "order.place",
        limit_maker("SELL", "102.00", "0.1", "s-more"),
    );
    assert_eq!(
        (error_code(&r), r["error"]["msg"].as_str()),
        (-2010, Some(broke))
    );
    // 10.1 × 99 = 999.9 fits in 1000; then 0.1 × 99 = 9.9 does not fit in 0.1.
    let r = api.signed("order.place", limit_maker("BUY", "99.00", "10.1", "b-big"));
    assert_eq!(r["status"], 200, "{r}");
    let r = api.signed("order.place", limit_maker("BUY", "99.00", "0.1", "b-small"));
    assert_eq!(error_code(&r), -2010);
    assert_eq!(
        account_balances(&mut api),
        rows(&[
            ("BTC", "0.00000000", "0.50000000"),
            ("USDT", "0.10000000", "999.90000000")
        ])
    );
    // Cancelling frees the funds.
    let r = api.signed(
        "order.cancel",
        json!({"symbol": "BTCUSDT", "origClientOrderId": "b-big"}),
    );
    assert_eq!(r["status"], 200, "{r}");
    let r = api.signed("order.place", limit_maker("BUY", "99.00", "0.1", "b-small"));
    assert_eq!(r["status"], 200, "{r}");
    // A crossing LIMIT needs price × qty up front: nothing trades.
    let taker = json!({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                       "price": "100.01", "quantity": "10.00000", "newClientOrderId": "t-big"});
    assert_eq!(error_code(&api.signed("order.place", taker)), -2010);
    // cancelReplace frees the old order's lock before the new one is checked.
    let replace = json!({"symbol": "BTCUSDT", "cancelReplaceMode": "STOP_ON_FAILURE",
                         "cancelOrigClientOrderId": "s-all", "side": "SELL",
                         "type": "LIMIT_MAKER", "price": "103.00", "quantity": "0.50000",
                         "newClientOrderId": "s-new"});
    let r = api.signed("order.cancelReplace", replace);
    assert_eq!(r["status"], 200, "{r}");
    let acct = sim.stop();
    assert_eq!(acct["orders_rejected_by_code"]["-2010"], 4);
    assert_eq!(acct["fills"], 0);
    assert_eq!(
        accounting_rows(&acct),
        rows(&[
            ("BTC", "0.00000000", "0.50000000"),
            ("USDT", "990.10000000", "9.90000000")
        ])
    );

    // No base at all: omitZeroBalances leaves it out, and nothing can be sold.
    let sim = Sim::start(&[&data], &["--plain", "--balance-base", "0"]);
    let mut api = sim.api();
    let usdt = ("USDT", "100000.00000000", "0.00000000");
    let r = api.signed("account.status", json!({"omitZeroBalances": true}));
    assert_eq!(balance_rows(&r["result"]["balances"]), rows(&[usdt]));
    let r = api.signed("account.status", json!({"omitZeroBalances": "false"}));
    assert_eq!(
        balance_rows(&r["result"]["balances"]),
        rows(&[("BTC", "0.00000000", "0.00000000"), usdt])
    );
    let r = api.signed("account.status", json!({"omitZeroBalances": "maybe"}));
    assert_eq!(error_code(&r), -1100);
    let r = api.signed("order.place", limit_maker("SELL", "101.00", "0.1", "none"));
    assert_eq!(error_code(&r), -2010);
}

#[test]
fn nothing_open_then_accounting_lists_balances_and_open_order_ids() {
    let dir = temp_dir("acctids");
    let data = matching_capture(&dir);
    let sim = Sim::start(&[&data], &[]);
    let mut api = sim.api();
    // Nothing open: openOrders.status is an empty list, cancelAll is -2011 (as on Binance).
    for params in [json!({"symbol": "BTCUSDT"}), json!({})] {
        let r = api.signed("openOrders.status", params);
        assert_eq!(r["status"], 200, "{r}");
        assert_eq!(r["result"], json!([]));
    }
    let r = api.signed("openOrders.cancelAll", json!({"symbol": "BTCUSDT"}));
    assert_eq!(r["status"], 400, "{r}");
    assert_eq!(
        r["error"],
        json!({"code": -2011, "msg": "Unknown order sent."})
    );
    assert!(r["rateLimits"].is_array());

    for (side, price, qty, id) in [
        ("BUY", "99.00", "0.1", "a1"),
        ("SELL", "101.00", "0.2", "a2"),
        ("BUY", "98.00", "0.1", "a3"),
    ] {
        let r = api.signed("order.place", limit_maker(side, price, qty, id));
        assert_eq!(r["status"], 200, "{r}");
    }
    let r = api.signed(
        "order.cancel",
        json!({"symbol": "BTCUSDT", "origClientOrderId": "a1"}),
    );
    assert_eq!(r["status"], 200, "{r}");

    let (status, body) = sim.http("POST", "/control/accounting?token=t0k3n");
    assert_eq!(status, 200, "{body}");
    let acct: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(acct["open_orders"], 2);
    assert_eq!(acct["open_order_ids"], json!(["a2", "a3"]));
    // The same ids as the exchange's own open-order list.
    let open = api.signed("openOrders.status", json!({"symbol": "BTCUSDT"}));
    let ids: Vec<Value> = open["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["clientOrderId"].clone())
        .collect();
    assert_eq!(Value::Array(ids), acct["open_order_ids"]);
    // 0.2 BTC locked by a2, 0.1 × 98 = 9.8 USDT by a3.
    let expected = rows(&[
        ("BTC", "0.80000000", "0.20000000"),
        ("USDT", "99990.20000000", "9.80000000"),
    ]);
    assert_eq!(accounting_rows(&acct), expected);
    assert_eq!(account_balances(&mut api), expected);
}

// ---------------------------------------------------------------------------------------
// Faults by connection kind
// ---------------------------------------------------------------------------------------

#[allow(clippy::disallowed_methods)] // test code: arrival times on the real clock
fn instant() -> std::time::Instant {
    std::time::Instant::now()
}

/// Reads until the connection ends; panics on a close frame (a `drop` sends none) or if it
/// is still open after the read timeout.
fn assert_dropped(ws: &mut WebSocket<Stream>, what: &str) {
    for _ in 0..5000 {
        match ws.read() {
            Ok(Message::Close(_)) => panic!("{what}: drop must not send a close frame"),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("{what}: still open")
            }
            Err(_) => return,
        }
    }
    panic!("{what}: still open after 5000 frames");
}

#[test]
fn drop_api_and_drop_market_close_only_their_kind() {
    let dir = temp_dir("dropkind");
    let data = fault_capture(&dir, 1500);
    let mut sim = Sim::start(&[&data], &["--speed", "1"]);
    let mut market = sim.ws("/ws/btcusdt@depth@100ms");
    let (_, mut last, _) = next_depth(&mut market);
    let mut api = sim.api();
    assert_eq!(api.call("time", Map::new())["status"], 200);

    sim.command("drop api");
    assert_dropped(&mut api.ws, "API connection");
    // The market data flows on, nothing lost.
    for _ in 0..10 {
        let (first, u, _) = next_depth(&mut market);
        assert_eq!(first, last + 1);
        last = u;
    }
    let mut api = sim.api();
    assert_eq!(api.call("time", Map::new())["status"], 200);

    let (status, body) = sim.http("POST", "/control/drop/market?token=t0k3n");
    assert_eq!(status, 200, "{body}");
    assert_dropped(&mut market, "market-data connection");
    // The API connection opened before it still answers, and a new stream works.
    assert_eq!(api.call("time", Map::new())["status"], 200);
    let mut again = sim.ws("/ws/btcusdt@depth@100ms");
    next_depth(&mut again);
    let (status, body) = sim.http("POST", "/control/drop/everything?token=t0k3n");
    assert_eq!(status, 400, "{body}");
    let acct = sim.stop();
    assert_eq!(acct["dropped_connections"], 2);
}

#[test]
fn stall_market_silences_market_data_while_the_api_answers() {
    let dir = temp_dir("stallmkt");
    let data = fault_capture(&dir, 1500);
    let sim = Sim::start(&[&data], &["--speed", "1"]);
    let mut market = sim.ws("/ws/btcusdt@depth@100ms");
    next_depth(&mut market);
    let mut api = sim.api();
    // Arrival time and ids of every diff for 3.5 s, on a thread of its own.
    let started = instant();
    let reader = std::thread::spawn(move || {
        let mut arrivals = Vec::new();
        while started.elapsed() < Duration::from_millis(3500) {
            let (first, last, _) = next_depth(&mut market);
            arrivals.push((instant(), first, last));
        }
        arrivals
    });
    pause(300);
    let (status, body) = sim.http("POST", "/control/stall-market/1500?token=t0k3n");
    assert_eq!(status, 200, "{body}");
    pause(100);
    let mut answered = Vec::new();
    for _ in 0..4 {
        let sent = instant();
        let r = api.call("time", Map::new());
        assert_eq!(r["status"], 200, "{r}");
        assert!(
            sent.elapsed() < Duration::from_millis(300),
            "{:?}",
            sent.elapsed()
        );
        answered.push(instant());
        pause(150);
    }
    let arrivals = reader.join().unwrap();
    // The replay waited: nothing lost, nothing skipped.
    for pair in arrivals.windows(2) {
        assert_eq!(pair[1].1, pair[0].2 + 1, "a stall loses nothing");
    }
    let (gap_start, gap_end) = arrivals
        .windows(2)
        .map(|pair| (pair[0].0, pair[1].0))
        .max_by_key(|(a, b)| *b - *a)
        .unwrap();
    assert!(
        gap_end - gap_start >= Duration::from_millis(1200),
        "longest silence {:?}",
        gap_end - gap_start
    );
    // Every API answer came while the market data was silent.
    for t in answered {
        assert!(gap_start < t && t < gap_end, "answer outside the silence");
    }
    let acct = sim.stop();
    assert_eq!(acct["market_stalls"], 1);
    assert_eq!(acct["stalls"], 0);
}

// ---------------------------------------------------------------------------------------
// Replay of the real captures
// ---------------------------------------------------------------------------------------

/// (raw JSON text, stream, data) of every stream message of a capture file, in order.
fn recorded_messages(path: &Path) -> Vec<(String, String, Value)> {
    let file = std::fs::File::open(path).unwrap();
    let reader = BufReader::new(flate2::read::GzDecoder::new(file));
    reader
        .lines()
        .filter_map(|line| {
            let line = line.unwrap();
            let (_, json) = line.split_once(' ').unwrap();
            let v: Value = serde_json::from_str(json).unwrap();
            let stream = v.get("stream")?.as_str()?.to_string();
            Some((json.to_string(), stream, v["data"].clone()))
        })
        .collect()
}

#[test]
fn replay_serves_the_recorded_stream_exactly() {
    let file = bundled_capture();
    let expected = recorded_messages(&file);
    assert_eq!(expected.len(), 41_248);
    let sim = Sim::start(&[&file], &["--speed", "max"]);
    let mut ws = sim.ws("/stream?streams=btcusdt@depth@100ms/btcusdt@bookTicker/btcusdt@trade");
    for (i, (raw, stream, data)) in expected.iter().enumerate() {
        let text = next_text(&mut ws);
        let got: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(&got["stream"], stream, "message {i}");
        assert_eq!(&got["data"], data, "message {i}");
        // Byte for byte, key order included.
        assert_eq!(&text, raw, "message {i}");
    }
    let acct = sim.stop();
    assert_eq!(acct["replay_done"], true);
}

#[test]
fn rest_snapshot_is_consistent_with_the_stream() {
    let file = bundled_capture();
    let sim = Sim::start(&[&file], &["--speed", "20"]);
    let mut ws = sim.ws("/ws/btcusdt@depth@100ms");
    // Binance's procedure: buffer, snapshot, drop u ≤ lastUpdateId, first applied brackets it.
    let first = next_json(&mut ws);
    let snapshot = sim.get_json("/api/v3/depth?symbol=BTCUSDT&limit=5000");
    let last_id = snapshot["lastUpdateId"].as_u64().unwrap();
    assert!(
        last_id + 1 >= first["U"].as_u64().unwrap(),
        "snapshot older than the first buffered event"
    );
    let mut book = LocalBook::from_snapshot(&snapshot);
    let mut diff = first;
    while diff["u"].as_u64().unwrap() <= last_id {
        diff = next_json(&mut ws);
    }
    let (u_first, u_last) = (diff["U"].as_u64().unwrap(), diff["u"].as_u64().unwrap());
    assert!(
        u_first <= last_id + 1 && last_id < u_last,
        "U={u_first} lastUpdateId+1={} u={u_last}",
        last_id + 1
    );
    book.apply_first(&diff);
    // Follow the stream for a while, then a second snapshot must equal our book once we
    // have applied up to its lastUpdateId.
    for _ in 0..30 {
        book.apply(&next_json(&mut ws));
    }
    let second = sim.get_json("/api/v3/depth?symbol=BTCUSDT&limit=5000");
    let target = second["lastUpdateId"].as_u64().unwrap();
    while book.last_id < target {
        book.apply(&next_json(&mut ws));
    }
    assert_eq!(book.last_id, target);
    assert_eq!(book, LocalBook::from_snapshot(&second));
}

/// The test's own book (strings as keys are fine: the wire always has 8 decimals).
#[derive(Debug, PartialEq)]
struct LocalBook {
    last_id: u64,
    bids: BTreeMap<String, String>,
    asks: BTreeMap<String, String>,
}

impl LocalBook {
    fn from_snapshot(v: &Value) -> LocalBook {
        let side = |levels: &Value| {
            levels
                .as_array()
                .unwrap()
                .iter()
                .map(|l| {
                    (
                        l[0].as_str().unwrap().to_string(),
                        l[1].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        };
        LocalBook {
            last_id: v["lastUpdateId"].as_u64().unwrap(),
            bids: side(&v["bids"]),
            asks: side(&v["asks"]),
        }
    }

    fn apply(&mut self, diff: &Value) {
        assert_eq!(
            diff["U"].as_u64().unwrap(),
            self.last_id + 1,
            "stream broke: {diff}"
        );
        self.apply_first(diff);
    }

    /// Applies a diff without the continuity check (the first one only brackets).
    fn apply_first(&mut self, diff: &Value) {
        for (key, side) in [("b", &mut self.bids), ("a", &mut self.asks)] {
            for level in diff[key].as_array().unwrap() {
                let price = level[0].as_str().unwrap().to_string();
                let qty = level[1].as_str().unwrap();
                if qty.chars().all(|c| c == '0' || c == '.') {
                    side.remove(&price);
                } else {
                    side.insert(price, qty.to_string());
                }
            }
        }
        self.last_id = diff["u"].as_u64().unwrap();
    }
}

#[test]
fn help_never_prints_the_secret_from_the_environment() {
    let secret = "sEcReT-from-env-0123456789abcdef";
    let key = "kEy-from-env-0123456789abcdef";
    let out = Command::new(env!("CARGO_BIN_EXE_mm-exchange"))
        .arg("--help")
        .env("MM_EXCHANGE_API_SECRET", secret)
        .env("MM_EXCHANGE_API_KEY", key)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("MM_EXCHANGE_API_SECRET"), "{text}");
    assert!(!text.contains(secret) && !text.contains(key), "{text}");
}

#[test]
fn subscribe_is_bounded_at_1024_streams_and_never_freezes_the_exchange() {
    let file = bundled_capture();
    let sim = Sim::start(&[&file], &["--speed", "1"]);
    let mut ws = sim.ws("/ws");
    let call = |ws: &mut WebSocket<Stream>, method: &str, names: Vec<String>| -> Value {
        let request = json!({"method": method, "params": names, "id": 7});
        ws.send(Message::Text(request.to_string().into())).unwrap();
        next_json(ws)
    };
    // 100,000 names (froze every client for ~27 s under the global lock): refused at once.
    let many: Vec<String> = (0..100_000).map(|i| format!("s{i}@trade")).collect();
    #[allow(clippy::disallowed_methods)] // a test measures that the answer is prompt
    let started = std::time::Instant::now();
    let reply = call(&mut ws, "SUBSCRIBE", many);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(reply["error"]["code"], 2, "{reply}");
    assert!(
        reply["error"]["msg"].as_str().unwrap().contains("1024"),
        "{reply}"
    );
    // Up to 1024 distinct names are taken, duplicates once.
    let mut names: Vec<String> = (0..1000).map(|i| format!("s{i}@trade")).collect();
    names.extend((0..24).map(|i| format!("s{i}@trade")));
    assert_eq!(call(&mut ws, "SUBSCRIBE", names)["result"], Value::Null);
    let more: Vec<String> = (1000..1024).map(|i| format!("s{i}@trade")).collect();
    assert_eq!(call(&mut ws, "SUBSCRIBE", more)["result"], Value::Null);
    let list = call(&mut ws, "LIST_SUBSCRIPTIONS", Vec::new());
    assert_eq!(list["result"].as_array().unwrap().len(), 1024, "{list}");
    let reply = call(&mut ws, "SUBSCRIBE", vec!["one@trade".to_string()]);
    assert_eq!(reply["error"]["code"], 2, "{reply}");
    let gone: Vec<String> = (0..10).map(|i| format!("s{i}@trade")).collect();
    assert_eq!(call(&mut ws, "UNSUBSCRIBE", gone)["result"], Value::Null);
    let list = call(&mut ws, "LIST_SUBSCRIPTIONS", Vec::new());
    assert_eq!(list["result"].as_array().unwrap().len(), 1014, "{list}");
    drop(ws);
    sim.stop();
}

#[test]
fn control_needs_the_token_and_the_temp_folder_goes_at_exit() {
    let file = bundled_capture();
    let sim = Sim::start(&[&file], &[]);
    for path in [
        "/control/stop",
        "/control/stop?token=wrong",
        "/control/stall-market/1000?token=",
    ] {
        let (status, body) = sim.http("POST", path);
        assert_eq!(status, 401, "{path}: {body}");
    }
    let (status, body) = sim.http(
        "POST",
        &format!("/control/accounting?token={CONTROL_TOKEN}"),
    );
    assert_eq!(status, 200, "{body}");
    // Still running (no unauthenticated stop got through).
    let (status, _) = sim.http("GET", "/api/v3/ping");
    assert_eq!(status, 200);
    let cert = sim.cert_path();
    assert!(cert.is_file());
    sim.stop();
    assert!(
        !cert.parent().unwrap().exists(),
        "{} left behind",
        cert.display()
    );
}

#[test]
fn an_oversized_message_closes_only_its_own_connection() {
    let file = bundled_capture();
    let sim = Sim::start(&[&file], &["--speed", "1"]);
    let mut other = sim.api();
    let mut big = sim.ws("/ws-api/v3");
    // 3 MiB, over the 2 MiB message limit: refused before it is buffered, connection
    // closed with 1009 (message too big).
    let text = format!(
        "{{\"id\":1,\"method\":\"ping\",\"pad\":\"{}\"}}",
        "x".repeat(3 << 20)
    );
    let _ = big.send(Message::Text(text.into()));
    let closed = loop {
        match big.read() {
            Ok(Message::Text(t)) => panic!("the oversized message was answered: {t}"),
            Ok(Message::Close(frame)) => break frame.map(|f| u16::from(f.code)),
            Ok(_) => continue,
            Err(_) => break None,
        }
    };
    assert!(
        closed.is_none() || closed == Some(1009),
        "closed with {closed:?}"
    );
    // Everyone else is served as before.
    let reply = other.call("ping", Map::new());
    assert_eq!(reply["status"], 200, "{reply}");
    sim.stop();
}

#[test]
fn connections_beyond_the_cap_are_closed_at_accept_and_counted() {
    let file = bundled_capture();
    let sim = Sim::start(&[&file], &["--speed", "1", "--connections-max", "3"]);
    let open: Vec<_> = (0..3).map(|_| sim.ws("/ws/btcusdt@trade")).collect();
    let scheme = if sim.tls.is_some() { "wss" } else { "ws" };
    let url = format!("{scheme}://localhost:{}/ws/btcusdt@trade", sim.port);
    assert!(
        tungstenite::client(url.as_str(), sim.connect()).is_err(),
        "a 4th connection was served over --connections-max 3"
    );
    // A closed connection frees its place.
    drop(open);
    let mut served = None;
    for _ in 0..100 {
        pause(50);
        if let Ok((ws, _)) = tungstenite::client(url.as_str(), sim.connect()) {
            served = Some(ws);
            break;
        }
    }
    assert!(
        served.is_some(),
        "no place freed after closing 3 connections"
    );
    drop(served);
    let accounting = sim.stop();
    let dropped = accounting["dropped_connections"]
        .as_u64()
        .unwrap_or_else(|| panic!("no dropped_connections in {accounting}"));
    assert!(dropped >= 1, "{accounting}");
}

#[test]
fn limits_out_of_range_are_refused_with_the_flag_named() {
    for (flag, value) in [
        ("--connections-max", "0"),
        ("--connections-max", "100000"),
        ("--market-queue-max", "1"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_mm-exchange"))
            .args(["--data", "x.gz", flag, value])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flag} {value} accepted");
        assert!(stderr.contains(flag), "{flag} {value}: {stderr}");
    }
}

/// Peak resident memory of a process, KiB (`VmHWM` in /proc/PID/status).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in {status}"))
}

/// Market data for a client that never reads: a 4 KiB receive buffer, set before connect
/// so that the window stays small (the kernel would otherwise grow it to megabytes and
/// absorb the whole session), WebSocket handshake done, then not one read.
fn never_reading_subscriber(sim: &Sim, path: &str) -> WebSocket<Stream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], sim.port));
    socket.connect(&addr.into()).unwrap();
    sim.ws_over(sim.over(TcpStream::from(socket)), path)
}

#[test]
fn a_subscriber_that_never_reads_is_dropped_and_the_others_are_served() {
    let file = bundled_capture();
    let expected = recorded_messages(&file);
    let path = "/stream?streams=btcusdt@depth@100ms/btcusdt@bookTicker/btcusdt@trade";
    // An 8192-message queue (~2 MB): the 11 MB session overflows it once the socket
    // buffers are full — the client's 4 KiB and the exchange's send buffer, which the
    // kernel grows to net.ipv4.tcp_wmem's maximum at most (4 MiB by default). At 20× the
    // 5.8 minutes take 17 s: a reader (this debug-build client, TLS) keeps up.
    let wmem = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem").unwrap();
    let wmem_max: u64 = wmem.split_whitespace().last().unwrap().parse().unwrap();
    assert!(
        wmem_max <= 8 << 20,
        "net.ipv4.tcp_wmem allows {wmem_max}-byte send buffers: the kernel could absorb the \
         whole 11 MB session and no queue would fill (the Linux default is 4 MiB)"
    );
    let sim = Sim::start(&[&file], &["--speed", "20", "--market-queue-max", "8192"]);
    let mut reader = sim.ws(path);
    let slow = never_reading_subscriber(&sim, path);
    // The reader gets the whole session, byte for byte, while the other one is dropped.
    for (i, (raw, _, _)) in expected.iter().enumerate() {
        let text = loop {
            match reader.read() {
                Ok(Message::Text(t)) => break t.to_string(),
                Ok(_) => {}
                Err(e) => panic!(
                    "the reader lost its connection at message {i}: {e}; accounting {}",
                    sim.http(
                        "POST",
                        &format!("/control/accounting?token={CONTROL_TOKEN}")
                    )
                    .1
                ),
            }
        };
        assert_eq!(&text, raw, "message {i}");
    }
    let (status, body) = sim.http(
        "POST",
        &format!("/control/accounting?token={CONTROL_TOKEN}"),
    );
    assert_eq!(status, 200, "{body}");
    let acct: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(acct["slow_subscribers_dropped"], 1, "{acct}");
    assert_eq!(acct["dropped_connections"], 1, "{acct}");
    // Memory: the session (11 MB of text) and two queues of at most 8192 messages; the
    // peak was 37 MiB here (with --market-queue-max 16777216 the queue array alone takes
    // 1 GiB, and the subscriber is never dropped).
    let peak_kib = peak_rss_kib(sim.child.id());
    assert!(peak_kib < 128 << 10, "mm-exchange peak RSS {peak_kib} KiB");
    // What the dropped client finds when it reads at last: what the socket buffers held,
    // then the end of the connection — not the session.
    let mut slow = slow;
    let mut got = 0usize;
    loop {
        match slow.read() {
            Ok(Message::Text(_)) => got += 1,
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    assert!(
        got + 8192 < expected.len(),
        "the dropped subscriber still got {got} of {} messages",
        expected.len()
    );
    // Still serving.
    assert_eq!(sim.http("GET", "/api/v3/ping").0, 200);
    let acct = sim.stop();
    assert_eq!(acct["replay_done"], true, "{acct}");
}
