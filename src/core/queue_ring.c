/* queue_ring.c - bh_queue's storage: the ring (taken from the thread's
 * array cache or allocated on first use, grown by doubling up to
 * cfg.max_items, given back to the cache when the queue drains), the budgets
 * and the drain signal they drive, and the completion loops that release
 * slices and run tickets. Lifecycle and the public calls are in queue.c.
 *
 * Completion loops detach the items they complete before running any
 * callback and count their nesting in depth: a callback may push (appended
 * behind) or close (the arrays are freed only once depth is back to 0 and no
 * batch is out). */
#include <stdint.h>
#include <string.h>

#include "array_cache_internal.h"
#include "queue_internal.h"
#include "thread_cache_internal.h"

int bh__grow(void **arr, size_t *cap, size_t need, size_t min, size_t max, size_t elem)
{
    if (need <= *cap)
        return BH_OK;
    size_t n = *cap >= min ? *cap : min;
    while (n < need)
        n = n > max / 2 ? max : n * 2;
    if (n > max)
        n = max;
    size_t size;
    if (n < need || bh__size_mul(n, elem, &size) != 0)
        return BH_ENOMEM;
    void *p = bh__realloc(*arr, size);
    if (!p)
        return BH_ENOMEM;
    *arr = p;
    *cap = n;
    return BH_OK;
}

#ifndef NDEBUG
void bh__queue_check(const bh_queue *q)
{
    assert(q->count <= q->ring_cap);
    assert(q->ring_cap <= q->cfg.max_items);
    assert(q->ring_cap == 0 || q->head < q->ring_cap);
    assert(q->pinned <= q->count);
    assert(q->batch_out || q->pinned == 0);
    assert(q->count == 0 || q->pinned > 0 || q->head_off == 0 ||
           q->head_off < q->ring[q->head].data.len);
}
#endif

/* ---- budgets ------------------------------------------------------------- */

int bh__queue_budget_reserve(bh_queue *q, size_t len)
{
    if (q->used_items >= q->cfg.max_items || len > q->cfg.max_bytes - q->used_bytes) {
        q->want_drain = 1;
        return BH_EFULL;
    }
    q->used_items++;
    q->used_bytes += len;
    return BH_OK;
}

void bh__queue_budget_release(bh_queue *q, size_t items, size_t bytes)
{
    bh__queue_lock(q);
    assert(items <= q->used_items && bytes <= q->used_bytes);
    q->used_items -= items;
    q->used_bytes -= bytes;
    if (q->want_drain && q->used_bytes <= q->low_water) {
        q->want_drain = 0;
        q->drain_due = 1;
    }
    bh__queue_unlock(q);
}

/* ---- ring ---------------------------------------------------------------- */

int bh__queue_ring_reserve(bh_queue *q, size_t need)
{
    if (need > q->cfg.max_items)
        return BH_EFULL;
    if (!q->ring) {
        size_t bytes, max_bytes;
        if (bh__size_mul(q->cfg.max_items, sizeof *q->ring, &max_bytes) != 0)
            max_bytes = SIZE_MAX;
        q->ring = bh__array_cache_take(BH_ARRAY_RING, max_bytes, &bytes);
        q->ring_cap = q->ring ? bytes / sizeof *q->ring : 0;
    }
    size_t old = q->ring_cap;
    void *r = q->ring;
    if (bh__grow(&r, &q->ring_cap, need, BHQ_RING_MIN, q->cfg.max_items, sizeof *q->ring) != 0) {
        bh__queue_give_back(q); /* an empty queue keeps no array it took */
        return BH_ENOMEM;
    }
    q->ring = r;
    if (q->count == 0) {
        q->head = 0;
    } else if (q->ring_cap != old && q->head + q->count > old) {
        /* Wrapped: the part at the end of the old storage moves to the end
         * of the new one, so the items stay in order. */
        size_t tail = old - q->head;
        memmove(q->ring + (q->ring_cap - tail), q->ring + q->head, tail * sizeof *q->ring);
        q->head = q->ring_cap - tail;
    }
    return BH_OK;
}

