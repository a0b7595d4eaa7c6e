/** @file bytes_handoff/thread_cache.h
 * @brief Trimming the calling thread's caches, and bh_trim().
 *
 * Each thread that uses the library may hold two caches, both in
 * thread-local storage, lock-free and bounded: the block cache of idle
 * buffer blocks (block_cache.h) and the array cache of the rings and batch
 * arrays drained write queues gave back (queue.h: at most 32 of each kind,
 * 96 KiB in all). Both are emptied together: by bh_thread_cache_trim() and
 * bh_trim() below, by bh_set_allocator() (their memory came from the
 * previous hook) and when the thread exits (a thread-exit destructor, armed
 * the first time either cache is given memory). The main thread's caches are
 * not freed by exit(): call bh_thread_cache_trim() first when checking for
 * leaks. */
#ifndef BYTES_HANDOFF_THREAD_CACHE_H
#define BYTES_HANDOFF_THREAD_CACHE_H

#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Empties both caches of the calling thread: drops every block of its
 * block cache (a pinned block is freed once its slices are released) and
 * frees that cache's entry table, and frees every queue array of its array
 * cache. The block cache's bounds stay. Call it when a thread goes idle,
 * before it exits, or before exit() on the main thread. Allocates nothing,
 * never fails; touches only the calling thread's caches.
 * @since 0.2 */
BH_EXPORT void bh_thread_cache_trim(void);

/** Gives memory back after load: bh_thread_cache_trim() for the calling
 * thread, then, only while the default allocator is installed and only with
 * glibc, malloc_trim(0), which returns free heap pages of every arena to the
 * system. With a custom allocator, trim it yourself after this call. Costs a
 * walk over the heap: call it when a service goes idle, not per request.
 * Any thread (it trims that thread's caches only).
 * @since 0.2 */
BH_EXPORT void bh_trim(void);

#ifdef __cplusplus
}
#endif

#endif
