//! `switch-loop-generator N`: N resume + suspend round trips of an identity
//! coroutine on generator, for `scripts/callgrind-switch.sh`.

use std::hint::black_box;

/// The iteration count from the command line.
fn iterations() -> usize {
    std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .expect("usage: switch-loop-generator ITERATIONS")
}

fn main() {
    let n = iterations();
    let mut g = generator::Gn::<usize>::new_scoped(|mut s| {
        let mut x = s.get_yield().unwrap_or_default();
        loop {
            x = s.yield_(x).unwrap_or_default();
        }
    });
    for i in 0..n {
        black_box(g.send(black_box(i)));
    }
}
