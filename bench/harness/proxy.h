/* proxy.h - the stream harness proxy's shared structure.
 *
 * The proxy's main thread accepts clients, connects one upstream socket per
 * client (blocking connect, the sink is local), and hands the pair of
 * nonblocking fds to one of --threads worker threads, round-robin. Each worker
 * runs one event loop (libuv or libevent, per implementation) and owns the
 * connections it was given. The implementations differ only in what happens
 * on that loop, which is what the harness measures. */
#ifndef BH_HARNESS_PROXY_H
#define BH_HARNESS_PROXY_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

typedef struct proxy_config {
    const char *impl;     /* handoff | handoff_tunnel | manual_vec | uv_copy | epoll_copy | libevent */
    unsigned threads;     /* worker threads, one event loop each */
    size_t read_reserve;  /* bytes offered to each read */
    size_t write_budget;  /* queued bytes per connection before reading pauses */
    size_t max_line;      /* longest route frame accepted, newline included */
    int fire_and_forget;  /* handoff: bh_writeq_try_write_ff instead of tickets */
    int is_tcp;           /* transport: TCP (else unix domain sockets) */
} proxy_config;

typedef struct proxy_pair {
    int client_fd;
    int upstream_fd;
} proxy_pair;

/* Intrusive doubly linked list of a worker's connections, so that stopping
 * can close them all. A head is initialised with hx_list_init. */
typedef struct hx_link {
    struct hx_link *prev, *next;
} hx_link;

static inline void hx_list_init(hx_link *head) { head->prev = head->next = head; }
static inline void hx_list_push(hx_link *head, hx_link *l)
{
    l->next = head->next;
    l->prev = head;
    head->next->prev = l;
    head->next = l;
}
static inline void hx_list_unlink(hx_link *l)
{
    l->prev->next = l->next;
    l->next->prev = l->prev;
    l->prev = l->next = l;
}

typedef struct proxy_worker proxy_worker;

/* What an implementation provides. init and destroy run on the main thread
 * (before the thread starts, after it was joined); run is the thread body and
 * returns once a stop was requested and every connection is closed; wake may
 * be called from any thread after init and makes the loop call
 * proxy_worker_next() / proxy_worker_stopping(). */
typedef struct proxy_impl {
    const char *name;
    int (*init)(proxy_worker *w);
    void (*run)(proxy_worker *w);
    void (*wake)(proxy_worker *w);
    void (*destroy)(proxy_worker *w);
} proxy_impl;

struct proxy_worker {
    unsigned index;
    const proxy_config *cfg;
    const proxy_impl *impl;
    void *state; /* the implementation's per-worker state */
    pthread_t thread;
    pthread_mutex_t lock;
    proxy_pair *queue; /* handed over by the main thread, under lock */
    size_t nqueue, capqueue;
    int stop;          /* under lock */
};

/* Takes the next queued pair (worker thread). Returns 1 with *out filled, or
 * 0 when the queue is empty. The worker owns both fds from then on. */
int proxy_worker_next(proxy_worker *w, proxy_pair *out);

/* Returns 1 once the main thread asked the worker to stop. */
int proxy_worker_stopping(proxy_worker *w);

/* handoff_tunnel: bytes its bh_tunnels moved (both directions, all
 * workers, finished tunnels) and how many of those splice(2) moved. */
void proxy_tunnel_totals(uint64_t *bytes, uint64_t *spliced);

extern const proxy_impl proxy_impl_handoff;
extern const proxy_impl proxy_impl_handoff_tunnel;
extern const proxy_impl proxy_impl_manual_vec;
extern const proxy_impl proxy_impl_uv_copy;
extern const proxy_impl proxy_impl_epoll_copy;
extern const proxy_impl proxy_impl_libevent;

#endif
