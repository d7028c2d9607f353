//! The context switch for 32-bit x86 (i386 System V psABI, as on Linux;
//! also UEFI).
//!
//! The same design as `x86_64.rs`, register for register: `edi`/`rdi` carry
//! the word, `ecx`/`rsi` the stack base, `edx`/`rdx` the control word going
//! in and `eax`/`rax` the state coming out; `esi` plays the part of `rbx`
//! (the register LLVM reserves besides the frame pointer, saved by hand). Functions the trampolines call (`entry`, the
//! trap entry, `on_stack`'s function) use cdecl: arguments on the stack,
//! whose pointer is 16-aligned at the call.
//!
//! # UEFI
//!
//! `i686-unknown-uefi` uses this file too: the UEFI specification's IA-32
//! calling convention is cdecl with the same callee-saved registers (`ebx`,
//! `esi`, `edi`, `ebp`). Rust assumes only 4-byte stack alignment there; the
//! 16 bytes kept here are more than enough. The objects are PE/COFF, where
//! the `.cfi_*` directives assemble into an `.eh_frame` section that no
//! firmware unwinder reads (UEFI builds abort on panic).
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
//! | resume address        |  base - 4           +----------------------+
//! | saved stack pointer --+--+  base - 8        | parent esi           |
//! | root return label     |  |  base - 12       | return address       | <- frame
//! | link  ----------------+--|----------------->| parent ebp           |    record
//! +-----------------------+  |  base - 16       +----------------------+ <- link value
//! ~ closure object, frames ~ |
//! | coroutine ebp         |  |
//! | coroutine esi         | <+  while suspended
//! +-----------------------+
//! ```
//!
//! A fresh coroutine has `coroutine_root` as its resume address, its entry
//! function in the stack-pointer slot and the argument block of the entry
//! function below the closure object.
//!
//! The root frame's `ebp` is the address of the link, and the word above the
//! link is the root's return label, so `{link, label}` is a frame record
//! whose successor is the parent's `{ebp, return address}`: the frame-pointer
//! chain and the DWARF CFI of the root both lead into the parent.
//!
//! # A round trip
//!
//! The parent, given the base in `ecx`, pushes `esi` and calls the resume
//! address stored at `base - 4`. The code there (right after the suspending
//! code of a `switch_yield`, or `coroutine_root` the first time) completes
//! the frame record by pushing `ebp`, stores the parent's stack pointer in
//! the link, loads the coroutine's stack pointer from `base - 8` and pops
//! the coroutine's `esi` and `ebp`. Suspending is the mirror image: push
//! `ebp`, `esi`, store the resume address and the stack pointer in the
//! context, load the parent's stack pointer from the link, pop its `ebp` and
//! `ret` into it. Without `rip`-relative addressing the resume address is
//! made by a call to the next instruction (the usual i386 idiom for reading
//! `eip`, which common processors keep off the return-stack predictor)
//! whose pushed address is adjusted in place and popped into the context. 3 + 5 + 9 = 17 instructions per round trip,
//! and every `call` that returns is paired with a `ret` (the parent's `call`
//! with the coroutine's `ret`), so the return-stack predictor stays in step.
//!
//! # The control word and the unwind request
//!
//! `edx` goes into the coroutine as the *control word*: ordinary resumes
//! pass the state the coroutine last handed out (nonzero), and
//! `switch_and_unwind` passes zero. The resume code never reads `edx` (the
//! context gives it all it needs), so the suspended `switch_yield` sees the
//! value unchanged and reports zero as the unwind request. Ordinary resumes
//! pay nothing for this: the portable code passes the state anyway.
//!
//! Coming out, `eax` is the state: the address of the link (the coroutine's
//! context, which `switch_yield` receives in `eax`) after a suspension, or
//! the exit code of `switch_and_reset`. It never equals an initial stack
//! pointer, which lies below the closure object and so at least 16 bytes
//! below the link. (On x86-64, where nothing lies below the object, the
//! state is the resume address instead; both are free where they are.)
//!
//! # Registers LLVM reserves
//!
//! `asm!` may not name `esi` (LLVM's base pointer in some frames), `ebp` or
//! `esp`, so those are saved by hand as above; every other register,
//! including the callee-saved `ebx` and `edi`, is declared clobbered, so the
//! compiler spills only what is live across the switch.

use core::arch::{asm, naked_asm};

