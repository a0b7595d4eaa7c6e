#!/bin/sh
# run-benchmark-baseline.sh - build the release preset, run the microbenchmark
# suite (bench/micro) with repetitions, save google-benchmark JSON (commit and
# machine in its context) as micro-<date>.json in build/release/bench/results
# (or --out DIR) and print the key ratios. Nothing in the source tree is
# written unless --publish is given: it copies the JSON to
# bench/results/micro-baseline.json.
#
# Usage:
#   bench/run-benchmark-baseline.sh [--out DIR] [--publish] [--smoke]   build, run, report
#     --smoke: one repetition with a tiny minimum time (checks that every
#     benchmark runs; the numbers mean nothing)
#   bench/run-benchmark-baseline.sh --report FILE             only print the tables for FILE
#
# Environment:
#   BENCH_MIN_TIME=S      minimum seconds per benchmark and repetition (default 0.5;
#                         google-benchmark 1.7 takes a plain number, no "s" suffix)
#   BENCH_REPETITIONS=N   repetitions per benchmark (default 3; medians reported)
#   BENCH_FILTER=REGEX    run only matching benchmarks
#   TASKSET_CORES=LIST    pin the run with `taskset -c LIST` (e.g. 1 or 2-5)
#   PERF_STAT=1           wrap the run in `perf stat` (cycles, instructions,
#                         cache misses, context switches, CPU migrations);
#                         its report goes next to the JSON (micro-<date>.perf.txt)
#   BENCH_SKIP_BUILD=1    use the existing build/release tree as is
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
results="$root/build/release/bench/results"
publish=0

report() {
    json=$1
    if ! command -v python3 >/dev/null 2>&1; then
        echo "python3 not found: ratios not computed; the raw results are in $json" >&2
        return 0
    fi
    python3 - "$json" <<'PY'
import json, sys

with open(sys.argv[1]) as f:
    doc = json.load(f)

# One entry per benchmark: the median aggregate when repetitions were used,
# else the single run. Time is cpu_time, or real_time for benchmarks that
# report wall time (their names end in /real_time).
rows = {}
for b in doc.get("benchmarks", []):
    if b.get("error_occurred"):
        print("ERROR in %s: %s" % (b.get("name"), b.get("error_message")))
        continue
    kind = b.get("run_type")
    if kind == "aggregate" and b.get("aggregate_name") != "median":
        continue
    name = b.get("run_name", b["name"])
    if kind == "iteration" and name in rows:
        continue
    wall = name.endswith("/real_time")
    key = name[: -len("/real_time")] if wall else name
    rows[key] = {
        "time": b["real_time"] if wall else b["cpu_time"],
        "unit": b.get("time_unit", "ns"),
        "bps": b.get("bytes_per_second", 0.0),
        "ips": b.get("items_per_second", 0.0),
        "clock": "wall" if wall else "cpu",
    }

cvs = {}
for b in doc.get("benchmarks", []):
    if b.get("aggregate_name") == "cv":
        name = b.get("run_name", b["name"])
        cvs[name[: -len("/real_time")] if name.endswith("/real_time") else name] = b["cpu_time"] if not name.endswith("/real_time") else b["real_time"]

if not rows:
    print("no benchmark results in %s" % sys.argv[1])
    sys.exit(0)

width = max(len(k) for k in rows)
print()
print("%-*s %14s %5s %11s %14s %7s" % (width, "benchmark (median)", "time/iter", "clock", "MiB/s", "items/s", "cv"))
for k, r in rows.items():
    cv = cvs.get(k)
    print("%-*s %11.1f %-2s %5s %11.1f %14.0f %7s" % (
        width, k, r["time"], r["unit"], r["clock"], r["bps"] / 1048576.0, r["ips"],
        "%.1f%%" % (100 * cv) if cv is not None else "-"))

ratios = [
    ("handoff_buffer / bytes_split", "read_owned_lines/handoff_buffer",
     "read_owned_lines/bytes_split", 1.05),
    ("handoff_buffer / manual_vec_copy", "read_owned_lines/handoff_buffer",
     "read_owned_lines/manual_vec_copy", 1.00),
    ("handoff_buffer / raw_discard (lower bound)", "read_owned_lines/handoff_buffer",
     "read_raw_discard_lower_bound", None),
    ("large: ticket / fire_and_forget", "write_large_chunks/handoff_ticket_single_task",
     "write_large_chunks/handoff_fire_and_forget_single_task", None),
    ("large: fire_and_forget / direct_write",
     "write_large_chunks/handoff_fire_and_forget_single_task",
     "write_large_chunks/direct_write", None),
    ("many: ticket / fire_and_forget", "write_many_tasks/ticket",
     "write_many_tasks/fire_and_forget", None),
    ("cross-thread: ticket / fire_and_forget", "write_many_tasks/cross_thread_ticket",
     "write_many_tasks/cross_thread_fire_and_forget", None),
]
print()
print("ratios of time per iteration (below 1.00 = numerator faster)")
print("%-42s %8s %8s %s" % ("ratio", "value", "goal", ""))
for label, num, den, goal in ratios:
    if num not in rows or den not in rows or rows[den]["time"] == 0:
        print("%-42s %8s" % (label, "n/a"))
        continue
    v = rows[num]["time"] / rows[den]["time"]
    if goal is None:
        print("%-42s %7.3fx %8s" % (label, v, "-"))
    else:
        print("%-42s %7.3fx %7.2fx %s" % (label, v, goal, "ok" if v <= goal else "MISSED"))
PY
}

