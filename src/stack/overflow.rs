//! The overflow report: a SIGSEGV/SIGBUS handler that names a coroutine
//! stack overflow (a fault in the guard page of a stack the crate made)
//! and aborts, and hands every other fault on unchanged.
//!
//! How it fits together:
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
#[cfg(unix)]
use core::cell::UnsafeCell;
use core::mem;
#[cfg(unix)]
use core::mem::MaybeUninit;
#[cfg(unix)]
use core::ptr;
use core::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

#[cfg(unix)]
use super::mapping::page_size;
use super::registry::{self, StackRange};

/// Whether the report is wanted (see [`set_overflow_report`]).
static ENABLED: AtomicBool = AtomicBool::new(true);
/// Set once the handler is installed.
static INSTALLED: Once = Once::new();

/// The actions the handler replaced, for SIGSEGV and SIGBUS, written once
/// before the handler is installed and only read afterwards.
#[cfg(unix)]
struct Previous(UnsafeCell<[MaybeUninit<libc::sigaction>; 2]>);

// SAFETY: written only inside `INSTALLED.call_once`, before the handler
// that reads it is installed (the `sigaction` system call orders the
// two); read-only afterwards.
#[cfg(unix)]
unsafe impl Sync for Previous {}

#[cfg(unix)]
static PREVIOUS: Previous = Previous(UnsafeCell::new([MaybeUninit::uninit(); 2]));

#[cfg(unix)]
const SIGNALS: [libc::c_int; 2] = [libc::SIGSEGV, libc::SIGBUS];

/// Bytes of a thread name kept for the report; longer names are cut.
const NAME_LEN: usize = 64;

/// What the handler knows about its thread. No destructor, so the handler
/// can read it as plain thread-local memory.
struct ThreadInfo {
    name: Cell<[u8; NAME_LEN]>,
    name_len: Cell<usize>,
    /// Whether the thread has taken a `CoroutineTrapHandler`: a fault in a
    /// guard page then goes to the handler installed before this one
    /// first, which may recover from it (see `on_fault`).
    #[cfg(unix)]
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
            #[cfg(unix)]
            traps: Cell::new(false),
        }
    };
    /// The alternate signal stack this crate gave the thread, if any;
    /// its destructor frees it when the thread exits.
    #[cfg(unix)]
    static ALT_STACK: AltStack = const { AltStack { mapping: Cell::new(None) } };
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
    #[cfg(unix)]
    ensure_alt_stack();
    if ENABLED.load(Ordering::Relaxed) {
        install();
    }
}

/// Records that the calling thread takes trap handlers
/// (`Coroutine::trap_handler`): from now on, a fault in a guard page on
/// this thread is offered to the handler that was installed before the
/// report's, which may recover from it, before it is reported.
#[cfg(unix)]
#[inline]
pub(crate) fn note_trap_handler() {
    let _ = THREAD.try_with(|thread| thread.traps.set(true));
}

/// Whether the calling thread takes trap handlers (see
/// [`note_trap_handler`]). Async-signal-safe: a read of thread-local memory
/// without a destructor.
#[cfg(unix)]
fn thread_takes_traps() -> bool {
    THREAD
        .try_with(|thread| thread.traps.get())
        .unwrap_or(false)
}

/// This handler's action.
#[cfg(unix)]
fn our_action() -> libc::sigaction {
    // SAFETY: an all-zero sigaction is a valid value; the handler has the
    // SA_SIGINFO signature; `sa_mask` is initialized by sigemptyset.
    unsafe {
        let mut action: libc::sigaction = mem::zeroed();
        action.sa_sigaction = on_fault as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut action.sa_mask);
        action
    }
}

/// Installs the handler for SIGSEGV and SIGBUS, once.
#[cfg(unix)]
fn install() {
    INSTALLED.call_once(|| {
        let previous = PREVIOUS.0.get().cast::<MaybeUninit<libc::sigaction>>();
        let action = our_action();
        for (index, signal) in SIGNALS.into_iter().enumerate() {
            // SAFETY: `action` is initialized; `previous` is written only
            // here, before the handler that reads it is installed.
            unsafe {
                let slot = (*previous.add(index)).as_mut_ptr();
                if libc::sigaction(signal, ptr::null(), slot) != 0 {
                    continue;
                }
                libc::sigaction(signal, &action, ptr::null_mut());
            }
        }
    });
}

