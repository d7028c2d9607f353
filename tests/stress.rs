//! Stress: a million create/resume/drop cycles, 10,000 live coroutines in random order, deep recursion.
//!
//! The million-cycle test skips itself when `SWITCHBACK_UNDER_VALGRIND=1`
//! (set by CI when it runs the test binaries under valgrind), where it would
//! take far too long; the other tests use fewer iterations there.

#[cfg(feature = "unwind")]
use std::cell::Cell;
use std::hint::black_box;
#[cfg(feature = "unwind")]
use std::rc::Rc;

#[cfg(feature = "unwind")]
use proptest::prelude::*;
use switchback::stack::{DefaultStack, RECOMMENDED_MIN_STACK_SIZE};
use switchback::{Coroutine, CoroutineResult, ScopedCoroutine, Yielder};

mod common;
use common::{under_qemu, under_valgrind};

/// Whether the tests run emulated or instrumented, many times slower than
/// natively: loops shrink so that they still cover every path.
fn slow_machine() -> bool {
    under_valgrind() || under_qemu()
}

/// Counts creations and drops of guards in shared counters.
#[cfg(feature = "unwind")]
struct Guard {
    dropped: Rc<Cell<usize>>,
}

#[cfg(feature = "unwind")]
impl Guard {
    fn new(created: &Rc<Cell<usize>>, dropped: &Rc<Cell<usize>>) -> Self {
        created.set(created.get() + 1);
        Guard {
            dropped: dropped.clone(),
        }
    }
}

#[cfg(feature = "unwind")]
impl Drop for Guard {
    fn drop(&mut self) {
        self.dropped.set(self.dropped.get() + 1);
    }
}

/// The number of create/resume/drop cycles: a million (fewer than that in a
/// debug build would not be a stress test, and a million takes a few
/// seconds there).
const CYCLES: usize = 1_000_000;

#[test]
fn a_million_create_resume_drop_cycles() {
    if under_valgrind() {
        eprintln!("skipped under valgrind");
        return;
    }
    // Under qemu a million take minutes; fifty thousand still cover every
    // path many times.
    let cycles = if under_qemu() { 50_000 } else { CYCLES };
    let start = std::time::Instant::now();
    // Half the coroutines are dropped while suspended, which unwinds them:
    // the size recommended for that.
    let mut stack = DefaultStack::new(RECOMMENDED_MIN_STACK_SIZE).unwrap();
    let mut total = 0u64;
    for i in 0..cycles {
        let mut local = 0u64;
        let co = ScopedCoroutine::with_stack(&mut stack, |y: &Yielder<u64, u64>, x: u64| {
            local = x;
            let x = y.suspend(x + 1);
            x * 2
        });
        let r = co.scope(|mut co| {
            let a = co.as_mut().resume(i as u64).as_yield().unwrap();
            // Every other coroutine is dropped while suspended (which
            // needs the unwind feature).
            if i % 2 == 0 || cfg!(not(feature = "unwind")) {
                co.resume(a).as_return().unwrap()
            } else {
                a
            }
        });
        assert_eq!(local, i as u64);
        total += r;
    }
    let expected: u64 = (0..cycles as u64)
        .map(|i| {
            if i % 2 == 0 || cfg!(not(feature = "unwind")) {
                (i + 1) * 2
            } else {
                i + 1
            }
        })
        .sum();
    assert_eq!(total, expected);
    eprintln!("{cycles} cycles in {:?}", start.elapsed());
}

#[test]
fn many_owned_coroutines_on_one_recycled_stack() {
    let n = if slow_machine() { 1_000 } else { 100_000 };
    let mut stack = DefaultStack::new(16 * 1024).unwrap();
    for i in 0..n {
        let mut co: Coroutine<usize, usize, usize, _> =
            Coroutine::with_stack(stack, |y: &Yielder<usize, usize>, x| y.suspend(x) + 1);
        assert_eq!(co.resume(i), CoroutineResult::Yield(i));
        assert_eq!(co.resume(i), CoroutineResult::Return(i + 1));
        stack = co.into_stack();
    }
}

/// A live coroutine that counts how often it was resumed.
#[cfg(feature = "unwind")]
type Live = Coroutine<(), usize, (), DefaultStack>;

#[cfg(feature = "unwind")]
fn spawn_live(id: usize, created: &Rc<Cell<usize>>, dropped: &Rc<Cell<usize>>) -> Live {
    let guard = Guard::new(created, dropped);
    Coroutine::with_stack(
        // Dropped while suspended, which unwinds it: the size recommended
        // for that.
        DefaultStack::new(RECOMMENDED_MIN_STACK_SIZE).unwrap(),
        move |y: &Yielder<(), usize>, ()| {
            let _guard = guard;
            // Also hold a guard on the coroutine stack itself.
            let mut resumes = 0usize;
            loop {
                resumes += 1;
                y.suspend(id * 100_000 + resumes);
            }
        },
    )
}

