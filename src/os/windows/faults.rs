//! Faults on Windows: the vectored exception handler for a stack overflow
//! in a guard page, and the ways out (the standard error handle, waiting,
//! abort).

use windows_sys::Win32::System::Diagnostics::Debug::EXCEPTION_POINTERS;

use crate::os::GuardFaults;

/// Adds the vectored exception handler of the policy `P`, last in line
/// (after std's, which prints its own one-line notice first, and after any
/// added before it or first in line, such as trap handlers). The caller
/// calls this once per process.
pub(crate) fn install_fault_handler<P: GuardFaults>() {
    use windows_sys::Win32::System::Diagnostics::Debug::AddVectoredExceptionHandler;
    // SAFETY: the handler has the signature Windows expects and reads only
    // what the policy reads (the registry, thread-local memory) and the
    // exception record.
    unsafe { AddVectoredExceptionHandler(0, Some(on_exception::<P>)) };
}

/// The vectored exception handler: an `EXCEPTION_STACK_OVERFLOW` that the
/// policy calls a guard-page hit is reported (which ends the process);
/// everything else is passed on. Windows runs it on the overflowing stack,
/// in the room that stacks keep below their guard page for it.
unsafe extern "system" fn on_exception<P: GuardFaults>(info: *mut EXCEPTION_POINTERS) -> i32 {
    use windows_sys::Win32::Foundation::EXCEPTION_STACK_OVERFLOW;
    use windows_sys::Win32::System::Diagnostics::Debug::EXCEPTION_CONTINUE_SEARCH;
    // SAFETY: Windows passes a valid exception record.
    let record = unsafe { &*(*info).ExceptionRecord };
    if record.ExceptionCode != EXCEPTION_STACK_OVERFLOW || record.NumberParameters < 2 {
        return EXCEPTION_CONTINUE_SEARCH;
    }
    // The second parameter is the faulting address: in the last guard page
    // under Wine, which raises the overflow when the guard page that moves
    // down with the stack reaches it. Where Windows gives up is not
    // documented (the size of its guard region follows
    // `GuaranteedStackBytes`), so anywhere in the stack counts.
    match P::overflow_hit(record.ExceptionInformation[1]) {
        Some(hit) => P::report(&hit),
        None => EXCEPTION_CONTINUE_SEARCH,
    }
}

/// Nothing to do: Windows runs the handler on the overflowing stack, in
/// the room below the guard page, so no thread needs an alternate stack.
#[inline(always)]
pub(crate) fn ensure_alt_stack() {}

/// Waits for the process to end (another thread is aborting it), without
/// returning.
pub(crate) fn wait_forever() -> ! {
    use windows_sys::Win32::System::Threading::{Sleep, INFINITE};
    loop {
        // SAFETY: Sleep has no preconditions.
        unsafe { Sleep(INFINITE) };
    }
}

/// Ends the process at once.
pub(crate) fn abort_now() -> ! {
    std::process::abort()
}

/// Writes `bytes` to the process's standard error handle.
pub(crate) fn write_stderr(bytes: &[u8]) {
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
