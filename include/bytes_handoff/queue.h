/** @file bytes_handoff/queue.h
 * @brief bh_queue, the loop-free core of the bounded write queue.
 *
 * A bh_queue owns slices handed to it until an adapter reports them written,
 * bounded by an item budget and a byte budget. It performs no I/O: the
 * adapter asks it for the next batch as an array of struct iovec, writes the
 * batch however its event loop writes (writev, uv_try_write, uv_write, ...)
 * and reports how many bytes the kernel took; the queue completes the items
 * those bytes cover, in order, and keeps the offset into a partly written
 * one. bh_writeq (<bytes_handoff/uv.h>) is the libuv adapter; an epoll or
 * io_uring adapter would drive the same calls.
 *
 * What the queue guarantees:
 * - items leave in the order they were accepted (cross-thread items in the
 *   order the inbox took them);
 * - every accepted ticket completes exactly once: 0 when written, the
 *   failure code after bh_queue_fail(), BH_ECANCELED after bh_queue_close();
 *   the slice is released before its callback runs;
 * - a refused item stays with the caller (BH_EFULL, BH_ETOOLONG, BH_ECLOSED,
 *   BH_ENOMEM, BH_EINVAL);
 * - the budgets count every accepted item until it completes (ring, batch
 *   in flight and cross-thread inbox);
 * - an idle queue holds no heap memory: one that was never used allocates
 *   nothing, and one that drains (nothing queued, no batch out) gives its
 *   ring and batch array to the calling thread's array cache, from which the
 *   next push or batch of any queue on that thread takes them again, so a
 *   queue that drains after every write still does not call malloc/free per
 *   item. That cache is per thread, needs no lock and is bounded (32 rings
 *   and 32 batch arrays of at most 64 entries, 96 KiB in all); rings and
 *   batch arrays of more than 64 entries are shrunk to 64 before they are
 *   cached. bh_thread_cache_trim() and bh_trim() (thread_cache.h) empty it,
 *   and so does thread exit. Only the cross-thread inbox
 *   (bh_queue_enable_mt()) stays allocated until the queue is closed.
 *
 * Threads: every function runs on the owner's thread (the "loop thread")
 * except bh_queue_submit(), which any thread may call once
 * bh_queue_enable_mt() has been called. Completion callbacks run on the
 * owner's thread, inside bh_queue_batch_done(), bh_queue_fail(),
 * bh_queue_close() or bh_queue_take_inbox(); never inside bh_queue_push(),
 * bh_queue_push_claimed() or bh_queue_submit(). Inside a callback the user
 * may push more and close the queue, but must not free it. */
#ifndef BYTES_HANDOFF_QUEUE_H
#define BYTES_HANDOFF_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "bytes.h"
#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Largest single iovec a batch holds: a larger slice spans several. */
#define BH_QUEUE_CHUNK ((size_t)1 << 30)
/** A batch stops growing once it covers this many bytes (1 GiB), so no
 * single writev exceeds INT_MAX. */
#define BH_QUEUE_BATCH_BYTES ((size_t)1 << 30)

/** A bounded queue of owned slices (struct bh_queue).
 * @since 0.2 */
typedef struct bh_queue bh_queue;

/** Completion of one accepted ticket, exactly once, on the owner's thread.
 * @param q      the queue
 * @param status 0 (written), the code given to bh_queue_fail(), or
 *               BH_ECANCELED (the queue was closed first)
 * @param ctx    the ticket's context
 * @since 0.2 */
typedef void (*bh_queue_cb)(bh_queue *q, int status, void *ctx);

/** Runs a completed ticket in place of calling cb(q, status, ctx) directly.
 * An adapter whose public callbacks take its own handle type stores them
 * converted to bh_queue_cb and converts them back here (C allows converting a
 * function pointer to another function pointer type and back).
 * @since 0.2 */
typedef void (*bh_queue_complete_fn)(bh_queue *q, bh_queue_cb cb, void *ctx, int status);

