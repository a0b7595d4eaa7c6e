/* fuzz_buf.c - model-based libFuzzer target for bh_buf and bh_bytes.
 *
 * The input is a byte program: a header picks max_len, then each operation
 * (append, reserve + commit, split_prefix, split_prefix_mut, advance,
 * take_tail, freeze, free, find, bh_bytes copy / from_owned / static /
 * clone / slice / equal / release)
 * runs against up to NBUF real buffers and a trivial reference model (a plain
 * byte array per buffer, a recorded copy per held slice). The top bit of an
 * opcode makes every allocation during that operation fail.
 *
 * After every operation the buffer it touched equals its model and len never
 * exceeds max_len; every held slice is checked against its recorded bytes
 * when it is released and at the end (a corruption is found then, without
 * re-reading every slice after every operation). Return
 * codes must be exactly what the model predicts: BH_ERANGE when n > len,
 * BH_ETOOLONG past max_len, BH_ENOMEM only when an allocation failed (or the
 * request cannot be represented), and every error leaves the buffer struct
 * bit-for-bit unchanged. Splits, advance, take_tail and freeze must not
 * allocate; reserve must not allocate when the spare already suffices, and
 * the spare it hands out overlaps no held slice and no other buffer's bytes.
 * At the end every allocation made through the hook has been freed.
 * Allocations go through the tests' failing allocator (tests/support). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <bytes_handoff.h>

#include "fuzz_support.h"
#include "test_alloc.h"

#define NBUF 4
#define NHELD 32
/* Requests above this fail in the hook (counted as injected failures), so a
 * SIZE_MAX max_len cannot make the fuzzer allocate large blocks: just above
 * the largest u16 max_len block, below ASan's mmap threshold (128 KiB). */
#define ALLOC_LIMIT ((size_t)68 << 10)

static size_t alloc_attempts(void)
{
    test_alloc_stats st;
    test_alloc_stats_get(&st);
    return st.attempts;
}

static size_t alloc_failed(void)
{
    test_alloc_stats st;
    test_alloc_stats_get(&st);
    return st.failed;
}

/* ---- input reader (fuzz_support.h) ----------------------------------------- */

/* A length: mostly small, sometimes at the edges the model cares about. */
static size_t in_len(fuzz_input *in, size_t len, size_t max_len)
{
    uint8_t sel = fuzz_u8(in);
    switch (sel & 7) {
    case 0:
        return len;
    case 1:
        return len + 1;
    case 2:
        return len ? len - 1 : 0;
    case 3:
        return SIZE_MAX - (sel >> 3);
    case 4:
        return max_len - (len < max_len ? len : max_len) + (sel >> 7);
    case 5:
        return fuzz_u16(in);
    default:
        return fuzz_u8(in) % 64;
    }
}

/* ---- model ---------------------------------------------------------------- */

typedef struct {
    uint8_t *bytes;
    size_t len, cap;
} vec;

FUZZ_NO_COVERAGE static uint8_t *vec_grow(vec *v, size_t n)
{
    if (v->len + n > v->cap) {
        size_t cap = v->cap ? v->cap : 64;
        while (cap < v->len + n)
            cap *= 2;
        v->bytes = realloc(v->bytes, cap);
        CHECK(v->bytes != NULL);
        v->cap = cap;
    }
    v->len += n;
    return v->bytes + v->len - n;
}

FUZZ_NO_COVERAGE static void vec_push(vec *v, const uint8_t *p, size_t n)
{
    if (n)
        memcpy(vec_grow(v, n), p, n);
}

FUZZ_NO_COVERAGE static void vec_drop_front(vec *v, size_t n)
{
    if (n == 0)
        return;
    memmove(v->bytes, v->bytes + n, v->len - n);
    v->len -= n;
}

typedef struct {
    int used;
    bh_buf buf;
    vec model;
} slot;

typedef struct {
    int used;
    bh_bytes b;
    uint8_t *copy; /* libc malloc, not through the hook */
} held;

