/* test_reader.c - bh_reader over real AF_UNIX socketpairs, a pipe(2) and a
 * pseudo-terminal, on real libuv loops: fragmentation, EOF with a partial
 * tail, max-length and allocation failures, and what the user callback may
 * do (stop, restart, take the tail, close the stream). */
#define _XOPEN_SOURCE 700 /* posix_openpt, grantpt, unlockpt, ptsname */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <cmocka.h>

#include "reader_fixture.h"
#include "test_alloc.h"
#include "test_main.h"
#include "test_uv.h"

#define RUN_TIMEOUT_MS 20000

typedef struct pair_fixture {
    uv_loop_t loop;
    uv_pipe_t a; /* read side */
    uv_pipe_t b; /* write side */
    collector c;
    feeder f;
    uint8_t *input;
    size_t input_len;
} pair_fixture;

static pair_fixture *pair_new(size_t max_len, size_t read_reserve)
{
    pair_fixture *p = calloc(1, sizeof *p);
    assert_non_null(p);
    assert_int_equal(uv_loop_init(&p->loop), 0);
    assert_int_equal(test_uv_socketpair(&p->loop, &p->a, &p->b), 0);
    collector_init(&p->c, (uv_stream_t *)&p->a, max_len, read_reserve);
    return p;
}

static void pair_feed(pair_fixture *p, feed_mode mode, int lockstep)
{
    feeder_init(&p->f, (uv_stream_t *)&p->b, p->input, p->input_len, mode, 42, lockstep, 1);
    p->c.feed = &p->f;
}

static void pair_run(pair_fixture *p)
{
    collector_run(&p->c, &p->loop, RUN_TIMEOUT_MS);
}

static void pair_free(pair_fixture *p)
{
    collector_teardown(&p->c, &p->loop);
    free(p->input);
    free(p);
}

/* How the input is written: fragmentation, and whether each fragment waits
 * for the previous one to be read (lockstep). */
typedef struct feeding {
    feed_mode mode;
    int lockstep;
} feeding;

static const feeding ONE_BYTE_LOCKSTEP = {FEED_ONE_BYTE, 1}, RANDOM_LOCKSTEP = {FEED_RANDOM, 1},
                     ALL_AT_ONCE = {FEED_ALL, 1}, RANDOM_UNSYNCHRONISED = {FEED_RANDOM, 0};

/* Runs the whole input through a socketpair in the given fragmentation and
 * checks every line and the partial tail byte for byte. */
static void lines_survive_fragmentation(void **state)
{
    const feeding *how = *state;
    feed_mode mode = how->mode;
    int lockstep = how->lockstep;
    pair_fixture *p = pair_new(4096, 0);
    p->input = make_lines(7, 300, 60, 17, &p->input_len);
    pair_feed(p, mode, lockstep);
    pair_run(p);

    assert_int_equal(p->f.write_error, 0);
    assert_int_equal(p->c.final_calls, 1);
    assert_int_equal(p->c.final_status, UV_EOF);
    assert_int_equal(p->c.received, p->input_len);
    assert_int_equal(p->c.tail_at_final, 17);
    collector_assert_matches(&p->c, p->input, p->input_len);
    assert_int_equal(p->c.nlines, 300);
    if (lockstep && mode != FEED_ALL) /* each fragment fits one read */
        assert_int_equal(p->c.ok_calls, p->f.writes);
    pair_free(p);
}

static void never_called(bh_reader *r, int status, void *ctx)
{
    (void)r;
    (void)status;
    (void)ctx;
    fail();
}

