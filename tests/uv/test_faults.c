/* test_faults.c - network faults over loopback TCP, real sockets only: the
 * content_routing proxy (examples/content_routing/proxy.c) and sink in this
 * process on one libuv loop (support/uv/proxy_fixture.h), driven by
 * hand-made clients and destinations: resets, half-close, stalled and
 * refused destinations. Deadlines: test_faults_timeouts.c; a write queue
 * closed with 1000 tickets pending: test_writeq_close.c.
 *
 * Covered elsewhere, so not repeated here: a client reset (RST) in the middle
 * of the tunnel (ctest content_routing_demo_disconnects, demo
 * --disconnect-mid-tunnel), and a peer closing or resetting while the write
 * queue holds items, where every ticket fails once and later writes get
 * BH_ECLOSED (test_writeq peer_close_fails_every_pending_ticket_once_and_
 * later_writes_get_eclosed over a socketpair, test_writeq_tcp
 * peer_reset_mid_queue_fails_pending_tickets_once_and_later_writes_get_eclosed
 * over TCP). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include <linux/sockios.h>

#include <cmocka.h>

#include "test_alloc.h"
#include "test_main.h"
#include "proxy_fixture.h"
#include "test_uv.h"
#include "test_writeq_support.h"

#define RUN_MS 20000

/* ---- tests ---------------------------------------------------------------- */

static void client_reset_during_route_phase_aborts_its_session_and_others_complete(void **state)
{
    (void)state;
    fx *f = fx_new(NULL, 0);
    tclient *bad = tc_new(), *good = tc_new();
    /* ROUTE line and one frame, then half of a second frame. */
    tc_start(f, bad, "alpha", 2, 100, 0, 7);
    size_t cut = strlen("ROUTE alpha\n") + 4 + 100 + 4 + 50;
    tc_write(bad, 0, cut);
    fx_run_until_forwarded(f, strlen("ROUTE alpha\n") + 4 + 100);
    assert_int_equal(uv_tcp_close_reset(&bad->tcp, tc_closed), 0); /* SO_LINGER {1, 0} */

    fx_serve_good_client(f, good, 11, 0, 1);
    /* The aborted stream reached the sink as a reset, or (see the caveat in
     * content_routing.c) as an EOF inside a frame: never as a good stream. */
    size_t n;
    cr_sink_record *r = cr_sink_records(f->alpha, &n);
    size_t truncated = 0;
    for (size_t i = 0; i < n; i++)
        truncated += !r[i].parse_ok;
    assert_int_equal(cr_sink_aborted(f->alpha) + truncated, 1);
    assert_sink_got(f, good);
    fx_end_balanced(f, bad, good);
}

/* The client writes its route frames and 40 KiB of tunnel data and resets
 * (SO_LINGER 0) before the proxy reads any of it: the RST is queued right
 * behind the data, which libuv reports as EOF after the last read. The
 * proxy's tunnel passes it on as a reset and the sink counts the stream as
 * aborted: a raw tunnel has no end marker, so a clean end would have made
 * the reset stream look complete. */
static void client_reset_right_after_tunnel_data_reaches_the_sink_as_a_reset(void **state)
{
    (void)state;
    fx *f = fx_new(NULL, 0);
    tclient *bad = tc_new(), *good = tc_new();
    tc_start(f, bad, "alpha", 4, 63, 40 * 1024, 21); /* more than one read */
    uv_buf_t b = uv_buf_init((char *)bad->data, (unsigned)bad->len);
    assert_int_equal(uv_try_write((uv_stream_t *)&bad->tcp, &b, 1), (int)bad->len);
    assert_int_equal(uv_tcp_close_reset(&bad->tcp, tc_closed), 0);

    fx_serve_good_client(f, good, 22, 0, 1);
    size_t n;
    (void)cr_sink_records(f->alpha, &n);
    assert_int_equal(n, 1); /* the good client's stream only */
    assert_int_equal(cr_sink_aborted(f->alpha), 1);
    assert_sink_got(f, good);
    fx_end_with_clients(f, bad, good);
}

/* A destination that resets its connection after reading `limit` bytes. */
typedef struct rst_dest {
    uv_tcp_t listener;
    uv_tcp_t conn;
    int accepted, reset;
    size_t got, limit;
    char buf[64 * 1024];
} rst_dest;

