/* thread_cache.c - what spans the calling thread's two caches (the block
 * cache, block_cache.c, and the queue array cache, array_cache.c): emptying
 * both (bh_thread_cache_trim(), bh_trim()), their thread-exit cleanup (a
 * pthread key destructor armed the first time either cache is given
 * memory), and bh_set_allocator(), which empties them before it installs the
 * new hook (alloc.c), since their memory came from the old one.
 *
 * Calls go one way: this file calls both caches and the hook; the caches
 * call only the hook (and bytes); alloc.c calls nothing. */
#include <pthread.h>

#include <bytes_handoff/alloc.h>
#include <bytes_handoff/thread_cache.h>

#include "alloc_internal.h"
#include "thread_cache_internal.h"

_Thread_local unsigned char bh__thread_cache_exit_armed;

static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_key_t exit_key;
static int key_ok;

static void trim_both(void)
{
    bh__block_cache_trim();
    bh__array_cache_trim();
}

/* Runs at thread exit when armed. Disarmed first: should a later destructor
 * give a cache memory again, it re-arms, and the key's destructor runs once
 * more (up to PTHREAD_DESTRUCTOR_ITERATIONS rounds). */
static void on_thread_exit(void *p)
{
    (void)p;
    bh__thread_cache_exit_armed = 0;
    trim_both();
}

static void make_key(void) { key_ok = pthread_key_create(&exit_key, on_thread_exit) == 0; }

void bh__thread_cache_arm_exit_slow(void)
{
    pthread_once(&key_once, make_key);
    bh__thread_cache_exit_armed =
        key_ok && pthread_setspecific(exit_key, &bh__thread_cache_exit_armed) == 0;
}

void bh_thread_cache_trim(void) { trim_both(); }

void bh_trim(void)
{
    trim_both();
    bh__alloc_give_back();
}

void bh_set_allocator(const bh_allocator *a)
{
    /* Cached blocks and arrays came from the current hook and go back to it. */
    trim_both();
    bh__alloc_install(a);
}
