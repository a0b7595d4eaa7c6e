/* test_reader_handover.c - bh_reader_start() on a stream another bh_reader
 * is reading takes the stream over without a pause: later bytes reach the
 * new reader only, the old one is stopped (its buffer keeps what it read),
 * and stopping the old one afterwards does not stop the new one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <bytes_handoff.h>
#include <bytes_handoff/uv.h>

#include "test_alloc.h"
#include "test_main.h"
#include "test_uv.h"

#define RUN_MS 10000

typedef struct side {
    bh_buf buf;
    bh_reader reader;
    size_t calls;
} side;

typedef struct fixture {
    uv_loop_t loop;
    uv_pipe_t a, b; /* a is read, b written */
    side first, second;
    size_t want;    /* bytes the second reader must hold to stop the loop */
} fixture;

static void on_read(bh_reader *r, int status, void *ctx)
{
    fixture *f = ctx;
    side *s = r == &f->first.reader ? &f->first : &f->second;
    assert_int_equal(status, BH_OK);
    s->calls++;
    if (s == &f->first || bh_buf_len(&s->buf) >= f->want)
        uv_stop(&f->loop);
}

static void send_text(fixture *f, const char *text)
{
    uv_buf_t b = uv_buf_init((char *)text, (unsigned)strlen(text));
    assert_int_equal(uv_try_write((uv_stream_t *)&f->b, &b, 1), (int)strlen(text));
}


static void start_side(fixture *f, side *s)
{
    assert_int_equal(bh_buf_init(&s->buf, 4096), BH_OK);
    assert_int_equal(bh_reader_init(&s->reader, (uv_stream_t *)&f->a, &s->buf, 1024, on_read, f),
                     BH_OK);
    assert_int_equal(bh_reader_start(&s->reader), BH_OK);
}

static void second_reader_takes_the_stream_over_and_the_first_stops(void **state)
{
    (void)state;
    fixture f;
    memset(&f, 0, sizeof f);
    assert_int_equal(uv_loop_init(&f.loop), 0);
    assert_int_equal(test_uv_socketpair(&f.loop, &f.a, &f.b), 0);
    start_side(&f, &f.first);
    send_text(&f, "parsed ");
    uv_run(&f.loop, UV_RUN_DEFAULT); /* stopped by the first callback */
    assert_int_equal(f.first.calls, 1);

    start_side(&f, &f.second); /* the hand-over */
    f.want = 5;
    send_text(&f, "raw\n!");
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_int_equal(f.first.calls, 1);
    assert_memory_equal(bh_buf_data(&f.first.buf), "parsed ", 7);
    assert_memory_equal(bh_buf_data(&f.second.buf), "raw\n!", 5);

    /* Stopping the first reader again touches nothing of the second's. */
    assert_int_equal(bh_reader_stop(&f.first.reader), BH_OK);
    f.want = 8;
    send_text(&f, "end");
    uv_run(&f.loop, UV_RUN_DEFAULT);
    assert_memory_equal(bh_buf_data(&f.second.buf), "raw\n!end", 8);
    assert_int_equal(f.first.calls, 1);

    bh_reader_close(&f.first.reader);
    bh_reader_close(&f.second.reader);
    bh_buf_free(&f.first.buf);
    bh_buf_free(&f.second.buf);
    assert_int_equal(test_uv_loop_teardown(&f.loop), 0);
}

TEST_MAIN(test_alloc_checked(second_reader_takes_the_stream_over_and_the_first_stops))
