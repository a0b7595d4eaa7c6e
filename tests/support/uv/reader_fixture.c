/* reader_fixture.c - fragmenting writer and line-collecting reader callback
 * for the bh_reader tests (see reader_fixture.h). */
#include "reader_fixture.h"

#include <stdarg.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_uv.h"

uint64_t fixture_rand(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15)); /* splitmix64 */
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

uint8_t *make_lines(uint64_t seed, size_t nlines, size_t max_line, size_t tail, size_t *len)
{
    uint64_t rng = seed;
    size_t cap = nlines * (max_line + 1) + tail + 1;
    uint8_t *out = malloc(cap);
    size_t n = 0;
    assert_non_null(out);
    for (size_t i = 0; i < nlines + 1; i++) {
        size_t l = i < nlines ? (size_t)(fixture_rand(&rng) % (max_line + 1)) : tail;
        for (size_t j = 0; j < l; j++) {
            uint8_t byte = (uint8_t)fixture_rand(&rng);
            out[n++] = byte == '\n' ? 'N' : byte;
        }
        if (i < nlines)
            out[n++] = '\n';
    }
    *len = n;
    return out;
}

/* ---- feeder ---- */

void feeder_init(feeder *f, uv_stream_t *out, const void *data, size_t len, feed_mode mode,
                 uint64_t seed, int lockstep, int shutdown)
{
    memset(f, 0, sizeof *f);
    f->out = out;
    f->data = data;
    f->len = len;
    f->mode = mode;
    f->rng = seed;
    f->max_chunk = 257;
    f->lockstep = lockstep;
    f->shutdown = shutdown;
}

static void feeder_finish(feeder *f)
{
    f->done = 1;
    if (f->on_done)
        f->on_done(f);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    feeder *f = req->data;
    if (status != 0 && f->write_error == 0)
        f->write_error = status;
    feeder_finish(f);
}

static void on_write(uv_write_t *req, int status)
{
    feeder *f = req->data;
    f->in_flight = 0;
    if (status != 0) {
        if (f->write_error == 0)
            f->write_error = status;
        return;
    }
    if (f->sent == f->len) {
        if (f->shutdown) {
            f->sreq.data = f;
            if (uv_shutdown(&f->sreq, f->out, on_shutdown) != 0)
                feeder_finish(f);
        } else {
            feeder_finish(f);
        }
        return;
    }
    if (!f->lockstep)
        feeder_pump(f, f->sent);
}

void feeder_pump(feeder *f, size_t received)
{
    if (f->in_flight || f->write_error || f->sent == f->len || (f->lockstep && received < f->sent))
        return;
    size_t n = f->len - f->sent;
    if (f->mode == FEED_ONE_BYTE)
        n = 1;
    else if (f->mode == FEED_RANDOM) {
        size_t r = 1 + (size_t)(fixture_rand(&f->rng) % f->max_chunk);
        n = r < n ? r : n;
    }
    uv_buf_t b = uv_buf_init((char *)(uintptr_t)(f->data + f->sent), (unsigned)n);
    f->wreq.data = f;
    int rc = uv_write(&f->wreq, f->out, &b, 1, on_write);
    if (rc != 0) {
        f->write_error = rc;
        return;
    }
    f->in_flight = 1;
    f->sent += n;
    f->writes++;
}

/* ---- collector ---- */

void collector_record(collector *c, const uint8_t *p, size_t n)
{
    if (c->transcript_len + n > c->transcript_cap) {
        size_t cap = c->transcript_cap ? c->transcript_cap : 4096;
        while (cap < c->transcript_len + n)
            cap *= 2;
        c->transcript = realloc(c->transcript, cap);
        assert_non_null(c->transcript);
        c->transcript_cap = cap;
    }
    if (n)
        memcpy(c->transcript + c->transcript_len, p, n);
    c->transcript_len += n;
}

static void keep_line(collector *c, bh_bytes *line)
{
    if (c->nlines == c->lines_cap) {
        c->lines_cap = c->lines_cap ? 2 * c->lines_cap : 64;
        c->lines = realloc(c->lines, c->lines_cap * sizeof *c->lines);
        assert_non_null(c->lines);
    }
    c->lines[c->nlines++] = *line;
}

static void split_lines(collector *c)
{
    size_t nl;
    while ((nl = bh_buf_find(&c->buf, '\n', 0)) != BH_NPOS) {
        bh_bytes line;
        assert_int_equal(bh_buf_split_prefix(&c->buf, nl + 1, &line), BH_OK);
        collector_record(c, line.ptr, line.len);
        if (c->keep_lines)
            keep_line(c, &line);
        else
            bh_bytes_release(&line);
    }
}

static void collector_cb(bh_reader *r, int status, void *ctx)
{
    collector *c = ctx;
    size_t len = bh_buf_len(&c->buf);
    assert_ptr_equal(r, &c->reader);
    assert_ptr_equal(r->buf, &c->buf);
    assert_true(len <= bh_buf_max_len(&c->buf));
    if (len > c->max_len_seen)
        c->max_len_seen = len;
    if (status == BH_OK) {
        /* Every BH_OK callback follows bytes that were really appended. */
        assert_true(len > c->left);
        c->ok_calls++;
        c->received += len - c->left;
        if (c->split_lines)
            split_lines(c);
    } else {
        c->final_calls++;
        c->final_status = status;
        c->tail_at_final = len;
    }
    if (c->hook)
        c->hook(c, status);
    c->left = bh_buf_len(&c->buf);
    if (status == BH_OK && c->feed)
        feeder_pump(c->feed, c->received);
}

void collector_init(collector *c, uv_stream_t *s, size_t max_len, size_t read_reserve)
{
    memset(c, 0, sizeof *c);
    c->split_lines = 1;
    c->keep_lines = 1;
    assert_int_equal(bh_buf_init(&c->buf, max_len), BH_OK);
    assert_int_equal(bh_reader_init(&c->reader, s, &c->buf, read_reserve, collector_cb, c), BH_OK);
}

void collector_free(collector *c)
{
    for (size_t i = 0; i < c->nlines; i++)
        bh_bytes_release(&c->lines[i]);
    free(c->lines);
    c->lines = NULL;
    c->nlines = 0;
    free(c->transcript);
    c->transcript = NULL;
    bh_buf_free(&c->buf);
}

void collector_assert_matches(const collector *c, const uint8_t *input, size_t len)
{
    size_t tail = bh_buf_len(&c->buf);
    assert_int_equal(c->transcript_len + tail, len);
    assert_memory_equal(c->transcript, input, c->transcript_len);
    if (tail)
        assert_memory_equal(bh_buf_data(&c->buf), input + c->transcript_len, tail);
    if (!c->keep_lines)
        return;
    size_t off = 0;
    for (size_t i = 0; i < c->nlines; i++) {
        const uint8_t *nl = memchr(input + off, '\n', len - off);
        assert_non_null(nl);
        size_t l = (size_t)(nl - (input + off)) + 1;
        assert_int_equal(c->lines[i].len, l);
        assert_memory_equal(c->lines[i].ptr, input + off, l);
        off += l;
    }
    assert_null(memchr(input + off, '\n', len - off));
}

void collector_run(collector *c, uv_loop_t *loop, unsigned timeout_ms)
{
    assert_int_equal(bh_reader_start(&c->reader), BH_OK);
    feeder_pump(c->feed, 0);
    assert_int_equal(test_uv_run(loop, timeout_ms), 0);
}

void collector_teardown(collector *c, uv_loop_t *loop)
{
    collector_free(c);
    assert_int_equal(test_uv_loop_teardown(loop), 0);
}
