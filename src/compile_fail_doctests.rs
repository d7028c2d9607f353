//! The compile-fail cases of `tests/compile-fail/` as `compile_fail`
//! doctests pinned to their error codes, so that `cargo test` checks them
//! quickly (trybuild, which also checks the exact messages, runs in CI:
//! `cargo test --test compile_fail -- --ignored`).

#[doc = concat!("```compile_fail,E0373\n", include_str!("../tests/compile-fail/coroutine_non_static_closure.rs"), "```")]
pub struct CoroutineNonStaticClosure;

#[doc = concat!("```compile_fail,E0521\n", include_str!("../tests/compile-fail/coroutine_non_static_return.rs"), "```")]
pub struct CoroutineNonStaticReturn;

#[doc = concat!("```compile_fail,E0277\n", include_str!("../tests/compile-fail/coroutine_not_send.rs"), "```")]
pub struct CoroutineNotSend;

#[doc = concat!("```compile_fail,E0277\n", include_str!("../tests/compile-fail/coroutine_not_sync_with_unsync_stack.rs"), "```")]
pub struct CoroutineNotSyncWithUnsyncStack;

#[doc = concat!("```compile_fail,E0597\n", include_str!("../tests/compile-fail/scoped_dropped_after_borrow_ends.rs"), "```")]
pub struct ScopedDroppedAfterBorrowEnds;

#[doc = concat!("```compile_fail,E0382\n", include_str!("../tests/compile-fail/scoped_forget_coroutine.rs"), "```")]
pub struct ScopedForgetCoroutine;

#[doc = concat!("```compile_fail,E0502\n", include_str!("../tests/compile-fail/scoped_forget_keeps_borrow.rs"), "```")]
pub struct ScopedForgetKeepsBorrow;

#[doc = concat!("```compile_fail\n", include_str!("../tests/compile-fail/scoped_ref_escapes_scope.rs"), "```")]
pub struct ScopedRefEscapesScope;

#[doc = concat!("```compile_fail,E0521\n", include_str!("../tests/compile-fail/scoped_ref_stored_outside.rs"), "```")]
pub struct ScopedRefStoredOutside;

#[doc = concat!("```compile_fail,E0277\n", include_str!("../tests/compile-fail/scoped_ref_to_thread.rs"), "```")]
pub struct ScopedRefToThread;

#[doc = concat!("```compile_fail,E0597\n", include_str!("../tests/compile-fail/scoped_swap_coroutines.rs"), "```")]
pub struct ScopedSwapCoroutines;

#[doc = concat!("```compile_fail,E0521\n", include_str!("../tests/compile-fail/scoped_swap_refs.rs"), "```")]
pub struct ScopedSwapRefs;

#[doc = concat!("```compile_fail,E0277\n", include_str!("../tests/compile-fail/yielder_ref_to_parent_stack.rs"), "```")]
pub struct YielderRefToParentStack;

#[doc = concat!("```compile_fail,E0277\n", include_str!("../tests/compile-fail/yielder_to_thread.rs"), "```")]
pub struct YielderToThread;
