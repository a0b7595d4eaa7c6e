/* test_bytes.c - bh_bytes: static, copied and owned slices, clone, slice,
 * release, refcounts across threads, allocation failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include <bytes_handoff.h>

#include "test_alloc.h"
#include "test_main.h"

static void static_slice_has_no_owner_and_allocates_nothing(void **state)
{
    (void)state;
    bh_bytes b = bh_bytes_static("abc", 3);
    bh_bytes c = bh_bytes_clone(&b);
    assert_ptr_equal(c.ptr, b.ptr);
    assert_int_equal(bh_bytes_refcount(&b), 0); /* no owner */
    assert_int_equal(bh_bytes_refcount(&b), 0);
    bh_bytes_release(&c);
    bh_bytes_release(&b);
    assert_null(b.ptr);
    assert_int_equal(test_alloc_stats_now().attempts, 0);
}

static void copy_duplicates_bytes_in_one_allocation(void **state)
{
    (void)state;
    char src[] = "payload";
    bh_bytes b;
    assert_int_equal(bh_bytes_copy(&b, src, 7), BH_OK);
    src[0] = 'X';
    assert_int_equal(b.len, 7);
    assert_memory_equal(b.ptr, "payload", 7);
    assert_int_equal(bh_bytes_refcount(&b), 1);
    assert_int_equal(test_alloc_stats_now().allocs, 1);
    bh_bytes_release(&b);
}

static void copy_of_zero_bytes_is_empty_without_allocation(void **state)
{
    (void)state;
    bh_bytes b;
    assert_int_equal(bh_bytes_copy(&b, NULL, 0), BH_OK);
    assert_int_equal(b.len, 0);
    assert_int_equal(bh_bytes_refcount(&b), 0); /* no owner */
    assert_int_equal(test_alloc_stats_now().attempts, 0);
}

static void copy_rejects_null_arguments(void **state)
{
    (void)state;
    bh_bytes b;
    assert_int_equal(bh_bytes_copy(NULL, "a", 1), BH_EINVAL);
    assert_int_equal(bh_bytes_copy(&b, NULL, 1), BH_EINVAL);
    assert_int_equal(b.len, 0);
}

static void copy_failure_returns_enomem_and_empty_slice(void **state)
{
    (void)state;
    bh_bytes b = bh_bytes_static("junk", 4);
    test_alloc_fail_after(0);
    assert_int_equal(bh_bytes_copy(&b, "abc", 3), BH_ENOMEM);
    assert_int_equal(b.len, 0);
    assert_int_equal(bh_bytes_refcount(&b), 0); /* no owner */
}

static void copy_of_huge_size_fails_cleanly(void **state)
{
    (void)state;
    bh_bytes b;
    assert_int_equal(bh_bytes_copy(&b, "x", SIZE_MAX), BH_ENOMEM);
    assert_int_equal(b.len, 0);
}

static int g_owned_frees;
static void owned_free(void *ctx, void *p)
{
    assert_ptr_equal(ctx, &g_owned_frees);
    g_owned_frees++;
    free(p);
}

static void from_owned_frees_through_callback_on_last_release(void **state)
{
    (void)state;
    g_owned_frees = 0;
    char *p = malloc(16);
    memcpy(p, "0123456789abcdef", 16);
    bh_bytes b, c, s;
    assert_int_equal(bh_bytes_from_owned(&b, p, 16, owned_free, &g_owned_frees), BH_OK);
    c = bh_bytes_clone(&b);
    assert_int_equal(bh_bytes_slice(&b, 10, 6, &s), BH_OK);
    assert_memory_equal(s.ptr, "abcdef", 6);
    bh_bytes_release(&b);
    bh_bytes_release(&c);
    assert_int_equal(g_owned_frees, 0);
    bh_bytes_release(&s);
    assert_int_equal(g_owned_frees, 1);
}

static void from_owned_failure_leaves_memory_with_caller(void **state)
{
    (void)state;
    g_owned_frees = 0;
    char *p = malloc(4);
    bh_bytes b;
    test_alloc_fail_after(0);
    assert_int_equal(bh_bytes_from_owned(&b, p, 4, owned_free, &g_owned_frees), BH_ENOMEM);
    assert_int_equal(g_owned_frees, 0);
    assert_int_equal(bh_bytes_from_owned(&b, p, 4, NULL, NULL), BH_EINVAL);
    free(p);
}

static void clone_shares_bytes_and_counts_references(void **state)
{
    (void)state;
    bh_bytes b;
    assert_int_equal(bh_bytes_copy(&b, "shared", 6), BH_OK);
    bh_bytes c = bh_bytes_clone(&b);
    assert_ptr_equal(c.ptr, b.ptr);
    assert_int_equal(bh_bytes_refcount(&b), 2);
    bh_bytes_release(&b);
    assert_int_equal(bh_bytes_refcount(&c), 1);
    assert_memory_equal(c.ptr, "shared", 6);
    bh_bytes_release(&c);
    assert_int_equal(bh_bytes_clone(NULL).len, 0);
}

