#!/usr/bin/env python3
"""http_bench.py - the measuring half of bench/run-http-bench.sh (see there).

    http_bench.py run --router-exe PATH --out DIR [--reps N] [--duration SEC]
                      [--conns N] [--idle N] [--peers a,b,...]
                      [--build-type T] [--commit C]
    http_bench.py idle --port P --n N                      (used by run)

Three HTTP/1.1 reverse proxies (http_router with --pool-size 32, HAProxy in mode http with
http-reuse always, nginx with proxy_pass to an upstream with keepalive 32)
route Host: bench.test to the same backend, an nginx serving static files.
Every process is started here with its own configuration written into the
output directory; the proxy is pinned to core 0, the backend and the load
(wrk, the idle client) to core 1. Per proxy and rep, a fresh proxy runs:
first N idle keep-alive connections (one request each, left open; before
any load, so memory a load leaves behind does not blur the figure), then
keep-alive (wrk -c CONNS, a 100-byte file), a new connection per request
(the same with "Connection: close"), and 1 MiB responses (wrk -c 8), each
--duration seconds with --latency. Reported: requests/s and p99 latency from
wrk, the proxy's CPU per request (ns from /proc/PID/task/*/schedstat, all
threads, the delta over the wrk run; sni_bench.cpu_ns), CPU ns per response
byte on the 1 MiB load, and RSS per idle connection ((VmRSS with N idle -
VmRSS before) / N). Peers alternate A B C A B C ...; medians of the reps.
Nothing here is compared with a fixed number.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from benchstats import median  # the bench scripts' one median
import sni_bench
from sni_bench import cpu_ns, free_port, status_kib, wait_port  # same /proc readings

SMALL = b"s" * 99 + b"\n"
BIG = 1 << 20
HOST = "bench.test"
LOADS = [("ka", "keep-alive"), ("close", "Connection: close"), ("mib", "1 MiB responses")]
METRICS = [("ka_rps", "keep-alive req/s", "%.0f"), ("ka_p99_ms", "keep-alive p99 ms", "%.2f"),
           ("ka_cpu_us", "keep-alive CPU us/req", "%.1f"),
           ("close_rps", "close req/s", "%.0f"), ("close_p99_ms", "close p99 ms", "%.2f"),
           ("close_cpu_us", "close CPU us/req", "%.1f"),
           ("mib_rps", "1 MiB req/s", "%.0f"), ("mib_p99_ms", "1 MiB p99 ms", "%.2f"),
           ("mib_ns_per_byte", "1 MiB CPU ns/B", "%.3f"),
           ("rss_per_idle", "RSS B/idle conn", "%.0f"), ("errors", "wrk errors", "%d")]


def idle_main(args):
    """N keep-alive connections, one request each, kept open until stdin ends."""
    conns = []
    req = b"GET /small.txt HTTP/1.1\r\nHost: %s\r\n\r\n" % HOST.encode()
    for _ in range(args.n):
        s = socket.create_connection(("127.0.0.1", args.port), timeout=60)
        s.sendall(req)
        got = b""
        while not got.endswith(SMALL):
            b = s.recv(4096)
            if not b:
                raise SystemExit("idle: connection closed early")
            got += b
        conns.append(s)
    print("ready", flush=True)
    sys.stdin.read()
    for s in conns:
        s.close()


def parse_wrk(out):
    """requests/s, p99 latency (ms), requests, errors from wrk --latency output."""
    def ms(v, unit):
        return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
    p99 = ms(m.group(1), m.group(2)) if m else float("nan")
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors += int(m.group(1)) if m else 0
    return rps, p99, reqs, errors


class Bench(sni_bench.Bench):
    """spawn(), stop() and close() are sni_bench's: processes pinned with
    taskset, each in its own session, all killed on close()."""

    def __init__(self, args):  # not sni_bench's: no TLS backends here
        self.args = args
        self.dir = tempfile.mkdtemp(prefix="run.", dir=args.out)
        os.chmod(self.dir, 0o755)  # nginx workers may run as another user
        self.procs = []
        self.backend_port = self.start_backend()

    def nginx_conf(self, name, port, http_body):
        d = os.path.join(self.dir, name)
        os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
        conf = os.path.join(d, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""daemon off;
master_process off;
worker_processes 1;
pid %s/nginx.pid;
error_log %s/error.log error;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path %s/tmp;
    proxy_temp_path %s/tmp;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
%s
}
""" % (d, d, d, d, http_body))
        return d, conf

    def start_backend(self):
        port = free_port()
        d, conf = self.nginx_conf("backend", port, """    server {
        listen 127.0.0.1:%d backlog=4096;
        root %s/www;
    }""" % (port, os.path.join(self.dir, "backend")))
        os.makedirs(os.path.join(d, "www"), exist_ok=True)
        with open(os.path.join(d, "www", "small.txt"), "wb") as f:
            f.write(SMALL)
        with open(os.path.join(d, "www", "big.bin"), "wb") as f:
            f.write(os.urandom(BIG))
        p = self.spawn(["nginx", "-p", d, "-c", conf, "-e", d + "/error.log"], 1, "backend.log")
        wait_port(port, p, "backend nginx")
        return port

    def start_peer(self, kind):
        up = "127.0.0.1:%d" % self.backend_port
        self.starts = getattr(self, "starts", 0) + 1
        log = "%s-%d.log" % (kind, self.starts)  # one per start: "listening" is this one's
        if kind == "http_router":
            # --pool-size 32: the idle upstream connections nginx keeps here
            # (keepalive 32); the default 16 is below wrk's 32 concurrent
            # requests, and the surplus connections would be reopened.
            p = self.spawn([self.args.router_exe, "--listen", "127.0.0.1:0", "--quiet",
                            "--pool-size", "32", "--route", "%s=%s" % (HOST, up)], 0, log)
            end = time.monotonic() + 20
            path = os.path.join(self.dir, log)
            while True:
                with open(path) as f:
                    m = re.search(r"listening (\d+)", f.read())
                if m:
                    return p, int(m.group(1))
                if p.poll() is not None or time.monotonic() > end:
                    raise RuntimeError("http_router did not start (see %s)" % path)
                time.sleep(0.02)
        port = free_port()
        if kind == "haproxy":
            conf = os.path.join(self.dir, "haproxy.cfg")
            with open(conf, "w") as f:
                f.write("""global
    nbthread 1
    maxconn 8000
defaults
    mode http
    http-reuse always
    option http-keep-alive
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s
frontend fe
    bind 127.0.0.1:%d
    use_backend be if { hdr(host),field(1,:) -m str %s }
backend be
    server s %s
""" % (port, HOST, up))
            argv = ["haproxy", "-db", "-f", conf]
        elif kind == "nginx":
            d, conf = self.nginx_conf("proxy", port, """    upstream up {
        server %s;
        keepalive 32;
    }
    server {
        listen 127.0.0.1:%d backlog=4096;
        server_name %s;
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }""" % (up, port, HOST))
            argv = ["nginx", "-p", d, "-c", conf, "-e", d + "/error.log"]
        else:
            raise SystemExit("unknown peer " + kind)
        p = self.spawn(argv, 0, log)
        wait_port(port, p, kind)
        return p, port

    def wrk(self, port, path, conns, extra=()):
        argv = ["taskset", "-c", "1", "wrk", "-t1", "-c%d" % conns, "-d%ss" % self.args.duration,
                "--latency", "-H", "Host: " + HOST, *extra, "http://127.0.0.1:%d%s" % (port, path)]
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=float(self.args.duration) + 120)
        out = r.stdout.decode(errors="replace")
        if r.returncode != 0 or "requests in" not in out:
            raise RuntimeError("wrk failed: " + out[-2000:])
        return parse_wrk(out)

    def idle_client(self, port, n, keep=False):
        """n keep-alive connections on core 1, one request each; with keep the
        client stays (end it with idle_end), else it is ended at once."""
        idle = subprocess.Popen(["taskset", "-c", "1", sys.executable, os.path.abspath(__file__),
                                 "idle", "--port", str(port), "--n", str(n)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        if idle.stdout.readline() != b"ready\n":
            raise RuntimeError("idle client failed")
        if keep:
            return idle
        self.idle_end(idle)

    @staticmethod
    def idle_end(idle):
        idle.stdin.close()
        idle.wait(timeout=120)

    def measure(self, kind):
        p, port = self.start_peer(kind)
        pid = p.pid  # taskset execs the program: same pid
        try:
            res = {"peer": kind, "errors": 0}
            # Idle connections first, on the fresh proxy: after a load, memory
            # the load used and the proxy gives back later would hide the cost.
            self.idle_client(port, 10)
            rss0 = status_kib(pid, "VmRSS")
            idle = self.idle_client(port, self.args.idle, keep=True)
            time.sleep(0.2)  # let the proxy finish its bookkeeping before sampling
            rss1 = status_kib(pid, "VmRSS")
            self.idle_end(idle)
            res["rss_per_idle"] = (rss1 - rss0) * 1024.0 / self.args.idle
            self.wrk(port, "/small.txt", 4, ("-d1s",))  # warm-up: lazy set-up not counted
            for load, path, conns, extra in (("ka", "/small.txt", self.args.conns, ()),
                                             ("close", "/small.txt", self.args.conns,
                                              ("-H", "Connection: close")),
                                             ("mib", "/big.bin", 8, ())):
                c0 = cpu_ns(pid)
                rps, p99, reqs, errors = self.wrk(port, path, conns, extra)
                c1 = cpu_ns(pid)
                res[load + "_rps"], res[load + "_p99_ms"] = rps, p99
                res["errors"] += errors
                if load == "mib":
                    res["mib_ns_per_byte"] = (c1 - c0) / (reqs * BIG)
                else:
                    res[load + "_cpu_us"] = (c1 - c0) / reqs / 1000.0
            return res
        finally:
            self.stop(p)


def versions():
    out = {}
    for name, argv in (("haproxy", ["haproxy", "-v"]), ("nginx", ["nginx", "-v"]),
                       ("wrk", ["wrk", "-v"])):
        try:
            r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            out[name] = r.stdout.decode().splitlines()[0]
        except (OSError, IndexError):
            pass
    return out


def report(args, peers, runs):
    med = {p: {k: median(r[k] for r in runs[p]) for k, _, _ in METRICS} for p in peers}
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    lines = ["HTTP/1.1 proxies, medians of %d reps (proxy on core 0; nginx backend and wrk on "
             "core 1; %ss per load, keep-alive and close with -c%d, 1 MiB with -c8, %d idle "
             "connections); http_router %s build, commit %s" % (
                 args.reps, args.duration, args.conns, args.idle, args.build_type, args.commit),
             "",
             "| peer | " + " | ".join(lab for _, lab, _ in METRICS) + " |",
             "|---" * (len(METRICS) + 1) + "|"]
    for p in peers:
        lines.append("| %s | " % p + " | ".join(fmt % med[p][k] for k, _, fmt in METRICS) + " |")
    table = "\n".join(lines) + "\n"
    print("\n" + table)
    base = os.path.join(args.out, "http-bench-%s" % stamp)
    with open(base + ".md", "w") as f:
        f.write(table)
    with open(base + ".json", "w") as f:
        json.dump({"when": stamp, "reps": args.reps, "duration_s": args.duration,
                   "conns": args.conns, "idle": args.idle, "build_type": args.build_type,
                   "commit": args.commit, "versions": versions(), "runs": runs,
                   "medians": med}, f, indent=1)
    with open(base + ".dat", "w") as f:
        f.write("# peer " + " ".join(k for k, _, _ in METRICS) + "\n")
        for p in peers:
            f.write(p + " " + " ".join("%g" % med[p][k] for k, _, _ in METRICS) + "\n")
    if shutil.which("gnuplot"):
        panels = [(2, "requests/s, keep-alive"), (3, "p99 ms, keep-alive"),
                  (4, "proxy CPU us/request, keep-alive"), (7, "proxy CPU us/request, close"),
                  (10, "proxy CPU ns/response byte, 1 MiB"), (11, "proxy RSS bytes/idle conn")]
        plot = ["set terminal pngcairo size 1500,800 noenhanced", "set output '%s.png'" % base,
                "set multiplot layout 2,3 title 'HTTP/1.1 proxies, medians of %d reps, "
                "commit %s (%s)'" % (args.reps, args.commit, args.build_type),
                "set style data histograms", "set style histogram gap 1",
                "set style fill solid 0.8", "unset key", "set yrange [0:*]"]
        for col, title in panels:
            plot += ["set title '%s'" % title, "plot '%s.dat' using %d:xtic(1)" % (base, col)]
        plot.append("unset multiplot")
        subprocess.run(["gnuplot"], input="\n".join(plot).encode(), check=False)
    print("table %s.md\nJSON %s.json\nchart %s.png" % (base, base, base))


def run(args):
    peers = args.peers.split(",")
    for p in peers:
        exe = args.router_exe if p == "http_router" else p
        if not shutil.which(exe):
            raise SystemExit("%s not found (scripts/install-deps.sh with BH_BENCH_PEERS=1)" % exe)
    os.makedirs(args.out, exist_ok=True)
    bench = Bench(args)
    runs = {p: [] for p in peers}
    try:
        for rep in range(args.reps):
            for p in peers:
                res = bench.measure(p)
                runs[p].append(res)
                print("rep %d %-11s " % (rep + 1, p) + "  ".join(
                    "%s=%s" % (k, fmt % res[k]) for k, _, fmt in METRICS), flush=True)
    finally:
        bench.close()
    report(args, peers, runs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--router-exe", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--reps", type=int, default=3)
    r.add_argument("--duration", default="5")
    r.add_argument("--conns", type=int, default=32)
    r.add_argument("--idle", type=int, default=1000)
    r.add_argument("--peers", default="http_router,haproxy,nginx")
    r.add_argument("--build-type", default="unknown")
    r.add_argument("--commit", default="unknown")
    i = sub.add_parser("idle")
    i.add_argument("--port", type=int, required=True)
    i.add_argument("--n", type=int, required=True)
    args = ap.parse_args()
    if args.cmd == "run":
        # SIGTERM (from run-http-bench.sh's trap) unwinds through Bench.close().
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        run(args)
    else:
        idle_main(args)


if __name__ == "__main__":
    main()
