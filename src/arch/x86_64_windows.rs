//! The context switch for x86-64 Windows and UEFI (the Microsoft x64
//! calling convention and SEH unwind tables).
//!
//! The same shape as the System V file (`x86_64.rs`): the context lives at
//! the top of the coroutine's stack, `rdi` carries the word, `rsi` the stack
//! base, `rdx` the control word going in, `rax` the state coming out. What
//! differs is the ABI and the unwind format:
//!
//! - Arguments go in `rcx`, `rdx`, `r8`; the caller leaves 32 bytes of
//!   *shadow space* above the return address for the callee. `rbx`, `rbp`,
//!   `rdi`, `rsi`, `r12`-`r15` and `xmm6`-`xmm15` are callee-saved.
//! - Unwinding uses the `.pdata`/`.xdata` tables (written here with `.seh_*`
//!   directives), whose few operations cannot say "the caller's stack
//!   pointer is stored at this address" except through a *machine frame*:
//!   `UWOP_PUSH_MACHFRAME` reads the caller's `rip` and `rsp` from a record
//!   laid out as the processor pushes it on an interrupt (`rip`, `cs`,
//!   `rflags`, `rsp`, `ss`). So the context is laid out around one.
//! - Windows also keeps the running stack's bounds in the TEB; the portable
//!   code swaps them around every switch (see `teb`). This file only says
//!   where the TEB is.
//!
//! # UEFI
//!
//! `x86_64-unknown-uefi` uses this file too: the UEFI specification gives
//! x64 firmware and its images the Microsoft x64 calling convention, and
//! the images are PE/COFF, so the code and its `.seh_*` tables are the
//! same. Firmware has no TEB, so `thread_environment_block` exists only on
//! Windows (the portable code swaps TEB fields only there). Nothing in
//! firmware unwinds through `.pdata`; the tables are there for debuggers.
//!
//! # Stack layout
//!
//! ```text
//!  coroutine stack                           parent stack while it runs
//! +------------------------+ <- base         |        ...         |
//! | resume address         |  base - 8       +--------------------+
//! | saved stack pointer    |  base - 16      | return address     |
//! | root return label      |  base - 24 (ss) | parent rbp         |
//! | link ------------------+--base - 32 (rsp)----------------------> <- link value
//! | parent rbx             |  base - 40 (rflags)
//! | 0                      |  base - 48 (cs)
//! | parent frame label     |  base - 56 (rip) <- machine frame, root rbp
//! | (padding)              |  base - 64
//! +------------------------+
//! ~ closure object, frames ~
//! | coroutine rbp          |
//! | coroutine rbx          | <- saved stack pointer, while suspended
//! ```
//!
//! The root frame's `rbp` points at the machine frame. Its unwind info is
//! "frame register `rbp`, then a machine frame", so an unwinder reads the
//! link as the caller's `rsp` and the *parent frame label* as its `rip`.
//! That label lies in `parent_frame`, a function that is never run and
//! exists for its unwind info: "`rbp` was pushed, then `ret`" (and its code
//! at the label is that epilogue, `pop rbp; ret`, for unwinders that read
//! the code). It describes the parent's record at the link value, whose
//! return address leads into the parent's own frame with the stack pointer
//! it had outside the switch. So backtraces and debuggers walk from the
//! coroutine into whoever resumed it.
//!
//! Tools that walk frame records instead (`[rbp]` = the caller's `rbp`)
//! stop at the root: its `rbp` addresses the machine frame, not a record.
//! Windows' own debuggers and profilers walk the unwind tables.
//!
//! The parent's `rbx` is kept in the context rather than on the parent's
//! stack, so that the parent's record is exactly a pushed `rbp` and a return
//! address, as `parent_frame` describes.
//!
//! # A round trip
//!
//! Resume: the parent calls the resume address (1 instruction). The code
//! there pushes the parent's `rbp`, stores the link and the parent's `rbx`,
//! loads the coroutine's stack pointer and pops its `rbx` and `rbp` (6).
//! Suspend: push `rbp` and `rbx`, store the resume address and stack
//! pointer, restore the parent's `rbx` and stack pointer, pop its `rbp`,
//! `ret` (9). 16 instructions; every `call` is paired with a `ret`.
//!
//! The control word (`rdx`) and the state (`rax`) work as on System V: an
//! ordinary resume passes the last state (nonzero) and `switch_and_unwind`
//! passes zero, which the pending `switch_yield` reports as the unwind
//! request.
//!
//! # Trap recovery
//!
//! A trap handler (a vectored exception handler) makes a faulting coroutine
//! return a value by writing [`TrapHandlerRegs`] into the `CONTEXT`
//! record: `rip` = `trap_trampoline`, `rsp` = a frame at the top of the
//! stack whose return address is the root's return label, `rbp` = the
//! machine frame, and the two arguments of the portable trap entry in `rdi`
//! (the closure) and `rsi` (the link). These are corosensei's names, so
//! code written for it writes the same five registers. The Microsoft ABI
//! passes arguments in `rcx` and `rdx` (`rdi` and `rsi` are callee-saved
//! there), so `rip` cannot be the entry itself: the trampoline moves the
//! two into `rcx` and `rdx` and jumps to the entry, whose address
//! `trap_handler_regs` left in the frame's first shadow-space word.
//!
//! ```text
//! obj              the closure (16-aligned)
//! obj - 32 .. obj  the entry's shadow space; its lowest word, at obj - 32,
//!                  holds the entry's address until the jump
//! obj - 40         the root's return label  <- rsp
//! ```
//!
//! # Registers LLVM reserves
//!
//! `asm!` may not name `rbx`, `rbp` or `rsp`, so those are saved by hand;
//! every other register the Microsoft ABI makes callee-saved is declared
//! clobbered, so the compiler spills only what is live across the switch.

