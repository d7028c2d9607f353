//! The per-architecture context switch: one file per architecture, each
//! implementing the contract below; everything portable lives outside `arch`.
//!
//! # The contract
//!
//! Every architecture file provides exactly these items:
//!
//! - `STACK_ALIGNMENT`: the alignment of a stack pointer at a call boundary.
//! - `LINK_OFFSET`: the parent link lives in the word at `base - LINK_OFFSET`
//!   of every coroutine stack. While the coroutine runs it holds the stack
//!   pointer of its parent (the context that last resumed it), locating a
//!   record from which the parent is restored: at it, or just below it where
//!   frame records sit below the frame pointer (RISC-V, LoongArch). The
//!   `Yielder` is a pointer to this word.
//! - `RESERVED_TOP`: bytes at the top of a coroutine stack that belong to the
//!   architecture (the link and anything beside it), a multiple of
//!   `STACK_ALIGNMENT` (checked at compile time). Portable code places the
//!   closure object below `base - RESERVED_TOP`.
//! - `INIT_FRAME_SIZE`: bytes that `init_stack` writes below the object.
//! - `init_stack(base, obj, entry) -> sp`: writes the initial frame below
//!   `obj` (aligned to `STACK_ALIGNMENT`) so that the first `switch_and_link`
//!   to `sp` calls `entry(input, link, obj)` on the coroutine stack. The
//!   frame that calls `entry` is the root of the coroutine: its unwind info
//!   (DWARF CFI; EHABI tables on 32-bit ARM) and frame record continue
//!   into the parent through the link, so backtraces, debuggers and
//!   profilers walk from the coroutine into whoever resumed it.
//! - `switch_and_link(arg, sp, base) -> (arg, state)`: resumes the
//!   coroutine whose saved stack pointer is `sp` and whose stack base is
//!   `base`, passing `arg`. It first stores the parent's stack pointer in the
//!   link. It returns when the coroutine suspends (`state` = its new stack
//!   pointer, passed back as `sp` on the next resume) or leaves (`state` =
//!   the exit code it gave `switch_and_reset`), with the word the coroutine
//!   passed.
//! - `switch_yield(arg, link) -> Option<arg>`: suspends the running coroutine,
//!   passing `arg` to the parent; returns the word passed by the next resume,
//!   or `None` when the parent resumed it with `switch_and_unwind`.
//! - `switch_and_unwind(sp, base) -> (arg, state)`: like
//!   `switch_and_link` for a started coroutine, but its pending
//!   `switch_yield` returns `None`, asking it to unwind its stack. This keeps
//!   the request off the hot path: no flag is passed on ordinary resumes.
//! - `switch_and_reset(arg, exit, link) -> !`: leaves the coroutine for
//!   good, handing the parent `arg` and the exit code `exit` (less than
//!   `MIN_STACK_SIZE`, so it cannot be mistaken for a stack pointer);
//!   nothing may be left on its stack that needs dropping.
//! - `on_stack(arg, top, f)`: calls `f(arg)` with the stack pointer set to
//!   `top` (or, where every frame starts with a header that callees write,
//!   as on PowerPC64 and s390x, to a root frame just below `top`) and
//!   returns on the original stack, with unwind info linking the two.
//! - `TrapHandlerRegs` and `trap_handler_regs(base, obj, entry)`: the register
//!   values with which a signal handler makes the interrupted coroutine call
//!   `entry(obj, link)` at the top of its stack (below the link), as if that
//!   call had been made by the root frame. The fields are corosensei's for
//!   each target; where they do not include the argument registers of the
//!   entry's ABI (x86 and x86-64 Windows), `rip`/`eip` is a trampoline that
//!   takes the arguments from the registers that are there and makes the
//!   call.
//! - `parent_stack_top(link_value)`: the highest address below which the
//!   parent's stack is free while the coroutine runs (for `on_parent_stack`).
//! - `valgrind_client_request(default, args)`: Valgrind's client-request
//!   instruction sequence; returns `default` when not running under Valgrind
//!   (always, where Valgrind does not run).
//! - Windows files only: `thread_environment_block()`, the address of the
//!   current thread's TEB, whose stack fields the portable code swaps
//!   around every switch (see `os::teb` and `switch`), except where
//!   `os::teb::IN_SWITCH` says that the switch swaps them itself (x86-64),
//!   in the `asm!` block that moves the stack pointer; that file also gives
//!   `on_stack_with_teb(arg, top, f, teb)`, `on_stack` that swaps them.
//!
//! The word passed across a switch is a `MaybeUninit<usize>` in a register
//! (see `word`): a value that fits travels in it, a larger one by pointer,
//! so no size or alignment limit applies to the values themselves.
//!
//! Global symbols in assembly would clash when two copies of this crate are
//! linked into one binary, so the trampolines are naked Rust functions whose
//! symbols are mangled with the crate's hash, and labels are local.

