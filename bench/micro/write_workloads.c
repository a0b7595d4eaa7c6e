/* write_workloads.c - write families: owned slices submitted to one event
 * loop that writes them into a real AF_UNIX socketpair, drained by a reader
 * thread that counts the bytes it receives (checked at teardown).
 *
 *   write_large_chunks/direct_write           uv_write per 64 KiB chunk
 *   write_large_chunks/handoff_ticket_single_task
 *                                             bh_writeq_try_write + ticket
 *   write_large_chunks/handoff_fire_and_forget_single_task
 *                                             bh_writeq_try_write_ff
 *   write_many_tasks/{ticket,fire_and_forget} 64 producers on the loop, 1 KiB
 *                                             writes; a ticket producer waits
 *                                             for its completion before its
 *                                             next write
 *   write_many_tasks/cross_thread_{ticket,fire_and_forget}
 *                                             2 producer threads through
 *                                             bh_writeq_submit_mt
 *   write_byte_budget_backpressure            refusal (BH_EFULL) of a write
 *                                             that would exceed max_bytes
 *
 * An iteration ends when every write of the iteration has been handed to the
 * kernel (tickets completed, or the queue's written counter caught up). A
 * watchdog timer fails the benchmark when an iteration makes no progress for
 * WATCHDOG_TICKS seconds, so a stalled queue cannot hang the run. */
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>
#include <errno.h>

#include <bytes_handoff.h>
#include <bytes_handoff/uv.h>

#include "bench_micro.h"

#define LARGE_CHUNK ((size_t)64 * 1024)
#define LARGE_COUNT 16
#define SMALL_ITEM ((size_t)1024)
#define PRODUCERS 64
#define PER_PRODUCER 16
#define MANY_TOTAL ((size_t)PRODUCERS * PER_PRODUCER)
#define MT_THREADS 2
#define DRAIN_BUF ((size_t)256 * 1024)
/* backpressure: the queue holds BUDGET bytes it cannot write; a PROBE write
 * must be refused. */
#define BUDGET ((size_t)64 * 1024)
#define PROBE ((size_t)16 * 1024)
#define WATCHDOG_MS 1000
#define WATCHDOG_TICKS 5

enum write_kind {
    W_DIRECT,
    W_TICKET,
    W_FF,
    W_MANY_TICKET,
    W_MANY_FF,
    W_MT_TICKET,
    W_MT_FF,
    W_BACKPRESSURE
};

typedef struct wctx wctx;

typedef struct producer {
    wctx *x;
    bh_bytes payload;
    size_t left;
    int waiting; /* refused with BH_EFULL, resumes from the drain callback */
} producer;

typedef struct mt_producer {
    wctx *x;
    bh_bytes payload;
    uv_thread_t thread;
    uv_sem_t go;
    int started;
} mt_producer;

struct wctx {
    enum write_kind kind;
    uv_loop_t loop;
    uv_pipe_t pipe;
    uv_async_t wake; /* producer threads report a failure through it */
    uv_timer_t watchdog;
    int fds[2];
    int loop_init, pipe_open, wake_init, watchdog_init, q_init, drain_started;
    uv_thread_t drain;
    uint8_t *drain_buf;
    _Atomic uint64_t received;
    uint64_t sent;
    bh_writeq q;

    uint8_t *raw; /* direct_write chunk */
    uv_write_t reqs[LARGE_COUNT];
    bh_bytes chunk; /* handoff chunk (large) or probe (backpressure) */

    size_t done;          /* completions seen this iteration */
    uint64_t written_base; /* stats.written_items at iteration start */
    size_t target;        /* writes per iteration */
    const char *fail_msg; /* first failure seen in a callback */
    int running;          /* inside run_until_done */
    uint64_t last_mark;   /* watchdog: progress seen at the previous tick */
    int stuck_ticks;

    producer prod[PRODUCERS];
    size_t cursor; /* fire_and_forget: next write to submit */
    int stalled;   /* fire_and_forget: refused, waiting for drain */