use core::arch::{asm, naked_asm};

use super::{EntryFn, StackCallFn, TrapEntryFn};
use crate::stack::StackPointer;
use crate::word::Word;

/// Bytes per stack word.
const WORD: usize = 8;
/// Bytes a caller leaves above the return address for the callee.
const SHADOW_SPACE: usize = 32;

/// Alignment of the stack pointer at a call boundary.
pub const STACK_ALIGNMENT: usize = 16;
/// The parent link is the word at `base - LINK_OFFSET`: the machine frame's
/// `rsp`.
pub const LINK_OFFSET: usize = 4 * WORD;
/// The context: seven words and a word of padding.
pub const RESERVED_TOP: usize = 8 * WORD;
/// `init_stack` writes nothing below the object.
pub const INIT_FRAME_SIZE: usize = 0;

/// `base - RESUME_SLOT`: where the suspended coroutine resumes.
const RESUME_SLOT: usize = WORD;
/// `base - SP_SLOT`: the suspended coroutine's stack pointer (a fresh
/// coroutine's entry function).
const SP_SLOT: usize = 2 * WORD;
/// `base - LABEL_SLOT`: the root frame's return label.
const LABEL_SLOT: usize = 3 * WORD;
/// `base - RBX_SLOT`: the parent's `rbx` while the coroutine runs.
const RBX_SLOT: usize = 5 * WORD;
/// `base - CS_SLOT`: the machine frame's `cs`, always zero.
const CS_SLOT: usize = 6 * WORD;
/// `base - MACHINE_FRAME`: the machine frame, whose first word is the
/// parent frame label.
const MACHINE_FRAME: usize = 7 * WORD;
/// `link + RESUME_ABOVE_LINK`: the resume address, from the link.
const RESUME_ABOVE_LINK: usize = LINK_OFFSET - RESUME_SLOT;
/// `link + SP_ABOVE_LINK`: the saved stack pointer, from the link.
const SP_ABOVE_LINK: usize = LINK_OFFSET - SP_SLOT;
/// `link - RBX_BELOW_LINK`: the parent's `rbx`, from the link.
const RBX_BELOW_LINK: usize = RBX_SLOT - LINK_OFFSET;
/// `link + LABEL_ABOVE_LINK`: the root's return label, from the link.
const LABEL_ABOVE_LINK: usize = LINK_OFFSET - LABEL_SLOT;
/// The parent frame label is this far into `parent_frame`: after its
/// one-byte `push rbp` (opcode 0x55).
const PARENT_FRAME_LABEL_OFFSET: usize = 1;

