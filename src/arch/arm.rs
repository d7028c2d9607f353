//! The context switch for 32-bit ARM (AAPCS): ARM and Thumb-2 state on ARMv6/ARMv7, and Thumb-1-only ARMv6-M.
//!
//! # One instruction sequence for every instruction set
//!
//! Stable Rust does not tell `cfg` whether code is compiled for ARM or
//! Thumb state, nor whether Thumb-2 is there (every ARM target feature is
//! unstable, so none is visible). So every sequence below is written in the
//! subset that assembles, with the same meaning, as ARM, Thumb-2 and
//! Thumb-1 (unified syntax, low registers in `push`/`pop` and in loads and
//! stores, high registers through `mov`). Consequences:
//!
//! - The frame pointer is r7 in Thumb state and r11 in ARM state, and LLVM
//!   refuses the one in use as an `asm!` operand, so both are saved by hand,
//!   as is r6 (which LLVM may use as a base pointer).
//! - A frame record is `{previous frame pointer, return address}`, with the
//!   frame pointer pointing at it, in both states as LLVM builds it; but the
//!   chain runs through r11 in ARM state and r7 in Thumb state. The parent
//!   record therefore holds both (`{r11, lr}` and `{r7, lr}`), and the root
//!   has one record for each chain.
//! - Addresses taken with `adr` carry no Thumb bit, so the code jumps to them
//!   with `mov pc, rN`, which stays in the current state (it ignores bit 0 in
//!   Thumb state; in ARM state bit 0 is clear anyway). Return addresses made
//!   by `bl` carry the bit, and are returned to with `pop {pc}`.
//!
//! # Stack layout
//!
//! ```text
//! coroutine stack                               parent stack while it runs
//! +---------------------+ <- base               |         ...          |
//! | return label        |  base - 4  } record   +----------------------+
//! | L + 12  (link 2)  --+-----------+ B (r7)    | lr                   |  } {r7, lr}: Thumb
//! +---------------------+           |           | r7                   |  } record, at L + 12
//! | return label        |  base - 12 } record +>| r6                   |
//! | L       (link)    --+----------+ A (r11)  | | lr                   |  } {r11, lr}: ARM
//! +---------------------+ base - 16 |         | | r11                  |  } record, at L
//! | (sanitizer extents) |           +-------->+-+----------------------+ <- L = link value
//! | closure object      |
//! ~         ...         ~
//! +---------------------+ <- obj (16-aligned)
//! | r7, r6 (zero)       |   only until the first resume
//! | entry fn (-> r11)   |
//! | coroutine_root      |
//! +---------------------+ <- initial sp
//! ```
//!
//! A suspended coroutine keeps, at its saved stack pointer, the four words
//! `[resume address, r11, r6, r7]`. A parent blocked in a switch keeps, at
//! the link value `L`, the five words `[r11, lr, r6, r7, lr]`: `{r11, lr}` at
//! `L` is an ARM-state frame record and `{r7, lr}` at `L + 12` a Thumb-state
//! one. The root frame points r11 at record A (`{L, label}`) and r7 at
//! record B (`{L + 12, label}`), so whichever chain is in use runs from the
//! coroutine into its parent.
//!
//! # Register contract of a switch
//!
//! Callee-saved per AAPCS are r4-r11, sp and (with VFP) d8-d15. r6, r7 and
//! r11 are saved by hand (see above); r4, r5, r8, r9, r10 and d8-d15 are
//! declared clobbered, and so is everything caller-saved, so the compiler
//! spills only what is live. The word passed across is in r0; the
//! coroutine's new stack pointer (or exit code) comes back in r1. The
//! parent enters the switch with `bl` and the coroutine returns to it with
//! `pop {pc}`, so the return-stack predictor stays in step; entering the
//! coroutine is a plain `mov pc`.
//!
//! # Unwinding
//!
//! ARM Linux unwinds with EHABI tables (`.ARM.exidx`), not `.eh_frame`. The
//! root frame's table entry is written as raw unwinding instructions: the
//! root calls `entry` with `[sp]` = the address of the link, so the unwinder
//! pops r13 twice (`vsp = [vsp]` is what popping r13 does) to reach the
//! parent record, then pops r11, r6, r7 and lr from it. Where nothing
//! unwinds (`target_os = "none"`) the functions are marked `.cantunwind`,
//! so no personality routine is referenced.