/** Wakes the owner's thread after bh_queue_submit() put the first item into
 * an empty inbox; it then calls bh_queue_take_inbox(). Runs on the
 * submitting thread with the inbox mutex held: it must only signal (the uv
 * adapter calls uv_async_send()).
 * @since 0.2 */
typedef void (*bh_queue_wake_fn)(void *wake_ctx);

/** Budgets of a queue; both must be > 0.
 * @since 0.2 */
typedef struct bh_queue_config {
    size_t max_items; /**< accepted items not yet completed */
    size_t max_bytes; /**< bytes of those not yet written */
} bh_queue_config;

/** Counters filled by bh_queue_stats().
 * @since 0.2 */
struct bh_queue_stats {
    size_t queued_items;    /**< accepted, not yet completed (inbox included) */
    size_t queued_bytes;    /**< bytes of those not yet written */
    uint64_t written_items; /**< completed with status 0 */
    uint64_t written_bytes; /**< bytes reported written */
    uint64_t refused;       /**< push, claim and submit calls refused */
};

/** One ring slot: a slice and its optional ticket.
 * @since 0.2 */
typedef struct bh_queue_item {
    bh_bytes data;  /**< the slice, owned by the queue */
    bh_queue_cb cb; /**< NULL for fire-and-forget */
    void *ctx;      /**< passed to cb */
} bh_queue_item;

/** A batch handed out by bh_queue_batch_next(): iov[0 .. n_iov) covers the first
 * `items` queued items (from the offset already written into the first one)
 * and `bytes` bytes in total.
 * @since 0.2 */
typedef struct bh_queue_batch {
    const struct iovec *iov; /**< the batch, ready for writev() */
    size_t n_iov;            /**< entries in iov */
    size_t items;            /**< queued items the batch covers */
    size_t bytes;            /**< bytes in iov */
} bh_queue_batch;

struct bh_queue_inbox; /* cross-thread inbox, allocated by bh_queue_enable_mt() */

/** Caller-owned queue, embedded by value. Every field is private: use the
 * functions below. The used_* counters, want_drain and low_water are
 * guarded by the inbox mutex once bh_queue_enable_mt() was called.
 * @since 0.2 */
struct bh_queue {
    /** @cond PRIVATE (fields not part of the API) */
    bh_queue_item *ring;       /* grows by doubling up to max_items; NULL while idle */
    size_t ring_cap, head, count;
    size_t head_off;           /* bytes of ring[head] already written */
    size_t pinned;             /* items at the head covered by the batch out */
    size_t batch_bytes;        /* bytes of the batch out */
    size_t used_items;         /* budget use: ring + inbox */
    size_t used_bytes;
    size_t low_water;
    bh_queue_config cfg;
    struct iovec *iov;         /* batch array, grown on demand up to IOV_MAX; NULL while idle */
    size_t iov_cap;
    struct iovec iov1;         /* one-entry batch when iov cannot grow */
    bh_queue_complete_fn complete;
    struct bh_queue_inbox *inbox;        /* owner's view; NULL after close */
    struct bh_queue_inbox *inbox_submit; /* producers' view; set once */
    uint64_t written_items, written_bytes, refused;
    int state;
    int error;
    unsigned depth;            /* nesting of completion loops (defers freeing) */
    unsigned char batch_out;   /* a batch is handed out */
    unsigned char want_drain;  /* a producer was refused or the queue is above the mark */
    unsigned char drain_due;   /* the drain signal is due */
    /** @endcond */
};

/** Lifecycle states reported by bh_queue_state().
 * @since 0.2 */
typedef enum bh_queue_lifecycle {
    BH_QUEUE_UNINIT = 0, /**< never initialised (zeroed memory) */
    BH_QUEUE_OPEN,       /**< accepting items */
    BH_QUEUE_SEALED,     /**< bh_queue_seal(): no new items, queued ones still go out */
    BH_QUEUE_FAILED,     /**< bh_queue_fail(): every pending item completed with the error */
    BH_QUEUE_CLOSED      /**< bh_queue_close() */
} bh_queue_lifecycle;

