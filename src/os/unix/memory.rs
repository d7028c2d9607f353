//! Memory on Unix: `mmap`ed stack regions with a guard page, the page
//! size, resident pages (`mincore`) and the thread's own stack.

use core::num::NonZeroUsize;
use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};
use std::io;

use crate::os::RESIDENT_QUERY_PAGES;

/// Pages of guard below each stack: one `PROT_NONE` page.
pub(crate) const GUARD_PAGES: usize = 1;

/// The system's page size, read once.
pub(crate) fn page_size() -> usize {
    static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);
    let cached = PAGE_SIZE.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    PAGE_SIZE.store(size, Ordering::Relaxed);
    size
}

/// One stack's mapping: [`GUARD_PAGES`] of `PROT_NONE` guard at the
/// bottom, the rest read-write. Unmapped on drop.
#[derive(Debug)]
pub(crate) struct Region {
    /// The lowest address of the mapping: the guard page.
    start: usize,
    /// The lowest usable address, just above the guard page.
    limit: NonZeroUsize,
    /// The highest address of the mapping.
    base: NonZeroUsize,
}

impl Region {
    /// Maps `len` bytes (a whole number of pages, more than
    /// [`GUARD_PAGES`]) and makes the lowest page a guard page.
    pub(crate) fn new(len: usize) -> io::Result<Self> {
        let page = page_size();
        // SAFETY: an anonymous private mapping at an address of the kernel's
        // choosing touches no existing memory.
        let mapping = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANON | super::system::STACK_MAP_FLAGS,
                -1,
                0,
            )
        };
        if mapping == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the first page is part of the mapping we just made.
        if unsafe { libc::mprotect(mapping, page, libc::PROT_NONE) } != 0 {
            let error = io::Error::last_os_error();
            // SAFETY: unmapping our own mapping, which nothing uses.
            unsafe { libc::munmap(mapping, len) };
            return Err(error);
        }
        let start = mapping as usize;
        let (Some(limit), Some(base)) = (
            NonZeroUsize::new(start + page),
            start.checked_add(len).and_then(NonZeroUsize::new),
        ) else {
            // A mapping at address 0 (possible only where mmap_min_addr is
            // 0) or at the very top cannot be described; give it back.
            // SAFETY: unmapping our own mapping, which nothing uses.
            unsafe { libc::munmap(mapping, len) };
            return Err(io::Error::other(
                "switchback: mmap returned a stack at an unusable address",
            ));
        };
        Ok(Self { start, limit, base })
    }

    /// The lowest address of the region: the bottom of the guard.
    #[inline]
    pub(crate) fn start(&self) -> usize {
        self.start
    }

    /// The lowest usable address, just above the guard.
    #[inline(always)]
    pub(crate) fn limit(&self) -> NonZeroUsize {
        self.limit
    }

    /// The highest address of the region.
    #[inline(always)]
    pub(crate) fn base(&self) -> NonZeroUsize {
        self.base
    }

    /// Drops the contents of the usable pages (not the guard page), giving
    /// the memory back to the OS; they read as zero afterwards. Returns
    /// false if that failed, in which case the region must not be reused.
    /// Nothing may run on the region.
    pub(crate) fn discard(&self) -> bool {
        super::system::discard(self.limit.get(), self.base.get() - self.limit.get())
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and nothing runs on it any more: it
        // is dropped only when idle or when its coroutine has finished.
        unsafe {
            libc::munmap(
                self.start as *mut libc::c_void,
                self.base.get() - self.start,
            );
        }
    }
}

/// Replaces `[start, start + len)`, part of a private anonymous mapping of
/// the caller's that nothing runs on, with fresh zero pages mapped with
/// `flags` besides `MAP_PRIVATE | MAP_ANON | MAP_FIXED`. Returns false if
/// that failed.
#[cfg_attr(any(target_os = "linux", target_os = "android"), allow(dead_code))]
pub(super) fn remap_fresh(start: usize, len: usize, flags: libc::c_int) -> bool {
    // SAFETY: replaces part of the caller's own mapping, which nothing
    // uses, with fresh zero pages; nothing outside the range changes.
    let remapped = unsafe {
        libc::mmap(
            start as *mut libc::c_void,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANON | libc::MAP_FIXED | flags,
            -1,
            0,
        )
    };
    remapped == start as *mut libc::c_void
}

/// Whether each of the `resident.len()` pages from `start` (at most
/// [`RESIDENT_QUERY_PAGES`]) is resident, from `mincore`.
pub(crate) fn resident_pages(start: usize, resident: &mut [bool]) -> io::Result<()> {
    let pages = resident.len();
    assert!(pages <= RESIDENT_QUERY_PAGES);
    let mut bytes: [super::system::MincoreByte; RESIDENT_QUERY_PAGES] = [0; RESIDENT_QUERY_PAGES];
    // SAFETY: `[start, start + pages pages)` is page-aligned and part of a
    // mapping the caller owns; `bytes` has an entry for each of its at
    // most RESIDENT_QUERY_PAGES pages.
    let status = unsafe {
        libc::mincore(
            start as *mut libc::c_void,
            pages * page_size(),
            bytes.as_mut_ptr(),
        )
    };
    if status != 0 {
        return Err(io::Error::last_os_error());
    }
    for (resident, byte) in resident.iter_mut().zip(bytes) {
        *resident = byte & 1 != 0;
    }
    Ok(())
}

/// The lowest usable address of the running stack, where the system
/// tracks it for every stack: never on Unix (the crate's registry and
/// `thread_stack` answer instead).
#[inline(always)]
pub(crate) fn running_stack_limit() -> Option<usize> {
    None
}