    mt_producer mt[MT_THREADS];
    atomic_int quit;
    atomic_int mt_failed;
};

static void set_fail(wctx *x, const char *msg)
{
    if (!x->fail_msg)
        x->fail_msg = msg;
}

/* ---- drain thread -------------------------------------------------------- */

static void drain_main(void *arg)
{
    wctx *x = arg;
    for (;;) {
        ssize_t n = read(x->fds[1], x->drain_buf, DRAIN_BUF);
        if (n > 0) {
            atomic_fetch_add_explicit(&x->received, (uint64_t)n, memory_order_relaxed);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return; /* EOF: the writer side was closed at teardown */
    }
}

/* ---- producers on other threads ----------------------------------------- */

static void mt_ticket_cb(bh_writeq *q, int status, void *ctx)
{
    wctx *x = ctx;
    (void)q;
    if (status != 0)
        set_fail(x, "cross-thread ticket completed with an error");
    x->done++;
}

static void mt_main(void *arg)
{
    mt_producer *p = arg;
    wctx *x = p->x;
    size_t per_thread = MANY_TOTAL / MT_THREADS;
    bh_write_cb cb = x->kind == W_MT_TICKET ? mt_ticket_cb : NULL;
    for (;;) {
        uv_sem_wait(&p->go);
        if (atomic_load(&x->quit))
            return;
        for (size_t i = 0; i < per_thread; i++) {
            bh_bytes d = bh_bytes_clone(&p->payload);
            int rc;
            while ((rc = bh_writeq_submit_mt(&x->q, &d, cb, x)) == BH_EFULL &&
                   !atomic_load(&x->quit))
                sched_yield();
            if (rc != BH_OK) {
                bh_bytes_release(&d);
                atomic_store(&x->mt_failed, 1);
                uv_async_send(&x->wake);
                break;
            }
        }
    }
}

static void on_wake(uv_async_t *h)
{
    (void)h;
}

/* ---- setup / teardown ---------------------------------------------------- */

static void on_closed(uv_handle_t *h)
{
    (void)h;
}

static int write_teardown(void *ctx, const char **err)
{
    wctx *x = ctx;
    int rc = 0;
    if (x->q_init)
        bh_writeq_close(&x->q);
    atomic_store(&x->quit, 1);
    for (int i = 0; i < MT_THREADS; i++) {
        if (x->mt[i].started) {
            uv_sem_post(&x->mt[i].go);
            uv_thread_join(&x->mt[i].thread);
            uv_sem_destroy(&x->mt[i].go);
        }
    }
    if (x->wake_init)
        uv_close((uv_handle_t *)&x->wake, on_closed);
    if (x->watchdog_init)
        uv_close((uv_handle_t *)&x->watchdog, on_closed);
    if (x->pipe_open)
        uv_close((uv_handle_t *)&x->pipe, on_closed);
    else if (x->fds[0] >= 0)
        close(x->fds[0]);
    if (x->loop_init) {
        uv_run(&x->loop, UV_RUN_DEFAULT);
        if (uv_loop_close(&x->loop) != 0 && rc == 0) {
            *err = "event loop still had open handles at teardown";
            rc = -1;
        }
    }
    if (x->drain_started) {
        uv_thread_join(&x->drain); /* the pipe close above gave it EOF */
        if (rc == 0 && atomic_load(&x->received) != x->sent) {
            *err = "drain thread received a different byte count than was written";
            rc = -1;
        }
    }
    if (x->fds[1] >= 0)
        close(x->fds[1]);
    for (int i = 0; i < PRODUCERS; i++)
        bh_bytes_release(&x->prod[i].payload);
    for (int i = 0; i < MT_THREADS; i++)
        bh_bytes_release(&x->mt[i].payload);
    bh_bytes_release(&x->chunk);
    free(x->raw);
    free(x->drain_buf);
    free(x);
    return rc;
}

/* Fills the kernel send buffer of a non-blocking fd until it refuses. */
static void fill_socket(int fd)
{
    static const uint8_t zeros[4096];
    size_t n = sizeof zeros;
    while (n > 0) {
        ssize_t w = write(fd, zeros, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            n /= 2;
    }
}

static void drain_cb(bh_writeq *q, void *ctx);

/* Progress so far: completions plus bytes the queue has written. */
static uint64_t progress_mark(wctx *x)
{
    uint64_t mark = x->done;
    if (x->q_init) {
        struct bh_writeq_stats st;
        bh_writeq_stats(&x->q, &st);
        mark += st.written_bytes;
    }
    return mark;
}

static void on_watchdog(uv_timer_t *t)
{
    wctx *x = t->data;
    uint64_t mark = progress_mark(x);
    if (!x->running || mark != x->last_mark) {
        x->stuck_ticks = 0;
    } else if (++x->stuck_ticks >= WATCHDOG_TICKS) {
        set_fail(x, "no write progress for 5 s: the iteration stalled");
    }
    x->last_mark = mark;
}

static void *write_setup(enum write_kind kind, bm_info *info, const char **err)
{
    wctx *x = calloc(1, sizeof *x);
    if (!x) {
        *err = "out of memory";
        return NULL;
    }
    x->kind = kind;
    x->fds[0] = x->fds[1] = -1;
    if (uv_loop_init(&x->loop) != 0) {
        *err = "uv_loop_init failed";
        goto fail;
    }
    x->loop_init = 1;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, x->fds) != 0) {
        x->fds[0] = x->fds[1] = -1;
        *err = "socketpair failed";
        goto fail;
    }
    if (kind == W_BACKPRESSURE) {
        /* nobody reads: fill the kernel buffer so queued bytes stay queued */
        if (fcntl(x->fds[0], F_SETFL, fcntl(x->fds[0], F_GETFL) | O_NONBLOCK) != 0) {
            *err = "fcntl failed";
            goto fail;
        }
        fill_socket(x->fds[0]);
    }
    if (uv_pipe_init(&x->loop, &x->pipe, 0) != 0) {
        *err = "uv_pipe_init failed";
        goto fail;
    }
    if (uv_pipe_open(&x->pipe, x->fds[0]) != 0) {
        uv_close((uv_handle_t *)&x->pipe, on_closed);
        *err = "uv_pipe_open failed";
        goto fail;
    }
    x->pipe_open = 1;

    if (uv_timer_init(&x->loop, &x->watchdog) != 0) {
        *err = "uv_timer_init failed";
        goto fail;
    }
    x->watchdog_init = 1;
    x->watchdog.data = x;
    /* unreferenced: it wakes a blocked loop but does not keep it running */
    uv_unref((uv_handle_t *)&x->watchdog);
    if (uv_timer_start(&x->watchdog, on_watchdog, WATCHDOG_MS, WATCHDOG_MS) != 0) {
        *err = "uv_timer_start failed";
        goto fail;
    }

    if (kind != W_DIRECT) {
        bh_writeq_config cfg = bh_writeq_config_default();
        if (kind == W_BACKPRESSURE)
            cfg.max_bytes = BUDGET;
        if (bh_writeq_init(&x->q, &x->loop, (uv_stream_t *)&x->pipe, &cfg) != BH_OK) {
            *err = "bh_writeq_init failed";
            goto fail;
        }
        x->q_init = 1;
        bh_writeq_set_drain_cb(&x->q, cfg.max_bytes / 2, drain_cb, x);
    }

    switch (kind) {
    case W_DIRECT:
        if (!(x->raw = malloc(LARGE_CHUNK)))
            goto oom;
        memset(x->raw, 'd', LARGE_CHUNK);
        x->target = LARGE_COUNT;
        info->bytes_per_iter = LARGE_CHUNK * LARGE_COUNT;
        info->items_per_iter = LARGE_COUNT;
        break;
    case W_TICKET:
    case W_FF:
        if (!(x->raw = malloc(LARGE_CHUNK)))
            goto oom;
        memset(x->raw, 'h', LARGE_CHUNK);
        if (bh_bytes_copy(&x->chunk, x->raw, LARGE_CHUNK) != BH_OK)
            goto oom;
        x->target = LARGE_COUNT;
        info->bytes_per_iter = LARGE_CHUNK * LARGE_COUNT;
        info->items_per_iter = LARGE_COUNT;
        break;
    case W_MANY_TICKET:
    case W_MANY_FF:
    case W_MT_TICKET:
    case W_MT_FF: {
        uint8_t item[SMALL_ITEM];
        for (int i = 0; i < PRODUCERS; i++) {
            memset(item, 'a' + i % 26, sizeof item);
            x->prod[i].x = x;
            if (bh_bytes_copy(&x->prod[i].payload, item, sizeof item) != BH_OK)
                goto oom;
        }
        for (int i = 0; i < MT_THREADS; i++) {
            memset(item, 'A' + i, sizeof item);
            x->mt[i].x = x;
            if (bh_bytes_copy(&x->mt[i].payload, item, sizeof item) != BH_OK)
                goto oom;
        }
        x->target = MANY_TOTAL;
        info->bytes_per_iter = SMALL_ITEM * MANY_TOTAL;
        info->items_per_iter = MANY_TOTAL;
        break;
    }
    case W_BACKPRESSURE: {
        if (!(x->raw = calloc(1, BUDGET)))
            goto oom;
        bh_bytes filler;
        if (bh_bytes_copy(&filler, x->raw, BUDGET) != BH_OK)
            goto oom;
        if (bh_writeq_try_write_ff(&x->q, &filler) != BH_OK) {
            bh_bytes_release(&filler);
            *err = "backpressure: the filler write was refused";
            goto fail;
        }
        struct bh_writeq_stats st;
        bh_writeq_stats(&x->q, &st);
        if (st.queued_bytes + PROBE <= BUDGET) {
            *err = "backpressure: the socket accepted the filler; budget not exhausted";
            goto fail;
        }
        if (bh_bytes_copy(&x->chunk, x->raw, PROBE) != BH_OK)
            goto oom;
        info->bytes_per_iter = PROBE;
        info->items_per_iter = 1;
        return x; /* no drain thread: the socket must stay full */
    }
    }

    if (kind == W_MT_TICKET || kind == W_MT_FF) {
        if (uv_async_init(&x->loop, &x->wake, on_wake) != 0) {
            *err = "uv_async_init failed";
            goto fail;
        }
        x->wake_init = 1;
        if (bh_writeq_enable_mt(&x->q) != BH_OK) {
            *err = "bh_writeq_enable_mt failed";
            goto fail;
        }
        for (int i = 0; i < MT_THREADS; i++) {
            if (uv_sem_init(&x->mt[i].go, 0) != 0) {
                *err = "uv_sem_init failed";
                goto fail;
            }
            if (uv_thread_create(&x->mt[i].thread, mt_main, &x->mt[i]) != 0) {
                uv_sem_destroy(&x->mt[i].go);
                *err = "uv_thread_create failed";
                goto fail;
            }
            x->mt[i].started = 1;
        }
    }

    if (!(x->drain_buf = malloc(DRAIN_BUF)))
        goto oom;
    if (uv_thread_create(&x->drain, drain_main, x) != 0) {
        *err = "uv_thread_create failed";
        goto fail;
    }
    x->drain_started = 1;
    return x;
oom:
    *err = "out of memory";
fail: {
    const char *ignored;
    write_teardown(x, &ignored);
    return NULL;
}
}

