//! Windows stacks grow like a thread's: a new `DefaultStack` or pooled stack
//! commits only its top page, with a `PAGE_GUARD` page below, and the OS
//! commits the rest as code on the stack reaches it (the TEB describes the
//! stack while the coroutine runs). What is committed is read back with
//! `VirtualQuery`; the process's commit charge with `GetProcessMemoryInfo`.
//!
//! Runs under Wine (`scripts/wine.sh test --test windows_stack`), whose
//! stack growth follows the same TEB fields.
#![cfg(all(windows, feature = "default-stack"))]

use std::hint::black_box;
use std::mem;

use switchback::stack::{remaining_stack, DefaultStack, Stack, StackPool};
use switchback::{on_stack, Coroutine};
use windows_sys::Win32::System::Memory::{
    VirtualQuery, MEMORY_BASIC_INFORMATION, MEM_COMMIT, MEM_RESERVE, PAGE_GUARD, PAGE_READWRITE,
};

mod common;
use common::{page_size, under_wine};

/// One run of pages with the same state and protection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Region {
    start: usize,
    end: usize,
    state: u32,
    protect: u32,
}

/// The regions that make up `[low, high)`, from `low` up.
fn regions(low: usize, high: usize) -> Vec<Region> {
    let mut out: Vec<Region> = Vec::new();
    let mut at = low;
    while at < high {
        // SAFETY: VirtualQuery only fills the structure it is given.
        let info = unsafe {
            let mut info: MEMORY_BASIC_INFORMATION = mem::zeroed();
            let len = mem::size_of::<MEMORY_BASIC_INFORMATION>();
            assert_eq!(VirtualQuery(at as *const _, &mut info, len), len);
            info
        };
        let end = (info.BaseAddress as usize + info.RegionSize).min(high);
        let protect = if info.State == MEM_COMMIT {
            info.Protect
        } else {
            0
        };
        // Wine may report neighbouring runs of the same kind separately
        // (after a decommit); Windows merges them.
        match out.last_mut() {
            Some(last) if (last.state, last.protect) == (info.State, protect) => last.end = end,
            _ => out.push(Region {
                start: at,
                end,
                state: info.State,
                protect,
            }),
        }
        at = end;
    }
    out
}

/// Bytes of `[low, high)` that are committed.
fn committed(low: usize, high: usize) -> usize {
    regions(low, high)
        .iter()
        .filter(|r| r.state == MEM_COMMIT)
        .map(|r| r.end - r.start)
        .sum()
}

/// Checks that the usable part of `stack` is a thread's stack: committed
/// read-write from `bottom` up to the base, a guard page below that (unless
/// it reaches the limit), and only reserved below. Returns `bottom`.
fn check_grows_like_a_thread_stack(stack: &impl Stack) -> usize {
    check_range(stack.base().get(), stack.limit().get())
}

/// [`check_grows_like_a_thread_stack`] for the stack from `limit` to `base`.
fn check_range(base: usize, limit: usize) -> usize {
    let page = page_size();
    let regions = regions(limit, base);
    let top = regions.last().unwrap();
    assert_eq!(
        (top.end, top.state, top.protect),
        (base, MEM_COMMIT, PAGE_READWRITE),
        "{regions:#x?}"
    );
    let bottom = top.start;
    if bottom > limit {
        let guard = regions[regions.len() - 2];
        assert_eq!(
            (guard.start, guard.end, guard.state, guard.protect),
            (
                bottom - page,
                bottom,
                MEM_COMMIT,
                PAGE_READWRITE | PAGE_GUARD
            ),
            "{regions:#x?}"
        );
        if bottom - page > limit {
            assert_eq!(regions.len(), 3, "{regions:#x?}");
            assert_eq!(
                (regions[0].start, regions[0].state),
                (limit, MEM_RESERVE),
                "{regions:#x?}"
            );
        }
    }
    bottom
}

