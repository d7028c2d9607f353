//! `StackPool`: reuse, guard pages after reuse, the idle bound, sharing
//! between threads, releasing and zeroing idle memory, and coroutines built
//! with `with_pool` returning their stacks on every kind of exit.
#![cfg(all(any(unix, windows), feature = "default-stack"))]

use std::cell::Cell;
use std::hint::black_box;
use std::io::ErrorKind;
#[cfg(feature = "unwind")]
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Arc;

use switchback::stack::{PooledStack, Stack, StackPool, StackPoolBuilder, MIN_STACK_SIZE};
use switchback::{Coroutine, CoroutineResult, ScopedCoroutine};

mod common;
#[cfg(target_os = "linux")]
use common::under_qemu;
use common::{page_size, run_child, under_sanitizer, under_valgrind};

/// The permissions of the mapping containing `addr` in /proc/self/maps.
#[cfg(target_os = "linux")]
fn perms_at(addr: usize) -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        let (start, end) = parts.next()?.split_once('-')?;
        let perms = parts.next()?.to_string();
        let start = usize::from_str_radix(start, 16).ok()?;
        let end = usize::from_str_radix(end, 16).ok()?;
        (start <= addr && addr < end).then_some(perms)
    })
}

/// Whether the page at `addr` (page-aligned) is a guard: a `PROT_NONE`
/// mapping, or (a stack carved from a slab) a light guard region inside a
/// read-write one.
#[cfg(target_os = "linux")]
fn is_guard(addr: usize) -> bool {
    match perms_at(addr).as_deref() {
        Some("---p") => true,
        Some("rw-p") => common::is_light_guard(addr),
        _ => false,
    }
}

/// How many pages of `[start, end)` are resident, by `mincore` (which
/// OpenBSD no longer has).
#[cfg(all(unix, not(target_os = "openbsd")))]
fn resident_pages(start: usize, end: usize) -> usize {
    let page = page_size();
    let pages = (end - start) / page;
    let mut vec = vec![0u8; pages];
    // SAFETY: the range is a mapped stack the caller owns; `vec` has one
    // byte per page. (`as _`: the address is a `caddr_t` on illumos.)
    let rc = unsafe { libc::mincore(start as _, end - start, vec.as_mut_ptr().cast()) };
    assert_eq!(rc, 0, "mincore: {}", std::io::Error::last_os_error());
    vec.iter().filter(|&&b| b & 1 != 0).count()
}

