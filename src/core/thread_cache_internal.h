/* thread_cache_internal.h - how the core gives memory to the calling
 * thread's caches (block_cache.c, array_cache.c) so that thread_cache.c's
 * thread-exit cleanup is armed for everything they hold. */
#ifndef BH_THREAD_CACHE_INTERNAL_H
#define BH_THREAD_CACHE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "array_cache_internal.h"
#include "block_cache_internal.h"

/* 1 once the calling thread's exit cleanup is armed (thread_cache.c). */
extern _Thread_local unsigned char bh__thread_cache_exit_armed;

/* Arms the thread-exit cleanup of the calling thread (a pthread key
 * destructor that empties both caches); when no key can be made the caches
 * are only emptied by bh_thread_cache_trim(). */
void bh__thread_cache_arm_exit_slow(void);

static inline void bh__thread_cache_arm_exit(void)
{
    if (!bh__thread_cache_exit_armed)
        bh__thread_cache_arm_exit_slow();
}

/* bh__block_cache_put() with the thread-exit cleanup armed first. */
static inline void bh__thread_cache_put_block(bh_shared *s, uint8_t *start)
{
    bh__thread_cache_arm_exit();
    bh__block_cache_put(s, start);
}

/* bh__array_cache_put() with the thread-exit cleanup armed first. */
static inline void bh__thread_cache_put_array(int kind, void *p, size_t bytes)
{
    bh__thread_cache_arm_exit();
    bh__array_cache_put(kind, p, bytes);
}

#endif
