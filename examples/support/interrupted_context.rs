//! The interrupted context of a fault handler (a Unix signal handler's
//! `ucontext_t`, a Windows vectored exception handler's `CONTEXT`): read
//! its stack pointer, and write a trap handler's registers into it. One
//! block per architecture and operating system; shared by
//! `examples/trap.rs` and `tests/trap.rs`.
//!
//! Linux, Android, FreeBSD, DragonFly, NetBSD and illumos embed the machine
//! context in `ucontext_t` (`uc_mcontext`), each with its own layout: an
//! array indexed by `REG_*` constants (Linux, Android and illumos `gregs`,
//! NetBSD `__gregs` with `_REG_*`), named `mc_*` fields (FreeBSD and
//! DragonFly x86; FreeBSD AArch64's `mc_gpregs`), or Linux's own per
//! architecture. OpenBSD's `ucontext_t` is its `struct sigcontext`, with
//! `sc_*` fields. Darwin's `uc_mcontext` is a pointer to the machine
//! context (`__darwin_mcontext64`), whose `__ss` is the thread state of the
//! interrupted thread; Windows hands the `CONTEXT` itself.

use core::ffi::c_void;

use switchback::trap::TrapHandlerRegs;

/// The stack pointer of the context that a fault handler interrupted.
///
/// # Safety
/// `ctx` must be the third argument of a `SA_SIGINFO` signal handler (Unix)
/// or the `ContextRecord` of a vectored exception handler's
/// `EXCEPTION_POINTERS` (Windows), used by nothing else while this runs.
#[allow(dead_code)]
pub unsafe fn stack_pointer(ctx: *mut c_void) -> usize {
    // SAFETY: per the caller, `ctx` is the interrupted context as the
    // kernel wrote it, so its machine context is valid and unshared.
    unsafe { imp::stack_pointer(&*machine_context(ctx)) }
}

/// Writes every register of `regs` into the interrupted context, so that
/// returning from the handler continues as the trap handler arranged.
///
/// # Safety
/// As [`stack_pointer`]; `regs` must come from
/// `CoroutineTrapHandler::setup_trap_handler` for the interrupted coroutine.
#[allow(dead_code)]
pub unsafe fn redirect(ctx: *mut c_void, regs: TrapHandlerRegs) {
    // SAFETY: as in `stack_pointer`.
    unsafe { imp::redirect(&mut *machine_context(ctx), regs) }
}

/// Unix but Darwin: the registers are in the `ucontext_t` itself.
#[cfg(all(unix, not(target_vendor = "apple")))]
fn machine_context(ctx: *mut c_void) -> *mut libc::ucontext_t {
    ctx.cast()
}

/// Darwin: `uc_mcontext` points at the machine context.
///
/// # Safety
/// `ctx` must point at a `ucontext_t` that the kernel wrote.
#[cfg(target_vendor = "apple")]
unsafe fn machine_context(ctx: *mut c_void) -> *mut libc::__darwin_mcontext64 {
    // SAFETY: per the caller, `ctx` is readable and its `uc_mcontext` is
    // set.
    unsafe { (*ctx.cast::<libc::ucontext_t>()).uc_mcontext }
}

/// Windows: the handler is given the `CONTEXT` itself.
#[cfg(windows)]
fn machine_context(
    ctx: *mut c_void,
) -> *mut windows_sys::Win32::System::Diagnostics::Debug::CONTEXT {
    ctx.cast()
}

#[cfg(all(target_arch = "x86_64", windows))]
mod imp {
    use super::TrapHandlerRegs;
    use windows_sys::Win32::System::Diagnostics::Debug::CONTEXT;

    pub fn stack_pointer(ctx: &CONTEXT) -> usize {
        ctx.Rsp as usize
    }

    pub fn redirect(ctx: &mut CONTEXT, regs: TrapHandlerRegs) {
        // Destructured so that a field added to TrapHandlerRegs is a compile
        // error here until it is written too.
        let TrapHandlerRegs {
            rip,
            rsp,
            rbp,
            rdi,
            rsi,
        } = regs;
        ctx.Rip = rip;
        ctx.Rsp = rsp;
        ctx.Rbp = rbp;
        ctx.Rdi = rdi;
        ctx.Rsi = rsi;
    }
}

#[cfg(all(
    target_arch = "x86_64",
    any(target_os = "linux", target_os = "android")
))]
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

#[cfg(target_arch = "riscv64")]
mod imp {
    use super::TrapHandlerRegs;

    // `__gregs[0]` is the pc; `__gregs[n]` is register xn for n >= 1.
    const PC: usize = 0;
    const RA: usize = 1;
    const SP: usize = 2;
    const S0: usize = 8;
    const A0: usize = 10;
    const A1: usize = 11;

