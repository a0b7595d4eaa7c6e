/* proxy_uv.c - worker loop shared by the libuv proxy implementations. */
#include "proxy_uv.h"

#include <stdlib.h>
#include <unistd.h>

static void on_async(uv_async_t *a)
{
    uv_worker *uw = a->data;
    proxy_pair p;
    while (proxy_worker_next(uw->w, &p))
        uw->ops->open(uw, p);
    if (!proxy_worker_stopping(uw->w))
        return;
    for (hx_link *l = uw->conns.next, *n; l != &uw->conns; l = n) {
        n = l->next;
        uw->ops->close(l);
    }
    if (!uv_is_closing((uv_handle_t *)&uw->async))
        uv_close((uv_handle_t *)&uw->async, NULL);
    idle_trim_close(&uw->trim);
}

int uv_worker_init(proxy_worker *w, const uv_proxy_ops *ops)
{
    uv_worker *uw = calloc(1, sizeof *uw);
    if (!uw)
        return -1;
    uw->w = w;
    uw->ops = ops;
    hx_list_init(&uw->conns);
    if (uv_loop_init(&uw->loop) != 0) {
        free(uw);
        return -1;
    }
    if (uv_async_init(&uw->loop, &uw->async, on_async) != 0) {
        uv_loop_close(&uw->loop);
        free(uw);
        return -1;
    }
    uw->async.data = uw;
    /* A timer on an initialised loop cannot fail to initialise. */
    (void)idle_trim_init(&uw->trim, &uw->loop, UV_WORKER_TRIM_DELAY_MS);
    w->state = uw;
    return 0;
}

void uv_worker_run(proxy_worker *w)
{
    uv_worker *uw = w->state;
    uv_run(&uw->loop, UV_RUN_DEFAULT);
}

void uv_worker_wake(proxy_worker *w)
{
    uv_worker *uw = w->state;
    uv_async_send(&uw->async);
}

void uv_worker_destroy(proxy_worker *w)
{
    uv_worker *uw = w->state;
    uv_loop_close(&uw->loop);
    free(uw);
    w->state = NULL;
}

static int stream_init(uv_worker *uw, hx_uv_stream *s, int is_tcp)
{
    return is_tcp ? uv_tcp_init(&uw->loop, &s->tcp) : uv_pipe_init(&uw->loop, &s->pipe, 0);
}

static int stream_open(hx_uv_stream *s, int fd, int is_tcp)
{
    int rc = is_tcp ? uv_tcp_open(&s->tcp, fd) : uv_pipe_open(&s->pipe, fd);
    if (rc != 0)
        close(fd);
    return rc;
}

int uv_worker_open_pair(uv_worker *uw, proxy_pair p, hx_uv_stream *client,
                        hx_uv_stream *upstream)
{
    int is_tcp = uw->w->cfg->is_tcp;
    /* Initialising a TCP or pipe handle without flags cannot fail. */
    (void)stream_init(uw, client, is_tcp);
    (void)stream_init(uw, upstream, is_tcp);
    int rc = stream_open(client, p.client_fd, is_tcp);
    int rc2 = stream_open(upstream, p.upstream_fd, is_tcp);
    return rc ? rc : rc2;
}
