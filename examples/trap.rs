//! Recovering from a stack overflow inside a coroutine.
//!
//! A coroutine recurses until it runs into the guard page of its 64 KiB
//! stack. The fault handler (on Linux and Darwin a signal handler running
//! on an alternate signal stack, since the faulting stack is full; on
//! Windows a vectored exception handler for `EXCEPTION_STACK_OVERFLOW`)
//! checks that the fault happened on the stack of the running coroutine and
//! uses its `CoroutineTrapHandler` to make it return -1 to `main`. The stack
//! is then reused for a second overflow.
//!
//! Linux, Android, FreeBSD, DragonFly, NetBSD, OpenBSD, illumos, Darwin
//! and Windows (the registers of the interrupted context are written by
//! `support/interrupted_context.rs`, per architecture and system). Linux,
//! the BSDs and illumos report the overflow into the guard page as
//! SIGSEGV, Darwin as SIGBUS (a protection failure on a mapped page), so
//! the signal handler takes both.

#![warn(clippy::undocumented_unsafe_blocks)]

#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "illumos",
    target_vendor = "apple",
    windows
))]
#[path = "support/interrupted_context.rs"]
mod interrupted_context;

#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "illumos",
    target_vendor = "apple",
    windows
))]
mod imp {
    use super::interrupted_context;
    use std::cell::Cell;
    use std::hint::black_box;
    use std::io;

    use switchback::stack::DefaultStack;
    use switchback::trap::{CoroutineTrapHandler, TrapHandlerRegs};
    use switchback::Coroutine;
    #[cfg(windows)]
    use windows_sys::Win32::Foundation::{EXCEPTION_ACCESS_VIOLATION, EXCEPTION_STACK_OVERFLOW};
    #[cfg(windows)]
    use windows_sys::Win32::System::Diagnostics::Debug::{
        AddVectoredExceptionHandler, EXCEPTION_CONTINUE_EXECUTION, EXCEPTION_CONTINUE_SEARCH,
        EXCEPTION_POINTERS,
    };

    /// Size of the coroutine's stack.
    const COROUTINE_STACK_SIZE: usize = 64 * 1024;
    /// Size of the alternate stack the signal handler runs on.
    #[cfg(unix)]
    const SIGNAL_STACK_SIZE: usize = 64 * 1024;

    thread_local! {
        /// The trap handler of the coroutine running on this thread, if any.
        /// A `const`-initialised `Cell` of a `Copy` type has no lazy
        /// initialisation and no destructor, so reading it in a fault
        /// handler is fine.
        static RUNNING: Cell<Option<CoroutineTrapHandler<i32>>> = const { Cell::new(None) };
    }

    /// Recurses forever (as far as the compiler can tell, only until
    /// `depth` wraps), using 512 bytes of stack per level.
    #[inline(never)]
    fn recurse(depth: u64) -> u64 {
        let frame = [depth; 64];
        black_box(&frame);
        if black_box(depth) == u64::MAX {
            return 0;
        }
        recurse(depth + 1) + black_box(frame[63])
    }

    /// What the fault handler does: if the fault happened on the stack of
    /// the coroutine running on this thread (`sp` is the interrupted stack
    /// pointer), the registers that make that coroutine return -1.
    ///
    /// # Safety
    /// Must be called from a fault handler, about the fault it handles.
    unsafe fn recover(sp: usize) -> Option<TrapHandlerRegs> {
        let handler = RUNNING
            .with(Cell::get)
            .filter(|h| h.stack_ptr_in_bounds(sp))?;
        // SAFETY: the coroutine is running (RUNNING is only set around
        // `resume`) and it faulted on its own stack, as just checked; the
        // caller writes every register into the context. The recursion owns
        // nothing that needs dropping.
        Some(unsafe { handler.setup_trap_handler(|| -1) })
    }

    /// The SIGSEGV and SIGBUS handler, on an alternate signal stack.
    #[cfg(unix)]
    extern "C" fn on_fault(
        signal: libc::c_int,
        _info: *mut libc::siginfo_t,
        ctx: *mut libc::c_void,
    ) {
        // SAFETY: with SA_SIGINFO the kernel passes a pointer to the
        // interrupted context as the third argument; nothing else uses it
        // while the handler runs.
        let sp = unsafe { interrupted_context::stack_pointer(ctx) };
        // SAFETY: we are that handler.
        match unsafe { recover(sp) } {
            // SAFETY: the registers are for this context.
            Some(regs) => unsafe { interrupted_context::redirect(ctx, regs) },
            None => {
                // Not ours: restore the default action and return, so that
                // the faulting instruction runs again and kills the process
                // with the signal as usual.
                // SAFETY: resetting a signal to its default action.
                unsafe { libc::signal(signal, libc::SIG_DFL) };
            }
        }
    }

