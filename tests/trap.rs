//! Trap recovery: a fault handler makes a faulting coroutine (stack overflow, bad address) return a value.
//!
//! Unix (SIGSEGV/SIGBUS handlers: Linux and Darwin run here, Android, the
//! BSDs and illumos are compiled) and Windows (a vectored exception
//! handler); the registers of the interrupted context are read
//! and written per architecture and system by
//! `examples/support/interrupted_context.rs`. Fault handlers are
//! process-wide, so the tests take a lock, install the handlers (on Unix
//! with an alternate signal stack set up on the test's own thread) and
//! restore the previous ones afterwards.
//!
//! Every test that raises a signal skips itself when
//! `SWITCHBACK_UNDER_VALGRIND=1` (set by CI when it runs the test binaries
//! under valgrind): the recovery works there too, but memcheck reports each
//! deliberate invalid access as an error, failing `--error-exitcode=1`.
#![cfg(any(
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

use std::cell::Cell;
use std::hint::black_box;
use std::ptr;
use std::sync::Mutex;

use switchback::stack::{DefaultStack, Stack, MIN_GUARD_SIZE};
use switchback::trap::{CoroutineTrapHandler, TrapHandlerRegs};
use switchback::{Coroutine, CoroutineResult, ScopedCoroutine, Yielder};

mod common;
#[path = "../examples/support/interrupted_context.rs"]
mod interrupted_context;
use common::{frames_of_8_kib, levels_to_overflow, recurse, small_stack_size, under_valgrind};

/// How the handler makes the coroutine return.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Recovery {
    /// `setup_trap_handler(|| -1)` for SIGSEGV, `|| -2` for SIGBUS.
    Value,
    /// `setup_trap_handler(|| panic!(..))`.
    #[cfg_attr(not(feature = "unwind"), allow(dead_code))]
    Panic,
}

thread_local! {
    /// The trap handler of the coroutine running on this thread.
    static RUNNING: Cell<Option<CoroutineTrapHandler<i32>>> = const { Cell::new(None) };
    static RECOVERY: Cell<Recovery> = const { Cell::new(Recovery::Value) };
    /// How many traps the handler recovered from.
    static RECOVERED: Cell<u32> = const { Cell::new(0) };
    /// The address of the last fault.
    static FAULT_ADDR: Cell<usize> = const { Cell::new(0) };
    /// The code of the last fault (the signal, or the exception code).
    static FAULT_CODE: Cell<i64> = const { Cell::new(0) };
    /// The registers the last recovery wrote.
    static LAST_REGS: Cell<Option<TrapHandlerRegs>> = const { Cell::new(None) };
}

/// What every fault handler here does: if the fault happened on the stack
/// of the coroutine running on this thread (`sp` is the interrupted stack
/// pointer, `addr` the faulting address, `code` says which fault), the
/// registers that make that coroutine return `value`, or panic.
///
/// # Safety
/// Must be called from a fault handler, about the fault it handles, which
/// writes the registers into the interrupted context.
unsafe fn recover(code: i64, value: i32, sp: usize, addr: usize) -> Option<TrapHandlerRegs> {
    let handler = RUNNING
        .with(Cell::get)
        .filter(|h| h.stack_ptr_in_bounds(sp))?;
    FAULT_ADDR.with(|f| f.set(addr));
    FAULT_CODE.with(|f| f.set(code));
    RECOVERED.with(|r| r.set(r.get() + 1));
    // SAFETY: RUNNING is only set while the coroutine runs and it trapped on
    // its own stack (checked above); the caller writes every register; the
    // faulting code owns nothing that needs dropping.
    let regs = unsafe {
        match RECOVERY.with(Cell::get) {
            Recovery::Value => handler.setup_trap_handler(move || value),
            Recovery::Panic => handler.setup_trap_handler(move || -> i32 {
                panic!("recovered from fault {code} by panicking")
            }),
        }
    };
    LAST_REGS.with(|r| r.set(Some(regs)));
    Some(regs)
}

/// The signal raised by an access to a mapped page that allows no access
/// (a guard page, a `PROT_NONE` mapping): SIGSEGV on Linux (and taken to be
/// so on Android, the BSDs and illumos, where this is compiled, not run;
/// FreeBSD gives SIGBUS only to binaries of old ABIs). Darwin reports
/// such a protection failure as SIGBUS, and keeps SIGSEGV for invalid
/// addresses (nothing usable mapped there, like the null page that
/// `write_to_invalid_address_recovers` writes to).
#[cfg(unix)]
const PROTECTION_SIGNAL: libc::c_int = if cfg!(target_vendor = "apple") {
    libc::SIGBUS
} else {
    libc::SIGSEGV
};

