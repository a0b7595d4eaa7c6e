/* fuzz_parsers.c - libFuzzer target for the example line and length-prefix
 * parsers (examples/parsers) fed arbitrary bytes in arbitrary fragments.
 *
 * Input: a 4-byte header, then the stream.
 *   byte 0: bit 0 selects the parser (0 line, 1 frame); bits 1-2 the
 *           fragment size range (1, 1..16, 1..512, 1..8192); bit 3 holds up
 *           to HOLD frames before releasing them (so the buffer's block stays
 *           shared and growth must move the tail); bit 4 resets the line
 *           parser's scan memo before every call; bits 5-7 add slack to the
 *           buffer's max_len beyond the minimum the parser needs.
 *   bytes 1-2: maximum line / frame payload length (big-endian, at least 1).
 *   byte 3: seed for the fragment sizes.
 * Each fragment goes through reserve/commit as the libuv reader does (only
 * as much as the buffer's max_len allows), then the parser runs until it
 * needs more. A reference parser over the whole stream predicts every result.
 *
 * Invariants: frames out concatenated (with their headers, for length
 * prefixes) are exactly the prefix of the input consumed; no frame exceeds
 * the maximum; the buffer holds exactly the fed, unconsumed bytes and never
 * more than max_len; a full buffer never stalls (it yields a frame or a
 * rejection); TOO_LONG only for a frame that really is too long, and the
 * parser leaves buffer and output untouched when it returns no frame;
 * NEED_MORE's `need` is exact; held slices keep their bytes; every block
 * allocated through the hook (tests/support's counting allocator) is freed. */
#include <stdint.h>
#include <string.h>

#include <bytes_handoff.h>

#include "frame_parser.h"
#include "line_parser.h"

#include "fuzz_support.h"
#include "test_alloc.h"

#define HOLD 8

typedef struct {
    const uint8_t *in; /* the whole stream */
    size_t in_len;
    size_t fed;      /* stream bytes committed into the buffer */
    size_t consumed; /* stream bytes taken out by the parser */
    int frame_mode;
    int reset_scan;
    size_t max;      /* max line (without '\n') or max payload */
    bh_buf buf;
    line_parser lp;
    frame_parser fp;
    bh_bytes held[HOLD];
    size_t held_off[HOLD]; /* stream offset each held slice was cut from */
    size_t nheld;
    size_t hold_limit;
    size_t frames;
    const uint8_t *data_at; /* where the buffer's bytes were last verified */
    size_t ref_scanned;     /* bytes from `consumed` known to hold no '\n' */
} state;

/* The buffer holds exactly the fed, unconsumed bytes, never above max_len.
 * Its bytes are compared in full only when they moved (a new block, a
 * compaction); otherwise only the `fresh` bytes just committed, so feeding
 * byte by byte stays linear. */
FUZZ_NO_COVERAGE static void check_buffer(state *s, size_t fresh)
{
    size_t len = bh_buf_len(&s->buf);
    CHECK(len == s->fed - s->consumed);
    CHECK(len <= bh_buf_max_len(&s->buf));
    const uint8_t *d = bh_buf_data(&s->buf);
    if (d != s->data_at) {
        fresh = len;
        s->data_at = d;
    }
    CHECK(fresh <= len);
    if (fresh)
        CHECK(memcmp(d + len - fresh, s->in + s->fed - fresh, fresh) == 0);
}

/* Bytes cut from the buffer: its start moves by n, nothing else. */
static void consumed(state *s, size_t n)
{
    s->consumed += n;
    s->data_at += n;
    s->ref_scanned = 0;
    check_buffer(s, 0);
}

/* Held slices keep their bytes (checked before each is released). */
FUZZ_NO_COVERAGE static void check_held(const state *s)
{
    for (size_t i = 0; i < s->nheld; i++)
        if (s->held[i].len)
            CHECK(memcmp(s->held[i].ptr, s->in + s->held_off[i], s->held[i].len) == 0);
}

