/* writeq_internal.h - private parts of bh_writeq shared by src/uv/writeq*.c
 * and flush_dispatch.c (flags, the separately allocated handle blocks, the
 * loop's flush dispatcher, the driver steps) and the read-only views the
 * tests use instead of naming struct fields. */
#ifndef BH_WRITEQ_INTERNAL_H
#define BH_WRITEQ_INTERNAL_H

#include <stddef.h>

#include <bytes_handoff/alloc.h>
#include <bytes_handoff/error.h>
#include <bytes_handoff/queue.h>
#include <bytes_handoff/uv.h>

#include "flush_dispatch_internal.h"

#define WQ_UV_BUFSML ((size_t)4)      /* libuv copies up to 4 bufs without malloc */
#define WQ_FLUSH_ROUNDS 16            /* uv_try_write calls per deferred flush at most */
#define WQ_EAGER_BYTES ((size_t)4096) /* idle fire-and-forget slices this large skip the flush */

enum wq_flags {
    WQ_WRITING = 1u << 0,      /* uv_write outstanding or its completions running */
    WQ_SHUT_PENDING = 1u << 1, /* shutdown requested, user callback not yet called */
    WQ_SHUT_SENT = 1u << 2     /* uv_shutdown issued */
};

/* Cross-thread wake (writeq_mt.c): the async handle and the core's inbox,
 * both freed by the async handle's close callback. */
struct bh_writeq_mt {
    uv_async_t async;
    bh_writeq *q;                 /* NULL once the queue is closed */
    struct bh_queue_inbox *inbox; /* handed over by bh_queue_close() */
};

/* Write-stall timer (writeq_stall.c), allocated while a timeout is set. */
struct bh_writeq_stall {
    uv_timer_t timer;
    bh_writeq *q;
    uint64_t ms;   /* the timeout */
    uint64_t last; /* loop time of the last progress (or of arming) */
    size_t wq_size; /* libuv's write queue size at that time */
    int armed;
};

#define WQ_OF(ptr, field) ((bh_writeq *)(void *)((char *)(ptr) - offsetof(bh_writeq, field)))

static inline int wq_writable(const bh_writeq *q)
{
    bh_queue_lifecycle s = bh_queue_state(&q->core);
    return s == BH_QUEUE_OPEN || s == BH_QUEUE_SEALED;
}

/* 1 when nothing is queued and no write is in flight. */
static inline int wq_idle(const bh_writeq *q)
{
    return bh_queue_ring_empty(&q->core) && !(q->flags & WQ_WRITING);
}

/* writeq.c: allocates a zeroed block of size bytes whose first member is a
 * libuv handle and runs init(loop, block) on it. Returns the block, or NULL
 * with *rc = BH_ENOMEM or init's libuv error (the block is then freed). */
void *bh__wq_block_new(uv_loop_t *loop, size_t size, int (*init)(uv_loop_t *, void *), int *rc);

/* writeq_flush.c: the driver. */
/* One queue's deferred flush (uv_try_write rounds, remainder to uv_write). */
void bh__wq_flush_run(bh_writeq *q);
/* Hands the next batch to uv_write(); 0 or a libuv error. */
int bh__wq_start_write(bh_writeq *q);
/* What follows a write or flush: failure, shutdown, drain, stall timer. */
void bh__wq_after_io(bh_writeq *q, int from_write);
/* The stream failed: every pending ticket and the shutdown get err once. */
void bh__wq_fail(bh_writeq *q, int err);
/* Reports the pending shutdown's status to its callback, once. */
void bh__wq_shutdown_finish(bh_writeq *q, int status);
/* Runs the drain callback if the core says it is due. */
void bh__wq_deliver_drain(bh_writeq *q);
/* Issues uv_shutdown() (q is a bh_writeq *); 0 or a libuv error. */
int bh__wq_send_shutdown(void *q);

/* writeq_stall.c: the write-stall timer. */
void bh__wq_stall_progress(bh_writeq *q);
void bh__wq_stall_update(bh_writeq *q);
void bh__wq_stall_close(bh_writeq *q);
/* The timer's check, callable by tests: progress since the last check
 * re-arms the timer for the rest of the window, none for the whole timeout
 * fails the queue. Returns UV_ETIMEDOUT when it failed the queue, else 0. */
int bh__wq_stall_check(bh_writeq *q);

/* ---- read-only views for tests ------------------------------------------- */

static inline struct bh_queue_ring_view bh__writeq_ring_view(const bh_writeq *q)
{
    struct bh_queue_ring_view v;
    bh_queue_ring_view(&q->core, &v);
    return v;
}
static inline size_t bh__writeq_ring_cap(const bh_writeq *q) { return bh__writeq_ring_view(q).capacity; }
static inline const void *bh__writeq_ring(const bh_writeq *q) { return bh__writeq_ring_view(q).storage; }
static inline size_t bh__writeq_head_off(const bh_writeq *q)
{
    return bh__writeq_ring_view(q).head_offset;
}
static inline size_t bh__writeq_max_items(const bh_writeq *q)
{
    return bh__writeq_ring_view(q).max_items;
}
static inline int bh__writeq_wrapped(const bh_writeq *q) { return bh__writeq_ring_view(q).wrapped; }
/* The dispatcher q holds a reference on (NULL before its first enqueue, after
 * close and after the dispatcher could not be allocated). */
static inline const void *bh__writeq_dispatch(const bh_writeq *q) { return q->dispatch; }
/* 1 while q's flush is armed (q is linked in its dispatcher's list). */
static inline int bh__writeq_flush_armed(const bh_writeq *q) { return q->flush_pprev != NULL; }
static inline const void *bh__writeq_stall_block(const bh_writeq *q) { return q->stall; }
/* Loop time at which a stalled queue fails (0 when the timer is not armed). */
static inline uint64_t bh__writeq_stall_deadline(const bh_writeq *q)
{
    return q->stall && q->stall->armed ? q->stall->last + q->stall->ms : 0;
}

#endif
