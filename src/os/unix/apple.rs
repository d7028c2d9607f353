//! Darwin (macOS, iOS, tvOS, watchOS): what the Unix layer does
//! differently here.

/// Extra `mmap` flags for a stack: none. Darwin's headers define
/// `MAP_NORESERVE` but its mmap(2) does not document it, and it commits
/// anonymous memory lazily anyway; it has no `MAP_STACK`.
pub(super) const STACK_MAP_FLAGS: libc::c_int = 0;

/// `mincore(2)`: its vector is of `char`.
pub(super) use libc::mincore;

/// Drops the contents of `[start, start + len)`, part of a private
/// anonymous mapping of the caller's that nothing runs on; the pages read
/// as zero afterwards. Returns false if that failed.
///
/// Here `MADV_DONTNEED` and `MADV_FREE` may leave the old contents
/// readable, so the pages are replaced with fresh ones.
pub(super) fn discard(start: usize, len: usize) -> bool {
    super::memory::remap_fresh(start, len, STACK_MAP_FLAGS)
}

/// The calling thread's own stack as `(limit, base)`:
/// `pthread_get_stackaddr_np` gives its top, `pthread_get_stacksize_np`
/// its size.
pub(crate) fn thread_stack() -> Option<(usize, usize)> {
    // SAFETY: both calls only read the calling thread's own attributes.
    let (top, size) = unsafe {
        let thread = libc::pthread_self();
        (
            libc::pthread_get_stackaddr_np(thread) as usize,
            libc::pthread_get_stacksize_np(thread),
        )
    };
    match top.checked_sub(size) {
        Some(limit) if size != 0 => Some((limit, top)),
        _ => None,
    }
}

/// No light guard pages and no limit on mappings read here: stacks keep
/// a mapping each.
pub(crate) use super::no_light_guards::{install_light_guard, max_map_count, LIGHT_GUARDS};
