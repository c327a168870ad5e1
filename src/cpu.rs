//! Which cores mm's threads run on: the hot thread alone on `engine.cpu_core`, and every
//! other thread of the process off that core — the side thread, the log writer and the
//! REST snapshot fetcher (started before the pin: moved), and the DNS resolver threads
//! (`net::resolve`, started by connections the hot thread opens: they would inherit its
//! pin, and a lookup at a reconnect or a rotation would then take the core from the hot
//! thread in the very seconds it is busiest).
//!
//! Owns the process's record of the hot core and of the cores left to the others. Called
//! when the hot thread pins itself and at the start of each resolver thread; never in the
//! hot loop. Never fails a session: a core it cannot set is left as it was (the pin's own
//! failure is reported by the caller, as before).

use std::sync::Mutex;

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

/// The cores every thread but the hot one may use, once the hot thread is pinned and at
/// least one other core is left to them.
static OTHERS: Mutex<Option<CpuSet>> = Mutex::new(None);

/// The calling thread.
fn this_thread() -> Pid {
    Pid::from_raw(0)
}

/// Pins the calling thread (the hot thread) to `core` alone and moves every other thread
/// of the process to the cores it may use but `core`; threads started later call
/// `keep_off_hot_core`. With no other core (a 1-core host, or a process limited to that
/// core) the others stay where they are. Returns false when the pin itself failed (then
/// nothing was changed).
pub fn pin_hot_thread(core: usize) -> bool {
    let Ok(allowed) = sched_getaffinity(this_thread()) else {
        return false;
    };
    let mut hot = CpuSet::new();
    if hot.set(core).is_err() || sched_setaffinity(this_thread(), &hot).is_err() {
        return false;
    }
    let mut others = allowed;
    if others.unset(core).is_err() || !any(&others) {
        return true;
    }
    if let Ok(mut slot) = OTHERS.lock() {
        *slot = Some(others);
    }
    let me = own_tid();
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let tid = task
                .file_name()
                .to_str()
                .and_then(|t| t.parse::<i32>().ok());
            if let Some(tid) = tid.filter(|&t| Some(t) != me) {
                // A thread that ended meanwhile: nothing to move.
                let _ = sched_setaffinity(Pid::from_raw(tid), &others);
            }
        }
    }
    true
}

/// Called first thing on a thread mm starts after the hot thread may have pinned itself
/// (it inherits the affinity of the thread that started it): moves it to the cores left
/// to the others. Does nothing before a pin, or when no other core was left.
pub fn keep_off_hot_core() {
    let others = OTHERS.lock().ok().and_then(|slot| *slot);
    if let Some(others) = others {
        let _ = sched_setaffinity(this_thread(), &others);
    }
}

/// The cores the calling thread may run on, as a list (for reports and tests).
pub fn allowed_cores() -> Vec<usize> {
    sched_getaffinity(this_thread())
        .map(|set| {
            (0..CpuSet::count())
                .filter(|&c| set.is_set(c).unwrap_or(false))
                .collect()
        })
        .unwrap_or_default()
}

fn any(set: &CpuSet) -> bool {
    (0..CpuSet::count()).any(|c| set.is_set(c).unwrap_or(false))
}

/// The calling thread's id, from `/proc/thread-self` (a link to `<pid>/task/<tid>`).
fn own_tid() -> Option<i32> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    link.file_name()?.to_str()?.parse().ok()
}
