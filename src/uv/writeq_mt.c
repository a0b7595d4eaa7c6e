/* writeq_mt.c - cross-thread submission into a bh_writeq: the queue core's
 * inbox (mutex, item arrays, budgets) woken through a uv_async_t.
 *
 * The async handle lives in a block of its own together with the inbox
 * pointer that bh_queue_close() hands over; the handle's close callback frees
 * both, because libuv runs close callbacks in LIFO order and q itself may be
 * freed from the stream's close callback, and producers may race the close
 * until then. */
#include <string.h>

#include "writeq_internal.h"

/* The core's wake hook: runs on the producer's thread under the inbox lock,
 * so close cannot free the handle in between. */
static void mt_wake(void *ctx)
{
    struct bh_writeq_mt *mt = ctx;
    uv_async_send(&mt->async);
}

/* Loop side of the inbox: take everything submitted so far into the ring
 * and keep the writer going. */
static void on_async(uv_async_t *h)
{
    struct bh_writeq_mt *mt = (struct bh_writeq_mt *)(void *)h;
    bh_writeq *q = mt->q;
    if (!q)
        return;
    bh_queue_take_inbox(&q->core);
    bh__wq_after_io(q, 0);
}

static void on_mt_abort(uv_handle_t *h) { bh_free(h); }

static int init_async(uv_loop_t *loop, void *h) { return uv_async_init(loop, h, on_async); }

int bh_writeq_enable_mt(bh_writeq *q)
{
    if (!q)
        return BH_EINVAL;
    bh_queue_lifecycle s = bh_queue_state(&q->core);
    if (s != BH_QUEUE_OPEN)
        return s == BH_QUEUE_UNINIT ? BH_EINVAL : BH_ECLOSED;
    if (q->mt)
        return BH_OK;
    int rc;
    struct bh_writeq_mt *mt = bh__wq_block_new(q->loop, sizeof *mt, init_async, &rc);
    if (!mt)
        return rc;
    rc = bh_queue_enable_mt(&q->core, mt_wake, mt);
    if (rc != BH_OK) {
        uv_close((uv_handle_t *)&mt->async, on_mt_abort);
        return rc;
    }
    mt->q = q;
    q->mt = mt;
    return BH_OK;
}

int bh_writeq_submit_mt(bh_writeq *q, bh_bytes *data, bh_write_cb cb, void *ctx)
{
    if (!q)
        return BH_EINVAL;
    return bh_queue_submit(&q->core, data, (bh_queue_cb)cb, ctx);
}