static slot g_slots[NBUF];
static held g_held[NHELD];

FUZZ_NO_COVERAGE static int held_add(bh_bytes b, const uint8_t *expect)
{
    for (int i = 0; i < NHELD; i++) {
        if (!g_held[i].used) {
            g_held[i].used = 1;
            g_held[i].b = b;
            g_held[i].copy = malloc(b.len ? b.len : 1);
            CHECK(g_held[i].copy != NULL);
            if (b.len)
                memcpy(g_held[i].copy, expect, b.len);
            return i;
        }
    }
    return -1;
}

FUZZ_NO_COVERAGE static void check_held(int i)
{
    const bh_bytes *b = &g_held[i].b;
    CHECK(b->len == 0 || b->ptr != NULL);
    if (b->len)
        CHECK(memcmp(b->ptr, g_held[i].copy, b->len) == 0);
}

static void held_release(int i)
{
    check_held(i);
    bh_bytes_release(&g_held[i].b);
    CHECK(g_held[i].b.ptr == NULL && g_held[i].b.len == 0 && bh_bytes_refcount(&g_held[i].b) == 0);
    free(g_held[i].copy);
    g_held[i].copy = NULL;
    g_held[i].used = 0;
}

static int held_free_slots(void)
{
    int n = 0;
    for (int i = 0; i < NHELD; i++)
        n += !g_held[i].used;
    return n;
}

static int pick_used_held(fuzz_input *in)
{
    int start = fuzz_u8(in) % NHELD;
    for (int k = 0; k < NHELD; k++) {
        int i = (start + k) % NHELD;
        if (g_held[i].used)
            return i;
    }
    return -1;
}

static int pick_free_slot(void)
{
    for (int i = 0; i < NBUF; i++)
        if (!g_slots[i].used)
            return i;
    return -1;
}

/* Unchanged: the whole value, compared without naming its private fields. */
static int same_buf(const bh_buf *a, const bh_buf *b) { return memcmp(a, b, sizeof *a) == 0; }

FUZZ_NO_COVERAGE static void check_slot(const slot *s)
{
    const bh_buf *b = &s->buf;
    CHECK(bh_buf_len(b) == s->model.len);
    CHECK(bh_buf_len(b) <= bh_buf_max_len(b));
    CHECK(bh_buf_spare(b) <= bh_buf_max_len(b) - bh_buf_len(b));
    if (s->model.len)
        CHECK(memcmp(bh_buf_data(b), s->model.bytes, s->model.len) == 0);
}

FUZZ_NO_COVERAGE static void check_all(void)
{
    for (int i = 0; i < NBUF; i++)
        if (g_slots[i].used)
            check_slot(&g_slots[i]);
    for (int i = 0; i < NHELD; i++)
        if (g_held[i].used)
            check_held(i);
}

/* 1 when [p, p + n) overlaps [q, q + m). */
static int overlaps(const uint8_t *p, size_t n, const uint8_t *q, size_t m)
{
    return n && m && p < q + m && q < p + n;
}

/* The spare region reserve handed out belongs to s alone: it overlaps no held
 * slice and no other buffer's bytes. */
FUZZ_NO_COVERAGE static void check_spare_private(const slot *s, const uint8_t *spare, size_t n)
{
    for (int i = 0; i < NHELD; i++)
        if (g_held[i].used)
            CHECK(!overlaps(spare, n, g_held[i].b.ptr, g_held[i].b.len));
    for (int i = 0; i < NBUF; i++)
        if (g_slots[i].used && &g_slots[i] != s)
            CHECK(!overlaps(spare, n, bh_buf_data(&g_slots[i].buf), bh_buf_len(&g_slots[i].buf)));
}

/* Verifies a growth result: rc must be what the model allows given whether
 * an allocation failed during the call. `need_ok` is 1 when the request fits
 * max_len. */
