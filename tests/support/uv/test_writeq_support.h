/* test_writeq_support.h - helpers shared by the bh_writeq tests: the one
 * test fixture (loop + connected stream pair + queue + reading peer +
 * pattern), a reading peer that checks every byte against a
 * position-dependent pattern (or hands bytes to a hook), completion-ticket
 * and shutdown recorders, and a bounded run-until-condition loop driver. */
#ifndef BH_TEST_WRITEQ_SUPPORT_H
#define BH_TEST_WRITEQ_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

#include <bytes_handoff.h>
#include <bytes_handoff/uv.h>

#include "test_ticket.h"

/* Byte i of the reference stream; depends on the absolute position, so any
 * reordering, loss or duplication shows up as a mismatch. */
uint8_t wq_pattern(size_t i);
/* malloc'd buffer holding wq_pattern(0 .. n-1). */
uint8_t *wq_pattern_buf(size_t n);
/* Owned copy (bh_bytes_copy) of pattern bytes [off, off+n). */
bh_bytes wq_pattern_slice(const uint8_t *pattern, size_t off, size_t n);

typedef struct wq_sink wq_sink;
typedef void (*wq_sink_hook)(wq_sink *k, const uint8_t *p, size_t n);

/* Reading peer. Counts bytes, compares them with the pattern (unless a hook
 * is set), records EOF and errors. */
struct wq_sink {
    uv_stream_t *s;
    size_t received;
    size_t mismatches;  /* bytes that differed from the pattern */
    size_t first_bad;   /* offset of the first mismatch */
    int eof;            /* UV_EOF seen */
    int error;          /* first read error other than EOF */
    int reading;
    wq_sink_hook hook;  /* when set, bytes go here instead of the pattern check */
    void *ctx;
    char buf[64 * 1024];
};

void wq_sink_init(wq_sink *k, uv_stream_t *s);
void wq_sink_start(wq_sink *k);
void wq_sink_stop(wq_sink *k);

/* Ticket and shutdown recorders (test_ticket.h). */
typedef test_ticket wq_ticket;
typedef test_ticket wq_shut_rec;

void wq_ticket_cb(bh_writeq *q, int status, void *ctx);

/* A set of tickets, for waiting until each has completed at least once. */
typedef struct wq_ticket_set {
    wq_ticket *t;
    int n;
} wq_ticket_set;

/* wq_run_until() condition: arg is a wq_ticket_set. */
int wq_tickets_all_called(void *arg);

void wq_shut_cb(bh_writeq *q, int status, void *ctx);

/* Runs loop until cond(arg) holds or timeout_ms passes (a repeating timer
 * keeps the loop waking). Returns 0 when cond held, -1 on timeout. */
int wq_run_until(uv_loop_t *loop, int (*cond)(void *), void *arg, unsigned timeout_ms);

/* Runs a few non-blocking loop iterations (lets immediate work finish). */
void wq_run_nowait(uv_loop_t *loop, int iterations);

/* Reads q's statistics, asserts (cmocka) the queued item and byte counts and
 * returns the statistics for further checks. */
struct bh_writeq_stats wq_expect_queued(const bh_writeq *q, size_t items, size_t bytes);

/* ---- the fixture ---------------------------------------------------------- */

typedef enum wq_transport {
    WQ_SOCKETPAIR, /* AF_UNIX socketpair as two uv_pipe_t */
    WQ_TCP         /* loopback TCP (127.0.0.1, ephemeral port) */
} wq_transport;

/* A loop, a connected stream pair, a bh_writeq on the writer side and a
 * wq_sink on the reading side (not started), plus pattern bytes to offer. */
typedef struct wq_fx {
    uv_loop_t loop;
    union {
        uv_pipe_t pipe;
        uv_tcp_t tcp;
    } wh, rh;
    uv_stream_t *w; /* writer side, owned by the queue */
    uv_stream_t *r; /* reading peer */
    bh_writeq q;
    wq_sink sink;
    uint8_t *pattern;
    size_t pattern_len;
    size_t off; /* pattern bytes accepted by the queue so far */
} wq_fx;

wq_fx *wq_fx_new(wq_transport t, size_t max_items, size_t max_bytes, size_t pattern_len);
/* Closes the queue, every handle and the loop (which must close cleanly). */
void wq_fx_free(wq_fx *f);
/* Sets the kernel send and receive buffers of both sockets (0 = keep). */
void wq_fx_sockbuf(wq_fx *f, int sndbuf, int rcvbuf);
/* Offer the next n pattern bytes (an owned copy) fire-and-forget, with a
 * ticket, or cross-thread (t may be NULL). On success the slice is zeroed
 * and off advances; on refusal the caller's slice must be untouched (checked)
 * and is released. Returns the call's result. */
int wq_fx_ff(wq_fx *f, size_t n);
int wq_fx_ticket(wq_fx *f, size_t n, wq_ticket *t);
int wq_fx_submit(wq_fx *f, size_t n, wq_ticket *t);
/* wq_run_until() conditions on a wq_fx: the peer holds every accepted byte
 * (or saw an error); the peer saw EOF or an error. */
int wq_fx_received_all(void *f);
int wq_fx_eof(void *f);
/* Starts the peer, runs until it holds every accepted byte (bounded by
 * timeout_ms) and checks them against the pattern. */
void wq_fx_run_until_received(wq_fx *f, unsigned timeout_ms);
/* wq_fx_run_until_received, then a few non-blocking iterations so that the
 * write callbacks behind those bytes (tickets, deferred frees) have run. */
void wq_fx_run_until_settled(wq_fx *f, unsigned timeout_ms);
/* Starts the peer, runs until it sees EOF (bounded by timeout_ms) plus a few
 * more iterations, and checks that the EOF came after every accepted byte,
 * unchanged, and that the shutdown recorder sr completed once with 0. */
void wq_fx_run_until_eof(wq_fx *f, const wq_shut_rec *sr, unsigned timeout_ms);

#endif
