//! [`remaining_stack`] and [`maybe_grow`]: how much stack is left, and
//! running a closure on a fresh stack when too little is.
//!
//! The current stack's bounds are looked up only when asked, so switching
//! coroutines costs nothing extra: a stack the crate mapped
//! ([`DefaultStack`](super::DefaultStack), pooled stacks) is found in the
//! crate's registry of stacks, a thread's own stack from the thread's
//! attributes, and a per-thread cache of the last few answers makes
//! repeated calls on the same stack (a deep recursion calling
//! `maybe_grow` at every level) a few loads and compares.

use core::cell::Cell;
use std::sync::{Mutex, PoisonError};
use std::vec::Vec;

use super::registry::{self, StackRange};
use super::mapping::rounded_stack_size;
use super::StackPool;
use crate::os;

/// Bytes left on the current stack: from the stack pointer down to the
/// lowest usable address (the guard page not counted), or `None` where
/// the current stack's bounds cannot be known.
///
/// It knows the stacks the crate made, whatever runs on them (a
/// [`Coroutine`](crate::Coroutine) on a [`DefaultStack`](super::DefaultStack)
/// or a pooled stack, an [`on_stack`](crate::on_stack()) call, a stack of
/// [`maybe_grow`]), and a thread's own stack where the platform reports it
/// (`pthread_getattr_np` on Linux, Android and NetBSD,
/// `pthread_attr_get_np` on FreeBSD and DragonFly, `pthread_stackseg_np`
/// on OpenBSD, `stack_getbounds` on illumos, `pthread_get_stackaddr_np` on
/// Darwin). Where the guard of a thread's stack may lie below the range
/// the system reports, the guard's size is left out anyway, so the answer
/// errs low by at most that much, never high.
/// On a stack of a custom [`Stack`](super::Stack) implementation it
/// returns `None`.
///
/// On Windows the thread's TEB describes whatever stack it runs on (the
/// context switch keeps it so), custom stacks included, so the answer
/// comes from there and is never `None`: the bytes down to the bottom of
/// the stack's reservation, less its never-committed bottom page and the
/// bytes Windows keeps for overflow handlers (`GuaranteedStackBytes`, at
/// least two pages, which cover the guard page on switchback's stacks).
///
/// Under Miri (see the README's "Your tests under Miri") it is always
/// `None`: the frames run on threads whose bounds Miri does not give.
///
/// The first call on a stack looks its bounds up (a scan of the registry
/// of stacks, a system call for a thread's stack); later calls on the same
/// stack take a few nanoseconds.
///
/// ```
/// use switchback::stack::{remaining_stack, DefaultStack};
/// use switchback::Coroutine;
///
/// let stack = DefaultStack::new(256 * 1024).unwrap();
/// let mut co: Coroutine<(), (), Option<usize>, _> =
///     Coroutine::with_stack(stack, |_, ()| remaining_stack());
/// let left = co.resume(()).as_return().unwrap().unwrap();
/// assert!(left > 200 * 1024 && left < 256 * 1024);
/// ```
#[inline]
pub fn remaining_stack() -> Option<usize> {
    let sp = stack_pointer();
    // Where the OS tracks every stack (Windows' TEB), it answers; elsewhere
    // the crate's registry and the thread's attributes do.
    let limit = match os::running_stack_limit() {
        Some(limit) => limit,
        None => CACHE.with(|cache| cache.limit_of(sp))?,
    };
    Some(sp.saturating_sub(limit))
}

/// Runs `f` on the current stack if at least `red_zone` bytes of it remain
/// (or if that cannot be known: see [`remaining_stack`]), otherwise on a
/// new stack of at least `stack_size` bytes, and returns its result.
///
/// The new stacks come from a process-wide [`StackPool`] per size, which
/// keeps a few idle stacks, so a recursion that keeps crossing the same
/// depth does not map and unmap a stack each time. A panic in `f` unwinds through this call to its
/// caller, and a backtrace taken in `f` continues through it into the
/// frames below.
///
/// Call it at each level of a deep recursion to let the recursion go
/// as deep as memory allows, even on a small coroutine stack:
///
/// ```
/// use switchback::stack::{maybe_grow, DefaultStack};
/// use switchback::Coroutine;
///
/// fn depth(tree: u32) -> u32 {
///     // 32 KiB left is plenty for one level; if less is left, continue
///     // on a fresh 1 MiB stack.
///     maybe_grow(32 * 1024, 1024 * 1024, || {
///         if tree == 0 { 0 } else { 1 + depth(tree - 1) }
///     })
/// }
///
/// // 100 000 levels on a 64 KiB coroutine stack.
/// let stack = DefaultStack::new(64 * 1024).unwrap();
/// let mut co: Coroutine<(), (), u32, _> = Coroutine::with_stack(stack, |_, ()| depth(100_000));
/// assert_eq!(co.resume(()).as_return(), Some(100_000));
/// ```
///
/// # Panics
///
/// If a new stack is needed and cannot be mapped; and as
/// [`on_stack`](crate::on_stack()) if `f` is too big for a stack of
/// `stack_size` bytes.
#[inline]
pub fn maybe_grow<R, F: FnOnce() -> R>(red_zone: usize, stack_size: usize, f: F) -> R {
    match remaining_stack() {
        Some(left) if left < red_zone => grow(stack_size, f),
        _ => f(),
    }
}

