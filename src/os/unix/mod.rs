//! The OS floor on Unix: `mmap`ed regions, `mincore`, signal handlers and
//! alternate signal stacks, through libc.
//!
//! What every Unix does alike is written here; what differs per system is
//! in one file per system (or per family, where the systems agree),
//! chosen below, each giving the same seven items:
//!
//! - `STACK_MAP_FLAGS`: the `mmap` flags a stack mapping adds to
//!   `MAP_PRIVATE | MAP_ANON` (`MAP_NORESERVE`, `MAP_STACK`, where the
//!   system's manual documents them).
//! - `mincore(addr, len, vec) -> c_int`: the system's `mincore(2)` (libc's,
//!   re-exported; the declarations differ in pointer types, which
//!   `memory::resident_pages` adapts to), or where the system has none a
//!   stand-in that fails with `ENOSYS`, so that a high-water mark is an
//!   error there, never a made-up number.
//! - `discard(start, len) -> bool`: gives a range of a private anonymous
//!   mapping back to the system so that it reads as zero afterwards
//!   (`memory::remap_fresh` does this anywhere).
//! - `thread_stack() -> Option<(limit, base)>`: the calling thread's own
//!   stack, or `None` where the system does not say
//!   (`attributes::stack_from_attributes` reads it from a thread's attributes).
//! - `install_light_guard(start, len, verify) -> io::Result<()>`: a guard
//!   region that does not split its mapping (Linux's `MADV_GUARD_INSTALL`),
//!   for the stacks carved from slabs; `Unsupported` where the system has
//!   none, so that stacks keep a mapping each.
//! - `LIGHT_GUARDS: bool`: whether `install_light_guard` can succeed here
//!   at all (false: slabs are not even tried).
//! - `max_map_count() -> Option<usize>`: the system's limit on a process's
//!   mappings, for the error that says why mapping a stack failed.
//!
//! Everything else is the same on every supported Unix and written once:
//! the guard-fault handler takes both SIGSEGV and SIGBUS (Linux, the BSDs
//! and illumos report a touch of a `PROT_NONE` page as SIGSEGV; Darwin, and
//! FreeBSD for binaries of old ABIs under its `machdep.prot_fault_translation`
//! compatibility setting, as SIGBUS); the alternate signal stack
//! (`sigaltstack`) is 64 KiB, above every system's `MINSIGSTKSZ` (2 KiB on
//! Linux x86-64 and Android, 4 KiB on FreeBSD AArch64, 32 KiB on Darwin,
//! 12 KiB on OpenBSD amd64); the page size is read with `sysconf`, never
//! assumed (16 KiB on Apple silicon and some Android AArch64 devices).
//!
//! A new Unix-like system is a new file here and a line in the dispatch
//! below.

mod memory;
mod signals;

// Shared by the systems whose thread attributes give the stack and guard.
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd"
))]
mod attributes;

// Shared by the systems without light guard pages.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod no_light_guards;

// The system's own file, as `system`: one item per file, its cfg written
// once.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[path = "linux.rs"]
mod system;
#[cfg(target_vendor = "apple")]
#[path = "apple.rs"]
mod system;
#[cfg(any(target_os = "freebsd", target_os = "dragonfly"))]
#[path = "freebsd.rs"]
mod system;
#[cfg(target_os = "netbsd")]
#[path = "netbsd.rs"]
mod system;
#[cfg(target_os = "openbsd")]
#[path = "openbsd.rs"]
mod system;
#[cfg(target_os = "illumos")]
#[path = "illumos.rs"]
mod system;
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "illumos"
)))]
#[path = "other.rs"]
mod system;

pub(crate) use self::memory::{
    discard, explain_map_error, page_size, resident_pages, running_stack_limit, Region,
    Reservation, GUARD_PAGES,
};
pub(crate) use self::system::{thread_stack, LIGHT_GUARDS};
pub(crate) use self::signals::{
    abort_now, ensure_alt_stack, install_fault_handler, wait_forever, write_stderr,
};
