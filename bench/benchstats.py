#!/usr/bin/env python3
"""benchstats.py - the bench scripts' JSON and statistics, in one place.

Every median and percentile the stream harness reports is computed here
(with the standard library's statistics module), and every result file is
read and written with the json module. The shell scripts call:

  benchstats.py summary OUT_DIR KEY=VALUE... -- RUN_FILE...
      one result file per implementation ("impl" of the runs):
      OUT_DIR/stream-<impl>-<scenario>-<transport>-<timestamp>.json with the
      configuration, every run (its connections' latency percentiles in
      place of the raw latencies) and the medians over the verified runs;
      prints "result: PATH" for each
  benchstats.py matrix LIST TABLE DAT_PREFIX TRANSPORT...
      the markdown table of a matrix run (LIST lines: transport scenario
      completion result_file) and one gnuplot data file per transport and
      scenario
  benchstats.py check LIST            smoke: every result verified, every field
  benchstats.py counts RUN_FILE STRACE_FILE ALLOCS_FILE
      adds a counting pass's figures to its run file: system calls per
      connection in all and by name (strace -c -f output) and heap
      allocations per connection
  benchstats.py churn TABLE RESULT_FILE...
      the markdown tables of a churn run: CPU per connection against
      epoll_copy and uv_copy, p99 latency, system calls and allocations per
      connection, and system calls per connection by name
"""
import json
import statistics
import sys

METRICS = ["throughput_mib_s", "service_cpu_cores", "service_ns_per_byte",
           "service_us_per_conn", "latency_p50_ms",
           "latency_p99_ms", "latency_p999_ms", "voluntary_ctxt_switches",
           "involuntary_ctxt_switches", "peak_rss_kib", "rss_start_kib", "proxy_tunnel_bytes",
           "proxy_spliced_bytes"]
IMPLS = ["handoff", "handoff_tunnel", "manual_vec", "uv_copy", "epoll_copy", "libevent"]
SCENARIOS = ["fragmented", "coalesced", "churn"]
COMPLETIONS = ["ticket", "fire_and_forget"]


def percentiles(values, ps):
    """The p-quantiles (each p in 0..1, in steps of 0.001) of values, by the
    statistics module's inclusive method, the cut points computed once; None
    for each when values is empty."""
    if not values:
        return [None for _ in ps]
    if len(values) == 1:
        return [values[0] for _ in ps]
    cuts = statistics.quantiles(values, n=1000, method="inclusive")
    lo, hi = min(values), max(values)
    out = []
    for p in ps:
        k = round(p * 1000)
        out.append(hi if k >= 1000 else lo if k <= 0 else cuts[k - 1])
    return out


def median(values):
    """Median of the numbers in values (None ignored); None when empty."""
    v = [x for x in values if x is not None]
    return statistics.median(v) if v else None


def load(path):
    with open(path) as f:
        return json.load(f)


def save(path, doc):
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")


def value(text):
    """A KEY=VALUE value as JSON: numbers and booleans typed, else a string."""
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def verified(run):
    return run.get("checksum_ok") is True and run.get("driver_exit") == 0 and \
        run.get("proxy_exit") == 0


def with_percentiles(run):
    """run with its connections' latency percentiles instead of latency_ns."""
    lat = run.pop("latency_ns", None) or []
    names = ("latency_p50_ms", "latency_p99_ms", "latency_p999_ms", "latency_max_ms")
    for name, v in zip(names, percentiles(lat, (0.50, 0.99, 0.999, 1.0))):
        run[name] = None if v is None else v / 1e6
    return run


def cmd_summary(out_dir, args):
    split = args.index("--")
    config = {"harness": "bh_stream"}
    for kv in args[:split]:
        k, _, v = kv.partition("=")
        config[k] = value(v)
    by_impl = {}
    counted = {}
    for p in args[split + 1:]:
        run = with_percentiles(load(p))
        if run.get("run") == "count":
            counted[run.get("impl")] = run
        else:
            by_impl.setdefault(run.get("impl"), []).append(run)
    for impl, runs in by_impl.items():
        doc = dict(config, impl=impl)
        # The sizes in bytes, as the programs parsed them.
        for k in ("threads", "read_reserve", "write_budget", "max_line", "tunnel_bytes",
                  "conns", "total", "frames", "frame_bytes"):
            doc[k] = next((r[k] for r in runs if r.get(k) is not None), None)
        ok = [r for r in runs if verified(r)]
        doc["runs_requested"] = len(runs)
        doc["runs_ok"] = len(ok)
        doc["runs_failed"] = len(runs) - len(ok)
        doc["checksum_ok"] = bool(ok) and len(ok) == len(runs)
        doc["median"] = {m: median(r.get(m) for r in ok) for m in METRICS}
        doc["runs"] = runs
        if impl in counted:
            doc["counting_pass"] = counted[impl]
        out = "%s/stream-%s-%s-%s-%s.json" % (out_dir, impl, doc.get("scenario"),
                                             doc.get("transport"), doc.get("timestamp"))
        save(out, doc)
        print("result: %s" % out)
    return 0


