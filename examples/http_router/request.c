/* request.c - http_router's client side: one request at a time per client
 * connection. A head is scanned in the connection's bh_buf as it arrives,
 * parsed strictly, routed, and handed to an upstream connection's bh_writeq
 * as two slices of one writev: the head without its final CRLF (split off
 * the buffer, no copy) and the added lines "X-Forwarded-For" and "Via" with
 * that CRLF; a lone "Connection: close" line is left out (three slices), so
 * the upstream connection goes back to the pool. The body follows as slices of what arrives (Content-Length or
 * chunked, validated, forwarded unchanged); a full upstream queue stops
 * reading the client until it drains. Bytes of pipelined requests wait in
 * the buffer (reading stops once it holds a complete head or is full) until
 * the response to the current one is relayed (response.c). */
#include "http_router.h"

#include <stdio.h>
#include <string.h>

static void on_head_timeout(uv_timer_t *t)
{
    hr_client *c = t->data;
    if (c->timer_idle) {
        hr_client_close(c); /* an idle keep-alive connection */
        return;
    }
    hr_log(c, "408 no complete head in time");
    hr_client_respond(c, 408);
}

/* Waits for the next head: --idle-timeout on a kept-alive connection with
 * nothing buffered, --head-timeout otherwise (req.head_len > 0 once a
 * request was served). */
static void next_request(hr_client *c)
{
    const hr_config *cfg = c->s->cfg;
    c->req_state = REQ_HEAD;
    int idle = c->req.head_len > 0 && bh_buf_len(&c->in) == 0;
    c->timer_idle = idle;
    uv_timer_start(&c->timer, on_head_timeout, idle ? cfg->idle_timeout_ms : cfg->head_timeout_ms,
                   0);
}

/* Scans the buffer for the next head (empty lines before it skipped). */
static int scan(hr_client *c, size_t *head_len)
{
    if (c->scan.pos == 0) {
        size_t skip = hp_leading_crlf(bh_buf_data(&c->in), bh_buf_len(&c->in));
        if (skip)
            bh_buf_advance(&c->in, skip);
        if (bh_buf_len(&c->in) == 1 && bh_buf_data(&c->in)[0] == '\r')
            return HP_MORE;
    }
    size_t max = c->s->cfg->max_head;
    hp_limits lim = {.max_head = max, .max_line = max < 8192 ? max : 8192};
    return hp_scan_head(&c->scan, bh_buf_data(&c->in), bh_buf_len(&c->in), &lim, head_len);
}

/* Queues a slice upstream: 0 queued, 1 held until the queue drains (client
 * reading stopped), -1 the exchange failed. Takes *b. */
static int send_up(hr_client *c, bh_bytes *b)
{
    int rc = bh_writeq_try_write_ff(&c->up->out, b);
    c->up->last_active = uv_now(c->s->loop); /* body progress defers the timeout */
    if (rc == BH_OK)
        return 0;
    if (rc == BH_EFULL) {
        c->held = *b;
        *b = (bh_bytes){0};
        bh_reader_stop(&c->rd);
        return 1;
    }
    bh_bytes_release(b);
    hr_up_fail(c->up, UV_EPIPE);
    return -1;
}

int hr_request_send(hr_client *c, hr_up *up, bh_bytes part[3])
{
    int rc = BH_OK;
    for (int i = 0; i < 3; i++) {
        if (rc == BH_OK && part[i].len)
            rc = bh_writeq_try_write_ff(&up->out, &part[i]);
        bh_bytes_release(&part[i]);
    }
    if (rc != BH_OK) {
        hr_up_fail(up, UV_EPIPE);
        return -1;
    }
    (void)c;
    hr_up_begin(up);
    return 0;
}

void hr_request_forget(hr_client *c)
{
    for (int i = 0; i < 3; i++)
        bh_bytes_release(&c->retry[i]);
}

/* Splits the head off the buffer as slices, no copy: [0, head_len - 2)
 * or, with its Connection line left out, [0, line) and [after line,
 * head_len - 2); the final CRLF is dropped (the added lines end it). */