/** Initialises q; allocates nothing.
 * @param cfg      budgets (copied); both must be > 0
 * @param complete NULL to call tickets as cb(q, status, ctx), or the
 *                 adapter's trampoline
 * @param q the queue (caller-owned).
 * @return BH_OK, or BH_EINVAL (q or cfg NULL, a zero budget)
 * @since 0.2 */
BH_EXPORT int bh_queue_init(bh_queue *q, const bh_queue_config *cfg, bh_queue_complete_fn complete);

/** Appends *data with an optional ticket. On success the queue owns the
 * reference in *data and zeroes it; on refusal the caller still owns *data.
 * @param q the queue.
 * @param data the slice; taken on success.
 * @param cb the ticket, or NULL for fire-and-forget.
 * @param ctx passed to cb.
 * @return BH_OK; BH_EFULL (a budget would be exceeded: the drain signal is
 *         armed), BH_ETOOLONG (data->len > max_bytes), BH_ECLOSED (sealed,
 *         failed or closed), BH_ENOMEM (no ring could be allocated or
 *         grown), BH_EINVAL
 * @since 0.2 */
BH_EXPORT int bh_queue_push(bh_queue *q, bh_bytes *data, bh_queue_cb cb, void *ctx);

/** Claims budget and a ring slot for one item of len bytes without
 * queueing it, for an adapter that writes a slice at once on an idle queue.
 * Follow with bh_queue_push_claimed() or bh_queue_unclaim().
 * @param q the queue.
 * @param len bytes of the item.
 * @return as bh_queue_push()
 * @since 0.2 */
BH_EXPORT int bh_queue_claim(bh_queue *q, size_t len);

/** Gives back a claim unused (the adapter's direct write failed).
 * @param q the queue.
 * @param len the len given to bh_queue_claim().
 * @since 0.2 */
BH_EXPORT void bh_queue_unclaim(bh_queue *q, size_t len);

/** Queues the item claimed by bh_queue_claim(), of which the adapter
 * already wrote the first `written` bytes directly (non-zero only on an idle
 * queue). Takes the reference in *data and zeroes it.
 * @param q the queue.
 * @param data the slice; taken.
 * @param cb the ticket, or NULL for fire-and-forget.
 * @param ctx passed to cb.
 * @param written bytes of it the adapter already wrote.
 * @return 1 when the item completed at once (fire-and-forget and
 *         0 < written == data->len: counted written, slice released), else 0
 * @since 0.2 */
BH_EXPORT int bh_queue_push_claimed(bh_queue *q, bh_bytes *data, bh_queue_cb cb, void *ctx,
                                     size_t written);

/** Removes the newest item again, right after bh_queue_push_claimed() when
 * the adapter could not start writing it; its budget is returned and its
 * slice goes back to *out (no callback runs).
 * @param q the queue.
 * @param out receives the slice.
 * @return the bytes of it that were already written
 * @since 0.2 */
BH_EXPORT size_t bh_queue_take_back(bh_queue *q, bh_bytes *out);

/** Hands out the next batch: at most max_iov iovecs (and the queue's own
 * limits: IOV_MAX, BH_QUEUE_BATCH_BYTES) starting at the exact offset already
 * written into the head item; slices above BH_QUEUE_CHUNK span several
 * iovecs. The covered items are pinned: bh_queue_close() and bh_queue_fail()
 * leave them to bh_queue_batch_done() / bh_queue_batch_abort(). The iovec
 * array belongs to the queue and stays valid until the batch ends.
 * @param q the queue.
 * @param max_iov most iovecs wanted.
 * @param out receives the batch.
 * @return 1 with *out filled, 0 when nothing is queued or a batch is out
 * @since 0.2 */
BH_EXPORT int bh_queue_batch_next(bh_queue *q, size_t max_iov, bh_queue_batch *out);

/** Ends the batch: `written` (<= its bytes) went out. Completes the items
 * those bytes cover with 0 in order and keeps the exact offset into a
 * partly written one. On a failed or closed queue the rest of the batch then
 * completes with the failure (BH_ECANCELED when closed).
 * @param q the queue.
 * @param written bytes of the batch that went out.
 * @return the number of items completed with 0
 * @since 0.2 */
