/* test_http_parse.c - http_router's strict HTTP/1.1 parser (examples/
 * http_router/http_parse.c, http_chunked.c) and routing table (routes.c):
 * one named test per request-smuggling or hostile case (each must be
 * refused with the status the router answers), good cases (pipelined heads,
 * chunked with extensions and trailers, HTTP/1.0, absolute-form, Host with a
 * port), response framing, and route matching. Every head is scanned whole
 * and byte by byte (the same result either way); nothing is allocated. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <bytes_handoff.h>

#include "http_parse.h"
#include "routes.h"
#include "test_alloc.h"

static const hp_limits limits = {.max_head = 16384, .max_line = 8192};

/* Scans s whole and byte by byte (both must agree), then parses the head
 * as a request. Returns the scan's error or the parse's result. */
static int req_lim(const char *s, hp_msg *m, const hp_limits *lim)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t n = strlen(s), whole_len = 0, step_len = 0;
    hp_scan sc;
    hp_scan_init(&sc);
    int whole = hp_scan_head(&sc, p, n, lim, &whole_len);
    hp_scan_init(&sc);
    int step = HP_MORE;
    for (size_t k = 1; k <= n && step == HP_MORE; k++)
        step = hp_scan_head(&sc, p, k, lim, &step_len);
    assert_int_equal(step, whole);
    if (whole != HP_DONE)
        return whole;
    assert_int_equal(step_len, whole_len);
    return hp_parse_request(p, whole_len, m);
}

static int req(const char *s, hp_msg *m) { return req_lim(s, m, &limits); }

static int resp(const char *s, int method, hp_msg *m)
{
    size_t hl = 0;
    hp_scan sc;
    hp_scan_init(&sc);
    hp_limits lim = {.max_head = 65536, .max_line = 65536};
    int rc = hp_scan_head(&sc, (const uint8_t *)s, strlen(s), &lim, &hl);
    if (rc != HP_DONE)
        return rc;
    return hp_parse_response((const uint8_t *)s, hl, method, m);
}

static void assert_span(const char *base, hp_span sp, const char *want)
{
    assert_int_equal(sp.len, strlen(want));
    assert_memory_equal(base + sp.off, want, sp.len);
}

/* Walks a chunked body whole and byte by byte; returns the result and the
 * bytes used (both ways must agree). */
static int chunked(const char *s, size_t *used)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t n = strlen(s), u = 0, total = 0;
    hp_chunked c;
    hp_chunked_init(&c);
    int whole = hp_chunked_feed(&c, p, n, used);
    hp_chunked_init(&c);
    int rc = HP_MORE;
    for (size_t i = 0; i < n && rc == HP_MORE; i++) {
        rc = hp_chunked_feed(&c, p + i, 1, &u);
        total += u;
    }
    assert_int_equal(rc, whole);
    assert_int_equal(total, *used);
    return whole;
}

/* ---- smuggling and hostile requests --------------------------------------- */

static void content_length_with_transfer_encoding_is_400(void **state)
{
    (void)state;
    hp_msg m;
    assert_int_equal(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n", &m), HP_E400);
    assert_int_equal(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                         "Content-Length: 0\r\n\r\n", &m), HP_E400);
}

static void differing_content_lengths_are_400(void **state)
{
    (void)state;
    hp_msg m;
    assert_int_equal(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                         "Content-Length: 6\r\n\r\n", &m), HP_E400);
    assert_int_equal(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n", &m),
                     HP_E400);
}

static void identical_content_lengths_are_accepted(void **state)
{
    (void)state;
    hp_msg m;
    assert_int_equal(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                         "Content-Length: 5\r\n\r\n", &m), HP_DONE);
    assert_int_equal(m.framing, HP_BODY_LENGTH);
    assert_int_equal(m.content_length, 5);
    assert_int_equal(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7 , 7\r\n\r\n", &m),
                     HP_DONE);
    assert_int_equal(m.content_length, 7);
}

