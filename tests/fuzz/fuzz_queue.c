/* fuzz_queue.c - libFuzzer target for bh_queue, the loop-free queue core,
 * checked against a simple model after every operation. No event loop and
 * no I/O: the fuzzer plays the adapter.
 *
 * Input: a 4-byte header (max_items 1..32, max_bytes as a power of two up to
 * 2^33, low-water mark), then operations: push (ticket or fire-and-forget),
 * the direct-write path (reserve, push_reserved with some bytes "already
 * written", maybe take_back), next batch with a max iovec count, batch done
 * with some of its bytes, batch abort, abandon, fail, seal, close, enable
 * cross-thread submission, submit, take the inbox, set the low-water mark.
 * The top bit of an opcode makes every allocation fail during that operation
 * (the counting allocator of tests/support). Slices address a 3 GiB
 * PROT_NONE mapping the queue never reads, so slices above 1 GiB are cheap.
 *
 * Invariants checked against the model:
 * - every return code (BH_EFULL, BH_ETOOLONG, BH_ECLOSED, BH_ENOMEM only when
 *   an allocation failed) and ownership on refusal;
 * - stats: queued items and bytes equal the model's (ring + inbox), written
 *   bytes equal what batches reported;
 * - a batch's iovecs cover the model's items from the exact offset written
 *   so far, in order, each at most 1 GiB, the batch at most 1 GiB (or one
 *   chunk), never more than max_iov;
 * - each ticket completes exactly once, with the status the model expects
 *   (0 once its last byte is written, the failure, or BH_ECANCELED);
 * - the drain signal fires exactly when the model says;
 * - after close and the end of any batch nothing allocated is left. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <bytes_handoff.h>
#include <bytes_handoff/queue.h>

#include "fuzz_support.h"
#include "test_alloc.h"

#define MAX_ITEMS 512
#define GIB ((size_t)1 << 30)
#define MAP_BYTES (3 * GIB)

typedef struct item {
    size_t off, len;  /* address offset in the mapping, length */
    int ticket;       /* has a completion callback */
    int calls;        /* callback runs seen */
    int status;       /* the last status seen */
    int expect_calls; /* what the model expects */
    int expect_status;
} item;

static struct {
    uint8_t *map;
    bh_queue q;
    bh_queue_config cfg;
    item it[MAX_ITEMS];
    int n;                  /* items created */
    int ring[MAX_ITEMS];    /* ids in the ring, in order */
    int rn;                 /* ring length */
    size_t head_off;        /* bytes of ring[0] written */
    int inbox[MAX_ITEMS];   /* ids in the inbox, in order */
    int in;
    int pinned;             /* items of the batch out (0: none) */
    size_t batch_bytes;
    int batch_out;
    int state;              /* bh_queue_lifecycle */
    int error;
    int mt;
    int mt_freed;           /* the inbox was freed by close: no more submits */
    size_t low;
    int want, due;
    uint64_t written_bytes;
    size_t alloc_failed;    /* failures injected so far */
} M;

/* ---- model helpers ------------------------------------------------------- */

static size_t used_items(void) { return (size_t)M.rn + (size_t)M.in; }

FUZZ_NO_COVERAGE static size_t used_bytes(void)
{
    size_t b = 0;
    for (int i = 0; i < M.rn; i++)
        b += M.it[M.ring[i]].len - (i == 0 ? M.head_off : 0);
    for (int i = 0; i < M.in; i++)
        b += M.it[M.inbox[i]].len;
    return b;
}

static size_t alloc_failed_now(void)
{
    test_alloc_stats st;
    test_alloc_stats_get(&st);
    return st.failed;
}

static void release_check(void)
{
    if (M.want && used_bytes() <= M.low) {
        M.want = 0;
        M.due = 1;
    }
}

static void arm_above_mark(void)
{
    if (used_bytes() > M.low)
        M.want = 1;
}

static void expect_done(int id, int status)
{
    item *x = &M.it[id];
    if (x->ticket && x->expect_calls == 0) {
        x->expect_calls = 1;
        x->expect_status = status;
    }
}

