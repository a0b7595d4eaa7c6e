/* fuzz_http.c - libFuzzer target for http_router's strict HTTP/1.1 parser
 * (examples/http_router/http_parse.c, http_chunked.c).
 *
 * Input: one byte of settings (bit 0-1: request head, response head or a
 * chunked body alone; bits 2-4: the head limit, 64 B to 16 KiB; bits 5-7: the
 * request method a response answers), then the bytes a peer sends. Heads
 * are scanned whole, through a bh_buf in fragments whose sizes come from a
 * generator seeded by the input, and byte by byte; a complete head is parsed
 * and the chunked body after it (if any) walked whole and in fragments.
 *
 * Invariants: every way of feeding gives the same result and the same head
 * length (fragmentation independence); a head accepted is within the limit
 * and ends in CRLF CRLF; every span lies inside the head; no accepted
 * request carries both Content-Length and Transfer-Encoding, and a chunked
 * one names chunked last; a chunked walk uses at most the bytes given and
 * reports the same end however it is fragmented; nothing leaks. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bytes_handoff.h>

#include "fuzz_support.h"
#include "http_parse.h"

static uint32_t next_frag(uint32_t *x)
{
    *x = *x * 1103515245u + 12345u;
    return 1 + (*x >> 16) % ((*x & 1) ? 8 : 300);
}

FUZZ_NO_COVERAGE static int scan_fragmented(const uint8_t *d, size_t n, const hp_limits *lim,
                                            size_t *head_len)
{
    bh_buf buf;
    CHECK(bh_buf_init(&buf, n ? n : 1) == BH_OK);
    hp_scan sc;
    hp_scan_init(&sc);
    uint32_t x = 2166136261u ^ (uint32_t)n;
    int rc = HP_MORE;
    size_t off = 0;
    while (off < n && rc == HP_MORE) {
        size_t k = next_frag(&x);
        if (k > n - off)
            k = n - off;
        CHECK(bh_buf_append(&buf, d + off, k) == BH_OK);
        off += k;
        rc = hp_scan_head(&sc, bh_buf_data(&buf), bh_buf_len(&buf), lim, head_len);
    }
    bh_buf_free(&buf);
    return rc;
}

FUZZ_NO_COVERAGE static int scan_bytewise(const uint8_t *d, size_t n, const hp_limits *lim,
                                          size_t *head_len)
{
    hp_scan sc;
    hp_scan_init(&sc);
    int rc = HP_MORE;
    for (size_t k = 1; k <= n && rc == HP_MORE; k++)
        rc = hp_scan_head(&sc, d, k, lim, head_len);
    return rc;
}

/* Whether a field line of head names `name` (case-insensitive). */
FUZZ_NO_COVERAGE static int has_field(const uint8_t *h, size_t n, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i + 2 + len < n; i++) {
        if (h[i] != '\r' || h[i + 1] != '\n')
            continue;
        size_t k = 0;
        while (k < len && (h[i + 2 + k] | 0x20) == name[k])
            k++;
        if (k == len && h[i + 2 + len] == ':')
            return 1;
    }
    return 0;
}

FUZZ_NO_COVERAGE static void check_span(hp_span s, size_t head_len)
{
    CHECK(s.off <= head_len && s.len <= head_len - s.off);
}

FUZZ_NO_COVERAGE static void check_chunked(const uint8_t *d, size_t n)
{
    hp_chunked c;
    size_t used = 0, u = 0, total = 0;
    hp_chunked_init(&c);
    int whole = hp_chunked_feed(&c, d, n, &used);
    CHECK(used <= n);
    CHECK(whole == HP_MORE || whole == HP_DONE || whole == HP_E400);
    if (whole == HP_MORE)
        CHECK(used == n);
    hp_chunked_init(&c);
    uint32_t x = 0x9e3779b9u ^ (uint32_t)n;
    int rc = HP_MORE;
    for (size_t off = 0; off < n && rc == HP_MORE;) {
        size_t k = next_frag(&x);
        if (k > n - off)
            k = n - off;
        rc = hp_chunked_feed(&c, d + off, k, &u);
        CHECK(u <= k);
        total += u;
        off += k;
    }
    CHECK(rc == whole);
    CHECK(total == used);
}

