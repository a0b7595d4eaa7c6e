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
#   --impl LIST           comma list of handoff,handoff_tunnel,manual_vec,uv_copy,epoll_copy,
#                         libevent (default: all)
#   --scenario S          fragmented (64 B client writes) | coalesced (16 KiB) | churn (many
#                         short connections: defaults --conns 8 --total 4000 --frames 1
#                         --tunnel-bytes 1KiB, 16 KiB writes, one round) (default fragmented)
#   --total N             connections per run in all, replaced as they finish (churn: 4000)
#   --count               after the timed runs, one counting pass per implementation (not
#                         timed): system calls per connection by name (strace -c -f) and heap
#                         allocations per connection (an LD_PRELOAD counter), added to the
#                         result as syscalls_per_conn, syscall_counts_per_conn, allocs_per_conn
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
#                         --duration 0 --timeout 30 (churn: --total 16, one frame)
# Sizes are passed to the programs as given (K, M, G suffixes; they parse
# them) and reported in bytes as they understood them.
# Environment: BH_BUILD_DIR, BH_RESULTS_DIR, PROXY_CPUS (default 0),
# LOAD_CPUS (default 1), and HARNESS_<OPTION> (e.g. HARNESS_CONNS=4,
# HARNESS_TUNNEL_BYTES=64KiB, HARNESS_RUNS=1) as defaults for the options.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

impls=${HARNESS_IMPL:-handoff,handoff_tunnel,manual_vec,uv_copy,epoll_copy,libevent}
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
total=${HARNESS_TOTAL:-}
count=0
pin=1

# shellcheck source=bench/options.sh
. "$here/options.sh"
die() { usage_error "$*"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --impl) opt_need "$1" $#; impls=$2; shift ;;
        --scenario) opt_need "$1" $#; scenario=$2; shift ;;
        --transport) opt_need "$1" $#; transport=$2; shift ;;
        --completion) opt_need "$1" $#; completion=$2; shift ;;
        --threads) opt_need "$1" $#; threads=$2; shift ;;
        --conns) opt_need "$1" $#; conns=$2; conns_set=1; shift ;;
        --total) opt_need "$1" $#; total=$2; shift ;;
        --count) count=1 ;;
        --frames) opt_need "$1" $#; frames=$2; frames_set=1; shift ;;
        --frame-bytes) opt_need "$1" $#; frame_bytes=$2; shift ;;
        --tunnel-bytes) opt_need "$1" $#; tunnel_bytes=$2; tunnel_set=1; shift ;;
        --read-reserve) opt_need "$1" $#; read_reserve=$2; shift ;;
        --write-budget) opt_need "$1" $#; write_budget=$2; shift ;;
        --max-line) opt_need "$1" $#; max_line=$2; shift ;;
        --runs) opt_need "$1" $#; runs=$2; shift ;;
        --duration) opt_need "$1" $#; duration=$2; shift ;;
        --timeout) opt_need "$1" $#; timeout=$2; shift ;;
        --build-dir) opt_need "$1" $#; build_dir=$2; shift ;;
        --out|--results-dir) opt_need "$1" $#; results_dir=$2; shift ;;
        --no-pin) pin=0 ;;
        --smoke) conns=4 conns_set=1 frames=8 tunnel_bytes=64KiB total=16 runs=1 duration=0 timeout=30 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done

for v in conns frames runs; do opt_pos "--${v}" "${!v}"; done
opt_uint --frame-bytes "$frame_bytes"
opt_pos --threads "$threads"
opt_num --duration "$duration"
opt_num --timeout "$timeout"
opt_list --impl "$impls" handoff handoff_tunnel manual_vec uv_copy epoll_copy libevent
case "$scenario" in
    fragmented|coalesced) ;;
    churn)
        # Many short connections: one route frame and a 1 KiB tunnel each, the
        # cost of a connection's life rather than of its bytes.
        [ -n "${conns_set:-}" ] || [ -n "${HARNESS_CONNS:-}" ] || conns=8
        [ -n "$total" ] || total=4000
        [ -n "${frames_set:-}" ] || [ -n "${HARNESS_FRAMES:-}" ] || frames=1
        [ -n "${tunnel_set:-}" ] || [ -n "${HARNESS_TUNNEL_BYTES:-}" ] || tunnel_bytes=1KiB
        duration=0 ;;
    *) die "--scenario fragmented|coalesced|churn" ;;
