//! The `stack` module: `DefaultStack` sizes, errors, guard page, thread-safety, custom `Stack` checks.

use std::num::NonZeroUsize;

use switchback::stack::{
    DefaultStack, Stack, StackPointer, MIN_STACK_SIZE, RECOMMENDED_MIN_STACK_SIZE, STACK_ALIGNMENT,
};
use switchback::{Coroutine, CoroutineResult, ScopedCoroutine, Yielder};

mod common;
use common::{page_size, under_sanitizer};
#[cfg(target_os = "linux")]
use common::{under_qemu, under_valgrind};

#[test]
fn new_gives_requested_size_plus_guard_aligned() {
    let page = page_size();
    for size in [
        MIN_STACK_SIZE,
        MIN_STACK_SIZE + 1,
        8 * 1024,
        10_000,
        16 * 1024,
        RECOMMENDED_MIN_STACK_SIZE,
        64 * 1024,
        64 * 1024 + 3,
        1024 * 1024,
        8 * 1024 * 1024,
    ] {
        let stack = DefaultStack::new(size).unwrap();
        let (base, limit) = (stack.base().get(), stack.limit().get());
        assert!(base > limit);
        // The size asked for, rounded up to whole pages: no more.
        assert_eq!(
            base - limit,
            size.next_multiple_of(page),
            "size {size}: {} usable bytes",
            base - limit
        );
        assert_eq!(base % STACK_ALIGNMENT, 0);
        assert_eq!(limit % STACK_ALIGNMENT, 0);
        // Values are stable.
        assert_eq!(stack.base().get(), base);
        assert_eq!(stack.limit().get(), limit);
    }
}

#[test]
fn an_8_kib_stack_has_8_kib() {
    // wasmer's check_small_stack asks for 8 KiB and expects an 8 KiB frame
    // to overflow it.
    let stack = DefaultStack::new(8 * 1024).unwrap();
    assert_eq!(
        stack.base().get() - stack.limit().get(),
        (8 * 1024usize).next_multiple_of(page_size())
    );
}

#[test]
fn the_floor_is_one_4_kib_page() {
    assert_eq!(MIN_STACK_SIZE, 4096);
    assert_eq!(RECOMMENDED_MIN_STACK_SIZE, 32 * 1024);
}

#[test]
fn small_sizes_are_rounded_up_to_the_minimum() {
    // corosensei rounds these up too; programs pass configured sizes through.
    for size in [0, 1, 1024, MIN_STACK_SIZE - 1, MIN_STACK_SIZE] {
        let stack = DefaultStack::new(size).unwrap();
        let usable = stack.base().get() - stack.limit().get();
        assert_eq!(
            usable,
            MIN_STACK_SIZE.next_multiple_of(page_size()),
            "size {size}"
        );
        if under_sanitizer() {
            continue; // AddressSanitizer's frames need more than a page
        }
        let mut co: Coroutine<u32, (), u32, _> = Coroutine::with_stack(stack, |_, x| x + 1);
        assert_eq!(co.resume(size as u32).as_return(), Some(size as u32 + 1));
    }
}

#[test]
fn huge_size_is_an_error() {
    assert!(DefaultStack::new(usize::MAX).is_err());
    assert!(DefaultStack::new(usize::MAX - page_size()).is_err());
    assert!(DefaultStack::new(usize::MAX / 2).is_err());
    // Still usable afterwards.
    assert!(DefaultStack::new(64 * 1024).is_ok());
}

#[test]
fn default_is_at_least_one_mib() {
    let stack = DefaultStack::default();
    assert!(stack.base().get() - stack.limit().get() >= 1024 * 1024);
}

#[test]
fn min_stack_size_stack_runs_a_coroutine() {
    if under_sanitizer() {
        return; // AddressSanitizer's frames are larger
    }
    let stack = DefaultStack::new(MIN_STACK_SIZE).unwrap();
    let mut co: Coroutine<u32, u32, u32, _> =
        Coroutine::with_stack(stack, |y: &Yielder<u32, u32>, x| y.suspend(x + 1) + 1);
    assert_eq!(co.resume(1), CoroutineResult::Yield(2));
    assert_eq!(co.resume(5), CoroutineResult::Return(6));
}

/// Finds the mapping containing `addr` in /proc/self/maps: (start, end, perms).
#[cfg(target_os = "linux")]
fn mapping_of(addr: usize) -> Option<(usize, usize, String)> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        let range = parts.next()?;
        let perms = parts.next()?.to_string();
        let (start, end) = range.split_once('-')?;
        let start = usize::from_str_radix(start, 16).ok()?;
        let end = usize::from_str_radix(end, 16).ok()?;
        (start <= addr && addr < end).then_some((start, end, perms))
    })
}