FUZZ_NO_COVERAGE static void check_head(const uint8_t *d, size_t n, int response, size_t max,
                                        int method)
{
    hp_limits lim = {.max_head = max, .max_line = response ? max : max / 2};
    size_t whole_len = 0, frag_len = 0, byte_len = 0;
    hp_scan sc;
    hp_scan_init(&sc);
    int whole = hp_scan_head(&sc, d, n, &lim, &whole_len);
    CHECK(scan_fragmented(d, n, &lim, &frag_len) == whole);
    CHECK(scan_bytewise(d, n, &lim, &byte_len) == whole);
    if (whole != HP_DONE)
        return;
    CHECK(frag_len == whole_len && byte_len == whole_len);
    CHECK(whole_len <= max && whole_len >= 4 && whole_len <= n);
    CHECK(memcmp(d + whole_len - 4, "\r\n\r\n", 4) == 0);
    hp_msg m;
    int rc = response ? hp_parse_response(d, whole_len, method, &m)
                      : hp_parse_request(d, whole_len, &m);
    if (rc != HP_DONE)
        return;
    CHECK(m.head_len == whole_len);
    check_span(m.method, whole_len);
    check_span(m.target, whole_len);
    check_span(m.path, whole_len);
    check_span(m.host, whole_len);
    check_span(m.conn_line, whole_len);
    CHECK(m.conn_line.len == 0 || (m.conn_fields == 1 && m.conn_line.off > 0 &&
                                   m.conn_line.off + m.conn_line.len <= whole_len - 2 &&
                                   memcmp(d + m.conn_line.off + m.conn_line.len - 2, "\r\n", 2) == 0));
    CHECK(!m.conn_only_close || ((m.conn & HP_CONN_CLOSE) && m.conn_line.len));
    int cl = has_field(d, whole_len, "content-length");
    int te = has_field(d, whole_len, "transfer-encoding");
    if (!response) {
        CHECK(!(cl && te));
        CHECK(m.minor == 1 ? m.has_host : 1);
        if (m.framing == HP_BODY_CHUNKED)
            CHECK(te);
        if (m.framing == HP_BODY_LENGTH)
            CHECK(cl && m.content_length > 0);
        CHECK(m.framing == HP_BODY_NONE || m.framing == HP_BODY_LENGTH ||
              m.framing == HP_BODY_CHUNKED);
    } else {
        CHECK(!(cl && te));
        CHECK(m.status >= 100 && m.status <= 999);
        if (method == HP_M_HEAD && m.status != 101)
            CHECK(m.framing == HP_BODY_NONE);
    }
    if (m.framing == HP_BODY_CHUNKED)
        check_chunked(d + whole_len, n - whole_len);
}

static const int methods[8] = {HP_M_GET,  HP_M_HEAD,   HP_M_CONNECT, HP_M_OTHER,
                               HP_M_PUT,  HP_M_DELETE, HP_M_OPTIONS, HP_M_TRACE};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    fuzz_alloc_begin();
    uint8_t settings = data[0];
    size_t max = (size_t)64 << ((settings >> 2) & 7);
    const uint8_t *d = data + 1;
    size_t n = size - 1;
    switch (settings & 3) {
    case 0:
    case 3:
        check_head(d, n, 0, max, HP_M_OTHER);
        break;
    case 1:
        check_head(d, n, 1, max, methods[settings >> 5]);
        break;
    default:
        check_chunked(d, n);
        break;
    }
    bh_thread_cache_trim(); /* the fragmented scan's buffer block */
    fuzz_alloc_end();
    return 0;
}
