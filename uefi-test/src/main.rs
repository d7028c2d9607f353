//! A UEFI application that runs switchback's coroutines in firmware, the way
//! a firmware user does (`default-features = false`, stacks from boot
//! services through its own `Stack`), and prints `PASS <case>` or
//! `FAIL <case>: <why>` per case and a summary line to the console, then
//! shuts the machine down. `scripts/uefi-run.sh` boots it under QEMU with
//! OVMF (x86-64) and AAVMF (AArch64), where the console is the serial port.
#![no_std]
#![no_main]

mod efi;

use core::fmt::{self, Write};
use core::hint::black_box;
use core::num::NonZeroUsize;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use switchback::stack::{Stack, StackPointer, MIN_GUARD_SIZE};
use switchback::{on_stack, Coroutine, CoroutineResult, Yielder};

use efi::{BootServices, SystemTable, PAGE_SIZE};

/// The system table the firmware passed to `efi_main`.
static SYSTEM_TABLE: AtomicPtr<SystemTable> = AtomicPtr::new(ptr::null_mut());

/// The system table; only valid after `efi_main` stored it.
fn system_table() -> &'static SystemTable {
    let table = SYSTEM_TABLE.load(Ordering::Relaxed);
    assert!(
        !table.is_null(),
        "the system table is read before efi_main stored it"
    );
    // SAFETY: the firmware's system table lives as long as boot services,
    // which this application never exits.
    unsafe { &*table }
}

/// The boot services table.
fn boot_services() -> &'static BootServices {
    // SAFETY: as for the system table: valid until ExitBootServices, which
    // is never called.
    unsafe { &*system_table().boot_services }
}

/// The console (`ConOut`), written through `core::fmt`: UTF-8 goes out as
/// UCS-2 (characters outside the BMP as `?`), `\n` as `\r\n`.
struct Console;

impl Console {
    /// Writes the first `len` units of `buf` (which has room for a NUL).
    fn flush(buf: &mut [u16], len: usize) {
        buf[len] = 0;
        let out = system_table().con_out;
        // SAFETY: ConOut is the firmware's text output protocol and `buf`
        // is NUL-terminated; the call runs on whatever stack we are on,
        // which is the point of printing from inside coroutines.
        unsafe { ((*out).output_string)(out, buf.as_ptr()) };
    }
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut buf = [0u16; 64];
        let mut len = 0;
        for c in s.chars() {
            if len + 3 > buf.len() {
                Self::flush(&mut buf, len);
                len = 0;
            }
            if c == '\n' {
                buf[len] = u16::from(b'\r');
                len += 1;
            }
            buf[len] = u16::try_from(u32::from(c)).unwrap_or(u16::from(b'?'));
            len += 1;
        }
        Self::flush(&mut buf, len);
        Ok(())
    }
}

/// `println!` to the console.
macro_rules! println {
    ($($arg:tt)*) => {{
        let _ = writeln!(Console, $($arg)*);
    }};
}

/// The target this application was built for, for the summary line.
const TARGET: &str = if cfg!(target_arch = "x86_64") {
    "x86_64-unknown-uefi"
} else if cfg!(target_arch = "aarch64") {
    "aarch64-unknown-uefi"
} else if cfg!(target_arch = "x86") {
    "i686-unknown-uefi"
} else {
    "uefi"
};

// ---------------------------------------------------------------------------
// Stacks from boot-services pages.

/// Usable bytes of each test stack: room for the test closures and for the
/// firmware's console code, which runs on it when a coroutine prints.
const STACK_SIZE: usize = 64 * 1024;
/// Pages below the usable stack kept as its guard area.
const GUARD_PAGES: usize = MIN_GUARD_SIZE.div_ceil(PAGE_SIZE);
/// The word the guard area is filled with.
const CANARY: u64 = 0x6775_6172_645f_7377;

/// Stacks allocated and not yet freed.
static LIVE_STACKS: AtomicUsize = AtomicUsize::new(0);
/// Stacks whose guard was found overwritten when they were freed.
static BROKEN_GUARDS: AtomicUsize = AtomicUsize::new(0);
/// `FreePages` calls that failed.
static FREE_FAILURES: AtomicUsize = AtomicUsize::new(0);

