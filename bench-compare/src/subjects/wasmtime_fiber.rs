//! wasmtime-fiber, the fibers under Wasmtime's async support.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ::wasmtime_fiber::{Fiber, FiberStack, Suspend};

use super::{Op, Subject, Unsupported, INPUT, RING_STACK_SIZE, STACK_SIZE};
use crate::measure::time_batch;

/// wasmtime-fiber, driven through `Fiber::new` / `resume` / `Suspend::suspend`.
pub struct WasmtimeFiber {
    /// The stack reused by the ops on an already-allocated stack, lent to
    /// each fiber and taken back with `into_stack`.
    stack: Option<FiberStack>,
    /// The fibers of the last [`Op::Ring`], until [`Subject::release`].
    ring: Option<Ring>,
}

/// Resumed with this, an identity fiber returns: a fiber must finish before
/// it is dropped (it is not unwound).
const STOP: usize = usize::MAX;

/// An identity fiber.
type IdentityFiber = Fiber<'static, usize, usize, ()>;

/// A ring of identity fibers, each finished when the ring drops.
struct Ring(Vec<IdentityFiber>);

impl Drop for Ring {
    fn drop(&mut self) {
        for fiber in &self.0 {
            assert!(fiber.resume(STOP).is_ok());
        }
    }
}

fn new_stack(size: usize) -> std::io::Result<FiberStack> {
    FiberStack::new(size, false).map_err(std::io::Error::other)
}

/// An identity fiber on `stack`, started; `deep` hands values back three
/// frames down.
fn identity_fiber(stack: FiberStack, deep: bool) -> IdentityFiber {
    let fiber = if deep {
        Fiber::new(stack, |mut x, suspend: &mut Suspend<usize, usize, ()>| {
            while x != STOP {
                x = frame1(suspend, x);
            }
        })
    } else {
        Fiber::new(stack, |mut x, suspend: &mut Suspend<usize, usize, ()>| {
            while x != STOP {
                x = suspend.suspend(x);
            }
        })
    }
    .expect("creating a fiber");
    assert!(fiber.resume(0).is_err());
    fiber
}

// Each frame uses the result of the call below it, so that no call is a
// tail call and the three frames exist.

#[inline(never)]
fn frame1(suspend: &mut Suspend<usize, usize, ()>, x: usize) -> usize {
    black_box(frame2(suspend, x))
}

#[inline(never)]
fn frame2(suspend: &mut Suspend<usize, usize, ()>, x: usize) -> usize {
    black_box(frame3(suspend, x))
}

#[inline(never)]
fn frame3(suspend: &mut Suspend<usize, usize, ()>, x: usize) -> usize {
    black_box(suspend.suspend(x))
}

impl WasmtimeFiber {
    /// Allocates the reusable stack.
    pub fn new() -> Self {
        Self {
            stack: Some(new_stack(STACK_SIZE).expect("allocating a fiber stack")),
            ring: None,
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
        match op {
            Op::CallPooled => return Err(Unsupported::new("wasmtime-fiber has no stack pool")),
            Op::MaybeGrow => return Err(Unsupported::new("wasmtime-fiber has no maybe_grow")),
            Op::DropSuspended => {
                return Err(Unsupported::new(
                    "a fiber must finish before it is dropped: wasmtime-fiber does not \
                     unwind a suspended fiber",
                ))
            }
            Op::Ring(n) => return self.ring(n, iters),
            _ => {}
        }
        let mut stack = self.stack.take().expect("stack returned by last batch");
        let elapsed = match op {
            Op::Switch | Op::SwitchDeep => {
                let fiber = identity_fiber(stack, op == Op::SwitchDeep);
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
                let stack = new_stack(STACK_SIZE).expect("allocating a fiber stack");
                let fiber =
                    Fiber::<usize, (), usize>::new(stack, |x, _| x).expect("creating a fiber");
                let _ = black_box(fiber.resume(black_box(INPUT)));
            }),
            Op::Generator => {
                let fiber = Fiber::<(), usize, ()>::new(stack, move |(), suspend| {
                    for i in 0..iters {
                        suspend.suspend(i as usize);
                    }
                })
                .expect("creating a fiber");
                let start = Instant::now();
                while let Err(item) = fiber.resume(()) {
                    black_box(item);
                }
                let elapsed = start.elapsed();
                stack = fiber.into_stack();
                elapsed
            }
            Op::Panic => {
                let (elapsed, returned) = super::quiet_panics(move || {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let fiber = Fiber::<usize, (), usize>::new(stack, |x, _| {
                            if black_box(true) {
                                super::panic_on_purpose();
                            }
                            x
                        })
                        .expect("creating a fiber");
                        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            fiber.resume(black_box(INPUT))
                        }));
                        assert!(caught.is_err());
                        stack = fiber.into_stack();
                    }
                    (start.elapsed(), stack)
                });
                stack = returned;
                elapsed
            }
            Op::CallPooled | Op::MaybeGrow | Op::DropSuspended | Op::Ring(_) => {
                unreachable!("returned above")
            }
        };
        self.stack = Some(stack);
        Ok(elapsed)
    }

    fn release(&mut self) {
        self.ring = None;
    }
}

impl WasmtimeFiber {
    /// [`Op::Ring`] of `n` fibers, `iters` hand-offs.
    fn ring(&mut self, n: usize, iters: u64) -> Result<Duration, Unsupported> {
        if self.ring.as_ref().map(|r| r.0.len()) != Some(n) {
            self.ring = None;
            super::ring_fits(n, || new_stack(RING_STACK_SIZE))?;
            let mut ring = Ring(Vec::with_capacity(n));
            for _ in 0..n {
                let stack =
                    new_stack(RING_STACK_SIZE).map_err(|e| super::allocation_failed(n, e))?;
                ring.0.push(identity_fiber(stack, false));
            }
            self.ring = Some(ring);
        }
        let fibers = &self.ring.as_ref().expect("built above").0;
        let start = Instant::now();
        let (mut token, mut i) = (INPUT, 0);
        for _ in 0..iters {
            token = match fibers[i].resume(token) {
                Err(token) => token,
                Ok(()) => unreachable!(),
            };
            i += 1;
            if i == n {
                i = 0;
            }
        }
        black_box(token);
        Ok(start.elapsed())
    }
}
