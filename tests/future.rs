//! `CoroutineFuture` driven by hand (no runtime, so these run on every
//! target): wakers, pending and ready, drop, panics, re-entrancy, nesting,
//! and a `SendCoroutineFuture` moved between threads.
#![cfg(all(any(unix, windows), feature = "default-stack", feature = "unwind"))]

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use switchback::future::{CoroutineFuture, SendCoroutineFuture, Suspender};
use switchback::stack::{DefaultStack, StackPool};
use switchback::ScopedCoroutine;

mod common;
use common::{counter, panic_message, run_child, Counted};

/// A waker that counts its wakes.
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting_waker() -> (Arc<CountingWaker>, Waker) {
    let count = Arc::new(CountingWaker(AtomicUsize::new(0)));
    (count.clone(), Waker::from(count))
}

fn poll<F: Future + Unpin>(future: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(future).poll(&mut Context::from_waker(waker))
}

/// Polls `future` once, checks that it is pending, and drops it.
fn drop_while_pending<F: Future + Unpin>(mut future: F) {
    assert!(poll(&mut future, Waker::noop()).is_pending());
    drop(future);
}

/// Pending `times` times (waking its waker each time), then ready with
/// how often it was polled.
fn pending_times(mut times: u32) -> impl Future<Output = u32> {
    let mut polls = 0;
    poll_fn(move |cx| {
        polls += 1;
        if times == 0 {
            Poll::Ready(polls)
        } else {
            times -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
}

#[test]
fn a_ready_future_completes_in_one_poll() {
    let mut future = CoroutineFuture::new(|s| s.block_on(async { 5 }) + s.block_on(async { 6 }));
    assert!(!future.done());
    assert_eq!(poll(&mut future, Waker::noop()), Poll::Ready(11));
    assert!(future.done());
}

#[test]
fn each_pending_inner_poll_is_one_pending_outer_poll() {
    let (count, waker) = counting_waker();
    let mut future = CoroutineFuture::new(|s| s.block_on(pending_times(3)));
    for _ in 0..3 {
        assert_eq!(poll(&mut future, &waker), Poll::Pending);
    }
    assert_eq!(poll(&mut future, &waker), Poll::Ready(4));
    assert_eq!(count.0.load(Ordering::SeqCst), 3);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "Waker::will_wake compares vtable addresses, which Miri does not deduplicate"
)]
fn the_inner_future_sees_the_waker_of_the_current_poll() {
    let stored: Rc<RefCell<Option<Waker>>> = Rc::default();
    let in_future = stored.clone();
    let mut future = CoroutineFuture::new(move |s| {
        let mut polls = 0;
        s.block_on(poll_fn(|cx| {
            *in_future.borrow_mut() = Some(cx.waker().clone());
            polls += 1;
            if polls < 3 {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        }))
    });
    let (first, first_waker) = counting_waker();
    let (second, second_waker) = counting_waker();
    assert_eq!(poll(&mut future, &first_waker), Poll::Pending);
    assert_eq!(poll(&mut future, &second_waker), Poll::Pending);
    // The waker kept from the second poll is the second task's.
    stored.borrow_mut().take().unwrap().wake();
    assert_eq!(first.0.load(Ordering::SeqCst), 0);
    assert_eq!(second.0.load(Ordering::SeqCst), 1);
    assert_eq!(poll(&mut future, &first_waker), Poll::Ready(()));
    assert!(stored.borrow().as_ref().unwrap().will_wake(&first_waker));
}

fn recurse(s: &Suspender, depth: u32) -> u32 {
    if depth == 0 {
        s.block_on(pending_times(1))
    } else {
        // A frame that stays live across the suspension.
        let local = [depth; 16];
        recurse(s, depth - 1) + std::hint::black_box(local)[15] - depth
    }
}

#[test]
fn block_on_from_deep_in_the_call_stack() {
    let mut future = CoroutineFuture::new(|s| recurse(s, 200) + recurse(s, 100));
    assert_eq!(poll(&mut future, Waker::noop()), Poll::Pending);
    assert_eq!(poll(&mut future, Waker::noop()), Poll::Pending);
    assert_eq!(poll(&mut future, Waker::noop()), Poll::Ready(4));
}

#[test]
fn dropping_a_pending_future_unwinds_its_stack() {
    let pool = StackPool::new(64 * 1024).unwrap();
    let drops = counter();
    let d = drops.clone();
    let mut future = CoroutineFuture::with_pool(&pool, move |s| {
        let _on_stack = Counted(d.clone());
        let waited = Counted(d.clone());
        s.block_on(async move {
            let _held_by_the_future = waited;
            std::future::pending::<()>().await
        });
        unreachable!("the pending future never completes");
    });
    assert_eq!(poll(&mut future, Waker::noop()), Poll::Pending);
    assert_eq!(drops.get(), 0);
    drop(future);
    // The local, and the future block_on was waiting for.
    assert_eq!(drops.get(), 2);
    assert_eq!(pool.idle_count(), 1);
}

#[test]
fn dropping_a_future_never_polled_drops_the_closure() {
    let drops = counter();
    let captured = Counted(drops.clone());
    let future = CoroutineFuture::new(move |_| drop(captured));
    drop(future);
    assert_eq!(drops.get(), 1);
}

#[test]
fn a_panic_in_the_closure_comes_out_of_poll() {
    let mut future = CoroutineFuture::new(|s| {
        s.block_on(pending_times(1));
        panic!("the closure gave up");
    });
    assert_eq!(poll(&mut future, Waker::noop()), Poll::Pending);
    let payload = catch_unwind(AssertUnwindSafe(|| poll(&mut future, Waker::noop()))).unwrap_err();
    assert_eq!(panic_message(&*payload), "the closure gave up");
    assert!(future.done());
    let again = catch_unwind(AssertUnwindSafe(|| poll(&mut future, Waker::noop()))).unwrap_err();
    assert!(panic_message(&*again).contains("polled after it completed"));
}

#[test]
fn a_panic_in_the_awaited_future_comes_out_of_poll() {
    let mut future = CoroutineFuture::new(|s| {
        s.block_on(async {
            pending_times(1).await;
            panic!("the inner future broke")
        })
    });
    assert_eq!(poll(&mut future, Waker::noop()), Poll::<()>::Pending);
    let payload = catch_unwind(AssertUnwindSafe(|| poll(&mut future, Waker::noop()))).unwrap_err();
    assert_eq!(panic_message(&*payload), "the inner future broke");
}

#[test]
fn a_panic_caught_inside_the_closure_leaves_the_suspender_usable() {
    let mut future = CoroutineFuture::new(|s| {
        let caught = catch_unwind(AssertUnwindSafe(|| {
            s.block_on(async { panic!("caught inside") })
        }));
        assert!(caught.is_err());
        s.block_on(pending_times(2))
    });
    assert_eq!(poll(&mut future, Waker::noop()), Poll::Pending);
    assert_eq!(poll(&mut future, Waker::noop()), Poll::Pending);
    assert_eq!(poll(&mut future, Waker::noop()), Poll::Ready(3));
}

#[test]
fn polling_after_ready_panics() {
    let mut future = CoroutineFuture::new(|_| 1);
    assert_eq!(poll(&mut future, Waker::noop()), Poll::Ready(1));
    let payload = catch_unwind(AssertUnwindSafe(|| poll(&mut future, Waker::noop()))).unwrap_err();
    assert!(panic_message(&*payload).contains("polled after it completed"));
}

#[test]
fn block_on_inside_a_future_of_the_same_suspender_panics() {
    let mut future = CoroutineFuture::new(|s| {
        s.block_on(async {
            // This would suspend the coroutine in the middle of the async
            // block's poll.
            s.block_on(pending_times(1))
        })
    });
    let payload = catch_unwind(AssertUnwindSafe(|| poll(&mut future, Waker::noop()))).unwrap_err();
    assert!(
        panic_message(&*payload).contains("use .await inside async code"),
        "{}",
        panic_message(&*payload)
    );
}

#[test]
fn nested_bridges() {
    let mut future = CoroutineFuture::new(|outer| {
        let inner = CoroutineFuture::new(|inner| inner.block_on(pending_times(2)) * 10);
        let from_inner = outer.block_on(inner);
        from_inner + outer.block_on(pending_times(1))
    });
    // The inner bridge's two Pendings, then the outer's own one.
    for _ in 0..3 {
        assert_eq!(poll(&mut future, Waker::noop()), Poll::Pending);
    }
    assert_eq!(poll(&mut future, Waker::noop()), Poll::Ready(32));
}

#[test]
fn dropping_nested_pending_bridges_unwinds_both() {
    let drops = counter();
    let d = drops.clone();
    let future = CoroutineFuture::new(move |outer| {
        let _outer_local = Counted(d.clone());
        let d = d.clone();
        outer.block_on(CoroutineFuture::new(move |inner| {
            let _inner_local = Counted(d);
            inner.block_on(std::future::pending::<()>())
        }))
    });
    drop_while_pending(future);
    assert_eq!(drops.get(), 2);
}

#[test]
fn block_on_from_a_coroutine_nested_inside_the_closure() {
    // The scoped coroutine's stack is the one that is suspended: the whole
    // chain waits, and the next poll continues on it.
    let mut future = CoroutineFuture::new(|s| {
        let nested = ScopedCoroutine::new(|yielder, ()| {
            let a = s.block_on(pending_times(1));
            yielder.suspend(a);
            s.block_on(pending_times(2))
        });
        nested.scope(|mut co| {
            let a = co.resume(()).as_yield().unwrap();
            let b = s.block_on(pending_times(1));
            let c = co.resume(()).as_return().unwrap();
            a * 100 + b * 10 + c
        })
    });
    let mut pendings = 0;
    let result = loop {
        match poll(&mut future, Waker::noop()) {
            Poll::Pending => pendings += 1,
            Poll::Ready(value) => break value,
        }
    };
    assert_eq!((pendings, result), (4, 223));
}

#[test]
fn dropping_while_suspended_inside_a_nested_coroutine_unwinds_both_stacks() {
    let drops = counter();
    let d = drops.clone();
    let future = CoroutineFuture::new(move |s| {
        let _on_bridge_stack = Counted(d.clone());
        ScopedCoroutine::new(|_: &switchback::Yielder<(), ()>, ()| {
            let _on_nested_stack = Counted(d.clone());
            s.block_on(std::future::pending::<()>())
        })
        .scope(|mut co| co.resume(()).as_return())
    });
    drop_while_pending(future);
    assert_eq!(drops.get(), 2);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "checks which stack the closure runs on, which Miri's thread-per-coroutine switch does not show"
)]
fn with_stack_runs_on_the_given_stack() {
    let stack = DefaultStack::new(128 * 1024).unwrap();
    let mut future = CoroutineFuture::with_stack(stack, |s| {
        let local = 0u8;
        let address = &local as *const u8 as usize;
        s.block_on(pending_times(1));
        address
    });
    assert_eq!(poll(&mut future, Waker::noop()), Poll::Pending);
    let Poll::Ready(address) = poll(&mut future, Waker::noop()) else {
        panic!("not ready")
    };
    let here = 0u8;
    // The closure's local was not on this thread's stack (the stack is
    // 128 KiB, and was mapped elsewhere).
    assert!((address as isize - &here as *const u8 as isize).unsigned_abs() > 128 * 1024);
}

#[test]
fn the_future_is_unpin_and_debug() {
    fn assert_unpin<T: Unpin>(_: &T) {}
    let future = CoroutineFuture::new(|_| Rc::new(Cell::new(1)));
    assert_unpin(&future);
    assert_eq!(
        format!("{future:?}"),
        "CoroutineFuture { started: false, done: false }"
    );
}

#[test]
fn block_on_in_a_destructor_during_drop_polls_once() {
    let result: Rc<Cell<u32>> = Rc::default();
    let r = result.clone();
    struct CleanUp<'a>(&'a Suspender, Rc<Cell<u32>>);
    impl Drop for CleanUp<'_> {
        fn drop(&mut self) {
            self.1.set(self.0.block_on(async { 9 }));
        }
    }
    let future = CoroutineFuture::new(move |s| {
        let _cleanup = CleanUp(s, r);
        s.block_on(std::future::pending::<()>())
    });
    drop_while_pending(future);
    assert_eq!(result.get(), 9);
}

