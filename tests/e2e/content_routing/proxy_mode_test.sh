#!/bin/sh
# proxy_mode_test.sh - the content_routing program as a user runs it: two
# rig sinks (alpha, beta) as processes, the proxy routing to them, and the
# demo's clients against that proxy (demo --proxy), good and faulty ones.
# Then SIGTERM must make the proxy and the sinks close everything and exit 0.
#   sh proxy_mode_test.sh path/to/content_routing path/to/content_routing_rig [workers]
# With "workers": the proxy runs --workers 2 with every address given as
# localhost:PORT (resolved at start-up), 40 clients, and both workers must
# have served sessions: a worker's session ids are its index + 1 plus
# multiples of 2, so the --verbose log shows odd and even ids (all 40 on one
# worker: probability 2^-39 under the kernel's SO_REUSEPORT hash).
set -u
proxy_exe=$1
rig=$2
mode=${3:-plain}
host=127.0.0.1
extra=""
conns=10
if [ "$mode" = workers ]; then
    host=localhost
    extra="--workers 2"
    conns=40
fi
dir=$(mktemp -d)
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null; done
    rm -rf "$dir"
}
trap cleanup EXIT

. "$(dirname "$0")/start_service.sh"

start alpha "$rig" sink --listen 127.0.0.1:0 --name alpha
start beta "$rig" sink --listen 127.0.0.1:0 --name beta
# shellcheck disable=SC2154 # set by start through eval
# shellcheck disable=SC2086 # $extra is split on purpose
start proxy "$proxy_exe" --listen "$host:0" --dest "alpha=$host:$alpha_port" \
    --dest "beta=$host:$beta_port" --write-budget 160K --verbose $extra

"$rig" demo --proxy "127.0.0.1:$proxy_port" --conns $conns --tunnel-bytes 256K --write-size 333 \
    --bad-route 1 --long-header 1 --long-frame 1 --disconnect-mid-frame 1 \
    --disconnect-mid-tunnel 1
demo_rc=$?

status=0
for name in proxy alpha beta; do
    eval "pid=\$${name}_pid"
    kill -TERM "$pid"
    wait "$pid"
    rc=$?
    if [ $rc -ne 0 ]; then
        echo "FAIL: $name exited with $rc after SIGTERM"
        cat "$dir/$name.err"
        status=1
    fi
done
pids=""
echo "--- proxy log"
cat "$dir/proxy.err"
# One log format: every line "TIME LEVEL [conn=ID] [peer=ADDR] message".
if grep -Evq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z (error|warn|info) ' \
    "$dir/proxy.err"; then
    echo "FAIL: a proxy log line not in the log.h format"
    status=1
fi
if [ "$mode" = workers ]; then
    odd=$(grep -Ec ' conn=[0-9]*[13579] peer=127\.0\.0\.1:[0-9]+ session ' "$dir/proxy.err")
    even=$(grep -Ec ' conn=[0-9]*[02468] peer=127\.0\.0\.1:[0-9]+ session ' "$dir/proxy.err")
    echo "sessions ended: worker 0: $odd, worker 1: $even"
    if [ "$odd" -eq 0 ] || [ "$even" -eq 0 ] || [ $((odd + even)) -ne $conns ]; then
        echo "FAIL: expected $conns sessions over both workers"
        status=1
    fi
    if ! grep -q " info $conns sessions: " "$dir/proxy.err"; then
        echo "FAIL: no summed report of $conns sessions at exit"
        status=1
    fi
fi
if [ $demo_rc -ne 0 ]; then
    echo "FAIL: demo --proxy exited with $demo_rc"
    status=1
fi
[ $status -eq 0 ] && echo "PASS: proxy and sinks as processes, all checksums OK, clean exit on SIGTERM"
exit $status
