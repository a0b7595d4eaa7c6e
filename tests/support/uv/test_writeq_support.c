/* test_writeq_support.c - the bh_writeq test fixture, reading peer, ticket
 * and shutdown recorders and loop driver. */
#include "test_writeq_support.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_uv.h"

uint8_t wq_pattern(size_t i)
{
    uint64_t x = (uint64_t)i * 0x9E3779B97F4A7C15ull;
    return (uint8_t)(x >> 56);
}

uint8_t *wq_pattern_buf(size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    if (p)
        for (size_t i = 0; i < n; i++)
            p[i] = wq_pattern(i);
    return p;
}

bh_bytes wq_pattern_slice(const uint8_t *pattern, size_t off, size_t n)
{
    bh_bytes b;
    if (bh_bytes_copy(&b, pattern + off, n) != BH_OK)
        abort();
    return b;
}

static void sink_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    wq_sink *k = h->data;
    buf->base = k->buf;
    buf->len = sizeof k->buf;
}

static void sink_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    wq_sink *k = s->data;
    if (nread > 0) {
        const uint8_t *p = (const uint8_t *)buf->base;
        if (k->hook) {
            k->hook(k, p, (size_t)nread);
        } else {
            for (ssize_t i = 0; i < nread; i++) {
                if (p[i] != wq_pattern(k->received + (size_t)i)) {
                    if (k->mismatches == 0)
                        k->first_bad = k->received + (size_t)i;
                    k->mismatches++;
                }
            }
        }
        k->received += (size_t)nread;
    } else if (nread == UV_EOF) {
        k->eof = 1;
        wq_sink_stop(k);
    } else if (nread < 0) {
        if (k->error == 0)
            k->error = (int)nread;
        wq_sink_stop(k);
    }
}

void wq_sink_init(wq_sink *k, uv_stream_t *s)
{
    memset(k, 0, offsetof(wq_sink, buf));
    k->s = s;
    s->data = k;
}

void wq_sink_start(wq_sink *k)
{
    if (!k->reading && uv_read_start(k->s, sink_alloc, sink_read) == 0)
        k->reading = 1;
}

void wq_sink_stop(wq_sink *k)
{
    if (k->reading)
        uv_read_stop(k->s);
    k->reading = 0;
}

void wq_ticket_cb(bh_writeq *q, int status, void *ctx)
{
    (void)q;
    test_ticket_record(ctx, status);
}

int wq_tickets_all_called(void *arg)
{
    const wq_ticket_set *ts = arg;
    for (int i = 0; i < ts->n; i++)
        if (ts->t[i].calls == 0)
            return 0;
    return 1;
}

static void on_tick(uv_timer_t *t) { (void)t; }

