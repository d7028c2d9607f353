//! corosensei 0.3, whose public API switchback reproduces.

use std::hint::black_box;
use std::time::Duration;

use ::corosensei::stack::DefaultStack;
use ::corosensei::{Coroutine, ScopedCoroutine};

use super::{Op, Subject, Unsupported, INPUT};
use crate::measure::time_batch;

/// corosensei, with the same code as the switchback adapter.
pub struct Corosensei {
    /// The stack reused by [`Op::Call`].
    stack: DefaultStack,
}

impl Corosensei {
    /// Allocates the reusable stack.
    pub fn new() -> Self {
        Self {
            stack: DefaultStack::default(),
        }
    }
}

impl Subject for Corosensei {
    fn name(&self) -> String {
        format!("corosensei {}", env!("BENCH_VERSION_COROSENSEI"))
    }

    fn fresh_stack(&self) -> &'static str {
        "`Coroutine::new`: 1 MiB `DefaultStack` (mmap + guard page)"
    }

    fn batch(&mut self, op: Op, iters: u64) -> Result<Duration, Unsupported> {
        Ok(match op {
            Op::Switch => {
                let mut co = Coroutine::<usize, usize, ()>::new(|yielder, mut x| loop {
                    x = yielder.suspend(x);
                });
                co.resume(0);
                time_batch(iters, || {
                    black_box(co.resume(black_box(INPUT)));
                })
            }
            Op::Call => {
                let stack = &mut self.stack;
                time_batch(iters, || {
                    let co =
                        ScopedCoroutine::<usize, (), usize, _>::with_stack(&mut *stack, |_, x| x);
                    black_box(co.scope(|mut co| co.resume(black_box(INPUT))));
                })
            }
            Op::CallFresh => time_batch(iters, || {
                let mut co = Coroutine::<usize, (), usize>::new(|_, x| x);
                black_box(co.resume(black_box(INPUT)));
            }),
            Op::CallPooled => return Err(Unsupported("corosensei has no stack pool")),
        })
    }
}
