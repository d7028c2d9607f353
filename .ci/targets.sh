#!/usr/bin/env bash
# The targets other than the host, and how CI checks each: the README's
# target table lists exactly these.
#
#   bash .ci/targets.sh run       the whole test suite and the examples
#                                 under qemu-user, for each RUN_TARGETS entry
#   bash .ci/targets.sh no-std    no-std-check/ built for each NO_STD_TARGETS
#                                 entry (debug and release), so the asm is
#                                 assembled for it
#   bash .ci/targets.sh objects   the library and no-std-check compiled for
#                                 each OBJECT_TARGETS entry (no linker here),
#                                 and the library and tests compiled for each
#                                 WINDOWS_OBJECT_TARGETS entry
#   bash .ci/targets.sh list      print the tables
#
# `run` installs the cross toolchains itself (scripts/cross.sh --install).
# A target passes only if its `test result:` lines show tests ran and none
# failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

# Linux targets whose whole suite runs under qemu-user (scripts/cross.sh has
# the linker, runner and sysroot of each).
RUN_TARGETS=(
    aarch64-unknown-linux-gnu
    i686-unknown-linux-gnu
    armv7-unknown-linux-gnueabihf
    thumbv7neon-unknown-linux-gnueabihf
    arm-unknown-linux-gnueabihf
    riscv64gc-unknown-linux-gnu
    s390x-unknown-linux-gnu
    powerpc64le-unknown-linux-gnu
    powerpc64-unknown-linux-gnu
)

# Targets without std: the crate with no features, instantiated by
# no-std-check/.
NO_STD_TARGETS=(
    x86_64-unknown-none
    riscv32imac-unknown-none-elf
    riscv64imac-unknown-none-elf
    thumbv7em-none-eabihf
    thumbv6m-none-eabi
    aarch64-unknown-none
)

# Targets compiled but not run here: "triple toolchain" (nightly builds std
# or core from source where rustup ships none).
OBJECT_TARGETS=(
)

# Windows targets with no runner here (no MSVC or LLVM-mingw linker; no
# 32-bit Wine: its i386 packages do not install beside this machine's amd64
# libraries): the library compiled to objects with the default features, in
# release, and with `unwind` alone, so that every asm block is assembled
# with the std code paths, and each test file compiled to an object too.
# The -gnu ones are linked by mingw, so their test binaries and examples
# are built whole.
WINDOWS_OBJECT_TARGETS=(
    i686-pc-windows-gnu
    i686-pc-windows-msvc
    aarch64-pc-windows-msvc
    aarch64-pc-windows-gnullvm
    x86_64-pc-windows-msvc
)

# Targets with a script of their own (what each checks is in its header).
SCRIPTED_TARGETS=(
    "loongarch64-unknown-linux-gnu scripts/loongarch64-build.sh"
    "aarch64-unknown-linux-gnu scripts/aarch64-branch-protection.sh"
)

run() {
    echo "+ $*"
    "$@"
}

# Fails unless LOG shows at least one passing test binary and no failure.
require_tests_ran() {
    local log=$1 what=$2 passed
    if grep -q "^test result: FAILED" "$log"; then
        echo "$what: tests failed" >&2
        return 1
    fi
    passed=$(grep -E "^test result: ok\. [0-9]+ passed" "$log" |
        awk '{ sum += $4 } END { print sum + 0 }')
    if ((passed == 0)); then
        echo "$what: no test ran (no 'test result: ok. N passed' line with N > 0)" >&2
        return 1
    fi
    echo "$what: $passed tests passed"
}

