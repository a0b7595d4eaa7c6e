#!/usr/bin/env bash
# run-sni-bench.sh - sni_router against sniproxy, HAProxy and nginx (stream
# module, ssl_preread) as SNI routers over loopback: the same TLS backends
# and the same load through each, the router pinned to core 0 (taskset), the
# backends and clients on core 1.
#
#   bench/run-sni-bench.sh [--out DIR] [--rounds N] [--conns N] [--bulk-mib N]
#                          [--idle N] [--routers sni_router,sniproxy,haproxy,nginx]
#                          [--smoke]
#
# --smoke: one round with tiny loads (20 connections, 1 MiB, 20 idle) to check
# that the script, the routers and the report work; its numbers mean nothing.
#
# Measures, per router (medians of N alternating rounds, default 3): new TLS
# connections/s with a small (100-byte) response, bulk MiB/s through one
# established connection (--bulk-mib each way at once, default 64), router
# CPU per connection and per byte (schedstat of every thread), peak RSS, and
# RSS per idle routed connection (--idle connections, default 1000). Prints a
# table with ratios against sni_router, writes sni-bench-<time>.json, a .dat
# and a gnuplot chart (.png) into DIR (default <repo>/build/sni-bench; never
# tracked files).
#
# Every router runs as this script's own process with its own configuration
# on an ephemeral loopback port (no Debian service, no /etc config); every
# process started here is stopped when the script ends, however it ends.
# Needs: sniproxy haproxy nginx-light libnginx-mod-stream (install-deps.sh
# with BH_BENCH_PEERS=1), openssl, python3, taskset, gnuplot (chart only).
# The sni_router binary: SNI_ROUTER (default: built here, RelWithDebInfo -O2,
# in <repo>/build/sni-bench-release).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$repo/build/sni-bench
args=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --out) out=$2; shift 2 ;;
        --rounds|--conns|--bulk-mib|--idle|--routers) args+=("$1" "$2"); shift 2 ;;
        --smoke) args+=(--rounds 1 --conns 20 --bulk-mib 1 --idle 20); shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "run-sni-bench.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

if [[ $(nproc) -lt 2 ]]; then
    echo "run-sni-bench.sh: needs 2 cores (router on core 0, load on core 1)" >&2
    exit 2
fi

router=${SNI_ROUTER:-}
if [[ -z $router ]]; then
    build=$repo/build/sni-bench-release
    cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -g -DNDEBUG" -DBH_BUILD_TESTS=OFF \
        -DBH_BUILD_EXAMPLES=ON -DBH_BUILD_BENCH=OFF >/dev/null
    cmake --build "$build" -j2 --target sni_router >/dev/null
    router=$build/examples/sni_router
fi
mkdir -p "$out"

# The measuring script tracks every process it starts (each in its own
# session) and kills them on exit; forward INT/TERM so its cleanup runs.
py=""
cleanup() {
    if [[ -n $py ]] && kill -0 "$py" 2>/dev/null; then
        kill -TERM "$py" 2>/dev/null || true
        wait "$py" 2>/dev/null || true
    fi
}
trap cleanup EXIT INT TERM
python3 "$repo/bench/sni_bench.py" run --router-exe "$router" --out "$out" "${args[@]}" &
py=$!
wait "$py"
