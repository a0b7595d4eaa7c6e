/** @file bytes_handoff/uv/tunnel.h
 * @brief bh_tunnel: the raw two-way relay after a mode switch, with a splice(2) fast path.
 *
 * Part of the libuv adapter library, libbytes_handoff_uv; include
 * <bytes_handoff/uv.h> for all of it. Call every function on the loop thread
 * unless it says otherwise. */
#ifndef BYTES_HANDOFF_UV_TUNNEL_H
#define BYTES_HANDOFF_UV_TUNNEL_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "../buf.h"
#include "../export.h"
#include "reader.h"
#include "writeq.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @struct bh_tunnel
 * Relays both directions between two connected streams after a mode switch
 * (a parser decided; the rest of the connection is raw bytes) until both
 * directions have ended. Direction 0 is a -> b, direction 1 is b -> a. Per
 * direction it reads the source into a bh_buf with a bh_reader, freezes each
 * read into a slice (no copy) and queues it on a bh_writeq of the
 * destination:
 * - the tails already read by a parser are written first, byte-exact,
 *   without copy;
 * - backpressure: a source stops reading while the destination's queue
 *   refuses its slice (queued bytes above max_bytes) and resumes from the
 *   queue's drain callback, at max_bytes / 2; each such wait (and each wait
 *   of a splicing direction on a full destination socket) is counted and
 *   timed in struct bh_tunnel_stats (backpressure[], backpressure_ms[]);
 * - half-close: EOF on a source is passed on as uv_shutdown() of the
 *   destination's write side once its queue has drained; the tunnel ends
 *   cleanly when both directions have ended so;
 * - reset: a read error on either side ends the tunnel and resets both TCP
 *   sides (uv_tcp_close_reset(), or SO_LINGER 0 and uv_close() when the
 *   write side was already shut down), so a truncated stream never reaches
 *   the other side as a clean end. libuv reports an RST that arrives right
 *   behind the last data it read as UV_EOF; bh_reader (and the splice path)
 *   check SO_ERROR at EOF, so such an EOF counts as a reset (see bh_read_cb);
 * - splice fast path (Linux, both streams TCP, config.splice): once a
 *   direction has seen two reads in a row that filled the space offered (at
 *   least a quarter of read_reserve) and its queue has drained, it moves bytes
 *   socket -> pipe -> socket with splice(2) instead, through a uv_poll_t on
 *   a dup() of each socket (libuv's own handle stays stopped for reading on
 *   the source while the direction splices, and idle for writing on the
 *   destination). It returns to the buffer path after 8 splices in a row
 *   that moved less than a quarter of read_reserve (a trickle costs two
 *   system calls per segment there), and for good on any setup failure (no
 *   pipe or fd: EMFILE, or new fds in the top quarter of RLIMIT_NOFILE, left
 *   for accept()) or splice error other than a connection error. A splicing
 *   tunnel holds up to 6 more fds (a pipe per direction, a dup per socket).
 *
 * Memory per tunnel (user space), per direction: the bytes in flight (the
 * destination queue's budget max_bytes plus one refused read of at most
 * read_reserve bytes) live in blocks of at most read_reserve bytes, each
 * filled to at least 3/4 before the reader takes the next, so at most
 * 2 + (max_bytes + read_reserve) / (3/4 x read_reserve) blocks are alive
 * (the one being read into and the partly written head included); plus the
 * queue's ring and batch array, at most 1024 x (sizeof(bh_queue_item) +
 * sizeof(struct iovec)), 56 KiB. With the defaults (16 KiB, 256 KiB) that is
 * at most 25 blocks (about 400 KiB) and 56 KiB per direction; test_tunnel
 * checks this bound with the allocator hook's peak live bytes. A splicing
 * direction adds its pipe (kernel memory, 64 KiB by default) and no user
 * memory.
 *
 * The tunnel allocates nothing itself: everything it needs is embedded in
 * bh_tunnel; the buffers' blocks and the queues' rings come through the
 * allocator hook. All functions and callbacks run on the loop thread.
 */
/** A raw bidirectional relay (struct bh_tunnel).
 * @since 0.2 */
typedef struct bh_tunnel bh_tunnel;

/**
 * Counters of a tunnel, filled by bh_tunnel_stats() (like struct
 * bh_writeq_stats). Index 0 is a -> b, 1 is b -> a.
 * @since 0.2
 */
