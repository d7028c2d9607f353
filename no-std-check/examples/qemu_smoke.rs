//! A freestanding smoke test that runs the context switch under qemu-user on
//! targets for which no Linux libc is at hand: a static `_start` program for
//! a bare-metal target (`loongarch64-unknown-none`, `riscv64imac-unknown-none-elf`,
//! `riscv32imac-unknown-none-elf`) that talks to Linux only through the
//! `write` and `exit` system calls, which qemu-user provides.
//!
//! It checks values across switches (by register and by pointer, both
//! ways), nested coroutines, `on_parent_stack`, `on_stack`, float values
//! live across switches, and `force_reset`. It prints `qemu_smoke: ok` and
//! exits with 0, or names the failed check and exits with 1. Unwinding,
//! backtraces and traps need std and are not covered here.
//!
//! Build and run (see `scripts/loongarch64-build.sh`):
//! `cargo +nightly build -Zbuild-std=core --target loongarch64-unknown-none --example qemu_smoke`
//! then `qemu-loongarch64-static target/loongarch64-unknown-none/debug/examples/qemu_smoke`.
#![no_std]
#![no_main]

use core::cell::UnsafeCell;
use core::num::NonZeroUsize;

use switchback::stack::{Stack, StackPointer};
use switchback::{on_stack, Coroutine, CoroutineResult};

const STACK_SIZE: usize = 64 * 1024;
const STACKS: usize = 4;

/// Static memory for the stacks (no allocator here).
#[repr(align(16))]
struct Memory(UnsafeCell<[[u8; STACK_SIZE]; STACKS]>);

// SAFETY: the program is single-threaded.
unsafe impl Sync for Memory {}

static MEMORY: Memory = Memory(UnsafeCell::new([[0; STACK_SIZE]; STACKS]));

/// The `index`th stack of `MEMORY`; each index is used by one coroutine (or
/// `on_stack` call) at a time.
struct StaticStack(usize);

// SAFETY: each stack is 16-aligned, 64 KiB, and used by one user at a time
// (the checks below never use an index twice at once).
unsafe impl Stack for StaticStack {
    fn base(&self) -> StackPointer {
        NonZeroUsize::new(self.start() + STACK_SIZE).unwrap()
    }

    fn limit(&self) -> StackPointer {
        NonZeroUsize::new(self.start()).unwrap()
    }
}

impl StaticStack {
    fn start(&self) -> usize {
        MEMORY.0.get() as usize + self.0 * STACK_SIZE
    }
}

#[cfg(target_arch = "loongarch64")]
unsafe fn syscall2(number: usize, a0: usize, a1: usize, a2: usize) -> usize {
    let ret;
    // SAFETY: per the caller, a valid Linux system call with these arguments.
    unsafe {
        core::arch::asm!(
            // In: a7 = number, a0-a2 = arguments. Out: a0 = result. The
            // kernel preserves every other register but t0-t8.
            "syscall 0",
            in("$a7") number,
            inlateout("$a0") a0 => ret,
            in("$a1") a1,
            in("$a2") a2,
            lateout("$t0") _, lateout("$t1") _, lateout("$t2") _, lateout("$t3") _,
            lateout("$t4") _, lateout("$t5") _, lateout("$t6") _, lateout("$t7") _,
            lateout("$t8") _,
            options(nostack)
        );
    }
    ret
}

#[cfg(any(target_arch = "riscv64", target_arch = "riscv32"))]
unsafe fn syscall2(number: usize, a0: usize, a1: usize, a2: usize) -> usize {
    let ret;
    // SAFETY: per the caller, a valid Linux system call with these arguments.
    unsafe {
        core::arch::asm!(
            // In: a7 = number, a0-a2 = arguments. Out: a0 = result. Nothing
            // else changes.
            "ecall",
            in("a7") number,
            inlateout("a0") a0 => ret,
            in("a1") a1,
            in("a2") a2,
            options(nostack)
        );
    }
    ret
}

/// Linux's generic system call numbers (both architectures use them).
const SYS_WRITE: usize = 64;
const SYS_EXIT: usize = 93;

fn print(text: &str) {
    // SAFETY: write(2) to stdout from a valid buffer.
    unsafe { syscall2(SYS_WRITE, 1, text.as_ptr() as usize, text.len()) };
}

fn exit(code: usize) -> ! {
    // SAFETY: exit(2) does not return.
    unsafe { syscall2(SYS_EXIT, code, 0, 0) };
    loop {
        core::hint::spin_loop();
    }
}

fn check(ok: bool, what: &str) {
    if !ok {
        print("qemu_smoke: FAILED: ");
        print(what);
        print("\n");
        exit(1);
    }
}

/// A value that crosses a switch by pointer.
#[derive(Clone, Copy, PartialEq)]
struct Big([u64; 5]);

