/* test_writeq_dispatch.c - the loop's shared flush dispatcher: every queue
 * of a loop uses one (taken on its first enqueue, no allocation of its own),
 * loops on other threads get their own, one pass flushes every queue armed
 * in the iteration, queues closed or freed by completions during a pass are
 * never touched again, the last close frees the dispatcher so the loop closes
 * cleanly, and a new queue afterwards gets a fresh one. Real loops and
 * socketpairs; private state only through src/uv/writeq_internal.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "test_alloc.h"
#include "test_main.h"
#include "test_uv.h"
#include "test_writeq_support.h"
#include "uv/writeq_internal.h"

#define RUN_MS 10000u

/* N socketpairs on one loop, a heap-allocated queue on each writer side
 * (freeable from its stream's close callback) and a pattern-checking sink
 * on each reader side. */
typedef struct mq_conn {
    uv_pipe_t w, r;
    bh_writeq *q;
    wq_sink sink;
    wq_ticket t;
    size_t off;  /* bytes accepted */
    int closed;  /* bh_writeq_close() called */
} mq_conn;

typedef struct mq {
    uv_loop_t loop;
    int n;
    mq_conn *c;
    uint8_t *pattern;
} mq;

static mq *mq_new(int n)
{
    mq *m = calloc(1, sizeof *m);
    assert_non_null(m);
    assert_int_equal(uv_loop_init(&m->loop), 0);
    m->n = n;
    m->c = calloc((size_t)n, sizeof *m->c);
    assert_non_null(m->c);
    m->pattern = wq_pattern_buf(4096);
    for (int i = 0; i < n; i++) {
        mq_conn *c = &m->c[i];
        assert_int_equal(test_uv_socketpair(&m->loop, &c->w, &c->r), 0);
        c->q = malloc(sizeof *c->q);
        assert_non_null(c->q);
        assert_int_equal(bh_writeq_init(c->q, &m->loop, (uv_stream_t *)&c->w, NULL), BH_OK);
        wq_sink_init(&c->sink, (uv_stream_t *)&c->r);
    }
    return m;
}

/* Enqueues the next len pattern bytes on connection i with its ticket. */
static void mq_ticket(mq *m, int i, size_t len, bh_write_cb cb)
{
    mq_conn *c = &m->c[i];
    bh_bytes b = wq_pattern_slice(m->pattern, c->off, len);
    assert_int_equal(bh_writeq_try_write(c->q, &b, cb, m), BH_OK);
    c->off += len;
}

static void mq_close(mq *m, int i)
{
    bh_writeq_close(m->c[i].q);
    m->c[i].closed = 1;
}

static int mq_all_received(void *arg)
{
    mq *m = arg;
    for (int i = 0; i < m->n; i++)
        if (!m->c[i].closed && m->c[i].sink.received < m->c[i].off)
            return 0;
    return 1;
}

static void mq_start_sinks(mq *m)
{
    for (int i = 0; i < m->n; i++)
        wq_sink_start(&m->c[i].sink);
}

static void mq_expect_received(const mq *m)
{
    for (int i = 0; i < m->n; i++) {
        if (m->c[i].closed)
            continue;
        assert_int_equal(m->c[i].sink.received, m->c[i].off);
        assert_int_equal(m->c[i].sink.mismatches, 0);
    }
}

/* Frees the fixture's memory; its loop is closed already. */
static void mq_free_memory(mq *m)
{
    for (int i = 0; i < m->n; i++)
        free(m->c[i].q); /* NULL when freed by a close callback */
    free(m->c);
    free(m->pattern);
    free(m);
}

/* Closes the queues still open, every handle and the loop, which must close
 * cleanly: no dispatcher handle is left behind. */
static void mq_free(mq *m)
{
    for (int i = 0; i < m->n; i++)
        if (!m->c[i].closed)
            mq_close(m, i);
    assert_int_equal(test_uv_loop_teardown(&m->loop), 0);
    assert_null(bh__wq_dispatch_of(&m->loop));
    mq_free_memory(m);
}

static void mq_record(bh_writeq *q, int status, void *ctx)
{
    mq *m = ctx;
    for (int i = 0; i < m->n; i++)
        if (m->c[i].q == q)
            test_ticket_record(&m->c[i].t, status);
}

/* ---- sharing ------------------------------------------------------------- */

