/* sni_router.h - the parts of the sni_router example (examples/sni_router/main.c
 * is the program; its header comment describes behaviour and options).
 *
 *   hello.c   incremental ClientHello parser (hello.h)
 *   routes.c  routing table with per-route counters (routes.h)
 *   router.c  listeners, per-connection hello phase, backend connect and
 *             the hand-off to bh_tunnel (conn.h: the connection's state)
 *   reject.c  TLS alerts, per-kind counting and logging of refusals
 *   stats.c   the --stats report
 * A router (sni_router) runs on one libuv loop thread; with --workers N,
 * main.c runs N of them (tools/workers.h), each with its own loop,
 * listeners, connections, counters and copy of the routing table, sharing
 * only the read-only sni_config. */
#ifndef SNI_ROUTER_H
#define SNI_ROUTER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <bytes_handoff.h>
#include <bytes_handoff/uv.h>

#include "hello.h"
#include "routes.h"
#include "idle_trim.h"
#include "workers.h"

#define SNI_MAX_LISTEN 8

/* Why a connection did not reach a backend (or how its tunnel ended); each
 * connection is counted under one kind and logged once. */
typedef enum sni_kind {
    SNI_NOT_TLS,        /* no alert: the peer does not speak TLS */
    SNI_SSLV2,          /* no alert: SSL 2.0 has no TLS alerts */
    SNI_MALFORMED,      /* decode_error */
    SNI_TOO_LARGE,      /* illegal_parameter (OpenSSL's "excessive message size") */
    SNI_BAD_NAME,       /* illegal_parameter */
    SNI_NO_SNI,         /* missing_extension (RFC 8446 section 9.2) */
    SNI_UNKNOWN_NAME,   /* unrecognized_name (RFC 6066 section 3) */
    SNI_HELLO_TIMEOUT,  /* no alert: hello not complete within --hello-timeout */
    SNI_CLIENT_GONE,    /* no alert: EOF or error before the hello was complete */
    SNI_BACKEND_FAILED, /* internal_error: the backend refused or timed out */
    SNI_KIND_COUNT
} sni_kind;

typedef struct sni_config {
    const char *listen[SNI_MAX_LISTEN];  /* as given, for messages */
    struct sockaddr_storage listen_addr[SNI_MAX_LISTEN];
    size_t listen_count;
    size_t max_hello;           /* --max-hello */
    uint64_t hello_timeout_ms;  /* --hello-timeout, also bounds the backend connect */
    uint64_t idle_timeout_ms;   /* --idle-timeout (0: none) */
    size_t read_reserve;        /* --read-reserve: the tunnel's read size per side */
    int stats;                  /* --stats */
    int quiet;                  /* --quiet: no per-connection log lines */
    int workers;                /* --workers: routers (threads), each its own loop */
} sni_config;

typedef struct sni_conn sni_conn;

#define SNI_TRIM_AFTER_IDLE_MS 250 /* no connection for this long: bh_trim() */

typedef struct sni_router {
    uv_loop_t *loop;
    const sni_config *cfg;
    sni_table *table;
    uv_tcp_t listeners[SNI_MAX_LISTEN];
    size_t listener_count;
    int draining;
    sni_conn *live;             /* every open connection (doubly linked) */
    uint64_t accepted;
    uint64_t live_count;
    uint64_t next_id;           /* connection ids: worker + 1, then + workers */
    idle_trim trim;             /* bh_trim() once no connection came for a while */
    uint64_t kinds[SNI_KIND_COUNT];
    uint64_t tunnel_clean, tunnel_reset, tunnel_idle, tunnel_other;
    uint64_t backpressure[2];   /* ended tunnels' waits on a destination (up, down) */
    uint64_t backpressure_ms[2];
    int accept_error;           /* last accept error logged (once per episode) */
    uv_tcp_t spare;             /* accepts and closes a connection when out of memory */
    int spare_busy;
    uv_stream_t *refuse_waiting; /* listener whose refusal waits for the spare */
} sni_router;

/* Listens on every cfg->listen_addr as worker w of its run (workers_listen():
 * port 0 picks a free port, shared by all workers), routing with table (the
 * worker's own copy: its counters change). Returns 0 or a libuv error
 * (message on stderr); r's handles are then closed by the caller's loop. */
int sni_router_start(sni_router *r, uv_loop_t *loop, const sni_config *cfg, sni_table *table,
                     worker *w);

/* Stops accepting (listeners closed); open connections go on. With abort,
 * every open connection is reset now. */
void sni_router_drain(sni_router *r, int abort);

/* Writes the per-route and per-kind counters (open tunnels included). */
void sni_router_print_stats(const sni_router *r, FILE *out);

/* Adds r's counters (connections, kinds, tunnel ends, backpressure; not the
 * routes', which are in its table) to sum's. */
void sni_router_add_counters(sni_router *sum, const sni_router *r);

/* Stable name of a kind ("unknown_name"). */
const char *sni_kind_name(sni_kind k);

/* Adds the live byte counts of open tunnels to per-route totals (stats.c). */
void sni_router_live_bytes(const sni_router *r, const sni_route *route, uint64_t *up,
                           uint64_t *down);

/* Adds the backpressure figures of open tunnels (up, down) to waits and ms. */
void sni_router_live_backpressure(const sni_router *r, uint64_t waits[2], uint64_t ms[2]);

#endif
