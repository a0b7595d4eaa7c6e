#!/usr/bin/env python3
"""matches_guide.py - the guide's line-router walk-through shows exactly the
code of examples/line_router/main.c: the "part line_router" snippets of
docs/guide.md, joined by blank lines, are that file without its header
comment.

Usage: matches_guide.py docs/guide.md examples/line_router/main.c
"""
import difflib
import re
import sys

guide, program = sys.argv[1], sys.argv[2]
parts = re.findall(r"<!-- snippet: part line_router -->\s*\n```c\n(.*?)```", open(guide).read(),
                   re.S)
shown = "\n".join(parts)
code = open(program).read()
code = code[code.index("*/\n") + 3:]
if not parts or shown != code:
    sys.stdout.writelines(difflib.unified_diff(shown.splitlines(True), code.splitlines(True),
                                               guide + " (parts)", program))
    print("FAIL: the guide's line_router parts differ from %s" % program)
    sys.exit(1)
print("guide shows %s (%d parts, %d lines)" % (program, len(parts), code.count("\n")))