/// An alternate signal stack this crate mapped for a thread: its mapping
/// (guard page included) and length.
#[cfg(unix)]
struct AltStack {
    mapping: Cell<Option<(usize, usize)>>,
}

/// Usable bytes of the alternate signal stacks this crate makes: room for
/// this handler and for the handler it passes faults to.
#[cfg(unix)]
const ALT_STACK_SIZE: usize = 64 * 1024;

/// Gives the calling thread an alternate signal stack if it has none.
#[cfg(unix)]
fn ensure_alt_stack() {
    // SAFETY: querying the current alternate stack into a local.
    let current = unsafe {
        let mut current: libc::stack_t = mem::zeroed();
        if libc::sigaltstack(ptr::null(), &mut current) != 0 {
            return;
        }
        current
    };
    if current.ss_flags & libc::SS_DISABLE == 0 {
        return;
    }
    let page = page_size();
    let len = ALT_STACK_SIZE + page;
    // SAFETY: a fresh anonymous mapping; its lowest page becomes a guard,
    // and the rest is handed to the kernel as this thread's alternate
    // signal stack until the thread exits (`AltStack::drop`).
    unsafe {
        let mapping = libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANON,
            -1,
            0,
        );
        if mapping == libc::MAP_FAILED {
            return;
        }
        let stack = libc::stack_t {
            ss_sp: mapping.cast::<u8>().add(page).cast(),
            ss_flags: 0,
            ss_size: ALT_STACK_SIZE,
        };
        if libc::mprotect(mapping, page, libc::PROT_NONE) != 0
            || libc::sigaltstack(&stack, ptr::null_mut()) != 0
        {
            libc::munmap(mapping, len);
            return;
        }
        let _ = ALT_STACK.try_with(|alt| alt.mapping.set(Some((mapping as usize, len))));
    }
}

#[cfg(unix)]
impl Drop for AltStack {
    fn drop(&mut self) {
        let Some((mapping, len)) = self.mapping.get() else {
            return;
        };
        // SAFETY: the thread is exiting; if its alternate stack is still
        // ours, it is disabled before being unmapped (no signal handler
        // runs on it now: this code runs on the thread's own stack).
        unsafe {
            let mut current: libc::stack_t = mem::zeroed();
            if libc::sigaltstack(ptr::null(), &mut current) != 0 {
                return;
            }
            if current.ss_sp as usize != mapping + page_size() {
                // Replaced by someone else since: leave it mapped, it may
                // still be in use.
                return;
            }
            let disable = libc::stack_t {
                ss_sp: ptr::null_mut(),
                ss_flags: libc::SS_DISABLE,
                ss_size: 0,
            };
            if libc::sigaltstack(&disable, ptr::null_mut()) == 0 {
                libc::munmap(mapping as *mut libc::c_void, len);
            }
        }
    }
}

/// The registered stack whose guard page holds `addr`.
#[cfg(unix)]
fn guard_hit(addr: usize) -> Option<StackRange> {
    registry::find(addr).filter(|range| range.guard <= addr && addr < range.limit)
}

/// The action that was installed for `signal` before ours.
#[cfg(unix)]
fn previous(signal: libc::c_int) -> Option<&'static libc::sigaction> {
    let index = SIGNALS.iter().position(|&s| s == signal)?;
    // SAFETY: the handler is only installed (and so this only called)
    // after `install` wrote both entries; they are read-only since.
    Some(unsafe { (*PREVIOUS.0.get())[index].assume_init_ref() })
}

/// Whether `action` is a function (not the default or ignore).
#[cfg(unix)]
fn is_function(action: &libc::sigaction) -> bool {
    action.sa_sigaction != libc::SIG_DFL && action.sa_sigaction != libc::SIG_IGN
}

