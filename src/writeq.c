/* writeq.c - bounded write queue over uv_try_write/uv_write (bh_writeq).
 *
 * Ring: accepted items (slice + optional ticket) live in a ring of
 * bh_writeq_item that is allocated on first use, grows by doubling up to
 * cfg.max_items and is then reused, so a steady stream of enqueues allocates
 * nothing. head_off counts the bytes of the head item already written, so
 * partial writes resume exactly where the kernel stopped.
 *
 * Batching: one uv_write_t is embedded in the queue, so one write is in
 * flight at a time. A batch is built straight from the ring into a uv_buf_t
 * array (grown on demand, at most IOV_MAX entries; a one-entry fallback keeps
 * the queue moving when it cannot grow). Slices above 1 GiB are cut into
 * several iovecs and a batch stops once it holds 1 GiB, so no single writev
 * exceeds INT_MAX bytes. The first `pinned` ring items belong to the write in
 * flight (or to the flush completing them); close() cancels only the items
 * behind them, and the write callback (or the flush) completes the pinned
 * ones with the write's status.
 *
 * Deferred flush: an enqueue only appends to the ring (budgets as always)
 * and, when no write is in flight, arms a flush that runs later in the same
 * loop iteration. It is a uv_check_t, which runs right after the poll phase
 * and so after every I/O callback of the iteration (a read callback that
 * splits 64 frames gets them written with one writev), plus a uv_prepare_t:
 * an active check handle does not make the poll timeout 0, so an enqueue
 * made outside the poll phase (code before uv_run, timer, pending, check or
 * close callbacks) would otherwise wait for the next event; the prepare
 * handle flushes it before the loop blocks. Both are stopped whenever
 * nothing waits for the flush, so they never keep an idle loop alive. The
 * flush builds a batch and calls uv_try_write() with it (at most
 * WQ_FLUSH_ROUNDS batches, items enqueued by the completions included),
 * completes the items the kernel took right there (slices released, ticket
 * callbacks run from the loop callback, never inside try_write) and
 * advances head_off into a partly written item; a remainder (EAGAIN or a
 * partial write) goes to uv_write() with completion via on_write. While
 * that backpressure lasts, on_write hands what queued up meanwhile straight
 * to the next uv_write() (libuv keeps its POLLOUT watcher armed only while
 * its write queue is non-empty); once a write completes with nothing
 * queued, the next enqueue goes through the flush again. So tickets do not
 * wait for libuv's deferred write callback and its epoll_ctl, and their
 * slices are released as soon as the kernel has the bytes. One exception:
 * a fire-and-forget slice of WQ_EAGER_BYTES or more offered to an idle
 * queue is written at once with uv_try_write() (only a remainder is queued),
 * so a tunnel's read-sized slices free their read buffer block right away.
 *
 * The flush handles live in a separate block (not in bh_writeq), allocated
 * on the first enqueue (an idle queue allocates nothing) and closed by
 * bh_writeq_close(); their close callbacks free it without touching q,
 * because libuv runs close callbacks in LIFO order and q may already be
 * freed from the stream's close callback. It is kept apart from the mt block
 * because every queue needs it and only some enable cross-thread submission.
 * If the block cannot be allocated, an enqueue on an idle queue writes at
 * once as before (next paragraph) and the next idle enqueue tries again.
 *
 * Immediate path (fallback only): a fire-and-forget slice offered to an idle
 * queue goes to uv_try_write() directly from the caller's memory; if the
 * kernel takes it all, the slice is released at once (no ring traffic),
 * otherwise only the remainder is queued (head_off = bytes written). A
 * ticket is queued and handed to uv_write() at once; it completes from the
 * write callback.
 *
 * Budgets: used_items/used_bytes count every accepted item until it completes
 * (ring and cross-thread inbox). With bh_writeq_enable_mt() they, want_drain
 * and low_water are only touched under the inbox mutex. Producers on other
 * threads append to an inbox array and wake the loop with a uv_async_t; the
 * loop swaps the inbox with a spare array and moves the items into the ring.
 * The mutex, async handle and arrays live in a separate block freed from the
 * async handle's close callback, because libuv runs close callbacks in LIFO
 * order and q itself may be freed from the stream's close callback. */
#include <limits.h>
#include <stddef.h>
#include <string.h>

#include <bytes_handoff/error.h>
#include <bytes_handoff/uv.h>

#include "internal.h"

#ifdef IOV_MAX
#define WQ_IOV_MAX ((size_t)IOV_MAX)
#else
#define WQ_IOV_MAX ((size_t)1024)
#endif
#define WQ_IOV_MIN ((size_t)16)
#define WQ_RING_MIN ((size_t)8)
#define WQ_CHUNK ((size_t)1 << 30)       /* largest single iovec */
#define WQ_BATCH_BYTES ((size_t)1 << 30) /* a batch stops growing at this size */
#define WQ_UV_BUFSML ((size_t)4)         /* libuv copies up to 4 bufs without malloc */

enum wq_state { WQ_UNINIT = 0, WQ_OPEN, WQ_SHUTDOWN, WQ_FAILED, WQ_CLOSED };

