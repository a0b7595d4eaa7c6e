/* test_buf_read.c - bh_buf_reserve_read(), the read reserve an event-loop
 * adapter makes before each read: a cached block (whole or behind slices)
 * before allocating, spare behind slices before moving to a fresh block,
 * what it hands out (sizes, the max_len bound), the errors, and that an
 * allocation failure changes nothing. Counted through the test allocator and
 * bh_block_cache_stats(). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <bytes_handoff.h>

#include "test_alloc.h"

#define RESERVE ((size_t)1024)

static int setup(void **state)
{
    (void)state;
    test_alloc_install(0);
    bh_block_cache_set_limits(BH_BLOCK_CACHE_MAX_BLOCKS_DEFAULT, BH_BLOCK_CACHE_MAX_BYTES_DEFAULT);
    return 0;
}

static size_t attempts(void) { return test_alloc_stats_now().attempts; }

static struct bh_block_cache_stats cache(void)
{
    struct bh_block_cache_stats st;
    bh_block_cache_stats(&st);
    return st;
}

/* Reads n bytes (pattern from seed) into the spare region and commits. */
static void read_into(bh_buf *b, size_t n, uint8_t seed)
{
    uint8_t *spare;
    size_t spare_len;
    assert_int_equal(bh_buf_reserve_read(b, n, &spare, &spare_len), BH_OK);
    assert_true(spare_len >= n);
    for (size_t i = 0; i < n; i++)
        spare[i] = (uint8_t)(seed + i);
    assert_int_equal(bh_buf_commit(b, n), BH_OK);
}

/* Gives an empty buffer a fresh unshared block of exactly `size` bytes. */
static void make_block(bh_buf *b, size_t size)
{
    uint8_t *spare;
    size_t spare_len;
    assert_int_equal(bh_buf_reserve(b, size, &spare, &spare_len), BH_OK);
    assert_int_equal(spare_len, size);
}

/* A buffer whose fresh block of 4 * RESERVE holds `used` bytes (seed 3),
 * all but the last `keep` of them split off into *slice. */
static void split_behind(bh_buf *b, size_t used, size_t keep, bh_bytes *slice)
{
    assert_int_equal(bh_buf_init(b, 1u << 20), BH_OK);
    make_block(b, 4 * RESERVE);
    read_into(b, used, 3);
    assert_int_equal(bh_buf_split_prefix(b, used - keep, slice), BH_OK);
}

static void bad_arguments_and_the_cap(void **state)
{
    (void)state;
    bh_buf b;
    uint8_t *spare = (uint8_t *)&b;
    size_t spare_len = 7;
    assert_int_equal(bh_buf_reserve_read(NULL, 1, &spare, &spare_len), BH_EINVAL);
    assert_int_equal(bh_buf_init(&b, 100), BH_OK);
    assert_int_equal(bh_buf_reserve_read(&b, 101, &spare, &spare_len), BH_ETOOLONG);
    assert_ptr_equal(spare, (uint8_t *)&b);
    assert_int_equal(spare_len, 7);
    /* 0 bytes: whatever spare exists (none), nothing allocated */
    size_t before = attempts();
    assert_int_equal(bh_buf_reserve_read(&b, 0, &spare, &spare_len), BH_OK);
    assert_null(spare);
    assert_int_equal(spare_len, 0);
    assert_int_equal(attempts(), before);
    /* never past max_len */
    read_into(&b, 90, 1);
    assert_int_equal(bh_buf_reserve_read(&b, 10, &spare, &spare_len), BH_OK);
    assert_int_equal(spare_len, 10);
    assert_int_equal(bh_buf_reserve_read(&b, 11, &spare, &spare_len), BH_ETOOLONG);
    bh_buf_free(&b);
}

