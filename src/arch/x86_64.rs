//! The context switch for x86-64 on System V targets: Linux, bare metal and
//! macOS.
//!
//! The same design as `x86.rs`, register for register: `rdi`/`edi` carry the
//! word, `rsi`/`ecx` the stack base, `rdx`/`edx` the control word going in
//! and `rax`/`eax` the state coming out; `rbx` plays the part of `esi` (the
//! register LLVM reserves besides the frame pointer, saved by hand).
//!
//! # Stack layout
//!
//! Everything a suspended coroutine needs in order to be resumed lives in
//! the four words at the top of its own stack (its *context*), so the parent
//! finds it from the stack base alone:
//!
//! ```text
//!  coroutine stack                              parent stack while it runs
//! +-----------------------+ <- base            |         ...          |
//! | resume address        |  base - 8           +----------------------+
//! | saved stack pointer --+--+  base - 16       | parent rbx           |
//! | root return label     |  |  base - 24       | return address       | <- frame
//! | link  ----------------+--|----------------->| parent rbp           |    record
//! +-----------------------+  |  base - 32       +----------------------+ <- link value
//! ~ closure object, frames ~ |
//! | coroutine rbp         |  |
//! | coroutine rbx         | <+  while suspended
//! +-----------------------+
//! ```
//!
//! A fresh coroutine has `coroutine_root` as its resume address and its
//! entry function in the stack-pointer slot.
//!
//! The root frame's `rbp` is the address of the link, and the word above the
//! link is the root's return label, so `{link, label}` is a frame record
//! whose successor is the parent's `{rbp, return address}`: the frame-pointer
//! chain and the DWARF CFI of the root both lead into the parent.
//!
//! # A round trip
//!
//! The parent, given the base in `rsi`, pushes `rbx` and calls the resume
//! address stored at `base - 8`. The code there (right after the suspending
//! code of a `switch_yield`, or `coroutine_root` the first time) completes
//! the frame record by pushing `rbp`, stores the parent's stack pointer in
//! the link, loads the coroutine's stack pointer from `base - 16` and pops
//! the coroutine's `rbx` and `rbp`. Suspending is the mirror image: push
//! `rbp`, `rbx`, store the resume address and the stack pointer in the
//! context, load the parent's stack pointer from the link, pop its `rbp` and
//! `ret` into it. 3 + 5 + 8 = 16 instructions per round trip, and every
//! `call` is paired with a `ret` (the parent's `call` with the coroutine's
//! `ret`), so the return-stack predictor stays in step.
//!
//! # The control word and the unwind request
//!
//! `rdx` goes into the coroutine as the *control word*: ordinary resumes
//! pass the state the coroutine last handed out (nonzero), and
//! `switch_and_unwind` passes zero. The resume code never reads `rdx` (the
//! context gives it all it needs), so the suspended `switch_yield` sees the
//! value unchanged and reports zero as the unwind request. Ordinary resumes
//! pay nothing for this: the portable code passes the state anyway.
//!
//! Coming out, `rax` is the state: the resume address after a suspension
//! (already in `rax`, and a code address, so it never equals an initial
//! stack pointer, which here is the closure object itself and may lie right
//! below the link), or the exit code of `switch_and_reset`.
//!
//! # Registers LLVM reserves
//!
//! `asm!` may not name `rbx`, `rbp` or `rsp`, so those are saved by hand as
//! above; every other register is declared clobbered, so the compiler
//! spills only what is live across the switch.
//!
//! # Darwin (macOS)
//!
//! macOS uses the same System V calling convention, so the code is the same;
//! what differs is around it:
//!
//! - Mach-O objects: rustc emits the naked functions with Mach-O's symbol
//!   rules (the leading underscore, no `.type`/`.size`), and this file uses
//!   no ELF-only directive. Its labels are numeric (`2:`, `3:`), which the
//!   assembler turns into temporary labels (`Ltmp` on Mach-O, `.Ltmp` on
//!   ELF): never symbols, so they split no atom under
//!   `.subsections_via_symbols`, and the `lea` of a label resolves inside
//!   its own function without a relocation.
//! - Unwind info: the assembler turns each function's CFI into a
//!   compact-unwind entry where it can. The root's CFA is a DWARF
//!   expression, which compact unwind cannot express, so its entry is in
//!   DWARF mode and the linker keeps its FDE in `__eh_frame`, signal-frame
//!   augmentation included (`stack_call_root`'s entry is in DWARF mode too);
//!   `.ci/targets.sh` checks this in a dylib linked from the object by
//!   rust-lld's Mach-O linker.
//! - Frame pointers, which Apple requires to form a chain at all times: the
//!   root's `{link, label}` record keeps the chain going into the parent,
//!   as on Linux.
//! - The 128-byte red zone is the same; every switch is an `asm!` without
//!   `nostack`, so the compiler keeps nothing there across it.
//! - Valgrind's client request uses the same instruction sequence on
//!   amd64-darwin as on amd64-linux (though Valgrind only supports old
//!   macOS releases); outside Valgrind it changes nothing.

