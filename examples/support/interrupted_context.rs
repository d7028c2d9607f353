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

#[cfg(target_arch = "arm")]
mod imp {
    use super::TrapHandlerRegs;

    /// CPSR's T bit: Thumb state.
    const CPSR_T: u32 = 1 << 5;
    /// CPSR's E bit: big-endian data.
    const CPSR_E: u32 = 1 << 9;
    /// CPSR's IT bits (IT[7:2] in 15:10, IT[1:0] in 26:25): the fault may
    /// have happened inside an IT block, whose condition must not apply to
    /// the code the handler redirects to.
    const CPSR_IT: u32 = 0x0600_fc00;

    pub fn stack_pointer(ctx: &libc::ucontext_t) -> usize {
        ctx.uc_mcontext.arm_sp as usize
    }

    pub fn redirect(ctx: &mut libc::ucontext_t, regs: TrapHandlerRegs) {
        // Destructured so that a field added to TrapHandlerRegs is a compile
        // error here until it is written too.
        let TrapHandlerRegs {
            pc,
            r0,
            r1,
            r7,
            r11,
            r13,
            r14,
            cpsr_thumb,
            cpsr_endian,
        } = regs;
        let mcontext = &mut ctx.uc_mcontext;
        mcontext.arm_pc = pc;
        mcontext.arm_r0 = r0;
        mcontext.arm_r1 = r1;
        mcontext.arm_r7 = r7;
        mcontext.arm_fp = r11;
        mcontext.arm_sp = r13;
        mcontext.arm_lr = r14;
        // c_ulong is u32 on 32-bit ARM Linux, like the fields.
        let mut cpsr = mcontext.arm_cpsr & !(CPSR_T | CPSR_E | CPSR_IT);
        if cpsr_thumb {
            cpsr |= CPSR_T;
        }
        if cpsr_endian {
            cpsr |= CPSR_E;
        }
        mcontext.arm_cpsr = cpsr;
    }
}