static void init_rejects_null_arguments_and_stores_reader_in_stream_data(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_pipe_t a, b;
    bh_buf buf;
    bh_reader r;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(test_uv_socketpair(&loop, &a, &b), 0);
    assert_int_equal(bh_buf_init(&buf, 64), BH_OK);
    bh_read_cb cb = never_called;

    assert_int_equal(bh_reader_init(NULL, (uv_stream_t *)&a, &buf, 0, cb, NULL), BH_EINVAL);
    assert_int_equal(bh_reader_init(&r, NULL, &buf, 0, cb, NULL), BH_EINVAL);
    assert_int_equal(bh_reader_init(&r, (uv_stream_t *)&a, NULL, 0, cb, NULL), BH_EINVAL);
    assert_int_equal(bh_reader_init(&r, (uv_stream_t *)&a, &buf, 0, NULL, NULL), BH_EINVAL);
    a.data = NULL;
    assert_int_equal(bh_reader_init(&r, (uv_stream_t *)&a, &buf, 0, cb, NULL), BH_OK);
    assert_ptr_equal(a.data, &r);
    assert_int_equal(bh_reader_start(NULL), BH_EINVAL);
    assert_int_equal(bh_reader_stop(NULL), BH_EINVAL);
    assert_int_equal(bh_reader_stop(&r), BH_OK); /* not started: nothing to do */

    bh_buf_free(&buf);
    assert_int_equal(test_uv_loop_teardown(&loop), 0);
}

static void stop_on_first_read(bh_reader *r, int status, void *ctx)
{
    assert_int_equal(status, BH_OK);
    ++*(int *)ctx;
    assert_int_equal(bh_reader_stop(r), BH_OK);
}

/* read_reserve 0 selects BH_READ_RESERVE_DEFAULT: the first read's block is
 * that large (plus its header), in a buffer that could hold far more. */
static void zero_read_reserve_selects_the_default(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_pipe_t a, b;
    bh_buf buf;
    bh_reader r;
    int reads = 0;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(test_uv_socketpair(&loop, &a, &b), 0);
    assert_int_equal(bh_buf_init(&buf, 1u << 20), BH_OK);
    assert_int_equal(bh_reader_init(&r, (uv_stream_t *)&a, &buf, 0, stop_on_first_read, &reads),
                     BH_OK);
    assert_int_equal(bh_reader_start(&r), BH_OK);
    uv_buf_t one = uv_buf_init((char *)"x", 1);
    assert_int_equal(uv_try_write((uv_stream_t *)&b, &one, 1), 1);
    for (int i = 0; i < 1000 && reads == 0; i++)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(reads, 1);
    test_alloc_stats st = test_alloc_stats_now();
    assert_true(st.max_request >= BH_READ_RESERVE_DEFAULT);
    assert_true(st.max_request <= BH_READ_RESERVE_DEFAULT + 64);
    bh_buf_free(&buf);
    assert_int_equal(test_uv_loop_teardown(&loop), 0);
}

static void eof_is_delivered_once_with_the_partial_tail_readable(void **state)
{
    (void)state;
    pair_fixture *p = pair_new(4096, 0);
    static const char msg[] = "one\ntwo\npartial";
    p->input = malloc(sizeof msg);
    memcpy(p->input, msg, sizeof msg - 1);
    p->input_len = sizeof msg - 1;
    pair_feed(p, FEED_ALL, 1);
    pair_run(p);

    assert_int_equal(p->c.final_calls, 1);
    assert_int_equal(p->c.final_status, UV_EOF);
    assert_int_equal(bh_buf_len(&p->c.buf), 7);
    assert_memory_equal(bh_buf_data(&p->c.buf), "partial", 7);
    /* The tail is still splittable after EOF. */
    bh_bytes tail;
    assert_int_equal(bh_buf_freeze(&p->c.buf, &tail), BH_OK);
    assert_int_equal(tail.len, 7);
    assert_memory_equal(tail.ptr, "partial", 7);
    bh_bytes_release(&tail);
    assert_int_equal(bh_reader_start(&p->c.reader), BH_ECLOSED);
    assert_int_equal(bh_reader_stop(&p->c.reader), BH_OK);
    pair_free(p);
}

