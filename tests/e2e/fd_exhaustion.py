#!/usr/bin/env python3
"""fd_exhaustion.py - a proxy under RLIMIT_NOFILE must not spin, must keep
serving, must log once per episode and must accept again when descriptors
free up.

    fd_exhaustion.py --sink BH_STREAM_SINK [--nofile 256] [--clients 600] \
        -- PROXY_COMMAND...

The proxy command gets "--listen 127.0.0.1:0 --upstream 127.0.0.1:PORT"
appended (bench/harness proxy, or content_routing --line-frames) and
runs with RLIMIT_NOFILE lowered to --nofile. It must speak the harness wire
protocol: lines, "TUNNEL\\n", raw bytes, half-close, reply
"OK <nbytes> <fnv1a64>" from the sink.

1. Exhaustion: --clients clients connect at once and send nothing, so the
   proxy runs out of descriptors with every connection it holds idle. Over a
   fixed window its CPU time (utime + stime from /proc) must stay below a
   generous fraction of the window (a sanity bound only: on a loaded machine
   a spinning proxy may get less than that). Its log must show exactly one
   episode. The spin check proper counts: each episode's end line reports
   its refused attempts, which may not exceed what retrying every 100 ms
   allows over the whole run (twice that, plus slack); a proxy spinning on
   a readable listener makes thousands per second.
2. Serving and accepting again: every client then sends a request and
   half-closes. The clients the proxy holds are answered, each answer frees
   descriptors, and the proxy must take the waiting clients from the backlog:
   every client gets its verified reply (bounded wait, no speed assumption).
3. SIGTERM: the proxy exits 0.
Exit status 0 on success, 1 with a message on failure, 77 when the test
cannot run here (descriptor limit too low for the clients).
"""
import argparse
import os
import re
import resource
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time

FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
WINDOW_S = 2.0
CPU_FRACTION_MAX = 0.5  # of the window; a spinning proxy uses ~1.0
EPISODE_RE = re.compile(r"pausing accepts")
RESUME_RE = re.compile(r"accepting again after (\d+) refused attempts")
RETRIES_PER_S = 10  # the proxies retry every 100 ms while exhausted


def fnv1a64(data):
    h = FNV_OFFSET
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def start_listening(cmd, err_path, preexec=None):
    """Starts cmd, waits for "listening PORT" on its stdout; returns (proc, port)."""
    err = open(err_path, "w")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, preexec_fn=preexec, text=True)
    line = proc.stdout.readline()
    m = re.match(r"listening (\d+)", line or "")
    if not m:
        proc.kill()
        fail("%s did not print 'listening PORT' (got %r)" % (cmd[0], line))
    return proc, int(m.group(1))


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is state (field 3); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sink", required=True)
    ap.add_argument("--nofile", type=int, default=256)
    ap.add_argument("--clients", type=int, default=600)
    ap.add_argument("--timeout", type=float, default=90.0)
    ap.add_argument("proxy", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    proxy_cmd = [a for a in args.proxy if a != "--"]
    if not proxy_cmd:
        fail("no proxy command")

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.clients + 64
    if hard != resource.RLIM_INFINITY and hard < need:
        print("SKIP: hard descriptor limit %d below %d" % (hard, need))
        return 77
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))

    tmp = tempfile.mkdtemp()
    sink, sink_port = start_listening([args.sink, "--listen", "127.0.0.1:0"],
                                      os.path.join(tmp, "sink.err"))
    limit = args.nofile
    proxy_err = os.path.join(tmp, "proxy.err")
    proxy, proxy_port = start_listening(
        proxy_cmd + ["--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:%d" % sink_port],
        proxy_err, preexec=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit)))
    try:
        return run(args, proxy, proxy_port, proxy_err)
    finally:
        for p in (proxy, sink):
            if p.poll() is None:
                p.kill()
                p.wait()


def run(args, proxy, proxy_port, proxy_err):
    # ---- 1: exhaustion with idle clients
    started = time.monotonic()
    clients = []
    for _ in range(args.clients):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", proxy_port))
        clients.append(s)
    time.sleep(0.5)  # the proxy takes what it can; the rest stays in the backlog
    c0, t0 = cpu_seconds(proxy.pid), time.monotonic()
    time.sleep(WINDOW_S)
    c1, t1 = cpu_seconds(proxy.pid), time.monotonic()
    used = (c1 - c0) / (t1 - t0)
    print("proxy CPU while exhausted: %.3f of one core over %.1f s" % (used, t1 - t0))
    if proxy.poll() is not None:
        fail("proxy exited under exhaustion with %d" % proxy.returncode)
    if used > CPU_FRACTION_MAX:
        fail("proxy spins while descriptors are exhausted (%.2f cores)" % used)
    log = open(proxy_err).read()
    episodes = len(EPISODE_RE.findall(log))
    if episodes != 1:
        fail("expected one logged exhaustion episode with idle clients, got %d:\n%s" %
             (episodes, log))

    # ---- 2: every client is served, the backlog included
    sel = selectors.DefaultSelector()
    expect = {}
    for i, s in enumerate(clients):
        payload = b"frame %05d of an idle client\nTUNNEL\nraw tail %05d" % (i, i)
        expect[s] = b"OK %d %016x\n" % (len(payload), fnv1a64(payload))
        s.setblocking(True)
        s.sendall(payload)  # small: fits the socket buffer, accepted or not
        s.shutdown(socket.SHUT_WR)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, bytearray())
    done = bad = 0
    deadline = time.monotonic() + args.timeout
    while done + bad < len(clients) and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1.0):
            s, got = key.fileobj, key.data
            try:
                chunk = s.recv(256)
            except (BlockingIOError, InterruptedError):
                continue
            except ConnectionError:
                chunk = b""
            if chunk:
                got.extend(chunk)
                continue
            sel.unregister(s)
            s.close()
            if bytes(got) == expect[s]:
                done += 1
            else:
                bad += 1
    print("served %d of %d clients (%d wrong or cut off)" % (done, len(clients), bad))
    if done != len(clients):
        fail("the proxy did not serve every client after descriptors freed up "
             "(%d verified, %d wrong, %d unanswered)" %
             (done, bad, len(clients) - done - bad))
    elapsed = time.monotonic() - started
    log = open(proxy_err).read()
    starts, ends = len(EPISODE_RE.findall(log)), RESUME_RE.findall(log)
    refused = sum(int(n) for n in ends)
    allowed = int(2 * RETRIES_PER_S * elapsed) + 50
    print("episodes logged: %d started, %d ended; %d refused attempts in %.1f s (at most %d)" %
          (starts, len(ends), refused, elapsed, allowed))
    if len(ends) < 1 or starts > len(ends) + 1:
        fail("exhaustion episodes not logged once each:\n" + log)
    if refused > allowed:
        fail("the proxy retried %d times in %.1f s: it spins" % (refused, elapsed))

    # ---- 3: clean exit
    proxy.send_signal(signal.SIGTERM)
    try:
        rc = proxy.wait(timeout=30)
    except subprocess.TimeoutExpired:
        fail("proxy did not exit on SIGTERM")
    if rc != 0:
        fail("proxy exited with %d after SIGTERM" % rc)
    print("PASS: no spin under RLIMIT_NOFILE=%d with %d clients, all served, clean exit" %
          (args.nofile, args.clients))
    return 0


if __name__ == "__main__":
    sys.exit(main())
