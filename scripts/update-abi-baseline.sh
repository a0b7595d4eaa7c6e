#!/usr/bin/env bash
# update-abi-baseline.sh [--force] [BUILD_DIR] - regenerates abi/*.abi, the
# libabigail baselines the ctest abi_check compares the shared libraries
# with, from BUILD_DIR (default build/default; it needs debug info: the
# default or release preset, gcc). Run it after a SONAME change (a new minor
# version while 0.x) or to record compatible additions.
#
# Under an unchanged SONAME it refuses (exit 1) when abidiff reports a
# removed or changed function or variable: such a change needs a new SONAME
# (BH_SOVERSION in CMakeLists.txt) first. --force writes the baseline anyway.
set -euo pipefail
cd "$(dirname "$0")/.."
force=0
if [ "${1:-}" = "--force" ]; then force=1; shift; fi
build=${1:-build/default}
for tool in abidw abidiff readelf; do
    command -v "$tool" >/dev/null || { echo "$tool not found (apt install abigail-tools binutils)" >&2; exit 2; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p abi
for name in libbytes_handoff libbytes_handoff_uv; do
    lib=$build/$name.so
    [ -f "$lib" ] || { echo "$lib not found: build it first (cmake --build $build)" >&2; exit 2; }
    readelf -S --wide "$lib" | grep -q '\.debug_info' ||
        { echo "$lib has no debug info: use a Debug or RelWithDebInfo build" >&2; exit 2; }
    # Locations stay in the file: abidiff needs them to tell the public
    # headers' types from private ones (--headers-dir1). Their paths are
    # made relative to the checkout (no machine's path in the file); the
    # line numbers only serve that filter and are not compared.
    abidw --no-corpus-path --no-comp-dir-path --type-id-style hash \
        --headers-dir include --headers-dir "$build/include" \
        --out-file "$tmp/$name.abi" "$lib"
    sed -i "s|path='$PWD/|path='|g" "$tmp/$name.abi"
    old=abi/$name.abi
    if [ -f "$old" ] && [ $force -eq 0 ] &&
       [ "$(head -n1 "$old" | sed "s/.*soname='\([^']*\)'.*/\1/")" = \
         "$(head -n1 "$tmp/$name.abi" | sed "s/.*soname='\([^']*\)'.*/\1/")" ]; then
        report=$(abidiff --no-show-locs --headers-dir1 include --headers-dir1 "$build/include" \
                 --headers-dir2 include --headers-dir2 "$build/include" "$old" "$tmp/$name.abi" || true)
        if grep -E -q '(Functions|Variables) changes summary: ([1-9][0-9]* Removed|[0-9]+ Removed, [1-9][0-9]* Changed)' <<<"$report"; then
            echo "$report"
            echo "$name: removed or changed functions or variables under the same SONAME;" >&2
            echo "raise the version (BH_SOVERSION) first, or pass --force" >&2
            exit 1
        fi
    fi
    cp "$tmp/$name.abi" "$old"
    echo "$old: $(head -n1 "$old" | sed "s/.*soname='\([^']*\)'.*/\1/")"
done
