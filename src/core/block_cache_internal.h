/* block_cache_internal.h - how bh_buf hands blocks to the calling thread's
 * block cache and takes them back (see bytes_handoff/block_cache.h). */
#ifndef BH_BLOCK_CACHE_INTERNAL_H
#define BH_BLOCK_CACHE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <bytes_handoff/bytes.h>

/* Takes the caller's reference to block s, whose bytes from start to its end
 * nobody else uses (start == base when the caller held the only reference).
 * When the cache cannot keep it the reference is dropped instead. Called
 * through bh__thread_cache_put_block() (thread_cache_internal.h), which
 * first arms the thread-exit cleanup. */
void bh__block_cache_put(bh_shared *s, uint8_t *start);

/* Hands out a cached block with its window: an unshared one holding at least
 * `whole` bytes, or one still pinned by slices whose window behind them
 * holds at least `pinned` bytes (and at least one). The caller receives the
 * cache's reference. NULL when none fits. */
bh_shared *bh__block_cache_take(size_t whole, size_t pinned, uint8_t **start);

/* Drops every block of the calling thread's cache and frees its entry
 * table; the bounds stay (thread_cache.c: bh_thread_cache_trim(), exit). */
void bh__block_cache_trim(void);

/* Counts a buffer that found no block and allocates one instead. */
void bh__block_cache_miss(void);

#endif
