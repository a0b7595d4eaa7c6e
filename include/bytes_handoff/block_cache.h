/** @file bytes_handoff/block_cache.h
 * @brief The per-thread cache of idle buffer blocks.
 *
 * A buffer that is empty between reads need not hold memory: it hands its
 * block to the cache of the calling thread (bh_buf_recycle(), done by
 * bh_reader after each read callback) and takes one again from there when it
 * next needs room (bh_buf_reserve() or bh_buf_reserve_read() on a buffer
 * without a block). So an idle connection holds no read block, and a busy
 * one does not call malloc/free per read: a block comes back to the cache
 * after one read and leaves it for the next.
 *
 * The cache holds references, not only free blocks: a block that slices
 * split off earlier still pin is cached with the window behind them, and the
 * next buffer reads into that window as the first one would have (so pinned
 * memory stays about one read's worth per block); once the slices are gone
 * the whole block is reused. The bytes a cached block pins are never
 * touched.
 *
 * Each thread has its own cache (no locks; a buffer uses the cache of the
 * thread calling into it), bounded in blocks and bytes: a block that would
 * exceed a bound evicts the oldest entries, and a block larger than the byte
 * bound is freed instead. Blocks freed by bh_buf_free() (a connection
 * closing) never enter the cache. A thread's cached blocks are freed when the
 * thread exits (not for the main thread, which should call
 * bh_thread_cache_trim() before exit() if it checks for leaks) and when it
 * calls bh_thread_cache_trim() or bh_trim() (thread_cache.h, included here),
 * which also empty the thread's cache of queue arrays. All memory comes from
 * the allocator hook; bh_set_allocator() trims the calling thread's caches
 * first, and other threads must trim theirs before the hook changes. */
#ifndef BYTES_HANDOFF_BLOCK_CACHE_H
#define BYTES_HANDOFF_BLOCK_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "export.h"
#include "thread_cache.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Default bound of every thread's cache in blocks. */
#define BH_BLOCK_CACHE_MAX_BLOCKS_DEFAULT ((size_t)64)
/** Default bound of every thread's cache in data bytes (1 MiB). */
#define BH_BLOCK_CACHE_MAX_BYTES_DEFAULT ((size_t)1024 * 1024)

/** Counters of the calling thread's cache, filled by bh_block_cache_stats().
 * @since 0.2 */
struct bh_block_cache_stats {
    size_t blocks;      /**< blocks held now */
    size_t bytes;       /**< their data bytes (whole blocks, pinned or not) */
    size_t max_blocks;  /**< bound in effect: blocks */
    size_t max_bytes;   /**< bound in effect: bytes */
    uint64_t hits;      /**< buffers given a cached block */
    uint64_t misses;    /**< buffers that found none that fits (then allocated) */
    uint64_t puts;      /**< blocks taken in */
    uint64_t evictions; /**< blocks dropped to stay within the bounds */
    uint64_t refused;   /**< blocks not taken (too large, bound 0, no memory) */
};

/** Sets the calling thread's bounds and drops entries beyond them at once.
 * The entry table (16 bytes per block, grown by doubling from 8 entries) is
 * allocated when blocks are taken in.
 * @param max_blocks most blocks held; 0 (or max_bytes 0) disables the cache.
 * @param max_bytes most data bytes held; a larger block is never cached.
 * @return #BH_OK.
 * @since 0.2 */
BH_EXPORT int bh_block_cache_set_limits(size_t max_blocks, size_t max_bytes);

/** Snapshot of the calling thread's counters.
 * @param out receives them; NULL is ignored.
 * @since 0.2 */
BH_EXPORT void bh_block_cache_stats(struct bh_block_cache_stats *out);

#ifdef __cplusplus
}
#endif

#endif