static void queues_of_one_loop_share_one_dispatcher_taken_on_first_enqueue(void **state)
{
    (void)state;
    enum { N = 8 };
    mq *m = mq_new(N);
    size_t live = bh__wq_dispatch_live();
    assert_null(bh__wq_dispatch_of(&m->loop));
    for (int i = 0; i < N - 1; i++)
        mq_ticket(m, i, 100, mq_record);
    const void *d = bh__wq_dispatch_of(&m->loop);
    assert_non_null(d);
    assert_int_equal(bh__wq_dispatch_live(), live + 1);
    for (int i = 0; i < N - 1; i++)
        assert_ptr_equal(bh__writeq_dispatch(m->c[i].q), d);
    assert_null(bh__writeq_dispatch(m->c[N - 1].q)); /* never written to: no reference */
    assert_int_equal(bh__wq_dispatch_refs(d), N - 1);
    mq_start_sinks(m);
    assert_int_equal(wq_run_until(&m->loop, mq_all_received, m, RUN_MS), 0);
    mq_expect_received(m);
    /* Flushed: nothing is linked and the stopped handles keep nothing alive. */
    for (int i = 0; i < N; i++) {
        assert_false(bh__writeq_flush_armed(m->c[i].q));
        wq_sink_stop(&m->c[i].sink);
    }
    assert_int_equal(uv_loop_alive(&m->loop), 0);
    for (int i = 0; i < N - 2; i++)
        mq_close(m, i);
    assert_ptr_equal(bh__wq_dispatch_of(&m->loop), d); /* queue N - 2 still holds it */
    assert_int_equal(bh__wq_dispatch_refs(d), 1);
    mq_close(m, N - 2);
    assert_null(bh__wq_dispatch_of(&m->loop)); /* closing, freed by its close callbacks */
    assert_int_equal(bh__wq_dispatch_live(), live);
    /* The unused queue's first enqueue, while the old one is still closing,
     * gets a fresh dispatcher that works. */
    mq_ticket(m, N - 1, 100, mq_record);
    assert_non_null(bh__wq_dispatch_of(&m->loop));
    assert_ptr_equal(bh__writeq_dispatch(m->c[N - 1].q), bh__wq_dispatch_of(&m->loop));
    mq_start_sinks(m);
    assert_int_equal(wq_run_until(&m->loop, mq_all_received, m, RUN_MS), 0);
    mq_expect_received(m);
    for (int i = 0; i < N; i++)
        assert_int_equal(m->c[i].t.calls, 1);
    mq_free(m);
    assert_int_equal(bh__wq_dispatch_live(), live);
}

/* The loop's first used queue allocates the dispatcher; every later queue's
 * first enqueue allocates one block less (only what the core needs). The
 * last close frees it from the close callbacks. */
static void only_the_first_queue_of_a_loop_allocates_the_dispatcher(void **state)
{
    (void)state;
    mq *m = mq_new(3);
    test_alloc_install(0);
    bh_bytes b = bh_bytes_static(m->pattern, 10);
    size_t a0 = test_alloc_stats_now().allocs;
    assert_int_equal(bh_writeq_try_write_ff(m->c[0].q, &b), BH_OK);
    size_t first = test_alloc_stats_now().allocs - a0;
    b = bh_bytes_static(m->pattern, 10);
    a0 = test_alloc_stats_now().allocs;
    assert_int_equal(bh_writeq_try_write_ff(m->c[1].q, &b), BH_OK);
    size_t second = test_alloc_stats_now().allocs - a0;
    assert_int_equal(first, second + 1);
    m->c[0].off = m->c[1].off = 10;
    mq_start_sinks(m);
    assert_int_equal(wq_run_until(&m->loop, mq_all_received, m, RUN_MS), 0);
    mq_expect_received(m);
    for (int i = 0; i < 3; i++)
        mq_close(m, i);
    wq_run_nowait(&m->loop, 2);
    test_alloc_finish(); /* the dispatcher is freed (the cached arrays are trimmed) */
    mq_free(m);
}

/* ---- one pass ------------------------------------------------------------ */

typedef struct fanout {
    mq *m;
    uv_pipe_t a, b; /* a trigger byte written on b is read on a */
    char byte;
    int reads;
} fanout;

static void fanout_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    fanout *f = h->data;
    buf->base = &f->byte;
    buf->len = 1;
}

/* One read callback enqueues a ticket on every queue. */
static void fanout_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    fanout *f = s->data;
    if (nread <= 0)
        return;
    f->reads++;
    uv_read_stop(s);
    for (int i = 0; i < f->m->n; i++)
        mq_ticket(f->m, i, 100, mq_record);
}

