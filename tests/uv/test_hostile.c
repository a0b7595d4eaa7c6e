/* test_hostile.c - hostile peers against bh_reader and the example parsers
 * over real AF_UNIX socketpairs on real libuv loops: a 4 GiB length prefix,
 * an endless line without '\n', and 1-byte-at-a-time (slowloris) delivery of
 * long valid streams. The counting allocator (support/core/test_alloc.h)
 * records the largest single request and the peak of live bytes, so every
 * test states a memory bound instead of trusting the code path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <bytes_handoff.h>
#include <bytes_handoff/uv.h>

#include "frame_parser.h"
#include "line_parser.h"
#include "test_alloc.h"
#include "test_main.h"
#include "test_uv.h"

#define RUN_TIMEOUT_MS 60000

/* Bytes a block needs beyond its data: the refcounted owner header that
 * shares the allocation (40 bytes on LP64), rounded up generously. */
#define BLOCK_OVERHEAD ((size_t)64)

/* ---- fixture: reader on one end of a socketpair, hostile peer on the other */

typedef struct hostile {
    uv_loop_t loop;
    uv_pipe_t a; /* read side: bh_reader */
    uv_pipe_t b; /* peer */
    bh_buf buf;
    bh_reader reader;
    size_t max_len;
    int use_frames;
    line_parser lp;
    frame_parser fp;

    /* what the peer sends */
    uint8_t *stream;
    size_t stream_len;
    size_t sent;       /* lockstep: bytes handed to the socket so far */
    int lockstep;      /* 1: next byte only after the previous one was read */
    uv_write_t wreq;
    int write_status;  /* status of the bulk write (UV_ECANCELED when cut off) */

    /* what the reader side saw */
    size_t received;   /* bytes committed (sum over BH_OK callbacks) */
    size_t ok_calls;
    size_t max_seen_len;
    size_t frames;     /* frames / lines split off and verified */
    size_t consumed;   /* stream offset of the buffer's first byte */
    size_t parser_too_long;
    uint32_t declared;
    int final_calls;
    int final_status;
    size_t len_at_final;
    int mismatch;      /* a frame differed from the stream */
} hostile;

static void on_closed(uv_handle_t *h) { (void)h; }

static void close_both(hostile *h)
{
    if (!uv_is_closing((uv_handle_t *)&h->a))
        uv_close((uv_handle_t *)&h->a, on_closed);
    if (!uv_is_closing((uv_handle_t *)&h->b))
        uv_close((uv_handle_t *)&h->b, on_closed);
}

static void send_next_byte(hostile *h)
{
    if (h->sent == h->stream_len)
        return;
    uv_buf_t one = uv_buf_init((char *)h->stream + h->sent, 1);
    int rc = uv_try_write((uv_stream_t *)&h->b, &one, 1);
    assert_int_equal(rc, 1); /* the socket is empty: the byte fits */
    h->sent++;
}

static void on_bulk_written(uv_write_t *req, int status)
{
    hostile *h = req->data;
    h->write_status = status;
}

/* Verifies one frame or line against the stream at h->consumed. */
static void check_frame(hostile *h, const bh_bytes *f, size_t skip)
{
    if (f->len && memcmp(f->ptr, h->stream + h->consumed + skip, f->len) != 0)
        h->mismatch = 1;
    h->consumed += skip + f->len;
    h->frames++;
}

/* Extracts every complete frame; returns 1 when the parser rejected one. */
static int parse_all(hostile *h)
{
    for (;;) {
        bh_bytes f = {0};
        if (h->use_frames) {
            uint32_t declared = 0;
            frame_parse_status st = frame_parser_next(&h->fp, &h->buf, &f, NULL, &declared);
            if (st == FRAME_PARSE_TOO_LONG) {
                h->parser_too_long++;
                h->declared = declared;
                return 1;
            }
            if (st != FRAME_PARSE_FRAME)
                return 0;
            check_frame(h, &f, FRAME_HEADER_LEN);
        } else {
            line_parse_status st = line_parser_next(&h->lp, &h->buf, &f);
            if (st == LINE_PARSE_TOO_LONG) {
                h->parser_too_long++;
                return 1;
            }
            if (st != LINE_PARSE_LINE)
                return 0;
            check_frame(h, &f, 0);
        }
        bh_bytes_release(&f);
    }
}

