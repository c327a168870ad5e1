//! A seeded byte mutator for the fuzz harnesses (tests/fuzz.rs, and mm-exchange's request
//! parser through `#[path]`): real inputs in, damaged copies out, reproducible from
//! (seed, iteration).
//!
//! Owns: the mutation operators (bit flips, random and "interesting" bytes, JSON tokens
//! that stress parsers — quotes, braces, huge and negative numbers, escapes, NUL —,
//! deletions, duplications, truncation, splices of two seeds) and `run`, the loop that
//! applies one harness to N mutated inputs and, on a panic, reports the seed, the
//! iteration and the input. N comes from `MM_FUZZ_ITERS` (the short CI run uses the
//! caller's default), the seed from `MM_FUZZ_SEED`.
//!
//! Never: reads anything but its seeds, or depends on the order harnesses run in.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout
)]

use std::panic::{catch_unwind, AssertUnwindSafe};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Tokens a JSON or HTTP parser must survive anywhere.
const TOKENS: &[&[u8]] = &[
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b",",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b"null",
    b"true",
    b"-",
    b"-0",
    b"0",
    b"1e400",
    b"-1",
    b"18446744073709551616",
    b"99999999999999999999999",
    b"0.000000001",
    b"1.",
    b".5",
    b"NaN",
    b"\0",
    b"\xff",
    b"\xc3\x28",
    b"\r\n",
    b"%",
    b"%zz",
    b"&",
    b"=",
    b"?",
    b"/",
    b" ",
    b"\t",
];

/// Iterations per harness: `MM_FUZZ_ITERS` if set, else `default`.
pub fn iterations(default: u64) -> u64 {
    std::env::var("MM_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The run's seed: `MM_FUZZ_SEED` if set, else 1.
pub fn seed() -> u64 {
    std::env::var("MM_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// One damaged copy of a seed (sometimes spliced with another), 1–8 operators deep.
pub fn mutate(rng: &mut ChaCha8Rng, seeds: &[Vec<u8>], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&seeds[rng.random_range(0..seeds.len())]);
    let ops = 1 + rng.random_range(0..8);
    for _ in 0..ops {
        let len = out.len();
        match rng.random_range(0..10) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                out[i] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.random_range(0..len);
                out[i] = rng.random();
            }
            2 => {
                let i = rng.random_range(0..=len);
                out.insert(i, rng.random());
            }
            3 | 4 => {
                let i = rng.random_range(0..=len);
                let t = TOKENS[rng.random_range(0..TOKENS.len())];
                out.splice(i..i, t.iter().copied());
            }
            5 if len > 0 => {
                let a = rng.random_range(0..len);
                let b = (a + 1 + rng.random_range(0..16)).min(len);
                out.drain(a..b);
            }
            6 if len > 0 => {
                let a = rng.random_range(0..len);
                let b = (a + 1 + rng.random_range(0..64)).min(len);
                let copy = out[a..b].to_vec();
                let at = rng.random_range(0..=out.len());
                out.splice(at..at, copy);
            }
            7 if len > 0 => out.truncate(rng.random_range(0..len)),
            8 => {
                let other = &seeds[rng.random_range(0..seeds.len())];
                if !other.is_empty() {
                    let a = rng.random_range(0..other.len());
                    let b = (a + 1 + rng.random_range(0..128)).min(other.len());
                    let at = rng.random_range(0..=out.len());
                    out.splice(at..at, other[a..b].iter().copied());
                }
            }
            _ if len > 0 => {
                // A digit run changed: ids, prices and lengths off by a lot.
                let i = rng.random_range(0..len);
                if out[i].is_ascii_digit() {
                    out[i] = b'0' + rng.random_range(0..10u8);
                    out.insert(i, b'9');
                }
            }
            _ => {}
        }
    }
}

/// Applies `harness` to `iters` mutated inputs (every seed unmutated first); panics with
/// the seed, the iteration and the input when the harness panics. Returns the inputs run.
pub fn run(name: &str, seeds: &[Vec<u8>], iters: u64, mut harness: impl FnMut(&[u8])) -> u64 {
    assert!(!seeds.is_empty(), "{name}: no seeds");
    let seed = seed();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut input = Vec::new();
    let mut done = 0u64;
    for s in seeds {
        check(name, seed, None, s, &mut harness);
        done += 1;
    }
    for i in 0..iters {
        mutate(&mut rng, seeds, &mut input);
        check(name, seed, Some(i), &input, &mut harness);
        done += 1;
    }
    println!(
        "fuzz {name}: {done} inputs (seed {seed}, {} seeds), no panic",
        seeds.len()
    );
    done
}

fn check(name: &str, seed: u64, i: Option<u64>, input: &[u8], harness: &mut impl FnMut(&[u8])) {
    if catch_unwind(AssertUnwindSafe(|| harness(input))).is_err() {
        panic!(
            "fuzz {name}: the harness panicked on seed {seed} iteration {i:?} (MM_FUZZ_SEED={seed}); \
             input ({} bytes): {}",
            input.len(),
            input.escape_ascii()
        );
    }
}