/* ---- callbacks ----------------------------------------------------------- */

static void direct_cb(uv_write_t *req, int status)
{
    wctx *x = req->data;
    if (status != 0)
        set_fail(x, "uv_write completed with an error");
    x->done++;
}

static void ticket_cb(bh_writeq *q, int status, void *ctx)
{
    wctx *x = ctx;
    (void)q;
    if (status != 0)
        set_fail(x, "ticket completed with an error");
    x->done++;
}

static void producer_next(producer *p);

static void many_ticket_cb(bh_writeq *q, int status, void *ctx)
{
    producer *p = ctx;
    (void)q;
    if (status != 0)
        set_fail(p->x, "ticket completed with an error");
    p->x->done++;
    producer_next(p);
}

/* Ticket producer: submits its next write once the previous one completed. */
static void producer_next(producer *p)
{
    if (p->left == 0)
        return;
    bh_bytes d = bh_bytes_clone(&p->payload);
    int rc = bh_writeq_try_write(&p->x->q, &d, many_ticket_cb, p);
    if (rc == BH_OK) {
        p->left--;
        return;
    }
    bh_bytes_release(&d);
    if (rc == BH_EFULL)
        p->waiting = 1;
    else
        set_fail(p->x, "bh_writeq_try_write refused a write");
}

