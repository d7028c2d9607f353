//! A pool's per-thread cache: the stack a thread returned last, kept for a
//! few loads and stores, and the thread's other idle stacks per pool,
//! handed to the shared lists when the thread exits.

use core::cell::{Cell, RefCell};
use core::ptr;
use core::sync::atomic::Ordering;
use std::boxed::Box;
use std::sync::Arc;
use std::vec::Vec;

use super::shared::{push_shared, FreeList, Shared, Slot};

/// The stack a thread returned last, kept where [`StackPool::get`] and the
/// next return reach it with a few loads and stores: no borrow flag, no
/// search, no reference count, and (since the type needs no destructor) no
/// check of the thread-local's state.
///
/// `state` holds a permit and a flag. The permit is a pool `P` (an
/// `Arc<Shared>` from `Arc::into_raw`, whose reference this owns, or null)
/// such that the thread's [`ThreadCache`] holds fewer than
/// `P.thread_cache` stacks of `P`, so this may keep one more of `P` without
/// exceeding the bound. The flag ([`FULL`], in the pointer's low bit, free
/// since `Shared` is aligned to 128) says that this owns `slot`, a stack of
/// `P`. Only the slow paths change the `ThreadCache`; they first move the
/// stack kept here into it and give the permit up ([`LastStack::flush`]),
/// so the permit stays true. The permit is only granted from inside
/// `CACHE`, while it is alive, and `CACHE`'s destructor flushes this, so
/// nothing stays here after the thread's cache is gone.
///
/// Taking the stack clears the flag only: both fast paths compare one word
/// to the pool's address (with or without the flag).
pub(super) struct LastStack {
    /// The permit's address, with [`FULL`] set while `slot` is owned.
    pub(super) state: Cell<usize>,
    /// While [`FULL`], a `Box<Slot>` of the permit's pool (from
    /// `Box::into_raw`); otherwise stale.
    pub(super) slot: Cell<*mut Slot>,
}

/// The flag of [`LastStack::state`] saying that it owns its slot.
pub(super) const FULL: usize = 1;

/// A thread's other idle stacks, per pool. Its destructor hands them (and
/// the [`LastStack`]) to their pools' shared lists when the thread exits.
pub(super) struct ThreadCache {
    pub(super) entries: RefCell<Vec<CacheEntry>>,
}

pub(super) struct CacheEntry {
    pub(super) shared: Arc<Shared>,
    /// At most `shared.thread_cache` stacks, each of this pool.
    pub(super) stacks: FreeList,
}

std::thread_local! {
    pub(super) static LAST: LastStack = const {
        LastStack {
            state: Cell::new(0),
            slot: Cell::new(ptr::null_mut()),
        }
    };
    pub(super) static CACHE: ThreadCache = const {
        ThreadCache {
            entries: RefCell::new(Vec::new()),
        }
    };
}

/// Puts a returned stack in this thread's cache, or hands it back if the
/// cache is full or unavailable (during thread exit).
pub(super) fn cache_push(slot: Box<Slot>) -> Result<(), Box<Slot>> {
    let mut slot = Some(slot);
    let _ = CACHE.try_with(|cache| {
        if let Some(stack) = slot.take() {
            slot = cache.push(stack).err();
        }
    });
    match slot {
        None => Ok(()),
        Some(slot) => Err(slot),
    }
}

/// The entry of `shared`'s pool in a thread's cache, made if there is none.
fn entry_for<'a>(entries: &'a mut Vec<CacheEntry>, shared: &Arc<Shared>) -> &'a mut CacheEntry {
    let index = match entries
        .iter()
        .position(|entry| Arc::ptr_eq(&entry.shared, shared))
    {
        Some(index) => index,
        None => {
            // Forget pools that closed meanwhile; their stacks are unmapped
            // as the entries drop.
            entries.retain(|entry| !entry.shared.closed.load(Ordering::Relaxed));
            entries.push(CacheEntry {
                shared: Arc::clone(shared),
                stacks: FreeList::default(),
            });
            entries.len() - 1
        }
    };
    &mut entries[index]
}

/// What a thread's cache lets go of, dropped (and so unmapped) once the
/// cache is no longer borrowed.
#[derive(Default)]
pub(super) struct Released {
    _permit: Option<Arc<Shared>>,
    _slot: Option<Box<Slot>>,
    _entry: Option<CacheEntry>,
}

impl LastStack {
    /// The fast path of [`StackPool::get`]: the last stack, if it is of
    /// `shared`'s pool.
    #[inline(always)]
    pub(super) fn take(&self, shared: &Arc<Shared>) -> Option<Box<Slot>> {
        let pool = Arc::as_ptr(shared) as usize;
        if self.state.get() != pool | FULL {
            return None;
        }
        self.state.set(pool);
        // SAFETY: with FULL set, `slot` is a `Box<Slot>` from
        // `Box::into_raw` that this owns; clearing FULL just gave that
        // ownership up, to the box made here.
        unsafe { Some(Box::from_raw(self.slot.get())) }
    }