/* Removes ring items [keep, rn) completing them with status. */
static void model_complete_tail(int keep, int status)
{
    if (keep >= M.rn)
        return;
    for (int i = keep; i < M.rn; i++)
        expect_done(M.ring[i], status);
    M.rn = keep;
    if (keep == 0)
        M.head_off = 0;
    release_check();
}

static void ticket_cb(bh_queue *q, int status, void *ctx)
{
    item *x = ctx;
    CHECK(q == &M.q);
    x->calls++;
    x->status = status;
}

/* ---- checks -------------------------------------------------------------- */

FUZZ_NO_COVERAGE static void check_all(void)
{
    struct bh_queue_stats s;
    bh_queue_stats(&M.q, &s);
    CHECK(s.queued_items == used_items());
    CHECK(s.queued_bytes == used_bytes());
    CHECK(s.queued_items <= M.cfg.max_items);
    CHECK(s.queued_bytes <= M.cfg.max_bytes);
    CHECK(s.written_bytes == M.written_bytes);
    CHECK((int)bh_queue_state(&M.q) == M.state);
    CHECK(bh_queue_count(&M.q) == (size_t)M.rn);
    CHECK(bh_queue_ring_empty(&M.q) == (M.rn == 0 && !M.batch_out));
    for (int i = 0; i < M.n; i++) {
        item *x = &M.it[i];
        CHECK(x->calls == x->expect_calls);
        if (x->calls)
            CHECK(x->status == x->expect_status);
    }
}

static int expected_refusal(size_t len)
{
    if (M.state != BH_QUEUE_OPEN)
        return BH_ECLOSED;
    if (len > M.cfg.max_bytes)
        return BH_ETOOLONG;
    if (used_items() >= M.cfg.max_items || len > M.cfg.max_bytes - used_bytes())
        return BH_EFULL;
    return BH_OK;
}

/* ---- operations ----------------------------------------------------------- */

static size_t pick_len(uint8_t a, uint8_t b)
{
    switch (a & 7) {
    case 0:
        return 0;
    case 1:
        return GIB + (size_t)b * 4099; /* above one chunk */
    case 2:
        return 2 * GIB + (size_t)b;
    default:
        return (size_t)b * (size_t)(1 + (a >> 3));
    }
}

static int new_item(size_t len, int ticket)
{
    CHECK(M.n < MAX_ITEMS);
    int id = M.n++;
    item *x = &M.it[id];
    memset(x, 0, sizeof *x);
    x->len = len;
    x->off = (size_t)id * 8191 % (MAP_BYTES - len + 1);
    x->ticket = ticket;
    return id;
}

static void op_push(size_t len, int ticket, int submit, size_t failed_before)
{
    if (M.n >= MAX_ITEMS || (submit && M.mt_freed))
        return;
    int id = new_item(len, ticket);
    bh_bytes b = bh_bytes_static(M.map + M.it[id].off, len);
    int exp = submit && !M.mt ? BH_EINVAL : expected_refusal(len);
    int rc = submit ? bh_queue_submit(&M.q, &b, ticket ? ticket_cb : NULL, &M.it[id])
                    : bh_queue_push(&M.q, &b, ticket ? ticket_cb : NULL, &M.it[id]);
    if (exp == BH_EFULL)
        M.want = 1;
    if (rc == BH_ENOMEM) {
        CHECK(exp == BH_OK && alloc_failed_now() > failed_before);
        exp = BH_ENOMEM;
        if (!submit)
            release_check(); /* the reservation was returned */
    }
    CHECK(rc == exp);
    if (rc != BH_OK) {
        CHECK(b.ptr == M.map + M.it[id].off && b.len == len);
        M.it[id].ticket = 0;
        return;
    }
    CHECK(b.ptr == NULL && b.len == 0);
    if (submit) {
        M.inbox[M.in++] = id;
    } else {
        M.ring[M.rn++] = id;
    }
    arm_above_mark();
}

