//! Stacks carved from slabs (Linux 6.13 and later, `MADV_GUARD_INSTALL`):
//! a million suspended coroutines in one process, the per-stack fallback
//! forced with `SWITCHBACK_SLAB_STACKS=0`, slots reused and their memory
//! discarded, many threads at once, and the error when stacks run out.
//!
//! The cases that need a process of their own (an overflow, the
//! environment variable, a memory limit) run the test binary again as a
//! child, with an environment variable naming the case.
#![cfg(all(target_os = "linux", feature = "default-stack"))]

use std::hint::black_box;
use std::os::unix::process::ExitStatusExt;

use switchback::stack::{DefaultStack, Stack, StackPool, MIN_STACK_SIZE};
use switchback::Coroutine;

mod common;
use common::{
    announce_overflow, expected_overflow_report, recurse, run_child_with, under_qemu,
    under_sanitizer, under_valgrind,
};

/// Lines of `/proc/self/maps`: the process's memory mappings.
fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .count()
}

/// Whether this process's stacks come from slabs: 200 small stacks add
/// (nearly) no mapping. False on kernels before 6.13, under emulators that
/// ignore the advice, and with `SWITCHBACK_SLAB_STACKS=0`.
fn slabs_in_use() -> bool {
    // A size no other test of this file uses, so that its slabs are this
    // check's own.
    let size = 3 * 4096 + 4096 * 7;
    let first = DefaultStack::new(size).unwrap();
    let before = mappings();
    let stacks: Vec<DefaultStack> = (0..200).map(|_| DefaultStack::new(size).unwrap()).collect();
    let added = mappings().saturating_sub(before);
    drop((first, stacks));
    added < 10
}

/// [`run_child_with`] as its exit code, signal and stderr.
fn run_child(test: &str, var: &str, env: &[(&str, &str)]) -> (Option<i32>, Option<i32>, String) {
    let (status, stderr) = run_child_with(test, var, env);
    (status.code(), status.signal(), stderr)
}

/// Whether checks that fault or map on purpose can run here.
fn can_fault() -> bool {
    if under_valgrind() || under_sanitizer() || under_qemu() {
        eprintln!("skipped under valgrind, a sanitizer or qemu");
        return false;
    }
    true
}

/// Asserts that the child aborted with the overflow report it announced.
fn assert_overflow_reported(code: Option<i32>, signal: Option<i32>, stderr: &str) {
    assert_eq!((code, signal), (None, Some(libc::SIGABRT)), "{stderr}");
    let expected = expected_overflow_report(stderr);
    assert!(
        stderr.contains(&expected),
        "expected {expected:?} in: {stderr}"
    );
}

/// What a held coroutine is resumed with: its next value, or an order to
/// overflow its stack.
const OVERFLOW: u64 = u64::MAX;
/// What a held coroutine is resumed with to make it return (dropping a
/// suspended coroutine unwinds its stack, which needs more than a page).
const FINISH: u64 = u64::MAX - 1;

/// A coroutine body that touches its stack, then yields `id`, `id + 1`, ...
/// each time it is resumed, or overflows when resumed with [`OVERFLOW`].
fn counter(id: u64) -> impl FnOnce(&switchback::Yielder<u64, u64>, u64) -> u64 {
    move |yielder, _| {
        // About 512 bytes written, as a coroutine that ran leaves.
        let touched = black_box([id as u8; 512]);
        let mut next = id + u64::from(touched[511] != id as u8);
        loop {
            match yielder.suspend(next) {
                OVERFLOW => return recurse(0),
                FINISH => return next,
                _ => next += 1,
            }
        }
    }
}

/// Suspended coroutines, and the stack bounds `(limit, base)` of the middle
/// one.
type Held<S> = (Vec<Coroutine<u64, u64, u64, S>>, (usize, usize));

/// Resumes every coroutine so that it returns, then drops them.
fn finish<S: Stack>(held: Vec<Coroutine<u64, u64, u64, S>>) {
    for mut co in held {
        assert!(co.resume(FINISH).as_return().is_some());
    }
}

/// Holds `count` suspended coroutines on stacks from `make`, checks a
/// sample, and says how many mappings they added. Returns them.
fn hold<S: Stack + 'static>(count: usize, mut make: impl FnMut() -> S) -> (Held<S>, usize) {
    let before = mappings();
    let mut held = Vec::with_capacity(count);
    let mut middle = (0, 0);
    for id in 0..count as u64 {
        let stack = make();
        if id as usize == count / 2 {
            middle = (stack.limit().get(), stack.base().get());
        }
        let mut co = Coroutine::with_stack(stack, counter(id));
        assert_eq!(co.resume(0).as_yield(), Some(id));
        held.push(co);
    }
    let added = mappings().saturating_sub(before);
    for id in (0..count).step_by(count / 1000 + 1) {
        let value = held[id].resume(0);
        assert_eq!(value.as_yield(), Some(id as u64 + 1));
    }
    ((held, middle), added)
}

