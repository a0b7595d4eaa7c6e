/* stream_internal.h - stream helpers shared by the libuv adapter's sources. */
#ifndef BH_STREAM_INTERNAL_H
#define BH_STREAM_INTERNAL_H

#include <uv.h>

/* Returns 1 when an EOF libuv reported on s is really a reset: s is TCP and
 * its socket has a pending error (SO_ERROR, which this reads and clears), or
 * (Linux) is closed while our write side is still open. Costs one or two
 * getsockopt calls: ask only about an EOF no read returned (libuv's POLLHUP
 * shortcut, reported with a NULL buffer). */
int bh__stream_eof_is_reset(uv_stream_t *s);

#endif
