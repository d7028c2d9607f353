//! The context switch for RISC-V (RV64 and RV32, with or without the F/D extensions).
//!
//! # Stack layout
//!
//! `W` is the register width (8 bytes on RV64, 4 on RV32). Every record is
//! four words, 16-byte aligned on both widths.
//!
//! ```text
//! coroutine stack                          parent stack while it runs
//! +--------------------+ <- base = root s0 +--------------------+ <- link value (lv)
//! | return label       |  base - W         | return address ra  |  lv - W    {s0, ra}: a
//! | parent link  ------+------------------>| saved s0           |  lv - 2W   frame record
//! | (RV32: unused)     |                   | saved s1           |  lv - 3W
//! +--------------------+ <- base - 16      | (unused)           |
//! | closure object     |                   +--------------------+ <- parent sp (lv - 4W)
//! ~        ...         ~
//! +--------------------+ <- obj (16-aligned)
//! | (RV32: unused)     |
//! | entry fn           |  only until the first resume
//! | coroutine_root     |
//! +--------------------+ <- initial sp (obj - 16)
//! ```
//!
//! The link value is the parent's stack pointer outside its `asm!` block;
//! the parent's record lies in the four words below it. `{saved s0, ra}`
//! sits where the RISC-V frame-pointer convention puts a frame record (the
//! two words below the frame pointer), and the root frame's `s0` is the
//! stack base, whose record is `{link, return label}`, so the frame-pointer
//! chain runs from the coroutine into its parent.
//!
//! A suspended coroutine keeps, at its saved stack pointer, the four words
//! `[resume address, s0, s1, unused]`.
//!
//! # Register contract of a switch
//!
//! The psABI makes `s0`-`s11`, `fs0`-`fs11` (with F or D, at that width)
//! and `sp` callee-saved. LLVM will not let an `asm!` block clobber `s0`
//! (the frame pointer) or `s1` (its base pointer), so those are saved by
//! hand; `s2`-`s11` and the float ones (only when the target has them) are
//! declared clobbered with everything caller-saved, so the compiler spills
//! only what is live across the switch. The word passed across is in `a0`;
//! the coroutine's new stack pointer (or exit code) comes back in `a1`.
//! The parent's `jalr` (a call) is matched by the coroutine's `ret`, so the
//! return-address stack stays in step; the target of every `jalr` is in a
//! register other than `ra` and `t0` (x1, x5), which the ISA's hints would
//! take for a return or a coroutine swap. The parent stores the link itself,
//! so the resume point needs nothing from it but `a1`: an ordinary resume
//! passes the stack base there, `switch_and_unwind` passes 0, which
//! `switch_yield` reports as the unwind request.

use core::arch::{asm, naked_asm};

use super::{EntryFn, StackCallFn, TrapEntryFn};
use crate::word::{StackPointer, Word};

/// Register width in bytes, as the assembler text uses it.
#[cfg(target_pointer_width = "64")]
macro_rules! w {
    () => {
        "8"
    };
}
#[cfg(target_pointer_width = "32")]
macro_rules! w {
    () => {
        "4"
    };
}

/// A register-width load: `load!("s0", 2, "sp")` is `ld s0, 2*8(sp)` on
/// RV64 and `lw s0, 2*4(sp)` on RV32 (the offset is in words).
#[cfg(target_pointer_width = "64")]
macro_rules! load {
    ($rd:literal, $n:literal, $base:literal) => {
        concat!("ld ", $rd, ", ", $n, "*", w!(), "(", $base, ")")
    };
}
#[cfg(target_pointer_width = "32")]
macro_rules! load {
    ($rd:literal, $n:literal, $base:literal) => {
        concat!("lw ", $rd, ", ", $n, "*", w!(), "(", $base, ")")
    };
}

/// A register-width store, as `load!`.
#[cfg(target_pointer_width = "64")]
macro_rules! store {
    ($rs:literal, $n:literal, $base:literal) => {
        concat!("sd ", $rs, ", ", $n, "*", w!(), "(", $base, ")")
    };
}
#[cfg(target_pointer_width = "32")]
macro_rules! store {
    ($rs:literal, $n:literal, $base:literal) => {
        concat!("sw ", $rs, ", ", $n, "*", w!(), "(", $base, ")")
    };
}