/// `unwinding_asm!` that leaves for another context and comes back: on top
/// of the operands given, every register of the Microsoft x64 ABI except the
/// three saved by hand (`rbx`, `rbp`, `rsp`) is clobbered, including the
/// callee-saved `r12`-`r15` and `xmm6`-`xmm15` (`rdi` and `rsi` are always
/// operands).
macro_rules! switch_asm {
    ($($body:tt)*) => {
        unwinding_asm!(
            $($body)*
            lateout("r12") _, lateout("r13") _, lateout("r14") _, lateout("r15") _,
            lateout("xmm6") _, lateout("xmm7") _, lateout("xmm8") _, lateout("xmm9") _,
            lateout("xmm10") _, lateout("xmm11") _, lateout("xmm12") _, lateout("xmm13") _,
            lateout("xmm14") _, lateout("xmm15") _,
            clobber_abi("win64")
        )
    };
}

/// `extents - ...`: where the portable code keeps a coroutine's
/// `CoroutineExtents` (its TEB states among them), below the context.
#[cfg(windows)]
const EXTENTS_BELOW_BASE: usize = RESERVED_TOP + crate::sanitizer::EXTENTS_RESERVE;
/// The same from the link.
#[cfg(windows)]
const EXTENTS_BELOW_LINK: usize = EXTENTS_BELOW_BASE - LINK_OFFSET;
/// Offsets of the two TEB states in `CoroutineExtents`.
#[cfg(windows)]
const PARENT_TEB: usize = core::mem::offset_of!(crate::sanitizer::CoroutineExtents, parent_teb);
#[cfg(windows)]
const RESUME_TEB: usize = core::mem::offset_of!(crate::sanitizer::CoroutineExtents, resume_teb);

/// Windows: instructions that point `r11` at the extents, `{ext}` bytes
/// below the register `$reg`, save the TEB's five stack fields into the
/// `TebState` at `[r11 + {save}]` and load the one at `[r11 + {load}]` into
/// the TEB. Use `rcx`, `r8`-`r11`, no stack. `GuaranteedStackBytes` is 32
/// bits in the TEB (its `TebState` word is stored zero-extended and loaded
/// by its low half).
#[cfg(windows)]
macro_rules! teb_swap {
    ($reg:literal) => {
        concat!(
            "lea r11, [", $reg, " - {ext}]\n",
            "mov rcx, gs:[{t_list}]\n",
            "mov r8, gs:[{t_base}]\n",
            "mov r9, gs:[{t_limit}]\n",
            "mov r10, gs:[{t_dealloc}]\n",
            "mov [r11 + {save} + {f_list}], rcx\n",
            "mov [r11 + {save} + {f_base}], r8\n",
            "mov [r11 + {save} + {f_limit}], r9\n",
            "mov [r11 + {save} + {f_dealloc}], r10\n",
            "mov ecx, gs:[{t_guaranteed}]\n",
            "mov [r11 + {save} + {f_guaranteed}], rcx\n",
            "mov rcx, [r11 + {load} + {f_list}]\n",
            "mov r8, [r11 + {load} + {f_base}]\n",
            "mov r9, [r11 + {load} + {f_limit}]\n",
            "mov r10, [r11 + {load} + {f_dealloc}]\n",
            "mov gs:[{t_list}], rcx\n",
            "mov gs:[{t_base}], r8\n",
            "mov gs:[{t_limit}], r9\n",
            "mov gs:[{t_dealloc}], r10\n",
            "mov ecx, [r11 + {load} + {f_guaranteed}]\n",
            "mov gs:[{t_guaranteed}], ecx\n",
        )
    };
}
/// UEFI has no TEB: nothing to swap.
#[cfg(not(windows))]
macro_rules! teb_swap {
    ($reg:literal) => {
        ""
    };
}

