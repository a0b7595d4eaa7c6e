#!/usr/bin/env bash
# check_no_libuv.sh EXE... - the core's test executables stand without
# libuv: none defines or refers to a uv_ symbol and none loads libuv.
set -euo pipefail
status=0
for exe in "$@"; do
    syms=$(nm "$exe" | awk '{print $NF}' | grep -E '^uv_' | sort -u || true)
    if [ -n "$syms" ]; then
        echo "$(basename "$exe") refers to libuv:"; echo "$syms" | head -n 5; status=1
    fi
    if readelf -d "$exe" | grep -q 'NEEDED.*libuv'; then
        echo "$(basename "$exe") loads libuv"; status=1
    fi
done
[ $status -eq 0 ] && echo "core tests without libuv: $# executables"
exit $status