#define WQ_FLUSH_ROUNDS 16 /* uv_try_write calls per deferred flush at most */
#define WQ_EAGER_BYTES ((size_t)4096) /* idle fire-and-forget slices this large skip the flush */

enum wq_flags {
    WQ_WRITING = 1u << 0,       /* uv_write outstanding or its completions running */
    WQ_SHUT_PENDING = 1u << 1,  /* shutdown requested, user callback not yet called */
    WQ_SHUT_SENT = 1u << 2,     /* uv_shutdown issued */
    WQ_FLUSHING = 1u << 3,      /* the flush is completing the pinned items */
    WQ_FLUSH_ARMED = 1u << 4    /* the deferred-flush handles are started */
};

/* Deferred-flush handles: the check handle runs after the poll phase (after
 * every I/O callback of the iteration), the prepare handle catches enqueues
 * made outside the poll phase (timers, pending and close callbacks, code
 * before uv_run) before the loop blocks. Freed by the second close callback. */
struct bh_writeq_flush {
    uv_check_t check;
    uv_prepare_t prepare;
    bh_writeq *q;  /* NULL once the queue is closed */
    int handles;   /* handles not yet closed */
};

struct bh_writeq_mt {
    uv_async_t async;
    uv_mutex_t lock;
    bh_writeq *q;
    bh_writeq_item *inbox; /* producers append here (under lock) */
    size_t inbox_n, inbox_cap;
    bh_writeq_item *spare; /* the loop's half of the double buffer */
    size_t spare_cap;
    uint64_t refused;      /* refusals counted by submit_mt */
    int closed;            /* no more submissions accepted */
};

static const bh_bytes wq_empty = {NULL, 0, NULL};

/* ---- small helpers ------------------------------------------------------- */

#define WQ_FROM_FIELD(ptr, field) ((bh_writeq *)(void *)((char *)(ptr) - offsetof(bh_writeq, field)))

static size_t ring_index(const bh_writeq *q, size_t i)
{
    size_t j = q->head + i;
    return j >= q->ring_cap ? j - q->ring_cap : j;
}

static void wq_lock(const bh_writeq *q)
{
    if (q->mt)
        uv_mutex_lock(&q->mt->lock);
}

static void wq_unlock(const bh_writeq *q)
{
    if (q->mt)
        uv_mutex_unlock(&q->mt->lock);
}

/* Reserves budget for one item of len bytes; caller holds the lock when mt.
 * A refusal arms the drain callback; so does queueing (queued = 1) above the
 * low-water mark. An item the fast path may write at once passes 0. */
static int budget_reserve_locked(bh_writeq *q, size_t len, int queued)
{
    if (q->used_items >= q->cfg.max_items || len > q->cfg.max_bytes - q->used_bytes) {
        q->want_drain = 1;
        return BH_EFULL;
    }
    q->used_items++;
    q->used_bytes += len;
    if (queued && q->used_bytes > q->low_water)
        q->want_drain = 1;
    return BH_OK;
}

/* Arms the drain callback when the queue is above the low-water mark. */
static void arm_above_mark(bh_writeq *q)
{
    wq_lock(q);
    if (q->used_bytes > q->low_water)
        q->want_drain = 1;
    wq_unlock(q);
}

/* Returns budget; notes a due drain callback (delivered later by the loop). */
static void budget_release(bh_writeq *q, size_t items, size_t bytes)
{
    wq_lock(q);
    q->used_items -= items;
    q->used_bytes -= bytes;
    if (q->want_drain && q->used_bytes <= q->low_water) {
        q->want_drain = 0;
        q->drain_due = 1;
    }
    wq_unlock(q);
}

/* Makes room for `need` items (need <= cfg.max_items). Items stay in order:
 * the part of a wrapped ring that sits at the end of the old storage moves
 * to the end of the new one. */
static int ring_reserve(bh_writeq *q, size_t need)
{
    if (need <= q->ring_cap)
        return BH_OK;
    if (need > q->cfg.max_items)
        return BH_EFULL;
    size_t cap = q->ring_cap ? q->ring_cap : WQ_RING_MIN;
    while (cap < need)
        cap = cap > q->cfg.max_items / 2 ? q->cfg.max_items : cap * 2;
    if (cap > q->cfg.max_items)
        cap = q->cfg.max_items;
    size_t size;
    if (bh__size_mul(cap, sizeof *q->ring, &size) != 0)
        return BH_ENOMEM;
    bh_writeq_item *r = bh__realloc(q->ring, size);
    if (!r)
        return BH_ENOMEM;
    if (q->count == 0) {
        q->head = 0;
    } else if (q->head + q->count > q->ring_cap) {
        size_t tail = q->ring_cap - q->head;
        memmove(r + (cap - tail), r + q->head, tail * sizeof *r);
        q->head = cap - tail;
    }
    q->ring = r;
    q->ring_cap = cap;
    return BH_OK;
}

static void ring_push(bh_writeq *q, const bh_writeq_item *it)
{
    q->ring[ring_index(q, q->count)] = *it;
    q->count++;
}

