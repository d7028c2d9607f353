//! `Coroutine`, `Yielder` and `CoroutineResult`: the portable coroutine logic.

use core::marker::PhantomData;
use core::mem::{self, ManuallyDrop, MaybeUninit};
use core::{fmt, ptr};

use crate::arch;
use crate::root::{
    closure_slot, closure_stack_bytes, encode_exit, leave, stack_bounds, ExitSlot, EXIT_PANICKED,
    EXIT_RETURNED,
};
#[cfg(feature = "default-stack")]
use crate::stack::DefaultStack;
use crate::stack::{self, StackPointer};
use crate::switch::{self, FreshStack, SwitchRecord};
use crate::trap::CoroutineTrapHandler;
use crate::unwind::{self, CaughtPanic};
use crate::word::{self, Word};

/// What [`Coroutine::resume`] returns: the coroutine either suspended itself
/// with a value or returned from its closure.
///
/// ```
/// use switchback::CoroutineResult;
///
/// let yielded: CoroutineResult<u8, &str> = CoroutineResult::Yield(7);
/// assert_eq!(yielded.as_yield(), Some(7));
/// assert_eq!(yielded.as_return(), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CoroutineResult<Yield, Return> {
    /// The value the coroutine passed to [`Yielder::suspend`].
    Yield(Yield),
    /// The value the coroutine's closure returned.
    Return(Return),
}

impl<Yield, Return> CoroutineResult<Yield, Return> {
    /// The yielded value, or `None` if the coroutine returned.
    pub fn as_yield(self) -> Option<Yield> {
        match self {
            CoroutineResult::Yield(value) => Some(value),
            CoroutineResult::Return(_) => None,
        }
    }

    /// The returned value, or `None` if the coroutine yielded.
    pub fn as_return(self) -> Option<Return> {
        match self {
            CoroutineResult::Yield(_) => None,
            CoroutineResult::Return(value) => Some(value),
        }
    }
}

/// A closure running on its own stack that can suspend itself from
/// any depth of its call stack.
///
/// The closure receives a [`Yielder`] and the input of the first
/// [`resume`](Coroutine::resume). Each [`Yielder::suspend`] hands a
/// `Yield` value to the caller of `resume` and returns the `Input` of
/// the next `resume`; when the closure returns, `resume` returns its
/// value.
///
/// ```
/// use switchback::{Coroutine, CoroutineResult};
///
/// let mut doubler = Coroutine::new(|yielder, mut x: i32| {
///     while x != 0 {
///         x = yielder.suspend(x * 2);
///     }
///     "done"
/// });
/// assert_eq!(doubler.resume(1), CoroutineResult::Yield(2));
/// assert_eq!(doubler.resume(21), CoroutineResult::Yield(42));
/// assert_eq!(doubler.resume(0), CoroutineResult::Return("done"));
/// ```
///
/// # Dropping
///
/// Dropping a coroutine that is suspended unwinds its stack, running
/// the destructors of everything on it (see
/// [`force_unwind`](Coroutine::force_unwind)). If the coroutine
/// catches that unwind and suspends again, the value it yielded is
/// dropped and the unwind is thrown again, until it finishes.
///
/// If a panic interrupts that unwind (the destructor of a value the
/// coroutine yielded meanwhile panics), the panic continues from the
/// drop and the coroutine is leaked, as by [`core::mem::forget`]: its
/// stack still holds live frames, so it is neither freed nor
/// returned to its pool, and those frames never run again. A
/// [`ScopedCoroutine`](crate::ScopedCoroutine), whose frames may
/// borrow from its scope, aborts the process instead.
///
/// Without the `unwind` feature, or in a program built with
/// `panic = "abort"`, a suspended coroutine cannot be unwound:
/// dropping one prints why and aborts the process. Run such
/// coroutines to completion (or
/// [`force_reset`](Coroutine::force_reset) them) first.
///
/// # Threads
///
/// A coroutine is not `Send`: values on its stack may not be `Send`,
/// and the compiler cannot see them.
///
/// ```compile_fail
/// fn assert_send<T: Send>() {}
/// assert_send::<switchback::Coroutine<(), (), ()>>();
/// ```
///
/// It is `Sync` when its stack is, since `&Coroutine` allows nothing
/// but queries.
// The stack type defaults to `DefaultStack` where there is one.
pub struct Coroutine<
    Input,
    Yield,
    Return,
    #[cfg(feature = "default-stack")] Stack: stack::Stack = DefaultStack,
    #[cfg(not(feature = "default-stack"))] Stack: stack::Stack,
