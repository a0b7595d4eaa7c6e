/* test_writeq_flush.c - the deferred flush of bh_writeq: fire-and-forget
 * slices enqueued in one loop iteration go out in one writev before the loop
 * blocks, tickets complete on the loop in order, close while the flush is
 * armed cancels every item once, and a failed dispatcher allocation falls
 * back without losing a byte. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_alloc.h"
#include "test_main.h"
#include "test_uv.h"
#include "test_writeq_support.h"

#define RUN_MS 20000

/* ---- deferred flush --------------------------------------------------------- */

/* A read callback on a second socketpair that enqueues a burst: frames split
 * off one read, as a proxy does. */
typedef struct burst {
    wq_fx *f;
    uv_pipe_t a, b;
    char rbuf[64];
    int n;
    int tickets;       /* enqueue tickets (recorded in t) instead of ff */
    wq_ticket t[64];
    int in_api;        /* set around every try_write call */
    int inside_calls;  /* ticket callbacks that ran inside try_write */
    int fired;
    uint64_t written_in_cb;
} burst;

static burst *g_burst;

static void burst_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    burst *u = h->data;
    buf->base = u->rbuf;
    buf->len = sizeof u->rbuf;
}

static void burst_ticket_cb(bh_writeq *q, int status, void *ctx)
{
    if (g_burst->in_api)
        g_burst->inside_calls++;
    wq_ticket_cb(q, status, ctx);
}

static void burst_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    burst *u = s->data;
    if (nread <= 0)
        return;
    uv_read_stop(s);
    wq_fx *f = u->f;
    for (int i = 0; i < u->n; i++) {
        bh_bytes b = bh_bytes_static(f->pattern + f->off, 16);
        u->in_api = 1;
        int rc = u->tickets ? bh_writeq_try_write(&f->q, &b, burst_ticket_cb, &u->t[i])
                            : bh_writeq_try_write_ff(&f->q, &b);
        u->in_api = 0;
        assert_int_equal(rc, BH_OK);
        f->off += 16;
    }
    struct bh_writeq_stats st;
    bh_writeq_stats(&f->q, &st);
    u->written_in_cb = st.written_bytes;
    u->fired = 1;
}

/* A new fixture whose queue takes n items; a read callback on it enqueues n
 * 16-byte slices (tickets when tickets is set) on its queue; runs the loop
 * until the iteration in which that callback ran. */
static wq_fx *burst_new(burst *u, int n, int tickets)
{
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, (size_t)n, 1u << 20, 4096);
    memset(u, 0, sizeof *u);
    u->f = f;
    u->n = n;
    u->tickets = tickets;
    g_burst = u;
    assert_int_equal(test_uv_socketpair(&f->loop, &u->a, &u->b), 0);
    u->b.data = u;
    assert_int_equal(uv_read_start((uv_stream_t *)&u->b, burst_alloc, burst_read), 0);
    uv_buf_t one = uv_buf_init((char *)"x", 1);
    assert_int_equal(uv_try_write((uv_stream_t *)&u->a, &one, 1), 1);
    /* Run whole iterations until the one in which the read callback ran. */
    for (int i = 0; i < 1000 && !u->fired; i++)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_true(u->fired);
    assert_int_equal(u->written_in_cb, 0); /* nothing written inside the callback */
    return f;
}

static void ff_slices_enqueued_in_one_read_callback_go_out_in_one_writev_that_iteration(
    void **state)
{
    (void)state;
    enum { N = 64 };
    burst u;
    wq_fx *f = burst_new(&u, N, 0);
    /* The same iteration's check phase flushed everything. */
    struct bh_writeq_stats s = wq_expect_queued(&f->q, 0, 0);
    assert_int_equal(s.written_bytes, N * 16);
    assert_int_equal(s.written_items, N);
    assert_int_equal(s.try_write_hits, N);
    assert_int_equal(s.flushes, 1); /* one uv_try_write: one writev */
    assert_int_equal(s.batches, 0);
    wq_fx_run_until_received(f, RUN_MS);
    wq_fx_free(f);
}

static void tickets_completed_by_the_flush_run_once_in_order_never_inside_try_write(
    void **state)
{
    (void)state;
    burst u;
    wq_fx *f = burst_new(&u, 40, 1);
    /* Completed in the iteration of the read callback, from the flush. */
    test_tickets_expect_in_order(u.t, u.n, 0);
    assert_int_equal(u.inside_calls, 0);
    struct bh_writeq_stats s;
    bh_writeq_stats(&f->q, &s);
    assert_int_equal(s.flushes, 1);
    assert_int_equal(s.batches, 0); /* no uv_write, no deferred write callback */
    wq_fx_run_until_settled(f, RUN_MS);
    for (int i = 0; i < u.n; i++)
        assert_int_equal(u.t[i].calls, 1);
    wq_fx_free(f);
}

typedef struct timer_burst {
    wq_fx *f;
    int fired, watchdog;
} timer_burst;

static void timer_enqueue(uv_timer_t *t)
{
    timer_burst *tb = t->data;
    for (int i = 0; i < 10; i++)
        assert_int_equal(wq_fx_ff(tb->f, 32), BH_OK);
    tb->fired = 1;
}

static void watchdog_fired(uv_timer_t *t)
{
    timer_burst *tb = t->data;
    tb->watchdog = 1;
}

/* An enqueue outside the poll phase (here a timer) is flushed before the loop
 * blocks; once flushed the stopped handles do not keep uv_run() alive. The
 * unreferenced watchdog bounds the poll timeout if the flush were late. */
