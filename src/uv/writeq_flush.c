/* writeq_flush.c - the libuv driver of bh_writeq: the deferred flush, one
 * uv_write in flight, shutdown and failure.
 *
 * Deferred flush: an enqueue only appends to the queue core and, when no
 * write is in flight, arms a flush that runs later in the same loop
 * iteration. It is a uv_check_t, which runs right after the poll phase and
 * so after every I/O callback of the iteration (a read callback that splits
 * 64 frames gets them written with one writev), plus a uv_prepare_t: an
 * active check handle does not make the poll timeout 0, so an enqueue made
 * outside the poll phase (code before uv_run, timer, pending, check or close
 * callbacks) would otherwise wait for the next event; the prepare handle
 * flushes it before the loop blocks. Both are stopped whenever nothing waits
 * for the flush, so they never keep an idle loop alive.
 *
 * The flush asks the core for a batch and calls uv_try_write() with it (at
 * most WQ_FLUSH_ROUNDS batches, items enqueued by the completions included);
 * the core completes the items the kernel took right there (slices
 * released, tickets run from this loop callback) and keeps the offset into a
 * partly written one. A remainder (EAGAIN or a partial write) goes to one
 * uv_write() completing in on_write. While that backpressure lasts, on_write
 * hands what queued up meanwhile straight to the next uv_write() (libuv keeps
 * its POLLOUT watcher armed only while its write queue is non-empty); once a
 * write completes with nothing queued, the next enqueue goes through the
 * flush again.
 *
 * A queue takes its reference on the dispatcher on its first enqueue (an
 * idle queue allocates nothing; the first queue of a loop allocates the
 * dispatcher) and drops it in bh_writeq_close(), which unlinks it first; the
 * last reference closes the handles, whose close callbacks free the
 * dispatcher without touching any queue. */
#include <stdint.h>
#include <string.h>

#include "writeq_internal.h"

static void on_write(uv_write_t *req, int status);
static void on_shutdown(uv_shutdown_t *req, int status);

/* ---- writing ------------------------------------------------------------- */

int bh__wq_start_write(bh_writeq *q)
{
    bh_queue_batch b;
    if (!bh_queue_batch_next(&q->core, SIZE_MAX, &b))
        return 0;
    int rc = uv_write(&q->req.write, q->stream, (const uv_buf_t *)b.iov, (unsigned)b.n_iov,
                      on_write);
    if (rc == UV_ENOMEM && b.n_iov > WQ_UV_BUFSML) {
        bh_queue_batch_abort(&q->core);
        bh_queue_batch_next(&q->core, WQ_UV_BUFSML, &b);
        rc = uv_write(&q->req.write, q->stream, (const uv_buf_t *)b.iov, (unsigned)b.n_iov,
                      on_write);
    }
    if (rc < 0) {
        bh_queue_batch_abort(&q->core);
        return rc;
    }
    q->inflight = b.bytes;
    q->flags |= WQ_WRITING;
    q->batches++;
    return 0;
}

void bh__wq_deliver_drain(bh_writeq *q)
{
    if (bh_queue_take_drain(&q->core) && q->drain_cb &&
        bh_queue_state(&q->core) != BH_QUEUE_CLOSED)
        q->drain_cb(q, q->drain_ctx);
}

void bh__wq_shutdown_finish(bh_writeq *q, int status)
{
    bh_shutdown_cb cb = q->shutdown_cb;
    void *ctx = q->shutdown_ctx;
    q->flags &= ~WQ_SHUT_PENDING;
    q->shutdown_cb = NULL;
    if (cb)
        cb(q, status, ctx);
}

/* The stream failed: every pending item (ring and inbox) completes once with
 * err, a pending shutdown reports err, a waiting producer gets its drain
 * callback so its retry learns BH_ECLOSED. Loop callbacks only. */
void bh__wq_fail(bh_writeq *q, int err)
{
    bh_queue_fail(&q->core, err);
    if ((q->flags & WQ_SHUT_PENDING) && !(q->flags & WQ_SHUT_SENT))
        bh__wq_shutdown_finish(q, err);
    bh__wq_deliver_drain(q);
    bh__wq_stall_update(q);
}

int bh__wq_send_shutdown(void *arg)
{
    bh_writeq *q = arg;
    int rc = uv_shutdown(&q->req.shutdown, q->stream, on_shutdown);
    if (rc == 0)
        q->flags |= WQ_SHUT_SENT;
    return rc;
}

/* After a flush requested by bh_writeq_shutdown(): issue uv_shutdown(). Runs
 * from loop callbacks, so a synchronous failure goes to the user's shutdown
 * callback right here. */