struct bh_tunnel_stats {
    uint64_t bytes[2];   /**< bytes the destination's kernel took (tails included) */
    uint64_t spliced[2]; /**< of those, bytes moved by splice(2) */
    int eof[2];          /**< the direction ended with a clean EOF passed on */
    int reset[2];        /**< the direction was cut short (error, reset, timeout,
                              abort): its destination was reset; why is the
                              end status (see bh_tunnel_peer_gone()) */
    int splicing[2];     /**< the direction is on the splice path now */
    uint64_t backpressure[2];    /**< times the direction waited on its
                                      destination: it stopped reading its source
                                      because the destination could not take
                                      more (its queue refused a read at max_bytes;
                                      splicing: the destination socket was full) */
    uint64_t backpressure_ms[2]; /**< loop milliseconds (uv_now()) spent in those
                                      waits, the current one included; 0 while a
                                      destination keeps up */
};

/**
 * Completion of a started tunnel, called once on the loop thread after both
 * streams' close callbacks (and the tunnel's own handles') have run: t, both
 * stream handles and the tails' memory may be freed here, and the loop may
 * be closed once the callback returns.
 * @param t the tunnel
 * @param status 0 (both directions ended with a clean EOF passed on),
 *   UV_ECONNRESET (a side was reset, also when its EOF came with a pending
 *   socket error), UV_EPIPE (a write to a side failed: its queue reported
 *   BH_ECLOSED), UV_ETIMEDOUT (idle timeout), BH_ECANCELED
 *   (bh_tunnel_abort()), BH_ENOMEM (a read buffer or a queue could not grow),
 *   or another libuv error of a read, write, shutdown or poll. Which of
 *   these a peer that went away causes depends on what the tunnel was doing
 *   when it learnt it (reading: UV_ECONNRESET; a fire-and-forget write:
 *   UV_EPIPE; a shutdown or write on a socket already reset: UV_ENOTCONN;
 *   UV_ECONNABORTED): classify with bh_tunnel_peer_gone(), which is 1 for
 *   exactly those four. UV_ETIMEDOUT is the tunnel's own idle timeout, not
 *   a peer gone.
 * @param st the final counters
 * @param ctx the ctx given to bh_tunnel_start()
 * @since 0.2
 */
typedef void (*bh_tunnel_done_cb)(bh_tunnel *t, int status, const struct bh_tunnel_stats *st,
                                  void *ctx);

/** Default write budget per direction of a tunnel. */
#define BH_TUNNEL_MAX_BYTES_DEFAULT ((size_t)256 * 1024)

/** Settings of a tunnel; start from bh_tunnel_config_default().
 * @since 0.2 */
typedef struct bh_tunnel_config {
    size_t read_reserve;      /**< bytes offered per read, per side (0: 16 KiB) */
    size_t max_bytes;         /**< write budget per direction (0: 256 KiB) */
    uint64_t idle_timeout_ms; /**< 0: none; no byte moved either way for this
                                   long ends the tunnel with UV_ETIMEDOUT.
                                   Moved means read from a side, or taken by
                                   a destination's kernel (written or
                                   spliced), as nginx's proxy_timeout counts
                                   reads and writes: writes to a slow reader
                                   keep the tunnel alive; bytes draining
                                   from kernel buffers alone do not. Writes
                                   are noticed when the timer next checks, so
                                   after a last write the end comes between
                                   one and two timeouts later */
    int splice;               /**< 1 (default): Linux TCP<->TCP splice fast
                                   path; 0: buffer path only */
} bh_tunnel_config;

/** One side of a tunnel, and the direction that reads it. Private.
 * @since 0.2 */
typedef struct bh_tunnel_side {
    uv_stream_t *stream;     /**< private: this side's stream */
    bh_buf in;               /**< private: bytes read from this side */
    bh_reader reader;        /**< private: reads this side */
    bh_writeq out;           /**< private: bytes written to this side */
    bh_bytes held;           /**< private: read here, refused by the other's queue */
    unsigned flags;          /**< private: state of the direction reading here */
    unsigned full_reads;     /**< private: large reads in a row (splice trigger) */
    uint64_t wait_since;     /**< private: uv_now() when the current backpressure wait began */
} bh_tunnel_side;

/** Caller-owned, embedded by value; all fields but data are private.
 * An idle tunnel costs this struct (1456 bytes on x86_64 Linux with libuv
 * 1.44), its streams and nothing else: the splice path's state (pipes,
 * dup()ed fds and their poll handles, a few hundred bytes) is allocated when
 * a direction first splices, the idle timeout's timer (184 bytes) by
 * bh_tunnel_start() when one is set, and the readers hold no block between
 * reads.
 * @since 0.2 */
