//! Dropping, `force_unwind`, `force_reset`, `into_stack` and the `started`/`done` life cycle.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use switchback::stack::{DefaultStack, Stack};
#[cfg(feature = "unwind")]
use switchback::Yielder;
use switchback::{Coroutine, CoroutineResult};

mod common;
use common::{counter, panic_message, Counted};

#[cfg(feature = "unwind")]
#[inline(never)]
fn suspend_deep(y: &Yielder<(), u32>, depth: u32, drops: &Rc<Cell<u32>>) {
    let _c = Counted(drops.clone());
    if depth == 0 {
        y.suspend(depth);
        unreachable!("resumed after being unwound");
    }
    suspend_deep(y, depth - 1, drops);
}

#[test]
#[cfg(feature = "unwind")]
fn dropping_suspended_coroutine_runs_every_destructor() {
    let drops = counter();
    let d = drops.clone();
    let captured = Counted(drops.clone());
    let mut co = Coroutine::new(move |y, ()| {
        let _captured = captured;
        let _a = Counted(d.clone());
        let boxed = Box::new(Counted(d.clone()));
        suspend_deep(y, 20, &d);
        drop(boxed);
    });
    assert_eq!(co.resume(()), CoroutineResult::Yield(0));
    assert_eq!(drops.get(), 0);
    drop(co);
    // captured + _a + boxed + 21 frames of suspend_deep.
    assert_eq!(drops.get(), 24);
}

#[test]
#[cfg(feature = "unwind")]
fn force_unwind_runs_destructors_and_marks_done() {
    let drops = counter();
    let d = drops.clone();
    let mut co = Coroutine::new(move |y: &Yielder<(), u32>, ()| {
        let _a = Counted(d.clone());
        y.suspend(1);
        let _b = Counted(d.clone());
        y.suspend(2);
        unreachable!();
    });
    assert_eq!(co.resume(()), CoroutineResult::Yield(1));
    assert_eq!(co.resume(()), CoroutineResult::Yield(2));
    assert!(!co.done());
    co.force_unwind();
    assert_eq!(drops.get(), 2);
    assert!(co.done());
    assert!(co.started());
    // Calling it again does nothing.
    co.force_unwind();
    assert_eq!(drops.get(), 2);
    // The stack is reusable after an unwind.
    let stack = co.into_stack();
    let mut co2: Coroutine<u32, (), u32, _> = Coroutine::with_stack(stack, |_, x| x * 3);
    assert_eq!(co2.resume(5), CoroutineResult::Return(15));
    drop(co2);
    assert_eq!(drops.get(), 2);
}

#[test]
#[cfg(feature = "unwind")]
fn caught_forced_unwind_is_rethrown_on_next_suspend() {
    let drops = counter();
    let catches = counter();
    let d = drops.clone();
    let c = catches.clone();
    let mut co = Coroutine::new(move |y: &Yielder<(), u32>, ()| {
        let _outer = Counted(d.clone());
        let first = catch_unwind(AssertUnwindSafe(|| {
            let _inner = Counted(d.clone());
            y.suspend(1);
        }));
        assert!(first.is_err(), "the forced unwind must arrive as a panic");
        c.set(c.get() + 1);
        let second = catch_unwind(AssertUnwindSafe(|| {
            let _inner2 = Counted(d.clone());
            // Suspending again: the forced unwind must be thrown again.
            y.suspend(2);
        }));
        assert!(second.is_err());
        c.set(c.get() + 1);
        let _after = Counted(d.clone());
        // Third time: not caught, so it unwinds out of the coroutine.
        y.suspend(3);
        unreachable!();
    });
    assert_eq!(co.resume(()), CoroutineResult::Yield(1));
    co.force_unwind();
    assert!(co.done());
    assert_eq!(catches.get(), 2);
    // _inner, _inner2, _after, _outer
    assert_eq!(drops.get(), 4);
}

