/* test_writeq_mt.c - cross-thread submission (bh_writeq_enable_mt,
 * bh_writeq_submit_mt) on a real loop: four producer threads push 100k
 * framed slices through small budgets to a loopback TCP receiver that checks
 * every frame; budgets count inbox items exactly; close, shutdown, failures
 * and allocation failures with items still in the inbox. Runs under TSan. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_alloc.h"
#include "test_main.h"
#include "test_uv.h"
#include "test_writeq_support.h"

#define RUN_MS 60000

/* ---- framed stream: [producer u8][seq u32 LE][len u16 LE][payload] ---------- */

enum { PRODUCERS = 4, FRAMES_PER_PRODUCER = 25000, HDR = 7 };

static uint8_t payload_byte(unsigned id, uint32_t seq, size_t k)
{
    return (uint8_t)(id * 31u + seq * 7u + (uint32_t)k * 13u);
}

static size_t payload_len(unsigned id, uint32_t seq)
{
    return 1 + (seq * 2654435761u + id * 97u) % 200;
}

typedef struct frame_checker {
    uint32_t next_seq[PRODUCERS];
    size_t frames;
    size_t errors;
    uint8_t hdr[HDR];
    size_t hdr_have;
    unsigned id;
    uint32_t seq;
    size_t len, have;
} frame_checker;

static void check_bytes(wq_sink *k, const uint8_t *p, size_t n)
{
    frame_checker *c = k->ctx;
    size_t i = 0;
    while (i < n) {
        if (c->hdr_have < HDR) {
            c->hdr[c->hdr_have++] = p[i++];
            if (c->hdr_have == HDR) {
                c->id = c->hdr[0];
                c->seq = (uint32_t)c->hdr[1] | (uint32_t)c->hdr[2] << 8 |
                         (uint32_t)c->hdr[3] << 16 | (uint32_t)c->hdr[4] << 24;
                c->len = (size_t)c->hdr[5] | (size_t)c->hdr[6] << 8;
                c->have = 0;
                if (c->id >= PRODUCERS || c->seq != c->next_seq[c->id] ||
                    c->len != payload_len(c->id, c->seq)) {
                    c->errors++;
                    c->id = 0;
                } else {
                    c->next_seq[c->id]++;
                }
            }
            continue;
        }
        if (p[i] != payload_byte(c->id, c->seq, c->have))
            c->errors++;
        i++;
        if (++c->have == c->len) {
            c->hdr_have = 0;
            c->frames++;
        }
    }
}

static bh_bytes make_frame(unsigned id, uint32_t seq)
{
    size_t len = payload_len(id, seq);
    uint8_t buf[HDR + 256];
    buf[0] = (uint8_t)id;
    buf[1] = (uint8_t)seq;
    buf[2] = (uint8_t)(seq >> 8);
    buf[3] = (uint8_t)(seq >> 16);
    buf[4] = (uint8_t)(seq >> 24);
    buf[5] = (uint8_t)len;
    buf[6] = (uint8_t)(len >> 8);
    for (size_t k = 0; k < len; k++)
        buf[HDR + k] = payload_byte(id, seq, k);
    bh_bytes b;
    if (bh_bytes_copy(&b, buf, HDR + len) != BH_OK)
        abort();
    return b;
}

/* ---- producers ------------------------------------------------------------ */

typedef struct shared {
    bh_writeq *q;
    uv_mutex_t m;
    uv_cond_t cond;
    uint64_t drain_gen;
    uv_thread_t loop_thread;
    int tickets_ok[PRODUCERS];   /* loop thread only */
    int tickets_bad[PRODUCERS];  /* loop thread only */
    int wrong_thread;            /* loop thread only */
    int drains;                  /* loop thread only */
} shared;

typedef struct producer {
    shared *sh;
    unsigned id;
    uv_thread_t thread;
    size_t refusals;
    size_t other_errors;
    size_t tickets;
    size_t ownership_errors;
} producer;