/// Uses about `bytes` of stack, touching every page on the way down (as
/// any Windows code does, through `__chkstk`).
#[inline(never)]
fn use_stack(bytes: usize) -> u8 {
    const FRAME: usize = 8 * 1024;
    let mut frame = [0u8; FRAME];
    black_box(&mut frame);
    if bytes <= FRAME {
        return frame[0];
    }
    use_stack(bytes - FRAME).wrapping_add(frame[FRAME - 1])
}

#[test]
fn a_new_stack_commits_only_its_top_page_and_a_guard_page() {
    let page = page_size();
    let stack = DefaultStack::new(1024 * 1024).unwrap();
    let (base, limit) = (stack.base().get(), stack.limit().get());
    assert_eq!(check_grows_like_a_thread_stack(&stack), base - page);
    assert_eq!(committed(limit, base), 2 * page);
    // The TEB fields say so too: the commit limit is the top page.
    let fields = stack.teb_fields();
    assert_eq!(fields.StackBase, base);
    assert_eq!(fields.StackLimit, base - page);

    // Below the limit, as at the bottom of a thread's stack: the last guard
    // page, room for overflow handlers, the reservation's bottom page, all
    // reserved only (the OS commits the guard page when the moving one
    // reaches the limit, and the room when the overflow is raised).
    let bottom_page = fields.DeallocationStack;
    let below = regions(bottom_page, limit);
    assert_eq!(
        below
            .iter()
            .map(|r| (r.end - r.start, r.state, r.protect))
            .collect::<Vec<_>>(),
        [(6 * page, MEM_RESERVE, 0)],
        "{below:#x?}"
    );
    // The guarantee covers the room and the last guard page, so that
    // running into that page raises the overflow at once.
    assert_eq!(fields.GuaranteedStackBytes, limit - page - bottom_page);
}

#[test]
fn a_one_page_stack_is_committed_with_its_last_guard_page_armed() {
    // Nothing to grow: the usable page is committed, and the page below it
    // is the guard page (touching it is the overflow, which tests/trap.rs
    // recovers from on such small stacks).
    let page = page_size();
    for stack in [
        DefaultStack::new(4096).unwrap(),
        DefaultStack::new(1).unwrap(),
    ] {
        let (base, limit) = (stack.base().get(), stack.limit().get());
        assert_eq!(base - limit, page);
        assert_eq!(check_grows_like_a_thread_stack(&stack), limit);
        let fields = stack.teb_fields();
        assert_eq!(fields.StackLimit, limit);
        let below = regions(fields.DeallocationStack, limit);
        assert_eq!(
            below
                .iter()
                .map(|r| (r.end - r.start, r.state, r.protect))
                .collect::<Vec<_>>(),
            [
                (5 * page, MEM_RESERVE, 0),
                (page, MEM_COMMIT, PAGE_READWRITE | PAGE_GUARD),
            ],
            "{below:#x?}"
        );
        // It runs a coroutine, which runs another on a one-page stack.
        let mut co: Coroutine<u32, u32, u32, _> = Coroutine::with_stack(stack, |y, x| {
            let inner_stack = DefaultStack::new(4096).unwrap();
            let mut inner: Coroutine<u32, u32, u32, _> =
                Coroutine::with_stack(inner_stack, |y, x| y.suspend(x + 1) + 1);
            let a = inner.resume(x).as_yield().unwrap();
            let b = y.suspend(a);
            inner.resume(b).as_return().unwrap()
        });
        if cfg!(debug_assertions) {
            // Debug frames of the resume path take more than a page: the
            // stacks are made and checked, not run.
            continue;
        }
        assert_eq!(co.resume(1).as_yield(), Some(2));
        assert_eq!(co.resume(10).as_return(), Some(11));
    }
}