static void op_direct(size_t len, uint8_t how, size_t failed_before)
{
    if (M.n >= MAX_ITEMS || M.rn != 0 || M.batch_out)
        return; /* only on an idle queue */
    int ticket = how & 1;
    int exp = expected_refusal(len);
    int rc = bh_queue_claim(&M.q, len);
    if (exp == BH_EFULL)
        M.want = 1;
    if (rc == BH_ENOMEM) {
        CHECK(exp == BH_OK && alloc_failed_now() > failed_before);
        release_check();
        return;
    }
    CHECK(rc == exp);
    if (rc != BH_OK)
        return;
    if (how & 2) {
        bh_queue_unclaim(&M.q, len);
        release_check();
        return;
    }
    size_t w = ticket ? 0 : (how & 4 ? len : len * (how >> 3) / 32);
    int id = new_item(len, ticket);
    bh_bytes b = bh_bytes_static(M.map + M.it[id].off, len);
    int done = bh_queue_push_claimed(&M.q, &b, ticket ? ticket_cb : NULL, &M.it[id], w);
    CHECK(b.ptr == NULL);
    M.written_bytes += w;
    CHECK(done == (!ticket && w > 0 && w == len));
    if (done) {
        release_check();
        return;
    }
    M.ring[M.rn++] = id;
    M.head_off = w;
    if (w > 0)
        release_check();
    arm_above_mark();
    if (how & 0x80) {
        bh_bytes back;
        CHECK(bh_queue_take_back(&M.q, &back) == w);
        CHECK(back.ptr == M.map + M.it[id].off && back.len == len);
        M.rn = 0;
        M.head_off = 0;
        M.it[id].ticket = 0;
        release_check();
    }
}

/* The batch the model expects: from head_off, each slice in chunks of at
 * most BH_QUEUE_CHUNK, at most max iovecs, stopping once it covers
 * BH_QUEUE_BATCH_BYTES. */
FUZZ_NO_COVERAGE static size_t expected_batch(size_t max, struct iovec *exp, size_t *items)
{
    size_t nb = 0, total = 0;
    *items = 0;
    for (int i = 0; i < M.rn && nb < max && total < BH_QUEUE_BATCH_BYTES; i++) {
        const item *x = &M.it[M.ring[i]];
        size_t off = i == 0 ? M.head_off : 0, rem = x->len - off;
        (*items)++;
        do {
            size_t n = rem < BH_QUEUE_CHUNK ? rem : BH_QUEUE_CHUNK;
            exp[nb].iov_base = M.map + x->off + off;
            exp[nb].iov_len = n;
            nb++;
            off += n;
            rem -= n;
            total += n;
        } while (rem > 0 && nb < max && total < BH_QUEUE_BATCH_BYTES);
    }
    return nb;
}

static void op_batch(size_t max_iov)
{
    static struct iovec exp[3 * MAX_ITEMS];
    bh_queue_batch b;
    int got = bh_queue_batch_next(&M.q, max_iov, &b);
    CHECK(got == (M.rn > 0 && !M.batch_out && max_iov > 0));
    if (!got)
        return;
    size_t items, n = expected_batch(max_iov, exp, &items);
    /* Without allocation failures the batch array holds every queued item;
     * after one it may be shorter (down to one entry): then a prefix. */
    CHECK(b.n_iov >= 1 && b.n_iov <= n);
    if (alloc_failed_now() == 0) {
        CHECK(b.n_iov == n);
        CHECK(b.items == items);
    }
    size_t total = 0;
    for (size_t i = 0; i < b.n_iov; i++) {
        CHECK(b.iov[i].iov_len == exp[i].iov_len);
        if (exp[i].iov_len > 0)
            CHECK(b.iov[i].iov_base == exp[i].iov_base);
        total += b.iov[i].iov_len;
    }
    CHECK(total == b.bytes);
    CHECK(b.items >= 1 && b.items <= items);
    M.pinned = (int)b.items;
    M.batch_bytes = b.bytes;
    M.batch_out = 1;
}

/* The batch ends; on a failed or closed queue the rest completes. */
static void model_batch_end(void)
{
    M.pinned = 0;
    M.batch_out = 0;
    M.batch_bytes = 0;
    if (M.state == BH_QUEUE_FAILED || M.state == BH_QUEUE_CLOSED)
        model_complete_tail(0, M.state == BH_QUEUE_CLOSED ? BH_ECANCELED : M.error);
}

