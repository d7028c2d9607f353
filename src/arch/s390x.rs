//! The context switch for s390x (z/Architecture, the s390x ELF ABI on Linux).
//!
//! # Stack layout
//!
//! Every frame's 160 bytes at its stack pointer are the register save area
//! that the functions it calls may write: the back chain at 0, `r6`-`r15`
//! at 48-127 (so `r11` at 88 and `r14` at 112).
//!
//! ```text
//! coroutine stack                              parent stack while it runs
//! +-----------------------+ <- base            |  parent's caller's frame  |
//! | return label          |  base - 16 <--.    +---------------------------+
//! ~ (unused)              ~               |    |  save area: r14 = return  |  F + 112, written by
//! |                       |               |    |  address, r11 at F + 88   |  the coroutine side
//! | parent link  ---------+---------------+--->|  back chain               |
//! +-----------------------+ base - 128 = L|    +---------------------------+ <- F = link value
//! | sanitizer extents     |               |    |  free (on_parent_stack)   |
//! | closure object        |               |
//! ~          ...          ~               |   (L is a frame too: its back
//! +-----------------------+ <- obj        |    chain is the link, its r14
//! | root frame save area: |               |    slot the return label)
//! |  back chain = L  -----+---------------'
//! |  entry fn (scratch)   |  R + 8
//! |  coroutine_root       |  R + 112 (the r14 slot)
//! +-----------------------+ <- R = initial sp = obj - 160
//! ```
//!
//! Every context (the parent in `switch_and_link`, the coroutine in
//! `switch_yield`) is suspended with its stack pointer `X` unchanged: its
//! `r11` is in the `r11` slot of its save area and the address it continues
//! at in the `r14` slot, as if it had called a function that saved them.
//! For the parent, `r14` is stored by the coroutine side, as a callee
//! would; for the coroutine it is its resume label. The link holds the
//! parent's `X`, so a back-chain walk (with the `backchain` target feature)
//! goes from the coroutine's root frame `R` to `L` and on into the parent.
//!
//! # Register contract of a switch
//!
//! LLVM reserves `r11` (frame pointer) and `r15` (stack pointer); `r11` is
//! saved by hand. Every other callee-saved register (`r6`-`r10`, `r12`,
//! `r13`, `f8`-`f15`) is declared clobbered, so the compiler spills only
//! what is live; the access registers (thread pointer) stay as they are. The
//! word passed across is in `r2`; the coroutine's new stack pointer (or exit
//! code) comes back in `r3`. Every `basr` is matched by a `br %r14`, so the
//! return predictor stays in step.

use core::arch::{asm, naked_asm};

use super::{EntryFn, StackCallFn, TrapEntryFn};
use crate::word::{StackPointer, Word};

/// Alignment of the stack pointer at a call boundary. The ABI asks for 8;
/// 16 keeps the rule for stacks (and closure slots) that of the other
/// 64-bit targets.
pub const STACK_ALIGNMENT: usize = 16;
/// The parent link is the word at `base - LINK_OFFSET`. It is the back
/// chain of a frame whose `r14` slot (`base - 16`) holds the root's return
/// label.
pub const LINK_OFFSET: usize = 128;
/// The link's frame, as far as its `r14` slot.
pub const RESERVED_TOP: usize = 128;
/// The root frame: the register save area that `entry` may write.
pub const INIT_FRAME_SIZE: usize = SAVE_AREA;

/// The register save area at the bottom of every frame.
const SAVE_AREA: usize = 160;

/// `unwinding_asm!` for a switch to another context: besides the operands
/// given, every register that the ABI lets a callee keep and that LLVM lets
/// an `asm!` block clobber is clobbered, with every caller-saved one, so
/// the compiler spills only what is live. r11 is saved by the asm itself.
macro_rules! context_switch_asm {
    ($($body:tt)*) => {
        unwinding_asm!(
            $($body)*
            lateout("r6") _, lateout("r7") _, lateout("r8") _, lateout("r9") _,
            lateout("r10") _, lateout("r12") _, lateout("r13") _,
            lateout("f8") _, lateout("f9") _, lateout("f10") _, lateout("f11") _,
            lateout("f12") _, lateout("f13") _, lateout("f14") _, lateout("f15") _,
            clobber_abi("C")
        )
    };
}

