//! Fast repeater for the 30-day-equivalent run (docs/backtest-at-scale.md): writes passes
//! FIRST .. FIRST+N-1 of the 10.8-minute BTCUSDT session to stdout as a plain capture
//! (`<local_ts_ns> <json>` per line): byte for byte the passes FIRST .. FIRST+N−1 that
//! `../shared/bench/hftbacktest/gen_big.py FIRST+N OUT.gz` writes (before its gzip), but
//! fast enough (~0.01 s of CPU a pass) to feed a backtest through a named pipe.
//!
//! Input: the first two passes as written by `gen_big.py 2 x.gz` and gunzipped. Pass 0
//! is copied as it is (it holds the REST snapshot); pass k ≥ 1 is pass 1 with the receive
//! time shifted by (k − 1) × 650.7 s, `E`/`T` by (k − 1) × 650,700 ms, `U`/`u` by (k − 1) ×
//! SPAN and `t` by (k − 1) × TSPAN — the generator's own linear shifts, so pass 1's bridge
//! diff is carried along too. SPAN and TSPAN are read off the two passes (the first depth
//! diff's `U` and the first trade's `t` of each).
//!
//! A standalone program with no dependencies (not part of the mm package):
//!   rustc -O -o /tmp/gen-passes tools/gen-passes.rs
//!   /tmp/gen-passes two_passes.txt N [FIRST] > fifo
//!
//! Never: reads the network or writes anything but stdout.

use std::io::{BufWriter, Write};

const SHIFT_MS: u64 = 650_700;
const SHIFT_NS: u64 = SHIFT_MS * 1_000_000;

/// The numeric fields the generator shifts, in order, as (byte range of the digits, kind).
fn fields(json: &[u8]) -> Vec<(usize, usize, u8)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 4 < json.len() {
        if json[i] == b'"'
            && json[i + 2] == b'"'
            && json[i + 3] == b':'
            && b"EUTut".contains(&json[i + 1])
            && json[i + 4].is_ascii_digit()
        {
            let start = i + 4;
            let mut end = start;
            while end < json.len() && json[end].is_ascii_digit() {
                end += 1;
            }
            out.push((start, end, json[i + 1]));
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

fn number(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(0u64, |n, &b| n * 10 + u64::from(b - b'0'))
}

/// The first value of a field of `kind` in `lines` (of a depth diff for U).
fn first_of(lines: &[&[u8]], kind: u8) -> u64 {
    for line in lines {
        for (s, e, k) in fields(line) {
            if k == kind {
                return number(&line[s..e]);
            }
        }
    }
    panic!("no {} field", kind as char)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: gen-passes TWO_PASSES.txt N [FIRST]  (writes to stdout)");
        std::process::exit(2);
    }
    let text = std::fs::read(&args[1]).expect("reading the two passes");
    let n: u64 = args[2].parse().expect("N");
    let first: u64 = args.get(3).map_or(0, |a| a.parse().expect("FIRST"));
    let lines: Vec<&[u8]> = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let ts = |l: &[u8]| number(&l[..l.iter().position(|&b| b == b' ').expect("a ts")]);
    let t0 = ts(lines[0]);
    let split = lines
        .iter()
        .position(|l| ts(l) >= t0 + SHIFT_NS)
        .expect("two passes");
    let (pass0, pass1) = lines.split_at(split);
    let span = first_of(pass1, b'U') - first_of(pass0, b'U');
    let tspan = first_of(pass1, b't') - first_of(pass0, b't');
    // Pass 1 as pieces: (text before a number, the number, its kind); 0 = the receive time.
    let templates: Vec<(Vec<(&[u8], u64, u8)>, &[u8])> = pass1
        .iter()
        .map(|line| {
            let sp = line.iter().position(|&b| b == b' ').expect("a ts");
            let mut pieces = vec![(&line[..0], number(&line[..sp]), 0u8)];
            let mut pos = sp;
            for (s, e, k) in fields(line) {
                pieces.push((&line[pos..s], number(&line[s..e]), k));
                pos = e;
            }
            (pieces, &line[pos..])
        })
        .collect();
    eprintln!(
        "gen-passes: {} + {} lines a pass, span(ids)={span}, trade id span={tspan}; passes \
         {first}..{}",
        pass0.len(),
        pass1.len(),
        first + n - 1
    );
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
    let mut digits = itoa_buf();
    for k in first..first + n {
        if k == 0 {
            for line in pass0 {
                out.write_all(line).and_then(|_| out.write_all(b"\n")).ok();
            }
            continue;
        }
        let m = k - 1;
        let shift = |kind: u8| match kind {
            0 => m * SHIFT_NS,
            b'E' | b'T' => m * SHIFT_MS,
            b'U' | b'u' => m * span,
            _ => m * tspan,
        };
        let shifts = [shift(0), shift(b'E'), shift(b'U'), shift(b't')];
        let at = |kind: u8| match kind {
            0 => shifts[0],
            b'E' | b'T' => shifts[1],
            b'U' | b'u' => shifts[2],
            _ => shifts[3],
        };
        for (pieces, tail) in &templates {
            for &(before, value, kind) in pieces {
                if out.write_all(before).is_err() {
                    return; // the reader hung up
                }
                let _ = out.write_all(write_u64(&mut digits, value + at(kind)));
            }
            let _ = out.write_all(tail);
            let _ = out.write_all(b"\n");
        }
    }
    let _ = out.flush();
}

fn itoa_buf() -> [u8; 20] {
    [0; 20]
}

fn write_u64(buf: &mut [u8; 20], mut v: u64) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}
