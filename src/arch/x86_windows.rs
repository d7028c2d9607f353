//! The context switch for 32-bit x86 Windows (`i686-pc-windows-gnu` and
//! `i686-pc-windows-msvc`): the i386 switch of `x86.rs`, with the Windows
//! parts of the contract.
//!
//! # Why the i386 switch carries over unchanged
//!
//! (All of it but the trap registers, which follow corosensei's Windows
//! names: see [Trap recovery](#trap-recovery).)
//!
//! The 32-bit Windows C calling convention (`cdecl`, Rust's `extern "C"`
//! there) is the one `x86.rs` is written for: arguments on the stack,
//! pushed right to left and removed by the caller, the result in `eax`;
//! `ebx`, `esi`, `edi` and `ebp` callee-saved, `eax`, `ecx`, `edx` and the
//! vector and x87 registers not; the direction flag clear at calls. Windows
//! only promises a 4-byte aligned stack pointer at a call; `x86.rs` keeps 16,
//! which satisfies both. The switch saves `esi` and `ebp` by hand and
//! declares `ebx` and `edi` clobbered, so every callee-saved register of
//! either ABI survives a round trip. Its code is position-independent in the
//! way COFF needs (no GOT, no PLT: only `sym` operands, labels and stack
//! slots), so it assembles for both Windows targets as it is.
//!
//! # What Windows adds, and where it is handled
//!
//! - **The TEB.** The running stack's bounds and the head of the SEH
//!   registration chain (`ExceptionList`, `fs:[0]`) live in the Thread
//!   Environment Block. The portable code swaps them around every switch
//!   (`teb`), so this file only says where the TEB is:
//!   [`thread_environment_block`], its self pointer at `fs:[0x18]`.
//! - **The SEH chain.** On x86 the `EXCEPTION_REGISTRATION` records are on
//!   the stack, each pointing to the next, and the dispatcher walks them
//!   from `fs:[0]`, refusing any that lies outside the TEB's stack bounds.
//!   A coroutine's chain therefore cannot continue into its parent's (which
//!   lies on another stack): it starts empty, `ExceptionList` =
//!   `0xffffffff` (`END_OF_CHAIN`, set by `TebState::fresh`), and every
//!   record pushed on the coroutine stack is chained above that end. The
//!   switch itself registers no handler, so nothing here needs a SAFESEH
//!   table entry; the handlers that Rust code registers (for
//!   `catch_unwind` on `-msvc`) are listed in the `.sxdata` of the objects
//!   that contain them.
//! - **Panics** use a different unwinder on each target:
//!   - `i686-pc-windows-gnu` unwinds with libgcc's DWARF unwinder (`.eh_frame`
//!     CFI, no SEH), exactly as on Linux. The root's CFI leads into the
//!     parent, so with `asm-unwind` a panic could leave through the switch;
//!     the crate refuses `asm-unwind` on every Windows target all the same
//!     (`lib.rs`), since no 32-bit Wine here can test it.
//!   - `i686-pc-windows-msvc` raises an SEH exception that the dispatcher
//!     offers to the `fs:[0]` chain of the running stack. The portable code
//!     runs each coroutine body under `catch_unwind`, whose record is the
//!     first one pushed on the coroutine stack, so a panic is caught at the
//!     root of the coroutine and resumed in the parent. It cannot leave
//!     through the switch (the chain ends at the root), so `asm-unwind` is
//!     refused at compile time.
//! - **Backtraces** continue into the resumer on both: on `-gnu` through
//!   the root's DWARF CFI; on `-msvc`, where `dbghelp`'s `StackWalk` follows
//!   frame pointers for code without FPO records, through the `ebp` chain:
//!   the root's `ebp` is the address of the link, and `{link, root label}`
//!   is a frame record whose successor is the parent's `{ebp, return
//!   address}` (see `x86.rs`). On `-msvc` the CFI directives of the shared
//!   code still produce a small `.eh_frame` section, which the Microsoft
//!   tools carry as plain data and never read.
//! - **SEHOP.** Where SEH overwrite protection is enabled for the process
//!   (off by default for 32-bit processes on client Windows), the
//!   dispatcher also insists that the chain end in a record that the
//!   system placed at the bottom of the thread's stack; a coroutine's chain
//!   ends at `END_OF_CHAIN` instead, so such a process would see SEH
//!   exceptions raised on a coroutine stack (panics on `-msvc` among them)
//!   go unhandled. Not supported.
//! - **Valgrind** does not run on Windows: [`valgrind_client_request`]
//!   returns its default.
//!
//! # Trap recovery
//!
//! A trap handler (a vectored exception handler) writes the seven
//! registers of [`TrapHandlerRegs`] into the `CONTEXT` record, corosensei's
//! set for 32-bit Windows (`eip, esp, ebp, eax, ebx, ecx, edx`), where
//! Linux has five (`x86.rs`). Here they carry everything the trap entry
//! needs, and nothing is written on the stack until the coroutine runs
//! again: `eip` is `trap_trampoline`, which pushes the cdecl arguments,
//! the closure (`eax`) and the link (`ebx`), then the root's return label
//! (`edx`) as the return address, and jumps to the trap entry (`ecx`).
//! `ebp` is the link, as in the root frame, so the frame-pointer chain and
//! the CFI of the root lead from the entry into the parent, as from any
//! coroutine body.
//!
//! ```text
//! obj               the closure (16-aligned)
//! obj - 8           <- esp as the handler leaves it
//! obj - 12          the link     (pushed from ebx: second argument)
//! obj - 16          the closure  (pushed from eax: first argument)
//! obj - 20          root label   (pushed from edx: return address)
//! ```

