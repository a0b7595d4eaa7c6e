/* proxy_handoff.c - the proxy built on this library: bh_reader reads the
 * client into a persistent bh_buf (max_len = --max-line), each complete route
 * frame is split off as an owned bh_bytes (no copy) and submitted to a
 * bh_writeq on the upstream (byte budget --write-budget), with a completion
 * ticket or fire-and-forget per --completion. On "TUNNEL\n" the unconsumed
 * tail is moved out with bh_buf_take_tail and forwarded; from then on each
 * read is frozen whole and submitted. A slice refused with BH_EFULL is held,
 * reading pauses, and the queue's drain callback resumes both. The reply path
 * (upstream to client) is a second reader and queue, made when the upstream
 * first replies. Each reader gives its block back to the worker thread's
 * block cache whenever a callback leaves its buffer empty, and a worker
 * that stayed without connections for UV_WORKER_TRIM_DELAY_MS calls
 * bh_trim() (idle_trim.h): an idle connection holds its structs, not blocks,
 * and short connections coming and going keep the cache warm.
 *
 * handoff_tunnel: the same parsing, but after "TUNNEL\n" the raw phase is a
 * bh_tunnel (splice on): what was read behind the marker goes into the queue
 * with it (one writev for the marker and the bytes behind it), and from then
 * on what the readers read stays in their buffers; once both queues have drained (drain callbacks at 0 bytes)
 * the queues are closed and the tunnel (allocated then) starts with those
 * buffers as its tails. Its readers take both streams over from the
 * connection's (bh_reader_start() hands a reading stream over without
 * stopping it: no epoll_ctl for the switch). The tunnel then owns both
 * handles and frees the connection from its completion callback. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bytes_handoff.h>
#include <bytes_handoff/uv.h>

#include "proxy_uv.h"

#define REPLY_MAX ((size_t)4096)

typedef struct hconn {
    hx_link link;
    uv_worker *uw;
    hx_uv_stream client, upstream;
    bh_buf in;          /* client bytes not yet forwarded */
    bh_reader in_reader;
    bh_writeq upq;      /* to the upstream */
    bh_buf back;        /* reply bytes from the upstream */
    bh_reader back_reader;
    bh_writeq *downq;   /* to the client; made when the upstream first replies */
    bh_bytes held;      /* refused with BH_EFULL, offered again on drain */
    size_t scan;        /* bytes of `in` already searched for '\n' */
    int tunnel;         /* "TUNNEL\n" forwarded (or client EOF): raw from here */
    int switched;       /* the parser's tail was taken over by the tunnel */
    int in_eof, paused, up_shut, closing, handles;
    int use_tunnel;     /* handoff_tunnel: the raw phase is a bh_tunnel */
    int switching;      /* waiting for both queues to drain before it */
    int tunnel_on;      /* bh_tunnel started: it owns the handles */
    bh_tunnel *tun;     /* handoff_tunnel, from the switch on */
} hconn;

#define CONN_OF(ptr, field) ((hconn *)(void *)((char *)(ptr) - offsetof(hconn, field)))

static const bh_bytes no_bytes = {NULL, 0, NULL};

static void conn_release(hconn *c)
{
    if (--c->handles > 0)
        return;
    uv_worker *uw = c->uw;
    hx_list_unlink(&c->link);
    bh_bytes_release(&c->held);
    bh_buf_free(&c->in);
    bh_buf_free(&c->back);
    free(c->downq);
    free(c->tun);
    free(c);
    /* The worker went idle: unless a connection comes soon, this thread's
     * cached blocks and the free heap go back to the system. */
    if (uw->conns.next == &uw->conns)
        idle_trim_idle(&uw->trim);
}

static void on_client_closed(uv_handle_t *h) { conn_release(CONN_OF(h, client)); }
static void on_upstream_closed(uv_handle_t *h) { conn_release(CONN_OF(h, upstream)); }

static void conn_close(hconn *c)
{
    if (c->tunnel_on) {
        bh_tunnel_abort(c->tun);
        return;
    }
    if (c->closing)
        return;
    c->closing = 1;
    bh_reader_stop(&c->in_reader);
    bh_reader_stop(&c->back_reader);
    bh_writeq_close(&c->upq);
    if (c->downq)
        bh_writeq_close(c->downq);
    bh_bytes_release(&c->held);
    uv_close(&c->client.h, on_client_closed);
    uv_close(&c->upstream.h, on_upstream_closed);
}

