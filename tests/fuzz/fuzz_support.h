/* fuzz_support.h - shared by the libFuzzer targets: CHECK (abort with the
 * failed condition) and FUZZ_NO_COVERAGE, which keeps a harness's checking
 * code (model comparisons, invariant sweeps) out of the coverage
 * instrumentation, so libFuzzer's feedback and time go to the code under
 * test. noinline: an inlined function would take its caller's instrumentation. */
#ifndef BH_FUZZ_SUPPORT_H
#define BH_FUZZ_SUPPORT_H

#include <stdio.h>
#include <stdlib.h>

#define FUZZ_NO_COVERAGE __attribute__((no_sanitize("coverage"), noinline))

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                 \
        }                                                                            \
    } while (0)

#endif
