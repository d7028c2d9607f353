//! The root of a coroutine's stack: whether a stack has room for a closure,
//! where the closure goes, the first frame of a trap handler, and how a
//! coroutine leaves for good (its exit codes), shared by `coroutine`,
//! `on_stack` and `trap`.

use core::mem::{self, MaybeUninit};
use core::ptr;

use crate::arch;
use crate::stack::{Stack, MIN_STACK_SIZE, STACK_ALIGNMENT};
use crate::switch;
use crate::unwind::{self, CaughtPanic};
use crate::word;
use crate::word::{StackPointer, Word};

/// The exit code of a coroutine that returned: the word holds its `Return`.
pub(crate) const EXIT_RETURNED: usize = 0;
/// The exit code of a coroutine that panicked: the word holds the caught
/// panic. Any state above it is a suspended coroutine's stack pointer.
pub(crate) const EXIT_PANICKED: usize = 1;

/// Where the closure of type `F` goes on a stack whose base is `base`:
/// below the reserved top, aligned for `F` and for the stack. The caller has
/// checked that the stack has room for it (`stack_bounds`).
#[inline(always)]
pub(crate) fn closure_slot<F>(base: usize) -> usize {
    let align = mem::align_of::<F>().max(arch::STACK_ALIGNMENT);
    (base - arch::RESERVED_TOP - switch::RECORD_RESERVE - mem::size_of::<F>()) & !(align - 1)
}

/// Where a leaving coroutine's result waits for its parent to decode it: a
/// local of the coroutine's root frame, which is never left.
pub(crate) struct ExitSlot<Return> {
    returned: MaybeUninit<Return>,
    panicked: MaybeUninit<CaughtPanic>,
}

impl<Return> ExitSlot<Return> {
    #[inline(always)]
    pub(crate) fn new() -> Self {
        Self {
            returned: MaybeUninit::uninit(),
            panicked: MaybeUninit::uninit(),
        }
    }
}

/// Encodes the coroutine's result (or the panic it caught) for its parent:
/// the word and exit code to [`leave`] with. It returns before the
/// coroutine leaves, so that no frame that is never left holds the result
/// as an argument: such a frame's references would stay protected (in
/// Miri's terms) forever, and the parent could not free what they borrow.
#[inline(always)]
pub(crate) fn encode_exit<Return>(
    result: Result<Return, CaughtPanic>,
    slot: &mut ExitSlot<Return>,
) -> (Word, usize) {
    match result {
        Ok(value) => (word::encode(value, &mut slot.returned), EXIT_RETURNED),
        #[allow(unreachable_patterns)]
        Err(panic) => (word::encode(panic, &mut slot.panicked), EXIT_PANICKED),
    }
}

/// Hands the parent `output` and the exit code `exit` (from
/// [`encode_exit`]) and leaves for good.
///
/// # Safety
/// Nothing left on this stack may need dropping; the slot `output` may
/// point to must stay in place (the stack is not freed) until the parent
/// has decoded it.
#[inline(always)]
pub(crate) unsafe fn leave(output: Word, exit: usize, link: *mut StackPointer) -> ! {
    // SAFETY: per the caller.
    unsafe {
        switch::leave_for_good(link);
        arch::switch_and_reset(output, exit, link)
    }
}

/// The first frame of a trap handler: runs `f` and returns its result as the
/// coroutine's return value.
pub(crate) unsafe extern "C-unwind" fn trap_entry<F, Return>(
    obj: *mut u8,
    link: *mut StackPointer,
) -> !
where
    F: FnOnce() -> Return,
{
    // SAFETY: setup_trap_handler wrote the closure at `obj`; it is taken
    // once, at the call (see coroutine_entry).
    let run = move || unsafe { ptr::read(obj as *mut F) }();
    let result = unwind::catch_unwind_at_root(run);
    let mut slot = ExitSlot::new();
    let (output, exit) = encode_exit(result, &mut slot);
    // SAFETY: nothing else lives on this frame; `slot` stays in place (the
    // stack is not freed) until the parent has decoded it.
    unsafe { leave(output, exit, link) }
}

