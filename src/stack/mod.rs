//! Stacks that coroutines run on: the [`Stack`] trait, `DefaultStack` and
//! `StackPool`.
//!
//! Every coroutine runs on a stack of its own, which it owns (or borrows,
//! for a `ScopedCoroutine`) until it is dropped. The items named here
//! without a link (`DefaultStack`, `StackPool`, `PooledStack`,
//! `remaining_stack`, `maybe_grow`, `grow`, `set_overflow_report`) come with
//! the `default-stack` feature, on Unix and Windows.
//!
//! # Choosing a stack
//!
//! - **`DefaultStack`, for most programs.** Memory mapped from the OS with
//!   a guard page below it, registered with Valgrind. `Coroutine::new` and
//!   `ScopedCoroutine::new` make one of 1 MiB; for another size,
//!   `DefaultStack::new(size)` gives a stack of the size you ask for,
//!   rounded up to whole pages (and never below [`MIN_STACK_SIZE`]), which
//!   [`Coroutine::with_stack`](crate::Coroutine::with_stack) runs a
//!   coroutine on. [`Coroutine::into_stack`](crate::Coroutine::into_stack)
//!   gives it back when the coroutine has finished, for the next one, and
//!   a `ScopedCoroutine` can borrow one (`&mut DefaultStack`).
//! - **`StackPool`, for many short-lived coroutines.** A coroutine made with
//!   `Coroutine::with_pool(&pool, f)` runs on a `PooledStack` that goes back
//!   to the pool when the coroutine is dropped, so the next coroutine takes
//!   it without a system call; `Coroutine::pooled(f)` uses a process-wide
//!   pool of 1 MiB stacks. `StackPool::builder()` sets whether idle stacks
//!   give their memory back (`release_idle_memory`) and whether a reused
//!   stack is zeroed first (`zero_on_reuse`).
//! - **Your own [`Stack`], where there is no OS or you manage the memory.**
//!   The unsafe trait asks for one thing: `[limit(), base())` is usable
//!   memory and a guard area that faults on access lies just below
//!   `limit()`. This is how a `no_std` program (firmware, a kernel) gives
//!   coroutines stacks; [`valgrind::ValgrindStackRegistration`] tells
//!   Valgrind about such a stack.
//!
//! # How big
//!
//! A stack has the size it is asked for, rounded up to whole pages, with
//! a guard page below it: `DefaultStack::new(8 * 1024)` has 8 KiB of usable
//! stack on 4 KiB pages, and code that needs more runs into the guard page
//! (a trap, or the overflow report). The only floor is
//! [`MIN_STACK_SIZE`], one 4 KiB page, as in corosensei. How much to ask
//! for:
//!
//! - `Coroutine::new` and `DefaultStack::default()` give 1 MiB: right
//!   unless there are many coroutines.
//! - [`RECOMMENDED_MIN_STACK_SIZE`] (32 KiB) is the least for a coroutine
//!   that may panic or be dropped while suspended (a panic needs about
//!   23 KiB on x86-64 Linux).
//! - Below that, a stack bounds how deep the code on it can go, on purpose
//!   (a runtime running guest code), and must hold the closure twice (see
//!   [`Coroutine::with_stack`](crate::Coroutine::with_stack): a closure that
//!   does not fit panics there, before it runs).
//!
//! Measure rather than guess: `high_water_mark()` on a `DefaultStack` or
//! `PooledStack` says how many bytes of it were ever used, so run the real
//! workload on generous stacks and size from the peak. Memory is committed
//! as it is touched (on Windows as on Linux), so a large stack that is
//! mostly unused costs address space, not memory.
//!
//! # Overflow, and running out
//!
//! Running past the end of a stack hits its guard page (at least
//! [`MIN_GUARD_SIZE`] bytes) and faults instead of overwriting other memory.
//! On the crate's own stacks the process then prints which thread
//! overflowed which stack, and aborts, as std does for a thread's stack
//! (`set_overflow_report(false)` turns the report off). A JIT or
//! interpreter that wants an overflow to come back as an error instead
//! catches the fault with a trap handler ([`crate::trap`]).
//!
//! Code that may need more stack than it has can ask: `remaining_stack()`
//! returns the bytes left on the current stack (the crate's stacks, the
//! thread's own, and on Windows every stack), `maybe_grow(red_zone, size,
//! f)` runs `f` in place if at least `red_zone` bytes are left and
//! otherwise on a new stack from a pool, and `grow(size, f)` always runs
//! `f` on a new stack. [`on_stack`](crate::on_stack()) runs a closure on a stack
//! you give it, without making a coroutine.
//!
//! ```
//! use switchback::stack::{maybe_grow, DefaultStack, StackPool};
//! use switchback::{Coroutine, CoroutineResult};
//!
//! // One coroutine on a stack of the size asked for.
//! let stack = DefaultStack::new(256 * 1024).unwrap();
//! let mut co = Coroutine::with_stack(stack, |yielder, n: u32| yielder.suspend(n * 2) + 1);
//! assert!(matches!(co.resume(21), CoroutineResult::Yield(42)));
//! assert!(matches!(co.resume(1), CoroutineResult::Return(2)));
//! let stack = co.into_stack(); // finished: the stack is free for the next one
//! assert!(stack.high_water_mark().unwrap() > 0);
//!
//! // Many short-lived coroutines: stacks come back to the pool.
//! let pool = StackPool::new(64 * 1024).unwrap();
//! for i in 0..100u64 {
//!     let mut co: Coroutine<(), (), u64, _> = Coroutine::with_pool(&pool, move |_, ()| i * i);
//!     assert_eq!(co.resume(()).as_return(), Some(i * i));
//! }
//! assert_eq!(pool.idle_count(), 1);
//!
//! // Deep recursion that continues on a new stack when this one runs low.
//! fn depth(n: u32) -> u32 {
//!     maybe_grow(32 * 1024, 1024 * 1024, || if n == 0 { 0 } else { 1 + depth(n - 1) })
//! }
//! assert_eq!(depth(100_000), 100_000);
//! ```

