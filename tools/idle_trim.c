/* idle_trim.c - bh_trim() and bh_tunnel_pipes_trim() after a loop stayed
 * without connections for a while (see idle_trim.h). */
#include "idle_trim.h"

#include <bytes_handoff.h>
#include <bytes_handoff/uv.h>

static void on_idle_long_enough(uv_timer_t *timer)
{
    (void)timer;
    bh_trim();
    bh_tunnel_pipes_trim();
}

int idle_trim_init(idle_trim *t, uv_loop_t *loop, uint64_t delay_ms)
{
    int rc = uv_timer_init(loop, &t->timer);
    if (rc != 0)
        return rc;
    uv_unref((uv_handle_t *)&t->timer);
    t->delay_ms = delay_ms;
    return 0;
}

void idle_trim_busy(idle_trim *t) { uv_timer_stop(&t->timer); }

void idle_trim_idle(idle_trim *t) { uv_timer_start(&t->timer, on_idle_long_enough, t->delay_ms, 0); }

void idle_trim_close(idle_trim *t)
{
    if (!uv_is_closing((uv_handle_t *)&t->timer))
        uv_close((uv_handle_t *)&t->timer, NULL);
}