esac
[ -z "$total" ] || [[ "$total" =~ ^[1-9][0-9]*$ ]] || die "--total takes a positive whole number"
total_arg=()
[ -n "$total" ] && total_arg=(--total "$total")
driver_scenario=$scenario
[ "$scenario" = churn ] && driver_scenario=coalesced
case "$transport" in tcp|pipe) ;; *) die "--transport tcp|pipe" ;; esac
case "$completion" in ticket|fire_and_forget) ;; *) die "--completion ticket|fire_and_forget" ;; esac
budget_arg=()
[ -n "$write_budget" ] && budget_arg=(--write-budget "$write_budget")
IFS=, read -r -a impl_list <<< "$impls"

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
# The build type of the tree measured, recorded in every result; a Debug
# (unoptimised) tree is measured only when asked for loudly.
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$bin/../../CMakeCache.txt" 2>/dev/null || true)
build_type=${build_type:-unknown}
case "$build_type" in
    Release|RelWithDebInfo|MinSizeRel) ;;
    *) echo "run-stream-harness: WARNING: $bin is a '$build_type' build, not optimised: its figures are not comparable (use the release preset)" >&2 ;;
esac

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

# run_one IMPL RUN OUT_JSON [count]: one verified run; returns nonzero on
# failure. With "count" the proxy runs under strace -c -f with the
# allocation counter preloaded (a counting pass: its timing means nothing).
run_one() {
    local impl=$1 run=$2 out=$3 mode=${4:-} dir="$work/$1-$2${4:+-$4}"
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

    local wrap=()
    if [ "$mode" = count ]; then
        wrap=(env "LD_PRELOAD=$bin/libbh_malloc_count.so" "BH_MALLOC_COUNT_FILE=$dir/allocs"
              strace ${BH_STRACE_ARGS:--c} -f -o "$dir/strace")
    fi
    "${proxy_pin[@]}" "${wrap[@]}" "$bin/bh_stream_proxy" --impl "$impl" --listen "$proxy_addr" \
        --upstream "$sink_at" --threads "$threads" --read-reserve "$read_reserve" \
        "${budget_arg[@]}" --max-line "$max_line" --completion "$completion" \
        --stats-file "$dir/proxy.stats" >"$dir/proxy.out" 2>"$dir/proxy.err" &
    local proxy_pid=$! listen_pid=$!
    live_pids+=("$proxy_pid")
    local proxy_at
    proxy_at=$(wait_listening "$dir/proxy.out" "$listen_pid") || { cat "$dir/proxy.err" >&2; return 1; }
    # Under strace the proxy is strace's child: measure and stop the proxy.
    [ "$mode" = count ] && proxy_pid=$(pgrep -P "$listen_pid" -n bh_stream_proxy)
    [ "$transport" = pipe ] && proxy_at="unix:$proxy_at" || proxy_at="127.0.0.1:$proxy_at"

    local drc=0
    "${load_pin[@]}" "$bin/bh_stream_driver" --connect "$proxy_at" --proxy-pid "$proxy_pid" \
        --conns "$conns" --frames "$frames" --frame-bytes "$frame_bytes" \
        --tunnel-bytes "$tunnel_bytes" --scenario "$driver_scenario" --duration "$duration" \
        "${total_arg[@]}" \
        --timeout "$timeout" --json "$dir/driver.json" \
        --meta "impl=$impl" --meta "scenario=$scenario" --meta "transport=$transport" \
        --meta "completion=$completion" --meta "run=$run" 2>"$dir/driver.err" || drc=$?
    local prc src
    if [ "$mode" = count ]; then
        kill -TERM "$proxy_pid" 2>/dev/null || true
        stop_process "$listen_pid" # strace exits with the proxy's status
    else
        stop_process "$proxy_pid"
    fi
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
    if [ "$mode" = count ]; then
        python3 "$stats" counts "$out" "$dir/strace" "$dir/allocs" || return 1
    fi
    jq -e '.checksum_ok == true and .driver_exit == 0 and .proxy_exit == 0 and .sink_exit == 0' \
        "$out" >/dev/null
}

