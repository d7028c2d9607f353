//! Running a closure on another stack: [`on_stack`].

use core::mem::{self, ManuallyDrop};

use crate::root::{closure_stack_bytes, stack_bounds};
use crate::stack::Stack;
use crate::switch::{self, FreshStack};
use crate::unwind::{self, CaughtPanic};

/// Runs `f` on `stack` and returns its result; the stack is dropped after.
///
/// Backtraces taken inside `f` continue into the caller.
///
/// ```
/// use switchback::{on_stack, stack::DefaultStack};
///
/// let stack = DefaultStack::new(256 * 1024).unwrap();
/// let sum = on_stack(stack, || (1..=100u32).sum::<u32>());
/// assert_eq!(sum, 5050);
/// ```
///
/// # Panics
///
/// A panic in `f` continues from this call. Panics if the stack is
/// misaligned, smaller than [`MIN_STACK_SIZE`](crate::stack::MIN_STACK_SIZE),
/// or too small for twice the size of `f` and the crate's few hundred
/// bytes, by the rule of
/// [`Coroutine::with_stack`](crate::Coroutine::with_stack).
pub fn on_stack<F, R>(stack: impl Stack, f: F) -> R
where
    F: FnOnce() -> R,
{
    let (base, limit) = stack_bounds(
        &stack,
        mem::size_of::<F>(),
        closure_stack_bytes(mem::size_of::<F>(), mem::align_of::<F>()),
    );
    let fresh = FreshStack::of(&stack, limit, base);
    // SAFETY: the Stack contract makes the memory below `base` ours while
    // `stack` lives, which is until after the call.
    unsafe { call_on_stack(base.get(), fresh, f) }
}

/// The closure going in, then its result coming out.
union CallSlot<F, R> {
    f: ManuallyDrop<F>,
    result: ManuallyDrop<Result<R, CaughtPanic>>,
}

/// Calls `f` with the stack pointer at `top`, on the stack that the
/// trackers see as `to`.
///
/// # Safety
/// `top` must be 16-aligned with free stack below it for as long as `f` runs.
pub(crate) unsafe fn call_on_stack<F, R>(top: usize, to: FreshStack, f: F) -> R
where
    F: FnOnce() -> R,
{
    let mut slot = CallSlot::<F, R> {
        f: ManuallyDrop::new(f),
    };
    // SAFETY: the trampoline moves `f` out of the slot and writes the
    // result back before returning (a panic is caught into the result, or
    // with asm-unwind leaves through the switch after `f` was moved out).
    unsafe {
        switch::call_on(
            &to,
            &mut slot as *mut CallSlot<F, R> as *mut u8,
            top,
            call_slot_trampoline::<F, R>,
        );
        match ManuallyDrop::into_inner(slot.result) {
            Ok(value) => value,
            #[allow(unreachable_patterns)]
            Err(panic) => unwind::resume_caught(panic),
        }
    }
}

unsafe extern "C-unwind" fn call_slot_trampoline<F, R>(slot: *mut u8)
where
    F: FnOnce() -> R,
{
    // SAFETY: we just arrived on this stack.
    let caller = unsafe { switch::call_arrive() };
    let slot = slot as *mut CallSlot<F, R>;
    // The closure is read out of the slot only at the call: the wrapper
    // that `catch_unwind` moves around (several times in debug builds) is
    // one pointer, whatever the size of `f`, so `f` costs the stack one copy.
    // SAFETY: call_on_stack passes a slot holding the closure, taken once.
    let run = move || unsafe { ManuallyDrop::take(&mut (*slot).f) }();
    let result = unwind::catch_unwind_at_root(run);
    // SAFETY: the closure was moved out; the slot now takes the result.
    unsafe {
        (*slot).result = ManuallyDrop::new(result);
        switch::call_leave(caller);
    }
}