int wq_run_until(uv_loop_t *loop, int (*cond)(void *), void *arg, unsigned timeout_ms)
{
    uv_timer_t timer;
    uv_timer_init(loop, &timer);
    uv_timer_start(&timer, on_tick, 10, 10);
    uv_update_time(loop);
    uint64_t start = uv_now(loop);
    int rc = 0;
    while (!cond(arg)) {
        if (uv_now(loop) - start > timeout_ms) {
            rc = -1;
            break;
        }
        uv_run(loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&timer, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return rc;
}

void wq_run_nowait(uv_loop_t *loop, int iterations)
{
    for (int i = 0; i < iterations; i++)
        uv_run(loop, UV_RUN_NOWAIT);
}

void wq_shut_cb(bh_writeq *q, int status, void *ctx)
{
    (void)q;
    test_ticket_record(ctx, status);
}

/* ---- the fixture ---------------------------------------------------------- */

wq_fx *wq_fx_new(wq_transport t, size_t max_items, size_t max_bytes, size_t pattern_len)
{
    wq_fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    if (t == WQ_TCP)
        assert_int_equal(test_uv_tcp_pair(&f->loop, &f->wh.tcp, &f->rh.tcp), 0);
    else
        assert_int_equal(test_uv_socketpair(&f->loop, &f->wh.pipe, &f->rh.pipe), 0);
    f->w = (uv_stream_t *)&f->wh;
    f->r = (uv_stream_t *)&f->rh;
    bh_writeq_config cfg = {max_items, max_bytes};
    assert_int_equal(bh_writeq_init(&f->q, &f->loop, f->w, &cfg), BH_OK);
    wq_sink_init(&f->sink, f->r);
    f->pattern_len = pattern_len;
    f->pattern = wq_pattern_buf(pattern_len);
    assert_non_null(f->pattern);
    return f;
}

void wq_fx_free(wq_fx *f)
{
    bh_writeq_close(&f->q);
    assert_int_equal(test_uv_loop_teardown(&f->loop), 0);
    free(f->pattern);
    free(f);
}

void wq_fx_sockbuf(wq_fx *f, int sndbuf, int rcvbuf)
{
    uv_os_fd_t wfd, rfd;
    assert_int_equal(uv_fileno((uv_handle_t *)f->w, &wfd), 0);
    assert_int_equal(uv_fileno((uv_handle_t *)f->r, &rfd), 0);
    test_set_sockbuf(wfd, sndbuf, rcvbuf);
    test_set_sockbuf(rfd, sndbuf, rcvbuf);
}

enum { OFFER_FF, OFFER_TICKET, OFFER_SUBMIT };

static int offer(wq_fx *f, size_t n, wq_ticket *t, int how)
{
    assert_true(f->off + n <= f->pattern_len);
    bh_bytes b = wq_pattern_slice(f->pattern, f->off, n);
    bh_bytes keep = b;
    int rc;
    if (how == OFFER_SUBMIT)
        rc = bh_writeq_submit_mt(&f->q, &b, t ? wq_ticket_cb : NULL, t);
    else if (how == OFFER_TICKET)
        rc = bh_writeq_try_write(&f->q, &b, wq_ticket_cb, t);
    else
        rc = bh_writeq_try_write_ff(&f->q, &b);
    if (rc == BH_OK) {
        assert_null(b.ptr);
        assert_int_equal(b.len, 0);
        f->off += n;
    } else {
        assert_ptr_equal(b.ptr, keep.ptr);
        assert_int_equal(b.len, keep.len);
        assert_int_equal(bh_bytes_refcount(&b), n > 0 ? 1 : 0);
        bh_bytes_release(&b);
    }
    return rc;
}

int wq_fx_ff(wq_fx *f, size_t n) { return offer(f, n, NULL, OFFER_FF); }

int wq_fx_ticket(wq_fx *f, size_t n, wq_ticket *t) { return offer(f, n, t, OFFER_TICKET); }

int wq_fx_submit(wq_fx *f, size_t n, wq_ticket *t) { return offer(f, n, t, OFFER_SUBMIT); }

int wq_fx_received_all(void *arg)
{
    wq_fx *f = arg;
    return f->sink.received >= f->off || f->sink.error != 0;
}

int wq_fx_eof(void *arg)
{
    wq_fx *f = arg;
    return f->sink.eof || f->sink.error;
}

void wq_fx_run_until_received(wq_fx *f, unsigned timeout_ms)
{
    wq_sink_start(&f->sink);
    assert_int_equal(wq_run_until(&f->loop, wq_fx_received_all, f, timeout_ms), 0);
    assert_int_equal(f->sink.error, 0);
    assert_int_equal(f->sink.received, f->off);
    assert_int_equal(f->sink.mismatches, 0);
}

void wq_fx_run_until_eof(wq_fx *f, const wq_shut_rec *sr, unsigned timeout_ms)
{
    wq_sink_start(&f->sink);
    assert_int_equal(wq_run_until(&f->loop, wq_fx_eof, f, timeout_ms), 0);
    wq_run_nowait(&f->loop, 3);
    assert_int_equal(f->sink.eof, 1);
    assert_int_equal(f->sink.received, f->off);
    assert_int_equal(f->sink.mismatches, 0);
    assert_int_equal(sr->calls, 1);
    assert_int_equal(sr->status, 0);
}

struct bh_writeq_stats wq_expect_queued(const bh_writeq *q, size_t items, size_t bytes)
{
    struct bh_writeq_stats s;
    bh_writeq_stats(q, &s);
    assert_int_equal(s.queued_items, items);
    assert_int_equal(s.queued_bytes, bytes);
    return s;
}

void wq_fx_run_until_settled(wq_fx *f, unsigned timeout_ms)
{
    wq_fx_run_until_received(f, timeout_ms);
    wq_run_nowait(&f->loop, 3);
}