> {
    /// Dropped by hand, and only once no frame lives on it (see
    /// `Drop`).
    stack: ManuallyDrop<Stack>,
    base: StackPointer,
    /// The suspended coroutine's stack pointer; `None` once done.
    sp: Option<StackPointer>,
    initial_sp: StackPointer,
    drop_closure: unsafe fn(*mut u8),
    marker: Marker<Input, Yield, Return>,
}

/// What a coroutine is to the compiler besides its fields: it takes `Input`
/// and gives back `Yield` or `Return` (variance), and it is neither `Send`
/// nor `Sync` by itself (`*mut ()`).
type Marker<Input, Yield, Return> =
    PhantomData<(fn(Input) -> CoroutineResult<Yield, Return>, *mut ())>;

// SAFETY: through `&Coroutine` only `started`, `done` and `trap_handler` are
// reachable, which read plain fields; the stack is shared only if it is Sync.
unsafe impl<Input, Yield, Return, Stack: stack::Stack + Sync> Sync
    for Coroutine<Input, Yield, Return, Stack>
{
}

impl<Input, Yield, Return, Stack: stack::Stack> fmt::Debug
    for Coroutine<Input, Yield, Return, Stack>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coroutine")
            .field("base", &format_args!("{:#x}", self.base))
            .field("started", &self.started())
            .field("done", &self.done())
            .finish()
    }
}

#[cfg(feature = "default-stack")]
#[cfg_attr(docsrs, doc(cfg(feature = "default-stack")))]
impl<Input, Yield, Return> Coroutine<Input, Yield, Return, DefaultStack> {
    /// Creates a coroutine that runs `f` on a new [`DefaultStack`] of 1 MiB.
    ///
    /// # Panics
    ///
    /// Panics if the stack cannot be allocated.
    pub fn new<F>(f: F) -> Self
    where
        F: FnOnce(&Yielder<Input, Yield>, Input) -> Return + 'static,
        Input: 'static,
        Yield: 'static,
        Return: 'static,
    {
        Self::with_stack(DefaultStack::default(), f)
    }
}

impl<Input, Yield, Return, Stack: stack::Stack> Coroutine<Input, Yield, Return, Stack> {
    /// Creates a coroutine that runs `f` on `stack`.
    ///
    /// ```
    /// use switchback::stack::DefaultStack;
    /// use switchback::Coroutine;
    ///
    /// let stack = DefaultStack::new(64 * 1024).unwrap();
    /// let mut co: Coroutine<u64, (), u64, _> = Coroutine::with_stack(stack, |_, x| x + 1);
    /// assert_eq!(co.resume(1).as_return(), Some(2));
    /// let stack = co.into_stack(); // reuse it for the next coroutine
    /// # drop(stack);
    /// ```
    ///
    /// # Panics
    ///
    /// Panics if `stack` is misaligned or smaller than
    /// [`MIN_STACK_SIZE`](crate::stack::MIN_STACK_SIZE), or if the closure
    /// is too big for it. The closure is moved onto the stack and then into
    /// the coroutine's first frame, so a stack needs twice the size of the
    /// closure (three times its size plus alignment if it is aligned above
    /// 16 bytes) plus the few hundred bytes that the crate keeps at the top
    /// (the parent link, the coroutine's bookkeeping and its initial frame):
    /// a 4 KiB stack takes closures of up to about 2 KiB, a 1 MiB stack
    /// closures of up to about 512 KiB. Box a closure that big, or use a
    /// larger stack.
    ///
    /// That is all that is checked: what the crate writes on the stack
    /// before the closure's body runs. The frames that lead to the body
    /// take about 100 bytes more in a release build and 1.3 KiB in a debug
    /// build (x86-64 Linux; 250 bytes and 2.6 KiB on Windows), and the body
    /// needs what it needs; what does not fit
    /// runs into the guard page (a fault that a [trap handler](crate::trap)
    /// can recover from; on the crate's own stacks, else the overflow
    /// report and an abort). A panic needs about
    /// [`RECOMMENDED_MIN_STACK_SIZE`](crate::stack::RECOMMENDED_MIN_STACK_SIZE).
    ///
    /// ```should_panic
    /// use switchback::stack::DefaultStack;
    /// use switchback::Coroutine;
    ///
    /// let big = [0u8; 64 * 1024];
    /// let stack = DefaultStack::new(64 * 1024).unwrap();
    /// // Panics: "a closure of 65536 bytes needs a stack of at least ..."
    /// let _co: Coroutine<(), (), u8, _> = Coroutine::with_stack(stack, move |_, ()| big[0]);
    /// ```
    pub fn with_stack<F>(stack: Stack, f: F) -> Self
    where
        F: FnOnce(&Yielder<Input, Yield>, Input) -> Return + 'static,
        Input: 'static,
        Yield: 'static,
        Return: 'static,
        Stack: 'static,
    {
        // SAFETY: everything is 'static, so nothing the closure borrows can
        // end while the coroutine lives, even if it is leaked.
        unsafe { Self::with_stack_unchecked(stack, f) }
    }