BH_EXPORT size_t bh_queue_batch_done(bh_queue *q, size_t written);

/** Ends the batch without writing: the items are unpinned, nothing completes
 * (on a failed or closed queue they then complete with its failure).
 * @param q the queue.
 * @since 0.2 */
BH_EXPORT void bh_queue_batch_abort(bh_queue *q);

/** Stops waiting for the batch out (a write that makes no progress): the
 * tickets of its items complete now, once, with err; the slices stay pinned
 * until the batch ends, because the adapter's write may still read them.
 * @param q the queue.
 * @param err the status the tickets complete with.
 * @since 0.2 */
BH_EXPORT void bh_queue_batch_abandon(bh_queue *q, int err);

/** Fails the queue with err (a negative code): later pushes and submits get
 * BH_ECLOSED, every item not pinned by a batch (inbox included) completes
 * once with err, and a producer waiting for the drain signal gets it. On a
 * failed or closed queue it only completes what is left.
 * @param q the queue.
 * @param err the failure, a negative code.
 * @since 0.2 */
BH_EXPORT void bh_queue_fail(bh_queue *q, int err);

/** Marks the queue failed with err like bh_queue_fail() but runs no
 * callback (for adapter paths inside a user call); what is left completes
 * at the next bh_queue_take_inbox(), bh_queue_batch_done() or
 * bh_queue_fail().
 * @param q the queue.
 * @param err the failure, a negative code.
 * @since 0.2 */
BH_EXPORT void bh_queue_fail_deferred(bh_queue *q, int err);

/** Seals the queue: later pushes and submits get BH_ECLOSED, queued items
 * still go out. Under the inbox mutex (so that no producer slips in), when
 * the queue and its inbox are empty it first calls if_empty(ctx); a non-zero
 * return is passed back and nothing changes.
 * @param q the queue.
 * @param if_empty called under the inbox mutex when the queue is empty, or NULL.
 * @param ctx passed to if_empty.
 * @return 0, the non-zero result of if_empty, BH_ECLOSED (not open) or
 *         BH_EINVAL
 * @since 0.2 */
BH_EXPORT int bh_queue_seal(bh_queue *q, int (*if_empty)(void *ctx), void *ctx);

/** Closes the queue: every item not pinned by a batch (inbox included)
 * completes once with BH_ECANCELED, later calls get BH_ECLOSED, the drain
 * signal is dropped. The ring and batch array are freed once the batch out
 * (if any) has ended. Idempotent; safe inside a callback.
 * @param q the queue.
 * @return the sealed cross-thread inbox, now owned by the caller, who frees
 *         it with bh_queue_inbox_free() once no producer can call
 *         bh_queue_submit() any more (NULL when there is none or on a
 *         repeated close)
 * @since 0.2 */
BH_EXPORT struct bh_queue_inbox *bh_queue_close(bh_queue *q);

/** Sets the low-water mark of the drain signal (bytes).
 * @param q the queue.
 * @param low_water_bytes the mark.
 * @since 0.2 */
BH_EXPORT void bh_queue_set_low_water(bh_queue *q, size_t low_water_bytes);

/** Takes the drain signal.
 * @param q the queue.
 * @return 1 once (then cleared) when queued bytes fell to or below the
 *         low-water mark after a producer was refused with BH_EFULL or the
 *         queue was above the mark, or when the queue failed while a producer
 *         was waiting; else 0.
 * @since 0.2 */
BH_EXPORT int bh_queue_take_drain(bh_queue *q);

/** Whether the ring is idle.
 * @param q the queue.
 * @return 1 when no item is queued in the ring and no batch is out (the
 *         inbox is not looked at), else 0.
 * @since 0.2 */
BH_EXPORT int bh_queue_ring_empty(const bh_queue *q);