static void keep(state *s, bh_bytes *b, size_t off)
{
    if (s->hold_limit == 0) {
        bh_bytes_release(b);
        return;
    }
    if (s->nheld == s->hold_limit) {
        check_held(s);
        bh_bytes_release(&s->held[0]);
        memmove(&s->held[0], &s->held[1], (HOLD - 1) * sizeof s->held[0]);
        memmove(&s->held_off[0], &s->held_off[1], (HOLD - 1) * sizeof s->held_off[0]);
        s->nheld--;
    }
    s->held[s->nheld] = *b;
    s->held_off[s->nheld] = off;
    s->nheld++;
}

/* Reference line framing at stream offset `consumed`, over the `avail` bytes
 * fed from there: 1 = a line of *n bytes ('\n' included), 0 = need more,
 * 2 = too long. Resumes its scan where the previous call stopped. */
FUZZ_NO_COVERAGE static int ref_line(state *s, size_t avail, size_t *n)
{
    size_t look = avail < s->max + 1 ? avail : s->max + 1;
    size_t from = s->ref_scanned < look ? s->ref_scanned : look;
    const uint8_t *at = s->in + s->consumed;
    const uint8_t *nl = look > from ? memchr(at + from, '\n', look - from) : NULL;
    if (nl) {
        *n = (size_t)(nl - at) + 1;
        return 1;
    }
    s->ref_scanned = look;
    return avail > s->max ? 2 : 0;
}