use core::arch::{asm, naked_asm};

use super::{EntryFn, StackCallFn, TrapEntryFn};
use crate::stack::StackPointer;
use crate::word::Word;

/// Bytes per stack word.
const WORD: usize = 8;

/// Alignment of the stack pointer at a call boundary.
pub const STACK_ALIGNMENT: usize = 16;
/// The parent link is the word at `base - LINK_OFFSET`, the lowest word of
/// the context.
pub const LINK_OFFSET: usize = 4 * WORD;
/// The context: link, root label, saved stack pointer, resume address.
pub const RESERVED_TOP: usize = 4 * WORD;
/// `init_stack` writes nothing below the object: the entry function waits in
/// the context's stack-pointer slot, which a fresh coroutine does not use.
pub const INIT_FRAME_SIZE: usize = 0;

/// `base - RESUME_SLOT`: where the suspended coroutine resumes.
const RESUME_SLOT: usize = WORD;
/// `base - SP_SLOT`: the suspended coroutine's stack pointer.
const SP_SLOT: usize = 2 * WORD;
/// `link + LABEL_ABOVE_LINK`: the root frame's return label.
const LABEL_ABOVE_LINK: usize = WORD;
/// `link + SP_ABOVE_LINK`: the saved stack pointer, from the link.
const SP_ABOVE_LINK: usize = LINK_OFFSET - SP_SLOT;
/// `link + RESUME_ABOVE_LINK`: the resume address, from the link.
const RESUME_ABOVE_LINK: usize = LINK_OFFSET - RESUME_SLOT;
/// The parent's record at the link value: `rbp`, return address, `rbx`. Its
/// stack pointer outside the switch is this far above the link value.
const PARENT_RECORD: usize = 3 * WORD;

/// `unwinding_asm!` that leaves for another context and comes back: on top
/// of the operands given, every register of the System V ABI except the
/// three saved by hand (`rbx`, `rbp`, `rsp`) is clobbered, including the
/// callee-saved `r12`-`r15`.
macro_rules! switch_asm {
    ($($body:tt)*) => {
        unwinding_asm!(
            $($body)*
            lateout("r12") _, lateout("r13") _, lateout("r14") _, lateout("r15") _,
            clobber_abi("sysv64")
        )
    };
}

