"""backend.py - a recording HTTP/1.1 backend for the http_router e2e tests.

Backend() listens on 127.0.0.1 (ephemeral port), serves each connection on
its own thread, and records every byte it receives: per connection (raw,
everything) and per request (head plus the body exactly as framed on the
wire, chunk sizes included). The answer is chosen by the request path:

  /cl/N          200, Content-Length N (pattern bytes, see pattern())
  /chunked/N     200, chunked, N bytes in chunks of up to 1000
  /close/N       200, no length: N bytes then close
  /204 /304      no body (with a Content-Length header on 304, as allowed)
  /echo          200, the request's decoded body back (Content-Length)
  /upgrade       101 Switching Protocols, then echoes every byte back
  /connect       (CONNECT method, any target) 200, then echoes
  /hang          reads the request, never answers (the router's 504)
  /slow/N        waits N ms, then 200 "ok /slow/N" (Content-Length)
  /reset/N       head with Content-Length N, N/2 bytes, then a reset (RST)
  /big/N         like /cl/N, written in 1 MiB blocks (large responses)
  /drop          200 "ok /drop" (Content-Length, no Connection: close), then
                 the backend closes the connection: a pooled one gone stale
  /sink/MS       reads a Content-Length body without keeping it, after a
                 pause of MS ms (a slow upstream), then 200 "ok N" (N bytes)
  /arm           200 "ok /arm"; the next request on this connection is read
                 and the connection closed unanswered (the keep-alive race:
                 the server closed as the request arrived)
  anything else  200 "ok <path>" with Content-Length

A request with "Expect: 100-continue" gets "HTTP/1.1 100 Continue" before
its body is read. Requests are answered in order on each connection; a
request with "Connection: close" ends the connection after its answer.
"""
import socket
import threading
import time

BLOCK = bytes(range(256)) * 4096  # 1 MiB


