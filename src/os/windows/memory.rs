//! Memory on Windows: `VirtualAlloc`ed stack regions with a guard page,
//! the page size, resident pages (`QueryWorkingSetEx`) and the running
//! stack's bounds from the TEB.
//!
//! ```text
//! base  +----------------------+  StackBase
//!       | committed, RW        |
//! limit +----------------------+  StackLimit
//!       | PAGE_GUARD page      |
//!       +----------------------+
//!       | handler room, RW     |  HANDLER_ROOM_PAGES
//!       +----------------------+
//!       | reserved page        |
//! start +----------------------+  DeallocationStack
//! ```
//!
//! The whole usable part is committed at once, so `[limit, base)` is
//! readable and writable as the `Stack` contract asks (Windows backs
//! committed pages with memory only when they are touched, but charges them
//! against the commit limit). Below it is what Windows' own stack growth
//! expects at the bottom of a thread's stack: a guard page, room for the
//! stack-overflow handlers, and a bottom page of the reservation that is
//! never committed. The TEB describes this stack while code runs on it
//! (the context switch sees to that), with `GuaranteedStackBytes` covering
//! the handler room and the guard page, so running into the guard page
//! raises `EXCEPTION_STACK_OVERFLOW` at once, as on a thread's stack, and
//! the exception's dispatch and its vectored handlers (std's, which prints
//! the overflow message, or a trap handler) run in the room below. Running
//! past that faults on the reserved page, which belongs to no one else.

use core::ffi::c_void;
use core::num::NonZeroUsize;
use core::sync::atomic::{AtomicUsize, Ordering};
use std::io;

use windows_sys::Win32::System::Memory::{
    VirtualAlloc, VirtualFree, VirtualProtect, MEM_COMMIT, MEM_DECOMMIT, MEM_RELEASE, MEM_RESERVE,
    PAGE_GUARD, PAGE_READWRITE,
};
use windows_sys::Win32::System::SystemInformation::{GetSystemInfo, SYSTEM_INFO};

use super::teb::{self, StackTebFields};
use crate::os::RESIDENT_QUERY_PAGES;

/// Pages below the guard page that stay committed for the handlers of a
/// stack overflow: 16 KiB (pages are 4 KiB on every Windows target).
const HANDLER_ROOM_PAGES: usize = 4;

/// Pages below each stack's limit: the `PAGE_GUARD` page, the handler room
/// and the reserved page at the bottom.
pub(crate) const GUARD_PAGES: usize = 1 + HANDLER_ROOM_PAGES + 1;

/// The system's page size, read once.
pub(crate) fn page_size() -> usize {
    static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);
    let cached = PAGE_SIZE.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    // SAFETY: GetSystemInfo fills the structure it is given; all-zero is a
    // valid SYSTEM_INFO to start from.
    let size = unsafe {
        let mut info: SYSTEM_INFO = core::mem::zeroed();
        GetSystemInfo(&mut info);
        info.dwPageSize as usize
    };
    PAGE_SIZE.store(size, Ordering::Relaxed);
    size
}

/// One stack's reservation, guard page included, and what the TEB said of
/// it when code last left it. Released on drop.
#[derive(Debug)]
pub(crate) struct Region {
    /// The lowest address of the reservation: the never-committed page.
    start: usize,
    /// The lowest usable address, just above the guard page.
    limit: NonZeroUsize,
    /// The highest address of the reservation.
    base: NonZeroUsize,
    /// The TEB's `StackLimit` when code last left this stack (atomic only
    /// so that `teb_fields` can reset it through `&self`).
    teb_stack_limit: AtomicUsize,
    /// The least `GuaranteedStackBytes` the TEB says: the handler room and
    /// the guard page, so that the guard page raises the overflow.
    min_guaranteed_bytes: usize,
    /// The TEB's `GuaranteedStackBytes` when code last left this stack.
    teb_guaranteed_bytes: usize,
}

