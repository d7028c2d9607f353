//! A pool's shared state: its configuration, the count of its stacks, and
//! the locked list of idle stacks that all threads share.

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::boxed::Box;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::super::mapping::Mapping;

/// Aligns its contents to a cache line of their own, so that the shared
/// list's lock traffic does not slow down reads of the configuration.
#[repr(align(128))]
pub(super) struct CacheAligned<T>(pub(super) T);

/// The state shared by a pool's handles and all its stacks.
pub(super) struct Shared {
    /// Usable bytes per stack (a whole number of pages).
    pub(super) stack_size: usize,
    /// Bytes per mapping: `stack_size` plus the guard pages.
    pub(super) mapping_len: usize,
    pub(super) max_idle: usize,
    pub(super) thread_cache: usize,
    pub(super) release_idle_memory: bool,
    pub(super) zero_on_reuse: bool,
    /// Whether returned stacks go straight to the thread cache: it has
    /// room for some, and there is no memory to discard.
    pub(super) recycle_to_cache: bool,
    /// Set, under the `idle` lock, when the last handle is dropped.
    pub(super) closed: AtomicBool,
    /// Stacks mapped and not yet unmapped: in use or idle.
    pub(super) allocated: CacheAligned<AtomicUsize>,
    /// The shared list of idle stacks.
    pub(super) idle: CacheAligned<Mutex<FreeList>>,
}

/// A stack of a pool, in use (in a `PooledStack`) or idle (in a free list).
/// Dropping it unmaps the stack.
pub(super) struct Slot {
    pub(super) mapping: Mapping,
    pub(super) shared: Arc<Shared>,
    /// The next idle stack while this one is in a free list.
    pub(super) next: Option<Box<Slot>>,
}

/// An intrusive list of idle stacks.
#[derive(Default)]
pub(super) struct FreeList {
    head: Option<Box<Slot>>,
    pub(super) len: usize,
}

impl Shared {
    pub(super) fn lock_idle(&self) -> MutexGuard<'_, FreeList> {
        // A panic never leaves the list half-updated: nothing that can panic
        // runs under the lock.
        self.idle.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl FreeList {
    #[inline]
    pub(super) fn push(&mut self, mut slot: Box<Slot>) {
        slot.next = self.head.take();
        self.head = Some(slot);
        self.len += 1;
    }

    #[inline]
    pub(super) fn pop(&mut self) -> Option<Box<Slot>> {
        let mut slot = self.head.take()?;
        self.head = slot.next.take();
        self.len -= 1;
        Some(slot)
    }
}

impl Drop for FreeList {
    fn drop(&mut self) {
        // One at a time: dropping the chain recursively could overflow a
        // small stack.
        while let Some(slot) = self.pop() {
            drop(slot);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // The mapping is unmapped as the field drops, right after this.
        self.shared.allocated.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Puts a returned stack in the shared list, or unmaps it if the list is
/// full or the pool closed.
#[cold]
#[inline(never)]
pub(super) fn push_shared(slot: Box<Slot>) {
    let shared = Arc::clone(&slot.shared);
    let rejected = {
        let mut idle = shared.lock_idle();
        if !shared.closed.load(Ordering::Relaxed) && idle.len < shared.max_idle {
            idle.push(slot);
            None
        } else {
            Some(slot)
        }
    };
    // Unmapped outside the lock.
    drop(rejected);
}

