/** @file bytes_handoff/bytes.h
 * @brief bh_bytes, an immutable reference-counted byte slice.
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

/** Opaque refcounted owner of the bytes.
 * @since 0.1 */
typedef struct bh_shared bh_shared;

/** Implementation detail, public only so that the hot paths below can be
 * inlined: the first member of every owner block. refs is accessed with
 * GCC-compatible __atomic builtins only (gcc and clang are required).
 * @since 0.1 */
typedef struct bh_shared_head {
    size_t refs; /**< private: live references */
} bh_shared_head;

/** Internal: the reference count of owner s. */
#define BH__REFS(s) (&((bh_shared_head *)(s))->refs)

/** Frees an owner whose last reference was dropped: runs its free function
 * (bh_bytes_from_owned()) and frees the block through the allocator hook.
 * Public only so that bh_bytes_release() can be inlined into callers:
 * applications release slices with bh_bytes_release() and never call it.
 * @param s the owner; the caller's atomic decrement brought its count to
 *          zero (with acquire-release ordering), so no other thread holds a
 *          reference. Any thread.
 * @since 0.2 */
BH_EXPORT void bh_shared_destroy(bh_shared *s);

/** An immutable slice of bytes and the reference that keeps them alive.
 * A value type: copy it by value only together with a transfer of the
 * reference (or use bh_bytes_clone()).
 * @since 0.1 */
typedef struct bh_bytes {
    const uint8_t *ptr; /**< public: first byte; NULL only when len == 0 */
    size_t len;         /**< public: number of bytes */
    bh_shared *owner;   /**< private: NULL for static and empty slices */
} bh_bytes;

/** Frees memory handed to bh_bytes_from_owned(); called once when the last
 * reference to the region is gone, on whichever thread released it.
 * @param ctx the ctx given to bh_bytes_from_owned().
 * @param p the region's start.
 * @since 0.1 */
typedef void (*bh_free_fn)(void *ctx, void *p);

/** A slice of memory that outlives every use (string literals, globals).
 * @param p first byte (may be NULL when n is 0).
 * @param n length in bytes.
 * @return the slice; it has no owner, so clone and release do nothing.
 * @since 0.1 */
BH_EXPORT bh_bytes bh_bytes_static(const void *p, size_t n);

/** Copies bytes into one new allocation (owner and data together).
 * @param out receives the slice (one reference, the caller's); on error the
 *            empty slice.
 * @param p the bytes to copy.
 * @param n how many; 0 yields the empty slice without allocating.
 * @return #BH_OK, #BH_EINVAL (out NULL, or p NULL with n > 0) or
 *         #BH_ENOMEM.
 * @since 0.1 */
BH_EXPORT int bh_bytes_copy(bh_bytes *out, const void *p, size_t n);

/** Wraps memory the caller owns without copying: when the last reference
 * goes, free_fn(ctx, p) runs. Allocates only the owner header.
 * @param out receives the slice of p[0..n) (one reference).
 * @param p the region; ownership passes to the slice on success.
 * @param n its length.
 * @param free_fn called once to free p.
 * @param ctx passed to free_fn.
 * @return #BH_OK, #BH_EINVAL or #BH_ENOMEM; on error the caller still owns
 *         p and free_fn is not called.
 * @since 0.1 */
BH_EXPORT int bh_bytes_from_owned(bh_bytes *out, void *p, size_t n, bh_free_fn free_fn,
                                  void *ctx);

/** A new reference to the same bytes (refcount + 1, no copy).
 * @param b the slice.
 * @return the new reference, which the caller releases.
 * @since 0.1 */
BH_EXPORT bh_bytes bh_bytes_clone(const bh_bytes *b);

/** A new reference to a sub-range, without copying.
 * @param b the slice.
 * @param off first byte of the sub-range.
 * @param n its length; 0 gives the empty slice.
 * @param out receives b[off .. off+n) (one reference).
 * @return #BH_OK, #BH_EINVAL (NULL argument) or #BH_ERANGE (off + n beyond
 *         b->len; *out untouched).
 * @since 0.1 */
BH_EXPORT int bh_bytes_slice(const bh_bytes *b, size_t off, size_t n, bh_bytes *out);

/** Drops the reference held by *b (refcount - 1, freeing on the last one)
 * and zeroes *b. Inline (C99 inline model: the library also exports an
 * out-of-line definition). Any thread.
 * @param b the slice; NULL and empty slices are ignored.
 * @since 0.1 */
BH_EXPORT inline void bh_bytes_release(bh_bytes *b)
{
    if (!b)
        return;
    bh_shared *s = b->owner;
    b->ptr = NULL;
    b->len = 0;
    b->owner = NULL;
    if (s && __atomic_fetch_sub(BH__REFS(s), 1, __ATOMIC_ACQ_REL) == 1)
        bh_shared_destroy(s);
}

/** Number of live references to b's owner, for tests and diagnostics.
 * @param b the slice.
 * @return 1 when unique, 0 when ownerless; the value may be stale once read
 *         when other threads hold references.
 * @since 0.1 */
BH_EXPORT size_t bh_bytes_refcount(const bh_bytes *b);

/** Compares the bytes of two slices.
 * @param a one slice.
 * @param b the other.
 * @return 1 when both hold the same byte sequence, else 0.
 * @since 0.1 */
BH_EXPORT int bh_bytes_equal(const bh_bytes *a, const bh_bytes *b);

#ifdef __cplusplus
}
#endif

#endif
