/* proxy_epoll_copy.c - the hand-written baseline: copies bytes both ways with
 * read(2)/write(2) on a level-triggered epoll loop, no event library.
 *
 * What an experienced C programmer writes for a relay and nothing more: one
 * fixed buffer per direction (--read-reserve bytes client to upstream, 4 KiB
 * for the reply), a read written straight out; only when the destination
 * does not take it all does the direction stop watching its source and
 * watch its destination for EPOLLOUT until the rest is out (two epoll_ctl
 * calls). On the client's EOF the upstream is half-closed once its direction
 * is flushed; on the upstream's EOF the client gets what is left and both
 * close. No parsing, no allocation per read: like uv_copy it is a lower
 * bound, not a semantic peer. New pairs and the stop request arrive through
 * an eventfd. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy.h"

#define REPLY_BUF 4096
#define MAX_EVENTS 64

typedef struct ep_worker {
    proxy_worker *w;
    int epfd, efd;
    hx_link conns;
    hx_link dead; /* closed during this epoll_wait batch, freed after it */
} ep_worker;

typedef struct econn econn;

/* One direction: read from src into buf, write to dst. */
typedef struct edir {
    econn *c;
    int src, dst;
    uint8_t *buf;
    size_t cap, off, len; /* buf[off, off + len) still to write */
    int eof;              /* src reached EOF */
    int shut;             /* dst half-closed after it */
} edir;

struct econn {
    hx_link link;
    ep_worker *ew;
    edir up;   /* client -> upstream */
    edir down; /* upstream -> client */
    uint32_t client_ev, upstream_ev; /* interest registered per fd */
    int closed;
};

/* Closes both fds now and frees the connection after the current batch,
 * whose later events may still name it. */
static void conn_close(econn *c)
{
    hx_list_unlink(&c->link);
    hx_list_push(&c->ew->dead, &c->link);
    close(c->up.src);
    close(c->up.dst);
    c->closed = 1;
}

static void free_dead(ep_worker *ew)
{
    while (ew->dead.next != &ew->dead) {
        hx_link *l = ew->dead.next;
        hx_list_unlink(l);
        free((char *)l - offsetof(econn, link));
    }
}

/* Event data: the connection with its low bit set for the upstream fd
 * (calloc'd, so at least 2-aligned); 0 is the eventfd. */
static uint64_t tag(const econn *c, int fd)
{
    return (uint64_t)(uintptr_t)c | (fd == c->up.dst ? 1u : 0u);
}

/* Sets the interest of fd to ev (0 = none) when it changed. */
static void watch(econn *c, int fd, uint32_t ev)
{
    uint32_t *cur = fd == c->up.src ? &c->client_ev : &c->upstream_ev;
    if (*cur == ev)
        return;
    struct epoll_event e = {.events = ev, .data.u64 = tag(c, fd)};
    epoll_ctl(c->ew->epfd, EPOLL_CTL_MOD, fd, &e);
    *cur = ev;
}

/* Interest of one fd: EPOLLIN while its direction reads it and has nothing
 * pending, EPOLLOUT while the other direction waits to write to it. */
static void update(econn *c)
{
    uint32_t ce = 0, ue = 0;
    if (c->up.len == 0 && !c->up.eof)
        ce |= EPOLLIN;
    if (c->down.len > 0)
        ce |= EPOLLOUT;
    if (c->down.len == 0 && !c->down.eof)
        ue |= EPOLLIN;
    if (c->up.len > 0)
        ue |= EPOLLOUT;
    watch(c, c->up.src, ce);
    watch(c, c->up.dst, ue);
}

