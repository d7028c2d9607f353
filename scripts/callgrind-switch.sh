#!/usr/bin/env bash
# Instructions per switch round trip (resume + suspend of an identity
# coroutine), per crate, counted by callgrind.
#
# Each crate's `switch-loop-<crate> N` binary (bench-compare/src/bin) runs N
# round trips; it is run for N and 2N, and (Ir(2N) - Ir(N)) / N cancels the
# start-up and tear-down instructions.
#
# With OPS set, it counts instead the instructions per iteration of
# switchback's `call-loop-switchback OP N` for each OP (the harness's
# switchback-only operations, such as `call` and `call-pooled`).
#
# Usage: scripts/callgrind-switch.sh [N]      (default N = 100000)
# Env:   CRATES="switchback corosensei ..."   (default: all five)
#        OPS="call call-pooled"               (switchback operations instead)
#        CARGO_TARGET_DIR                     (default: target/ in the workspace)
set -euo pipefail

n=${1:-100000}
crates=${CRATES:-"switchback corosensei context generator wasmtime-fiber"}
root=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}

ops=${OPS:-}
bins=()
if [ -n "$ops" ]; then
    bins=(--bin call-loop-switchback)
else
    for crate in $crates; do bins+=(--bin "switch-loop-$crate"); done
fi
cargo build --release --quiet --manifest-path "$root/bench-compare/Cargo.toml" "${bins[@]}"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Total instructions executed by `switch-loop-$1 $2`, or with OPS set by
# `call-loop-switchback $1 $2`.
instructions() {
    local file="$out/callgrind.$1.$2"
    local command=("$CARGO_TARGET_DIR/release/switch-loop-$1" "$2")
    if [ -n "$ops" ]; then
        command=("$CARGO_TARGET_DIR/release/call-loop-switchback" "$1" "$2")
    fi
    valgrind --tool=callgrind --callgrind-out-file="$file" \
        "${command[@]}" >/dev/null 2>"$file.log" ||
        { cat "$file.log" >&2; return 1; }
    # `summary:` (older callgrind) or `totals:`; the first event is Ir.
    awk '/^(summary|totals):/ { print $2; exit }' "$file"
}

if [ -n "$ops" ]; then
    echo "| switchback operation | instructions per iteration |"
    crates=$ops
else
    echo "| crate | instructions per round trip |"
fi
echo "|---|---:|"
for crate in $crates; do
    one=$(instructions "$crate" "$n")
    two=$(instructions "$crate" $((2 * n)))
    awk -v c="$crate" -v a="$one" -v b="$two" -v n="$n" \
        'BEGIN { printf "| %s | %.1f |\n", c, (b - a) / n }'
done
echo
echo "valgrind --tool=callgrind, (Ir($((2 * n))) - Ir($n)) / $n, $(valgrind --version), $(rustc -V)"
