#!/bin/sh
# example_check.sh - runs an example program on input from example_gen and
# checks its result against what example_gen computed independently.
#
# usage: example_check.sh GEN PROG VIA "GEN_ARGS" "PROG_ARGS" [ERROR_PATTERN]
#   VIA: pipe  (GEN | PROG: standard input is a pipe, read by bh_reader)
#        file  (PROG < FILE: standard input is a regular file)
#        tcp   (PROG --tcp-listen 127.0.0.1:0, GEN --connect to the port it prints)
# Without ERROR_PATTERN, PROG must exit 0 and print exactly the summary line
# of `GEN GEN_ARGS --expect`. With it, PROG must exit non-zero and its stderr
# must contain ERROR_PATTERN.
set -u
gen=$1 prog=$2 via=$3 genargs=$4 progargs=$5 errpat=${6:-}
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

# shellcheck disable=SC2086 # argument strings are split on purpose
"$gen" $genargs --expect >"$tmp/expected" || { echo "example_gen failed"; exit 1; }
case $via in
pipe)
    "$gen" $genargs | "$prog" $progargs >"$tmp/out" 2>"$tmp/err"
    rc=$?
    ;;
file)
    "$gen" $genargs >"$tmp/in" || { echo "example_gen failed"; exit 1; }
    "$prog" $progargs <"$tmp/in" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    ;;
tcp)
    "$prog" --tcp-listen 127.0.0.1:0 $progargs >"$tmp/out" 2>"$tmp/err" &
    pid=$!
    i=0
    while ! grep -q '^listening ' "$tmp/out" 2>/dev/null; do
        i=$((i + 1))
        if [ "$i" -gt 400 ] || ! kill -0 "$pid" 2>/dev/null; then
            echo "no 'listening PORT' line from $prog"
            cat "$tmp/err"
            kill "$pid" 2>/dev/null
            exit 1
        fi
        sleep 0.05
    done
    port=$(sed -n 's/^listening //p' "$tmp/out")
    "$gen" $genargs --connect "127.0.0.1:$port"
    wait "$pid"
    rc=$?
    ;;
*)
    echo "bad VIA '$via'"
    exit 2
    ;;
esac
grep -v '^listening ' "$tmp/out" >"$tmp/summary"

if [ -n "$errpat" ]; then
    if [ "$rc" -eq 0 ]; then
        echo "expected a failure, got exit 0 and: $(cat "$tmp/summary")"
        exit 1
    fi
    if ! grep -q -- "$errpat" "$tmp/err"; then
        echo "stderr lacks '$errpat':"
        cat "$tmp/err"
        exit 1
    fi
    echo "rejected as expected (exit $rc): $(cat "$tmp/err")"
    exit 0
fi
if [ "$rc" -ne 0 ]; then
    echo "exit status $rc"
    cat "$tmp/err"
    exit 1
fi
if ! cmp -s "$tmp/expected" "$tmp/summary"; then
    echo "expected: $(cat "$tmp/expected")"
    echo "got:      $(cat "$tmp/summary")"
    exit 1
fi
echo "ok: $(cat "$tmp/summary")"
