/* proxy.c - the content_routing proxy: one session per client connection,
 * each with its own upstream connection to the destination its ROUTE line
 * names (see examples/content_routing.c for the protocol).
 *
 * Routing phase, two directions, each a bh_reader into a bh_buf feeding a
 * bh_writeq on the other socket:
 *   client --in/in_reader--> parser --split_prefix--> to_up --> upstream
 *   upstream --back/back_reader--> freeze --> to_client --> client
 * Route frames are peeked without consuming until complete, then split off
 * the buffer as owned slices (no copy) and queued. At "TUNNEL\n" the client
 * is no longer read; once the upstream is connected and both queues have
 * drained (drain callbacks at 0 bytes), the queues are closed and a
 * bh_tunnel relays the rest both ways, starting with the bytes already read
 * behind the marker (the parser's tail) and any reply bytes read: it handles
 * backpressure, half-close and resets (an RST from one side is passed on as
 * an RST, also when libuv reports it as EOF) and closes both sockets.
 *
 * Backpressure: a slice the queue refuses with BH_EFULL is kept in `held`,
 * reading stops, and the queue's drain callback queues it and resumes. So a
 * session holds at most one read buffer (max_token or read_reserve bytes),
 * one held slice and a write budget per direction.
 *
 * Ending: a session ends completed (client EOF, upstream flushed and shut
 * down, upstream reply forwarded, client shut down; in tunnel mode: the
 * tunnel ended with status 0), rejected (an ERR line is
 * written, the client's write side shut down, its input discarded until EOF)
 * or aborted (a socket failed, input ended inside a frame, or the proxy is
 * stopping: the upstream is reset rather than closed, see the caveat in
 * content_routing.c). The session is freed when its last handle is closed. */
#include "content_routing.h"

#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DISCARD_LIMIT ((uint64_t)1 << 20) /* input discarded after an ERR */
#define LISTEN_BACKLOG 1024
#define ACCEPT_RETRY_MS 100 /* while descriptors are exhausted */

/* Completion callbacks a session registers (bits of session.tickets). */
enum { T_UP_SHUT = 1u, T_CLIENT_SHUT = 2u, T_ERR_LINE = 4u, T_REJECT_SHUT = 8u };

enum mode { MODE_ROUTING, MODE_SWITCHING, MODE_TUNNEL, MODE_REJECTING };
enum outcome { OUT_NONE, OUT_COMPLETED, OUT_REJECTED, OUT_ABORTED };

typedef struct session session;

struct cr_proxy {
    uv_loop_t *loop;
    cr_proxy_config cfg;
    bh_writeq_config wcfg;
    size_t in_max; /* max_len of a session's client buffer */
    uv_tcp_t listener;
    int listener_open;
    uv_timer_t accept_retry; /* re-tries the connection libuv holds for us */
    int accept_paused;       /* descriptors exhausted: one connection held */
    uint64_t refused;        /* accept attempts refused in this episode */
    session *sessions;
    uint64_t next_id;
    struct cr_proxy_stats st;
};

struct session {
    cr_proxy *px;
    session *prev, *next;
    uint64_t id;
    uv_tcp_t client;
    uv_tcp_t upstream;
    uv_connect_t connect_req;
    bh_buf in; /* client input */
    bh_reader in_reader;
    bh_writeq to_up;
    bh_buf back; /* upstream input */
    bh_reader back_reader;
    bh_writeq to_client;
    cr_parser parser;
    bh_bytes held;      /* slice refused by to_up, queued from its drain callback */
    bh_bytes held_back; /* slice refused by to_client */
    bh_tunnel tunnel;   /* MODE_TUNNEL: owns both handles until on_tunnel_done */
    const cr_dest *dest;
    enum mode mode;
    enum outcome outcome;
    const char *reason;
    int err;          /* status that aborted the session, 0 if none */
    unsigned tickets; /* outstanding completion callbacks (T_* bits) */
    int handles; /* open uv handles */
    int has_upstream, upstream_closing, client_closing, connected;
    int in_done;  /* client input ended */
    int back_eof; /* upstream input ended (before any tunnel) */
    int up_shut;  /* upstream write side shut down after a flush */
    int out_done; /* rejecting: the ERR line was flushed */
    int header_done; /* the first token is complete: idle timeout from here */
    uint64_t header_deadline; /* loop time by which it must be */
    uint64_t discarded;
};

#define SESSION_OF(ptr, field) ((session *)(void *)((char *)(ptr) - offsetof(session, field)))