static void op_done(uint8_t frac)
{
    if (!M.batch_out)
        return;
    size_t w = frac == 255 ? M.batch_bytes : M.batch_bytes / 255 * frac;
    size_t completed = bh_queue_batch_done(&M.q, w);
    size_t c = 0;
    M.written_bytes += w;
    while (M.pinned > 0 && M.rn > 0) {
        item *x = &M.it[M.ring[0]];
        size_t rem = x->len - M.head_off;
        if (rem > w) {
            M.head_off += w;
            break;
        }
        w -= rem;
        expect_done(M.ring[0], 0);
        memmove(M.ring, M.ring + 1, (size_t)(M.rn - 1) * sizeof M.ring[0]);
        M.rn--;
        M.head_off = 0;
        M.pinned--;
        c++;
    }
    CHECK(completed == c);
    release_check();
    model_batch_end();
}

/* The model of bh_queue_fail(): the inbox is detached first, then the
 * unpinned ring items complete, then the inbox items. */
static void model_fail(int err)
{
    if (M.state == BH_QUEUE_OPEN || M.state == BH_QUEUE_SEALED) {
        M.state = BH_QUEUE_FAILED;
        M.error = err;
    }
    int ids[MAX_ITEMS], n = M.in;
    memcpy(ids, M.inbox, (size_t)n * sizeof ids[0]);
    M.in = 0;
    int waiting = M.want;
    M.want = 0;
    model_complete_tail(M.pinned, err);
    for (int i = 0; i < n; i++)
        expect_done(ids[i], err);
    if (waiting && M.state != BH_QUEUE_CLOSED)
        M.due = 1;
}

static void op_fail(int err)
{
    bh_queue_fail(&M.q, err);
    model_fail(err);
}

static void op_close(void)
{
    struct bh_queue_inbox *ib = bh_queue_close(&M.q);
    if (M.state == BH_QUEUE_CLOSED) {
        CHECK(ib == NULL);
        return;
    }
    CHECK((ib != NULL) == M.mt);
    bh_queue_inbox_free(ib); /* no producer can submit any more */
    M.state = BH_QUEUE_CLOSED;
    M.due = 0;
    int ids[MAX_ITEMS], n = M.in;
    memcpy(ids, M.inbox, (size_t)n * sizeof ids[0]);
    M.in = 0;
    model_complete_tail(M.pinned, BH_ECANCELED);
    for (int i = 0; i < n; i++)
        expect_done(ids[i], BH_ECANCELED);
    M.mt_freed = M.mt;
    M.mt = 0;
}

static int no_seal(void *ctx)
{
    (void)ctx;
    return -1;
}

static void op_seal(int refuse)
{
    int empty = M.rn == 0 && !M.batch_out && M.in == 0;
    int rc = bh_queue_seal(&M.q, refuse ? no_seal : NULL, NULL);
    if (M.state != BH_QUEUE_OPEN) {
        CHECK(rc == BH_ECLOSED);
        return;
    }
    if (refuse && empty) {
        CHECK(rc == -1);
        return;
    }
    CHECK(rc == 0);
    M.state = BH_QUEUE_SEALED;
}

static void wake(void *ctx) { (void)ctx; }

static void op_enable_mt(size_t failed_before)
{
    int rc = bh_queue_enable_mt(&M.q, wake, NULL);
    if (M.state != BH_QUEUE_OPEN) {
        CHECK(rc == BH_ECLOSED);
        return;
    }
    if (rc == BH_ENOMEM) {
        CHECK(!M.mt && alloc_failed_now() > failed_before);
        return;
    }
    CHECK(rc == BH_OK);
    M.mt = 1;
}

