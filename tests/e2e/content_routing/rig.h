/* rig.h - what the content_routing tests add around the example's proxy
 * (examples/content_routing/content_routing.h): a sink that checks the
 * route protocol and replies with a checksum (sink.c), and the
 * self-verifying demo: clients, faults, allocation-failure injection and the
 * summary (demo.c). rig_main.c makes them the content_routing_rig program. */
#ifndef CR_RIG_H
#define CR_RIG_H

#include "content_routing.h"
#include "fnv1a.h" /* the checksum the sink replies with */

/* ---- sink (sink.c) ------------------------------------------------------ */

/* What one upstream connection delivered, recorded at its EOF. */
typedef struct cr_sink_record {
    uint64_t bytes;        /* everything received */
    uint64_t hash;         /* FNV-1a 64 over those bytes */
    uint64_t frames;       /* payload frames parsed */
    uint64_t tunnel_bytes; /* raw bytes after TUNNEL */
    int route_ok;          /* the ROUTE line named this sink */
    int parse_ok;          /* the stream was well formed to its end */
    int matched;           /* used by the demo to pair records with clients */
} cr_sink_record;

typedef struct cr_sink_config {
    const char *name; /* destination name expected in ROUTE lines */
    size_t max_line, max_frame;
    size_t read_reserve;
    int rcvbuf;        /* SO_RCVBUF of the listener (inherited), 0 = default */
    unsigned pause_ms; /* stop reading this long after each read (slow sink) */
} cr_sink_config;

typedef struct cr_sink cr_sink;

int cr_sink_start(cr_sink **out, uv_loop_t *loop, const cr_sink_config *cfg,
                  const struct sockaddr *addr, int *port);
/* Connections accepted and not yet closed. */
size_t cr_sink_live(const cr_sink *sk);
/* Connections that ended with a read error (reset by the proxy). */
uint64_t cr_sink_aborted(const cr_sink *sk);
/* Connections that ended because an allocation failed (BH_ENOMEM). */
uint64_t cr_sink_enomem(const cr_sink *sk);
/* Reply tickets and shutdown callbacks of the sink's connections. */
void cr_sink_tickets(const cr_sink *sk, cr_tickets *out);
/* Records of the connections that reached EOF; *n receives their number. */
cr_sink_record *cr_sink_records(cr_sink *sk, size_t *n);
void cr_sink_stop(cr_sink *sk);
void cr_sink_free(cr_sink *sk);

/* ---- demo (demo.c) ------------------------------------------------------ */

typedef struct cr_demo_config {
    size_t conns, frames, frame_bytes, tunnel_bytes, write_size;
    uint64_t seed;
    size_t mid_frame, mid_tunnel, bad_route, long_header, long_frame;
    unsigned sink_pause_ms;
    int sink_rcvbuf;
    unsigned timeout_ms;
    int external; /* clients only, against a running proxy at ext_proxy */
    struct sockaddr_storage ext_proxy;
    unsigned duration_s; /* external: good clients reconnect until this elapses */
    size_t fail_alloc;   /* fail the Nth library allocation (1-based), 0 = none */
    int count_allocs;    /* install the counting allocator and report its counts */
    unsigned progress_after_ms; /* stderr a terminal: status line from then on */
    cr_proxy_config proxy; /* destinations are filled in by the demo */
} cr_demo_config;

void cr_demo_config_default(cr_demo_config *cfg);

/* Exit status of cr_demo_run() when an injected allocation failure
 * (fail_alloc) made connections fail cleanly: each failed connection saw
 * BH_ENOMEM (logged), received no wrong byte, and everything else verified. */
#define CR_DEMO_FAILED_CLEANLY 3

/* Runs the whole demo on its own loop, prints the summary on stdout and
 * returns 0 when every good connection verified and every fault was handled,
 * CR_DEMO_FAILED_CLEANLY (see above), 1 on failure.
 * With cfg->external only the clients run, against a proxy started with
 * destinations "alpha" and "beta" (content_routing sink instances); they are
 * verified by the sink replies the proxy forwards. */
int cr_demo_run(const cr_demo_config *cfg);

#endif
