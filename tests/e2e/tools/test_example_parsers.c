/* test_example_parsers.c - the examples' frame parsers (examples/parsers/)
 * on bh_buf input fed byte by byte and all at once: complete frames come out
 * as owned slices, incomplete ones wait, over-long ones are rejected without
 * allocating. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "frame_parser.h"
#include "line_parser.h"
#include "test_alloc.h"

/* ---- line_parser ---- */

/* A line parser, its input buffer and the line it hands out. */
typedef struct line_fx {
    line_parser lp;
    bh_buf b;
    bh_bytes line;
} line_fx;

/* A line parser for lines of at most max_line bytes and a buffer of at most
 * buf_max bytes holding in[0..n). */
static void line_setup(line_fx *x, size_t max_line, size_t buf_max, const char *in, size_t n)
{
    line_parser_init(&x->lp, max_line);
    assert_int_equal(bh_buf_init(&x->b, buf_max), BH_OK);
    if (n > 0)
        assert_int_equal(bh_buf_append(&x->b, in, n), BH_OK);
}

static void line_parser_splits_complete_lines_and_keeps_the_tail(void **state)
{
    (void)state;
    static const char in[] = "ab\n\nxyz\npart";
    line_fx x;
    line_setup(&x, 16, 17, in, sizeof in - 1);

    assert_int_equal(line_parser_next(&x.lp, &x.b, &x.line), LINE_PARSE_LINE);
    assert_int_equal(x.line.len, 3);
    assert_memory_equal(x.line.ptr, "ab\n", 3);
    bh_bytes_release(&x.line);
    assert_int_equal(line_parser_next(&x.lp, &x.b, &x.line), LINE_PARSE_LINE);
    assert_int_equal(x.line.len, 1);
    bh_bytes_release(&x.line);
    assert_int_equal(line_parser_next(&x.lp, &x.b, &x.line), LINE_PARSE_LINE);
    assert_memory_equal(x.line.ptr, "xyz\n", 4);
    bh_bytes_release(&x.line);
    assert_int_equal(line_parser_next(&x.lp, &x.b, &x.line), LINE_PARSE_NEED_MORE);
    assert_int_equal(bh_buf_len(&x.b), 4);
    assert_memory_equal(bh_buf_data(&x.b), "part", 4);
    bh_buf_free(&x.b);
}

static void line_parser_finds_a_line_fed_one_byte_at_a_time(void **state)
{
    (void)state;
    static const char in[] = "hello world\n";
    line_fx x;
    line_setup(&x, 64, 65, NULL, 0);
    for (size_t i = 0; i + 1 < sizeof in - 1; i++) {
        assert_int_equal(bh_buf_append(&x.b, in + i, 1), BH_OK);
        assert_int_equal(line_parser_next(&x.lp, &x.b, &x.line), LINE_PARSE_NEED_MORE);
        assert_int_equal(x.lp.scanned, i + 1); /* each byte is searched once */
    }
    assert_int_equal(bh_buf_append(&x.b, "\n", 1), BH_OK);
    assert_int_equal(line_parser_next(&x.lp, &x.b, &x.line), LINE_PARSE_LINE);
    assert_int_equal(x.line.len, sizeof in - 1);
    assert_memory_equal(x.line.ptr, in, sizeof in - 1);
    assert_int_equal(x.lp.scanned, 0);
    bh_bytes_release(&x.line);
    bh_buf_free(&x.b);
}

static void line_parser_accepts_max_line_bytes_and_rejects_one_more(void **state)
{
    (void)state;
    line_fx x;
    line_setup(&x, 4, 64, "abcd\nabcde\n", 11);
    assert_int_equal(line_parser_next(&x.lp, &x.b, &x.line), LINE_PARSE_LINE);
    assert_int_equal(x.line.len, 5);
    bh_bytes_release(&x.line);
    assert_int_equal(line_parser_next(&x.lp, &x.b, &x.line), LINE_PARSE_TOO_LONG);
    assert_int_equal(bh_buf_len(&x.b), 6); /* nothing consumed */
    bh_buf_free(&x.b);
}

static void line_parser_rejects_an_unterminated_line_once_past_the_limit(void **state)
{
    (void)state;
    line_fx x;
    line_setup(&x, 4, 5, "abcd", 4);
    assert_int_equal(line_parser_next(&x.lp, &x.b, &x.line), LINE_PARSE_NEED_MORE);
    assert_int_equal(bh_buf_append(&x.b, "e", 1), BH_OK);
    assert_int_equal(line_parser_next(&x.lp, &x.b, &x.line), LINE_PARSE_TOO_LONG);
    bh_buf_free(&x.b);
}

