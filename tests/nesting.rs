//! Coroutines resuming coroutines: deep nesting, changing parents, yielding across levels.

use std::cell::RefCell;
use std::hint::black_box;
use std::rc::Rc;

use switchback::stack::DefaultStack;
use switchback::{Coroutine, CoroutineResult, Yielder};

type Nested = Coroutine<u64, u64, u64, DefaultStack>;

thread_local! {
    /// How many levels of `chain` have been dropped on this thread.
    static LEVELS_DROPPED: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

struct LevelGuard;

impl Drop for LevelGuard {
    fn drop(&mut self) {
        LEVELS_DROPPED.with(|c| c.set(c.get() + 1));
    }
}

/// A chain of `depth` coroutines, each running the next one: the innermost
/// yields `input + 1` and returns `input * 2`; every level adds 1 to what it
/// forwards upwards.
fn chain(depth: u32) -> Nested {
    Coroutine::with_stack(
        DefaultStack::new(64 * 1024).unwrap(),
        move |y: &Yielder<u64, u64>, input: u64| {
            let _guard = LevelGuard;
            if depth == 0 {
                let next = y.suspend(input + 1);
                return next * 2;
            }
            let mut child = chain(depth - 1);
            let mut input = input;
            loop {
                match child.resume(input) {
                    CoroutineResult::Yield(v) => input = y.suspend(v + 1),
                    CoroutineResult::Return(v) => return v + 1,
                }
            }
        },
    )
}

#[test]
#[cfg_attr(
    miri,
    ignore = "1001 coroutine threads under Miri, each counting its drop in its own thread-local"
)]
fn one_thousand_nested_coroutines() {
    LEVELS_DROPPED.with(|c| c.set(0));
    let mut top = chain(1000);
    // The innermost yields 5 + 1, each of the 1000 outer levels adds 1.
    assert_eq!(top.resume(5), CoroutineResult::Yield(1006));
    assert_eq!(LEVELS_DROPPED.with(|c| c.get()), 0);
    assert_eq!(top.resume(7), CoroutineResult::Return(14 + 1000));
    assert!(top.done());
    assert_eq!(LEVELS_DROPPED.with(|c| c.get()), 1001);
}

#[test]
#[cfg(feature = "unwind")]
#[cfg_attr(
    miri,
    ignore = "1001 coroutine threads under Miri, each counting its drop in its own thread-local"
)]
fn dropping_a_thousand_nested_suspended_coroutines() {
    LEVELS_DROPPED.with(|c| c.set(0));
    let mut top = chain(1000);
    assert_eq!(top.resume(0), CoroutineResult::Yield(1001));
    assert_eq!(LEVELS_DROPPED.with(|c| c.get()), 0);
    // Unwinds all 1001 stacks (each level's child is a local of its parent).
    drop(top);
    assert_eq!(LEVELS_DROPPED.with(|c| c.get()), 1001);
}

#[test]
fn coroutine_created_in_one_coroutine_resumed_from_another() {
    type Inner = Coroutine<u32, u32, u32>;
    // The factory creates and starts a coroutine, then hands it out.
    let mut factory: Coroutine<(), Inner, ()> = Coroutine::new(|y, ()| {
        let mut inner: Inner = Coroutine::new(|iy, mut x: u32| {
            for _ in 0..3 {
                x = iy.suspend(x * 10);
            }
            x
        });
        assert_eq!(inner.resume(1), CoroutineResult::Yield(10));
        y.suspend(inner);
    });
    let inner = factory.resume(()).as_yield().unwrap();
    let shared = Rc::new(RefCell::new(inner));
    let s = shared.clone();
    // A second coroutine resumes it.
    let mut user: Coroutine<(), u32, u32> = Coroutine::new(move |y, ()| {
        let v = s.borrow_mut().resume(2).as_yield().unwrap();
        y.suspend(v);
        let v = s.borrow_mut().resume(3).as_yield().unwrap();
        v + 1
    });
    assert_eq!(user.resume(()), CoroutineResult::Yield(20));
    // The factory is still suspended; let it finish.
    assert!(factory.resume(()).as_return().is_some());
    assert_eq!(user.resume(()), CoroutineResult::Return(31));
    // And main finishes it.
    assert_eq!(shared.borrow_mut().resume(4), CoroutineResult::Return(4));
    assert!(shared.borrow().done());
}

