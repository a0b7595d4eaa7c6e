#!/usr/bin/env bash
# run-valgrind.sh - run every cmocka unit test under valgrind memcheck in a
# separate Debug build without sanitizers; fails on any memcheck error,
# definite or indirect leak, or test failure.
#
# Separate Debug build without sanitizers (<repo>/build-valgrind), with the
# examples (their cmocka unit tests count), without benchmarks and fuzzers.
# The unit tests are the ctest tests whose command is a test_* executable
# built in that directory (bh_add_test and the examples' cmocka tests);
# script-driven checks (exports, install, example runs, stream harness) are
# skipped, except the routers' end-to-end tests (sni_router, http_router),
# which run with the router itself under memcheck.
#
# Environment:
#   BUILD_DIR        build directory (default <repo>/build-valgrind)
#   VALGRIND_TESTS   regex: only tests whose name matches (default: all)
#   VALGRIND_TIMEOUT seconds per test (default 900)
# Per-test valgrind logs: <build>/valgrind/<test>.log
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BUILD_DIR:-$repo/build-valgrind}
filter=${VALGRIND_TESTS:-.}
per_test_timeout=${VALGRIND_TIMEOUT:-900}
export BH_SKIP_HUGE_TESTS=1 # the 1.5 GiB write test takes minutes under valgrind
memcheck_rc=97 # valgrind's exit code when it found errors (tests never use it)

command -v valgrind >/dev/null || { echo "valgrind not found" >&2; exit 2; }

cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DBH_WERROR=ON \
    -DCMAKE_C_FLAGS= -DCMAKE_EXE_LINKER_FLAGS= -DCMAKE_SHARED_LINKER_FLAGS= \
    -DBH_BUILD_TESTS=ON -DBH_BUILD_EXAMPLES=ON -DBH_BUILD_BENCH=OFF -DBH_FUZZ=OFF >/dev/null
cmake --build "$build" -j2

# name <TAB> workdir <TAB> env (;-separated) <TAB> command (\x1f-separated)
list=$(ctest --test-dir "$build" --show-only=json-v1 | python3 -c '
import json, os, re, sys
build, filt = os.path.realpath(sys.argv[1]), re.compile(sys.argv[2])
for t in json.load(sys.stdin)["tests"]:
    cmd = t.get("command") or []
    if not cmd or not filt.search(t["name"]):
        continue
    exe = os.path.realpath(cmd[0])
    if not exe.startswith(build + os.sep) or not os.path.basename(exe).startswith("test_"):
        continue
    with open(exe, "rb") as f:
        if f.read(4) != b"\x7fELF":
            continue
    props = {p["name"]: p["value"] for p in t.get("properties", [])}
    env = ";".join(props.get("ENVIRONMENT", []))
    print("\t".join([t["name"], props.get("WORKING_DIRECTORY", build), env, "\x1f".join(cmd)]))
' "$build" "$filter")

if [[ -z $list ]]; then
    echo "no unit tests found in $build" >&2
    exit 2
fi

logs=$build/valgrind
mkdir -p "$logs"
failed=()
count=0
while IFS=$'\t' read -r name workdir envs cmdline; do
    IFS=$'\x1f' read -r -a cmd <<<"$cmdline"
    IFS=';' read -r -a envv <<<"$envs"
    log=$logs/$name.log
    count=$((count + 1))
    rc=0
    start=$SECONDS
    (cd "$workdir" && env "${envv[@]}" timeout "$per_test_timeout" \
        valgrind --tool=memcheck --error-exitcode=$memcheck_rc --leak-check=full \
        --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
        --track-origins=yes --num-callers=30 --log-file="$log" "${cmd[@]}") \
        >"$logs/$name.out" 2>&1 || rc=$?
    errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$log" | sort -n | tail -1)
    if [[ $rc -eq 0 ]]; then
        printf '%-28s ok      %3ss  memcheck errors: %s\n' "$name" $((SECONDS - start)) "${errors:-?}"
    else
        why="test failed (exit $rc)"
        [[ $rc -eq $memcheck_rc ]] && why="memcheck errors: ${errors:-?}"
        [[ $rc -eq 124 ]] && why="timed out after ${per_test_timeout}s"
        printf '%-28s FAILED  %3ss  %s (log %s)\n' "$name" $((SECONDS - start)) "$why" "$log"
        grep -E '^==[0-9]+== (Invalid|Conditional|Use of|Syscall|Mismatched|Source and|Argument|[0-9,]+ .*bytes in)' "$log" | head -n 10 || true
        tail -n 15 "$logs/$name.out"
        failed+=("$name")
    fi
done <<<"$list"

# The routers end to end, each under memcheck: wrapped_e2e NAME LABEL VAR runs
# the ctest label LABEL with the router prefixed by the valgrind command in
# the environment variable VAR (the e2e scripts put it in front of the
# router; the router must exit 0, valgrind's exit code on errors is not 0).
wrapped_e2e() {
    local name=$1 label=$2 var=$3 start=$SECONDS
    [[ $filter == . || $name =~ $filter ]] || return 0
    count=$((count + 1))
    if env "$var=valgrind --error-exitcode=$memcheck_rc --leak-check=full \
        --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
        --num-callers=30 --log-file=$logs/$name.%p.log" \
        ctest --test-dir "$build" -L "$label" -j2 --output-on-failure \
        >"$logs/$label.out" 2>&1; then
        printf '%-28s ok      %3ss  router under memcheck\n' "$label" $((SECONDS - start))
    else
        printf '%-28s FAILED  %3ss  (logs %s/%s.*.log)\n' "$label" $((SECONDS - start)) \
            "$logs" "$name"
        grep -E 'FAIL|Failed' "$logs/$label.out" | head -n 10 || true
        failed+=("$label")
    fi
}
# sni_router: real TLS clients and openssl s_server backends (sni_test.py).
wrapped_e2e sni_router sni_router_e2e SNI_ROUTER_WRAPPER
# http_router: real HTTP clients, recording and nginx backends (about 30 s).
wrapped_e2e http_router http_router_e2e HTTP_ROUTER_WRAPPER

if [[ ${#failed[@]} -ne 0 ]]; then
    echo "valgrind: ${#failed[@]} of $count unit tests failed: ${failed[*]}"
    exit 1
fi
echo "valgrind: all $count unit tests clean (0 memcheck errors, no definite/indirect leaks)"
