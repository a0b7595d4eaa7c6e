/* workers.h - run a server as N worker threads, each with its own libuv loop
 * and its own listening sockets on the same address (SO_REUSEPORT: the
 * kernel spreads new connections over the workers), until SIGINT/SIGTERM or
 * workers_stop(). Nginx's model: workers share nothing but the read-only
 * configuration behind ctx; each keeps its own per-loop state (connections,
 * counters, timers) and merges what it must report in its finish callback.
 *
 * Threads: worker 0 runs on the thread that calls workers_run(); workers
 * 1..N-1 each get a thread of their own (uv_thread_create), so N = 1 runs
 * everything on the calling thread. Every callback of workers_ops runs on
 * its worker's own thread, with that worker's loop. Only workers_stop() may
 * be called from any thread.
 *
 * Start-up: worker 0 starts first; its listeners bind the configured
 * addresses (port 0: the kernel picks one). Then the other workers start and
 * bind the same addresses, port 0 replaced by the port worker 0 got for the
 * same listener (listeners are matched by the order of workers_listen()
 * calls, which must be the same in every worker). Once every worker started,
 * ready() runs (default: "listening PORT" per listener on stdout, flushed),
 * then the loops run. */
#ifndef BH_TOOLS_WORKERS_H
#define BH_TOOLS_WORKERS_H

#include <sys/socket.h>

#include <uv.h>

#define WORKERS_MAX 64        /* most workers one run may have */
#define WORKERS_MAX_LISTEN 16 /* most listeners per worker */

typedef struct workers workers; /* one run; lives inside workers_run() */
typedef struct worker worker;   /* one worker (thread and loop) of a run */

typedef struct workers_ops {
    /* Sets up the program's state for worker w on loop and opens its
     * listeners with workers_listen(); stores that state in *state. Returns
     * 0 or a negative libuv error code. After a failed start (of any
     * worker) every worker is stopped and workers_run() returns 1; stop()
     * (unless the loop ran dry first) and finish() are called with
     * whatever *state was set to, so set it before anything can fail. */
    int (*start)(worker *w, uv_loop_t *loop, void *ctx, void **state);
    /* A stop was requested (signal or workers_stop()): stop accepting and
     * end or finish what is open so the loop runs dry. again is 0 for the
     * first request and 1 for later ones (e.g. abort what is still open). */
    void (*stop)(void *state, int again);
    /* The loop ran dry and every handle left (unreferenced ones too) was
     * closed, before uv_loop_close(): report, merge counters
     * (under the caller's own lock: workers finish concurrently), free the
     * state. NULL: nothing to do. */
    void (*finish)(worker *w, void *state, void *ctx);
} workers_ops;

typedef struct workers_config {
    int count;              /* N workers, 1..WORKERS_MAX */
    const workers_ops *ops;
    void *ctx;              /* read-only while the workers run, shared by all */
    const char *prog;       /* prefixes error messages */
    int handle_signals;     /* SIGINT and SIGTERM call workers_stop() */
    /* Runs once every worker listens, on the calling thread, with the ports
     * of worker 0's listeners in workers_listen() order. NULL: prints
     * "listening PORT" per listener on stdout, flushed. */
    void (*ready)(workers *ws, void *ctx, const int *ports, int nports);
} workers_config;

/* Runs cfg->count workers until each one's loop ran dry after a stop (or a
 * failed start) and joins them. Returns 0, or 1 when a worker failed to
 * start or a loop did not close cleanly (message on stderr). */
int workers_run(const workers_config *cfg);

/* Asks every worker of ws to stop (workers_ops.stop, on its own thread).
 * Any thread, any number of times, until workers_run() returns. */
void workers_stop(workers *ws);

/* Makes tcp, a handle the caller initialised with uv_tcp_init() on w's loop
 * and has not bound, a listener on addr: its socket gets SO_REUSEPORT when
 * the run has more than one worker, is bound (port 0 in workers 1..N-1:
 * worker 0's port for this listener) and listens with backlog and cb.
 * Returns 0 or a libuv error; the caller closes tcp in either case. */
int workers_listen(worker *w, uv_tcp_t *tcp, const struct sockaddr *addr, int backlog,
                   uv_connection_cb cb);

/* Index of w in its run, 0..count-1 (for log lines and reports). */
int workers_index(const worker *w);

#endif
