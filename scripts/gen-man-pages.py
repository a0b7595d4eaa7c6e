#!/usr/bin/env python3
"""gen-man-pages.py - section 3 man pages of the public API, from Doxygen XML.

One page per public function and one per public type (struct, enum,
typedef), named after it (bh_buf_append.3, bh_buf.3); none for struct fields,
enum values or files, so no page of this package can shadow another
package's ("man splice" still opens splice(2)). A typedef and the struct or
enum it names share one page; a function and the struct of the same name
(bh_queue_stats) share one page too. Each page holds the declaration's own
documentation: NAME (the brief), LIBRARY, SYNOPSIS (the #include line and
the prototype or definition), DESCRIPTION (the text, parameters, fields or
values), RETURN VALUE, VERSIONS (the @since tag) and SEE ALSO (the
functions and types the text refers to).

Usage:
  gen-man-pages.py --doxyfile BUILD/docs/Doxyfile --changelog CHANGELOG.md
                   --out DIR [--gzip]
runs Doxygen with the project's Doxyfile (XML only, into a temporary
folder; the `docs` target is the one that checks Doxygen's warnings) and
writes DIR/man3/NAME.3, or NAME.3.gz with --gzip (maximum compression, no
name or time stamp in the gzip header, so builds are reproducible).
--xml DIR reads existing Doxygen XML instead of running Doxygen.
Python 3 standard library only.
"""
import argparse
import gzip
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

PACKAGE = "libbytes_handoff"


def roff_escape(text):
    """Escapes text for roff: backslashes, and '-' as a real minus."""
    return text.replace("\\", "\\e").replace("-", "\\-")


class Doc:
    """Converts Doxygen description markup into roff lines."""

    def __init__(self, names):
        self.names = names  # names that have a page (for SEE ALSO)
        self.refs = set()

    def inline(self, e):
        """The text of an inline element and its children, escaped."""
        out = [roff_escape(e.text or "")]
        for c in e:
            out.append(self.inline_child(c))
            out.append(roff_escape(c.tail or ""))
        return "".join(out)

    def inline_child(self, c):
        tag = c.tag
        if tag in ("computeroutput", "bold"):
            return "\\fB" + self.inline(c) + "\\fR"
        if tag == "emphasis":
            return "\\fI" + self.inline(c) + "\\fR"
        if tag == "ref":
            name = re.sub(r"\(\)$", "", "".join(c.itertext()))
            if name in self.names:
                self.refs.add(name)
                return "\\fB" + self.inline(c) + "\\fR"
            return self.inline(c)
        if tag == "ulink":
            return self.inline(c) + " <" + roff_escape(c.get("url", "")) + ">"
        if tag == "sp":
            return " "
        if tag == "ndash":
            return "\\(en"
        if tag == "mdash":
            return "\\(em"
        if tag in ("lsquo", "rsquo"):
            return "'"
        if tag in ("ldquo", "rdquo"):
            return '"'
        if tag == "linebreak":
            return "\n.br\n"
        if tag in ("anchor",):
            return ""
        return self.inline(c)

    def blocks(self, desc, skip=()):
        """Roff lines for a <briefdescription>/<detaileddescription>; the
        simplesect kinds in skip and parameter lists are left out (the caller
        puts them in their own sections)."""
        lines = []
        for para in desc.findall("para"):
            lines += self.para(para, skip)
        return lines

    def para(self, para, skip):
        lines = []
        text = [roff_escape(para.text or "")]

        def flush():
            t = re.sub(r"[ \t\n]+", " ", "".join(text)).strip()
            if t:
                lines.append(".PP")
                lines.extend(fill(t))
            text.clear()

        for c in para:
            if c.tag in ("itemizedlist", "orderedlist"):
                flush()
                for i, item in enumerate(c.findall("listitem"), 1):
                    mark = "\\(bu" if c.tag == "itemizedlist" else "%d." % i
                    lines.append(".IP %s 3" % mark)
                    sub = []
                    for p in item.findall("para"):
                        sub += self.para(p, skip)
                    lines += [l for l in sub if l != ".PP"]
                lines.append(".PP")
            elif c.tag == "parameterlist" or (c.tag == "simplesect" and c.get("kind") in skip):
                flush()
            elif c.tag == "simplesect":
                flush()
                title = {"note": "Note:", "warning": "Warning:", "see": "See also:",
                         "attention": "Attention:", "pre": "Precondition:",
                         "post": "Postcondition:"}.get(c.get("kind"), "")
                sub = []
                for p in c.findall("para"):
                    sub += self.para(p, skip)
                if title and sub:
                    sub.insert(1, "\\fI" + title + "\\fR")
                lines += sub
            elif c.tag in ("programlisting", "verbatim"):
                flush()
                lines += [".PP", ".in +4n", ".EX"]
                if c.tag == "verbatim":
                    code = (c.text or "").strip("\n").split("\n")
                else:
                    code = ["".join(cl.itertext()) for cl in c.findall("codeline")]
                lines += [guard(roff_escape(l)) for l in code]
                lines += [".EE", ".in"]
            else:
                text.append(self.inline_child(c))
            text.append(roff_escape(c.tail or ""))
        flush()
        return lines

    def sect(self, desc, kind):
        """Roff lines of the simplesect KIND (return, since) in desc."""
        lines = []
        for s in desc.iter("simplesect"):
            if s.get("kind") == kind:
                for p in s.findall("para"):
                    lines += self.para(p, ())
        return lines

    def params(self, desc):
        """(name, roff lines) per documented parameter."""
        out = []
        for pl in desc.iter("parameterlist"):
            if pl.get("kind") != "param":
                continue
            for item in pl.findall("parameteritem"):
                names = ", ".join("".join(n.itertext()) for n in item.iter("parametername"))
                body = []
                for p in item.find("parameterdescription").findall("para"):
                    body += self.para(p, ())
                out.append((names, [l for l in body if l != ".PP"]))
        return out

    def text(self, desc):
        """Plain one-line text of a description (for NAME)."""
        if desc is None:
            return ""
        return re.sub(r"\s+", " ", "".join(desc.itertext())).strip()


