#!/usr/bin/env bash
# check-options.sh - the bench scripts refuse bad command lines: each call
# below must exit 2 at once (before building, starting or measuring
# anything) and say why on stderr. Run by ctest (bench_scripts_strict_options;
# http_bench_script_strict_options runs `check-options.sh http BUILD_DIR`:
# only run-http-bench.sh's calls, and its refusal of BUILD_DIR when that is
# a Debug build).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
failed=0
expect2() {
    local out rc
    out=$(timeout 20 "$@" 2>&1 >/dev/null)
    rc=$?
    if [ "$rc" != 2 ] || [ -z "$out" ]; then
        echo "FAIL (exit $rc, want 2 with a message): $*"
        failed=1
    else
        echo "ok: $* -> $(printf '%s' "$out" | head -n 1)"
    fi
}
w=$here/run-http-bench.sh
expect2 "$w" --reps 0
expect2 "$w" --reps x
expect2 "$w" --peers http_router,squid
expect2 "$w" --duration
expect2 "$w" --duration 1.5
expect2 "$w" --conns -3
expect2 "$w" --idle ''
expect2 "$w" --bogus
if [ -n "${2:-}" ] && grep -q '^CMAKE_BUILD_TYPE:[A-Z]*=Debug$' "$2/CMakeCache.txt" 2>/dev/null; then
    expect2 "$w" --build-dir "$2" --reps 1
fi
[ "${1:-}" = http ] && exit "$failed"
h=$here/run-stream-harness.sh
expect2 "$h" --runs abc
expect2 "$h" --runs 0
expect2 "$h" --impl
expect2 "$h" --impl handoff,nosuch
expect2 "$h" --conns -3
expect2 "$h" --duration soon
expect2 "$h" --scenario sideways
expect2 "$h" --total 1.5
expect2 "$h" --bogus
m=$here/run-stream-matrix.sh
expect2 "$m" --runs x
expect2 "$m" --transport udp
expect2 "$m" --out
i=$here/run-idle-memory.sh
expect2 "$i" --conns 10,abc
expect2 "$i" --impl libevent,nosuch
expect2 "$i" --settle-ms
exit "$failed"
