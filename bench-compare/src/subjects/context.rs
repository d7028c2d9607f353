//! context 3, a Rust port of Boost.Context's `make_fcontext`/`jump_fcontext`.
//!
//! A context is entered through an `extern "C"` function that never returns:
//! a finished "call" jumps back to its caller for the last time and is then
//! abandoned, which is how Boost.Context is used without its `fiber` layer.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ::context::stack::ProtectedFixedSizeStack;
use ::context::{Context as Fcontext, Transfer};

use super::{Op, Subject, Unsupported, INPUT};
use crate::measure::time_batch;

/// context, driven through `Context::new` / `resume` / `Transfer`.
pub struct Context {
    /// The stack reused by [`Op::Switch`] and [`Op::Call`].
    stack: ProtectedFixedSizeStack,
}

impl Context {
    /// Allocates the reusable stack (the crate's default size).
    pub fn new() -> Self {
        Self {
            stack: ProtectedFixedSizeStack::default(),
        }
    }
}

/// The identity coroutine: hands every value back.
extern "C" fn identity_loop(mut t: Transfer) -> ! {
    loop {
        // SAFETY: `t.context` is the suspended caller, resumed exactly once.
        t = unsafe { t.context.resume(t.data) };
    }
}

/// A coroutine that returns its input and is never resumed again.
extern "C" fn identity_once(t: Transfer) -> ! {
    // SAFETY: as in `identity_loop`.
    unsafe { t.context.resume(t.data) };
    unreachable!("a finished context was resumed");
}

impl Subject for Context {
    fn name(&self) -> String {
        format!("context {}", env!("BENCH_VERSION_CONTEXT"))
    }

    fn fresh_stack(&self) -> &'static str {
        "`ProtectedFixedSizeStack::default()`: 32 KiB (8 pages) + guard page"
    }

    fn batch(&mut self, op: Op, iters: u64) -> Result<Duration, Unsupported> {
        // SAFETY (all blocks below): every context is resumed at most once,
        // and the stack outlives every context made on it; abandoned
        // contexts hold nothing that needs dropping.
        Ok(match op {
            Op::Switch => {
                let mut ctx = unsafe { Fcontext::new(&self.stack, identity_loop) };
                ctx = unsafe { ctx.resume(0) }.context;
                // `resume` consumes the context, which `time_batch`'s `FnMut`
                // cannot move out of a capture: the same loop, written out.
                let start = Instant::now();
                for _ in 0..iters {
                    let t = unsafe { ctx.resume(black_box(INPUT)) };
                    ctx = t.context;
                    black_box(t.data);
                }
                start.elapsed()
            }
            Op::Call => {
                let stack = &self.stack;
                time_batch(iters, || {
                    let ctx = unsafe { Fcontext::new(stack, identity_once) };
                    black_box(unsafe { ctx.resume(black_box(INPUT)) }.data);
                })
            }
            Op::CallFresh => time_batch(iters, || {
                let stack = ProtectedFixedSizeStack::default();
                let ctx = unsafe { Fcontext::new(&stack, identity_once) };
                black_box(unsafe { ctx.resume(black_box(INPUT)) }.data);
            }),
            Op::CallPooled => return Err(Unsupported("context has no stack pool")),
            Op::MaybeGrow => return Err(Unsupported("context has no maybe_grow")),
        })
    }
}
