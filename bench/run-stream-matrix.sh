#!/usr/bin/env bash
# run-stream-matrix.sh - every proxy implementation x scenario x completion
# mode through bench/run-stream-harness.sh, then one markdown table of the
# medians with ratios against raw_copy measured in the same alternation, and
# a gnuplot chart of service ns/B (bench/results/matrix.png).
#
# Usage: bench/run-stream-matrix.sh [options] [-- extra run-stream-harness.sh options]
#   --runs N            runs per implementation and cell (default 5)
#   --duration SEC      per run (default 3)
#   --transport LIST    comma list of tcp,pipe (default tcp)
#   --build-dir DIR     build tree holding the harness binaries
#   --results-dir DIR   JSON, table and chart go here (default bench/results)
#   --smoke             tiny sizes, both transports, checks every result file
#                       for its fields and checksums (the ctest smoke test)
# Environment: the HARNESS_* variables of run-stream-harness.sh, e.g.
# HARNESS_CONNS=8 HARNESS_TUNNEL_BYTES=256KiB to shrink a run.
# Exit status is nonzero when any run failed or (with --smoke) a field is
# missing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
runs=${HARNESS_RUNS:-5}
duration=${HARNESS_DURATION:-3}
transports=tcp
results_dir=${BH_RESULTS_DIR:-$root/bench/results}
smoke=0
pass=()

while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs=$2; shift ;;
        --duration) duration=$2; shift ;;
        --transport) transports=$2; shift ;;
        --build-dir) pass+=(--build-dir "$2"); shift ;;
        --results-dir) results_dir=$2; shift ;;
        --smoke) smoke=1 ;;
        --) shift; pass+=("$@"); break ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "run-stream-matrix: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
if [ "$smoke" = 1 ]; then
    pass=(--smoke "${pass[@]}")
    transports=tcp,pipe
    runs=1
    duration=0
fi

impls=(handoff handoff_tunnel manual_vec raw_copy libevent)
scenarios=(fragmented coalesced)
completions=(ticket fire_and_forget)
mkdir -p "$results_dir"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
list=$(mktemp)
trap 'rm -f "$list"' EXIT
failed=0

IFS=, read -r -a transport_list <<< "$transports"
for transport in "${transport_list[@]}"; do
    for scenario in "${scenarios[@]}"; do
        for completion in "${completions[@]}"; do
            log=$(mktemp)
            rc=0
            "$here/run-stream-harness.sh" --impl "$(IFS=,; echo "${impls[*]}")" \
                --scenario "$scenario" --transport "$transport" --completion "$completion" \
                --runs "$runs" --duration "$duration" --results-dir "$results_dir" \
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

# Value of key in the "median" block of a result file ("null" when absent).
median_of() {
    awk -v k="\"$2\":" '/"median": \{/ { m = 1; next } m && /^  \}/ { exit }
        m && $1 == k { v = $2; sub(/,$/, "", v); print v; found = 1; exit }
        END { if (!found) print "null" }' "$1"
}
top_of() { awk -v k="\"$2\":" '$1 == k { v = $2; sub(/,$/, "", v); gsub(/"/, "", v); print v; exit }' "$1"; }
file_for() { awk -v t="$1" -v s="$2" -v c="$3" -v i="$4" '$1 == t && $2 == s && $3 == c && index($4, "/stream-" i "-") { print $4; exit }' "$list"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "null" || b == "null" || b + 0 == 0) print "n/a"; else printf "%.2f\n", a / b }'; }
fmt() { awk -v v="$1" -v p="$2" 'BEGIN { if (v == "null" || v == "") print "n/a"; else printf "%.*f\n", p, v }'; }

