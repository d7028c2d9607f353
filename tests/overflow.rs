//! The overflow report: an overflow of a coroutine stack the crate made
//! prints which thread and stack and aborts, while every other fault (a
//! thread's own overflow, a bad address) goes where it went before, with
//! the program's handlers installed before or after the report's.
//!
//! Each case runs in a child process (the test binary again, with an
//! environment variable naming the case), which writes what the report
//! should say to stderr as `expect: <thread> <limit> <base> <KiB>` before
//! it overflows.
//!
//! On Windows (a vectored exception handler) the first cases run too, with
//! "died" for "killed by the signal"; the cases about signal handlers
//! installed before and after, and alternate signal stacks, are Unix's.
#![cfg(all(any(unix, windows), feature = "default-stack"))]

use std::hint::black_box;
#[cfg(unix)]
use std::os::unix::process::ExitStatusExt;
use std::ptr;
#[cfg(unix)]
use std::sync::atomic::{AtomicUsize, Ordering};

use switchback::stack::{set_overflow_report, DefaultStack, Stack, StackPool};
use switchback::Coroutine;

mod common;
use common::{
    announce_overflow, expected_overflow_report, frames_of_8_kib, levels_to_overflow, recurse,
    run_child, small_stack_size, under_sanitizer, under_valgrind,
};

/// Runs a coroutine that overflows `stack`, after writing what the report
/// should say.
fn overflow_coroutine<S: Stack + 'static>(stack: S) -> ! {
    overflow_coroutine_with(stack, || recurse(0))
}

/// Runs a coroutine that overflows `stack` by calling `overflow`, after
/// writing what the report should say.
fn overflow_coroutine_with<S: Stack + 'static>(
    stack: S,
    overflow: impl FnOnce() -> u64 + 'static,
) -> ! {
    announce_overflow(stack.limit().get(), stack.base().get());
    let mut co: Coroutine<(), (), u64, S> = Coroutine::with_stack(stack, |_, ()| overflow());
    co.resume(());
    eprintln!("the overflow did not fault");
    std::process::exit(3);
}

/// Runs `child` in a child process when `var` is set, else runs the test
/// `test` in a child and returns how it ended and its stderr; `None` where
/// the check cannot run.
fn in_child(
    test: &str,
    var: &str,
    child: impl FnOnce(),
) -> Option<(Option<i32>, Option<i32>, String)> {
    if std::env::var_os(var).is_some() {
        child();
        std::process::exit(0);
    }
    if under_valgrind() || under_sanitizer() {
        // Valgrind reports the deliberate faults as errors; AddressSanitizer
        // handles SIGSEGV itself (and std then installs no handler).
        eprintln!("skipped under valgrind or a sanitizer");
        return None;
    }
    let (status, stderr) = run_child(test, var);
    #[cfg(unix)]
    let signal = status.signal();
    #[cfg(windows)]
    let signal = None;
    Some((status.code(), signal, stderr))
}

/// The signal an overflow or a bad access kills a process with by default
/// (a Windows process dies of the exception instead: no signal).
#[cfg(unix)]
const FAULT_SIGNAL: Option<i32> = Some(libc::SIGSEGV);
/// The signal the report aborts with.
#[cfg(unix)]
const ABORT_SIGNAL: Option<i32> = Some(libc::SIGABRT);
#[cfg(windows)]
const FAULT_SIGNAL: Option<i32> = None;
#[cfg(windows)]
const ABORT_SIGNAL: Option<i32> = None;

/// Asserts that the child died: of `signal` on Unix (no exit code); with
/// a failing exit code on Windows.
fn assert_died(code: Option<i32>, signal: Option<i32>, expected: Option<i32>, stderr: &str) {
    if cfg!(unix) {
        assert_eq!((code, signal), (None, expected), "{stderr}");
    } else {
        assert!(
            code.is_some_and(|code| code != 0),
            "exit code {code:?}: {stderr}"
        );
    }
}

fn assert_reported(result: Option<(Option<i32>, Option<i32>, String)>) {
    assert_reported_after(result, None);
}

