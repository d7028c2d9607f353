//! The context switch for x86-64 Windows and UEFI (the Microsoft x64
//! calling convention and SEH unwind tables).
//!
//! The same design as the System V file (`x86_64.rs`): the suspended
//! coroutine's stack pointer is the *state*, passed in a register, with
//! its resume address at the word it points at; the parent stores the link
//! itself; both directions are an indirect `jmp`. `rdi` carries the word
//! both ways, `rdx` the state going in (and the link inside the
//! coroutine), `rsi` the stack base going in and the control word coming
//! out of a pending suspend, `rax` the state coming out. What differs is
//! the ABI, the unwind format and the TEB:
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
//! - Windows keeps the running stack's bounds in the TEB, and grows a
//!   stack through its guard page only while the TEB describes it. The
//!   switches here swap the TEB's stack fields themselves, in the `asm!`
//!   block that moves the stack pointer (see "The TEB" below).
//!
//! # UEFI
//!
//! `x86_64-unknown-uefi` uses this file too: the UEFI specification gives
//! x64 firmware and its images the Microsoft x64 calling convention, and
//! the images are PE/COFF, so the code and its `.seh_*` tables are the
//! same. Firmware has no TEB, so the TEB swap and
//! `thread_environment_block` exist only on Windows. Nothing in firmware
//! unwinds through `.pdata`; the tables are there for debuggers.
//!
//! # Stack layout
//!
//! ```text
//!  coroutine stack                           parent stack while it runs
//! +------------------------+ <- base         |        ...         |
//! | (unused)               |  base - 8       +--------------------+
//! | (unused)               |  base - 16      | return label       |
//! | root return label      |  base - 24 (ss) | parent rbx         |
//! | link ------------------+--base - 32 (rsp)-> parent rbp        | <- link value
//! | (unused)               |  base - 40 (rflags)
//! | 0                      |  base - 48 (cs)
//! | parent frame label     |  base - 56 (rip) <- machine frame, root rbp
//! | (padding)              |  base - 64
//! +------------------------+
//! ~ switch record, closure object, frames ~
//! | coroutine rbp          |
//! | coroutine rbx          |
//! | resume address         | <- state (its stack pointer) while suspended
//! ```
//!
//! A fresh coroutine's state is `obj - 16`, holding `coroutine_root` as its
//! resume address and its entry function above it.
//!
//! The root frame's `rbp` points at the machine frame. Its unwind info is
//! "frame register `rbp`, then a machine frame", so an unwinder reads the
//! link as the caller's `rsp` and the *parent frame label* as its `rip`.
//! That label lies in `parent_frame`, a function that is never run and
//! exists for its unwind info: "`rbx` was pushed, then `rbp`, then `ret`"
//! (and its code at the label is that epilogue, `pop rbp; pop rbx; ret`,
//! for unwinders that read the code). It describes the parent's record at
//! the link value, whose return label leads into the parent's own frame
//! with the stack pointer it had outside the switch (the label is the end
//! of the parent's `asm!` block: nothing is left to pop there, so whatever
//! an unwinder reads at it, the frame is as the compiler laid it out). So
//! backtraces and debuggers walk from the coroutine into whoever resumed
//! it.
//!
//! Tools that walk frame records instead (`[rbp]` = the caller's `rbp`)
//! stop at the root: its `rbp` addresses the machine frame, not a record.
//! Windows' own debuggers and profilers walk the unwind tables.
//!
//! # A round trip
//!
//! Resume: the parent pushes its return label, `rbx` and `rbp`, stores
//! its stack pointer in the link and jumps to the resume address at the
//! state (6 instructions); the landing code (right after the suspending
//! code of a `switch_yield`, or `coroutine_root` the first time) sets the
//! stack pointer past the resume address and pops the coroutine's `rbx`
//! and `rbp` (3). Suspend: push `rbp`, `rbx` and the resume address, hand
//! the stack pointer out in `rax`, load the parent's stack pointer from
//! the link, pop its `rbp`, `rbx` and return label and jump there (10).
//! 19 instructions (UEFI), one fewer than System V, whose landing code
//! pushes the parent's `rbp` and whose parent pops `rbx` after the jump
//! back; the same reason for jumps rather than a `call` paired with the
//! other side's `ret` (see `x86_64.rs`): the return-stack predictor never
//! sees the switch. On Windows each direction adds the TEB swap, 21
//! instructions (below): 61 per round trip.
//!
//! The landing code never reads `rsi`, so a pending `switch_yield` sees
//! the value the parent left there: the stack base on ordinary resumes,
//! zero from `switch_and_unwind`, which clears it after storing the link
//! (and swapping the TEB, which finds the switch record from it). Coming out,
//! `rax` is the state: the coroutine's stack pointer after a suspension,
//! or the exit code of `switch_and_reset`.
//!
//! # The TEB
//!
//! Each switch saves the TEB's five stack fields (`ExceptionList`,
//! `StackBase`, `StackLimit`, `DeallocationStack`, `GuaranteedStackBytes`;
//! see `teb`) into the coroutine's switch record and loads the other side's:
//! the parent's go into `parent_teb` and the coroutine's `resume_teb` into
//! the TEB on a resume, the reverse on a suspend or a final leave. It does
//! so after its pushes on the stack it leaves (so that, if that stack grows
//! on demand, any page they need is committed while the TEB still
//! describes it) and right before the stack pointer moves; the other side
//! only pops words it pushed itself. So no instruction ever touches a stack
//! the TEB does not describe, beyond words already committed, which is what
//! lets `DefaultStack` commit on demand here (`stack/mapping_windows.rs`).
//! `on_stack_with_teb` does the same in `stack_call_root`.
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
#[cfg(windows)]
use crate::os::teb::TebState;
use crate::word::{StackPointer, Word};