def guard(line):
    """A text line that roff must not take for a request."""
    return "\\&" + line if line[:1] in (".", "'") else line


def fill(text, width=78):
    """Splits a paragraph into source lines (roff refills them)."""
    out, cur = [], ""
    for word in text.split(" "):
        if cur and len(cur) + 1 + len(word) > width:
            out.append(guard(cur))
            cur = word
        else:
            cur = cur + " " + word if cur else word
    if cur:
        out.append(guard(cur))
    return out


def lower_first(text):
    """'Binds a reader' -> 'binds a reader'; 'BH_OK when' stays."""
    word = text.split(" ", 1)[0]
    if word == "A" or (word[1:].isalpha() and word[1:].islower()):
        return text[:1].lower() + text[1:]
    return text


def xml_text(e):
    return re.sub(r"\s+", " ", "".join(e.itertext())).strip() if e is not None else ""


def c_decl(type_, name):
    """'type name' with the '*' bound to the name."""
    type_ = type_.strip()
    return type_ + name if type_.endswith("*") else type_ + " " + name


class Entity:
    """One page: a function, a type, or both when they share a name."""

    def __init__(self, name, header):
        self.name = name
        self.header = header
        self.func = None      # function memberdef
        self.typedef = None   # typedef memberdef
        self.enum = None      # enum memberdef
        self.struct = None    # struct compounddef


def load(xml_dir):
    """Entities by name from the Doxygen XML of the public headers."""
    entities = {}

    def ent(name, header):
        if name not in entities:
            entities[name] = Entity(name, header)
        return entities[name]

    index = ET.parse(os.path.join(xml_dir, "index.xml")).getroot()
    for comp in index.findall("compound"):
        kind = comp.get("kind")
        if kind not in ("file", "struct"):
            continue
        root = ET.parse(os.path.join(xml_dir, comp.get("refid") + ".xml")).getroot()
        cdef = root.find("compounddef")
        if kind == "struct":
            name = cdef.findtext("compoundname")
            if name.startswith("bh_"):
                ent(name, cdef.find("location").get("file")).struct = cdef
            continue
        for m in cdef.iter("memberdef"):
            name = m.findtext("name")
            if not name.startswith("bh_"):
                continue
            header = m.find("location").get("file")
            k = m.get("kind")
            if k == "function":
                ent(name, header).func = m
            elif k == "typedef":
                # typedef struct bh_x bh_x: the struct's page
                ent(name, header).typedef = m
            elif k == "enum":
                ent(name, header).enum = m
    return entities


def prototype(m):
    """SYNOPSIS lines of a function: a .BI request per line (bold text,
    italic parameter names)."""
    ret = xml_text(m.find("type"))
    ret = re.sub(r"\b(static|inline|BH_EXPORT)\b\s*", "", ret).strip()
    head = c_decl(ret, m.findtext("name")) + "("
    params = m.findall("param")
    parts = []  # (type, name, array suffix)
    if not params or (len(params) == 1 and xml_text(params[0].find("type")) == "void"
                      and params[0].find("declname") is None):
        return ['.B "%s(void);"' % roff_escape(head[:-1])]
    for p in params:
        t = xml_text(p.find("type"))
        t = t + ("" if t.endswith("*") else " ")
        parts.append((t, p.findtext("declname") or "", xml_text(p.find("array"))))
    # Each line alternates bold (C text) and italic (parameter names),
    # starting and ending with bold, as .BI wants.
    lines, segs, width = [], [head], len(head)
    indent = " " * len(head)
    for i, (t, n, arr) in enumerate(parts):
        last = i == len(parts) - 1
        end = arr + (");" if last else ",")
        piece = len(t) + len(n) + len(end) + 1
        if width + piece > 78 and i > 0:
            segs[-1] = segs[-1].rstrip()
            lines.append(segs)
            segs, width = [indent], len(indent)
        segs[-1] += t
        segs += [n, end + ("" if last else " ")]
        width += piece
    lines.append(segs)
    return [".BI " + " ".join('"%s"' % roff_escape(x) for x in segs) for segs in lines]