static void maybe_shutdown(bh_writeq *q)
{
    if (bh_queue_state(&q->core) != BH_QUEUE_SEALED || !(q->flags & WQ_SHUT_PENDING) ||
        (q->flags & (WQ_SHUT_SENT | WQ_WRITING)) || !bh_queue_empty(&q->core))
        return;
    int rc = bh__wq_send_shutdown(q);
    if (rc != 0)
        bh__wq_fail(q, rc);
}

void bh__wq_after_io(bh_writeq *q, int from_write)
{
    bh_queue_lifecycle st = bh_queue_state(&q->core);
    if (st == BH_QUEUE_CLOSED)
        return;
    if (st == BH_QUEUE_FAILED) {
        bh__wq_fail(q, bh_queue_error(&q->core)); /* completes what is left */
        return;
    }
    if (bh_queue_count(&q->core) > 0 && !(q->flags & WQ_WRITING) &&
        (from_write || bh__wq_dispatch_link(q) != BH_OK)) {
        int rc = bh__wq_start_write(q);
        if (rc < 0) {
            bh__wq_fail(q, rc);
            return;
        }
    }
    maybe_shutdown(q);
    if (bh_queue_state(&q->core) == BH_QUEUE_OPEN)
        bh__wq_deliver_drain(q);
    else
        (void)bh_queue_take_drain(&q->core);
    bh__wq_stall_update(q);
}

/* The deferred flush of one queue (from the dispatcher's check or prepare
 * pass): writes the queued items with uv_try_write, one batch per round,
 * completes what the kernel took and hands any remainder to uv_write. Items
 * enqueued by the completions join the next round. Afterwards either nothing
 * is queued or a write is in flight (or the queue failed or was closed), so
 * q is no longer linked. */
void bh__wq_flush_run(bh_writeq *q)
{
    bh__wq_dispatch_unlink(q);
    if (!wq_writable(q) || (q->flags & WQ_WRITING))
        return;
    for (int round = 0; round < WQ_FLUSH_ROUNDS && bh_queue_count(&q->core) > 0; round++) {
        if (uv_is_closing((uv_handle_t *)q->stream)) {
            bh__wq_fail(q, BH_ECANCELED);
            break;
        }
        bh_queue_batch b;
        bh_queue_batch_next(&q->core, SIZE_MAX, &b);
        size_t done = 0;
        if (b.bytes > 0) {
            int n = uv_try_write(q->stream, (const uv_buf_t *)b.iov, (unsigned)b.n_iov);
            q->flushes++;
            if (n < 0 && n != UV_EAGAIN) {
                bh_queue_batch_abort(&q->core);
                bh__wq_fail(q, n);
                break;
            }
            done = n > 0 ? (size_t)n : 0;
        }
        if (done > 0)
            bh__wq_stall_progress(q);
        q->try_write_hits += bh_queue_batch_done(&q->core, done);
        if (!wq_writable(q))
            break; /* closed by a ticket callback */
        if (done < b.bytes)
            break; /* the socket is full: the rest goes to uv_write */
    }
    if (wq_writable(q) && bh_queue_count(&q->core) > 0 && !(q->flags & WQ_WRITING)) {
        int rc = bh__wq_start_write(q);
        if (rc < 0)
            bh__wq_fail(q, rc);
    }
    bh__wq_dispatch_unlink(q);
    bh__wq_after_io(q, 0);
}

static void on_write(uv_write_t *req, int status)
{
    bh_writeq *q = WQ_OF(req, req.write);
    size_t done = q->inflight;
    q->inflight = 0;
    if (status == 0) {
        /* The whole batch went out: complete the pinned items in order. */
        if (done > 0)
            bh__wq_stall_progress(q);
        bh_queue_batch_done(&q->core, done);
    } else {
        /* On a closed or failed queue the batch's tickets complete with
         * this write's status (BH_ECANCELED when libuv cancelled it because
         * the stream was closed); otherwise the queue fails with it. */
        if (!wq_writable(q)) {
            int closed = bh_queue_state(&q->core) == BH_QUEUE_CLOSED;
            bh_queue_batch_abandon(&q->core,
                                   closed && status == UV_ECANCELED ? BH_ECANCELED : status);
        }
        bh_queue_batch_abort(&q->core);
        q->flags &= ~WQ_WRITING;
        if (wq_writable(q))
            bh__wq_fail(q, status);
    }
    q->flags &= ~WQ_WRITING;
    bh__wq_after_io(q, 1);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    bh_writeq *q = WQ_OF(req, req.shutdown);
    int st = status;
    if (bh_queue_state(&q->core) == BH_QUEUE_CLOSED && status == UV_ECANCELED)
        st = BH_ECANCELED;
    bh__wq_shutdown_finish(q, st);
}