    pub fn stack_pointer(ctx: &libc::ucontext_t) -> usize {
        ctx.uc_mcontext.__gregs[SP] as usize
    }

    pub fn redirect(ctx: &mut libc::ucontext_t, regs: TrapHandlerRegs) {
        // Destructured so that a field added to TrapHandlerRegs is a compile
        // error here until it is written too.
        let TrapHandlerRegs {
            pc,
            ra,
            sp,
            a0,
            a1,
            s0,
        } = regs;
        let gregs = &mut ctx.uc_mcontext.__gregs;
        gregs[PC] = pc as libc::c_ulong;
        gregs[RA] = ra as libc::c_ulong;
        gregs[SP] = sp as libc::c_ulong;
        gregs[A0] = a0 as libc::c_ulong;
        gregs[A1] = a1 as libc::c_ulong;
        gregs[S0] = s0 as libc::c_ulong;
    }
}

#[cfg(target_arch = "loongarch64")]
mod imp {
    use super::TrapHandlerRegs;

    // The pc is `__pc`; `__gregs[n]` is register rn.
    const RA: usize = 1;
    const SP: usize = 3;
    const A0: usize = 4;
    const A1: usize = 5;
    const FP: usize = 22;

    pub fn stack_pointer(ctx: &libc::ucontext_t) -> usize {
        ctx.uc_mcontext.__gregs[SP] as usize
    }

    pub fn redirect(ctx: &mut libc::ucontext_t, regs: TrapHandlerRegs) {
        // Destructured so that a field added to TrapHandlerRegs is a compile
        // error here until it is written too.
        let TrapHandlerRegs {
            pc,
            sp,
            a0,
            a1,
            fp,
            ra,
        } = regs;
        let mcontext = &mut ctx.uc_mcontext;
        mcontext.__pc = pc as libc::c_ulonglong;
        mcontext.__gregs[SP] = sp as libc::c_ulonglong;
        mcontext.__gregs[A0] = a0 as libc::c_ulonglong;
        mcontext.__gregs[A1] = a1 as libc::c_ulonglong;
        mcontext.__gregs[FP] = fp as libc::c_ulonglong;
        mcontext.__gregs[RA] = ra as libc::c_ulonglong;
    }
}

#[cfg(target_arch = "powerpc64")]
mod imp {
    use super::TrapHandlerRegs;

    /// Indices into `gp_regs` (Linux's `asm/ptrace.h`): r0-r31 are 0-31.
    const PT_R1: usize = 1;
    const PT_R3: usize = 3;
    const PT_R4: usize = 4;
    const PT_R12: usize = 12;
    const PT_NIP: usize = 32;
    const PT_LNK: usize = 36;

    pub fn stack_pointer(ctx: &libc::ucontext_t) -> usize {
        ctx.uc_mcontext.gp_regs[PT_R1] as usize
    }

    pub fn redirect(ctx: &mut libc::ucontext_t, regs: TrapHandlerRegs) {
        // Destructured so that a field added to TrapHandlerRegs is a compile
        // error here until it is written too.
        let TrapHandlerRegs {
            pc,
            sp,
            r3,
            r4,
            r12,
            lr,
        } = regs;
        let gp_regs = &mut ctx.uc_mcontext.gp_regs;
        gp_regs[PT_NIP] = pc as libc::c_ulong;
        gp_regs[PT_R1] = sp as libc::c_ulong;
        gp_regs[PT_R3] = r3 as libc::c_ulong;
        gp_regs[PT_R4] = r4 as libc::c_ulong;
        gp_regs[PT_R12] = r12 as libc::c_ulong;
        gp_regs[PT_LNK] = lr as libc::c_ulong;
    }
}

#[cfg(target_arch = "s390x")]
mod imp {
    use super::TrapHandlerRegs;

    pub fn stack_pointer(ctx: &libc::ucontext_t) -> usize {
        ctx.uc_mcontext.gregs[15] as usize
    }