def read_list(path):
    cells = {}
    with open(path) as f:
        for line in f:
            t, s, c, p = line.split()
            doc = load(p)
            cells[(t, s, c, doc.get("impl"))] = doc
    return cells


def fmt(v, digits):
    return "n/a" if v is None else "%.*f" % (digits, v)


def ratio(a, b):
    return "n/a" if a is None or not b else "%.2f" % (a / b)


def cmd_matrix(list_path, table, dat_prefix, transports):
    cells = read_list(list_path)
    lines = []
    if cells:
        d = next(iter(cells.values()))
        lines.append(
            "Stream harness matrix, %s, %s cores, threads %s, conns %s, frames %s x %s B, "
            "tunnel %s B/conn, read reserve %s B, write budget %s B, %s run(s) x %ss per cell, "
            "medians; transports %s; pinned: %s; commit %s; kernel %s." % (
                d.get("timestamp", "?")[:8], d.get("nproc"), d.get("threads"), d.get("conns"),
                d.get("frames"), d.get("frame_bytes"), d.get("tunnel_bytes"),
                d.get("read_reserve"), d.get("write_budget"), d.get("runs_requested"),
                d.get("duration_s"), ",".join(transports), str(d.get("pinned")).lower(),
                d.get("git_commit"), d.get("kernel")))
        lines.append("")
    lines.append("| transport | scenario | completion | impl | MiB/s | service cores | service ns/B "
                 "| ns/B vs uv_copy | MiB/s vs uv_copy | p50 ms | p99 ms | p999 ms | vol. cs "
                 "| invol. cs | peak RSS MiB | RSS growth KiB/conn | spliced % of tunnel B "
                 "| runs ok |")
    lines.append("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:"
                 "|---:|")
    for t in transports:
        for s in SCENARIOS:
            for c in COMPLETIONS:
                base = cells.get((t, s, c, "uv_copy"), {}).get("median", {})
                for impl in IMPLS:
                    d = cells.get((t, s, c, impl))
                    if not d:
                        continue
                    m = d["median"]
                    rss, rss0 = m.get("peak_rss_kib"), m.get("rss_start_kib")
                    growth = None if rss is None or rss0 is None else (rss - rss0) / d["conns"]
                    tun, spl = m.get("proxy_tunnel_bytes"), m.get("proxy_spliced_bytes")
                    share = 100.0 * spl / tun if tun and spl is not None else None
                    lines.append("| %s |" % " | ".join([
                        t, s, c, impl, fmt(m.get("throughput_mib_s"), 1),
                        fmt(m.get("service_cpu_cores"), 2), fmt(m.get("service_ns_per_byte"), 2),
                        ratio(m.get("service_ns_per_byte"), base.get("service_ns_per_byte")),
                        ratio(m.get("throughput_mib_s"), base.get("throughput_mib_s")),
                        fmt(m.get("latency_p50_ms"), 1), fmt(m.get("latency_p99_ms"), 1),
                        fmt(m.get("latency_p999_ms"), 1), fmt(m.get("voluntary_ctxt_switches"), 0),
                        fmt(m.get("involuntary_ctxt_switches"), 0),
                        fmt(None if rss is None else rss / 1024, 1), fmt(growth, 1),
                        fmt(share, 1), "%s/%s" % (d["runs_ok"], d["runs_requested"])]))
    with open(table, "w") as f:
        f.write("\n".join(lines) + "\n")
    # gnuplot data: service ns/B, one row per completion mode, one column
    # per implementation, one file per transport and scenario.
    for t in transports:
        for s in SCENARIOS:
            with open("%s-%s-%s.dat" % (dat_prefix, t, s), "w") as f:
                f.write("completion %s\n" % " ".join(IMPLS))
                for c in COMPLETIONS:
                    row = [cells.get((t, s, c, i), {}).get("median", {}).get("service_ns_per_byte")
                           for i in IMPLS]
                    f.write("%s %s\n" % (c, " ".join("NaN" if v is None else repr(v) for v in row)))
    return 0


