/* test_sni_hello.c - sni_router's ClientHello parser (examples/sni_router/
 * hello.c) and routing table (routes.c): real hellos captured from openssl
 * s_client, curl and Python's ssl module (the fuzzer's seed corpus,
 * tests/fuzz/corpus/fuzz_sni_hello/), fed whole, byte by byte and re-framed
 * into many TLS records; hostile framings and fields; no allocation at all.
 * Registered from examples/CMakeLists.txt next to the example it tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <bytes_handoff.h>

#include "hello.h"
#include "routes.h"
#include "test_alloc.h"
#include "test_tls_hello.h"

#define MAX_HELLO 16384

typedef struct wire {
    uint8_t b[70000];
    size_t n;
} wire;

static void load(const char *name, wire *w)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", SNI_CORPUS_DIR, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    w->n = fread(w->b, 1, sizeof w->b, f);
    fclose(f);
    assert_true(w->n > 5);
}

/* The handshake message inside a single-record capture. */
static void handshake_of(const wire *w, wire *hs)
{
    size_t rlen = ((size_t)w->b[3] << 8) | w->b[4];
    assert_int_equal(rlen + 5, w->n);
    memcpy(hs->b, w->b + 5, rlen);
    hs->n = rlen;
}

/* Re-frames handshake bytes into records of at most `rec` bytes each. */
static void frame(const wire *hs, size_t rec, wire *out)
{
    out->n = test_tls_records(hs->b, hs->n, rec, out->b, sizeof out->b);
}

/* The handshake of capture `name`, re-framed into records of at most `rec`
 * bytes each. */
static void load_framed(const char *name, size_t rec, wire *framed)
{
    wire w, hs;
    load(name, &w);
    handshake_of(&w, &hs);
    frame(&hs, rec, framed);
}

/* Feeds w through a bh_buf in chunks of `step` bytes, as the router does:
 * append what arrived, parse the whole window, nothing consumed. */
static int feed(const wire *w, size_t step, sni_hello *h)
{
    bh_buf buf;
    assert_int_equal(bh_buf_init(&buf, MAX_HELLO + 64), 0);
    sni_hello_init(h, MAX_HELLO);
    int rc = SNI_HELLO_MORE;
    for (size_t off = 0; off < w->n && rc == SNI_HELLO_MORE; off += step) {
        size_t k = w->n - off < step ? w->n - off : step;
        assert_int_equal(bh_buf_append(&buf, w->b + off, k), 0);
        rc = sni_hello_parse(h, bh_buf_data(&buf), bh_buf_len(&buf));
        if (off + k < w->n && rc == SNI_HELLO_DONE)
            fail_msg("done before the last byte (%zu of %zu)", off + k, w->n);
    }
    bh_buf_free(&buf);
    return rc;
}

static int parse_all(const wire *w, sni_hello *h)
{
    sni_hello_init(h, MAX_HELLO);
    return sni_hello_parse(h, w->b, w->n);
}

typedef struct capture {
    const char *file, *sni, *alpn;
} capture;

static const capture captures[] = {
    {"openssl_tls13", "alpha.test", "h2,http/1.1"},
    {"openssl_tls12", "www.beta.test", ""},
    {"openssl_nosni", NULL, ""},
    {"curl", "alpha.test", "h2,http/1.1"},
    {"python", "gamma.test", "http/1.1"},
};

static void check_capture(const capture *c, const sni_hello *h, size_t n)
{
    assert_int_equal(h->hello_end, n);
    if (c->sni) {
        assert_true(h->has_sni);
        assert_string_equal(h->sni, c->sni);
    } else {
        assert_false(h->has_sni);
    }
    assert_string_equal(h->alpn, c->alpn);
}

static void real_hellos_parse_whole_with_their_server_name_and_alpn(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof captures / sizeof captures[0]; i++) {
        wire w;
        sni_hello h;
        load(captures[i].file, &w);
        assert_int_equal(parse_all(&w, &h), SNI_HELLO_DONE);
        check_capture(&captures[i], &h, w.n);
    }
}

