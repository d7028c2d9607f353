//! `DefaultStack`: an mmap-allocated stack with a guard page, on Unix.

use core::sync::atomic::{AtomicUsize, Ordering};
use std::io;

use super::{Stack, StackPointer, ValgrindStackRegistration, MIN_STACK_SIZE};

/// A stack allocated with `mmap`, with a `PROT_NONE` guard page below it so
/// that an overflow faults, and registered with Valgrind so that memcheck
/// follows switches onto it.
///
/// ```
/// use switchback::stack::{DefaultStack, Stack};
///
/// let stack = DefaultStack::new(128 * 1024).unwrap();
/// assert!(stack.base().get() - stack.limit().get() >= 128 * 1024);
/// ```
#[derive(Debug)]
pub struct DefaultStack {
    base: StackPointer,
    /// The whole mapping, guard page included.
    mapping_len: usize,
    _valgrind: ValgrindStackRegistration,
}

/// The default size of a stack: 1 MiB.
const DEFAULT_STACK_SIZE: usize = 1024 * 1024;

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

impl DefaultStack {
    /// Allocates a stack with at least `size` usable bytes (rounded up to
    /// whole pages), plus a guard page.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `size` is below [`MIN_STACK_SIZE`] or so large
    /// that rounding overflows; the OS error if `mmap` or `mprotect` fails.
    pub fn new(size: usize) -> io::Result<Self> {
        if size < MIN_STACK_SIZE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                std::format!(
                    "switchback: stack size {size} is below MIN_STACK_SIZE ({MIN_STACK_SIZE} bytes)"
                ),
            ));
        }
        let page = page_size();
        let mapping_len = size
            .checked_add(page - 1)
            .map(|s| s & !(page - 1))
            .and_then(|s| s.checked_add(page))
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    std::format!("switchback: stack size {size} is too large"),
                )
            })?;
        // SAFETY: an anonymous private mapping at an address of the kernel's
        // choosing touches no existing memory.
        let mapping = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                mapping_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANON | libc::MAP_NORESERVE | map_stack(),
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
            // SAFETY: unmapping our own mapping.
            unsafe { libc::munmap(mapping, mapping_len) };
            return Err(error);
        }
        let limit = mapping as usize;
        let base = limit + mapping_len;
        Ok(Self {
            // SAFETY: mmap never returns a mapping that ends at address 0.
            base: unsafe { StackPointer::new_unchecked(base) },
            mapping_len,
            _valgrind: ValgrindStackRegistration::new(limit + page, base),
        })
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

impl Drop for DefaultStack {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and nothing runs on it any more: a
        // coroutine that used it has finished or been unwound.
        unsafe {
            libc::munmap(
                (self.base.get() - self.mapping_len) as *mut libc::c_void,
                self.mapping_len,
            );
        }
    }
}

// SAFETY: the mapping is owned by this object; the lowest page is PROT_NONE;
// base and limit are page-aligned and fixed; at least MIN_STACK_SIZE bytes
// are usable.
unsafe impl Stack for DefaultStack {
    #[inline]
    fn base(&self) -> StackPointer {
        self.base
    }

    #[inline]
    fn limit(&self) -> StackPointer {
        // SAFETY: the mapping starts above address 0.
        unsafe { StackPointer::new_unchecked(self.base.get() - self.mapping_len) }
    }
}
