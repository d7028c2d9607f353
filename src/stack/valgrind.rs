//! Telling Valgrind where coroutine stacks are, so memcheck follows switches.

use crate::arch::valgrind_client_request;

const VG_USERREQ_STACK_REGISTER: usize = 0x1501;
const VG_USERREQ_STACK_DEREGISTER: usize = 0x1502;

/// A stack registered with Valgrind for as long as this value lives. Outside
/// Valgrind the client request is a few no-op instructions.
#[derive(Debug)]
pub(crate) struct ValgrindStackRegistration {
    id: usize,
}

impl ValgrindStackRegistration {
    /// Registers the memory `[limit, base)` as a stack.
    pub(crate) fn new(limit: usize, base: usize) -> Self {
        // SAFETY: STACK_REGISTER takes a start and an end address and only
        // records them.
        let id = unsafe {
            valgrind_client_request(0, &[VG_USERREQ_STACK_REGISTER, limit, base, 0, 0, 0])
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