static bh_writeq_item ring_pop(bh_writeq *q)
{
    bh_writeq_item it = q->ring[q->head];
    memset(&q->ring[q->head], 0, sizeof it);
    q->head = q->head + 1 == q->ring_cap ? 0 : q->head + 1;
    q->count--;
    q->head_off = 0;
    if (q->count == 0)
        q->head = 0;
    return it;
}

/* Releases the slice, then runs the ticket. */
static void complete_item(bh_writeq *q, bh_writeq_item *it, int status)
{
    bh_write_cb cb = it->cb;
    void *ctx = it->ctx;
    if (status == 0) {
        q->stats.written_items++;
    }
    bh_bytes_release(&it->data);
    if (cb)
        cb(q, status, ctx);
}

/* Removes ring items [keep, count) and completes them with status, oldest
 * first. The removed slots are detached before any callback runs; callbacks
 * cannot refill them because the queue is no longer open. */
static void ring_complete_tail(bh_writeq *q, size_t keep, int status)
{
    if (keep >= q->count)
        return;
    size_t n = q->count - keep;
    size_t idx = ring_index(q, keep);
    size_t bytes = 0;
    for (size_t i = 0, j = idx; i < n; i++) {
        bytes += q->ring[j].data.len - (keep == 0 && i == 0 ? q->head_off : 0);
        j = j + 1 == q->ring_cap ? 0 : j + 1;
    }
    q->count = keep;
    if (keep == 0) {
        q->head_off = 0;
    }
    budget_release(q, n, bytes);
    q->depth++;
    for (size_t i = 0; i < n; i++) {
        bh_writeq_item it = q->ring[idx];
        memset(&q->ring[idx], 0, sizeof it);
        idx = idx + 1 == q->ring_cap ? 0 : idx + 1;
        complete_item(q, &it, status);
    }
    q->depth--;
    if (q->count == 0)
        q->head = 0;
}

/* Completes items[0..n) (already detached from the inbox) with status. */
static void complete_array(bh_writeq *q, bh_writeq_item *items, size_t n, int status)
{
    q->depth++;
    for (size_t i = 0; i < n; i++) {
        bh_writeq_item it = items[i];
        memset(&items[i], 0, sizeof it);
        complete_item(q, &it, status);
    }
    q->depth--;
}

/* Stops cross-thread submission and detaches the inbox: returns its item
 * count (items stay in mt->inbox for the caller to complete). */
static size_t mt_seal(bh_writeq *q, struct bh_writeq_mt *mt)
{
    uv_mutex_lock(&mt->lock);
    mt->closed = 1;
    size_t n = mt->inbox_n;
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += mt->inbox[i].data.len;
    mt->inbox_n = 0;
    q->used_items -= n;
    q->used_bytes -= bytes;
    uv_mutex_unlock(&mt->lock);
    return n;
}

/* Frees the ring and batch array once the queue is closed and nothing
 * refers to them any more. */
static void maybe_free(bh_writeq *q)
{
    if (q->state != WQ_CLOSED || (q->flags & WQ_WRITING) || q->depth != 0)
        return;
    bh__free(q->ring);
    q->ring = NULL;
    q->ring_cap = q->head = q->count = q->head_off = 0;
    if (q->iov != &q->iov1)
        bh__free(q->iov);
    q->iov = NULL;
    q->iov_cap = 0;
}

static void deliver_drain(bh_writeq *q)
{
    if (!q->drain_due)
        return;
    q->drain_due = 0;
    if (q->drain_cb && q->state != WQ_CLOSED)
        q->drain_cb(q, q->drain_ctx);
}

/* Marks the queue failed without running callbacks; items still in the
 * inbox are failed by the async callback. */
static void mark_failed(bh_writeq *q, int err)
{
    if (q->state == WQ_OPEN || q->state == WQ_SHUTDOWN) {
        q->state = WQ_FAILED;
        q->error = err;
    }
    if (q->mt) {
        uv_mutex_lock(&q->mt->lock);
        q->mt->closed = 1;
        uv_mutex_unlock(&q->mt->lock);
    }
}

/* The stream failed: every pending item (ring and inbox) completes once with
 * err, a pending shutdown reports err, a waiting producer gets its drain
 * callback so its retry learns BH_ECLOSED. Loop callbacks only. */
static void fail_queue(bh_writeq *q, int err)
{
    int waiting;
    mark_failed(q, err);
    struct bh_writeq_mt *mt = q->mt;
    size_t n_inbox = mt ? mt_seal(q, mt) : 0;
    wq_lock(q);
    waiting = q->want_drain;
    q->want_drain = 0;
    wq_unlock(q);
    q->depth++;
    ring_complete_tail(q, q->pinned < q->count ? q->pinned : q->count, err);
    if (n_inbox)
        complete_array(q, mt->inbox, n_inbox, err);
    if ((q->flags & WQ_SHUT_PENDING) && !(q->flags & WQ_SHUT_SENT)) {
        bh_shutdown_cb cb = q->shutdown_cb;
        q->flags &= ~WQ_SHUT_PENDING;
        q->shutdown_cb = NULL;
        if (cb)
            cb(q, err, q->shutdown_ctx);
    }
    q->depth--;
    if (waiting)
        q->drain_due = 1;
    deliver_drain(q);
}

