/** @file bytes_handoff/uv/reader.h
 * @brief bh_reader: reads a libuv stream into a bh_buf (the read adapter).
 *
 * Part of the libuv adapter library, libbytes_handoff_uv; include
 * <bytes_handoff/uv.h> for all of it. Call every function on the loop thread
 * unless it says otherwise. */
#ifndef BYTES_HANDOFF_UV_READER_H
#define BYTES_HANDOFF_UV_READER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "../buf.h"
#include "../error.h"
#include "../export.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Spare space a reader asks its buffer for before each read. */
#define BH_READ_RESERVE_DEFAULT ((size_t)16 * 1024)

/** A read adapter (struct bh_reader).
 * @since 0.1 */
typedef struct bh_reader bh_reader;

/** The read callback, called on the loop thread, with status:
 * - BH_OK: bytes were appended to the reader's buffer (never for nothing);
 * - UV_EOF: end of stream, delivered once; the unconsumed tail stays in the
 *   buffer, readable and splittable. On TCP, an EOF that was really an RST
 *   (libuv reports an RST right behind the last data as EOF; a read after an
 *   RST whose error a write took returns 0) is delivered as UV_ECONNRESET,
 *   so a reset stream never looks complete;
 * - BH_ETOOLONG: the buffer is full at its max_len and the callback consumed
 *   nothing (reported once, right after that callback returns, or on the next
 *   read when reading was restarted with a full buffer); nothing was read;
 * - BH_ENOMEM: the buffer could not grow for the next read; nothing was read;
 * - UV_ETIMEDOUT: no byte arrived for the read-idle timeout while reading
 *   (see bh_reader_set_idle_timeout()); the buffer is as the last callback
 *   left it;
 * - another negative libuv code: a read error (UV_ECONNRESET, ...).
 * Every status but BH_OK is final: reading has stopped before the callback
 * runs, no further callback follows, and bh_reader_start() returns BH_ECLOSED.
 * Inside the callback the user may peek, split, advance, take the tail
 * (the reader's buffer is then empty and keeps working), free the buffer's
 * block, stop or restart the reader, or uv_close() the stream (the reader then
 * only asks uv_is_closing() before returning and never reads or stops that
 * stream again). r and the buffer must stay valid until the callback returns;
 * free them from the stream's close callback (after bh_reader_close() when a
 * read-idle timeout was set).
 * @param r the reader.
 * @param status as above.
 * @param ctx the ctx given to bh_reader_init().
 * @since 0.1 */
typedef void (*bh_read_cb)(bh_reader *r, int status, void *ctx);

struct bh_reader_timer; /* read-idle timer block, see bh_reader_set_idle_timeout() */

/** A read adapter bound to one stream and one buffer; caller-owned,
 * embedded by value, every field private. It allocates nothing itself unless
 * a read-idle timeout is set: the buffer takes a block from the thread's
 * block cache or grows through bh_buf_reserve_read() when a read needs
 * room, and when a callback leaves the buffer empty the block goes back to
 * that cache (see bh_reader_keep_block()).
 *
 * What an idle connection costs (x86-64, glibc, libuv 1.44): an idle reader
 * whose callback emptied its buffer holds sizeof(bh_reader) = 56 bytes and
 * its bh_buf sizeof(bh_buf) = 40 bytes, no block; a read-idle timeout adds
 * one allocation of 176 bytes (a uv_timer_t, the period and the time of the
 * last read). The stream handle (uv_tcp_t, 248 bytes) and the write queue
 * (see bh_writeq_init()) are the rest. The thread's block cache is shared by
 * all connections (at most #BH_BLOCK_CACHE_MAX_BLOCKS_DEFAULT blocks,
 * #BH_BLOCK_CACHE_MAX_BYTES_DEFAULT bytes by default).
 * @since 0.1 */
struct bh_reader {
    uv_stream_t *stream; /**< private: the stream read from; stream->data == this reader */
    bh_buf *buf;         /**< private: where bytes land; owned by the caller */
    size_t read_reserve; /**< private: spare bytes requested before each read */
    bh_read_cb cb;       /**< private: the read callback */
    void *ctx;           /**< private: its context */
    unsigned flags;      /**< private: reading / finished / keep block */
    int pending;         /**< private: status to report for the zero-length read just offered */
    struct bh_reader_timer *timer; /**< private: read-idle timer, NULL while none is set */
};

