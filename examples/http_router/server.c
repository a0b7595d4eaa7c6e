/* server.c - http_router's listener and client connections: accept, the
 * connection's lifetime (freed once its handles closed and no tunnel holds
 * its socket), router-made responses (400, 404, 408, 414, 431, 502, 504,
 * 505) and the graceful close: the response is flushed, the write side shut
 * down, and input is read and dropped until the client's EOF or a short
 * linger, so that unread bytes do not make the kernel reset the connection
 * before the client read the answer. */
#include "http_router.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "log.h"
#include "workers.h"

#define LINGER_MS 2000
#define TRIM_AFTER_IDLE_MS 250
#define READ_RESERVE 16384

void hr_log(const hr_client *c, const char *fmt, ...)
{
    if (c->s->cfg->quiet)
        return;
    char msg[LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_msg(LOG_LEVEL_WARN, c->id, &c->peer.sa, "%s", msg);
}

void hr_client_free_if_done(hr_client *c)
{
    if (c->handles > 0 || c->tunnel_running)
        return;
    hr_server *s = c->s;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    bh_bytes_release(&c->held);
    hr_request_forget(c);
    bh_buf_free(&c->in);
    bh_free(c->tunnel);
    bh_free(c);
    if (--s->client_count == 0)
        idle_trim_idle(&s->trim);
}

static void on_client_handle_closed(uv_handle_t *h)
{
    hr_client *c = h->data;
    c->handles--;
    hr_client_free_if_done(c);
}

void hr_client_close(hr_client *c)
{
    if (c->up) {
        c->up->c = NULL;
        hr_up_close(c->up);
        c->up = NULL;
    }
    bh_writeq_close(&c->out);
    c->timer.data = c;
    if (!uv_is_closing((uv_handle_t *)&c->timer))
        uv_close((uv_handle_t *)&c->timer, on_client_handle_closed);
    if (!c->tunnel_running && !uv_is_closing((uv_handle_t *)&c->tcp)) {
        c->tcp.data = c;
        uv_close((uv_handle_t *)&c->tcp, on_client_handle_closed);
    }
}

static void on_linger_timeout(uv_timer_t *t) { hr_client_close(t->data); }

static void on_shutdown(bh_writeq *q, int status, void *ctx)
{
    (void)q;
    hr_client *c = ctx;
    if (status != 0 || c->eof) {
        hr_client_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_linger_timeout, LINGER_MS, 0);
}

void hr_client_finish(hr_client *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    if (c->up) {
        c->up->c = NULL;
        hr_up_close(c->up);
        c->up = NULL;
    }
    bh_bytes_release(&c->held);
    bh_buf_advance(&c->in, bh_buf_len(&c->in)); /* a full buffer must not end the reading */
    uv_timer_stop(&c->timer);
    if (bh_writeq_shutdown(&c->out, on_shutdown, c) != BH_OK) {
        hr_client_close(c);
        return;
    }
    if (!c->eof)
        bh_reader_start(&c->rd); /* drop what still comes, see the EOF */
}

typedef struct canned {
    int status;
    const char *text;
} canned;

#define CANNED(code, reason)                                                                       \
    {code, "HTTP/1.1 " #code " " reason "\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"  \
           "%s\r\n" reason "\n"}
static const canned answers[] = {
    CANNED(400, "Bad Request"),       CANNED(404, "Not Found"),
    CANNED(408, "Request Timeout"),   CANNED(414, "URI Too Long"),
    CANNED(431, "Request Header Fields Too Large"),
    CANNED(502, "Bad Gateway"),       CANNED(504, "Gateway Timeout"),
    CANNED(505, "HTTP Version Not Supported")};

void hr_client_respond(hr_client *c, int status)
{
    const canned *a = &answers[0];
    for (size_t i = 0; i < sizeof answers / sizeof answers[0]; i++)
        if (answers[i].status == status)
            a = &answers[i];
    /* Only a 404 to a request without a body keeps the connection. */
    int keep = status == 404 && c->keep_alive && c->req_state == REQ_DONE;
    const char *reason = strchr(a->text + 13, '\r');
    size_t body = (size_t)(reason - (a->text + 13)) + 1;
    char text[256];
    int n = snprintf(text, sizeof text, a->text, body, keep ? "" : "Connection: close\r\n");
    bh_bytes out;
    if (n < 0 || bh_bytes_copy(&out, text, (size_t)n) != BH_OK) {
        hr_client_close(c);
        return;
    }
    if (bh_writeq_try_write_ff(&c->out, &out) != BH_OK) {
        bh_bytes_release(&out);
        hr_client_close(c);
        return;
    }
    if (!keep)
        hr_client_finish(c);
}

static void on_client_drain(bh_writeq *q, void *ctx)
{
    (void)q;
    hr_client *c = ctx;
    if (c->up && c->up->held.len)
        hr_up_resume(c->up);
}

static void on_accept(uv_stream_t *server, int status)
{
    hr_server *s = server->data;
    if (status < 0)
        return;
    hr_client *c = bh_malloc(sizeof *c);
    if (!c)
        return; /* libuv accepts again on the next readiness */
    memset(c, 0, sizeof *c);
    c->s = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->timer.data = c;
    c->handles = 2;
    c->next = s->clients;
    if (s->clients)
        s->clients->prev = c;
    s->clients = c;
    s->client_count++;
    idle_trim_busy(&s->trim);
    bh_buf_init(&c->in, s->cfg->max_head);
    bh_writeq_config wc = {.max_items = BH_WRITEQ_MAX_ITEMS_DEFAULT,
                           .max_bytes = s->cfg->write_budget};
    bh_writeq_init(&c->out, s->loop, (uv_stream_t *)&c->tcp, &wc);
    bh_writeq_set_drain_cb(&c->out, s->cfg->write_budget / 2, on_client_drain, c);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        hr_client_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->id = s->next_id;
    s->next_id += s->cfg->workers;
    int len = (int)sizeof c->peer;
    if (uv_tcp_getpeername(&c->tcp, &c->peer.sa, &len) != 0)
        c->peer.sa.sa_family = AF_UNSPEC;
    else if (c->peer.sa.sa_family == AF_INET6)
        uv_ip6_name(&c->peer.in6, c->ip, sizeof c->ip);
    else
        uv_ip4_name((const struct sockaddr_in *)&c->peer.sa, c->ip, sizeof c->ip);
    size_t reserve = s->cfg->max_head < READ_RESERVE ? s->cfg->max_head : READ_RESERVE;
    hp_scan_init(&c->scan);
    if (bh_reader_init(&c->rd, (uv_stream_t *)&c->tcp, &c->in, reserve, hr_client_on_read, c) !=
            0 ||
        bh_reader_start(&c->rd) != 0) {
        hr_client_close(c);
        return;
    }
    hr_client_process(c); /* arms the head timer */
}

int hr_server_start(hr_server *s, worker *w, uv_loop_t *loop, const hr_config *cfg)
{
    memset(s, 0, sizeof *s);
    s->loop = loop;
    s->cfg = cfg;
    s->next_id = (uint64_t)workers_index(w) + 1;
    (void)idle_trim_init(&s->trim, loop, TRIM_AFTER_IDLE_MS);
    size_t n = hr_table_size(cfg->table);
    s->pools = bh_malloc((n ? n : 1) * sizeof *s->pools);
    if (!s->pools)
        return UV_ENOMEM;
    memset(s->pools, 0, (n ? n : 1) * sizeof *s->pools);
    struct sockaddr_storage addr;
    int rc = cli_parse_addr(cfg->listen, &addr);
    if (rc != 0)
        return rc;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    s->listening = 1;
    return workers_listen(w, &s->listener, (const struct sockaddr *)&addr, 1024, on_accept);
}

void hr_server_stop(hr_server *s)
{
    if (!s->loop)
        return; /* never started */
    s->stopping = 1;
    if (s->listening && !uv_is_closing((uv_handle_t *)&s->listener))
        uv_close((uv_handle_t *)&s->listener, NULL);
    if (s->pools)
        hr_pool_close_all(s);
    for (hr_client *c = s->clients; c; c = c->next) {
        if (c->tunnel_running)
            bh_tunnel_abort(c->tunnel);
        else
            hr_client_close(c);
    }
    idle_trim_close(&s->trim);
}

void hr_server_free(hr_server *s)
{
    bh_free(s->pools);
    s->pools = NULL;
}
