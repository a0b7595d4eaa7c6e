#!/usr/bin/env python3
"""haproxy_standin.py - HAProxy (mode http) behind http_router's command line.

    HTTP_ROUTER_CMD="python3 haproxy_standin.py" http_router_test.py SCENARIO

Takes http_router's options (--listen, --route HOST[/PREFIX]=ADDR:PORT,
--default, the timeouts, --max-head, --pool-size; the rest are accepted and
ignored), writes an equivalent haproxy.cfg into a temporary directory, runs
`haproxy -db` and prints "listening PORT" and "pid PID" (HAProxy's pid, for
the memory checks) once it accepts. SIGTERM stops HAProxy; exits 0.

It exists so the real-client suite can be checked against a known-good HTTP
proxy. HAProxy lower-cases header names, so the suite's stand-in mode
(HTTP_ROUTER_STANDIN=1, set by the harness when the command names this
file) compares forwarded heads by parsed fields rather than bytes. Every
scenario passes against it except three, where HAProxy departs from
http_router's contract: hostile smuggling (HAProxy drops Content-Length
when Transfer-Encoding is present, unfolds obs-fold, takes a bare LF as a
line end, passes NUL), hostile limits (400 where the router owes 414) and
hostile timeouts (503 where the router owes 502 for a refused connect).
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from harness import die_with_parent, free_port


def secs(v):
    """HAProxy timeouts here are whole seconds, at least 1."""
    return max(1, int(v))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--route", action="append", default=[])
    ap.add_argument("--default")
    ap.add_argument("--workers")
    ap.add_argument("--max-head", type=int, default=16384)
    ap.add_argument("--head-timeout", type=float, default=10)
    ap.add_argument("--upstream-timeout", type=float, default=30)
    ap.add_argument("--idle-timeout", type=float, default=60)
    ap.add_argument("--pool-size")
    ap.add_argument("--write-budget")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    host, port = a.listen.rsplit(":", 1)
    port = int(port) or free_port()
    d = tempfile.mkdtemp(prefix="haproxy-standin.")
    rules, backends = [], []
    routes = []
    for i, r in enumerate(a.route):
        match, addr = r.split("=", 1)
        h, _, prefix = match.partition("/")
        routes.append((h.startswith("*."), -len(prefix), i, h, "/" + prefix if prefix else "",
                       addr))
    routes.sort()
    for wild, _, i, h, prefix, addr in routes:
        cond = ("{ hdr(host),field(1,:),lower -m end %s }" % h[1:].lower() if wild
                else "{ hdr(host),field(1,:),lower -m str %s }" % h.lower())
        if prefix:
            cond += " { path -m beg %s }" % prefix
        rules.append("    use_backend be%d if %s" % (i, cond))
        backends.append("backend be%d\n    server s %s\n" % (i, addr))
    if a.default:
        rules.append("    default_backend bedef")
        backends.append("backend bedef\n    server s %s\n" % a.default)
    else:
        rules.append("    default_backend be404")
        backends.append("backend be404\n    http-request return status 404\n")
    conf = """global
    nbthread 1
    maxconn 4000
    tune.bufsize %d
    tune.maxrewrite 1024
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout http-request %ds
    timeout client %ds
    timeout http-keep-alive %ds
    timeout connect %ds
    timeout server %ds
    timeout tunnel 3600s
    retries 1
    retry-on empty-response
frontend fe
    bind %s:%d
    http-request add-header X-Forwarded-For %%[src]
    http-request add-header Via "1.1 http_router"
%s
%s""" % (a.max_head + 1024, secs(a.head_timeout), secs(a.idle_timeout), secs(a.idle_timeout),
         secs(a.upstream_timeout), secs(a.upstream_timeout), host, port, "\n".join(rules),
         "".join(backends))
    path = os.path.join(d, "haproxy.cfg")
    with open(path, "w") as f:
        f.write(conf)
    p = subprocess.Popen(["haproxy", "-db", "-f", path], stdout=sys.stderr, stderr=sys.stderr,
                         preexec_fn=die_with_parent)

    stopping = []

    def stop(*_):
        # The main thread may be inside p.wait(): only signal here.
        stopping.append(1)
        p.send_signal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    end = time.monotonic() + 20
    while True:
        if p.poll() is not None:
            if stopping:
                sys.exit(0)
            sys.exit("haproxy exited %d (config %s)" % (p.returncode, path))
        try:
            socket.create_connection((host, port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > end:
                p.kill()
            time.sleep(0.02)
    print("listening %d\npid %d" % (port, p.pid), flush=True)
    p.wait()
    shutil.rmtree(d, ignore_errors=True)
    if not stopping:
        sys.exit("haproxy exited %d" % p.returncode)


if __name__ == "__main__":
    main()
