//! `DefaultStack`: an mmap-allocated stack with a guard page, on Unix.

use std::io;

use super::mapping::{page_size, rounded_stack_size, Mapping};
use super::{Stack, StackPointer};

/// A stack allocated with `mmap`, with a `PROT_NONE` guard page below it so
/// that an overflow faults, and registered with Valgrind so that memcheck
/// follows switches onto it.
///
/// For code that creates many coroutines, a
/// [`StackPool`](super::StackPool) avoids the system calls.
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
    /// Allocates a stack with at least `size` usable bytes (rounded up to
    /// whole pages), plus a guard page.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `size` is below [`MIN_STACK_SIZE`](super::MIN_STACK_SIZE)
    /// or so large that rounding overflows; the OS error if `mmap` or
    /// `mprotect` fails.
    pub fn new(size: usize) -> io::Result<Self> {
        let mapping_len = rounded_stack_size(size)? + page_size();
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
// its lowest page is PROT_NONE; base and limit are page-aligned and fixed;
// at least MIN_STACK_SIZE bytes are usable.
unsafe impl Stack for DefaultStack {
    #[inline]
    fn base(&self) -> StackPointer {
        self.mapping.base
    }

    #[inline]
    fn limit(&self) -> StackPointer {
        self.mapping.limit
    }
}