def typedef_line(m):
    """The typedef of a function pointer or a plain type, as C."""
    d = xml_text(m.find("definition"))
    d = re.sub(r"\(\*\s*", "(*", re.sub(r"\(\s*\*", " (*", d))
    d = re.sub(r"\)\s+\(", ")(", d).replace("  ", " ")
    return d + ";"


def struct_lines(s, tag, typedef):
    """The definition of a struct with its documented fields."""
    lines = ["%s%s %s {" % ("typedef " if typedef else "", tag, s.findtext("compoundname"))]
    for m in s.iter("memberdef"):
        if m.get("kind") != "variable":
            continue
        lines.append("    " + c_decl(xml_text(m.find("type")), m.findtext("name"))
                     + xml_text(m.find("argsstring")) + ";")
    lines.append("}%s;" % (" " + typedef if typedef else ""))
    return lines


def enum_lines(m, typedef):
    lines = ["%senum %s {" % ("typedef " if typedef else "", m.findtext("name"))]
    vals = m.findall("enumvalue")
    for i, v in enumerate(vals):
        init = xml_text(v.find("initializer"))
        lines.append("    " + v.findtext("name") + (" " + init if init else "")
                     + ("," if i < len(vals) - 1 else ""))
    lines.append("}%s;" % (" " + m.findtext("name") if typedef else ""))
    return lines


def fields(doc, items):
    """A .TP list of fields or enum values with their descriptions."""
    lines = []
    for name, m in items:
        body = doc.blocks(m.find("briefdescription")) + doc.blocks(m.find("detaileddescription"))
        lines += [".TP", "\\fB%s\\fR" % roff_escape(name)]
        lines += [l for l in body if l != ".PP"]
    return lines


def page(e, doc, version, date):
    """The roff text of entity e's page."""
    doc.refs = set()
    lib = "bytes_handoff_uv" if e.header.startswith("bytes_handoff/uv") else "bytes_handoff"
    # The parts documenting this name, the function first.
    descs = [x for x in (e.func, e.typedef, e.enum) if x is not None]
    if e.struct is not None:
        descs.append(e.struct)
    brief = ""
    for d in descs:
        brief = doc.text(d.find("briefdescription"))
        if brief:
            break
    brief = brief.rstrip(".").rstrip(":")
    synopsis = []
    c_lines = []
    if e.struct is not None:
        td = e.typedef is not None and re.search(r"\bstruct\s+%s\b" % e.name,
                                                  xml_text(e.typedef.find("definition")))
        c_lines += struct_lines(e.struct, "struct", e.name if td else None)
    elif e.enum is not None:
        c_lines += enum_lines(e.enum, e.typedef is not None)
    elif e.typedef is not None:
        c_lines.append(typedef_line(e.typedef))
    if c_lines:
        synopsis += [".EX"] + [guard(roff_escape(l)) for l in c_lines] + [".EE"]
    if e.func is not None:
        if c_lines:
            synopsis.append(".PP")
        synopsis += prototype(e.func)

    body = []
    seen = []
    returns = []
    since = []
    for d in descs:
        det = d.find("detaileddescription")
        skip = ("return", "since")
        if d is e.struct and e.func is not None:
            body += [".SS struct " + roff_escape(e.name)]
        text = doc.blocks(d.find("briefdescription"), skip) + doc.blocks(det, skip)
        if text not in seen:  # a typedef and its struct may share one comment
            seen.append(text)
            body += text
        ps = doc.params(det)
        if ps:
            body += [".PP", "Parameters:"]
            for n, lines in ps:
                body += [".TP", "\\fI%s\\fR" % roff_escape(n)] + lines
        returns += doc.sect(det, "return")
        for l in doc.sect(det, "since"):
            if l != ".PP" and l not in since:
                since.append(l)
        if d is e.struct:
            vars_ = [(m.findtext("name"), m) for m in d.iter("memberdef")
                     if m.get("kind") == "variable"]
            if vars_:
                body += [".PP", "Fields:"] + fields(doc, vars_)
        if d is e.enum:
            vals = [(v.findtext("name"), v) for v in d.findall("enumvalue")]
            body += [".PP", "Values:"] + fields(doc, vals)

    out = [
        '.\\" Generated by scripts/gen-man-pages.py from the public headers; do not edit.',
        '.TH %s 3 %s "%s %s" "%s"' % (e.name.upper(), date, PACKAGE,
                                       version, PACKAGE + " manual"),
        ".SH NAME",
        "%s \\- %s" % (roff_escape(e.name), roff_escape(lower_first(brief))),
        ".SH LIBRARY",
        "lib%s (\\fI\\-l%s\\fR, \\fIpkg\\-config %s\\fR)" % (roff_escape(lib), roff_escape(lib),
                                                           roff_escape(lib)),
        ".SH SYNOPSIS",
        ".nf",
        ".B #include <%s>" % e.header,
        ".fi",
        ".PP",
        ".nf",
    ] + synopsis + [".fi", ".SH DESCRIPTION"] + body
    if returns:
        out += [".SH RETURN VALUE"] + [l for l in returns if l != ".PP"]
    if since:
        out += [".SH VERSIONS", "Since " + " ".join(since) + "."
                if not since[0].lower().startswith("since") else " ".join(since)]
    see = sorted(r for r in doc.refs if r != e.name)
    if see:
        out += [".SH SEE ALSO"]
        out += [".BR %s (3)%s" % (roff_escape(r), "," if i < len(see) - 1 else "")
                for i, r in enumerate(see)]
    # Drop empty paragraphs (.PP followed by another paragraph request).
    clean = []
    for l in out:
        if l in (".PP", ".TP", ".SH DESCRIPTION") and clean and clean[-1] == ".PP":
            clean.pop()
        clean.append(l)
    text = "\n".join(clean) + "\n"
    return text.replace(".SH DESCRIPTION\n.PP\n", ".SH DESCRIPTION\n")


