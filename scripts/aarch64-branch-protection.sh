#!/usr/bin/env bash
# AArch64 branch protection: the test suite built with
# -Zbranch-protection=bti,pac-ret (std too, through -Zbuild-std), run under
# qemu-user with `-cpu max` (FEAT_PAuth and FEAT_BTI), with BTI enforced.
#
#   scripts/aarch64-branch-protection.sh
#
# PAC needs nothing from the ELF file: qemu authenticates every signed
# return address, so a switch that authenticated a return address with the
# wrong stack pointer would crash the tests.
#
# BTI is only enforced on pages of a binary whose GNU property note says BTI,
# and the linker sets that bit only if every input object has it. Debian's
# crt objects (Scrt1.o, crti.o, crtn.o from glibc; crtbeginS.o, crtendS.o
# from GCC) have no such note: their code was not built with branch
# protection (Scrt1.o's `_start` begins with a `nop` where a `bti c` would
# be). So an ordinary link of the tests is not BTI-marked, and nothing
# enforces BTI for it. This script therefore links each test binary twice
# (a linker wrapper): the ordinary way to `NAME.ordinary`, whose notes it
# shows, and with a small BTI-marked start file in place of the crt objects
# (-nostartfiles) to `NAME`, which is what runs. It checks that the run
# binaries are BTI-marked, and with two probes that qemu really enforces BTI
# on a marked binary (an indirect call to code without a landing pad raises
# SIGILL) and not on an unmarked one.
#
# Needs what .ci/install.sh installs for aarch64-unknown-linux-gnu, and
# nightly with rust-src. Builds in $CARGO_TARGET_DIR/branch-protection (default
# target/branch-protection). Fails unless the tests ran and passed.
#
# The three tests skipped below cannot run under qemu-user at all (they fail
# there without branch protection too): two map hundreds of TiB of address
# space, which exhausts qemu-user's page tables, and one re-executes the
# test binary in a child process, which needs binfmt_misc.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
TRIPLE=aarch64-unknown-linux-gnu
PREFIX=aarch64-linux-gnu
SYSROOT=/usr/$PREFIX
# `-cpu max` has FEAT_PAuth and FEAT_BTI. pauth-impdef=on makes qemu sign
# and authenticate with its own (fast) algorithm instead of emulating QARMA,
# which runs the tests about ten times slower; authentication is as strict.
QEMU="qemu-aarch64-static -cpu max,pauth-impdef=on -L $SYSROOT"
# Tests that re-run their binary in a child process do it through qemu.
export SWITCHBACK_QEMU_RUNNER="$QEMU"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/branch-protection"
SUPPORT="$TARGET_DIR/bti-support"
# The tests that exercise every switch path (resume, suspend, forced unwind,
# panics, on_stack, traps, backtraces); the pool, stack-size and stress tests
# add nothing here and would double CI's time for this script.
TESTS=(--test backtrace --test drop_unwind --test nesting --test on_stack --test panics
    --test scoped --test trap --test values --test interrupted_unwind --test panic_points)
# The number of `test result:` lines a full run prints (one per entry above).
EXPECTED_RESULTS=10
SKIP=(--skip dropping_default_stack_unmaps_it --skip dropping_the_pool_unmaps_idle_stacks
    --skip overflow_on_reused_stack_hits_the_guard_page)

run() {
    echo "+ $*"
    "$@"
}

# --- the BTI-marked start file and the linker wrapper -----------------------
mkdir -p "$SUPPORT"
cat >"$SUPPORT/start.S" <<'EOF'
// A minimal, BTI-marked replacement for glibc's Scrt1.o and GCC's
// crtbeginS.o: the entry point, which hands over to __libc_start_main, and
// __dso_handle. The .note.gnu.property says BTI and PAC.
// The `main` that rustc generates has no landing pad (no `bti c`), so libc's
// indirect call to it would fault: libc is handed main_landing_pad instead,
// which branches to main directly (BTI checks only indirect branches).
	.text
	.globl	_start
	.type	_start, %function
_start:
	hint	#34			// bti c: ld.so enters with `br x16`
	mov	x29, #0			// the outermost frame record
	mov	x30, #0
	mov	x5, x0			// rtld_fini
	ldr	x1, [sp]		// argc
	add	x2, sp, #8		// argv
	mov	x6, sp			// stack end
	adr	x0, main_landing_pad
	mov	x3, #0			// init and fini: unused since glibc 2.34
	mov	x4, #0
	bl	__libc_start_main
	brk	#1
	.size	_start, . - _start

	.type	main_landing_pad, %function
main_landing_pad:
	hint	#34			// bti c: __libc_start_main calls it with blr
	b	main
	.size	main_landing_pad, . - main_landing_pad

	.data
	.p2align 3
	.globl	__dso_handle
	.hidden	__dso_handle
