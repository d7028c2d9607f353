//! The context switch for 64-bit PowerPC: ELFv2 (powerpc64le Linux) and ELFv1 (big-endian glibc Linux, with function descriptors).
//!
//! # Stack layout
//!
//! ```text
//! coroutine stack                            parent stack while it runs
//! +----------------------+ <- base           |  parent's caller's frame  |
//! | (unused)             |  base - 8         +---------------------------+
//! | return label         |  base - 16  <--.  |  ...                      |
//! | (unused)             |  base - 24     |  | LR save: return address   |  F + 16, written by the
//! | parent link  --------+----------------+->| back chain                |  coroutine side
//! +----------------------+  base - 32 = L |  +---------------------------+ <- F = link value
//! | sanitizer extents    |                |  | saved r2                  |  F - 8
//! | closure object       |                |  | saved r30                 |  F - 16
//! ~         ...          ~                |  | saved r31                 |  F - 24
//! +----------------------+ <- obj         |  +---------------------------+ <- parent_stack_top
//! | root frame header:   |                |
//! |  back chain = L  ----+----------------'  (L is a frame record too: its back
//! |  entry fn (scratch)  |  R + 8              chain is the link, its LR save
//! |  coroutine_root      |  R + 16             slot the return label)
//! |  (TOC save, ELFv1:   |
//! |   param save area)   |
//! +----------------------+ <- R = initial sp = obj - INIT_FRAME_SIZE
//! ```
//!
//! Every context (the parent in `switch_and_link`, the coroutine in
//! `switch_yield`) is suspended with its stack pointer `X` unchanged: its
//! `r2`, `r30` and `r31` are stored in the 288-byte protected zone below
//! `X` (which the ABI keeps from signal handlers), and the address it
//! continues at is in the LR save doubleword at `X + 16`. For the parent
//! that address is written by the coroutine side, as a callee saves its
//! return address in its caller's frame; for the coroutine it is its resume
//! label. The link holds the parent's `X`, so a back-chain walk goes from the
//! coroutine's root frame `R` to `L` and on into the parent's frame.
//!
//! # Register contract of a switch
//!
//! LLVM reserves `r1` (stack pointer), `r2` (TOC), `r13` (thread pointer),
//! `r30` and `r31` (frame pointer): `r2`, `r30` and `r31` are saved by hand
//! (`r2` because the two sides may belong to different modules with
//! different TOCs). Every other callee-saved register (`r14`-`r29`,
//! `f14`-`f31`, `v20`-`v31`, `cr2`-`cr4`) is declared clobbered, so the
//! compiler spills only what is live. `vrsave` is reserved by the ABI and
//! left alone. The word passed across is in `r3`; the coroutine's new stack
//! pointer (or exit code) comes back in `r4`. Every `bctrl` is matched by a
//! `blr`, so the link-stack predictor stays in step.
//!
//! ELFv1 differs only in its frame header (a 112-byte minimum frame with the
//! TOC save doubleword at 40) and in function pointers, which point at
//! descriptors `{entry, TOC, environment}`. The naked functions of this file
//! have no descriptor: their symbols are their code addresses.

use core::arch::{asm, naked_asm};

use super::{EntryFn, StackCallFn, TrapEntryFn};
use crate::word::{StackPointer, Word};

/// Alignment of the stack pointer at a call boundary.
pub const STACK_ALIGNMENT: usize = 16;
/// The parent link is the word at `base - LINK_OFFSET`. It is the back
/// chain of a frame record whose LR save doubleword (`base - 16`) holds the
/// root's return label.
pub const LINK_OFFSET: usize = 32;
/// The link's frame record.
pub const RESERVED_TOP: usize = 32;
/// The root frame: the smallest frame of the ABI, since `entry` may write
/// its caller's header (and, in ELFv1, its parameter save area).
pub const INIT_FRAME_SIZE: usize = MIN_FRAME;

/// The smallest stack frame: the header (back chain, CR save, LR save, TOC
/// save) and, in ELFv1, the 64-byte parameter save area.
#[cfg(target_abi = "elfv1")]
const MIN_FRAME: usize = 112;
#[cfg(not(target_abi = "elfv1"))]
const MIN_FRAME: usize = 32;

/// Offset of the TOC save doubleword in a frame header.
#[cfg(target_abi = "elfv1")]
macro_rules! toc_save {
    () => {
        "40"
    };
}
#[cfg(not(target_abi = "elfv1"))]
macro_rules! toc_save {
    () => {
        "24"
    };
}