/// What the handler makes a coroutine return after a fault on a mapped page
/// that allows no access: -2 for SIGBUS, -1 for SIGSEGV and on Windows.
#[cfg(unix)]
const PROTECTION_FAULT: i32 = if PROTECTION_SIGNAL == libc::SIGBUS {
    -2
} else {
    -1
};
#[cfg(windows)]
const PROTECTION_FAULT: i32 = -1;

/// Windows: the exception code of a stack overflow, as `recover` gets it.
#[cfg(windows)]
fn overflow_exception() -> i64 {
    windows_sys::Win32::Foundation::EXCEPTION_STACK_OVERFLOW as i64
}

/// The fault code `recover` reports for a stack overflow (checked only by
/// the test that panics, which needs `unwind`).
#[cfg(unix)]
#[cfg_attr(not(feature = "unwind"), allow(dead_code))]
const OVERFLOW_CODE: i64 = PROTECTION_SIGNAL as i64;
#[cfg(windows)]
#[cfg_attr(not(feature = "unwind"), allow(dead_code))]
const OVERFLOW_CODE: i64 = windows_sys::Win32::Foundation::EXCEPTION_STACK_OVERFLOW as i64;

#[cfg(unix)]
mod os {
    //! SIGSEGV and SIGBUS handlers on an alternate signal stack.
    use super::*;
    use std::mem;

    extern "C" fn on_trap(signal: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
        // SAFETY: with SA_SIGINFO the kernel passes the siginfo and the
        // interrupted context, which only this handler uses while it runs.
        let (sp, addr) = unsafe {
            (
                interrupted_context::stack_pointer(ctx),
                (*info).si_addr() as usize,
            )
        };
        let value = if signal == libc::SIGBUS { -2 } else { -1 };
        // SAFETY: we are the handler of this fault.
        match unsafe { recover(signal.into(), value, sp, addr) } {
            // SAFETY: the registers are for this context.
            Some(regs) => unsafe { interrupted_context::redirect(ctx, regs) },
            None => {
                // Not a coroutine trap: die with the signal as usual.
                // SAFETY: resetting a signal to its default action.
                unsafe { libc::signal(signal, libc::SIG_DFL) };
            }
        }
    }

    /// Installs the handlers (and an alternate signal stack on this
    /// thread), runs `f` and restores everything.
    pub fn with_handlers_installed(f: impl FnOnce()) {
        const ALT_SIZE: usize = 256 * 1024;
        let mut altstack = vec![0u8; ALT_SIZE];
        let ss = libc::stack_t {
            ss_sp: altstack.as_mut_ptr().cast(),
            ss_flags: 0,
            ss_size: ALT_SIZE,
        };
        // SAFETY: an all-zero stack_t / sigaction is a valid value to overwrite.
        let mut old_ss: libc::stack_t = unsafe { mem::zeroed() };
        // SAFETY: `altstack` outlives the registration (restored below).
        assert_eq!(unsafe { libc::sigaltstack(&ss, &mut old_ss) }, 0);

        // SAFETY: as above.
        let mut action: libc::sigaction = unsafe { mem::zeroed() };
        action.sa_sigaction = on_trap as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        // SAFETY: initialising a sigset_t we own.
        unsafe { libc::sigemptyset(&mut action.sa_mask) };
        // SAFETY: an all-zero sigaction is a valid value to overwrite.
        let mut old_segv: libc::sigaction = unsafe { mem::zeroed() };
        // SAFETY: as for `old_segv`.
        let mut old_bus: libc::sigaction = unsafe { mem::zeroed() };
        // SAFETY: `on_trap` has the SA_SIGINFO signature and only touches
        // thread-locals, the coroutine's stack and the context.
        unsafe {
            assert_eq!(libc::sigaction(libc::SIGSEGV, &action, &mut old_segv), 0);
            assert_eq!(libc::sigaction(libc::SIGBUS, &action, &mut old_bus), 0);
        }

        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));

        // SAFETY: restoring what was there before.
        unsafe {
            assert_eq!(
                libc::sigaction(libc::SIGSEGV, &old_segv, ptr::null_mut()),
                0
            );
            assert_eq!(libc::sigaction(libc::SIGBUS, &old_bus, ptr::null_mut()), 0);
            if old_ss.ss_flags & libc::SS_DISABLE != 0 {
                let disable = libc::stack_t {
                    ss_sp: ptr::null_mut(),
                    ss_flags: libc::SS_DISABLE,
                    ss_size: 0,
                };
                assert_eq!(libc::sigaltstack(&disable, ptr::null_mut()), 0);
            } else {
                assert_eq!(libc::sigaltstack(&old_ss, ptr::null_mut()), 0);
            }
        }
        drop(altstack);
        if let Err(payload) = result {
            std::panic::resume_unwind(payload);
        }
    }

    /// A fresh page that faults on any access.
    pub fn inaccessible_page() -> usize {
        // SAFETY: a fresh anonymous mapping with no access.
        let page = unsafe {
            libc::mmap(
                ptr::null_mut(),
                4096,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANON,
                -1,
                0,
            )
        };
        assert_ne!(page, libc::MAP_FAILED);
        page as usize
    }

    /// Gives back a page from `inaccessible_page`.
    pub fn release_page(page: usize) {
        // SAFETY: unmapping our own mapping.
        unsafe { libc::munmap(page as *mut libc::c_void, 4096) };
    }
}