/* Fire-and-forget producers, round robin, one write each per turn, until
 * every write is submitted or the budget refuses one. */
static void ff_pump(wctx *x)
{
    while (x->cursor < MANY_TOTAL) {
        producer *p = &x->prod[x->cursor % PRODUCERS];
        bh_bytes d = bh_bytes_clone(&p->payload);
        int rc = bh_writeq_try_write_ff(&x->q, &d);
        if (rc != BH_OK) {
            bh_bytes_release(&d);
            if (rc == BH_EFULL)
                x->stalled = 1;
            else
                set_fail(x, "bh_writeq_try_write_ff refused a write");
            return;
        }
        x->cursor++;
    }
}

static void drain_cb(bh_writeq *q, void *ctx)
{
    wctx *x = ctx;
    (void)q;
    if (x->kind == W_MANY_FF && x->stalled) {
        x->stalled = 0;
        ff_pump(x);
    } else if (x->kind == W_MANY_TICKET) {
        for (int i = 0; i < PRODUCERS; i++) {
            if (x->prod[i].waiting) {
                x->prod[i].waiting = 0;
                producer_next(&x->prod[i]);
            }
        }
    }
}

/* ---- iterations ---------------------------------------------------------- */

static int written_all(wctx *x)
{
    struct bh_writeq_stats st;
    bh_writeq_stats(&x->q, &st);
    return st.written_items - x->written_base >= x->target;
}

