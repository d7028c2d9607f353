#!/usr/bin/env bash
# Everything CI needs, installed in one place: `bash .ci/install.sh`.
#
# Step 1 of .ci/run runs this; no later step installs anything. It is
# idempotent: an apt package, rustup toolchain, component or target that is
# already there is skipped, so a second run makes no change and needs no
# network. `bash .ci/install.sh --list` prints the lists without installing.
#
# The apt packages are listed in .ci/apt-packages.txt (one per line, with
# the steps that use them); `cargo xtask audit-tools` checks that every
# program a CI run executes comes from one of them, from a package they
# depend on, or from Debian's base system.
# rustup: the stable toolchain's components, and the targets it needs.
STABLE_COMPONENTS=(rustfmt clippy llvm-tools)
STABLE_TARGETS=(
    # no_std, no features.
    x86_64-unknown-none aarch64-unknown-none riscv32imac-unknown-none-elf
    riscv64imac-unknown-none-elf thumbv7em-none-eabihf thumbv6m-none-eabi
    # Run under qemu-user.
    aarch64-unknown-linux-gnu i686-unknown-linux-gnu armv7-unknown-linux-gnueabihf
    thumbv7neon-unknown-linux-gnueabihf riscv64gc-unknown-linux-gnu
    s390x-unknown-linux-gnu powerpc64le-unknown-linux-gnu powerpc64-unknown-linux-gnu
    # musl, statically linked (x86-64 natively, AArch64 under qemu-user).
    x86_64-unknown-linux-musl aarch64-unknown-linux-musl
    # Run under Wine.
    x86_64-pc-windows-gnu
    # Compiled to objects.
    x86_64-apple-darwin aarch64-apple-darwin aarch64-apple-ios
    i686-pc-windows-gnu i686-pc-windows-msvc aarch64-pc-windows-msvc
    aarch64-pc-windows-gnullvm x86_64-pc-windows-msvc
    # The other ELF systems, compiled to objects (those whose std rustup
    # ships; the rest are built with nightly's -Zbuild-std).
    x86_64-unknown-freebsd x86_64-unknown-netbsd x86_64-unknown-illumos
    aarch64-linux-android armv7-linux-androideabi x86_64-linux-android i686-linux-android
    # Booted under QEMU.
    x86_64-unknown-uefi aarch64-unknown-uefi
)
# Nightly: AddressSanitizer, asm-unwind, -Zbuild-std (rust-src), Miri (and
# rust-src for its sysroot), clippy for
# the ELF targets whose std it builds, and the one target rustup ships for
# nightly only.
NIGHTLY=${SWITCHBACK_NIGHTLY:-nightly}
NIGHTLY_COMPONENTS=(rust-src clippy miri)
NIGHTLY_TARGETS=(i686-unknown-uefi)
# The library's minimum supported Rust version (`rust-version` in
# Cargo.toml): step 5 checks the library with it. The dev-dependencies need
# a newer toolchain, so only `cargo check --lib` runs on it.
MSRV=1.88
# Cargo tools, as `name version`, installed with `cargo install --locked`.
CARGO_TOOLS=("cargo-fuzz 0.13.2")

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

mapfile -t APT_PACKAGES < <(sed 's/#.*//' .ci/apt-packages.txt | tr -s ' \t' '\n' | sed '/^$/d')

if [[ ${1:-} == --list ]]; then
    printf 'apt:               %s\n' "${APT_PACKAGES[*]}"
    printf 'stable components: %s\n' "${STABLE_COMPONENTS[*]}"
    printf 'stable targets:    %s\n' "${STABLE_TARGETS[*]}"
    printf '%s components: %s\n' "$NIGHTLY" "${NIGHTLY_COMPONENTS[*]}"
    printf '%s targets:    %s\n' "$NIGHTLY" "${NIGHTLY_TARGETS[*]}"
    printf 'MSRV toolchain:    %s\n' "$MSRV"
    printf 'cargo tools:       %s\n' "${CARGO_TOOLS[*]}"
    exit 0
fi

run() {
    echo "+ $*"
    "$@"
}

sudo_cmd=()
if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null; then
    sudo_cmd=(sudo)
fi

# Prints the entries of list $2.. that are not in the newline-separated set $1.
missing() {
    local have=$1 item
    shift
    for item in "$@"; do
        grep -qx -- "$item" <<<"$have" || echo "$item"
    done
}

# --- apt ---------------------------------------------------------------------
# A package of another architecture is listed as `name:arch` (multiarch);
# that architecture is added to dpkg first.
mapfile -t foreign_archs < <(printf '%s\n' "${APT_PACKAGES[@]}" | sed -n 's/^[^:]*://p' | sort -u)
have_archs=$(dpkg --print-architecture; dpkg --print-foreign-architectures)
mapfile -t archs_missing < <(missing "$have_archs" "${foreign_archs[@]}")
for arch in "${archs_missing[@]}"; do
    run "${sudo_cmd[@]}" dpkg --add-architecture "$arch"
done
# Each installed package by name and by name:arch.
installed_packages=$(dpkg-query -W -f '${db:Status-Abbrev} ${Package} ${Architecture}\n' 2>/dev/null |
    awk '$1 == "ii" { print $2; print $2 ":" $3 }')
mapfile -t apt_missing < <(missing "$installed_packages" "${APT_PACKAGES[@]}")
if ((${#apt_missing[@]})); then
    run "${sudo_cmd[@]}" apt-get update -qq
    run "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${apt_missing[@]}"
else
    echo "apt: all ${#APT_PACKAGES[@]} packages installed"
fi

# --- rustup --------------------------------------------------------------------
# Adds the components $2.. and targets after `--` to toolchain $1.
rustup_add() {
    local toolchain=$1 components=() targets=() item
    shift
    while (($#)) && [[ $1 != -- ]]; do components+=("$1"); shift; done
    (($#)) && shift
    targets=("$@")
    local have
    have=$(rustup component list --installed --toolchain "$toolchain" | sed 's/-[a-z0-9_]*-[a-z0-9_]*-[a-z0-9_]*-[a-z0-9_]*$//; s/-preview$//')
    mapfile -t item < <(missing "$have" "${components[@]}")
    if ((${#item[@]})); then
        run rustup component add --toolchain "$toolchain" "${item[@]}"
    fi
    have=$(rustup target list --installed --toolchain "$toolchain")
    mapfile -t item < <(missing "$have" "${targets[@]}")
    if ((${#item[@]})); then
        run rustup target add --toolchain "$toolchain" "${item[@]}"
    fi
    echo "rustup $toolchain: ${#components[@]} components and ${#targets[@]} targets present"
}

if ! rustup toolchain list | grep -q "^$NIGHTLY-"; then
    run rustup toolchain install "$NIGHTLY" --profile minimal
fi
if ! rustup toolchain list | grep -q "^$MSRV-"; then
    run rustup toolchain install "$MSRV" --profile minimal
fi
rustup_add stable "${STABLE_COMPONENTS[@]}" -- "${STABLE_TARGETS[@]}"
rustup_add "$NIGHTLY" "${NIGHTLY_COMPONENTS[@]}" -- "${NIGHTLY_TARGETS[@]}"

# --- cargo tools ---------------------------------------------------------------
for tool in "${CARGO_TOOLS[@]}"; do
    read -r name version <<<"$tool"
    if cargo install --list | grep -qx "$name v$version:"; then
        echo "cargo: $name $version installed"
    else
        run cargo install --locked --version "$version" "$name"
    fi
done

run rustc --version
run rustc "+$NIGHTLY" --version
run rustc "+$MSRV" --version
run valgrind --version