use core::arch::{asm, naked_asm};

use super::{EntryFn, StackCallFn, TrapEntryFn};
use crate::word::{StackPointer, Word};

/// Alignment of the stack pointer at a call boundary (AAPCS asks for 8 at
/// public interfaces; 16 keeps stacks interchangeable with other targets).
pub const STACK_ALIGNMENT: usize = 16;
/// The parent link is the word at `base - LINK_OFFSET`.
pub const LINK_OFFSET: usize = 16;
/// The two root frame records (each the address of a parent record and
/// the root's return label); the first word is the link.
pub const RESERVED_TOP: usize = 16;
/// `init_stack` writes the root's address, the entry fn and two zeros below
/// the object.
pub const INIT_FRAME_SIZE: usize = 16;

/// `unwinding_asm!` for a switch to another context: besides the operands
/// given, every callee-saved register that LLVM lets an `asm!` block
/// clobber (r4, r5, r8-r10, and d8-d15 where the hard-float ABI guarantees
/// VFP) and every caller-saved one is clobbered, so the compiler spills
/// only what is live. r6, r7 and r11 are saved by the asm itself.
#[cfg(target_abi = "eabihf")]
macro_rules! context_switch_asm {
    ($($body:tt)*) => {
        unwinding_asm!(
            $($body)*
            lateout("r4") _, lateout("r5") _, lateout("r8") _, lateout("r9") _,
            lateout("r10") _,
            lateout("d8") _, lateout("d9") _, lateout("d10") _, lateout("d11") _,
            lateout("d12") _, lateout("d13") _, lateout("d14") _, lateout("d15") _,
            clobber_abi("C")
        )
    };
}
/// Soft-float ABI: code built for it keeps nothing in VFP registers (the
/// target may have none), so none are touched.
#[cfg(not(target_abi = "eabihf"))]
macro_rules! context_switch_asm {
    ($($body:tt)*) => {
        unwinding_asm!(
            $($body)*
            lateout("r4") _, lateout("r5") _, lateout("r8") _, lateout("r9") _,
            lateout("r10") _,
            clobber_abi("C")
        )
    };
}

/// The shared part of the two resume trampolines: builds the parent record,
/// stores both links and loads the coroutine's registers. Leaves the
/// resume address in r3.
macro_rules! resume_body {
    () => {
        concat!(
            "mov r3, r11\n",
            "mov r4, lr\n",
            // [r11, lr, r6, r7, lr]: {r11, lr} at L, {r7, lr} at L + 12.
            "push {{r3, r4, r6, r7, lr}}\n",
            "mov r3, sp\n",
            "str r3, [r2]\n",
            "adds r3, #12\n",
            "str r3, [r2, #8]\n",
            "mov sp, r1\n",
            "pop {{r3, r4, r6, r7}}\n",
            "mov r11, r4\n",
        )
    };
}

/// Enters a coroutine: the target of the parent's `bl` in `switch_and_link`.
///
/// In: r0 = word, r1 = the coroutine's stack pointer (`[resume address,
/// r11, r6, r7]`), r2 = the link's address, lr = the parent's return
/// address. Pushes the parent record, stores the link (L) and the second
/// link (L + 12), restores the coroutine's sp, r11, r6, r7 and jumps to its
/// resume address with r0 = word, r1 = its stack pointer (not 0) and r2 =
/// the link's address; r3 and r4 are clobbered. Nothing unwinds through
/// it: no call is made while it runs.
#[unsafe(naked)]
unsafe extern "C" fn resume_trampoline() {
    naked_asm!(
        // In: r0 = word, r1 = coroutine sp, r2 = link address, lr = return.
        // Out (at the resume address): r0, r1 = coroutine sp, r2 unchanged.
        // Pushes the parent record; clobbers r3, r4.
        ".fnstart",
        ".cantunwind",
        resume_body!(),
        "mov pc, r3",
        ".fnend",
    )
}

