//! The frame-pointer chain runs from inside a coroutine into its resumer.
//!
//! Only meaningful when everything is built with frame pointers, so it only
//! exists when built with
//! `RUSTFLAGS="-C force-frame-pointers=yes --cfg switchback_frame_pointers"`,
//! as `.ci/run` does.
#![cfg(all(
    switchback_frame_pointers,
    any(target_arch = "x86_64", target_arch = "x86")
))]

use switchback::{on_stack, stack::DefaultStack, Coroutine};

/// This function's frame pointer: the address of its frame record.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn frame_pointer() -> usize {
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
    rbp
}

/// This function's frame pointer: the address of its frame record.
#[cfg(target_arch = "x86")]
#[inline(always)]
fn frame_pointer() -> usize {
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
    ebp
}

/// Return addresses found by following the frame pointer from the caller's
/// frame, as a profiler that walks frame records would. On x86 and x86-64 a
/// frame record is {previous frame pointer, return address}.
#[inline(never)]
fn frame_pointer_walk() -> Vec<usize> {
    let mut fp = frame_pointer();
    let word = core::mem::size_of::<usize>();
    let mut addresses = Vec::new();
    while fp != 0 && addresses.len() < 256 {
        // SAFETY: with frame pointers forced, every frame pointer in the
        // chain points at a frame record {previous frame pointer, return
        // address}; a broken chain faults here, which fails the test.
        let (next, ret) = unsafe { (*(fp as *const usize), *((fp + word) as *const usize)) };
        if ret == 0 {
            break;
        }
        addresses.push(ret);
        fp = next;
    }
    addresses
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