/** Binds a reader to a stream and a buffer. Does not start reading. The
 * reader stores itself in s->data (libuv's callbacks find it there): keep
 * your own state in ctx and do not overwrite s->data while the reader is
 * bound.
 * @param r the reader.
 * @param s a TCP, pipe or TTY stream, owned by the caller and alive while r
 *        is used.
 * @param buf where bytes land, owned by the caller and alive while r is used.
 * @param read_reserve spare space requested before each read (0 selects
 *        #BH_READ_RESERVE_DEFAULT), clamped to what the buffer's max_len
 *        still allows.
 * @param cb the read callback.
 * @param ctx passed to cb.
 * @return #BH_OK or #BH_EINVAL (r, s, buf or cb NULL).
 * @since 0.1 */
BH_EXPORT int bh_reader_init(bh_reader *r, uv_stream_t *s, bh_buf *buf, size_t read_reserve,
                             bh_read_cb cb, void *ctx);

/** Starts (or resumes) reading; safe inside the callback. Idempotent.
 * When another bh_reader is reading the same stream, r takes the stream over
 * without a pause: that reader is stopped (as by bh_reader_stop(); bytes it
 * already read stay in its buffer, e.g. for a bh_tunnel's tail) and libuv's
 * reading goes on for r, with no uv_read_stop()/uv_read_start() pair (each
 * costs epoll_ctl calls). A mode switch (parser to tunnel) can so keep
 * reading until the new reader starts.
 * @param r the reader.
 * @return #BH_OK, #BH_EINVAL (r NULL), #BH_ECLOSED once a final status was
 *         reported or the stream is closing, or the libuv code from
 *         uv_read_start().
 * @since 0.1 */
BH_EXPORT int bh_reader_start(bh_reader *r);

/** Pauses reading (backpressure): no callback runs until
 * bh_reader_start(). Idempotent; safe inside the callback and after
 * uv_close() of the stream (until its close callback has run). Use it
 * instead of uv_read_stop().
 * @param r the reader.
 * @return #BH_OK or #BH_EINVAL (r NULL).
 * @since 0.1 */
BH_EXPORT int bh_reader_stop(bh_reader *r);

/** Keeps the buffer's block while idle instead of giving it back to the
 * thread's block cache after each callback that leaves the buffer empty (the
 * default). For latency-critical connections: the next read needs no cache
 * lookup, at the cost of one block per idle connection.
 * @param r the reader.
 * @param enable nonzero keeps the block, 0 gives it back (the default).
 * @return #BH_OK or #BH_EINVAL (r NULL).
 * @since 0.2 */
BH_EXPORT int bh_reader_keep_block(bh_reader *r, int enable);

/** Sets the read-idle timeout, like libevent's bufferevent_set_timeouts():
 * when the reader is reading and no byte arrives for ms milliseconds (loop
 * time; counted from bh_reader_start() or the last read), reading stops and
 * the callback receives UV_ETIMEDOUT once, as a final status. A pause with
 * bh_reader_stop() does not count: the period starts again on restart. The
 * first call with ms > 0 allocates one uv_timer_t (through the allocator
 * hook, separately from r) on the stream's loop; disabling or
 * bh_reader_close() closes it and its own close callback frees it later in
 * the loop iteration without touching r, so a disabled reader has no timer.
 * A reader that has one must be closed with bh_reader_close() before it is
 * freed. Loop thread; safe inside the callback; setting it again re-arms the
 * period from now.
 * @param r the reader.
 * @param ms the period in milliseconds; 0 disables the timeout.
 * @return #BH_OK, #BH_EINVAL (r NULL), #BH_ECLOSED (finished and ms > 0),
 *         #BH_ENOMEM, or the libuv code of uv_timer_init(); nothing changes
 *         on error.
 * @since 0.2 */
BH_EXPORT int bh_reader_set_idle_timeout(bh_reader *r, uint64_t ms);

/** Stops reading for good and lets go of the timer, if any (closed now,
 * freed by its close callback, which never touches r): r may be freed right
 * after, e.g. together with the stream from its close callback. Later starts
 * return #BH_ECLOSED. Call it before or together with uv_close() of the
 * stream; it is required only for readers that had a read-idle timeout,
 * harmless for others. Idempotent; safe inside the callback. The buffer is
 * the caller's and stays as it is.
 * @param r the reader; NULL is ignored.
 * @since 0.2 */
BH_EXPORT void bh_reader_close(bh_reader *r);

#ifdef __cplusplus
}
#endif

#endif
