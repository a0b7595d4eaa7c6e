/* buf.c - bh_buf: growable mutable window over a refcounted block.
 *
 * Invariants: without a block, data == NULL and len == cap == 0. With one,
 * [data, data + cap) lies inside the block and belongs to this buffer alone;
 * bytes before data may belong to slices split off earlier. Only a buffer
 * holding the block's sole reference may move data or claim the whole block. */
#include <assert.h>
#include <string.h>

#include <bytes_handoff/buf.h>
#include <bytes_handoff/error.h>

#include "block_cache_internal.h"
#include "bytes_internal.h"
#include "internal.h"
#include "thread_cache_internal.h"

/* Smallest block a growing buffer allocates. */
#define BH_BUF_MIN_BLOCK ((size_t)64)

static void buf_reset(bh_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->block = NULL;
}

/* The invariants above, checked in debug builds after every change. */
static void buf_assert_valid(const bh_buf *b)
{
    assert(b->len <= b->cap && b->len <= b->max_len);
    if (!b->block) {
        assert(!b->data && b->cap == 0);
        return;
    }
    assert(b->data >= b->block->base);
    assert((size_t)(b->data - b->block->base) <= b->block->cap);
    assert(b->cap <= b->block->cap - (size_t)(b->data - b->block->base));
}

int bh_buf_init(bh_buf *b, size_t max_len)
{
    if (!b || max_len == 0)
        return BH_EINVAL;
    buf_reset(b);
    b->max_len = max_len;
    return BH_OK;
}

void bh_buf_free(bh_buf *b)
{
    if (!b)
        return;
    /* An unshared block is free again: the cache takes it for the next
     * buffer. One that slices (or a bh_buf_split_prefix_mut() part) still
     * pin stays theirs: a part left sole owner may grow in place. */
    if (b->block && bh__shared_unique(b->block))
        bh__thread_cache_put_block(b->block, b->block->base);
    else if (b->block)
        bh__shared_unref(b->block);
    buf_reset(b);
}

/* Block size for a buffer that needs `need` bytes: keep the current size `old`
 * when it fits, else double it, never beyond max_len (old = 0: just need). */
static size_t grow_size(size_t old, size_t need, size_t max_len)
{
    size_t size = old;
    if (size < need && bh__size_mul(old, 2, &size) != 0)
        size = max_len;
    if (size < BH_BUF_MIN_BLOCK)
        size = BH_BUF_MIN_BLOCK;
    if (size > max_len)
        size = max_len;
    return size < need ? need : size;
}

/* Gives the buffer room for `need` bytes from data on: reuses the whole of an
 * unshared block (compacting in place), else allocates. Unchanged on error.
 * keep != NULL: the caller still reads from the old block (bh_buf_append()
 * of the buffer's own bytes), so its bytes neither move (no compaction) nor
 * go away (no realloc, no release): a block that is left has its reference
 * handed to *keep for the caller to drop after reading. */
static int buf_make_room(bh_buf *b, size_t need, bh_shared **keep)
{
    bh_shared *old = b->block;
    size_t old_size = old ? old->cap : 0;
    /* Read once: while this buffer holds the only reference nobody can add
     * one, and a block seen shared is treated as shared even if its last
     * slice is released meanwhile. */
    int unique = old && bh__shared_unique(old);

    if (unique) {
        size_t to_end = old_size - (size_t)(b->data - old->base);
        if (to_end >= need) {
            b->cap = to_end;
            return BH_OK;
        }
        if (old_size >= need && !keep) {
            memmove(old->base, b->data, b->len);
            b->data = old->base;
            b->cap = old_size;
            return BH_OK;
        }
    }

    /* Leaving a block that slices still pin: take only what is needed, so a
     * pinned block holds about one read's worth and memory stays near the
     * bytes actually referenced. Growing an unshared block doubles. */
    size_t size = grow_size(unique ? old_size : 0, need, b->max_len);
    size_t total;
    if (bh__size_add(sizeof(bh_shared), size, &total) != 0)
        return BH_ENOMEM;
    if (unique && b->data == old->base && !keep) {
        bh_shared *s = bh__realloc(old, total);
        if (!s)
            return BH_ENOMEM;
        s->base = (uint8_t *)(s + 1);
        s->cap = size;
        b->block = s;
        b->data = s->base;
        b->cap = size;
        return BH_OK;
    }
    bh_shared *s = bh__block_new(size);
    if (!s)
        return BH_ENOMEM;
    if (b->len)
        memcpy(s->base, b->data, b->len);
    if (old && keep)
        *keep = old;
    else if (old)
        bh__shared_unref(old);
    b->block = s;
    b->data = s->base;
    b->cap = size;
    return BH_OK;
}

/* Gives an empty buffer without a block a cached one (see
 * bh__block_cache_take() for whole and pinned). Returns 1 when it did. */
static int buf_adopt_cached(bh_buf *b, size_t whole, size_t pinned)
{
    uint8_t *start;
    bh_shared *s = bh__block_cache_take(whole, pinned, &start);
    if (!s)
        return 0;
    b->block = s;
    b->data = start;
    b->len = 0;
    b->cap = s->cap - (size_t)(start - s->base);
    buf_assert_valid(b);
    return 1;
}

int bh_buf_recycle(bh_buf *b)
{
    if (!b)
        return BH_EINVAL;
    if (b->len > 0)
        return BH_ERANGE;
    bh_shared *s = b->block;
    if (s) {
        /* Unshared: the whole block is free again. Shared: the window from
         * data on is this buffer's alone and moves to the cache, when it
         * runs to the block's end (a prefix split off with
         * bh_buf_split_prefix_mut() ends where another buffer's begins). */
        if (bh__shared_unique(s))
            bh__thread_cache_put_block(s, s->base);
        else if (b->data + b->cap == s->base + s->cap)
            bh__thread_cache_put_block(s, b->data);
        else
            bh__shared_unref(s);
        buf_reset(b);
    }
    buf_assert_valid(b);
    return BH_OK;
}