static void malformed_content_length_is_400(void **state)
{
    (void)state;
    static const char *bad[] = {"+5", "-1", "0x5", "5a", "5 5", "", "1.0", "5;x",
                                ",", " , ,"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char h[128];
        snprintf(h, sizeof h, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %s\r\n\r\n", bad[i]);
        hp_msg m;
        assert_int_equal(req(h, &m), HP_E400);
    }
}

static void overflowing_content_length_is_400(void **state)
{
    (void)state;
    hp_msg m;
    assert_int_equal(req("POST / HTTP/1.1\r\nHost: a\r\n"
                         "Content-Length: 18446744073709551616\r\n\r\n", &m), HP_E400);
    assert_int_equal(req("POST / HTTP/1.1\r\nHost: a\r\n"
                         "Content-Length: 99999999999999999999999\r\n\r\n", &m), HP_E400);
}

static void transfer_encoding_not_ending_in_chunked_is_400(void **state)
{
    (void)state;
    hp_msg m;
    assert_int_equal(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", &m),
                     HP_E400);
    assert_int_equal(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                         &m), HP_E400);
    assert_int_equal(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                         "Transfer-Encoding: gzip\r\n\r\n", &m), HP_E400);
    assert_int_equal(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n"
                         "\r\n", &m), HP_E400);
    assert_int_equal(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", &m),
                     HP_E400);
    assert_int_equal(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n",
                         &m), HP_E400);
}

static void transfer_encoding_in_http10_is_400(void **state)
{
    (void)state;
    hp_msg m;
    assert_int_equal(req("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", &m), HP_E400);
}

static void obs_fold_is_400(void **state)
{
    (void)state;
    hp_msg m;
    assert_int_equal(req("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", &m), HP_E400);
    assert_int_equal(req("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n", &m), HP_E400);
    assert_int_equal(req("GET / HTTP/1.1\r\n Host: a\r\n\r\n", &m), HP_E400);
}

static void whitespace_before_colon_is_400(void **state)
{
    (void)state;
    hp_msg m;
    assert_int_equal(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n"
                         "Content-Length: 3\r\n\r\n", &m), HP_E400);
    assert_int_equal(req("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", &m), HP_E400);
}

static void nul_in_field_is_400(void **state)
{
    (void)state;
    static const char head[] = "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n";
    size_t n = sizeof head - 1, hl;
    hp_scan sc;
    hp_scan_init(&sc);
    assert_int_equal(hp_scan_head(&sc, (const uint8_t *)head, n, &limits, &hl), HP_DONE);
    hp_msg m;
    assert_int_equal(hp_parse_request((const uint8_t *)head, hl, &m), HP_E400);
}

static void bare_lf_is_400(void **state)
{
    (void)state;
    hp_msg m;
    assert_int_equal(req("GET / HTTP/1.1\nHost: a\r\n\r\n", &m), HP_E400);
    assert_int_equal(req("GET / HTTP/1.1\r\nHost: a\n\r\n", &m), HP_E400);
    assert_int_equal(req("GET / HTTP/1.1\r\nHost: a\r\n\n", &m), HP_E400);
}

static void bare_cr_is_400(void **state)
{
    (void)state;
    hp_msg m;
    assert_int_equal(req("GET / HTTP/1.1\r\nHost: a\rX-B: c\r\n\r\n", &m), HP_E400);
    assert_int_equal(req("GET / HTTP/1.1\rHost: a\r\n\r\n", &m), HP_E400);
}

static void invalid_method_and_field_name_tokens_are_400(void **state)
{
    (void)state;
    hp_msg m;
    assert_int_equal(req("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", &m), HP_E400);
    assert_int_equal(req("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", &m), HP_E400);
    assert_int_equal(req("GET / HTTP/1.1\r\nHost: a\r\nX@Y: z\r\n\r\n", &m), HP_E400);
    assert_int_equal(req("GET / HTTP/1.1\r\nHost: a\r\n: z\r\n\r\n", &m), HP_E400);
    assert_int_equal(req("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", &m), HP_E400);
    assert_int_equal(req("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", &m), HP_E400);
    assert_int_equal(req("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", &m), HP_E400);
}

static void http11_without_host_or_with_two_is_400(void **state)
{
    (void)state;
    hp_msg m;
    assert_int_equal(req("GET / HTTP/1.1\r\nX: y\r\n\r\n", &m), HP_E400);
    assert_int_equal(req("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", &m), HP_E400);
    assert_int_equal(req("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", &m), HP_E400);
    assert_int_equal(req("GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", &m), HP_E400);
}

