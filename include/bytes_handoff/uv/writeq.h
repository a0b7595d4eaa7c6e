/** @file bytes_handoff/uv/writeq.h
 * @brief bh_writeq: the bounded write queue on a libuv stream.
 *
 * Part of the libuv adapter library, libbytes_handoff_uv; include
 * <bytes_handoff/uv.h> for all of it. Call every function on the loop thread
 * unless it says otherwise. */
#ifndef BYTES_HANDOFF_UV_WRITEQ_H
#define BYTES_HANDOFF_UV_WRITEQ_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "../bytes.h"
#include "../error.h"
#include "../export.h"
#include "../queue.h"

#ifdef __cplusplus
extern "C" {
#endif

/** @name Bounded write queue
 * A bh_writeq owns the slices handed to it until the socket has written them
 * (or the queue failed or was closed), bounded by an item budget and a byte
 * budget. Slices are written in order and batched automatically per loop
 * iteration: an enqueue only appends to the queue and, when no write is in
 * flight, arms a deferred flush that runs later in the same loop iteration
 * (a uv_check_t right after the poll phase, so after every I/O callback of
 * the iteration, plus a uv_prepare_t that catches enqueues made outside the
 * poll phase before the loop blocks). The flush writes everything queued
 * with one uv_try_write() (one writev, up to IOV_MAX slices), completes what
 * the kernel took right there, and hands any remainder to uv_write(); one
 * uv_write() is in flight at a time. So 64 frames enqueued from one read
 * callback cost one write system call, and a ticket whose bytes the kernel
 * took completes in the same loop iteration with its slice released.
 *
 * Callback rules (all three callback types): they run on the loop thread,
 * never inside bh_writeq_try_write(), bh_writeq_try_write_ff(),
 * bh_writeq_submit_mt() or bh_writeq_shutdown(). Ticket callbacks of items
 * still queued run inside bh_writeq_close() (status BH_ECANCELED). Inside a
 * callback the user may write more, shut down, close the queue and
 * uv_close() the stream, but must not free q: free it from the stream's
 * close callback, after bh_writeq_close().
 * @{ */

/** Default item budget of a write queue. */
#define BH_WRITEQ_MAX_ITEMS_DEFAULT ((size_t)1024)
/** Default byte budget of a write queue. */
#define BH_WRITEQ_MAX_BYTES_DEFAULT ((size_t)8 * 1024 * 1024)

/** A bounded write queue on a libuv stream (struct bh_writeq).
 * @since 0.1 */
typedef struct bh_writeq bh_writeq;

/** Completion of one accepted ticket, exactly once: status 0 (written), a
 * libuv error (UV_EPIPE, UV_ECONNRESET, ...; the queue has failed), BH_ENOMEM
 * (the queue failed taking a cross-thread item), or BH_ECANCELED (queue
 * closed before the item was written; also for the write in flight when
 * libuv cancels it because the stream was closed). The slice has already
 * been released when cb runs.
 * @param q the queue.
 * @param status as above.
 * @param ctx the ticket's context.
 * @since 0.1 */
typedef void (*bh_write_cb)(bh_writeq *q, int status, void *ctx);

/** Completion of bh_writeq_shutdown(), exactly once.
 * @param q the queue.
 * @param status 0 (everything written and the write side shut down), a
 *        libuv error, or #BH_ECANCELED (queue closed first).
 * @param ctx the ctx given to bh_writeq_shutdown().
 * @since 0.1 */
typedef void (*bh_shutdown_cb)(bh_writeq *q, int status, void *ctx);

/** Queued bytes fell to or below the low-water mark after a producer was
 * refused with BH_EFULL or the queue was above the mark; producers retry
 * from here. Also called once when the queue fails while a producer waits,
 * so that the retry learns BH_ECLOSED. Not called after bh_writeq_close().
 * @param q the queue.
 * @param ctx the ctx given to bh_writeq_set_drain_cb().
 * @since 0.1 */
typedef void (*bh_drain_cb)(bh_writeq *q, void *ctx);

/** Budgets of a write queue.
 * @since 0.1 */
typedef struct bh_writeq_config {
    size_t max_items; /**< budget: queued items (default 1024) */
    size_t max_bytes; /**< budget: queued bytes (default 8 MiB) */
} bh_writeq_config;

/** Counters, as `struct bh_writeq_stats` (like POSIX `struct stat` beside
 * stat(), the function bh_writeq_stats() fills it).
 * @since 0.1 */
struct bh_writeq_stats {
    size_t queued_items;     /**< accepted, not yet completed (incl. in flight
                                  and cross-thread inbox) */
    size_t queued_bytes;     /**< bytes of those not yet written */
    uint64_t written_items;  /**< completed successfully */
    uint64_t written_bytes;  /**< bytes of those */
    uint64_t refused;        /**< try_write/submit calls refused (any reason;
                                  submit_mt calls racing bh_writeq_close are
                                  not counted) */
    uint64_t batches;        /**< uv_write calls issued */
    uint64_t try_write_hits; /**< items fully written by a uv_try_write (the
                                  deferred flush, or the immediate path) */
    uint64_t flushes;        /**< uv_try_write calls of the deferred flush (one
                                  writev each) */
};

/** @cond PRIVATE */
struct bh_writeq_dispatch; /* the loop's deferred-flush handles, shared by its queues */
struct bh_writeq_mt;    /* cross-thread wake, allocated by bh_writeq_enable_mt */
struct bh_writeq_stall; /* write-stall timer, allocated by bh_writeq_set_stall_timeout */
/** @endcond */

/** A libuv driver of the loop-free queue core (bh_queue, see queue.h), which
 * holds the ring, the budgets, the tickets and the cross-thread inbox.
 *
 * Idle cost (x86_64 Linux, libuv 1.44): sizeof(bh_writeq) is 520 bytes and
 * a queue that was never written to allocates nothing. After its first
 * enqueue an idle queue keeps, besides its struct, no handle and no block of
 * its own for the flush, only a reference on its loop's flush dispatcher:
 * one 296-byte block (a uv_check_t and a uv_prepare_t) per loop, shared by
 * every queue of that loop and freed when the last of them is closed. Its
 * ring and batch array go back to the thread's array cache whenever it
 * drains (see queue.h), so an idle queue, used or not, costs its 520 bytes
 * and holds no heap memory of its own. The cross-thread block (144 bytes, plus the
 * core's 112-byte inbox and its arrays) exists only after
 * bh_writeq_enable_mt(), the stall timer block (192 bytes) only while a
 * stall timeout is set.
 * @since 0.1 */
struct bh_writeq {
    uv_loop_t *loop;     /**< public, read-only: the loop */
    uv_stream_t *stream; /**< public, read-only: the stream written to */
    /** @cond PRIVATE (fields not part of the API) */
    bh_queue core;
    union {
        uv_write_t write;       /* the one uv_write in flight */
        uv_shutdown_t shutdown; /* issued only once nothing is written any more */
    } req;
    size_t inflight;            /* bytes handed to the write in flight */
    unsigned flags;
    bh_shutdown_cb shutdown_cb;
    void *shutdown_ctx;
    bh_drain_cb drain_cb;
    void *drain_ctx;
    struct bh_writeq_dispatch *dispatch; /* the loop's flush dispatcher: NULL until the
                                            first enqueue and after close */
    bh_writeq *flush_next;               /* next queue waiting for the flush */
    bh_writeq **flush_pprev;             /* link to this queue; NULL while not waiting */
    struct bh_writeq_mt *mt;             /* NULL until enable_mt and after close */
    struct bh_writeq_stall *stall;       /* NULL while no stall timeout is set */
    uint64_t refused;              /* refusals the core did not see */
    uint64_t batches, try_write_hits, flushes;
    /** @endcond */
};

/** The default budgets.
 * @return max_items 1024, max_bytes 8 MiB.
 * @since 0.1 */
BH_EXPORT bh_writeq_config bh_writeq_config_default(void);

/** Initialises a write queue on a stream. Allocates nothing: an idle queue
 * costs its struct. The first enqueue allocates the ring and takes a
 * reference on the loop's flush dispatcher, which holds the deferred-flush
 * handles of every queue of the loop (the loop's first used queue allocates
 * it; bh_writeq_close() drops the reference, and the last one closes the
 * handles, freed from their own close callbacks); the handles are active
 * only while items wait for the flush, so an idle queue does not keep the
 * loop alive. A queue is used from its loop's thread (the dispatcher is
 * found per thread; only bh_writeq_submit_mt() may be called elsewhere).
 * The queue does not use s->data or loop->data, so a bh_reader can share
 * the stream.
 * @param q the queue (caller-owned).
 * @param loop the loop of s.
 * @param s a TCP, pipe or TTY stream of loop, owned by the caller.
 * @param cfg the budgets (copied), both > 0; NULL selects the defaults.
 * @return #BH_OK or #BH_EINVAL.
 * @since 0.1 */
BH_EXPORT int bh_writeq_init(bh_writeq *q, uv_loop_t *loop, uv_stream_t *s,
                             const bh_writeq_config *cfg);

/** Queues a slice with a completion ticket: cb(q, status, ctx) runs exactly once
 * on the loop thread, never inside this call: the item is appended and
 * written by the deferred flush later in the same loop iteration; when the
 * kernel takes its bytes there, cb runs from that flush (a loop callback),
 * otherwise when the uv_write() of the remainder completes. On success the
 * queue takes the reference in *data and zeroes it. On refusal the caller
 * still owns *data and cb is never called: BH_EFULL (the item or byte
 * budget would be exceeded; retry from the drain callback), BH_ETOOLONG
 * (data->len > max_bytes, can never fit), BH_ECLOSED (closed, shut down or
 * failed), BH_ENOMEM (the ring could not grow), BH_EINVAL. A write error
 * found by the flush fails the queue (every pending ticket gets it once,
 * later calls get BH_ECLOSED). Only when the loop's flush dispatcher cannot
 * be allocated does an enqueue on an idle queue write at once as a fallback
 * (uv_write() here); the stream refusing that write at once is then
 * returned as a libuv error (the queue has failed).
 * @param q the queue.
 * @param data the slice; taken (and zeroed) on success, still the caller's
 *        on refusal.
 * @param cb the ticket; NULL behaves as bh_writeq_try_write_ff().
 * @param ctx passed to cb.
 * @return #BH_OK, #BH_EFULL, #BH_ETOOLONG, #BH_ECLOSED, #BH_ENOMEM,
 *         #BH_EINVAL, or a libuv error in the fallback described above.
 * @since 0.1 */
BH_EXPORT int bh_writeq_try_write(bh_writeq *q, bh_bytes *data, bh_write_cb cb, void *ctx);

/** Fire-and-forget form: no completion, no allocation in steady state. The
 * slice is appended and released by the deferred flush once the kernel has
 * its bytes (later in the same loop iteration when the socket has room).
 * Same ownership and errors as bh_writeq_try_write(). In the allocation
 * fallback described there, an idle queue writes directly from data with
 * uv_try_write() and queues only the remainder; a write error after part of
 * the slice went out is then not a refusal: the call returns 0, the slice
 * is released and the queue has failed.
 * @param q the queue.
 * @param data the slice; taken (and zeroed) on success.
 * @return as bh_writeq_try_write().
 * @since 0.1 */
BH_EXPORT int bh_writeq_try_write_ff(bh_writeq *q, bh_bytes *data);

/** Flushes everything queued (including accepted cross-thread items), then
 * uv_shutdown()s the stream's write side, then calls cb once. Later writes
 * get BH_ECLOSED.
 * @param q the queue.
 * @param cb called once when done.
 * @param ctx passed to cb.
 * @return #BH_OK; or, with cb not called and nothing changed, #BH_ECLOSED,
 *         #BH_EINVAL, or the libuv error of uv_shutdown() on an idle
 *         queue.
 * @since 0.1 */
BH_EXPORT int bh_writeq_shutdown(bh_writeq *q, bh_shutdown_cb cb, void *ctx);

/** Closes the queue: every queued ticket completes once with BH_ECANCELED and
 * every slice is released (items waiting for the deferred flush included);
 * a pending shutdown completes with BH_ECANCELED (or, if uv_shutdown() was
 * issued, when libuv reports it). The write already handed to libuv
 * completes when libuv reports it (BH_ECANCELED when the stream was closed,
 * 0 if it had been written). Call it before or together with
 * uv_close(stream); q may be freed from the stream's close callback. The
 * ring and batch array are freed by then; q leaves the loop's flush
 * dispatcher here (the last queue of the loop to close also closes the
 * dispatcher's handles) and the cross-thread block is closed here; both are
 * freed by their own close callbacks in the same loop iteration, never
 * touching q.
 * Idempotent; safe inside any queue callback.
 * @param q the queue.
 * @since 0.1 */
BH_EXPORT void bh_writeq_close(bh_writeq *q);

/** Registers the drain callback.
 * @param q the queue.
 * @param low_water_bytes cb runs when queued bytes fall to or below this
 *        after a producer was refused with BH_EFULL or the queue was above
 *        the mark.
 * @param cb the callback; NULL disables it.
 * @param ctx passed to cb.
 * @since 0.1 */
BH_EXPORT void bh_writeq_set_drain_cb(bh_writeq *q, size_t low_water_bytes, bh_drain_cb cb,
                                      void *ctx);

/** Sets the write-stall timeout, like the write timeout of libevent's
 * bufferevent_set_timeouts(): when no byte has been written for ms
 * milliseconds while items are queued (the peer does not read), the queue
 * fails with UV_ETIMEDOUT: every pending ticket completes once with it
 * (those of the uv_write in flight too: their slices are released when
 * libuv gives the write back, at the latest when the stream is closed), a
 * pending shutdown reports it, a waiting producer gets its drain callback
 * and later writes get BH_ECLOSED. The timer runs only while items are
 * queued, so an idle queue does not keep the loop alive.
 * @param q  an open queue (or one being shut down)
 * @param ms the timeout; 0 disables it
 * @return BH_OK; BH_EINVAL (q NULL or not initialised), BH_ECLOSED (failed
 *         or closed), BH_ENOMEM, or the libuv code of uv_timer_init().
 * One uv_timer_t at most per queue, allocated (192 bytes) when a timeout is
 * first set and closed (freed) when it is set to 0 or the queue is closed.
 * @since 0.2 */
BH_EXPORT int bh_writeq_set_stall_timeout(bh_writeq *q, uint64_t ms);

/** Enables bh_writeq_submit_mt(): allocates the inbox block (mutex, uv_async_t
 * on the queue's loop, item arrays grown on demand) separately from q, so
 * freeing q from the stream's close callback stays safe. The async handle
 * keeps the loop alive until bh_writeq_close(). Call on the loop thread
 * before other threads submit; idempotent.
 * @param q the queue.
 * @return #BH_OK, #BH_EINVAL, #BH_ECLOSED, #BH_ENOMEM or a libuv code.
 * @since 0.1 */
BH_EXPORT int bh_writeq_enable_mt(bh_writeq *q);

/** Thread-safe submission from any thread, with the same budgets (counted
 * under the inbox mutex, inbox items included), ownership and errors as
 * bh_writeq_try_write(); cb runs on the loop thread. Items of one producer
 * stay in order. Producers may race bh_writeq_close() (they get BH_ECLOSED) but
 * must have stopped calling this before the loop runs the close callbacks
 * that follow bh_writeq_close(), when the inbox block and q may be freed.
 * @param q the queue.
 * @param data the slice; taken (and zeroed) on success.
 * @param cb the ticket, or NULL for fire-and-forget.
 * @param ctx passed to cb.
 * @return as bh_writeq_try_write(), or #BH_EINVAL when
 *         bh_writeq_enable_mt() was not called.
 * @since 0.1 */
BH_EXPORT int bh_writeq_submit_mt(bh_writeq *q, bh_bytes *data, bh_write_cb cb, void *ctx);

/** Snapshot of the counters (loop thread).
 * @param q the queue.
 * @param out receives them.
 * @since 0.1 */
BH_EXPORT void bh_writeq_stats(const bh_writeq *q, struct bh_writeq_stats *out);

/** @} */

#ifdef __cplusplus
}
#endif

#endif