/// The root frame of every coroutine.
///
/// Entered by `basr` in `switch_and_link` on the first resume with:
/// `r2` = input word, `r3` = stack base, `r4` = initial stack pointer `R`
/// (`[R]` = link address, `[R + 8]` = entry fn), `r15` = the parent's stack
/// pointer `F` (its r11 saved at `F + 88`), `r14` = the parent's return
/// address. It stores `r14` in the parent's save area, stores the link,
/// moves to `R`, writes the return label into the link's frame and calls
/// `entry(input, link, obj)`, which never returns.
///
/// The CFI says: CFA = `[[r15]] + 160` (the back chain of the root frame is
/// the link address; the link holds `F`), r15 = CFA - 160, r14 at CFA-48,
/// r11 at CFA-72. It is marked a signal frame because the parent's stack may
/// lie above or below this one, which debuggers otherwise reject; so the
/// parent's return address must not be the last instruction of its `asm!`
/// block, and it is not.
#[unsafe(naked)]
unsafe extern "C" fn coroutine_root() {
    naked_asm!(
        ".cfi_startproc",
        ".cfi_signal_frame",
        "stg %r14, 112(%r15)",
        ".cfi_offset %r14, -48",
        ".cfi_offset %r11, -72",
        "stg %r15, -{link}(%r3)",
        "lgr %r15, %r4",
        // DW_CFA_def_cfa_expression, 7 bytes: DW_OP_breg15 (r15) 0;
        // DW_OP_deref; DW_OP_deref; DW_OP_plus_uconst 160 (2-byte ULEB128).
        ".cfi_escape 0x0f, 7, 0x7f, 0x00, 0x06, 0x06, 0x23, 0xa0, 0x01",
        // DW_CFA_val_offset r15, 20 * -8: r15 = CFA - 160.
        ".cfi_escape 0x14, 15, 20",
        "lay %r3, -{link}(%r3)",
        "larl %r1, 2f",
        "stg %r1, 112(%r3)",
        "lg %r1, 8(%r15)",
        "la %r4, {frame}(%r15)",
        "basr %r14, %r1",
        "2:",
        // An invalid instruction: entry never returns.
        ".short 0",
        ".cfi_endproc",
        link = const LINK_OFFSET,
        frame = const INIT_FRAME_SIZE,
    )
}

/// The frame `on_stack` runs its function under.
///
/// Entered by `brasl %r14` with `r2` = argument, `r3` = new stack top (the
/// frame goes below it), `r4` = function, `r15` = the caller's frame `F`.
/// Saves r14 in `F`'s save area, builds a frame below the top whose back
/// chain is `F`, calls `r4(r2)` and returns through the back chain. The CFA
/// is `[r15] + 160`, so unwinding from the new stack lands back on the old
/// one.
#[unsafe(naked)]
unsafe extern "C" fn stack_call_root() {
    naked_asm!(
        ".cfi_startproc",
        ".cfi_signal_frame",
        "stg %r14, 112(%r15)",
        ".cfi_offset %r14, -48",
        "lay %r1, -{frame}(%r3)",
        "stg %r15, 0(%r1)",
        "lgr %r15, %r1",
        // DW_CFA_def_cfa_expression, 6 bytes: DW_OP_breg15 (r15) 0;
        // DW_OP_deref; DW_OP_plus_uconst 160 (2-byte ULEB128).
        ".cfi_escape 0x0f, 6, 0x7f, 0x00, 0x06, 0x23, 0xa0, 0x01",
        // DW_CFA_val_offset r15, 20 * -8: r15 = CFA - 160.
        ".cfi_escape 0x14, 15, 20",
        "basr %r14, %r4",
        "lg %r15, 0(%r15)",
        ".cfi_def_cfa %r15, 160",
        ".cfi_restore %r15",
        "lg %r14, 112(%r15)",
        ".cfi_restore %r14",
        "br %r14",
        ".cfi_endproc",
        frame = const SAVE_AREA,
    )
}