static void request_line_over_limit_is_414(void **state)
{
    (void)state;
    char h[600];
    memset(h, 'a', sizeof h);
    memcpy(h, "GET /", 5);
    strcpy(h + 500, " HTTP/1.1\r\nHost: a\r\n\r\n");
    hp_limits lim = {.max_head = 4096, .max_line = 256};
    hp_msg m;
    assert_int_equal(req_lim(h, &m, &lim), HP_E414);
    h[300] = '\0'; /* no line end yet: refused as soon as the limit is passed */
    assert_int_equal(req_lim(h, &m, &lim), HP_E414);
}

static void head_over_limit_is_431(void **state)
{
    (void)state;
    char h[2048];
    strcpy(h, "GET / HTTP/1.1\r\nHost: a\r\nX-Big: ");
    size_t n = strlen(h);
    memset(h + n, 'b', 1500);
    strcpy(h + n + 1500, "\r\n\r\n");
    hp_limits lim = {.max_head = 1024, .max_line = 256};
    hp_msg m;
    assert_int_equal(req_lim(h, &m, &lim), HP_E431);
    h[n + 1000] = '\0';
    assert_int_equal(req_lim(h, &m, &lim), HP_E431);
}

static void other_http_versions_are_505_and_garbage_400(void **state)
{
    (void)state;
    hp_msg m;
    assert_int_equal(req("GET / HTTP/2.0\r\nHost: a\r\n\r\n", &m), HP_E505);
    assert_int_equal(req("GET / HTTP/1.2\r\nHost: a\r\n\r\n", &m), HP_E505);
    assert_int_equal(req("GET / HTTX/1.1\r\nHost: a\r\n\r\n", &m), HP_E400);
    assert_int_equal(req("GET /\r\n\r\n", &m), HP_E400);
}

static void chunk_size_overflow_and_garbage_are_400(void **state)
{
    (void)state;
    size_t used;
    assert_int_equal(chunked("10000000000000000\r\n", &used), HP_E400);
    assert_int_equal(chunked("fffffffffffffffff\r\n", &used), HP_E400);
    assert_int_equal(chunked("g\r\n", &used), HP_E400);
    assert_int_equal(chunked("\r\n", &used), HP_E400);
    assert_int_equal(chunked("-1\r\n", &used), HP_E400);
    assert_int_equal(chunked("0x5\r\n", &used), HP_E400);
    assert_int_equal(chunked("5\n", &used), HP_E400);
}

static void chunk_extension_over_bound_is_400(void **state)
{
    (void)state;
    char s[HP_CHUNK_LINE_MAX + 64];
    strcpy(s, "5;a=");
    memset(s + 4, 'x', HP_CHUNK_LINE_MAX);
    strcpy(s + 4 + HP_CHUNK_LINE_MAX, "\r\n");
    size_t used;
    assert_int_equal(chunked(s, &used), HP_E400);
    assert_int_equal(chunked("5;a=\001\r\nhello\r\n0\r\n\r\n", &used), HP_E400);
}

static void missing_crlf_after_chunk_data_is_400(void **state)
{
    (void)state;
    size_t used;
    assert_int_equal(chunked("5\r\nhelloX\r\n0\r\n\r\n", &used), HP_E400);
    assert_int_equal(used, 8);
    assert_int_equal(chunked("5\r\nhello\n0\r\n\r\n", &used), HP_E400);
    assert_int_equal(chunked("5\r\nhello\r\n0\r\n\n", &used), HP_E400);
}

static void malformed_trailers_are_400(void **state)
{
    (void)state;
    size_t used;
    assert_int_equal(chunked("0\r\n X: y\r\n\r\n", &used), HP_E400);
    assert_int_equal(chunked("0\r\nX y\r\n\r\n", &used), HP_E400);
    assert_int_equal(chunked("0\r\nX: y\rz\r\n\r\n", &used), HP_E400);
}

/* ---- good requests --------------------------------------------------------- */