static void enqueue_from_a_timer_is_flushed_before_the_loop_blocks_and_run_returns(
    void **state)
{
    (void)state;
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, 16, 1u << 20, 4096);
    timer_burst tb = {f, 0, 0};
    uv_timer_t t, w;
    assert_int_equal(uv_timer_init(&f->loop, &t), 0);
    assert_int_equal(uv_timer_init(&f->loop, &w), 0);
    t.data = &tb;
    w.data = &tb;
    assert_int_equal(uv_timer_start(&t, timer_enqueue, 0, 0), 0);
    assert_int_equal(uv_timer_start(&w, watchdog_fired, 10000, 0), 0);
    uv_unref((uv_handle_t *)&w);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(tb.fired, 1);
    assert_int_equal(tb.watchdog, 0);
    struct bh_writeq_stats s;
    bh_writeq_stats(&f->q, &s);
    assert_int_equal(s.written_bytes, 320);
    assert_int_equal(s.flushes, 1); /* by the loop's flush dispatcher */
    assert_int_equal(uv_loop_alive(&f->loop), 0); /* handles stopped */
    uv_close((uv_handle_t *)&t, NULL);
    uv_close((uv_handle_t *)&w, NULL);
    wq_fx_run_until_received(f, RUN_MS);
    wq_fx_free(f);
}

static void close_while_the_flush_is_armed_cancels_every_item_once_and_frees_it(
    void **state)
{
    (void)state;
    test_alloc_install(0);
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, 64, 1u << 20, 4096);
    wq_ticket t[10] = {0};
    bh_bytes held[10];
    for (int i = 0; i < 10; i++) {
        bh_bytes b = wq_pattern_slice(f->pattern, f->off, 10);
        held[i] = bh_bytes_clone(&b);
        int rc = i % 2 ? bh_writeq_try_write(&f->q, &b, wq_ticket_cb, &t[i])
                       : bh_writeq_try_write_ff(&f->q, &b);
        assert_int_equal(rc, BH_OK);
        f->off += 10;
    }
    assert_int_equal(uv_loop_alive(&f->loop), 1); /* the armed flush */
    bh_writeq_close(&f->q);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(bh_bytes_refcount(&held[i]), 1); /* released by close */
        bh_bytes_release(&held[i]);
        if (i % 2) {
            assert_int_equal(t[i].calls, 1);
            assert_int_equal(t[i].status, BH_ECANCELED);
        }
    }
    wq_sink_start(&f->sink);
    wq_run_nowait(&f->loop, 3);
    assert_int_equal(f->sink.received, 0); /* the flush never ran */
    for (int i = 1; i < 10; i += 2)
        assert_int_equal(t[i].calls, 1);
    assert_int_equal(test_alloc_stats_now().live, 0); /* ring and dispatcher are gone */
    wq_fx_free(f);
    test_alloc_uninstall();
}

static void dispatcher_allocation_failure_falls_back_and_delivers_every_byte(void **state)
{
    (void)state;
    enum { N = 8 }; /* the first ring holds 8: no growth while allocations fail */
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, N, 1u << 20, 4096);
    wq_ticket t[N + 1] = {0};
    test_alloc_install(0);
    /* Static slices allocate nothing: attempt 1 is the ring, attempt 2 the
     * loop's flush dispatcher, which fails: the queue writes at once. */
    test_alloc_fail_after(1);
    bh_bytes b = bh_bytes_static(f->pattern, 100);
    assert_int_equal(bh_writeq_try_write(&f->q, &b, wq_ticket_cb, &t[0]), BH_OK);
    f->off = 100;
    struct bh_writeq_stats s;
    bh_writeq_stats(&f->q, &s);
    assert_int_equal(s.batches, 1); /* handed to uv_write() in the call */
    assert_int_equal(t[0].calls, 0);
    test_alloc_fail_all(1); /* every later attempt fails, retries included */
    for (int i = 1; i < N; i++) {
        bh_bytes p = bh_bytes_static(f->pattern + f->off, 50 + (size_t)i);
        int rc = i % 3 == 0 ? bh_writeq_try_write(&f->q, &p, wq_ticket_cb, &t[i])
                            : bh_writeq_try_write_ff(&f->q, &p);
        assert_int_equal(rc, BH_OK);
        f->off += 50 + (size_t)i;
    }
    wq_fx_run_until_settled(f, RUN_MS);
    for (int i = 0; i < N; i += 3) {
        assert_int_equal(t[i].calls, 1);
        assert_int_equal(t[i].status, 0);
    }
    bh_writeq_stats(&f->q, &s);
    assert_int_equal(s.written_items, N);
    assert_int_equal(s.written_bytes, f->off);
    assert_int_equal(s.flushes, 0);
    /* Allocation works again: the next enqueue on the idle queue creates the
     * dispatcher and goes through the deferred flush. */
    test_alloc_fail_all(0);
    bh_bytes last = bh_bytes_static(f->pattern + f->off, 10);
    assert_int_equal(bh_writeq_try_write(&f->q, &last, wq_ticket_cb, &t[N]), BH_OK);
    f->off += 10;
    wq_fx_run_until_settled(f, RUN_MS);
    assert_int_equal(t[N].calls, 1);
    bh_writeq_stats(&f->q, &s);
    assert_int_equal(s.flushes, 1);
    wq_fx_free(f);
    test_alloc_finish();
}

TEST_MAIN(test_alloc_checked(ff_slices_enqueued_in_one_read_callback_go_out_in_one_writev_that_iteration),
          test_alloc_checked(tickets_completed_by_the_flush_run_once_in_order_never_inside_try_write),
          test_alloc_checked(enqueue_from_a_timer_is_flushed_before_the_loop_blocks_and_run_returns),
          test_alloc_checked(close_while_the_flush_is_armed_cancels_every_item_once_and_frees_it),
          test_alloc_checked(dispatcher_allocation_failure_falls_back_and_delivers_every_byte))
