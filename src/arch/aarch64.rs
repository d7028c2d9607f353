//! The context switch for AArch64 (AAPCS64): Linux, bare metal, macOS, iOS
//! and UEFI.
//!
//! # Stack layout
//!
//! ```text
//! coroutine stack                          parent stack while it runs
//! +--------------------+ <- base           |        ...         |
//! | return label       |  base - 8         +--------------------+ <- parent sp outside
//! +--------------------+                   | (padding)          |    its asm! block
//! | parent link        |  base - 16        | saved x19          |
//! +--------------------+                   +--------------------+
//! | closure object     |                   | return address     |  a frame record:
//! ~        ...         ~                   | saved x29          |  {x29, x30}
//! +--------------------+ <- obj            +--------------------+ <- link value
//! | entry fn           |  only until          (the parent link holds it)
//! | coroutine_root     |  the first resume
//! +--------------------+ <- initial sp
//! ```
//!
//! A suspended coroutine keeps, at its saved stack pointer, the four words
//! `[resume address, x19, x29, unused]`. A parent blocked in
//! `switch_and_link` keeps, at the link value, `[x29, return address]` (a
//! frame record as AAPCS64 defines it) and above that `[x19, padding]`. The
//! root frame's `x29` points at the link, and the link word with the return
//! label above it is itself a frame record `{parent record, label in the
//! root}`, so the frame-record chain runs from the coroutine into its parent.
//!
//! # Register contract of a switch
//!
//! AAPCS64 makes x19-x28, x29 (frame pointer), sp and the low halves of
//! v8-v15 callee-saved. LLVM will not let an `asm!` block name x19 or x29,
//! so those are saved by hand; x20-x28 are declared clobbered and
//! `clobber_abi("C")` covers the rest (all of v0-v31, x0-x17, x30), so the
//! compiler spills only what is live across the switch. x18, the platform
//! register (reserved on Apple and Windows targets), is never read or
//! written here (on Linux `clobber_abi("C")` lists it as a temporary, which
//! only keeps the compiler from holding values in it across a switch). The
//! word passed across is in `x0`; the coroutine's new stack pointer (or its
//! exit code) comes back in `x1`.
//!
//! Every resume is a `blr` that the coroutine's `ret` returns from, so the
//! return-address predictor stays in step. A round trip (resume and
//! suspend) executes 18 instructions: 4 in `switch_and_link`, 6 at the
//! resume point and 8 in `switch_yield`.
//!
//! # Branch protection
//!
//! The code works in binaries built with `-Zbranch-protection=bti,pac-ret`:
//! every address reached by `blr` (the root and the resume point) starts with
//! `bti c` (written `hint #34`, a no-op without FEAT_BTI); the forced-unwind
//! entry is reached with `ret x3`, which BTI does not check. Return addresses
//! stored by this file (frame records, the return label) are never signed,
//! and the unwind info here never marks them signed; a PAC-signed return
//! address of a Rust function is only authenticated by that function's
//! epilogue, with the stack pointer it was signed with, which the switch
//! restores exactly.
//!
//! # Darwin (macOS, iOS)
//!
//! Apple's arm64 ABI is AAPCS64 with a few changes; the code is the same
//! on Darwin because none of them touches it:
//!
//! - x18 is reserved for the platform: nothing here reads or writes it,
//!   and on Apple targets `clobber_abi("C")` leaves it out.
//! - x29 must always point at a valid frame record. It does: between
//!   switches it is either the parent's record or the root's `{link,
//!   label}` record, never a scratch value.
//! - The 128-byte red zone below `sp` is not used by these blocks (none is
//!   `nostack`, so the compiler keeps nothing there across a switch).
//! - The variadic convention differs, but nothing here is variadic; the
//!   16-byte stack alignment is the same.
//! - Mach-O: rustc emits the naked functions with Mach-O's symbol rules,
//!   and this file uses no ELF-only directive. Its labels are numeric, so
//!   the assembler makes them temporary (`Ltmp`, never symbols that would
//!   split an atom under `.subsections_via_symbols`), and `adr` to them
//!   resolves within the function.
//! - Unwind info: the root's CFA is a DWARF expression, which compact unwind
//!   cannot express, so the assembler gives it a compact-unwind entry in
//!   DWARF mode and the linker keeps its FDE (with the signal-frame
//!   augmentation) in `__eh_frame`; CI (`xtask/src/objects.rs`) checks
//!   this in a dylib linked from the object by rust-lld's Mach-O linker.
//! - Apple's arm64 does not use BTI: `hint #34` is a no-op there, kept so
//!   that the resume prologue has the same length everywhere.
//! - arm64e (return addresses signed with pointer authentication, which
//!   Rust's `arm64e-apple-darwin` shares every cfg with) is not covered:
//!   the root record's label is stored unsigned.
//! - Valgrind has no arm64 Darwin port; outside Valgrind the client
//!   request's sequence changes nothing, so it stays.
//!
//! # UEFI
//!
//! `aarch64-unknown-uefi` uses this file too. The UEFI specification's
//! AArch64 calling convention is AAPCS64 with x18, the platform register,
//! left alone by firmware and images: nothing here reads or writes it, Rust
//! reserves it on that target, and CI checks the test image for it. Rust
//! compiles the target as ARM64 Windows code in PE/COFF objects; the
//! frame-record rule that adds is the one kept for Darwin above. The
//! `.cfi_*` directives assemble into a COFF `.eh_frame` section that the
//! linker carries into the image under the truncated name `.eh_fram`, where
//! nothing reads it: no unwinder runs in firmware (UEFI builds abort on
//! panic, and Rust gives the rest of the image no unwind tables either).
//! The code does not depend on it. Debuggers that walk ARM64 PE images by
//! their `.pdata` would need SEH tables, as x86-64 UEFI has through the
//! Windows file.

