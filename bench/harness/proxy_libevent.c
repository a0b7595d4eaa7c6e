/* proxy_libevent.c - the libevent peer: one event_base per worker thread and
 * a bufferevent per socket. Route frames are found with evbuffer_search_eol
 * and moved to the upstream's output with evbuffer_remove_buffer (no copy
 * where whole chains move); after "TUNNEL\n" the input is moved wholesale
 * with evbuffer_add_buffer. Reading pauses while the upstream output holds
 * more than --write-budget bytes and resumes when it drains to half of it
 * (write watermark). New connections and the stop request arrive through an
 * eventfd watched by the base. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "proxy.h"

typedef struct ev_worker {
    proxy_worker *w;
    struct event_base *base;
    struct event *wake_ev;
    int efd;
    hx_link conns;
} ev_worker;

typedef struct econn {
    hx_link link;
    ev_worker *ew;
    struct bufferevent *client, *upstream;
    int tunnel, client_eof, upstream_eof;
} econn;

static void conn_free(econn *c)
{
    hx_list_unlink(&c->link);
    bufferevent_free(c->client);
    bufferevent_free(c->upstream);
    free(c);
}

/* Half-closes the upstream once everything before the client's EOF is out. */
static void maybe_shutdown_upstream(econn *c)
{
    if (c->client_eof && evbuffer_get_length(bufferevent_get_output(c->upstream)) == 0)
        shutdown(bufferevent_getfd(c->upstream), SHUT_WR);
}

/* Moves complete frames (then, in tunnel mode, everything) to the upstream.
 * Returns -1 when a frame exceeds --max-line. */
static int forward(econn *c)
{
    static const char tunnel_line[] = "TUNNEL\n";
    struct evbuffer *in = bufferevent_get_input(c->client);
    struct evbuffer *out = bufferevent_get_output(c->upstream);
    while (!c->tunnel) {
        size_t eol_len = 0;
        struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
        if (p.pos < 0)
            return evbuffer_get_length(in) >= c->ew->w->cfg->max_line ? -1 : 0;
        size_t n = (size_t)p.pos + 1;
        if (n == sizeof tunnel_line - 1) {
            char head[sizeof tunnel_line - 1];
            evbuffer_copyout(in, head, n);
            c->tunnel = memcmp(head, tunnel_line, n) == 0;
        }
        evbuffer_remove_buffer(in, out, n);
    }
    evbuffer_add_buffer(out, in);
    return 0;
}

static void on_client_read(struct bufferevent *bev, void *arg)
{
    econn *c = arg;
    if (forward(c) != 0) {
        conn_free(c);
        return;
    }
    if (evbuffer_get_length(bufferevent_get_output(c->upstream)) > c->ew->w->cfg->write_budget)
        bufferevent_disable(bev, EV_READ);
}

/* The upstream output drained to its low watermark. */
static void on_upstream_write(struct bufferevent *bev, void *arg)
{
    econn *c = arg;
    (void)bev;
    if (c->client_eof)
        maybe_shutdown_upstream(c);
    else
        bufferevent_enable(c->client, EV_READ);
}

static void on_client_event(struct bufferevent *bev, short what, void *arg)
{
    econn *c = arg;
    (void)bev;
    if (!(what & BEV_EVENT_EOF) || c->client_eof) {
        conn_free(c);
        return;
    }
    /* A partial frame at EOF goes out as is. */
    c->tunnel = 1;
    forward(c);
    c->client_eof = 1;
    bufferevent_setwatermark(c->upstream, EV_WRITE, 0, 0);
    maybe_shutdown_upstream(c);
}

static void on_upstream_read(struct bufferevent *bev, void *arg)
{
    econn *c = arg;
    evbuffer_add_buffer(bufferevent_get_output(c->client), bufferevent_get_input(bev));
}

