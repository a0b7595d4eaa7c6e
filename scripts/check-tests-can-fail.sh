#!/usr/bin/env bash
# check-tests-can-fail.sh - shows that the tests catch real bugs: applies
# deliberate one-line faults to the library (src/core, src/uv), one at a
# time, rebuilds only the targets a fault needs, runs the tests that should
# notice it, and prints which tests caught each fault.
#
#   scripts/check-tests-can-fail.sh                      # scratch copy (developers)
#   scripts/check-tests-can-fail.sh --in-place BUILD_DIR # CI: this checkout
#
# Scratch mode (default) copies the working tree (uncommitted edits
# included) to <repo>/build/check-tests-can-fail/tree and builds it in
# .../build; the working tree is never written. Only files whose content
# changed are copied and the scratch build is kept, so reruns are
# incremental; the first run builds everything (a few minutes on 2 cores).
#
# --in-place BUILD_DIR patches the files of this checkout and rebuilds in
# BUILD_DIR, an already built, configured build of this tree (CI: build/
# default after `cmake --workflow --preset default`). Each faulted file is
# put back right after its tests, and always (trap on exit, error or
# signal); at the end BUILD_DIR is rebuilt, so the checkout and the build
# are left as they were (file contents; mtimes of the faulted files are
# newer). Meant for a disposable checkout such as CI's. About 50 s on a
# 2-core machine (baseline and final rebuild included; most of it is the
# 10 s timeouts of the faults that make a test hang).
#
# Exit status: 0 every fault was caught; 1 some fault went unnoticed, or the
# tests fail without any fault; 2 a fault's code was not found or does not
# compile (the code moved: update the table below), or bad arguments.
#
# A fault is located by content, never by line number: a file glob, an exact
# substring that must occur exactly once in exactly one matching file, and
# its replacement. Each fault runs the listed ctest tests, optionally only
# the cmocka tests matching a filter (BH_TEST_FILTER, tests/support/core/
# test_main.h). A test that fails, crashes or hangs past the timeout counts
# as catching the fault.
#
# Environment: FAULT_TIMEOUT (seconds per test program, default 10),
# FAULTS (regex: only the faults whose name matches), FAULT_DIR (scratch
# mode: scratch root, default <repo>/build/check-tests-can-fail; in-place
# mode: where the logs go, default a temporary folder kept only on failure).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
per_test_timeout=${FAULT_TIMEOUT:-10}
only=${FAULTS:-.}
in_place=

