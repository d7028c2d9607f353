//! The context switch for AArch64 Windows (the ARM64 Windows ABI and its
//! SEH unwind tables).
//!
//! The switch itself (`switch_and_link`, `switch_and_unwind`, `switch_yield`,
//! `switch_and_reset`) is the AAPCS64 one of `aarch64.rs`, shared as it is:
//! the word travels in `x0`, the parent's `x19` waits on the parent's stack,
//! every resume is a `blr` that the coroutine's `ret` returns from, and the
//! link is the word at `base - 16`. This file adds what the ARM64 Windows
//! ABI and its unwind format need: the root frame, the frame of `on_stack`,
//! the context around the link, and the TEB.
//!
//! - ARM64 Windows uses AAPCS64's calling convention, with `x18` reserved.
//!
//!   `x18` holds the address of the current thread's TEB in user mode and
//!   must never be written: the switch never names it (it is not in
//!   `clobber_abi("C")` on Windows, which reserves it), and this file reads
//!   it only in [`thread_environment_block`]. `x19`-`x28`, `x29` (the frame pointer,
//!   always kept), `sp` and the low halves of `v8`-`v15` are callee-saved,
//!   as in AAPCS64.
//! - Unwinding uses `.pdata`/`.xdata` (written here with `.seh_*`
//!   directives), whose codes describe prologue instructions and cannot say
//!   "the caller's stack pointer is stored at this address" except through
//!   a *machine frame*: `MSFT_OP_MACHINE_FRAME` (`.seh_pushframe`, unwind
//!   code `0xe9`) reloads `sp` and `pc` from the two words `{sp, pc}` at the
//!   stack pointer, as for an interrupted context. So the context at the
//!   top of a coroutine stack is laid out around one.
//! - Windows keeps the running stack's bounds in the TEB; the portable code
//!   swaps them around every switch (see `teb`).
//! - Panics are SEH exceptions. The dispatcher calls the handlers of the
//!   frames it unwinds to only while their stack pointers lie within the
//!   TEB's bounds of the running stack, so a panic cannot reach a handler in
//!   the resumer: the portable code catches it at the coroutine's root and
//!   resumes it in the parent, and `asm-unwind` is refused at compile time.
//!   Stack walks that only unwind (backtraces, debuggers, profilers) have no
//!   such limit and continue into the resumer through the root's unwind
//!   info.
//!
//! # Stack layout
//!
//! ```text
//! coroutine stack                           parent stack while it runs
//! +------------------------+ <- base        |        ...         |
//! | parent frame label     |  base - 8 (pc) +--------------------+ <- parent sp outside
//! | link ------------------+--base - 16 (sp)| (padding)          |    its asm! block
//! | (padding)              |  ^ machine     | saved x19          |
//! | root return label      |    frame,      +--------------------+
//! +------------------------+    root x29    | return address     |  a frame record:
//! ~ closure object, frames ~                | saved x29          |  {x29, x30}
//! | entry fn               |                +--------------------+ <- link value
//! | coroutine_root         |  <- initial sp, until the first resume
//! ```
//!
//! A suspended coroutine keeps, at its saved stack pointer, the four words
//! `[resume address, x19, x29, unused]`, as on Linux.
//!
//! The root frame's `x29` points at the machine frame, which is also the
//! link. Its unwind info is "frame pointer `x29` (`set_fp`), then a machine
//! frame", so an unwinder restores `sp` from `x29`, then reads the link as
//! the caller's `sp` and the *parent frame label* as its `pc`. That label
//! lies in `parent_frame`, a function that is never run and exists for its
//! unwind info: "`x19` was pushed (`str x19, [sp, #-16]!`), then `{x29,
//! x30}` (`stp x29, x30, [sp, #-16]!`)". It describes the parent's stack at
//! the link value exactly, so the unwinder restores the parent's `x29`,
//! `x30` and `x19`, and continues at the parent's return address with the
//! stack pointer the parent had outside its switch. So backtraces, debuggers
//! and profilers walk from the coroutine into whoever resumed it. The frame-record chain leads there too: the root's record
//! at `x29` is `{link value, parent frame label}`, and the link value is the
//! parent's `{x29, x30}` record.
//!
//! The machine frame code stands for no instruction, so the root's
//! prologue is one instruction long as far as an unwinder is concerned,
//! while its codes hold only from its fourth instruction on (the `mov x29`,
//! after the parent's record and the link are stored). Nothing that can
//! raise an exception runs before it; only an asynchronous walk (a
//! profiler's sample) could land on those three instructions.
//!
//! # A round trip
//!
//! As on Linux, 18 instructions. The `bti c` landing pad at the resume
//! point is a no-op here (Windows does not enforce BTI); it stays so that
//! the switch is one piece of code on both.

