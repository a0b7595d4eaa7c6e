/* test_writeq.c - bh_writeq on a real AF_UNIX socketpair and a real libuv
 * loop, single thread: configuration and arguments, budgets at the boundary,
 * ownership on refusal, tickets exactly once, order across batches and ring
 * growth, the drain callback. Shutdown, close and write errors:
 * test_writeq_close.c; the deferred flush: test_writeq_flush.c; statistics
 * and allocations: test_writeq_alloc.c. */
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

/* ---- configuration and arguments ---------------------------------------- */

static void config_default_is_1024_items_and_8_mib(void **state)
{
    (void)state;
    bh_writeq_config c = bh_writeq_config_default();
    assert_int_equal(c.max_items, 1024);
    assert_int_equal(c.max_bytes, 8u * 1024 * 1024);
}

static void init_rejects_null_arguments_zero_budgets_and_foreign_loop(void **state)
{
    (void)state;
    uv_loop_t loop, other;
    uv_pipe_t a, b;
    bh_writeq q;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(uv_loop_init(&other), 0);
    assert_int_equal(test_uv_socketpair(&loop, &a, &b), 0);
    bh_writeq_config zero_items = {0, 100}, zero_bytes = {10, 0};
    assert_int_equal(bh_writeq_init(NULL, &loop, (uv_stream_t *)&a, NULL), BH_EINVAL);
    assert_int_equal(bh_writeq_init(&q, NULL, (uv_stream_t *)&a, NULL), BH_EINVAL);
    assert_int_equal(bh_writeq_init(&q, &loop, NULL, NULL), BH_EINVAL);
    assert_int_equal(bh_writeq_init(&q, &other, (uv_stream_t *)&a, NULL), BH_EINVAL);
    assert_int_equal(bh_writeq_init(&q, &loop, (uv_stream_t *)&a, &zero_items), BH_EINVAL);
    assert_int_equal(bh_writeq_init(&q, &loop, (uv_stream_t *)&a, &zero_bytes), BH_EINVAL);
    assert_int_equal(bh_writeq_init(&q, &loop, (uv_stream_t *)&a, NULL), BH_OK);
    /* NULL config: the default item budget. Tickets stay queued until the
     * loop runs, so 1024 are accepted and the next one is refused. */
    wq_ticket t[1025] = {0};
    uint8_t x = 0;
    for (int i = 0; i <= 1024; i++) {
        bh_bytes one = bh_bytes_static(&x, 1);
        assert_int_equal(bh_writeq_try_write(&q, &one, wq_ticket_cb, &t[i]),
                         i < 1024 ? BH_OK : BH_EFULL);
    }
    assert_int_equal(bh_writeq_try_write_ff(&q, NULL), BH_EINVAL);
    assert_int_equal(bh_writeq_try_write(NULL, NULL, NULL, NULL), BH_EINVAL);
    bh_bytes bad = {NULL, 5, NULL};
    assert_int_equal(bh_writeq_try_write_ff(&q, &bad), BH_EINVAL);
    bh_writeq_close(&q);
    assert_int_equal(test_uv_loop_teardown(&loop), 0);
    assert_int_equal(uv_loop_close(&other), 0);
}

static void idle_queue_allocates_nothing_until_first_write(void **state)
{
    (void)state;
    test_alloc_install(0);
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, 1024, 8u << 20, 64); /* loop, sockets and pattern: not ours */
    test_alloc_stats st;
    bh_writeq_set_drain_cb(&f->q, 0, NULL, NULL);
    struct bh_writeq_stats s;
    bh_writeq_stats(&f->q, &s);
    wq_run_nowait(&f->loop, 3);
    test_alloc_stats_get(&st);
    assert_int_equal(st.attempts, 0); /* no ring: the array cache started empty */
    bh_writeq_close(&f->q);
    test_alloc_stats_get(&st);
    assert_int_equal(st.attempts, 0);
    wq_fx_free(f);
    test_alloc_uninstall();
}

static void first_enqueue_allocates_a_small_ring_not_max_items(void **state)
{
    (void)state;
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, 1024, 8u << 20, 4096);
    wq_ticket t = {0};
    size_t before = test_alloc_stats_now().live_bytes;
    assert_int_equal(wq_fx_ticket(f, 100, &t), BH_OK);
    /* The ring (at most 16 slots, core/test_queue) and the loop's flush
     * dispatcher: far below 1024 slots' worth. */
    assert_true(test_alloc_stats_now().live_bytes - before < 64 * sizeof(bh_queue_item));
    wq_fx_run_until_received(f, RUN_MS);
    wq_fx_free(f);
}