static void full_buffer_without_progress_reports_etoolong_once_and_stops(void **state)
{
    (void)state;
    pair_fixture *p = pair_new(64, 0);
    p->input = malloc(300);
    memset(p->input, 'x', 300); /* no '\n': the callback can never consume */
    p->input_len = 300;
    pair_feed(p, FEED_RANDOM, 1);
    p->f.max_chunk = 10;
    test_alloc_install(0);
    pair_run(p);

    test_alloc_stats st;
    test_alloc_stats_get(&st);
    assert_true(p->c.ok_calls >= 1);
    assert_int_equal(p->c.final_calls, 1); /* reported once; EOF never follows */
    assert_int_equal(p->c.final_status, BH_ETOOLONG);
    assert_int_equal(p->c.max_len_seen, 64);
    assert_int_equal(bh_buf_len(&p->c.buf), 64);
    assert_int_equal(p->c.received, 64);
    assert_int_equal(bh_buf_spare(&p->c.buf), 0);
    assert_int_equal(st.live, 1); /* one block, held by the buffer */
    assert_int_equal(bh_reader_start(&p->c.reader), BH_ECLOSED);
    pair_free(p);
    test_alloc_uninstall();
}

static void full_buffer_is_reported_without_waiting_for_more_input(void **state)
{
    (void)state;
    pair_fixture *p = pair_new(16, 0);
    p->input = malloc(16);
    memset(p->input, 'y', 16); /* exactly max_len, then the peer waits */
    p->input_len = 16;
    pair_feed(p, FEED_ALL, 0);
    p->f.shutdown = 0;
    pair_run(p);

    assert_int_equal(p->c.final_calls, 1);
    assert_int_equal(p->c.final_status, BH_ETOOLONG);
    assert_int_equal(bh_buf_len(&p->c.buf), 16);
    pair_free(p);
}

static void consume_all_but_the_32nd_read(collector *c, int status)
{
    if (status == BH_OK && c->ok_calls < 32)
        assert_int_equal(bh_buf_advance(&c->buf, bh_buf_len(&c->buf)), BH_OK);
}

/* libuv reads a readable stream up to 32 times in a row, then waits for the
 * next event. When the 32nd read fills the buffer and no more bytes come,
 * only the check after the callback can report it. */
static void full_buffer_at_the_end_of_a_read_burst_is_reported_without_more_input(void **state)
{
    (void)state;
    pair_fixture *p = pair_new(64, 0);
    p->input = malloc(32 * 64);
    memset(p->input, 'q', 32 * 64);
    p->input_len = 32 * 64;
    pair_feed(p, FEED_ALL, 0); /* all of it in the socket before the first read */
    p->f.shutdown = 0;
    p->c.split_lines = 0;
    p->c.hook = consume_all_but_the_32nd_read;
    pair_run(p);

    assert_int_equal(p->c.ok_calls, 32);
    assert_int_equal(p->c.final_calls, 1);
    assert_int_equal(p->c.final_status, BH_ETOOLONG);
    assert_int_equal(p->c.received, 32 * 64);
    pair_free(p);
}

static void restart_with_a_full_buffer_reports_etoolong_on_the_next_read(void **state)
{
    (void)state;
    pair_fixture *p = pair_new(8, 0);
    assert_int_equal(bh_buf_append(&p->c.buf, "abcdefgh", 8), BH_OK);
    p->c.left = 8;
    p->input = malloc(1);
    p->input[0] = 'z';
    p->input_len = 1;
    pair_feed(p, FEED_ALL, 0);
    pair_run(p);

    assert_int_equal(p->c.ok_calls, 0);
    assert_int_equal(p->c.final_calls, 1);
    assert_int_equal(p->c.final_status, BH_ETOOLONG);
    assert_int_equal(bh_buf_len(&p->c.buf), 8);
    assert_memory_equal(bh_buf_data(&p->c.buf), "abcdefgh", 8);
    pair_free(p);
}

/* ---- what the callback may do ---- */

typedef struct pause_state {
    uv_timer_t timer;
    int paused;
    size_t calls_while_paused;
    size_t resumes;
} pause_state;

static void resume_later(uv_timer_t *t)
{
    pair_fixture *p = t->data;
    pause_state *ps = p->c.test_ctx;
    ps->paused = 0;
    ps->resumes++;
    assert_int_equal(bh_reader_start(&p->c.reader), BH_OK);
    assert_int_equal(bh_reader_start(&p->c.reader), BH_OK); /* idempotent */
    uv_close((uv_handle_t *)t, NULL);
}

