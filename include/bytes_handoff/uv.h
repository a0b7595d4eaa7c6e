/** @file bytes_handoff/uv.h
 * @brief The libuv adapter library, libbytes_handoff_uv: the read adapter
 * (bh_reader), the bounded write queue (bh_writeq) and the raw relay
 * (bh_tunnel). This is the only public header that includes <uv.h>; the core
 * (bytes, buf) works with any event loop.
 *
 * Both objects are caller-owned structs (embed them by value, like libuv
 * handles). Their fields are public only so they can be embedded: treat them
 * as private. Unless a function says otherwise, call it on the loop thread. */
#ifndef BYTES_HANDOFF_UV_H
#define BYTES_HANDOFF_UV_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "bytes.h"
#include "error.h"
#include "export.h"
#include "queue.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Read adapter                                                              */
/* ------------------------------------------------------------------------ */

/** Spare space a reader asks its buffer for before each read. */
#define BH_READ_RESERVE_DEFAULT ((size_t)16 * 1024)

/** A read adapter (struct bh_reader). */
typedef struct bh_reader bh_reader;

/** The read callback, called on the loop thread, with status:
 * - BH_OK: bytes were appended to the reader's buffer (never for nothing);
 * - UV_EOF: end of stream, delivered once; the unconsumed tail stays in the
 *   buffer, readable and splittable. On TCP, an EOF whose socket holds an
 *   error (SO_ERROR: libuv reports an RST right behind the last data as EOF)
 *   is delivered as UV_ECONNRESET instead, so a reset stream never looks
 *   complete;
 * - BH_ETOOLONG: the buffer is full at its max_len and the callback consumed
 *   nothing (reported once, right after that callback returns, or on the next
 *   read when reading was restarted with a full buffer); nothing was read;
 * - BH_ENOMEM: the buffer could not grow for the next read; nothing was read;
 * - UV_ETIMEDOUT: no byte arrived for the read-idle timeout while reading
 *   (see bh_reader_set_idle_timeout()); the buffer is as the last callback
 *   left it;
 * - another negative libuv code: a read error (UV_ECONNRESET, ...).
 * Every status but BH_OK is final: reading has stopped before the callback
 * runs, no further callback follows, and bh_reader_start() returns BH_ECLOSED.
 * Inside the callback the user may peek, split, advance, take the tail
 * (the reader's buffer is then empty and keeps working), free the buffer's
 * block, stop or restart the reader, or uv_close() the stream (the reader then
 * only asks uv_is_closing() before returning and never reads or stops that
 * stream again). r and the buffer must stay valid until the callback returns;
 * free them from the stream's close callback (after bh_reader_close() when a
 * read-idle timeout was set).
 * @param r the reader.
 * @param status as above.
 * @param ctx the ctx given to bh_reader_init(). */
typedef void (*bh_read_cb)(bh_reader *r, int status, void *ctx);

struct bh_reader_timer; /* read-idle timer block, see bh_reader_set_idle_timeout() */

/** A read adapter bound to one stream and one buffer; caller-owned,
 * embedded by value, every field private. It allocates nothing itself unless
 * a read-idle timeout is set: the buffer takes a block from the thread's
 * block cache or grows through bh_buf_reserve() when a read needs room, and
 * when a callback leaves the buffer empty the block goes back to that cache
 * (see bh_reader_keep_block()).
 *
 * What an idle connection costs (x86-64, glibc, libuv 1.44): an idle reader
 * whose callback emptied its buffer holds sizeof(bh_reader) = 56 bytes and
 * its bh_buf sizeof(bh_buf) = 40 bytes, no block; a read-idle timeout adds
 * one allocation of 176 bytes (a uv_timer_t, the period and the time of the
 * last read). The stream handle (uv_tcp_t, 248 bytes) and the write queue
 * (see bh_writeq_init()) are the rest. The thread's block cache is shared by
 * all connections (at most #BH_BLOCK_CACHE_MAX_BLOCKS_DEFAULT blocks,
 * #BH_BLOCK_CACHE_MAX_BYTES_DEFAULT bytes by default). */
