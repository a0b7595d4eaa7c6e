/* tunnel_fixture.h - a bh_tunnel between two real loopback TCP connections,
 * with each outer end driven by its own threads on blocking sockets:
 *
 *   peer A <-tcp-> [side a | bh_tunnel on the test's loop | side b] <-tcp-> peer B
 *
 * Each peer (one thread, poll()) sends a deterministic byte stream (seeded,
 * random chunk sizes), then half-closes, resets (SO_LINGER 0 + close) or
 * stays open, and receives and verifies what the other peer sent (expected
 * tail first), recording how its input ended: 0 for a clean EOF, else the
 * errno of the reset (seen by recv(), or first by send()). */
#ifndef BH_TUNNEL_FIXTURE_H
#define BH_TUNNEL_FIXTURE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <bytes_handoff/uv.h>

enum peer_end { PEER_SHUTDOWN, PEER_RESET, PEER_STAY };

typedef struct tf_peer {
    int fd;                 /* blocking socket of the outer end */
    /* sending */
    uint32_t seed;          /* stream sent by this peer */
    size_t send_len;
    size_t max_chunk;       /* send() sizes are 1..max_chunk, seeded */
    enum peer_end end;      /* after sending */
    int wait_for_eof;       /* send only after the input ended */
    int no_receiver;        /* do not read at all (a resetting peer) */
    size_t recv_limit;      /* stop reading (socket kept open) after this
                               many bytes; 0: no limit */
    /* receiving: expected is prefix (the tail) then the other's stream */
    const uint8_t *prefix;
    size_t prefix_len;
    uint32_t expect_seed;
    /* results */
    size_t received;
    int recv_end;           /* 0: EOF; errno otherwise; -1 while running */
    size_t mismatch_at;     /* SIZE_MAX when every byte matched */
    int send_err;           /* errno of a failed send, 0 if none */
    pthread_t thread;
} tf_peer;

typedef struct tf {
    uv_loop_t loop;
    uv_tcp_t side[2];       /* tunnel ends, on loop */
    tf_peer peer[2];        /* peer[0] is A (talks to side a), peer[1] is B */
    bh_tunnel tunnel;
    int done_calls;
    int status;
    struct bh_tunnel_stats final;
} tf;

/* Byte i of the stream with seed s. */
uint8_t tf_byte(uint32_t seed, size_t i);

/* Creates the two TCP connections; side handles are opened on t->loop. */
void tf_setup(tf *t);

/* Starts the peers' threads (after bh_tunnel_start). */
void tf_start_peers(tf *t);

/* Runs the loop until the tunnel reported (bounded), joins the peers,
 * closes the loop. Returns 0, or -1 on timeout. */
int tf_run(tf *t, unsigned timeout_ms);

/* done callback storing status and counters in the fixture (ctx = tf). */
void tf_done(bh_tunnel *tn, int status, const struct bh_tunnel_stats *st, void *ctx);

#endif