/* ---- writing ------------------------------------------------------------- */

static void on_write(uv_write_t *req, int status);
static void on_shutdown(uv_shutdown_t *req, int status);
static void flush_run(bh_writeq *q);

/* ---- deferred flush handles ---------------------------------------------- */

static void on_flush_check(uv_check_t *h)
{
    struct bh_writeq_flush *fl = h->data;
    if (fl->q)
        flush_run(fl->q);
}

static void on_flush_prepare(uv_prepare_t *h)
{
    struct bh_writeq_flush *fl = h->data;
    if (fl->q)
        flush_run(fl->q);
}

static void on_flush_close(uv_handle_t *h)
{
    struct bh_writeq_flush *fl = h->data;
    if (--fl->handles == 0)
        bh__free(fl);
}

/* Allocates and initialises the deferred-flush block (stopped handles). */
static int flush_create(bh_writeq *q)
{
    struct bh_writeq_flush *fl = bh__malloc(sizeof *fl);
    if (!fl)
        return BH_ENOMEM;
    memset(fl, 0, sizeof *fl);
    int rc = uv_check_init(q->loop, &fl->check);
    if (rc != 0) {
        bh__free(fl);
        return rc;
    }
    fl->check.data = fl;
    fl->handles = 1;
    rc = uv_prepare_init(q->loop, &fl->prepare);
    if (rc != 0) {
        uv_close((uv_handle_t *)&fl->check, on_flush_close);
        return rc;
    }
    fl->prepare.data = fl;
    fl->handles = 2;
    fl->q = q;
    q->flush = fl;
    return BH_OK;
}

/* Arms the deferred flush, creating its handles on first use. Returns 0 when
 * they cannot be created (the caller then writes at once). */
static int flush_arm(bh_writeq *q)
{
    if (!q->flush && flush_create(q) != BH_OK)
        return 0;
    if (!(q->flags & WQ_FLUSH_ARMED)) {
        uv_check_start(&q->flush->check, on_flush_check);
        uv_prepare_start(&q->flush->prepare, on_flush_prepare);
        q->flags |= WQ_FLUSH_ARMED;
    }
    return 1;
}

/* Stops the handles: a stopped handle neither runs nor keeps the loop alive. */
static void flush_disarm(bh_writeq *q)
{
    if (!(q->flags & WQ_FLUSH_ARMED))
        return;
    q->flags &= ~WQ_FLUSH_ARMED;
    if (q->flush) {
        uv_check_stop(&q->flush->check);
        uv_prepare_stop(&q->flush->prepare);
    }
}

/* Closes the handles; their close callbacks free the block without touching
 * q, which the user may free from the stream's close callback. */
static void flush_close(bh_writeq *q)
{
    struct bh_writeq_flush *fl = q->flush;
    q->flags &= ~WQ_FLUSH_ARMED;
    if (!fl)
        return;
    q->flush = NULL;
    fl->q = NULL;
    uv_close((uv_handle_t *)&fl->check, on_flush_close);
    uv_close((uv_handle_t *)&fl->prepare, on_flush_close);
}

/* ---- batches ---------------------------------------------------------------- */

/* Fills iov (at most max_bufs entries) from the ring head; returns the
 * number of entries, the items touched and the bytes covered. */
static size_t build_batch(const bh_writeq *q, uv_buf_t *iov, size_t max_bufs, size_t *items,
                          size_t *bytes)
{
    size_t nb = 0, total = 0, touched = 0;
    for (size_t i = 0; i < q->count && nb < max_bufs && total < WQ_BATCH_BYTES; i++) {
        const bh_writeq_item *it = &q->ring[ring_index(q, i)];
        size_t off = i == 0 ? q->head_off : 0;
        size_t rem = it->data.len - off;
        touched++;
        do {
            size_t n = rem < WQ_CHUNK ? rem : WQ_CHUNK;
            iov[nb].base = it->data.ptr ? (char *)(uintptr_t)(it->data.ptr + off) : NULL;
            iov[nb].len = n;
            nb++;
            off += n;
            rem -= n;
            total += n;
        } while (rem > 0 && nb < max_bufs && total < WQ_BATCH_BYTES);
    }
    *items = touched;
    *bytes = total;
    return nb;
}

/* Grows the batch array towards `want` entries; keeps the old one on
 * failure (a smaller batch still makes progress). */
static void iov_reserve(bh_writeq *q, size_t want)
{
    if (want > WQ_IOV_MAX)
        want = WQ_IOV_MAX;
    if (q->iov_cap >= want)
        return;
    size_t cap = q->iov_cap >= WQ_IOV_MIN ? q->iov_cap : WQ_IOV_MIN;
    while (cap < want)
        cap *= 2;
    if (cap > WQ_IOV_MAX)
        cap = WQ_IOV_MAX;
    size_t size;
    if (bh__size_mul(cap, sizeof *q->iov, &size) != 0)
        return;
    uv_buf_t *old = q->iov == &q->iov1 ? NULL : q->iov;
    uv_buf_t *n = bh__realloc(old, size);
    if (!n)
        return;
    q->iov = n;
    q->iov_cap = cap;
}

