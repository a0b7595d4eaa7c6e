/* reader.c - bh_reader, the libuv read adapter.
 *
 * libuv asks for memory (alloc_cb) right before each read(2) and reports the
 * result (read_cb) right after, with nothing in between. alloc_cb hands libuv
 * the spare capacity of the caller's bh_buf from bh_buf_reserve_read()
 * (which reuses a block of the thread's block cache or spare room behind
 * slices before it allocates); read_cb commits exactly nread > 0 bytes and
 * calls the user. A full buffer or a failed reserve is answered with a
 * zero-length buffer, which libuv turns into read_cb(UV_ENOBUFS); the
 * status that caused it waits in r->pending and is delivered then. Every
 * status but BH_OK is final: reading stops and the reader is finished before
 * the user sees it, so the callback may close the stream or free the
 * buffer's block. An EOF on a TCP stream whose socket
 * holds an error is an RST libuv reported as EOF (stream_reset.c): it is
 * delivered as UV_ECONNRESET.
 *
 * Hand-over: starting a reader on a stream another bh_reader is reading
 * only repoints stream->data (libuv keeps reading with the same callbacks),
 * so a mode switch costs no uv_read_stop()/uv_read_start() pair.
 *
 * Idle memory: when the callback leaves the buffer empty, its block goes back
 * to the block cache (bh_buf_recycle) unless the user asked to keep it.
 *
 * Read-idle timeout: one uv_timer_t in its own allocation, made by the first
 * bh_reader_set_idle_timeout() and closed (freed by its own close callback,
 * which never touches the reader) by disabling it or bh_reader_close(). A
 * read only stores the loop time; the timer, when it fires early, re-arms for
 * the rest of the period, so reads never touch the timer heap. */
#include <limits.h>

#include <bytes_handoff/alloc.h>
#include <bytes_handoff/error.h>
#include <bytes_handoff/uv.h>

#include "stream_internal.h"

enum {
    READER_READING = 1u, /* uv_read_start() is in effect */
    READER_DONE = 2u,    /* a final status was reported, or closed */
    READER_KEEP = 4u     /* keep the block while idle */
};

struct bh_reader_timer {
    uv_timer_t handle;
    bh_reader *r;       /* NULL once the reader let go of the timer */
    uint64_t idle_ms;
    uint64_t last_read; /* loop time of the last read (or start) */
};

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *ub);

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
    r->timer = NULL;
    /* A stream another reader is reading stays its until r starts. */
    if (s->read_cb != on_read)
        s->data = r;
    return BH_OK;
}

static void timer_stop(bh_reader *r)
{
    if (r->timer)
        uv_timer_stop(&r->timer->handle);
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
    timer_stop(r);
    r->flags |= READER_DONE;
    r->cb(r, status, r->ctx);
}

static void on_timer(uv_timer_t *t)
{
    struct bh_reader_timer *tm = (struct bh_reader_timer *)t;
    bh_reader *r = tm->r;
    if (uv_is_closing((uv_handle_t *)r->stream))
        return; /* the user closed the stream: no more callbacks */
    uint64_t idle = uv_now(t->loop) - tm->last_read;
    if (idle < tm->idle_ms) {
        uv_timer_start(t, on_timer, tm->idle_ms - idle, 0);
        return;
    }
    reader_finish(r, UV_ETIMEDOUT);
}

static void timer_arm(bh_reader *r)
{
    struct bh_reader_timer *tm = r->timer;
    if (!tm)
        return;
    tm->last_read = uv_now(r->stream->loop);
    uv_timer_start(&tm->handle, on_timer, tm->idle_ms, 0);
}

static void on_timer_closed(uv_handle_t *h) { bh_free(h); }