/* The client output is empty: after the upstream's EOF, the reply is out. */
static void on_client_write(struct bufferevent *bev, void *arg)
{
    econn *c = arg;
    (void)bev;
    if (c->upstream_eof)
        conn_free(c);
}

static void on_upstream_event(struct bufferevent *bev, short what, void *arg)
{
    econn *c = arg;
    (void)bev;
    if (!(what & BEV_EVENT_EOF)) {
        conn_free(c);
        return;
    }
    c->upstream_eof = 1;
    if (evbuffer_get_length(bufferevent_get_output(c->client)) == 0)
        conn_free(c);
}

static void open_pair(ev_worker *ew, proxy_pair p)
{
    const proxy_config *cfg = ew->w->cfg;
    econn *c = calloc(1, sizeof *c);
    if (c) {
        c->ew = ew;
        c->client = bufferevent_socket_new(ew->base, p.client_fd, BEV_OPT_CLOSE_ON_FREE);
        c->upstream = bufferevent_socket_new(ew->base, p.upstream_fd, BEV_OPT_CLOSE_ON_FREE);
    }
    if (!c || !c->client || !c->upstream) {
        if (c && c->client)
            bufferevent_free(c->client);
        else
            close(p.client_fd);
        if (c && c->upstream)
            bufferevent_free(c->upstream);
        else
            close(p.upstream_fd);
        free(c);
        return;
    }
    hx_list_push(&ew->conns, &c->link);
    bufferevent_set_max_single_read(c->client, cfg->read_reserve);
    bufferevent_setcb(c->client, on_client_read, on_client_write, on_client_event, c);
    bufferevent_setcb(c->upstream, on_upstream_read, on_upstream_write, on_upstream_event, c);
    bufferevent_setwatermark(c->upstream, EV_WRITE, cfg->write_budget / 2, 0);
    if (bufferevent_enable(c->client, EV_READ | EV_WRITE) != 0 ||
        bufferevent_enable(c->upstream, EV_READ | EV_WRITE) != 0)
        conn_free(c);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    ev_worker *ew = arg;
    uint64_t v;
    (void)what;
    if (read(fd, &v, sizeof v) < 0 && errno != EAGAIN)
        return;
    proxy_pair p;
    while (proxy_worker_next(ew->w, &p))
        open_pair(ew, p);
    if (!proxy_worker_stopping(ew->w))
        return;
    while (ew->conns.next != &ew->conns)
        conn_free((econn *)((char *)ew->conns.next - offsetof(econn, link)));
    event_del(ew->wake_ev);
}

static int ev_init(proxy_worker *w)
{
    ev_worker *ew = calloc(1, sizeof *ew);
    if (!ew)
        return -1;
    ew->w = w;
    hx_list_init(&ew->conns);
    ew->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ew->base = event_base_new();
    if (ew->efd >= 0 && ew->base)
        ew->wake_ev = event_new(ew->base, ew->efd, EV_READ | EV_PERSIST, on_wake, ew);
    if (!ew->wake_ev || event_add(ew->wake_ev, NULL) != 0) {
        if (ew->wake_ev)
            event_free(ew->wake_ev);
        if (ew->base)
            event_base_free(ew->base);
        if (ew->efd >= 0)
            close(ew->efd);
        free(ew);
        return -1;
    }
    w->state = ew;
    return 0;
}

static void ev_run(proxy_worker *w)
{
    ev_worker *ew = w->state;
    event_base_dispatch(ew->base);
}

static void ev_wake(proxy_worker *w)
{
    ev_worker *ew = w->state;
    uint64_t one = 1;
    (void)!write(ew->efd, &one, sizeof one);
}

static void ev_destroy(proxy_worker *w)
{
    ev_worker *ew = w->state;
    event_free(ew->wake_ev);
    event_base_free(ew->base);
    close(ew->efd);
    free(ew);
    w->state = NULL;
}

const proxy_impl proxy_impl_libevent = {"libevent", ev_init, ev_run, ev_wake, ev_destroy};