#[test]
#[cfg(feature = "unwind")]
fn coroutine_that_catches_unwind_and_returns_completes_force_unwind() {
    let drops = counter();
    let d = drops.clone();
    let mut co = Coroutine::new(move |y: &Yielder<(), u32>, ()| {
        let _outer = Counted(d.clone());
        let r = catch_unwind(AssertUnwindSafe(|| y.suspend(1)));
        assert!(r.is_err());
        99u32
    });
    assert_eq!(co.resume(()), CoroutineResult::Yield(1));
    co.force_unwind();
    assert!(co.done());
    assert_eq!(drops.get(), 1);
}

#[test]
#[cfg(feature = "unwind")]
fn panic_during_unwind_of_different_kind_continues_from_force_unwind() {
    let mut co = Coroutine::new(|y: &Yielder<(), u32>, ()| {
        let r = catch_unwind(AssertUnwindSafe(|| y.suspend(1)));
        assert!(r.is_err());
        panic!("replacement panic");
    });
    assert_eq!(co.resume(()), CoroutineResult::Yield(1));
    let payload = catch_unwind(AssertUnwindSafe(|| co.force_unwind())).unwrap_err();
    assert_eq!(panic_message(&*payload), "replacement panic");
    assert!(co.done());
}

#[test]
fn dropping_unstarted_coroutine_drops_closure_once_without_running() {
    let drops = counter();
    let ran = Rc::new(Cell::new(false));
    let captured = Counted(drops.clone());
    let r = ran.clone();
    let co: Coroutine<(), (), ()> = Coroutine::new(move |_, ()| {
        r.set(true);
        drop(captured);
    });
    assert!(!co.started());
    assert!(!co.done());
    drop(co);
    assert_eq!(drops.get(), 1);
    assert!(!ran.get());
}

#[test]
fn force_unwind_on_unstarted_coroutine_drops_closure_and_marks_done() {
    let drops = counter();
    let captured = Counted(drops.clone());
    let mut co: Coroutine<(), (), ()> = Coroutine::new(move |_, ()| drop(captured));
    co.force_unwind();
    assert_eq!(drops.get(), 1);
    assert!(co.done());
    drop(co);
    assert_eq!(drops.get(), 1, "closure must not be dropped twice");
}

#[test]
fn dropping_finished_coroutine_does_nothing_more() {
    let drops = counter();
    let captured = Counted(drops.clone());
    let mut co: Coroutine<(), u8, u8> = Coroutine::new(move |y, ()| {
        let _c = captured;
        y.suspend(1);
        2
    });
    assert_eq!(co.resume(()), CoroutineResult::Yield(1));
    assert_eq!(co.resume(()), CoroutineResult::Return(2));
    assert_eq!(drops.get(), 1);
    assert!(co.done());
    drop(co);
    assert_eq!(drops.get(), 1);
}

#[test]
fn returned_value_is_dropped_exactly_once_by_receiver() {
    let drops = counter();
    let d = drops.clone();
    let mut co: Coroutine<(), Counted, Counted> = Coroutine::new(move |y, ()| {
        y.suspend(Counted(d.clone()));
        Counted(d)
    });
    let a = co.resume(());
    assert_eq!(drops.get(), 0);
    drop(a);
    assert_eq!(drops.get(), 1);
    let b = co.resume(());
    assert_eq!(drops.get(), 1);
    drop(b);
    assert_eq!(drops.get(), 2);
}

#[test]
fn inputs_are_dropped_exactly_once() {
    let drops = counter();
    let mut co: Coroutine<Counted, (), ()> = Coroutine::new(|y, first| {
        drop(first);
        let second = y.suspend(());
        drop(second);
    });
    co.resume(Counted(drops.clone()));
    assert_eq!(drops.get(), 1);
    co.resume(Counted(drops.clone()));
    assert_eq!(drops.get(), 2);
}

