//! The OS floor under Miri, which runs no `mmap`, `mprotect`, `mincore` or
//! signal handlers: stack regions come from the global allocator, with no
//! guard page, so that Miri checks every access to them like any other
//! heap memory (an overflow of such a stack is an out-of-bounds access
//! that Miri reports, not a fault); resident pages and the thread's stack
//! are unknown (a high-water mark is an error, `remaining_stack` is
//! `None`); no fault handler is installed, so the overflow report never
//! fires.

use core::num::NonZeroUsize;
use core::ptr::NonNull;
use std::alloc::{self, Layout};
use std::io;

use crate::os::{GuardFaults, RESIDENT_QUERY_PAGES};

/// No guard page: the allocator's memory cannot be protected.
pub(crate) const GUARD_PAGES: usize = 0;

/// The page size the stacks are rounded to (Miri's, on the Unix targets
/// it interprets).
pub(crate) fn page_size() -> usize {
    4096
}

/// The largest region allocated: Miri backs every byte of an allocation
/// with memory at once, and ends the program (rather than failing the
/// allocation) when it cannot.
const MAX_REGION: usize = 1 << 30;

/// One stack's memory, from the global allocator, zeroed, page-aligned.
#[derive(Debug)]
pub(crate) struct Region {
    /// The allocation, for freeing it.
    memory: NonNull<u8>,
    /// Its lowest address, whose provenance is exposed: portable code
    /// reaches the stack through the addresses of the `Stack` trait.
    start: usize,
    base: NonZeroUsize,
}

// SAFETY: the region is plain memory owned by whoever owns the `Region`
// (as the Unix mapping, which is described by integers).
unsafe impl Send for Region {}
// SAFETY: `&Region` gives only addresses, and `discard`, which the caller
// calls only while nothing uses the memory.
unsafe impl Sync for Region {}

impl Region {
    fn layout(len: usize) -> io::Result<Layout> {
        Layout::from_size_align(len, page_size())
            .map_err(|_| io::Error::other("switchback: stack size too large"))
    }

    /// Allocates `len` zeroed bytes (a whole number of pages). Above
    /// [`MAX_REGION`] an `OutOfMemory` error, as a mapping too big for the
    /// address space is an error elsewhere (Miri would end the program).
    pub(crate) fn new(len: usize) -> io::Result<Self> {
        let layout = Self::layout(len)?;
        if len == 0 {
            return Err(io::Error::other("switchback: empty stack"));
        }
        if len > MAX_REGION {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "switchback: stacks above 1 GiB are refused under Miri, which backs them with memory",
            ));
        }
        // SAFETY: the layout's size is not zero.
        let Some(memory) = NonNull::new(unsafe { alloc::alloc_zeroed(layout) }) else {
            return Err(io::Error::from(io::ErrorKind::OutOfMemory));
        };
        let start = memory.as_ptr().expose_provenance();
        let Some(base) = NonZeroUsize::new(start + len) else {
            unreachable!("an allocation ends above address 0")
        };
        Ok(Self {
            memory,
            start,
            base,
        })
    }

    /// The lowest address of the region (there is no guard below it).
    #[inline]
    pub(crate) fn start(&self) -> usize {
        self.start
    }

    /// The lowest usable address: the start, with no guard page.
    #[inline(always)]
    pub(crate) fn limit(&self) -> NonZeroUsize {
        // An allocation does not start at address 0.
        NonZeroUsize::new(self.start).unwrap_or(self.base)
    }

    /// The highest address of the region.
    #[inline(always)]
    pub(crate) fn base(&self) -> NonZeroUsize {
        self.base
    }

    /// Zeroes the region, as the OS would give its pages back. Nothing may
    /// run on it.
    pub(crate) fn discard(&self) -> bool {
        let len = self.base.get() - self.start;
        // SAFETY: the region's bytes are ours and nothing runs on them.
        unsafe { core::ptr::write_bytes(self.memory.as_ptr(), 0, len) };
        true
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        let len = self.base.get() - self.start;
        let Ok(layout) = Self::layout(len) else {
            unreachable!("the layout was valid when allocated")
        };
        // SAFETY: allocated in `new` with this layout, freed once; nothing
        // runs on it any more.
        unsafe { alloc::dealloc(self.memory.as_ptr(), layout) }
    }
}

/// Miri cannot say which pages are resident: a high-water mark is an error.
pub(crate) fn resident_pages(start: usize, resident: &mut [bool]) -> io::Result<()> {
    let _ = start;
    assert!(resident.len() <= RESIDENT_QUERY_PAGES);
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "switchback: resident pages (high-water marks) are not available under Miri",
    ))
}

/// Not tracked by the system.
#[inline(always)]
pub(crate) fn running_stack_limit() -> Option<usize> {
    None
}

/// Unknown under Miri (so `remaining_stack` answers `None` off the
/// crate's stacks, and `maybe_grow` runs its closure where it is).
pub(crate) fn thread_stack() -> Option<(usize, usize)> {
    None
}

/// No signals under Miri: nothing is installed. (The policy's functions
/// are named, as a handler would call them, so that they stay compiled and
/// checked.)
pub(crate) fn install_fault_handler<P: GuardFaults>() {
    let _handler_would_call: (fn(usize) -> Option<P::Hit>, fn() -> bool, fn(&P::Hit) -> !) =
        (P::guard_hit, P::thread_takes_traps, P::report);
}

/// No signal stacks under Miri.
pub(crate) fn ensure_alt_stack() {}

/// Never called (no fault handler runs), but part of the contract.
#[allow(dead_code)]
pub(crate) fn wait_forever() -> ! {
    loop {
        std::thread::park();
    }
}

/// Ends the process.
#[allow(dead_code)]
pub(crate) fn abort_now() -> ! {
    std::process::abort()
}

/// Writes `bytes` to stderr.
#[allow(dead_code)]
pub(crate) fn write_stderr(bytes: &[u8]) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(bytes);
}
