/* test_writeq_close.c - how a bh_writeq ends, on real sockets and a real
 * libuv loop: shutdown flushes then sends EOF; close cancels every pending
 * ticket exactly once (queued, in flight, from inside a callback, with 1000
 * pending over TCP); a peer that closes fails the pending tickets once and
 * later writes get BH_ECLOSED. */
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

/* ---- shutdown -------------------------------------------------------------- */

static void shutdown_flushes_everything_then_peer_sees_all_bytes_and_eof(void **state)
{
    (void)state;
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, 256, 1u << 20, 256 * 1024);
    wq_ticket t[10] = {0};
    for (int i = 0; i < 200; i++) {
        if (i % 20 == 0)
            assert_int_equal(wq_fx_ticket(f, 500, &t[i / 20]), BH_OK);
        else
            assert_int_equal(wq_fx_ff(f, 300 + (size_t)i), BH_OK);
    }
    wq_shut_rec sr = {0, 0, 0};
    assert_int_equal(bh_writeq_shutdown(&f->q, wq_shut_cb, &sr), BH_OK);
    assert_int_equal(sr.calls, 0);
    assert_int_equal(wq_fx_ff(f, 1), BH_ECLOSED);
    assert_int_equal(bh_writeq_shutdown(&f->q, wq_shut_cb, &sr), BH_ECLOSED);
    wq_fx_run_until_eof(f, &sr, RUN_MS);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(t[i].calls, 1);
        assert_int_equal(t[i].status, 0);
        assert_true(t[i].order < sr.order);
    }
    wq_fx_free(f);
    assert_int_equal(sr.calls, 1);
}

static void shutdown_of_idle_queue_sends_eof_and_completes_once(void **state)
{
    (void)state;
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, 8, 1024, 4096);
    wq_shut_rec sr = {0, 0, 0};
    assert_int_equal(bh_writeq_shutdown(&f->q, wq_shut_cb, &sr), BH_OK);
    assert_int_equal(sr.calls, 0);
    wq_fx_run_until_eof(f, &sr, RUN_MS);
    assert_int_equal(f->sink.received, 0);
    wq_fx_free(f);
    assert_int_equal(sr.calls, 1);
}

/* ---- close ----------------------------------------------------------------- */

static void close_cancels_each_queued_ticket_once_and_releases_every_slice(void **state)
{
    (void)state;
    test_alloc_install(0);
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, 64, 1u << 20, 64 * 1024);
    wq_ticket first = {0};
    wq_ticket t[20] = {0};
    assert_int_equal(wq_fx_ticket(f, 10, &first), BH_OK); /* waits for the flush */
    for (int i = 0; i < 20; i++) {
        assert_int_equal(wq_fx_ticket(f, 100, &t[i]), BH_OK);
        assert_int_equal(wq_fx_ff(f, 50), BH_OK);
    }
    bh_writeq_close(&f->q);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(t[i].calls, 1);
        assert_int_equal(t[i].status, BH_ECANCELED);
    }
    assert_int_equal(first.calls, 1); /* nothing was in flight */
    assert_int_equal(first.status, BH_ECANCELED);
    assert_int_equal(wq_fx_ff(f, 1), BH_ECLOSED);
    bh_writeq_close(&f->q); /* idempotent */
    uv_close((uv_handle_t *)f->w, NULL);
    wq_run_nowait(&f->loop, 3);
    assert_int_equal(first.calls, 1);
    for (int i = 0; i < 20; i++)
        assert_int_equal(t[i].calls, 1);
    wq_fx_free(f);
    test_alloc_finish();
}

static void close_cancels_write_in_flight_with_ecanceled_when_stream_closes(void **state)
{
    (void)state;
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, 8, 8u << 20, (4u << 20) + 4096);
    wq_fx_sockbuf(f, 4096, 4096);
    wq_ticket big = {0}, next = {0};
    assert_int_equal(wq_fx_ticket(f, 4u << 20, &big), BH_OK); /* cannot fit the socket */
    wq_run_nowait(&f->loop, 2); /* the flush hands the rest to uv_write */
    assert_int_equal(big.calls, 0);
    assert_int_equal(wq_fx_ticket(f, 10, &next), BH_OK); /* queued behind it */
    bh_writeq_close(&f->q);
    assert_int_equal(next.calls, 1);
    assert_int_equal(next.status, BH_ECANCELED);
    assert_int_equal(big.calls, 0);
    uv_close((uv_handle_t *)f->w, NULL);
    wq_run_nowait(&f->loop, 3);
    assert_int_equal(big.calls, 1);
    assert_int_equal(big.status, BH_ECANCELED);
    wq_fx_free(f);
}

