//! `CoroutineFuture`: blocking-style code on a coroutine, awaited as a `Future`.
//!
//! A [`CoroutineFuture`] runs a closure on a coroutine stack. Anywhere in
//! that closure's call stack, [`Suspender::block_on`] waits for a future:
//! while the future is pending the coroutine is suspended and the
//! `CoroutineFuture`'s own `poll` returns [`Poll::Pending`]; the next poll of
//! the `CoroutineFuture` (after the task's waker fired) resumes the
//! coroutine, which polls the future again. Code that cannot be written as
//! `async` (an interpreter loop, a host function called from a WebAssembly
//! module, a callback of a C library) can so wait on async I/O without
//! blocking its thread.
//!
//! ```
//! use std::future::Future;
//! use std::pin::pin;
//! use std::task::{Context, Poll, Waker};
//!
//! use switchback::future::{CoroutineFuture, Suspender};
//!
//! // Deep inside ordinary, non-async code:
//! fn read_config(suspender: &Suspender) -> u32 {
//!     let value = suspender.block_on(async { 40 });
//!     value + 2
//! }
//!
//! let future = CoroutineFuture::new(|suspender| read_config(suspender));
//! // Any executor polls it; here by hand.
//! let mut future = pin!(future);
//! let mut cx = Context::from_waker(Waker::noop());
//! assert_eq!(future.as_mut().poll(&mut cx), Poll::Ready(42));
//! ```
//!
//! # Rules
//!
//! - The `Context` (and so the waker) that `block_on` polls with is the one
//!   the `CoroutineFuture` was polled with this time: the waker wakes the
//!   task that polls the `CoroutineFuture`, whichever that is now.
//! - Dropping a pending `CoroutineFuture` unwinds its coroutine: every
//!   destructor on its stack runs, as for any dropped coroutine (see
//!   [Dropping](crate::Coroutine#dropping)), and so is every future that a
//!   `block_on` was waiting for. A destructor that runs while the stack
//!   unwinds (for this reason or for a panic) cannot wait: its `block_on`
//!   takes only futures that are ready at once. Nor can a `block_on` that
//!   starts while the thread polling the `CoroutineFuture` is panicking
//!   (from a destructor during an unwind): the thread's panic state cannot
//!   tell that unwind from one of the coroutine's own stack.
//! - A panic in the closure, or in a future it waits for, comes out of the
//!   `CoroutineFuture`'s `poll`. Polling it again after that, or after it
//!   returned `Ready`, panics.
//! - `block_on` must not be called from inside a future that the same
//!   [`Suspender`] is polling (for example in an `async` block passed to
//!   its `block_on`): that future's own `Context` would be stale after the
//!   coroutine suspended. It panics instead; use `.await` there.
//! - A `CoroutineFuture` is not `Send`: values that are not `Send` may live
//!   on its stack across a `block_on`, and the compiler cannot see them.
//!   [`SendCoroutineFuture`] asserts it, with an `unsafe` constructor whose
//!   contract says what that takes, for multi-threaded executors.
//!
//! The module needs the `default-stack` and `unwind` features (both on by
//! default).

use core::cell::Cell;
use core::fmt;
use core::future::{Future, IntoFuture};
use core::marker::PhantomData;
use core::pin::{pin, Pin};
use core::ptr;
use core::task::{Context, Poll, Waker};

use crate::coroutine::{Coroutine, CoroutineResult, Yielder};
use crate::stack::{PooledStack, Stack, StackPool};

/// What each resume of a bridge's coroutine carries: the `Context` of the
/// poll that resumes it, lifetime erased (it is only dereferenced during
/// that resume: see `Suspender::block_on`), and whether the polling thread
/// was already panicking then.
struct Resume {
    cx: *mut Context<'static>,
    host_panicking: bool,
}

