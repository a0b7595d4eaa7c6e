#!/usr/bin/env bash
# run-stream-harness.sh - end-to-end stream harness: driver -> proxy -> sink.
#
# Runs the proxy implementation(s) --runs times each, alternating them run by
# run (A B A B ...), with the proxy pinned to one core and the driver and sink
# to another (taskset, when available and there are >= 2 cores). Every run is
# verified end to end (sink checksum checked by the driver). For each
# implementation it writes
#   <out>/stream-<impl>-<scenario>-<transport>-<timestamp>.json
# holding the configuration, every run, and the medians over verified runs
# (bench/benchstats.py computes them). <out> is in the build tree unless
# --out says otherwise; nothing is written to the source tree.
# Prints one "result: PATH" line per file. Exit status is nonzero when any run
# failed (wrong byte, error exit, timeout).
#
# Usage: bench/run-stream-harness.sh [options]
#   --impl LIST           comma list of handoff,handoff_tunnel,manual_vec,raw_copy,libevent
#                         (default: all)
#   --scenario S          fragmented (64 B client writes) | coalesced (16 KiB) (default fragmented)
#   --transport T         tcp | pipe (unix domain sockets in a temp dir) (default tcp)
#   --completion C        ticket | fire_and_forget (handoff only) (default ticket)
#   --threads N           proxy worker threads, one loop each (default 1)
#   --conns N             concurrent client connections (default 32)
#   --frames N            route frames per connection (default 64)
#   --frame-bytes N       route frame payload, newline excluded (default 63)
#   --tunnel-bytes SIZE   raw bytes per connection after TUNNEL (default 1MiB)
#   --read-reserve SIZE   proxy read reserve (default 16KiB)
#   --write-budget SIZE   proxy queued-bytes budget per connection (default 2 x read reserve)
#   --max-line SIZE       longest route frame (default 64KiB)
#   --runs N              runs per implementation (default 5)
#   --duration SEC        keep connections cycling this long per run; 0 = one round (default 5)
#   --timeout SEC         give up on a run this long after --duration (default 120)
#   --build-dir DIR       build tree (or its bench/harness dir) holding the binaries
#   --out DIR             where JSON goes (default BUILD/bench/harness/results)
#   --no-pin              do not use taskset
#   --smoke               tiny sizes: --conns 4 --frames 8 --tunnel-bytes 64KiB --runs 1
#                         --duration 0 --timeout 30
# Sizes are passed to the programs as given (K, M, G suffixes; they parse
# them) and reported in bytes as they understood them.
# Environment: BH_BUILD_DIR, BH_RESULTS_DIR, PROXY_CPUS (default 0),
# LOAD_CPUS (default 1), and HARNESS_<OPTION> (e.g. HARNESS_CONNS=4,
# HARNESS_TUNNEL_BYTES=64KiB, HARNESS_RUNS=1) as defaults for the options.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

impls=${HARNESS_IMPL:-handoff,handoff_tunnel,manual_vec,raw_copy,libevent}
scenario=${HARNESS_SCENARIO:-fragmented}
transport=${HARNESS_TRANSPORT:-tcp}
completion=${HARNESS_COMPLETION:-ticket}
threads=${HARNESS_THREADS:-1}
conns=${HARNESS_CONNS:-32}
frames=${HARNESS_FRAMES:-64}
frame_bytes=${HARNESS_FRAME_BYTES:-63}
tunnel_bytes=${HARNESS_TUNNEL_BYTES:-1MiB}
read_reserve=${HARNESS_READ_RESERVE:-16KiB}
write_budget=${HARNESS_WRITE_BUDGET:-}
max_line=${HARNESS_MAX_LINE:-64KiB}
runs=${HARNESS_RUNS:-5}
duration=${HARNESS_DURATION:-5}
timeout=${HARNESS_TIMEOUT:-120}
build_dir=${BH_BUILD_DIR:-}
results_dir=${BH_RESULTS_DIR:-}
stats="$here/benchstats.py"
pin=1

