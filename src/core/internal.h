/* internal.h - private helpers shared by the core's source files:
 * allocation through the installed hook and overflow-checked size math.
 * Nothing here is exported (the library is built with hidden visibility);
 * the adapter library does not see src/core and calls bh_malloc()/bh_free()
 * from bytes_handoff/alloc.h directly. */
#ifndef BH_INTERNAL_H
#define BH_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <bytes_handoff/alloc.h>

/* Allocation through the current bh_allocator (see alloc.h). These forward
 * to the exported functions, which the adapter library calls too, so both
 * libraries share one hook. */
static inline void *bh__malloc(size_t n) { return bh_malloc(n); }
static inline void *bh__realloc(void *p, size_t n) { return bh_realloc(p, n); }
static inline void bh__free(void *p) { bh_free(p); }

/* *out = a + b; returns 0, or -1 on overflow (then *out is untouched). The
 * one place size arithmetic is checked. */
static inline int bh__size_add(size_t a, size_t b, size_t *out)
{
    if (a > SIZE_MAX - b)
        return -1;
    *out = a + b;
    return 0;
}

/* *out = a * b; returns 0, or -1 on overflow. */
static inline int bh__size_mul(size_t a, size_t b, size_t *out)
{
    if (b != 0 && a > SIZE_MAX / b)
        return -1;
    *out = a * b;
    return 0;
}

#endif
