#!/usr/bin/env python3
"""client_test.py - http_router with real clients and backends (ctest).

    client_test.py ROUTER_CMD SCENARIO

ROUTER_CMD is the router program (HTTP_ROUTER_CMD overrides it, e.g.
"python3 haproxy_standin.py"). Scenarios: forward (raw sockets and
http.client: what the backend receives is what the client sent plus the two
lines the router adds), routing (Host exact, *.suffix, Host port ignored,
longest path prefix, --default, 404), curl (keep-alive reuse, chunked
upload with -T -, HEAD, Expect: 100-continue), bodies (Content-Length,
chunked, close-delimited, HEAD, 204, 304 on one connection), pipelining
(requests in one write, answered in order, also across two upstreams), pool
(upstream reuse, a stale pooled connection, Connection: close and HTTP/1.0
on the client side), close (a client's lone Connection: close is not
forwarded and the upstream connection stays pooled), upgrade (101 and CONNECT
become tunnels), nginx (files from nginx through the router, curl and
http.client, 304). Exit 77: a needed program (curl, nginx) is missing.
"""
import http.client
import os
import subprocess

from backend import pattern
from harness import (DEADLINE, check, client, closed_after, fail, get, read_response,
                     roundtrip, run_scenario, wait_for)


class RecordingHTTPConnection(http.client.HTTPConnection):
    """http.client connection that keeps every byte it sends in .sent."""

    sent = b""

    def send(self, data):
        self.sent += data
        super().send(data)


def scenario_forward(env):
    b = env.backend("a")
    r = env.router(["--route", "a.test=" + b.addr])
    cases = [
        get("/plain"),
        b"GET /odd?q=1&r=%20 HTTP/1.1\r\nhost: a.test\r\nX-MiXeD-Case:  two  spaces \r\n"
        b"Accept: */*\r\nX-Empty:\r\nX-Dup: 1\r\nX-Dup: 2\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: a.test\r\nContent-Length: 11\r\n\r\nhello world",
        b"POST /echo HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        b"PUT /echo HTTP/1.1\r\nHost: a.test\r\nContent-Length: 0\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n",
        b"GET /ten HTTP/1.0\r\nHost: a.test\r\n\r\n",
        b"GET http://a.test/absolute HTTP/1.1\r\nHost: a.test\r\n\r\n",
    ]
    for i, raw in enumerate(cases):
        n = len(b.requests)
        resp = roundtrip(r.port, raw)
        check(resp.status == 200, "case %d: status %d" % (i, resp.status))
        check(len(b.requests) == n + 1, "case %d: backend got %d requests" % (
            i, len(b.requests) - n))
        env.forwarded(b.requests[n][1], raw, "case %d" % i)
        if b"/echo" in raw:
            check(resp.body == b.requests[n][5], "case %d: echo body %r" % (i, resp.body))
    # http.client on one keep-alive connection: GET, POST, GET.
    c = RecordingHTTPConnection("127.0.0.1", r.port, timeout=DEADLINE)
    for method, path, body in (("GET", "/cl/70000", None), ("POST", "/echo", b"x" * 5000),
                               ("GET", "/chunked/9999", None)):
        n = len(b.requests)
        c.sent = b""
        c.request(method, path, body=body, headers={"Host": "a.test"})
        resp = c.getresponse()
        data = resp.read()
        check(resp.status == 200, "http.client %s %s: %d" % (method, path, resp.status))
        want = body if body else pattern(int(path.split("/")[2]))
        check(data == want, "http.client %s %s: body differs" % (method, path))
        env.forwarded(b.requests[n][1], c.sent, "http.client %s %s" % (method, path))
    c.close()
    check(len(b.conns) <= len(cases) + 1, "backend saw %d connections" % len(b.conns))
    env.stop_router(r)


