//! `StackPool`: reusable `mmap`ed stacks, so that creating a coroutine costs
//! no system call.
//!
//! A fresh [`DefaultStack`](super::DefaultStack) costs an `mmap`, an
//! `mprotect` and, when it is dropped, a `munmap` (whose TLB shootdown
//! interrupts every core the process runs on). A [`StackPool`] keeps stacks
//! that coroutines are done with and hands them out again: a per-thread cache
//! answers most requests without touching shared state, and a shared pool
//! behind it lets stacks move between threads.

use core::fmt;
use core::mem::ManuallyDrop;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::boxed::Box;
use std::cell::{Cell, RefCell};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::vec::Vec;

use super::mapping::{page_size, Mapping, GUARD_PAGES};
use super::rounded_stack_size;
use super::{Stack, StackPointer};
use crate::{Coroutine, Yielder};

/// The stack size of [`StackPool::default`] and [`StackPool::global`]: 1 MiB,
/// as for [`Coroutine::new`].
const DEFAULT_STACK_SIZE: usize = 1024 * 1024;
/// The default bound on idle stacks in the shared pool.
const DEFAULT_MAX_IDLE: usize = 64;
/// The default number of idle stacks each thread keeps for itself.
const DEFAULT_THREAD_CACHE: usize = 8;

/// A pool of reusable coroutine stacks.
///
/// Each stack is `mmap`ed once, with a `PROT_NONE` guard page below it like a
/// [`DefaultStack`](super::DefaultStack), and keeps that guard page for its
/// whole life. [`get`](StackPool::get) hands out a [`PooledStack`]; when the
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
/// - [`Coroutine::new`]: a fresh 1 MiB [`DefaultStack`](super::DefaultStack)
///   per coroutine. Simplest, and fine for a few long-lived coroutines; each
///   creation costs a few microseconds of system calls.
/// - [`Coroutine::with_pool`] (or [`Coroutine::pooled`] for a process-wide
///   pool of 1 MiB stacks): for code that creates many coroutines, such as
///   one per request or per task. Creation then costs about what creating on
///   an already-allocated stack costs.
/// - [`Coroutine::with_stack`] with a stack you keep (`&mut DefaultStack`,
///   or [`into_stack`](Coroutine::into_stack) and reuse): when one place
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
/// It implements [`Stack`], so it works with [`Coroutine::with_stack`],
/// [`ScopedCoroutine::with_stack`](crate::ScopedCoroutine::with_stack) and
/// [`on_stack`](crate::on_stack()); [`Coroutine::with_pool`] does the
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

/// Aligns its contents to a cache line of their own, so that the shared
/// list's lock traffic does not slow down reads of the configuration.
#[repr(align(128))]
struct CacheAligned<T>(T);

/// The state shared by a pool's handles and all its stacks.
struct Shared {
    /// Usable bytes per stack (a whole number of pages).
    stack_size: usize,
    /// Bytes per mapping: `stack_size` plus the guard pages.
    mapping_len: usize,
    max_idle: usize,
    thread_cache: usize,
    release_idle_memory: bool,
    zero_on_reuse: bool,
    /// Whether returned stacks go straight to the thread cache: it has
    /// room for some, and there is no memory to discard.
    recycle_to_cache: bool,
    /// Set, under the `idle` lock, when the last handle is dropped.
    closed: AtomicBool,
    /// Stacks mapped and not yet unmapped: in use or idle.
    allocated: CacheAligned<AtomicUsize>,
    /// The shared list of idle stacks.
    idle: CacheAligned<Mutex<FreeList>>,
}

/// A stack of a pool, in use (in a `PooledStack`) or idle (in a free list).
/// Dropping it unmaps the stack.
struct Slot {
    mapping: Mapping,
    shared: Arc<Shared>,
    /// The next idle stack while this one is in a free list.
    next: Option<Box<Slot>>,
}

/// An intrusive list of idle stacks.
#[derive(Default)]
struct FreeList {
    head: Option<Box<Slot>>,
    len: usize,
}

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
struct LastStack {
    /// The permit's address, with [`FULL`] set while `slot` is owned.
    state: Cell<usize>,
    /// While [`FULL`], a `Box<Slot>` of the permit's pool (from
    /// `Box::into_raw`); otherwise stale.
    slot: Cell<*mut Slot>,
}

/// The flag of [`LastStack::state`] saying that it owns its slot.
const FULL: usize = 1;

/// A thread's other idle stacks, per pool. Its destructor hands them (and
/// the [`LastStack`]) to their pools' shared lists when the thread exits.
struct ThreadCache {
    entries: RefCell<Vec<CacheEntry>>,
}

struct CacheEntry {
    shared: Arc<Shared>,
    /// At most `shared.thread_cache` stacks, each of this pool.
    stacks: FreeList,
}

