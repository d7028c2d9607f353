//! Panics inside coroutines, `on_parent_stack` and `on_stack` unwind their stack and continue in the caller.
#![cfg(feature = "unwind")]

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use switchback::stack::DefaultStack;
use switchback::{on_stack, Coroutine, CoroutineResult, Yielder};

mod common;
use common::{panic_message, run_child};

/// Sets its flag when dropped.
struct DropFlag(Rc<Cell<u32>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

#[inline(never)]
fn nested_panic(depth: u32, drops: &Rc<Cell<u32>>) {
    let _flag = DropFlag(drops.clone());
    if depth == 0 {
        panic!("boom at the bottom");
    }
    nested_panic(depth - 1, drops);
}

#[test]
fn panic_unwinds_coroutine_stack_and_continues_in_caller() {
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let mut co = Coroutine::new(move |yielder, ()| {
        let _outer = DropFlag(d.clone());
        yielder.suspend(1);
        nested_panic(9, &d);
        2
    });
    assert_eq!(co.resume(()), CoroutineResult::Yield(1));
    assert_eq!(drops.get(), 0);
    let result = catch_unwind(AssertUnwindSafe(|| co.resume(())));
    let payload = result.expect_err("the panic must continue in the caller of resume");
    assert_eq!(panic_message(&*payload), "boom at the bottom");
    // 10 nested frames plus the outer flag.
    assert_eq!(drops.get(), 11);
    assert!(co.done());
    assert!(co.started());
    // Dropping the finished coroutine does nothing more.
    drop(co);
    assert_eq!(drops.get(), 11);
}

#[test]
fn panic_on_first_resume() {
    let mut co: Coroutine<u32, (), ()> = Coroutine::new(|_, x| panic!("first input was {x}"));
    let payload = catch_unwind(AssertUnwindSafe(|| co.resume(5))).unwrap_err();
    assert_eq!(panic_message(&*payload), "first input was 5");
    assert!(co.done());
}

#[test]
fn panic_payload_of_any_type_is_preserved() {
    #[derive(Debug, PartialEq)]
    struct Custom(u64, String);
    let mut co: Coroutine<(), (), ()> =
        Coroutine::new(|_, ()| std::panic::panic_any(Custom(42, "payload".into())));
    let payload = catch_unwind(AssertUnwindSafe(|| co.resume(()))).unwrap_err();
    assert_eq!(
        payload.downcast_ref::<Custom>(),
        Some(&Custom(42, "payload".into()))
    );
}

#[test]
fn resume_after_panic_panics_with_done_message() {
    let mut co: Coroutine<(), (), ()> = Coroutine::new(|_, ()| panic!("first"));
    let _ = catch_unwind(AssertUnwindSafe(|| co.resume(())));
    assert!(co.done());
    let payload = catch_unwind(AssertUnwindSafe(|| co.resume(()))).unwrap_err();
    assert_eq!(
        panic_message(&*payload),
        "switchback: resume called on a coroutine that has already finished"
    );
}

#[test]
fn stack_is_reusable_after_panic() {
    let mut co: Coroutine<(), (), u32> =
        Coroutine::with_stack(DefaultStack::new(64 * 1024).unwrap(), |_, ()| panic!("x"));
    assert!(catch_unwind(AssertUnwindSafe(|| co.resume(()))).is_err());
    let stack = co.into_stack();
    let mut co2: Coroutine<(), u32, u32, _> = Coroutine::with_stack(stack, |y, ()| {
        y.suspend(1);
        2
    });
    assert_eq!(co2.resume(()), CoroutineResult::Yield(1));
    assert_eq!(co2.resume(()), CoroutineResult::Return(2));
}

#[test]
fn panic_inside_on_parent_stack_propagates() {
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let mut co = Coroutine::new(move |yielder: &switchback::Yielder<(), ()>, ()| {
        let _in_coroutine = DropFlag(d.clone());
        let r: u32 = yielder.on_parent_stack(|| {
            let _guard = ArcFlag;
            panic!("from the parent's stack");
        });
        r
    });
    ArcFlag::reset();
    let payload = catch_unwind(AssertUnwindSafe(|| co.resume(()))).unwrap_err();
    assert_eq!(panic_message(&*payload), "from the parent's stack");
    assert_eq!(ArcFlag::count(), 1, "destructor on the parent stack ran");
    assert_eq!(drops.get(), 1, "destructor on the coroutine stack ran");
    assert!(co.done());
}

#[test]
fn panic_inside_on_parent_stack_can_be_caught_in_coroutine() {
    let mut co = Coroutine::new(|yielder: &switchback::Yielder<(), u32>, ()| {
        let caught = catch_unwind(AssertUnwindSafe(|| {
            yielder.on_parent_stack(|| -> u32 { panic!("inner") })
        }));
        let msg = panic_message(&*caught.unwrap_err());
        yielder.suspend(7);
        msg
    });
    assert_eq!(co.resume(()), CoroutineResult::Yield(7));
    assert_eq!(co.resume(()), CoroutineResult::Return("inner".to_string()));
}

#[test]
fn panic_inside_on_stack_propagates() {
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let stack = DefaultStack::new(128 * 1024).unwrap();
    let payload = catch_unwind(AssertUnwindSafe(|| {
        on_stack(stack, || {
            let _flag = DropFlag(d.clone());
            nested_panic(3, &d);
        })
    }))
    .unwrap_err();
    assert_eq!(panic_message(&*payload), "boom at the bottom");
    assert_eq!(drops.get(), 5);
    // The thread is still healthy afterwards.
    let stack = DefaultStack::new(128 * 1024).unwrap();
    assert_eq!(on_stack(stack, || 5 + 5), 10);
}

#[test]
fn panic_inside_on_stack_inside_coroutine_propagates_to_resume() {
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let mut co = Coroutine::new(move |_: &switchback::Yielder<(), ()>, ()| {
        let _flag = DropFlag(d.clone());
        on_stack(DefaultStack::new(64 * 1024).unwrap(), || {
            let _inner = DropFlag(d.clone());
            panic!("deep");
        })
    });
    let payload = catch_unwind(AssertUnwindSafe(|| co.resume(()))).unwrap_err();
    assert_eq!(panic_message(&*payload), "deep");
    assert_eq!(drops.get(), 2);
    assert!(co.done());
}

#[test]
fn panic_caught_inside_coroutine_does_not_leave_it() {
    let mut co: Coroutine<(), u32, u32> = Coroutine::new(|y, ()| {
        let r = catch_unwind(|| -> u32 { panic!("contained") });
        assert!(r.is_err());
        y.suspend(1);
        3
    });
    assert_eq!(co.resume(()), CoroutineResult::Yield(1));
    assert_eq!(co.resume(()), CoroutineResult::Return(3));
}

#[test]
fn panic_in_nested_coroutine_propagates_through_outer() {
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let mut outer: Coroutine<(), (), ()> = Coroutine::new(move |_, ()| {
        let _outer_flag = DropFlag(d.clone());
        let d2 = d.clone();
        let mut inner: Coroutine<(), (), ()> = Coroutine::new(move |_, ()| {
            let _inner_flag = DropFlag(d2);
            panic!("inner coroutine");
        });
        inner.resume(());
    });
    let payload = catch_unwind(AssertUnwindSafe(|| outer.resume(()))).unwrap_err();
    assert_eq!(panic_message(&*payload), "inner coroutine");
    assert_eq!(drops.get(), 2);
    assert!(outer.done());
}

/// A drop counter usable from `Send` closures (on_parent_stack requires Send).
struct ArcFlag;

thread_local! {
    static ARC_FLAG_DROPS: Cell<u32> = const { Cell::new(0) };
}

impl ArcFlag {
    fn reset() {
        ARC_FLAG_DROPS.with(|c| c.set(0));
    }
    fn count() -> u32 {
        ARC_FLAG_DROPS.with(|c| c.get())
    }
}

impl Drop for ArcFlag {
    fn drop(&mut self) {
        ARC_FLAG_DROPS.with(|c| c.set(c.get() + 1));
    }
}

/// Suspends the coroutine from its destructor, yielding 7.
struct SuspendsOnDrop<'a>(&'a Yielder<(), u32>);