    /// [`with_stack`](Coroutine::with_stack) without the `'static` bounds.
    ///
    /// # Safety
    ///
    /// Everything the closure borrows, and the stack if it is borrowed, must
    /// stay valid until the coroutine has returned or been dropped. If the
    /// coroutine is leaked (for example with [`core::mem::forget`], or by a
    /// drop whose forced unwind a panic interrupts: see
    /// [Dropping](Coroutine#dropping)) after it started, its stack stays in
    /// use forever and so must the borrows.
    /// [`ScopedCoroutine`](crate::ScopedCoroutine) upholds this safely.
    ///
    /// # Panics
    ///
    /// As [`with_stack`](Coroutine::with_stack).
    pub unsafe fn with_stack_unchecked<F>(stack: Stack, f: F) -> Self
    where
        F: FnOnce(&Yielder<Input, Yield>, Input) -> Return,
    {
        let (base, limit) = stack_bounds(
            &stack,
            mem::size_of::<F>(),
            closure_stack_bytes(mem::size_of::<F>(), mem::align_of::<F>()),
        );
        // A reused stack may still be poisoned by frames abandoned there.
        switch::forget_frames(limit.get(), base.get());
        let obj = closure_slot::<F>(base.get());
        // Windows: a stack that grows as code on it touches its guard page
        // commits what is written below from here first. Then what the
        // trackers start the coroutine from. (A user `Stack` may panic in
        // either: nothing has been written yet.)
        #[cfg(windows)]
        stack.__commit_from(obj - arch::INIT_FRAME_SIZE);
        let fresh = FreshStack::of(&stack, limit, base);
        // SAFETY: `closure_slot` checked that the object and the initial
        // frame below it fit in the stack, which the Stack contract says is
        // writable and ours alone; the record goes between it and the link.
        let initial_sp = unsafe {
            let link = (base.get() - arch::LINK_OFFSET) as *mut StackPointer;
            switch::write_record(switch::record_slot(link), fresh);
            ptr::write(obj as *mut F, f);
            arch::init_stack(base, obj, coroutine_entry::<Input, Yield, Return, F>)
        };
        Self {
            stack: ManuallyDrop::new(stack),
            base,
            sp: Some(initial_sp),
            initial_sp,
            drop_closure: drop_closure::<F>,
            marker: PhantomData,
        }
    }

    /// Runs the coroutine until it suspends or returns, passing it `input`
    /// (as the closure's argument on the first call, as the value of
    /// [`Yielder::suspend`] afterwards).
    ///
    /// ```
    /// use switchback::{Coroutine, CoroutineResult};
    ///
    /// // Sums what it is given until it is given 0.
    /// let mut adder = Coroutine::new(|yielder, mut input: u32| {
    ///     let mut sum = 0;
    ///     while input != 0 {
    ///         sum += input;
    ///         input = yielder.suspend(sum); // hands `sum` to `resume`
    ///     }
    ///     format!("total {sum}")
    /// });
    /// assert_eq!(adder.resume(2), CoroutineResult::Yield(2)); // starts it with 2
    /// assert_eq!(adder.resume(3), CoroutineResult::Yield(5));
    /// assert_eq!(adder.resume(0), CoroutineResult::Return("total 5".to_string()));
    /// assert!(adder.done());
    /// ```
    ///
    /// # Panics
    ///
    /// Panics if the coroutine is [`done`](Coroutine::done). A panic inside
    /// the coroutine unwinds its stack and then continues from this call;
    /// the coroutine is done afterwards.
    #[inline]
    pub fn resume(&mut self, input: Input) -> CoroutineResult<Yield, Return> {
        let Some(sp) = self.sp else {
            resume_after_done();
        };
        let mut input_slot = MaybeUninit::uninit();
        let input = word::encode(input, &mut input_slot);
        // With asm-unwind a panic may leave through the switch: the
        // coroutine must already count as done then.
        #[cfg(feature = "asm-unwind")]
        {
            self.sp = None;
        }
        // SAFETY: `sp` is this coroutine's suspended (or initial) state on
        // its own stack; it decodes `input` once, before we run again.
        let (output, state) =
            unsafe { self.switch_in(|base| arch::switch_and_link(input, sp, base)) };
        if state > EXIT_PANICKED {
            // SAFETY: a suspending coroutine encodes its Yield value and
            // does not run again until we have decoded it.
            CoroutineResult::Yield(unsafe { word::decode::<Yield>(output) })
        } else {
            // SAFETY: the coroutine left with this exit code and word.
            CoroutineResult::Return(unsafe { take_exit::<Return>(output, state) })
        }
    }

