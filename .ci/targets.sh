#!/usr/bin/env bash
# The targets other than the host, and how CI checks each: the README's
# target table lists exactly these.
#
#   bash .ci/targets.sh run       the whole test suite and the examples
#                                 under qemu-user, for each RUN_TARGETS entry
#   bash .ci/targets.sh no-std    no-std-check/ built for each NO_STD_TARGETS
#                                 entry (debug and release), so the asm is
#                                 assembled for it
#   bash .ci/targets.sh windows   the whole test suite and the examples of
#                                 WINE_TARGET under Wine (scripts/wine.sh),
#                                 and its clippy lints
#   bash .ci/targets.sh elf [T..] for each ELF_TARGETS entry (or each T; no linker or
#                                 libc here to run them): the library
#                                 compiled to an object and inspected, the
#                                 tests and examples compiled to objects
#                                 with clippy's lints in the same pass
#   bash .ci/targets.sh objects   the SCRIPTED_TARGETS scripts, then for each
#                                 OBJECT_TARGETS entry (no linker here): the
#                                 library compiled to objects and inspected,
#                                 the tests and examples compiled and
#                                 assembled, no-std-check built
#   bash .ci/targets.sh uefi      uefi-test/ (a UEFI application) booted
#                                 under QEMU with OVMF and AAVMF for each
#                                 UEFI_TARGETS entry, debug and release
#                                 (scripts/uefi-run.sh), after its format
#                                 and clippy lints (stable targets); the
#                                 AArch64 image checked free of x18
#   bash .ci/targets.sh list      print the tables
#
# Nothing here installs anything: .ci/install.sh (step 1 of .ci/run) has
# every package, toolchain and target these need.
# A target passes only if its `test result:` lines show tests ran and none
# failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

# Linux targets whose whole suite runs under qemu-user, i686 and x86-64 musl
# natively (scripts/cross.sh has the linker, runner and sysroot of each; the
# musl ones are static binaries with rustup's own musl libc and libunwind).
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
    x86_64-unknown-linux-musl
    aarch64-unknown-linux-musl
)

# The Windows target whose whole suite runs under Wine (scripts/wine.sh
# builds the DLL that Wine 8 lacks).
WINE_TARGET=x86_64-pc-windows-gnu

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
# or core from source where rustup ships none). For a stable entry the
# library is compiled to an object in each feature configuration and the
# object inspected (check_object), and the tests and examples are compiled
# with `true` standing in for the linker, so every asm! block they
# instantiate is assembled (`cargo check` assembles nothing).
OBJECT_TARGETS=(
    "x86_64-apple-darwin stable"
    "aarch64-apple-darwin stable"
    "aarch64-apple-ios stable"
    "i686-pc-windows-gnu stable"
    "i686-pc-windows-msvc stable"
    "aarch64-pc-windows-msvc stable"
    "aarch64-pc-windows-gnullvm stable"
    "x86_64-pc-windows-msvc stable"
)

# The other ELF systems, compiled but not run here (no libc, linker or
# emulator for them: see CONTRIBUTING.md): "triple toolchain", where
# nightly builds std from source (-Zbuild-std) for the tier-3 targets and
# for those whose std rustup's mirror here does not serve.
ELF_TARGETS=(
    "x86_64-unknown-freebsd stable"
    "i686-unknown-freebsd nightly"
    "aarch64-unknown-freebsd nightly"
    "x86_64-unknown-netbsd stable"
    "x86_64-unknown-openbsd nightly"
    "x86_64-unknown-dragonfly nightly"
    "x86_64-unknown-illumos stable"
    "aarch64-linux-android stable"
    "armv7-linux-androideabi stable"
    "x86_64-linux-android stable"
    "i686-linux-android stable"
)