/// Calls the handler function of `action` as the kernel would have (but
/// on this handler's stack and with this handler's signal mask, not the
/// ones `action` asked for).
///
/// # Safety
/// `action` must hold a handler function (see [`is_function`]) and the
/// arguments must be the ones the kernel passed to ours.
#[cfg(unix)]
unsafe fn call(
    action: &libc::sigaction,
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    if action.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: an SA_SIGINFO action holds a three-argument handler.
        let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { mem::transmute(action.sa_sigaction) };
        handler(signal, info, context);
    } else {
        // SAFETY: otherwise it holds a one-argument handler.
        let handler: extern "C" fn(libc::c_int) = unsafe { mem::transmute(action.sa_sigaction) };
        handler(signal);
    }
}

/// Sets `signal`'s action back to the default.
#[cfg(unix)]
fn reset_to_default(signal: libc::c_int) {
    // SAFETY: installing the default action; `action` is initialized.
    unsafe {
        let mut action: libc::sigaction = mem::zeroed();
        action.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(signal, &action, ptr::null_mut());
    }
}

/// Whether `signal`'s action is the default one now.
#[cfg(unix)]
fn is_default_now(signal: libc::c_int) -> bool {
    // SAFETY: querying into a local.
    unsafe {
        let mut current: libc::sigaction = mem::zeroed();
        libc::sigaction(signal, ptr::null(), &mut current) == 0
            && current.sa_sigaction == libc::SIG_DFL
    }
}

/// The handler. Async-signal-safe: it reads the registry and thread-local
/// memory, and calls `sigaction`, `write`, `pause`, `raise` and `abort`.
///
/// A fault in one of the crate's guard pages is reported at once, without
/// asking the handler that was installed before: that is std's, usually,
/// which gives up on any fault outside its own thread's guard page by
/// setting the default action back for the whole process and returning,
/// and a fault of another thread in that moment (several coroutines
/// overflowing at once) would kill the process with a bare SIGSEGV before
/// the report. Only on a thread that takes trap handlers is the previous
/// handler asked first, as it may recover.
#[cfg(unix)]
extern "C" fn on_fault(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler;
    // `si_addr` means something only for a fault the kernel raised
    // (positive `si_code`), not for a signal sent with `kill` or `raise`.
    let addr = unsafe { ((*info).si_code > 0).then(|| (*info).si_addr() as usize) };
    let previous = previous(signal).filter(|action| is_function(action));
    let hit = match addr {
        Some(addr) if ENABLED.load(Ordering::Relaxed) => guard_hit(addr),
        _ => None,
    };
    if let Some(range) = hit {
        if let Some(action) = previous.filter(|_| thread_takes_traps()) {
            // Ask the handler that was there first (it may recover from
            // the fault, as trap handlers do).
            // SAFETY: it is a function, called with the kernel's
            // arguments.
            unsafe { call(action, signal, info, context) };
            if !is_default_now(signal) {
                // It dealt with the fault (or installed something else to).
                return;
            }
            // It gave up and left the default action, for every thread:
            // put this handler back at once, so that other threads' faults
            // from now on wait for the report below instead of killing the
            // process first.
            let ours = our_action();
            // SAFETY: installing this handler's action, initialized.
            unsafe { libc::sigaction(signal, &ours, ptr::null_mut()) };
        }
        report_and_abort(&range);
    }
    match previous {
        // SAFETY: a function, called with the kernel's arguments.
        Some(action) => unsafe { call(action, signal, info, context) },
        // As if we were not there: the default action, which the faulting
        // instruction meets when it runs again.
        None => reset_to_default(signal),
    }
}

/// Set by the first thread that reports an overflow.
static REPORTING: AtomicBool = AtomicBool::new(false);

/// Reports the overflow of `range` and aborts the process with SIGABRT.
/// Only the first thread to get here reports; any other (its coroutine
/// overflowed at the same time) waits in its handler for that abort, so
/// that nothing it does can end the process first. Async-signal-safe.
#[cfg(unix)]
fn report_and_abort(range: &StackRange) -> ! {
    if REPORTING.swap(true, Ordering::AcqRel) {
        loop {
            // SAFETY: pause is async-signal-safe; it returns only after a
            // signal handler ran, and then waits again.
            unsafe { libc::pause() };
        }
    }
    write_report(range);
    // Nothing must turn this abort into something else: SIGABRT gets its
    // default action and is unblocked on this thread before it is raised.
    reset_to_default(libc::SIGABRT);
    // SAFETY: sigemptyset, sigaddset, pthread_sigmask, raise and abort are
    // async-signal-safe; the set is initialized before use.
    unsafe {
        let mut abort_only = MaybeUninit::<libc::sigset_t>::uninit();
        libc::sigemptyset(abort_only.as_mut_ptr());
        libc::sigaddset(abort_only.as_mut_ptr(), libc::SIGABRT);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, abort_only.as_ptr(), ptr::null_mut());
        libc::raise(libc::SIGABRT);
        libc::abort()
    }
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
    write_stderr(&message.bytes[..message.len]);
}

