#!/usr/bin/env bash
# Instructions and branch mispredictions per iteration, per crate, counted
# by callgrind with its branch simulation: `bench-compare --callgrind`
# (bench-compare/src/callgrind.rs), which this script runs.
#
# Each (op, crate) runs as `bench-compare --count OP CRATE N` under
# `valgrind --tool=callgrind --branch-sim=yes` for N and 2N iterations, and
# (count(2N) - count(N)) / N cancels start-up and tear-down: the counts per
# iteration of the very loops that the harness times.
#
# Usage: scripts/callgrind-switch.sh [BENCH-COMPARE ARGS...]
#        (for example --layouts release,release-lto)
# Env:   CRATES="corosensei context ..."   --crates (default: all)
#        OPS="switch switch-deep call"     --ops (default: switch, switch-deep)
#        CARGO_TARGET_DIR                  (default: bench-compare/target)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
args=(--callgrind)
if [ -n "${CRATES:-}" ]; then
    args+=(--crates "$(echo $CRATES | tr ' ' ',')")
fi
if [ -n "${OPS:-}" ]; then
    args+=(--ops "$(echo $OPS | tr ' ' ',')")
fi
exec cargo run --quiet --release --manifest-path "$root/bench-compare/Cargo.toml" -- \
    "${args[@]}" "$@"