/// The root frame of every coroutine: the resume address of a fresh one.
///
/// Called by the parent's `push rbx; call [rsi - 8]`, with `rdi` = first
/// input, `rsi` = stack base, `rdx` = initial stack pointer (the object),
/// and the entry function in the context's stack-pointer slot. Does what
/// every resume does (push `rbp`, store the link), makes `rbp` the address
/// of the link, stores its return label above the link, and jumps to
/// `entry(input, link, obj)` on the coroutine stack with the label as
/// return address. `entry` never returns.
///
/// CFI once `rbp` holds the link address: CFA = `[rbp] + 24`, the
/// parent's stack pointer outside its switch; the parent's `rbp`, return
/// address and `rbx` at CFA - 24, -16, -8. It is a signal frame, because
/// the parent's stack may lie above or below this one (debuggers check
/// that stacks grow one way otherwise); the unwinder then takes the
/// parent's return address as exact, which is why the parent's `call` is
/// followed by its `pop rbx` inside the same block.
#[unsafe(naked)]
unsafe extern "C" fn coroutine_root() {
    naked_asm!(
        ".cfi_startproc",
        ".cfi_signal_frame",
        ".cfi_def_cfa rsp, {entry_cfa}",
        ".cfi_offset rip, -{entry_cfa}",
        ".cfi_offset rbx, -{word}",
        "push rbp",
        ".cfi_def_cfa_offset {record}",
        ".cfi_offset rbp, -{record}",
        "mov [rsi - {link}], rsp",
        "lea rbp, [rsi - {link}]",
        // DW_CFA_def_cfa_expression (0x0f), 5 bytes: DW_OP_breg6 (rbp) + 0,
        // DW_OP_deref, DW_OP_plus_uconst PARENT_RECORD.
        ".cfi_escape 0x0f, 5, 0x76, 0, 0x06, 0x23, {record}",
        "lea rax, [rip + 3f]",
        "mov [rbp + {label}], rax",
        "mov rcx, [rbp + {entry}]",
        "mov rsp, rdx",
        "mov rsi, rbp",
        "push rax",
        "jmp rcx",
        "3:",
        "ud2",
        ".cfi_endproc",
        entry_cfa = const 2 * WORD,
        word = const WORD,
        record = const PARENT_RECORD,
        link = const LINK_OFFSET,
        label = const LABEL_ABOVE_LINK,
        entry = const SP_ABOVE_LINK,
    )
}

/// The frame that `on_stack` runs its function under.
///
/// Called with `rdi` = argument, `rsi` = new stack top (16-aligned), `rdx` =
/// function. Builds a frame record on the old stack, calls `rdx(rdi)` on the
/// new one and returns through the record. The CFA is `rbp`-based, so
/// unwinding from the new stack continues on the old one; a signal frame for
/// the reason given at `coroutine_root`.
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
        "leave",
        ".cfi_def_cfa rsp, 8",
        ".cfi_same_value rbp",
        "ret",
        ".cfi_endproc",
    )
}

/// Prepares the context of a fresh coroutine: the root as its resume
/// address, `entry` in its stack-pointer slot. Returns the initial stack
/// pointer, the object itself.
///
/// # Safety
/// `obj` must be 16-aligned and at most `base - RESERVED_TOP`, and the
/// context below `base` must be writable stack memory.
#[inline]
pub unsafe fn init_stack(base: StackPointer, obj: usize, entry: EntryFn) -> StackPointer {
    // SAFETY: the caller guarantees that the context below `base` is
    // writable and aligned, and `obj` is not null.
    unsafe {
        *((base.get() - SP_SLOT) as *mut usize) = entry as usize;
        *((base.get() - RESUME_SLOT) as *mut usize) = coroutine_root as *const () as usize;
        StackPointer::new_unchecked(obj - INIT_FRAME_SIZE)
    }
}

/// Enters the coroutine whose stack base is `base`, with `control` in `rdx`
/// (nonzero: resume; zero: unwind). Returns the word and the state.
///
/// # Safety
/// The context at `base` must hold a suspended (or fresh) coroutine; with a
/// zero `control` it must have started.
#[inline(always)]
unsafe fn enter(arg: Word, control: usize, base: StackPointer) -> (Word, usize) {
    let (word, state): (Word, usize);
    // SAFETY: the caller guarantees a resumable context at `base`; the
    // coroutine comes back through the `ret` paired with this `call`,
    // having restored rbp and left rsp as it was after the call.
    unsafe {
        switch_asm!(
            // In: rdi = word, rsi = stack base, rdx = control word.
            // Out: rdi = word, rax = state (resume address or exit code).
            // Pushes rbx and the return address; the coroutine pushes rbp
            // above them and pops it again. Everything else is clobbered.
            "push rbx",
            "call [rsi - {resume}]",
            "pop rbx",
            resume = const RESUME_SLOT,
            inlateout("rdi") arg => word,
            inlateout("rsi") base.get() => _,
            inlateout("rdx") control => _,
            lateout("rax") state,
        );
    }
    (word, state)
}

// `switch_and_link` and `switch_and_unwind`, through `enter`.
control_word_entries!();

