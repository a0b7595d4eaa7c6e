#!/bin/sh
# alloc_sweep.sh - allocation-failure sweep over the content_routing demo
# (reader, buffers, write queues, proxy, sinks and clients in one process).
#
#   sh alloc_sweep.sh path/to/content_routing_rig [demo options...]
#
# First counts K, the library allocations one run reaches (demo
# --count-allocs; the largest of three runs, since the count depends on how
# reads fragment). Then runs the demo once per N with --fail-alloc N: every N
# from 1 to K + 8 while that is at most SWEEP_FULL (default 300), beyond it
# every SWEEP_STRIDE-th N (default 7), said so in the output. Each run must
# exit 0 ("RESULT: all checksums OK": the failure was absorbed or not
# reached) or 3 ("RESULT: failed cleanly": the connection that hit BH_ENOMEM
# logged it and was closed, all others verified, no wrong byte, no library
# block live at exit, every ticket completed once), and print no sanitizer
# report. Prints the number of allocation-failure points exercised (runs in
# which the failure was really injected).
set -u
exe=$1
shift
full=${SWEEP_FULL:-300}
stride=${SWEEP_STRIDE:-7}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# run NAME ARGS...: demo run, stdout/stderr into $tmp/NAME.{out,err}, sets rc.
run() {
    name=$1
    shift
    "$exe" demo "$@" --timeout-ms 20000 >"$tmp/$name.out" 2>"$tmp/$name.err"
    rc=$?
}

sanitizer_report() {
    grep -qE 'Sanitizer|runtime error:' "$1"
}

k=0
for i in 1 2 3; do
    run count "$@" --count-allocs
    if [ $rc -ne 0 ] || sanitizer_report "$tmp/count.err"; then
        echo "FAIL: counting run exited with $rc"
        cat "$tmp/count.out" "$tmp/count.err"
        exit 1
    fi
    n=$(sed -n 's/^alloc: *\([0-9][0-9]*\) library allocation attempts reached.*/\1/p' \
        "$tmp/count.out")
    [ -n "$n" ] && [ "$n" -gt "$k" ] && k=$n
done
if [ "$k" -eq 0 ]; then
    echo "FAIL: the demo reported no library allocation"
    exit 1
fi
last=$((k + 8))
if [ $last -le "$full" ]; then
    echo "alloc sweep: demo $*: K = $k library allocations per run; sweeping every N in 1..$last"
else
    echo "alloc sweep: demo $*: K = $k library allocations per run; sweeping every N in" \
        "1..$full, then every ${stride}th N up to $last"
fi

injected=0 clean=0 absorbed=0 unreached=0 bad=0
n=1
while [ $n -le $last ]; do
    run one "$@" --fail-alloc $n
    verdict=""
    if sanitizer_report "$tmp/one.err"; then
        verdict="sanitizer report"
    elif [ $rc -eq 0 ]; then
        grep -q '^RESULT: all checksums OK' "$tmp/one.out" || verdict="exit 0 without RESULT OK"
    elif [ $rc -eq 3 ]; then
        if ! grep -q '^RESULT: failed cleanly' "$tmp/one.out"; then
            verdict="exit 3 without RESULT failed cleanly"
        elif ! grep -q 'BH_ENOMEM (out of memory); closing the connection' "$tmp/one.err"; then
            verdict="exit 3 but no connection reported BH_ENOMEM"
        fi
    else
        verdict="exit $rc"
    fi
    if grep -q '^alloc: *injected failure' "$tmp/one.out"; then
        injected=$((injected + 1))
        if [ $rc -eq 3 ]; then
            clean=$((clean + 1))
        else
            absorbed=$((absorbed + 1))
        fi
    else
        unreached=$((unreached + 1))
    fi
    if [ -n "$verdict" ]; then
        bad=$((bad + 1))
        echo "FAIL: --fail-alloc $n: $verdict"
        sed 's/^/    /' "$tmp/one.out" "$tmp/one.err" | head -60
    fi
    if [ $n -lt "$full" ]; then
        n=$((n + 1))
    else
        n=$((n + stride))
    fi
done

echo "alloc sweep: $injected allocation-failure points exercised ($clean failed cleanly with" \
    "BH_ENOMEM, $absorbed absorbed and completed), $unreached runs beyond the allocations" \
    "reached, $bad bad runs"
if [ $bad -ne 0 ] || [ $injected -eq 0 ]; then
    echo "FAIL"
    exit 1
fi
echo "PASS"