#[test]
fn a_big_stack_touched_little_stays_small() {
    // An 8 MiB stack whose coroutine uses a few KiB commits a few pages.
    let page = page_size();
    let stack = DefaultStack::new(8 * 1024 * 1024).unwrap();
    let (base, limit) = (stack.base().get(), stack.limit().get());
    let mut co: Coroutine<u32, u32, u32, _> = Coroutine::with_stack(stack, |y, mut x| {
        for _ in 0..100 {
            x = y.suspend(x + 1);
        }
        x
    });
    for i in 0..100 {
        assert_eq!(co.resume(i).as_yield(), Some(i + 1));
    }
    assert_eq!(co.resume(7).as_return(), Some(7));
    let stack = co.into_stack();
    let bottom = check_grows_like_a_thread_stack(&stack);
    let used = committed(limit, base);
    assert!(
        used <= 32 * page,
        "{used} bytes committed, from {bottom:#x}"
    );
    assert_eq!(used, base - bottom + page);
    eprintln!("an 8 MiB stack after 100 round trips: {used} bytes committed");
}

/// Calls `f` `levels` frames deeper than here, each frame a few dozen bytes.
#[inline(never)]
fn at_depth(levels: usize, f: &mut dyn FnMut()) {
    let mut frame = [0u8; 40];
    black_box(&mut frame);
    if levels == 0 {
        f();
    } else {
        at_depth(levels - 1, f);
    }
    black_box(&frame);
}

#[test]
fn parents_that_grow_their_stacks_in_the_resume_path_keep_running() {
    // Two coroutines on growing stacks take turns resuming a third, each
    // time a frame deeper than the last, so that their stacks grow (their
    // guard pages are touched) by the frames of the resume path itself, at
    // every offset from the switch: the TEB must describe the running
    // stack until the instant the stack pointer moves (with a TEB written
    // a few frames before the switch, this crashed in debug builds).
    let worker: std::rc::Rc<std::cell::RefCell<Coroutine<u32, u32, u32>>> =
        std::rc::Rc::new(std::cell::RefCell::new(Coroutine::new(|y, mut x| {
            let mut sum = 0u32;
            while x != 0 {
                sum = sum.wrapping_add(x);
                x = y.suspend(sum);
            }
            sum
        })));
    let parent = |w: std::rc::Rc<std::cell::RefCell<Coroutine<u32, u32, u32>>>| {
        let stack = DefaultStack::new(1024 * 1024).unwrap();
        let bounds = (stack.base().get(), stack.limit().get());
        let co = Coroutine::<usize, u32, (), _>::with_stack(stack, move |y, mut levels| loop {
            let mut v = 0;
            at_depth(levels, &mut || {
                v = w.borrow_mut().resume(1).as_yield().unwrap();
            });
            levels = y.suspend(v);
        });
        (co, bounds)
    };
    let (mut a, a_bounds) = parent(worker.clone());
    let (mut b, b_bounds) = parent(worker.clone());
    let mut expected = 0u32;
    for levels in 0..600 {
        expected += 1;
        assert_eq!(a.resume(levels).as_yield(), Some(expected));
        expected += 1;
        assert_eq!(b.resume(levels).as_yield(), Some(expected));
    }
    // Their stacks grew, page by page, as they went deeper.
    for (base, limit) in [a_bounds, b_bounds] {
        let bottom = check_range(base, limit);
        assert!(base - bottom > 16 * 1024, "grew only to {bottom:#x}");
    }
    assert_eq!(worker.borrow_mut().resume(0).as_return(), Some(expected));
    #[cfg(not(feature = "unwind"))]
    {
        // Without unwind, dropping suspended coroutines aborts.
        mem::forget(a);
        mem::forget(b);
    }
}

