//! The context switch for LoongArch64 (LP64D, and LP64S without float registers).
//!
//! # Stack layout
//!
//! ```text
//! coroutine stack                          parent stack while it runs
//! +--------------------+ <- base = root fp +--------------------+ <- link value
//! | return label       |  base - 8         | return address ra  |  lv - 8    a frame record
//! +--------------------+                   | saved fp           |  lv - 16   {fp, ra} below lv
//! | parent link  ------+------------------>| saved s8           |  lv - 24
//! +--------------------+  base - 16        | (unused)           |
//! | closure object     |                   +--------------------+ <- parent sp (lv - 32)
//! ~        ...         ~
//! +--------------------+ <- obj (16-aligned)
//! | entry fn           |  only until the first resume
//! | coroutine_root     |
//! +--------------------+ <- initial sp (obj - 16)
//! ```
//!
//! The link value is the parent's stack pointer outside its `asm!` block;
//! the parent's record lies in the four words below it. `{saved fp, ra}`
//! sits where the LoongArch frame-pointer convention puts a frame record
//! (the two words below the frame pointer), and the root frame's `fp` is
//! the stack base, whose record is `{link, return label}`, so the
//! frame-pointer chain runs from the coroutine into its parent.
//!
//! A suspended coroutine keeps, at its saved stack pointer, the four words
//! `[resume address, fp, s8, unused]`.
//!
//! # Register contract of a switch
//!
//! The psABI makes `s0`-`s8`, `fp` (`r22`), `fs0`-`fs7` (with float
//! registers) and `sp` callee-saved. LLVM will not let an `asm!` block
//! clobber `fp` or `s8` (its base pointer), so those are saved by hand;
//! `s0`-`s7` and the float ones (only when the target has them) are declared
//! clobbered with everything caller-saved, so the compiler spills only what
//! is live across the switch. The word passed across is in `a0`; the
//! coroutine's new stack pointer (or exit code) comes back in `a1`. The
//! parent's `jirl $ra` (a call) is matched by the coroutine's `jirl $zero,
//! $ra` (a return), so the return-address stack stays in step. The parent
//! stores the link itself, so the resume point needs nothing from it but
//! `a1`: an ordinary resume passes the stack base there,
//! `switch_and_unwind` passes 0, which `switch_yield` reports as the unwind
//! request.

use core::arch::{asm, naked_asm};

use super::{EntryFn, StackCallFn, TrapEntryFn};
use crate::word::{StackPointer, Word};

/// Alignment of the stack pointer at a call boundary.
pub const STACK_ALIGNMENT: usize = 16;
/// The parent link is the word at `base - LINK_OFFSET`.
pub const LINK_OFFSET: usize = 16;
/// The link and the root frame's return label.
pub const RESERVED_TOP: usize = 16;
/// `init_stack` writes the root's address and the entry fn below the object.
pub const INIT_FRAME_SIZE: usize = 16;

/// `unwinding_asm!` for a switch to another context: besides the operands
/// given, every register that the ABI lets a callee keep (s0-s7, and
/// fs0-fs7 where the target has float registers) and every caller-saved one
/// is clobbered, so the compiler spills only what is live. fp and s8, which
/// LLVM reserves, are saved by the asm itself.
#[cfg(target_feature = "f")]
macro_rules! context_switch_asm {
    ($($body:tt)*) => {
        unwinding_asm!(
            $($body)*
            lateout("$s0") _, lateout("$s1") _, lateout("$s2") _, lateout("$s3") _,
            lateout("$s4") _, lateout("$s5") _, lateout("$s6") _, lateout("$s7") _,
            lateout("$fs0") _, lateout("$fs1") _, lateout("$fs2") _, lateout("$fs3") _,
            lateout("$fs4") _, lateout("$fs5") _, lateout("$fs6") _, lateout("$fs7") _,
            clobber_abi("C")
        )
    };
}
#[cfg(not(target_feature = "f"))]
macro_rules! context_switch_asm {
    ($($body:tt)*) => {
        unwinding_asm!(
            $($body)*
            lateout("$s0") _, lateout("$s1") _, lateout("$s2") _, lateout("$s3") _,
            lateout("$s4") _, lateout("$s5") _, lateout("$s6") _, lateout("$s7") _,
            clobber_abi("C")
        )
    };
}

