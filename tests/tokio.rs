//! `CoroutineFuture` on tokio: timers and channels awaited from deep inside
//! the closure, thousands of concurrent futures on pooled stacks,
//! cancellation, panics, nested bridges, the current-thread runtime, a
//! `LocalSet`, and the multi-thread runtime through `SendCoroutineFuture`.
//!
//! tokio is a dev-dependency on x86-64 Linux only (see Cargo.toml).
#![cfg(all(
    target_arch = "x86_64",
    target_os = "linux",
    feature = "default-stack",
    feature = "unwind"
))]

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use switchback::future::{CoroutineFuture, SendCoroutineFuture, Suspender};
use switchback::stack::StackPool;
use tokio::runtime::{Builder, Runtime};
use tokio::sync::{mpsc, oneshot};
use tokio::task::LocalSet;

mod common;
use common::{counter, panic_message, under_valgrind, Counted};

fn current_thread() -> Runtime {
    Builder::new_current_thread().enable_time().build().unwrap()
}

/// Ordinary blocking-style code, `depth` frames down, that sleeps and then
/// receives from a channel.
fn deep(s: &Suspender, rx: &mut mpsc::Receiver<u32>, depth: u32) -> u32 {
    if depth == 0 {
        s.block_on(tokio::time::sleep(Duration::from_millis(1)));
        s.block_on(rx.recv()).unwrap()
    } else {
        deep(s, rx, depth - 1) + 1
    }
}

#[test]
fn timers_and_channels_awaited_deep_inside_the_closure() {
    let rt = current_thread();
    let (tx, mut rx) = mpsc::channel(1);
    let result = rt.block_on(async move {
        let sender = tokio::spawn(async move {
            for i in 0..3 {
                tokio::time::sleep(Duration::from_millis(2)).await;
                tx.send(i * 100).await.unwrap();
            }
        });
        let result =
            CoroutineFuture::new(move |s| (0..3).map(|_| deep(s, &mut rx, 50)).collect::<Vec<_>>())
                .await;
        sender.await.unwrap();
        result
    });
    assert_eq!(result, [50, 150, 250]);
}

#[test]
fn thousands_of_concurrent_futures_on_pooled_stacks() {
    let count: u32 = if under_valgrind() { 500 } else { 10_000 };
    // 64 KiB stacks: the futures touch a few pages each.
    let pool = StackPool::new(64 * 1024).unwrap();
    let rt = current_thread();
    let local = LocalSet::new();
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let total = local.block_on(&rt, async {
        let mut senders = Vec::new();
        for i in 0..count {
            let (tx, rx) = oneshot::channel::<u32>();
            senders.push(tx);
            let done = done_tx.clone();
            tokio::task::spawn_local(CoroutineFuture::with_pool(&pool, move |s| {
                s.block_on(tokio::time::sleep(Duration::from_millis(u64::from(i % 5))));
                let got = s.block_on(rx).unwrap();
                done.send(got + i).unwrap();
            }));
        }
        drop(done_tx);
        // Every future is now waiting on its stack.
        tokio::task::yield_now().await;
        for (i, tx) in senders.into_iter().enumerate() {
            tx.send(i as u32).unwrap();
        }
        let mut total = 0u64;
        while let Some(value) = done_rx.recv().await {
            total += u64::from(value);
        }
        total
    });
    let n = u64::from(count);
    assert_eq!(total, n * (n - 1));
    // Every stack is back in the pool (up to its idle bound) or unmapped.
    assert!(pool.allocated_count() <= 64 + 8);
    assert!(pool.allocated_count() >= 1);
}

#[test]
fn dropping_on_timeout_cancels_and_runs_destructors() {
    let rt = current_thread();
    let drops = counter();
    let d = drops.clone();
    let reached_end = Rc::new(Cell::new(false));
    let end = reached_end.clone();
    let future = CoroutineFuture::new(move |s| {
        let _guard = Counted(d);
        s.block_on(tokio::time::sleep(Duration::from_secs(3600)));
        end.set(true);
    });
    let outcome =
        rt.block_on(async { tokio::time::timeout(Duration::from_millis(5), future).await });
    assert!(outcome.is_err(), "the timeout fired");
    assert_eq!(drops.get(), 1);
    assert!(!reached_end.get());
}

