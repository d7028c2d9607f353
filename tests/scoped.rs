//! `ScopedCoroutine`: borrowing closures and stacks, and unwinding at scope end.

use std::cell::Cell;

use switchback::stack::{DefaultStack, Stack};
use switchback::{CoroutineResult, ScopedCoroutine, Yielder};

struct SetOnDrop<'a>(&'a Cell<u32>);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn borrowing_closure_mutates_a_local() {
    let mut total = 0u64;
    let mut log = Vec::new();
    let co = ScopedCoroutine::new(|y: &Yielder<u64, ()>, mut x: u64| {
        while x != 0 {
            total += x;
            log.push(x);
            x = y.suspend(());
        }
    });
    let finished = co.scope(|mut co| {
        for i in [3, 4, 5, 0] {
            co.as_mut().resume(i);
        }
        co.done()
    });
    assert!(finished);
    assert_eq!(total, 12);
    assert_eq!(log, vec![3, 4, 5]);
}

#[test]
fn borrowed_values_as_input_yield_and_return() {
    let words = ["alpha".to_string(), "beta".to_string()];
    let storage = String::from("storage");
    let co = ScopedCoroutine::new(|y: &Yielder<&String, &str>, first: &String| {
        let second = y.suspend(first.as_str());
        let _ = y.suspend(&second[1..]);
        storage.as_str()
    });
    co.scope(|mut co| {
        assert_eq!(
            co.as_mut().resume(&words[0]),
            CoroutineResult::Yield("alpha")
        );
        assert_eq!(co.as_mut().resume(&words[1]), CoroutineResult::Yield("eta"));
        assert_eq!(co.resume(&words[0]), CoroutineResult::Return("storage"));
    });
}

#[test]
fn borrowed_stack_reused_several_times() {
    let mut stack = DefaultStack::new(64 * 1024).unwrap();
    let (base, limit) = (stack.base(), stack.limit());
    let mut results = Vec::new();
    for round in 0..10u32 {
        let mut acc = 0u32;
        let co = ScopedCoroutine::with_stack(&mut stack, |y: &Yielder<u32, u32>, x: u32| {
            acc += x;
            let x = y.suspend(acc);
            acc += x;
            acc * round
        });
        let r = co.scope(|mut co| {
            assert_eq!(co.as_mut().resume(round), CoroutineResult::Yield(round));
            co.resume(1).as_return().unwrap()
        });
        results.push(r);
        assert_eq!(acc, round + 1);
    }
    assert_eq!(results, (0..10).map(|r| (r + 1) * r).collect::<Vec<_>>());
    assert_eq!((stack.base(), stack.limit()), (base, limit));
}

#[test]
fn borrowed_stack_is_free_again_after_scope() {
    // After `scope` consumed the coroutine, the borrowed stack is free again
    // and can host an owned coroutine.
    let mut stack = DefaultStack::new(64 * 1024).unwrap();
    let co = ScopedCoroutine::with_stack(&mut stack, |_: &Yielder<(), ()>, ()| 5u8);
    assert_eq!(co.scope(|mut co| co.resume(()).as_return()), Some(5));
    let mut owned: switchback::Coroutine<(), (), u8, _> =
        switchback::Coroutine::with_stack(stack, |_, ()| 6);
    assert_eq!(owned.resume(()).as_return(), Some(6));
}

#[test]
#[should_panic(expected = "into_stack called on a coroutine that has not finished")]
fn scoped_into_stack_never_run_panics() {
    let co = ScopedCoroutine::with_stack(
        DefaultStack::new(64 * 1024).unwrap(),
        |_: &Yielder<(), ()>, ()| (),
    );
    let _ = co.into_stack();
}

