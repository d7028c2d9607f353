//! The closure-size rule: a stack needs 28 KiB for frames plus twice the
//! closure's size (three times its size and alignment when it is aligned
//! above 16 bytes); whatever the check accepts runs, panics and unwinds
//! without touching the guard page, in debug and in release builds.

use std::hint::black_box;
use std::num::NonZeroUsize;
use std::panic::{self, AssertUnwindSafe};

use switchback::stack::{DefaultStack, Stack, StackPointer, MIN_STACK_SIZE};
use switchback::{on_stack, Coroutine, CoroutineResult};

mod common;
use common::{make_inaccessible, page_size, panic_message, under_sanitizer};

/// The stack bytes kept for frames beside a closure.
const FRAME_RESERVE: usize = 28 * 1024;

/// The biggest closure (align 1) that a stack of `usable` bytes takes.
fn largest_closure(usable: usize) -> usize {
    (usable - FRAME_RESERVE) / 2
}

/// A stack of exactly `usable` bytes with its guard page just below
/// `limit()`, cut from the top of a bigger `DefaultStack` (whose own guard
/// page then lies further down, so this one is guarded by the tail of the
/// mapping made inaccessible here).
struct Exact {
    _inner: DefaultStack,
    base: usize,
    limit: usize,
}

fn exact(usable: usize) -> Exact {
    let page = page_size();
    let inner = DefaultStack::new(usable + 2 * page).unwrap();
    let base = inner.base().get();
    let limit = base - usable;
    assert_eq!(limit % page, 0, "sizes here are whole pages");
    // Windows: `inner` commits its pages as code on it reaches them; this
    // stack's are committed now, as a custom stack's must be.
    // SAFETY: the pages belong to `inner`'s reservation, and nothing uses
    // them.
    #[cfg(windows)]
    unsafe {
        common::commit(limit - page, usable + page)
    };
    // SAFETY: the page below `limit` belongs to `inner`'s mapping, and
    // nothing uses it.
    unsafe { make_inaccessible(limit - page, page) };
    Exact {
        _inner: inner,
        base,
        limit,
    }
}

// SAFETY: [limit, base) is part of the inner stack's read-write mapping and
// used only through this object; the page below `limit` is inaccessible.
unsafe impl Stack for Exact {
    fn base(&self) -> StackPointer {
        NonZeroUsize::new(self.base).unwrap()
    }
    fn limit(&self) -> StackPointer {
        NonZeroUsize::new(self.limit).unwrap()
    }
}

/// Runs a closure that captures `N` bytes on `stack`: it sums them, panics
/// and catches the panic, suspends, and is then dropped while suspended
/// (a forced unwind; without the `unwind` feature it is resumed to the end
/// instead), all of which must fit.
fn run_closure_of<const N: usize, S: Stack + 'static>(stack: S) {
    let bytes = black_box([3u8; N]);
    let mut co: Coroutine<(), usize, (), S> = Coroutine::with_stack(stack, move |yielder, ()| {
        let caught = panic::catch_unwind(|| panic!("a panic on a small stack"));
        assert_eq!(
            panic_message(&*caught.unwrap_err()),
            "a panic on a small stack"
        );
        let _guard = Box::new(1u8); // dropped by the forced unwind
        yielder.suspend(bytes.iter().map(|&b| b as usize).sum());
    });
    assert_eq!(co.resume(()), CoroutineResult::Yield(3 * N));
    if !cfg!(feature = "unwind") {
        assert_eq!(co.resume(()), CoroutineResult::Return(()));
    }
    drop(co);
}

/// Expects `f` to panic with the closure-size message.
fn assert_rejected(f: impl FnOnce()) {
    let payload = panic::catch_unwind(AssertUnwindSafe(f)).unwrap_err();
    let message = panic_message(&*payload);
    assert!(
        message.contains("needs a stack of at least") && message.contains("box the closure"),
        "{message}"
    );
}

#[test]
fn minimum_stack_takes_a_2_kib_closure_that_panics_and_unwinds() {
    if under_sanitizer() {
        return; // AddressSanitizer's frames and redzones need more room
    }
    const SIZE: usize = (MIN_STACK_SIZE - FRAME_RESERVE) / 2;
    assert_eq!(SIZE, 2048);
    assert_eq!(largest_closure(MIN_STACK_SIZE), SIZE);
    run_closure_of::<SIZE, _>(exact(MIN_STACK_SIZE));
    assert_rejected(|| run_closure_of::<{ SIZE + 1 }, _>(exact(MIN_STACK_SIZE)));
}

