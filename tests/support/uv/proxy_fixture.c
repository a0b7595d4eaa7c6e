/* proxy_fixture.c - the proxy and sink fixture and the route protocol
 * clients of the network fault tests (see proxy_fixture.h). */
#include "proxy_fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fnv1a.h"
#include "test_uv.h"
#include "test_writeq_support.h"

#define RUN_MS 20000

/* ---- a client speaking the route protocol -------------------------------- */


static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* "ROUTE <dest>\n", frames payload frames of frame_bytes random bytes,
 * "TUNNEL\n", tunnel random bytes; expect is the sink's reply to it all. */
void tc_build(tclient *c, const char *dest, size_t frames, size_t frame_bytes,
                     size_t tunnel, uint64_t seed)
{
    size_t cap = 64 + frames * (frame_bytes + 24) + 16 + tunnel;
    c->data = malloc(cap);
    assert_non_null(c->data);
    size_t n = (size_t)snprintf((char *)c->data, cap, "ROUTE %s\n", dest);
    for (size_t i = 0; i < frames; i++) {
        n += (size_t)snprintf((char *)c->data + n, cap - n, "%zu\n", frame_bytes);
        for (size_t j = 0; j < frame_bytes; j++)
            c->data[n++] = (uint8_t)rng_next(&seed);
    }
    memcpy(c->data + n, "TUNNEL\n", 7);
    n += 7;
    for (size_t j = 0; j < tunnel; j++)
        c->data[n++] = (uint8_t)rng_next(&seed);
    c->len = n;
    snprintf(c->expect, sizeof c->expect, "OK %zu %016llx\n", n,
             (unsigned long long)fnv1a64(FNV1A64_OFFSET, c->data, n));
}

static void tc_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
    tclient *c = h->data;
    (void)suggested;
    *out = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void tc_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    tclient *c = s->data;
    if (nread > 0) {
        size_t n = (size_t)nread;
        if (n > sizeof c->reply - c->reply_len)
            n = sizeof c->reply - c->reply_len;
        memcpy(c->reply + c->reply_len, b->base, n);
        c->reply_len += n;
        return;
    }
    if (nread == UV_EOF)
        c->eof = 1;
    else if (nread < 0)
        c->read_err = (int)nread;
    if (nread < 0)
        uv_read_stop(s);
}

static void tc_connected(uv_connect_t *req, int status)
{
    tclient *c = req->data;
    c->connected = 1;
    c->connect_status = status;
    if (status == 0)
        uv_read_start((uv_stream_t *)&c->tcp, tc_alloc, tc_read);
}

static int tc_is_connected(void *arg) { return ((tclient *)arg)->connected; }

void tc_connect(uv_loop_t *loop, tclient *c, int port)
{
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", port, &a);
    assert_int_equal(uv_tcp_init(loop, &c->tcp), 0);
    c->tcp.data = c;
    c->creq.data = c;
    assert_int_equal(uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&a, tc_connected),
                     0);
    assert_int_equal(wq_run_until(loop, tc_is_connected, c, RUN_MS), 0);
    assert_int_equal(c->connect_status, 0);
}

static void tc_written(uv_write_t *req, int status)
{
    tclient *c = req->data;
    c->written = 1;
    c->write_status = status;
}

/* Writes data[off, off + n) in one uv_write (completion in c->written). */
void tc_write(tclient *c, size_t off, size_t n)
{
    uv_buf_t b = uv_buf_init((char *)c->data + off, (unsigned)n);
    c->written = 0;
    c->wreq.data = c;
    assert_int_equal(uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, tc_written), 0);
}

static void tc_shut(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status;
}

void tc_shutdown(tclient *c)
{
    assert_int_equal(uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, tc_shut), 0);
}

int tc_ended(void *arg)
{
    tclient *c = arg;
    return c->eof || c->read_err;
}

void tc_closed(uv_handle_t *h) { ((tclient *)h->data)->closed = 1; }

