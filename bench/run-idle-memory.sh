#!/usr/bin/env bash
# run-idle-memory.sh - what an idle connection costs each stream harness
# proxy, and whether the memory comes back after the clients close.
#
# For each implementation and connection count: starts the sink and the proxy,
# then `bh_stream_driver --idle` warms the proxy up with 16 connections (so
# the loops' and allocator's one-time costs are in the baseline), opens N
# connections, sends one 64 B route frame on each and leaves them idle, then
# finishes and verifies every one. The driver samples the proxy's VmRSS
# before (after the warm-up), with the N connections idle and after they all
# closed (each once it has settled). Prints a table and
# writes one JSON file per run plus a summary:
#   <out>/idle-<impl>-<conns>.json, <out>/idle-memory-summary.json
#
# Usage: bench/run-idle-memory.sh [options]
#   --impl LIST        comma list of handoff,manual_vec,uv_copy,libevent (default: all)
#   --conns LIST       comma list of connection counts (default 5000, plus 20000
#                      when the descriptor limit allows it: the proxy needs
#                      2 per connection)
#   --build-dir DIR    build tree (or its bench/harness dir) holding the binaries
#                      (default: build/release, else build/default)
#   --out DIR          where the JSON goes (default <build>/bench/idle-memory)
#   --settle-ms MS     how long RSS must be steady before a sample (default 1000)
# Exit status: nonzero when a run failed (wrong reply, error exit, timeout).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
impls=handoff,manual_vec,uv_copy,libevent
conns_list=
build_dir=
out=
settle_ms=1000
# shellcheck source=bench/options.sh
. "$here/options.sh"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case $1 in
    --impl) opt_need "$1" $#; impls=$2; shift 2 ;;
    --conns) opt_need "$1" $#; conns_list=$2; shift 2 ;;
    --build-dir) opt_need "$1" $#; build_dir=$2; shift 2 ;;
    --out) opt_need "$1" $#; out=$2; shift 2 ;;
    --settle-ms) opt_need "$1" $#; settle_ms=$2; shift 2 ;;
    -h | --help) usage 0 ;;
    *) usage_error "unknown option $1" ;;
    esac
done

opt_list --impl "$impls" handoff handoff_tunnel manual_vec uv_copy epoll_copy libevent
opt_uint --settle-ms "$settle_ms"
[ -z "$conns_list" ] || [[ "$conns_list" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] ||
    usage_error "--conns takes a comma list of whole numbers >= 1, not '$conns_list'"
if [ -z "$build_dir" ]; then
    for d in "$root/build/release" "$root/build/default"; do
        [ -x "$d/bench/harness/bh_stream_proxy" ] && { build_dir=$d; break; }
    done
fi
bin=${build_dir:-}
[ -x "$bin/bh_stream_proxy" ] || bin=$bin/bench/harness
for p in bh_stream_proxy bh_stream_sink bh_stream_driver; do
    [ -x "$bin/$p" ] || { echo "missing $bin/$p (build first, or pass --build-dir)" >&2; exit 2; }
done
out=${out:-$(cd "$bin/.." && pwd)/idle-memory}
mkdir -p "$out"

hard=$(ulimit -Hn)
fits() { [ "$hard" = unlimited ] || [ "$hard" -ge $((2 * $1 + 100)) ]; }
if [ -z "$conns_list" ]; then
    conns_list=5000
    if fits 20000; then conns_list=5000,20000; else
        echo "note: 20000 connections skipped: the proxy needs $((2 * 20000 + 100)) descriptors, hard limit $hard"
    fi
fi
ulimit -n "$hard"

tmp=$(mktemp -d)
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

# start NAME CMD...: runs CMD in the background, waits for "listening PORT".
start() {
    local name=$1
    shift
    # The child truncates the file only once it runs: a previous run's
    # "listening" line must not be read as this one's.
    rm -f "$tmp/$name.out"
    "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
    local pid=$!
    pids="$pids $pid"
    eval "${name}_pid=$pid"
    for _ in $(seq 200); do
        if [ -f "$tmp/$name.out" ] && grep -q '^listening ' "$tmp/$name.out"; then
            eval "${name}_port=$(sed -n 's/^listening //p' "$tmp/$name.out")"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "$name did not start:" >&2
    cat "$tmp/$name.err" >&2
    exit 1
}

stop() {
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    pids=$(echo "$pids" | tr ' ' '\n' | grep -vx "$1" | tr '\n' ' ')
}

status=0
written=()
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
IFS=, read -r -a conns_arr <<<"$conns_list"
IFS=, read -r -a impl_arr <<<"$impls"
for n in "${conns_arr[@]}"; do
    if ! fits "$n"; then
        echo "skip: $n connections need $((2 * n + 100)) descriptors, hard limit $hard"
        continue
    fi
    for impl in "${impl_arr[@]}"; do
        start sink "$bin/bh_stream_sink" --listen 127.0.0.1:0
        # shellcheck disable=SC2154 # sink_port and proxy_port are set by start
        start proxy "$bin/bh_stream_proxy" --impl "$impl" --listen 127.0.0.1:0 \
            --upstream "127.0.0.1:$sink_port"
        json=$out/idle-$impl-$n.json
        # shellcheck disable=SC2154
        if ! "$bin/bh_stream_driver" --idle --connect "127.0.0.1:$proxy_port" --conns "$n" \
            --proxy-pid "$proxy_pid" --settle-ms "$settle_ms" --json "$json" \
            --meta "impl=$impl" --meta "git_commit=$commit"; then
            echo "FAIL: $impl with $n idle connections" >&2
            status=1
        fi
        [ -s "$json" ] && written+=("$json")
        stop "$proxy_pid"
        stop "$sink_pid"
    done
done
[ ${#written[@]} -gt 0 ] || { echo "no run completed" >&2; exit 1; }

python3 - "$out" "${written[@]}" <<'PY'
import json, os, sys
out = sys.argv[1]
runs = []
for path in sys.argv[2:]:
    with open(path) as f:
        runs.append(json.load(f))
order = {"handoff": 0, "manual_vec": 1, "uv_copy": 2, "epoll_copy": 3, "libevent": 4}
runs.sort(key=lambda r: (r["conns"], order.get(r["impl"], 9)))
print("%-11s %6s %11s %11s %11s %13s %12s %4s" % (
    "impl", "conns", "before KiB", "idle KiB", "after KiB", "B/idle conn", "after/before", "ok"))
for r in runs:
    print("%-11s %6d %11d %11d %11d %13.0f %11.1f%% %4s" % (
        r["impl"], r["conns"], r["rss_before_kib"], r["rss_idle_kib"], r["rss_after_kib"],
        r["bytes_per_idle_conn"], 100.0 * r["after_over_before"],
        "yes" if r["checksum_ok"] else "NO"))
with open(os.path.join(out, "idle-memory-summary.json"), "w") as f:
    json.dump({"runs": runs}, f, indent=1)
print("results: " + out)
PY
exit $status
