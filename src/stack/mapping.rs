//! One stack's memory as the crate keeps it: a slot of a slab (`slab`,
//! where the OS has light guards) or the OS's region with its guard pages,
//! registered with Valgrind and in the crate's registry of stacks; the
//! memory behind `DefaultStack` and pooled stacks.

use core::mem::ManuallyDrop;
use std::io;

use super::registry::Registration;
#[cfg(all(unix, not(miri)))]
use super::slab::SlabStack;
#[cfg(windows)]
use super::StackTebFields;
use super::{StackPointer, ValgrindStackRegistration, MIN_STACK_SIZE};
pub(crate) use crate::os::{page_size, GUARD_PAGES};
use crate::os::Region;

/// One stack's memory, guard pages included. Unmapped (or given back to
/// its slab) on drop.
#[derive(Debug)]
pub(crate) struct Mapping {
    memory: Memory,
    /// `memory`'s bounds, fixed for its life.
    limit: StackPointer,
    base: StackPointer,
    _valgrind: ValgrindStackRegistration,
}

/// Where a stack's memory comes from.
#[derive(Debug)]
enum Memory {
    /// A mapping of its own, in the registry by itself.
    Own {
        /// Unmapped by `Mapping`'s `drop` (after leaving the registry,
        /// before Valgrind hears that the stack is gone).
        region: ManuallyDrop<Region>,
        /// In the crate's registry of stacks (overflow report, remaining
        /// stack).
        registration: Registration,
    },
    /// A slot of a slab, which is in the registry. Not on Windows, whose
    /// stacks commit memory as they grow through a `PAGE_GUARD` page and
    /// keep a reservation each (Windows has no limit on the number of
    /// reservations like Linux's `vm.max_map_count`), nor under Miri, whose
    /// stacks come from the allocator.
    #[cfg(all(unix, not(miri)))]
    Slab(SlabStack),
}

impl Mapping {
    /// A stack of `mapping_len` bytes (a whole number of pages, more than
    /// [`GUARD_PAGES`]) with the guard pages at the bottom: a slot of a
    /// slab where the OS has light guards and the stack is small enough
    /// (see `slab`), else a mapping of its own.
    ///
    /// # Errors
    ///
    /// The OS error, explained (the limit on mappings, or memory) where it
    /// is `ENOMEM`.
    pub(crate) fn new(mapping_len: usize) -> io::Result<Self> {
        #[cfg(all(unix, not(miri)))]
        if let Some(slot) = SlabStack::new(mapping_len)? {
            // As fresh as a new mapping, for Valgrind and AddressSanitizer
            // too (which would otherwise still hold the slot's last frames
            // as gone: nothing unmapped and mapped it again).
            super::valgrind::mark_fresh(slot.limit(), slot.base() - slot.limit());
            crate::sanitizer::unpoison(slot.limit(), slot.base());
            return Ok(Self::with(slot.limit(), slot.base(), Memory::Slab(slot)));
        }
        let region = Region::new(mapping_len)?;
        let (limit, base) = (region.limit().get(), region.base().get());
        let memory = Memory::Own {
            registration: Registration::new(region.start(), limit, base),
            region: ManuallyDrop::new(region),
        };
        Ok(Self::with(limit, base, memory))
    }

    /// The stack of `memory`, whose usable part is `[limit, base)`.
    fn with(limit: usize, base: usize, memory: Memory) -> Self {
        let (Some(limit_sp), Some(base_sp)) = (StackPointer::new(limit), StackPointer::new(base))
        else {
            unreachable!("a stack's bounds are not 0");
        };
        Self {
            _valgrind: ValgrindStackRegistration::new(limit as *mut u8, base - limit),
            memory,
            limit: limit_sp,
            base: base_sp,
        }
    }

    /// The lowest usable address, just above the guard pages.
    #[inline(always)]
    pub(crate) fn limit(&self) -> StackPointer {
        self.limit
    }

    /// The highest address of the mapping.
    #[inline(always)]
    pub(crate) fn base(&self) -> StackPointer {
        self.base
    }

    /// Drops the contents of the usable pages (not the guard), giving the
    /// memory back to the OS; they read as zero afterwards. Returns false
    /// if that failed, in which case the mapping must not be reused.
    #[inline]
    pub(crate) fn discard(&self) -> bool {
        match &self.memory {
            Memory::Own { region, .. } => region.discard(),
            #[cfg(all(unix, not(miri)))]
            Memory::Slab(slot) => slot.discard(),
        }
    }

    /// The region, on Windows (where every stack has one).
    #[cfg(windows)]
    #[inline]
    fn region(&self) -> &Region {
        let Memory::Own { region, .. } = &self.memory;
        region
    }

    /// The TEB's stack fields for this stack, which is idle.
    #[cfg(windows)]
    #[inline]
    pub(crate) fn teb_fields(&self) -> StackTebFields {
        self.region().teb_fields()
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
        crate::os::commit_or_panic(self.region(), low)
    }

    /// Records the TEB's stack fields as code left this stack.
    #[cfg(windows)]
    #[inline]
    pub(crate) fn update_teb_fields(&mut self, stack_limit: usize, guaranteed_stack_bytes: usize) {
        let Memory::Own { region, .. } = &mut self.memory;
        region.update_teb_fields(stack_limit, guaranteed_stack_bytes)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        match &mut self.memory {
            Memory::Own {
                region,
                registration,
            } => {
                // Out of the registry before the memory goes.
                registration.remove();
                // SAFETY: dropped once, here; the field is not used again.
                unsafe { ManuallyDrop::drop(region) };
            }
            // The slot goes back to its slab as the field drops, after this.
            #[cfg(all(unix, not(miri)))]
            Memory::Slab(_) => {}
        }
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

