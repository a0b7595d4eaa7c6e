/* test_reader_idle.c - what a bh_reader holds while its connection is idle,
 * and its read-idle timeout, over real AF_UNIX socketpairs on real libuv
 * loops: the block goes back to the thread's cache after a callback that
 * empties the buffer (unless kept), the timeout is reported once as
 * UV_ETIMEDOUT, is pushed back by reads, paused by stop, and its timer is
 * allocated only while enabled and freed by bh_reader_close() even when the
 * reader is freed right after (ASan / valgrind check the frees).
 *
 * Timing: no assertion depends on the machine being fast. Where a test waits
 * for a timeout it only checks lower bounds (a timeout never fires early), and
 * the loop runs are bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <bytes_handoff.h>
#include <bytes_handoff/uv.h>

#include "test_alloc.h"
#include "test_main.h"
#include "test_uv.h"

#define RUN_TIMEOUT_MS 20000

/* Reader side (a), peer (b), and what the callback saw. Heap-allocated and
 * freed by the close callback of `a` when a test closes from a callback. */
typedef struct idle_fixture {
    uv_pipe_t a; /* first member: the close callback finds the fixture */
    uv_pipe_t b;
    uv_loop_t *loop;
    bh_buf buf;
    bh_reader r;
    size_t ok_calls, final_calls;
    int final_status;
    uint64_t last_read_ms; /* loop time of the last BH_OK callback */
    uint64_t final_ms;     /* loop time of the final callback */
    int keep_slice;        /* split each read off and keep it */
    int leave_bytes;       /* consume nothing */
    bh_bytes slice;
    int close_on_final;    /* bh_reader_close + uv_close(a) + free in its close cb */
    int *freed;
} idle_fixture;

static void on_peer_closed(uv_handle_t *h)
{
    free((char *)h - offsetof(idle_fixture, b));
}

static void on_fixture_closed(uv_handle_t *h)
{
    idle_fixture *f = (idle_fixture *)h;
    *f->freed = 1;
    bh_bytes_release(&f->slice);
    bh_buf_free(&f->buf);
    uv_close((uv_handle_t *)&f->b, on_peer_closed);
}

static void on_read(bh_reader *r, int status, void *ctx)
{
    idle_fixture *f = ctx;
    if (status != BH_OK) {
        f->final_calls++;
        f->final_status = status;
        f->final_ms = uv_now(f->loop);
        if (f->close_on_final) {
            bh_reader_close(r);
            uv_close((uv_handle_t *)&f->a, on_fixture_closed);
        }
        return;
    }
    f->ok_calls++;
    f->last_read_ms = uv_now(f->loop);
    if (f->leave_bytes)
        return;
    if (f->keep_slice) {
        bh_bytes_release(&f->slice);
        assert_int_equal(bh_buf_freeze(&f->buf, &f->slice), BH_OK);
    } else {
        assert_int_equal(bh_buf_advance(&f->buf, bh_buf_len(&f->buf)), BH_OK);
    }
}

static idle_fixture *fixture_new(uv_loop_t *loop)
{
    idle_fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->loop = loop;
    assert_int_equal(test_uv_socketpair(loop, &f->a, &f->b), 0);
    assert_int_equal(bh_buf_init(&f->buf, 64 * 1024), BH_OK);
    assert_int_equal(bh_reader_init(&f->r, (uv_stream_t *)&f->a, &f->buf, 4096, on_read, f),
                     BH_OK);
    return f;
}

/* Closes both ends from outside any callback and frees the fixture. */
static void fixture_free(idle_fixture *f)
{
    int freed = 0;
    f->freed = &freed;
    bh_reader_close(&f->r);
    uv_close((uv_handle_t *)&f->a, on_fixture_closed);
    assert_int_equal(test_uv_run(f->loop, RUN_TIMEOUT_MS), 0);
    assert_int_equal(freed, 1);
}

static void peer_send(idle_fixture *f, const char *text)
{
    uv_buf_t ub = uv_buf_init((char *)text, (unsigned)strlen(text));
    assert_int_equal(uv_try_write((uv_stream_t *)&f->b, &ub, 1), (int)strlen(text));
}

static void stop_after_first_read(uv_timer_t *t)
{
    idle_fixture *f = t->data;
    if (f->ok_calls > 0) {
        bh_reader_stop(&f->r);
        uv_close((uv_handle_t *)t, NULL);
    }
}

/* Runs the loop until the reader has seen one read, then stops it. */
static void run_until_first_read(idle_fixture *f)
{
    uv_timer_t poll;
    uv_timer_init(f->loop, &poll);
    poll.data = f;
    uv_timer_start(&poll, stop_after_first_read, 1, 1);
    assert_int_equal(bh_reader_start(&f->r), BH_OK);
    assert_int_equal(test_uv_run(f->loop, RUN_TIMEOUT_MS), 0);
    assert_int_equal(f->ok_calls, 1);
}

