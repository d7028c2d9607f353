//! The root of a coroutine's stack: where its closure goes, the first
//! frame of a trap handler, and how a coroutine leaves for good (its
//! exit codes), shared by `coroutine` and `trap`.

use core::mem::{self, MaybeUninit};
use core::ptr;

use crate::arch;
use crate::switch;
use crate::unwind::{self, CaughtPanic};
use crate::word;
use crate::word::StackPointer;

/// The exit code of a coroutine that returned: the word holds its `Return`.
pub(crate) const EXIT_RETURNED: usize = 0;
/// The exit code of a coroutine that panicked: the word holds the caught
/// panic. Any state above it is a suspended coroutine's stack pointer.
pub(crate) const EXIT_PANICKED: usize = 1;

/// Where the closure of type `F` goes on a stack whose base is `base`:
/// below the reserved top, aligned for `F` and for the stack. The caller has
/// checked that the stack has room for it (`stack_bounds`).
#[inline(always)]
pub(crate) fn closure_slot<F>(base: usize) -> usize {
    let align = mem::align_of::<F>().max(arch::STACK_ALIGNMENT);
    (base - arch::RESERVED_TOP - switch::RECORD_RESERVE - mem::size_of::<F>()) & !(align - 1)
}

/// Hands the coroutine's result (or the panic it caught) to its parent and
/// leaves for good.
#[inline(always)]
pub(crate) fn leave<Return>(result: Result<Return, CaughtPanic>, link: *mut StackPointer) -> ! {
    match result {
        Ok(value) => leave_with(value, EXIT_RETURNED, link),
        #[allow(unreachable_patterns)]
        Err(panic) => leave_with(panic, EXIT_PANICKED, link),
    }
}

#[inline(always)]
fn leave_with<T>(value: T, exit: usize, link: *mut StackPointer) -> ! {
    let mut slot = MaybeUninit::uninit();
    let output = word::encode(value, &mut slot);
    // SAFETY: nothing left on this stack needs dropping; `slot` stays in
    // place (the stack is not freed) until the parent has decoded it.
    unsafe {
        switch::leave_for_good(link);
        arch::switch_and_reset(output, exit, link)
    }
}

/// The first frame of a trap handler: runs `f` and returns its result as the
/// coroutine's return value.
pub(crate) unsafe extern "C-unwind" fn trap_entry<F, Return>(
    obj: *mut u8,
    link: *mut StackPointer,
) -> !
where
    F: FnOnce() -> Return,
{
    // SAFETY: setup_trap_handler wrote the closure at `obj`; it is taken
    // once, at the call (see coroutine_entry).
    let run = move || unsafe { ptr::read(obj as *mut F) }();
    leave(unwind::catch_unwind_at_root(run), link)
}