static void stop_on_first_data(collector *c, int status)
{
    pause_state *ps = c->test_ctx;
    if (ps->paused)
        ps->calls_while_paused++;
    if (status == BH_OK && ps->resumes == 0 && !ps->paused) {
        ps->paused = 1;
        assert_int_equal(bh_reader_stop(&c->reader), BH_OK);
        assert_int_equal(bh_reader_stop(&c->reader), BH_OK); /* idempotent */
    }
}

static void writer_done_then_resume(feeder *f)
{
    pair_fixture *p = f->data_ctx;
    pause_state *ps = p->c.test_ctx;
    /* Everything is written and shut down while the reader is paused; give
     * the loop a few turns in which a still-reading stream would fire. */
    uv_timer_init(&p->loop, &ps->timer);
    ps->timer.data = p;
    uv_timer_start(&ps->timer, resume_later, 20, 0);
}

static void stop_inside_callback_pauses_until_started_again(void **state)
{
    (void)state;
    pause_state ps = {0};
    pair_fixture *p = pair_new(1 << 20, 0);
    p->input = make_lines(11, 200, 40, 5, &p->input_len);
    pair_feed(p, FEED_RANDOM, 0);
    p->f.on_done = writer_done_then_resume;
    p->f.data_ctx = p;
    p->c.hook = stop_on_first_data;
    p->c.test_ctx = &ps;
    pair_run(p);

    assert_int_equal(ps.resumes, 1);
    assert_int_equal(ps.calls_while_paused, 0);
    assert_int_equal(p->c.final_calls, 1);
    assert_int_equal(p->c.final_status, UV_EOF);
    collector_assert_matches(&p->c, p->input, p->input_len);
    assert_int_equal(p->c.nlines, 200);
    pair_free(p);
}

static void stop_then_start(collector *c, int status)
{
    if (status != BH_OK)
        return;
    assert_int_equal(bh_reader_stop(&c->reader), BH_OK);
    assert_int_equal(bh_reader_start(&c->reader), BH_OK);
}

static void stop_and_start_inside_callback_keeps_reading(void **state)
{
    (void)state;
    pair_fixture *p = pair_new(4096, 0);
    p->input = make_lines(12, 100, 50, 3, &p->input_len);
    pair_feed(p, FEED_RANDOM, 1);
    p->c.hook = stop_then_start;
    pair_run(p);

    assert_int_equal(p->c.final_calls, 1);
    assert_int_equal(p->c.final_status, UV_EOF);
    assert_int_equal(p->c.ok_calls, p->f.writes);
    collector_assert_matches(&p->c, p->input, p->input_len);
    pair_free(p);
}

typedef struct tail_state {
    bh_buf tail;
    int taken;
    size_t ok_calls_after;
} tail_state;

static void take_tail_once(collector *c, int status)
{
    tail_state *ts = c->test_ctx;
    if (status != BH_OK)
        return;
    if (ts->taken) {
        ts->ok_calls_after++;
        return;
    }
    if (bh_buf_len(&c->buf) == 0)
        return;
    assert_int_equal(bh_buf_take_tail(&c->buf, &ts->tail), BH_OK);
    ts->taken = 1;
    assert_int_equal(bh_buf_len(&c->buf), 0);
    assert_true(bh_buf_len(&ts->tail) > 0);
    /* The tail's bytes come next in the stream. */
    collector_record(c, bh_buf_data(&ts->tail), bh_buf_len(&ts->tail));
}