case ${1:-} in
'') ;;
--in-place)
    if [[ $# -ne 2 || ! -f $2/CMakeCache.txt ]]; then
        echo "usage: $0 [--in-place BUILD_DIR] (BUILD_DIR: a configured, built build of $repo)" >&2
        exit 2
    fi
    in_place=1
    build=$(cd "$2" && pwd)
    tree=$repo
    if ! grep -qx "CMAKE_HOME_DIRECTORY:INTERNAL=$repo" "$build/CMakeCache.txt"; then
        echo "$0: $build is not a build of $repo" >&2
        exit 2
    fi
    ;;
*)
    echo "usage: $0 [--in-place BUILD_DIR]" >&2
    exit 2
    ;;
esac

names=() globs=() olds=() news=() tests=() filters=()
# fault NAME GLOB OLD NEW "TEST ..." [FILTER]: OLD is replaced by NEW; the
# listed ctest tests (built as the targets of the same names) are run
# against it, with BH_TEST_FILTER=FILTER when given (comma-separated globs
# over the cmocka test names; a listed program with no match runs nothing).
fault() {
    names+=("$1") globs+=("$2") olds+=("$3") news+=("$4") tests+=("$5") filters+=("${6:-}")
}

fault "bh_bytes_clone skips the refcount increment" \
    'src/core/bytes.c' \
    $'    if (b->owner)\n        bh__shared_ref(b->owner);\n    return *b;' \
    $'    return *b;' \
    "test_bytes test_buf"
fault "the last reference is never freed (leak)" \
    'src/core/bytes_internal.h' \
    '__atomic_fetch_sub(BH__REFS(s), 1, __ATOMIC_ACQ_REL) == 1' \
    '__atomic_fetch_sub(BH__REFS(s), 1, __ATOMIC_ACQ_REL) == 0' \
    "test_bytes test_buf"
fault "bh_buf_reserve ignores max_len" \
    'src/core/buf.c' \
    $'    if (n > b->max_len - b->len)\n        return BH_ETOOLONG;\n    return buf_reserve(b, n, n, spare, spare_len);' \
    $'    return buf_reserve(b, n, n, spare, spare_len);' \
    "test_buf test_reader test_hostile"
fault "a block may grow past max_len" \
    'src/core/buf.c' \
    $'    if (size > max_len)\n        size = max_len;\n    return size < need' \
    $'    return size < need' \
    "test_buf test_hostile"
# test_reader notices it too, by hanging (a full timeout): left out for speed.
fault "the reader keeps reading after its final status" \
    'src/uv/reader.c' \
    $'            uv_read_stop(r->stream);\n    }\n    timer_stop(r);\n    r->flags |= READER_DONE;' \
    $'            (void)r->stream;\n    }\n    timer_stop(r);\n    r->flags |= READER_DONE;' \
    "test_hostile"
# test_writeq and test_writeq_close notice it too, by hanging: left out.
fault "a ticket callback is dropped" \
    'src/core/queue*.c' \
    $'    if (q->complete)\n        q->complete(q, cb, ctx, status);\n    else\n        cb(q, status, ctx);' \
    $'    (void)ctx;' \
    "test_queue test_faults"
fault "a ticket callback runs twice" \
    'src/core/queue*.c' \
    $'        q->complete(q, cb, ctx, status);\n    else\n        cb(q, status, ctx);' \
    $'        q->complete(q, cb, ctx, status), q->complete(q, cb, ctx, status);\n    else\n        cb(q, status, ctx), cb(q, status, ctx);' \
    "test_queue test_writeq test_writeq_close test_faults"
# test_writeq and test_writeq_tcp notice it too, by hanging: left out.
fault "each iovec of a batch writes one byte less" \
    'src/core/queue_batch.c' \
    '            q->iov[nb].iov_len = n;' \
    '            q->iov[nb].iov_len = n - (n > 1);' \
    "test_queue"
fault "the write budgets are not enforced" \
    'src/core/queue*.c' \
    'if (q->used_items >= q->cfg.max_items || len > q->cfg.max_bytes - q->used_bytes) {' \
    'if (0) {' \
    "test_queue test_writeq test_faults"
fault "close completes the tickets of the write in flight at once" \
    'src/core/queue*.c' \
    '    bh__queue_complete_tail(q, q->pinned, BH_ECANCELED);' \
    '    bh__queue_complete_tail(q, 0, BH_ECANCELED);' \
    "test_writeq_close test_queue"
fault "shutdown is sent while slices are still queued" \
    'src/core/queue*.c' \
    'rc = empty && if_empty ? if_empty(ctx) : 0;' \
    'rc = (empty | 1) && if_empty ? if_empty(ctx) : 0;' \
    "test_queue test_writeq_close test_faults"

# ---- src/uv ----
fault "the tunnel passes a reset on as a clean EOF (FIN)" \
    'src/uv/tunnel.c' \
    '        close_stream(t->side[d].stream, status != 0);' \
    '        close_stream(t->side[d].stream, 0);' \
    "test_tunnel" 'reset_*,idle_*,abort_*'
fault "the tunnel passes an EOF to the side that sent it" \
    'src/uv/tunnel.c' \
    '    int rc = bh_writeq_shutdown(&t->side[1 - d].out, on_shutdown, t);' \
    '    int rc = bh_writeq_shutdown(&t->side[d].out, on_shutdown, t);' \
    "test_tunnel"
fault "the reader does not report BH_ETOOLONG on a full buffer" \
    'src/uv/reader.c' \
    '        reader_finish(r, BH_ETOOLONG);' \
    '        reader_finish(r, UV_ENOBUFS);' \
    "test_reader test_hostile"
fault "a flush pass loses the first armed of several queues" \
    'src/uv/flush_dispatch.c' \
    '        list_push(&d->running, q); /* reverses: arming order */' \
    '        if (d->armed || !d->running) list_push(&d->running, q);' \
    "test_writeq_dispatch test_writeq_mt"
fault "the drain callback is never called" \
    'src/uv/writeq_flush.c' \
    '        q->drain_cb(q, q->drain_ctx);' \
    '        (void)q->drain_ctx;' \
    "test_writeq test_writeq_flush test_tunnel_backpressure"
# test_tunnel notices it too, by hanging: left out.
fault "the written-bytes counter is one byte short" \
    'src/uv/writeq.c' \
    '    out->written_bytes = cs.written_bytes;' \
    '    out->written_bytes = cs.written_bytes - (cs.written_bytes > 0);' \
    "test_writeq"

# Applies fault i to the tree: records the file and its original content in
# $work/applied (put back by restore), then writes the faulted file. Fails
# unless OLD occurs exactly once in exactly one file matching GLOB.
apply_fault() {
    python3 - "$tree" "${globs[$1]}" "${olds[$1]}" "${news[$1]}" "$work/applied" <<'PY'
import glob, os, sys
tree, pattern, old, new, saved = sys.argv[1:6]
files = sorted(glob.glob(os.path.join(tree, pattern)))
hits = [(f, open(f).read()) for f in files]
hits = [(f, s) for f, s in hits if old in s]
if len(hits) != 1 or hits[0][1].count(old) != 1:
    where = ", ".join(os.path.relpath(f, tree) for f, _ in hits) or "no file"
    n = sum(s.count(old) for _, s in hits)
    sys.exit(f"pattern matched {n} time(s) in {where} (glob {pattern}):\n{old}")
f, s = hits[0]
with open(saved + ".orig", "w") as o:
    o.write(s)
with open(saved, "w") as o:
    o.write(os.path.relpath(f, tree))
open(f, "w").write(s.replace(old, new))
PY
}

# Puts the faulted file back (content; fresh mtime, so that the next build
# recompiles it) and forgets it.
restore() {
    [[ -f $work/applied ]] || return 0
    local file
    file=$(cat "$work/applied")
    cat "$work/applied.orig" >"$tree/$file"
    touch "$tree/$file"
    rm -f "$work/applied" "$work/applied.orig"
}

# The test programs are run directly (ctest's --timeout does not override
# the tests' TIMEOUT property, up to 300 s), each under `timeout`, two at a
# time, from the command and folder ctest would use ($work/tests.tsv).
list_tests() {
    ctest --test-dir "$build" --show-only=json-v1 | python3 -c '
import json, sys
for t in json.load(sys.stdin)["tests"]:
    wd = next((p["value"] for p in t.get("properties", []) if p["name"] == "WORKING_DIRECTORY"), ".")
    print("\t".join([t["name"], wd] + t.get("command", [])))
' >"$work/tests.tsv"
}

# run_one TEST FILTER OUT: runs one test program (line-buffered, so a hung
# test's name is in OUT), then appends "RESULT TEST Passed|Failed|Timeout"
# to OUT; a timeout names the cmocka test that hung.
run_one() {
    local line wd rc=0 hung
    local -a cmd
    line=$(awk -F '\t' -v t="$1" '$1 == t' "$work/tests.tsv")
    if [[ -z $line ]]; then
        echo "RESULT $1 Failed (no such test in $build)" >"$3"
        return
    fi
    IFS=$'\t' read -r -a cmd <<<"$line"
    wd=${cmd[1]}
    cmd=("${cmd[@]:2}")
    (cd "$wd" && BH_TEST_FILTER=$2 timeout -k 2 "$per_test_timeout" stdbuf -oL "${cmd[@]}") >"$3" 2>&1 ||
        rc=$?
    local result="Failed (exit $rc)"
    if [[ $rc -eq 0 ]]; then
        result=Passed
    elif [[ $rc -eq 124 || $rc -eq 137 ]]; then
        hung=$(sed -n 's/^\[ RUN      \] \([a-z_0-9]*\)$/\1/p' "$3" | tail -n 1)
        result="Timeout (${per_test_timeout}s) in ${hung:-?}"
    fi
    echo "RESULT $1 $result" >>"$3"
}

# run_tests LOG "TEST ..." FILTER: runs the tests two at a time; their
# outputs, one after the other, go to LOG. Status 1 when any did not pass.
run_tests() {
    local t
    for t in $2; do
        while (($(jobs -rp | wc -l) >= 2)); do wait -n || true; done
        # The shell's own messages (e.g. "Aborted") go to the log too.
        run_one "$t" "$3" "$1.$t" 2>"$1.$t.sh" &
    done
    wait
    for t in $2; do
        cat "$1.$t" "$1.$t.sh"
        rm -f "$1.$t" "$1.$t.sh"
    done >>"$1"
    ! grep -q '^RESULT .* \(Failed\|Timeout\)' "$1"
}

# The tests that failed or hung in log $1; the cmocka tests that failed in
# them.
caught_by() {
    sed -n 's/^RESULT \([^ ]*\) Failed.*/\1/p; s/^RESULT \([^ ]*\) Timeout.* in \(.*\)/\1(hung in \2)/p' "$1" |
        tr '\n' ' '
}
cmocka_failures() {
    sed -n 's/^.*\[  \(FAILED\|ERROR\) *\] \([a-z_0-9]*\)$/\2/p' "$1" |
        awk '!seen[$0]++' | head -n 6 | tr '\n' ' '
}

if [[ -n $in_place ]]; then
    if [[ -n ${FAULT_DIR:-} ]]; then
        work=$FAULT_DIR
        mkdir -p "$work"
    else
        work=$(mktemp -d "${TMPDIR:-/tmp}/check-tests-can-fail.XXXXXX")
    fi
    rm -f "$work/applied" "$work/applied.orig"
    # Always: put the faulted file back and rebuild, whatever ended the run.
    # shellcheck disable=SC2317 # invoked by the trap
    finish() {
        local rc=$?
        trap - EXIT INT TERM
        restore
        echo "== restored the tree; rebuilding $build"
        if ! cmake --build "$build" -j2 >"$work/rebuild.log" 2>&1; then
            echo "FAIL: the rebuild after the faults failed (see $work/rebuild.log)"
            rc=1
        fi
        if [[ $rc -eq 0 && -z ${FAULT_DIR:-} ]]; then
            rm -rf "$work"
        elif [[ $rc -ne 0 ]]; then
            echo "== logs kept in $work"
        fi
        exit "$rc"
    }
    trap finish EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    echo "== in place: tree $tree, build $build (logs $work)"
else
    root=${FAULT_DIR:-$repo/build/check-tests-can-fail}
    tree=$root/tree
    build=$root/build
    work=$root
    echo "== scratch tree $tree (build $build)"
    # Refresh the scratch tree from the working tree, writing only files whose
    # content differs (with a fresh mtime): a file put back to an older mtime
    # would hide from ninja that its objects were built from a faulted copy.
    mkdir -p "$tree" "$build"
    rm -rf "$root/stage" "$work/applied" "$work/applied.orig"
    mkdir -p "$root/stage"
    tar -C "$repo" --exclude=./build --exclude='./build-*' --exclude=./.git -cf - . |
        tar -C "$root/stage" -xf -
    python3 - "$root/stage" "$tree" <<'PY'
import filecmp, os, shutil, sys
stage, tree = sys.argv[1:3]
for d, _, files in os.walk(stage):
    for f in files:
        src = os.path.join(d, f)
        dst = os.path.join(tree, os.path.relpath(src, stage))
        if os.path.islink(src) or not os.path.isfile(dst) or not filecmp.cmp(src, dst, shallow=False):
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if os.path.lexists(dst):
                os.remove(dst)
            shutil.copy2(src, dst, follow_symlinks=False)
            if not os.path.islink(dst):
                os.utime(dst)
for d, _, files in os.walk(tree):
    for f in files:
        dst = os.path.join(d, f)
        if not os.path.lexists(os.path.join(stage, os.path.relpath(dst, tree))):
            os.remove(dst)
PY
    rm -rf "$root/stage"
    cmake -S "$tree" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DBH_WERROR=ON \
        -DBH_BUILD_TESTS=ON -DBH_BUILD_EXAMPLES=ON -DBH_BUILD_BENCH=OFF -DBH_FUZZ=OFF >/dev/null
fi

all_tests=$(printf '%s\n' "${tests[@]}" | tr ' ' '\n' | sort -u | tr '\n' ' ')
export BH_SKIP_HUGE_TESTS=1 CMOCKA_MESSAGE_OUTPUT=STDOUT
unset BH_TEST_FILTER

# Without faults every selected test must pass, or a "catch" means nothing.
# shellcheck disable=SC2086
cmake --build "$build" -j2 --target $all_tests >"$work/baseline.log" 2>&1
list_tests
if ! run_tests "$work/baseline.log" "$all_tests" ""; then
    echo "FAIL: the tests fail without any fault (see $work/baseline.log):"
    grep -E '^RESULT .* (Failed|Timeout)|FAILED|ERROR' "$work/baseline.log" | head -n 20
    exit 1
fi
echo "== baseline: $all_tests pass"

status=0
table=""
for i in "${!names[@]}"; do
    [[ ${names[$i]} =~ $only ]] || continue
    if ! apply_fault "$i" 2>&1; then
        echo "FAIL: fault \"${names[$i]}\": its code was not found; update the fault table"
        exit 2
    fi
    log=$work/fault-$i.log
    start=$SECONDS
    # shellcheck disable=SC2086
    if ! cmake --build "$build" -j2 --target ${tests[$i]} >"$log" 2>&1; then
        restore
        echo "FAIL: fault \"${names[$i]}\" does not compile:"
        grep -E 'error' "$log" | head -n 10
        exit 2
    fi
    run_tests "$log" "${tests[$i]}" "${filters[$i]}" || true
    restore
    by=$(caught_by "$log")
    what=${tests[$i]}${filters[$i]:+ [${filters[$i]}]}
    if [[ -n $by ]]; then
        line=$(printf '%-58s caught by %s(%s)  %ss' "${names[$i]}" "$by" "$(cmocka_failures "$log")" \
            $((SECONDS - start)))
    else
        line=$(printf '%-58s NOT CAUGHT by %s' "${names[$i]}" "$what")
        status=1
    fi
    echo "$line"
    table+="$line"$'\n'
done

echo "== fault -> catching tests (test program, then its failing cmocka tests)"
printf '%s' "$table"
if [[ $status -eq 0 ]]; then
    echo "PASS: every fault was caught"
else
    echo "FAIL: some fault went unnoticed"
fi
exit $status