#[cfg(feature = "unwind")]
fn run_random_order(count: usize, order: &[usize]) {
    let created = Rc::new(Cell::new(0));
    let dropped = Rc::new(Cell::new(0));
    let mut coroutines: Vec<Option<Live>> = (0..count)
        .map(|id| Some(spawn_live(id, &created, &dropped)))
        .collect();
    let mut resumes = vec![0usize; count];
    for &raw in order {
        let i = raw % count;
        if raw % 7 == 3 {
            // Drop some coroutines in the middle, suspended or unstarted.
            coroutines[i] = None;
            continue;
        }
        if let Some(co) = coroutines[i].as_mut() {
            resumes[i] += 1;
            assert_eq!(
                co.resume(()),
                CoroutineResult::Yield(i * 100_000 + resumes[i])
            );
        }
    }
    assert_eq!(created.get(), count);
    drop(coroutines);
    assert_eq!(dropped.get(), count, "every guard dropped exactly once");
}

#[cfg(feature = "unwind")]
proptest! {
    #![proptest_config(ProptestConfig { cases: 3, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn ten_thousand_live_coroutines_random_order(
        order in proptest::collection::vec(0usize..1_000_000, 20_000..40_000)
    ) {
        let count = if slow_machine() { 500 } else { 10_000 };
        run_random_order(count, &order);
    }
}

#[test]
#[cfg(feature = "unwind")]
fn ten_thousand_live_coroutines_sequential_sweeps() {
    let count = if slow_machine() { 500 } else { 10_000 };
    let order: Vec<usize> = (0..3).flat_map(|_| (0..count).map(|i| i * 7 + 1)).collect();
    run_random_order(count, &order);
}

/// Recurses, with ~1 KiB frames, until the stack pointer is `target` bytes
/// below `base`; returns how deep it went and the deepest address reached.
#[inline(never)]
fn recurse_until(base: usize, target: usize, depth: u32) -> (u32, usize) {
    let pad = black_box([depth as u8; 1000]);
    let here = black_box(&pad) as *const _ as usize;
    let (d, deepest) = if base - here >= target {
        (depth, here)
    } else {
        recurse_until(base, target, depth + 1)
    };
    // Use the pad after the call so the frame stays live.
    assert_eq!(black_box(pad)[500], depth as u8);
    (d, deepest)
}

#[test]
fn deep_recursion_uses_500_kb_of_coroutine_stack() {
    use switchback::stack::Stack;
    let stack = DefaultStack::default();
    let (base, limit) = (stack.base().get(), stack.limit().get());
    assert!(base - limit >= 1024 * 1024);
    let mut co: Coroutine<(), (), (u32, usize), _> =
        Coroutine::with_stack(stack, move |_: &Yielder<(), ()>, ()| {
            recurse_until(base, 500 * 1024, 0)
        });
    let (depth, deepest) = co.resume(()).as_return().unwrap();
    assert!(base - deepest >= 500 * 1024);
    assert!(deepest > limit);
    // At ~1 KiB or more per frame, that is a few hundred frames at least.
    assert!(depth >= 100, "only {depth} frames");
}

#[test]
fn deep_recursion_repeatedly_across_suspends() {
    use switchback::stack::Stack;
    let stack = DefaultStack::default();
    let base = stack.base().get();
    let mut co: Coroutine<(), usize, (), _> =
        Coroutine::with_stack(stack, move |y: &Yielder<(), usize>, ()| {
            for _ in 0..3 {
                let (_, deepest) = recurse_until(base, 500 * 1024, 0);
                y.suspend(base - deepest);
            }
        });
    for _ in 0..3 {
        let used = co.resume(()).as_yield().unwrap();
        assert!((500 * 1024..1024 * 1024).contains(&used), "used {used}");
    }
    assert_eq!(co.resume(()), CoroutineResult::Return(()));
}

#[test]
fn coroutines_on_many_threads_at_once() {
    let threads = if slow_machine() { 2 } else { 8 };
    let rounds: u64 = if slow_machine() { 1_000 } else { 20_000 };
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            std::thread::spawn(move || {
                let stack = DefaultStack::new(32 * 1024).unwrap();
                let mut co: Coroutine<u64, u64, u64, _> =
                    Coroutine::with_stack(stack, move |y: &Yielder<u64, u64>, mut x| {
                        let mut acc = 0u64;
                        while x != u64::MAX {
                            acc = acc.wrapping_add(x * t);
                            x = y.suspend(acc);
                        }
                        acc
                    });
                let mut last = 0;
                for i in 0..rounds {
                    last = co.resume(i).as_yield().unwrap();
                }
                assert_eq!(co.resume(u64::MAX).as_return(), Some(last));
                last
            })
        })
        .collect();
    for (t, h) in handles.into_iter().enumerate() {
        let expected = (0..rounds).sum::<u64>() * t as u64;
        assert_eq!(h.join().unwrap(), expected);
    }
}
