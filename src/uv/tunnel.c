/* tunnel.c - bh_tunnel: lifecycle, the buffer path, half-close and reset.
 * The splice fast path is in tunnel_splice.c, the idle timeout in
 * tunnel_idle.c.
 *
 * Direction d reads side d with a bh_reader into side[d].in, freezes each
 * read into one slice (no copy) and queues it fire-and-forget on
 * side[1 - d].out. A refused slice waits in side[d].held with reading
 * stopped; the queue's drain callback offers it again and resumes. EOF is
 * passed on with bh_writeq_shutdown() (the queue flushes first); a direction
 * is done when that shutdown completed, the tunnel when both are. Anything
 * else ends the tunnel at once with both TCP sides reset.
 *
 * The queues only report a write error to a waiting producer or a later
 * call (BH_ECLOSED): the tunnel reports that as UV_EPIPE. A failed write
 * also shows on the destination's own read side (reset or EOF with
 * SO_ERROR), which usually ends the tunnel first with UV_ECONNRESET. */
#include <string.h>
#include <sys/socket.h>

#include "tunnel_internal.h"

/* Large reads in a row before a direction tries the splice path. */
#define SPLICE_AFTER_READS 2u

bh_tunnel_config bh_tunnel_config_default(void)
{
    bh_tunnel_config c = {BH_READ_RESERVE_DEFAULT, BH_TUNNEL_MAX_BYTES_DEFAULT, 0, 1};
    return c;
}

static int dir_of_reader(const bh_tunnel *t, const bh_reader *r)
{
    return r == &t->side[0].reader ? 0 : 1;
}

/* Queue q writes side s: it carries direction 1 - s. */
static int dir_of_queue(const bh_tunnel *t, const bh_writeq *q)
{
    return q == &t->side[1].out ? 0 : 1;
}

static int queue_error(int rc) { return rc == BH_ECLOSED ? UV_EPIPE : rc; }

void bh__tunnel_wait(bh_tunnel *t, int d, int on)
{
    bh_tunnel_side *s = &t->side[d];
    if (on == ((s->flags & DIR_BLOCKED) != 0))
        return;
    uint64_t now = uv_now(t->loop);
    if (on) {
        s->flags |= DIR_BLOCKED;
        s->wait_since = now;
        t->backpressure[d]++;
    } else {
        s->flags &= ~DIR_BLOCKED;
        t->backpressure_ms[d] += now - s->wait_since;
    }
}

/* ---- ending --------------------------------------------------------------- */

static void tunnel_closed_one(bh_tunnel *t)
{
    if (--t->closing > 0)
        return;
    bh__tunnel_idle_free(t);
    bh__tunnel_splice_free(t);
    for (int s = 0; s < 2; s++)
        bh_buf_free(&t->side[s].in);
    struct bh_tunnel_stats st;
    bh_tunnel_stats(t, &st);
    t->cb(t, t->status, &st, t->ctx);
}

static void on_stream_closed(uv_handle_t *h)
{
    bh_reader *r = h->data;
    tunnel_closed_one(r->ctx);
}

static void on_aux_closed(uv_handle_t *h) { tunnel_closed_one(h->data); }

/* Closes s with an RST when it is TCP. uv_tcp_close_reset() refuses a handle
 * whose write side was shut down; SO_LINGER 0 still resets it on close. */
