//! A process-wide, lock-free-to-read registry of the stacks the crate
//! mapped (`DefaultStack`, pooled stacks): their guard pages and bounds,
//! for the overflow report's signal handler and for `remaining_stack`.
//!
//! An entry describes `count` equal stacks side by side, each `stride`
//! bytes of which the lowest `guard_len` are its guard: one stack with a
//! mapping of its own (`count` 1), or a whole slab of stacks (`slab`),
//! whose stack holding an address is computed from the address. So a
//! million slab stacks take a few hundred entries.
//!
//! Readers (a signal handler among them) never lock or allocate: they scan
//! fixed-size chunks of atomics, each entry guarded by a sequence count.
//! Registering and unregistering happen when a stack is mapped or unmapped,
//! take a mutex for the list of free entries and may allocate a new chunk.
//!
//! Nothing here is Unix-specific: the Windows `VirtualAlloc` stacks keep a
//! [`Registration`] too, and the Windows vectored exception handler looks
//! faults up with [`find`] as the Unix signal handler does (see
//! `overflow`).

use core::ptr;
use core::sync::atomic::{fence, AtomicPtr, AtomicUsize, Ordering};
use std::alloc::{alloc_zeroed, handle_alloc_error, Layout};
use std::sync::{Mutex, PoisonError};
use std::vec::Vec;

/// Entries per chunk.
const CHUNK_LEN: usize = 1024;
/// Chunks at most: `CHUNKS * CHUNK_LEN` (65536) entries (stacks with a
/// mapping each, or slabs of stacks) can be registered at once. Stacks
/// mapped beyond that work, but are unknown to the overflow report and to
/// `remaining_stack`; a process reaches the kernel's limit on mappings
/// (65,530 by default on Linux) first.
const CHUNKS: usize = 64;

/// One registration: `count` stacks from `start`, stack `i` at `start + i
/// * stride`, its lowest `guard_len` bytes its guard and the rest of the
/// `stride` its usable part. `seq` is odd while the entry is being
/// written; `count` is 0 while the entry is free.
struct Entry {
    seq: AtomicUsize,
    start: AtomicUsize,
    guard_len: AtomicUsize,
    stride: AtomicUsize,
    count: AtomicUsize,
}

struct Chunk([Entry; CHUNK_LEN]);

static CHUNK_PTRS: [AtomicPtr<Chunk>; CHUNKS] = [const { AtomicPtr::new(ptr::null_mut()) }; CHUNKS];
/// Entries ever handed out: readers scan `0..USED`.
static USED: AtomicUsize = AtomicUsize::new(0);
/// Entries given back, for reuse. Only registration takes this lock.
static FREE: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// A registered stack's addresses, as read from the registry.
#[derive(Clone, Copy)]
pub(crate) struct StackRange {
    /// The lowest address of the guard page(s).
    pub(crate) guard: usize,
    /// The lowest usable address (the top of the guard).
    pub(crate) limit: usize,
    /// The highest address of the stack.
    pub(crate) base: usize,
    /// The entry it was read from and the entry's sequence count then:
    /// [`still_registered`] tells whether it still describes that stack
    /// (asked only by `remaining_stack`'s cache, which Windows does without).
    entry: &'static Entry,
    seq: usize,
}

/// A registration, removed from the registry on drop. Holds nothing if the
/// registry was full.
#[derive(Debug)]
pub(crate) struct Registration {
    index: Option<usize>,
}

/// The entry at `index`, if its chunk exists.
fn entry(index: usize) -> Option<&'static Entry> {
    let chunk = CHUNK_PTRS.get(index / CHUNK_LEN)?.load(Ordering::Acquire);
    // SAFETY: chunks are leaked once published, so a non-null pointer is a
    // valid `Chunk` for the rest of the program.
    (!chunk.is_null()).then(|| unsafe { &(*chunk).0[index % CHUNK_LEN] })
}

/// Claims an entry: a freed one, or the next fresh one (allocating its
/// chunk if needed). `None` if the registry is full.
fn claim() -> Option<usize> {
    let mut free = FREE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(index) = free.pop() {
        return Some(index);
    }
    let index = USED.load(Ordering::Relaxed);
    let slot = CHUNK_PTRS.get(index / CHUNK_LEN)?;
    if slot.load(Ordering::Relaxed).is_null() {
        // Allocated zeroed rather than built on the stack: 40 KiB is more
        // than a small coroutine stack may have left.
        let layout = Layout::new::<Chunk>();
        // SAFETY: the layout is not zero-sized; all-zero bytes are a valid
        // `Chunk` (every field is an atomic integer, all free entries).
        let chunk = unsafe { alloc_zeroed(layout) } as *mut Chunk;
        if chunk.is_null() {
            handle_alloc_error(layout);
        }
        slot.store(chunk, Ordering::Release);
    }
    // Published after the chunk, so that readers that see the index see
    // its chunk.
    USED.store(index + 1, Ordering::Release);
    Some(index)
}

/// What an entry holds: `count` stacks of `stride` bytes from `start`,
/// each with `guard_len` bytes of guard at the bottom.
#[derive(Clone, Copy)]
struct EntryLayout {
    start: usize,
    guard_len: usize,
    stride: usize,
    count: usize,
}

/// The layout of a free entry.
const FREE_ENTRY: EntryLayout = EntryLayout {
    start: 0,
    guard_len: 0,
    stride: 0,
    count: 0,
};

