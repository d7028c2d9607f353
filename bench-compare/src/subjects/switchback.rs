//! switchback, the crate under test and the baseline of every ratio.

use std::hint::black_box;
use std::time::Duration;

use switchback::stack::{DefaultStack, StackPool};
use switchback::{Coroutine, ScopedCoroutine};

use super::{Op, Subject, Unsupported, INPUT};
use crate::measure::time_batch;

/// switchback, through the API it shares with corosensei.
pub struct Switchback {
    /// The stack reused by [`Op::Call`].
    stack: DefaultStack,
    /// The pool of [`Op::CallPooled`]: 1 MiB stacks, as `DefaultStack`.
    pool: StackPool,
}

impl Switchback {
    /// Allocates the reusable stack and an empty pool.
    pub fn new() -> Self {
        Self {
            stack: DefaultStack::default(),
            pool: StackPool::default(),
        }
    }
}

impl Subject for Switchback {
    fn name(&self) -> String {
        format!("switchback {}", env!("BENCH_VERSION_SWITCHBACK"))
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
            Op::CallPooled => {
                let pool = &self.pool;
                time_batch(iters, || {
                    let mut co = Coroutine::<usize, (), usize, _>::with_pool(pool, |_, x| x);
                    black_box(co.resume(black_box(INPUT)));
                })
            }
        })
    }
}
