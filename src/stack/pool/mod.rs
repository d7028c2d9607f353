//! `StackPool`: reusable `mmap`ed stacks, so that creating a coroutine costs
//! no system call.
//!
//! A fresh [`DefaultStack`](super::DefaultStack) costs system calls: an
//! `mmap`, an `mprotect` and, when it is dropped, a `munmap` (whose TLB
//! shootdown interrupts every core the process runs on); a slot of a slab
//! (Linux 6.13 and later) a `madvise` the first time the slot is used and
//! one when the stack is dropped. A [`StackPool`] keeps stacks
//! that coroutines are done with and hands them out again: a per-thread cache
//! answers most requests without touching shared state, and a shared pool
//! behind it lets stacks move between threads.
//!
//! Here: the public pool, its builder and `PooledStack`; `shared` holds a
//! pool's shared state and locked free list, `cache` the per-thread cache.

mod cache;
mod shared;

use core::fmt;
use core::mem::ManuallyDrop;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::boxed::Box;
use std::io;
use std::sync::{Arc, Mutex, OnceLock};

use self::cache::{cache_push, FULL, CACHE, LAST};
use self::shared::{push_shared, CacheAligned, FreeList, Shared, Slot};
use super::mapping::{page_size, rounded_stack_size, Mapping, GUARD_PAGES};
use super::{Stack, StackPointer};

/// The stack size of [`StackPool::default`] and [`StackPool::global`]: 1 MiB,
/// as for [`Coroutine::new`](crate::Coroutine::new).
const DEFAULT_STACK_SIZE: usize = 1024 * 1024;
/// The default bound on idle stacks in the shared pool.
const DEFAULT_MAX_IDLE: usize = 64;
/// The default number of idle stacks each thread keeps for itself.
const DEFAULT_THREAD_CACHE: usize = 8;

/// A pool of reusable coroutine stacks.
///
/// Each stack is mapped once, with a guard page below it like a
/// [`DefaultStack`](super::DefaultStack) (of the same kind: a slot of a
/// slab with a `MADV_GUARD_INSTALL` guard on Linux 6.13 and later for
/// stacks of up to 1 MiB, else an `mmap` of its own with a `PROT_NONE`
/// page; see its "Memory" section), and keeps that guard page for its
/// whole life. A stack the pool lets go (over its bounds, or the pool
/// closed) is unmapped, or given back to its slab with its memory
/// discarded. [`get`](StackPool::get) hands out a [`PooledStack`]; when the
/// `PooledStack` is dropped (with the coroutine that owns it) it goes back to
/// the pool instead of being unmapped.
///
/// Returned stacks go first to a small cache of the thread that drops them
/// ([`thread_cache`](StackPoolBuilder::thread_cache) stacks per pool, 8 by
/// default), which `get` on that thread takes from without locking or any
/// atomic operation; when that cache is full they go to the pool's shared
/// list, which keeps at most [`max_idle`](StackPoolBuilder::max_idle) stacks
/// (64 by default) and unmaps the rest. When a thread exits, its cache moves
/// to the shared list (within the same bound).
///
/// `StackPool` is a cheap handle: clones share the same stacks, and it can be
/// sent to and shared between threads. Stacks that are out keep the pool's
/// state alive, so dropping every handle while stacks are in use is fine.
/// When the last handle is dropped, the shared list and the dropping
/// thread's cache are unmapped, and so is every stack that comes back
/// afterwards; stacks in other threads' caches are unmapped when their
/// thread exits (or next caches a stack of another pool).
///
/// # Which stack to use
///
/// - [`Coroutine::new`](crate::Coroutine::new): a fresh 1 MiB [`DefaultStack`](super::DefaultStack)
///   per coroutine. Simplest, and fine for a few long-lived coroutines; each
///   creation costs a few microseconds of system calls.
/// - [`Coroutine::with_pool`](crate::Coroutine::with_pool) (or [`Coroutine::pooled`](crate::Coroutine::pooled) for a process-wide
///   pool of 1 MiB stacks): for code that creates many coroutines, such as
///   one per request or per task. Creation then costs about what creating on
///   an already-allocated stack costs.
/// - [`Coroutine::with_stack`](crate::Coroutine::with_stack) with a stack you keep (`&mut DefaultStack`,
///   or [`into_stack`](crate::Coroutine::into_stack) and reuse): when one place
///   runs one coroutine at a time and can hold on to its stack itself.
///
/// # Example
///
/// ```
/// use switchback::stack::StackPool;
/// use switchback::Coroutine;
///
/// // One pool for the whole server, 256 KiB stacks.
/// let pool = StackPool::new(256 * 1024).unwrap();
/// for request in 0..100u32 {
///     let mut co: Coroutine<(), (), u32, _> =
///         Coroutine::with_pool(&pool, move |_, ()| request * 2);
///     assert_eq!(co.resume(()).as_return(), Some(request * 2));
///     // Dropping `co` returns its stack to the pool.
/// }
/// // All 100 coroutines ran on the same stack.
/// assert_eq!(pool.allocated_count(), 1);
/// ```
///
/// For code that runs untrusted or secret-handling coroutines, or that wants
/// idle memory back:
///
/// ```
/// use switchback::stack::StackPool;
///
/// let pool = StackPool::builder()
///     .stack_size(128 * 1024)
///     .max_idle(16)
///     .zero_on_reuse(true)
///     .build()
///     .unwrap();
/// let stack = pool.get().unwrap();
/// # drop(stack);
/// ```
#[derive(Clone)]
pub struct StackPool {
    shared: Arc<Shared>,
    /// Closes the pool when the last clone is dropped.
    _handle: Arc<Handle>,
}