/// `$asm!` (`asm` or `switch_asm`) with the operands that `teb_swap!`
/// names: `ext`, the extents' distance below the register it is given, and
/// `save` and `load`, the offsets of the two states in them.
#[cfg(windows)]
macro_rules! teb_asm {
    ($asm:ident, save = $save:expr, load = $load:expr, ext = $ext:expr;
     { $($body:tt)* } $($tail:tt)*) => {
        $asm!(
            $($body)*
            ext = const $ext,
            save = const $save,
            load = const $load,
            t_list = const crate::teb::EXCEPTION_LIST,
            t_base = const crate::teb::STACK_BASE,
            t_limit = const crate::teb::STACK_LIMIT,
            t_dealloc = const crate::teb::DEALLOCATION_STACK,
            t_guaranteed = const crate::teb::GUARANTEED_STACK_BYTES,
            f_list = const core::mem::offset_of!(crate::teb::TebState, exception_list),
            f_base = const core::mem::offset_of!(crate::teb::TebState, fields.StackBase),
            f_limit = const core::mem::offset_of!(crate::teb::TebState, fields.StackLimit),
            f_dealloc = const core::mem::offset_of!(crate::teb::TebState, fields.DeallocationStack),
            f_guaranteed =
                const core::mem::offset_of!(crate::teb::TebState, fields.GuaranteedStackBytes),
            $($tail)*
        )
    };
}
/// UEFI: `$asm!` as it is (`teb_swap!` is empty there).
#[cfg(not(windows))]
macro_rules! teb_asm {
    ($asm:ident, save = $save:expr, load = $load:expr, ext = $ext:expr;
     { $($body:tt)* } $($tail:tt)*) => {
        $asm!($($body)* $($tail)*)
    };
}

/// Exists for its unwind info only, never run: the frame of a parent that
/// resumed a coroutine, as the root's machine frame enters it at the label
/// one byte in. Its unwind info says that `rbp` was pushed below the return
/// address, and its code at the label is the matching epilogue.
#[unsafe(naked)]
unsafe extern "C" fn parent_frame() {
    naked_asm!(
        ".seh_proc {me}",
        "push rbp",
        ".seh_pushreg rbp",
        ".seh_endprologue",
        "pop rbp",
        "ret",
        ".seh_endproc",
        me = sym parent_frame,
    )
}

/// The root frame of every coroutine: the resume address of a fresh one.
///
/// Called by the parent's `call [rsi - 8]`, with `rdi` = first input, `rsi`
/// = stack base, `rdx` = initial stack pointer (the object), and the entry
/// function in the context's stack-pointer slot. Does what every resume
/// does (push `rbp`, store the link and the parent's `rbx`), points `rbp`
/// at the machine frame, stores its return label in the context, and jumps
/// to `entry(input, link, obj)` (in `rcx`, `rdx`, `r8`) on the coroutine
/// stack with shadow space and the label as return address. `entry` never
/// returns.
///
/// Unwind info: frame register `rbp` at offset 0, below a machine frame;
/// both hold from the end of the (empty) prologue, which is true from the
/// `lea rbp` on, before which nothing can unwind.
#[unsafe(naked)]
unsafe extern "C" fn coroutine_root() {
    naked_asm!(
        ".seh_proc {me}",
        ".seh_pushframe",
        ".seh_setframe rbp, 0",
        ".seh_endprologue",
        "push rbp",
        "mov [rsi - {link}], rsp",
        "mov [rsi - {rbx}], rbx",
        "lea rbp, [rsi - {machine_frame}]",
        "lea r9, [rip + 3f]",
        "mov [rsi - {label}], r9",
        "mov rax, [rsi - {entry}]",
        "mov rcx, rdi",
        "mov r8, rdx",
        "lea rdx, [rsi - {link}]",
        "lea rsp, [r8 - {shadow}]",
        "push r9",
        "jmp rax",
        "3:",
        "ud2",
        ".seh_endproc",
        me = sym coroutine_root,
        link = const LINK_OFFSET,
        rbx = const RBX_SLOT,
        machine_frame = const MACHINE_FRAME,
        label = const LABEL_SLOT,
        entry = const SP_SLOT,
        shadow = const SHADOW_SPACE,
    )
}

