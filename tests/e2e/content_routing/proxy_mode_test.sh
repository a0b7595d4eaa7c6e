#!/bin/sh
# proxy_mode_test.sh - the content_routing program as a user runs it: two
# rig sinks (alpha, beta) as processes, the proxy routing to them, and the
# demo's clients against that proxy (demo --proxy), good and faulty ones.
# Then SIGTERM must make the proxy and the sinks close everything and exit 0.
#   sh proxy_mode_test.sh path/to/content_routing path/to/content_routing_rig
set -u
proxy_exe=$1
rig=$2
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
start proxy "$proxy_exe" --listen 127.0.0.1:0 --dest "alpha=127.0.0.1:$alpha_port" \
    --dest "beta=127.0.0.1:$beta_port" --write-budget 160K --verbose

"$rig" demo --proxy "127.0.0.1:$proxy_port" --conns 10 --tunnel-bytes 256K --write-size 333 \
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
if [ $demo_rc -ne 0 ]; then
    echo "FAIL: demo --proxy exited with $demo_rc"
    status=1
fi
[ $status -eq 0 ] && echo "PASS: proxy and sinks as processes, all checksums OK, clean exit on SIGTERM"
exit $status
