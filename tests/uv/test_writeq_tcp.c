/* test_writeq_tcp.c - bh_writeq over loopback TCP (127.0.0.1, ephemeral
 * port) on a real libuv loop: a paused reader with small kernel buffers
 * forces partial writes that must resume exactly; a peer reset mid-queue
 * fails every pending ticket once; shutdown flushes before EOF. */
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

#define RUN_MS 30000

/* Only the writer's send buffer shrinks: shrinking the receive buffer of an
 * established connection below the window it already advertised makes Linux
 * fall back to ~200 ms zero-window probes, which only slows the test down.
 * A 16 KiB send buffer keeps segments below one MSS, so every segment waits
 * for a delayed ACK (tens of seconds per test); 64 KiB avoids that. The
 * paused reader's default buffer is still far smaller than what the tests
 * push. */
static wq_fx *tfx_new(size_t max_items, size_t max_bytes, size_t pattern_len)
{
    wq_fx *f = wq_fx_new(WQ_TCP, max_items, max_bytes, pattern_len);
    wq_fx_sockbuf(f, 65536, 0);
    return f;
}

static int tfx_offer(wq_fx *f, size_t n, wq_ticket *t)
{
    return t ? wq_fx_ticket(f, n, t) : wq_fx_ff(f, n);
}

static void paused_reader_forces_partial_writes_and_resume_delivers_every_byte(void **state)
{
    (void)state;
    enum { BIG = (4 << 20) + 7, ITEM = 65537, N = 24 };
    const size_t total = (size_t)BIG + (size_t)ITEM * N;
    wq_fx *f = tfx_new(256, 16u << 20, total);
    wq_ticket t[N] = {0};
    /* A fire-and-forget slice larger than the kernel can take at once, on an
     * idle queue: being above the eager threshold (4 KiB) it is written at
     * once with uv_try_write, which takes a prefix, and the queue keeps
     * exactly the remainder of that same slice (handed to uv_write, no
     * flush; the sink checks every byte arrives once, in order). */
    assert_int_equal(tfx_offer(f, BIG, NULL), BH_OK);
    struct bh_writeq_stats s;
    bh_writeq_stats(&f->q, &s);
    assert_true(s.written_bytes > 0);
    assert_true(s.written_bytes < BIG);
    assert_int_equal(s.queued_items, 1);
    assert_int_equal(s.queued_bytes, BIG - s.written_bytes);
    assert_int_equal(s.try_write_hits, 0);
    assert_int_equal(s.flushes, 0);
    assert_int_equal(s.batches, 1); /* the remainder, in flight */
    for (int i = 0; i < N; i++)
        assert_int_equal(tfx_offer(f, ITEM, i % 4 == 3 ? &t[i] : NULL), BH_OK);
    wq_run_nowait(&f->loop, 5);
    bh_writeq_stats(&f->q, &s);
    assert_true(s.queued_bytes > 0); /* the reader is paused */
    assert_int_equal(s.written_bytes + s.queued_bytes, total);
    for (int i = 0; i < N; i++)
        assert_int_equal(t[i].calls, 0);
    wq_sink_start(&f->sink);
    assert_int_equal(wq_run_until(&f->loop, wq_fx_received_all, f, RUN_MS), 0);
    wq_run_nowait(&f->loop, 3);
    assert_int_equal(f->sink.error, 0);
    assert_int_equal(f->sink.received, total);
    assert_int_equal(f->sink.mismatches, 0);
    bh_writeq_stats(&f->q, &s);
    assert_int_equal(s.written_bytes, total);
    assert_int_equal(s.written_items, N + 1);
    assert_int_equal(s.queued_items, 0);
    for (int i = 0; i < N; i++) {
        if (i % 4 == 3) {
            assert_int_equal(t[i].calls, 1);
            assert_int_equal(t[i].status, 0);
        }
    }
    wq_fx_free(f);
}

static void reader_pausing_and_resuming_repeatedly_still_gets_every_byte(void **state)
{
    (void)state;
    enum { N = 300 };
    wq_fx *f = tfx_new(64, 256 * 1024, 6u << 20);
    size_t made = 0;
    wq_sink_start(&f->sink);
    while (made < N) {
        size_t n = 1000 + (made * 7919) % 30000;
        int rc = tfx_offer(f, n, NULL);
        if (rc == BH_EFULL) {
            /* Let the writer move a little with the reader paused, then
             * with it reading. */
            wq_sink_stop(&f->sink);
            wq_run_nowait(&f->loop, 2);
            wq_sink_start(&f->sink);
            uv_run(&f->loop, UV_RUN_ONCE);
            continue;
        }
        assert_int_equal(rc, BH_OK);
        made++;
    }
    assert_int_equal(wq_run_until(&f->loop, wq_fx_received_all, f, RUN_MS), 0);
    assert_int_equal(f->sink.received, f->off);
    assert_int_equal(f->sink.mismatches, 0);
    wq_fx_free(f);
}

