//! Fixtures shared by the integration tests.
#![allow(dead_code)] // each test file uses some of them

use std::cell::Cell;
use std::rc::Rc;

/// Set by CI when it runs the test binaries under Valgrind: tests that make
/// deliberate bad accesses, map huge ranges or run for minutes skip or shrink.
pub fn under_valgrind() -> bool {
    std::env::var_os("SWITCHBACK_UNDER_VALGRIND").is_some_and(|v| v == "1")
}

/// Set by CI when it runs the tests built with AddressSanitizer, whose
/// frames are larger and which also reports deliberate reads of dead stack
/// memory.
pub fn under_sanitizer() -> bool {
    std::env::var_os("SWITCHBACK_UNDER_SANITIZER").is_some_and(|v| v == "1")
}

/// Set by `scripts/cross.sh` when the tests run under qemu-user, which
/// backs huge address-space reservations with host memory.
pub fn under_qemu() -> bool {
    std::env::var_os("SWITCHBACK_QEMU_RUNNER").is_some()
}

/// The system's page size.
pub fn page_size() -> usize {
    #[cfg(unix)]
    // SAFETY: sysconf has no preconditions.
    unsafe {
        libc::sysconf(libc::_SC_PAGESIZE) as usize
    }
    #[cfg(windows)]
    // SAFETY: GetSystemInfo fills the structure it is given.
    unsafe {
        let mut info = std::mem::zeroed();
        windows_sys::Win32::System::SystemInformation::GetSystemInfo(&mut info);
        info.dwPageSize as usize
    }
}

/// Makes `len` bytes at `addr` (whole pages) fault on any access.
///
/// # Safety
/// The pages must be mapped, owned by the caller and unused.
pub unsafe fn make_inaccessible(addr: usize, len: usize) {
    #[cfg(unix)]
    // SAFETY: per the caller.
    let ok = unsafe { libc::mprotect(addr as *mut libc::c_void, len, libc::PROT_NONE) == 0 };
    #[cfg(windows)]
    // SAFETY: per the caller.
    let ok = unsafe {
        use windows_sys::Win32::System::Memory::{VirtualProtect, PAGE_NOACCESS};
        let mut old = 0;
        VirtualProtect(addr as *const _, len, PAGE_NOACCESS, &mut old) != 0
    };
    assert!(ok, "cannot protect {len} bytes at {addr:#x}");
}

/// Windows: commits `len` bytes at `addr` (whole pages) read-write.
/// `DefaultStack` commits its pages as code on it reaches them; a stack cut
/// from one (a custom `Stack`) must have them committed.
///
/// # Safety
/// The pages must be reserved, owned by the caller and unused.
#[cfg(windows)]
pub unsafe fn commit(addr: usize, len: usize) {
    use windows_sys::Win32::System::Memory::{VirtualAlloc, MEM_COMMIT, PAGE_READWRITE};
    // SAFETY: per the caller.
    let ok = unsafe { !VirtualAlloc(addr as *const _, len, MEM_COMMIT, PAGE_READWRITE).is_null() };
    assert!(ok, "cannot commit {len} bytes at {addr:#x}");
}

/// Windows: whether the page at `addr` is committed.
#[cfg(windows)]
pub fn is_committed(addr: usize) -> bool {
    use windows_sys::Win32::System::Memory::{VirtualQuery, MEMORY_BASIC_INFORMATION, MEM_COMMIT};
    // SAFETY: VirtualQuery only fills the structure it is given.
    unsafe {
        let mut info: MEMORY_BASIC_INFORMATION = std::mem::zeroed();
        let len = std::mem::size_of::<MEMORY_BASIC_INFORMATION>();
        VirtualQuery(addr as *const _, &mut info, len) == len && info.State == MEM_COMMIT
    }
}

/// Set by `scripts/wine.sh` when the tests run under Wine.
pub fn under_wine() -> bool {
    std::env::var_os("SWITCHBACK_WINE").is_some()
}

/// Recurses until the stack overflows (the compiler cannot tell that it
/// never ends).
#[inline(never)]
pub fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 64]);
    if std::hint::black_box(depth) == u64::MAX {
        return 0;
    }
    recurse(depth + 1) + std::hint::black_box(frame)[63]
}

/// The frame of wasmer's `check_small_stack` test: `levels` nested calls,
/// each with an 8 KiB local that it fills and reads back through
/// `black_box`, so that the compiler keeps every byte of it.
#[inline(never)]
pub fn frames_of_8_kib(levels: usize) -> u8 {
    let mut frame = [0u8; 8192];
    std::hint::black_box(&mut frame);
    let below = if levels > 1 {
        frames_of_8_kib(levels - 1)
    } else {
        0
    };
    std::hint::black_box(&frame)[levels % 8192].wrapping_add(below)
}

