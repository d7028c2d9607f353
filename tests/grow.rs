//! `remaining_stack`, `maybe_grow` and `grow`: the stack left on every kind
//! of stack, growing onto new stacks, panics and backtraces through them,
//! and a recursion a million levels deep on a small coroutine stack.
#![cfg(all(any(unix, windows), feature = "default-stack"))]

use std::hint::black_box;

use switchback::stack::{
    grow, maybe_grow, remaining_stack, DefaultStack, Stack, StackPointer, StackPool,
};
use switchback::{on_stack, Coroutine};

mod common;
use common::under_valgrind;

fn local_address() -> usize {
    let local = black_box(0u64);
    &local as *const u64 as usize
}

/// `remaining_stack` one frame further down, after a 16 KiB local.
#[inline(never)]
fn remaining_below_a_big_frame() -> Option<usize> {
    let buf = black_box([1u8; 16 * 1024]);
    let left = remaining_stack();
    black_box(&buf);
    left
}

/// Checks `remaining_stack` on the stack `[limit, base)` the caller runs
/// on: what it says matches the stack pointer, and deeper frames see less.
fn check_remaining_on(limit: usize, base: usize) {
    let here = local_address();
    let left = remaining_stack().expect("remaining_stack unknown on a stack the crate made");
    assert!(
        left <= base - limit,
        "{left} bytes left of {}",
        base - limit
    );
    // Within a few frames of the local's address.
    assert!(
        here.abs_diff(limit + left) < 4096,
        "local at {here:#x}, limit {limit:#x}, {left} bytes left"
    );
    let deeper = remaining_below_a_big_frame().unwrap();
    assert!(deeper + 16 * 1024 <= left, "{deeper} then {left}");
}

#[test]
fn remaining_stack_on_a_coroutine_stack() {
    let stack = DefaultStack::new(256 * 1024).unwrap();
    let (limit, base) = (stack.limit().get(), stack.base().get());
    let mut co: Coroutine<(), (), (), _> =
        Coroutine::with_stack(stack, move |_, ()| check_remaining_on(limit, base));
    co.resume(());
    assert!(co.done());
}

#[test]
fn remaining_stack_on_a_pooled_stack_and_on_stack() {
    let pool = StackPool::new(128 * 1024).unwrap();
    for _ in 0..3 {
        let stack = pool.get().unwrap();
        let (limit, base) = (stack.limit().get(), stack.base().get());
        let mut co: Coroutine<(), (), (), _> =
            Coroutine::with_stack(stack, move |_, ()| check_remaining_on(limit, base));
        co.resume(());
        let stack = pool.get().unwrap();
        let (limit, base) = (stack.limit().get(), stack.base().get());
        on_stack(stack, || check_remaining_on(limit, base));
    }
}

#[test]
fn remaining_stack_follows_switches() {
    // Alternating between the thread's stack and two coroutines' stacks:
    // each call answers for the stack it runs on.
    let stacks = [
        DefaultStack::new(64 * 1024).unwrap(),
        DefaultStack::new(512 * 1024).unwrap(),
    ];
    let mut coroutines: Vec<Coroutine<(), (), (), DefaultStack>> = stacks
        .into_iter()
        .map(|stack| {
            let (limit, base) = (stack.limit().get(), stack.base().get());
            Coroutine::with_stack(stack, move |yielder, ()| {
                for _ in 0..3 {
                    check_remaining_on(limit, base);
                    yielder.suspend(());
                }
            })
        })
        .collect();
    let outside = remaining_stack();
    for _ in 0..3 {
        for co in &mut coroutines {
            co.resume(());
            assert_eq!(remaining_stack().is_some(), outside.is_some());
        }
    }
    // Finished, so that dropping them needs no unwinding.
    for co in &mut coroutines {
        co.resume(());
        assert!(co.done());
    }
}