#[test]
fn touching_deeper_pages_grows_the_committed_part() {
    let page = page_size();
    let stack = DefaultStack::new(1024 * 1024).unwrap();
    let (base, limit) = (stack.base().get(), stack.limit().get());
    let mut co: Coroutine<usize, (), u8, _> = Coroutine::with_stack(stack, |y, bytes| {
        let a = use_stack(bytes);
        y.suspend(());
        a
    });
    assert!(co.resume(256 * 1024).as_yield().is_some());
    // The OS committed what the coroutine touched and moved the guard page
    // below it.
    let bottom = check_range(base, limit);
    assert!(
        base - bottom >= 256 * 1024 && base - bottom < 512 * 1024,
        "committed down to {bottom:#x}, base {base:#x}"
    );
    assert!(bottom > limit);
    assert_eq!(co.resume(0).as_return(), Some(0));
    let stack = co.into_stack();
    // It lowered the TEB's limit as it did, which the stack was told.
    assert_eq!(stack.teb_fields().StackLimit, bottom);
    // A new coroutine on the same stack starts from there and goes deeper.
    let mut co: Coroutine<usize, (), u8, _> =
        Coroutine::with_stack(stack, |_, bytes| use_stack(bytes));
    co.resume(600 * 1024);
    let stack = co.into_stack();
    let deeper = check_grows_like_a_thread_stack(&stack);
    assert!(base - deeper >= 600 * 1024, "{deeper:#x}");
    assert!(deeper < bottom - page);
    assert_eq!(stack.teb_fields().StackLimit, deeper);
}

#[test]
fn recursion_to_near_the_stack_size_works() {
    /// Recurses until less than 48 KiB of stack are left; returns the
    /// depth.
    #[inline(never)]
    fn recurse_until_nearly_full(depth: usize) -> usize {
        let mut frame = [0u8; 1024];
        black_box(&mut frame);
        if remaining_stack().unwrap() < 48 * 1024 {
            return depth;
        }
        black_box(recurse_until_nearly_full(depth + 1))
    }
    for size in [64 * 1024, 1024 * 1024, 8 * 1024 * 1024] {
        let stack = DefaultStack::new(size).unwrap();
        let (base, limit) = (stack.base().get(), stack.limit().get());
        let mut co: Coroutine<(), (), usize, _> =
            Coroutine::with_stack(stack, |_, ()| recurse_until_nearly_full(0));
        let depth = co.resume(()).as_return().unwrap();
        assert!(
            depth > (size - 64 * 1024) / 4096,
            "size {size}: depth {depth}"
        );
        let stack = co.into_stack();
        let bottom = check_grows_like_a_thread_stack(&stack);
        assert!(bottom - limit <= 64 * 1024, "size {size}: {bottom:#x}");
        assert!(base - bottom >= size - 64 * 1024);
    }
}

#[test]
fn a_big_closure_is_committed_before_it_is_written() {
    // 64 KiB of closure, written at the top of the stack from the parent's
    // stack, where touching the guard page would only raise an exception.
    let big = [7u8; 64 * 1024];
    let stack = DefaultStack::new(1024 * 1024).unwrap();
    let (base, limit) = (stack.base().get(), stack.limit().get());
    let mut co: Coroutine<(), (), u32, _> = Coroutine::with_stack(stack, move |_, ()| {
        big.iter().map(|&b| b as u32).sum::<u32>()
    });
    let bottom = check_range(base, limit);
    assert!(base - bottom >= 64 * 1024, "{bottom:#x}");
    assert_eq!(co.resume(()).as_return(), Some(7 * 64 * 1024));
}

#[test]
fn on_stack_grows_the_stack_too() {
    let stack = DefaultStack::new(1024 * 1024).unwrap();
    let base = stack.base().get();
    let mut stack = stack;
    assert_eq!(on_stack(&mut stack, || use_stack(300 * 1024)), 0);
    let bottom = check_grows_like_a_thread_stack(&stack);
    assert!(base - bottom >= 300 * 1024, "{bottom:#x}");
    // The stack did not hear of it (on_stack does not report back), and
    // still works: a coroutine goes deeper still.
    let mut co: Coroutine<(), (), u8, _> =
        Coroutine::with_stack(stack, |_, ()| use_stack(700 * 1024));
    assert_eq!(co.resume(()).as_return(), Some(0));
    let stack = co.into_stack();
    let bottom = check_grows_like_a_thread_stack(&stack);
    assert!(base - bottom >= 700 * 1024, "{bottom:#x}");
}

