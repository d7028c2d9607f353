//! `switch-loop-switchback N`: N resume + suspend round trips of an identity
//! coroutine on switchback, for `scripts/callgrind-switch.sh`.

use std::hint::black_box;

/// The iteration count from the command line.
fn iterations() -> usize {
    std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .expect("usage: switch-loop-switchback ITERATIONS")
}

fn main() {
    let n = iterations();
    let mut co = switchback::Coroutine::<usize, usize, ()>::new(|yielder, mut x| loop {
        x = yielder.suspend(x);
    });
    for i in 0..n {
        black_box(co.resume(black_box(i)));
    }
}
