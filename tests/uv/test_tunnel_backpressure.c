/* test_tunnel_backpressure.c - what a bh_tunnel reports about its ends:
 * backpressure counters (struct bh_tunnel_stats backpressure[],
 * backpressure_ms[]) and end statuses that mean "the peer went away"
 * (bh_tunnel_peer_gone()).
 *
 * One loop runs everything: the tunnel and both outer peers, each a libuv
 * TCP handle of the test on loopback:
 *
 *   peer a <-tcp-> [side a | bh_tunnel | side b] <-tcp-> peer b
 *
 * Peer a sends a patterned stream; peer b reads it (or not, or slowly) and
 * checks every byte. Outcomes are counted, never timed: a slow reader is one
 * that does not read at all until the tunnel reports a wait, a fast one a
 * reader that peer a never outruns (peer a sends the next small chunk only
 * once peer b has the previous one). Loop runs are bounded by a safety
 * timeout that only turns a hang into a failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <bytes_handoff.h>
#include <bytes_handoff/uv.h>

#include "test_alloc.h"
#include "test_uv.h"

#define RUN_MS 120000u /* a safety bound only */

typedef struct rig {
    uv_loop_t loop;
    uv_tcp_t peer_a, side_a, side_b, peer_b;
    uv_prepare_t check; /* runs right before the loop would block */
    bh_tunnel tunnel;
    int done_calls;
    int status;
    struct bh_tunnel_stats final;
    /* peer a: sends len bytes of the pattern, chunk bytes per write (0: all
     * at once); paced: the next chunk only once peer b has the previous */
    size_t len, chunk, sent;
    int paced;
    uv_write_t wreq;
    uv_shutdown_t sreq_a, sreq_b;
    /* peer b */
    size_t received, mismatch_at;
    int b_reading, b_eof, a_eof;
    int a_err, b_err;         /* read errors of the peers (reset) */
    int read_on_backpressure; /* start reading once the tunnel waits */
    uv_tcp_t *kill;           /* peer reset once the tunnel waits */
    int a_stays;              /* peer a does not shut down after sending */
    unsigned pace_ms;         /* peer b reads once per tick of a timer */
    char rbuf[65536];
} rig;

static uint8_t pattern(size_t i) { return (uint8_t)((i * 2654435761u) >> 13); }

static uint8_t *g_data; /* the whole stream, made once */
#define STREAM_MAX ((size_t)4 << 20)

static void on_done(bh_tunnel *t, int status, const struct bh_tunnel_stats *st, void *ctx)
{
    rig *r = ctx;
    (void)t;
    r->done_calls++;
    r->status = status;
    r->final = *st;
    uv_close((uv_handle_t *)&r->check, NULL);
}

static void close_peer(uv_tcp_t *p)
{
    if (!uv_is_closing((uv_handle_t *)p))
        uv_close((uv_handle_t *)p, NULL);
}

static void send_more(rig *r);
static void pace_after_read(rig *r);

static void on_a_shutdown(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status;
}

static void on_a_written(uv_write_t *req, int status)
{
    rig *r = req->data;
    if (status != 0 || uv_is_closing((uv_handle_t *)&r->peer_a))
        return; /* a killed peer */
    if (r->sent == r->len && r->a_stays)
        return;
    if (r->sent == r->len) {
        r->sreq_a.data = r;
        assert_int_equal(uv_shutdown(&r->sreq_a, (uv_stream_t *)&r->peer_a, on_a_shutdown), 0);
        return;
    }
    if (!r->paced)
        send_more(r);
}

static void send_more(rig *r)
{
    size_t n = r->chunk && r->chunk < r->len - r->sent ? r->chunk : r->len - r->sent;
    uv_buf_t b = uv_buf_init((char *)g_data + r->sent, (unsigned)n);
    r->sent += n;
    r->wreq.data = r;
    assert_int_equal(uv_write(&r->wreq, (uv_stream_t *)&r->peer_a, &b, 1, on_a_written), 0);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    rig *r = h->data;
    (void)suggested;
    *out = uv_buf_init(r->rbuf, sizeof r->rbuf);
}

