/* test_writeq_support.c - reading peer, ticket recorder and loop driver for
 * the bh_writeq tests. */
#include "test_writeq_support.h"

#include <stdlib.h>
#include <string.h>

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

int wq_ticket_seq;

void wq_ticket_cb(bh_writeq *q, int status, void *ctx)
{
    (void)q;
    wq_ticket *t = ctx;
    t->calls++;
    t->status = status;
    t->order = ++wq_ticket_seq;
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