/* Makes q->iov usable for a batch of the queued items. */
static void iov_prepare(bh_writeq *q)
{
    iov_reserve(q, q->count);
    if (q->iov_cap == 0) {
        q->iov = &q->iov1;
        q->iov_cap = 1;
    }
}

/* Hands the items at the ring head to one uv_write(). Returns 0 or the libuv
 * error of uv_write() (nothing is then in flight). */
static int start_write(bh_writeq *q)
{
    iov_prepare(q);
    size_t items, bytes;
    size_t nb = build_batch(q, q->iov, q->iov_cap, &items, &bytes);
    int rc = uv_write(&q->wreq, q->stream, q->iov, (unsigned)nb, on_write);
    if (rc == UV_ENOMEM && nb > WQ_UV_BUFSML) {
        nb = build_batch(q, q->iov, WQ_UV_BUFSML, &items, &bytes);
        rc = uv_write(&q->wreq, q->stream, q->iov, (unsigned)nb, on_write);
    }
    if (rc < 0)
        return rc;
    q->pinned = items;
    q->inflight_bytes = bytes;
    q->flags |= WQ_WRITING;
    q->stats.batches++;
    return 0;
}

/* 1 when every accepted item has been written (ring and inbox empty). */
static int fully_flushed(const bh_writeq *q)
{
    if (q->count != 0 || (q->flags & WQ_WRITING))
        return 0;
    int empty = 1;
    if (q->mt) {
        uv_mutex_lock(&q->mt->lock);
        empty = q->mt->inbox_n == 0;
        uv_mutex_unlock(&q->mt->lock);
    }
    return empty;
}

/* After a flush requested by bh_writeq_shutdown(): issue uv_shutdown(). Runs
 * from loop callbacks, so a synchronous failure is reported to the user's
 * shutdown callback right here. */
static void maybe_shutdown(bh_writeq *q)
{
    if (q->state != WQ_SHUTDOWN || !(q->flags & WQ_SHUT_PENDING) || (q->flags & WQ_SHUT_SENT))
        return;
    if (!fully_flushed(q))
        return;
    int rc = uv_shutdown(&q->sreq, q->stream, on_shutdown);
    if (rc == 0) {
        q->flags |= WQ_SHUT_SENT;
        return;
    }
    fail_queue(q, rc);
}

/* Continues after a completion: next batch, shutdown, drain, freeing. After
 * a uv_write completed (from_write) the stream is under backpressure and its
 * POLLOUT watcher is still armed, so queued items go straight into the next
 * uv_write (an empty write queue would make libuv stop the watcher, costing
 * an epoll_ctl per batch); otherwise the deferred flush takes them. */
static void after_io(bh_writeq *q, int from_write)
{
    if (q->state == WQ_CLOSED) {
        /* Items of a write still in flight (on_async, closed from a
         * callback) belong to libuv until on_write. */
        ring_complete_tail(q, (q->flags & WQ_WRITING) ? q->pinned : 0, BH_ECANCELED);
        maybe_free(q);
        return;
    }
    if (q->state == WQ_FAILED) {
        /* Items of a write still in flight belong to libuv until on_write. */
        ring_complete_tail(q, (q->flags & WQ_WRITING) ? q->pinned : 0, q->error);
        deliver_drain(q);
        return;
    }
    if (q->count > 0 && !(q->flags & WQ_WRITING) && (from_write || !flush_arm(q))) {
        int rc = start_write(q);
        if (rc < 0) {
            fail_queue(q, rc);
            return;
        }
    }
    maybe_shutdown(q);
    if (q->state == WQ_OPEN)
        deliver_drain(q);
    else
        q->drain_due = 0;
}

/* `done` bytes of the pinned items went out: completes the items they
 * cover in order and advances head_off exactly into a partly written one. A
 * callback may enqueue (appended behind) or close (which cancels only the
 * items behind the pinned ones); the ring is re-read after every callback. */
static void complete_written(bh_writeq *q, size_t done, int by_try_write)
{
    while (q->pinned > 0 && q->count > 0) {
        bh_writeq_item *it = &q->ring[q->head];
        size_t rem = it->data.len - q->head_off;
        if (rem > done) {
            q->head_off += done;
            q->stats.written_bytes += done;
            budget_release(q, 0, done);
            break;
        }
        done -= rem;
        bh_writeq_item local = ring_pop(q);
        q->pinned--;
        q->stats.written_bytes += rem;
        if (by_try_write)
            q->stats.try_write_hits++;
        budget_release(q, 1, rem);
        complete_item(q, &local, 0);
    }
    q->pinned = 0;
}

/* The deferred flush (check or prepare callback): writes the queued items
 * with uv_try_write, one batch per round, completes what the kernel took
 * and hands any remainder to uv_write. Items enqueued by the completions
 * join the next round. Afterwards either nothing is queued or a write is in
 * flight (or the queue failed or was closed), so the handles are stopped. */