/// Bytes per stack word.
const WORD: usize = 8;
/// Bytes a caller leaves above the return address for the callee.
const SHADOW_SPACE: usize = 32;

/// Alignment of the stack pointer at a call boundary.
pub const STACK_ALIGNMENT: usize = 16;
/// The parent link is the word at `base - LINK_OFFSET`: the machine frame's
/// `rsp`.
pub const LINK_OFFSET: usize = 4 * WORD;
/// The context: the machine frame, two unused words above it and a word
/// of padding below.
pub const RESERVED_TOP: usize = 8 * WORD;
/// `init_stack` writes the resume address and the entry function below the
/// object.
pub const INIT_FRAME_SIZE: usize = 2 * WORD;

/// `base - LABEL_SLOT`: the root frame's return label (the machine frame's
/// `ss`).
const LABEL_SLOT: usize = 3 * WORD;
/// `base - CS_SLOT`: the machine frame's `cs`, always zero.
const CS_SLOT: usize = 6 * WORD;
/// `base - MACHINE_FRAME`: the machine frame, whose first word is the
/// parent frame label.
const MACHINE_FRAME: usize = 7 * WORD;
/// `link + LABEL_ABOVE_LINK`: the root's return label, from the link.
const LABEL_ABOVE_LINK: usize = LINK_OFFSET - LABEL_SLOT;
/// `state + ENTRY_ABOVE_STATE`: a fresh coroutine's entry function.
const ENTRY_ABOVE_STATE: usize = WORD;
/// The parent frame label is this far into `parent_frame`: after its
/// one-byte `push rbx` and `push rbp` (opcodes 0x53, 0x55).
const PARENT_FRAME_LABEL_OFFSET: usize = 2;

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

