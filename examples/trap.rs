//! Recovering from a stack overflow inside a coroutine.
//!
//! A coroutine recurses until it runs into the guard page of its 64 KiB
//! stack. The signal handler (running on an alternate signal stack, since
//! the faulting stack is full) checks that the fault happened on the stack
//! of the running coroutine and uses its `CoroutineTrapHandler` to make it
//! return -1 to `main`. The stack is then reused for a second overflow.
//!
//! Linux and Darwin (the registers of the interrupted context are written by
//! `support/interrupted_context.rs`, per architecture and system). Linux
//! reports the overflow into the guard page as SIGSEGV, Darwin as SIGBUS (a
//! protection failure on a mapped page), so the handler takes both.

#![warn(clippy::undocumented_unsafe_blocks)]

#[cfg(any(target_os = "linux", target_os = "macos", target_os = "ios"))]
#[path = "support/interrupted_context.rs"]
mod interrupted_context;

#[cfg(any(target_os = "linux", target_os = "macos", target_os = "ios"))]
mod imp {
    use super::interrupted_context;
    use std::cell::Cell;
    use std::hint::black_box;
    use std::{io, mem, ptr};

    use switchback::stack::DefaultStack;
    use switchback::trap::CoroutineTrapHandler;
    use switchback::Coroutine;

    /// Size of the coroutine's stack.
    const COROUTINE_STACK_SIZE: usize = 64 * 1024;
    /// Size of the alternate stack the signal handler runs on.
    const SIGNAL_STACK_SIZE: usize = 64 * 1024;

    thread_local! {
        /// The trap handler of the coroutine running on this thread, if any.
        /// A `const`-initialised `Cell` of a `Copy` type has no lazy
        /// initialisation and no destructor, so reading it in a signal
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

    /// The SIGSEGV and SIGBUS handler.
    extern "C" fn on_fault(
        signal: libc::c_int,
        _info: *mut libc::siginfo_t,
        ctx: *mut libc::c_void,
    ) {
        // SAFETY: with SA_SIGINFO the kernel passes a pointer to the
        // interrupted context as the third argument; nothing else uses it
        // while the handler runs.
        let sp = unsafe { interrupted_context::stack_pointer(ctx) };

        match RUNNING.with(Cell::get) {
            Some(handler) if handler.stack_ptr_in_bounds(sp) => {
                // SAFETY: the coroutine is running (RUNNING is only set
                // around `resume`) and it faulted on its own stack, as just
                // checked. `redirect` writes every register into the
                // context. The recursion owns nothing that needs dropping.
                unsafe {
                    let regs = handler.setup_trap_handler(|| -1);
                    interrupted_context::redirect(ctx, regs);
                }
            }
            _ => {
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
    fn install_handler() -> io::Result<()> {
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
        install_handler().expect("failed to install the signal handler");

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

#[cfg(any(target_os = "linux", target_os = "macos", target_os = "ios"))]
fn main() {
    imp::main();
}

#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "ios")))]
fn main() {
    println!("the trap example only supports Linux and Darwin");
}
