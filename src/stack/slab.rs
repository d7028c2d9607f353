//! Stacks carved from slabs (large reservations of equal slots, each a light guard page and a stack), so that a stack costs no memory mapping of its own.
//!
//! A stack with a mapping of its own plus a `PROT_NONE` guard page split
//! off by `mprotect` takes two of the process's memory mappings, and Linux
//! allows 65,530 by default (`vm.max_map_count`): 32,750 stacks at most.
//! Where the OS has guard regions that do not split a mapping (Linux 6.13's
//! `MADV_GUARD_INSTALL`), stacks of up to [`MAX_SLAB_STACK`] usable bytes
//! are slots of slabs instead:
//!
//! - Slots are grouped by size (usable part plus guard, in whole pages):
//!   one *class* per slot size, each with its own lock and its slabs.
//! - A slab is one read-write `MAP_NORESERVE` reservation of
//!   [`SLAB_BYTES`] (64 MiB) of address space, as many slots as fit (at
//!   least one): 8,192 slots of a 4 KiB stack and its guard page, 63 of a
//!   1 MiB stack. It costs memory only for the pages its stacks touch.
//! - A slot's guard is installed when the slot is first handed out (one
//!   system call), and stays for the slab's life (`MADV_DONTNEED` keeps
//!   it); a slot that comes back is discarded (`MADV_DONTNEED` of its
//!   usable part, which then reads as zero) and handed out again without
//!   a system call.
//! - A slab whose stacks have all come back is unmapped, except that each
//!   class keeps [`KEEP_EMPTY`] (one) empty slab for the next stacks: at
//!   most 64 MiB of address space and no memory per size in use.
//! - Each slab is one entry of the registry of stacks (its start, slot
//!   size, slot count and guard size), from which the overflow report and
//!   `remaining_stack` compute the slot of an address.
//!
//! Whether the OS has light guards is found out once, on the first slab
//! the process makes (and the guard checked to fault); where it has not
//! (other systems, Linux before 6.13), or with the environment variable
//! `SWITCHBACK_SLAB_STACKS=0` (read once), every stack keeps a mapping of
//! its own, as before.

use core::sync::atomic::{AtomicU8, Ordering};
use std::io;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::vec::Vec;

use super::mapping::{page_size, GUARD_PAGES};
use super::registry::Registration;
use crate::os::Reservation;

/// The largest usable size of a slab stack: 1 MiB, the size of
/// `Coroutine::new`'s stacks. Larger stacks are few (a process that holds
/// 32,000 stacks of more than 1 MiB reserves over 32 GiB) and keep a
/// mapping each.
pub(crate) const MAX_SLAB_STACK: usize = 1024 * 1024;

/// Address space per slab: 64 MiB, so that a million 4 KiB stacks take
/// 123 slabs (and 123 registry entries), and a slab of the largest slots
/// still holds 63.
const SLAB_BYTES: usize = 64 * 1024 * 1024;

/// Empty slabs each class keeps mapped for the next stacks (their memory
/// discarded): a program that holds a steady number of stacks does not
/// map and unmap a slab at every step.
const KEEP_EMPTY: usize = 1;

/// Slot sizes in pages go from `1 + GUARD_PAGES` up to this, on 4 KiB
/// pages (larger pages give fewer classes).
const CLASSES: usize = MAX_SLAB_STACK / 4096 + GUARD_PAGES;

/// The environment variable that, set to `0`, turns slabs off.
pub(crate) const ENV_VAR: &str = "SWITCHBACK_SLAB_STACKS";

/// Whether slabs are used: not yet known (the environment not read), to be
/// tried (the first slab's guard decides), on, or off.
static MODE: AtomicU8 = AtomicU8::new(UNREAD);
const UNREAD: u8 = 0;
const UNTRIED: u8 = 1;
const ON: u8 = 2;
const OFF: u8 = 3;

/// The classes, by slot size in pages (index `pages - 1`).
static CLASS: [Class; CLASSES] = [const { Class::new() }; CLASSES];

/// The slabs of one slot size.
struct Class {
    state: Mutex<ClassState>,
}

struct ClassState {
    /// The slabs, by position (a stack names its slab by position; the
    /// position of an unmapped slab is `None` until a new slab takes it).
    slabs: Vec<Option<Slab>>,
    /// The position of a slab that may have a slot to give.
    hint: usize,
    /// Slabs mapped whose stacks have all come back.
    empty: usize,
}

