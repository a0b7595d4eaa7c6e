/* queue_batch.c - building batches as struct iovec arrays and accounting
 * what an adapter wrote from them.
 *
 * A batch is built straight from the ring into the queue's iovec array
 * (taken from the thread's array cache or allocated, grown on demand up to
 * IOV_MAX entries, given back when the queue drains; a one-entry fallback
 * keeps the queue moving when it cannot grow), starting at head_off inside the head
 * item. Slices above BH_QUEUE_CHUNK span several iovecs and a batch stops
 * once it covers BH_QUEUE_BATCH_BYTES, so no single writev exceeds INT_MAX.
 * The first `pinned` items belong to the batch until it ends: close and
 * fail leave them alone, and bh_queue_batch_done() completes the ones the
 * written bytes cover, in order, keeping the exact offset into a partly
 * written one. */
#include <limits.h>
#include <stdint.h>

#include "array_cache_internal.h"
#include "queue_internal.h"

#ifdef IOV_MAX
#define BHQ_IOV_MAX ((size_t)IOV_MAX)
#else
#define BHQ_IOV_MAX ((size_t)1024)
#endif

/* Makes q->iov usable for a batch of the queued items: takes an array from
 * the thread's array cache when the queue has none, grows it towards count
 * entries, keeping the old one on failure (a smaller batch still makes
 * progress), or falls back to the embedded single entry. */
static void iov_prepare(bh_queue *q)
{
    size_t want = q->count < BHQ_IOV_MAX ? q->count : BHQ_IOV_MAX;
    if (!q->iov) {
        size_t bytes;
        q->iov = bh__array_cache_take(BH_ARRAY_IOV, BHQ_IOV_MAX * sizeof *q->iov, &bytes);
        q->iov_cap = q->iov ? bytes / sizeof *q->iov : 0;
    }
    if (q->iov_cap < want) {
        void *v = q->iov == &q->iov1 ? NULL : q->iov;
        size_t cap = q->iov == &q->iov1 ? 0 : q->iov_cap;
        if (bh__grow(&v, &cap, want, BHQ_IOV_MIN, BHQ_IOV_MAX, sizeof *q->iov) == BH_OK) {
            q->iov = v;
            q->iov_cap = cap;
        }
    }
    if (q->iov_cap == 0) {
        q->iov = &q->iov1;
        q->iov_cap = 1;
    }
}

int bh_queue_batch_next(bh_queue *q, size_t max_iov, bh_queue_batch *out)
{
    if (q->count == 0 || q->batch_out || max_iov == 0)
        return 0;
    iov_prepare(q);
    size_t max = max_iov < q->iov_cap ? max_iov : q->iov_cap;
    size_t nb = 0, total = 0, touched = 0;
    for (size_t i = 0; i < q->count && nb < max && total < BH_QUEUE_BATCH_BYTES; i++) {
        const bh_queue_item *it = &q->ring[bh__queue_index(q, i)];
        size_t off = i == 0 ? q->head_off : 0;
        size_t rem = it->data.len - off;
        touched++;
        do {
            size_t n = rem < BH_QUEUE_CHUNK ? rem : BH_QUEUE_CHUNK;
            q->iov[nb].iov_base = it->data.ptr ? (void *)(uintptr_t)(it->data.ptr + off) : NULL;
            q->iov[nb].iov_len = n;
            nb++;
            off += n;
            rem -= n;
            total += n;
        } while (rem > 0 && nb < max && total < BH_QUEUE_BATCH_BYTES);
    }
    q->pinned = touched;
    q->batch_bytes = total;
    q->batch_out = 1;
    out->iov = q->iov;
    out->n_iov = nb;
    out->items = touched;
    out->bytes = total;
    bh__queue_check(q);
    return 1;
}

/* Ends the batch; a queue that failed or was closed meanwhile completes
 * what is left with its failure. */
static void batch_end(bh_queue *q)
{
    q->pinned = 0;
    q->batch_out = 0;
    q->batch_bytes = 0;
    if (!bh__queue_writable(q) && q->state != BH_QUEUE_UNINIT)
        bh__queue_complete_tail(q, 0, q->state == BH_QUEUE_CLOSED ? BH_ECANCELED : q->error);
    bh__queue_settle(q);
}

size_t bh_queue_batch_done(bh_queue *q, size_t written)
{
    assert(q->batch_out && written <= q->batch_bytes);
    size_t completed = 0;
    q->depth++;
    while (q->pinned > 0 && q->count > 0) {
        bh_queue_item *it = &q->ring[q->head];
        size_t rem = it->data.len - q->head_off;
        if (rem > written) {
            q->head_off += written;
            q->written_bytes += written;
            bh__queue_budget_release(q, 0, written);
            break;
        }
        written -= rem;
        bh_queue_item local = bh__queue_ring_pop(q);
        q->pinned--;
        q->written_bytes += rem;
        completed++;
        bh__queue_budget_release(q, 1, rem);
        bh__queue_complete(q, &local, 0);
    }
    q->depth--;
    batch_end(q);
    return completed;
}

void bh_queue_batch_abort(bh_queue *q)
{
    assert(q->batch_out);
    batch_end(q);
}

void bh_queue_batch_abandon(bh_queue *q, int err)
{
    if (!q->batch_out)
        return;
    q->depth++;
    /* A callback may close the queue, which keeps the pinned items. */
    for (size_t i = 0; i < q->pinned && i < q->count; i++) {
        bh_queue_item *it = &q->ring[bh__queue_index(q, i)];
        bh_queue_item ticket = {{NULL, 0, NULL}, it->cb, it->ctx};
        it->cb = NULL;
        it->ctx = NULL;
        if (ticket.cb)
            bh__queue_complete(q, &ticket, err);
    }
    q->depth--;
}
