//! Memory on Unix: `mmap`ed stack regions with a guard page, the page
//! size, resident pages (`mincore`) and the thread's own stack.

use core::num::NonZeroUsize;
use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};
use std::format;
use std::io;

use crate::os::RESIDENT_QUERY_PAGES;

/// Pages of guard below each stack: one `PROT_NONE` page.
pub(crate) const GUARD_PAGES: usize = 1;

/// The system's page size, read once.
pub(crate) fn page_size() -> usize {
    static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);
    let cached = PAGE_SIZE.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    PAGE_SIZE.store(size, Ordering::Relaxed);
    size
}

/// One stack's mapping: [`GUARD_PAGES`] of `PROT_NONE` guard at the
/// bottom, the rest read-write. Unmapped on drop.
#[derive(Debug)]
pub(crate) struct Region {
    /// The lowest address of the mapping: the guard page.
    start: usize,
    /// The lowest usable address, just above the guard page.
    limit: NonZeroUsize,
    /// The highest address of the mapping.
    base: NonZeroUsize,
}

/// Maps `len` bytes read-write, private and anonymous, with the system's
/// stack flags: the start of the mapping, which is above 0 and does not
/// wrap at `start + len`. `what` names it in the error for an unusable
/// address (a mapping at 0, possible only where `mmap_min_addr` is 0, or
/// one that reaches the top of the address space), which is given back.
fn map_read_write(len: usize, what: &str) -> io::Result<usize> {
    // SAFETY: an anonymous private mapping at an address of the kernel's
    // choosing touches no existing memory.
    let mapping = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANON | super::system::STACK_MAP_FLAGS,
            -1,
            0,
        )
    };
    if mapping == libc::MAP_FAILED {
        return Err(explain_map_error(io::Error::last_os_error(), "mmap"));
    }
    let start = mapping as usize;
    if start == 0 || start.checked_add(len).is_none() {
        // SAFETY: unmapping our own mapping, which nothing uses.
        unsafe { libc::munmap(mapping, len) };
        return Err(io::Error::other(format!(
            "switchback: mmap returned a {what} at an unusable address"
        )));
    }
    Ok(start)
}

impl Region {
    /// Maps `len` bytes (a whole number of pages, more than
    /// [`GUARD_PAGES`]) and makes the lowest page a guard page.
    pub(crate) fn new(len: usize) -> io::Result<Self> {
        let page = page_size();
        let start = map_read_write(len, "stack")?;
        let mapping = start as *mut libc::c_void;
        // SAFETY: the first page is part of the mapping we just made.
        if unsafe { libc::mprotect(mapping, page, libc::PROT_NONE) } != 0 {
            let error = explain_map_error(io::Error::last_os_error(), "mprotect");
            // SAFETY: unmapping our own mapping, which nothing uses.
            unsafe { libc::munmap(mapping, len) };
            return Err(error);
        }
        let (Some(limit), Some(base)) = (NonZeroUsize::new(start + page), NonZeroUsize::new(start + len))
        else {
            unreachable!("map_read_write returns a range above 0 that does not wrap");
        };
        Ok(Self { start, limit, base })
    }

    /// The lowest address of the region: the bottom of the guard.
    #[inline]
    pub(crate) fn start(&self) -> usize {
        self.start
    }

    /// The lowest usable address, just above the guard.
    #[inline(always)]
    pub(crate) fn limit(&self) -> NonZeroUsize {
        self.limit
    }

    /// The highest address of the region.
    #[inline(always)]
    pub(crate) fn base(&self) -> NonZeroUsize {
        self.base
    }

    /// Drops the contents of the usable pages (not the guard page), giving
    /// the memory back to the OS; they read as zero afterwards. Returns
    /// false if that failed, in which case the region must not be reused.
    /// Nothing may run on the region.
    pub(crate) fn discard(&self) -> bool {
        super::system::discard(self.limit.get(), self.base.get() - self.limit.get())
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and nothing runs on it any more: it
        // is dropped only when idle or when its coroutine has finished.
        unsafe {
            libc::munmap(
                self.start as *mut libc::c_void,
                self.base.get() - self.start,
            );
        }
    }
}

/// A large reservation of read-write memory that the portable layer carves
/// stacks from (a slab): one mapping, `MAP_NORESERVE` where the system has
/// it, so that its pages cost memory only once touched. Guards inside it
/// are light guard regions ([`Reservation::install_guard`]), which do not
/// split it. Unmapped on drop.
#[derive(Debug)]
pub(crate) struct Reservation {
    start: usize,
    len: usize,
}

impl Reservation {
    /// Maps `len` bytes (a whole number of pages) read-write.
    ///
    /// # Errors
    ///
    /// What [`explain_map_error`] makes of the OS error.
    pub(crate) fn new(len: usize) -> io::Result<Self> {
        let start = map_read_write(len, "slab")?;
        Ok(Self { start, len })
    }

    /// The lowest address of the reservation.
    #[inline]
    pub(crate) fn start(&self) -> usize {
        self.start
    }

    /// Makes the `len` bytes at `offset` (page-aligned, inside the
    /// reservation, not in use) a light guard region that faults on any
    /// access without splitting the mapping (`MADV_GUARD_INSTALL` on
    /// Linux 6.13 and later). With `verify`, also checks that the range
    /// now faults (done once, on the first guard a process installs).
    ///
    /// # Errors
    ///
    /// `Unsupported` where the system has no light guards (every Unix but
    /// Linux), `EINVAL` on a Linux kernel without them, or the OS error.
    pub(crate) fn install_guard(&self, offset: usize, len: usize, verify: bool) -> io::Result<()> {
        assert!(offset.checked_add(len).is_some_and(|end| end <= self.len));
        super::system::install_light_guard(self.start + offset, len, verify)
    }
}