static void close_link(hx_link *l)
{
    conn_close(CONN_OF(l, link));
}

static void on_ticket(bh_writeq *q, int status, void *ctx)
{
    hconn *c = ctx;
    (void)q;
    if (status != 0 && !c->closing)
        conn_close(c);
}

/* Submits *b to the upstream queue. Returns 0 when accepted, 1 when refused
 * with BH_EFULL (then held and reading paused), or a negative error (*b is
 * released). */
static int offer(hconn *c, bh_bytes *b)
{
    int rc = c->uw->w->cfg->fire_and_forget ? bh_writeq_try_write_ff(&c->upq, b)
                                             : bh_writeq_try_write(&c->upq, b, on_ticket, c);
    if (rc == BH_OK)
        return 0;
    if (rc == BH_EFULL) {
        c->held = *b;
        *b = no_bytes;
        c->paused = 1;
        bh_reader_stop(&c->in_reader);
        return 1;
    }
    bh_bytes_release(b);
    return rc;
}

static void on_up_shutdown(bh_writeq *q, int status, void *ctx)
{
    hconn *c = ctx;
    (void)q;
    if (status != 0 && !c->closing)
        conn_close(c);
}

/* Bytes moved by the tunnels of all workers, and of those by splice(2). */
static _Atomic uint64_t g_tunnel_bytes, g_spliced_bytes;

void proxy_tunnel_totals(uint64_t *bytes, uint64_t *spliced)
{
    *bytes = g_tunnel_bytes;
    *spliced = g_spliced_bytes;
}

static void on_tunnel_done(bh_tunnel *t, int status, const struct bh_tunnel_stats *st, void *ctx)
{
    hconn *c = ctx;
    (void)t;
    (void)status;
    g_tunnel_bytes += st->bytes[0] + st->bytes[1];
    g_spliced_bytes += st->spliced[0] + st->spliced[1];
    c->handles = 1;
    conn_release(c);
}

static void on_up_drain(bh_writeq *q, void *ctx);
static void on_down_drain(bh_writeq *q, void *ctx);
static bh_writeq *down_queue(hconn *c);

/* handoff_tunnel: starts the bh_tunnel once nothing is queued either way. */
static void try_switch(hconn *c)
{
    struct bh_writeq_stats up, down;
    bh_writeq_stats(&c->upq, &up);
    bh_writeq_stats(c->downq, &down);
    if (c->closing || c->held.len > 0 || up.queued_items > 0 || down.queued_items > 0)
        return;
    c->switching = 0;
    bh_writeq_close(&c->upq);
    bh_writeq_close(c->downq);
    bh_tunnel_config tc = bh_tunnel_config_default();
    tc.read_reserve = c->uw->w->cfg->read_reserve;
    tc.max_bytes = c->uw->w->cfg->write_budget;
    if (!(c->tun = malloc(sizeof *c->tun)) ||
        bh_tunnel_start(c->tun, &c->uw->loop, &c->client.s, &c->upstream.s, &c->in, &c->back,
                        &tc, on_tunnel_done, c) != 0) {
        conn_close(c);
        return;
    }
    c->tunnel_on = 1;
}

/* handoff_tunnel, at the marker: reads from here on wait in the buffers for
 * the tunnel; the drain callbacks (now at 0 bytes) call try_switch. */
static void begin_switch(hconn *c)
{
    c->switching = 1;
    bh_writeq_set_drain_cb(c->downq, 0, on_down_drain, c);
}

/* Forwards what can be forwarded: a held slice, complete frames, then in
 * tunnel mode everything buffered; half-closes the upstream after EOF. */