/// How many pages of `[start, end)` are in the working set, by
/// `QueryWorkingSetEx`.
#[cfg(windows)]
fn resident_pages(start: usize, end: usize) -> usize {
    use windows_sys::Win32::System::ProcessStatus::{
        K32QueryWorkingSetEx, PSAPI_WORKING_SET_EX_INFORMATION,
    };
    use windows_sys::Win32::System::Threading::GetCurrentProcess;
    let page = page_size();
    let mut info: Vec<PSAPI_WORKING_SET_EX_INFORMATION> = (start..end)
        .step_by(page)
        .map(|addr| {
            // SAFETY: all-zero is a valid value of this plain C structure.
            let mut entry: PSAPI_WORKING_SET_EX_INFORMATION = unsafe { std::mem::zeroed() };
            entry.VirtualAddress = addr as *mut _;
            entry
        })
        .collect();
    let len = std::mem::size_of_val(info.as_slice()) as u32;
    // SAFETY: each entry names a page to ask about; the call fills them in.
    let ok = unsafe { K32QueryWorkingSetEx(GetCurrentProcess(), info.as_mut_ptr().cast(), len) };
    assert_ne!(
        ok,
        0,
        "QueryWorkingSetEx: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: every bit pattern is a valid usize; bit 0 is Valid.
    info.iter()
        .filter(|entry| unsafe { entry.VirtualAttributes.Flags } & 1 != 0)
        .count()
}

/// The usable range of a stack: from its limit (the guard page is below).
fn usable(stack: &impl Stack) -> (usize, usize) {
    (stack.limit().get(), stack.base().get())
}

/// Fills `bytes` bytes of the coroutine's stack with `fill` and returns the
/// address of the buffer.
fn scribble<const N: usize>(fill: u8) -> usize {
    let mut buf = [fill; N];
    black_box(&mut buf);
    buf.as_ptr() as usize
}

#[test]
fn stacks_are_reused() {
    for thread_cache in [0, 8] {
        let pool = StackPool::builder()
            .stack_size(64 * 1024)
            .thread_cache(thread_cache)
            .build()
            .unwrap();
        assert_eq!(pool.allocated_count(), 0);
        let stack = pool.get().unwrap();
        let (base, limit) = (stack.base(), stack.limit());
        assert!(base.get() - limit.get() >= 64 * 1024);
        assert_eq!(pool.idle_count(), 0);
        drop(stack);
        assert_eq!(pool.idle_count(), 1);
        for _ in 0..10 {
            let stack = pool.get().unwrap();
            assert_eq!((stack.base(), stack.limit()), (base, limit));
        }
        assert_eq!(pool.allocated_count(), 1);
        // Two at once need two stacks; both come back.
        let (a, b) = (pool.get().unwrap(), pool.get().unwrap());
        assert_ne!(a.base(), b.base());
        drop((a, b));
        assert_eq!(pool.allocated_count(), 2);
        assert_eq!(pool.idle_count(), 2);
    }
}

#[test]
fn stack_size_is_rounded_to_pages() {
    let page = page_size();
    let pool = StackPool::new(MIN_STACK_SIZE + 1).unwrap();
    assert_eq!(pool.stack_size() % page, 0);
    assert!(pool.stack_size() > MIN_STACK_SIZE);
    let stack = pool.get().unwrap();
    assert_eq!(stack.base().get() - stack.limit().get(), pool.stack_size());
    assert_eq!(stack.base().get() % page, 0);
}

#[test]
fn a_pool_gives_the_size_asked_for() {
    let page = page_size();
    for size in [8 * 1024, 12 * 1024 + 5, 16 * 1024, 40 * 1024] {
        let pool = StackPool::new(size).unwrap();
        assert_eq!(pool.stack_size(), size.next_multiple_of(page), "{size}");
        let stack = pool.get().unwrap();
        assert_eq!(stack.base().get() - stack.limit().get(), pool.stack_size());
        // And the same after a coroutine used it and gave it back.
        let mut co: Coroutine<(), (), u8, _> = Coroutine::with_stack(stack, |_, ()| 1);
        co.resume(());
        drop(co);
        let stack = pool.get().unwrap();
        assert_eq!(stack.base().get() - stack.limit().get(), pool.stack_size());
    }
}

#[test]
fn small_sizes_round_up_and_huge_ones_are_rejected() {
    for size in [0, 1, 4095, MIN_STACK_SIZE - 1, MIN_STACK_SIZE] {
        let pool = StackPool::new(size).unwrap();
        assert_eq!(
            pool.stack_size(),
            MIN_STACK_SIZE.next_multiple_of(page_size())
        );
        let stack = pool.get().unwrap();
        assert_eq!(stack.base().get() - stack.limit().get(), pool.stack_size());
    }
    assert_eq!(
        StackPool::new(usize::MAX).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        StackPool::new(usize::MAX - page_size()).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    // Too big to map is an error from `get`, not a crash. (A 32-bit process
    // may well map a quarter of its address space.)
    if cfg!(target_pointer_width = "64") {
        let pool = StackPool::new(usize::MAX / 4).unwrap();
        assert!(pool.get().is_err());
        assert!(Coroutine::<(), (), (), _>::try_with_pool(&pool, |_, ()| ()).is_err());
        assert_eq!(pool.allocated_count(), 0);
    }
}

#[test]
fn with_pool_runs_and_returns_the_stack_on_drop() {
    let pool = StackPool::new(64 * 1024).unwrap();
    let mut co = Coroutine::with_pool(&pool, |yielder, x: u32| {
        let local = 0u8;
        let y = yielder.suspend(&local as *const u8 as usize);
        x + y
    });
    let addr = co.resume(1).as_yield().unwrap();
    assert_eq!(co.resume(2), CoroutineResult::Return(3));
    let stack = co.into_stack();
    let (low, high) = usable(&stack);
    // Under Miri the coroutine's frames are on a thread of its own.
    if !cfg!(miri) {
        assert!(
            low <= addr && addr < high,
            "local at {addr:#x} is not on the stack"
        );
    }
    let base = stack.base();
    drop(stack);
    assert_eq!(pool.idle_count(), 1);

    // Dropping the coroutine (not into_stack) returns the stack too.
    for i in 0..100u32 {
        let mut co: Coroutine<(), (), u32, _> = Coroutine::with_pool(&pool, move |_, ()| i);
        assert_eq!(co.resume(()), CoroutineResult::Return(i));
        assert!(co.done());
    }
    assert_eq!(pool.allocated_count(), 1);
    let mut co: Coroutine<(), (), (), _> = Coroutine::with_pool(&pool, |_, ()| ());
    co.resume(());
    assert_eq!(co.into_stack().base(), base);
}

#[test]
fn never_started_coroutine_returns_its_stack() {
    let pool = StackPool::new(64 * 1024).unwrap();
    let dropped = Rc::new(Cell::new(false));
    struct SetOnDrop(Rc<Cell<bool>>);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let guard = SetOnDrop(dropped.clone());
    let co: Coroutine<(), (), (), _> = Coroutine::with_pool(&pool, move |_, ()| drop(guard));
    drop(co);
    assert!(dropped.get());
    assert_eq!(pool.idle_count(), 1);
    assert_eq!(pool.allocated_count(), 1);
}

#[test]
#[cfg(feature = "unwind")]
fn suspended_coroutine_is_unwound_and_returns_its_stack() {
    let pool = StackPool::new(64 * 1024).unwrap();
    let dropped = Rc::new(Cell::new(0));
    struct CountOnDrop(Rc<Cell<u32>>);
    impl Drop for CountOnDrop {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    for round in 1..=3 {
        let counter = dropped.clone();
        let mut co: Coroutine<(), u32, (), _> = Coroutine::with_pool(&pool, move |yielder, ()| {
            let _guard = CountOnDrop(counter);
            loop {
                yielder.suspend(1);
            }
        });
        assert_eq!(co.resume(()), CoroutineResult::Yield(1));
        drop(co);
        assert_eq!(dropped.get(), round);
        assert_eq!(pool.idle_count(), 1);
    }
    // force_unwind, then the stack is reused.
    let mut co: Coroutine<(), u32, (), _> = Coroutine::with_pool(&pool, |yielder, ()| loop {
        yielder.suspend(2);
    });
    assert_eq!(co.resume(()), CoroutineResult::Yield(2));
    co.force_unwind();
    assert!(co.done());
    drop(co);
    assert_eq!(pool.allocated_count(), 1);
}

#[test]
#[cfg(feature = "unwind")]
fn panicking_coroutine_returns_its_stack() {
    let pool = StackPool::new(64 * 1024).unwrap();
    for _ in 0..3 {
        let mut co: Coroutine<(), (), (), _> =
            Coroutine::with_pool(&pool, |_, ()| panic!("boom in a pooled coroutine"));
        let err = catch_unwind(AssertUnwindSafe(|| co.resume(()))).unwrap_err();
        assert_eq!(
            err.downcast_ref::<&str>(),
            Some(&"boom in a pooled coroutine")
        );
        assert!(co.done());
        drop(co);
        assert_eq!(pool.idle_count(), 1);
    }
    assert_eq!(pool.allocated_count(), 1);
    // The stack still works.
    let mut co: Coroutine<u8, (), u8, _> = Coroutine::with_pool(&pool, |_, x: u8| x + 1);
    assert_eq!(co.resume(1), CoroutineResult::Return(2));
}

#[test]
// Linux only: it reads /proc/self/maps, which Darwin does not have (the
// trap tests show the guard page faulting there instead).
#[cfg(target_os = "linux")]
#[cfg_attr(
    miri,
    ignore = "reads /proc/self/maps (no mappings, and no file system, under Miri)"
)]
fn guard_page_survives_reuse() {
    if under_qemu() {
        // qemu-user's /proc/self/maps leaves out PROT_NONE pages; the trap
        // tests show that the guard pages fault there too.
        eprintln!("skipped under qemu");
        return;
    }
    let page = page_size();
    let configs = [
        StackPool::builder(),
        StackPool::builder().thread_cache(0),
        StackPool::builder().release_idle_memory(true),
        StackPool::builder().zero_on_reuse(true),
    ];
    for builder in configs {
        let pool = builder.clone().stack_size(64 * 1024).build().unwrap();
        let mut first = None;
        for _ in 0..3 {
            let mut co: Coroutine<(), (), usize, _> =
                Coroutine::with_pool(&pool, |_, ()| scribble::<{ 32 * 1024 }>(7));
            co.resume(());
            let stack = co.into_stack();
            let limit = stack.limit().get();
            assert_eq!(
                *first.get_or_insert(limit),
                limit,
                "{builder:?}: not reused"
            );
            assert!(
                is_guard(limit - page),
                "{builder:?}: guard page below {limit:#x} lost its protection"
            );
            assert_eq!(perms_at(limit).as_deref(), Some("rw-p"));
            assert_eq!(perms_at(stack.base().get() - 1).as_deref(), Some("rw-p"));
        }
    }
}

#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let buf = [depth as u8; 1024];
    black_box(&buf);
    recurse(black_box(depth + 1)) + buf[0] as u64
}