impl Drop for SuspendsOnDrop<'_> {
    fn drop(&mut self) {
        self.0.suspend(7);
    }
}

/// A coroutine that panics with a `SuspendsOnDrop` on its stack.
fn suspends_while_panicking() -> Coroutine<(), u32, ()> {
    Coroutine::new(|yielder, ()| {
        let _suspends = SuspendsOnDrop(yielder);
        panic!("the coroutine panics");
    })
}

#[test]
#[cfg_attr(
    miri,
    ignore = "under Miri the coroutine unwinds on a thread of its own, so the resumer's thread does not count as panicking"
)]
fn a_destructor_suspending_during_a_panic_leaves_the_unwind_to_the_next_resume() {
    let mut co = suspends_while_panicking();
    assert_eq!(co.resume(()), CoroutineResult::Yield(7));
    // The unwind is half done: the thread counts as panicking meanwhile.
    let panicking_while_suspended = std::thread::panicking();
    let payload = catch_unwind(AssertUnwindSafe(|| co.resume(()))).unwrap_err();
    assert!(panicking_while_suspended);
    assert_eq!(panic_message(&*payload), "the coroutine panics");
    assert!(co.done());
    assert!(!std::thread::panicking());
}

#[test]
#[cfg_attr(miri, ignore = "runs a child process, which Miri cannot")]
fn dropping_a_coroutine_a_destructor_suspended_during_a_panic_aborts() {
    const CHILD: &str = "SWITCHBACK_DROP_SUSPENDED_MID_PANIC";
    if std::env::var_os(CHILD).is_some() {
        let mut co = suspends_while_panicking();
        assert_eq!(co.resume(()), CoroutineResult::Yield(7));
        // The forced unwind leaves the destructor, which runs during the
        // panic's unwind: the runtime aborts.
        drop(co);
        std::process::exit(0);
    }
    let (status, stderr) = run_child(
        "dropping_a_coroutine_a_destructor_suspended_during_a_panic_aborts",
        CHILD,
    );
    assert!(!status.success(), "{stderr}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGABRT), "{stderr}");
    }
}
