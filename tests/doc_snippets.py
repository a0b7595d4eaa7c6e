#!/usr/bin/env python3
"""doc_snippets.py - compiles every C snippet of the given Markdown files, so
the guide and the README cannot drift from the headers.

Each ```c block is compiled with -Werror. The HTML comment right before a
block says how:
  (none)                              the block is a translation unit (-c)
  <!-- snippet: context NAME -->      the block replaces the "/* SNIPPET */"
                                      line of docs/snippets/NAME.c (-c)
  <!-- snippet: part PROGRAM -->      the blocks with the same PROGRAM are
                                      concatenated in order into one program,
                                      compiled and linked with --link

Usage: doc_snippets.py --cc CC --out DIR [--cflags FLAGS] [--link ARGS]
                       [-I DIR]... FILE.md...
"""
import argparse
import os
import re
import shlex
import subprocess
import sys

FENCE = re.compile(r"^```(\w*)\s*$")
MARK = re.compile(r"^<!--\s*snippet:\s*(context|part)\s+(\S+)\s*-->\s*$")
WARNINGS = ["-std=c11", "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Wextra", "-Wpedantic",
            "-Werror", "-Wno-unused-function", "-Wno-unused-parameter"]


def blocks(path):
    """(line, language, mark, text) of every fenced block in path."""
    out = []
    lines = open(path).read().split("\n")
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        j = i - 1
        while j >= 0 and lines[j].strip() == "":
            j -= 1
        mark = MARK.match(lines[j]) if j >= 0 else None
        start = i + 1
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            i += 1
        out.append((start, m.group(1), mark.groups() if mark else None,
                    "\n".join(lines[start:i]) + "\n"))
        i += 1
    return out


def run(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return r.returncode, r.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cc", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--cflags", default="")
    ap.add_argument("--link", default="")
    ap.add_argument("--snippets", required=True, help="directory of the contexts")
    ap.add_argument("-I", dest="incs", action="append", default=[])
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    base = [a.cc] + shlex.split(a.cflags) + WARNINGS + ["-I" + d for d in a.incs]
    units, programs, failed = [], {}, 0
    for md in a.files:
        for line, lang, mark, text in blocks(md):
            if lang != "c":
                continue
            where = "%s:%d" % (md, line)
            # #line keeps the compiler's messages pointing into the Markdown.
            body = '#line %d "%s"\n%s' % (line, md, text)
            if mark and mark[0] == "part":
                programs.setdefault(mark[1], []).append(body)
                continue
            if mark:
                ctx = open(os.path.join(a.snippets, mark[1] + ".c")).read()
                if "/* SNIPPET */" not in ctx:
                    sys.exit("%s: context %s has no /* SNIPPET */ line" % (where, mark[1]))
                body = ctx.replace("/* SNIPPET */", body)
            # A block of only #include lines is still a translation unit.
            units.append((where, body + "\ntypedef int bh_snippet_unit;\n"))
    for n, (where, src) in enumerate(units):
        path = os.path.join(a.out, "snippet_%d.c" % n)
        with open(path, "w") as f:
            f.write(src)
        rc, log = run(base + ["-c", path, "-o", path + ".o"])
        print("%s %s" % ("ok  " if rc == 0 else "FAIL", where))
        if rc:
            print(log)
            failed += 1
    for name, parts in programs.items():
        path = os.path.join(a.out, name + ".c")
        with open(path, "w") as f:
            f.write("\n".join(parts))
        rc, log = run(base + [path, "-o", os.path.join(a.out, name)] + shlex.split(a.link))
        print("%s program %s (%d parts)" % ("ok  " if rc == 0 else "FAIL", name, len(parts)))
        if rc:
            print(log)
            failed += 1
    print("%d snippets and %d programs compiled, %d failed" % (len(units), len(programs), failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
