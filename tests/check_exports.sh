#!/usr/bin/env bash
# check_exports.sh LIB - fails when the shared library exports any defined
# dynamic symbol without the bh_ prefix.
set -euo pipefail
syms=$(nm -D --defined-only "$1" | awk '{print $3}')
bad=$(printf '%s\n' "$syms" | grep -v '^bh_' || true)
count=$(printf '%s\n' "$syms" | grep -c '^bh_' || true)
if [ -n "$bad" ]; then
    echo "non-bh_ exports:"; echo "$bad"; exit 1
fi
echo "exports ok: $count bh_ symbols"
