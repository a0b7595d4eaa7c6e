/* bytes.h - bh_bytes, an immutable reference-counted byte slice.
 *
 * A bh_bytes is a small value (pointer, length, owner) that names a range of
 * bytes kept alive by a shared, atomically refcounted owner block. Cloning and
 * sub-slicing take a reference and never copy or allocate. The bytes must not
 * be written through ptr. An all-zero bh_bytes ({0}) is the empty slice and is
 * valid everywhere; releasing it is a no-op.
 *
 * Ownership: every function that fills a bh_bytes gives the caller one
 * reference, which must be released exactly once with bh_bytes_release() (or
 * handed to a function documented to take it, such as bh_writeq_try_write()).
 * References may be released on any thread. */
#ifndef BYTES_HANDOFF_BYTES_H
#define BYTES_HANDOFF_BYTES_H

#include <stddef.h>
#include <stdint.h>

#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Opaque refcounted owner of the bytes. */
typedef struct bh_shared bh_shared;

/* Implementation detail, public only so that the hot paths below can be
 * inlined: the first member of every owner block. refs is accessed with
 * GCC-compatible __atomic builtins only (gcc and clang are required). */
typedef struct bh_shared_head {
    size_t refs;
} bh_shared_head;

#define BH__REFS(s) (&((bh_shared_head *)(s))->refs)

/* Frees an owner whose last reference was dropped. Internal; exported only
 * for the inline bh_bytes_release(). */
BH_EXPORT void bh__shared_destroy(bh_shared *s);

typedef struct bh_bytes {
    const uint8_t *ptr; /* first byte; NULL only when len == 0 */
    size_t len;         /* number of bytes */
    bh_shared *owner;   /* NULL for static and empty slices */
} bh_bytes;

/* Frees p; called once when the last reference to an owned region is gone,
 * on whichever thread released it. */
typedef void (*bh_free_fn)(void *ctx, void *p);

/* A slice of memory that outlives every use (string literals, globals). It
 * has no owner: clone and release do nothing. */
BH_EXPORT bh_bytes bh_bytes_static(const void *p, size_t n);

/* Copies n bytes from p into one new allocation (owner and data together).
 * Errors: BH_EINVAL (out NULL, or p NULL with n > 0), BH_ENOMEM. On error
 * *out is set to the empty slice. n == 0 yields the empty slice, no alloc. */
BH_EXPORT int bh_bytes_copy(bh_bytes *out, const void *p, size_t n);

/* Takes ownership of p[0..n): when the last reference goes, free_fn(ctx, p)
 * runs. Allocates only the owner header. On error (BH_EINVAL, BH_ENOMEM) the
 * caller still owns p and free_fn is not called. */
BH_EXPORT int bh_bytes_from_owned(bh_bytes *out, void *p, size_t n, bh_free_fn free_fn,
                                  void *ctx);

/* Returns a new reference to the same bytes (refcount + 1, no copy). */
BH_EXPORT bh_bytes bh_bytes_clone(const bh_bytes *b);

/* *out = new reference to b[off .. off+n). Errors: BH_EINVAL (NULL), BH_ERANGE
 * (off + n beyond b->len; *out untouched). n == 0 gives the empty slice. */
BH_EXPORT int bh_bytes_slice(const bh_bytes *b, size_t off, size_t n, bh_bytes *out);

/* Drops the reference held by *b (refcount - 1, freeing on the last one) and
 * zeroes *b. NULL and empty slices are ignored. Inline (C99 inline model: the
 * library also exports an out-of-line definition). */
BH_EXPORT inline void bh_bytes_release(bh_bytes *b)
{
    if (!b)
        return;
    bh_shared *s = b->owner;
    b->ptr = NULL;
    b->len = 0;
    b->owner = NULL;
    if (s && __atomic_fetch_sub(BH__REFS(s), 1, __ATOMIC_ACQ_REL) == 1)
        bh__shared_destroy(s);
}

/* Number of live references to b's owner (1 = unique); 0 when ownerless.
 * For tests and diagnostics: the value may be stale once read. */
BH_EXPORT size_t bh_bytes_refcount(const bh_bytes *b);

/* Returns 1 when both slices hold the same byte sequence. */
BH_EXPORT int bh_bytes_equal(const bh_bytes *a, const bh_bytes *b);

#ifdef __cplusplus
}
#endif

#endif
