/* read_workloads.c - read families: a fixed line corpus arrives in fragments
 * from an in-memory source and every complete line is handed to the same
 * consumer (bm_consume_line). The variants differ only in how the bytes are
 * buffered and how a line becomes an owned value:
 *
 *   read_raw_discard_lower_bound     scratch buffer, count and discard
 *   read_owned_lines/manual_vec_copy persistent malloc'd array, memchr, copy
 *                                    each line into its own malloc'd buffer
 *   read_owned_lines/bytes_split     minimal refcounted block written right
 *                                    here: split by pointer arithmetic
 *   read_owned_lines/handoff_buffer  bh_buf reserve/commit/find/split_prefix
 *   read_handoff_fragmentation_sweep handoff_buffer with reads of N bytes
 *
 * Every iteration checks that the consumer saw exactly the corpus (bytes,
 * lines and a per-line checksum) and that no partial line is left over. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <bytes_handoff.h>

#include "bench_micro.h"
#include "corpus.h"

/* Fragment size of the read_owned_lines family: one typical socket read. */
#define READ_FRAG ((size_t)16 * 1024)
/* max_len for bh_buf: far above any line, enough for the largest sweep read. */
#define READ_MAX_LEN ((size_t)256 * 1024)

enum read_kind { READ_RAW, READ_MANUAL, READ_BYTES_SPLIT, READ_HANDOFF };

/* ---- minimal refcounted block: the bytes_split baseline ------------------ */

/* One allocation: refcount, capacity, data. Slices keep it alive. */
typedef struct ib_block {
    atomic_size_t refs;
    size_t cap;
    uint8_t data[];
} ib_block;

/* Mutable window [data, data+len) with cap bytes usable from data on. */
typedef struct ib_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    ib_block *blk;
} ib_buf;

/* Immutable slice holding one reference to its block. */
typedef struct ib_slice {
    const uint8_t *ptr;
    size_t len;
    ib_block *blk;
} ib_slice;

static void ib_unref(ib_block *b)
{
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_release) != 1)
        return;
    atomic_thread_fence(memory_order_acquire);
    free(b);
}

/* Same growth policy as bh_buf: compact an unshared block in place when it
 * is big enough, else move the unconsumed bytes to a block twice the size. */
static int ib_reserve(ib_buf *b, size_t n)
{
    if (b->cap - b->len >= n)
        return 0;
    size_t need = b->len + n;
    ib_block *old = b->blk;
    if (old && atomic_load_explicit(&old->refs, memory_order_acquire) == 1 && old->cap >= need) {
        memmove(old->data, b->data, b->len);
        b->data = old->data;
        b->cap = old->cap;
        return 0;
    }
    size_t size = old ? old->cap * 2 : 64;
    if (size < need)
        size = need;
    ib_block *nb = malloc(sizeof *nb + size);
    if (!nb)
        return -1;
    atomic_init(&nb->refs, 1);
    nb->cap = size;
    if (b->len)
        memcpy(nb->data, b->data, b->len);
    if (old)
        ib_unref(old);
    b->blk = nb;
    b->data = nb->data;
    b->cap = size;
    return 0;
}

/* n <= len: hand the first n bytes to *out (refcount + 1), move the window. */
static inline void ib_split(ib_buf *b, size_t n, ib_slice *out)
{
    atomic_fetch_add_explicit(&b->blk->refs, 1, memory_order_relaxed);
    out->ptr = b->data;
    out->len = n;
    out->blk = b->blk;
    b->data += n;
    b->len -= n;
    b->cap -= n;
}

/* ---- context ------------------------------------------------------------- */

typedef struct read_ctx {
    enum read_kind kind;
    const bm_corpus *corpus;
    bm_source src;
    size_t frag;
    /* raw */
    uint8_t *scratch;
    /* manual: bytes at mv_buf[mv_start .. mv_start + mv_len) */
    uint8_t *mv_buf;
    size_t mv_cap, mv_start, mv_len;
    /* bytes_split */
    ib_buf ib;
    /* handoff */
    bh_buf hb;
} read_ctx;

