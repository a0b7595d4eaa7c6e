/* upstream.c - the client -> upstream direction of a content_routing proxy
 * session: parse the client's tokens, open the upstream its ROUTE names,
 * queue each token as an owned slice, and switch to a bh_tunnel at TUNNEL
 * (see proxy.c). */
#include "proxy_internal.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- client -> upstream -------------------------------------------------- */

/* Queues a slice towards the destination. Returns 0 when queued, 1 when the
 * queue is full (the slice is held and reading paused), -1 when the session
 * ended. Takes *slice in every case. */
static int send_up(session *s, bh_bytes *slice)
{
    cr_proxy *px = s->px;
    size_t len = slice->len;
    int rc = bh_writeq_try_write_ff(&s->to_up, slice);
    if (rc == BH_OK) {
        struct bh_writeq_stats ws;
        px->st.bytes_up += len;
        bh_writeq_stats(&s->to_up, &ws);
        if (ws.queued_bytes > px->st.peak_queued)
            px->st.peak_queued = ws.queued_bytes;
        return 0;
    }
    if (rc == BH_EFULL) {
        s->held = *slice;
        *slice = (bh_bytes){0};
        px->st.pauses++;
        bh_reader_stop(&s->in_reader);
        return 1;
    }
    bh_bytes_release(slice);
    session_fail(s, "queue to upstream", rc);
    return -1;
}

static const cr_dest *find_dest(const cr_proxy *px, const uint8_t *name, size_t n)
{
    for (size_t i = 0; i < px->cfg.ndests; i++)
        if (strlen(px->cfg.dests[i].name) == n && memcmp(px->cfg.dests[i].name, name, n) == 0)
            return &px->cfg.dests[i];
    return NULL;
}

static void on_up_drain(bh_writeq *q, void *ctx);

static void on_tunnel_done(bh_tunnel *t, int status, const struct bh_tunnel_stats *st, void *ctx)
{
    session *s = ctx;
    cr_proxy *px = s->px;
    (void)t;
    px->st.bytes_up += st->bytes[0];
    px->st.bytes_down += st->bytes[1];
    /* The tunnel's waits on a full destination are read pauses too. */
    px->st.pauses += st->backpressure[0] + st->backpressure[1];
    if (status == 0) {
        session_set_outcome(s, OUT_COMPLETED, NULL);
    } else if (s->outcome == OUT_NONE) {
        s->err = status;
        if (status == BH_ENOMEM) {
            px->st.enomem++;
            log_msg(LOG_LEVEL_ERROR, s->id, (const struct sockaddr *)&s->peer,
                    "tunnel: %s (%s); closing the connection", bh_err_name(status),
                    bh_strerror(status));
        }
        session_set_outcome(s, OUT_ABORTED, "tunnel");
    }
    s->handles = 1; /* the tunnel closed both */
    session_free_if_closed(s);
}

/* MODE_SWITCHING: once the upstream is connected and nothing is queued
 * either way, the queues are closed and a bh_tunnel takes both sockets, the
 * parser's tail (bytes behind the marker) and any reply bytes read. */
void session_try_tunnel(session *s)
{
    cr_proxy *px = s->px;
    struct bh_writeq_stats up, down;
    if (s->mode != MODE_SWITCHING || !s->connected || s->back_eof || s->held.len > 0 ||
        s->held_back.len > 0)
        return;
    bh_writeq_stats(&s->to_up, &up);
    bh_writeq_stats(&s->to_client, &down);
    if (up.queued_items > 0 || down.queued_items > 0)
        return;
    /* The session's readers (and their timers) are done: the tunnel reads
     * both sockets with its own, under the session's idle timeout. */
    bh_reader_close(&s->in_reader);
    bh_reader_close(&s->back_reader);
    bh_writeq_close(&s->to_up);
    bh_writeq_close(&s->to_client);
    bh_tunnel_config tc = bh_tunnel_config_default();
    tc.read_reserve = px->cfg.read_reserve;
    tc.max_bytes = px->cfg.write_budget;
    tc.idle_timeout_ms = px->cfg.idle_timeout_ms;
    int rc = bh_tunnel_start(&s->tunnel, px->loop, (uv_stream_t *)&s->client,
                             (uv_stream_t *)&s->upstream, &s->in, &s->back, &tc, on_tunnel_done, s);
    if (rc != 0) {
        session_fail(s, "tunnel start", rc);
        return;
    }
    s->mode = MODE_TUNNEL;
}

