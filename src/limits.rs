//! Every capacity in the engine, as a named constant with the reason for its size.
//!
//! Owns: the numbers that size buffers allocated at start-up (book levels, decoder level
//! buffers, the sync buffer, JSON nesting). Invariants: each constant is checked against
//! the others by a `const` assertion below it, so an inconsistent edit fails to compile.
//! Never: a capacity written as a bare literal somewhere else; a buffer that grows after
//! start-up. Config fields that override a default here are validated against the `_MAX`
//! beside it.

// ---------------------------------------------------------------------------------------
// Order book (src/book/)
// ---------------------------------------------------------------------------------------

/// Levels kept per side of the L2 book unless config says otherwise. Binance's REST
/// snapshot with `limit=1000` fills it exactly; the quoting model reads only the top few.
pub const BOOK_LEVELS_PER_SIDE_DEFAULT: usize = 1_000;

/// Largest per-side capacity config may ask for: the largest REST snapshot (`limit=5000`).
pub const BOOK_LEVELS_PER_SIDE_MAX: usize = 5_000;

/// Levels per block of a book side (the book is an unrolled sorted list: an insert or a
/// removal moves at most this many levels, 16 bytes each). 32 × 16 B = 512 B per block.
pub const BOOK_BLOCK_LEVELS: usize = 32;

const _: () = assert!(BOOK_LEVELS_PER_SIDE_DEFAULT >= 1);
const _: () = assert!(BOOK_LEVELS_PER_SIDE_DEFAULT <= BOOK_LEVELS_PER_SIDE_MAX);
// Splits halve a block; block ids are u16 (at most 4·MAX/B + 3 blocks per side).
const _: () = assert!(BOOK_BLOCK_LEVELS >= 4 && BOOK_BLOCK_LEVELS % 2 == 0);
const _: () = assert!(4 * BOOK_LEVELS_PER_SIDE_MAX / BOOK_BLOCK_LEVELS + 3 <= u16::MAX as usize);

// ---------------------------------------------------------------------------------------
// Market-data decoding (src/feed/)
// ---------------------------------------------------------------------------------------

/// Price levels one depth diff may carry on one side. The recorded BTCUSDT session peaks
/// at 685 levels on one side of one `@depth@100ms` message (1,076 for both); 6× headroom
/// for volatile markets. A diff with more is refused (`DecodeError::TooManyLevels`) and counted: the
/// book then sees a gap and resyncs, which is the correct reaction to a lost diff.
pub const DEPTH_DIFF_LEVELS_PER_SIDE_MAX: usize = 4_096;

/// Levels per side of a REST depth snapshot (Binance's largest `limit` is 5000).
pub const SNAPSHOT_LEVELS_PER_SIDE_MAX: usize = 5_000;

/// Deepest JSON nesting the decoder will skip through in a field it does not know.
/// Binance's market-data messages nest 3 deep (wrapper, data, level arrays).
pub const JSON_NESTING_MAX: usize = 64;

const _: () = assert!(DEPTH_DIFF_LEVELS_PER_SIDE_MAX >= 1);
const _: () = assert!(2 * DEPTH_DIFF_LEVELS_PER_SIDE_MAX <= u32::MAX as usize);
const _: () = assert!(SNAPSHOT_LEVELS_PER_SIDE_MAX >= BOOK_LEVELS_PER_SIDE_MAX);
const _: () = assert!(2 * SNAPSHOT_LEVELS_PER_SIDE_MAX <= u32::MAX as usize);
// The skip routine keeps one bit per open container in a u64.
const _: () = assert!(JSON_NESTING_MAX >= 4 && JSON_NESTING_MAX <= 64);

// ---------------------------------------------------------------------------------------
// Book synchronisation (src/book/sync.rs, `SyncedBook`)
// ---------------------------------------------------------------------------------------

/// Depth diffs buffered while waiting for a REST snapshot. At 10 diffs per second
/// (`@depth@100ms`) this is 25 s of stream; when it is full the oldest diff is dropped
/// (counted), which at worst makes the snapshot look too old and triggers a refetch.
pub const SYNC_BUFFER_DIFFS_MAX: usize = 256;

/// Price levels buffered across all those diffs (16 bytes each: 1 MiB).
pub const SYNC_BUFFER_LEVELS_MAX: usize = 65_536;

const _: () = assert!(SYNC_BUFFER_DIFFS_MAX >= 2);
// One maximal diff must always fit into the buffer, else it could never be buffered.
const _: () = assert!(SYNC_BUFFER_LEVELS_MAX >= 2 * DEPTH_DIFF_LEVELS_PER_SIDE_MAX);
