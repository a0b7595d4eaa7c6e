/* malloc_count.c - an LD_PRELOAD module for the churn scenario's counting
 * pass: counts every heap allocation of the process (malloc, calloc, realloc,
 * posix_memalign, aligned_alloc; all threads), whoever makes it (the
 * library, libuv, libevent, the proxy itself), so implementations compare on
 * one footing. glibc's own entry points (__libc_malloc, ...) do the work.
 * At exit it appends "allocs N PROGRAM" to the file named by
 * BH_MALLOC_COUNT_FILE (a wrapper such as strace, preloaded too, appends its
 * own line).
 * Used only by bench/run-stream-harness.sh --count; never linked. */
#define _GNU_SOURCE /* program_invocation_short_name */
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t m);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t align, size_t n);

static atomic_ulong g_allocs;

void *malloc(size_t n)
{
    atomic_fetch_add_explicit(&g_allocs, 1, memory_order_relaxed);
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t m)
{
    atomic_fetch_add_explicit(&g_allocs, 1, memory_order_relaxed);
    return __libc_calloc(n, m);
}

void *realloc(void *p, size_t n)
{
    atomic_fetch_add_explicit(&g_allocs, 1, memory_order_relaxed);
    return __libc_realloc(p, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    atomic_fetch_add_explicit(&g_allocs, 1, memory_order_relaxed);
    void *p = __libc_memalign(align, n);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

void *aligned_alloc(size_t align, size_t n)
{
    atomic_fetch_add_explicit(&g_allocs, 1, memory_order_relaxed);
    return __libc_memalign(align, n);
}

__attribute__((destructor)) static void report(void)
{
    const char *path = getenv("BH_MALLOC_COUNT_FILE");
    if (!path || !*path)
        return;
    FILE *f = fopen(path, "a");
    if (!f)
        return;
    fprintf(f, "allocs %lu %s\n", atomic_load(&g_allocs), program_invocation_short_name);
    fclose(f);
}