/// A cleanup that waits: calls `block_on` on a pending future when dropped.
struct WaitingCleanUp<'a>(&'a Suspender);

impl Drop for WaitingCleanUp<'_> {
    fn drop(&mut self) {
        self.0.block_on(pending_times(1));
    }
}

/// Runs `test` of this binary in a child process with `var` set, and checks
/// that it aborted saying that an unwinding coroutine cannot wait.
fn assert_child_aborts_unable_to_wait(test: &str, var: &str) {
    let (status, stderr) = run_child(test, var);
    assert!(!status.success());
    assert!(
        stderr.contains("an unwinding coroutine cannot wait for anything"),
        "{stderr}"
    );
}

#[test]
#[cfg_attr(miri, ignore = "runs a child process, which Miri cannot")]
fn block_on_a_pending_future_during_drop_aborts_with_a_message() {
    if std::env::var_os("SWITCHBACK_BLOCK_ON_IN_DROP").is_some() {
        drop_while_pending(CoroutineFuture::new(|s| {
            let _cleanup = WaitingCleanUp(s);
            s.block_on(std::future::pending::<()>())
        }));
        return;
    }
    assert_child_aborts_unable_to_wait(
        "block_on_a_pending_future_during_drop_aborts_with_a_message",
        "SWITCHBACK_BLOCK_ON_IN_DROP",
    );
}

