/* corpus.h - the shared input of the read and split workloads: a fixed
 * corpus of newline-terminated lines, an in-memory source that hands it out
 * in fragments, and the per-line consumer every variant calls.
 *
 * Keeping these in one place is what makes the read variants comparable:
 * same bytes, same fragment boundaries, same work per line. */
#ifndef BH_BENCH_CORPUS_H
#define BH_BENCH_CORPUS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Corpus size: lines of 20..200 bytes (newline included) filling 1 MiB. */
#define BM_CORPUS_TARGET ((size_t)1 << 20)
#define BM_LINE_MIN 20
#define BM_LINE_MAX 200

typedef struct bm_corpus {
    const uint8_t *data; /* len bytes; the last one is '\n' */
    size_t len;
    uint64_t lines;      /* number of '\n' */
    uint64_t check;      /* sum over lines of (length + first byte) */
} bm_corpus;

/* The process-wide corpus, generated deterministically on first use (call it
 * from the benchmark thread). NULL when out of memory. */
const bm_corpus *bm_corpus_get(void);

/* What a consumer saw; compared with the corpus after each iteration. */
typedef struct bm_sink {
    uint64_t bytes;
    uint64_t lines;
    uint64_t check;
} bm_sink;

/* The per-line consumer: adds the line's length and first byte to the sink.
 * Defined out of line (corpus.c) so the compiler cannot see through it and
 * drop the copy or the handoff that precedes it. len > 0. */
void bm_consume_line(bm_sink *s, const uint8_t *p, size_t len);

/* Publishes s to a volatile location (once per iteration) and returns 1 when
 * it matches the expected totals. */
int bm_sink_matches(const bm_sink *s, uint64_t bytes, uint64_t lines, uint64_t check);

/* Computes the totals bm_consume_line would produce for data[0..len). */
void bm_sink_expect(bm_sink *out, const uint8_t *data, size_t len);

/* In-memory stand-in for a socket: each read returns at most `frag` bytes
 * (the next fragment of the corpus), fewer at the end or when cap is smaller. */
typedef struct bm_source {
    const uint8_t *data;
    size_t len;
    size_t pos;
    size_t frag;
} bm_source;

static inline void bm_source_init(bm_source *s, const bm_corpus *c, size_t frag)
{
    s->data = c->data;
    s->len = c->len;
    s->pos = 0;
    s->frag = frag;
}

/* Copies the next fragment into dst (the "kernel read"); 0 at the end. */
static inline size_t bm_source_read(bm_source *s, uint8_t *dst, size_t cap)
{
    size_t n = s->len - s->pos;
    if (n > s->frag)
        n = s->frag;
    if (n > cap)
        n = cap;
    memcpy(dst, s->data + s->pos, n);
    s->pos += n;
    return n;
}

#endif
