/* test_block_cache.c - the per-thread block cache behind bh_buf_recycle() and
 * bh_buf_reserve(): hits and misses, blocks still pinned by slices, the
 * bounds in blocks and bytes, trimming, one cache per thread (and its
 * release at thread exit), and allocation failures. Counted through the test
 * allocator and bh_block_cache_stats(). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <bytes_handoff.h>

#include "test_alloc.h"
#include "test_main.h"
#include "test_buf_fixture.h"

/* The thread's counters when the test started: tests look at differences. */
static struct bh_block_cache_stats g_base;

static int setup(void **state)
{
    (void)state;
    test_alloc_install(0);
    bh_block_cache_set_limits(BH_BLOCK_CACHE_MAX_BLOCKS_DEFAULT, BH_BLOCK_CACHE_MAX_BYTES_DEFAULT);
    bh_block_cache_stats(&g_base);
    return 0;
}

/* Current holdings and bounds, counters since the test started. */
static struct bh_block_cache_stats cache_stats(void)
{
    struct bh_block_cache_stats cs;
    bh_block_cache_stats(&cs);
    cs.hits -= g_base.hits;
    cs.misses -= g_base.misses;
    cs.puts -= g_base.puts;
    cs.evictions -= g_base.evictions;
    cs.refused -= g_base.refused;
    return cs;
}

/* A buffer of max_len holding one block of about `size` bytes, emptied. */
static void buf_with_empty_block(bh_buf *b, size_t size)
{
    test_buf_reserved(b, size, size, NULL, NULL);
}

/* A buffer of max_len `size` given data[0..n), all of it split off into
 * *slice, then recycled: its block is cached, pinned by the slice. */
static void recycled_behind_slice(bh_buf *b, size_t size, const void *data, size_t n,
                                  bh_bytes *slice)
{
    buf_with_empty_block(b, size);
    assert_int_equal(bh_buf_append(b, data, n), BH_OK);
    assert_int_equal(bh_buf_split_prefix(b, n, slice), BH_OK);
    assert_int_equal(bh_buf_recycle(b), BH_OK);
}

static void recycled_block_is_reused_without_allocating(void **state)
{
    (void)state;
    bh_buf a, b;
    buf_with_empty_block(&a, 4096);
    uint8_t *first;
    assert_int_equal(bh_buf_reserve(&a, 1, &first, NULL), BH_OK);
    assert_int_equal(bh_buf_recycle(&a), BH_OK);
    assert_int_equal(cache_stats().blocks, 1);
    assert_int_equal(cache_stats().bytes, 4096);

    size_t allocs = test_alloc_stats_now().allocs;
    uint8_t *spare;
    size_t spare_len;
    test_buf_reserved(&b, 4096, 4096, &spare, &spare_len);
    assert_ptr_equal(spare, first);
    assert_int_equal(spare_len, 4096);
    assert_int_equal(test_alloc_stats_now().allocs, allocs);
    assert_int_equal(cache_stats().hits, 1);
    assert_int_equal(cache_stats().blocks, 0);
    bh_buf_free(&a);
    bh_buf_free(&b);
}

/* A buffer freed with data in it and no slice pinning its block gives the
 * block to the cache: the next connection's buffer reads into it. */
static void freed_unshared_block_is_reused_without_allocating(void **state)
{
    (void)state;
    bh_buf a, b;
    buf_with_empty_block(&a, 4096);
    assert_int_equal(bh_buf_append(&a, "left over", 9), BH_OK);
    const uint8_t *first = bh_buf_data(&a);
    bh_buf_free(&a);
    assert_int_equal(cache_stats().blocks, 1);

    size_t allocs = test_alloc_stats_now().allocs;
    uint8_t *spare;
    test_buf_reserved(&b, 4096, 4096, &spare, NULL);
    assert_ptr_equal(spare, first);
    assert_int_equal(test_alloc_stats_now().allocs, allocs);
    bh_buf_free(&b);
}

