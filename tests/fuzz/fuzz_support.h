/* fuzz_support.h - shared by the libFuzzer targets: CHECK (abort with the
 * failed condition), FUZZ_NO_COVERAGE, which keeps a harness's checking
 * code (model comparisons, invariant sweeps) out of the coverage
 * instrumentation, so libFuzzer's feedback and time go to the code under
 * test (noinline: an inlined function would take its caller's
 * instrumentation), the input reader, and the counting allocator's start
 * and leak check around each input (tests/support/core/test_alloc.h). */
#ifndef BH_FUZZ_SUPPORT_H
#define BH_FUZZ_SUPPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <bytes_handoff.h>

#include "test_alloc.h"

#define FUZZ_NO_COVERAGE __attribute__((no_sanitize("coverage"), noinline))

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                 \
        }                                                                            \
    } while (0)

/* The input, read from the front; past its end every byte reads as 0. */
typedef struct fuzz_input {
    const uint8_t *p;
    size_t n;
} fuzz_input;

static inline uint8_t fuzz_u8(fuzz_input *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

/* Two bytes, big-endian. */
static inline size_t fuzz_u16(fuzz_input *in)
{
    size_t hi = fuzz_u8(in);
    return (hi << 8) | fuzz_u8(in);
}

/* Up to n bytes (fewer at the end of the input) taken from the front:
 * returns where they start and sets *n to how many there are. */
static inline const uint8_t *fuzz_take(fuzz_input *in, size_t *n)
{
    if (*n > in->n)
        *n = in->n;
    const uint8_t *p = in->p;
    in->p += *n;
    in->n -= *n;
    return p;
}

/* Starts an input under the counting, failure-injecting allocator. */
static inline void fuzz_alloc_begin(void) { test_alloc_install(0); }

/* Ends an input: the thread's caches are emptied (bh_buf_free() and
 * readers park blocks there), then no block allocated since
 * fuzz_alloc_begin() may be live, then the default allocator is back. */
static inline void fuzz_alloc_end(void)
{
    bh_thread_cache_trim();
    test_alloc_stats st;
    test_alloc_stats_get(&st);
    CHECK(st.live == 0);
    test_alloc_uninstall();
}

#endif
