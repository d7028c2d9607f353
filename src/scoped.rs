//! `ScopedCoroutine`: coroutines whose closure, stack and values may borrow.

use core::marker::PhantomData;
use core::mem::ManuallyDrop;

use crate::coroutine::{Coroutine, CoroutineResult, Yielder};
use crate::stack;
#[cfg(feature = "default-stack")]
use crate::stack::DefaultStack;
use crate::trap::CoroutineTrapHandler;

/// A coroutine whose closure may borrow from its surroundings (and
/// whose stack and values may be borrowed too).
///
/// It can only run inside [`scope`](ScopedCoroutine::scope), which
/// drops it (unwinding it if suspended) before the scope returns, so
/// the borrows provably outlive it: no `mem::forget`, `mem::swap` or
/// thread trick can let it run after they end.
///
/// ```
/// use switchback::ScopedCoroutine;
///
/// let mut total = 0;
/// let coroutine = ScopedCoroutine::new(|yielder, mut x: i32| {
///     while x != 0 {
///         total += x;
///         x = yielder.suspend(());
///     }
/// });
/// coroutine.scope(|mut co| {
///     co.as_mut().resume(1);
///     co.as_mut().resume(2);
///     co.as_mut().resume(0);
/// });
/// assert_eq!(total, 3);
/// ```
// The stack type defaults to `DefaultStack` where there is one.
pub struct ScopedCoroutine<
    'a,
    Input,
    Yield,
    Return,
    #[cfg(feature = "default-stack")] Stack: stack::Stack = DefaultStack,
    #[cfg(not(feature = "default-stack"))] Stack: stack::Stack,
> {
    inner: ManuallyDrop<Coroutine<Input, Yield, Return, Stack>>,
    /// Makes `'a` invariant and ties it to the coroutine, whose
    /// closure type is erased.
    _borrows: PhantomData<&'a mut ()>,
}

/// Dropping a scoped coroutine unwinds it if it is suspended. Its `Drop`
/// names `'a`, so the borrow checker keeps the borrows alive until then:
/// the closure's type is erased into the coroutine, so the compiler could
/// not otherwise see that dropping the coroutine drops the closure, whose
/// captures may read borrowed data in their destructors.
///
/// If a panic interrupts the unwind and leaves the coroutine suspended (see
/// [Dropping](Coroutine#dropping)), its frames may still borrow from the
/// scope, and may be reachable from elsewhere (a scoped thread holding a
/// reference into them), so neither freeing its stack nor leaking it and
/// letting the borrows end is sound: the process aborts with a message.
impl<Input, Yield, Return, Stack: stack::Stack> Drop
    for ScopedCoroutine<'_, Input, Yield, Return, Stack>
{
    fn drop(&mut self) {
        let guard = AbortUnlessDone(&mut self.inner);
        guard.0.unwind_for_drop();
    }
}

/// Drops a scoped coroutine that is done, when it goes out of scope
/// normally or during a panic; aborts if it is still suspended.
struct AbortUnlessDone<'a, Input, Yield, Return, Stack: stack::Stack>(
    &'a mut ManuallyDrop<Coroutine<Input, Yield, Return, Stack>>,
);

impl<Input, Yield, Return, Stack: stack::Stack> Drop
    for AbortUnlessDone<'_, Input, Yield, Return, Stack>
{
    fn drop(&mut self) {
        if !self.0.done() {
            crate::unwind::abort_with_message(
                "switchback: a panic interrupted the unwinding of a ScopedCoroutine being \
                 dropped (a value it yielded while unwinding panicked in its destructor); \
                 its stack still holds frames that may borrow from the scope, so it can \
                 neither be freed nor outlive the scope; aborting",
            );
        }
        // SAFETY: the coroutine is done, so it holds no frames; this runs
        // once, from the scoped coroutine's `Drop`, and `inner` is not used
        // again.
        unsafe { ManuallyDrop::drop(self.0) }
    }
}

#[cfg(feature = "default-stack")]
#[cfg_attr(docsrs, doc(cfg(feature = "default-stack")))]
impl<'a, Input, Yield, Return> ScopedCoroutine<'a, Input, Yield, Return, DefaultStack> {
    /// Creates a scoped coroutine that runs `f` on a new 1 MiB
    /// [`DefaultStack`].
    ///
    /// # Panics
    ///
    /// Panics if the stack cannot be allocated.
    pub fn new<F>(f: F) -> Self
    where
        F: FnOnce(&Yielder<Input, Yield>, Input) -> Return + 'a,
    {
        Self::with_stack(DefaultStack::default(), f)
    }
}