/// [`assert_reported`], where the child's stderr also holds `marker` (a
/// test handler's words) if given.
fn assert_reported_after(result: Option<(Option<i32>, Option<i32>, String)>, marker: Option<&str>) {
    let Some((code, signal, stderr)) = result else {
        return;
    };
    if let Some(marker) = marker {
        assert!(stderr.contains(marker), "{marker:?} expected: {stderr}");
    }
    let expected = expected_overflow_report(&stderr);
    assert!(
        stderr.contains(&expected),
        "expected {expected:?} in the child's stderr: {stderr}"
    );
    assert_died(code, signal, ABORT_SIGNAL, &stderr);
}

#[test]
fn coroutine_stack_overflow_is_reported() {
    assert_reported(in_child(
        "coroutine_stack_overflow_is_reported",
        "SWITCHBACK_OVERFLOW_DEFAULT_STACK",
        || overflow_coroutine(DefaultStack::new(64 * 1024).unwrap()),
    ));
}

#[test]
fn an_8_kib_frame_on_an_8_kib_stack_is_reported() {
    // wasmer's check_small_stack without a trap handler: the overflow of a
    // small stack lands in its guard page like any other.
    assert_reported(in_child(
        "an_8_kib_frame_on_an_8_kib_stack_is_reported",
        "SWITCHBACK_OVERFLOW_SMALL_STACK",
        || {
            let stack = DefaultStack::new(8 * 1024).unwrap();
            let levels = levels_to_overflow(small_stack_size());
            overflow_coroutine_with(stack, move || u64::from(frames_of_8_kib(levels)))
        },
    ));
}

#[test]
fn a_one_page_stack_overflow_is_reported() {
    assert_reported(in_child(
        "a_one_page_stack_overflow_is_reported",
        "SWITCHBACK_OVERFLOW_ONE_PAGE",
        || overflow_coroutine(DefaultStack::new(1).unwrap()),
    ));
}

#[test]
fn pooled_stack_overflow_is_reported() {
    assert_reported(in_child(
        "pooled_stack_overflow_is_reported",
        "SWITCHBACK_OVERFLOW_POOLED_STACK",
        || {
            let pool = StackPool::new(128 * 1024).unwrap();
            // A stack that already served a coroutine, from the thread's
            // cache.
            let mut co: Coroutine<(), (), u8, _> = Coroutine::with_pool(&pool, |_, ()| 1);
            co.resume(());
            drop(co);
            overflow_coroutine(pool.get().unwrap())
        },
    ));
}

/// Runs a coroutine to completion, so that the report's handler is
/// installed.
fn use_a_stack() {
    let mut co: Coroutine<(), (), u8> = Coroutine::new(|_, ()| 1);
    co.resume(());
}

#[test]
fn a_threads_own_overflow_is_left_to_std() {
    let result = in_child(
        "a_threads_own_overflow_is_left_to_std",
        "SWITCHBACK_OVERFLOW_THREAD",
        || {
            use_a_stack();
            let thread = std::thread::Builder::new()
                .name("small".into())
                .stack_size(256 * 1024)
                .spawn(|| {
                    use_a_stack();
                    recurse(0)
                })
                .unwrap();
            let _ = thread.join();
        },
    );
    let Some((code, signal, stderr)) = result else {
        return;
    };
    // std's message: "thread 'small' (<id>) has overflowed its stack".
    assert!(
        stderr.contains("thread 'small'") && stderr.contains("has overflowed its stack"),
        "std's message expected: {stderr}"
    );
    assert!(!stderr.contains("stack of a coroutine"), "{stderr}");
    assert_died(code, signal, ABORT_SIGNAL, &stderr);
}

#[test]
fn other_faults_keep_their_default_action() {
    let result = in_child(
        "other_faults_keep_their_default_action",
        "SWITCHBACK_OVERFLOW_OTHER_FAULT",
        || {
            use_a_stack();
            // SAFETY: deliberately faults: nothing is mapped at address 8.
            unsafe { ptr::write_volatile(black_box(8usize) as *mut u64, 1) };
        },
    );
    let Some((code, signal, stderr)) = result else {
        return;
    };
    assert!(!stderr.contains("overflowed"), "{stderr}");
    assert_died(code, signal, FAULT_SIGNAL, &stderr);
}

#[test]
fn no_report_when_turned_off() {
    let result = in_child(
        "no_report_when_turned_off",
        "SWITCHBACK_OVERFLOW_OFF",
        || {
            set_overflow_report(false);
            overflow_coroutine(DefaultStack::new(64 * 1024).unwrap())
        },
    );
    let Some((code, signal, stderr)) = result else {
        return;
    };
    assert!(!stderr.contains("stack of a coroutine"), "{stderr}");
    assert_died(code, signal, FAULT_SIGNAL, &stderr);
}