/// The guard page the child expects its overflow to hit: `[low, high)`.
static GUARD: [std::sync::atomic::AtomicUsize; 2] = [
    std::sync::atomic::AtomicUsize::new(0),
    std::sync::atomic::AtomicUsize::new(0),
];

/// Exit codes of the overflow child.
const FAULT_IN_GUARD: i32 = 42;
const FAULT_ELSEWHERE: i32 = 43;

/// The exit code for a fault at `addr`.
fn fault_exit_code(addr: usize) -> i32 {
    use std::sync::atomic::Ordering::Relaxed;
    if (GUARD[0].load(Relaxed)..GUARD[1].load(Relaxed)).contains(&addr) {
        FAULT_IN_GUARD
    } else {
        FAULT_ELSEWHERE
    }
}

#[cfg(unix)]
extern "C" fn on_fault(
    _signal: libc::c_int,
    info: *mut libc::siginfo_t,
    _context: *mut libc::c_void,
) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(fault_exit_code(addr)) }
}

/// Runs the overflow child's fault handler on its own stack.
#[cfg(unix)]
fn install_fault_handler() {
    const ALT_SIZE: usize = 64 * 1024;
    let alt = Box::leak(vec![0u8; ALT_SIZE].into_boxed_slice());
    // SAFETY: plain libc calls with valid, leaked (so never freed) memory
    // for the alternate stack and a handler of the SA_SIGINFO signature.
    unsafe {
        let stack = libc::stack_t {
            ss_sp: alt.as_mut_ptr().cast(),
            ss_flags: 0,
            ss_size: ALT_SIZE,
        };
        assert_eq!(libc::sigaltstack(&stack, std::ptr::null_mut()), 0);
        let mut action: libc::sigaction = std::mem::zeroed();
        let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) = on_fault;
        action.sa_sigaction = handler as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut action.sa_mask);
        for signal in [libc::SIGSEGV, libc::SIGBUS] {
            assert_eq!(libc::sigaction(signal, &action, std::ptr::null_mut()), 0);
        }
    }
}

