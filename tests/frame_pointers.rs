//! The frame-pointer chain runs from inside a coroutine into its resumer.
//!
//! Only meaningful when everything is built with frame pointers, so it only
//! exists when built with
//! `RUSTFLAGS="-C force-frame-pointers=yes --cfg switchback_frame_pointers"`,
//! as `.ci/run` does.
#![cfg(all(
    switchback_frame_pointers,
    any(target_arch = "x86_64", target_arch = "aarch64")
))]

use switchback::{on_stack, stack::DefaultStack, Coroutine};

/// Return addresses found by following `rbp` from the caller's frame, as a
/// profiler that walks frame records would.
#[inline(never)]
fn frame_pointer_walk() -> Vec<usize> {
    let mut fp: usize;
    // SAFETY: reads the frame pointer register; no memory is touched.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        core::arch::asm!(
            // Out: the register = rbp (this function's frame record). No
            // stack use, no memory access, nothing else changed.
            "mov {}, rbp",
            out(reg) fp,
            options(nomem, nostack)
        )
    };
    // SAFETY: as above.
    #[cfg(target_arch = "aarch64")]
    unsafe {
        core::arch::asm!(
            // Out: the register = x29 (this function's frame record). No
            // stack use, no memory access, nothing else changed.
            "mov {}, x29",
            out(reg) fp,
            options(nomem, nostack)
        )
    };
    let mut addresses = Vec::new();
    // Both architectures' frame records are {previous frame pointer,
    // return address}, pointed at by the frame pointer (rbp, x29).
    while fp != 0 && addresses.len() < 256 {
        // SAFETY: with frame pointers forced, every frame pointer in the
        // chain points at a frame record; a broken chain faults here, which
        // fails the test.
        let (next, ret) = unsafe { (*(fp as *const usize), *((fp + 8) as *const usize)) };
        if ret == 0 {
            break;
        }
        addresses.push(strip_pointer_authentication(ret));
        fp = next;
    }
    addresses
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

#[cfg(not(target_arch = "aarch64"))]
fn strip_pointer_authentication(address: usize) -> usize {
    address
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
    let closure = position("chain_continues_from_coroutine_into_resumer::{{closure}}")
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
