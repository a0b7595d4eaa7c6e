#!/usr/bin/env python3
"""router_test.py - http_router over loopback with a tiny in-test backend.

Usage: router_test.py PATH_TO_HTTP_ROUTER

The backend (raw sockets, one thread per connection) answers by path:
  /echo       200, body "host=<Host> xff=<X-Forwarded-For> via=<Via> conn=<n>
              req=<k> len=<body bytes>" (n: the backend connection's number,
              k: the request's number on it)
  /head       200 with Content-Length 5 and, except to HEAD, the body
  /once       answers the first request of a connection; closes the
              connection without answering the second (a pooled upstream
              that went away)
  /silent     never answers (504)
  /continue   sends "100 Continue" before reading the body, then echoes
  /upgrade    101, then echoes raw bytes (CONNECT: 200, then the same)
Each scenario starts its own router. Exit 0 when every scenario passed.
"""
import socket
import subprocess
import sys
import threading
import time

ROUTER = sys.argv[1]
TIMEOUT = 20


class Backend:
    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = 0
        self.bytes_seen = b""
        self.lock = threading.Lock()
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns += 1
                n = self.conns
            threading.Thread(target=self.serve, args=(s, n), daemon=True).start()

    def serve(self, s, n):
        f = s.makefile("rb")
        k = 0
        try:
            while True:
                line = f.readline()
                if not line:
                    return
                k += 1
                method, path, _ = line.decode().split(" ", 2)
                hdrs = {}
                while True:
                    h = f.readline()
                    if h in (b"\r\n", b""):
                        break
                    name, value = h.decode().split(":", 1)
                    hdrs.setdefault(name.strip().lower(), value.strip())
                with self.lock:
                    self.bytes_seen += line
                if path == "/silent":
                    time.sleep(30)
                    return
                if path == "/once" and k == 2:
                    s.close()
                    return
                if path == "/continue":
                    s.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                body = read_body(f, hdrs)
                if method == "CONNECT":
                    s.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    path = "/upgrade-echo"
                if path.startswith("/upgrade"):
                    if path == "/upgrade":
                        s.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\n"
                                  b"Connection: Upgrade\r\n\r\n")
                    while True:
                        d = s.recv(65536)
                        if not d:
                            return
                        s.sendall(d)
                if path == "/head":
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" +
                              (b"" if method == "HEAD" else b"abcde"))
                    continue
                text = ("host=%s xff=%s via=%s conn=%d req=%d len=%d" % (
                    hdrs.get("host"), hdrs.get("x-forwarded-for"), hdrs.get("via"), n, k,
                    len(body))).encode()
                s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(text), text))
        except (OSError, ValueError):
            return
        finally:
            s.close()


def read_body(f, hdrs):
    if hdrs.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int(f.readline().split(b";")[0], 16)
            if size == 0:
                while f.readline() not in (b"\r\n", b""):
                    pass
                return body
            body += f.read(size)
            f.read(2)
    return f.read(int(hdrs.get("content-length", "0")))


ROUTERS = []


class Router:
    def __init__(self, *args):
        self.p = subprocess.Popen([ROUTER, "--listen", "127.0.0.1:0", "--quiet"] + list(args),
                                  stdout=subprocess.PIPE)
        ROUTERS.append(self.p)
        line = self.p.stdout.readline().decode()
        assert line.startswith("listening "), line
        self.port = int(line.split()[1])

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT)
        return s

    def stop(self):
        self.p.terminate()
        assert self.p.wait(TIMEOUT) == 0, "router exit status"


def read_response(s, buf=b"", head_only=False):
    """Reads one response from s; returns (status, headers, body, rest)."""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise EOFError("connection closed before a head: %r" % buf)
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for h in lines[1:]:
        name, value = h.split(":", 1)
        hdrs[name.strip().lower()] = value.strip()
    n = 0 if head_only else int(hdrs.get("content-length", "0"))
    while len(rest) < n:
        d = s.recv(65536)
        if not d:
            raise EOFError("short body")
        rest += d
    return status, hdrs, rest[:n], rest[n:]


def closed(s):
    """The router closed s (EOF, or a reset after it)."""
    try:
        while True:
            if not s.recv(65536):
                return True
    except ConnectionResetError:
        return True


