/* bytes.c - bh_bytes: immutable refcounted slices and their owner blocks. */
#include <string.h>

#include <bytes_handoff/bytes.h>
#include <bytes_handoff/error.h>

#include "bytes_internal.h"
#include "internal.h"

static const bh_bytes bh_empty = {NULL, 0, NULL};

bh_shared *bh__block_new(size_t cap)
{
    size_t total;
    if (bh__size_add(sizeof(bh_shared), cap, &total) != 0)
        return NULL;
    bh_shared *s = bh__malloc(total);
    if (!s)
        return NULL;
    s->head.refs = 1;
    s->cap = cap;
    s->base = (uint8_t *)(s + 1);
    s->free_fn = NULL;
    s->free_ctx = NULL;
    return s;
}

/* Out-of-line definition of the inline bh_bytes_release() (C99 inline). */
extern inline void bh_bytes_release(bh_bytes *b);

/* Runs after the last acq_rel decrement, which orders every earlier use of
 * the bytes before the free (no separate fence: TSan does not model them). */
void bh_shared_destroy(bh_shared *s)
{
    if (s->free_fn)
        s->free_fn(s->free_ctx, s->base);
    bh__free(s);
}

bh_bytes bh_bytes_static(const void *p, size_t n)
{
    bh_bytes b = {p, p ? n : 0, NULL};
    return b;
}

int bh_bytes_copy(bh_bytes *out, const void *p, size_t n)
{
    if (!out)
        return BH_EINVAL;
    *out = bh_empty;
    if (n == 0)
        return BH_OK;
    if (!p)
        return BH_EINVAL;
    bh_shared *s = bh__block_new(n);
    if (!s)
        return BH_ENOMEM;
    memcpy(s->base, p, n);
    out->ptr = s->base;
    out->len = n;
    out->owner = s;
    return BH_OK;
}

int bh_bytes_from_owned(bh_bytes *out, void *p, size_t n, bh_free_fn free_fn, void *ctx)
{
    if (!out || !p || !free_fn)
        return BH_EINVAL;
    bh_shared *s = bh__malloc(sizeof *s);
    if (!s)
        return BH_ENOMEM;
    s->head.refs = 1;
    s->cap = n;
    s->base = p;
    s->free_fn = free_fn;
    s->free_ctx = ctx;
    out->ptr = p;
    out->len = n;
    out->owner = s;
    return BH_OK;
}

bh_bytes bh_bytes_clone(const bh_bytes *b)
{
    if (!b)
        return bh_empty;
    if (b->owner)
        bh__shared_ref(b->owner);
    return *b;
}

int bh_bytes_slice(const bh_bytes *b, size_t off, size_t n, bh_bytes *out)
{
    size_t end;
    if (!b || !out)
        return BH_EINVAL;
    if (bh__size_add(off, n, &end) != 0 || end > b->len)
        return BH_ERANGE;
    if (n == 0) {
        *out = bh_empty;
        return BH_OK;
    }
    if (b->owner)
        bh__shared_ref(b->owner);
    out->ptr = b->ptr + off;
    out->len = n;
    out->owner = b->owner;
    return BH_OK;
}

size_t bh_bytes_refcount(const bh_bytes *b)
{
    if (!b || !b->owner)
        return 0;
    return __atomic_load_n(BH__REFS(b->owner), __ATOMIC_RELAXED);
}

int bh_bytes_equal(const bh_bytes *a, const bh_bytes *b)
{
    if (!a || !b || a->len != b->len)
        return 0;
    return a->len == 0 || memcmp(a->ptr, b->ptr, a->len) == 0;
}
