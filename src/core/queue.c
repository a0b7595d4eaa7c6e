/* queue.c - bh_queue: the ring, both budgets, tickets, the drain signal,
 * failing, sealing and closing. No I/O and no event loop: batches are built
 * in queue_batch.c, the cross-thread inbox lives in queue_inbox.c.
 *
 * Ring: accepted items live in a ring that is allocated on first use, grows
 * by doubling up to cfg.max_items and is then reused, so a steady stream of
 * pushes allocates nothing; when the queue drains, a ring above BHQ_KEEP
 * slots shrinks back to it. head_off counts the bytes of the head item
 * already written.
 *
 * Completion loops detach the items they complete before running any
 * callback and count their nesting in depth: a callback may push (appended
 * behind) or close (the arrays are freed only once depth is back to 0 and no
 * batch is out). */
#include <string.h>

#include "queue_internal.h"

static const bh_bytes empty_slice = {NULL, 0, NULL};

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

/* Arms the drain signal when the queue is above the low-water mark. */
static void arm_above_mark(bh_queue *q)
{
    bh__queue_lock(q);
    if (q->used_bytes > q->low_water)
        q->want_drain = 1;
    bh__queue_unlock(q);
}

/* ---- ring ---------------------------------------------------------------- */

int bh__queue_ring_reserve(bh_queue *q, size_t need)
{
    if (need > q->cfg.max_items)
        return BH_EFULL;
    size_t old = q->ring_cap;
    void *r = q->ring;
    if (bh__grow(&r, &q->ring_cap, need, BHQ_RING_MIN, q->cfg.max_items, sizeof *q->ring) != 0)
        return BH_ENOMEM;
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

/* Shrinks an array of a drained queue back to BHQ_KEEP entries (best
 * effort: on failure the larger one stays). */
static void shrink(void **arr, size_t *cap, size_t elem)
{
    if (*cap <= BHQ_KEEP)
        return;
    void *p = bh__realloc(*arr, BHQ_KEEP * elem);
    if (p) {
        *arr = p;
        *cap = BHQ_KEEP;
    }
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
    } else if (q->count == 0) {
        void *r = q->ring;
        shrink(&r, &q->ring_cap, sizeof *q->ring);
        q->ring = r;
        if (q->iov != &q->iov1) {
            void *v = q->iov;
            shrink(&v, &q->iov_cap, sizeof *q->iov);
            q->iov = v;
        }
    }
    bh__queue_check(q);
}

/* ---- public API ---------------------------------------------------------- */

int bh_queue_init(bh_queue *q, const bh_queue_config *cfg, bh_queue_complete_fn complete)
{
    if (!q || !cfg || cfg->max_items == 0 || cfg->max_bytes == 0)
        return BH_EINVAL;
    memset(q, 0, sizeof *q);
    q->cfg = *cfg;
    q->complete = complete;
    q->state = BH_QUEUE_OPEN;
    return BH_OK;
}

/* Checks that an item may be offered at all. */
static int check_offer(bh_queue *q, size_t len)
{
    int rc = bh__queue_open(q);
    if (rc != BH_OK)
        return rc;
    if (len > q->cfg.max_bytes)
        return BH_ETOOLONG;
    return BH_OK;
}

int bh_queue_reserve(bh_queue *q, size_t len)
{
    if (!q)
        return BH_EINVAL;
    int rc = check_offer(q, len);
    if (rc == BH_OK) {
        bh__queue_lock(q);
        rc = bh__queue_budget_reserve(q, len);
        bh__queue_unlock(q);
    }
    if (rc == BH_OK) {
        rc = bh__queue_ring_reserve(q, q->count + 1);
        if (rc != BH_OK)
            bh__queue_budget_release(q, 1, len);
    }
    if (rc != BH_OK && rc != BH_EINVAL)
        q->refused++;
    return rc;
}

void bh_queue_unreserve(bh_queue *q, size_t len) { bh__queue_budget_release(q, 1, len); }

int bh_queue_push_reserved(bh_queue *q, bh_bytes *data, bh_queue_cb cb, void *ctx, size_t written)
{
    assert(written <= data->len && (written == 0 || bh_queue_idle(q)));
    bh_queue_item it = {*data, cb, ctx};
    *data = empty_slice;
    q->written_bytes += written;
    if (written > 0 && written == it.data.len && !cb) {
        bh__queue_budget_release(q, 1, written);
        bh__queue_complete(q, &it, 0);
        return 1;
    }
    bh__queue_budget_release(q, 0, written);
    bh__queue_ring_push(q, &it);
    q->head_off = q->count == 1 ? written : q->head_off;
    arm_above_mark(q);
    bh__queue_check(q);
    return 0;
}