static void line_parser_rejects_null_arguments(void **state)
{
    (void)state;
    line_fx x;
    line_setup(&x, 4, 5, NULL, 0);
    assert_int_equal(line_parser_next(NULL, &x.b, &x.line), LINE_PARSE_ERROR);
    assert_int_equal(line_parser_next(&x.lp, NULL, &x.line), LINE_PARSE_ERROR);
    assert_int_equal(line_parser_next(&x.lp, &x.b, NULL), LINE_PARSE_ERROR);
}

/* ---- frame_parser ---- */

/* A frame parser for payloads of at most max_frame bytes and a buffer sized
 * for its largest frame holding in[0..n). */
static void frame_setup(frame_parser *fp, bh_buf *b, uint32_t max_frame, const uint8_t *in,
                        size_t n)
{
    frame_parser_init(fp, max_frame);
    assert_int_equal(bh_buf_init(b, frame_parser_max_wire(fp)), BH_OK);
    if (n > 0)
        assert_int_equal(bh_buf_append(b, in, n), BH_OK);
}

static void frame_parser_waits_for_header_then_payload(void **state)
{
    (void)state;
    static const uint8_t in[] = {0, 0, 0, 3, 'a', 'b', 'c', 0, 0, 0, 0};
    bh_buf b;
    bh_bytes payload;
    size_t need = 0;
    frame_parser fp;
    frame_setup(&fp, &b, 16, NULL, 0);
    size_t expect_need[] = {4, 3, 2, 1, 3, 2, 1};
    for (size_t i = 0; i < 7; i++) {
        assert_int_equal(frame_parser_next(&fp, &b, &payload, &need, NULL), FRAME_PARSE_NEED_MORE);
        assert_int_equal(need, expect_need[i]);
        assert_int_equal(bh_buf_append(&b, in + i, 1), BH_OK);
    }
    assert_int_equal(frame_parser_next(&fp, &b, &payload, &need, NULL), FRAME_PARSE_FRAME);
    assert_int_equal(payload.len, 3);
    assert_memory_equal(payload.ptr, "abc", 3);
    bh_bytes_release(&payload);
    /* A zero-length frame is a frame too. */
    assert_int_equal(bh_buf_append(&b, in + 7, 4), BH_OK);
    assert_int_equal(frame_parser_next(&fp, &b, &payload, &need, NULL), FRAME_PARSE_FRAME);
    assert_int_equal(payload.len, 0);
    assert_int_equal(bh_buf_len(&b), 0);
    bh_buf_free(&b);
}

static void frame_parser_rejects_oversized_length_without_allocating(void **state)
{
    (void)state;
    static const uint8_t hdr[] = {0xff, 0xff, 0xff, 0xf0};
    bh_buf b;
    bh_bytes payload = {0};
    uint32_t declared = 0;
    frame_parser fp;
    test_alloc_stats before, after;
    test_alloc_install(0);
    frame_setup(&fp, &b, 1024, hdr, sizeof hdr);
    test_alloc_stats_get(&before);
    assert_int_equal(frame_parser_next(&fp, &b, &payload, NULL, &declared), FRAME_PARSE_TOO_LONG);
    test_alloc_stats_get(&after);
    assert_int_equal(declared, 0xfffffff0u);
    assert_int_equal(after.attempts, before.attempts);
    assert_int_equal(bh_buf_len(&b), 4);
    assert_null(payload.ptr);
    bh_buf_free(&b);
    test_alloc_uninstall();
}

static void frame_parser_accepts_exactly_max_frame(void **state)
{
    (void)state;
    uint8_t in[4 + 8] = {0, 0, 0, 8, '1', '2', '3', '4', '5', '6', '7', '8'};
    bh_buf b;
    bh_bytes payload;
    frame_parser fp;
    frame_setup(&fp, &b, 8, in, sizeof in);
    assert_int_equal(frame_parser_next(&fp, &b, &payload, NULL, NULL), FRAME_PARSE_FRAME);
    assert_int_equal(payload.len, 8);
    bh_bytes_release(&payload);
    in[3] = 9;
    assert_int_equal(bh_buf_append(&b, in, 4), BH_OK);
    assert_int_equal(frame_parser_next(&fp, &b, &payload, NULL, NULL), FRAME_PARSE_TOO_LONG);
    bh_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(line_parser_splits_complete_lines_and_keeps_the_tail),
        cmocka_unit_test(line_parser_finds_a_line_fed_one_byte_at_a_time),
        cmocka_unit_test(line_parser_accepts_max_line_bytes_and_rejects_one_more),
        cmocka_unit_test(line_parser_rejects_an_unterminated_line_once_past_the_limit),
        cmocka_unit_test(line_parser_rejects_null_arguments),
        cmocka_unit_test(frame_parser_waits_for_header_then_payload),
        cmocka_unit_test(frame_parser_rejects_oversized_length_without_allocating),
        cmocka_unit_test(frame_parser_accepts_exactly_max_frame),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