/// A stack of 8 KiB as `DefaultStack::new(8 * 1024)` gives it: 8 KiB, or
/// one page where pages are larger.
pub fn small_stack_size() -> usize {
    (8 * 1024usize).next_multiple_of(page_size())
}

/// How many [`frames_of_8_kib`] levels overflow a stack of `usable` bytes:
/// one for an 8 KiB stack (wasmer's case), more where pages are larger.
pub fn levels_to_overflow(usable: usize) -> usize {
    usable.div_ceil(8192)
}

/// A shared count of drops.
pub fn counter() -> Rc<Cell<u32>> {
    Rc::new(Cell::new(0))
}

/// Adds one to its counter when dropped.
pub struct Counted(pub Rc<Cell<u32>>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// The message of a panic payload from `panic!` with a literal or a format.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "<non-string payload>".to_string()
    }
}

/// Windows' `ERROR_INTERNAL_ERROR`, which Wine's `CreateProcess`
/// occasionally returns on a loaded machine before the child exists.
const WINE_SPAWN_INTERNAL_ERROR: i32 = 1359;

/// Runs `command` to completion. Under Wine, a spawn that fails with
/// [`WINE_SPAWN_INTERNAL_ERROR`] is tried again (up to five times, a moment
/// apart): the child never started, so nothing of the test is repeated and
/// no result of the child's is ever retried.
fn spawn_and_wait(command: &mut std::process::Command) -> std::process::Output {
    let mut attempts_left = if under_wine() { 5 } else { 1 };
    loop {
        attempts_left -= 1;
        match command.output() {
            Ok(output) => return output,
            Err(error)
                if attempts_left > 0 && error.raw_os_error() == Some(WINE_SPAWN_INTERNAL_ERROR) =>
            {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Err(error) => panic!("cannot start the child process {command:?}: {error}"),
        }
    }
}

/// Runs the named test of the current test binary in a child process with
/// the environment variable `var` set to 1, and returns how it ended and
/// what it wrote to stderr.
///
/// Under qemu-user (see [`under_qemu`]) the child runs through the same
/// emulator command, since the binary cannot run on the host by itself.
pub fn run_child(test: &str, var: &str) -> (std::process::ExitStatus, String) {
    run_child_with(test, var, &[])
}

/// [`run_child`] with the extra environment `env`. The test runs even if
/// it is `#[ignore]`d (its parent decided to run it).
pub fn run_child_with(
    test: &str,
    var: &str,
    env: &[(&str, &str)],
) -> (std::process::ExitStatus, String) {
    let exe = std::env::current_exe().unwrap();
    let runner = std::env::var("SWITCHBACK_QEMU_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    let mut command = match words.next() {
        Some(emulator) => {
            let mut command = std::process::Command::new(emulator);
            command.args(words).arg(exe);
            command
        }
        None => std::process::Command::new(exe),
    };
    command
        .args([
            test,
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "--include-ignored",
        ])
        .env(var, "1")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let output = spawn_and_wait(&mut command);
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// In a child about to overflow the stack `[limit, base)` on the current
/// thread: writes `expect: <thread> <limit> <base> <KiB>` to stderr, the
/// report that [`expected_overflow_report`] reads back in the parent.
pub fn announce_overflow(limit: usize, base: usize) {
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("<unnamed>");
    eprintln!(
        "expect: {name} {limit:#x} {base:#x} {}",
        (base - limit) / 1024
    );
}

/// The overflow report that the child announced with
/// [`announce_overflow`], as the crate's report writes it.
pub fn expected_overflow_report(stderr: &str) -> String {
    let line = stderr
        .lines()
        .find_map(|line| line.strip_prefix("expect: "))
        .unwrap_or_else(|| panic!("the child wrote no expect line: {stderr}"));
    let words: Vec<&str> = line.split(' ').collect();
    format!(
        "thread '{}' overflowed the stack of a coroutine (stack {}-{}, {} KiB)",
        words[0], words[1], words[2], words[3]
    )
}

/// Whether the page at `addr` (page-aligned, in a read-write private
/// mapping of the process) is a light guard region (Linux 6.13's
/// `MADV_GUARD_INSTALL`, which the crate's slab stacks use and which
/// `/proc/self/maps` does not show): a populate of it fails with `EFAULT`
/// (`MADV_POPULATE_READ`, 22 in the kernel's
/// include/uapi/asm-generic/mman-common.h). Populating a page that is not
/// a guard only maps it for reading.
#[cfg(target_os = "linux")]
pub fn is_light_guard(addr: usize) -> bool {
    // SAFETY: populating a page of our own mapping for reading changes no
    // contents.
    let rc = unsafe { libc::madvise(addr as *mut libc::c_void, page_size(), 22) };
    rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EFAULT)
}