static void flush_run(bh_writeq *q)
{
    flush_disarm(q);
    if ((q->state != WQ_OPEN && q->state != WQ_SHUTDOWN) || (q->flags & WQ_WRITING))
        return;
    q->depth++;
    for (int round = 0; round < WQ_FLUSH_ROUNDS && q->count > 0; round++) {
        if (uv_is_closing((uv_handle_t *)q->stream)) {
            fail_queue(q, BH_ECANCELED);
            break;
        }
        iov_prepare(q);
        size_t items, bytes, done = 0;
        size_t nb = build_batch(q, q->iov, q->iov_cap, &items, &bytes);
        if (bytes > 0) {
            int n = uv_try_write(q->stream, q->iov, (unsigned)nb);
            q->stats.flushes++;
            if (n < 0 && n != UV_EAGAIN) {
                fail_queue(q, n);
                break;
            }
            done = n > 0 ? (size_t)n : 0;
        }
        q->pinned = items;
        q->flags |= WQ_FLUSHING;
        complete_written(q, done, 1);
        q->flags &= ~WQ_FLUSHING;
        if (q->state != WQ_OPEN && q->state != WQ_SHUTDOWN)
            break; /* closed by a ticket callback */
        if (done < bytes)
            break; /* the socket is full: the rest goes to uv_write */
    }
    if ((q->state == WQ_OPEN || q->state == WQ_SHUTDOWN) && q->count > 0 &&
        !(q->flags & WQ_WRITING)) {
        int rc = start_write(q);
        if (rc < 0)
            fail_queue(q, rc);
    }
    q->depth--;
    flush_disarm(q);
    after_io(q, 0);
}

static void on_write(uv_write_t *req, int status)
{
    bh_writeq *q = WQ_FROM_FIELD(req, wreq);
    size_t done = q->inflight_bytes;
    q->inflight_bytes = 0;
    if (status == 0) {
        /* The whole batch went out: complete the pinned items in order. */
        complete_written(q, done, 0);
    } else {
        int st = status;
        if (q->state == WQ_CLOSED && status == UV_ECANCELED)
            st = BH_ECANCELED;
        q->pinned = 0;
        if (q->state == WQ_OPEN || q->state == WQ_SHUTDOWN)
            fail_queue(q, st);
        else
            ring_complete_tail(q, 0, st);
    }
    q->flags &= ~WQ_WRITING;
    after_io(q, 1);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    bh_writeq *q = WQ_FROM_FIELD(req, sreq);
    int st = status;
    if (q->state == WQ_CLOSED && status == UV_ECANCELED)
        st = BH_ECANCELED;
    bh_shutdown_cb cb = q->shutdown_cb;
    void *ctx = q->shutdown_ctx;
    q->shutdown_cb = NULL;
    q->flags &= ~WQ_SHUT_PENDING;
    if (cb)
        cb(q, st, ctx);
}

/* Writes from the caller's slice with uv_try_write (first 1 GiB at most).
 * Returns bytes written (0 when the socket is full) or a libuv error. */
static int try_write_direct(bh_writeq *q, const bh_bytes *data)
{
    uv_buf_t b;
    b.base = (char *)(uintptr_t)data->ptr;
    b.len = data->len < WQ_CHUNK ? data->len : WQ_CHUNK;
    int n = uv_try_write(q->stream, &b, 1);
    if (n == UV_EAGAIN)
        return 0;
    return n;
}

/* ---- public API ---------------------------------------------------------- */

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
    if (c.max_items == 0 || c.max_bytes == 0)
        return BH_EINVAL;
    memset(q, 0, sizeof *q);
    q->loop = loop;
    q->stream = s;
    q->cfg = c;
    q->state = WQ_OPEN;
    return BH_OK;
}

