//! The overflow report: the policy of the OS's guard-fault handler
//! (SIGSEGV/SIGBUS, installed by `os`), which names a coroutine stack
//! overflow (a fault in the guard page of a stack the crate made) and
//! aborts, and hands every other fault on unchanged.
//!
//! How it fits together (the system calls are `os`'s, the decisions
//! here):
//!
//! - The handler is installed once, the first time a thread uses a stack
//!   the crate made ([`prepare_thread`], called from `DefaultStack` and
//!   `PooledStack`), unless [`set_overflow_report`] turned it off first. It
//!   remembers the handlers it replaced (std's, usually) and passes them
//!   every fault that is not in one of the crate's guard pages (and those
//!   that are, first, on threads that take trap handlers). One thread
//!   reports and aborts; others that overflow meanwhile wait for it.
//! - The guard pages are found in the lock-free registry of the crate's
//!   stacks (`registry`), which the handler reads without locking or
//!   allocating.
//! - The handler needs an alternate signal stack (the overflowing stack
//!   has no room left). std gives the threads it spawns one while its own
//!   handler is installed; [`prepare_thread`] gives any thread that has
//!   none (threads made by C code, or when std's handler is not installed)
//!   one of its own, freed when the thread exits.
//! - Windows has no signals: there the handler is a vectored exception
//!   handler for `EXCEPTION_STACK_OVERFLOW`, added last in line (after
//!   std's, which prints its own one-line notice first, and after any added
//!   before it or first in line, such as trap handlers), that looks the
//!   faulting address up in the same registry and writes the same message.
//!   Windows runs it on the overflowing stack, in the room that stacks keep
//!   below their guard page for it.

use core::cell::Cell;
use core::mem;
use core::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use super::registry::{self, StackRange};
use crate::os::{self, GuardFaults};

/// Whether the report is wanted (see [`set_overflow_report`]).
static ENABLED: AtomicBool = AtomicBool::new(true);
/// Set once the handler is installed.
static INSTALLED: Once = Once::new();

/// Bytes of a thread name kept for the report; longer names are cut.
const NAME_LEN: usize = 64;

/// What the handler knows about its thread. No destructor, so the handler
/// can read it as plain thread-local memory.
struct ThreadInfo {
    name: Cell<[u8; NAME_LEN]>,
    name_len: Cell<usize>,
    /// Whether the thread has taken a `CoroutineTrapHandler`: a fault in a
    /// guard page then goes to the handler installed before this one
    /// first, which may recover from it (see [`GuardFaults`]; asked only
    /// on Unix, where handlers chain).
    traps: Cell<bool>,
}

std::thread_local! {
    /// Whether [`prepare_thread`] ran on this thread: the flag that every
    /// use of a crate stack checks.
    static READY: Cell<bool> = const { Cell::new(false) };
    static THREAD: ThreadInfo = const {
        ThreadInfo {
            name: Cell::new([0; NAME_LEN]),
            name_len: Cell::new(0),
            traps: Cell::new(false),
        }
    };
}

/// Turns the overflow report on or off for the whole process. It is on by
/// default wherever `std` is available.
///
/// With the report on, when code on a coroutine stack runs into the guard
/// page of a stack this crate made ([`DefaultStack`](super::DefaultStack)
/// or a [`StackPool`](super::StackPool) stack), the process prints
///
/// ```text
/// thread 'main' overflowed the stack of a coroutine (stack 0x7f3a5c1e1000-0x7f3a5c1f1000, 64 KiB)
/// ```
///
/// to stderr and aborts (`SIGABRT`), as std does when a thread overflows
/// its own stack, instead of dying of a bare "segmentation fault".
///
/// How it works: the first time a thread uses such a stack, a
/// `SIGSEGV`/`SIGBUS` handler is installed (once per process) and the
/// thread gets an alternate signal stack if it has none. A fault
/// anywhere else goes to the handler that was installed before (std's,
/// which reports a thread's own overflow, or the program's), or to the
/// default action, as if this handler were not there. A fault in one of
/// the crate's guard pages is reported at once. Only on a thread that has
/// taken a trap handler ([`Coroutine::trap_handler`](crate::Coroutine::trap_handler))
/// is the handler that was there before asked first, and the report
/// printed only if it gives up (leaves the signal's default action in
/// place, as std's does for faults it does not know): so a program that
/// installs its own handler to recover from coroutine overflows (the
/// [`trap`](crate::trap) module) keeps working, whether it installs it
/// before or after this one. (Elsewhere the handler before is std's, or one
/// that cannot recover from such a fault without a trap handler, and
/// asking it first would not be safe: std's gives up by setting the
/// default action back for the whole process, and another thread's fault
/// in that moment would end the process with a bare `SIGSEGV`.) A program
/// that recovers some other way (`siglongjmp`) installs its handler after
/// the first stack is used, so that it runs first.
///
/// If coroutines overflow on several threads at once, the first to fault
/// prints the report and aborts; the others wait in the handler for that
/// abort, so that the process prints one report and ends with `SIGABRT`.
/// (On a thread that takes trap handlers, where the handler before is
/// asked first and gives up by setting the default action, this handler
/// is put back at once; another thread's fault in between still meets the
/// default action.)
///
/// On Windows the handler is a vectored exception handler for
/// `EXCEPTION_STACK_OVERFLOW`, added last in line: std's handler runs
/// before it and prints its one-line `thread '<name>' has overflowed its
/// stack`, then this one names the coroutine stack and aborts (the first
/// thread to get there; as on Unix, any other waits for that abort).
/// Handlers added first in line (`AddVectoredExceptionHandler(1, ..)`, as
/// the trap example does) or before this one run first and may recover.
///
/// Turning it off before the first stack is used keeps the handler from
/// being installed at all; turning it off later makes the installed
/// handler pass every fault on. Turning it on again installs it if it was
/// never installed.
///
/// ```
/// // This program handles faults itself: no report wanted.
/// switchback::stack::set_overflow_report(false);
/// # switchback::stack::set_overflow_report(true);
/// ```
pub fn set_overflow_report(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
    if enabled && READY.with(Cell::get) {
        install();
    }
}

