/* proxy_manual_vec.c - the practical hand-written peer: a persistent
 * malloc'd buffer per connection, memmove compaction, and a direct uv_write
 * per frame (and per tunnel read) of a malloc'd copy freed in its write
 * callback. Reading pauses while more than --write-budget bytes are in
 * flight to the upstream and resumes below half of it. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy_uv.h"

#define REPLY_BUF 4096

typedef struct mconn mconn;

/* One write of an owned copy: request and bytes in one allocation. */
typedef struct mwrite {
    uv_write_t req;
    mconn *c;
    size_t len;
    uint8_t data[];
} mwrite;

struct mconn {
    hx_link link;
    uv_worker *uw;
    hx_uv_stream client, upstream;
    uint8_t *buf;        /* client -> upstream bytes not yet forwarded */
    size_t start, len, cap, scan;
    size_t inflight;     /* bytes written to upstream, not yet completed */
    int tunnel, paused, closing, handles;
    uv_shutdown_t up_sreq, down_sreq;
    char reply[REPLY_BUF];
};

static void on_handle_closed(uv_handle_t *h)
{
    mconn *c = h->data;
    if (--c->handles == 0) {
        hx_list_unlink(&c->link);
        free(c->buf);
        free(c);
    }
}

static void conn_close(mconn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    uv_close(&c->client.h, on_handle_closed);
    uv_close(&c->upstream.h, on_handle_closed);
}

static void close_link(hx_link *l)
{
    conn_close((mconn *)((char *)l - offsetof(mconn, link)));
}

static void on_client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out);
static void on_client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);

static void on_up_written(uv_write_t *req, int status)
{
    mwrite *w = (mwrite *)req;
    mconn *c = w->c;
    c->inflight -= w->len;
    free(w);
    if (c->closing)
        return;
    if (status != 0) {
        conn_close(c);
        return;
    }
    if (c->paused && c->inflight <= c->uw->w->cfg->write_budget / 2) {
        c->paused = 0;
        if (uv_read_start(&c->client.s, on_client_alloc, on_client_read) != 0)
            conn_close(c);
    }
}

/* Copies p[0..n) into a new allocation and writes it to the upstream. */
static int write_copy(mconn *c, const uint8_t *p, size_t n)
{
    mwrite *w = malloc(sizeof *w + n);
    if (!w)
        return UV_ENOMEM;
    w->c = c;
    w->len = n;
    memcpy(w->data, p, n);
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)n);
    int rc = uv_write(&w->req, &c->upstream.s, &b, 1, on_up_written);
    if (rc != 0) {
        free(w);
        return rc;
    }
    c->inflight += n;
    return 0;
}

static void on_client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    mconn *c = h->data;
    size_t want = c->uw->w->cfg->read_reserve;
    (void)suggested;
    *out = uv_buf_init(NULL, 0);
    if (c->cap - c->start - c->len < want) {
        if (c->start > 0) {
            memmove(c->buf, c->buf + c->start, c->len);
            c->start = 0;
        }
        if (c->cap - c->len < want) {
            uint8_t *nb = realloc(c->buf, c->len + want);
            if (!nb)
                return; /* read_cb gets UV_ENOBUFS */
            c->buf = nb;
            c->cap = c->len + want;
        }
    }
    *out = uv_buf_init((char *)c->buf + c->start + c->len,
                       (unsigned)(c->cap - c->start - c->len));
}

/* Forwards every complete frame, then (in tunnel mode) everything buffered.
 * Returns 0 or an error that closes the connection. */
