#!/usr/bin/env bash
# The UEFI test application (uefi-test/) booted under QEMU with real UEFI
# firmware: OVMF on x86-64 and x86 (i686), AAVMF on AArch64.
#
#   scripts/uefi-run.sh [ARCH...]     build the application (debug and release,
#                                     warnings denied) and boot it, for each
#                                     ARCH: x86_64, aarch64, i686 (default: all)
#
# Each build is copied to EFI/BOOT/BOOTX64.EFI (BOOTAA64.EFI) on a FAT
# directory that QEMU shows the firmware as a disk; the firmware boots it as
# removable media, the application prints `PASS <case>` or `FAIL <case>`
# per case and a summary line to the console (the serial port: no display
# is attached), then shuts the machine down. A run fails unless it printed
# the case count, one PASS per case, no FAIL, and the summary
# `<target>: N passed, 0 failed`, within UEFI_TIMEOUT seconds (default 120;
# a run takes seconds under software emulation). The full console log of a
# failed run is printed. .ci/install.sh installs QEMU, the firmware and the
# rustup targets.
#
# rustup ships i686-unknown-uefi's core for nightly only, so that target
# is built with nightly. Debian's only OVMF for IA-32 is the build with
# Secure Boot support, which needs a q35 machine with SMM and secure flash;
# its variable store has no keys enrolled, so Secure Boot stays off.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
TIMEOUT=${UEFI_TIMEOUT:-120}

# Firmware images: the code (read-only flash) and the variable store
# template (copied for each run, since the firmware writes it).
OVMF_CODE=/usr/share/OVMF/OVMF_CODE_4M.fd
OVMF_VARS=/usr/share/OVMF/OVMF_VARS_4M.fd
AAVMF_CODE=/usr/share/AAVMF/AAVMF_CODE.fd
AAVMF_VARS=/usr/share/AAVMF/AAVMF_VARS.fd
OVMF32_CODE=/usr/share/OVMF/OVMF32_CODE_4M.secboot.fd
OVMF32_VARS=/usr/share/OVMF/OVMF32_VARS_4M.fd

target_dir=${CARGO_TARGET_DIR:-$ROOT/target}/uefi-test
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Boots the application built for ARCH in PROFILE; fails unless every case
# passed.
run() {
    local arch=$1 profile=$2 target boot qemu toolchain=()
    target=$arch-unknown-uefi
    case $arch in
    x86_64)
        boot=BOOTX64.EFI
        qemu=(qemu-system-x86_64
            -drive "if=pflash,format=raw,readonly=on,file=$OVMF_CODE"
            -drive "if=pflash,format=raw,file=$work/vars-$arch.fd")
        cp "$OVMF_VARS" "$work/vars-$arch.fd"
        ;;
    aarch64)
        boot=BOOTAA64.EFI
        qemu=(qemu-system-aarch64 -M virt -cpu cortex-a57
            -drive "if=pflash,format=raw,readonly=on,file=$AAVMF_CODE"
            -drive "if=pflash,format=raw,file=$work/vars-$arch.fd")
        cp "$AAVMF_VARS" "$work/vars-$arch.fd"
        ;;
    i686)
        boot=BOOTIA32.EFI
        toolchain=(+nightly)
        qemu=(qemu-system-i386 -machine q35,smm=on
            -global driver=cfi.pflash01,property=secure,value=on
            -drive "if=pflash,format=raw,readonly=on,file=$OVMF32_CODE"
            -drive "if=pflash,format=raw,file=$work/vars-$arch.fd")
        cp "$OVMF32_VARS" "$work/vars-$arch.fd"
        ;;
    *)
        echo "unknown architecture $arch (x86_64, aarch64 or i686)" >&2
        return 2
        ;;
    esac

    local flags=()
    [[ $profile == release ]] && flags=(--release)
    echo "+ cargo ${toolchain[*]:+${toolchain[*]} }build${flags[*]:+ ${flags[*]}} --target $target (uefi-test)"
    (
        cd "$ROOT/uefi-test"
        CARGO_TARGET_DIR=$target_dir RUSTFLAGS="-D warnings" \
            cargo "${toolchain[@]}" build -q "${flags[@]}" --target "$target"
    )

    local disk=$work/disk-$arch-$profile log=$work/console-$arch-$profile.log status=0
    mkdir -p "$disk/EFI/BOOT"
    cp "$target_dir/$target/$profile/switchback-uefi-test.efi" "$disk/EFI/BOOT/$boot"
    echo "+ ${qemu[0]} ... $boot ($target, $profile)"
    timeout "$TIMEOUT" "${qemu[@]}" -m 256 -nodefaults -display none -no-reboot \
        -serial stdio -drive "if=none,id=disk,format=raw,file=fat:rw:$disk" \
        -device virtio-blk-pci,drive=disk </dev/null >"$log" 2>&1 || status=$?

    # The console speaks a terminal: drop carriage returns and escape
    # sequences before reading it.
    local lines cases passes fails
    lines=$(tr -d '\r' <"$log" | sed 's/\x1b\[[0-9;=?]*[A-Za-z]//g')
    grep -E '^(PASS|FAIL) |^switchback UEFI test|^[a-z0-9_]+-unknown-uefi: ' <<<"$lines" || true
    cases=$(sed -n 's/^switchback UEFI test on .*: \([0-9]*\) cases$/\1/p' <<<"$lines")
    passes=$(grep -c '^PASS ' <<<"$lines" || true)
    fails=$(grep -c '^FAIL ' <<<"$lines" || true)
    local why=
    if ((status == 124)); then
        why="no shutdown within ${TIMEOUT}s"
    elif ((status != 0)); then
        why="QEMU exited with status $status"
    elif [[ -z $cases ]]; then
        why="the application did not start"
    elif ((fails > 0 || passes != cases)); then
        why="$passes of $cases cases passed, $fails failed"
    elif ! grep -qx "$target: $cases passed, 0 failed" <<<"$lines"; then
        why="no summary line"
    fi
    if [[ -n $why ]]; then
        echo "--- console of $target ($profile) ---" >&2
        tr -d '\r' <"$log" >&2
        echo "--- $target ($profile): FAILED: $why" >&2
        return 1
    fi
    echo "$target ($profile): all $cases cases passed under ${qemu[0]}"
}

archs=("$@")
((${#archs[@]})) || archs=(x86_64 aarch64 i686)
failed=0
for arch in "${archs[@]}"; do
    for profile in debug release; do
        run "$arch" "$profile" || failed=1
    done
done
exit "$failed"