/// One process holds a million suspended coroutines on minimum-size
/// stacks, first pooled, then `DefaultStack`s, with the default
/// `vm.max_map_count` (65,530, room for 32,750 stacks with a mapping each),
/// then overflows one of them: the report gives its bounds. Needs about
/// 4.2 GiB of memory and a few seconds in a release build:
/// `cargo test --release --test slab -- --ignored`.
#[cfg(feature = "unwind")] // drops suspended coroutines
#[cfg(target_pointer_width = "64")] // 8 GiB of address space
#[test]
#[ignore = "holds a million coroutines (about 4.2 GiB): cargo test --release --test slab -- --ignored"]
fn a_million_suspended_coroutines() {
    const VAR: &str = "SWITCHBACK_TEST_SLAB_MILLION";
    const COUNT: usize = 1_000_000;
    if std::env::var_os(VAR).is_some() {
        if !slabs_in_use() {
            eprintln!("no slabs here (a kernel before 6.13?): skipped");
            std::process::exit(0);
        }
        let pool = StackPool::builder()
            .stack_size(MIN_STACK_SIZE)
            .max_idle(COUNT)
            .build()
            .unwrap();
        let ((held, _), added) = hold(COUNT, || pool.get().unwrap());
        assert!(
            added < 1000,
            "a million pooled stacks added {added} mappings"
        );
        eprintln!("pool: {COUNT} held, {added} mappings added");
        finish(held);
        drop(pool);
        let ((mut held, (limit, base)), added) =
            hold(COUNT, || DefaultStack::new(MIN_STACK_SIZE).unwrap());
        assert!(added < 1000, "a million stacks added {added} mappings");
        eprintln!("DefaultStack: {COUNT} held, {added} mappings added");
        announce_overflow(limit, base);
        held[COUNT / 2].resume(OVERFLOW);
        eprintln!("the overflow did not fault");
        std::process::exit(3);
    }
    if !can_fault() {
        return;
    }
    let started = std::time::Instant::now();
    let (code, signal, stderr) = run_child("a_million_suspended_coroutines", VAR, &[]);
    if stderr.contains("no slabs here") {
        return;
    }
    eprintln!("{stderr}");
    assert!(stderr.contains("pool: 1000000 held"), "{stderr}");
    assert!(stderr.contains("DefaultStack: 1000000 held"), "{stderr}");
    assert_overflow_reported(code, signal, &stderr);
    eprintln!("took {:?}", started.elapsed());
}

/// More `Coroutine::new` coroutines (1 MiB stacks) than the kernel's limit
/// on mappings allows with a mapping each, held at once.
#[cfg(feature = "unwind")] // drops suspended coroutines
#[cfg(target_pointer_width = "64")] // 40 GiB of address space
#[test]
fn more_default_coroutines_than_mappings_allow() {
    if under_valgrind() || under_qemu() || !slabs_in_use() {
        return;
    }
    // 40,000 x 1 MiB of address space, which `MAP_NORESERVE` does not
    // count against memory; each touches one page.
    let count = 40_000u64;
    let mut held: Vec<_> = (0..count)
        .map(|id| {
            let mut co: Coroutine<u64, u64, u64> = Coroutine::new(counter(id));
            assert_eq!(co.resume(0).as_yield(), Some(id));
            co
        })
        .collect();
    for (id, co) in held.iter_mut().enumerate().step_by(997) {
        assert_eq!(co.resume(0).as_yield(), Some(id as u64 + 1));
    }
}

