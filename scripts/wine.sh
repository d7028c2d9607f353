#!/usr/bin/env bash
# Windows builds run under Wine.
#
#   scripts/wine.sh CARGO-ARGS...           run `cargo CARGO-ARGS --target x86_64-pc-windows-gnu`
#                                           with Wine as the runner
#
# Example: scripts/wine.sh test --test values
#
# Wine 8 (Debian 12) lacks bcryptprimitives.dll!ProcessPrng, which Rust's
# std imports, so a stand-in DLL (scripts/wine/bcryptprimitives.c) is built
# with mingw and put first on Wine's DLL path. The Wine prefix lives under
# the target directory, so runs do not touch ~/.wine. .ci/install.sh
# installs Wine, mingw-w64 and the rustup target.
set -euo pipefail

TRIPLE=x86_64-pc-windows-gnu
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")

target_dir=${CARGO_TARGET_DIR:-$ROOT/target}
wine_dir=$target_dir/wine
mkdir -p "$wine_dir"
dll=$wine_dir/bcryptprimitives.dll
if [[ ! $dll -nt $HERE/wine/bcryptprimitives.c ]]; then
    x86_64-w64-mingw32-gcc -O2 -shared -o "$dll" "$HERE/wine/bcryptprimitives.c"
fi

export WINEPREFIX=$wine_dir/prefix
export WINEPATH=$wine_dir
export WINEDLLOVERRIDES="bcryptprimitives=n,b;mscoree,mshtml="
export WINEDEBUG=${WINEDEBUG:--all}
if [[ ! -d $WINEPREFIX ]]; then
    wineboot --init >/dev/null 2>&1 || true
fi
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine
# Tests that re-run their own binary in a child process do it through Wine.
export SWITCHBACK_WINE=1
exec cargo "$1" --target "$TRIPLE" "${@:2}"
