//! `DefaultStack`: a stack with a guard page, mapped by the OS (a slot of a
//! slab or an `mmap` of its own on Unix, `VirtualAlloc` on Windows).

use std::io;

use super::mapping::{page_size, rounded_stack_size, Mapping, GUARD_PAGES};
use super::{Stack, StackPointer};

/// A stack mapped by the OS with a guard page below it, so that an overflow
/// faults: `mmap` with a `PROT_NONE` page on Unix (registered with Valgrind,
/// so that memcheck follows switches onto it), `VirtualAlloc` with a
/// `PAGE_GUARD` page on Windows, where an overflow raises
/// `EXCEPTION_STACK_OVERFLOW` as on a thread's stack.
///
/// For code that creates many coroutines, a
/// [`StackPool`](super::StackPool) avoids the system calls.
///
/// [`limit`](Stack::limit) is the lowest usable address; the guard page
/// is the page below it.
///
/// # Memory
///
/// On Unix the whole stack is mapped read-write at once, and the kernel
/// backs each page with memory when it is first touched.
///
/// On Linux 6.13 and later, a stack of up to 1 MiB (the size of
/// [`Coroutine::new`](crate::Coroutine::new)'s) is a slot of a *slab*: one
/// `MAP_NORESERVE` mapping of 64 MiB of address space shared by the
/// stacks of the same size (8,192 slots of a 4 KiB stack and its guard
/// page, 63 of a 1 MiB one), each slot's guard page installed with
/// `madvise(MADV_GUARD_INSTALL)`, which faults like a `PROT_NONE` page
/// but does not split the mapping. So stacks do not count against the
/// kernel's limit on a process's mappings (`vm.max_map_count`, 65,530 by
/// default, which allows 32,750 stacks with a mapping each): a process can
/// hold millions of suspended coroutines, and making a stack costs no
/// `mmap` (the slot's guard is installed the first time the slot is used:
/// one `madvise`). Dropping a stack gives its memory back
/// (`MADV_DONTNEED`; the slot reads as zero when it is next handed out)
/// and its slot to the slab; a slab whose stacks have all been dropped is
/// unmapped, except one empty slab kept per stack size. Whether the kernel
/// has these guards is found out once per process; where it has not (older
/// kernels, every other system), or with the environment variable
/// `SWITCHBACK_SLAB_STACKS=0` (read once, when the first stack is made),
/// every stack has a mapping of its own with a `PROT_NONE` guard page, as
/// corosensei's do. Either way [`limit`](Stack::limit) is just above the
/// guard page, and overflow reports, `remaining_stack`, high-water marks
/// and Valgrind know every stack. (`/proc/self/maps` shows a slab as one
/// read-write mapping: the guard pages are not in it.)
///
/// On Windows (x86-64) a stack grows like a thread's stack: its whole size
/// is reserved, but only its top page is committed, with a `PAGE_GUARD`
/// page below it. When code running on the stack touches the guard page,
/// Windows commits it, makes the next page down the guard page and lowers
/// the TEB's `StackLimit` (the context switch keeps the TEB describing the
/// running stack at every instant), so the stack counts against the
/// system's commit limit only for what has been used: a new stack commits
/// two pages, its top page and the guard page (a one-page stack commits
/// its page and the last guard page below the limit). Below the limit a
/// last guard page and 16 KiB of room for stack-overflow handlers are
/// reserved, as below a thread's stack: the overflow is raised when the
/// moving guard page reaches the last one, and the OS commits the room for
/// the handlers then. Once committed, pages stay committed until the stack
/// is dropped (a pool's stacks are reset to their top page when they come
/// back, with
/// [`release_idle_memory`](super::StackPoolBuilder::release_idle_memory)
/// or [`zero_on_reuse`](super::StackPoolBuilder::zero_on_reuse)). Code on
/// another stack that touches the part not yet committed faults, as it
/// would on a thread's stack (what a coroutine has used is committed, so
/// pointers to its locals are fine); what the crate itself writes there
/// before a coroutine first runs, its closure, is committed first. On
/// 32-bit x86 and AArch64 Windows, whose switches leave the TEB to the
/// Rust code around them, the usable part is committed when the stack is
/// made.
///
/// # Under Miri
///
/// Miri runs no `mmap` or `mprotect`: under `cfg(miri)` the stack is
/// zeroed memory from the global allocator, with no guard page, and the
/// coroutine's frames run on a thread of its own (see the README's "Your
/// tests under Miri"). The same goes for a [`StackPool`](super::StackPool)'s
/// stacks.
///
/// ```
/// use switchback::stack::{DefaultStack, Stack};
///
/// let stack = DefaultStack::new(128 * 1024).unwrap();
/// assert!(stack.base().get() - stack.limit().get() >= 128 * 1024);
/// ```
#[derive(Debug)]
pub struct DefaultStack {
    mapping: Mapping,
}