static void peer_reset_mid_queue_fails_pending_tickets_once_and_later_writes_get_eclosed(
    void **state)
{
    (void)state;
    enum { N = 32 };
    wq_fx *f = tfx_new(N, 8u << 20, 64u * 1024 * N + 4096);
    wq_ticket t[N] = {0};
    for (int i = 0; i < N; i++)
        assert_int_equal(tfx_offer(f, 64 * 1024, &t[i]), BH_OK);
    wq_run_nowait(&f->loop, 2);
    /* RST: the peer goes away with unread data. */
    assert_int_equal(uv_tcp_close_reset(&f->rh.tcp, NULL), 0);
    wq_ticket_set t_all = {t, N};
    assert_int_equal(wq_run_until(&f->loop, wq_tickets_all_called, &t_all, RUN_MS), 0);
    int err = test_tickets_expect_failed_tail(t, N);
    assert_true(err == UV_ECONNRESET || err == UV_EPIPE);
    assert_int_equal(tfx_offer(f, 10, NULL), BH_ECLOSED);
    wq_ticket late = {0};
    assert_int_equal(tfx_offer(f, 10, &late), BH_ECLOSED);
    wq_run_nowait(&f->loop, 3);
    assert_int_equal(late.calls, 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(t[i].calls, 1);
    wq_fx_free(f);
}

static void shutdown_over_tcp_flushes_every_byte_before_eof(void **state)
{
    (void)state;
    enum { N = 64 };
    wq_fx *f = tfx_new(N, 8u << 20, 48u * 1024 * N);
    wq_ticket t[N] = {0};
    for (int i = 0; i < N; i++)
        assert_int_equal(tfx_offer(f, 48 * 1024 - (size_t)i, i % 2 ? &t[i] : NULL), BH_OK);
    wq_shut_rec sr = {0, 0, 0};
    assert_int_equal(bh_writeq_shutdown(&f->q, wq_shut_cb, &sr), BH_OK);
    wq_fx_run_until_eof(f, &sr, RUN_MS);
    for (int i = 1; i < N; i += 2) {
        assert_int_equal(t[i].calls, 1);
        assert_int_equal(t[i].status, 0);
    }
    wq_fx_free(f);
}

typedef struct acceptor {
    uv_tcp_t *server;
    wq_sink *sink;
    int accepted;
} acceptor;

static void on_connection(uv_stream_t *listener, int status)
{
    acceptor *a = listener->data;
    assert_int_equal(status, 0);
    assert_int_equal(uv_tcp_init(listener->loop, a->server), 0);
    assert_int_equal(uv_accept(listener, (uv_stream_t *)a->server), 0);
    wq_sink_init(a->sink, (uv_stream_t *)a->server);
    wq_sink_start(a->sink);
    a->accepted = 1;
}

typedef struct connect_wait {
    wq_sink *sink;
    wq_ticket *t;
} connect_wait;

static int delivered(void *arg)
{
    connect_wait *w = arg;
    return w->sink->received >= 1000 && w->t->calls == 1;
}

static void writes_before_connect_completes_are_queued_and_delivered(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_tcp_t listener, client, server;
    wq_sink sink;
    acceptor acc = {&server, &sink, 0};
    struct sockaddr_in addr;
    struct sockaddr_storage bound;
    int namelen = sizeof bound;
    uv_connect_t req;
    assert_int_equal(uv_loop_init(&loop), 0);
    uv_ip4_addr("127.0.0.1", 0, &addr);
    assert_int_equal(uv_tcp_init(&loop, &listener), 0);
    assert_int_equal(uv_tcp_bind(&listener, (const struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_tcp_getsockname(&listener, (struct sockaddr *)&bound, &namelen), 0);
    listener.data = &acc;
    assert_int_equal(uv_listen((uv_stream_t *)&listener, 4, on_connection), 0);
    assert_int_equal(uv_tcp_init(&loop, &client), 0);
    assert_int_equal(uv_tcp_connect(&req, &client, (const struct sockaddr *)&bound, NULL), 0);
    bh_writeq q;
    assert_int_equal(bh_writeq_init(&q, &loop, (uv_stream_t *)&client, NULL), BH_OK);
    uint8_t *pattern = wq_pattern_buf(1000);
    wq_ticket t = {0};
    bh_bytes a = wq_pattern_slice(pattern, 0, 400);
    bh_bytes b = wq_pattern_slice(pattern, 400, 600);
    assert_int_equal(bh_writeq_try_write_ff(&q, &a), BH_OK); /* still connecting */
    assert_int_equal(bh_writeq_try_write(&q, &b, wq_ticket_cb, &t), BH_OK);
    assert_int_equal(acc.accepted, 0);
    assert_int_equal(t.calls, 0);
    memset(&sink, 0, offsetof(wq_sink, buf));
    connect_wait w = {&sink, &t};
    assert_int_equal(wq_run_until(&loop, delivered, &w, RUN_MS), 0);
    assert_int_equal(acc.accepted, 1);
    assert_int_equal(sink.received, 1000);
    assert_int_equal(sink.mismatches, 0);
    assert_int_equal(t.calls, 1);
    assert_int_equal(t.status, 0);
    bh_writeq_close(&q);
    assert_int_equal(test_uv_loop_teardown(&loop), 0);
    free(pattern);
}

TEST_MAIN(test_alloc_checked(paused_reader_forces_partial_writes_and_resume_delivers_every_byte),
          test_alloc_checked(reader_pausing_and_resuming_repeatedly_still_gets_every_byte),
          test_alloc_checked(
              peer_reset_mid_queue_fails_pending_tickets_once_and_later_writes_get_eclosed),
          test_alloc_checked(shutdown_over_tcp_flushes_every_byte_before_eof),
          test_alloc_checked(writes_before_connect_completes_are_queued_and_delivered))