#[test]
#[cfg(feature = "unwind")]
fn scope_unwinds_suspended_coroutine_before_returning() {
    let drops = Cell::new(0);
    let co = ScopedCoroutine::new(|y: &Yielder<(), u32>, ()| {
        let _guard = SetOnDrop(&drops);
        y.suspend(1);
        unreachable!("never resumed");
    });
    let seen_in_scope = co.scope(|mut co| {
        assert_eq!(co.as_mut().resume(()), CoroutineResult::Yield(1));
        assert!(!co.done());
        drops.get()
    });
    assert_eq!(seen_in_scope, 0, "not dropped while the scope runs");
    assert_eq!(drops.get(), 1, "dropped before scope returned");
}

#[test]
#[cfg(feature = "unwind")]
fn scope_unwinds_when_the_scope_closure_panics() {
    let drops = Cell::new(0);
    let co = ScopedCoroutine::new(|y: &Yielder<(), ()>, ()| {
        let _guard = SetOnDrop(&drops);
        y.suspend(());
    });
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        co.scope(|mut co| {
            co.as_mut().resume(());
            panic!("scope body");
        })
    }));
    assert!(r.is_err());
    assert_eq!(drops.get(), 1);
}

#[test]
fn scope_drops_unstarted_closure() {
    let drops = Cell::new(0);
    let guard = SetOnDrop(&drops);
    let ran = Cell::new(false);
    let co = ScopedCoroutine::new(|_: &Yielder<(), ()>, ()| {
        ran.set(true);
        drop(guard);
    });
    co.scope(|co| assert!(!co.started()));
    assert_eq!(drops.get(), 1);
    assert!(!ran.get());
}

#[test]
fn unscoped_drop_of_scoped_coroutine_drops_closure() {
    let drops = Cell::new(0);
    let guard = SetOnDrop(&drops);
    let co = ScopedCoroutine::new(|_: &Yielder<(), ()>, ()| drop(guard));
    drop(co);
    assert_eq!(drops.get(), 1);
}

#[test]
fn scoped_ref_methods() {
    let co = ScopedCoroutine::new(|y: &Yielder<(), ()>, ()| {
        y.suspend(());
        y.suspend(());
    });
    co.scope(|mut co| {
        assert!(!co.started() && !co.done());
        co.as_mut().resume(());
        assert!(co.started() && !co.done());
        let h = co.trap_handler();
        let local = 0u8;
        assert!(!h.stack_ptr_in_bounds(&local as *const u8 as usize));
        #[cfg(feature = "unwind")]
        {
            co.force_unwind();
            assert!(co.done());
        }
        #[cfg(not(feature = "unwind"))]
        {
            // SAFETY: nothing on the coroutine's stack needs dropping.
            unsafe { co.force_reset() };
            assert!(co.done());
        }
    });
}

#[test]
fn nested_scoped_coroutines_share_borrows() {
    let mut counter = 0u32;
    let outer = ScopedCoroutine::new(|y: &Yielder<(), u32>, ()| {
        let inner = ScopedCoroutine::new(|iy: &Yielder<(), ()>, ()| {
            counter += 1;
            iy.suspend(());
            counter += 10;
        });
        inner.scope(|mut c| {
            c.as_mut().resume(());
            c.as_mut().resume(());
        });
        y.suspend(counter);
        counter += 100;
        counter
    });
    let r = outer.scope(|mut co| {
        assert_eq!(co.as_mut().resume(()), CoroutineResult::Yield(11));
        co.resume(()).as_return().unwrap()
    });
    assert_eq!(r, 111);
    assert_eq!(counter, 111);
}

#[test]
#[cfg(feature = "unwind")]
#[allow(clippy::forget_non_drop)]
fn forgetting_the_ref_inside_scope_still_unwinds_at_scope_end() {
    let drops = Cell::new(0);
    let co = ScopedCoroutine::new(|y: &Yielder<(), ()>, ()| {
        let _guard = SetOnDrop(&drops);
        y.suspend(());
    });
    co.scope(|mut r| {
        r.as_mut().resume(());
        std::mem::forget(r);
    });
    assert_eq!(drops.get(), 1);
}