#[test]
fn block_on_in_a_destructor_during_a_panic_polls_once() {
    let result: Rc<Cell<u32>> = Rc::default();
    let r = result.clone();
    struct CleanUp<'a>(&'a Suspender, Rc<Cell<u32>>);
    impl Drop for CleanUp<'_> {
        fn drop(&mut self) {
            self.1.set(self.0.block_on(async { 5 }));
        }
    }
    let mut future = CoroutineFuture::new(move |s| {
        let _cleanup = CleanUp(s, r);
        s.block_on(pending_times(1));
        panic!("failing with a cleanup on the stack");
    });
    assert_eq!(poll(&mut future, Waker::noop()), Poll::Pending);
    let payload = catch_unwind(AssertUnwindSafe(|| poll(&mut future, Waker::noop()))).unwrap_err();
    assert_eq!(
        panic_message(&*payload),
        "failing with a cleanup on the stack"
    );
    assert_eq!(result.get(), 5);
}

#[test]
#[cfg_attr(miri, ignore = "runs a child process, which Miri cannot")]
fn block_on_a_pending_future_during_a_panic_aborts_with_a_message() {
    if std::env::var_os("SWITCHBACK_BLOCK_ON_IN_PANIC").is_some() {
        let mut future = CoroutineFuture::new(|s| {
            let _cleanup = WaitingCleanUp(s);
            panic!("failing with a waiting cleanup on the stack");
        });
        let _ = poll(&mut future, Waker::noop());
        return;
    }
    assert_child_aborts_unable_to_wait(
        "block_on_a_pending_future_during_a_panic_aborts_with_a_message",
        "SWITCHBACK_BLOCK_ON_IN_PANIC",
    );
}