/* Opens the session's upstream connection. Slices may be queued at once:
 * libuv keeps writes on a connecting TCP handle until the connection is up
 * (uv_try_write reports UV_EAGAIN meanwhile, so the queue uses uv_write). */
static int open_upstream(session *s, const cr_dest *d)
{
    cr_proxy *px = s->px;
    int rc = uv_tcp_init(px->loop, &s->upstream);
    if (rc != 0)
        return rc;
    s->has_upstream = 1;
    s->handles++;
    s->dest = d;
    bh_buf_init(&s->back, px->cfg.read_reserve);
    bh_reader_init(&s->back_reader, (uv_stream_t *)&s->upstream, &s->back, px->cfg.read_reserve,
                   session_on_upstream_read, s);
    bh_writeq_init(&s->to_up, px->loop, (uv_stream_t *)&s->upstream, &px->wcfg);
    bh_writeq_set_drain_cb(&s->to_up, px->cfg.write_budget / 2, on_up_drain, s);
    /* Idle: the destination stops reading what is queued for it (its reply
     * is awaited under the same timeout once the client has ended). */
    if (px->cfg.idle_timeout_ms > 0 &&
        (rc = bh_writeq_set_stall_timeout(&s->to_up, px->cfg.idle_timeout_ms)) != BH_OK)
        return rc;
    s->connect_req.data = s;
    rc = uv_tcp_connect(&s->connect_req, &s->upstream, (const struct sockaddr *)&d->addr,
                        session_on_connect);
    if (rc != 0)
        return rc;
    uv_tcp_nodelay(&s->upstream, 1);
    if (px->cfg.upstream_sndbuf > 0) {
        int v = px->cfg.upstream_sndbuf;
        uv_send_buffer_size((uv_handle_t *)&s->upstream, &v);
    }
    return 0;
}

/* open_upstream(), ending the session when it fails: out of memory is the
 * proxy's own failure (logged), anything else is answered with an ERR line.
 * Returns 0 or -1 (the session is ending). */
int session_start_upstream(session *s, const cr_dest *d)
{
    int rc = open_upstream(s, d);
    if (rc == BH_ENOMEM)
        session_fail(s, "upstream", rc);
    else if (rc != 0)
        session_reject(s, "upstream unavailable", "ERR upstream unavailable\n");
    return rc == 0 ? 0 : -1;
}

/* Until the first token is complete, the client's read timeout is the time
 * left to the header deadline, so that reads do not extend it (slowloris);
 * from then on it is the idle timeout. */
int session_timeout_update(session *s)
{
    cr_proxy *px = s->px;
    uint64_t ms = px->cfg.idle_timeout_ms;
    if (!s->header_done && s->mode == MODE_ROUTING && px->cfg.header_timeout_ms > 0) {
        uint64_t now = uv_now(px->loop);
        ms = s->header_deadline > now ? s->header_deadline - now : 1;
    }
    return bh_reader_set_idle_timeout(&s->in_reader, ms);
}

/* Moves every complete token from the client buffer to the upstream queue,
 * or in tunnel mode everything buffered. Stops at the first refusal. */
