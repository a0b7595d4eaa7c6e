/* session.c - ending a content_routing proxy session (completed, rejected
 * with an ERR line, or aborted) and the upstream -> client direction of the
 * routing phase (see proxy.c). */
#include "proxy_internal.h"
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- ending a session ---------------------------------------------------- */

void session_free_if_closed(session *s)
{
    if (--s->handles > 0)
        return;
    cr_proxy *px = s->px;
    bh_buf_free(&s->in);
    bh_buf_free(&s->back);
    switch (s->outcome) {
    case OUT_COMPLETED:
        px->st.completed++;
        break;
    case OUT_REJECTED:
        px->st.rejected++;
        break;
    default:
        px->st.aborted++;
        break;
    }
    if (px->cfg.verbose)
        log_msg(LOG_LEVEL_INFO, s->id, (const struct sockaddr *)&s->peer, "session %s%s%s%s%s",
                s->outcome == OUT_COMPLETED  ? "completed"
                : s->outcome == OUT_REJECTED ? "rejected"
                                             : "aborted",
                s->reason ? ": " : "", s->reason ? s->reason : "", s->err ? ": " : "",
                s->err ? bh_err_name(s->err) : "");
    if (s->prev)
        s->prev->next = s->next;
    else
        px->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    px->st.live--;
    cr_ticket_free(&px->st.tickets, s->tickets);
    free(s);
    /* The last session is gone: unless another comes soon, give cached
     * blocks and free heap back. */
    if (px->st.live == 0)
        idle_trim_idle(&px->trim);
}

static void on_client_closed(uv_handle_t *h) { session_free_if_closed(SESSION_OF(h, client)); }
static void on_upstream_closed(uv_handle_t *h) { session_free_if_closed(SESSION_OF(h, upstream)); }

void session_set_outcome(session *s, enum outcome o, const char *reason)
{
    if (s->outcome != OUT_NONE)
        return;
    s->outcome = o;
    s->reason = reason;
}

/* Closes the upstream side; reset sends RST so the destination can tell an
 * aborted stream from a complete one. Idempotent. */
static void close_upstream(session *s, int reset)
{
    if (!s->has_upstream || s->upstream_closing)
        return;
    s->upstream_closing = 1;
    bh_reader_close(&s->back_reader);
    bh_writeq_close(&s->to_up);
    bh_bytes_release(&s->held);
    if (reset && uv_tcp_close_reset(&s->upstream, on_upstream_closed) == 0)
        return;
    uv_close((uv_handle_t *)&s->upstream, on_upstream_closed);
}

void session_close_client(session *s)
{
    if (s->client_closing)
        return;
    s->client_closing = 1;
    bh_reader_close(&s->in_reader);
    bh_writeq_close(&s->to_client);
    bh_bytes_release(&s->held_back);
    uv_close((uv_handle_t *)&s->client, on_client_closed);
}

void session_end(session *s, enum outcome o, const char *reason)
{
    if (s->mode == MODE_TUNNEL) {
        /* The tunnel closes both sockets (with an RST) and reports. */
        session_set_outcome(s, o, reason);
        bh_tunnel_abort(&s->tunnel);
        return;
    }
    session_set_outcome(s, o, reason);
    close_upstream(s, s->outcome != OUT_COMPLETED);
    session_close_client(s);
}

/* Aborts the session because of status err (a bh or libuv code) at `where`.
 * Running out of memory is always logged: it is the one failure that is the
 * proxy's own, and the client only sees its connection closed. */
void session_fail(session *s, const char *where, int err)
{
    if (s->outcome == OUT_NONE) {
        s->err = err;
        if (err == BH_ENOMEM) {
            s->px->st.enomem++;
            log_msg(LOG_LEVEL_ERROR, s->id, (const struct sockaddr *)&s->peer,
                    "%s: %s (%s); closing the connection", where, bh_err_name(err),
                    bh_strerror(err));
        }
    }
    session_end(s, OUT_ABORTED, where);
}

static void on_err_line_written(bh_writeq *q, int status, void *ctx)
{
    session *s = ctx;
    (void)q;
    (void)status; /* a failure also fails the shutdown, which decides */
    cr_ticket_done(&s->px->st.tickets, &s->tickets, T_ERR_LINE);
}

static void on_reject_flushed(bh_writeq *q, int status, void *ctx)
{
    session *s = ctx;
    (void)q;
    cr_ticket_done(&s->px->st.tickets, &s->tickets, T_REJECT_SHUT);
    s->out_done = 1;
    if (status < 0 || s->in_done)
        session_close_client(s);
}