static int writeq_enqueue(bh_writeq *q, bh_bytes *data, bh_write_cb cb, void *ctx)
{
    if (!q || !data || (data->len > 0 && !data->ptr))
        return BH_EINVAL;
    int rc;
    if (q->state != WQ_OPEN || uv_is_closing((uv_handle_t *)q->stream)) {
        rc = q->state == WQ_UNINIT ? BH_EINVAL : BH_ECLOSED;
        goto refuse;
    }
    if (data->len > q->cfg.max_bytes) {
        rc = BH_ETOOLONG;
        goto refuse;
    }
    int idle = q->count == 0 && !(q->flags & WQ_WRITING);
    wq_lock(q);
    rc = budget_reserve_locked(q, data->len, !idle || cb != NULL);
    wq_unlock(q);
    if (rc != BH_OK)
        goto refuse;
    rc = ring_reserve(q, q->count + 1);
    if (rc != BH_OK) {
        budget_release(q, 1, data->len);
        goto refuse;
    }

    bh_writeq_item it = {*data, cb, ctx};
    /* A large fire-and-forget slice on an idle queue gains nothing from
     * waiting for companions: writing it now releases it (and the read
     * buffer block it pins) before the next read. */
    int eager = idle && !cb && data->len >= WQ_EAGER_BYTES;
    if (idle && !eager && !q->flush)
        (void)flush_create(q); /* on failure this enqueue writes at once */
    if (!idle || (q->flush && !eager)) {
        /* Only append; the deferred flush (or the write in flight) takes it. */
        ring_push(q, &it);
        *data = wq_empty;
        if (!(q->flags & WQ_WRITING))
            (void)flush_arm(q);
        if (idle && !cb)
            arm_above_mark(q); /* reserved above as if written at once */
        return BH_OK;
    }

    /* Idle queue, large fire-and-forget slice or no deferred-flush handles:
     * write at once. */
    size_t off = 0;
    if (!cb) {
        int n = data->len > 0 ? try_write_direct(q, data) : 0;
        if (n < 0) {
            budget_release(q, 1, data->len);
            mark_failed(q, n);
            rc = n;
            goto refuse;
        }
        off = (size_t)n;
        if (off == data->len) {
            q->stats.written_bytes += off;
            if (data->len > 0)
                q->stats.try_write_hits++;
            budget_release(q, 1, off);
            complete_item(q, &it, 0);
            *data = wq_empty;
            return BH_OK;
        }
        q->stats.written_bytes += off;
        budget_release(q, 0, off);
        arm_above_mark(q);
    }
    ring_push(q, &it);
    q->head_off = off;
    rc = start_write(q);
    if (rc == 0) {
        *data = wq_empty;
        return BH_OK;
    }
    /* The stream refused the write at once. */
    bh_writeq_item back = ring_pop(q);
    budget_release(q, 1, back.data.len - off);
    mark_failed(q, rc);
    if (off == 0)
        goto refuse; /* nothing was written: the caller keeps *data */
    /* Part of a fire-and-forget slice is already on the wire: accepted. */
    bh_bytes_release(&back.data);
    *data = wq_empty;
    return BH_OK;

refuse:
    q->stats.refused++;
    return rc;
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
    if (!q || q->state == WQ_UNINIT)
        return BH_EINVAL;
    if (q->state != WQ_OPEN || uv_is_closing((uv_handle_t *)q->stream))
        return BH_ECLOSED;
    /* Decide "idle" and seal the inbox atomically with respect to producers,
     * so that a failing uv_shutdown() leaves everything as it was. */
    wq_lock(q);
    int idle = q->count == 0 && !(q->flags & WQ_WRITING) && (!q->mt || q->mt->inbox_n == 0);
    if (idle) {
        int rc = uv_shutdown(&q->sreq, q->stream, on_shutdown);
        if (rc != 0) {
            wq_unlock(q);
            return rc;
        }
        q->flags |= WQ_SHUT_SENT;
    }
    if (q->mt)
        q->mt->closed = 1;
    wq_unlock(q);
    q->state = WQ_SHUTDOWN;
    q->flags |= WQ_SHUT_PENDING;
    q->shutdown_cb = cb;
    q->shutdown_ctx = ctx;
    return BH_OK;
}

static void on_mt_close(uv_handle_t *h)
{
    struct bh_writeq_mt *mt = (struct bh_writeq_mt *)(void *)h;
    uv_mutex_destroy(&mt->lock);
    bh__free(mt->inbox);
    bh__free(mt->spare);
    bh__free(mt);
}

void bh_writeq_close(bh_writeq *q)
{
    if (!q || q->state == WQ_CLOSED)
        return;
    q->state = WQ_CLOSED;
    q->drain_due = 0;
    q->depth++;
    struct bh_writeq_mt *mt = q->mt;
    size_t n_inbox = 0;
    if (mt) {
        n_inbox = mt_seal(q, mt);
        uv_mutex_lock(&mt->lock);
        q->stats.refused += mt->refused;
        mt->refused = 0;
        uv_mutex_unlock(&mt->lock);
        q->mt = NULL;
        mt->q = NULL;
        uv_close((uv_handle_t *)&mt->async, on_mt_close);
    }
    flush_close(q);
    size_t keep = (q->flags & (WQ_WRITING | WQ_FLUSHING)) ? q->pinned : 0;
    ring_complete_tail(q, keep, BH_ECANCELED);
    if (n_inbox)
        complete_array(q, mt->inbox, n_inbox, BH_ECANCELED);
    if ((q->flags & WQ_SHUT_PENDING) && !(q->flags & WQ_SHUT_SENT)) {
        bh_shutdown_cb cb = q->shutdown_cb;
        q->flags &= ~WQ_SHUT_PENDING;
        q->shutdown_cb = NULL;
        if (cb)
            cb(q, BH_ECANCELED, q->shutdown_ctx);
    }
    q->depth--;
    maybe_free(q);
}

void bh_writeq_set_drain_cb(bh_writeq *q, size_t low_water_bytes, bh_drain_cb cb, void *ctx)
{
    if (!q)
        return;
    wq_lock(q);
    q->low_water = low_water_bytes;
    wq_unlock(q);
    q->drain_cb = cb;
    q->drain_ctx = ctx;
}

