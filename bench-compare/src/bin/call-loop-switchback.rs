//! `call-loop-switchback OP N`: N iterations of one of the harness's
//! switchback-only operations, for instruction counts under callgrind
//! (`OPS="call call-pooled" scripts/callgrind-switch.sh`).
//!
//! - `call`: create a coroutine on a reused stack, resume it to return,
//!   drop it (as the harness's `call`).
//! - `call-pooled`: the same on a stack from a `StackPool`.
//! - `maybe-grow`: `maybe_grow` with enough stack left, on the thread's
//!   stack.

use std::hint::black_box;

use switchback::stack::{maybe_grow, DefaultStack, StackPool};
use switchback::{Coroutine, ScopedCoroutine};

const USAGE: &str = "usage: call-loop-switchback call|call-pooled|maybe-grow ITERATIONS";

fn main() {
    let mut args = std::env::args().skip(1);
    let op = args.next().expect(USAGE);
    let n: usize = args.next().and_then(|n| n.parse().ok()).expect(USAGE);
    match op.as_str() {
        "call" => call(n),
        "call-pooled" => call_pooled(n),
        "maybe-grow" => maybe_grow_in_place(n),
        _ => panic!("{USAGE}"),
    }
}

// One function per operation, so that each loop is compiled on its own.

#[inline(never)]
fn call(n: usize) {
    let mut stack = DefaultStack::default();
    for i in 0..n {
        let co = ScopedCoroutine::<usize, (), usize, _>::with_stack(&mut stack, |_, x| x);
        black_box(co.scope(|mut co| co.resume(black_box(i))));
    }
}

#[inline(never)]
fn call_pooled(n: usize) {
    let pool = StackPool::default();
    for i in 0..n {
        let mut co = Coroutine::<usize, (), usize, _>::with_pool(&pool, |_, x| x);
        black_box(co.resume(black_box(i)));
    }
}

#[inline(never)]
fn maybe_grow_in_place(n: usize) {
    for i in 0..n {
        black_box(maybe_grow(32 * 1024, 1024 * 1024, || black_box(i)));
    }
}