    /// Sets up an alternate signal stack for this thread and installs the
    /// handler for SIGSEGV and SIGBUS.
    #[cfg(unix)]
    fn install_handler() -> io::Result<()> {
        use std::{mem, ptr};
        // The alternate stack must live as long as the handler may run:
        // for the rest of the program.
        let altstack: &'static mut [u8] =
            Box::leak(vec![0u8; SIGNAL_STACK_SIZE].into_boxed_slice());
        let ss = libc::stack_t {
            ss_sp: altstack.as_mut_ptr().cast(),
            ss_flags: 0,
            ss_size: altstack.len(),
        };
        // SAFETY: `ss` describes memory that stays valid and unused by
        // anything else for the rest of the program.
        if unsafe { libc::sigaltstack(&ss, ptr::null_mut()) } != 0 {
            return Err(io::Error::last_os_error());
        }

        // SAFETY: an all-zero sigaction is a valid value (empty mask, no
        // flags); the fields that matter are set below.
        let mut action: libc::sigaction = unsafe { mem::zeroed() };
        action.sa_sigaction = on_fault as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        // SAFETY: `action.sa_mask` is a valid sigset_t to initialise.
        unsafe { libc::sigemptyset(&mut action.sa_mask) };
        for signal in [libc::SIGSEGV, libc::SIGBUS] {
            // SAFETY: `on_fault` has the signature SA_SIGINFO requires, and
            // it only touches the thread-local, the coroutine's stack and
            // the interrupted context.
            if unsafe { libc::sigaction(signal, &action, ptr::null_mut()) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }

    /// The vectored exception handler. Windows runs it on the faulting
    /// stack, in the guard page that the stack overflow has just turned
    /// into usable memory (there is no alternate stack), so it does little.
    #[cfg(windows)]
    unsafe extern "system" fn on_exception(info: *mut EXCEPTION_POINTERS) -> i32 {
        // SAFETY: Windows passes the exception's record and context, which
        // only this handler uses while it runs.
        let (code, ctx) = unsafe {
            (
                (*(*info).ExceptionRecord).ExceptionCode,
                (*info).ContextRecord,
            )
        };
        if code != EXCEPTION_STACK_OVERFLOW && code != EXCEPTION_ACCESS_VIOLATION {
            return EXCEPTION_CONTINUE_SEARCH;
        }
        // SAFETY: `ctx` is the interrupted context.
        let sp = unsafe { interrupted_context::stack_pointer(ctx.cast()) };
        // SAFETY: we are that handler.
        match unsafe { recover(sp) } {
            Some(regs) => {
                // SAFETY: the registers are for this context.
                unsafe { interrupted_context::redirect(ctx.cast(), regs) };
                EXCEPTION_CONTINUE_EXECUTION
            }
            // Not ours: let the next handler (or the default, which ends
            // the process) have it.
            None => EXCEPTION_CONTINUE_SEARCH,
        }
    }

    /// Installs the vectored exception handler, first in line.
    #[cfg(windows)]
    fn install_handler() -> io::Result<()> {
        // SAFETY: `on_exception` has the signature Windows expects and only
        // touches the thread-local, the coroutine's stack and the context.
        let handle = unsafe { AddVectoredExceptionHandler(1, Some(on_exception)) };
        if handle.is_null() {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Runs `coroutine` with its trap handler registered, until it returns.
    fn run(coroutine: &mut Coroutine<(), (), i32>) -> i32 {
        RUNNING.with(|running| running.set(Some(coroutine.trap_handler())));
        let result = coroutine.resume(());
        RUNNING.with(|running| running.set(None));
        result.as_return().expect("the coroutine never yields")
    }

    fn overflowing_coroutine(stack: DefaultStack) -> Coroutine<(), (), i32> {
        Coroutine::with_stack(stack, |_, ()| {
            println!("[coroutine] recursing until the stack overflows");
            recurse(0) as i32
        })
    }

    pub fn main() {
        install_handler().expect("failed to install the fault handler");

        println!("[main] creating a coroutine on a 64 KiB stack");
        let stack = DefaultStack::new(COROUTINE_STACK_SIZE).expect("failed to allocate a stack");
        let mut coroutine = overflowing_coroutine(stack);
        let result = run(&mut coroutine);
        assert!(coroutine.done());
        println!(
            "[main] coroutine overflowed its stack and returned {}",
            result
        );

        println!("[main] reusing the stack for a second coroutine");
        let mut coroutine = overflowing_coroutine(coroutine.into_stack());
        let result = run(&mut coroutine);
        assert!(coroutine.done());
        println!(
            "[main] coroutine overflowed its stack and returned {}",
            result
        );

        println!("[main] exiting");
    }
}

#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "illumos",
    target_vendor = "apple",
    windows
))]
fn main() {
    imp::main();
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "illumos",
    target_vendor = "apple",
    windows
)))]
fn main() {
    println!("the trap example supports Linux, Android, the BSDs, illumos, Darwin and Windows");
}
