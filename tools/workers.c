/* workers.c - N worker threads, one libuv loop and one set of SO_REUSEPORT
 * listeners each (see workers.h).
 *
 * What crosses threads, always under ws->mu: the number of stop requests
 * (stops), each worker's "can be woken" flag (live: its wake handle is open),
 * how many workers started and finished. Worker 0's bound ports are written
 * before the other threads are created and only read afterwards. A worker
 * is woken with uv_async_send() on its wake handle (unreferenced, so it
 * never keeps the loop alive); worker 0's loop is kept alive by others_done
 * until every other worker has finished, so signals are handled (a second
 * one included) until the whole run is over. */
#include "workers.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

struct worker {
    workers *ws;
    int index;
    uv_loop_t loop;
    uv_async_t wake;
    uv_thread_t thread;
    void *state;
    int rc;         /* the start's result (under mu once the thread runs) */
    int live;       /* wake may be sent to (under mu) */
    int stops_done; /* stop requests handled (worker's thread only) */
    int nlisten;    /* workers_listen() calls so far (worker's thread only) */
    int ports[WORKERS_MAX_LISTEN]; /* worker 0's bound ports */
};

struct workers {
    const workers_config *cfg;
    uv_mutex_t mu;
    uv_cond_t cond;
    int stops;      /* workers_stop() calls */
    int nthreads;   /* threads created (workers 1..nthreads) */
    int nstarted;   /* of those, whose start returned */
    int nfinished;  /* of those, whose loop is closed */
    uv_async_t others_done; /* on worker 0's loop */
    uv_signal_t sigint, sigterm;
    worker w[];
};

static void on_wake(uv_async_t *a)
{
    worker *w = a->data;
    uv_mutex_lock(&w->ws->mu);
    int stops = w->ws->stops;
    uv_mutex_unlock(&w->ws->mu);
    for (; w->stops_done < stops; w->stops_done++)
        w->ws->cfg->ops->stop(w->state, w->stops_done > 0);
}

void workers_stop(workers *ws)
{
    uv_mutex_lock(&ws->mu);
    ws->stops++;
    for (int i = 0; i < ws->cfg->count; i++)
        if (ws->w[i].live)
            uv_async_send(&ws->w[i].wake);
    uv_mutex_unlock(&ws->mu);
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)signum;
    workers_stop(s->data);
}

int workers_index(const worker *w) { return w->index; }

int workers_listen(worker *w, uv_tcp_t *tcp, const struct sockaddr *addr, int backlog,
                   uv_connection_cb cb)
{
    workers *ws = w->ws;
    int k = w->nlisten++;
    if (k >= WORKERS_MAX_LISTEN || (w->index > 0 && k >= ws->w[0].nlisten))
        return UV_EINVAL;
    if (addr->sa_family != AF_INET && addr->sa_family != AF_INET6)
        return UV_EAFNOSUPPORT;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    memcpy(&ss, addr,
           addr->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
    if (w->index > 0 && cli_addr_port(&ss) == 0) {
        uint16_t port = htons((uint16_t)ws->w[0].ports[k]);
        if (ss.ss_family == AF_INET)
            ((struct sockaddr_in *)&ss)->sin_port = port;
        else
            ((struct sockaddr_in6 *)&ss)->sin6_port = port;
    }
    int rc;
    if (ws->cfg->count > 1) {
        /* libuv has no UV_TCP_REUSEPORT: the option goes on a socket of
         * ours before libuv binds it. */
        int one = 1;
        int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return uv_translate_sys_error(errno);
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
            rc = uv_translate_sys_error(errno);
            close(fd);
            return rc;
        }
        if ((rc = uv_tcp_open(tcp, fd)) != 0) {
            close(fd);
            return rc;
        }
    }
    rc = uv_tcp_bind(tcp, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)tcp, backlog, cb);
    if (rc == 0 && w->index == 0) {
        struct sockaddr_storage bound;
        int len = (int)sizeof bound;
        rc = uv_tcp_getsockname(tcp, (struct sockaddr *)&bound, &len);
        w->ports[k] = cli_addr_port(&bound);
    }
    return rc;
}

/* Opens w's loop and wake handle and starts the program on it; the result
 * goes to w->rc. Returns 0 when the loop is open (and must be run). */
