//! The operations written once against corosensei 0.3's API and compiled for
//! both crates that have it, so switchback and corosensei run the same code.

/// A ring of identity coroutines on `DefaultStack`s of crate `$krate`.
macro_rules! corosensei_api_ring {
    ($krate:ident) => {
        Vec<::$krate::Coroutine<usize, usize, (), ::$krate::stack::DefaultStack>>
    };
}

/// Times `$op` (`$iters` iterations) on the crate `$krate`, which has
/// corosensei 0.3's API. `$stack` is the `&mut DefaultStack` reused by the
/// ops on an already-allocated stack, `$ring` an
/// `&mut Option<corosensei_api_ring!($krate)>` kept between batches of a
/// ring. `None` for [`Op::CallPooled`](super::Op::CallPooled) and
/// [`Op::MaybeGrow`](super::Op::MaybeGrow), which that API has no way to do.
macro_rules! time_corosensei_api_op {
    ($krate:ident, $stack:expr, $ring:expr, $op:expr, $iters:expr) => {{
        use ::std::hint::black_box;
        use ::std::time::Instant;
        use ::$krate::stack::DefaultStack;
        use ::$krate::{Coroutine, CoroutineResult, ScopedCoroutine, Yielder};
        use $crate::measure::time_batch;
        use $crate::subjects::{Op, INPUT, RING_STACK_SIZE};
        let iters: u64 = $iters;
        let stack: &mut DefaultStack = $stack;
        let ring: &mut Option<$crate::subjects::corosensei_api::corosensei_api_ring!($krate)> =
            $ring;
        match $op {
            Op::Switch => {
                let mut co = Coroutine::<usize, usize, ()>::new(|yielder, mut x| loop {
                    x = yielder.suspend(x);
                });
                co.resume(0);
                Some(Ok(time_batch(iters, || {
                    black_box(co.resume(black_box(INPUT)));
                })))
            }
            Op::SwitchDeep => {
                // Each frame uses the result of the call below it, so that
                // no call is a tail call and the three frames exist.
                #[inline(never)]
                fn frame1(yielder: &Yielder<usize, usize>, x: usize) -> usize {
                    ::std::hint::black_box(frame2(yielder, x))
                }
                #[inline(never)]
                fn frame2(yielder: &Yielder<usize, usize>, x: usize) -> usize {
                    ::std::hint::black_box(frame3(yielder, x))
                }
                #[inline(never)]
                fn frame3(yielder: &Yielder<usize, usize>, x: usize) -> usize {
                    ::std::hint::black_box(yielder.suspend(x))
                }
                let mut co = Coroutine::<usize, usize, ()>::new(|yielder, mut x| loop {
                    x = frame1(yielder, x);
                });
                co.resume(0);
                Some(Ok(time_batch(iters, || {
                    black_box(co.resume(black_box(INPUT)));
                })))
            }
            Op::Call => Some(Ok(time_batch(iters, || {
                let co = ScopedCoroutine::<usize, (), usize, _>::with_stack(&mut *stack, |_, x| x);
                black_box(co.scope(|mut co| co.resume(black_box(INPUT))));
            }))),
            Op::CallFresh => Some(Ok(time_batch(iters, || {
                let mut co = Coroutine::<usize, (), usize>::new(|_, x| x);
                black_box(co.resume(black_box(INPUT)));
            }))),
            Op::Generator => {
                let n = iters;
                let mut co = Coroutine::<(), usize, ()>::new(move |yielder, ()| {
                    for i in 0..n {
                        yielder.suspend(i as usize);
                    }
                });
                let start = Instant::now();
                while let CoroutineResult::Yield(item) = co.resume(()) {
                    black_box(item);
                }
                Some(Ok(start.elapsed()))
            }
            Op::Ring(n) => Some((|| {
                if ring.as_ref().map(Vec::len) != Some(n) {
                    *ring = None;
                    $crate::subjects::ring_fits(n, || DefaultStack::new(RING_STACK_SIZE))?;
                    let mut coroutines = Vec::with_capacity(n);
                    for _ in 0..n {
                        let stack = DefaultStack::new(RING_STACK_SIZE)
                            .map_err(|e| $crate::subjects::allocation_failed(n, e))?;
                        let mut co = Coroutine::with_stack(stack, |yielder, mut x| loop {
                            x = yielder.suspend(x);
                        });
                        co.resume(0);
                        coroutines.push(co);
                    }
                    *ring = Some(coroutines);
                }
                let coroutines = ring.as_mut().expect("built above");
                let start = Instant::now();
                let (mut token, mut i) = (INPUT, 0);
                for _ in 0..iters {
                    token = match coroutines[i].resume(token) {
                        CoroutineResult::Yield(token) => token,
                        CoroutineResult::Return(()) => unreachable!(),
                    };
                    i += 1;
                    if i == n {
                        i = 0;
                    }
                }
                black_box(token);
                Ok(start.elapsed())
            })()),
            Op::DropSuspended => Some(Ok(time_batch(iters, || {
                let co = ScopedCoroutine::<usize, usize, (), _>::with_stack(
                    &mut *stack,
                    |yielder, mut x| loop {
                        x = yielder.suspend(x);
                    },
                );
                co.scope(|mut co| {
                    black_box(co.resume(black_box(INPUT)));
                });
            }))),
            Op::Panic => Some(Ok($crate::subjects::quiet_panics(|| {
                time_batch(iters, || {
                    let co =
                        ScopedCoroutine::<usize, (), usize, _>::with_stack(&mut *stack, |_, x| {
                            if black_box(true) {
                                $crate::subjects::panic_on_purpose();
                            }
                            x
                        });
                    let caught = ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| {
                        co.scope(|mut co| co.resume(black_box(INPUT)))
                    }));
                    assert!(caught.is_err());
                })
            }))),
            Op::CallPooled | Op::MaybeGrow => None,
        }
    }};
}

pub(crate) use corosensei_api_ring;
pub(crate) use time_corosensei_api_op;