struct bh_tunnel {
    void *data;                  /**< public: free for the user, kept by bh_tunnel_start() */
    uv_loop_t *loop;             /**< private */
    bh_tunnel_side side[2];      /**< private: a, b */
    size_t read_reserve;         /**< private: from the config */
    size_t max_bytes;            /**< private: from the config */
    struct bh_tunnel_splice *splice; /**< private: pipes and polls of the splice path,
                                          allocated when a direction first splices */
    struct bh_tunnel_idle *idle; /**< private: the idle timeout's timer, allocated
                                      by bh_tunnel_start() when one is set */
    bh_tunnel_done_cb cb;        /**< private */
    void *ctx;                   /**< private */
    int status;                  /**< private: final status, once ending */
    int ending;                  /**< private */
    int closing;                 /**< private: close callbacks outstanding */
    uint64_t spliced[2];         /**< private: bytes moved by splice(2), per direction */
    uint64_t backpressure[2];    /**< private: waits on the destination, per direction */
    uint64_t backpressure_ms[2]; /**< private: their loop ms, finished waits only */
};

/**
 * Default tunnel settings.
 * @return read_reserve 16 KiB, max_bytes 256 KiB, no idle timeout, splice on
 * @since 0.2
 */
BH_EXPORT bh_tunnel_config bh_tunnel_config_default(void);

/**
 * Takes over streams a and b and relays both directions until both ended.
 * a and b are connected TCP, pipe or TTY streams of loop, not reading, with
 * no write of the caller pending (drain and bh_writeq_close() the caller's
 * own queues first). The tunnel stores its readers in a->data and b->data
 * (as bh_reader does) and closes both handles itself, with an RST when it
 * fails; done_cb runs once, after both close callbacks: free the handles and
 * t there. Errors after a successful start (BH_ENOMEM while queueing a tail
 * included) are reported through done_cb, never inside this call.
 * @param t caller-owned tunnel; t->data is kept, the rest is initialised
 * @param loop the loop of a and b
 * @param a first stream (direction 0 reads it)
 * @param b second stream (direction 1 reads it)
 * @param a_tail bytes already read from a by a parser, written to b first,
 *   byte-exact, without copy (NULL = none); the tunnel takes the content as
 *   bh_buf_take_tail() does and the caller's buf is left empty (free it at
 *   any time). A tail longer than max_bytes is queued in pieces of max_bytes
 *   (slices of the same block, no copy).
 * @param b_tail the same for bytes already read from b, written to a first
 * @param cfg settings, NULL for bh_tunnel_config_default()
 * @param cb completion, required
 * @param ctx passed to cb
 * @return 0, or (nothing changed, cb never called, the caller keeps a, b and
 *   the tails) BH_EINVAL (a NULL argument, a == b, a stream of another loop
 *   or not readable and writable), BH_ENOMEM (an idle timeout is set and its
 *   timer could not be allocated) or the libuv error of uv_read_start()
 * @since 0.2
 */
BH_EXPORT int bh_tunnel_start(bh_tunnel *t, uv_loop_t *loop, uv_stream_t *a, uv_stream_t *b,
                              bh_buf *a_tail, bh_buf *b_tail, const bh_tunnel_config *cfg,
                              bh_tunnel_done_cb cb, void *ctx);

/**
 * Whether an end status of a tunnel means that a peer went away (reset,
 * killed, or its socket failed under a write): UV_ECONNRESET, UV_EPIPE,
 * UV_ENOTCONN or UV_ECONNABORTED. 0 for everything else: a clean end (0),
 * the idle timeout (UV_ETIMEDOUT), bh_tunnel_abort() (BH_ECANCELED),
 * BH_ENOMEM and other local errors. Any thread.
 * @param status a status given to bh_tunnel_done_cb
 * @return 1 or 0
 * @since 0.2
 */
BH_EXPORT int bh_tunnel_peer_gone(int status);

/**
 * Snapshot of the counters while the tunnel runs (loop thread).
 * @param t a started tunnel (until its done_cb returned)
 * @param out receives the counters; bytes[] counts what the destinations'
 *   kernels took so far
 * @since 0.2
 */
BH_EXPORT void bh_tunnel_stats(const bh_tunnel *t, struct bh_tunnel_stats *out);

/**
 * Closes the calling thread's pooled pipes. The splice path keeps up to 8
 * empty pipes per thread (2 fds each) for the next tunnels to take instead
 * of creating new ones; this gives their fds back, for example when a loop
 * has had no connection for a while (thread exit closes them too). Tunnels
 * still running keep theirs and pool them when they end. Nothing is
 * allocated or freed; any thread, for its own pool.
 * @since 0.2
 */
BH_EXPORT void bh_tunnel_pipes_trim(void);

/**
 * Ends the tunnel now: both sides are reset and done_cb runs once, later
 * (never inside this call), with BH_ECANCELED, or with the status the tunnel
 * was already ending with. Idempotent; not after done_cb ran.
 * @param t a started tunnel (NULL is ignored)
 * @since 0.2
 */
BH_EXPORT void bh_tunnel_abort(bh_tunnel *t);

#ifdef __cplusplus
}
#endif

#endif
