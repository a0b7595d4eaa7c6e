/* test_queue_support.h - helpers shared by the bh_queue core tests: a queue
 * with pattern bytes to offer, a ticket recorder, and a "write everything"
 * driver that plays the adapter without any I/O. */
#ifndef BH_TEST_QUEUE_SUPPORT_H
#define BH_TEST_QUEUE_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

#include <bytes_handoff.h>
#include <bytes_handoff/queue.h>

#include "test_ticket.h"

typedef test_ticket qt_ticket;

void qt_ticket_cb(bh_queue *q, int status, void *ctx);

typedef struct qfx {
    bh_queue q;
    uint8_t pattern[64 * 1024]; /* position-dependent bytes */
    size_t off;                 /* pattern bytes offered so far */
} qfx;

qfx *qfx_new(size_t max_items, size_t max_bytes);
/* Closes the queue (frees its inbox) and checks that nothing stays counted. */
void qfx_free(qfx *f);
/* The queue's statistics now. */
struct bh_queue_stats qfx_stats(const qfx *f);
/* Asserts (cmocka) the queued item and byte counts; returns the statistics
 * for further checks. */
struct bh_queue_stats qfx_expect_queued(const qfx *f, size_t items, size_t bytes);
/* Pushes the next n pattern bytes as a static slice (iovecs then point into
 * f->pattern), with a ticket when t is set. On refusal checks that the
 * caller's slice is untouched. Returns the push result. */
int qfx_push(qfx *f, size_t n, qt_ticket *t);
/* An owned copy of the next n pattern bytes (refcount 1). */
bh_bytes qfx_slice(qfx *f, size_t n);
/* Plays an adapter whose writes always take everything: batches until the
 * queue is idle. Returns the items completed with 0. */
size_t qfx_write_all(qfx *f);

#endif
