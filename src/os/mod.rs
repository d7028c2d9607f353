//! The operating-system floor: every system call the crate makes, behind
//! one contract, with one implementation per OS family (`unix/`,
//! `windows/`); the decisions built on them stay portable in `stack`.
//!
//! # The contract
//!
//! With the `default-stack` feature, each OS family provides exactly these
//! items (re-exported here, so that the rest of the crate names them
//! `os::...` whatever the OS):
//!
//! - Memory regions and guard pages:
//!   - `page_size()`: the system's page size, read once.
//!   - `GUARD_PAGES`: pages of guard below each stack's limit.
//!   - `Region`: one stack's memory. `Region::new(len)` maps `len` bytes (a
//!     whole number of pages, more than `GUARD_PAGES`) with the guard
//!     pages at the bottom and `[limit(), base())` readable and writable;
//!     `start()` is the bottom of the guard, `discard()` gives the usable
//!     pages back to the system so that they read as zero (false if that
//!     failed: the region must not be reused), and dropping it unmaps it.
//!     On Windows it also keeps the TEB fields of its stack
//!     (`teb_fields()`, `update_teb_fields(limit, guaranteed)`).
//! - Resident pages: `resident_pages(start, resident)` says for each of
//!   `resident.len()` pages (at most [`RESIDENT_QUERY_PAGES`]) from `start`
//!   whether the system backs it with memory now (`mincore`,
//!   `QueryWorkingSetEx`).
//! - Thread stack bounds: `running_stack_limit()`, the lowest usable
//!   address of whatever stack the thread runs on where the system tracks
//!   every stack (Windows' TEB), `None` where it does not (Unix); and
//!   `thread_stack()`, the `(limit, base)` of the thread's own stack where
//!   the system says (`None` otherwise, never a guess).
//! - Fault handling: `install_fault_handler::<P>()` installs, once per
//!   process, the handler for faults in guard pages (SIGSEGV and SIGBUS,
//!   chained to the handlers it replaced; a vectored handler for
//!   `EXCEPTION_STACK_OVERFLOW` on Windows), which asks the policy `P`
//!   ([`GuardFaults`]) what each fault is; `ensure_alt_stack()` gives the
//!   calling thread a stack for that handler if the system needs one and
//!   the thread has none; `write_stderr(bytes)`, `wait_forever()` and
//!   `abort_now()` are the async-signal-safe ways out of it.
//!
//! On Windows, whatever the features, `teb` reads and writes the stack
//! fields of the Thread Environment Block (`StackTebFields`, `TebState`).
//!
//! Nothing here imports from the layers above; the one item the OS layer
//! takes from beside it is `arch::thread_environment_block` (which
//! register holds the TEB is the CPU's business). Adding a Unix-like
//! system means a file in `unix/` and a line in its dispatch; adding an OS
//! family, a directory beside `unix/` and `windows/` giving the items
//! above, and a line below.

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use self::windows::*;

os_stacks! {
    #[cfg(all(unix, not(miri)))]
    mod unix;
    #[cfg(all(unix, not(miri)))]
    pub(crate) use self::unix::*;

    // Miri runs none of the system calls above: the allocator's memory
    // instead, without guard pages or signals (see `miri.rs`).
    #[cfg(miri)]
    mod miri;
    #[cfg(miri)]
    pub(crate) use self::miri::*;

    /// The most pages one `resident_pages` call answers for (its buffer lives
    /// on the stack, so this bounds what the call itself takes).
    pub(crate) const RESIDENT_QUERY_PAGES: usize = 256;

    /// What the portable overflow report tells the OS's fault handler, which
    /// calls these from the handler itself: each must be async-signal-safe
    /// (no locks, no allocation).
    pub(crate) trait GuardFaults {
        /// What is known of a stack whose guard page was hit, for the report.
        type Hit;

        /// Whether a fault at `addr` is one to report: in the guard of one of
        /// the crate's stacks, with the report on (asked on Unix).
        #[cfg_attr(windows, allow(dead_code))]
        fn guard_hit(addr: usize) -> Option<Self::Hit>;

        /// Whether a stack-overflow exception at `addr` is one to report:
        /// anywhere in one of the crate's stacks, with the report on (asked
        /// on Windows, where the OS says it is an overflow, and where on
        /// the stack it raises it is not documented).
        #[cfg_attr(unix, allow(dead_code))]
        fn overflow_hit(addr: usize) -> Option<Self::Hit>;

        /// Whether the calling thread takes trap handlers: a hit is then first
        /// offered to the handler that was installed before, which may recover
        /// from it (asked only where handlers chain, on Unix).
        #[cfg_attr(windows, allow(dead_code))]
        fn thread_takes_traps() -> bool;

        /// Reports the hit and ends the process.
        fn report(hit: &Self::Hit) -> !;
    }
}