static void real_hellos_fed_in_any_tcp_fragmentation_give_the_same_result(void **state)
{
    (void)state;
    static const size_t steps[] = {1, 2, 3, 5, 7, 64, 100, 511};
    for (size_t i = 0; i < sizeof captures / sizeof captures[0]; i++) {
        wire w;
        load(captures[i].file, &w);
        for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
            sni_hello h;
            assert_int_equal(feed(&w, steps[s], &h), SNI_HELLO_DONE);
            check_capture(&captures[i], &h, w.n);
        }
    }
}

static void hello_split_across_many_records_parses_in_any_fragmentation(void **state)
{
    (void)state;
    static const size_t recs[] = {1, 2, 3, 4, 5, 37, 200};
    for (size_t i = 0; i < sizeof captures / sizeof captures[0]; i++) {
        wire w, hs, framed;
        load(captures[i].file, &w);
        handshake_of(&w, &hs);
        for (size_t r = 0; r < sizeof recs / sizeof recs[0]; r++) {
            frame(&hs, recs[r], &framed);
            sni_hello h;
            assert_int_equal(parse_all(&framed, &h), SNI_HELLO_DONE);
            check_capture(&captures[i], &h, framed.n);
            assert_int_equal(feed(&framed, 3, &h), SNI_HELLO_DONE);
            check_capture(&captures[i], &h, framed.n);
        }
    }
}

static void parsing_allocates_nothing(void **state)
{
    (void)state;
    wire framed;
    sni_hello h;
    load_framed("curl", 1, &framed);
    test_alloc_install(0);
    assert_int_equal(parse_all(&framed, &h), SNI_HELLO_DONE);
    static const uint8_t huge[] = {0x16, 3, 1, 0x40, 0x00, 1, 0xff, 0xff, 0xff};
    sni_hello_init(&h, MAX_HELLO);
    assert_int_equal(sni_hello_parse(&h, huge, sizeof huge), SNI_HELLO_TOO_LARGE);
    test_alloc_stats st;
    test_alloc_stats_get(&st);
    test_alloc_uninstall();
    assert_int_equal(st.attempts, 0);
}

static void bytes_after_the_hello_in_a_later_record_are_left_for_the_tunnel(void **state)
{
    (void)state;
    wire w;
    sni_hello h;
    load("openssl_tls13", &w);
    size_t n = w.n;
    static const uint8_t early[] = {0x17, 3, 3, 0, 2, 'h', 'i'};
    memcpy(w.b + w.n, early, sizeof early);
    w.n += sizeof early;
    assert_int_equal(parse_all(&w, &h), SNI_HELLO_DONE);
    assert_int_equal(h.hello_end, n);
}

static void plain_text_is_not_tls_after_one_byte(void **state)
{
    (void)state;
    sni_hello h;
    sni_hello_init(&h, MAX_HELLO);
    assert_int_equal(sni_hello_parse(&h, (const uint8_t *)"G", 1), SNI_HELLO_NOT_TLS);
    assert_int_equal(sni_hello_parse(&h, (const uint8_t *)"GET / HTTP/1.1\r\n", 16),
                     SNI_HELLO_NOT_TLS);
    static const uint8_t bad_major[] = {0x16, 0x02};
    sni_hello_init(&h, MAX_HELLO);
    assert_int_equal(sni_hello_parse(&h, bad_major, 2), SNI_HELLO_NOT_TLS);
}

static void sslv2_client_hello_is_recognised(void **state)
{
    (void)state;
    static const uint8_t v2[] = {0x80, 0x2e, 0x01, 0x03, 0x01, 0x00, 0x15};
    sni_hello h;
    sni_hello_init(&h, MAX_HELLO);
    assert_int_equal(sni_hello_parse(&h, v2, 2), SNI_HELLO_MORE);
    assert_int_equal(sni_hello_parse(&h, v2, sizeof v2), SNI_HELLO_SSLV2);
}