def run_doxygen(doxyfile, tmp):
    """Runs Doxygen with doxyfile, XML only, into tmp; returns the XML dir."""
    conf = os.path.join(tmp, "Doxyfile")
    with open(conf, "w") as f:
        f.write("@INCLUDE = %s\n" % doxyfile)
        f.write("OUTPUT_DIRECTORY = %s\nGENERATE_HTML = NO\nGENERATE_MAN = NO\n" % tmp)
        f.write("GENERATE_LATEX = NO\nGENERATE_XML = YES\nXML_OUTPUT = xml\n")
        # Warnings are the `docs` target's business (it runs this Doxyfile
        # with HTML output and fails on any).
        f.write("XML_PROGRAMLISTING = NO\nWARNINGS = NO\nWARN_AS_ERROR = NO\nQUIET = YES\n")
        f.write("WARN_IF_UNDOCUMENTED = NO\nWARN_IF_INCOMPLETE_DOC = NO\nWARN_NO_PARAMDOC = NO\n")
        # Headers only: the Markdown pages have no page of their own here.
        f.write("FILE_PATTERNS = *.h\nUSE_MDFILE_AS_MAINPAGE =\n")
    r = subprocess.run(["doxygen", conf], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True)
    if r.returncode != 0:
        sys.exit("doxygen failed (%d):\n%s" % (r.returncode, r.stderr))
    return os.path.join(tmp, "xml")


def release_date(changelog):
    """Date of the newest released version in the changelog."""
    with open(changelog) as f:
        m = re.search(r"^## \[?[0-9][^\]\s]*\]? - (\d{4}-\d\d-\d\d)", f.read(), re.M)
    return m.group(1) if m else ""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--doxyfile", help="the project's configured Doxyfile")
    src.add_argument("--xml", help="existing Doxygen XML folder")
    ap.add_argument("--changelog", required=True, help="CHANGELOG.md (the release date)")
    ap.add_argument("--version", required=True, help="the package version")
    ap.add_argument("--out", required=True, help="writes OUT/man3/NAME.3")
    ap.add_argument("--gzip", action="store_true", help="write NAME.3.gz instead")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        xml_dir = args.xml or run_doxygen(os.path.abspath(args.doxyfile), tmp)
        entities = load(xml_dir)
    doc = Doc(set(entities))
    date = release_date(args.changelog)
    man3 = os.path.join(args.out, "man3")
    os.makedirs(man3, exist_ok=True)
    for old in os.listdir(man3):
        if re.match(r"bh_\w+\.3(\.gz)?$", old):
            os.remove(os.path.join(man3, old))
    for name in sorted(entities):
        text = page(entities[name], doc, args.version, date).encode()
        if args.gzip:
            path = os.path.join(man3, name + ".3.gz")
            with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                                      compresslevel=9, mtime=0) as gz:
                gz.write(text)
        else:
            path = os.path.join(man3, name + ".3")
            with open(path, "wb") as f:
                f.write(text)
    print("%d pages in %s" % (len(entities), man3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