/// Exits with the code for the first stack overflow or access violation:
/// a vectored exception handler, which Windows runs in the room a stack
/// leaves below its guard page.
#[cfg(windows)]
fn install_fault_handler() {
    use windows_sys::Win32::Foundation::{EXCEPTION_ACCESS_VIOLATION, EXCEPTION_STACK_OVERFLOW};
    use windows_sys::Win32::System::Diagnostics::Debug::{
        AddVectoredExceptionHandler, EXCEPTION_CONTINUE_SEARCH, EXCEPTION_POINTERS,
    };
    unsafe extern "system" fn on_exception(info: *mut EXCEPTION_POINTERS) -> i32 {
        // SAFETY: Windows passes a valid exception record.
        let record = unsafe { &*(*info).ExceptionRecord };
        if record.ExceptionCode != EXCEPTION_STACK_OVERFLOW
            && record.ExceptionCode != EXCEPTION_ACCESS_VIOLATION
        {
            return EXCEPTION_CONTINUE_SEARCH;
        }
        // Both carry the faulting address as their second parameter.
        std::process::exit(fault_exit_code(record.ExceptionInformation[1]))
    }
    // SAFETY: the handler has the signature Windows expects.
    assert!(!unsafe { AddVectoredExceptionHandler(1, Some(on_exception)) }.is_null());
}

