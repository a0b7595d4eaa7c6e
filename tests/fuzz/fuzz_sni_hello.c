/* fuzz_sni_hello.c - libFuzzer target for sni_router's ClientHello parser
 * (examples/sni_router/hello.c).
 *
 * Input: the bytes a client sends, unchanged (the seeds in
 * tests/fuzz/corpus/fuzz_sni_hello/ are real hellos captured from openssl
 * s_client, curl and Python's ssl module). The input is parsed three ways:
 * whole; through a bh_buf in fragments whose sizes come from a generator
 * seeded by the input; and, when it decoded, with its handshake bytes
 * re-framed into records of 1..64 bytes. A smaller max_hello is tried too.
 *
 * Invariants: the fragmented parse returns the whole parse's status and
 * results (fragmentation independence) and never DONE before the last byte
 * it needs; a DONE result has hello_end within the input, a NUL-terminated
 * lower-case host name of sni_len bytes and an ALPN string within its room;
 * re-framing a decoded hello yields the same name and ALPN; a max_hello below
 * hello_end gives TOO_LARGE; nothing is allocated by the parser, nothing
 * leaks. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bytes_handoff.h>

#include "fuzz_support.h"
#include "hello.h"

#define MAX_HELLO 16384

static void check_result(const sni_hello *h, size_t len)
{
    CHECK(h->hello_end <= len);
    if (h->has_sni) {
        CHECK(h->sni_len >= 1 && h->sni_len <= SNI_HOST_MAX);
        CHECK(strlen(h->sni) == h->sni_len);
        for (size_t i = 0; i < h->sni_len; i++)
            CHECK(!(h->sni[i] >= 'A' && h->sni[i] <= 'Z'));
    }
    CHECK(strlen(h->alpn) <= SNI_ALPN_MAX);
}

static void same_result(const sni_hello *a, const sni_hello *b)
{
    CHECK(a->has_sni == b->has_sni);
    CHECK(strcmp(a->sni, b->sni) == 0);
    CHECK(strcmp(a->alpn, b->alpn) == 0);
    CHECK(a->alpn_truncated == b->alpn_truncated);
}

static int parse_fragmented(const uint8_t *data, size_t size, size_t max_hello, sni_hello *h)
{
    bh_buf buf;
    CHECK(bh_buf_init(&buf, size ? size : 1) == BH_OK);
    sni_hello_init(h, max_hello);
    uint32_t x = 2166136261u ^ (uint32_t)size;
    if (size)
        x ^= (uint32_t)data[size - 1] << 8;
    int rc = SNI_HELLO_MORE;
    size_t off = 0;
    while (off < size && rc == SNI_HELLO_MORE) {
        x = x * 1103515245u + 12345u;
        size_t k = 1 + (x >> 16) % ((x & 1) ? 8 : 600);
        if (k > size - off)
            k = size - off;
        CHECK(bh_buf_append(&buf, data + off, k) == BH_OK);
        off += k;
        rc = sni_hello_parse(h, bh_buf_data(&buf), bh_buf_len(&buf));
        if (rc == SNI_HELLO_DONE)
            CHECK(h->hello_end <= off);
    }
    bh_buf_free(&buf);
    return rc;
}

/* Handshake bytes of a decoded hello, re-framed into records of `rec` bytes. */
static size_t reframe(const uint8_t *data, size_t end, size_t rec, uint8_t *out)
{
    static uint8_t hs[MAX_HELLO];
    size_t n = 0;
    for (size_t pos = 0; pos < end;) {
        size_t rlen = ((size_t)data[pos + 3] << 8) | data[pos + 4];
        memcpy(hs + n, data + pos + 5, rlen);
        n += rlen;
        pos += 5 + rlen;
    }
    size_t o = 0;
    for (size_t off = 0; off < n; off += rec) {
        size_t k = n - off < rec ? n - off : rec;
        out[o] = 0x16, out[o + 1] = 3, out[o + 2] = 1;
        out[o + 3] = (uint8_t)(k >> 8), out[o + 4] = (uint8_t)k;
        memcpy(out + o + 5, hs + off, k);
        o += 5 + k;
    }
    return o;
}

static void check_input(const uint8_t *data, size_t size)
{
    sni_hello whole, frag;
    sni_hello_init(&whole, MAX_HELLO);
    int rc = sni_hello_parse(&whole, data, size);
    int rc2 = parse_fragmented(data, size, MAX_HELLO, &frag);
    CHECK(rc == rc2);
    if (rc != SNI_HELLO_DONE)
        return;
    check_result(&whole, size);
    same_result(&whole, &frag);
    CHECK(whole.hello_end == frag.hello_end);

    /* Worst case: every handshake byte in its own 6-byte record. */
    static uint8_t framed[6 * MAX_HELLO];
    size_t rec = 1 + (size_t)(data[size - 1] % 64);
    size_t n = reframe(data, whole.hello_end, rec, framed);
    sni_hello again;
    sni_hello_init(&again, sizeof framed);
    CHECK(sni_hello_parse(&again, framed, n) == SNI_HELLO_DONE);
    same_result(&whole, &again);

    sni_hello small;
    sni_hello_init(&small, whole.hello_end - 1);
    CHECK(sni_hello_parse(&small, data, size) == SNI_HELLO_TOO_LARGE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_alloc_begin();
    check_input(data, size);
    bh_thread_cache_trim(); /* the fragmented parse's buffer block */
    fuzz_alloc_end();
    return 0;
}
