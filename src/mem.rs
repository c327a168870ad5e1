//! Memory the hot thread will write, made resident when it is allocated (`resident`): the
//! book's price window, the TLS and WebSocket buffers of a connection.
//!
//! Owns nothing but the allocation. Allocates: never called on the hot path, only where
//! its callers are built (start-up, a connection being opened).

use std::hint::black_box;

/// The page size this writes by (4 KiB on x86-64 and most aarch64 Linux hosts; on a host
/// with larger pages every page is still written, several times over).
const PAGE_BYTES: usize = 4096;

/// A boxed slice of `len` default values with every page of it written now. `vec![0; n]`
/// is a zeroed allocation whose pages the kernel maps on their first write: without this,
/// that write — a page fault, a trip through the kernel, and through the hypervisor on a
/// VM — would come later, on the hot thread, the first time the data reaches each page.
/// (`black_box` keeps the compiler from dropping a store of the zero the allocation
/// already holds.)
pub fn resident<T: Copy + Default>(len: usize) -> Box<[T]> {
    let mut slice = vec![T::default(); len].into_boxed_slice();
    let step = (PAGE_BYTES / std::mem::size_of::<T>().max(1)).max(1);
    for x in slice.iter_mut().step_by(step) {
        *x = black_box(T::default());
    }
    slice
}

/// Minor page faults of the calling thread so far (`/proc/thread-self/stat`, field 10).
#[cfg(test)]
pub(crate) fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // The fields after the command name (which is in parentheses and may hold spaces):
    // state, ppid, pgrp, session, tty_nr, tpgid, flags, minflt.
    stat.rsplit_once(')')
        .and_then(|(_, after)| after.split_whitespace().nth(7)?.parse().ok())
        .unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writing every page of a `resident` buffer takes no page fault; the same on a plain
    /// zeroed allocation takes one per page (which shows the count works). 64 MiB, above
    /// glibc's largest dynamic mmap threshold (32 MiB): a plain allocation that size is
    /// always fresh pages from the kernel, never memory another test freed and the
    /// allocator hands out again already mapped (which smaller sizes may be, in the
    /// parallel test run).
    #[test]
    fn a_resident_buffer_takes_no_page_fault_when_written() {
        const BYTES: usize = 64 << 20;
        let write_every_page = |buf: &mut [u8]| {
            for x in buf.iter_mut().step_by(PAGE_BYTES) {
                *x = black_box(1);
            }
        };
        // Each part's own first run maps its code and buffers: once before counting.
        write_every_page(&mut resident::<u8>(PAGE_BYTES));
        minor_faults();

        let mut plain = vec![0u8; BYTES].into_boxed_slice();
        let before = minor_faults();
        write_every_page(&mut plain);
        let plain_faults = minor_faults() - before;
        drop(plain);

        let mut warm = resident::<u8>(BYTES);
        let before = minor_faults();
        write_every_page(&mut warm);
        let resident_faults = minor_faults() - before;

        assert!(
            plain_faults >= (BYTES / PAGE_BYTES / 2) as u64,
            "a zeroed 64 MiB took only {plain_faults} faults"
        );
        assert_eq!(resident_faults, 0);
    }
}