/// Like `resume_trampoline`, but arrives at the resume address with r1 = 0:
/// the unwind request, which `switch_yield` reports as `None`.
#[cfg_attr(not(feature = "unwind"), allow(dead_code))]
#[unsafe(naked)]
unsafe extern "C" fn unwind_trampoline() {
    naked_asm!(
        // As resume_trampoline, but arrives with r1 = 0.
        ".fnstart",
        ".cantunwind",
        resume_body!(),
        "movs r1, #0",
        "mov pc, r3",
        ".fnend",
    )
}

/// The root frame's EHABI entry. At the call to `entry`, `[sp]` holds the
/// link's address. Unwinding instructions, in execution order:
/// `0x82 0x00` pop {r13}: vsp = the link's address;
/// `0x82 0x00` pop {r13}: vsp = the link value L (the parent record);
/// `0x80 0x80` pop {r11}; `0x00` vsp += 4 (the copy of lr);
/// `0x84 0x0c` pop {r6, r7, r14}: vsp = L + 20, the parent's sp outside its
/// `asm!` block; then the implicit finish sets pc = lr.
#[cfg(not(target_os = "none"))]
macro_rules! root_unwind {
    () => {
        ".unwind_raw 0, 0x82, 0x00, 0x82, 0x00, 0x80, 0x80, 0x00, 0x84, 0x0c"
    };
}
#[cfg(target_os = "none")]
macro_rules! root_unwind {
    () => {
        ".cantunwind"
    };
}

/// The root frame of every coroutine.
///
/// Entered by `mov pc` from `resume_trampoline` on the first resume with:
/// r0 = input word, r2 = the link's address, r4 = r11 = entry fn, r6 = r7 =
/// 0, sp = obj (16-aligned), the parent record at the link value. Writes the
/// return label into both root records, points r11 at record A and r7 at
/// record B, stores the link's address at the new sp and jumps to
/// `entry(input, link, obj)` with lr = the return label, as if called from
/// it; `entry` never returns.
///
/// Naked functions use only ARMv4 instructions (no `blx`, `bx` or `bkpt`):
/// in release builds their assembly is also parsed for the triple's generic
/// subtarget (to list its symbols for LTO), which for `arm-*` is ARMv4.
/// `entry` is in the same instruction set as this crate, so `mov pc`, which
/// stays in the current state, reaches it. The return label's `b 3b` is
/// never executed.
#[unsafe(naked)]
unsafe extern "C" fn coroutine_root() {
    naked_asm!(
        // In: r0 = input, r2 = link address, r4 = entry fn, sp = obj.
        // Writes both root records' labels and [sp - 8] = link address;
        // never returns.
        ".fnstart",
        root_unwind!(),
        "adr r3, 3f",
        "str r3, [r2, #4]",
        "str r3, [r2, #12]",
        "mov r3, sp",
        "sub sp, #8",
        "str r2, [sp]",
        "mov r11, r2",
        "mov r7, r2",
        "adds r7, #8",
        "mov r1, r2",
        "mov r2, r3",
        "adr r3, 3f",
        "mov lr, r3",
        "mov pc, r4",
        ".balign 4",
        "3:",
        "b 3b",
        ".fnend",
    )
}

/// `stack_call_root`'s EHABI entry, in execution order: `0x9b` vsp = r11;
/// `0x80 0x80` pop {r11}; `0x00` vsp += 4; `0x84 0x0c` pop {r6, r7, r14}.
#[cfg(not(target_os = "none"))]
macro_rules! stack_call_unwind {
    () => {
        ".unwind_raw 0, 0x9b, 0x80, 0x80, 0x00, 0x84, 0x0c"
    };
}
#[cfg(target_os = "none")]
macro_rules! stack_call_unwind {
    () => {
        ".cantunwind"
    };
}