/// The frame that `on_stack` runs its function under.
///
/// Called with `rdi` = argument, `rsi` = new stack top (16-aligned), `rdx` =
/// function. Builds a frame on the old stack, calls `rdx(rdi)` on the new
/// one with shadow space below `top`, and returns through the frame. Its
/// unwind info uses `rbp` as frame register, so unwinding from the new
/// stack continues on the old one.
#[cfg_attr(windows, allow(dead_code))] // Windows uses stack_call_root_teb
#[unsafe(naked)]
unsafe extern "C" fn stack_call_root() {
    naked_asm!(
        ".seh_proc {me}",
        "push rbp",
        ".seh_pushreg rbp",
        "mov rbp, rsp",
        ".seh_setframe rbp, 0",
        ".seh_endprologue",
        "lea rsp, [rsi - {shadow}]",
        "mov rcx, rdi",
        "call rdx",
        "lea rsp, [rbp]",
        "pop rbp",
        "ret",
        ".seh_endproc",
        me = sym stack_call_root,
        shadow = const SHADOW_SPACE,
    )
}

/// Windows: `stack_call_root` that also swaps the TEB's stack fields.
///
/// Called with `rdi` = argument, `rsi` = new stack top (16-aligned), `rdx`
/// = function, `r8` = the `TebState` of the new stack. Builds a frame on
/// the old stack, pushes the TEB's five stack fields there (so that they
/// are saved while the TEB still describes the old stack), loads the new
/// stack's state into the TEB, calls `rdx(rdi)` on the new stack with
/// shadow space below `top`, and on return moves back to the old stack,
/// pops the saved fields into the TEB and returns through the frame. No
/// code but this runs on either stack while the TEB describes the other
/// one, and the old stack's words it pops were pushed here, so they are
/// committed. Unwind info as for `stack_call_root` (frame register `rbp`,
/// which the pushes below it do not move).
#[cfg(windows)]
#[unsafe(naked)]
unsafe extern "C" fn stack_call_root_teb() {
    naked_asm!(
        ".seh_proc {me}",
        "push rbp",
        ".seh_pushreg rbp",
        "mov rbp, rsp",
        ".seh_setframe rbp, 0",
        ".seh_endprologue",
        "push qword ptr gs:[{t_list}]",
        "push qword ptr gs:[{t_base}]",
        "push qword ptr gs:[{t_limit}]",
        "push qword ptr gs:[{t_dealloc}]",
        "mov eax, gs:[{t_guaranteed}]",
        "push rax",
        "mov rax, [r8 + {f_list}]",
        "mov rcx, [r8 + {f_base}]",
        "mov r9, [r8 + {f_limit}]",
        "mov r10, [r8 + {f_dealloc}]",
        "mov r11d, [r8 + {f_guaranteed}]",
        "mov gs:[{t_list}], rax",
        "mov gs:[{t_base}], rcx",
        "mov gs:[{t_limit}], r9",
        "mov gs:[{t_dealloc}], r10",
        "mov gs:[{t_guaranteed}], r11d",
        "lea rsp, [rsi - {shadow}]",
        "mov rcx, rdi",
        "call rdx",
        "lea rsp, [rbp - {saved}]",
        "pop rax",
        "mov gs:[{t_guaranteed}], eax",
        "pop qword ptr gs:[{t_dealloc}]",
        "pop qword ptr gs:[{t_limit}]",
        "pop qword ptr gs:[{t_base}]",
        "pop qword ptr gs:[{t_list}]",
        "pop rbp",
        "ret",
        ".seh_endproc",
        me = sym stack_call_root_teb,
        shadow = const SHADOW_SPACE,
        saved = const 5 * WORD,
        t_list = const crate::teb::EXCEPTION_LIST,
        t_base = const crate::teb::STACK_BASE,
        t_limit = const crate::teb::STACK_LIMIT,
        t_dealloc = const crate::teb::DEALLOCATION_STACK,
        t_guaranteed = const crate::teb::GUARANTEED_STACK_BYTES,
        f_list = const core::mem::offset_of!(crate::teb::TebState, exception_list),
        f_base = const core::mem::offset_of!(crate::teb::TebState, fields.StackBase),
        f_limit = const core::mem::offset_of!(crate::teb::TebState, fields.StackLimit),
        f_dealloc = const core::mem::offset_of!(crate::teb::TebState, fields.DeallocationStack),
        f_guaranteed =
            const core::mem::offset_of!(crate::teb::TebState, fields.GuaranteedStackBytes),
    )
}

