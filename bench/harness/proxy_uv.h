/* proxy_uv.h - the worker loop shared by the libuv proxy implementations
 * (handoff, manual_vec, uv_copy): one uv_loop_t per worker thread, a
 * uv_async_t that delivers new connection pairs and the stop request, and the
 * list of live connections closed on stop. An implementation supplies how a
 * pair is adopted and how one connection starts closing. */
#ifndef BH_HARNESS_PROXY_UV_H
#define BH_HARNESS_PROXY_UV_H

#include <uv.h>

#include "idle_trim.h"
#include "proxy.h"

/* A TCP or pipe stream handle, by value. */
typedef union hx_uv_stream {
    uv_handle_t h;
    uv_stream_t s;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
} hx_uv_stream;

typedef struct uv_worker uv_worker;

typedef struct uv_proxy_ops {
    /* Adopts a pair of nonblocking fds on the worker's loop (loop thread). */
    void (*open)(uv_worker *uw, proxy_pair p);
    /* Starts closing the connection linked at l (idempotent, loop thread);
     * the implementation unlinks it once its handles are closed. */
    void (*close)(hx_link *l);
} uv_proxy_ops;

struct uv_worker {
    proxy_worker *w;
    const uv_proxy_ops *ops;
    uv_loop_t loop;
    uv_async_t async;
    hx_link conns; /* the implementation's live connections */
    idle_trim trim; /* bh_trim() once the worker stayed without connections */
};

/* How long a worker stays without connections before bh_trim(). */
#define UV_WORKER_TRIM_DELAY_MS 250

/* proxy_impl hooks for a libuv implementation described by ops. */
int uv_worker_init(proxy_worker *w, const uv_proxy_ops *ops);
void uv_worker_run(proxy_worker *w);
void uv_worker_wake(proxy_worker *w);
void uv_worker_destroy(proxy_worker *w);

/* Initialises client and upstream as TCP or pipe handles on the worker's
 * loop and adopts the pair's fds. Both handles are initialised on return and
 * must be uv_close()d by the caller; a fd that could not be adopted has been
 * closed. Returns 0 or a libuv error. */
int uv_worker_open_pair(uv_worker *uw, proxy_pair p, hx_uv_stream *client,
                        hx_uv_stream *upstream);

#endif
