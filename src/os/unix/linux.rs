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

/// `madvise` advice that installs a light guard region: pages that fault
/// with SIGSEGV on any access, set in the page tables without splitting the
/// mapping (so without a `vm.max_map_count` entry of its own). Linux 6.13
/// and later; older kernels reject it with `EINVAL`. Defined here because
/// the `libc` crate may not have it: the value is from the kernel's UAPI
/// header `include/uapi/asm-generic/mman-common.h` (`#define
/// MADV_GUARD_INSTALL 102`, beside `MADV_GUARD_REMOVE 103`), shared by
/// every architecture.
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// `madvise(2)`'s advice to fault in pages for reading, which fails with
/// `EFAULT` on a guard region (Linux 5.14 and later): how a guard just
/// installed is checked to be real (`include/uapi/asm-generic/mman-common.h`,
/// `MADV_POPULATE_READ 22`).
const MADV_POPULATE_READ: libc::c_int = 22;

/// Whether the system may have guard regions that do not split a mapping:
/// Linux 6.13 and later (the slab allocator finds out on its first guard).
pub(crate) const LIGHT_GUARDS: bool = true;

/// Makes `[start, start + len)`, part of a private anonymous read-write
/// mapping of the caller's that nothing uses, a light guard region
/// (`MADV_GUARD_INSTALL`): `EINVAL` from a kernel older than 6.13.
///
/// With `verify`, also checks that the range now faults: a populate of it
/// must fail with `EFAULT`. Under an emulator that accepts advice it does
/// not carry out (qemu-user returns 0 for advice it ignores) the populate
/// succeeds, and the guard is refused with `Unsupported`.
pub(super) fn install_light_guard(start: usize, len: usize, verify: bool) -> std::io::Result<()> {
    let addr = start as *mut libc::c_void;
    // SAFETY: the caller owns the range and nothing uses it; installing a
    // guard there drops whatever the pages held, which is nothing of use.
    if unsafe { libc::madvise(addr, len, MADV_GUARD_INSTALL) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if verify {
        // SAFETY: as above; populating pages of our own mapping for
        // reading changes no contents (and on a guard region fails).
        let populated = unsafe { libc::madvise(addr, len, MADV_POPULATE_READ) } == 0;
        let error = std::io::Error::last_os_error();
        if populated || error.raw_os_error() != Some(libc::EFAULT) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "MADV_GUARD_INSTALL was accepted but the range does not fault",
            ));
        }
    }
    Ok(())
}

/// The kernel's limit on a process's memory mappings, from
/// `/proc/sys/vm/max_map_count` (`None` if it cannot be read).
pub(super) fn max_map_count() -> Option<usize> {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()?
        .trim()
        .parse()
        .ok()
}