/* Lets go of the timer: closed now, freed by its close callback. */
static void timer_release(bh_reader *r)
{
    struct bh_reader_timer *tm = r->timer;
    if (!tm)
        return;
    r->timer = NULL;
    tm->r = NULL;
    uv_close((uv_handle_t *)&tm->handle, on_timer_closed);
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
    /* A block given back after the last read (or pinned by its slices, with
     * a quarter of the reserve still free behind them) is read into again,
     * and so is a quarter of the reserve already spare behind slices. */
    int rc = bh_buf_reserve_read(b, want, &spare, &spare_len);
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

    if (nread == 0)
        return; /* EAGAIN: the offered spare stays spare */
    if (nread < 0) {
        int status = (int)nread;
        /* An EOF with a NULL buffer is libuv's POLLHUP shortcut (no read
         * returned 0): maybe an RST right behind the data. One a read
         * returned is a FIN, or an RST whose error a write already took. */
        if (nread == UV_ENOBUFS && r->pending != BH_OK)
            status = r->pending;
        else if (nread == UV_EOF && bh__stream_eof_is_reset(s, ub->base != NULL))
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
    if (r->timer)
        r->timer->last_read = uv_now(s->loop);
    r->cb(r, BH_OK, r->ctx);

    if ((r->flags & READER_DONE) || uv_is_closing((uv_handle_t *)s))
        return;
    /* Still reading with a full buffer: the callback could not make room, so
     * no further read can succeed. Report it now rather than on the next
     * readable event, which a peer awaiting a reply would never cause. */
    if ((r->flags & READER_READING) && bh_buf_len(r->buf) == bh_buf_max_len(r->buf)) {
        reader_finish(r, BH_ETOOLONG);
        return;
    }
    if (!(r->flags & READER_KEEP) && bh_buf_len(r->buf) == 0)
        (void)bh_buf_recycle(r->buf);
}

int bh_reader_start(bh_reader *r)
{
    if (!r)
        return BH_EINVAL;
    if ((r->flags & READER_DONE) || uv_is_closing((uv_handle_t *)r->stream))
        return BH_ECLOSED;
    if (r->flags & READER_READING)
        return BH_OK;
    bh_reader *other = r->stream->data;
    if (r->stream->read_cb == on_read && other && other != r && (other->flags & READER_READING)) {
        /* Hand-over: libuv goes on reading with the same callbacks, which
         * find the reader through stream->data. */
        other->flags &= ~READER_READING;
        timer_stop(other);
        r->stream->data = r;
        r->flags |= READER_READING;
        timer_arm(r);
        return BH_OK;
    }
    r->stream->data = r;
    int rc = uv_read_start(r->stream, on_alloc, on_read);
    if (rc != 0)
        return rc;
    r->flags |= READER_READING;
    timer_arm(r);
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
    timer_stop(r);
    return BH_OK;
}

int bh_reader_keep_block(bh_reader *r, int enable)
{
    if (!r)
        return BH_EINVAL;
    if (enable)
        r->flags |= READER_KEEP;
    else
        r->flags &= ~READER_KEEP;
    return BH_OK;
}

int bh_reader_set_idle_timeout(bh_reader *r, uint64_t ms)
{
    if (!r)
        return BH_EINVAL;
    if (ms == 0) {
        timer_release(r);
        return BH_OK;
    }
    if (r->flags & READER_DONE)
        return BH_ECLOSED;
    if (!r->timer) {
        struct bh_reader_timer *tm = bh_malloc(sizeof *tm);
        if (!tm)
            return BH_ENOMEM;
        int rc = uv_timer_init(r->stream->loop, &tm->handle);
        if (rc != 0) {
            bh_free(tm);
            return rc;
        }
        tm->r = r;
        r->timer = tm;
    }
    r->timer->idle_ms = ms;
    if (r->flags & READER_READING)
        timer_arm(r);
    return BH_OK;
}

void bh_reader_close(bh_reader *r)
{
    if (!r)
        return;
    bh_reader_stop(r);
    timer_release(r);
    r->flags |= READER_DONE;
}
