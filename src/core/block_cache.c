/* block_cache.c - the per-thread cache of idle buffer blocks (see
 * bytes_handoff/block_cache.h).
 *
 * Each thread owns one cache in thread-local storage: a LIFO table of
 * entries, each one reference to a block plus the first byte of the window
 * the next buffer may use (the block's base once nobody else holds it). The
 * newest entry is tried first, so a busy reader gets back the block it gave
 * up one read earlier, still warm. No locks: only the owning thread touches
 * its cache; slices pinning a cached block are released by any thread
 * through the block's atomic refcount, which take() reads with acquire.
 * Emptied by bh__block_cache_trim(), which thread_cache.c calls for
 * bh_thread_cache_trim() and at thread exit. */
#include <string.h>

#include <bytes_handoff/block_cache.h>
#include <bytes_handoff/error.h>

#include "block_cache_internal.h"
#include "bytes_internal.h"
#include "internal.h"

/* Entries of a thread's first table. */
#define CACHE_TABLE_MIN ((size_t)8)

typedef struct cache_entry {
    bh_shared *block;
    uint8_t *start; /* window start; bytes before it may belong to slices */
} cache_entry;

typedef struct block_cache {
    cache_entry *entries; /* grows by doubling up to max_blocks; NULL until needed */
    size_t count, table_cap;
    size_t bytes;
    size_t max_blocks, max_bytes;
    int configured; /* bounds set (else the defaults apply) */
    struct bh_block_cache_stats st;
} block_cache;

static _Thread_local block_cache tls_cache;

static void cache_configure(block_cache *c)
{
    if (c->configured)
        return;
    c->max_blocks = BH_BLOCK_CACHE_MAX_BLOCKS_DEFAULT;
    c->max_bytes = BH_BLOCK_CACHE_MAX_BYTES_DEFAULT;
    c->configured = 1;
}

/* Removes entry i (order kept: entries are oldest first). */
static cache_entry cache_remove(block_cache *c, size_t i)
{
    cache_entry e = c->entries[i];
    memmove(&c->entries[i], &c->entries[i + 1], (c->count - i - 1) * sizeof e);
    c->count--;
    c->bytes -= e.block->cap;
    return e;
}

/* Drops entries, oldest first, until `blocks` more blocks and `bytes` more
 * bytes fit. The entry is removed before its reference is dropped. */
static void cache_evict_for(block_cache *c, size_t blocks, size_t bytes)
{
    while (c->count > 0 &&
           (c->count + blocks > c->max_blocks || c->bytes > c->max_bytes - bytes)) {
        cache_entry e = cache_remove(c, 0);
        c->st.evictions++;
        bh__shared_unref(e.block);
    }
}

static void cache_drop_all(block_cache *c)
{
    while (c->count > 0) {
        cache_entry e = cache_remove(c, c->count - 1);
        bh__shared_unref(e.block);
    }
    cache_entry *table = c->entries;
    c->entries = NULL;
    c->table_cap = 0;
    bh__free(table);
}

/* Makes room in the entry table for one more entry (growing it up to
 * max_blocks entries). 0 or -1. */
static int cache_prepare(block_cache *c)
{
    if (c->count < c->table_cap || c->table_cap == c->max_blocks)
        return 0;
    size_t cap = c->table_cap ? c->table_cap : CACHE_TABLE_MIN / 2, size;
    if (bh__size_mul(cap, 2, &cap) != 0)
        return -1;
    if (cap > c->max_blocks)
        cap = c->max_blocks;
    if (bh__size_mul(cap, sizeof *c->entries, &size) != 0)
        return -1;
    cache_entry *table = bh__realloc(c->entries, size);
    if (!table)
        return -1;
    c->entries = table;
    c->table_cap = cap;
    return 0;
}

void bh__block_cache_put(bh_shared *s, uint8_t *start)
{
    block_cache *c = &tls_cache;
    cache_configure(c);
    if (s->cap > c->max_bytes || c->max_blocks == 0 || cache_prepare(c) != 0) {
        c->st.refused++;
        bh__shared_unref(s);
        return;
    }
    cache_evict_for(c, 1, s->cap);
    c->entries[c->count].block = s;
    c->entries[c->count].start = start;
    c->count++;
    c->bytes += s->cap;
    c->st.puts++;
}

bh_shared *bh__block_cache_take(size_t whole, size_t pinned, uint8_t **start)
{
    block_cache *c = &tls_cache;
    for (size_t i = c->count; i-- > 0;) {
        cache_entry *e = &c->entries[i];
        bh_shared *s = e->block;
        int fits;
        if (bh__shared_unique(s)) {
            e->start = s->base;
            fits = s->cap >= whole;
        } else {
            size_t left = s->cap - (size_t)(e->start - s->base);
            fits = left >= pinned && left > 0;
        }
        if (fits) {
            cache_entry got = cache_remove(c, i);
            c->st.hits++;
            *start = got.start;
            return got.block;
        }
    }
    return NULL;
}

void bh__block_cache_miss(void) { tls_cache.st.misses++; }

int bh_block_cache_set_limits(size_t max_blocks, size_t max_bytes)
{
    block_cache *c = &tls_cache;
    cache_configure(c);
    if (max_blocks == 0 || max_bytes == 0)
        max_blocks = max_bytes = 0;
    c->max_blocks = max_blocks;
    c->max_bytes = max_bytes;
    cache_evict_for(c, 0, 0);
    if (c->table_cap > max_blocks)
        cache_drop_all(c); /* a smaller table is built on the next put */
    return BH_OK;
}

void bh__block_cache_trim(void) { cache_drop_all(&tls_cache); }

void bh_block_cache_stats(struct bh_block_cache_stats *out)
{
    block_cache *c = &tls_cache;
    if (!out)
        return;
    cache_configure(c);
    *out = c->st;
    out->blocks = c->count;
    out->bytes = c->bytes;
    out->max_blocks = c->max_blocks;
    out->max_bytes = c->max_bytes;
}