typedef struct ticket_ctx {
    shared *sh;
    unsigned id;
} ticket_ctx;

static ticket_ctx g_tctx[PRODUCERS];

static void producer_ticket_cb(bh_writeq *q, int status, void *ctx)
{
    (void)q;
    ticket_ctx *t = ctx;
    uv_thread_t self = uv_thread_self();
    if (!uv_thread_equal(&self, &t->sh->loop_thread))
        t->sh->wrong_thread++;
    if (status == 0)
        t->sh->tickets_ok[t->id]++;
    else
        t->sh->tickets_bad[t->id]++;
}

static void on_drain(bh_writeq *q, void *ctx)
{
    (void)q;
    shared *sh = ctx;
    sh->drains++;
    uv_mutex_lock(&sh->m);
    sh->drain_gen++;
    uv_cond_broadcast(&sh->cond);
    uv_mutex_unlock(&sh->m);
}

static void producer_main(void *arg)
{
    producer *p = arg;
    shared *sh = p->sh;
    for (uint32_t seq = 0; seq < FRAMES_PER_PRODUCER; seq++) {
        bh_bytes b = make_frame(p->id, seq);
        const uint8_t *ptr = b.ptr;
        int ticket = seq % 10 == 0;
        for (;;) {
            uv_mutex_lock(&sh->m);
            uint64_t gen = sh->drain_gen;
            uv_mutex_unlock(&sh->m);
            int rc = ticket ? bh_writeq_submit_mt(sh->q, &b, producer_ticket_cb, &g_tctx[p->id])
                            : bh_writeq_submit_mt(sh->q, &b, NULL, NULL);
            if (rc == BH_OK) {
                if (b.ptr != NULL || b.len != 0)
                    p->ownership_errors++;
                if (ticket)
                    p->tickets++;
                break;
            }
            if (b.ptr != ptr)
                p->ownership_errors++;
            if (rc != BH_EFULL) {
                p->other_errors++;
                bh_bytes_release(&b);
                break;
            }
            p->refusals++;
            /* Await capacity: the loop's drain callback bumps the generation.
             * The timeout only guards the test against hanging. */
            uv_mutex_lock(&sh->m);
            while (sh->drain_gen == gen)
                if (uv_cond_timedwait(&sh->cond, &sh->m, 200u * 1000 * 1000) != 0)
                    break;
            uv_mutex_unlock(&sh->m);
        }
    }
}

/* The shared fixture plus the frame checker fed by its sink. */
typedef struct mt_fx {
    wq_fx *fx;
    frame_checker chk;
} mt_fx;

static int all_frames_in(void *arg)
{
    mt_fx *m = arg;
    return m->chk.frames == (size_t)PRODUCERS * FRAMES_PER_PRODUCER || m->chk.errors > 0 ||
           m->fx->sink.error || m->fx->sink.eof;
}