use core::arch::{asm, naked_asm};

use super::{EntryFn, StackCallFn, TrapEntryFn};
use crate::word::{StackPointer, Word};

/// Alignment of the stack pointer at a call boundary (AAPCS64 requires 16 at
/// all times for sp-relative accesses).
pub const STACK_ALIGNMENT: usize = 16;
/// The parent link is the word at `base - LINK_OFFSET`.
pub const LINK_OFFSET: usize = 16;
/// The link and the root frame's return label.
pub const RESERVED_TOP: usize = 16;
/// `init_stack` writes the root's address and the entry fn below the object.
pub const INIT_FRAME_SIZE: usize = 16;

/// `unwinding_asm!` for a switch to another context: besides the operands
/// given, every register that the ABI lets a callee keep (x20-x28; v8-v15
/// through `clobber_abi`) and every caller-saved one is clobbered, so the
/// compiler spills only what is live. x19 and x29, which LLVM reserves, are
/// saved by the asm itself; x18 is left alone.
macro_rules! context_switch_asm {
    ($($body:tt)*) => {
        unwinding_asm!(
            $($body)*
            lateout("x20") _, lateout("x21") _, lateout("x22") _, lateout("x23") _,
            lateout("x24") _, lateout("x25") _, lateout("x26") _, lateout("x27") _,
            lateout("x28") _,
            clobber_abi("C")
        )
    };
}

/// The root frame of every coroutine.
///
/// Entered by `blr` in `switch_and_link` on the first resume with:
/// `x0` = input word, `x1` = stack base, `x2` = initial stack pointer
/// (`[x2]` = this function, `[x2 + 8]` = entry fn, `x2 + 16` = object),
/// `x30` = return address into the parent, `sp` = the parent's stack with
/// its x19 at `[sp]`. It completes the parent's frame record by storing
/// `x29, x30` below that, stores the link and the return label, points `x29`
/// at the link and calls `entry(input, link, obj)` on the coroutine stack
/// with `blr`, so that the return address (label 2) lies inside this
/// function and the CFI below describes the frame. `entry` never returns.
///
/// The CFI says: CFA = [x29] + 32 (the parent's stack pointer outside its
/// `asm!` block), x29 at CFA-32, x30 at CFA-24, x19 at CFA-16. It is marked
/// a signal frame because the parent's stack may lie above or below this
/// one, which debuggers otherwise reject; so the parent's return address
/// must not be the last instruction of its `asm!` block, and it is not.
#[unsafe(naked)]
unsafe extern "C" fn coroutine_root() {
    naked_asm!(
        // In: x0 = input, x1 = base, x2 = initial sp, x30 = parent return
        // address, sp = parent sp (x19 saved at [sp]). Pushes the parent's
        // {x29, x30} record; never returns.
        ".cfi_startproc",
        ".cfi_signal_frame",
        ".cfi_def_cfa sp, 16",
        ".cfi_offset x19, -16",
        "hint #34", // bti c: entered by blr
        "stp x29, x30, [sp, #-16]!",
        ".cfi_def_cfa_offset 32",
        ".cfi_offset x29, -32",
        ".cfi_offset x30, -24",
        "mov x3, sp",
        "adr x4, 2f",
        // [base - 16] = parent record (the link), [base - 8] = label 2;
        // x1 = link.
        "stp x3, x4, [x1, #-16]!",
        "mov x29, x1",
        // DW_CFA_def_cfa_expression, 5 bytes: DW_OP_breg29 (x29) 0;
        // DW_OP_deref; DW_OP_plus_uconst 32.
        ".cfi_escape 0x0f, 5, 0x8d, 0x00, 0x06, 0x23, 0x20",
        "ldr x4, [x2, #8]",
        "add x2, x2, #16",
        "mov sp, x2",
        "blr x4",
        "2:",
        "brk #1",
        ".cfi_endproc",
    )
}

