/* test_queue_mt.c - bh_queue's cross-thread inbox with real threads and its
 * wake hook, and an allocation-failure sweep over the whole core: the Nth
 * allocation fails for every N a scenario makes, and each run must leave the
 * queue valid, complete every accepted ticket exactly once, leave every
 * refused slice with the caller and free everything. No event loop: the
 * owner thread waits on a condition variable the wake hook signals. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <bytes_handoff.h>
#include <bytes_handoff/queue.h>

#include "test_alloc.h"
#include "test_main.h"
#include "test_queue_support.h"

enum { PRODUCERS = 4, PER_PRODUCER = 20000, WAIT_MS = 200 };

/* Slices are static views of records[p][seq] = p << 24 | seq. */
static uint32_t records[PRODUCERS][PER_PRODUCER];

typedef struct owner {
    bh_queue q;
    pthread_mutex_t m;
    pthread_cond_t cond;
    int woken;              /* set by the wake hook */
    uint64_t drain_gen;     /* bumped on every drain signal */
    uint32_t next[PRODUCERS];
    size_t received, order_errors;
    pthread_t owner_thread;
    int tickets_ok, tickets_bad, wrong_thread; /* owner thread only */
    int wakes;
} owner;

typedef struct producer {
    owner *o;
    unsigned id;
    pthread_t thread;
    size_t refusals, other_errors, tickets;
} producer;

static void timed_wait(pthread_cond_t *c, pthread_mutex_t *m)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)WAIT_MS * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(c, m, &ts);
}

/* The wake hook: runs on a producer thread under the inbox lock. */
static void wake(void *ctx)
{
    owner *o = ctx;
    pthread_mutex_lock(&o->m);
    o->woken = 1;
    o->wakes++;
    pthread_cond_broadcast(&o->cond);
    pthread_mutex_unlock(&o->m);
}

static void ticket_cb(bh_queue *q, int status, void *ctx)
{
    owner *o = ctx;
    (void)q;
    if (!pthread_equal(pthread_self(), o->owner_thread))
        o->wrong_thread++;
    if (status == 0)
        o->tickets_ok++;
    else
        o->tickets_bad++;
}

static void *producer_main(void *arg)
{
    producer *p = arg;
    owner *o = p->o;
    for (uint32_t seq = 0; seq < PER_PRODUCER; seq++) {
        int ticket = seq % 10 == 0;
        for (;;) {
            pthread_mutex_lock(&o->m);
            uint64_t gen = o->drain_gen;
            pthread_mutex_unlock(&o->m);
            bh_bytes b = bh_bytes_static(&records[p->id][seq], sizeof records[0][0]);
            int rc = bh_queue_submit(&o->q, &b, ticket ? ticket_cb : NULL, o);
            if (rc == BH_OK) {
                p->tickets += ticket;
                break;
            }
            if (rc != BH_EFULL) {
                p->other_errors++;
                break;
            }
            p->refusals++;
            /* Await capacity; the timeout only guards against hanging. */
            pthread_mutex_lock(&o->m);
            if (o->drain_gen == gen)
                timed_wait(&o->cond, &o->m);
            pthread_mutex_unlock(&o->m);
        }
    }
    return NULL;
}

/* The owner's "write": check each record's producer order. */
static void consume(owner *o)
{
    bh_queue_batch b;
    while (bh_queue_batch_next(&o->q, SIZE_MAX, &b)) {
        for (size_t i = 0; i < b.n_iov; i++) {
            uint32_t r;
            memcpy(&r, b.iov[i].iov_base, sizeof r);
            unsigned id = r >> 24;
            if (id >= PRODUCERS || (r & 0xFFFFFF) != o->next[id])
                o->order_errors++;
            else
                o->next[id]++;
            o->received++;
        }
        bh_queue_batch_done(&o->q, b.bytes);
    }
    if (bh_queue_take_drain(&o->q)) {
        pthread_mutex_lock(&o->m);
        o->drain_gen++;
        pthread_cond_broadcast(&o->cond);
        pthread_mutex_unlock(&o->m);
    }
}

