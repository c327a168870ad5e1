//! A counting global allocator with phases, for the zero-allocation proofs
//! (tests/zero_alloc.rs, tests/zero_alloc_live.rs): forwards to `System` and counts, per
//! phase, the `alloc`, `alloc_zeroed` and `realloc` calls (not `dealloc`) of the threads
//! marked with `mark_this_thread` — the hot thread. The phase is global (the test's driver
//! thread switches it); `self_test` checks the counter itself; with
//! `MM_ZERO_ALLOC_BACKTRACE=1` the first allocations of the counted phase keep a backtrace
//! (`print_backtraces`), captured behind a re-entrancy guard. Include with
//! `#[path = "support/phased.rs"] mod counting;`.

#![allow(unsafe_code)]
#![allow(dead_code)] // each test binary uses its own subset

use std::alloc::{GlobalAlloc, Layout, System};
use std::backtrace::Backtrace;
use std::cell::Cell;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Start-up, connections, reconciliation, trading until the window.
pub const WARMUP: usize = 0;
/// The window that must be allocation-free.
pub const COUNTED: usize = 1;
/// After the window: shutdown (cancel all, confirm).
pub const WIND_DOWN: usize = 2;
/// The counter's own check.
const SELF_TEST: usize = 3;
const PHASES: usize = 4;
/// Sizes of the first allocations in `COUNTED` kept for the failure message.
const SIZES_KEPT: usize = 16;
/// Backtraces of the first allocations in `COUNTED` kept (diagnostics only).
const TRACES_KEPT: usize = 8;

thread_local! {
    static MARKED: Cell<bool> = const { Cell::new(false) };
    /// Inside the allocator's own backtrace capture (which allocates).
    static CAPTURING: Cell<bool> = const { Cell::new(false) };
}
static PHASE: AtomicUsize = AtomicUsize::new(WARMUP);
static COUNTS: [AtomicU64; PHASES] = [const { AtomicU64::new(0) }; PHASES];
static SIZES: [AtomicUsize; SIZES_KEPT] = [const { AtomicUsize::new(0) }; SIZES_KEPT];
static TRACE: AtomicBool = AtomicBool::new(false);
static TRACES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Forwards to `System`, counting allocations of marked threads per phase.
pub struct Counting;

fn note(size: usize) {
    // Const-initialised thread-locals without destructors: reading them never allocates.
    if !MARKED.try_with(Cell::get).unwrap_or(false) || CAPTURING.try_with(Cell::get).unwrap_or(true)
    {
        return;
    }
    let phase = PHASE.load(Ordering::SeqCst);
    let n = COUNTS[phase].fetch_add(1, Ordering::SeqCst) as usize;
    if phase == COUNTED && n < SIZES_KEPT {
        SIZES[n].store(size, Ordering::SeqCst);
    }
    if phase == COUNTED && n < TRACES_KEPT && TRACE.load(Ordering::SeqCst) {
        // Diagnostics only: capturing allocates, so the guard keeps it uncounted.
        CAPTURING.with(|c| c.set(true));
        let trace = format!("size {size}:\n{}", Backtrace::force_capture());
        if let Ok(mut traces) = TRACES.lock() {
            traces.push(trace);
        }
        CAPTURING.with(|c| c.set(false));
    }
}

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the bookkeeping touches `Cell`s and atomics and, only when the
// backtrace diagnostic is on, allocates through this same allocator behind a
// re-entrancy guard (so it never recurses into itself).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as the caller's; forwarded unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as the caller's; forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: same contract as the caller's; forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's; forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Counts this thread's allocations from now on.
pub fn mark_this_thread() {
    MARKED.with(|m| m.set(true));
}

/// Switches the phase allocations are counted in.
pub fn set_phase(phase: usize) {
    PHASE.store(phase, Ordering::SeqCst);
}

/// Zeroes every phase's count (and the kept sizes and backtraces) and returns to
/// `WARMUP`: for a second run in the same test, after the first run's threads ended.
pub fn reset() {
    set_phase(WARMUP);
    for c in &COUNTS {
        c.store(0, Ordering::SeqCst);
    }
    for s in &SIZES {
        s.store(0, Ordering::SeqCst);
    }
    TRACES.lock().unwrap().clear();
}

/// Allocations counted in `phase`.
pub fn count(phase: usize) -> u64 {
    COUNTS[phase].load(Ordering::SeqCst)
}

/// Sizes of the first allocations counted in `COUNTED`.
pub fn counted_sizes() -> Vec<usize> {
    let n = (count(COUNTED) as usize).min(SIZES_KEPT);
    SIZES[..n]
        .iter()
        .map(|s| s.load(Ordering::SeqCst))
        .collect()
}

/// Prints the backtraces captured in `COUNTED` (with `MM_ZERO_ALLOC_BACKTRACE=1`).
pub fn print_backtraces() {
    for trace in TRACES.lock().unwrap().iter() {
        println!("allocation in the counted window, {trace}");
    }
}

/// Resets the counts, then checks that the counter counts a marked thread's allocation,
/// and only a marked thread's; turns the backtrace diagnostic on if asked for.
pub fn self_test() {
    reset();
    set_phase(SELF_TEST);
    std::thread::spawn(|| drop(black_box(Vec::<u8>::with_capacity(3))))
        .join()
        .unwrap();
    assert_eq!(count(SELF_TEST), 0, "an unmarked thread is not counted");
    std::thread::spawn(|| {
        mark_this_thread();
        drop(black_box(Vec::<u8>::with_capacity(3)));
    })
    .join()
    .unwrap();
    assert_eq!(
        count(SELF_TEST),
        1,
        "a marked thread's allocation counts once"
    );
    let trace = std::env::var_os("MM_ZERO_ALLOC_BACKTRACE").is_some_and(|v| v == "1");
    TRACE.store(trace, Ordering::SeqCst);
    set_phase(WARMUP);
}
