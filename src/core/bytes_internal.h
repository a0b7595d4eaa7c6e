/* bytes_internal.h - the refcounted owner block behind bh_bytes and bh_buf.
 *
 * A block is one allocation: this header followed by `cap` data bytes (base
 * points just past the header), or, for bh_bytes_from_owned(), a header
 * alone whose base is the caller's memory, freed with free_fn. */
#ifndef BH_BYTES_INTERNAL_H
#define BH_BYTES_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <bytes_handoff/bytes.h>

struct bh_shared {
    bh_shared_head head; /* refs, first so bytes.h can reach it */
    size_t cap;         /* data bytes at base */
    uint8_t *base;
    bh_free_fn free_fn; /* NULL: data is inline after the header */
    void *free_ctx;
};

/* New inline block with refs = 1 and cap data bytes; NULL on ENOMEM or when
 * the header + cap overflows. */
bh_shared *bh__block_new(size_t cap);

static inline void bh__shared_ref(bh_shared *s)
{
    __atomic_fetch_add(BH__REFS(s), 1, __ATOMIC_RELAXED);
}

/* Drops one reference; frees the block (and calls free_fn) on the last. */
static inline void bh__shared_unref(bh_shared *s)
{
    if (__atomic_fetch_sub(BH__REFS(s), 1, __ATOMIC_ACQ_REL) == 1)
        bh_shared_destroy(s);
}

/* 1 when the caller holds the only reference. Acquire, so writes by threads
 * that released their references happen before the caller reuses memory. */
static inline int bh__shared_unique(bh_shared *s)
{
    return __atomic_load_n(BH__REFS(s), __ATOMIC_ACQUIRE) == 1;
}

#endif
