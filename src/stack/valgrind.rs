//! Telling Valgrind where a stack is, so that memcheck follows switches onto
//! it instead of reporting them as wild stack-pointer changes.

use crate::arch::valgrind_client_request;

const VG_USERREQ_STACK_REGISTER: usize = 0x1501;
const VG_USERREQ_STACK_DEREGISTER: usize = 0x1502;
/// Memcheck's `VALGRIND_MAKE_MEM_DEFINED` (memcheck.h: `('M' << 24 | 'C' <<
/// 16) + 2`).
#[cfg_attr(not(all(unix, not(miri), feature = "default-stack")), allow(dead_code))]
const VG_USERREQ_MAKE_MEM_DEFINED: usize = 0x4d43_0002;

/// Tells memcheck that the `len` bytes at `addr` are addressable and
/// defined, as a fresh anonymous mapping is: for a slab's slot handed out
/// again, whose memory reads as zero (discarded) but which memcheck may
/// still hold inaccessible from the frames of the stack that used it last
/// (Valgrind marks what lies below a stack pointer that rose as gone, and
/// without a `munmap` and `mmap` nothing resets that). Outside Valgrind, a
/// few instructions that change nothing.
#[cfg_attr(not(all(unix, not(miri), feature = "default-stack")), allow(dead_code))]
pub(crate) fn mark_fresh(addr: usize, len: usize) {
    // SAFETY: MAKE_MEM_DEFINED only changes memcheck's records of the range.
    unsafe {
        valgrind_client_request(0, &[VG_USERREQ_MAKE_MEM_DEFINED, addr, len, 0, 0, 0]);
    }
}

/// Registers a region of memory as a stack with Valgrind for as long as this
/// value lives. `DefaultStack` and pooled stacks (the `default-stack` feature)
/// do this themselves; a custom [`Stack`](super::Stack) can keep one of these.
///
/// Outside Valgrind the request is a few instructions that change nothing.
///
/// ```
/// use switchback::stack::valgrind::ValgrindStackRegistration;
///
/// let mut memory = vec![0u8; 64 * 1024];
/// let registration = ValgrindStackRegistration::new(memory.as_mut_ptr(), memory.len());
/// drop(registration); // deregisters
/// ```
#[derive(Debug)]
pub struct ValgrindStackRegistration {
    id: usize,
}

impl ValgrindStackRegistration {
    /// Registers the `len` bytes starting at `addr` as a stack.
    pub fn new(addr: *mut u8, len: usize) -> Self {
        let start = addr as usize;
        // SAFETY: STACK_REGISTER takes a start and an end address and only
        // records them.
        let id = unsafe {
            valgrind_client_request(
                0,
                &[
                    VG_USERREQ_STACK_REGISTER,
                    start,
                    start.wrapping_add(len),
                    0,
                    0,
                    0,
                ],
            )
        };
        Self { id }
    }
}

impl Drop for ValgrindStackRegistration {
    fn drop(&mut self) {
        // SAFETY: `id` came from STACK_REGISTER and is deregistered once.
        unsafe {
            valgrind_client_request(0, &[VG_USERREQ_STACK_DEREGISTER, self.id, 0, 0, 0, 0]);
        }
    }
}