pub mod valgrind;

os_stacks! {
    mod default_stack;
    mod grow;
    mod high_water;
    mod mapping;
    mod overflow;
    mod pool;
    mod registry;
    // Not under Miri, whose stacks come from the allocator (`os/miri.rs`).
    #[cfg(all(unix, not(miri)))]
    mod slab;

    pub use self::default_stack::DefaultStack;
    pub use self::grow::{grow, maybe_grow, remaining_stack};
    pub(crate) use self::overflow::note_trap_handler;
    pub use self::overflow::set_overflow_report;
    pub use self::pool::{PooledStack, StackPool, StackPoolBuilder};
    use self::valgrind::ValgrindStackRegistration;
}
#[cfg(windows)]
pub use crate::os::teb::StackTebFields;

pub use crate::word::StackPointer;

/// Required alignment of a stack's [`base`](Stack::base) and
/// [`limit`](Stack::limit).
pub const STACK_ALIGNMENT: usize = crate::arch::STACK_ALIGNMENT;

/// The least number of usable bytes a [`Stack`] can have (guard page not
/// included): 4 KiB, corosensei's minimum. A hard floor, not a
/// recommendation.
///
/// `DefaultStack::new` and `StackPool` give a caller the size it asks for,
/// rounded up to whole pages, and round sizes below this floor (0 included)
/// up to it; so on 4 KiB pages `DefaultStack::new(8 * 1024)` has exactly
/// 8 KiB of usable stack, and `DefaultStack::new(1)` one page. A custom
/// [`Stack`] smaller than this is rejected with a panic.
///
/// On a stack this small the crate itself needs only a few hundred bytes
/// at the top (see [`Coroutine::with_stack`](crate::Coroutine::with_stack)
/// for the closure-size rule); everything else is the coroutine's. Running
/// out of it faults in the guard page: a trap that a
/// [`CoroutineTrapHandler`](crate::trap::CoroutineTrapHandler) can turn into
/// a return, or the overflow report. Runtimes use small stacks on purpose
/// to bound the recursion of the code they run. For anything else, see
/// [`RECOMMENDED_MIN_STACK_SIZE`]: a panic, or dropping a suspended
/// coroutine (which unwinds it), needs far more than a page.
pub const MIN_STACK_SIZE: usize = 4096;

/// The smallest stack this crate recommends for a coroutine that may panic
/// or be dropped while suspended: 32 KiB.
///
/// That is room for the frames that start a coroutine, a closure of 2 KiB
/// and a panic: a panic takes about 23 KiB of stack on x86-64 Linux (the
/// panic hook and the unwinder's context records), and dropping a
/// suspended coroutine, which unwinds its stack without the hook, about
/// 8 KiB. On a smaller stack these run into the guard page (a trap, or the
/// overflow report and an abort; never a silent overwrite).
///
/// Nothing enforces it: stacks down to [`MIN_STACK_SIZE`] work for code
/// that fits in them. The stack of `Coroutine::new` and
/// `DefaultStack::default()` is far larger (1 MiB). To size a pool, measure
/// (the stacks' `high_water_mark`) and keep at least this much.
pub const RECOMMENDED_MIN_STACK_SIZE: usize = 32 * 1024;

/// Bytes below [`Stack::limit`] that must fault on access: at least one
/// 4 KiB page of guard. A fault whose stack pointer lies this far below the
/// limit still counts as inside the stack for trap handling (an overflow
/// leaves the stack pointer in the guard page).
pub const MIN_GUARD_SIZE: usize = 4096;