/// The frame `on_stack` runs its function under.
///
/// Entered by `bl` with r0 = argument, r1 = new stack top (16-aligned), r2 =
/// function. Pushes `[r11, lr, r6, r7, lr]` (the same two frame records as a
/// parent record), points r11 at the first and r7 at the second, switches
/// sp, calls `r2(r0)` (`bl` to a `mov pc, r2`: see `coroutine_root` for
/// why not `blx`; `f` is in this crate's instruction set) and switches
/// back; clobbers r0-r4 and r12. The
/// unwinding instructions start from r11 (`.setfp`), which `f` preserves, so
/// unwinding from the new stack lands back on the old one.
#[unsafe(naked)]
unsafe extern "C" fn stack_call_root() {
    naked_asm!(
        // In: r0 = argument, r1 = new stack top, r2 = function.
        // Pushes [r11, lr, r6, r7, lr] on the old stack; clobbers r0-r4, r12.
        ".fnstart",
        stack_call_unwind!(),
        "mov r3, r11",
        "mov r4, lr",
        "push {{r3, r4, r6, r7, lr}}",
        "mov r11, sp",
        "add r7, sp, #12",
        "mov sp, r1",
        "bl 1f",
        "mov sp, r11",
        "pop {{r3, r4, r6, r7}}",
        "mov r11, r3",
        "pop {{pc}}",
        "1:",
        "mov pc, r2",
        ".fnend",
    )
}

