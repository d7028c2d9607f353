//! The context switch for x86-64 on System V targets: Linux, bare metal and
//! macOS.
//!
//! # Design
//!
//! The suspended coroutine's stack pointer travels in a register: it is the
//! *state* that `switch_and_link` returns and takes back, and the resume
//! address is the word it points at. Nothing that the next switch needs is
//! loaded from memory that the previous switch just stored, except the
//! resume address itself (a `call` through the word at the state) and the
//! parent's stack pointer (from the link), so the new stack pointer of
//! either side never waits on a store-to-load round trip through a fixed
//! slot.
//!
//! Registers: `rdi` carries the word both ways, `rdx` the coroutine's
//! stack pointer going in (and the link inside the coroutine), `rsi` the
//! stack base going in and the *control word* coming out of a pending
//! suspend (the base, nonzero, on ordinary resumes; zero for the unwind
//! request), and `rax` the state coming out.
//!
//! # Stack layout
//!
//! ```text
//!  coroutine stack                              parent stack while it runs
//! +-----------------------+ <- base            |         ...          |
//! | root return label     |  base - 8           +----------------------+
//! | link  ----------------+-------------------->| parent rbx           |
//! +-----------------------+  base - 16          | return address       | <- frame
//! ~ closure object, frames ~                    | parent rbp           |    record
//! | coroutine rbp         |                     +----------------------+ <- link value
//! | coroutine rbx         |
//! | resume address        | <- state (its stack pointer) while suspended
//! +-----------------------+
//! ```
//!
//! A fresh coroutine's state is `obj - 16`, holding `coroutine_root` as its
//! resume address and its entry function above it.
//!
//! The root frame's `rbp` is the address of the link, and the word above the
//! link is the root's return label, so `{link, label}` is a frame record
//! whose successor is the parent's `{rbp, return address}`: the frame-pointer
//! chain and the DWARF CFI of the root both lead into the parent.
//!
//! # A round trip
//!
//! The parent pushes `rbx`, stores in the link the stack pointer it will
//! have once the landing code has pushed its `rbp` (it knows it in
//! advance: two words below its own), pushes its return address and jumps
//! to the resume address at the state. The landing code (right after the
//! suspending code of a `switch_yield`, or `coroutine_root` the first time)
//! pushes the parent's `rbp`, completing the frame record, sets the stack
//! pointer from the state in `rdx` and pops the coroutine's `rbx` and
//! `rbp`. Suspending is the mirror image: push `rbp`, `rbx` and the resume
//! address, hand the stack pointer out in `rax`, load the parent's stack
//! pointer from the link, pop its `rbp` and its return address and jump
//! there. 7 + 4 + 9 = 20 instructions per round trip.
//!
//! # Jumps, not `call` and `ret`
//!
//! Both directions are indirect `jmp`s, although the parent's side looks
//! like a call on the stack (its return address sits where a `call` would
//! have put it, so the frame record, the CFI and every unwinder see a
//! call). The processor's return-stack predictor never sees the switch,
//! and so stays right on both sides: the coroutine's own returns match its
//! own calls, across any number of switches, and likewise the parent's.
//! A switch done as a `call` paired with the other side's `ret` is as good
//! only while `suspend` is inlined into the coroutine's outermost frame:
//! with `suspend` three frames down, each of the three returns after a
//! resume, and the suspend's `ret` after the three calls, is mispredicted
//! (measured on an AMD EPYC, family 25 model 17, from a separate crate:
//! 7.5-11.9 ns per round trip against corosensei's 18.9-31.5 ns, ratio
//! 0.36-0.41, where the paired design measured 36-42 ns, about corosensei's
//! figure). The two indirect jumps have one target each per call site,
//! which the branch-target predictor learns.
//!
//! # The unwind request
//!
//! The landing code never reads `rsi`, so a pending `switch_yield` sees
//! the value the parent left there: the stack base on ordinary resumes
//! (which the parent needs anyway, to find the link), zero from
//! `switch_and_unwind`, which clears it after storing the link. Ordinary
//! resumes pay nothing for the request.
//!
//! Coming out, `rax` is the state: the coroutine's stack pointer after a
//! suspension (it lies below the closure object, so never equals the
//! initial state), or the exit code of `switch_and_reset`.
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
//!   CI (`xtask/src/objects.rs`) checks this in a dylib linked from the
//!   object by rust-lld's Mach-O linker.
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
use crate::word::{StackPointer, Word};

/// Bytes per stack word.
const WORD: usize = 8;

/// Alignment of the stack pointer at a call boundary.
pub const STACK_ALIGNMENT: usize = 16;
/// The parent link is the word at `base - LINK_OFFSET`.
pub const LINK_OFFSET: usize = 2 * WORD;
/// The link and, above it, the root frame's return label.
pub const RESERVED_TOP: usize = 2 * WORD;
/// `init_stack` writes the resume address and the entry function below the
/// object.
pub const INIT_FRAME_SIZE: usize = 2 * WORD;