/// Runs `f` on a new stack of at least `stack_size` bytes (from the
/// process-wide [`StackPool`] of that size) and returns its result: what
/// [`maybe_grow`] does when the current stack is short.
///
/// ```
/// let sum = switchback::stack::grow(128 * 1024, || (1..=10u64).sum::<u64>());
/// assert_eq!(sum, 55);
/// ```
///
/// # Panics
///
/// If the stack cannot be mapped; and as [`on_stack`](crate::on_stack()) if
/// `f` is too big for the stack. A panic in `f` continues from this call.
#[inline(never)]
pub fn grow<R, F: FnOnce() -> R>(stack_size: usize, f: F) -> R {
    let pool = pool_for(stack_size);
    let stack = pool.get().unwrap_or_else(|error| {
        panic!("switchback: failed to allocate a {stack_size}-byte stack to grow onto: {error}")
    });
    crate::on_stack(stack, f)
}

/// Idle stacks each pool of [`grow`] keeps in its shared list (and at most
/// in each thread's cache): a recursion that keeps crossing the same depth
/// reuses them, and a deep one that unwinds leaves only these mapped.
const GROW_MAX_IDLE: usize = 4;

/// The process-wide pool of stacks of `stack_size` bytes (rounded as pools
/// round it).
fn pool_for(stack_size: usize) -> StackPool {
    static POOLS: Mutex<Vec<StackPool>> = Mutex::new(Vec::new());
    let size = rounded_stack_size(stack_size).unwrap_or_else(|error| panic!("{error}"));
    let mut pools = POOLS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(pool) = pools.iter().find(|pool| pool.stack_size() == size) {
        return pool.clone();
    }
    let pool = StackPool::builder()
        .stack_size(size)
        .max_idle(GROW_MAX_IDLE)
        .thread_cache(GROW_MAX_IDLE)
        .build()
        .unwrap_or_else(|error| panic!("{error}"));
    pools.push(pool.clone());
    pool
}

/// An address in the current frame: the stack pointer, give or take the
/// frame's size.
#[inline(always)]
fn stack_pointer() -> usize {
    let marker = 0u8;
    core::hint::black_box(&marker) as *const u8 as usize
}

/// The bounds of a thread's own stack: `Unknown` until looked up.
#[derive(Clone, Copy)]
enum ThreadStack {
    Unknown,
    Known { limit: usize, base: usize },
    Unavailable,
}

/// A thread's recent answers. It needs no destructor, so reading it is a
/// plain thread-local access.
struct Cache {
    /// The registered stacks found last, most recent first.
    recent: [Cell<Option<StackRange>>; 2],
    thread: Cell<ThreadStack>,
}

std::thread_local! {
    static CACHE: Cache = const {
        Cache {
            recent: [const { Cell::new(None) }; 2],
            thread: Cell::new(ThreadStack::Unknown),
        }
    };
}

impl Cache {
    /// The limit of the stack that `sp` is on.
    #[inline(always)]
    fn limit_of(&self, sp: usize) -> Option<usize> {
        if let Some(range) = self.recent[0].get() {
            if range.limit <= sp && sp < range.base && registry::still_registered(&range) {
                return Some(range.limit);
            }
        }
        if let ThreadStack::Known { limit, base } = self.thread.get() {
            if limit <= sp && sp < base {
                return Some(limit);
            }
        }
        self.limit_of_slow(sp)
    }

    #[cold]
    #[inline(never)]
    fn limit_of_slow(&self, sp: usize) -> Option<usize> {
        let [first, second] = &self.recent;
        if let Some(range) = second.get() {
            if range.limit <= sp && sp < range.base && registry::still_registered(&range) {
                second.set(first.get());
                first.set(Some(range));
                return Some(range.limit);
            }
        }
        if let Some(range) = registry::find(sp) {
            second.set(first.get());
            first.set(Some(range));
            return Some(range.limit);
        }
        if let ThreadStack::Unknown = self.thread.get() {
            self.thread.set(match os::thread_stack() {
                Some((limit, base)) => ThreadStack::Known { limit, base },
                None => ThreadStack::Unavailable,
            });
        }
        match self.thread.get() {
            ThreadStack::Known { limit, base } if limit <= sp && sp < base => Some(limit),
            _ => None,
        }
    }
}