/// Calls the function pointer in r12 through ctr. ELFv2: r12 is the code
/// address (the callee's global entry derives its TOC from it). ELFv1: r12
/// points at a descriptor; loads its entry, TOC (r2) and environment (r11).
#[cfg(target_abi = "elfv1")]
macro_rules! call_r12 {
    () => {
        "ld 0, 0(12)\n ld 2, 8(12)\n ld 11, 16(12)\n mtctr 0\n bctrl"
    };
}
#[cfg(not(target_abi = "elfv1"))]
macro_rules! call_r12 {
    () => {
        "mtctr 12\n bctrl"
    };
}

/// `unwinding_asm!` for a switch to another context: besides the operands
/// given, every register that the ABI lets a callee keep and that LLVM lets
/// an `asm!` block clobber is clobbered, with every caller-saved one, so
/// the compiler spills only what is live. r2, r30 and r31 are saved by the
/// asm itself.
macro_rules! context_switch_asm {
    ($($body:tt)*) => {
        unwinding_asm!(
            $($body)*
            lateout("r14") _, lateout("r15") _, lateout("r16") _, lateout("r17") _,
            lateout("r18") _, lateout("r19") _, lateout("r20") _, lateout("r21") _,
            lateout("r22") _, lateout("r23") _, lateout("r24") _, lateout("r25") _,
            lateout("r26") _, lateout("r27") _, lateout("r28") _, lateout("r29") _,
            lateout("f14") _, lateout("f15") _, lateout("f16") _, lateout("f17") _,
            lateout("f18") _, lateout("f19") _, lateout("f20") _, lateout("f21") _,
            lateout("f22") _, lateout("f23") _, lateout("f24") _, lateout("f25") _,
            lateout("f26") _, lateout("f27") _, lateout("f28") _, lateout("f29") _,
            lateout("f30") _, lateout("f31") _,
            lateout("v20") _, lateout("v21") _, lateout("v22") _, lateout("v23") _,
            lateout("v24") _, lateout("v25") _, lateout("v26") _, lateout("v27") _,
            lateout("v28") _, lateout("v29") _, lateout("v30") _, lateout("v31") _,
            lateout("cr2") _, lateout("cr3") _, lateout("cr4") _,
            clobber_abi("C")
        )
    };
}

/// The root frame of every coroutine.
///
/// Entered by `bctrl` in `switch_and_link` on the first resume with:
/// `r3` = input word, `r4` = stack base, `r5` = initial stack pointer `R`
/// (`[R]` = link address, `[R + 8]` = entry fn), `r1` = the parent's stack
/// pointer `F` (its r2, r30, r31 saved below it), `lr` = the parent's return
/// address. It stores `lr` in the parent's LR save doubleword, stores the
/// link, moves to `R`, writes the return label into the link's frame record
/// and calls `entry(input, link, obj)`, which never returns.
///
/// The CFI says: CFA = `[[r1]]` (the back chain of the root frame is the
/// link address; the link holds `F`), lr at CFA+16, r2, r30 and r31 at
/// CFA-8, -16, -24. It is marked a signal frame because the parent's stack
/// may lie above or below this one, which debuggers otherwise reject; so the
/// parent's return address must not be the last instruction of its `asm!`
/// block, and it is not.
#[unsafe(naked)]
unsafe extern "C" fn coroutine_root() {
    naked_asm!(
        ".cfi_startproc",
        ".cfi_signal_frame",
        "mflr 0",
        ".cfi_register 65, 0",
        "std 0, 16(1)",
        ".cfi_offset 65, 16",
        ".cfi_offset 2, -8",
        ".cfi_offset 30, -16",
        ".cfi_offset 31, -24",
        "std 1, -{link}(4)",
        "mr 1, 5",
        // DW_CFA_def_cfa_expression, 4 bytes: DW_OP_breg1 (r1) 0;
        // DW_OP_deref; DW_OP_deref.
        ".cfi_escape 0x0f, 4, 0x71, 0x00, 0x06, 0x06",
        "addi 4, 4, -{link}",
        "bcl 20, 31, 3f",
        "3:",
        // (Not r0: as the base of addi, r0 reads as 0.)
        "mflr 6",
        "addi 6, 6, 2f - 3b",
        "std 6, 16(4)",
        "ld 12, 8(1)",
        "addi 5, 1, {frame}",
        call_r12!(),
        "2:",
        "trap",
        ".cfi_endproc",
        link = const LINK_OFFSET,
        frame = const INIT_FRAME_SIZE,
    )
}