use crate::word::{StackPointer, Word};

/// The first function run on a fresh coroutine stack:
/// `entry(input, link, obj)`. It never returns: it leaves with
/// `switch_and_reset`. The ABI allows unwinding because with `asm-unwind`
/// panics leave through the root frame; otherwise the portable code catches
/// every panic before it gets here (see `unwind::catch_unwind_at_root`).
pub type EntryFn =
    unsafe extern "C-unwind" fn(input: Word, link: *mut StackPointer, obj: *mut u8) -> !;

/// The function a trap handler redirects a coroutine to: `entry(obj, link)`.
pub type TrapEntryFn = unsafe extern "C-unwind" fn(obj: *mut u8, link: *mut StackPointer) -> !;

/// The function `on_stack` calls on the other stack: `f(arg)`.
pub type StackCallFn = unsafe extern "C-unwind" fn(arg: *mut u8);

/// An `asm!` block that a panic may unwind through when the `asm-unwind`
/// feature is on (the context switches and `on_stack`); a plain `asm!`
/// otherwise. Shared by every architecture file.
#[cfg(not(feature = "asm-unwind"))]
macro_rules! unwinding_asm {
    ($($body:tt)*) => { core::arch::asm!($($body)*) };
}
#[cfg(feature = "asm-unwind")]
macro_rules! unwinding_asm {
    ($($body:tt)*) => { core::arch::asm!($($body)*, options(may_unwind)) };
}

/// `switch_and_link` and `switch_and_unwind` for the files whose state is
/// the suspended coroutine's stack pointer, passed in a register, and whose
/// pending `switch_yield` reads the stack-base register as its control word
/// (x86-64 System V and Windows, x86): both expand the file's `enter_asm!(arg, state,
/// base, extra instructions...)`, the second with `$clear`, the
/// instruction that zeroes the base register after the link is stored,
/// which the pending `switch_yield` reads as the unwind request.
#[allow(unused_macros)] // used only by the x86 family's files
macro_rules! state_register_entries {
    ($clear:literal) => {
        /// Resumes the coroutine at `base` whose state is `sp`, passing
        /// `arg`. Returns the word it hands back and its new state.
        ///
        /// # Safety
        /// The coroutine at `base` must be suspended (or fresh) with state
        /// `sp`, and expect `arg`.
        #[inline(always)]
        pub unsafe fn switch_and_link(
            arg: Word,
            sp: StackPointer,
            base: StackPointer,
        ) -> (Word, usize) {
            // SAFETY: the caller guarantees a resumable coroutine at `sp`;
            // it comes back by popping the return label `enter_asm!`
            // pushed and jumping to it, with the frame and stack pointers
            // restored. The base (nonzero) reaches its pending switch_yield
            // as "resume".
            unsafe { enter_asm!(arg, sp.get(), base.get(),) }
        }

        /// Resumes the coroutine at `base` so that its `switch_yield`
        /// returns `None`: the request to unwind its stack.
        ///
        /// # Safety
        /// As `switch_and_link`, and the coroutine must have started.
        #[cfg_attr(not(feature = "unwind"), allow(dead_code))]
        #[inline(never)]
        pub unsafe fn switch_and_unwind(sp: StackPointer, base: StackPointer) -> (Word, usize) {
            // SAFETY: as switch_and_link; the base register is cleared after
            // the link is stored, and the pending switch_yield reads zero as
            // the unwind request (no word is read with it).
            unsafe { enter_asm!(Word::uninit(), sp.get(), base.get(), $clear) }
        }
    };
}

