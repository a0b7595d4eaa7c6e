/* array_cache.c - the per-thread cache of small queue arrays.
 *
 * A drained bh_queue gives its ring and its batch (iovec) array back so that
 * an idle connection holds no heap memory; the next push on any queue of the
 * same thread takes one again. A busy queue that drains after every write
 * therefore trades its arrays with this cache instead of calling malloc and
 * free. Each thread has its own cache in thread-local storage (no locks: a
 * queue is used by its owner's thread only): one fixed table per kind of
 * array, so the cache itself never allocates. Bounded in arrays per kind,
 * bytes per array and bytes in all; what does not fit is freed. A take hands
 * out the largest array that fits the queue's limit, so the arrays in use
 * converge to the sizes busy queues need. Emptied by bh__array_cache_trim(),
 * which thread_cache.c calls for bh_thread_cache_trim() (and so bh_trim()
 * and bh_set_allocator()) and at thread exit. */
#include <string.h>

#include "array_cache_internal.h"
#include "internal.h"

typedef struct cached_array {
    void *p;
    size_t bytes;
} cached_array;

typedef struct array_cache {
    cached_array slot[BH_ARRAY_KINDS][BH_ARRAY_CACHE_MAX_ARRAYS]; /* oldest first */
    size_t count[BH_ARRAY_KINDS];
    size_t bytes;
    uint64_t puts, hits, refused;
} array_cache;

static _Thread_local array_cache tls_cache;

static void cache_drop_all(array_cache *c)
{
    for (int k = 0; k < BH_ARRAY_KINDS; k++) {
        while (c->count[k] > 0) {
            cached_array *e = &c->slot[k][--c->count[k]];
            c->bytes -= e->bytes;
            bh__free(e->p);
            e->p = NULL;
        }
    }
}

void bh__array_cache_put(int kind, void *p, size_t bytes)
{
    array_cache *c = &tls_cache;
    if (!p)
        return;
    if (c->count[kind] == BH_ARRAY_CACHE_MAX_ARRAYS || bytes > BH_ARRAY_CACHE_MAX_ARRAY_BYTES ||
        bytes > BH_ARRAY_CACHE_MAX_BYTES - c->bytes) {
        c->refused++;
        bh__free(p);
        return;
    }
    c->slot[kind][c->count[kind]++] = (cached_array){p, bytes};
    c->bytes += bytes;
    c->puts++;
}

void *bh__array_cache_take(int kind, size_t max_bytes, size_t *bytes)
{
    array_cache *c = &tls_cache;
    cached_array *t = c->slot[kind];
    size_t n = c->count[kind], best = n;
    for (size_t i = n; i-- > 0;) {
        if (t[i].bytes <= max_bytes && (best == n || t[i].bytes > t[best].bytes))
            best = i;
    }
    if (best == n)
        return NULL;
    cached_array got = t[best];
    memmove(&t[best], &t[best + 1], (n - best - 1) * sizeof *t);
    t[n - 1].p = NULL;
    c->count[kind]--;
    c->bytes -= got.bytes;
    c->hits++;
    *bytes = got.bytes;
    return got.p;
}

void bh__array_cache_trim(void) { cache_drop_all(&tls_cache); }

void bh__array_cache_stats_get(bh__array_cache_stats *out)
{
    const array_cache *c = &tls_cache;
    for (int k = 0; k < BH_ARRAY_KINDS; k++)
        out->arrays[k] = c->count[k];
    out->bytes = c->bytes;
    out->puts = c->puts;
    out->hits = c->hits;
    out->refused = c->refused;
}
