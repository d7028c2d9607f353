//! FreeBSD and DragonFly BSD (DragonFly forked from FreeBSD 4 and keeps
//! its memory and thread interfaces): what the Unix layer does
//! differently here.
//!
//! - No `MAP_NORESERVE`: FreeBSD's mmap(2) no longer has it (libc does not
//!   define it for either system), and both commit anonymous memory as it
//!   is touched anyway.
//! - No `MAP_STACK` either: on both it does not mark memory as a stack but
//!   makes a region that grows down on demand from a small initial size
//!   behind a guard that fills the rest of the length (FreeBSD's mmap(2),
//!   "grows downward on demand"; DragonFly's likewise reserves its range for
//!   stack growth), which is not the fixed, fully usable region with one
//!   `PROT_NONE` page at the bottom that a coroutine stack is.
//! - The thread's stack comes from `pthread_attr_get_np` (pthread(3) of
//!   both), which wants an initialized attribute object.

/// Extra `mmap` flags for a stack: none (see the module's header).
pub(super) const STACK_MAP_FLAGS: libc::c_int = 0;

/// `mincore(2)`: its vector is of `char`.
pub(super) use libc::mincore;

/// Drops the contents of `[start, start + len)`, part of a private
/// anonymous mapping of the caller's that nothing runs on; the pages read
/// as zero afterwards. Returns false if that failed.
///
/// `MADV_FREE` and `MADV_DONTNEED` may leave the old contents readable
/// here (madvise(2) promises only that the system may free the pages), so
/// the pages are replaced with fresh ones.
pub(super) fn discard(start: usize, len: usize) -> bool {
    super::memory::remap_fresh(start, len, STACK_MAP_FLAGS)
}

/// The calling thread's own stack as `(limit, base)`, from
/// `pthread_attr_get_np`. Its stack address is the lowest usable one and
/// the guard lies below it, so leaving the guard size out again makes the
/// limit a guard's size higher than it is: `remaining_stack` errs low.
pub(crate) fn thread_stack() -> Option<(usize, usize)> {
    super::attributes::stack_from_attributes(libc::pthread_attr_get_np)
}

/// No light guard pages and no limit on mappings read here: stacks keep
/// a mapping each.
pub(crate) use super::no_light_guards::{install_light_guard, max_map_count, LIGHT_GUARDS};