/* Both reserves once the arguments are checked: room for n bytes after the
 * data, the block cache tried first when the buffer has no block (an
 * unshared block of at least n bytes, or a pinned one with `pinned` free). */
static int buf_reserve(bh_buf *b, size_t n, size_t pinned, uint8_t **spare, size_t *spare_len)
{
    if (!b->block && n > 0 && !buf_adopt_cached(b, n, pinned))
        bh__block_cache_miss();
    /* While slices share the block, growing means a fresh block: spare
     * already there that the caller accepts (at least `pinned`) is used. */
    if (b->block && pinned < n && bh_buf_spare(b) >= pinned && bh_buf_spare(b) > 0 &&
        !bh__shared_unique(b->block))
        n = bh_buf_spare(b);
    if (b->cap - b->len < n) {
        int rc = buf_make_room(b, b->len + n, NULL);
        if (rc != BH_OK)
            return rc;
    }
    buf_assert_valid(b);
    if (spare)
        *spare = b->data ? b->data + b->len : NULL;
    if (spare_len)
        *spare_len = bh_buf_spare(b);
    return BH_OK;
}

int bh_buf_reserve(bh_buf *b, size_t n, uint8_t **spare, size_t *spare_len)
{
    if (!b)
        return BH_EINVAL;
    if (n > b->max_len - b->len)
        return BH_ETOOLONG;
    return buf_reserve(b, n, n, spare, spare_len);
}

int bh_buf_reserve_read(bh_buf *b, size_t n, uint8_t **spare, size_t *spare_len)
{
    if (!b)
        return BH_EINVAL;
    if (n > b->max_len - b->len)
        return BH_ETOOLONG;
    return buf_reserve(b, n, n / 4, spare, spare_len);
}

int bh_buf_commit(bh_buf *b, size_t n)
{
    if (!b)
        return BH_EINVAL;
    if (n > bh_buf_spare(b))
        return BH_ERANGE;
    b->len += n;
    buf_assert_valid(b);
    return BH_OK;
}

/* 1 when [p, p + n) overlaps the data bytes of block s. */
static int block_holds(const bh_shared *s, const void *p, size_t n)
{
    uintptr_t a = (uintptr_t)p, base = (uintptr_t)s->base;
    return a < base + s->cap && a + n > base;
}

int bh_buf_append(bh_buf *b, const void *p, size_t n)
{
    bh_shared *keep = NULL;
    uint8_t *spare;
    int rc;
    if (!b || (!p && n > 0))
        return BH_EINVAL;
    if (n == 0)
        return BH_OK;
    if (n > b->max_len - b->len)
        return BH_ETOOLONG;
    /* p may point into this buffer's own block (its data, or bytes slices
     * hold): then growth leaves the old bytes in place until they are
     * copied, and the copy may overlap its destination. */
    int own = b->block && block_holds(b->block, p, n);
    if (own && b->cap - b->len < n)
        rc = buf_make_room(b, b->len + n, &keep);
    else
        rc = buf_reserve(b, n, n, NULL, NULL);
    if (rc != BH_OK)
        return rc;
    spare = b->data + b->len;
    if (own)
        memmove(spare, p, n);
    else
        memcpy(spare, p, n);
    if (keep)
        bh__shared_unref(keep);
    b->len += n;
    buf_assert_valid(b);
    return BH_OK;
}

/* Drops the first n (<= len) bytes; an emptied unshared buffer rewinds to
 * the start of its block so the next reads need no compaction. */
static void buf_consume(bh_buf *b, size_t n)
{
    b->data += n;
    b->len -= n;
    b->cap -= n;
    if (b->len == 0 && bh__shared_unique(b->block)) {
        b->data = b->block->base;
        b->cap = b->block->cap;
    }
    buf_assert_valid(b);
}

/* Out-of-line definitions of the inline functions in buf.h (C99 inline). */
extern inline int bh_buf_split_prefix(bh_buf *b, size_t n, bh_bytes *out);
extern inline size_t bh_buf_find(const bh_buf *b, uint8_t byte, size_t from);

int bh_buf_split_prefix_mut(bh_buf *b, size_t n, bh_buf *out)
{
    if (!b || !out || b == out)
        return BH_EINVAL;
    if (n > b->len)
        return BH_ERANGE;
    size_t max_len = b->max_len;
    buf_reset(out);
    out->max_len = max_len;
    if (n == 0)
        return BH_OK;
    bh__shared_ref(b->block);
    out->data = b->data;
    out->len = n;
    out->cap = n;
    out->block = b->block;
    b->data += n;
    b->len -= n;
    b->cap -= n;
    buf_assert_valid(b);
    buf_assert_valid(out);
    return BH_OK;
}

int bh_buf_advance(bh_buf *b, size_t n)
{
    if (!b)
        return BH_EINVAL;
    if (n > b->len)
        return BH_ERANGE;
    if (n > 0)
        buf_consume(b, n);
    return BH_OK;
}

int bh_buf_take_tail(bh_buf *b, bh_buf *out)
{
    if (!b || !out || b == out)
        return BH_EINVAL;
    *out = *b;
    buf_reset(b);
    return BH_OK;
}

int bh_buf_freeze(bh_buf *b, bh_bytes *out)
{
    if (!b)
        return BH_EINVAL;
    return bh_buf_split_prefix(b, b->len, out);
}