/// With `SWITCHBACK_SLAB_STACKS=0` every stack has a mapping of its own,
/// as before slabs: coroutines work on both kinds, and an overflow is
/// reported.
#[test]
fn the_fallback_can_be_forced() {
    const VAR: &str = "SWITCHBACK_TEST_SLAB_FALLBACK";
    if std::env::var_os(VAR).is_some() {
        // Two pages: room for a debug build's frames.
        let (held, added) = hold(200, || DefaultStack::new(2 * MIN_STACK_SIZE).unwrap());
        assert!(added >= 300, "200 stacks added only {added} mappings");
        finish(held.0);
        let pool = StackPool::new(2 * MIN_STACK_SIZE).unwrap();
        let (held, added) = hold(200, || pool.get().unwrap());
        assert!(
            added >= 300,
            "200 pooled stacks added only {added} mappings"
        );
        finish(held.0);
        let stack = DefaultStack::new(2 * MIN_STACK_SIZE).unwrap();
        let (limit, base) = (stack.limit().get(), stack.base().get());
        let mut co = Coroutine::with_stack(stack, counter(7));
        assert_eq!(co.resume(0).as_yield(), Some(7));
        announce_overflow(limit, base);
        co.resume(OVERFLOW);
        eprintln!("the overflow did not fault");
        std::process::exit(3);
    }
    if !can_fault() {
        return;
    }
    let (code, signal, stderr) = run_child(
        "the_fallback_can_be_forced",
        VAR,
        &[("SWITCHBACK_SLAB_STACKS", "0")],
    );
    assert_overflow_reported(code, signal, &stderr);
}

/// A slot comes back to its slab when its stack is dropped, and the next
/// stack of its size takes it, with the memory the last one touched given
/// back (nothing resident, reads as zero).
#[test]
fn a_freed_slot_is_reused_with_its_memory_discarded() {
    if under_valgrind() || !slabs_in_use() {
        return;
    }
    // A size of this test's own.
    let size = 17 * 4096;
    let stack = DefaultStack::new(size).unwrap();
    let mut co: Coroutine<(), (), u8, _> = Coroutine::with_stack(stack, |_, ()| {
        let buffer = black_box([0xa5u8; 24 * 1024]);
        buffer[100]
    });
    assert_eq!(co.resume(()).as_return(), Some(0xa5));
    let stack = co.into_stack();
    assert!(stack.high_water_mark().unwrap() > 24 * 1024);
    let (limit, base) = (stack.limit(), stack.base());
    drop(stack);
    let again = DefaultStack::new(size).unwrap();
    assert_eq!(
        (again.limit(), again.base()),
        (limit, base),
        "slot not reused"
    );
    assert_eq!(
        again.high_water_mark().unwrap(),
        0,
        "old pages still resident"
    );
    // (Not under AddressSanitizer, whose shadow of the last coroutine's
    // frames a read of the idle stack would trip over.)
    if !under_sanitizer() {
        let (low, high) = (again.limit().get(), again.base().get());
        // SAFETY: `[limit, base)` is the idle stack's usable memory,
        // readable.
        let zero = (low..high)
            .step_by(64)
            .all(|addr| unsafe { std::ptr::read_volatile(addr as *const u8) } == 0);
        assert!(zero, "a reused slot kept the last stack's contents");
    }
    // A guard just below it still faults: it is in the same slab, so
    // nothing but the guard separates it from the stack below.
    let mut co: Coroutine<(), (), u8, _> = Coroutine::with_stack(again, |_, ()| 1);
    assert_eq!(co.resume(()).as_return(), Some(1));
}

/// Threads make and drop stacks at once, of both kinds and a few sizes,
/// running a coroutine on each. (That empty slabs are unmapped is a unit
/// test of `stack::slab`: here other tests map and unmap at the same time.)
#[cfg(feature = "unwind")] // drops suspended coroutines
#[test]
fn many_threads_make_and_drop_stacks_at_once() {
    if under_valgrind() {
        return;
    }
    let threads = 8;
    let rounds = if under_qemu() { 200 } else { 3_000 };
    // 16 to 24 KiB: three slot sizes, with room for the frames of
    // PowerPC64's debug builds (a 12 KiB stack overflows there).
    let pool = StackPool::new(4 * 4096).unwrap();
    std::thread::scope(|scope| {
        for thread in 0..threads {
            let pool = pool.clone();
            scope.spawn(move || {
                let mut held = Vec::new();
                for round in 0..rounds {
                    let id = (thread * rounds + round) as u64;
                    let size = 4096 * (4 + round % 3);
                    let mut co = Coroutine::with_stack(DefaultStack::new(size).unwrap(), counter(id));
                    assert_eq!(co.resume(0).as_yield(), Some(id));
                    let mut pooled = Coroutine::with_stack(pool.get().unwrap(), counter(id));
                    assert_eq!(pooled.resume(0).as_yield(), Some(id));
                    held.push((id, co, pooled));
                    if round % 5 == 4 {
                        // Drop some, resume the rest.
                        held.retain_mut(|(id, co, pooled)| {
                            let keep = *id % 2 == 0;
                            if !keep {
                                assert!(co.resume(FINISH).as_return().is_some());
                                assert!(pooled.resume(FINISH).as_return().is_some());
                            } else {
                                assert!(matches!(co.resume(0), switchback::CoroutineResult::Yield(v) if v == *id + 1));
                                assert!(matches!(pooled.resume(0), switchback::CoroutineResult::Yield(v) if v == *id + 1));
                                *id += 1;
                            }
                            keep
                        });
                    }
                }
                for (_, co, pooled) in held {
                    finish(std::vec![co]);
                    finish(std::vec![pooled]);
                }
            });
        }
    });
    // Every pooled stack can be had again (the threads' caches went back
    // to the pool, or were unmapped, as the threads exited).
    let mut co = Coroutine::with_stack(pool.get().unwrap(), counter(5));
    assert_eq!(co.resume(0).as_yield(), Some(5));
}

