#!/usr/bin/env bash
# LoongArch64 checks that run on a Debian 12 x86-64 machine.
#
#   scripts/loongarch64-build.sh
#
# rustup ships no prebuilt std for the LoongArch targets here and Debian 12
# has no LoongArch cross gcc or glibc, so:
#   1. the library is built for loongarch64-unknown-linux-gnu with nightly's
#      -Zbuild-std;
#   2. the tests and examples are compiled for that target too, so that every
#      asm! block the test suite instantiates is assembled; with no glibc to
#      link against, `true` stands in for the linker (nothing is run);
#   3. no-std-check (debug and release) is built for loongarch64-unknown-none
#      with -Zbuild-std=core;
#   4. no-std-check's `qemu_smoke` example, a freestanding static program
#      that needs no libc, is built for loongarch64-unknown-none and run under
#      qemu-loongarch64-static (debug and release): the context switch really
#      runs, but unwinding, backtraces and traps (which need std) do not.
#
# .ci/install.sh installs what it needs: nightly with rust-src (rustup) and
# qemu-user-static (apt). Builds in the subdirectories la/ and la-nostd/ of
# CARGO_TARGET_DIR (default: the repository's target/).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

run() {
    echo "+ $*"
    "$@"
}

LINUX=loongarch64-unknown-linux-gnu
NONE=loongarch64-unknown-none

# 1 and 2: the Linux target, compiled and assembled but not linked.
export CARGO_TARGET_DIR="$TARGET_DIR/la"
run cargo +nightly build -Zbuild-std=std,panic_unwind --target "$LINUX" --lib
CARGO_TARGET_LOONGARCH64_UNKNOWN_LINUX_GNU_LINKER=true \
    run cargo +nightly build -Zbuild-std=std,panic_unwind --target "$LINUX" --tests --examples

# 3 and 4: no_std, and the freestanding smoke test under qemu.
export CARGO_TARGET_DIR="$TARGET_DIR/la-nostd"
cd "$ROOT/no-std-check"
for profile in dev release; do
    run cargo +nightly build -Zbuild-std=core --target "$NONE" --profile "$profile"
    run cargo +nightly build -Zbuild-std=core --target "$NONE" --profile "$profile" --example qemu_smoke
    dir=$([[ $profile == dev ]] && echo debug || echo release)
    run timeout 120 qemu-loongarch64-static "$CARGO_TARGET_DIR/$NONE/$dir/examples/qemu_smoke"
done
echo "loongarch64-build: ok"