/* A block a slice still pins is not cached by bh_buf_free(): the slice's
 * release frees it. */
static void freed_block_pinned_by_a_slice_is_not_cached(void **state)
{
    (void)state;
    bh_buf a;
    bh_bytes slice = {0};
    buf_with_empty_block(&a, 4096);
    assert_int_equal(bh_buf_append(&a, "frame", 5), BH_OK);
    assert_int_equal(bh_buf_split_prefix(&a, 3, &slice), BH_OK);
    size_t live = test_alloc_stats_now().live;
    bh_buf_free(&a);
    assert_int_equal(cache_stats().blocks, 0);
    assert_int_equal(test_alloc_stats_now().live, live);
    bh_bytes_release(&slice);
    assert_int_equal(test_alloc_stats_now().live, live - 1);
}

static void block_too_small_for_the_request_is_a_miss_and_stays_cached(void **state)
{
    (void)state;
    bh_buf a, b;
    buf_with_empty_block(&a, 128);
    assert_int_equal(bh_buf_recycle(&a), BH_OK);

    size_t allocs = test_alloc_stats_now().allocs;
    uint64_t misses = cache_stats().misses;
    buf_with_empty_block(&b, 8192);
    assert_int_equal(test_alloc_stats_now().allocs, allocs + 1);
    assert_int_equal(cache_stats().misses, misses + 1);
    assert_int_equal(cache_stats().blocks, 1);
    bh_buf_free(&b);
}

static void recycle_refuses_a_buffer_holding_data_and_changes_nothing(void **state)
{
    (void)state;
    bh_buf b;
    assert_int_equal(bh_buf_init(&b, 1024), BH_OK);
    assert_int_equal(bh_buf_append(&b, "abc", 3), BH_OK);
    assert_int_equal(bh_buf_recycle(&b), BH_ERANGE);
    assert_int_equal(bh_buf_len(&b), 3);
    assert_memory_equal(bh_buf_data(&b), "abc", 3);
    assert_int_equal(cache_stats().blocks, 0);
    assert_int_equal(bh_buf_recycle(NULL), BH_EINVAL);
    bh_buf_free(&b);
    assert_int_equal(bh_buf_recycle(&b), BH_OK); /* no block: nothing to do */
}

/* A block still pinned by a slice is cached with the window behind the
 * slice: the next buffer writes there and the slice's bytes stay intact;
 * once the slice is gone the whole block is handed out again. */
static void pinned_block_lends_only_the_window_behind_its_slices(void **state)
{
    (void)state;
    bh_buf a, b;
    bh_bytes slice = {0};
    recycled_behind_slice(&a, 1024, "hello\n", 6, &slice);
    assert_int_equal(cache_stats().blocks, 1);

    size_t allocs = test_alloc_stats_now().allocs;
    uint8_t *spare;
    test_buf_reserved(&b, 1024, 64, &spare, NULL);
    assert_ptr_equal(spare, slice.ptr + slice.len);
    assert_int_equal(test_alloc_stats_now().allocs, allocs);
    assert_int_equal(bh_buf_append(&b, "world\n", 6), BH_OK);
    assert_memory_equal(slice.ptr, "hello\n", 6);

    assert_int_equal(bh_buf_advance(&b, 6), BH_OK);
    assert_int_equal(bh_buf_recycle(&b), BH_OK);
    bh_bytes_release(&slice);
    assert_int_equal(bh_buf_reserve(&b, 64, &spare, NULL), BH_OK);
    assert_ptr_equal(spare, bh_buf_data(&b));
    assert_int_equal(test_alloc_stats_now().allocs, allocs);
    assert_int_equal(cache_stats().hits, 2);
    bh_buf_free(&b);
    bh_buf_free(&a);
}

