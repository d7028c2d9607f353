//! Fast, safe stackful coroutines.
//!
//! A coroutine is a function that runs on its own stack and can suspend itself
//! from any depth of its call stack, handing a value to whoever resumed it and
//! getting a value back when it is resumed again.
//!
//! switchback is a drop-in replacement for the public API of `corosensei` 0.3:
//! the same types, methods, modules and fields, so that
//! `corosensei = { package = "switchback", version = "0.1" }` compiles
//! existing code unchanged.
//!
//! # Example
//!
//! ```
//! use switchback::{Coroutine, CoroutineResult};
//!
//! let mut coroutine = Coroutine::new(|yielder, input: u32| {
//!     let mut total = input;
//!     for i in 0..3 {
//!         total += yielder.suspend(i);
//!     }
//!     total
//! });
//!
//! assert_eq!(coroutine.resume(100), CoroutineResult::Yield(0));
//! assert_eq!(coroutine.resume(1), CoroutineResult::Yield(1));
//! assert_eq!(coroutine.resume(2), CoroutineResult::Yield(2));
//! assert_eq!(coroutine.resume(3), CoroutineResult::Return(106));
//! assert!(coroutine.done());
//! ```
//!
//! # Stacks
//!
//! `Coroutine::new` maps a fresh 1 MiB `stack::DefaultStack` (a few
//! microseconds of system calls). Code that creates many coroutines should
//! take stacks from a `stack::StackPool` (`Coroutine::with_pool`,
//! `Coroutine::pooled`), or reuse one with [`Coroutine::with_stack`] and
//! [`Coroutine::into_stack`]. Closures that borrow run in a
//! [`ScopedCoroutine`].
//!
//! # Async code and iterators
//!
//! - `future::CoroutineFuture` runs blocking-style code on a coroutine as
//!   a `Future`: anywhere in its call stack, `future::Suspender::block_on`
//!   waits for a future without blocking the thread (the coroutine suspends
//!   and the outer `poll` returns `Pending`). Needs the `default-stack` and
//!   `unwind` features.
//! - A `Coroutine<(), Y, ()>` is an `Iterator<Item = Y>` over what it
//!   yields, and `generator` writes one from a closure; unlike a `gen`
//!   block, it can yield from nested calls (see [`iter`]).
//!
//! ```
//! let squares: Vec<u32> = switchback::generator(|yielder| {
//!     for i in 1..=4 {
//!         yielder.suspend(i * i);
//!     }
//! })
//! .collect();
//! assert_eq!(squares, [1, 4, 9, 16]);
//! ```
//!
//! # Panics, backtraces and traps
//!
//! - A panic inside a coroutine unwinds the coroutine's stack and then
//!   continues from the [`resume`](Coroutine::resume) that ran it; the
//!   coroutine is done afterwards. `on_stack` and
//!   [`Yielder::on_parent_stack`] pass panics back the same way.
//! - Dropping a suspended coroutine unwinds its stack with a panic payload
//!   of type `ForcedUnwind` (with the `unwind` feature), so that every destructor on it runs. Code in
//!   a coroutine that catches panics should re-raise that one (see
//!   `ForcedUnwind`). What happens when that unwind cannot finish is
//!   under [Dropping](Coroutine#dropping).
//! - In a program built with `panic = "abort"` a panic aborts the process
//!   as usual, and a suspended coroutine cannot be unwound: dropping one
//!   prints why and aborts. Run coroutines to completion there.
//! - A backtrace taken inside a coroutine continues into the function that
//!   resumed it (the coroutine's first frame carries unwind information and
//!   a frame record that lead to its parent), so debuggers, profilers and
//!   `std::backtrace` see one call stack.
//! - The [`trap`] module turns a fault inside a coroutine (such as a stack
//!   overflow into its guard page) into a return value, from a signal
//!   handler (a vectored exception handler on Windows).
//! - Stacks have the size asked for, rounded up to whole pages, down to a
//!   floor of [`stack::MIN_STACK_SIZE`] (4 KiB) as in corosensei; the crate
//!   itself takes a few hundred bytes of it plus twice the size of the
//!   closure (see [`Coroutine::with_stack`]). A coroutine that may panic
//!   wants at least [`stack::RECOMMENDED_MIN_STACK_SIZE`] (32 KiB); the
//!   default stack is 1 MiB.
//! - With `default-stack`, a coroutine that overflows a stack the crate made
//!   does not die of a bare segmentation fault: the process prints which
//!   thread overflowed which stack and aborts, as std does for threads
//!   (`stack::set_overflow_report` turns this off). `stack::remaining_stack`
//!   says how much stack is left, `stack::maybe_grow` continues on a new
//!   stack when too little is, and `high_water_mark` on `DefaultStack` and
//!   `PooledStack` says how much of a stack was ever used.
//!
//! # Supported targets
//!
//! Linux and bare-metal (no OS) targets of x86-64, x86, AArch64, 32-bit ARM
//! (ARM and Thumb), RISC-V (RV64, RV32), LoongArch64, PowerPC64 (ELFv1,
//! ELFv2) and s390x; macOS on x86-64 and AArch64, and iOS on AArch64;
//! Windows on x86-64, x86 and AArch64; UEFI on x86-64, x86 and AArch64. CI
//! runs the whole test suite natively on x86-64 Linux (also under Valgrind
//! and AddressSanitizer), under qemu-user on the other Linux targets and
//! under Wine on x86-64 Windows, boots a UEFI test application under QEMU
//! with UEFI firmware, builds the crate without features for `no_std`
//! targets, and compiles the Apple targets and the other Windows targets
//! (it has no machine to run them); the README's table says how each target
//! is checked. Any other target (the BSDs, ...) stops with a compile error
//! that lists the supported ones.
//!
//! On Windows the context switch also swaps the stack fields of the Thread
//! Environment Block (the stack's bounds, its reservation, the guaranteed
//! bytes and the SEH chain head), which Windows' stack growth, stack probes
//! and exception dispatch read; a custom [`stack::Stack`] describes itself
//! to it through `Stack::teb_fields`.
//!
//! # Cargo features
//!
//! - `default-stack` (default): `stack::DefaultStack` and
//!   `stack::StackPool`, stacks with a guard page mapped by the OS (`mmap`
//!   on Unix, `VirtualAlloc` on Windows). Requires `std`.
//! - `unwind` (default): a panic in a coroutine unwinds its stack and
//!   continues in the caller of `resume`; dropping a suspended coroutine
//!   unwinds its stack so that every destructor runs. Without it a panic
//!   that reaches the root of a coroutine aborts the process, and so does
//!   dropping a suspended coroutine. Requires `std`. The `future` module
//!   needs it and `default-stack`, since a dropped future unwinds its
//!   coroutine.
//! - `asm-unwind` (nightly): panics unwind straight through the context
//!   switch instead of being caught at the root of the coroutine and carried
//!   across as a value. Not on Windows, whose exception dispatcher refuses
//!   frames outside the current stack (a compile error says so).
//! - `sanitizer`: tells AddressSanitizer about every stack switch, for
//!   programs built with `-Zsanitizer=address`. Only enable it then: it
//!   links against the sanitizer runtime. It cannot be combined with
//!   `asm-unwind` (a compile error says why).
//! - `libc`, `windows-sys`: the names of corosensei's optional
//!   dependencies, so that manifests that enable them keep working.
//!
//! With no features the crate is `#![no_std]`.
#![no_std]
#![cfg_attr(feature = "asm-unwind", feature(asm_unwind))]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs, unsafe_op_in_unsafe_fn)]