#[cfg(windows)]
mod os {
    //! A vectored exception handler, first in line. Windows runs it on the
    //! faulting stack (in the guard page a stack overflow has just made
    //! usable), as there is no alternate stack.
    use super::*;
    use windows_sys::Win32::Foundation::{EXCEPTION_ACCESS_VIOLATION, EXCEPTION_STACK_OVERFLOW};
    use windows_sys::Win32::System::Diagnostics::Debug::{
        AddVectoredExceptionHandler, RemoveVectoredExceptionHandler, EXCEPTION_CONTINUE_EXECUTION,
        EXCEPTION_CONTINUE_SEARCH, EXCEPTION_POINTERS,
    };
    use windows_sys::Win32::System::Memory::{
        VirtualAlloc, VirtualFree, MEM_COMMIT, MEM_RELEASE, MEM_RESERVE, PAGE_NOACCESS,
    };

    unsafe extern "system" fn on_exception(info: *mut EXCEPTION_POINTERS) -> i32 {
        // SAFETY: Windows passes the exception's record and context, which
        // only this handler uses while it runs.
        let (record, ctx) = unsafe { (&*(*info).ExceptionRecord, (*info).ContextRecord) };
        let code = record.ExceptionCode;
        if code != EXCEPTION_STACK_OVERFLOW && code != EXCEPTION_ACCESS_VIOLATION {
            return EXCEPTION_CONTINUE_SEARCH;
        }
        // Both carry the faulting address as their second parameter.
        let addr = record.ExceptionInformation[1];
        // SAFETY: `ctx` is the interrupted context.
        let sp = unsafe { interrupted_context::stack_pointer(ctx.cast()) };
        // SAFETY: we are the handler of this fault.
        match unsafe { recover(code.into(), -1, sp, addr) } {
            Some(regs) => {
                // SAFETY: the registers are for this context.
                unsafe { interrupted_context::redirect(ctx.cast(), regs) };
                EXCEPTION_CONTINUE_EXECUTION
            }
            None => EXCEPTION_CONTINUE_SEARCH,
        }
    }

    /// Installs the handler, runs `f` and removes it.
    pub fn with_handlers_installed(f: impl FnOnce()) {
        // SAFETY: `on_exception` has the handler signature and only touches
        // thread-locals, the coroutine's stack and the context.
        let handle = unsafe { AddVectoredExceptionHandler(1, Some(on_exception)) };
        assert!(!handle.is_null());
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        // SAFETY: removing the handler added above.
        assert_ne!(unsafe { RemoveVectoredExceptionHandler(handle) }, 0);
        if let Err(payload) = result {
            std::panic::resume_unwind(payload);
        }
    }

    /// A fresh page that faults on any access.
    pub fn inaccessible_page() -> usize {
        // SAFETY: a fresh allocation with no access.
        let page =
            unsafe { VirtualAlloc(ptr::null(), 4096, MEM_RESERVE | MEM_COMMIT, PAGE_NOACCESS) };
        assert!(!page.is_null());
        page as usize
    }

    /// Gives back a page from `inaccessible_page`.
    pub fn release_page(page: usize) {
        // SAFETY: releasing our own allocation.
        unsafe { VirtualFree(page as *mut _, 0, MEM_RELEASE) };
    }
}

static TRAP_LOCK: Mutex<()> = Mutex::new(());

/// Installs the fault handlers for the duration of `f` (one test at a
/// time: they are process-wide).
fn with_trap_handlers(f: impl FnOnce()) {
    let _lock = TRAP_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    RECOVERED.with(|r| r.set(0));
    os::with_handlers_installed(f);
}