# UEFI targets: uefi-test/ runs on each under QEMU with UEFI firmware
# (scripts/uefi-run.sh has the machine and firmware of each).
UEFI_TARGETS=(
    x86_64-unknown-uefi
    aarch64-unknown-uefi
    i686-unknown-uefi
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
    local target log failed=()
    log=$(mktemp)
    for target in "${RUN_TARGETS[@]}"; do
        echo
        echo "-- $target"
        if ! run bash scripts/cross.sh "$target" test --lib --tests 2>&1 | tee "$log" ||
            ! require_tests_ran "$log" "$target"; then
            failed+=("$target (tests)")
            continue
        fi
        check_examples "$target" bash scripts/cross.sh "$target" || failed+=("$target (examples)")
        # The frame-pointer chain (tests/frame_pointers.rs exists only with
        # this cfg); s390x keeps a back chain only with +backchain. Skipped
        # for targets whose std is built from source (it would be built
        # again with these flags), and for musl, whose switch and frame
        # records are those of the glibc row of its architecture, walked
        # there (a second build of everything for the same check).
        if [[ $target == *-musl ]] ||
            awk -v t="$target" '$1 == t && $5 == "nightly" { found = 1 } END { exit !found }' \
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
    rm -f "$log"
    if ((${#failed[@]})); then
        printf 'failed: %s\n' "${failed[@]}" >&2
        return 1
    fi
}

# The examples of a target, run with COMMAND (a runner script and its first
# arguments): basic, panic and trap print what .ci/expected holds, and the
# backtrace example reaches sub_function. Prints each failure; fails if any.
check_examples() {
    local what=$1 out name status=0
    shift
    out=$(mktemp -d)
    for name in basic panic trap generator; do
        if ! "$@" run -q --example "$name" >"$out/$name.out" 2>"$out/$name.err" ||
            ! diff -u ".ci/expected/$name.txt" "$out/$name.out"; then
            echo "$what: example $name failed or printed something else" >&2
            cat "$out/$name.err" >&2
            status=1
        fi
    done
    if ! "$@" run -q --example backtrace >"$out/bt.out" 2>&1 ||
        ! grep -q sub_function "$out/bt.out"; then
        echo "$what: the backtrace example does not reach sub_function" >&2
        cat "$out/bt.out" >&2
        status=1
    fi
    rm -rf "$out"
    ((status == 0)) && echo "$what: examples print their expected output"
    return "$status"
}

windows_target() {
    local log status=0
    log=$(mktemp)
    cargo_without_warnings cargo clippy -q --target "$WINE_TARGET" --all-targets -- -D warnings
    # Unit, integration and doc tests, all through Wine.
    if ! run bash scripts/wine.sh test 2>&1 | tee "$log" ||
        ! require_tests_ran "$log" "$WINE_TARGET"; then
        status=1
    fi
    if ! run bash scripts/wine.sh test --release --tests 2>&1 | tee "$log" ||
        ! require_tests_ran "$log" "$WINE_TARGET (release)"; then
        status=1
    fi
    check_examples "$WINE_TARGET" bash scripts/wine.sh || status=1
    rm -f "$log"
    return "$status"
}

no_std_targets() {
    local target
    for target in "${NO_STD_TARGETS[@]}"; do
        (
            cd no-std-check
            run env CARGO_TARGET_DIR="$TARGET_DIR/no-std-check" cargo build --target "$target"
            run env CARGO_TARGET_DIR="$TARGET_DIR/no-std-check" cargo build --release --target "$target"
        )
    done
}

# Prints the path of LLVM tool $1 from rustup's llvm-tools component.
llvm_tool() {
    local found
    found="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/$1"
    [[ -x $found ]] || { echo "no $1 in rustup's llvm-tools (run .ci/install.sh)" >&2; return 1; }
    echo "$found"
}

# Fails unless OBJECT (the library compiled for TARGET) holds the context
# switch as its architecture file wrote it: the naked root functions
# defined in the text section. For Apple targets it must be a Mach-O object
# whose unwind info for the coroutine root survives linking: the object is
# linked into a dylib with rust-lld's Mach-O linker (ld64.lld, which follows
# ld64's compact-unwind rules; undefined symbols are left to the loader),
# and the dylib's __unwind_info entry for the root must be in DWARF mode
# (compact unwind cannot express a CFA expression) and lead to the root's
# FDE in __eh_frame: its address range, the CFA expression, and a CIE with
# the signal-frame augmentation.
check_object() {
    local target=$1 object=$2 objdump symbols name
    objdump=$(llvm_tool llvm-objdump)
    symbols=$("$objdump" -t "$object")
    # A global function: ELF and Mach-O tables print "g F .text"; COFF
    # tables print "(ty 20)(scl 2)" (function type, external class).
    local global=" g +F .*text.*"
    [[ $target == *-windows-* ]] && global="\(ty +20\)\(scl +2\).*"
    for name in coroutine_root stack_call_root; do
        # Legacy mangling (`...14coroutine_root17h<hash>E`, stable) or v0
        # (`..._RNv...14coroutine_root`, nightly's default).
        if ! grep -Eq "${global}(${name}17h[0-9a-f]+E|[0-9]+${name})\$" <<<"$symbols"; then
            echo "$target: $object defines no $name" >&2
            return 1
        fi
    done
    if [[ $target == *-apple-* ]]; then
        local format
        format=$(sed -n 's/.*file format //p' <<<"$symbols")
        [[ ${format,,} == mach-o* ]] || {
            echo "$target: $object is not a Mach-O object: ${format:-unknown format}" >&2
            return 1
        }
        check_linked_unwind_info "$target" "$object"
    fi
    if [[ $target == *-windows-* ]]; then
        check_windows_unwind_info "$target" "$object"
    fi
    echo "$target: $(basename "$object") holds the switch and its unwind info"
}

# The Apple half of check_object (see there).
check_linked_unwind_info() {
    local target=$1 object=$2 objdump lld dylib arch=arm64 platform=macos dwarf_mode=3
    objdump=$(llvm_tool llvm-objdump)
    lld="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/rust-lld"
    # Bits 24-27 of a compact-unwind encoding are the mode; DWARF mode is 4
    # on x86-64 and 3 on arm64, and keeps the FDE's offset in bits 0-23.
    [[ $target == x86_64-* ]] && arch=x86_64 dwarf_mode=4
    [[ $target == *-ios ]] && platform=ios
    dylib="${object%.o}.dylib"
    "$lld" -flavor darwin -dylib -arch "$arch" -platform_version "$platform" 14.0 14.0 \
        -undefined dynamic_lookup -o "$dylib" "$object"
    local root encoding
    root=$("$objdump" -t "$dylib" | awk '/ g +F .*coroutine_root17h[0-9a-f]+E$/ { print $1 }')
    # Second-level entries read "[i]: function offset=0x..., encoding=0x..."
    # (or "encoding[n]=0x..." on compressed pages).
    encoding=$("$objdump" --macho --unwind-info "$dylib" | awk -F '[=, ]+' -v root="$root" '
        /function offset=.*encoding/ {
            offset = encoding = ""
            for (i = 1; i < NF; i++) {
                if ($i == "offset") offset = $(i + 1)
                if ($i ~ /^encoding/) encoding = $(i + 1)
            }
            if (offset ~ /^0x/) print offset, encoding
        }' | while read -r offset enc; do
        if ((offset == 16#$root)); then echo "$enc"; fi
    done)
    if [[ -z $encoding ]] || (((encoding >> 24 & 15) != dwarf_mode)); then
        echo "$target: the linked coroutine_root has no compact-unwind entry in DWARF mode" \
            "(encoding: ${encoding:-none})" >&2
        return 1
    fi
    local frames fde cie
    frames=$("$objdump" --dwarf=frames "$dylib")
    fde=$(awk -v at="$(printf '%08x' $((encoding & 0xffffff)))" '
        $1 == at { on = 1 } on && !NF { exit } on' <<<"$frames")
    cie=$(sed -n 's/.* FDE cie=\([0-9a-f]*\) .*/\1/p' <<<"$fde")
    if ! grep -q "pc=0*${root#"${root%%[!0]*}"}\.\.\." <<<"$fde" ||
        ! grep -Eq 'DW_CFA_def_cfa_expression: DW_OP_breg(6|29) .*DW_OP_deref, DW_OP_plus_uconst' <<<"$fde" ||
        [[ -z $cie ]] ||
        ! awk -v at="$cie" '$1 == at { on = 1 } on && !NF { exit } on' <<<"$frames" |
        grep 'Augmentation: *"zRS"' >/dev/null; then
        echo "$target: the linked coroutine_root's FDE is not the one its file wrote:" >&2
        echo "${fde:-(no FDE at the offset the entry gives)}" >&2
        return 1
    fi
}

# The unwind codes that the `.pdata`/`.xdata` of OBJECT give the function
# NAME, as `llvm-readobj --unwind` decodes them for ARM64: its prologue's
# opcode bytes, in the order they are stored (the unwinder's order).
arm64_unwind_codes() {
    local object=$1 name=$2 readobj
    readobj=$(llvm_tool llvm-readobj)
    "$readobj" --unwind "$object" | awk -v name="${name}17h" '
        /Function: / { on = index($0, name) > 0; next }
        on && /EpilogueScopes \[|RuntimeFunction/ { on = 0 }
        on && $1 ~ /^0x[0-9a-f]+$/ && $2 == ";" { printf "%s ", $1 }'
}

# Windows: the unwind info that leads from a coroutine's root frame into its
# parent, decoded from the object, as each architecture file describes it.
check_windows_unwind_info() {
    local target=$1 object=$2 codes
    case $target in
    aarch64-*)
        # The root: set_fp (sp from x29), then a machine frame (sp and pc
        # from [sp]); the parent frame: {x29, x30} pushed (0x81) after x19
        # (0xd401); each ends with 0xe4.
        codes=$(arm64_unwind_codes "$object" coroutine_root)
        if [[ $codes != "0xe1 0xe9 0xe4 " ]]; then
            echo "$target: coroutine_root's unwind codes are '${codes}', not set_fp, machine frame" >&2
            return 1
        fi
        codes=$(arm64_unwind_codes "$object" parent_frame)
        if [[ $codes != "0x81 0xd401 0xe4 " ]]; then
            echo "$target: parent_frame's unwind codes are '${codes}', not the x19 and {x29, x30} pushes" >&2
            return 1
        fi
        ;;
    x86_64-*)
        local readobj root
        readobj=$(llvm_tool llvm-readobj)
        root=$("$readobj" --unwind "$object" | awk '
            /StartAddress: / { on = /coroutine_root17h/ } on')
        if ! grep -q "SET_FPREG reg=RBP" <<<"$root" || ! grep -q "PUSH_MACHFRAME" <<<"$root"; then
            echo "$target: coroutine_root's unwind info is not rbp then a machine frame:" >&2
            echo "${root:-(no entry)}" >&2
            return 1
        fi
        # The parent frame the machine frame leads into: rbx, then rbp
        # pushed below the return address (the parent's record).
        local parent
        parent=$("$readobj" --unwind "$object" | awk '
            /StartAddress: / { on = /parent_frame17h/ } on')
        if ! grep -q "PUSH_NONVOL reg=RBX" <<<"$parent" || ! grep -q "PUSH_NONVOL reg=RBP" <<<"$parent"; then
            echo "$target: parent_frame's unwind info is not the rbx and rbp pushes:" >&2
            echo "${parent:-(no entry)}" >&2
            return 1
        fi
        ;;
    i686-*-gnu)
        # Panics and backtraces use DWARF CFI here: the roots' signal-frame
        # CIE, and the root's CFA read through the link (ebp is DWARF reg 5).
        local frames objdump
        objdump=$(llvm_tool llvm-objdump)
        frames=$("$objdump" --dwarf=frames "$object")
        if ! grep -q 'Augmentation: *"zRS"' <<<"$frames" ||
            ! grep -Eq 'DW_CFA_def_cfa_expression: DW_OP_breg5 \+0, DW_OP_deref, DW_OP_plus_uconst' \
                <<<"$frames"; then
            echo "$target: $object lacks the root's DWARF CFI (signal frame, CFA through the link)" >&2
            return 1
        fi
        ;;
    esac
    # i686-pc-windows-msvc has no unwind tables: its SEH chain lives on the
    # stack, and its backtraces follow frame pointers.
}

# Fails if the AArch64 code in OBJECT names x18 (Darwin: reserved there) or
# changes it (Windows: the TEB pointer).
check_no_x18() {
    local target=$1 object=$2 objdump used windows=
    objdump=$(llvm_tool llvm-objdump)
    [[ $target == *-windows-* ]] && windows=1
    # Disassembly lines are "address: bytes<TAB>mnemonic<TAB>operands".
    # Windows keeps the TEB's address in x18: there reading it is allowed (a
    # copy, as in thread_environment_block; a base register without
    # writeback, as in compiler-generated TLS accesses), changing it is not.
    used=$("$objdump" -d "$object" | awk -F '\t' -v windows="$windows" '
        $3 !~ /(^|[^0-9a-z_])[wx]18([^0-9]|$)/ { next }
        windows && $2 == "mov" && $3 ~ /^x[0-9]+, x18$/ { next }
        windows {
            rest = $3
            sub(/\[x18(, #[^]]*)?\]$/, "", rest)
            if (rest != $3 && rest !~ /(^|[^0-9a-z_])[wx]18([^0-9]|$)/) next
        }
        { print }')
    if [[ -n $used ]]; then
        echo "$used"
        echo "$target: $object ${windows:+changes or }uses x18, the platform register" >&2
        return 1
    fi
    echo "$target: $(basename "$object") leaves x18 alone${windows:+ (reads of the TEB pointer aside)}"
}

# Runs a cargo command (echoed) and fails if it fails or warns.
cargo_without_warnings() {
    local log status=0
    log=$(mktemp)
    echo "+ $*"
    "$@" 2>&1 | tee "$log" || status=$?
    if ((status == 0)) && grep -q '^warning' "$log"; then
        echo "warnings (see above) from: $*" >&2
        status=1
    fi
    rm -f "$log"
    return "$status"
}

# The library of a stable OBJECT_TARGETS entry compiled to objects (one per
# feature configuration) and inspected, then the tests and examples
# compiled and assembled, with `true` as the linker: there is no linker or
# SDK for these targets here, so nothing is linked.
compile_objects() {
    local target=$1 dir config
    dir="$TARGET_DIR/objects/inspected/$target"
    mkdir -p "$dir"
    local env=(
        CARGO_TARGET_DIR="$TARGET_DIR/objects"
        "CARGO_TARGET_$(tr 'a-z-' 'A-Z_' <<<"$target")_LINKER=true"
    )
    # rustc asks xcrun for an Apple SDK to give the linker; an empty
    # directory named as the platform's SDK stands in for it (unused, since
    # nothing is linked) and keeps the build free of that warning.
    case $target in
    *-apple-darwin) env+=(SDKROOT="$dir/sdk/MacOSX.sdk") ;;
    *-apple-ios) env+=(SDKROOT="$dir/sdk/iPhoneOS.sdk") ;;
    esac
    mkdir -p "$dir/sdk/MacOSX.sdk" "$dir/sdk/iPhoneOS.sdk"
    for config in default no-default-features unwind; do
        local features=()
        case $config in
        no-default-features) features=(--no-default-features) ;;
        unwind) features=(--no-default-features --features unwind) ;;
        esac
        cargo_without_warnings env "${env[@]}" \
            cargo rustc -q --lib --target "$target" "${features[@]}" -- \
            -C codegen-units=1 --emit=obj="$dir/lib-$config.o"
        check_object "$target" "$dir/lib-$config.o"
    done
    cargo_without_warnings env "${env[@]}" cargo build -q --target "$target" --tests --examples
    # Code only these targets compile (their trap support, for one) gets
    # the lints the host's code gets.
    cargo_without_warnings env "${env[@]}" \
        cargo clippy -q --target "$target" --all-targets -- -D warnings
    # tests/frame_pointers.rs exists only with this cfg (Apple targets keep
    # frame pointers anyway); passed to the test crate alone.
    cargo_without_warnings env "${env[@]}" \
        cargo rustc -q --target "$target" --test frame_pointers -- --cfg switchback_frame_pointers
    if [[ $target == aarch64-apple-* || $target == aarch64-*-windows-* ]]; then
        # A test that instantiates every switch, as an object to inspect.
        cargo_without_warnings env "${env[@]}" \
            cargo rustc -q --target "$target" --test values -- \
            -C codegen-units=1 --emit=obj="$dir/test-values.o"
        check_no_x18 "$target" "$dir/lib-default.o"
        check_no_x18 "$target" "$dir/test-values.o"
    fi
    echo "$target: library, tests and examples compiled and assembled"
}

# An ELF_TARGETS entry: the library compiled to an object and checked for
# the switch (check_object), then the library, the tests and the examples
# compiled to objects in one build whose workspace crates go through
# clippy-driver, so that clippy's lints and code generation (every asm!
# block assembled) take one pass. `true` stands in for the linker (nothing
# is linked); no debug info, which nothing here reads, and so nothing to
# strip.
elf_target() {
    local target=$1 toolchain=$2 dir cargo=(cargo) std=() driver
    dir="$TARGET_DIR/elf/inspected/$target"
    mkdir -p "$dir"
    local lints=()
    if [[ $toolchain == nightly ]]; then
        cargo=(cargo +nightly)
        std=(-Zbuild-std=std,panic_unwind)
        # Nightly's clippy flags `thread_local!` statics whose initializer
        # is already `const` on targets without native thread-locals
        # (OpenBSD): rust-lang/rust-clippy#17566, a false positive.
        lints=(CLIPPY_ARGS="-A__CLIPPY_HACKERY__clippy::missing_const_for_thread_local__CLIPPY_HACKERY__")
    fi
    driver="$(rustc "+$toolchain" --print sysroot)/bin/clippy-driver"
    [[ -x $driver ]] || { echo "no clippy-driver in $toolchain (run .ci/install.sh)" >&2; return 1; }
    local env=(
        CARGO_TARGET_DIR="$TARGET_DIR/elf"
        CARGO_PROFILE_DEV_DEBUG=0
        # Without debug info cargo asks rustc to strip it from the linked
        # binaries, which on illumos runs rust-objcopy on the file that
        # `true` never wrote.
        CARGO_PROFILE_DEV_STRIP=none
        "CARGO_TARGET_$(tr 'a-z-' 'A-Z_' <<<"$target")_LINKER=true"
    )
    cargo_without_warnings env "${env[@]}" \
        "${cargo[@]}" rustc -q "${std[@]}" --lib --target "$target" -- \
        -C codegen-units=1 --emit=obj="$dir/lib-default.o" || return 1
    check_object "$target" "$dir/lib-default.o" || return 1
    cargo_without_warnings env "${env[@]}" "${lints[@]}" RUSTC_WORKSPACE_WRAPPER="$driver" \
        "${cargo[@]}" build -q "${std[@]}" --target "$target" --lib --tests --examples ||
        return 1
    echo "$target: library, tests and examples compiled to objects, clippy clean"
    # Each row's build (std's included) takes 0.2-0.5 GB that no later step
    # reads: only the inspected object is kept.
    rm -rf "${TARGET_DIR:?}/elf/$target"
}

# Every ELF_TARGETS entry, or those whose triples are given.
elf_targets() {
    local entry target toolchain start failed=()
    for entry in "${ELF_TARGETS[@]}"; do
        read -r target toolchain <<<"$entry"
        if (($#)) && ! printf '%s\n' "$@" | grep -qx -- "$target"; then
            continue
        fi
        echo
        echo "-- $target ($toolchain)"
        start=$SECONDS
        elf_target "$target" "$toolchain" || failed+=("$target")
        echo "$target: $((SECONDS - start)) s"
    done
    if ((${#failed[@]})); then
        printf 'failed: %s\n' "${failed[@]}" >&2
        return 1
    fi
}

object_targets() {
    local entry target toolchain script
    for entry in "${SCRIPTED_TARGETS[@]}"; do
        read -r target script <<<"$entry"
        run bash "$script"
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
            compile_objects "$target"
            (
                cd no-std-check
                run env CARGO_TARGET_DIR="$TARGET_DIR/objects" cargo build --target "$target"
            )
        fi
    done
}

uefi_targets() {
    local target archs=()
    (
        cd uefi-test
        run cargo fmt -- --check
        for target in "${UEFI_TARGETS[@]}"; do
            # The application's lints, and the crate's as compiled for UEFI;
            # i686 is built with nightly (scripts/uefi-run.sh), whose
            # minimal profile has no clippy: its build denies warnings.
            [[ $target == i686-* ]] && continue
            cargo_without_warnings env CARGO_TARGET_DIR="$TARGET_DIR/uefi-test" \
                cargo clippy -q --target "$target" -- -D warnings
        done
    )
    for target in "${UEFI_TARGETS[@]}"; do
        archs+=("${target%%-*}")
    done
    run env CARGO_TARGET_DIR="$TARGET_DIR" bash scripts/uefi-run.sh "${archs[@]}"
    # The UEFI specification reserves x18 on AArch64 (as on Apple targets).
    for target in "${UEFI_TARGETS[@]}"; do
        if [[ $target == aarch64-* ]]; then
            check_no_x18 "$target" "$TARGET_DIR/uefi-test/$target/release/switchback-uefi-test.efi"
        fi
    done
}

case "${1:-}" in
run) run_targets ;;
uefi) uefi_targets ;;
windows) windows_target ;;
no-std) no_std_targets ;;
objects) object_targets ;;
elf) shift; elf_targets "$@" ;;
list)
    printf 'run under qemu: %s\n' "${RUN_TARGETS[@]}"
    printf 'run under Wine: %s\n' "$WINE_TARGET"
    printf 'no_std build:   %s\n' "${NO_STD_TARGETS[@]}"
    printf 'compiled:       %s\n' "${OBJECT_TARGETS[@]}" "${ELF_TARGETS[@]}"
    printf 'scripted:       %s\n' "${SCRIPTED_TARGETS[@]}"
    printf 'UEFI, booted:   %s\n' "${UEFI_TARGETS[@]}"
    ;;
*)
    sed -n '2,30p' "$0" >&2
    exit 2
    ;;
esac
