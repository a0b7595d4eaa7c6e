/* flush_dispatch_internal.h - the loop's deferred-flush dispatcher
 * (flush_dispatch.c) as seen by the write queue driver, and the views the
 * tests use. One dispatcher per loop and thread, shared by its queues; every
 * call is made on the loop thread. */
#ifndef BH_FLUSH_DISPATCH_INTERNAL_H
#define BH_FLUSH_DISPATCH_INTERNAL_H

#include <stddef.h>

#include <bytes_handoff/uv.h>

/* Sets q->dispatch to the loop's dispatcher (created on first use) and takes
 * a reference. Returns BH_OK, or BH_ENOMEM / a libuv error (nothing held). */
int bh__wq_dispatch_ref(bh_writeq *q);
/* Arms q's flush: takes the reference first if q holds none, links q into
 * the dispatcher's list and starts its handles. Idempotent while q is
 * linked. Returns BH_OK, or the error of taking the reference (q is not
 * armed: the caller writes at once). */
int bh__wq_dispatch_link(bh_writeq *q);
/* Disarms: unlinks q if linked; the handles stop when no queue is linked. */
void bh__wq_dispatch_unlink(bh_writeq *q);
/* Unlinks q and drops its reference (no-op without one); the last reference
 * closes the handles, whose close callbacks free the dispatcher. */
void bh__wq_dispatch_unref(bh_writeq *q);

/* ---- views for tests ------------------------------------------------------ */

/* This thread's live (not closing) dispatcher of loop, or NULL. */
const void *bh__wq_dispatch_of(const uv_loop_t *loop);
/* Number of this thread's live dispatchers. */
size_t bh__wq_dispatch_live(void);
/* References held on a dispatcher (0 for NULL). */
size_t bh__wq_dispatch_refs(const void *dispatch);

#endif