#[test]
fn aborting_a_spawned_task_unwinds_its_coroutine() {
    let rt = current_thread();
    let local = LocalSet::new();
    let drops = counter();
    let d = drops.clone();
    local.block_on(&rt, async move {
        let (started_tx, started_rx) = oneshot::channel();
        let task = tokio::task::spawn_local(CoroutineFuture::new(move |s| {
            let _guard = Counted(d);
            started_tx.send(()).unwrap();
            s.block_on(std::future::pending::<()>())
        }));
        started_rx.await.unwrap();
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
    });
    assert_eq!(drops.get(), 1);
}

#[test]
fn a_panic_comes_out_as_the_tasks_panic() {
    let rt = current_thread();
    let local = LocalSet::new();
    let error = local.block_on(&rt, async {
        tokio::task::spawn_local(CoroutineFuture::new(|s| {
            s.block_on(tokio::time::sleep(Duration::from_millis(1)));
            panic!("failed after a sleep");
        }))
        .await
        .unwrap_err()
    });
    assert!(error.is_panic());
    assert_eq!(panic_message(&*error.into_panic()), "failed after a sleep");
}

#[test]
fn nested_bridges_on_tokio() {
    let rt = current_thread();
    let value = rt.block_on(CoroutineFuture::new(|outer| {
        outer.block_on(tokio::time::sleep(Duration::from_millis(1)));
        let inner = CoroutineFuture::new(|inner| {
            inner.block_on(tokio::time::sleep(Duration::from_millis(1)));
            inner.block_on(async {
                tokio::time::sleep(Duration::from_millis(1)).await;
                20
            })
        });
        outer.block_on(inner) + 1
    }));
    assert_eq!(value, 21);
}

// With `sanitizer`, futures stay on one thread (see SendCoroutineFuture).
#[cfg(not(feature = "sanitizer"))]
#[test]
fn multi_thread_runtime_through_send_coroutine_future() {
    let rt = Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let pool = StackPool::new(64 * 1024).unwrap();
    let results = rt.block_on(async {
        let (tx, mut rx) = mpsc::channel::<u64>(16);
        let mut tasks = Vec::new();
        for i in 0..200u64 {
            let tx = tx.clone();
            // SAFETY: only u64s, a Sender (Send) and a Duration live across
            // block_on, and the closure uses no thread-local.
            let future = unsafe {
                SendCoroutineFuture::with_pool(&pool, move |s| {
                    s.block_on(tokio::time::sleep(Duration::from_millis(i % 3)));
                    s.block_on(tx.send(i)).unwrap();
                    s.block_on(tokio::task::yield_now());
                    i * 2
                })
            };
            tasks.push(tokio::spawn(future));
        }
        drop(tx);
        let mut received = 0;
        while let Some(value) = rx.recv().await {
            received += value;
        }
        let mut returned = 0;
        for task in tasks {
            returned += task.await.unwrap();
        }
        (received, returned)
    });
    assert_eq!(results, (199 * 100, 199 * 200));
}

// With `sanitizer`, futures stay on one thread (see SendCoroutineFuture).
#[cfg(not(feature = "sanitizer"))]
#[test]
fn block_on_on_a_multi_thread_runtime_handle_spawned_from_inside() {
    // The closure spawns onto the runtime it runs on and waits for it.
    let rt = Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    // SAFETY: only a JoinHandle (Send) lives across block_on.
    let future = unsafe {
        SendCoroutineFuture::new(|s| {
            let handle = tokio::spawn(async { 6 * 7 });
            s.block_on(handle).unwrap()
        })
    };
    assert_eq!(rt.block_on(future), 42);
}