/// Configuration for a [`StackPool`], from [`StackPool::builder`].
///
/// ```
/// use switchback::stack::StackPool;
///
/// let pool = StackPool::builder()
///     .stack_size(64 * 1024)
///     .max_idle(32)
///     .thread_cache(4)
///     .release_idle_memory(true)
///     .build()
///     .unwrap();
/// assert_eq!(pool.stack_size(), 64 * 1024);
/// ```
#[derive(Clone, Debug)]
pub struct StackPoolBuilder {
    stack_size: usize,
    max_idle: usize,
    thread_cache: usize,
    release_idle_memory: bool,
    zero_on_reuse: bool,
}

/// A stack from a [`StackPool`], which goes back to the pool when dropped.
///
/// It implements [`Stack`], so it works with [`Coroutine::with_stack`](crate::Coroutine::with_stack),
/// [`ScopedCoroutine::with_stack`](crate::ScopedCoroutine::with_stack) and
/// [`on_stack`](crate::on_stack()); [`Coroutine::with_pool`](crate::Coroutine::with_pool) does the
/// `get` for you. Like a [`DefaultStack`](super::DefaultStack), it has a
/// `PROT_NONE` guard page at its [`limit`](Stack::limit).
///
/// ```
/// use switchback::stack::{Stack, StackPool};
///
/// let pool = StackPool::new(64 * 1024).unwrap();
/// let stack = pool.get().unwrap();
/// let base = stack.base();
/// drop(stack);
/// assert_eq!(pool.get().unwrap().base(), base); // the same memory again
/// ```
pub struct PooledStack {
    /// Taken out only in `drop`.
    slot: ManuallyDrop<Box<Slot>>,
}

/// Keeps the pool open: when the last `StackPool` clone drops, this closes
/// the shared state, unmapping its idle stacks.
struct Handle {
    shared: Arc<Shared>,
}

impl StackPool {
    /// A pool of stacks of `stack_size` usable bytes each (rounded up to
    /// whole pages, as for [`DefaultStack::new`](super::DefaultStack::new))
    /// and the default bounds: up to 64 idle stacks shared, plus up to 8
    /// per thread.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `stack_size` is too large to map. Sizes below
    /// [`MIN_STACK_SIZE`](super::MIN_STACK_SIZE) (4 KiB) are rounded up to
    /// it; nothing else is added.
    ///
    /// ```
    /// let pool = switchback::stack::StackPool::new(64 * 1024).unwrap();
    /// # drop(pool);
    /// ```
    pub fn new(stack_size: usize) -> io::Result<Self> {
        Self::builder().stack_size(stack_size).build()
    }

    /// A builder to configure a pool's stack size, bounds and memory policy.
    pub fn builder() -> StackPoolBuilder {
        StackPoolBuilder::new()
    }

