#!/usr/bin/env python3
"""sni_test.py - sni_router against real TLS clients and servers (ctest).

    sni_test.py ROUTER_EXE SCENARIO

Every scenario makes its own CA and backend certificates with the openssl
command in a temporary directory, starts `openssl s_server` backends (each
with its own certificate, subject O=backend-<tag>), starts the router on
ephemeral loopback ports, and drives real clients: `openssl s_client
-servername`, `curl --resolve --cacert`, and Python ssl MemoryBIO clients
that send the ClientHello one byte per write or split across two TLS records.
A connection passes when the expected backend's certificate completed the
handshake (verified against the CA, subject checked) and application bytes
came back byte-exact. Nothing is judged by time: waits are for events, each
bounded by a generous deadline that only turns a hang into a failure.

SNI_ROUTER_WRAPPER (e.g. "valgrind --error-exitcode=97 --leak-check=full")
runs the router under that command; the router must exit 0 on SIGTERM.
"""
import os
import random
import re
import resource
import select
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

DEADLINE = float(os.environ.get("SNI_TEST_DEADLINE", "60"))  # per wait, seconds
ALERT = {"decode_error": 50, "illegal_parameter": 47, "missing_extension": 109,
         "unrecognized_name": 112, "internal_error": 80}


def fail(msg):
    raise SystemExit("FAIL: " + msg)


def wait_for(pred, what, deadline=DEADLINE):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.01)
    fail("timed out waiting for " + what)


