/* demo_internal.h - the content_routing demo's state, shared by demo.c
 * (allocator, orchestration, entry), demo_clients.c (client streams and
 * their I/O), demo_progress.c (the status line on a terminal) and
 * demo_report.c (verification and the summary). */
#ifndef CR_DEMO_INTERNAL_H
#define CR_DEMO_INTERNAL_H

#include "rig.h"

#define MAX_DEMO_DESTS 4
#define QUIESCE_MS 5000

/* The counting / failing allocator (--fail-alloc, --count-allocs). */
typedef struct fa_state {
    size_t attempts; /* malloc + realloc calls */
    size_t fail_at;  /* attempt to fail (1-based), 0 = none */
    size_t failed;   /* failures injected */
    size_t live;     /* blocks allocated and not yet freed */
    size_t failed_size;
    const char *failed_fn;
} fa_state;
extern fa_state g_fa;

extern const char *const dest_names[MAX_DEMO_DESTS];
extern const char *const kind_names[];

enum client_kind {
    CK_GOOD,
    CK_MID_FRAME,
    CK_MID_TUNNEL,
    CK_BAD_ROUTE,
    CK_LONG_HEADER,
    CK_LONG_FRAME
};

typedef struct demo demo;

typedef struct client {
    demo *d;
    size_t id;
    enum client_kind kind;
    size_t dest;
    uint8_t *stream; /* everything this client would send */
    size_t len;
    size_t stop_at; /* bytes sent before the fault (len for the others) */
    size_t sent, inflight;
    uint64_t expect_frames, expect_tunnel, expect_hash;
    char expect_reply[96];
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    bh_buf reply;
    bh_reader reader;
    int closing, done;
    int reply_ok, sink_ok;
    int wrong;     /* received bytes that are not (a prefix of) the expected reply */
    int enomem;    /* its own reply reader ran out of memory */
    size_t rounds; /* verified replies (several with --duration-s) */
    const char *failure;
} client;

struct demo {
    const cr_demo_config *cfg;
    uv_loop_t loop;
    size_t ndests;
    cr_sink *sinks[MAX_DEMO_DESTS];
    cr_proxy *proxy;
    struct sockaddr_storage proxy_addr;
    client *clients;
    size_t nclients, ndone;
    uv_timer_t watchdog, quiesce;
    uint64_t t_start, t_end, quiesce_until;
    uint64_t deadline; /* --duration-s: no reconnect after this (uv_now), set at ramp end */
    int timed_out, finished;
    int ramp_done; /* --duration-s: every good client has a verified reply */
    int fa_installed; /* the counting allocator is in place */
    uint64_t bytes_sent; /* by every client, for the status line */
    uv_timer_t progress; /* the status line's (demo_progress.c) */
    int progress_on, progress_shown;
    struct cr_proxy_stats pst;
};

/* demo_clients.c */
int client_build(client *c, const cr_demo_config *cfg);
int client_start(client *c);
void client_close(client *c, int reset, const char *failure);
/* 1 for a client whose fault is a disconnect (mid-frame, mid-tunnel). */
int faulty_disconnect(const client *c);

/* demo.c */
void demo_client_done(demo *d);
void demo_stop(demo *d);

/* demo_progress.c: the status line on a terminal (see there) */
void demo_progress_start(demo *d);
void demo_progress_finish(demo *d);

/* demo_report.c */
int report(demo *d);

#endif
