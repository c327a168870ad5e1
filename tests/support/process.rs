//! Child processes for end-to-end tests: a scratch folder, the `mm` binary with a clean
//! environment, and the `mm-exchange` simulator with its stdin (fault commands) and stdout
//! (the listening line, `accounting` answers). Shared by test binaries with
//! `#[path = "support/process.rs"] mod process;`.

#![allow(dead_code)] // each test binary uses its own subset

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Duration;

use serde_json::Value;

/// Binance's documented HMAC test key pair (PROTOCOL.md), also mm-exchange's default.
pub const KEY: &str = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
/// Its secret.
pub const SECRET: &str = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";

/// An Ed25519 API key name for tests (what Binance would issue for a registered public
/// key; never a real key).
pub const ED25519_KEY: &str = "mmTestEd25519KeyRfc8032Test2000000000000000000000000000000000000";
/// RFC 8032 §7.1 TEST 2's secret key (a published test vector, never a real key) as PKCS#8
/// PEM, as `openssl genpkey -algorithm ed25519` writes keys.
pub const ED25519_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIEzNCJso/5banbbDRuwRTg9bijGfNaumJNqM9u1PuKb7
-----END PRIVATE KEY-----
";
/// Its public key as `openssl pkey -pubout` writes it (what is registered with Binance).
pub const ED25519_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAPUAXw+hDiVqStwqnTRt+vJyYLM8uxJaMwM1V8Sr0Zgw=
-----END PUBLIC KEY-----
";
/// RFC 8032 §7.1 TEST 1's secret key: a valid Ed25519 key, but not the registered one.
pub const ED25519_WRONG_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g
-----END PRIVATE KEY-----
";

/// The Ed25519 test key pair written to `dir`: (private key PEM, public key PEM, a wrong
/// private key PEM).
pub fn write_ed25519_keys(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let files = (
        dir.join("ed25519.pem"),
        dir.join("ed25519.pub.pem"),
        dir.join("ed25519-wrong.pem"),
    );
    std::fs::write(&files.0, ED25519_PRIVATE_PEM).unwrap();
    std::fs::write(&files.1, ED25519_PUBLIC_PEM).unwrap();
    std::fs::write(&files.2, ED25519_WRONG_PRIVATE_PEM).unwrap();
    files
}

/// mm-exchange flags registering the Ed25519 test key (public key at `public_pem`).
pub fn ed25519_exchange_args(public_pem: &Path) -> Vec<String> {
    vec![
        "--ed25519-api-key".to_string(),
        ED25519_KEY.to_string(),
        "--ed25519-public-key".to_string(),
        public_pem.display().to_string(),
    ]
}

/// A scratch folder under the temp dir, removed on drop.
pub struct Workdir(pub PathBuf);

impl Workdir {
    /// `<tmp>/<prefix>-<tag>-<pid>`, emptied first.
    pub fn new(prefix: &str, tag: &str) -> Workdir {
        let dir = std::env::temp_dir().join(format!("{prefix}-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Workdir(dir)
    }

    /// `mm <args>` in this folder; waits for it.
    pub fn run(&self, args: &[&str]) -> Output {
        mm(&self.0, args).output().unwrap()
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let (stdout, stderr) = text(&out);
        assert_eq!(
            out.status.code(),
            Some(0),
            "mm {args:?}\nstdout: {stdout}\nstderr: {stderr}"
        );
        stdout
    }

    /// A path inside the folder.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `mm <args>` in `dir`, without the caller's `MM__*` or `BINANCE_*` variables.
pub fn mm(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mm"));
    cmd.args(args).current_dir(dir);
    // vars_os: a non-UTF-8 variable elsewhere in the environment must not panic here.
    for (name, _) in std::env::vars_os() {
        let bytes = name.as_encoded_bytes();
        if bytes.starts_with(b"MM__") || bytes.starts_with(b"BINANCE_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// stdout and stderr as text.
pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[path = "data.rs"]
pub mod data;

/// A running `mm-exchange` on an ephemeral port with a TLS listener.
pub struct Exchange {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The PEM certificate it serves (trust it with `--ca`).
    pub cert: PathBuf,
}

impl Exchange {
    /// Starts `mm-exchange --data <each> --port 0 --api-key KEY --api-secret SECRET <args>`
    /// and waits for its listening line.
    pub fn start(data: &[PathBuf], args: &[&str]) -> Exchange {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mm-exchange"));
        for d in data {
            cmd.arg("--data").arg(d);
        }
        let mut child = cmd
            .args(["--port", "0", "--api-key", KEY, "--api-secret", SECRET])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting mm-exchange");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("mm-exchange printed no listening line");
        // `mm-exchange listening on 127.0.0.1:PORT tls cert=/path`.
        let rest = first
            .strip_prefix("mm-exchange listening on 127.0.0.1:")
            .unwrap_or_else(|| panic!("unexpected first line: {first}"));
        let (port, mode) = rest.split_once(' ').unwrap();
        let cert = mode.strip_prefix("tls cert=").expect("a TLS listener");
        Exchange {
            stdin: child.stdin.take(),
            child,
            lines,
            port: port.parse().unwrap(),
            cert: PathBuf::from(cert),
        }
    }

    /// `start` with the Ed25519 test key registered too (key files written to `dir`);
    /// returns the exchange, the private key file and a wrong (unregistered) key file.
    pub fn start_with_ed25519(
        data: &[PathBuf],
        args: &[&str],
        dir: &Path,
    ) -> (Exchange, PathBuf, PathBuf) {
        let (private, public, wrong) = write_ed25519_keys(dir);
        let ed_args = ed25519_exchange_args(&public);
        let mut all: Vec<&str> = args.to_vec();
        all.extend(ed_args.iter().map(String::as_str));
        (Exchange::start(data, &all), private, wrong)
    }

    /// `--endpoint=wss://127.0.0.1:PORT` for mm.
    pub fn endpoint_flag(&self) -> String {
        format!("--endpoint=wss://127.0.0.1:{}", self.port)
    }

    /// `--ca=<cert>` for mm.
    pub fn ca_flag(&self) -> String {
        format!("--ca={}", self.cert.display())
    }

    /// Sends one control command (tools/mm-exchange/control.rs) on stdin.
    pub fn command(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// The accounting JSON now (`accounting` on stdin).
    pub fn accounting(&mut self) -> Value {
        self.command("accounting");
        self.wait_accounting()
    }

    /// Stops the exchange (`stop` on stdin) and returns its final accounting.
    pub fn stop(mut self) -> Value {
        self.command("stop");
        let accounting = self.wait_accounting();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "mm-exchange exited with {status}");
        accounting
    }

    fn wait_accounting(&mut self) -> Value {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .expect("no accounting line");
            if let Some(json) = line.strip_prefix("mm-exchange accounting ") {
                return serde_json::from_str(json).unwrap();
            }
        }
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
