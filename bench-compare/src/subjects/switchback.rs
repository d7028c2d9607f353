//! switchback, the crate under test.

use std::hint::black_box;
use std::time::Duration;

use switchback::stack::{maybe_grow, DefaultStack, StackPool};
use switchback::Coroutine;

use super::corosensei_api::{corosensei_api_ring, time_corosensei_api_op};
use super::{Op, Subject, Unsupported, INPUT, STACK_SIZE};
use crate::measure::time_batch;

/// switchback, through the API it shares with corosensei.
pub struct Switchback {
    /// The stack reused by the ops on an already-allocated stack.
    stack: DefaultStack,
    /// The pool of [`Op::CallPooled`]: 1 MiB stacks, as `DefaultStack`.
    pool: StackPool,
    /// The coroutines of the last [`Op::Ring`], until [`Subject::release`].
    ring: Option<corosensei_api_ring!(switchback)>,
}

impl Switchback {
    /// Allocates the reusable stack and an empty pool.
    pub fn new() -> Self {
        Self {
            stack: DefaultStack::default(),
            pool: StackPool::default(),
            ring: None,
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
        if let Some(elapsed) =
            time_corosensei_api_op!(switchback, &mut self.stack, &mut self.ring, op, iters)
        {
            return elapsed;
        }
        let pool = &self.pool;
        Ok(match op {
            Op::MaybeGrow => time_batch(iters, || {
                black_box(maybe_grow(32 * 1024, STACK_SIZE, || black_box(INPUT)));
            }),
            _ => time_batch(iters, || {
                let mut co = Coroutine::<usize, (), usize, _>::with_pool(pool, |_, x| x);
                black_box(co.resume(black_box(INPUT)));
            }),
        })
    }

    fn release(&mut self) {
        self.ring = None;
    }
}