def cmd_check(list_path):
    failed = 0
    n = 0
    with open(list_path) as f:
        for line in f:
            n += 1
            path = line.split()[3]
            d = load(path)
            if d.get("checksum_ok") is not True:
                print("smoke: checksum failure in %s" % path, file=sys.stderr)
                failed = 1
            for k in METRICS:
                if d["median"].get(k) is None:
                    print("smoke: %s missing in %s" % (k, path), file=sys.stderr)
                    failed = 1
            for k in ("proxy_rusage_cpu_ns", "proxy_rusage_maxrss_kib",
                      "connections_completed", "bytes"):
                if not all(isinstance(r.get(k), (int, float)) for r in d["runs"]):
                    print("smoke: %s missing in %s" % (k, path), file=sys.stderr)
                    failed = 1
    print("smoke: %d result files checked" % n)
    return failed


def parse_strace(path):
    """{syscall: calls} from the summary table of strace -c."""
    calls = {}
    with open(path) as f:
        for line in f:
            fields = line.split()
            if len(fields) in (5, 6) and fields[0][0].isdigit() and fields[-1] != "total":
                calls[fields[-1]] = int(fields[3])
    return calls


def cmd_counts(run_path, strace_path, allocs_path):
    run = load(run_path)
    conns = run.get("connections_completed") or 0
    if not conns:
        print("counts: no connection completed in %s" % run_path, file=sys.stderr)
        return 1
    calls = parse_strace(strace_path)
    allocs = None
    with open(allocs_path) as f:
        for line in f:
            word, n, prog = line.split()
            if prog == "bh_stream_proxy":
                allocs = int(n)
    if allocs is None:
        print("counts: no allocation count of bh_stream_proxy in %s" % allocs_path,
              file=sys.stderr)
        return 1
    run["syscall_counts_per_conn"] = {k: round(v / conns, 2)
                                      for k, v in sorted(calls.items(), key=lambda kv: -kv[1])}
    run["syscalls_per_conn"] = sum(calls.values()) / conns
    run["allocs_per_conn"] = allocs / conns
    save(run_path, run)
    return 0


def cmd_churn(table, paths):
    docs = {}
    for p in paths:
        d = load(p)
        docs[d["impl"]] = d
    order = [i for i in IMPLS if i in docs]
    base_e = docs.get("epoll_copy", {}).get("median", {}).get("service_us_per_conn")
    base_u = docs.get("uv_copy", {}).get("median", {}).get("service_us_per_conn")
    d0 = docs[order[0]] if order else {}
    lines = ["Churn, %s: %s concurrent, %s connections per run, %s route frame(s) of %s B and "
             "a %s B tunnel each; %s run(s), medians; pinned: %s; commit %s; build %s." % (
                 str(d0.get("timestamp", "?"))[:8], d0.get("conns"), d0.get("total"),
                 d0.get("frames"), d0.get("frame_bytes"), d0.get("tunnel_bytes"),
                 d0.get("runs_requested"), str(d0.get("pinned")).lower(), d0.get("git_commit"),
                 d0.get("build_type")), "",
             "| impl | proxy CPU us/conn | vs epoll_copy | vs uv_copy | p99 ms "
             "| syscalls/conn | allocs/conn | runs ok |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    names = []
    for i in order:
        d = docs[i]
        m = d["median"]
        c = d.get("counting_pass", {})
        for k in c.get("syscall_counts_per_conn", {}):
            if k not in names:
                names.append(k)
        lines.append("| %s |" % " | ".join([
            i, fmt(m.get("service_us_per_conn"), 2), ratio(m.get("service_us_per_conn"), base_e),
            ratio(m.get("service_us_per_conn"), base_u), fmt(m.get("latency_p99_ms"), 2),
            fmt(c.get("syscalls_per_conn"), 1), fmt(c.get("allocs_per_conn"), 1),
            "%s/%s" % (d["runs_ok"], d["runs_requested"])]))
    if names:
        lines += ["", "System calls per connection by name (counting pass, all proxy threads):", "",
                  "| syscall | %s |" % " | ".join(order),
                  "|---|%s" % ("---:|" * len(order))]
        for n in names:
            per = [docs[i].get("counting_pass", {}).get("syscall_counts_per_conn", {}).get(n, 0)
                   for i in order]
            if all(v < 0.005 for v in per):
                continue  # start-up calls, spread over every connection
            lines.append("| %s | %s |" % (n, " | ".join(
                fmt(docs[i].get("counting_pass", {}).get("syscall_counts_per_conn", {}).get(n, 0), 2)
                for i in order)))
    with open(table, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def main(argv):
    cmd, args = argv[1], argv[2:]
    if cmd == "summary":
        return cmd_summary(args[0], args[1:])
    if cmd == "matrix":
        return cmd_matrix(args[0], args[1], args[2], args[3:])
    if cmd == "check":
        return cmd_check(args[0])
    if cmd == "counts":
        return cmd_counts(args[0], args[1], args[2])
    if cmd == "churn":
        return cmd_churn(args[0], args[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
