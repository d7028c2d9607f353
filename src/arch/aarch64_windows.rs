//! The context switch for AArch64 Windows (the ARM64 Windows ABI and its
//! SEH unwind tables).
//!
//! The same switch as the AAPCS64 file (`aarch64.rs`): the word travels in
//! `x0`, the parent's `x19` waits on the parent's stack, every resume is a
//! `blr` that the coroutine's `ret` returns from. What differs is the ABI's
//! reserved register and the unwind format:
//!
//! - `x18` holds the address of the current thread's TEB in user mode and
//!   must never be written: this file never names it (it is not in
//!   `clobber_abi("C")` on Windows, which reserves it), and reads it only in
//!   [`thread_environment_block`]. `x19`-`x28`, `x29` (the frame pointer,
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
//! | root return label      |  base - 8      +--------------------+ <- parent sp outside
//! | (padding)              |  base - 16     | (padding)          |    its asm! block
//! | parent frame label     |  base - 24 (pc)| saved x19          |
//! | link ------------------+--base - 32 (sp)+--------------------+
//! +------------------------+  ^ machine     | return address     |  a frame record:
//! ~ closure object, frames ~    frame,      | saved x29          |  {x29, x30}
//! | entry fn               |    root x29    +--------------------+ <- link value
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
//! As on Linux, less the `bti c` landing pads (Windows does not enforce
//! BTI): resume 4 instructions in `switch_and_link`, 5 at the resume point;
//! suspend 8 in `switch_yield`. 17 instructions.

#[cfg(feature = "asm-unwind")]
compile_error!(
    "switchback's `asm-unwind` feature cannot work on AArch64 Windows: a panic is an SEH \
     exception, and the exception dispatcher stops at the first frame outside the running stack's \
     TEB bounds, so no handler in the resumer's frames would run. Use the `unwind` feature (the \
     default), which carries panics across the switch as values"
);

use core::arch::{asm, naked_asm};

use super::{EntryFn, StackCallFn, TrapEntryFn};
use crate::stack::StackPointer;
use crate::word::Word;

/// Bytes per stack word.
const WORD: usize = 8;

/// Alignment of the stack pointer at a call boundary (and at all times for
/// `sp`-relative accesses).
pub const STACK_ALIGNMENT: usize = 16;
/// The parent link is the word at `base - LINK_OFFSET`: the machine frame's
/// `sp`.
pub const LINK_OFFSET: usize = 4 * WORD;
/// The context: the machine frame, a word of padding and the root label.
pub const RESERVED_TOP: usize = 4 * WORD;
/// `init_stack` writes the root's address and the entry fn below the object.
pub const INIT_FRAME_SIZE: usize = 2 * WORD;

/// `base - LABEL_SLOT`: the root frame's return label.
const LABEL_SLOT: usize = WORD;
/// `base - MACHINE_FRAME_PC`: the machine frame's `pc`, the parent frame
/// label.
const MACHINE_FRAME_PC: usize = 3 * WORD;
/// The parent frame label is this far into `parent_frame`: after its two
/// prologue instructions and a `nop`, so that it lies in the body whether
/// an unwinder looks it up as it is or as a return address (4 bytes back).
const PARENT_FRAME_LABEL_OFFSET: usize = 12;

/// `unwinding_asm!` for a switch to another context: besides the operands
/// given, every register that the ABI lets a callee keep (x20-x28; v8-v15
/// through `clobber_abi`) and every caller-saved one is clobbered, so the
/// compiler spills only what is live. x19 and x29, which LLVM reserves, are
/// saved by the asm itself; x18 is never touched.
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
        // [base - 32] = parent record (the link); x1 = link.
        "str x3, [x1, #-{link}]!",
        "mov x29, x1",
        "adr x4, 2f",
        "str x4, [x1, #{label}]",
        "ldr x4, [x2, #8]",
        "add x2, x2, #16",
        "mov sp, x2",
        "blr x4",
        "2:",
        "brk #1",
        ".seh_endproc",
        me = sym coroutine_root,
        link = const LINK_OFFSET,
        label = const LINK_OFFSET - LABEL_SLOT,
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
    // bytes: three fixed-size instructions).
    unsafe {
        context_switch_asm!(
            // In: x1 = stack base, x2 = coroutine sp. Out: x0 = word,
            // x1 = new coroutine sp or exit code. Saves x19 as
            // switch_and_link does, pushes the {x29, x30} record, stores the
            // link, and enters the resume point after its prologue with
            // x1 = 0, which switch_yield reports as the unwind request.
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

/// Length of the resume point's prologue in `switch_yield`: the `stp` of the
/// parent's record, `mov x3, sp` and the store of the link, three
/// instructions of four bytes each.
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
            // switch_and_unwind enters after the 12-byte prologue instead
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

/// Registers that a trap handler writes into the interrupted context (the
/// `CONTEXT` record of a vectored exception handler) so that the coroutine
/// runs the function given to
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
    /// Program counter: the function that runs the handler's closure.
    pub pc: u64,
    /// Stack pointer: the closure, at the top of the coroutine's frames.
    pub sp: u64,
    /// First argument register: the closure.
    pub x0: u64,
    /// Second argument register: the link.
    pub x1: u64,
    /// Frame pointer: the machine frame (the link), as in the root frame.
    pub x29: u64,
    /// Link register (x30): the root's return label.
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

/// The highest address below which the parent stack is free.
#[inline]
pub fn parent_stack_top(link_value: usize) -> usize {
    link_value & !(STACK_ALIGNMENT - 1)
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