/// Resumes `co` from `depth` frames deeper than the caller and returns the
/// address of a local in the resuming frame and what the coroutine saw.
#[inline(never)]
fn resume_at_depth(co: &mut Coroutine<(), (usize, u32), ()>, depth: u32) -> (usize, (usize, u32)) {
    let pad = black_box([depth as u8; 256]);
    if depth > 0 {
        let r = resume_at_depth(co, depth - 1);
        black_box(&pad);
        return r;
    }
    let here = black_box(&pad) as *const _ as usize;
    (here, co.resume(()).as_yield().unwrap())
}

#[test]
#[cfg_attr(
    miri,
    ignore = "checks which stack on_parent_stack runs on, which Miri's thread-per-coroutine switch does not show"
)]
fn resumed_from_different_depths() {
    // The coroutine reports where on_parent_stack runs: just below the frame
    // that resumed it, so the link follows whoever resumed it last.
    let mut co: Coroutine<(), (usize, u32), ()> = Coroutine::new(|y, ()| {
        for i in 0.. {
            let addr = y.on_parent_stack(|| {
                let local = black_box(0u8);
                &local as *const u8 as usize
            });
            y.suspend((addr, i));
        }
    });
    let mut previous = None;
    for (i, depth) in [0u32, 50, 5, 200, 0, 17].into_iter().enumerate() {
        let (resumer, (parent_local, seen)) = resume_at_depth(&mut co, depth);
        assert_eq!(seen, i as u32);
        assert!(
            parent_local < resumer && resumer - parent_local < 64 * 1024,
            "on_parent_stack ran at {parent_local:#x}, the resumer's frame is at {resumer:#x}"
        );
        if let Some((prev_depth, prev_local)) = previous {
            if depth > prev_depth {
                assert!(parent_local < prev_local);
            }
        }
        previous = Some((depth, parent_local));
    }
    // Without unwind, dropping a suspended coroutine aborts.
    #[cfg(not(feature = "unwind"))]
    std::mem::forget(co);
}

#[test]
fn resumed_alternately_by_two_parent_coroutines() {
    let worker: Rc<RefCell<Coroutine<u32, u32, u32>>> =
        Rc::new(RefCell::new(Coroutine::new(|y, mut x| {
            let mut sum = 0;
            while x != 0 {
                sum += x;
                x = y.suspend(sum);
            }
            sum
        })));
    let make_parent = |w: Rc<RefCell<Coroutine<u32, u32, u32>>>, mult: u32| {
        Coroutine::<(), u32, (), _>::new(move |y, ()| loop {
            let v = w.borrow_mut().resume(mult).as_yield().unwrap();
            y.suspend(v);
        })
    };
    let mut a = make_parent(worker.clone(), 1);
    let mut b = make_parent(worker.clone(), 100);
    assert_eq!(a.resume(()), CoroutineResult::Yield(1));
    assert_eq!(b.resume(()), CoroutineResult::Yield(101));
    assert_eq!(a.resume(()), CoroutineResult::Yield(102));
    assert_eq!(b.resume(()), CoroutineResult::Yield(202));
    assert_eq!(worker.borrow_mut().resume(0), CoroutineResult::Return(202));
    #[cfg(not(feature = "unwind"))]
    {
        // Without unwind, dropping suspended coroutines aborts.
        std::mem::forget(a);
        std::mem::forget(b);
    }
}

#[test]
fn yielding_across_nested_levels_interleaved() {
    // The outer coroutine runs an inner one and interleaves its own yields
    // with the inner one's, tagged by level.
    let mut outer: Coroutine<u32, (u8, u32), u32> = Coroutine::new(|y, x| {
        let mut inner: Coroutine<u32, u32, u32> = Coroutine::new(|iy, mut x| {
            for _ in 0..3 {
                x = iy.suspend(x + 1000);
            }
            x + 2000
        });
        let mut x = y.suspend((0, x));
        loop {
            match inner.resume(x) {
                CoroutineResult::Yield(v) => {
                    x = y.suspend((1, v));
                    x = y.suspend((0, x));
                }
                CoroutineResult::Return(v) => return v,
            }
        }
    });
    assert_eq!(outer.resume(1), CoroutineResult::Yield((0, 1)));
    assert_eq!(outer.resume(2), CoroutineResult::Yield((1, 1002)));
    assert_eq!(outer.resume(3), CoroutineResult::Yield((0, 3)));
    assert_eq!(outer.resume(4), CoroutineResult::Yield((1, 1004)));
    assert_eq!(outer.resume(5), CoroutineResult::Yield((0, 5)));
    assert_eq!(outer.resume(6), CoroutineResult::Yield((1, 1006)));
    assert_eq!(outer.resume(7), CoroutineResult::Yield((0, 7)));
    assert_eq!(outer.resume(8), CoroutineResult::Return(2008));
}

