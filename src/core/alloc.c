/* alloc.c - the process-wide allocator hook (see bytes_handoff/alloc.h) and
 * bh_trim(), which gives memory back after load. */
#include <stdlib.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <bytes_handoff/alloc.h>
#include <bytes_handoff/block_cache.h>

#include "internal.h"

static void *default_malloc(void *ctx, size_t n)
{
    (void)ctx;
    return malloc(n);
}

static void *default_realloc(void *ctx, void *p, size_t n)
{
    (void)ctx;
    return realloc(p, n);
}

static void default_free(void *ctx, void *p)
{
    (void)ctx;
    free(p);
}

static bh_allocator g_alloc = {default_malloc, default_realloc, default_free, NULL};

void bh_set_allocator(const bh_allocator *a)
{
    /* Cached blocks came from the current hook and must go back to it. */
    bh_thread_cache_trim();
    if (a && a->malloc_fn && a->realloc_fn && a->free_fn) {
        g_alloc = *a;
    } else {
        g_alloc.malloc_fn = default_malloc;
        g_alloc.realloc_fn = default_realloc;
        g_alloc.free_fn = default_free;
        g_alloc.ctx = NULL;
    }
}

void bh_get_allocator(bh_allocator *out)
{
    if (out)
        *out = g_alloc;
}

void *bh_malloc(size_t n) { return g_alloc.malloc_fn(g_alloc.ctx, n ? n : 1); }

void *bh_realloc(void *p, size_t n) { return g_alloc.realloc_fn(g_alloc.ctx, p, n ? n : 1); }

void bh_free(void *p)
{
    if (p)
        g_alloc.free_fn(g_alloc.ctx, p);
}

void bh_trim(void)
{
    bh_thread_cache_trim();
#if defined(__GLIBC__)
    /* Only memory that malloc() handed out can be trimmed by malloc_trim(). */
    if (g_alloc.malloc_fn == default_malloc)
        malloc_trim(0);
#endif
}
