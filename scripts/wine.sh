#!/usr/bin/env bash
# Windows builds run under Wine.
#
#   scripts/wine.sh --install               install wine64, mingw-w64 and the rustup target
#   scripts/wine.sh CARGO-ARGS...           run `cargo CARGO-ARGS --target x86_64-pc-windows-gnu`
#                                           with Wine as the runner
#
# Example: scripts/wine.sh test --test values
#
# Wine 8 (Debian 12) lacks bcryptprimitives.dll!ProcessPrng, which Rust's
# std imports, so a stand-in DLL (scripts/wine/bcryptprimitives.c) is built
# with mingw and put first on Wine's DLL path. The Wine prefix lives under
# the target directory, so runs do not touch ~/.wine. Installing is
# idempotent.
set -euo pipefail

TRIPLE=x86_64-pc-windows-gnu
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")

sudo_cmd=()
if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null; then
    sudo_cmd=(sudo)
fi

install() {
    local packages=()
    command -v wine >/dev/null || packages+=(wine64 wine)
    command -v x86_64-w64-mingw32-gcc >/dev/null || packages+=(gcc-mingw-w64-x86-64)
    if ((${#packages[@]})); then
        "${sudo_cmd[@]}" apt-get update
        "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y --no-install-recommends "${packages[@]}"
    fi
    rustup target list --installed | grep -qx "$TRIPLE" || rustup target add "$TRIPLE"
}

if [[ ${1:-} == --install ]]; then
    install
    exit 0
fi

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