#[test]
fn pooled_stacks_grow_and_give_back_their_memory_when_asked() {
    let page = page_size();
    // By default a pool keeps what its stacks committed, for the next
    // coroutine.
    let pool = StackPool::builder()
        .stack_size(1024 * 1024)
        .build()
        .unwrap();
    let mut co: Coroutine<(), (), u8, _> =
        Coroutine::with_pool(&pool, |_, ()| use_stack(200 * 1024));
    co.resume(());
    drop(co);
    let stack = pool.get().unwrap();
    let base = stack.base().get();
    assert!(base - check_grows_like_a_thread_stack(&stack) >= 200 * 1024);
    drop(stack);

    // With release_idle_memory, a returned stack is back to its top page.
    let pool = StackPool::builder()
        .stack_size(1024 * 1024)
        .release_idle_memory(true)
        .build()
        .unwrap();
    let mut co: Coroutine<(), (), u8, _> =
        Coroutine::with_pool(&pool, |_, ()| use_stack(200 * 1024));
    co.resume(());
    drop(co);
    let stack = pool.get().unwrap();
    let (base, limit) = (stack.base().get(), stack.limit().get());
    assert_eq!(check_grows_like_a_thread_stack(&stack), base - page);
    assert_eq!(committed(limit, base), 2 * page);
    assert_eq!(stack.teb_fields().StackLimit, base - page);
    // And it grows again.
    let mut co: Coroutine<(), (), u8, _> =
        Coroutine::with_stack(stack, |_, ()| use_stack(300 * 1024));
    co.resume(());
    let stack = co.into_stack();
    assert!(base - check_grows_like_a_thread_stack(&stack) >= 300 * 1024);
}

/// The process's commit charge (`PrivateUsage`).
fn commit_charge() -> usize {
    use windows_sys::Win32::System::ProcessStatus::{
        K32GetProcessMemoryInfo, PROCESS_MEMORY_COUNTERS, PROCESS_MEMORY_COUNTERS_EX,
    };
    use windows_sys::Win32::System::Threading::GetCurrentProcess;
    // SAFETY: the call fills the structure it is given, whose size it is
    // told.
    unsafe {
        let mut counters: PROCESS_MEMORY_COUNTERS_EX = mem::zeroed();
        let ok = K32GetProcessMemoryInfo(
            GetCurrentProcess(),
            (&mut counters as *mut PROCESS_MEMORY_COUNTERS_EX).cast::<PROCESS_MEMORY_COUNTERS>(),
            mem::size_of::<PROCESS_MEMORY_COUNTERS_EX>() as u32,
        );
        assert_ne!(ok, 0);
        counters.PrivateUsage
    }
}

#[test]
fn many_stacks_do_not_commit_their_size() {
    // 10 000 stacks of 1 MiB would commit 10 GiB if their usable part were
    // committed up front. 32-bit processes have 2 GiB of address space:
    // 1000 there.
    let count = if cfg!(target_pointer_width = "64") {
        10_000
    } else {
        1_000
    };
    let size = 1024 * 1024;
    let before = commit_charge();
    let stacks: Vec<DefaultStack> = (0..count)
        .map(|i| DefaultStack::new(size).unwrap_or_else(|e| panic!("stack {i} of {count}: {e}")))
        .collect();
    let after = commit_charge();
    // Each commits its top page and a guard page.
    let per_stack = 2 * page_size();
    let total: usize = stacks
        .iter()
        .map(|s| committed(s.limit().get() - 6 * page_size(), s.base().get()))
        .sum();
    assert_eq!(total, count * per_stack);
    eprintln!(
        "{count} stacks of {size} bytes: {total} bytes committed (VirtualQuery), commit \
         charge {before} -> {after}"
    );
    // Wine reports resident memory as the commit charge, which says nothing
    // about commits; on Windows it is the commit charge itself.
    if !under_wine() {
        assert!(
            after.saturating_sub(before) < count * 4 * per_stack,
            "commit charge grew by {} bytes",
            after - before
        );
    }
    // They all work.
    for stack in stacks.into_iter().step_by(count / 10) {
        let mut co: Coroutine<(), (), u8, _> =
            Coroutine::with_stack(stack, |_, ()| use_stack(100 * 1024));
        assert_eq!(co.resume(()).as_return(), Some(0));
    }
}