    /// Runs `switch(base)`, a switch into the coroutine, with the work
    /// around it (`switch::resume_start` and `resume_end`). Records the
    /// coroutine's new state in `self.sp` (its stack pointer if it
    /// suspended, `None` if it left) before any user code runs: a `Stack`
    /// whose `update_teb_fields` panics leaves a coroutine that is still
    /// resumable or droppable (the word it handed over is leaked).
    ///
    /// # Safety
    /// `switch` must resume this coroutine, which must be suspended.
    #[inline(always)]
    unsafe fn switch_in(
        &mut self,
        switch: impl FnOnce(StackPointer) -> (Word, usize),
    ) -> (Word, usize) {
        // SAFETY: the switch happens between the two halves, per the
        // caller; the record lies below the reserved top, and the coroutine
        // changes it only while it runs.
        unsafe {
            let resuming = switch::resume_start(self.record());
            let switched = switch(self.base);
            let resumed = switch::resume_end(resuming);
            let state = switched.1;
            // Any other state is the suspended coroutine's stack pointer,
            // which is not null.
            self.sp = (state > EXIT_PANICKED).then(|| StackPointer::new_unchecked(state));
            resumed.tell_stack(self.base, &mut *self.stack);
            switched
        }
    }

    /// Where the coroutine keeps its switch record.
    #[inline(always)]
    fn record(&self) -> *mut SwitchRecord {
        let link = (self.base.get() - arch::LINK_OFFSET) as *mut StackPointer;
        // SAFETY: the slot lies below the reserved top of our stack.
        unsafe { switch::record_slot(link) }
    }

    /// Whether the coroutine has been resumed at least once.
    pub fn started(&self) -> bool {
        self.sp != Some(self.initial_sp)
    }

    /// Whether the coroutine has finished: returned, panicked, been unwound
    /// or reset. A finished coroutine cannot be resumed.
    pub fn done(&self) -> bool {
        self.sp.is_none()
    }

    /// Marks the coroutine finished without unwinding its stack.
    ///
    /// # Safety
    ///
    /// Like `longjmp` out of the coroutine: nothing on its stack that needs
    /// dropping may be live, or it is leaked (and anything that relies on
    /// its destructor running is broken).
    pub unsafe fn force_reset(&mut self) {
        self.sp = None;
    }

    /// Unwinds the stack of a suspended coroutine, running the destructors
    /// of everything on it, and marks it finished. Does nothing if it has
    /// finished; drops the closure if it never started.
    ///
    /// The unwind is a panic payload thrown from the `suspend` call the
    /// coroutine is waiting in. If the coroutine catches it and suspends
    /// again, it is thrown again from that `suspend`, until the coroutine
    /// returns.
    ///
    /// # Panics
    ///
    /// Panics if the coroutine is suspended and the `unwind` feature is off
    /// (aborts, with a message, in a program built with `panic = "abort"`).
    /// If unwinding the coroutine raises a different panic, that panic
    /// continues from here and the coroutine is done. If the destructor of
    /// a value that the coroutine yielded while being unwound panics, that
    /// panic continues from here and the coroutine stays suspended: it can
    /// be resumed, or unwound again.
    pub fn force_unwind(&mut self) {
        if self.sp.is_some() {
            self.force_unwind_slow();
        }
    }

