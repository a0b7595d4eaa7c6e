/* tunnel_idle.c - bh_tunnel's idle timeout: one timer in its own
 * allocation, made only when a timeout is set (an idle tunnel without one
 * carries nothing of it).
 *
 * Idle means no read and no write (nginx's proxy_timeout): reads touch as
 * they happen, writes (fire-and-forget, no callback) are noticed when the
 * timer fires. The queues count a uv_write's bytes when it completes,
 * libuv's write queue size shrinks as the kernel takes parts of it: either
 * changing is a write. */
#include <string.h>

#include "tunnel_internal.h"

/* The timer and what it last saw. */
struct bh_tunnel_idle {
    uv_timer_t timer;
    uint64_t timeout_ms;   /* the config's idle_timeout_ms */
    uint64_t last_active;  /* uv_now() of the last byte moved */
    uint64_t last_written; /* bytes written both ways at the last check */
    uint64_t last_unsent;  /* libuv write queue sizes at the last check */
};

int bh__tunnel_idle_alloc(bh_tunnel *t, uint64_t timeout_ms)
{
    if (timeout_ms == 0)
        return BH_OK;
    if (!(t->idle = bh_malloc(sizeof *t->idle)))
        return BH_ENOMEM;
    memset(t->idle, 0, sizeof *t->idle);
    t->idle->timeout_ms = timeout_ms;
    return BH_OK;
}

void bh__tunnel_idle_free(bh_tunnel *t)
{
    bh_free(t->idle);
    t->idle = NULL;
}

void bh__tunnel_touch(bh_tunnel *t)
{
    if (t->idle)
        t->idle->last_active = uv_now(t->loop);
}

static void on_timer(uv_timer_t *timer)
{
    bh_tunnel *t = timer->data;
    struct bh_tunnel_idle *idle = t->idle;
    struct bh_tunnel_stats st;
    bh_tunnel_stats(t, &st);
    uint64_t written = st.bytes[0] + st.bytes[1];
    uint64_t unsent = uv_stream_get_write_queue_size(t->side[0].stream) +
                      uv_stream_get_write_queue_size(t->side[1].stream);
    if (written != idle->last_written || unsent != idle->last_unsent) {
        idle->last_written = written;
        idle->last_unsent = unsent;
        bh__tunnel_touch(t);
    }
    uint64_t quiet = uv_now(t->loop) - idle->last_active;
    if (quiet >= idle->timeout_ms) {
        bh__tunnel_end(t, UV_ETIMEDOUT);
        return;
    }
    uv_timer_start(timer, on_timer, idle->timeout_ms - quiet, 0);
}

void bh__tunnel_idle_start(bh_tunnel *t)
{
    if (!t->idle)
        return;
    (void)uv_timer_init(t->loop, &t->idle->timer); /* cannot fail */
    t->idle->timer.data = t;
    bh__tunnel_touch(t);
    uv_timer_start(&t->idle->timer, on_timer, t->idle->timeout_ms, 0);
}

int bh__tunnel_idle_close(bh_tunnel *t, uv_close_cb close_cb)
{
    if (!t->idle)
        return 0;
    uv_close((uv_handle_t *)&t->idle->timer, close_cb);
    return 1;
}
