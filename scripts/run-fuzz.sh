#!/usr/bin/env bash
# run-fuzz.sh - build the libFuzzer targets with clang (BH_FUZZ=ON, -O2 with
# ASan + UBSan), replay the saved reproducers in tests/fuzz/regressions/<target>/
# once each, then fuzz each target starting from the seed corpus in
# tests/fuzz/corpus/<target>/ (libFuzzer runs every seed first). Fails on any
# finding (crash, sanitizer report, leak, timeout, OOM) and prints, per
# target, executions, execs/s, coverage (libFuzzer's cov: edges), wall time
# and CPU time (on a shared machine, execs per CPU second is the comparable
# rate).
#
#   scripts/run-fuzz.sh            bounded run: FUZZ_SECONDS per target (CI)
#   scripts/run-fuzz.sh --long     each target to FUZZ_RUNS executions
#                                  (default 10,000,000), one after the other
#
# Environment:
#   FUZZ_SECONDS  seconds per target in the bounded run (default 20)
#   FUZZ_RUNS     executions per target with --long (default 10000000)
#   FUZZ_JOBS     with --long: split each target's executions over this many
#                 libFuzzer jobs run at once (-jobs/-workers, sharing the
#                 corpus; logs $BUILD_DIR/fuzz-<target>-jobs/fuzz-<n>.log);
#                 default 1, one process. The summary sums their executions
#                 and CPU time and takes the highest coverage.
#   FUZZ_TARGETS  space-separated targets (default: every tests/fuzz/fuzz_*.c)
#   BUILD_DIR     build directory (default <repo>/build-fuzz)
#   CC            clang binary (default clang)
# Input size caps (-max_len) are per target (max_len_of below): coverage
# plateaus well inside them, and larger inputs only make each execution
# slower. Findings are written to $BUILD_DIR/fuzz-artifacts/; new corpus
# entries go to $BUILD_DIR/fuzz-corpus/<target>/ (the repository's seeds stay
# untouched). Save a reproducer as tests/fuzz/regressions/<target>/<name>.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$repo/build-fuzz}
mkdir -p "$build"
build=$(cd "$build" && pwd)
seconds=${FUZZ_SECONDS:-20}
runs=${FUZZ_RUNS:-10000000}
jobs=${FUZZ_JOBS:-1}
cc=${CC:-clang}
long=0
case "${1:-}" in
    --long) long=1 ;;
    "") ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run-fuzz.sh: unknown option $1" >&2; exit 2 ;;
esac

if [[ -z ${FUZZ_TARGETS:-} ]]; then
    FUZZ_TARGETS=$(cd "$repo/tests/fuzz" && ls fuzz_*.c | sed 's/\.c$//' | tr '\n' ' ')
fi

# Largest input per target (others: 4096): fuzz_buf spends 2-4 bytes per operation,
# fuzz_writeq spends 1-3 bytes per operation and runs the loop or a system call
# for most of them (its grown corpus cut to 256 bytes keeps every edge;
# 384 leaves room), fuzz_parsers takes its
# size limits from the input header, so 1 KiB streams reach every limit case
# (longer ones only cost more per execution with 1-byte fragments), fuzz_queue spends 3
# bytes per operation and creates at most 512 items, fuzz_tunnel spends 2
# bytes per operation and runs the loop or a system call for each (its
# streams are at most 8 reads or 8 queue fills long: 63 operations cover them),
# fuzz_http takes the default: its head limits go up to 16 KiB, but 4 KiB
# heads already pass every limit below that and reach each parser state.
max_len_of() {
    case "$1" in
        fuzz_buf) echo 2048 ;;
        fuzz_writeq) echo 384 ;;
        fuzz_parsers) echo 1024 ;;
        fuzz_queue) echo 1536 ;;
        fuzz_tunnel) echo 128 ;;
        *) echo 4096 ;;
    esac
}

cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=Debug \
    -DBH_WERROR=ON -DBH_FUZZ=ON >/dev/null
# shellcheck disable=SC2086
cmake --build "$build" -j2 --target $FUZZ_TARGETS

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

# Sets cpu_now to the CPU seconds (user + system) used so far by this
# script's finished children (`times` must run in this shell, not a subshell).
cpu_now=0
children_cpu() {
    times >"$build/times.txt"
    cpu_now=$(awk 'NR == 2 {
        t = 0
        for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] }
        printf "%.1f", t }' "$build/times.txt")
}

