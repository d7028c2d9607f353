//! Recovering a coroutine from a trap (a fault or a stack overflow) inside a
//! signal handler: [`CoroutineTrapHandler`].

use core::marker::PhantomData;
use core::{mem, ptr};

pub use crate::arch::TrapHandlerRegs;
use crate::coroutine::{closure_slot, trap_entry};
use crate::stack::StackPointer;
use crate::stack::{closure_stack_bytes, stack_bytes_needed, MIN_GUARD_SIZE};

/// What a signal handler needs to make a trapping coroutine return to its
/// parent with a value.
///
/// It has no lifetime, so that it can be kept in a thread-local for the
/// handler to find; it must only be used while the coroutine it came from
/// (from [`Coroutine::trap_handler`](crate::Coroutine::trap_handler)) is
/// alive and running.
pub struct CoroutineTrapHandler<Return> {
    base: StackPointer,
    limit: StackPointer,
    marker: PhantomData<fn(Return)>,
}

impl<Return> Clone for CoroutineTrapHandler<Return> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<Return> Copy for CoroutineTrapHandler<Return> {}

impl<Return> core::fmt::Debug for CoroutineTrapHandler<Return> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CoroutineTrapHandler")
            .field("base", &format_args!("{:#x}", self.base))
            .field("limit", &format_args!("{:#x}", self.limit))
            .finish()
    }
}

impl<Return> CoroutineTrapHandler<Return> {
    pub(crate) fn new(base: StackPointer, limit: StackPointer) -> Self {
        Self {
            base,
            limit,
            marker: PhantomData,
        }
    }

    /// Whether `stack_ptr` (the stack pointer of the interrupted context)
    /// lies in this coroutine's stack or in the
    /// [`MIN_GUARD_SIZE`](crate::stack::MIN_GUARD_SIZE) bytes of guard
    /// below it, so that a stack overflow counts as inside.
    ///
    /// ```
    /// use switchback::Coroutine;
    ///
    /// let co: Coroutine<(), (), ()> = Coroutine::new(|_, ()| ());
    /// let handler = co.trap_handler();
    /// let local = 0u8;
    /// assert!(!handler.stack_ptr_in_bounds(&local as *const u8 as usize));
    /// ```
    pub fn stack_ptr_in_bounds(&self, stack_ptr: usize) -> bool {
        stack_ptr >= self.limit.get().saturating_sub(MIN_GUARD_SIZE) && stack_ptr < self.base.get()
    }

    /// Rewrites the coroutine's stack so that, once the signal handler
    /// returns with the registers in the returned [`TrapHandlerRegs`]
    /// written into the interrupted context, the coroutine runs `f` and then
    /// returns `f()` to its parent as [`CoroutineResult::Return`](crate::CoroutineResult::Return).
    /// Everything that was on the coroutine's stack is discarded without
    /// being dropped.
    ///
    /// A panic in `f` continues from the parent's `resume`, like any panic
    /// in a coroutine.
    ///
    /// # Safety
    ///
    /// - The coroutine must be running (it trapped), and the interrupted
    ///   stack pointer must satisfy [`stack_ptr_in_bounds`](Self::stack_ptr_in_bounds).
    /// - The handler must write every register of the result into the
    ///   interrupted context before returning.
    /// - Discarding the stack skips destructors: the code that trapped must
    ///   not own anything whose destructor matters (as for JIT code that
    ///   interacts with the world only through its parent).
    ///
    /// # Panics
    ///
    /// Panics (inside the signal handler) if `f` is too big for the stack,
    /// by the rule of [`Coroutine::with_stack`](crate::Coroutine::with_stack).
    pub unsafe fn setup_trap_handler<F>(&self, f: F) -> TrapHandlerRegs
    where
        F: FnOnce() -> Return + 'static,
    {
        let capacity = self.base.get() - self.limit.get();
        assert!(
            stack_bytes_needed(closure_stack_bytes(
                mem::size_of::<F>(),
                mem::align_of::<F>()
            )) <= capacity,
            "switchback: the trap handler's closure ({} bytes) is too big for the \
             coroutine's stack of {capacity} bytes",
            mem::size_of::<F>()
        );
        // The frames being discarded may have left the stack poisoned.
        crate::sanitizer::unpoison(self.limit.get(), self.base.get());
        let obj = closure_slot::<F>(self.base.get());
        // SAFETY: the slot lies in the coroutine's stack, whose contents the
        // caller agreed to discard; the coroutine started (it trapped), so
        // its root frame is in place.
        unsafe {
            ptr::write(obj as *mut F, f);
            crate::arch::trap_handler_regs(self.base, obj, trap_entry::<F, Return>)
        }
    }
}
