/* split_workloads.c - split families: complete frames are already buffered
 * in a bh_buf and are split off one by one.
 *
 *   split_freeze_prefixes  bh_buf_split_prefix -> immutable bh_bytes
 *   split_prefix_mut       bh_buf_split_prefix_mut -> mutable bh_buf
 *   take_tail_mode_switch  parse route lines up to "TUNNEL\n", then move the
 *                          already-read tail out with bh_buf_take_tail
 *
 * Each iteration appends one chunk (a single memcpy into reused capacity),
 * splits it completely and checks what the consumer saw. Frame lengths are
 * known up front for the split families, so no search is timed. */
#include <stdlib.h>
#include <string.h>

#include <bytes_handoff.h>

#include "bench_micro.h"
#include "corpus.h"

/* Bytes of complete corpus lines buffered per split iteration. */
#define SPLIT_CHUNK ((size_t)64 * 1024)
/* take_tail: route lines before the switch, and raw bytes read with them. */
#define TAIL_ROUTE_LINES 8
#define TAIL_RAW_BYTES ((size_t)4096)

static const char tunnel_line[] = "TUNNEL\n";

typedef struct split_ctx {
    int mode; /* 0 freeze, 1 mut, 2 take_tail */
    bh_buf b;
    uint8_t *chunk;
    size_t chunk_len;
    size_t *lens; /* frame lengths (freeze, mut) */
    size_t nlines;
    bm_sink expect;
} split_ctx;

static int split_teardown(void *ctx, const char **err)
{
    split_ctx *x = ctx;
    (void)err;
    bh_buf_free(&x->b);
    free(x->chunk);
    free(x->lens);
    free(x);
    return 0;
}

static void *split_setup(int mode, bm_info *info, const char **err)
{
    const bm_corpus *c = bm_corpus_get();
    split_ctx *x = calloc(1, sizeof *x);
    if (!c || !x || bh_buf_init(&x->b, (size_t)1 << 20) != BH_OK)
        goto oom;
    x->mode = mode;
    if (mode == 2) {
        /* route lines, the switch line, then raw bytes (any content) */
        size_t route = 0;
        for (int i = 0; i < TAIL_ROUTE_LINES; i++)
            route += (size_t)((const uint8_t *)memchr(c->data + route, '\n', c->len - route) -
                              (c->data + route)) + 1;
        x->chunk_len = route + sizeof tunnel_line - 1 + TAIL_RAW_BYTES;
        if (!(x->chunk = malloc(x->chunk_len)))
            goto oom;
        memcpy(x->chunk, c->data, route);
        memcpy(x->chunk + route, tunnel_line, sizeof tunnel_line - 1);
        memcpy(x->chunk + route + sizeof tunnel_line - 1, c->data + route, TAIL_RAW_BYTES);
        bm_sink_expect(&x->expect, x->chunk, route + sizeof tunnel_line - 1);
        /* the tail is consumed as one unit */
        bm_consume_line(&x->expect, x->chunk + route + sizeof tunnel_line - 1, TAIL_RAW_BYTES);
        info->bytes_per_iter = x->chunk_len;
        info->items_per_iter = 1; /* one mode switch */
        return x;
    }
    /* whole corpus lines up to SPLIT_CHUNK bytes */
    size_t len = 0, n = 0, cap = 0;
    while (len < c->len) {
        size_t l = (size_t)((const uint8_t *)memchr(c->data + len, '\n', c->len - len) -
                            (c->data + len)) + 1;
        if (len + l > SPLIT_CHUNK)
            break;
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            size_t *nl = realloc(x->lens, cap * sizeof *nl);
            if (!nl)
                goto oom;
            x->lens = nl;
        }
        x->lens[n++] = l;
        len += l;
    }
    if (!(x->chunk = malloc(len)))
        goto oom;
    memcpy(x->chunk, c->data, len);
    x->chunk_len = len;
    x->nlines = n;
    bm_sink_expect(&x->expect, x->chunk, len);
    info->bytes_per_iter = len;
    info->items_per_iter = n;
    return x;
oom:
    if (x)
        split_teardown(x, err);
    *err = "out of memory";
    return NULL;
}

