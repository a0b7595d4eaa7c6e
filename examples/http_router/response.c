/* response.c - http_router's upstream side: connect (bounded by
 * --upstream-timeout), then per exchange read the response head into the
 * upstream connection's bh_buf, parse it for its framing (Content-Length,
 * chunked, until close; none for HEAD, 1xx, 204, 304) and relay head and
 * body to the client as owned slices; interim 1xx heads pass through (a
 * final head the client is closed after gets a "Connection: close" slice
 * before its last CRLF unless it says close already). A full
 * client queue stops reading the upstream until it drains. A 101 to an
 * Upgrade request or a 2xx to CONNECT switches both sockets to a bh_tunnel
 * with the bytes already read. A pooled connection the server closed before
 * answering is retried once on a fresh one for an idempotent request without
 * a body; otherwise the client gets 502 (504 on timeout), or is reset when
 * part of the response already went out. */
#include "http_router.h"

#include <string.h>

#define UP_BUF_MIN 65536

static void on_up_handle_closed(uv_handle_t *h)
{
    hr_up *up = h->data;
    up->handles--;
    hr_up_free_if_done(up);
}

void hr_up_free_if_done(hr_up *up)
{
    if (up->handles > 0 || up->tunnel_running)
        return;
    bh_buf_free(&up->in);
    bh_free(up);
}

void hr_up_close(hr_up *up)
{
    if (up->closing)
        return;
    if (up->pooled)
        hr_pool_remove(up);
    up->closing = 1;
    bh_bytes_release(&up->held);
    bh_bytes_release(&up->held_next);
    bh_writeq_close(&up->out);
    up->timer.data = up;
    uv_close((uv_handle_t *)&up->timer, on_up_handle_closed);
    if (!up->tunnel_running) {
        up->tcp.data = up;
        uv_close((uv_handle_t *)&up->tcp, on_up_handle_closed);
    }
}

void hr_up_fail(hr_up *up, int status)
{
    hr_client *c = up->c;
    if (!c) {
        hr_up_close(up);
        return;
    }
    c->up = NULL;
    up->c = NULL;
    int retry = !up->answered && up->reused && c->retry[0].len && !c->retried &&
                status != UV_ETIMEDOUT;
    hr_up_close(up);
    if (retry) {
        c->retried = 1;
        hr_up *fresh = hr_up_connect(c->s, c->route);
        if (fresh) {
            fresh->c = c;
            c->up = fresh;
            return;
        }
    }
    if (up->answered) {
        hr_log(c, "upstream %s failed mid-response (%s): resetting the client",
               c->route->addr_text, uv_err_name(status));
        hr_client_close(c);
        return;
    }
    int code = status == UV_ETIMEDOUT ? 504 : 502;
    hr_log(c, "%d upstream %s: %s", code, c->route->addr_text,
           status == HP_E400 ? "malformed response" : uv_err_name(status));
    c->keep_alive = 0;
    hr_client_respond(c, code);
}

void hr_up_timer_cb(uv_timer_t *t)
{
    hr_up *up = t->data;
    /* During an exchange the period counts from the last byte either way
     * (a long upload or download is not a timeout). */
    uint64_t timeout = up->s->cfg->upstream_timeout_ms;
    uint64_t idle = uv_now(up->s->loop) - up->last_active;
    if (up->c && up->connected && idle < timeout) {
        uv_timer_start(&up->timer, hr_up_timer_cb, timeout - idle, 0);
        return;
    }
    hr_up_fail(up, UV_ETIMEDOUT); /* pooled (no client): just closed */
}

/* Queues a slice to the client: 0 queued, 1 held (upstream reading
 * stopped), -1 the client is gone. Takes *b. */
static int send_down(hr_up *up, bh_bytes *b)
{
    hr_client *c = up->c;
    int rc = bh_writeq_try_write_ff(&c->out, b);
    if (rc == BH_OK)
        return 0;
    if (rc == BH_EFULL) {
        up->held = *b;
        *b = (bh_bytes){0};
        bh_reader_stop(&up->rd);
        return 1;
    }
    bh_bytes_release(b);
    hr_client_close(c);
    return -1;
}

/* The response is complete (its last slice may still be held). */
static void finish(hr_up *up)
{
    hr_client *c = up->c;
    if (up->held.len) {
        up->finishing = 1;
        return;
    }
    uv_timer_stop(&up->timer);
    up->resp_state = RESP_NONE;
    int reuse = up->resp.minor == 1 && !(up->resp.conn & HP_CONN_CLOSE) &&
                up->resp.framing != HP_BODY_CLOSE && bh_buf_len(&up->in) == 0;
    hr_exchange_done(c, reuse);
}

