/* alloc.c - the process-wide allocator hook (see bytes_handoff/alloc.h):
 * the hook in use, bh_get_allocator(), bh_malloc/bh_realloc/bh_free, and the
 * two internal calls thread_cache.c makes (alloc_internal.h). A leaf: it
 * calls nothing else in the library. bh_set_allocator() is defined in
 * thread_cache.c, since it must empty the thread's caches (memory from the
 * old hook) before it installs the new hook here. */
#include <stdlib.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <bytes_handoff/alloc.h>

#include "alloc_internal.h"

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

void bh__alloc_install(const bh_allocator *a)
{
    if (a && a->malloc_fn && a->realloc_fn && a->free_fn) {
        g_alloc = *a;
    } else {
        g_alloc.malloc_fn = default_malloc;
        g_alloc.realloc_fn = default_realloc;
        g_alloc.free_fn = default_free;
        g_alloc.ctx = NULL;
    }
}

void bh__alloc_give_back(void)
{
#if defined(__GLIBC__)
    /* Only memory that malloc() handed out can be trimmed by malloc_trim(). */
    if (g_alloc.malloc_fn == default_malloc)
        malloc_trim(0);
#endif
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