#[cfg(all(feature = "sanitizer", feature = "asm-unwind"))]
compile_error!(
    "switchback: the `sanitizer` and `asm-unwind` features cannot be combined: with \
     `asm-unwind` a panic crosses from a coroutine's stack to its parent's inside the \
     unwinder, where the switch cannot be announced to AddressSanitizer (which then \
     reports false stack-buffer-overflows); use `sanitizer` without `asm-unwind`"
);

#[cfg(all(windows, feature = "asm-unwind"))]
compile_error!(
    "switchback: the `asm-unwind` feature is not supported on Windows: a panic crossing \
     from a coroutine's stack to its parent's would be dispatched by Windows' exception \
     machinery, which refuses frames outside the stack the TEB describes (x86-64, AArch64) \
     and follows an fs:[0] chain that cannot continue into the parent's stack (x86); \
     without `asm-unwind`, panics are caught at the coroutine's root and resumed in the \
     parent, which works everywhere"
);

// Under Miri the switch is made of threads (`arch/miri.rs`), which need std.
#[cfg(any(
    feature = "default-stack",
    feature = "unwind",
    feature = "sanitizer",
    test,
    miri
))]
extern crate std;

#[cfg(all(miri, any(feature = "asm-unwind", feature = "sanitizer", windows)))]
compile_error!(
    "switchback: under Miri coroutines run on threads of their own (see the README's \
     \"Your tests under Miri\"), which supports neither the `asm-unwind` nor the \
     `sanitizer` feature, and Unix targets only"
);

/// Declares items that need stacks from the OS (the `default-stack` feature,
/// on Unix or Windows): the one place that condition is written. Each item
/// gets the `cfg` and, on docs.rs, the badge that says so; `os_stacks!(do
/// ...)` runs statements only under it.
macro_rules! os_stacks {
    (do $($body:tt)*) => {
        #[cfg(all(feature = "default-stack", any(unix, windows)))]
        {
            $($body)*
        }
    };
    ($($item:item)*) => {
        $(
            #[cfg(all(feature = "default-stack", any(unix, windows)))]
            #[cfg_attr(docsrs, doc(cfg(all(feature = "default-stack", any(unix, windows)))))]
            $item
        )*
    };
}

mod arch;
#[cfg(doctest)]
mod compile_fail_doctests;
mod coroutine;
#[cfg(all(feature = "default-stack", feature = "unwind", any(unix, windows)))]
#[cfg_attr(
    docsrs,
    doc(cfg(all(feature = "default-stack", feature = "unwind", any(unix, windows))))
)]
pub mod future;
pub mod iter;
mod on_stack;
mod os;
mod root;
mod sanitizer;
mod scoped;
pub mod stack;
mod switch;
pub mod trap;
mod unwind;
mod word;

pub use coroutine::{Coroutine, CoroutineResult, Yielder};
os_stacks! {
    pub use iter::generator;
}
pub use on_stack::on_stack;
pub use scoped::{ScopedCoroutine, ScopedCoroutineRef};
#[cfg(feature = "unwind")]
#[cfg_attr(docsrs, doc(cfg(feature = "unwind")))]
pub use unwind::ForcedUnwind;
