//! Stacks that coroutines run on: the [`Stack`] trait, `DefaultStack` and
//! `StackPool`.

use core::num::NonZeroUsize;

#[cfg(all(feature = "default-stack", unix))]
mod default_stack;
#[cfg(all(feature = "default-stack", unix))]
mod mapping;
#[cfg(all(feature = "default-stack", unix))]
mod pool;
pub mod valgrind;

#[cfg(all(feature = "default-stack", unix))]
pub use self::default_stack::DefaultStack;
#[cfg(all(feature = "default-stack", unix))]
pub use self::pool::{PooledStack, StackPool, StackPoolBuilder};
#[cfg(all(feature = "default-stack", unix))]
use self::valgrind::ValgrindStackRegistration;

/// A stack address: the value of a stack pointer.
pub type StackPointer = NonZeroUsize;

/// Required alignment of a stack's [`base`](Stack::base) and
/// [`limit`](Stack::limit).
pub const STACK_ALIGNMENT: usize = crate::arch::STACK_ALIGNMENT;

/// The least number of usable bytes that a [`Stack`] must provide (excluding
/// guard pages).
pub const MIN_STACK_SIZE: usize = 4096;

/// An object that owns a region of memory usable as a stack.
///
/// Stacks grow downwards: code runs from [`base`](Stack::base) towards
/// [`limit`](Stack::limit).
///
/// # Safety
///
/// An implementation must guarantee, for as long as the object lives:
///
/// - `base()` and `limit()` return the same values on every call, both
///   aligned to [`STACK_ALIGNMENT`], with `limit() < base()`.
/// - The memory between them is owned by the object and not used by anything
///   else while a coroutine runs on it.
/// - A guard page (memory that faults on any access) lies at or below the
///   lowest usable address and above `limit()` or just below it, so that a
///   stack overflow traps instead of corrupting other memory. `limit()`
///   includes the guard pages.
/// - At least [`MIN_STACK_SIZE`] bytes below `base()` are usable
///   (readable and writable).
///
/// # Example
///
/// A stack borrowed from another, so that it can be reused after the
/// coroutine finishes:
///
/// ```
/// use switchback::stack::{DefaultStack, Stack};
/// use switchback::ScopedCoroutine;
///
/// let mut stack = DefaultStack::new(64 * 1024).unwrap();
/// let base = stack.base();
/// let coroutine: ScopedCoroutine<u32, (), u32, _> =
///     ScopedCoroutine::with_stack(&mut stack, |_, x| x * 2);
/// let out = coroutine.scope(|mut co| co.resume(21).as_return());
/// assert_eq!(out, Some(42));
/// assert_eq!(stack.base(), base);
/// ```
pub unsafe trait Stack {
    /// The highest address of the stack (stacks grow down), aligned to
    /// [`STACK_ALIGNMENT`].
    fn base(&self) -> StackPointer;

    /// The lowest address of the stack, guard pages included, aligned to
    /// [`STACK_ALIGNMENT`].
    fn limit(&self) -> StackPointer;
}

// SAFETY: a mutable borrow owns the stack for its lifetime and forwards to a
// `Stack` whose guarantees hold.
unsafe impl<S: Stack + ?Sized> Stack for &mut S {
    #[inline]
    fn base(&self) -> StackPointer {
        (**self).base()
    }

    #[inline]
    fn limit(&self) -> StackPointer {
        (**self).limit()
    }
}

/// Reads a stack's bounds and checks what portable code can check of the
/// [`Stack`] contract, panicking with a message that says what is wrong.
///
/// `footprint` is what a coroutine's closure takes at the top of the stack
/// (0 for `on_stack`, which places nothing there). The closure is moved once
/// more into the coroutine's first frame when it runs, so it needs twice its
/// footprint, plus room for frames: [`MIN_STACK_SIZE`] (a guard page's worth)
/// and a sixteenth of the stack. One combined test on the fast path; the
/// messages are built cold.
#[inline]
pub(crate) fn stack_bounds(
    stack: &impl Stack,
    closure_size: usize,
    footprint: usize,
) -> (StackPointer, StackPointer) {
    let (base, limit) = (stack.base(), stack.limit());
    let capacity = base.get().wrapping_sub(limit.get());
    let needed = if footprint == 0 {
        MIN_STACK_SIZE
    } else {
        closure_room(footprint, capacity)
    };
    let misaligned = !(base.get() | limit.get()).is_multiple_of(STACK_ALIGNMENT);
    let too_small = capacity < needed || capacity > isize::MAX as usize;
    if misaligned | too_small {
        bad_stack(base.get(), limit.get(), closure_size);
    }
    (base, limit)
}

/// The stack bytes a closure with this footprint needs on a stack of
/// `capacity` bytes (see [`stack_bounds`]).
#[inline(always)]
pub(crate) const fn closure_room(footprint: usize, capacity: usize) -> usize {
    2 * footprint + capacity / 16 + MIN_STACK_SIZE
}

#[cold]
#[inline(never)]
#[track_caller]
fn bad_stack(base: usize, limit: usize, closure_size: usize) -> ! {
    if !(base | limit).is_multiple_of(STACK_ALIGNMENT) {
        panic!(
            "switchback: stack base {base:#x} and limit {limit:#x} must be aligned to \
             {STACK_ALIGNMENT} bytes"
        );
    }
    if base <= limit || base - limit < MIN_STACK_SIZE {
        panic!(
            "switchback: stack from {base:#x} down to {limit:#x} is smaller than \
             MIN_STACK_SIZE ({MIN_STACK_SIZE} bytes)"
        );
    }
    panic!(
        "switchback: the coroutine's closure takes {closure_size} bytes, too many for a stack of \
         {} bytes (a closure needs twice its size, plus 4 KiB and a sixteenth of the stack); \
         box the closure or use a larger stack",
        base - limit
    );
}