/* ---- budgets -------------------------------------------------------------- */

static void item_budget_accepts_exactly_max_items_and_refuses_the_next(void **state)
{
    (void)state;
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, 4, 1u << 20, 4096);
    wq_ticket t[4] = {{0}};
    /* Nothing runs the loop, so accepted items stay queued (the deferred
     * flush has not run). */
    for (int i = 0; i < 4; i++)
        assert_int_equal(wq_fx_ticket(f, 10, &t[i]), BH_OK);
    struct bh_writeq_stats s;
    bh_writeq_stats(&f->q, &s);
    assert_int_equal(s.queued_items, 4);
    assert_int_equal(wq_fx_ff(f, 1), BH_EFULL);
    assert_int_equal(wq_fx_ticket(f, 1, &t[0]), BH_EFULL);
    bh_writeq_stats(&f->q, &s);
    assert_int_equal(s.queued_items, 4);
    assert_int_equal(s.refused, 2);
    wq_fx_run_until_received(f, RUN_MS);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(t[i].calls, 1);
        assert_int_equal(t[i].status, 0);
    }
    /* Budget is back: the next item fits. */
    assert_int_equal(wq_fx_ff(f, 1), BH_OK);
    wq_fx_run_until_received(f, RUN_MS);
    wq_fx_free(f);
}

static void byte_budget_accepts_exactly_max_bytes_and_refuses_one_more(void **state)
{
    (void)state;
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, 100, 1000, 4096);
    wq_ticket t = {0};
    assert_int_equal(wq_fx_ticket(f, 600, &t), BH_OK); /* queued, counted */
    assert_int_equal(wq_fx_ff(f, 399), BH_OK);
    assert_int_equal(wq_fx_ff(f, 2), BH_EFULL);
    assert_int_equal(wq_fx_ff(f, 1), BH_OK); /* exactly 1000 */
    wq_expect_queued(&f->q, 3, 1000);
    assert_int_equal(wq_fx_ff(f, 1), BH_EFULL);
    assert_int_equal(wq_fx_ff(f, 0), BH_OK); /* an empty slice costs no bytes */
    wq_fx_run_until_received(f, RUN_MS);
    wq_expect_queued(&f->q, 0, 0);
    assert_int_equal(t.calls, 1);
    wq_fx_free(f);
}

static void item_longer_than_max_bytes_is_refused_with_etoolong_even_when_idle(void **state)
{
    (void)state;
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, 8, 100, 4096);
    wq_ticket t = {0};
    assert_int_equal(wq_fx_ff(f, 101), BH_ETOOLONG);
    assert_int_equal(wq_fx_ticket(f, 101, &t), BH_ETOOLONG);
    assert_int_equal(wq_fx_ff(f, 100), BH_OK);
    wq_run_nowait(&f->loop, 2);
    assert_int_equal(t.calls, 0);
    struct bh_writeq_stats s;
    bh_writeq_stats(&f->q, &s);
    assert_int_equal(s.refused, 2);
    wq_fx_run_until_received(f, RUN_MS);
    wq_fx_free(f);
}

/* ---- ownership ------------------------------------------------------------ */

static void refusal_leaves_slice_with_caller_and_refcount_unchanged(void **state)
{
    (void)state;
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, 1, 1u << 20, 4096);
    wq_ticket t = {0};
    assert_int_equal(wq_fx_ticket(f, 10, &t), BH_OK); /* fills the item budget */
    bh_bytes b = wq_pattern_slice(f->pattern, 0, 50);
    bh_bytes extra = bh_bytes_clone(&b);
    assert_int_equal(bh_bytes_refcount(&b), 2);
    const uint8_t *ptr = b.ptr;
    assert_int_equal(bh_writeq_try_write_ff(&f->q, &b), BH_EFULL);
    wq_ticket refused = {0};
    assert_int_equal(bh_writeq_try_write(&f->q, &b, wq_ticket_cb, &refused), BH_EFULL);
    assert_ptr_equal(b.ptr, ptr);
    assert_int_equal(b.len, 50);
    assert_int_equal(bh_bytes_refcount(&b), 2);
    bh_writeq_close(&f->q);
    assert_int_equal(bh_writeq_try_write_ff(&f->q, &b), BH_ECLOSED);
    assert_int_equal(bh_bytes_refcount(&b), 2);
    bh_bytes_release(&b);
    assert_int_equal(bh_bytes_refcount(&extra), 1);
    bh_bytes_release(&extra);
    wq_fx_free(f);
    assert_int_equal(t.calls, 1);
    assert_int_equal(refused.calls, 0); /* a refused ticket never completes */
}