void bh__queue_ring_push(bh_queue *q, const bh_queue_item *it)
{
    assert(q->count < q->ring_cap);
    q->ring[bh__queue_index(q, q->count)] = *it;
    q->count++;
}

bh_queue_item bh__queue_ring_pop(bh_queue *q)
{
    assert(q->count > 0);
    bh_queue_item it = q->ring[q->head];
    memset(&q->ring[q->head], 0, sizeof it);
    q->head = q->head + 1 == q->ring_cap ? 0 : q->head + 1;
    q->count--;
    q->head_off = 0;
    if (q->count == 0)
        q->head = 0;
    return it;
}

/* ---- completion ---------------------------------------------------------- */

void bh__queue_complete(bh_queue *q, bh_queue_item *it, int status)
{
    bh_queue_cb cb = it->cb;
    void *ctx = it->ctx;
    if (status == 0)
        q->written_items++;
    bh_bytes_release(&it->data);
    if (!cb)
        return;
    if (q->complete)
        q->complete(q, cb, ctx, status);
    else
        cb(q, status, ctx);
}

void bh__queue_complete_tail(bh_queue *q, size_t keep, int status)
{
    if (keep >= q->count)
        return;
    size_t n = q->count - keep;
    size_t idx = bh__queue_index(q, keep);
    size_t bytes = 0;
    for (size_t i = 0, j = idx; i < n; i++) {
        bytes += q->ring[j].data.len - (keep == 0 && i == 0 ? q->head_off : 0);
        j = j + 1 == q->ring_cap ? 0 : j + 1;
    }
    q->count = keep;
    if (keep == 0)
        q->head_off = 0;
    bh__queue_budget_release(q, n, bytes);
    q->depth++;
    for (size_t i = 0; i < n; i++) {
        bh_queue_item it = q->ring[idx];
        memset(&q->ring[idx], 0, sizeof it);
        idx = idx + 1 == q->ring_cap ? 0 : idx + 1;
        bh__queue_complete(q, &it, status);
    }
    q->depth--;
    if (q->count == 0)
        q->head = 0;
}

void bh__queue_complete_array(bh_queue *q, bh_queue_item *items, size_t n, int status)
{
    q->depth++;
    for (size_t i = 0; i < n; i++) {
        bh_queue_item it = items[i];
        memset(&items[i], 0, sizeof it);
        bh__queue_complete(q, &it, status);
    }
    q->depth--;
}

/* Gives an array of an idle queue to the thread's array cache, shrunk
 * back to BHQ_KEEP entries first when a burst grew it (when that fails it
 * is freed instead). */
static void give_back(int kind, void *arr, size_t cap, size_t elem)
{
    if (cap > BHQ_KEEP) {
        void *p = bh__realloc(arr, BHQ_KEEP * elem);
        if (!p) {
            bh__free(arr);
            return;
        }
        arr = p;
        cap = BHQ_KEEP;
    }
    bh__thread_cache_put_array(kind, arr, cap * elem);
}

void bh__queue_give_back(bh_queue *q)
{
    if (q->count != 0 || q->depth != 0 || q->batch_out || q->state == BH_QUEUE_CLOSED)
        return;
    if (q->ring)
        give_back(BH_ARRAY_RING, q->ring, q->ring_cap, sizeof *q->ring);
    q->ring = NULL;
    q->ring_cap = q->head = q->head_off = 0;
    if (q->iov && q->iov != &q->iov1)
        give_back(BH_ARRAY_IOV, q->iov, q->iov_cap, sizeof *q->iov);
    q->iov = NULL;
    q->iov_cap = 0;
}

void bh__queue_settle(bh_queue *q)
{
    if (q->depth != 0 || q->batch_out)
        return;
    if (q->state == BH_QUEUE_CLOSED) {
        bh__free(q->ring);
        q->ring = NULL;
        q->ring_cap = q->head = q->count = q->head_off = 0;
        if (q->iov != &q->iov1)
            bh__free(q->iov);
        q->iov = NULL;
        q->iov_cap = 0;
    } else {
        bh__queue_give_back(q);
    }
    bh__queue_check(q);
}
