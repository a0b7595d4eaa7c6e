/* http_router.h - the parts of the http_router example (main.c is the
 * program; its header comment describes behaviour and options).
 *
 *   http_parse.c, http_chunked.c  strict HTTP/1.1 parser (http_parse.h)
 *   routes.c    HOST[/PREFIX] routing table (routes.h)
 *   server.c    listener, client connections' lifetime, router-made responses
 *   request.c   client side: request heads, routing, request bodies upstream
 *   response.c  upstream side: connect, response heads and bodies back,
 *               retry, the switch to a bh_tunnel (Upgrade, CONNECT)
 *   pool.c      idle keep-alive upstream connections per route
 * One server per loop thread (--workers N: N of them, each with its own
 * SO_REUSEPORT listener); nothing is shared between them but the read-only
 * configuration and routing table. */
#ifndef HTTP_ROUTER_H
#define HTTP_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include <bytes_handoff.h>
#include <bytes_handoff/uv.h>

#include "http_parse.h"
#include "idle_trim.h"
#include "routes.h"
#include "workers.h"

typedef struct hr_config {
    const char *listen;           /* ADDR:PORT */
    const hr_table *table;
    unsigned workers;
    size_t max_head;              /* --max-head */
    uint64_t head_timeout_ms;     /* --head-timeout */
    uint64_t upstream_timeout_ms; /* --upstream-timeout */
    uint64_t idle_timeout_ms;     /* --idle-timeout: idle clients and pooled upstreams */
    size_t pool_size;             /* --pool-size: idle upstreams per route */
    size_t write_budget;          /* --write-budget: bytes queued per connection */
    int quiet;
} hr_config;

typedef struct hr_client hr_client;
typedef struct hr_up hr_up;

/* Idle upstream connections of one route (LIFO list). */
typedef struct hr_pool {
    hr_up *idle;
    size_t count;
} hr_pool;

/* One loop's router. */
typedef struct hr_server {
    uv_loop_t *loop;
    const hr_config *cfg;
    uv_tcp_t listener;
    int listening;
    int stopping;
    hr_pool *pools;     /* hr_table_size() entries */
    hr_client *clients; /* open client connections */
    uint64_t next_id;   /* the next client's id (unique across workers) */
    size_t client_count;
    idle_trim trim;
} hr_server;

enum { REQ_HEAD, REQ_BODY, REQ_DONE };   /* hr_client.req_state */
enum { RESP_NONE, RESP_HEAD, RESP_BODY }; /* hr_up.resp_state */

struct hr_client {
    hr_server *s;
    hr_client *prev, *next;
    uv_tcp_t tcp;
    uv_timer_t timer;      /* head / idle timeout; lingering close */
    bh_buf in;
    bh_reader rd;
    bh_writeq out;
    int handles;           /* tcp and timer, while not closed */
    int closing;           /* answered for the last time: discarding until EOF */
    int tunnel_running;
    int eof;               /* the client shut its write side */
    int keep_alive;        /* the connection persists after this exchange */
    int close_stripped;    /* the request's "Connection: close" line was not
                              forwarded: the upstream may persist */
    int upgrade;           /* the request asked for an Upgrade */
    int timer_idle;        /* the timer runs --idle-timeout, not --head-timeout */
    int req_state;
    hp_scan scan;
    hp_msg req;            /* offsets into the head, valid until it is split off */
    int method_kind;
    uint64_t body_left;    /* HP_BODY_LENGTH */
    hp_chunked chunk;      /* HP_BODY_CHUNKED */
    bh_bytes held;         /* body bytes the upstream's queue refused */
    hr_up *up;             /* the exchange's upstream, or NULL */
    const hr_route *route;
    bh_bytes retry[3];     /* the head's slices, while a retry is possible */
    int retried;
    int head_sent;         /* the exchange's head went to its upstream */
    bh_tunnel *tunnel;     /* after a 101 / CONNECT 2xx (allocated then) */
    hr_up *tunnel_up;      /* the upstream side of the tunnel */
    uint64_t id;           /* for the log lines */
    union {
        struct sockaddr sa;
        struct sockaddr_in6 in6;
    } peer;                /* the client's address (AF_UNSPEC: unknown) */
    char ip[48];           /* its text, for X-Forwarded-For */
};

struct hr_up {
    hr_server *s;
    const hr_route *route;
    hr_up *pool_next;      /* in the route's pool */
    int pooled;
    uv_tcp_t tcp;
    uv_timer_t timer;      /* connect / response timeout; pool idle timeout */
    uv_connect_t connect_req;
    bh_buf in;
    bh_reader rd;
    bh_writeq out;
    int handles;
    int connected;
    int closing;
    int reused;            /* taken from the pool for this exchange */
    int tunnel_running;
    hr_client *c;          /* the client served, NULL while pooled */
    int resp_state;
    int answered;          /* a response byte reached the client */
    uint64_t last_active;  /* uv_now() of the exchange's last byte either way */
    int finishing;         /* the response ended; its last slice is held */
    hp_scan scan;
    hp_msg resp;
    uint64_t body_left;
    hp_chunked chunk;
    bh_bytes held;         /* response bytes the client's queue refused */
    bh_bytes held_next;    /* the added "Connection: close" line after a held head */
};

/* server.c */
/* Sets up s on worker w's loop and opens its listener; 0 or a libuv error
 * (hr_server_stop() and hr_server_free() are called after a failure too). */
int hr_server_start(hr_server *s, worker *w, uv_loop_t *loop, const hr_config *cfg);
void hr_server_stop(hr_server *s);
void hr_server_free(hr_server *s); /* after the loop ran dry */
void hr_client_close(hr_client *c);        /* now (reset if bytes are unread) */
void hr_client_respond(hr_client *c, int status); /* router-made response; may close */
void hr_client_finish(hr_client *c);       /* flush, shut down, close after EOF */
void hr_client_free_if_done(hr_client *c);
/* A warning about client c in the programs' one log line format (log.h:
 * time, level, conn=ID, peer=ADDR); nothing with --quiet. */
void hr_log(const hr_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* request.c */
void hr_client_on_read(bh_reader *rd, int status, void *ctx);
void hr_client_process(hr_client *c);      /* act on the buffered input */
/* Queues the head's slices (empty ones skipped) upstream; takes them. */
int hr_request_send(hr_client *c, hr_up *up, bh_bytes part[3]);
void hr_request_forget(hr_client *c);       /* drops the retry copies */
void hr_request_start(hr_client *c);        /* the upstream is ready: send the head */
void hr_request_drain(bh_writeq *q, void *ctx); /* an upstream queue drained */
void hr_exchange_done(hr_client *c, int reuse); /* response complete */

/* response.c */
hr_up *hr_up_connect(hr_server *s, const hr_route *route);
void hr_up_begin(hr_up *up);               /* request sent: await the response */
void hr_up_close(hr_up *up);
void hr_up_fail(hr_up *up, int status);    /* before/after a response: 502/504 or abort */
void hr_up_resume(hr_up *up);              /* client queue drained */
void hr_up_timer_cb(uv_timer_t *t);        /* response / connect / pool idle timeout */
void hr_up_free_if_done(hr_up *up);

/* pool.c */
hr_up *hr_pool_get(hr_server *s, const hr_route *route);
void hr_pool_put(hr_up *up);
void hr_pool_remove(hr_up *up);
void hr_pool_close_all(hr_server *s);

#endif