/// Windows: where the portable code keeps the two TEB states that the
/// switches swap, as a distance below the stack's base: the parent's, then
/// the coroutine's, the last two fields of the coroutine's switch record
/// (`switch::SwitchRecord`, which checks that layout), which ends at the
/// reserved top.
#[cfg(windows)]
const EXTENTS_BELOW_BASE: usize = RESERVED_TOP + 2 * core::mem::size_of::<TebState>();
/// The same from the link.
#[cfg(windows)]
const EXTENTS_BELOW_LINK: usize = EXTENTS_BELOW_BASE - LINK_OFFSET;
/// Offsets of the two TEB states from there.
#[cfg(windows)]
const PARENT_TEB: usize = 0;
#[cfg(windows)]
const RESUME_TEB: usize = core::mem::size_of::<TebState>();

/// Windows: instructions that point `r11` at the TEB states, `{ext}` bytes
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

/// `$asm!` (`asm`, `switch_asm` or `naked_asm`) with the operands that
/// name the TEB's five stack fields (`t_*`, offsets in the TEB) and their
/// copies in a `TebState` (`f_*`, offsets in it): what every block that
/// saves or loads the TEB's stack fields refers to.
#[cfg(windows)]
macro_rules! teb_fields_asm {
    ($asm:ident; { $($body:tt)* } $($tail:tt)*) => {
        $asm!(
            $($body)*
            t_list = const crate::os::teb::EXCEPTION_LIST,
            t_base = const crate::os::teb::STACK_BASE,
            t_limit = const crate::os::teb::STACK_LIMIT,
            t_dealloc = const crate::os::teb::DEALLOCATION_STACK,
            t_guaranteed = const crate::os::teb::GUARANTEED_STACK_BYTES,
            f_list = const core::mem::offset_of!(TebState, exception_list),
            f_base = const core::mem::offset_of!(TebState, fields.StackBase),
            f_limit = const core::mem::offset_of!(TebState, fields.StackLimit),
            f_dealloc = const core::mem::offset_of!(TebState, fields.DeallocationStack),
            f_guaranteed =
                const core::mem::offset_of!(TebState, fields.GuaranteedStackBytes),
            $($tail)*
        )
    };
}