__dso_handle:
	.quad	__dso_handle

	.section .note.gnu.property, "a"
	.p2align 3
	.word	4			// name size
	.word	16			// descriptor size
	.word	5			// NT_GNU_PROPERTY_TYPE_0
	.asciz	"GNU"
	.word	0xc0000000		// GNU_PROPERTY_AARCH64_FEATURE_1_AND
	.word	4
	.word	3			// BTI | PAC
	.word	0
	.section .note.GNU-stack, "", %progbits
EOF
run "$PREFIX-gcc" -c "$SUPPORT/start.S" -o "$SUPPORT/start.o"

cat >"$SUPPORT/aarch64-bti-gcc" <<EOF
#!/usr/bin/env bash
# Links the ordinary way to OUT.ordinary, then with the BTI-marked start file
# instead of the crt objects to OUT. The start file goes first: GNU ld gives
# the output's .note.gnu.property the flags of the first input that has one,
# and rustc's symbols.o (otherwise first) has one without SHF_ALLOC, which
# would leave the note out of the loaded image, so that no loader sees it.
set -euo pipefail
args=("\$@")
for ((i = 0; i < \${#args[@]} - 1; i++)); do
    if [[ \${args[i]} == -o ]]; then
        ordinary=("\${args[@]}")
        ordinary[i + 1]="\${args[i + 1]}.ordinary"
        $PREFIX-gcc "\${ordinary[@]}"
        break
    fi
done
exec $PREFIX-gcc "$SUPPORT/start.o" "\$@" -nostartfiles
EOF
chmod +x "$SUPPORT/aarch64-bti-gcc"

# --- the probes: does qemu enforce BTI? -------------------------------------
cat >"$SUPPORT/probe.c" <<'EOF'
/* `probe bti` calls code that has no BTI landing pad indirectly: on a page
   that BTI guards this raises SIGILL; elsewhere it returns.
   `probe pac` returns through a return address signed with one stack
   pointer and authenticated with another: with PAuth this faults. */
#include <stdio.h>
__asm__(".text\n.p2align 2\n"
        ".type no_landing_pad, %function\n"
        "no_landing_pad:\n\tret\n"
        ".size no_landing_pad, . - no_landing_pad\n"
        ".type wrong_modifier, %function\n"
        "wrong_modifier:\n"
        "\thint #25\n"          /* paciasp: sign x30 with sp */
        "\tsub sp, sp, #16\n"
        "\thint #29\n"          /* autiasp: authenticate with sp - 16 */
        "\tadd sp, sp, #16\n"
        "\tret\n"
        ".size wrong_modifier, . - wrong_modifier\n");
extern void no_landing_pad(void);
extern void wrong_modifier(void);
int main(int argc, char **argv) {
    void (*volatile bti)(void) = no_landing_pad;
    void (*volatile pac)(void) = wrong_modifier;
    if (argc > 1 && argv[1][0] == 'b') {
        bti();
        puts("returned from a target without landing pad");
    }
    if (argc > 1 && argv[1][0] == 'p') {
        pac();
        puts("returned through a wrongly authenticated address");
    }
    return 0;
}
EOF
run "$PREFIX-gcc" -O1 -mbranch-protection=standard "$SUPPORT/probe.c" -o "$SUPPORT/probe.ordinary"
run "$PREFIX-gcc" -O1 -mbranch-protection=standard -nostartfiles "$SUPPORT/probe.c" \
    "$SUPPORT/start.o" -o "$SUPPORT/probe.marked"

# Whether the object or binary $1 has a GNU property note that says BTI,
# and for a binary whether the note is loaded (a PT_GNU_PROPERTY segment
# with a size in memory), since loaders only look there. (No `grep -q`:
# with pipefail, readelf dying of SIGPIPE would read as "no".)
has_bti() {
    "$PREFIX-readelf" -n "$1" | grep 'AArch64 feature: .*BTI' >/dev/null || return 1
    if "$PREFIX-readelf" -h "$1" | grep 'Type:.*\(EXEC\|DYN\)' >/dev/null; then
        "$PREFIX-readelf" -lW "$1" | awk '$1 == "GNU_PROPERTY" && $6 != "0x000000" { found = 1 }
            END { exit !found }'
    fi
}

echo
echo "== the probes"
if has_bti "$SUPPORT/probe.ordinary"; then
    echo "unexpected: the ordinarily linked probe is BTI-marked" >&2
    exit 1
fi
echo "probe.ordinary is not BTI-marked"
$QEMU "$SUPPORT/probe.ordinary" bti
echo "probe.ordinary: the call without landing pad returned (BTI not enforced)"
has_bti "$SUPPORT/probe.marked" || {
    echo "probe.marked is not BTI-marked" >&2
    exit 1
}
echo "probe.marked is BTI-marked"
$QEMU "$SUPPORT/probe.marked" || {
    echo "probe.marked fails without the bad call" >&2
    exit 1
}
# Exit status of `$QEMU probe.marked ARG`, without the shell's report of
# the signal.
probe_status() {
    bash -c '"$@" 2>/dev/null; echo "status $?"' probe $QEMU "$SUPPORT/probe.marked" "$1" 2>/dev/null |
        sed -n 's/^status //p'
}
status=$(probe_status bti)
if [[ $status -ne 132 ]]; then
    echo "probe.marked: the call without landing pad gave exit status $status, not SIGILL (132):" \
        "qemu does not enforce BTI, so the test run below would prove nothing" >&2
    exit 1
fi
echo "probe.marked: the call without landing pad raised SIGILL (BTI enforced)"
status=$(probe_status pac)
if [[ $status -ne 132 && $status -ne 139 ]]; then
    echo "probe.marked: returning through a wrongly authenticated address gave exit" \
        "status $status, not SIGILL or SIGSEGV: qemu does not authenticate" >&2
    exit 1
fi
echo "probe.marked: returning through a wrongly authenticated address faulted (exit" \
    "status $status: PAC enforced)"

# --- the tests --------------------------------------------------------------
export CARGO_TARGET_DIR="$TARGET_DIR"
export CARGO_INCREMENTAL=0
export RUSTFLAGS="-Zbranch-protection=bti,pac-ret"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER="$SUPPORT/aarch64-bti-gcc"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$QEMU"
export CC_aarch64_unknown_linux_gnu="$PREFIX-gcc"
export RUST_BACKTRACE=0

echo
echo "== build"
# Binaries linked before (perhaps with another start file) are removed, so
# that cargo links them again.
for ordinary in "$TARGET_DIR/$TRIPLE/debug/deps"/*.ordinary; do
    [[ -e $ordinary ]] && rm -f "$ordinary" "${ordinary%.ordinary}"
done
run cargo +nightly test -Zbuild-std=std,panic_unwind --target "$TRIPLE" "${TESTS[@]}" --no-run

echo
echo "== ELF notes"
# The binaries the wrapper linked are those with a NAME.ordinary beside them.
deps="$TARGET_DIR/$TRIPLE/debug/deps"
values=$(ls -t "$deps"/values-*.ordinary 2>/dev/null | head -n 1)
values=${values%.ordinary}
if [[ -z $values || ! -x $values ]]; then
    echo "no tests/values binary linked by the wrapper found in $deps" >&2
    exit 1
fi
echo "+ readelf -n ${values#"$ROOT"/}.ordinary (linked with Debian's crt objects)"
notes=$("$PREFIX-readelf" -n "$values.ordinary")
grep -A3 'gnu.property' <<<"$notes" || echo "  (no .note.gnu.property)"
if has_bti "$values.ordinary"; then
    echo "the ordinary link is BTI-marked"
else
    echo "the ordinary link is NOT BTI-marked: these inputs have no GNU property note:"
    for object in "$SYSROOT"/lib/Scrt1.o "$SYSROOT"/lib/crti.o "$SYSROOT"/lib/crtn.o \
        "$($PREFIX-gcc -print-file-name=crtbeginS.o)" "$($PREFIX-gcc -print-file-name=crtendS.o)"; do
        has_bti "$object" || echo "  $object"
    done
fi
echo "+ readelf -n ${values#"$ROOT"/} (linked with the BTI-marked start file)"
"$PREFIX-readelf" -n "$values" | grep -A3 'gnu.property'
"$PREFIX-readelf" -lW "$values" | grep GNU_PROPERTY
for ordinary in "$deps"/*.ordinary; do
    binary=${ordinary%.ordinary}
    has_bti "$binary" || {
        echo "${binary#"$ROOT"/} is not BTI-marked" >&2
        exit 1
    }
done
echo "every test binary that runs is BTI-marked"

echo
echo "== tests under $QEMU"
log="$SUPPORT/test.log"
run cargo +nightly test -Zbuild-std=std,panic_unwind --target "$TRIPLE" "${TESTS[@]}" \
    -- "${SKIP[@]}" 2>&1 | tee "$log"
results=$(grep -c '^test result: ok\.' "$log" || true)
if grep -q '^test result: FAILED\|^failures:' "$log" || [[ $results -ne $EXPECTED_RESULTS ]]; then
    echo "expected $EXPECTED_RESULTS passing test binaries, got $results" >&2
    exit 1
fi
echo
grep '^test result:' "$log"
echo "all $results test binaries passed with BTI and PAC enforced"