    /// The fast path of a stack's return: keeps `slot` (from
    /// `Box::into_raw`) if this is empty, the permit is for the slot's pool
    /// and the pool is open. Returns whether it did; if not, the caller
    /// still owns `slot`.
    #[inline(always)]
    pub(super) fn put(&self, slot: *mut Slot) -> bool {
        // SAFETY: the caller passes a live slot that it owns.
        let shared = unsafe { &(*slot).shared };
        let pool = Arc::as_ptr(shared) as usize;
        let fits = self.state.get() == pool && !shared.closed.load(Ordering::Relaxed);
        if fits {
            // Usually the same stack comes back: leaving the field alone
            // then spares the next `take` a store-to-load forward (measured:
            // 0.3 ns per coroutine on `call-pooled`).
            if self.slot.get() != slot {
                self.slot.set(slot);
            }
            self.state.set(pool | FULL);
        }
        fits
    }

    /// Moves the last stack into `entries` (there is room: see the permit)
    /// and gives the permit up, so that the caller may change `entries`. A
    /// stack of a closed pool is released instead.
    fn flush(&self, entries: &mut Vec<CacheEntry>) -> Released {
        let state = self.state.replace(0);
        let pool = (state & !FULL) as *const Shared;
        if pool.is_null() {
            return Released::default();
        }
        // SAFETY: a non-null permit is an `Arc<Shared>` from `Arc::into_raw`
        // that this owns; setting the state to 0 gave that up to this Arc.
        let pool = unsafe { Arc::from_raw(pool) };
        // SAFETY: as in `take`.
        let mut slot = (state & FULL != 0).then(|| unsafe { Box::from_raw(self.slot.get()) });
        if !pool.closed.load(Ordering::Relaxed) {
            if let Some(slot) = slot.take() {
                entry_for(entries, &pool).stacks.push(slot);
            }
        }
        Released {
            _permit: Some(pool),
            _slot: slot,
            _entry: None,
        }
    }

    /// Takes `slot` and the permit for its pool, `shared`; the caller has
    /// just flushed this and made sure the permit holds.
    fn grant(&self, slot: Box<Slot>, shared: Arc<Shared>) {
        self.slot.set(Box::into_raw(slot));
        self.state.set(Arc::into_raw(shared) as usize | FULL);
    }
}

impl ThreadCache {
    /// Takes a stack of `shared`'s pool from `entries`.
    pub(super) fn pop(&self, shared: &Arc<Shared>) -> Option<Box<Slot>> {
        let mut entries = self.entries.try_borrow_mut().ok()?;
        entries
            .iter_mut()
            .find(|entry| Arc::ptr_eq(&entry.shared, shared))?
            .stacks
            .pop()
    }

    /// The slow path of a stack's return: keeps it if the thread holds
    /// fewer than `thread_cache` stacks of its pool, as the last stack (with
    /// the permit) if the pool recycles without discarding memory, else in
    /// `entries`. Hands it back otherwise.
    pub(super) fn push(&self, slot: Box<Slot>) -> Result<(), Box<Slot>> {
        let Ok(mut entries) = self.entries.try_borrow_mut() else {
            return Err(slot);
        };
        LAST.with(|last| {
            let released = last.flush(&mut entries);
            let shared = Arc::clone(&slot.shared);
            let entry = entry_for(&mut entries, &shared);
            let result = if entry.stacks.len >= shared.thread_cache {
                Err(slot)
            } else if shared.recycle_to_cache {
                // `entries` keeps fewer than `thread_cache` stacks of this
                // pool, so the permit holds.
                last.grant(slot, shared);
                Ok(())
            } else {
                entry.stacks.push(slot);
                Ok(())
            };
            drop(entries);
            drop(released);
            result
        })
    }

    /// Removes everything of `shared`'s pool from this thread's cache, for
    /// the caller to drop.
    pub(super) fn forget_pool(&self, shared: &Arc<Shared>) -> Released {
        let Ok(mut entries) = self.entries.try_borrow_mut() else {
            return Released::default();
        };
        let mut released = LAST.with(|last| {
            if last.state.get() & !FULL == Arc::as_ptr(shared) as usize {
                last.flush(&mut entries)
            } else {
                Released::default()
            }
        });
        released._entry = entries
            .iter()
            .position(|entry| Arc::ptr_eq(&entry.shared, shared))
            .map(|index| entries.swap_remove(index));
        released
    }
}

impl Drop for ThreadCache {
    fn drop(&mut self) {
        // The thread is exiting: hand its stacks to their pools' shared
        // lists, where other threads can use them. The last stack goes too,
        // and with its permit gone, stacks returned later (by other
        // thread-locals' destructors) go straight to the shared lists.
        let mut entries = core::mem::take(self.entries.get_mut());
        let released = LAST.with(|last| last.flush(&mut entries));
        for mut entry in entries.drain(..) {
            while let Some(slot) = entry.stacks.pop() {
                push_shared(slot);
            }
        }
        drop(released);
    }
}

