/* test_writeq_stall.c - the write-stall timeout of bh_writeq
 * (bh_writeq_set_stall_timeout) on a real AF_UNIX socketpair whose peer
 * stops reading: every ticket completes once with UV_ETIMEDOUT, a pending
 * shutdown reports it, later writes get BH_ECLOSED; no timer while disabled
 * and none running while idle; progress (the write callback, or libuv's
 * write queue moving) postpones the deadline. The two deadline tests read
 * the deadline and run the check through src/uv/writeq_internal.h after
 * uv_sleep(), never racing a clock: the public API has no view of it. */
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
#include "uv/writeq_internal.h"

#define RUN_MS 20000
#define BIG ((size_t)4 << 20)

/* A socketpair with 4 KiB buffers and a paused peer; one BIG ticket whose
 * remainder is in flight in a uv_write, n more tickets queued behind it. */
static wq_fx *stalled_new(wq_ticket *t, int n)
{
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, 64, 16u << 20, BIG + 4096);
    wq_fx_sockbuf(f, 4096, 4096);
    assert_int_equal(wq_fx_ticket(f, BIG, &t[0]), BH_OK);
    wq_run_nowait(&f->loop, 2); /* the flush hands the rest to uv_write */
    for (int i = 1; i <= n; i++)
        assert_int_equal(wq_fx_ticket(f, 100, &t[i]), BH_OK);
    struct bh_writeq_stats s;
    bh_writeq_stats(&f->q, &s);
    assert_int_equal(s.batches, 1);
    return f;
}

static void stall_timeout_allocates_one_timer_block_only_while_enabled(void **state)
{
    (void)state;
    test_alloc_install(0);
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, 8, 1024, 64);
    test_alloc_stats st;
    assert_int_equal(bh_writeq_set_stall_timeout(&f->q, 0), BH_OK);
    test_alloc_stats_get(&st);
    assert_int_equal(st.attempts, 0); /* disabled: no timer block */
    assert_int_equal(bh_writeq_set_stall_timeout(&f->q, 1000), BH_OK);
    assert_int_equal(bh_writeq_set_stall_timeout(&f->q, 500), BH_OK); /* same block */
    test_alloc_stats_get(&st);
    assert_int_equal(st.attempts, 1);
    assert_int_equal(st.live, 1); /* the timer block */
    assert_int_equal(uv_loop_alive(&f->loop), 0); /* idle: its timer is not running */
    assert_int_equal(bh_writeq_set_stall_timeout(&f->q, 0), BH_OK);
    wq_run_nowait(&f->loop, 1); /* the timer's close callback frees it */
    test_alloc_stats_get(&st);
    assert_int_equal(st.live, 0);
    assert_int_equal(bh_writeq_set_stall_timeout(NULL, 5), BH_EINVAL);
    test_alloc_fail_after(0);
    assert_int_equal(bh_writeq_set_stall_timeout(&f->q, 5), BH_ENOMEM);
    assert_int_equal(test_alloc_stats_now().live, 0);
    bh_writeq_close(&f->q);
    assert_int_equal(bh_writeq_set_stall_timeout(&f->q, 5), BH_ECLOSED);
    wq_fx_free(f);
    test_alloc_finish();
}

static void peer_that_stops_reading_fails_every_ticket_once_with_etimedout(void **state)
{
    (void)state;
    enum { N = 5 };
    test_alloc_install(0);
    wq_ticket t[N + 1] = {0};
    wq_fx *f = stalled_new(t, N);
    assert_int_equal(wq_fx_ff(f, 100), BH_OK);
    wq_shut_rec sr = {0, 0, 0};
    assert_int_equal(bh_writeq_shutdown(&f->q, wq_shut_cb, &sr), BH_OK);
    assert_int_equal(bh_writeq_set_stall_timeout(&f->q, 30), BH_OK);
    wq_ticket_set all = {t, N + 1};
    assert_int_equal(wq_run_until(&f->loop, wq_tickets_all_called, &all, RUN_MS), 0);
    /* the write in flight first */
    test_tickets_expect_in_order(t, N + 1, UV_ETIMEDOUT);
    assert_int_equal(sr.calls, 1);
    assert_int_equal(sr.status, UV_ETIMEDOUT);
    assert_int_equal(wq_fx_ff(f, 10), BH_ECLOSED);
    struct bh_writeq_stats s;
    bh_writeq_stats(&f->q, &s);
    assert_int_equal(s.queued_items, 1); /* the write in flight, until libuv gives it back */
    /* Closing the stream hands the write back: its slice is released, no
     * ticket runs twice. */
    wq_fx_free(f);
    for (int i = 0; i <= N; i++)
        assert_int_equal(t[i].calls, 1);
    assert_int_equal(sr.calls, 1);
    test_alloc_finish();
}

