/* tunnel_internal.h - what the buffer path (tunnel.c) and the splice fast
 * path (tunnel_splice.c) of bh_tunnel share. Direction d reads side d and
 * writes side 1 - d; its state lives in side[d].flags. */
#ifndef BH_TUNNEL_INTERNAL_H
#define BH_TUNNEL_INTERNAL_H

#include <bytes_handoff/alloc.h>
#include <bytes_handoff/uv.h>

enum {
    DIR_READING = 1u,   /* the side's bh_reader is started */
    DIR_EOF = 2u,       /* the source ended cleanly */
    DIR_DONE = 4u,      /* the destination's write side was shut down */
    DIR_SWITCHING = 8u, /* large reads seen: splice once the queue is empty */
    DIR_SPLICE = 16u,   /* on the splice path */
    DIR_NOSPLICE = 32u, /* splice failed or is not possible: buffers for good */
    DIR_WAIT_IN = 64u,  /* splicing, waiting for the source to be readable */
    DIR_WAIT_OUT = 128u, /* splicing, waiting for the destination to be writable */
    DIR_BLOCKED = 256u,  /* waiting on the destination (backpressure, counted) */
    DIR_EOF_PASSED = 512u, /* ended with a clean EOF passed on (stats eof) */
    DIR_RESET = 1024u      /* cut short: its destination was reset (stats reset) */
};

/* Ends the tunnel with status (0 only when both directions are done):
 * stops everything, closes the handles (resetting TCP sides when status is
 * not 0); done_cb follows from the last close callback. Idempotent. */
void bh__tunnel_end(bh_tunnel *t, int status);

/* Direction d starts (on = 1) or ends (on = 0) waiting on its destination:
 * counted in st.backpressure[d], timed in st.backpressure_ms[d]. Repeated
 * calls with the same on change nothing. */
void bh__tunnel_wait(bh_tunnel *t, int d, int on);

/* Records that bytes moved (idle timeout). */
void bh__tunnel_touch(bh_tunnel *t);

/* The source of direction d ended cleanly and everything read from it was
 * handed to the destination: shut the destination's write side down once its
 * queue has drained. */
void bh__tunnel_pass_eof(bh_tunnel *t, int d);

/* Direction d leaves the splice path (its pipe is empty) for the buffer
 * path: for good when forever is set, else until large reads are seen
 * again. */
void bh__tunnel_resume_buffers(bh_tunnel *t, int d, int forever);

/* Puts direction d on the splice path (its queue is empty, its reader
 * stopped) and sets DIR_SPLICE. Returns 0, or an error when splicing is not
 * possible (no pipe or fd left, not Linux): then nothing changed. */
int bh__tunnel_splice_begin(bh_tunnel *t, int d);

/* Closing: stops polling, closes the pipes and dup'ed fds, uv_close()s the
 * poll handles with close_cb. Returns how many handles are closing. */
int bh__tunnel_splice_close(bh_tunnel *t, uv_close_cb close_cb);

/* The idle timeout (tunnel_idle.c). alloc: allocates the timer when
 * timeout_ms > 0 (BH_OK, or BH_ENOMEM with nothing changed); start: starts it
 * (nothing without one); close: uv_close()s it with close_cb, returns how
 * many handles are closing (0 or 1); free: frees it once closed, or when a
 * start failed before it began (t->idle NULL after). */
int bh__tunnel_idle_alloc(bh_tunnel *t, uint64_t timeout_ms);
void bh__tunnel_idle_start(bh_tunnel *t);
int bh__tunnel_idle_close(bh_tunnel *t, uv_close_cb close_cb);
void bh__tunnel_idle_free(bh_tunnel *t);

/* Frees the splice state once every handle closed (t->splice NULL after). */
void bh__tunnel_splice_free(bh_tunnel *t);

#endif