/// Resumes `co` with its trap handler registered.
fn run<Y, S: Stack>(co: &mut Coroutine<(), Y, i32, S>) -> CoroutineResult<Y, i32> {
    RUNNING.with(|r| r.set(Some(co.trap_handler())));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| co.resume(())));
    RUNNING.with(|r| r.set(None));
    result.unwrap_or_else(|payload| std::panic::resume_unwind(payload))
}

fn recovered() -> u32 {
    RECOVERED.with(Cell::get)
}

fn overflowing<S: Stack + 'static>(stack: S) -> Coroutine<(), (), i32, S> {
    Coroutine::with_stack(stack, |_: &Yielder<(), ()>, ()| recurse(0) as i32)
}

macro_rules! skip_under_valgrind {
    () => {
        if under_valgrind() {
            eprintln!("skipped under valgrind");
            return;
        }
    };
}

#[test]
fn stack_overflow_recovers_twice_on_the_same_stack() {
    skip_under_valgrind!();
    with_trap_handlers(|| {
        let stack = DefaultStack::new(64 * 1024).unwrap();
        let (base, limit) = (stack.base().get(), stack.limit().get());
        let mut co = overflowing(stack);
        assert_eq!(run(&mut co), CoroutineResult::Return(PROTECTION_FAULT));
        assert!(co.done());
        assert_eq!(recovered(), 1);
        // The fault was in the guard page, just below the limit.
        let fault = FAULT_ADDR.with(Cell::get);
        assert!(
            (limit - MIN_GUARD_SIZE..limit).contains(&fault),
            "fault at {fault:#x}, stack [{limit:#x}, {base:#x})"
        );
        // On Windows as a stack overflow, also after the stack grew on
        // demand to its limit.
        #[cfg(windows)]
        assert_eq!(FAULT_CODE.with(Cell::get), overflow_exception());

        let stack = co.into_stack();
        let mut co = overflowing(stack);
        assert_eq!(run(&mut co), CoroutineResult::Return(PROTECTION_FAULT));
        assert_eq!(recovered(), 2);
        // Again an overflow: the guard page was armed again.
        #[cfg(windows)]
        assert_eq!(FAULT_CODE.with(Cell::get), overflow_exception());

        // The stack still works normally afterwards.
        let stack = co.into_stack();
        let mut co: Coroutine<(), u32, i32, _> = Coroutine::with_stack(stack, |y, ()| {
            y.suspend(1);
            5
        });
        assert_eq!(run(&mut co), CoroutineResult::Yield(1));
        assert_eq!(run(&mut co), CoroutineResult::Return(5));
        assert_eq!(recovered(), 2);
    });
}

#[test]
fn an_8_kib_frame_overflows_an_8_kib_stack_and_traps() {
    // wasmer's backend::sys::tunables::tests::check_small_stack: a stack
    // of 8 KiB for the guest and a function with an 8 KiB frame, which
    // must come back as a trap, not run to completion.
    skip_under_valgrind!();
    with_trap_handlers(|| {
        let stack = DefaultStack::new(8 * 1024).unwrap();
        let (base, limit) = (stack.base().get(), stack.limit().get());
        let levels = levels_to_overflow(small_stack_size());
        let mut co: Coroutine<(), (), i32, _> =
            Coroutine::with_stack(stack, move |_, ()| frames_of_8_kib(levels) as i32);
        assert_eq!(run(&mut co), CoroutineResult::Return(PROTECTION_FAULT));
        assert_eq!(recovered(), 1);
        let fault = FAULT_ADDR.with(Cell::get);
        assert!(
            (limit - MIN_GUARD_SIZE..limit).contains(&fault),
            "fault at {fault:#x}, stack [{limit:#x}, {base:#x})"
        );
        #[cfg(windows)]
        assert_eq!(FAULT_CODE.with(Cell::get), overflow_exception());
        assert_eq!(base - limit, small_stack_size());
        // The same stack runs what fits in it.
        let mut co: Coroutine<(), (), i32, _> = Coroutine::with_stack(co.into_stack(), |_, ()| {
            let frame = black_box([2u8; 2048]);
            i32::from(black_box(&frame)[2047])
        });
        assert_eq!(run(&mut co), CoroutineResult::Return(2));
        assert_eq!(recovered(), 1);
    });
}

/// Unix only: on Windows an exception is dispatched on the faulting stack,
/// so a custom stack whose guard is a bare inaccessible page cannot have
/// its overflow handled (`DefaultStack` keeps room for the handlers below
/// its guard page; the rule checked here is the same code everywhere).
#[cfg(unix)]
mod below_the_guard {
    use super::*;
    use common::{make_inaccessible, page_size};
    use std::num::NonZeroUsize;
    use switchback::stack::StackPointer;