static void on_b_shutdown(uv_shutdown_t *req, int status)
{
    rig *r = req->data;
    (void)status;
    close_peer(&r->peer_b);
}

static void on_b_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    rig *r = s->data;
    if (n == UV_EOF) {
        r->b_eof = 1;
        uv_read_stop(s);
        r->sreq_b.data = r;
        assert_int_equal(uv_shutdown(&r->sreq_b, s, on_b_shutdown), 0);
        return;
    }
    if (n < 0) {
        r->b_err = (int)n;
        close_peer(&r->peer_b);
        return;
    }
    for (ssize_t i = 0; i < n; i++)
        if ((uint8_t)b->base[i] != pattern(r->received + (size_t)i) && r->mismatch_at == SIZE_MAX)
            r->mismatch_at = r->received + (size_t)i;
    r->received += (size_t)n;
    pace_after_read(r);
    if (r->paced && r->received == r->sent && r->sent < r->len)
        send_more(r);
}

static void b_start_reading(rig *r)
{
    r->b_reading = 1;
    r->peer_b.data = r;
    assert_int_equal(uv_read_start((uv_stream_t *)&r->peer_b, on_alloc, on_b_read), 0);
}

/* Peer a only waits for the EOF peer b's shutdown passes back. */
static void on_a_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    rig *r = s->data;
    (void)b;
    if (n < 0) {
        if (n == UV_EOF)
            r->a_eof = 1;
        else
            r->a_err = (int)n;
        close_peer(&r->peer_a);
    }
}

static void on_check(uv_prepare_t *c)
{
    rig *r = c->data;
    if (!r->read_on_backpressure || r->b_reading || r->done_calls)
        return;
    struct bh_tunnel_stats st;
    bh_tunnel_stats(&r->tunnel, &st);
    if (st.backpressure[0] > 0)
        b_start_reading(r);
}

static void rig_setup(rig *r)
{
    memset(r, 0, sizeof *r);
    r->mismatch_at = SIZE_MAX;
    if (!g_data) {
        g_data = malloc(STREAM_MAX);
        assert_non_null(g_data);
        for (size_t i = 0; i < STREAM_MAX; i++)
            g_data[i] = pattern(i);
    }
    assert_int_equal(uv_loop_init(&r->loop), 0);
    assert_int_equal(test_uv_tcp_pair(&r->loop, &r->peer_a, &r->side_a), 0);
    assert_int_equal(test_uv_tcp_pair(&r->loop, &r->side_b, &r->peer_b), 0);
    assert_int_equal(uv_prepare_init(&r->loop, &r->check), 0);
    r->check.data = r;
    assert_int_equal(uv_prepare_start(&r->check, on_check), 0);
}

static void rig_start(rig *r, const bh_tunnel_config *c)
{
    assert_int_equal(bh_tunnel_start(&r->tunnel, &r->loop, (uv_stream_t *)&r->side_a,
                                     (uv_stream_t *)&r->side_b, NULL, NULL, c, on_done, r),
                     0);
    r->peer_a.data = r;
    assert_int_equal(uv_read_start((uv_stream_t *)&r->peer_a, on_alloc, on_a_read), 0);
    send_more(r);
}

/* Runs until the tunnel reported and every handle closed. */
static void rig_run(rig *r)
{
    assert_int_equal(test_uv_run(&r->loop, RUN_MS), 0);
    assert_int_equal(r->done_calls, 1);
    assert_int_equal(test_uv_loop_teardown(&r->loop), 0);
}

static void assert_all_delivered_cleanly(const rig *r)
{
    assert_int_equal(r->status, 0);
    assert_int_equal(r->received, r->len);
    assert_int_equal(r->mismatch_at, SIZE_MAX);
    assert_true(r->b_eof);
    assert_true(r->a_eof);
    assert_int_equal(r->final.bytes[0], r->len);
}

static bh_tunnel_config config(int splice, size_t reserve, size_t max_bytes)
{
    bh_tunnel_config c = bh_tunnel_config_default();
    c.splice = splice;
    c.read_reserve = reserve;
    c.max_bytes = max_bytes;
    return c;
}

