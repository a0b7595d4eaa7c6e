/* test_queue.c - bh_queue, the loop-free queue core, driven with no event
 * loop at all: budgets at the boundary, ownership on refusal, tickets once
 * and in order, batches as iovec arrays (IOV limits, chunks above 1 GiB),
 * partial writes at exact offsets, the drain signal, fail / close / abandon
 * completing every ticket exactly once, seal. What an idle queue holds:
 * test_queue_idle.c. Cross-thread submission and allocation failures:
 * test_queue_mt.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <cmocka.h>

#include <bytes_handoff.h>
#include <bytes_handoff/queue.h>

#include "queue_internal.h"
#include "test_alloc.h"
#include "test_main.h"
#include "test_queue_support.h"

static void init_rejects_bad_arguments_and_allocates_nothing(void **state)
{
    (void)state;
    bh_queue q;
    bh_queue_config zero_items = {0, 10}, zero_bytes = {10, 0}, ok = {4, 100};
    assert_int_equal(bh_queue_init(NULL, &ok, NULL), BH_EINVAL);
    assert_int_equal(bh_queue_init(&q, NULL, NULL), BH_EINVAL);
    assert_int_equal(bh_queue_init(&q, &zero_items, NULL), BH_EINVAL);
    assert_int_equal(bh_queue_init(&q, &zero_bytes, NULL), BH_EINVAL);
    test_alloc_install(0);
    assert_int_equal(bh_queue_init(&q, &ok, NULL), BH_OK);
    assert_int_equal(bh_queue_state(&q), BH_QUEUE_OPEN);
    assert_true(bh_queue_ring_empty(&q));
    assert_true(bh_queue_empty(&q));
    bh_queue_batch b;
    assert_int_equal(bh_queue_batch_next(&q, 16, &b), 0); /* nothing queued */
    assert_null(bh_queue_close(&q));
    assert_int_equal(test_alloc_stats_now().attempts, 0);
    test_alloc_finish();
}

static void budgets_accept_exactly_max_items_and_max_bytes_and_refuse_the_next(void **state)
{
    (void)state;
    qfx *f = qfx_new(3, 100);
    assert_int_equal(qfx_push(f, 60, NULL), BH_OK);
    assert_int_equal(qfx_push(f, 41, NULL), BH_EFULL); /* 101 bytes */
    assert_int_equal(qfx_push(f, 40, NULL), BH_OK);    /* exactly 100 */
    assert_int_equal(qfx_push(f, 0, NULL), BH_OK);     /* an empty slice costs no bytes */
    assert_int_equal(qfx_push(f, 0, NULL), BH_EFULL);  /* fourth item */
    assert_int_equal(qfx_push(f, 101, NULL), BH_ETOOLONG);
    struct bh_queue_stats s = qfx_expect_queued(f, 3, 100);
    assert_int_equal(s.refused, 3);
    assert_int_equal(qfx_write_all(f), 3);
    s = qfx_expect_queued(f, 0, 0);
    assert_int_equal(s.written_items, 3);
    assert_int_equal(s.written_bytes, 100);
    assert_int_equal(qfx_push(f, 100, NULL), BH_OK); /* budget is back */
    qfx_free(f);
}

static void refused_slice_stays_with_the_caller_with_its_refcount(void **state)
{
    (void)state;
    qfx *f = qfx_new(1, 100);
    assert_int_equal(qfx_push(f, 10, NULL), BH_OK);
    bh_bytes b = qfx_slice(f, 20);
    bh_bytes extra = bh_bytes_clone(&b);
    const uint8_t *ptr = b.ptr;
    assert_int_equal(bh_queue_push(&f->q, &b, NULL, NULL), BH_EFULL);
    assert_ptr_equal(b.ptr, ptr);
    assert_int_equal(b.len, 20);
    assert_int_equal(bh_bytes_refcount(&b), 2);
    bh_bytes bad = {NULL, 5, NULL};
    assert_int_equal(bh_queue_push(&f->q, &bad, NULL, NULL), BH_EINVAL);
    assert_int_equal(bh_queue_push(&f->q, NULL, NULL, NULL), BH_EINVAL);
    bh_queue_inbox_free(bh_queue_close(&f->q));
    assert_int_equal(bh_queue_push(&f->q, &b, NULL, NULL), BH_ECLOSED);
    assert_int_equal(bh_bytes_refcount(&b), 2);
    bh_bytes_release(&b);
    bh_bytes_release(&extra);
    qfx_free(f);
}