static void empty_or_oversized_records_are_malformed(void **state)
{
    (void)state;
    static const uint8_t empty[] = {0x16, 3, 1, 0, 0};
    static const uint8_t big[] = {0x16, 3, 1, 0x40, 0x01};
    sni_hello h;
    sni_hello_init(&h, MAX_HELLO);
    assert_int_equal(sni_hello_parse(&h, empty, sizeof empty), SNI_HELLO_MALFORMED);
    sni_hello_init(&h, MAX_HELLO);
    assert_int_equal(sni_hello_parse(&h, big, sizeof big), SNI_HELLO_MALFORMED);
}

static void another_record_type_inside_the_hello_is_malformed(void **state)
{
    (void)state;
    wire framed;
    sni_hello h;
    load_framed("python", 100, &framed);
    framed.b[105] = 0x17; /* second record claims application data */
    assert_int_equal(parse_all(&framed, &h), SNI_HELLO_MALFORMED);
}

static void other_handshake_messages_are_malformed(void **state)
{
    (void)state;
    wire w;
    sni_hello h;
    load("curl", &w);
    w.b[5] = 2; /* ServerHello */
    assert_int_equal(parse_all(&w, &h), SNI_HELLO_MALFORMED);
}

static void claimed_lengths_beyond_max_hello_fail_before_the_bytes_arrive(void **state)
{
    (void)state;
    static const uint8_t claim[] = {0x16, 3, 1, 0x40, 0x00, 1, 0x00, 0x80, 0x00};
    sni_hello h;
    sni_hello_init(&h, 1024);
    assert_int_equal(sni_hello_parse(&h, claim, 6), SNI_HELLO_TOO_LARGE);
    wire w;
    load("curl", &w); /* 517 bytes */
    sni_hello_init(&h, 516);
    assert_int_equal(sni_hello_parse(&h, w.b, 9), SNI_HELLO_TOO_LARGE);
    sni_hello_init(&h, 517);
    assert_int_equal(sni_hello_parse(&h, w.b, w.n), SNI_HELLO_DONE);
}

/* Builds a ClientHello whose extensions block is `ext` (n bytes). */
static void build(const uint8_t *ext, size_t n, wire *out)
{
    wire hs;
    hs.n = test_tls_client_hello(ext, n, hs.b, sizeof hs.b);
    frame(&hs, 16384, out);
}

static int parse_ext(const uint8_t *ext, size_t n, sni_hello *h)
{
    wire w;
    build(ext, n, &w);
    return parse_all(&w, h);
}

static void server_name_is_lower_cased_and_alpn_listed(void **state)
{
    (void)state;
    static const uint8_t ext[] = {0, 0, 0, 12, 0, 10, 0, 0, 7, 'W', 'w', 'W', '.', 'A', '.', 'b',
                                  0, 16, 0, 14, 0, 12, 2, 'h', '2', 8, 'h', 't', 't', 'p', '/',
                                  '1', '.', '1'};
    sni_hello h;
    assert_int_equal(parse_ext(ext, sizeof ext, &h), SNI_HELLO_DONE);
    assert_string_equal(h.sni, "www.a.b");
    assert_string_equal(h.alpn, "h2,http/1.1");
    assert_true(sni_hello_offers_alpn(&h, "h2"));
    assert_true(sni_hello_offers_alpn(&h, "http/1.1"));
    assert_false(sni_hello_offers_alpn(&h, "http/1"));
}

static void two_server_name_extensions_are_malformed(void **state)
{
    (void)state;
    static const uint8_t ext[] = {0, 0, 0, 6, 0, 4, 0, 0, 1, 'a', 0, 0, 0, 6, 0, 4, 0, 0, 1, 'b'};
    sni_hello h;
    assert_int_equal(parse_ext(ext, sizeof ext, &h), SNI_HELLO_MALFORMED);
}

