"""harness.py - processes, backends and raw clients of the http_router e2e tests.

Env starts the router (ROUTER_CMD, or HTTP_ROUTER_CMD from the environment
when set; HTTP_ROUTER_WRAPPER, e.g. a valgrind command, goes in front),
recording backends (backend.py), and an nginx serving files; it stops them
all on close(). The router must print "listening PORT" once it accepts and
exit 0 on SIGTERM. Waits are for events, each bounded by a generous deadline
(HTTP_TEST_DEADLINE, default 60 s) that only turns a hang into a failure.

Stand-in mode (the router command names haproxy_standin.py, or
HTTP_ROUTER_STANDIN=1): HAProxy normalises what it forwards, so forwarded()
compares parsed request fields instead of bytes there.
"""
import ctypes
import os
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from backend import Backend, parse_head, read_body, Conn

DEADLINE = float(os.environ.get("HTTP_TEST_DEADLINE", "60"))
ADDED = b"X-Forwarded-For: 127.0.0.1\r\nVia: 1.1 http_router\r\n"


def fail(msg):
    raise SystemExit("FAIL: " + msg)


def check(cond, msg):
    if not cond:
        fail(msg)


def wait_for(pred, what, deadline=DEADLINE):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.01)
    fail("timed out waiting for " + what)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def die_with_parent():
    """In a child: SIGKILL when its parent dies (prctl PR_SET_PDEATHSIG), so a
    test killed by ctest's timeout leaves no router, HAProxy or nginx behind."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Proc:
    """A child with stdout/stderr in files (never blocks on a full pipe)."""
    count = 0

    def __init__(self, argv, logdir, cwd=None):
        Proc.count += 1
        base = os.path.join(logdir, "proc%d-%s" % (Proc.count, os.path.basename(argv[0])))
        self.out_path, self.err_path = base + ".out", base + ".err"
        with open(self.out_path, "wb") as o, open(self.err_path, "wb") as e:
            self.p = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=o,
                                      stderr=e, start_new_session=True,
                                      preexec_fn=die_with_parent)
        self.pid = self.p.pid
        self.out = self.err = b""

    def pump(self):
        with open(self.out_path, "rb") as f:
            self.out = f.read()
        with open(self.err_path, "rb") as f:
            self.err = f.read()

    def wait_out(self, regex, what):
        r = re.compile(regex)

        def found():
            self.pump()
            if self.p.poll() is not None:
                fail("%s: process exited %d: %s" % (what, self.p.returncode,
                                                    self.err.decode(errors="replace")[-2000:]))
            return r.search(self.out.decode(errors="replace"))
        return wait_for(found, what)

    def stop(self):
        """Ends the process and everything it started (its own session):
        SIGTERM, then SIGKILL after 10 s."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.p.wait(timeout=10)
                break
            except subprocess.TimeoutExpired:
                pass
        self.p.wait()
        self.pump()


