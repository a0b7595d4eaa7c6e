/* test_writeq_idle.c - an idle bh_writeq keeps no ring of its own after a
 * direct or a queued write: of what it allocated only its loop's flush
 * dispatcher is left (the core's side: core/test_queue_idle.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <bytes_handoff.h>

#include "test_alloc.h"
#include "test_main.h"
#include "test_writeq_support.h"

#define RUN_MS 20000

/* Blocks still allocated once the thread's caches (where a drained queue
 * puts its arrays) are emptied. */
static size_t blocks_held(void)
{
    bh_thread_cache_trim();
    return test_alloc_stats_now().live;
}

static int tickets_done(void *arg) { return ((wq_ticket *)arg)->calls == 1; }

static void idle_writeq_keeps_no_ring_after_direct_and_queued_writes(void **state)
{
    (void)state;
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, 64, 1u << 20, 64 * 1024);
    wq_sink_start(&f->sink);
    test_alloc_install(0);
    /* Fire-and-forget on an idle queue (written at once or by the flush). */
    assert_int_equal(wq_fx_ff(f, 4096), BH_OK);
    wq_fx_run_until_received(f, RUN_MS);
    assert_int_equal(blocks_held(), 0); /* written at once: nothing kept */
    /* A ticket: queued, written by the loop, then idle again. */
    wq_ticket t = {0};
    assert_int_equal(wq_fx_ticket(f, 100, &t), BH_OK);
    for (int i = 0; i < 10; i++)
        assert_int_equal(wq_fx_ff(f, 10), BH_OK);
    assert_int_equal(wq_run_until(&f->loop, tickets_done, &t, RUN_MS), 0);
    wq_fx_run_until_received(f, RUN_MS);
    assert_int_equal(t.status, 0);
    assert_int_equal(blocks_held(), 1); /* only the loop's flush dispatcher */
    assert_int_equal(f->sink.mismatches, 0);
    wq_fx_free(f);
    test_alloc_finish();
}

TEST_MAIN(test_alloc_checked(idle_writeq_keeps_no_ring_after_direct_and_queued_writes))
