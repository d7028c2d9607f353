#!/usr/bin/env bash
# Windows builds run under Wine.
#
#   scripts/wine.sh CARGO-ARGS...           run `cargo CARGO-ARGS --target x86_64-pc-windows-gnu`
#                                           with Wine as the runner
#   WINE_TARGET=i686-pc-windows-gnu scripts/wine.sh CARGO-ARGS...
#                                           the same for 32-bit x86 Windows
#                                           (needs 32-bit Wine, wine32:i386,
#                                           and gcc-mingw-w64-i686)
#
# Example: scripts/wine.sh test --test values
#
# Wine 8 (Debian 12) lacks bcryptprimitives.dll!ProcessPrng, which Rust's
# std imports, so a stand-in DLL (scripts/wine/bcryptprimitives.c) is built
# with mingw and put first on Wine's DLL path. The Wine prefix lives under
# the target directory, so runs do not touch ~/.wine. .ci/install.sh
# installs Wine, mingw-w64 and the rustup target.
set -euo pipefail

TRIPLE=${WINE_TARGET:-x86_64-pc-windows-gnu}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")

case $TRIPLE in
x86_64-pc-windows-gnu) cc=x86_64-w64-mingw32-gcc cc_flags=() ;;
# std imports ProcessPrng undecorated; a stdcall export would be
# `ProcessPrng@8` without --kill-at.
i686-pc-windows-gnu) cc=i686-w64-mingw32-gcc cc_flags=(-Wl,--kill-at) ;;
*)
    echo "scripts/wine.sh: unsupported WINE_TARGET $TRIPLE" >&2
    exit 2
    ;;
esac

target_dir=${CARGO_TARGET_DIR:-$ROOT/target}
wine_dir=$target_dir/wine
dll_dir=$wine_dir/${TRIPLE%%-*}
mkdir -p "$dll_dir"
dll=$dll_dir/bcryptprimitives.dll
if [[ ! $dll -nt $HERE/wine/bcryptprimitives.c ]]; then
    "$cc" -O2 -shared "${cc_flags[@]}" -o "$dll" "$HERE/wine/bcryptprimitives.c"
fi

export WINEPREFIX=$wine_dir/prefix
export WINEPATH=$dll_dir
export WINEDLLOVERRIDES="bcryptprimitives=n,b;mscoree,mshtml="
export WINEDEBUG=${WINEDEBUG:--all}
if [[ ! -d $WINEPREFIX ]]; then
    wineboot --init >/dev/null 2>&1 || true
fi
runner_var=CARGO_TARGET_$(tr 'a-z-' 'A-Z_' <<<"$TRIPLE")_RUNNER
export "$runner_var"=wine
# Tests that re-run their own binary in a child process do it through Wine.
export SWITCHBACK_WINE=1
exec cargo "$1" --target "$TRIPLE" "${@:2}"
