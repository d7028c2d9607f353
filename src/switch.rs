//! The work around every stack switch (enter, arrive, suspend, leave):
//! announcing it to AddressSanitizer (`sanitizer`) and, on Windows,
//! swapping the TEB's stack fields (`os::teb`). The only caller of either;
//! `coroutine` and `on_stack` call these around each `arch` switch, so
//! anything new that must hear about switches is added here.
//!
//! Without the `sanitizer` feature and off Windows every item here
//! compiles away. The order of each function's steps matters (the
//! sanitizer's fiber protocol, and a TEB that describes the stack about to
//! run before it runs); each says which switch it goes around.

use crate::arch;
#[cfg(windows)]
use crate::os::teb::{self, TebState};
use crate::sanitizer::{self, SavedContext, StackExtent};
use crate::stack::Stack;
use crate::word::StackPointer;

/// What a coroutine keeps just below its architecture's reserved top, for
/// the trackers (nothing without the `sanitizer` feature, except on
/// Windows).
///
/// On Windows the two TEB states come last, in this order: the x86-64
/// switch swaps them itself, finding them from the stack's base (see
/// `arch/x86_64_windows.rs`), so their place is fixed (checked below).
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct SwitchRecord {
    /// The stack of whoever resumed it last, to switch back to.
    parent: StackExtent,
    /// The stack it was on when it last suspended (its own, or one it moved
    /// to with `on_stack`), for the parent to announce on the next resume.
    resume: StackExtent,
    /// Windows: the TEB's stack fields of whoever resumed it last, written
    /// by the parent as it resumes, put back by the coroutine as it leaves.
    #[cfg(windows)]
    parent_teb: TebState,
    /// Windows: the TEB's stack fields for the stack it was on when it last
    /// suspended, written by the coroutine as it leaves, put in place by
    /// the parent as it resumes.
    #[cfg(windows)]
    resume_teb: TebState,
}

/// Bytes reserved on a coroutine stack below the architecture's reserved
/// top for its [`SwitchRecord`] (zero without the `sanitizer` feature,
/// except on Windows).
pub const RECORD_RESERVE: usize = core::mem::size_of::<SwitchRecord>();
const _: () = assert!(RECORD_RESERVE.is_multiple_of(16));
#[cfg(windows)]
const _: () = {
    let state = core::mem::size_of::<TebState>();
    assert!(core::mem::offset_of!(SwitchRecord, parent_teb) == RECORD_RESERVE - 2 * state);
    assert!(core::mem::offset_of!(SwitchRecord, resume_teb) == RECORD_RESERVE - state);
};

/// Where a coroutine keeps its [`SwitchRecord`], given its link: just
/// below the architecture's reserved top.
///
/// # Safety
/// `link` must be a coroutine's link, with the reserve below the top.
#[inline(always)]
pub unsafe fn record_slot(link: *mut StackPointer) -> *mut SwitchRecord {
    (link as usize + arch::LINK_OFFSET - arch::RESERVED_TOP - RECORD_RESERVE) as *mut SwitchRecord
}

/// A stack as the trackers see it, before anything runs on it.
#[derive(Clone, Copy)]
pub struct FreshStack {
    extent: StackExtent,
    #[cfg(windows)]
    teb: TebState,
}

impl FreshStack {
    /// The view of `stack`, whose bounds are `[limit, base)`. Where the
    /// trackers start it from a stack's own say (Windows' TEB fields), a
    /// user `Stack` may panic here: nothing has been written yet.
    #[inline(always)]
    pub fn of(stack: &impl Stack, limit: StackPointer, base: StackPointer) -> Self {
        let _ = stack;
        Self {
            extent: StackExtent::new(|| limit.get(), base.get()),
            #[cfg(windows)]
            teb: TebState::fresh(stack.teb_fields()),
        }
    }
}

/// Makes a reused stack, or one whose frames were abandoned (by a trap
/// handler), clean for the sanitizer again.
#[inline(always)]
pub fn forget_frames(limit: usize, base: usize) {
    sanitizer::unpoison(limit, base);
}

/// Writes a new coroutine's record, for the stack `fresh`, to `slot`
/// (from [`record_slot`]). The parent's TEB state is written at every
/// resume; until then it holds the same as the coroutine's.
///
/// # Safety
/// `slot` must be writable and the coroutine's.
#[inline(always)]
pub unsafe fn write_record(slot: *mut SwitchRecord, fresh: FreshStack) {
    // SAFETY: per the caller.
    unsafe {
        core::ptr::write(
            slot,
            SwitchRecord {
                parent: StackExtent::unknown(),
                resume: fresh.extent,
                #[cfg(windows)]
                parent_teb: fresh.teb,
                #[cfg(windows)]
                resume_teb: fresh.teb,
            },
        )
    }
}