/// `$asm!` (`asm` or `switch_asm`) with the operands that `teb_swap!`
/// names: `ext`, the TEB states' distance below the register it is given, and
/// `save` and `load`, the offsets of the two states in them, beside the
/// fields' offsets of [`teb_fields_asm!`].
#[cfg(windows)]
macro_rules! teb_asm {
    ($asm:ident, save = $save:expr, load = $load:expr, ext = $ext:expr;
     { $($body:tt)* } $($tail:tt)*) => {
        teb_fields_asm!($asm; {
            $($body)*
            ext = const $ext,
            save = const $save,
            load = const $load,
        } $($tail)*)
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
/// two bytes in. Its unwind info says that `rbx` and then `rbp` were pushed
/// below the return address, and its code at the label is the matching
/// epilogue.
#[unsafe(naked)]
unsafe extern "C" fn parent_frame() {
    naked_asm!(
        ".seh_proc {me}",
        "push rbx",
        ".seh_pushreg rbx",
        "push rbp",
        ".seh_pushreg rbp",
        ".seh_endprologue",
        "pop rbp",
        "pop rbx",
        "ret",
        ".seh_endproc",
        me = sym parent_frame,
    )
}

/// The root frame of every coroutine: the resume address of a fresh one.
///
/// Jumped to by the parent's `jmp [rdx]`, with `rdi` = first input, `rsi`
/// = stack base, `rdx` = the initial state (`obj - 16`, the entry function
/// at `rdx + 8`), the parent's record pushed, the link stored and (on
/// Windows) the TEB describing this stack. Points `rbp` at the machine
/// frame, stores its return label in the context, and jumps to
/// `entry(input, link, obj)` (in `rcx`, `rdx`, `r8`) on the coroutine
/// stack with shadow space and the label as return address. `entry` never
/// returns.
///
/// Unwind info: frame register `rbp` at offset 0, below a machine frame;
/// both hold from the end of the (empty) prologue, which is true from the
/// `lea rbp` on, before which nothing can unwind.
#[unsafe(naked)]
unsafe extern "C" fn coroutine_root() {
    naked_asm!(
        // In: rdi = input, rsi = base, rdx = state. Out, at the entry: rcx
        // = input, rdx = link, r8 = obj, rsp = obj - 40 holding the label.
        ".seh_proc {me}",
        ".seh_pushframe",
        ".seh_setframe rbp, 0",
        ".seh_endprologue",
        "lea rbp, [rsi - {machine_frame}]",
        "lea rax, [rip + 3f]",
        "mov [rsi - {label}], rax",
        "mov r9, [rdx + {entry}]",
        "lea r8, [rdx + {init}]",
        "mov rcx, rdi",
        "lea rdx, [rsi - {link}]",
        "lea rsp, [r8 - {shadow}]",
        "push rax",
        "jmp r9",
        "3:",
        "ud2",
        ".seh_endproc",
        me = sym coroutine_root,
        link = const LINK_OFFSET,
        machine_frame = const MACHINE_FRAME,
        label = const LABEL_SLOT,
        entry = const ENTRY_ABOVE_STATE,
        init = const INIT_FRAME_SIZE,
        shadow = const SHADOW_SPACE,
    )
}

/// UEFI: the frame that `on_stack` runs its function under.
///
/// Called with `rdi` = argument, `rsi` = new stack top (16-aligned), `rdx` =
/// function. Builds a frame on the old stack, calls `rdx(rdi)` on the new
/// one with shadow space below `top`, and returns through the frame. Its
/// unwind info uses `rbp` as frame register, so unwinding from the new
/// stack continues on the old one.
#[cfg(not(windows))]
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

/// Windows: the frame that `on_stack_with_teb` runs its function under,
/// which also swaps the TEB's stack fields.
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
/// committed. Unwind info as for UEFI's (frame register `rbp`, which the
/// pushes below it do not move, so unwinding from the new stack continues
/// on the old one).
#[cfg(windows)]
#[unsafe(naked)]
unsafe extern "C" fn stack_call_root() {
    teb_fields_asm!(naked_asm; {
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
        me = sym stack_call_root,
        shadow = const SHADOW_SPACE,
        saved = const 5 * WORD,
    })
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

/// Prepares a fresh coroutine: the root as its resume address and `entry`
/// above it, in the two words below the object, and the machine frame's
/// constant words. Returns the initial state, the address of the resume
/// address.
///
/// # Safety
/// `obj` must be 16-aligned and at most `base - RESERVED_TOP`, and the
/// context below `base` and the `INIT_FRAME_SIZE` bytes below `obj` must
/// be writable stack memory.
#[inline]
pub unsafe fn init_stack(base: StackPointer, obj: usize, entry: EntryFn) -> StackPointer {
    let at = |offset: usize| (base.get() - offset) as *mut usize;
    let state = obj - INIT_FRAME_SIZE;
    // SAFETY: the caller guarantees that the context below `base` and the
    // two words below `obj` are writable and aligned; `state` is not null
    // because `obj` lies in a stack far above address 16.
    unsafe {
        *at(CS_SLOT) = 0;
        *at(MACHINE_FRAME) = parent_frame as *const () as usize + PARENT_FRAME_LABEL_OFFSET;
        *(state as *mut usize) = coroutine_root as *const () as usize;
        *((state + ENTRY_ABOVE_STATE) as *mut usize) = entry as usize;
        StackPointer::new_unchecked(state)
    }
}

/// The parent's side of a resume: push the return label, `rbx` and `rbp`,
/// store the stack pointer in the link, (Windows) swap the TEB, (the given
/// extra instructions), and jump to the resume address at the state; the
/// coroutine comes back to the label, the end of the block, having popped
/// all three.
/// In: `rdi` = word, `rsi` = stack base, `rdx` = state. Out: `rdi` = word,
/// `rax` = state (the coroutine's stack pointer, or an exit code). Every
/// other register is clobbered.
macro_rules! enter_asm {
    ($arg:expr, $state:expr, $base:expr, $($extra:literal),*) => {{
        let (word, state): (Word, usize);
        teb_asm!(switch_asm, save = PARENT_TEB, load = RESUME_TEB, ext = EXTENTS_BELOW_BASE; {
            // In: rdi = word, rsi = stack base, rdx = state (+ extra).
            // Pushes the return label 3, rbx and rbp (the record the link
            // points at, which parent_frame describes), stores the link;
            // Windows: swaps the TEB's stack fields (ours into the
            // coroutine's parent state, its resume state into the TEB),
            // after the pushes; jumps to the resume address at [rdx]. The
            // coroutine comes back at 3 with rbx, rbp and rsp restored.
            // Out: rdi = word, rax = state. Every other register is
            // clobbered.
            "lea rcx, [rip + 3f]",
            "push rcx",
            "push rbx",
            "push rbp",
            "mov [rsi - {link}], rsp",
            teb_swap!("rsi"),
            $($extra,)*
            "jmp [rdx]",
            "3:",
            link = const LINK_OFFSET,
            inlateout("rdi") $arg => word,
            inlateout("rsi") $base => _,
            inlateout("rdx") $state => _,
            lateout("rax") state,
        });
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
    // the parent's resume pushed; we return into the parent and are resumed
    // at label 2 by its next `jmp [state]`.
    unsafe {
        teb_asm!(switch_asm, save = RESUME_TEB, load = PARENT_TEB, ext = EXTENTS_BELOW_LINK; {
            // In: rdi = word, rdx = link.
            // Suspend: push rbp, rbx and the resume address; hand rsp out
            // in rax (the state); Windows: swap the TEB's stack fields
            // (ours into the resume state, the parent's back into the
            // TEB), after the pushes; switch to the parent's record, pop
            // its rbp, rbx and return label and jump there, with rdi =
            // word.
            // Landing (label 2, jumped to with rdi = word, rsi = control
            // word, rdx = our state, the TEB ours again): switch back past
            // the resume address, pop rbx and rbp.
            // Out: rdi = word, rsi = control word (0: unwind).
            "push rbp",
            "push rbx",
            "lea rax, [rip + 2f]",
            "push rax",
            "mov rax, rsp",
            teb_swap!("rdx"),
            "mov rsp, [rdx]",
            "pop rbp",
            "pop rbx",
            "pop rcx",
            "jmp rcx",
            "2:",
            "lea rsp, [rdx + {word}]",
            "pop rbx",
            "pop rbp",
            word = const WORD,
            inlateout("rdi") arg => word,
            inlateout("rdx") link => _,
            lateout("rsi") control,
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
            // are free, as nothing comes back here). Switches to the
            // parent's record, pops its rbp, rbx and return label and
            // jumps there.
            teb_swap!("rdx"),
            "mov rsp, [rdx]",
            "pop rbp",
            "pop rbx",
            "pop rcx",
            "jmp rcx",
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
#[cfg(not(windows))]
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
/// for this stack, both inside the switch (see `stack_call_root`).
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
    teb: &TebState,
) {
    // SAFETY: stack_call_root restores rbp, rsp and the TEB's stack
    // fields; `f` follows the Microsoft ABI, so only volatile registers
    // change.
    unsafe {
        unwinding_asm!(
            // In: rdi = argument, rsi = new stack top, rdx = function, r8 =
            // the new stack's TEB state. Calls the root, which returns with
            // rbp, rsp and the TEB restored.
            "call {root}",
            root = sym stack_call_root,
            inlateout("rdi") arg => _,
            inlateout("rsi") top => _,
            inlateout("rdx") f => _,
            inlateout("r8") teb as *const TebState => _,
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