static void take_tail_inside_callback_leaves_the_buffer_empty_and_usable(void **state)
{
    (void)state;
    tail_state ts = {0};
    pair_fixture *p = pair_new(4096, 0);
    p->input = make_lines(13, 100, 50, 9, &p->input_len);
    pair_feed(p, FEED_RANDOM, 1);
    p->f.max_chunk = 7; /* small fragments: the first read ends mid-line */
    p->c.keep_lines = 0;
    p->c.hook = take_tail_once;
    p->c.test_ctx = &ts;
    pair_run(p);

    assert_int_equal(ts.taken, 1);
    assert_true(ts.ok_calls_after > 0);
    assert_int_equal(p->c.final_status, UV_EOF);
    assert_int_equal(p->c.received, p->input_len);
    collector_assert_matches(&p->c, p->input, p->input_len);
    bh_buf_free(&ts.tail);
    pair_free(p);
}

/* The reader, its buffer and the stream live in one allocation freed by the
 * close callback, so a touch after close is a use-after-free under ASan. */
typedef struct closing_conn {
    uv_pipe_t stream;
    collector c;
    size_t *ok_calls;
    size_t *final_calls;
    int *closed;
} closing_conn;

static void free_conn(uv_handle_t *h)
{
    closing_conn *cc = (closing_conn *)h; /* the stream is its first member */
    *cc->closed = 1;
    collector_free(&cc->c);
    free(cc);
}

static void close_on_first_data(collector *c, int status)
{
    closing_conn *cc = c->test_ctx;
    *cc->ok_calls = c->ok_calls;
    *cc->final_calls = c->final_calls;
    if (status == BH_OK)
        uv_close((uv_handle_t *)&cc->stream, free_conn);
}

static void uv_close_inside_callback_ends_reading_safely(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_pipe_t peer;
    feeder f;
    size_t ok_calls = 0, final_calls = 0;
    int closed = 0;
    size_t len;
    uint8_t *input = make_lines(14, 200, 40, 0, &len);
    closing_conn *cc = calloc(1, sizeof *cc);
    assert_non_null(cc);
    cc->ok_calls = &ok_calls;
    cc->final_calls = &final_calls;
    cc->closed = &closed;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(test_uv_socketpair(&loop, &cc->stream, &peer), 0);
    collector_init(&cc->c, (uv_stream_t *)&cc->stream, 4096, 0);
    cc->c.hook = close_on_first_data;
    cc->c.test_ctx = cc;
    feeder_init(&f, (uv_stream_t *)&peer, input, len, FEED_RANDOM, 3, 0, 1);
    assert_int_equal(bh_reader_start(&cc->c.reader), BH_OK);
    feeder_pump(&f, 0);
    assert_int_equal(test_uv_run(&loop, RUN_TIMEOUT_MS), 0);

    assert_int_equal(closed, 1);
    assert_int_equal(ok_calls, 1);
    assert_int_equal(final_calls, 0);
    assert_int_equal(test_uv_loop_teardown(&loop), 0);
    free(input);
}

static void fail_allocations_after_first_data(collector *c, int status)
{
    (void)c;
    if (status == BH_OK)
        test_alloc_fail_all(1);
}

static void enomem_reaches_the_callback_once_and_stops_reading(void **state)
{
    (void)state;
    test_alloc_install(0);
    pair_fixture *p = pair_new(1 << 20, 0);
    static const char msg[] = "abc";
    p->input = malloc(8);
    memcpy(p->input, msg, 3);
    memset(p->input + 3, 'd', 5);
    p->input_len = 8;
    pair_feed(p, FEED_ONE_BYTE, 1);
    p->f.shutdown = 0;
    p->c.split_lines = 0;
    p->c.hook = fail_allocations_after_first_data;
    pair_run(p);
    test_alloc_fail_all(0);

    test_alloc_stats st;
    test_alloc_stats_get(&st);
    assert_true(st.failed >= 1);
    assert_int_equal(p->c.final_calls, 1);
    assert_int_equal(p->c.final_status, BH_ENOMEM);
    /* Whatever was read before the failure is still there, unchanged. */
    assert_int_equal(bh_buf_len(&p->c.buf), p->c.received);
    assert_memory_equal(bh_buf_data(&p->c.buf), p->input, p->c.received);
    assert_int_equal(bh_reader_start(&p->c.reader), BH_ECLOSED);
    pair_free(p);
    test_alloc_uninstall();
}

