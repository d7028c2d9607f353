//! Coroutines as iterators, and `generator` (with the `default-stack`
//! feature): an iterator written as a closure that yields.
//!
//! A coroutine that takes no input and returns `()` is an [`Iterator`] over
//! the values it yields: each [`next`](Iterator::next) resumes it, a
//! [`suspend`](crate::Yielder::suspend) hands out the next item, and returning ends
//! the iteration.
//!
//! # Compared with `gen` blocks and the `generator` crate
//!
//! - std's unstable `gen` blocks (`gen { yield 1; yield 2; }`) are
//!   stackless: the compiler turns the block into a state machine, which
//!   costs nothing to create and needs no stack of its own, but can only
//!   `yield` in the block's own body, not from a function it calls. A
//!   switchback generator is stackful: it runs on a stack of its own (taken
//!   from a pool, so creating one costs no system call), and any function
//!   it calls, at any depth, can yield through the [`&Yielder`](crate::Yielder) (as a
//!   recursive tree walk does below). It works on stable Rust.
//! - The `generator` crate is stackful too, with its own `Gn::new_scoped`
//!   API. This module is a small layer over switchback's [`Coroutine`]: a
//!   generator is a `Coroutine<(), Yield, ()>` and has all of its methods.
//!
//! ```
//! use switchback::Yielder;
//!
//! enum Tree {
//!     Leaf(u32),
//!     Node(Box<Tree>, Box<Tree>),
//! }
//!
//! // An ordinary recursive function that yields from every depth.
//! fn walk(tree: &Tree, yielder: &Yielder<(), u32>) {
//!     match tree {
//!         Tree::Leaf(value) => yielder.suspend(*value),
//!         Tree::Node(left, right) => {
//!             walk(left, yielder);
//!             walk(right, yielder);
//!         }
//!     }
//! }
//!
//! let tree = Tree::Node(
//!     Box::new(Tree::Node(Box::new(Tree::Leaf(1)), Box::new(Tree::Leaf(2)))),
//!     Box::new(Tree::Leaf(3)),
//! );
//! let leaves: Vec<u32> = switchback::generator(move |yielder| walk(&tree, yielder)).collect();
//! assert_eq!(leaves, [1, 2, 3]);
//! ```
//!
//! To iterate over data that the generator borrows, use a
//! [`ScopedCoroutine`](crate::ScopedCoroutine), whose
//! [`ScopedCoroutineRef`] is an iterator too.

use core::iter::FusedIterator;

use crate::coroutine::Coroutine;
use crate::scoped::ScopedCoroutineRef;
use crate::stack::Stack;
os_stacks! {
    use crate::stack::PooledStack;
    use crate::coroutine::Yielder;
}

/// Implements `Iterator` and `FusedIterator` for a coroutine type with no
/// input and no return value: each `next` resumes it, until it is done.
macro_rules! coroutine_iterator {
    ($(#[$doc:meta])* $ty:ty) => {
        $(#[$doc])*
        impl<Yield, S: Stack> Iterator for $ty {
            type Item = Yield;

            #[inline]
            fn next(&mut self) -> Option<Yield> {
                if self.done() {
                    return None;
                }
                self.resume(()).as_yield()
            }
        }

        impl<Yield, S: Stack> FusedIterator for $ty {}
    };
}

coroutine_iterator!(
    /// The values the coroutine yields, until it returns. After the end (or
    /// a panic, which comes out of `next`) `next` returns `None`.
    ///
    /// ```
    /// use switchback::Coroutine;
    ///
    /// let countdown: Coroutine<(), u32, ()> = Coroutine::new(|yielder, ()| {
    ///     for i in (1..=3).rev() {
    ///         yielder.suspend(i);
    ///     }
    /// });
    /// assert_eq!(countdown.collect::<Vec<_>>(), [3, 2, 1]);
    /// ```
    Coroutine<(), Yield, (), S>
);

coroutine_iterator!(
    /// The values a scoped coroutine yields, until it returns; as for
    /// [`Coroutine`].
    ///
    /// ```
    /// use switchback::ScopedCoroutine;
    ///
    /// let words = vec!["a", "bb", "ccc"];
    /// let lengths = ScopedCoroutine::new(|yielder, ()| {
    ///     for word in &words {
    ///         yielder.suspend(word.len());
    ///     }
    /// })
    /// .scope(|co| co.collect::<Vec<_>>());
    /// assert_eq!(lengths, [1, 2, 3]);
    /// ```
    ScopedCoroutineRef<'_, (), Yield, (), S>
);

os_stacks! {
    /// An iterator over the values that `f` passes to
    /// [`yielder.suspend`](Yielder::suspend), from any depth of its call stack,
    /// ending when `f` returns.
    ///
    /// It runs on a 1 MiB stack from [`StackPool::global`](crate::stack::StackPool::global),
    /// which goes back to the pool when the iterator is dropped; dropping it
    /// before the end unwinds `f`'s stack, running its destructors. For another
    /// stack, write the coroutine directly: `Coroutine::with_stack(stack, |yielder, ()| ...)`
    /// is an iterator too. See the [module documentation](crate::iter).
    ///
    /// ```
    /// let fibonacci = switchback::generator(|yielder| {
    ///     let (mut a, mut b) = (0u64, 1);
    ///     while a < 20 {
    ///         yielder.suspend(a);
    ///         (a, b) = (b, a + b);
    ///     }
    /// });
    /// let all: Vec<u64> = fibonacci.collect();
    /// assert_eq!(all, [0, 1, 1, 2, 3, 5, 8, 13]);
    /// ```
    ///
    /// # Panics
    ///
    /// Panics if a new stack is needed and cannot be mapped. A panic in `f`
    /// comes out of the `next` call that was running it.
    pub fn generator<Yield, F>(f: F) -> Coroutine<(), Yield, (), PooledStack>
    where
        F: FnOnce(&Yielder<(), Yield>) + 'static,
        Yield: 'static,
    {
        Coroutine::pooled(move |yielder, ()| f(yielder))
    }
}
