//! Criterion benchmarks of the basic costs: a switch round trip, a whole
//! coroutine call on a reused stack and on a pooled stack, `on_stack`, and
//! making and dropping stacks.
//!
//! Criterion is a dev-dependency on x86-64 Linux only (the host CI runs
//! the benchmarks on), so that cross targets under qemu build less.

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod bench {
    use std::hint::black_box;

    use criterion::{criterion_group, Criterion};
    use switchback::stack::{maybe_grow, DefaultStack, StackPool};
    use switchback::{on_stack, Coroutine, ScopedCoroutine, Yielder};

    /// resume + suspend of an identity coroutine.
    fn coroutine_switch(c: &mut Criterion) {
        let mut identity = Coroutine::<usize, usize, ()>::new(|yielder, mut input| loop {
            input = yielder.suspend(input);
        });
        c.bench_function("coroutine_switch", |b| {
            b.iter(|| identity.resume(black_box(0)))
        });
    }

    /// Create a coroutine on an already-allocated stack, run it to return, drop it.
    fn coroutine_call(c: &mut Criterion) {
        let mut stack = DefaultStack::default();
        c.bench_function("coroutine_call", |b| {
            b.iter(|| {
                let coroutine = ScopedCoroutine::with_stack(
                    &mut stack,
                    |_: &Yielder<usize, ()>, input: usize| input,
                );
                coroutine.scope(|mut co| co.resume(black_box(0)))
            })
        });
    }

    /// The same as `coroutine_call`, with a stack taken from (and returned to) a
    /// `StackPool`.
    fn coroutine_call_pooled(c: &mut Criterion) {
        let pool = StackPool::default();
        c.bench_function("coroutine_call_pooled", |b| {
            b.iter(|| {
                let mut coroutine: Coroutine<usize, (), usize, _> =
                    Coroutine::with_pool(&pool, |_, input| input);
                coroutine.resume(black_box(0))
            })
        });
    }

    /// `on_stack` with an empty closure.
    fn stack_call(c: &mut Criterion) {
        let mut stack = DefaultStack::default();
        c.bench_function("stack_call", |b| {
            b.iter(|| on_stack(&mut stack, || black_box(())))
        });
    }

    /// `maybe_grow` with enough stack left, so that the closure runs in
    /// place: on the thread's stack, and on a `DefaultStack` (as in a
    /// coroutine).
    fn maybe_grow_in_place(c: &mut Criterion) {
        c.bench_function("maybe_grow_in_place_thread", |b| {
            b.iter(|| maybe_grow(32 * 1024, 1024 * 1024, || black_box(1)))
        });
        on_stack(DefaultStack::default(), || {
            c.bench_function("maybe_grow_in_place_on_stack", |b| {
                b.iter(|| maybe_grow(32 * 1024, 1024 * 1024, || black_box(1)))
            });
        });
    }

    /// `DefaultStack::new(16 KiB)` for each of a batch of stacks held at
    /// once, then the batch dropped: a slot of a slab each (Linux 6.13 and
    /// later), or a mapping each (`SWITCHBACK_SLAB_STACKS=0`). Nothing runs
    /// on them, so no page of theirs is touched. Batches of at most
    /// 20,000 (`BATCH`), within the default `vm.max_map_count` for a mapping each.
    fn default_stacks_made_and_dropped(c: &mut Criterion) {
        const BATCH: u64 = 20_000;
        c.bench_function("default_stack_new_and_drop_16_kib", |b| {
            b.iter_custom(|iters| {
                let start = std::time::Instant::now();
                let mut left = iters;
                while left > 0 {
                    let batch = left.min(BATCH);
                    let held: Vec<DefaultStack> = (0..batch)
                        .map(|_| DefaultStack::new(16 * 1024).unwrap())
                        .collect();
                    drop(black_box(held));
                    left -= batch;
                }
                start.elapsed()
            })
        });
    }

    criterion_group!(
        benches,
        coroutine_switch,
        coroutine_call,
        coroutine_call_pooled,
        stack_call,
        maybe_grow_in_place,
        default_stacks_made_and_dropped
    );
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
criterion::criterion_main!(bench::benches);

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn main() {
    eprintln!("the criterion benchmarks run on x86-64 Linux only");
}
