/* proxy_internal.h - the content_routing proxy's private state, shared by
 * proxy.c (configuration, listener, accept), session.c (ending a session,
 * ERR lines, upstream -> client) and upstream.c (client -> upstream, the
 * mode switch to a bh_tunnel). See proxy.c for how a session runs. */
#ifndef CR_PROXY_INTERNAL_H
#define CR_PROXY_INTERNAL_H

#include "content_routing.h"
#include "idle_trim.h"

#define DISCARD_LIMIT ((uint64_t)1 << 20) /* input discarded after an ERR */
#define LISTEN_BACKLOG 1024
#define ACCEPT_RETRY_MS 100 /* while descriptors are exhausted */
#define TRIM_AFTER_IDLE_MS 250 /* no session for this long: bh_trim() */

/* Completion callbacks a session registers (bits of session.tickets). */
enum { T_UP_SHUT = 1u, T_CLIENT_SHUT = 2u, T_ERR_LINE = 4u, T_REJECT_SHUT = 8u };

enum mode { MODE_ROUTING, MODE_SWITCHING, MODE_TUNNEL, MODE_REJECTING };
enum outcome { OUT_NONE, OUT_COMPLETED, OUT_REJECTED, OUT_ABORTED };

typedef struct session session;

struct cr_proxy {
    uv_loop_t *loop;
    cr_proxy_config cfg;
    bh_writeq_config wcfg;
    size_t in_max; /* max_len of a session's client buffer */
    uv_tcp_t listener;
    int listener_open;
    uv_timer_t accept_retry; /* re-tries the connection libuv holds for us */
    idle_trim trim;          /* bh_trim() once no session came for a while */
    int accept_paused;       /* descriptors exhausted: one connection held */
    uint64_t refused;        /* accept attempts refused in this episode */
    session *sessions;
    uint64_t next_id;
    uint64_t id_step;    /* ids: worker index + 1, then + workers */
    struct cr_proxy_stats st;
};

struct session {
    cr_proxy *px;
    session *prev, *next;
    uint64_t id;
    struct sockaddr_storage peer; /* the client's address, for log lines */
    uv_tcp_t client;
    uv_tcp_t upstream;
    uv_connect_t connect_req;
    bh_buf in; /* client input */
    bh_reader in_reader;
    bh_writeq to_up;
    bh_buf back; /* upstream input */
    bh_reader back_reader;
    bh_writeq to_client;
    cr_parser parser;
    bh_bytes held;      /* slice refused by to_up, queued from its drain callback */
    bh_bytes held_back; /* slice refused by to_client */
    bh_tunnel tunnel;   /* MODE_TUNNEL: owns both handles until on_tunnel_done */
    const cr_dest *dest;
    enum mode mode;
    enum outcome outcome;
    const char *reason;
    int err;          /* status that aborted the session, 0 if none */
    unsigned tickets; /* outstanding completion callbacks (T_* bits) */
    int handles; /* open uv handles */
    int has_upstream, upstream_closing, client_closing, connected;
    int in_done;  /* client input ended */
    int back_eof; /* upstream input ended (before any tunnel) */
    int up_shut;  /* upstream write side shut down after a flush */
    int out_done; /* rejecting: the ERR line was flushed */
    int header_done; /* the first token is complete: idle timeout from here */
    uint64_t header_deadline; /* loop time by which it must be */
    uint64_t discarded;
};

#define SESSION_OF(ptr, field) ((session *)(void *)((char *)(ptr) - offsetof(session, field)))

/* session.c: ending a session, ERR lines, upstream -> client */
void session_free_if_closed(session *s);
void session_close_client(session *s);
void session_set_outcome(session *s, enum outcome o, const char *reason);
void session_end(session *s, enum outcome o, const char *reason);
void session_fail(session *s, const char *where, int err);
void session_reject(session *s, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void session_on_connect(uv_connect_t *req, int status);
void session_on_upstream_read(bh_reader *r, int status, void *ctx);
void session_on_client_drain(bh_writeq *q, void *ctx);
/* A write side's shutdown callback ran (ticket T_UP_SHUT or T_CLIENT_SHUT):
 * accounts it. Returns 1 when the session still waits for it, 0 when that
 * side is being closed anyway. */
int session_shutdown_done(session *s, unsigned ticket);

/* upstream.c: client -> upstream, the switch to the tunnel */
void session_try_tunnel(session *s);
int session_start_upstream(session *s, const cr_dest *d);
int session_timeout_update(session *s);
void session_on_client_read(bh_reader *r, int status, void *ctx);

#endif