static int iteration_done(wctx *x)
{
    switch (x->kind) {
    case W_FF:
    case W_MANY_FF:
    case W_MT_FF:
        return written_all(x);
    default:
        return x->done >= x->target;
    }
}

/* Runs the loop until this iteration's writes are done or something failed. */
static int run_until_done(wctx *x, const char **err)
{
    x->running = 1;
    x->stuck_ticks = 0;
    while (!x->fail_msg && !atomic_load(&x->mt_failed) && !iteration_done(x)) {
        int more = uv_run(&x->loop, UV_RUN_ONCE);
        if (!more && !x->fail_msg && !iteration_done(x)) {
            *err = "event loop ran out of work before the writes completed";
            x->running = 0;
            return -1;
        }
    }
    x->running = 0;
    if (x->fail_msg || atomic_load(&x->mt_failed)) {
        *err = x->fail_msg ? x->fail_msg : "a producer thread's write was refused";
        return -1;
    }
    return 0;
}

static int write_iterate(void *ctx, const char **err)
{
    wctx *x = ctx;
    x->done = 0;
    if (x->q_init) {
        struct bh_writeq_stats st;
        bh_writeq_stats(&x->q, &st);
        x->written_base = st.written_items;
    }
    switch (x->kind) {
    case W_DIRECT: {
        uv_buf_t b = uv_buf_init((char *)x->raw, (unsigned)LARGE_CHUNK);
        for (int i = 0; i < LARGE_COUNT; i++) {
            x->reqs[i].data = x;
            if (uv_write(&x->reqs[i], (uv_stream_t *)&x->pipe, &b, 1, direct_cb) != 0) {
                *err = "uv_write failed";
                return -1;
            }
        }
        break;
    }
    case W_TICKET:
    case W_FF:
        for (int i = 0; i < LARGE_COUNT; i++) {
            bh_bytes d = bh_bytes_clone(&x->chunk);
            int rc = x->kind == W_TICKET ? bh_writeq_try_write(&x->q, &d, ticket_cb, x)
                                         : bh_writeq_try_write_ff(&x->q, &d);
            if (rc != BH_OK) {
                bh_bytes_release(&d);
                *err = "the write queue refused a chunk";
                return -1;
            }
        }
        break;
    case W_MANY_TICKET:
        for (int i = 0; i < PRODUCERS; i++) {
            x->prod[i].left = PER_PRODUCER;
            x->prod[i].waiting = 0;
        }
        for (int i = 0; i < PRODUCERS; i++)
            producer_next(&x->prod[i]);
        break;
    case W_MANY_FF:
        x->cursor = 0;
        x->stalled = 0;
        ff_pump(x);
        break;
    case W_MT_TICKET:
    case W_MT_FF:
        for (int i = 0; i < MT_THREADS; i++)
            uv_sem_post(&x->mt[i].go);
        break;
    case W_BACKPRESSURE: {
        int rc = bh_writeq_try_write_ff(&x->q, &x->chunk);
        if (rc != BH_EFULL || x->chunk.len != PROBE || x->chunk.owner == NULL) {
            *err = "backpressure: write over budget was not refused with the slice kept";
            return -1;
        }
        return 0;
    }
    }
    if (run_until_done(x, err) != 0)
        return -1;
    x->sent += x->kind == W_DIRECT || x->kind == W_TICKET || x->kind == W_FF
                   ? (uint64_t)LARGE_CHUNK * LARGE_COUNT
                   : (uint64_t)SMALL_ITEM * MANY_TOTAL;
    return 0;
}

