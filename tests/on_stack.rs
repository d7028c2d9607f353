//! `on_stack` and `Yielder::on_parent_stack`: which stack the closure runs on and what it returns.

use std::hint::black_box;

use switchback::stack::{DefaultStack, Stack};
use switchback::{on_stack, Coroutine, CoroutineResult, Yielder};

/// Whether the tests can see which stack a closure runs on: not under
/// Miri, where `on_stack` calls the closure on the caller's own stack and a
/// coroutine runs on a thread of its own (see the README's "Your tests
/// under Miri"); the values are checked everywhere.
const PLACEMENT_VISIBLE: bool = !cfg!(miri);

fn local_address() -> usize {
    let local = black_box(0u64);
    &local as *const u64 as usize
}

#[test]
fn on_stack_runs_on_the_given_stack_and_returns_value() {
    let stack = DefaultStack::new(128 * 1024).unwrap();
    let (base, limit) = (stack.base().get(), stack.limit().get());
    let outside = local_address();
    let (inside, value) = on_stack(stack, || (local_address(), String::from("result")));
    if PLACEMENT_VISIBLE {
        assert!(
            (limit..base).contains(&inside),
            "local at {inside:#x} not in [{limit:#x}, {base:#x})"
        );
        assert!(!(limit..base).contains(&outside));
    }
    assert_eq!(value, "result");
}

#[test]
fn on_stack_with_borrowed_stack_and_borrowing_closure() {
    let mut stack = DefaultStack::new(64 * 1024).unwrap();
    let (base, limit) = (stack.base().get(), stack.limit().get());
    let mut total = 0u64;
    for i in 0..5u64 {
        let inside = on_stack(&mut stack, || {
            total += i;
            local_address()
        });
        if PLACEMENT_VISIBLE {
            assert!((limit..base).contains(&inside));
        }
    }
    assert_eq!(total, 10);
}

#[test]
fn on_stack_passes_large_and_aligned_values() {
    #[repr(align(128))]
    struct Aligned([u8; 300]);
    let stack = DefaultStack::new(256 * 1024).unwrap();
    let input = [3u64; 1024];
    let out = on_stack(stack, move || {
        let a = Aligned([input.iter().sum::<u64>() as u8; 300]);
        assert_eq!(&a as *const Aligned as usize % 128, 0);
        a
    });
    assert_eq!(&out as *const Aligned as usize % 128, 0);
    assert_eq!(out.0[299], (3 * 1024u64) as u8);
}

#[test]
fn on_stack_nested_on_stacks() {
    let s1 = DefaultStack::new(64 * 1024).unwrap();
    let s2 = DefaultStack::new(64 * 1024).unwrap();
    let (b1, l1) = (s1.base().get(), s1.limit().get());
    let (b2, l2) = (s2.base().get(), s2.limit().get());
    let (a1, a2) = on_stack(s1, move || {
        let a1 = local_address();
        let a2 = on_stack(s2, local_address);
        (a1, a2)
    });
    if PLACEMENT_VISIBLE {
        assert!((l1..b1).contains(&a1));
        assert!((l2..b2).contains(&a2));
    }
}

#[test]
fn on_stack_deep_recursion_uses_the_big_stack() {
    #[inline(never)]
    fn recurse(n: u32) -> u64 {
        let pad = black_box([n as u8; 1024]);
        if n == 0 {
            return pad[0] as u64;
        }
        recurse(n - 1) + black_box(pad[1]) as u64
    }
    // ~4 MiB of frames: more than a test thread's 2 MiB stack.
    let stack = DefaultStack::new(16 * 1024 * 1024).unwrap();
    let r = on_stack(stack, || recurse(4000));
    let expected: u64 = (1..=4000u64).map(|n| n % 256).sum();
    assert_eq!(r, expected);
}

#[test]
fn on_stack_inside_coroutine() {
    let stack = DefaultStack::new(64 * 1024).unwrap();
    let (base, limit) = (stack.base().get(), stack.limit().get());
    let mut co: Coroutine<(), usize, u32> = Coroutine::new(move |y, ()| {
        let addr = on_stack(stack, local_address);
        y.suspend(addr);
        7
    });
    let addr = co.resume(()).as_yield().unwrap();
    if PLACEMENT_VISIBLE {
        assert!((limit..base).contains(&addr));
    }
    assert_eq!(co.resume(()), CoroutineResult::Return(7));
}

