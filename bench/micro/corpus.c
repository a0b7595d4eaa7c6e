/* corpus.c - deterministic line corpus and the shared per-line consumer. */
#include "corpus.h"

#include <stdlib.h>

static bm_corpus g_corpus;
static uint8_t *g_corpus_data;

/* Written once per iteration so the consumer's work has an observable effect. */
static volatile uint64_t g_blackhole;

static uint32_t next_rand(uint32_t *state)
{
    /* xorshift32: fixed seed, identical corpus on every run and machine */
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return x;
}

const bm_corpus *bm_corpus_get(void)
{
    if (g_corpus_data)
        return &g_corpus;
    uint8_t *d = malloc(BM_CORPUS_TARGET);
    if (!d)
        return NULL;
    uint32_t rng = 0x9e3779b9u;
    size_t len = 0;
    uint64_t lines = 0;
    while (BM_CORPUS_TARGET - len >= BM_LINE_MIN) {
        size_t n = BM_LINE_MIN + next_rand(&rng) % (BM_LINE_MAX - BM_LINE_MIN + 1);
        size_t room = BM_CORPUS_TARGET - len;
        /* end exactly full, every line (the last included) 20..200 bytes */
        if (n > room)
            n = room;
        else if (room - n < BM_LINE_MIN)
            n = room <= BM_LINE_MAX ? room : room - BM_LINE_MIN;
        for (size_t i = 0; i + 1 < n; i++)
            d[len + i] = (uint8_t)(' ' + next_rand(&rng) % 95); /* printable, never '\n' */
        d[len + n - 1] = '\n';
        len += n;
        lines++;
    }
    g_corpus_data = d;
    g_corpus.data = d;
    g_corpus.len = len;
    g_corpus.lines = lines;
    bm_sink expect;
    bm_sink_expect(&expect, d, len);
    g_corpus.check = expect.check;
    return &g_corpus;
}

void bm_consume_line(bm_sink *s, const uint8_t *p, size_t len)
{
    s->bytes += len;
    s->lines++;
    s->check += len + p[0];
}

int bm_sink_matches(const bm_sink *s, uint64_t bytes, uint64_t lines, uint64_t check)
{
    g_blackhole = s->check;
    return s->bytes == bytes && s->lines == lines && s->check == check;
}

void bm_sink_expect(bm_sink *out, const uint8_t *data, size_t len)
{
    out->bytes = 0;
    out->lines = 0;
    out->check = 0;
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '\n') {
            bm_consume_line(out, data + start, i + 1 - start);
            start = i + 1;
        }
    }
}
