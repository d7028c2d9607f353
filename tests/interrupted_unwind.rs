//! A forced unwind interrupted by a panic: the coroutine catches the unwind
//! (or a destructor on its stack suspends while unwinding) and yields a
//! value whose destructor panics. Its stack still holds live frames, so it
//! must never be freed or reused: a dropped `Coroutine` is leaked, a
//! `ScopedCoroutine` aborts, an explicit `force_unwind` leaves it suspended.
#![cfg(feature = "unwind")]

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use switchback::stack::{DefaultStack, Stack, StackPool};
use switchback::{Coroutine, ForcedUnwind, ScopedCoroutine, Yielder};

mod common;
use common::{panic_message, run_child, under_valgrind};

/// A yielded value whose destructor panics while `armed` is set.
struct PanicsOnDrop(Rc<Cell<bool>>);

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        if self.0.get() {
            panic!("the yielded value's destructor panics");
        }
    }
}

/// Where the coroutine keeps a local, so that the test can check that the
/// memory is still there after the failed drop.
type LocalAddress = Rc<Cell<usize>>;

/// A coroutine that catches every forced unwind and suspends again with a
/// value whose destructor panics (while armed), after recording the
/// address of a local on its stack.
fn catch_and_resuspend<S: Stack + 'static>(
    stack: S,
    armed: Rc<Cell<bool>>,
    local: LocalAddress,
) -> Coroutine<(), PanicsOnDrop, (), S> {
    Coroutine::with_stack(stack, move |yielder, ()| {
        let mut on_stack = [0xA5u8; 64];
        local.set(on_stack.as_mut_ptr() as usize);
        loop {
            let value = PanicsOnDrop(armed.clone());
            match panic::catch_unwind(AssertUnwindSafe(|| yielder.suspend(value))) {
                Ok(()) => return,
                Err(payload) => assert!(ForcedUnwind::is_forced_unwind(&*payload)),
            }
            std::hint::black_box(&mut on_stack);
        }
    })
}

/// A coroutine whose only frame holds a guard that suspends from its
/// destructor, with a value whose destructor panics, while it is unwound.
fn suspend_in_destructor<S: Stack + 'static>(
    stack: S,
    armed: Rc<Cell<bool>>,
    local: LocalAddress,
) -> Coroutine<(), PanicsOnDrop, (), S> {
    struct SuspendsOnDrop<'a> {
        yielder: &'a Yielder<(), PanicsOnDrop>,
        armed: Rc<Cell<bool>>,
    }
    impl Drop for SuspendsOnDrop<'_> {
        fn drop(&mut self) {
            self.yielder.suspend(PanicsOnDrop(self.armed.clone()));
        }
    }
    Coroutine::with_stack(stack, move |yielder, ()| {
        // Mutable, and its address taken as such: the test writes to it
        // (Miri found the write through a shared borrow of an immutable
        // local).
        let mut on_stack = [0xA5u8; 64];
        local.set(on_stack.as_mut_ptr() as usize);
        let _guard = SuspendsOnDrop { yielder, armed };
        yielder.suspend(PanicsOnDrop(Rc::new(Cell::new(false))));
        std::hint::black_box(&on_stack);
    })
}

/// Drops `co`, expecting the yielded value's panic to come out of the drop.
fn drop_expecting_the_panic<C>(co: C) {
    let payload = panic::catch_unwind(AssertUnwindSafe(move || drop(co))).unwrap_err();
    assert_eq!(
        panic_message(&*payload),
        "the yielded value's destructor panics"
    );
}

/// Reads and writes the local the coroutine recorded: if its stack had been
/// unmapped this faults, failing the test.
fn local_is_still_there(local: &LocalAddress) {
    let addr = local.get() as *mut u8;
    // SAFETY: the coroutine's stack was leaked, not freed, so the local's
    // memory stays mapped; its frame never runs again.
    unsafe {
        assert_eq!(addr.read_volatile(), 0xA5);
        addr.write_volatile(0x5A);
    }
}