/** Whether the queue is empty.
 * @param q the queue.
 * @return 1 when the ring, the batch out and the inbox are all empty, else
 *         0.
 * @since 0.2 */
BH_EXPORT int bh_queue_empty(const bh_queue *q);

/** Items in the ring.
 * @param q the queue.
 * @return their number, pinned ones included.
 * @since 0.2 */
BH_EXPORT size_t bh_queue_count(const bh_queue *q);

/** Read-only view of a queue's ring, filled by bh_queue_ring_view(): what
 * tests, diagnostics and adapters may inspect without naming private fields.
 * @since 0.2 */
struct bh_queue_ring_view {
    const void *storage; /**< the ring's array; NULL while the queue holds none */
    size_t capacity;     /**< slots in it (0 without one); at most max_items */
    size_t count;        /**< items queued in it, pinned ones included */
    size_t head_offset;  /**< bytes of the head item already written */
    size_t max_items;    /**< the item budget given to bh_queue_init() */
    int wrapped;         /**< 1 when the items wrap around the end of the array */
};

/** Snapshot of the ring (owner's thread; allocates nothing, never fails).
 * @param q the queue (initialised, possibly closed).
 * @param out receives the view; the storage pointer is only for comparison
 *            (it may be freed or given to the array cache by the next
 *            call on q).
 * @since 0.2 */
BH_EXPORT void bh_queue_ring_view(const bh_queue *q, struct bh_queue_ring_view *out);

/** Current state.
 * @param q the queue.
 * @return its bh_queue_lifecycle.
 * @since 0.2 */
BH_EXPORT bh_queue_lifecycle bh_queue_state(const bh_queue *q);

/** The failure of a failed queue.
 * @param q the queue.
 * @return the code given to bh_queue_fail(), or 0 while it has not failed.
 * @since 0.2 */
BH_EXPORT int bh_queue_error(const bh_queue *q);

/** Snapshot of the counters (owner's thread).
 * @param q the queue.
 * @param out receives the counters.
 * @since 0.2 */
BH_EXPORT void bh_queue_stats(const bh_queue *q, struct bh_queue_stats *out);

/** Enables bh_queue_submit(): allocates the inbox (a mutex and item arrays
 * grown on demand). wake(wake_ctx) signals the owner's thread.
 * @param q the queue.
 * @param wake signals the owner's thread.
 * @param wake_ctx passed to wake.
 * @return BH_OK (also when already enabled), BH_EINVAL (q or wake NULL,
 *         uninitialised), BH_ECLOSED (not open), BH_ENOMEM
 * @since 0.2 */
BH_EXPORT int bh_queue_enable_mt(bh_queue *q, bh_queue_wake_fn wake, void *wake_ctx);

/** Thread-safe submission from any thread with the same budgets (counted
 * under the inbox mutex), ownership and refusals as bh_queue_push(). Items
 * of one producer stay in order. Producers may race bh_queue_close() (they
 * get BH_ECLOSED) until the inbox returned by it is freed.
 * @param q the queue.
 * @param data the slice; taken on success.
 * @param cb the ticket (runs on the owner's thread), or NULL.
 * @param ctx passed to cb.
 * @return as bh_queue_push(), or #BH_EINVAL when bh_queue_enable_mt() was
 *         not called.
 * @since 0.2 */
BH_EXPORT int bh_queue_submit(bh_queue *q, bh_bytes *data, bh_queue_cb cb, void *ctx);

/** Owner's side of the inbox: moves everything submitted so far into the
 * ring, in order. If the ring cannot grow the queue fails with BH_ENOMEM; on
 * a failed queue the items complete with its error.
 * @param q the queue.
 * @return the number of items moved into the ring
 * @since 0.2 */
BH_EXPORT size_t bh_queue_take_inbox(bh_queue *q);

/** Frees an inbox returned by bh_queue_close() (NULL is ignored).
 * @param inbox the inbox, or NULL.
 * @since 0.2 */
BH_EXPORT void bh_queue_inbox_free(struct bh_queue_inbox *inbox);

#ifdef __cplusplus
}
#endif

#endif