run_targets() {
    ((${#RUN_TARGETS[@]})) || return 0
    run bash scripts/cross.sh --install "${RUN_TARGETS[@]}"
    local target log out failed=()
    log=$(mktemp)
    out=$(mktemp -d)
    for target in "${RUN_TARGETS[@]}"; do
        echo
        echo "-- $target"
        if ! run bash scripts/cross.sh "$target" test --lib --tests 2>&1 | tee "$log" ||
            ! require_tests_ran "$log" "$target"; then
            failed+=("$target (tests)")
            continue
        fi
        local name examples_ok=1
        for name in basic panic trap; do
            if ! bash scripts/cross.sh "$target" run -q --example "$name" \
                >"$out/$name.out" 2>"$out/$name.err" ||
                ! diff -u ".ci/expected/$name.txt" "$out/$name.out"; then
                echo "$target: example $name failed or printed something else" >&2
                cat "$out/$name.err" >&2
                failed+=("$target (example $name)")
                examples_ok=0
            fi
        done
        if ! bash scripts/cross.sh "$target" run -q --example backtrace >"$out/bt.out" 2>&1 ||
            ! grep -q sub_function "$out/bt.out"; then
            echo "$target: the backtrace example does not reach sub_function" >&2
            cat "$out/bt.out" >&2
            failed+=("$target (example backtrace)")
            examples_ok=0
        fi
        ((examples_ok)) && echo "$target: examples print their expected output"
        # The frame-pointer chain (tests/frame_pointers.rs exists only with
        # this cfg); s390x keeps a back chain only with +backchain. Skipped
        # for targets whose std is built from source (it would be built
        # again with these flags).
        if awk -v t="$target" '$1 == t && $5 == "nightly" { found = 1 } END { exit !found }' \
            scripts/cross.sh; then
            continue
        fi
        local flags="-C force-frame-pointers=yes --cfg switchback_frame_pointers"
        [[ $target == s390x-* ]] && flags+=" -C target-feature=+backchain"
        if ! RUSTFLAGS="$flags" CARGO_TARGET_DIR="$TARGET_DIR/frame-pointers" \
            bash scripts/cross.sh "$target" test --test frame_pointers 2>&1 | tee "$log" ||
            ! require_tests_ran "$log" "$target frame pointers"; then
            failed+=("$target (frame pointers)")
        fi
    done
    rm -rf "$log" "$out"
    if ((${#failed[@]})); then
        printf 'failed: %s\n' "${failed[@]}" >&2
        return 1
    fi
}

no_std_targets() {
    local target installed
    installed=$(rustup target list --installed)
    for target in "${NO_STD_TARGETS[@]}"; do
        grep -qx "$target" <<<"$installed" || run rustup target add "$target"
        (
            cd no-std-check
            run env CARGO_TARGET_DIR="$TARGET_DIR/no-std-check" cargo build --target "$target"
            run env CARGO_TARGET_DIR="$TARGET_DIR/no-std-check" cargo build --release --target "$target"
        )
    done
}

object_targets() {
    local entry target toolchain script
    for entry in "${SCRIPTED_TARGETS[@]}"; do
        read -r target script <<<"$entry"
        run bash "$script" --install
    done
    for entry in "${OBJECT_TARGETS[@]}"; do
        read -r target toolchain <<<"$entry"
        if [[ $toolchain == nightly ]]; then
            (
                cd no-std-check
                run env CARGO_TARGET_DIR="$TARGET_DIR/objects" \
                    cargo +nightly build -Zbuild-std=core --target "$target"
            )
        else
            rustup target list --installed | grep -qx "$target" || run rustup target add "$target"
            (
                cd no-std-check
                run env CARGO_TARGET_DIR="$TARGET_DIR/objects" cargo build --target "$target"
            )
        fi
    done
}

windows_objects() {
    local target flags test installed
    installed=$(rustup target list --installed)
    for target in "${WINDOWS_OBJECT_TARGETS[@]}"; do
        grep -qx "$target" <<<"$installed" || run rustup target add "$target"
        local cargo=(env CARGO_TARGET_DIR="$TARGET_DIR/windows-objects" cargo)
        for flags in "" "--release" "--no-default-features --features unwind"; do
            # shellcheck disable=SC2086 # the flags are words
            run "${cargo[@]}" rustc -q --lib --target "$target" $flags -- --emit=obj
        done
        if [[ $target == *-windows-gnu ]]; then
            # The mingw cross gcc is the linker (Debian's package names it
            # by architecture: gcc-mingw-w64-i686, gcc-mingw-w64-x86-64).
            if ! command -v "${target%%-*}-w64-mingw32-gcc" >/dev/null; then
                local arch=${target%%-*}
                run sudo_apt_install "gcc-mingw-w64-${arch//_/-}"
            fi
            run "${cargo[@]}" test -q --no-run --target "$target"
            run "${cargo[@]}" build -q --examples --target "$target"
        else
            # No linker: `-C linker=true` lets rustc finish after writing
            # the object of each test file.
            for test in tests/*.rs; do
                test=$(basename "$test" .rs)
                run "${cargo[@]}" rustc -q --test "$test" --target "$target" -- \
                    --emit=obj -C linker=true
            done
        fi
    done
}

# Installs Debian packages (with sudo when not root).
sudo_apt_install() {
    local sudo=()
    if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null; then
        sudo=(sudo)
    fi
    "${sudo[@]}" apt-get update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}

case "${1:-}" in
run) run_targets ;;
no-std) no_std_targets ;;
objects)
    object_targets
    windows_objects
    ;;
list)
    printf 'run under qemu: %s\n' "${RUN_TARGETS[@]}"
    printf 'no_std build:   %s\n' "${NO_STD_TARGETS[@]}"
    printf 'compiled:       %s\n' "${OBJECT_TARGETS[@]}"
    printf 'scripted:       %s\n' "${SCRIPTED_TARGETS[@]}"
    printf 'windows objects: %s\n' "${WINDOWS_OBJECT_TARGETS[@]}"
    ;;
*)
    sed -n '2,16p' "$0" >&2
    exit 2
    ;;
esac