/* Records what a read callback saw; returns 1 for a final status. */
static int note_read(hostile *h, int status)
{
    if (status != BH_OK) {
        h->final_calls++;
        h->final_status = status;
        h->len_at_final = bh_buf_len(&h->buf);
        return 1;
    }
    h->ok_calls++;
    h->received = h->consumed + bh_buf_len(&h->buf);
    if (bh_buf_len(&h->buf) > h->max_seen_len)
        h->max_seen_len = bh_buf_len(&h->buf);
    return 0;
}

/* Parses, and on a parser rejection closes the connection, as a server would. */
static void on_read_close_on_reject(bh_reader *r, int status, void *ctx)
{
    hostile *h = ctx;
    (void)r;
    if (note_read(h, status)) {
        close_both(h);
        return;
    }
    if (parse_all(h)) {
        bh_reader_stop(&h->reader);
        close_both(h);
        return;
    }
    if (h->lockstep) {
        if (h->received == h->stream_len)
            close_both(h);
        else
            send_next_byte(h);
    }
}

static hostile *hostile_new(size_t max_len, int use_frames, size_t max_frame, bh_read_cb cb)
{
    hostile *h = calloc(1, sizeof *h);
    assert_non_null(h);
    h->max_len = max_len;
    h->use_frames = use_frames;
    if (use_frames)
        frame_parser_init(&h->fp, (uint32_t)max_frame);
    else
        line_parser_init(&h->lp, max_frame);
    h->write_status = 1; /* no bulk write issued */
    assert_int_equal(uv_loop_init(&h->loop), 0);
    assert_int_equal(test_uv_socketpair(&h->loop, &h->a, &h->b), 0);
    assert_int_equal(bh_buf_init(&h->buf, max_len), BH_OK);
    assert_int_equal(bh_reader_init(&h->reader, (uv_stream_t *)&h->a, &h->buf, 0, cb, h), BH_OK);
    return h;
}

/* Sends the whole stream with one uv_write (libuv writes it as the socket
 * drains) or, in lockstep, one byte per read callback. */
/* A line peer: a line of at most max_line bytes and its '\n' fill the
 * buffer (max_len = max_line + 1). */
static hostile *hostile_new_lines(size_t max_line, bh_read_cb cb)
{
    return hostile_new(max_line + 1, 0, max_line, cb);
}

static void hostile_run(hostile *h, int lockstep)
{
    h->lockstep = lockstep;
    assert_int_equal(bh_reader_start(&h->reader), BH_OK);
    if (lockstep) {
        send_next_byte(h);
    } else {
        uv_buf_t all = uv_buf_init((char *)h->stream, (unsigned)h->stream_len);
        h->wreq.data = h;
        assert_int_equal(uv_write(&h->wreq, (uv_stream_t *)&h->b, &all, 1, on_bulk_written), 0);
    }
    assert_int_equal(test_uv_run(&h->loop, RUN_TIMEOUT_MS), 0);
}

static void hostile_free(hostile *h)
{
    bh_buf_free(&h->buf);
    assert_int_equal(test_uv_loop_teardown(&h->loop), 0);
    free(h->stream);
    free(h);
}

/* ---- stream builders ------------------------------------------------------ */

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* count frames with payload lengths cycling through 0..max_payload, then
 * `extra` bytes (filled by the caller). Returns the stream. */
static uint8_t *make_frames(size_t count, size_t max_payload, size_t extra, size_t *len_out,
                            size_t *frames_len)
{
    size_t len = 0;
    for (size_t i = 0; i < count; i++)
        len += FRAME_HEADER_LEN + (i * 7919) % (max_payload + 1);
    uint8_t *s = malloc(len + extra);
    assert_non_null(s);
    size_t off = 0;
    for (size_t i = 0; i < count; i++) {
        size_t n = (i * 7919) % (max_payload + 1);
        put_be32(s + off, (uint32_t)n);
        off += FRAME_HEADER_LEN;
        for (size_t k = 0; k < n; k++)
            s[off + k] = (uint8_t)(i * 31 + k);
        off += n;
    }
    *frames_len = len;
    *len_out = len + extra;
    return s;
}