/// Threads that overflow a coroutine stack each, all at once.
const OVERFLOWING_THREADS: usize = 8;

/// The child of `simultaneous_overflows_are_reported_once`: eight threads,
/// released together by a barrier, each overflow a coroutine's stack.
fn overflow_on_many_threads_at_once() {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(OVERFLOWING_THREADS));
    let threads: Vec<_> = (0..OVERFLOWING_THREADS)
        .map(|index| {
            let barrier = barrier.clone();
            std::thread::Builder::new()
                .name(format!("overflow-{index}"))
                .spawn(move || {
                    let stack = DefaultStack::new(64 * 1024).unwrap();
                    let mut co: Coroutine<(), (), u64, _> =
                        Coroutine::with_stack(stack, |_, ()| recurse(0));
                    barrier.wait();
                    co.resume(());
                })
                .unwrap()
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
    eprintln!("no overflow faulted");
    std::process::exit(3);
}

#[test]
fn simultaneous_overflows_are_reported_once() {
    // Each run is a new child process: the race is between the threads'
    // faults, so it takes a few runs to show.
    const RUNS: usize = 40;
    let mut failures = Vec::new();
    for _ in 0..RUNS {
        let Some((code, signal, stderr)) = in_child(
            "simultaneous_overflows_are_reported_once",
            "SWITCHBACK_OVERFLOW_MANY_THREADS",
            overflow_on_many_threads_at_once,
        ) else {
            return;
        };
        let reports = stderr
            .matches("' overflowed the stack of a coroutine (stack 0x")
            .count();
        let died_as_expected = if cfg!(unix) {
            (code, signal) == (None, ABORT_SIGNAL)
        } else {
            code.is_some_and(|code| code != 0)
        };
        if reports != 1 || !stderr.contains("\nthread 'overflow-") || !died_as_expected {
            failures.push(format!(
                "exit code {code:?}, signal {signal:?}, {reports} reports: {stderr}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {RUNS} runs did not end with one report and an abort; the first:\n{}",
        failures.len(),
        failures[0]
    );
}

#[cfg(unix)]
mod signals {
    //! The report beside the program's own signal handlers.
    use super::*;
    use std::mem;

    /// The action a test handler replaced, to chain to.
    static SAVED: AtomicUsize = AtomicUsize::new(0);
    static SAVED_FLAGS: AtomicUsize = AtomicUsize::new(0);

    fn write_stderr(text: &str) {
        // SAFETY: async-signal-safe write of a static string.
        unsafe { libc::write(2, text.as_ptr().cast(), text.len()) };
    }

    /// A handler installed before the report's: gives up like std's does
    /// for faults it does not know (default action, return).
    extern "C" fn giving_up(signal: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
        write_stderr("earlier handler ran\n");
        // SAFETY: resetting to the default action.
        unsafe { libc::signal(signal, libc::SIG_DFL) };
    }

    /// A handler installed after the report's that passes faults on to the
    /// one it replaced.
    extern "C" fn chaining(
        signal: libc::c_int,
        info: *mut libc::siginfo_t,
        context: *mut libc::c_void,
    ) {
        write_stderr("later handler ran\n");
        let saved = SAVED.load(Ordering::Relaxed);
        if saved == libc::SIG_DFL || saved == libc::SIG_IGN {
            // SAFETY: resetting to the default action.
            unsafe { libc::signal(signal, libc::SIG_DFL) };
        } else if SAVED_FLAGS.load(Ordering::Relaxed) & libc::SA_SIGINFO as usize != 0 {
            // SAFETY: the saved SA_SIGINFO handler, with the kernel's arguments.
            let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                unsafe { mem::transmute(saved) };
            handler(signal, info, context);
        }
    }

    /// A handler installed after the report's that ends the process itself.
    extern "C" fn exiting(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(42) };
    }

    /// Installs `handler` for SIGSEGV and SIGBUS and saves what it replaced.
    fn install(handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)) {
        // SAFETY: plain sigaction calls with initialized structures.
        unsafe {
            let mut action: libc::sigaction = mem::zeroed();
            action.sa_sigaction = handler as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            for signal in [libc::SIGSEGV, libc::SIGBUS] {
                let mut old: libc::sigaction = mem::zeroed();
                assert_eq!(libc::sigaction(signal, &action, &mut old), 0);
                if signal == libc::SIGSEGV {
                    SAVED.store(old.sa_sigaction, Ordering::Relaxed);
                    SAVED_FLAGS.store(old.sa_flags as usize, Ordering::Relaxed);
                }
            }
        }
    }

    /// Runs, in a child, a coroutine that overflows a `DefaultStack` with
    /// `handler` installed before the report's handler (`before`) or after it.
    fn overflow_with_handler(
        test: &str,
        var: &str,
        handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void),
        before: bool,
    ) -> Option<(Option<i32>, Option<i32>, String)> {
        in_child(test, var, || {
            if !before {
                use_a_stack();
            }
            install(handler);
            overflow_coroutine(DefaultStack::new(64 * 1024).unwrap())
        })
    }

    #[test]
    fn reported_without_asking_a_handler_installed_before() {
        // On a thread that takes no trap handler, nothing can recover from
        // a guard-page fault: the earlier handler (std's, usually) is not
        // asked.
        let result = overflow_with_handler(
            "signals::reported_without_asking_a_handler_installed_before",
            "SWITCHBACK_OVERFLOW_BEFORE",
            giving_up,
            true,
        );
        if let Some((_, _, stderr)) = &result {
            assert!(!stderr.contains("earlier handler ran"), "{stderr}");
        }
        assert_reported(result);
    }

    #[test]
    fn reported_after_an_earlier_handler_gives_up_with_traps() {
        let result = in_child(
            "signals::reported_after_an_earlier_handler_gives_up_with_traps",
            "SWITCHBACK_OVERFLOW_BEFORE_TRAPS",
            || {
                install(giving_up);
                // The thread takes trap handlers: the earlier handler may
                // be one that recovers, so it is asked first.
                let other: Coroutine<(), (), ()> = Coroutine::new(|_, ()| ());
                let _ = other.trap_handler();
                overflow_coroutine(DefaultStack::new(64 * 1024).unwrap())
            },
        );
        assert_reported_after(result, Some("earlier handler ran"));
    }

    #[test]
    fn reported_through_a_handler_installed_after_that_chains() {
        let result = overflow_with_handler(
            "signals::reported_through_a_handler_installed_after_that_chains",
            "SWITCHBACK_OVERFLOW_AFTER_CHAINING",
            chaining,
            false,
        );
        assert_reported_after(result, Some("later handler ran"));
    }

    #[test]
    fn a_handler_installed_after_decides_alone() {
        let result = overflow_with_handler(
            "signals::a_handler_installed_after_decides_alone",
            "SWITCHBACK_OVERFLOW_AFTER_EXITING",
            exiting,
            false,
        );
        let Some((code, _, stderr)) = result else {
            return;
        };
        assert!(!stderr.contains("stack of a coroutine"), "{stderr}");
        assert_eq!(code, Some(42), "{stderr}");
    }

    #[test]
    fn reported_on_a_thread_without_an_alternate_signal_stack() {
        extern "C" fn thread_main(_: *mut libc::c_void) -> *mut libc::c_void {
            // SAFETY: querying this thread's alternate stack into a local.
            let had_one = unsafe {
                let mut current: libc::stack_t = mem::zeroed();
                libc::sigaltstack(ptr::null(), &mut current);
                current.ss_flags & libc::SS_DISABLE == 0
            };
            eprintln!("alternate stack before: {had_one}");
            overflow_coroutine(DefaultStack::new(64 * 1024).unwrap())
        }
        let result = in_child(
            "signals::reported_on_a_thread_without_an_alternate_signal_stack",
            "SWITCHBACK_OVERFLOW_FOREIGN_THREAD",
            || {
                // A thread made by C code: std gave it no alternate stack.
                // SAFETY: a plain pthread with default attributes, joined.
                unsafe {
                    let mut thread: libc::pthread_t = mem::zeroed();
                    assert_eq!(
                        libc::pthread_create(
                            &mut thread,
                            ptr::null(),
                            thread_main,
                            ptr::null_mut()
                        ),
                        0
                    );
                    libc::pthread_join(thread, ptr::null_mut());
                }
            },
        );
        assert_reported_after(result, Some("alternate stack before: false"));
    }
}
