/* test_faults_timeouts.c - the content_routing proxy's deadlines over
 * loopback TCP: a client trickling its header is closed at the header
 * deadline, a completed header is not, an idle session is closed by the idle
 * timeout and a destination that stops reading ends its session by write
 * stall. Fixture: support/uv/proxy_fixture.h. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proxy_fixture.h"
#include "test_alloc.h"
#include "test_main.h"
#include "test_writeq_support.h"

#define RUN_MS 20000

static fx *fx_new_timeouts(uint64_t header_ms, uint64_t idle_ms)
{
    cr_proxy_config pc;
    fx *f = fx_prepare(0, &pc);
    pc.header_timeout_ms = header_ms;
    pc.idle_timeout_ms = idle_ms;
    fx_start_proxy(f, &pc);
    return f;
}

/* Sends one more byte of an endless ROUTE line every 20 ms. */
typedef struct trickle {
    uv_timer_t timer;
    tclient *c;
    uv_write_t wreq;
    int in_flight;
    size_t sent;
} trickle;

static void trickle_written(uv_write_t *req, int status)
{
    trickle *t = req->data;
    (void)status;
    t->in_flight = 0;
}

static void trickle_tick(uv_timer_t *timer)
{
    trickle *t = timer->data;
    static char byte = 'a';
    if (t->in_flight || tc_ended(t->c))
        return;
    uv_buf_t b = uv_buf_init(&byte, 1);
    t->wreq.data = t;
    if (uv_write(&t->wreq, (uv_stream_t *)&t->c->tcp, &b, 1, trickle_written) == 0) {
        t->in_flight = 1;
        t->sent++;
    }
}

/* Without the deadline the reads would keep an idle timeout from firing
 * forever; with it the client is closed once the deadline has passed. */
static void slowloris_client_is_closed_at_the_header_deadline(void **state)
{
    (void)state;
    fx *f = fx_new_timeouts(200, 0);
    tclient *c = tc_new();
    trickle *t = calloc(1, sizeof *t);
    assert_non_null(t);
    tc_build(c, "alpha", 0, 0, 0, 1);
    uint64_t t0 = uv_now(&f->loop);
    tc_connect(&f->loop, c, f->port);
    t->c = c;
    uv_timer_init(&f->loop, &t->timer);
    t->timer.data = t;
    uv_timer_start(&t->timer, trickle_tick, 0, 20);
    tc_write(c, 0, 3); /* "ROU" */
    assert_int_equal(wq_run_until(&f->loop, tc_ended, c, RUN_MS), 0);
    uv_update_time(&f->loop);
    assert_true(uv_now(&f->loop) - t0 >= 200);
    uv_close((uv_handle_t *)&t->timer, NULL);
    struct cr_proxy_stats st = fx_settle(f);
    assert_int_equal(st.header_timeouts, 1);
    assert_int_equal(st.idle_timeouts, 0);
    assert_int_equal(st.aborted, 1);
    assert_int_equal(c->reply_len, 0);
    fx_end_balanced(f, c, NULL);
    free(t);
}

static void wait_done(uv_timer_t *timer)
{
    *(int *)timer->data = 1;
    uv_close((uv_handle_t *)timer, (uv_close_cb)free);
}

static int flag_set(void *arg) { return *(int *)arg; }

/* Runs the loop for at least ms milliseconds (loop time). */
static void run_for(fx *f, unsigned ms)
{
    uv_timer_t *timer = malloc(sizeof *timer);
    int done = 0;
    assert_non_null(timer);
    uv_timer_init(&f->loop, timer);
    timer->data = &done;
    uv_timer_start(timer, wait_done, ms, 0);
    assert_int_equal(wq_run_until(&f->loop, flag_set, &done, RUN_MS), 0);
}

static void completed_header_is_not_subject_to_the_deadline(void **state)
{
    (void)state;
    fx *f = fx_new_timeouts(100, 0);
    tclient *c = tc_new();
    tc_start(f, c, "alpha", 2, 63, 1024, 9);
    size_t head = strlen("ROUTE alpha\n");
    tc_write(c, 0, head);
    run_for(f, 300); /* three deadlines, with the header complete */
    assert_int_equal(tc_ended(c), 0);
    tc_write(c, head, c->len - head);
    tc_shutdown(c);
    assert_int_equal(wq_run_until(&f->loop, tc_ended, c, RUN_MS), 0);
    tc_expect_reply(c);
    struct cr_proxy_stats st = fx_settle(f);
    assert_int_equal(st.completed, 1);
    assert_int_equal(st.header_timeouts, 0);
    assert_sink_got(f, c);
    fx_end_with_clients(f, c, NULL);
}

static void idle_session_is_closed_by_the_idle_timeout(void **state)
{
    (void)state;
    fx *f = fx_new_timeouts(0, 100);
    tclient *c = tc_new();
    tc_start(f, c, "alpha", 1, 63, 0, 4);
    size_t part = strlen("ROUTE alpha\n") + 3 + 63; /* route line and one frame */
    tc_write(c, 0, part);
    uint64_t t0 = uv_now(&f->loop);
    assert_int_equal(wq_run_until(&f->loop, tc_ended, c, RUN_MS), 0);
    uv_update_time(&f->loop);
    assert_true(uv_now(&f->loop) - t0 >= 100);
    struct cr_proxy_stats st = fx_settle(f);
    assert_int_equal(st.idle_timeouts, 1);
    assert_int_equal(st.header_timeouts, 0);
    assert_int_equal(st.aborted, 1);
    fx_end_balanced(f, c, NULL);
}

/* The destination stops reading: the upstream queue makes no progress with
 * bytes queued and fails after the idle timeout (write stall); the proxy ends
 * the session instead of holding it and its budget for ever. */
static void destination_that_stops_reading_ends_the_session_by_write_stall(void **state)
{
    (void)state;
    cr_proxy_config pc;
    fx *f = fx_prepare(600000, &pc); /* the sink reads once, then pauses 10 min */
    pc.header_timeout_ms = 0;
    pc.idle_timeout_ms = 200;
    pc.upstream_sndbuf = 4096;
    fx_start_proxy(f, &pc);
    tclient *c = tc_new();
    tc_start(f, c, "alpha", 128, 65536, 0, 6);
    tc_write(c, 0, c->len - strlen("TUNNEL\n")); /* frames only: the queue path */
    assert_int_equal(wq_run_until(&f->loop, tc_ended, c, RUN_MS), 0);
    assert_int_equal(c->reply_len, 0);
    struct cr_proxy_stats st = fx_stats(f);
    assert_int_equal(st.aborted, 1);
    assert_int_equal(st.completed, 0);
    fx_end_with_clients(f, c, NULL);
}

TEST_MAIN(test_alloc_checked(slowloris_client_is_closed_at_the_header_deadline),
          test_alloc_checked(completed_header_is_not_subject_to_the_deadline),
          test_alloc_checked(idle_session_is_closed_by_the_idle_timeout),
          test_alloc_checked(destination_that_stops_reading_ends_the_session_by_write_stall))