static void chunked_with_extensions_and_trailers_ends_exactly(void **state)
{
    (void)state;
    static const char body[] = "8\r\n12345678\r\n3 ; ext=\"q v\" ;x\r\nabc\r\n"
                               "A;y\r\n0123456789\r\n0;last\r\nTrailer-A: 1\r\nT-B:\r\n\r\n";
    char s[256];
    snprintf(s, sizeof s, "%sGET /next", body);
    size_t used;
    assert_int_equal(chunked(s, &used), HP_DONE);
    assert_int_equal(used, strlen(body));
    assert_int_equal(chunked("0\r\n\r\n", &used), HP_DONE);
    assert_int_equal(used, 5);
    assert_int_equal(chunked("5\r\nhel", &used), HP_MORE);
    assert_int_equal(used, 6);
}

static void chunked_request_has_chunked_framing(void **state)
{
    (void)state;
    hp_msg m;
    assert_int_equal(req("PUT /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n",
                         &m), HP_DONE);
    assert_int_equal(m.framing, HP_BODY_CHUNKED);
    assert_int_equal(m.method_kind, HP_M_PUT);
}

static void pipelined_heads_are_found_one_by_one(void **state)
{
    (void)state;
    static const char s[] = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
                            "\r\nHEAD /2 HTTP/1.1\r\nHost: b\r\n\r\nGET /3 HT";
    const uint8_t *p = (const uint8_t *)s;
    size_t n = strlen(s), hl;
    hp_scan sc;
    hp_scan_init(&sc);
    assert_int_equal(hp_scan_head(&sc, p, n, &limits, &hl), HP_DONE);
    hp_msg m;
    assert_int_equal(hp_parse_request(p, hl, &m), HP_DONE);
    assert_span(s, m.path, "/1");
    p += hl;
    n -= hl;
    size_t skip = hp_leading_crlf(p, n);
    assert_int_equal(skip, 2);
    p += skip;
    n -= skip;
    hp_scan_init(&sc);
    assert_int_equal(hp_scan_head(&sc, p, n, &limits, &hl), HP_DONE);
    assert_int_equal(hp_parse_request(p, hl, &m), HP_DONE);
    assert_int_equal(m.method_kind, HP_M_HEAD);
    assert_span((const char *)p, m.host, "b");
    hp_scan_init(&sc);
    assert_int_equal(hp_scan_head(&sc, p + hl, n - hl, &limits, &hl), HP_MORE);
}

