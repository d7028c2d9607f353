#!/usr/bin/env bash
# Instructions per switch round trip (resume + suspend of an identity
# coroutine), per crate, counted by callgrind.
#
# Each crate's `switch-loop-<crate> N` binary (bench-compare/src/bin) runs N
# round trips; it is run for N and 2N, and (Ir(2N) - Ir(N)) / N cancels the
# start-up and tear-down instructions.
#
# Usage: scripts/callgrind-switch.sh [N]      (default N = 100000)
# Env:   CRATES="switchback corosensei ..."   (default: all five)
#        CARGO_TARGET_DIR                     (default: target/ in the workspace)
set -euo pipefail

n=${1:-100000}
crates=${CRATES:-"switchback corosensei context generator wasmtime-fiber"}
root=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}

if ! command -v valgrind >/dev/null; then
    echo "installing valgrind..." >&2
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo=sudo; fi
    $sudo apt-get update -qq >&2
    $sudo apt-get install -y -qq valgrind >&2
fi

bins=()
for crate in $crates; do bins+=(--bin "switch-loop-$crate"); done
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p bench-compare "${bins[@]}"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Total instructions executed by `switch-loop-$1 $2`.
instructions() {
    local file="$out/callgrind.$1.$2"
    valgrind --tool=callgrind --callgrind-out-file="$file" \
        "$CARGO_TARGET_DIR/release/switch-loop-$1" "$2" >/dev/null 2>"$file.log" ||
        { cat "$file.log" >&2; return 1; }
    # `summary:` (older callgrind) or `totals:`; the first event is Ir.
    awk '/^(summary|totals):/ { print $2; exit }' "$file"
}

echo "| crate | instructions per round trip |"
echo "|---|---:|"
for crate in $crates; do
    one=$(instructions "$crate" "$n")
    two=$(instructions "$crate" $((2 * n)))
    awk -v c="$crate" -v a="$one" -v b="$two" -v n="$n" \
        'BEGIN { printf "| %s | %.1f |\n", c, (b - a) / n }'
done
echo
echo "valgrind --tool=callgrind, (Ir($((2 * n))) - Ir($n)) / $n, $(valgrind --version), $(rustc -V)"