static void check_growth_rc(int rc, int fits, size_t failed_before, size_t n)
{
    if (!fits) {
        CHECK(rc == BH_ETOOLONG);
        return;
    }
    if (rc == BH_ENOMEM) {
        /* Only an injected failure, or a request no allocator could serve. */
        CHECK(alloc_failed() > failed_before || n > ALLOC_LIMIT);
        return;
    }
    CHECK(rc == BH_OK);
}

/* ---- operations ----------------------------------------------------------- */

static void op_append(slot *s, fuzz_input *in)
{
    size_t n = fuzz_u8(in);
    const uint8_t *p = fuzz_take(in, &n);

    bh_buf before = s->buf;
    size_t spare = bh_buf_spare(&s->buf);
    size_t attempts = alloc_attempts(), failed = alloc_failed();
    int fits = n <= bh_buf_max_len(&s->buf) - bh_buf_len(&s->buf);
    int rc = bh_buf_append(&s->buf, n ? p : NULL, n);
    check_growth_rc(rc, fits, failed, n);
    if (spare >= n || !fits)
        CHECK(alloc_attempts() == attempts);
    if (rc == BH_OK) {
        vec_push(&s->model, p, n);
    } else {
        CHECK(same_buf(&before, &s->buf));
    }
}

static void op_reserve_commit(slot *s, fuzz_input *in)
{
    size_t n = in_len(in, 0, bh_buf_max_len(&s->buf) - bh_buf_len(&s->buf));
    uint8_t fill = fuzz_u8(in);
    bh_buf before = s->buf;
    size_t spare_before = bh_buf_spare(&s->buf);
    size_t attempts = alloc_attempts(), failed = alloc_failed();
    int fits = n <= bh_buf_max_len(&s->buf) - bh_buf_len(&s->buf);
    uint8_t *spare = (uint8_t *)1;
    size_t spare_len = (size_t)-1;

    int rc = bh_buf_reserve(&s->buf, n, &spare, &spare_len);
    check_growth_rc(rc, fits, failed, n);
    if (spare_before >= n || !fits)
        CHECK(alloc_attempts() == attempts);
    if (rc != BH_OK) {
        CHECK(same_buf(&before, &s->buf));
        return;
    }
    CHECK(spare_len >= n);
    CHECK(spare_len == bh_buf_spare(&s->buf));
    CHECK(spare_len <= bh_buf_max_len(&s->buf) - bh_buf_len(&s->buf));
    CHECK(spare_len == 0 || spare == bh_buf_data(&s->buf) + bh_buf_len(&s->buf));
    check_spare_private(s, spare, spare_len);

    size_t k = in_len(in, spare_len, bh_buf_max_len(&s->buf));
    /* Write what is committed and touch the last spare byte (ASan checks the
     * whole region is addressable); overlap is checked above by address. */
    if (k <= spare_len && k)
        memset(spare, fill, k);
    if (spare_len)
        spare[spare_len - 1] = fill;
    before = s->buf;
    attempts = alloc_attempts();
    rc = bh_buf_commit(&s->buf, k);
    CHECK(alloc_attempts() == attempts);
    if (k > spare_len) {
        CHECK(rc == BH_ERANGE);
        CHECK(same_buf(&before, &s->buf));
        return;
    }
    CHECK(rc == BH_OK);
    if (k)
        memset(vec_grow(&s->model, k), fill, k);
}

/* A call taking n bytes off the front returned rc: without allocating, and
 * past the end BH_ERANGE with the buffer unchanged (0), or else BH_OK (1). */
static int front_call_ok(const slot *s, const bh_buf *before, size_t n, int rc, size_t attempts)
{
    CHECK(alloc_attempts() == attempts);
    if (n > s->model.len) {
        CHECK(rc == BH_ERANGE);
        CHECK(same_buf(before, &s->buf));
        return 0;
    }
    CHECK(rc == BH_OK);
    return 1;
}

