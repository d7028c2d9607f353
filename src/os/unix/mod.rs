//! The OS floor on Unix: `mmap`ed regions, `mincore`, signal handlers and
//! alternate signal stacks, through libc.
//!
//! What every Unix does alike is written here; what differs per system is
//! in one file per system, chosen below, each giving the same four items:
//!
//! - `STACK_MAP_FLAGS`: the `mmap` flags a stack mapping adds to
//!   `MAP_PRIVATE | MAP_ANON` (`MAP_NORESERVE`, `MAP_STACK`, where the
//!   system's manual documents them).
//! - `MincoreByte`: the element type of `mincore`'s vector.
//! - `discard(start, len) -> bool`: gives a range of a private anonymous
//!   mapping back to the system so that it reads as zero afterwards
//!   (`memory::remap_fresh` does this anywhere).
//! - `thread_stack() -> Option<(limit, base)>`: the calling thread's own
//!   stack, or `None` where the system does not say.
//!
//! A new Unix-like system is a new file here and a line in the dispatch
//! below.

mod memory;
mod signals;

// The system's own file, as `system`.
#[cfg(any(target_os = "linux", target_os = "android"))]
mod linux;
#[cfg(any(target_os = "linux", target_os = "android"))]
use self::linux as system;

#[cfg(target_vendor = "apple")]
mod apple;
#[cfg(target_vendor = "apple")]
use self::apple as system;

#[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
mod other;
#[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
use self::other as system;

pub(crate) use self::memory::{
    page_size, resident_pages, running_stack_limit, Region, GUARD_PAGES,
};
pub(crate) use self::system::thread_stack;
pub(crate) use self::signals::{
    abort_now, ensure_alt_stack, install_fault_handler, wait_forever, write_stderr,
};