die() { echo "run-stream-harness: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --impl) impls=$2; shift ;;
        --scenario) scenario=$2; shift ;;
        --transport) transport=$2; shift ;;
        --completion) completion=$2; shift ;;
        --threads) threads=$2; shift ;;
        --conns) conns=$2; shift ;;
        --frames) frames=$2; shift ;;
        --frame-bytes) frame_bytes=$2; shift ;;
        --tunnel-bytes) tunnel_bytes=$2; shift ;;
        --read-reserve) read_reserve=$2; shift ;;
        --write-budget) write_budget=$2; shift ;;
        --max-line) max_line=$2; shift ;;
        --runs) runs=$2; shift ;;
        --duration) duration=$2; shift ;;
        --timeout) timeout=$2; shift ;;
        --build-dir) build_dir=$2; shift ;;
        --out|--results-dir) results_dir=$2; shift ;;
        --no-pin) pin=0 ;;
        --smoke) conns=4 frames=8 tunnel_bytes=64KiB runs=1 duration=0 timeout=30 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done

case "$scenario" in fragmented|coalesced) ;; *) die "--scenario fragmented|coalesced" ;; esac
case "$transport" in tcp|pipe) ;; *) die "--transport tcp|pipe" ;; esac
case "$completion" in ticket|fire_and_forget) ;; *) die "--completion ticket|fire_and_forget" ;; esac
budget_arg=()
[ -n "$write_budget" ] && budget_arg=(--write-budget "$write_budget")
IFS=, read -r -a impl_list <<< "$impls"
for i in "${impl_list[@]}"; do
    case "$i" in handoff|handoff_tunnel|manual_vec|raw_copy|libevent) ;; *) die "unknown impl $i" ;; esac
done

# Locate the binaries: a build tree, or its bench/harness directory.
find_bin_dir() {
    local d
    for d in "$build_dir" "$build_dir/bench/harness" "$root/build/release/bench/harness" \
             "$root/build-harness/bench/harness" "$root/build/default/bench/harness"; do
        [ -n "$d" ] && [ -x "$d/bh_stream_proxy" ] && { echo "$d"; return 0; }
    done
    return 1
}
bin=$(find_bin_dir) || die "bh_stream_proxy not found; build first (cmake --preset release && cmake --build build/release) or pass --build-dir"

proxy_cpus=${PROXY_CPUS:-0}
load_cpus=${LOAD_CPUS:-1}
proxy_pin=()
load_pin=()
pinned=false
if [ "$pin" = 1 ] && command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
    proxy_pin=(taskset -c "$proxy_cpus")
    load_pin=(taskset -c "$load_cpus")
    pinned=true
fi