    /// A process-wide pool of 1 MiB stacks with the default bounds, as used
    /// by [`Coroutine::pooled`](crate::Coroutine::pooled).
    ///
    /// ```
    /// use switchback::stack::StackPool;
    ///
    /// let stack = StackPool::global().get().unwrap();
    /// # drop(stack);
    /// ```
    pub fn global() -> &'static StackPool {
        static GLOBAL: OnceLock<StackPool> = OnceLock::new();
        GLOBAL.get_or_init(StackPool::default)
    }

    /// Takes an idle stack from this thread's cache, else from the shared
    /// list, else maps a new one.
    ///
    /// # Errors
    ///
    /// The OS error if a new stack is needed and mapping it (or its guard)
    /// fails; for `ENOMEM`, an `OutOfMemory` error that says why, as
    /// [`DefaultStack::new`](super::DefaultStack::new)'s does.
    #[inline]
    pub fn get(&self) -> io::Result<PooledStack> {
        match LAST.with(|last| last.take(&self.shared)) {
            Some(slot) => Ok(PooledStack::new(slot)),
            None => Ok(PooledStack::new(self.shared.get_slow()?)),
        }
    }

    /// The usable size of each stack in bytes: the requested size rounded
    /// up to whole pages (the guard page not included).
    pub fn stack_size(&self) -> usize {
        self.shared.stack_size
    }

    /// How many stacks of this pool are mapped: in use or idle, in any
    /// thread's cache or in the shared list.
    pub fn allocated_count(&self) -> usize {
        self.shared.allocated.0.load(Ordering::Relaxed)
    }

    /// How many idle stacks this pool has in its shared list and in the
    /// calling thread's cache. (Other threads' caches are not visible; they
    /// join the shared list when their thread exits, that is once its
    /// thread-local destructors have run: after
    /// [`JoinHandle::join`](std::thread::JoinHandle::join) returns, but not
    /// necessarily when [`std::thread::scope`] does.)
    pub fn idle_count(&self) -> usize {
        let shared = &self.shared;
        let in_shared = shared.lock_idle().len;
        let in_last = LAST.with(|last| last.state.get() == Arc::as_ptr(shared) as usize | FULL);
        let in_cache = CACHE
            .try_with(|cache| {
                cache.entries.try_borrow().map_or(0, |entries| {
                    entries
                        .iter()
                        .find(|entry| Arc::ptr_eq(&entry.shared, shared))
                        .map_or(0, |entry| entry.stacks.len)
                })
            })
            .unwrap_or(0);
        in_shared + usize::from(in_last) + in_cache
    }
}

impl Default for StackPool {
    /// A pool of 1 MiB stacks with the default bounds.
    fn default() -> Self {
        Self::builder()
            .build()
            .expect("switchback: the default stack pool configuration is valid")
    }
}

impl fmt::Debug for StackPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = &self.shared;
        f.debug_struct("StackPool")
            .field("stack_size", &shared.stack_size)
            .field("max_idle", &shared.max_idle)
            .field("thread_cache", &shared.thread_cache)
            .field("release_idle_memory", &shared.release_idle_memory)
            .field("zero_on_reuse", &shared.zero_on_reuse)
            .field("allocated", &self.allocated_count())
            .finish()
    }
}

impl Default for StackPoolBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl StackPoolBuilder {
    /// The default configuration: 1 MiB stacks, up to 64 idle stacks in the
    /// shared list plus 8 per thread, memory neither released nor zeroed.
    pub fn new() -> Self {
        Self {
            stack_size: DEFAULT_STACK_SIZE,
            max_idle: DEFAULT_MAX_IDLE,
            thread_cache: DEFAULT_THREAD_CACHE,
            release_idle_memory: false,
            zero_on_reuse: false,
        }
    }