#[cfg(not(windows))]
use super::TrapEntryFn;
use super::{EntryFn, StackCallFn};
use crate::stack::StackPointer;
use crate::word::Word;

/// Bytes per stack word.
const WORD: usize = 4;

/// Alignment of the stack pointer at a call boundary (Linux's i386 ABI).
pub const STACK_ALIGNMENT: usize = 16;
/// The parent link is the word at `base - LINK_OFFSET`, the lowest word of
/// the context.
pub const LINK_OFFSET: usize = 4 * WORD;
/// The context: link, root label, saved stack pointer, resume address.
pub const RESERVED_TOP: usize = 4 * WORD;
/// `init_stack` reserves the 16-byte (aligned) cdecl argument block of
/// `entry` below the object and writes its last argument, the object; the
/// entry function waits in the context's stack-pointer slot, which a fresh
/// coroutine does not use.
pub const INIT_FRAME_SIZE: usize = 16;

/// `base - RESUME_SLOT`: where the suspended coroutine resumes.
const RESUME_SLOT: usize = WORD;
/// `base - SP_SLOT`: the suspended coroutine's stack pointer.
const SP_SLOT: usize = 2 * WORD;
/// `link + LABEL_ABOVE_LINK`: the root frame's return label (also read by
/// `x86_windows.rs`'s trap registers).
pub(super) const LABEL_ABOVE_LINK: usize = WORD;
/// `link + SP_ABOVE_LINK`: the saved stack pointer, from the link.
const SP_ABOVE_LINK: usize = LINK_OFFSET - SP_SLOT;
/// `link + RESUME_ABOVE_LINK`: the resume address, from the link.
const RESUME_ABOVE_LINK: usize = LINK_OFFSET - RESUME_SLOT;
/// The parent's record at the link value: `ebp`, return address, `esi`. Its
/// stack pointer outside the switch is this far above the link value.
const PARENT_RECORD: usize = 3 * WORD;

/// `unwinding_asm!` that leaves for another context and comes back: on top
/// of the operands given, every register of the i386 C ABI except the three
/// saved by hand (`esi`, `ebp`, `esp`) is clobbered, including the
/// callee-saved `ebx` (and `edi`, which is always an operand).
macro_rules! switch_asm {
    ($($body:tt)*) => {
        unwinding_asm!(
            $($body)*
            lateout("ebx") _,
            clobber_abi("C")
        )
    };
}