static void four_threads_submit_80k_slices_through_small_budgets_in_order(void **state)
{
    (void)state;
    for (unsigned p = 0; p < PRODUCERS; p++)
        for (uint32_t s = 0; s < PER_PRODUCER; s++)
            records[p][s] = p << 24 | s;
    owner *o = calloc(1, sizeof *o);
    assert_non_null(o);
    bh_queue_config cfg = {64, 64 * 4};
    assert_int_equal(bh_queue_init(&o->q, &cfg, NULL), BH_OK);
    assert_int_equal(pthread_mutex_init(&o->m, NULL), 0);
    assert_int_equal(pthread_cond_init(&o->cond, NULL), 0);
    o->owner_thread = pthread_self();
    assert_int_equal(bh_queue_enable_mt(&o->q, wake, o), BH_OK);
    assert_int_equal(bh_queue_enable_mt(&o->q, wake, o), BH_OK); /* idempotent */
    bh_queue_set_low_water(&o->q, 32 * 4);
    producer p[PRODUCERS] = {0};
    for (unsigned i = 0; i < PRODUCERS; i++) {
        p[i].o = o;
        p[i].id = i;
        assert_int_equal(pthread_create(&p[i].thread, NULL, producer_main, &p[i]), 0);
    }
    /* Bounded: each wait is at most WAIT_MS, progress is checked by count. */
    size_t stalls = 0;
    while (o->received < (size_t)PRODUCERS * PER_PRODUCER && stalls < 300) {
        pthread_mutex_lock(&o->m);
        if (!o->woken)
            timed_wait(&o->cond, &o->m);
        int woken = o->woken;
        o->woken = 0;
        pthread_mutex_unlock(&o->m);
        size_t before = o->received;
        bh_queue_take_inbox(&o->q);
        consume(o);
        stalls = o->received == before && !woken ? stalls + 1 : 0;
    }
    for (unsigned i = 0; i < PRODUCERS; i++)
        assert_int_equal(pthread_join(p[i].thread, NULL), 0);
    bh_queue_take_inbox(&o->q);
    consume(o);
    assert_int_equal(o->received, (size_t)PRODUCERS * PER_PRODUCER);
    assert_int_equal(o->order_errors, 0);
    size_t tickets = 0, refusals = 0;
    for (unsigned i = 0; i < PRODUCERS; i++) {
        assert_int_equal(o->next[i], PER_PRODUCER);
        assert_int_equal(p[i].other_errors, 0);
        tickets += p[i].tickets;
        refusals += p[i].refusals;
    }
    assert_int_equal(o->tickets_ok, (int)tickets);
    assert_int_equal(o->tickets_bad, 0);
    assert_int_equal(o->wrong_thread, 0);
    assert_true(o->wakes >= 1);
    struct bh_queue_stats s;
    bh_queue_stats(&o->q, &s);
    assert_int_equal(s.queued_items, 0);
    assert_int_equal(s.written_items, (uint64_t)PRODUCERS * PER_PRODUCER);
    assert_int_equal(s.refused, refusals);
    print_message("refusals %zu wakes %d\n", refusals, o->wakes);
    bh_queue_inbox_free(bh_queue_close(&o->q));
    pthread_cond_destroy(&o->cond);
    pthread_mutex_destroy(&o->m);
    free(o);
}

static int g_wakes;
static void count_wake(void *ctx)
{
    (void)ctx;
    g_wakes++;
}