/// Expands the target table (`targets.rs`): each architecture file declared
/// and re-exported where its row's `target_arch` and `target_os` hold, and
/// for every other target a compile error that lists the rows. The `ci`
/// part of each row is for CI (`xtask/src/targets.rs`) and ignored here.
macro_rules! targets {
    ($(
        $file:ident {
            arch: [$($arch:literal),+ $(,)?],
            os: [$($os:literal),+ $(,)?],
            ci: { $($ci:tt)* } $(,)?
        }
    )*) => {
        $(
            // Under Miri the real file is still compiled (never run), so
            // that `TrapHandlerRegs` is the host's (see `miri.rs`).
            #[cfg(all(any($(target_arch = $arch),+), any($(target_os = $os),+)))]
            #[cfg_attr(miri, allow(dead_code, unused_imports, unused_macros))]
            mod $file;
            #[cfg(all(not(miri), any($(target_arch = $arch),+), any($(target_os = $os),+)))]
            pub use $file::*;
            #[cfg(all(miri, any($(target_arch = $arch),+), any($(target_os = $os),+)))]
            use $file as host;
        )*

        #[cfg(not(any($(all(any($(target_arch = $arch),+), any($(target_os = $os),+))),*)))]
        compile_error!(concat!(
            "switchback does not support this target yet. Supported (target_arch on target_os):",
            $(" ", $($arch, " ",)+ "on", $(" ", $os,)+ ";",)*
            " see the README's target table for how each is tested"
        ));
    };
}

// Each file is written for the ELF targets of its architecture (Linux, the
// other ELF systems below, and bare metal, no OS) unless its name says
// otherwise (`_windows`: the Microsoft ABI, SEH unwind tables). The ELF
// systems share their architecture's psABI with Linux (the System V
// calling conventions, DWARF CFI; EHABI on 32-bit ARM), so the Linux switch
// serves them unchanged: FreeBSD, NetBSD, OpenBSD, DragonFly and illumos on
// x86-64, FreeBSD on x86 and AArch64, and Android on x86-64, x86, AArch64
// and 32-bit ARM (Android reserves x18 for its shadow call stack, which the
// AArch64 file leaves alone anyway, as Darwin requires); what differs on
// them is the OS layer's business (`os`); `x86_64.rs` and `aarch64.rs` also serve
// Darwin (macOS, and iOS on AArch64: Mach-O objects, whose differences each
// file's header lists); `x86_windows.rs` and `aarch64_windows.rs` take the
// switch of `x86.rs` and `aarch64.rs` and add their own root frames, unwind
// info and TEB access; UEFI is served by `x86_64_windows.rs` (the same
// calling convention and PE/COFF, no TEB), `x86.rs` (cdecl) and `aarch64.rs`
// (AAPCS64; see their headers). Other operating systems have their own ABI details
// (calling conventions, unwind formats, reserved registers) and stop at the
// compile error of `targets!` until a file is written for them.
include!("targets.rs");

// Miri cannot run inline assembly: under it the switch is made of threads
// (`miri.rs`), ahead of the target's own file (which is compiled for its
// `TrapHandlerRegs` only).
#[cfg(miri)]
mod miri;
#[cfg(miri)]
pub use miri::*;

// What portable code places below the reserved top (the coroutine's
// extents, the closure object) needs it aligned.
const _: () = assert!(RESERVED_TOP.is_multiple_of(STACK_ALIGNMENT));
