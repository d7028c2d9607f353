//! The context switch for x86-64 on System V targets (Linux, the BSDs).
//!
//! # Stack layout
//!
//! ```text
//! coroutine stack                          parent stack while it runs
//! +--------------------+ <- base           |        ...         |
//! | return label       |  base - 8         +--------------------+
//! +--------------------+                   | saved rbx          |
//! | parent link  ------+------------------>| return address     |  a frame record:
//! +--------------------+  base - 16        | saved rbp          |  {rbp, rip}
//! | closure object     |                   +--------------------+ <- link value
//! ~        ...         ~
//! +--------------------+ <- obj (16-aligned)
//! | entry fn           |  only until the first resume
//! | coroutine_root     |
//! +--------------------+ <- initial sp
//! ```
//!
//! A suspended coroutine keeps, at its saved stack pointer, the three words
//! `[resume address, rbx, rbp]`. A parent blocked in `switch_and_link` keeps,
//! at the link value, `[rbp, return address, rbx]`: `{rbp, return address}`
//! is a valid frame record, and the root frame's `rbp` points at the link, so
//! the frame-pointer chain runs from the coroutine into its parent.
//!
//! # Register contract of a switch
//!
//! LLVM will not let an `asm!` block clobber `rbx`, `rbp` or `rsp`, so those
//! are saved by hand; every other register is declared clobbered, so the
//! compiler spills only what is live across the switch. The word passed
//! across is in `rdi`; the coroutine's new stack pointer (0 when it has
//! returned) comes back in `rsi`. Every `call` is matched by a `ret`: the
//! parent's `call [rdx]` is returned from by the coroutine's `ret` in
//! `switch_yield`/`switch_and_reset`, so the return-stack predictor stays in
//! step.

use core::arch::{asm, naked_asm};

use super::{EntryFn, StackCallFn, TrapEntryFn};
use crate::stack::StackPointer;
use crate::word::Word;

/// Alignment of the stack pointer at a call boundary.
pub const STACK_ALIGNMENT: usize = 16;
/// The parent link is the word at `base - LINK_OFFSET`.
pub const LINK_OFFSET: usize = 16;
/// The link and the root frame's return label.
pub const RESERVED_TOP: usize = 16;
/// `init_stack` writes the entry fn and the root's address below the object.
pub const INIT_FRAME_SIZE: usize = 16;

#[cfg(not(feature = "asm-unwind"))]
macro_rules! switch_asm {
    ($($body:tt)*) => { asm!($($body)*) };
}
#[cfg(feature = "asm-unwind")]
macro_rules! switch_asm {
    ($($body:tt)*) => { asm!($($body)*, options(may_unwind)) };
}

/// `switch_asm!` for a switch to another context: besides the operands
/// given, every register that the ABI lets a callee keep (r12-r15) and every
/// caller-saved one is clobbered, so the compiler spills only what is live.
/// rbx and rbp, which LLVM reserves, are saved by the asm itself.
macro_rules! context_switch_asm {
    ($($body:tt)*) => {
        switch_asm!(
            $($body)*
            lateout("r12") _, lateout("r13") _, lateout("r14") _, lateout("r15") _,
            clobber_abi("sysv64")
        )
    };
}