    /// A stack of a few pages with an inaccessible page below its limit and,
    /// below that, as many pages again filled with a pattern: whatever is
    /// written below the guard shows there.
    struct Canaried {
        _inner: DefaultStack,
        base: usize,
        limit: usize,
        canary: usize,
        canary_len: usize,
    }

    const CANARY: u8 = 0xa5;

    impl Canaried {
        fn new(pages: usize) -> Self {
            let page = page_size();
            let usable = pages * page;
            let inner = DefaultStack::new(2 * usable + page).unwrap();
            let base = inner.base().get();
            let limit = base - usable;
            let canary = limit - page - usable;
            assert!(inner.limit().get() <= canary);
            // SAFETY: the guard page and the canary pages belong to `inner`'s
            // read-write mapping, and nothing uses them.
            unsafe {
                make_inaccessible(limit - page, page);
                ptr::write_bytes(canary as *mut u8, CANARY, usable);
            }
            Self {
                _inner: inner,
                base,
                limit,
                canary,
                canary_len: usable,
            }
        }

        fn canary_intact(&self) -> bool {
            // SAFETY: the canary pages are read-write and ours, and nothing runs
            // on this stack now.
            let canary =
                unsafe { std::slice::from_raw_parts(self.canary as *const u8, self.canary_len) };
            canary.iter().all(|&b| b == CANARY)
        }
    }

    // SAFETY: [limit, base) is the top of the inner stack's read-write mapping,
    // used only through this object; the page below `limit` is inaccessible.
    unsafe impl Stack for Canaried {
        fn base(&self) -> StackPointer {
            NonZeroUsize::new(self.base).unwrap()
        }
        fn limit(&self) -> StackPointer {
            NonZeroUsize::new(self.limit).unwrap()
        }
    }

    /// Runs a coroutine whose closure captures `N` bytes on a [`Canaried`]
    /// stack of `pages` pages, if the closure-size rule takes it: it either
    /// runs or traps in the guard page, and never writes below the guard.
    /// Returns whether the rule took it.
    fn closure_of_on_canaried<const N: usize>(pages: usize) -> bool {
        let stack = Canaried::new(pages);
        let (base, limit) = (stack.base, stack.limit);
        let bytes = black_box([1u8; N]);
        let created = std::panic::catch_unwind(move || {
            Coroutine::with_stack(stack, move |_: &Yielder<(), ()>, ()| {
                black_box(&bytes).iter().map(|&b| i32::from(b)).sum::<i32>()
            })
        });
        let Ok(mut co) = created else {
            return false;
        };
        let before = recovered();
        match run(&mut co) {
            CoroutineResult::Return(sum) if sum == N as i32 => assert_eq!(recovered(), before),
            CoroutineResult::Return(PROTECTION_FAULT) => {
                let fault = FAULT_ADDR.with(Cell::get);
                assert!(
                    (limit - MIN_GUARD_SIZE..limit).contains(&fault),
                    "closure of {N} bytes: fault at {fault:#x}, stack [{limit:#x}, {base:#x})"
                );
            }
            other => panic!("closure of {N} bytes: {other:?}"),
        }
        let stack = co.into_stack();
        assert!(
            stack.canary_intact(),
            "a closure of {N} bytes wrote below the guard page"
        );
        true
    }

    #[test]
    fn the_closures_a_small_stack_takes_never_write_below_its_guard() {
        // The crate's own frames at the start of a coroutine (the closure is
        // copied into one of them) either fit or run into the guard page, even
        // where there are no stack probes (32-bit ARM, RISC-V, LoongArch): the
        // rule counts the copy. Were it not counted, a closure of 12 KiB on a
        // 16 KiB stack would put its copy 8 KiB below the limit, past the guard.
        skip_under_valgrind!();
        with_trap_handlers(|| {
            let one_page = [
                closure_of_on_canaried::<1024>(1),
                closure_of_on_canaried::<1536>(1),
                closure_of_on_canaried::<1920>(1),
                closure_of_on_canaried::<2016>(1),
                closure_of_on_canaried::<2048>(1),
                closure_of_on_canaried::<3072>(1),
            ];
            let four_pages = [
                closure_of_on_canaried::<6144>(4),
                closure_of_on_canaried::<7936>(4),
                closure_of_on_canaried::<8064>(4),
                closure_of_on_canaried::<8192>(4),
                closure_of_on_canaried::<12288>(4),
            ];
            assert!(one_page[0] && one_page[1], "{one_page:?}");
            assert!(four_pages[0], "{four_pages:?}");
            if page_size() == 4096 {
                // The crate keeps up to 512 bytes (depending on the target and
                // the features) beside twice the closure, so half the stack is
                // too big and half of what is left after 512 bytes fits.
                assert!(!one_page[4] && !one_page[5], "{one_page:?}");
                assert!(four_pages[1], "{four_pages:?}");
                assert!(!four_pages[3] && !four_pages[4], "{four_pages:?}");
            }
        });
    }
}