    pub fn redirect(ctx: &mut libc::ucontext_t, regs: TrapHandlerRegs) {
        // Destructured so that a field added to TrapHandlerRegs is a compile
        // error here until it is written too.
        let TrapHandlerRegs {
            pc,
            sp,
            r2,
            r3,
            r11,
            r14,
        } = regs;
        let mcontext = &mut ctx.uc_mcontext;
        mcontext.psw.addr = pc;
        mcontext.gregs[15] = sp;
        mcontext.gregs[2] = r2;
        mcontext.gregs[3] = r3;
        mcontext.gregs[11] = r11;
        mcontext.gregs[14] = r14;
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

#[cfg(all(target_arch = "x86", windows))]
mod imp {
    use super::TrapHandlerRegs;
    use windows_sys::Win32::System::Diagnostics::Debug::CONTEXT;

    pub fn stack_pointer(ctx: &CONTEXT) -> usize {
        ctx.Esp as usize
    }

    pub fn redirect(ctx: &mut CONTEXT, regs: TrapHandlerRegs) {
        // Destructured so that a field added to TrapHandlerRegs is a compile
        // error here until it is written too.
        let TrapHandlerRegs {
            eip,
            esp,
            ebp,
            eax,
            ebx,
            ecx,
            edx,
        } = regs;
        ctx.Eip = eip;
        ctx.Esp = esp;
        ctx.Ebp = ebp;
        ctx.Eax = eax;
        ctx.Ebx = ebx;
        ctx.Ecx = ecx;
        ctx.Edx = edx;
    }
}

#[cfg(all(target_arch = "x86", any(target_os = "linux", target_os = "android")))]
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

#[cfg(all(
    target_arch = "aarch64",
    any(target_os = "linux", target_os = "android")
))]
mod imp {
    use super::TrapHandlerRegs;

    pub fn stack_pointer(ctx: &libc::ucontext_t) -> usize {
        ctx.uc_mcontext.sp as usize
    }

    pub fn redirect(ctx: &mut libc::ucontext_t, regs: TrapHandlerRegs) {
        // Destructured so that a field added to TrapHandlerRegs is a compile
        // error here until it is written too.
        let TrapHandlerRegs {
            pc,
            sp,
            x0,
            x1,
            x29,
            lr,
        } = regs;
        let mcontext = &mut ctx.uc_mcontext;
        mcontext.pc = pc;
        mcontext.sp = sp;
        mcontext.regs[0] = x0;
        mcontext.regs[1] = x1;
        mcontext.regs[29] = x29;
        mcontext.regs[30] = lr;
    }
}

#[cfg(all(target_arch = "aarch64", windows))]
mod imp {
    use super::TrapHandlerRegs;
    use windows_sys::Win32::System::Diagnostics::Debug::CONTEXT;

    pub fn stack_pointer(ctx: &CONTEXT) -> usize {
        ctx.Sp as usize
    }

    pub fn redirect(ctx: &mut CONTEXT, regs: TrapHandlerRegs) {
        // Destructured so that a field added to TrapHandlerRegs is a compile
        // error here until it is written too.
        let TrapHandlerRegs {
            pc,
            sp,
            x0,
            x1,
            x29,
            lr,
        } = regs;
        ctx.Pc = pc;
        ctx.Sp = sp;
        // SAFETY: the general registers are a union of `X: [u64; 31]` and
        // named fields (x0-x28, fp, lr) over the same plain integers, for
        // which every bit pattern is valid; x29 is `X[29]` (fp), lr `X[30]`.
        unsafe {
            ctx.Anonymous.X[0] = x0;
            ctx.Anonymous.X[1] = x1;
            ctx.Anonymous.X[29] = x29;
            ctx.Anonymous.X[30] = lr;
        }
    }
}

#[cfg(all(target_arch = "x86_64", target_vendor = "apple"))]
mod imp {
    use super::TrapHandlerRegs;

    pub fn stack_pointer(mcontext: &libc::__darwin_mcontext64) -> usize {
        mcontext.__ss.__rsp as usize
    }

    pub fn redirect(mcontext: &mut libc::__darwin_mcontext64, regs: TrapHandlerRegs) {
        // Destructured so that a field added to TrapHandlerRegs is a compile
        // error here until it is written too.
        let TrapHandlerRegs {
            rip,
            rsp,
            rbp,
            rdi,
            rsi,
        } = regs;
        let ss = &mut mcontext.__ss;
        ss.__rip = rip;
        ss.__rsp = rsp;
        ss.__rbp = rbp;
        ss.__rdi = rdi;
        ss.__rsi = rsi;
    }
}

/// arm64's thread state keeps x0-x28 in `__x` and x29, x30 as `__fp`, `__lr`.
/// (arm64e processes keep these fields signed and opaque; this is for plain
/// arm64, the Rust targets.)
#[cfg(all(target_arch = "aarch64", target_vendor = "apple"))]
mod imp {
    use super::TrapHandlerRegs;

    pub fn stack_pointer(mcontext: &libc::__darwin_mcontext64) -> usize {
        mcontext.__ss.__sp as usize
    }

    pub fn redirect(mcontext: &mut libc::__darwin_mcontext64, regs: TrapHandlerRegs) {
        // Destructured so that a field added to TrapHandlerRegs is a compile
        // error here until it is written too.
        let TrapHandlerRegs {
            pc,
            sp,
            x0,
            x1,
            x29,
            lr,
        } = regs;
        let ss = &mut mcontext.__ss;
        ss.__pc = pc;
        ss.__sp = sp;
        ss.__x[0] = x0;
        ss.__x[1] = x1;
        ss.__fp = x29;
        ss.__lr = lr;
    }
}