static void split_head(hr_client *c, bh_bytes *a, bh_bytes *b)
{
    size_t end = c->req.head_len - 2;
    *b = (bh_bytes){0};
    if (c->close_stripped) {
        const hp_span *l = &c->req.conn_line;
        bh_buf_split_prefix(&c->in, l->off, a);
        bh_buf_advance(&c->in, l->len);
        if (end > l->off + l->len)
            bh_buf_split_prefix(&c->in, end - l->off - l->len, b);
    } else {
        bh_buf_split_prefix(&c->in, end, a);
    }
    bh_buf_advance(&c->in, 2);
}

/* The upstream is ready (pooled or just connected): send the head. */
void hr_request_start(hr_client *c)
{
    hr_up *up = c->up;
    bh_bytes part[3];
    char add[128];
    int n = snprintf(add, sizeof add, "X-Forwarded-For: %s\r\nVia: 1.1 http_router\r\n\r\n",
                     c->ip[0] ? c->ip : "unknown");
    if (c->retried && c->retry[0].len) { /* the second try: the same bytes again */
        for (int i = 0; i < 3; i++) {
            part[i] = c->retry[i];
            c->retry[i] = (bh_bytes){0};
        }
    } else {
        if (bh_bytes_copy(&part[2], add, (size_t)n) != BH_OK) {
            hr_client_close(c);
            return;
        }
        split_head(c, &part[0], &part[1]);
        if (up->reused && hp_idempotent(c->method_kind) && c->req_state == REQ_DONE)
            for (int i = 0; i < 3; i++)
                c->retry[i] = bh_bytes_clone(&part[i]);
    }
    c->head_sent = 1;
    if (hr_request_send(c, up, part) != 0)
        return;
    bh_reader_start(&c->rd);
    hr_client_process(c);
}

/* A request head is complete in the buffer: parse, route, find an upstream. */
static void on_head(hr_client *c, size_t head_len)
{
    hr_server *s = c->s;
    uv_timer_stop(&c->timer);
    hp_scan_init(&c->scan);
    int rc = hp_parse_request(bh_buf_data(&c->in), head_len, &c->req);
    if (rc != HP_DONE) {
        hr_log(c, "%d malformed request head", -rc);
        c->keep_alive = 0;
        hr_client_respond(c, -rc);
        return;
    }
    const hp_msg *m = &c->req;
    c->keep_alive = m->minor == 1 ? !(m->conn & HP_CONN_CLOSE)
                                  : (m->conn & HP_CONN_KEEP_ALIVE) && !(m->conn & HP_CONN_CLOSE);
    c->method_kind = m->method_kind;
    c->upgrade = m->has_upgrade && (m->conn & HP_CONN_UPGRADE);
    /* "Connection: close" alone is the client's business: the upstream
     * connection can still be reused (an Upgrade or CONNECT goes as is). */
    c->close_stripped = m->minor == 1 && m->conn_only_close && !m->has_upgrade &&
                        m->method_kind != HP_M_CONNECT;
    c->req_state = m->framing == HP_BODY_NONE ? REQ_DONE : REQ_BODY;
    c->body_left = m->content_length;
    hp_chunked_init(&c->chunk);
    c->retried = 0;
    c->head_sent = 0;
    const char *d = (const char *)bh_buf_data(&c->in);
    const char *path = m->path.len ? d + m->path.off : "/";
    size_t pn = m->path.len ? m->path.len : 1;
    const hr_route *route = hr_table_lookup(s->cfg->table, d + m->host.off, m->host.len, path, pn);
    if (!route) {
        hr_log(c, "404 no route for host '%.*s'", (int)m->host.len,
               d + m->host.off);
        bh_buf_advance(&c->in, head_len);
        hr_client_respond(c, 404);
        if (!c->closing)
            next_request(c);
        return;
    }
    c->route = route;
    hr_up *up = hr_pool_get(s, route);
    if (up) {
        up->reused = 1;
        up->c = c;
        c->up = up;
        hr_request_start(c);
        return;
    }
    up = hr_up_connect(s, route);
    if (!up) {
        hr_client_respond(c, 502);
        return;
    }
    up->c = c;
    c->up = up;
    bh_reader_stop(&c->rd); /* the head and body wait in the buffer meanwhile */
}