/// A resume under way: what [`resume_start`] saved for [`resume_end`].
pub struct Resuming {
    saved: SavedContext,
    #[cfg(windows)]
    record: *mut SwitchRecord,
    /// The TEB's stack fields the coroutine was entered with.
    #[cfg(windows)]
    entered: crate::os::teb::StackTebFields,
}

/// Before the parent's switch into a suspended (or new) coroutine whose
/// record is `record`: announces the coroutine's stack, and on Windows
/// saves the parent's TEB fields in the record and puts the coroutine's in
/// place.
///
/// # Safety
/// The switch must follow, then [`resume_end`]; the coroutine must not be
/// running (it changes its record only while it runs).
#[inline(always)]
pub unsafe fn resume_start(record: *mut SwitchRecord) -> Resuming {
    // SAFETY: per the caller: the record is not being changed, and the
    // switch follows the announcement.
    unsafe {
        let saved = sanitizer::start_switch((*record).resume);
        #[cfg(windows)]
        let entered = {
            let entered = (*record).resume_teb;
            // Where the switch swaps the fields itself, it does this.
            if !teb::IN_SWITCH {
                (*record).parent_teb = teb::read();
                teb::write(&entered);
            }
            entered.fields
        };
        Resuming {
            saved,
            #[cfg(windows)]
            record,
            #[cfg(windows)]
            entered,
        }
    }
}

/// The resume has come back (the coroutine suspended or left).
pub struct Resumed {
    #[cfg(windows)]
    record: *mut SwitchRecord,
    #[cfg(windows)]
    entered: crate::os::teb::StackTebFields,
}

/// Right after the parent's switch into a coroutine returns: completes the
/// sanitizer's switch back to the parent.
///
/// # Safety
/// `resuming` is what [`resume_start`] returned before the switch.
#[inline(always)]
pub unsafe fn resume_end(resuming: Resuming) -> Resumed {
    // SAFETY: per the caller, we have just arrived back.
    unsafe { sanitizer::finish_switch(resuming.saved) };
    Resumed {
        #[cfg(windows)]
        record: resuming.record,
        #[cfg(windows)]
        entered: resuming.entered,
    }
}

impl Resumed {
    /// Tells `stack`, whose base is `base`, what Windows changed in its TEB
    /// fields while the coroutine ran on it (Windows lowers the limit as
    /// the stack grows, and code on it may set a guarantee), so that the
    /// next coroutine on it starts from them; not when the coroutine
    /// suspended on another stack (inside `on_stack`). Nothing elsewhere.
    /// May run user code (`Stack::update_teb_fields`): call it once the
    /// coroutine's state is recorded.
    ///
    /// # Safety
    /// The coroutine of the record must not be running.
    #[inline(always)]
    pub unsafe fn tell_stack(self, base: StackPointer, stack: &mut impl Stack) {
        #[cfg(windows)]
        // SAFETY: per the caller, the record is not being changed.
        unsafe {
            let left = (*self.record).resume_teb.fields;
            let entered = self.entered;
            if left.StackBase == base.get()
                && (left.StackLimit, left.GuaranteedStackBytes)
                    != (entered.StackLimit, entered.GuaranteedStackBytes)
            {
                stack.update_teb_fields(left.StackLimit, left.GuaranteedStackBytes);
            }
        }
        let _ = (self, base, stack);
    }
}

/// On a coroutine's stack, the first thing its first frame does: completes
/// the sanitizer's switch and records the parent's stack.
///
/// # Safety
/// Must run first on arrival; `link` is the coroutine's.
#[inline(always)]
pub unsafe fn arrive_first(link: *mut StackPointer) {
    // SAFETY: we just arrived on this stack for the first time; the slot
    // below the link is reserved for the record.
    unsafe { (*record_slot(link)).parent = sanitizer::finish_switch(SavedContext::none()) };
}

/// On Windows, as a coroutine leaves its stack (suspending or for good):
/// records the TEB's fields for it (Windows may have changed them as the
/// stack grew) and puts back its parent's, so that the parent's code never
/// runs under the coroutine's stack bounds. Nothing elsewhere.
///
/// # Safety
/// `record` must be the running coroutine's, about to switch to its parent.
#[inline(always)]
unsafe fn leave_stack(record: *mut SwitchRecord) {
    // Where the switch swaps the fields itself, it does this.
    #[cfg(windows)]
    if !teb::IN_SWITCH {
        // SAFETY: the parent wrote its fields as it resumed us, and we are
        // about to run on its stack.
        unsafe {
            (*record).resume_teb = teb::read();
            teb::write(&(*record).parent_teb);
        }
    }
    let _ = record;
}