static void idle_queue_with_a_stall_timeout_lets_the_loop_end(void **state)
{
    (void)state;
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, 8, 1024, 4096);
    assert_int_equal(bh_writeq_set_stall_timeout(&f->q, 60000), BH_OK);
    assert_int_equal(wq_fx_ff(f, 100), BH_OK);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0); /* flushed, timer stopped */
    assert_int_equal(uv_loop_alive(&f->loop), 0);
    wq_fx_run_until_received(f, RUN_MS);
    wq_fx_free(f);
}

static int sink_has_64k(void *arg)
{
    wq_fx *f = arg;
    return f->sink.received >= 64 * 1024;
}

static void progress_of_the_write_in_flight_postpones_the_deadline(void **state)
{
    (void)state;
    wq_ticket t[2] = {0};
    wq_fx *f = stalled_new(t, 1);
    assert_int_equal(bh_writeq_set_stall_timeout(&f->q, 60000), BH_OK);
    uint64_t d1 = bh__writeq_stall_deadline(&f->q);
    assert_true(d1 > 0);
    /* No progress: a check before the timeout re-arms and changes nothing. */
    assert_int_equal(bh__wq_stall_check(&f->q), 0);
    assert_int_equal(bh__writeq_stall_deadline(&f->q), d1);
    uv_sleep(20);
    uv_update_time(&f->loop);
    /* The peer reads: libuv writes more of the batch in flight (its write
     * callback has not run yet), which counts as progress. */
    wq_sink_start(&f->sink);
    assert_int_equal(wq_run_until(&f->loop, sink_has_64k, f, RUN_MS), 0);
    wq_sink_stop(&f->sink);
    assert_int_equal(t[0].calls, 0);
    assert_int_equal(bh__wq_stall_check(&f->q), 0);
    assert_true(bh__writeq_stall_deadline(&f->q) >= d1 + 20);
    /* With a short timeout and no progress since, the check fails the queue. */
    assert_int_equal(bh_writeq_set_stall_timeout(&f->q, 10), BH_OK);
    uv_sleep(15);
    uv_update_time(&f->loop);
    assert_int_equal(bh__wq_stall_check(&f->q), UV_ETIMEDOUT);
    assert_int_equal(t[0].calls, 1);
    assert_int_equal(t[0].status, UV_ETIMEDOUT);
    assert_int_equal(t[1].calls, 1);
    assert_int_equal(t[1].status, UV_ETIMEDOUT);
    wq_fx_free(f);
    assert_int_equal(t[0].calls, 1);
}

typedef struct deadline_probe {
    wq_fx *f;
    uint64_t deadline; /* the stall deadline seen inside the ticket callback */
    int calls;
} deadline_probe;

static void probe_cb(bh_writeq *q, int status, void *ctx)
{
    deadline_probe *p = ctx;
    assert_int_equal(status, 0);
    p->deadline = bh__writeq_stall_deadline(q);
    p->calls++;
}

static int probe_called(void *arg) { return ((deadline_probe *)arg)->calls > 0; }

static void completed_write_counts_as_progress(void **state)
{
    (void)state;
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, 64, 16u << 20, BIG + 4096);
    wq_fx_sockbuf(f, 4096, 4096);
    deadline_probe p = {f, 0, 0};
    bh_bytes b = wq_pattern_slice(f->pattern, 0, BIG);
    assert_int_equal(bh_writeq_try_write(&f->q, &b, probe_cb, &p), BH_OK);
    f->off = BIG;
    wq_ticket t = {0};
    assert_int_equal(wq_fx_ticket(f, 100, &t), BH_OK);
    wq_run_nowait(&f->loop, 2); /* the big one's rest is in flight */
    assert_int_equal(bh_writeq_set_stall_timeout(&f->q, 60000), BH_OK);
    uint64_t d1 = bh__writeq_stall_deadline(&f->q);
    assert_true(d1 > 0);
    uv_sleep(20);
    uv_update_time(&f->loop);
    wq_sink_start(&f->sink);
    assert_int_equal(wq_run_until(&f->loop, probe_called, &p, RUN_MS), 0);
    assert_true(p.deadline >= d1 + 20); /* re-armed from the write callback's progress */
    wq_fx_run_until_received(f, RUN_MS);
    wq_run_nowait(&f->loop, 2);
    assert_int_equal(t.calls, 1);
    assert_int_equal(t.status, 0);
    assert_int_equal(bh__writeq_stall_deadline(&f->q), 0); /* idle again: not armed */
    wq_fx_free(f);
}

TEST_MAIN(test_alloc_checked(stall_timeout_allocates_one_timer_block_only_while_enabled),
          test_alloc_checked(peer_that_stops_reading_fails_every_ticket_once_with_etimedout),
          test_alloc_checked(idle_queue_with_a_stall_timeout_lets_the_loop_end),
          test_alloc_checked(progress_of_the_write_in_flight_postpones_the_deadline),
          test_alloc_checked(completed_write_counts_as_progress))
