#!/usr/bin/env bash
# run-stream-matrix.sh - every proxy implementation x scenario x completion
# mode x transport through bench/run-stream-harness.sh, then one markdown
# table of the medians with ratios against uv_copy (the plain libuv relay)
# measured in the same alternation, and a gnuplot chart of service ns/B with one panel per
# transport and scenario (bench/benchstats.py reads the results).
#
# Run artifacts (per-run JSON, table, chart data, chart) go to the build tree
# (BUILD/bench/harness/results/matrix-<stamp>/) or to --out DIR; the source
# tree is never written unless --publish is given, which copies the table and
# the chart to bench/results/matrix.md and bench/results/matrix.png (the
# published pair, stating commit, machine, runs and transports).
#
# Usage: bench/run-stream-matrix.sh [options] [-- extra run-stream-harness.sh options]
#   --runs N            runs per implementation and cell (default 5)
#   --duration SEC      per run (default 3)
#   --transport LIST    comma list of tcp,pipe (default tcp)
#   --build-dir DIR     build tree holding the harness binaries
#   --out DIR           where this run's artifacts go (default: in the build tree)
#   --publish           also copy table and chart to bench/results/
#   --smoke             tiny sizes, both transports, checks every result file
#                       for its fields and checksums (the ctest smoke test)
# Environment: the HARNESS_* variables of run-stream-harness.sh, e.g.
# HARNESS_CONNS=8 HARNESS_TUNNEL_BYTES=256KiB to shrink a run.
# Exit status is nonzero when any run failed or (with --smoke) a field is
# missing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
stats="$here/benchstats.py"
runs=${HARNESS_RUNS:-5}
duration=${HARNESS_DURATION:-3}
transports=tcp
out_dir=${BH_RESULTS_DIR:-}
build_dir=${BH_BUILD_DIR:-}
publish=0
smoke=0
pass=()
# shellcheck source=bench/options.sh
. "$here/options.sh"

while [ $# -gt 0 ]; do
    case "$1" in
        --runs) opt_need "$1" $#; runs=$2; shift ;;
        --duration) opt_need "$1" $#; duration=$2; shift ;;
        --transport) opt_need "$1" $#; transports=$2; shift ;;
        --build-dir) opt_need "$1" $#; build_dir=$2; shift ;;
        --out|--results-dir) opt_need "$1" $#; out_dir=$2; shift ;;
        --publish) publish=1 ;;
        --smoke) smoke=1 ;;
        --) shift; pass+=("$@"); break ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) usage_error "unknown option $1" ;;
    esac
    shift
done
opt_pos --runs "$runs"
opt_num --duration "$duration"
opt_list --transport "$transports" tcp pipe
if [ "$smoke" = 1 ]; then
    pass=(--smoke "${pass[@]}")
    transports=tcp,pipe
    runs=1
    duration=0
fi
[ -n "$build_dir" ] && pass=(--build-dir "$build_dir" "${pass[@]}")

stamp=$(date -u +%Y%m%dT%H%M%SZ)
if [ -z "$out_dir" ]; then
    for d in "$build_dir/bench/harness" "$build_dir" "$root/build/release/bench/harness" \
             "$root/build/default/bench/harness"; do
        if [ -n "$d" ] && [ -x "$d/bh_stream_proxy" ]; then out_dir="$d/results/matrix-$stamp"; break; fi
    done
    [ -n "$out_dir" ] || { echo "run-stream-matrix: no build tree found; pass --build-dir or --out" >&2; exit 2; }
fi
impls=(handoff handoff_tunnel manual_vec uv_copy epoll_copy libevent)
scenarios=(fragmented coalesced churn)
completions=(ticket fire_and_forget)
mkdir -p "$out_dir"
list="$out_dir/results.list"
: >"$list"
failed=0

IFS=, read -r -a transport_list <<< "$transports"
for transport in "${transport_list[@]}"; do
    for scenario in "${scenarios[@]}"; do
        for completion in "${completions[@]}"; do
            log=$(mktemp)
            rc=0
            "$here/run-stream-harness.sh" --impl "$(IFS=,; echo "${impls[*]}")" \
                --scenario "$scenario" --transport "$transport" --completion "$completion" \
                --runs "$runs" --duration "$duration" --out "$out_dir" \
                "${pass[@]}" 2>"$log.err" | tee "$log" || rc=$?
            if [ "$rc" != 0 ]; then
                failed=1
                cat "$log.err" >&2
            fi
            awk -v t="$transport" -v s="$scenario" -v c="$completion" \
                '$1 == "result:" { print t, s, c, $2 }' "$log" >>"$list"
            rm -f "$log" "$log.err"
        done
    done
done

table="$out_dir/matrix.md"
python3 "$stats" matrix "$list" "$table" "$out_dir/matrix" "${transport_list[@]}"
echo
cat "$table"
echo
echo "table: $table"

# Chart: service ns/B per implementation, clusters by completion mode, one
# panel per transport (rows) and scenario (columns).
chart="$out_dir/matrix.png"
if command -v gnuplot >/dev/null 2>&1; then
    commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
    {
        echo 'set terminal pngcairo noenhanced size 1100,'"$(( 420 * ${#transport_list[@]} + 60 ))"' font ",10"'
        echo "set output \"$chart\""
        echo "set multiplot layout ${#transport_list[@]},${#scenarios[@]} title \"Stream harness: proxy service cost (ns per byte, median of $runs run(s) x ${duration}s, lower is better); commit $commit, $(nproc) cores\""
        echo 'set style data histogram'
        echo 'set style histogram cluster gap 1'
        echo 'set style fill solid 0.85 border -1'
        echo 'set key below horizontal' # under each panel: never over a bar
        echo 'set ylabel "service ns/B"'
        echo 'set yrange [0:*]'
        echo 'set offsets 0, 0, graph 0.08, 0' # headroom above the tallest bar
        echo 'set grid ytics'
        for t in "${transport_list[@]}"; do
            for scenario in "${scenarios[@]}"; do
                case "$scenario" in
                    fragmented) what="64 B client writes" ;;
                    coalesced) what="16 KiB client writes" ;;
                    *) what="short connections" ;;
                esac
                echo "set title \"$t, $scenario ($what)\""
                echo "plot for [i=2:$(( ${#impls[@]} + 1 ))] \"$out_dir/matrix-$t-$scenario.dat\" using i:xtic(1) title columnheader(i)"
            done
        done
        echo 'unset multiplot'
    } | gnuplot || echo "gnuplot failed; chart not written" >&2
    [ -s "$chart" ] && echo "chart: $chart"
else
    echo "gnuplot not found (apt install gnuplot-nox): chart skipped"
fi

if [ "$publish" = 1 ]; then
    cp "$table" "$root/bench/results/matrix.md"
    [ -s "$chart" ] && cp "$chart" "$root/bench/results/matrix.png"
    echo "published: bench/results/matrix.md${chart:+ and matrix.png}"
fi

if [ "$smoke" = 1 ]; then
    # Every cell must have produced a verified result with every field.
    expected=$(( ${#transport_list[@]} * ${#scenarios[@]} * ${#completions[@]} * ${#impls[@]} ))
    got=$(wc -l <"$list")
    if [ "$got" != "$expected" ]; then
        echo "smoke: expected $expected result files, got $got" >&2
        failed=1
    fi
    python3 "$stats" check "$list" || failed=1
fi
exit "$failed"