/// The root frame of every coroutine.
///
/// Entered by `call [rdx]` in `switch_and_link` on the first resume with:
/// `rdi` = input word, `rsi` = stack base, `rdx` = initial stack pointer
/// (`[rdx]` = this function, `[rdx + 8]` = entry fn, `rdx + 16` = object),
/// `rsp` pointing at `[return address, parent rbx]` on the parent stack.
/// It completes the parent record by pushing `rbp`, stores the link, points
/// `rbp` at the link and jumps to `entry(input, link, obj)` on the coroutine
/// stack with a return address (label 2) inside this function, so that the
/// CFI below describes the frame. `entry` never returns.
///
/// The CFI says: CFA = [rbp] + 24 (the parent's stack pointer outside its
/// `asm!` block), rbp at CFA-24, rip at CFA-16, rbx at CFA-8. It is marked a
/// signal frame because the parent's stack may lie above or below this one,
/// which debuggers otherwise reject; so the parent's return address must
/// not be the last instruction of its `asm!` block, and it is not.
#[unsafe(naked)]
unsafe extern "C" fn coroutine_root() {
    naked_asm!(
        ".cfi_startproc",
        ".cfi_signal_frame",
        ".cfi_def_cfa rsp, 16",
        ".cfi_offset rip, -16",
        ".cfi_offset rbx, -8",
        "push rbp",
        ".cfi_def_cfa_offset 24",
        ".cfi_offset rbp, -24",
        "mov [rsi - 16], rsp",
        "lea rbp, [rsi - 16]",
        // DW_CFA_def_cfa_expression, 5 bytes: DW_OP_breg6 (rbp) 0; DW_OP_deref;
        // DW_OP_plus_uconst 24.
        ".cfi_escape 0x0f, 5, 0x76, 0x00, 0x06, 0x23, 0x18",
        "lea rcx, [rip + 2f]",
        "mov [rsi - 8], rcx",
        "lea rsp, [rdx + 16]",
        "mov rsi, rbp",
        "mov rax, [rdx + 8]",
        "mov rdx, rsp",
        "push rcx",
        "jmp rax",
        "2:",
        "int3",
        ".cfi_endproc",
    )
}

