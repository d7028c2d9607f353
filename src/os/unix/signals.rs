//! Signals on Unix: the guard-fault handler (SIGSEGV, SIGBUS) that
//! chains to the handlers it replaced, the alternate signal stack it runs
//! on, and the async-signal-safe ways out (stderr, waiting, SIGABRT).

use core::cell::{Cell, UnsafeCell};
use core::mem::{self, MaybeUninit};
use core::ptr;

use super::memory::page_size;
use crate::os::GuardFaults;

/// The actions the fault handler replaced, for SIGSEGV and SIGBUS,
/// written once before the handler is installed and only read afterwards.
struct Previous(UnsafeCell<[MaybeUninit<libc::sigaction>; 2]>);

// SAFETY: written only by `install_fault_handler`, once, before the
// handler that reads it is installed (the `sigaction` system call orders
// the two); read-only afterwards.
unsafe impl Sync for Previous {}

static PREVIOUS: Previous = Previous(UnsafeCell::new([MaybeUninit::uninit(); 2]));

/// The signals a guard-page fault raises.
const SIGNALS: [libc::c_int; 2] = [libc::SIGSEGV, libc::SIGBUS];

/// The fault handler's action for the policy `P`.
fn our_action<P: GuardFaults>() -> libc::sigaction {
    // SAFETY: an all-zero sigaction is a valid value; the handler has the
    // SA_SIGINFO signature; `sa_mask` is initialized by sigemptyset.
    unsafe {
        let mut action: libc::sigaction = mem::zeroed();
        action.sa_sigaction = on_fault::<P> as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut action.sa_mask);
        action
    }
}

/// Installs the fault handler of the policy `P` for SIGSEGV and SIGBUS,
/// remembering the actions it replaces. The caller calls this once per
/// process.
pub(crate) fn install_fault_handler<P: GuardFaults>() {
    let previous = PREVIOUS.0.get().cast::<MaybeUninit<libc::sigaction>>();
    let action = our_action::<P>();
    for (index, signal) in SIGNALS.into_iter().enumerate() {
        // SAFETY: `action` is initialized; `previous` is written only here,
        // once, before the handler that reads it is installed.
        unsafe {
            let slot = (*previous.add(index)).as_mut_ptr();
            if libc::sigaction(signal, ptr::null(), slot) != 0 {
                continue;
            }
            libc::sigaction(signal, &action, ptr::null_mut());
        }
    }
}

/// The action that was installed for `signal` before ours.
fn previous(signal: libc::c_int) -> Option<&'static libc::sigaction> {
    let index = SIGNALS.iter().position(|&s| s == signal)?;
    // SAFETY: the handler is only installed (and so this only called)
    // after `install_fault_handler` wrote both entries; they are read-only
    // since.
    Some(unsafe { (*PREVIOUS.0.get())[index].assume_init_ref() })
}

/// Whether `action` is a function (not the default or ignore).
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
fn is_default_now(signal: libc::c_int) -> bool {
    // SAFETY: querying into a local.
    unsafe {
        let mut current: libc::sigaction = mem::zeroed();
        libc::sigaction(signal, ptr::null(), &mut current) == 0
            && current.sa_sigaction == libc::SIG_DFL
    }
}

/// The fault handler. Async-signal-safe: it asks the policy (which reads
/// the registry and thread-local memory), and calls `sigaction`.
///
/// A fault that the policy calls a guard-page hit is reported at once,
/// without asking the handler that was installed before: that is std's,
/// usually, which gives up on any fault outside its own thread's guard
/// page by setting the default action back for the whole process and
/// returning, and a fault of another thread in that moment (several
/// coroutines overflowing at once) would kill the process with a bare
/// SIGSEGV before the report. Only on a thread that takes trap handlers
/// is the previous handler asked first, as it may recover.
extern "C" fn on_fault<P: GuardFaults>(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler;
    // `si_addr` means something only for a fault the kernel raised
    // (positive `si_code`), not for a signal sent with `kill` or `raise`.
    let addr = unsafe { ((*info).si_code > 0).then(|| (*info).si_addr() as usize) };
    let previous = previous(signal).filter(|action| is_function(action));
    if let Some(hit) = addr.and_then(P::guard_hit) {
        if let Some(action) = previous.filter(|_| P::thread_takes_traps()) {
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
            let ours = our_action::<P>();
            // SAFETY: installing this handler's action, initialized.
            unsafe { libc::sigaction(signal, &ours, ptr::null_mut()) };
        }
        P::report(&hit);
    }
    match previous {
        // SAFETY: a function, called with the kernel's arguments.
        Some(action) => unsafe { call(action, signal, info, context) },
        // As if we were not there: the default action, which the faulting
        // instruction meets when it runs again.
        None => reset_to_default(signal),
    }
}

/// Waits for the process to end (another thread is aborting it), without
/// returning. Async-signal-safe.
pub(crate) fn wait_forever() -> ! {
    loop {
        // SAFETY: pause is async-signal-safe; it returns only after a
        // signal handler ran, and then waits again.
        unsafe { libc::pause() };
    }
}

/// Ends the process with SIGABRT, which nothing can turn into something
/// else: SIGABRT gets its default action and is unblocked on this thread
/// before it is raised. Async-signal-safe.
pub(crate) fn abort_now() -> ! {
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

/// Writes `bytes` to stderr with the system call itself (no lock, no
/// allocation). Async-signal-safe.
pub(crate) fn write_stderr(bytes: &[u8]) {
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

/// An alternate signal stack this layer mapped for a thread: its mapping
/// (guard page included) and length.
struct AltStack {
    mapping: Cell<Option<(usize, usize)>>,
}

std::thread_local! {
    /// The alternate signal stack this layer gave the thread, if any; its
    /// destructor frees it when the thread exits.
    static ALT_STACK: AltStack = const { AltStack { mapping: Cell::new(None) } };
}

/// Usable bytes of the alternate signal stacks this layer makes: room for
/// the fault handler and for the handler it passes faults to.
const ALT_STACK_SIZE: usize = 64 * 1024;

/// Gives the calling thread an alternate signal stack if it has none (the
/// fault handler of a stack overflow cannot run on the stack that
/// overflowed), freed when the thread exits.
pub(crate) fn ensure_alt_stack() {
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
