//! Compile-fail tests (trybuild): scoped coroutines cannot outlive their borrows, and Send/Sync bounds hold.
//!
//! The expected compiler output is in `tests/compile-fail/*.stderr`;
//! regenerate it with `TRYBUILD=overwrite cargo test --test compile_fail`
//! and check the diff by reading it.

#[test]
fn compile_fail() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/compile-fail/*.rs");
}
