//! Any other Unix: the conservative choices, until the system gets a file
//! of its own.

/// Extra `mmap` flags for a stack: none (`MAP_NORESERVE` and `MAP_STACK`
/// are not everywhere, and not the same everywhere).
pub(super) const STACK_MAP_FLAGS: libc::c_int = 0;

/// `mincore(2)`: its vector is of `char`.
pub(super) use libc::mincore;

/// Drops the contents of `[start, start + len)`, part of a private
/// anonymous mapping of the caller's that nothing runs on; the pages read
/// as zero afterwards. Returns false if that failed.
///
/// `MADV_DONTNEED` and `MADV_FREE` may leave the old contents readable,
/// so the pages are replaced with fresh ones.
pub(super) fn discard(start: usize, len: usize) -> bool {
    super::memory::remap_fresh(start, len, STACK_MAP_FLAGS)
}

/// The calling thread's own stack: not known here.
pub(crate) fn thread_stack() -> Option<(usize, usize)> {
    None
}

/// No light guard pages and no limit on mappings read here: stacks keep
/// a mapping each.
pub(crate) use super::no_light_guards::{install_light_guard, max_map_count, LIGHT_GUARDS};