void tc_free(tclient *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, tc_closed);
    free(c->data);
}

tclient *tc_new(void)
{
    tclient *c = calloc(1, sizeof *c);
    assert_non_null(c);
    return c;
}

/* ---- proxy and sink fixture ---------------------------------------------- */


/* Starts sink "alpha" on a new loop and fills *pc with the defaults and the
 * destination "alpha" routed to it; the caller starts the proxy. */
fx *fx_prepare(unsigned sink_pause_ms, cr_proxy_config *pc)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    struct sockaddr_in any;
    uv_ip4_addr("127.0.0.1", 0, &any);
    cr_sink_config sc = {"alpha", 1024, 64 * 1024, 0, 0, sink_pause_ms};
    int sport = 0;
    assert_int_equal(cr_sink_start(&f->alpha, &f->loop, &sc, (const struct sockaddr *)&any, &sport), 0);
    cr_proxy_config_default(pc);
    snprintf(pc->dests[0].name, sizeof pc->dests[0].name, "alpha");
    uv_ip4_addr("127.0.0.1", sport, (struct sockaddr_in *)&pc->dests[0].addr);
    pc->ndests = 1;
    return f;
}

void fx_start_proxy(fx *f, const cr_proxy_config *pc)
{
    struct sockaddr_in any;
    uv_ip4_addr("127.0.0.1", 0, &any);
    assert_int_equal(cr_proxy_start(&f->px, &f->loop, pc, (const struct sockaddr *)&any, &f->port), 0);
}

/* The fixture on a new loop: sink "alpha", proxy, and name -> 127.0.0.1:port
 * if name is not NULL. */
fx *fx_new(const char *name, int port)
{
    cr_proxy_config pc;
    fx *f = fx_prepare(0, &pc);
    if (name) {
        snprintf(pc.dests[1].name, sizeof pc.dests[1].name, "%s", name);
        uv_ip4_addr("127.0.0.1", port, (struct sockaddr_in *)&pc.dests[1].addr);
        pc.ndests = 2;
    }
    fx_start_proxy(f, &pc);
    return f;
}

/* Like fx_new, with a destination written by the test: `listener` listens on
 * the fixture's loop (accepting with on_conn, data as handle data, SO_RCVBUF
 * rcvbuf inherited by accepted sockets unless 0) before the proxy starts, and
 * the proxy routes `name` to it (SO_SNDBUF upstream_sndbuf unless 0). */
fx *fx_new_with_dest(uv_tcp_t *listener, void *data, uv_connection_cb on_conn,
                            int rcvbuf, const char *name, int upstream_sndbuf)
{
    cr_proxy_config pc;
    fx *f = fx_prepare(0, &pc);
    struct sockaddr_in any;
    uv_ip4_addr("127.0.0.1", 0, &any);
    assert_int_equal(uv_tcp_init(&f->loop, listener), 0);
    listener->data = data;
    assert_int_equal(uv_tcp_bind(listener, (const struct sockaddr *)&any, 0), 0);
    if (rcvbuf) {
        uv_os_fd_t fd;
        assert_int_equal(uv_fileno((uv_handle_t *)listener, &fd), 0);
        test_set_sockbuf(fd, 0, rcvbuf);
    }
    assert_int_equal(uv_listen((uv_stream_t *)listener, 8, on_conn), 0);
    int port = cr_bound_port(listener);
    assert_true(port > 0);
    snprintf(pc.dests[1].name, sizeof pc.dests[1].name, "%s", name);
    uv_ip4_addr("127.0.0.1", port, (struct sockaddr_in *)&pc.dests[1].addr);
    pc.ndests = 2;
    pc.upstream_sndbuf = upstream_sndbuf;
    fx_start_proxy(f, &pc);
    return f;
}

struct cr_proxy_stats fx_stats(const fx *f)
{
    struct cr_proxy_stats st;
    cr_proxy_get_stats(f->px, &st);
    return st;
}