impl Region {
    /// Reserves `len` bytes (a whole number of pages, more than
    /// [`GUARD_PAGES`]), commits all but the lowest page and makes the page
    /// below the limit a guard page.
    pub(crate) fn new(len: usize) -> io::Result<Self> {
        let page = page_size();
        // SAFETY: a fresh reservation at an address of the system's choosing
        // touches no existing memory.
        let reservation =
            unsafe { VirtualAlloc(core::ptr::null(), len, MEM_RESERVE, PAGE_READWRITE) };
        if reservation.is_null() {
            return Err(io::Error::last_os_error());
        }
        let start = reservation as usize;
        let limit = start + GUARD_PAGES * page;
        let region = Self {
            start,
            min_guaranteed_bytes: (HANDLER_ROOM_PAGES + 1) * page,
            // A reservation is never at address 0 and never ends at the top
            // of the address space, so both are nonzero.
            limit: NonZeroUsize::new(limit).expect("VirtualAlloc returned address 0"),
            base: NonZeroUsize::new(start + len).expect("VirtualAlloc wrapped around"),
            teb_stack_limit: AtomicUsize::new(limit),
            teb_guaranteed_bytes: 0,
        };
        // On failure `region` drops here, releasing the reservation.
        region.commit_usable()?;
        region.arm_guard_page()?;
        Ok(region)
    }

    /// The lowest address of the region: the bottom of the reservation.
    #[inline]
    pub(crate) fn start(&self) -> usize {
        self.start
    }

    /// The lowest usable address, just above the guard page.
    #[inline(always)]
    pub(crate) fn limit(&self) -> NonZeroUsize {
        self.limit
    }

    /// The highest address of the region.
    #[inline(always)]
    pub(crate) fn base(&self) -> NonZeroUsize {
        self.base
    }