/* Forwards the body bytes buffered; returns 1 to go on with the loop. */
static int body(hr_client *c)
{
    size_t len = bh_buf_len(&c->in), n = len;
    if (c->held.len || len == 0)
        return 0;
    int done;
    if (c->req.framing == HP_BODY_LENGTH) {
        n = c->body_left < len ? (size_t)c->body_left : len;
        c->body_left -= n;
        done = c->body_left == 0;
    } else {
        int rc = hp_chunked_feed(&c->chunk, bh_buf_data(&c->in), len, &n);
        if (rc == HP_E400) {
            hr_log(c, "400 malformed chunked body");
            hr_up *up = c->up;
            if (up && up->answered) {
                hr_client_close(c);
            } else {
                c->keep_alive = 0;
                hr_client_respond(c, 400); /* closes the upstream too */
            }
            return 0;
        }
        done = rc == HP_DONE;
    }
    if (done)
        c->req_state = REQ_DONE;
    if (n) {
        bh_bytes b;
        bh_buf_split_prefix(&c->in, n, &b);
        if (send_up(c, &b) != 0)
            return 0;
    }
    return done;
}

void hr_client_process(hr_client *c)
{
    for (;;) {
        if (c->closing || c->tunnel_running || (c->up && !c->head_sent))
            return; /* the head waits in the buffer for the upstream's connect */
        if (c->req_state == REQ_BODY) {
            if (!c->up || !body(c))
                return;
            continue;
        }
        size_t head_len = 0;
        int rc = scan(c, &head_len);
        if (c->up) {
            /* In flight: later requests wait; stop reading once one is
             * complete or the buffer is full. */
            if (rc != HP_MORE || bh_buf_len(&c->in) >= bh_buf_max_len(&c->in))
                bh_reader_stop(&c->rd);
            return;
        }
        if (!uv_is_active((uv_handle_t *)&c->timer) ||
            (c->timer_idle && bh_buf_len(&c->in) > 0))
            next_request(c); /* the head timer runs from the first byte on */
        if (rc == HP_MORE) {
            if (c->eof)
                hr_client_close(c);
            return;
        }
        if (rc < 0) {
            hr_log(c, "%d request head refused", -rc);
            c->keep_alive = 0;
            hr_client_respond(c, -rc);
            return;
        }
        on_head(c, head_len);
    }
}

void hr_client_on_read(bh_reader *rd, int status, void *ctx)
{
    (void)rd;
    hr_client *c = ctx;
    if (c->closing) {
        if (status == BH_OK) {
            bh_buf_advance(&c->in, bh_buf_len(&c->in));
            return;
        }
        c->eof = 1;
        hr_client_close(c);
        return;
    }
    if (status == BH_OK) {
        hr_client_process(c);
        return;
    }
    if (status == UV_EOF) {
        c->eof = 1;
        if (c->up && c->req_state == REQ_DONE)
            return; /* the response is still relayed, then the connection closes */
        if (!c->up && c->req_state != REQ_BODY) {
            hr_client_process(c); /* complete heads still buffered are served */
            return;
        }
    }
    hr_client_close(c);
}

void hr_exchange_done(hr_client *c, int reuse)
{
    hr_up *up = c->up;
    c->up = NULL;
    up->c = NULL;
    hr_request_forget(c);
    if (reuse && c->req_state == REQ_DONE && (c->keep_alive || c->close_stripped))
        hr_pool_put(up);
    else
        hr_up_close(up);
    if (c->req_state != REQ_DONE || !c->keep_alive || (c->eof && bh_buf_len(&c->in) == 0)) {
        hr_client_finish(c);
        return;
    }
    next_request(c);
    if (!c->eof)
        bh_reader_start(&c->rd);
    hr_client_process(c);
}

void hr_request_drain(bh_writeq *q, void *ctx)
{
    hr_up *up = ctx;
    hr_client *c = up->c;
    if (!c || !c->held.len)
        return;
    int rc = bh_writeq_try_write_ff(q, &c->held);
    up->last_active = uv_now(c->s->loop);
    if (rc == BH_EFULL)
        return;
    if (rc != BH_OK) {
        bh_bytes_release(&c->held);
        hr_up_fail(up, UV_EPIPE);
        return;
    }
    bh_reader_start(&c->rd);
    hr_client_process(c);
}
