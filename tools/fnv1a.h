/* fnv1a.h - the one FNV-1a 64 of the examples, tests and bench harness: the
 * checksum of the harness wire protocol ("OK <nbytes> <fnv1a64>"). */
#ifndef BH_FNV1A_H
#define BH_FNV1A_H

#include <stddef.h>
#include <stdint.h>

#define FNV1A64_OFFSET UINT64_C(0xcbf29ce484222325)

/* FNV-1a 64 of p[0..n), continuing from h (start with FNV1A64_OFFSET). */
uint64_t fnv1a64(uint64_t h, const void *p, size_t n);

#endif