static void close_stream(uv_stream_t *s, int reset)
{
    if (reset && uv_handle_get_type((uv_handle_t *)s) == UV_TCP) {
        if (uv_tcp_close_reset((uv_tcp_t *)s, on_stream_closed) == 0)
            return;
        uv_os_fd_t fd;
        struct linger l = {1, 0};
        if (uv_fileno((uv_handle_t *)s, &fd) == 0)
            (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    uv_close((uv_handle_t *)s, on_stream_closed);
}

void bh__tunnel_end(bh_tunnel *t, int status)
{
    if (t->ending)
        return;
    t->ending = 1;
    t->status = status;
    t->closing = 2;
    t->closing += bh__tunnel_idle_close(t, on_aux_closed);
    t->closing += bh__tunnel_splice_close(t, on_aux_closed);
    for (int d = 0; d < 2; d++) {
        bh_tunnel_side *s = &t->side[d];
        if (status != 0 && !(s->flags & DIR_DONE))
            s->flags |= DIR_RESET;
        bh__tunnel_wait(t, d, 0);
        s->flags &= ~(DIR_SPLICE | DIR_SWITCHING);
        bh_reader_stop(&s->reader);
        bh_writeq_close(&s->out);
        bh_bytes_release(&s->held);
    }
    for (int d = 0; d < 2; d++)
        close_stream(t->side[d].stream, status != 0);
}

void bh_tunnel_abort(bh_tunnel *t)
{
    if (t)
        bh__tunnel_end(t, BH_ECANCELED);
}

/* ---- the buffer path ------------------------------------------------------ */

static void start_reading(bh_tunnel *t, int d)
{
    bh_tunnel_side *s = &t->side[d];
    if (t->ending || (s->flags & (DIR_READING | DIR_EOF | DIR_SPLICE)) || s->held.len > 0)
        return;
    int rc = bh_reader_start(&s->reader);
    if (rc != BH_OK) {
        bh__tunnel_end(t, rc);
        return;
    }
    s->flags |= DIR_READING;
}

static void stop_reading(bh_tunnel_side *s)
{
    s->flags &= ~DIR_READING;
    bh_reader_stop(&s->reader);
}

/* Offers side[d].held to the destination queue, in pieces of at most
 * max_bytes. Returns 0 when all of it was queued, 1 when the queue refused
 * (the rest stays held, reading stops), -1 when the tunnel ended. */
static int offer_held(bh_tunnel *t, int d)
{
    bh_tunnel_side *s = &t->side[d];
    bh_writeq *q = &t->side[1 - d].out;
    size_t max = t->max_bytes;
    while (s->held.len > 0) {
        int rc;
        if (s->held.len <= max) {
            rc = bh_writeq_try_write_ff(q, &s->held);
        } else {
            bh_bytes part, rest;
            /* In range by construction: slices cannot fail. */
            (void)bh_bytes_slice(&s->held, 0, max, &part);
            rc = bh_writeq_try_write_ff(q, &part);
            if (rc == BH_OK) {
                (void)bh_bytes_slice(&s->held, max, s->held.len - max, &rest);
                bh_bytes_release(&s->held);
                s->held = rest;
            } else {
                bh_bytes_release(&part);
            }
        }
        if (rc == BH_EFULL) {
            stop_reading(s);
            bh__tunnel_wait(t, d, 1);
            return 1;
        }
        if (rc != BH_OK) {
            bh__tunnel_end(t, queue_error(rc));
            bh_bytes_release(&s->held); /* also when the tunnel was already ending */
            return -1;
        }
    }
    return 0;
}

static void on_drain(bh_writeq *q, void *ctx);

/* The drain callback of direction d's queue runs at or below low. */
static void set_low_water(bh_tunnel *t, int d, size_t low)
{
    bh_writeq_set_drain_cb(&t->side[1 - d].out, low, on_drain, t);
}

static int queue_idle(bh_tunnel *t, int d)
{
    struct bh_writeq_stats ws;
    bh_tunnel_side *dst = &t->side[1 - d];
    bh_writeq_stats(&dst->out, &ws);
    return ws.queued_items == 0 && t->side[d].held.len == 0 &&
           uv_stream_get_write_queue_size(dst->stream) == 0;
}

/* Moves a switching direction to the splice path once its queue is idle. */
static void maybe_splice(bh_tunnel *t, int d)
{
    bh_tunnel_side *s = &t->side[d];
    if (!(s->flags & DIR_SWITCHING) || (s->flags & DIR_EOF) || !queue_idle(t, d))
        return;
    s->flags &= ~DIR_SWITCHING;
    stop_reading(s);
    if (bh__tunnel_splice_begin(t, d) != 0)
        bh__tunnel_resume_buffers(t, d, 1);
}

void bh__tunnel_resume_buffers(bh_tunnel *t, int d, int forever)
{
    bh_tunnel_side *s = &t->side[d];
    s->flags &= ~(DIR_SPLICE | DIR_SWITCHING);
    if (forever)
        s->flags |= DIR_NOSPLICE;
    s->full_reads = 0;
    set_low_water(t, d, t->max_bytes / 2);
    start_reading(t, d);
}

/* Counts large reads of direction d: a read that filled the space offered
 * (at least a quarter of the reserve) says the source has more queued. */
static void note_read(bh_tunnel *t, int d, size_t n)
{
    bh_tunnel_side *s = &t->side[d];
    if (s->flags & (DIR_NOSPLICE | DIR_SWITCHING))
        return;
    if (bh_buf_spare(&s->in) == 0 && n >= t->read_reserve / 4) {
        if (++s->full_reads >= SPLICE_AFTER_READS) {
            /* Drain callback at an empty queue, where the switch happens. */
            s->flags |= DIR_SWITCHING;
            set_low_water(t, d, 0);
        }
    } else {
        s->full_reads = 0;
    }
}

static void on_read(bh_reader *r, int status, void *ctx)
{
    bh_tunnel *t = ctx;
    int d = dir_of_reader(t, r);
    bh_tunnel_side *s = &t->side[d];
    if (status == BH_OK) {
        bh__tunnel_touch(t);
        size_t n = bh_buf_len(&s->in);
        note_read(t, d, n);
        (void)bh_buf_freeze(&s->in, &s->held); /* held is empty while reading */
        if (offer_held(t, d) == 0)
            maybe_splice(t, d);
        return;
    }
    s->flags &= ~DIR_READING;
    if (status == UV_EOF) { /* bh_reader reports an RST seen as EOF as a reset */
        s->flags |= DIR_EOF;
        bh__tunnel_pass_eof(t, d);
        return;
    }
    /* Linux reports an RST that followed the peer's FIN to a read as EPIPE. */
    bh__tunnel_end(t, status == UV_EPIPE ? UV_ECONNRESET : status);
}

static void on_drain(bh_writeq *q, void *ctx)
{
    bh_tunnel *t = ctx;
    int d = dir_of_queue(t, q);
    if (t->ending || (t->side[d].flags & DIR_SPLICE))
        return;
    if (t->side[d].held.len > 0 && offer_held(t, d) != 0)
        return;
    bh__tunnel_wait(t, d, 0);
    maybe_splice(t, d);
    start_reading(t, d);
}

static void on_shutdown(bh_writeq *q, int status, void *ctx)
{
    bh_tunnel *t = ctx;
    int d = dir_of_queue(t, q);
    if (t->ending)
        return;
    if (status != 0) {
        bh__tunnel_end(t, status);
        return;
    }
    t->side[d].flags |= DIR_DONE;
    t->side[d].flags |= DIR_EOF_PASSED;
    if (t->side[1 - d].flags & DIR_DONE)
        bh__tunnel_end(t, 0);
}

void bh__tunnel_pass_eof(bh_tunnel *t, int d)
{
    int rc = bh_writeq_shutdown(&t->side[1 - d].out, on_shutdown, t);
    if (rc != BH_OK)
        bh__tunnel_end(t, queue_error(rc));
}

/* ---- start, stats ------------------------------------------------------------ */

static int stream_ok(uv_loop_t *loop, uv_stream_t *s)
{
    return s->loop == loop && uv_is_readable(s) && uv_is_writable(s) &&
           !uv_is_closing((uv_handle_t *)s);
}

int bh_tunnel_start(bh_tunnel *t, uv_loop_t *loop, uv_stream_t *a, uv_stream_t *b,
                    bh_buf *a_tail, bh_buf *b_tail, const bh_tunnel_config *cfg,
                    bh_tunnel_done_cb cb, void *ctx)
{
    bh_tunnel_config c = cfg ? *cfg : bh_tunnel_config_default();
    if (!t || !loop || !a || !b || a == b || !cb || !stream_ok(loop, a) || !stream_ok(loop, b))
        return BH_EINVAL;
    if (c.read_reserve == 0)
        c.read_reserve = BH_READ_RESERVE_DEFAULT;
    if (c.max_bytes == 0)
        c.max_bytes = BH_TUNNEL_MAX_BYTES_DEFAULT;
    void *data = t->data;
    memset(t, 0, sizeof *t);
    t->data = data;
    t->loop = loop;
    t->read_reserve = c.read_reserve;
    t->max_bytes = c.max_bytes;
    t->cb = cb;
    t->ctx = ctx;
    bh_writeq_config qc = bh_writeq_config_default();
    qc.max_bytes = c.max_bytes;
    uv_stream_t *streams[2] = {a, b};
    void *saved[2] = {a->data, b->data};
    for (int d = 0; d < 2; d++) {
        bh_tunnel_side *s = &t->side[d];
        s->stream = streams[d];
        /* Arguments were checked: these only store fields. */
        (void)bh_buf_init(&s->in, c.read_reserve);
        (void)bh_reader_init(&s->reader, s->stream, &s->in, c.read_reserve, on_read, t);
        (void)bh_writeq_init(&s->out, loop, s->stream, &qc);
    }
    /* The timer is the only allocation before the start: nothing has
     * changed yet when it fails. */
    if (bh__tunnel_idle_alloc(t, c.idle_timeout_ms) != BH_OK) {
        a->data = saved[0];
        b->data = saved[1];
        return BH_ENOMEM;
    }
    for (int d = 0; d < 2; d++) {
        int rc = bh_reader_start(&t->side[d].reader);
        if (rc != BH_OK) {
            bh_reader_stop(&t->side[0].reader);
            a->data = saved[0];
            b->data = saved[1];
            bh__tunnel_idle_free(t);
            return rc;
        }
        t->side[d].flags |= DIR_READING;
    }
    for (int d = 0; d < 2; d++) {
        set_low_water(t, d, c.max_bytes / 2);
        if (!c.splice || uv_handle_get_type((uv_handle_t *)a) != UV_TCP ||
            uv_handle_get_type((uv_handle_t *)b) != UV_TCP)
            t->side[d].flags |= DIR_NOSPLICE;
    }
    bh__tunnel_idle_start(t);
    /* The tails go first. Nothing is queued yet and a piece never exceeds
     * the budget, so the first piece is refused only when the queue's ring
     * cannot be allocated: the tunnel then ends with BH_ENOMEM (reported
     * by done_cb) and the tails are released. */
    bh_buf *tails[2] = {a_tail, b_tail};
    for (int d = 0; d < 2; d++) {
        if (!tails[d] || bh_buf_len(tails[d]) == 0)
            continue;
        bh_buf tail;
        (void)bh_buf_take_tail(tails[d], &tail);
        (void)bh_buf_freeze(&tail, &t->side[d].held);
        bh_buf_free(&tail);
        offer_held(t, d);
    }
    return BH_OK;
}

int bh_tunnel_peer_gone(int status)
{
    return status == UV_ECONNRESET || status == UV_EPIPE || status == UV_ENOTCONN ||
           status == UV_ECONNABORTED;
}

void bh_tunnel_stats(const bh_tunnel *t, struct bh_tunnel_stats *out)
{
    memset(out, 0, sizeof *out);
    for (int d = 0; d < 2; d++) {
        unsigned f = t->side[d].flags;
        out->spliced[d] = t->spliced[d];
        out->eof[d] = (f & DIR_EOF_PASSED) != 0;
        out->reset[d] = (f & DIR_RESET) != 0;
        out->backpressure[d] = t->backpressure[d];
        out->backpressure_ms[d] = t->backpressure_ms[d];
        struct bh_writeq_stats ws;
        bh_writeq_stats(&t->side[1 - d].out, &ws);
        out->bytes[d] = ws.written_bytes + t->spliced[d];
        out->splicing[d] = (t->side[d].flags & DIR_SPLICE) != 0;
        if (t->side[d].flags & DIR_BLOCKED)
            out->backpressure_ms[d] += uv_now(t->loop) - t->side[d].wait_since;
    }
}
