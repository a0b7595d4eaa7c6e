/* proxy_uv_copy.c - the libuv baseline (uv_copy): a plain libuv relay that
 * copies bytes both ways without parsing and without the library, so a gap
 * between handoff and epoll_copy splits into libuv's share and the
 * library's.
 *
 * Each direction owns one fixed buffer (--read-reserve bytes client to
 * upstream, 4 KiB for the reply). A read is written straight back out with
 * uv_try_write(); only when the socket does not take it all is the rest
 * queued with uv_write() and reading paused until it completes. No
 * allocation per read, no framing: this does less work than the other
 * implementations and is not a semantic peer. */
#include <stdlib.h>
#include <unistd.h>

#include "proxy_uv.h"

#define REPLY_BUF 4096

typedef struct rconn rconn;

/* One direction: read from src into buf, write to dst. */
typedef struct rdir {
    rconn *c;
    hx_uv_stream *src, *dst;
    uint8_t *buf;
    size_t cap;
    uv_write_t wreq;
    uv_shutdown_t sreq;
} rdir;

struct rconn {
    hx_link link;
    hx_uv_stream client, upstream;
    rdir up;   /* client -> upstream */
    rdir down; /* upstream -> client */
    int closing;
    int handles;
};

static void on_handle_closed(uv_handle_t *h)
{
    rdir *d = h->data;
    rconn *c = d->c;
    if (--c->handles == 0) {
        hx_list_unlink(&c->link);
        free(c);
    }
}

static void conn_close(rconn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    uv_close(&c->client.h, on_handle_closed);
    uv_close(&c->upstream.h, on_handle_closed);
}

static void close_link(hx_link *l)
{
    conn_close((rconn *)((char *)l - offsetof(rconn, link)));
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    rdir *d = h->data;
    (void)suggested;
    *out = uv_buf_init((char *)d->buf, (unsigned)d->cap);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);

static int dir_start(rdir *d)
{
    return uv_read_start(&d->src->s, on_alloc, on_read);
}

/* The rest of a read went out: resume reading. */
static void on_written(uv_write_t *req, int status)
{
    rdir *d = req->data;
    if (d->c->closing)
        return;
    if (status != 0 || dir_start(d) != 0)
        conn_close(d->c);
}

static void on_down_shutdown(uv_shutdown_t *req, int status)
{
    rdir *d = req->data;
    (void)status;
    conn_close(d->c);
}

static void on_up_shutdown(uv_shutdown_t *req, int status)
{
    rdir *d = req->data;
    if (status != 0 && !d->c->closing)
        conn_close(d->c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    rdir *d = s->data;
    rconn *c = d->c;
    (void)b;
    if (nread == 0 || c->closing)
        return;
    if (nread < 0) {
        uv_read_stop(s);
        int rc = UV_EINVAL;
        if (nread == UV_EOF) {
            d->sreq.data = d;
            rc = uv_shutdown(&d->sreq, &d->dst->s, d == &c->up ? on_up_shutdown : on_down_shutdown);
        }
        if (rc != 0)
            conn_close(c);
        return;
    }
    uv_buf_t out = uv_buf_init((char *)d->buf, (unsigned)nread);
    int w = uv_try_write(&d->dst->s, &out, 1);
    if (w == nread)
        return;
    if (w < 0 && w != UV_EAGAIN) {
        conn_close(c);
        return;
    }
    if (w > 0)
        out = uv_buf_init((char *)d->buf + w, (unsigned)(nread - w));
    uv_read_stop(s);
    d->wreq.data = d;
    if (uv_write(&d->wreq, &d->dst->s, &out, 1, on_written) != 0)
        conn_close(c);
}

static void open_pair(uv_worker *uw, proxy_pair p)
{
    size_t reserve = uw->w->cfg->read_reserve;
    rconn *c = calloc(1, sizeof *c + reserve + REPLY_BUF);
    if (!c) {
        close(p.client_fd);
        close(p.upstream_fd);
        return;
    }
    uint8_t *mem = (uint8_t *)(c + 1);
    c->up = (rdir){.c = c, .src = &c->client, .dst = &c->upstream, .buf = mem, .cap = reserve};
    c->down = (rdir){.c = c, .src = &c->upstream, .dst = &c->client, .buf = mem + reserve,
                     .cap = REPLY_BUF};
    int rc = uv_worker_open_pair(uw, p, &c->client, &c->upstream);
    c->client.h.data = &c->up;
    c->upstream.h.data = &c->down;
    c->handles = 2;
    hx_list_push(&uw->conns, &c->link);
    if (rc != 0 || dir_start(&c->up) != 0 || dir_start(&c->down) != 0)
        conn_close(c);
}

static const uv_proxy_ops uv_copy_ops = {open_pair, close_link};

static int uv_copy_init(proxy_worker *w) { return uv_worker_init(w, &uv_copy_ops); }

const proxy_impl proxy_impl_uv_copy = {
    "uv_copy", uv_copy_init, uv_worker_run, uv_worker_wake, uv_worker_destroy,
};