static void host_names_with_bad_bytes_are_refused(void **state)
{
    (void)state;
    static const uint8_t nul[] = {0, 0, 0, 8, 0, 6, 0, 0, 3, 'a', 0, 'b'};
    static const uint8_t dot[] = {0, 0, 0, 8, 0, 6, 0, 0, 3, 'a', 'b', '.'};
    static const uint8_t dots[] = {0, 0, 0, 8, 0, 6, 0, 0, 3, 'a', '.', '.'};
    sni_hello h;
    assert_int_equal(parse_ext(nul, sizeof nul, &h), SNI_HELLO_BAD_NAME);
    assert_int_equal(parse_ext(dot, sizeof dot, &h), SNI_HELLO_BAD_NAME);
    assert_int_equal(parse_ext(dots, sizeof dots, &h), SNI_HELLO_BAD_NAME);
}

static void inconsistent_extension_lengths_are_malformed(void **state)
{
    (void)state;
    static const uint8_t list_short[] = {0, 0, 0, 6, 0, 3, 0, 0, 1, 'a'};
    static const uint8_t name_long[] = {0, 0, 0, 6, 0, 4, 0, 0, 9, 'a'};
    static const uint8_t ext_long[] = {0, 0, 0, 60, 0, 4, 0, 0, 1, 'a'};
    static const uint8_t alpn_empty[] = {0, 16, 0, 3, 0, 1, 0};
    sni_hello h;
    assert_int_equal(parse_ext(list_short, sizeof list_short, &h), SNI_HELLO_MALFORMED);
    assert_int_equal(parse_ext(name_long, sizeof name_long, &h), SNI_HELLO_MALFORMED);
    assert_int_equal(parse_ext(ext_long, sizeof ext_long, &h), SNI_HELLO_MALFORMED);
    assert_int_equal(parse_ext(alpn_empty, sizeof alpn_empty, &h), SNI_HELLO_MALFORMED);
}

static void every_truncated_body_is_rejected_without_reading_past_it(void **state)
{
    (void)state;
    wire w, hs, cut;
    load("curl", &w);
    handshake_of(&w, &hs);
    size_t body = hs.n - 4;
    for (size_t k = 41; k < body; k++) {
        wire t;
        memcpy(t.b, hs.b, 4 + k);
        t.b[1] = (uint8_t)(k >> 16), t.b[2] = (uint8_t)(k >> 8), t.b[3] = (uint8_t)k;
        t.n = 4 + k;
        frame(&t, 16384, &cut);
        sni_hello h;
        int rc = parse_all(&cut, &h);
        /* Only a cut right after the compression methods is a valid hello. */
        if (rc != SNI_HELLO_MALFORMED)
            assert_int_equal(rc, SNI_HELLO_DONE);
    }
}

static void a_final_status_is_sticky(void **state)
{
    (void)state;
    wire w;
    sni_hello h;
    load("python", &w);
    assert_int_equal(parse_all(&w, &h), SNI_HELLO_DONE);
    assert_int_equal(sni_hello_parse(&h, (const uint8_t *)"x", 1), SNI_HELLO_DONE);
}