static void op_split_prefix(slot *s, fuzz_input *in)
{
    size_t n = in_len(in, bh_buf_len(&s->buf), bh_buf_max_len(&s->buf));
    bh_buf before = s->buf;
    size_t attempts = alloc_attempts();
    bh_bytes out = {(const uint8_t *)1, 7, NULL};
    if (held_free_slots() == 0)
        return;
    int rc = bh_buf_split_prefix(&s->buf, n, &out);
    if (!front_call_ok(s, &before, n, rc, attempts))
        return;
    CHECK(out.len == n);
    CHECK(held_add(out, s->model.bytes) >= 0);
    vec_drop_front(&s->model, n);
}

static void op_split_prefix_mut(slot *s, fuzz_input *in)
{
    int d = pick_free_slot();
    if (d < 0)
        return;
    slot *t = &g_slots[d];
    size_t n = in_len(in, bh_buf_len(&s->buf), bh_buf_max_len(&s->buf));
    bh_buf before = s->buf;
    size_t attempts = alloc_attempts();
    int rc = bh_buf_split_prefix_mut(&s->buf, n, &t->buf);
    if (!front_call_ok(s, &before, n, rc, attempts))
        return;
    CHECK(bh_buf_max_len(&t->buf) == bh_buf_max_len(&s->buf));
    t->used = 1;
    t->model.len = 0;
    vec_push(&t->model, s->model.bytes, n);
    vec_drop_front(&s->model, n);
}

static void op_advance(slot *s, fuzz_input *in)
{
    size_t n = in_len(in, bh_buf_len(&s->buf), bh_buf_max_len(&s->buf));
    bh_buf before = s->buf;
    size_t attempts = alloc_attempts();
    int rc = bh_buf_advance(&s->buf, n);
    if (!front_call_ok(s, &before, n, rc, attempts))
        return;
    vec_drop_front(&s->model, n);
}

/* Gives an empty buffer's block to the thread's block cache (may allocate
 * the cache's table, and fail to: then the block is freed). Later reserves
 * take cached windows back, which the spare check (check_spare_private)
 * and the held slices' copies verify never overlap live bytes. */
static void op_recycle(slot *s)
{
    bh_buf before = s->buf;
    int rc = bh_buf_recycle(&s->buf);
    if (s->model.len > 0) {
        CHECK(rc == BH_ERANGE);
        CHECK(same_buf(&before, &s->buf));
        return;
    }
    CHECK(rc == BH_OK);
    CHECK(bh_buf_data(&s->buf) == NULL && bh_buf_spare(&s->buf) == 0); /* no block held */
    CHECK(bh_buf_max_len(&s->buf) == bh_buf_max_len(&before));
}

static void op_take_tail(slot *s, fuzz_input *in)
{
    (void)in;
    int d = pick_free_slot();
    if (d < 0)
        return;
    slot *t = &g_slots[d];
    size_t attempts = alloc_attempts();
    size_t max_len = bh_buf_max_len(&s->buf);
    CHECK(bh_buf_take_tail(&s->buf, &t->buf) == BH_OK);
    CHECK(alloc_attempts() == attempts);
    CHECK(bh_buf_len(&s->buf) == 0 && bh_buf_spare(&s->buf) == 0);
    CHECK(bh_buf_max_len(&s->buf) == max_len && bh_buf_max_len(&t->buf) == max_len);
    t->used = 1;
    t->model.len = 0;
    vec_push(&t->model, s->model.bytes, s->model.len);
    s->model.len = 0;
}

static void op_freeze(slot *s, fuzz_input *in)
{
    (void)in;
    if (held_free_slots() == 0)
        return;
    size_t attempts = alloc_attempts();
    size_t spare = bh_buf_spare(&s->buf);
    bh_bytes out;
    CHECK(bh_buf_freeze(&s->buf, &out) == BH_OK);
    CHECK(alloc_attempts() == attempts);
    CHECK(out.len == s->model.len);
    CHECK(bh_buf_len(&s->buf) == 0);
    /* The buffer keeps its spare capacity (rewinding may only add to it). */
    CHECK(bh_buf_spare(&s->buf) >= spare);
    CHECK(held_add(out, s->model.bytes) >= 0);
    s->model.len = 0;
}

