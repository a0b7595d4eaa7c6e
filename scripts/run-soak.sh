#!/bin/sh
# run-soak.sh - soak test of the content_routing proxy (issue #9).
#
#   scripts/run-soak.sh [CONNS [SECONDS [path/to/content_routing]]]
#
# Defaults: 1000 connections for 60 s (ctest runs 200 x 10 s, label soak).
# Starts two sinks (alpha, beta) and the proxy as separate processes, then
# `content_routing demo --proxy` with CONNS concurrent clients that each
# reconnect and resend their stream after every verified reply until SECONDS
# have passed; every reply is checked byte-exact (byte count and FNV-1a 64 of
# the whole stream, computed by the sink). The proxy's VmRSS is sampled from
# /proc/PID/status every second and printed; the only assertion on it is a
# generous sanity bound: max(last third) <= 1.5 x max(first third) + 4 MiB,
# over the samples from the last idle one on (the demo's start-up time
# varies with the machine's load).
# Timing is reported, not asserted. The file-descriptor limit is raised to
# what the proxy needs (2 per connection, plus 6 while its bh_tunnel splices:
# a pipe per direction and a dup per socket; + slack) up to the hard limit;
# if that is not enough the run is skipped (exit 77).
set -u
conns=${1:-1000}
secs=${2:-60}
exe=${3:-$(dirname "$0")/../build/examples/content_routing}
if [ ! -x "$exe" ]; then
    echo "FAIL: $exe is not an executable (pass the content_routing binary as 3rd argument)"
    exit 1
fi

need=$((8 * conns + 100))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
    echo "SKIP: $conns connections need $need file descriptors, hard limit is $hard"
    exit 77
fi
if ! ulimit -n "$need" 2>/dev/null; then
    echo "SKIP: cannot raise the file-descriptor limit to $need (hard limit $hard)"
    exit 77
fi
echo "soak: $conns connections for $secs s; file-descriptor limit raised to $(ulimit -n)"

dir=$(mktemp -d)
pids=""
sampler=""
cleanup() {
    [ -n "$sampler" ] && kill "$sampler" 2>/dev/null
    for p in $pids; do kill "$p" 2>/dev/null; done
    rm -rf "$dir"
}
trap cleanup EXIT

. "$(dirname "$0")/../examples/content_routing/start_service.sh"

start alpha sink --listen 127.0.0.1:0 --name alpha
start beta sink --listen 127.0.0.1:0 --name beta
# shellcheck disable=SC2154 # set by start through eval
start proxy proxy --listen 127.0.0.1:0 --dest "alpha=127.0.0.1:$alpha_port" \
    --dest "beta=127.0.0.1:$beta_port"

# shellcheck disable=SC2154
(
    while kill -0 "$proxy_pid" 2>/dev/null; do
        awk '/^VmRSS:/ { print $2 }' "/proc/$proxy_pid/status" 2>/dev/null
        sleep 1
    done
) >"$dir/rss" &
sampler=$!

# shellcheck disable=SC2154
"$exe" demo --proxy "127.0.0.1:$proxy_port" --conns "$conns" --duration-s "$secs" \
    --frames 16 --tunnel-bytes 256K --write-size 16K >"$dir/demo.out" 2>"$dir/demo.err"
demo_rc=$?
kill "$sampler" 2>/dev/null
wait "$sampler" 2>/dev/null
sampler=""

status=0
for name in proxy alpha beta; do
    eval "pid=\$${name}_pid"
    kill -TERM "$pid"
    wait "$pid"
    rc=$?
    if [ $rc -ne 0 ]; then
        echo "FAIL: $name exited with $rc after SIGTERM"
        head -20 "$dir/$name.err"
        status=1
    fi
done
pids=""

cat "$dir/demo.out"
if [ $demo_rc -ne 0 ]; then
    echo "FAIL: demo --proxy exited with $demo_rc"
    head -40 "$dir/demo.err"
    status=1
fi

echo "proxy VmRSS samples (KiB, one per second):"
tr '\n' ' ' <"$dir/rss" | fold -s -w 100
echo
awk -v status=$status '
    { v[NR] = $1 }
    END {
        n = NR
        if (n < 3) { print "FAIL: fewer than 3 RSS samples"; exit 1 }
        min = max = v[1]
        for (i = 1; i <= n; i++) { if (v[i] < min) min = v[i]; if (v[i] > max) max = v[i] }
        # Thirds of the samples taken under load: samples before the demo
        # connected (still the idle RSS) would make the bound depend on
        # how fast it started.
        s = 1
        while (s < n - 2 && v[s + 1] == v[1]) s++
        t = int((n - s + 1) / 3)
        fmax = lmax = 0
        for (i = s; i < s + t; i++) if (v[i] > fmax) fmax = v[i]
        for (i = n - t + 1; i <= n; i++) if (v[i] > lmax) lmax = v[i]
        bound = 1.5 * fmax + 4096
        printf "proxy RSS: %d samples, min %d KiB, max %d KiB, first %d KiB, last %d KiB; " \
               "max of first third %d KiB, of last third %d KiB (bound %d KiB)\n",
               n, min, max, v[1], v[n], fmax, lmax, bound
        if (lmax > bound) { print "FAIL: proxy RSS grew beyond the sanity bound"; exit 1 }
        exit status
    }' "$dir/rss"
status=$?
[ $status -eq 0 ] && echo "PASS: soak, every reply byte-exact, proxy RSS flat, clean exit on SIGTERM"
exit $status
