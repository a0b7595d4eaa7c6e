#!/usr/bin/env python3
"""sni_defects_test.py - socket-level regression tests of issue #23 (ctest).

    sni_defects_test.py ROUTER_EXE SCENARIO

Each scenario starts the router on a loopback port (sni_test.py's Env and
helpers) and talks to it with raw sockets, as sni_test.py does for hostile
input; backends are plain Python sockets that record what they receive.
Nothing is judged by time: every wait is for an event, bounded by a deadline
that only turns a hang into a failure. Where a defect would make the router
hold something open, the deadline is far below the router's own timeout, so
the defect shows as a failure, never as a slow pass.

  empty_sni_list        an empty ServerNameList: decode_error, no backend
  forged_log            a refused name with a newline, ESC and BEL is logged
                        on one line, without those bytes
  eof_while_connecting  hello + request + FIN while the backend connect is
                        pending (one burst; a backend whose accept queue is
                        full): the backend gets every byte, then EOF, and the
                        client its reply
  refusal_after_full_buffer
                        the backend refuses after the client filled the
                        router's buffer: internal_error, and the router
                        lets go of the connection once the client closed
  workers               --workers 2: 48 routed connections, each answered,
                        spread over both workers (per-worker counts from
                        --stats at exit; the kernel's SO_REUSEPORT hash puts
                        all 48 on one worker with probability 2^-47), summed
                        counters, a SIGUSR1 report per worker, exit 0 on
                        SIGTERM
  host_names            --listen, --route and --default given as localhost:PORT
                        (resolved at start-up) route end to end
"""
import os
import re
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sni_test import (DEADLINE, alert, fail, hello, parse_stats, raw, run_scenario,  # noqa: E402
                      sni_ext, wait_for)

# Far below the --hello-timeout the scenarios give the router (60 s).
HOLD_DEADLINE = 10.0


class Backend:
    """A listening socket on loopback whose thread accepts connections and
    records each one's bytes until EOF; reply (if any) is then sent and the
    connection closed. With hold_queue, listen(0) and one connection of the
    test's own fill the accept queue: further SYNs are dropped (connects stay
    pending) until release() accepts that connection."""

    def __init__(self, reply=b"", hold_queue=False):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0 if hold_queue else 16)
        self.port = self.sock.getsockname()[1]
        self.addr = "127.0.0.1:%d" % self.port
        self.reply = reply
        self.got = []        # bytes of each connection that ended with EOF
        self.accepted = 0
        self.lock = threading.Lock()
        self.filler = None
        self.released = threading.Event()
        if hold_queue:
            self.filler = socket.create_connection(("127.0.0.1", self.port), timeout=DEADLINE)
        else:
            self.released.set()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def release(self):
        self.released.set()

    def run(self):
        self.released.wait()
        if self.filler:
            self.sock.accept()[0].close()
            self.filler.close()
        self.sock.settimeout(DEADLINE)
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.accepted += 1
            conn.settimeout(DEADLINE)
            data = b""
            try:
                while True:
                    b = conn.recv(65536)
                    if not b:
                        break
                    data += b
                with self.lock:
                    self.got.append(data)
                conn.sendall(self.reply)
            except OSError:
                pass
            conn.close()

    def close(self):
        self.sock.close()


def open_count(env, r):
    """The router's open connections, from its --stats report."""
    before = r.out.count(b"stats tunnels")
    r.p.send_signal(signal.SIGUSR1)
    wait_for(lambda: (r.pump(), r.out.count(b"stats tunnels") > before)[1], "stats")
    lines = re.findall(r"stats connections accepted=(\d+) open=(\d+)", r.out.decode())
    return int(lines[-1][1])


def recv_all(s):
    got = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                return got
            got += b
    except ConnectionResetError:
        return got
    except socket.timeout:
        fail("no EOF from the router within %d s (got %r)" % (DEADLINE, got[:64]))