static void slice_out_of_range_fails_and_leaves_out_untouched(void **state)
{
    (void)state;
    bh_bytes b, out = bh_bytes_static("keep", 4);
    assert_int_equal(bh_bytes_copy(&b, "0123456789", 10), BH_OK);
    assert_int_equal(bh_bytes_slice(&b, 5, 6, &out), BH_ERANGE);
    assert_int_equal(bh_bytes_slice(&b, 11, 0, &out), BH_ERANGE);
    assert_int_equal(bh_bytes_slice(&b, SIZE_MAX, 2, &out), BH_ERANGE);
    assert_int_equal(bh_bytes_slice(&b, 1, SIZE_MAX, &out), BH_ERANGE);
    assert_memory_equal(out.ptr, "keep", 4);
    assert_int_equal(bh_bytes_refcount(&b), 1);
    assert_int_equal(bh_bytes_slice(NULL, 0, 0, &out), BH_EINVAL);
    assert_int_equal(bh_bytes_slice(&b, 0, 0, NULL), BH_EINVAL);
    bh_bytes_release(&b);
}

static void slice_of_zero_bytes_is_empty_and_takes_no_reference(void **state)
{
    (void)state;
    bh_bytes b, out;
    assert_int_equal(bh_bytes_copy(&b, "0123456789", 10), BH_OK);
    assert_int_equal(bh_bytes_slice(&b, 10, 0, &out), BH_OK);
    assert_int_equal(out.len, 0);
    assert_int_equal(bh_bytes_refcount(&out), 0); /* no owner */
    assert_int_equal(bh_bytes_refcount(&b), 1);
    assert_int_equal(bh_bytes_slice(&b, 3, 4, &out), BH_OK);
    assert_memory_equal(out.ptr, "3456", 4);
    assert_int_equal(bh_bytes_refcount(&b), 2);
    bh_bytes_release(&b);
    bh_bytes_release(&out);
}

static void release_zeroes_and_ignores_null_and_empty(void **state)
{
    (void)state;
    bh_bytes b = {0};
    bh_bytes_release(&b);
    bh_bytes_release(NULL);
    assert_int_equal(bh_bytes_copy(&b, "x", 1), BH_OK);
    bh_bytes_release(&b);
    assert_null(b.ptr);
    assert_int_equal(b.len, 0);
    assert_int_equal(bh_bytes_refcount(&b), 0); /* no owner */
    bh_bytes_release(&b);
}

static void equal_compares_contents(void **state)
{
    (void)state;
    bh_bytes a = bh_bytes_static("abc", 3), b, e = {0};
    assert_int_equal(bh_bytes_copy(&b, "abc", 3), BH_OK);
    assert_true(bh_bytes_equal(&a, &b));
    assert_false(bh_bytes_equal(&a, &e));
    assert_true(bh_bytes_equal(&e, &e));
    bh_bytes_release(&b);
}

#define CLONES_PER_THREAD 10000
#define THREADS 4

static void *release_clones(void *arg)
{
    bh_bytes *clones = arg;
    for (size_t i = 0; i < CLONES_PER_THREAD; i++)
        bh_bytes_release(&clones[i]);
    return NULL;
}

static void clones_released_on_other_threads_free_exactly_once(void **state)
{
    (void)state;
    bh_bytes b;
    assert_int_equal(bh_bytes_copy(&b, "cross-thread", 12), BH_OK);
    bh_bytes *clones = calloc(THREADS * CLONES_PER_THREAD, sizeof *clones);
    for (size_t i = 0; i < THREADS * CLONES_PER_THREAD; i++)
        clones[i] = bh_bytes_clone(&b);
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, release_clones, clones + t * CLONES_PER_THREAD), 0);
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    assert_int_equal(bh_bytes_refcount(&b), 1);
    bh_bytes_release(&b);
    free(clones);
    assert_int_equal(test_alloc_stats_now().frees, 1);
}

#define T(f) cmocka_unit_test_setup_teardown(f, test_alloc_setup, test_alloc_teardown)

TEST_MAIN(T(static_slice_has_no_owner_and_allocates_nothing),
          T(copy_duplicates_bytes_in_one_allocation),
          T(copy_of_zero_bytes_is_empty_without_allocation),
          T(copy_rejects_null_arguments),
          T(copy_failure_returns_enomem_and_empty_slice),
          T(copy_of_huge_size_fails_cleanly),
          T(from_owned_frees_through_callback_on_last_release),
          T(from_owned_failure_leaves_memory_with_caller),
          T(clone_shares_bytes_and_counts_references),
          T(slice_out_of_range_fails_and_leaves_out_untouched),
          T(slice_of_zero_bytes_is_empty_and_takes_no_reference),
          T(release_zeroes_and_ignores_null_and_empty),
          T(equal_compares_contents),
          T(clones_released_on_other_threads_free_exactly_once))
