#!/usr/bin/env python3
"""check_man_pages.py - the ctest man_page_names.

Generates the man pages (scripts/gen-man-pages.py, uncompressed, into a
temporary folder) and checks:
  - every public function and type has a page: the names come from the
    headers themselves (a regular expression over include/, not Doxygen's
    view) and from the exported bh_ symbols of the shared libraries (nm -D);
  - every page is named bh_*.3 and names one of those, so no page is left for
    a struct field, an enum value or a file, and none shadows another
    package's page (`man splice` still opens splice(2));
  - each page has NAME, SYNOPSIS (with its #include line), DESCRIPTION and
    VERSIONS ("Since 0.x"), and `man --warnings -l` renders it at 80 columns
    without a single warning.
Exit 77 (skipped) without doxygen or man.

Usage: check_man_pages.py SOURCE_DIR DOXYFILE VERSION LIB.so...
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile


def header_names(include_dir):
    """Public functions and types declared in the headers."""
    names = set()
    for root, _, files in os.walk(include_dir):
        for f in files:
            if not f.endswith(".h"):
                continue
            text = open(os.path.join(root, f)).read()
            text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)  # comments
            text = re.sub(r"^\s*#.*$", " ", text, flags=re.M)   # macros
            # functions: exported or static inline declarations
            for m in re.finditer(r"\b(?:BH_EXPORT|static\s+inline)\b[^;{()]*?\b(bh_\w+)\s*\(", text):
                names.add(m.group(1))
            # function pointer typedefs
            names.update(re.findall(r"typedef[^;]*?\(\s*\*\s*(bh_\w+)\s*\)", text))
            # typedef ... NAME;  (also after a struct/enum body)
            names.update(re.findall(r"\}\s*(bh_\w+)\s*;", text))
            names.update(re.findall(r"typedef\s+(?:struct|enum)\s+\w+\s+(bh_\w+)\s*;", text))
            # struct/enum definitions
            names.update(re.findall(r"\b(?:struct|enum)\s+(bh_\w+)\s*\{", text))
    return names


def exported(lib):
    out = subprocess.run(["nm", "-D", "--defined-only", lib], check=True,
                         capture_output=True, text=True).stdout
    return {l.split()[-1] for l in out.splitlines() if re.search(r" [TW] bh_\w+$", l)}


def main():
    src, doxyfile, version, libs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    for tool in ("doxygen", "man"):
        if not shutil.which(tool):
            print("skipped: %s not found (apt install %s)" % (tool, "man-db" if tool == "man" else tool))
            return 77
    if not os.path.exists(doxyfile):
        print("skipped: %s not configured (doxygen was not found at configure time)" % doxyfile)
        return 77
    want = header_names(os.path.join(src, "include"))
    for lib in libs:
        missing = exported(lib) - want
        if missing:
            print("exported from %s but not found in the headers: %s" % (lib, sorted(missing)))
            return 1
    errors = []
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, os.path.join(src, "scripts", "gen-man-pages.py"),
                        "--doxyfile", doxyfile, "--changelog", os.path.join(src, "CHANGELOG.md"),
                        "--version", version, "--out", tmp], check=True)
        man3 = os.path.join(tmp, "man3")
        pages = sorted(os.listdir(man3))
        names = set()
        for p in pages:
            m = re.match(r"(bh_\w+)\.3$", p)
            if not m:
                errors.append("page not named bh_*.3: %s" % p)
                continue
            names.add(m.group(1))
        for n in sorted(want - names):
            errors.append("no page for %s" % n)
        for n in sorted(names - want):
            errors.append("page %s.3 names no public function or type (a field?)" % n)
        env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8", MAN_KEEP_FORMATTING="")
        for p in pages:
            path = os.path.join(man3, p)
            text = open(path).read()
            for sect in (".SH NAME", ".SH SYNOPSIS", ".SH DESCRIPTION", ".SH VERSIONS"):
                if sect not in text:
                    errors.append("%s: no %s" % (p, sect))
            if not re.search(r"^\.B #include <bytes_handoff[/.\w]*\.h>$", text, re.M):
                errors.append("%s: no #include line" % p)
            if not re.search(r"^Since 0\.\d+\.$", text, re.M):
                errors.append("%s: no 'Since 0.x.' line" % p)
            r = subprocess.run(["man", "--warnings", "-l", path], env=env,
                               capture_output=True, text=True)
            if r.returncode != 0 or r.stderr.strip():
                errors.append("%s: man --warnings: %s" % (p, r.stderr.strip() or r.returncode))
    for e in errors:
        print(e)
    print("%d pages, %d public functions and types, %d problems"
          % (len(pages), len(want), len(errors)))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