#[test]
fn resume_after_return_panics_with_message() {
    let mut co: Coroutine<(), (), u32> = Coroutine::new(|_, ()| 1);
    assert_eq!(co.resume(()), CoroutineResult::Return(1));
    let payload = catch_unwind(AssertUnwindSafe(|| co.resume(()))).unwrap_err();
    assert_eq!(
        panic_message(&*payload),
        "switchback: resume called on a coroutine that has already finished"
    );
}

#[test]
#[should_panic(expected = "resume called on a coroutine that has already finished")]
fn resume_after_return_should_panic() {
    let mut co: Coroutine<(), (), ()> = Coroutine::new(|_, ()| ());
    co.resume(());
    co.resume(());
}

#[test]
#[should_panic(expected = "into_stack called on a coroutine that has not finished")]
fn into_stack_of_unstarted_panics() {
    let co: Coroutine<(), (), ()> = Coroutine::new(|_, ()| ());
    let _ = co.into_stack();
}

#[test]
#[cfg(feature = "unwind")]
fn into_stack_of_suspended_panics_and_still_unwinds() {
    let drops = counter();
    let d = drops.clone();
    let mut co: Coroutine<(), (), ()> = Coroutine::new(move |y, ()| {
        let _c = Counted(d);
        y.suspend(());
    });
    co.resume(());
    let payload = catch_unwind(AssertUnwindSafe(|| co.into_stack())).unwrap_err();
    assert_eq!(
        panic_message(&*payload),
        "switchback: into_stack called on a coroutine that has not finished; \
         run it to completion or call force_unwind first"
    );
    // The coroutine was dropped while the panic unwound out of into_stack.
    assert_eq!(drops.get(), 1);
}

#[test]
fn into_stack_returns_same_reusable_stack() {
    let stack = DefaultStack::new(64 * 1024).unwrap();
    let (base, limit) = (stack.base(), stack.limit());
    let mut co: Coroutine<u32, u32, u32, _> = Coroutine::with_stack(stack, |y, x| y.suspend(x) + 1);
    assert_eq!(co.resume(1), CoroutineResult::Yield(1));
    assert_eq!(co.resume(2), CoroutineResult::Return(3));
    let mut stack = co.into_stack();
    assert_eq!((stack.base(), stack.limit()), (base, limit));
    for round in 0..5u32 {
        let mut co: Coroutine<u32, u32, u32, _> =
            Coroutine::with_stack(stack, move |y, x| y.suspend(x + round) * 2);
        assert_eq!(co.resume(10), CoroutineResult::Yield(10 + round));
        assert_eq!(co.resume(4), CoroutineResult::Return(8));
        stack = co.into_stack();
        assert_eq!((stack.base(), stack.limit()), (base, limit));
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "under Miri a coroutine reset while suspended keeps its thread blocked, which Miri reports as a leak at exit"
)]
fn force_reset_marks_done() {
    let mut co: Coroutine<(), u32, ()> = Coroutine::new(|y, ()| {
        // Nothing with a destructor lives on the stack across the suspend.
        y.suspend(1);
        y.suspend(2);
    });
    assert_eq!(co.resume(()), CoroutineResult::Yield(1));
    // SAFETY: nothing on the coroutine's stack needs dropping.
    unsafe { co.force_reset() };
    assert!(co.done());
    let payload = catch_unwind(AssertUnwindSafe(|| co.resume(()))).unwrap_err();
    assert!(panic_message(&*payload).contains("already finished"));
    // A reset coroutine gives its stack back.
    let stack = co.into_stack();
    let mut co2: Coroutine<(), (), u8, _> = Coroutine::with_stack(stack, |_, ()| 8);
    assert_eq!(co2.resume(()), CoroutineResult::Return(8));
}