int bh_queue_push(bh_queue *q, bh_bytes *data, bh_queue_cb cb, void *ctx)
{
    if (!q || !data || (data->len > 0 && !data->ptr))
        return BH_EINVAL;
    int rc = bh_queue_reserve(q, data->len);
    if (rc == BH_OK)
        bh_queue_push_reserved(q, data, cb, ctx, 0);
    return rc;
}

size_t bh_queue_take_back(bh_queue *q, bh_bytes *out)
{
    assert(q->count > 0 && !q->batch_out);
    size_t i = bh__queue_index(q, q->count - 1);
    size_t written = q->count == 1 ? q->head_off : 0;
    *out = q->ring[i].data;
    memset(&q->ring[i], 0, sizeof q->ring[i]);
    q->count--;
    if (q->count == 0)
        q->head = q->head_off = 0;
    bh__queue_budget_release(q, 1, out->len - written);
    return written;
}

void bh_queue_set_failed(bh_queue *q, int err)
{
    if (bh__queue_writable(q)) {
        q->state = BH_QUEUE_FAILED;
        q->error = err;
    }
    if (q->inbox) {
        pthread_mutex_lock(&q->inbox->lock);
        q->inbox->sealed = 1;
        pthread_mutex_unlock(&q->inbox->lock);
    }
}

void bh_queue_fail(bh_queue *q, int err)
{
    bh_queue_set_failed(q, err);
    struct bh_queue_inbox *ib = q->inbox; /* a callback may close q meanwhile */
    size_t n_inbox = ib ? bh__queue_inbox_seal(q) : 0;
    bh__queue_lock(q);
    int waiting = q->want_drain;
    q->want_drain = 0;
    bh__queue_unlock(q);
    q->depth++;
    bh__queue_complete_tail(q, q->pinned, err);
    if (n_inbox)
        bh__queue_complete_array(q, ib->items, n_inbox, err);
    q->depth--;
    if (waiting && q->state != BH_QUEUE_CLOSED)
        q->drain_due = 1;
    bh__queue_settle(q);
}

int bh_queue_seal(bh_queue *q, int (*if_empty)(void *ctx), void *ctx)
{
    if (!q)
        return BH_EINVAL;
    int rc = bh__queue_open(q);
    if (rc != BH_OK)
        return rc;
    bh__queue_lock(q);
    int empty = bh_queue_idle(q) && (!q->inbox || q->inbox->n == 0);
    rc = empty && if_empty ? if_empty(ctx) : 0;
    if (rc == 0) {
        if (q->inbox)
            q->inbox->sealed = 1;
        q->state = BH_QUEUE_SEALED;
    }
    bh__queue_unlock(q);
    return rc;
}

struct bh_queue_inbox *bh_queue_close(bh_queue *q)
{
    if (!q || q->state == BH_QUEUE_CLOSED)
        return NULL;
    q->state = BH_QUEUE_CLOSED;
    q->drain_due = 0;
    struct bh_queue_inbox *ib = q->inbox;
    size_t n_inbox = 0;
    if (ib) {
        n_inbox = bh__queue_inbox_seal(q);
        pthread_mutex_lock(&ib->lock);
        q->refused += ib->refused;
        ib->refused = 0;
        pthread_mutex_unlock(&ib->lock);
        q->inbox = NULL;
    }
    q->depth++;
    bh__queue_complete_tail(q, q->pinned, BH_ECANCELED);
    if (n_inbox)
        bh__queue_complete_array(q, ib->items, n_inbox, BH_ECANCELED);
    q->depth--;
    bh__queue_settle(q);
    return ib;
}

void bh_queue_set_low_water(bh_queue *q, size_t low_water_bytes)
{
    bh__queue_lock(q);
    q->low_water = low_water_bytes;
    bh__queue_unlock(q);
}

int bh_queue_take_drain(bh_queue *q)
{
    int due = q->drain_due;
    q->drain_due = 0;
    return due;
}

int bh_queue_idle(const bh_queue *q) { return q->count == 0 && !q->batch_out; }

int bh_queue_empty(const bh_queue *q)
{
    if (!bh_queue_idle(q))
        return 0;
    int empty = 1;
    if (q->inbox) {
        pthread_mutex_lock(&q->inbox->lock);
        empty = q->inbox->n == 0;
        pthread_mutex_unlock(&q->inbox->lock);
    }
    return empty;
}

size_t bh_queue_count(const bh_queue *q) { return q->count; }

bh_queue_state bh_queue_get_state(const bh_queue *q) { return (bh_queue_state)q->state; }

int bh_queue_error(const bh_queue *q) { return q->error; }

void bh_queue_stats_get(const bh_queue *q, bh_queue_stats *out)
{
    out->written_items = q->written_items;
    out->written_bytes = q->written_bytes;
    out->refused = q->refused;
    bh__queue_lock(q);
    out->queued_items = q->used_items;
    out->queued_bytes = q->used_bytes;
    if (q->inbox)
        out->refused += q->inbox->refused;
    bh__queue_unlock(q);
}