static void http10_request_needs_no_host_and_asks_for_keep_alive(void **state)
{
    (void)state;
    hp_msg m;
    assert_int_equal(req("GET /old HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &m), HP_DONE);
    assert_int_equal(m.minor, 0);
    assert_false(m.has_host);
    assert_true(m.conn & HP_CONN_KEEP_ALIVE);
    assert_int_equal(m.framing, HP_BODY_NONE);
}

static void lone_connection_field_line_is_located(void **state)
{
    (void)state;
    static const char s[] = "GET / HTTP/1.1\r\nHost: a\r\nconnection:\t CLOSE \r\nX: 1\r\n\r\n";
    hp_msg m;
    assert_int_equal(req(s, &m), HP_DONE);
    assert_int_equal(m.conn_fields, 1);
    assert_span(s, m.conn_line, "connection:\t CLOSE \r\n");
    assert_true(m.conn_only_close);
    static const char *const other[] = {
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: close, foo\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        assert_int_equal(req(other[i], &m), HP_DONE);
        assert_int_equal(m.conn_fields, 1);
        assert_true(m.conn_line.len > 0);
        assert_false(m.conn_only_close);
    }
    static const char two[] = "GET / HTTP/1.1\r\nConnection: close\r\nHost: a\r\n"
                              "Connection: close\r\n\r\n";
    assert_int_equal(req(two, &m), HP_DONE);
    assert_int_equal(m.conn_fields, 2);
    assert_int_equal(m.conn_line.len, 0);
    assert_false(m.conn_only_close);
    assert_int_equal(req("GET / HTTP/1.1\r\nHost: a\r\n\r\n", &m), HP_DONE);
    assert_int_equal(m.conn_line.len, 0);
    assert_false(m.conn_only_close);
}

static void absolute_form_routes_by_its_authority(void **state)
{
    (void)state;
    static const char s[] = "GET http://Api.Example:8080/v1/x?q=1 HTTP/1.1\r\nHost: other\r\n\r\n";
    hp_msg m;
    assert_int_equal(req(s, &m), HP_DONE);
    assert_span(s, m.host, "Api.Example");
    assert_span(s, m.path, "/v1/x?q=1");
    assert_span(s, m.target, "http://Api.Example:8080/v1/x?q=1");
    assert_int_equal(req("GET http://:80/ HTTP/1.1\r\nHost: a\r\n\r\n", &m), HP_E400);
    assert_int_equal(req("GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", &m), HP_E400);
}

static void host_with_port_and_connect_authority(void **state)
{
    (void)state;
    static const char s[] = "GET /p HTTP/1.1\r\nHost: a.example:8080\r\nExpect: 100-continue\r\n"
                            "Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n";
    hp_msg m;
    assert_int_equal(req(s, &m), HP_DONE);
    assert_span(s, m.host, "a.example");
    assert_true(m.expect_continue);
    assert_true(m.has_upgrade);
    assert_true(m.conn & HP_CONN_UPGRADE);
    static const char v6[] = "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n";
    assert_int_equal(req(v6, &m), HP_DONE);
    assert_span(v6, m.host, "[::1]");
    static const char c[] = "CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\n\r\n";
    assert_int_equal(req(c, &m), HP_DONE);
    assert_int_equal(m.method_kind, HP_M_CONNECT);
    assert_span(c, m.host, "db.internal");
    assert_int_equal(m.path.len, 0);
}

/* ---- responses --------------------------------------------------------------- */

static void response_framing_follows_rfc9112(void **state)
{
    (void)state;
    hp_msg m;
    assert_int_equal(resp("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", HP_M_GET, &m), HP_DONE);
    assert_int_equal(m.framing, HP_BODY_LENGTH);
    assert_int_equal(m.content_length, 12);
    assert_int_equal(resp("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", HP_M_HEAD, &m),
                     HP_DONE);
    assert_int_equal(m.framing, HP_BODY_NONE);
    assert_int_equal(resp("HTTP/1.1 204 No Content\r\n\r\n", HP_M_GET, &m), HP_DONE);
    assert_int_equal(m.framing, HP_BODY_NONE);
    assert_int_equal(resp("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", HP_M_GET, &m),
                     HP_DONE);
    assert_int_equal(m.framing, HP_BODY_NONE);
    assert_int_equal(resp("HTTP/1.1 100 Continue\r\n\r\n", HP_M_PUT, &m), HP_DONE);
    assert_int_equal(m.status, 100);
    assert_int_equal(m.framing, HP_BODY_NONE);
    assert_int_equal(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", HP_M_GET, &m),
                     HP_DONE);
    assert_int_equal(m.framing, HP_BODY_CHUNKED);
    assert_int_equal(resp("HTTP/1.0 200 OK\r\n\r\n", HP_M_GET, &m), HP_DONE);
    assert_int_equal(m.framing, HP_BODY_CLOSE);
    assert_int_equal(m.minor, 0);
    assert_int_equal(resp("HTTP/1.1 200\r\nConnection: close\r\n\r\n", HP_M_GET, &m), HP_DONE);
    assert_true(m.conn & HP_CONN_CLOSE);
    assert_int_equal(resp("HTTP/1.1 200 Connection established\r\n\r\n", HP_M_CONNECT, &m),
                     HP_DONE);
    assert_int_equal(m.framing, HP_BODY_TUNNEL);
    assert_int_equal(resp("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
                          HP_M_GET, &m), HP_DONE);
    assert_int_equal(m.framing, HP_BODY_TUNNEL);
}

static void ambiguous_or_malformed_responses_are_refused(void **state)
{
    (void)state;
    hp_msg m;
    assert_int_equal(resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n"
                          "\r\n", HP_M_GET, &m), HP_E400);
    assert_int_equal(resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                          HP_M_GET, &m), HP_E400);
    assert_int_equal(resp("HTTP/1.1 20 OK\r\n\r\n", HP_M_GET, &m), HP_E400);
    assert_int_equal(resp("HTTP/1.1 200OK\r\n\r\n", HP_M_GET, &m), HP_E400);
    assert_int_equal(resp("HTTP/2 200 OK\r\n\r\n", HP_M_GET, &m), HP_E400);
    assert_int_equal(resp("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", HP_M_GET, &m), HP_E400);
}