/// One slab: `count` slots of the class's size.
struct Slab {
    /// Out of the registry (by `Drop`) before the memory is unmapped.
    registration: Registration,
    memory: Reservation,
    /// Slots guarded, discarded and free, to hand out first.
    free: Vec<u32>,
    /// Slots `fresh..count` have never been handed out (no guard yet).
    fresh: u32,
    count: u32,
    /// Slots out, as stacks.
    live: u32,
}

impl Drop for Slab {
    fn drop(&mut self) {
        // Out of the registry before `memory` unmaps as its field drops.
        self.registration.remove();
    }
}

/// A stack in a slot of a slab, given back to its slab on drop.
#[derive(Debug)]
pub(crate) struct SlabStack {
    class: &'static Class,
    slab: u32,
    index: u32,
    limit: usize,
    base: usize,
}

impl core::fmt::Debug for Class {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Class")
    }
}

impl Class {
    const fn new() -> Self {
        Self {
            state: Mutex::new(ClassState {
                slabs: Vec::new(),
                hint: 0,
                empty: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ClassState> {
        // Nothing that can panic runs under the lock while the state is
        // inconsistent (the asserts of `Reservation` run before any change).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether slabs may be used: not turned off by the environment, nor found
/// missing.
fn enabled() -> bool {
    match MODE.load(Ordering::Relaxed) {
        UNREAD => {
            let off = std::env::var_os(ENV_VAR).is_some_and(|value| value == "0");
            let mode = if off { OFF } else { UNTRIED };
            // Another thread may have read it (the same answer) or tried
            // the guard already; keep what it found.
            let _ = MODE.compare_exchange(UNREAD, mode, Ordering::Relaxed, Ordering::Relaxed);
            MODE.load(Ordering::Relaxed) != OFF
        }
        OFF => false,
        _ => true,
    }
}

/// Whether an error from installing the first guard means that the OS has
/// no light guards (`Unsupported`, `EINVAL` from a kernel that does not
/// know the advice, `ENOSYS`), rather than a failure to report.
fn means_unsupported(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::Unsupported | io::ErrorKind::InvalidInput
    )
}

impl SlabStack {
    /// A stack in a slab, the guard at the bottom of `slot_len` bytes (a
    /// whole number of pages, more than [`GUARD_PAGES`]): `Ok(None)` if
    /// the stack is too large for a slab or slabs are off, for the caller
    /// to map it by itself.
    ///
    /// # Errors
    ///
    /// The OS error (explained) if a new slab is needed and cannot be
    /// reserved, or the slot's guard cannot be installed; the allocator is
    /// left as it was.
    pub(crate) fn new(slot_len: usize) -> io::Result<Option<Self>> {
        let page = page_size();
        let guard_len = GUARD_PAGES * page;
        if !crate::os::LIGHT_GUARDS || slot_len - guard_len > MAX_SLAB_STACK || !enabled() {
            return Ok(None);
        }
        let Some(class) = CLASS.get(slot_len / page - 1) else {
            return Ok(None);
        };
        let mut state = class.lock();
        let Some((slab, index, start)) = state.take(slot_len)? else {
            return Ok(None);
        };
        drop(state);
        let guard = start + index as usize * slot_len;
        Ok(Some(Self {
            class,
            slab,
            index,
            limit: guard + guard_len,
            base: guard + slot_len,
        }))
    }

    /// The lowest usable address, just above the guard.
    #[inline(always)]
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// The highest address of the slot.
    #[inline(always)]
    pub(crate) fn base(&self) -> usize {
        self.base
    }

    /// Drops the contents of the usable part, giving the memory back; it
    /// reads as zero afterwards and the guard stays. False if that failed.
    /// Nothing may run on the stack.
    pub(crate) fn discard(&self) -> bool {
        slab_discard(self.limit, self.base - self.limit)
    }
}

impl Drop for SlabStack {
    fn drop(&mut self) {
        // Outside the lock: the slot is this stack's until given back.
        let discarded = self.discard();
        let unmapped = {
            let mut state = self.class.lock();
            state.give_back(self.slab, self.index, discarded)
        };
        // Unmapped outside the lock.
        drop(unmapped);
    }
}

impl ClassState {
    /// Takes a slot for a stack: a free one, else a fresh one of a slab with
    /// room (installing its guard), else one of a new slab. Returns the
    /// slab's position, the slot and the slab's start; `None` if slabs
    /// turned out to be unsupported.
    fn take(&mut self, slot_len: usize) -> io::Result<Option<(u32, u32, usize)>> {
        let position = match self.with_room() {
            Some(position) => position,
            None => match self.add_slab(slot_len)? {
                Some(position) => position,
                None => return Ok(None),
            },
        };
        let Some(slab) = self.slabs[position].as_mut() else {
            unreachable!("with_room and add_slab give the position of a slab");
        };
        let index = match slab.free.pop() {
            Some(index) => index,
            None => {
                let index = slab.fresh;
                let offset = index as usize * slot_len;
                slab_guard(&slab.memory, offset, GUARD_PAGES * page_size(), false)
                    .map_err(|error| crate::os::explain_map_error(error, "madvise"))?;
                slab.fresh += 1;
                index
            }
        };
        if slab.live == 0 {
            self.empty -= 1;
        }
        slab.live += 1;
        self.hint = position;
        Ok(Some((position as u32, index, slab.memory.start())))
    }

    /// The position of a slab with a free or fresh slot, the hint first.
    fn with_room(&self) -> Option<usize> {
        let has_room = |slab: &Option<Slab>| {
            slab.as_ref()
                .is_some_and(|slab| !slab.free.is_empty() || slab.fresh < slab.count)
        };
        if self.slabs.get(self.hint).is_some_and(has_room) {
            return Some(self.hint);
        }
        self.slabs.iter().position(has_room)
    }

    /// Maps a new slab with one guarded free slot and returns its
    /// position; `None` if light guards turned out to be unsupported (then
    /// slabs are off for the process).
    fn add_slab(&mut self, slot_len: usize) -> io::Result<Option<usize>> {
        let count = (SLAB_BYTES / slot_len).clamp(1, u32::MAX as usize);
        let memory = slab_reserve(count * slot_len)?;
        let guard_len = GUARD_PAGES * page_size();
        let verify = MODE.load(Ordering::Relaxed) != ON;
        match slab_guard(&memory, 0, guard_len, verify) {
            Ok(()) => MODE.store(ON, Ordering::Relaxed),
            Err(error) if verify && means_unsupported(&error) => {
                MODE.store(OFF, Ordering::Relaxed);
                return Ok(None);
            }
            Err(error) => return Err(crate::os::explain_map_error(error, "madvise")),
        }
        let slab = Slab {
            registration: Registration::slab(memory.start(), guard_len, slot_len, count),
            memory,
            free: std::vec![0],
            fresh: 1,
            count: count as u32,
            live: 0,
        };
        // Can allocate (and so panic) only before anything changes.
        self.slabs.reserve(1);
        let position = match self.slabs.iter().position(Option::is_none) {
            Some(position) => {
                self.slabs[position] = Some(slab);
                position
            }
            None => {
                self.slabs.push(Some(slab));
                self.slabs.len() - 1
            }
        };
        self.empty += 1;
        Ok(Some(position))
    }

    /// Takes back slot `index` of slab `position`, its usable part
    /// `discarded` or not: frees it, or if the discard failed keeps it out
    /// for good (its contents are still there), so that its slab is never
    /// unmapped. Returns the slab if it is now empty and one too many, for
    /// the caller to unmap.
    fn give_back(&mut self, position: u32, index: u32, discarded: bool) -> Option<Slab> {
        let position = position as usize;
        let slab = self.slabs.get_mut(position)?.as_mut()?;
        if !discarded {
            return None;
        }
        slab.free.push(index);
        slab.live -= 1;
        self.hint = position;
        if slab.live != 0 {
            return None;
        }
        self.empty += 1;
        if self.empty <= KEEP_EMPTY {
            return None;
        }
        self.empty -= 1;
        self.slabs[position].take()
    }
}

/// Reserves a slab (or fails as the test hook says).
fn slab_reserve(len: usize) -> io::Result<Reservation> {
    #[cfg(test)]
    if tests::fail_now(tests::Fail::Reserve) {
        // ENOMEM, as the OS layer explains it.
        return Err(crate::os::explain_map_error(io::Error::from_raw_os_error(12), "mmap"));
    }
    Reservation::new(len)
}

/// Installs a slot's guard (or fails as the test hook says).
fn slab_guard(memory: &Reservation, offset: usize, len: usize, verify: bool) -> io::Result<()> {
    #[cfg(test)]
    if tests::fail_now(tests::Fail::Guard) {
        return Err(io::Error::from_raw_os_error(12));
    }
    memory.install_guard(offset, len, verify)
}

/// Discards `[start, start + len)`, a slot's usable part (or fails as the
/// test hook says).
fn slab_discard(start: usize, len: usize) -> bool {
    #[cfg(test)]
    if tests::fail_now(tests::Fail::Discard) {
        return false;
    }
    crate::os::discard(start, len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::Cell;

    /// Which call the hook makes fail.
    #[derive(Clone, Copy, PartialEq, Eq)]
    pub(super) enum Fail {
        Reserve,
        Guard,
        Discard,
    }

    std::thread_local! {
        /// The next call of this kind on this thread fails (per thread, so
        /// that the crate's other tests, on other threads, are untouched).
        static FAIL: Cell<Option<Fail>> = const { Cell::new(None) };
    }

    pub(super) fn fail_now(kind: Fail) -> bool {
        FAIL.with(|fail| {
            let now = fail.get() == Some(kind);
            if now {
                fail.set(None);
            }
            now
        })
    }

    fn fail_next(kind: Fail) {
        FAIL.with(|fail| fail.set(Some(kind)));
    }

    /// A slot size of its own for each test (tests of the crate run in
    /// parallel and share the classes), from the top of the range.
    fn slot_len(pages_below_max: usize) -> usize {
        MAX_SLAB_STACK + GUARD_PAGES * page_size() - pages_below_max * page_size()
    }

    fn slabs_of(slot_len: usize) -> usize {
        CLASS[slot_len / page_size() - 1]
            .lock()
            .slabs
            .iter()
            .flatten()
            .count()
    }

    /// Slabs on this machine (skips the tests where the kernel has none).
    fn have_slabs() -> bool {
        drop(SlabStack::new(slot_len(10)).unwrap());
        MODE.load(Ordering::Relaxed) == ON
    }

    #[test]
    fn failures_mid_growth_leave_the_allocator_consistent() {
        if !have_slabs() {
            return;
        }
        let len = slot_len(1);
        let count = SLAB_BYTES / len;
        // Fill a first slab.
        let mut stacks: Vec<SlabStack> = (0..count)
            .map(|_| SlabStack::new(len).unwrap().unwrap())
            .collect();
        assert_eq!(slabs_of(len), 1);
        // The next needs a new slab: the reservation fails, then the guard
        // of its first slot; neither leaves a slab behind.
        fail_next(Fail::Reserve);
        let error = SlabStack::new(len).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::OutOfMemory);
        assert!(std::format!("{error}").contains("max_map_count"), "{error}");
        fail_next(Fail::Guard);
        assert!(SlabStack::new(len).is_err());
        assert_eq!(slabs_of(len), 1);
        // Then it works, in a second slab.
        let extra = SlabStack::new(len).unwrap().unwrap();
        assert_eq!(slabs_of(len), 2);
        // A fresh slot's guard failing in the second slab hands nothing
        // out and the slot is still there to take.
        let second = SlabStack::new(len).unwrap().unwrap();
        assert_eq!(second.slab, extra.slab);
        fail_next(Fail::Guard);
        assert!(SlabStack::new(len).is_err());
        let third = SlabStack::new(len).unwrap().unwrap();
        assert_eq!((third.slab, third.index), (extra.slab, second.index + 1));
        // A slot whose discard fails is never handed out again.
        let (lost_slab, lost_index) = (stacks[0].slab, stacks[0].index);
        fail_next(Fail::Discard);
        drop(stacks.remove(0));
        let again = SlabStack::new(len).unwrap().unwrap();
        assert!((again.slab, again.index) != (lost_slab, lost_index));
        // Every stack back: the first slab stays (its lost slot is out for
        // good), the second is kept as the one empty slab.
        drop((extra, second, third, again));
        drop(stacks);
        assert_eq!(slabs_of(len), 2);
    }

    #[test]
    fn empty_slabs_beyond_one_are_unmapped() {
        if !have_slabs() {
            return;
        }
        let len = slot_len(2);
        let count = SLAB_BYTES / len;
        let stacks: Vec<SlabStack> = (0..3 * count)
            .map(|_| SlabStack::new(len).unwrap().unwrap())
            .collect();
        assert_eq!(slabs_of(len), 3);
        drop(stacks);
        assert_eq!(slabs_of(len), KEEP_EMPTY);
        // Reuse after drop: the kept slab's slots, no new slab.
        let again: Vec<SlabStack> = (0..count)
            .map(|_| SlabStack::new(len).unwrap().unwrap())
            .collect();
        assert_eq!(slabs_of(len), 1);
        drop(again);
    }
}
