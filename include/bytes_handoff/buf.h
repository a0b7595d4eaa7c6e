/* buf.h - bh_buf, a growable mutable byte buffer with a hard length cap.
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

typedef struct bh_buf {
    uint8_t *data;    /* window start (NULL while no block is held) */
    size_t len;       /* unconsumed bytes */
    size_t cap;       /* bytes usable from data to the end of this buffer's region */
    size_t max_len;   /* hard cap on len */
    bh_shared *block; /* owner of the memory, or NULL */
} bh_buf;

/* Initialises an empty buffer; allocates nothing. max_len must be > 0
 * (SIZE_MAX means unbounded). Errors: BH_EINVAL. */
BH_EXPORT int bh_buf_init(bh_buf *b, size_t max_len);

/* Releases the buffer's reference to its block (slices already split off stay
 * valid) and leaves *b empty with the same max_len; b may be reused. NULL ok. */
BH_EXPORT void bh_buf_free(bh_buf *b);

/* Gives the block of an empty buffer to the calling thread's block cache
 * (see block_cache.h) and leaves *b without a block, so that it holds no
 * memory while idle; the next bh_buf_reserve() takes a block from that cache
 * when one fits, else allocates. Slices split off earlier stay valid: a
 * block they still pin is cached with only the window behind them. No-op
 * without a block. bh_reader calls it after each read callback.
 * Errors: BH_EINVAL (b NULL), BH_ERANGE (b holds data); nothing changes. */
BH_EXPORT int bh_buf_recycle(bh_buf *b);

/* Unconsumed bytes. Valid until the next call that may grow, split or free. */
static inline const uint8_t *bh_buf_data(const bh_buf *b) { return b->data; }
static inline size_t bh_buf_len(const bh_buf *b) { return b->len; }
/* Writable bytes already available without allocating (bounded by max_len). */
static inline size_t bh_buf_spare(const bh_buf *b)
{
    size_t room = b->max_len - b->len;
    size_t spare = b->cap - b->len;
    return spare < room ? spare : room;
}
static inline size_t bh_buf_max_len(const bh_buf *b) { return b->max_len; }

/* Ensures at least n writable bytes after the data and returns them in
 * *spare / *spare_len (spare_len >= n, never past max_len). Reuses spare
 * capacity without touching memory when enough is there; otherwise compacts
 * an unshared block or moves the data to a new block; a buffer without a
 * block first looks in the calling thread's block cache. n == 0 returns whatever
 * spare exists (possibly none) without allocating.
 * Errors: BH_ETOOLONG (len + n > max_len), BH_ENOMEM; nothing changes. */
BH_EXPORT int bh_buf_reserve(bh_buf *b, size_t n, uint8_t **spare, size_t *spare_len);

/* Marks n bytes written into the spare region as data.
 * Errors: BH_ERANGE (n > spare available); nothing changes. */
BH_EXPORT int bh_buf_commit(bh_buf *b, size_t n);

/* Copies n bytes from p to the end (reserve + memcpy + commit).
 * Errors: BH_EINVAL (p NULL with n > 0), BH_ETOOLONG, BH_ENOMEM. */
BH_EXPORT int bh_buf_append(bh_buf *b, const void *p, size_t n);

/* Moves the first n bytes out as an owned immutable slice: no copy, no
 * allocation. *out receives one reference. n == 0 gives the empty slice.
 * Errors: BH_EINVAL, BH_ERANGE (n > len); nothing changes. Inline (C99
 * inline model: the library also exports an out-of-line definition). */
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

/* Moves the first n bytes out as a new mutable buffer (same max_len, no spare
 * capacity until it grows): no copy, no allocation. *out is overwritten, not
 * freed; the caller frees it with bh_buf_free(). Errors: BH_EINVAL, BH_ERANGE. */
BH_EXPORT int bh_buf_split_prefix_mut(bh_buf *b, size_t n, bh_buf *out);

/* Drops the first n bytes. Errors: BH_EINVAL, BH_ERANGE (n > len). */
BH_EXPORT int bh_buf_advance(bh_buf *b, size_t n);

/* Moves all unconsumed bytes and the spare capacity into *out (overwritten,
 * not freed) and leaves *b empty with no block: the mode-switch primitive.
 * No copy, no allocation. Errors: BH_EINVAL. */
BH_EXPORT int bh_buf_take_tail(bh_buf *b, bh_buf *out);

/* Moves the whole content out as an immutable slice (split_prefix(len)). The
 * buffer stays usable and keeps its spare capacity. Errors: BH_EINVAL. */
BH_EXPORT int bh_buf_freeze(bh_buf *b, bh_bytes *out);

/* "Not found" result of bh_buf_find(). */
#define BH_NPOS SIZE_MAX

/* Index of the first `byte` at or after `from` (memchr), or BH_NPOS when it
 * is absent or from >= len. Inline, like bh_buf_split_prefix(). */
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