/// In a child: maps `size`-byte stacks until that fails, then asks a pool
/// for one more; prints how many were held and both errors, and exits.
fn run_out_of_stacks(size: usize) -> ! {
    let mut held = Vec::new();
    let error = loop {
        match DefaultStack::new(size) {
            Ok(stack) => held.push(stack),
            Err(error) => break error,
        }
    };
    let pool = StackPool::new(size).unwrap();
    let pooled = pool.get().map(drop).unwrap_err();
    eprintln!("held: {}", held.len());
    eprintln!("stack: {:?}: {error}", error.kind());
    eprintln!("pool: {:?}: {pooled}", pooled.kind());
    std::process::exit(0);
}

/// The two error lines [`run_out_of_stacks`] printed, `stack:` and `pool:`,
/// each of an `OutOfMemory` error.
fn out_of_memory_lines(stderr: &str) -> [&str; 2] {
    ["stack: OutOfMemory: ", "pool: OutOfMemory: "].map(|path| {
        stderr
            .lines()
            .find(|line| line.starts_with(path))
            .unwrap_or_else(|| panic!("no {path:?} line in: {stderr}"))
    })
}

/// When stacks cannot be had (here: a limit on the address space), the
/// error says why and what to do, on both paths (slabs and a mapping each).
#[test]
fn running_out_says_why() {
    const VAR: &str = "SWITCHBACK_TEST_SLAB_OUT";
    if std::env::var_os(VAR).is_some() {
        // Room for the test's own needs, not for 64 MiB slabs nor 100,000
        // stacks.
        let limit = libc::rlimit {
            rlim_cur: 1 << 30,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: setrlimit only changes this process's limit.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_AS, &limit) }, 0);
        run_out_of_stacks(64 * 1024);
    }
    if under_valgrind() || under_sanitizer() || under_qemu() {
        return;
    }
    for env in [
        [("SWITCHBACK_SLAB_STACKS", "1")],
        [("SWITCHBACK_SLAB_STACKS", "0")],
    ] {
        let (code, _, stderr) = run_child("running_out_says_why", VAR, &env);
        assert_eq!(code, Some(0), "{stderr}");
        for line in out_of_memory_lines(&stderr) {
            assert!(
                line.contains("vm.max_map_count")
                    && line.contains("sysctl")
                    && line.contains("memory"),
                "{line}"
            );
        }
    }
}

/// With a mapping per stack (the fallback forced), the kernel's limit on
/// mappings is what runs out first: the error names `vm.max_map_count`,
/// its current value and the `sysctl` that raises it, on both paths.
#[test]
fn the_map_count_limit_is_named_when_it_is_the_cause() {
    const VAR: &str = "SWITCHBACK_TEST_MAP_LIMIT";
    if std::env::var_os(VAR).is_some() {
        run_out_of_stacks(16 * 1024);
    }
    if under_valgrind() || under_sanitizer() || under_qemu() {
        return;
    }
    // Two mappings a stack: a raised limit would take this test past what
    // it should take (a million mappings is ~2 s and 8 GiB of address space).
    let limit: usize = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(usize::MAX);
    if limit > 1 << 20 {
        eprintln!("vm.max_map_count is {limit}: not run");
        return;
    }
    let (code, _, stderr) = run_child(
        "the_map_count_limit_is_named_when_it_is_the_cause",
        VAR,
        &[("SWITCHBACK_SLAB_STACKS", "0")],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let held: usize = stderr
        .lines()
        .find_map(|line| line.strip_prefix("held: "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no held line in: {stderr}"));
    assert!(held < limit / 2 + 16, "{held} stacks held, limit {limit}");
    for line in out_of_memory_lines(&stderr) {
        assert!(
            line.contains(&format!("vm.max_map_count = {limit}"))
                && line.contains("sysctl -w vm.max_map_count="),
            "{line}"
        );
    }
}