/// The root frame of every coroutine.
///
/// Entered by the parent's `jirl $ra` in `switch_and_link` on the first
/// resume with: `a0` = input word, `a1` = stack base, `a2` = initial stack
/// pointer (`[a2]` = this function, `[a2 + 8]` = entry fn, `a2 + 16` =
/// object), `ra` = the parent's return address, `sp` = the parent's record
/// (fp and s8 saved, the link already stored). It completes the record with
/// `ra`, points `fp` at the stack base, writes the return label below it and
/// calls `entry(input, link, obj)` on the coroutine stack, so that `ra` is
/// the return label (label 2) and the CFI below describes the frame.
/// `entry` never returns.
///
/// The CFI (DWARF registers: 1 = ra, 3 = sp, 22 = fp, 31 = s8) says:
/// CFA = [fp - 16] (the link: the parent's stack pointer outside its `asm!`
/// block), ra at CFA-8, fp at CFA-16, s8 at CFA-24. It is marked a signal
/// frame because the parent's stack may lie above or below this one, which
/// debuggers otherwise reject; so the parent's return address must not be
/// the last instruction of its `asm!` block, and it is not.
#[unsafe(naked)]
unsafe extern "C" fn coroutine_root() {
    naked_asm!(
        ".cfi_startproc",
        ".cfi_signal_frame",
        ".cfi_def_cfa 3, 32",
        ".cfi_offset 22, -16",
        ".cfi_offset 31, -24",
        "st.d $ra, $sp, 24",
        ".cfi_offset 1, -8",
        "move $fp, $a1",
        // DW_CFA_def_cfa_expression, 3 bytes: DW_OP_breg22 (fp) -16;
        // DW_OP_deref.
        ".cfi_escape 0x0f, 3, 0x86, 0x70, 0x06",
        "la.local $t0, 2f",
        "st.d $t0, $a1, -8",
        "ld.d $t1, $a2, 8",
        "addi.d $sp, $a2, 16",
        "addi.d $a1, $a1, -16",
        "move $a2, $sp",
        "jirl $ra, $t1, 0",
        "2:",
        "break 0",
        ".cfi_endproc",
    )
}

/// The frame `on_stack` runs its function under.
///
/// Entered by `bl` with `a0` = argument, `a1` = new stack top (16-aligned),
/// `a2` = function. Pushes a four-word record `{.., fp, ra}`, points `fp` at
/// its top (a frame record by the LoongArch convention), switches `sp`,
/// calls `a2(a0)` and switches back. The CFA is `fp`-based so unwinding
/// from the new stack lands back on the old one.
#[unsafe(naked)]
unsafe extern "C" fn stack_call_root() {
    naked_asm!(
        ".cfi_startproc",
        ".cfi_signal_frame",
        "addi.d $sp, $sp, -32",
        ".cfi_def_cfa_offset 32",
        "st.d $ra, $sp, 24",
        "st.d $fp, $sp, 16",
        ".cfi_offset 1, -8",
        ".cfi_offset 22, -16",
        "addi.d $fp, $sp, 32",
        ".cfi_def_cfa 22, 0",
        "move $sp, $a1",
        "jirl $ra, $a2, 0",
        "addi.d $sp, $fp, -32",
        ".cfi_def_cfa 3, 32",
        "ld.d $ra, $sp, 24",
        "ld.d $fp, $sp, 16",
        "addi.d $sp, $sp, 32",
        ".cfi_def_cfa_offset 0",
        "jirl $zero, $ra, 0",
        ".cfi_endproc",
    )
}

/// Writes the initial frame below `obj` and returns the initial stack pointer.
///
/// # Safety
/// `obj` must be 16-aligned, at most `base - RESERVED_TOP`, and the
/// `INIT_FRAME_SIZE` bytes below it must be writable stack memory.
#[inline]
pub unsafe fn init_stack(_base: StackPointer, obj: usize, entry: EntryFn) -> StackPointer {
    let sp = obj - INIT_FRAME_SIZE;
    // SAFETY: the caller guarantees that [obj - 16, obj) is writable and
    // 16-aligned, so both words are aligned and in bounds.
    unsafe {
        *((sp + 8) as *mut usize) = entry as usize;
        *(sp as *mut usize) = coroutine_root as *const () as usize;
        StackPointer::new_unchecked(sp)
    }
}

/// Resumes the coroutine suspended at `sp` on the stack whose base is `base`.
///
/// # Safety
/// `sp` must be the stack pointer of a suspended (or freshly initialised)
/// coroutine on the stack at `base`, and `arg` what it expects.
#[inline(always)]
pub unsafe fn switch_and_link(arg: Word, sp: StackPointer, base: StackPointer) -> (Word, usize) {
    let (ret_arg, ret_sp): (Word, usize);
    // SAFETY: the caller guarantees that `sp` is a coroutine waiting to be
    // resumed; it returns here through the return matching this call.
    unsafe {
        context_switch_asm!(
            // In: a0 = word, a1 = stack base, a2 = coroutine sp.
            // Out: a0 = word, a1 = new coroutine sp or exit code.
            // Stores the link (our sp), pushes the four-word record with fp
            // and s8 (the coroutine adds ra) and calls the resume address
            // at [a2]; fp and s8 are reloaded here afterwards, sp and ra by
            // the coroutine. Everything else is clobbered.
            "st.d $sp, $a1, -16",
            "addi.d $sp, $sp, -32",
            "st.d $fp, $sp, 16",
            "st.d $s8, $sp, 8",
            "ld.d $t0, $a2, 0",
            "jirl $ra, $t0, 0",
            "ld.d $fp, $sp, 16",
            "ld.d $s8, $sp, 8",
            "addi.d $sp, $sp, 32",
            inlateout("$a0") arg => ret_arg,
            inlateout("$a1") base.get() => ret_sp,
            inlateout("$a2") sp.get() => _,
        );
    }
    (ret_arg, ret_sp)
}

