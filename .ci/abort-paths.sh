#!/usr/bin/env bash
# Dropping a suspended coroutine where it cannot be unwound must say why
# before aborting: in a program built with panic = "abort", and in one built
# without the `unwind` feature. Builds two tiny programs against this
# checkout (in $CARGO_TARGET_DIR/abort-paths) and checks that each dies of
# SIGABRT with the crate's message on stderr.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
target_dir="${CARGO_TARGET_DIR:-$repo/target}/abort-paths"

# make_program NAME FEATURES PROFILE_PANIC
make_program() {
    mkdir -p "$work/$1/src"
    cat >"$work/$1/Cargo.toml" <<TOML
[package]
name = "$1"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
switchback = { path = "$repo", default-features = false, features = [$2] }

[profile.dev]
panic = "$3"

[workspace]
TOML
    cat >"$work/$1/src/main.rs" <<'RUST'
use switchback::Coroutine;

fn main() {
    let mut co: Coroutine<(), u32, ()> = Coroutine::new(|yielder, ()| {
        let _owned = String::from("needs dropping");
        yielder.suspend(1);
    });
    assert_eq!(co.resume(()).as_yield(), Some(1));
    drop(co);
    println!("dropped without aborting");
}
RUST
}

# expect_abort NAME MESSAGE
expect_abort() {
    local status=0
    echo "+ cargo run ($1)"
    (cd "$work/$1" && CARGO_TARGET_DIR="$target_dir" cargo build -q)
    (cd "$work/$1" && CARGO_TARGET_DIR="$target_dir" cargo run -q) \
        >"$work/$1.out" 2>"$work/$1.err" || status=$?
    if [[ $status -ne 134 ]]; then
        echo "$1: expected SIGABRT (exit status 134), got $status" >&2
        cat "$work/$1.out" "$work/$1.err" >&2
        return 1
    fi
    if ! grep -qF "$2" "$work/$1.err"; then
        echo "$1: stderr does not explain the abort; expected: $2" >&2
        cat "$work/$1.err" >&2
        return 1
    fi
    echo "$1: aborted with: $(grep -F "$2" "$work/$1.err" | head -1)"
}

make_program panic-abort '"default-stack", "unwind"' abort
expect_abort panic-abort 'this program is built with panic = "abort", so its stack cannot be unwound'

make_program no-unwind-feature '"default-stack"' unwind
expect_abort no-unwind-feature 'unwinding its stack needs the `unwind` feature'