use core::arch::{asm, naked_asm};

use super::{EntryFn, StackCallFn, TrapEntryFn};
use crate::word::StackPointer;

/// The AAPCS64 switch, shared with Linux (see the module documentation).
/// Its root frame, `on_stack` frame, `init_stack`, `trap_handler_regs`
/// and Valgrind request, which carry DWARF CFI or the Linux layout, are the
/// items not used here.
#[path = "aarch64.rs"]
#[allow(dead_code)]
mod aapcs64;

#[cfg(feature = "unwind")]
pub use aapcs64::switch_and_unwind;
pub use aapcs64::{
    parent_stack_top, switch_and_link, switch_and_reset, switch_yield, TrapHandlerRegs,
    INIT_FRAME_SIZE, LINK_OFFSET, STACK_ALIGNMENT,
};

/// Bytes per stack word.
const WORD: usize = 8;

/// The context: the machine frame (whose `sp` is the link), a word of
/// padding and the root label.
pub const RESERVED_TOP: usize = 4 * WORD;

/// `base - MACHINE_FRAME_PC`: the machine frame's `pc`, the parent frame
/// label, just above the link.
const MACHINE_FRAME_PC: usize = LINK_OFFSET - WORD;
/// `base - LABEL_SLOT`: the root frame's return label.
const LABEL_SLOT: usize = 4 * WORD;
/// The parent frame label is this far into `parent_frame`: after its two
/// prologue instructions and a `nop`, so that it lies in the body whether
/// an unwinder looks it up as it is or as a return address (4 bytes back).
const PARENT_FRAME_LABEL_OFFSET: usize = 12;

/// Exists for its unwind info only, never run: the frame of a parent that
/// resumed a coroutine, as the root's machine frame enters it at the label
/// twelve bytes in. Its prologue is what the parent's switch pushed (its
/// `x19`, then its `{x29, x30}` record); its code after the label is the
/// matching epilogue.
#[unsafe(naked)]
unsafe extern "C" fn parent_frame() {
    naked_asm!(
        // Never run. Describes: x19 saved at [sp + 16], x29 and x30 at [sp],
        // the caller's sp at sp + 32.
        ".seh_proc {me}",
        "str x19, [sp, #-16]!",
        ".seh_save_reg_x x19, 16",
        "stp x29, x30, [sp, #-16]!",
        ".seh_save_fplr_x 16",
        ".seh_endprologue",
        "nop",
        "ldp x29, x30, [sp], #16",
        "ldr x19, [sp], #16",
        "ret",
        ".seh_endproc",
        me = sym parent_frame,
    )
}

/// The root frame of every coroutine.
///
/// Entered by `blr` in `switch_and_link` on the first resume with:
/// `x0` = input word, `x1` = stack base, `x2` = initial stack pointer
/// (`[x2]` = this function, `[x2 + 8]` = entry fn, `x2 + 16` = object),
/// `x30` = return address into the parent, `sp` = the parent's stack with
/// its x19 at `[sp]`. It completes the parent's frame record by storing
/// `x29, x30` below that, stores the link and the return label, points `x29`
/// at the link (the machine frame) and calls `entry(input, link, obj)` on
/// the coroutine stack with `blr`, so that the return address (label 2) lies
/// inside this function and its unwind info applies. `entry` never returns.
///
/// Unwind info (decoded: `0xe1` set_fp, `0xe9` machine frame, `0xe4` end):
/// `sp` from `x29`, then `sp` and `pc` from the machine frame; both hold
/// from the `mov x29` on.
#[unsafe(naked)]
unsafe extern "C" fn coroutine_root() {
    naked_asm!(
        // In: x0 = input, x1 = base, x2 = initial sp, x30 = parent return
        // address, sp = parent sp (x19 saved at [sp]). Pushes the parent's
        // {x29, x30} record; never returns.
        ".seh_proc {me}",
        ".seh_pushframe",
        ".seh_set_fp",
        ".seh_endprologue",
        "stp x29, x30, [sp, #-16]!",
        "mov x3, sp",
        // [base - 16] = parent record (the link); x1 = link.
        "str x3, [x1, #-{link}]!",
        "mov x29, x1",
        "adr x4, 2f",
        "str x4, [x1, #-{label}]",
        "ldr x4, [x2, #8]",
        "add x2, x2, #16",
        "mov sp, x2",
        "blr x4",
        "2:",
        "brk #1",
        ".seh_endproc",
        me = sym coroutine_root,
        link = const LINK_OFFSET,
        label = const LABEL_SLOT - LINK_OFFSET,
    )
}

