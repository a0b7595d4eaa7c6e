#!/usr/bin/env bash
# check_exports.sh LIB - fails when the shared library exports a defined
# dynamic symbol without the bh_ prefix, or one with the internal bh__
# prefix (internal helpers are static or hidden, never exported).
set -euo pipefail
syms=$(nm -D --defined-only "$1" | awk '{print $3}')
bad=$(printf '%s\n' "$syms" | grep -v '^bh_' || true)
internal=$(printf '%s\n' "$syms" | grep '^bh__' || true)
count=$(printf '%s\n' "$syms" | grep -c '^bh_' || true)
if [ -n "$bad" ]; then
    echo "non-bh_ exports:"; echo "$bad"; exit 1
fi
if [ -n "$internal" ]; then
    echo "internal bh__ exports:"; echo "$internal"; exit 1
fi
echo "exports ok: $count bh_ symbols, none bh__"
