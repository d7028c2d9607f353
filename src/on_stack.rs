//! Running a closure on another stack: [`on_stack`].

use core::mem::{self, ManuallyDrop};

use crate::arch;
use crate::sanitizer::{self, SavedContext, StackExtent};
use crate::stack::{closure_stack_bytes, stack_bounds, Stack};
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
    let extent = StackExtent::new(|| limit.get(), base.get());
    // SAFETY: the Stack contract makes the memory below `base` ours while
    // `stack` lives, which is until after the call.
    unsafe {
        call_on_stack(
            base.get(),
            extent,
            #[cfg(windows)]
            crate::teb::TebState::fresh(stack.teb_fields()),
            f,
        )
    }
}

/// The closure going in, then its result coming out.
union CallSlot<F, R> {
    f: ManuallyDrop<F>,
    result: ManuallyDrop<Result<R, CaughtPanic>>,
}

/// Calls `f` with the stack pointer at `top`, on the stack whose extent (for
/// the sanitizer) is `extent` and, on Windows, whose TEB state is `teb`.
///
/// # Safety
/// `top` must be 16-aligned with free stack below it for as long as `f` runs.
pub(crate) unsafe fn call_on_stack<F, R>(
    top: usize,
    extent: StackExtent,
    #[cfg(windows)] teb: crate::teb::TebState,
    f: F,
) -> R
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
        let saved = sanitizer::start_switch(extent);
        let arg = &mut slot as *mut CallSlot<F, R> as *mut u8;
        // Windows: the new stack's bounds go in the TEB for the call, and
        // ours come back after it (its leaving code runs no Rust): in the
        // switch itself on x86-64, around it elsewhere.
        #[cfg(all(windows, target_arch = "x86_64"))]
        arch::on_stack_with_teb(arg, top, call_slot_trampoline::<F, R>, &teb);
        #[cfg(all(windows, not(target_arch = "x86_64")))]
        {
            let saved_teb = crate::teb::read();
            crate::teb::write(&teb);
            arch::on_stack(arg, top, call_slot_trampoline::<F, R>);
            crate::teb::write(&saved_teb);
        }
        #[cfg(not(windows))]
        arch::on_stack(arg, top, call_slot_trampoline::<F, R>);
        sanitizer::finish_switch(saved);
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
    // SAFETY: we just arrived on this stack; we leave it for good when we
    // return, so the sanitizer's context for it ends there.
    let caller = unsafe { sanitizer::finish_switch(SavedContext::none()) };
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
        sanitizer::start_final_switch(caller);
    }
}
