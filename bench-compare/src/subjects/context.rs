//! context 3, a Rust port of Boost.Context's `make_fcontext`/`jump_fcontext`.
//!
//! A context is entered through an `extern "C"` function that never returns:
//! a finished "call" jumps back to its caller for the last time and is then
//! abandoned, which is how Boost.Context is used without its `fiber` layer.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ::context::stack::ProtectedFixedSizeStack;
use ::context::{Context as Fcontext, Transfer};

use super::{Op, Subject, Unsupported, INPUT, RING_STACK_SIZE};
use crate::measure::time_batch;

/// context, driven through `Context::new` / `resume` / `Transfer`.
pub struct Context {
    /// The stack reused by the ops on an already-allocated stack.
    stack: ProtectedFixedSizeStack,
    /// The last [`Op::Ring`], until [`Subject::release`].
    ring: Option<Ring>,
}

/// A ring of identity contexts. Each slot holds the context to resume next
/// (`resume` consumes a context and hands back the next one).
struct Ring {
    contexts: Vec<Option<Fcontext>>,
    /// The stacks, which outlive the contexts on them.
    _stacks: Vec<ProtectedFixedSizeStack>,
}

impl Context {
    /// Allocates the reusable stack (the crate's default size).
    pub fn new() -> Self {
        Self {
            stack: ProtectedFixedSizeStack::default(),
            ring: None,
        }
    }
}

/// The value that ends [`Op::Generator`]'s iteration.
const END: usize = usize::MAX;

/// The identity coroutine: hands every value back.
extern "C" fn identity_loop(mut t: Transfer) -> ! {
    loop {
        // SAFETY: `t.context` is the suspended caller, resumed exactly once.
        t = unsafe { t.context.resume(t.data) };
    }
}

/// The identity coroutine, handing values back three frames down.
extern "C" fn identity_loop_deep(mut t: Transfer) -> ! {
    loop {
        t = frame1(t);
    }
}

// Each frame uses the result of the call below it, so that no call is a
// tail call and the three frames exist.

#[inline(never)]
fn frame1(t: Transfer) -> Transfer {
    black_box(frame2(t))
}

#[inline(never)]
fn frame2(t: Transfer) -> Transfer {
    black_box(frame3(t))
}

#[inline(never)]
fn frame3(t: Transfer) -> Transfer {
    // SAFETY: as in `identity_loop`.
    black_box(unsafe { t.context.resume(t.data) })
}

/// A coroutine that returns its input and is never resumed again.
extern "C" fn identity_once(t: Transfer) -> ! {
    // SAFETY: as in `identity_loop`.
    unsafe { t.context.resume(t.data) };
    unreachable!("a finished context was resumed");
}

/// A generator of `t.data` items `0, 1, ...`, then [`END`] forever.
extern "C" fn count_to(mut t: Transfer) -> ! {
    let n = t.data;
    for i in 0..n {
        // SAFETY: as in `identity_loop`.
        t = unsafe { t.context.resume(i) };
    }
    loop {
        // SAFETY: as in `identity_loop`.
        t = unsafe { t.context.resume(END) };
    }
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
            Op::Switch | Op::SwitchDeep => {
                let entry = if op == Op::Switch {
                    identity_loop
                } else {
                    identity_loop_deep
                };
                let mut ctx = unsafe { Fcontext::new(&self.stack, entry) };
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
            Op::Generator => {
                let ctx = unsafe { Fcontext::new(&self.stack, count_to) };
                let start = Instant::now();
                let mut t = unsafe { ctx.resume(iters as usize) };
                while t.data != END {
                    black_box(t.data);
                    t = unsafe { t.context.resume(0) };
                }
                start.elapsed()
            }
            Op::Ring(n) => return self.ring(n, iters),
            Op::CallPooled => return Err(Unsupported::new("context has no stack pool")),
            Op::DropSuspended => {
                return Err(Unsupported::new(
                    "a context has no destructor: an abandoned context is not unwound \
                     (Boost.Context leaves that to a `resume_ontop` that the user writes)",
                ))
            }
            Op::Panic => {
                return Err(Unsupported::new(
                    "a panic cannot leave the `extern \"C\"` entry function (it aborts): \
                     the user catches it inside and passes it across",
                ))
            }
            Op::MaybeGrow => return Err(Unsupported::new("context has no maybe_grow")),
        })
    }

    fn release(&mut self) {
        self.ring = None;
    }
}

impl Context {
    /// [`Op::Ring`] of `n` contexts, `iters` hand-offs.
    fn ring(&mut self, n: usize, iters: u64) -> Result<Duration, Unsupported> {
        if self.ring.as_ref().map(|r| r.contexts.len()) != Some(n) {
            self.ring = None;
            super::ring_fits(n, || ProtectedFixedSizeStack::new(RING_STACK_SIZE))?;
            let mut stacks = Vec::with_capacity(n);
            let mut contexts = Vec::with_capacity(n);
            for _ in 0..n {
                let stack = ProtectedFixedSizeStack::new(RING_STACK_SIZE)
                    .map_err(|e| super::allocation_failed(n, e))?;
                // SAFETY: the stack outlives the context (both in `Ring`).
                let ctx = unsafe { Fcontext::new(&stack, identity_loop) };
                contexts.push(Some(unsafe { ctx.resume(0) }.context));
                stacks.push(stack);
            }
            self.ring = Some(Ring {
                contexts,
                _stacks: stacks,
            });
        }
        let contexts = &mut self.ring.as_mut().expect("built above").contexts;
        let start = Instant::now();
        let (mut token, mut i) = (INPUT, 0);
        for _ in 0..iters {
            let ctx = contexts[i].take().expect("every slot holds a context");
            // SAFETY: each context is resumed once; the next one replaces it.
            let t = unsafe { ctx.resume(token) };
            contexts[i] = Some(t.context);
            token = t.data;
            i += 1;
            if i == n {
                i = 0;
            }
        }
        black_box(token);
        Ok(start.elapsed())
    }
}
