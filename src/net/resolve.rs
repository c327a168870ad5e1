//! Name resolution off the hot thread: one side thread per `Connection` runs the blocking,
//! allocating `getaddrinfo` (`ToSocketAddrs`) and hands the addresses over a bounded
//! channel as a `Copy` value.
//!
//! Owns: `Resolver` (the thread, its request and answer channels, its lookup counter) and
//! `Addrs` (up to `ADDRS_MAX` socket addresses, no heap).
//!
//! The connection asks (`request`, a `try_send` that never blocks: a request already
//! pending is enough) when it is created and whenever it loses its connection, and takes
//! the newest answer (`try_answer`, a `try_recv`) when it is time to connect. A stale
//! answer left unread is replaced by the newer one, so the channel never fills.
//!
//! Never: resolves on the caller's thread, blocks the caller, or allocates on it
//! (`request` and `try_answer` are channel operations on `Copy` values). The thread ends
//! when its `Resolver` is dropped (it is never joined: a lookup in progress may take the
//! resolver's timeout).

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_channel::{bounded, Receiver, Sender};

/// Addresses kept per answer (the first ones `getaddrinfo` returns; attempts rotate
/// through them).
pub const ADDRS_MAX: usize = 4;

/// Up to `ADDRS_MAX` addresses of one host, in the resolver's order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Addrs {
    list: [Option<SocketAddr>; ADDRS_MAX],
    len: usize,
}

impl Addrs {
    /// How many.
    pub fn len(&self) -> usize {
        self.len
    }

    /// None at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `i`-th modulo the count (attempts rotate through the addresses).
    pub fn pick(&self, i: usize) -> Option<SocketAddr> {
        if self.len == 0 {
            return None;
        }
        self.list[i % self.len]
    }

    fn push(&mut self, addr: SocketAddr) {
        if self.len < ADDRS_MAX {
            self.list[self.len] = Some(addr);
            self.len += 1;
        }
    }
}

/// What a lookup found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// At least one address.
    Found(Addrs),
    /// The lookup failed or found nothing.
    Failed,
}

/// The resolver thread of one host and port.
#[derive(Debug)]
pub struct Resolver {
    requests: Sender<()>,
    answers: Receiver<Answer>,
    lookups: Arc<AtomicU64>,
}

impl Resolver {
    /// Starts the thread (`mm-dns`) for `host:port`. Off the hot path.
    pub fn spawn(host: &str, port: u16) -> std::io::Result<Resolver> {
        let (requests, wanted) = bounded::<()>(1);
        let (answer_tx, answers) = bounded::<Answer>(1);
        let stale = answers.clone();
        let lookups = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&lookups);
        let host = host.to_string();
        std::thread::Builder::new()
            .name("mm-dns".to_string())
            .spawn(move || {
                // Started by a connection the hot thread may be opening: off its core.
                crate::cpu::keep_off_hot_core();
                while wanted.recv().is_ok() {
                    let answer = lookup(&host, port);
                    counter.fetch_add(1, Ordering::SeqCst);
                    // Replace an answer nobody took yet: only the newest counts.
                    while stale.try_recv().is_ok() {}
                    if answer_tx.try_send(answer).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Resolver {
            requests,
            answers,
            lookups,
        })
    }

    /// Asks for a fresh lookup (no-op if one is already asked for). Never blocks.
    pub fn request(&self) {
        let _ = self.requests.try_send(());
    }

    /// The newest answer not taken yet. Never blocks.
    pub fn try_answer(&self) -> Option<Answer> {
        self.answers.try_recv().ok()
    }

    /// Lookups the thread has completed (each one a `getaddrinfo` on that thread).
    pub fn lookups(&self) -> u64 {
        self.lookups.load(Ordering::SeqCst)
    }
}

fn lookup(host: &str, port: u16) -> Answer {
    let Ok(found) = (host, port).to_socket_addrs() else {
        return Answer::Failed;
    };
    let mut addrs = Addrs::default();
    for addr in found {
        addrs.push(addr);
    }
    if addrs.is_empty() {
        Answer::Failed
    } else {
        Answer::Found(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn wait_answer(r: &Resolver) -> Answer {
        #[allow(clippy::disallowed_methods)] // test: waits in real time
        let start = Instant::now();
        loop {
            if let Some(a) = r.try_answer() {
                return a;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "no answer");
            #[allow(clippy::disallowed_methods)]
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn resolves_on_its_thread_and_answers_the_newest() {
        let r = Resolver::spawn("127.0.0.1", 9443).unwrap();
        assert_eq!(r.try_answer(), None, "nothing asked yet");
        r.request();
        let Answer::Found(addrs) = wait_answer(&r) else {
            panic!("127.0.0.1 did not resolve")
        };
        assert_eq!(addrs.pick(0), Some("127.0.0.1:9443".parse().unwrap()));
        assert_eq!(addrs.pick(5), addrs.pick(5 % addrs.len()));
        assert_eq!(r.lookups(), 1);
        assert_eq!(r.try_answer(), None, "taken");
        r.request();
        assert!(matches!(wait_answer(&r), Answer::Found(_)));
        assert_eq!(r.lookups(), 2);
    }

    #[test]
    fn a_name_that_does_not_exist_fails() {
        let r = Resolver::spawn("no-such-host.invalid", 443).unwrap();
        r.request();
        assert_eq!(wait_answer(&r), Answer::Failed);
        assert_eq!(Addrs::default().pick(0), None);
    }
}
