//! The context switch for 32-bit x86 Windows (`i686-pc-windows-gnu` and
//! `i686-pc-windows-msvc`): the i386 switch of `x86.rs`, with the Windows
//! parts of the contract.
//!
//! # Why the i386 switch carries over unchanged
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

use core::arch::asm;

use super::{EntryFn, StackCallFn, TrapEntryFn};

/// The i386 switch, shared with Linux (see the module documentation). Its
/// Valgrind client request is the one item not used here.
#[path = "x86.rs"]
#[allow(dead_code)]
mod i386;

pub use i386::{
    init_stack, on_stack, parent_stack_top, switch_and_link, switch_and_reset, switch_yield,
    trap_handler_regs, TrapHandlerRegs, INIT_FRAME_SIZE, LINK_OFFSET, RESERVED_TOP,
    STACK_ALIGNMENT,
};
#[cfg(feature = "unwind")]
pub use i386::switch_and_unwind;

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