def scenario_routing(env):
    names = ["exact", "wild", "api", "apiv2", "dflt"]
    be = {n: env.backend(n) for n in names}
    r = env.router(["--route", "a.test=" + be["exact"].addr,
                    "--route", "*.wild.test=" + be["wild"].addr,
                    "--route", "a.test/api=" + be["api"].addr,
                    "--route", "a.test/api/v2=" + be["apiv2"].addr,
                    "--default", be["dflt"].addr])
    cases = [("a.test", "/x", "exact"), ("a.test:8080", "/x", "exact"),
             ("a.test", "/api/x", "api"), ("a.test", "/api/v2/x", "apiv2"),
             ("a.test:1", "/api/v2/", "apiv2"), ("foo.wild.test", "/", "wild"),
             ("deep.foo.wild.test:99", "/api/x", "wild"), ("other.test", "/x", "dflt"),
             ("b.test", "/api/x", "dflt"), ("A.Test", "/x", "exact")]
    for host, path, want in cases:
        counts = {n: len(be[n].requests) for n in names}
        raw = get(path, host)
        resp = roundtrip(r.port, raw)
        check(resp.status == 200, "%s%s: status %d" % (host, path, resp.status))
        got = resp.header("x-backend")
        check(got == want, "%s%s went to %s, expected %s" % (host, path, got, want))
        for n in names:
            check(len(be[n].requests) == counts[n] + (n == want),
                  "%s%s: backend %s request count changed wrongly" % (host, path, n))
        env.forwarded(be[want].requests[-1][1], raw, "%s%s" % (host, path))
    env.stop_router(r)
    # No match and no --default: 404 from the router, nothing forwarded.
    r = env.router(["--route", "a.test=" + be["exact"].addr])
    before = len(be["exact"].received())
    for host in ("other.test", "sub.a.test"):
        resp = roundtrip(r.port, get("/x", host))
        check(resp.status == 404, "%s without --default: status %d" % (host, resp.status))
    check(len(be["exact"].received()) == before, "a 404 request reached the backend")
    check(roundtrip(r.port, get("/y")).status == 200, "router broken after 404s")
    env.stop_router(r)