struct bh_reader {
    uv_stream_t *stream; /**< private: the stream read from; stream->data == this reader */
    bh_buf *buf;         /**< private: where bytes land; owned by the caller */
    size_t read_reserve; /**< private: spare bytes requested before each read */
    bh_read_cb cb;       /**< private: the read callback */
    void *ctx;           /**< private: its context */
    unsigned flags;      /**< private: reading / finished / keep block */
    int pending;         /**< private: status to report for the zero-length read just offered */
    struct bh_reader_timer *timer; /**< private: read-idle timer, NULL while none is set */
};

/** Binds a reader to a stream and a buffer. Does not start reading. The
 * reader stores itself in s->data (libuv's callbacks find it there): keep
 * your own state in ctx and do not overwrite s->data while the reader is
 * bound.
 * @param r the reader.
 * @param s a TCP, pipe or TTY stream, owned by the caller and alive while r
 *        is used.
 * @param buf where bytes land, owned by the caller and alive while r is used.
 * @param read_reserve spare space requested before each read (0 selects
 *        #BH_READ_RESERVE_DEFAULT), clamped to what the buffer's max_len
 *        still allows.
 * @param cb the read callback.
 * @param ctx passed to cb.
 * @return #BH_OK or #BH_EINVAL (r, s, buf or cb NULL). */
BH_EXPORT int bh_reader_init(bh_reader *r, uv_stream_t *s, bh_buf *buf, size_t read_reserve,
                             bh_read_cb cb, void *ctx);

/** Starts (or resumes) reading; safe inside the callback. Idempotent.
 * @param r the reader.
 * @return #BH_OK, #BH_EINVAL (r NULL), #BH_ECLOSED once a final status was
 *         reported or the stream is closing, or the libuv code from
 *         uv_read_start(). */
BH_EXPORT int bh_reader_start(bh_reader *r);

/** Pauses reading (backpressure): no callback runs until
 * bh_reader_start(). Idempotent; safe inside the callback and after
 * uv_close() of the stream (until its close callback has run). Use it
 * instead of uv_read_stop().
 * @param r the reader.
 * @return #BH_OK or #BH_EINVAL (r NULL). */
BH_EXPORT int bh_reader_stop(bh_reader *r);

/** Keeps the buffer's block while idle instead of giving it back to the
 * thread's block cache after each callback that leaves the buffer empty (the
 * default). For latency-critical connections: the next read needs no cache
 * lookup, at the cost of one block per idle connection.
 * @param r the reader.
 * @param enable nonzero keeps the block, 0 gives it back (the default).
 * @return #BH_OK or #BH_EINVAL (r NULL). */
BH_EXPORT int bh_reader_keep_block(bh_reader *r, int enable);

/** Sets the read-idle timeout, like libevent's bufferevent_set_timeouts():
 * when the reader is reading and no byte arrives for ms milliseconds (loop
 * time; counted from bh_reader_start() or the last read), reading stops and
 * the callback receives UV_ETIMEDOUT once, as a final status. A pause with
 * bh_reader_stop() does not count: the period starts again on restart. The
 * first call with ms > 0 allocates one uv_timer_t (through the allocator
 * hook, separately from r) on the stream's loop; disabling or
 * bh_reader_close() closes it and its own close callback frees it later in
 * the loop iteration without touching r, so a disabled reader has no timer.
 * A reader that has one must be closed with bh_reader_close() before it is
 * freed. Loop thread; safe inside the callback; setting it again re-arms the
 * period from now.
 * @param r the reader.
 * @param ms the period in milliseconds; 0 disables the timeout.
 * @return #BH_OK, #BH_EINVAL (r NULL), #BH_ECLOSED (finished and ms > 0),
 *         #BH_ENOMEM, or the libuv code of uv_timer_init(); nothing changes
 *         on error. */
