/* test_queue_idle.c - what an idle bh_queue holds (nothing once drained) and
 * the per-thread array cache that makes that free: drained queues give their
 * ring and batch array back, the next push takes them again without calling
 * the allocator, the cache stays within its bounds, bh_thread_cache_trim()
 * empties it, and an allocation failure while a queue re-takes arrays
 * refuses the push like ring growth always did, and a thread's cache is freed
 * when it exits. The libuv adapter's side: uv/test_writeq_idle.c. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <bytes_handoff.h>
#include <bytes_handoff/queue.h>

#include "array_cache_internal.h"
#include "queue_internal.h"
#include "test_alloc.h"
#include "test_main.h"
#include "test_queue_support.h"

#define RING_ITEM (sizeof(bh_queue_item))
#define IOV_ITEM (sizeof(struct iovec))

static bh__array_cache_stats cache_now(void)
{
    bh__array_cache_stats s;
    bh__array_cache_stats_get(&s);
    return s;
}

/* Asserts that q holds no array at all. */
static void expect_holds_nothing(const bh_queue *q)
{
    assert_null(bh__queue_ring_ptr(q));
    assert_int_equal(bh__queue_ring_cap(q), 0);
    assert_int_equal(bh__queue_iov_cap(q), 0);
}

/* One item through the whole cycle: push, batch, all written. */
static void push_and_write(qfx *f, size_t n)
{
    assert_int_equal(qfx_push(f, n, NULL), BH_OK);
    bh_queue_batch b;
    assert_int_equal(bh_queue_batch_next(&f->q, 64, &b), 1);
    assert_int_equal(bh_queue_batch_done(&f->q, b.bytes), 1);
}

/* Each test below runs under the counting allocator, installed fresh (which
 * trims the thread's caches, so the array cache starts empty) and checked
 * for leaks after a final trim (test_alloc_checked). */
static void drained_queue_holds_no_heap_memory_and_trim_frees_what_it_gave_back(void **state)
{
    (void)state;
    qfx *f = qfx_new(64, 1u << 20);
    assert_int_equal(test_alloc_stats_now().live_bytes, 0);
    qt_ticket t = {0, 0, 0};
    assert_int_equal(qfx_push(f, 10, &t), BH_OK);
    assert_int_equal(qfx_push(f, 10, NULL), BH_OK);
    assert_true(test_alloc_stats_now().live_bytes > 0); /* the ring */
    assert_int_equal(qfx_write_all(f), 2);
    assert_int_equal(t.calls, 1);
    expect_holds_nothing(&f->q);
    /* What was allocated now sits in the thread's cache, nowhere else. */
    bh__array_cache_stats c = cache_now();
    assert_int_equal(c.arrays[BH_ARRAY_RING], 1);
    assert_int_equal(c.arrays[BH_ARRAY_IOV], 1);
    assert_int_equal(c.bytes, 8 * RING_ITEM + 8 * IOV_ITEM);
    assert_int_equal(test_alloc_stats_now().live, 2);
    bh_thread_cache_trim();
    assert_int_equal(cache_now().bytes, 0);
    assert_int_equal(test_alloc_stats_now().live_bytes, 0);
    assert_int_equal(test_alloc_stats_now().live, 0);
    /* Used again after the trim: allocates afresh, drains to nothing again. */
    push_and_write(f, 5);
    expect_holds_nothing(&f->q);
    qfx_free(f);
}

static void direct_write_take_back_unreserve_and_fail_leave_the_queue_holding_nothing(void **state)
{
    (void)state;
    qfx *f = qfx_new(8, 1000);
    /* Written at once by the adapter: completes inside push_reserved. */
    assert_int_equal(bh_queue_claim(&f->q, 30), BH_OK);
    assert_non_null(bh__queue_ring_ptr(&f->q)); /* the reserved slot */
    bh_bytes b = qfx_slice(f, 30);
    assert_int_equal(bh_queue_push_claimed(&f->q, &b, NULL, NULL, 30), 1);
    expect_holds_nothing(&f->q);
    /* The adapter could not start its write: taken back. */
    assert_int_equal(bh_queue_claim(&f->q, 20), BH_OK);
    b = qfx_slice(f, 20);
    assert_int_equal(bh_queue_push_claimed(&f->q, &b, NULL, NULL, 0), 0);
    bh_bytes back;
    assert_int_equal(bh_queue_take_back(&f->q, &back), 0);
    bh_bytes_release(&back);
    expect_holds_nothing(&f->q);
    /* The direct write failed before queueing: the reservation returns. */
    assert_int_equal(bh_queue_claim(&f->q, 20), BH_OK);
    bh_queue_unclaim(&f->q, 20);
    expect_holds_nothing(&f->q);
    /* Failed with items queued: they complete, the arrays go back. */
    qt_ticket t = {0, 0, 0};
    assert_int_equal(qfx_push(f, 4, &t), BH_OK);
    bh_queue_fail(&f->q, BH_EIO);
    assert_int_equal(t.calls, 1);
    assert_int_equal(t.status, BH_EIO);
    expect_holds_nothing(&f->q);
    qfx_free(f);
    assert_int_equal(test_alloc_stats_now().live, cache_now().arrays[BH_ARRAY_RING]);
}