    #[cold]
    fn force_unwind_slow(&mut self) {
        if !self.started() {
            self.sp = None;
            // SAFETY: the coroutine never ran, so its closure is still where
            // with_stack_unchecked wrote it, and it is dropped only here.
            unsafe {
                (self.drop_closure)((self.initial_sp.get() + arch::INIT_FRAME_SIZE) as *mut u8)
            };
            return;
        }
        #[cfg(all(feature = "unwind", panic = "abort"))]
        unwind::abort_with_message(
            "switchback: a suspended coroutine is being unwound (dropped, or \
             force_unwind), but this program is built with panic = \"abort\", so its \
             stack cannot be unwound; aborting (run coroutines to completion, or \
             force_reset them, before dropping them)",
        );
        #[cfg(feature = "unwind")]
        self.unwind_suspended();
        #[cfg(not(feature = "unwind"))]
        panic!(
            "switchback: cannot unwind a suspended coroutine without the `unwind` feature; \
             run it to completion or use force_reset"
        );
    }

    /// Resumes the suspended coroutine with the unwind request until it
    /// returns.
    #[cfg(feature = "unwind")]
    fn unwind_suspended(&mut self) {
        let link = self.base.get() - arch::LINK_OFFSET;
        while let Some(sp) = self.sp {
            self.sp = None;
            #[cfg(not(feature = "asm-unwind"))]
            // SAFETY: the coroutine started and is suspended in `suspend`,
            // which unwinds when it sees the request.
            let (output, state) =
                unsafe { self.switch_in(|base| arch::switch_and_unwind(sp, base)) };
            #[cfg(feature = "asm-unwind")]
            let (output, state) = {
                let (base, record) = (self.base, self.record());
                // SAFETY: as above; the unwind comes back out of the switch.
                // (No Windows here, so no stack to tell.)
                match std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| unsafe {
                    let resuming = switch::resume_start(record);
                    let switched = arch::switch_and_unwind(sp, base);
                    let _ = switch::resume_end(resuming);
                    switched
                })) {
                    Ok(switched) => switched,
                    Err(payload) if unwind::is_forced_unwind_of(&*payload, link) => return,
                    Err(payload) => std::panic::resume_unwind(payload),
                }
            };
            if state > EXIT_PANICKED {
                // It caught the unwind and suspended again: drop what it
                // yielded and ask again. (`switch_in` recorded the state.)
                // SAFETY: as in `switch_in`.
                #[cfg(feature = "asm-unwind")]
                {
                    self.sp = Some(unsafe { StackPointer::new_unchecked(state) });
                }
                // SAFETY: as in `resume`.
                drop(unsafe { word::decode::<Yield>(output) });
                continue;
            }
            if state == EXIT_RETURNED {
                // It caught the unwind and returned.
                // SAFETY: as in `resume`.
                drop(unsafe { word::decode::<Return>(output) });
                continue;
            }
            // It panicked. With asm-unwind a panic leaves through the switch
            // instead (caught above), so this is only reached without it.
            #[cfg(not(feature = "asm-unwind"))]
            {
                // SAFETY: as in `resume`.
                let payload = unsafe { word::decode::<CaughtPanic>(output) };
                if !unwind::is_forced_unwind_of(&*payload, link) {
                    unwind::resume_caught(payload);
                }
            }
        }
    }

    /// Returns the stack of a finished coroutine, to reuse it.
    ///
    /// # Panics
    ///
    /// Panics if the coroutine is not [`done`](Coroutine::done).
    pub fn into_stack(self) -> Stack {
        assert!(
            self.done(),
            "switchback: into_stack called on a coroutine that has not finished; \
             run it to completion or call force_unwind first"
        );
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so the stack is
        // moved out exactly once; the other fields need no drop. The
        // coroutine is done, so no frame lives on the stack.
        unsafe { ManuallyDrop::take(&mut this.stack) }
    }

    /// A handle that a signal handler can use to make this coroutine return
    /// after a trap (a fault on its stack, or a stack overflow). See
    /// [`CoroutineTrapHandler`].
    pub fn trap_handler(&self) -> CoroutineTrapHandler<Return> {
        // The overflow report then lets the program's handler see this
        // thread's guard-page faults first.
        os_stacks!(do stack::note_trap_handler());
        CoroutineTrapHandler::new(self.base, (*self.stack).limit())
    }
}