static void on_switched(bh_tunnel *t, int status, const struct bh_tunnel_stats *st, void *ctx)
{
    (void)t;
    (void)status;
    (void)st;
    hr_client *c = ctx;
    hr_up *up = c->tunnel_up;
    c->tunnel_running = 0;
    up->tunnel_running = 0;
    hr_up_free_if_done(up);
    hr_client_free_if_done(c);
}

/* The 101 or 2xx head was written to the client: hand both sockets and
 * whatever either side sent meanwhile to a tunnel. */
static void on_switch_head_written(bh_writeq *q, int status, void *ctx)
{
    (void)q;
    hr_client *c = ctx;
    hr_up *up = c->up;
    if (status != 0 || c->closing || !up) {
        if (status != BH_ECANCELED)
            hr_client_close(c);
        return;
    }
    struct bh_writeq_stats ws;
    bh_writeq_stats(&up->out, &ws);
    if (ws.queued_items != 0) {
        hr_client_close(c);
        return;
    }
    bh_writeq_close(&c->out);
    bh_writeq_close(&up->out);
    bh_tunnel_config cfg = bh_tunnel_config_default();
    cfg.max_bytes = c->s->cfg->write_budget;
    cfg.idle_timeout_ms = c->s->cfg->idle_timeout_ms;
    c->tunnel = bh_malloc(sizeof *c->tunnel);
    if (!c->tunnel || bh_tunnel_start(c->tunnel, c->s->loop, (uv_stream_t *)&c->tcp,
                                      (uv_stream_t *)&up->tcp, &c->in, &up->in, &cfg, on_switched,
                                      c) != 0) {
        hr_client_close(c);
        return;
    }
    c->tunnel_running = up->tunnel_running = 1;
    c->tunnel_up = up;
    c->handles--; /* the tunnel closes both sockets */
    up->handles--;
    hr_client_close(c); /* the timers and the upstream's bookkeeping */
}

static void switch_to_tunnel(hr_up *up, size_t head_len)
{
    hr_client *c = up->c;
    if (up->resp.status == 101 && !c->upgrade) {
        hr_up_fail(up, HP_E400);
        return;
    }
    bh_bytes h;
    bh_buf_split_prefix(&up->in, head_len, &h);
    bh_reader_stop(&up->rd);
    bh_reader_stop(&c->rd);
    uv_timer_stop(&up->timer);
    uv_timer_stop(&c->timer);
    up->answered = 1;
    c->req_state = REQ_DONE;
    if (bh_writeq_try_write(&c->out, &h, on_switch_head_written, c) != BH_OK) {
        bh_bytes_release(&h);
        hr_client_close(c);
    }
}

/* A response head is complete: relay it; 0 to go on. */
static int on_head(hr_up *up, size_t head_len)
{
    hr_client *c = up->c;
    hp_scan_init(&up->scan);
    if (hp_parse_response(bh_buf_data(&up->in), head_len, c->method_kind, &up->resp) != HP_DONE) {
        hr_up_fail(up, HP_E400);
        return -1;
    }
    hr_request_forget(c);
    if (up->resp.framing == HP_BODY_TUNNEL) {
        switch_to_tunnel(up, head_len);
        return -1;
    }
    /* The router closes the client after this response: say so (RFC 9112
     * section 9.6), as a slice before the head's final CRLF. */
    int add_close = up->resp.status >= 200 && !c->keep_alive && !(up->resp.conn & HP_CONN_CLOSE);
    bh_bytes h;
    bh_buf_split_prefix(&up->in, add_close ? head_len - 2 : head_len, &h);
    up->answered = 1;
    int rc = send_down(up, &h);
    if (rc >= 0 && add_close) {
        bh_buf_advance(&up->in, 2);
        bh_bytes t = bh_bytes_static("Connection: close\r\n\r\n", 21);
        if (rc == 1)
            up->held_next = t;
        else
            rc = send_down(up, &t);
    }
    if (rc < 0)
        return -1;
    if (up->resp.status < 200)
        return rc; /* interim: the final head follows */
    up->resp_state = RESP_BODY;
    up->body_left = up->resp.content_length;
    hp_chunked_init(&up->chunk);
    if (up->resp.framing == HP_BODY_NONE) {
        finish(up);
        return -1;
    }
    return rc;
}

/* Relays buffered body bytes; 0 to go on. */
static int body(hr_up *up)
{
    size_t len = bh_buf_len(&up->in), n = len;
    if (len == 0)
        return -1;
    int done = 0;
    if (up->resp.framing == HP_BODY_LENGTH) {
        n = up->body_left < len ? (size_t)up->body_left : len;
        up->body_left -= n;
        done = up->body_left == 0;
    } else if (up->resp.framing == HP_BODY_CHUNKED) {
        int rc = hp_chunked_feed(&up->chunk, bh_buf_data(&up->in), len, &n);
        if (rc == HP_E400) {
            hr_up_fail(up, HP_E400);
            return -1;
        }
        done = rc == HP_DONE;
    }
    bh_bytes b;
    bh_buf_split_prefix(&up->in, n, &b);
    int rc = send_down(up, &b);
    if (rc < 0)
        return -1;
    if (done) {
        finish(up);
        return -1;
    }
    return rc;
}

