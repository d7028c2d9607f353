//! Compile-fail tests (trybuild): scoped coroutines cannot outlive their borrows, and Send/Sync bounds hold.
//!
//! The expected compiler output is in `tests/compile-fail/*.stderr`;
//! regenerate it with
//! `TRYBUILD=overwrite cargo test --test compile_fail -- --ignored` and check
//! the diff by reading it.
//!
//! Ignored by default: trybuild builds a project of its own, which takes a
//! minute or more on a cold cache. The same cases run as `compile_fail`
//! doctests pinned to their error codes (`src/compile_fail_doctests.rs`),
//! so `cargo test` still checks that each fails to compile; CI runs this
//! test too, to check the exact messages.

#![cfg(all(target_arch = "x86_64", target_os = "linux"))] // trybuild is a host-only dev-dependency

#[test]
#[ignore = "slow (builds a separate project); CI runs it with --ignored"]
fn compile_fail() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/compile-fail/*.rs");
}
