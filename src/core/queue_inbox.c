/* queue_inbox.c - cross-thread submission into a bh_queue.
 *
 * Producers on any thread append to the inbox array under its mutex, with
 * the queue's budgets (used_items, used_bytes, want_drain and low_water are
 * guarded by the same mutex from bh_queue_enable_mt() on). The first item
 * in an empty inbox calls the adapter's wake hook, still under the lock, so
 * that close cannot free what the hook signals in between; later items ride
 * along until the owner swaps the inbox with its spare array
 * (bh_queue_take_inbox) and moves the items into the ring. bh_queue_close()
 * hands the sealed inbox to its caller, because producers may still race the
 * close and must find the mutex alive. */
#include <string.h>

#include "queue_internal.h"

int bh_queue_enable_mt(bh_queue *q, bh_queue_wake_fn wake, void *wake_ctx)
{
    if (!q || !wake)
        return BH_EINVAL;
    int rc = bh__queue_open(q);
    if (rc != BH_OK || q->inbox)
        return rc;
    struct bh_queue_inbox *ib = bh__malloc(sizeof *ib);
    if (!ib)
        return BH_ENOMEM;
    memset(ib, 0, sizeof *ib);
    if (pthread_mutex_init(&ib->lock, NULL) != 0) {
        bh__free(ib);
        return BH_ENOMEM;
    }
    ib->wake = wake;
    ib->wake_ctx = wake_ctx;
    q->inbox = ib;
    q->inbox_submit = ib;
    return BH_OK;
}

int bh_queue_submit(bh_queue *q, bh_bytes *data, bh_queue_cb cb, void *ctx)
{
    if (!q || !data || (data->len > 0 && !data->ptr))
        return BH_EINVAL;
    struct bh_queue_inbox *ib = q->inbox_submit;
    if (!ib)
        return BH_EINVAL;
    int rc;
    pthread_mutex_lock(&ib->lock);
    if (ib->sealed) {
        rc = BH_ECLOSED;
    } else if (data->len > q->cfg.max_bytes) {
        rc = BH_ETOOLONG;
    } else {
        /* The budget bounds the inbox by max_items, so it grows at most to that. */
        rc = bh__queue_budget_reserve(q, data->len);
        if (rc == BH_OK) {
            void *items = ib->items;
            if (bh__grow(&items, &ib->cap, ib->n + 1, BHQ_RING_MIN, q->cfg.max_items,
                         sizeof *ib->items) != BH_OK) {
                q->used_items--;
                q->used_bytes -= data->len;
                rc = BH_ENOMEM;
            }
            ib->items = items;
        }
        if (rc == BH_OK) {
            bh_queue_item it = {*data, cb, ctx};
            ib->items[ib->n++] = it;
            if (q->used_bytes > q->low_water)
                q->want_drain = 1;
            if (ib->n == 1)
                ib->wake(ib->wake_ctx);
        }
    }
    if (rc != BH_OK)
        ib->refused++;
    pthread_mutex_unlock(&ib->lock);
    if (rc == BH_OK)
        memset(data, 0, sizeof *data);
    return rc;
}

size_t bh__queue_inbox_seal(bh_queue *q)
{
    struct bh_queue_inbox *ib = q->inbox;
    pthread_mutex_lock(&ib->lock);
    ib->sealed = 1;
    size_t n = ib->n;
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += ib->items[i].data.len;
    ib->n = 0;
    q->used_items -= n;
    q->used_bytes -= bytes;
    pthread_mutex_unlock(&ib->lock);
    return n;
}

/* Sums the bytes of items[0..n). */
static size_t items_bytes(const bh_queue_item *items, size_t n)
{
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += items[i].data.len;
    return bytes;
}

size_t bh_queue_take_inbox(bh_queue *q)
{
    struct bh_queue_inbox *ib = q->inbox;
    if (!ib)
        return 0;
    pthread_mutex_lock(&ib->lock);
    bh_queue_item *items = ib->items;
    size_t n = ib->n;
    size_t cap = ib->cap;
    ib->items = ib->spare;
    ib->cap = ib->spare_cap;
    ib->n = 0;
    ib->spare = items;
    ib->spare_cap = cap;
    pthread_mutex_unlock(&ib->lock);
    if (n == 0)
        return 0;
    if (!bh__queue_writable(q)) {
        /* Failed with items still in flight between threads. */
        bh__queue_budget_release(q, n, items_bytes(items, n));
        bh__queue_complete_array(q, items, n, q->error);
        bh__queue_settle(q);
        return 0;
    }
    if (bh__queue_ring_reserve(q, q->count + n) != BH_OK) {
        bh__queue_budget_release(q, n, items_bytes(items, n));
        q->depth++;
        bh_queue_fail(q, BH_ENOMEM);
        bh__queue_complete_array(q, items, n, BH_ENOMEM);
        q->depth--;
        bh__queue_settle(q);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        bh__queue_ring_push(q, &items[i]);
        memset(&items[i], 0, sizeof items[i]);
    }
    bh__queue_check(q);
    return n;
}

void bh_queue_inbox_free(struct bh_queue_inbox *ib)
{
    if (!ib)
        return;
    pthread_mutex_destroy(&ib->lock);
    bh__free(ib->items);
    bh__free(ib->spare);
    bh__free(ib);
}