static void pump_in(session *s)
{
    cr_proxy *px = s->px;

    if (s->held.len > 0) {
        bh_bytes slice = s->held;
        s->held = (bh_bytes){0};
        if (send_up(s, &slice) != 0)
            return;
    }
    while (s->mode == MODE_ROUTING) {
        cr_token t;
        switch (cr_parser_peek(&s->parser, &s->in, &t)) {
        case CR_TOK_NEED_MORE:
            return;
        case CR_TOK_ROUTE: {
            if (s->dest) {
                session_reject(s, "second ROUTE", "ERR route already set\n");
                return;
            }
            const cr_dest *d = find_dest(px, t.name, t.name_len);
            if (!d) {
                session_reject(s, "unknown destination", "ERR unknown destination %.*s\n", (int)t.name_len,
                       (const char *)t.name);
                return;
            }
            if (session_start_upstream(s, d) != 0)
                return;
            break;
        }
        case CR_TOK_FRAME:
            if (!s->dest) {
                session_reject(s, "frame before ROUTE", "ERR no route\n");
                return;
            }
            px->st.frames++;
            break;
        case CR_TOK_TUNNEL:
            if (!s->dest) {
                session_reject(s, "TUNNEL before ROUTE", "ERR no route\n");
                return;
            }
            /* No more client reads here; both drain callbacks now run when
             * their queue is empty (set before queueing the marker, which
             * arms the callback). */
            s->mode = MODE_SWITCHING;
            bh_reader_stop(&s->in_reader);
            bh_writeq_set_drain_cb(&s->to_up, 0, on_up_drain, s);
            bh_writeq_set_drain_cb(&s->to_client, 0, session_on_client_drain, s);
            break;
        case CR_TOK_LINE_TOO_LONG:
            session_reject(s, "header too long", "ERR header too long\n");
            return;
        case CR_TOK_FRAME_TOO_LONG:
            session_reject(s, "frame too long", "ERR frame too long\n");
            return;
        case CR_TOK_BAD_HEADER:
            session_reject(s, "bad header", "ERR bad header\n");
            return;
        }
        /* The destination receives the client's stream unchanged: each
         * token is handed over as its own slice of the read buffer. */
        bh_bytes slice;
        bh_buf_split_prefix(&s->in, t.wire_len, &slice); /* complete: in range */
        cr_parser_consumed(&s->parser);
        s->header_done = 1;
        if (send_up(s, &slice) != 0)
            return;
    }
    session_try_tunnel(s);
}

static void on_up_shutdown(bh_writeq *q, int status, void *ctx)
{
    (void)q;
    if (!session_shutdown_done(ctx, T_UP_SHUT))
        return;
    session *s = ctx;
    if (status < 0)
        session_end(s, OUT_ABORTED, "upstream shutdown failed");
    else
        s->up_shut = 1;
}

void session_on_client_read(bh_reader *r, int status, void *ctx)
{
    session *s = ctx;
    (void)r;
    if (status == BH_OK) {
        if (s->mode == MODE_REJECTING) {
            s->discarded += bh_buf_len(&s->in);
            bh_buf_advance(&s->in, bh_buf_len(&s->in));
            if (s->discarded > DISCARD_LIMIT)
                session_close_client(s);
            return;
        }
        int header_was_done = s->header_done;
        pump_in(s);
        if (!header_was_done && !s->client_closing) {
            int rc = session_timeout_update(s);
            if (rc != BH_OK)
                session_fail(s, "client timer", rc);
        }
        return;
    }
    s->in_done = 1;
    if (status == UV_ETIMEDOUT) {
        int header = !s->header_done && s->mode == MODE_ROUTING;
        if (header)
            s->px->st.header_timeouts++;
        else
            s->px->st.idle_timeouts++;
        session_end(s, OUT_ABORTED, header ? "header timeout" : "client idle timeout");
        return;
    }
    if (s->mode == MODE_REJECTING) {
        if (s->out_done || status != UV_EOF)
            session_close_client(s);
        return;
    }
    if (status != UV_EOF) {
        session_fail(s, "client read", status);
        return;
    }
    if (s->mode == MODE_ROUTING && bh_buf_len(&s->in) > 0) {
        session_end(s, OUT_ABORTED, "EOF inside a frame");
        return;
    }
    if (!s->has_upstream) {
        session_end(s, OUT_COMPLETED, "EOF before ROUTE");
        return;
    }
    if (bh_writeq_shutdown(&s->to_up, on_up_shutdown, s) != BH_OK) {
        session_end(s, OUT_ABORTED, "upstream shutdown refused");
        return;
    }
    cr_ticket_issue(&s->px->st.tickets, &s->tickets, T_UP_SHUT);
    /* Now the destination owes the reply: it may not stay silent longer. */
    int rc = s->px->cfg.idle_timeout_ms > 0
                 ? bh_reader_set_idle_timeout(&s->back_reader, s->px->cfg.idle_timeout_ms)
                 : BH_OK;
    if (rc != BH_OK)
        session_fail(s, "upstream timer", rc);
}

void on_up_drain(bh_writeq *q, void *ctx)
{
    session *s = ctx;
    (void)q;
    if (s->upstream_closing || s->client_closing || s->mode == MODE_REJECTING ||
        s->mode == MODE_TUNNEL)
        return;
    pump_in(s);
    if (s->held.len == 0 && !s->in_done && s->mode == MODE_ROUTING && !s->client_closing)
        bh_reader_start(&s->in_reader);
}

