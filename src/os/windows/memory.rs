//! Memory on Windows: `VirtualAlloc`ed stack regions that grow like a
//! thread's stack, the page size, resident pages (`QueryWorkingSetEx`) and
//! the running stack's bounds from the TEB.
//!
//! ```text
//! base  +----------------------+  StackBase
//!       | committed, RW        |  TOP_COMMIT_PAGES at first
//!       +----------------------+  StackLimit
//!       | PAGE_GUARD page      |  moves down as the stack grows
//!       +----------------------+
//!       | reserved             |  committed on demand
//! limit +----------------------+
//!       | last guard page      |  reserved; PAGE_GUARD once reached
//!       +----------------------+
//!       | handler room         |  HANDLER_ROOM_PAGES, reserved
//!       +----------------------+
//!       | reserved page        |
//! start +----------------------+  DeallocationStack
//! ```
//!
//! The whole size is reserved, and only the top page is committed, with a
//! `PAGE_GUARD` page below it: the layout of a thread's stack, which the
//! OS grows the same way. The TEB describes this stack while code runs on
//! it, so when that code touches the guard page, Windows' page-fault
//! handler sees a guard page inside the current thread's stack
//! (`DeallocationStack` up to `StackBase`): it commits the page, makes the
//! page below it the new guard page and lowers `StackLimit`, and the
//! access goes ahead with no exception raised. Code compiled for Windows
//! touches its stack in order (functions whose frames are a page or more
//! probe each page, `__chkstk`), so it always meets the guard page before
//! the reserved pages below it.
//!
//! That needs the TEB to describe the running stack at *every* instant:
//! any push on a stack the TEB does not describe that lands on its guard
//! page is only a `STATUS_GUARD_PAGE_VIOLATION`, and the program dies. A
//! first version wrote the TEB fields in Rust a few frames before the
//! switch, and a parent coroutine whose own stack grew in those frames
//! crashed (debug builds, `tests/nesting.rs`). So the stacks grow on
//! demand only where the switch writes the fields in the same assembly
//! that moves the stack pointer (`os::teb::IN_SWITCH`: x86-64, see
//! `arch/x86_64_windows.rs`, which also touches the two words the resume
//! pushes on the parent's stack before the swap); elsewhere the usable
//! part is committed when the stack is made, the guard page below it.
//!
//! Wine (8.0) grows a coroutine's stack exactly so, from the same TEB
//! fields (`tests/windows_stack.rs` checks what is committed, with
//! `VirtualQuery`, as coroutines and `on_stack` go deeper, and parents
//! whose stacks grow in the frames of the resume path), and raises the
//! overflow at the last guard page (`tests/trap.rs` checks the faulting
//! address). So nothing here works around Wine.
//!
//! Below the usable part is what Windows keeps at the bottom of a
//! thread's stack, reserved only: a last guard page, room for the
//! stack-overflow handlers, and a bottom page of the reservation that is
//! never committed. `GuaranteedStackBytes` covers the handler room and the
//! last guard page, so when the moving guard page reaches the limit, it
//! becomes the last guard page, and touching that page is refused as
//! growth: it raises `EXCEPTION_STACK_OVERFLOW`, as on a thread's stack,
//! the OS commits the handler room, and the exception's dispatch and its
//! vectored handlers (std's, which prints the overflow message, the
//! overflow report, or a trap handler) run there. Running past that faults
//! on the reserved page, which belongs to no one else. Reading the last
//! guard page directly while the moving one is higher up is an access
//! violation (it is not committed), never a guard-page violation. The
//! guard page is always the page just below the committed part: a stack
//! committed whole (one page, or after an overflow, or where the switch
//! leaves the TEB to Rust) has the last guard page armed as `PAGE_GUARD`.
//! After an overflow (the OS then leaves no guard page and `StackLimit` at
//! the bottom of the room), `teb_fields` gives the room back and arms the
//! guard page again below what `VirtualQuery` finds committed, before the
//! stack's next use.
//!
//! Code that writes to a stack from *another* stack (the TEB then describes
//! that other one, and a guard page there is only an exception) is the
//! crate's own: it writes a new coroutine's closure at the top of its stack
//! before the first switch, and first commits the pages that needs
//! ([`Region::commit_from`]).

