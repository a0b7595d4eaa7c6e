/* test_content_routing_parser.c - the content_routing route-protocol parser
 * (examples/content_routing/parser.c): peeking without consuming, limits
 * enforced before bytes are buffered, fragmentation independence. Registered
 * from examples/CMakeLists.txt next to the example it tests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "content_routing.h"

#define MAX_LINE 32
#define MAX_FRAME 100

typedef struct fixture {
    bh_buf buf;
    cr_parser p;
} fixture;

static int setup(void **state)
{
    static fixture f;
    bh_buf_init(&f.buf, 4096);
    cr_parser_init(&f.p, MAX_LINE, MAX_FRAME, 0);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    bh_buf_free(&f->buf);
    return 0;
}

static void put(fixture *f, const char *s, size_t n)
{
    assert_int_equal(bh_buf_append(&f->buf, s, n), 0);
}

static cr_token_kind peek(fixture *f, cr_token *t) { return cr_parser_peek(&f->p, &f->buf, t); }

/* Appends s[0..n), asserts that the front token is now of kind want and
 * returns it. */
static cr_token put_expect(fixture *f, const char *s, size_t n, cr_token_kind want)
{
    cr_token t;
    put(f, s, n);
    assert_int_equal(peek(f, &t), want);
    return t;
}

/* Removes the front token the way the proxy does: split it off, no copy. */
static void take(fixture *f, const cr_token *t)
{
    bh_bytes out = {0};
    assert_int_equal(bh_buf_split_prefix(&f->buf, t->wire_len, &out), 0);
    bh_bytes_release(&out);
    cr_parser_consumed(&f->p);
}

static void route_line_is_reported_with_its_name_and_nothing_is_consumed(void **state)
{
    fixture *f = *state;
    cr_token t = put_expect(f, "ROUTE alpha\n3\nabc", 17, CR_TOK_ROUTE);
    assert_int_equal(t.wire_len, 12);
    assert_int_equal(t.name_len, 5);
    assert_memory_equal(t.name, "alpha", 5);
    assert_int_equal(bh_buf_len(&f->buf), 17);
}

static void frame_is_incomplete_until_its_last_payload_byte_arrives(void **state)
{
    fixture *f = *state;
    const char wire[] = "5\nhello";
    cr_token t;
    for (size_t i = 0; i + 1 < sizeof wire - 1; i++) {
        t = put_expect(f, wire + i, 1, CR_TOK_NEED_MORE);
    }
    t = put_expect(f, wire + sizeof wire - 2, 1, CR_TOK_FRAME);
    assert_int_equal(t.payload_len, 5);
    assert_int_equal(t.wire_len, 7);
}

static void payload_holding_newlines_and_marker_text_is_one_frame(void **state)
{
    fixture *f = *state;
    cr_token t = put_expect(f, "16\nTUNNEL\nROUTE x\n\nTUNNEL\n", 26, CR_TOK_FRAME);
    assert_int_equal(t.wire_len, 19);
    take(f, &t);
    assert_int_equal(peek(f, &t), CR_TOK_TUNNEL); /* the real marker, after the payload */
}

static void tunnel_marker_leaves_the_bytes_behind_it_in_the_buffer(void **state)
{
    fixture *f = *state;
    cr_token t = put_expect(f, "TUNNEL\nraw\xff\n", 12, CR_TOK_TUNNEL);
    assert_int_equal(t.wire_len, 7);
    take(f, &t);
    assert_int_equal(bh_buf_len(&f->buf), 5);
    assert_memory_equal(bh_buf_data(&f->buf), "raw\xff\n", 5);
}

static void line_of_exactly_max_line_bytes_is_accepted(void **state)
{
    fixture *f = *state;
    char line[MAX_LINE + 1];
    cr_token t;
    memset(line, '0', MAX_LINE - 1);
    line[MAX_LINE - 1] = '7';
    line[MAX_LINE] = '\n';
    put_expect(f, line, sizeof line, CR_TOK_NEED_MORE); /* a 7-byte frame follows */
    t = put_expect(f, "1234567", 7, CR_TOK_FRAME);
    assert_int_equal(t.payload_len, 7);
}

static void line_without_newline_is_too_long_once_max_line_plus_one_bytes_are_buffered(void **state)
{
    fixture *f = *state;
    char line[MAX_LINE];
    memset(line, '9', sizeof line);
    put_expect(f, line, sizeof line, CR_TOK_NEED_MORE);
    put_expect(f, "9", 1, CR_TOK_LINE_TOO_LONG);
}

static void frame_length_above_max_frame_is_rejected_before_its_payload_arrives(void **state)
{
    fixture *f = *state;
    put_expect(f, "101\n", 4, CR_TOK_FRAME_TOO_LONG);
}

