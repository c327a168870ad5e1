//! Where the tests find recorded market data.
//!
//! Owns: the path of the bundled slice committed in the repo (`tools/data`, always there:
//! every core test runs on it, so a fresh clone with nothing beside it tests everything),
//! and the optional `../shared/data` folder for the longer extra runs. Those extra tests are
//! `#[ignore]`d (`cargo test -- --include-ignored` runs them, as `.ci/run` does) and fail,
//! never skip, when the folder is missing.
//!
//! `MM_SHARED_DATA` overrides where `../shared/data` is looked for; set to an empty value
//! it hides the folder (`.ci/run` runs the core data tests that way, to prove they never
//! read it). Never: writes anything.

#![allow(dead_code, clippy::expect_used)]

use std::path::{Path, PathBuf};

/// The bundled BTCUSDT spot slice: `tools/data/btcusdt_20240808.gz` (see its README).
pub fn bundled_spot() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/data/btcusdt_20240808.gz");
    assert!(path.is_file(), "{} missing from the clone", path.display());
    path
}

/// The `../shared/data` folder, if reachable (`MM_SHARED_DATA` overrides, empty hides it).
pub fn shared_root() -> Option<PathBuf> {
    let dir = match std::env::var_os("MM_SHARED_DATA") {
        Some(dir) if dir.is_empty() => return None,
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"),
    };
    dir.is_dir().then_some(dir)
}

/// The `../shared/data` folder for an extra (`#[ignore]`d) test: a failure, not a skip,
/// when it is missing.
pub fn require_shared() -> PathBuf {
    shared_root().expect(
        "this extra test needs ../shared/data (or MM_SHARED_DATA=<dir>); the core tests run \
         on tools/data without it",
    )
}

/// Both files of the contiguous 2024-08-08/09 BTCUSDT spot session in `../shared/data`.
pub fn shared_spot_session() -> Vec<PathBuf> {
    let dir = require_shared().join("binance-spot");
    ["btcusdt_20240808.gz", "btcusdt_20240809.gz"]
        .iter()
        .map(|f| dir.join(f))
        .collect()
}

/// The bundled BTCUSDT USD-M futures slice: `tools/data/btcusdt-usdm_20240718.gz` (see
/// its README): `depth@0ms` diffs chained by `pu`, futures `bookTicker` and `trade`, and
/// the REST snapshot at line 14.
pub fn bundled_usdm() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/data/btcusdt-usdm_20240718.gz");
    assert!(path.is_file(), "{} missing from the clone", path.display());
    path
}