/// A coroutine stack in pages from `AllocatePages` (`EfiLoaderData`):
/// `GUARD_PAGES` pages of guard area at the bottom, the usable stack above.
///
/// The guard area is *not* a guard page in the sense of
/// [`Stack`](switchback::stack::Stack)'s contract: UEFI maps all memory
/// readable and writable and gives an application no portable way to make
/// a page fault on access (the optional `EFI_MEMORY_ATTRIBUTE_PROTOCOL` of
/// UEFI 2.10 can, where the firmware has it; this application does not rely
/// on it). So an overflow is not stopped. What the guard area does:
///
/// - it is owned by the stack, so an overflow of less than its size
///   overwrites only memory of the stack itself, not a neighbour's;
/// - it is filled with a canary pattern that is checked when the stack is
///   freed ([`BROKEN_GUARDS`]) and by the tests, so an overflow is detected
///   afterwards.
///
/// A firmware user whose coroutines run code it does not control should
/// size stacks generously for that reason, or map a real guard page with
/// its own page tables.
struct PageStack {
    /// The physical (identity-mapped) address of the first page.
    start: u64,
    /// Pages allocated, guard included.
    pages: usize,
}

impl PageStack {
    /// Allocates a stack of `usable` bytes (rounded up to whole pages)
    /// above its guard area. Returns the `EFI_STATUS` of `AllocatePages`
    /// if it failed.
    fn new(usable: usize) -> Result<Self, efi::Status> {
        let pages = GUARD_PAGES + usable.div_ceil(PAGE_SIZE);
        let mut start = 0u64;
        // SAFETY: AllocatePages with AllocateAnyPages only writes `start`.
        let status = unsafe {
            (boot_services().allocate_pages)(
                efi::ALLOCATE_ANY_PAGES,
                efi::LOADER_DATA,
                pages,
                &mut start,
            )
        };
        if status != efi::SUCCESS {
            return Err(status);
        }
        LIVE_STACKS.fetch_add(1, Ordering::Relaxed);
        let stack = PageStack { start, pages };
        for word in stack.guard_words() {
            // SAFETY: the guard area is in the pages just allocated, which
            // are ours and 4 KiB-aligned.
            unsafe { ptr::write_volatile(word, CANARY) };
        }
        Ok(stack)
    }

    /// A stack of [`STACK_SIZE`] bytes; panics (a `FAIL` line) if the
    /// firmware has no memory for it.
    fn standard() -> Self {
        match Self::new(STACK_SIZE) {
            Ok(stack) => stack,
            Err(status) => panic!("AllocatePages failed with status {status:#x}"),
        }
    }

    /// The words of the guard area.
    fn guard_words(&self) -> impl Iterator<Item = *mut u64> {
        let start = self.start as usize;
        (0..GUARD_PAGES * PAGE_SIZE / 8).map(move |i| (start + 8 * i) as *mut u64)
    }

    /// Whether the guard area still holds only the canary.
    fn guard_intact(&self) -> bool {
        self.guard_words().all(|word| {
            // SAFETY: the guard area is in our pages.
            unsafe { ptr::read_volatile(word) == CANARY }
        })
    }
}

// SAFETY: the pages are ours from AllocatePages until Drop frees them;
// `base` and `limit` are page-aligned (so 16-aligned), fixed, and at least
// MIN_STACK_SIZE apart (STACK_SIZE is 64 KiB). The one part of the contract
// UEFI cannot give is a guard that faults on access: see the type's
// documentation for what the guard area is instead.
unsafe impl Stack for PageStack {
    fn base(&self) -> StackPointer {
        NonZeroUsize::new(self.start as usize + self.pages * PAGE_SIZE).unwrap()
    }

    fn limit(&self) -> StackPointer {
        NonZeroUsize::new(self.start as usize + GUARD_PAGES * PAGE_SIZE).unwrap()
    }
}