static void pump(hconn *c)
{
    static const char tunnel_line[] = "TUNNEL\n";
    int rc = 0;
    if (c->held.len > 0) {
        bh_bytes b = c->held;
        c->held = no_bytes;
        if ((rc = offer(c, &b)) != 0)
            goto stop;
    }
    while (!c->tunnel) {
        size_t nl = bh_buf_find(&c->in, '\n', c->scan);
        if (nl == BH_NPOS) {
            c->scan = bh_buf_len(&c->in);
            break;
        }
        bh_bytes frame;
        if ((rc = bh_buf_split_prefix(&c->in, nl + 1, &frame)) != BH_OK)
            goto stop;
        c->scan = 0;
        if (frame.len == sizeof tunnel_line - 1 && memcmp(frame.ptr, tunnel_line, frame.len) == 0) {
            c->tunnel = 1;
            if (c->use_tunnel) {
                if (!down_queue(c)) {
                    bh_bytes_release(&frame);
                    rc = BH_ENOMEM;
                    goto stop;
                }
                /* Low water 0 before queueing arms the drain at empty. */
                bh_writeq_set_drain_cb(&c->upq, 0, on_up_drain, c);
                begin_switch(c);
                if ((rc = offer(c, &frame)) != 0)
                    goto stop;
                /* What was read behind the marker joins it in the queue
                 * (one writev for both), so the tunnel starts with nothing
                 * of its own to write first. */
                if (bh_buf_len(&c->in) > 0) {
                    bh_bytes tail;
                    if ((rc = bh_buf_freeze(&c->in, &tail)) != BH_OK ||
                        (rc = offer(c, &tail)) != 0)
                        goto stop;
                }
                try_switch(c);
                return;
            }
        }
        if ((rc = offer(c, &frame)) != 0)
            goto stop;
    }
    if (c->tunnel && bh_buf_len(&c->in) > 0) {
        bh_bytes chunk;
        if (!c->switched) {
            /* Mode switch: the bytes read after "TUNNEL\n" leave the parser
             * as they are; the reader's buffer starts over empty. */
            bh_buf tail;
            if ((rc = bh_buf_take_tail(&c->in, &tail)) != BH_OK)
                goto stop;
            rc = bh_buf_freeze(&tail, &chunk);
            bh_buf_free(&tail);
            c->switched = 1;
        } else {
            rc = bh_buf_freeze(&c->in, &chunk);
        }
        if (rc != BH_OK || (rc = offer(c, &chunk)) != 0)
            goto stop;
    }
    if (c->in_eof) {
        if (!c->up_shut) {
            c->up_shut = 1;
            if (bh_writeq_shutdown(&c->upq, on_up_shutdown, c) != BH_OK)
                conn_close(c);
        }
        return;
    }
    if (c->paused) {
        c->paused = 0;
        if (bh_reader_start(&c->in_reader) != BH_OK)
            conn_close(c);
    }
    return;
stop:
    if (rc < 0)
        conn_close(c);
}

/* Switching: b keeps what r reads for the tunnel; r stops before b could
 * fill up (a full buffer would end it with BH_ETOOLONG), and the tunnel's
 * reader then starts anew instead of taking the stream over. */
static void hold_for_tunnel(hconn *c, bh_reader *r, bh_buf *b)
{
    if (bh_buf_max_len(b) - bh_buf_len(b) <= c->uw->w->cfg->read_reserve)
        bh_reader_stop(r);
}

static void on_client_read(bh_reader *r, int status, void *ctx)
{
    hconn *c = ctx;
    (void)r;
    /* Switching: bytes wait in the buffer for the tunnel, whose reader will
     * read the EOF again (a socket at EOF keeps reading 0 bytes). */
    if (c->switching && (status == BH_OK || status == UV_EOF)) {
        hold_for_tunnel(c, &c->in_reader, &c->in);
        return;
    }
    if (status == UV_EOF) {
        /* A partial frame at EOF goes out as it is. */
        c->in_eof = 1;
        c->tunnel = 1;
    } else if (status != BH_OK) {
        conn_close(c); /* read error, or a frame longer than --max-line */
        return;
    }
    pump(c);
}

static void on_up_drain(bh_writeq *q, void *ctx)
{
    hconn *c = ctx;
    (void)q;
    if (c->switching) {
        if (c->held.len > 0) {
            bh_bytes b = c->held;
            c->held = no_bytes;
            int rc = offer(c, &b);
            if (rc < 0)
                conn_close(c);
            if (rc != 0)
                return;
        }
        try_switch(c);
        return;
    }
    if (!c->closing && (c->paused || c->held.len > 0))
        pump(c);
}