/// A closure running on a coroutine stack, polled as a [`Future`] whose
/// output is the closure's result.
///
/// The closure gets a [`Suspender`], whose [`block_on`](Suspender::block_on)
/// waits for a future from any depth of the closure's call stack. See the
/// [module documentation](self) for the rules.
///
/// ```
/// use std::future::Future;
/// use std::pin::pin;
/// use std::task::{Context, Poll, Waker};
///
/// use switchback::future::CoroutineFuture;
///
/// let mut future = pin!(CoroutineFuture::new(|suspender| {
///     // Pending once, then ready: the outer poll returns Pending once too.
///     let mut first = true;
///     let value = suspender.block_on(std::future::poll_fn(move |cx| {
///         if std::mem::take(&mut first) {
///             cx.waker().wake_by_ref();
///             Poll::Pending
///         } else {
///             Poll::Ready(7)
///         }
///     }));
///     value * 6
/// }));
/// let mut cx = Context::from_waker(Waker::noop());
/// assert_eq!(future.as_mut().poll(&mut cx), Poll::Pending);
/// assert_eq!(future.as_mut().poll(&mut cx), Poll::Ready(42));
/// ```
///
/// The coroutine owns its stack, so moving the `CoroutineFuture` moves
/// nothing the coroutine points to: it is [`Unpin`] whatever it holds.
///
/// It is not `Send`:
///
/// ```compile_fail
/// fn assert_send<T: Send>(_: T) {}
/// assert_send(switchback::future::CoroutineFuture::new(|_| ()));
/// ```
///
/// # Panics
///
/// `poll` panics if the future already completed (returned `Ready` or
/// panicked), and passes on a panic of the closure.
pub struct CoroutineFuture<R, S: Stack = PooledStack> {
    coroutine: Coroutine<Resume, (), R, S>,
}

// The coroutine's frames live on its own stack, which the struct only points
// to; nothing is ever pinned through a `Pin<&mut CoroutineFuture>`.
impl<R, S: Stack> Unpin for CoroutineFuture<R, S> {}

/// The handle with which the closure of a [`CoroutineFuture`] waits for
/// futures.
///
/// It lives on the coroutine's stack and is reachable only by reference from
/// inside the closure. It is neither `Send` nor `Sync`, so it cannot leave
/// the coroutine's thread of execution.
pub struct Suspender {
    yielder: *const Yielder<Resume, ()>,
    /// The `Context` of the poll that is running the coroutine; null while
    /// the coroutine is suspended, and so while it is being unwound.
    cx: Cell<*mut Context<'static>>,
    /// Whether the thread was already panicking when the running poll
    /// began: if not, a panic that the thread shows later is unwinding the
    /// coroutine's stack; if so, the thread's state tells nothing about it
    /// (see `may_be_unwinding`).
    host_panicking: Cell<bool>,
    /// Set while `block_on` is inside the `poll` of the future it waits for.
    polling: Cell<bool>,
    marker: PhantomData<*mut ()>,
}

impl<R: 'static> CoroutineFuture<R, PooledStack> {
    /// A future that runs `f` on a 1 MiB stack from the process-wide
    /// [`StackPool::global`]. The stack goes back to the pool when the
    /// future is dropped.
    ///
    /// The coroutine starts at the first poll.
    ///
    /// # Panics
    ///
    /// Panics if a new stack is needed and cannot be mapped.
    pub fn new<F>(f: F) -> Self
    where
        F: FnOnce(&Suspender) -> R + 'static,
    {
        Self::with_pool(StackPool::global(), f)
    }

    /// A future that runs `f` on a stack from `pool`: for many concurrent
    /// futures, a pool of smaller stacks keeps memory down.
    ///
    /// ```
    /// use switchback::future::CoroutineFuture;
    /// use switchback::stack::StackPool;
    ///
    /// let pool = StackPool::new(64 * 1024).unwrap();
    /// let future = CoroutineFuture::with_pool(&pool, |suspender| suspender.block_on(async { 1 }));
    /// # drop(future);
    /// ```
    ///
    /// # Panics
    ///
    /// Panics if a new stack is needed and cannot be mapped, or if the
    /// closure is too big for the pool's stacks (see
    /// [`Coroutine::with_stack`]).
    pub fn with_pool<F>(pool: &StackPool, f: F) -> Self
    where
        F: FnOnce(&Suspender) -> R + 'static,
    {
        Self {
            coroutine: Coroutine::with_pool(pool, bridge_entry(f)),
        }
    }
}