static void process(hr_up *up)
{
    const hr_config *cfg = up->s->cfg;
    size_t max = cfg->max_head < UP_BUF_MIN ? UP_BUF_MIN : cfg->max_head;
    hp_limits lim = {.max_head = max, .max_line = max};
    while (up->c && !up->held.len) {
        if (up->resp_state == RESP_BODY) {
            if (body(up) != 0)
                return;
            continue;
        }
        size_t head_len;
        int rc = hp_scan_head(&up->scan, bh_buf_data(&up->in), bh_buf_len(&up->in), &lim,
                              &head_len);
        if (rc == HP_MORE)
            return;
        if (rc < 0) {
            hr_up_fail(up, HP_E400);
            return;
        }
        if (on_head(up, head_len) != 0)
            return;
    }
}

void hr_up_resume(hr_up *up)
{
    hr_client *c = up->c;
    for (;;) {
        int rc = bh_writeq_try_write_ff(&c->out, &up->held);
        up->last_active = uv_now(up->s->loop);
        if (rc == BH_EFULL)
            return;
        if (rc != BH_OK) {
            bh_bytes_release(&up->held);
            hr_client_close(c);
            return;
        }
        if (!up->held_next.len)
            break;
        up->held = up->held_next;
        up->held_next = (bh_bytes){0};
    }
    if (up->finishing) {
        up->finishing = 0;
        finish(up);
        return;
    }
    bh_reader_start(&up->rd);
    process(up);
}

static void on_up_read(bh_reader *rd, int status, void *ctx)
{
    (void)rd;
    hr_up *up = ctx;
    hr_client *c = up->c;
    if (!c || up->resp_state == RESP_NONE) { /* idle in the pool: the server closed it */
        hr_up_fail(up, status);
        return;
    }
    up->last_active = uv_now(up->s->loop);
    if (status == BH_OK) {
        process(up);
        return;
    }
    if (status == UV_EOF && up->resp_state == RESP_BODY &&
        up->resp.framing == HP_BODY_CLOSE) {
        c->keep_alive = 0; /* the body ended with the connection */
        finish(up);
        return;
    }
    hr_up_fail(up, status == UV_EOF ? UV_ECONNRESET : status);
}

void hr_up_begin(hr_up *up)
{
    up->resp_state = RESP_HEAD;
    up->answered = 0;
    up->finishing = 0;
    hp_scan_init(&up->scan);
    up->last_active = uv_now(up->s->loop);
    uv_timer_start(&up->timer, hr_up_timer_cb, up->s->cfg->upstream_timeout_ms, 0);
    bh_reader_start(&up->rd);
}

static void on_connect(uv_connect_t *req, int status)
{
    hr_up *up = req->data;
    if (up->closing)
        return;
    if (status < 0) {
        hr_up_fail(up, status == UV_ETIMEDOUT ? UV_ECONNREFUSED : status);
        return;
    }
    up->connected = 1;
    uv_timer_stop(&up->timer);
    uv_tcp_nodelay(&up->tcp, 1);
    if (!up->c) {
        hr_up_close(up);
        return;
    }
    hr_request_start(up->c);
}

hr_up *hr_up_connect(hr_server *s, const hr_route *route)
{
    hr_up *up = bh_malloc(sizeof *up);
    if (!up)
        return NULL;
    memset(up, 0, sizeof *up);
    up->s = s;
    up->route = route;
    uv_tcp_init(s->loop, &up->tcp);
    uv_timer_init(s->loop, &up->timer);
    up->timer.data = up;
    up->handles = 2;
    size_t max = s->cfg->max_head < UP_BUF_MIN ? UP_BUF_MIN : s->cfg->max_head;
    bh_buf_init(&up->in, max);
    bh_writeq_config wc = {.max_items = BH_WRITEQ_MAX_ITEMS_DEFAULT,
                           .max_bytes = s->cfg->write_budget};
    bh_writeq_init(&up->out, s->loop, (uv_stream_t *)&up->tcp, &wc);
    bh_writeq_set_drain_cb(&up->out, s->cfg->write_budget / 2, hr_request_drain, up);
    bh_reader_init(&up->rd, (uv_stream_t *)&up->tcp, &up->in, 16384, on_up_read, up);
    up->connect_req.data = up;
    int rc = uv_tcp_connect(&up->connect_req, &up->tcp, (const struct sockaddr *)&route->addr,
                            on_connect);
    if (rc != 0) {
        hr_up_close(up);
        return NULL;
    }
    /* A connect that takes longer than --upstream-timeout: 504. */
    uv_timer_start(&up->timer, hr_up_timer_cb, s->cfg->upstream_timeout_ms, 0);
    return up;
}
