//! mm-exchange: a local exchange that speaks Binance spot's wire protocol on 127.0.0.1,
//! so the real engine (TLS, WebSocket, signatures, order state machine) runs end to end
//! without the internet. Usage and the control commands: tools/README.md.
//!
//! This file only wires: flags → config → data → state → threads (accept, replay, stdin),
//! then waits for stop (Ctrl+C, SIGTERM, end of stdin, `stop`) and prints the accounting.
//! The first line on stdout is machine-readable:
//! `mm-exchange listening on 127.0.0.1:PORT tls cert=/path/cert.pem` (or `... plain`).

// Console output goes through `console` (never panics on a closed pipe).
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod api;
mod book;
mod clock;
mod config;
mod control;
mod data;
mod matching;
mod ratelimit;
mod replay;
mod server;
mod session;
mod sign;
mod state;
mod tls;
mod wire;

use std::io::{BufRead, Write};
use std::net::TcpListener;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use crate::config::{Config, Flags, StdinMode};
use crate::data::{Capture, StreamKind};
use crate::state::{Exchange, Shared};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            mm::errln!("mm-exchange: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<()> {
    let cfg = Config::from_flags(Flags::parse())?;
    let capture = Capture::load(&cfg.data)?;
    mm::errln!(
        "mm-exchange: {} {}: {} messages ({} depth, {} bookTicker, {} trade, {} aggTrade derived), snapshot {}, {} lines skipped",
        cfg.data.len(),
        if cfg.data.len() == 1 { "file" } else { "files" },
        capture.records.len(),
        capture.count(StreamKind::Depth),
        capture.count(StreamKind::BookTicker),
        capture.count(StreamKind::Trade),
        capture.count(StreamKind::AggTrade),
        capture
            .snapshot
            .as_ref()
            .map_or_else(|| String::from("none"), |s| format!("lastUpdateId={}", s.last_update_id)),
        capture.skipped_lines,
    );
    let exchange = Exchange::new(&cfg, &capture);
    let (bid_levels, ask_levels) = exchange.market.book.depth();
    mm::errln!(
        "mm-exchange: {} book from the data: {bid_levels} bid and {ask_levels} ask levels",
        exchange.symbol
    );
    let tls = if cfg.plain {
        None
    } else {
        Some(tls::server_config(cfg.cert_out.as_deref())?)
    };
    let listener = TcpListener::bind(("127.0.0.1", cfg.port))
        .with_context(|| format!("binding 127.0.0.1:{}", cfg.port))?;
    let addr = listener.local_addr()?;
    let stdin_mode = cfg.stdin;
    let start_at_launch = cfg.start_at_launch;
    let shared = Arc::new(Shared::new(cfg, exchange));

    let signalled = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&signalled))
            .context("installing the signal handler")?;
    }
    let (server_tls, cert_path) = match tls {
        Some((config, path)) => (Some(config), Some(path)),
        None => (None, None),
    };
    spawn("mmx-accept", {
        let shared = Arc::clone(&shared);
        move || server::accept_loop(shared, listener, server_tls)
    })?;
    spawn("mmx-replay", {
        let shared = Arc::clone(&shared);
        move || replay::run(shared, capture)
    })?;
    if start_at_launch {
        shared.signal_start();
    }
    if stdin_mode != StdinMode::Off {
        spawn("mmx-stdin", {
            let shared = Arc::clone(&shared);
            move || read_commands(&shared, stdin_mode)
        })?;
    }

    mm::errln!(
        "mm-exchange: control token {} (POST /control/<command>?token=…)",
        shared.cfg.control_token
    );
    let mut out = std::io::stdout().lock();
    match &cert_path {
        Some(path) => writeln!(
            out,
            "mm-exchange listening on {addr} tls cert={}",
            path.display()
        )?,
        None => writeln!(out, "mm-exchange listening on {addr} plain")?,
    }
    out.flush()?;
    drop(out);

    while !shared.stopping() {
        if signalled.load(Ordering::SeqCst) {
            shared.request_stop();
        }
        clock::sleep(Duration::from_millis(20));
    }
    let json = shared.lock().accounting_json();
    control::write_accounting(&shared, &json);
    let mut out = std::io::stdout().lock();
    writeln!(out, "mm-exchange accounting {json}")?;
    out.flush()?;
    // Give connection threads a moment to send their close frames.
    clock::sleep(Duration::from_millis(50));
    // The certificate's temp folder (when no --cert-out chose the place) goes with us.
    if shared.cfg.cert_out.is_none() {
        if let Some(dir) = cert_path.as_deref().and_then(std::path::Path::parent) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    Ok(())
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> anyhow::Result<()> {
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .with_context(|| format!("starting thread {name}"))?;
    Ok(())
}

/// Control commands from standard input, one per line; answers go to stdout.
fn read_commands(shared: &Shared, mode: StdinMode) {
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else {
            break;
        };
        if line.trim().is_empty() {
            continue;
        }
        match control::run(shared, &line) {
            Ok(reply) => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(
                    out,
                    "mm-exchange {} {}",
                    if line.trim() == "accounting" {
                        "accounting"
                    } else {
                        "ok"
                    },
                    reply.json
                );
                let _ = out.flush();
            }
            Err(msg) => {
                mm::errln!("mm-exchange: {msg}");
            }
        }
        if shared.stopping() {
            return;
        }
    }
    if mode == StdinMode::StopOnEof {
        shared.request_stop();
    }
}