impl<R: 'static, S: Stack + 'static> CoroutineFuture<R, S> {
    /// A future that runs `f` on `stack`.
    ///
    /// ```
    /// use switchback::future::CoroutineFuture;
    /// use switchback::stack::DefaultStack;
    ///
    /// let stack = DefaultStack::new(128 * 1024).unwrap();
    /// let future = CoroutineFuture::with_stack(stack, |_| "done");
    /// # drop(future);
    /// ```
    ///
    /// # Panics
    ///
    /// As [`Coroutine::with_stack`]: if the stack is too small or misaligned.
    pub fn with_stack<F>(stack: S, f: F) -> Self
    where
        F: FnOnce(&Suspender) -> R + 'static,
    {
        Self {
            coroutine: Coroutine::with_stack(stack, bridge_entry(f)),
        }
    }
}

impl<R, S: Stack> CoroutineFuture<R, S> {
    /// Whether the future has completed: returned `Ready`, or panicked.
    /// Polling it again panics.
    pub fn done(&self) -> bool {
        self.coroutine.done()
    }
}

/// The coroutine closure of a bridge: sets up the `Suspender` on the
/// coroutine's stack and runs `f`.
fn bridge_entry<F, R>(f: F) -> impl FnOnce(&Yielder<Resume, ()>, Resume) -> R
where
    F: FnOnce(&Suspender) -> R,
{
    move |yielder, first| {
        let suspender = Suspender {
            yielder,
            cx: Cell::new(first.cx),
            host_panicking: Cell::new(first.host_panicking),
            polling: Cell::new(false),
            marker: PhantomData,
        };
        f(&suspender)
    }
}

impl<R, S: Stack> Future for CoroutineFuture<R, S> {
    type Output = R;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<R> {
        let coroutine = &mut self.get_mut().coroutine;
        if coroutine.done() {
            polled_after_completion();
        }
        // The pointer is only used while this call runs (see block_on).
        let resume = Resume {
            cx: ptr::from_mut(cx).cast::<Context<'static>>(),
            host_panicking: std::thread::panicking(),
        };
        match coroutine.resume(resume) {
            CoroutineResult::Yield(()) => Poll::Pending,
            CoroutineResult::Return(value) => Poll::Ready(value),
        }
    }
}

impl<R, S: Stack> fmt::Debug for CoroutineFuture<R, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoroutineFuture")
            .field("started", &self.coroutine.started())
            .field("done", &self.coroutine.done())
            .finish()
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn polled_after_completion() -> ! {
    panic!(
        "switchback: a CoroutineFuture was polled after it completed (it returned Ready \
         or panicked); a future must not be polled again after that"
    )
}