/* The peer sends text; the loop runs until the reader has seen one read. */
static void read_once(idle_fixture *f, const char *text)
{
    peer_send(f, text);
    run_until_first_read(f);
}

static int setup(void **state)
{
    uv_loop_t *loop = malloc(sizeof *loop);
    assert_non_null(loop);
    assert_int_equal(uv_loop_init(loop), 0);
    test_alloc_install(0);
    *state = loop;
    return 0;
}

static int teardown(void **state)
{
    uv_loop_t *loop = *state;
    assert_int_equal(test_uv_loop_teardown(loop), 0);
    free(loop);
    test_alloc_finish();
    return 0;
}

static size_t cached_blocks(void)
{
    struct bh_block_cache_stats cs;
    bh_block_cache_stats(&cs);
    return cs.blocks;
}

/* ---- the block while idle ---- */

static void callback_that_empties_the_buffer_gives_the_block_back(void **state)
{
    idle_fixture *f = fixture_new(*state);
    read_once(f, "hello\n");
    assert_int_equal(bh_buf_len(&f->buf), 0);
    assert_int_equal(bh_buf_spare(&f->buf), 0); /* no block held */
    assert_int_equal(cached_blocks(), 1);
    fixture_free(f);
}

static void kept_block_stays_with_the_buffer(void **state)
{
    idle_fixture *f = fixture_new(*state);
    assert_int_equal(bh_reader_keep_block(&f->r, 1), BH_OK);
    read_once(f, "hello\n");
    assert_true(bh_buf_spare(&f->buf) >= 4096 - 6);
    assert_int_equal(cached_blocks(), 0);
    assert_int_equal(bh_reader_keep_block(NULL, 1), BH_EINVAL);
    fixture_free(f);
}

static void callback_leaving_bytes_keeps_the_block(void **state)
{
    idle_fixture *f = fixture_new(*state);
    f->leave_bytes = 1;
    read_once(f, "partial");
    assert_int_equal(bh_buf_len(&f->buf), 7);
    assert_memory_equal(bh_buf_data(&f->buf), "partial", 7);
    assert_int_equal(cached_blocks(), 0);
    fixture_free(f);
}

static void next_read_lands_behind_the_slices_of_the_last_one(void **state)
{
    idle_fixture *f = fixture_new(*state);
    f->keep_slice = 1;
    read_once(f, "first");
    bh_bytes first = f->slice;
    f->slice = (bh_bytes){0};
    peer_send(f, "second");
    f->ok_calls = 0;
    run_until_first_read(f);
    assert_ptr_equal(f->slice.ptr, first.ptr + first.len);
    assert_memory_equal(first.ptr, "first", 5);
    assert_memory_equal(f->slice.ptr, "second", 6);
    bh_bytes_release(&first);
    fixture_free(f);
}

/* ---- read-idle timeout ---- */

static void silent_peer_times_out_once_and_reading_stops(void **state)
{
    idle_fixture *f = fixture_new(*state);
    assert_int_equal(bh_reader_set_idle_timeout(&f->r, 50), BH_OK);
    uint64_t t0 = uv_now(f->loop);
    assert_int_equal(bh_reader_start(&f->r), BH_OK);
    assert_int_equal(test_uv_run(f->loop, RUN_TIMEOUT_MS), 0);
    assert_int_equal(f->final_calls, 1);
    assert_int_equal(f->final_status, UV_ETIMEDOUT);
    assert_int_equal(f->ok_calls, 0);
    assert_true(f->final_ms - t0 >= 50);
    assert_int_equal(bh_reader_start(&f->r), BH_ECLOSED);
    assert_int_equal(bh_reader_set_idle_timeout(&f->r, 50), BH_ECLOSED);
    fixture_free(f);
}

static void send_one_byte(uv_timer_t *t)
{
    peer_send(t->data, "x");
    uv_close((uv_handle_t *)t, NULL);
}

/* Without the push the timer would fire 100 ms after the read; the lower
 * bound below only holds when the read restarted the period. */
static void read_pushes_the_deadline_back_by_a_whole_period(void **state)
{
    idle_fixture *f = fixture_new(*state);
    uv_timer_t later;
    uv_timer_init(f->loop, &later);
    later.data = f;
    uv_timer_start(&later, send_one_byte, 100, 0);
    assert_int_equal(bh_reader_set_idle_timeout(&f->r, 1000), BH_OK);
    assert_int_equal(bh_reader_start(&f->r), BH_OK);
    assert_int_equal(test_uv_run(f->loop, RUN_TIMEOUT_MS), 0);
    assert_int_equal(f->final_calls, 1);
    assert_int_equal(f->final_status, UV_ETIMEDOUT);
    assert_int_equal(f->ok_calls, 1);
    assert_true(f->final_ms - f->last_read_ms >= 1000);
    fixture_free(f);
}