static void pinned_window_smaller_than_the_request_is_not_handed_out(void **state)
{
    (void)state;
    bh_buf a, b;
    bh_bytes slice = {0};
    uint8_t fill[200] = {0};
    recycled_behind_slice(&a, 256, fill, sizeof fill, &slice);

    uint64_t misses = cache_stats().misses;
    test_buf_reserved(&b, 1024, 128, NULL, NULL); /* 56 left: miss */
    assert_int_equal(cache_stats().misses, misses + 1);
    assert_int_equal(cache_stats().blocks, 1);
    bh_bytes_release(&slice);
    bh_buf_free(&b);
}

/* A mutable prefix's window ends where its parent's begins: recycling it
 * must not lend the parent's bytes to another buffer. */
static void emptied_mutable_prefix_is_not_cached_over_its_parent(void **state)
{
    (void)state;
    bh_buf parent, prefix, other;
    buf_with_empty_block(&parent, 256);
    assert_int_equal(bh_buf_append(&parent, "headbody", 8), BH_OK);
    assert_int_equal(bh_buf_split_prefix_mut(&parent, 4, &prefix), BH_OK);
    assert_int_equal(bh_buf_advance(&prefix, 4), BH_OK);
    assert_int_equal(bh_buf_recycle(&prefix), BH_OK);
    assert_int_equal(cache_stats().blocks, 0);

    assert_int_equal(bh_buf_init(&other, 256), BH_OK);
    assert_int_equal(bh_buf_append(&other, "XXXXXXXX", 8), BH_OK);
    assert_memory_equal(bh_buf_data(&parent), "body", 4);
    bh_buf_free(&other);
    bh_buf_free(&parent);
}

static void count_bound_evicts_the_oldest_block(void **state)
{
    (void)state;
    assert_int_equal(bh_block_cache_set_limits(2, 1 << 20), BH_OK);
    bh_buf b[3];
    for (int i = 0; i < 3; i++)
        buf_with_empty_block(&b[i], 512);
    size_t live = test_alloc_stats_now().live;
    for (int i = 0; i < 3; i++)
        assert_int_equal(bh_buf_recycle(&b[i]), BH_OK);
    struct bh_block_cache_stats cs = cache_stats();
    assert_int_equal(cs.blocks, 2);
    assert_int_equal(cs.evictions, 1);
    assert_int_equal(cs.puts, 3);
    /* one block freed, the entry table added */
    assert_int_equal(test_alloc_stats_now().live, live);
}

static void byte_bound_evicts_until_the_new_block_fits(void **state)
{
    (void)state;
    assert_int_equal(bh_block_cache_set_limits(16, 2500), BH_OK);
    bh_buf b[3];
    for (int i = 0; i < 3; i++)
        buf_with_empty_block(&b[i], 1000);
    for (int i = 0; i < 3; i++)
        assert_int_equal(bh_buf_recycle(&b[i]), BH_OK);
    struct bh_block_cache_stats cs = cache_stats();
    assert_int_equal(cs.blocks, 2);
    assert_int_equal(cs.bytes, 2000);
    assert_int_equal(cs.evictions, 1);
}

static void block_larger_than_the_byte_bound_is_freed_not_cached(void **state)
{
    (void)state;
    assert_int_equal(bh_block_cache_set_limits(16, 1000), BH_OK);
    bh_buf b;
    buf_with_empty_block(&b, 4096);
    size_t live = test_alloc_stats_now().live;
    assert_int_equal(bh_buf_recycle(&b), BH_OK);
    assert_int_equal(cache_stats().blocks, 0);
    assert_int_equal(cache_stats().refused, 1);
    assert_int_equal(test_alloc_stats_now().live, live - 1);
}

static void zero_bounds_disable_the_cache(void **state)
{
    (void)state;
    bh_buf b;
    buf_with_empty_block(&b, 256);
    assert_int_equal(bh_buf_recycle(&b), BH_OK);
    assert_int_equal(cache_stats().blocks, 1);
    assert_int_equal(bh_block_cache_set_limits(0, 0), BH_OK); /* drops what it holds */
    assert_int_equal(cache_stats().blocks, 0);
    assert_int_equal(test_alloc_stats_now().live, 0);
    buf_with_empty_block(&b, 256);
    assert_int_equal(bh_buf_recycle(&b), BH_OK);
    assert_int_equal(cache_stats().blocks, 0);
    assert_int_equal(test_alloc_stats_now().live, 0);
}

