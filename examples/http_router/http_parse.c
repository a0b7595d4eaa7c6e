/* http_parse.c - strict HTTP/1.1 head scanning and parsing for http_router
 * (see http_parse.h; the chunked body walk is in http_chunked.c). Grammar
 * from RFC 9112 and RFC 9110 section 5 (fields): field-name is a token and
 * the colon follows it at once; a value holds VCHAR, obs-text, SP and HTAB
 * only; lines end in CRLF. */
#include "http_parse.h"

#include <string.h>

/* tchar (RFC 9110 section 5.6.2). */
static int is_tchar(uint8_t c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* A byte of a field value (VCHAR, obs-text, SP, HTAB). */
static int is_vchar_ws(uint8_t c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

static int lower(uint8_t c) { return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c; }

/* Case-insensitive compare of p[0..n) with the lower-case literal s. */
static int ieq(const uint8_t *p, size_t n, const char *s)
{
    if (strlen(s) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower(p[i]) != (uint8_t)s[i])
            return 0;
    return 1;
}

void hp_scan_init(hp_scan *s) { memset(s, 0, sizeof *s); }

size_t hp_leading_crlf(const uint8_t *p, size_t len)
{
    size_t n = 0;
    while (n + 1 < len && p[n] == '\r' && p[n + 1] == '\n')
        n += 2;
    return n;
}

int hp_scan_head(hp_scan *s, const uint8_t *p, size_t len, const hp_limits *lim,
                 size_t *head_len)
{
    while (s->pos < len) {
        const uint8_t *q = memchr(p + s->pos, '\n', len - s->pos);
        if (!q) {
            s->pos = len;
            break;
        }
        size_t i = (size_t)(q - p);
        /* Limits first: a scan of fewer bytes would have stopped there. */
        size_t line_len = i + 1 - s->line_start;
        if (s->lines == 0 && line_len > lim->max_line)
            return HP_E414;
        if (i + 1 > lim->max_head)
            return HP_E431;
        if (i == 0 || p[i - 1] != '\r' || i - 1 < s->line_start)
            return HP_E400;
        if (line_len == 2) {
            if (s->lines == 0)
                return HP_E400;
            *head_len = i + 1;
            return HP_DONE;
        }
        s->lines++;
        s->line_start = s->pos = i + 1;
    }
    if (s->lines == 0 && len - s->line_start >= lim->max_line)
        return HP_E414;
    if (len >= lim->max_head)
        return HP_E431;
    return HP_MORE;
}

/* "HTTP/1.x" at p: the minor version, or -1 (not HTTP/1), or -2 (another
 * HTTP version). */
static int version(const uint8_t *p, size_t n)
{
    if (n != 8 || memcmp(p, "HTTP/", 5) != 0 || p[6] != '.' || p[5] < '0' || p[5] > '9' ||
        p[7] < '0' || p[7] > '9')
        return -1;
    if (p[5] != '1' || p[7] > '1')
        return -2;
    return p[7] - '0';
}

static const struct {
    const char *name;
    int kind;
} methods[] = {{"GET", HP_M_GET},         {"HEAD", HP_M_HEAD},     {"CONNECT", HP_M_CONNECT},
               {"OPTIONS", HP_M_OPTIONS}, {"PUT", HP_M_PUT},       {"DELETE", HP_M_DELETE},
               {"TRACE", HP_M_TRACE}};

int hp_idempotent(int k)
{
    return k == HP_M_GET || k == HP_M_HEAD || k == HP_M_OPTIONS || k == HP_M_PUT ||
           k == HP_M_DELETE || k == HP_M_TRACE;
}

/* The host part of an authority at p[off..off+n) (userinfo refused, port
 * dropped) into *host; 0, or -1 when it is not a plain host[:port]. */
static int authority_host(const uint8_t *p, size_t off, size_t n, hp_span *host)
{
    size_t end = n;
    if (n > 0 && p[off] == '[') {
        const uint8_t *rb = memchr(p + off, ']', n);
        if (!rb)
            return -1;
        end = (size_t)(rb - (p + off)) + 1;
        if (end < n && p[off + end] != ':')
            return -1;
    } else {
        const uint8_t *colon = memchr(p + off, ':', n);
        if (colon)
            end = (size_t)(colon - (p + off));
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[off + i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 (c != 0 && strchr("-._~!$&'()*+,;=%:[]", c) != NULL);
        if (!ok)
            return -1;
    }
    for (size_t i = end + 1; i < n; i++)
        if (p[off + i] < '0' || p[off + i] > '9')
            return -1;
    host->off = off;
    host->len = end;
    return 0;
}

/* Request line p[0..n) (CRLF excluded). */
static int request_line(const uint8_t *p, size_t n, hp_msg *m)
{
    size_t i = 0;
    while (i < n && is_tchar(p[i]))
        i++;
    if (i == 0 || i >= n || p[i] != ' ')
        return HP_E400;
    m->method = (hp_span){0, i};
    m->method_kind = HP_M_OTHER;
    for (size_t k = 0; k < sizeof methods / sizeof methods[0]; k++)
        if (strlen(methods[k].name) == i && memcmp(p, methods[k].name, i) == 0)
            m->method_kind = methods[k].kind;
    size_t t = ++i;
    while (i < n && p[i] > 0x20 && p[i] < 0x7f)
        i++;
    if (i == t || i >= n || p[i] != ' ')
        return HP_E400;
    m->target = (hp_span){t, i - t};
    int v = version(p + i + 1, n - i - 1);
    if (v == -1)
        return HP_E400;
    if (v == -2)
        return HP_E505;
    m->minor = v;
    const uint8_t *tp = p + t;
    size_t tn = i - t;
    if (m->method_kind == HP_M_CONNECT) /* authority-form */
        return authority_host(p, t, tn, &m->host) == 0 && m->host.len > 0 ? HP_DONE : HP_E400;
    if (tp[0] == '/') {
        m->path = m->target;
        return HP_DONE;
    }
    if (tn == 1 && tp[0] == '*')
        return m->method_kind == HP_M_OPTIONS ? HP_DONE : HP_E400;
    size_t scheme = 0;
    if (tn > 7 && ieq(tp, 7, "http://"))
        scheme = 7;
    else if (tn > 8 && ieq(tp, 8, "https://"))
        scheme = 8;
    if (!scheme)
        return HP_E400;
    size_t a = t + scheme, e = a;
    while (e < i && p[e] != '/' && p[e] != '?')
        e++;
    if (e == a || authority_host(p, a, e - a, &m->host) != 0 || m->host.len == 0)
        return HP_E400;
    m->path = (hp_span){e, i - e};
    return HP_DONE;
}

/* OWS-trimmed, comma-separated list elements of v[0..n): calls each(elem)
 * for every non-empty one; stops at its first nonzero return. */
typedef int (*elem_fn)(const uint8_t *e, size_t n, hp_msg *m, void *arg);
static int each_elem(const uint8_t *v, size_t n, elem_fn fn, hp_msg *m, void *arg)
{
    size_t i = 0;
    while (i <= n) {
        size_t j = i;
        while (j < n && v[j] != ',')
            j++;
        size_t a = i, b = j;
        while (a < b && (v[a] == ' ' || v[a] == '\t'))
            a++;
        while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t'))
            b--;
        if (b > a) {
            int rc = fn(v + a, b - a, m, arg);
            if (rc)
                return rc;
        }
        i = j + 1;
    }
    return 0;
}

/* Per-message field facts being collected. */
typedef struct fields {
    int has_cl, has_te, te_chunked_last, te_chunked_before;
    int line_elems; /* list elements of the current field line */
    int bad;
} fields;

static int cl_elem(const uint8_t *e, size_t n, hp_msg *m, void *arg)
{
    fields *f = arg;
    uint64_t v = 0;
    f->line_elems++;
    for (size_t i = 0; i < n; i++) {
        if (e[i] < '0' || e[i] > '9' || v > (UINT64_MAX >> 4) / 10)
            return 1;
        v = v * 10 + (uint64_t)(e[i] - '0');
    }
    if (f->has_cl && v != m->content_length)
        return 1;
    f->has_cl = 1;
    m->content_length = v;
    return 0;
}

static int te_elem(const uint8_t *e, size_t n, hp_msg *m, void *arg)
{
    (void)m;
    fields *f = arg;
    size_t k = 0;
    while (k < n && is_tchar(e[k]))
        k++;
    if (k == 0 || (k < n && e[k] != ';' && e[k] != ' ' && e[k] != '\t'))
        return 1;
    if (f->te_chunked_last)
        f->te_chunked_before = 1; /* chunked was not the last coding */
    f->te_chunked_last = ieq(e, k, "chunked");
    f->has_te = 1;
    return 0;
}

static int conn_elem(const uint8_t *e, size_t n, hp_msg *m, void *arg)
{
    (void)arg;
    if (ieq(e, n, "close"))
        m->conn |= HP_CONN_CLOSE;
    else if (ieq(e, n, "keep-alive"))
        m->conn |= HP_CONN_KEEP_ALIVE;
    else if (ieq(e, n, "upgrade"))
        m->conn |= HP_CONN_UPGRADE;
    return 0;
}

/* One field line p[0..n) (CRLF excluded) at offset off of the head. */
static int field_line(const uint8_t *head, size_t off, size_t n, hp_msg *m, fields *f,
                      int request)
{
    const uint8_t *p = head + off;
    size_t k = 0;
    while (k < n && is_tchar(p[k]))
        k++;
    if (k == 0 || k >= n || p[k] != ':') /* obs-fold, space before colon, bad name */
        return HP_E400;
    size_t a = k + 1, b = n;
    for (size_t i = a; i < n; i++)
        if (!is_vchar_ws(p[i]))
            return HP_E400;
    while (a < b && (p[a] == ' ' || p[a] == '\t'))
        a++;
    while (b > a && (p[b - 1] == ' ' || p[b - 1] == '\t'))
        b--;
    const uint8_t *v = p + a;
    size_t vn = b - a;
    if (ieq(p, k, "content-length")) {
        f->line_elems = 0; /* "Content-Length: ," has no length: refused */
        if (vn == 0 || each_elem(v, vn, cl_elem, m, f) || f->line_elems == 0)
            return HP_E400;
    } else if (ieq(p, k, "transfer-encoding")) {
        if (vn == 0 || each_elem(v, vn, te_elem, m, f) || !f->has_te)
            return HP_E400;
    } else if (ieq(p, k, "connection")) {
        each_elem(v, vn, conn_elem, m, f);
        m->conn_fields++;
        m->conn_line = (hp_span){off, n + 2};
        m->conn_only_close = ieq(v, vn, "close");
    } else if (ieq(p, k, "upgrade")) {
        m->has_upgrade = 1;
    } else if (request && ieq(p, k, "host")) {
        hp_span h;
        if (m->has_host || authority_host(head, off + a, vn, &h) != 0)
            return HP_E400;
        m->has_host = 1;
        if (m->host.len == 0 && m->path.len > 0 && m->path.off == m->target.off)
            m->host = h; /* origin-form: route by Host */
        else if (m->host.len == 0 && m->method_kind == HP_M_OPTIONS && m->path.len == 0)
            m->host = h; /* "OPTIONS *" */
    } else if (request && ieq(p, k, "expect")) {
        m->expect_continue = ieq(v, vn, "100-continue");
    }
    return HP_DONE;
}

/* The field lines of head[start..head_len - 2). */
static int field_lines(const uint8_t *head, size_t start, size_t head_len, hp_msg *m, fields *f,
                       int request)
{
    size_t off = start;
    while (off + 2 < head_len) {
        const uint8_t *cr = memchr(head + off, '\r', head_len - off);
        if (!cr || cr[1] != '\n')
            return HP_E400; /* bare CR */
        size_t n = (size_t)(cr - (head + off));
        int rc = field_line(head, off, n, m, f, request);
        if (rc != HP_DONE)
            return rc;
        off += n + 2;
    }
    if (m->conn_fields != 1) { /* none, or several: no line to point at */
        m->conn_line = (hp_span){0, 0};
        m->conn_only_close = 0;
    }
    return HP_DONE;
}

/* The end of the first line of head (index of its CR), or 0 (bare CR). */
static size_t first_line_end(const uint8_t *head, size_t head_len)
{
    const uint8_t *cr = memchr(head, '\r', head_len);
    return cr && cr[1] == '\n' ? (size_t)(cr - head) : 0;
}

int hp_parse_request(const uint8_t *p, size_t head_len, hp_msg *m)
{
    memset(m, 0, sizeof *m);
    m->head_len = head_len;
    size_t le = first_line_end(p, head_len);
    if (le == 0)
        return HP_E400;
    int rc = request_line(p, le, m);
    if (rc != HP_DONE)
        return rc;
    fields f = {0};
    rc = field_lines(p, le + 2, head_len, m, &f, 1);
    if (rc != HP_DONE)
        return rc;
    if (m->minor == 1 && !m->has_host)
        return HP_E400;
    if (f.has_te) {
        if (f.has_cl || m->minor == 0 || !f.te_chunked_last || f.te_chunked_before)
            return HP_E400;
        m->framing = HP_BODY_CHUNKED;
    } else if (f.has_cl && m->content_length > 0) {
        m->framing = HP_BODY_LENGTH;
    }
    return HP_DONE;
}

int hp_parse_response(const uint8_t *p, size_t head_len, int method_kind, hp_msg *m)
{
    memset(m, 0, sizeof *m);
    m->head_len = head_len;
    size_t le = first_line_end(p, head_len);
    if (le < 12)
        return HP_E400;
    int v = version(p, 8);
    if (v < 0 || p[8] != ' ')
        return HP_E400;
    m->minor = v;
    for (int i = 9; i < 12; i++)
        if (p[i] < '0' || p[i] > '9')
            return HP_E400;
    m->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    if (m->status < 100 || (le > 12 && p[12] != ' '))
        return HP_E400;
    for (size_t i = 12; i < le; i++)
        if (!is_vchar_ws(p[i]))
            return HP_E400;
    fields f = {0};
    int rc = field_lines(p, le + 2, head_len, m, &f, 0);
    if (rc != HP_DONE)
        return rc;
    if (f.has_te && (f.has_cl || f.te_chunked_before))
        return HP_E400;
    if (m->status == 101 || (method_kind == HP_M_CONNECT && m->status / 100 == 2))
        m->framing = HP_BODY_TUNNEL;
    else if (m->status < 200 || m->status == 204 || m->status == 304 ||
             method_kind == HP_M_HEAD)
        m->framing = HP_BODY_NONE;
    else if (f.has_te)
        m->framing = f.te_chunked_last ? HP_BODY_CHUNKED : HP_BODY_CLOSE;
    else if (f.has_cl)
        m->framing = m->content_length ? HP_BODY_LENGTH : HP_BODY_NONE;
    else
        m->framing = HP_BODY_CLOSE;
    return HP_DONE;
}