impl<'a, Input, Yield, Return, Stack: stack::Stack>
    ScopedCoroutine<'a, Input, Yield, Return, Stack>
{
    /// Creates a scoped coroutine that runs `f` on `stack`.
    ///
    /// # Panics
    ///
    /// As [`Coroutine::with_stack`].
    pub fn with_stack<F>(stack: Stack, f: F) -> Self
    where
        F: FnOnce(&Yielder<Input, Yield>, Input) -> Return + 'a,
    {
        Self {
            // SAFETY: the coroutine can only be resumed inside `scope`, which
            // drops it before returning; a coroutine leaked before `scope`
            // never started, so its stack holds nothing that borrows.
            inner: ManuallyDrop::new(unsafe { Coroutine::with_stack_unchecked(stack, f) }),
            _borrows: PhantomData,
        }
    }

    /// Returns the stack of a finished coroutine, to reuse it.
    ///
    /// # Panics
    ///
    /// Panics if the coroutine is not done (a scoped coroutine that was
    /// never run inside a scope is not done).
    pub fn into_stack(self) -> Stack {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so `inner` is moved
        // out once; `into_stack` panics (and drops the coroutine, unwinding
        // it) unless it is done.
        unsafe { ManuallyDrop::take(&mut this.inner) }.into_stack()
    }

    /// Runs `f` with a reference to the coroutine, then drops the coroutine
    /// (unwinding it if it is suspended) and returns what `f` returned.
    ///
    /// ```
    /// use switchback::ScopedCoroutine;
    ///
    /// let words = vec!["stackful", "coroutines", "borrow"];
    /// let mut seen = Vec::new();
    /// // The closure borrows `words`, which a `Coroutine` could not.
    /// let total = ScopedCoroutine::new(|yielder, ()| {
    ///     for word in &words {
    ///         yielder.suspend(word.len());
    ///     }
    /// })
    /// .scope(|mut co| {
    ///     let mut total = 0;
    ///     while let Some(len) = co.resume(()).as_yield() {
    ///         seen.push(len);
    ///         total += len;
    ///     }
    ///     total
    /// });
    /// assert_eq!(seen, [8, 10, 6]);
    /// assert_eq!(total, 24);
    /// ```
    #[inline]
    pub fn scope<F, T>(mut self, f: F) -> T
    where
        F: FnOnce(ScopedCoroutineRef<'_, Input, Yield, Return, Stack>) -> T,
    {
        f(ScopedCoroutineRef {
            inner: &mut self.inner,
        })
        // `self` drops here, unwinding the coroutine if it is suspended.
    }
}

/// The handle to a [`ScopedCoroutine`] inside its
/// [`scope`](ScopedCoroutine::scope), with the methods of [`Coroutine`].
///
/// Like any mutable reference wrapped in a struct, it is not reborrowed
/// automatically: call [`as_mut`](ScopedCoroutineRef::as_mut) to use it more
/// than once.
pub struct ScopedCoroutineRef<'a, Input, Yield, Return, Stack: stack::Stack> {
    inner: &'a mut Coroutine<Input, Yield, Return, Stack>,
}

impl<Input, Yield, Return, Stack: stack::Stack>
    ScopedCoroutineRef<'_, Input, Yield, Return, Stack>
{
    /// Reborrows the handle, so that it can be used again afterwards.
    pub fn as_mut(&mut self) -> ScopedCoroutineRef<'_, Input, Yield, Return, Stack> {
        ScopedCoroutineRef { inner: self.inner }
    }

    /// See [`Coroutine::resume`].
    pub fn resume(&mut self, input: Input) -> CoroutineResult<Yield, Return> {
        self.inner.resume(input)
    }

    /// See [`Coroutine::started`].
    pub fn started(&self) -> bool {
        self.inner.started()
    }

    /// See [`Coroutine::done`].
    pub fn done(&self) -> bool {
        self.inner.done()
    }

    /// See [`Coroutine::force_reset`].
    ///
    /// # Safety
    ///
    /// As [`Coroutine::force_reset`].
    pub unsafe fn force_reset(&mut self) {
        // SAFETY: forwarded to the caller.
        unsafe { self.inner.force_reset() }
    }

    /// See [`Coroutine::force_unwind`].
    pub fn force_unwind(&mut self) {
        self.inner.force_unwind()
    }

    /// See [`Coroutine::trap_handler`].
    pub fn trap_handler(&self) -> CoroutineTrapHandler<Return> {
        self.inner.trap_handler()
    }
}