static void enomem_on_the_first_read_reaches_the_callback_with_nothing_read(void **state)
{
    (void)state;
    test_alloc_install(0);
    pair_fixture *p = pair_new(1 << 20, 0);
    p->input = malloc(4);
    memcpy(p->input, "abc\n", 4);
    p->input_len = 4;
    pair_feed(p, FEED_ALL, 0);
    test_alloc_fail_all(1);
    pair_run(p);
    test_alloc_fail_all(0);

    assert_int_equal(p->c.ok_calls, 0);
    assert_int_equal(p->c.final_calls, 1);
    assert_int_equal(p->c.final_status, BH_ENOMEM);
    assert_int_equal(bh_buf_len(&p->c.buf), 0);
    pair_free(p);
    test_alloc_uninstall();
}

/* ---- steady state ---- */

typedef struct warm_state {
    size_t warmup_calls;
    size_t allocs_at_warm;
    size_t calls_after;
    int warm;
} warm_state;

static void count_after_warmup(collector *c, int status)
{
    warm_state *ws = c->test_ctx;
    if (status != BH_OK)
        return;
    if (ws->warm) {
        ws->calls_after++;
    } else if (c->ok_calls == ws->warmup_calls) {
        test_alloc_stats st;
        test_alloc_stats_get(&st);
        ws->allocs_at_warm = st.allocs;
        ws->warm = 1;
    }
}

static void steady_state_reads_allocate_nothing(void **state)
{
    (void)state;
    warm_state ws = {.warmup_calls = 20};
    test_alloc_install(0);
    pair_fixture *p = pair_new(1 << 20, 0);
    p->input = make_lines(15, 20000, 100, 0, &p->input_len);
    pair_feed(p, FEED_RANDOM, 1);
    p->f.max_chunk = 8192;
    p->c.keep_lines = 0; /* each line handed off and released */
    p->c.hook = count_after_warmup;
    p->c.test_ctx = &ws;
    pair_run(p);

    test_alloc_stats st;
    test_alloc_stats_get(&st);
    assert_int_equal(p->c.final_status, UV_EOF);
    collector_assert_matches(&p->c, p->input, p->input_len);
    print_message("steady state: %zu reads after warm-up, %zu allocations (warm-up: %zu)\n",
                  ws.calls_after, st.allocs - ws.allocs_at_warm, ws.allocs_at_warm);
    assert_true(ws.allocs_at_warm >= 1); /* the buffer did grow while warming up */
    assert_true(ws.calls_after >= 100);
    assert_int_equal(st.allocs - ws.allocs_at_warm, 0);
    pair_free(p);
    test_alloc_uninstall();
}

/* ---- other stream kinds ---- */

/* pipe(2) has no half-close: closing the write end is the EOF. */
static void close_write_end(feeder *f) { uv_close((uv_handle_t *)f->out, NULL); }

static void pipe_fd_stream_yields_the_same_lines(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_pipe_t rd, wr;
    collector c;
    feeder f;
    int fds[2];
    size_t len;
    uint8_t *input = make_lines(16, 300, 80, 11, &len);
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(uv_pipe_init(&loop, &rd, 0), 0);
    assert_int_equal(uv_pipe_init(&loop, &wr, 0), 0);
    assert_int_equal(uv_pipe_open(&rd, fds[0]), 0);
    assert_int_equal(uv_pipe_open(&wr, fds[1]), 0);
    collector_init(&c, (uv_stream_t *)&rd, 4096, 0);
    feeder_init(&f, (uv_stream_t *)&wr, input, len, FEED_RANDOM, 5, 1, 0);
    f.on_done = close_write_end;
    c.feed = &f;
    collector_run(&c, &loop, RUN_TIMEOUT_MS);

    assert_int_equal(c.final_calls, 1);
    assert_int_equal(c.final_status, UV_EOF);
    collector_assert_matches(&c, input, len);
    assert_int_equal(c.nlines, 300);
    collector_teardown(&c, &loop);
    free(input);
}