use core::arch::{asm, naked_asm};

use super::{EntryFn, StackCallFn, TrapEntryFn};
use crate::word::StackPointer;

/// The i386 switch, shared with Linux (see the module documentation). Its
/// Valgrind client request is the one item not used here.
#[path = "x86.rs"]
#[allow(dead_code)]
mod i386;

pub use i386::{
    init_stack, on_stack, parent_stack_top, switch_and_link, switch_and_reset, switch_yield,
    INIT_FRAME_SIZE, LINK_OFFSET, RESERVED_TOP, STACK_ALIGNMENT,
};
#[cfg(feature = "unwind")]
pub use i386::switch_and_unwind;

/// Where a trap handler sends a coroutine (`TrapHandlerRegs::eip`): calls
/// the trap entry `ecx(eax, ebx)` (cdecl) with `edx` as its return address,
/// as if the root frame had called it.
///
/// Entered (by the handler's `EXCEPTION_CONTINUE_EXECUTION`, not by a
/// call) with `esp` = `obj - 8`, 8 above a 16-byte boundary, and `ebp` =
/// the link. Pushes the link and the closure, which leaves the argument
/// block 16-aligned at `obj - 16` as cdecl wants it at a call, then the
/// return label, and jumps. The entry never returns.
///
/// CFI: none that leads anywhere (the return address is undefined), so an
/// unwinder that samples these four instructions stops here; from the
/// entry on, the pushed label and the root's CFI lead into the parent.
#[unsafe(naked)]
unsafe extern "C" fn trap_trampoline() {
    naked_asm!(
        // In: eax = closure, ebx = link, ecx = trap entry, edx = root
        // return label, ebp = link, esp = obj - 8. Out: at the entry with
        // esp = obj - 20, [esp] = label, [esp + 4] = closure, [esp + 8] =
        // link; ebp unchanged. Writes only those three words.
        ".cfi_startproc",
        // DWARF register 8 is eip.
        ".cfi_undefined 8",
        "push ebx",
        "push eax",
        "push edx",
        "jmp ecx",
        ".cfi_endproc",
    )
}

/// Registers that a trap handler writes into the interrupted context (the
/// `CONTEXT` record of a vectored exception handler) so that the coroutine
/// runs the function given to
/// [`CoroutineTrapHandler::setup_trap_handler`](crate::trap::CoroutineTrapHandler::setup_trap_handler)
/// and then returns its result to the parent. The names are corosensei's
/// for 32-bit Windows: `eip, esp, ebp, eax, ebx, ecx, edx`.
///
/// Every field must be written; destructure it so the compiler checks that
/// none is missed:
///
/// ```
/// # use switchback::trap::TrapHandlerRegs;
/// # let regs = TrapHandlerRegs { eip: 0, esp: 0, ebp: 0, eax: 0, ebx: 0, ecx: 0, edx: 0 };
/// let TrapHandlerRegs { eip, esp, ebp, eax, ebx, ecx, edx } = regs;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrapHandlerRegs {
    /// Instruction pointer: a trampoline that pushes the arguments and the
    /// return address held in `eax`, `ebx` and `edx` and jumps to `ecx`.
    pub eip: u32,
    /// Stack pointer: 8 bytes below the closure at the top of the
    /// coroutine's stack, where the trampoline pushes the call's frame.
    pub esp: u32,
    /// Frame pointer: the link, as in the root frame, whose frame record
    /// leads into the parent.
    pub ebp: u32,
    /// The first argument, pushed by the trampoline: the closure, on the
    /// coroutine's stack.
    pub eax: u32,
    /// The second argument, pushed by the trampoline: the link (the
    /// `Yielder`'s word) through which the result goes back to the parent.
    pub ebx: u32,
    /// The function the trampoline jumps to: the one that runs the
    /// closure and returns its result to the parent.
    pub ecx: u32,
    /// The return address the trampoline pushes: the root frame's return
    /// label, so that unwinding and backtraces continue into the parent.
    pub edx: u32,
}

/// The registers that make the interrupted coroutine call `entry(obj, link)`
/// as if from its root frame, through `trap_trampoline`.
///
/// # Safety
/// The coroutine at `base` must have started (its root frame wrote the return
/// label), `obj` must be 16-aligned below `base - RESERVED_TOP` with 20
/// writable bytes below it.
pub unsafe fn trap_handler_regs(
    base: StackPointer,
    obj: usize,
    entry: TrapEntryFn,
) -> TrapHandlerRegs {
    let link = base.get() - LINK_OFFSET;
    // SAFETY: the caller guarantees that the coroutine started, so its root
    // frame wrote the label above the link.
    let label = unsafe { *((link + i386::LABEL_ABOVE_LINK) as *const usize) };
    TrapHandlerRegs {
        eip: trap_trampoline as *const () as usize as u32,
        esp: (obj - 8) as u32,
        ebp: link as u32,
        eax: obj as u32,
        ebx: link as u32,
        ecx: entry as usize as u32,
        edx: label as u32,
    }
}

/// The current thread's Thread Environment Block, whose `NT_TIB` header
/// holds its own address at `fs:[0x18]`.
#[inline(always)]
pub fn thread_environment_block() -> *mut u8 {
    let teb: *mut u8;
    // SAFETY: reads the TIB's self pointer, which every Windows thread has.
    unsafe {
        asm!(
            // In: nothing. Out: the TEB's address. No stack use.
            "mov {}, fs:[0x18]",
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