#[test]
fn started_and_done_transitions() {
    let mut co: Coroutine<(), (), ()> = Coroutine::new(|y, ()| {
        y.suspend(());
        y.suspend(());
    });
    assert_eq!((co.started(), co.done()), (false, false));
    co.resume(());
    assert_eq!((co.started(), co.done()), (true, false));
    co.resume(());
    assert_eq!((co.started(), co.done()), (true, false));
    co.resume(());
    assert_eq!((co.started(), co.done()), (true, true));
    let dbg = format!("{co:?}");
    assert!(
        dbg.contains("started: true") && dbg.contains("done: true"),
        "{dbg}"
    );
}

#[test]
#[cfg(feature = "unwind")]
fn unwinding_nested_suspended_coroutines() {
    // An outer coroutine owns a suspended inner one and is itself suspended;
    // dropping the outer unwinds both.
    let drops = counter();
    let d = drops.clone();
    let mut outer: Coroutine<(), u32, ()> = Coroutine::new(move |y, ()| {
        let d2 = d.clone();
        let mut inner: Coroutine<(), u32, ()> = Coroutine::new(move |iy, ()| {
            let _c = Counted(d2);
            iy.suspend(10);
        });
        let _c = Counted(d.clone());
        let v = inner.resume(()).as_yield().unwrap();
        y.suspend(v);
    });
    assert_eq!(outer.resume(()), CoroutineResult::Yield(10));
    drop(outer);
    assert_eq!(drops.get(), 2);
}

#[test]
#[cfg(feature = "unwind")]
fn value_yielded_during_forced_unwind_is_dropped_once() {
    let drops = counter();
    let d = drops.clone();
    let mut co: Coroutine<(), Counted, ()> = Coroutine::new(move |y, ()| {
        let r = catch_unwind(AssertUnwindSafe(|| y.suspend(Counted(d.clone()))));
        assert!(r.is_err());
        // Suspending during the forced unwind: the value must still be
        // dropped (by force_unwind), exactly once.
        y.suspend(Counted(d.clone()));
        unreachable!();
    });
    let first = co.resume(());
    drop(first);
    assert_eq!(drops.get(), 1);
    co.force_unwind();
    assert_eq!(drops.get(), 2);
    assert!(co.done());
}

#[test]
#[cfg(feature = "unwind")]
fn value_returned_after_catching_forced_unwind_is_dropped_once() {
    let drops = counter();
    let d = drops.clone();
    let mut co: Coroutine<(), (), Counted> = Coroutine::new(move |y, ()| {
        let r = catch_unwind(AssertUnwindSafe(|| y.suspend(())));
        assert!(r.is_err());
        Counted(d)
    });
    co.resume(());
    co.force_unwind();
    assert!(co.done());
    assert_eq!(drops.get(), 1);
}

#[test]
#[cfg(feature = "unwind")]
#[cfg_attr(
    miri,
    ignore = "under Miri the coroutine runs on a thread of its own, whose thread-locals the test cannot read"
)]
fn destructors_see_panicking_during_forced_unwind_only() {
    thread_local! {
        static SEEN: Cell<Option<bool>> = const { Cell::new(None) };
    }
    struct Records;
    impl Drop for Records {
        fn drop(&mut self) {
            SEEN.with(|s| s.set(Some(std::thread::panicking())));
        }
    }
    // Normal completion: not panicking.
    let mut co: Coroutine<(), (), ()> = Coroutine::new(|y, ()| {
        let _r = Records;
        y.suspend(());
    });
    co.resume(());
    co.resume(());
    assert_eq!(SEEN.with(Cell::get), Some(false));
    // Forced unwind: the destructor runs as part of an unwind.
    SEEN.with(|s| s.set(None));
    let mut co: Coroutine<(), (), ()> = Coroutine::new(|y, ()| {
        let _r = Records;
        y.suspend(());
    });
    co.resume(());
    drop(co);
    assert_eq!(SEEN.with(Cell::get), Some(true));
    // And the parent is not left panicking.
    assert!(!std::thread::panicking());
}
