/* writeq.c - bh_writeq's public calls: init, enqueue (the deferred path, the
 * eager write of large idle fire-and-forget slices and the allocation
 * fallback), shutdown, close, drain callback and statistics. The ring,
 * budgets and tickets are the queue core's (src/core/queue*.c); the flush,
 * uv_try_write/uv_write and shutdown steps are in writeq_flush.c.
 *
 * Enqueue only appends to the core and, when no write is in flight, arms the
 * deferred flush. Two paths write from the caller's slice at once instead,
 * and only on an idle queue: a fire-and-forget slice of WQ_EAGER_BYTES or
 * more (writing it now releases it, and the read block it pins, before the
 * next read), and any enqueue when the loop's flush dispatcher cannot be
 * allocated (fallback). There a fire-and-forget slice goes to uv_try_write()
 * and only its remainder is queued (handed to uv_write()); a ticket is
 * queued and handed to uv_write() at once. */
#include <assert.h>
#include <string.h>

#include "writeq_internal.h"

/* uv_buf_t is iovec-compatible on Unix: batches built by the core as struct
 * iovec arrays go to uv_try_write()/uv_write() without a copy. */
static_assert(sizeof(uv_buf_t) == sizeof(struct iovec), "uv_buf_t size");
static_assert(offsetof(uv_buf_t, base) == offsetof(struct iovec, iov_base), "uv_buf_t.base");
static_assert(offsetof(uv_buf_t, len) == offsetof(struct iovec, iov_len), "uv_buf_t.len");

/* Runs a ticket: the core stores bh_write_cb converted to bh_queue_cb. */
static void wq_complete(bh_queue *c, bh_queue_cb cb, void *ctx, int status)
{
    ((bh_write_cb)cb)(WQ_OF(c, core), status, ctx);
}

void *bh__wq_block_new(uv_loop_t *loop, size_t size, int (*init)(uv_loop_t *, void *), int *rc)
{
    void *p = bh_malloc(size);
    *rc = BH_ENOMEM;
    if (!p)
        return NULL;
    memset(p, 0, size);
    *rc = init(loop, p);
    if (*rc != 0) {
        bh_free(p);
        return NULL;
    }
    return p;
}

bh_writeq_config bh_writeq_config_default(void)
{
    bh_writeq_config c = {BH_WRITEQ_MAX_ITEMS_DEFAULT, BH_WRITEQ_MAX_BYTES_DEFAULT};
    return c;
}

int bh_writeq_init(bh_writeq *q, uv_loop_t *loop, uv_stream_t *s, const bh_writeq_config *cfg)
{
    if (!q || !loop || !s || s->loop != loop)
        return BH_EINVAL;
    bh_writeq_config c = cfg ? *cfg : bh_writeq_config_default();
    bh_queue_config qc = {c.max_items, c.max_bytes};
    bh_queue core;
    int rc = bh_queue_init(&core, &qc, wq_complete);
    if (rc != BH_OK)
        return rc;
    memset(q, 0, sizeof *q);
    q->core = core;
    q->loop = loop;
    q->stream = s;
    return BH_OK;
}

/* Writes from the caller's slice with uv_try_write (first chunk at most).
 * Returns bytes written (0 when the socket is full) or a libuv error. */
static int try_write_direct(bh_writeq *q, const bh_bytes *data)
{
    uv_buf_t b;
    b.base = (char *)(uintptr_t)data->ptr;
    b.len = data->len < BH_QUEUE_CHUNK ? data->len : BH_QUEUE_CHUNK;
    int n = uv_try_write(q->stream, &b, 1);
    return n == UV_EAGAIN ? 0 : n;
}

/* Idle queue, large fire-and-forget slice or no flush dispatcher: write
 * at once. The reservation made by the caller is consumed or returned. */
static int enqueue_direct(bh_writeq *q, bh_bytes *data, bh_write_cb cb, void *ctx)
{
    size_t len = data->len;
    size_t off = 0;
    if (!cb && len > 0) {
        int n = try_write_direct(q, data);
        if (n < 0) {
            bh_queue_unclaim(&q->core, len);
            bh_queue_fail_deferred(&q->core, n);
            q->refused++;
            return n;
        }
        off = (size_t)n;
        if (off > 0)
            bh__wq_stall_progress(q);
    }
    if (bh_queue_push_claimed(&q->core, data, (bh_queue_cb)cb, ctx, off)) {
        q->try_write_hits += len > 0;
        return BH_OK;
    }
    int rc = bh__wq_start_write(q);
    if (rc == 0) {
        bh__wq_stall_update(q);
        return BH_OK;
    }
    /* The stream refused the write at once. */
    bh_bytes back;
    bh_queue_take_back(&q->core, &back);
    bh_queue_fail_deferred(&q->core, rc);
    if (off == 0) {
        *data = back; /* nothing was written: the caller keeps it */
        q->refused++;
        return rc;
    }
    /* Part of a fire-and-forget slice is already on the wire: accepted. */
    bh_bytes_release(&back);
    return BH_OK;
}