static int forward(mconn *c)
{
    static const char tunnel_line[] = "TUNNEL\n";
    while (!c->tunnel) {
        uint8_t *base = c->buf + c->start;
        uint8_t *nl = memchr(base + c->scan, '\n', c->len - c->scan);
        if (!nl) {
            c->scan = c->len;
            return c->len >= c->uw->w->cfg->max_line ? UV_E2BIG : 0;
        }
        size_t n = (size_t)(nl - base) + 1;
        if (n == sizeof tunnel_line - 1 && memcmp(base, tunnel_line, n) == 0)
            c->tunnel = 1;
        int rc = write_copy(c, base, n);
        if (rc != 0)
            return rc;
        c->start += n;
        c->len -= n;
        c->scan = 0;
    }
    if (c->len > 0) {
        int rc = write_copy(c, c->buf + c->start, c->len);
        if (rc != 0)
            return rc;
        c->len = 0;
    }
    if (c->len == 0)
        c->start = 0;
    return 0;
}

static void on_up_shutdown(uv_shutdown_t *req, int status)
{
    mconn *c = req->data;
    if (status != 0 && !c->closing)
        conn_close(c);
}

static void on_client_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    mconn *c = s->data;
    (void)b;
    if (nread == 0 || c->closing)
        return;
    if (nread > 0) {
        c->len += (size_t)nread;
        if (forward(c) != 0) {
            conn_close(c);
            return;
        }
        if (c->inflight > c->uw->w->cfg->write_budget) {
            c->paused = 1;
            uv_read_stop(s);
        }
        return;
    }
    uv_read_stop(s);
    if (nread != UV_EOF) {
        conn_close(c);
        return;
    }
    /* A partial frame at EOF is forwarded as is; then the upstream is
     * half-closed once the writes before it have completed. */
    c->tunnel = 1;
    c->up_sreq.data = c;
    if (forward(c) != 0 || uv_shutdown(&c->up_sreq, &c->upstream.s, on_up_shutdown) != 0)
        conn_close(c);
}

static void on_reply_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    mconn *c = h->data;
    (void)suggested;
    *out = uv_buf_init(c->reply, (unsigned)sizeof c->reply);
}

static void on_reply_written(uv_write_t *req, int status)
{
    mwrite *w = (mwrite *)req;
    mconn *c = w->c;
    free(w);
    if (status != 0 && !c->closing)
        conn_close(c);
}

static void on_down_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    conn_close(req->data);
}

static void on_upstream_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    mconn *c = s->data;
    if (nread == 0 || c->closing)
        return;
    if (nread > 0) {
        mwrite *w = malloc(sizeof *w + (size_t)nread);
        if (!w) {
            conn_close(c);
            return;
        }
        w->c = c;
        w->len = (size_t)nread;
        memcpy(w->data, b->base, (size_t)nread);
        uv_buf_t out = uv_buf_init((char *)w->data, (unsigned)nread);
        if (uv_write(&w->req, &c->client.s, &out, 1, on_reply_written) != 0) {
            free(w);
            conn_close(c);
        }
        return;
    }
    uv_read_stop(s);
    c->down_sreq.data = c;
    if (nread != UV_EOF || uv_shutdown(&c->down_sreq, &c->client.s, on_down_shutdown) != 0)
        conn_close(c);
}

static void open_pair(uv_worker *uw, proxy_pair p)
{
    mconn *c = calloc(1, sizeof *c);
    if (!c) {
        close(p.client_fd);
        close(p.upstream_fd);
        return;
    }
    c->uw = uw;
    int rc = uv_worker_open_pair(uw, p, &c->client, &c->upstream);
    c->client.h.data = c;
    c->upstream.h.data = c;
    c->handles = 2;
    hx_list_push(&uw->conns, &c->link);
    if (rc != 0 || uv_read_start(&c->client.s, on_client_alloc, on_client_read) != 0 ||
        uv_read_start(&c->upstream.s, on_reply_alloc, on_upstream_read) != 0)
        conn_close(c);
}

static const uv_proxy_ops manual_ops = {open_pair, close_link};

static int manual_init(proxy_worker *w) { return uv_worker_init(w, &manual_ops); }

const proxy_impl proxy_impl_manual_vec = {
    "manual_vec", manual_init, uv_worker_run, uv_worker_wake, uv_worker_destroy,
};