static void tickets_complete_once_in_order_and_never_inside_push(void **state)
{
    (void)state;
    enum { N = 50 };
    qfx *f = qfx_new(N, 1u << 20);
    qt_ticket t[N] = {0};
    for (int i = 0; i < N; i++) {
        assert_int_equal(qfx_push(f, 1 + (size_t)i, &t[i]), BH_OK);
        assert_int_equal(t[i].calls, 0);
    }
    assert_int_equal(qfx_write_all(f), N);
    test_tickets_expect_in_order(t, N, 0);
    qfx_free(f);
}

static void batch_covers_the_queued_slices_exactly_and_pins_them(void **state)
{
    (void)state;
    qfx *f = qfx_new(8, 1000);
    qt_ticket t[3] = {0};
    assert_int_equal(qfx_push(f, 10, &t[0]), BH_OK);
    assert_int_equal(qfx_push(f, 0, &t[1]), BH_OK);
    assert_int_equal(qfx_push(f, 30, &t[2]), BH_OK);
    bh_queue_batch b;
    assert_int_equal(bh_queue_batch_next(&f->q, 16, &b), 1);
    assert_int_equal(b.items, 3);
    assert_int_equal(b.bytes, 40);
    assert_int_equal(b.n_iov, 3);
    assert_int_equal(b.iov[0].iov_len, 10);
    assert_int_equal(b.iov[1].iov_len, 0);
    assert_int_equal(b.iov[2].iov_len, 30);
    assert_memory_equal(b.iov[0].iov_base, f->pattern, 10);
    assert_memory_equal(b.iov[2].iov_base, f->pattern + 10, 30);
    assert_false(bh_queue_ring_empty(&f->q));
    assert_int_equal(bh_queue_batch_next(&f->q, 16, &b), 0); /* one batch at a time */
    /* Pinned items survive close; the batch's end completes them. */
    assert_null(bh_queue_close(&f->q));
    assert_int_equal(t[0].calls, 0);
    assert_int_equal(bh_queue_batch_done(&f->q, 10), 2); /* 10 bytes: items 0 and the empty one */
    assert_int_equal(t[0].status, 0);
    assert_int_equal(t[1].status, 0);
    assert_int_equal(t[2].calls, 1);
    assert_int_equal(t[2].status, BH_ECANCELED);
    qfx_free(f);
}

static void batch_respects_max_iov_and_resumes_with_the_next_item(void **state)
{
    (void)state;
    qfx *f = qfx_new(16, 1000);
    for (int i = 0; i < 10; i++)
        assert_int_equal(qfx_push(f, 5, NULL), BH_OK);
    bh_queue_batch b;
    assert_int_equal(bh_queue_batch_next(&f->q, 4, &b), 1);
    assert_int_equal(b.n_iov, 4);
    assert_int_equal(b.items, 4);
    assert_int_equal(bh_queue_batch_done(&f->q, b.bytes), 4);
    assert_int_equal(bh_queue_batch_next(&f->q, 100, &b), 1);
    assert_int_equal(b.n_iov, 6);
    assert_ptr_equal(b.iov[0].iov_base, f->pattern + 20);
    bh_queue_batch_abort(&f->q); /* nothing written, nothing completes */
    assert_int_equal(bh_queue_count(&f->q), 6);
    assert_int_equal(qfx_write_all(f), 6);
    qfx_free(f);
}