    /// The usable bytes per stack, rounded up to whole pages and to at
    /// least [`MIN_STACK_SIZE`](super::MIN_STACK_SIZE) (4 KiB), as for
    /// [`DefaultStack::new`](super::DefaultStack::new); a guard page comes
    /// on top. Default 1 MiB.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = bytes;
        self
    }

    /// How many idle stacks the shared list keeps; stacks returned beyond
    /// that are unmapped. Default 64.
    ///
    /// Each thread's cache holds up to
    /// [`thread_cache`](StackPoolBuilder::thread_cache) more, but never more
    /// than `max_idle`: at most `max_idle + threads * min(thread_cache,
    /// max_idle)` stacks are idle, where `threads` counts the live threads
    /// that returned stacks of this pool. `max_idle(0)` keeps no stack at
    /// all.
    pub fn max_idle(mut self, stacks: usize) -> Self {
        self.max_idle = stacks;
        self
    }

    /// How many idle stacks of this pool each thread keeps for itself, to
    /// take and return without locking. Default 8; capped at
    /// [`max_idle`](StackPoolBuilder::max_idle). `0` makes every `get` and
    /// return go through the shared list, so that `max_idle` bounds all
    /// idle stacks exactly.
    pub fn thread_cache(mut self, stacks: usize) -> Self {
        self.thread_cache = stacks;
        self
    }

    /// Gives a stack's memory back to the OS each time it is returned
    /// (`madvise(MADV_DONTNEED)` on Linux, a fresh `MAP_FIXED` mapping
    /// elsewhere), so that idle stacks cost address space but no RAM. The
    /// next coroutine on that stack takes a page fault for each page it
    /// touches, and each return costs a system call (whose TLB flush
    /// reaches every core the process runs on). Default off.
    ///
    /// On Windows the stack is decommitted and left as a new one is, with
    /// only its top page committed (see
    /// [`DefaultStack`](super::DefaultStack#memory)), so idle stacks count
    /// against the commit limit for two pages each. Without it a pooled
    /// stack keeps every page its coroutines have committed, ready for the
    /// next one.
    pub fn release_idle_memory(mut self, release: bool) -> Self {
        self.release_idle_memory = release;
        self
    }

    /// Zeroes a stack's memory each time it is returned, so that a coroutine
    /// never sees what the previous coroutine on that stack left behind: for
    /// code that runs untrusted coroutines, or coroutines that handle
    /// secrets. Default off.
    ///
    /// This drops the stack's pages rather than writing zeroes (the same
    /// system call as [`release_idle_memory`](Self::release_idle_memory),
    /// which also guarantees zeroes), so it costs a system call per return
    /// plus the page faults of the next use, whatever the stack size. A
    /// stack whose pages cannot be dropped is unmapped instead of reused.
    pub fn zero_on_reuse(mut self, zero: bool) -> Self {
        self.zero_on_reuse = zero;
        self
    }

    /// Creates the pool. No stack is mapped until one is asked for.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if the stack size is too large to map. Sizes below
    /// [`MIN_STACK_SIZE`](super::MIN_STACK_SIZE) (4 KiB) are rounded up to
    /// it.
    pub fn build(&self) -> io::Result<StackPool> {
        let stack_size = rounded_stack_size(self.stack_size)?;
        let page = page_size();
        let shared = Arc::new(Shared {
            stack_size,
            mapping_len: stack_size + GUARD_PAGES * page,
            max_idle: self.max_idle,
            thread_cache: self.thread_cache.min(self.max_idle),
            release_idle_memory: self.release_idle_memory,
            zero_on_reuse: self.zero_on_reuse,
            recycle_to_cache: self.thread_cache.min(self.max_idle) != 0
                && !self.release_idle_memory
                && !self.zero_on_reuse,
            closed: AtomicBool::new(false),
            allocated: CacheAligned(AtomicUsize::new(0)),
            idle: CacheAligned(Mutex::new(FreeList::default())),
        });
        Ok(StackPool {
            _handle: Arc::new(Handle {
                shared: Arc::clone(&shared),
            }),
            shared,
        })
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.close();
    }
}