def curl(*args, data=None):
    p = subprocess.run(["curl", "-sS", "--max-time", str(int(DEADLINE)), *args], input=data,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        fail("curl %s: exit %d: %s" % (" ".join(args), p.returncode, p.stderr.decode()[-2000:]))
    return p.stdout, p.stderr.decode(errors="replace")


def scenario_curl(env):
    b = env.backend("a")
    r = env.router(["--route", "a.test=" + b.addr])
    base = "http://a.test:%d" % r.port
    res = ["--resolve", "a.test:%d:127.0.0.1" % r.port]
    # Keep-alive reuse: one curl, two URLs, the second on the same connection.
    out, _ = curl(*res, "-o", "/dev/null", "-o", "/dev/null", "--write-out",
                  "%{http_code} %{num_connects}\n", base + "/cl/100", base + "/chunked/3000")
    check(out.decode().split("\n")[:2] == ["200 1", "200 0"],
          "keep-alive reuse: curl wrote %r" % out)
    # Chunked upload from stdin (-T -), echoed back.
    data = os.urandom(300000)
    n = len(b.requests)
    out, _ = curl(*res, "-T", "-", "-X", "POST", base + "/echo", data=data)
    check(out == data, "chunked upload: echo differs (%d bytes back)" % len(out))
    hdrs = b.requests[n][4]
    check(("transfer-encoding", "chunked") in hdrs, "upload was not chunked: %r" % hdrs)
    check(b.requests[n][5] == data, "backend got a different upload body")
    # HEAD twice on one connection: no body, the framing survives.
    out, err = curl(*res, "-I", "-v", base + "/cl/5000", base + "/chunked/700")
    check(out.count(b"HTTP/1.1 200") == 2, "HEAD: %r" % out)
    check(b"Content-Length: 5000" in out or b"content-length: 5000" in out,
          "HEAD lost Content-Length: %r" % out)
    check("Re-using existing connection" in err or "Reusing existing connection" in err,
          "HEAD: second request not on the same connection")
    # Expect: 100-continue: the body goes after the interim response.
    path = os.path.join(env.dir, "upload.bin")
    data = os.urandom(200000)
    with open(path, "wb") as f:
        f.write(data)
    out, err = curl(*res, "-v", "-H", "Expect: 100-continue", "--data-binary", "@" + path,
                    base + "/echo")
    check(out == data, "100-continue: echo differs")
    check("HTTP/1.1 100" in err, "100-continue: curl saw no 100 Continue")
    check(("expect", "100-continue") in b.requests[-1][4], "Expect not forwarded")
    env.stop_router(r)


def scenario_bodies(env):
    b = env.backend("a")
    r = env.router(["--route", "a.test=" + b.addr])
    c = client(r.port)
    seq = [("GET", "/cl/0", 200, 0), ("GET", "/cl/100000", 200, 100000),
           ("HEAD", "/cl/777", 200, 0), ("GET", "/chunked/54321", 200, 54321),
           ("HEAD", "/chunked/500", 200, 0), ("GET", "/204", 204, 0),
           ("GET", "/304", 304, 0), ("GET", "/cl/3", 200, 3), ("GET", "/close/12345", 200, 12345)]
    for method, path, status, n in seq:
        c.sock.sendall(get(path, method=method.encode()))
        resp = read_response(c, method)
        check(resp.status == status, "%s %s: status %d" % (method, path, resp.status))
        check(resp.body == pattern(n), "%s %s: body of %d bytes, expected %d" % (
            method, path, len(resp.body), n))
        if method == "HEAD" and path.startswith("/cl"):
            check(resp.header("content-length") == str(int(path.split("/")[2])),
                  "HEAD %s: content-length %r" % (path, resp.header("content-length")))
    check(len(b.conns) == 1, "one client connection used %d upstream ones" % len(b.conns))
    c.sock.close()
    env.stop_router(r)


def scenario_pipelining(env):
    b = env.backend("a")
    r = env.router(["--route", "a.test=" + b.addr])
    reqs = [get("/cl/10"), b"POST /echo HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n\r\n"
            b"abcde", get("/chunked/3000"), get("/cl/20", method=b"HEAD"), get("/last")]
    c = client(r.port)
    c.sock.sendall(b"".join(reqs))
    want = [(200, pattern(10)), (200, b"abcde"), (200, pattern(3000)), (200, b""),
            (200, b"ok /last")]
    methods = ["GET", "POST", "GET", "HEAD", "GET"]
    for i, (status, body) in enumerate(want):
        resp = read_response(c, methods[i])
        check((resp.status, resp.body) == (status, body),
              "pipelined response %d: %d %r" % (i, resp.status, resp.body[:80]))
    check(len(b.requests) == len(reqs), "backend got %d requests" % len(b.requests))
    for i, raw in enumerate(reqs):
        env.forwarded(b.requests[i][1], raw, "pipelined request %d" % i)
    # Across two upstreams, the first one slow: still answered in order.
    b2 = env.backend("b")
    env.stop_router(r)
    r = env.router(["--route", "a.test=" + b.addr, "--route", "b.test=" + b2.addr])
    c = client(r.port)
    c.sock.sendall(get("/slow/300") + get("/fast", "b.test") + get("/slow/100") +
                   get("/fast2", "b.test"))
    for body, name in ((b"ok /slow/300", "a"), (b"ok /fast", "b"), (b"ok /slow/100", "a"),
                       (b"ok /fast2", "b")):
        resp = read_response(c)
        check((resp.body, resp.header("x-backend")) == (body, name),
              "two upstreams: got %r from %s, expected %r from %s" % (
                  resp.body, resp.header("x-backend"), body, name))
    c.sock.close()
    env.stop_router(r)


def scenario_pool(env):
    """Upstream connections: reused across client connections (--pool-size 1),
    a pooled connection the backend closed is not used for the next request
    (or the request is retried on a fresh one), Connection: close and
    HTTP/1.0 end the client connection after the response."""
    b = env.backend("a")
    r = env.router(["--route", "a.test=" + b.addr, "--pool-size", "1"])
    for i in range(3):
        check(roundtrip(r.port, get("/seq%d" % i)).status == 200, "sequential request %d" % i)
    check(len(b.conns) == 1, "3 sequential clients used %d upstream connections, expected 1 "
          "(--pool-size 1)" % len(b.conns))
    for i in range(3):
        check(roundtrip(r.port, get("/drop")).body == b"ok /drop", "drop %d" % i)
        wait_for(lambda: b.ended == len(b.conns), "the backend to close its connection")
        resp = roundtrip(r.port, get("/after-drop%d" % i))
        check(resp.status == 200, "request after the pooled upstream closed: %d (a stale pooled "
              "connection was used and the request not retried)" % resp.status)
    # The backend closes a pooled connection as the next request arrives: an
    # idempotent GET is retried on a fresh connection, not answered 502.
    for i in range(3):
        check(roundtrip(r.port, get("/arm")).body == b"ok /arm", "arm %d" % i)
        resp = roundtrip(r.port, get("/raced%d" % i))
        check(resp.status == 200 and resp.body == b"ok /raced%d" % i,
              "GET on a pooled connection the backend closed unanswered: %d %r" % (
                  resp.status, resp.body[:60]))
    for raw, what, drop in ((get("/c", extra=b"Connection: close\r\n"), "Connection: close",
                             b"Connection: close\r\n"),
                            (b"GET /ten HTTP/1.0\r\nHost: a.test\r\n\r\n", "HTTP/1.0", b"")):
        n = len(b.requests)
        c = client(r.port)
        c.sock.sendall(raw)
        resp = read_response(c)
        check(resp.status == 200, what)
        check((resp.header("connection") or "").lower() == "close",
              "%s: the response does not say Connection: close: %r" % (what, resp.head))
        check(closed_after(c), "%s: the router kept the client connection open" % what)
        env.forwarded(b.requests[n][1], raw, what, drop)
        c.sock.close()
    env.stop_router(r)


def scenario_close(env):
    """A client's lone "Connection: close" is not forwarded: clients that
    each send one request with it on a new connection share one upstream
    connection (kept in the pool), each gets its response, saying
    Connection: close, then EOF. Other Connection values, two Connection
    fields and Upgrade requests go upstream unchanged."""
    b = env.backend("a")
    r = env.router(["--route", "a.test=" + b.addr, "--pool-size", "1"])
    line = b"Connection: close\r\n"
    for i, (extra, drop) in enumerate(((line, line), (b"X-A: 1\r\n" + line + b"X-B: 2\r\n", line),
                                       (b"connection:\t CLOSE \r\n",
                                        b"connection:\t CLOSE \r\n"))):
        raw = get("/close%d" % i, extra=extra)
        n = len(b.requests)
        c = client(r.port)
        c.sock.sendall(raw)
        resp = read_response(c)
        check(resp.status == 200 and resp.body == b"ok /close%d" % i, "close %d: %d %r" % (
            i, resp.status, resp.body[:60]))
        check((resp.header("connection") or "").lower() == "close",
              "close %d: the response does not say Connection: close: %r" % (i, resp.head))
        check(closed_after(c), "close %d: the router kept the client connection open" % i)
        c.sock.close()
        wait_for(lambda: len(b.requests) > n, "the backend to record request %d" % i)
        env.forwarded(b.requests[n][1], raw, "close %d" % i, drop)
    if not env.standin:
        check(len(b.conns) == 1 and b.ended == 0,
              "3 Connection: close clients used %d upstream connections (%d closed), expected "
              "1 kept open" % (len(b.conns), b.ended))
    for i, extra in enumerate((b"Connection: close, foo\r\n", b"Connection: keep-alive\r\n",
                               b"Connection: close\r\nConnection: close\r\n",
                               b"Connection: close\r\nUpgrade: echo\r\n")):
        raw = get("/same%d" % i, extra=extra)
        n = len(b.requests)
        c = client(r.port)
        c.sock.sendall(raw)
        resp = read_response(c)
        check(resp.status in (200, 101), "same %d: %d" % (i, resp.status))
        c.sock.close()
        wait_for(lambda: len(b.requests) > n, "the backend to record request %d" % i)
        env.forwarded(b.requests[n][1], raw, "unchanged %r" % extra)
    env.stop_router(r)


def scenario_upgrade(env):
    b = env.backend("a")
    r = env.router(["--route", "a.test=" + b.addr])
    for raw, status in ((get("/upgrade", extra=b"Connection: Upgrade\r\nUpgrade: echo\r\n"), 101),
                        (b"CONNECT a.test:443 HTTP/1.1\r\nHost: a.test\r\n\r\n", 200)):
        c = client(r.port)
        c.sock.sendall(raw)
        resp = read_response(c, "HEAD")
        check(resp.status == status, "%r: status %d" % (raw[:20], resp.status))
        data = os.urandom(1 << 20)
        c.sock.sendall(data)
        got = c.exactly(len(data))
        check(got == data, "%r: tunnel echo differs" % raw[:20])
        c.sock.shutdown(1)
        check(closed_after(c), "%r: tunnel not closed after the client's EOF" % raw[:20])
        c.sock.close()
    check(roundtrip(r.port, get("/after")).status == 200, "router broken after tunnels")
    env.stop_router(r)


def scenario_nginx(env):
    files = {"small.txt": b"hello from nginx\n", "big.bin": os.urandom(4 << 20)}
    ng = env.nginx(files)
    r = env.router(["--route", "files.test=" + ng])
    base = "http://files.test:%d" % r.port
    res = ["--resolve", "files.test:%d:127.0.0.1" % r.port]
    a, b = os.path.join(env.dir, "a.out"), os.path.join(env.dir, "b.out")
    out, _ = curl(*res, "-o", a, "-o", b, "--write-out", "%{http_code} %{num_connects}\n",
                  base + "/small.txt", base + "/big.bin")
    check(out.decode().split("\n")[:2] == ["200 1", "200 0"], "nginx via router: %r" % out)
    for path, name in ((a, "small.txt"), (b, "big.bin")):
        with open(path, "rb") as f:
            check(f.read() == files[name], "%s differs through the router" % name)
    c = http.client.HTTPConnection("127.0.0.1", r.port, timeout=DEADLINE)
    c.request("GET", "/small.txt", headers={"Host": "files.test"})
    resp = c.getresponse()
    check(resp.read() == files["small.txt"], "http.client small.txt")
    lm = resp.getheader("Last-Modified")
    c.request("GET", "/small.txt", headers={"Host": "files.test", "If-Modified-Since": lm})
    resp = c.getresponse()
    check(resp.status == 304 and resp.read() == b"", "304: %d" % resp.status)
    c.request("GET", "/missing", headers={"Host": "files.test"})
    resp = c.getresponse()
    resp.read()
    check(resp.status == 404, "nginx 404 not relayed: %d" % resp.status)
    c.request("GET", "/big.bin", headers={"Host": "files.test"})
    check(c.getresponse().read() == files["big.bin"], "http.client big.bin after 304/404")
    c.close()
    env.stop_router(r)


TOOLS = {"curl": ["curl"], "nginx": ["nginx", "curl"]}

if __name__ == "__main__":
    run_scenario(__doc__, globals(), TOOLS)
