//! Criterion benchmarks of the Future bridge: one `Suspender::block_on` of
//! a ready future, one pending-then-ready round trip, and a whole
//! `CoroutineFuture` (pooled stack) run to completion, each against a plain
//! `async` block doing the same, all polled by hand with a no-op waker
//! through `dyn Future`.
//!
//! Criterion is a dev-dependency on x86-64 Linux only (see
//! benches/coroutine.rs).

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod bench {
    use std::future::{ready, Future};
    use std::hint::black_box;
    use std::pin::{pin, Pin};
    use std::task::{Context, Poll, Waker};
    use std::time::{Duration, Instant};

    use criterion::{criterion_group, Criterion};
    use switchback::future::CoroutineFuture;

    /// Pending at its first poll (waking its waker, as a real future
    /// would), ready at the second.
    struct PendingOnce(bool);

    impl Future for PendingOnce {
        type Output = ();

        #[inline]
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            // Opaque, so that the compiler cannot fold the async loop.
            if black_box(self.0) {
                Poll::Ready(())
            } else {
                self.0 = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }

    /// Polls `future` until it is ready, as an executor would (through a
    /// `dyn Future`, as a runtime's type-erased task does, so that the
    /// compiler cannot merge the polls into one loop), and returns how long
    /// that took.
    fn time_to_ready<F: Future<Output = ()>>(future: F) -> Duration {
        let mut future = pin!(future);
        let mut task: Pin<&mut dyn Future<Output = ()>> = black_box(future.as_mut());
        let mut cx = Context::from_waker(Waker::noop());
        let start = Instant::now();
        while task.as_mut().poll(&mut cx).is_pending() {}
        start.elapsed()
    }

    /// `iters` awaits of a ready future: inside one CoroutineFuture through
    /// block_on, and in an async block.
    fn ready_future(c: &mut Criterion) {
        let mut group = c.benchmark_group("future_ready");
        group.bench_function("block_on", |b| {
            b.iter_custom(|iters| {
                time_to_ready(CoroutineFuture::new(move |s| {
                    for _ in 0..iters {
                        black_box(s.block_on(ready(black_box(1u64))));
                    }
                }))
            })
        });
        group.bench_function("async_await", |b| {
            b.iter_custom(|iters| {
                time_to_ready(async move {
                    for _ in 0..iters {
                        black_box(ready(black_box(1u64)).await);
                    }
                })
            })
        });
        group.finish();
    }

    /// `iters` awaits of a future that is pending once: each is one Pending
    /// out of the outer poll and one more poll.
    fn pending_then_ready(c: &mut Criterion) {
        let mut group = c.benchmark_group("future_pending_then_ready");
        group.bench_function("block_on", |b| {
            b.iter_custom(|iters| {
                time_to_ready(CoroutineFuture::new(move |s| {
                    for _ in 0..iters {
                        s.block_on(PendingOnce(false));
                    }
                }))
            })
        });
        group.bench_function("async_await", |b| {
            b.iter_custom(|iters| {
                time_to_ready(async move {
                    for _ in 0..iters {
                        PendingOnce(false).await;
                    }
                })
            })
        });
        group.finish();
    }

    /// Create a future that awaits one ready value, poll it to completion,
    /// drop it: a CoroutineFuture (stack from the global pool) and an
    /// async block.
    fn whole_future(c: &mut Criterion) {
        let mut group = c.benchmark_group("future_create_and_run");
        let mut cx = Context::from_waker(Waker::noop());
        group.bench_function("coroutine_future", |b| {
            b.iter(|| {
                let x = black_box(1u64);
                let mut future = CoroutineFuture::new(move |s| s.block_on(ready(x)));
                Pin::new(&mut future).poll(&mut cx)
            })
        });
        group.bench_function("async_block", |b| {
            b.iter(|| {
                let x = black_box(1u64);
                let future = pin!(async move { ready(x).await });
                future.poll(&mut cx)
            })
        });
        group.finish();
    }

    criterion_group!(benches, ready_future, pending_then_ready, whole_future);
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
criterion::criterion_main!(bench::benches);

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn main() {
    eprintln!("the criterion benchmarks run on x86-64 Linux only");
}