#[test]
#[cfg_attr(
    miri,
    ignore = "no guard pages under Miri, and it runs a child process"
)]
fn overflow_on_reused_stack_hits_the_guard_page() {
    const CHILD: &str = "SWITCHBACK_POOL_OVERFLOW_CHILD";
    if std::env::var_os(CHILD).is_some() {
        use std::sync::atomic::Ordering::Relaxed;
        let pool = StackPool::builder()
            .stack_size(64 * 1024)
            .release_idle_memory(true)
            .build()
            .unwrap();
        let mut co: Coroutine<(), (), u64, _> = Coroutine::with_pool(&pool, |_, ()| 0u64);
        co.resume(());
        let first = co.into_stack();
        let limit = first.limit().get();
        drop(first);
        let stack = pool.get().unwrap();
        assert_eq!(stack.limit().get(), limit, "the stack should be reused");
        GUARD[0].store(limit - page_size(), Relaxed);
        GUARD[1].store(limit, Relaxed);
        install_fault_handler();
        let mut co: Coroutine<(), (), u64, _> = Coroutine::with_stack(stack, |_, ()| recurse(0));
        co.resume(());
        // Only reached if the overflow did not fault.
        std::process::exit(0);
    }
    if under_valgrind() {
        eprintln!("skipped under valgrind");
        return;
    }
    let (status, _) = run_child("overflow_on_reused_stack_hits_the_guard_page", CHILD);
    assert_eq!(
        status.code(),
        Some(FAULT_IN_GUARD),
        "overflowing a reused pooled stack should fault in its guard page \
         ({FAULT_ELSEWHERE}: fault elsewhere, 0: no fault), got {status:?}"
    );
}

#[test]
fn idle_bound_is_kept() {
    // Without thread caches the bound is exact.
    let pool = StackPool::builder()
        .stack_size(16 * 1024)
        .max_idle(3)
        .thread_cache(0)
        .build()
        .unwrap();
    let stacks: Vec<PooledStack> = (0..10).map(|_| pool.get().unwrap()).collect();
    assert_eq!(pool.allocated_count(), 10);
    drop(stacks);
    assert_eq!(pool.idle_count(), 3);
    assert_eq!(pool.allocated_count(), 3);

    // The thread cache holds at most max_idle on top of the shared list.
    let pool = StackPool::builder()
        .stack_size(16 * 1024)
        .max_idle(2)
        .thread_cache(8)
        .build()
        .unwrap();
    let stacks: Vec<PooledStack> = (0..10).map(|_| pool.get().unwrap()).collect();
    drop(stacks);
    assert_eq!(pool.idle_count(), 4);
    assert_eq!(pool.allocated_count(), 4);
    // Taking them all again maps nothing new.
    let stacks: Vec<PooledStack> = (0..4).map(|_| pool.get().unwrap()).collect();
    assert_eq!(pool.allocated_count(), 4);
    assert_eq!(pool.idle_count(), 0);
    drop(stacks);

    // max_idle(0) keeps nothing.
    let pool = StackPool::builder()
        .stack_size(16 * 1024)
        .max_idle(0)
        .build()
        .unwrap();
    for _ in 0..5 {
        let mut co: Coroutine<(), (), (), _> = Coroutine::with_pool(&pool, |_, ()| ());
        co.resume(());
        assert_eq!(pool.allocated_count(), 1);
        drop(co);
        assert_eq!(pool.allocated_count(), 0);
        assert_eq!(pool.idle_count(), 0);
    }
}

#[test]
fn threads_share_a_pool() {
    const THREADS: usize = 8;
    const HELD: usize = 3;
    let pool = StackPool::builder()
        .stack_size(32 * 1024)
        .max_idle(64)
        .thread_cache(2)
        .build()
        .unwrap();
    // Miri interprets every step: a few rounds show the sharing there.
    let iterations = if under_valgrind() || cfg!(miri) {
        20
    } else {
        500
    };
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                let mut total = 0u64;
                for i in 0..iterations {
                    let mut held: Vec<Coroutine<u64, u64, u64, PooledStack>> = (0..HELD)
                        .map(|_| {
                            Coroutine::with_pool(&pool, |yielder, x: u64| {
                                let y = yielder.suspend(x * 2);
                                y + 1
                            })
                        })
                        .collect();
                    for co in &mut held {
                        let x = (t * 1000 + i) as u64;
                        assert_eq!(co.resume(x), CoroutineResult::Yield(x * 2));
                        assert_eq!(co.resume(x), CoroutineResult::Return(x + 1));
                        total += 1;
                    }
                }
                total
            })
        })
        .collect();
    let total: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(total, (THREADS * HELD * iterations) as u64);
    // Each thread held at most HELD stacks at once; on exit their caches
    // went to the shared list, so every stack is idle and visible now.
    let allocated = pool.allocated_count();
    assert!(
        (HELD..=THREADS * HELD).contains(&allocated),
        "{allocated} stacks"
    );
    assert_eq!(pool.idle_count(), allocated);
    // And this thread can use them without mapping more.
    let stacks: Vec<PooledStack> = (0..allocated).map(|_| pool.get().unwrap()).collect();
    assert_eq!(pool.allocated_count(), allocated);
    drop(stacks);
}