class Proc:
    """A child process with stdout and stderr in files (so it never blocks on a
    full pipe); out and err hold what it wrote so far after pump()."""
    count = 0

    def __init__(self, argv, logdir, cwd=None):
        Proc.count += 1
        base = os.path.join(logdir, "proc%d-%s" % (Proc.count, os.path.basename(argv[0])))
        self.out_path, self.err_path = base + ".out", base + ".err"
        with open(self.out_path, "wb") as o, open(self.err_path, "wb") as e:
            self.p = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.PIPE, stdout=o, stderr=e)
        self.out = b""
        self.err = b""

    def pump(self):
        with open(self.out_path, "rb") as f:
            self.out = f.read()
        with open(self.err_path, "rb") as f:
            self.err = f.read()

    def wait_out(self, regex, what):
        r = re.compile(regex)

        def found():
            self.pump()
            return r.search(self.out.decode(errors="replace"))
        return wait_for(found, what)

    def stop(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()
        self.pump()


class Env:
    def __init__(self, router_exe):
        self.router_exe = router_exe
        self.dir = tempfile.mkdtemp(prefix="sni_test.")
        self.procs = []
        self.make_ca()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 4096 <= hard or (soft < 4096 and hard == resource.RLIM_INFINITY):
            resource.setrlimit(resource.RLIMIT_NOFILE, (4096, hard))

    def close(self):
        for p in self.procs:
            p.stop()
        if os.environ.get("SNI_TEST_KEEP"):
            print("kept", self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def openssl(self, *args):
        subprocess.run(["openssl", *args], cwd=self.dir, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

    def make_ca(self):
        self.ca = os.path.join(self.dir, "ca.pem")
        self.openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                     "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
                     "-subj", "/O=sni-test/CN=sni-test CA")

    def make_cert(self, tag, names):
        san = ",".join("DNS:" + n for n in names)
        self.openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                     "-keyout", tag + ".key", "-out", tag + ".csr",
                     "-subj", "/O=backend-%s/CN=%s" % (tag, names[0]))
        with open(os.path.join(self.dir, tag + ".ext"), "w") as f:
            f.write("subjectAltName=%s\n" % san)
        self.openssl("x509", "-req", "-in", tag + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                     "-CAcreateserial", "-days", "2", "-out", tag + ".pem",
                     "-extfile", tag + ".ext")
        return os.path.join(self.dir, tag + ".pem"), os.path.join(self.dir, tag + ".key")

    def backend(self, tag, names, host="127.0.0.1", mode="-rev"):
        """An openssl s_server with its own certificate; returns "HOST:PORT"."""
        cert, key = self.make_cert(tag, names)
        root = os.path.join(self.dir, "www-" + tag)
        os.makedirs(root, exist_ok=True)
        with open(os.path.join(root, "data.bin"), "wb") as f:
            f.write(tag.encode() + b"\n" + os.urandom(200000 + random.randrange(1000)))
        accept = "[%s]:0" % host if ":" in host else host + ":0"
        p = Proc(["openssl", "s_server", "-accept", accept, "-cert", cert, "-key", key,
                  mode], self.dir, cwd=root)
        self.procs.append(p)
        m = p.wait_out(r"ACCEPT (\S+):(\d+)", "s_server %s to listen" % tag)
        addr = "%s:%s" % (m.group(1), m.group(2))
        return addr

    def router(self, args, listen=("127.0.0.1:0",)):
        argv = [self.router_exe]
        for l in listen:
            argv += ["--listen", l]
        wrapper = shlex.split(os.environ.get("SNI_ROUTER_WRAPPER", ""))
        p = Proc(wrapper + argv + args, self.dir)
        self.procs.append(p)
        p.wait_out(r"(listening \d+\n){%d}" % len(listen), "router to listen")
        p.ports = [int(x) for x in re.findall(r"listening (\d+)", p.out.decode())]
        return p

    def stop_router(self, r):
        """SIGTERM: the router drains and must exit 0; returns its output."""
        r.p.send_signal(signal.SIGTERM)
        end = time.monotonic() + DEADLINE
        while r.p.poll() is None and time.monotonic() < end:
            r.pump()
            time.sleep(0.01)
        if r.p.poll() is None:
            fail("router did not exit after SIGTERM")
        r.pump()
        if r.p.returncode != 0:
            fail("router exited %d:\n%s" % (r.p.returncode, r.err.decode(errors="replace")))
        return r.out.decode(), r.err.decode()

    def stats(self, r):
        before = r.out.count(b"stats tunnels")
        r.p.send_signal(signal.SIGUSR1)
        wait_for(lambda: (r.pump(), r.out.count(b"stats tunnels") > before)[1], "stats")
        block = r.out.decode().split("stats connections")[-1]
        return parse_stats(block)


def parse_stats(text):
    out = {}
    for line in text.splitlines():
        if "route=" in line:
            m = dict(kv.split("=", 1) for kv in line.split()[1:])
            out["route " + m["route"]] = m
        elif line.startswith("stats rejected") or line.startswith("stats tunnels"):
            for kv in line.split()[2:]:
                k, v = kv.split("=")
                out[k] = int(v)
    return out


# ---- clients -------------------------------------------------------------------

def line_for(tag):
    # s_server -rev answers each line reversed; no newline inside.
    return ("%s-" % tag + "".join(random.choice("abcdefghijklmnopqrstuvwxyz0123456789")
                                  for _ in range(3000))).encode()


def s_client(env, port, name, tag, host="127.0.0.1", alpn=None):
    connect = "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)
    extra = ["-alpn", alpn] if alpn else []
    p = Proc(["openssl", "s_client", "-connect", connect, "-servername", name, "-CAfile",
              env.ca, "-verify_return_error", "-verify_hostname", name, *extra], env.dir)
    env.procs.append(p)
    p.wait_out(r"Verify return code: 0 \(ok\)", "s_client handshake via %s" % name)
    subj = re.search(r"subject=(.*)", p.out.decode()).group(1)
    if "backend-" + tag not in subj:
        fail("s_client %s reached %r, expected backend-%s" % (name, subj, tag))
    line = line_for(tag)
    p.p.stdin.write(line + b"\n")
    p.p.stdin.flush()
    p.wait_out(re.escape(line[::-1].decode()), "reversed line from backend-%s" % tag)
    p.stop()
    env.procs.remove(p)


def curl(env, port, name, tag):
    out = os.path.join(env.dir, "curl-%s.out" % tag)
    r = subprocess.run(["curl", "-sS", "-v", "--max-time", str(DEADLINE), "--resolve",
                        "%s:%d:127.0.0.1" % (name, port), "--cacert", env.ca, "-o", out,
                        "https://%s:%d/data.bin" % (name, port)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    err = r.stderr.decode(errors="replace")
    if r.returncode != 0:
        fail("curl %s failed (%d): %s" % (name, r.returncode, err[-2000:]))
    m = re.search(r"subject: (.*)", err)
    if not m or "backend-" + tag not in m.group(1):
        fail("curl %s: subject %r, expected backend-%s" % (name, m and m.group(1), tag))
    with open(out, "rb") as a, open(os.path.join(env.dir, "www-" + tag, "data.bin"), "rb") as b:
        if a.read() != b.read():
            fail("curl %s: body differs from backend-%s's file" % (name, tag))


def split_records(data):
    """The first TLS record of data re-framed as two records, plus the rest."""
    n = int.from_bytes(data[3:5], "big")
    body, rest = data[5:5 + n], data[5 + n:]
    half = n // 2
    hdr = data[:3]
    return (hdr + half.to_bytes(2, "big") + body[:half] +
            hdr + (n - half).to_bytes(2, "big") + body[half:] + rest)


class BioClient:
    """A Python ssl client on MemoryBIOs over a plain socket, so the test decides
    how the ClientHello is written: 'bytewise' (one byte per send) or
    'two_records' (the hello split into two TLS records)."""

    def __init__(self, env, port, name, how, host="127.0.0.1"):
        ctx = ssl.create_default_context(cafile=env.ca)
        self.inc, self.outb = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.outb, server_hostname=name)
        self.sock = socket.create_connection((host, port), timeout=DEADLINE)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.how = how
        self.first = True

    def flush(self):
        data = self.outb.read()
        if not data:
            return
        if self.first and self.how == "bytewise":
            for i in range(len(data)):
                self.sock.send(data[i:i + 1])
        elif self.first and self.how == "two_records":
            self.sock.sendall(split_records(data))
        else:
            self.sock.sendall(data)
        self.first = False

    def recv(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("connection closed")
        self.inc.write(data)

    def handshake(self):
        while True:
            try:
                self.obj.do_handshake()
                self.flush()
                return self.obj.getpeercert()
            except ssl.SSLWantReadError:
                self.flush()
                self.recv()

    def roundtrip(self, line):
        self.obj.write(line + b"\n")
        self.flush()
        got = b""
        while not got.endswith(b"\n"):
            try:
                got += self.obj.read(65536)
            except ssl.SSLWantReadError:
                self.recv()
        return got[:-1]

    def close(self):
        self.sock.close()


def subject_o(cert):
    for rdn in cert["subject"]:
        for k, v in rdn:
            if k == "organizationName":
                return v
    return None


def bio_client(env, port, name, tag, how="plain", host="127.0.0.1"):
    c = BioClient(env, port, name, how, host)
    cert = c.handshake()
    if subject_o(cert) != "backend-" + tag:
        fail("%s client %s reached %s, expected backend-%s" % (how, name, subject_o(cert), tag))
    line = line_for(tag)
    if c.roundtrip(line) != line[::-1]:
        fail("%s client %s: reply is not the line reversed" % (how, name))
    c.close()


def raw(port, data, host="127.0.0.1", shut=False):
    """Sends data, returns everything received until the router closes."""
    s = socket.create_connection((host, port), timeout=DEADLINE)
    s.sendall(data)
    if shut:
        s.shutdown(socket.SHUT_WR)
    got = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += b
    except ConnectionResetError:
        pass
    except socket.timeout:
        fail("router kept a rejected connection open")
    s.close()
    return got


def alert(name):
    return bytes([0x15, 3, 3, 0, 2, 2, ALERT[name]])


# ---- hellos built by the test ------------------------------------------------------

def hello(exts=b"", pad=0):
    body = b"\x03\x03" + bytes(32) + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
    if pad:
        exts += (21).to_bytes(2, "big") + pad.to_bytes(2, "big") + bytes(pad)
    body += len(exts).to_bytes(2, "big") + exts
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + len(hs).to_bytes(2, "big") + hs


def sni_ext(name):
    entry = b"\x00" + len(name).to_bytes(2, "big") + name
    lst = len(entry).to_bytes(2, "big") + entry
    return b"\x00\x00" + len(lst).to_bytes(2, "big") + lst


# ---- scenarios -------------------------------------------------------------------

def three_backends(env, extra=(), mode="-rev"):
    a = env.backend("alpha", ["alpha.test"], mode=mode)
    b = env.backend("beta", ["www.beta.test", "x.beta.test"], mode=mode)
    g = env.backend("gamma", ["other.example"], mode=mode)
    r = env.router(["--route", "alpha.test=" + a, "--route", "*.beta.test=" + b,
                    "--default", g, "--stats", *extra])
    return r


def scenario_openssl(env):
    # alpha.test offering ALPN h2 goes to delta (also a certificate for
    # alpha.test, subject O=backend-delta): routing on the parsed ALPN.
    d = env.backend("delta", ["alpha.test"])
    r = three_backends(env, extra=("--route", "alpha.test+h2=" + d))
    port = r.ports[0]
    s_client(env, port, "alpha.test", "alpha")
    s_client(env, port, "alpha.test", "delta", alpn="h2")
    s_client(env, port, "alpha.test", "alpha", alpn="http/1.1")
    s_client(env, port, "www.beta.test", "beta")
    s_client(env, port, "other.example", "gamma")
    st = env.stats(r)
    for route, n in (("alpha.test", 2), ("alpha.test+h2", 1), ("*.beta.test", 1),
                     ("default", 1)):
        if int(st["route " + route]["accepted"]) != n:
            fail("route %s accepted %s, expected %d" % (route, st["route " + route], n))
    out, _ = env.stop_router(r)
    st = parse_stats(out.split("stats connections")[-1])
    if st["clean"] + st["reset"] + st["other"] != 5:
        fail("expected 5 ended tunnels, stats %r" % st)


def scenario_curl(env):
    r = three_backends(env, mode="-WWW")
    curl(env, r.ports[0], "alpha.test", "alpha")
    curl(env, r.ports[0], "x.beta.test", "beta")
    out, _ = env.stop_router(r)
    st = parse_stats(out.split("stats connections")[-1])
    alpha = st["route alpha.test"]
    if int(alpha["bytes_down"]) < 200000:
        fail("alpha's down bytes not counted: %r" % alpha)


def scenario_python_bytewise(env):
    r = three_backends(env)
    for _ in range(3):
        bio_client(env, r.ports[0], "alpha.test", "alpha", "bytewise")
        bio_client(env, r.ports[0], "www.beta.test", "beta", "bytewise")
    env.stop_router(r)


def scenario_python_two_records(env):
    r = three_backends(env)
    bio_client(env, r.ports[0], "alpha.test", "alpha", "two_records")
    bio_client(env, r.ports[0], "x.beta.test", "beta", "two_records")
    bio_client(env, r.ports[0], "other.example", "gamma", "two_records")
    env.stop_router(r)


def scenario_ipv6(env):
    a = env.backend("alpha", ["alpha.test"], host="::1")
    b = env.backend("beta", ["www.beta.test"])
    r = env.router(["--route", "alpha.test=" + a, "--route", "www.beta.test=" + b],
                   listen=("127.0.0.1:0", "[::1]:0"))
    v4, v6 = r.ports
    bio_client(env, v6, "alpha.test", "alpha", "bytewise", host="::1")
    bio_client(env, v6, "www.beta.test", "beta", "two_records", host="::1")
    bio_client(env, v4, "alpha.test", "alpha", "plain")
    s_client(env, v6, "alpha.test", "alpha", host="::1")
    env.stop_router(r)


def scenario_hostile(env):
    a = env.backend("alpha", ["alpha.test"])
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    dead.close()  # nothing listens there now
    r = env.router(["--route", "alpha.test=" + a, "--route", "dead.test=127.0.0.1:%d" % dead_port,
                    "--max-hello", "1024", "--hello-timeout", "2000", "--stats"])
    port = r.ports[0]
    cases = [
        ("no_sni", hello(), alert("missing_extension")),
        ("unknown_name", hello(sni_ext(b"nobody.test")), alert("unrecognized_name")),
        ("malformed", hello(sni_ext(b"alpha.test"))[:-1] + b"", None),
        ("too_large", hello(sni_ext(b"alpha.test"), pad=1200), alert("illegal_parameter")),
        ("bad_name", hello(sni_ext(b"alpha test")), alert("illegal_parameter")),
        ("sslv2", bytes([0x80, 0x2e, 0x01, 0x03, 0x01]) + bytes(45), b""),
        ("not_tls", b"GET / HTTP/1.1\r\nHost: alpha.test\r\n\r\n", b""),
        ("backend_failed", hello(sni_ext(b"dead.test")), alert("internal_error")),
    ]
    # A hello whose record claims more than it holds, cut short and then
    # followed by a second record type: decode_error.
    bad = bytearray(hello(sni_ext(b"alpha.test")))
    bad[9] ^= 0x40  # handshake length no longer matches the record
    cases[2] = ("malformed", bytes(bad), alert("decode_error"))
    for kind, data, want in cases:
        got = raw(port, data)
        if got != want:
            fail("%s: router answered %r, expected %r" % (kind, got, want))
    # Half a hello, then silence: closed at the hello timeout, no alert.
    real = hello(sni_ext(b"alpha.test"))
    if raw(port, real[:20]) != b"":
        fail("hello_timeout: expected a close without alert")
    # EOF in the middle of the hello.
    raw(port, real[:30], shut=True)
    # A good client is still served, and the counters say one of each.
    bio_client(env, port, "alpha.test", "alpha", "bytewise")
    st = env.stats(r)
    for kind in ("no_sni", "unknown_name", "malformed", "too_large", "bad_name", "sslv2",
                 "not_tls", "backend_failed", "hello_timeout", "client_gone"):
        if st[kind] != 1:
            fail("kind %s counted %d times, expected 1 (%r)" % (kind, st[kind], st))
    _, err = env.stop_router(r)
    for kind in ("no_sni", "unknown_name", "malformed", "too_large", "bad_name", "sslv2",
                 "not_tls", "backend_failed", "hello_timeout", "client_gone"):
        n = len(re.findall(r" %s sni=" % kind, err))
        if n != 1:
            fail("kind %s logged %d times, expected once:\n%s" % (kind, n, err))


def scenario_stall(env):
    n = int(os.environ.get("SNI_STALL_CONNS", "1000"))
    a = env.backend("alpha", ["alpha.test"])
    r = env.router(["--route", "alpha.test=" + a, "--hello-timeout", "3000", "--stats",
                    "--quiet"])
    port = r.ports[0]
    half = hello(sni_ext(b"alpha.test"))
    half = half[:len(half) // 2]
    stalled = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        s.sendall(half)
        stalled.append(s)
    # Good clients are served while the stalled ones wait.
    for _ in range(3):
        bio_client(env, port, "alpha.test", "alpha", "bytewise")
    # Every stalled connection is closed by the router, without an alert.
    open_ = {s.fileno(): s for s in stalled}
    end = time.monotonic() + DEADLINE * 2
    while open_ and time.monotonic() < end:
        ready, _, _ = select.select(list(open_.values())[:1000], [], [], 1.0)
        for s in ready:
            try:
                data = s.recv(100)
            except ConnectionResetError:
                data = b""
            if data:
                fail("a stalled connection got %r" % data)
            del open_[s.fileno()]
            s.close()
    if open_:
        fail("%d stalled connections still open" % len(open_))
    st = env.stats(r)
    if st["hello_timeout"] != n:
        fail("hello_timeout counted %d, expected %d" % (st["hello_timeout"], n))
    if int(st["route alpha.test"]["accepted"]) != 3:
        fail("expected 3 routed connections: %r" % st["route alpha.test"])
    env.stop_router(r)


def scenario_drain(env):
    a = env.backend("alpha", ["alpha.test"])
    r = env.router(["--route", "alpha.test=" + a, "--stats"])
    port = r.ports[0]
    c = BioClient(env, port, "alpha.test", "plain")
    if subject_o(c.handshake()) != "backend-alpha":
        fail("wrong backend")
    line = line_for("alpha")
    c.roundtrip(line)
    r.p.send_signal(signal.SIGTERM)
    # The router stops accepting but the open tunnel keeps working.
    def refused():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=DEADLINE).close()
            return False
        except ConnectionRefusedError:
            return True
    wait_for(refused, "the listener to close after SIGTERM")
    if c.roundtrip(line) != line[::-1]:
        fail("tunnel broken after SIGTERM")
    if r.p.poll() is not None:
        fail("router exited with a tunnel open")
    c.close()
    end = time.monotonic() + DEADLINE
    while r.p.poll() is None and time.monotonic() < end:
        time.sleep(0.01)
    r.pump()
    if r.p.returncode != 0:
        fail("router exit %s after drain: %s" % (r.p.returncode, r.err.decode()))
    st = parse_stats(r.out.decode().split("stats connections")[-1])
    if int(st["route alpha.test"]["bytes_up"]) < 6000:
        fail("bytes not counted: %r" % st)


def scenario_idle(env):
    a = env.backend("alpha", ["alpha.test"])
    r = env.router(["--route", "alpha.test=" + a, "--idle-timeout", "2000", "--stats"])
    c = BioClient(env, r.ports[0], "alpha.test", "plain")
    c.handshake()
    line = line_for("alpha")
    if c.roundtrip(line) != line[::-1]:
        fail("round trip")
    # Idle: the router ends the tunnel; the client sees the connection end.
    try:
        while True:
            c.recv()
    except (EOFError, ConnectionResetError):
        pass
    # The client may see the reset before the router has counted the end.
    wait_for(lambda: env.stats(r)["idle_timeout"] == 1, "idle_timeout counted once")
    env.stop_router(r)


def run_scenario(doc, scenarios, tools):
    """The command line of an sni_router e2e script, ROUTER_EXE SCENARIO:
    exits with doc on other arguments, skips (77) when one of tools is not
    installed, else runs scenarios["scenario_" + SCENARIO](env) with a fresh
    Env (closed after) and prints PASS."""
    if len(sys.argv) != 3:
        sys.exit(doc)
    for tool in tools:
        if not shutil.which(tool):
            print("SKIP: %s not installed" % tool)
            sys.exit(77)
    env = Env(os.path.abspath(sys.argv[1]))
    try:
        scenarios["scenario_" + sys.argv[2]](env)
    finally:
        env.close()
    print("PASS", sys.argv[2])


def main():
    random.seed(os.getpid())
    run_scenario(__doc__, globals(), ("openssl", "curl"))


if __name__ == "__main__":
    main()