#[test]
// Linux only: it reads /proc/self/maps, which Darwin does not have (the
// trap tests show the guard page faulting there instead).
#[cfg(target_os = "linux")]
#[cfg_attr(
    miri,
    ignore = "reads /proc/self/maps (no mappings, and no file system, under Miri)"
)]
fn guard_page_is_mapped_without_access() {
    if under_qemu() {
        // qemu-user's /proc/self/maps leaves out PROT_NONE pages; the trap
        // tests show that the guard pages fault there too.
        eprintln!("skipped under qemu");
        return;
    }
    let page = page_size();
    let stack = DefaultStack::new(64 * 1024).unwrap();
    let (base, limit) = (stack.base().get(), stack.limit().get());
    let guard = limit - page;
    let (start, end, perms) = mapping_of(guard).expect("the guard page must be mapped");
    if perms == "rw-p" {
        // A stack carved from a slab (Linux 6.13 and later): the guard is a
        // light guard region inside the slab's one read-write mapping.
        assert!(
            common::is_light_guard(guard),
            "guard page at {guard:#x} is rw-p and no guard"
        );
        assert!(!common::is_light_guard(limit));
    } else {
        assert_eq!(perms, "---p", "guard page at {guard:#x} is {perms}");
        assert!(start <= guard && end == limit);
    }
    // The usable part, from the limit up, is read-write.
    let (_, _, perms) = mapping_of(limit).unwrap();
    assert_eq!(perms, "rw-p");
    let (_, _, perms) = mapping_of(base - 1).unwrap();
    assert_eq!(perms, "rw-p");
}

// Windows: the guard pages and what is committed are checked in
// `tests/windows_stack.rs`.

#[test]
// Linux only: the sizes are chosen against Linux's 47-bit user address
// space; Darwin's differs (iOS gives a process tens of GiB), so the test
// would prove nothing there without sizes of its own.
#[cfg(target_os = "linux")]
#[cfg_attr(
    miri,
    ignore = "under Miri a stack is allocated and zeroed, not reserved: huge stacks exhaust memory"
)]
fn dropping_default_stack_unmaps_it() {
    if under_valgrind() || under_sanitizer() || under_qemu() {
        // Each tracks every mapping: terabytes of them take hours (and
        // qemu-user backs them with host memory until the OOM killer
        // ends it).
        eprintln!("skipped under valgrind, a sanitizer or qemu");
        return;
    }
    // 1024 stacks of 256 GiB are 256 TiB of address space, more than the
    // 128 TiB a process has (1024 of 1 GiB are more than a 32-bit process
    // has): this only works if each drop unmaps its stack.
    for i in 0..1024 {
        let size = if cfg!(target_pointer_width = "64") {
            256 << 30
        } else {
            1 << 30
        };
        let s = DefaultStack::new(size)
            .unwrap_or_else(|e| panic!("allocation {i} failed (stacks leaked?): {e}"));
        drop(s);
    }
}

#[test]
fn default_stack_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<DefaultStack>();
    // And it can actually move to another thread and run a coroutine there.
    let stack = DefaultStack::new(64 * 1024).unwrap();
    let r = std::thread::spawn(move || {
        let mut co: Coroutine<(), (), u8, _> = Coroutine::with_stack(stack, |_, ()| 3);
        co.resume(()).as_return()
    })
    .join()
    .unwrap();
    assert_eq!(r, Some(3));
}

#[test]
fn coroutine_is_sync_when_stack_is() {
    fn assert_sync<T: Sync>(_: &T) {}
    let co: Coroutine<(), (), ()> = Coroutine::new(|_, ()| ());
    assert_sync(&co);
    fn assert_sync_ty<T: Sync>() {}
    assert_sync_ty::<Coroutine<std::rc::Rc<u8>, std::cell::Cell<u8>, *const u8, DefaultStack>>();
    // Share it by reference with another thread for queries.
    std::thread::scope(|s| {
        s.spawn(|| assert!(!co.started()));
    });
}

/// A stack carved out of a DefaultStack, with configurable offsets to break
/// the contract in controlled ways.
struct Carved {
    inner: DefaultStack,
    base: usize,
    limit: usize,
}

// SAFETY: the tests below only use values that either satisfy the contract
// (a sub-range of a DefaultStack including its guard page) or are rejected by
// the library's checks before the stack is used.
unsafe impl Stack for Carved {
    fn base(&self) -> StackPointer {
        NonZeroUsize::new(self.base).unwrap()
    }
    fn limit(&self) -> StackPointer {
        NonZeroUsize::new(self.limit).unwrap()
    }
}