#[test]
fn stack_dropped_on_another_thread_goes_back_to_the_pool() {
    let pool = StackPool::new(32 * 1024).unwrap();
    let stack = pool.get().unwrap();
    let base = stack.base();
    std::thread::spawn(move || {
        // Runs a coroutine on it there, then drops it into that thread's
        // cache, which moves to the shared list when the thread exits.
        let mut co: Coroutine<(), (), u8, _> = Coroutine::with_stack(stack, |_, ()| 5);
        assert_eq!(co.resume(()), CoroutineResult::Return(5));
    })
    .join()
    .unwrap();
    assert_eq!(pool.idle_count(), 1);
    assert_eq!(pool.allocated_count(), 1);
    assert_eq!(pool.get().unwrap().base(), base);
}

#[test]
#[cfg(not(target_os = "openbsd"))] // no mincore there: no high-water mark
#[cfg_attr(
    miri,
    ignore = "resident pages and high-water marks are not available under Miri"
)]
fn release_idle_memory_gives_memory_back() {
    const TOUCHED: usize = 128 * 1024;
    let page = page_size();
    for release in [false, true] {
        let pool = StackPool::builder()
            .stack_size(256 * 1024)
            .release_idle_memory(release)
            .build()
            .unwrap();
        let fresh = pool.get().unwrap();
        assert_eq!(fresh.high_water_mark().unwrap(), 0);
        drop(fresh);
        let mut co: Coroutine<(), (), usize, _> =
            Coroutine::with_pool(&pool, |_, ()| scribble::<TOUCHED>(1));
        co.resume(());
        let stack = co.into_stack();
        let (low, high) = usable(&stack);
        let before = resident_pages(low, high);
        assert!(
            before >= TOUCHED / page,
            "only {before} pages resident after use"
        );
        let mark = stack.high_water_mark().unwrap();
        assert!(mark >= TOUCHED, "high-water mark {mark}");
        drop(stack);
        let after = resident_pages(low, high);
        // The high-water mark restarts where the memory was given back.
        let again = pool.get().unwrap();
        let expected_mark = if release { 0 } else { mark };
        assert_eq!(again.high_water_mark().unwrap(), expected_mark);
        drop(again);
        if release {
            assert_eq!(after, 0, "{after} pages still resident after release");
        } else {
            assert_eq!(
                after, before,
                "pages were dropped without release_idle_memory"
            );
        }
        // The stack is reused either way, and works.
        let mut co: Coroutine<(), (), usize, _> =
            Coroutine::with_pool(&pool, |_, ()| scribble::<TOUCHED>(2));
        co.resume(());
        assert_eq!(usable(&co.into_stack()), (low, high));
        assert_eq!(pool.allocated_count(), 1);
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "scribbles on the coroutine's stack memory, which its frames do not use under Miri"
)]
fn zero_on_reuse_clears_the_stack() {
    const N: usize = 16 * 1024;
    for zero in [false, true] {
        let pool = StackPool::builder()
            .stack_size(64 * 1024)
            .zero_on_reuse(zero)
            .build()
            .unwrap();
        let mut co: Coroutine<(), (), usize, _> =
            Coroutine::with_pool(&pool, |_, ()| scribble::<N>(0xab));
        let addr = co.resume(()).as_return().unwrap();
        drop(co);
        let stack = pool.get().unwrap();
        let (low, high) = usable(&stack);
        assert!(low <= addr && addr + N <= high);
        if under_valgrind() || under_sanitizer() {
            // Memcheck and AddressSanitizer rightly call these bytes dead
            // stack memory.
            continue;
        }
        // Windows: zero_on_reuse decommits the stack but for its top page
        // and the guard page below it (the pages read as zero once
        // committed again), and reading a page that is not committed
        // faults.
        #[cfg(windows)]
        if zero {
            let page = page_size();
            assert!((low..high - 2 * page)
                .step_by(page)
                .all(|p| !common::is_committed(p)));
            assert!(common::is_committed(high - page));
            // SAFETY: the top page is committed, in a stack we own and
            // nothing runs on.
            let top = unsafe { std::slice::from_raw_parts((high - page) as *const u8, page) };
            assert!(top.iter().all(|&b| b == 0));
            continue;
        }
        // SAFETY: the range is inside a stack we own and nothing runs on.
        let bytes = unsafe { std::slice::from_raw_parts(addr as *const u8, N) };
        if zero {
            assert!(
                bytes.iter().all(|&b| b == 0),
                "stale bytes after zero_on_reuse"
            );
            // The whole usable stack reads zero.
            // SAFETY: as above.
            let all = unsafe { std::slice::from_raw_parts(low as *const u8, high - low) };
            assert!(all.iter().all(|&b| b == 0));
        } else {
            assert!(
                bytes.iter().all(|&b| b == 0xab),
                "expected the old contents"
            );
        }
    }
}