impl<Input, Yield, Return, Stack: stack::Stack> Drop for Coroutine<Input, Yield, Return, Stack> {
    #[inline]
    fn drop(&mut self) {
        if self.sp.is_some() {
            // Frees the stack once the unwind below has finished, and also
            // if a panic interrupts it, as long as nothing lives on the
            // stack any more.
            let release = ReleaseStackWhenDone(self);
            release.0.unwind_for_drop();
        } else {
            // SAFETY: the coroutine is done, so no frame lives on its stack;
            // the field is not used again.
            unsafe { ManuallyDrop::drop(&mut self.stack) }
        }
    }
}

/// Drops a coroutine's stack when it goes out of scope, normally or while a
/// panic unwinds, if the coroutine is done; leaks it otherwise.
///
/// A panic from the destructor of a value that the coroutine yielded while
/// being unwound leaves the coroutine suspended, with live frames on its
/// stack. Unmapping the stack, or handing it to a pool, would leave those
/// frames (and anything that points into them, such as a scoped thread
/// borrowing a local) on freed memory, so the stack is leaked instead, as
/// `mem::forget` would: its memory stays allocated and the frames never run
/// again.
struct ReleaseStackWhenDone<'a, Input, Yield, Return, Stack: stack::Stack>(
    &'a mut Coroutine<Input, Yield, Return, Stack>,
);

impl<Input, Yield, Return, Stack: stack::Stack> Drop
    for ReleaseStackWhenDone<'_, Input, Yield, Return, Stack>
{
    fn drop(&mut self) {
        if self.0.done() {
            // SAFETY: the coroutine is done, so no frame lives on its stack;
            // this runs once, from the coroutine's `Drop`, and the field is
            // not used again.
            unsafe { ManuallyDrop::drop(&mut self.0.stack) }
        }
    }
}

impl<Input, Yield, Return, Stack: stack::Stack> Coroutine<Input, Yield, Return, Stack> {
    /// Unwinds a coroutine that is being dropped if it is suspended, or
    /// aborts with a message where that is impossible.
    pub(crate) fn unwind_for_drop(&mut self) {
        if self.done() {
            return;
        }
        if self.started() {
            #[cfg(not(feature = "unwind"))]
            unwind::abort_with_message(
                "switchback: a suspended coroutine was dropped, but unwinding its stack \
                 needs the `unwind` feature; aborting",
            );
        }
        self.force_unwind_slow();
    }
}

