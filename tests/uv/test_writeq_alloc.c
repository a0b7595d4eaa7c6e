/* test_writeq_alloc.c - bh_writeq statistics and allocations: the counters,
 * no allocation in steady state, allocation failures of the ring and the
 * batch array, and a slice above 1 GiB cut into batches and resumed at the
 * exact offset. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <cmocka.h>

#include "test_alloc.h"
#include "test_main.h"
#include "test_uv.h"
#include "test_writeq_support.h"

#define RUN_MS 20000

/* ---- statistics and allocations ------------------------------------------ */

static void stats_count_items_bytes_flushes_batches_hits_and_refusals(void **state)
{
    (void)state;
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, 3, 1u << 20, 4096);
    assert_int_equal(wq_fx_ff(f, 10), BH_OK);
    uv_run(&f->loop, UV_RUN_NOWAIT); /* flush 1 */
    wq_ticket t = {0};
    assert_int_equal(wq_fx_ticket(f, 20, &t), BH_OK);
    assert_int_equal(wq_fx_ff(f, 30), BH_OK);
    assert_int_equal(wq_fx_ff(f, 40), BH_OK);
    assert_int_equal(wq_fx_ff(f, 50), BH_EFULL);
    struct bh_writeq_stats s = wq_expect_queued(&f->q, 3, 90);
    assert_int_equal(s.refused, 1);
    assert_int_equal(s.try_write_hits, 1);
    assert_int_equal(s.written_bytes, 10);
    assert_int_equal(s.flushes, 1);
    assert_int_equal(s.batches, 0);
    wq_fx_run_until_received(f, RUN_MS); /* flush 2: one writev for all three */
    s = wq_expect_queued(&f->q, 0, 0);
    assert_int_equal(s.written_items, 4);
    assert_int_equal(s.written_bytes, 100);
    assert_int_equal(s.flushes, 2);
    assert_int_equal(s.batches, 0);
    assert_int_equal(s.try_write_hits, 4);
    wq_fx_free(f);
}

typedef struct cycle_ctx {
    wq_fx *f;
    wq_ticket t;
    const uint8_t *pattern;
} cycle_ctx;

static int cycle_done(void *arg)
{
    cycle_ctx *c = arg;
    return c->t.calls == 1 && c->f->sink.received == c->f->off;
}

/* One ticket (starts a write) and 50 fire-and-forget static slices queued
 * behind it, then drained by the loop. */
static void enqueue_and_drain_cycle(cycle_ctx *c)
{
    wq_fx *f = c->f;
    memset(&c->t, 0, sizeof c->t);
    bh_bytes b = bh_bytes_static(f->pattern + f->off, 64);
    assert_int_equal(bh_writeq_try_write(&f->q, &b, wq_ticket_cb, &c->t), BH_OK);
    f->off += 64;
    for (int i = 0; i < 50; i++) {
        bh_bytes s = bh_bytes_static(f->pattern + f->off, 16);
        assert_int_equal(bh_writeq_try_write_ff(&f->q, &s), BH_OK);
        f->off += 16;
    }
    assert_int_equal(wq_run_until(&f->loop, cycle_done, c, RUN_MS), 0);
}

static void steady_state_fire_and_forget_enqueue_allocates_nothing(void **state)
{
    (void)state;
    enum { CYCLES = 200, PER = 64 + 50 * 16 };
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, 64, 1u << 20, (CYCLES + 10) * PER + 4096);
    wq_sink_start(&f->sink);
    cycle_ctx c = {f, {0}, NULL};
    test_alloc_install(0);
    for (int i = 0; i < 3; i++)
        enqueue_and_drain_cycle(&c); /* warm-up: ring and batch array grow */
    test_alloc_stats before, after;
    test_alloc_stats_get(&before);
    assert_true(before.allocs > 0);
    for (int i = 0; i < CYCLES; i++)
        enqueue_and_drain_cycle(&c);
    /* fast-path cycles too */
    for (int i = 0; i < 100; i++) {
        bh_bytes s = bh_bytes_static(f->pattern + f->off, 32);
        assert_int_equal(bh_writeq_try_write_ff(&f->q, &s), BH_OK);
        f->off += 32;
        assert_int_equal(wq_run_until(&f->loop, wq_fx_received_all, f, RUN_MS), 0);
    }
    test_alloc_stats_get(&after);
    assert_int_equal(after.attempts, before.attempts);
    assert_int_equal(f->sink.mismatches, 0);
    wq_fx_free(f);
    test_alloc_finish();
}

static void ring_growth_failure_refuses_with_enomem_and_caller_keeps_slice(void **state)
{
    (void)state;
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, 64, 1u << 20, 4096);
    bh_bytes b = wq_pattern_slice(f->pattern, 0, 40);
    test_alloc_fail_after(0);
    wq_ticket t = {0};
    assert_int_equal(bh_writeq_try_write(&f->q, &b, wq_ticket_cb, &t), BH_ENOMEM);
    assert_non_null(b.ptr);
    assert_int_equal(b.len, 40);
    struct bh_writeq_stats s = wq_expect_queued(&f->q, 0, 0);
    assert_int_equal(s.refused, 1);
    /* The queue is still usable. */
    assert_int_equal(bh_writeq_try_write(&f->q, &b, wq_ticket_cb, &t), BH_OK);
    f->off = 40;
    wq_fx_run_until_settled(f, RUN_MS);
    assert_int_equal(t.calls, 1);
    wq_fx_free(f);
}