impl Shared {
    /// [`StackPool::get`] when the thread's `last` stack is not of this
    /// pool: takes a stack from this thread's cache, else from the shared
    /// list, else maps a new one.
    #[cold]
    #[inline(never)]
    fn get_slow(self: &Arc<Self>) -> io::Result<Box<Slot>> {
        if self.thread_cache != 0 {
            if let Ok(Some(slot)) = CACHE.try_with(|cache| cache.pop(self)) {
                return Ok(slot);
            }
        }
        if let Some(slot) = self.lock_idle().pop() {
            return Ok(slot);
        }
        let mapping = Mapping::new(self.mapping_len)?;
        self.allocated.0.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(Slot {
            mapping,
            shared: Arc::clone(self),
            next: None,
        }))
    }

    /// Called when the last handle goes: unmaps the idle stacks that this
    /// thread can reach, and makes stacks that come back later be unmapped.
    /// (The shared list's stacks hold `Arc`s to `self`; emptying it here
    /// breaks that cycle.)
    fn close(self: &Arc<Self>) {
        let idle = {
            let mut idle = self.lock_idle();
            self.closed.store(true, Ordering::Relaxed);
            core::mem::take(&mut *idle)
        };
        drop(idle);
        let cached = CACHE.try_with(|cache| cache.forget_pool(self));
        // Unmapped here, outside the borrow of the cache.
        drop(cached);
    }
}


impl PooledStack {
    fn new(slot: Box<Slot>) -> Self {
        Self {
            slot: ManuallyDrop::new(slot),
        }
    }

    /// Returns the stack to its pool: to this thread's cache, else the
    /// shared list, else (over the bound, or pool closed) unmaps it.
    #[inline(always)]
    fn recycle(&mut self) {
        // SAFETY: called once, from `drop`; `slot` is not used afterwards.
        let slot = Box::into_raw(unsafe { ManuallyDrop::take(&mut self.slot) });
        if !LAST.with(|last| last.put(slot)) {
            // SAFETY: `put` did not take the slot, so it is still
            // ours, from the `into_raw` above.
            Self::recycle_slow(unsafe { Box::from_raw(slot) });
        }
    }

    /// `recycle` when the thread's `last` slot cannot take the stack: it is
    /// full or for another pool, the pool has no thread cache or memory to
    /// discard, or it is closed.
    #[cold]
    #[inline(never)]
    fn recycle_slow(slot: Box<Slot>) {
        let shared = &*slot.shared;
        if shared.closed.load(Ordering::Relaxed) {
            return drop(slot);
        }
        if (shared.release_idle_memory || shared.zero_on_reuse) && !slot.mapping.discard() {
            return drop(slot);
        }
        let slot = if shared.thread_cache != 0 {
            match cache_push(slot) {
                Ok(()) => return,
                Err(slot) => slot,
            }
        } else {
            slot
        };
        push_shared(slot);
    }
}

impl Drop for PooledStack {
    #[inline(always)]
    fn drop(&mut self) {
        self.recycle();
    }
}

impl fmt::Debug for PooledStack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledStack")
            .field("base", &format_args!("{:#x}", self.slot.mapping.base()))
            .field("limit", &format_args!("{:#x}", self.slot.mapping.limit()))
            .finish()
    }
}

// SAFETY: a PooledStack is the only owner of its mapping while it lives (the
// pool holds a mapping only while no PooledStack does); the page just below
// `limit` is PROT_NONE for the mapping's whole life (discarding pages leaves
// it alone), or on Windows PAGE_GUARD (armed again after an overflow, by
// `teb_fields` and `discard`); on Windows the usable part is committed as it
// is reached, like a thread's stack, as its TEB fields describe (see
// `mapping_windows.rs`); base and limit are page-aligned and fixed; the
// pool's builder made the usable part at least MIN_STACK_SIZE bytes.
unsafe impl Stack for PooledStack {
    #[inline]
    fn base(&self) -> StackPointer {
        // A coroutine or `on_stack` is about to run on it on this thread.
        super::overflow::prepare_thread();
        self.slot.mapping.base()
    }

    #[inline]
    fn limit(&self) -> StackPointer {
        self.slot.mapping.limit()
    }

    #[cfg(windows)]
    #[inline]
    fn teb_fields(&self) -> super::StackTebFields {
        self.slot.mapping.teb_fields()
    }

    #[cfg(windows)]
    #[inline]
    fn update_teb_fields(&mut self, stack_limit: usize, guaranteed_stack_bytes: usize) {
        self.slot
            .mapping
            .update_teb_fields(stack_limit, guaranteed_stack_bytes)
    }

    #[cfg(windows)]
    #[inline]
    fn __commit_from(&self, low: usize) {
        self.slot.mapping.commit_from(low)
    }
}
