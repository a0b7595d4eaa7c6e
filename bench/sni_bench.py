#!/usr/bin/env python3
"""sni_bench.py - the measuring half of bench/run-sni-bench.sh (see there).

    sni_bench.py run --router-exe PATH --out DIR [--rounds N] [--conns N]
                     [--bulk-mib N] [--idle N] [--routers a,b,...]
    sni_bench.py backend --cert C --key K --port-file F      (used by run)
    sni_bench.py client {conns|bulk|idle} ...                (used by run)

Each router (sni_router, sniproxy, HAProxy, nginx) is started by this script
with its own configuration on an ephemeral loopback port, pinned to core 0
(taskset); the TLS backends (Python asyncio ssl servers, one certificate
each) and the clients run on core 1. Per router and round: new TLS
connections per second with a small response (connect, handshake with SNI,
"small" request, 100-byte reply, close), bulk throughput through one
established connection (N MiB each way at once), router CPU per connection
and per byte from /proc/PID/task/*/schedstat (nanoseconds, all threads), peak
RSS (VmHWM) and RSS per idle routed connection ((VmRSS with K idle routed
connections - VmRSS before) / K). Routers alternate round by round; medians
are reported. Nothing here is compared with a fixed number.
"""
import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

from benchstats import median  # the bench scripts' one median

SMALL = b"x" * 99 + b"\n"
CHUNK = 256 * 1024


# ---- backend and clients (run as their own processes on core 1) -------------

async def backend_main(args):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(args.cert, args.key)

    async def handle(reader, writer):
        try:
            line = await reader.readline()
            if line == b"small\n":
                writer.write(SMALL)
            elif line.startswith(b"bulk "):
                n = int(line.split()[1])

                async def sink():
                    left = n
                    while left > 0:
                        b = await reader.read(min(left, CHUNK))
                        if not b:
                            raise EOFError
                        left -= len(b)
                block = b"b" * CHUNK
                task = asyncio.ensure_future(sink())
                left = n
                while left > 0:
                    writer.write(block[:min(left, CHUNK)])
                    left -= min(left, CHUNK)
                    await writer.drain()
                await task
            elif line == b"idle\n":
                writer.write(b"ok\n")
                await writer.drain()
                await reader.read()
            await writer.drain()
        except (ConnectionError, EOFError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(port))
    os.rename(args.port_file + ".tmp", args.port_file)
    async with server:
        await server.serve_forever()


def client_ctx(ca):
    ctx = ssl.create_default_context(cafile=ca)
    return ctx


async def one_small(port, name, ctx):
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                                   server_hostname=name)
    writer.write(b"small\n")
    data = await reader.read()
    writer.close()
    if data != SMALL:
        raise RuntimeError("bad small reply %r" % data[:40])


async def client_conns(args):
    ctx = client_ctx(args.ca)
    left = [args.n]

    async def worker():
        while left[0] > 0:
            left[0] -= 1
            await one_small(args.port, args.name, ctx)
    t = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    print(json.dumps({"seconds": time.monotonic() - t, "conns": args.n}))


async def client_bulk(args):
    ctx = client_ctx(args.ca)
    n = args.mib * 1024 * 1024
    reader, writer = await asyncio.open_connection("127.0.0.1", args.port, ssl=ctx,
                                                   server_hostname=args.name)
    t = time.monotonic()
    writer.write(b"bulk %d\n" % n)

    async def source():
        block = b"a" * CHUNK
        left = n
        while left > 0:
            writer.write(block[:min(left, CHUNK)])
            left -= min(left, CHUNK)
            await writer.drain()
    task = asyncio.ensure_future(source())
    got = 0
    while got < n:
        b = await reader.read(CHUNK)
        if not b:
            raise RuntimeError("bulk: EOF after %d bytes" % got)
        got += len(b)
    await task
    secs = time.monotonic() - t
    writer.close()
    print(json.dumps({"seconds": secs, "bytes_each_way": n}))


async def client_idle(args):
    ctx = client_ctx(args.ca)
    conns = []
    sem = asyncio.Semaphore(32)

    async def open_one():
        async with sem:
            r, w = await asyncio.open_connection("127.0.0.1", args.port, ssl=ctx,
                                                 server_hostname=args.name)
            w.write(b"idle\n")
            if await r.readline() != b"ok\n":
                raise RuntimeError("idle: no ok")
            conns.append(w)
    await asyncio.gather(*(open_one() for _ in range(args.n)))
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for w in conns:
        w.close()


