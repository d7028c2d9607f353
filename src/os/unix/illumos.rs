//! illumos: what the Unix layer does differently here.
//!
//! - `MAP_NORESERVE`: illumos reserves swap space for the whole of a
//!   private writable mapping when it is made unless mmap(2) is given
//!   `MAP_NORESERVE`, which makes the reservation happen page by page as
//!   the stack is touched (as Linux's overcommit does), so that large,
//!   mostly untouched stacks do not exhaust swap. No `MAP_STACK` (illumos
//!   has none).
//! - The thread's stack comes from `stack_getbounds` (stack_getbounds(3C):
//!   the base and maximum extent of the stack the thread is running on,
//!   async-signal-safe); libc has no `pthread_attr_getguardsize` for
//!   illumos, which the attribute route would need.

/// Extra `mmap` flags for a stack: `MAP_NORESERVE` (see the module's
/// header).
pub(super) const STACK_MAP_FLAGS: libc::c_int = libc::MAP_NORESERVE;

/// `mincore(2)`: its address is a `caddr_t`, its vector of `char`.
pub(super) use libc::mincore;

/// Drops the contents of `[start, start + len)`, part of a private
/// anonymous mapping of the caller's that nothing runs on; the pages read
/// as zero afterwards. Returns false if that failed.
///
/// The pages are replaced with fresh ones (`MADV_FREE` and `MADV_DONTNEED`
/// are advice, not a promise to zero them).
pub(super) fn discard(start: usize, len: usize) -> bool {
    super::memory::remap_fresh(start, len, STACK_MAP_FLAGS)
}

/// The calling thread's own stack as `(limit, base)`, from
/// `stack_getbounds`: `ss_sp` is the lowest address of the stack region,
/// `ss_size` its maximum extent. The lowest page is left out of the usable
/// part (where a guard would be), so `remaining_stack` errs low. `None` on
/// the alternate signal stack, whose bounds are not the thread's stack.
pub(crate) fn thread_stack() -> Option<(usize, usize)> {
    // SAFETY: an all-zero stack_t is a valid value; stack_getbounds fills
    // it for the calling thread.
    let stack = unsafe {
        let mut stack: libc::stack_t = core::mem::zeroed();
        if libc::stack_getbounds(&mut stack) != 0 {
            return None;
        }
        stack
    };
    if stack.ss_flags & libc::SS_ONSTACK != 0 {
        return None;
    }
    let bottom = stack.ss_sp as usize;
    let page = super::memory::page_size();
    match bottom.checked_add(stack.ss_size) {
        Some(top) if bottom != 0 && stack.ss_size > page => Some((bottom + page, top)),
        _ => None,
    }
}

/// No light guard pages and no limit on mappings read here: stacks keep
/// a mapping each.
pub(crate) use super::no_light_guards::{install_light_guard, max_map_count, LIGHT_GUARDS};