/* Locks the kernel buffers between side b and peer b (no autotuning), well
 * below the stream's 4 MiB: loopback would otherwise take megabytes before
 * the tunnel sees a full destination. Not smaller than loopback's 64 KiB
 * MSS, where window updates would wait for zero-window probes. */
static void small_buffers_towards_b(rig *r)
{
    uv_os_fd_t fd;
    assert_int_equal(uv_fileno((uv_handle_t *)&r->side_b, &fd), 0);
    test_set_sockbuf(fd, 200000, 0);
    assert_int_equal(uv_fileno((uv_handle_t *)&r->peer_b, &fd), 0);
    test_set_sockbuf(fd, 0, 200000);
}

/* The parameter of the slow and fast reader tests: the tunnel's splice
 * setting. */
static const int SPLICE_OFF = 0, SPLICE_ON = 1;

/* Peer b reads nothing until the tunnel reports that direction a -> b waits
 * on it; then everything arrives. Direction b -> a carried nothing. */
static void slow_reader(void **state)
{
    int splice = *(const int *)*state;
    rig r;
    rig_setup(&r);
    r.len = STREAM_MAX;
    r.read_on_backpressure = 1;
    small_buffers_towards_b(&r);
    bh_tunnel_config c = config(splice, 16384, 65536);
    rig_start(&r, &c);
    rig_run(&r);
    assert_all_delivered_cleanly(&r);
    assert_true(r.final.backpressure[0] >= 1);
    assert_int_equal(r.final.backpressure[1], 0);
    assert_int_equal(r.final.backpressure_ms[1], 0);
}

/* Peer a sends 4 KiB at a time, the next only once peer b has it all: the
 * destination always has room, so no direction ever waits. */
static void fast_reader(void **state)
{
    int splice = *(const int *)*state;
    rig r;
    rig_setup(&r);
    r.len = (size_t)1 << 20;
    r.chunk = 4096;
    r.paced = 1;
    bh_tunnel_config c = config(splice, 4096, 65536);
    b_start_reading(&r);
    rig_start(&r, &c);
    rig_run(&r);
    assert_all_delivered_cleanly(&r);
    for (int d = 0; d < 2; d++) {
        assert_int_equal(r.final.backpressure[d], 0);
        assert_int_equal(r.final.backpressure_ms[d], 0);
    }
}

/* ---- end statuses ------------------------------------------------------- */

static void peer_gone_statuses_are_the_connection_errors_and_nothing_else(void **state)
{
    (void)state;
    static const int gone[] = {UV_ECONNRESET, UV_EPIPE, UV_ENOTCONN, UV_ECONNABORTED};
    static const int not_gone[] = {0,           UV_EOF,    UV_ETIMEDOUT, BH_ECANCELED,
                                   BH_ENOMEM,   BH_EIO,    BH_EINVAL,    UV_EBADF,
                                   UV_EHOSTUNREACH, BH_ECLOSED};
    for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++)
        assert_true(bh_tunnel_peer_gone(gone[i]));
    for (size_t i = 0; i < sizeof not_gone / sizeof not_gone[0]; i++)
        assert_false(bh_tunnel_peer_gone(not_gone[i]));
}

static void on_prepare_kill(uv_prepare_t *c)
{
    rig *r = c->data;
    struct bh_tunnel_stats st;
    if (r->done_calls || uv_is_closing((uv_handle_t *)r->kill))
        return;
    bh_tunnel_stats(&r->tunnel, &st);
    if (st.backpressure[0] == 0)
        return;
    assert_int_equal(uv_tcp_close_reset(r->kill, NULL), 0);
    if (r->kill == &r->peer_a)
        b_start_reading(r); /* to see the reset the tunnel passes on */
}

/* A peer killed (reset) while the tunnel still writes to it, or while its
 * own bytes are relayed: however the tunnel learns it (a read error, a
 * failed write, a refused shutdown), its end status says "peer gone". */
static void killed_peer(int which, int splice)
{
    rig r;
    test_alloc_install(0);
    rig_setup(&r);
    r.len = STREAM_MAX;
    r.kill = which == 0 ? &r.peer_a : &r.peer_b;
    small_buffers_towards_b(&r);
    assert_int_equal(uv_prepare_stop(&r.check), 0);
    assert_int_equal(uv_prepare_start(&r.check, on_prepare_kill), 0);
    bh_tunnel_config c = config(splice, 16384, 65536);
    rig_start(&r, &c);
    rig_run(&r);
    assert_true(bh_tunnel_peer_gone(r.status));
    assert_int_equal(r.final.reset[0] + r.final.reset[1], 2);
    test_alloc_finish();
}