/// The bytes that the crate itself writes at the top of a new stack before
/// the closure runs, besides the closure and its copy (see
/// [`stack_bytes_needed`]): the architecture's reserved words (the parent
/// link), the coroutine's switch record (the sanitizer's and, on Windows, the
/// TEB fields), the initial frame (or `on_stack`'s root frame), and up to
/// one alignment unit of padding for each of the closure's two places.
pub(crate) const ENTRY_RESERVE: usize = crate::arch::RESERVED_TOP
    + switch::RECORD_RESERVE
    + crate::arch::INIT_FRAME_SIZE
    + 2 * arch::STACK_ALIGNMENT;

// The crate's own bookkeeping leaves most of a one-page stack to the
// coroutine on every target.
const _: () = assert!(ENTRY_RESERVE <= MIN_STACK_SIZE / 8);

/// Reads a stack's bounds and checks what portable code can check of the
/// [`Stack`] contract, panicking with a message that says what is wrong.
///
/// `closure_bytes` is what a closure takes on the stack (see
/// [`closure_stack_bytes`]); [`ENTRY_RESERVE`] more must fit beside it, and
/// the stack must have at least [`MIN_STACK_SIZE`] bytes. One combined test
/// on the fast path; the messages are built cold.
#[inline]
pub(crate) fn stack_bounds(
    stack: &impl Stack,
    closure_size: usize,
    closure_bytes: usize,
) -> (StackPointer, StackPointer) {
    let (base, limit) = (stack.base(), stack.limit());
    let capacity = base.get().wrapping_sub(limit.get());
    let misaligned = !(base.get() | limit.get()).is_multiple_of(STACK_ALIGNMENT);
    let needed = stack_bytes_needed(closure_bytes);
    let too_small = capacity < needed || capacity > isize::MAX as usize;
    if misaligned | too_small {
        bad_stack(base.get(), limit.get(), closure_size, closure_bytes);
    }
    (base, limit)
}

/// The usable stack bytes needed to start a closure that takes
/// `closure_bytes` (from [`closure_stack_bytes`]): what the crate writes on
/// the new stack before the closure's body runs, and no more. The frames
/// the closure then runs in are its own business: if they do not fit, they
/// run into the guard page. They cannot skip it, even on targets without
/// stack probes: the one frame of the crate's that can be big (the one
/// holding the closure's copy) is counted here, and the others are far
/// smaller than a guard page.
#[inline(always)]
pub(crate) const fn stack_bytes_needed(closure_bytes: usize) -> usize {
    let needed = ENTRY_RESERVE + closure_bytes;
    if needed < MIN_STACK_SIZE {
        MIN_STACK_SIZE
    } else {
        needed
    }
}

/// The stack bytes that a closure of `size` bytes aligned to `align` takes
/// before it runs: its slot at the top of the stack and the copy moved into
/// the frame that calls it. A closure aligned above the stack's alignment
/// also costs padding wherever it lies, and unoptimized builds keep a third
/// copy of it while realigning the frame that calls it (measured on x86-64).
#[inline(always)]
pub(crate) const fn closure_stack_bytes(size: usize, align: usize) -> usize {
    if align > STACK_ALIGNMENT {
        3 * (size + align - 1)
    } else {
        2 * size
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn bad_stack(base: usize, limit: usize, closure_size: usize, closure_bytes: usize) -> ! {
    if !(base | limit).is_multiple_of(STACK_ALIGNMENT) {
        panic!(
            "switchback: stack base {base:#x} and limit {limit:#x} must be aligned to \
             {STACK_ALIGNMENT} bytes"
        );
    }
    if base <= limit || base - limit < MIN_STACK_SIZE {
        panic!(
            "switchback: stack from {base:#x} down to {limit:#x} is smaller than \
             MIN_STACK_SIZE ({MIN_STACK_SIZE} bytes)"
        );
    }
    panic!(
        "switchback: a closure of {closure_size} bytes needs a stack of at least {} bytes \
         ({ENTRY_RESERVE} bytes for the coroutine's start plus twice the closure's size, more \
         if it is over-aligned), but this stack has {}; box the closure or use a larger stack",
        stack_bytes_needed(closure_bytes),
        base - limit
    );
}
