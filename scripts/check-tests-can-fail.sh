#!/usr/bin/env bash
# check-tests-can-fail.sh - shows that the tests catch real bugs: applies
# deliberate one-line faults to the library (src/core, src/uv), one at a
# time, in a scratch copy of the tree, rebuilds incrementally, runs the
# tests that should notice, and prints which tests caught each fault. Exit
# status 1 when any fault went unnoticed, 2 when a fault's code was not
# found (the code moved: update the table below).
#
#   scripts/check-tests-can-fail.sh
#
# A fault is located by content, never by line number: a file glob, an exact
# substring that must occur exactly once in exactly one matching file, and
# its replacement. The scratch tree (<repo>/build/check-tests-can-fail/tree)
# is refreshed from the working tree on every run (uncommitted edits
# included); its build directory is kept, so reruns only rebuild what a
# fault touches. Environment: FAULT_DIR (scratch root), FAULT_TIMEOUT
# (seconds per test, default 30; a test that hangs on a fault counts as
# catching it), FAULTS (regex: only faults whose name
# matches).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
root=${FAULT_DIR:-$repo/build/check-tests-can-fail}
tree=$root/tree
build=$root/build
per_test_timeout=${FAULT_TIMEOUT:-30}
only=${FAULTS:-.}

names=() globs=() olds=() news=() tests=() targets=()
# fault NAME GLOB OLD NEW "TEST ..." ["TARGET ..."]: OLD is replaced by NEW;
# the listed ctest tests are the ones run against it, after building the
# targets (default: the targets named like the tests).
fault() {
    names+=("$1") globs+=("$2") olds+=("$3") news+=("$4") tests+=("$5") targets+=("${6:-$5}")
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
    $'    if (n > b->max_len - b->len)\n        return BH_ETOOLONG;\n    if (!b->block && n > 0 && !bh__buf_adopt_cached(b, n, n))' \
    $'    if (!b->block && n > 0 && !bh__buf_adopt_cached(b, n, n))' \
    "test_buf test_reader test_hostile"
fault "a block may grow past max_len" \
    'src/core/buf.c' \
    $'    if (size > max_len)\n        size = max_len;\n    return size < need' \
    $'    return size < need' \
    "test_buf test_hostile"
fault "the reader keeps reading after its final status" \
    'src/uv/reader.c' \
    $'            uv_read_stop(r->stream);\n    }\n    timer_stop(r);\n    r->flags |= READER_DONE;' \
    $'            (void)r->stream;\n    }\n    timer_stop(r);\n    r->flags |= READER_DONE;' \
    "test_reader test_hostile"
fault "a ticket callback is dropped" \
    'src/core/queue*.c' \
    $'    if (q->complete)\n        q->complete(q, cb, ctx, status);\n    else\n        cb(q, status, ctx);' \
    $'    (void)ctx;' \
    "test_queue test_writeq test_writeq_close test_faults"
fault "a ticket callback runs twice" \
    'src/core/queue*.c' \
    $'        q->complete(q, cb, ctx, status);\n    else\n        cb(q, status, ctx);' \
    $'        q->complete(q, cb, ctx, status), q->complete(q, cb, ctx, status);\n    else\n        cb(q, status, ctx), cb(q, status, ctx);' \
    "test_queue test_writeq test_writeq_close test_faults"
fault "each iovec of a batch writes one byte less" \
    'src/core/queue_batch.c' \
    '            q->iov[nb].iov_len = n;' \
    '            q->iov[nb].iov_len = n - (n > 1);' \
    "test_queue test_writeq test_writeq_tcp"
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

# Applies fault i to the scratch tree. Fails (exit 2) unless OLD occurs
# exactly once in exactly one file matching GLOB.
apply_fault() {
    python3 - "$tree" "${globs[$1]}" "${olds[$1]}" "${news[$1]}" <<'EOF'
import glob, os, sys
tree, pattern, old, new = sys.argv[1:5]
files = sorted(glob.glob(os.path.join(tree, pattern)))
hits = [(f, open(f).read()) for f in files]
hits = [(f, s) for f, s in hits if old in s]
if len(hits) != 1 or hits[0][1].count(old) != 1:
    where = ", ".join(os.path.relpath(f, tree) for f, _ in hits) or "no file"
    n = sum(s.count(old) for _, s in hits)
    sys.exit(f"pattern matched {n} time(s) in {where} (glob {pattern}):\n{old}")
f, s = hits[0]
open(f, "w").write(s.replace(old, new))
print(os.path.relpath(f, tree))
EOF
}

restore() { cp -p "$repo/$1" "$tree/$1"; touch "$tree/$1"; }

# ctest names of the tests that failed in log $1; the cmocka tests that
# failed in them, or a script's first FAIL line.
caught_by() {
    sed -n 's/^ *[0-9]*\/[0-9]* Test *#[0-9]*: \([^ ]*\) .*\(Failed\|Timeout\|Exception\|Not Run\).*/\1/p' "$1" |
        tr '\n' ' '
}
cmocka_failures() {
    {
        sed -n 's/^.*\[  \(FAILED\|ERROR\) *\] \([a-z_0-9]*\)$/\2/p' "$1"
        grep -o 'FAIL: .*' "$1" | head -n 1
    } | awk '!seen[$0]++' | head -n 6 | tr '\n' ' '
}

echo "== scratch tree $tree (build $build)"
# Refresh the scratch tree from the working tree, writing only files whose
# content differs (with a fresh mtime): a file put back to an older mtime
# would hide from ninja that its objects were built from a faulted copy.
mkdir -p "$tree" "$build"
rm -rf "$root/stage"
mkdir -p "$root/stage"
tar -C "$repo" --exclude=./build --exclude='./build-*' --exclude=./.git -cf - . |
    tar -C "$root/stage" -xf -
python3 - "$root/stage" "$tree" <<'EOF'
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
EOF
rm -rf "$root/stage"
cmake -S "$tree" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DBH_WERROR=ON \
    -DBH_BUILD_TESTS=ON -DBH_BUILD_EXAMPLES=ON -DBH_BUILD_BENCH=OFF -DBH_FUZZ=OFF >/dev/null

all_tests=$(printf '%s\n' "${tests[@]}" | tr ' ' '\n' | sort -u | tr '\n' ' ')
all_targets=$(printf '%s\n' "${targets[@]}" | tr ' ' '\n' | sort -u | tr '\n' ' ')
regex_of() { echo "^($(echo "$1" | xargs | tr ' ' '|'))\$"; }
export BH_SKIP_HUGE_TESTS=1 CMOCKA_MESSAGE_OUTPUT=STDOUT

# Without faults every selected test must pass, or a "catch" means nothing.
# shellcheck disable=SC2086
cmake --build "$build" -j2 --target $all_targets >/dev/null
if ! ctest --test-dir "$build" -j2 -R "$(regex_of "$all_tests")" --timeout "$per_test_timeout" \
    >"$root/baseline.log" 2>&1; then
    echo "FAIL: the tests fail without any fault (see $root/baseline.log)"
    exit 1
fi
echo "== baseline: $all_tests pass"

status=0
table=""
for i in "${!names[@]}"; do
    [[ ${names[$i]} =~ $only ]] || continue
    if ! file=$(apply_fault "$i"); then
        echo "FAIL: fault \"${names[$i]}\": its code was not found; update the fault table"
        exit 2
    fi
    log=$root/fault-$i.log
    start=$SECONDS
    # shellcheck disable=SC2086
    if ! cmake --build "$build" -j2 --target ${targets[$i]} >"$log" 2>&1; then
        restore "$file"
        echo "FAIL: fault \"${names[$i]}\" does not compile (see $log)"
        exit 2
    fi
    ctest --test-dir "$build" -j2 -R "$(regex_of "${tests[$i]}")" --timeout "$per_test_timeout" \
        --output-on-failure >>"$log" 2>&1 || true
    restore "$file"
    by=$(caught_by "$log")
    if [[ -n $by ]]; then
        line=$(printf '%-58s caught by %s(%s)  %ss' "${names[$i]}" "$by" "$(cmocka_failures "$log")" \
            $((SECONDS - start)))
    else
        line=$(printf '%-58s NOT CAUGHT by %s' "${names[$i]}" "${tests[$i]}")
        status=1
    fi
    echo "$line"
    table+="$line"$'\n'
done

echo "== fault -> catching tests (ctest test, then the failing cmocka tests)"
printf '%s' "$table"
[[ $status -eq 0 ]] && echo "PASS: every fault was caught" || echo "FAIL: some fault went unnoticed"
exit $status