std::thread_local! {
    static LAST: LastStack = const {
        LastStack {
            state: Cell::new(0),
            slot: Cell::new(ptr::null_mut()),
        }
    };
    static CACHE: ThreadCache = const {
        ThreadCache {
            entries: RefCell::new(Vec::new()),
        }
    };
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
    /// by [`Coroutine::pooled`].
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
    /// The OS error if a new stack is needed and `mmap` or `mprotect` fails.
    #[inline]
    pub fn get(&self) -> io::Result<PooledStack> {
        match LAST.with(|last| last.take(&self.shared)) {
            Some(stack) => Ok(stack),
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
    fn lock_idle(&self) -> MutexGuard<'_, FreeList> {
        // A panic never leaves the list half-updated: nothing that can panic
        // runs under the lock.
        self.idle.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

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

impl FreeList {
    #[inline]
    fn push(&mut self, mut slot: Box<Slot>) {
        slot.next = self.head.take();
        self.head = Some(slot);
        self.len += 1;
    }

    #[inline]
    fn pop(&mut self) -> Option<Box<Slot>> {
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
fn push_shared(slot: Box<Slot>) {
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

/// Puts a returned stack in this thread's cache, or hands it back if the
/// cache is full or unavailable (during thread exit).
fn cache_push(slot: Box<Slot>) -> Result<(), Box<Slot>> {
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
struct Released {
    _permit: Option<Arc<Shared>>,
    _slot: Option<Box<Slot>>,
    _entry: Option<CacheEntry>,
}

impl LastStack {
    /// The fast path of [`StackPool::get`]: the last stack, if it is of
    /// `shared`'s pool.
    #[inline(always)]
    fn take(&self, shared: &Arc<Shared>) -> Option<PooledStack> {
        let pool = Arc::as_ptr(shared) as usize;
        if self.state.get() != pool | FULL {
            return None;
        }
        self.state.set(pool);
        // SAFETY: with FULL set, `slot` is a `Box<Slot>` from
        // `Box::into_raw` that this owns; clearing FULL just gave that
        // ownership up, to the box made here.
        unsafe {
            Some(PooledStack {
                slot: ManuallyDrop::new(Box::from_raw(self.slot.get())),
            })
        }
    }

    /// The fast path of a stack's return: keeps `slot` (from
    /// `Box::into_raw`) if this is empty, the permit is for the slot's pool
    /// and the pool is open. Returns whether it did; if not, the caller
    /// still owns `slot`.
    #[inline(always)]
    fn put(&self, slot: *mut Slot) -> bool {
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
    fn pop(&self, shared: &Arc<Shared>) -> Option<Box<Slot>> {
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
    fn push(&self, slot: Box<Slot>) -> Result<(), Box<Slot>> {
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
    fn forget_pool(&self, shared: &Arc<Shared>) -> Released {
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
            .field("base", &format_args!("{:#x}", self.slot.mapping.base))
            .field("limit", &format_args!("{:#x}", self.slot.mapping.limit))
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
        self.slot.mapping.base
    }

    #[inline]
    fn limit(&self) -> StackPointer {
        self.slot.mapping.limit
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
        super::mapping::commit_or_panic(&self.slot.mapping, low)
    }
}

#[cfg_attr(docsrs, doc(cfg(all(feature = "default-stack", any(unix, windows)))))]
impl<Input, Yield, Return> Coroutine<Input, Yield, Return, PooledStack> {
    /// Creates a coroutine that runs `f` on a stack from `pool`. The stack
    /// goes back to the pool when the coroutine is dropped.
    ///
    /// See [`StackPool`] for when to use a pool rather than
    /// [`Coroutine::new`].
    ///
    /// ```
    /// use switchback::stack::StackPool;
    /// use switchback::Coroutine;
    ///
    /// let pool = StackPool::new(64 * 1024).unwrap();
    /// let mut co = Coroutine::with_pool(&pool, |yielder, x: u32| {
    ///     let y = yielder.suspend(x + 1);
    ///     y * 2
    /// });
    /// assert_eq!(co.resume(1).as_yield(), Some(2));
    /// assert_eq!(co.resume(5).as_return(), Some(10));
    /// drop(co);
    /// assert_eq!(pool.idle_count(), 1);
    /// ```
    ///
    /// # Panics
    ///
    /// Panics if a new stack is needed and cannot be mapped, and as
    /// [`Coroutine::with_stack`] if the closure is too big for the stack.
    #[inline]
    pub fn with_pool<F>(pool: &StackPool, f: F) -> Self
    where
        F: FnOnce(&Yielder<Input, Yield>, Input) -> Return + 'static,
        Input: 'static,
        Yield: 'static,
        Return: 'static,
    {
        match pool.get() {
            Ok(stack) => Self::with_stack(stack, f),
            Err(error) => pool_exhausted(pool, error),
        }
    }

    /// [`with_pool`](Coroutine::with_pool), returning an error instead of
    /// panicking when a new stack cannot be mapped.
    ///
    /// # Errors
    ///
    /// The OS error from `mmap` or `mprotect`.
    ///
    /// # Panics
    ///
    /// As [`Coroutine::with_stack`] if the closure is too big for the stack.
    #[inline]
    pub fn try_with_pool<F>(pool: &StackPool, f: F) -> io::Result<Self>
    where
        F: FnOnce(&Yielder<Input, Yield>, Input) -> Return + 'static,
        Input: 'static,
        Yield: 'static,
        Return: 'static,
    {
        Ok(Self::with_stack(pool.get()?, f))
    }

    /// Creates a coroutine that runs `f` on a 1 MiB stack from the
    /// process-wide [`StackPool::global`]: [`Coroutine::new`] without the
    /// system calls.
    ///
    /// ```
    /// use switchback::Coroutine;
    ///
    /// for i in 0..1000u64 {
    ///     let mut co: Coroutine<(), (), u64, _> = Coroutine::pooled(move |_, ()| i);
    ///     assert_eq!(co.resume(()).as_return(), Some(i));
    /// }
    /// ```
    ///
    /// # Panics
    ///
    /// As [`with_pool`](Coroutine::with_pool).
    #[inline]
    pub fn pooled<F>(f: F) -> Self
    where
        F: FnOnce(&Yielder<Input, Yield>, Input) -> Return + 'static,
        Input: 'static,
        Yield: 'static,
        Return: 'static,
    {
        Self::with_pool(StackPool::global(), f)
    }
}

#[cold]
#[inline(never)]
fn pool_exhausted(pool: &StackPool, error: io::Error) -> ! {
    panic!(
        "switchback: failed to allocate a {}-byte pooled stack: {error}",
        pool.stack_size()
    )
}