/// Resumes the coroutine suspended at `sp` so that its `switch_yield`
/// returns `None`: the request to unwind its stack.
///
/// # Safety
/// As `switch_and_link`, and the coroutine must have started (it is
/// suspended in `switch_yield`, not at its initial frame).
#[cfg_attr(not(feature = "unwind"), allow(dead_code))]
#[inline(never)]
pub unsafe fn switch_and_unwind(sp: StackPointer, base: StackPointer) -> (Word, usize) {
    let (ret_arg, ret_sp): (Word, usize);
    // SAFETY: as switch_and_link; the resume point in switch_yield reads
    // nothing from a1 but the flag, so 0 there is the whole request.
    unsafe {
        context_switch_asm!(
            // In: a1 = stack base, a2 = coroutine sp.
            // Out: a0 = word, a1 = new coroutine sp or exit code.
            // As switch_and_link, but enters the coroutine with a1 = 0,
            // which switch_yield reports as the unwind request.
            "st.d $sp, $a1, -16",
            "move $a1, $zero",
            "addi.d $sp, $sp, -32",
            "st.d $fp, $sp, 16",
            "st.d $s8, $sp, 8",
            "ld.d $t0, $a2, 0",
            "jirl $ra, $t0, 0",
            "ld.d $fp, $sp, 16",
            "ld.d $s8, $sp, 8",
            "addi.d $sp, $sp, 32",
            lateout("$a0") ret_arg,
            inlateout("$a1") base.get() => ret_sp,
            inlateout("$a2") sp.get() => _,
        );
    }
    (ret_arg, ret_sp)
}

/// Suspends the running coroutine, handing `arg` to its parent. Returns the
/// word of the next resume, or `None` if the parent asks the coroutine to
/// unwind its stack (`switch_and_unwind`).
///
/// # Safety
/// Must run on the coroutine stack whose link is `link`, while it is running.
#[inline(always)]
pub unsafe fn switch_yield(arg: Word, link: *mut StackPointer) -> Option<Word> {
    let (ret_arg, unwind_flag): (Word, usize);
    // SAFETY: the link holds the parent's stack pointer, below which lies
    // the record `switch_and_link` left there; we resume at label 2 when the
    // parent's next call lands there.
    unsafe {
        context_switch_asm!(
            // In: a0 = word, a2 = link.
            // Out: a0 = word from the parent, a1 = 0 if asked to unwind.
            // Pushes [resume address, fp, s8, -], hands its sp to the
            // parent in a1, loads the parent's sp and ra from the link and
            // returns into it (the parent reloads its fp and s8).
            // Resumed at 2 with a0 = word, a1 = base (or 0), a2 = our sp,
            // ra = the parent's return address and sp = the parent's
            // record, whose ra slot it fills.
            "addi.d $sp, $sp, -32",
            "st.d $fp, $sp, 8",
            "st.d $s8, $sp, 16",
            "la.local $t0, 2f",
            "st.d $t0, $sp, 0",
            "move $a1, $sp",
            "ld.d $t1, $a2, 0",
            "ld.d $ra, $t1, -8",
            "addi.d $sp, $t1, -32",
            "jirl $zero, $ra, 0",
            "2:",
            "st.d $ra, $sp, 24",
            "ld.d $fp, $a2, 8",
            "ld.d $s8, $a2, 16",
            "addi.d $sp, $a2, 32",
            inlateout("$a0") arg => ret_arg,
            lateout("$a1") unwind_flag,
            inlateout("$a2") link => _,
        );
    }
    if unwind_flag == 0 {
        None
    } else {
        Some(ret_arg)
    }
}