BH_EXPORT int bh_reader_set_idle_timeout(bh_reader *r, uint64_t ms);

/** Stops reading for good and lets go of the timer, if any (closed now,
 * freed by its close callback, which never touches r): r may be freed right
 * after, e.g. together with the stream from its close callback. Later starts
 * return #BH_ECLOSED. Call it before or together with uv_close() of the
 * stream; it is required only for readers that had a read-idle timeout,
 * harmless for others. Idempotent; safe inside the callback. The buffer is
 * the caller's and stays as it is.
 * @param r the reader; NULL is ignored. */
BH_EXPORT void bh_reader_close(bh_reader *r);

/* ------------------------------------------------------------------------ */
/* Bounded write queue                                                       */
/* ------------------------------------------------------------------------ */

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

/** A bounded write queue on a libuv stream (struct bh_writeq). */
typedef struct bh_writeq bh_writeq;

/** Completion of one accepted ticket, exactly once: status 0 (written), a
 * libuv error (UV_EPIPE, UV_ECONNRESET, ...; the queue has failed), BH_ENOMEM
 * (the queue failed taking a cross-thread item), or BH_ECANCELED (queue
 * closed before the item was written; also for the write in flight when
 * libuv cancels it because the stream was closed). The slice has already
 * been released when cb runs.
 * @param q the queue.
 * @param status as above.
 * @param ctx the ticket's context. */
typedef void (*bh_write_cb)(bh_writeq *q, int status, void *ctx);

/** Completion of bh_writeq_shutdown(), exactly once.
 * @param q the queue.
 * @param status 0 (everything written and the write side shut down), a
 *        libuv error, or #BH_ECANCELED (queue closed first).
 * @param ctx the ctx given to bh_writeq_shutdown(). */
typedef void (*bh_shutdown_cb)(bh_writeq *q, int status, void *ctx);

/** Queued bytes fell to or below the low-water mark after a producer was
 * refused with BH_EFULL or the queue was above the mark; producers retry
 * from here. Also called once when the queue fails while a producer waits,
 * so that the retry learns BH_ECLOSED. Not called after bh_writeq_close().
 * @param q the queue.
 * @param ctx the ctx given to bh_writeq_set_drain_cb(). */
typedef void (*bh_drain_cb)(bh_writeq *q, void *ctx);

/** Budgets of a write queue. */
typedef struct bh_writeq_config {
    size_t max_items; /**< budget: queued items (default 1024) */
    size_t max_bytes; /**< budget: queued bytes (default 8 MiB) */
} bh_writeq_config;

