#!/usr/bin/env python3
"""load_test.py - http_router under volume: memory, long connections, wrk (ctest).

    load_test.py ROUTER_CMD SCENARIO

Scenarios: slow_client (a 256 MiB response to a client that reads slowly:
the router's RSS may grow by less than 64 MiB, i.e. it applies backpressure
instead of buffering; HTTP_TEST_BIG_MIB changes the size), slow_upstream
(the same for a 256 MiB upload to an upstream that pauses before reading), keepalive_10k
(10,000 requests on one client connection, 50 pipelined at a time, all
answered in order over at most 4 upstream connections), workers (--workers
2, 16 concurrent keep-alive clients, 3,200 requests), wrk (wrk -t1 -c8
-d2s against an nginx backend: zero socket errors and zero non-2xx/3xx).
Nothing is judged by time; memory is judged by a generous bound.
"""
import os
import re
import socket
import subprocess
import threading
import time

from backend import BLOCK, Conn
from harness import (DEADLINE, check, client, get, read_response, roundtrip, rss_kib,
                     run_scenario)


def scenario_slow_client(env):
    mib = int(os.environ.get("HTTP_TEST_BIG_MIB", "256"))
    b = env.backend("a")
    # ASan's quarantine of freed blocks would count as growth: keep it small.
    os.environ["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") +
                                  ":quarantine_size_mb=16").lstrip(":")
    r = env.router(["--route", "a.test=" + b.addr])
    for _ in range(3):  # warm-up: first-use allocations are not growth
        check(roundtrip(r.port, get("/cl/100000")).status == 200, "warm-up")
    before = rss_kib(r.rss_pid)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.settimeout(DEADLINE)
    s.connect(("127.0.0.1", r.port))
    c = Conn(s, [])
    s.sendall(get("/big/%d" % (mib << 20)))
    head = c.until(b"\r\n\r\n")
    check(b" 200 " in head.split(b"\r\n")[0], "big response head %r" % head[:80])
    time.sleep(0.5)  # stop reading: a router without backpressure would buffer here
    peak = rss_kib(r.rss_pid)
    left, off = mib << 20, 0
    while left > 0:
        want = min(left, 1 << 20)
        data = c.exactly(want)
        k = off % len(BLOCK)
        check(data == (BLOCK[k:] + BLOCK[:k])[:want], "big response: bytes differ at %d" % off)
        off += want
        left -= want
        if off % (16 << 20) == 0:
            peak = max(peak, rss_kib(r.rss_pid))
            time.sleep(0.005)
    peak = max(peak, rss_kib(r.rss_pid))
    s.close()
    growth = (peak - before) / 1024.0
    print("router VmRSS before %d KiB, peak during %d KiB (+%.1f MiB) for a %d MiB response"
          % (before, peak, growth, mib))
    check(growth < 64, "router RSS grew %.1f MiB while a slow client read %d MiB" % (growth, mib))
    check(roundtrip(r.port, get("/after")).status == 200, "router broken after the big response")
    env.stop_router(r)


def scenario_slow_upstream(env):
    """A 256 MiB upload to an upstream that pauses, then reads: the router's
    RSS may grow by less than 64 MiB (it stops reading the client)."""
    mib = int(os.environ.get("HTTP_TEST_BIG_MIB", "256"))
    b = env.backend("a")
    os.environ["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") +
                                  ":quarantine_size_mb=16").lstrip(":")
    r = env.router(["--route", "a.test=" + b.addr])
    for _ in range(3):
        check(roundtrip(r.port, get("/cl/100000")).status == 200, "warm-up")
    before = peak = rss_kib(r.rss_pid)
    c = client(r.port)
    c.sock.sendall(b"POST /sink/500 HTTP/1.1\r\nHost: a.test\r\nContent-Length: %d\r\n\r\n"
                   % (mib << 20))
    for i in range(mib):
        c.sock.sendall(BLOCK)
        if i % 16 == 0:
            peak = max(peak, rss_kib(r.rss_pid))
    resp = read_response(c)
    peak = max(peak, rss_kib(r.rss_pid))
    check(resp.status == 200 and resp.body == b"ok %d" % (mib << 20),
          "upload: %d %r" % (resp.status, resp.body))
    c.sock.close()
    growth = (peak - before) / 1024.0
    print("router VmRSS before %d KiB, peak %d KiB (+%.1f MiB) for a %d MiB upload"
          % (before, peak, growth, mib))
    check(growth < 64, "router RSS grew %.1f MiB while a slow upstream read %d MiB"
          % (growth, mib))
    env.stop_router(r)


def scenario_keepalive_10k(env):
    b = env.backend("a")
    r = env.router(["--route", "a.test=" + b.addr])
    c = client(r.port)
    total, batch = 10000, 50
    for start in range(0, total, batch):
        c.sock.sendall(b"".join(get("/k/%d" % i) for i in range(start, start + batch)))
        for i in range(start, start + batch):
            resp = read_response(c)
            check(resp.status == 200 and resp.body == b"ok /k/%d" % i,
                  "request %d: %d %r" % (i, resp.status, resp.body[:40]))
    c.sock.close()
    check(len(b.requests) == total, "backend got %d of %d requests" % (len(b.requests), total))
    check(len(b.conns) <= 4, "10,000 requests on one connection used %d upstream connections"
          % len(b.conns))
    env.stop_router(r)


def scenario_workers(env):
    """--workers 2: 16 client threads, 200 requests each on its own
    connection, bodies of several sizes; every answer right."""
    b = env.backend("a")
    r = env.router(["--route", "a.test=" + b.addr, "--workers", "2"])
    errors = []

    def one(t):
        try:
            c = client(r.port)
            for i in range(200):
                n = (t * 200 + i) % 5000
                c.sock.sendall(get("/cl/%d" % n))
                resp = read_response(c)
                if resp.status != 200 or resp.body != BLOCK[:n]:
                    errors.append("thread %d request %d: %d" % (t, i, resp.status))
                    return
            c.sock.close()
        except (OSError, EOFError) as e:
            errors.append("thread %d: %r" % (t, e))
    threads = [threading.Thread(target=one, args=(t,)) for t in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
    check(not errors, "--workers 2: " + "; ".join(errors[:5]))
    check(len(b.requests) == 3200, "backend got %d of 3200 requests" % len(b.requests))
    env.stop_router(r)


def scenario_wrk(env):
    ng = env.nginx({"index.html": b"<p>small</p>\n" * 8})
    r = env.router(["--route", "a.test=" + ng])
    p = subprocess.run(["wrk", "-t1", "-c8", "-d2s", "-H", "Host: a.test",
                        "http://127.0.0.1:%d/index.html" % r.port],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=DEADLINE)
    out = p.stdout.decode(errors="replace")
    print(out)
    check(p.returncode == 0, "wrk exited %d" % p.returncode)
    m = re.search(r"(\d+) requests in", out)
    check(m and int(m.group(1)) > 0, "wrk completed no requests")
    check("Socket errors" not in out, "wrk saw socket errors")
    check("Non-2xx or 3xx" not in out, "wrk saw non-2xx/3xx responses")
    check(roundtrip(r.port, get("/index.html")).status == 200, "router broken after wrk")
    env.stop_router(r)


TOOLS = {"wrk": ["wrk", "nginx"]}

if __name__ == "__main__":
    run_scenario(__doc__, globals(), TOOLS)
