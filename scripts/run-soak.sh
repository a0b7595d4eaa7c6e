#!/bin/sh
# run-soak.sh - soak test of the content_routing proxy.
#
#   scripts/run-soak.sh [CONNS [SECONDS [path/to/content_routing [path/to/content_routing_rig]]]]
#
# Defaults: 1000 connections for 60 s (ctest runs 200 x 10 s, label soak),
# the programs of build/default. Starts two sinks (alpha, beta; the test
# rig's) and the content_routing proxy as separate processes, then
# `content_routing_rig demo --proxy` with CONNS concurrent clients that each
# reconnect and resend their stream after every verified reply until SECONDS
# have passed after the ramp (below); every reply is checked byte-exact
# (byte count and FNV-1a 64 of the whole stream, computed by the sink). The
# proxy exits 0 on SIGTERM (and, under ASan, with no leak). Timing is
# reported, never asserted. The file-descriptor limit is raised to what the
# proxy needs (2 per connection, plus 6 while its bh_tunnel splices: a pipe
# per direction and a dup per socket; + slack) up to the hard limit; if that
# is not enough the run is skipped (exit 77). Splicing moves tunnel bytes
# through kernel pipes, which RSS does not count; the bound below holds
# either way.
#
# Memory bound. A proxy session holds, per direction, at most one read buffer
# of R bytes plus its write budget W of queued slices (a slice refused by a
# full queue is held, and reading stops until the queue drains to W / 2), so
#
#     proxy memory under load <= CONNS x 2 x (R + W) + a fixed allowance
#
# with R = max(read_reserve, max_line + 1 + max_frame) and W = write_budget
# (proxy options --read-reserve, --max-line, --max-frame, --write-budget; this
# script passes them). The fixed allowance (code, libuv, the sanitizers'
# shadow memory and allocator caches) is not guessed but measured. The
# proxy's VmRSS is sampled every 0.25 s: the first sample is the idle proxy;
# the ramp ends when the demo reports that every client has a verified reply
# (all connections established, data exchanged both ways), and the loaded
# level is the largest RSS seen up to then. Checks:
#   - steady state: every later sample <= loaded level + the bound (at least
#     3 such samples; the demo's SECONDS count from the end of the ramp);
#   - load cost, plain builds only: loaded level - idle <= the bound. Under a
#     sanitizer each heap byte costs a build-dependent multiple (shadow
#     memory, redzones), so only the steady-state check applies there.
# Under ASan the quarantine (freed memory held back to catch use after free)
# fills with churn, not load: it is capped at QUARANTINE_MB MiB for the soak
# and added to the bound.
set -u
conns=${1:-1000}
secs=${2:-60}
exe=${3:-$(dirname "$0")/../build/default/examples/content_routing}
rig=${4:-$(dirname "$0")/../build/default/tests/e2e/content_routing/content_routing_rig}
for p in "$exe" "$rig"; do
    if [ ! -x "$p" ]; then
        echo "FAIL: $p is not an executable (pass content_routing and content_routing_rig)"
        exit 1
    fi
done

# Proxy limits (KiB where the name says so), and the bound they imply.
read_reserve=16384
max_line=1024
max_frame=1024
write_budget=65536
r=$((max_line + 1 + max_frame))
[ $read_reserve -gt $r ] && r=$read_reserve
bound_kib=$((conns * 2 * (r + write_budget) / 1024))
QUARANTINE_MB=16
sanitized=0
grep -qa -e __asan_init -e __tsan_init "$exe" && sanitized=1
if grep -qa __asan_init "$exe"; then
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=$QUARANTINE_MB"
    export ASAN_OPTIONS
    bound_kib=$((bound_kib + QUARANTINE_MB * 1024))
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

. "$(dirname "$0")/../tests/e2e/content_routing/start_service.sh"

start alpha "$rig" sink --listen 127.0.0.1:0 --name alpha
start beta "$rig" sink --listen 127.0.0.1:0 --name beta
# shellcheck disable=SC2154 # set by start through eval
start proxy "$exe" --listen 127.0.0.1:0 --dest "alpha=127.0.0.1:$alpha_port" \
    --dest "beta=127.0.0.1:$beta_port" --read-reserve $read_reserve --max-line $max_line \
    --max-frame $max_frame --write-budget $write_budget

# One line per sample: "ramp KiB" until the demo reports the ramp done, then
# "steady KiB".
: >"$dir/demo.out"
# shellcheck disable=SC2154
(
    phase=ramp
    while kill -0 "$proxy_pid" 2>/dev/null; do
        [ $phase = ramp ] && grep -q '^ramp:' "$dir/demo.out" && phase=steady
        rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$proxy_pid/status" 2>/dev/null)
        [ -n "$rss" ] && echo "$phase $rss"
        sleep 0.25
    done
) >"$dir/rss" &
sampler=$!

# shellcheck disable=SC2154
"$rig" demo --proxy "127.0.0.1:$proxy_port" --conns "$conns" --duration-s "$secs" \
    --frames 16 --tunnel-bytes 64K --write-size 16K \
    >"$dir/demo.out" 2>"$dir/demo.err"
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

echo "proxy VmRSS samples (KiB, every 0.25 s; * = steady state):"
awk '{ printf "%s%s ", $2, ($1 == "steady" ? "*" : "") }' "$dir/rss" | fold -s -w 100
echo
awk -v status=$status -v bound=$bound_kib -v conns=$conns -v r=$r -v w=$write_budget \
    -v sanitized=$sanitized '
    NR == 1 { idle = $2 }
    $1 == "ramp" { if ($2 > base) base = $2 }
    $1 == "steady" {
        ns++
        if (ns == 1 && $2 > base) base = $2   # the sample that saw the ramp end
        else if ($2 > peak) peak = $2
    }
    END {
        printf "proxy RSS: idle %d KiB, loaded (largest up to the end of the ramp) %d KiB; " \
               "steady state %d samples, peak %d KiB; bound %d x 2 x (%d + %d) B = %d KiB\n",
               idle, base, ns - 1, peak, conns, r, w, bound
        if (ns - 1 < 3) {
            print "FAIL: fewer than 3 steady-state RSS samples"
            exit 1
        }
        if (peak > base + bound) {
            printf "FAIL: steady-state proxy RSS %d KiB exceeds loaded + bound = %d KiB\n",
                   peak, base + bound
            exit 1
        }
        if (!sanitized && base - idle > bound) {
            printf "FAIL: the load cost the proxy %d KiB, above the bound %d KiB\n",
                   base - idle, bound
            exit 1
        }
        exit status
    }' "$dir/rss"
status=$?
[ $status -eq 0 ] &&
    echo "PASS: soak, every reply byte-exact, proxy RSS within its bound, clean exit on SIGTERM"
exit $status
