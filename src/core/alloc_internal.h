/* alloc_internal.h - what thread_cache.c asks of the allocator hook
 * (alloc.c) beyond the public calls: installing a hook and giving free heap
 * memory back. */
#ifndef BH_ALLOC_INTERNAL_H
#define BH_ALLOC_INTERNAL_H

#include <bytes_handoff/alloc.h>

/* Makes a the hook for every later allocation (copied); NULL or a hook with
 * a missing function restores malloc/realloc/free. The caller has emptied
 * the caches holding memory of the previous hook (bh_set_allocator()). */
void bh__alloc_install(const bh_allocator *a);

/* malloc_trim(0) while the default allocator is installed and the C library
 * is glibc; nothing otherwise. */
void bh__alloc_give_back(void);

#endif