static void four_producers_submit_100k_slices_and_receiver_verifies_every_frame(void **state)
{
    (void)state;
    mt_fx m = {0};
    wq_fx *f = m.fx = wq_fx_new(WQ_TCP, 256, 64 * 1024, 0);
    wq_fx_sockbuf(f, 32 * 1024, 0);
    assert_int_equal(bh_writeq_enable_mt(&f->q), BH_OK);
    assert_int_equal(bh_writeq_enable_mt(&f->q), BH_OK); /* idempotent */
    f->sink.hook = check_bytes;
    f->sink.ctx = &m.chk;
    wq_sink_start(&f->sink);

    shared *sh = calloc(1, sizeof *sh);
    assert_non_null(sh);
    sh->q = &f->q;
    sh->loop_thread = uv_thread_self();
    assert_int_equal(uv_mutex_init(&sh->m), 0);
    assert_int_equal(uv_cond_init(&sh->cond), 0);
    bh_writeq_set_drain_cb(&f->q, 16 * 1024, on_drain, sh);
    producer p[PRODUCERS] = {0};
    for (unsigned i = 0; i < PRODUCERS; i++) {
        g_tctx[i].sh = sh;
        g_tctx[i].id = i;
        p[i].sh = sh;
        p[i].id = i;
        assert_int_equal(uv_thread_create(&p[i].thread, producer_main, &p[i]), 0);
    }
    assert_int_equal(wq_run_until(&f->loop, all_frames_in, &m, RUN_MS), 0);
    for (unsigned i = 0; i < PRODUCERS; i++)
        assert_int_equal(uv_thread_join(&p[i].thread), 0);
    wq_run_nowait(&f->loop, 3);

    assert_int_equal(m.chk.errors, 0);
    assert_int_equal(f->sink.error, 0);
    assert_int_equal(m.chk.frames, (size_t)PRODUCERS * FRAMES_PER_PRODUCER);
    size_t refusals = 0;
    for (unsigned i = 0; i < PRODUCERS; i++) {
        assert_int_equal(m.chk.next_seq[i], FRAMES_PER_PRODUCER);
        assert_int_equal(p[i].other_errors, 0);
        assert_int_equal(p[i].ownership_errors, 0);
        assert_int_equal(sh->tickets_ok[i], (int)p[i].tickets);
        assert_int_equal(sh->tickets_bad[i], 0);
        refusals += p[i].refusals;
    }
    assert_int_equal(sh->wrong_thread, 0);
    struct bh_writeq_stats s = wq_expect_queued(&f->q, 0, 0);
    assert_int_equal(s.written_items, (uint64_t)PRODUCERS * FRAMES_PER_PRODUCER);
    assert_int_equal(s.refused, refusals);
    print_message("frames %zu refusals %zu drains %d batches %llu\n", m.chk.frames, refusals,
                  sh->drains, (unsigned long long)s.batches);

    wq_fx_free(f);
    uv_cond_destroy(&sh->cond);
    uv_mutex_destroy(&sh->m);
    free(sh);
}

/* ---- single-thread checks of the cross-thread path ------------------------- */

static wq_fx *pfx_new(size_t max_items, size_t max_bytes, int enable)
{
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, max_items, max_bytes, 1u << 20);
    if (enable)
        assert_int_equal(bh_writeq_enable_mt(&f->q), BH_OK);
    return f;
}

static void submit_without_enable_mt_is_einval_and_caller_keeps_slice(void **state)
{
    (void)state;
    wq_fx *f = pfx_new(8, 1024, 0);
    assert_int_equal(wq_fx_submit(f, 10, NULL), BH_EINVAL);
    assert_int_equal(bh_writeq_submit_mt(&f->q, NULL, NULL, NULL), BH_EINVAL);
    assert_int_equal(bh_writeq_submit_mt(NULL, NULL, NULL, NULL), BH_EINVAL);
    assert_int_equal(bh_writeq_enable_mt(NULL), BH_EINVAL);
    wq_fx_free(f);
}

static void budgets_count_inbox_items_exactly_at_the_boundary(void **state)
{
    (void)state;
    wq_fx *f = pfx_new(3, 100, 1);
    /* Nothing runs the loop: submitted items wait in the inbox. */
    assert_int_equal(wq_fx_submit(f, 40, NULL), BH_OK);
    assert_int_equal(wq_fx_submit(f, 59, NULL), BH_OK);
    assert_int_equal(wq_fx_submit(f, 2, NULL), BH_EFULL);   /* 101 bytes */
    assert_int_equal(wq_fx_submit(f, 101, NULL), BH_ETOOLONG);
    struct bh_writeq_stats s = wq_expect_queued(&f->q, 2, 99);
    /* The loop thread's own writes share the same budget (a ticket stays
     * counted until its write callback). */
    wq_ticket t = {0};
    bh_bytes b = wq_pattern_slice(f->pattern, f->off, 2);
    assert_int_equal(bh_writeq_try_write(&f->q, &b, wq_ticket_cb, &t), BH_EFULL);
    bh_bytes_release(&b);
    b = wq_pattern_slice(f->pattern, f->off, 1);
    assert_int_equal(bh_writeq_try_write(&f->q, &b, wq_ticket_cb, &t), BH_OK); /* 100 */
    f->off += 1;
    assert_int_equal(wq_fx_submit(f, 0, NULL), BH_EFULL); /* 4th item */
    s = wq_expect_queued(&f->q, 3, 100);
    assert_int_equal(s.refused, 4);
    wq_fx_free(f);
    assert_int_equal(t.calls, 1);
}