static void op_free(slot *s, fuzz_input *in)
{
    (void)in;
    int idx = (int)(s - g_slots);
    size_t max_len = bh_buf_max_len(&s->buf);
    bh_buf_free(&s->buf);
    CHECK(bh_buf_len(&s->buf) == 0 && bh_buf_data(&s->buf) == NULL &&
          bh_buf_max_len(&s->buf) == max_len);
    s->model.len = 0;
    /* Keep slot 0 alive (reused empty); retire the others. */
    if (idx != 0)
        s->used = 0;
}

static void op_find(slot *s, fuzz_input *in)
{
    uint8_t byte = fuzz_u8(in);
    size_t from = in_len(in, s->model.len, bh_buf_max_len(&s->buf));
    size_t got = bh_buf_find(&s->buf, byte, from);
    size_t want = BH_NPOS;
    if (from < s->model.len) {
        const uint8_t *p = memchr(s->model.bytes + from, byte, s->model.len - from);
        if (p)
            want = (size_t)(p - s->model.bytes);
    }
    CHECK(got == want);
}

static void op_bytes_copy(slot *s, fuzz_input *in)
{
    (void)s;
    if (held_free_slots() == 0)
        return;
    size_t n = fuzz_u8(in);
    const uint8_t *p = fuzz_take(in, &n);
    size_t failed = alloc_failed();
    bh_bytes out;
    int rc = bh_bytes_copy(&out, n ? p : NULL, n);
    if (rc == BH_ENOMEM) {
        CHECK(alloc_failed() > failed);
        CHECK(out.ptr == NULL && out.len == 0 && bh_bytes_refcount(&out) == 0);
        return;
    }
    CHECK(rc == BH_OK && out.len == n);
    CHECK(held_add(out, p) >= 0);
}

/* free_fn for bh_bytes_from_owned(): counts outstanding owned regions so the
 * driver can check each is freed exactly once, after its last reference. */
static size_t g_owned_live;

static void owned_free(void *ctx, void *p)
{
    CHECK(ctx == &g_owned_live);
    CHECK(g_owned_live > 0);
    g_owned_live--;
    free(p);
}

/* bh_bytes_from_owned (top bit of the length byte clear) or bh_bytes_static
 * over the input itself (set). */
static void op_bytes_wrap(slot *s, fuzz_input *in)
{
    (void)s;
    if (held_free_slots() == 0)
        return;
    uint8_t sel = fuzz_u8(in);
    size_t n = sel & 0x7f;
    if (n > in->n)
        n = in->n;
    const uint8_t *p = in->p;
    in->p += n;
    in->n -= n;
    if (sel & 0x80) {
        bh_bytes st = bh_bytes_static(p, n);
        CHECK(st.ptr == p && st.len == n && bh_bytes_refcount(&st) == 0);
        CHECK(bh_bytes_refcount(&st) == 0);
        CHECK(held_add(st, p) >= 0);
        return;
    }
    uint8_t *mem = malloc(n ? n : 1);
    CHECK(mem != NULL);
    if (n)
        memcpy(mem, p, n);
    size_t failed = alloc_failed();
    bh_bytes out;
    int rc = bh_bytes_from_owned(&out, mem, n, owned_free, &g_owned_live);
    if (rc == BH_ENOMEM) {
        CHECK(alloc_failed() > failed);
        free(mem); /* still ours */
        return;
    }
    CHECK(rc == BH_OK && out.ptr == mem && out.len == n && bh_bytes_refcount(&out) == 1);
    g_owned_live++;
    CHECK(held_add(out, p) >= 0);
}

/* bh_bytes_equal between two held slices agrees with their recorded copies. */
static void op_equal(slot *s, fuzz_input *in)
{
    (void)s;
    int i = pick_used_held(in), j = pick_used_held(in);
    if (i < 0 || j < 0)
        return;
    const held *a = &g_held[i], *b = &g_held[j];
    int want = a->b.len == b->b.len && (a->b.len == 0 || memcmp(a->copy, b->copy, a->b.len) == 0);
    CHECK(bh_bytes_equal(&a->b, &b->b) == want);
}