def scenario_empty_sni_list(env):
    # RFC 6066: a ServerNameList holds at least one name. An empty one is
    # malformed, not "no SNI" for the default route.
    b = Backend()
    r = env.router(["--default", b.addr, "--hello-timeout", "60000", "--stats"])
    empty = b"\x00\x00\x00\x02\x00\x00"
    got = raw(r.ports[0], hello(empty), shut=True)
    if got != alert("decode_error"):
        fail("empty ServerNameList: router answered %r, expected decode_error" % got)
    st = env.stats(r)
    if st["malformed"] != 1 or int(st["route default"]["accepted"]) != 0:
        fail("expected one malformed and nothing routed: %r" % st)
    env.stop_router(r)
    if b.accepted != 0:
        fail("the backend got %d connections" % b.accepted)
    b.close()


def scenario_forged_log(env):
    b = Backend()
    r = env.router(["--route", "alpha.test=" + b.addr, "--hello-timeout", "60000", "--stats"])
    name = b"x\ninjected-line sni=forged\x1b[31m\x07"
    got = raw(r.ports[0], hello(sni_ext(name)), shut=True)
    if got != alert("illegal_parameter"):
        fail("bad name: router answered %r, expected illegal_parameter" % got)
    _, err = env.stop_router(r)
    # Every line is the router's own ("==PID==" lines: SNI_ROUTER_WRAPPER's valgrind).
    lines = [ln for ln in err.split("\n") if ln and not re.match(r"==\d+==", ln)]
    own = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (error|warn|info) conn=\d+ "
                     r"peer=127\.0\.0\.1:\d+ ")
    if any(not own.match(ln) for ln in lines):
        fail("a log line the router did not write:\n%r" % err)
    if "\x1b" in err or "\x07" in err:
        fail("ESC or BEL reached the log: %r" % err)
    if len([ln for ln in lines if " bad_name sni=" in ln]) != 1:
        fail("expected one bad_name line: %r" % err)
    b.close()


def listen_overflows():
    """The kernel's count of SYNs dropped on a full accept queue (Linux)."""
    with open("/proc/net/netstat") as f:
        rows = [ln.split() for ln in f if ln.startswith("TcpExt:")]
    return int(dict(zip(rows[0], rows[1]))["ListenOverflows"])


def eof_while_connecting(env, hold_queue):
    b = Backend(reply=b"reply after EOF", hold_queue=hold_queue)
    r = env.router(["--route", "alpha.test=" + b.addr, "--hello-timeout", "60000", "--stats"])
    request = hello(sni_ext(b"alpha.test")) + os.urandom(5000)
    overflows = listen_overflows() if hold_queue else 0
    c = socket.create_connection(("127.0.0.1", r.ports[0]), timeout=DEADLINE)
    c.sendall(request)
    c.shutdown(socket.SHUT_WR)
    if hold_queue:
        # The router's SYN is dropped on the full accept queue: its connect
        # stays pending until the queue has room and the SYN is sent again
        # (a second later), after the router read the FIN sent above.
        wait_for(lambda: listen_overflows() > overflows, "the router's SYN to be dropped")
    b.release()
    got = recv_all(c)
    c.close()
    if got != b"reply after EOF":
        _, err = env.stop_router(r)
        fail("client got %r instead of the backend's reply; router said:\n%s" % (got, err))
    wait_for(lambda: b.got, "the backend to see EOF")
    if b.got[0] != request:
        fail("backend got %d bytes, expected the %d sent" % (len(b.got[0]), len(request)))
    wait_for(lambda: env.stats(r)["clean"] == 1, "the tunnel to end cleanly")
    st = env.stats(r)
    if st["client_gone"] != 0:
        fail("counted as client_gone: %r" % st)
    env.stop_router(r)
    b.close()


def scenario_eof_while_connecting(env):
    eof_while_connecting(env, hold_queue=False)
    eof_while_connecting(env, hold_queue=True)


