//! The frame-pointer chain runs from inside a coroutine into its resumer.
//!
//! Only meaningful when everything is built with frame pointers, so it only
//! exists when built with
//! `RUSTFLAGS="-C force-frame-pointers=yes --cfg switchback_frame_pointers"`,
//! as `.ci/run` does.
//!
//! PowerPC64 and s390x walk the back chain instead of frame records; on
//! s390x it exists only with `-C target-feature=+backchain` added to those
//! flags.
//!
//! On 32-bit ARM, LLVM's frame record is `{previous frame pointer, return
//! address}` in both instruction sets, but the frame pointer is r7 in Thumb
//! state and r11 in ARM state; the walk follows the one of the state this
//! test was compiled for. Code that is not built with LLVM's frame pointers
//! (glibc, GCC's ARM-state records, which point at the saved lr instead)
//! breaks the chain beyond the test's own frames, so the walk stops at the
//! first record outside readable memory.
//!
//! Not on Windows: there the root's frame pointer addresses the machine
//! frame its SEH unwind info reads (see `src/arch/x86_64_windows.rs`), so a
//! walk of frame records stops at the coroutine's root; Windows' own tools
//! walk the unwind tables, which continue into the resumer (tests/backtrace.rs).
//!
//! Every architecture of the target table (`src/arch/targets.rs`) has a
//! walk below; the crate builds for no other, so no list of them is kept
//! here (a new architecture without a walk fails to compile this test).
#![cfg(all(switchback_frame_pointers, not(windows)))]

use switchback::{on_stack, stack::DefaultStack, Coroutine};

/// Return addresses found by following `rbp` from the caller's frame, as a
/// profiler that walks frame records would.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
fn frame_pointer_walk() -> Vec<usize> {
    let rbp: usize;
    // SAFETY: reads the frame pointer register; no memory is touched.
    unsafe {
        core::arch::asm!(
            // Out: the register = rbp (this function's frame record). No
            // stack use, no memory access, nothing else changed.
            "mov {}, rbp",
            out(reg) rbp,
            options(nomem, nostack)
        )
    };
    // A record {previous rbp, return address} lies at rbp.
    walk(rbp, 0, 8)
}

/// Return addresses found by following `ebp` from the caller's frame, as a
/// profiler that walks frame records would.
#[cfg(target_arch = "x86")]
#[inline(never)]
fn frame_pointer_walk() -> Vec<usize> {
    let ebp: usize;
    // SAFETY: reads the frame pointer register; no memory is touched.
    unsafe {
        core::arch::asm!(
            // Out: the register = ebp (this function's frame record). No
            // stack use, no memory access, nothing else changed.
            "mov {}, ebp",
            out(reg) ebp,
            options(nomem, nostack)
        )
    };
    // A record {previous ebp, return address} lies at ebp.
    walk(ebp, 0, 4)
}

/// Return addresses found by following x29 from the caller's frame, as a
/// profiler that walks frame records would, without the pointer
/// authentication codes that `-Zbranch-protection=pac-ret` signs them with.
#[cfg(target_arch = "aarch64")]
#[inline(never)]
fn frame_pointer_walk() -> Vec<usize> {
    let fp: usize;
    // SAFETY: reads the frame pointer register; no memory is touched.
    unsafe {
        core::arch::asm!(
            // Out: the register = x29 (this function's frame record). No
            // stack use, no memory access, nothing else changed.
            "mov {}, x29",
            out(reg) fp,
            options(nomem, nostack)
        )
    };
    // A record {previous x29, return address} lies at x29.
    walk(fp, 0, 8)
        .into_iter()
        .map(strip_pointer_authentication)
        .collect()
}

/// The return address without a pointer-authentication code, which functions
/// built with `-Zbranch-protection=pac-ret` sign before saving it.
#[cfg(target_arch = "aarch64")]
fn strip_pointer_authentication(mut address: usize) -> usize {
    // SAFETY: `xpaclri` (hint #7) only rewrites x30; a no-op without PAuth.
    unsafe {
        core::arch::asm!(
            // In/out: x30 = the address, without its PAC bits on return.
            // No stack use, no memory access, nothing else changed.
            "hint #7",
            inout("x30") address,
            options(nomem, nostack, pure)
        )
    };
    address
}