/* Runs the line parser until it needs more; returns 1 on rejection. */
static int drain_lines(state *s)
{
    for (;;) {
        size_t want = 0;
        int ref = ref_line(s, s->fed - s->consumed, &want);
        bh_bytes line = bh_bytes_static((const void *)1, 7);
        bh_buf before = s->buf;
        if (s->reset_scan)
            line_parser_reset(&s->lp);
        line_parse_status st = line_parser_next(&s->lp, &s->buf, &line);
        if (st != LINE_PARSE_LINE) {
            CHECK(line.ptr == (const uint8_t *)1 && line.len == 7 && bh_bytes_refcount(&line) == 0);
            CHECK(memcmp(&before, &s->buf, sizeof before) == 0); /* unchanged */
        }
        switch (st) {
        case LINE_PARSE_LINE:
            CHECK(ref == 1);
            CHECK(line.len == want);
            CHECK(line.len - 1 <= s->max);
            CHECK(line.ptr[line.len - 1] == '\n');
            CHECK(memchr(line.ptr, '\n', line.len - 1) == NULL);
            CHECK(memcmp(line.ptr, s->in + s->consumed, line.len) == 0);
            keep(s, &line, s->consumed);
            consumed(s, want);
            s->frames++;
            break;
        case LINE_PARSE_NEED_MORE:
            CHECK(ref == 0);
            /* A full buffer must never wait for more input. */
            CHECK(bh_buf_len(&s->buf) < bh_buf_max_len(&s->buf));
            return 0;
        case LINE_PARSE_TOO_LONG:
            CHECK(ref == 2);
            return 1;
        default:
            CHECK(0);
        }
    }
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Runs the frame parser until it needs more; returns 1 on rejection. */
static int drain_frames(state *s)
{
    for (;;) {
        size_t avail = s->fed - s->consumed;
        bh_bytes payload = bh_bytes_static((const void *)1, 7);
        size_t need = 12345;
        uint32_t declared = 0;
        bh_buf before = s->buf;
        frame_parse_status st = frame_parser_next(&s->fp, &s->buf, &payload, &need, &declared);
        if (st != FRAME_PARSE_FRAME) {
            CHECK(payload.ptr == (const uint8_t *)1 && payload.len == 7 && bh_bytes_refcount(&payload) == 0);
            CHECK(memcmp(&before, &s->buf, sizeof before) == 0); /* unchanged */
        }
        if (avail < FRAME_HEADER_LEN) {
            CHECK(st == FRAME_PARSE_NEED_MORE);
            CHECK(need == FRAME_HEADER_LEN - avail);
            CHECK(bh_buf_len(&s->buf) < bh_buf_max_len(&s->buf));
            return 0;
        }
        uint32_t n = be32(s->in + s->consumed);
        if (n > s->max) {
            CHECK(st == FRAME_PARSE_TOO_LONG);
            CHECK(declared == n);
            return 1;
        }
        if (avail - FRAME_HEADER_LEN < n) {
            CHECK(st == FRAME_PARSE_NEED_MORE);
            CHECK(need == n - (avail - FRAME_HEADER_LEN));
            CHECK(bh_buf_len(&s->buf) < bh_buf_max_len(&s->buf));
            return 0;
        }
        CHECK(st == FRAME_PARSE_FRAME);
        CHECK(payload.len == n && n <= s->max);
        if (n)
            CHECK(memcmp(payload.ptr, s->in + s->consumed + FRAME_HEADER_LEN, n) == 0);
        keep(s, &payload, s->consumed + FRAME_HEADER_LEN);
        consumed(s, FRAME_HEADER_LEN + n);
        s->frames++;
    }
}

static uint32_t xorshift(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t frag_range[4] = {1, 16, 512, 8192};
    if (size < 4)
        return 0;
    state s;
    memset(&s, 0, sizeof s);
    fuzz_alloc_begin();
    fuzz_input in = {data, size};
    uint8_t h0 = fuzz_u8(&in);
    s.frame_mode = h0 & 1;
    size_t range = frag_range[(h0 >> 1) & 3];
    s.hold_limit = (h0 & 8) ? HOLD : 0;
    s.reset_scan = (h0 & 16) != 0;
    size_t slack = (size_t)(h0 >> 5) * 37;
    s.max = fuzz_u16(&in);
    if (s.max == 0)
        s.max = 1;
    uint32_t seed = 0x9e3779b9u ^ fuzz_u8(&in);
    s.in = in.p;
    s.in_len = in.n;

    size_t max_len;
    if (s.frame_mode) {
        frame_parser_init(&s.fp, (uint32_t)s.max);
        max_len = frame_parser_max_wire(&s.fp);
        CHECK(max_len == FRAME_HEADER_LEN + s.max);
    } else {
        line_parser_init(&s.lp, s.max);
        max_len = s.max + 1;
    }
    CHECK(bh_buf_init(&s.buf, max_len + slack) == BH_OK);

    int rejected = 0;
    while (!rejected && s.fed < s.in_len) {
        size_t frag = 1 + xorshift(&seed) % range;
        if (frag > s.in_len - s.fed)
            frag = s.in_len - s.fed;
        /* Like the reader: the read lands in the spare region, bounded by
         * what max_len still allows; the rest of the fragment waits. */
        while (frag > 0 && !rejected) {
            size_t room = bh_buf_max_len(&s.buf) - bh_buf_len(&s.buf);
            CHECK(room > 0); /* guaranteed by the no-stall check */
            size_t n = frag < room ? frag : room;
            uint8_t *spare;
            size_t spare_len;
            CHECK(bh_buf_reserve(&s.buf, n, &spare, &spare_len) == BH_OK);
            CHECK(spare_len >= n);
            memcpy(spare, s.in + s.fed, n);
            CHECK(bh_buf_commit(&s.buf, n) == BH_OK);
            s.fed += n;
            frag -= n;
            check_buffer(&s, n);
            rejected = s.frame_mode ? drain_frames(&s) : drain_lines(&s);
            check_buffer(&s, 0);
        }
    }

    /* Everything not consumed is exactly the unparsed tail. */
    CHECK(s.consumed <= s.fed && s.fed <= s.in_len);
    s.data_at = NULL;
    check_buffer(&s, 0);
    if (!rejected)
        CHECK(s.fed == s.in_len);
    check_held(&s);
    for (size_t i = 0; i < s.nheld; i++)
        bh_bytes_release(&s.held[i]);
    bh_buf_free(&s.buf);
    fuzz_alloc_end();
    return 0;
}