/// What one poll gave: its result, or the message it panicked with.
type Polled = Result<Poll<u32>, String>;

/// Polls a `CoroutineFuture` from a destructor: what a cleanup does that
/// drives async code to completion while the thread unwinds. What the poll
/// returned or panicked with goes to `outcome`; a future still pending is
/// kept in `kept`, as an executor keeps a task.
struct PollsWhenDropped {
    future: Option<CoroutineFuture<u32>>,
    outcome: Rc<RefCell<Vec<Polled>>>,
    kept: Rc<RefCell<Option<CoroutineFuture<u32>>>>,
    polls: u32,
}

impl Drop for PollsWhenDropped {
    fn drop(&mut self) {
        let mut future = self.future.take().unwrap();
        for _ in 0..self.polls {
            let polled = catch_unwind(AssertUnwindSafe(|| poll(&mut future, Waker::noop())));
            let done = !matches!(polled, Ok(Poll::Pending));
            self.outcome
                .borrow_mut()
                .push(polled.map_err(|payload| panic_message(&*payload)));
            if done {
                return;
            }
        }
        *self.kept.borrow_mut() = Some(future);
    }
}

/// Panics with `PollsWhenDropped` on the stack, which polls `future` up to
/// `polls` times while the panic unwinds; returns what the polls gave and
/// the future if it is still pending.
fn poll_during_a_panic(
    future: CoroutineFuture<u32>,
    polls: u32,
) -> (Vec<Polled>, Option<CoroutineFuture<u32>>) {
    let outcome = Rc::default();
    let kept = Rc::default();
    let guard = PollsWhenDropped {
        future: Some(future),
        outcome: Rc::clone(&outcome),
        kept: Rc::clone(&kept),
        polls,
    };
    let payload = catch_unwind(AssertUnwindSafe(move || {
        let _guard = guard;
        panic!("the host panics");
    }))
    .unwrap_err();
    assert_eq!(panic_message(&*payload), "the host panics");
    let outcome = outcome.take();
    let kept = kept.take();
    (outcome, kept)
}