/// Drops the contents of `[start, start + len)`, pages of a
/// [`Reservation`] that hold no guard and that nothing uses, giving the
/// memory back; they read as zero afterwards. Light guards elsewhere in the
/// reservation stay (Linux keeps them through `MADV_DONTNEED`). Returns
/// false if that failed.
pub(crate) fn discard(start: usize, len: usize) -> bool {
    super::system::discard(start, len)
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and nothing uses it any more: the
        // portable layer drops a slab only when none of its stacks is out.
        unsafe { libc::munmap(self.start as *mut libc::c_void, self.len) };
    }
}

/// Whether the process is at or near its limit on memory mappings: the
/// limit, `(mappings now, limit)`, where the system says.
fn map_count() -> Option<(usize, usize)> {
    use std::io::Read as _;
    let limit = super::system::max_map_count()?;
    // Counted through a small buffer on the stack: memory may be short,
    // and so may the stack (this can run on a small coroutine stack).
    let mut maps = std::fs::File::open("/proc/self/maps").ok()?;
    let mut buffer = [0u8; 256];
    let mut lines = 0;
    loop {
        match maps.read(&mut buffer) {
            Ok(0) => return Some((lines, limit)),
            Ok(len) => lines += buffer[..len].iter().filter(|&&byte| byte == b'\n').count(),
            Err(_) => return None,
        }
    }
}

/// Turns an `ENOMEM` from mapping or protecting a stack (`call`) into an
/// error that says why that happens and what to do: the process reached
/// the kernel's limit on its memory mappings (`vm.max_map_count` on
/// Linux, with its current value and how many the process has), or the
/// system is out of memory. Kind `OutOfMemory`. Any other error is
/// returned as it is.
pub(crate) fn explain_map_error(error: io::Error, call: &str) -> io::Error {
    if error.raw_os_error() != Some(libc::ENOMEM) {
        return error;
    }
    let why = match map_count() {
        // Within a few mappings of the limit: a stack with a mapping of
        // its own takes two.
        Some((maps, limit)) if maps + 16 >= limit => std::format!(
            "the process has {maps} memory mappings, at the kernel's limit on them, \
             vm.max_map_count = {limit} (/proc/sys/vm/max_map_count): raise it with \
             `sysctl -w vm.max_map_count=N` (`sysctl vm.max_map_count` shows it), or hold \
             fewer stacks (on Linux 6.13 and later, stacks of at most 1 MiB share \
             mappings unless SWITCHBACK_SLAB_STACKS=0); else the system is out of memory"
        ),
        Some((maps, limit)) => std::format!(
            "out of memory or address space (the system's memory and overcommit \
             policy, or a limit such as RLIMIT_AS); not the kernel's limit on \
             mappings: the process has {maps} of the {limit} that vm.max_map_count \
             allows (`sysctl vm.max_map_count`)"
        ),
        None => "the system is out of memory, or the process reached the system's \
                 limit on memory mappings (on Linux, `sysctl vm.max_map_count`)"
            .into(),
    };
    io::Error::new(
        io::ErrorKind::OutOfMemory,
        std::format!("switchback: cannot map a stack: {call} failed ({error}): {why}"),
    )
}

/// Replaces `[start, start + len)`, part of a private anonymous mapping of
/// the caller's that nothing runs on, with fresh zero pages mapped with
/// `flags` besides `MAP_PRIVATE | MAP_ANON | MAP_FIXED`. Returns false if
/// that failed.
#[cfg_attr(any(target_os = "linux", target_os = "android"), allow(dead_code))]
pub(super) fn remap_fresh(start: usize, len: usize, flags: libc::c_int) -> bool {
    // SAFETY: replaces part of the caller's own mapping, which nothing
    // uses, with fresh zero pages; nothing outside the range changes.
    let remapped = unsafe {
        libc::mmap(
            start as *mut libc::c_void,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANON | libc::MAP_FIXED | flags,
            -1,
            0,
        )
    };
    remapped == start as *mut libc::c_void
}

/// Whether each of the `resident.len()` pages from `start` (at most
/// [`RESIDENT_QUERY_PAGES`]) is resident, from the system's `mincore`
/// (the OS error where the system has none: see its file).
pub(crate) fn resident_pages(start: usize, resident: &mut [bool]) -> io::Result<()> {
    let pages = resident.len();
    assert!(pages <= RESIDENT_QUERY_PAGES);
    // One byte a page; the systems differ only in its signedness (`char`
    // on the BSDs, Darwin and illumos, `unsigned char` on Linux), and only
    // its lowest bit is read.
    let mut bytes = [0u8; RESIDENT_QUERY_PAGES];
    // SAFETY: `[start, start + pages pages)` is page-aligned and part of a
    // mapping the caller owns; `bytes` has an entry for each of its at
    // most RESIDENT_QUERY_PAGES pages. The casts give the address and the
    // vector the pointer types of the system's declaration.
    let status = unsafe {
        super::system::mincore(
            start as _,
            pages * page_size(),
            bytes.as_mut_ptr().cast(),
        )
    };
    if status != 0 {
        return Err(io::Error::last_os_error());
    }
    for (resident, byte) in resident.iter_mut().zip(bytes) {
        *resident = byte & 1 != 0;
    }
    Ok(())
}

/// The lowest usable address of the running stack, where the system
/// tracks it for every stack: never on Unix (the crate's registry and
/// `thread_stack` answer instead).
#[inline(always)]
pub(crate) fn running_stack_limit() -> Option<usize> {
    None
}