class Env:
    def __init__(self, router_cmd):
        cmd = os.environ.get("HTTP_ROUTER_CMD") or router_cmd
        self.router_cmd = shlex.split(cmd)
        self.standin = (os.environ.get("HTTP_ROUTER_STANDIN") == "1" or
                        "haproxy_standin" in cmd)
        self.dir = tempfile.mkdtemp(prefix="http_router_test.")
        os.chmod(self.dir, 0o755)  # nginx workers may run as another user (root runs it)
        self.procs = []
        self.backends = []
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 4096 and (hard >= 4096 or hard == resource.RLIM_INFINITY):
            resource.setrlimit(resource.RLIMIT_NOFILE, (4096, hard))

    def close(self):
        for b in self.backends:
            b.close()
        for p in self.procs:
            p.stop()
        if os.environ.get("HTTP_TEST_KEEP"):
            print("kept", self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def backend(self, name="backend"):
        b = Backend(name)
        self.backends.append(b)
        return b

    def router(self, args):
        """Starts the router with args after --listen 127.0.0.1:0; returns the
        Proc with .port and .rss_pid (the process whose memory is measured)."""
        wrapper = shlex.split(os.environ.get("HTTP_ROUTER_WRAPPER", ""))
        p = Proc(wrapper + self.router_cmd + ["--listen", "127.0.0.1:0"] + args, self.dir)
        self.procs.append(p)
        m = p.wait_out(r"listening (\d+)\n", "router to listen")
        p.port = int(m.group(1))
        pm = re.search(r"^pid (\d+)$", p.out.decode(), re.M)
        p.rss_pid = int(pm.group(1)) if pm else p.pid
        return p

    def stop_router(self, r):
        """SIGTERM: the router must exit 0 (and be alive until then)."""
        check(r.p.poll() is None, "router died before SIGTERM (exit %s): %s" % (
            r.p.returncode, (r.pump(), r.err.decode(errors="replace")[-2000:])[1]))
        r.p.send_signal(signal.SIGTERM)
        try:
            r.p.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            fail("router did not exit after SIGTERM")
        r.pump()
        check(r.p.returncode == 0, "router exited %d after SIGTERM:\n%s" % (
            r.p.returncode, r.err.decode(errors="replace")[-3000:]))
        self.procs.remove(r)

    def nginx(self, files):
        """nginx serving files ({name: bytes}) from a temp root; returns its
        "127.0.0.1:PORT" (a free port picked here: nginx cannot take port 0)."""
        d = os.path.join(self.dir, "nginx")
        root = os.path.join(d, "www")
        os.makedirs(root, exist_ok=True)
        os.makedirs(os.path.join(d, "logs"), exist_ok=True)
        for name, data in files.items():
            with open(os.path.join(root, name), "wb") as f:
                f.write(data)
        port = free_port()
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""master_process off;
pid %s/nginx.pid;
error_log %s/logs/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %s/tmp;
    keepalive_requests 100000;
    server {
        listen 127.0.0.1:%d;
        root %s;
    }
}
""" % (d, d, d, port, root))
        p = Proc(["nginx", "-g", "daemon off;", "-p", d, "-c", conf, "-e",
                  os.path.join(d, "logs", "error.log")], self.dir)
        self.procs.append(p)

        def up():
            if p.p.poll() is not None:
                p.pump()
                fail("nginx exited %d: %s" % (p.p.returncode, p.err.decode()))
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return False
        wait_for(up, "nginx to listen")
        return "127.0.0.1:%d" % port

    def forwarded(self, got, sent, what, drop=b""):
        """got (what a backend received) must be sent (what the client wrote)
        with the router's two lines inserted before the head's final CRLF
        and the field line drop (CRLF included; the client's lone
        "Connection: close") left out."""
        head, sep, body = sent.partition(b"\r\n\r\n")
        if drop:
            lines = (head + b"\r\n").split(b"\r\n")
            check(lines.count(drop[:-2]) == 1, "%s: %r not once in %r" % (what, drop, sent))
            head = b"\r\n".join(l for l in lines if l != drop[:-2])[:-2]
        want = head + b"\r\n" + ADDED + b"\r\n" + body
        if not self.standin:
            check(got == want, "%s: backend received\n%r\nexpected\n%r" % (what, got[:3000],
                                                                          want[:3000]))
            return
        g, w = parse_request(got), parse_request(want)
        g_h = [h for h in g[2] if h[0] not in ("connection",)]
        w_h = [h for h in w[2] if h[0] not in ("connection",)]
        check(g[:2] == w[:2] and g_h == w_h and g[3] == w[3],
              "%s (stand-in, parsed): backend received %r\nexpected %r" % (what, g, w))


def parse_request(raw):
    """(method, target, [(lower name, value)], decoded body) of one request."""
    c = Conn(None, [])
    c.buf = raw
    head = c.until(b"\r\n\r\n")
    method, target, headers = parse_head(head)
    return method, target, headers, read_body(c, headers)[1]


# ---- raw clients -----------------------------------------------------------------

def connect(port, timeout=DEADLINE):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


class Response:
    def __init__(self, status, head, headers, body):
        self.status, self.head, self.headers, self.body = status, head, headers, body

    def header(self, name):
        return next((v for n, v in self.headers if n == name), None)


def read_response(conn, method="GET"):
    """One response from conn (a backend.Conn over a client socket), body
    decoded; 1xx interim responses are skipped. Raises EOFError at EOF."""
    while True:
        head = conn.until(b"\r\n\r\n")
        lines = head[:-4].split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        headers = []
        for line in lines[1:]:
            n, v = line.split(b":", 1)
            headers.append((n.strip().lower().decode(), v.strip().decode()))
        if 100 <= status < 200 and status != 101:
            continue
        break
    r = Response(status, head, headers, b"")
    if method == "HEAD" or status in (101, 204, 304) or 100 <= status < 200:
        return r
    if (r.header("transfer-encoding") or "").lower().endswith("chunked"):
        r.body = read_body(conn, [("transfer-encoding", "chunked")])[1]
    elif r.header("content-length") is not None:
        r.body = conn.exactly(int(r.header("content-length")))
    else:
        out = [conn.buf]
        conn.buf = b""
        while True:
            b = conn.sock.recv(65536)
            if not b:
                break
            out.append(b)
        r.body = b"".join(out)
    return r


def client(port):
    """A raw client: backend.Conn over a fresh connection to the router."""
    return Conn(connect(port), [])


def roundtrip(port, raw, method="GET"):
    c = client(port)
    c.sock.sendall(raw)
    r = read_response(c, method)
    c.sock.close()
    return r


def closed_after(conn):
    """True when the peer closes conn (EOF or reset) with nothing more sent."""
    try:
        while True:
            b = conn.sock.recv(65536)
            if not b:
                return conn.buf == b""
            conn.buf += b
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def get(path, host="a.test", extra=b"", method=b"GET"):
    return b"%s %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (method, path.encode(), host.encode(), extra)


def run_scenario(doc, scenarios, tools):
    """Command line ROUTER_CMD SCENARIO: skips (77) when a tool the scenario
    needs (tools: {scenario: [program...]}) is missing, runs
    scenarios["scenario_" + SCENARIO](env), prints PASS."""
    if len(sys.argv) != 3 or "scenario_" + sys.argv[2] not in scenarios:
        sys.exit(doc)
    for tool in tools.get(sys.argv[2], ()):
        if not shutil.which(tool):
            print("SKIP: %s not installed" % tool)
            sys.exit(77)
    env = Env(sys.argv[1])
    try:
        scenarios["scenario_" + sys.argv[2]](env)
    finally:
        env.close()
    print("PASS", sys.argv[2])