/// Return addresses found by following the frame pointer from the caller's
/// frame, as a profiler that walks frame records would.
#[cfg(any(target_arch = "riscv64", target_arch = "riscv32"))]
#[inline(never)]
fn frame_pointer_walk() -> Vec<usize> {
    let fp: usize;
    // SAFETY: reads the frame pointer register; no memory is touched.
    unsafe {
        core::arch::asm!(
            // Out: the register = s0 (this function's frame pointer). No
            // stack use, no memory access, nothing else changed.
            "mv {}, s0",
            out(reg) fp,
            options(nomem, nostack)
        )
    };
    // The psABI's record {previous s0, return address} lies just below s0.
    let w = core::mem::size_of::<usize>() as isize;
    walk(fp, -2 * w, -w)
}

/// Return addresses found by following the frame pointer from the caller's
/// frame, as a profiler that walks frame records would.
#[cfg(target_arch = "loongarch64")]
#[inline(never)]
fn frame_pointer_walk() -> Vec<usize> {
    let fp: usize;
    // SAFETY: reads the frame pointer register; no memory is touched.
    unsafe {
        core::arch::asm!(
            // Out: the register = $fp (this function's frame pointer). No
            // stack use, no memory access, nothing else changed.
            "move {}, $fp",
            out(reg) fp,
            options(nomem, nostack)
        )
    };
    // The record {previous fp, return address} lies just below fp.
    walk(fp, -16, -8)
}

/// Follows frame records from `fp`: the previous frame pointer is at
/// `fp + next_at`, the return address at `fp + ret_at`.
fn walk(mut fp: usize, next_at: isize, ret_at: isize) -> Vec<usize> {
    let mut addresses = Vec::new();
    while fp != 0 && addresses.len() < 256 {
        // SAFETY: with frame pointers forced, every frame pointer in the
        // chain locates a frame record {previous fp, return address}; a
        // broken chain faults here, which fails the test.
        let (next, ret) = unsafe {
            (
                *(fp.wrapping_add_signed(next_at) as *const usize),
                *(fp.wrapping_add_signed(ret_at) as *const usize),
            )
        };
        if ret == 0 {
            break;
        }
        addresses.push(ret);
        fp = next;
    }
    addresses
}

/// Return addresses found by following the back chain from the caller's
/// frame, as a profiler would: the word at a frame's stack pointer is the
/// stack pointer of its caller's frame, and the return address into the
/// caller is where its callee saved it in the caller's frame (the LR save
/// doubleword at 16 on PowerPC64, the r14 slot at 112 on s390x).
#[cfg(any(target_arch = "powerpc64", target_arch = "s390x"))]
#[inline(never)]
fn frame_pointer_walk() -> Vec<usize> {
    #[cfg(target_arch = "powerpc64")]
    const RETURN_ADDRESS_OFFSET: usize = 16;
    #[cfg(target_arch = "s390x")]
    const RETURN_ADDRESS_OFFSET: usize = 112;
    let mut sp: usize;
    // SAFETY: reads the stack pointer register; no memory is touched.
    unsafe {
        #[cfg(target_arch = "powerpc64")]
        core::arch::asm!(
            // Out: the register = r1. No stack use, no memory access,
            // nothing else changed.
            "mr {}, 1",
            out(reg) sp,
            options(nomem, nostack)
        );
        #[cfg(target_arch = "s390x")]
        core::arch::asm!(
            // Out: the register = r15. No stack use, no memory access,
            // nothing else changed.
            "lgr {}, %r15",
            out(reg) sp,
            options(nomem, nostack)
        );
    }
    let mut addresses = Vec::new();
    while addresses.len() < 256 {
        // SAFETY: every frame up to the test's own holds a back chain (on
        // s390x, frames built with the backchain feature; the walk stops at
        // the test function, before the test harness's frames, which do
        // not); a broken chain faults here, which fails the test.
        let next = unsafe { *(sp as *const usize) };
        if next == 0 {
            break;
        }
        // SAFETY: as above; `next` is a frame, whose save area holds the
        // return address.
        let ret = unsafe { *((next + RETURN_ADDRESS_OFFSET) as *const usize) };
        if ret == 0 {
            break;
        }
        addresses.push(ret);
        #[cfg(target_arch = "s390x")]
        if is_test_function(ret) {
            break;
        }
        sp = next;
    }
    addresses
}

