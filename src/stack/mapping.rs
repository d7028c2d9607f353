//! One stack's memory as the crate keeps it: the OS's region with its guard
//! pages, registered with Valgrind and in the crate's registry of stacks;
//! the memory behind `DefaultStack` and pooled stacks.

use core::mem::ManuallyDrop;
use std::io;

use super::registry::Registration;
#[cfg(windows)]
use super::StackTebFields;
use super::{StackPointer, ValgrindStackRegistration, MIN_STACK_SIZE};
pub(crate) use crate::os::{page_size, GUARD_PAGES};
use crate::os::Region;

/// One stack's mapping, guard pages included. Unmapped on drop.
#[derive(Debug)]
pub(crate) struct Mapping {
    /// The memory, unmapped by `drop` (after leaving the registry, before
    /// Valgrind hears that the stack is gone).
    region: ManuallyDrop<Region>,
    _valgrind: ValgrindStackRegistration,
    /// In the crate's registry of stacks (overflow report, remaining stack).
    registration: Registration,
}

impl Mapping {
    /// Maps `mapping_len` bytes (a whole number of pages, more than
    /// [`GUARD_PAGES`]) with the guard pages at the bottom.
    pub(crate) fn new(mapping_len: usize) -> io::Result<Self> {
        let region = Region::new(mapping_len)?;
        let (limit, base) = (region.limit(), region.base());
        Ok(Self {
            _valgrind: ValgrindStackRegistration::new(
                limit.get() as *mut u8,
                base.get() - limit.get(),
            ),
            registration: Registration::new(region.start(), limit.get(), base.get()),
            region: ManuallyDrop::new(region),
        })
    }

    /// The lowest usable address, just above the guard pages.
    #[inline(always)]
    pub(crate) fn limit(&self) -> StackPointer {
        self.region.limit()
    }

    /// The highest address of the mapping.
    #[inline(always)]
    pub(crate) fn base(&self) -> StackPointer {
        self.region.base()
    }

    /// Drops the contents of the usable pages (not the guard), giving the
    /// memory back to the OS; they read as zero afterwards. Returns false
    /// if that failed, in which case the mapping must not be reused.
    #[inline]
    pub(crate) fn discard(&self) -> bool {
        self.region.discard()
    }

    /// The TEB's stack fields for this stack, which is idle.
    #[cfg(windows)]
    #[inline]
    pub(crate) fn teb_fields(&self) -> StackTebFields {
        self.region.teb_fields()
    }

    /// Commits `[low, base)` of this idle stack if it is not yet (Windows
    /// stacks commit on demand), for code that writes there from another
    /// stack.
    ///
    /// # Panics
    ///
    /// If the memory cannot be committed (the system's commit limit).
    #[cfg(windows)]
    #[inline]
    pub(crate) fn commit_from(&self, low: usize) {
        crate::os::commit_or_panic(&self.region, low)
    }

    /// Records the TEB's stack fields as code left this stack.
    #[cfg(windows)]
    #[inline]
    pub(crate) fn update_teb_fields(&mut self, stack_limit: usize, guaranteed_stack_bytes: usize) {
        self.region
            .update_teb_fields(stack_limit, guaranteed_stack_bytes)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // Out of the registry before the memory goes.
        self.registration.remove();
        // SAFETY: dropped once, here; the field is not used again.
        unsafe { ManuallyDrop::drop(&mut self.region) };
    }
}

/// A requested stack size rounded up to whole pages, and to at least
/// [`MIN_STACK_SIZE`] (smaller sizes, 0 included, are rounded up to it, as
/// corosensei does): callers get the size they ask for.
///
/// # Errors
///
/// `InvalidInput` if `size` is so large that rounding it (or adding the
/// guard pages) overflows.
pub(crate) fn rounded_stack_size(size: usize) -> std::io::Result<usize> {
    let page = page_size();
    size.max(MIN_STACK_SIZE)
        .checked_add(page - 1)
        .map(|s| s & !(page - 1))
        .filter(|s| {
            s.checked_add(GUARD_PAGES * page)
                .is_some_and(|len| len <= isize::MAX as usize)
        })
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                std::format!(
                    "switchback: a stack of {size} bytes is too large to map (ask for less \
                     than isize::MAX bytes)"
                ),
            )
        })
}

