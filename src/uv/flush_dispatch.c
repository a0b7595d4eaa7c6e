/* flush_dispatch.c - one deferred-flush dispatcher per loop, shared by every
 * bh_writeq of that loop: a uv_check_t (runs right after the poll phase), a
 * uv_prepare_t (runs before the loop blocks, for enqueues made outside the
 * poll phase) and an intrusive list of the queues waiting for the flush.
 *
 * A queue takes a reference on its first enqueue (the dispatcher is created
 * then, through the allocator hook) and drops it in bh_writeq_close(); arming
 * its flush links the queue into the list (two pointers inside bh_writeq, no
 * allocation). The handles are started while a queue is linked and stopped
 * whenever the list is empty, so an idle loop is not kept alive. When the
 * last reference goes, the handles are closed and the second close callback
 * frees the dispatcher; it never touches a queue (libuv runs close callbacks
 * in LIFO order and a queue may be freed from its stream's close callback),
 * and a closed queue is never linked: bh_writeq_close() unlinks it first.
 *
 * A pass (check or prepare callback) moves the armed queues, in arming
 * order, to a separate running list and flushes them one at a time.
 * Completions may enqueue to any queue or close any: a queue still in the
 * running list is flushed in this pass, one already flushed is armed again
 * for the next pass (the prepare phase of the next iteration at the latest,
 * as with per-queue handles), a closed one has unlinked itself.
 *
 * Dispatchers are found by loop in a thread-local list, never through
 * loop->data (the user's): a loop is driven by one thread and a bh_writeq is
 * used from its loop's thread, so the thread that enqueues is the loop's. */
#include "writeq_internal.h"

struct bh_writeq_dispatch {
    uv_check_t check; /* first member: bh__wq_block_new() initialises it */
    uv_prepare_t prepare;
    uv_loop_t *loop;
    struct bh_writeq_dispatch *next; /* this thread's other dispatchers */
    bh_writeq *armed;                /* waiting queues, most recently armed first */
    bh_writeq *running;              /* the pass in progress, in arming order */
    size_t refs;                     /* open queues holding a reference */
    int handles;                     /* handles not yet closed */
    int started;                     /* check and prepare are started */
    int closing;                     /* the handles are being closed */
};

static _Thread_local struct bh_writeq_dispatch *tls_dispatch;

/* ---- the intrusive list (q->flush_pprev is NULL while not linked) -------- */

static void list_push(bh_writeq **head, bh_writeq *q)
{
    q->flush_next = *head;
    if (*head)
        (*head)->flush_pprev = &q->flush_next;
    *head = q;
    q->flush_pprev = head;
}

static void list_remove(bh_writeq *q)
{
    *q->flush_pprev = q->flush_next;
    if (q->flush_next)
        q->flush_next->flush_pprev = q->flush_pprev;
    q->flush_next = NULL;
    q->flush_pprev = NULL;
}

/* ---- the handles ----------------------------------------------------------- */

static void dispatch_stop_if_idle(struct bh_writeq_dispatch *d)
{
    if (!d->started || d->closing || d->armed || d->running)
        return;
    d->started = 0;
    uv_check_stop(&d->check);
    uv_prepare_stop(&d->prepare);
}

static void dispatch_pass(struct bh_writeq_dispatch *d)
{
    while (d->armed) {
        bh_writeq *q = d->armed;
        list_remove(q);
        list_push(&d->running, q); /* reverses: arming order */
    }
    while (d->running) {
        bh_writeq *q = d->running;
        list_remove(q);
        bh__wq_flush_run(q);
    }
    /* A completion may have closed the last queue: d is then closing, its
     * memory stays valid until the close callbacks. */
    dispatch_stop_if_idle(d);
}

static void on_check(uv_check_t *h) { dispatch_pass(h->data); }

static void on_prepare(uv_prepare_t *h) { dispatch_pass(h->data); }

static void on_close(uv_handle_t *h)
{
    struct bh_writeq_dispatch *d = h->data;
    if (--d->handles == 0)
        bh_free(d);
}

static int init_check(uv_loop_t *loop, void *h) { return uv_check_init(loop, h); }

static struct bh_writeq_dispatch *dispatch_new(uv_loop_t *loop, int *rc)
{
    struct bh_writeq_dispatch *d = bh__wq_block_new(loop, sizeof *d, init_check, rc);
    if (!d)
        return NULL;
    d->check.data = d;
    d->handles = 1;
    *rc = uv_prepare_init(loop, &d->prepare);
    if (*rc != 0) {
        d->closing = 1;
        uv_close((uv_handle_t *)&d->check, on_close);
        return NULL;
    }
    d->prepare.data = d;
    d->handles = 2;
    d->loop = loop;
    d->next = tls_dispatch;
    tls_dispatch = d;
    return d;
}

static struct bh_writeq_dispatch *dispatch_find(const uv_loop_t *loop)
{
    struct bh_writeq_dispatch *d = tls_dispatch;
    while (d && d->loop != loop)
        d = d->next;
    return d;
}

/* ---- the queue's side -------------------------------------------------------- */

int bh__wq_dispatch_ref(bh_writeq *q)
{
    int rc = BH_OK;
    struct bh_writeq_dispatch *d = dispatch_find(q->loop);
    if (!d && !(d = dispatch_new(q->loop, &rc)))
        return rc;
    d->refs++;
    q->dispatch = d;
    return BH_OK;
}

int bh__wq_dispatch_link(bh_writeq *q)
{
    if (!q->dispatch) {
        int rc = bh__wq_dispatch_ref(q);
        if (rc != BH_OK)
            return rc;
    }
    struct bh_writeq_dispatch *d = q->dispatch;
    if (q->flush_pprev)
        return BH_OK; /* armed already, or in the running pass */
    list_push(&d->armed, q);
    if (!d->started) {
        d->started = 1;
        uv_check_start(&d->check, on_check);
        uv_prepare_start(&d->prepare, on_prepare);
    }
    return BH_OK;
}

void bh__wq_dispatch_unlink(bh_writeq *q)
{
    if (!q->flush_pprev)
        return;
    list_remove(q);
    dispatch_stop_if_idle(q->dispatch);
}

void bh__wq_dispatch_unref(bh_writeq *q)
{
    struct bh_writeq_dispatch *d = q->dispatch;
    if (!d)
        return;
    bh__wq_dispatch_unlink(q);
    q->dispatch = NULL;
    if (--d->refs > 0)
        return;
    struct bh_writeq_dispatch **pp = &tls_dispatch;
    while (*pp && *pp != d)
        pp = &(*pp)->next;
    if (*pp)
        *pp = d->next; /* a new queue on this loop creates a fresh one */
    d->closing = 1;
    d->started = 0;
    uv_close((uv_handle_t *)&d->check, on_close);
    uv_close((uv_handle_t *)&d->prepare, on_close);
}

/* ---- views for tests ------------------------------------------------------- */

const void *bh__wq_dispatch_of(const uv_loop_t *loop) { return dispatch_find(loop); }

size_t bh__wq_dispatch_live(void)
{
    size_t n = 0;
    for (struct bh_writeq_dispatch *d = tls_dispatch; d; d = d->next)
        n++;
    return n;
}

size_t bh__wq_dispatch_refs(const void *dispatch)
{
    return dispatch ? ((const struct bh_writeq_dispatch *)dispatch)->refs : 0;
}