static void op_clone(slot *s, fuzz_input *in)
{
    (void)s;
    int i = pick_used_held(in);
    if (i < 0 || held_free_slots() == 0)
        return;
    size_t attempts = alloc_attempts();
    size_t refs = bh_bytes_refcount(&g_held[i].b);
    bh_bytes c = bh_bytes_clone(&g_held[i].b);
    CHECK(alloc_attempts() == attempts);
    CHECK(c.ptr == g_held[i].b.ptr && c.len == g_held[i].b.len);
    CHECK(bh_bytes_refcount(&c) == (refs ? refs + 1 : 0)); /* no owner: nothing counted */
    CHECK(held_add(c, g_held[i].copy) >= 0);
}

static void op_slice(slot *s, fuzz_input *in)
{
    (void)s;
    int i = pick_used_held(in);
    if (i < 0 || held_free_slots() == 0)
        return;
    size_t len = g_held[i].b.len;
    size_t off = in_len(in, len, len);
    size_t n = in_len(in, len - (off < len ? off : len), len);
    size_t attempts = alloc_attempts();
    bh_bytes out = {(const uint8_t *)1, 7, NULL};
    int rc = bh_bytes_slice(&g_held[i].b, off, n, &out);
    CHECK(alloc_attempts() == attempts);
    if (off > len || n > len - off) {
        CHECK(rc == BH_ERANGE);
        CHECK(out.ptr == (const uint8_t *)1 && out.len == 7 && bh_bytes_refcount(&out) == 0);
        return;
    }
    CHECK(rc == BH_OK && out.len == n);
    CHECK(held_add(out, g_held[i].copy + off) >= 0);
}

static void op_release(slot *s, fuzz_input *in)
{
    (void)s;
    int i = pick_used_held(in);
    if (i >= 0)
        held_release(i);
}

/* ---- driver --------------------------------------------------------------- */

/* The operations by (op & 0x7f) % 16; 5 (advance) with bit 6 also recycles. */
static void (*const ops[16])(slot *, fuzz_input *) = {
    op_append, op_append, op_reserve_commit, op_split_prefix, op_split_prefix_mut, op_advance,
    op_take_tail, op_freeze, op_free, op_find, op_bytes_copy, op_clone, op_slice,
    op_bytes_wrap, op_equal, op_release};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_input in = {data, size};
    fuzz_alloc_begin();
    test_alloc_limit_size(ALLOC_LIMIT);

    uint8_t hdr = fuzz_u8(&in);
    size_t max_len = (hdr & 0x80) ? SIZE_MAX : fuzz_u16(&in) + 1;
    CHECK(bh_buf_init(&g_slots[0].buf, 0) == BH_EINVAL);
    CHECK(bh_buf_init(&g_slots[0].buf, max_len) == BH_OK);
    g_slots[0].used = 1;

    while (in.n > 0) {
        uint8_t op = fuzz_u8(&in);
        uint8_t which = fuzz_u8(&in) % NBUF;
        slot *s = g_slots[which].used ? &g_slots[which] : &g_slots[0];
        test_alloc_fail_all((op & 0x80) != 0);
        unsigned sel = (op & 0x7fu) % 16;
        ops[sel](s, &in);
        if (sel == 5 && (op & 0x40)) /* bits 4-6 do not select the operation */
            op_recycle(s);
        test_alloc_fail_all(0);
        if (s->used)
            check_slot(s);
    }
    check_all();

    for (int i = 0; i < NHELD; i++)
        if (g_held[i].used)
            held_release(i);
    for (int i = 0; i < NBUF; i++) {
        if (g_slots[i].used)
            bh_buf_free(&g_slots[i].buf);
        g_slots[i].used = 0;
        free(g_slots[i].model.bytes);
        g_slots[i].model = (vec){NULL, 0, 0};
    }
    bh_thread_cache_trim();
    CHECK(g_owned_live == 0);
    fuzz_alloc_end();
    return 0;
}