static void on_down_drain(bh_writeq *q, void *ctx)
{
    hconn *c = ctx;
    (void)q;
    if (c->switching)
        try_switch(c);
}

static void on_down_shutdown(bh_writeq *q, int status, void *ctx)
{
    (void)q;
    (void)status;
    conn_close(ctx);
}

/* The reply path's queue, made on first use: an idle connection, whose
 * upstream has not answered yet, does not carry it. NULL when out of memory. */
static bh_writeq *down_queue(hconn *c)
{
    if (c->downq)
        return c->downq;
    bh_writeq *q = malloc(sizeof *q);
    if (q && bh_writeq_init(q, &c->uw->loop, &c->client.s, NULL) != BH_OK) {
        free(q);
        q = NULL;
    }
    return c->downq = q;
}

static void on_upstream_read(bh_reader *r, int status, void *ctx)
{
    hconn *c = ctx;
    bh_writeq *downq = down_queue(c);
    (void)r;
    if (!downq) {
        conn_close(c);
        return;
    }
    if (c->switching && (status == BH_OK || status == UV_EOF)) {
        hold_for_tunnel(c, &c->back_reader, &c->back); /* as on_client_read */
        return;
    }
    if (status == BH_OK) {
        bh_bytes reply = no_bytes;
        if (bh_buf_freeze(&c->back, &reply) != BH_OK ||
            bh_writeq_try_write_ff(downq, &reply) != BH_OK) {
            bh_bytes_release(&reply);
            conn_close(c);
        }
        return;
    }
    if (status != UV_EOF || bh_writeq_shutdown(downq, on_down_shutdown, c) != BH_OK)
        conn_close(c);
}

static void open_conn(uv_worker *uw, proxy_pair p, int use_tunnel)
{
    const proxy_config *cfg = uw->w->cfg;
    hconn *c = calloc(1, sizeof *c);
    if (!c) {
        close(p.client_fd);
        close(p.upstream_fd);
        return;
    }
    c->uw = uw;
    c->use_tunnel = use_tunnel;
    int rc = uv_worker_open_pair(uw, p, &c->client, &c->upstream);
    c->handles = 2;
    hx_list_push(&uw->conns, &c->link);
    idle_trim_busy(&uw->trim);
    bh_writeq_config qcfg = bh_writeq_config_default();
    qcfg.max_bytes = cfg->write_budget;
    if (rc == 0)
        rc = bh_buf_init(&c->in, cfg->max_line);
    if (rc == 0)
        rc = bh_buf_init(&c->back, REPLY_MAX);
    if (rc == 0)
        rc = bh_reader_init(&c->in_reader, &c->client.s, &c->in, cfg->read_reserve,
                            on_client_read, c);
    if (rc == 0)
        rc = bh_reader_init(&c->back_reader, &c->upstream.s, &c->back, REPLY_MAX,
                            on_upstream_read, c);
    if (rc == 0)
        rc = bh_writeq_init(&c->upq, &uw->loop, &c->upstream.s, &qcfg);
    if (rc == 0) {
        bh_writeq_set_drain_cb(&c->upq, cfg->write_budget / 2, on_up_drain, c);
        rc = bh_reader_start(&c->in_reader);
    }
    if (rc == 0)
        rc = bh_reader_start(&c->back_reader);
    if (rc != 0)
        conn_close(c);
}

static void open_pair(uv_worker *uw, proxy_pair p) { open_conn(uw, p, 0); }
static void open_pair_tunnel(uv_worker *uw, proxy_pair p) { open_conn(uw, p, 1); }

static const uv_proxy_ops handoff_ops = {open_pair, close_link};
static const uv_proxy_ops handoff_tunnel_ops = {open_pair_tunnel, close_link};

static int handoff_init(proxy_worker *w) { return uv_worker_init(w, &handoff_ops); }
static int handoff_tunnel_init(proxy_worker *w) { return uv_worker_init(w, &handoff_tunnel_ops); }

const proxy_impl proxy_impl_handoff = {
    "handoff", handoff_init, uv_worker_run, uv_worker_wake, uv_worker_destroy,
};

const proxy_impl proxy_impl_handoff_tunnel = {
    "handoff_tunnel", handoff_tunnel_init, uv_worker_run, uv_worker_wake, uv_worker_destroy,
};