void cr_proxy_config_default(cr_proxy_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->default_dest = -1;
    cfg->read_reserve = BH_READ_RESERVE_DEFAULT;
    cfg->write_budget = (size_t)256 * 1024;
    cfg->max_line = 1024;
    cfg->max_frame = (size_t)64 * 1024;
    cfg->header_timeout_ms = 10 * 1000;
    cfg->idle_timeout_ms = 300 * 1000;
}

static size_t in_max_len(const cr_proxy_config *cfg)
{
    cr_parser p;
    cr_parser_init(&p, cfg->max_line, cfg->max_frame, cfg->line_frames);
    size_t t = cr_parser_max_token(&p);
    return t > cfg->read_reserve ? t : cfg->read_reserve;
}

int cr_proxy_config_check(const cr_proxy_config *cfg, char *err, size_t n)
{
    if (cfg->ndests == 0) {
        snprintf(err, n, "no destination (--dest NAME=IPV4:PORT or --upstream IPV4:PORT)");
        return -1;
    }
    if (cfg->max_line < 16 || cfg->max_line > ((size_t)1 << 20)) {
        snprintf(err, n, "--max-line must be in [16, 1 MiB]");
        return -1;
    }
    if (cfg->max_frame > ((size_t)1 << 30)) {
        snprintf(err, n, "--max-frame must be at most 1 GiB");
        return -1;
    }
    if (cfg->read_reserve == 0 || cfg->read_reserve > ((size_t)1 << 30)) {
        snprintf(err, n, "--read-reserve must be in [1, 1 GiB]");
        return -1;
    }
    /* A refused slice (at most one buffer's worth) is retried once the
     * queue has drained to write_budget / 2, so it must fit in the rest. */
    size_t need = in_max_len(cfg);
    if (cfg->write_budget - cfg->write_budget / 2 < need) {
        snprintf(err, n,
                 "--write-budget %zu too small: must be at least 2 x %zu "
                 "(max(max_line + 1 + max_frame, read_reserve))",
                 cfg->write_budget, need);
        return -1;
    }
    return 0;
}

/* ---- ending a session ---------------------------------------------------- */

static void session_free_if_closed(session *s)
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
        fprintf(stderr, "proxy: session %llu %s%s%s%s%s\n", (unsigned long long)s->id,
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
    /* The last session is gone: give cached blocks and free heap back. */
    if (px->st.live == 0)
        bh_trim();
}

static void on_client_closed(uv_handle_t *h) { session_free_if_closed(SESSION_OF(h, client)); }
static void on_upstream_closed(uv_handle_t *h) { session_free_if_closed(SESSION_OF(h, upstream)); }

static void set_outcome(session *s, enum outcome o, const char *reason)
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

static void close_client(session *s)
{
    if (s->client_closing)
        return;
    s->client_closing = 1;
    bh_reader_close(&s->in_reader);
    bh_writeq_close(&s->to_client);
    bh_bytes_release(&s->held_back);
    uv_close((uv_handle_t *)&s->client, on_client_closed);
}

static void session_end(session *s, enum outcome o, const char *reason)
{
    if (s->mode == MODE_TUNNEL) {
        /* The tunnel closes both sockets (with an RST) and reports. */
        set_outcome(s, o, reason);
        bh_tunnel_abort(&s->tunnel);
        return;
    }
    set_outcome(s, o, reason);
    close_upstream(s, s->outcome != OUT_COMPLETED);
    close_client(s);
}

/* Aborts the session because of status err (a bh or libuv code) at `where`.
 * Running out of memory is always logged: it is the one failure that is the
 * proxy's own, and the client only sees its connection closed. */
