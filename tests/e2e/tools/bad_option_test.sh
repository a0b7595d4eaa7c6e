#!/bin/sh
# bad_option_test.sh - every program reports a usage error the same way:
# "PROG: message" on stderr, PROG its base name (never a path, nor a mode
# word such as "demo:"), then "(see PROG --help)", and exit status 2.
#   sh bad_option_test.sh 'EXE [MODE] ARGS...' ...
# Each argument is one command line (split on blanks) that must fail so.
set -u
status=0
err=$(mktemp)
trap 'rm -f "$err"' EXIT
for cmd in "$@"; do
    # shellcheck disable=SC2086 # the command line is split on purpose
    set -- $cmd
    prog=$(basename "$1")
    "$@" >/dev/null 2>"$err" </dev/null
    rc=$?
    first=$(head -n 1 "$err")
    case "$first" in
    "$prog: "*) ok=1 ;;
    *) ok=0 ;;
    esac
    if [ $rc -ne 2 ] || [ $ok -ne 1 ] || ! grep -qx "(see $prog --help)" "$err"; then
        echo "FAIL: $prog ${cmd#* }: exit $rc, stderr:"
        cat "$err"
        status=1
    else
        echo "ok: $prog ${cmd#* }: $first"
    fi
done
exit $status
