/* writeq_stall.c - the write-stall timeout of bh_writeq: when no byte has
 * been written for `ms` while items are queued, the queue fails with
 * UV_ETIMEDOUT.
 *
 * One uv_timer_t per queue at most, in a block allocated when a timeout is
 * set and closed when it is cleared or the queue is closed (its close
 * callback frees it without touching q). The timer runs only while the
 * queue is busy. Progress does not restart it: the driver records the loop
 * time of the last progress (a field store) when a uv_try_write or uv_write
 * completes bytes, a firing timer also counts a change of libuv's write
 * queue size (the write in flight moving) as progress, and re-arms itself
 * for the rest of the window. */
#include <string.h>

#include "writeq_internal.h"

static void on_stall_close(uv_handle_t *h) { bh_free(h->data); }

static int init_timer(uv_loop_t *loop, void *h) { return uv_timer_init(loop, h); }

void bh__wq_stall_progress(bh_writeq *q)
{
    if (q->stall) {
        q->stall->last = uv_now(q->loop);
        q->stall->wq_size = uv_stream_get_write_queue_size(q->stream);
    }
}

static void on_stall_timer(uv_timer_t *t);

int bh__wq_stall_check(bh_writeq *q)
{
    struct bh_writeq_stall *st = q->stall;
    st->armed = 0;
    if (wq_idle(q) || !wq_writable(q))
        return 0;
    /* libuv writes the batch in flight piecewise: its write queue shrinking
     * is progress even before the write callback. */
    if (uv_stream_get_write_queue_size(q->stream) != st->wq_size)
        bh__wq_stall_progress(q);
    uint64_t elapsed = uv_now(q->loop) - st->last;
    if (elapsed < st->ms) {
        st->armed = 1;
        uv_timer_start(&st->timer, on_stall_timer, st->ms - elapsed, 0);
        return 0;
    }
    /* No progress for the whole timeout: every pending ticket (those of the
     * write in flight first) completes with UV_ETIMEDOUT. */
    bh_queue_fail_deferred(&q->core, UV_ETIMEDOUT);
    bh_queue_batch_abandon(&q->core, UV_ETIMEDOUT);
    bh__wq_fail(q, UV_ETIMEDOUT);
    return UV_ETIMEDOUT;
}

static void on_stall_timer(uv_timer_t *t)
{
    struct bh_writeq_stall *st = t->data;
    bh__wq_stall_check(st->q);
}

void bh__wq_stall_update(bh_writeq *q)
{
    struct bh_writeq_stall *st = q->stall;
    if (!st)
        return;
    int busy = wq_writable(q) && !wq_idle(q);
    if (busy && !st->armed) {
        bh__wq_stall_progress(q);
        st->armed = 1;
        uv_timer_start(&st->timer, on_stall_timer, st->ms, 0);
    } else if (!busy && st->armed) {
        st->armed = 0;
        uv_timer_stop(&st->timer);
    }
}

/* uv_close() stops the timer, so on_stall_timer never runs for a closed
 * block and st->q needs no clearing. */
void bh__wq_stall_close(bh_writeq *q)
{
    if (q->stall)
        uv_close((uv_handle_t *)&q->stall->timer, on_stall_close);
    q->stall = NULL;
}

int bh_writeq_set_stall_timeout(bh_writeq *q, uint64_t ms)
{
    if (!q || bh_queue_state(&q->core) == BH_QUEUE_UNINIT)
        return BH_EINVAL;
    if (!wq_writable(q))
        return BH_ECLOSED;
    if (ms == 0) {
        bh__wq_stall_close(q);
        return BH_OK;
    }
    if (!q->stall) {
        int rc;
        struct bh_writeq_stall *st = bh__wq_block_new(q->loop, sizeof *st, init_timer, &rc);
        if (!st)
            return rc;
        st->timer.data = st;
        st->q = q;
        q->stall = st;
    }
    q->stall->ms = ms;
    if (q->stall->armed) {
        q->stall->armed = 0;
        uv_timer_stop(&q->stall->timer);
    }
    bh__wq_stall_update(q);
    return BH_OK;
}
