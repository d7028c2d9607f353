//! High-water marks of `DefaultStack`: nothing before use, the deepest use
//! afterwards, across reuses, on stacks larger than one `mincore` call
//! looks at (on Windows, one `QueryWorkingSetEx` call). (Pooled stacks: `tests/pool.rs`, with the memory a pool gives
//! back.)
#![cfg(all(any(unix, windows), feature = "default-stack"))]

use switchback::stack::DefaultStack;

/// The marks, where the system has `mincore` (every Unix but OpenBSD) or
/// `QueryWorkingSetEx` (Windows).
#[cfg(not(target_os = "openbsd"))]
mod marks {
    use super::DefaultStack;
    use std::hint::black_box;

    use switchback::stack::Stack;
    use switchback::{on_stack, Coroutine};

    /// Touches about `N` bytes of the current stack.
    #[inline(never)]
    fn touch<const N: usize>() -> u8 {
        let buffer = black_box([1u8; N]);
        buffer[N / 2]
    }

    #[test]
    fn default_stack_mark_is_the_deepest_use() {
        let stack = DefaultStack::new(512 * 1024).unwrap();
        let size = stack.base().get() - stack.limit().get();
        assert_eq!(stack.high_water_mark().unwrap(), 0);
        let mut co: Coroutine<(), (), u8, _> =
            Coroutine::with_stack(stack, |_, ()| touch::<200_000>());
        co.resume(());
        let stack = co.into_stack();
        let deep = stack.high_water_mark().unwrap();
        assert!(deep >= 200_000 && deep < size, "{deep} of {size}");
        // A shallower coroutine afterwards leaves the mark where it was.
        let mut co: Coroutine<(), (), u8, _> =
            Coroutine::with_stack(stack, |_, ()| touch::<1000>());
        co.resume(());
        assert_eq!(co.into_stack().high_water_mark().unwrap(), deep);
    }

    #[test]
    fn mark_of_a_large_stack_used_a_little() {
        // Many more pages than one `mincore` call looks at.
        let mut stack = DefaultStack::new(64 << 20).unwrap();
        on_stack(&mut stack, touch::<10_000>);
        let mark = stack.high_water_mark().unwrap();
        // Up to a few pages of frames above the buffer; huge pages (where the
        // kernel uses them for stacks) round up to 2 MiB.
        assert!((10_000..4 << 20).contains(&mark), "{mark}");
        on_stack(&mut stack, touch::<{ 20 << 20 }>);
        let mark = stack.high_water_mark().unwrap();
        assert!((20 << 20..64 << 20).contains(&mark), "{mark}");
    }
}

/// OpenBSD has no `mincore` since 6.5: the mark is an error, not a number.
#[test]
#[cfg(target_os = "openbsd")]
fn no_mark_without_mincore() {
    let stack = DefaultStack::new(64 * 1024).unwrap();
    let error = stack.high_water_mark().unwrap_err();
    assert_eq!(error.raw_os_error(), Some(libc::ENOSYS));
}
