#!/usr/bin/env bash
# check_core_split.sh CORE_SO CORE_A - the core library stands without
# libuv: neither its shared object nor its archive refers to a uv_ symbol,
# and the shared object does not depend on libuv.
set -euo pipefail
so=$1
ar=$2
bad=$( (nm -D --undefined-only "$so"; nm --undefined-only "$ar" 2>/dev/null) | awk '{print $NF}' | grep '^uv_' || true)
if [ -n "$bad" ]; then
    echo "core refers to libuv symbols:"; echo "$bad" | sort -u; exit 1
fi
if readelf -d "$so" | grep -q 'NEEDED.*libuv'; then
    echo "core shared object depends on libuv:"; readelf -d "$so" | grep NEEDED; exit 1
fi
echo "core split ok: no uv_ symbol in $(basename "$so") or $(basename "$ar")"
