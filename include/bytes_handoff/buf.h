/** @file bytes_handoff/buf.h
 * @brief bh_buf, a growable mutable byte buffer with a hard length cap.
 *
 * A bh_buf is a window [data, data+len) followed by spare capacity on a
 * refcounted block. Splitting a prefix hands that region to a new owner (the
 * block's refcount goes up) and moves the window start: no bytes are copied
 * and nothing is allocated. When the block is shared with outstanding slices,
 * growth allocates a fresh block and moves only the unconsumed bytes; when it
 * is unshared, growth first compacts in place.
 *
 * max_len bounds the unconsumed bytes a buffer may hold: no call grows len
 * (or hands out spare capacity) beyond it, so a hostile peer cannot make the
 * buffer grow without bound.
 *
 * Every function either succeeds fully or changes nothing and returns an
 * error. A bh_buf is not thread-safe; the slices it hands out are.
 * The struct is public so it can be embedded; treat its fields as private. */
#ifndef BYTES_HANDOFF_BUF_H
#define BYTES_HANDOFF_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "block_cache.h"
#include "bytes.h"
#include "error.h"
#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A growable byte buffer; caller-owned, embedded by value. Read it
 * through the accessors below; every field is private.
 * @since 0.1 */
typedef struct bh_buf {
    uint8_t *data;    /**< private: window start (NULL while no block is held) */
    size_t len;       /**< private: unconsumed bytes */
    size_t cap;       /**< private: bytes usable from data to the end of this buffer's region */
    size_t max_len;   /**< private: hard cap on len */
    bh_shared *block; /**< private: owner of the memory, or NULL */
} bh_buf;

/** Initialises an empty buffer; allocates nothing.
 * @param b the buffer.
 * @param max_len most unconsumed bytes it may ever hold; must be > 0
 *        (SIZE_MAX means unbounded).
 * @return #BH_OK or #BH_EINVAL.
 * @since 0.1 */
BH_EXPORT int bh_buf_init(bh_buf *b, size_t max_len);

/** Releases the buffer's reference to its block (slices already split off
 * stay valid) and leaves *b empty with the same max_len; b may be reused.
 * A block no slice pins goes to the calling thread's block cache (the bytes
 * it held are given up), so that the next connection's buffer takes it
 * instead of allocating; the cache is bounded and bh_thread_cache_trim() /
 * bh_trim() empty it.
 * @param b the buffer; NULL is ignored.
 * @since 0.1 */
BH_EXPORT void bh_buf_free(bh_buf *b);

/** Gives the block of an empty buffer to the calling thread's block cache
 * (see block_cache.h) and leaves the buffer without a block, so that it holds
 * no memory while idle; the next bh_buf_reserve() takes a block from that
 * cache when one fits, else allocates. Slices split off earlier stay valid: a
 * block they still pin is cached with only the window behind them. Without a
 * block nothing happens. bh_reader calls it after each read callback.
 * @param b the buffer.
 * @return #BH_OK, #BH_EINVAL (b NULL) or #BH_ERANGE (b holds data; nothing
 *         changes).
 * @since 0.2 */
BH_EXPORT int bh_buf_recycle(bh_buf *b);

/** The unconsumed bytes.
 * @param b the buffer.
 * @return their start; valid until the next call that may grow, split or
 *         free the buffer.
 * @since 0.1 */
static inline const uint8_t *bh_buf_data(const bh_buf *b) { return b->data; }

/** Number of unconsumed bytes.
 * @param b the buffer.
 * @return the length of bh_buf_data().
 * @since 0.1 */
static inline size_t bh_buf_len(const bh_buf *b) { return b->len; }

/** Writable bytes already available without allocating.
 * @param b the buffer.
 * @return the spare capacity, bounded by what max_len still allows.
 * @since 0.1 */
static inline size_t bh_buf_spare(const bh_buf *b)
{
    size_t room = b->max_len - b->len;
    size_t spare = b->cap - b->len;
    return spare < room ? spare : room;
}
/** The buffer's cap.
 * @param b the buffer.
 * @return the max_len given to bh_buf_init().
 * @since 0.1 */
static inline size_t bh_buf_max_len(const bh_buf *b) { return b->max_len; }

/** Ensures writable room after the data. Reuses spare capacity without
 * touching memory when enough is there; otherwise compacts an unshared block
 * or moves the data to a new block; a buffer without a block first looks in
 * the calling thread's block cache.
 * @param b the buffer.
 * @param n bytes wanted; 0 returns whatever spare exists (possibly none)
 *        without allocating.
 * @param spare receives the start of the writable region.
 * @param spare_len receives its length (>= n, never past max_len).
 * @return #BH_OK, #BH_ETOOLONG (len + n > max_len) or #BH_ENOMEM; on error
 *         nothing changes.
 * @since 0.1 */
BH_EXPORT int bh_buf_reserve(bh_buf *b, size_t n, uint8_t **spare, size_t *spare_len);

