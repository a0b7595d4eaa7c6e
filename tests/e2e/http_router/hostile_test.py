#!/usr/bin/env python3
"""hostile_test.py - http_router's refusals, timeouts and resets (ctest).

    hostile_test.py ROUTER_CMD SCENARIO

Scenarios: smuggling (request-smuggling and malformed heads: 400 and close,
and the backend receives nothing of the request), chunks (bad chunk sizes:
400 and close, the bad bytes never reach the backend), limits (414 and 431
past --max-head, and a 400 whose request body is still arriving: in each
the client has sent bytes the router will not read, and must still be able
to read the refusal, i.e. the router must not reset the connection under
it), timeouts (408 for a head that never ends, 502 when the
upstream refuses, 504 when it never answers, --idle-timeout closes an idle
client), resets (a client resetting mid request body and mid response body,
an upstream resetting mid response body: the router survives and other
connections are served). After each refusal the router still serves a
normal request.
"""
import socket
import struct
import threading

from backend import pattern
from harness import (DEADLINE, check, client, closed_after, connect, free_port, get,
                     read_response, roundtrip, run_scenario, wait_for)

H = b"POST /echo HTTP/1.1\r\nHost: a.test\r\n"
SMUGGLING = [
    ("cl_and_te", H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("te_and_cl", H + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"),
    ("two_cls", H + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
    ("cl_list", H + b"Content-Length: 5, 6\r\n\r\nhello!"),
    ("cl_negative", H + b"Content-Length: -1\r\n\r\n"),
    ("cl_not_a_number", H + b"Content-Length: 1x\r\n\r\n"),
    ("te_gzip_last", H + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"),
    ("te_gzip_only", H + b"Transfer-Encoding: gzip\r\n\r\nhello"),
    ("obs_fold", H + b"X-A: 1\r\n  folded\r\nContent-Length: 0\r\n\r\n"),
    ("space_before_colon", H + b"Content-Length : 5\r\n\r\nhello"),
    ("tab_before_colon", H + b"X-A\t: 1\r\nContent-Length: 0\r\n\r\n"),
    ("bare_cr", H + b"X-A: a\rb\r\nContent-Length: 0\r\n\r\n"),
    ("bare_lf_in_value", H + b"X-A: a\nContent-Length: 5\r\n\r\nhello"),
    ("nul_in_value", H + b"X-A: a\x00b\r\nContent-Length: 0\r\n\r\n"),
]
# (name, body, bytes that must not reach the backend)
CHUNKS = [
    ("not_hex", b"zz\r\nhello\r\n0\r\n\r\n", b"zz"),
    ("negative", b"-5\r\nhello\r\n0\r\n\r\n", b"-5"),
    ("overflow", b"10000000000000005\r\nhello\r\n0\r\n\r\n", b"10000000000000005"),
    ("empty_size", b"\r\nhello\r\n0\r\n\r\n", b"hello"),
    ("no_crlf_after_data", b"5\r\nhelloXX0\r\n\r\n", b"XX"),
]


def refused(port, raw, status, what):
    """raw on a fresh connection gets `status` and then the connection closes."""
    c = client(port)
    try:
        c.sock.sendall(raw)
    except (BrokenPipeError, ConnectionResetError):
        pass
    try:
        resp = read_response(c)
    except (EOFError, ConnectionResetError):
        check(False, "%s: closed without a %d response" % (what, status))
    check(resp.status == status, "%s: status %d, expected %d" % (what, resp.status, status))
    check(closed_after(c), "%s: connection not closed after the %d" % (what, status))
    c.sock.close()


def still_serves(port, b, what):
    n = len(b.requests)
    check(roundtrip(port, get("/ok")).status == 200, "router broken after " + what)
    check(len(b.requests) == n + 1, "after %s: the normal request did not arrive" % what)


def scenario_smuggling(env):
    b = env.backend("a")
    r = env.router(["--route", "a.test=" + b.addr])
    for name, raw in SMUGGLING:
        before = len(b.received())
        refused(r.port, raw, 400, name)
        got = b.received()[before:]
        check(got == b"", "%s: the backend received %r" % (name, got[:200]))
        still_serves(r.port, b, name)
    # After a good request on the same connection: answered, then the 400.
    c = client(r.port)
    c.sock.sendall(get("/first") + SMUGGLING[0][1])
    check(read_response(c).body == b"ok /first", "good request before a bad one")
    check(read_response(c).status == 400, "bad request after a good one: no 400")
    check(closed_after(c), "not closed after the 400")
    env.stop_router(r)


def scenario_chunks(env):
    b = env.backend("a")
    r = env.router(["--route", "a.test=" + b.addr])
    head = H + b"Transfer-Encoding: chunked\r\n\r\n"
    for name, body, bad in CHUNKS:
        n, before = len(b.requests), len(b.received())
        refused(r.port, head + body, 400, "chunk " + name)
        got = b.received()[before:]
        check(bad not in got, "chunk %s: %r reached the backend: %r" % (name, bad, got[:200]))
        check(len(b.requests) == n, "chunk %s: the backend got a whole request" % name)
        still_serves(r.port, b, "chunk " + name)
    env.stop_router(r)


def scenario_limits(env):
    b = env.backend("a")
    r = env.router(["--route", "a.test=" + b.addr, "--max-head", "4096"])
    long_uri = b"GET /" + b"u" * 5000 + b" HTTP/1.1\r\nHost: a.test\r\n\r\n"
    many = get("/h", extra=b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 90) for i in range(60)))
    fits = get("/fits", extra=b"X-Pad: " + b"p" * 3000 + b"\r\n")
    spaced = H + b"Content-Length : 262144\r\n\r\n" + b"z" * 262144
    for name, raw, status in (("long uri", long_uri, 414), ("long head", many, 431),
                              ("bad head, body following", spaced, 400)):
        before = len(b.received())
        refused(r.port, raw, status, name)
        check(b.received()[before:] == b"", "%s: the backend received bytes" % name)
        still_serves(r.port, b, name)
    resp = roundtrip(r.port, fits)
    check(resp.status == 200, "a 3 KiB head under --max-head 4096: %d" % resp.status)
    env.forwarded(b.requests[-1][1], fits, "3 KiB head")
    env.stop_router(r)


def scenario_timeouts(env):
    b = env.backend("a")
    dead = "127.0.0.1:%d" % free_port()  # nothing listens there
    r = env.router(["--route", "a.test=" + b.addr, "--route", "dead.test=" + dead,
                    "--head-timeout", "1", "--upstream-timeout", "1", "--idle-timeout", "2"])
    # A head that never ends: 408, then close; nothing forwarded.
    before = len(b.received())
    refused(r.port, b"GET / HTTP/1.1\r\nHost: a.te", 408, "unfinished head")
    check(b.received()[before:] == b"", "408: the backend received bytes")
    refused(r.port, b"", 408, "silent client")
    still_serves(r.port, b, "408")
    # Upstream refuses the connection: 502.
    resp = roundtrip(r.port, get("/x", "dead.test"))
    check(resp.status == 502, "refused upstream: %d, expected 502" % resp.status)
    # Upstream never answers: 504.
    resp = roundtrip(r.port, get("/hang"))
    check(resp.status == 504, "silent upstream: %d, expected 504" % resp.status)
    still_serves(r.port, b, "504")
    # An idle keep-alive client is closed after --idle-timeout.
    c = client(r.port)
    c.sock.sendall(get("/idle"))
    check(read_response(c).status == 200, "idle: first request")
    check(closed_after(c), "idle keep-alive connection not closed by --idle-timeout")
    env.stop_router(r)


def rst_close(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def scenario_resets(env):
    b = env.backend("a")
    r = env.router(["--route", "a.test=" + b.addr])
    # A bystander connection open across every reset below.
    side = client(r.port)
    side.sock.sendall(get("/side1"))
    check(read_response(side).body == b"ok /side1", "bystander before")
    # Client resets mid request body (256 KiB of 1 MiB sent).
    c = connect(r.port)
    c.sendall(H + b"Content-Length: 1048576\r\n\r\n" + b"q" * 262144)
    wait_for(lambda: len(b.received()) > 262144 // 2, "part of the body at the backend")
    rst_close(c)
    still_serves(r.port, b, "client reset mid request body")
    # Client resets mid response body (64 MiB response, 1 MiB read).
    c = client(r.port)
    c.sock.sendall(get("/big/67108864"))
    c.until(b"\r\n\r\n")
    c.exactly(1 << 20)
    rst_close(c.sock)
    still_serves(r.port, b, "client reset mid response body")
    # Upstream resets mid response body: the client gets part, then an end.
    c = client(r.port)
    c.sock.sendall(get("/reset/200000"))
    got = b""
    try:
        resp_head = c.until(b"\r\n\r\n")
        check(b" 200 " in resp_head.split(b"\r\n")[0] or b" 502 " in resp_head,
              "upstream reset: head %r" % resp_head[:80])
        got = c.buf
        c.buf = b""
        while True:
            d = c.sock.recv(65536)
            if not d:
                break
            got += d
    except (EOFError, ConnectionResetError):
        pass
    check(len(got) < 200000, "upstream reset: client got %d bytes of a truncated body" % len(got))
    check(got == pattern(len(got)), "upstream reset: the partial body is wrong")
    c.sock.close()
    still_serves(r.port, b, "upstream reset mid response body")
    # Many at once while the bystander keeps working.
    threads = [threading.Thread(target=lambda: rst_after_part(r.port)) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
    side.sock.sendall(get("/side2"))
    check(read_response(side).body == b"ok /side2", "bystander after the resets")
    side.sock.close()
    env.stop_router(r)


def rst_after_part(port):
    c = client(port)
    c.sock.sendall(get("/big/8388608"))
    c.until(b"\r\n\r\n")
    rst_close(c.sock)


TOOLS = {}

if __name__ == "__main__":
    run_scenario(__doc__, globals(), TOOLS)