typedef struct closer {
    wq_fx *f;
    wq_ticket same_batch[3];
    wq_ticket later[5];
    int calls;
} closer;

/* Runs from the flush: queues five more tickets behind the batch the flush
 * just wrote, then closes. */
static void close_from_callback(bh_writeq *q, int status, void *ctx)
{
    closer *c = ctx;
    assert_int_equal(status, 0);
    c->calls++;
    for (int i = 0; i < 5; i++)
        assert_int_equal(wq_fx_ticket(c->f, 10, &c->later[i]), BH_OK);
    bh_writeq_close(q);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(c->later[i].calls, 1);
        assert_int_equal(c->later[i].status, BH_ECANCELED);
    }
}

/* Tickets written by the same writev as the closing one complete with 0
 * (their bytes are on the wire, like a write in flight); queued ones are
 * cancelled once. */
static void close_inside_ticket_callback_cancels_queued_items_once(void **state)
{
    (void)state;
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, 16, 1u << 20, 4096);
    closer c = {.f = f};
    bh_bytes b = wq_pattern_slice(f->pattern, 0, 10);
    assert_int_equal(bh_writeq_try_write(&f->q, &b, close_from_callback, &c), BH_OK);
    f->off = 10;
    for (int i = 0; i < 3; i++)
        assert_int_equal(wq_fx_ticket(f, 10, &c.same_batch[i]), BH_OK);
    const size_t written = f->off;
    wq_sink_start(&f->sink);
    while (c.calls == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
    wq_run_nowait(&f->loop, 3);
    assert_int_equal(c.calls, 1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(c.same_batch[i].calls, 1);
        assert_int_equal(c.same_batch[i].status, 0);
    }
    for (int i = 0; i < 5; i++)
        assert_int_equal(c.later[i].calls, 1);
    assert_int_equal(f->sink.received, written);
    assert_int_equal(f->sink.mismatches, 0);
    wq_fx_free(f);
}

static void close_with_pending_shutdown_reports_ecanceled_once(void **state)
{
    (void)state;
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, 8, 8u << 20, (4u << 20) + 4096);
    wq_fx_sockbuf(f, 4096, 4096);
    wq_ticket big = {0};
    assert_int_equal(wq_fx_ticket(f, 4u << 20, &big), BH_OK);
    wq_shut_rec sr = {0, 0, 0};
    assert_int_equal(bh_writeq_shutdown(&f->q, wq_shut_cb, &sr), BH_OK);
    wq_run_nowait(&f->loop, 2);
    assert_int_equal(sr.calls, 0);
    bh_writeq_close(&f->q);
    assert_int_equal(sr.calls, 1);
    assert_int_equal(sr.status, BH_ECANCELED);
    uv_close((uv_handle_t *)f->w, NULL);
    wq_run_nowait(&f->loop, 3);
    assert_int_equal(big.calls, 1);
    assert_int_equal(big.status, BH_ECANCELED);
    wq_fx_free(f);
    assert_int_equal(sr.calls, 1);
}

/* ---- write errors ---------------------------------------------------------- */

static void peer_close_fails_every_pending_ticket_once_and_later_writes_get_eclosed(void **state)
{
    (void)state;
    enum { N = 40 };
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, N, 8u << 20, 4u << 20);
    wq_fx_sockbuf(f, 4096, 4096);
    wq_ticket t[N] = {0};
    for (int i = 0; i < N; i++)
        assert_int_equal(wq_fx_ticket(f, 64 * 1024, &t[i]), BH_OK);
    wq_shut_rec sr = {0, 0, 0};
    assert_int_equal(bh_writeq_shutdown(&f->q, wq_shut_cb, &sr), BH_OK);
    uv_close((uv_handle_t *)f->r, NULL); /* peer goes away with data unread */
    wq_ticket_set e = {t, N};
    assert_int_equal(wq_run_until(&f->loop, wq_tickets_all_called, &e, RUN_MS), 0);
    wq_run_nowait(&f->loop, 3);
    int err = test_tickets_expect_failed_tail(t, N);
    assert_true(err == UV_EPIPE || err == UV_ECONNRESET);
    assert_int_equal(sr.calls, 1);
    assert_int_equal(sr.status, err);
    bh_bytes b = wq_pattern_slice(f->pattern, 0, 10);
    assert_int_equal(bh_writeq_try_write_ff(&f->q, &b), BH_ECLOSED);
    assert_int_equal(bh_bytes_refcount(&b), 1);
    bh_bytes_release(&b);
    wq_expect_queued(&f->q, 0, 0);
    wq_fx_free(f);
}