typedef struct tty_ctx {
    uv_tty_t tty;
    size_t len; /* bytes written to it */
} tty_ctx;

static void close_tty_once_all_read(collector *c, int status)
{
    tty_ctx *t = c->test_ctx;
    if (status == BH_OK && c->received == t->len)
        uv_close((uv_handle_t *)&t->tty, NULL);
}

static void tty_stream_yields_the_same_lines(void **state)
{
    (void)state;
    uv_loop_t loop;
    tty_ctx t;
    collector c;
    struct termios raw;
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0) {
        if (master >= 0)
            close(master);
        skip(); /* no pseudo-terminals here */
    }
    int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
    assert_true(slave >= 0);
    assert_int_equal(tcgetattr(slave, &raw), 0);
    cfmakeraw(&raw); /* bytes pass unchanged, no echo */
    assert_int_equal(tcsetattr(slave, TCSANOW, &raw), 0);
    uint8_t *input = make_lines(17, 40, 40, 6, &t.len); /* fits the pty buffer */
    size_t len = t.len;
    assert_true(len < 2048);

    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(uv_tty_init(&loop, &t.tty, slave, 1), 0);
    collector_init(&c, (uv_stream_t *)&t.tty, 4096, 0);
    c.hook = close_tty_once_all_read;
    c.test_ctx = &t;
    assert_int_equal(bh_reader_start(&c.reader), BH_OK);
    assert_int_equal(write(master, input, len), (ssize_t)len);
    assert_int_equal(test_uv_run(&loop, RUN_TIMEOUT_MS), 0);

    assert_int_equal(c.received, len);
    assert_int_equal(c.final_calls, 0);
    collector_assert_matches(&c, input, len);
    assert_int_equal(c.nlines, 40);
    collector_teardown(&c, &loop);
    assert_int_equal(close(slave), 0); /* libuv reads a reopened descriptor */
    assert_int_equal(close(master), 0);
    free(input);
}

TEST_MAIN(test_alloc_checked_case(one_byte_writes_yield_the_same_lines_byte_exact,
                                  lines_survive_fragmentation, &ONE_BYTE_LOCKSTEP),
          test_alloc_checked_case(random_size_writes_yield_the_same_lines_byte_exact,
                                  lines_survive_fragmentation, &RANDOM_LOCKSTEP),
          test_alloc_checked_case(single_write_yields_the_same_lines_byte_exact,
                                  lines_survive_fragmentation, &ALL_AT_ONCE),
          test_alloc_checked_case(unsynchronised_random_writes_yield_the_same_lines_byte_exact,
                                  lines_survive_fragmentation, &RANDOM_UNSYNCHRONISED),
          test_alloc_checked(init_rejects_null_arguments_and_stores_reader_in_stream_data),
          test_alloc_checked(zero_read_reserve_selects_the_default),
          test_alloc_checked(eof_is_delivered_once_with_the_partial_tail_readable),
          test_alloc_checked(full_buffer_without_progress_reports_etoolong_once_and_stops),
          test_alloc_checked(full_buffer_is_reported_without_waiting_for_more_input),
          test_alloc_checked(full_buffer_at_the_end_of_a_read_burst_is_reported_without_more_input),
          test_alloc_checked(restart_with_a_full_buffer_reports_etoolong_on_the_next_read),
          test_alloc_checked(stop_inside_callback_pauses_until_started_again),
          test_alloc_checked(stop_and_start_inside_callback_keeps_reading),
          test_alloc_checked(take_tail_inside_callback_leaves_the_buffer_empty_and_usable),
          test_alloc_checked(uv_close_inside_callback_ends_reading_safely),
          test_alloc_checked(enomem_reaches_the_callback_once_and_stops_reading),
          test_alloc_checked(enomem_on_the_first_read_reaches_the_callback_with_nothing_read),
          test_alloc_checked(steady_state_reads_allocate_nothing),
          test_alloc_checked(pipe_fd_stream_yields_the_same_lines),
          test_alloc_checked(tty_stream_yields_the_same_lines))