# ---- measuring ------------------------------------------------------------------

def cpu_ns(pid):
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def status_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, what, deadline=20):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError("%s exited (%d) before listening" % (what, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("%s did not listen on %d" % (what, port))


class Bench:
    def __init__(self, args):
        self.args = args
        self.dir = tempfile.mkdtemp(prefix="sni-bench.", dir=args.out)
        self.procs = []
        self.me = os.path.abspath(__file__)
        self.openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                     "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
                     "-subj", "/CN=sni-bench CA")
        self.ca = os.path.join(self.dir, "ca.pem")
        self.backends = {name: self.backend(name) for name in ("alpha.bench", "bulk.bench")}

    def openssl(self, *a):
        subprocess.run(["openssl", *a], cwd=self.dir, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

    def spawn(self, argv, core, log, **kw):
        with open(os.path.join(self.dir, log), "ab") as f:
            p = subprocess.Popen(["taskset", "-c", str(core), *argv], stdout=f, stderr=f,
                                 cwd=self.dir, start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def backend(self, name):
        self.openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                     "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name)
        with open(os.path.join(self.dir, name + ".ext"), "w") as f:
            f.write("subjectAltName=DNS:%s\n" % name)
        self.openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                     "-CAcreateserial", "-days", "2", "-out", name + ".pem", "-extfile",
                     name + ".ext")
        pf = os.path.join(self.dir, name + ".port")
        p = self.spawn([sys.executable, self.me, "backend", "--cert", name + ".pem", "--key",
                        name + ".key", "--port-file", pf], 1, "backend-%s.log" % name)
        end = time.monotonic() + 20
        while not os.path.exists(pf):
            if p.poll() is not None or time.monotonic() > end:
                raise RuntimeError("backend %s did not start" % name)
            time.sleep(0.02)
        with open(pf) as f:
            return int(f.read())

    # ---- routers, each with its own configuration --------------------------------

    def start_router(self, kind):
        port = free_port()
        a, b = self.backends["alpha.bench"], self.backends["bulk.bench"]
        d = os.path.join(self.dir, kind)
        os.makedirs(d, exist_ok=True)
        if kind == "sni_router":
            argv = [self.args.router_exe, "--listen", "127.0.0.1:%d" % port, "--quiet",
                    "--route", "alpha.bench=127.0.0.1:%d" % a,
                    "--route", "bulk.bench=127.0.0.1:%d" % b]
        elif kind == "sniproxy":
            conf = os.path.join(d, "sniproxy.conf")
            with open(conf, "w") as f:
                f.write("""error_log {
    filename %s/error.log
    priority error
}
listener 127.0.0.1:%d {
    protocol tls
    table bench
}
table bench {
    ^alpha\\.bench$ 127.0.0.1:%d
    ^bulk\\.bench$ 127.0.0.1:%d
}
""" % (d, port, a, b))
            argv = ["sniproxy", "-f", "-c", conf]
        elif kind == "haproxy":
            conf = os.path.join(d, "haproxy.cfg")
            with open(conf, "w") as f:
                f.write("""global
    nbthread 1
    maxconn 8000
defaults
    mode tcp
    timeout connect 5s
    timeout client 300s
    timeout server 300s
frontend fe
    bind 127.0.0.1:%d
    tcp-request inspect-delay 5s
    tcp-request content accept if { req.ssl_hello_type 1 }
    use_backend be_alpha if { req.ssl_sni -i alpha.bench }
    use_backend be_bulk if { req.ssl_sni -i bulk.bench }
backend be_alpha
    server s 127.0.0.1:%d
backend be_bulk
    server s 127.0.0.1:%d
""" % (port, a, b))
            argv = ["haproxy", "-db", "-f", conf]
        elif kind == "nginx":
            conf = os.path.join(d, "nginx.conf")
            with open(conf, "w") as f:
                f.write("""load_module /usr/lib/nginx/modules/ngx_stream_module.so;
daemon off;
master_process off;
worker_processes 1;
pid %s/nginx.pid;
error_log %s/error.log error;
events { worker_connections 8000; }
stream {
    map $ssl_preread_server_name $backend {
        alpha.bench 127.0.0.1:%d;
        bulk.bench 127.0.0.1:%d;
    }
    server {
        listen 127.0.0.1:%d;
        ssl_preread on;
        proxy_pass $backend;
    }
}
""" % (d, d, a, b, port))
            argv = ["nginx", "-p", d, "-c", conf, "-e", os.path.join(d, "error.log")]
        else:
            raise SystemExit("unknown router " + kind)
        p = self.spawn(argv, 0, "router-%s.log" % kind)
        wait_port(port, p, kind)
        return p, port

    def client(self, mode, port, name, *extra):
        argv = ["taskset", "-c", "1", sys.executable, self.me, "client", mode, "--ca", self.ca,
                "--port", str(port), "--name", name, *extra]
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
        if r.returncode != 0:
            raise RuntimeError("client %s failed: %s" % (mode, r.stderr.decode()[-2000:]))
        return json.loads(r.stdout)

    def measure(self, kind):
        p, port = self.start_router(kind)
        pid = p.pid
        try:
            res = {"router": kind}
            # warm-up: a few connections so lazy initialisation is not counted
            self.client("conns", port, "alpha.bench", "--n", "20", "--concurrency", "2")
            c0 = cpu_ns(pid)
            r = self.client("conns", port, "alpha.bench", "--n", str(self.args.conns),
                            "--concurrency", "8")
            c1 = cpu_ns(pid)
            res["conns_per_s"] = r["conns"] / r["seconds"]
            res["cpu_us_per_conn"] = (c1 - c0) / r["conns"] / 1000.0
            r = self.client("bulk", port, "bulk.bench", "--mib", str(self.args.bulk_mib))
            c2 = cpu_ns(pid)
            moved = 2 * r["bytes_each_way"]
            res["bulk_mib_s_each_way"] = r["bytes_each_way"] / r["seconds"] / 1048576
            res["cpu_ns_per_byte"] = (c2 - c1) / moved
            rss0 = status_kib(pid, "VmRSS")
            idle = subprocess.Popen(["taskset", "-c", "1", sys.executable, self.me, "client",
                                     "idle", "--ca", self.ca, "--port", str(port), "--name",
                                     "alpha.bench", "--n", str(self.args.idle)],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            line = idle.stdout.readline()
            if line != b"ready\n":
                raise RuntimeError("idle client failed")
            rss1 = status_kib(pid, "VmRSS")
            idle.stdin.close()
            idle.wait(timeout=120)
            res["rss_idle_kib_before"] = rss0
            res["rss_idle_kib_with"] = rss1
            res["rss_bytes_per_idle_conn"] = (rss1 - rss0) * 1024.0 / self.args.idle
            res["peak_rss_kib"] = status_kib(pid, "VmHWM")
            return res
        finally:
            self.stop(p)

    def stop(self, p):
        """SIGTERM to a process spawn() started, SIGKILL after 10 s."""
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        self.procs.remove(p)

    def close(self):
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


METRICS = [("conns_per_s", "conn/s", "%.0f"), ("cpu_us_per_conn", "CPU us/conn", "%.1f"),
           ("bulk_mib_s_each_way", "bulk MiB/s", "%.0f"), ("cpu_ns_per_byte", "CPU ns/B", "%.3f"),
           ("peak_rss_kib", "peak RSS KiB", "%.0f"),
           ("rss_bytes_per_idle_conn", "RSS B/idle conn", "%.0f")]


def run(args):
    routers = args.routers.split(",")
    for r in routers:
        exe = args.router_exe if r == "sni_router" else r
        if not shutil.which(exe):
            raise SystemExit("%s not found (scripts/install-deps.sh with BH_BENCH_PEERS=1)" % exe)
    os.makedirs(args.out, exist_ok=True)
    bench = Bench(args)
    runs = {r: [] for r in routers}
    try:
        for rnd in range(args.rounds):
            order = routers if rnd % 2 == 0 else routers[::-1]
            for r in order:
                res = bench.measure(r)
                runs[r].append(res)
                print("round %d %-10s " % (rnd + 1, r) +
                      "  ".join("%s=%s" % (lab, fmt % res[k]) for k, lab, fmt in METRICS),
                      flush=True)
    finally:
        bench.close()
    med = {r: {k: median(x[k] for x in runs[r]) for k, _, _ in METRICS}
           for r in routers}
    base = "sni_router" if "sni_router" in routers else routers[0]
    print("\nmedians of %d rounds (router pinned to core 0; backends and clients on core 1;"
          " %d conns, %d MiB each way, %d idle conns):" %
          (args.rounds, args.conns, args.bulk_mib, args.idle))
    head = "%-11s" % "router" + "".join("%17s" % lab for _, lab, _ in METRICS)
    print(head)
    for r in routers:
        print("%-11s" % r + "".join("%17s" % (fmt % med[r][k]) for k, _, fmt in METRICS))
    print("\nratios against %s (CPU and memory: lower is better for %s when > 1):" %
          (base, base))
    for r in routers:
        if r == base:
            continue
        print("%-11s cpu/conn x%.2f  cpu/byte x%.2f  rss/idle conn x%.2f" % (
            r, med[r]["cpu_us_per_conn"] / med[base]["cpu_us_per_conn"],
            med[r]["cpu_ns_per_byte"] / med[base]["cpu_ns_per_byte"],
            (med[r]["rss_bytes_per_idle_conn"] / med[base]["rss_bytes_per_idle_conn"]
             if med[base]["rss_bytes_per_idle_conn"] > 0 else float("nan"))))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out_json = os.path.join(args.out, "sni-bench-%s.json" % stamp)
    with open(out_json, "w") as f:
        json.dump({"when": stamp, "rounds": args.rounds, "conns": args.conns,
                   "bulk_mib_each_way": args.bulk_mib, "idle_conns": args.idle,
                   "versions": versions(args), "runs": runs, "medians": med}, f, indent=1)
    dat = os.path.join(args.out, "sni-bench-%s.dat" % stamp)
    with open(dat, "w") as f:
        f.write("# router " + " ".join(k for k, _, _ in METRICS) + "\n")
        for r in routers:
            f.write(r + " " + " ".join("%g" % med[r][k] for k, _, _ in METRICS) + "\n")
    png = os.path.join(args.out, "sni-bench-%s.png" % stamp)
    if shutil.which("gnuplot"):
        plot = """set terminal pngcairo size 1200,400 noenhanced
set output '%s'
set multiplot layout 1,3 title 'SNI routers, medians of %d rounds (router on one core)'
set style data histograms
set style histogram gap 1
set style fill solid 0.8
set xtics rotate by -30 font ',10'
unset key
set yrange [0:*]
set title 'router CPU per connection (us)'
plot '%s' using 3:xtic(1)
set title 'router CPU per byte (ns)'
plot '%s' using 5:xtic(1)
set title 'RSS per idle routed connection (bytes)'
plot '%s' using 7:xtic(1)
unset multiplot
""" % (png, args.rounds, dat, dat, dat)
        subprocess.run(["gnuplot"], input=plot.encode(), check=False)
    print("\nJSON %s\nchart %s" % (out_json, png))


def versions(args):
    out = {}
    for name, argv in (("sniproxy", ["sniproxy", "-V"]), ("haproxy", ["haproxy", "-v"]),
                       ("nginx", ["nginx", "-v"])):
        try:
            r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            out[name] = r.stdout.decode().splitlines()[0]
        except OSError:
            pass
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--router-exe", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--rounds", type=int, default=3)
    r.add_argument("--conns", type=int, default=2000)
    r.add_argument("--bulk-mib", type=int, default=64)
    r.add_argument("--idle", type=int, default=1000)
    r.add_argument("--routers", default="sni_router,sniproxy,haproxy,nginx")
    b = sub.add_parser("backend")
    b.add_argument("--cert", required=True)
    b.add_argument("--key", required=True)
    b.add_argument("--port-file", required=True)
    c = sub.add_parser("client")
    c.add_argument("mode", choices=["conns", "bulk", "idle"])
    c.add_argument("--ca", required=True)
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--name", required=True)
    c.add_argument("--n", type=int, default=100)
    c.add_argument("--concurrency", type=int, default=8)
    c.add_argument("--mib", type=int, default=64)
    args = ap.parse_args()
    if args.cmd == "run":
        # SIGTERM (from run-sni-bench.sh's trap) unwinds through Bench.close().
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        run(args)
    elif args.cmd == "backend":
        asyncio.run(backend_main(args))
    else:
        asyncio.run({"conns": client_conns, "bulk": client_bulk, "idle": client_idle}[args.mode](args))


if __name__ == "__main__":
    main()