static void session_fail(session *s, const char *where, int err)
{
    if (s->outcome == OUT_NONE) {
        s->err = err;
        if (err == BH_ENOMEM) {
            s->px->st.enomem++;
            fprintf(stderr, "proxy: session %llu: %s: %s (%s); closing the connection\n",
                    (unsigned long long)s->id, where, bh_err_name(err), bh_strerror(err));
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
        close_client(s);
}

/* Answers the client with one ERR line, shuts its write side down and
 * discards its input until EOF (closing with unread input would reset the
 * connection and could destroy the ERR line in flight). */
static void reject(session *s, const char *reason, const char *fmt, ...)
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
    set_outcome(s, OUT_REJECTED, reason);
    s->mode = MODE_REJECTING;
    close_upstream(s, 1);
    s->discarded += bh_buf_len(&s->in);
    bh_buf_advance(&s->in, bh_buf_len(&s->in));
    cr_parser_consumed(&s->parser);
    if (bh_writeq_shutdown(&s->to_client, on_reject_flushed, s) != BH_OK) {
        close_client(s);
        return;
    }
    cr_ticket_issue(&s->px->st.tickets, &s->tickets, T_REJECT_SHUT);
    if (!s->in_done && bh_reader_start(&s->in_reader) != BH_OK)
        s->in_done = 1;
    if (s->in_done && s->out_done)
        close_client(s);
}

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

static void on_connect(uv_connect_t *req, int status);
static void on_upstream_read(bh_reader *r, int status, void *ctx);
static void on_up_drain(bh_writeq *q, void *ctx);
static void on_client_drain(bh_writeq *q, void *ctx);

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
        set_outcome(s, OUT_COMPLETED, NULL);
    } else if (s->outcome == OUT_NONE) {
        s->err = status;
        if (status == BH_ENOMEM) {
            px->st.enomem++;
            fprintf(stderr, "proxy: session %llu: tunnel: %s (%s); closing the connection\n",
                    (unsigned long long)s->id, bh_err_name(status), bh_strerror(status));
        }
        set_outcome(s, OUT_ABORTED, "tunnel");
    }
    s->handles = 1; /* the tunnel closed both */
    session_free_if_closed(s);
}

/* MODE_SWITCHING: once the upstream is connected and nothing is queued
 * either way, the queues are closed and a bh_tunnel takes both sockets, the
 * parser's tail (bytes behind the marker) and any reply bytes read. */
static void try_tunnel(session *s)
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
                   on_upstream_read, s);
    bh_writeq_init(&s->to_up, px->loop, (uv_stream_t *)&s->upstream, &px->wcfg);
    bh_writeq_set_drain_cb(&s->to_up, px->cfg.write_budget / 2, on_up_drain, s);
    /* Idle: the destination stops reading what is queued for it (its reply
     * is awaited under the same timeout once the client has ended). */
    if (px->cfg.idle_timeout_ms > 0 &&
        (rc = bh_writeq_set_stall_timeout(&s->to_up, px->cfg.idle_timeout_ms)) != BH_OK)
        return rc;
    s->connect_req.data = s;
    rc = uv_tcp_connect(&s->connect_req, &s->upstream, (const struct sockaddr *)&d->addr,
                        on_connect);
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
static int start_upstream(session *s, const cr_dest *d)
{
    int rc = open_upstream(s, d);
    if (rc == BH_ENOMEM)
        session_fail(s, "upstream", rc);
    else if (rc != 0)
        reject(s, "upstream unavailable", "ERR upstream unavailable\n");
    return rc == 0 ? 0 : -1;
}

/* Until the first token is complete, the client's read timeout is the time
 * left to the header deadline, so that reads do not extend it (slowloris);
 * from then on it is the idle timeout. */
static int client_timeout_update(session *s)
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
                reject(s, "second ROUTE", "ERR route already set\n");
                return;
            }
            const cr_dest *d = find_dest(px, t.name, t.name_len);
            if (!d) {
                reject(s, "unknown destination", "ERR unknown destination %.*s\n", (int)t.name_len,
                       (const char *)t.name);
                return;
            }
            if (start_upstream(s, d) != 0)
                return;
            break;
        }
        case CR_TOK_FRAME:
            if (!s->dest) {
                reject(s, "frame before ROUTE", "ERR no route\n");
                return;
            }
            px->st.frames++;
            break;
        case CR_TOK_TUNNEL:
            if (!s->dest) {
                reject(s, "TUNNEL before ROUTE", "ERR no route\n");
                return;
            }
            /* No more client reads here; both drain callbacks now run when
             * their queue is empty (set before queueing the marker, which
             * arms the callback). */
            s->mode = MODE_SWITCHING;
            bh_reader_stop(&s->in_reader);
            bh_writeq_set_drain_cb(&s->to_up, 0, on_up_drain, s);
            bh_writeq_set_drain_cb(&s->to_client, 0, on_client_drain, s);
            break;
        case CR_TOK_LINE_TOO_LONG:
            reject(s, "header too long", "ERR header too long\n");
            return;
        case CR_TOK_FRAME_TOO_LONG:
            reject(s, "frame too long", "ERR frame too long\n");
            return;
        case CR_TOK_BAD_HEADER:
            reject(s, "bad header", "ERR bad header\n");
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
    try_tunnel(s);
}

static void on_up_shutdown(bh_writeq *q, int status, void *ctx)
{
    session *s = ctx;
    (void)q;
    cr_ticket_done(&s->px->st.tickets, &s->tickets, T_UP_SHUT);
    if (s->upstream_closing)
        return;
    if (status < 0) {
        session_end(s, OUT_ABORTED, "upstream shutdown failed");
        return;
    }
    s->up_shut = 1;
}

