/* sink.c - a content_routing destination: accepts the proxy's upstream
 * connections, parses what each delivers (ROUTE line, payload frames,
 * TUNNEL marker, raw tail) with the same parser as the proxy, hashes every
 * byte with FNV-1a 64 and, at EOF, records the result and replies
 * "OK <nbytes> <fnv1a64 as 16 hex digits>\n" (the harness sink reply) before
 * closing. A connection that ends with a read error (the proxy resets the
 * upstream of an aborted session) is counted as aborted, not recorded.
 *
 * For backpressure demos the sink can be slow: pause_ms stops reading for a
 * while after each read, and rcvbuf shrinks the listener's receive buffer
 * (inherited by accepted sockets) so the proxy's queues really fill up. */
#include "rig.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sink_conn sink_conn;

#define LISTEN_BACKLOG 1024

/* Completion callbacks a connection registers (bits of sink_conn.tickets). */
enum { T_REPLY = 1u, T_SHUT = 2u };

struct cr_sink {
    uv_loop_t *loop;
    cr_sink_config cfg;
    char name[CR_MAX_NAME + 1];
    size_t in_max;
    uv_tcp_t listener;
    int listener_open;
    sink_conn *conns;
    size_t live;
    uint64_t aborted;
    uint64_t enomem;
    cr_tickets tickets;
    cr_sink_record *recs;
    size_t nrecs, caprecs;
};

struct sink_conn {
    cr_sink *sk;
    sink_conn *prev, *next;
    uv_tcp_t tcp;
    uv_timer_t pause;
    int handles;
    int closing;
    bh_buf buf;
    bh_reader reader;
    bh_writeq wq;
    cr_parser parser;
    int tunnel; /* past the TUNNEL marker (or a parse error): raw bytes */
    unsigned tickets; /* outstanding completion callbacks (T_* bits) */
    cr_sink_record rec;
};

#define CONN_OF(ptr, field) ((sink_conn *)(void *)((char *)(ptr) - offsetof(sink_conn, field)))

static void conn_release(sink_conn *c)
{
    if (--c->handles > 0)
        return;
    cr_sink *sk = c->sk;
    bh_buf_free(&c->buf);
    if (c->prev)
        c->prev->next = c->next;
    else
        sk->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    sk->live--;
    cr_ticket_free(&sk->tickets, c->tickets);
    free(c);
}

static void on_tcp_closed(uv_handle_t *h) { conn_release(CONN_OF(h, tcp)); }
static void on_timer_closed(uv_handle_t *h) { conn_release(CONN_OF(h, pause)); }

static void conn_close(sink_conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    bh_reader_stop(&c->reader);
    bh_writeq_close(&c->wq);
    uv_close((uv_handle_t *)&c->tcp, on_tcp_closed);
    uv_close((uv_handle_t *)&c->pause, on_timer_closed);
}

static void take(sink_conn *c, size_t n)
{
    c->rec.hash = fnv1a64(c->rec.hash, bh_buf_data(&c->buf), n);
    c->rec.bytes += n;
    bh_buf_advance(&c->buf, n);
}

/* Consumes every complete token, or everything once in raw mode. */
static void consume(sink_conn *c)
{
    while (!c->tunnel) {
        cr_token t;
        cr_token_kind k = cr_parser_peek(&c->parser, &c->buf, &t);
        if (k == CR_TOK_NEED_MORE)
            return;
        switch (k) {
        case CR_TOK_ROUTE:
            if (c->rec.frames == 0 && t.name_len == strlen(c->sk->name) &&
                memcmp(t.name, c->sk->name, t.name_len) == 0)
                c->rec.route_ok = 1;
            else
                c->rec.parse_ok = 0;
            break;
        case CR_TOK_FRAME:
            c->rec.frames++;
            break;
        case CR_TOK_TUNNEL:
            c->tunnel = 1;
            break;
        default: /* malformed: hash the rest as raw bytes */
            c->rec.parse_ok = 0;
            c->tunnel = 1;
            continue;
        }
        take(c, t.wire_len);
        cr_parser_consumed(&c->parser);
    }
    size_t n = bh_buf_len(&c->buf);
    if (c->rec.parse_ok)
        c->rec.tunnel_bytes += n;
    take(c, n);
}

static void on_resume(uv_timer_t *t)
{
    sink_conn *c = CONN_OF(t, pause);
    if (!c->closing)
        bh_reader_start(&c->reader);
}

static void on_reply_written(bh_writeq *q, int status, void *ctx)
{
    sink_conn *c = ctx;
    (void)q;
    (void)status; /* a failure also fails the shutdown, which closes */
    cr_ticket_done(&c->sk->tickets, &c->tickets, T_REPLY);
}

static void on_reply_flushed(bh_writeq *q, int status, void *ctx)
{
    sink_conn *c = ctx;
    (void)q;
    (void)status;
    cr_ticket_done(&c->sk->tickets, &c->tickets, T_SHUT);
    conn_close(c);
}

/* Ends the connection because of err; running out of memory is logged. */
static void conn_fail(sink_conn *c, const char *where, int err)
{
    if (err == BH_ENOMEM) {
        c->sk->enomem++;
        fprintf(stderr, "sink %s: %s: %s (%s); closing the connection\n", c->sk->name, where,
                bh_err_name(err), bh_strerror(err));
    }
    conn_close(c);
}

static void record(sink_conn *c)
{
    cr_sink *sk = c->sk;
    if (sk->nrecs == sk->caprecs) {
        size_t cap = sk->caprecs ? sk->caprecs * 2 : 16;
        cr_sink_record *r = realloc(sk->recs, cap * sizeof *r);
        if (!r)
            return;
        sk->recs = r;
        sk->caprecs = cap;
    }
    sk->recs[sk->nrecs++] = c->rec;
}