/// Whether `address` is in one of the test functions (not their closures).
#[cfg(target_arch = "s390x")]
fn is_test_function(address: usize) -> bool {
    let mut found = false;
    backtrace::resolve((address - 1) as *mut std::ffi::c_void, |symbol| {
        if let Some(name) = symbol.name() {
            let name = format!("{name:#}");
            found |= name.ends_with("chain_continues_from_coroutine_into_resumer")
                || name.ends_with("caller_of_on_stack");
        }
    });
    found
}

/// Return addresses found by following r7 (Thumb state) or r11 (ARM
/// state) from the caller's frame, as a profiler that walks frame records
/// would, checking that each record lies in readable memory.
#[cfg(target_arch = "arm")]
#[inline(never)]
fn frame_pointer_walk() -> Vec<usize> {
    let (r7, r11): (usize, usize);
    // SAFETY: reads two registers; no memory is touched.
    unsafe {
        core::arch::asm!(
            // Out: the registers = r7 and r11 (one of them this function's
            // frame record). No stack use, no memory access.
            "mov {}, r7",
            "mov {}, r11",
            out(reg) r7,
            out(reg) r11,
            options(nomem, nostack)
        )
    };
    let thumb = frame_pointer_walk as *const () as usize & 1 != 0;
    let mut fp = if thumb { r7 } else { r11 };
    let readable = readable_ranges();
    let mut addresses = Vec::new();
    while fp != 0 && fp % 4 == 0 && addresses.len() < 256 {
        if !readable
            .iter()
            .any(|&(start, end)| start <= fp && fp + 8 <= end)
        {
            break;
        }
        // SAFETY: the record lies in readable memory (checked above).
        let (next, ret) = unsafe { (*(fp as *const usize), *((fp + 4) as *const usize)) };
        if ret == 0 {
            break;
        }
        addresses.push(ret);
        fp = next;
    }
    addresses
}

/// The readable mappings of this process, from /proc/self/maps.
#[cfg(target_arch = "arm")]
fn readable_ranges() -> Vec<(usize, usize)> {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let (start, end) = parts.next()?.split_once('-')?;
            parts.next()?.starts_with('r').then_some(())?;
            Some((
                usize::from_str_radix(start, 16).ok()?,
                usize::from_str_radix(end, 16).ok()?,
            ))
        })
        .collect()
}

fn symbol_names(addresses: &[usize]) -> Vec<String> {
    let mut names = Vec::new();
    for &address in addresses {
        backtrace::resolve((address - 1) as *mut std::ffi::c_void, |symbol| {
            if let Some(name) = symbol.name() {
                names.push(name.to_string());
            }
        });
    }
    names
}

#[inline(never)]
fn resumer_of_coroutine(coroutine: &mut Coroutine<(), (), Vec<usize>>) -> Vec<usize> {
    coroutine.resume(()).as_return().unwrap()
}

#[test]
fn chain_continues_from_coroutine_into_resumer() {
    let mut coroutine = Coroutine::new(|_, ()| frame_pointer_walk());
    let names = symbol_names(&resumer_of_coroutine(&mut coroutine));
    let position = |needle: &str| names.iter().position(|name| name.contains(needle));
    // Legacy mangling demangles closures as `{{closure}}`, v0 mangling
    // (nightly's default, as in -Zbuild-std builds) as `{closure#0}`.
    let closure = position("chain_continues_from_coroutine_into_resumer::{{closure}}")
        .or_else(|| position("chain_continues_from_coroutine_into_resumer::{closure#0}"))
        .unwrap_or_else(|| panic!("coroutine frame missing from {names:#?}"));
    let resumer = position("resumer_of_coroutine")
        .unwrap_or_else(|| panic!("resumer frame missing from {names:#?}"));
    assert!(closure < resumer, "{names:#?}");
    assert!(position("chain_continues_from_coroutine_into_resumer").unwrap() <= resumer);
}

#[inline(never)]
fn caller_of_on_stack() -> Vec<usize> {
    on_stack(DefaultStack::new(64 * 1024).unwrap(), frame_pointer_walk)
}

#[test]
fn chain_continues_from_on_stack_into_caller() {
    let names = symbol_names(&caller_of_on_stack());
    assert!(
        names.iter().any(|name| name.contains("caller_of_on_stack")),
        "{names:#?}"
    );
}