/// Writes the initial frame below `obj` and returns the initial stack pointer.
///
/// # Safety
/// `obj` must be 16-aligned, at most `base - RESERVED_TOP`, and the
/// `INIT_FRAME_SIZE` bytes below it must be writable stack memory.
#[inline]
pub unsafe fn init_stack(base: StackPointer, obj: usize, entry: EntryFn) -> StackPointer {
    let sp = obj - INIT_FRAME_SIZE;
    // SAFETY: the caller guarantees that [obj - INIT_FRAME_SIZE, obj) is
    // writable and 16-aligned, so the three words are aligned and in bounds.
    unsafe {
        *(sp as *mut usize) = base.get() - LINK_OFFSET;
        *((sp + 8) as *mut usize) = entry as usize;
        *((sp + 112) as *mut usize) = coroutine_root as *const () as usize;
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
    // resumed; it returns here through the `br %r14` matching this `basr`.
    unsafe {
        context_switch_asm!(
            // In: r2 = word, r3 = stack base, r4 = coroutine sp.
            // Out: r2 = word, r3 = new coroutine sp or exit code.
            // Stores r11 in our save area; the coroutine side stores r14
            // there and the link. Everything else is clobbered.
            "stg %r11, 88(%r15)",
            "lg %r1, 112(%r4)",
            "basr %r14, %r1",
            "lg %r11, 88(%r15)",
            inlateout("r2") arg => ret_arg,
            inlateout("r3") base.get() => ret_sp,
            inlateout("r4") sp.get() => _,
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
    // SAFETY: as switch_and_link; we do what the resume point's prologue
    // would (RESUME_PROLOGUE_LEN bytes: two 6-byte `stg`) and enter it after
    // that prologue.
    unsafe {
        context_switch_asm!(
            // In: r3 = stack base, r4 = coroutine sp.
            // Out: r2 = word, r3 = new coroutine sp or exit code.
            // Saves r11 as switch_and_link does, then calls a stub that
            // stores r14 and the link and enters the resume point past its
            // prologue with r3 = 0, which switch_yield reports as the
            // unwind request.
            "stg %r11, 88(%r15)",
            "brasl %r14, 5f",
            "lg %r11, 88(%r15)",
            "j 6f",
            "5:",
            "stg %r14, 112(%r15)",
            "stg %r15, -{link}(%r3)",
            "lghi %r3, 0",
            "lg %r1, 112(%r4)",
            "aghi %r1, {prologue}",
            "br %r1",
            "6:",
            link = const LINK_OFFSET,
            prologue = const RESUME_PROLOGUE_LEN,
            lateout("r2") ret_arg,
            inlateout("r3") base.get() => ret_sp,
            inlateout("r4") sp.get() => _,
        );
    }
    (ret_arg, ret_sp)
}

/// Length of the resume point's prologue in `switch_yield` (`stg %r14,
/// 112(%r15)` and `stg %r15, -LINK_OFFSET(%r3)`: two 6-byte instructions).
#[cfg_attr(not(feature = "unwind"), allow(dead_code))]
const RESUME_PROLOGUE_LEN: usize = 12;

/// Suspends the running coroutine, handing `arg` to its parent. Returns the
/// word of the next resume, or `None` if the parent asks the coroutine to
/// unwind its stack (`switch_and_unwind`).
///
/// # Safety
/// Must run on the coroutine stack whose link is `link`, while it is running.
#[inline(always)]
pub unsafe fn switch_yield(arg: Word, link: *mut StackPointer) -> Option<Word> {
    let (ret_arg, unwind_flag): (Word, usize);
    // SAFETY: the link holds the parent's stack pointer, whose save area
    // holds its return address; we resume at label 2 when the parent's next
    // `basr` lands there.
    unsafe {
        context_switch_asm!(
            // In: r2 = word, r4 = link.
            // Out: r2 = word from the parent, r3 = 0 if asked to unwind.
            // Stores r11 and the resume label in our save area, hands r15
            // to the parent in r3 and returns into it.
            // Resumed at 2 with r2 = word, r3 = base, r4 = our sp, r15 = the
            // parent's sp and r14 = its return address; switch_and_unwind
            // enters after the 12-byte prologue instead.
            "stg %r11, 88(%r15)",
            "larl %r1, 2f",
            "stg %r1, 112(%r15)",
            "lgr %r3, %r15",
            "lg %r15, 0(%r4)",
            "lg %r14, 112(%r15)",
            "br %r14",
            "2:",
            "stg %r14, 112(%r15)",
            "stg %r15, -{link}(%r3)",
            "lgr %r15, %r4",
            "lg %r11, 88(%r15)",
            link = const LINK_OFFSET,
            inlateout("r2") arg => ret_arg,
            lateout("r3") unwind_flag,
            inlateout("r4") link => _,
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
    // SAFETY: as for `switch_yield`; the exit code in r3 tells the parent
    // the coroutine finished, so it is never resumed.
    unsafe {
        asm!(
            // In: r2 = word, r3 = exit code, r4 = link. Never returns.
            "lg %r15, 0(%r4)",
            "lg %r14, 112(%r15)",
            "br %r14",
            in("r2") arg,
            in("r3") exit,
            in("r4") link,
            options(noreturn)
        )
    }
}

/// Calls `f(arg)` with its frame below `top`.
///
/// # Safety
/// `top` must be 16-aligned with enough writable stack below it for `f`.
#[inline(always)]
pub unsafe fn on_stack(arg: *mut u8, top: usize, f: StackCallFn) {
    // SAFETY: stack_call_root restores r15 and returns; `f` follows the C
    // ABI, so only caller-saved registers change.
    unsafe {
        unwinding_asm!(
            // In: r2 = argument, r3 = new stack top, r4 = function.
            // The nop keeps the return address inside this block, because
            // the root is a signal frame (see coroutine_root).
            "brasl %r14, {root}",
            "nopr %r7",
            root = sym stack_call_root,
            inlateout("r2") arg => _,
            inlateout("r3") top => _,
            inlateout("r4") f => _,
            clobber_abi("C")
        );
    }
}

/// Registers that a trap handler writes into the interrupted context so that
/// the coroutine runs the function given to
/// [`CoroutineTrapHandler::setup_trap_handler`](crate::trap::CoroutineTrapHandler::setup_trap_handler)
/// and then returns its result to the parent.
///
/// Every field must be written (on Linux: `pc` into `uc_mcontext.psw.addr`,
/// the others into `uc_mcontext.gregs`); destructure it so the compiler
/// checks that none is missed:
///
/// ```
/// # use switchback::trap::TrapHandlerRegs;
/// # let regs = TrapHandlerRegs { pc: 0, sp: 0, r2: 0, r3: 0, r11: 0, r14: 0 };
/// let TrapHandlerRegs { pc, sp, r2, r3, r11, r14 } = regs;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrapHandlerRegs {
    /// Instruction address (the PSW address).
    pub pc: u64,
    /// Stack pointer (r15).
    pub sp: u64,
    /// First argument register.
    pub r2: u64,
    /// Second argument register.
    pub r3: u64,
    /// Frame pointer: the link's frame, whose back chain leads into the
    /// parent.
    pub r11: u64,
    /// Return address register: inside the root frame.
    pub r14: u64,
}

/// The registers that make the interrupted coroutine call `entry(obj, link)`
/// as if from its root frame.
///
/// # Safety
/// The coroutine at `base` must have started (its root frame wrote the return
/// label), `obj` must be 16-aligned below `base - RESERVED_TOP` with
/// `INIT_FRAME_SIZE` writable bytes below it.
pub unsafe fn trap_handler_regs(
    base: StackPointer,
    obj: usize,
    entry: TrapEntryFn,
) -> TrapHandlerRegs {
    let link = base.get() - LINK_OFFSET;
    let sp = obj - INIT_FRAME_SIZE;
    // SAFETY: the caller guarantees that the root frame's save area is in
    // the stack; the return label at base - 16 was written by coroutine_root.
    let return_label = unsafe {
        *(sp as *mut usize) = link;
        *((base.get() - 16) as *const usize)
    };
    TrapHandlerRegs {
        pc: entry as usize as u64,
        sp: sp as u64,
        r2: obj as u64,
        r3: link as u64,
        r11: link as u64,
        r14: return_label as u64,
    }
}

/// The highest address below which the parent stack is free: the parent's
/// save area, above its stack pointer, holds what it needs.
#[inline]
pub fn parent_stack_top(link_value: usize) -> usize {
    link_value & !(STACK_ALIGNMENT - 1)
}

/// Valgrind's client request: `args[0]` is the request code.
///
/// # Safety
/// `args` must be a valid request for Valgrind.
#[inline(never)]
pub unsafe fn valgrind_client_request(default: usize, args: &[usize; 6]) -> usize {
    let result;
    // SAFETY: outside Valgrind each `lr` copies the low half of a register
    // onto itself, changing nothing; under Valgrind the preamble (the first
    // four) and `lr %r2, %r2` are recognised and r3 receives the answer.
    unsafe {
        asm!(
            // In: r2 = &args, r3 = default. Out: r3 = result.
            "lr %r15, %r15",
            "lr %r1, %r1",
            "lr %r2, %r2",
            "lr %r3, %r3",
            "lr %r2, %r2",
            inout("r2") args.as_ptr() => _,
            inout("r3") default => result,
            lateout("r1") _,
        );
    }
    result
}
