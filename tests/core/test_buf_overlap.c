/* test_buf_overlap.c - bh_buf_append() with the source inside the buffer
 * itself (issue #23 item 2): appending (part of) the buffer's own data when
 * the append must grow the block, by each way growth can happen (realloc of
 * an unshared block, compaction in place, a fresh block replacing an
 * unshared one, a fresh block leaving one that slices pin), and without
 * growth; an allocation failure on that path changes nothing and leaks
 * nothing. bh_buf_append() is the one bh_buf call that copies from a caller
 * pointer (buf.h).
 *
 * The counting allocator sits under a wrapper whose realloc always moves and
 * which fills memory with 0xDD before freeing it, so that reading freed
 * memory shows up as wrong bytes in every build, and as a
 * heap-use-after-free under ASan. */
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <bytes_handoff.h>

#include "test_alloc.h"

static bh_allocator g_inner; /* the counting allocator under the wrapper */

static void *poison_malloc(void *ctx, size_t n)
{
    (void)ctx;
    return g_inner.malloc_fn(g_inner.ctx, n);
}

static void poison_free(void *ctx, void *p)
{
    (void)ctx;
    if (!p)
        return;
    memset(p, 0xDD, malloc_usable_size(p));
    g_inner.free_fn(g_inner.ctx, p);
}

/* Always moves: a new block, the old bytes copied, the old block poisoned
 * and freed. On failure the old block stays as it was. */
static void *poison_realloc(void *ctx, void *old, size_t n)
{
    void *p = g_inner.malloc_fn(g_inner.ctx, n);
    if (!p || !old)
        return p;
    size_t keep = malloc_usable_size(old);
    memcpy(p, old, keep < n ? keep : n);
    poison_free(ctx, old);
    return p;
}

static int setup(void **state)
{
    (void)state;
    test_alloc_install(0);
    bh_get_allocator(&g_inner);
    bh_allocator a = {poison_malloc, poison_realloc, poison_free, NULL};
    bh_set_allocator(&a);
    return 0;
}

/* The buffer under test and a model of what it must hold. */
typedef struct ov {
    bh_buf b;
    uint8_t model[1024];
    size_t len; /* bytes of model the buffer must hold */
} ov;

/* An empty buffer given n pattern bytes (also written to the model). */
static void fill(ov *f, size_t max_len, size_t n)
{
    assert_int_equal(bh_buf_init(&f->b, max_len), BH_OK);
    for (size_t i = 0; i < n; i++)
        f->model[i] = (uint8_t)('A' + i % 61);
    assert_int_equal(bh_buf_append(&f->b, f->model, n), BH_OK);
    f->len = n;
}

/* Spare capacity left after the data. */
static size_t spare_of(bh_buf *b)
{
    uint8_t *spare;
    size_t spare_len;
    assert_int_equal(bh_buf_reserve(b, 0, &spare, &spare_len), BH_OK);
    return spare_len;
}

/* Fills the spare exactly, so the next append must grow. */
static void fill_spare(ov *f)
{
    size_t n = spare_of(&f->b);
    for (size_t i = 0; i < n; i++)
        f->model[f->len + i] = (uint8_t)('a' + i % 23);
    assert_int_equal(bh_buf_append(&f->b, f->model + f->len, n), BH_OK);
    f->len += n;
}

/* The buffer holds exactly the model. */
static void check(const ov *f)
{
    assert_int_equal(bh_buf_len(&f->b), f->len);
    assert_memory_equal(bh_buf_data(&f->b), f->model, f->len);
}

/* A buffer whose block is exactly full: n pattern bytes, then its spare
 * filled, so that the next append must grow. */
static void fill_full(ov *f, size_t n)
{
    fill(f, 4096, n);
    fill_spare(f);
}

/* Consumes k bytes from the front of the buffer and of the model. */
static void advance_both(ov *f, size_t k)
{
    assert_int_equal(bh_buf_advance(&f->b, k), BH_OK);
    memmove(f->model, f->model + k, f->len - k);
    f->len -= k;
}

/* Appends n bytes of the buffer's own data from offset off, as the model
 * does, and checks the result. */
static void append_own(ov *f, size_t off, size_t n)
{
    memcpy(f->model + f->len, f->model + off, n);
    assert_int_equal(bh_buf_append(&f->b, bh_buf_data(&f->b) + off, n), BH_OK);
    f->len += n;
    check(f);
}

/* One way growth happens when all of the data is appended to itself: a
 * full block of n bytes, skip bytes consumed from the front first. */
typedef struct whole_case {
    size_t n, skip;
} whole_case;

