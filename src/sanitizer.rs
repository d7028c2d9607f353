//! Telling AddressSanitizer about stack switches (feature `sanitizer`);
//! without the feature every item here is a no-op that compiles away. Only
//! `switch` calls it, which also keeps the per-coroutine record.
//!
//! The protocol: a context about to switch stacks calls [`start_switch`]
//! with the extent of the stack it goes to (or [`start_final_switch`] when it
//! will never be switched back to), and the context that arrives calls
//! [`finish_switch`], which reports the extent of the stack it came from.

#[cfg(feature = "sanitizer")]
extern "C" {
    fn __sanitizer_start_switch_fiber(
        fake_stack_save: *mut *mut u8,
        bottom: *const u8,
        size: usize,
    );
    fn __sanitizer_finish_switch_fiber(
        fake_stack_save: *mut u8,
        bottom_old: *mut *const u8,
        size_old: *mut usize,
    );
    fn __asan_unpoison_memory_region(addr: *const u8, size: usize);
}

/// The memory of a stack as the sanitizer sees it.
#[derive(Clone, Copy, Debug)]
pub struct StackExtent {
    #[cfg(feature = "sanitizer")]
    bottom: *const u8,
    #[cfg(feature = "sanitizer")]
    size: usize,
}

/// What a context saves in [`start_switch`] and hands back to
/// [`finish_switch`] when it is switched back to (the sanitizer's fake stack).
#[derive(Clone, Copy, Debug)]
pub struct SavedContext {
    #[cfg(feature = "sanitizer")]
    fake_stack: *mut u8,
}

#[cfg(feature = "sanitizer")]
std::thread_local! {
    /// The stack this thread runs on, as last announced by a switch here
    /// (unknown, null, until the first one).
    static CURRENT: core::cell::Cell<StackExtent> = const {
        core::cell::Cell::new(StackExtent { bottom: core::ptr::null(), size: 0 })
    };
}

impl StackExtent {
    /// A stack the sanitizer already knows (the thread's own).
    #[inline(always)]
    pub const fn unknown() -> Self {
        Self {
            #[cfg(feature = "sanitizer")]
            bottom: core::ptr::null(),
            #[cfg(feature = "sanitizer")]
            size: 0,
        }
    }

    /// The stack between `limit` (lowest address) and `base`; `limit` is
    /// only evaluated with the feature on.
    #[inline(always)]
    pub fn new(limit: impl FnOnce() -> usize, base: usize) -> Self {
        #[cfg(feature = "sanitizer")]
        {
            let limit = limit();
            Self {
                bottom: limit as *const u8,
                size: base - limit,
            }
        }
        #[cfg(not(feature = "sanitizer"))]
        {
            let _ = (limit, base);
            Self {}
        }
    }
}

impl SavedContext {
    /// A context that has not been saved: a first entry onto a stack.
    #[inline(always)]
    pub fn none() -> Self {
        Self {
            #[cfg(feature = "sanitizer")]
            fake_stack: core::ptr::null_mut(),
        }
    }
}

/// The stack this thread runs on now, as announced by the last switch.
#[inline(always)]
pub fn current() -> StackExtent {
    #[cfg(feature = "sanitizer")]
    {
        CURRENT.with(|current| current.get())
    }
    #[cfg(not(feature = "sanitizer"))]
    {
        StackExtent {}
    }
}

/// Announces a switch to the stack `to`; the current context will be
/// switched back to.
///
/// # Safety
/// Must be followed by the switch, and the current context must call
/// [`finish_switch`] with the result when it runs again.
#[inline(always)]
pub unsafe fn start_switch(to: StackExtent) -> SavedContext {
    #[allow(unused_mut)]
    let mut saved = SavedContext::none();
    #[cfg(feature = "sanitizer")]
    // SAFETY: the sanitizer runtime's documented fiber protocol.
    unsafe {
        __sanitizer_start_switch_fiber(&mut saved.fake_stack, to.bottom, to.size);
        CURRENT.with(|current| current.set(to));
    }
    let _ = to;
    saved
}

/// Announces a switch to the stack `to` after which the current context
/// never runs again.
///
/// # Safety
/// Must be followed by the switch.
#[inline(always)]
pub unsafe fn start_final_switch(to: StackExtent) {
    #[cfg(feature = "sanitizer")]
    // SAFETY: a null save slot tells the runtime this context ends.
    unsafe {
        __sanitizer_start_switch_fiber(core::ptr::null_mut(), to.bottom, to.size);
        CURRENT.with(|current| current.set(to));
    }
    let _ = to;
}

/// Completes a switch on the stack just arrived on; returns the extent of
/// the stack switched from.
///
/// # Safety
/// Must be the first thing after arriving; `saved` is what this context's
/// own `start_switch` returned, or [`SavedContext::none`] on first entry.
#[inline(always)]
pub unsafe fn finish_switch(saved: SavedContext) -> StackExtent {
    #[cfg(feature = "sanitizer")]
    {
        let mut from = StackExtent {
            bottom: core::ptr::null(),
            size: 0,
        };
        // SAFETY: the sanitizer runtime's documented fiber protocol.
        unsafe {
            __sanitizer_finish_switch_fiber(saved.fake_stack, &mut from.bottom, &mut from.size)
        };
        from
    }
    #[cfg(not(feature = "sanitizer"))]
    {
        let _ = saved;
        StackExtent {}
    }
}

/// Clears the sanitizer's poisoning of a stack whose frames were abandoned
/// (a reused stack, or one reset by a trap handler).
#[inline(always)]
pub fn unpoison(limit: usize, base: usize) {
    #[cfg(feature = "sanitizer")]
    // SAFETY: only the sanitizer's shadow memory for the range changes.
    unsafe {
        __asan_unpoison_memory_region(limit as *const u8, base - limit);
    }
    let _ = (limit, base);
}