/// The address to jump to with `mov pc`: a function's address without the
/// Thumb bit.
#[inline(always)]
fn code_address(f: unsafe extern "C" fn()) -> usize {
    f as usize & !1
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
    // 16-aligned, so all four words are aligned and in bounds.
    unsafe {
        let frame = sp as *mut usize;
        *frame = code_address(coroutine_root);
        *frame.add(1) = entry as usize;
        *frame.add(2) = 0;
        *frame.add(3) = 0;
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
    // resumed; it returns here with `pop {pc}` from the record the
    // trampoline pushed, having restored r6, r7 and r11.
    unsafe {
        context_switch_asm!(
            // In: r0 = word, r1 = coroutine sp, r2 = link address.
            // Out: r0 = word, r1 = new coroutine sp or exit code.
            // The trampoline pushes [r11, lr, r6, r7, lr] here (popped by
            // the coroutine on its way back); everything else is clobbered.
            "bl {resume}",
            resume = sym resume_trampoline,
            inlateout("r0") arg => ret_arg,
            inlateout("r1") sp.get() => ret_sp,
            inlateout("r2") base.get() - LINK_OFFSET => _,
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
    // SAFETY: as switch_and_link; the trampoline differs only in the r1 it
    // hands to the resume point.
    unsafe {
        context_switch_asm!(
            // In: r1 = coroutine sp, r2 = link address.
            // Out: r0 = word, r1 = new coroutine sp or exit code.
            // As in switch_and_link, through the trampoline that passes
            // r1 = 0, which switch_yield reports as the unwind request.
            "bl {unwind}",
            unwind = sym unwind_trampoline,
            lateout("r0") ret_arg,
            inlateout("r1") sp.get() => ret_sp,
            inlateout("r2") base.get() - LINK_OFFSET => _,
        );
    }
    (ret_arg, ret_sp)
}

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
    // record a resume trampoline pushed; a trampoline jumps back to label 2
    // with our registers restored.
    unsafe {
        context_switch_asm!(
            // In: r0 = word, r2 = link address.
            // Out: r0 = word from the parent, r1 = 0 if asked to unwind.
            // Pushes [resume address, r11, r6, r7], hands its sp to the
            // parent in r1, restores the parent's r11, r6, r7 from its
            // record and returns into it. Resumed at 2 by a trampoline,
            // with sp, r11, r6, r7 restored. Label 2 is word-aligned for
            // Thumb-1's `adr`; the padding before it is never executed.
            "adr r3, 2f",
            "mov r4, r11",
            "push {{r3, r4, r6, r7}}",
            "mov r1, sp",
            "ldr r3, [r2]",
            "mov sp, r3",
            "pop {{r3, r4, r6, r7}}",
            "mov r11, r3",
            "pop {{pc}}",
            ".balign 4",
            "2:",
            inlateout("r0") arg => ret_arg,
            lateout("r1") unwind_flag,
            inlateout("r2") link => _,
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
    // SAFETY: as for `switch_yield`; the exit code in r1 tells the parent
    // the coroutine finished, so it is never resumed.
    unsafe {
        asm!(
            // In: r0 = word, r1 = exit code, r2 = link address. Never
            // returns: restores the parent's r11, r6, r7 and returns into it.
            "ldr r3, [r2]",
            "mov sp, r3",
            "pop {{r3, r4, r6, r7}}",
            "mov r11, r3",
            "pop {{pc}}",
            in("r0") arg,
            in("r1") exit,
            in("r2") link,
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
    // SAFETY: stack_call_root saves and restores r4, r6, r7, r11 and sp;
    // `f` follows the AAPCS, so only caller-saved registers change.
    unsafe {
        unwinding_asm!(
            // In: r0 = argument, r1 = new stack top, r2 = function.
            // Clobbers: r0-r4, r12, lr and what `f` may clobber.
            "bl {root}",
            root = sym stack_call_root,
            inlateout("r0") arg => _,
            inlateout("r1") top => _,
            inlateout("r2") f => _,
            lateout("r4") _,
            clobber_abi("C")
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
/// # let regs = TrapHandlerRegs {
/// #     pc: 0, r0: 0, r1: 0, r7: 0, r11: 0, r13: 0, r14: 0,
/// #     cpsr_thumb: false, cpsr_endian: false,
/// # };
/// let TrapHandlerRegs { pc, r0, r1, r7, r11, r13, r14, cpsr_thumb, cpsr_endian } = regs;
/// ```
///
/// On Linux these are `arm_pc`, `arm_r0`, `arm_r1`, `arm_r7`, `arm_fp`,
/// `arm_sp` and `arm_lr` of the `ucontext_t`'s `uc_mcontext`; the two flags
/// set or clear bits of `arm_cpsr`, whose IT bits (15:10 and 26:25) must
/// also be cleared, since the fault may have been inside an IT block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrapHandlerRegs {
    /// Program counter: the function to run, without the Thumb bit.
    pub pc: u32,
    /// First argument register.
    pub r0: u32,
    /// Second argument register.
    pub r1: u32,
    /// Frame pointer in Thumb state.
    pub r7: u32,
    /// Frame pointer in ARM state.
    pub r11: u32,
    /// Stack pointer.
    pub r13: u32,
    /// Link register: the return address that the function appears to be
    /// called from (inside the coroutine's root frame).
    pub r14: u32,
    /// Whether to set the T bit (bit 5) of CPSR, that is, whether `pc` is
    /// Thumb code; clear it otherwise.
    pub cpsr_thumb: bool,
    /// Whether to set the E bit (bit 9) of CPSR (big-endian data); clear it
    /// otherwise.
    pub cpsr_endian: bool,
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
    // SAFETY: the caller guarantees that the word below `obj` is in the
    // stack; the root frame's unwinding instructions read the link's
    // address there. The return label at link + 4 was written by
    // coroutine_root.
    let label = unsafe {
        *(sp as *mut usize) = link;
        *((link + 4) as *const usize)
    };
    let entry = entry as usize;
    TrapHandlerRegs {
        pc: (entry & !1) as u32,
        r0: obj as u32,
        r1: link as u32,
        r7: (link + 8) as u32,
        r11: link as u32,
        r13: sp as u32,
        r14: label as u32,
        cpsr_thumb: entry & 1 != 0,
        cpsr_endian: cfg!(target_endian = "big"),
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
#[cfg(target_os = "linux")]
#[inline(never)]
pub unsafe fn valgrind_client_request(default: usize, args: &[usize; 6]) -> usize {
    let result;
    // SAFETY: outside Valgrind the four rotations of r12 add up to 64 bits
    // (a no-op) and `orr r10, r10, r10` changes nothing; under Valgrind the
    // sequence is recognised (in ARM and in Thumb-2 state) and r3 receives
    // the answer.
    unsafe {
        asm!(
            // In: r3 = default, r4 = &args. Out: r3 = result.
            "mov r12, r12, ror #3",
            "mov r12, r12, ror #13",
            "mov r12, r12, ror #29",
            "mov r12, r12, ror #19",
            "orr r10, r10, r10",
            inout("r3") default => result,
            in("r4") args.as_ptr(),
        );
    }
    result
}

/// Valgrind runs only on Linux: elsewhere the request is never answered.
///
/// # Safety
/// None: nothing is executed.
#[cfg(not(target_os = "linux"))]
#[inline(always)]
pub unsafe fn valgrind_client_request(default: usize, _args: &[usize; 6]) -> usize {
    default
}