/* Unshared block with the data at its start: growth reallocates it. */
static const whole_case REALLOCATED = {40, 0};
/* Unshared block, data moved forward, the block too small: a fresh block
 * replaces it (need = 2 * len > the block: not compaction, a new block). */
static const whole_case FRESH_BLOCK = {64, 8};

/* A full block of c->n bytes with c->skip consumed. */
static void fill_case(ov *f, const whole_case *c)
{
    fill_full(f, c->n);
    if (c->skip)
        advance_both(f, c->skip);
}

/* Appends all of the buffer's data to itself, as the case sets it up. */
static void append_all_own_data(void **state)
{
    ov f;
    fill_case(&f, *state);
    append_own(&f, 0, f.len);
    bh_buf_free(&f.b);
}

/* Unshared block, data moved forward, the block big enough: growth compacts
 * in place, which moves the bytes the source points at. */
static void append_own_data_when_the_block_is_compacted(void **state)
{
    (void)state;
    ov f;
    fill_full(&f, 64);
    size_t cap = f.len;
    advance_both(&f, 16);
    /* append the first 16 bytes: len + 16 <= cap, but more than the spare;
     * compaction would move other bytes to where they are */
    size_t n = 16, off = 0;
    assert_true(f.len + n <= cap);
    assert_true(spare_of(&f.b) < n);
    append_own(&f, off, n);
    bh_buf_free(&f.b);
}

/* A slice split off earlier pins the block: growth leaves it for a fresh
 * one; the source may be the data or the slice's bytes. */
static void append_own_data_when_slices_pin_the_block(void **state)
{
    (void)state;
    ov f;
    fill_full(&f, 64);
    bh_bytes head = {0};
    assert_int_equal(bh_buf_split_prefix(&f.b, 10, &head), BH_OK);
    uint8_t head_copy[10];
    memcpy(head_copy, f.model, 10);
    memmove(f.model, f.model + 10, f.len - 10);
    f.len -= 10;
    append_own(&f, 0, f.len);
    fill_spare(&f);
    memcpy(f.model + f.len, head.ptr, head.len);
    assert_int_equal(bh_buf_append(&f.b, head.ptr, head.len), BH_OK);
    f.len += head.len;
    check(&f);
    assert_memory_equal(head.ptr, head_copy, 10);
    bh_bytes_release(&head);
    bh_buf_free(&f.b);
}

/* Enough spare: no growth, the copy reads the data and writes after it. */
static void append_own_data_without_growth(void **state)
{
    (void)state;
    ov f;
    fill(&f, 4096, 20);
    assert_true(spare_of(&f.b) >= f.len);
    append_own(&f, 5, 10);
    bh_buf_free(&f.b);
}

/* The growth fails: BH_ENOMEM, the buffer unchanged (content and block),
 * nothing leaked; a later append of the same bytes succeeds. Both the
 * realloc path and the fresh-block path. */
static void append_own_data_fails_cleanly_without_memory(void **state)
{
    (void)state;
    static const whole_case cases[] = {{64, 0}, {64, 8}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ov f;
        fill_case(&f, &cases[i]);
        const uint8_t *before = bh_buf_data(&f.b);
        test_alloc_fail_all(1);
        assert_int_equal(bh_buf_append(&f.b, bh_buf_data(&f.b), f.len), BH_ENOMEM);
        test_alloc_fail_all(0);
        assert_ptr_equal(bh_buf_data(&f.b), before);
        check(&f);
        append_own(&f, 0, f.len);
        bh_buf_free(&f.b);
    }
}

/* Growth past max_len is refused before anything is touched. */
static void append_own_data_past_max_len_is_refused(void **state)
{
    (void)state;
    ov f;
    fill(&f, 100, 60);
    assert_int_equal(bh_buf_append(&f.b, bh_buf_data(&f.b), 60), BH_ETOOLONG);
    check(&f);
    bh_buf_free(&f.b);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, test_alloc_finish_teardown)
/* A parameterised entry: named `name`, runs f with *state == param. */
#define T_CASE(name, f, param) {#name, f, setup, test_alloc_finish_teardown, (void *)(param)}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T_CASE(append_own_data_when_the_block_is_reallocated, append_all_own_data, &REALLOCATED),
        T_CASE(append_own_data_when_a_fresh_block_replaces_the_old, append_all_own_data,
               &FRESH_BLOCK),
        T(append_own_data_when_the_block_is_compacted),
        T(append_own_data_when_slices_pin_the_block),
        T(append_own_data_without_growth),
        T(append_own_data_fails_cleanly_without_memory),
        T(append_own_data_past_max_len_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
