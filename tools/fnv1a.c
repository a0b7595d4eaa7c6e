/* fnv1a.c - FNV-1a 64 (see fnv1a.h). */
#include "fnv1a.h"

uint64_t fnv1a64(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * UINT64_C(0x100000001b3);
    return h;
}
