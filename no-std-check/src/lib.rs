//! Builds a coroutine, `on_stack` and a trap handler with no features and no
//! std, as firmware would, so that every `asm!` block of the target's
//! architecture file is assembled (generic code is only compiled where it
//! is instantiated). `.ci/run` builds it for each no_std target; nothing
//! runs it.
#![no_std]

use core::cell::UnsafeCell;
use core::num::NonZeroUsize;

use switchback::stack::{Stack, StackPointer};
use switchback::{on_stack, Coroutine, CoroutineResult};

/// 64 KiB of static memory used as a stack. Firmware would put a guard
/// region below it (an MPU region, say); this check never runs, so it
/// does not.
#[repr(align(16))]
struct StaticStack(UnsafeCell<[u8; 64 * 1024]>);

// SAFETY: nothing runs this crate's functions (it exists to be compiled),
// so the memory is never used from two threads.
unsafe impl Sync for StaticStack {}

static MEMORY: StaticStack = StaticStack(UnsafeCell::new([0; 64 * 1024]));

/// A stack over `MEMORY`.
struct FirmwareStack;

// SAFETY: see `StaticStack`: the memory is 16-aligned, 64 KiB, and used by
// one coroutine at a time.
unsafe impl Stack for FirmwareStack {
    fn base(&self) -> StackPointer {
        let start = MEMORY.0.get() as usize;
        NonZeroUsize::new(start + 64 * 1024).unwrap()
    }

    fn limit(&self) -> StackPointer {
        NonZeroUsize::new(MEMORY.0.get() as usize).unwrap()
    }
}

/// Resumes a coroutine that yields twice, and runs a closure on the stack.
#[no_mangle]
pub extern "C" fn switchback_no_std_check(input: u32) -> u32 {
    let mut coroutine = Coroutine::with_stack(FirmwareStack, |yielder, x: u32| {
        let y = yielder.suspend(x + 1);
        let z = yielder.on_parent_stack(move || y * 2);
        yielder.suspend(z) + 1
    });
    let mut total = 0;
    let mut next = input;
    loop {
        match coroutine.resume(next) {
            CoroutineResult::Yield(value) => {
                total += value;
                next = value;
            }
            CoroutineResult::Return(value) => break total + value,
        }
    }
}

/// Keeps the trap handler's register setup instantiated.
#[no_mangle]
pub extern "C" fn switchback_no_std_trap_check() -> usize {
    let coroutine: Coroutine<(), (), u32, FirmwareStack> =
        Coroutine::with_stack(FirmwareStack, |_, ()| 1);
    let handler = coroutine.trap_handler();
    // SAFETY: never run; this only makes the compiler emit the code.
    let regs = unsafe { handler.setup_trap_handler(|| 2) };
    core::mem::size_of_val(&regs)
}

/// Runs a closure on another stack.
#[no_mangle]
pub extern "C" fn switchback_no_std_on_stack_check() -> u32 {
    on_stack(FirmwareStack, || 3)
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