impl Suspender {
    /// Waits for `future` and returns its output, suspending the coroutine
    /// (and so making the `CoroutineFuture`'s `poll` return `Pending`)
    /// each time it is pending.
    ///
    /// `future` is polled with the `Context` of the task polling the
    /// `CoroutineFuture`, so its waker wakes that task.
    ///
    /// ```
    /// use std::future::Future;
    /// use std::pin::pin;
    /// use std::task::{Context, Waker};
    ///
    /// use switchback::future::{CoroutineFuture, Suspender};
    ///
    /// fn callback(suspender: &Suspender, x: u64) -> u64 {
    ///     suspender.block_on(async move { x * 2 })
    /// }
    /// let mut future = pin!(CoroutineFuture::new(|s| (0..4).map(|x| callback(s, x)).sum::<u64>()));
    /// let mut cx = Context::from_waker(Waker::noop());
    /// assert_eq!(future.as_mut().poll(&mut cx), std::task::Poll::Ready(12));
    /// ```
    ///
    /// If the `CoroutineFuture` is dropped while this call waits, it does
    /// not return: the coroutine's stack unwinds from here, dropping
    /// `future`.
    ///
    /// # Panics
    ///
    /// - If called from inside the `poll` of a future that this
    ///   `Suspender`'s `block_on` is polling (an `async` block passed to
    ///   `block_on` that calls `block_on` again): that future's `Context`
    ///   would be stale once the coroutine suspends. Use `.await` inside
    ///   async code.
    /// - If called by a destructor while the coroutine's stack unwinds (a
    ///   panic in the closure, or the `CoroutineFuture` being dropped) and
    ///   `future` is not ready at its first poll (with a no-op waker): an
    ///   unwinding coroutine cannot suspend (the unwind would stay half
    ///   done, with the polling thread counted as panicking meanwhile). As
    ///   this panic happens during an unwind, the process then aborts, with
    ///   the message (unless the destructor catches it). A future that is
    ///   ready at once (a cleanup that does not wait) is fine.
    /// - Likewise if called while the thread that polls the
    ///   `CoroutineFuture` is panicking (it is polled by a destructor during
    ///   an unwind of that thread) and `future` is not ready at its first
    ///   poll: the thread's panic state cannot tell that unwind from one of
    ///   the coroutine's own stack, so a `block_on` that starts then
    ///   cannot wait either. A `block_on` that was already waiting when the
    ///   thread began to panic goes on waiting: polled again from the
    ///   destructor, it suspends as usual while its future is pending.
    /// - Passes on a panic of `future`.
    pub fn block_on<F: IntoFuture>(&self, future: F) -> F::Output {
        if self.polling.get() {
            reentrant_block_on();
        }
        let mut future = pin!(future.into_future());
        // Decided once, here: from now until this call returns, only this
        // loop and the future's `poll` run on the coroutine, and neither
        // can leave a panic in flight (one from the poll leaves this call),
        // so a coroutine that is not unwinding now is not unwinding at any
        // of the suspensions below, whatever the polling thread does.
        if let Some(unwinding) = self.may_be_unwinding() {
            return block_on_while_unwinding(future, unwinding);
        }
        loop {
            let cx = self.cx.get();
            let polled = {
                let _polling = PollingFlag::set(&self.polling);
                // SAFETY: `cx` is not null (checked at the entry, then set
                // by each resume below from its poll), so the coroutine is
                // running in a resume from `CoroutineFuture::poll`, whose
                // `&mut Context` this is: that poll is blocked in the resume
                // until the coroutine suspends or returns, and no other
                // reference to the Context is used meanwhile (a nested
                // block_on of this Suspender, the only other user, is
                // refused above). The reference ends with this poll, before
                // the coroutine suspends.
                poll_once(future.as_mut(), unsafe { &mut *cx.cast::<Context<'_>>() })
            };
            if let Poll::Ready(output) = polled {
                return output;
            }
            // While suspended the Context is stale; a forced unwind finds
            // null here.
            self.cx.set(ptr::null_mut());
            // SAFETY: the Yielder lives in `bridge_entry`'s frame, below
            // the Suspender that refers to it, for as long as the Suspender.
            let yielder = unsafe { &*self.yielder };
            let next = yielder.suspend(());
            self.cx.set(next.cx);
            self.host_panicking.set(next.host_panicking);
        }
    }

    /// Whether the coroutine's stack may be unwinding at this entry into
    /// `block_on`, and why: `None` if it certainly is not.
    ///
    /// The thread's panic state is one flag for the whole thread. When the
    /// poll that resumed the coroutine began on a thread that was not
    /// panicking, the thread panicking now means that a panic started on
    /// the coroutine's stack and is unwinding it. When it began on a thread
    /// that was already panicking, the flag was set before the coroutine
    /// ran and says nothing about its own stack, whose unwind (a panic
    /// that started there since) cannot be told apart from the host's: the
    /// answer is "maybe", and such a `block_on` cannot wait either.
    fn may_be_unwinding(&self) -> Option<Unwinding> {
        if self.cx.get().is_null() {
            // Only a forced unwind runs the coroutine without a poll.
            Some(Unwinding::Dropped)
        } else if !thread_panicking() {
            None
        } else if self.host_panicking.get() {
            Some(Unwinding::PollerPanicking)
        } else {
            Some(Unwinding::Panic)
        }
    }
}

/// Why a `block_on` cannot wait.
#[derive(Clone, Copy)]
enum Unwinding {
    /// The `CoroutineFuture` is being dropped: its stack unwinds.
    Dropped,
    /// A panic on the coroutine's stack is unwinding it.
    Panic,
    /// The thread polling the `CoroutineFuture` was panicking already, so
    /// its panic state says nothing about the coroutine's own stack.
    PollerPanicking,
}

/// Polls once, in a frame of its own: a future that reads a thread-local
/// computes its address afresh at each poll, even if the coroutine was
/// resumed on another thread (see [`SendCoroutineFuture`]).
#[inline(never)]
fn poll_once<F: Future>(future: Pin<&mut F>, cx: &mut Context<'_>) -> Poll<F::Output> {
    future.poll(cx)
}

/// [`std::thread::panicking`] in a frame of its own, for the reason given
/// at `poll_once`: it reads a thread-local.
#[inline(never)]
fn thread_panicking() -> bool {
    std::thread::panicking()
}

/// `block_on` where the coroutine's stack is, or may be, unwinding: the
/// future gets one poll, with a waker that does nothing, and must be ready.
#[cold]
fn block_on_while_unwinding<F: Future>(future: Pin<&mut F>, unwinding: Unwinding) -> F::Output {
    match poll_once(future, &mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => cannot_wait(unwinding),
    }
}

#[cold]
#[inline(never)]
fn cannot_wait(unwinding: Unwinding) -> ! {
    match unwinding {
        Unwinding::Dropped | Unwinding::Panic => panic!(
            "switchback: Suspender::block_on was called by a destructor while the \
             coroutine's stack unwinds (a panic in it, or its CoroutineFuture being \
             dropped), and the future it was given is not ready; an unwinding coroutine \
             cannot wait for anything"
        ),
        Unwinding::PollerPanicking => panic!(
            "switchback: Suspender::block_on was called while the thread polling its \
             CoroutineFuture is panicking (a destructor polls it during an unwind), and the \
             future it was given is not ready; the coroutine's own stack may be unwinding \
             too (the thread's panic state cannot tell), and an unwinding coroutine cannot \
             wait for anything (a block_on already waiting before the thread panicked can \
             go on waiting)"
        ),
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn reentrant_block_on() -> ! {
    panic!(
        "switchback: Suspender::block_on was called from inside the poll of a future that \
         the same Suspender's block_on is polling (an async block given to block_on that \
         calls block_on again?); the outer future's Context would be stale once the \
         coroutine suspends: use .await inside async code"
    )
}

/// Sets a flag and clears it when dropped, also during a panic.
struct PollingFlag<'a>(&'a Cell<bool>);

impl<'a> PollingFlag<'a> {
    fn set(flag: &'a Cell<bool>) -> Self {
        flag.set(true);
        Self(flag)
    }
}

impl Drop for PollingFlag<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

impl fmt::Debug for Suspender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Suspender").finish_non_exhaustive()
    }
}

/// A [`CoroutineFuture`] asserted to be `Send`, for multi-threaded
/// executors (such as tokio's multi-thread runtime), which may poll it on
/// a different thread each time.
///
/// ```
/// use switchback::future::SendCoroutineFuture;
///
/// fn assert_send<T: Send>(_: &T) {}
/// // SAFETY: the closure keeps nothing across block_on but a u64, and
/// // touches no thread-local.
/// let future = unsafe {
///     SendCoroutineFuture::new(|suspender| {
///         let x: u64 = suspender.block_on(async { 20 });
///         x + suspender.block_on(async { 22 })
///     })
/// };
/// assert_send(&future);
/// std::thread::spawn(move || {
///     let mut future = std::pin::pin!(future);
///     let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
///     assert_eq!(std::future::Future::poll(future.as_mut(), &mut cx), std::task::Poll::Ready(42));
/// })
/// .join()
/// .unwrap();
/// ```
///
/// # Safety contract of the constructors
///
/// Each time the closure's coroutine suspends in [`Suspender::block_on`],
/// the future may be moved to, polled on, or dropped on another thread, so
/// that the closure's code continues (or unwinds) there. The closure itself
/// and its result must be `Send` (the constructors require that); what the
/// compiler cannot check, and the caller promises, is that:
///
/// 1. No value that is not `Send` is alive on the coroutine's stack across
///    a call to `block_on`: in the closure or in anything it calls, for
///    example an `Rc`, a `MutexGuard`, a `RefCell` borrow of a thread-local
///    or a reference into a thread-local.
/// 2. No function on the coroutine's stack reads or writes a thread-local
///    both before and after a `block_on` it calls, counting code that the
///    compiler inlines into it (such as small functions of other crates):
///    the compiler may reuse the thread-local's address from before the
///    call, which belongs to the old thread. Keep thread-local accesses in
///    functions that do not call `block_on` and are not inlined into one
///    that does (`#[inline(never)]`). (`block_on` polls its future in a
///    frame of its own, so futures that use thread-locals, such as tokio's,
///    are fine.)
/// 3. The code does not otherwise rely on staying on one thread across
///    `block_on` (thread ids, thread-affine OS or library handles).
///
/// Breaking it is undefined behavior, as sending a `!Send` value is.
///
/// With the `sanitizer` feature (AddressSanitizer builds), the crate's own
/// record of which stack a thread runs on is a thread-local that a
/// suspension reads before and writes after the switch, which rule 2
/// forbids: keep such builds to one thread (tokio's current-thread runtime
/// or a `LocalSet`).
pub struct SendCoroutineFuture<R, S: Stack = PooledStack>(CoroutineFuture<R, S>);

// SAFETY: the constructors' callers promise that nothing on the coroutine's
// stack minds running on another thread after a suspension; the closure and
// the result are Send by the bounds, and so is the stack.
unsafe impl<R: Send, S: Stack + Send> Send for SendCoroutineFuture<R, S> {}

impl<R: Send + 'static> SendCoroutineFuture<R, PooledStack> {
    /// [`CoroutineFuture::new`], asserted `Send`.
    ///
    /// # Safety
    ///
    /// See the [contract](SendCoroutineFuture#safety-contract-of-the-constructors).
    ///
    /// # Panics
    ///
    /// As [`CoroutineFuture::new`].
    pub unsafe fn new<F>(f: F) -> Self
    where
        F: FnOnce(&Suspender) -> R + Send + 'static,
    {
        Self(CoroutineFuture::new(f))
    }