/// Suspends the running coroutine, handing `arg` to its parent. Returns the
/// word of the next resume, or `None` if the parent asks the coroutine to
/// unwind its stack (`switch_and_unwind`).
///
/// # Safety
/// Must run on the coroutine stack whose link is `link`, while it is running.
#[inline(always)]
pub unsafe fn switch_yield(arg: Word, link: *mut StackPointer) -> Option<Word> {
    let (word, control): (Word, usize);
    // SAFETY: the link holds the parent's stack pointer, at the record that
    // `enter` and the resume code built; we return into the parent and are
    // resumed at label 2 by its next `call`.
    unsafe {
        switch_asm!(
            // In: rdi = word, rdx = link.
            // Suspend: push rbp, rbx; store the resume address and rsp in the
            // context; switch to the parent's record, pop its rbp, `ret`
            // with rdi = word and rax = resume address (the state).
            // Resume (label 2, on the parent stack, called with rdi = word,
            // rsi = base, rdx = control word): push the parent's rbp, store
            // the link, switch back, pop rbx and rbp.
            // Out: rdi = word, rdx = control word (0: unwind).
            "push rbp",
            "push rbx",
            "lea rax, [rip + 2f]",
            "mov [rdx + {resume}], rax",
            "mov [rdx + {sp}], rsp",
            "mov rsp, [rdx]",
            "pop rbp",
            "ret",
            "2:",
            "push rbp",
            "mov [rsi - {link}], rsp",
            "mov rsp, [rsi - {sp_slot}]",
            "pop rbx",
            "pop rbp",
            resume = const RESUME_ABOVE_LINK,
            sp = const SP_ABOVE_LINK,
            link = const LINK_OFFSET,
            sp_slot = const SP_SLOT,
            inlateout("rdi") arg => word,
            inlateout("rdx") link => control,
        );
    }
    if control == 0 {
        None
    } else {
        Some(word)
    }
}

/// Leaves the coroutine for the last time, handing `arg` and `exit` (a code
/// below `MIN_STACK_SIZE`, so never a state of a suspended coroutine) to its
/// parent.
///
/// # Safety
/// Must run on the coroutine stack whose link is `link`; nothing on this
/// stack may need dropping.
#[inline(always)]
pub unsafe fn switch_and_reset(arg: Word, exit: usize, link: *mut StackPointer) -> ! {
    // SAFETY: as for `switch_yield`, without a resume address: the exit code
    // tells the parent never to resume us.
    unsafe {
        asm!(
            // In: rdi = word, rax = exit code, rdx = link. Switches to the
            // parent's record, pops its rbp and returns into it.
            "mov rsp, [rdx]",
            "pop rbp",
            "ret",
            in("rdi") arg,
            in("rax") exit,
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
    // SAFETY: stack_call_root restores rbp and rsp; `f` follows the C ABI,
    // so only caller-saved registers change.
    unsafe {
        unwinding_asm!(
            // In: rdi = argument, rsi = new stack top, rdx = function.
            // Calls the root, which returns with rbp and rsp restored. The
            // nop keeps the return address inside this block (the root is a
            // signal frame, see coroutine_root).
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
    /// Instruction pointer: the function that runs the handler's closure.
    pub rip: u64,
    /// Stack pointer: below the closure, at the root's return label.
    pub rsp: u64,
    /// Frame pointer: the link, as in the root frame.
    pub rbp: u64,
    /// First argument register: the closure.
    pub rdi: u64,
    /// Second argument register: the link.
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
    let sp = obj - WORD;
    // SAFETY: the caller guarantees both words are in the stack; the root
    // frame wrote the label above the link.
    unsafe {
        *(sp as *mut usize) = *((link + LABEL_ABOVE_LINK) as *const usize);
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
    let answer;
    // SAFETY: valgrind.h's amd64 preamble: four rotations of rdi by 128 bits
    // in total leave it as it was, and `xchg rbx, rbx` changes nothing;
    // Valgrind recognises the sequence and puts its answer in rdx.
    unsafe {
        asm!(
            // In: rax = request block, rdx = default. Out: rdx = answer.
            // rdi is rotated back to its value; nothing else changes.
            "rol rdi, 3",
            "rol rdi, 13",
            "rol rdi, 61",
            "rol rdi, 51",
            "xchg rbx, rbx",
            in("rax") args.as_ptr(),
            inout("rdx") default => answer,
            out("rdi") _,
            options(nostack)
        );
    }
    answer
}
