//! `switch-loop-context N`: N resume + suspend round trips of an identity
//! coroutine on context (Boost.Context), for `scripts/callgrind-switch.sh`.

use std::hint::black_box;

use context::stack::ProtectedFixedSizeStack;
use context::{Context, Transfer};

/// The iteration count from the command line.
fn iterations() -> usize {
    std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .expect("usage: switch-loop-context ITERATIONS")
}

/// The identity coroutine: hands every value back.
extern "C" fn identity_loop(mut t: Transfer) -> ! {
    loop {
        // SAFETY: `t.context` is the suspended caller, resumed exactly once.
        t = unsafe { t.context.resume(t.data) };
    }
}

fn main() {
    let n = iterations();
    let stack = ProtectedFixedSizeStack::default();
    // SAFETY: the stack outlives the context, and each context is resumed
    // once.
    let mut ctx = unsafe { Context::new(&stack, identity_loop) };
    for i in 0..n {
        let t = unsafe { ctx.resume(black_box(i)) };
        ctx = t.context;
        black_box(t.data);
    }
}