static void drained_queue_gives_a_burst_ring_back_shrunk_to_64_slots(void **state)
{
    (void)state;
    qfx *f = qfx_new(1024, 1u << 20);
    for (int i = 0; i < 300; i++)
        assert_int_equal(qfx_push(f, 1, NULL), BH_OK);
    assert_int_equal(bh__queue_ring_cap(&f->q), 512);
    qfx_write_all(f);
    expect_holds_nothing(&f->q);
    bh__array_cache_stats c = cache_now();
    assert_int_equal(c.arrays[BH_ARRAY_RING], 1);
    assert_int_equal(c.arrays[BH_ARRAY_IOV], 1);
    assert_int_equal(c.bytes, 64 * RING_ITEM + 64 * IOV_ITEM);
    /* A burst within 64 items then allocates nothing. */
    size_t attempts = test_alloc_stats_now().attempts;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 64; i++)
            assert_int_equal(qfx_push(f, 1, NULL), BH_OK);
        assert_int_equal(bh__queue_ring_cap(&f->q), 64);
        qfx_write_all(f);
    }
    assert_int_equal(test_alloc_stats_now().attempts, attempts);
    qfx_free(f);
}

static void queues_that_drain_after_every_item_allocate_nothing_after_warm_up(void **state)
{
    (void)state;
    enum { N = 2000 };
    qfx *a = qfx_new(64, 1u << 20), *b = qfx_new(64, 1u << 20);
    /* Warm-up: one cycle of each pattern below. */
    push_and_write(a, 3);
    for (int i = 0; i < 20; i++)
        assert_int_equal(qfx_push(a, 1, NULL), BH_OK);
    assert_int_equal(qfx_push(b, 1, NULL), BH_OK);
    qfx_write_all(a);
    qfx_write_all(b);
    size_t attempts = test_alloc_stats_now().attempts;
    for (int i = 0; i < N; i++) {
        /* One item at a time: push, batch, complete. */
        push_and_write(a, 1 + (size_t)i % 7);
        /* The adapter's direct write of a whole slice. */
        assert_int_equal(bh_queue_claim(&b->q, 2), BH_OK);
        bh_bytes s = bh_bytes_static(b->pattern, 2);
        assert_int_equal(bh_queue_push_claimed(&b->q, &s, NULL, NULL, 2), 1);
        /* Two queues busy at once, one of them with a grown ring. */
        if (i % 10 == 0) {
            a->off = b->off = 0;
            for (int k = 0; k < 20; k++)
                assert_int_equal(qfx_push(a, 1, NULL), BH_OK);
            assert_int_equal(qfx_push(b, 1, NULL), BH_OK);
            qfx_write_all(b);
            qfx_write_all(a);
        }
    }
    assert_int_equal(test_alloc_stats_now().attempts, attempts);
    expect_holds_nothing(&a->q);
    expect_holds_nothing(&b->q);
    qfx_free(a);
    qfx_free(b);
}

static void array_cache_keeps_at_most_its_bounds_and_frees_the_rest(void **state)
{
    (void)state;
    enum { QUEUES = 40 };
    qfx *f[QUEUES];
    /* Every queue busy at once with a full 64-slot ring and batch array. */
    for (int i = 0; i < QUEUES; i++) {
        f[i] = qfx_new(64, 1u << 20);
        for (int k = 0; k < 64; k++)
            assert_int_equal(qfx_push(f[i], 1, NULL), BH_OK);
        bh_queue_batch b;
        assert_int_equal(bh_queue_batch_next(&f[i]->q, 64, &b), 1);
        bh_queue_batch_abort(&f[i]->q);
    }
    uint64_t refused = cache_now().refused;
    for (int i = 0; i < QUEUES; i++) {
        qfx_write_all(f[i]);
        expect_holds_nothing(&f[i]->q);
    }
    bh__array_cache_stats c = cache_now();
    assert_true(c.arrays[BH_ARRAY_RING] <= BH_ARRAY_CACHE_MAX_ARRAYS);
    assert_true(c.arrays[BH_ARRAY_IOV] <= BH_ARRAY_CACHE_MAX_ARRAYS);
    assert_true(c.bytes <= BH_ARRAY_CACHE_MAX_BYTES);
    assert_true(c.bytes + 64 * RING_ITEM > BH_ARRAY_CACHE_MAX_BYTES); /* the byte bound bit */
    assert_int_equal(c.refused - refused,
                     2 * QUEUES - c.arrays[BH_ARRAY_RING] - c.arrays[BH_ARRAY_IOV]);
    /* What the cache refused was freed: only cached arrays are live. */
    assert_int_equal(test_alloc_stats_now().live,
                     c.arrays[BH_ARRAY_RING] + c.arrays[BH_ARRAY_IOV]);
    /* The count bound: 40 small rings, no batch arrays. */
    bh_thread_cache_trim();
    for (int i = 0; i < QUEUES; i++)
        assert_int_equal(qfx_push(f[i], 1, NULL), BH_OK);
    for (int i = 0; i < QUEUES; i++)
        bh_queue_fail(&f[i]->q, BH_EIO);
    c = cache_now();
    assert_int_equal(c.arrays[BH_ARRAY_RING], BH_ARRAY_CACHE_MAX_ARRAYS);
    assert_int_equal(test_alloc_stats_now().live, BH_ARRAY_CACHE_MAX_ARRAYS);
    /* One array above the per-array bound is freed at once. */
    void *big = bh_malloc(BH_ARRAY_CACHE_MAX_ARRAY_BYTES + 1);
    assert_non_null(big);
    bh_thread_cache_trim();
    bh__array_cache_put(BH_ARRAY_IOV, big, BH_ARRAY_CACHE_MAX_ARRAY_BYTES + 1);
    assert_int_equal(cache_now().arrays[BH_ARRAY_IOV], 0);
    assert_int_equal(test_alloc_stats_now().live, 0);
    for (int i = 0; i < QUEUES; i++)
        qfx_free(f[i]);
}

