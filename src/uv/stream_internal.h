/* stream_internal.h - stream helpers shared by the libuv adapter's sources. */
#ifndef BH_STREAM_INTERNAL_H
#define BH_STREAM_INTERNAL_H

#include <uv.h>

/* Returns 1 when an EOF libuv reported on s is really a reset: s is TCP and
 * its socket has a pending error (SO_ERROR, which this reads and clears), or
 * (Linux) is closed while our write side is still open. read_returned_zero:
 * the EOF came from a read(2) that returned 0 (not from libuv's POLLHUP
 * shortcut, which reports it with a NULL buffer). Then the pending error is
 * not asked for: the FIN was taken in order, and an RST that followed it
 * leaves a complete stream. Only the socket's state is, because an RST whose
 * error a write already took also makes read(2) return 0. One getsockopt
 * call (none when our write side is shut), two for the shortcut. */
int bh__stream_eof_is_reset(uv_stream_t *s, int read_returned_zero);

#endif
