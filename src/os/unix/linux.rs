//! Linux (and Android, which shares its kernel): what the Unix layer does
//! differently here.

/// Extra `mmap` flags for a stack: `MAP_NORESERVE` (the usable part is
/// committed as it is touched, not counted against overcommit at map time)
/// and `MAP_STACK`.
pub(super) const STACK_MAP_FLAGS: libc::c_int = libc::MAP_NORESERVE | libc::MAP_STACK;

/// The element type of `mincore`'s vector.
pub(super) type MincoreByte = libc::c_uchar;

/// Drops the contents of `[start, start + len)`, part of a private
/// anonymous mapping of the caller's that nothing runs on; the pages read
/// as zero afterwards. Returns false if that failed.
pub(super) fn discard(start: usize, len: usize) -> bool {
    // SAFETY: the caller owns the range and nothing runs on it; for a
    // private anonymous mapping MADV_DONTNEED makes its pages read as zero
    // afterwards.
    unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED) == 0 }
}

/// The calling thread's own stack as `(limit, base)`, from
/// `pthread_getattr_np`. The guard area is left out of the usable part
/// (glibc counts it in the stack's size).
pub(crate) fn thread_stack() -> Option<(usize, usize)> {
    // SAFETY: `attr` is initialized by pthread_getattr_np before it is read
    // and destroyed once; the out-pointers are valid locals.
    unsafe {
        let mut attr: libc::pthread_attr_t = core::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return None;
        }
        let mut addr: *mut libc::c_void = core::ptr::null_mut();
        let mut size = 0;
        let mut guard = 0;
        let ok = libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0
            && libc::pthread_attr_getguardsize(&attr, &mut guard) == 0;
        libc::pthread_attr_destroy(&mut attr);
        let low = addr as usize;
        match low.checked_add(size) {
            Some(base) if ok && size > guard => Some((low + guard, base)),
            _ => None,
        }
    }
}