static void frame_length_of_many_digits_is_rejected_without_overflow(void **state)
{
    fixture *f = *state;
    /* leading zeros are fine */
    cr_token t = put_expect(f, "000000000000000000000000000005\nhello", 36, CR_TOK_FRAME);
    assert_int_equal(t.payload_len, 5);
    cr_parser_init(&f->p, MAX_LINE, SIZE_MAX, 0);
    bh_buf_free(&f->buf);
    put_expect(f, "99999999999999999999999999999\n", 30, CR_TOK_FRAME_TOO_LONG);
}

static void zero_length_frame_is_complete_with_its_header(void **state)
{
    fixture *f = *state;
    cr_token t = put_expect(f, "0\n", 2, CR_TOK_FRAME);
    assert_int_equal(t.wire_len, 2);
    assert_int_equal(t.payload_len, 0);
}

static void malformed_header_lines_are_bad_headers(void **state)
{
    fixture *f = *state;
    static const char *const bad[] = {"\n",          "12a\n",    "-1\n",      "ROUTE \n",
                                      "ROUTE a b\n", "tunnel\n", "TUNNEL \n", "ROUTE\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_token t;
        bh_buf_free(&f->buf);
        cr_parser_consumed(&f->p);
        t = put_expect(f, bad[i], strlen(bad[i]), CR_TOK_BAD_HEADER);
        assert_int_equal(t.wire_len, strlen(bad[i]));
    }
}

static void route_name_longer_than_64_characters_is_a_bad_header(void **state)
{
    fixture *f = *state;
    char line[6 + CR_MAX_NAME + 2];
    cr_parser_init(&f->p, 128, MAX_FRAME, 0);
    memcpy(line, "ROUTE ", 6);
    memset(line + 6, 'n', CR_MAX_NAME + 1);
    line[sizeof line - 1] = '\n';
    put_expect(f, line, sizeof line, CR_TOK_BAD_HEADER);
}

static void tokens_back_to_back_parse_the_same_however_the_bytes_arrive(void **state)
{
    fixture *f = *state;
    const char wire[] = "ROUTE b\n2\nxy0\n3\n\n\n\nTUNNEL\nzz";
    const cr_token_kind want[] = {CR_TOK_ROUTE, CR_TOK_FRAME, CR_TOK_FRAME, CR_TOK_FRAME,
                                  CR_TOK_TUNNEL};
    for (size_t step = 1; step <= sizeof wire - 1; step++) {
        size_t fed = 0, seen = 0;
        bh_buf_free(&f->buf);
        cr_parser_consumed(&f->p);
        while (seen < 5) {
            cr_token t;
            cr_token_kind k = peek(f, &t);
            if (k == CR_TOK_NEED_MORE) {
                assert_true(fed < sizeof wire - 1);
                size_t n = sizeof wire - 1 - fed < step ? sizeof wire - 1 - fed : step;
                put(f, wire + fed, n);
                fed += n;
                continue;
            }
            assert_int_equal(k, want[seen]);
            take(f, &t);
            seen++;
        }
        /* Everything not consumed is the tunnel's first bytes. */
        assert_int_equal(bh_buf_len(&f->buf) + (sizeof wire - 1 - fed), 2);
    }
}

static void line_frames_mode_makes_every_other_line_one_frame(void **state)
{
    fixture *f = *state;
    cr_token t;
    cr_parser_init(&f->p, MAX_LINE, MAX_FRAME, 1);
    t = put_expect(f, "any text\nTUNNEL\n", 16, CR_TOK_FRAME);
    assert_int_equal(t.wire_len, 9);
    take(f, &t);
    assert_int_equal(peek(f, &t), CR_TOK_TUNNEL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            route_line_is_reported_with_its_name_and_nothing_is_consumed, setup, teardown),
        cmocka_unit_test_setup_teardown(frame_is_incomplete_until_its_last_payload_byte_arrives,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(payload_holding_newlines_and_marker_text_is_one_frame,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(tunnel_marker_leaves_the_bytes_behind_it_in_the_buffer,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(line_of_exactly_max_line_bytes_is_accepted, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            line_without_newline_is_too_long_once_max_line_plus_one_bytes_are_buffered, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            frame_length_above_max_frame_is_rejected_before_its_payload_arrives, setup, teardown),
        cmocka_unit_test_setup_teardown(frame_length_of_many_digits_is_rejected_without_overflow,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(zero_length_frame_is_complete_with_its_header, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(malformed_header_lines_are_bad_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(route_name_longer_than_64_characters_is_a_bad_header, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(tokens_back_to_back_parse_the_same_however_the_bytes_arrive,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(line_frames_mode_makes_every_other_line_one_frame, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