#[test]
#[cfg_attr(
    miri,
    ignore = "checks which stack on_parent_stack runs on, which Miri's thread-per-coroutine switch does not show"
)]
fn on_parent_stack_from_nested_coroutine_runs_on_direct_parent() {
    use switchback::stack::Stack;
    // The inner coroutine's on_parent_stack runs on the outer coroutine's
    // stack, not on main's.
    let outer_stack = DefaultStack::new(256 * 1024).unwrap();
    let (base, limit) = (outer_stack.base().get(), outer_stack.limit().get());
    let mut outer: Coroutine<(), (), usize, _> = Coroutine::with_stack(outer_stack, |_, ()| {
        let mut inner: Coroutine<(), (), usize> = Coroutine::new(|iy, ()| {
            iy.on_parent_stack(|| {
                let l = black_box(0u8);
                &l as *const u8 as usize
            })
        });
        inner.resume(()).as_return().unwrap()
    });
    let on_parent = outer.resume(()).as_return().unwrap();
    assert!(
        (limit..base).contains(&on_parent),
        "{on_parent:#x} not in the outer stack [{limit:#x}, {base:#x})"
    );
}

#[test]
fn suspended_coroutine_can_be_moved_around() {
    // The Coroutine value is only a handle: moving it while suspended (into a
    // Box, through a reallocating Vec) must not disturb the coroutine.
    let make = |k: u64| -> Coroutine<u64, u64, u64> {
        Coroutine::new(move |y, mut x| {
            let local = [k; 16];
            for _ in 0..3 {
                x = y.suspend(x + local[15]);
            }
            x * k
        })
    };
    let mut boxed = Box::new(make(1));
    assert_eq!(boxed.resume(10), CoroutineResult::Yield(11));
    let mut v: Vec<Coroutine<u64, u64, u64>> = Vec::new();
    v.push(*boxed);
    for k in 2..50 {
        let mut c = make(k);
        assert_eq!(c.resume(0), CoroutineResult::Yield(k));
        v.push(c); // reallocates now and then
    }
    let mut first = v.remove(0);
    assert_eq!(first.resume(20), CoroutineResult::Yield(21));
    v.insert(10, first);
    for (i, c) in v.iter_mut().enumerate() {
        let k = if i == 10 {
            1
        } else if i < 10 {
            i as u64 + 2
        } else {
            i as u64 + 1
        };
        // The first coroutine was resumed once more than the others.
        if i != 10 {
            assert_eq!(c.resume(0), CoroutineResult::Yield(k));
        }
        assert_eq!(c.resume(0), CoroutineResult::Yield(k));
        assert_eq!(c.resume(7), CoroutineResult::Return(7 * k));
    }
}

#[test]
#[cfg(feature = "unwind")]
fn destructor_running_a_coroutine_during_forced_unwind() {
    use std::cell::Cell;
    use std::rc::Rc;
    // The result travels in an `Rc`, not a thread-local: under Miri the
    // destructor runs on the outer coroutine's own thread.
    struct RunsCoroutineOnDrop(Rc<Cell<u64>>);
    impl Drop for RunsCoroutineOnDrop {
        fn drop(&mut self) {
            // Runs while the outer coroutine's stack is being force-unwound.
            let mut c: Coroutine<u64, u64, u64> = Coroutine::new(|y, x| y.suspend(x + 1) * 2);
            let a = c.resume(1).as_yield().unwrap();
            let b = c.resume(a).as_return().unwrap();
            self.0.set(b);
            // And drop one suspended, unwinding it inside an unwind.
            let mut d: Coroutine<(), (), ()> = Coroutine::new(|y, ()| y.suspend(()));
            d.resume(());
        }
    }
    let result = Rc::new(Cell::new(0));
    let guard = RunsCoroutineOnDrop(result.clone());
    let mut outer: Coroutine<(), (), ()> = Coroutine::new(move |y, ()| {
        let _g = guard;
        y.suspend(());
    });
    outer.resume(());
    drop(outer);
    assert_eq!(result.get(), 4);
}
