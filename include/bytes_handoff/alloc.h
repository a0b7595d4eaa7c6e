/* alloc.h - the allocator hook every library allocation goes through.
 *
 * The hook is process-wide. Install it before any other library call and do
 * not change it while blocks allocated through an earlier hook are alive: a
 * block is always freed through the hook that is current at release time.
 * Tests use it to count allocations and to fail the Nth one. */
#ifndef BYTES_HANDOFF_ALLOC_H
#define BYTES_HANDOFF_ALLOC_H

#include <stddef.h>

#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bh_allocator {
    void *(*malloc_fn)(void *ctx, size_t size);           /* NULL on failure */
    void *(*realloc_fn)(void *ctx, void *p, size_t size); /* NULL on failure, p kept */
    void (*free_fn)(void *ctx, void *p);                  /* p may be NULL */
    void *ctx;
} bh_allocator;

/* Installs *a (copied; a may go out of scope). NULL restores malloc/realloc/
 * free. All three function pointers must be set. Not thread-safe: call it
 * before other threads use the library. Trims the calling thread's block
 * cache first (its blocks came from the previous hook); other threads that
 * used buffers must have called bh_block_cache_trim(). */
BH_EXPORT void bh_set_allocator(const bh_allocator *a);

/* Copies the current allocator into *out. */
BH_EXPORT void bh_get_allocator(bh_allocator *out);

/* Allocate, resize and free through the current hook. The adapter libraries
 * (and users who want their memory counted with the library's) use these, so
 * a test's failing allocator reaches every allocation. A size of 0 is treated
 * as 1. bh_realloc() returns NULL on failure and leaves p valid;
 * bh_free(NULL) does nothing. Same thread rules as the hook itself. */
BH_EXPORT void *bh_malloc(size_t n);
BH_EXPORT void *bh_realloc(void *p, size_t n);
BH_EXPORT void bh_free(void *p);

#ifdef __cplusplus
}
#endif

#endif