/// `link + LABEL_ABOVE_LINK`: the root frame's return label.
const LABEL_ABOVE_LINK: usize = WORD;
/// `state + ENTRY_ABOVE_STATE`: a fresh coroutine's entry function.
const ENTRY_ABOVE_STATE: usize = WORD;
/// The parent's record at the link value: `rbp`, return address, `rbx`. Its
/// stack pointer outside the switch is this far above the link value.
const PARENT_RECORD: usize = 3 * WORD;
/// The link value, below the parent's stack pointer after its `push rbx`:
/// the return address and the landing code's `push rbp` come in between.
const LINK_BELOW_PARENT: usize = 2 * WORD;

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
/// Jumped to by the parent's `jmp [rdx]`, with `rdi` = first input, `rsi` =
/// stack base, `rdx` = the initial state (`obj - 16`, the entry function
/// at `rdx + 8`), the link already stored and the parent's `rbx` above the
/// return address. Pushes `rbp` as every landing does, makes `rbp` the
/// address of the link, stores its return label above the link, and jumps
/// to `entry(input, link, obj)` on the coroutine stack with the label as
/// return address. `entry` never returns.
///
/// CFI once `rbp` holds the link address: CFA = `[rbp] + 24`, the
/// parent's stack pointer outside its switch; the parent's `rbp`, return
/// address and `rbx` at CFA - 24, -16, -8. It is a signal frame, because
/// the parent's stack may lie above or below this one (debuggers check
/// that stacks grow one way otherwise); the unwinder then takes the
/// parent's return address as exact, which is why the parent's return
/// label is its `pop rbx`, inside the same `asm!` block.
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
        "lea rbp, [rsi - {link}]",
        // DW_CFA_def_cfa_expression (0x0f), 5 bytes: DW_OP_breg6 (rbp) + 0,
        // DW_OP_deref, DW_OP_plus_uconst PARENT_RECORD.
        ".cfi_escape 0x0f, 5, 0x76, 0, 0x06, 0x23, {record}",
        "lea rax, [rip + 3f]",
        "mov [rbp + {label}], rax",
        "mov rcx, [rdx + {entry}]",
        "add rdx, {init}",
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
        entry = const ENTRY_ABOVE_STATE,
        init = const INIT_FRAME_SIZE,
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

/// Prepares a fresh coroutine: the root as its resume address and `entry`
/// above it, in the two words below the object. Returns the initial state,
/// the address of the resume address.
///
/// # Safety
/// `obj` must be 16-aligned and at most `base - RESERVED_TOP`, and the
/// `INIT_FRAME_SIZE` bytes below it must be writable stack memory.
#[inline]
pub unsafe fn init_stack(_base: StackPointer, obj: usize, entry: EntryFn) -> StackPointer {
    let state = obj - INIT_FRAME_SIZE;
    // SAFETY: the caller guarantees that the two words below `obj` are
    // writable and aligned; `state` is not null because `obj` lies in a
    // stack far above address 16.
    unsafe {
        *(state as *mut usize) = coroutine_root as *const () as usize;
        *((state + ENTRY_ABOVE_STATE) as *mut usize) = entry as usize;
        StackPointer::new_unchecked(state)
    }
}

/// The parent's side of a resume: `push rbx`, store the link, (the given
/// extra instructions), push the return label and jump to the resume
/// address at the state; at the label, `pop rbx`.
/// In: `rdi` = word, `rsi` = stack base, `rdx` = state. Out: `rdi` = word,
/// `rax` = state (the coroutine's stack pointer, or an exit code).
/// Pushes `rbx` and the return address; the landing code pushes `rbp`
/// below them and the coroutine pops both again before it jumps back. Every
/// other register is clobbered.
macro_rules! enter_asm {
    ($arg:expr, $state:expr, $base:expr, $($extra:literal),*) => {{
        let (word, state): (Word, usize);
        switch_asm!(
            // In: rdi = word, rsi = stack base, rdx = state (+ extra).
            // Pushes rbx and the return label 3, jumps to the resume
            // address at [rdx]; the coroutine comes back at 3 with rbp and
            // rsp restored, having popped the label. Out: rdi = word, rax =
            // state. Every other register is clobbered.
            "push rbx",
            "lea rax, [rsp - {below}]",
            "mov [rsi - {link}], rax",
            $($extra,)*
            "lea rcx, [rip + 3f]",
            "push rcx",
            "jmp [rdx]",
            "3:",
            "pop rbx",
            below = const LINK_BELOW_PARENT,
            link = const LINK_OFFSET,
            inlateout("rdi") $arg => word,
            inlateout("rsi") $base => _,
            inlateout("rdx") $state => _,
            lateout("rax") state,
        );
        (word, state)
    }};
}

// `switch_and_link` and `switch_and_unwind`, through `enter_asm!`.
state_register_entries!("xor esi, esi");

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
    // the parent's resume and the landing code built; we return into the
    // parent and are resumed at label 2 by its next `jmp [state]`.
    unsafe {
        switch_asm!(
            // In: rdi = word, rdx = link.
            // Suspend: push rbp, rbx and the resume address; hand rsp out
            // in rax (the state); switch to the parent's record, pop its
            // rbp and return label and jump there, with rdi = word.
            // Landing (label 2, on the parent stack, called with rdi =
            // word, rsi = control word, rdx = our state): push the
            // parent's rbp, switch back past the resume address, pop rbx
            // and rbp.
            // Out: rdi = word, rsi = control word (0: unwind).
            "push rbp",
            "push rbx",
            "lea rax, [rip + 2f]",
            "push rax",
            "mov rax, rsp",
            "mov rsp, [rdx]",
            "pop rbp",
            "pop rcx",
            "jmp rcx",
            "2:",
            "push rbp",
            "lea rsp, [rdx + {word}]",
            "pop rbx",
            "pop rbp",
            word = const WORD,
            inlateout("rdi") arg => word,
            inlateout("rdx") link => _,
            lateout("rsi") control,
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
            // parent's record, pops its rbp and return label, jumps there.
            "mov rsp, [rdx]",
            "pop rbp",
            "pop rcx",
            "jmp rcx",
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
