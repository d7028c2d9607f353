//! How panics cross the root of a coroutine or `on_stack`, per feature set.
//!
//! - `unwind` without `asm-unwind`: panics are caught at the root, carried to
//!   the parent as a value and resumed there.
//! - `asm-unwind`: panics unwind straight through the switch.
//! - neither: a panic that reaches the root aborts the process with a message.

#[cfg(all(feature = "unwind", not(feature = "asm-unwind")))]
use std::boxed::Box;

/// A panic caught at the root of a coroutine, to be resumed in the parent.
#[cfg(all(feature = "unwind", not(feature = "asm-unwind")))]
pub type CaughtPanic = Box<dyn core::any::Any + Send>;
/// Nothing is caught at the root in this configuration.
#[cfg(not(all(feature = "unwind", not(feature = "asm-unwind"))))]
pub type CaughtPanic = core::convert::Infallible;

/// Runs `f` at the root of a stack, so that no panic leaves it except as
/// this configuration allows.
#[inline(always)]
pub fn catch_unwind_at_root<R>(f: impl FnOnce() -> R) -> Result<R, CaughtPanic> {
    #[cfg(all(feature = "unwind", not(feature = "asm-unwind")))]
    {
        std::panic::catch_unwind(core::panic::AssertUnwindSafe(f))
    }
    #[cfg(feature = "asm-unwind")]
    {
        Ok(f())
    }
    #[cfg(not(feature = "unwind"))]
    {
        let guard = AbortOnUnwind;
        let result = f();
        core::mem::forget(guard);
        Ok(result)
    }
}

/// Continues a panic caught by `catch_unwind_at_root` in the parent.
#[inline]
pub fn resume_caught(panic: CaughtPanic) -> ! {
    #[cfg(all(feature = "unwind", not(feature = "asm-unwind")))]
    {
        std::panic::resume_unwind(panic)
    }
    #[cfg(not(all(feature = "unwind", not(feature = "asm-unwind"))))]
    {
        match panic {}
    }
}

/// Aborts if dropped, which only happens while a panic unwinds past it.
#[cfg(not(feature = "unwind"))]
struct AbortOnUnwind;

#[cfg(not(feature = "unwind"))]
impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        abort_with_message(
            "switchback: a panic reached the root of a coroutine or on_stack call, \
             but the `unwind` feature is disabled; aborting",
        );
    }
}

/// Aborts the process after printing `message` through the panic handler:
/// a panic cannot leave an `extern "C"` function, so the runtime aborts
/// (with `panic = "abort"` it aborts after printing anyway).
#[cold]
#[inline(never)]
pub fn abort_with_message(message: &'static str) -> ! {
    #[allow(improper_ctypes_definitions)]
    extern "C" fn panic_without_unwinding(message: &'static str) -> ! {
        panic!("{}", message)
    }
    panic_without_unwinding(message)
}

/// The panic payload with which switchback unwinds a suspended coroutine
/// that is dropped or [`force_unwind`](crate::Coroutine::force_unwind)ed.
///
/// Code inside a coroutine that catches panics (with
/// [`std::panic::catch_unwind`]) catches this one too. It should re-raise
/// it with [`std::panic::resume_unwind`], so that the coroutine's stack
/// unwinds and the drop completes; otherwise the coroutine carries on, and
/// is asked to unwind again at its next `suspend`.
///
/// ```
/// use std::panic::{self, AssertUnwindSafe};
/// use switchback::{Coroutine, ForcedUnwind};
///
/// let mut co: Coroutine<(), u32, ()> = Coroutine::new(|yielder, ()| {
///     // A plugin host that turns the plugin's panics into errors:
///     let result = panic::catch_unwind(AssertUnwindSafe(|| {
///         yielder.suspend(1);
///     }));
///     if let Err(payload) = result {
///         if payload.is::<ForcedUnwind>() {
///             // Not the plugin's panic: let the coroutine unwind.
///             panic::resume_unwind(payload);
///         }
///         eprintln!("the plugin panicked");
///     }
/// });
/// assert_eq!(co.resume(()).as_yield(), Some(1));
/// drop(co); // unwinds through the catch_unwind above
/// ```
#[cfg(feature = "unwind")]
#[cfg_attr(docsrs, doc(cfg(feature = "unwind")))]
pub struct ForcedUnwind {
    /// The address of the coroutine's parent link, so that each coroutine
    /// only stops its own forced unwind.
    link: usize,
}

#[cfg(feature = "unwind")]
impl ForcedUnwind {
    /// Whether a caught panic payload is a forced unwind.
    ///
    /// ```
    /// use switchback::ForcedUnwind;
    ///
    /// let payload = std::panic::catch_unwind(|| panic!("an ordinary panic")).unwrap_err();
    /// assert!(!ForcedUnwind::is_forced_unwind(&*payload));
    /// ```
    pub fn is_forced_unwind(payload: &(dyn core::any::Any + Send)) -> bool {
        payload.is::<ForcedUnwind>()
    }
}

#[cfg(feature = "unwind")]
impl core::fmt::Debug for ForcedUnwind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ForcedUnwind").finish_non_exhaustive()
    }
}

/// Unwinds the current coroutine's stack (called by `suspend` when the parent
/// asks for it).
#[cold]
#[inline(never)]
pub fn start_forced_unwind(link: usize) -> ! {
    #[cfg(feature = "unwind")]
    {
        std::panic::resume_unwind(std::boxed::Box::new(ForcedUnwind { link }))
    }
    #[cfg(not(feature = "unwind"))]
    {
        let _ = link;
        abort_with_message("switchback: forced unwind requested without the `unwind` feature")
    }
}

/// Whether `payload` is the forced unwind of the coroutine whose link is at
/// `link`.
#[cfg(feature = "unwind")]
pub fn is_forced_unwind_of(payload: &(dyn core::any::Any + Send), link: usize) -> bool {
    payload
        .downcast_ref::<ForcedUnwind>()
        .is_some_and(|forced| forced.link == link)
}