fn values() {
    let mut co = Coroutine::with_stack(StaticStack(0), |yielder, first: u32| {
        let mut x = first;
        for _ in 0..3 {
            x = yielder.suspend(x + 1);
        }
        let big = Big([x as u64, 2, 3, 4, 5]);
        let back: u32 = yielder.suspend(x + 1000);
        let _ = back;
        big
    });
    let mut next = 10;
    let mut seen = 0;
    loop {
        match co.resume(next) {
            CoroutineResult::Yield(value) if value < 1000 => {
                check(value == next + 1, "yielded value");
                seen += 1;
                next = value * 2;
            }
            CoroutineResult::Yield(_) => next = 0,
            CoroutineResult::Return(big) => {
                check(big == Big([94, 2, 3, 4, 5]), "returned by pointer");
                break;
            }
        }
    }
    check(seen == 3, "number of yields");
    check(co.done(), "done after return");
}

fn big_inputs() {
    let mut co = Coroutine::with_stack(StaticStack(0), |yielder, first: Big| {
        let second: Big = yielder.suspend(first.0.iter().sum::<u64>());
        second.0[4]
    });
    check(
        co.resume(Big([1, 2, 3, 4, 5])) == CoroutineResult::Yield(15),
        "input by pointer",
    );
    check(
        co.resume(Big([0, 0, 0, 0, 77])) == CoroutineResult::Return(77),
        "second input by pointer",
    );
}

fn nested() {
    let mut outer = Coroutine::with_stack(StaticStack(0), |yielder, x: u64| {
        let mut inner = Coroutine::with_stack(StaticStack(1), |inner_yielder, y: u64| {
            let z = inner_yielder.suspend(y * 3);
            z + 1
        });
        let a = match inner.resume(x) {
            CoroutineResult::Yield(a) => a,
            CoroutineResult::Return(_) => 0,
        };
        let b = yielder.suspend(a);
        match inner.resume(b) {
            CoroutineResult::Return(c) => c,
            CoroutineResult::Yield(_) => 0,
        }
    });
    check(
        outer.resume(5) == CoroutineResult::Yield(15),
        "nested yield",
    );
    check(
        outer.resume(40) == CoroutineResult::Return(41),
        "nested return",
    );
}

fn parent_stack() {
    let mut co = Coroutine::with_stack(StaticStack(0), |yielder, x: u64| {
        let y = yielder.on_parent_stack(move || {
            let local = [x; 64];
            core::hint::black_box(&local).iter().sum::<u64>()
        });
        yielder.suspend(y) + 1
    });
    check(
        co.resume(2) == CoroutineResult::Yield(128),
        "on_parent_stack",
    );
    check(
        co.resume(9) == CoroutineResult::Return(10),
        "after on_parent_stack",
    );
}

fn other_stack() {
    let marker = 0u8;
    let here = &marker as *const u8 as usize;
    let there = on_stack(StaticStack(2), || {
        let inner = 0u8;
        core::hint::black_box(&inner as *const u8 as usize)
    });
    let stack = StaticStack(2);
    check(
        there >= stack.limit().get() && there < stack.base().get(),
        "on_stack runs on the given stack",
    );
    check(here != there, "on_stack returns to the caller's stack");
}

fn floats() {
    let mut co = Coroutine::with_stack(StaticStack(0), |yielder, x: f64| {
        let mut acc = [x, x * 0.5, x * 0.25, x + 1.5];
        for i in 0..4 {
            let scale: f64 = yielder.suspend(acc[i]);
            for a in acc.iter_mut() {
                *a = core::hint::black_box(*a * scale + 0.125);
            }
        }
        acc[0] + acc[1] + acc[2] + acc[3]
    });
    let mut parent = [1.0f64, 2.0, 3.0, 4.0];
    let mut input = 8.0;
    let result = loop {
        match co.resume(input) {
            CoroutineResult::Yield(v) => {
                for p in parent.iter_mut() {
                    *p = core::hint::black_box(*p * 1.5 + v);
                }
                input = 2.0;
            }
            CoroutineResult::Return(r) => break r,
        }
    };
    // The same arithmetic without switches.
    let mut acc = [8.0f64, 4.0, 2.0, 9.5];
    let mut expect_parent = [1.0f64, 2.0, 3.0, 4.0];
    for i in 0..4 {
        let v = acc[i];
        for p in expect_parent.iter_mut() {
            *p = *p * 1.5 + v;
        }
        for a in acc.iter_mut() {
            *a = *a * 2.0 + 0.125;
        }
    }
    check(result == acc.iter().sum::<f64>(), "floats in the coroutine");
    check(parent == expect_parent, "floats in the parent");
}

fn reset() {
    let mut co = Coroutine::with_stack(StaticStack(3), |yielder, ()| {
        yielder.suspend(1u8);
        2u8
    });
    check(
        co.resume(()) == CoroutineResult::Yield(1),
        "yield before reset",
    );
    // SAFETY: nothing on the coroutine's stack needs dropping.
    unsafe { co.force_reset() };
    check(co.done(), "done after force_reset");
}

#[no_mangle]
extern "C" fn _start() -> ! {
    values();
    big_inputs();
    nested();
    parent_stack();
    other_stack();
    floats();
    reset();
    print("qemu_smoke: ok\n");
    exit(0)
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    print("qemu_smoke: panicked\n");
    exit(1)
}