/** Reserves room for a read of at most n bytes, preferring memory the
 * buffer or the calling thread already holds over a fresh block: the call an
 * event-loop adapter makes right before each read (bh_reader's alloc
 * callback; an epoll or io_uring adapter would make the same). Unlike
 * bh_buf_reserve() it may hand out less than n bytes:
 * - a buffer without a block first takes one from the calling thread's
 *   block cache (block_cache.h): an unshared cached block of at least n
 *   bytes, or a block still pinned by slices with at least n / 4 bytes (and
 *   at least one) free behind them, read into where the previous buffer
 *   would have read;
 * - a buffer whose block slices still share reads into the spare capacity
 *   it has when that holds at least n / 4 bytes (and at least one), rather
 *   than moving its data to a fresh block;
 * - otherwise it behaves as bh_buf_reserve(b, n, ...).
 * Allocates only in the last case. Same thread rules as every bh_buf call:
 * the cache used is the calling thread's.
 * @param b the buffer.
 * @param n bytes the read wants (the caller bounds it by
 *        bh_buf_max_len() - bh_buf_len()).
 * @param spare receives the start of the writable region (written by the
 *        read, then committed with bh_buf_commit()).
 * @param spare_len receives its length: at least 1 when n > 0, at least n
 *        when a block had to be allocated, never past max_len.
 * @return #BH_OK, #BH_EINVAL (b NULL), #BH_ETOOLONG (len + n > max_len) or
 *         #BH_ENOMEM; on error nothing changes.
 * @since 0.2 */
BH_EXPORT int bh_buf_reserve_read(bh_buf *b, size_t n, uint8_t **spare, size_t *spare_len);

/** Marks bytes written into the spare region as data.
 * @param b the buffer.
 * @param n bytes written after the data.
 * @return #BH_OK or #BH_ERANGE (n > spare available; nothing changes).
 * @since 0.1 */
BH_EXPORT int bh_buf_commit(bh_buf *b, size_t n);

/** Copies bytes to the end (reserve + copy + commit).
 * @param b the buffer.
 * @param p the bytes. They may lie in the buffer itself (its data, its
 *        spare capacity, or a slice split off its block): when the append
 *        has to grow the buffer, the old bytes stay in place until they are
 *        copied, so b may append (part of) its own content.
 * @param n how many.
 * @return #BH_OK, #BH_EINVAL (p NULL with n > 0), #BH_ETOOLONG or
 *         #BH_ENOMEM; on error nothing changes.
 * @since 0.1 */
BH_EXPORT int bh_buf_append(bh_buf *b, const void *p, size_t n);

/** Moves the first bytes out as an owned immutable slice: no copy, no
 * allocation. Inline (C99 inline model: the library also exports an
 * out-of-line definition).
 * @param b the buffer.
 * @param n bytes to move; 0 gives the empty slice.
 * @param out receives the slice (one reference, the caller's).
 * @return #BH_OK, #BH_EINVAL or #BH_ERANGE (n > len); on error nothing
 *         changes.
 * @since 0.1 */
BH_EXPORT inline int bh_buf_split_prefix(bh_buf *b, size_t n, bh_bytes *out)
{
    if (!b || !out)
        return BH_EINVAL;
    if (n > b->len)
        return BH_ERANGE;
    if (n == 0) {
        out->ptr = NULL;
        out->len = 0;
        out->owner = NULL;
        return BH_OK;
    }
    __atomic_fetch_add(BH__REFS(b->block), 1, __ATOMIC_RELAXED);
    out->ptr = b->data;
    out->len = n;
    out->owner = b->block;
    b->data += n;
    b->len -= n;
    b->cap -= n;
    return BH_OK;
}

/** Moves the first bytes out as a new mutable buffer (same max_len, no spare
 * capacity until it grows): no copy, no allocation.
 * @param b the buffer.
 * @param n bytes to move.
 * @param out overwritten (not freed) with the new buffer, which the caller
 *        frees with bh_buf_free().
 * @return #BH_OK, #BH_EINVAL or #BH_ERANGE; on error nothing changes.
 * @since 0.1 */
BH_EXPORT int bh_buf_split_prefix_mut(bh_buf *b, size_t n, bh_buf *out);

/** Drops the first bytes.
 * @param b the buffer.
 * @param n bytes to drop.
 * @return #BH_OK, #BH_EINVAL or #BH_ERANGE (n > len).
 * @since 0.1 */
BH_EXPORT int bh_buf_advance(bh_buf *b, size_t n);

/** Moves all unconsumed bytes and the spare capacity into a new buffer and
 * leaves *b empty with no block: the mode-switch primitive. No copy, no
 * allocation.
 * @param b the buffer.
 * @param out overwritten (not freed) with the tail; free it with
 *        bh_buf_free().
 * @return #BH_OK or #BH_EINVAL.
 * @since 0.1 */
BH_EXPORT int bh_buf_take_tail(bh_buf *b, bh_buf *out);

/** Moves the whole content out as an immutable slice (split_prefix(len)).
 * The buffer stays usable and keeps its spare capacity.
 * @param b the buffer.
 * @param out receives the slice (one reference).
 * @return #BH_OK or #BH_EINVAL.
 * @since 0.1 */
BH_EXPORT int bh_buf_freeze(bh_buf *b, bh_bytes *out);

/** "Not found" result of bh_buf_find(). */
#define BH_NPOS SIZE_MAX

/** Searches the unconsumed bytes (memchr). Inline, like
 * bh_buf_split_prefix().
 * @param b the buffer.
 * @param byte the value searched for.
 * @param from first index searched.
 * @return the index of the first such byte at or after from, or #BH_NPOS
 *         when it is absent or from >= len.
 * @since 0.1 */
BH_EXPORT inline size_t bh_buf_find(const bh_buf *b, uint8_t byte, size_t from)
{
    if (!b || from >= b->len)
        return BH_NPOS;
    const uint8_t *p = (const uint8_t *)memchr(b->data + from, byte, b->len - from);
    return p ? (size_t)(p - b->data) : BH_NPOS;
}

#ifdef __cplusplus
}
#endif

#endif
