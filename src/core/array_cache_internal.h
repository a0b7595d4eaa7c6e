/* array_cache_internal.h - the per-thread cache of small queue arrays (ring
 * and batch arrays of drained bh_queues, see array_cache.c): what the queue
 * core gives back and takes again, and the view the tests use. */
#ifndef BH_ARRAY_CACHE_INTERNAL_H
#define BH_ARRAY_CACHE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* Kinds of arrays; each kind has its own table, so an array only ever goes
 * back to the use it was allocated for. */
enum { BH_ARRAY_RING = 0, BH_ARRAY_IOV = 1, BH_ARRAY_KINDS = 2 };

/* Bounds of every thread's cache: arrays per kind, bytes of one array (a
 * larger one is freed instead) and bytes of all cached arrays together. */
#define BH_ARRAY_CACHE_MAX_ARRAYS ((size_t)32)
#define BH_ARRAY_CACHE_MAX_ARRAY_BYTES ((size_t)4096)
#define BH_ARRAY_CACHE_MAX_BYTES ((size_t)96 * 1024)

/* Takes array p of `bytes` bytes (allocated through the hook); frees it at
 * once when it is larger than one array may be or a bound is reached. Called
 * through bh__thread_cache_put_array() (thread_cache_internal.h), which
 * first arms the thread-exit cleanup. */
void bh__array_cache_put(int kind, void *p, size_t bytes);

/* Hands out the largest cached array of kind with at most max_bytes bytes
 * (the newest among equals) and stores its size in *bytes; NULL when none
 * fits. The caller owns it. Allocates nothing. */
void *bh__array_cache_take(int kind, size_t max_bytes, size_t *bytes);

/* Frees every cached array of the calling thread (thread_cache.c:
 * bh_thread_cache_trim(), exit). */
void bh__array_cache_trim(void);

/* The calling thread's cache, for tests. */
typedef struct bh__array_cache_stats {
    size_t arrays[BH_ARRAY_KINDS]; /* held now, per kind */
    size_t bytes;                  /* their bytes, all kinds */
    uint64_t puts, hits, refused;  /* kept, handed out, freed instead of kept */
} bh__array_cache_stats;

void bh__array_cache_stats_get(bh__array_cache_stats *out);

#endif