static void *setup_direct(int64_t a, bm_info *i, const char **e)
{
    (void)a;
    return write_setup(W_DIRECT, i, e);
}
static void *setup_ticket(int64_t a, bm_info *i, const char **e)
{
    (void)a;
    return write_setup(W_TICKET, i, e);
}
static void *setup_ff(int64_t a, bm_info *i, const char **e)
{
    (void)a;
    return write_setup(W_FF, i, e);
}
static void *setup_many_ticket(int64_t a, bm_info *i, const char **e)
{
    (void)a;
    return write_setup(W_MANY_TICKET, i, e);
}
static void *setup_many_ff(int64_t a, bm_info *i, const char **e)
{
    (void)a;
    return write_setup(W_MANY_FF, i, e);
}
static void *setup_mt_ticket(int64_t a, bm_info *i, const char **e)
{
    (void)a;
    return write_setup(W_MT_TICKET, i, e);
}
static void *setup_mt_ff(int64_t a, bm_info *i, const char **e)
{
    (void)a;
    return write_setup(W_MT_FF, i, e);
}
static void *setup_backpressure(int64_t a, bm_info *i, const char **e)
{
    (void)a;
    return write_setup(W_BACKPRESSURE, i, e);
}

const bm_workload bm_write_workloads[] = {
    {"write_large_chunks/direct_write", NULL, 0, 1, setup_direct, write_iterate, write_teardown},
    {"write_large_chunks/handoff_ticket_single_task", NULL, 0, 1, setup_ticket, write_iterate,
     write_teardown},
    {"write_large_chunks/handoff_fire_and_forget_single_task", NULL, 0, 1, setup_ff,
     write_iterate, write_teardown},
    {"write_many_tasks/ticket", NULL, 0, 1, setup_many_ticket, write_iterate, write_teardown},
    {"write_many_tasks/fire_and_forget", NULL, 0, 1, setup_many_ff, write_iterate,
     write_teardown},
    {"write_many_tasks/cross_thread_ticket", NULL, 0, 1, setup_mt_ticket, write_iterate,
     write_teardown},
    {"write_many_tasks/cross_thread_fire_and_forget", NULL, 0, 1, setup_mt_ff, write_iterate,
     write_teardown},
    {"write_byte_budget_backpressure", NULL, 0, 0, setup_backpressure, write_iterate,
     write_teardown},
};
const size_t bm_write_workloads_count = sizeof bm_write_workloads / sizeof bm_write_workloads[0];