static void op_take_inbox(void)
{
    int was = M.state;
    size_t moved = bh_queue_take_inbox(&M.q);
    if (!M.mt || M.in == 0) {
        CHECK(moved == 0);
        return;
    }
    if (was == BH_QUEUE_FAILED) {
        CHECK(moved == 0);
        int n = M.in;
        M.in = 0;
        release_check();
        for (int i = 0; i < n; i++)
            expect_done(M.inbox[i], M.error);
        return;
    }
    if (moved == 0) {
        /* The ring could not grow: the queue failed with BH_ENOMEM. */
        CHECK(bh_queue_state(&M.q) == BH_QUEUE_FAILED);
        CHECK(bh_queue_error(&M.q) == BH_ENOMEM);
        int n = M.in, ids[MAX_ITEMS];
        memcpy(ids, M.inbox, (size_t)n * sizeof ids[0]);
        M.in = 0;
        release_check();
        model_fail(BH_ENOMEM);
        for (int i = 0; i < n; i++)
            expect_done(ids[i], BH_ENOMEM);
        return;
    }
    CHECK(moved == (size_t)M.in);
    for (int i = 0; i < M.in; i++)
        M.ring[M.rn++] = M.inbox[i];
    M.in = 0;
}

static void op_abandon(int err)
{
    if (!M.batch_out)
        return;
    bh_queue_batch_abandon(&M.q, err);
    for (int i = 0; i < M.pinned && i < M.rn; i++)
        expect_done(M.ring[i], err);
}

/* ---- driver ---------------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    M.map = mmap(NULL, MAP_BYTES, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    CHECK(M.map != MAP_FAILED);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    uint8_t *map = M.map;
    memset(&M, 0, sizeof M);
    M.map = map;
    fuzz_input in = {data, size};
    M.cfg.max_items = 1 + fuzz_u8(&in) % 32;
    M.cfg.max_bytes = (size_t)1 << (fuzz_u8(&in) % 34);
    size_t low = fuzz_u8(&in);
    M.low = low << (fuzz_u8(&in) % 32);
    if (M.low > M.cfg.max_bytes)
        M.low = M.cfg.max_bytes;
    fuzz_alloc_begin();
    CHECK(bh_queue_init(&M.q, &M.cfg, NULL) == BH_OK);
    bh_queue_set_low_water(&M.q, M.low);
    M.state = BH_QUEUE_OPEN;
    while (in.n >= 3) {
        uint8_t op = fuzz_u8(&in), a = fuzz_u8(&in), b = fuzz_u8(&in);
        test_alloc_stats st;
        test_alloc_stats_get(&st);
        size_t failed_before = st.failed;
        test_alloc_fail_all(op >> 7);
        switch (op % 16) {
        case 0:
        case 1:
            op_push(pick_len(a, b), op & 1, 0, failed_before);
            break;
        case 2:
            op_push(pick_len(a, b), a & 0x40, 1, failed_before);
            break;
        case 3:
            op_direct(pick_len(a, b), b, failed_before);
            break;
        case 4:
        case 5:
            op_batch(1 + (size_t)a % 9 + (a & 0x80 ? 2000 : 0));
            break;
        case 6:
        case 7:
            op_done(a);
            break;
        case 8:
            if (M.batch_out) {
                bh_queue_batch_abort(&M.q);
                model_batch_end();
            }
            break;
        case 9:
            if (a < 16)
                op_fail(-1 - a);
            break;
        case 10:
            if (a < 8)
                op_close();
            break;
        case 11:
            op_seal(a & 1);
            break;
        case 12:
            op_enable_mt(failed_before);
            break;
        case 13:
            op_take_inbox();
            break;
        case 14:
            if (a < 32)
                op_abandon(-100 - (a & 7));
            break;
        case 15:
            M.low = (size_t)a * ((size_t)1 << (b % 24));
            bh_queue_set_low_water(&M.q, M.low);
            break;
        }
        test_alloc_fail_all(0);
        test_alloc_stats_get(&st);
        M.alloc_failed = st.failed;
        CHECK(bh_queue_take_drain(&M.q) == M.due);
        M.due = 0;
        check_all();
    }
    /* Wind down: end the batch, close, and nothing may be left. */
    if (M.batch_out)
        op_done(255);
    op_close();
    check_all();
    for (int i = 0; i < M.n; i++)
        CHECK(M.it[i].calls == (M.it[i].ticket ? 1 : 0));
    bh_thread_cache_trim(); /* the arrays the drained queue gave back */
    fuzz_alloc_end();
    return 0;
}