#[test]
fn dropped_coroutine_on_a_default_stack_is_leaked_not_unmapped() {
    for make in [catch_and_resuspend::<DefaultStack>, suspend_in_destructor] {
        let armed = Rc::new(Cell::new(false));
        let local = LocalAddress::default();
        let mut co = make(
            DefaultStack::new(64 * 1024).unwrap(),
            armed.clone(),
            local.clone(),
        );
        assert!(co.resume(()).as_yield().is_some());
        armed.set(true);
        drop_expecting_the_panic(co);
        armed.set(false);
        local_is_still_there(&local);
    }
}

#[test]
fn dropped_coroutine_on_a_pooled_stack_never_goes_back_to_the_pool() {
    for make in [
        catch_and_resuspend::<switchback::stack::PooledStack>,
        suspend_in_destructor,
    ] {
        let pool = StackPool::new(64 * 1024).unwrap();
        let armed = Rc::new(Cell::new(false));
        let local = LocalAddress::default();
        let stack = pool.get().unwrap();
        let leaked_base = stack.base();
        let mut co = make(stack, armed.clone(), local.clone());
        assert!(co.resume(()).as_yield().is_some());
        armed.set(true);
        drop_expecting_the_panic(co);
        armed.set(false);
        assert_eq!(
            pool.idle_count(),
            0,
            "a stack with live frames went back to the pool"
        );
        assert_eq!(pool.allocated_count(), 1);
        // The next coroutine gets a new stack, not the one with live frames.
        let next = pool.get().unwrap();
        assert_ne!(next.base(), leaked_base);
        assert_eq!(pool.allocated_count(), 2);
        local_is_still_there(&local);
    }
}

#[test]
fn explicit_force_unwind_leaves_the_coroutine_suspended_and_resumable() {
    let armed = Rc::new(Cell::new(false));
    let local = LocalAddress::default();
    let mut co = catch_and_resuspend(
        DefaultStack::new(64 * 1024).unwrap(),
        armed.clone(),
        local.clone(),
    );
    // The first yielded value is dropped here without panicking; the next
    // one, yielded when the coroutine catches the unwind, panics.
    assert!(co.resume(()).as_yield().is_some());
    armed.set(true);
    let payload = panic::catch_unwind(AssertUnwindSafe(|| co.force_unwind())).unwrap_err();
    assert_eq!(
        panic_message(&*payload),
        "the yielded value's destructor panics"
    );
    assert!(co.started() && !co.done());
    local_is_still_there(&local);
    // Resumable: resuming returns from its `suspend`, and it returns.
    armed.set(false);
    assert!(co.resume(()).as_return().is_some());
    assert!(co.done());
    let _stack = co.into_stack();
}

const SCOPED_CHILD: &str = "SWITCHBACK_INTERRUPTED_SCOPED_CHILD";

#[test]
#[cfg_attr(miri, ignore = "runs a child process, which Miri cannot")]
fn scoped_coroutine_aborts_with_a_message() {
    if std::env::var_os(SCOPED_CHILD).is_some() {
        let armed = Rc::new(Cell::new(false));
        let borrowed = String::from("borrowed by the coroutine's frames");
        let coroutine = ScopedCoroutine::with_stack(
            DefaultStack::new(64 * 1024).unwrap(),
            |yielder: &Yielder<(), PanicsOnDrop>, ()| loop {
                let value = PanicsOnDrop(armed.clone());
                let _ = panic::catch_unwind(AssertUnwindSafe(|| yielder.suspend(value)));
                assert!(!borrowed.is_empty());
            },
        );
        let _ = panic::catch_unwind(AssertUnwindSafe(|| {
            coroutine.scope(|mut co| {
                assert!(co.resume(()).as_yield().is_some());
                armed.set(true);
            })
        }));
        // Only reached if the scope let the borrows end.
        std::process::exit(0);
    }
    if under_valgrind() {
        eprintln!("skipped under valgrind");
        return;
    }
    let (status, stderr) = run_child("scoped_coroutine_aborts_with_a_message", SCOPED_CHILD);
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGABRT), "{status:?}\n{stderr}");
    }
    // Windows aborts with __fastfail: no exit code is promised, only failure
    // (and the child's exit(0) above must not have been reached).
    assert!(!status.success(), "{status:?}\n{stderr}");
    assert!(
        stderr.contains("a panic interrupted the unwinding of a ScopedCoroutine"),
        "{stderr}"
    );
}