/* count lines with lengths cycling through 0..max_line ('\n' excluded). */
static uint8_t *make_lines(size_t count, size_t max_line, size_t *len_out)
{
    size_t len = 0;
    for (size_t i = 0; i < count; i++)
        len += (i * 7919) % (max_line + 1) + 1;
    uint8_t *s = malloc(len);
    assert_non_null(s);
    size_t off = 0;
    for (size_t i = 0; i < count; i++) {
        size_t n = (i * 7919) % (max_line + 1);
        for (size_t k = 0; k < n; k++)
            s[off + k] = (uint8_t)('a' + (i + k) % 26);
        s[off + n] = '\n';
        off += n + 1;
    }
    *len_out = len;
    return s;
}

/* ---- tests ---------------------------------------------------------------- */

/* A peer declares a 0xFFFFFFFF-byte frame after valid ones of up to almost
 * max_frame (so the buffer grows from the read reserve towards max_len): the
 * parser rejects it from the header alone, and nothing anywhere asks the
 * allocator for more than the buffer's max_len (plus the block header). */
static void four_gib_length_prefix_is_rejected_without_allocating_beyond_max_len(void **state)
{
    (void)state;
    const size_t max_frame = 64 * 1024;
    frame_parser fp;
    frame_parser_init(&fp, (uint32_t)max_frame);
    size_t max_len = frame_parser_max_wire(&fp);
    hostile *h = hostile_new(max_len, 1, max_frame, on_read_close_on_reject);

    size_t frames_len;
    const size_t junk = 1024 * 1024; /* far more than the socketpair buffers hold */
    h->stream = make_frames(40, max_frame, FRAME_HEADER_LEN + junk, &h->stream_len, &frames_len);
    put_be32(h->stream + frames_len, 0xFFFFFFFFu);
    memset(h->stream + frames_len + FRAME_HEADER_LEN, 'J', junk);
    hostile_run(h, 0);

    assert_int_equal(h->mismatch, 0);
    assert_int_equal(h->frames, 40);
    assert_int_equal(h->parser_too_long, 1);
    assert_int_equal(h->declared, 0xFFFFFFFFu);
    assert_int_equal(h->consumed, frames_len);
    assert_true(h->max_seen_len <= max_len);
    assert_true(test_alloc_stats_now().max_request <= max_len + BLOCK_OVERHEAD);
    assert_true(test_alloc_stats_now().peak_bytes <= 2 * (max_len + BLOCK_OVERHEAD));
    /* The junk was never read: the peer's write was cut off by the close. */
    assert_int_equal(h->write_status, UV_ECANCELED);
    hostile_free(h);
}

/* Records a final status without closing anything, so a second report (or
 * a read after the first) would be seen; parses and ignores the parser's own
 * rejection, so only the reader's bound stops the buffer from growing. */
static void on_read_record_only(bh_reader *r, int status, void *ctx)
{
    hostile *h = ctx;
    (void)r;
    if (!note_read(h, status))
        parse_all(h);
}

/* A peer sends 'A' forever: the buffer fills to exactly max_len, the reader
 * reports BH_ETOOLONG once and stops reading although the socket stays
 * readable (the callback closes nothing, so the loop keeps polling it), and
 * memory stays at one max_len block. */
