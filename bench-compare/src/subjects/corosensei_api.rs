//! The operations written once against corosensei 0.3's API and compiled for
//! both crates that have it, so switchback and corosensei run the same code.

/// Times `$op` (`$iters` iterations) on the crate `$krate`, which has
/// corosensei 0.3's API, reusing the `DefaultStack` `$stack` for
/// [`Op::Call`](super::Op::Call). `None` for [`Op::CallPooled`](super::Op::CallPooled)
/// and [`Op::MaybeGrow`](super::Op::MaybeGrow), which that API has no way to do.
macro_rules! time_corosensei_api_op {
    ($krate:ident, $stack:expr, $op:expr, $iters:expr) => {{
        use ::std::hint::black_box;
        use $crate::measure::time_batch;
        use $crate::subjects::{Op, INPUT};
        let iters: u64 = $iters;
        match $op {
            Op::Switch => {
                let mut co = ::$krate::Coroutine::<usize, usize, ()>::new(|yielder, mut x| loop {
                    x = yielder.suspend(x);
                });
                co.resume(0);
                Some(time_batch(iters, || {
                    black_box(co.resume(black_box(INPUT)));
                }))
            }
            Op::Call => {
                let stack: &mut ::$krate::stack::DefaultStack = $stack;
                Some(time_batch(iters, || {
                    let co = ::$krate::ScopedCoroutine::<usize, (), usize, _>::with_stack(
                        &mut *stack,
                        |_, x| x,
                    );
                    black_box(co.scope(|mut co| co.resume(black_box(INPUT))));
                }))
            }
            Op::CallFresh => Some(time_batch(iters, || {
                let mut co = ::$krate::Coroutine::<usize, (), usize>::new(|_, x| x);
                black_box(co.resume(black_box(INPUT)));
            })),
            Op::CallPooled | Op::MaybeGrow => None,
        }
    }};
}

pub(crate) use time_corosensei_api_op;
