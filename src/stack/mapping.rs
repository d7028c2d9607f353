//! One `mmap`ed stack region with a guard page: the memory behind
//! `DefaultStack` and pooled stacks.

use core::sync::atomic::{AtomicUsize, Ordering};
use std::io;

use super::registry::Registration;
use super::{StackPointer, ValgrindStackRegistration};

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

/// One stack's mapping, guard page included. Unmapped on drop.
#[derive(Debug)]
pub(crate) struct Mapping {
    /// The lowest address of the mapping: the guard page.
    start: usize,
    /// The lowest usable address, just above the guard page.
    pub(crate) limit: StackPointer,
    /// The highest address of the mapping.
    pub(crate) base: StackPointer,
    _valgrind: ValgrindStackRegistration,
    /// In the crate's registry of stacks (overflow report, remaining stack).
    registration: Registration,
}

impl Mapping {
    /// Maps `mapping_len` bytes (a whole number of pages, at least two) and
    /// makes the lowest page a guard page.
    pub(crate) fn new(mapping_len: usize) -> io::Result<Self> {
        let page = page_size();
        // SAFETY: an anonymous private mapping at an address of the kernel's
        // choosing touches no existing memory.
        let mapping = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                mapping_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANON | map_noreserve() | map_stack(),
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
            unsafe { libc::munmap(mapping, mapping_len) };
            return Err(error);
        }
        let start = mapping as usize;
        let (Some(limit_ptr), Some(base_ptr)) = (
            StackPointer::new(start + page),
            start.checked_add(mapping_len).and_then(StackPointer::new),
        ) else {
            // A mapping at address 0 (possible only where mmap_min_addr is
            // 0) or at the very top cannot be described; give it back.
            // SAFETY: unmapping our own mapping, which nothing uses.
            unsafe { libc::munmap(mapping, mapping_len) };
            return Err(io::Error::other(
                "switchback: mmap returned a stack at an unusable address",
            ));
        };
        Ok(Self {
            start,
            limit: limit_ptr,
            base: base_ptr,
            _valgrind: ValgrindStackRegistration::new(
                (start + page) as *mut u8,
                mapping_len - page,
            ),
            registration: Registration::new(start, limit_ptr.get(), base_ptr.get()),
        })
    }

    /// Drops the contents of the usable pages (not the guard page), giving
    /// the memory back to the OS; they read as zero afterwards. Returns
    /// false if that failed, in which case the mapping must not be reused.
    pub(crate) fn discard(&self) -> bool {
        let start = self.limit.get();
        let len = self.base.get() - start;
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            // SAFETY: the range is the usable part of our own mapping, and
            // nothing runs on it (the stack is being returned to the pool);
            // for a private anonymous mapping MADV_DONTNEED makes its pages
            // read as zero afterwards.
            unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED) == 0 }
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            // Elsewhere (Darwin included) MADV_DONTNEED and MADV_FREE may
            // leave the old contents readable, so the pages are replaced.
            // SAFETY: replaces the usable part of our own mapping, which
            // nothing uses, with fresh zero pages; the guard page below is
            // left alone.
            let remapped = unsafe {
                libc::mmap(
                    start as *mut libc::c_void,
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE
                        | libc::MAP_ANON
                        | map_noreserve()
                        | libc::MAP_FIXED
                        | map_stack(),
                    -1,
                    0,
                )
            };
            remapped == start as *mut libc::c_void
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        self.registration.remove();
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

#[cfg(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd"))]
fn map_stack() -> libc::c_int {
    libc::MAP_STACK
}

#[cfg(not(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd")))]
fn map_stack() -> libc::c_int {
    0
}

/// `MAP_NORESERVE` where `mmap` documents it. Darwin's headers define it but
/// its mmap(2) does not, and it commits anonymous memory lazily anyway.
#[cfg(not(target_vendor = "apple"))]
fn map_noreserve() -> libc::c_int {
    libc::MAP_NORESERVE
}

#[cfg(target_vendor = "apple")]
fn map_noreserve() -> libc::c_int {
    0
}
