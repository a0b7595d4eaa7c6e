/* proxy_fixture.h - the content_routing example's proxy and sink on one
 * libuv loop in the test process (fx), and clients speaking its route
 * protocol (tclient): what the network fault tests drive. */
#ifndef BH_PROXY_FIXTURE_H
#define BH_PROXY_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "content_routing/content_routing.h"
#include "rig.h" /* the rig's sink (tests/e2e/content_routing) */

typedef struct tclient {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    uint8_t *data; /* what it sends */
    size_t len;
    char expect[96]; /* the sink's reply for data */
    char reply[256];
    size_t reply_len;
    char rbuf[64 * 1024];
    int connected, connect_status;
    int written, write_status;
    int eof, read_err; /* read ended with UV_EOF / another error */
    int closed;
} tclient;

typedef struct fx {
    uv_loop_t loop;
    cr_sink *alpha;
    cr_proxy *px;
    int port;
    uint64_t wait_bytes; /* fx_run_until_forwarded's goal */
} fx;

/* "ROUTE <dest>\n", frames payload frames of frame_bytes random bytes,
 * "TUNNEL\n", tunnel random bytes; expect is the sink's reply to it all. */
void tc_build(tclient *c, const char *dest, size_t frames, size_t frame_bytes, size_t tunnel, uint64_t seed);
void tc_connect(uv_loop_t *loop, tclient *c, int port);
/* Writes data[off, off + n) in one uv_write (completion in c->written). */
void tc_write(tclient *c, size_t off, size_t n);
void tc_shutdown(tclient *c);
int tc_ended(void *arg);
void tc_closed(uv_handle_t *h);
void tc_free(tclient *c);
tclient *tc_new(void);
/* Starts sink "alpha" on a new loop and fills *pc with the defaults and the
 * destination "alpha" routed to it; the caller starts the proxy. */
fx *fx_prepare(unsigned sink_pause_ms, cr_proxy_config *pc);
void fx_start_proxy(fx *f, const cr_proxy_config *pc);
/* The fixture on a new loop: sink "alpha", proxy, and name -> 127.0.0.1:port
 * if name is not NULL. */
fx *fx_new(const char *name, int port);
/* Like fx_new, with a destination written by the test: `listener` listens on
 * the fixture's loop (accepting with on_conn, data as handle data, SO_RCVBUF
 * rcvbuf inherited by accepted sockets unless 0) before the proxy starts, and
 * the proxy routes `name` to it (SO_SNDBUF upstream_sndbuf unless 0). */
fx *fx_new_with_dest(uv_tcp_t *listener, void *data, uv_connection_cb on_conn, int rcvbuf, const char *name, int upstream_sndbuf);
struct cr_proxy_stats fx_stats(const fx *f);
/* Every session and sink connection freed. */
int fx_idle(void *arg);
/* The sink holds exactly one record whose reply line is what c expects. */
void assert_sink_got(fx *f, const tclient *c);
void assert_tickets_balanced(const fx *f);
void fx_free(fx *f);
/* Closes the clients (b may be NULL), tears the fixture down (running their
 * close callbacks) and frees them. */
void fx_end_with_clients(fx *f, tclient *a, tclient *b);
/* A good client to alpha: sends everything, half-closes, gets its reply. */
void run_good_client(fx *f, tclient *c, uint64_t seed);

/* Runs the loop until every session and sink connection is freed (fx_idle);
 * returns the proxy's counters. */
struct cr_proxy_stats fx_settle(fx *f);
/* The client's reply is exactly the sink's reply for its stream. */
void tc_expect_reply(const tclient *c);
/* assert_tickets_balanced(f), then fx_end_with_clients(f, a, b). */
void fx_end_balanced(fx *f, tclient *a, tclient *b);
/* After one other client (rejected or aborted as the counts say), a good
 * client (run_good_client) is served: the proxy accepted both, completed the
 * good one, and rejected and aborted as many sessions as given. */
void fx_serve_good_client(fx *f, tclient *good, uint64_t seed, uint64_t rejected,
                          uint64_t aborted);
/* tc_build, then tc_connect to the fixture's proxy. */
void tc_start(fx *f, tclient *c, const char *dest, size_t frames, size_t frame_bytes,
              size_t tunnel, uint64_t seed);
/* Runs the loop until the proxy forwarded at least bytes upstream and the
 * sink holds a connection. */
void fx_run_until_forwarded(fx *f, uint64_t bytes);

#endif