use core::ffi::c_void;
use core::num::NonZeroUsize;
use core::sync::atomic::{AtomicUsize, Ordering};
use std::io;

use windows_sys::Win32::System::Memory::{
    VirtualAlloc, VirtualFree, VirtualProtect, VirtualQuery, MEMORY_BASIC_INFORMATION, MEM_COMMIT,
    MEM_DECOMMIT, MEM_RELEASE, MEM_RESERVE, PAGE_GUARD, PAGE_READWRITE,
};
use windows_sys::Win32::System::SystemInformation::{GetSystemInfo, SYSTEM_INFO};

use super::teb::{self, StackTebFields};
use crate::os::RESIDENT_QUERY_PAGES;

/// Pages below the last guard page that stay committed for the handlers of
/// a stack overflow: 16 KiB (pages are 4 KiB on every Windows target).
const HANDLER_ROOM_PAGES: usize = 4;

/// Pages below each stack's limit: the last `PAGE_GUARD` page, the handler
/// room and the reserved page at the bottom.
pub(crate) const GUARD_PAGES: usize = 1 + HANDLER_ROOM_PAGES + 1;

/// Pages at the top of the usable part that are committed when a stack is
/// made (and again when a pool gives its memory back): one, as for a
/// thread's stack. The rest is committed as code on the stack reaches it.
const TOP_COMMIT_PAGES: usize = 1;

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

/// One stack's reservation, guard pages included, and what the TEB said of
/// it when code last left it. Released on drop.
#[derive(Debug)]
pub(crate) struct Region {
    /// The lowest address of the reservation: the never-committed page.
    start: usize,
    /// The lowest usable address, just above the last guard page.
    limit: NonZeroUsize,
    /// The highest address of the reservation.
    base: NonZeroUsize,
    /// The lowest committed usable address as far as this object knows:
    /// the TEB's `StackLimit` when code last left this stack, or what
    /// `commit_from` committed since (atomic only so that `teb_fields` and
    /// `commit_from` can change it through `&self`). Windows may have grown
    /// the stack further since (inside `on_stack`, which does not report
    /// back), so the truth may lie lower, never higher: `[teb_stack_limit,
    /// base)` is committed. Below `limit` after an overflow used up the
    /// last guard page.
    teb_stack_limit: AtomicUsize,
    /// The least `GuaranteedStackBytes` the TEB says: the handler room and
    /// the last guard page, so that the last guard page raises the
    /// overflow.
    min_guaranteed_bytes: usize,
    /// The TEB's `GuaranteedStackBytes` when code last left this stack.
    teb_guaranteed_bytes: usize,
}