/// Makes the calling thread ready to report an overflow of a crate stack
/// it is about to run on: installs the handler (once per process) and
/// gives the thread an alternate signal stack if it has none. A
/// thread-local check after the first call.
#[inline(always)]
pub(crate) fn prepare_thread() {
    if !READY.with(Cell::get) {
        prepare_thread_slow();
    }
}

#[cold]
#[inline(never)]
fn prepare_thread_slow() {
    READY.with(|ready| ready.set(true));
    THREAD.with(|thread| {
        let mut name = [0u8; NAME_LEN];
        let current = std::thread::current();
        let text = current.name().unwrap_or("<unnamed>").as_bytes();
        let len = text.len().min(NAME_LEN);
        name[..len].copy_from_slice(&text[..len]);
        thread.name.set(name);
        thread.name_len.set(len);
    });
    os::ensure_alt_stack();
    if ENABLED.load(Ordering::Relaxed) {
        install();
    }
}

/// Records that the calling thread takes trap handlers
/// (`Coroutine::trap_handler`): from now on, a fault in a guard page on
/// this thread is offered to the handler that was installed before the
/// report's, which may recover from it, before it is reported (on Unix;
/// elsewhere nothing chains).
#[inline]
pub(crate) fn note_trap_handler() {
    let _ = THREAD.try_with(|thread| thread.traps.set(true));
}

/// Whether the calling thread takes trap handlers (see
/// [`note_trap_handler`]). Async-signal-safe: a read of thread-local memory
/// without a destructor.
fn thread_takes_traps() -> bool {
    THREAD
        .try_with(|thread| thread.traps.get())
        .unwrap_or(false)
}

/// Installs the OS's fault handler with this report as its policy, once.
fn install() {
    INSTALLED.call_once(os::install_fault_handler::<Report>);
}

/// The overflow report as the OS's fault handler asks it.
struct Report;

impl GuardFaults for Report {
    type Hit = StackRange;

    #[inline]
    fn guard_hit(addr: usize) -> Option<StackRange> {
        if ENABLED.load(Ordering::Relaxed) {
            registry::find(addr).filter(|range| range.guard <= addr && addr < range.limit)
        } else {
            None
        }
    }

    #[inline]
    fn overflow_hit(addr: usize) -> Option<StackRange> {
        if ENABLED.load(Ordering::Relaxed) {
            registry::find(addr)
        } else {
            None
        }
    }

    #[inline]
    fn thread_takes_traps() -> bool {
        thread_takes_traps()
    }

    fn report(hit: &StackRange) -> ! {
        report_and_abort(hit)
    }
}


/// Set by the first thread that reports an overflow.
static REPORTING: AtomicBool = AtomicBool::new(false);

/// Reports the overflow of `range` and aborts the process (with SIGABRT on
/// Unix). Only the first thread to get here reports; any other (its
/// coroutine overflowed at the same time) waits in its handler for that
/// abort, so that nothing it does can end the process first, and the
/// process prints one report. Async-signal-safe.
fn report_and_abort(range: &StackRange) -> ! {
    if REPORTING.swap(true, Ordering::AcqRel) {
        os::wait_forever();
    }
    write_report(range);
    os::abort_now()
}

/// A fixed buffer that formats without allocating.
struct Message {
    bytes: [u8; 256],
    len: usize,
}

impl Message {
    fn push(&mut self, text: &[u8]) {
        let room = self.bytes.len() - self.len;
        let take = text.len().min(room);
        self.bytes[self.len..self.len + take].copy_from_slice(&text[..take]);
        self.len += take;
    }

    fn push_number(&mut self, mut value: usize, radix: usize) {
        let mut digits = [0u8; 2 * mem::size_of::<usize>() * 4];
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b"0123456789abcdef"[value % radix];
            value /= radix;
            if value == 0 {
                break;
            }
        }
        self.push(&digits[at..]);
    }
}

/// Writes `thread '<name>' overflowed the stack of a coroutine (stack
/// 0x..-0x.., N KiB)` to stderr. Async-signal-safe.
fn write_report(range: &StackRange) {
    let mut message = Message {
        bytes: [0; 256],
        len: 0,
    };
    message.push(b"\nthread '");
    let name = THREAD.try_with(|thread| (thread.name.get(), thread.name_len.get()));
    match name {
        Ok((name, len)) if len != 0 => message.push(&name[..len]),
        _ => message.push(b"<unknown>"),
    }
    message.push(b"' overflowed the stack of a coroutine (stack 0x");
    message.push_number(range.limit, 16);
    message.push(b"-0x");
    message.push_number(range.base, 16);
    message.push(b", ");
    message.push_number((range.base - range.limit) / 1024, 10);
    message.push(b" KiB)\n");
    os::write_stderr(&message.bytes[..message.len]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_format_without_allocating() {
        let mut message = Message {
            bytes: [0; 256],
            len: 0,
        };
        message.push(b"0x");
        message.push_number(0x7f3a_5c1e, 16);
        message.push(b" ");
        message.push_number(0, 10);
        message.push(b" ");
        message.push_number(usize::MAX, 10);
        let text = core::str::from_utf8(&message.bytes[..message.len]).unwrap();
        assert_eq!(text, std::format!("0x7f3a5c1e 0 {}", usize::MAX));
    }
}
