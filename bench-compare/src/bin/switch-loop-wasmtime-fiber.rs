//! `switch-loop-wasmtime-fiber N`: N resume + suspend round trips of an identity
//! coroutine on wasmtime-fiber, for `scripts/callgrind-switch.sh`.

use std::hint::black_box;

use wasmtime_fiber::{Fiber, FiberStack};

/// The iteration count from the command line.
fn iterations() -> usize {
    std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .expect("usage: switch-loop-wasmtime-fiber ITERATIONS")
}

fn main() {
    let n = iterations();
    let stack = FiberStack::new(1024 * 1024, false).expect("allocating a fiber stack");
    let fiber = Fiber::<usize, usize, ()>::new(stack, |mut x, suspend| {
        while x != usize::MAX {
            x = suspend.suspend(x);
        }
    })
    .expect("creating a fiber");
    for i in 0..n {
        let _ = black_box(fiber.resume(black_box(i)));
    }
    // A fiber must finish before it is dropped.
    assert!(fiber.resume(usize::MAX).is_ok());
}