static int writeq_enqueue(bh_writeq *q, bh_bytes *data, bh_write_cb cb, void *ctx)
{
    if (!q || !data || (data->len > 0 && !data->ptr))
        return BH_EINVAL;
    if (bh_queue_state(&q->core) == BH_QUEUE_OPEN && uv_is_closing((uv_handle_t *)q->stream)) {
        q->refused++;
        return BH_ECLOSED;
    }
    int idle = wq_idle(q);
    int rc = bh_queue_claim(&q->core, data->len);
    if (rc != BH_OK)
        return rc;
    int eager = idle && !cb && data->len >= WQ_EAGER_BYTES;
    if (idle && !eager && !q->dispatch)
        (void)bh__wq_dispatch_ref(q); /* on failure this enqueue writes at once */
    if (!idle || (q->dispatch && !eager)) {
        /* Only append; the deferred flush (or the write in flight) takes it. */
        bh_queue_push_claimed(&q->core, data, (bh_queue_cb)cb, ctx, 0);
        if (!(q->flags & WQ_WRITING))
            (void)bh__wq_dispatch_link(q);
        return BH_OK;
    }
    return enqueue_direct(q, data, cb, ctx);
}

int bh_writeq_try_write(bh_writeq *q, bh_bytes *data, bh_write_cb cb, void *ctx)
{
    return writeq_enqueue(q, data, cb, ctx);
}

int bh_writeq_try_write_ff(bh_writeq *q, bh_bytes *data)
{
    return writeq_enqueue(q, data, NULL, NULL);
}

int bh_writeq_shutdown(bh_writeq *q, bh_shutdown_cb cb, void *ctx)
{
    if (!q || bh_queue_state(&q->core) == BH_QUEUE_UNINIT)
        return BH_EINVAL;
    if (bh_queue_state(&q->core) != BH_QUEUE_OPEN || uv_is_closing((uv_handle_t *)q->stream))
        return BH_ECLOSED;
    /* Deciding "empty" and sealing happen under the inbox mutex, so that a
     * failing uv_shutdown() leaves everything as it was. */
    int rc = bh_queue_seal(&q->core, bh__wq_send_shutdown, q);
    if (rc != 0)
        return rc;
    q->flags |= WQ_SHUT_PENDING;
    q->shutdown_cb = cb;
    q->shutdown_ctx = ctx;
    return BH_OK;
}

static void on_mt_close(uv_handle_t *h)
{
    struct bh_writeq_mt *mt = (struct bh_writeq_mt *)(void *)h;
    bh_queue_inbox_free(mt->inbox);
    bh_free(mt);
}

void bh_writeq_close(bh_writeq *q)
{
    if (!q || bh_queue_state(&q->core) == BH_QUEUE_CLOSED)
        return;
    struct bh_writeq_mt *mt = q->mt;
    q->mt = NULL;
    if (mt)
        mt->q = NULL;
    bh__wq_dispatch_unref(q);
    bh__wq_stall_close(q);
    struct bh_queue_inbox *inbox = bh_queue_close(&q->core);
    if (mt) {
        mt->inbox = inbox;
        uv_close((uv_handle_t *)&mt->async, on_mt_close);
    }
    if ((q->flags & WQ_SHUT_PENDING) && !(q->flags & WQ_SHUT_SENT))
        bh__wq_shutdown_finish(q, BH_ECANCELED);
}

void bh_writeq_set_drain_cb(bh_writeq *q, size_t low_water_bytes, bh_drain_cb cb, void *ctx)
{
    if (!q)
        return;
    bh_queue_set_low_water(&q->core, low_water_bytes);
    q->drain_cb = cb;
    q->drain_ctx = ctx;
}

void bh_writeq_stats(const bh_writeq *q, struct bh_writeq_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!q)
        return;
    struct bh_queue_stats cs;
    bh_queue_stats(&q->core, &cs);
    out->queued_items = cs.queued_items;
    out->queued_bytes = cs.queued_bytes;
    out->written_items = cs.written_items;
    out->written_bytes = cs.written_bytes;
    out->refused = cs.refused + q->refused;
    out->batches = q->batches;
    out->try_write_hits = q->try_write_hits;
    out->flushes = q->flushes;
}
