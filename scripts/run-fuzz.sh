#!/usr/bin/env bash
# run-fuzz.sh - build the libFuzzer targets with clang (BH_FUZZ=ON), replay
# the saved reproducers in tests/fuzz/regressions/<target>/ once each, then
# run each target for a bounded time starting from the seed corpus in
# tests/fuzz/corpus/<target>/. Fails on any finding (crash, sanitizer report,
# leak, timeout, OOM) and prints the executions per target.
#
# Environment:
#   FUZZ_SECONDS  seconds per target (default 20)
#   FUZZ_TARGETS  space-separated targets (default: every tests/fuzz/fuzz_*.c)
#   BUILD_DIR     build directory (default <repo>/build-fuzz)
#   CC            clang binary (default clang)
# Findings are written to $BUILD_DIR/fuzz-artifacts/; new corpus entries go
# to $BUILD_DIR/fuzz-corpus/<target>/ (the repository's seeds stay untouched).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$repo/build-fuzz}
seconds=${FUZZ_SECONDS:-20}
cc=${CC:-clang}

if [[ -z ${FUZZ_TARGETS:-} ]]; then
    FUZZ_TARGETS=$(cd "$repo/tests/fuzz" && ls fuzz_*.c | sed 's/\.c$//' | tr '\n' ' ')
fi

cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=Debug \
    -DBH_WERROR=ON -DBH_FUZZ=ON >/dev/null
# shellcheck disable=SC2086
cmake --build "$build" -j2 --target $FUZZ_TARGETS

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

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
    echo "== $t: ${seconds}s (log: $log)"
    rc=0
    "$build/tests/fuzz/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -max_len=8192 -print_final_stats=1 -artifact_prefix="$artifacts/$t-" \
        "$work" "$seeds" >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    [[ -n $execs ]] || execs=$(sed -n 's/^#\([0-9][0-9]*\).*/\1/p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    corpus=$(find "$work" -type f | wc -l)
    if [[ $rc -ne 0 ]]; then
        status=1
        echo "!! $t FAILED (exit $rc); last lines of the log:"
        tail -n 40 "$log"
        summary+=$(printf '%-14s FAILED  execs=%s (see %s, artifacts %s)' "$t" "${execs:-?}" "$log" "$artifacts")$'\n'
    else
        summary+=$(printf '%-14s ok      execs=%s  exec/s=%s  corpus=%s' "$t" "${execs:-?}" "${rate:-?}" "$corpus")$'\n'
    fi
done

echo "== fuzz summary (${seconds}s per target)"
printf '%s' "$summary"
exit $status