static void a_killed_reader_ends_the_tunnel_as_peer_gone(void **state)
{
    (void)state;
    killed_peer(1, 0);
    killed_peer(1, 1);
}

static void a_killed_writer_ends_the_tunnel_as_peer_gone(void **state)
{
    (void)state;
    killed_peer(0, 0);
    killed_peer(0, 1);
}

/* ---- idle timeout --------------------------------------------------------- */

#define IDLE_MS 600u  /* the tunnel's idle timeout */
#define PACE_MS 30u   /* peer b reads once per PACE_MS: far inside IDLE_MS */

static void on_pace(uv_timer_t *tm)
{
    rig *r = tm->data;
    if (r->done_calls || uv_is_closing((uv_handle_t *)&r->peer_b)) {
        uv_close((uv_handle_t *)tm, NULL);
        return;
    }
    if (!r->b_reading)
        b_start_reading(r);
}

/* After every read, peer b stops until the next tick of its pace timer. */
static void pace_after_read(rig *r)
{
    if (r->pace_ms && r->b_reading && !uv_is_closing((uv_handle_t *)&r->peer_b)) {
        uv_read_stop((uv_stream_t *)&r->peer_b);
        r->b_reading = 0;
    }
}

/* The tunnel reads all of peer a's stream at once (its budget holds it) and
 * then only writes, as fast as peer b reads: one read of at most 64 KiB per
 * PACE_MS, several IDLE_MS in all. Its writes are activity: it does not
 * end while they go on, and ends with UV_ETIMEDOUT once nothing moves. */
static void writes_to_a_slow_reader_keep_an_idle_timeout_away(void **state)
{
    (void)state;
    rig r;
    uv_timer_t pace;
    test_alloc_install(0);
    rig_setup(&r);
    r.len = (size_t)3 << 20;
    r.a_stays = 1;
    r.pace_ms = PACE_MS;
    small_buffers_towards_b(&r);
    bh_tunnel_config c = config(0, 16384, (size_t)8 << 20);
    c.idle_timeout_ms = IDLE_MS;
    assert_int_equal(uv_timer_init(&r.loop, &pace), 0);
    pace.data = &r;
    assert_int_equal(uv_timer_start(&pace, on_pace, PACE_MS, PACE_MS), 0);
    rig_start(&r, &c);
    rig_run(&r);
    assert_int_equal(r.status, UV_ETIMEDOUT);
    assert_int_equal(r.mismatch_at, SIZE_MAX);
    assert_int_equal(r.received, r.len); /* all of it, before the idle end */
    assert_int_equal(r.final.bytes[0], r.len);
    test_alloc_finish();
}

static int teardown_data(void **state)
{
    (void)state;
    free(g_data);
    g_data = NULL;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        test_alloc_checked_case(a_slow_reader_makes_the_backpressure_counter_go_up_buffers_only,
                                slow_reader, &SPLICE_OFF),
        test_alloc_checked_case(a_slow_reader_makes_the_backpressure_counter_go_up_splice_on,
                                slow_reader, &SPLICE_ON),
        test_alloc_checked_case(a_fast_reader_leaves_the_backpressure_counter_at_zero_buffers_only,
                                fast_reader, &SPLICE_OFF),
        test_alloc_checked_case(a_fast_reader_leaves_the_backpressure_counter_at_zero_splice_on,
                                fast_reader, &SPLICE_ON),
        cmocka_unit_test(peer_gone_statuses_are_the_connection_errors_and_nothing_else),
        cmocka_unit_test(a_killed_reader_ends_the_tunnel_as_peer_gone),
        cmocka_unit_test(a_killed_writer_ends_the_tunnel_as_peer_gone),
        cmocka_unit_test(writes_to_a_slow_reader_keep_an_idle_timeout_away),
    };
    return cmocka_run_group_tests(tests, NULL, teardown_data);
}
