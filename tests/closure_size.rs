//! The closure-size rule: a stack needs twice the closure's size (three
//! times its size and alignment when it is aligned above 16 bytes) plus the
//! few hundred bytes the crate keeps at the top, whatever the stack's size,
//! so small stacks take small closures; what the check accepts is set up
//! without touching the guard page, and on a stack of
//! `RECOMMENDED_MIN_STACK_SIZE` a 2 KiB closure also panics and unwinds, in
//! debug and in release builds.

use std::hint::black_box;
use std::num::NonZeroUsize;
use std::panic::{self, AssertUnwindSafe};

use switchback::stack::{
    DefaultStack, Stack, StackPointer, MIN_STACK_SIZE, RECOMMENDED_MIN_STACK_SIZE,
};
use switchback::{on_stack, Coroutine, CoroutineResult};

mod common;
use common::{make_inaccessible, page_size, panic_message, under_sanitizer};

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

/// Expects `f` to panic with the closure-size message, and returns the
/// size it says the closure needs.
fn assert_rejected(f: impl FnOnce()) -> usize {
    let payload = panic::catch_unwind(AssertUnwindSafe(f)).unwrap_err();
    let message = panic_message(&*payload);
    assert!(
        message.contains("needs a stack of at least") && message.contains("box the closure"),
        "{message}"
    );
    let needed = message
        .split("needs a stack of at least ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no size in {message:?}"));
    assert!(
        message.contains("twice the closure's size"),
        "the message says what counts: {message}"
    );
    needed
}

/// Creates a coroutine for a closure that captures `N` bytes on `stack` and
/// drops it without running it (the check is at creation).
fn create_closure_of<const N: usize, S: Stack + 'static>(stack: S) {
    let bytes = black_box([3u8; N]);
    let co: Coroutine<(), (), u8, S> = Coroutine::with_stack(stack, move |_, ()| bytes[N - 1]);
    drop(co);
}

#[test]
fn a_one_page_stack_takes_small_closures() {
    let page = page_size();
    create_closure_of::<256, _>(exact(page));
    if under_sanitizer() {
        return; // AddressSanitizer's frames and redzones need more than a page
    }
    // Zero-sized, on a stack with its guard just below the limit, and on a
    // DefaultStack of the floor size, suspending once.
    let mut co: Coroutine<u32, (), u32, _> = Coroutine::with_stack(exact(page), |_, x| x * 2);
    assert_eq!(co.resume(21).as_return(), Some(42));
    let mut co: Coroutine<(), u32, u32, _> =
        Coroutine::with_stack(DefaultStack::new(MIN_STACK_SIZE).unwrap(), |y, ()| {
            y.suspend(7);
            8
        });
    assert_eq!(co.resume(()), CoroutineResult::Yield(7));
    assert_eq!(co.resume(()), CoroutineResult::Return(8));
    // 256 bytes are taken too (running them is up to the frames: a debug
    // build on Windows takes 2.6 KiB before the body, see below).
    let bytes = black_box([5u8; 256]);
    // And on_stack takes them the same way.
    assert_eq!(on_stack(exact(page), || 7), 7);
    assert_eq!(
        on_stack(exact(page), move || bytes
            .iter()
            .map(|&b| b as usize)
            .sum::<usize>()),
        5 * 256
    );
}

#[test]
fn a_closure_of_1_kib_runs_on_an_8_kib_stack() {
    if under_sanitizer() {
        return; // AddressSanitizer's frames and redzones need more room
    }
    // Twice the closure and the frames before its body (1.3 KiB in a debug
    // build on x86-64 Linux, 2.6 KiB on Windows) fit; on a 4 KiB stack
    // they would not everywhere.
    let bytes = black_box([1u8; 1024]);
    let mut co: Coroutine<(), (), usize, _> =
        Coroutine::with_stack(DefaultStack::new(8 * 1024).unwrap(), move |_, ()| {
            bytes.iter().map(|&b| b as usize).sum()
        });
    assert_eq!(co.resume(()).as_return(), Some(1024));
}

#[test]
fn the_rule_is_twice_the_closure_plus_a_few_hundred_bytes() {
    // 64 KiB is a whole number of pages everywhere. The crate keeps at most
    // 512 bytes (MIN_STACK_SIZE / 8, checked at compile time) at the top.
    const STACK: usize = 64 * 1024;
    const FITS: usize = (STACK - 512) / 2;
    create_closure_of::<FITS, _>(exact(STACK));
    const TOO_BIG: usize = STACK / 2;
    let needed = assert_rejected(|| create_closure_of::<TOO_BIG, _>(exact(STACK)));
    assert!(
        needed > 2 * TOO_BIG && needed <= 2 * TOO_BIG + 512,
        "{needed}"
    );
    // The same on a stack of the floor size, for a closure of half a page.
    const HALF_PAGE: usize = MIN_STACK_SIZE / 2;
    let needed = assert_rejected(|| {
        create_closure_of::<HALF_PAGE, _>(DefaultStack::new(MIN_STACK_SIZE).unwrap())
    });
    if page_size() == MIN_STACK_SIZE {
        assert!(needed > MIN_STACK_SIZE && needed <= MIN_STACK_SIZE + 512);
    }
}

#[test]
fn the_recommended_minimum_takes_a_2_kib_closure_that_panics_and_unwinds() {
    if under_sanitizer() {
        return; // AddressSanitizer's frames and redzones need more room
    }
    run_closure_of::<2048, _>(exact(RECOMMENDED_MIN_STACK_SIZE));
    // A DefaultStack of that size, whatever the page size.
    run_closure_of::<2048, _>(DefaultStack::new(RECOMMENDED_MIN_STACK_SIZE).unwrap());
}

#[test]
fn a_16_kib_closure_that_panics_runs_on_a_64_kib_stack() {
    if under_sanitizer() {
        return;
    }
    run_closure_of::<{ 16 * 1024 }, _>(exact(64 * 1024));
}

#[test]
fn over_aligned_closures_count_their_padding() {
    if under_sanitizer() {
        return;
    }
    #[repr(align(4096))]
    struct PageAligned([u8; 4096]);
    // 3 * (4096 + 4095 bytes of padding) > 24 KiB.
    let value = PageAligned([1; 4096]);
    let needed = assert_rejected(|| {
        let _co: Coroutine<(), (), u8, _> =
            Coroutine::with_stack(exact(24 * 1024), move |_, ()| {
                let value = &value;
                value.0[0]
            });
    });
    assert!(needed > 3 * (4096 + 4095), "{needed}");
    let value = PageAligned([1; 4096]);
    let mut co: Coroutine<(), (), usize, _> =
        Coroutine::with_stack(exact(64 * 1024), move |_, ()| {
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
    const SIZE: usize = (64 * 1024 - 512) / 2;
    let bytes = [1u8; SIZE];
    assert_eq!(
        on_stack(exact(64 * 1024), move || bytes
            .iter()
            .map(|&b| b as usize)
            .sum::<usize>()),
        SIZE
    );
    let bytes = [1u8; 32 * 1024];
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
        message.contains("a closure of 614400 bytes needs a stack of at least ")
            && message.contains("but this stack has 1048576;"),
        "{message}"
    );
    // It needs twice the closure and the crate's few hundred bytes.
    let needed: usize = message
        .split("at least ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|number| number.parse().ok())
        .unwrap();
    assert!(
        needed > 2 * 614400 && needed <= 2 * 614400 + 512,
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