static void rd_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    rst_dest *d = h->data;
    (void)suggested;
    *out = uv_buf_init(d->buf, sizeof d->buf);
}

static void rd_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    rst_dest *d = s->data;
    (void)b;
    if (nread < 0) {
        uv_read_stop(s);
        return;
    }
    d->got += (size_t)nread;
    if (d->got >= d->limit && !d->reset) {
        d->reset = 1;
        uv_read_stop(s);
        assert_int_equal(uv_tcp_close_reset(&d->conn, NULL), 0);
    }
}

/* Accepts the one connection a test destination expects into conn. */
static void accept_one(uv_stream_t *server, int status, uv_tcp_t *conn, int *accepted)
{
    assert_int_equal(status, 0);
    assert_int_equal(*accepted, 0);
    assert_int_equal(uv_tcp_init(server->loop, conn), 0);
    conn->data = server->data;
    assert_int_equal(uv_accept(server, (uv_stream_t *)conn), 0);
    *accepted = 1;
}

static void rd_accept(uv_stream_t *server, int status)
{
    rst_dest *d = server->data;
    accept_one(server, status, &d->conn, &d->accepted);
    uv_read_start((uv_stream_t *)&d->conn, rd_alloc, rd_read);
}

static void destination_reset_during_tunnel_ends_that_client_and_proxy_keeps_serving(void **state)
{
    (void)state;
    rst_dest *d = calloc(1, sizeof *d);
    assert_non_null(d);
    d->limit = 256 * 1024;
    fx *g = fx_new_with_dest(&d->listener, d, rd_accept, 0, "rst", 0);

    tclient *bad = tc_new(), *good = tc_new();
    tc_start(g, bad, "rst", 4, 63, 4u << 20, 3); /* the reset comes 256 KiB into the tunnel */
    tc_write(bad, 0, bad->len);
    tc_shutdown(bad);
    assert_int_equal(wq_run_until(&g->loop, tc_ended, bad, RUN_MS), 0);
    assert_int_equal(d->reset, 1);
    assert_true(d->got < bad->len);
    assert_int_equal(bad->reply_len, 0); /* no reply: the stream did not complete */

    fx_serve_good_client(g, good, 5, 0, 1);
    assert_sink_got(g, good);
    fx_end_balanced(g, bad, good);
    free(d);
}

/* A destination that reads nothing until the test opens its gate, then
 * reads to EOF and replies like the sink ("OK <bytes> <fnv1a64>\n"). Its
 * kernel receive buffer is small (set on the listener, inherited), so while
 * the gate is closed the proxy has to keep what it forwards. */
typedef struct gate_dest {
    uv_tcp_t listener;
    uv_tcp_t conn;
    uv_write_t wreq;
    int accepted, open, eof;
    size_t got;
    uint64_t hash;
    char reply[96];
    char buf[64 * 1024];
} gate_dest;

static void gd_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    gate_dest *d = h->data;
    (void)suggested;
    *out = uv_buf_init(d->buf, sizeof d->buf);
}

static void gd_replied(uv_write_t *req, int status)
{
    gate_dest *d = req->data;
    assert_int_equal(status, 0);
    uv_close((uv_handle_t *)&d->conn, NULL);
}

static void gd_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    gate_dest *d = s->data;
    if (nread > 0) {
        d->hash = fnv1a64(d->hash, (const uint8_t *)b->base, (size_t)nread);
        d->got += (size_t)nread;
        return;
    }
    if (nread == 0)
        return;
    assert_int_equal(nread, UV_EOF);
    d->eof = 1;
    uv_read_stop(s);
    snprintf(d->reply, sizeof d->reply, "OK %zu %016llx\n", d->got, (unsigned long long)d->hash);
    uv_buf_t r = uv_buf_init(d->reply, (unsigned)strlen(d->reply));
    d->wreq.data = d;
    assert_int_equal(uv_write(&d->wreq, s, &r, 1, gd_replied), 0);
}

static void gd_open(gate_dest *d)
{
    assert_int_equal(d->accepted, 1);
    d->open = 1;
    assert_int_equal(uv_read_start((uv_stream_t *)&d->conn, gd_alloc, gd_read), 0);
}

