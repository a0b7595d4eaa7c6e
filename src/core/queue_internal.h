/* queue_internal.h - private parts of bh_queue shared by src/core/queue*.c
 * (ring, budgets, completion, the inbox block) and the read-only views the
 * tests use instead of naming struct fields.
 *
 * Invariants (asserted in debug builds by bh__queue_check()):
 * - count <= ring_cap <= cfg.max_items, head < ring_cap (or both 0);
 * - pinned <= count, and pinned == 0 unless a batch is out;
 * - head_off < length of ring[head] unless that item is empty or pinned;
 * - used_items >= count and used_bytes <= cfg.max_bytes (inbox items are
 *   counted in used_* too). */
#ifndef BH_QUEUE_INTERNAL_H
#define BH_QUEUE_INTERNAL_H

#include <assert.h>
#include <pthread.h>
#include <stddef.h>

#include <bytes_handoff/error.h>
#include <bytes_handoff/queue.h>

#include "internal.h"

#define BHQ_RING_MIN ((size_t)8) /* first ring: slots */
#define BHQ_IOV_MIN ((size_t)8)  /* first batch array: iovecs */
/* A drained queue gives its ring and batch array to the thread's array
 * cache (array_cache.c), one larger than this many entries shrunk back to it
 * first, so an idle queue holds no arrays and the cache no burst's. */
#define BHQ_KEEP ((size_t)64)

/* The cross-thread inbox: producers append under lock; the owner swaps the
 * array with the spare one and moves the items into the ring. */
struct bh_queue_inbox {
    pthread_mutex_t lock;
    bh_queue_wake_fn wake;
    void *wake_ctx;
    bh_queue_item *items; /* producers append here (under lock) */
    size_t n, cap;
    bh_queue_item *spare; /* the owner's half of the double buffer */
    size_t spare_cap;
    uint64_t refused;     /* refusals counted by bh_queue_submit */
    int sealed;           /* no more submissions accepted */
};

/* ---- shared by queue.c, queue_ring.c, queue_batch.c, queue_inbox.c ----- */

static inline size_t bh__queue_index(const bh_queue *q, size_t i)
{
    size_t j = q->head + i;
    return j >= q->ring_cap ? j - q->ring_cap : j;
}

static inline int bh__queue_writable(const bh_queue *q)
{
    return q->state == BH_QUEUE_OPEN || q->state == BH_QUEUE_SEALED;
}

/* BH_OK for an open queue, else BH_EINVAL (never initialised) or BH_ECLOSED. */
static inline int bh__queue_open(const bh_queue *q)
{
    if (q->state == BH_QUEUE_OPEN)
        return BH_OK;
    return q->state == BH_QUEUE_UNINIT ? BH_EINVAL : BH_ECLOSED;
}

/* Budget lock: the inbox mutex once cross-thread submission is enabled. */
static inline void bh__queue_lock(const bh_queue *q)
{
    if (q->inbox)
        pthread_mutex_lock(&q->inbox->lock);
}

static inline void bh__queue_unlock(const bh_queue *q)
{
    if (q->inbox)
        pthread_mutex_unlock(&q->inbox->lock);
}

/* Grows an array of elem-sized entries by doubling from min until it holds
 * need, never beyond max (need <= max). *arr and *cap are unchanged on
 * failure. The one grow routine of the queue (ring, batch array, inbox). */
int bh__grow(void **arr, size_t *cap, size_t need, size_t min, size_t max, size_t elem);

/* Reserves budget for one item of len bytes; caller holds the lock. A
 * refusal arms the drain signal. */
int bh__queue_budget_reserve(bh_queue *q, size_t len);
/* Returns budget; notes a due drain signal. Takes the lock. */
void bh__queue_budget_release(bh_queue *q, size_t items, size_t bytes);
/* Makes room for need ring items (keeps their order). */
int bh__queue_ring_reserve(bh_queue *q, size_t need);
void bh__queue_ring_push(bh_queue *q, const bh_queue_item *it);
bh_queue_item bh__queue_ring_pop(bh_queue *q);
/* Releases the slice, then runs the ticket. */
void bh__queue_complete(bh_queue *q, bh_queue_item *it, int status);
/* Completes ring items [keep, count) with status, oldest first. */
void bh__queue_complete_tail(bh_queue *q, size_t keep, int status);
/* Completes items[0..n) (detached from the inbox) with status. */
void bh__queue_complete_array(bh_queue *q, bh_queue_item *items, size_t n, int status);
/* Gives the ring and batch array of an idle queue (nothing queued, no batch
 * out, no completion loop running, not closed) to the thread's array cache;
 * does nothing otherwise. The next push or batch takes arrays again. */
void bh__queue_give_back(bh_queue *q);
/* Frees the arrays of a closed queue, or gives a drained queue's back, once
 * no completion loop or batch refers to them. */
void bh__queue_settle(bh_queue *q);
/* Seals the inbox and detaches its items: returns their number (they stay
 * in inbox->items for the caller to complete) after returning their budget. */
size_t bh__queue_inbox_seal(bh_queue *q);

#ifdef NDEBUG
#define bh__queue_check(q) ((void)0)
#else
void bh__queue_check(const bh_queue *q);
#endif

/* ---- read-only views for tests ------------------------------------------- */

static inline size_t bh__queue_ring_cap(const bh_queue *q) { return q->ring_cap; }
static inline size_t bh__queue_head(const bh_queue *q) { return q->head; }
static inline size_t bh__queue_head_off(const bh_queue *q) { return q->head_off; }
static inline size_t bh__queue_iov_cap(const bh_queue *q) { return q->iov_cap; }
static inline const void *bh__queue_ring_ptr(const bh_queue *q) { return q->ring; }
/* 1 when the ring's items wrap around the end of its storage. */
static inline int bh__queue_wrapped(const bh_queue *q)
{
    return q->head != 0 && q->head + q->count > q->ring_cap;
}

#endif