static void trim_frees_every_cached_block_and_the_table(void **state)
{
    (void)state;
    bh_buf b[4];
    bh_bytes pin = {0};
    for (int i = 0; i < 4; i++)
        buf_with_empty_block(&b[i], 300);
    assert_int_equal(bh_buf_append(&b[3], "x", 1), BH_OK);
    assert_int_equal(bh_buf_split_prefix(&b[3], 1, &pin), BH_OK);
    for (int i = 0; i < 4; i++)
        assert_int_equal(bh_buf_recycle(&b[i]), BH_OK);
    assert_int_equal(cache_stats().blocks, 4);
    bh_thread_cache_trim();
    assert_int_equal(cache_stats().blocks, 0);
    assert_int_equal(cache_stats().bytes, 0);
    assert_int_equal(test_alloc_stats_now().live, 1); /* the pinned block, held by its slice */
    assert_memory_equal(pin.ptr, "x", 1);
    bh_bytes_release(&pin);
    assert_int_equal(test_alloc_stats_now().live, 0);
}

static void set_allocator_trims_the_calling_threads_cache(void **state)
{
    (void)state;
    bh_buf b;
    buf_with_empty_block(&b, 256);
    assert_int_equal(bh_buf_recycle(&b), BH_OK);
    bh_set_allocator(NULL); /* the cached block goes back to the counting hook */
    assert_int_equal(cache_stats().blocks, 0);
    assert_int_equal(test_alloc_stats_now().live, 0);
    test_alloc_install(0);
}

static void bh_trim_empties_the_cache(void **state)
{
    (void)state;
    bh_buf b;
    buf_with_empty_block(&b, 256);
    assert_int_equal(bh_buf_recycle(&b), BH_OK);
    bh_trim();
    assert_int_equal(cache_stats().blocks, 0);
    assert_int_equal(test_alloc_stats_now().live, 0);
}

/* The first block taken in allocates the entry table; when that fails the
 * block is freed instead and the buffer is empty and usable. */
static void failed_table_allocation_frees_the_block_and_leaves_the_buffer_usable(void **state)
{
    (void)state;
    bh_buf b;
    buf_with_empty_block(&b, 256);
    test_alloc_fail_after(0);
    assert_int_equal(bh_buf_recycle(&b), BH_OK);
    assert_int_equal(cache_stats().blocks, 0);
    assert_int_equal(cache_stats().refused, 1);
    assert_int_equal(test_alloc_stats_now().live, 0);
    assert_int_equal(bh_buf_append(&b, "ok", 2), BH_OK);
    assert_memory_equal(bh_buf_data(&b), "ok", 2);
    bh_buf_free(&b);
}

/* When the cache has nothing and the allocation fails, reserve reports
 * BH_ENOMEM and the buffer stays empty. */
static void miss_with_failing_allocation_reports_enomem(void **state)
{
    (void)state;
    bh_buf b;
    assert_int_equal(bh_buf_init(&b, 4096), BH_OK);
    test_alloc_fail_after(0);
    assert_int_equal(bh_buf_reserve(&b, 100, NULL, NULL), BH_ENOMEM);
    assert_int_equal(bh_buf_len(&b), 0);
    assert_int_equal(cache_stats().misses, 1);
}

/* ---- threads ---- */

typedef struct thread_job {
    int failures;       /* calls that did not return BH_OK (no cmocka asserts
                           off the main thread) */
    size_t blocks_seen; /* the thread's cache size after recycling */
    uint64_t hits;      /* its hits after reusing */
} thread_job;