/// Where a trap handler sends a coroutine (`TrapHandlerRegs::rip`): calls
/// the trap entry `entry(rdi, rsi)` in the Microsoft ABI, as if the root
/// frame had called it.
///
/// Entered (by the handler's `EXCEPTION_CONTINUE_EXECUTION`, not by a call)
/// with `rdi` = the closure, `rsi` = the link, `rbp` = the machine frame and
/// `rsp` = `obj - 40`, 8 below a 16-byte boundary as at any function entry:
/// `[rsp]` is the root's return label, `[rsp + 8]` (the first word of the
/// entry's shadow space) the entry's address. Moves the arguments into
/// `rcx` and `rdx` and jumps to the entry with that frame unchanged, so the
/// entry sees the label as its return address and owns the shadow space.
/// The entry never returns.
///
/// Unwind info: an empty prologue, which says what is true throughout:
/// `[rsp]` is the return address, into the root.
#[unsafe(naked)]
unsafe extern "C" fn trap_trampoline() {
    naked_asm!(
        // In: rdi = closure, rsi = link, rbp = machine frame, [rsp] = root
        // return label, [rsp + 8] = entry. Out: rcx = closure, rdx = link,
        // the same rsp and rbp, at the entry. Writes no memory.
        ".seh_proc {me}",
        ".seh_endprologue",
        "mov rcx, rdi",
        "mov rdx, rsi",
        "jmp qword ptr [rsp + {word}]",
        ".seh_endproc",
        me = sym trap_trampoline,
        word = const WORD,
    )
}