/// The frame `on_stack` runs its function under.
///
/// Entered by `bl` with `x0` = argument, `x1` = new stack top (16-aligned),
/// `x2` = function. Pushes the frame record `{x29, x30}`, points `x29` at
/// it, switches `sp`, calls `x2(x0)` and switches back. The CFA is
/// `x29`-based so unwinding from the new stack lands back on the old one.
#[unsafe(naked)]
unsafe extern "C" fn stack_call_root() {
    naked_asm!(
        // In: x0 = argument, x1 = stack top, x2 = function, x30 = return
        // address. Out: what the function leaves in the caller-saved
        // registers; x29 and sp restored. Pushes {x29, x30} (16 bytes).
        ".cfi_startproc",
        ".cfi_signal_frame",
        "hint #34", // bti c, in case it is ever reached indirectly
        "stp x29, x30, [sp, #-16]!",
        ".cfi_def_cfa_offset 16",
        ".cfi_offset x29, -16",
        ".cfi_offset x30, -8",
        "mov x29, sp",
        ".cfi_def_cfa x29, 16",
        "mov sp, x1",
        "blr x2",
        "mov sp, x29",
        ".cfi_def_cfa sp, 16",
        "ldp x29, x30, [sp], #16",
        ".cfi_def_cfa_offset 0",
        ".cfi_restore x29",
        ".cfi_restore x30",
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
    // resumed; it returns here through the `ret` matching this `blr`.
    unsafe {
        context_switch_asm!(
            // In: x0 = word, x1 = stack base (non-zero: ordinary resume),
            // x2 = coroutine sp. Out: x0 = word, x1 = new coroutine sp or
            // exit code. Saves x19 here (16 bytes) and x29 on the other side
            // (to build the frame record); everything else is clobbered.
            "str x19, [sp, #-16]!",
            "ldr x3, [x2]",
            "blr x3",
            "ldr x19, [sp], #16",
            inlateout("x0") arg => ret_arg,
            inlateout("x1") base.get() => ret_sp,
            inlateout("x2") sp.get() => _,
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
    // would and enter it just past that prologue (RESUME_PROLOGUE_LEN
    // bytes: four fixed-size instructions).
    unsafe {
        context_switch_asm!(
            // In: x1 = stack base, x2 = coroutine sp. Out: x0 = word,
            // x1 = new coroutine sp or exit code. Saves x19 as
            // switch_and_link does, pushes the {x29, x30} record, stores the
            // link, and enters the resume point after its prologue with
            // x1 = 0, which switch_yield reports as the unwind request.
            // `ret x3` is not checked by BTI, so no landing pad is needed
            // there (this cold path may mispredict).
            "str x19, [sp, #-16]!",
            "bl 5f",
            "ldr x19, [sp], #16",
            "b 6f",
            "5:",
            "stp x29, x30, [sp, #-16]!",
            "mov x3, sp",
            "str x3, [x1, #-{link}]",
            "ldr x3, [x2]",
            "add x3, x3, #{prologue}",
            "mov x1, #0",
            "ret x3",
            "6:",
            link = const LINK_OFFSET,
            prologue = const RESUME_PROLOGUE_LEN,
            lateout("x0") ret_arg,
            inlateout("x1") base.get() => ret_sp,
            inlateout("x2") sp.get() => _,
        );
    }
    (ret_arg, ret_sp)
}

/// Length of the resume point's prologue in `switch_yield`: `bti c`, the
/// `stp` of the parent's record, `mov x3, sp` and the store of the link,
/// four instructions of four bytes each.
#[cfg_attr(not(feature = "unwind"), allow(dead_code))]
const RESUME_PROLOGUE_LEN: usize = 16;

/// Suspends the running coroutine, handing `arg` to its parent. Returns the
/// word of the next resume, or `None` if the parent asks the coroutine to
/// unwind its stack (`switch_and_unwind`).
///
/// # Safety
/// Must run on the coroutine stack whose link is `link`, while it is running.
#[inline(always)]
pub unsafe fn switch_yield(arg: Word, link: *mut StackPointer) -> Option<Word> {
    let (ret_arg, unwind_flag): (Word, usize);
    // SAFETY: the link holds the parent's stack pointer, which points at the
    // frame record `switch_and_link` left there; we resume at label 2 when
    // the parent's next `blr` lands there.
    unsafe {
        context_switch_asm!(
            // In: x0 = word, x2 = link.
            // Out: x0 = word from the parent, x1 = 0 if asked to unwind.
            // Pushes [resume address, x19, x29, -] (32 bytes), hands its sp
            // to the parent in x1, restores the parent's x29 and x30 from
            // its record and returns into it.
            // Resumed at 2 by `blr` with x0 = word, x1 = base, x2 = our sp
            // and the parent's x19 pushed on the parent stack;
            // switch_and_unwind enters after the 16-byte prologue instead
            // (with the prologue's work done and x1 = 0).
            "adr x3, 2f",
            "stp x3, x19, [sp, #-32]!",
            "str x29, [sp, #16]",
            "mov x1, sp",
            "ldr x3, [x2]",
            "mov sp, x3",
            "ldp x29, x30, [sp], #16",
            "ret",
            "2:",
            "hint #34", // bti c: entered by blr
            "stp x29, x30, [sp, #-16]!",
            "mov x3, sp",
            "str x3, [x1, #-{link}]",
            "ldp x19, x29, [x2, #8]",
            "add sp, x2, #32",
            link = const LINK_OFFSET,
            inlateout("x0") arg => ret_arg,
            lateout("x1") unwind_flag,
            inlateout("x2") link => _,
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
    // SAFETY: as for `switch_yield`; the exit code in x1 tells the parent
    // the coroutine finished, so it is never resumed.
    unsafe {
        asm!(
            // In: x0 = word, x1 = exit code, x2 = link. Restores the
            // parent's sp, x29 and x30 and returns into it. Never returns.
            "ldr x3, [x2]",
            "mov sp, x3",
            "ldp x29, x30, [sp], #16",
            "ret",
            in("x0") arg,
            in("x1") exit,
            in("x2") link,
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
    // SAFETY: stack_call_root saves and restores x29 and sp; `f` follows
    // the C ABI, so only caller-saved registers change.
    unsafe {
        unwinding_asm!(
            // In: x0 = argument, x1 = new stack top, x2 = function.
            // Clobbers the caller-saved registers (x30 by the `bl`). The nop
            // keeps the return address inside this block, because the root
            // is a signal frame (see coroutine_root).
            "bl {root}",
            "nop",
            root = sym stack_call_root,
            inlateout("x0") arg => _,
            inlateout("x1") top => _,
            inlateout("x2") f => _,
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
/// # let regs = TrapHandlerRegs { pc: 0, sp: 0, x0: 0, x1: 0, x29: 0, lr: 0 };
/// let TrapHandlerRegs { pc, sp, x0, x1, x29, lr } = regs;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrapHandlerRegs {
    /// Program counter.
    pub pc: u64,
    /// Stack pointer.
    pub sp: u64,
    /// First argument register.
    pub x0: u64,
    /// Second argument register.
    pub x1: u64,
    /// Frame pointer.
    pub x29: u64,
    /// Link register (x30): the return address.
    pub lr: u64,
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
    // SAFETY: the caller guarantees the coroutine started, so coroutine_root
    // wrote its return label at base - 8.
    let label = unsafe { *((base.get() - 8) as *const usize) };
    TrapHandlerRegs {
        pc: entry as usize as u64,
        sp: obj as u64,
        x0: obj as u64,
        x1: link as u64,
        x29: link as u64,
        lr: label as u64,
    }
}

/// The highest address below which the parent stack is free.
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
    // SAFETY: outside Valgrind the four rotations of x12 add up to 128 bits
    // (a no-op) and `orr x10, x10, x10` changes nothing; under Valgrind the
    // sequence is recognised and x3 receives the answer.
    unsafe {
        asm!(
            // In: x3 = default, x4 = &args. Out: x3 = result. x10 and x12
            // end as they started.
            "ror x12, x12, #3",
            "ror x12, x12, #13",
            "ror x12, x12, #51",
            "ror x12, x12, #61",
            "orr x10, x10, x10",
            inout("x3") default => result,
            in("x4") args.as_ptr(),
            options(nostack)
        );
    }
    result
}