def get(path, host="app", extra=""):
    return ("GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (path, host, extra)).encode()


def keep_alive_and_pool(be):
    r = Router("--route", "app=127.0.0.1:%d" % be.port)
    for _ in range(2):  # two client connections share one upstream connection
        s = r.connect()
        for _ in range(3):
            s.sendall(get("/echo", "APP:8080"))
            st, _, body, rest = read_response(s)
            assert st == 200 and rest == b"", (st, body)
            assert b"host=APP:8080 xff=127.0.0.1 via=1.1 http_router conn=1" in body, body
        s.close()
    r.stop()


def pipelining(be):
    r = Router("--route", "app=127.0.0.1:%d" % be.port)
    s = r.connect()
    s.sendall(get("/echo") + b"\r\n" + get("/head") + get("/echo", extra="Connection: close\r\n"))
    out = []
    rest = b""
    for _ in range(3):
        st, _, body, rest = read_response(s, rest)
        out.append(body)
    assert out[0].endswith(b"req=1 len=0") and out[1] == b"abcde", out
    assert out[2].endswith(b"req=3 len=0"), out
    assert closed(s)
    r.stop()


def chunked_upload_and_continue(be):
    r = Router("--route", "app=127.0.0.1:%d" % be.port, "--write-budget", "8192")
    s = r.connect()
    data = b"x" * 200000
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n")
    s.sendall(b"10000;ext=1\r\n" + data[:65536] + b"\r\n")
    s.sendall(b"%x\r\n" % (len(data) - 65536) + data[65536:] + b"\r\n0\r\nTrailer: t\r\n\r\n")
    st, _, body, _ = read_response(s)
    assert st == 200 and body.endswith(b"len=200000"), body
    s.sendall(b"PUT /continue HTTP/1.1\r\nHost: app\r\nContent-Length: 4\r\n"
              b"Expect: 100-continue\r\n\r\n")
    st, _, _, rest = read_response(s)
    assert st == 100, st
    s.sendall(b"abcd")
    st, _, body, _ = read_response(s, rest)
    assert st == 200 and body.endswith(b"len=4"), body
    s.sendall(b"HEAD /head HTTP/1.1\r\nHost: app\r\n\r\n")
    st, hdrs, _, rest = read_response(s, head_only=True)
    assert st == 200 and hdrs["content-length"] == "5" and rest == b""
    s.sendall(get("/head"))
    assert read_response(s)[2] == b"abcde"
    r.stop()


def refusals(be):
    r = Router("--route", "app=127.0.0.1:%d" % be.port, "--max-head", "1024")
    before = be.bytes_seen
    cases = [
        (b"POST /echo HTTP/1.1\r\nHost: app\r\nContent-Length: 3\r\n"
         b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        (b"GET /echo HTTP/1.1\r\nHost: app\r\nX: a\r\n b\r\n\r\n", 400),
        (b"GET /echo HTTP/1.1\r\n\r\n", 400),
        (b"GET /echo HTTP/1.1\nHost: app\n\n", 400),
        (b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: app\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: app\r\nX: " + b"b" * 2000 + b"\r\n\r\n", 431),
    ]
    for req, want in cases:
        s = r.connect()
        s.sendall(req)
        st, hdrs, _, _ = read_response(s)
        assert st == want and hdrs.get("connection") == "close", (req[:40], st)
        assert closed(s)
    assert be.bytes_seen == before, "a refused request reached the backend"
    s = r.connect()  # 404 keeps the connection
    s.sendall(get("/echo", host="nowhere"))
    assert read_response(s)[0] == 404
    s.sendall(get("/echo"))
    assert read_response(s)[0] == 200
    r.stop()


def timeouts_and_failures(be):
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    r = Router("--route", "app=127.0.0.1:%d" % be.port,
               "--route", "dead=127.0.0.1:%d" % dead.getsockname()[1],
               "--head-timeout", "0.5", "--upstream-timeout", "0.5", "--idle-timeout", "1")
    s = r.connect()
    s.sendall(b"GET /echo HTTP/1.1\r\n")
    assert read_response(s)[0] == 408
    s = r.connect()
    s.sendall(get("/echo", host="dead"))
    assert read_response(s)[0] == 502
    s = r.connect()
    s.sendall(get("/silent"))
    assert read_response(s)[0] == 504
    s = r.connect()  # an idle keep-alive client is closed
    s.sendall(get("/echo"))
    assert read_response(s)[0] == 200
    assert closed(s)
    dead.close()
    r.stop()


def long_upload_is_not_a_timeout(be):
    # The upload takes twice --upstream-timeout; its bytes keep it alive
    # (a 1 s stall of this test between two 50 ms pieces would fail it).
    r = Router("--route", "app=127.0.0.1:%d" % be.port, "--upstream-timeout", "1")
    s = r.connect()
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ in range(40):
        s.sendall(b"3\r\nabc\r\n")
        time.sleep(0.05)
    s.sendall(b"0\r\n\r\n")
    st, _, body, _ = read_response(s)
    assert st == 200 and body.endswith(b"len=120"), (st, body)
    r.stop()


def retry_on_a_pooled_upstream_that_went_away(be):
    r = Router("--route", "app=127.0.0.1:%d" % be.port)
    s = r.connect()
    s.sendall(get("/once"))
    st, _, body, _ = read_response(s)
    assert st == 200 and b"req=1" in body, body
    s.sendall(get("/once"))  # the pooled connection closes: retried on a fresh one
    st, _, body, _ = read_response(s)
    assert st == 200 and b"req=1" in body, body
    r.stop()


def upgrade_tunnel(be):
    r = Router("--route", "app=127.0.0.1:%d" % be.port)
    s = r.connect()
    s.sendall(get("/upgrade", extra="Connection: Upgrade\r\nUpgrade: echo\r\n") + b"early")
    st, _, _, rest = read_response(s, head_only=True)
    assert st == 101, st
    while len(rest) < 5:
        rest += s.recv(100)
    assert rest == b"early", rest
    s.sendall(b"ping")
    assert s.recv(100) == b"ping"
    s.close()
    s = r.connect()
    s.sendall(b"CONNECT app:443 HTTP/1.1\r\nHost: app:443\r\n\r\nhello")
    st, _, _, rest = read_response(s, head_only=True)
    assert st == 200, st
    while len(rest) < 5:
        rest += s.recv(100)
    assert rest == b"hello", rest
    s.close()
    r.stop()


def workers(be):
    r = Router("--route", "app=127.0.0.1:%d" % be.port, "--workers", "3")
    for _ in range(12):
        s = r.connect()
        s.sendall(get("/echo"))
        st, _, body, _ = read_response(s)
        assert st == 200 and b"via=1.1 http_router" in body, (st, body)
        s.close()
    r.stop()  # exits 0 on SIGTERM with every worker's loop closed


def http10_and_bodies_in_a_pipeline(be):
    r = Router("--route", "app=127.0.0.1:%d" % be.port)
    s = r.connect()  # HTTP/1.0 without keep-alive: closed after the response
    s.sendall(b"GET /echo HTTP/1.0\r\n\r\n")
    st, _, body, _ = read_response(s)
    assert st == 404, (st, body)  # no Host, no default route
    assert closed(s)
    r.stop()
    r = Router("--default", "127.0.0.1:%d" % be.port)
    s = r.connect()
    s.sendall(b"GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
              b"POST /echo HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nabc"
              b"POST /echo HTTP/1.1\r\nHost: app\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"2\r\nde\r\n0\r\n\r\n" + get("/echo"))
    rest = b""
    lens = []
    for _ in range(4):
        st, _, body, rest = read_response(s, rest)
        assert st == 200, (st, body)
        lens.append(body.rsplit(b"len=", 1)[1])
    assert lens == [b"0", b"3", b"2", b"0"], lens
    r.stop()


def main():
    be = Backend()
    try:
        for t in (keep_alive_and_pool, pipelining, chunked_upload_and_continue, refusals,
                  timeouts_and_failures, long_upload_is_not_a_timeout,
                  retry_on_a_pooled_upstream_that_went_away,
                  upgrade_tunnel, http10_and_bodies_in_a_pipeline, workers):
            t(be)
            print("ok", t.__name__, flush=True)
    finally:
        for p in ROUTERS:  # a failed scenario leaves no router behind
            if p.poll() is None:
                p.kill()
                p.wait()


if __name__ == "__main__":
    main()
