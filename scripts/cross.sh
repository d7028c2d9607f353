#!/usr/bin/env bash
# Cross-target builds and test runs under qemu-user.
#
#   scripts/cross.sh TRIPLE CARGO-ARGS...    run `cargo CARGO-ARGS --target TRIPLE`
#                                            with the target's linker and qemu runner
#
# Example: scripts/cross.sh aarch64-unknown-linux-gnu test --test values
#
# Each Linux target row says which Debian cross gcc links it, which qemu-user
# binary runs it and where its sysroot is. Targets whose std rustup does not
# ship here are built with nightly's -Zbuild-std (the row's toolchain column).
# .ci/install.sh installs every row's packages and rustup target.
#
# The musl rows link statically against the musl libc, C runtime and
# libunwind that rustup ships inside the target's std (rustc's
# "self-contained" mode): no Debian libc package (`-`), and so no sysroot
# for qemu's -L; the cross gcc only drives the link. `-` as the prefix keeps
# the host's cc, and `native` as the emulator runs the binaries directly.
set -euo pipefail

# triple | gnu prefix | qemu binary | debian libc package | toolchain
TARGETS="
aarch64-unknown-linux-gnu           aarch64-linux-gnu     qemu-aarch64-static  libc6-dev-arm64-cross   stable
armv7-unknown-linux-gnueabihf       arm-linux-gnueabihf   qemu-arm-static      libc6-dev-armhf-cross   stable
thumbv7neon-unknown-linux-gnueabihf arm-linux-gnueabihf   qemu-arm-static      libc6-dev-armhf-cross   stable
arm-unknown-linux-gnueabihf         arm-linux-gnueabihf   qemu-arm-static      libc6-dev-armhf-cross   nightly
i686-unknown-linux-gnu              i686-linux-gnu        qemu-i386-static     libc6-dev-i386-cross    stable
riscv64gc-unknown-linux-gnu         riscv64-linux-gnu     qemu-riscv64-static  libc6-dev-riscv64-cross stable
s390x-unknown-linux-gnu             s390x-linux-gnu       qemu-s390x-static    libc6-dev-s390x-cross   stable
powerpc64le-unknown-linux-gnu       powerpc64le-linux-gnu qemu-ppc64le-static  libc6-dev-ppc64el-cross stable
powerpc64-unknown-linux-gnu         powerpc64-linux-gnu   qemu-ppc64-static    libc6-dev-ppc64-cross   stable
x86_64-unknown-linux-musl           -                     native               -                       stable
aarch64-unknown-linux-musl          aarch64-linux-gnu     qemu-aarch64-static  -                       stable
"

row() {
    awk -v t="$1" '$1 == t { print; found = 1 } END { exit !found }' <<<"$TARGETS"
}

if (($# < 2)); then
    sed -n '2,12p' "$0" >&2
    exit 2
fi

triple=$1
shift
if ! read -r _ prefix qemu libc_package toolchain < <(row "$triple"); then
    echo "cross.sh: unknown target $triple" >&2
    exit 2
fi
env_triple=$(tr 'a-z-' 'A-Z_' <<<"$triple")
if [[ $prefix != - ]]; then
    export "CARGO_TARGET_${env_triple}_LINKER=$prefix-gcc"
    # The C compiler for build scripts that compile C (backtrace's tests do
    # not, but cc-based crates may).
    export "CC_${triple//-/_}=$prefix-gcc"
fi
# i686 binaries run natively on an x86-64 kernel (IA-32 compatibility
# mode) where Debian's i386 libc provides their loader (.ci/apt-packages.txt
# has it): qemu-i386 7.2 hangs in the first thread creation on AMD EPYC
# hosts (a test binary never gets past its first test). Elsewhere, qemu.
native=false
if [[ $qemu == native ]]; then
    native=true
elif [[ $triple == i686-unknown-linux-gnu && -x /lib/ld-linux.so.2 ]]; then
    echo "cross.sh: $triple runs natively (IA-32 on the x86-64 kernel)" >&2
    native=true
fi
if $native; then
    unset "CARGO_TARGET_${env_triple}_RUNNER" SWITCHBACK_QEMU_RUNNER
else
    # Static binaries (the musl rows) need no sysroot.
    runner=$qemu
    [[ $libc_package != - ]] && runner+=" -L /usr/$prefix"
    export "CARGO_TARGET_${env_triple}_RUNNER=$runner"
    # The tests that re-run their own binary as a child process need the
    # same emulator command (tests/common/mod.rs).
    export SWITCHBACK_QEMU_RUNNER="$runner"
fi

# Under qemu-i386 the trap tests hang when run in parallel (a signal
# handler appears to see another thread's thread-locals); the same binary
# passes in parallel natively, run through the cross ld.so on an x86-64
# kernel. So i686 tests run one at a time.
if [[ $triple == i686-* ]] && ! $native; then
    export RUST_TEST_THREADS=1
fi

subcommand=$1
shift
if [[ $toolchain == nightly ]]; then
    exec cargo +nightly "$subcommand" -Zbuild-std=std,panic_unwind --target "$triple" "$@"
else
    exec cargo "$subcommand" --target "$triple" "$@"
fi
