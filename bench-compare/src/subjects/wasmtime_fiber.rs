//! wasmtime-fiber, the fibers under Wasmtime's async support.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ::wasmtime_fiber::{Fiber, FiberStack};

use super::{Op, Subject, Unsupported, INPUT, STACK_SIZE};
use crate::measure::time_batch;

/// wasmtime-fiber, driven through `Fiber::new` / `resume` / `Suspend::suspend`.
pub struct WasmtimeFiber {
    /// The stack reused by [`Op::Switch`] and [`Op::Call`], lent to each
    /// fiber and taken back with `into_stack`.
    stack: Option<FiberStack>,
}

/// Resumed with this, the identity fiber returns: a fiber must finish before
/// it is dropped (it is not unwound).
const STOP: usize = usize::MAX;

fn new_stack() -> FiberStack {
    FiberStack::new(STACK_SIZE, false).expect("allocating a fiber stack")
}

impl WasmtimeFiber {
    /// Allocates the reusable stack.
    pub fn new() -> Self {
        Self {
            stack: Some(new_stack()),
        }
    }
}

impl Subject for WasmtimeFiber {
    fn name(&self) -> String {
        format!("wasmtime-fiber {}", env!("BENCH_VERSION_WASMTIME_FIBER"))
    }

    fn fresh_stack(&self) -> &'static str {
        "`FiberStack::new(1 MiB, false)` (no default size; mmap + guard page)"
    }

    fn batch(&mut self, op: Op, iters: u64) -> Result<Duration, Unsupported> {
        let mut stack = self.stack.take().expect("stack returned by last batch");
        let elapsed = match op {
            Op::Switch => {
                let fiber = Fiber::<usize, usize, ()>::new(stack, |mut x, suspend| {
                    while x != STOP {
                        x = suspend.suspend(x);
                    }
                })
                .expect("creating a fiber");
                let _ = fiber.resume(0);
                let elapsed = time_batch(iters, || {
                    let _ = black_box(fiber.resume(black_box(INPUT)));
                });
                assert!(fiber.resume(STOP).is_ok());
                stack = fiber.into_stack();
                elapsed
            }
            Op::Call => {
                // `Fiber::new` consumes the stack and `into_stack` gives it
                // back, which `time_batch`'s `FnMut` cannot do with a
                // captured stack: the same loop, written out.
                let start = Instant::now();
                for _ in 0..iters {
                    let fiber =
                        Fiber::<usize, (), usize>::new(stack, |x, _| x).expect("creating a fiber");
                    let _ = black_box(fiber.resume(black_box(INPUT)));
                    stack = fiber.into_stack();
                }
                start.elapsed()
            }
            Op::CallFresh => time_batch(iters, || {
                let fiber = Fiber::<usize, (), usize>::new(new_stack(), |x, _| x)
                    .expect("creating a fiber");
                let _ = black_box(fiber.resume(black_box(INPUT)));
            }),
            Op::CallPooled => {
                self.stack = Some(stack);
                return Err(Unsupported("wasmtime-fiber has no stack pool"));
            }
            Op::MaybeGrow => {
                self.stack = Some(stack);
                return Err(Unsupported("wasmtime-fiber has no maybe_grow"));
            }
        };
        self.stack = Some(stack);
        Ok(elapsed)
    }
}
