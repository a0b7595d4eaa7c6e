/* idle_trim.h - give memory back once a loop has been without connections
 * for a while, not each time its last connection closes.
 *
 * bh_trim() empties the thread's block and array caches and walks the heap
 * (malloc_trim): worth it when a service goes idle, a waste (and a
 * reallocation of every cached block) when short connections come and go
 * and the count merely touches zero between them. A server calls
 * idle_trim_busy() when a connection opens and idle_trim_idle() when its
 * last one closed; bh_trim() runs once the loop stayed idle for delay_ms,
 * and bh_tunnel_pipes_trim() closes the thread's pooled splice pipes.
 * One uv_timer_t per loop (unreferenced: it never keeps the loop alive), no
 * allocation, no system call per connection. Loop thread only. */
#ifndef BH_TOOLS_IDLE_TRIM_H
#define BH_TOOLS_IDLE_TRIM_H

#include <stdint.h>

#include <uv.h>

typedef struct idle_trim {
    uv_timer_t timer;
    uint64_t delay_ms;
} idle_trim;

/* Initialises t on loop; bh_trim() runs delay_ms after idle_trim_idle()
 * unless idle_trim_busy() came first. Returns 0 or a libuv error. */
int idle_trim_init(idle_trim *t, uv_loop_t *loop, uint64_t delay_ms);

/* A connection opened: a pending trim is called off. */
void idle_trim_busy(idle_trim *t);

/* The last connection closed: trim after the delay (restarts it). */
void idle_trim_idle(idle_trim *t);

/* Closes the timer (it is freed by the loop; t may go once the loop ran its
 * close callbacks). */
void idle_trim_close(idle_trim *t);

#endif