/* The error surfaces in the deferred flush, not in try_write: the slice is
 * accepted, released once when the flush fails the queue, and the ticket
 * queued with it gets the error once. */
static void ff_to_a_dead_peer_is_accepted_then_the_flush_fails_the_queue_once(void **state)
{
    (void)state;
    wq_fx *f = wq_fx_new(WQ_SOCKETPAIR, 8, 1u << 20, 4096);
    uv_close((uv_handle_t *)f->r, NULL);
    wq_run_nowait(&f->loop, 2);
    bh_bytes b = wq_pattern_slice(f->pattern, 0, 100);
    bh_bytes mine = bh_bytes_clone(&b);
    assert_int_equal(bh_writeq_try_write_ff(&f->q, &b), BH_OK);
    assert_null(b.ptr);
    wq_ticket t = {0};
    assert_int_equal(wq_fx_ticket(f, 10, &t), BH_OK);
    assert_int_equal(t.calls, 0);
    wq_run_nowait(&f->loop, 1);
    assert_int_equal(t.calls, 1);
    assert_true(t.status == UV_EPIPE || t.status == UV_ECONNRESET);
    assert_int_equal(bh_bytes_refcount(&mine), 1); /* the queue released its reference */
    assert_int_equal(bh_writeq_try_write_ff(&f->q, &mine), BH_ECLOSED);
    assert_int_equal(bh_bytes_refcount(&mine), 1);
    bh_bytes_release(&mine);
    wq_expect_queued(&f->q, 0, 0);
    wq_run_nowait(&f->loop, 3);
    assert_int_equal(t.calls, 1);
    wq_fx_free(f);
}


/* ---- close with 1000 pending tickets over TCP ----------------------------- */

enum { NTICKETS = 1000 };

typedef struct ticket_log {
    int calls[NTICKETS];
    int status[NTICKETS];
    int order[NTICKETS];
    int ncalls;
} ticket_log;

typedef struct ticket_ref {
    ticket_log *log;
    int i;
} ticket_ref;

static void on_ticket(bh_writeq *q, int status, void *ctx)
{
    ticket_ref *t = ctx;
    (void)q;
    t->log->calls[t->i]++;
    t->log->status[t->i] = status;
    t->log->order[t->log->ncalls++] = t->i;
}

static void enqueue_tickets(bh_writeq *q, ticket_ref *refs, ticket_log *log, int from, int to)
{
    for (int i = from; i < to; i++) {
        uint8_t payload[1024];
        memset(payload, i & 0xff, sizeof payload);
        bh_bytes b;
        assert_int_equal(bh_bytes_copy(&b, payload, sizeof payload), BH_OK);
        refs[i] = (ticket_ref){log, i};
        assert_int_equal(bh_writeq_try_write(q, &b, on_ticket, &refs[i]), BH_OK);
        assert_null(b.ptr);
    }
}