#[test]
// Linux only: the sizes are chosen against Linux's 47-bit user address
// space; Darwin's differs (iOS gives a process tens of GiB), so the test
// would prove nothing there without sizes of its own.
#[cfg(target_os = "linux")]
#[cfg_attr(
    miri,
    ignore = "under Miri a stack is allocated and zeroed, not reserved: 64 GiB stacks exhaust memory"
)]
fn dropping_the_pool_unmaps_idle_stacks() {
    if under_valgrind() || under_sanitizer() || under_qemu() {
        // Each tracks every mapping: terabytes of them take hours (and
        // qemu-user backs them with host memory until the OOM killer
        // ends it).
        eprintln!("skipped under valgrind, a sanitizer or qemu");
        return;
    }
    // 1000 rounds of 4 stacks of 64 GiB are 250 TiB of address space, more
    // than the 128 TiB a process has (of 256 MiB, 1 TiB, more than a 32-bit
    // process has): this only works if dropping the pool
    // (and dropping a stack that outlived it) unmaps them.
    for round in 0..1000 {
        let pool = StackPool::builder()
            .stack_size(if cfg!(target_pointer_width = "64") {
                64 << 30
            } else {
                256 << 20
            })
            .max_idle(4)
            .thread_cache(1)
            .build()
            .unwrap();
        let stacks: Vec<PooledStack> = (0..5)
            .map(|_| pool.get())
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("round {round}: {e} (stacks leaked?)"));
        let mut stacks = stacks.into_iter();
        let outlives = stacks.next().unwrap();
        // One stack to the thread cache, three to the shared list...
        drop(stacks);
        assert_eq!(pool.allocated_count(), 5);
        assert_eq!(pool.idle_count(), 4);
        drop(pool);
        // ...and one still in use after the pool is gone.
        let mut co: Coroutine<(), (), u8, _> = Coroutine::with_stack(outlives, |_, ()| 9);
        assert_eq!(co.resume(()), CoroutineResult::Return(9));
    }
}

#[test]
fn pool_handle_can_go_while_stacks_are_out() {
    let pool = StackPool::new(32 * 1024).unwrap();
    let clone = pool.clone();
    let mut co = Coroutine::with_pool(&pool, |yielder, ()| {
        yielder.suspend(1u8);
        2u8
    });
    assert_eq!(co.resume(()), CoroutineResult::Yield(1));
    drop(pool);
    // A clone keeps the pool open.
    assert_eq!(clone.allocated_count(), 1);
    drop(clone);
    assert_eq!(co.resume(()), CoroutineResult::Return(2));
    drop(co);
}

#[test]
fn scoped_coroutine_on_a_pooled_stack() {
    let pool = StackPool::new(32 * 1024).unwrap();
    let mut seen = Vec::new();
    let co = ScopedCoroutine::with_stack(pool.get().unwrap(), |yielder, first: u32| {
        seen.push(first);
        for i in 0..3 {
            seen.push(yielder.suspend(i));
        }
    });
    co.scope(|mut co| {
        assert_eq!(co.resume(10), CoroutineResult::Yield(0));
        assert_eq!(co.resume(11), CoroutineResult::Yield(1));
        assert_eq!(co.resume(12), CoroutineResult::Yield(2));
        assert_eq!(co.resume(13), CoroutineResult::Return(()));
    });
    assert_eq!(seen, [10, 11, 12, 13]);
    assert_eq!(pool.idle_count(), 1);
}

#[test]
fn global_pool_and_pooled() {
    let global = StackPool::global();
    assert!(global.stack_size() >= 1024 * 1024);
    for i in 0..10u32 {
        let mut co = Coroutine::pooled(move |yielder, x: u32| yielder.suspend(x + i) * 2);
        assert_eq!(co.resume(1), CoroutineResult::Yield(1 + i));
        assert_eq!(co.resume(5), CoroutineResult::Return(10));
    }
    assert!(global.idle_count() >= 1);
    let default = StackPool::default();
    assert_eq!(default.stack_size(), global.stack_size());
}