/// FreeBSD and DragonFly x86-64: `mcontext_t` names each register.
#[cfg(all(
    target_arch = "x86_64",
    any(target_os = "freebsd", target_os = "dragonfly")
))]
mod imp {
    use super::TrapHandlerRegs;

    pub fn stack_pointer(ctx: &libc::ucontext_t) -> usize {
        ctx.uc_mcontext.mc_rsp as usize
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
        let mcontext = &mut ctx.uc_mcontext;
        mcontext.mc_rip = rip as _;
        mcontext.mc_rsp = rsp as _;
        mcontext.mc_rbp = rbp as _;
        mcontext.mc_rdi = rdi as _;
        mcontext.mc_rsi = rsi as _;
    }
}

/// FreeBSD x86: `mcontext_t` names each register.
#[cfg(all(target_arch = "x86", target_os = "freebsd"))]
mod imp {
    use super::TrapHandlerRegs;

    pub fn stack_pointer(ctx: &libc::ucontext_t) -> usize {
        ctx.uc_mcontext.mc_esp as u32 as usize
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
        let mcontext = &mut ctx.uc_mcontext;
        mcontext.mc_eip = eip as _;
        mcontext.mc_esp = esp as _;
        mcontext.mc_ebp = ebp as _;
        mcontext.mc_ecx = ecx as _;
        mcontext.mc_edx = edx as _;
    }
}

/// FreeBSD AArch64: `mc_gpregs` holds x0-x29 in `gp_x`, then `gp_lr`,
/// `gp_sp` and the pc as `gp_elr` (the exception link register).
#[cfg(all(target_arch = "aarch64", target_os = "freebsd"))]
mod imp {
    use super::TrapHandlerRegs;

    pub fn stack_pointer(ctx: &libc::ucontext_t) -> usize {
        ctx.uc_mcontext.mc_gpregs.gp_sp as usize
    }

    pub fn redirect(ctx: &mut libc::ucontext_t, regs: TrapHandlerRegs) {
        // Destructured so that a field added to TrapHandlerRegs is a compile
        // error here until it is written too.
        let TrapHandlerRegs {
            pc,
            sp,
            x0,
            x1,
            x29,
            lr,
        } = regs;
        let gpregs = &mut ctx.uc_mcontext.mc_gpregs;
        gpregs.gp_elr = pc as _;
        gpregs.gp_sp = sp as _;
        gpregs.gp_x[0] = x0 as _;
        gpregs.gp_x[1] = x1 as _;
        gpregs.gp_x[29] = x29 as _;
        gpregs.gp_lr = lr as _;
    }
}

/// NetBSD x86-64: `__gregs`, indexed by the `_REG_*` constants.
#[cfg(all(target_arch = "x86_64", target_os = "netbsd"))]
mod imp {
    use super::TrapHandlerRegs;

    pub fn stack_pointer(ctx: &libc::ucontext_t) -> usize {
        ctx.uc_mcontext.__gregs[libc::_REG_RSP as usize] as usize
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
        let gregs = &mut ctx.uc_mcontext.__gregs;
        gregs[libc::_REG_RIP as usize] = rip as _;
        gregs[libc::_REG_RSP as usize] = rsp as _;
        gregs[libc::_REG_RBP as usize] = rbp as _;
        gregs[libc::_REG_RDI as usize] = rdi as _;
        gregs[libc::_REG_RSI as usize] = rsi as _;
    }
}

/// OpenBSD x86-64: the `ucontext_t` is a `struct sigcontext`, whose
/// `sc_*` fields are the registers.
#[cfg(all(target_arch = "x86_64", target_os = "openbsd"))]
mod imp {
    use super::TrapHandlerRegs;

    pub fn stack_pointer(ctx: &libc::ucontext_t) -> usize {
        ctx.sc_rsp as usize
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
        ctx.sc_rip = rip as _;
        ctx.sc_rsp = rsp as _;
        ctx.sc_rbp = rbp as _;
        ctx.sc_rdi = rdi as _;
        ctx.sc_rsi = rsi as _;
    }
}

/// illumos x86-64: `gregs`, indexed by the `REG_*` constants (not Linux's
/// numbers).
#[cfg(all(target_arch = "x86_64", target_os = "illumos"))]
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
        gregs[libc::REG_RIP as usize] = rip as _;
        gregs[libc::REG_RSP as usize] = rsp as _;
        gregs[libc::REG_RBP as usize] = rbp as _;
        gregs[libc::REG_RDI as usize] = rdi as _;
        gregs[libc::REG_RSI as usize] = rsi as _;
    }
}