static void *read_setup(enum read_kind kind, size_t frag, bm_info *info, const char **err)
{
    const bm_corpus *c = bm_corpus_get();
    read_ctx *x = calloc(1, sizeof *x);
    if (!c || !x) {
        free(x);
        *err = "out of memory building the corpus";
        return NULL;
    }
    x->kind = kind;
    x->corpus = c;
    x->frag = frag;
    if (kind == READ_RAW && !(x->scratch = malloc(frag))) {
        free(x);
        *err = "out of memory";
        return NULL;
    }
    if (kind == READ_HANDOFF && bh_buf_init(&x->hb, READ_MAX_LEN) != BH_OK) {
        free(x);
        *err = "bh_buf_init failed";
        return NULL;
    }
    info->bytes_per_iter = c->len;
    info->items_per_iter = c->lines;
    return x;
}

static int read_teardown(void *ctx, const char **err)
{
    read_ctx *x = ctx;
    (void)err;
    free(x->scratch);
    free(x->mv_buf);
    if (x->ib.blk)
        ib_unref(x->ib.blk);
    bh_buf_free(&x->hb);
    free(x);
    return 0;
}

/* ---- iterations ---------------------------------------------------------- */

static int iter_raw(read_ctx *x, const char **err)
{
    uint64_t bytes = 0, lines = 0;
    bm_source_init(&x->src, x->corpus, x->frag);
    for (;;) {
        size_t n = bm_source_read(&x->src, x->scratch, x->frag);
        if (n == 0)
            break;
        bytes += n;
        const uint8_t *p = x->scratch, *end = x->scratch + n;
        const uint8_t *nl;
        while ((nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
            lines++;
            p = nl + 1;
        }
    }
    bm_sink s = {bytes, lines, 0};
    if (!bm_sink_matches(&s, x->corpus->len, x->corpus->lines, 0)) {
        *err = "raw discard: byte or line count differs from the corpus";
        return -1;
    }
    return 0;
}

static int iter_manual(read_ctx *x, const char **err)
{
    bm_sink s = {0, 0, 0};
    size_t frag = x->frag;
    bm_source_init(&x->src, x->corpus, frag);
    for (;;) {
        /* room for one fragment: compact first, grow only when that is not enough */
        if (x->mv_cap - x->mv_start - x->mv_len < frag) {
            if (x->mv_start) {
                memmove(x->mv_buf, x->mv_buf + x->mv_start, x->mv_len);
                x->mv_start = 0;
            }
            if (x->mv_cap - x->mv_len < frag) {
                size_t cap = x->mv_cap ? x->mv_cap * 2 : 64;
                if (cap < x->mv_len + frag)
                    cap = x->mv_len + frag;
                uint8_t *nb = realloc(x->mv_buf, cap);
                if (!nb) {
                    *err = "manual: out of memory";
                    return -1;
                }
                x->mv_buf = nb;
                x->mv_cap = cap;
            }
        }
        uint8_t *tail = x->mv_buf + x->mv_start + x->mv_len;
        size_t n = bm_source_read(&x->src, tail, x->mv_cap - x->mv_start - x->mv_len);
        if (n == 0)
            break;
        size_t scan = x->mv_len; /* the old tail holds no newline */
        x->mv_len += n;
        const uint8_t *nl;
        while ((nl = memchr(x->mv_buf + x->mv_start + scan, '\n', x->mv_len - scan)) != NULL) {
            const uint8_t *line = x->mv_buf + x->mv_start;
            size_t len = (size_t)(nl - line) + 1;
            uint8_t *owned = malloc(len);
            if (!owned) {
                *err = "manual: out of memory";
                return -1;
            }
            memcpy(owned, line, len);
            bm_consume_line(&s, owned, len);
            free(owned);
            x->mv_start += len;
            x->mv_len -= len;
            scan = 0;
        }
    }
    if (x->mv_len != 0 ||
        !bm_sink_matches(&s, x->corpus->len, x->corpus->lines, x->corpus->check)) {
        *err = "manual_vec_copy: consumer did not see exactly the corpus";
        return -1;
    }
    return 0;
}

static int iter_bytes_split(read_ctx *x, const char **err)
{
    bm_sink s = {0, 0, 0};
    ib_buf *b = &x->ib;
    size_t frag = x->frag;
    bm_source_init(&x->src, x->corpus, frag);
    for (;;) {
        if (ib_reserve(b, frag) != 0) {
            *err = "bytes_split: out of memory";
            return -1;
        }
        size_t n = bm_source_read(&x->src, b->data + b->len, b->cap - b->len);
        if (n == 0)
            break;
        size_t scan = b->len;
        b->len += n;
        const uint8_t *nl;
        while ((nl = memchr(b->data + scan, '\n', b->len - scan)) != NULL) {
            ib_slice line;
            ib_split(b, (size_t)(nl - b->data) + 1, &line);
            bm_consume_line(&s, line.ptr, line.len);
            ib_unref(line.blk);
            scan = 0;
        }
    }
    if (b->len != 0 || !bm_sink_matches(&s, x->corpus->len, x->corpus->lines, x->corpus->check)) {
        *err = "bytes_split: consumer did not see exactly the corpus";
        return -1;
    }
    return 0;
}

static int iter_handoff(read_ctx *x, const char **err)
{
    bm_sink s = {0, 0, 0};
    bh_buf *b = &x->hb;
    size_t frag = x->frag;
    bm_source_init(&x->src, x->corpus, frag);
    for (;;) {
        uint8_t *spare;
        size_t spare_len;
        if (bh_buf_reserve(b, frag, &spare, &spare_len) != BH_OK) {
            *err = "handoff_buffer: bh_buf_reserve failed";
            return -1;
        }
        size_t n = bm_source_read(&x->src, spare, spare_len);
        if (n == 0)
            break;
        if (bh_buf_commit(b, n) != BH_OK) {
            *err = "handoff_buffer: bh_buf_commit failed";
            return -1;
        }
        size_t at = bh_buf_find(b, '\n', bh_buf_len(b) - n);
        while (at != BH_NPOS) {
            bh_bytes line;
            if (bh_buf_split_prefix(b, at + 1, &line) != BH_OK) {
                *err = "handoff_buffer: bh_buf_split_prefix failed";
                return -1;
            }
            bm_consume_line(&s, line.ptr, line.len);
            bh_bytes_release(&line);
            at = bh_buf_find(b, '\n', 0);
        }
    }
    if (bh_buf_len(b) != 0 ||
        !bm_sink_matches(&s, x->corpus->len, x->corpus->lines, x->corpus->check)) {
        *err = "handoff_buffer: consumer did not see exactly the corpus";
        return -1;
    }
    return 0;
}

static int read_iterate(void *ctx, const char **err)
{
    read_ctx *x = ctx;
    switch (x->kind) {
    case READ_RAW:
        return iter_raw(x, err);
    case READ_MANUAL:
        return iter_manual(x, err);
    case READ_BYTES_SPLIT:
        return iter_bytes_split(x, err);
    case READ_HANDOFF:
        return iter_handoff(x, err);
    }
    *err = "unknown read workload";
    return -1;
}

static void *setup_raw(int64_t arg, bm_info *info, const char **err)
{
    (void)arg;
    return read_setup(READ_RAW, READ_FRAG, info, err);
}

static void *setup_manual(int64_t arg, bm_info *info, const char **err)
{
    (void)arg;
    return read_setup(READ_MANUAL, READ_FRAG, info, err);
}

static void *setup_bytes_split(int64_t arg, bm_info *info, const char **err)
{
    (void)arg;
    return read_setup(READ_BYTES_SPLIT, READ_FRAG, info, err);
}

static void *setup_handoff(int64_t arg, bm_info *info, const char **err)
{
    (void)arg;
    return read_setup(READ_HANDOFF, READ_FRAG, info, err);
}

/* The sweep: reserve and fragment are both `arg` bytes, so each read returns
 * exactly the requested reserve (except at the end of the corpus). */
static void *setup_sweep(int64_t arg, bm_info *info, const char **err)
{
    if (arg <= 0 || (uint64_t)arg > READ_MAX_LEN / 2) {
        *err = "sweep: read reserve out of range";
        return NULL;
    }
    return read_setup(READ_HANDOFF, (size_t)arg, info, err);
}

static const int64_t sweep_args[] = {64, 256, 1024, 4096, 16384, 65536};

const bm_workload bm_read_workloads[] = {
    {"read_raw_discard_lower_bound", NULL, 0, 0, setup_raw, read_iterate, read_teardown},
    {"read_owned_lines/manual_vec_copy", NULL, 0, 0, setup_manual, read_iterate, read_teardown},
    {"read_owned_lines/bytes_split", NULL, 0, 0, setup_bytes_split, read_iterate, read_teardown},
    {"read_owned_lines/handoff_buffer", NULL, 0, 0, setup_handoff, read_iterate, read_teardown},
    {"read_handoff_fragmentation_sweep", sweep_args, sizeof sweep_args / sizeof sweep_args[0], 0,
     setup_sweep, read_iterate, read_teardown},
};
const size_t bm_read_workloads_count = sizeof bm_read_workloads / sizeof bm_read_workloads[0];
