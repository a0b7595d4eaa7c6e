/* test_example_parsers.c - the examples' frame parsers (examples/parsers/)
 * on bh_buf input fed byte by byte and all at once: complete frames come out
 * as owned slices, incomplete ones wait, over-long ones are rejected without
 * allocating. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "parsers/frame_parser.h"
#include "parsers/line_parser.h"
#include "test_alloc.h"

/* ---- line_parser ---- */

static void line_parser_splits_complete_lines_and_keeps_the_tail(void **state)
{
    (void)state;
    static const char in[] = "ab\n\nxyz\npart";
    bh_buf b;
    bh_bytes line;
    line_parser lp;
    line_parser_init(&lp, 16);
    assert_int_equal(bh_buf_init(&b, 17), BH_OK);
    assert_int_equal(bh_buf_append(&b, in, sizeof in - 1), BH_OK);

    assert_int_equal(line_parser_next(&lp, &b, &line), LINE_PARSE_LINE);
    assert_int_equal(line.len, 3);
    assert_memory_equal(line.ptr, "ab\n", 3);
    bh_bytes_release(&line);
    assert_int_equal(line_parser_next(&lp, &b, &line), LINE_PARSE_LINE);
    assert_int_equal(line.len, 1);
    bh_bytes_release(&line);
    assert_int_equal(line_parser_next(&lp, &b, &line), LINE_PARSE_LINE);
    assert_memory_equal(line.ptr, "xyz\n", 4);
    bh_bytes_release(&line);
    assert_int_equal(line_parser_next(&lp, &b, &line), LINE_PARSE_NEED_MORE);
    assert_int_equal(bh_buf_len(&b), 4);
    assert_memory_equal(bh_buf_data(&b), "part", 4);
    bh_buf_free(&b);
}

static void line_parser_finds_a_line_fed_one_byte_at_a_time(void **state)
{
    (void)state;
    static const char in[] = "hello world\n";
    bh_buf b;
    bh_bytes line;
    line_parser lp;
    line_parser_init(&lp, 64);
    assert_int_equal(bh_buf_init(&b, 65), BH_OK);
    for (size_t i = 0; i + 1 < sizeof in - 1; i++) {
        assert_int_equal(bh_buf_append(&b, in + i, 1), BH_OK);
        assert_int_equal(line_parser_next(&lp, &b, &line), LINE_PARSE_NEED_MORE);
        assert_int_equal(lp.scanned, i + 1); /* each byte is searched once */
    }
    assert_int_equal(bh_buf_append(&b, "\n", 1), BH_OK);
    assert_int_equal(line_parser_next(&lp, &b, &line), LINE_PARSE_LINE);
    assert_int_equal(line.len, sizeof in - 1);
    assert_memory_equal(line.ptr, in, sizeof in - 1);
    assert_int_equal(lp.scanned, 0);
    bh_bytes_release(&line);
    bh_buf_free(&b);
}

static void line_parser_accepts_max_line_bytes_and_rejects_one_more(void **state)
{
    (void)state;
    bh_buf b;
    bh_bytes line;
    line_parser lp;
    line_parser_init(&lp, 4);
    assert_int_equal(bh_buf_init(&b, 64), BH_OK);
    assert_int_equal(bh_buf_append(&b, "abcd\nabcde\n", 11), BH_OK);
    assert_int_equal(line_parser_next(&lp, &b, &line), LINE_PARSE_LINE);
    assert_int_equal(line.len, 5);
    bh_bytes_release(&line);
    assert_int_equal(line_parser_next(&lp, &b, &line), LINE_PARSE_TOO_LONG);
    assert_int_equal(bh_buf_len(&b), 6); /* nothing consumed */
    bh_buf_free(&b);
}

static void line_parser_rejects_an_unterminated_line_once_past_the_limit(void **state)
{
    (void)state;
    bh_buf b;
    bh_bytes line;
    line_parser lp;
    line_parser_init(&lp, 4);
    assert_int_equal(bh_buf_init(&b, 5), BH_OK);
    assert_int_equal(bh_buf_append(&b, "abcd", 4), BH_OK);
    assert_int_equal(line_parser_next(&lp, &b, &line), LINE_PARSE_NEED_MORE);
    assert_int_equal(bh_buf_append(&b, "e", 1), BH_OK);
    assert_int_equal(line_parser_next(&lp, &b, &line), LINE_PARSE_TOO_LONG);
    bh_buf_free(&b);
}

static void line_parser_rejects_null_arguments(void **state)
{
    (void)state;
    bh_buf b;
    bh_bytes line;
    line_parser lp;
    line_parser_init(&lp, 4);
    assert_int_equal(bh_buf_init(&b, 5), BH_OK);
    assert_int_equal(line_parser_next(NULL, &b, &line), LINE_PARSE_ERROR);
    assert_int_equal(line_parser_next(&lp, NULL, &line), LINE_PARSE_ERROR);
    assert_int_equal(line_parser_next(&lp, &b, NULL), LINE_PARSE_ERROR);
}

/* ---- frame_parser ---- */

static void frame_parser_waits_for_header_then_payload(void **state)
{
    (void)state;
    static const uint8_t in[] = {0, 0, 0, 3, 'a', 'b', 'c', 0, 0, 0, 0};
    bh_buf b;
    bh_bytes payload;
    size_t need = 0;
    frame_parser fp;
    frame_parser_init(&fp, 16);
    assert_int_equal(bh_buf_init(&b, frame_parser_max_wire(&fp)), BH_OK);
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
    frame_parser_init(&fp, 1024);
    test_alloc_install(0);
    assert_int_equal(bh_buf_init(&b, frame_parser_max_wire(&fp)), BH_OK);
    assert_int_equal(bh_buf_append(&b, hdr, sizeof hdr), BH_OK);
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
    frame_parser_init(&fp, 8);
    assert_int_equal(bh_buf_init(&b, frame_parser_max_wire(&fp)), BH_OK);
    assert_int_equal(bh_buf_append(&b, in, sizeof in), BH_OK);
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
