/* test_sni_defects.c - regression tests for the ClientHello parser defects of
 * issue #23 (examples/sni_router/hello.c): a duplicate server_name or ALPN
 * extension is refused whatever the first one held (RFC 8446 section 4.2),
 * an empty ServerNameList is malformed (RFC 6066 section 3: at least one
 * name), and a refused host name keeps no byte that could forge or colour a
 * log line. Hellos are built by the test; nothing is allocated. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <bytes_handoff.h>

#include "hello.h"
#include "test_alloc.h"
#include "test_tls_hello.h"

#define MAX_HELLO 16384

typedef struct wire {
    uint8_t b[4096];
    size_t n;
} wire;

/* A one-record ClientHello whose extensions block is ext (n bytes). */
static void build(const uint8_t *ext, size_t n, wire *out)
{
    uint8_t hs[sizeof out->b];
    size_t k = test_tls_client_hello(ext, n, hs, sizeof hs - 64);
    out->n = test_tls_records(hs, k, 16384, out->b, sizeof out->b);
}

/* Parses the hello with extensions ext whole and, to be sure fragmentation
 * does not matter, byte by byte; both must agree. */
static int parse_ext(const uint8_t *ext, size_t n, sni_hello *h)
{
    wire w;
    build(ext, n, &w);
    sni_hello_init(h, MAX_HELLO);
    int whole = sni_hello_parse(h, w.b, w.n);
    sni_hello bytewise;
    sni_hello_init(&bytewise, MAX_HELLO);
    int rc = SNI_HELLO_MORE;
    for (size_t k = 1; k <= w.n && rc == SNI_HELLO_MORE; k++)
        rc = sni_hello_parse(&bytewise, w.b, k);
    assert_int_equal(rc, whole);
    return whole;
}

/* Issue #23 A: the parser took "a host_name was seen" for "the extension was
 * seen", so a first server_name holding no host_name let a second one route. */
static void a_duplicate_server_name_extension_is_refused_whatever_the_first_held(void **state)
{
    (void)state;
    /* First: only a name of another type (1); second: host_name "a". */
    static const uint8_t other_then_host[] = {0, 0, 0, 6, 0, 4, 1, 0, 1, 'x',
                                              0, 0, 0, 6, 0, 4, 0, 0, 1, 'a'};
    /* First: an empty ServerNameList; second: host_name "a". */
    static const uint8_t empty_then_host[] = {0, 0, 0, 2, 0, 0,
                                              0, 0, 0, 6, 0, 4, 0, 0, 1, 'a'};
    /* First: host_name "a"; second: only a name of another type. */
    static const uint8_t host_then_other[] = {0, 0, 0, 6, 0, 4, 0, 0, 1, 'a',
                                              0, 0, 0, 6, 0, 4, 1, 0, 1, 'x'};
    /* Two ALPN extensions: the same rule (checked here, found correct). */
    static const uint8_t two_alpn[] = {0, 16, 0, 5, 0, 3, 2, 'h', '2',
                                       0, 16, 0, 5, 0, 3, 2, 'h', '3'};
    sni_hello h;
    assert_int_equal(parse_ext(other_then_host, sizeof other_then_host, &h), SNI_HELLO_MALFORMED);
    assert_int_equal(parse_ext(empty_then_host, sizeof empty_then_host, &h), SNI_HELLO_MALFORMED);
    assert_int_equal(parse_ext(host_then_other, sizeof host_then_other, &h), SNI_HELLO_MALFORMED);
    assert_int_equal(parse_ext(two_alpn, sizeof two_alpn, &h), SNI_HELLO_MALFORMED);
    /* A single server_name without a host_name is still "no SNI". */
    assert_int_equal(parse_ext(other_then_host, 10, &h), SNI_HELLO_DONE);
    assert_false(h.has_sni);
}

/* Issue #23 B: RFC 6066 requires at least one name in the list. */
static void an_empty_server_name_list_is_malformed(void **state)
{
    (void)state;
    static const uint8_t empty[] = {0, 0, 0, 2, 0, 0};
    static const uint8_t empty_with_alpn[] = {0, 16, 0, 5, 0, 3, 2, 'h', '2', 0, 0, 0, 2, 0, 0};
    sni_hello h;
    assert_int_equal(parse_ext(empty, sizeof empty, &h), SNI_HELLO_MALFORMED);
    assert_int_equal(parse_ext(empty_with_alpn, sizeof empty_with_alpn, &h), SNI_HELLO_MALFORMED);
}

static void assert_log_safe(const char *s)
{
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            fail_msg("byte 0x%02x at %zu of the logged name", (unsigned char)*p,
                     (size_t)(p - s));
}

/* Issue #23 C: a refused host name is kept for the log line; control bytes,
 * spaces and bytes above 0x7e must not survive into it. */
static void a_refused_host_name_keeps_no_byte_that_could_forge_a_log_line(void **state)
{
    (void)state;
    static const char forged[] = "x\ninjected-line sni=forged\x1b[31m\a";
    uint8_t ext[128];
    size_t n = sizeof forged - 1;
    size_t k = 0;
    ext[k++] = 0, ext[k++] = 0, ext[k++] = 0, ext[k++] = (uint8_t)(n + 5);
    ext[k++] = 0, ext[k++] = (uint8_t)(n + 3);
    ext[k++] = 0, ext[k++] = 0, ext[k++] = (uint8_t)n;
    memcpy(ext + k, forged, n), k += n;
    sni_hello h;
    assert_int_equal(parse_ext(ext, k, &h), SNI_HELLO_BAD_NAME);
    assert_true(h.has_sni);
    assert_int_equal(strlen(h.sni), n);
    assert_log_safe(h.sni);
    /* Bytes above 0x7e and a space, in the name and in ALPN alike. */
    static const uint8_t high[] = {0, 0, 0, 8, 0, 6, 0, 0, 3, 'a', 0xc3, ' ',
                                   0, 16, 0, 5, 0, 3, 2, 0xff, '\n'};
    assert_int_equal(parse_ext(high, sizeof high, &h), SNI_HELLO_BAD_NAME);
    assert_log_safe(h.sni);
    assert_log_safe(h.alpn);
    test_alloc_stats st;
    test_alloc_stats_get(&st);
    assert_int_equal(st.attempts, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        test_alloc_checked(a_duplicate_server_name_extension_is_refused_whatever_the_first_held),
        test_alloc_checked(an_empty_server_name_list_is_malformed),
        test_alloc_checked(a_refused_host_name_keeps_no_byte_that_could_forge_a_log_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