/// The frame `on_stack` runs its function under.
///
/// Entered by `bl` with `r3` = argument, `r4` = new stack top (16-aligned;
/// the frame goes below it), `r5` = function, `r1` = the caller's frame `F`.
/// Saves lr in `F`'s LR save doubleword, builds a minimal frame below the
/// top whose back chain is `F`, calls `r5(r3)` and returns through the back
/// chain. The CFA is `[r1]`, so unwinding from the new stack lands back on
/// the old one.
#[unsafe(naked)]
unsafe extern "C" fn stack_call_root() {
    naked_asm!(
        ".cfi_startproc",
        ".cfi_signal_frame",
        "mflr 0",
        ".cfi_register 65, 0",
        "std 0, 16(1)",
        ".cfi_offset 65, 16",
        "std 1, -{frame}(4)",
        "addi 1, 4, -{frame}",
        // DW_CFA_def_cfa_expression, 3 bytes: DW_OP_breg1 (r1) 0; DW_OP_deref.
        ".cfi_escape 0x0f, 3, 0x71, 0x00, 0x06",
        concat!("std 2, ", toc_save!(), "(1)"),
        // DW_CFA_expression r2, 2 bytes: DW_OP_breg1 (r1) <TOC save offset>.
        concat!(".cfi_escape 0x10, 2, 2, 0x71, ", toc_save!()),
        "mr 12, 5",
        call_r12!(),
        concat!("ld 2, ", toc_save!(), "(1)"),
        ".cfi_restore 2",
        "ld 1, 0(1)",
        ".cfi_def_cfa 1, 0",
        "ld 0, 16(1)",
        "mtlr 0",
        ".cfi_restore 65",
        "blr",
        ".cfi_endproc",
        frame = const MIN_FRAME,
    )
}

