#!/bin/sh
# progress_test.sh - the demo's status line: on a terminal (script(1) gives
# it a pseudo-terminal) a line rewritten with '\r' ("demo: N/M connections
# done, ... MiB sent, ... MiB/s") and finished with a newline; without a
# terminal (a pipe, as in tests and CI logs) none at all. --progress-after-ms
# 0 shows the first update at once, so no run is too short for it.
#   sh progress_test.sh path/to/content_routing_rig
set -u
rig=$1
command -v script >/dev/null || { echo "SKIP: script(1) (util-linux) not found"; exit 77; }
args="demo --conns 4 --tunnel-bytes 4M --write-size 4096 --progress-after-ms 0"
cr=$(printf '\r')
status=0

# shellcheck disable=SC2086 # $args is split on purpose
tty_out=$(script -qec "$rig $args" /dev/null)
rc=$?
if [ $rc -ne 0 ]; then
    echo "FAIL: demo on a terminal exited with $rc"
    status=1
fi
if ! printf '%s\n' "$tty_out" | grep -q "${cr}demo: [0-9]*/4 connections done, [0-9.]* MiB sent, [0-9.]* MiB/s"; then
    echo "FAIL: no status line on a terminal"
    status=1
fi
# The last update says all 4 are done and ends its line before the summary.
if ! printf '%s\n' "$tty_out" | grep -q "${cr}demo: 4/4 connections done, .* MiB/s *${cr}\$"; then
    echo "FAIL: the status line does not end with 4/4 done and a newline"
    status=1
fi
printf '%s\n' "$tty_out" | grep -q "RESULT: all checksums OK" || { echo "FAIL: no RESULT"; status=1; }

# shellcheck disable=SC2086
pipe_out=$("$rig" $args 2>&1)
rc=$?
if [ $rc -ne 0 ]; then
    echo "FAIL: demo without a terminal exited with $rc"
    status=1
fi
if printf '%s\n' "$pipe_out" | grep -q -e "connections done" -e "$cr"; then
    echo "FAIL: a status line (or a carriage return) without a terminal"
    status=1
fi
printf '%s\n' "$tty_out" | tr '\r' '\n' | grep "connections done" | tail -n 1
[ $status -eq 0 ] && echo "PASS: status line on a terminal only"
exit $status