/// Prepares the context of a fresh coroutine: the root as its resume
/// address, `entry` in its stack-pointer slot, and the machine frame's
/// constant words. Returns the initial stack pointer, the object itself.
///
/// # Safety
/// `obj` must be 16-aligned and at most `base - RESERVED_TOP`, and the
/// context below `base` must be writable stack memory.
#[inline]
pub unsafe fn init_stack(base: StackPointer, obj: usize, entry: EntryFn) -> StackPointer {
    let at = |offset: usize| (base.get() - offset) as *mut usize;
    // SAFETY: the caller guarantees that the context below `base` is
    // writable and aligned, and `obj` is not null.
    unsafe {
        *at(SP_SLOT) = entry as usize;
        *at(RESUME_SLOT) = coroutine_root as *const () as usize;
        *at(CS_SLOT) = 0;
        *at(MACHINE_FRAME) = parent_frame as *const () as usize + PARENT_FRAME_LABEL_OFFSET;
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
    // having restored rbx and rbp and left rsp as it was after the call.
    unsafe {
        teb_asm!(switch_asm, save = PARENT_TEB, load = RESUME_TEB, ext = EXTENTS_BELOW_BASE; {
            // In: rdi = word, rsi = stack base, rdx = control word.
            // Out: rdi = word, rax = state (resume address or exit code).
            // Windows: first touches the two words below rsp that the call
            // and the landing code push (so that this stack, if it grows
            // on demand, has them committed while the TEB still describes
            // it), then swaps the TEB's stack fields (ours into the
            // coroutine's parent state, its resume state into the TEB).
            // Pushes the return address; the coroutine pushes rbp below it
            // and pops it again. Everything else is clobbered.
            "test byte ptr [rsp - {word}], al",
            "test byte ptr [rsp - {two_words}], al",
            teb_swap!("rsi"),
            "call [rsi - {resume}]",
            resume = const RESUME_SLOT,
            word = const WORD,
            two_words = const 2 * WORD,
            inlateout("rdi") arg => word,
            inlateout("rsi") base.get() => _,
            inlateout("rdx") control => _,
            lateout("rax") state,
        });
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
    // the resume code built; we return into the parent and are resumed at
    // label 2 by its next `call`.
    unsafe {
        teb_asm!(switch_asm, save = RESUME_TEB, load = PARENT_TEB, ext = EXTENTS_BELOW_LINK; {
            // In: rdi = word, rdx = link.
            // Suspend: push rbp, rbx; store the resume address and rsp in the
            // context; Windows: swap the TEB's stack fields (ours into the
            // resume state, the parent's back into the TEB), after the
            // pushes and before anything touches the parent's stack;
            // restore the parent's rbx, switch to its record, pop
            // its rbp, `ret` with rdi = word and rax = resume address (the
            // state).
            // Resume (label 2, on the parent stack, called with rdi = word,
            // rsi = base, rdx = control word): push the parent's rbp, store
            // the link and the parent's rbx, switch back, pop rbx and rbp.
            // Out: rdi = word, rdx = control word (0: unwind).
            "push rbp",
            "push rbx",
            "lea rax, [rip + 2f]",
            "mov [rdx + {resume}], rax",
            "mov [rdx + {sp}], rsp",
            teb_swap!("rdx"),
            "mov rbx, [rdx - {rbx_below}]",
            "mov rsp, [rdx]",
            "pop rbp",
            "ret",
            "2:",
            "push rbp",
            "mov [rsi - {link}], rsp",
            "mov [rsi - {rbx}], rbx",
            "mov rsp, [rsi - {sp_slot}]",
            "pop rbx",
            "pop rbp",
            resume = const RESUME_ABOVE_LINK,
            sp = const SP_ABOVE_LINK,
            rbx_below = const RBX_BELOW_LINK,
            link = const LINK_OFFSET,
            rbx = const RBX_SLOT,
            sp_slot = const SP_SLOT,
            inlateout("rdi") arg => word,
            inlateout("rdx") link => control,
            lateout("rsi") _,
        });
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
        teb_asm!(asm, save = RESUME_TEB, load = PARENT_TEB, ext = EXTENTS_BELOW_LINK; {
            // In: rdi = word, rax = exit code, rdx = link. Windows: swaps
            // the TEB's stack fields (ours into the resume state, for the
            // stack's record, the parent's back into the TEB; rcx, r8-r11
            // are free, as nothing comes back here). Restores the
            // parent's rbx, switches to its record, pops its rbp and returns
            // into it.
            teb_swap!("rdx"),
            "mov rbx, [rdx - {rbx_below}]",
            "mov rsp, [rdx]",
            "pop rbp",
            "ret",
            rbx_below = const RBX_BELOW_LINK,
            in("rdi") arg,
            in("rax") exit,
            in("rdx") link,
        } options(noreturn))
    }
}

/// Calls `f(arg)` with the stack pointer at `top`.
///
/// # Safety
/// `top` must be 16-aligned with enough writable stack below it for `f`.
#[cfg_attr(windows, allow(dead_code))] // Windows uses on_stack_with_teb
#[inline(always)]
pub unsafe fn on_stack(arg: *mut u8, top: usize, f: StackCallFn) {
    // SAFETY: stack_call_root restores rbp and rsp; `f` follows the
    // Microsoft ABI, so only volatile registers change.
    unsafe {
        unwinding_asm!(
            // In: rdi = argument, rsi = new stack top, rdx = function.
            // Calls the root, which returns with rbp and rsp restored.
            "call {root}",
            root = sym stack_call_root,
            inlateout("rdi") arg => _,
            inlateout("rsi") top => _,
            inlateout("rdx") f => _,
            clobber_abi("win64")
        );
    }
}

/// Windows: calls `f(arg)` with the stack pointer at `top` and the TEB
/// describing that stack as `teb` says, then puts back the TEB's fields
/// for this stack, both inside the switch (see `stack_call_root_teb`).
///
/// # Safety
/// `top` must be 16-aligned with enough writable stack below it for `f`,
/// and `teb` must describe that stack.
#[cfg(windows)]
#[inline(always)]
pub unsafe fn on_stack_with_teb(
    arg: *mut u8,
    top: usize,
    f: StackCallFn,
    teb: &crate::teb::TebState,
) {
    // SAFETY: stack_call_root_teb restores rbp, rsp and the TEB's stack
    // fields; `f` follows the Microsoft ABI, so only volatile registers
    // change.
    unsafe {
        unwinding_asm!(
            // In: rdi = argument, rsi = new stack top, rdx = function, r8 =
            // the new stack's TEB state. Calls the root, which returns with
            // rbp, rsp and the TEB restored.
            "call {root}",
            root = sym stack_call_root_teb,
            inlateout("rdi") arg => _,
            inlateout("rsi") top => _,
            inlateout("rdx") f => _,
            inlateout("r8") teb as *const crate::teb::TebState => _,
            clobber_abi("win64")
        );
    }
}

/// Registers that a trap handler writes into the interrupted context (the
/// `CONTEXT` record of a vectored exception handler) so that the coroutine
/// runs the function given to
/// [`CoroutineTrapHandler::setup_trap_handler`](crate::trap::CoroutineTrapHandler::setup_trap_handler)
/// and then returns its result to the parent. The names are corosensei's
/// for x86-64 Windows: `rip, rsp, rbp, rdi, rsi`.
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
    /// Instruction pointer: a trampoline that moves `rdi` and `rsi` into the
    /// Microsoft ABI's argument registers (`rcx`, `rdx`) and jumps to the
    /// function that runs the handler's closure.
    pub rip: u64,
    /// Stack pointer: a frame at the top of the coroutine's stack, below
    /// the closure and its shadow space, whose return address is the root
    /// frame's return label (and whose first shadow-space word holds the
    /// trampoline's target).
    pub rsp: u64,
    /// Frame pointer: the root frame's machine frame, which its unwind info
    /// reads to continue into the parent.
    pub rbp: u64,
    /// The first argument, taken by the trampoline: the closure, on the
    /// coroutine's stack.
    pub rdi: u64,
    /// The second argument, taken by the trampoline: the link (the
    /// `Yielder`'s word) through which the result goes back to the parent.
    pub rsi: u64,
}

/// The registers that make the interrupted coroutine call `entry(obj, link)`
/// as if from its root frame, through `trap_trampoline`.
///
/// # Safety
/// The coroutine at `base` must have started (its root frame wrote the return
/// label), `obj` must be 16-aligned below `base - RESERVED_TOP` with 40
/// writable bytes below it.
pub unsafe fn trap_handler_regs(
    base: StackPointer,
    obj: usize,
    entry: TrapEntryFn,
) -> TrapHandlerRegs {
    let link = base.get() - LINK_OFFSET;
    let sp = obj - SHADOW_SPACE - WORD;
    // SAFETY: the caller guarantees both words are in the stack; the root
    // frame wrote the label above the link.
    unsafe {
        *(sp as *mut usize) = *((link + LABEL_ABOVE_LINK) as *const usize);
        *((sp + WORD) as *mut usize) = entry as usize;
    }
    TrapHandlerRegs {
        rip: trap_trampoline as *const () as usize as u64,
        rsp: sp as u64,
        rbp: (base.get() - MACHINE_FRAME) as u64,
        rdi: obj as u64,
        rsi: link as u64,
    }
}

/// The highest address below which the parent stack is free.
#[inline]
pub fn parent_stack_top(link_value: usize) -> usize {
    link_value & !(STACK_ALIGNMENT - 1)
}

/// The current thread's Thread Environment Block, whose `NT_TIB` header
/// holds its own address at `gs:[0x30]`. Windows only: UEFI has no TEB.
#[cfg(windows)]
#[inline(always)]
pub fn thread_environment_block() -> *mut u8 {
    let teb: *mut u8;
    // SAFETY: reads the TIB's self pointer, which every Windows thread has.
    unsafe {
        asm!(
            // In: nothing. Out: the TEB's address. No stack use.
            "mov {}, gs:[0x30]",
            out(reg) teb,
            options(nostack, pure, readonly, preserves_flags)
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