static void failure_while_retaking_arrays_refuses_the_push_and_keeps_the_queue_valid(void **state)
{
    (void)state;
    qfx *f = qfx_new(64, 1u << 20);
    push_and_write(f, 8);
    /* Arrays cached: taking them again allocates nothing, so it cannot fail. */
    test_alloc_fail_all(1);
    push_and_write(f, 8);
    test_alloc_fail_all(0);
    /* Cache emptied: the next push allocates, and that allocation fails. */
    bh_thread_cache_trim();
    test_alloc_fail_after(0);
    size_t off = f->off;
    assert_int_equal(qfx_push(f, 8, NULL), BH_ENOMEM); /* the slice stays the caller's */
    assert_int_equal(f->off, off);
    struct bh_queue_stats s = qfx_expect_queued(f, 0, 0);
    assert_int_equal(s.refused, 1);
    assert_int_equal(bh_queue_state(&f->q), BH_QUEUE_OPEN);
    expect_holds_nothing(&f->q);
    /* The batch array cannot be taken either: one iovec at a time. */
    qt_ticket t[3] = {0};
    for (int i = 0; i < 3; i++)
        assert_int_equal(qfx_push(f, 5, &t[i]), BH_OK);
    test_alloc_fail_after(0);
    bh_queue_batch b;
    assert_int_equal(bh_queue_batch_next(&f->q, 64, &b), 1);
    assert_int_equal(b.n_iov, 1);
    assert_ptr_equal(b.iov[0].iov_base, f->pattern + off);
    assert_int_equal(bh_queue_batch_done(&f->q, b.bytes), 1);
    assert_int_equal(qfx_write_all(f), 2);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(t[i].calls, 1);
        assert_int_equal(t[i].status, 0);
    }
    expect_holds_nothing(&f->q);
    qfx_free(f);
}

/* A thread drains a queue and exits: its cache is freed with it, while the
 * calling thread's cache is untouched. */
static void *drain_on_own_thread(void *arg)
{
    qfx *f = arg;
    push_and_write(f, 4);
    expect_holds_nothing(&f->q);
    bh__array_cache_stats c = cache_now();
    return (void *)(uintptr_t)(c.arrays[BH_ARRAY_RING] + c.arrays[BH_ARRAY_IOV]);
}

static void a_threads_cached_arrays_are_freed_when_it_exits(void **state)
{
    (void)state;
    qfx *f = qfx_new(64, 1u << 20);
    pthread_t th;
    void *cached = NULL;
    assert_int_equal(pthread_create(&th, NULL, drain_on_own_thread, f), 0);
    assert_int_equal(pthread_join(th, &cached), 0);
    assert_int_equal((uintptr_t)cached, 2); /* it held a ring and a batch array */
    assert_int_equal(cache_now().bytes, 0);  /* none of them is ours */
    assert_int_equal(test_alloc_stats_now().live, 0);
    qfx_free(f);
}

#define T(f) test_alloc_checked(f)

TEST_MAIN(T(drained_queue_holds_no_heap_memory_and_trim_frees_what_it_gave_back),
          T(direct_write_take_back_unreserve_and_fail_leave_the_queue_holding_nothing),
          T(drained_queue_gives_a_burst_ring_back_shrunk_to_64_slots),
          T(queues_that_drain_after_every_item_allocate_nothing_after_warm_up),
          T(array_cache_keeps_at_most_its_bounds_and_frees_the_rest),
          T(failure_while_retaking_arrays_refuses_the_push_and_keeps_the_queue_valid),
          T(a_threads_cached_arrays_are_freed_when_it_exits))