#[test]
fn minimum_stack_with_the_guard_just_below_limit_takes_a_zero_sized_closure() {
    // The configuration the review found rejected for every closure.
    let mut co: Coroutine<u32, (), u32, _> =
        Coroutine::with_stack(exact(MIN_STACK_SIZE), |_, x| x * 2);
    assert_eq!(co.resume(21).as_return(), Some(42));
    // And on_stack takes it the same way.
    assert_eq!(on_stack(exact(MIN_STACK_SIZE), || 7), 7);
}

#[test]
fn largest_accepted_closure_runs_on_a_64_kib_stack() {
    if under_sanitizer() {
        return;
    }
    const SIZE: usize = (64 * 1024 - FRAME_RESERVE) / 2;
    run_closure_of::<SIZE, _>(exact(64 * 1024));
    assert_rejected(|| run_closure_of::<{ SIZE + 1 }, _>(exact(64 * 1024)));
}

#[test]
fn largest_accepted_closure_runs_on_a_default_stack_of_the_minimum_size() {
    if under_sanitizer() {
        return;
    }
    // DefaultStack rounds up to whole pages, so its size depends on the
    // page size; the rule is the same.
    const SIZE: usize = (MIN_STACK_SIZE - FRAME_RESERVE) / 2;
    let stack = DefaultStack::new(MIN_STACK_SIZE).unwrap();
    let usable = stack.base().get() - stack.limit().get();
    if usable == MIN_STACK_SIZE {
        run_closure_of::<SIZE, _>(stack);
        assert_rejected(|| {
            run_closure_of::<{ SIZE + 1 }, _>(DefaultStack::new(MIN_STACK_SIZE).unwrap())
        });
    } else {
        assert!(largest_closure(usable) >= SIZE);
        run_closure_of::<SIZE, _>(stack);
    }
}

#[test]
fn over_aligned_closures_count_their_padding() {
    if under_sanitizer() {
        return;
    }
    #[repr(align(4096))]
    struct PageAligned([u8; 4096]);
    // 28 KiB + 3 * (4096 + 4095 bytes of padding) > 32 KiB + 8 KiB.
    let value = PageAligned([1; 4096]);
    assert_rejected(|| {
        let _co: Coroutine<(), (), u8, _> =
            Coroutine::with_stack(exact(MIN_STACK_SIZE + 8192), move |_, ()| {
                let value = &value;
                value.0[0]
            });
    });
    let value = PageAligned([1; 4096]);
    let mut co: Coroutine<(), (), usize, _> =
        Coroutine::with_stack(exact(MIN_STACK_SIZE + 24576), move |_, ()| {
            let value = &value;
            assert_eq!(value as *const PageAligned as usize % 4096, 0);
            let caught = panic::catch_unwind(|| panic!("a panic beside an aligned closure"));
            assert!(caught.is_err());
            value.0.len()
        });
    assert_eq!(co.resume(()).as_return(), Some(4096));
}

#[test]
fn the_rule_is_the_same_for_on_stack() {
    const SIZE: usize = (64 * 1024 - FRAME_RESERVE) / 2;
    let bytes = [1u8; SIZE];
    assert_eq!(
        on_stack(exact(64 * 1024), move || bytes
            .iter()
            .map(|&b| b as usize)
            .sum::<usize>()),
        SIZE
    );
    let bytes = [1u8; SIZE + 1];
    assert_rejected(|| {
        on_stack(exact(64 * 1024), move || bytes[0]);
    });
}

#[test]
#[cfg(feature = "unwind")] // the panic leaves an on_stack call
fn a_closure_too_big_for_the_default_stack_is_rejected_with_the_sizes() {
    let big = vec![7u8; 600 * 1024];
    let payload = panic::catch_unwind(AssertUnwindSafe(|| {
        let big: Box<[u8; 600 * 1024]> = big.into_boxed_slice().try_into().unwrap();
        on_stack(DefaultStack::new(8 << 20).unwrap(), move || {
            let big = *big;
            let _co: Coroutine<(), (), u8> = Coroutine::new(move |_, ()| big[0]);
        });
    }))
    .unwrap_err();
    let message = panic_message(&*payload);
    assert!(
        message.contains("a closure of 614400 bytes needs a stack of at least 1257472 bytes"),
        "{message}"
    );
}

#[test]
fn a_closure_of_128_kib_runs_on_the_default_stack() {
    let big = [7u8; 128 * 1024];
    let sum = on_stack(DefaultStack::new(8 << 20).unwrap(), move || {
        let mut co: Coroutine<(), (), usize> =
            Coroutine::new(move |_, ()| big.iter().map(|&b| b as usize).sum());
        co.resume(()).as_return()
    });
    assert_eq!(sum, Some(7 * 128 * 1024));
}