static void gd_accept(uv_stream_t *server, int status)
{
    gate_dest *d = server->data;
    accept_one(server, status, &d->conn, &d->accepted);
}

/* A proxy with the fixture's sink "alpha" and a closed gate destination
 * "gate", whose kernel receive buffer is small; upstream send buffers are
 * small too, so the kernel holds little of what the proxy forwards. */
static fx *fx_new_gated(gate_dest *d)
{
    d->hash = FNV1A64_OFFSET;
    return fx_new_with_dest(&d->listener, d, gd_accept, 4096, "gate", 4096);
}

typedef struct shut_ctx {
    int done, status;
} shut_ctx;

static void tc_shut_noted(uv_shutdown_t *req, int status)
{
    shut_ctx *sc = req->data;
    sc->done = 1;
    sc->status = status;
}

static int shut_sent(void *arg) { return ((shut_ctx *)arg)->done; }

/* Bytes (and FIN) the kernel of a TCP handle's socket has not had
 * acknowledged yet (SIOCOUTQ), or of a received stream not read yet
 * (SIOCINQ). */
static int sock_queued(const uv_tcp_t *t, unsigned long req)
{
    uv_os_fd_t fd;
    assert_int_equal(uv_fileno((const uv_handle_t *)t, &fd), 0);
    int n = 0;
    assert_int_equal(ioctl(fd, req, &n), 0);
    return n;
}

static int client_all_acked(void *arg) { return sock_queued(&((tclient *)arg)->tcp, SIOCOUTQ) == 0; }

static int gate_has_bytes_waiting(void *arg)
{
    gate_dest *d = arg;
    return d->accepted && sock_queued(&d->conn, SIOCINQ) > 0;
}

/* A proxy with a closed gate destination (*f, *d) and a client connected to
 * it that is writing 16 frames and `tunnel` raw bytes to "gate". */
static tclient *gated_client_sending(fx **f, gate_dest **d, size_t tunnel, uint64_t seed)
{
    *d = calloc(1, sizeof **d);
    assert_non_null(*d);
    *f = fx_new_gated(*d);
    tclient *c = tc_new();
    tc_start(*f, c, "gate", 16, 1000, tunnel, seed);
    tc_write(c, 0, c->len);
    return c;
}

/* Opens the gate: the destination reads the whole stream and replies, the
 * client gets that reply, the session completes. Frees c, f and d. */
static void gate_open_and_expect_completion(fx *f, gate_dest *d, tclient *c)
{
    gd_open(d);
    assert_int_equal(wq_run_until(&f->loop, tc_ended, c, RUN_MS), 0);
    assert_int_equal(c->eof, 1);
    assert_int_equal(d->eof, 1);
    assert_int_equal(d->got, c->len);
    tc_expect_reply(c);
    struct cr_proxy_stats st = fx_settle(f);
    assert_int_equal(st.completed, 1);
    assert_int_equal(st.aborted, 0);
    assert_int_equal(st.bytes_up, c->len);
    fx_end_balanced(f, c, NULL);
    free(d);
}

static void half_close_while_the_proxy_holds_the_stream_delivers_every_byte_and_the_reply(
    void **state)
{
    (void)state;
    fx *f;
    gate_dest *d;
    /* Small enough for the proxy to take it all although the destination
     * reads nothing: its write budget (256 KiB) for the route frames, a
     * splice pipe (64 KiB) or the tunnel's budget for the raw bytes. */
    tclient *c = gated_client_sending(&f, &d, 32 * 1024, 9);
    shut_ctx sc = {0, 0};
    c->sreq.data = &sc;
    assert_int_equal(uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, tc_shut_noted), 0);

    /* The client's write completes, its FIN goes out and the proxy's kernel
     * acknowledges everything, while the destination has read nothing: the
     * client has half-closed with every byte in flight. */
    assert_int_equal(wq_run_until(&f->loop, shut_sent, &sc, RUN_MS), 0);
    assert_int_equal(sc.status, 0);
    assert_int_equal(c->written, 1);
    assert_int_equal(c->write_status, 0);
    assert_int_equal(wq_run_until(&f->loop, client_all_acked, c, RUN_MS), 0);
    wq_run_nowait(&f->loop, 100); /* the proxy reads what arrived, and the EOF */
    assert_int_equal(d->got, 0);
    assert_int_equal(fx_stats(f).completed, 0);
    assert_int_equal(c->reply_len, 0);
    gate_open_and_expect_completion(f, d, c);
}