/* Nothing cached: a block of at least n is allocated (one miss). */
static void empty_cache_allocates_a_block(void **state)
{
    (void)state;
    bh_buf b;
    uint8_t *spare;
    size_t spare_len;
    assert_int_equal(bh_buf_init(&b, 1u << 20), BH_OK);
    struct bh_block_cache_stats c0 = cache();
    size_t before = attempts();
    assert_int_equal(bh_buf_reserve_read(&b, RESERVE, &spare, &spare_len), BH_OK);
    assert_non_null(spare);
    assert_true(spare_len >= RESERVE);
    assert_int_equal(attempts(), before + 1);
    assert_int_equal(cache().misses, c0.misses + 1);
    bh_buf_free(&b);
}

/* A recycled unshared block is taken back whole, without allocating. */
static void recycled_block_is_read_into_again(void **state)
{
    (void)state;
    bh_buf b;
    uint8_t *spare, *first;
    size_t spare_len;
    assert_int_equal(bh_buf_init(&b, 1u << 20), BH_OK);
    assert_int_equal(bh_buf_reserve_read(&b, RESERVE, &first, &spare_len), BH_OK);
    assert_int_equal(bh_buf_recycle(&b), BH_OK);
    struct bh_block_cache_stats c0 = cache();
    size_t before = attempts();
    assert_int_equal(bh_buf_reserve_read(&b, RESERVE, &spare, &spare_len), BH_OK);
    assert_ptr_equal(spare, first);
    assert_true(spare_len >= RESERVE);
    assert_int_equal(attempts(), before);
    assert_int_equal(cache().hits, c0.hits + 1);
    bh_buf_free(&b);
}

/* A recycled block that a slice still pins is read into behind the slice
 * when at least a quarter of the reserve is free there, even though less
 * than the reserve is; bh_buf_reserve() would not take it. */
static void pinned_block_with_a_quarter_free_is_read_into(void **state)
{
    (void)state;
    bh_buf b;
    bh_bytes slice;
    uint8_t *spare;
    size_t spare_len;
    size_t used = 4 * RESERVE - RESERVE / 2; /* half the reserve behind the slice */
    split_behind(&b, used, 0, &slice);
    const uint8_t *behind = slice.ptr + used;
    assert_int_equal(bh_buf_recycle(&b), BH_OK);
    size_t before = attempts();
    assert_int_equal(bh_buf_reserve_read(&b, RESERVE, &spare, &spare_len), BH_OK);
    assert_ptr_equal(spare, behind);
    assert_int_equal(spare_len, RESERVE / 2);
    assert_int_equal(attempts(), before);
    /* the slice's bytes are untouched by a read into the window */
    memset(spare, 0xEE, spare_len);
    assert_int_equal(bh_buf_commit(&b, spare_len), BH_OK);
    assert_int_equal(slice.ptr[0], 3);
    assert_int_equal(slice.ptr[used - 1], (uint8_t)(3 + used - 1));
    bh_bytes_release(&slice);
    bh_buf_free(&b);
}

/* Less than a quarter free behind the slice: not adopted, a block is
 * allocated instead (and the pinned one stays cached). */
static void pinned_block_with_little_free_is_not_used(void **state)
{
    (void)state;
    bh_buf b;
    bh_bytes slice;
    uint8_t *spare;
    size_t spare_len;
    size_t used = 4 * RESERVE - RESERVE / 8;
    split_behind(&b, used, 0, &slice);
    assert_int_equal(bh_buf_recycle(&b), BH_OK);
    struct bh_block_cache_stats c0 = cache();
    size_t before = attempts();
    assert_int_equal(bh_buf_reserve_read(&b, RESERVE, &spare, &spare_len), BH_OK);
    assert_true(spare_len >= RESERVE);
    assert_int_equal(attempts(), before + 1);
    assert_int_equal(cache().blocks, c0.blocks);
    assert_int_equal(cache().misses, c0.misses + 1);
    bh_bytes_release(&slice);
    bh_buf_free(&b);
}