def scenario_refusal_after_full_buffer(env):
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    dead.close()  # nothing listens there now
    r = env.router(["--route", "dead.test=127.0.0.1:%d" % dead_port, "--hello-timeout", "60000",
                    "--stats"])
    c = socket.create_connection(("127.0.0.1", r.ports[0]), timeout=DEADLINE)
    # More than --max-hello (16 KiB) behind the hello: the router's buffer is
    # full while it connects, so its reader stops.
    c.sendall(hello(sni_ext(b"dead.test")) + bytes(20000))
    got = recv_all(c)
    c.close()
    if got != alert("internal_error"):
        fail("router answered %r, expected internal_error" % got)
    end = time.monotonic() + HOLD_DEADLINE
    while open_count(env, r) != 0:
        if time.monotonic() > end:
            fail("the router still holds the refused connection %d s after the client "
                 "closed (--hello-timeout is 60 s)" % HOLD_DEADLINE)
        time.sleep(0.05)
    env.stop_router(r)


def routed(port, name, payload):
    """One connection: hello for name (None: no SNI) + payload + FIN; returns
    what came back before EOF."""
    c = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    c.sendall(hello(sni_ext(name) if name else b"") + payload)
    c.shutdown(socket.SHUT_WR)
    got = recv_all(c)
    c.close()
    return got


def scenario_workers(env):
    n = 48
    b = Backend(reply=b"pong")
    r = env.router(["--workers", "2", "--route", "alpha.test=" + b.addr, "--stats"])
    for i in range(n):
        got = routed(r.ports[0], b"alpha.test", b"ping %d" % i)
        if got != b"pong":
            fail("connection %d got %r instead of the backend's reply" % (i, got))
    # SIGUSR1: each worker prints its own report, headed "stats worker=K".
    r.p.send_signal(signal.SIGUSR1)
    wait_for(lambda: (r.pump(), len(re.findall(rb"stats worker=\d\n", r.out)) == 2)[1],
             "a report per worker")
    live = re.findall(r"stats worker=(\d)\nstats connections accepted=(\d+) open=\d+\n",
                      r.out.decode())
    if sorted(int(k) for k, _ in live) != [0, 1] or sum(int(v) for _, v in live) != n:
        fail("SIGUSR1 reports: expected workers 0 and 1 with %d connections: %r" % (n, live))
    out, _ = env.stop_router(r)
    per = {int(k): int(v) for k, v in re.findall(r"stats worker=(\d+) accepted=(\d+)", out)}
    if sorted(per) != [0, 1] or sum(per.values()) != n or min(per.values()) == 0:
        fail("expected %d connections over workers 0 and 1, each some: %r\n%s" % (n, per, out))
    st = parse_stats(out.split("stats connections")[-1])
    if int(st["route alpha.test"]["accepted"]) != n or st["clean"] != n:
        fail("summed counters: expected %d routed and clean, got %r" % (n, st))
    if len(b.got) != n:
        fail("the backend saw %d connections end, expected %d" % (len(b.got), n))
    b.close()


def scenario_host_names(env):
    alpha, other = Backend(reply=b"from alpha"), Backend(reply=b"from default")
    r = env.router(["--route", "alpha.test=localhost:%d" % alpha.port,
                    "--default", "localhost:%d" % other.port], listen=("localhost:0",))
    if routed(r.ports[0], b"alpha.test", b"x") != b"from alpha":
        fail("alpha.test did not reach localhost:%d" % alpha.port)
    if routed(r.ports[0], None, b"y") != b"from default":
        fail("a hello without SNI did not reach the default localhost:%d" % other.port)
    env.stop_router(r)
    alpha.close()
    other.close()


def main():
    # Env makes a CA with the openssl command.
    run_scenario(__doc__, globals(), ("openssl",))


if __name__ == "__main__":
    main()