/// Commits `len` bytes at `addr`, none of them committed yet, with
/// protection `protect`.
///
/// # Safety
/// The range must be whole reserved pages of a reservation of the
/// caller's.
unsafe fn commit_fresh(addr: usize, len: usize, protect: u32) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    // SAFETY: per the caller.
    let committed = unsafe { VirtualAlloc(addr as *const c_void, len, MEM_COMMIT, protect) };
    if committed.is_null() {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Commits `len` bytes at `addr` with protection `protect`, making the pages
/// that were committed already take that protection too.
///
/// # Safety
/// The range must be whole pages of a reservation of the caller's that no
/// code is using (or, made a guard page, whose contents no one needs).
unsafe fn commit(addr: usize, len: usize, protect: u32) -> io::Result<()> {
    let mut old = 0;
    // SAFETY: per the caller. Committing committed pages is allowed and
    // keeps their contents; VirtualProtect then sets the protection of the
    // whole range, which VirtualAlloc may leave alone on pages that were
    // committed already.
    unsafe {
        commit_fresh(addr, len, protect)?;
        if len != 0 && VirtualProtect(addr as *const c_void, len, protect, &mut old) == 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

impl Region {
    /// Reserves `mapping_len` bytes (a whole number of pages, more than
    /// `GUARD_PAGES`), commits the top of the usable part and makes the
    /// page below that top a guard page.
    pub(crate) fn new(mapping_len: usize) -> io::Result<Self> {
        let page = page_size();
        // SAFETY: a fresh reservation at an address of the system's choosing
        // touches no existing memory.
        let reservation =
            unsafe { VirtualAlloc(core::ptr::null(), mapping_len, MEM_RESERVE, PAGE_READWRITE) };
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
            base: NonZeroUsize::new(start + mapping_len).expect("VirtualAlloc wrapped around"),
            teb_stack_limit: AtomicUsize::new(start + mapping_len),
            teb_guaranteed_bytes: 0,
        };
        // On failure `region` drops here, releasing the reservation.
        region.commit_top()?;
        Ok(region)
    }

    /// The lowest address of the region: the bottom of the reservation.
    #[inline]
    pub(crate) fn start(&self) -> usize {
        self.start
    }

    /// The lowest usable address, just above the last guard page.
    #[inline(always)]
    pub(crate) fn limit(&self) -> NonZeroUsize {
        self.limit
    }

    /// The highest address of the region.
    #[inline(always)]
    pub(crate) fn base(&self) -> NonZeroUsize {
        self.base
    }

    /// Commits the top `TOP_COMMIT_PAGES` of the usable part (all of it, if
    /// it is smaller, or where the switch does not keep the TEB describing
    /// the running stack at every instant: see `os::teb::IN_SWITCH`) and makes
    /// the page below them a guard page, as on a fresh thread's stack:
    /// inside the usable part, or the last guard page below the limit if
    /// the whole usable part is committed. Records that as the commit
    /// limit. Nothing below the top may be committed but that guard page.
    fn commit_top(&self) -> io::Result<()> {
        let page = page_size();
        let (limit, base) = (self.limit.get(), self.base.get());
        let top = if teb::IN_SWITCH {
            base.saturating_sub(TOP_COMMIT_PAGES * page).max(limit)
        } else {
            limit
        };
        // SAFETY: both ranges are pages of our own reservation (the guard
        // page at least the handler room above its start), not committed,
        // and nothing runs on the stack now.
        unsafe {
            commit_fresh(top, base - top, PAGE_READWRITE)?;
            commit_fresh(top - page, page, PAGE_READWRITE | PAGE_GUARD)?;
        }
        self.teb_stack_limit.store(top, Ordering::Relaxed);
        Ok(())
    }

    /// The lowest address from which the usable part is committed
    /// read-write up to the base, read back from the OS with
    /// `VirtualQuery` (which reports runs of pages from a given address
    /// up).
    fn committed_from(&self) -> usize {
        let (limit, base) = (self.limit.get(), self.base.get());
        let mut at = limit;
        while at < base {
            // SAFETY: VirtualQuery only fills the structure it is given.
            let info = unsafe {
                let mut info: MEMORY_BASIC_INFORMATION = core::mem::zeroed();
                let len = core::mem::size_of::<MEMORY_BASIC_INFORMATION>();
                if VirtualQuery(at as *const c_void, &mut info, len) != len {
                    return base;
                }
                info
            };
            let end = (info.BaseAddress as usize + info.RegionSize).min(base);
            if end == base && info.State == MEM_COMMIT && info.Protect == PAGE_READWRITE {
                return at;
            }
            at = end;
        }
        base
    }

    /// After a stack overflow (the OS then commits the handler room and
    /// lowers `StackLimit` to its bottom, and no guard page is left):
    /// gives the handler room back, finds what is committed, and arms the
    /// guard page below that again, so that the stack is as if it had grown
    /// that far and the next overflow is raised as the first was.
    fn rearm_after_overflow(&self) -> io::Result<usize> {
        let page = page_size();
        let low = self.start + page;
        // SAFETY: the handler room and the last guard page lie in our
        // reservation below the limit, and nothing runs on the stack now.
        if unsafe { VirtualFree(low as *mut c_void, self.limit.get() - low, MEM_DECOMMIT) } == 0 {
            return Err(io::Error::last_os_error());
        }
        let bottom = self.committed_from();
        // SAFETY: the page below `bottom` is in our reservation, at least
        // the handler room above its start; its contents are no one's.
        unsafe { commit(bottom - page, page, PAGE_READWRITE | PAGE_GUARD)? };
        self.teb_stack_limit.store(bottom, Ordering::Relaxed);
        Ok(bottom)
    }

    /// Makes `[low, base)` committed (rounded out to pages, and no lower
    /// than the limit), for code that writes there before any code runs on
    /// the stack, which is idle: the page below becomes the guard page, as
    /// if code on the stack had grown it that far. Does nothing if that
    /// part is committed already.
    pub(crate) fn commit_from(&self, low: usize) -> io::Result<()> {
        let page = page_size();
        let low = (low & !(page - 1)).max(self.limit.get());
        let committed = self.teb_stack_limit.load(Ordering::Relaxed);
        if low >= committed {
            return Ok(());
        }
        // SAFETY: `[low, committed)` and the page below lie in the usable
        // part of our own reservation, and the stack is idle; the page that
        // was the guard page (just below `committed`) becomes read-write.
        unsafe {
            commit(low, committed - low, PAGE_READWRITE)?;
            commit(low - page, page, PAGE_READWRITE | PAGE_GUARD)?;
        }
        self.teb_stack_limit.store(low, Ordering::Relaxed);
        Ok(())
    }

    /// Drops the contents of the stack's pages, giving the memory back to
    /// the OS (they read as zero afterwards), and leaves the stack as it
    /// was made: only its top committed and a guard page below that.
    /// Returns false if that failed, in which case the region must not be
    /// reused.
    pub(crate) fn discard(&self) -> bool {
        let low = self.start + page_size();
        let len = self.base.get() - low;
        // SAFETY: the range is our own reservation but its bottom page, and
        // nothing runs on it (the stack is being returned to the pool);
        // decommitting and committing again gives fresh zero pages.
        let decommitted = unsafe { VirtualFree(low as *mut c_void, len, MEM_DECOMMIT) != 0 };
        decommitted && self.commit_top().is_ok()
    }

    /// The TEB's stack fields for this stack, which is idle (about to be
    /// used by a new coroutine or `on_stack` call). If a stack overflow
    /// used up the last guard page last time, a guard page is armed again
    /// first.
    pub(crate) fn teb_fields(&self) -> StackTebFields {
        let mut stack_limit = self.teb_stack_limit.load(Ordering::Relaxed);
        if stack_limit < self.limit.get() {
            if let Ok(bottom) = self.rearm_after_overflow() {
                stack_limit = bottom;
            }
        }
        StackTebFields {
            StackBase: self.base.get(),
            StackLimit: stack_limit,
            DeallocationStack: self.start,
            GuaranteedStackBytes: self.teb_guaranteed_bytes.max(self.min_guaranteed_bytes),
        }
    }

    /// Records the TEB's stack fields as code left this stack: Windows
    /// lowers `StackLimit` as the stack grows (below the limit once an
    /// overflow used up the last guard page, which `teb_fields` then arms
    /// again). Anything outside the reservation is not believed.
    pub(crate) fn update_teb_fields(&mut self, stack_limit: usize, guaranteed_stack_bytes: usize) {
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

/// [`Region::commit_from`] for `Stack::__commit_from`, which cannot fail:
/// a stack whose closure cannot be committed is no stack to run on.
///
/// # Panics
///
/// If the memory cannot be committed (the system's commit limit reached).
pub(crate) fn commit_or_panic(region: &Region, low: usize) {
    if let Err(error) = region.commit_from(low) {
        panic!(
            "switchback: failed to commit {} bytes of a coroutine stack: {error}",
            region.base.get() - low
        );
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