#[test]
fn on_parent_stack_runs_outside_the_coroutine_stack() {
    let stack = DefaultStack::new(64 * 1024).unwrap();
    let (base, limit) = (stack.base().get(), stack.limit().get());
    let main_addr = local_address();
    let mut co: Coroutine<(), (usize, usize), String, _> =
        Coroutine::with_stack(stack, |y: &Yielder<(), (usize, usize)>, ()| {
            let inside = local_address();
            let on_parent = y.on_parent_stack(local_address);
            y.suspend((inside, on_parent));
            y.on_parent_stack(|| format!("{}", 6 * 7))
        });
    let (inside, on_parent) = co.resume(()).as_yield().unwrap();
    if PLACEMENT_VISIBLE {
        assert!((limit..base).contains(&inside));
        assert!(
            !(limit..base).contains(&on_parent),
            "on_parent_stack ran on the coroutine stack at {on_parent:#x}"
        );
        // Just below the resumer's frames on this thread's stack.
        assert!(on_parent < main_addr && main_addr - on_parent < 256 * 1024);
    }
    assert_eq!(co.resume(()), CoroutineResult::Return("42".to_string()));
}

#[test]
fn on_parent_stack_gives_more_stack_than_the_coroutine_has() {
    #[inline(never)]
    fn use_stack(kib: usize) -> u64 {
        let big = black_box(vec![1u8; 1]);
        let mut arr = [0u8; 1024];
        arr[0] = big[0];
        let arr = black_box(arr);
        if kib == 0 {
            return arr[0] as u64;
        }
        use_stack(kib - 1) + arr[0] as u64
    }
    // 200 KiB of frames on a 32 KiB coroutine stack would overflow; on the
    // parent (test thread, 2 MiB) it fits.
    let stack = DefaultStack::new(32 * 1024).unwrap();
    let mut co: Coroutine<(), (), u64, _> =
        Coroutine::with_stack(stack, |y: &Yielder<(), ()>, ()| {
            y.on_parent_stack(|| use_stack(200))
        });
    assert_eq!(co.resume(()), CoroutineResult::Return(201));
}

#[test]
fn on_parent_stack_repeatedly_between_suspends() {
    let mut co: Coroutine<u32, u32, u32> = Coroutine::new(|y, mut x| {
        for _ in 0..100 {
            let doubled = y.on_parent_stack(move || x * 2);
            x = y.suspend(doubled);
        }
        x
    });
    for i in 0..100 {
        assert_eq!(co.resume(i), CoroutineResult::Yield(i * 2));
    }
    assert_eq!(co.resume(5), CoroutineResult::Return(5));
}

#[test]
fn suspend_from_inside_on_stack_in_a_coroutine() {
    // on_stack's closure is not required to be Send, so the coroutine can
    // suspend while running on the other stack, and be resumed there.
    let inner = DefaultStack::new(64 * 1024).unwrap();
    let (base, limit) = (inner.base().get(), inner.limit().get());
    let mut co: Coroutine<u32, (usize, u32), u32> = Coroutine::new(move |y, x| {
        on_stack(inner, || {
            let mut x = x;
            for _ in 0..3 {
                x = y.suspend((local_address(), x));
            }
            x
        }) + 1
    });
    for i in 0..3 {
        let (addr, v) = co.resume(i * 10).as_yield().unwrap();
        if PLACEMENT_VISIBLE {
            assert!((limit..base).contains(&addr));
        }
        assert_eq!(v, i * 10);
    }
    assert_eq!(co.resume(99), CoroutineResult::Return(100));
}

#[test]
#[cfg(feature = "unwind")]
fn dropping_coroutine_suspended_inside_on_stack_unwinds_both_stacks() {
    use std::cell::Cell;
    use std::rc::Rc;
    struct Flag(Rc<Cell<u32>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let mut co: Coroutine<(), (), ()> = Coroutine::new(move |y, ()| {
        let _outer = Flag(d.clone());
        on_stack(DefaultStack::new(64 * 1024).unwrap(), || {
            let _inner = Flag(d.clone());
            y.suspend(());
        });
    });
    assert_eq!(co.resume(()), CoroutineResult::Yield(()));
    drop(co);
    assert_eq!(drops.get(), 2);
}