#[test]
#[cfg(any(target_os = "linux", target_os = "macos", windows))]
fn remaining_stack_on_threads() {
    let left = remaining_stack().expect("the main test thread's stack should be known");
    assert!(left > 0);
    let size = 4 << 20;
    let (spawned, deeper) = std::thread::Builder::new()
        .stack_size(size)
        .spawn(|| (remaining_stack(), remaining_below_a_big_frame()))
        .unwrap()
        .join()
        .unwrap();
    let spawned = spawned.expect("a spawned thread's stack should be known");
    assert!(spawned <= size, "{spawned} bytes left of {size}");
    assert!(spawned > size / 2, "{spawned} bytes left of {size}");
    assert!(deeper.unwrap() + 16 * 1024 <= spawned);
}

/// A stack the crate did not map: `remaining_stack` cannot know it (on
/// Unix; Windows knows every stack from its TEB fields).
#[cfg(unix)]
struct ForeignStack {
    memory: *mut libc::c_void,
    len: usize,
}

#[cfg(unix)]
impl ForeignStack {
    fn new(len: usize) -> Self {
        // SAFETY: a fresh anonymous mapping; its lowest page becomes the
        // guard.
        let memory = unsafe {
            let memory = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANON,
                -1,
                0,
            );
            assert_ne!(memory, libc::MAP_FAILED);
            assert_eq!(libc::mprotect(memory, 4096, libc::PROT_NONE), 0);
            memory
        };
        Self { memory, len }
    }
}

#[cfg(unix)]
impl Drop for ForeignStack {
    fn drop(&mut self) {
        // SAFETY: our own mapping, no longer in use.
        unsafe { libc::munmap(self.memory, self.len) };
    }
}

// SAFETY: the mapping is owned, fixed, page-aligned and has a PROT_NONE
// page below `limit`.
#[cfg(unix)]
unsafe impl Stack for ForeignStack {
    fn base(&self) -> StackPointer {
        StackPointer::new(self.memory as usize + self.len).unwrap()
    }
    fn limit(&self) -> StackPointer {
        StackPointer::new(self.memory as usize + 4096).unwrap()
    }
}

/// Windows: a custom stack (here one that keeps only the contract, with
/// the default TEB fields) is known from the TEB the switch fills in.
#[test]
#[cfg(windows)]
fn remaining_stack_on_a_custom_stack_comes_from_its_teb_fields() {
    struct Custom(DefaultStack);
    // SAFETY: forwards to a DefaultStack, which keeps the contract; the
    // TEB fields are the trait's defaults.
    unsafe impl Stack for Custom {
        fn base(&self) -> StackPointer {
            self.0.base()
        }
        fn limit(&self) -> StackPointer {
            self.0.limit()
        }
    }
    let stack = Custom(DefaultStack::new(128 * 1024).unwrap());
    let (limit, base) = (stack.limit().get(), stack.base().get());
    let (left, here) = on_stack(stack, || (remaining_stack(), local_address()));
    let left = left.expect("Windows knows every stack");
    // Never more than there is; short of it by the pages Windows keeps.
    assert!(
        left <= here - limit,
        "{left} bytes left at {here:#x}, limit {limit:#x}"
    );
    assert!(
        left + 4 * 4096 >= here - limit,
        "{left} bytes left of {}",
        base - limit
    );
}

#[test]
#[cfg(unix)]
fn remaining_stack_is_none_on_a_foreign_stack_and_maybe_grow_runs_in_place() {
    let stack = ForeignStack::new(128 * 1024);
    let (limit, base) = (stack.limit().get(), stack.base().get());
    let (left, inside) = on_stack(stack, || {
        (
            remaining_stack(),
            maybe_grow(usize::MAX, 64 * 1024, local_address),
        )
    });
    assert_eq!(left, None);
    assert!((limit..base).contains(&inside));
}