/* Every session and sink connection freed. */
int fx_idle(void *arg)
{
    fx *f = arg;
    return fx_stats(f).live == 0 && cr_sink_live(f->alpha) == 0;
}

/* The sink holds exactly one record whose reply line is what c expects. */
void assert_sink_got(fx *f, const tclient *c)
{
    size_t n;
    cr_sink_record *r = cr_sink_records(f->alpha, &n);
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        char line[96];
        snprintf(line, sizeof line, "OK %llu %016llx\n", (unsigned long long)r[i].bytes,
                 (unsigned long long)r[i].hash);
        found += r[i].parse_ok && r[i].route_ok && strcmp(line, c->expect) == 0;
    }
    assert_int_equal(found, 1);
}

void assert_tickets_balanced(const fx *f)
{
    struct cr_proxy_stats st = fx_stats(f);
    assert_int_equal(st.tickets.issued, st.tickets.completed);
    assert_int_equal(st.tickets.dupes, 0);
    assert_int_equal(st.tickets.lost, 0);
    cr_tickets sk;
    cr_sink_tickets(f->alpha, &sk);
    assert_int_equal(sk.issued, sk.completed);
    assert_int_equal(sk.dupes, 0);
    assert_int_equal(sk.lost, 0);
}

void fx_free(fx *f)
{
    cr_proxy_stop(f->px);
    cr_sink_stop(f->alpha);
    assert_int_equal(test_uv_loop_teardown(&f->loop), 0);
    cr_proxy_free(f->px);
    cr_sink_free(f->alpha);
    free(f);
}

/* Closes the clients (b may be NULL), tears the fixture down (running their
 * close callbacks) and frees them. */
void fx_end_with_clients(fx *f, tclient *a, tclient *b)
{
    tc_free(a);
    if (b)
        tc_free(b);
    fx_free(f);
    free(a);
    free(b);
}

struct cr_proxy_stats fx_settle(fx *f)
{
    assert_int_equal(wq_run_until(&f->loop, fx_idle, f, RUN_MS), 0);
    return fx_stats(f);
}

void tc_expect_reply(const tclient *c)
{
    assert_int_equal(c->reply_len, strlen(c->expect));
    assert_memory_equal(c->reply, c->expect, c->reply_len);
}

void fx_end_balanced(fx *f, tclient *a, tclient *b)
{
    assert_tickets_balanced(f);
    fx_end_with_clients(f, a, b);
}

void tc_start(fx *f, tclient *c, const char *dest, size_t frames, size_t frame_bytes,
              size_t tunnel, uint64_t seed)
{
    tc_build(c, dest, frames, frame_bytes, tunnel, seed);
    tc_connect(&f->loop, c, f->port);
}

/* A good client to alpha: sends everything, half-closes, gets its reply. */
void run_good_client(fx *f, tclient *c, uint64_t seed)
{
    tc_start(f, c, "alpha", 8, 63, 64 * 1024, seed);
    tc_write(c, 0, c->len);
    tc_shutdown(c);
    assert_int_equal(wq_run_until(&f->loop, tc_ended, c, RUN_MS), 0);
    assert_int_equal(c->eof, 1);
    tc_expect_reply(c);
}


void fx_serve_good_client(fx *f, tclient *good, uint64_t seed, uint64_t rejected,
                          uint64_t aborted)
{
    run_good_client(f, good, seed);
    struct cr_proxy_stats st = fx_settle(f);
    assert_int_equal(st.accepted, 2);
    assert_int_equal(st.rejected, rejected);
    assert_int_equal(st.completed, 1);
    assert_int_equal(st.aborted, aborted);
}

static int forwarded(void *arg)
{
    fx *f = arg;
    return fx_stats(f).bytes_up >= f->wait_bytes && cr_sink_live(f->alpha) >= 1;
}

void fx_run_until_forwarded(fx *f, uint64_t bytes)
{
    f->wait_bytes = bytes;
    assert_int_equal(wq_run_until(&f->loop, forwarded, f, RUN_MS), 0);
}
