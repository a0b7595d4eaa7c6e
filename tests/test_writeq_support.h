/* test_writeq_support.h - helpers shared by the bh_writeq tests: a reading
 * peer that checks every byte against a position-dependent pattern (or hands
 * bytes to a hook), completion-ticket recorders, and a bounded
 * run-until-condition loop driver. */
#ifndef BH_TEST_WRITEQ_SUPPORT_H
#define BH_TEST_WRITEQ_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

#include <bytes_handoff.h>
#include <bytes_handoff/uv.h>

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

/* Records one ticket's completions. */
typedef struct wq_ticket {
    int calls;
    int status;
    int order; /* completion sequence number (global counter) */
} wq_ticket;

extern int wq_ticket_seq;
void wq_ticket_cb(bh_writeq *q, int status, void *ctx);

/* A set of tickets, for waiting until each has completed at least once. */
typedef struct wq_ticket_set {
    wq_ticket *t;
    int n;
} wq_ticket_set;

/* wq_run_until() condition: arg is a wq_ticket_set. */
int wq_tickets_all_called(void *arg);

/* Runs loop until cond(arg) holds or timeout_ms passes (a repeating timer
 * keeps the loop waking). Returns 0 when cond held, -1 on timeout. */
int wq_run_until(uv_loop_t *loop, int (*cond)(void *), void *arg, unsigned timeout_ms);

/* Runs a few non-blocking loop iterations (lets immediate work finish). */
void wq_run_nowait(uv_loop_t *loop, int iterations);

#endif