static int worker_begin(worker *w)
{
    workers *ws = w->ws;
    int rc = uv_loop_init(&w->loop);
    if (rc != 0) {
        w->rc = rc;
        return rc;
    }
    uv_async_init(&w->loop, &w->wake, on_wake); /* cannot fail but for fds */
    w->wake.data = w;
    uv_unref((uv_handle_t *)&w->wake);
    rc = ws->cfg->ops->start(w, &w->loop, ws->cfg->ctx, &w->state);
    uv_mutex_lock(&ws->mu);
    w->rc = rc;
    w->live = 1;
    if (ws->stops > 0)
        uv_async_send(&w->wake); /* a stop came before w could be woken */
    uv_mutex_unlock(&ws->mu);
    return 0;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Runs w's loop dry, closes what is left, calls finish and closes the loop.
 * Returns 0 or 1 when the loop did not close cleanly. */
static int worker_end(worker *w)
{
    workers *ws = w->ws;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_mutex_lock(&ws->mu);
    w->live = 0;
    uv_mutex_unlock(&ws->mu);
    uv_walk(&w->loop, close_walk, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    if (ws->cfg->ops->finish)
        ws->cfg->ops->finish(w, w->state, ws->cfg->ctx);
    int rc = uv_loop_close(&w->loop);
    if (rc != 0) {
        fprintf(stderr, "%s: worker %d: uv_loop_close: %s\n", ws->cfg->prog, w->index,
                uv_strerror(rc));
        return 1;
    }
    return 0;
}

static void worker_thread(void *arg)
{
    worker *w = arg;
    workers *ws = w->ws;
    int opened = worker_begin(w) == 0;
    uv_mutex_lock(&ws->mu);
    ws->nstarted++;
    uv_cond_signal(&ws->cond);
    uv_mutex_unlock(&ws->mu);
    int bad = opened ? worker_end(w) : 0;
    uv_mutex_lock(&ws->mu);
    if (bad && w->rc == 0)
        w->rc = UV_EBUSY;
    ws->nfinished++;
    uv_async_send(&ws->others_done); /* under mu: never after it closed */
    uv_mutex_unlock(&ws->mu);
}

static void on_others_done(uv_async_t *a)
{
    workers *ws = a->data;
    uv_mutex_lock(&ws->mu);
    int all = ws->nfinished == ws->nthreads;
    uv_mutex_unlock(&ws->mu);
    if (all && !uv_is_closing((uv_handle_t *)a))
        uv_close((uv_handle_t *)a, NULL);
}

static void print_ports(workers *ws, void *ctx, const int *ports, int nports)
{
    (void)ws;
    (void)ctx;
    for (int i = 0; i < nports; i++)
        printf("listening %d\n", ports[i]);
    fflush(stdout);
}

/* Worker 0's loop: others_done and the signal watchers (unreferenced). */
static void watch_run(workers *ws, uv_loop_t *loop)
{
    uv_async_init(loop, &ws->others_done, on_others_done);
    ws->others_done.data = ws;
    if (!ws->cfg->handle_signals)
        return;
    uv_signal_t *sig[] = {&ws->sigint, &ws->sigterm};
    int num[] = {SIGINT, SIGTERM};
    for (int i = 0; i < 2; i++) {
        uv_signal_init(loop, sig[i]);
        sig[i]->data = ws;
        uv_signal_start(sig[i], on_signal, num[i]);
        uv_unref((uv_handle_t *)sig[i]);
    }
}

/* Starts workers 1..count-1 and waits for their starts. Returns 0 when
 * every one started, else the first error. */
static int start_others(workers *ws)
{
    int rc = 0;
    for (int i = 1; i < ws->cfg->count && rc == 0; i++) {
        rc = uv_thread_create(&ws->w[i].thread, worker_thread, &ws->w[i]);
        if (rc == 0)
            ws->nthreads = i;
    }
    uv_mutex_lock(&ws->mu);
    while (ws->nstarted < ws->nthreads)
        uv_cond_wait(&ws->cond, &ws->mu);
    for (int i = 1; i <= ws->nthreads && rc == 0; i++)
        rc = ws->w[i].rc;
    uv_mutex_unlock(&ws->mu);
    return rc;
}

int workers_run(const workers_config *cfg)
{
    if (cfg->count < 1 || cfg->count > WORKERS_MAX)
        return 1;
    workers *ws = calloc(1, sizeof *ws + (size_t)cfg->count * sizeof ws->w[0]);
    if (!ws)
        return 1;
    ws->cfg = cfg;
    uv_mutex_init(&ws->mu);
    uv_cond_init(&ws->cond);
    for (int i = 0; i < cfg->count; i++) {
        ws->w[i].ws = ws;
        ws->w[i].index = i;
    }
    worker *w0 = &ws->w[0];
    int failed = worker_begin(w0) != 0;
    if (failed) {
        fprintf(stderr, "%s: uv_loop_init: %s\n", cfg->prog, uv_strerror(w0->rc));
    } else {
        watch_run(ws, &w0->loop);
        int rc = w0->rc != 0 ? w0->rc : start_others(ws);
        if (ws->nthreads == 0)
            uv_close((uv_handle_t *)&ws->others_done, NULL);
        if (rc != 0) {
            failed = 1;
            fprintf(stderr, "%s: cannot start %d worker%s: %s\n", cfg->prog, cfg->count,
                    cfg->count > 1 ? "s" : "", uv_strerror(rc));
            workers_stop(ws);
        } else {
            (cfg->ready ? cfg->ready : print_ports)(ws, cfg->ctx, w0->ports, w0->nlisten);
        }
        failed |= worker_end(w0);
    }
    for (int i = 1; i <= ws->nthreads; i++) {
        uv_thread_join(&ws->w[i].thread);
        failed |= ws->w[i].rc != 0;
    }
    uv_cond_destroy(&ws->cond);
    uv_mutex_destroy(&ws->mu);
    free(ws);
    return failed ? 1 : 0;
}