/// An object that owns a region of memory usable as a stack.
///
/// Stacks grow downwards: code runs from [`base`](Stack::base) towards
/// [`limit`](Stack::limit).
///
/// # Safety
///
/// `[limit(), base())` is the usable stack, at least [`MIN_STACK_SIZE`]
/// bytes (see [`RECOMMENDED_MIN_STACK_SIZE`] for how much to give), and the [`MIN_GUARD_SIZE`] bytes just below `limit()` are a guard
/// that faults on any access. In full, for as long as the object lives:
///
/// - `base()` and `limit()` return the same values on every call, both
///   aligned to [`STACK_ALIGNMENT`], with `limit() < base()`.
/// - The memory from `limit()` up to `base()` is readable, writable, owned
///   by the object and not used by anything else while a coroutine runs on
///   it. (On Windows it may instead be committed as code on the stack
///   reaches it, as a thread's stack is, if
///   its `teb_fields` say so: `DefaultStack` does this.)
/// - At least [`MIN_GUARD_SIZE`] bytes directly below `limit()` fault on any
///   access (a guard page), so that a stack overflow traps instead of
///   corrupting other memory.
///
/// corosensei's documentation says instead that `limit()` includes the
/// guard pages. A stack written that way works here too, with one
/// difference: switchback counts its guard page as usable, so a closure
/// that only just fits may run into the guard page and fault (a crash,
/// never a silent overwrite). `DefaultStack` and pooled stacks return the
/// lowest usable address.
///
/// # Example
///
/// A stack borrowed from another, so that it can be reused after the
/// coroutine finishes:
///
/// ```
/// use switchback::stack::{DefaultStack, Stack};
/// use switchback::ScopedCoroutine;
///
/// let mut stack = DefaultStack::new(64 * 1024).unwrap();
/// let base = stack.base();
/// let coroutine: ScopedCoroutine<u32, (), u32, _> =
///     ScopedCoroutine::with_stack(&mut stack, |_, x| x * 2);
/// let out = coroutine.scope(|mut co| co.resume(21).as_return());
/// assert_eq!(out, Some(42));
/// assert_eq!(stack.base(), base);
/// ```
pub unsafe trait Stack {
    /// The highest address of the stack (stacks grow down), aligned to
    /// [`STACK_ALIGNMENT`].
    fn base(&self) -> StackPointer;

    /// The lowest usable address of the stack (the guard page lies just
    /// below it), aligned to [`STACK_ALIGNMENT`].
    fn limit(&self) -> StackPointer;

    /// Windows only: the values that the Thread Environment Block's stack
    /// fields take while code runs on this stack. Windows reads them to
    /// grow the stack into its guard page, to check stack pointers while
    /// dispatching exceptions, and in the stack probes (`__chkstk`).
    ///
    /// The default describes `[limit(), base())` as committed memory with
    /// the guard just below `limit()` and no guaranteed bytes, which is
    /// right for any stack that keeps the [`Stack`] contract with committed
    /// memory. A stack that commits its memory as code on it grows into a
    /// guard page, as a thread's stack and `DefaultStack` do, returns its
    /// current commit limit and the start of its reservation, so that
    /// Windows grows it.
    #[cfg(windows)]
    fn teb_fields(&self) -> StackTebFields {
        StackTebFields {
            StackBase: self.base().get(),
            StackLimit: self.limit().get(),
            DeallocationStack: self.limit().get() - MIN_GUARD_SIZE,
            GuaranteedStackBytes: 0,
        }
    }

    /// Windows only: called after a switch away from this stack that found
    /// the TEB's `StackLimit` or `GuaranteedStackBytes` changed from what
    /// the stack last said (Windows lowers the limit as the stack grows,
    /// and `SetThreadStackGuarantee` sets the guarantee), with their new
    /// values, so that the next [`teb_fields`](Stack::teb_fields) can
    /// return them. The default ignores them.
    #[cfg(windows)]
    fn update_teb_fields(&mut self, stack_limit: usize, guaranteed_stack_bytes: usize) {
        let _ = (stack_limit, guaranteed_stack_bytes);
    }

    /// Windows only, and not part of the public API (it may change in any
    /// release): called on an idle stack before the crate writes to
    /// `[low, base())` from another stack (a new coroutine's closure, at
    /// the top of its stack), so that a stack which commits its memory as
    /// code on it grows, as `DefaultStack` does, can commit that part
    /// first: code on another stack cannot grow it through its guard page.
    /// The default does nothing, which is right for any stack that keeps
    /// the [`Stack`] contract with committed memory.
    #[cfg(windows)]
    #[doc(hidden)]
    fn __commit_from(&self, low: usize) {
        let _ = low;
    }
}

// SAFETY: a mutable borrow owns the stack for its lifetime and forwards to a
// `Stack` whose guarantees hold.
unsafe impl<S: Stack + ?Sized> Stack for &mut S {
    #[inline]
    fn base(&self) -> StackPointer {
        (**self).base()
    }

    #[inline]
    fn limit(&self) -> StackPointer {
        (**self).limit()
    }

    #[cfg(windows)]
    #[inline]
    fn teb_fields(&self) -> StackTebFields {
        (**self).teb_fields()
    }

    #[cfg(windows)]
    #[inline]
    fn update_teb_fields(&mut self, stack_limit: usize, guaranteed_stack_bytes: usize) {
        (**self).update_teb_fields(stack_limit, guaranteed_stack_bytes)
    }

    #[cfg(windows)]
    #[inline]
    fn __commit_from(&self, low: usize) {
        (**self).__commit_from(low)
    }
}