#[test]
fn stack_overflow_on_default_stack() {
    skip_under_valgrind!();
    with_trap_handlers(|| {
        let mut co: Coroutine<(), (), i32> = Coroutine::new(|_, ()| recurse(0) as i32);
        assert_eq!(run(&mut co), CoroutineResult::Return(PROTECTION_FAULT));
        assert_eq!(recovered(), 1);
    });
}

/// A fault address as the kernel reports it in `si_addr`: s390x reports
/// only the page (its translation-exception identification carries no byte
/// offset), every other architecture the exact address.
fn as_reported(addr: usize) -> usize {
    if cfg!(target_arch = "s390x") {
        addr & !4095
    } else {
        addr
    }
}

#[test]
fn write_to_invalid_address_recovers() {
    skip_under_valgrind!();
    with_trap_handlers(|| {
        let mut co: Coroutine<(), (), i32> = Coroutine::new(|_, ()| {
            let p = black_box(8usize) as *mut u8;
            // SAFETY: not safe at all: this faults, and the handler recovers.
            unsafe { ptr::write_volatile(p, 1) };
            0
        });
        assert_eq!(run(&mut co), CoroutineResult::Return(-1));
        assert_eq!(FAULT_ADDR.with(Cell::get), as_reported(8));
        assert_eq!(recovered(), 1);
    });
}

#[test]
fn write_to_inaccessible_page_after_suspends_recovers() {
    skip_under_valgrind!();
    with_trap_handlers(|| {
        let addr = os::inaccessible_page();
        let mut co: Coroutine<(), u32, i32> = Coroutine::new(move |y, ()| {
            // Suspend a few times first, so the link has been rewritten.
            for i in 0..3 {
                y.suspend(i);
            }
            // SAFETY: faults; the handler recovers.
            unsafe { ptr::write_volatile((addr + 100) as *mut u32, 7) };
            0
        });
        for i in 0..3 {
            assert_eq!(run(&mut co), CoroutineResult::Yield(i));
        }
        assert_eq!(run(&mut co), CoroutineResult::Return(PROTECTION_FAULT));
        assert_eq!(FAULT_ADDR.with(Cell::get), as_reported(addr + 100));
        os::release_page(addr);
    });
}

#[test]
fn touching_the_guard_page_directly_faults_and_recovers() {
    skip_under_valgrind!();
    with_trap_handlers(|| {
        let stack = DefaultStack::new(64 * 1024).unwrap();
        let guard = stack.limit().get() - MIN_GUARD_SIZE;
        let mut co: Coroutine<(), (), i32, _> = Coroutine::with_stack(stack, move |_, ()| {
            // SAFETY: faults on the guard page; the handler recovers.
            unsafe { ptr::read_volatile((guard + 64) as *const u8) as i32 }
        });
        assert_eq!(run(&mut co), CoroutineResult::Return(PROTECTION_FAULT));
        assert_eq!(FAULT_ADDR.with(Cell::get), as_reported(guard + 64));
        // Windows: the last guard page is only reserved while the stack's
        // moving guard page is higher up, so reading it is an access
        // violation (not a guard-page violation, which trap handlers do
        // not expect).
        #[cfg(windows)]
        assert_eq!(
            FAULT_CODE.with(Cell::get),
            windows_sys::Win32::Foundation::EXCEPTION_ACCESS_VIOLATION as i64
        );
    });
}