static void restart_after_wait(uv_timer_t *t)
{
    idle_fixture *f = t->data;
    assert_int_equal(f->final_calls, 0); /* nothing while stopped */
    assert_int_equal(bh_reader_start(&f->r), BH_OK);
    uv_close((uv_handle_t *)t, NULL);
}

static void stopped_reader_does_not_time_out_until_restarted(void **state)
{
    idle_fixture *f = fixture_new(*state);
    assert_int_equal(bh_reader_set_idle_timeout(&f->r, 20), BH_OK);
    assert_int_equal(bh_reader_start(&f->r), BH_OK);
    assert_int_equal(bh_reader_stop(&f->r), BH_OK);
    uv_timer_t wait;
    uv_timer_init(f->loop, &wait);
    wait.data = f;
    uv_timer_start(&wait, restart_after_wait, 100, 0);
    uint64_t t0 = uv_now(f->loop);
    assert_int_equal(test_uv_run(f->loop, RUN_TIMEOUT_MS), 0);
    assert_int_equal(f->final_calls, 1);
    assert_int_equal(f->final_status, UV_ETIMEDOUT);
    assert_true(f->final_ms - t0 >= 100 + 20);
    fixture_free(f);
}

static void timer_exists_only_while_the_timeout_is_enabled(void **state)
{
    idle_fixture *f = fixture_new(*state);
    size_t live = test_alloc_stats_now().live;
    assert_int_equal(bh_reader_set_idle_timeout(&f->r, 0), BH_OK);
    assert_int_equal(test_alloc_stats_now().live, live);
    assert_int_equal(bh_reader_set_idle_timeout(&f->r, 1000), BH_OK);
    assert_int_equal(test_alloc_stats_now().live, live + 1);
    assert_int_equal(bh_reader_set_idle_timeout(&f->r, 2000), BH_OK); /* same timer */
    assert_int_equal(test_alloc_stats_now().live, live + 1);
    assert_int_equal(bh_reader_set_idle_timeout(&f->r, 0), BH_OK);
    assert_int_equal(uv_run(f->loop, UV_RUN_NOWAIT), 0); /* its close callback */
    assert_int_equal(test_alloc_stats_now().live, live);
    assert_int_equal(bh_reader_set_idle_timeout(NULL, 1), BH_EINVAL);
    fixture_free(f);
}

static void failed_timer_allocation_changes_nothing(void **state)
{
    idle_fixture *f = fixture_new(*state);
    test_alloc_fail_after(0);
    assert_int_equal(bh_reader_set_idle_timeout(&f->r, 10), BH_ENOMEM);
    read_once(f, "still reads\n");
    assert_int_equal(f->final_calls, 0);
    fixture_free(f);
}

/* The callback closes the reader and the stream; the stream's close callback
 * frees reader, buffer and stream together. The timer is freed by its own
 * close callback, never touching the freed reader. */
static void reader_closed_and_freed_inside_the_timeout_callback(void **state)
{
    int freed = 0;
    idle_fixture *f = fixture_new(*state);
    f->close_on_final = 1;
    f->freed = &freed;
    assert_int_equal(bh_reader_set_idle_timeout(&f->r, 10), BH_OK);
    assert_int_equal(bh_reader_start(&f->r), BH_OK);
    assert_int_equal(test_uv_run(*state, RUN_TIMEOUT_MS), 0);
    assert_int_equal(freed, 1);
}

static void close_is_final_and_idempotent(void **state)
{
    idle_fixture *f = fixture_new(*state);
    assert_int_equal(bh_reader_set_idle_timeout(&f->r, 10), BH_OK);
    assert_int_equal(bh_reader_start(&f->r), BH_OK);
    bh_reader_close(&f->r);
    bh_reader_close(&f->r);
    bh_reader_close(NULL);
    assert_int_equal(bh_reader_start(&f->r), BH_ECLOSED);
    assert_int_equal(bh_reader_set_idle_timeout(&f->r, 0), BH_OK);
    fixture_free(f);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
TEST_MAIN(T(callback_that_empties_the_buffer_gives_the_block_back),
          T(kept_block_stays_with_the_buffer),
          T(callback_leaving_bytes_keeps_the_block),
          T(next_read_lands_behind_the_slices_of_the_last_one),
          T(silent_peer_times_out_once_and_reading_stops),
          T(read_pushes_the_deadline_back_by_a_whole_period),
          T(stopped_reader_does_not_time_out_until_restarted),
          T(timer_exists_only_while_the_timeout_is_enabled),
          T(failed_timer_allocation_changes_nothing),
          T(reader_closed_and_freed_inside_the_timeout_callback),
          T(close_is_final_and_idempotent))
#undef T
