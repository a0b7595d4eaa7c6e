/* test_alloc.c - counting / failure-injecting bh_allocator for tests.
 * Counters are atomic so clones released on other threads are counted. */
#include "test_alloc.h"

#include <malloc.h>
#include <stdatomic.h>
#include <stdlib.h>

#include <bytes_handoff.h>

static atomic_size_t g_allocs, g_frees, g_live, g_failed, g_attempts;
static atomic_size_t g_live_bytes, g_peak_bytes, g_max_request, g_requested;
static atomic_size_t g_fail_at, g_size_limit;

static void bytes_add(size_t n)
{
    size_t now = atomic_fetch_add(&g_live_bytes, n) + n;
    size_t peak = atomic_load(&g_peak_bytes);
    while (now > peak && !atomic_compare_exchange_weak(&g_peak_bytes, &peak, now))
        ;
}

static atomic_int g_fail_all, g_installed;

static int should_fail(size_t size)
{
    size_t n = atomic_fetch_add(&g_attempts, 1) + 1;
    atomic_fetch_add(&g_requested, size);
    size_t max = atomic_load(&g_max_request);
    while (size > max && !atomic_compare_exchange_weak(&g_max_request, &max, size))
        ;
    size_t at = atomic_load(&g_fail_at);
    size_t limit = atomic_load(&g_size_limit);
    if (atomic_load(&g_fail_all) || (at != 0 && n == at) || (limit != 0 && size > limit)) {
        atomic_fetch_add(&g_failed, 1);
        return 1;
    }
    return 0;
}

static void *t_malloc(void *ctx, size_t n)
{
    (void)ctx;
    if (should_fail(n))
        return NULL;
    void *p = malloc(n);
    if (p) {
        atomic_fetch_add(&g_allocs, 1);
        atomic_fetch_add(&g_live, 1);
        bytes_add(malloc_usable_size(p));
    }
    return p;
}

static void *t_realloc(void *ctx, void *old, size_t n)
{
    (void)ctx;
    if (should_fail(n))
        return NULL;
    size_t before = old ? malloc_usable_size(old) : 0;
    void *p = realloc(old, n);
    if (p) {
        atomic_fetch_add(&g_allocs, 1);
        if (!old)
            atomic_fetch_add(&g_live, 1);
        bytes_add(malloc_usable_size(p)); /* the old block still counts here */
        atomic_fetch_sub(&g_live_bytes, before);
    }
    return p;
}

static void t_free(void *ctx, void *p)
{
    (void)ctx;
    if (!p)
        return;
    atomic_fetch_add(&g_frees, 1);
    atomic_fetch_sub(&g_live, 1);
    atomic_fetch_sub(&g_live_bytes, malloc_usable_size(p));
    free(p);
}

void test_alloc_install(size_t fail_at)
{
    /* Blocks this thread cached under the previous hook go back to it
     * before the counters start. */
    bh_thread_cache_trim();
    atomic_store(&g_allocs, 0);
    atomic_store(&g_frees, 0);
    atomic_store(&g_live, 0);
    atomic_store(&g_failed, 0);
    atomic_store(&g_attempts, 0);
    atomic_store(&g_live_bytes, 0);
    atomic_store(&g_peak_bytes, 0);
    atomic_store(&g_max_request, 0);
    atomic_store(&g_requested, 0);
    atomic_store(&g_fail_at, fail_at);
    atomic_store(&g_fail_all, 0);
    atomic_store(&g_size_limit, 0);
    bh_allocator a = {t_malloc, t_realloc, t_free, NULL};
    bh_set_allocator(&a);
    atomic_store(&g_installed, 1);
}

void test_alloc_fail_after(size_t after)
{
    atomic_store(&g_fail_at, atomic_load(&g_attempts) + after + 1);
}

void test_alloc_fail_all(int on) { atomic_store(&g_fail_all, on); }

void test_alloc_limit_size(size_t max) { atomic_store(&g_size_limit, max); }

void test_alloc_stats_get(test_alloc_stats *out)
{
    out->allocs = atomic_load(&g_allocs);
    out->frees = atomic_load(&g_frees);
    out->live = atomic_load(&g_live);
    out->failed = atomic_load(&g_failed);
    out->attempts = atomic_load(&g_attempts);
    out->live_bytes = atomic_load(&g_live_bytes);
    out->peak_bytes = atomic_load(&g_peak_bytes);
    out->max_request = atomic_load(&g_max_request);
    out->requested_bytes = atomic_load(&g_requested);
}

test_alloc_stats test_alloc_stats_now(void)
{
    test_alloc_stats st;
    test_alloc_stats_get(&st);
    return st;
}

void test_alloc_reset_peak(void) { atomic_store(&g_peak_bytes, atomic_load(&g_live_bytes)); }

void test_alloc_uninstall(void)
{
    bh_set_allocator(NULL);
    atomic_store(&g_installed, 0);
}

int test_alloc_installed(void) { return atomic_load(&g_installed); }