/// ELFv1 only: where a trap handler sends the coroutine, with `r12` = the
/// descriptor of the trap entry function (whose TOC it loads) and the
/// arguments and lr already in place. ELFv2 enters the function directly.
#[cfg(target_abi = "elfv1")]
#[unsafe(naked)]
unsafe extern "C" fn trap_entry_trampoline() {
    naked_asm!(
        ".cfi_startproc",
        "ld 0, 0(12)",
        "ld 2, 8(12)",
        "ld 11, 16(12)",
        "mtctr 0",
        "bctr",
        ".cfi_endproc",
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
        *((sp + 16) as *mut usize) = coroutine_root as *const () as usize;
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
    // resumed; it returns here through the `blr` matching this `bctrl`.
    unsafe {
        context_switch_asm!(
            // In: r3 = word, r4 = stack base, r5 = coroutine sp.
            // Out: r3 = word, r4 = new coroutine sp or exit code.
            // Stores r2, r30, r31 in the protected zone below r1; the
            // coroutine side stores lr at 16(r1) and the link. Everything
            // else is clobbered.
            "std 2, -8(1)",
            "std 30, -16(1)",
            "std 31, -24(1)",
            "ld 12, 16(5)",
            "mtctr 12",
            "bctrl",
            "ld 2, -8(1)",
            "ld 30, -16(1)",
            "ld 31, -24(1)",
            inlateout("r3") arg => ret_arg,
            inlateout("r4") base.get() => ret_sp,
            inlateout("r5") sp.get() => _,
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
    // would (RESUME_PROLOGUE_LEN bytes: three fixed-size instructions) and
    // enter it after that prologue.
    unsafe {
        context_switch_asm!(
            // In: r4 = stack base, r5 = coroutine sp.
            // Out: r3 = word, r4 = new coroutine sp or exit code.
            // Saves r2, r30, r31 as switch_and_link does, then calls a stub
            // that stores lr and the link and enters the resume point past
            // its prologue with r4 = 0, which switch_yield reports as the
            // unwind request.
            "std 2, -8(1)",
            "std 30, -16(1)",
            "std 31, -24(1)",
            "bl 5f",
            "ld 2, -8(1)",
            "ld 30, -16(1)",
            "ld 31, -24(1)",
            "b 6f",
            "5:",
            "mflr 0",
            "std 0, 16(1)",
            "std 1, -{link}(4)",
            "li 4, 0",
            "ld 12, 16(5)",
            "addi 12, 12, {prologue}",
            "mtctr 12",
            "bctr",
            "6:",
            link = const LINK_OFFSET,
            prologue = const RESUME_PROLOGUE_LEN,
            lateout("r3") ret_arg,
            inlateout("r4") base.get() => ret_sp,
            inlateout("r5") sp.get() => _,
        );
    }
    (ret_arg, ret_sp)
}

/// Length of the resume point's prologue in `switch_yield` (`mflr 0`,
/// `std 0, 16(1)`, `std 1, -LINK_OFFSET(4)`: three 4-byte instructions).
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
    // SAFETY: the link holds the parent's stack pointer, whose LR save
    // doubleword holds its return address; we resume at label 2 when the
    // parent's next `bctrl` lands there.
    unsafe {
        context_switch_asm!(
            // In: r3 = word, r5 = link.
            // Out: r3 = word from the parent, r4 = 0 if asked to unwind.
            // Stores r2, r30, r31 below r1 and the resume label at 16(r1),
            // hands r1 to the parent in r4 and returns into it.
            // Resumed at 2 with r3 = word, r4 = base, r5 = our sp, r1 = the
            // parent's sp and lr = its return address; switch_and_unwind
            // enters after the 12-byte prologue instead.
            "std 2, -8(1)",
            "std 30, -16(1)",
            "std 31, -24(1)",
            "bcl 20, 31, 3f",
            "3:",
            "mflr 12",
            "addi 12, 12, 2f - 3b",
            "std 12, 16(1)",
            "mr 4, 1",
            "ld 1, 0(5)",
            "ld 0, 16(1)",
            "mtlr 0",
            "blr",
            "2:",
            "mflr 0",
            "std 0, 16(1)",
            "std 1, -{link}(4)",
            "mr 1, 5",
            "ld 2, -8(1)",
            "ld 30, -16(1)",
            "ld 31, -24(1)",
            link = const LINK_OFFSET,
            inlateout("r3") arg => ret_arg,
            lateout("r4") unwind_flag,
            inlateout("r5") link => _,
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
    // SAFETY: as for `switch_yield`; the exit code in r4 tells the parent
    // the coroutine finished, so it is never resumed.
    unsafe {
        asm!(
            // In: r3 = word, r4 = exit code, r5 = link. Never returns.
            "ld 1, 0(5)",
            "ld 0, 16(1)",
            "mtlr 0",
            "blr",
            in("r3") arg,
            in("r4") exit,
            in("r5") link,
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
    // SAFETY: stack_call_root restores r1 and r2 and returns; `f` follows
    // the C ABI, so only caller-saved registers change.
    unsafe {
        unwinding_asm!(
            // In: r3 = argument, r4 = new stack top, r5 = function.
            // The nop is the linker's TOC-restore slot and keeps the return
            // address inside this block (see coroutine_root).
            "bl {root}",
            "nop",
            root = sym stack_call_root,
            inlateout("r3") arg => _,
            inlateout("r4") top => _,
            inlateout("r5") f => _,
            clobber_abi("C")
        );
    }
}

/// Registers that a trap handler writes into the interrupted context so that
/// the coroutine runs the function given to
/// [`CoroutineTrapHandler::setup_trap_handler`](crate::trap::CoroutineTrapHandler::setup_trap_handler)
/// and then returns its result to the parent.
///
/// Every field must be written (into `uc_mcontext.gp_regs` on Linux, `pc`
/// being `PT_NIP` and `lr` `PT_LNK`); destructure it so the compiler checks
/// that none is missed:
///
/// ```
/// # use switchback::trap::TrapHandlerRegs;
/// # let regs = TrapHandlerRegs { pc: 0, sp: 0, r3: 0, r4: 0, r12: 0, lr: 0 };
/// let TrapHandlerRegs { pc, sp, r3, r4, r12, lr } = regs;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrapHandlerRegs {
    /// Instruction pointer (NIP).
    pub pc: u64,
    /// Stack pointer (r1).
    pub sp: u64,
    /// First argument register.
    pub r3: u64,
    /// Second argument register.
    pub r4: u64,
    /// The function being entered: its address (ELFv2, whose global entry
    /// point computes the TOC from r12) or its descriptor (ELFv1, read by
    /// the trampoline `pc` points at).
    pub r12: u64,
    /// Link register: the return address, inside the root frame.
    pub lr: u64,
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
    // SAFETY: the caller guarantees that the root frame's header is in the
    // stack; the return label at base - 16 was written by coroutine_root.
    let return_label = unsafe {
        *(sp as *mut usize) = link;
        *((base.get() - 16) as *const usize)
    };
    #[cfg(target_abi = "elfv1")]
    let pc = trap_entry_trampoline as *const () as usize;
    #[cfg(not(target_abi = "elfv1"))]
    let pc = entry as usize;
    TrapHandlerRegs {
        pc: pc as u64,
        sp: sp as u64,
        r3: obj as u64,
        r4: link as u64,
        r12: entry as usize as u64,
        lr: return_label as u64,
    }
}

/// The highest address below which the parent stack is free: below the
/// registers the parent saved under its stack pointer.
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
    // SAFETY: outside Valgrind the four rotations of r0 add up to 128 bits
    // (a no-op) and `or 1, 1, 1` changes nothing; under Valgrind the
    // sequence is recognised and r3 receives the answer.
    unsafe {
        asm!(
            // In: r3 = default, r4 = &args. Out: r3 = result. r0 is rotated
            // back to its value; declared clobbered all the same.
            "rotldi 0, 0, 3",
            "rotldi 0, 0, 13",
            "rotldi 0, 0, 61",
            "rotldi 0, 0, 51",
            "or 1, 1, 1",
            inout("r3") default => result,
            in("r4") args.as_ptr(),
            lateout("r0") _,
        );
    }
    result
}