static void *thread_recycles_and_exits(void *arg)
{
    thread_job *job = arg;
    bh_buf b[3];
    for (int i = 0; i < 3; i++) {
        job->failures += bh_buf_init(&b[i], 2048) != BH_OK;
        job->failures += bh_buf_reserve(&b[i], 2048, NULL, NULL) != BH_OK;
    }
    for (int i = 0; i < 3; i++)
        job->failures += bh_buf_recycle(&b[i]) != BH_OK;
    struct bh_block_cache_stats cs;
    bh_block_cache_stats(&cs);
    job->blocks_seen = cs.blocks;
    job->failures += bh_buf_reserve(&b[0], 2048, NULL, NULL) != BH_OK;
    bh_block_cache_stats(&cs);
    job->hits = cs.hits;
    bh_buf_free(&b[0]);
    return NULL; /* the two blocks left are freed by the thread-exit destructor */
}

static void each_thread_has_its_own_cache_freed_when_it_exits(void **state)
{
    (void)state;
    bh_buf mine;
    buf_with_empty_block(&mine, 2048);
    assert_int_equal(bh_buf_recycle(&mine), BH_OK);

    thread_job jobs[2] = {{0, 0, 0}, {0, 0, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, thread_recycles_and_exits, &jobs[i]), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(jobs[i].failures, 0);
        assert_int_equal(jobs[i].blocks_seen, 3);
        assert_int_equal(jobs[i].hits, 1);
    }
    struct bh_block_cache_stats cs = cache_stats();
    assert_int_equal(cs.blocks, 1); /* only this thread's block */
    assert_int_equal(cs.hits, 0);
    assert_int_equal(cs.puts, 1);
    assert_int_equal(test_alloc_stats_now().live, 2); /* this thread's block and table */
}

/* A slice cut on one thread, released on another while its block sits in
 * the first thread's cache: the block is then handed out whole. */
static void *release_slice(void *arg)
{
    bh_bytes_release(arg);
    return NULL;
}

static void pinned_block_released_by_another_thread_is_reused_whole(void **state)
{
    (void)state;
    bh_buf b;
    bh_bytes slice = {0};
    buf_with_empty_block(&b, 512);
    assert_int_equal(bh_buf_append(&b, "frame\n", 6), BH_OK);
    assert_int_equal(bh_buf_split_prefix(&b, 6, &slice), BH_OK);
    const uint8_t *base = slice.ptr;
    assert_int_equal(bh_buf_recycle(&b), BH_OK);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, release_slice, &slice), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    uint8_t *spare;
    assert_int_equal(bh_buf_reserve(&b, 512, &spare, NULL), BH_OK);
    assert_ptr_equal(spare, base);
    bh_buf_free(&b);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, test_alloc_finish_teardown)
TEST_MAIN(T(recycled_block_is_reused_without_allocating),
          T(freed_unshared_block_is_reused_without_allocating),
          T(freed_block_pinned_by_a_slice_is_not_cached),
          T(block_too_small_for_the_request_is_a_miss_and_stays_cached),
          T(recycle_refuses_a_buffer_holding_data_and_changes_nothing),
          T(pinned_block_lends_only_the_window_behind_its_slices),
          T(pinned_window_smaller_than_the_request_is_not_handed_out),
          T(emptied_mutable_prefix_is_not_cached_over_its_parent),
          T(count_bound_evicts_the_oldest_block),
          T(byte_bound_evicts_until_the_new_block_fits),
          T(block_larger_than_the_byte_bound_is_freed_not_cached),
          T(zero_bounds_disable_the_cache),
          T(trim_frees_every_cached_block_and_the_table),
          T(set_allocator_trims_the_calling_threads_cache),
          T(bh_trim_empties_the_cache),
          T(failed_table_allocation_frees_the_block_and_leaves_the_buffer_usable),
          T(miss_with_failing_allocation_reports_enomem),
          T(each_thread_has_its_own_cache_freed_when_it_exits),
          T(pinned_block_released_by_another_thread_is_reused_whole))
#undef T