usage() { echo "usage: $0 [--out DIR] [--publish] [--smoke] | --report FILE" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --report) [ $# -eq 2 ] || usage; report "$2"; exit 0 ;;
        --out) [ $# -ge 2 ] || usage; results=$2; shift ;;
        --publish) publish=1 ;;
        --smoke) BENCH_MIN_TIME=0.001 BENCH_REPETITIONS=1 ;;
        *) usage ;;
    esac
    shift
done

cd "$root"
if [ "${BENCH_SKIP_BUILD:-0}" != 1 ]; then
    cmake --preset release
    cmake --build --preset release --target bench_micro
fi
bin="$root/build/release/bench/bench_micro"
[ -x "$bin" ] || { echo "missing $bin (build the release preset first)" >&2; exit 1; }

mkdir -p "$results"
stamp=$(date +%Y%m%d-%H%M%S)
out="$results/micro-$stamp.json"
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)

set -- "$bin" \
    "--benchmark_min_time=${BENCH_MIN_TIME:-0.5}" \
    "--benchmark_repetitions=${BENCH_REPETITIONS:-3}" \
    --benchmark_report_aggregates_only=true \
    "--benchmark_out=$out" --benchmark_out_format=json \
    "--benchmark_context=git_commit=$commit,taskset=${TASKSET_CORES:-none},kernel=$(uname -r),cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1 | tr ',' ' ')"
if [ -n "${BENCH_FILTER:-}" ]; then
    set -- "$@" "--benchmark_filter=$BENCH_FILTER"
fi
if [ "${PERF_STAT:-0}" = 1 ]; then
    if command -v perf >/dev/null 2>&1; then
        set -- perf stat -e cycles,instructions,cache-misses,context-switches,cpu-migrations \
            -o "$results/micro-$stamp.perf.txt" -- "$@"
    else
        echo "PERF_STAT=1 but perf is not installed; running without it" >&2
    fi
fi
if [ -n "${TASKSET_CORES:-}" ]; then
    set -- taskset -c "$TASKSET_CORES" "$@"
fi

status=0
"$@" || status=$?
if [ -f "$out" ]; then
    echo
    echo "results: $out"
    report "$out"
fi
if [ "${PERF_STAT:-0}" = 1 ] && [ -f "$results/micro-$stamp.perf.txt" ]; then
    echo
    cat "$results/micro-$stamp.perf.txt"
fi
if [ "$publish" = 1 ] && [ "$status" -eq 0 ] && [ -f "$out" ]; then
    cp "$out" "$root/bench/results/micro-baseline.json"
    echo "published: bench/results/micro-baseline.json"
fi
if [ "$status" -ne 0 ]; then
    echo "bench_micro exited with status $status (a benchmark reported an error)" >&2
fi
exit "$status"