/// The frame `on_stack` runs its function under.
///
/// Entered by `call` with `rdi` = argument, `rsi` = new stack top (16-aligned),
/// `rdx` = function. Saves `rbp`, points it at its frame on the old stack,
/// switches `rsp`, calls `rdx(rdi)` and switches back. The CFA is `rbp`-based
/// so unwinding from the new stack lands back on the old one.
#[unsafe(naked)]
unsafe extern "C" fn stack_call_root() {
    naked_asm!(
        ".cfi_startproc",
        ".cfi_signal_frame",
        "push rbp",
        ".cfi_def_cfa_offset 16",
        ".cfi_offset rbp, -16",
        "mov rbp, rsp",
        ".cfi_def_cfa_register rbp",
        "mov rsp, rsi",
        "call rdx",
        "mov rsp, rbp",
        "pop rbp",
        ".cfi_def_cfa rsp, 8",
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
    // resumed; it returns here through the `ret` matching this `call`.
    unsafe {
        context_switch_asm!(
            // In: rdi = word, rsi = stack base, rdx = coroutine sp.
            // Out: rdi = word, rsi = new coroutine sp or exit code.
            // Saves rbx here and rbp on the other side (to build the frame
            // record); everything else is clobbered.
            "push rbx",
            "call qword ptr [rdx]",
            "pop rbx",
            inlateout("rdi") arg => ret_arg,
            inlateout("rsi") base.get() => ret_sp,
            inlateout("rdx") sp.get() => _,
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
    // SAFETY: as switch_and_link; we store the link ourselves and enter the
    // coroutine just past the link-storing prologue of its resume point
    // (RESUME_PROLOGUE_LEN bytes, fixed by `.byte` encoding there).
    unsafe {
        context_switch_asm!(
            // In: rsi = stack base, rdx = coroutine sp.
            // Out: rdi = word, rsi = new coroutine sp or exit code.
            // Does what the resume point's prologue would, then enters it
            // after the prologue with rsi = 0, which switch_yield reports
            // as the unwind request.
            "push rbx",
            "call 5f",
            "pop rbx",
            "jmp 6f",
            "5:",
            "push rbp",
            "mov [rsi - 16], rsp",
            "mov rax, [rdx]",
            "add rax, {prologue}",
            "xor esi, esi",
            "jmp rax",
            "6:",
            prologue = const RESUME_PROLOGUE_LEN,
            lateout("rdi") ret_arg,
            inlateout("rsi") base.get() => ret_sp,
            inlateout("rdx") sp.get() => _,
        );
    }
    (ret_arg, ret_sp)
}

/// Length of the resume point's prologue in `switch_yield` (`push rbp` and
/// `mov [rsi - 16], rsp`, emitted as bytes so the length is exact).
#[cfg_attr(not(feature = "unwind"), allow(dead_code))]
const RESUME_PROLOGUE_LEN: usize = 5;
const _: () = assert!(LINK_OFFSET == 16, "the resume prologue encodes [rsi - 16]");

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
    // record `switch_and_link` left there; we resume at label 2 when the
    // parent's next `call [rdx]` lands there.
    unsafe {
        context_switch_asm!(
            // In: rdi = word, rdx = link.
            // Out: rdi = word from the parent, rsi = 0 if asked to unwind.
            // Pushes [rbp, rbx, resume address], hands its sp to the parent
            // in rsi, restores the parent's rbp and returns into it.
            // Resumed at 2 with rdi = word, rsi = base, rdx = our sp and the
            // parent's rbx and return address pushed on the parent stack;
            // switch_and_unwind enters after the 5-byte prologue instead.
            "push rbp",
            "push rbx",
            "lea rax, [rip + 2f]",
            "push rax",
            "mov rsi, rsp",
            "mov rsp, [rdx]",
            "pop rbp",
            "ret",
            "2:",
            ".byte 0x55",                   // push rbp
            ".byte 0x48, 0x89, 0x66, 0xf0", // mov [rsi - 16], rsp
            "lea rsp, [rdx + 8]",
            "pop rbx",
            "pop rbp",
            inlateout("rdi") arg => ret_arg,
            lateout("rsi") unwind_flag,
            inlateout("rdx") link => _,
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
    // SAFETY: as for `switch_yield`; the exit code in rsi tells the parent
    // the coroutine finished, so it is never resumed.
    unsafe {
        asm!(
            // In: rdi = word, rsi = exit code, rdx = link. Never returns.
            "mov rsp, [rdx]",
            "pop rbp",
            "ret",
            in("rdi") arg,
            in("rsi") exit,
            in("rdx") link,
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
    // SAFETY: stack_call_root saves and restores rbp and rsp; `f` follows
    // the C ABI, so only caller-saved registers change.
    unsafe {
        switch_asm!(
            // In: rdi = argument, rsi = new stack top, rdx = function.
            // The nop keeps the return address inside this block, because
            // the root is a signal frame (see coroutine_root).
            "call {root}",
            "nop",
            root = sym stack_call_root,
            inlateout("rdi") arg => _,
            inlateout("rsi") top => _,
            inlateout("rdx") f => _,
            clobber_abi("sysv64")
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
/// # let regs = TrapHandlerRegs { rip: 0, rsp: 0, rbp: 0, rdi: 0, rsi: 0 };
/// let TrapHandlerRegs { rip, rsp, rbp, rdi, rsi } = regs;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrapHandlerRegs {
    /// Instruction pointer.
    pub rip: u64,
    /// Stack pointer.
    pub rsp: u64,
    /// Frame pointer.
    pub rbp: u64,
    /// First argument register.
    pub rdi: u64,
    /// Second argument register.
    pub rsi: u64,
}

/// The registers that make the interrupted coroutine call `entry(obj, link)`
/// as if from its root frame.
///
/// # Safety
/// The coroutine at `base` must have started (its root frame wrote the return
/// label), `obj` must be 16-aligned below `base - RESERVED_TOP` with 8
/// writable bytes below it.
pub unsafe fn trap_handler_regs(
    base: StackPointer,
    obj: usize,
    entry: TrapEntryFn,
) -> TrapHandlerRegs {
    let link = base.get() - LINK_OFFSET;
    let sp = obj - 8;
    // SAFETY: the caller guarantees both words are in the stack; the return
    // label at base - 8 was written by coroutine_root.
    unsafe {
        *(sp as *mut usize) = *((base.get() - 8) as *const usize);
    }
    TrapHandlerRegs {
        rip: entry as usize as u64,
        rsp: sp as u64,
        rbp: link as u64,
        rdi: obj as u64,
        rsi: link as u64,
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
    // SAFETY: outside Valgrind the four rotations of rdi add up to 128 bits
    // (a no-op) and `xchg rbx, rbx` changes nothing; under Valgrind the
    // sequence is recognised and rdx receives the answer.
    unsafe {
        asm!(
            // In: rax = &args, rdx = default. Out: rdx = result.
            "rol rdi, 3",
            "rol rdi, 13",
            "rol rdi, 61",
            "rol rdi, 51",
            "xchg rbx, rbx",
            inout("rdx") default => result,
            in("rax") args.as_ptr(),
            inout("rdi") 0usize => _,
        );
    }
    result
}
