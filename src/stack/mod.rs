//! Stacks that coroutines run on: the [`Stack`] trait and [`DefaultStack`].

use core::num::NonZeroUsize;

#[cfg(all(feature = "default-stack", unix))]
mod default_stack;
#[cfg(all(feature = "default-stack", unix))]
mod pool;
#[cfg(feature = "default-stack")]
mod valgrind;

#[cfg(all(feature = "default-stack", unix))]
pub use self::default_stack::DefaultStack;
#[cfg(all(feature = "default-stack", unix))]
pub use self::pool::{PooledStack, StackPool, StackPoolBuilder};
#[cfg(feature = "default-stack")]
pub(crate) use self::valgrind::ValgrindStackRegistration;

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
/// let coroutine = ScopedCoroutine::with_stack(&mut stack, |_, x: u32| x * 2);
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

/// Checks what portable code can check of a [`Stack`]'s contract, panicking
/// with a message that says what is wrong.
pub(crate) fn check_stack(stack: &impl Stack) -> (StackPointer, StackPointer) {
    let (base, limit) = (stack.base(), stack.limit());
    assert!(
        base.get() % STACK_ALIGNMENT == 0 && limit.get() % STACK_ALIGNMENT == 0,
        "switchback: stack base {:#x} and limit {:#x} must be aligned to {} bytes",
        base,
        limit,
        STACK_ALIGNMENT
    );
    assert!(
        base > limit && base.get() - limit.get() >= MIN_STACK_SIZE,
        "switchback: stack from {:#x} down to {:#x} is smaller than MIN_STACK_SIZE ({} bytes)",
        base,
        limit,
        MIN_STACK_SIZE
    );
    (base, limit)
}