/// A cleanup on a coroutine's stack that waits for a pending future and
/// catches the panic that `block_on` must raise, recording its message.
struct CatchingWaitingCleanUp<'a>(&'a Suspender, Rc<RefCell<Option<String>>>);

impl Drop for CatchingWaitingCleanUp<'_> {
    fn drop(&mut self) {
        let waited = catch_unwind(AssertUnwindSafe(|| {
            self.0.block_on(std::future::pending::<()>())
        }));
        *self.1.borrow_mut() = Some(match waited {
            Ok(()) => "block_on returned".to_string(),
            Err(payload) => panic_message(&*payload),
        });
    }
}

#[test]
fn block_on_in_a_destructor_of_a_coroutine_panicking_while_its_poller_panics_cannot_wait() {
    // The thread panics; a destructor polls a future; the coroutine panics;
    // a destructor on its stack waits. That unwind is the coroutine's own,
    // even though the thread was panicking already: it must not suspend.
    let cleanup = Rc::new(RefCell::new(None));
    let c = cleanup.clone();
    let future = CoroutineFuture::new(move |s| {
        let _cleanup = CatchingWaitingCleanUp(s, c);
        panic!("the coroutine panics");
    });
    // Locked before, unlocked after: poisoned if the thread still counts as
    // panicking when the guard goes.
    let unrelated = std::sync::Mutex::new(0);
    let guard = unrelated.lock().unwrap();
    let (polls, kept) = poll_during_a_panic(future, 1);
    // Every panic has been caught: the thread is not panicking, and the
    // Mutex is not poisoned. (Checked before `kept` is dropped: a coroutine
    // left suspended in the middle of its unwind would keep the thread
    // counted as panicking until then.)
    let panicking_after = std::thread::panicking();
    drop(guard);
    let poisoned = unrelated.is_poisoned();
    let dropped = catch_unwind(AssertUnwindSafe(move || drop(kept)));
    assert!(
        !panicking_after,
        "still panicking after every panic was caught"
    );
    assert!(!poisoned, "an unrelated Mutex was poisoned");
    let cleanup = cleanup.take().expect("the cleanup ran");
    assert!(
        cleanup.contains("an unwinding coroutine cannot wait for anything"),
        "{cleanup}"
    );
    // The coroutine's panic came out of the poll, and nothing was left.
    assert_eq!(polls, [Err("the coroutine panics".to_string())]);
    assert!(dropped.is_ok());
    assert!(!std::thread::panicking());
}

/// A cleanup that waits, and does not catch the panic of `block_on`.
struct WaitingCleanUpU32<'a>(&'a Suspender);

impl Drop for WaitingCleanUpU32<'_> {
    fn drop(&mut self) {
        self.0.block_on(std::future::pending::<()>());
    }
}

#[test]
#[cfg_attr(miri, ignore = "runs a child process, which Miri cannot")]
fn block_on_a_pending_future_during_a_panic_while_the_poller_panics_aborts_with_a_message() {
    if std::env::var_os("SWITCHBACK_BLOCK_ON_IN_PANIC_OF_PANICKING_POLLER").is_some() {
        let future = CoroutineFuture::new(|s| {
            let _cleanup = WaitingCleanUpU32(s);
            panic!("the coroutine panics");
        });
        let _ = poll_during_a_panic(future, 1);
        return;
    }
    assert_child_aborts_unable_to_wait(
        "block_on_a_pending_future_during_a_panic_while_the_poller_panics_aborts_with_a_message",
        "SWITCHBACK_BLOCK_ON_IN_PANIC_OF_PANICKING_POLLER",
    );
}