static void on_read(bh_reader *r, int status, void *ctx)
{
    sink_conn *c = ctx;
    (void)r;
    if (status == BH_OK) {
        consume(c);
        if (c->sk->cfg.pause_ms > 0) {
            bh_reader_stop(&c->reader);
            uv_timer_start(&c->pause, on_resume, c->sk->cfg.pause_ms, 0);
        }
        return;
    }
    if (status != UV_EOF) {
        c->sk->aborted++;
        conn_fail(c, "read", status);
        return;
    }
    if (bh_buf_len(&c->buf) > 0) { /* ended inside a token */
        c->rec.parse_ok = 0;
        take(c, bh_buf_len(&c->buf));
    }
    record(c);
    char line[64];
    int n = snprintf(line, sizeof line, "OK %llu %016llx\n", (unsigned long long)c->rec.bytes,
                     (unsigned long long)c->rec.hash);
    bh_bytes reply;
    int rc = bh_bytes_copy(&reply, line, (size_t)n);
    if (rc != BH_OK) {
        conn_fail(c, "reply", rc);
        return;
    }
    rc = bh_writeq_try_write(&c->wq, &reply, on_reply_written, c);
    if (rc != BH_OK) {
        bh_bytes_release(&reply);
        conn_fail(c, "queue reply", rc);
        return;
    }
    cr_ticket_issue(&c->sk->tickets, &c->tickets, T_REPLY);
    rc = bh_writeq_shutdown(&c->wq, on_reply_flushed, c);
    if (rc != BH_OK) {
        conn_fail(c, "shutdown", rc);
        return;
    }
    cr_ticket_issue(&c->sk->tickets, &c->tickets, T_SHUT);
}

static void on_accept(uv_stream_t *server, int status)
{
    cr_sink *sk = server->data;
    if (status < 0)
        return;
    sink_conn *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->sk = sk;
    if (uv_tcp_init(sk->loop, &c->tcp) != 0) {
        free(c);
        return;
    }
    uv_timer_init(sk->loop, &c->pause); /* cannot fail on unix */
    c->handles = 2;
    c->next = sk->conns;
    if (sk->conns)
        sk->conns->prev = c;
    sk->conns = c;
    sk->live++;
    c->rec.hash = FNV1A64_OFFSET;
    c->rec.parse_ok = 1;
    bh_buf_init(&c->buf, sk->in_max);
    cr_parser_init(&c->parser, sk->cfg.max_line, sk->cfg.max_frame, 0);
    bh_reader_init(&c->reader, (uv_stream_t *)&c->tcp, &c->buf, sk->cfg.read_reserve, on_read, c);
    bh_writeq_init(&c->wq, sk->loop, (uv_stream_t *)&c->tcp, NULL);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 || bh_reader_start(&c->reader) != BH_OK)
        conn_close(c);
}

static void on_listener_closed(uv_handle_t *h)
{
    cr_sink *sk = h->data;
    sk->listener_open = 0;
}

int cr_sink_start(cr_sink **out, uv_loop_t *loop, const cr_sink_config *cfg,
                  const struct sockaddr *addr, int *port)
{
    *out = NULL;
    if (!cfg->name || strlen(cfg->name) > CR_MAX_NAME)
        return BH_EINVAL;
    cr_sink *sk = calloc(1, sizeof *sk);
    if (!sk)
        return BH_ENOMEM;
    sk->loop = loop;
    sk->cfg = *cfg;
    strcpy(sk->name, cfg->name);
    sk->cfg.name = sk->name;
    if (sk->cfg.read_reserve == 0)
        sk->cfg.read_reserve = BH_READ_RESERVE_DEFAULT;
    cr_parser p;
    cr_parser_init(&p, cfg->max_line, cfg->max_frame, 0);
    sk->in_max = cr_parser_max_token(&p);
    if (sk->in_max < sk->cfg.read_reserve)
        sk->in_max = sk->cfg.read_reserve;
    int rc = uv_tcp_init(loop, &sk->listener);
    if (rc != 0) {
        free(sk);
        return rc;
    }
    sk->listener_open = 1;
    sk->listener.data = sk;
    *out = sk;
    rc = uv_tcp_bind(&sk->listener, addr, 0);
    if (rc == 0 && cfg->rcvbuf > 0) {
        int v = cfg->rcvbuf;
        uv_recv_buffer_size((uv_handle_t *)&sk->listener, &v);
    }
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&sk->listener, LISTEN_BACKLOG, on_accept);
    if (rc != 0) {
        uv_close((uv_handle_t *)&sk->listener, on_listener_closed);
        return rc;
    }
    if (port)
        *port = cr_bound_port(&sk->listener);
    return 0;
}

size_t cr_sink_live(const cr_sink *sk) { return sk->live; }
uint64_t cr_sink_aborted(const cr_sink *sk) { return sk->aborted; }
uint64_t cr_sink_enomem(const cr_sink *sk) { return sk->enomem; }
void cr_sink_tickets(const cr_sink *sk, cr_tickets *out) { *out = sk->tickets; }

cr_sink_record *cr_sink_records(cr_sink *sk, size_t *n)
{
    *n = sk->nrecs;
    return sk->recs;
}

void cr_sink_stop(cr_sink *sk)
{
    if (sk->listener_open && !uv_is_closing((uv_handle_t *)&sk->listener))
        uv_close((uv_handle_t *)&sk->listener, on_listener_closed);
    for (sink_conn *c = sk->conns; c; c = c->next)
        conn_close(c);
}

void cr_sink_free(cr_sink *sk)
{
    if (!sk)
        return;
    free(sk->recs);
    free(sk);
}