static void wake_hook_runs_once_per_empty_inbox_and_close_cancels_inbox_items(void **state)
{
    (void)state;
    qfx *f = qfx_new(8, 100);
    assert_int_equal(bh_queue_submit(&f->q, &(bh_bytes){0}, NULL, NULL), BH_EINVAL); /* not enabled */
    assert_int_equal(bh_queue_enable_mt(&f->q, NULL, NULL), BH_EINVAL);
    assert_int_equal(bh_queue_enable_mt(&f->q, count_wake, NULL), BH_OK);
    g_wakes = 0;
    qt_ticket t[3] = {0};
    bh_bytes b[3];
    for (int i = 0; i < 3; i++) {
        b[i] = bh_bytes_static(f->pattern, 30);
        assert_int_equal(bh_queue_submit(&f->q, &b[i], qt_ticket_cb, &t[i]), BH_OK);
    }
    assert_int_equal(g_wakes, 1); /* only the first item wakes the owner */
    bh_bytes more = bh_bytes_static(f->pattern, 11);
    assert_int_equal(bh_queue_submit(&f->q, &more, NULL, NULL), BH_EFULL); /* 101 bytes */
    assert_false(bh_queue_empty(&f->q)); /* the inbox counts */
    assert_true(bh_queue_ring_empty(&f->q));   /* the ring does not */
    struct bh_queue_inbox *ib = bh_queue_close(&f->q);
    assert_non_null(ib);
    test_tickets_expect_in_order(t, 3, BH_ECANCELED);
    /* Producers racing the close are refused until the inbox is freed. */
    assert_int_equal(bh_queue_submit(&f->q, &more, NULL, NULL), BH_ECLOSED);
    struct bh_queue_stats s;
    bh_queue_stats(&f->q, &s);
    assert_int_equal(s.refused, 1); /* counted before the close; racing ones are not */
    bh_queue_inbox_free(ib);
    qfx_free(f);
}

/* ---- allocation failure at every index ----------------------------------- */

typedef struct sweep {
    qt_ticket t[64];
    int accepted[64];
    int n;
} sweep;

static void sweep_offer(bh_queue *q, sweep *s, const uint8_t *p, size_t len, int mt)
{
    int i = s->n++;
    bh_bytes b = bh_bytes_static(p, len);
    int rc = mt ? bh_queue_submit(q, &b, qt_ticket_cb, &s->t[i])
                : bh_queue_push(q, &b, qt_ticket_cb, &s->t[i]);
    assert_true(rc == BH_OK || rc == BH_ENOMEM || rc == BH_ECLOSED);
    s->accepted[i] = rc == BH_OK;
    if (rc != BH_OK)
        assert_ptr_equal(b.ptr, p); /* refused: still the caller's */
}

/* Every allocation the core makes: ring growth, batch array growth, the
 * inbox, inbox growth, taking the inbox into the ring (ring growth again). */
static size_t sweep_run(size_t fail_at)
{
    static uint8_t data[4096];
    sweep s = {0};
    test_alloc_install(fail_at);
    bh_queue q;
    bh_queue_config cfg = {40, 4096};
    assert_int_equal(bh_queue_init(&q, &cfg, NULL), BH_OK);
    for (int i = 0; i < 20; i++)
        sweep_offer(&q, &s, data, 10 + (size_t)i, 0);
    bh_queue_batch b;
    if (bh_queue_batch_next(&q, SIZE_MAX, &b))
        bh_queue_batch_done(&q, b.bytes / 2);
    int mt = bh_queue_enable_mt(&q, count_wake, NULL) == BH_OK;
    for (int i = 0; i < 12; i++)
        sweep_offer(&q, &s, data, 7, mt);
    bh_queue_take_inbox(&q);
    while (bh_queue_batch_next(&q, SIZE_MAX, &b))
        bh_queue_batch_done(&q, b.bytes);
    for (int i = 0; i < 6; i++)
        sweep_offer(&q, &s, data, 5, 0);
    bh_queue_inbox_free(bh_queue_close(&q));
    for (int i = 0; i < s.n; i++) {
        assert_int_equal(s.t[i].calls, s.accepted[i]);
        if (s.accepted[i])
            assert_true(s.t[i].status == 0 || s.t[i].status == BH_ECANCELED ||
                        s.t[i].status == BH_ENOMEM);
    }
    test_alloc_stats st;
    test_alloc_stats_get(&st);
    test_alloc_finish();
    return st.failed;
}

static void allocation_failure_at_every_index_keeps_the_queue_valid_and_frees_all(void **state)
{
    (void)state;
    size_t n = 1;
    while (sweep_run(n) > 0)
        n++;
    assert_true(n > 5); /* the scenario allocates: the sweep covered something */
    print_message("allocation points swept: %zu\n", n - 1);
}

TEST_MAIN(test_alloc_checked(four_threads_submit_80k_slices_through_small_budgets_in_order),
          test_alloc_checked(wake_hook_runs_once_per_empty_inbox_and_close_cancels_inbox_items),
          test_alloc_checked(allocation_failure_at_every_index_keeps_the_queue_valid_and_frees_all))