/* Item i's length in the partial-write test: 1 to 300 bytes. */
static size_t item_len(int i) { return 1 + (size_t)(i * 37) % 300; }

static void partial_writes_resume_at_the_exact_byte_offset(void **state)
{
    (void)state;
    enum { N = 40 };
    size_t total = 0;
    qfx *f = qfx_new(N, 1u << 20);
    qt_ticket t[N] = {0}; /* every third item has a ticket */
    for (int i = 0; i < N; i++) {
        assert_int_equal(qfx_push(f, item_len(i), i % 3 ? NULL : &t[i]), BH_OK);
        total += item_len(i);
    }
    /* Write in odd-sized steps; every batch must start at the next unwritten
     * byte of the stream and every ticket completes when its last byte went. */
    size_t pos = 0, step = 1;
    bh_queue_batch b;
    while (bh_queue_batch_next(&f->q, 7, &b)) {
        assert_ptr_equal(b.iov[0].iov_base, f->pattern + pos);
        size_t n = step < b.bytes ? step : b.bytes;
        bh_queue_batch_done(&f->q, n);
        pos += n;
        step = step * 3 % 97 + 1;
        size_t done_to = 0;
        for (int i = 0; i < N; i++) {
            done_to += item_len(i);
            if (i % 3 == 0)
                assert_int_equal(t[i].calls, done_to <= pos ? 1 : 0);
        }
    }
    assert_int_equal(pos, total);
    struct bh_queue_stats s = qfx_stats(f);
    assert_int_equal(s.written_bytes, total);
    assert_int_equal(s.written_items, N);
    assert_int_equal(s.queued_bytes, 0);
    qfx_free(f);
}

static void first_push_allocates_a_small_ring_not_max_items(void **state)
{
    (void)state;
    bh_thread_cache_trim(); /* no cached ring */
    qfx *f = qfx_new(1024, 8u << 20);
    assert_int_equal(qfx_push(f, 100, NULL), BH_OK);
    assert_true(bh__queue_ring_cap(&f->q) >= 1);
    assert_true(bh__queue_ring_cap(&f->q) <= 16);
    assert_int_equal(qfx_write_all(f), 1);
    qfx_free(f);
}

static void ring_grows_up_to_max_items_and_not_beyond(void **state)
{
    (void)state;
    qfx *f = qfx_new(4, 1u << 20);
    for (int i = 0; i < 4; i++)
        assert_int_equal(qfx_push(f, 10, NULL), BH_OK);
    assert_int_equal(qfx_push(f, 1, NULL), BH_EFULL);
    assert_int_equal(bh__queue_ring_cap(&f->q), 4);
    assert_int_equal(qfx_write_all(f), 4);
    qfx_free(f);
}

static void ring_grows_while_wrapped_and_keeps_order(void **state)
{
    (void)state;
    bh_thread_cache_trim(); /* no cached ring: the first one has 8 slots */
    qfx *f = qfx_new(64, 1u << 20);
    for (int i = 0; i < 8; i++)
        assert_int_equal(qfx_push(f, 3, NULL), BH_OK);
    assert_int_equal(bh__queue_ring_cap(&f->q), 8);
    bh_queue_batch b;
    assert_int_equal(bh_queue_batch_next(&f->q, 5, &b), 1);
    bh_queue_batch_done(&f->q, b.bytes); /* head moves to 5 */
    for (int i = 0; i < 5; i++)
        assert_int_equal(qfx_push(f, 3, NULL), BH_OK);
    assert_true(bh__queue_wrapped(&f->q));
    for (int i = 0; i < 20; i++)
        assert_int_equal(qfx_push(f, 3, NULL), BH_OK); /* grows while wrapped */
    assert_int_equal(bh__queue_ring_cap(&f->q), 32);
    size_t pos = 15;
    while (bh_queue_batch_next(&f->q, 3, &b)) {
        for (size_t i = 0; i < b.n_iov; i++) {
            assert_ptr_equal(b.iov[i].iov_base, f->pattern + pos);
            pos += b.iov[i].iov_len;
        }
        bh_queue_batch_done(&f->q, b.bytes);
    }
    assert_int_equal(pos, 33 * 3);
    qfx_free(f);
}