static void destination_that_stops_reading_keeps_the_proxy_within_its_budgets_and_loses_nothing(
    void **state)
{
    (void)state;
    test_alloc_install(0);
    fx *f;
    gate_dest *d;
    /* More than every buffer on the way can hold (the client's and the
     * destination's are small, the proxy's kernel receive buffer is at most
     * a few MiB): the client's write cannot finish while the gate is shut,
     * so the proxy must stop reading. */
    tclient *c = gated_client_sending(&f, &d, 8u << 20, 21);
    uv_os_fd_t fd;
    assert_int_equal(uv_fileno((uv_handle_t *)&c->tcp, &fd), 0);
    test_set_sockbuf(fd, 16 * 1024, 0);
    tc_shutdown(c);
    assert_int_equal(wq_run_until(&f->loop, gate_has_bytes_waiting, d, RUN_MS), 0);
    wq_run_nowait(&f->loop, 200);
    assert_int_equal(c->written, 0);
    assert_int_equal(d->got, 0);

    /* Library memory (read buffers, queued slices, rings) never exceeds
     * two directions of (read buffer + write budget), here or later. */
    cr_proxy_config pc;
    cr_proxy_config_default(&pc);
    size_t read_max = pc.max_line + 1 + pc.max_frame;
    if (pc.read_reserve > read_max)
        read_max = pc.read_reserve;
    const size_t bound = 2 * (read_max + pc.write_budget) + 64 * 1024;
    test_alloc_stats as;
    test_alloc_stats_get(&as);
    assert_true(as.peak_bytes <= bound);

    gate_open_and_expect_completion(f, d, c);
    test_alloc_stats_get(&as);
    assert_true(as.peak_bytes <= bound);
    test_alloc_finish();
}

/* A 127.0.0.1 port nobody listens on: bound, then closed. */
static int closed_port(void)
{
    uv_loop_t loop;
    uv_tcp_t t;
    struct sockaddr_in any;
    assert_int_equal(uv_loop_init(&loop), 0);
    uv_ip4_addr("127.0.0.1", 0, &any);
    assert_int_equal(uv_tcp_init(&loop, &t), 0);
    assert_int_equal(uv_tcp_bind(&t, (const struct sockaddr *)&any, 0), 0);
    int port = cr_bound_port(&t);
    uv_close((uv_handle_t *)&t, NULL);
    assert_int_equal(test_uv_loop_teardown(&loop), 0);
    assert_true(port > 0);
    return port;
}

static void refused_destination_gets_err_line_and_proxy_keeps_serving(void **state)
{
    (void)state;
    fx *f = fx_new("closed", closed_port());
    tclient *bad = tc_new(), *good = tc_new();
    tc_start(f, bad, "closed", 3, 63, 1000, 1);
    tc_write(bad, 0, bad->len);
    tc_shutdown(bad);
    assert_int_equal(wq_run_until(&f->loop, tc_ended, bad, RUN_MS), 0);
    assert_int_equal(bad->eof, 1);
    static const char err[] = "ERR upstream unavailable\n";
    assert_int_equal(bad->reply_len, strlen(err));
    assert_memory_equal(bad->reply, err, strlen(err));

    fx_serve_good_client(f, good, 2, 1, 0);
    assert_sink_got(f, good);
    fx_end_balanced(f, bad, good);
}

TEST_MAIN(test_alloc_checked(client_reset_during_route_phase_aborts_its_session_and_others_complete),
          test_alloc_checked(
              destination_reset_during_tunnel_ends_that_client_and_proxy_keeps_serving),
          test_alloc_checked(
              half_close_while_the_proxy_holds_the_stream_delivers_every_byte_and_the_reply),
          test_alloc_checked(
              destination_that_stops_reading_keeps_the_proxy_within_its_budgets_and_loses_nothing),
          test_alloc_checked(client_reset_right_after_tunnel_data_reaches_the_sink_as_a_reset),
          test_alloc_checked(refused_destination_gets_err_line_and_proxy_keeps_serving))