/// `DW_CFA_def_cfa_expression`, 3 bytes: `DW_OP_breg8 (s0) -2W; DW_OP_deref`
/// (-16 and -8 in SLEB128 are 0x70 and 0x78).
#[cfg(target_pointer_width = "64")]
macro_rules! cfa_from_link {
    () => {
        ".cfi_escape 0x0f, 3, 0x78, 0x70, 0x06"
    };
}
#[cfg(target_pointer_width = "32")]
macro_rules! cfa_from_link {
    () => {
        ".cfi_escape 0x0f, 3, 0x78, 0x78, 0x06"
    };
}

/// Register width in bytes.
const W: usize = core::mem::size_of::<usize>();

/// Alignment of the stack pointer at a call boundary.
pub const STACK_ALIGNMENT: usize = 16;
/// The parent link is the word at `base - LINK_OFFSET`.
pub const LINK_OFFSET: usize = 2 * W;
/// The link and the root frame's return label (16 bytes on both widths, to
/// keep the object aligned).
pub const RESERVED_TOP: usize = 16;
/// `init_stack` writes the root's address and the entry fn below the object.
pub const INIT_FRAME_SIZE: usize = 16;

/// `unwinding_asm!` for a switch to another context: besides the operands
/// given, every register that the ABI lets a callee keep (s2-s11, and
/// fs0-fs11 where the target has float registers) and every caller-saved
/// one is clobbered, so the compiler spills only what is live. s0 and s1,
/// which LLVM reserves, are saved by the asm itself.
#[cfg(target_feature = "f")]
macro_rules! context_switch_asm {
    ($($body:tt)*) => {
        unwinding_asm!(
            $($body)*
            lateout("s2") _, lateout("s3") _, lateout("s4") _, lateout("s5") _,
            lateout("s6") _, lateout("s7") _, lateout("s8") _, lateout("s9") _,
            lateout("s10") _, lateout("s11") _,
            lateout("fs0") _, lateout("fs1") _, lateout("fs2") _, lateout("fs3") _,
            lateout("fs4") _, lateout("fs5") _, lateout("fs6") _, lateout("fs7") _,
            lateout("fs8") _, lateout("fs9") _, lateout("fs10") _, lateout("fs11") _,
            clobber_abi("C")
        )
    };
}
#[cfg(not(target_feature = "f"))]
macro_rules! context_switch_asm {
    ($($body:tt)*) => {
        unwinding_asm!(
            $($body)*
            lateout("s2") _, lateout("s3") _, lateout("s4") _, lateout("s5") _,
            lateout("s6") _, lateout("s7") _, lateout("s8") _, lateout("s9") _,
            lateout("s10") _, lateout("s11") _,
            clobber_abi("C")
        )
    };
}

/// The root frame of every coroutine.
///
/// Entered by the parent's `jalr` in `switch_and_link` on the first resume
/// with: `a0` = input word, `a1` = stack base, `a2` = initial stack pointer
/// (`[a2]` = this function, `[a2 + W]` = entry fn, `a2 + 16` = object),
/// `ra` = the parent's return address, `sp` = the parent's record (s0 and
/// s1 saved, the link already stored). It completes the record with `ra`,
/// points `s0` at the stack base, writes the return label below it and
/// calls `entry(input, link, obj)` on the coroutine stack, so that `ra` is
/// the return label (label 2) and the CFI below describes the frame.
/// `entry` never returns.
///
/// The CFI says: CFA = [s0 - 2W] (the link: the parent's stack pointer
/// outside its `asm!` block), ra at CFA-W, s0 at CFA-2W, s1 at CFA-3W. It is
/// marked a signal frame because the parent's stack may lie above or below
/// this one, which debuggers otherwise reject; so the parent's return
/// address must not be the last instruction of its `asm!` block, and it is
/// not.
#[unsafe(naked)]
unsafe extern "C" fn coroutine_root() {
    naked_asm!(
        ".cfi_startproc",
        ".cfi_signal_frame",
        concat!(".cfi_def_cfa sp, 4*", w!()),
        concat!(".cfi_offset s0, -2*", w!()),
        concat!(".cfi_offset s1, -3*", w!()),
        store!("ra", 3, "sp"),
        concat!(".cfi_offset ra, -1*", w!()),
        "mv s0, a1",
        cfa_from_link!(),
        "lla t0, 2f",
        store!("t0", -1, "a1"),
        load!("t1", 1, "a2"),
        "addi sp, a2, 16",
        concat!("addi a1, a1, -2*", w!()),
        "mv a2, sp",
        "jalr t1",
        "2:",
        "unimp",
        ".cfi_endproc",
    )
}

