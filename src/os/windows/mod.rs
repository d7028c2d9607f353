//! The OS floor on Windows: `VirtualAlloc`ed regions, `QueryWorkingSetEx`,
//! the vectored exception handler and the TEB, through windows-sys.
//!
//! The TEB is here with or without the `default-stack` feature (every
//! switch swaps its stack fields); the rest comes with the feature, which
//! brings windows-sys.

pub(crate) mod teb;

os_stacks! {
    mod faults;
    mod memory;

    pub(crate) use self::faults::{
        abort_now, ensure_alt_stack, install_fault_handler, wait_forever, write_stderr,
    };
    pub(crate) use self::memory::{
        commit_or_panic, page_size, resident_pages, running_stack_limit, thread_stack, Region,
        GUARD_PAGES,
    };
}
