# start_service.sh - sourced by the shell drivers that run content_routing and
# the rig's sinks as separate processes (proxy_mode_test.sh,
# scripts/run-soak.sh). Expects $dir (a scratch directory) and $pids (a list
# the caller's cleanup kills).

# start NAME PROGRAM ARGS...: runs PROGRAM in the background, waits for its
# "listening PORT" line, sets NAME_pid and NAME_port.
start() {
    name=$1
    shift
    "$@" >"$dir/$name.out" 2>"$dir/$name.err" &
    pid=$!
    pids="$pids $pid"
    eval "${name}_pid=$pid"
    i=0
    until grep -q '^listening ' "$dir/$name.out"; do
        i=$((i + 1))
        if [ $i -gt 200 ] || ! kill -0 "$pid" 2>/dev/null; then
            echo "FAIL: $name did not start listening"
            cat "$dir/$name.err"
            exit 1
        fi
        sleep 0.05
    done
    eval "${name}_port=$(sed -n 's/^listening //p' "$dir/$name.out")"
}