/// The frame `on_stack` runs its function under.
///
/// Entered by `call` with `a0` = argument, `a1` = new stack top
/// (16-aligned), `a2` = function. Pushes a four-word record `{.., s0, ra}`,
/// points `s0` at its top (a frame record by the RISC-V convention),
/// switches `sp`, calls `a2(a0)` and switches back. The CFA is `s0`-based
/// so unwinding from the new stack lands back on the old one.
#[unsafe(naked)]
unsafe extern "C" fn stack_call_root() {
    naked_asm!(
        ".cfi_startproc",
        ".cfi_signal_frame",
        concat!("addi sp, sp, -4*", w!()),
        concat!(".cfi_def_cfa_offset 4*", w!()),
        store!("ra", 3, "sp"),
        store!("s0", 2, "sp"),
        concat!(".cfi_offset ra, -1*", w!()),
        concat!(".cfi_offset s0, -2*", w!()),
        concat!("addi s0, sp, 4*", w!()),
        ".cfi_def_cfa s0, 0",
        "mv sp, a1",
        "jalr a2",
        concat!("addi sp, s0, -4*", w!()),
        concat!(".cfi_def_cfa sp, 4*", w!()),
        load!("ra", 3, "sp"),
        load!("s0", 2, "sp"),
        concat!("addi sp, sp, 4*", w!()),
        ".cfi_def_cfa_offset 0",
        "ret",
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
        *((sp + W) as *mut usize) = entry as usize;
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
    // resumed; it returns here through the `ret` matching this `jalr`.
    unsafe {
        context_switch_asm!(
            // In: a0 = word, a1 = stack base, a2 = coroutine sp.
            // Out: a0 = word, a1 = new coroutine sp or exit code.
            // Stores the link (our sp), pushes the four-word record with s0
            // and s1 (the coroutine adds ra) and calls the resume address
            // at [a2]; s0 and s1 are reloaded here afterwards, sp and ra by
            // the coroutine. Everything else is clobbered.
            store!("sp", -2, "a1"),
            concat!("addi sp, sp, -4*", w!()),
            store!("s0", 2, "sp"),
            store!("s1", 1, "sp"),
            load!("t1", 0, "a2"),
            "jalr t1",
            load!("s0", 2, "sp"),
            load!("s1", 1, "sp"),
            concat!("addi sp, sp, 4*", w!()),
            inlateout("a0") arg => ret_arg,
            inlateout("a1") base.get() => ret_sp,
            inlateout("a2") sp.get() => _,
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
            store!("sp", -2, "a1"),
            "li a1, 0",
            concat!("addi sp, sp, -4*", w!()),
            store!("s0", 2, "sp"),
            store!("s1", 1, "sp"),
            load!("t1", 0, "a2"),
            "jalr t1",
            load!("s0", 2, "sp"),
            load!("s1", 1, "sp"),
            concat!("addi sp, sp, 4*", w!()),
            lateout("a0") ret_arg,
            inlateout("a1") base.get() => ret_sp,
            inlateout("a2") sp.get() => _,
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
    // parent's next `jalr` lands there.
    unsafe {
        context_switch_asm!(
            // In: a0 = word, a2 = link.
            // Out: a0 = word from the parent, a1 = 0 if asked to unwind.
            // Pushes [resume address, s0, s1, -], hands its sp to the
            // parent in a1, loads the parent's sp and ra from the link and
            // returns into it (the parent reloads its s0 and s1).
            // Resumed at 2 with a0 = word, a1 = base (or 0), a2 = our sp,
            // ra = the parent's return address and sp = the parent's
            // record, whose ra slot it fills.
            concat!("addi sp, sp, -4*", w!()),
            store!("s0", 1, "sp"),
            store!("s1", 2, "sp"),
            "lla t0, 2f",
            store!("t0", 0, "sp"),
            "mv a1, sp",
            load!("t1", 0, "a2"),
            load!("ra", -1, "t1"),
            concat!("addi sp, t1, -4*", w!()),
            "ret",
            "2:",
            store!("ra", 3, "sp"),
            load!("s0", 1, "a2"),
            load!("s1", 2, "a2"),
            concat!("addi sp, a2, 4*", w!()),
            inlateout("a0") arg => ret_arg,
            lateout("a1") unwind_flag,
            inlateout("a2") link => _,
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
            // it; the parent reloads its s0 and s1.
            load!("t1", 0, "a2"),
            load!("ra", -1, "t1"),
            concat!("addi sp, t1, -4*", w!()),
            "ret",
            in("a0") arg,
            in("a1") exit,
            in("a2") link,
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
    // SAFETY: stack_call_root saves and restores s0, ra and sp; `f` follows
    // the C ABI, so only caller-saved registers change.
    unsafe {
        unwinding_asm!(
            // In: a0 = argument, a1 = new stack top, a2 = function.
            // The nop keeps the return address inside this block, because
            // the root is a signal frame (see coroutine_root).
            "call {root}",
            "nop",
            root = sym stack_call_root,
            inlateout("a0") arg => _,
            inlateout("a1") top => _,
            inlateout("a2") f => _,
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
/// # let regs = TrapHandlerRegs { pc: 0, ra: 0, sp: 0, a0: 0, a1: 0, s0: 0 };
/// let TrapHandlerRegs { pc, ra, sp, a0, a1, s0 } = regs;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrapHandlerRegs {
    /// Program counter.
    pub pc: usize,
    /// Return address (the root frame's return label).
    pub ra: usize,
    /// Stack pointer.
    pub sp: usize,
    /// First argument register.
    pub a0: usize,
    /// Second argument register.
    pub a1: usize,
    /// Frame pointer (the root frame's: the stack base).
    pub s0: usize,
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
    // SAFETY: the return label at base - W was written by coroutine_root,
    // which ran (the caller guarantees the coroutine started).
    let ra = unsafe { *((base.get() - W) as *const usize) };
    TrapHandlerRegs {
        pc: entry as usize,
        ra,
        sp: obj,
        a0: obj,
        a1: link,
        s0: base.get(),
    }
}

/// The highest address below which the parent stack is free: the parent's
/// record lies in the four words below the link value.
#[inline]
pub fn parent_stack_top(link_value: usize) -> usize {
    (link_value - 4 * W) & !(STACK_ALIGNMENT - 1)
}

/// Valgrind's client request: `args[0]` is the request code.
///
/// # Safety
/// `args` must be a valid request for Valgrind.
#[cfg(target_arch = "riscv64")]
#[inline(never)]
pub unsafe fn valgrind_client_request(default: usize, args: &[usize; 6]) -> usize {
    let result;
    // SAFETY: outside Valgrind the four shifts only zero a2 (declared
    // clobbered) and `or a0, a0, a0` changes nothing; under Valgrind the
    // sequence is recognised and a3 receives the answer. The 16-byte
    // preamble must not be compressed, hence norvc.
    unsafe {
        asm!(
            // In: a3 = default, a4 = &args. Out: a3 = result. Clobbers a2.
            ".option push",
            ".option norvc",
            "srli a2, a2, 3",
            "srli a2, a2, 13",
            "srli a2, a2, 51",
            "srli a2, a2, 61",
            "or a0, a0, a0",
            ".option pop",
            inout("a3") default => result,
            in("a4") args.as_ptr(),
            out("a2") _,
            options(nostack)
        );
    }
    result
}

/// Valgrind's client request. Valgrind does not run RV32 code, so this
/// returns `default`.
///
/// # Safety
/// Always safe; `unsafe` for the signature shared by every architecture.
#[cfg(target_arch = "riscv32")]
#[inline(always)]
pub unsafe fn valgrind_client_request(default: usize, _args: &[usize; 6]) -> usize {
    default
}
