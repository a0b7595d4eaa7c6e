/* conn.h - sni_router's per-connection state, shared by router.c (lifetime,
 * hello phase, backend connect, tunnel) and reject.c (TLS alerts, logging,
 * discarding until the client's EOF). Private to the example. */
#ifndef SNI_CONN_H
#define SNI_CONN_H

#include <netinet/in.h>

#include "sni_router.h"

#define DISCARD_MAX (64 * 1024)
#define HELLO_READ_RESERVE 4096

enum { ST_HELLO, ST_CONNECTING, ST_TUNNEL, ST_REJECTING };

/* What only the hello phase needs; freed when the tunnel starts (from the
 * timer's close callback), so an idle routed connection costs sni_conn only. */
typedef struct sni_phase {
    uv_timer_t timer;
    uv_connect_t connect;
    uv_write_t alert_req;
    uv_shutdown_t shutdown_req;
    bh_buf buf;
    bh_reader reader;
    sni_hello hello;
    size_t discarded;
    int answered;        /* refusing: the alert (if any) and shutdown are done */
} sni_phase;

struct sni_conn {
    sni_router *r;
    uint64_t id;         /* for log lines, unique across workers */
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } peer;              /* the client's address (AF_UNSPEC: unknown) */
    sni_conn *prev, *next;
    int state;
    int handles;         /* handles of ours still open (client, timer, backend) */
    int tunnel_running;  /* bh_tunnel_start succeeded and done_cb has not run */
    int backend_init;
    int client_owned;    /* client is ours to close (not handed to the tunnel) */
    int client_eof;      /* the client's clean EOF came before a tunnel started */
    sni_route *route;
    sni_phase *ph;       /* NULL once the tunnel runs */
    uv_tcp_t client;
    uv_tcp_t backend;
    bh_tunnel tunnel;
};

/* Closes whatever of c's handles are still ours (never the tunnel's sockets);
 * c is freed once every close callback ran. */
void sni_conn_close(sni_conn *c);

/* Counts and logs kind k once for c, answers with its TLS alert (when one
 * makes sense), shuts down the write side and closes once that is done and
 * the client's EOF came, after DISCARD_MAX bytes or one more --hello-timeout
 * (reject.c). Reading goes on (or starts again) to see that EOF. */
void sni_reject(sni_conn *c, sni_kind k);

/* The read callback while refusing (status as bh_read_cb): drops the input,
 * closes as sni_reject() says. */
void sni_reject_input(sni_conn *c, int status);

/* The client's read callback (router.c). */
void sni_on_client_read(bh_reader *rd, int status, void *ctx);

#endif