static int split_check(split_ctx *x, const bm_sink *s, const char **err)
{
    if (bh_buf_len(&x->b) != 0 ||
        !bm_sink_matches(s, x->expect.bytes, x->expect.lines, x->expect.check)) {
        *err = "split: consumer did not see exactly the buffered frames";
        return -1;
    }
    return 0;
}

static int iter_freeze(split_ctx *x, const char **err)
{
    bm_sink s = {0, 0, 0};
    if (bh_buf_append(&x->b, x->chunk, x->chunk_len) != BH_OK) {
        *err = "bh_buf_append failed";
        return -1;
    }
    for (size_t i = 0; i < x->nlines; i++) {
        bh_bytes frame;
        if (bh_buf_split_prefix(&x->b, x->lens[i], &frame) != BH_OK) {
            *err = "bh_buf_split_prefix failed";
            return -1;
        }
        bm_consume_line(&s, frame.ptr, frame.len);
        bh_bytes_release(&frame);
    }
    return split_check(x, &s, err);
}

static int iter_mut(split_ctx *x, const char **err)
{
    bm_sink s = {0, 0, 0};
    if (bh_buf_append(&x->b, x->chunk, x->chunk_len) != BH_OK) {
        *err = "bh_buf_append failed";
        return -1;
    }
    for (size_t i = 0; i < x->nlines; i++) {
        bh_buf frame;
        if (bh_buf_split_prefix_mut(&x->b, x->lens[i], &frame) != BH_OK) {
            *err = "bh_buf_split_prefix_mut failed";
            return -1;
        }
        bm_consume_line(&s, bh_buf_data(&frame), bh_buf_len(&frame));
        bh_buf_free(&frame);
    }
    return split_check(x, &s, err);
}

static int iter_take_tail(split_ctx *x, const char **err)
{
    bm_sink s = {0, 0, 0};
    if (bh_buf_append(&x->b, x->chunk, x->chunk_len) != BH_OK) {
        *err = "bh_buf_append failed";
        return -1;
    }
    size_t at;
    while ((at = bh_buf_find(&x->b, '\n', 0)) != BH_NPOS) {
        bh_bytes line;
        if (bh_buf_split_prefix(&x->b, at + 1, &line) != BH_OK) {
            *err = "bh_buf_split_prefix failed";
            return -1;
        }
        bm_consume_line(&s, line.ptr, line.len);
        int tunnel = line.len == sizeof tunnel_line - 1 &&
                     memcmp(line.ptr, tunnel_line, line.len) == 0;
        bh_bytes_release(&line);
        if (tunnel)
            break;
    }
    bh_buf tail;
    if (bh_buf_take_tail(&x->b, &tail) != BH_OK) {
        *err = "bh_buf_take_tail failed";
        return -1;
    }
    if (bh_buf_len(&tail) > 0)
        bm_consume_line(&s, bh_buf_data(&tail), bh_buf_len(&tail));
    bh_buf_free(&tail);
    return split_check(x, &s, err);
}

static int split_iterate(void *ctx, const char **err)
{
    split_ctx *x = ctx;
    if (x->mode == 0)
        return iter_freeze(x, err);
    if (x->mode == 1)
        return iter_mut(x, err);
    return iter_take_tail(x, err);
}

static void *setup_freeze(int64_t arg, bm_info *info, const char **err)
{
    (void)arg;
    return split_setup(0, info, err);
}

static void *setup_mut(int64_t arg, bm_info *info, const char **err)
{
    (void)arg;
    return split_setup(1, info, err);
}

static void *setup_take_tail(int64_t arg, bm_info *info, const char **err)
{
    (void)arg;
    return split_setup(2, info, err);
}

const bm_workload bm_split_workloads[] = {
    {"split_freeze_prefixes", NULL, 0, 0, setup_freeze, split_iterate, split_teardown},
    {"split_prefix_mut", NULL, 0, 0, setup_mut, split_iterate, split_teardown},
    {"take_tail_mode_switch", NULL, 0, 0, setup_take_tail, split_iterate, split_teardown},
};
const size_t bm_split_workloads_count = sizeof bm_split_workloads / sizeof bm_split_workloads[0];