/* ---- routes ------------------------------------------------------------------ */

static void routes_prefer_exact_host_then_longest_prefix(void **state)
{
    (void)state;
    hr_table t;
    char err[128];
    hr_table_init(&t);
    assert_int_equal(hr_table_add(&t, "a.example=127.0.0.1:1", err, sizeof err), 0);
    assert_int_equal(hr_table_add(&t, "A.example/api=127.0.0.1:2", err, sizeof err), 0);
    assert_int_equal(hr_table_add(&t, "a.example/api/v2=127.0.0.1:3", err, sizeof err), 0);
    assert_int_equal(hr_table_add(&t, "*.example=127.0.0.1:4", err, sizeof err), 0);
    assert_int_equal(hr_table_add(&t, "a.example/api=127.0.0.1:9", err, sizeof err), -1);
    assert_int_equal(hr_table_add(&t, "bad host=127.0.0.1:9", err, sizeof err), -1);
    assert_int_equal(hr_table_add(&t, "x.example=nowhere", err, sizeof err), -1);
    const hr_route *r = hr_table_lookup(&t, "A.EXAMPLE", 9, "/api/v2/x", 9);
    assert_non_null(r);
    assert_string_equal(r->addr_text, "127.0.0.1:3");
    r = hr_table_lookup(&t, "a.example", 9, "/apix", 5);
    assert_string_equal(r->addr_text, "127.0.0.1:2");
    r = hr_table_lookup(&t, "a.example", 9, "/other", 6);
    assert_string_equal(r->addr_text, "127.0.0.1:1");
    r = hr_table_lookup(&t, "b.a.example", 11, "/api", 4);
    assert_string_equal(r->addr_text, "127.0.0.1:4");
    assert_null(hr_table_lookup(&t, "example", 7, "/", 1));
    assert_int_equal(hr_table_set_default(&t, "127.0.0.1:5", err, sizeof err), 0);
    r = hr_table_lookup(&t, "example", 7, "/", 1);
    assert_string_equal(r->addr_text, "127.0.0.1:5");
    assert_int_equal(r->index, 4);
    assert_int_equal(hr_table_size(&t), 5);
    hr_table_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        test_alloc_checked(content_length_with_transfer_encoding_is_400),
        test_alloc_checked(differing_content_lengths_are_400),
        test_alloc_checked(identical_content_lengths_are_accepted),
        test_alloc_checked(malformed_content_length_is_400),
        test_alloc_checked(overflowing_content_length_is_400),
        test_alloc_checked(transfer_encoding_not_ending_in_chunked_is_400),
        test_alloc_checked(transfer_encoding_in_http10_is_400),
        test_alloc_checked(obs_fold_is_400),
        test_alloc_checked(whitespace_before_colon_is_400),
        test_alloc_checked(nul_in_field_is_400),
        test_alloc_checked(bare_lf_is_400),
        test_alloc_checked(bare_cr_is_400),
        test_alloc_checked(invalid_method_and_field_name_tokens_are_400),
        test_alloc_checked(http11_without_host_or_with_two_is_400),
        test_alloc_checked(request_line_over_limit_is_414),
        test_alloc_checked(head_over_limit_is_431),
        test_alloc_checked(other_http_versions_are_505_and_garbage_400),
        test_alloc_checked(chunk_size_overflow_and_garbage_are_400),
        test_alloc_checked(chunk_extension_over_bound_is_400),
        test_alloc_checked(missing_crlf_after_chunk_data_is_400),
        test_alloc_checked(malformed_trailers_are_400),
        test_alloc_checked(chunked_with_extensions_and_trailers_ends_exactly),
        test_alloc_checked(chunked_request_has_chunked_framing),
        test_alloc_checked(pipelined_heads_are_found_one_by_one),
        test_alloc_checked(http10_request_needs_no_host_and_asks_for_keep_alive),
        test_alloc_checked(lone_connection_field_line_is_located),
        test_alloc_checked(absolute_form_routes_by_its_authority),
        test_alloc_checked(host_with_port_and_connect_authority),
        test_alloc_checked(response_framing_follows_rfc9112),
        test_alloc_checked(ambiguous_or_malformed_responses_are_refused),
        test_alloc_checked(routes_prefer_exact_host_then_longest_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