#[test]
fn maybe_grow_runs_in_place_when_enough_is_left() {
    let stack = DefaultStack::new(256 * 1024).unwrap();
    let (limit, base) = (stack.limit().get(), stack.base().get());
    let inside = on_stack(stack, || maybe_grow(32 * 1024, 64 * 1024, local_address));
    assert!((limit..base).contains(&inside));
}

#[test]
fn maybe_grow_moves_to_a_new_stack_when_too_little_is_left() {
    let stack = DefaultStack::new(64 * 1024).unwrap();
    let (limit, base) = (stack.limit().get(), stack.base().get());
    let (value, inside, left) = on_stack(stack, || {
        maybe_grow(1 << 20, 256 * 1024, || {
            (String::from("grown"), local_address(), remaining_stack())
        })
    });
    assert_eq!(value, "grown");
    assert!(!(limit..base).contains(&inside));
    let left = left.expect("the new stack is one the crate made");
    assert!(left > 200 * 1024 && left <= 256 * 1024, "{left}");
}

#[test]
fn grow_runs_on_a_new_stack_of_the_size_asked() {
    let outside = local_address();
    let (inside, left) = grow(512 * 1024, || (local_address(), remaining_stack().unwrap()));
    assert!(inside.abs_diff(outside) > 4096);
    assert!(left > 400 * 1024 && left <= 512 * 1024, "{left}");
}

#[test]
#[cfg(feature = "unwind")]
fn panics_unwind_through_maybe_grow() {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    for red_zone in [0, usize::MAX] {
        let dropped = common::counter();
        let guard = common::Counted(dropped.clone());
        let result = catch_unwind(AssertUnwindSafe(|| {
            maybe_grow(red_zone, 64 * 1024, move || {
                let _guard = guard;
                panic!("inside maybe_grow {red_zone}")
            })
        }));
        let payload = result.expect_err("the panic should reach the caller");
        assert_eq!(
            common::panic_message(&*payload),
            format!("inside maybe_grow {red_zone}")
        );
        assert_eq!(dropped.get(), 1);
        // And it still works afterwards.
        assert_eq!(maybe_grow(red_zone, 64 * 1024, || 7), 7);
    }
}

#[inline(never)]
fn capture_in_grown_stack_zq8() -> backtrace::Backtrace {
    let bt = backtrace::Backtrace::new();
    black_box(&bt);
    bt
}

#[inline(never)]
fn caller_of_maybe_grow_zq8() -> backtrace::Backtrace {
    let bt = maybe_grow(usize::MAX, 256 * 1024, capture_in_grown_stack_zq8);
    black_box(bt)
}

#[test]
fn backtraces_cross_maybe_grow() {
    let bt = caller_of_maybe_grow_zq8();
    let names: Vec<String> = bt
        .frames()
        .iter()
        .flat_map(|frame| frame.symbols())
        .filter_map(|symbol| symbol.name().map(|name| name.to_string()))
        .collect();
    let inner = names
        .iter()
        .position(|name| name.contains("capture_in_grown_stack_zq8"));
    let outer = names
        .iter()
        .position(|name| name.contains("caller_of_maybe_grow_zq8"));
    assert!(
        inner.is_some() && outer.is_some() && inner < outer,
        "the backtrace should run from the grown stack into its caller: {names:#?}"
    );
}

/// Depth of a chain of `n` nested calls, each one level of recursion that
/// grows the stack when needed.
fn depth(n: u32) -> u32 {
    maybe_grow(32 * 1024, 1024 * 1024, || {
        if n == 0 {
            0
        } else {
            black_box(1 + depth(black_box(n - 1)))
        }
    })
}

#[test]
fn a_million_levels_on_a_small_coroutine_stack() {
    let levels = if under_valgrind() { 20_000 } else { 1_000_000 };
    let stack = DefaultStack::new(64 * 1024).unwrap();
    let mut co: Coroutine<u32, (), u32, _> = Coroutine::with_stack(stack, |_, n| depth(n));
    assert_eq!(co.resume(levels).as_return(), Some(levels));
}