/// The default size of a stack: 1 MiB.
const DEFAULT_STACK_SIZE: usize = 1024 * 1024;

impl DefaultStack {
    /// Allocates a stack of `size` usable bytes rounded up to whole pages,
    /// plus a guard page below them. Sizes below
    /// [`MIN_STACK_SIZE`](super::MIN_STACK_SIZE) (4 KiB; 0 included) are
    /// rounded up to it, as corosensei does. Nothing else is added: an
    /// 8 KiB stack overflows where an 8 KiB stack should, into its guard
    /// page. For a coroutine that may panic, ask for at least
    /// [`RECOMMENDED_MIN_STACK_SIZE`](super::RECOMMENDED_MIN_STACK_SIZE).
    ///
    /// ```
    /// use switchback::stack::{DefaultStack, Stack, MIN_STACK_SIZE};
    ///
    /// let stack = DefaultStack::new(8 * 1024).unwrap();
    /// let usable = stack.base().get() - stack.limit().get();
    /// assert!(usable >= 8 * 1024 && usable % MIN_STACK_SIZE == 0);
    /// let stack = DefaultStack::new(0).unwrap();
    /// assert!(stack.base().get() - stack.limit().get() >= MIN_STACK_SIZE);
    /// assert!(DefaultStack::new(usize::MAX).is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `size` is too large to map (rounding it up, or
    /// adding the guard page, passes `isize::MAX`); the OS error if mapping
    /// the memory or protecting its guard page fails. Where that error is
    /// `ENOMEM`, an `OutOfMemory` error whose message says why and what to
    /// do: on Linux whether the process is at the kernel's limit on
    /// mappings (`vm.max_map_count`, with its value and the `sysctl` that
    /// raises it) or out of memory or address space.
    pub fn new(size: usize) -> io::Result<Self> {
        let mapping_len = rounded_stack_size(size)? + GUARD_PAGES * page_size();
        Ok(Self {
            mapping: Mapping::new(mapping_len)?,
        })
    }
}

impl Default for DefaultStack {
    /// A 1 MiB stack.
    ///
    /// # Panics
    ///
    /// Panics if the memory cannot be mapped.
    fn default() -> Self {
        Self::new(DEFAULT_STACK_SIZE).unwrap_or_else(|error| {
            panic!("switchback: failed to allocate a {DEFAULT_STACK_SIZE}-byte stack: {error}")
        })
    }
}

// SAFETY: the mapping is owned by this object and unmapped when it drops;
// its lowest page, just below `limit`, is PROT_NONE or PAGE_GUARD (a page is
// at least MIN_GUARD_SIZE); on Windows the usable part is committed as it is
// reached, like a thread's stack, as its TEB fields describe (see
// `mapping_windows.rs`); base and limit are page-aligned and fixed; at least
// MIN_STACK_SIZE bytes lie between them (rounded_stack_size's floor).
unsafe impl Stack for DefaultStack {
    #[inline]
    fn base(&self) -> StackPointer {
        // A coroutine or `on_stack` is about to run on it on this thread.
        super::overflow::prepare_thread();
        self.mapping.base()
    }

    #[inline]
    fn limit(&self) -> StackPointer {
        self.mapping.limit()
    }

    #[cfg(windows)]
    #[inline]
    fn teb_fields(&self) -> super::StackTebFields {
        self.mapping.teb_fields()
    }

    #[cfg(windows)]
    #[inline]
    fn update_teb_fields(&mut self, stack_limit: usize, guaranteed_stack_bytes: usize) {
        self.mapping
            .update_teb_fields(stack_limit, guaranteed_stack_bytes)
    }

    #[cfg(windows)]
    #[inline]
    fn __commit_from(&self, low: usize) {
        self.mapping.commit_from(low)
    }
}
