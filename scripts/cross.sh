#!/usr/bin/env bash
# Cross-target builds and test runs under qemu-user.
#
#   scripts/cross.sh TRIPLE CARGO-ARGS...    run `cargo CARGO-ARGS --target TRIPLE`
#                                            with the target's linker and qemu runner
#
# Example: scripts/cross.sh aarch64-unknown-linux-gnu test --test values
#
# The rows (which Debian cross gcc links each target, which qemu-user
# binary runs it, whether nightly builds its std) are the qemu rows of the
# target table, src/arch/targets.rs; `cargo xtask cross` (xtask/src/ci.rs)
# does the work. i686 runs natively where the x86-64 kernel can load it.
# .ci/install.sh installs every row's packages and rustup target.
set -euo pipefail

if (($# < 2)); then
    sed -n '2,13p' "$0" >&2
    exit 2
fi
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
exec cargo run --quiet --manifest-path "$root/xtask/Cargo.toml" -- cross "$@"