/* Writes what d holds. Returns 0 (all out or would block) or -1 (error). */
static int dir_flush(edir *d)
{
    while (d->len > 0) {
        ssize_t w = write(d->dst, d->buf + d->off, d->len);
        if (w < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        d->off += (size_t)w;
        d->len -= (size_t)w;
    }
    d->off = 0;
    return 0;
}

/* Reads and forwards until the source would block, the destination is
 * full, or EOF. Returns 0, 1 when the connection is done, -1 on error. */
static int dir_pump(edir *d)
{
    while (d->len == 0 && !d->eof) {
        ssize_t r = read(d->src, d->buf, d->cap);
        if (r < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        if (r == 0) {
            d->eof = 1;
            break;
        }
        d->len = (size_t)r;
        if (dir_flush(d) != 0)
            return -1;
    }
    if (d->eof && d->len == 0 && !d->shut) {
        if (d == &d->c->down)
            return 1; /* the reply is out: the connection is done */
        shutdown(d->dst, SHUT_WR);
        d->shut = 1;
    }
    return 0;
}

static void conn_event(econn *c, int fd, uint32_t ev)
{
    int rc = 0;
    if (c->closed)
        return;
    edir *out = fd == c->up.src ? &c->down : &c->up; /* writes to fd */
    edir *in = fd == c->up.src ? &c->up : &c->down;  /* reads fd */
    if ((ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && out->len > 0) {
        rc = dir_flush(out);
        if (rc == 0 && out->len == 0)
            rc = dir_pump(out); /* its source may hold more, or EOF is owed */
    }
    if (rc == 0 && (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        rc = dir_pump(in);
    if (rc != 0) {
        conn_close(c);
        return;
    }
    update(c);
}

static void open_pair(ep_worker *ew, proxy_pair p)
{
    size_t reserve = ew->w->cfg->read_reserve;
    econn *c = calloc(1, sizeof *c + reserve + REPLY_BUF);
    if (!c) {
        close(p.client_fd);
        close(p.upstream_fd);
        return;
    }
    uint8_t *mem = (uint8_t *)(c + 1);
    c->ew = ew;
    c->up = (edir){.c = c, .src = p.client_fd, .dst = p.upstream_fd, .buf = mem, .cap = reserve};
    c->down = (edir){.c = c, .src = p.upstream_fd, .dst = p.client_fd, .buf = mem + reserve,
                     .cap = REPLY_BUF};
    c->client_ev = c->upstream_ev = EPOLLIN;
    hx_list_push(&ew->conns, &c->link);
    struct epoll_event ce = {.events = EPOLLIN, .data.u64 = tag(c, p.client_fd)};
    struct epoll_event ue = {.events = EPOLLIN, .data.u64 = tag(c, p.upstream_fd)};
    if (epoll_ctl(ew->epfd, EPOLL_CTL_ADD, p.client_fd, &ce) != 0 ||
        epoll_ctl(ew->epfd, EPOLL_CTL_ADD, p.upstream_fd, &ue) != 0)
        conn_close(c);
}

static int ep_init(proxy_worker *w)
{
    ep_worker *ew = calloc(1, sizeof *ew);
    if (!ew)
        return -1;
    ew->w = w;
    hx_list_init(&ew->conns);
    hx_list_init(&ew->dead);
    ew->epfd = epoll_create1(EPOLL_CLOEXEC);
    ew->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event e = {.events = EPOLLIN, .data.u64 = 0};
    if (ew->epfd < 0 || ew->efd < 0 || epoll_ctl(ew->epfd, EPOLL_CTL_ADD, ew->efd, &e) != 0) {
        if (ew->epfd >= 0)
            close(ew->epfd);
        if (ew->efd >= 0)
            close(ew->efd);
        free(ew);
        return -1;
    }
    w->state = ew;
    return 0;
}

/* The eventfd fired: adopt new pairs; on stop close every connection.
 * Returns 1 when the worker should return. */
static int on_wake(ep_worker *ew)
{
    uint64_t n;
    while (read(ew->efd, &n, sizeof n) > 0) {
    }
    proxy_pair p;
    while (proxy_worker_next(ew->w, &p))
        open_pair(ew, p);
    if (!proxy_worker_stopping(ew->w))
        return 0;
    while (ew->conns.next != &ew->conns)
        conn_close((econn *)((char *)ew->conns.next - offsetof(econn, link)));
    return 1;
}

static void ep_run(proxy_worker *w)
{
    ep_worker *ew = w->state;
    struct epoll_event ev[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(ew->epfd, ev, MAX_EVENTS, -1);
        for (int i = 0; i < n; i++) {
            uint64_t t = ev[i].data.u64;
            if (t == 0) {
                if (on_wake(ew)) {
                    free_dead(ew);
                    return;
                }
                continue;
            }
            econn *c = (econn *)(uintptr_t)(t & ~(uint64_t)1);
            conn_event(c, (t & 1) ? c->up.dst : c->up.src, ev[i].events);
        }
        free_dead(ew);
    }
}

static void ep_wake(proxy_worker *w)
{
    ep_worker *ew = w->state;
    uint64_t one = 1;
    ssize_t r = write(ew->efd, &one, sizeof one);
    (void)r;
}

static void ep_destroy(proxy_worker *w)
{
    ep_worker *ew = w->state;
    close(ew->epfd);
    close(ew->efd);
    free(ew);
    w->state = NULL;
}

const proxy_impl proxy_impl_epoll_copy = {
    "epoll_copy", ep_init, ep_run, ep_wake, ep_destroy,
};