/* 2.5 GiB of address space that is never touched: the queue only computes
 * iovec addresses, so no memory backs it. */
static void slices_above_1_gib_span_several_iovecs_and_batches_stop_at_1_gib(void **state)
{
    (void)state;
    const size_t gib = (size_t)1 << 30, big = 2 * gib + gib / 2 + 3;
    uint8_t *m = mmap(NULL, big, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        skip();
    bh_queue q;
    bh_queue_config cfg = {8, 3 * gib};
    assert_int_equal(bh_queue_init(&q, &cfg, NULL), BH_OK);
    qt_ticket t[2] = {0};
    bh_bytes b1 = bh_bytes_static(m, big);
    bh_bytes b2 = bh_bytes_static(m, 10);
    assert_int_equal(bh_queue_push(&q, &b1, qt_ticket_cb, &t[0]), BH_OK);
    assert_int_equal(bh_queue_push(&q, &b2, qt_ticket_cb, &t[1]), BH_OK);
    bh_queue_batch b;
    assert_int_equal(bh_queue_batch_next(&q, 64, &b), 1);
    assert_int_equal(b.n_iov, 1);
    assert_int_equal(b.iov[0].iov_len, gib);
    assert_int_equal(b.bytes, gib);
    assert_int_equal(b.items, 1);
    bh_queue_batch_done(&q, gib - 1); /* partial: one byte short */
    assert_int_equal(bh__queue_head_off(&q), gib - 1);
    assert_int_equal(bh_queue_batch_next(&q, 64, &b), 1);
    assert_ptr_equal(b.iov[0].iov_base, m + gib - 1);
    assert_int_equal(b.iov[0].iov_len, gib);
    assert_int_equal(b.bytes, gib);
    bh_queue_batch_done(&q, gib);
    assert_int_equal(bh_queue_batch_next(&q, 64, &b), 1);
    /* The rest of the big slice (0.5 GiB + 4) and the small one. */
    assert_int_equal(b.n_iov, 2);
    assert_ptr_equal(b.iov[0].iov_base, m + 2 * gib - 1);
    assert_int_equal(b.iov[0].iov_len, gib / 2 + 4);
    assert_int_equal(b.iov[1].iov_len, 10);
    assert_int_equal(t[0].calls, 0);
    assert_int_equal(bh_queue_batch_done(&q, b.bytes), 2);
    assert_int_equal(t[0].calls, 1);
    assert_int_equal(t[1].calls, 1);
    assert_true(t[1].order > t[0].order);
    /* max_iov 2 cuts a 2.5 GiB slice into two 1 GiB iovecs... but the batch
     * stops at 1 GiB, so one iovec. */
    bh_bytes b3 = bh_bytes_static(m, big);
    assert_int_equal(bh_queue_push(&q, &b3, NULL, NULL), BH_OK);
    assert_int_equal(bh_queue_batch_next(&q, 2, &b), 1);
    assert_int_equal(b.n_iov, 1);
    bh_queue_batch_abort(&q);
    bh_queue_close(&q);
    munmap(m, big);
}

static void drain_signal_comes_once_at_low_water_after_a_refusal(void **state)
{
    (void)state;
    qfx *f = qfx_new(100, 100);
    bh_queue_set_low_water(&f->q, 30);
    assert_int_equal(qfx_push(f, 50, NULL), BH_OK);
    assert_int_equal(qfx_push(f, 50, NULL), BH_OK);
    assert_int_equal(bh_queue_take_drain(&f->q), 0);
    assert_int_equal(qfx_push(f, 1, NULL), BH_EFULL); /* arms the signal */
    bh_queue_batch b;
    bh_queue_batch_next(&f->q, 16, &b);
    bh_queue_batch_done(&f->q, 60); /* 40 left: above the mark */
    assert_int_equal(bh_queue_take_drain(&f->q), 0);
    bh_queue_batch_next(&f->q, 16, &b);
    bh_queue_batch_done(&f->q, 10); /* 30 left: at the mark */
    assert_int_equal(bh_queue_take_drain(&f->q), 1);
    assert_int_equal(bh_queue_take_drain(&f->q), 0); /* once */
    qfx_write_all(f);
    assert_int_equal(bh_queue_take_drain(&f->q), 0);
    qfx_free(f);
}

static void queue_above_the_mark_signals_drain_without_a_refusal(void **state)
{
    (void)state;
    qfx *f = qfx_new(100, 1000);
    bh_queue_set_low_water(&f->q, 100);
    assert_int_equal(qfx_push(f, 80, NULL), BH_OK);
    assert_int_equal(qfx_write_all(f), 1);
    assert_int_equal(bh_queue_take_drain(&f->q), 0); /* never above the mark */
    assert_int_equal(qfx_push(f, 150, NULL), BH_OK);
    assert_int_equal(qfx_write_all(f), 1);
    assert_int_equal(bh_queue_take_drain(&f->q), 1);
    qfx_free(f);
}

static void fail_completes_every_unpinned_ticket_once_and_refuses_later_items(void **state)
{
    (void)state;
    qfx *f = qfx_new(16, 1000);
    qt_ticket t[6] = {0};
    for (int i = 0; i < 6; i++)
        assert_int_equal(qfx_push(f, 10, &t[i]), BH_OK);
    bh_queue_batch b;
    assert_int_equal(bh_queue_batch_next(&f->q, 2, &b), 1); /* items 0, 1 pinned */
    bh_queue_fail(&f->q, -32);
    assert_int_equal(bh_queue_state(&f->q), BH_QUEUE_FAILED);
    assert_int_equal(bh_queue_error(&f->q), -32);
    for (int i = 2; i < 6; i++) {
        assert_int_equal(t[i].calls, 1);
        assert_int_equal(t[i].status, -32);
    }
    assert_int_equal(t[0].calls, 0);
    assert_int_equal(qfx_push(f, 1, NULL), BH_ECLOSED);
    /* The batch went out partly: item 0 written, item 1 gets the failure. */
    assert_int_equal(bh_queue_batch_done(&f->q, 15), 1);
    assert_int_equal(t[0].status, 0);
    assert_int_equal(t[1].calls, 1);
    assert_int_equal(t[1].status, -32);
    bh_queue_fail(&f->q, -5); /* nothing left: no second completion */
    for (int i = 0; i < 6; i++)
        assert_int_equal(t[i].calls, 1);
    qfx_expect_queued(f, 0, 0);
    qfx_free(f);
}

/* A ticket callback that closes the queue from inside a completion loop. */
static void close_in_cb(bh_queue *q, int status, void *ctx)
{
    qt_ticket_cb(q, status, ctx);
    bh_queue_inbox_free(bh_queue_close(q));
}

static void close_inside_a_ticket_callback_cancels_the_rest_once(void **state)
{
    (void)state;
    qfx *f = qfx_new(16, 1000);
    qt_ticket t[6] = {0};
    bh_bytes first = qfx_slice(f, 10);
    assert_int_equal(bh_queue_push(&f->q, &first, close_in_cb, &t[0]), BH_OK);
    for (int i = 1; i < 6; i++)
        assert_int_equal(qfx_push(f, 10, &t[i]), BH_OK);
    bh_queue_batch b;
    assert_int_equal(bh_queue_batch_next(&f->q, 3, &b), 1);
    /* Items 0-2 were written by the same write: they complete with 0 even
     * though item 0's callback closed the queue; 3-5 are cancelled. */
    bh_queue_batch_done(&f->q, b.bytes);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(t[i].calls, 1);
        assert_int_equal(t[i].status, i < 3 ? 0 : BH_ECANCELED);
    }
    assert_int_equal(bh_queue_state(&f->q), BH_QUEUE_CLOSED);
    assert_null(bh__queue_ring_ptr(&f->q)); /* freed once the batch ended */
    qfx_free(f);
}