/* ---- cross-thread submission -------------------------------------------- */

/* Loop side of the inbox: take everything submitted so far into the ring
 * and keep the writer going. */
static void on_async(uv_async_t *h)
{
    struct bh_writeq_mt *mt = (struct bh_writeq_mt *)(void *)h;
    bh_writeq *q = mt->q;
    if (!q)
        return;
    uv_mutex_lock(&mt->lock);
    bh_writeq_item *items = mt->inbox;
    size_t n = mt->inbox_n;
    size_t cap = mt->inbox_cap;
    mt->inbox = mt->spare;
    mt->inbox_cap = mt->spare_cap;
    mt->inbox_n = 0;
    mt->spare = items;
    mt->spare_cap = cap;
    uv_mutex_unlock(&mt->lock);

    q->depth++;
    if (n > 0) {
        if (q->state != WQ_OPEN && q->state != WQ_SHUTDOWN) {
            /* Failed with items still in flight between threads. */
            size_t bytes = 0;
            for (size_t i = 0; i < n; i++)
                bytes += items[i].data.len;
            budget_release(q, n, bytes);
            complete_array(q, items, n, q->state == WQ_FAILED ? q->error : BH_ECANCELED);
        } else if (ring_reserve(q, q->count + n) != BH_OK) {
            size_t bytes = 0;
            for (size_t i = 0; i < n; i++)
                bytes += items[i].data.len;
            budget_release(q, n, bytes);
            fail_queue(q, BH_ENOMEM);
            complete_array(q, items, n, BH_ENOMEM);
        } else {
            for (size_t i = 0; i < n; i++) {
                ring_push(q, &items[i]);
                memset(&items[i], 0, sizeof items[i]);
            }
        }
    }
    q->depth--;
    after_io(q, 0);
}

int bh_writeq_enable_mt(bh_writeq *q)
{
    if (!q || q->state == WQ_UNINIT)
        return BH_EINVAL;
    if (q->state != WQ_OPEN)
        return BH_ECLOSED;
    if (q->mt)
        return BH_OK;
    struct bh_writeq_mt *mt = bh__malloc(sizeof *mt);
    if (!mt)
        return BH_ENOMEM;
    memset(mt, 0, sizeof *mt);
    int rc = uv_mutex_init(&mt->lock);
    if (rc != 0) {
        bh__free(mt);
        return rc;
    }
    rc = uv_async_init(q->loop, &mt->async, on_async);
    if (rc != 0) {
        uv_mutex_destroy(&mt->lock);
        bh__free(mt);
        return rc;
    }
    mt->q = q;
    q->mt = mt;
    q->mt_submit = mt;
    return BH_OK;
}

int bh_writeq_submit_mt(bh_writeq *q, bh_bytes *data, bh_write_cb cb, void *ctx)
{
    if (!q || !data || (data->len > 0 && !data->ptr))
        return BH_EINVAL;
    struct bh_writeq_mt *mt = q->mt_submit;
    if (!mt)
        return BH_EINVAL;
    int rc = BH_OK;
    uv_mutex_lock(&mt->lock);
    if (mt->closed) {
        rc = BH_ECLOSED;
    } else if (data->len > q->cfg.max_bytes) {
        rc = BH_ETOOLONG;
    } else {
        /* The budget bounds the inbox by max_items, so it grows at most to that. */
        rc = budget_reserve_locked(q, data->len, 1);
        if (rc == BH_OK && mt->inbox_n == mt->inbox_cap) {
            size_t cap = mt->inbox_cap ? mt->inbox_cap * 2 : WQ_RING_MIN;
            if (cap > q->cfg.max_items)
                cap = q->cfg.max_items;
            size_t size;
            bh_writeq_item *n = NULL;
            if (bh__size_mul(cap, sizeof *n, &size) == 0)
                n = bh__realloc(mt->inbox, size);
            if (n) {
                mt->inbox = n;
                mt->inbox_cap = cap;
            } else {
                q->used_items--;
                q->used_bytes -= data->len;
                rc = BH_ENOMEM;
            }
        }
        if (rc == BH_OK) {
            bh_writeq_item it = {*data, cb, ctx};
            mt->inbox[mt->inbox_n++] = it;
            /* The first item wakes the loop; later ones ride along until the
             * loop swaps the inbox out. Sent under the lock so that close
             * cannot free the handle in between. */
            if (mt->inbox_n == 1)
                uv_async_send(&mt->async);
        }
    }
    if (rc != BH_OK)
        mt->refused++;
    uv_mutex_unlock(&mt->lock);
    if (rc == BH_OK)
        *data = wq_empty;
    return rc;
}

void bh_writeq_stats(const bh_writeq *q, struct bh_writeq_stats *out)
{
    if (!out)
        return;
    if (!q) {
        memset(out, 0, sizeof *out);
        return;
    }
    *out = q->stats;
    wq_lock(q);
    out->queued_items = q->used_items;
    out->queued_bytes = q->used_bytes;
    if (q->mt)
        out->refused += q->mt->refused;
    wq_unlock(q);
}