artifacts=$build/fuzz-artifacts
mkdir -p "$artifacts"
status=0
summary=""
for t in $FUZZ_TARGETS; do
    work=$build/fuzz-corpus/$t
    seeds=$repo/tests/fuzz/corpus/$t
    mkdir -p "$work" "$seeds"
    log=$build/fuzz-$t.log
    regressions=$repo/tests/fuzz/regressions/$t
    if compgen -G "$regressions/*" >/dev/null; then
        echo "== $t: replaying $(find "$regressions" -type f | wc -l) saved reproducers"
        rc=0
        "$build/tests/fuzz/$t" -timeout=10 -rss_limit_mb=2048 "$regressions"/* \
            >"$build/fuzz-$t-regressions.log" 2>&1 || rc=$?
        if [[ $rc -ne 0 ]]; then
            status=1
            echo "!! $t: a saved reproducer still fails (exit $rc):"
            grep -E 'Running:|SUMMARY|check failed' "$build/fuzz-$t-regressions.log" | tail -n 6
            summary+=$(printf '%-14s FAILED  saved reproducer (see %s)' "$t" \
                "$build/fuzz-$t-regressions.log")$'\n'
        fi
    fi
    if [[ $long -eq 1 ]]; then
        bound=(-runs="$runs")
        echo "== $t: $runs executions in $jobs job(s), -max_len=$(max_len_of "$t") (log: $log)"
    else
        bound=(-max_total_time="$seconds")
        echo "== $t: ${seconds}s, -max_len=$(max_len_of "$t") (log: $log)"
    fi
    rc=0
    start=$(date +%s.%N)
    children_cpu
    cpu0=$cpu_now
    fuzz=("$build/tests/fuzz/$t" -timeout=10 -rss_limit_mb=2048 -max_len="$(max_len_of "$t")"
        -print_final_stats=1 -artifact_prefix="$artifacts/$t-")
    logs=("$log")
    if [[ $long -eq 1 && $jobs -gt 1 ]]; then
        # libFuzzer writes each job's output to fuzz-<n>.log in the current
        # directory; the jobs share $work and pick up each other's finds.
        jobdir=$build/fuzz-$t-jobs
        rm -rf "$jobdir"
        mkdir -p "$jobdir"
        (cd "$jobdir" && "${fuzz[@]}" -runs=$(((runs + jobs - 1) / jobs)) -jobs="$jobs" \
            -workers="$jobs" "$work" "$seeds") >"$log" 2>&1 || rc=$?
        logs=("$jobdir"/fuzz-*.log)
    else
        "${fuzz[@]}" "${bound[@]}" "$work" "$seeds" >"$log" 2>&1 || rc=$?
    fi
    secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.0f", e - s }')
    children_cpu
    cpu=$(awk -v a="$cpu0" -v b="$cpu_now" 'BEGIN { printf "%.1f", b - a }')
    execs=0
    cov=0
    for l in "${logs[@]}"; do
        n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$l" | tail -1)
        [[ -n $n ]] || n=$(sed -n 's/^#\([0-9][0-9]*\).*/\1/p' "$l" | tail -1)
        c=$(sed -n 's/^#[0-9].* cov: \([0-9]*\) .*/\1/p' "$l" | tail -1)
        execs=$((execs + ${n:-0}))
        [[ ${c:-0} -le $cov ]] || cov=$c
    done
    rate=$(awk -v n="${execs:-0}" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
    corpus=$(find "$work" -type f | wc -l)
    if [[ $rc -ne 0 ]]; then
        status=1
        echo "!! $t FAILED (exit $rc); last lines of the log:"
        for l in "${logs[@]}"; do tail -n 40 "$l"; done
        summary+=$(printf '%-14s FAILED  execs=%s (see %s, artifacts %s)' "$t" "${execs:-?}" "$log" "$artifacts")$'\n'
    else
        cpu_rate=$(awk -v n="${execs:-0}" -v s="$cpu" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }')
        summary+=$(printf '%-14s ok      execs=%s  exec/s=%s  cov=%s  corpus=%s  time=%ss  cpu=%ss (%s execs per cpu-s)' \
            "$t" "${execs:-?}" "$rate" "${cov:-?}" "$corpus" "$secs" "$cpu" "$cpu_rate")$'\n'
    fi
done

if [[ $long -eq 1 ]]; then
    echo "== fuzz summary ($runs executions per target)"
else
    echo "== fuzz summary (${seconds}s per target)"
fi
printf '%s' "$summary"
exit $status