    /// [`CoroutineFuture::with_pool`], asserted `Send`.
    ///
    /// # Safety
    ///
    /// See the [contract](SendCoroutineFuture#safety-contract-of-the-constructors).
    ///
    /// # Panics
    ///
    /// As [`CoroutineFuture::with_pool`].
    pub unsafe fn with_pool<F>(pool: &StackPool, f: F) -> Self
    where
        F: FnOnce(&Suspender) -> R + Send + 'static,
    {
        Self(CoroutineFuture::with_pool(pool, f))
    }
}

impl<R: Send + 'static, S: Stack + Send + 'static> SendCoroutineFuture<R, S> {
    /// [`CoroutineFuture::with_stack`], asserted `Send`.
    ///
    /// # Safety
    ///
    /// See the [contract](SendCoroutineFuture#safety-contract-of-the-constructors).
    ///
    /// # Panics
    ///
    /// As [`CoroutineFuture::with_stack`].
    pub unsafe fn with_stack<F>(stack: S, f: F) -> Self
    where
        F: FnOnce(&Suspender) -> R + Send + 'static,
    {
        Self(CoroutineFuture::with_stack(stack, f))
    }
}

impl<R, S: Stack> SendCoroutineFuture<R, S> {
    /// Whether the future has completed; see [`CoroutineFuture::done`].
    pub fn done(&self) -> bool {
        self.0.done()
    }
}

impl<R, S: Stack> Future for SendCoroutineFuture<R, S> {
    type Output = R;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<R> {
        Pin::new(&mut self.get_mut().0).poll(cx)
    }
}

impl<R, S: Stack> fmt::Debug for SendCoroutineFuture<R, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SendCoroutineFuture").field(&self.0).finish()
    }
}
