/** @file bytes_handoff/alloc.h
 * @brief The allocator hook every library allocation goes through.
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

/** The three allocation functions and their context. All three must be set.
 * @since 0.1 */
typedef struct bh_allocator {
    /** Allocates size bytes; NULL on failure. */
    void *(*malloc_fn)(void *ctx, size_t size);
    /** Resizes p to size bytes; NULL on failure, p then stays valid. */
    void *(*realloc_fn)(void *ctx, void *p, size_t size);
    /** Frees p; p may be NULL. */
    void (*free_fn)(void *ctx, void *p);
    /** Passed as the first argument of each function. */
    void *ctx;
} bh_allocator;

/** Installs an allocator for every later library allocation.
 * @param a the allocator, copied (it may go out of scope); NULL restores
 *          malloc/realloc/free. All three function pointers must be set.
 * Not thread-safe: call it before other threads use the library. Trims the
 * calling thread's block cache first (its blocks came from the previous
 * hook); other threads that used buffers must have called
 * bh_thread_cache_trim().
 * @since 0.1 */
BH_EXPORT void bh_set_allocator(const bh_allocator *a);

/** Copies the current allocator.
 * @param out receives the hook in use (the libc one when none was set).
 * @since 0.1 */
BH_EXPORT void bh_get_allocator(bh_allocator *out);

/** Allocates through the current hook. The adapter library (and users who
 * want their memory counted with the library's) use it, so a test's failing
 * allocator reaches every allocation.
 * @param n bytes wanted; 0 is treated as 1.
 * @return the block, or NULL when the hook failed. Same thread rules as the
 *         hook itself.
 * @since 0.2 */
BH_EXPORT void *bh_malloc(size_t n);

/** Resizes a block from bh_malloc() through the current hook.
 * @param p the block (NULL behaves like bh_malloc()).
 * @param n new size in bytes; 0 is treated as 1.
 * @return the moved or grown block, or NULL on failure with p still valid
 *         and still owned by the caller.
 * @since 0.2 */
BH_EXPORT void *bh_realloc(void *p, size_t n);

/** Frees a block from bh_malloc()/bh_realloc() through the current hook.
 * @param p the block; NULL does nothing.
 * @since 0.2 */
BH_EXPORT void bh_free(void *p);

#ifdef __cplusplus
}
#endif

#endif
