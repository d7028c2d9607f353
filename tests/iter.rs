//! Coroutines as iterators: items, the end, fusing, panics, dropping early,
//! yielding from nested calls, scoped coroutines and `generator`.
#![cfg(all(any(unix, windows), feature = "default-stack"))]

use std::cell::Cell;
use std::iter::FusedIterator;
use std::rc::Rc;

use switchback::{Coroutine, ScopedCoroutine, Yielder};

mod common;
#[cfg(feature = "unwind")]
use common::{counter, panic_message, Counted};

#[test]
fn a_coroutine_iterates_over_its_yields() {
    let co: Coroutine<(), u32, ()> = Coroutine::new(|y, ()| {
        for i in 0..5 {
            y.suspend(i * i);
        }
    });
    assert_eq!(co.collect::<Vec<_>>(), [0, 1, 4, 9, 16]);
}

#[test]
fn next_after_the_end_keeps_returning_none() {
    let mut co: Coroutine<(), u8, ()> = Coroutine::new(|y, ()| y.suspend(1));
    assert_eq!(co.next(), Some(1));
    assert_eq!(co.next(), None);
    assert!(co.done());
    for _ in 0..3 {
        assert_eq!(co.next(), None);
    }
}

#[test]
fn iterators_are_fused() {
    fn assert_fused<T: FusedIterator>() {}
    assert_fused::<Coroutine<(), u8, (), switchback::stack::DefaultStack>>();
    assert_fused::<
        switchback::ScopedCoroutineRef<'static, (), u8, (), switchback::stack::DefaultStack>,
    >();
}

#[cfg(feature = "unwind")]
#[test]
fn a_panic_comes_out_of_next_and_then_the_iterator_ends() {
    let mut gen = switchback::generator(|y| {
        y.suspend(1);
        panic!("generator failed");
    });
    assert_eq!(gen.next(), Some(1));
    let payload =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| gen.next())).unwrap_err();
    assert_eq!(panic_message(&*payload), "generator failed");
    assert_eq!(gen.next(), None);
    assert_eq!(gen.next(), None);
}

#[cfg(feature = "unwind")]
#[test]
fn dropping_before_the_end_runs_destructors() {
    let drops = counter();
    let d = drops.clone();
    let mut gen = switchback::generator(move |y| {
        let _guard = Counted(d);
        for i in 0.. {
            y.suspend(i);
        }
    });
    assert_eq!(gen.by_ref().take(3).collect::<Vec<u64>>(), [0, 1, 2]);
    assert_eq!(drops.get(), 0);
    drop(gen);
    assert_eq!(drops.get(), 1);
}

/// Yields 1..=n from a recursion `n` frames deep, one value per level.
fn count_down_recursively(y: &Yielder<(), u32>, n: u32) {
    if n > 0 {
        count_down_recursively(y, n - 1);
        y.suspend(n);
    }
}

#[test]
fn generator_yields_from_nested_calls() {
    let gen = switchback::generator(|y| count_down_recursively(y, 100));
    assert_eq!(gen.collect::<Vec<_>>(), (1..=100).collect::<Vec<_>>());
}

#[test]
fn generator_stacks_come_from_the_global_pool() {
    // Many generators in a row, each on a pooled stack: no mapping per
    // generator, and each is a full Coroutine.
    for i in 0..1000u32 {
        let mut gen = switchback::generator(move |y| y.suspend(i));
        assert!(!gen.started());
        assert_eq!(gen.next(), Some(i));
        assert_eq!(gen.next(), None);
        assert!(gen.done());
    }
}

#[test]
fn scoped_coroutine_iterates_over_borrowed_data() {
    let data = vec![3u32, 1, 4, 1, 5];
    let seen = Rc::new(Cell::new(0));
    let evens_doubled: Vec<u32> = ScopedCoroutine::new(|y, ()| {
        for &x in &data {
            seen.set(seen.get() + 1);
            y.suspend(x * 2);
        }
    })
    .scope(|co| co.filter(|x| x % 4 == 2).collect());
    assert_eq!(evens_doubled, [6, 2, 2, 10]);
    assert_eq!(seen.get(), 5);
}

#[test]
fn a_coroutine_on_a_given_stack_is_an_iterator_and_keeps_its_stack() {
    let stack = switchback::stack::DefaultStack::new(64 * 1024).unwrap();
    let mut co: Coroutine<(), char, (), _> =
        Coroutine::with_stack(stack, |y, ()| "abc".chars().for_each(|c| y.suspend(c)));
    assert_eq!(co.by_ref().collect::<String>(), "abc");
    // The iteration ran it to the end: its stack can be reused.
    let stack = co.into_stack();
    let again: Coroutine<(), u8, (), _> = Coroutine::with_stack(stack, |y, ()| y.suspend(7));
    assert_eq!(again.collect::<Vec<_>>(), [7]);
}
