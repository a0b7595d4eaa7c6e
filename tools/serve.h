/* serve.h - run one service on its own loop until SIGINT or SIGTERM: what a
 * server's main() does around its start and stop calls. The service is
 * started on the loop, "listening PORT" is printed (flushed) for scripts,
 * a signal calls the service's stop, and the loop runs until every handle
 * closed. Loop thread only. */
#ifndef BH_TOOLS_SERVE_H
#define BH_TOOLS_SERVE_H

#include <uv.h>

typedef struct serve_ops {
    /* Starts the service on loop; stores the bound port in *port. Returns 0
     * or an error code; stop is called after a failed start too. */
    int (*start)(void *svc, uv_loop_t *loop, int *port);
    /* Stops accepting and ends what is open; the loop then runs dry. */
    void (*stop)(void *svc);
} serve_ops;

/* Runs svc until a signal (or a failed start) and the loop is done; calls
 * after(svc, loop) once the loop ran dry, before uv_loop_close() (NULL: none),
 * e.g. to print statistics. prog prefixes error messages. Returns 0, or 1
 * when the start failed or the loop did not close cleanly. */
int serve_until_signal(const char *prog, void *svc, const serve_ops *ops,
                       void (*after)(void *svc));

#endif