static void abandon_completes_the_batch_tickets_now_and_keeps_slices_until_its_end(void **state)
{
    (void)state;
    qfx *f = qfx_new(16, 1000);
    qt_ticket t[4] = {0};
    bh_bytes held = qfx_slice(f, 10);
    bh_bytes mine = bh_bytes_clone(&held);
    assert_int_equal(bh_queue_push(&f->q, &held, qt_ticket_cb, &t[0]), BH_OK);
    for (int i = 1; i < 4; i++)
        assert_int_equal(qfx_push(f, 10, &t[i]), BH_OK);
    bh_queue_batch b;
    assert_int_equal(bh_queue_batch_next(&f->q, 2, &b), 1);
    bh_queue_fail_deferred(&f->q, -110);
    bh_queue_batch_abandon(&f->q, -110);
    assert_int_equal(t[0].calls, 1);
    assert_int_equal(t[1].calls, 1);
    assert_int_equal(t[0].status, -110);
    assert_int_equal(bh_bytes_refcount(&mine), 2); /* still pinned */
    bh_queue_fail(&f->q, -110);
    assert_int_equal(t[2].calls, 1);
    assert_int_equal(t[3].calls, 1);
    bh_queue_batch_done(&f->q, 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(t[i].calls, 1);
    assert_int_equal(bh_bytes_refcount(&mine), 1);
    bh_bytes_release(&mine);
    qfx_free(f);
}

static int refuse_seal(void *ctx)
{
    int *calls = ctx;
    (*calls)++;
    return -99;
}

static void seal_runs_the_empty_action_only_when_empty_and_a_failure_changes_nothing(void **state)
{
    (void)state;
    qfx *f = qfx_new(16, 1000);
    int calls = 0;
    assert_int_equal(bh_queue_seal(&f->q, refuse_seal, &calls), -99);
    assert_int_equal(calls, 1);
    assert_int_equal(bh_queue_state(&f->q), BH_QUEUE_OPEN);
    assert_int_equal(qfx_push(f, 10, NULL), BH_OK);
    assert_int_equal(bh_queue_seal(&f->q, refuse_seal, &calls), 0); /* not empty */
    assert_int_equal(calls, 1);
    assert_int_equal(bh_queue_state(&f->q), BH_QUEUE_SEALED);
    assert_int_equal(qfx_push(f, 10, NULL), BH_ECLOSED);
    assert_int_equal(bh_queue_seal(&f->q, NULL, NULL), BH_ECLOSED);
    assert_int_equal(qfx_write_all(f), 1); /* queued items still go out */
    qfx_free(f);
}

static void direct_write_path_reserves_then_completes_or_queues_the_remainder(void **state)
{
    (void)state;
    qfx *f = qfx_new(4, 100);
    /* Fully written at once: completes inside push_reserved, counted. */
    assert_int_equal(bh_queue_claim(&f->q, 30), BH_OK);
    bh_bytes b = qfx_slice(f, 30);
    assert_int_equal(bh_queue_push_claimed(&f->q, &b, NULL, NULL, 30), 1);
    assert_null(b.ptr);
    /* Partly written: the remainder is queued at the exact offset. */
    assert_int_equal(bh_queue_claim(&f->q, 50), BH_OK);
    b = qfx_slice(f, 50);
    assert_int_equal(bh_queue_push_claimed(&f->q, &b, NULL, NULL, 20), 0);
    struct bh_queue_stats s = qfx_stats(f);
    assert_int_equal(s.queued_bytes, 30);
    assert_int_equal(s.written_bytes, 50);
    bh_queue_batch bt;
    assert_int_equal(bh_queue_batch_next(&f->q, 4, &bt), 1);
    assert_int_equal(bt.iov[0].iov_len, 30);
    assert_memory_equal(bt.iov[0].iov_base, f->pattern + 50, 30);
    bh_queue_batch_abort(&f->q);
    /* Taken back: the budget returns and the slice comes back whole. */
    bh_bytes back;
    assert_int_equal(bh_queue_take_back(&f->q, &back), 20);
    assert_int_equal(back.len, 50);
    bh_bytes_release(&back);
    /* An unused reservation returns its budget. */
    assert_int_equal(bh_queue_claim(&f->q, 100), BH_OK);
    assert_int_equal(bh_queue_claim(&f->q, 1), BH_EFULL);
    bh_queue_unclaim(&f->q, 100);
    qfx_expect_queued(f, 0, 0);
    qfx_free(f);
}

static int g_hook_calls;

static void counting_hook(bh_queue *q, bh_queue_cb cb, void *ctx, int status)
{
    g_hook_calls++;
    cb(q, status, ctx);
}

static void complete_hook_runs_every_ticket_instead_of_the_direct_call(void **state)
{
    (void)state;
    bh_queue q;
    bh_queue_config cfg = {8, 100};
    assert_int_equal(bh_queue_init(&q, &cfg, counting_hook), BH_OK);
    qt_ticket t = {0, 0, 0};
    bh_bytes b = bh_bytes_static("abc", 3), e = {0};
    assert_int_equal(bh_queue_push(&q, &b, qt_ticket_cb, &t), BH_OK);
    assert_int_equal(bh_queue_push(&q, &e, NULL, NULL), BH_OK); /* fire-and-forget: no hook */
    g_hook_calls = 0;
    bh_queue_batch bt;
    assert_int_equal(bh_queue_batch_next(&q, 8, &bt), 1);
    bh_queue_batch_done(&q, 3);
    assert_int_equal(g_hook_calls, 1);
    assert_int_equal(t.calls, 1);
    bh_queue_close(&q);
}

TEST_MAIN(test_alloc_checked(init_rejects_bad_arguments_and_allocates_nothing),
          test_alloc_checked(budgets_accept_exactly_max_items_and_max_bytes_and_refuse_the_next),
          test_alloc_checked(refused_slice_stays_with_the_caller_with_its_refcount),
          test_alloc_checked(tickets_complete_once_in_order_and_never_inside_push),
          test_alloc_checked(batch_covers_the_queued_slices_exactly_and_pins_them),
          test_alloc_checked(batch_respects_max_iov_and_resumes_with_the_next_item),
          test_alloc_checked(partial_writes_resume_at_the_exact_byte_offset),
          test_alloc_checked(first_push_allocates_a_small_ring_not_max_items),
          test_alloc_checked(ring_grows_up_to_max_items_and_not_beyond),
          test_alloc_checked(ring_grows_while_wrapped_and_keeps_order),
          test_alloc_checked(slices_above_1_gib_span_several_iovecs_and_batches_stop_at_1_gib),
          test_alloc_checked(drain_signal_comes_once_at_low_water_after_a_refusal),
          test_alloc_checked(queue_above_the_mark_signals_drain_without_a_refusal),
          test_alloc_checked(fail_completes_every_unpinned_ticket_once_and_refuses_later_items),
          test_alloc_checked(close_inside_a_ticket_callback_cancels_the_rest_once),
          test_alloc_checked(abandon_completes_the_batch_tickets_now_and_keeps_slices_until_its_end),
          test_alloc_checked(seal_runs_the_empty_action_only_when_empty_and_a_failure_changes_nothing),
          test_alloc_checked(direct_write_path_reserves_then_completes_or_queues_the_remainder),
          test_alloc_checked(complete_hook_runs_every_ticket_instead_of_the_direct_call))
