/* queue.c - bh_queue's lifecycle and public calls: init, push (and the
 * direct-write path: claim, push_claimed, take_back), fail, seal, close,
 * the drain signal, state and statistics. No I/O and no event loop: the ring,
 * budgets and completion loops are in queue_ring.c, batches in
 * queue_batch.c, the cross-thread inbox in queue_inbox.c.
 *
 * Accepted items live in a ring taken on first use (from the thread's array
 * cache, else allocated) and given back whenever the queue is idle again, so
 * an idle queue holds no heap memory; head_off counts the bytes of the head
 * item already written. */
#include <string.h>

#include "queue_internal.h"

static const bh_bytes empty_slice = {NULL, 0, NULL};

/* Arms the drain signal when the queue is above the low-water mark. */
static void arm_above_mark(bh_queue *q)
{
    bh__queue_lock(q);
    if (q->used_bytes > q->low_water)
        q->want_drain = 1;
    bh__queue_unlock(q);
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

int bh_queue_claim(bh_queue *q, size_t len)
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

void bh_queue_unclaim(bh_queue *q, size_t len)
{
    bh__queue_budget_release(q, 1, len);
    bh__queue_give_back(q);
}

int bh_queue_push_claimed(bh_queue *q, bh_bytes *data, bh_queue_cb cb, void *ctx, size_t written)
{
    assert(written <= data->len && (written == 0 || bh_queue_ring_empty(q)));
    bh_queue_item it = {*data, cb, ctx};
    *data = empty_slice;
    q->written_bytes += written;
    if (written > 0 && written == it.data.len && !cb) {
        bh__queue_budget_release(q, 1, written);
        bh__queue_complete(q, &it, 0);
        bh__queue_give_back(q);
        return 1;
    }
    if (written > 0)
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
    int rc = bh_queue_claim(q, data->len);
    if (rc == BH_OK)
        bh_queue_push_claimed(q, data, cb, ctx, 0);
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
    bh__queue_give_back(q);
    return written;
}

void bh_queue_fail_deferred(bh_queue *q, int err)
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
    bh_queue_fail_deferred(q, err);
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
    int empty = bh_queue_ring_empty(q) && (!q->inbox || q->inbox->n == 0);
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

int bh_queue_ring_empty(const bh_queue *q) { return q->count == 0 && !q->batch_out; }

int bh_queue_empty(const bh_queue *q)
{
    if (!bh_queue_ring_empty(q))
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

void bh_queue_ring_view(const bh_queue *q, struct bh_queue_ring_view *out)
{
    out->storage = q->ring;
    out->capacity = q->ring_cap;
    out->count = q->count;
    out->head_offset = q->head_off;
    out->max_items = q->cfg.max_items;
    out->wrapped = bh__queue_wrapped(q);
}

bh_queue_lifecycle bh_queue_state(const bh_queue *q) { return (bh_queue_lifecycle)q->state; }

int bh_queue_error(const bh_queue *q) { return q->error; }

void bh_queue_stats(const bh_queue *q, struct bh_queue_stats *out)
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