static void close_with_1000_pending_tickets_completes_each_once_with_ecanceled(void **state)
{
    (void)state;
    test_alloc_install(0);
    uv_loop_t loop;
    uv_tcp_t w, r;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(test_uv_tcp_pair(&loop, &w, &r), 0);
    uv_os_fd_t fd;
    assert_int_equal(uv_fileno((uv_handle_t *)&w, &fd), 0);
    test_set_sockbuf(fd, 16 * 1024, 0);
    assert_int_equal(uv_fileno((uv_handle_t *)&r, &fd), 0);
    test_set_sockbuf(fd, 0, 16 * 1024);
    bh_writeq q;
    bh_writeq_config cfg = {2 * NTICKETS, 16u << 20};
    assert_int_equal(bh_writeq_init(&q, &loop, (uv_stream_t *)&w, &cfg), BH_OK);
    ticket_log *log = calloc(1, sizeof *log);
    ticket_ref *refs = calloc(NTICKETS, sizeof *refs);
    assert_non_null(log);
    assert_non_null(refs);

    /* A small slice, then one the socket cannot take (the peer does not
     * read), then the first half of the tickets: the flush hands all of them
     * to libuv as the write in flight, which cannot finish. */
    static uint8_t big[4u << 20];
    bh_bytes b;
    uint8_t small[100] = {0};
    assert_int_equal(bh_bytes_copy(&b, small, sizeof small), BH_OK);
    assert_int_equal(bh_writeq_try_write_ff(&q, &b), BH_OK);
    assert_int_equal(bh_bytes_copy(&b, big, sizeof big), BH_OK);
    assert_int_equal(bh_writeq_try_write_ff(&q, &b), BH_OK);
    enqueue_tickets(&q, refs, log, 0, NTICKETS / 2);
    wq_run_nowait(&loop, 2);
    /* The second half queues behind the write in flight. */
    enqueue_tickets(&q, refs, log, NTICKETS / 2, NTICKETS);
    wq_run_nowait(&loop, 2);
    assert_int_equal(log->ncalls, 0);
    struct bh_writeq_stats st;
    bh_writeq_stats(&q, &st);
    assert_true(st.queued_items >= NTICKETS);

    /* Tickets still queued complete inside close; those in the batch handed
     * to libuv complete when the stream's close cancels that write. */
    bh_writeq_close(&q);
    int in_close = log->ncalls;
    assert_true(in_close >= NTICKETS / 2); /* at least the second half */
    assert_true(in_close < NTICKETS);      /* some were in flight */
    uint8_t x = 0;
    b = bh_bytes_static(&x, 1);
    assert_int_equal(bh_writeq_try_write(&q, &b, on_ticket, &refs[0]), BH_ECLOSED);

    uv_close((uv_handle_t *)&w, NULL); /* the in-flight write is canceled */
    uv_close((uv_handle_t *)&r, NULL);
    assert_int_equal(test_uv_loop_teardown(&loop), 0);
    assert_int_equal(log->ncalls, NTICKETS);
    for (int i = 0; i < NTICKETS; i++) {
        assert_int_equal(log->calls[i], 1);
        assert_int_equal(log->status[i], BH_ECANCELED);
    }
    /* In order within each group; the batch (the oldest tickets) completes
     * after the queued ones, and every ticket in it is older than every
     * queued one. */
    for (int i = 1; i < in_close; i++)
        assert_true(log->order[i] > log->order[i - 1]);
    for (int i = in_close + 1; i < NTICKETS; i++)
        assert_true(log->order[i] > log->order[i - 1]);
    assert_int_equal(log->order[0], NTICKETS - in_close);
    assert_int_equal(log->order[in_close], 0);
    bh_writeq_stats(&q, &st);
    assert_int_equal(st.queued_items, 0);
    assert_int_equal(st.queued_bytes, 0);
    test_alloc_stats as;
    test_alloc_stats_get(&as);
    assert_int_equal(as.live, 0); /* every slice, the ring and the batch array */
    test_alloc_uninstall();
    free(log);
    free(refs);
}

TEST_MAIN(test_alloc_checked(shutdown_flushes_everything_then_peer_sees_all_bytes_and_eof),
          test_alloc_checked(shutdown_of_idle_queue_sends_eof_and_completes_once),
          test_alloc_checked(close_cancels_each_queued_ticket_once_and_releases_every_slice),
          test_alloc_checked(close_cancels_write_in_flight_with_ecanceled_when_stream_closes),
          test_alloc_checked(close_inside_ticket_callback_cancels_queued_items_once),
          test_alloc_checked(close_with_pending_shutdown_reports_ecanceled_once),
          test_alloc_checked(peer_close_fails_every_pending_ticket_once_and_later_writes_get_eclosed),
          test_alloc_checked(ff_to_a_dead_peer_is_accepted_then_the_flush_fails_the_queue_once),
          test_alloc_checked(close_with_1000_pending_tickets_completes_each_once_with_ecanceled))
