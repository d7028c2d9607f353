//! Criterion benchmarks of coroutines as iterators: summing 1000 yielded
//! numbers, and creating and running a generator that yields once, with a switchback
//! `generator`, a hand-written `Iterator` and the `generator` crate.
//!
//! Criterion and the `generator` crate are dev-dependencies on x86-64 Linux
//! only (see benches/coroutine.rs).

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod bench {
    use std::hint::black_box;

    use criterion::{criterion_group, Criterion};
    use generator::{done, Gn};

    const ITEMS: u64 = 1000;

    /// The hand-written equivalent: counts from 0 to `end`.
    struct Counter {
        next: u64,
        end: u64,
    }

    impl Iterator for Counter {
        type Item = u64;

        #[inline]
        fn next(&mut self) -> Option<u64> {
            (self.next < self.end).then(|| {
                self.next += 1;
                self.next - 1
            })
        }
    }

    /// Sum 1000 yielded numbers (the generator's creation included).
    fn sum_items(c: &mut Criterion) {
        let mut group = c.benchmark_group("iter_sum_1000");
        group.bench_function("switchback_generator", |b| {
            b.iter(|| {
                let end = black_box(ITEMS);
                switchback::generator(move |y| {
                    for i in 0..end {
                        y.suspend(i);
                    }
                })
                .sum::<u64>()
            })
        });
        group.bench_function("generator_crate", |b| {
            b.iter(|| {
                let end = black_box(ITEMS);
                Gn::<()>::new_scoped(move |mut s| {
                    for i in 0..end {
                        s.yield_with(i);
                    }
                    done!()
                })
                .sum::<u64>()
            })
        });
        group.bench_function("hand_written", |b| {
            b.iter(|| {
                Counter {
                    next: 0,
                    end: black_box(ITEMS),
                }
                .map(black_box)
                .sum::<u64>()
            })
        });
        group.finish();
    }

    /// Create a generator that yields one item, run it to the end (so that
    /// dropping it unwinds nothing), drop it.
    fn create_and_run_one(c: &mut Criterion) {
        let mut group = c.benchmark_group("iter_create_yield_one");
        group.bench_function("switchback_generator", |b| {
            b.iter(|| {
                let x = black_box(7u64);
                switchback::generator(move |y| y.suspend(x)).sum::<u64>()
            })
        });
        group.bench_function("generator_crate", |b| {
            b.iter(|| {
                let x = black_box(7u64);
                Gn::<()>::new_scoped(move |mut s| {
                    s.yield_with(x);
                    done!()
                })
                .sum::<u64>()
            })
        });
        group.finish();
    }

    criterion_group!(benches, sum_items, create_and_run_one);
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
criterion::criterion_main!(bench::benches);

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn main() {
    eprintln!("the criterion benchmarks run on x86-64 Linux only");
}