static void accepted_slice_is_zeroed_and_its_reference_released_after_write(void **state)
{
    (void)state;
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, 8, 1u << 20, 4096);
    wq_ticket t0 = {0}, t1 = {0};
    assert_int_equal(wq_fx_ticket(f, 10, &t0), BH_OK); /* keeps the queue busy */
    bh_bytes b = wq_pattern_slice(f->pattern, f->off, 20);
    bh_bytes mine = bh_bytes_clone(&b);
    assert_int_equal(bh_writeq_try_write(&f->q, &b, wq_ticket_cb, &t1), BH_OK);
    f->off += 20;
    assert_null(b.ptr);
    assert_int_equal(b.len, 0);
    assert_int_equal(bh_bytes_refcount(&b), 0); /* no owner */
    assert_int_equal(bh_bytes_refcount(&mine), 2); /* queue holds one */
    wq_fx_run_until_received(f, RUN_MS);
    assert_int_equal(t1.calls, 1);
    assert_int_equal(bh_bytes_refcount(&mine), 1);
    bh_bytes_release(&mine);
    wq_fx_free(f);
}

/* ---- tickets and the fast path -------------------------------------------- */

static void ticket_never_completes_inside_try_write_and_completes_once_on_the_loop(void **state)
{
    (void)state;
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, 8, 1u << 20, 4096);
    wq_ticket t = {0};
    assert_int_equal(wq_fx_ticket(f, 100, &t), BH_OK);
    assert_int_equal(t.calls, 0);
    wq_fx_run_until_settled(f, RUN_MS);
    assert_int_equal(t.calls, 1);
    assert_int_equal(t.status, 0);
    struct bh_writeq_stats s;
    bh_writeq_stats(&f->q, &s);
    assert_int_equal(s.try_write_hits, 1); /* the flush's uv_try_write took it */
    assert_int_equal(s.written_items, 1);
    assert_int_equal(s.flushes, 1);
    assert_int_equal(s.batches, 0); /* no uv_write */
    wq_fx_free(f);
}

static void ff_on_idle_queue_is_queued_then_written_and_released_by_one_loop_iteration(
    void **state)
{
    (void)state;
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, 8, 1u << 20, 4096);
    bh_bytes b = wq_pattern_slice(f->pattern, 0, 300);
    bh_bytes mine = bh_bytes_clone(&b);
    assert_int_equal(bh_writeq_try_write_ff(&f->q, &b), BH_OK);
    f->off = 300;
    struct bh_writeq_stats s;
    bh_writeq_stats(&f->q, &s);
    assert_int_equal(bh_bytes_refcount(&mine), 2); /* the queue holds it */
    assert_int_equal(s.queued_items, 1);
    assert_int_equal(s.written_bytes, 0);
    assert_int_equal(s.flushes, 0);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(bh_bytes_refcount(&mine), 1); /* released by the flush */
    bh_bytes_release(&mine);
    bh_writeq_stats(&f->q, &s);
    assert_int_equal(s.try_write_hits, 1);
    assert_int_equal(s.queued_items, 0);
    assert_int_equal(s.flushes, 1);
    assert_int_equal(s.batches, 0);
    assert_int_equal(s.written_bytes, 300);
    wq_fx_run_until_received(f, RUN_MS);
    wq_fx_free(f);
}

static void each_ticket_completes_once_with_zero_in_submission_order(void **state)
{
    (void)state;
    enum { N = 200 };
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, N, 1u << 20, 64 * 1024);
    wq_ticket t[N] = {0};
    for (int i = 0; i < N; i++)
        assert_int_equal(wq_fx_ticket(f, 1 + (size_t)i % 50, &t[i]), BH_OK);
    wq_fx_run_until_settled(f, RUN_MS);
    test_tickets_expect_in_order(t, N, 0);
    wq_fx_free(f);
}

static void empty_slices_are_accepted_and_empty_tickets_complete_once(void **state)
{
    (void)state;
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, 8, 100, 4096);
    bh_bytes e = {0};
    wq_ticket t = {0}, t2 = {0};
    assert_int_equal(bh_writeq_try_write_ff(&f->q, &e), BH_OK);
    assert_int_equal(bh_writeq_try_write(&f->q, &e, wq_ticket_cb, &t), BH_OK);
    assert_int_equal(wq_fx_ff(f, 10), BH_OK);
    assert_int_equal(bh_writeq_try_write(&f->q, &e, wq_ticket_cb, &t2), BH_OK);
    assert_int_equal(t.calls, 0);
    wq_fx_run_until_settled(f, RUN_MS);
    assert_int_equal(t.calls, 1);
    assert_int_equal(t.status, 0);
    assert_int_equal(t2.calls, 1);
    assert_int_equal(t2.status, 0);
    wq_fx_free(f);
}