/// The root frame of every coroutine: the resume address of a fresh one.
///
/// Called by the parent's `push esi; call [ecx - 4]`, with `edi` = first
/// input, `ecx` = stack base, `edx` = initial stack pointer (the argument
/// block, `obj` already in its third word), and the entry function in the
/// context's stack-pointer slot. Does what every resume does (push `ebp`,
/// store the link), makes `ebp` the address of the link, stores its return
/// label above the link, completes the cdecl arguments `(input, link, obj)`
/// and jumps to `entry` with the label as return address. `entry` never
/// returns.
///
/// CFI once `ebp` holds the link address: CFA = `[ebp] + 12`, the
/// parent's stack pointer outside its switch; the parent's
/// `ebp`, return address and `esi` at CFA - 12, -8, -4.
/// It is a signal frame, because the parent's stack may lie above or below
/// this one (debuggers check that stacks grow one way otherwise); the
/// unwinder then takes the parent's return address as exact, which is why
/// the parent's `call` is followed by its `pop esi` inside the same block.
#[unsafe(naked)]
unsafe extern "C" fn coroutine_root() {
    naked_asm!(
        ".cfi_startproc",
        ".cfi_signal_frame",
        ".cfi_def_cfa esp, {entry_cfa}",
        // DWARF register 8 is eip.
        ".cfi_offset 8, -{entry_cfa}",
        ".cfi_offset esi, -{word}",
        "push ebp",
        ".cfi_def_cfa_offset {record}",
        ".cfi_offset ebp, -{record}",
        "mov [ecx - {link}], esp",
        "lea ebp, [ecx - {link}]",
        // DW_CFA_def_cfa_expression (0x0f), 5 bytes: DW_OP_breg5 (ebp) + 0,
        // DW_OP_deref, DW_OP_plus_uconst PARENT_RECORD.
        ".cfi_escape 0x0f, 5, 0x75, 0, 0x06, 0x23, {record}",
        // The root's return label is label 4, whose address this call
        // pushes (a call to the next instruction, never returned to).
        "call 4f",
        "4:",
        "pop eax",
        "mov [ebp + {label}], eax",
        "mov ecx, [ebp + {entry}]",
        "mov esp, edx",
        "mov [esp], edi",
        "mov [esp + {word}], ebp",
        "push eax",
        "jmp ecx",
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
/// Called with `edi` = argument, `ecx` = new stack top (16-aligned), `edx`
/// = function. Builds a frame record on the old stack, calls `edx(edi)`
/// (cdecl, the argument in a 16-aligned block at the new top) and returns
/// through the record. The CFA is `ebp`-based, so unwinding from the new
/// stack continues on the old one; a signal frame for the reason given at
/// `coroutine_root`.
#[unsafe(naked)]
unsafe extern "C" fn stack_call_root() {
    naked_asm!(
        ".cfi_startproc",
        ".cfi_signal_frame",
        "push ebp",
        ".cfi_def_cfa_offset 8",
        ".cfi_offset ebp, -8",
        "mov ebp, esp",
        ".cfi_def_cfa_register ebp",
        "lea esp, [ecx - 16]",
        "mov [esp], edi",
        "call edx",
        "leave",
        ".cfi_def_cfa esp, 4",
        ".cfi_same_value ebp",
        "ret",
        ".cfi_endproc",
    )
}

/// Prepares a fresh coroutine: the root as its resume address, `entry` in
/// its stack-pointer slot, and below the object the argument block of
/// `entry` with the object as its third argument. Returns the initial stack
/// pointer, the argument block.
///
/// # Safety
/// `obj` must be 16-aligned and at most `base - RESERVED_TOP`, and the
/// `INIT_FRAME_SIZE` bytes below it and the context below `base` must be
/// writable stack memory.
#[inline]
pub unsafe fn init_stack(base: StackPointer, obj: usize, entry: EntryFn) -> StackPointer {
    let sp = obj - INIT_FRAME_SIZE;
    // SAFETY: the caller guarantees that [obj - 16, obj) and the context
    // below `base` are writable and aligned.
    unsafe {
        *((sp + 2 * WORD) as *mut usize) = obj;
        *((base.get() - SP_SLOT) as *mut usize) = entry as usize;
        *((base.get() - RESUME_SLOT) as *mut usize) = coroutine_root as *const () as usize;
        StackPointer::new_unchecked(sp)
    }
}

/// Enters the coroutine whose stack base is `base`, with `control` in `edx`
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
    // having restored ebp and left esp as it was after the call.
    unsafe {
        switch_asm!(
            // In: edi = word, ecx = stack base, edx = control word.
            // Out: edi = word, eax = state (link address or exit code).
            // Pushes esi and the return address; the coroutine pushes ebp
            // above them and pops it again. Everything else is clobbered.
            "push esi",
            "call [ecx - {resume}]",
            "pop esi",
            resume = const RESUME_SLOT,
            inlateout("edi") arg => word,
            inlateout("ecx") base.get() => _,
            inlateout("edx") control => _,
            lateout("eax") state,
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
            // In: edi = word, eax = link.
            // Suspend: push ebp, esi; store the resume address (made by the
            // call to 4, adjusted on the stack and popped) and esp in the
            // context; switch to the parent's record, pop its ebp, `ret`
            // with edi = word and eax = link (the state).
            // Resume (label 2, on the parent stack, called with edi = word,
            // ecx = base, edx = control word): push the parent's ebp, store
            // the link, switch back, pop esi and ebp.
            // Out: edi = word, edx = control word (0: unwind).
            "push ebp",
            "push esi",
            "call 4f",
            "4:",
            // add dword ptr [esp], 2f - 4b: 81 /0 id with the SIB byte of
            // [esp], encoded here because LLVM's Intel-syntax parser takes a
            // difference of labels for a memory operand.
            ".byte 0x81, 0x04, 0x24",
            ".long 2f - 4b",
            "pop dword ptr [eax + {resume}]",
            "mov [eax + {sp}], esp",
            "mov esp, [eax]",
            "pop ebp",
            "ret",
            "2:",
            "push ebp",
            "mov [ecx - {link}], esp",
            "mov esp, [ecx - {sp_slot}]",
            "pop esi",
            "pop ebp",
            resume = const RESUME_ABOVE_LINK,
            sp = const SP_ABOVE_LINK,
            link = const LINK_OFFSET,
            sp_slot = const SP_SLOT,
            inlateout("edi") arg => word,
            inlateout("eax") link => _,
            lateout("edx") control,
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
            // In: edi = word, eax = exit code, edx = link. Switches to the
            // parent's record, pops its ebp and returns into it.
            "mov esp, [edx]",
            "pop ebp",
            "ret",
            in("edi") arg,
            in("eax") exit,
            in("edx") link,
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
    // SAFETY: stack_call_root restores ebp and esp; `f` follows the C ABI,
    // so only caller-saved registers change.
    unsafe {
        unwinding_asm!(
            // In: edi = argument, ecx = new stack top, edx = function.
            // Calls the root, which returns with ebp and esp restored. The
            // nop keeps the return address inside this block (the root is a
            // signal frame, see coroutine_root).
            "call {root}",
            "nop",
            root = sym stack_call_root,
            inlateout("edi") arg => _,
            inlateout("ecx") top => _,
            inlateout("edx") f => _,
            clobber_abi("C")
        );
    }
}

/// Registers that a trap handler writes into the interrupted context so that
/// the coroutine runs the function given to
/// [`CoroutineTrapHandler::setup_trap_handler`](crate::trap::CoroutineTrapHandler::setup_trap_handler)
/// and then returns its result to the parent. (Linux and UEFI; 32-bit
/// Windows has corosensei's set of its own, in `x86_windows.rs`.)
///
/// Every field must be written; destructure it so the compiler checks that
/// none is missed:
///
/// ```
/// # use switchback::trap::TrapHandlerRegs;
/// # let regs = TrapHandlerRegs { eip: 0, esp: 0, ebp: 0, ecx: 0, edx: 0 };
/// let TrapHandlerRegs { eip, esp, ebp, ecx, edx } = regs;
/// ```
#[cfg(not(windows))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrapHandlerRegs {
    /// Instruction pointer: the function that runs the handler's closure.
    pub eip: u32,
    /// Stack pointer: at the root's return label, above which the cdecl
    /// arguments (the closure, the link) are already written.
    pub esp: u32,
    /// Frame pointer: the link, as in the root frame.
    pub ebp: u32,
    /// The closure again, where a register convention (fastcall) would
    /// pass the first argument.
    pub ecx: u32,
    /// The link again, where a register convention (fastcall) would pass
    /// the second argument.
    pub edx: u32,
}

/// The registers that make the interrupted coroutine call `entry(obj, link)`
/// as if from its root frame.
///
/// # Safety
/// The coroutine at `base` must have started (its root frame wrote the return
/// label), `obj` must be 16-aligned below `base - RESERVED_TOP` with 20
/// writable bytes below it.
#[cfg(not(windows))]
pub unsafe fn trap_handler_regs(
    base: StackPointer,
    obj: usize,
    entry: TrapEntryFn,
) -> TrapHandlerRegs {
    let link = base.get() - LINK_OFFSET;
    // The cdecl argument block, 16-aligned, and the return label below it.
    let args = obj - 16;
    let sp = args - WORD;
    // SAFETY: the caller guarantees the words are in the stack; the root
    // frame wrote the label above the link.
    unsafe {
        *(sp as *mut usize) = *((link + LABEL_ABOVE_LINK) as *const usize);
        *(args as *mut usize) = obj;
        *((args + WORD) as *mut usize) = link;
    }
    TrapHandlerRegs {
        eip: entry as usize as u32,
        esp: sp as u32,
        ebp: link as u32,
        ecx: obj as u32,
        edx: link as u32,
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
    // SAFETY: valgrind.h's x86 preamble: four rotations of edi by 64 bits in
    // total leave it as it was, and `xchg ebx, ebx` changes nothing;
    // Valgrind recognises the sequence and puts its answer in edx.
    unsafe {
        asm!(
            // In: eax = request block, edx = default. Out: edx = answer.
            // edi is rotated back to its value; nothing else changes.
            "rol edi, 3",
            "rol edi, 13",
            "rol edi, 29",
            "rol edi, 19",
            "xchg ebx, ebx",
            in("eax") args.as_ptr(),
            inout("edx") default => answer,
            out("edi") _,
            options(nostack)
        );
    }
    answer
}