table="$results_dir/matrix-$stamp.md"
{
    sample=$(head -n 1 "$list" | awk '{ print $4 }')
    if [ -n "$sample" ]; then
        echo "Stream harness matrix, $(date -u +%Y-%m-%d), $(nproc) cores, threads $(top_of "$sample" threads), conns $(top_of "$sample" conns), frames $(top_of "$sample" frames) x $(top_of "$sample" frame_bytes) B, tunnel $(top_of "$sample" tunnel_bytes) B/conn, read reserve $(top_of "$sample" read_reserve) B, write budget $(top_of "$sample" write_budget) B, $runs run(s) x ${duration}s per cell, medians; pinned: $(top_of "$sample" pinned); commit $(top_of "$sample" git_commit)."
        echo
    fi
    echo "| transport | scenario | completion | impl | MiB/s | service cores | service ns/B | ns/B vs raw_copy | MiB/s vs raw_copy | p50 ms | p99 ms | p999 ms | vol. cs | invol. cs | peak RSS MiB | RSS growth KiB/conn | runs ok |"
    echo "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for transport in "${transport_list[@]}"; do
        for scenario in "${scenarios[@]}"; do
            for completion in "${completions[@]}"; do
                base=$(file_for "$transport" "$scenario" "$completion" raw_copy)
                base_nsb=null base_mib=null
                if [ -n "$base" ]; then
                    base_nsb=$(median_of "$base" service_ns_per_byte)
                    base_mib=$(median_of "$base" throughput_mib_s)
                fi
                for impl in "${impls[@]}"; do
                    f=$(file_for "$transport" "$scenario" "$completion" "$impl")
                    [ -n "$f" ] || continue
                    nsb=$(median_of "$f" service_ns_per_byte)
                    mib=$(median_of "$f" throughput_mib_s)
                    rss=$(median_of "$f" peak_rss_kib)
                    rss0=$(median_of "$f" rss_start_kib)
                    growth=$(awk -v p="$rss" -v s="$rss0" -v n="$(top_of "$f" conns)" \
                        'BEGIN { if (p == "null" || s == "null") print "n/a"; else printf "%.1f\n", (p - s) / n }')
                    echo "| $transport | $scenario | $completion | $impl | $(fmt "$mib" 1) | $(fmt "$(median_of "$f" service_cpu_cores)" 2) | $(fmt "$nsb" 2) | $(ratio "$nsb" "$base_nsb") | $(ratio "$mib" "$base_mib") | $(fmt "$(median_of "$f" latency_p50_ms)" 1) | $(fmt "$(median_of "$f" latency_p99_ms)" 1) | $(fmt "$(median_of "$f" latency_p999_ms)" 1) | $(fmt "$(median_of "$f" voluntary_ctxt_switches)" 0) | $(fmt "$(median_of "$f" involuntary_ctxt_switches)" 0) | $(awk -v r="$rss" 'BEGIN { if (r == "null") print "n/a"; else printf "%.1f\n", r / 1024 }') | $growth | $(top_of "$f" runs_ok)/$(top_of "$f" runs_requested) |"
                done
            done
        done
    done
} >"$table"
echo
cat "$table"
echo
echo "table: $table"

# Chart: service ns/B per implementation, one panel per scenario, clusters by
# completion mode (first transport).
if command -v gnuplot >/dev/null 2>&1; then
    t0=${transport_list[0]}
    for scenario in "${scenarios[@]}"; do
        dat="$results_dir/matrix-$stamp-$scenario.dat"
        {
            echo "completion ${impls[*]}"
            for completion in "${completions[@]}"; do
                row=$completion
                for impl in "${impls[@]}"; do
                    f=$(file_for "$t0" "$scenario" "$completion" "$impl")
                    v=null
                    [ -n "$f" ] && v=$(median_of "$f" service_ns_per_byte)
                    [ "$v" = null ] && v=NaN
                    row="$row $v"
                done
                echo "$row"
            done
        } >"$dat"
    done
    gnuplot <<EOF || echo "gnuplot failed; chart not written" >&2
set terminal pngcairo noenhanced size 1100,480 font ",10"
set output "$results_dir/matrix.png"
set multiplot layout 1,2 title "Stream harness: proxy service cost (ns per byte, median, lower is better; $t0, $(nproc) cores)"
set style data histogram
set style histogram cluster gap 1
set style fill solid 0.85 border -1
set key top left
set ylabel "service ns/B"
set yrange [0:*]
set grid ytics
set title "fragmented (64 B client writes)"
plot for [i=2:$(( ${#impls[@]} + 1 ))] "$results_dir/matrix-$stamp-fragmented.dat" using i:xtic(1) title columnheader(i)
set title "coalesced (16 KiB client writes)"
plot for [i=2:$(( ${#impls[@]} + 1 ))] "$results_dir/matrix-$stamp-coalesced.dat" using i:xtic(1) title columnheader(i)
unset multiplot
EOF
    [ -s "$results_dir/matrix.png" ] && echo "chart: $results_dir/matrix.png"
else
    echo "gnuplot not found (apt install gnuplot-nox): chart skipped"
fi

if [ "$smoke" = 1 ]; then
    # Every cell must have produced a verified result with every field.
    expected=$(( ${#transport_list[@]} * ${#scenarios[@]} * ${#completions[@]} * ${#impls[@]} ))
    got=$(wc -l <"$list")
    if [ "$got" != "$expected" ]; then
        echo "smoke: expected $expected result files, got $got" >&2
        failed=1
    fi
    while read -r _ _ _ f; do
        grep -q '"checksum_ok": true' "$f" || { echo "smoke: checksum failure in $f" >&2; failed=1; }
        for k in throughput_mib_s service_cpu_cores service_ns_per_byte latency_p50_ms latency_p99_ms \
                 latency_p999_ms voluntary_ctxt_switches involuntary_ctxt_switches peak_rss_kib rss_start_kib; do
            v=$(median_of "$f" "$k")
            if [ "$v" = null ]; then
                echo "smoke: $k missing in $f" >&2
                failed=1
            fi
        done
        for k in proxy_rusage_cpu_ns proxy_rusage_maxrss_kib connections_completed bytes; do
            grep -q "\"$k\": [0-9]" "$f" || { echo "smoke: $k missing in $f" >&2; failed=1; }
        done
    done <"$list"
    [ "$failed" = 0 ] && echo "smoke: all $got result files verified"
fi
exit "$failed"