/// Writes an entry's fields under its sequence count (the caller owns the
/// entry, so there is one writer).
fn write(entry: &Entry, layout: EntryLayout) {
    entry.seq.fetch_add(1, Ordering::Relaxed);
    fence(Ordering::Release);
    entry.start.store(layout.start, Ordering::Relaxed);
    entry.guard_len.store(layout.guard_len, Ordering::Relaxed);
    entry.stride.store(layout.stride, Ordering::Relaxed);
    entry.count.store(layout.count, Ordering::Relaxed);
    entry.seq.fetch_add(1, Ordering::Release);
}

impl Registration {
    /// Registers the stack whose guard is `[guard, limit)` and usable part
    /// `[limit, base)`.
    pub(crate) fn new(guard: usize, limit: usize, base: usize) -> Self {
        Self::register(EntryLayout {
            start: guard,
            guard_len: limit - guard,
            stride: base - guard,
            count: 1,
        })
    }

    /// Registers a slab of `count` stacks side by side from `start`, each
    /// `stride` bytes with its lowest `guard_len` bytes a guard. (Slabs
    /// are made on Unix only; Windows stacks keep a mapping each, and
    /// there only the unit tests make runs of stacks.)
    #[cfg_attr(any(not(unix), miri), allow(dead_code))]
    pub(crate) fn slab(start: usize, guard_len: usize, stride: usize, count: usize) -> Self {
        debug_assert!(guard_len < stride && count > 0);
        Self::register(EntryLayout {
            start,
            guard_len,
            stride,
            count,
        })
    }

    fn register(layout: EntryLayout) -> Self {
        let index = claim();
        if let Some(entry) = index.and_then(entry) {
            write(entry, layout);
        }
        Self { index }
    }
}

impl Registration {
    /// Removes the registration now (before the stack is unmapped).
    pub(crate) fn remove(&mut self) {
        let Some(index) = self.index.take() else {
            return;
        };
        if let Some(entry) = entry(index) {
            write(entry, FREE_ENTRY);
        }
        FREE.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(index);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.remove();
    }
}

/// The stack of entry `index` whose range `[guard, base)` contains
/// `addr`, read consistently; `None` if there is none, or the entry is
/// free or being written. Async-signal-safe.
fn read(index: usize, addr: usize) -> Option<StackRange> {
    let entry = entry(index)?;
    let seq = entry.seq.load(Ordering::Acquire);
    if seq % 2 == 1 {
        return None;
    }
    let layout = EntryLayout {
        start: entry.start.load(Ordering::Relaxed),
        guard_len: entry.guard_len.load(Ordering::Relaxed),
        stride: entry.stride.load(Ordering::Relaxed),
        count: entry.count.load(Ordering::Relaxed),
    };
    fence(Ordering::Acquire);
    if entry.seq.load(Ordering::Relaxed) != seq || layout.count == 0 || addr < layout.start {
        return None;
    }
    // The fields were written together (`seq` did not move), so `stride`
    // is not 0 and `start + stride * count` did not overflow when the
    // stacks were mapped.
    let slot = (addr - layout.start) / layout.stride;
    if slot >= layout.count {
        return None;
    }
    let guard = layout.start + slot * layout.stride;
    Some(StackRange {
        guard,
        limit: guard + layout.guard_len,
        base: guard + layout.stride,
        entry,
        seq,
    })
}

/// The registered stack whose range `[guard, base)` contains `addr`.
/// Async-signal-safe: no lock, no allocation.
pub(crate) fn find(addr: usize) -> Option<StackRange> {
    let used = USED.load(Ordering::Acquire);
    (0..used).find_map(|index| read(index, addr))
}

/// Whether `range` (from [`find`]) still describes a registered stack: its
/// entry has not been rewritten since.
#[inline]
pub(crate) fn still_registered(range: &StackRange) -> bool {
    range.entry.seq.load(Ordering::Acquire) == range.seq
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_ranges_are_found_until_dropped() {
        // Addresses no real stack has (the top of the address space).
        let top = usize::MAX - 0xffff;
        let registration = Registration::new(top, top + 0x1000, top + 0x8000);
        let found = find(top + 0x4000).expect("registered range not found");
        assert_eq!(
            (found.guard, found.limit, found.base),
            (top, top + 0x1000, top + 0x8000)
        );
        let low = find(top + 0x10).expect("the guard page belongs to the range");
        assert!(ptr::eq(low.entry, found.entry));
        assert!(find(top + 0x8000).is_none());
        assert!(still_registered(&found));
        drop(registration);
        assert!(!still_registered(&found));
        assert!(find(top + 0x4000).is_none());
    }

    #[test]
    fn a_slab_is_found_stack_by_stack() {
        let start = usize::MAX - 0x7_ffff;
        let registration = Registration::slab(start, 0x1000, 0x3000, 4);
        for slot in 0..4 {
            let guard = start + slot * 0x3000;
            for addr in [guard, guard + 0xfff, guard + 0x1000, guard + 0x2fff] {
                let found = find(addr).expect("slab stack not found");
                assert_eq!(
                    (found.guard, found.limit, found.base),
                    (guard, guard + 0x1000, guard + 0x3000)
                );
            }
        }
        assert!(find(start + 4 * 0x3000).is_none());
        assert!(find(start - 1).is_none());
        drop(registration);
        assert!(find(start).is_none());
    }
}