/* An mt-enabled queue under the counting allocator (installed here), with n
 * 100-byte items submitted from the loop thread, item i with ticket t[i]. */
static wq_fx *pfx_with_tickets(wq_ticket *t, int n)
{
    test_alloc_install(0);
    wq_fx *f = pfx_new(64, 1u << 20, 1);
    memset(t, 0, (size_t)n * sizeof *t);
    for (int i = 0; i < n; i++)
        assert_int_equal(wq_fx_submit(f, 100, &t[i]), BH_OK);
    return f;
}

static void close_with_items_in_inbox_cancels_each_ticket_once_and_frees_everything(void **state)
{
    (void)state;
    wq_ticket t[10];
    wq_fx *f = pfx_with_tickets(t, 10);
    assert_int_equal(wq_fx_submit(f, 100, NULL), BH_OK);
    bh_writeq_close(&f->q);
    test_tickets_expect_in_order(t, 10, BH_ECANCELED);
    /* Until the loop runs the close callbacks, producers get BH_ECLOSED. */
    assert_int_equal(wq_fx_submit(f, 10, NULL), BH_ECLOSED);
    assert_int_equal(bh_writeq_enable_mt(&f->q), BH_ECLOSED);
    wq_expect_queued(&f->q, 0, 0);
    wq_fx_free(f);
    test_alloc_finish();
}

static void shutdown_flushes_inbox_items_before_eof_and_refuses_later_submits(void **state)
{
    (void)state;
    wq_fx *f = pfx_new(64, 1u << 20, 1);
    wq_ticket t = {0};
    for (int i = 0; i < 20; i++)
        assert_int_equal(wq_fx_submit(f, 500, i == 19 ? &t : NULL), BH_OK);
    wq_shut_rec sr = {0, 0, 0};
    assert_int_equal(bh_writeq_shutdown(&f->q, wq_shut_cb, &sr), BH_OK);
    assert_int_equal(wq_fx_submit(f, 10, NULL), BH_ECLOSED);
    wq_fx_run_until_eof(f, &sr, RUN_MS);
    assert_int_equal(f->sink.received, 20 * 500);
    assert_int_equal(t.calls, 1);
    assert_int_equal(t.status, 0);
    wq_fx_free(f);
}

static int ticket_called(void *arg)
{
    return ((wq_ticket *)arg)->calls > 0;
}

static void ring_growth_failure_taking_inbox_items_fails_the_queue_once(void **state)
{
    (void)state;
    wq_ticket t[3];
    wq_fx *f = pfx_with_tickets(t, 3);
    test_alloc_fail_all(1); /* the ring cannot be allocated on the loop */
    assert_int_equal(wq_run_until(&f->loop, ticket_called, &t[2], RUN_MS), 0);
    test_alloc_fail_all(0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(t[i].calls, 1);
        assert_int_equal(t[i].status, BH_ENOMEM);
    }
    assert_int_equal(wq_fx_submit(f, 10, NULL), BH_ECLOSED);
    bh_bytes b = wq_pattern_slice(f->pattern, 0, 10);
    assert_int_equal(bh_writeq_try_write_ff(&f->q, &b), BH_ECLOSED);
    bh_bytes_release(&b);
    wq_expect_queued(&f->q, 0, 0);
    wq_fx_free(f);
    test_alloc_finish();
}