/// The frame `on_stack` runs its function under.
///
/// Entered by `bl` with `x0` = argument, `x1` = new stack top (16-aligned),
/// `x2` = function. Pushes the frame record `{x29, x30}`, points `x29` at
/// it, switches `sp`, calls `x2(x0)` and switches back. Its unwind info
/// uses `x29` as frame pointer, so unwinding from the new stack lands back
/// on the old one; the epilogue is described as well.
#[unsafe(naked)]
unsafe extern "C" fn stack_call_root() {
    naked_asm!(
        // In: x0 = argument, x1 = stack top, x2 = function, x30 = return
        // address. Out: what the function leaves in the caller-saved
        // registers; x29 and sp restored. Pushes {x29, x30} (16 bytes).
        ".seh_proc {me}",
        "stp x29, x30, [sp, #-16]!",
        ".seh_save_fplr_x 16",
        "mov x29, sp",
        ".seh_set_fp",
        ".seh_endprologue",
        "mov sp, x1",
        "blr x2",
        ".seh_startepilogue",
        "mov sp, x29",
        ".seh_set_fp",
        "ldp x29, x30, [sp], #16",
        ".seh_save_fplr_x 16",
        ".seh_endepilogue",
        "ret",
        ".seh_endproc",
        me = sym stack_call_root,
    )
}

/// Writes the initial frame below `obj` and the machine frame's constant
/// `pc`, and returns the initial stack pointer.
///
/// # Safety
/// `obj` must be 16-aligned, at most `base - RESERVED_TOP`, and the
/// `INIT_FRAME_SIZE` bytes below it and the context below `base` must be
/// writable stack memory.
#[inline]
pub unsafe fn init_stack(base: StackPointer, obj: usize, entry: EntryFn) -> StackPointer {
    let sp = obj - INIT_FRAME_SIZE;
    // SAFETY: the caller guarantees that [obj - 16, obj) and the context
    // below `base` are writable and 16-aligned, so every word is aligned
    // and in bounds.
    unsafe {
        *((sp + WORD) as *mut usize) = entry as usize;
        *(sp as *mut usize) = coroutine_root as *const () as usize;
        *((base.get() - MACHINE_FRAME_PC) as *mut usize) =
            parent_frame as *const () as usize + PARENT_FRAME_LABEL_OFFSET;
        StackPointer::new_unchecked(sp)
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
            // Clobbers the caller-saved registers (x30 by the `bl`).
            "bl {root}",
            root = sym stack_call_root,
            inlateout("x0") arg => _,
            inlateout("x1") top => _,
            inlateout("x2") f => _,
            clobber_abi("C")
        );
    }
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
    // wrote its return label in the context.
    let label = unsafe { *((base.get() - LABEL_SLOT) as *const usize) };
    TrapHandlerRegs {
        pc: entry as usize as u64,
        sp: obj as u64,
        x0: obj as u64,
        x1: link as u64,
        x29: link as u64,
        lr: label as u64,
    }
}

/// The current thread's Thread Environment Block, whose address user-mode
/// ARM64 Windows keeps in `x18`.
#[inline(always)]
pub fn thread_environment_block() -> *mut u8 {
    let teb: *mut u8;
    // SAFETY: reads x18, which the ABI reserves for the TEB pointer on every
    // user-mode thread; nothing is written.
    unsafe {
        asm!(
            // In: nothing. Out: the TEB's address (a copy of x18). No stack
            // use, no memory access.
            "mov {}, x18",
            out(reg) teb,
            options(nostack, nomem, pure, preserves_flags)
        );
    }
    teb
}

/// Valgrind does not run on Windows: always `default`.
///
/// # Safety
/// None needed; unsafe to match the other architectures.
#[inline(always)]
pub unsafe fn valgrind_client_request(default: usize, _args: &[usize; 6]) -> usize {
    default
}
