//! A thread's own stack from its attributes, for the systems that report
//! it that way (`pthread_getattr_np`, `pthread_attr_get_np`) and have
//! `pthread_attr_getguardsize`: Linux and Android, FreeBSD and DragonFly,
//! NetBSD.

/// A function that fills an initialized `pthread_attr_t` with the
/// attributes of a running thread (`pthread_getattr_np`,
/// `pthread_attr_get_np`).
pub(super) type GetAttributes =
    unsafe extern "C" fn(libc::pthread_t, *mut libc::pthread_attr_t) -> libc::c_int;

/// The calling thread's own stack as `(limit, base)`, from its attributes
/// as `get` reports them: the stack's lowest address and size
/// (`pthread_attr_getstack`), with the guard size
/// (`pthread_attr_getguardsize`) left out at the bottom. Where the system
/// counts the guard in the stack's size (glibc) that is exact; where it
/// puts the guard below the reported range, the limit is that much higher
/// than the real one, so `remaining_stack` errs low, never high. `None` if
/// any call fails.
pub(super) fn stack_from_attributes(get: GetAttributes) -> Option<(usize, usize)> {
    // SAFETY: `attr` is initialized by pthread_attr_init before `get` fills
    // it (some systems require that, none forbids it), read only after
    // both succeeded, and destroyed once; the out-pointers are valid
    // locals.
    unsafe {
        let mut attr: libc::pthread_attr_t = core::mem::zeroed();
        if libc::pthread_attr_init(&mut attr) != 0 {
            return None;
        }
        let mut addr: *mut libc::c_void = core::ptr::null_mut();
        let mut size = 0;
        let mut guard = 0;
        let ok = get(libc::pthread_self(), &mut attr) == 0
            && libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0
            && libc::pthread_attr_getguardsize(&attr, &mut guard) == 0;
        libc::pthread_attr_destroy(&mut attr);
        let low = addr as usize;
        match low.checked_add(size) {
            Some(base) if ok && low != 0 && size > guard => Some((low + guard, base)),
            _ => None,
        }
    }
}