/* Answers the client with one ERR line, shuts its write side down and
 * discards its input until EOF (closing with unread input would reset the
 * connection and could destroy the ERR line in flight). */
void session_reject(session *s, const char *reason, const char *fmt, ...)
{
    char msg[CR_MAX_NAME + 64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof msg)
        n = (int)sizeof msg - 1;

    bh_bytes line;
    int rc = bh_bytes_copy(&line, msg, (size_t)n);
    if (rc != BH_OK) {
        session_fail(s, "ERR line", rc);
        return;
    }
    rc = bh_writeq_try_write(&s->to_client, &line, on_err_line_written, s);
    if (rc != BH_OK) {
        bh_bytes_release(&line);
        session_fail(s, "queue ERR line", rc);
        return;
    }
    cr_ticket_issue(&s->px->st.tickets, &s->tickets, T_ERR_LINE);
    session_set_outcome(s, OUT_REJECTED, reason);
    s->mode = MODE_REJECTING;
    close_upstream(s, 1);
    s->discarded += bh_buf_len(&s->in);
    bh_buf_advance(&s->in, bh_buf_len(&s->in));
    cr_parser_consumed(&s->parser);
    if (bh_writeq_shutdown(&s->to_client, on_reject_flushed, s) != BH_OK) {
        session_close_client(s);
        return;
    }
    cr_ticket_issue(&s->px->st.tickets, &s->tickets, T_REJECT_SHUT);
    if (!s->in_done && bh_reader_start(&s->in_reader) != BH_OK)
        s->in_done = 1;
    if (s->in_done && s->out_done)
        session_close_client(s);
}

/* ---- upstream -> client -------------------------------------------------- */

static int send_down(session *s, bh_bytes *slice)
{
    size_t len = slice->len;
    int rc = bh_writeq_try_write_ff(&s->to_client, slice);
    if (rc == BH_OK) {
        s->px->st.bytes_down += len;
        return 0;
    }
    if (rc == BH_EFULL) {
        s->held_back = *slice;
        *slice = (bh_bytes){0};
        s->px->st.pauses++;
        bh_reader_stop(&s->back_reader);
        return 1;
    }
    bh_bytes_release(slice);
    session_fail(s, "queue to client", rc);
    return -1;
}

void session_on_connect(uv_connect_t *req, int status)
{
    session *s = req->data;
    if (s->upstream_closing)
        return;
    if (status < 0) {
        session_reject(s, "upstream unavailable", "ERR upstream unavailable\n");
        return;
    }
    s->connected = 1;
    if (bh_reader_start(&s->back_reader) != BH_OK) {
        session_end(s, OUT_ABORTED, "upstream read failed");
        return;
    }
    session_try_tunnel(s);
}

int session_shutdown_done(session *s, unsigned ticket)
{
    cr_ticket_done(&s->px->st.tickets, &s->tickets, ticket);
    return !(ticket == T_UP_SHUT ? s->upstream_closing : s->client_closing);
}

static void on_client_flushed(bh_writeq *q, int status, void *ctx)
{
    (void)q;
    if (!session_shutdown_done(ctx, T_CLIENT_SHUT))
        return;
    session *s = ctx;
    if (status == 0 && s->in_done && s->up_shut)
        session_end(s, OUT_COMPLETED, NULL);
    else
        session_end(s, OUT_ABORTED, "upstream ended first");
}

void session_on_upstream_read(bh_reader *r, int status, void *ctx)
{
    session *s = ctx;
    (void)r;
    if (status == BH_OK) {
        bh_bytes slice;
        bh_buf_freeze(&s->back, &slice);
        send_down(s, &slice);
        return;
    }
    if (status == UV_EOF) {
        s->back_eof = 1;
        if (bh_writeq_shutdown(&s->to_client, on_client_flushed, s) != BH_OK)
            session_end(s, OUT_ABORTED, "client shutdown refused");
        else
            cr_ticket_issue(&s->px->st.tickets, &s->tickets, T_CLIENT_SHUT);
        return;
    }
    if (status == UV_ETIMEDOUT) {
        s->px->st.idle_timeouts++;
        session_end(s, OUT_ABORTED, "upstream idle timeout");
        return;
    }
    session_fail(s, "upstream read", status);
}

void session_on_client_drain(bh_writeq *q, void *ctx)
{
    session *s = ctx;
    (void)q;
    if (s->client_closing || s->upstream_closing || s->mode == MODE_TUNNEL)
        return;
    if (s->held_back.len > 0) {
        bh_bytes slice = s->held_back;
        s->held_back = (bh_bytes){0};
        if (send_down(s, &slice) != 0)
            return;
        bh_reader_start(&s->back_reader);
    }
    session_try_tunnel(s);
}