static void on_client_read(bh_reader *r, int status, void *ctx)
{
    session *s = ctx;
    (void)r;
    if (status == BH_OK) {
        if (s->mode == MODE_REJECTING) {
            s->discarded += bh_buf_len(&s->in);
            bh_buf_advance(&s->in, bh_buf_len(&s->in));
            if (s->discarded > DISCARD_LIMIT)
                close_client(s);
            return;
        }
        int header_was_done = s->header_done;
        pump_in(s);
        if (!header_was_done && !s->client_closing) {
            int rc = client_timeout_update(s);
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
            close_client(s);
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

static void on_up_drain(bh_writeq *q, void *ctx)
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

static void on_connect(uv_connect_t *req, int status)
{
    session *s = req->data;
    if (s->upstream_closing)
        return;
    if (status < 0) {
        reject(s, "upstream unavailable", "ERR upstream unavailable\n");
        return;
    }
    s->connected = 1;
    if (bh_reader_start(&s->back_reader) != BH_OK) {
        session_end(s, OUT_ABORTED, "upstream read failed");
        return;
    }
    try_tunnel(s);
}

static void on_client_flushed(bh_writeq *q, int status, void *ctx)
{
    session *s = ctx;
    (void)q;
    cr_ticket_done(&s->px->st.tickets, &s->tickets, T_CLIENT_SHUT);
    if (s->client_closing)
        return;
    if (status == 0 && s->in_done && s->up_shut)
        session_end(s, OUT_COMPLETED, NULL);
    else
        session_end(s, OUT_ABORTED, "upstream ended first");
}

static void on_upstream_read(bh_reader *r, int status, void *ctx)
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

static void on_client_drain(bh_writeq *q, void *ctx)
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
    try_tunnel(s);
}

/* ---- listener ------------------------------------------------------------ */

/* ---- accepting under descriptor exhaustion -------------------------------
 * A session needs a descriptor for its upstream, and libuv's next accept()
 * one more: if accept() itself fails for lack of descriptors, libuv accepts
 * and closes every waiting connection (its reserve-descriptor trick). So the
 * proxy checks that two descriptors are free before it takes a connection.
 * When they are not, it leaves the connection libuv just accepted with libuv,
 * which then stops polling the listener (the backlog waits in the kernel,
 * the sessions already open go on), and retries every ACCEPT_RETRY_MS. One
 * line is logged when such an episode starts and one when it ends (once the
 * backlog has been worked off). Sessions routed later (ROUTE lines) open
 * their upstream after the check; one that finds no descriptor is answered
 * "ERR upstream unavailable". */

static void on_accept_retry(uv_timer_t *t);

/* 1 when n (at most 2) more descriptors can be opened now. */
static int fds_free(cr_proxy *px, int n)
{
    uv_os_fd_t lfd;
    int fds[2], got = 0;
    if (uv_fileno((uv_handle_t *)&px->listener, &lfd) != 0)
        return 1;
    while (got < n && (fds[got] = fcntl(lfd, F_DUPFD_CLOEXEC, 0)) >= 0)
        got++;
    for (int i = 0; i < got; i++)
        close(fds[i]);
    return got == n;
}

static void accept_pause(cr_proxy *px)
{
    px->refused++;
    uv_timer_start(&px->accept_retry, on_accept_retry, ACCEPT_RETRY_MS, 0);
    if (px->accept_paused)
        return;
    px->accept_paused = 1;
    px->st.fd_episodes++;
    fprintf(stderr,
            "proxy: out of descriptors (%llu sessions open): pausing accepts, retrying every "
            "%d ms (episode %llu)\n",
            (unsigned long long)px->st.live, ACCEPT_RETRY_MS,
            (unsigned long long)px->st.fd_episodes);
}

/* A connection was taken: the episode ends once no other one waits. */
static void accept_served(cr_proxy *px)
{
    uv_os_fd_t lfd;
    if (!px->accept_paused || uv_fileno((uv_handle_t *)&px->listener, &lfd) != 0)
        return;
    struct pollfd pf = {.fd = lfd, .events = POLLIN};
    if (poll(&pf, 1, 0) != 0)
        return;
    fprintf(stderr, "proxy: accepting again after %llu refused attempts (episode %llu)\n",
            (unsigned long long)px->refused, (unsigned long long)px->st.fd_episodes);
    px->accept_paused = 0;
    px->refused = 0;
}

static void on_accept(uv_stream_t *server, int status)
{
    cr_proxy *px = server->data;
    if (status < 0)
        return;
    if (!fds_free(px, 2)) {
        accept_pause(px); /* libuv keeps the connection until uv_accept() */
        return;
    }
    session *s = calloc(1, sizeof *s);
    if (!s)
        return;
    s->px = px;
    s->id = ++px->next_id;
    if (uv_tcp_init(px->loop, &s->client) != 0) {
        free(s);
        return;
    }
    s->handles = 1;
    s->next = px->sessions;
    if (px->sessions)
        px->sessions->prev = s;
    px->sessions = s;
    px->st.live++;
    px->st.accepted++;

    bh_buf_init(&s->in, px->in_max);
    cr_parser_init(&s->parser, px->cfg.max_line, px->cfg.max_frame, px->cfg.line_frames);
    bh_reader_init(&s->in_reader, (uv_stream_t *)&s->client, &s->in, px->cfg.read_reserve,
                   on_client_read, s);
    bh_writeq_init(&s->to_client, px->loop, (uv_stream_t *)&s->client, &px->wcfg);
    bh_writeq_set_drain_cb(&s->to_client, px->cfg.write_budget / 2, on_client_drain, s);
    if (uv_accept(server, (uv_stream_t *)&s->client) != 0) {
        session_end(s, OUT_ABORTED, "accept failed");
        return;
    }
    accept_served(px);
    uv_tcp_nodelay(&s->client, 1);
    s->header_deadline = uv_now(px->loop) + px->cfg.header_timeout_ms;
    int rc = client_timeout_update(s);
    if (rc == BH_OK && px->cfg.idle_timeout_ms > 0)
        rc = bh_writeq_set_stall_timeout(&s->to_client, px->cfg.idle_timeout_ms);
    if (rc != BH_OK) {
        session_fail(s, "client timer", rc);
        return;
    }
    if (px->cfg.default_dest >= 0 && start_upstream(s, &px->cfg.dests[px->cfg.default_dest]) != 0)
        return;
    if (bh_reader_start(&s->in_reader) != BH_OK)
        session_end(s, OUT_ABORTED, "read start failed");
}

static void on_accept_retry(uv_timer_t *t)
{
    cr_proxy *px = t->data;
    on_accept((uv_stream_t *)&px->listener, 0);
}

static void on_listener_closed(uv_handle_t *h)
{
    cr_proxy *px = h->data;
    px->listener_open = 0;
}

int cr_proxy_start(cr_proxy **out, uv_loop_t *loop, const cr_proxy_config *cfg,
                   const struct sockaddr *addr, int *port)
{
    char why[160];
    *out = NULL;
    if (cr_proxy_config_check(cfg, why, sizeof why) != 0)
        return BH_EINVAL;
    cr_proxy *px = calloc(1, sizeof *px);
    if (!px)
        return BH_ENOMEM;
    px->loop = loop;
    px->cfg = *cfg;
    px->wcfg = bh_writeq_config_default();
    px->wcfg.max_bytes = cfg->write_budget;
    px->in_max = in_max_len(cfg);
    int rc = uv_tcp_init(loop, &px->listener);
    if (rc != 0) {
        free(px);
        return rc;
    }
    px->listener_open = 1;
    px->listener.data = px;
    uv_timer_init(loop, &px->accept_retry); /* cannot fail */
    px->accept_retry.data = px;
    rc = uv_tcp_bind(&px->listener, addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&px->listener, LISTEN_BACKLOG, on_accept);
    if (rc != 0) {
        /* The caller runs the loop to let the close callback run. */
        uv_close((uv_handle_t *)&px->listener, on_listener_closed);
        uv_close((uv_handle_t *)&px->accept_retry, NULL);
        *out = px;
        return rc;
    }
    if (port)
        *port = cr_bound_port(&px->listener);
    *out = px;
    return 0;
}

void cr_proxy_get_stats(const cr_proxy *px, struct cr_proxy_stats *out) { *out = px->st; }

void cr_proxy_stop(cr_proxy *px)
{
    if (px->listener_open && !uv_is_closing((uv_handle_t *)&px->listener))
        uv_close((uv_handle_t *)&px->listener, on_listener_closed);
    if (!uv_is_closing((uv_handle_t *)&px->accept_retry))
        uv_close((uv_handle_t *)&px->accept_retry, NULL);
    for (session *s = px->sessions; s; s = s->next)
        session_end(s, OUT_ABORTED, "proxy stopping");
}

void cr_proxy_free(cr_proxy *px)
{
    if (!px)
        return;
    free(px);
}