/// Leaves the coroutine for the last time, handing `arg` and `exit` (a code
/// below `MIN_STACK_SIZE`, so never a stack pointer) to its parent.
///
/// # Safety
/// Must run on the coroutine stack whose link is `link`; nothing on this
/// stack may need dropping.
#[inline(always)]
pub unsafe fn switch_and_reset(arg: Word, exit: usize, link: *mut StackPointer) -> ! {
    // SAFETY: as for `switch_yield`; the exit code in a1 tells the parent
    // the coroutine finished, so it is never resumed.
    unsafe {
        asm!(
            // In: a0 = word, a1 = exit code, a2 = link. Never returns.
            // Loads the parent's sp and ra from the link and returns into
            // it; the parent reloads its fp and s8.
            "ld.d $t1, $a2, 0",
            "ld.d $ra, $t1, -8",
            "addi.d $sp, $t1, -32",
            "jirl $zero, $ra, 0",
            in("$a0") arg,
            in("$a1") exit,
            in("$a2") link,
            options(noreturn)
        )
    }
}

/// Calls `f(arg)` with the stack pointer at `top`.
///
/// # Safety
/// `top` must be 16-aligned with enough writable stack below it for `f`.
#[inline(always)]
pub unsafe fn on_stack(arg: *mut u8, top: usize, f: StackCallFn) {
    // SAFETY: stack_call_root saves and restores fp, ra and sp; `f` follows
    // the C ABI, so only caller-saved registers change.
    unsafe {
        unwinding_asm!(
            // In: a0 = argument, a1 = new stack top, a2 = function.
            // The nop keeps the return address inside this block, because
            // the root is a signal frame (see coroutine_root).
            "bl {root}",
            "nop",
            root = sym stack_call_root,
            inlateout("$a0") arg => _,
            inlateout("$a1") top => _,
            inlateout("$a2") f => _,
            clobber_abi("C")
        );
    }
}

/// Registers that a trap handler writes into the interrupted context so that
/// the coroutine runs the function given to
/// [`CoroutineTrapHandler::setup_trap_handler`](crate::trap::CoroutineTrapHandler::setup_trap_handler)
/// and then returns its result to the parent.
///
/// Every field must be written; destructure it so the compiler checks that
/// none is missed:
///
/// ```
/// # use switchback::trap::TrapHandlerRegs;
/// # let regs = TrapHandlerRegs { pc: 0, sp: 0, a0: 0, a1: 0, fp: 0, ra: 0 };
/// let TrapHandlerRegs { pc, sp, a0, a1, fp, ra } = regs;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrapHandlerRegs {
    /// Program counter.
    pub pc: u64,
    /// Stack pointer (`r3`).
    pub sp: u64,
    /// First argument register (`r4`).
    pub a0: u64,
    /// Second argument register (`r5`).
    pub a1: u64,
    /// Frame pointer (`r22`; the root frame's: the stack base).
    pub fp: u64,
    /// Return address (`r1`; the root frame's return label).
    pub ra: u64,
}

/// The registers that make the interrupted coroutine call `entry(obj, link)`
/// as if from its root frame.
///
/// # Safety
/// The coroutine at `base` must have started (its root frame wrote the return
/// label), and `obj` must be 16-aligned below `base - RESERVED_TOP`.
pub unsafe fn trap_handler_regs(
    base: StackPointer,
    obj: usize,
    entry: TrapEntryFn,
) -> TrapHandlerRegs {
    let link = base.get() - LINK_OFFSET;
    // SAFETY: the return label at base - 8 was written by coroutine_root,
    // which ran (the caller guarantees the coroutine started).
    let ra = unsafe { *((base.get() - 8) as *const usize) };
    TrapHandlerRegs {
        pc: entry as usize as u64,
        sp: obj as u64,
        a0: obj as u64,
        a1: link as u64,
        fp: base.get() as u64,
        ra: ra as u64,
    }
}

/// The highest address below which the parent stack is free: the parent's
/// record lies in the four words below the link value.
#[inline]
pub fn parent_stack_top(link_value: usize) -> usize {
    (link_value - 32) & !(STACK_ALIGNMENT - 1)
}

/// Valgrind's client request: `args[0]` is the request code.
///
/// # Safety
/// `args` must be a valid request for Valgrind.
#[inline(never)]
pub unsafe fn valgrind_client_request(default: usize, args: &[usize; 6]) -> usize {
    let result;
    // SAFETY: outside Valgrind the four shifts of $zero and `or $t1, $t1,
    // $t1` change nothing; under Valgrind the sequence is recognised and a7
    // receives the answer.
    unsafe {
        asm!(
            // In: a7 = default, t0 = &args. Out: a7 = result.
            "srli.d $zero, $zero, 3",
            "srli.d $zero, $zero, 13",
            "srli.d $zero, $zero, 29",
            "srli.d $zero, $zero, 19",
            "or $t1, $t1, $t1",
            inout("$a7") default => result,
            in("$t0") args.as_ptr(),
            options(nostack)
        );
    }
    result
}