#[test]
fn types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<StackPool>();
    assert_send_sync::<PooledStack>();
    assert_send_sync::<StackPoolBuilder>();
    fn assert_sync<T: Sync>() {}
    assert_sync::<Coroutine<(), (), (), PooledStack>>();
    let pool = Arc::new(StackPool::new(32 * 1024).unwrap());
    std::thread::scope(|s| {
        // Joined explicitly: the end of a scope does not wait for threads'
        // thread-local destructors, join does.
        s.spawn(|| drop(pool.get().unwrap())).join().unwrap();
    });
    // The thread's cache went to the shared list when it exited.
    assert_eq!(pool.idle_count(), 1);
}

#[test]
fn debug_output() {
    let pool = StackPool::builder()
        .stack_size(32 * 1024)
        .max_idle(5)
        .build()
        .unwrap();
    let text = format!("{pool:?}");
    assert!(
        text.contains("StackPool") && text.contains("max_idle: 5"),
        "{text}"
    );
    let stack = pool.get().unwrap();
    assert!(format!("{stack:?}").contains("PooledStack"));
}

#[test]
fn thread_cache_bound_holds_in_any_return_order() {
    // One stack may stay in the thread's cache and one in the shared list:
    // of three returned, one is unmapped, whatever order they come back in
    // and however often a stack is taken and returned in between.
    for order in [[0, 1, 2], [2, 1, 0], [1, 0, 2]] {
        let pool = StackPool::builder()
            .stack_size(32 * 1024)
            .max_idle(1)
            .thread_cache(1)
            .build()
            .unwrap();
        let mut stacks: Vec<Option<PooledStack>> = (0..3).map(|_| pool.get().ok()).collect();
        for index in order {
            stacks[index] = None;
            drop(pool.get().unwrap());
        }
        assert_eq!(pool.allocated_count(), 2, "order {order:?}");
        assert_eq!(pool.idle_count(), 2, "order {order:?}");
        for _ in 0..5 {
            let mut co: Coroutine<(), (), u8, _> = Coroutine::with_pool(&pool, |_, ()| 1);
            assert_eq!(co.resume(()), CoroutineResult::Return(1));
        }
        assert_eq!(pool.allocated_count(), 2);
    }
}

#[test]
fn two_pools_used_in_turn_keep_their_bounds() {
    let pools: Vec<StackPool> = (0..2)
        .map(|_| {
            StackPool::builder()
                .stack_size(32 * 1024)
                .max_idle(1)
                .thread_cache(1)
                .build()
                .unwrap()
        })
        .collect();
    for round in 0..4 {
        let held: Vec<PooledStack> = (0..6)
            .map(|i| pools[(i + round) % 2].get().unwrap())
            .collect();
        drop(held);
        for pool in &pools {
            assert_eq!(pool.idle_count(), 2, "round {round}");
            assert_eq!(pool.allocated_count(), 2, "round {round}");
            drop(pool.get().unwrap());
        }
    }
}

#[test]
#[cfg(target_os = "linux")]
#[cfg_attr(
    miri,
    ignore = "reads /proc/self/maps (no mappings, and no file system, under Miri)"
)]
fn stack_returned_after_its_pool_closed_on_another_thread_is_unmapped() {
    use std::sync::mpsc;
    let pool = StackPool::new(64 * 1024).unwrap();
    let (send_pool, receive_pool) = mpsc::channel();
    let (send_closed, receive_closed) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        // Taken and returned once, so that this thread's cache keeps the
        // pool's stack and takes it back without locking.
        drop(pool.get().unwrap());
        let stack = pool.get().unwrap();
        let base = stack.base().get();
        send_pool.send(pool).unwrap();
        receive_closed.recv().unwrap();
        drop(stack);
        // Unmapped, or (a slab's slot) given back to its slab with its
        // memory discarded.
        let page = page_size();
        perms_at(base - 1).is_some() && resident_pages(base - page, base) != 0
    });
    drop(receive_pool.recv().unwrap());
    send_closed.send(()).unwrap();
    assert!(
        !thread.join().unwrap(),
        "a stack returned after its pool closed should be unmapped"
    );
}