def pattern(n):
    """The n-byte response body of /cl/N, /chunked/N, /close/N and /big/N."""
    out = BLOCK * (n // len(BLOCK))
    return out + BLOCK[:n - len(out)]


class BadRequest(Exception):
    pass


class Conn:
    """One accepted connection: a buffered reader that records all bytes."""

    def __init__(self, sock, record):
        self.sock = sock
        self.buf = b""
        self.record = record  # list of received chunks

    def fill(self):
        if self.sock is None:  # parsing bytes already in buf
            raise EOFError
        b = self.sock.recv(65536)
        if not b:
            raise EOFError
        if self.record is not None:
            self.record.append(b)
        self.buf += b

    def until(self, sep, limit=1 << 20):
        while sep not in self.buf:
            if len(self.buf) > limit:
                raise BadRequest("no %r within %d bytes" % (sep, limit))
            self.fill()
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def exactly(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def parse_head(head):
    lines = head[:-4].split(b"\r\n")
    method, target, _ = lines[0].split(b" ", 2)
    headers = []
    for line in lines[1:]:
        name, value = line.split(b":", 1)
        headers.append((name.strip().lower().decode(), value.strip().decode()))
    return method.decode(), target.decode(), headers


def header(headers, name):
    vals = [v for n, v in headers if n == name]
    return ", ".join(vals) if vals else None


def read_body(conn, headers):
    """(raw bytes as framed, decoded body) of the request body."""
    te = header(headers, "transfer-encoding")
    if te and te.lower().split(",")[-1].strip() == "chunked":
        raw, body = b"", b""
        while True:
            line = conn.until(b"\r\n")
            raw += line
            n = int(line.split(b";")[0].strip(), 16)
            if n == 0:
                while True:  # trailers up to the empty line
                    t = conn.until(b"\r\n")
                    raw += t
                    if t == b"\r\n":
                        return raw, body
            data = conn.exactly(n + 2)
            raw += data
            body += data[:n]
    n = int(header(headers, "content-length") or 0)
    data = conn.exactly(n)
    return data, data


class Backend:
    def __init__(self, name="backend"):
        self.name = name
        self.lock = threading.Lock()
        self.requests = []  # (conn index, raw request bytes, method, target, headers, body)
        self.conns = []  # per connection: list of received chunks
        self.socks = []
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(1024)
        self.port = self.ls.getsockname()[1]
        self.addr = "127.0.0.1:%d" % self.port
        self.closed = False
        self.ended = 0  # connections this backend has closed (or seen closed)
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def close(self):
        self.closed = True
        try:
            self.ls.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.ls.close()
        with self.lock:
            socks = list(self.socks)
        for s in socks:
            try:
                s.close()
            except OSError:
                pass

    def received(self):
        """Every byte received so far, over all connections."""
        with self.lock:
            return b"".join(b"".join(c) for c in self.conns)

    def accept_loop(self):
        while not self.closed:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # head and body: 2 writes
            with self.lock:
                record = []
                self.conns.append(record)
                self.socks.append(s)
                idx = len(self.conns) - 1
            threading.Thread(target=self.serve, args=(s, idx, record), daemon=True).start()

    def serve(self, s, idx, record):
        conn = Conn(s, record)
        try:
            while self.one(conn, idx):
                pass
        except (EOFError, BadRequest, ConnectionError, OSError, ValueError):
            pass
        finally:
            try:
                s.close()
            except OSError:
                pass
            with self.lock:
                self.ended += 1

    def sink(self, conn, head, headers, pause_ms):
        """/sink/MS: the body read and dropped (not recorded), slowly at first."""
        time.sleep(pause_ms / 1000.0)
        left = int(header(headers, "content-length") or 0)
        record, conn.record = conn.record, None
        while left > 0:
            if not conn.buf:
                conn.fill()
            k = min(left, len(conn.buf))
            conn.buf = conn.buf[k:]
            left -= k
        conn.record = record
        n = int(header(headers, "content-length") or 0)
        with self.lock:
            self.requests.append((None, head, "POST", "/sink", headers, b""))
        reply = b"ok %d" % n
        conn.sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(reply),
                                                                                  reply))
        return True

    def one(self, conn, idx):
        head = conn.until(b"\r\n\r\n")
        if getattr(conn, "armed", False):
            return False
        method, target, headers = parse_head(head)
        s = conn.sock
        if (header(headers, "expect") or "").lower() == "100-continue":
            s.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        if target.startswith("/sink/"):
            return self.sink(conn, head, headers, int(target.split("/")[2]))
        raw, body = read_body(conn, headers)
        with self.lock:
            self.requests.append((idx, head + raw, method, target, headers, body))
        close = "close" in (header(headers, "connection") or "").lower()
        path = target.split("?")[0]
        parts = path.strip("/").split("/")
        n = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        hdr = b"HTTP/1.1 %d %s\r\nServer: recording-backend\r\nX-Backend: " + \
            self.name.encode() + b"\r\n"
        if close:
            hdr += b"Connection: close\r\n"
        if method == "CONNECT" or parts[0] == "upgrade":
            if method == "CONNECT":
                s.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                s.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                          b"Upgrade: echo\r\n\r\n")
            if conn.buf:
                s.sendall(conn.buf)
                conn.buf = b""
            while True:
                b = s.recv(65536)
                if not b:
                    return False
                conn.record.append(b)
                s.sendall(b)
        if parts[0] == "slow":
            time.sleep(n / 1000.0)
        if parts[0] == "hang":
            while s.recv(65536):
                pass
            return False
        if parts[0] in ("cl", "big"):
            s.sendall(hdr % (200, b"OK") + b"Content-Length: %d\r\n\r\n" % n)
            if method != "HEAD":
                sent = 0
                while sent < n:
                    k = min(len(BLOCK), n - sent)
                    s.sendall(BLOCK[:k])
                    sent += k
        elif parts[0] == "chunked":
            out = [hdr % (200, b"OK") + b"Transfer-Encoding: chunked\r\n\r\n"]
            data = pattern(n)
            for i in range(0, n, 1000):
                c = data[i:i + 1000]
                out.append(b"%x\r\n%s\r\n" % (len(c), c))
            out.append(b"0\r\n\r\n")
            s.sendall(b"".join(out) if method != "HEAD" else out[0])
        elif parts[0] == "close":
            h = hdr if close else hdr + b"Connection: close\r\n"
            s.sendall(h % (200, b"OK") + b"\r\n" + (pattern(n) if method != "HEAD" else b""))
            return False
        elif parts[0] == "204":
            s.sendall(hdr % (204, b"No Content") + b"\r\n")
        elif parts[0] == "304":
            s.sendall(hdr % (304, b"Not Modified") + b"Content-Length: 7\r\n\r\n")
        elif parts[0] == "reset":
            s.sendall(hdr % (200, b"OK") + b"Content-Length: %d\r\n\r\n" % n + pattern(n // 2))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()
            return False
        else:
            reply = body if parts[0] == "echo" else ("ok %s" % path).encode()
            s.sendall(hdr % (200, b"OK") + b"Content-Length: %d\r\n\r\n" % len(reply) +
                      (reply if method != "HEAD" else b""))
            if parts[0] == "drop":
                return False
            conn.armed = parts[0] == "arm"
        return not close