/** Counters, as `struct bh_writeq_stats` (like POSIX `struct stat` beside
 * stat(), the function bh_writeq_stats() fills it). */
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
 * every queue of that loop and freed when the last of them is closed. Ring
 * and batch array: see queue.h. The cross-thread block (144 bytes, plus the
 * core's 112-byte inbox and its arrays) exists only after
 * bh_writeq_enable_mt(), the stall timer block (192 bytes) only while a
 * stall timeout is set. */
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
 * @return max_items 1024, max_bytes 8 MiB. */
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
 * @return #BH_OK or #BH_EINVAL. */
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
 *         #BH_EINVAL, or a libuv error in the fallback described above. */
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
 * @return as bh_writeq_try_write(). */
BH_EXPORT int bh_writeq_try_write_ff(bh_writeq *q, bh_bytes *data);

/** Flushes everything queued (including accepted cross-thread items), then
 * uv_shutdown()s the stream's write side, then calls cb once. Later writes
 * get BH_ECLOSED.
 * @param q the queue.
 * @param cb called once when done.
 * @param ctx passed to cb.
 * @return #BH_OK; or, with cb not called and nothing changed, #BH_ECLOSED,
 *         #BH_EINVAL, or the libuv error of uv_shutdown() on an idle
 *         queue. */
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
 * @param q the queue. */
BH_EXPORT void bh_writeq_close(bh_writeq *q);

/** Registers the drain callback.
 * @param q the queue.
 * @param low_water_bytes cb runs when queued bytes fall to or below this
 *        after a producer was refused with BH_EFULL or the queue was above
 *        the mark.
 * @param cb the callback; NULL disables it.
 * @param ctx passed to cb. */
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
 * first set and closed (freed) when it is set to 0 or the queue is closed. */
BH_EXPORT int bh_writeq_set_stall_timeout(bh_writeq *q, uint64_t ms);

/** Enables bh_writeq_submit_mt(): allocates the inbox block (mutex, uv_async_t
 * on the queue's loop, item arrays grown on demand) separately from q, so
 * freeing q from the stream's close callback stays safe. The async handle
 * keeps the loop alive until bh_writeq_close(). Call on the loop thread
 * before other threads submit; idempotent.
 * @param q the queue.
 * @return #BH_OK, #BH_EINVAL, #BH_ECLOSED, #BH_ENOMEM or a libuv code. */
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
 *         bh_writeq_enable_mt() was not called. */
BH_EXPORT int bh_writeq_submit_mt(bh_writeq *q, bh_bytes *data, bh_write_cb cb, void *ctx);

/** Snapshot of the counters (loop thread).
 * @param q the queue.
 * @param out receives them. */
BH_EXPORT void bh_writeq_stats(const bh_writeq *q, struct bh_writeq_stats *out);

/** @} */

/* ------------------------------------------------------------------------ */
/* Tunnel                                                                    */
/* ------------------------------------------------------------------------ */

/**
 * @struct bh_tunnel
 * Relays both directions between two connected streams after a mode switch
 * (a parser decided; the rest of the connection is raw bytes) until both
 * directions have ended. Direction 0 is a -> b, direction 1 is b -> a. Per
 * direction it reads the source into a bh_buf with a bh_reader, freezes each
 * read into a slice (no copy) and queues it on a bh_writeq of the
 * destination:
 * - the tails already read by a parser are written first, byte-exact,
 *   without copy;
 * - backpressure: a source stops reading while the destination's queue
 *   refuses its slice (queued bytes above max_bytes) and resumes from the
 *   queue's drain callback, at max_bytes / 2;
 * - half-close: EOF on a source is passed on as uv_shutdown() of the
 *   destination's write side once its queue has drained; the tunnel ends
 *   cleanly when both directions have ended so;
 * - reset: a read error on either side ends the tunnel and resets both TCP
 *   sides (uv_tcp_close_reset(), or SO_LINGER 0 and uv_close() when the
 *   write side was already shut down), so a truncated stream never reaches
 *   the other side as a clean end. libuv reports an RST that arrives right
 *   behind the last data it read as UV_EOF; bh_reader (and the splice path)
 *   check SO_ERROR at EOF, so such an EOF counts as a reset (see bh_read_cb);
 * - splice fast path (Linux, both streams TCP, config.splice): once a
 *   direction has seen two reads in a row that filled the space offered (at
 *   least a quarter of read_reserve) and its queue has drained, it moves bytes
 *   socket -> pipe -> socket with splice(2) instead, through a uv_poll_t on
 *   a dup() of each socket (libuv's own handle stays stopped for reading on
 *   the source while the direction splices, and idle for writing on the
 *   destination). It returns to the buffer path after 8 splices in a row
 *   that moved less than a quarter of read_reserve (a trickle costs two
 *   system calls per segment there), and for good on any setup failure (no
 *   pipe or fd: EMFILE, or new fds in the top quarter of RLIMIT_NOFILE, left
 *   for accept()) or splice error other than a connection error. A splicing
 *   tunnel holds up to 6 more fds (a pipe per direction, a dup per socket).
 *
 * Memory per tunnel (user space), per direction: the bytes in flight (the
 * destination queue's budget max_bytes plus one refused read of at most
 * read_reserve bytes) live in blocks of at most read_reserve bytes, each
 * filled to at least 3/4 before the reader takes the next, so at most
 * 2 + (max_bytes + read_reserve) / (3/4 x read_reserve) blocks are alive
 * (the one being read into and the partly written head included); plus the
 * queue's ring and batch array, at most 1024 x (sizeof(bh_queue_item) +
 * sizeof(struct iovec)), 56 KiB. With the defaults (16 KiB, 256 KiB) that is
 * at most 25 blocks (about 400 KiB) and 56 KiB per direction; test_tunnel
 * checks this bound with the allocator hook's peak live bytes. A splicing
 * direction adds its pipe (kernel memory, 64 KiB by default) and no user
 * memory.
 *
 * The tunnel allocates nothing itself: everything it needs is embedded in
 * bh_tunnel; the buffers' blocks and the queues' rings come through the
 * allocator hook. All functions and callbacks run on the loop thread.
 */
/** A raw bidirectional relay (struct bh_tunnel). */
typedef struct bh_tunnel bh_tunnel;

/**
 * Counters of a tunnel, filled by bh_tunnel_stats() (like struct
 * bh_writeq_stats). Index 0 is a -> b, 1 is b -> a.
 */
struct bh_tunnel_stats {
    uint64_t bytes[2];   /**< bytes the destination's kernel took (tails included) */
    uint64_t spliced[2]; /**< of those, bytes moved by splice(2) */
    int eof[2];          /**< the direction ended with a clean EOF passed on */
    int reset[2];        /**< the direction was cut short (error, reset, timeout,
                              abort): its destination was reset */
    int splicing[2];     /**< the direction is on the splice path now */
};

/**
 * Completion of a started tunnel, called once on the loop thread after both
 * streams' close callbacks (and the tunnel's own handles') have run: t, both
 * stream handles and the tails' memory may be freed here, and the loop may
 * be closed once the callback returns.
 * @param t the tunnel
 * @param status 0 (both directions ended with a clean EOF passed on),
 *   UV_ECONNRESET (a side was reset, also when its EOF came with a pending
 *   socket error), UV_EPIPE (a write to a side failed: its queue reported
 *   BH_ECLOSED), UV_ETIMEDOUT (idle timeout), BH_ECANCELED
 *   (bh_tunnel_abort()), BH_ENOMEM (a read buffer or a queue could not grow),
 *   or another libuv error of a read, write, shutdown or poll
 * @param st the final counters
 * @param ctx the ctx given to bh_tunnel_start()
 */
typedef void (*bh_tunnel_done_cb)(bh_tunnel *t, int status, const struct bh_tunnel_stats *st,
                                  void *ctx);

/** Default write budget per direction of a tunnel. */
#define BH_TUNNEL_MAX_BYTES_DEFAULT ((size_t)256 * 1024)

/** Settings of a tunnel; start from bh_tunnel_config_default(). */
typedef struct bh_tunnel_config {
    size_t read_reserve;      /**< bytes offered per read, per side (0: 16 KiB) */
    size_t max_bytes;         /**< write budget per direction (0: 256 KiB) */
    uint64_t idle_timeout_ms; /**< 0: none; no byte moved either way for this
                                   long ends the tunnel with UV_ETIMEDOUT */
    int splice;               /**< 1 (default): Linux TCP<->TCP splice fast
                                   path; 0: buffer path only */
} bh_tunnel_config;

/** One side of a tunnel, and the direction that reads it. Private. */
typedef struct bh_tunnel_side {
    uv_stream_t *stream;     /**< private: this side's stream */
    bh_buf in;               /**< private: bytes read from this side */
    bh_reader reader;        /**< private: reads this side */
    bh_writeq out;           /**< private: bytes written to this side */
    bh_bytes held;           /**< private: read here, refused by the other's queue */
    unsigned flags;          /**< private: state of the direction reading here */
    unsigned full_reads;     /**< private: large reads in a row (splice trigger) */
    int pipe[2];             /**< private: splice pipe of that direction */
    size_t piped;            /**< private: bytes in that pipe */
    int dupfd;               /**< private: dup() of this side's fd, -1 if none */
    uv_poll_t poll;          /**< private: polls dupfd while splicing */
    int poll_events;         /**< private: events poll is started with */
    int poll_init;           /**< private: poll needs a uv_close() */
    unsigned small_splices;  /**< private: short splices in a row */
} bh_tunnel_side;

/** Caller-owned, embedded by value; all fields but data are private. */
struct bh_tunnel {
    void *data;                  /**< public: free for the user, kept by bh_tunnel_start() */
    uv_loop_t *loop;             /**< private */
    bh_tunnel_side side[2];      /**< private: a, b */
    bh_tunnel_config cfg;        /**< private */
    uv_timer_t timer;            /**< private: idle timeout */
    uint64_t last_active;        /**< private: uv_now() of the last byte moved */
    bh_tunnel_done_cb cb;        /**< private */
    void *ctx;                   /**< private */
    int status;                  /**< private: final status, once ending */
    int ending;                  /**< private */
    int closing;                 /**< private: close callbacks outstanding */
    int timer_on;                /**< private */
    struct bh_tunnel_stats st;   /**< private */
};

/**
 * Default tunnel settings.
 * @return read_reserve 16 KiB, max_bytes 256 KiB, no idle timeout, splice on
 */
BH_EXPORT bh_tunnel_config bh_tunnel_config_default(void);

/**
 * Takes over streams a and b and relays both directions until both ended.
 * a and b are connected TCP, pipe or TTY streams of loop, not reading, with
 * no write of the caller pending (drain and bh_writeq_close() the caller's
 * own queues first). The tunnel stores its readers in a->data and b->data
 * (as bh_reader does) and closes both handles itself, with an RST when it
 * fails; done_cb runs once, after both close callbacks: free the handles and
 * t there. Errors after a successful start (BH_ENOMEM while queueing a tail
 * included) are reported through done_cb, never inside this call.
 * @param t caller-owned tunnel; t->data is kept, the rest is initialised
 * @param loop the loop of a and b
 * @param a first stream (direction 0 reads it)
 * @param b second stream (direction 1 reads it)
 * @param a_tail bytes already read from a by a parser, written to b first,
 *   byte-exact, without copy (NULL = none); the tunnel takes the content as
 *   bh_buf_take_tail() does and the caller's buf is left empty (free it at
 *   any time). A tail longer than max_bytes is queued in pieces of max_bytes
 *   (slices of the same block, no copy).
 * @param b_tail the same for bytes already read from b, written to a first
 * @param cfg settings, NULL for bh_tunnel_config_default()
 * @param cb completion, required
 * @param ctx passed to cb
 * @return 0, or (nothing changed, cb never called, the caller keeps a, b and
 *   the tails) BH_EINVAL (a NULL argument, a == b, a stream of another loop
 *   or not readable and writable) or the libuv error of uv_read_start()
 */
BH_EXPORT int bh_tunnel_start(bh_tunnel *t, uv_loop_t *loop, uv_stream_t *a, uv_stream_t *b,
                              bh_buf *a_tail, bh_buf *b_tail, const bh_tunnel_config *cfg,
                              bh_tunnel_done_cb cb, void *ctx);

/**
 * Snapshot of the counters while the tunnel runs (loop thread).
 * @param t a started tunnel (until its done_cb returned)
 * @param out receives the counters; bytes[] counts what the destinations'
 *   kernels took so far
 */
BH_EXPORT void bh_tunnel_stats(const bh_tunnel *t, struct bh_tunnel_stats *out);

/**
 * Ends the tunnel now: both sides are reset and done_cb runs once, later
 * (never inside this call), with BH_ECANCELED, or with the status the tunnel
 * was already ending with. Idempotent; not after done_cb ran.
 * @param t a started tunnel (NULL is ignored)
 */
BH_EXPORT void bh_tunnel_abort(bh_tunnel *t);

#ifdef __cplusplus
}
#endif

#endif