fn carved(base_off: usize, limit_off: usize) -> Carved {
    let inner = DefaultStack::new(64 * 1024).unwrap();
    let (base, limit) = (
        inner.base().get() - base_off,
        inner.limit().get() + limit_off,
    );
    Carved { inner, base, limit }
}

#[test]
fn custom_stack_that_satisfies_the_contract_works() {
    // Top 16 bytes lopped off: still aligned, still has the guard page.
    let stack = carved(16 * 3, 0);
    let base = stack.base;
    let inner_base = stack.inner.base().get();
    assert!(base < inner_base);
    let mut co: Coroutine<(), (), usize, _> = Coroutine::with_stack(stack, |_, ()| {
        let l = std::hint::black_box(0u8);
        &l as *const u8 as usize
    });
    let addr = co.resume(()).as_return().unwrap();
    // Under Miri the coroutine's frames are on a thread of its own.
    if !cfg!(miri) {
        assert!(addr < base);
    }
}

#[test]
#[should_panic(expected = "must be aligned to 16 bytes")]
fn misaligned_base_panics() {
    let _co: Coroutine<(), (), (), _> = Coroutine::with_stack(carved(8, 0), |_, ()| ());
}

#[test]
#[should_panic(expected = "must be aligned to 16 bytes")]
fn misaligned_limit_panics() {
    let _co: Coroutine<(), (), (), _> = Coroutine::with_stack(carved(0, 4), |_, ()| ());
}

#[test]
#[should_panic(expected = "is smaller than MIN_STACK_SIZE (4096 bytes)")]
fn too_small_custom_stack_panics() {
    let inner = DefaultStack::new(64 * 1024).unwrap();
    let base = inner.base().get();
    let stack = Carved {
        inner,
        base,
        limit: base - 2048,
    };
    let _co: Coroutine<(), (), (), _> = Coroutine::with_stack(stack, |_, ()| ());
}

#[test]
#[should_panic(expected = "is smaller than MIN_STACK_SIZE")]
fn inverted_custom_stack_panics() {
    let inner = DefaultStack::new(64 * 1024).unwrap();
    let (base, limit) = (inner.base().get(), inner.limit().get());
    let stack = Carved {
        inner,
        base: limit,
        limit: base,
    };
    let _co: Coroutine<(), (), (), _> = Coroutine::with_stack(stack, |_, ()| ());
}

#[test]
#[should_panic(expected = "must be aligned to 16 bytes")]
fn misaligned_stack_panics_in_on_stack_too() {
    switchback::on_stack(carved(8, 0), || ());
}

#[test]
#[should_panic(expected = "is smaller than MIN_STACK_SIZE")]
fn misaligned_stack_panics_in_scoped_too() {
    let inner = DefaultStack::new(64 * 1024).unwrap();
    let base = inner.base().get();
    let stack = Carved {
        inner,
        base,
        limit: base - 16,
    };
    let _co = ScopedCoroutine::with_stack(stack, |_: &Yielder<(), ()>, ()| ());
}

#[test]
fn mut_ref_stack_works_and_forwards() {
    let mut stack = DefaultStack::new(64 * 1024).unwrap();
    let (base, limit) = (stack.base(), stack.limit());
    {
        let r: &mut DefaultStack = &mut stack;
        assert_eq!(Stack::base(&r), base);
        assert_eq!(Stack::limit(&r), limit);
    }
    // An owned Coroutine over `&'static mut` is possible too.
    let leaked: &'static mut DefaultStack =
        Box::leak(Box::new(DefaultStack::new(64 * 1024).unwrap()));
    let mut co: Coroutine<u8, u8, u8, &'static mut DefaultStack> =
        Coroutine::with_stack(leaked, |y, x| y.suspend(x) + 1);
    assert_eq!(co.resume(1), CoroutineResult::Yield(1));
    assert_eq!(co.resume(2), CoroutineResult::Return(3));
    let back: &'static mut DefaultStack = co.into_stack();
    // Reuse it through the reference again, then free it.
    let mut co2: Coroutine<(), (), u8, _> = Coroutine::with_stack(back, |_, ()| 9);
    assert_eq!(co2.resume(()).as_return(), Some(9));
    let back = co2.into_stack();
    assert_eq!(back.base(), Stack::base(&back));
    // SAFETY: the pointer came from Box::leak and nothing uses it any more.
    drop(unsafe { Box::from_raw(back as *mut DefaultStack) });
    // And &mut &mut S also works.
    let mut r = &mut stack;
    let mut co3: Coroutine<(), (), u8, _> = unsafe {
        // SAFETY: the stack outlives the coroutine, which finishes below.
        Coroutine::with_stack_unchecked(&mut r, |_, ()| 4)
    };
    assert_eq!(co3.resume(()).as_return(), Some(4));
}