static void enqueues_to_100_queues_from_one_read_callback_are_written_by_one_pass(void **state)
{
    (void)state;
    enum { N = 100 };
    fanout f = {0};
    f.m = mq_new(N);
    assert_int_equal(test_uv_socketpair(&f.m->loop, &f.a, &f.b), 0);
    f.a.data = &f;
    assert_int_equal(uv_read_start((uv_stream_t *)&f.a, fanout_alloc, fanout_read), 0);
    uv_buf_t one = uv_buf_init("x", 1);
    assert_int_equal(uv_try_write((uv_stream_t *)&f.b, &one, 1), 1);
    /* The iteration whose poll phase ran the read callback flushes every
     * queue in its check phase: one uv_try_write per queue, every ticket
     * completed before uv_run() returns. */
    for (int spins = 0; f.reads == 0 && spins < 1000; spins++)
        uv_run(&f.m->loop, UV_RUN_ONCE);
    assert_int_equal(f.reads, 1);
    for (int i = 0; i < N; i++) {
        struct bh_writeq_stats s;
        bh_writeq_stats(f.m->c[i].q, &s);
        assert_int_equal(f.m->c[i].t.calls, 1);
        assert_int_equal(f.m->c[i].t.status, 0);
        assert_int_equal(s.flushes, 1);
        assert_int_equal(s.written_bytes, 100);
        assert_false(bh__writeq_flush_armed(f.m->c[i].q));
    }
    assert_int_equal(bh__wq_dispatch_refs(bh__wq_dispatch_of(&f.m->loop)), N);
    mq_start_sinks(f.m);
    assert_int_equal(wq_run_until(&f.m->loop, mq_all_received, f.m, RUN_MS), 0);
    mq_expect_received(f.m);
    mq_free(f.m);
}

/* ---- closes during a pass -------------------------------------------------- */

static void free_queue_on_close(uv_handle_t *h)
{
    mq_conn *c = h->data;
    free(c->q); /* the queue's memory goes with its stream, as applications do */
    c->q = NULL;
}

/* Queue 0's ticket (completed inside the pass, from queue 0's flush) closes
 * queues 1 and 2, still waiting in the same pass, closes the stream of queue
 * 1 with a close callback that frees the queue's memory, and enqueues to
 * queue 3, already flushed in this pass. Queue 4's ticket closes queue 0
 * and itself. */
static void pass_ticket(bh_writeq *q, int status, void *ctx)
{
    mq *m = ctx;
    mq_record(q, status, ctx);
    if (q == m->c[0].q && status == 0) {
        mq_close(m, 1);
        mq_close(m, 2);
        wq_sink_stop(&m->c[1].sink);
        m->c[1].w.data = &m->c[1];
        uv_close((uv_handle_t *)&m->c[1].w, free_queue_on_close);
        mq_ticket(m, 3, 50, mq_record);
    } else if (q == m->c[4].q && status == 0) {
        mq_close(m, 0);
        mq_close(m, 4);
    }
}

static void closing_queues_from_tickets_during_a_pass_never_touches_them_again(void **state)
{
    (void)state;
    enum { N = 6 };
    mq *m = mq_new(N);
    mq_ticket(m, 3, 100, mq_record); /* armed first: flushed before queue 0 */
    mq_ticket(m, 0, 100, pass_ticket);
    mq_ticket(m, 1, 100, mq_record);
    mq_ticket(m, 2, 100, mq_record);
    mq_ticket(m, 4, 100, pass_ticket);
    mq_ticket(m, 5, 100, mq_record);
    wq_run_nowait(&m->loop, 3);
    for (int i = 1; i <= 2; i++) {
        assert_int_equal(m->c[i].t.calls, 1); /* cancelled by the close, once */
        assert_int_equal(m->c[i].t.status, BH_ECANCELED);
    }
    assert_null(m->c[1].q); /* freed by its stream's close callback */
    assert_null(bh__writeq_dispatch(m->c[2].q));
    assert_int_equal(m->c[0].t.calls, 1);
    assert_int_equal(m->c[4].t.calls, 1);
    assert_int_equal(m->c[5].t.calls, 1);
    /* Queue 3's second ticket was armed after its flush in the first pass
     * and written by a later one. */
    assert_int_equal(m->c[3].t.calls, 2);
    assert_int_equal(m->c[3].t.status, 0);
    assert_int_equal(bh__wq_dispatch_refs(bh__wq_dispatch_of(&m->loop)), 2); /* 3 and 5 */
    mq_start_sinks(m);
    assert_int_equal(wq_run_until(&m->loop, mq_all_received, m, RUN_MS), 0);
    mq_expect_received(m);
    mq_free(m);
}

/* The only queue of the loop closes itself from its ticket: the last
 * reference goes inside the dispatcher's own pass. */
static void self_close(bh_writeq *q, int status, void *ctx)
{
    mq_record(q, status, ctx);
    if (status == 0)
        mq_close(ctx, 0);
}

static int first_sink_has_200(void *arg) { return ((mq *)arg)->c[0].sink.received >= 200; }

