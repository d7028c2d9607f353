//! Every point where user code (a destructor, a panic payload, a `Stack`
//! impl, a closure) can panic while the crate is mid-change leaves it
//! sound: the panic comes out where expected, and a coroutine's stack goes
//! back to its pool exactly when nothing lives on it any more.
#![cfg(feature = "unwind")]

use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use switchback::stack::{PooledStack, Stack, StackPointer, StackPool};
use switchback::{on_stack, Coroutine, ForcedUnwind};

mod common;
use common::{counter, panic_message, Counted};

/// Panics with `message` when dropped.
struct PanicsOnDrop(&'static str);

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("{}", self.0);
    }
}

fn pool() -> StackPool {
    StackPool::new(64 * 1024).unwrap()
}

/// Runs `f`, expecting it to panic with `message`.
fn expect_panic(message: &str, f: impl FnOnce()) {
    let payload = panic::catch_unwind(AssertUnwindSafe(f)).unwrap_err();
    assert_eq!(panic_message(&*payload), message);
}

#[test]
fn returned_value_panicking_in_drop_during_forced_unwind_releases_the_stack() {
    let pool = pool();
    let mut co: Coroutine<(), (), PanicsOnDrop, _> = Coroutine::with_pool(&pool, |yielder, ()| {
        let caught = panic::catch_unwind(AssertUnwindSafe(|| yielder.suspend(())));
        assert!(ForcedUnwind::is_forced_unwind(&*caught.unwrap_err()));
        PanicsOnDrop("the returned value's destructor")
    });
    co.resume(());
    expect_panic("the returned value's destructor", move || drop(co));
    assert_eq!(
        pool.idle_count(),
        1,
        "the finished coroutine's stack goes back"
    );
}

#[test]
fn another_panic_during_forced_unwind_releases_the_stack() {
    let pool = pool();
    let mut co: Coroutine<(), (), (), _> = Coroutine::with_pool(&pool, |yielder, ()| {
        let _ = panic::catch_unwind(AssertUnwindSafe(|| yielder.suspend(())));
        panic!("a panic of its own while being unwound");
    });
    co.resume(());
    expect_panic("a panic of its own while being unwound", move || drop(co));
    assert_eq!(pool.idle_count(), 1);
}

#[test]
fn panic_payload_panicking_in_drop_after_resume_leaves_the_coroutine_done() {
    let pool = pool();
    let mut co: Coroutine<(), (), (), _> = Coroutine::with_pool(&pool, |_, ()| {
        panic::panic_any(PanicsOnDrop("the payload's destructor"));
    });
    let payload = panic::catch_unwind(AssertUnwindSafe(|| co.resume(()))).unwrap_err();
    assert!(co.done());
    expect_panic("the payload's destructor", move || drop(payload));
    drop(co);
    assert_eq!(pool.idle_count(), 1);
}

#[test]
fn capture_panicking_in_drop_of_an_unstarted_coroutine_releases_the_stack() {
    let pool = pool();
    let drops = counter();
    let (guard, counted) = (
        PanicsOnDrop("a capture's destructor"),
        Counted(drops.clone()),
    );
    let co: Coroutine<(), (), (), _> = Coroutine::with_pool(&pool, move |_, ()| {
        let _ = (&guard, &counted);
    });
    expect_panic("a capture's destructor", move || drop(co));
    assert_eq!(drops.get(), 1, "the other captures are still dropped");
    assert_eq!(pool.idle_count(), 1);
}

/// A pooled stack whose `base` panics on demand and whose `Drop` panics.
struct Misbehaving {
    inner: PooledStack,
    base_panics: Rc<Cell<bool>>,
    drop_panics: bool,
}

// SAFETY: forwards to a PooledStack, which meets the contract.
unsafe impl Stack for Misbehaving {
    fn base(&self) -> StackPointer {
        if self.base_panics.get() {
            panic!("Stack::base panics");
        }
        self.inner.base()
    }
    fn limit(&self) -> StackPointer {
        self.inner.limit()
    }
}

impl Drop for Misbehaving {
    fn drop(&mut self) {
        if self.drop_panics {
            panic!("the stack's destructor");
        }
    }
}

#[test]
fn stack_whose_base_panics_drops_the_closure_and_the_stack() {
    let pool = pool();
    let drops = counter();
    let counted = Counted(drops.clone());
    let stack = Misbehaving {
        inner: pool.get().unwrap(),
        base_panics: Rc::new(Cell::new(true)),
        drop_panics: false,
    };
    expect_panic("Stack::base panics", || {
        let _co: Coroutine<(), (), (), _> = Coroutine::with_stack(stack, move |_, ()| {
            let _ = &counted;
        });
    });
    assert_eq!(drops.get(), 1);
    assert_eq!(pool.idle_count(), 1);
}

#[test]
fn stack_whose_drop_panics_panics_out_of_the_finished_coroutine_drop() {
    let pool = pool();
    let stack = Misbehaving {
        inner: pool.get().unwrap(),
        base_panics: Rc::new(Cell::new(false)),
        drop_panics: true,
    };
    let mut co: Coroutine<(), (), u8, _> = Coroutine::with_stack(stack, |_, ()| 5);
    assert_eq!(co.resume(()).as_return(), Some(5));
    expect_panic("the stack's destructor", move || drop(co));
    // The pooled stack inside was still dropped, after the panic.
    assert_eq!(pool.idle_count(), 1);
}