static void batch_array_growth_failure_still_writes_everything_in_order(void **state)
{
    (void)state;
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, 8, 1u << 20, 4096);
    test_alloc_install(0);
    wq_ticket t = {0};
    /* Static slices allocate nothing: attempt 1 is the ring, attempt 2 the
     * deferred-flush block, attempt 3 (in the flush) the batch array, which
     * fails; the queue falls back to one-entry batches. */
    test_alloc_fail_after(2);
    bh_bytes b = bh_bytes_static(f->pattern, 10);
    assert_int_equal(bh_writeq_try_write(&f->q, &b, wq_ticket_cb, &t), BH_OK);
    f->off = 10;
    test_alloc_fail_all(1); /* the batch array can never grow */
    for (int i = 0; i < 7; i++) {
        bh_bytes s = bh_bytes_static(f->pattern + f->off, 20);
        assert_int_equal(bh_writeq_try_write_ff(&f->q, &s), BH_OK);
        f->off += 20;
    }
    wq_fx_run_until_received(f, RUN_MS);
    test_alloc_fail_all(0);
    struct bh_writeq_stats s;
    bh_writeq_stats(&f->q, &s);
    assert_int_equal(s.written_items, 8);
    assert_int_equal(s.flushes + s.batches, 8); /* one item per write */
    assert_int_equal(t.calls, 1);
    wq_fx_free(f);
    test_alloc_finish();
}

typedef struct huge_ctx {
    size_t big;     /* zero bytes expected first */
    const uint8_t *tail;
    size_t tail_len;
    size_t got;
    size_t bad;
} huge_ctx;

static const uint8_t zeros[64 * 1024];

static void huge_hook(wq_sink *k, const uint8_t *p, size_t n)
{
    huge_ctx *h = k->ctx;
    while (n > 0) {
        size_t step;
        if (h->got < h->big) { /* zero region: compare blockwise (fast under TSan) */
            step = h->big - h->got;
            if (step > n)
                step = n;
            if (step > sizeof zeros)
                step = sizeof zeros;
            if (memcmp(p, zeros, step) != 0)
                h->bad++;
        } else {
            step = 1;
            if (h->got - h->big >= h->tail_len || *p != h->tail[h->got - h->big])
                h->bad++;
        }
        p += step;
        n -= step;
        h->got += step;
    }
}

/* A slice above 1 GiB: each iovec holds at most 1 GiB and a batch stops at
 * 1 GiB, so the slice goes out in two writes and the queue resumes it at
 * the exact offset. The bytes come from a read-only anonymous mapping (the
 * zero page), so nothing large is allocated. */
static void slice_above_1_gib_is_cut_into_batches_and_resumed_at_the_exact_offset(void **state)
{
    (void)state;
    const size_t big = ((size_t)3 << 29) + 3; /* 1.5 GiB + 3 */
    /* Moving 1.5 GiB is quick natively but takes minutes under TSan or
     * valgrind; their runners set BH_SKIP_HUGE_TESTS. */
    if (getenv("BH_SKIP_HUGE_TESTS"))
        skip();
    void *m = mmap(NULL, big, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        skip();
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, 8, (size_t)2 << 30, 4096);
    huge_ctx h = {big, f->pattern, 100, 0, 0};
    f->sink.hook = huge_hook;
    f->sink.ctx = &h;
    wq_ticket t = {0}, t2 = {0};
    bh_bytes b = bh_bytes_static(m, big);
    assert_int_equal(bh_writeq_try_write(&f->q, &b, wq_ticket_cb, &t), BH_OK);
    bh_bytes tail = bh_bytes_static(f->pattern, 100);
    assert_int_equal(bh_writeq_try_write(&f->q, &tail, wq_ticket_cb, &t2), BH_OK);
    f->off = big + 100;
    wq_fx_run_until_settled(f, RUN_MS);
    assert_int_equal(h.got, big + 100);
    assert_int_equal(h.bad, 0);
    assert_int_equal(t.calls, 1);
    assert_int_equal(t.status, 0);
    assert_int_equal(t2.calls, 1);
    assert_true(t2.order > t.order);
    struct bh_writeq_stats s;
    bh_writeq_stats(&f->q, &s);
    assert_int_equal(s.written_bytes, big + 100);
    /* After the flush's uv_try_write prefix: [rest of the first 1 GiB] then,
     * from the write callback, [0.5 GiB + 3, tail]. */
    assert_int_equal(s.batches, 2);
    wq_fx_free(f);
    munmap(m, big);
}

TEST_MAIN(test_alloc_checked(stats_count_items_bytes_flushes_batches_hits_and_refusals),
          test_alloc_checked(steady_state_fire_and_forget_enqueue_allocates_nothing),
          test_alloc_checked(ring_growth_failure_refuses_with_enomem_and_caller_keeps_slice),
          test_alloc_checked(batch_array_growth_failure_still_writes_everything_in_order),
          test_alloc_checked(slice_above_1_gib_is_cut_into_batches_and_resumed_at_the_exact_offset))