/* Slices share the buffer's block and a quarter of the reserve is spare:
 * the read goes there (no allocation, no copy of the data); with less spare
 * the data moves to a fresh block of at least the reserve. */
static void spare_behind_slices_is_used_before_a_fresh_block(void **state)
{
    (void)state;
    bh_buf b;
    bh_bytes slice;
    uint8_t *spare;
    size_t spare_len;
    split_behind(&b, 4 * RESERVE - RESERVE / 2, 10, &slice); /* spare: RESERVE / 2 */
    const uint8_t *data = bh_buf_data(&b);
    size_t before = attempts();
    assert_int_equal(bh_buf_reserve_read(&b, RESERVE, &spare, &spare_len), BH_OK);
    assert_int_equal(spare_len, RESERVE / 2);
    assert_ptr_equal(spare, data + 10);
    assert_ptr_equal(bh_buf_data(&b), data);
    assert_int_equal(attempts(), before);
    /* bh_buf_reserve() insists on the whole reserve */
    uint8_t *moved;
    size_t moved_len;
    assert_int_equal(bh_buf_reserve(&b, RESERVE, &moved, &moved_len), BH_OK);
    assert_true(moved_len >= RESERVE);
    assert_int_equal(attempts(), before + 1);
    assert_ptr_not_equal(bh_buf_data(&b), data);
    /* now the block is unshared: fill it up to less than a quarter spare */
    bh_bytes_release(&slice);
    read_into(&b, bh_buf_spare(&b) - RESERVE / 8, 6);
    assert_int_equal(bh_buf_split_prefix(&b, 1, &slice), BH_OK);
    before = attempts();
    assert_int_equal(bh_buf_reserve_read(&b, RESERVE, &spare, &spare_len), BH_OK);
    assert_true(spare_len >= RESERVE);
    assert_int_equal(attempts(), before + 1);
    bh_bytes_release(&slice);
    bh_buf_free(&b);
}

/* Every allocation fails: BH_ENOMEM and the buffer as it was, both for an
 * empty buffer and for one whose data must move. */
static void allocation_failure_changes_nothing(void **state)
{
    (void)state;
    bh_buf b;
    bh_bytes slice = {0};
    uint8_t *spare = NULL;
    size_t spare_len = 0;
    assert_int_equal(bh_buf_init(&b, 1u << 20), BH_OK);
    test_alloc_fail_all(1);
    assert_int_equal(bh_buf_reserve_read(&b, RESERVE, &spare, &spare_len), BH_ENOMEM);
    assert_int_equal(bh_buf_len(&b), 0);
    assert_null(bh_buf_data(&b));
    test_alloc_fail_all(0);
    read_into(&b, 100, 9);
    size_t cap = bh_buf_len(&b) + bh_buf_spare(&b);
    read_into(&b, cap - 100, 10);
    assert_int_equal(bh_buf_split_prefix(&b, 50, &slice), BH_OK);
    const uint8_t *data = bh_buf_data(&b);
    size_t len = bh_buf_len(&b);
    test_alloc_fail_all(1);
    assert_int_equal(bh_buf_reserve_read(&b, RESERVE, &spare, &spare_len), BH_ENOMEM);
    test_alloc_fail_all(0);
    assert_ptr_equal(bh_buf_data(&b), data);
    assert_int_equal(bh_buf_len(&b), len);
    assert_int_equal(bh_buf_data(&b)[0], (uint8_t)(9 + 50));
    bh_bytes_release(&slice);
    bh_buf_free(&b);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, test_alloc_finish_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(bad_arguments_and_the_cap),
        T(empty_cache_allocates_a_block),
        T(recycled_block_is_read_into_again),
        T(pinned_block_with_a_quarter_free_is_read_into),
        T(pinned_block_with_little_free_is_not_used),
        T(spare_behind_slices_is_used_before_a_fresh_block),
        T(allocation_failure_changes_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