stamp=$(date -u +%Y%m%dT%H%M%S).$(date +%N | cut -c1-3)Z
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
failed_total=0

echo "stream harness: impls=${impls} scenario=$scenario total=${total:-none} transport=$transport completion=$completion threads=$threads conns=$conns frames=$frames x $frame_bytes B tunnel=$tunnel_bytes read_reserve=$read_reserve write_budget=${write_budget:-2x read reserve} runs=$runs duration=${duration}s pinned=$pinned (proxy cpus $proxy_cpus, driver+sink cpus $load_cpus)"
for run in $(seq 1 "$runs"); do
    for impl in "${impl_list[@]}"; do
        f="$work/run-$impl-$run.json"
        if run_one "$impl" "$run" "$f"; then
            if [ "$scenario" = churn ]; then
                echo "  run $run $impl: ok  $(jq -r '"\(.connections_completed) conns  \(.service_us_per_conn * 100 | round / 100) us/conn  \(.service_cpu_cores * 1000 | round / 1000) cores  vcsw \(.voluntary_ctxt_switches)"' "$f")"
            else
                echo "  run $run $impl: ok  $(jq -r '"\(.throughput_mib_s * 10 | round / 10) MiB/s  \(.service_ns_per_byte * 1000 | round / 1000) ns/B  \(.service_cpu_cores * 1000 | round / 1000) cores  vcsw \(.voluntary_ctxt_switches)"' "$f")"
            fi
        else
            echo "  run $run $impl: FAILED ($(jq -r '.error' "$f"))"
            failed_total=$((failed_total + 1))
        fi
    done
done

if [ "$count" = 1 ]; then
    command -v strace >/dev/null 2>&1 || die "--count needs strace"
    for impl in "${impl_list[@]}"; do
        f="$work/run-$impl-count.json"
        if run_one "$impl" count "$f" count; then
            echo "  count $impl: $(jq -r '"\(.syscalls_per_conn * 10 | round / 10) syscalls/conn  \(.allocs_per_conn * 10 | round / 10) allocs/conn"' "$f")"
        else
            echo "  count $impl: FAILED ($(jq -r '.error' "$f"))"
            failed_total=$((failed_total + 1))
        fi
    done
fi

run_files=()
for impl in "${impl_list[@]}"; do
    for run in $(seq 1 "$runs"); do run_files+=("$work/run-$impl-$run.json"); done
    [ "$count" = 1 ] && run_files+=("$work/run-$impl-count.json")
done
python3 "$stats" summary "$results_dir" scenario="$scenario" transport="$transport" \
    completion="$completion" duration_s="$duration" pinned="$pinned" \
    proxy_cpus="$proxy_cpus" load_cpus="$load_cpus" nproc="$(nproc)" kernel="$(uname -r)" \
    git_commit="$commit" build_type="$build_type" timestamp="$stamp" -- "${run_files[@]}" \
    | tee "$work/summary.out"
if [ "$scenario" = churn ]; then
    mapfile -t results < <(sed -n 's/^result: //p' "$work/summary.out")
    python3 "$stats" churn "$results_dir/churn-$transport-$completion-$stamp.md" "${results[@]}"
fi

[ "$failed_total" = 0 ]