#[test]
#[cfg(unix)]
fn sigbus_recovers() {
    skip_under_valgrind!();
    with_trap_handlers(|| {
        // Accessing a file mapping beyond the end of the file raises SIGBUS.
        let path = std::env::temp_dir().join(format!("switchback-sigbus-{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        file.set_len(4096).unwrap();
        use std::os::fd::AsRawFd;
        // SAFETY: a fresh shared mapping of our own file.
        let map = unsafe {
            libc::mmap(
                ptr::null_mut(),
                8192,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(map, libc::MAP_FAILED);
        let addr = map as usize + 4096;
        let mut co: Coroutine<(), (), i32> = Coroutine::new(move |_, ()| {
            // SAFETY: beyond the end of the file: SIGBUS, which the handler
            // recovers from.
            unsafe { ptr::read_volatile(addr as *const i32) }
        });
        assert_eq!(run(&mut co), CoroutineResult::Return(-2));
        // SAFETY: unmapping our own mapping.
        unsafe { libc::munmap(map, 8192) };
        drop(file);
        let _ = std::fs::remove_file(path);
    });
}

#[test]
fn trap_in_scoped_coroutine_recovers() {
    skip_under_valgrind!();
    with_trap_handlers(|| {
        let mut stack = DefaultStack::new(64 * 1024).unwrap();
        let mut before = 0;
        let co = ScopedCoroutine::with_stack(&mut stack, |_: &Yielder<(), ()>, ()| {
            before += 1;
            recurse(0) as i32
        });
        let r = co.scope(|mut co| {
            RUNNING.with(|r| r.set(Some(co.trap_handler())));
            let r = co.as_mut().resume(());
            RUNNING.with(|r| r.set(None));
            assert!(co.done());
            r
        });
        assert_eq!(r, CoroutineResult::Return(PROTECTION_FAULT));
        assert_eq!(before, 1);
        // The borrowed stack is reusable.
        let co = ScopedCoroutine::with_stack(&mut stack, |_: &Yielder<(), ()>, ()| 3);
        assert_eq!(co.scope(|mut co| co.resume(())), CoroutineResult::Return(3));
    });
}

#[test]
fn trap_in_nested_coroutine_recovers_inner_only() {
    skip_under_valgrind!();
    with_trap_handlers(|| {
        let mut outer: Coroutine<(), (), i32> = Coroutine::new(|_, ()| {
            let mut inner = overflowing(DefaultStack::new(64 * 1024).unwrap());
            let saved = RUNNING.with(Cell::get);
            let r = run(&mut inner);
            RUNNING.with(|c| c.set(saved));
            r.as_return().unwrap() * 10
        });
        assert_eq!(
            run(&mut outer),
            CoroutineResult::Return(PROTECTION_FAULT * 10)
        );
        assert_eq!(recovered(), 1);
    });
}

#[test]
#[cfg(feature = "unwind")]
fn panic_in_recovery_closure_continues_from_resume() {
    skip_under_valgrind!();
    with_trap_handlers(|| {
        RECOVERY.with(|r| r.set(Recovery::Panic));
        let stack = DefaultStack::new(64 * 1024).unwrap();
        let mut co = overflowing(stack);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&mut co)));
        RECOVERY.with(|r| r.set(Recovery::Value));
        let payload = result.unwrap_err();
        let msg = payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            msg,
            format!("recovered from fault {OVERFLOW_CODE} by panicking")
        );
        assert!(co.done());
        // And the stack is still reusable.
        let mut co = overflowing(co.into_stack());
        assert_eq!(run(&mut co), CoroutineResult::Return(PROTECTION_FAULT));
    });
}

#[test]
fn stack_ptr_in_bounds_covers_the_stack_and_guard_only() {
    let stack = DefaultStack::new(64 * 1024).unwrap();
    let (base, limit) = (stack.base().get(), stack.limit().get());
    let co: Coroutine<(), (), i32, _> = Coroutine::with_stack(stack, |_, ()| 0);
    let h = co.trap_handler();
    assert!(h.stack_ptr_in_bounds(limit));
    assert!(h.stack_ptr_in_bounds(limit + 1));
    assert!(h.stack_ptr_in_bounds(base - 1));
    assert!(!h.stack_ptr_in_bounds(base));
    // An overflow leaves the stack pointer in the guard page below.
    assert!(h.stack_ptr_in_bounds(limit - 1));
    assert!(h.stack_ptr_in_bounds(limit - MIN_GUARD_SIZE));
    assert!(!h.stack_ptr_in_bounds(limit - MIN_GUARD_SIZE - 1));
    let local = 0u8;
    assert!(!h.stack_ptr_in_bounds(&local as *const u8 as usize));
    // It is Copy and Debug.
    let h2 = h;
    assert!(format!("{h2:?}").contains("CoroutineTrapHandler"));
    assert!(h.stack_ptr_in_bounds(base - 1));
}