/// A suspend under way: what [`suspend_start`] saved for [`suspend_end`].
pub struct Suspending(SavedContext);

/// Before a running coroutine's switch to its parent (`switch_yield`):
/// records where it will continue, puts the parent's TEB fields back and
/// announces the parent's stack.
///
/// # Safety
/// `link` is the running coroutine's; the switch must follow, then
/// [`suspend_end`] when it is resumed.
#[inline(always)]
pub unsafe fn suspend_start(link: *mut StackPointer) -> Suspending {
    // SAFETY: per the caller; the record lies below the link.
    unsafe {
        let record = record_slot(link);
        (*record).resume = sanitizer::current();
        leave_stack(record);
        Suspending(sanitizer::start_switch((*record).parent))
    }
}

/// Right after a suspended coroutine is resumed: completes the sanitizer's
/// switch and records the stack of whoever resumed it (another parent may
/// resume it each time).
///
/// # Safety
/// `suspending` is what [`suspend_start`] returned before the switch;
/// `link` is the coroutine's.
#[inline(always)]
pub unsafe fn suspend_end(link: *mut StackPointer, suspending: Suspending) {
    // SAFETY: per the caller.
    unsafe { (*record_slot(link)).parent = sanitizer::finish_switch(suspending.0) };
}

/// Before a coroutine's switch to its parent for good
/// (`switch_and_reset`): puts the parent's TEB fields back and announces
/// the parent's stack as the end of this context.
///
/// # Safety
/// `link` is the running coroutine's; the switch must follow.
#[inline(always)]
pub unsafe fn leave_for_good(link: *mut StackPointer) {
    // SAFETY: per the caller.
    unsafe {
        let record = record_slot(link);
        leave_stack(record);
        sanitizer::start_final_switch((*record).parent);
    }
}

/// The stack of whoever resumed the running coroutine, as the trackers see
/// it, for running code there (`on_parent_stack`).
///
/// # Safety
/// `link` is the running coroutine's.
#[inline(always)]
pub unsafe fn parent_stack(link: *mut StackPointer) -> FreshStack {
    // SAFETY: per the caller; the parent wrote its part as it resumed us.
    unsafe {
        let record = record_slot(link);
        FreshStack {
            extent: (*record).parent,
            #[cfg(windows)]
            teb: (*record).parent_teb,
        }
    }
}

/// Calls `f(arg)` with the stack pointer at `top` (`arch::on_stack`), on the
/// stack that the trackers see as `to`: announces it, and on Windows puts
/// its bounds in the TEB for the call and ours back after it (in the
/// switch itself where `os::teb::IN_SWITCH` says so, around it elsewhere;
/// the call's leaving code runs no Rust).
///
/// # Safety
/// As `arch::on_stack`; `f` must begin with [`call_arrive`] and end with
/// [`call_leave`].
#[inline(always)]
pub unsafe fn call_on(to: &FreshStack, arg: *mut u8, top: usize, f: arch::StackCallFn) {
    // SAFETY: per the caller; the thread runs on `to` between the halves.
    unsafe {
        let saved = sanitizer::start_switch(to.extent);
        #[cfg(all(windows, target_arch = "x86_64"))]
        arch::on_stack_with_teb(arg, top, f, &to.teb);
        #[cfg(all(windows, not(target_arch = "x86_64")))]
        {
            let saved_teb = teb::read();
            teb::write(&to.teb);
            arch::on_stack(arg, top, f);
            teb::write(&saved_teb);
        }
        #[cfg(not(windows))]
        arch::on_stack(arg, top, f);
        sanitizer::finish_switch(saved);
    }
}

/// The first thing on the other stack of a call: completes the
/// sanitizer's switch; returns the caller's stack, for [`call_leave`].
///
/// # Safety
/// Must run first on arrival.
#[inline(always)]
pub unsafe fn call_arrive() -> StackExtent {
    // SAFETY: per the caller; we leave this stack for good when we return,
    // so the sanitizer's context for it ends there.
    unsafe { sanitizer::finish_switch(SavedContext::none()) }
}

/// The last thing on the other stack of a call before it returns to
/// `caller` (from [`call_arrive`]).
///
/// # Safety
/// The return to the caller's stack must follow.
#[inline(always)]
pub unsafe fn call_leave(caller: StackExtent) {
    // SAFETY: per the caller.
    unsafe { sanitizer::start_final_switch(caller) };
}
