/* pool.c - http_router's idle upstream connections: per route a LIFO list of
 * at most --pool-size connections whose last response ended cleanly, kept
 * for --idle-timeout and reused by any client connection of the same loop.
 * An idle connection keeps reading: the server closing it (or sending
 * anything unasked) takes it out of the pool at once (response.c). */
#include "http_router.h"

hr_up *hr_pool_get(hr_server *s, const hr_route *route)
{
    hr_pool *p = &s->pools[route->index];
    hr_up *up = p->idle;
    if (!up)
        return NULL;
    p->idle = up->pool_next;
    p->count--;
    up->pool_next = NULL;
    up->pooled = 0;
    uv_timer_stop(&up->timer);
    return up;
}

void hr_pool_put(hr_up *up)
{
    hr_server *s = up->s;
    hr_pool *p = &s->pools[up->route->index];
    if (s->stopping || p->count >= s->cfg->pool_size) {
        hr_up_close(up);
        return;
    }
    up->pooled = 1;
    up->reused = 0;
    up->pool_next = p->idle;
    p->idle = up;
    p->count++;
    uv_timer_start(&up->timer, hr_up_timer_cb, s->cfg->idle_timeout_ms, 0);
    bh_reader_start(&up->rd);
}

void hr_pool_remove(hr_up *up)
{
    hr_pool *p = &up->s->pools[up->route->index];
    for (hr_up **pp = &p->idle; *pp; pp = &(*pp)->pool_next) {
        if (*pp == up) {
            *pp = up->pool_next;
            p->count--;
            break;
        }
    }
    up->pool_next = NULL;
    up->pooled = 0;
}

void hr_pool_close_all(hr_server *s)
{
    size_t n = hr_table_size(s->cfg->table);
    for (size_t i = 0; i < n; i++)
        while (s->pools[i].idle)
            hr_up_close(s->pools[i].idle);
}
