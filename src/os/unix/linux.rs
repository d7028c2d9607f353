//! Linux (and Android, which shares its kernel): what the Unix layer does
//! differently here.

/// Extra `mmap` flags for a stack: `MAP_NORESERVE` (the usable part is
/// committed as it is touched, not counted against overcommit at map time)
/// and `MAP_STACK`.
pub(super) const STACK_MAP_FLAGS: libc::c_int = libc::MAP_NORESERVE | libc::MAP_STACK;

/// `mincore(2)`: its vector is of `unsigned char`.
pub(super) use libc::mincore;

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
/// `pthread_getattr_np` (glibc, musl and Android's bionic have it). glibc
/// counts the guard area in the stack's size; it is left out of the
/// usable part.
pub(crate) fn thread_stack() -> Option<(usize, usize)> {
    super::attributes::stack_from_attributes(libc::pthread_getattr_np)
}