impl Drop for PageStack {
    fn drop(&mut self) {
        if !self.guard_intact() {
            BROKEN_GUARDS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the pages came from AllocatePages with this count, and no
        // coroutine runs on them any more (the coroutine owning the stack
        // has been dropped or gave it back with into_stack).
        let status = unsafe { (boot_services().free_pages)(self.start, self.pages) };
        if status != efi::SUCCESS {
            FREE_FAILURES.fetch_add(1, Ordering::Relaxed);
        }
        LIVE_STACKS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether `address` lies in the usable part of `stack`.
fn in_stack(stack: &impl Stack, address: usize) -> bool {
    (stack.limit().get()..stack.base().get()).contains(&address)
}

/// The address of a local of the calling frame.
#[inline(always)]
fn here() -> usize {
    let local = 0u8;
    black_box(&local) as *const u8 as usize
}

// ---------------------------------------------------------------------------
// The cases.

/// What a case returns: `Err` says which check failed.
type Outcome = Result<(), &'static str>;

/// Fails the case with `$why` unless `$cond` holds.
macro_rules! check {
    ($cond:expr, $why:expr) => {
        if !$cond {
            return Err($why);
        }
    };
}

/// Fails the case with `why` unless resuming `co` with `input` gives
/// `expected`.
fn resumes_to<I, Y: PartialEq, R: PartialEq>(
    co: &mut Coroutine<I, Y, R, PageStack>,
    input: I,
    expected: CoroutineResult<Y, R>,
    why: &'static str,
) -> Outcome {
    check!(co.resume(input) == expected, why);
    Ok(())
}

/// Words in and out, then values too big for a register (passed by
/// pointer) in and out, and a return type different from the yield type.
fn values() -> Outcome {
    let mut co = Coroutine::with_stack(PageStack::standard(), |y: &Yielder<u64, u64>, first| {
        let mut total = first;
        for i in 1..=4 {
            total += y.suspend(total * i);
        }
        total
    });
    check!(!co.started(), "started before the first resume");
    resumes_to(&mut co, 1, CoroutineResult::Yield(1), "first yield")?;
    resumes_to(&mut co, 2, CoroutineResult::Yield(6), "second yield")?;
    resumes_to(&mut co, 3, CoroutineResult::Yield(18), "third yield")?;
    resumes_to(&mut co, 4, CoroutineResult::Yield(40), "fourth yield")?;
    resumes_to(&mut co, 5, CoroutineResult::Return(15), "return value")?;
    check!(co.done(), "not done after returning");

    type Big = [u64; 16];
    let mut co = Coroutine::with_stack(
        PageStack::standard(),
        |y: &Yielder<Big, Big>, first: Big| {
            let mut got = first;
            for _ in 0..3 {
                let mut reversed = got;
                reversed.reverse();
                got = y.suspend(reversed);
            }
            (got.iter().sum::<u64>(), got[15] as u8)
        },
    );
    let mut input: Big = core::array::from_fn(|i| i as u64);
    for round in 0..3u64 {
        match co.resume(input) {
            CoroutineResult::Yield(out) => {
                check!(
                    out.iter().rev().eq(input.iter()),
                    "big value came back wrong"
                );
                input = core::array::from_fn(|i| (i as u64 + 1) * (round + 2));
            }
            CoroutineResult::Return(_) => return Err("returned early"),
        }
    }
    resumes_to(
        &mut co,
        input,
        CoroutineResult::Return((136 * 4, 64)),
        "big return value",
    )?;
    Ok(())
}

/// The yielder of the running coroutine of `deep_suspend`, kept where code
/// that was not handed it finds it, as a firmware core keeps the yielder of
/// the image it is running.
static KEPT_YIELDER: AtomicPtr<Yielder<u32, u32>> = AtomicPtr::new(ptr::null_mut());

/// Suspends the coroutine whose yielder is kept, from wherever it is.
fn suspend_through_kept_yielder(value: u32) -> u32 {
    let yielder = KEPT_YIELDER.load(Ordering::Relaxed);
    assert!(!yielder.is_null(), "no coroutine is running");
    // SAFETY: the pointer is set by the running coroutine to its own
    // yielder and cleared before it returns.
    unsafe { (*yielder).suspend(value) }
}

/// Recurses `depth` more frames, each with a local array, suspending at the
/// bottom and in every frame on the way back; returns the sum of what it
/// was resumed with plus a checksum of every frame's array, so that a frame
/// damaged by a switch changes the result.
#[inline(never)]
fn descend(level: u32, depth: u32) -> u32 {
    let pad = black_box([level.wrapping_mul(0x9e37_79b9); 8]);
    let below = if level == depth {
        suspend_through_kept_yielder(level)
    } else {
        descend(level + 1, depth)
    };
    let resumed_with = suspend_through_kept_yielder(level);
    let pad_sum = black_box(pad)
        .iter()
        .fold(0, |a: u32, b| a.wrapping_add(*b));
    below.wrapping_add(resumed_with).wrapping_add(pad_sum)
}

/// Suspending from 200 frames deep through a kept `Yielder` reference.
fn deep_suspend() -> Outcome {
    const DEPTH: u32 = 200;
    let mut co = Coroutine::with_stack(PageStack::standard(), |y: &Yielder<u32, u32>, _| {
        KEPT_YIELDER.store(y as *const _ as *mut _, Ordering::Relaxed);
        let result = descend(0, DEPTH);
        KEPT_YIELDER.store(ptr::null_mut(), Ordering::Relaxed);
        result
    });
    // The bottom frame yields DEPTH twice (once going down, once coming
    // back), then each frame above it its level on the way back.
    resumes_to(&mut co, 0, CoroutineResult::Yield(DEPTH), "bottom yield")?;
    let mut inputs = 0u32;
    let mut expected_level = i64::from(DEPTH);
    let result = loop {
        inputs += 1;
        match co.resume(inputs) {
            CoroutineResult::Yield(level) => {
                check!(
                    i64::from(level) == expected_level,
                    "frames resumed out of order"
                );
                expected_level -= 1;
            }
            CoroutineResult::Return(result) => break result,
        }
    };
    check!(
        expected_level == -1 && inputs == DEPTH + 2,
        "wrong number of suspends"
    );
    let pads = (0..=DEPTH).fold(0u32, |a, level| {
        a.wrapping_add(level.wrapping_mul(0x9e37_79b9).wrapping_mul(8))
    });
    let sum_of_inputs = (1..=DEPTH + 2).sum::<u32>();
    check!(
        result == sum_of_inputs.wrapping_add(pads),
        "frames changed across suspends"
    );
    Ok(())
}

/// A coroutine running `levels` more coroutines nested inside it, each on
/// its own boot-services stack allocated from inside its parent coroutine;
/// every level adds one to what passes through it.
fn nested(levels: u32) -> Coroutine<u32, u32, u32, PageStack> {
    Coroutine::with_stack(
        PageStack::standard(),
        move |y: &Yielder<u32, u32>, input| {
            if levels == 0 {
                return y.suspend(input + 1) + 1;
            }
            let mut child = nested(levels - 1);
            let mut next = input;
            loop {
                match child.resume(next) {
                    CoroutineResult::Yield(value) => next = y.suspend(value + 1),
                    CoroutineResult::Return(value) => return value + 1,
                }
            }
        },
    )
}

/// Four coroutines nested in each other, values passing through all.
fn nesting() -> Outcome {
    let mut co = nested(3);
    resumes_to(
        &mut co,
        0,
        CoroutineResult::Yield(4),
        "yield through four levels",
    )?;
    check!(
        LIVE_STACKS.load(Ordering::Relaxed) == 4,
        "a level's stack is missing"
    );
    resumes_to(
        &mut co,
        100,
        CoroutineResult::Return(104),
        "return through four levels",
    )?;
    check!(
        LIVE_STACKS.load(Ordering::Relaxed) == 1,
        "inner stacks not freed"
    );
    Ok(())
}

/// Suspends at the bottom of `depth` frames and never comes back.
#[inline(never)]
fn suspend_forever(y: &Yielder<u32, u32>, depth: u32) -> u32 {
    if depth == 0 {
        loop {
            y.suspend(7);
        }
    }
    suspend_forever(y, depth - 1) + 1
}

/// `force_reset` of a coroutine suspended deep in its stack, then the same
/// stack reused for a new coroutine.
fn force_reset_and_reuse() -> Outcome {
    let mut co = Coroutine::with_stack(PageStack::standard(), |y: &Yielder<u32, u32>, _| {
        suspend_forever(y, 30)
    });
    resumes_to(&mut co, 0, CoroutineResult::Yield(7), "first yield")?;
    resumes_to(&mut co, 0, CoroutineResult::Yield(7), "second yield")?;
    check!(co.started() && !co.done(), "not suspended");
    // SAFETY: nothing on the coroutine's stack needs dropping: its frames
    // hold only integers and the yielder reference.
    unsafe { co.force_reset() };
    check!(co.done(), "not done after force_reset");
    let stack = co.into_stack();
    let base = stack.base();
    check!(stack.guard_intact(), "guard overwritten");

    let mut co = Coroutine::with_stack(stack, |y: &Yielder<u32, u32>, x| y.suspend(x * 3) + 1);
    resumes_to(
        &mut co,
        5,
        CoroutineResult::Yield(15),
        "reused stack: yield",
    )?;
    resumes_to(
        &mut co,
        9,
        CoroutineResult::Return(10),
        "reused stack: return",
    )?;
    let stack = co.into_stack();
    check!(stack.base() == base, "a different stack came back");
    check!(
        LIVE_STACKS.load(Ordering::Relaxed) == 1,
        "the stack was not reused"
    );
    Ok(())
}

/// `on_stack` runs a closure on a boot-services stack and returns its
/// result; so does a nested `on_stack` inside a coroutine, and
/// `Yielder::on_parent_stack` runs on the parent's stack.
fn on_stack_cases() -> Outcome {
    let mut stack = PageStack::standard();
    let (address, value) = on_stack(&mut stack, || (here(), black_box(6u64) * 7));
    check!(value == 42, "on_stack result");
    check!(
        in_stack(&stack, address),
        "on_stack did not run on the stack"
    );
    check!(
        !in_stack(&stack, here()),
        "still on the stack after on_stack"
    );

    // Printing from there runs the firmware's console code on our stack.
    let printed = on_stack(&mut stack, || {
        println!("  (printed on a boot-services stack at {:#x})", here());
        true
    });
    check!(printed, "print on_stack");

    let outer = PageStack::standard();
    let (outer_base, outer_limit) = (outer.base().get(), outer.limit().get());
    let mut co = Coroutine::with_stack(outer, move |y: &Yielder<(), usize>, ()| {
        let mut inner = PageStack::standard();
        let on_inner = on_stack(&mut inner, here);
        let on_parent = y.on_parent_stack(here);
        let on_coroutine = here();
        let ok = in_stack(&inner, on_inner)
            && !(outer_limit..outer_base).contains(&on_parent)
            && (outer_limit..outer_base).contains(&on_coroutine);
        y.suspend(on_parent);
        ok
    });
    let parent_here = here();
    let on_parent = co.resume(()).as_yield().ok_or("no yield")?;
    check!(
        on_parent.abs_diff(parent_here) < STACK_SIZE,
        "on_parent_stack ran away from the parent's stack"
    );
    resumes_to(
        &mut co,
        (),
        CoroutineResult::Return(true),
        "stack addresses inside",
    )?;
    Ok(())
}

/// A frame bigger than a page inside a coroutine, suspended and resumed
/// with it live: the stack probes run on the coroutine's stack.
fn big_frame() -> Outcome {
    #[inline(never)]
    fn big(y: &Yielder<u32, u32>) -> u32 {
        let mut block = black_box([0u8; 12 * 1024]);
        for (i, byte) in block.iter_mut().enumerate() {
            *byte = i as u8;
        }
        let add = y.suspend(1);
        let block = black_box(block);
        let intact = block.iter().enumerate().all(|(i, b)| *b == i as u8);
        u32::from(intact) + add
    }
    let mut co = Coroutine::with_stack(PageStack::standard(), |y: &Yielder<u32, u32>, _| big(y));
    resumes_to(
        &mut co,
        0,
        CoroutineResult::Yield(1),
        "yield from the big frame",
    )?;
    resumes_to(
        &mut co,
        10,
        CoroutineResult::Return(11),
        "big frame changed",
    )?;
    let stack = co.into_stack();
    check!(stack.guard_intact(), "guard overwritten");
    Ok(())
}

/// Many round trips with a running total, so that any register or value
/// lost in one switch shows.
fn many_switches() -> Outcome {
    const ROUNDS: u64 = 100_000;
    let mut co = Coroutine::with_stack(PageStack::standard(), |y: &Yielder<u64, u64>, mut x| {
        let mut total = 0;
        for _ in 0..ROUNDS {
            total += x;
            x = y.suspend(total);
        }
        total
    });
    let mut expected = 0;
    for i in 1..=ROUNDS {
        expected += i;
        resumes_to(
            &mut co,
            i,
            CoroutineResult::Yield(expected),
            "wrong running total",
        )?;
    }
    resumes_to(
        &mut co,
        0,
        CoroutineResult::Return(expected),
        "wrong final total",
    )?;
    Ok(())
}

/// The canary check of the guard area detects a write into it.
fn guard_detects_overwrite() -> Outcome {
    let stack = PageStack::standard();
    check!(stack.guard_intact(), "fresh guard not intact");
    let word = (stack.limit().get() - 8) as *mut u64;
    // SAFETY: the word is the top of the guard area, in our pages.
    unsafe { ptr::write_volatile(word, 0) };
    check!(!stack.guard_intact(), "a write into the guard went unseen");
    // SAFETY: as above; restores the canary so the drop does not count it.
    unsafe { ptr::write_volatile(word, CANARY) };
    check!(stack.guard_intact(), "guard not restored");
    Ok(())
}

/// After every other case: each stack was freed, with its guard intact.
fn stacks_freed() -> Outcome {
    check!(
        LIVE_STACKS.load(Ordering::Relaxed) == 0,
        "a stack was not freed"
    );
    check!(
        FREE_FAILURES.load(Ordering::Relaxed) == 0,
        "FreePages failed"
    );
    check!(
        BROKEN_GUARDS.load(Ordering::Relaxed) == 0,
        "a guard was overwritten"
    );
    Ok(())
}

/// A case: its name and its function.
type Case = (&'static str, fn() -> Outcome);

/// Every case, in order; `stacks_freed` last.
const CASES: &[Case] = &[
    ("values", values),
    ("deep_suspend", deep_suspend),
    ("nesting", nesting),
    ("force_reset_and_reuse", force_reset_and_reuse),
    ("on_stack", on_stack_cases),
    ("big_frame", big_frame),
    ("many_switches", many_switches),
    ("guard_detects_overwrite", guard_detects_overwrite),
    ("stacks_freed", stacks_freed),
];

/// Shuts the machine down (QEMU exits).
fn shutdown() -> ! {
    // SAFETY: ResetSystem is callable during boot services and does not
    // return for a shutdown.
    unsafe {
        let runtime = &*system_table().runtime_services;
        (runtime.reset_system)(efi::RESET_SHUTDOWN, efi::SUCCESS, 0, ptr::null());
    }
    loop {
        core::hint::spin_loop();
    }
}

/// The entry point: runs every case, prints the summary, shuts down.
#[no_mangle]
pub extern "efiapi" fn efi_main(_image: efi::Handle, table: *mut SystemTable) -> efi::Status {
    SYSTEM_TABLE.store(table, Ordering::Relaxed);
    println!();
    println!("switchback UEFI test on {TARGET}: {} cases", CASES.len());
    let (mut passed, mut failed) = (0, 0);
    for (name, case) in CASES {
        match case() {
            Ok(()) => {
                passed += 1;
                println!("PASS {name}");
            }
            Err(why) => {
                failed += 1;
                println!("FAIL {name}: {why}");
            }
        }
    }
    println!("{TARGET}: {passed} passed, {failed} failed");
    shutdown()
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("FAIL panic: {info}");
    println!("{TARGET}: panicked");
    shutdown()
}
