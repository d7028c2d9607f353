//! NetBSD: what the Unix layer does differently here.
//!
//! - Neither `MAP_NORESERVE` nor `MAP_STACK`: NetBSD's headers define both,
//!   but a stack needs neither (anonymous memory is committed as it is
//!   touched, and nothing checks that the stack pointer is in stack
//!   memory), so a stack is a plain private anonymous mapping.
//! - The thread's stack comes from `pthread_getattr_np`, which NetBSD has
//!   besides `pthread_attr_get_np` (pthread_attr_get_np(3)).

/// Extra `mmap` flags for a stack: none (see the module's header).
pub(super) const STACK_MAP_FLAGS: libc::c_int = 0;

/// `mincore(2)`: its vector is of `char`.
pub(super) use libc::mincore;

/// Drops the contents of `[start, start + len)`, part of a private
/// anonymous mapping of the caller's that nothing runs on; the pages read
/// as zero afterwards. Returns false if that failed.
///
/// `MADV_DONTNEED` and `MADV_FREE` are advice here, not a promise to zero
/// the pages, so the pages are replaced with fresh ones.
pub(super) fn discard(start: usize, len: usize) -> bool {
    super::memory::remap_fresh(start, len, STACK_MAP_FLAGS)
}

/// The calling thread's own stack as `(limit, base)`, from
/// `pthread_getattr_np`, with the guard size left out at the bottom (so
/// that, if the guard lies below the reported range, `remaining_stack`
/// errs low).
pub(crate) fn thread_stack() -> Option<(usize, usize)> {
    super::attributes::stack_from_attributes(libc::pthread_getattr_np)
}

/// No light guard pages and no limit on mappings read here: stacks keep
/// a mapping each.
pub(crate) use super::no_light_guards::{install_light_guard, max_map_count, LIGHT_GUARDS};
