/* serve.c - one service on its own loop until SIGINT or SIGTERM (serve.h). */
#include "serve.h"

#include <stdio.h>
#include <string.h>

#include <bytes_handoff.h>

typedef struct serving {
    uv_signal_t sigint, sigterm;
    void *svc;
    const serve_ops *ops;
    int stopped;
} serving;

static void on_signal(uv_signal_t *sig, int signum)
{
    serving *sv = sig->data;
    (void)signum;
    if (!sv->stopped)
        sv->ops->stop(sv->svc);
    sv->stopped = 1;
    uv_close((uv_handle_t *)&sv->sigint, NULL);
    uv_close((uv_handle_t *)&sv->sigterm, NULL);
}

int serve_until_signal(const char *prog, void *svc, const serve_ops *ops,
                       void (*after)(void *svc))
{
    uv_loop_t loop;
    serving sv;
    memset(&sv, 0, sizeof sv);
    sv.svc = svc;
    sv.ops = ops;
    if (uv_loop_init(&loop) != 0)
        return 1;
    uv_signal_init(&loop, &sv.sigint);
    uv_signal_init(&loop, &sv.sigterm);
    sv.sigint.data = sv.sigterm.data = &sv;
    uv_signal_start(&sv.sigint, on_signal, SIGINT);
    uv_signal_start(&sv.sigterm, on_signal, SIGTERM);
    int port = 0;
    int rc = ops->start(svc, &loop, &port);
    if (rc == 0) {
        printf("listening %d\n", port);
        fflush(stdout);
    } else {
        fprintf(stderr, "%s: cannot listen: %s\n", prog, bh_strerror(rc));
        on_signal(&sv.sigint, 0);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    if (after)
        after(svc);
    int close_rc = uv_loop_close(&loop);
    if (close_rc != 0) {
        fprintf(stderr, "%s: uv_loop_close: %s\n", prog, uv_strerror(close_rc));
        return 1;
    }
    return rc == 0 ? 0 : 1;
}