/* ---- order, batching, ring growth ----------------------------------------- */

static void order_is_preserved_across_batches_of_at_most_iov_max_items(void **state)
{
    (void)state;
    enum { N = 3000 };
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, N + 1, 8u << 20, 256 * 1024);
    wq_ticket first = {0};
    assert_int_equal(wq_fx_ticket(f, 7, &first), BH_OK); /* one item in flight */
    for (int i = 0; i < N; i++)
        assert_int_equal(wq_fx_ff(f, 1 + (size_t)(i * 7) % 61), BH_OK);
    struct bh_writeq_stats s;
    bh_writeq_stats(&f->q, &s);
    assert_int_equal(s.queued_items, N + 1);
    wq_fx_run_until_received(f, RUN_MS);
    bh_writeq_stats(&f->q, &s);
    /* ceil(3001 / 1024) writes (flush rounds and uv_write batches) at least;
     * far fewer than one per item. */
    assert_true(s.flushes + s.batches >= 3);
    assert_true(s.flushes + s.batches < 100);
    assert_int_equal(s.written_items, N + 1);
    assert_int_equal(s.written_bytes, f->off);
    wq_fx_free(f);
}

/* Runs inside the write callback of the first ticket: head is 1, seven
 * items are queued in the first ring (8 slots); the next pushes wrap around
 * and force growth of a wrapped ring (the ring itself: core/test_queue). */
static void enqueue_while_wrapped(bh_writeq *q, int status, void *ctx)
{
    wq_fx *f = ctx;
    (void)q;
    assert_int_equal(status, 0);
    assert_int_equal(wq_fx_ff(f, 11), BH_OK); /* lands in slot 0: wrapped */
    for (int i = 0; i < 21; i++)
        assert_int_equal(wq_fx_ff(f, 13 + (size_t)i), BH_OK);
}

static void ring_grows_while_wrapped_and_keeps_order(void **state)
{
    (void)state;
    bh_thread_cache_trim(); /* no cached ring: the first one has 8 slots */
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, 64, 1u << 20, 64 * 1024);
    bh_bytes b = wq_pattern_slice(f->pattern, 0, 5);
    assert_int_equal(bh_writeq_try_write(&f->q, &b, enqueue_while_wrapped, f), BH_OK);
    f->off = 5;
    for (int i = 0; i < 7; i++)
        assert_int_equal(wq_fx_ff(f, 3 + (size_t)i), BH_OK);
    wq_fx_run_until_received(f, RUN_MS); /* every byte, in order */
    assert_int_equal(f->sink.mismatches, 0);
    struct bh_writeq_stats s = wq_expect_queued(&f->q, 0, 0);
    assert_int_equal(s.written_items, 1 + 7 + 22); /* with the callback's 22 */
    wq_fx_free(f);
}

typedef struct chain_ctx {
    wq_fx *f;
    int remaining;
    int calls;
} chain_ctx;

static void chain_cb(bh_writeq *q, int status, void *ctx)
{
    chain_ctx *c = ctx;
    (void)q;
    assert_int_equal(status, 0);
    c->calls++;
    if (c->remaining-- > 0) {
        bh_bytes b = wq_pattern_slice(c->f->pattern, c->f->off, 33);
        assert_int_equal(bh_writeq_try_write(&c->f->q, &b, chain_cb, c), BH_OK);
        c->f->off += 33;
        assert_int_equal(wq_fx_ff(c->f, 17), BH_OK);
    }
}

static int chain_done(void *arg)
{
    chain_ctx *c = arg;
    return c->calls == 51 && c->f->sink.received == c->f->off;
}

static void ticket_callback_may_enqueue_and_order_is_kept(void **state)
{
    (void)state;
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, 16, 1u << 20, 64 * 1024);
    chain_ctx c = {f, 50, 0};
    bh_bytes b = wq_pattern_slice(f->pattern, 0, 9);
    assert_int_equal(bh_writeq_try_write(&f->q, &b, chain_cb, &c), BH_OK);
    f->off = 9;
    wq_sink_start(&f->sink);
    assert_int_equal(wq_run_until(&f->loop, chain_done, &c, RUN_MS), 0);
    assert_int_equal(c.calls, 51);
    assert_int_equal(f->sink.received, 9 + 50 * 50);
    assert_int_equal(f->sink.mismatches, 0);
    wq_fx_free(f);
}

/* ---- drain callback ------------------------------------------------------- */

