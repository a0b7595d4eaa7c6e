/* test_alloc.c - the allocator hook routes every library allocation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include <bytes_handoff.h>

#include "test_alloc.h"
#include "test_main.h"

static size_t g_mallocs, g_frees;

static void *count_malloc(void *ctx, size_t n)
{
    (void)ctx;
    g_mallocs++;
    return malloc(n);
}
static void *count_realloc(void *ctx, void *p, size_t n)
{
    (void)ctx;
    g_mallocs++;
    return realloc(p, n);
}
static void count_free(void *ctx, void *p)
{
    (void)ctx;
    if (p)
        g_frees++;
    free(p);
}

static void installed_hook_sees_bytes_and_buf_allocations(void **state)
{
    (void)state;
    bh_allocator a = {count_malloc, count_realloc, count_free, NULL};
    g_mallocs = g_frees = 0;
    bh_set_allocator(&a);
    bh_bytes b;
    assert_int_equal(bh_bytes_copy(&b, "abc", 3), BH_OK);
    bh_buf buf;
    assert_int_equal(bh_buf_init(&buf, 1024), BH_OK);
    assert_int_equal(bh_buf_append(&buf, "hello", 5), BH_OK);
    bh_buf_free(&buf);
    bh_bytes_release(&b);
    bh_set_allocator(NULL); /* empties the thread's caches through the old hook */
    /* The slice, the buffer's block and the block cache's entry table (the
     * freed block went to the cache), all given back through the hook. */
    assert_int_equal(g_mallocs, 3);
    assert_int_equal(g_frees, 3);
}

static void get_allocator_returns_installed_hook(void **state)
{
    (void)state;
    bh_allocator a = {count_malloc, count_realloc, count_free, &g_mallocs};
    bh_allocator got;
    bh_set_allocator(&a);
    bh_get_allocator(&got);
    assert_ptr_equal(got.malloc_fn, count_malloc);
    assert_ptr_equal(got.ctx, &g_mallocs);
    bh_set_allocator(NULL);
    bh_get_allocator(&got);
    assert_ptr_not_equal(got.malloc_fn, count_malloc);
}

static void incomplete_hook_restores_default(void **state)
{
    (void)state;
    bh_allocator a = {count_malloc, NULL, count_free, NULL};
    bh_allocator got;
    bh_set_allocator(&a);
    bh_get_allocator(&got);
    assert_ptr_not_equal(got.malloc_fn, count_malloc);
}

TEST_MAIN(test_alloc_checked(installed_hook_sees_bytes_and_buf_allocations),
          test_alloc_checked(get_allocator_returns_installed_hook),
          test_alloc_checked(incomplete_hook_restores_default))
