//! The interrupted context of a Linux signal handler (`ucontext_t`): read its
//! stack pointer, and write a trap handler's registers into it. One block per
//! architecture; shared by `examples/trap.rs` and `tests/trap.rs`.

use switchback::trap::TrapHandlerRegs;

/// The stack pointer of the context that a `SA_SIGINFO` handler interrupted.
///
/// # Safety
/// `ctx` must be the third argument of a `SA_SIGINFO` signal handler, used
/// by nothing else while this runs.
#[allow(dead_code)]
pub unsafe fn stack_pointer(ctx: *mut libc::c_void) -> usize {
    // SAFETY: per the caller, `ctx` points at the interrupted ucontext_t.
    let ctx = unsafe { &*(ctx as *const libc::ucontext_t) };
    imp::stack_pointer(ctx)
}

/// Writes every register of `regs` into the interrupted context, so that
/// returning from the handler continues as the trap handler arranged.
///
/// # Safety
/// As [`stack_pointer`]; `regs` must come from
/// `CoroutineTrapHandler::setup_trap_handler` for the interrupted coroutine.
#[allow(dead_code)]
pub unsafe fn redirect(ctx: *mut libc::c_void, regs: TrapHandlerRegs) {
    // SAFETY: per the caller, `ctx` points at the interrupted ucontext_t.
    let ctx = unsafe { &mut *(ctx as *mut libc::ucontext_t) };
    imp::redirect(ctx, regs)
}

#[cfg(target_arch = "x86_64")]
mod imp {
    use super::TrapHandlerRegs;

    pub fn stack_pointer(ctx: &libc::ucontext_t) -> usize {
        ctx.uc_mcontext.gregs[libc::REG_RSP as usize] as usize
    }

    pub fn redirect(ctx: &mut libc::ucontext_t, regs: TrapHandlerRegs) {
        // Destructured so that a field added to TrapHandlerRegs is a compile
        // error here until it is written too.
        let TrapHandlerRegs {
            rip,
            rsp,
            rbp,
            rdi,
            rsi,
        } = regs;
        let gregs = &mut ctx.uc_mcontext.gregs;
        gregs[libc::REG_RIP as usize] = rip as i64;
        gregs[libc::REG_RSP as usize] = rsp as i64;
        gregs[libc::REG_RBP as usize] = rbp as i64;
        gregs[libc::REG_RDI as usize] = rdi as i64;
        gregs[libc::REG_RSI as usize] = rsi as i64;
    }
}

#[cfg(target_arch = "x86")]
mod imp {
    use super::TrapHandlerRegs;

    pub fn stack_pointer(ctx: &libc::ucontext_t) -> usize {
        ctx.uc_mcontext.gregs[libc::REG_ESP as usize] as u32 as usize
    }

    pub fn redirect(ctx: &mut libc::ucontext_t, regs: TrapHandlerRegs) {
        // Destructured so that a field added to TrapHandlerRegs is a compile
        // error here until it is written too.
        let TrapHandlerRegs {
            eip,
            esp,
            ebp,
            ecx,
            edx,
        } = regs;
        let gregs = &mut ctx.uc_mcontext.gregs;
        gregs[libc::REG_EIP as usize] = eip as i32;
        gregs[libc::REG_ESP as usize] = esp as i32;
        gregs[libc::REG_EBP as usize] = ebp as i32;
        gregs[libc::REG_ECX as usize] = ecx as i32;
        gregs[libc::REG_EDX as usize] = edx as i32;
    }
}