    /// Commits the handler room and the usable part, read-write.
    fn commit_usable(&self) -> io::Result<()> {
        let low = self.start + page_size();
        // SAFETY: the range is part of our own reservation, and nothing runs
        // on it now.
        let committed = unsafe {
            VirtualAlloc(
                low as *const c_void,
                self.base.get() - low,
                MEM_COMMIT,
                PAGE_READWRITE,
            )
        };
        if committed.is_null() {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Commits the page below the limit and makes it a guard page (again,
    /// after a stack overflow used it up).
    fn arm_guard_page(&self) -> io::Result<()> {
        let page = page_size();
        let guard = (self.limit.get() - page) as *mut c_void;
        let mut old = 0;
        // SAFETY: the page is part of our own reservation, just below the
        // usable part; nothing runs on it now. Committing a committed page
        // is allowed and changes nothing.
        let armed = unsafe {
            !VirtualAlloc(guard, page, MEM_COMMIT, PAGE_READWRITE).is_null()
                && VirtualProtect(guard, page, PAGE_READWRITE | PAGE_GUARD, &mut old) != 0
        };
        if !armed {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Drops the contents of the usable pages, giving the memory back to
    /// the OS (they read as zero afterwards), and re-arms the guard page.
    /// Returns false if that failed, in which case the region must not be
    /// reused. Nothing may run on the region.
    pub(crate) fn discard(&self) -> bool {
        let len = self.base.get() - self.limit.get();
        // SAFETY: the range is the usable part of our own reservation, and
        // nothing runs on it (the stack is being returned to the pool);
        // decommitting and committing again gives fresh zero pages.
        let decommitted =
            unsafe { VirtualFree(self.limit.get() as *mut c_void, len, MEM_DECOMMIT) != 0 };
        decommitted && self.commit_usable().is_ok() && self.arm_guard_page().is_ok()
    }

    /// The TEB's stack fields for this stack, which is idle (about to be
    /// used by a new coroutine or `on_stack` call). If a stack overflow
    /// used up the guard page last time, it is armed again first.
    pub(crate) fn teb_fields(&self) -> StackTebFields {
        let mut stack_limit = self.teb_stack_limit.load(Ordering::Relaxed);
        if stack_limit < self.limit.get() && self.arm_guard_page().is_ok() {
            stack_limit = self.limit.get();
            self.teb_stack_limit.store(stack_limit, Ordering::Relaxed);
        }
        StackTebFields {
            StackBase: self.base.get(),
            StackLimit: stack_limit,
            DeallocationStack: self.start,
            GuaranteedStackBytes: self.teb_guaranteed_bytes.max(self.min_guaranteed_bytes),
        }
    }

    /// Records the TEB's stack fields as code left this stack.
    pub(crate) fn update_teb_fields(&mut self, stack_limit: usize, guaranteed_stack_bytes: usize) {
        // The usable part is committed from the start, so Windows lowers
        // the limit only as a stack overflow turns the guard page into
        // usable memory; `teb_fields` then arms a new one before the next
        // use. Anything outside the reservation is not believed.
        if (self.start..self.base.get()).contains(&stack_limit) {
            self.teb_stack_limit.store(stack_limit, Ordering::Relaxed);
        }
        self.teb_guaranteed_bytes = guaranteed_stack_bytes;
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the reservation is ours and nothing runs on it any more:
        // it is dropped only when idle or when its coroutine has finished.
        unsafe {
            VirtualFree(self.start as *mut c_void, 0, MEM_RELEASE);
        }
    }
}

/// Whether each of the `resident.len()` pages from `start` (at most
/// [`RESIDENT_QUERY_PAGES`]) is in the process's working set (its `Valid`
/// bit), from `QueryWorkingSetEx`.
pub(crate) fn resident_pages(start: usize, resident: &mut [bool]) -> io::Result<()> {
    use windows_sys::Win32::System::ProcessStatus::{
        K32QueryWorkingSetEx, PSAPI_WORKING_SET_EX_INFORMATION,
    };
    use windows_sys::Win32::System::Threading::GetCurrentProcess;
    let pages = resident.len();
    assert!(pages <= RESIDENT_QUERY_PAGES);
    // SAFETY: all-zero is a valid value of this plain C structure.
    let mut info: [PSAPI_WORKING_SET_EX_INFORMATION; RESIDENT_QUERY_PAGES] =
        unsafe { core::mem::zeroed() };
    for (index, entry) in info[..pages].iter_mut().enumerate() {
        entry.VirtualAddress = (start + index * page_size()) as *mut _;
    }
    // SAFETY: the buffer holds `pages` entries, each naming the page to
    // ask about; the call fills in their attributes.
    let ok = unsafe {
        K32QueryWorkingSetEx(
            GetCurrentProcess(),
            info.as_mut_ptr().cast(),
            (pages * core::mem::size_of::<PSAPI_WORKING_SET_EX_INFORMATION>()) as u32,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    for (resident, entry) in resident.iter_mut().zip(&info[..pages]) {
        // SAFETY: every bit pattern is a valid `usize`; bit 0 is `Valid`.
        *resident = unsafe { entry.VirtualAttributes.Flags } & 1 != 0;
    }
    Ok(())
}

/// The lowest address that code on the running stack may use, whatever
/// stack it is (the TEB describes every stack, the context switch keeps it
/// so): the bottom of the reservation, less its never-committed bottom page
/// and the bytes Windows keeps for overflow handlers
/// (`GuaranteedStackBytes`, at least two pages).
#[inline]
pub(crate) fn running_stack_limit() -> Option<usize> {
    let fields = teb::read().fields;
    let page = page_size();
    Some(fields.DeallocationStack + page + fields.GuaranteedStackBytes.max(2 * page))
}

/// The calling thread's own stack: never asked on Windows, where
/// [`running_stack_limit`] answers for every stack.
pub(crate) fn thread_stack() -> Option<(usize, usize)> {
    None
}