static void last_queue_closing_itself_inside_the_pass_lets_the_loop_close(void **state)
{
    (void)state;
    mq *m = mq_new(1);
    test_alloc_install(0);
    mq_ticket(m, 0, 100, self_close);
    mq_ticket(m, 0, 100, self_close);
    wq_run_nowait(&m->loop, 3);
    /* One writev took both: each completes once with 0, the first closes. */
    assert_int_equal(m->c[0].t.calls, 2);
    assert_int_equal(m->c[0].t.status, 0);
    assert_null(bh__wq_dispatch_of(&m->loop));
    test_alloc_finish(); /* ring and dispatcher freed */
    mq_start_sinks(m);
    assert_int_equal(wq_run_until(&m->loop, first_sink_has_200, m, RUN_MS), 0);
    assert_int_equal(m->c[0].sink.received, 200);
    assert_int_equal(m->c[0].sink.mismatches, 0);
    mq_free(m);
}

/* ---- threads ----------------------------------------------------------------- */

typedef struct loop_thread {
    pthread_barrier_t *both;
    const void *mine;   /* this thread's dispatcher of its loop */
    const void *other;  /* what this thread sees for the other thread's loop */
    uv_loop_t *other_loop;
    mq *m;
    size_t received;
    int loop_closed;
} loop_thread;

/* Counts a completion without the process-wide sequence of test_ticket
 * (the two loops run at the same time). */
static void thread_record(bh_writeq *q, int status, void *ctx)
{
    mq *m = ctx;
    for (int i = 0; i < m->n; i++)
        if (m->c[i].q == q && status == 0)
            m->c[i].t.calls++;
}

static void *loop_thread_main(void *arg)
{
    loop_thread *lt = arg;
    mq *m = lt->m;
    for (int i = 0; i < m->n; i++)
        mq_ticket(m, i, 200, thread_record);
    lt->mine = bh__wq_dispatch_of(&m->loop);
    for (int i = 0; i < m->n && lt->mine; i++)
        if (bh__writeq_dispatch(m->c[i].q) != lt->mine)
            lt->mine = NULL;
    pthread_barrier_wait(lt->both); /* both dispatchers are alive now */
    lt->other = bh__wq_dispatch_of(lt->other_loop);
    mq_start_sinks(m);
    wq_run_until(&m->loop, mq_all_received, m, RUN_MS);
    for (int i = 0; i < m->n; i++) {
        lt->received += m->c[i].sink.received;
        mq_close(m, i);
    }
    pthread_barrier_wait(lt->both);
    lt->loop_closed = test_uv_loop_teardown(&m->loop) == 0;
    return NULL;
}

static void loops_on_two_threads_each_get_their_own_dispatcher(void **state)
{
    (void)state;
    pthread_barrier_t both;
    assert_int_equal(pthread_barrier_init(&both, NULL, 2), 0);
    loop_thread lt[2] = {0};
    for (int k = 0; k < 2; k++) {
        lt[k].both = &both;
        lt[k].m = mq_new(4);
    }
    lt[0].other_loop = &lt[1].m->loop;
    lt[1].other_loop = &lt[0].m->loop;
    pthread_t th[2];
    for (int k = 0; k < 2; k++)
        assert_int_equal(pthread_create(&th[k], NULL, loop_thread_main, &lt[k]), 0);
    for (int k = 0; k < 2; k++)
        assert_int_equal(pthread_join(th[k], NULL), 0);
    pthread_barrier_destroy(&both);
    assert_non_null(lt[0].mine);
    assert_non_null(lt[1].mine);
    assert_ptr_not_equal(lt[0].mine, lt[1].mine);
    for (int k = 0; k < 2; k++) {
        assert_null(lt[k].other); /* found only on its own loop's thread */
        assert_int_equal(lt[k].received, 4 * 200);
        for (int i = 0; i < 4; i++)
            assert_int_equal(lt[k].m->c[i].t.calls, 1);
        assert_true(lt[k].loop_closed);
        mq_free_memory(lt[k].m);
    }
}

TEST_MAIN(test_alloc_checked(queues_of_one_loop_share_one_dispatcher_taken_on_first_enqueue),
          test_alloc_checked(only_the_first_queue_of_a_loop_allocates_the_dispatcher),
          test_alloc_checked(enqueues_to_100_queues_from_one_read_callback_are_written_by_one_pass),
          test_alloc_checked(closing_queues_from_tickets_during_a_pass_never_touches_them_again),
          test_alloc_checked(last_queue_closing_itself_inside_the_pass_lets_the_loop_close),
          test_alloc_checked(loops_on_two_threads_each_get_their_own_dispatcher))