/// corosensei 0.3.4's names for the Windows trap registers, destructured as
/// code written for corosensei does it (wasmer's Windows trap handler
/// writes them into the `CONTEXT` exactly so): with other names this does
/// not compile (E0026/E0027). The values must mean what the fields say, which
/// the recoveries above depend on; checked here on a real overflow.
#[cfg(all(windows, target_arch = "x86_64"))]
#[test]
fn trap_registers_have_corosensei_names_and_meanings() {
    use windows_sys::Win32::System::Diagnostics::Debug::CONTEXT;

    fn write_context(context: &mut CONTEXT, regs: TrapHandlerRegs) {
        let TrapHandlerRegs {
            rip,
            rsp,
            rbp,
            rdi,
            rsi,
        } = regs;
        context.Rip = rip;
        context.Rsp = rsp;
        context.Rbp = rbp;
        context.Rdi = rdi;
        context.Rsi = rsi;
    }

    skip_under_valgrind!();
    let (base, limit, regs) = overflow_and_take_registers();
    let TrapHandlerRegs {
        rip,
        rsp,
        rbp,
        rdi,
        rsi,
    } = regs;
    let in_stack = |value: u64| (limit..base).contains(&(value as usize));
    // rdi: the closure, 16-aligned at the top of the stack; rsi: the link,
    // above it; rsp: below the closure and its 32-byte shadow space, as at
    // a function entry; rbp: the machine frame, between the two.
    assert!(in_stack(rdi) && rdi % 16 == 0, "rdi {rdi:#x}");
    assert!(in_stack(rsi) && rsi > rdi, "rsi {rsi:#x}, rdi {rdi:#x}");
    assert_eq!(rsp, rdi - 40);
    assert!(in_stack(rbp) && rbp > rdi && rbp < rsi, "rbp {rbp:#x}");
    assert!(!in_stack(rip) && rip != 0);
    // SAFETY: an all-zero CONTEXT is a valid value to overwrite.
    let mut context: CONTEXT = unsafe { std::mem::zeroed() };
    write_context(&mut context, regs);
    assert_eq!((context.Rdi, context.Rsi, context.Rip), (rdi, rsi, rip));
}

/// As above, for 32-bit Windows: `eip, esp, ebp, eax, ebx, ecx, edx`.
#[cfg(all(windows, target_arch = "x86"))]
#[test]
fn trap_registers_have_corosensei_names_and_meanings() {
    use windows_sys::Win32::System::Diagnostics::Debug::CONTEXT;

    fn write_context(context: &mut CONTEXT, regs: TrapHandlerRegs) {
        let TrapHandlerRegs {
            eip,
            esp,
            ebp,
            eax,
            ebx,
            ecx,
            edx,
        } = regs;
        context.Eip = eip;
        context.Esp = esp;
        context.Ebp = ebp;
        context.Eax = eax;
        context.Ebx = ebx;
        context.Ecx = ecx;
        context.Edx = edx;
    }

    skip_under_valgrind!();
    let (base, limit, regs) = overflow_and_take_registers();
    let TrapHandlerRegs {
        eip,
        esp,
        ebp,
        eax,
        ebx,
        ecx,
        edx,
    } = regs;
    let in_stack = |value: u32| (limit..base).contains(&(value as usize));
    // eax: the closure, 16-aligned at the top of the stack; ebx: the link,
    // above it, and the frame pointer as in the root frame; esp: 8 below
    // the closure, where the trampoline pushes the call's frame; ecx and
    // edx: code addresses (the entry, the root's return label).
    assert!(in_stack(eax) && eax % 16 == 0, "eax {eax:#x}");
    assert!(in_stack(ebx) && ebx > eax, "ebx {ebx:#x}, eax {eax:#x}");
    assert_eq!(ebp, ebx);
    assert_eq!(esp, eax - 8);
    for code in [eip, ecx, edx] {
        assert!(!in_stack(code) && code != 0, "{code:#x}");
    }
    assert!(eip != ecx && ecx != edx && eip != edx);
    // SAFETY: an all-zero CONTEXT is a valid value to overwrite.
    let mut context: CONTEXT = unsafe { std::mem::zeroed() };
    write_context(&mut context, regs);
    assert_eq!((context.Eax, context.Ebx, context.Eip), (eax, ebx, eip));
}

/// Overflows a coroutine on a 64 KiB stack, recovers, and returns the
/// stack's base and limit and the registers of the recovery.
#[cfg(all(windows, any(target_arch = "x86_64", target_arch = "x86")))]
fn overflow_and_take_registers() -> (usize, usize, TrapHandlerRegs) {
    let mut out = None;
    with_trap_handlers(|| {
        let stack = DefaultStack::new(64 * 1024).unwrap();
        let (base, limit) = (stack.base().get(), stack.limit().get());
        LAST_REGS.with(|r| r.set(None));
        let mut co = overflowing(stack);
        assert_eq!(run(&mut co), CoroutineResult::Return(PROTECTION_FAULT));
        let regs = LAST_REGS.with(Cell::get).expect("no recovery");
        out = Some((base, limit, regs));
    });
    out.unwrap()
}
