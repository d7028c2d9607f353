//! Recovering a coroutine from a trap (a fault or a stack overflow) inside a
//! signal handler: [`CoroutineTrapHandler`].
//!
//! A JIT or an interpreter that runs guest code in a coroutine can turn a
//! fault of that code (a stack overflow into the guard page, a bad memory
//! access) into an ordinary return value of the coroutine: the signal
//! handler checks that the fault happened on the running coroutine's stack,
//! asks the coroutine's `CoroutineTrapHandler` for the registers that make
//! it return a value to its parent, writes them into the interrupted
//! context and returns. The handler must run on an alternate signal stack
//! (`sigaltstack`), since an overflowing stack has no room left.
//!
//! On Windows the handler is a vectored exception handler
//! (`AddVectoredExceptionHandler`) for `EXCEPTION_STACK_OVERFLOW` and
//! `EXCEPTION_ACCESS_VIOLATION`: it reads the stack pointer from the
//! `CONTEXT` record, writes the registers there and returns
//! `EXCEPTION_CONTINUE_EXECUTION`. Windows has no alternate stack; it runs
//! the handler in the room that `DefaultStack` and pooled stacks keep below
//! their guard page (16 KiB), so the handler should do little more than
//! that. `examples/trap.rs` shows both.
//!
//! # Example
//!
//! A coroutine that overflows its stack returns -1 (x86-64 Linux; the
//! registers of other architectures are in `examples/support/`, used by
//! `examples/trap.rs`):
//!
//! ```
//! # #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
//! # mod example {
//! use std::cell::Cell;
//! use std::hint::black_box;
//! use std::{mem, ptr};
//!
//! use switchback::stack::DefaultStack;
//! use switchback::trap::{CoroutineTrapHandler, TrapHandlerRegs};
//! use switchback::Coroutine;
//!
//! thread_local! {
//!     // The running coroutine's handler. A const-initialised Cell of a
//!     // Copy type is safe to read in a signal handler.
//!     static RUNNING: Cell<Option<CoroutineTrapHandler<i32>>> = const { Cell::new(None) };
//! }
//!
//! extern "C" fn on_sigsegv(_: libc::c_int, _: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
//!     // SAFETY: SA_SIGINFO handlers get the interrupted context here.
//!     let gregs = unsafe { &mut (*(ctx as *mut libc::ucontext_t)).uc_mcontext.gregs };
//!     let sp = gregs[libc::REG_RSP as usize] as usize;
//!     match RUNNING.with(Cell::get) {
//!         Some(handler) if handler.stack_ptr_in_bounds(sp) => {
//!             // SAFETY: the coroutine is running and faulted on its own
//!             // stack; every register is written below; the recursion owns
//!             // nothing that needs dropping.
//!             let TrapHandlerRegs { rip, rsp, rbp, rdi, rsi } =
//!                 unsafe { handler.setup_trap_handler(|| -1) };
//!             gregs[libc::REG_RIP as usize] = rip as i64;
//!             gregs[libc::REG_RSP as usize] = rsp as i64;
//!             gregs[libc::REG_RBP as usize] = rbp as i64;
//!             gregs[libc::REG_RDI as usize] = rdi as i64;
//!             gregs[libc::REG_RSI as usize] = rsi as i64;
//!         }
//!         // Not ours: the default action kills the process when the
//!         // faulting instruction runs again.
//!         // SAFETY: resetting a signal's action.
//!         _ => unsafe { libc::signal(libc::SIGSEGV, libc::SIG_DFL); },
//!     }
//! }
//!
//! #[inline(never)]
//! fn recurse(depth: u64) -> u64 {
//!     let frame = black_box([depth; 64]);
//!     if black_box(depth) == u64::MAX { return 0; }
//!     recurse(depth + 1) + frame[63]
//! }
//!
//! pub fn main() {
//!     // SAFETY: a leaked alternate stack and a handler with the
//!     // SA_SIGINFO signature.
//!     unsafe {
//!         let altstack = Box::leak(vec![0u8; 64 * 1024].into_boxed_slice());
//!         let ss = libc::stack_t {
//!             ss_sp: altstack.as_mut_ptr().cast(),
//!             ss_flags: 0,
//!             ss_size: altstack.len(),
//!         };
//!         assert_eq!(libc::sigaltstack(&ss, ptr::null_mut()), 0);
//!         let mut action: libc::sigaction = mem::zeroed();
//!         action.sa_sigaction = on_sigsegv as *const () as libc::sighandler_t;
//!         action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
//!         assert_eq!(libc::sigaction(libc::SIGSEGV, &action, ptr::null_mut()), 0);
//!     }
//!     let stack = DefaultStack::new(64 * 1024).unwrap();
//!     let mut co: Coroutine<(), (), i32, _> =
//!         Coroutine::with_stack(stack, |_, ()| recurse(0) as i32);
//!     RUNNING.with(|r| r.set(Some(co.trap_handler())));
//!     let result = co.resume(());
//!     RUNNING.with(|r| r.set(None));
//!     assert_eq!(result.as_return(), Some(-1));
//! }
//! # }
//! # #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
//! # example::main();
//! ```

use core::marker::PhantomData;
use core::{mem, ptr};

pub use crate::arch::TrapHandlerRegs;
use crate::root::{closure_slot, closure_stack_bytes, stack_bytes_needed, trap_entry};
use crate::stack::StackPointer;
use crate::stack::MIN_GUARD_SIZE;

/// What a signal handler needs to make a trapping coroutine return to its
/// parent with a value.
///
/// It has no lifetime, so that it can be kept in a thread-local for the
/// handler to find; it must only be used while the coroutine it came from
/// (from [`Coroutine::trap_handler`](crate::Coroutine::trap_handler)) is
/// alive and running.
///
/// The part of a handler that runs everywhere: take the handler before
/// resuming, keep it where the signal handler finds it, and check that a
/// stack pointer is on the coroutine's stack. (The signal handler that then
/// calls [`setup_trap_handler`](Self::setup_trap_handler) is in the
/// [module's example](self#example).)
///
/// ```
/// use std::cell::Cell;
///
/// use switchback::trap::CoroutineTrapHandler;
/// use switchback::Coroutine;
///
/// thread_local! {
///     static RUNNING: Cell<Option<CoroutineTrapHandler<i32>>> = const { Cell::new(None) };
/// }
///
/// // What a signal handler asks first: did the fault happen on the stack of
/// // the coroutine that runs?
/// fn on_running_stack(sp: usize) -> bool {
///     RUNNING.with(Cell::get).is_some_and(|handler| handler.stack_ptr_in_bounds(sp))
/// }
///
/// let mut co: Coroutine<(), (), i32> = Coroutine::new(|_, ()| {
///     let local = 0u8;
///     assert!(on_running_stack(&local as *const u8 as usize));
///     7
/// });
/// RUNNING.with(|r| r.set(Some(co.trap_handler())));
/// let result = co.resume(());
/// RUNNING.with(|r| r.set(None)); // it must not outlive the run
/// assert_eq!(result.as_return(), Some(7));
///
/// let local = 0u8;
/// assert!(!on_running_stack(&local as *const u8 as usize));
/// ```
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
    /// [`MIN_GUARD_SIZE`] bytes of guard
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
    /// Always panics under Miri, which delivers no signals (see the README's
    /// "Your tests under Miri").
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
        crate::switch::forget_frames(self.limit.get(), self.base.get());
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