static void routes_prefer_exact_names_then_the_longest_wildcard_then_alpn_then_the_default(void **state)
{
    (void)state;
    sni_table t;
    char err[128];
    sni_table_init(&t);
    assert_int_equal(sni_table_add(&t, "Alpha.Test=127.0.0.1:1001", err, sizeof err), 0);
    assert_int_equal(sni_table_add(&t, "*.test=127.0.0.1:1002", err, sizeof err), 0);
    assert_int_equal(sni_table_add(&t, "*.beta.test=[::1]:1003", err, sizeof err), 0);
    assert_int_equal(sni_table_add(&t, "alpha.test=127.0.0.1:1", err, sizeof err), -1);
    assert_int_equal(sni_table_add(&t, "bad..name=127.0.0.1:1", err, sizeof err), -1);
    assert_int_equal(sni_table_add(&t, "x=[localhost]:1", err, sizeof err), -1);
    assert_int_equal(sni_table_add(&t, "x=127.0.0.1:65536", err, sizeof err), -1);
    assert_int_equal(sni_table_add(&t, "x=::1:80", err, sizeof err), -1);
    assert_string_equal(sni_table_lookup(&t, "alpha.test", NULL)->addr_text, "127.0.0.1:1001");
    assert_string_equal(sni_table_lookup(&t, "x.alpha.test", NULL)->addr_text, "127.0.0.1:1002");
    assert_string_equal(sni_table_lookup(&t, "a.b.beta.test", NULL)->addr_text, "[::1]:1003");
    assert_string_equal(sni_table_lookup(&t, "beta.test", NULL)->addr_text, "127.0.0.1:1002");
    assert_null(sni_table_lookup(&t, "test", NULL));
    assert_null(sni_table_lookup(&t, "other.example", NULL));
    assert_int_equal(sni_table_add(&t, "alpha.test+h2=127.0.0.1:1004", err, sizeof err), 0);
    assert_int_equal(sni_table_add(&t, "*.test+h2=127.0.0.1:1005", err, sizeof err), 0);
    assert_int_equal(sni_table_add(&t, "alpha.test+=127.0.0.1:1", err, sizeof err), -1);
    assert_int_equal(sni_table_add(&t, "alpha.test+h,2=127.0.0.1:1", err, sizeof err), -1);
    sni_hello h2, h1;
    sni_hello_init(&h2, 100);
    sni_hello_init(&h1, 100);
    strcpy(h2.alpn, "http/1.1,h2");
    strcpy(h1.alpn, "http/1.1");
    assert_string_equal(sni_table_lookup(&t, "alpha.test", &h2)->addr_text, "127.0.0.1:1004");
    assert_string_equal(sni_table_lookup(&t, "alpha.test", &h1)->addr_text, "127.0.0.1:1001");
    assert_string_equal(sni_table_lookup(&t, "alpha.test", NULL)->addr_text, "127.0.0.1:1001");
    assert_string_equal(sni_table_lookup(&t, "x.test", &h2)->addr_text, "127.0.0.1:1005");
    assert_string_equal(sni_table_lookup(&t, "x.beta.test", &h2)->addr_text, "[::1]:1003");
    assert_int_equal(sni_table_set_default(&t, "[::1]:9", err, sizeof err), 0);
    assert_string_equal(sni_table_lookup(&t, "other.example", NULL)->name, "default");
    sni_table_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(real_hellos_parse_whole_with_their_server_name_and_alpn),
        cmocka_unit_test(real_hellos_fed_in_any_tcp_fragmentation_give_the_same_result),
        cmocka_unit_test(hello_split_across_many_records_parses_in_any_fragmentation),
        cmocka_unit_test(parsing_allocates_nothing),
        cmocka_unit_test(bytes_after_the_hello_in_a_later_record_are_left_for_the_tunnel),
        cmocka_unit_test(plain_text_is_not_tls_after_one_byte),
        cmocka_unit_test(sslv2_client_hello_is_recognised),
        cmocka_unit_test(empty_or_oversized_records_are_malformed),
        cmocka_unit_test(another_record_type_inside_the_hello_is_malformed),
        cmocka_unit_test(other_handshake_messages_are_malformed),
        cmocka_unit_test(claimed_lengths_beyond_max_hello_fail_before_the_bytes_arrive),
        cmocka_unit_test(server_name_is_lower_cased_and_alpn_listed),
        cmocka_unit_test(two_server_name_extensions_are_malformed),
        cmocka_unit_test(host_names_with_bad_bytes_are_refused),
        cmocka_unit_test(inconsistent_extension_lengths_are_malformed),
        cmocka_unit_test(every_truncated_body_is_rejected_without_reading_past_it),
        cmocka_unit_test(a_final_status_is_sticky),
        cmocka_unit_test(routes_prefer_exact_names_then_the_longest_wildcard_then_alpn_then_the_default),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