[ -n "$results_dir" ] || results_dir="$bin/results"
mkdir -p "$results_dir"
work=$(mktemp -d "${TMPDIR:-/tmp}/bh-stream.XXXXXX")
live_pids=()
cleanup() {
    local p
    for p in "${live_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# Waits until $1 holds a complete "listening X" line from process $2; prints X.
wait_listening() {
    local file=$1 pid=$2 i
    for i in $(seq 200); do
        if [ -s "$file" ] && [ "$(wc -l < "$file")" -ge 1 ]; then
            awk 'NR == 1 && $1 == "listening" { print $2 }' "$file"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# Stops process $1 with SIGTERM; sets stop_rc to its exit status. (Not run in
# a command substitution: a subshell cannot wait for this shell's children.)
stop_process() {
    stop_rc=0
    kill -TERM "$1" 2>/dev/null || true
    wait "$1" || stop_rc=$?
}

# run_one IMPL RUN OUT_JSON: one verified run; returns nonzero on failure.
run_one() {
    local impl=$1 run=$2 out=$3 dir="$work/$1-$2"
    mkdir -p "$dir"
    local sink_addr proxy_addr
    if [ "$transport" = pipe ]; then
        sink_addr="unix:$dir/sink.sock"
        proxy_addr="unix:$dir/proxy.sock"
    else
        sink_addr=127.0.0.1:0
        proxy_addr=127.0.0.1:0
    fi
    "${load_pin[@]}" "$bin/bh_stream_sink" --listen "$sink_addr" >"$dir/sink.out" 2>"$dir/sink.err" &
    local sink_pid=$!
    live_pids+=("$sink_pid")
    local sink_at
    sink_at=$(wait_listening "$dir/sink.out" "$sink_pid") || { cat "$dir/sink.err" >&2; return 1; }
    [ "$transport" = pipe ] && sink_at="unix:$sink_at" || sink_at="127.0.0.1:$sink_at"

    "${proxy_pin[@]}" "$bin/bh_stream_proxy" --impl "$impl" --listen "$proxy_addr" \
        --upstream "$sink_at" --threads "$threads" --read-reserve "$read_reserve" \
        "${budget_arg[@]}" --max-line "$max_line" --completion "$completion" \
        --stats-file "$dir/proxy.stats" >"$dir/proxy.out" 2>"$dir/proxy.err" &
    local proxy_pid=$!
    live_pids+=("$proxy_pid")
    local proxy_at
    proxy_at=$(wait_listening "$dir/proxy.out" "$proxy_pid") || { cat "$dir/proxy.err" >&2; return 1; }
    [ "$transport" = pipe ] && proxy_at="unix:$proxy_at" || proxy_at="127.0.0.1:$proxy_at"

    local drc=0
    "${load_pin[@]}" "$bin/bh_stream_driver" --connect "$proxy_at" --proxy-pid "$proxy_pid" \
        --conns "$conns" --frames "$frames" --frame-bytes "$frame_bytes" \
        --tunnel-bytes "$tunnel_bytes" --scenario "$scenario" --duration "$duration" \
        --timeout "$timeout" --json "$dir/driver.json" \
        --meta "impl=$impl" --meta "scenario=$scenario" --meta "transport=$transport" \
        --meta "completion=$completion" --meta "run=$run" 2>"$dir/driver.err" || drc=$?
    local prc src
    stop_process "$proxy_pid"
    prc=$stop_rc
    stop_process "$sink_pid"
    src=$stop_rc
    live_pids=()
    cat "$dir/driver.err" "$dir/proxy.err" "$dir/sink.err" >&2

    # One run file: the driver's object, the proxy's, the exit statuses.
    [ -s "$dir/driver.json" ] ||
        echo '{"impl": "'"$impl"'", "run": "'"$run"'", "checksum_ok": false, "error": "driver wrote no result"}' >"$dir/driver.json"
    [ -s "$dir/proxy.stats" ] || echo '{}' >"$dir/proxy.stats"
    jq -s --argjson d "$drc" --argjson p "$prc" --argjson s "$src" \
        '.[0] + .[1] + {driver_exit: $d, proxy_exit: $p, sink_exit: $s}' \
        "$dir/driver.json" "$dir/proxy.stats" >"$out"
    jq -e '.checksum_ok == true and .driver_exit == 0 and .proxy_exit == 0 and .sink_exit == 0' \
        "$out" >/dev/null
}

stamp=$(date -u +%Y%m%dT%H%M%S).$(date +%N | cut -c1-3)Z
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
failed_total=0

echo "stream harness: impls=${impls} scenario=$scenario transport=$transport completion=$completion threads=$threads conns=$conns frames=$frames x $frame_bytes B tunnel=$tunnel_bytes read_reserve=$read_reserve write_budget=${write_budget:-2x read reserve} runs=$runs duration=${duration}s pinned=$pinned (proxy cpus $proxy_cpus, driver+sink cpus $load_cpus)"
for run in $(seq 1 "$runs"); do
    for impl in "${impl_list[@]}"; do
        f="$work/run-$impl-$run.json"
        if run_one "$impl" "$run" "$f"; then
            echo "  run $run $impl: ok  $(jq -r '"\(.throughput_mib_s) MiB/s  \(.service_ns_per_byte) ns/B  \(.service_cpu_cores) cores  vcsw \(.voluntary_ctxt_switches)"' "$f")"
        else
            echo "  run $run $impl: FAILED ($(jq -r '.error' "$f"))"
            failed_total=$((failed_total + 1))
        fi
    done
done

run_files=()
for impl in "${impl_list[@]}"; do
    for run in $(seq 1 "$runs"); do run_files+=("$work/run-$impl-$run.json"); done
done
python3 "$stats" summary "$results_dir" scenario="$scenario" transport="$transport" \
    completion="$completion" duration_s="$duration" pinned="$pinned" \
    proxy_cpus="$proxy_cpus" load_cpus="$load_cpus" nproc="$(nproc)" kernel="$(uname -r)" \
    git_commit="$commit" timestamp="$stamp" -- "${run_files[@]}"

[ "$failed_total" = 0 ]
