#!/usr/bin/env bash
# run-http-bench.sh - http_router (--pool-size 32) against HAProxy 2.6 (mode http, http-reuse
# always) and nginx 1.22 (proxy_pass, upstream keepalive 32) as HTTP/1.1
# reverse proxies in front of the same backend, an nginx serving static
# files; the proxy pinned to core 0 (taskset), backend and wrk on core 1.
#
# Usage: bench/run-http-bench.sh [options]
#   --peers LIST       comma list of http_router,haproxy,nginx (default: all)
#   --reps N           reps per peer, interleaved A B C A B C ... (default 3)
#   --duration SEC     wrk run per load (default 5)
#   --conns N          wrk connections, keep-alive and close loads (default 32)
#   --idle N           idle keep-alive connections for RSS per connection
#                      (default 1000)
#   --build-dir DIR    build tree holding examples/http_router (default
#                      build/release if it has one, else this script configures
#                      and builds build/http-bench-release, RelWithDebInfo -O2)
#   --allow-debug      measure a Debug build anyway (refused otherwise; the
#                      build type is recorded in every result)
#   --out DIR          artifacts (default <build>/http-bench)
#   --smoke            --reps 1 --duration 1 --idle 50: checks that the script,
#                      the peers and the report work; its numbers mean nothing
#
# Loads (wrk -t1 --latency, Host: bench.test): keep-alive (a 100-byte file,
# -c CONNS), a new connection per request (the same with "Connection:
# close"), 1 MiB responses (-c 8). Per peer: requests/s, p99 latency, the
# proxy's CPU per request (schedstat of all its threads over the wrk run,
# bench/sni_bench.py's reading), CPU ns per response byte on the 1 MiB load,
# RSS per idle keep-alive connection (N connections after one request each:
# VmRSS delta / N). Medians of the reps go to a markdown table (printed and
# http-bench-<time>.md), JSON (every rep, versions, build type, commit), a
# .dat and a gnuplot chart (.png) in --out. Every process runs with its own
# configuration written there (no Debian service, no /etc config) and is
# stopped when the script ends, however it ends.
# Needs: haproxy nginx-light wrk (install-deps.sh with BH_BENCH_PEERS=1),
# python3, taskset, gnuplot (chart only), 2 cores.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
peers=http_router,haproxy,nginx
reps=3
duration=5
conns=32
idle=1000
build_dir=
out=
allow_debug=0
# shellcheck source=bench/options.sh
. "$here/options.sh"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case $1 in
    --peers) opt_need "$1" $#; peers=$2; shift 2 ;;
    --reps) opt_need "$1" $#; reps=$2; shift 2 ;;
    --duration) opt_need "$1" $#; duration=$2; shift 2 ;;
    --conns) opt_need "$1" $#; conns=$2; shift 2 ;;
    --idle) opt_need "$1" $#; idle=$2; shift 2 ;;
    --build-dir) opt_need "$1" $#; build_dir=$2; shift 2 ;;
    --out) opt_need "$1" $#; out=$2; shift 2 ;;
    --allow-debug) allow_debug=1; shift ;;
    --smoke) reps=1 duration=1 idle=50; shift ;;
    -h | --help) usage 0 ;;
    *) usage_error "unknown option $1" ;;
    esac
done
opt_list --peers "$peers" http_router haproxy nginx
opt_pos --reps "$reps"
opt_pos --duration "$duration"
opt_pos --conns "$conns"
opt_pos --idle "$idle"

if [[ $(nproc) -lt 2 ]]; then
    echo "run-http-bench.sh: needs 2 cores (proxy on core 0, load on core 1)" >&2
    exit 2
fi
for tool in wrk taskset python3; do
    command -v "$tool" >/dev/null || { echo "run-http-bench.sh: $tool not found" >&2; exit 2; }
done

router=${HTTP_ROUTER:-}
if [[ -z $build_dir && -z $router ]]; then
    if [[ -x $root/build/release/examples/http_router ]]; then
        build_dir=$root/build/release
    else
        build_dir=$root/build/http-bench-release
        cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
            -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -g -DNDEBUG" -DBH_BUILD_TESTS=OFF \
            -DBH_BUILD_EXAMPLES=ON -DBH_BUILD_BENCH=OFF >/dev/null
        cmake --build "$build_dir" -j2 --target http_router >/dev/null
    fi
fi
[[ -z $build_dir ]] || build_dir=$(cd "$build_dir" && pwd) # relative to where we run
[[ -n $router ]] || router=$build_dir/examples/http_router
[[ -x $router ]] || {
    echo "run-http-bench.sh: no $router (build it or pass --build-dir)" >&2
    exit 2
}
build_dir=${build_dir:-$(cd "$(dirname "$router")/.." && pwd)}
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build_dir/CMakeCache.txt" 2>/dev/null ||
    true)
build_type=${build_type:-unknown}
case "$build_type" in
    Release | RelWithDebInfo | MinSizeRel) ;;
    Debug)
        [[ $allow_debug == 1 ]] || {
            echo "run-http-bench.sh: $build_dir is a Debug build: its figures are not" \
                "comparable (use the release preset, or --allow-debug)" >&2
            exit 2
        }
        echo "run-http-bench.sh: WARNING: measuring a Debug build (recorded in the results)" >&2 ;;
    *) echo "run-http-bench.sh: WARNING: $build_dir is a '$build_type' build" >&2 ;;
esac
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$root" diff --quiet HEAD 2>/dev/null || commit="$commit+dirty"
out=${out:-$build_dir/http-bench}
mkdir -p "$out"
out=$(cd "$out" && pwd) # the peers' configs name files by absolute path
mkdir -p "$out"
ulimit -n "$(ulimit -Hn)"

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
python3 "$here/http_bench.py" run --router-exe "$router" --out "$out" --reps "$reps" \
    --duration "$duration" --conns "$conns" --idle "$idle" --peers "$peers" \
    --build-type "$build_type" --commit "$commit" &
py=$!
wait "$py"