#[test]
#[cfg_attr(
    miri,
    ignore = "under Miri the coroutine runs on a thread of its own, which does not count as panicking when its poller does"
)]
fn block_on_that_starts_while_the_poller_panics_takes_only_ready_futures() {
    // Not unwinding, but the thread's panic state cannot show that.
    let future = CoroutineFuture::new(|s| {
        let ready = s.block_on(async { 40 });
        ready + s.block_on(pending_times(1))
    });
    let (polls, kept) = poll_during_a_panic(future, 1);
    assert!(kept.is_none());
    let [Err(message)] = &polls[..] else {
        panic!("{polls:?}")
    };
    assert!(
        message.contains("the thread polling its CoroutineFuture is panicking")
            && message.contains("cannot wait for anything"),
        "{message}"
    );
    assert!(!std::thread::panicking());
}

#[test]
fn block_on_that_began_waiting_before_the_poller_panicked_goes_on_waiting() {
    let mut future = CoroutineFuture::new(|s| s.block_on(pending_times(2)) * 10);
    assert_eq!(poll(&mut future, Waker::noop()), Poll::Pending);
    // Polled from a destructor while the thread panics: it suspends again
    // (pending once more), then completes.
    let (polls, kept) = poll_during_a_panic(future, 2);
    assert_eq!(polls, [Ok(Poll::Pending), Ok(Poll::Ready(30))]);
    assert!(kept.is_none());
    assert!(!std::thread::panicking());
}

// With `sanitizer`, futures stay on one thread (see SendCoroutineFuture).
#[cfg(not(feature = "sanitizer"))]
#[test]
fn send_future_moves_between_threads_while_pending() {
    let pool = StackPool::new(64 * 1024).unwrap();
    // SAFETY: only u32s live across block_on, and no thread-local is used.
    let mut future = unsafe {
        SendCoroutineFuture::with_pool(&pool, |s| {
            let a = s.block_on(pending_times(1));
            let b = s.block_on(pending_times(1));
            a + b
        })
    };
    assert_eq!(poll(&mut future, Waker::noop()), Poll::Pending);
    let (mut future, second) = std::thread::spawn(move || {
        let second = poll(&mut future, Waker::noop());
        (future, second)
    })
    .join()
    .unwrap();
    assert_eq!(second, Poll::Pending);
    assert!(!future.done());
    let third = std::thread::spawn(move || poll(&mut future, Waker::noop()))
        .join()
        .unwrap();
    assert_eq!(third, Poll::Ready(4));
}

#[test]
fn send_future_with_stack_and_new() {
    // SAFETY: nothing lives across block_on.
    let mut on_stack = unsafe {
        SendCoroutineFuture::with_stack(DefaultStack::new(64 * 1024).unwrap(), |s| {
            s.block_on(pending_times(1))
        })
    };
    // SAFETY: as above.
    let mut pooled = unsafe { SendCoroutineFuture::new(|s| s.block_on(async { 3 })) };
    assert_eq!(poll(&mut on_stack, Waker::noop()), Poll::Pending);
    assert_eq!(poll(&mut on_stack, Waker::noop()), Poll::Ready(2));
    assert!(on_stack.done());
    assert_eq!(poll(&mut pooled, Waker::noop()), Poll::Ready(3));
    assert!(format!("{pooled:?}").starts_with("SendCoroutineFuture(CoroutineFuture {"));
}

#[test]
fn many_futures_interleaved_on_one_thread() {
    let pool = StackPool::new(64 * 1024).unwrap();
    let mut futures: Vec<_> = (0..500u32)
        .map(|i| {
            CoroutineFuture::with_pool(&pool, move |s| {
                let mut total = i;
                for _ in 0..i % 4 {
                    total += s.block_on(pending_times(1));
                }
                total
            })
        })
        .collect();
    let mut results = vec![None; futures.len()];
    while results.iter().any(Option::is_none) {
        for (future, result) in futures.iter_mut().zip(&mut results) {
            if result.is_none() {
                if let Poll::Ready(value) = poll(future, Waker::noop()) {
                    *result = Some(value);
                }
            }
        }
    }
    let expected: Vec<_> = (0..500u32).map(|i| Some(i + 2 * (i % 4))).collect();
    assert_eq!(results, expected);
}

#[test]
fn pin_macro_works_too() {
    let future = pin!(CoroutineFuture::new(|s| s.block_on(async { "pinned" })));
    assert_eq!(
        future.poll(&mut Context::from_waker(Waker::noop())),
        Poll::Ready("pinned")
    );
}
