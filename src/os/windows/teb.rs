//! Windows only: the stack fields of the current thread's Thread
//! Environment Block (TEB), read and written around every stack switch.
//!
//! Windows keeps the bounds of the running stack in the TEB: its exception
//! dispatcher refuses frames outside them, its guard-page handler grows
//! only the stack they describe, and the stack probes (`__chkstk`) compare
//! against `StackLimit`. So whoever switches stacks writes the fields of
//! the stack it goes to (see `switch`).
//!
//! Offsets from the start of the TEB, from the documented `NT_TIB` header
//! (`StackBase` and `StackLimit` are its second and third words) and the
//! stable TEB layout of each pointer width:
//!
//! | field                  | 64-bit   | 32-bit  |
//! |------------------------|----------|---------|
//! | `StackBase`            | `0x8`    | `0x4`   |
//! | `StackLimit`           | `0x10`   | `0x8`   |
//! | `DeallocationStack`    | `0x1478` | `0xe0c` |
//! | `GuaranteedStackBytes` | `0x1748` | `0xf78` |
//!
//! `GuaranteedStackBytes` is a 32-bit `ULONG`; the others are pointers.
//!
//! The first word of the `NT_TIB`, `ExceptionList`, is swapped too. On x86
//! it heads the chain of SEH registration records on the stack; on x86-64
//! Windows itself leaves it unused, but Wine keeps its own handler frames
//! there and calls every one that lies below the frame being searched, so a
//! parent's frames would be called for an exception raised on a coroutine
//! stack above them. A fresh stack starts with the empty chain.

/// Windows only: the stack fields of the Thread Environment Block (TEB) as
/// they are while code runs on a given stack (see
/// [`Stack::teb_fields`](crate::stack::Stack::teb_fields)). The names are the
/// TEB's own.
#[allow(non_snake_case)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackTebFields {
    /// The highest address of the stack:
    /// [`Stack::base`](crate::stack::Stack::base).
    pub StackBase: usize,
    /// The lowest committed address of the stack; Windows lowers it as
    /// the stack grows into its guard page.
    pub StackLimit: usize,
    /// The lowest address of the stack's reservation, guard pages included.
    pub DeallocationStack: usize,
    /// Bytes kept free below the guard page for a stack-overflow handler
    /// (`SetThreadStackGuarantee`).
    pub GuaranteedStackBytes: usize,
}

/// Whether the architecture's switches swap the TEB fields themselves, in
/// the `asm!` blocks that switch the stack pointer (x86-64: see
/// `arch/x86_64_windows.rs`), rather than the portable code around them.
/// There nothing runs between the TEB write and the switch, so a stack that
/// grows on demand (through its guard page, which Windows grows only for
/// the stack the TEB describes) is described at every instant: only there
/// do `DefaultStack` and pooled stacks commit on demand (see
/// `stack/mapping_windows.rs`).
pub(crate) const IN_SWITCH: bool = cfg!(target_arch = "x86_64");

/// Everything the TEB says about the running stack.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(16))]
pub struct TebState {
    /// The fields a `Stack` describes itself with.
    pub fields: StackTebFields,
    /// The head of the SEH registration chain.
    pub exception_list: usize,
}

/// The `ExceptionList` value that ends the chain.
const END_OF_CHAIN: usize = usize::MAX;

impl TebState {
    /// The state for a stack that no code has run on yet.
    #[inline(always)]
    pub fn fresh(fields: StackTebFields) -> Self {
        Self {
            fields,
            exception_list: END_OF_CHAIN,
        }
    }
}

const WORD: usize = core::mem::size_of::<usize>();
// The fields' offsets in the TEB (also used by the switches that swap the
// fields in assembly, where `arch::TEB_IN_SWITCH` says so).
pub(crate) const EXCEPTION_LIST: usize = 0;
pub(crate) const STACK_BASE: usize = WORD;
pub(crate) const STACK_LIMIT: usize = 2 * WORD;
#[cfg(target_pointer_width = "64")]
pub(crate) const DEALLOCATION_STACK: usize = 0x1478;
#[cfg(target_pointer_width = "64")]
pub(crate) const GUARANTEED_STACK_BYTES: usize = 0x1748;
#[cfg(target_pointer_width = "32")]
pub(crate) const DEALLOCATION_STACK: usize = 0xe0c;
#[cfg(target_pointer_width = "32")]
pub(crate) const GUARANTEED_STACK_BYTES: usize = 0xf78;

/// The current thread's TEB stack state.
#[inline(always)]
pub fn read() -> TebState {
    let teb = crate::arch::thread_environment_block();
    // SAFETY: the TEB is the current thread's, mapped for its whole life;
    // the offsets are the fields' (see the module documentation).
    unsafe {
        TebState {
            fields: StackTebFields {
                StackBase: *(teb.add(STACK_BASE) as *const usize),
                StackLimit: *(teb.add(STACK_LIMIT) as *const usize),
                DeallocationStack: *(teb.add(DEALLOCATION_STACK) as *const usize),
                GuaranteedStackBytes: *(teb.add(GUARANTEED_STACK_BYTES) as *const u32) as usize,
            },
            exception_list: *(teb.add(EXCEPTION_LIST) as *const usize),
        }
    }
}

/// Makes the current thread's TEB describe the stack that `state`
/// describes.
///
/// # Safety
/// The thread must be about to run on that stack (or be running on it).
#[inline(always)]
pub unsafe fn write(state: &TebState) {
    let teb = crate::arch::thread_environment_block();
    let fields = &state.fields;
    // SAFETY: as in `read`; only this thread reads these fields, and the
    // caller makes them true.
    unsafe {
        *(teb.add(EXCEPTION_LIST) as *mut usize) = state.exception_list;
        *(teb.add(STACK_BASE) as *mut usize) = fields.StackBase;
        *(teb.add(STACK_LIMIT) as *mut usize) = fields.StackLimit;
        *(teb.add(DEALLOCATION_STACK) as *mut usize) = fields.DeallocationStack;
        *(teb.add(GUARANTEED_STACK_BYTES) as *mut u32) = fields.GuaranteedStackBytes as u32;
    }
}
