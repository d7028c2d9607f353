//! High-water marks: how much of a `DefaultStack` or pooled stack has ever
//! been touched, from the pages the kernel populated (`mincore` on Unix,
//! the working set's valid pages, `QueryWorkingSetEx`, on Windows).

use std::io;

use super::mapping::page_size;
use super::{DefaultStack, PooledStack, Stack};
use crate::os::{self, RESIDENT_QUERY_PAGES};

/// Bytes from `base` down to the start of the lowest page of `[limit,
/// base)` that is resident.
fn high_water_mark(limit: usize, base: usize) -> io::Result<usize> {
    let page = page_size();
    let mut residency = [false; RESIDENT_QUERY_PAGES];
    let mut start = limit;
    while start < base {
        let len = (base - start).min(RESIDENT_QUERY_PAGES * page);
        let pages = len.div_ceil(page);
        os::resident_pages(start, &mut residency[..pages])?;
        if let Some(lowest) = residency[..pages].iter().position(|&resident| resident) {
            return Ok(base - (start + lowest * page));
        }
        start += len;
    }
    Ok(0)
}

impl DefaultStack {
    /// How many bytes of the stack have ever been used: from its
    /// [`base`](Stack::base) down to the lowest page that the kernel has
    /// populated (`mincore`; on Windows, the lowest page in the process's
    /// working set), in whole pages. Nothing is counted when the
    /// stack is created or switched to; the pages themselves are the
    /// record, so this is the deepest any code went on the stack since it
    /// was mapped.
    ///
    /// Use it to size stacks from measurement: run a representative
    /// workload on generous stacks, then give the real ones the peak plus
    /// headroom (see [`PooledStack::high_water_mark`] for a pool). Pages
    /// that were swapped out (on Windows, trimmed from the working set) do
    /// not count, and where the kernel backs a
    /// stack with huge pages the mark rounds up to them.
    ///
    /// ```
    /// use std::hint::black_box;
    /// use switchback::stack::DefaultStack;
    /// use switchback::Coroutine;
    ///
    /// let stack = DefaultStack::new(1024 * 1024).unwrap();
    /// assert_eq!(stack.high_water_mark().unwrap(), 0); // nothing touched yet
    /// let mut co: Coroutine<(), (), u8, _> = Coroutine::with_stack(stack, |_, ()| {
    ///     let buffer = black_box([7u8; 100 * 1024]);
    ///     buffer[0]
    /// });
    /// co.resume(());
    /// let used = co.into_stack().high_water_mark().unwrap();
    /// assert!(used > 100 * 1024 && used < 1024 * 1024);
    /// ```
    ///
    /// # Errors
    ///
    /// The OS error if `mincore` (`QueryWorkingSetEx`) fails. On OpenBSD,
    /// which has had no `mincore` since 6.5, always `ENOSYS`: the mark
    /// cannot be had there. Under Miri always an error of kind
    /// `Unsupported`.
    pub fn high_water_mark(&self) -> io::Result<usize> {
        high_water_mark(self.limit().get(), self.base().get())
    }
}

impl PooledStack {
    /// How many bytes of the stack have ever been used, by every coroutine
    /// that ran on it since it was mapped (or since its memory was last
    /// given back, with
    /// [`release_idle_memory`](super::StackPoolBuilder::release_idle_memory)
    /// or [`zero_on_reuse`](super::StackPoolBuilder::zero_on_reuse)). See
    /// [`DefaultStack::high_water_mark`].
    ///
    /// To size a pool, run a representative workload on a pool of generous
    /// stacks, take the largest mark of the stacks the coroutines leave
    /// behind, and give the real pool that plus headroom:
    ///
    /// ```
    /// use std::hint::black_box;
    /// use switchback::stack::{StackPool, RECOMMENDED_MIN_STACK_SIZE};
    /// use switchback::Coroutine;
    ///
    /// fn handle(request: usize) -> u8 {
    ///     // Stands for real work that needs up to ~40 KiB of stack.
    ///     let scratch = black_box([request as u8; 40 * 1024]);
    ///     scratch[request]
    /// }
    ///
    /// // Measure on 1 MiB stacks...
    /// let measuring = StackPool::new(1024 * 1024).unwrap();
    /// let mut peak = 0;
    /// for request in 0..100 {
    ///     let mut co: Coroutine<(), (), u8, _> =
    ///         Coroutine::with_pool(&measuring, move |_, ()| handle(request));
    ///     co.resume(());
    ///     let stack = co.into_stack();
    ///     peak = peak.max(stack.high_water_mark().unwrap());
    /// }
    /// assert!(peak >= 40 * 1024 && peak < 1024 * 1024);
    ///
    /// // ...then size the pool for the real thing at twice the peak, and
    /// // at least the recommended minimum, which leaves room for a panic.
    /// let pool = StackPool::new((2 * peak).max(RECOMMENDED_MIN_STACK_SIZE)).unwrap();
    /// let mut co: Coroutine<(), (), u8, _> = Coroutine::with_pool(&pool, |_, ()| handle(5));
    /// assert_eq!(co.resume(()).as_return(), Some(5));
    /// ```
    ///
    /// # Errors
    ///
    /// The OS error if `mincore` (`QueryWorkingSetEx`) fails. On OpenBSD,
    /// which has had no `mincore` since 6.5, always `ENOSYS`: the mark
    /// cannot be had there. Under Miri always an error of kind
    /// `Unsupported`.
    pub fn high_water_mark(&self) -> io::Result<usize> {
        high_water_mark(self.limit().get(), self.base().get())
    }
}
