/* reader.c - bh_reader, the libuv read adapter.
 *
 * libuv asks for memory (alloc_cb) right before each read(2) and reports the
 * result (read_cb) right after, with nothing in between. alloc_cb hands libuv
 * the spare capacity of the caller's bh_buf, grown by bh_buf_reserve() only
 * when a read needs room; read_cb commits exactly nread > 0 bytes and calls
 * the user. A full buffer or a failed reserve is answered with a zero-length
 * buffer, which libuv turns into read_cb(UV_ENOBUFS); the status that caused
 * it waits in r->pending and is delivered then. Every status but BH_OK is
 * final: reading stops and the reader is finished before the user sees it, so
 * the callback may close the stream or free the buffer's block. An EOF on a
 * TCP stream whose socket holds an error is an RST libuv reported as EOF
 * (stream_reset.c): it is delivered as UV_ECONNRESET. */
#include <limits.h>

#include <bytes_handoff/error.h>
#include <bytes_handoff/uv.h>

#include "bytes_internal.h"
#include "stream_internal.h"

enum {
    READER_READING = 1u, /* uv_read_start() is in effect */
    READER_DONE = 2u     /* a final status was reported */
};

int bh_reader_init(bh_reader *r, uv_stream_t *s, bh_buf *buf, size_t read_reserve,
                   bh_read_cb cb, void *ctx)
{
    if (!r || !s || !buf || !cb)
        return BH_EINVAL;
    r->stream = s;
    r->buf = buf;
    r->read_reserve = read_reserve ? read_reserve : BH_READ_RESERVE_DEFAULT;
    r->cb = cb;
    r->ctx = ctx;
    r->flags = 0;
    r->pending = BH_OK;
    s->data = r;
    return BH_OK;
}

/* Stops reading and marks the reader finished, then reports the final
 * status. Nothing touches r, its stream or its buffer after the callback. */
static void reader_finish(bh_reader *r, int status)
{
    if (r->flags & READER_READING) {
        r->flags &= ~READER_READING;
        if (!uv_is_closing((uv_handle_t *)r->stream))
            uv_read_stop(r->stream);
    }
    r->flags |= READER_DONE;
    r->cb(r, status, r->ctx);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    bh_reader *r = h->data;
    bh_buf *b = r->buf;
    size_t room = bh_buf_max_len(b) - bh_buf_len(b);
    size_t want = r->read_reserve < room ? r->read_reserve : room;
    uint8_t *spare = NULL;
    size_t spare_len = 0;
    (void)suggested;

    *out = uv_buf_init(NULL, 0);
    if (want == 0) {
        r->pending = BH_ETOOLONG;
        return;
    }
    /* While split-off slices still share the block, growing means a fresh
     * block; a quarter of the reserve already spare is read into instead. */
    if (b->block && !bh__shared_unique(b->block) && bh_buf_spare(b) >= want / 4 &&
        bh_buf_spare(b) > 0)
        want = bh_buf_spare(b);
    int rc = bh_buf_reserve(b, want, &spare, &spare_len);
    if (rc != BH_OK) {
        r->pending = rc;
        return;
    }
    if (spare_len > UINT_MAX)
        spare_len = UINT_MAX;
    *out = uv_buf_init((char *)spare, (unsigned)spare_len);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *ub)
{
    bh_reader *r = s->data;
    (void)ub;

    if (nread == 0)
        return; /* EAGAIN: the offered spare stays spare */
    if (nread < 0) {
        int status = (int)nread;
        if (nread == UV_ENOBUFS && r->pending != BH_OK)
            status = r->pending;
        else if (nread == UV_EOF && bh__stream_eof_is_reset(s))
            status = UV_ECONNRESET;
        r->pending = BH_OK;
        reader_finish(r, status);
        return;
    }
    /* The spare region handed out by on_alloc() is still the buffer's spare:
     * nothing ran between the two callbacks. */
    if (bh_buf_commit(r->buf, (size_t)nread) != BH_OK) {
        reader_finish(r, BH_EIO);
        return;
    }
    r->cb(r, BH_OK, r->ctx);

    /* Still reading with a full buffer: the callback could not make room, so
     * no further read can succeed. Report it now rather than on the next
     * readable event, which a peer awaiting a reply would never cause. */
    if ((r->flags & (READER_READING | READER_DONE)) == READER_READING &&
        !uv_is_closing((uv_handle_t *)s) && bh_buf_len(r->buf) == bh_buf_max_len(r->buf))
        reader_finish(r, BH_ETOOLONG);
}

int bh_reader_start(bh_reader *r)
{
    if (!r)
        return BH_EINVAL;
    if ((r->flags & READER_DONE) || uv_is_closing((uv_handle_t *)r->stream))
        return BH_ECLOSED;
    if (r->flags & READER_READING)
        return BH_OK;
    r->stream->data = r;
    int rc = uv_read_start(r->stream, on_alloc, on_read);
    if (rc != 0)
        return rc;
    r->flags |= READER_READING;
    return BH_OK;
}

int bh_reader_stop(bh_reader *r)
{
    if (!r)
        return BH_EINVAL;
    if (r->flags & READER_READING) {
        r->flags &= ~READER_READING;
        if (!uv_is_closing((uv_handle_t *)r->stream))
            uv_read_stop(r->stream);
    }
    return BH_OK;
}