typedef struct producer {
    wq_fx *f;
    size_t total_items, made;
    size_t low_water;
    int refusals, drains, bad_drains;
    wq_ticket tickets[64];
    int nt;
} producer;

static void produce(producer *p)
{
    while (p->made < p->total_items) {
        size_t n = 100 + (p->made * 37) % 2900;
        int rc;
        if (p->made % 50 == 0 && p->nt < 64)
            rc = wq_fx_ticket(p->f, n, &p->tickets[p->nt]);
        else
            rc = wq_fx_ff(p->f, n);
        if (rc == BH_EFULL) {
            p->refusals++;
            return; /* wait for the drain callback */
        }
        assert_int_equal(rc, BH_OK);
        if (p->made % 50 == 0 && p->nt < 64)
            p->nt++;
        p->made++;
    }
}

static void on_drain(bh_writeq *q, void *ctx)
{
    producer *p = ctx;
    struct bh_writeq_stats s;
    bh_writeq_stats(q, &s);
    if (s.queued_bytes > p->low_water)
        p->bad_drains++;
    p->drains++;
    produce(p);
}

static int producer_done(void *arg)
{
    producer *p = arg;
    return p->made == p->total_items && p->f->sink.received == p->f->off;
}

static void refused_producer_retries_from_drain_callback_below_low_water(void **state)
{
    (void)state;
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, 32, 32 * 1024, 4u << 20);
    producer p = {.f = f};
    p.total_items = 1500;
    p.low_water = 8 * 1024;
    bh_writeq_set_drain_cb(&f->q, p.low_water, on_drain, &p);
    produce(&p);
    assert_int_equal(p.refusals, 1); /* the budget is far below the total */
    wq_sink_start(&f->sink);
    assert_int_equal(wq_run_until(&f->loop, producer_done, &p, RUN_MS), 0);
    assert_int_equal(f->sink.mismatches, 0);
    assert_true(p.drains >= 1);
    assert_true(p.drains >= p.refusals); /* every refusal was answered */
    assert_int_equal(p.bad_drains, 0);
    for (int i = 0; i < p.nt; i++) {
        assert_int_equal(p.tickets[i].calls, 1);
        assert_int_equal(p.tickets[i].status, 0);
    }
    struct bh_writeq_stats s;
    bh_writeq_stats(&f->q, &s);
    assert_int_equal(s.refused, (uint64_t)p.refusals);
    wq_fx_free(f);
}

static void drain_callback_is_not_called_without_pressure(void **state)
{
    (void)state;
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, 32, 1u << 20, 4096);
    producer p = {.f = f};
    bh_writeq_set_drain_cb(&f->q, 1u << 20, on_drain, &p); /* mark above the budget */
    wq_ticket t = {0};
    assert_int_equal(wq_fx_ticket(f, 100, &t), BH_OK);
    assert_int_equal(wq_fx_ff(f, 100), BH_OK);
    wq_fx_run_until_settled(f, RUN_MS);
    assert_int_equal(p.drains, 0);
    wq_fx_free(f);
}

TEST_MAIN(test_alloc_checked(config_default_is_1024_items_and_8_mib),
          test_alloc_checked(init_rejects_null_arguments_zero_budgets_and_foreign_loop),
          test_alloc_checked(idle_queue_allocates_nothing_until_first_write),
          test_alloc_checked(first_enqueue_allocates_a_small_ring_not_max_items),
          test_alloc_checked(item_budget_accepts_exactly_max_items_and_refuses_the_next),
          test_alloc_checked(byte_budget_accepts_exactly_max_bytes_and_refuses_one_more),
          test_alloc_checked(item_longer_than_max_bytes_is_refused_with_etoolong_even_when_idle),
          test_alloc_checked(refusal_leaves_slice_with_caller_and_refcount_unchanged),
          test_alloc_checked(accepted_slice_is_zeroed_and_its_reference_released_after_write),
          test_alloc_checked(ticket_never_completes_inside_try_write_and_completes_once_on_the_loop),
          test_alloc_checked(ff_on_idle_queue_is_queued_then_written_and_released_by_one_loop_iteration),
          test_alloc_checked(each_ticket_completes_once_with_zero_in_submission_order),
          test_alloc_checked(empty_slices_are_accepted_and_empty_tickets_complete_once),
          test_alloc_checked(order_is_preserved_across_batches_of_at_most_iov_max_items),
          test_alloc_checked(ring_grows_while_wrapped_and_keeps_order),
          test_alloc_checked(ticket_callback_may_enqueue_and_order_is_kept),
          test_alloc_checked(refused_producer_retries_from_drain_callback_below_low_water),
          test_alloc_checked(drain_callback_is_not_called_without_pressure))