/// Writes `bytes` to stderr with the system call itself (no lock, no
/// allocation).
#[cfg(unix)]
fn write_stderr(bytes: &[u8]) {
    let mut written = 0;
    while written < bytes.len() {
        // SAFETY: writing our own buffer to stderr.
        let n = unsafe {
            libc::write(
                libc::STDERR_FILENO,
                bytes[written..].as_ptr().cast(),
                bytes.len() - written,
            )
        };
        if n <= 0 {
            break;
        }
        written += n as usize;
    }
}

/// Writes `bytes` to the process's standard error handle.
#[cfg(windows)]
fn write_stderr(bytes: &[u8]) {
    use windows_sys::Win32::Storage::FileSystem::WriteFile;
    use windows_sys::Win32::System::Console::{GetStdHandle, STD_ERROR_HANDLE};
    let mut written = 0;
    while written < bytes.len() {
        let mut n = 0u32;
        let len = (bytes.len() - written).min(u32::MAX as usize) as u32;
        // SAFETY: writing our own buffer to the standard error handle
        // (WriteFile fails harmlessly if there is none).
        let ok = unsafe {
            WriteFile(
                GetStdHandle(STD_ERROR_HANDLE),
                bytes[written..].as_ptr(),
                len,
                &mut n,
                core::ptr::null_mut(),
            )
        };
        if ok == 0 || n == 0 {
            break;
        }
        written += n as usize;
    }
}

/// Adds the vectored exception handler, once, last in line.
#[cfg(windows)]
fn install() {
    use windows_sys::Win32::System::Diagnostics::Debug::AddVectoredExceptionHandler;
    INSTALLED.call_once(|| {
        // SAFETY: the handler has the signature Windows expects and reads
        // only the registry, thread-local memory and the exception record.
        unsafe { AddVectoredExceptionHandler(0, Some(on_exception)) };
    });
}

/// The vectored exception handler: reports an `EXCEPTION_STACK_OVERFLOW`
/// at an address in one of the crate's stacks and aborts; passes everything
/// else on.
#[cfg(windows)]
unsafe extern "system" fn on_exception(
    info: *mut windows_sys::Win32::System::Diagnostics::Debug::EXCEPTION_POINTERS,
) -> i32 {
    use windows_sys::Win32::Foundation::EXCEPTION_STACK_OVERFLOW;
    use windows_sys::Win32::System::Diagnostics::Debug::EXCEPTION_CONTINUE_SEARCH;
    use windows_sys::Win32::System::Threading::{Sleep, INFINITE};
    // SAFETY: Windows passes a valid exception record.
    let record = unsafe { &*(*info).ExceptionRecord };
    if record.ExceptionCode != EXCEPTION_STACK_OVERFLOW
        || record.NumberParameters < 2
        || !ENABLED.load(Ordering::Relaxed)
    {
        return EXCEPTION_CONTINUE_SEARCH;
    }
    // The second parameter is the faulting address: in the last guard page
    // under Wine, which raises the overflow when the guard page that moves
    // down with the stack reaches it. Where Windows gives up is not
    // documented (the size of its guard region follows
    // `GuaranteedStackBytes`), so anywhere in the stack counts.
    match registry::find(record.ExceptionInformation[1]) {
        Some(range) => {
            if REPORTING.swap(true, Ordering::AcqRel) {
                // Another thread's coroutine overflowed at the same time
                // and is reporting: wait for its abort, so that there is
                // one report.
                loop {
                    // SAFETY: Sleep has no preconditions.
                    unsafe { Sleep(INFINITE) };
                }
            }
            write_report(&range);
            std::process::abort()
        }
        None => EXCEPTION_CONTINUE_SEARCH,
    }
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