// The pooled constructors, after the coroutine's other impls (as the docs
// list them).
os_stacks! {
    use std::io;

    use crate::stack::{PooledStack, StackPool};

    impl<Input, Yield, Return> Coroutine<Input, Yield, Return, PooledStack> {
        /// Creates a coroutine that runs `f` on a stack from `pool`. The stack
        /// goes back to the pool when the coroutine is dropped.
        ///
        /// See [`StackPool`] for when to use a pool rather than
        /// [`Coroutine::new`].
        ///
        /// ```
        /// use switchback::stack::StackPool;
        /// use switchback::Coroutine;
        ///
        /// let pool = StackPool::new(64 * 1024).unwrap();
        /// let mut co = Coroutine::with_pool(&pool, |yielder, x: u32| {
        ///     let y = yielder.suspend(x + 1);
        ///     y * 2
        /// });
        /// assert_eq!(co.resume(1).as_yield(), Some(2));
        /// assert_eq!(co.resume(5).as_return(), Some(10));
        /// drop(co);
        /// assert_eq!(pool.idle_count(), 1);
        /// ```
        ///
        /// # Panics
        ///
        /// Panics if a new stack is needed and cannot be mapped, and as
        /// [`Coroutine::with_stack`] if the closure is too big for the stack.
        #[inline]
        pub fn with_pool<F>(pool: &StackPool, f: F) -> Self
        where
            F: FnOnce(&Yielder<Input, Yield>, Input) -> Return + 'static,
            Input: 'static,
            Yield: 'static,
            Return: 'static,
        {
            match pool.get() {
                Ok(stack) => Self::with_stack(stack, f),
                Err(error) => pool_exhausted(pool, error),
            }
        }

        /// [`with_pool`](Coroutine::with_pool), returning an error instead of
        /// panicking when a new stack cannot be mapped.
        ///
        /// # Errors
        ///
        /// The OS error from `mmap` or `mprotect`.
        ///
        /// # Panics
        ///
        /// As [`Coroutine::with_stack`] if the closure is too big for the stack.
        #[inline]
        pub fn try_with_pool<F>(pool: &StackPool, f: F) -> io::Result<Self>
        where
            F: FnOnce(&Yielder<Input, Yield>, Input) -> Return + 'static,
            Input: 'static,
            Yield: 'static,
            Return: 'static,
        {
            Ok(Self::with_stack(pool.get()?, f))
        }

        /// Creates a coroutine that runs `f` on a 1 MiB stack from the
        /// process-wide [`StackPool::global`]: [`Coroutine::new`] without the
        /// system calls.
        ///
        /// ```
        /// use switchback::Coroutine;
        ///
        /// for i in 0..1000u64 {
        ///     let mut co: Coroutine<(), (), u64, _> = Coroutine::pooled(move |_, ()| i);
        ///     assert_eq!(co.resume(()).as_return(), Some(i));
        /// }
        /// ```
        ///
        /// # Panics
        ///
        /// As [`with_pool`](Coroutine::with_pool).
        #[inline]
        pub fn pooled<F>(f: F) -> Self
        where
            F: FnOnce(&Yielder<Input, Yield>, Input) -> Return + 'static,
            Input: 'static,
            Yield: 'static,
            Return: 'static,
        {
            Self::with_pool(StackPool::global(), f)
        }
    }

    #[cold]
    #[inline(never)]
    fn pool_exhausted(pool: &StackPool, error: io::Error) -> ! {
        panic!(
            "switchback: failed to allocate a {}-byte pooled stack: {error}",
            pool.stack_size()
        )
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn resume_after_done() -> ! {
    panic!("switchback: resume called on a coroutine that has already finished")
}

/// Decodes what a finished coroutine handed over and resumes a panic it
/// carried.
///
/// # Safety
/// `output` and `exit` must come from a coroutine's `switch_and_reset`.
#[inline]
unsafe fn take_exit<Return>(output: Word, exit: usize) -> Return {
    if exit == EXIT_RETURNED {
        // SAFETY: per the caller, the root encoded its Return value.
        unsafe { word::decode::<Return>(output) }
    } else {
        // SAFETY: per the caller, the root encoded the caught panic. (Where
        // no panic is caught, CaughtPanic is uninhabited.)
        #[allow(unreachable_code)]
        unwind::resume_caught(unsafe { word::decode::<CaughtPanic>(output) })
    }
}

unsafe fn drop_closure<F>(obj: *mut u8) {
    // SAFETY: the caller passes the slot the closure was written to.
    unsafe { ptr::drop_in_place(obj as *mut F) }
}

/// The coroutine's first frame: takes the closure and the first input off
/// the stack, runs the closure and hands its result to the parent.
unsafe extern "C-unwind" fn coroutine_entry<Input, Yield, Return, F>(
    input: Word,
    link: *mut StackPointer,
    obj: *mut u8,
) -> !
where
    F: FnOnce(&Yielder<Input, Yield>, Input) -> Return,
{
    // SAFETY: we just arrived on this stack for the first time.
    unsafe { switch::arrive_first(link) };
    // SAFETY: the link is the Yielder, which is repr(transparent) over it.
    let yielder = unsafe { &*(link as *const Yielder<Input, Yield>) };
    // The closure is read out of its slot only at the call: the wrapper
    // that `catch_unwind` moves around (several times in debug builds) is
    // three words, whatever the size of the closure and the input.
    let run = move || {
        // SAFETY: with_stack_unchecked wrote the closure at `obj` and the
        // parent encoded the first input; each is taken exactly once.
        let input = unsafe { word::decode::<Input>(input) };
        // SAFETY: as above: the closure is read out of its slot once.
        (unsafe { ptr::read(obj as *mut F) })(yielder, input)
    };
    let result = unwind::catch_unwind_at_root(run);
    let mut slot = ExitSlot::new();
    let (output, exit) = encode_exit(result, &mut slot);
    // SAFETY: nothing else lives on this frame; `slot` stays in place (the
    // stack is not freed) until the parent has decoded it.
    unsafe { leave(output, exit, link) }
}

/// The handle a running coroutine uses to suspend itself.
///
/// It lives on the coroutine's stack and is only reachable by reference from
/// inside the coroutine. It is not `Sync`, so `&Yielder` cannot be sent to
/// another thread (nor into [`on_parent_stack`](Yielder::on_parent_stack)).
#[repr(transparent)]
pub struct Yielder<Input, Yield> {
    /// The parent link: the parent's stack pointer while the coroutine runs.
    link: core::cell::Cell<StackPointer>,
    marker: PhantomData<fn(Yield) -> Input>,
}

impl<Input, Yield> Yielder<Input, Yield> {
    /// Suspends the coroutine: `resume` returns
    /// [`CoroutineResult::Yield(value)`](CoroutineResult::Yield), and this
    /// call returns the input of the next `resume`.
    ///
    /// It can be called at any depth of the coroutine's calls, from any
    /// function that has the `&Yielder`:
    ///
    /// ```
    /// use switchback::{Coroutine, Yielder};
    ///
    /// // Three calls deep, and still the coroutine's own yield.
    /// fn ask(yielder: &Yielder<i32, &'static str>, question: &'static str) -> i32 {
    ///     yielder.suspend(question)
    /// }
    /// fn area(yielder: &Yielder<i32, &'static str>) -> i32 {
    ///     ask(yielder, "width?") * ask(yielder, "height?")
    /// }
    ///
    /// // Every `resume` passes an `i32`: the first one's is the closure's
    /// // argument (unused here), the others are what `suspend` returns.
    /// let mut co = Coroutine::new(|yielder, _: i32| area(yielder));
    /// assert_eq!(co.resume(0).as_yield(), Some("width?"));
    /// assert_eq!(co.resume(6).as_yield(), Some("height?"));
    /// assert_eq!(co.resume(7).as_return(), Some(42));
    /// ```
    ///
    /// If the coroutine is dropped or [`force_unwind`](Coroutine::force_unwind)
    /// is called while it waits here, this call unwinds instead of
    /// returning.
    ///
    /// A destructor may call it while a panic unwinds the coroutine's own
    /// stack: the coroutine then suspends with the unwind half done, and
    /// the next `resume` continues the unwind. Meanwhile the thread counts
    /// as panicking (`std::thread::panicking()` is true, and a `MutexGuard`
    /// dropped then poisons its `Mutex`). Unwinding the coroutine in that
    /// state (dropping it, or [`force_unwind`](Coroutine::force_unwind))
    /// throws the forced unwind out of that destructor, which the Rust
    /// runtime turns into an abort of the process, as for any panic leaving
    /// a destructor during an unwind; the same goes for a destructor that
    /// suspends during a forced unwind, which is thrown again at once (see
    /// [Dropping](Coroutine#dropping)). (`Suspender::block_on`, in the
    /// `future` module, refuses to suspend during an unwind instead.)
    #[inline]
    pub fn suspend(&self, value: Yield) -> Input {
        let mut slot = MaybeUninit::uninit();
        let output = word::encode(value, &mut slot);
        let link = self.link.as_ptr();
        // SAFETY: we run on the coroutine whose link this is; the parent
        // decodes `output` before resuming us. The parent's stack is kept
        // in the record below the link (and may change: another parent may
        // resume us).
        let resumed = unsafe {
            let suspending = switch::suspend_start(link);
            let resumed = arch::switch_yield(output, link);
            switch::suspend_end(link, suspending);
            resumed
        };
        match resumed {
            // SAFETY: the parent encoded the Input of `resume`.
            Some(input) => unsafe { word::decode::<Input>(input) },
            None => unwind::start_forced_unwind(link as usize),
        }
    }

    /// Runs `f` on the stack of whoever resumed the coroutine, and returns
    /// its result. Useful for work that needs more stack than the coroutine
    /// has.
    ///
    /// `f` must be `Send` so that it cannot take the `Yielder` (or anything
    /// else tied to the coroutine) with it.
    ///
    /// ```
    /// use switchback::Coroutine;
    ///
    /// let mut co: Coroutine<(), (), usize> = Coroutine::new(|yielder, ()| {
    ///     yielder.on_parent_stack(|| vec![0u8; 4096].len())
    /// });
    /// assert_eq!(co.resume(()).as_return(), Some(4096));
    /// ```
    ///
    /// # Panics
    ///
    /// A panic in `f` continues from this call.
    pub fn on_parent_stack<F, R>(&self, f: F) -> R
    where
        F: FnOnce() -> R + Send,
    {
        let top = arch::parent_stack_top(self.link.get().get());
        // SAFETY: while we run, the parent is blocked in switch_and_link and
        // its stack below the link value is unused.
        unsafe { crate::on_stack::call_on_stack(top, switch::parent_stack(self.link.as_ptr()), f) }
    }
}

impl<Input, Yield> fmt::Debug for Yielder<Input, Yield> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Yielder").finish_non_exhaustive()
    }
}
