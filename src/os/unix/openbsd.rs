//! OpenBSD: what the Unix layer does differently here.
//!
//! - `MAP_STACK` is required: since OpenBSD 6.4 the kernel checks, at
//!   every system call and page fault, that the stack pointer points into
//!   memory mapped with `MAP_STACK`, and kills the process with SIGSEGV if
//!   not. A coroutine runs with its stack pointer in a stack this crate
//!   mapped, so every stack is mapped with it, and so is every fresh
//!   mapping that replaces a stack's pages (`MAP_STACK` can only be given
//!   by `mmap`; `mprotect` cannot add it). Alternate signal stacks need
//!   nothing: `sigaltstack` makes its range a stack region itself.
//! - `MAP_NORESERVE` is defined as 0: it does nothing, and is not passed.
//! - No `mincore`: OpenBSD removed it in 6.5, so a high-water mark cannot
//!   be had here; [`mincore`] fails with `ENOSYS` and
//!   `high_water_mark` returns that error.
//! - The thread's stack comes from `pthread_stackseg_np`, which gives its
//!   top (not its bottom) and its size.

/// Extra `mmap` flags for a stack: `MAP_STACK` (see the module's header).
pub(super) const STACK_MAP_FLAGS: libc::c_int = libc::MAP_STACK;

/// A stand-in for the `mincore(2)` that OpenBSD no longer has: it fails
/// with `ENOSYS` and touches nothing.
///
/// # Safety
/// None: the arguments are not used. (Unsafe to match the other systems'
/// `mincore`.)
pub(super) unsafe fn mincore(
    _addr: *mut libc::c_void,
    _len: usize,
    _vec: *mut libc::c_char,
) -> libc::c_int {
    // SAFETY: __errno returns the calling thread's errno location.
    unsafe { *libc::__errno() = libc::ENOSYS };
    -1
}

/// Drops the contents of `[start, start + len)`, part of a private
/// anonymous mapping of the caller's that nothing runs on; the pages read
/// as zero afterwards. Returns false if that failed.
///
/// The pages are replaced with fresh ones, mapped with `MAP_STACK` again.
pub(super) fn discard(start: usize, len: usize) -> bool {
    super::memory::remap_fresh(start, len, STACK_MAP_FLAGS)
}

/// The calling thread's own stack as `(limit, base)`, from
/// `pthread_stackseg_np`: `ss_sp` is the top of the stack, `ss_size` its
/// size. The lowest page is left out of the usable part: the main thread's
/// stack has its guard there.
pub(crate) fn thread_stack() -> Option<(usize, usize)> {
    // SAFETY: an all-zero stack_t is a valid value; pthread_stackseg_np
    // fills it for the calling thread.
    let stack = unsafe {
        let mut stack: libc::stack_t = core::mem::zeroed();
        if libc::pthread_stackseg_np(libc::pthread_self(), &mut stack) != 0 {
            return None;
        }
        stack
    };
    let top = stack.ss_sp as usize;
    let page = super::memory::page_size();
    match top.checked_sub(stack.ss_size) {
        Some(bottom) if bottom != 0 && stack.ss_size > page => Some((bottom + page, top)),
        _ => None,
    }
}

/// No light guard pages and no limit on mappings read here: stacks keep
/// a mapping each.
pub(crate) use super::no_light_guards::{install_light_guard, max_map_count, LIGHT_GUARDS};