static void endless_line_reports_etoolong_once_and_never_grows_past_max_len(void **state)
{
    (void)state;
    hostile *h = hostile_new_lines(4096, on_read_record_only);
    const size_t max_len = h->max_len;
    h->stream_len = 1024 * 1024; /* far more than the socketpair buffers hold */
    h->stream = malloc(h->stream_len);
    assert_non_null(h->stream);
    memset(h->stream, 'A', h->stream_len);
    assert_int_equal(bh_reader_start(&h->reader), BH_OK);
    uv_buf_t all = uv_buf_init((char *)h->stream, (unsigned)h->stream_len);
    h->wreq.data = h;
    assert_int_equal(uv_write(&h->wreq, (uv_stream_t *)&h->b, &all, 1, on_bulk_written), 0);
    /* Bytes are always waiting (the peer's write refills the socket), so each
     * iteration reads: the final status comes after at most max_len reads. A
     * bounded number of non-blocking iterations, so a reader that stopped
     * without reporting fails here instead of hanging. */
    for (size_t i = 0; i < 100 * max_len && h->final_calls == 0; i++)
        uv_run(&h->loop, UV_RUN_NOWAIT);
    assert_int_equal(h->final_calls, 1);
    size_t ok_calls = h->ok_calls;
    /* More loop iterations with unread bytes waiting: no read, no report. */
    for (int i = 0; i < 100; i++)
        uv_run(&h->loop, UV_RUN_NOWAIT);
    assert_int_equal(h->final_calls, 1);
    assert_int_equal(h->ok_calls, ok_calls);
    assert_int_equal(h->write_status, 1); /* the peer is still writing */
    close_both(h);
    assert_int_equal(test_uv_run(&h->loop, RUN_TIMEOUT_MS), 0);
    assert_int_equal(h->write_status, UV_ECANCELED);

    assert_int_equal(h->final_status, BH_ETOOLONG);
    assert_int_equal(h->len_at_final, max_len);
    assert_true(h->max_seen_len <= max_len);
    assert_int_equal(h->frames, 0);
    assert_true(h->parser_too_long >= 1);
    assert_int_equal(bh_reader_start(&h->reader), BH_ECLOSED);
    assert_true(test_alloc_stats_now().max_request <= max_len + BLOCK_OVERHEAD);
    assert_true(test_alloc_stats_now().peak_bytes <= max_len + BLOCK_OVERHEAD);
    hostile_free(h);
}

/* After a one-byte-per-read run of `units` lines or frames: every one arrived
 * intact, each read carried exactly one byte, no final status, and memory
 * stayed within two max_len blocks with a bounded number of allocations.
 * Frees h. */
static void expect_trickled_intact(hostile *h, size_t units, size_t max_len)
{
    assert_int_equal(h->mismatch, 0);
    assert_int_equal(h->parser_too_long, 0);
    assert_int_equal(h->final_calls, 0);
    assert_int_equal(h->frames, units);
    assert_int_equal(h->consumed, h->stream_len);
    assert_int_equal(h->ok_calls, h->stream_len); /* one byte per read */
    assert_true(h->max_seen_len <= max_len);
    test_alloc_stats st = test_alloc_stats_now();
    assert_true(st.max_request <= max_len + BLOCK_OVERHEAD);
    assert_true(st.peak_bytes <= 2 * (max_len + BLOCK_OVERHEAD));
    assert_true(st.allocs <= 16);
    hostile_free(h);
}

/* A line peer trickles a long valid stream one byte per read: every line
 * arrives intact, each read carried exactly one byte, and memory stays
 * within two max_len blocks (the one read into, and its predecessor while a
 * split-off line still pins it) with a bounded number of allocations (no
 * allocation per read). */
static void slowloris_lines_one_byte_per_read_keep_memory_bounded(void **state)
{
    (void)state;
    hostile *h = hostile_new_lines(512, on_read_close_on_reject);
    const size_t max_len = h->max_len;
    h->stream = make_lines(240, max_len - 1, &h->stream_len);
    hostile_run(h, 1);

    expect_trickled_intact(h, 240, max_len);
}

/* The same for length-prefixed frames: headers and payloads split across
 * single-byte reads. */
static void slowloris_frames_one_byte_per_read_keep_memory_bounded(void **state)
{
    (void)state;
    const size_t max_frame = 1024;
    frame_parser fp;
    frame_parser_init(&fp, (uint32_t)max_frame);
    size_t max_len = frame_parser_max_wire(&fp);
    hostile *h = hostile_new(max_len, 1, max_frame, on_read_close_on_reject);
    size_t frames_len;
    h->stream = make_frames(120, max_frame, 0, &h->stream_len, &frames_len);
    hostile_run(h, 1);

    expect_trickled_intact(h, 120, max_len);
}

TEST_MAIN(test_alloc_checked(four_gib_length_prefix_is_rejected_without_allocating_beyond_max_len),
          test_alloc_checked(endless_line_reports_etoolong_once_and_never_grows_past_max_len),
          test_alloc_checked(slowloris_lines_one_byte_per_read_keep_memory_bounded),
          test_alloc_checked(slowloris_frames_one_byte_per_read_keep_memory_bounded))