#[test]
fn panic_in_on_stack_releases_its_stack_after_leaving_it() {
    let pool = pool();
    expect_panic("inside on_stack", || {
        on_stack(pool.get().unwrap(), || -> u8 { panic!("inside on_stack") });
    });
    assert_eq!(pool.idle_count(), 1);
    // The same stack runs the next call.
    assert_eq!(on_stack(pool.get().unwrap(), || 3), 3);
    assert_eq!(pool.allocated_count(), 1);
}

#[test]
fn panic_in_on_parent_stack_comes_back_onto_the_coroutine_stack() {
    let pool = pool();
    let mut co: Coroutine<(), u8, u8, _> = Coroutine::with_pool(&pool, |yielder, ()| {
        let caught = panic::catch_unwind(AssertUnwindSafe(|| {
            yielder.on_parent_stack(|| -> u8 { panic!("on the parent's stack") })
        }));
        assert_eq!(
            panic_message(&*caught.unwrap_err()),
            "on the parent's stack"
        );
        yielder.suspend(1);
        2
    });
    assert_eq!(co.resume(()).as_yield(), Some(1));
    assert_eq!(co.resume(()).as_return(), Some(2));
    drop(co);
    assert_eq!(pool.idle_count(), 1);
}

/// Windows: a `Stack` whose `update_teb_fields` panics. It is called after
/// the switch back, when the coroutine changed its TEB fields (here: set a
/// stack guarantee); the panic continues from `resume`, and the coroutine's
/// state was already recorded, so it can still be resumed to the end.
#[cfg(windows)]
#[test]
fn stack_whose_update_teb_fields_panics() {
    use switchback::stack::DefaultStack;
    use windows_sys::Win32::System::Threading::SetThreadStackGuarantee;

    struct PanickyTeb(DefaultStack);
    // SAFETY: forwards to a DefaultStack, which keeps the contract.
    unsafe impl Stack for PanickyTeb {
        fn base(&self) -> StackPointer {
            self.0.base()
        }
        fn limit(&self) -> StackPointer {
            self.0.limit()
        }
        fn update_teb_fields(&mut self, _: usize, _: usize) {
            panic!("update_teb_fields panicked");
        }
    }

    let stack = PanickyTeb(DefaultStack::new(128 * 1024).unwrap());
    let mut co: Coroutine<(), u32, u32, _> = Coroutine::with_stack(stack, |yielder, ()| {
        let mut guarantee = 32 * 1024;
        // SAFETY: sets this (the coroutine's) stack's guarantee in the TEB.
        assert_ne!(unsafe { SetThreadStackGuarantee(&mut guarantee) }, 0);
        yielder.suspend(1);
        2
    });
    let payload = panic::catch_unwind(AssertUnwindSafe(|| co.resume(()))).unwrap_err();
    assert_eq!(panic_message(&*payload), "update_teb_fields panicked");
    assert!(co.started() && !co.done());
    // The guarantee is unchanged since, so the next switch reports nothing.
    assert_eq!(co.resume(()).as_return(), Some(2));
}

/// Windows: a `Stack` whose `teb_fields` panics, when a coroutine or an
/// `on_stack` call is set up on it: the panic comes out of the constructor
/// (or `on_stack`), nothing has run on the stack, and the closure is
/// dropped once.
#[cfg(windows)]
#[test]
fn stack_whose_teb_fields_panics() {
    use switchback::stack::{DefaultStack, StackTebFields};

    struct PanickyTeb(DefaultStack);
    // SAFETY: forwards to a DefaultStack, which keeps the contract.
    unsafe impl Stack for PanickyTeb {
        fn base(&self) -> StackPointer {
            self.0.base()
        }
        fn limit(&self) -> StackPointer {
            self.0.limit()
        }
        fn teb_fields(&self) -> StackTebFields {
            panic!("teb_fields panicked");
        }
    }

    let drops = counter();
    let captured = Counted(drops.clone());
    let payload = panic::catch_unwind(AssertUnwindSafe(|| {
        let stack = PanickyTeb(DefaultStack::new(64 * 1024).unwrap());
        let _co: Coroutine<(), (), u32, _> = Coroutine::with_stack(stack, move |_, ()| {
            let _keep = &captured;
            1
        });
    }))
    .unwrap_err();
    assert_eq!(panic_message(&*payload), "teb_fields panicked");
    assert_eq!(drops.get(), 1);

    let captured = Counted(drops.clone());
    let payload = panic::catch_unwind(AssertUnwindSafe(|| {
        let stack = PanickyTeb(DefaultStack::new(64 * 1024).unwrap());
        on_stack(stack, move || drop(captured))
    }))
    .unwrap_err();
    assert_eq!(panic_message(&*payload), "teb_fields panicked");
    assert_eq!(drops.get(), 2);
}
