//! Benchmark of the transport's per-message CPU work, without sockets: TLS 1.3 record
//! sealing and opening in place (`mm::net::record`, AES-128-GCM — what Binance negotiates —
//! and ChaCha20-Poly1305) for a bookTicker-sized record and a full 16 KiB record, and
//! building a masked WebSocket client frame (`mm::net::ws::encode_masked_frame`).
//!
//! Checks its own answers first: every sealed record must open to the same bytes and
//! content type, and the masked frame must unmask to its payload; a wrong record layer is
//! not benchmarked. Never touches the network or the clock itself (criterion times it).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use ring::aead;

use mm::net::record::{RecordKey, CT_APPLICATION_DATA, HEADER_LEN, OVERHEAD, PLAINTEXT_MAX};
use mm::net::ws::{encode_masked_frame, MaskGen, FRAME_HEADER_MAX, OP_TEXT};

const BOOK_TICKER: &[u8] = br#"{"stream":"btcusdt@bookTicker","data":{"u":50093239212,"s":"BTCUSDT","b":"61837.63000000","B":"3.78826000","a":"61837.64000000","A":"1.54698000"}}"#;

fn keys(alg: &'static aead::Algorithm) -> (RecordKey, RecordKey) {
    let key: Vec<u8> = (0..alg.key_len() as u8).collect();
    let iv = [0x5Au8; 12];
    // INVARIANT: key lengths come from the algorithm itself; a failure is a bench bug.
    let tx = RecordKey::from_raw(alg, &key, iv, 0).unwrap_or_else(|e| panic!("key: {e}"));
    let rx = RecordKey::from_raw(alg, &key, iv, 0).unwrap_or_else(|e| panic!("key: {e}"));
    (tx, rx)
}

/// Panics unless seal → open round-trips `payload` under `alg`.
fn check_record(alg: &'static aead::Algorithm, payload: &[u8]) {
    let (mut tx, mut rx) = keys(alg);
    let mut buf = vec![0u8; payload.len() + OVERHEAD];
    buf[HEADER_LEN..HEADER_LEN + payload.len()].copy_from_slice(payload);
    let n = tx
        .seal(&mut buf, payload.len(), CT_APPLICATION_DATA)
        .unwrap_or_else(|e| panic!("seal: {e}"));
    let opened = rx
        .open(&mut buf[..n])
        .unwrap_or_else(|e| panic!("open: {e}"));
    assert_eq!(opened.content_type, CT_APPLICATION_DATA);
    assert_eq!(&buf[HEADER_LEN..HEADER_LEN + opened.content_len], payload);
}

/// Panics unless the masked frame unmasks to `payload`.
fn check_frame(payload: &[u8]) {
    let key = [1, 2, 3, 4];
    let mut buf = vec![0u8; FRAME_HEADER_MAX + payload.len()];
    buf[FRAME_HEADER_MAX..].copy_from_slice(payload);
    let start = encode_masked_frame(&mut buf, OP_TEXT, payload.len(), key);
    assert_eq!(buf[start], 0x81);
    let unmasked: Vec<u8> = buf[FRAME_HEADER_MAX..]
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ key[i % 4])
        .collect();
    assert_eq!(unmasked, payload);
}

fn bench_records(c: &mut Criterion) {
    let big = vec![b'x'; PLAINTEXT_MAX];
    for (name, alg) in [
        ("aes128gcm", &aead::AES_128_GCM),
        ("chacha20poly1305", &aead::CHACHA20_POLY1305),
    ] {
        for (size_name, payload) in [("book_ticker", BOOK_TICKER), ("16k", &big[..])] {
            check_record(alg, payload);
            let (mut tx, mut rx) = keys(alg);
            let mut buf = vec![0u8; payload.len() + OVERHEAD];
            c.bench_function(&format!("tls_seal_{name}_{size_name}"), |b| {
                b.iter(|| {
                    buf[HEADER_LEN..HEADER_LEN + payload.len()].copy_from_slice(payload);
                    black_box(tx.seal(&mut buf, payload.len(), CT_APPLICATION_DATA))
                })
            });
            // Open needs records sealed at matching sequence numbers: seal a fresh one per
            // iteration and time seal + open, then subtract the seal figure above.
            let (mut tx, _) = keys(alg);
            c.bench_function(&format!("tls_seal_open_{name}_{size_name}"), |b| {
                b.iter(|| {
                    buf[HEADER_LEN..HEADER_LEN + payload.len()].copy_from_slice(payload);
                    let n = tx
                        .seal(&mut buf, payload.len(), CT_APPLICATION_DATA)
                        .unwrap_or(0);
                    black_box(rx.open(&mut buf[..n]))
                })
            });
        }
    }
}

fn bench_frames(c: &mut Criterion) {
    let order = br#"{"id":"o1","method":"order.place","params":{"symbol":"BTCUSDT","side":"BUY","type":"LIMIT_MAKER","price":"61837.63","quantity":"0.00100","newClientOrderId":"mm-1-42"}}"#;
    check_frame(order);
    let mut gen = MaskGen::from_seed(7);
    let mut buf = vec![0u8; FRAME_HEADER_MAX + order.len()];
    c.bench_function("ws_masked_frame_order", |b| {
        b.iter(|| {
            buf[FRAME_HEADER_MAX..].copy_from_slice(order);
            black_box(encode_masked_frame(
                &mut buf,
                OP_TEXT,
                order.len(),
                gen.next_key(),
            ))
        })
    });
}

criterion_group!(benches, bench_records, bench_frames);
criterion_main!(benches);