static void enable_mt_allocation_failure_leaves_queue_usable(void **state)
{
    (void)state;
    test_alloc_install(0);
    wq_fx *f = pfx_new(8, 1024, 0);
    test_alloc_fail_after(0);
    assert_int_equal(bh_writeq_enable_mt(&f->q), BH_ENOMEM);
    assert_int_equal(wq_fx_submit(f, 10, NULL), BH_EINVAL);
    assert_int_equal(bh_writeq_enable_mt(&f->q), BH_OK);
    assert_int_equal(wq_fx_submit(f, 10, NULL), BH_OK);
    wq_sink_start(&f->sink);
    assert_int_equal(wq_run_until(&f->loop, wq_fx_received_all, f, RUN_MS), 0);
    assert_int_equal(f->sink.mismatches, 0);
    wq_fx_free(f);
    test_alloc_finish();
}

static void inbox_growth_failure_refuses_submit_with_enomem_and_caller_keeps_slice(void **state)
{
    (void)state;
    wq_fx *f = pfx_new(64, 1u << 20, 1);
    bh_bytes b = bh_bytes_static(f->pattern, 10);
    test_alloc_fail_after(0);
    assert_int_equal(bh_writeq_submit_mt(&f->q, &b, NULL, NULL), BH_ENOMEM);
    assert_non_null(b.ptr);
    struct bh_writeq_stats s = wq_expect_queued(&f->q, 0, 0);
    assert_int_equal(s.refused, 1);
    assert_int_equal(bh_writeq_submit_mt(&f->q, &b, NULL, NULL), BH_OK);
    f->off = 10;
    wq_sink_start(&f->sink);
    assert_int_equal(wq_run_until(&f->loop, wq_fx_received_all, f, RUN_MS), 0);
    wq_fx_free(f);
}

static void write_error_fails_ring_and_inbox_items_once(void **state)
{
    (void)state;
    enum { N = 12 };
    wq_fx *f = pfx_new(N, 4u << 20, 1);
    wq_fx_sockbuf(f, 4096, 4096);
    wq_ticket t[N] = {0};
    bh_bytes big = wq_pattern_slice(f->pattern, 0, 512 * 1024);
    assert_int_equal(bh_writeq_try_write(&f->q, &big, wq_ticket_cb, &t[0]), BH_OK);
    for (int i = 1; i < N; i++)
        assert_int_equal(wq_fx_submit(f, 1000, &t[i]), BH_OK);
    uv_close((uv_handle_t *)f->r, NULL);
    wq_ticket_set c = {t, N};
    assert_int_equal(wq_run_until(&f->loop, wq_tickets_all_called, &c, RUN_MS), 0);
    wq_run_nowait(&f->loop, 3);
    int err = t[0].status;
    assert_true(err == UV_EPIPE || err == UV_ECONNRESET);
    for (int i = 0; i < N; i++) {
        assert_int_equal(t[i].calls, 1);
        assert_int_equal(t[i].status, err);
    }
    assert_int_equal(wq_fx_submit(f, 10, NULL), BH_ECLOSED);
    wq_fx_free(f);
}

TEST_MAIN(test_alloc_checked(four_producers_submit_100k_slices_and_receiver_verifies_every_frame),
          test_alloc_checked(submit_without_enable_mt_is_einval_and_caller_keeps_slice),
          test_alloc_checked(budgets_count_inbox_items_exactly_at_the_boundary),
          test_alloc_checked(close_with_items_in_inbox_cancels_each_ticket_once_and_frees_everything),
          test_alloc_checked(shutdown_flushes_inbox_items_before_eof_and_refuses_later_submits),
          test_alloc_checked(ring_growth_failure_taking_inbox_items_fails_the_queue_once),
          test_alloc_checked(enable_mt_allocation_failure_leaves_queue_usable),
          test_alloc_checked(inbox_growth_failure_refuses_submit_with_enomem_and_caller_keeps_slice),
          test_alloc_checked(write_error_fails_ring_and_inbox_items_once))
